//! "Related papers": for a paper (id, DOI, arXiv id, exact or fuzzy title),
//! a free text, or a reading list of positive and negative papers, in either
//! direction of time. The hybrid score is a fixed combination of raw,
//! comparable similarities (no per-query normalisation, so a weak best match
//! looks weak): `weight` x embedding cosine + (1 - `weight`) x TF-IDF cosine,
//! plus a small lean towards work published no later than a query paper.
//! The candidates are the union of the dense and the lexical top lists, and
//! every candidate gets both scores. The constants were fitted on real
//! citations (`scripts/fit-relevance`, reported out of sample). Every result
//! says which shared terms made it related.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use serde::Serialize;

use crate::embed::normalize;
use crate::error::{Error, Result};
use crate::index::{Searcher, dot};
use crate::lexical::{Bm25, QueryTerms, WhyQuery, paper_terms, why_related_doc};
use crate::paper::{PubDate, normalize_title};
use crate::store::Library;
use crate::text;

/// How results are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedding cosine only.
    Dense,
    /// TF-IDF cosine only.
    Lexical,
    /// BM25 with the whole query text as the query: the lexical scorer
    /// before TF-IDF cosine, kept so benchmarks can compare.
    Bm25,
    /// The fused score (default).
    Hybrid,
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dense" => Ok(Mode::Dense),
            "lexical" => Ok(Mode::Lexical),
            "bm25" => Ok(Mode::Bm25),
            "hybrid" => Ok(Mode::Hybrid),
            o => Err(Error::Invalid(format!(
                "unknown mode '{o}' (dense, lexical, bm25, hybrid)"
            ))),
        }
    }
}

/// Which way in time results may lie from a query paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Any,
    /// Only papers first published no later than the query (same month
    /// counts): what it builds on.
    Prior,
    /// Only papers first published no earlier than the query: what built
    /// on it.
    Later,
}

impl FromStr for Direction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "any" => Ok(Direction::Any),
            "prior" => Ok(Direction::Prior),
            "later" => Ok(Direction::Later),
            o => Err(Error::Invalid(format!(
                "unknown direction '{o}' (any, prior, later)"
            ))),
        }
    }
}

/// The dense share of the hybrid score: `weight` x embedding cosine +
/// (1 - `weight`) x TF-IDF cosine, raw scores. Fitted on the citation set
/// (`scripts/fit-relevance`).
pub const DEFAULT_WEIGHT: f32 = 0.4;

/// Added to the hybrid score of a paper first published no later than the
/// query paper. A paper builds on earlier work, so among equally similar
/// papers the earlier one is the likelier reference; the lean is capped so
/// that a clearly more similar later paper still ranks first. Fitted on the
/// citation set (`scripts/fit-relevance`); 0 turns it off.
pub const DEFAULT_EARLIER_LEAN: f32 = 0.02;

/// With `--prior`, added per `ln(1 + years)` a paper precedes the query:
/// among earlier work, established papers are the likelier references
/// (they have had time to become standard). Fitted on the citation set
/// (`scripts/fit-relevance`); 0 turns it off.
pub const DEFAULT_AGE_LEAN: f32 = 0.04;

/// Years after which age adds nothing more to `--prior`'s age lean. On the
/// citation set the share of candidates cited rises to a peak at one to
/// two years before the query and falls after three (0.9% same month, 2.5%
/// at 1-2 years, 2.2% at 3-5, 1.6% beyond): a paper is established after a
/// few years, and an old one is no likelier a reference for being older.
pub const AGE_LEAN_CAP_YEARS: f32 = 3.0;

/// Added to the hybrid score times the share of a paper's title words
/// (weighted by idf) that the query mentions: a paper names the work it
/// builds on ("we extend BERT", "unlike dropout"), so a candidate whose
/// title the query's text spells out is the likelier reference. Fitted on
/// the citation set (`scripts/fit-relevance`); 0 turns it off.
pub const DEFAULT_TITLE_LEAN: f32 = 0.04;

/// Options for a related-papers query.
#[derive(Debug, Clone)]
pub struct RelatedOptions {
    /// Results wanted. Default 10.
    pub k: usize,
    /// Default hybrid.
    pub mode: Mode,
    /// Weight of the dense score in hybrid mode, 0..=1. Default
    /// [`DEFAULT_WEIGHT`].
    pub weight: f32,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    /// Default any.
    pub direction: Direction,
    /// Hybrid bonus for earlier work, 0..=1. Default [`DEFAULT_EARLIER_LEAN`].
    pub earlier_lean: f32,
    /// Hybrid bonus per ln(1 + years earlier) with `Direction::Prior`,
    /// 0..=1. Default [`DEFAULT_AGE_LEAN`].
    pub age_lean: f32,
    /// Hybrid bonus times the share of a paper's title the query mentions,
    /// 0..=1. Default [`DEFAULT_TITLE_LEAN`].
    pub title_lean: f32,
    /// Paper rows never to return (e.g. already read).
    pub exclude: HashSet<usize>,
    /// Whether each result says why it is related (its shared terms);
    /// off where only the ranking counts (evaluation). Default on.
    pub explain: bool,
}

/// Most results one query may ask for.
pub const MAX_K: usize = 10_000;

impl RelatedOptions {
    /// Bounds of every option, checked once for every front end.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_K).contains(&self.k) {
            return Err(Error::Invalid(format!(
                "k must be between 1 and {MAX_K} (got {})",
                self.k
            )));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(Error::Invalid(format!(
                "weight must be between 0 and 1 (got {})",
                self.weight
            )));
        }
        for (name, x) in [
            ("earlier lean", self.earlier_lean),
            ("age lean", self.age_lean),
            ("title lean", self.title_lean),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return Err(Error::Invalid(format!(
                    "{name} must be between 0 and 1 (got {x})"
                )));
            }
        }
        if let (Some(f), Some(t)) = (self.year_from, self.year_to)
            && f > t
        {
            return Err(Error::Invalid(format!("--since {f} is after --until {t}")));
        }
        Ok(())
    }
}

impl Default for RelatedOptions {
    fn default() -> Self {
        RelatedOptions {
            k: 10,
            mode: Mode::Hybrid,
            weight: DEFAULT_WEIGHT,
            year_from: None,
            year_to: None,
            direction: Direction::Any,
            earlier_lean: DEFAULT_EARLIER_LEAN,
            age_lean: DEFAULT_AGE_LEAN,
            title_lean: DEFAULT_TITLE_LEAN,
            exclude: HashSet::new(),
            explain: true,
        }
    }
}

thread_local! {
    /// The lexical score accumulator, reused by the queries of a thread.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The `n` best positive scores of `acc` as (row, score), best first (ties
/// by row), by one pass with a bounded heap: most papers share a word with
/// a query but few can enter its top, so this beats collecting and
/// selecting every positive score.
fn best_scores(acc: &[f32], n: usize) -> Vec<(usize, f32)> {
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;
    /// Higher score is better; on a tie, the lower row.
    #[derive(PartialEq)]
    struct Scored(f32, usize);
    impl Eq for Scored {}
    impl PartialOrd for Scored {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Scored {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
        }
    }
    if n == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(n + 1);
    // The score a paper must beat: 0, then the heap's worst once full (a
    // later row with an equal score loses the tie, so `<=` skips it).
    let mut floor = 0f32;
    for (d, &x) in acc.iter().enumerate() {
        if x <= floor {
            continue;
        }
        heap.push(Reverse(Scored(x, d)));
        if heap.len() > n {
            heap.pop();
        }
        if heap.len() == n {
            floor = heap.peek().map_or(floor, |Reverse(w)| w.0);
        }
    }
    let mut out: Vec<(usize, f32)> = heap
        .into_iter()
        .map(|Reverse(Scored(x, d))| (d, x))
        .collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// What a query string turned out to mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resolved {
    Paper {
        row: usize,
        matched_by: &'static str,
    },
    Text {
        text: String,
    },
    Set {
        positive: Vec<usize>,
        negative: Vec<usize>,
    },
}

/// One related paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Related {
    pub row: usize,
    pub score: f32,
    pub dense: f32,
    pub lexical: f32,
    pub why: Vec<String>,
}

/// Finds the paper a user means: id, DOI, arXiv id, exact title, then a
/// title with small typos (character-level similarity of normalised
/// titles). A query that looks like an id, DOI or arXiv id but names no
/// paper is an error, never a silent free-text search; so are several
/// equally close titles (listed as "did you mean"). Anything else is free
/// text.
pub fn resolve(lib: &Library, input: &str) -> Result<Resolved> {
    let q = input.trim();
    if q.is_empty() {
        return Err(Error::Query("empty query".into()));
    }
    if let Some(row) = lib.index_of(q) {
        return Ok(Resolved::Paper {
            row,
            matched_by: "id",
        });
    }
    let doi = crate::ingest::normalize::clean_doi(q).filter(|_| q.contains("10."));
    let arxiv = crate::ingest::normalize::clean_arxiv(q);
    let probe = crate::paper::Paper {
        title: q.to_string(),
        doi: doi.clone(),
        arxiv: arxiv.clone(),
        ..Default::default()
    };
    if let Some(row) = lib.find_same(&probe) {
        let p = &lib.papers()[row];
        let by = if probe.doi.is_some() && p.doi == probe.doi {
            "doi"
        } else if probe.arxiv.is_some() && p.arxiv == probe.arxiv {
            "arxiv"
        } else {
            "title"
        };
        return Ok(Resolved::Paper {
            row,
            matched_by: by,
        });
    }
    if let Some(a) = arxiv {
        return Err(Error::NotFound(format!(
            "no paper with arXiv id {a} in the library"
        )));
    }
    if let Some(d) = doi.filter(|_| !q.contains(char::is_whitespace)) {
        return Err(Error::NotFound(format!(
            "no paper with DOI {d} in the library"
        )));
    }
    if looks_like_id(q) {
        return Err(Error::NotFound(format!(
            "no paper with id '{q}' in the library (for a free-text search, use more than one word)"
        )));
    }
    if let Some(row) = fuzzy_title(lib, q)? {
        return Ok(Resolved::Paper {
            row,
            matched_by: "fuzzy title",
        });
    }
    Ok(Resolved::Text {
        text: q.to_string(),
    })
}

/// One token shaped like a citation key or record id rather than a word:
/// `vaswani2017attention`, `Smith:2020:ABC`, `pmid:123`, papermap's derived
/// `scaling-laws-precision-6fec`.
fn looks_like_id(q: &str) -> bool {
    if q.contains(char::is_whitespace) || q.chars().count() < 6 {
        return false;
    }
    let digits = q.chars().filter(char::is_ascii_digit).count();
    let letters = q.chars().filter(|c| c.is_alphabetic()).count();
    // author + year + word (BibTeX keys from Zotero, Google Scholar, DBLP)
    let key_style = {
        let b = q.as_bytes();
        let lead = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let year = b[lead..].iter().take_while(|c| c.is_ascii_digit()).count();
        lead >= 2
            && year == 4
            && b[lead + year..]
                .iter()
                .all(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'-')
    };
    // a slug ending in a four-hex-digit hash (papermap's derived ids)
    let derived = q.rsplit_once('-').is_some_and(|(head, tail)| {
        head.len() >= 2
            && tail.len() == 4
            && tail
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && q.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    });
    key_style || derived || (q.contains(':') && digits > 0 && letters > 0)
}

/// Titles this close (1 - edit distance / length, over normalised titles)
/// are the same title with a typo.
const TITLE_SIMILARITY: f32 = 0.9;

/// The paper whose title is within a few typos of `q`: "Difusion" for
/// "Diffusion", "Model" for "Models". Several titles about equally close are
/// an error listing them. Titles are first narrowed by length and shared
/// words, so the edit distance runs on a handful.
fn fuzzy_title(lib: &Library, q: &str) -> Result<Option<usize>> {
    let nq = normalize_title(q);
    let qwords: HashSet<&str> = nq.split(' ').collect();
    if qwords.len() < 3 {
        return Ok(None);
    }
    let qchars: Vec<char> = nq.chars().collect();
    let len = qchars.len() as f32;
    let mut scored: Vec<(f32, usize)> = Vec::new();
    for (i, p) in lib.papers().iter().enumerate() {
        let nt = normalize_title(&p.title);
        let tlen = nt.chars().count() as f32;
        if tlen < len * 0.8 || tlen > len * 1.25 {
            continue;
        }
        let shared = nt.split(' ').filter(|w| qwords.contains(w)).count();
        if 2 * shared < qwords.len() {
            continue;
        }
        let t: Vec<char> = nt.chars().collect();
        let sim = 1.0 - edit_distance(&qchars, &t) as f32 / len.max(tlen);
        if sim >= TITLE_SIMILARITY - 0.05 {
            scored.push((sim, i));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let papers = lib.papers();
    match scored.as_slice() {
        [(best, row), rest @ ..] if *best >= TITLE_SIMILARITY => {
            if rest.first().is_some_and(|(second, _)| best - second < 0.03) {
                let list: Vec<String> = scored
                    .iter()
                    .take(5)
                    .map(|(_, r)| format!("  {}  {}", papers[*r].id, papers[*r].title))
                    .collect();
                return Err(Error::Query(format!(
                    "'{q}' is close to several titles; did you mean one of these (name it by id)?\n{}",
                    list.join("\n")
                )));
            }
            Ok(Some(*row))
        }
        _ => Ok(None),
    }
}

/// Levenshtein distance between two character strings (two rows).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Everything a related query needs, loaded once per process: the dense
/// searcher and the persisted BM25 index. Per-paper terms are computed only
/// for the papers a query touches.
pub struct Engine<'a> {
    pub lib: &'a Library,
    pub searcher: Searcher,
    bm25: Bm25,
    /// Rows whose paper is not embedded yet (their matrix row is zero):
    /// left out of dense search, still found lexically.
    unembedded: Vec<bool>,
    not_embedded: usize,
    /// Rows by a hash of their title (see `twins`).
    by_title: std::sync::OnceLock<HashMap<u64, Vec<u32>>>,
    /// Each row's first publication date, for the time filters (parsed
    /// once, on the first query that filters by time: a filter looks at
    /// thousands of rows).
    dates: std::sync::OnceLock<Vec<Option<PubDate>>>,
    /// Each row's distinct title words as vocabulary ids, tokenized the
    /// first time the title lean looks at the row (a query looks at up to
    /// a few hundred; a server answers many queries from one engine).
    titles: std::sync::OnceLock<Vec<std::sync::OnceLock<Box<[u32]>>>>,
}

impl<'a> Engine<'a> {
    pub fn new(lib: &'a Library, searcher: Searcher) -> Result<Engine<'a>> {
        let bm25 = Bm25::load_or_build(lib, &lib.fingerprint(), false)?;
        Ok(Engine {
            lib,
            searcher,
            bm25,
            unembedded: Vec::new(),
            not_embedded: 0,
            by_title: std::sync::OnceLock::new(),
            dates: std::sync::OnceLock::new(),
            titles: std::sync::OnceLock::new(),
        })
    }

    /// An engine for a library some of whose papers are not embedded yet
    /// (`rows`, e.g. from [`crate::index::Matrix::gather`]): readers answer
    /// from what is there while a writer embeds the rest.
    pub fn with_unembedded(
        lib: &'a Library,
        searcher: Searcher,
        rows: &[usize],
    ) -> Result<Engine<'a>> {
        let mut e = Engine::new(lib, searcher)?;
        if !rows.is_empty() {
            e.unembedded = vec![false; lib.len()];
            for &r in rows {
                e.unembedded[r] = true;
            }
            e.not_embedded = rows.len();
        }
        Ok(e)
    }

    /// Papers left out of dense search because they are not embedded yet.
    pub fn not_embedded(&self) -> usize {
        self.not_embedded
    }

    fn embedded(&self, row: usize) -> bool {
        !self.unembedded.get(row).copied().unwrap_or(false)
    }

    fn terms(&self, row: usize) -> Vec<String> {
        paper_terms(&self.lib.papers()[row])
    }

    /// Adds the title lean to the scores of `out`: only for the papers it
    /// can lift into the top `opts.k` (the bonus is at most
    /// `opts.title_lean`, so a paper that far below the k-th best score
    /// stays out of the top either way). Exact, and a few dozen titles a
    /// query instead of every candidate's.
    fn add_title_lean(&self, out: &mut [Related], q: &QueryTerms<'_>, opts: &RelatedOptions) {
        if opts.title_lean <= 0.0 || out.is_empty() {
            return;
        }
        let mut base: Vec<f32> = out.iter().map(|r| r.score).collect();
        let kth = opts.k.min(base.len()) - 1;
        let bar = *base.select_nth_unstable_by(kth, |a, b| b.total_cmp(a)).1;
        let mentioned = q.distinct_words();
        for r in out.iter_mut() {
            if r.score + opts.title_lean >= bar {
                r.score += opts.title_lean * self.title_mentioned(r.row, &mentioned);
            }
        }
    }

    /// Each result's "why" terms: the query side weighed once.
    fn explain(&self, out: &mut [Related], q: &QueryTerms<'_>) {
        let query = WhyQuery::of(&self.bm25, q);
        for r in out {
            r.why = why_related_doc(&self.bm25, &query, r.row, 4);
        }
    }

    /// Fills the per-paper caches that queries otherwise fill as they go
    /// (publication dates, rows by title, title terms): for a server, whose
    /// first minute of answers was a third slower while they filled.
    pub fn warm(&self) {
        if self.lib.is_empty() {
            return;
        }
        self.date(0);
        self.twins(0);
        for row in 0..self.lib.len() {
            self.title_mentioned(row, &[]);
        }
    }

    /// Paper `row`'s first publication date.
    fn date(&self, row: usize) -> Option<PubDate> {
        self.dates.get_or_init(|| {
            self.lib
                .papers()
                .iter()
                .map(crate::paper::Paper::first_published)
                .collect()
        })[row]
    }

    /// The share of paper `row`'s title words, each weighted by its idf,
    /// that are among `mentioned` (a query's terms as sorted vocabulary
    /// ids): 1 when the query spells out the whole title, 0 when it names
    /// none of it.
    fn title_mentioned(&self, row: usize, mentioned: &[u32]) -> f32 {
        let titles = self.titles.get_or_init(|| {
            std::iter::repeat_with(std::sync::OnceLock::new)
                .take(self.lib.len())
                .collect()
        });
        let title = titles[row].get_or_init(|| {
            self.bm25
                .distinct_ids(&text::terms(&self.lib.papers()[row].title))
                .into_boxed_slice()
        });
        let (mut hit, mut all) = (0f32, 0f32);
        for &t in title.iter() {
            let idf = self.bm25.tfidf_idf(t);
            all += idf;
            if mentioned.binary_search(&t).is_ok() {
                hit += idf;
            }
        }
        if all > 0.0 { hit / all } else { 0.0 }
    }

    /// Rows that are the same paper as `row`: itself and any paper with the
    /// identical embedded text.
    fn twins(&self, row: usize) -> Vec<usize> {
        let papers = self.lib.papers();
        let p = &papers[row];
        let text = p.embed_text();
        // Rows by title, built on first use (a scan of every title per
        // query cost ~1 ms at 100k papers).
        let hash = |t: &str| xxhash_rust::xxh3::xxh3_64(t.as_bytes());
        let by_title = self.by_title.get_or_init(|| {
            let mut m: HashMap<u64, Vec<u32>> = HashMap::with_capacity(papers.len());
            for (i, x) in papers.iter().enumerate() {
                m.entry(hash(&x.title)).or_default().push(i as u32);
            }
            m
        });
        let mut out: Vec<usize> = by_title
            .get(&hash(&p.title))
            .into_iter()
            .flatten()
            .map(|&i| i as usize)
            .filter(|&i| papers[i].title == p.title && papers[i].embed_text() == text)
            .collect();
        if !out.contains(&row) {
            out.push(row);
        }
        out
    }

    /// The date a query is measured against for `direction`: the query
    /// paper's, or for a reading list the newest positive paper's (prior)
    /// or the oldest (later). An error when there is none to measure by.
    fn reference_date(&self, q: &Resolved, direction: Direction) -> Result<Option<PubDate>> {
        let papers = self.lib.papers();
        let date = |r: usize| papers[r].first_published();
        let found = match (q, direction) {
            (_, Direction::Any) => return Ok(None),
            (Resolved::Paper { row, .. }, _) => date(*row),
            (Resolved::Text { .. }, _) => {
                return Err(Error::Query(
                    "--prior and --later need a paper (or a reading list) to measure time from, not a text".into(),
                ));
            }
            (Resolved::Set { positive, .. }, d) => {
                let dates = positive.iter().filter_map(|&r| date(r));
                if d == Direction::Prior {
                    dates.max_by(|a, b| a.cmp_loose(b))
                } else {
                    dates.min_by(|a, b| a.cmp_loose(b))
                }
            }
        };
        match found {
            Some(d) => Ok(Some(d)),
            None => Err(Error::Query(
                "the query paper has no publication date, so nothing can be called prior or later"
                    .into(),
            )),
        }
    }

    /// Related papers for a resolved query. `embed_text` embeds free text
    /// (only called for text queries).
    pub fn related(
        &self,
        q: &Resolved,
        opts: &RelatedOptions,
        embed_text: &mut dyn FnMut(&str) -> Result<Vec<f32>>,
    ) -> Result<Vec<Related>> {
        let mut exclude = opts.exclude.clone();
        let any_vectors = self.not_embedded < self.lib.len();
        let needs_vector = matches!(opts.mode, Mode::Dense | Mode::Hybrid) && any_vectors;
        let (qvec, qterms, neg_terms): (Vec<f32>, Vec<String>, Vec<String>) = match q {
            Resolved::Paper { row, .. } => {
                exclude.extend(self.twins(*row));
                (
                    if self.embedded(*row) && any_vectors {
                        self.searcher.matrix.row(*row).to_vec()
                    } else {
                        Vec::new()
                    },
                    self.terms(*row),
                    Vec::new(),
                )
            }
            Resolved::Text { text: t } => (
                if needs_vector {
                    embed_text(t)?
                } else {
                    Vec::new()
                },
                text::terms(t),
                Vec::new(),
            ),
            Resolved::Set { positive, negative } => {
                if positive.is_empty() {
                    return Err(Error::Query(
                        "a reading-list query needs at least one positive paper".into(),
                    ));
                }
                let dim = self.searcher.matrix.dim;
                // Rocchio: mean of positives minus half the mean of negatives.
                let mut v = vec![0f32; dim];
                for &r in positive {
                    exclude.extend(self.twins(r));
                    for (a, b) in v.iter_mut().zip(self.searcher.matrix.row(r)) {
                        *a += b / positive.len() as f32;
                    }
                }
                for &r in negative {
                    exclude.extend(self.twins(r));
                    for (a, b) in v.iter_mut().zip(self.searcher.matrix.row(r)) {
                        *a -= 0.5 * b / negative.len() as f32;
                    }
                }
                normalize(&mut v);
                let pos: Vec<String> = positive.iter().flat_map(|&r| self.terms(r)).collect();
                let neg: Vec<String> = negative.iter().flat_map(|&r| self.terms(r)).collect();
                (v, pos, neg)
            }
        };
        let reference = self.reference_date(q, opts.direction)?;
        // The time leans apply to a single dated query paper.
        let lean_from = match q {
            Resolved::Paper { row, .. } => self.lib.papers()[*row].first_published(),
            _ => None,
        };
        Ok(self.rank(
            &qvec, &qterms, &neg_terms, &exclude, reference, lean_from, opts,
        ))
    }

    /// Library papers related to a text that is not in the library, given
    /// its vector (empty: no dense side) and its lexical terms (for a paper,
    /// [`paper_terms`], so it is compared with library papers as they are
    /// indexed): what `papermap match` scores each incoming paper with, the
    /// same fused score as [`Engine::related`]. Time filters need a library
    /// paper to measure from, so `opts.direction` must be `Any`.
    pub fn related_to(
        &self,
        qvec: &[f32],
        qterms: &[String],
        opts: &RelatedOptions,
    ) -> Result<Vec<Related>> {
        if opts.direction != Direction::Any {
            return Err(Error::Query(
                "--prior and --later need a library paper to measure time from".into(),
            ));
        }
        let any_vectors = self.not_embedded < self.lib.len();
        let qvec: &[f32] = if any_vectors { qvec } else { &[] };
        Ok(self.rank(qvec, qterms, &[], &opts.exclude, None, None, opts))
    }

    /// The unit TF-IDF vectors of some library papers, computed once so
    /// that many queries can be scored against just these papers
    /// ([`Engine::related_among`]).
    pub fn row_set(&self, rows: &[usize]) -> RowSet {
        RowSet {
            rows: rows.to_vec(),
            tfidf: rows
                .iter()
                .map(|&r| self.bm25.query_vector(&self.terms(r)))
                .collect(),
        }
    }

    /// The best `opts.k` papers of `set` for a query vector and terms, each
    /// scored exactly (every paper of the set, no candidate search) with the
    /// same scores as [`Engine::related_to`]: for a small part of the library
    /// (a reading list, a collection).
    pub fn related_among(
        &self,
        qvec: &[f32],
        qterms: &[String],
        set: &RowSet,
        opts: &RelatedOptions,
    ) -> Vec<Related> {
        let qt = self.bm25.lookup(qterms);
        let q = self.bm25.query_vector_of(&qt);
        let mut out: Vec<Related> = set
            .rows
            .iter()
            .zip(&set.tfidf)
            .filter(|(r, _)| !opts.exclude.contains(r))
            .map(|(&row, doc)| {
                // Each side only where the mode uses it, as `rank` reports them.
                let d = if qvec.is_empty() || !self.embedded(row) || opts.mode == Mode::Lexical {
                    0.0
                } else {
                    dot(self.searcher.matrix.row(row), qvec)
                };
                let l = if opts.mode == Mode::Dense {
                    0.0
                } else {
                    sparse_dot(&q, doc)
                };
                let score = match opts.mode {
                    Mode::Dense => d,
                    // BM25 scores need the whole index; the set is scored by
                    // TF-IDF cosine on the lexical side.
                    Mode::Lexical | Mode::Bm25 => l,
                    Mode::Hybrid => fuse(d, l, opts.weight),
                };
                Related {
                    row,
                    score,
                    dense: d,
                    lexical: l,
                    why: Vec::new(),
                }
            })
            .collect();
        if opts.mode == Mode::Hybrid {
            self.add_title_lean(&mut out, &qt, opts);
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        out.truncate(opts.k);
        if opts.explain {
            self.explain(&mut out, &qt);
        }
        out
    }

    /// The ranking every query shares: candidates from the dense and the
    /// lexical top lists, both scores for each, fused, time leans, "why".
    #[allow(clippy::too_many_arguments)]
    fn rank(
        &self,
        qvec: &[f32],
        qterms: &[String],
        neg_terms: &[String],
        exclude: &HashSet<usize>,
        reference: Option<PubDate>,
        lean_from: Option<PubDate>,
        opts: &RelatedOptions,
    ) -> Vec<Related> {
        let any_vectors = self.not_embedded < self.lib.len();
        let needs_vector = matches!(opts.mode, Mode::Dense | Mode::Hybrid) && any_vectors;
        let papers = self.lib.papers();
        let keep = |r: usize| {
            if exclude.contains(&r) {
                return false;
            }
            let p = &papers[r];
            let years = match (opts.year_from, opts.year_to, p.year) {
                (None, None, _) => true,
                (_, _, None) => false,
                (f, t, Some(y)) => f.is_none_or(|f| y >= f) && t.is_none_or(|t| y <= t),
            };
            // Undated papers are kept (and marked undated by the caller).
            let when = match reference.and_then(|q| self.date(r).map(|c| (q, c))) {
                Some((q, c)) => match opts.direction {
                    Direction::Any => true,
                    Direction::Prior => c.cmp_loose(&q).is_le(),
                    Direction::Later => c.cmp_loose(&q).is_ge(),
                },
                None => true,
            };
            years && when
        };
        let pool = (opts.k * 10).max(100);
        // The query's terms looked up once, for its vector, title lean and "why".
        let qt = self.bm25.lookup(qterms);
        // The dense top, by row.
        let mut dense: Vec<(usize, f32)> = Vec::new();
        if needs_vector && !qvec.is_empty() {
            let keep_dense = |r: usize| self.embedded(r) && keep(r);
            for h in self.searcher.search(qvec, pool, &keep_dense) {
                dense.push((h.row, h.score));
            }
        }
        dense.sort_unstable_by_key(|h| h.0);
        dense.dedup_by_key(|h| h.0);
        let mut rows: Vec<usize> = dense.iter().map(|h| h.0).collect();
        // The lexical score of every paper (the accumulator scores them all
        // anyway): the lexical top's and the dense top's.
        let mut lexical_all: Vec<f32> = Vec::new();
        if opts.mode != Mode::Dense {
            // A buffer kept per thread: a fresh one (one f32 per paper) is
            // new pages from the kernel, zeroed and faulted in on every
            // query (~8% of a query's time at 100k papers).
            let mut acc = SCORES.with(|b| std::mem::take(&mut *b.borrow_mut()));
            acc.clear();
            acc.resize(self.bm25.docs(), 0.0);
            if opts.mode == Mode::Bm25 {
                self.bm25.accumulate(qterms, 1.0, &mut acc);
                if !neg_terms.is_empty() {
                    self.bm25.accumulate(neg_terms, -0.5, &mut acc);
                }
            } else {
                let pos = self.bm25.query_vector_of(&qt);
                let neg = self.bm25.query_vector(neg_terms);
                self.bm25
                    .cosine_scores(&[(&pos, 1.0), (&neg, -0.5)], &mut acc);
            }
            // The top `pool` papers the filters keep: the filters run on the
            // best `want` scores only (not on every matching paper: at 100k
            // papers that was most of a query's time), widening until `pool`
            // survive. Exact: if `pool` of the best `want` survive, no paper
            // below them can enter the top.
            let order =
                |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            let mut want = 2 * pool + exclude.len();
            let mut top = loop {
                let best = best_scores(&acc, want);
                let exhausted = best.len() < want;
                let kept: Vec<(usize, f32)> = best.into_iter().filter(|&(d, _)| keep(d)).collect();
                if kept.len() >= pool || exhausted {
                    break kept;
                }
                want *= 4;
            };
            top.sort_unstable_by(order);
            top.truncate(pool);
            rows.extend(top.iter().map(|t| t.0));
            lexical_all = acc;
        }
        rows.sort_unstable();
        rows.dedup();
        // Both scores for every candidate (in hybrid mode, dense for the
        // lexical-only ones; lexical for all from the accumulator), so the
        // fusion compares like with like.
        let mut out: Vec<Related> = rows
            .into_iter()
            .map(|row| {
                let d = match dense.binary_search_by_key(&row, |h| h.0) {
                    Ok(i) => dense[i].1,
                    Err(_) if opts.mode == Mode::Hybrid && !qvec.is_empty() => {
                        dot(self.searcher.matrix.row(row), qvec)
                    }
                    Err(_) => 0.0,
                };
                let l = lexical_all.get(row).copied().unwrap_or(0.0);
                let score = match opts.mode {
                    Mode::Dense => d,
                    Mode::Lexical | Mode::Bm25 => l,
                    Mode::Hybrid => {
                        let lean = match (lean_from, self.date(row)) {
                            (Some(q), Some(c)) => time_lean(q, c, opts),
                            _ => 0.0,
                        };
                        fuse(d, l, opts.weight) + lean
                    }
                };
                Related {
                    row,
                    score,
                    dense: d,
                    lexical: l,
                    why: Vec::new(),
                }
            })
            .collect();
        if opts.mode == Mode::Hybrid {
            self.add_title_lean(&mut out, &qt, opts);
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        out.truncate(opts.k);
        if opts.explain {
            self.explain(&mut out, &qt);
        }
        SCORES.with(|b| *b.borrow_mut() = lexical_all);
        out
    }
}

/// Library papers with their TF-IDF vectors, for [`Engine::related_among`].
#[derive(Debug, Clone, Default)]
pub struct RowSet {
    rows: Vec<usize>,
    tfidf: Vec<Vec<(u32, f32)>>,
}

impl RowSet {
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }
}

/// Dot product of two sparse vectors sorted by index: the TF-IDF cosine of
/// two unit vectors from [`Bm25::query_vector`].
fn sparse_dot(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0f32);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// The time part of a hybrid score for a candidate published at `c`, for
/// a query paper published at `q`: in either-way search a flat bonus for
/// earlier work; with `--prior` (every candidate earlier) a bonus growing
/// with `ln(1 + years earlier)`; nothing with `--later`.
fn time_lean(q: PubDate, c: PubDate, opts: &RelatedOptions) -> f32 {
    if c.cmp_loose(&q).is_gt() {
        return 0.0;
    }
    match opts.direction {
        Direction::Any => opts.earlier_lean,
        Direction::Prior => {
            let years = (months_between(c, q) as f32 / 12.0).min(AGE_LEAN_CAP_YEARS);
            opts.age_lean * (1.0 + years).ln()
        }
        Direction::Later => 0.0,
    }
}

/// Whole months from `a` to `b` (0 when `b` is not later); an unknown month
/// counts as the same month.
fn months_between(a: PubDate, b: PubDate) -> u32 {
    let m = |d: PubDate, other: PubDate| i64::from(d.month.or(other.month).unwrap_or(1));
    let months = i64::from(b.year - a.year) * 12 + m(b, a) - m(a, b);
    u32::try_from(months.max(0)).unwrap_or(u32::MAX)
}

/// The hybrid score of one candidate from its raw embedding cosine and
/// TF-IDF cosine: both are cosines of unit vectors, on comparable scales
/// for every query, so no per-query normalisation (which would stretch a
/// weak candidate list to look as strong as a good one).
fn fuse(dense: f32, lexical: f32, weight: f32) -> f32 {
    weight * dense + (1.0 - weight) * lexical
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_scores_agree_with_a_full_sort() {
        // Ties, zeros and negatives included; every n from 0 past the end.
        let acc: Vec<f32> = (0..300)
            .map(|i| ((i * 37 % 101) as f32 - 20.0) / 10.0)
            .collect();
        let mut all: Vec<(usize, f32)> = acc
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, x)| *x > 0.0)
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for n in [0, 1, 2, 7, 50, 200, all.len(), all.len() + 5] {
            let want: Vec<(usize, f32)> = all.iter().copied().take(n).collect();
            assert_eq!(best_scores(&acc, n), want, "n = {n}");
        }
    }
    use crate::embed::{EmbedOptions, Embedder, HashEmbedder, embed_library};
    use crate::index::SearchOptions;
    use crate::paper::Paper;
    use crate::store::{WriteOptions, Writer};

    fn library() -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        let items = [
            (
                "g1",
                "Graph neural networks for molecule property prediction",
                "Message passing networks on molecular graphs predict chemical properties.",
                2019,
            ),
            (
                "g2",
                "Molecular graph learning with message passing",
                "We learn molecular representations with graph neural networks and message passing.",
                2021,
            ),
            (
                "v1",
                "Vision transformers for image classification",
                "Transformers applied to image patches classify images.",
                2021,
            ),
            (
                "v2",
                "Image classification with convolutional networks",
                "Deep convolutional networks classify natural images.",
                2015,
            ),
            (
                "d1",
                "Denoising diffusion models for image generation",
                "Diffusion models generate images by denoising.",
                2020,
            ),
        ];
        for (id, t, a, y) in items {
            w.add_paper(Paper {
                id: id.into(),
                title: t.into(),
                abs: a.into(),
                year: Some(y),
                ..Default::default()
            })
            .unwrap();
        }
        w.commit().unwrap();
        let mut e = HashEmbedder::new(256);
        embed_library(
            &mut w,
            &mut e,
            &EmbedOptions {
                progress: false,
                ..Default::default()
            },
        )
        .unwrap();
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        (dir, lib)
    }

    #[test]
    fn fusion_keeps_raw_scores_comparable() {
        // A convex combination: weight 1 is the dense score, 0 the lexical.
        assert_eq!(fuse(0.8, 0.2, 1.0), 0.8);
        assert_eq!(fuse(0.8, 0.2, 0.0), 0.2);
        // No per-query stretching: a weak pair stays weak.
        assert!(fuse(0.3, 0.05, 0.35) < fuse(0.7, 0.4, 0.35) / 2.0);
    }

    #[test]
    fn resolves_ids_titles_and_text() {
        let (_d, lib) = library();
        assert_eq!(
            resolve(&lib, "g2").unwrap(),
            Resolved::Paper {
                row: 1,
                matched_by: "id"
            }
        );
        assert_eq!(
            resolve(
                &lib,
                "graph neural networks for molecule property prediction"
            )
            .unwrap(),
            Resolved::Paper {
                row: 0,
                matched_by: "title"
            }
        );
        assert_eq!(
            resolve(
                &lib,
                "Graph neural networks for molecule property predictions!"
            )
            .unwrap(),
            Resolved::Paper {
                row: 0,
                matched_by: "fuzzy title"
            }
        );
        assert!(matches!(
            resolve(&lib, "protein folding").unwrap(),
            Resolved::Text { .. }
        ));
        // Typos resolve: a dropped letter, a plural.
        assert_eq!(
            resolve(&lib, "Denoising difusion model for image generation").unwrap(),
            Resolved::Paper {
                row: 4,
                matched_by: "fuzzy title"
            }
        );
        // Shaped like an id, DOI or arXiv id but unknown: an error, not text.
        for q in [
            "2401.99999",
            "arXiv:2401.99999",
            "10.1234/nothing.here",
            "vaswani2017attention",
            "scaling-laws-precision-6fec",
        ] {
            let e = resolve(&lib, q).unwrap_err().to_string();
            assert!(e.contains("no paper with"), "{q}: {e}");
        }
        assert!(
            resolve(&lib, "2401.99999")
                .unwrap_err()
                .to_string()
                .contains("arXiv id 2401.99999")
        );
        // Single words and short phrases stay free text.
        for q in ["transformers", "GPT-4", "graph neural networks"] {
            assert!(
                matches!(resolve(&lib, q).unwrap(), Resolved::Text { .. }),
                "{q}"
            );
        }
    }

    #[test]
    fn two_close_titles_ask_which_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), &WriteOptions::default()).unwrap();
        for (id, t) in [
            ("a", "Scaling laws for neural language models"),
            ("b", "Scaling laws for neural language model"),
            ("c", "Something else entirely about graphs"),
        ] {
            w.add_paper(Paper {
                id: id.into(),
                title: t.into(),
                ..Default::default()
            })
            .unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let lib = Library::open(dir.path()).unwrap();
        let e = resolve(&lib, "Scaling laws for neural languag models")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean") && e.contains("  a  ") && e.contains("  b  "),
            "{e}"
        );
    }

    #[test]
    fn scoring_a_set_exactly_agrees_with_the_index_path() {
        // `related_among` (a part of the library, paper by paper) and
        // `related_to` (through the indexes) must give the same scores.
        let (_d, lib) = library();
        let s = Searcher::open(&lib, &SearchOptions::default()).unwrap();
        let engine = Engine::new(&lib, s).unwrap();
        let p = Paper {
            title: "Message passing for molecules".into(),
            abs: "Graph networks predict molecular properties of images.".into(),
            ..Default::default()
        };
        let v = HashEmbedder::new(256)
            .embed(&[&p.embed_text()])
            .unwrap()
            .remove(0);
        let terms = paper_terms(&p);
        let all = engine.row_set(&(0..lib.len()).collect::<Vec<_>>());
        for mode in [Mode::Dense, Mode::Lexical, Mode::Hybrid] {
            let opts = RelatedOptions {
                k: 5,
                mode,
                ..Default::default()
            };
            let a = engine.related_to(&v, &terms, &opts).unwrap();
            let b = engine.related_among(&v, &terms, &all, &opts);
            assert_eq!(a.len(), b.len(), "{mode:?}: {a:?} vs {b:?}");
            for (x, y) in a.iter().zip(&b) {
                assert!((x.score - y.score).abs() < 1e-5, "{mode:?}: {a:?} vs {b:?}");
                assert!((x.lexical - y.lexical).abs() < 1e-5, "{mode:?}");
                assert!((x.dense - y.dense).abs() < 1e-5, "{mode:?}");
            }
            assert_eq!(a[0].row, b[0].row);
        }
        // Time filters need a library paper to measure from.
        let prior = RelatedOptions {
            direction: Direction::Prior,
            ..Default::default()
        };
        assert!(engine.related_to(&v, &terms, &prior).is_err());
    }

    #[test]
    fn title_lean_lifts_a_paper_the_query_names_and_its_pruning_is_exact() {
        let (_d, lib) = library();
        let s = Searcher::open(&lib, &SearchOptions::default()).unwrap();
        let engine = Engine::new(&lib, s).unwrap();
        // "convolutional networks" spells out most of v2's title words
        // (by idf), little of the others'.
        let words: Vec<String> = ["image", "classification", "convolutional", "network"]
            .into_iter()
            .map(String::from)
            .collect();
        let mentioned = engine.bm25.lookup(&words).distinct_words();
        let v2 = engine.title_mentioned(3, &mentioned);
        assert!((v2 - 1.0).abs() < 1e-6, "{v2}");
        let g1 = engine.title_mentioned(0, &mentioned);
        assert!(g1 > 0.0 && g1 < 0.3, "{g1}");
        assert_eq!(engine.title_mentioned(4, &[]), 0.0);

        // Scores with the lean are the scores without it plus exactly
        // lean x share, for whatever k is asked (the pruning to papers
        // within reach of the top k changes nothing).
        let q = Resolved::Text {
            text: "convolutional networks classify molecular images".into(),
        };
        let mut e = HashEmbedder::new(256);
        let mut embed = |t: &str| Ok(e.embed(&[t]).unwrap().remove(0));
        let qterms = text::terms("convolutional networks classify molecular images");
        let qset = engine.bm25.lookup(&qterms).distinct_words();
        let without = |k| RelatedOptions {
            k,
            title_lean: 0.0,
            ..Default::default()
        };
        let with = |k| RelatedOptions {
            k,
            title_lean: 0.5,
            ..Default::default()
        };
        let base = engine.related(&q, &without(5), &mut embed).unwrap();
        let mut expect: Vec<(usize, f32)> = base
            .iter()
            .map(|r| (r.row, r.score + 0.5 * engine.title_mentioned(r.row, &qset)))
            .collect();
        expect.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in 1..=5 {
            let got = engine.related(&q, &with(k), &mut embed).unwrap();
            assert_eq!(got.len(), k.min(expect.len()));
            for (g, x) in got.iter().zip(&expect) {
                assert_eq!(g.row, x.0, "k {k}: {got:?} vs {expect:?}");
                assert!((g.score - x.1).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn a_warmed_engine_answers_as_a_cold_one() {
        let (_d, lib) = library();
        let cold = Engine::new(
            &lib,
            Searcher::open(&lib, &SearchOptions::default()).unwrap(),
        )
        .unwrap();
        let warm = Engine::new(
            &lib,
            Searcher::open(&lib, &SearchOptions::default()).unwrap(),
        )
        .unwrap();
        warm.warm();
        let mut e = HashEmbedder::new(256);
        let mut embed = |t: &str| Ok(e.embed(&[t]).unwrap().remove(0));
        let opts = RelatedOptions {
            k: 4,
            explain: true,
            ..Default::default()
        };
        for row in 0..lib.len() {
            let q = Resolved::Paper {
                row,
                matched_by: "id",
            };
            let a = cold.related(&q, &opts, &mut embed).unwrap();
            let b = warm.related(&q, &opts, &mut embed).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "row {row}");
        }
    }

    #[test]
    fn related_excludes_the_query_and_ranks_same_topic_first() {
        let (_d, lib) = library();
        let s = Searcher::open(&lib, &SearchOptions::default()).unwrap();
        let engine = Engine::new(&lib, s).unwrap();
        let mut e = HashEmbedder::new(256);
        let mut embed = |t: &str| Ok(e.embed(&[t]).unwrap().remove(0));
        for mode in [Mode::Dense, Mode::Lexical, Mode::Hybrid] {
            let opts = RelatedOptions {
                k: 3,
                mode,
                ..Default::default()
            };
            let r = engine
                .related(
                    &Resolved::Paper {
                        row: 0,
                        matched_by: "id",
                    },
                    &opts,
                    &mut embed,
                )
                .unwrap();
            assert!(r.iter().all(|x| x.row != 0), "{mode:?}");
            assert_eq!(r[0].row, 1, "{mode:?}: {r:?}");
        }
        let opts = RelatedOptions {
            k: 5,
            year_from: Some(2020),
            ..Default::default()
        };
        let r = engine
            .related(
                &Resolved::Text {
                    text: "image generation".into(),
                },
                &opts,
                &mut embed,
            )
            .unwrap();
        assert_eq!(r[0].row, 4);
        assert!(r.iter().all(|x| lib.papers()[x.row].year.unwrap() >= 2020));
        assert!(
            r[0].why.iter().any(|w| w.contains("image")),
            "{:?}",
            r[0].why
        );

        let set = Resolved::Set {
            positive: vec![2],
            negative: vec![4],
        };
        let r = engine
            .related(
                &set,
                &RelatedOptions {
                    k: 2,
                    ..Default::default()
                },
                &mut embed,
            )
            .unwrap();
        assert_eq!(r[0].row, 3);
    }
}
