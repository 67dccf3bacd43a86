// The browser half of scripts/check-serve: node check-serve.js BASE_URL OUT_DIR
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");

const [base, out] = process.argv.slice(2);
let failures = 0;
function check(ok, what) {
  console.log((ok ? "  ok    " : "  FAIL  ") + what);
  if (!ok) failures++;
}

async function newPage(browser, width, height, outside) {
  const page = await browser.newPage({ viewport: { width, height } });
  // Nothing may be fetched from anywhere but the server.
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(base)) return route.continue();
    outside.push(url);
    return route.abort();
  });
  page.on("pageerror", (e) => { console.log("  page error: " + e.message); failures++; });
  return page;
}

async function search(page, text) {
  await page.goto(base + "/#/");
  await page.fill("#q", text);
  await page.press("#q", "Enter");
  await page.waitForSelector("ol.results li", { timeout: 60000 });
}

// No empty value may show through as "null" or "undefined".
async function noPlaceholders(page, what) {
  const text = await page.textContent("main");
  const m = text.match(/\b(null|undefined|NaN|\[object Object\])\b|https?:\/\//);
  check(!m, `${what}: no "null"/"undefined" shown${m ? " (found " + m[0] + ")" : ""}`);
}

async function noOverflow(page, width, what) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check(w <= width + 1, `${what}: page is ${w}px wide at a ${width}px screen`);
}

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const outside = [];
  const page = await newPage(browser, 1280, 900, outside);

  // 1. Search by title.
  await search(page, "Scaling Laws for Precision");
  const h1 = await page.textContent("h1");
  const n = await page.locator("ol.results > li").count();
  check(/^Related to/.test(h1) && n >= 5, `search: "${h1.trim()}" with ${n} results`);
  const why = await page.locator("ol.results .chip").count();
  check(why > 0, `search: ${why} "shared terms" chips`);
  await noPlaceholders(page, "search");
  await page.screenshot({ path: path.join(out, "search.png"), fullPage: false });

  // 2. A paper page, then its earlier work.
  const firstTitle = (await page.locator("ol.results > li a.rtitle").first().textContent()).trim();
  await page.locator("ol.results > li a.rtitle").first().click();
  await page.waitForSelector(".abstract");
  const ptitle = (await page.textContent("h1")).trim();
  const abs = (await page.textContent(".abstract")).trim();
  check(ptitle === firstTitle && abs.length > 50, `paper page: "${ptitle.slice(0, 60)}", abstract ${abs.length} chars`);
  const related = await page.locator("ol.results > li").count();
  check(related >= 5, `paper page: ${related} related papers`);
  await noPlaceholders(page, "paper page");
  await page.screenshot({ path: path.join(out, "paper.png") });
  const priorTab = page.getByRole("tab", { name: /Earlier work/ });
  if (await priorTab.isEnabled()) {
    await priorTab.click();
    await page.waitForFunction(() => location.hash.includes("tab=prior"));
    await page.waitForSelector("ol.results li, main p.muted");
    const prior = await page.locator("ol.results > li").count();
    const meta = await page.locator("ol.results > li .meta").allTextContents();
    check(prior > 0, `paper page: earlier-work tab shows ${prior} papers`);
  } else {
    // An undated paper (the sample corpus has no dates): the tab says why.
    const why = await priorTab.getAttribute("title");
    check(why === "this paper has no date", `paper page: earlier-work tab disabled: "${why}"`);
  }

  // 3. A two-paper reading list.
  await page.getByRole("tab", { name: /^Related/ }).click();
  await page.waitForSelector("ol.results li");
  await page.locator("p.meta button", { hasText: "+ list" }).first().click(); // the paper itself
  await page.locator("ol.results > li button", { hasText: "+ list" }).first().click();
  const listed = [ptitle, (await page.locator("ol.results > li a.rtitle").first().textContent()).trim()];
  await page.goto(base + "/#/list");
  await page.waitForSelector("table.list");
  const rows = await page.locator("table.list tr").count();
  check(rows === 2, `reading list: ${rows} papers`);
  await page.waitForSelector("#more ol.results li", { timeout: 60000 });
  const more = await page.locator("#more ol.results > li a.rtitle").allTextContents();
  check(more.length >= 5 && !more.some((t) => listed.includes(t.trim())), `reading list: ${more.length} "more like these", none of the two listed`);
  const href = await page.getAttribute("a.button", "href");
  const bib = await (await page.request.get(base + href)).text();
  check((bib.match(/^@/gm) || []).length === 2, `reading list: BibTeX export holds ${(bib.match(/^@/gm) || []).length} entries`);
  await noPlaceholders(page, "reading list");
  await page.screenshot({ path: path.join(out, "list.png") });

  // 4. Topics, then one topic.
  await page.goto(base + "/#/topics");
  await page.waitForSelector(".card.topic", { timeout: 300000 });
  const topics = await page.locator(".card.topic").count();
  const heading = (await page.textContent("h1")).trim();
  check(topics > 1, `topics: "${heading}", ${topics} cards`);
  await page.screenshot({ path: path.join(out, "topics.png") });
  const tname = (await page.locator(".card.topic h3 a").first().textContent()).trim();
  await page.locator(".card.topic h3 a").first().click();
  await page.waitForSelector("ol.results li");
  const th1 = (await page.textContent("h1")).trim();
  const members = await page.locator("ol.results > li").count();
  check(th1 === tname && members > 0, `topic page: "${th1}" with ${members} papers listed`);
  const close = await page.locator("main p a[href^='#/topic']").allTextContents();
  check(close.length > 0, `topic page: closest topics ${close.map((c) => '"' + c + '"').join(", ")}`);
  await noPlaceholders(page, "topic page");
  await page.screenshot({ path: path.join(out, "topic.png") });

  // 5. The live map.
  await page.goto(base + "/map");
  await page.waitForSelector("#summary", { timeout: 60000 });
  await page.waitForTimeout(1500);
  const summary = (await page.textContent("#summary")).trim();
  check(/topics/.test(summary), `map: "${summary}"`);
  await page.screenshot({ path: path.join(out, "map.png") });

  // 6. A phone-sized screen.
  const phone = await newPage(browser, 400, 860, outside);
  await search(phone, "Scaling Laws for Precision");
  await noOverflow(phone, 400, "search at 400px");
  await phone.screenshot({ path: path.join(out, "search-phone.png") });
  await phone.locator("ol.results > li a.rtitle").first().click();
  await phone.waitForSelector(".abstract");
  await noOverflow(phone, 400, "paper page at 400px");
  await phone.screenshot({ path: path.join(out, "paper-phone.png") });
  await phone.goto(base + "/#/topics");
  await phone.waitForSelector(".card.topic", { timeout: 300000 });
  await noOverflow(phone, 400, "topics at 400px");
  await phone.screenshot({ path: path.join(out, "topics-phone.png") });

  check(outside.length === 0, `requests to other hosts: ${outside.length}${outside.length ? " (" + outside.slice(0, 3).join(", ") + ")" : ""}`);
  await browser.close();
  console.log(`check-serve: ${failures ? failures + " check(s) FAILED" : "all checks passed"}; screenshots in ${out}`);
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.error("check-serve: " + e.message); process.exit(1); });
