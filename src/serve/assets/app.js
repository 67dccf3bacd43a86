// papermap's web page: hash routes over the JSON API. Every value from the
// library reaches the page as text (textContent) or as an href built by the
// server from a checked id (arXiv, doi.org, http(s) only), never as HTML.
"use strict";

const main = document.getElementById("main");
const qbox = document.getElementById("q");

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== undefined && n !== null && n !== false));
  window.scrollTo(0, 0);
}

function route(path, params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => s.append(k, x));
    else if (v !== undefined && v !== null && v !== "") s.append(k, v);
  }
  const qs = s.toString();
  return "#/" + path + (qs ? "?" + qs : "");
}

// Fetches an API route; a 503 (topics being computed) is retried.
async function api(path, params, onWait) {
  const url = "/api/" + path + route("", params).slice(2);
  for (let attempt = 0; attempt < 120; attempt++) {
    const r = await fetch(url);
    let body;
    try { body = await r.json(); } catch (e) { body = { error: "unreadable answer (" + r.status + ")" }; }
    if (r.status === 503 && body.retry_after) {
      if (onWait) onWait(body.error);
      await new Promise((ok) => setTimeout(ok, body.retry_after * 1000));
      continue;
    }
    if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
    return body;
  }
  throw new Error("gave up waiting for the server");
}

function errorBox(e) {
  return el("div", { class: "error", role: "alert", text: String(e.message || e) });
}

function waiting(msg) {
  show(el("p", { class: "muted", text: msg || "Loading…" }));
}

// ---- reading list (kept in this browser) ----
const LIST_KEY = "papermap.readinglist";
function loadList() {
  try { return JSON.parse(localStorage.getItem(LIST_KEY)) || []; } catch (e) { return []; }
}
function saveList(list) {
  localStorage.setItem(LIST_KEY, JSON.stringify(list));
  updateListLink();
}
function inList(id) { return loadList().some((x) => x.id === id); }
function toggleList(p) {
  let list = loadList();
  if (list.some((x) => x.id === p.id)) list = list.filter((x) => x.id !== p.id);
  else list.push({ id: p.id, title: p.title, like: true });
  saveList(list);
}
function updateListLink() {
  const n = loadList().length;
  document.getElementById("listlink").textContent = n ? "Reading list (" + n + ")" : "Reading list";
}

function listButton(p) {
  const b = el("button", { class: "small plain", type: "button" });
  const label = () => { b.textContent = inList(p.id) ? "✓ in list" : "+ list"; };
  b.addEventListener("click", () => { toggleList(p); label(); });
  label();
  return b;
}

function links(p) {
  const l = p.links || {};
  const out = el("span", { class: "links" });
  if (p.arxiv) out.append(el("a", { href: "https://arxiv.org/abs/" + encodeURIComponent(p.arxiv).replace(/%2F/g, "/"), target: "_blank", rel: "noopener noreferrer", text: "arXiv" }));
  else if (l.arxiv) out.append(el("a", { href: l.arxiv, target: "_blank", rel: "noopener noreferrer", text: "arXiv" }));
  if (p.doi) out.append(el("a", { href: "https://doi.org/" + p.doi.split("/").map(encodeURIComponent).join("/"), target: "_blank", rel: "noopener noreferrer", text: "DOI" }));
  if (l.url) out.append(el("a", { href: l.url, target: "_blank", rel: "noopener noreferrer", text: "link" }));
  return out;
}

function resultItem(r) {
  const meta = [r.date || (r.undated ? "undated" : ""), (r.authors || []).join(", ") + (r.more_authors ? " et al." : "")].filter(Boolean).join(" · ");
  return el("li", {},
    el("div", { class: "row" },
      el("a", { class: "rtitle", href: route("paper", { id: r.id }), text: r.title }),
      el("span", { class: "score", title: "score (dense / lexical)" },
        r.score !== undefined ? r.score.toFixed(3) + " (" + r.dense.toFixed(2) + " / " + r.lexical.toFixed(2) + ")" : "")),
    el("div", { class: "meta" }, meta, " ", links(r), listButton(r)),
    r.why && r.why.length ? el("div", { class: "chips", title: "shared terms" }, r.why.map((w) => el("span", { class: "chip", text: w }))) : null);
}

function resultList(results, empty) {
  if (!results || !results.length) return el("p", { class: "muted", text: empty || "No results: the filters exclude every paper." });
  return el("ol", { class: "results" }, results.map(resultItem));
}

function notEmbeddedNote(n) {
  return n ? el("div", { class: "note", text: n + " paper(s) added since the last index are not embedded yet: found by their words only until embedding finishes." }) : null;
}

// ---- views ----
async function home() {
  show(el("h1", { text: "Find related papers" }),
    el("p", { text: "Type a paper's title, arXiv id or DOI to see related work, earlier work it builds on and later work built on it; or type any text. Pick papers into a reading list to find more like them." }),
    el("p", {}, el("a", { href: "#/topics", text: "Browse the topics" }), " · ", el("a", { href: "/map", target: "_blank", text: "the topic map" })));
  qbox.focus();
}

const FILTERS = ["mode", "direction", "since", "until", "k"];

function filterBar(params, go) {
  const sel = (name, opts) => el("label", {}, name + " ",
    el("select", { name, onchange: (e) => go({ ...params, [name]: e.target.value }) },
      opts.map((o) => el("option", { value: o, selected: (params[name] || opts[0]) === o ? "" : null, text: o }))));
  const num = (name, ph) => el("label", {}, name + " ",
    el("input", { type: "number", name, value: params[name] || "", placeholder: ph, onchange: (e) => go({ ...params, [name]: e.target.value }) }));
  return el("div", { class: "filters" },
    sel("mode", ["hybrid", "dense", "lexical", "bm25"]),
    sel("direction", ["any", "prior", "later"]),
    num("since", "year"), num("until", "year"), num("k", "10"));
}

async function search(params) {
  const q = params.q || "";
  qbox.value = q;
  if (!q.trim()) return home();
  waiting("Searching…");
  const go = (p) => { location.hash = route("search", p); };
  const req = { q };
  for (const f of FILTERS) if (params[f]) req[f] = params[f];
  if (req.direction === "any") delete req.direction;
  try {
    const a = await api("related", req);
    const head = a.query.kind === "paper"
      ? el("h1", {}, "Related to ", el("a", { href: route("paper", { id: a.query.paper.id }), text: a.query.paper.title }))
      : el("h1", { text: "Related to the text “" + (q.length > 90 ? q.slice(0, 89) + "…" : q) + "”" });
    const parts = [head,
      el("p", { class: "meta", text: (a.query.kind === "paper" ? "matched by " + a.query.matched_by + " · " : "taken as free text (no paper has this id or title) · ") + a.mode + " mode, " + a.engine + " search" }),
      filterBar(params, go), notEmbeddedNote(a.not_embedded), resultList(a.results)];
    show(...parts);
    if (a.query.kind === "text") {
      const m = await api("search", { q, k: 10 });
      if (m.results.length) main.append(el("h2", { text: "Papers with these words in their title or abstract" }),
        el("ol", { class: "results" }, m.results.map(resultItem)));
    }
  } catch (e) {
    show(el("h1", { text: "Related to “" + q + "”" }), filterBar(params, go), errorBox(e));
  }
}

async function paper(params) {
  waiting();
  try {
    const p = await api("paper", { id: params.id });
    const tab = params.tab || "related";
    const lists = { related: "Related", prior: "Earlier work (prior)", later: "Later work" };
    const tabs = el("div", { class: "tabs", role: "tablist" }, Object.entries(lists).map(([k, label]) =>
      el("button", { type: "button", role: "tab", "aria-selected": String(k === tab), disabled: p[k] === null ? "" : null,
        title: p[k] === null ? "this paper has no date" : null,
        onclick: () => { location.hash = route("paper", { id: params.id, tab: k }); } }, label)));
    const authors = p.authors.length ? p.authors.join(", ") : "no authors recorded";
    show(
      el("h1", { text: p.title }),
      el("p", { class: "meta" }, authors),
      el("p", { class: "meta" }, [p.date || "undated", p.venue, p.id].filter(Boolean).join(" · "), " ", links(p), listButton(p)),
      p.topic ? el("p", {}, "Topic: ", el("a", { href: route("topic", { id: p.topic.id }), text: p.topic.name })) : null,
      p.collections && p.collections.length ? el("p", { class: "meta", text: "Collections: " + p.collections.join("; ") }) : null,
      el("div", { class: "abstract", text: p.abstract || "(no abstract)" }),
      tabs,
      p[tab] === null ? el("p", { class: "muted", text: "This paper has no publication date, so nothing can be called prior or later." })
        : resultList(p[tab], tab === "related" ? "No related papers." : "None in the library."));
  } catch (e) {
    show(el("h1", { text: "Paper" }), errorBox(e));
  }
}

async function readingList() {
  const list = loadList();
  const rows = list.map((x, i) => el("tr", {},
    el("td", {}, el("a", { href: route("paper", { id: x.id }), text: x.title || x.id })),
    el("td", {}, el("button", { class: "small plain" + (x.like ? "" : " neg"), type: "button",
      title: "more like this / less like this",
      onclick: () => { list[i].like = !list[i].like; saveList(list); readingList(); } }, x.like ? "like" : "not like")),
    el("td", {}, el("button", { class: "small plain", type: "button", onclick: () => { list.splice(i, 1); saveList(list); readingList(); } }, "remove"))));
  const positive = list.filter((x) => x.like).map((x) => x.id);
  const negative = list.filter((x) => !x.like).map((x) => x.id);
  const exportHref = "/api/export.bib" + route("", { id: list.map((x) => x.id) }).slice(2);
  show(el("h1", { text: "Reading list" }),
    list.length ? el("table", { class: "list" }, rows) : el("p", { class: "muted", text: "Empty: add papers with “+ list” on any result or paper page." }),
    list.length ? el("p", {},
      el("a", { class: "button plain", href: exportHref, download: "reading-list.bib" }, "Export BibTeX"), " ",
      el("button", { class: "plain", type: "button", onclick: () => { saveList([]); readingList(); } }, "Clear")) : null,
    el("h2", { text: positive.length ? "More like these" + (negative.length ? ", not like those" : "") : "" }),
    el("div", { id: "more" }));
  if (!positive.length) return;
  const more = document.getElementById("more");
  more.append(el("p", { class: "muted", text: "Searching…" }));
  try {
    const a = await api("related", { positive, negative, k: 20 });
    more.replaceChildren(notEmbeddedNote(a.not_embedded) || "", resultList(a.results));
  } catch (e) {
    more.replaceChildren(errorBox(e));
  }
}

function keywordBars(t, n) {
  const max = Math.max(...(t.weights || [1]), 1e-9);
  return el("div", {}, t.keywords.slice(0, n).map((k, i) =>
    el("div", { class: "bar" }, el("span", { class: "fill", style: "width:" + Math.round(90 * (t.weights ? t.weights[i] / max : 1)) + "px" }), k)));
}

async function topicsView() {
  waiting("Loading topics…");
  try {
    const r = await api("topics", {}, (msg) => waiting(msg));
    show(el("h1", { text: r.topics.length + " topics in " + r.library.papers + " papers" }),
      el("p", { class: "meta" }, "k=" + r.params.k + " chosen by " + r.params.k_chosen_by + ", seed " + r.params.seed + " · ",
        el("a", { href: "/map", target: "_blank", text: "open the map" })),
      (r.warnings || []).map((w) => el("div", { class: "note", text: w })),
      el("div", { class: "grid" }, r.topics.map((t) => el("div", { class: "card topic" },
        el("h3", {}, el("a", { href: route("topic", { id: t.id }), text: t.name })),
        el("div", { class: "meta", text: t.size + " papers" + (t.trend ? " · " + t.trend : "") }),
        keywordBars(t, 5)))));
  } catch (e) {
    show(el("h1", { text: "Topics" }), errorBox(e));
  }
}

async function topicView(params) {
  waiting("Loading topic…");
  const offset = Number(params.offset || 0);
  try {
    const t = await api("topic", { id: params.id, offset, limit: 50 }, (msg) => waiting(msg));
    const maxYear = Math.max(1, ...t.years.map((y) => y[1]));
    const members = t.papers.map((m) => el("li", {},
      el("div", { class: "row" }, el("a", { class: "rtitle", href: route("paper", { id: m.id }), text: m.title }),
        el("span", { class: "score", text: m.year || "" }))));
    const pager = el("p", {},
      offset > 0 ? el("a", { href: route("topic", { id: params.id, offset: Math.max(0, offset - 50) }), text: "← previous" }) : null, " ",
      offset + 50 < t.total_papers ? el("a", { href: route("topic", { id: params.id, offset: offset + 50 }), text: "next →" }) : null);
    show(el("h1", { text: t.name }),
      el("p", { class: "meta", text: t.size + " papers" + (t.trend ? " · " + t.trend : "") + " · topic " + t.id }),
      keywordBars(t, 10),
      t.years.length ? el("div", { class: "years", title: "papers per year " + t.years[0][0] + "–" + t.years[t.years.length - 1][0] },
        t.years.map((y) => el("div", { style: "height:" + Math.round(100 * y[1] / maxYear) + "%", title: y[0] + ": " + y[1] }))) : null,
      t.similar.length ? el("p", {}, "Closest topics: ", t.similar.map((s, i) => [i ? ", " : "", el("a", { href: route("topic", { id: s.id }), text: s.name })])) : null,
      el("h2", { text: "Papers " + (offset + 1) + "–" + Math.min(offset + 50, t.total_papers) + " of " + t.total_papers + " (closest to the centre first)" }),
      el("ol", { class: "results", start: String(offset + 1) }, members), pager);
  } catch (e) {
    show(el("h1", { text: "Topic" }), errorBox(e));
  }
}

function dispatch() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, qs] = h.split("?");
  const params = Object.fromEntries(new URLSearchParams(qs || ""));
  const views = { "": home, search, paper, list: readingList, topics: topicsView, topic: topicView };
  (views[path] || home)(params);
}

document.getElementById("searchform").addEventListener("submit", (e) => {
  e.preventDefault();
  const cur = Object.fromEntries(new URLSearchParams((location.hash.split("?")[1]) || ""));
  const keep = {};
  if (location.hash.startsWith("#/search")) for (const f of FILTERS) if (cur[f]) keep[f] = cur[f];
  location.hash = route("search", { ...keep, q: qbox.value.trim() });
});
window.addEventListener("hashchange", dispatch);
updateListLink();
dispatch();
api("status", {}).then((s) => {
  document.getElementById("status").textContent = s.papers + " papers · " + (s.model || "no model") + " · " + s.engine + " search · generation " + s.generation + (s.not_embedded ? " · " + s.not_embedded + " not embedded yet" : "");
}).catch(() => {});
