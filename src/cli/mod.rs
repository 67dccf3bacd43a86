//! The command line: arguments are checked and converted once into the
//! library's option structs (`config`), then each command calls the library
//! and prints. Nothing here knows about files on disk beyond paths.

pub mod args;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use papermap::app::{self, EmbedderKind, QuerySource};
use papermap::embed::{EmbedOptions, Embedder, HashEmbedder, MiniLm, MiniLmOptions};
use papermap::index::{HnswParams, SearchOptions};
use papermap::ingest::IngestOptions;
use papermap::pipeline::{self, AddOptions, TopicOptions};
use papermap::query::{Direction, Engine, Mode, RelatedOptions, Resolved, resolve};
use papermap::report::{self, TopicReport};
use papermap::store::{Library, WriteOptions, Writer};

use args::{
    Cli, Command, EmbedOpts, EvalCommand, FormatArg, RelatedArgs, ScoringArgs, ServeArgs, ShowArgs,
    TopicAction,
};

/// Global settings shared by all commands.
struct Config {
    library: std::path::PathBuf,
    quiet: bool,
    embedder: EmbedderKind,
    write: WriteOptions,
    search: SearchOptions,
}

pub fn run(cli: Cli) -> Result<()> {
    let cfg = Config {
        library: cli.library.clone(),
        quiet: cli.quiet,
        embedder: cli.embedder.into(),
        write: WriteOptions {
            lock_wait: Duration::from_secs(cli.lock_wait),
        },
        search: SearchOptions {
            hnsw_threshold: cli.hnsw_threshold,
            ..Default::default()
        },
    };
    match cli.command {
        Command::Add(a) => {
            let opts = AddOptions {
                ingest: IngestOptions {
                    format: a.format.as_deref().map(str::parse).transpose()?,
                    strict: a.strict,
                    columns: a
                        .columns
                        .as_deref()
                        .map(str::parse)
                        .transpose()?
                        .unwrap_or_default(),
                    collection: a.collection.clone(),
                    sync: a.watch,
                },
                embed: embed_options(&a.embed, cfg.quiet)?,
                write: cfg.write.clone(),
                no_embed: a.no_embed,
                search: cfg.search.clone(),
            };
            for f in &a.files {
                if !f.exists() {
                    bail!("{}: no such file", f.display());
                }
            }
            let mut make = embedder_factory(&cfg, &a.embed);
            if a.watch {
                return watch(&cfg, &a.files, &opts, &mut make, a.poll_ms);
            }
            let r = pipeline::add(&cfg.library, &a.files, &opts, &mut make)?;
            print_add(&cfg, &r)?;
            add_outcome(&r)
        }
        Command::Embed(e) => {
            let opts = AddOptions {
                embed: embed_options(&e.embed, cfg.quiet)?,
                write: cfg.write.clone(),
                search: cfg.search.clone(),
                ..Default::default()
            };
            let mut w = Writer::open(&cfg.library, &cfg.write)?;
            let mut make = embedder_factory(&cfg, &e.embed);
            let (r, index) = pipeline::embed_and_index(&mut w, &opts, &mut make)?;
            if !cfg.quiet {
                eprintln!(
                    "embedded {} papers in {:.1}s ({} already cached); {}",
                    r.embedded,
                    r.seconds,
                    r.cached,
                    index.map_or("index up to date".to_string(), |i| i.summary())
                );
            }
            Ok(())
        }
        Command::Related(r) => related(&cfg, &r),
        Command::Topics(t) => {
            let report = match &t.action {
                None => topics(&cfg, t.k, t.seed, t.recluster)?.1,
                Some(action) => {
                    // No run of its own first: on a new library it would be
                    // stored, and the action's run would report changes
                    // against a run the user never saw.
                    let lib = app::open_for_topics(&cfg.library)?;
                    for w in &lib.warnings {
                        eprintln!("papermap: warning: {w}");
                    }
                    let report = topic_action(&cfg, &lib, action)?;
                    topic_notes(&cfg, &report);
                    report
                }
            };
            if t.json {
                out(&serde_json::to_string_pretty(&report)?)
            } else {
                print_topics(&report)
            }
        }
        Command::Report(r) => {
            let formats = parse_formats(&r.format)?;
            let (lib, report) = topics(&cfg, r.k, r.seed, r.recluster)?;
            let single_file = formats.len() == 1 && r.out.extension().is_some();
            let mut written = Vec::new();
            for f in formats {
                let target = if single_file {
                    r.out.clone()
                } else if f == report::Format::Bibtex {
                    r.out.join("bibtex")
                } else {
                    r.out.join(format!("topics.{}", f.extension()))
                };
                written.extend(report::write(&report, f, lib.papers(), &target)?);
            }
            if !cfg.quiet {
                eprintln!(
                    "{} topics (k={}, seed {}); wrote:",
                    report.topics.len(),
                    report.params.k,
                    report.params.seed
                );
                for w in &written {
                    eprintln!("  {}", w.display());
                }
            }
            Ok(())
        }
        Command::Status => status(&cfg),
        Command::List => list(&cfg),
        Command::Check(c) => check(&cfg, c.repair),
        Command::Remove(r) => remove(&cfg, &r),
        Command::Eval(e) => eval(&cfg, &e),
        Command::Serve(s) => serve(&cfg, &s),
        Command::Show(s) => show(&cfg, &s),
        Command::Match(m) => match_command(&cfg, &m),
    }
}

/// `topics rename | merge | pin` on the library's stored main run.
fn topic_action(cfg: &Config, lib: &Library, action: &TopicAction) -> Result<TopicReport> {
    Ok(match action {
        TopicAction::Rename { id, name } => {
            pipeline::rename_topic(lib, *id, name, cfg.write.lock_wait)?
        }
        TopicAction::Merge { into, others } => {
            pipeline::merge_topics(lib, *into, others, cfg.write.lock_wait)?
        }
        TopicAction::Pin { k } => {
            let k = match k.as_str() {
                "auto" => None,
                n => Some(n.parse().map_err(|_| {
                    anyhow::anyhow!("pin takes a number of topics or 'auto', not '{n}'")
                })?),
            };
            pipeline::pin_k(lib, k, cfg.write.lock_wait)?
        }
    })
}

/// Topics with the user's k and seed, other options at their defaults, and
/// the library they were computed on; says how the clustering was brought
/// up to date and which papers are left out.
fn topics(
    cfg: &Config,
    k: Option<usize>,
    seed: u64,
    recluster: bool,
) -> Result<(Library, TopicReport)> {
    let (lib, report) = app::topics(
        &cfg.library,
        &TopicOptions {
            k,
            seed,
            // The topic state is written like the library: wait for a writer.
            state_lock_wait: Some(cfg.write.lock_wait),
            recluster,
            ..Default::default()
        },
    )?;
    for w in &lib.warnings {
        eprintln!("papermap: warning: {w}");
    }
    topic_notes(cfg, &report);
    Ok((lib, report))
}

/// The lines about papers left out of the topics and about what this run
/// did to the stored clustering (extended or clustered again).
fn topic_notes(cfg: &Config, report: &TopicReport) {
    if cfg.quiet {
        return;
    }
    if report.not_embedded > 0 {
        eprintln!(
            "papermap: {}",
            app::topics_not_embedded_note(report.not_embedded)
        );
    }
    if let Some(u) = &report.update {
        eprintln!("papermap: {}", u.summary());
    }
}

/// The report formats asked for, each once, in the order given.
fn parse_formats(given: &[FormatArg]) -> Result<Vec<report::Format>> {
    use report::Format::*;
    let mut out = Vec::new();
    for f in given {
        let add: &[report::Format] = match f {
            FormatArg::All => &[Json, Csv, Markdown, Html, Bibtex],
            FormatArg::Json => &[Json],
            FormatArg::Csv => &[Csv],
            FormatArg::Md => &[Markdown],
            FormatArg::Html => &[Html],
            FormatArg::Bibtex => &[Bibtex],
        };
        for x in add {
            if !out.contains(x) {
                out.push(*x);
            }
        }
    }
    if out.is_empty() {
        bail!("--format names no format");
    }
    Ok(out)
}

fn embed_options(e: &EmbedOpts, quiet: bool) -> Result<EmbedOptions> {
    if e.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    Ok(EmbedOptions {
        batch_size: e.batch_size,
        progress: !quiet,
        ..Default::default()
    })
}

fn embedder_factory<'a>(
    cfg: &'a Config,
    e: &'a EmbedOpts,
) -> impl FnMut() -> papermap::Result<Box<dyn Embedder>> + 'a {
    move || -> papermap::Result<Box<dyn Embedder>> {
        if cfg.embedder == EmbedderKind::Hash {
            return Ok(Box::new(HashEmbedder::new(384)));
        }
        Ok(Box::new(MiniLm::load(&MiniLmOptions {
            threads: e.threads,
            ..Default::default()
        })?))
    }
}

fn open_library(cfg: &Config) -> Result<Library> {
    let lib = app::open_embedded(&cfg.library)?;
    for w in &lib.warnings {
        eprintln!("papermap: warning: {w}");
    }
    Ok(lib)
}

/// Writes to stdout; a closed pipe (`| head`) ends quietly.
fn out(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{s}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.context("writing to stdout"),
    }
}

/// `add --watch`: add, then add again whenever a file changes. A failed
/// round is reported and the watch goes on; Ctrl-C ends it (a kill mid-commit
/// loses nothing committed).
fn watch(
    cfg: &Config,
    files: &[std::path::PathBuf],
    opts: &AddOptions,
    make: &mut dyn FnMut() -> papermap::Result<Box<dyn Embedder>>,
    poll_ms: u64,
) -> Result<()> {
    let poll = Duration::from_millis(poll_ms.max(50));
    let mut last = pipeline::stamps(files);
    loop {
        // Entries that left a file are removed by the add itself (its notes
        // name them): `IngestOptions::sync`.
        match pipeline::add(&cfg.library, files, opts, make) {
            Ok(r) => {
                print_add(cfg, &r)?;
                if let Err(e) = add_outcome(&r) {
                    eprintln!("papermap: error: {e:#}");
                }
            }
            Err(e) => eprintln!("papermap: error: {e:#}"),
        }
        if !cfg.quiet {
            eprintln!(
                "watching {} file(s) for changes (Ctrl-C to stop)",
                files.len()
            );
        }
        last = pipeline::wait_for_change(files, &last, poll);
    }
}

/// A multi-file `add` reads every file it can, then fails if any could not be read.
fn add_outcome(r: &pipeline::AddReport) -> Result<()> {
    let failed: Vec<String> = r
        .failed_files()
        .map(|f| f.path.display().to_string())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    bail!(
        "{} of {} file(s) could not be read: {}{}",
        failed.len(),
        r.files.len(),
        failed.join(", "),
        if r.removed_new_library {
            "; nothing was stored, so no library was created"
        } else {
            "; what the other files hold is stored"
        }
    )
}

/// A file's notes and its first 20 warnings (then how many more).
fn print_file_notes(f: &papermap::ingest::FileReport) {
    for n in &f.notes {
        eprintln!("papermap: {n}");
    }
    for w in f.warnings.iter().take(20) {
        eprintln!("papermap: warning: {w}");
    }
    if f.warnings.len() > 20 {
        eprintln!(
            "papermap: warning: ... and {} more in {}",
            f.warnings.len() - 20,
            f.path.display()
        );
    }
}

fn print_add(cfg: &Config, r: &pipeline::AddReport) -> Result<()> {
    for w in &r.warnings {
        eprintln!("papermap: warning: {w}");
    }
    for f in r.failed_files() {
        eprintln!("papermap: error: {}", f.error.as_deref().unwrap_or(""));
    }
    if cfg.quiet {
        return Ok(());
    }
    let mut s = String::new();
    for f in &r.files {
        print_file_notes(f);
        if f.error.is_some() && f.read == 0 {
            s.push_str(&format!("{}: not read (error above)\n", f.path.display()));
            continue;
        }
        s.push_str(&format!(
            "{} ({}): read {}, new {}, duplicate {}, updated {}, skipped {}{}{}\n",
            f.path.display(),
            if f.format.is_empty() {
                "?"
            } else {
                f.format.as_str()
            },
            f.read,
            f.new,
            f.duplicate,
            f.updated,
            f.skipped,
            if f.no_abstract > 0 {
                format!(
                    " ({} without abstract, embedded from the title)",
                    f.no_abstract
                )
            } else {
                String::new()
            },
            if f.error.is_some() {
                "; stopped by the error above"
            } else {
                ""
            }
        ));
    }
    if r.removed_new_library {
        s.push_str("nothing stored; the new library was removed");
        eprintln!("{s}");
        return Ok(());
    }
    if r.not_embedded {
        s.push_str("not embedded: run `papermap embed` to embed and index");
        eprintln!("{s}");
        return Ok(());
    }
    let e = &r.embed;
    s.push_str(&format!(
        "embedded {} papers in {:.1}s ({} already cached){}",
        e.embedded,
        e.seconds,
        e.cached,
        if e.embedded > 0 {
            format!(", {:.1} papers/s", e.embedded as f64 / e.seconds.max(1e-9))
        } else {
            String::new()
        }
    ));
    s.push_str("; ");
    s.push_str(
        &r.index
            .as_ref()
            .map_or("index up to date".to_string(), |i| i.summary()),
    );
    eprintln!("{s}");
    Ok(())
}

fn print_topics(r: &TopicReport) -> Result<()> {
    let mut s = format!(
        "{} topics in {} papers (k={} chosen by {}{}, seed {}; {} run)\n\n",
        r.topics.len(),
        r.library.papers - r.not_embedded,
        r.params.k,
        r.params.k_chosen_by,
        if r.params.pinned { ", pinned" } else { "" },
        r.params.seed,
        r.run
    );
    for w in &r.warnings {
        s.push_str(&format!("note: {w}\n\n"));
    }
    for t in &r.topics {
        s.push_str(&format!(
            "[{:>2}] {}  ({} papers{})\n",
            t.id,
            t.name,
            t.size,
            report::status_note(t.change, t.trend.as_deref(), ", ", "")
        ));
        s.push_str(&format!("     keywords: {}\n", t.keywords.join(", ")));
        for m in t.representatives.iter().take(3) {
            s.push_str(&format!("     - {}\n", clip(&m.title, 100)));
        }
        s.push('\n');
    }
    out(s.trim_end())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Related-papers options from the scoring flags, checked.
fn scoring_options(s: &ScoringArgs, k: usize) -> Result<RelatedOptions> {
    let opts = RelatedOptions {
        k,
        mode: s.mode.into(),
        weight: s.weight,
        direction: if s.prior {
            Direction::Prior
        } else if s.later {
            Direction::Later
        } else {
            Direction::Any
        },
        earlier_lean: s.earlier_lean,
        age_lean: s.age_lean,
        title_lean: s.title_lean,
        ..Default::default()
    };
    opts.check()?;
    Ok(opts)
}

/// The library opened for queries, with the note about papers not
/// embedded yet.
fn open_for_queries(cfg: &Config, ef: usize) -> Result<QuerySource> {
    let src = QuerySource::open(&cfg.library, &cfg.search, ef)?;
    for w in &src.lib.warnings {
        eprintln!("papermap: warning: {w}");
    }
    if !src.missing.is_empty() && !cfg.quiet {
        eprintln!("papermap: {}", app::not_embedded_note(src.missing.len()));
    }
    Ok(src)
}

fn eval(cfg: &Config, e: &EvalCommand) -> Result<()> {
    match e {
        EvalCommand::Related(a) => {
            let QuerySource {
                lib,
                searcher,
                missing,
            } = open_for_queries(cfg, HnswParams::default().ef_search)?;
            let engine = Engine::with_unembedded(&lib, searcher, &missing)?;
            let (judged, unknown) = papermap::eval::read_judgements(&a.queries, &lib)?;
            if judged.is_empty() {
                bail!(
                    "{}: no query paper with a relevant paper is in the library",
                    a.queries.display()
                );
            }
            if unknown > 0 && !cfg.quiet {
                eprintln!(
                    "papermap: {unknown} id(s) of {} are not in the library; skipped",
                    a.queries.display()
                );
            }
            let base = scoring_options(&a.scoring, 100)?;
            let mut embed = app::text_embedder(cfg.embedder, lib.dim());
            let mut runs = vec![(a.scoring.mode.name().to_string(), base.weight, base.clone())];
            if a.sweep {
                for i in 0..=20 {
                    let w = i as f32 / 20.0;
                    runs.push((
                        "hybrid".into(),
                        w,
                        RelatedOptions {
                            mode: Mode::Hybrid,
                            weight: w,
                            ..base.clone()
                        },
                    ));
                }
            }
            let mut rows = Vec::new();
            for (mode, w, o) in &runs {
                let m = papermap::eval::related(&engine, &judged, o, &mut embed)?;
                rows.push(serde_json::json!({
                    "mode": mode, "weight": w, "direction": o.direction,
                    "earlier_lean": o.earlier_lean, "age_lean": o.age_lean,
                    "title_lean": o.title_lean, "metrics": m,
                }));
            }
            if a.json {
                return out(&serde_json::to_string_pretty(&rows)?);
            }
            let mut s = format!(
                "{} queries, {} papers\n\n mode      weight  direction  leans      nDCG@10  MAP@100  R@10   P@1\n",
                judged.len(),
                lib.len()
            );
            for r in &rows {
                let m = &r["metrics"];
                s.push_str(&format!(
                    " {:<8}  {:>6.2}  {:<9}  {:.3}/{:.3}  {:.3}    {:.3}    {:.3}  {:.3}\n",
                    r["mode"].as_str().unwrap_or(""),
                    r["weight"].as_f64().unwrap_or(0.0),
                    r["direction"].as_str().unwrap_or(""),
                    r["earlier_lean"].as_f64().unwrap_or(0.0),
                    r["age_lean"].as_f64().unwrap_or(0.0),
                    m["ndcg10"].as_f64().unwrap_or(0.0),
                    m["map100"].as_f64().unwrap_or(0.0),
                    m["recall10"].as_f64().unwrap_or(0.0),
                    m["p1"].as_f64().unwrap_or(0.0),
                ));
            }
            out(s.trim_end())
        }
        EvalCommand::Topics(a) => {
            let lib = open_library(cfg)?;
            let (labelled, unknown) = papermap::eval::read_labels(&a.labels, &lib)?;
            if unknown > 0 && !cfg.quiet {
                eprintln!(
                    "papermap: {unknown} id(s) of {} are not in the library; skipped",
                    a.labels.display()
                );
            }
            let m = papermap::eval::topics(&lib, &labelled, a.k, a.seed)?;
            if a.json {
                return out(&serde_json::to_string_pretty(&m)?);
            }
            out(&format!(
                "{} labelled papers, {} labels, k={} (seed {})\nV-measure {:.3}  NMI {:.3}  ARI {:.3}",
                m.papers, m.labels, m.k, a.seed, m.v_measure, m.nmi, m.ari
            ))
        }
    }
}

fn related(cfg: &Config, a: &RelatedArgs) -> Result<()> {
    let QuerySource {
        lib,
        searcher,
        missing,
    } = open_for_queries(cfg, a.ef)?;
    let engine = Engine::with_unembedded(&lib, searcher, &missing)?;
    let mut exclude = HashSet::new();
    if let Some(path) = &a.exclude {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match resolve(&lib, line.trim())? {
                Resolved::Paper { row, .. } => {
                    exclude.insert(row);
                }
                _ => eprintln!(
                    "papermap: warning: {}:{}: '{}' is not a paper in the library",
                    path.display(),
                    i + 1,
                    line.trim()
                ),
            }
        }
    }
    let opts = RelatedOptions {
        year_from: a.since,
        year_to: a.until,
        exclude,
        ..scoring_options(&a.scoring, a.k)?
    };
    opts.check()?;
    let mut embed_text = app::text_embedder(cfg.embedder, lib.dim());
    if let Some(batch) = &a.batch {
        let text = std::fs::read_to_string(batch)
            .with_context(|| format!("reading {}", batch.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let v = match app::batch_line(&lib, &engine, line, &opts, &mut embed_text) {
                Ok(mut v) => {
                    v["line"] = serde_json::json!(i + 1);
                    v
                }
                Err(e) => serde_json::json!({"line": i + 1, "error": format!("{e:#}")}),
            };
            out(&v.to_string())?;
        }
        return Ok(());
    }
    if a.query.is_empty() {
        bail!("give a paper (id, DOI, arXiv id, title) or a text to find related papers for");
    }
    let q = if a.query.len() == 1 && a.negative.is_empty() {
        resolve(&lib, &a.query[0])?
    } else {
        let papers = |items: &[String]| -> Result<Vec<usize>> {
            items
                .iter()
                .map(|s| match resolve(&lib, s)? {
                    Resolved::Paper { row, .. } => Ok(row),
                    _ => bail!("'{s}' is not a paper in the library (a reading list takes paper ids, DOIs, arXiv ids or titles)"),
                })
                .collect()
        };
        Resolved::Set {
            positive: papers(&a.query)?,
            negative: papers(&a.negative)?,
        }
    };
    let results = engine.related(&q, &opts, &mut embed_text)?;
    if a.json {
        return out(&serde_json::to_string_pretty(&app::answer_json(
            &lib, &q, &results, &opts, &engine,
        ))?);
    }
    let head = match &q {
        Resolved::Paper { row, matched_by } => {
            let p = &lib.papers()[*row];
            format!(
                "Related to \"{}\" [{}] (matched by {matched_by})",
                clip(&p.title, 90),
                p.id
            )
        }
        Resolved::Text { text } => format!(
            "Related to the text \"{}\" (taken as free text: no paper in the library has this id or title)",
            clip(text, 90)
        ),
        Resolved::Set { positive, negative } => {
            format!(
                "Related to a reading list of {} paper(s){}",
                positive.len(),
                if negative.is_empty() {
                    String::new()
                } else {
                    format!(", not like {}", negative.len())
                }
            )
        }
    };
    let direction = match opts.direction {
        Direction::Any => String::new(),
        Direction::Prior => ", only earlier work (--prior)".to_string(),
        Direction::Later => ", only later work (--later)".to_string(),
    };
    let mut s = format!(
        "{head}\n{} mode, {} search over {} papers{direction}\n\n {:>2}  {:>5}  {:>5}  {:>5}  {:<7}  {:<24}  title\n",
        a.scoring.mode.name(),
        engine.searcher.engine(),
        lib.len(),
        "#",
        "score",
        "dense",
        "lex",
        "date",
        "id"
    );
    for (i, r) in results.iter().enumerate() {
        let p = &lib.papers()[r.row];
        s.push_str(&format!(
            " {:>2}  {:>5.3}  {:>5.3}  {:>5.3}  {:<7}  {:<24}  {}\n",
            i + 1,
            r.score,
            r.dense,
            r.lexical,
            p.first_published()
                .map_or("undated".to_string(), |d| d.to_string()),
            clip(&p.id, 24),
            clip(&p.title, 80)
        ));
        if !r.why.is_empty() {
            s.push_str(&format!("{:>54}shared: {}\n", "", r.why.join(", ")));
        }
    }
    if results.is_empty() {
        s.push_str(" (no results: the filters exclude every paper)\n");
    }
    out(s.trim_end())
}

fn list(cfg: &Config) -> Result<()> {
    let lib = Library::open(&cfg.library)?;
    let model = lib.manifest().model.as_ref().map(|m| m.id.clone());
    let mut s = String::with_capacity(lib.len() * 80);
    for p in lib.papers() {
        let has = model.as_ref().is_some_and(|m| {
            lib.vector(&papermap::store::vec_key(m, &p.embed_text()))
                .is_some()
        });
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            p.id,
            p.year.map_or(String::new(), |y| y.to_string()),
            if has { "vector" } else { "-" },
            p.title
        ));
    }
    out(s.trim_end())
}

fn status(cfg: &Config) -> Result<()> {
    let st = app::status(&cfg.library, &cfg.search)?;
    let mut s = format!(
        "library {} (format v{}, generation {})\npapers: {} ({} without abstract)\nmodel: {}\nvectors cached: {}, missing: {}\nHNSW index: {}\ntopics: {}",
        st.library,
        st.format_version,
        st.generation,
        st.papers,
        st.without_abstract,
        st.model
            .as_ref()
            .map_or("none yet".into(), |(id, dim)| format!("{id} ({dim}-d)")),
        st.vectors_cached,
        st.vectors_missing,
        match (
            st.matrix_current,
            st.graph_current,
            st.papers >= st.hnsw_threshold
        ) {
            (true, true, _) => "current".to_string(),
            (true, false, false) => format!(
                "not needed (exact search below {} papers)",
                st.hnsw_threshold
            ),
            _ => "stale or absent (rebuilt by the next add/embed)".to_string(),
        },
        if st.topics_current {
            "current"
        } else {
            "not computed for this state"
        },
    );
    for w in &st.warnings {
        s.push_str(&format!("\nwarning: {w}"));
    }
    out(&s)
}

fn check(cfg: &Config, repair: bool) -> Result<()> {
    if repair {
        let opts = papermap::store::RepairOptions {
            lock_wait: cfg.write.lock_wait,
            // Candidates for a manifest rebuilt from the logs.
            known_models: vec![
                papermap::embed::assets::manifest().id,
                HashEmbedder::new(1).id().to_string(),
            ],
        };
        let r = papermap::store::repair(&cfg.library, &opts)?;
        if r.nothing_done() {
            eprintln!("library intact; nothing to repair");
        }
        for line in r.lines() {
            eprintln!("{line}");
        }
        return Ok(());
    }
    let lib = Library::open(&cfg.library)?;
    let missing = pipeline::missing_vectors(&lib);
    let mut problems = lib.warnings.clone();
    if missing > 0 {
        problems.push(format!(
            "{missing} paper(s) have no vector (run `papermap embed`)"
        ));
    }
    // Not problems (nothing committed is affected) but worth knowing.
    for d in lib.derived_problems() {
        eprintln!(
            "note: {}: {}; it will be {} when next needed",
            d.file,
            d.state,
            if d.state.starts_with("damaged") {
                "rebuilt"
            } else {
                "brought up to date"
            }
        );
    }
    for l in lib.leftovers() {
        eprintln!("note: {l}; cleaned up by the next add/embed or `check --repair`");
    }
    if problems.is_empty() {
        out(&format!(
            "ok: {} papers, {} vectors, every checksum verified",
            lib.len(),
            lib.cached_vectors()
        ))
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        bail!(
            "{} problem(s) found; `papermap check --repair` or `papermap embed` fixes them",
            problems.len()
        )
    }
}

fn serve(cfg: &Config, a: &ServeArgs) -> Result<()> {
    let opts = papermap::serve::ServeOptions {
        root: cfg.library.clone(),
        addr: std::net::SocketAddr::new(a.bind, a.port),
        search: cfg.search.clone(),
        ef: a.ef,
        embedder: cfg.embedder,
        poll: Duration::from_millis(a.poll_ms),
        workers: a
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    let quiet = cfg.quiet;
    let loopback = a.bind.is_loopback();
    papermap::serve::run(opts, |addr| {
        if !loopback {
            eprintln!(
                "papermap: warning: listening on {addr}: anyone who can reach this address can read the library"
            );
        }
        if !quiet {
            eprintln!(
                "papermap: serving {} at http://{addr}/ (Ctrl-C to stop)",
                cfg.library.display()
            );
        }
    })?;
    Ok(())
}

fn show(cfg: &Config, a: &ShowArgs) -> Result<()> {
    if !(1..=100).contains(&a.k) {
        bail!("-k must be between 1 and 100 (got {})", a.k);
    }
    let snap = papermap::app::live::Snapshot::open(
        &cfg.library,
        &cfg.search,
        HnswParams::default().ef_search,
    )?;
    for w in &snap.lib().warnings {
        eprintln!("papermap: warning: {w}");
    }
    let row = snap.find(&a.paper)?;
    let embedder = papermap::app::live::SharedEmbedder::new(cfg.embedder);
    let p = snap.paper_page(row, a.k, &embedder)?;
    if a.json {
        return out(&serde_json::to_string_pretty(&p)?);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let mut s = format!("{}\n", text(&p["title"]));
    let authors: Vec<String> = p["authors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !authors.is_empty() {
        s.push_str(&format!("{}\n", authors.join(", ")));
    }
    let mut meta = vec![p["date"].as_str().unwrap_or("undated").to_string()];
    if let Some(v) = p["venue"].as_str() {
        meta.push(v.to_string());
    }
    meta.push(text(&p["id"]));
    s.push_str(&format!("{}\n", meta.join(" · ")));
    for (_, url) in p["links"].as_object().into_iter().flatten() {
        s.push_str(&format!("{}\n", text(url)));
    }
    s.push_str(&format!("\n{}\n", text(&p["abstract"])));
    for (key, title) in [
        ("related", "Related"),
        ("prior", "Earlier work (--prior)"),
        ("later", "Later work (--later)"),
    ] {
        match p[key].as_array() {
            None => s.push_str(&format!("\n{title}: the paper has no date\n")),
            Some(list) => {
                s.push_str(&format!("\n{title}:\n"));
                if list.is_empty() {
                    s.push_str("  (none in the library)\n");
                }
                for r in list {
                    s.push_str(&format!(
                        "  {:.3}  {:<7}  {}  [{}]\n",
                        r["score"].as_f64().unwrap_or(0.0),
                        r["date"].as_str().unwrap_or("undated"),
                        clip(&text(&r["title"]), 80),
                        text(&r["id"])
                    ));
                }
            }
        }
    }
    out(s.trim_end())
}

/// `papermap match`: read the incoming files, score them against the
/// library (`papermap::triage`), render, and with `--add` store the listed
/// papers.
fn match_command(cfg: &Config, a: &args::MatchArgs) -> Result<()> {
    use papermap::triage::{self, MatchOptions};
    let defaults = MatchOptions::default();
    let opts = MatchOptions {
        top: a.top,
        threshold: a.threshold,
        neighbours: a.neighbours,
        mode: a.mode.into(),
        weight: a.weight,
        like: a.like.clone(),
        not: a.not.clone(),
        collection: a.collection.clone(),
        require: a.require.clone(),
        exclude_terms: a.exclude_terms.clone(),
        threads: a.embed.threads.unwrap_or(defaults.threads).clamp(1, 256),
        ..defaults
    };
    opts.check()?;
    let embed = embed_options(&a.embed, cfg.quiet)?;
    for f in &a.files {
        if !f.exists() {
            bail!("{}: no such file", f.display());
        }
    }
    let ingest = IngestOptions {
        format: a.format.as_deref().map(str::parse).transpose()?,
        strict: a.strict,
        columns: a
            .columns
            .as_deref()
            .map(str::parse)
            .transpose()?
            .unwrap_or_default(),
        ..Default::default()
    };
    let src = open_for_queries(cfg, HnswParams::default().ef_search)?;
    let incoming = triage::read_incoming(&a.files, &ingest)?;
    for f in &incoming.files {
        print_file_notes(f);
    }
    if incoming.papers.is_empty() {
        bail!(
            "no paper could be read from {}",
            a.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let engine = Engine::with_unembedded(&src.lib, src.searcher, &src.missing)?;
    let mut make = embedder_factory(cfg, &a.embed);
    let report = triage::match_papers(&engine, &incoming.papers, &opts, &mut make)?;
    for n in &report.notes {
        eprintln!("papermap: {n}");
    }
    if let Some(path) = &a.html {
        std::fs::write(path, triage::render::html(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        out(&serde_json::to_string_pretty(&report)?)?;
    } else if a.markdown {
        out(triage::render::markdown(&report).trim_end())?;
    } else {
        print_match(&report)?;
    }
    if !cfg.quiet {
        let c = &report.counts;
        eprintln!(
            "matched {} paper(s) against {} library paper(s) in {:.1}s ({} embedded in {:.1}s, {} from the match cache)",
            c.scored, c.reference, c.total_seconds, c.embedded, c.embed_seconds, c.cached
        );
        if let Some(path) = &a.html {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.add {
        drop(engine);
        let add = AddOptions {
            embed,
            write: cfg.write.clone(),
            search: cfg.search.clone(),
            ..Default::default()
        };
        let r = triage::add_matches(&cfg.library, &report.results, &add, &mut make)?;
        if !cfg.quiet {
            let f = r.files.first();
            eprintln!(
                "added {} paper(s) to the library ({} duplicate); embedded {}; {}",
                f.map_or(0, |f| f.new),
                f.map_or(0, |f| f.duplicate),
                r.embed.embedded,
                r.index
                    .as_ref()
                    .map_or("index up to date".to_string(), |i| i.summary())
            );
        }
    }
    Ok(())
}

fn print_match(r: &papermap::triage::MatchReport) -> Result<()> {
    let c = &r.counts;
    let mut s = format!(
        "{} incoming: {} scored, {} in the library, {} filtered out, {} below threshold; against {} of {} library papers\ntopics: {}\n\n {:>3}  {:>5}  {:>5}  {:<7}  {:<20}  title\n",
        c.incoming,
        c.scored,
        c.in_library,
        c.filtered,
        c.below_threshold,
        c.reference,
        c.library,
        r.topics,
        "#",
        "score",
        "best",
        "date",
        "id",
    );
    for m in &r.results {
        s.push_str(&format!(
            " {:>3}  {:>5.3}  {:>5.3}  {:<7}  {:<20}  {}\n",
            m.rank,
            m.score,
            m.best,
            m.paper.date.as_deref().unwrap_or("undated"),
            clip(&m.paper.id, 20),
            clip(&m.paper.title, 80)
        ));
        if !m.why.is_empty() {
            s.push_str(&format!("{:>48}why: {}\n", "", m.why.join(", ")));
        }
        if let Some(t) = &m.topic {
            s.push_str(&format!(
                "{:>48}topic {}: {} ({:.0}%)\n",
                "",
                t.id,
                t.name,
                t.share * 100.0
            ));
        }
        for cl in &m.closest {
            s.push_str(&format!(
                "{:>48}~ {:.3}  {}  {}\n",
                "",
                cl.score,
                clip(&cl.id, 20),
                clip(&cl.title, 60)
            ));
        }
    }
    if r.results.is_empty() {
        s.push_str(" (no incoming paper passed the filters and the threshold)\n");
    }
    if !r.in_library.is_empty() {
        s.push_str("\nalready in the library:\n");
        for p in &r.in_library {
            s.push_str(&format!(
                "  {}  (library: {})\n",
                clip(&p.paper.title, 80),
                p.library_id
            ));
        }
    }
    out(s.trim_end())
}

/// `remove`: every name is resolved first; one unknown name removes nothing
/// (unless --ignore-missing).
fn remove(cfg: &Config, a: &args::RemoveArgs) -> Result<()> {
    pipeline::check_lists(&a.file)?;
    let mut names: Vec<pipeline::RemoveRef> =
        a.ids.iter().map(|s| pipeline::RemoveRef::arg(s)).collect();
    for f in &a.file {
        names.extend(pipeline::read_list(f)?);
    }
    if names.is_empty() {
        bail!("nothing to remove: name papers by id, DOI or arXiv id, or pass --file LIST");
    }
    let opts = pipeline::RemoveOptions {
        write: cfg.write.clone(),
        search: cfg.search.clone(),
        ignore_missing: a.ignore_missing,
    };
    let r = pipeline::remove(&cfg.library, &names, &opts)?;
    for w in &r.warnings {
        eprintln!("papermap: warning: {w}");
    }
    for m in &r.missing {
        eprintln!("papermap: not found (ignored): {m}");
    }
    if cfg.quiet {
        return Ok(());
    }
    if let Some(c) = &r.compacted {
        eprintln!("{}", c.line());
    }
    for (id, title) in &r.removed {
        eprintln!("removed {id}\t{title}");
    }
    eprintln!(
        "removed {} paper(s){}{}",
        r.removed.len(),
        match &r.index {
            Some(ix) => format!("; {}", ix.summary()),
            None if r.not_embedded > 0 => {
                "; index left for `papermap embed` (some papers are not embedded yet)".into()
            }
            None => String::new(),
        },
        if r.repeated > 0 {
            format!("; {} name(s) repeated a paper already named", r.repeated)
        } else {
            String::new()
        }
    );
    Ok(())
}
