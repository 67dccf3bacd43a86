//! `topics`: the clustering run (cached per library state, k and seed as a
//! derived file) and the user's topic state (`LIB/topics-state.json`: the
//! stored "main" topics with their ids, user names, merges, a pinned k).
//!
//! Two kinds of run. The *main* run is `topics` without `-k` (or with the
//! pinned k) and the state's seed: its ids are matched by membership against
//! the stored main topics, and the result becomes the stored one. Any other
//! run (`-k 8`, another seed) is *exploratory*: its ids are matched against
//! the stored main topics too (so a topic that looks the same keeps its
//! number), but nothing is stored, so it never renumbers the main report.
//! Names and merges are kept by id, so they survive later runs as long as
//! the topic is matched by membership. A run with no stored main run before
//! it (the first) reports no changes at all: there is nothing to compare.
//!
//! `topics-state.json` is read, changed and written under the library's
//! writer lock (`store::lock`), like every other write: the CLI waits for
//! it as `add` does; a read-only server stores the state only when the lock
//! is free at once and otherwise leaves it for a later run.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::assign::{self, Placement, UNASSIGNED};
use crate::cluster::stable::{Change, PriorTopic, assign_ids};
use crate::cluster::{self, KMeansOptions, KScore};
use crate::embed::normalize;
use crate::error::{Error, Result};
use crate::index::Matrix;
use crate::label;
use crate::lexical::Bm25;
use crate::report::{
    Join, LibraryInfo, MapPoint, Member, Params, TopicReport, TopicUpdate, TopicView, round4,
};
use crate::store::derived::{Access, Built, DerivedFile, Refresh, refresh_at};
use crate::store::manifest::{read_checked_json, write_checked_json};
use crate::store::{Library, LockFile};

/// Options for topics.
#[derive(Debug, Clone)]
pub struct TopicOptions {
    /// Number of topics; the pinned k or chosen automatically when None.
    pub k: Option<usize>,
    /// Default 42.
    pub seed: u64,
    /// Keywords per topic. Default 10.
    pub keywords: usize,
    /// Representative papers per topic. Default 5.
    pub representatives: usize,
    /// How a main run takes the library's writer lock to store
    /// `topics-state.json`: `Some(wait)` waits up to `wait` for another
    /// writer, then fails naming it (what the CLI does, with `--lock-wait`);
    /// `None` (the default: what a read-only server needs) stores the state
    /// only if the lock is free at once and otherwise skips storing it.
    pub state_lock_wait: Option<Duration>,
    /// Cluster from scratch even when the stored clustering could be used
    /// or extended (`topics --recluster`). Default false.
    pub recluster: bool,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            k: None,
            seed: 42,
            keywords: 10,
            representatives: 5,
            state_lock_wait: None,
            recluster: false,
        }
    }
}

/// The user's topic state, beside the manifest (not a derived file: names
/// and merges are the user's work and are never rebuilt).
pub const TOPIC_STATE_FILE: &str = "topics-state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    /// The seed of the main run.
    pub seed: u64,
    /// `topics pin K`: the main run's k instead of the automatic choice.
    #[serde(default)]
    pub pinned_k: Option<usize>,
    /// The next id never handed out by a stored run.
    pub next_id: u32,
    /// The stored main run (ids before merges).
    #[serde(default)]
    pub main: Option<StoredRun>,
    /// User names by topic id.
    #[serde(default)]
    pub names: BTreeMap<u32, String>,
    /// `topics merge A B`: B -> A.
    #[serde(default)]
    pub merged_into: BTreeMap<u32, u32>,
}

impl Default for TopicState {
    fn default() -> Self {
        TopicState {
            seed: 42,
            pinned_k: None,
            next_id: 1,
            main: None,
            names: BTreeMap::new(),
            merged_into: BTreeMap::new(),
        }
    }
}

/// The last stored main run: what ids are matched against and what
/// "new / grown / shrunk" compare with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub fingerprint: String,
    pub k: usize,
    pub topics: Vec<PriorTopic>,
    /// How each topic related to the main run stored before this one
    /// (none for the first stored run: there was nothing to compare).
    pub changes: Vec<(u32, Change)>,
}

impl TopicState {
    fn load(lib: &Library) -> TopicState {
        read_checked_json(&lib.root().join(TOPIC_STATE_FILE)).unwrap_or_default()
    }

    fn save(&self, lib: &Library) -> Result<()> {
        write_checked_json(&lib.root().join(TOPIC_STATE_FILE), self)
    }

    /// The id a raw topic id ends up under after the user's merges.
    fn final_id(&self, mut id: u32) -> u32 {
        for _ in 0..=self.merged_into.len() {
            match self.merged_into.get(&id) {
                Some(&to) if to != id => id = to,
                _ => break,
            }
        }
        id
    }
}

/// The clustering of one run, cached per library state, requested k and
/// seed (`derived/topics.json` for the main run, `topics-kK-sS.json` for
/// exploratory ones): a [`DerivedFile`], so it is used when current,
/// extended when papers were appended (or embedded) since (each new paper
/// joins its nearest topic, see `cluster::assign`), and clustered again
/// otherwise or when the library drifted. Ids, names and labels are applied
/// on top each time.
#[derive(Debug, Serialize, Deserialize)]
struct RawTopics {
    /// Bumped whenever clustering or layout changes, so a cache written by
    /// an older papermap is recomputed rather than reused.
    algorithm: u32,
    fingerprint: String,
    /// Papers of the library it covers (those `fingerprint` is of).
    rows: usize,
    requested_k: Option<usize>,
    seed: u64,
    k: usize,
    k_chosen_by: String,
    k_scores: Vec<KScore>,
    inertia: f64,
    /// Cluster of each paper, in library order; `UNASSIGNED` for a paper
    /// that was not embedded (in no topic).
    labels: Vec<u32>,
    /// Map position of each paper.
    xy: Vec<[f32; 2]>,
    /// Up to five most related papers of each paper (rows).
    related: Vec<Vec<u32>>,
    /// Each cluster's name from its keywords when it was clustered (kept
    /// while papers join it by extension).
    names: Vec<String>,
    /// Papers the last full clustering clustered.
    clustered: usize,
    /// Papers that joined by extension since.
    placed: usize,
    /// What new papers are placed with (None: they cannot be; the next
    /// change clusters again).
    placement: Option<Placement>,
    /// What computing this did (in memory only).
    #[serde(skip)]
    update: Option<TopicUpdate>,
}

const TOPICS_ALGORITHM: u32 = 7;

/// The header of a topics file: what [`DerivedFile::peek`] reads (serde
/// skips the rest without building it).
#[derive(Deserialize)]
struct RawHeader {
    fingerprint: String,
    rows: usize,
}

/// What a topics run reads beside the library: its parameters, every
/// paper's vector (a zero row for one not embedded yet) and, on first use,
/// the lexical index.
struct TopicInput<'a> {
    requested_k: Option<usize>,
    seed: u64,
    m: &'a Matrix,
    embedded: &'a [bool],
    lex: OnceCell<Bm25>,
}

impl TopicInput<'_> {
    fn lex(&self, lib: &Library) -> Result<&Bm25> {
        if let Some(l) = self.lex.get() {
            return Ok(l);
        }
        let l = Bm25::load_or_build(lib, &lib.fingerprint(), false)?;
        Ok(self.lex.get_or_init(|| l))
    }
}

impl DerivedFile for RawTopics {
    const FILE: &'static str = "topics.json";
    type Input<'a> = &'a TopicInput<'a>;

    fn peek(path: &Path) -> Option<Built> {
        let h: RawHeader = read_checked_json(path)?;
        Some(Built {
            fingerprint: h.fingerprint,
            rows: h.rows,
        })
    }

    fn load(path: &Path, built: &Built, _: &Library, input: &TopicInput) -> Option<RawTopics> {
        let r: RawTopics = read_checked_json(path)?;
        let valid = r.algorithm == TOPICS_ALGORITHM
            && r.fingerprint == built.fingerprint
            && r.rows == built.rows
            && r.requested_k == input.requested_k
            && r.seed == input.seed
            && r.labels.len() == r.rows
            && r.xy.len() == r.rows
            && r.related.len() == r.rows
            && r.labels
                .iter()
                .all(|&l| l == UNASSIGNED || (l as usize) < r.k)
            && r.names.len() == r.k
            && r.placement.as_ref().is_none_or(|p| p.k() == r.k);
        valid.then_some(r)
    }

    fn build(lib: &Library, input: &TopicInput) -> Result<RawTopics> {
        RawTopics::cluster(lib, input)
    }

    fn extend(self, from: usize, lib: &Library, input: &TopicInput) -> Result<RawTopics> {
        let _ = from; // every paper in no topic is looked at, appended or not
        self.grow(lib, input)
    }

    fn save(&self, path: &Path, _: &str) -> Result<()> {
        write_checked_json(path, self)
    }

    /// Papers left out as not embedded that are embedded now.
    fn pending(&self, _: &Library, input: &TopicInput) -> bool {
        self.labels
            .iter()
            .zip(input.embedded)
            .any(|(&l, &e)| l == UNASSIGNED && e)
    }
}

fn cache_name(requested_k: Option<usize>, seed: u64, main: bool) -> String {
    if main {
        RawTopics::FILE.into()
    } else {
        match requested_k {
            Some(k) => format!("topics-k{k}-s{seed}.json"),
            None => format!("topics-auto-s{seed}.json"),
        }
    }
}

/// Every paper's vector for topics and the rows of papers not embedded yet
/// (a zero row each). A current derived matrix means every paper is
/// embedded; otherwise the library must have its vectors loaded.
fn topic_vectors(lib: &Library) -> (Matrix, Vec<usize>) {
    if let Some(m) = Matrix::load_current(lib) {
        return (m, Vec::new());
    }
    let (m, missing) = Matrix::gather(lib, lib.dim().max(1));
    if missing.is_empty() {
        // Extends or saves the matrix for the next run (best effort).
        if let Ok(saved) = Matrix::load_or_build(lib, &lib.fingerprint()) {
            return (saved, missing);
        }
    }
    (m, missing)
}

/// Computes topics, or reuses the cached clustering when the library and
/// the parameters are unchanged, or extends it with the papers added since;
/// ids, names and merges come from the topic state (see the module doc).
/// Papers not embedded yet are in no topic (`TopicReport::not_embedded`).
pub fn topics(lib: &Library, opts: &TopicOptions) -> Result<TopicReport> {
    let state = TopicState::load(lib);
    let main = is_main(&state, opts);
    let requested_k = opts.k.or(if main { state.pinned_k } else { None });
    let path = lib
        .derived_dir()
        .join(cache_name(requested_k, opts.seed, main));
    let (m, missing) = topic_vectors(lib);
    if lib.is_empty() {
        return Err(Error::Empty(
            "the library is empty; add papers first".into(),
        ));
    }
    if missing.len() == lib.len() {
        // Nothing to cluster yet; the stored topics are left alone.
        return Ok(empty_report(lib, opts.seed));
    }
    let mut embedded = vec![true; lib.len()];
    missing.iter().for_each(|&r| embedded[r] = false);
    let input = TopicInput {
        requested_k,
        seed: opts.seed,
        m: &m,
        embedded: &embedded,
        lex: OnceCell::new(),
    };
    std::fs::create_dir_all(lib.derived_dir()).map_err(|e| Error::io(lib.derived_dir(), e))?;
    let before = RawTopics::peek(&path);
    let (mut raw, how) = if opts.recluster {
        let r = RawTopics::cluster(lib, &input)?;
        // As a reader: a read-only library still answers.
        let _ = r.save(&path, "");
        (r, Refresh::Rebuilt)
    } else {
        refresh_at::<RawTopics>(&path, lib, &input, Access::Reader)?
    };
    let update = match how {
        // (Topics are clustered again after a removal, never shrunk.)
        Refresh::Current | Refresh::Shrunk { .. } => None,
        // Nothing joined (only papers not embedded yet were added): the
        // note about those says it all.
        Refresh::Extended { .. } => raw
            .update
            .take()
            .filter(|u| !matches!(u, TopicUpdate::Extended { papers: 0, .. })),
        Refresh::Rebuilt => Some(TopicUpdate::Clustered {
            papers: raw.clustered,
            reason: if opts.recluster {
                "requested with --recluster".into()
            } else {
                why_clustered(before.as_ref(), lib)
            },
            first: before.is_none(),
        }),
    };
    let not_embedded = missing.len();
    if !main {
        // Exploratory: matched against the stored run, nothing stored.
        return finish(lib, &m, &raw, &mut state.clone(), false, opts).map(|r| TopicReport {
            update,
            not_embedded,
            ..r
        });
    }
    // Read-modify-write of the state under the writer lock; it is read
    // again under the lock, as another process may have stored a run or a
    // name meanwhile (a changed seed or pin makes this run exploratory).
    let lock = state_lock(lib, opts.state_lock_wait)?;
    if let Some(lock) = &lock {
        // A killed run's half-written topics cache, for one.
        lib.remove_dead_temp_files(lock);
    }
    let mut state = TopicState::load(lib);
    let main = is_main(&state, opts) && requested_k == opts.k.or(state.pinned_k);
    let before = state.clone();
    let report = finish(lib, &m, &raw, &mut state, main, opts)?;
    if main && state != before && lock.is_some() {
        state.save(lib)?;
    }
    Ok(TopicReport {
        update,
        not_embedded,
        ..report
    })
}

/// Why a clustering was computed from scratch, for the user.
fn why_clustered(before: Option<&Built>, lib: &Library) -> String {
    match before {
        None => "no stored clustering".into(),
        Some(b) if b.rows <= lib.len() && lib.prefix_fingerprint(b.rows) == b.fingerprint => {
            "the stored clustering was made with other settings or by another version".into()
        }
        Some(_) => "papers were edited or removed since the last clustering".into(),
    }
}

/// The report of a library none of whose papers is embedded yet.
fn empty_report(lib: &Library, seed: u64) -> TopicReport {
    TopicReport {
        generator: format!("papermap {}", env!("CARGO_PKG_VERSION")),
        run: "main".into(),
        library: LibraryInfo {
            papers: lib.len(),
            model: lib
                .manifest()
                .model
                .as_ref()
                .map_or(String::new(), |m| m.id.clone()),
            fingerprint: lib.fingerprint(),
        },
        params: Params {
            k: 0,
            seed,
            k_chosen_by: "none".into(),
            k_scores: Vec::new(),
            inertia: 0.0,
            pinned: false,
        },
        warnings: Vec::new(),
        not_embedded: lib.len(),
        update: None,
        topics: Vec::new(),
        hierarchy: Vec::new(),
        map: Vec::new(),
    }
}

fn is_main(state: &TopicState, opts: &TopicOptions) -> bool {
    opts.seed == state.seed && opts.k.is_none_or(|k| Some(k) == state.pinned_k)
}

/// The library's writer lock for a change to the topic state: waited for
/// up to `wait` (an error naming the holder after it), or with `None` taken
/// only if free at once (`Ok(None)` when it is not: the caller skips the
/// write).
fn state_lock(lib: &Library, wait: Option<Duration>) -> Result<Option<LockFile>> {
    match wait {
        Some(w) => LockFile::acquire(lib.root(), w).map(Some),
        None => Ok(LockFile::acquire(lib.root(), Duration::ZERO).ok()),
    }
}

/// Whether the main run's cached clustering matches the library as it is.
pub fn topics_current(lib: &Library) -> bool {
    read_checked_json::<RawTopics>(&lib.derived_dir().join(RawTopics::FILE)).is_some_and(|r| {
        r.algorithm == TOPICS_ALGORITHM && r.fingerprint == lib.fingerprint() && r.rows == lib.len()
    })
}

/// `topics rename ID NAME`: names a topic of the stored main run. `wait`:
/// how long to wait for another writer (then an error naming it).
pub fn rename_topic(lib: &Library, id: u32, name: &str, wait: Duration) -> Result<TopicReport> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("a topic name cannot be empty".into()));
    }
    let state = {
        check_main_ids(lib, &[id], wait)?;
        let _lock = LockFile::acquire(lib.root(), wait)?;
        let mut state = TopicState::load(lib);
        state.names.insert(id, name.to_string());
        state.save(lib)?;
        state
    };
    topics(lib, &main_options(&state, wait))
}

/// `topics merge INTO OTHER...`: OTHER's papers join INTO from now on (in
/// this and every later main run; INTO keeps its id and name).
pub fn merge_topics(
    lib: &Library,
    into: u32,
    others: &[u32],
    wait: Duration,
) -> Result<TopicReport> {
    if others.is_empty() || others.contains(&into) {
        return Err(Error::Invalid(
            "merge needs a topic and at least one other topic to merge into it".into(),
        ));
    }
    check_main_ids(lib, &[&[into], others].concat(), wait)?;
    let lock = LockFile::acquire(lib.root(), wait)?;
    let mut state = TopicState::load(lib);
    for &o in others {
        // Whatever was merged into `o` follows it.
        for to in state.merged_into.values_mut() {
            if *to == o {
                *to = into;
            }
        }
        state.merged_into.insert(o, into);
        state.names.remove(&o);
    }
    state.save(lib)?;
    drop(lock);
    topics(lib, &main_options(&state, wait))
}

/// `topics pin K` (or `None` to go back to the automatic choice).
pub fn pin_k(lib: &Library, k: Option<usize>, wait: Duration) -> Result<TopicReport> {
    if let Some(k) = k
        && (k == 0 || k > lib.len())
    {
        return Err(Error::Invalid(format!(
            "cannot pin k = {k} for {} papers (k must be between 1 and the number of papers)",
            lib.len()
        )));
    }
    let state = {
        let _lock = LockFile::acquire(lib.root(), wait)?;
        let mut state = TopicState::load(lib);
        state.pinned_k = k;
        state.save(lib)?;
        state
    };
    topics(lib, &main_options(&state, wait))
}

fn main_options(state: &TopicState, wait: Duration) -> TopicOptions {
    TopicOptions {
        seed: state.seed,
        state_lock_wait: Some(wait),
        ..Default::default()
    }
}

/// Runs the main run and checks that every id is one of its topics.
fn check_main_ids(lib: &Library, ids: &[u32], wait: Duration) -> Result<()> {
    let report = topics(lib, &main_options(&TopicState::load(lib), wait))?;
    for &id in ids {
        if !report.topics.iter().any(|t| t.id == id) {
            let known: Vec<String> = report.topics.iter().map(|t| t.id.to_string()).collect();
            return Err(Error::Invalid(format!(
                "no topic {id} in the stored report (topics: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// The vectors topics are clustered in: see `cluster::features`.
pub fn topic_space(lib: &Library, m: &Matrix) -> Result<(Vec<f32>, usize)> {
    let lex = crate::lexical::Bm25::load_or_build(lib, &lib.fingerprint(), false)?;
    let docs: Vec<Vec<(u32, f32)>> = lib
        .papers()
        .iter()
        .map(|p| lex.tfidf_vector(&crate::lexical::paper_terms(p)))
        .collect();
    Ok(cluster::features::topic_space(
        m.as_slice(),
        m.dim,
        &docs,
        &cluster::features::FeatureOptions::default(),
    ))
}

impl RawTopics {
    /// A full clustering of the embedded papers.
    fn cluster(lib: &Library, input: &TopicInput) -> Result<RawTopics> {
        let n = lib.len();
        let rows: Vec<usize> = (0..n).filter(|&r| input.embedded[r]).collect();
        if rows.is_empty() {
            return Err(Error::Empty(
                "no paper is embedded yet; topics need vectors (`papermap embed`)".into(),
            ));
        }
        let m = input.m;
        let dim = m.dim;
        let dense: std::borrow::Cow<[f32]> = if rows.len() == n {
            m.as_slice().into()
        } else {
            rows.iter()
                .flat_map(|&r| m.row(r).iter().copied())
                .collect::<Vec<f32>>()
                .into()
        };
        let lex = input.lex(lib)?;
        let papers = lib.papers();
        // TF-IDF rows keyed by the term's text (numbered here; the lexical
        // index renumbers its terms as it grows, and the basis stored for
        // extension must outlive that), in the text's order: the order of
        // the freshly built lexical index, so the SVD sees what it saw when
        // rows came from `Bm25::tfidf_vector`.
        let mut names: Vec<String> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let docs: Vec<Vec<(u32, f32)>> = rows
            .iter()
            .map(|&r| {
                let weights = tfidf_by_term(lex, &papers[r]);
                weights
                    .into_iter()
                    .map(|(t, w)| {
                        let id = match ids.get(t.as_str()) {
                            Some(&id) => id,
                            None => {
                                let id = names.len() as u32;
                                ids.insert(t.clone(), id);
                                names.push(t);
                                id
                            }
                        };
                        (id, w)
                    })
                    .collect()
            })
            .collect();
        drop(ids);
        let seed = input.seed;
        let space = cluster::features::topic_space_with_basis(
            &dense,
            dim,
            &docs,
            &cluster::features::FeatureOptions::default(),
        );
        drop(docs);
        let (k, k_scores, chosen_by) = match input.requested_k {
            Some(k) => (k, Vec::new(), "user"),
            None => {
                let (k, s) = cluster::choose_k(&space.rows, space.dim, seed)?;
                (k, s, "stability")
            }
        };
        let c = cluster::kmeans(&space.rows, space.dim, &KMeansOptions::new(k, seed))?;
        let placement = space.basis.as_ref().map(|b| {
            let terms = b
                .terms
                .iter()
                .map(|&t| std::mem::take(&mut names[t as usize]))
                .collect();
            Placement::new(dim, b, terms, &c.centroids, &space.plain, &c.labels)
        });
        drop(names);
        let lay = cluster::layout::layout(&space.rows, space.dim, &c.labels, seed)?;
        let mut by_row = vec![usize::MAX; n];
        for (i, &r) in rows.iter().enumerate() {
            by_row[r] = c.labels[i];
        }
        let names = label::keywords_weighted(papers, &by_row, k, TopicOptions::default().keywords)
            .iter()
            .map(|kw| label::name(&kw.iter().map(|x| x.0.clone()).collect::<Vec<_>>()))
            .collect();
        let mut labels = vec![UNASSIGNED; n];
        let mut xy = vec![[0f32; 2]; n];
        let mut related = vec![Vec::new(); n];
        for (i, &r) in rows.iter().enumerate() {
            labels[r] = c.labels[i] as u32;
            xy[r] = lay.xy[i];
            related[r] = lay.related[i]
                .iter()
                .map(|&j| rows[j as usize] as u32)
                .collect();
        }
        Ok(RawTopics {
            algorithm: TOPICS_ALGORITHM,
            fingerprint: lib.fingerprint(),
            rows: n,
            requested_k: input.requested_k,
            seed,
            k,
            k_chosen_by: chosen_by.into(),
            k_scores,
            inertia: (c.inertia * 1e4).round() / 1e4,
            labels,
            xy,
            related,
            names,
            clustered: rows.len(),
            placed: 0,
            placement,
            update: None,
        })
    }

    /// The papers in no topic that are embedded now (appended since, or
    /// left out before) join their nearest topic; the others keep theirs.
    /// Clusters again instead when the library drifted (`cluster::assign`).
    fn grow(mut self, lib: &Library, input: &TopicInput) -> Result<RawTopics> {
        let n = lib.len();
        self.labels.resize(n, UNASSIGNED);
        self.xy.resize(n, [0.0, 0.0]);
        self.related.resize(n, Vec::new());
        let todo: Vec<usize> = (0..n)
            .filter(|&r| self.labels[r] == UNASSIGNED && input.embedded[r])
            .collect();
        let again = |reason: String| -> Result<RawTopics> {
            let mut r = RawTopics::cluster(lib, input)?;
            r.update = Some(TopicUpdate::Clustered {
                papers: r.clustered,
                reason,
                first: false,
            });
            Ok(r)
        };
        if todo.is_empty() {
            // Only papers not embedded yet were added: nothing to place.
            return Ok(self.covering(lib, 0, 0, 0.0));
        }
        if let Some(d) = assign::share_drift(self.clustered, self.placed + todo.len()) {
            return again(format!("drift: {d}"));
        }
        let m = input.m;
        let decoded = self.placement.as_ref().and_then(|p| {
            let ok = p.dense_dim == m.dim && p.k() == self.k;
            ok.then(|| p.decode()).flatten().map(|d| (p, d))
        });
        let Some((placement, (basis, index))) = decoded else {
            return again("the stored clustering cannot take new papers".into());
        };
        let lex = input.lex(lib)?;
        let papers = lib.papers();
        let placed: Vec<(usize, f32)> = todo
            .iter()
            .map(|&r| {
                let mut lexical: Vec<(usize, f32)> = tfidf_by_term(lex, &papers[r])
                    .into_iter()
                    .filter_map(|(t, w)| index.get(t.as_str()).map(|&i| (i, w)))
                    .collect();
                lexical.sort_unstable_by_key(|x| x.0);
                placement.place(&basis, m.row(r), &lexical)
            })
            .collect();
        let baseline = placement.baseline;
        let distances: Vec<f32> = placed.iter().map(|x| x.1).collect();
        if let Some(d) = assign::distance_drift(&distances, baseline) {
            return again(format!("drift: {d}"));
        }
        self.place_on_map(m, &todo, &placed);
        for (&r, &(t, _)) in todo.iter().zip(&placed) {
            self.labels[r] = t as u32;
        }
        let mut joined: Vec<usize> = placed.iter().map(|x| x.0).collect();
        joined.sort_unstable();
        joined.dedup();
        self.placed += todo.len();
        let ratio = if distances.is_empty() || baseline <= 0.0 {
            0.0
        } else {
            distances.iter().sum::<f32>() / distances.len() as f32 / baseline
        };
        Ok(self.covering(lib, todo.len(), joined.len(), round4(ratio)))
    }

    /// This clustering, stamped with the library's state.
    fn covering(mut self, lib: &Library, papers: usize, topics: usize, ratio: f32) -> RawTopics {
        self.fingerprint = lib.fingerprint();
        self.rows = lib.len();
        self.update = Some(TopicUpdate::Extended {
            papers,
            topics,
            distance_ratio: ratio,
        });
        self
    }

    /// Map positions and related papers of the `todo` rows, placed in
    /// topics `placed`: their five most similar papers (by embedding) among
    /// up to 2,000 of the topic's members, the position a similarity-weighted
    /// mean of theirs (as the layout places papers beyond its sample).
    fn place_on_map(&mut self, m: &Matrix, todo: &[usize], placed: &[(usize, f32)]) {
        const CANDIDATES: usize = 2_000;
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.k];
        for (r, &l) in self.labels.iter().enumerate() {
            if l != UNASSIGNED {
                members[l as usize].push(r);
            }
        }
        for ms in &mut members {
            if ms.len() > CANDIDATES {
                let step = ms.len().div_ceil(CANDIDATES);
                *ms = ms.iter().step_by(step).copied().collect();
            }
        }
        for (&r, &(t, _)) in todo.iter().zip(placed) {
            let q = m.row(r);
            let mut sims: Vec<(f32, usize)> = members[t]
                .iter()
                .map(|&j| (crate::index::dot(q, m.row(j)), j))
                .collect();
            sims.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            sims.truncate(5);
            let Some(&(best, _)) = sims.first() else {
                continue;
            };
            let (mut sx, mut sy, mut sw) = (0f32, 0f32, 0f32);
            for &(c, j) in &sims {
                let w = ((c - best) / 0.02).exp();
                sx += w * self.xy[j][0];
                sy += w * self.xy[j][1];
                sw += w;
            }
            self.xy[r] = [sx / sw, sy / sw];
            self.related[r] = sims.iter().map(|&(_, j)| j as u32).collect();
        }
    }
}

/// A paper's TF-IDF weights by term text, sorted by text (the weights of
/// `Bm25::tfidf_vector`: sublinear tf times the smooth idf, unit length).
fn tfidf_by_term(lex: &Bm25, p: &crate::paper::Paper) -> Vec<(String, f32)> {
    let mut counts: HashMap<String, f32> = HashMap::new();
    for t in crate::lexical::paper_terms(p) {
        *counts.entry(t).or_default() += 1.0;
    }
    let mut v: Vec<(String, f32)> = counts
        .into_iter()
        .filter(|(t, _)| lex.df(t) > 0)
        .map(|(t, tf)| {
            let w = (1.0 + tf.ln()) * lex.idf_tfidf(&t);
            (t, w)
        })
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|(_, w)| *w /= norm);
    }
    v
}

/// Ids, merges, names, keywords, representatives, time and hierarchy on top
/// of a clustering. Updates `state` when this is the main run.
fn finish(
    lib: &Library,
    m: &Matrix,
    raw: &RawTopics,
    state: &mut TopicState,
    main: bool,
    opts: &TopicOptions,
) -> Result<TopicReport> {
    let papers = lib.papers();
    let mut clusters: Vec<Vec<usize>> = vec![Vec::new(); raw.k];
    for (row, &l) in raw.labels.iter().enumerate() {
        if l != UNASSIGNED {
            clusters[l as usize].push(row);
        }
    }
    let in_topics: usize = clusters.iter().map(Vec::len).sum();
    // The raw cluster each kept cluster is (for the names stored with it).
    let raw_index: Vec<usize> = (0..raw.k).filter(|&c| !clusters[c].is_empty()).collect();
    clusters.retain(|c| !c.is_empty());
    let member_ids: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| c.iter().map(|&r| papers[r].id.clone()).collect())
        .collect();
    let prior: &[PriorTopic] = state.main.as_ref().map_or(&[], |s| &s.topics);
    let first = state.main.is_none();
    let assigned = assign_ids(prior, &member_ids, state.next_id);
    // Nothing stored before: every topic would be "new", which says nothing.
    let mut ids: Vec<(u32, Option<Change>)> = assigned
        .iter()
        .map(|&(id, ch)| (id, (!first).then_some(ch)))
        .collect();
    // The same papers in the same clustering (papers embedded since make it
    // a new run even though the library's fingerprint is the same).
    let unchanged = state.main.as_ref().is_some_and(|s| {
        s.fingerprint == raw.fingerprint
            && s.k == raw.k
            && s.topics.iter().map(|t| t.members.len()).sum::<usize>() == in_topics
    });
    if main && unchanged {
        // The same run again: report the changes it had when it was stored.
        let stored: HashMap<u32, Change> = state
            .main
            .as_ref()
            .map_or_else(HashMap::new, |s| s.changes.iter().copied().collect());
        for (id, ch) in &mut ids {
            *ch = stored.get(id).copied();
        }
    }
    if main && !unchanged {
        state.next_id = ids
            .iter()
            .map(|x| x.0 + 1)
            .max()
            .unwrap_or(1)
            .max(state.next_id);
        state.main = Some(StoredRun {
            fingerprint: raw.fingerprint.clone(),
            k: raw.k,
            topics: ids
                .iter()
                .zip(&member_ids)
                .map(|(&(id, _), ms)| PriorTopic {
                    id,
                    members: ms.clone(),
                })
                .collect(),
            changes: ids
                .iter()
                .filter_map(|&(id, ch)| ch.map(|c| (id, c)))
                .collect(),
        });
    }
    // Merges: clusters whose ids end up under the same id become one topic;
    // it reports the change of the topic it was merged into (a user's merge
    // is not news on every run).
    let mut groups: BTreeMap<u32, (Vec<usize>, Option<Change>, usize)> = BTreeMap::new();
    for (ci, &(id, ch)) in ids.iter().enumerate() {
        let to = state.final_id(id);
        let g = groups.entry(to).or_insert((Vec::new(), ch, 0));
        g.0.extend(&clusters[ci]);
        g.2 += 1;
        if id == to {
            g.1 = ch;
        }
    }
    let group_ids: Vec<u32> = groups.keys().copied().collect();
    let g = group_ids.len();
    // A topic that is one raw cluster keeps the name it got when it was
    // clustered: papers joining it later refresh its keywords, not its name.
    let stored_name: HashMap<u32, &str> = ids
        .iter()
        .enumerate()
        .filter_map(|(ci, &(id, _))| {
            let to = state.final_id(id);
            let name = raw.names.get(raw_index[ci])?;
            (groups[&to].2 == 1 && !name.is_empty()).then_some((to, name.as_str()))
        })
        .collect();
    // Papers in no topic get a label past the last group.
    let mut labels = vec![usize::MAX; papers.len()];
    for (gi, (rows, _, _)) in groups.values().enumerate() {
        for &r in rows {
            labels[r] = gi;
        }
    }
    let keywords = label::keywords_weighted(papers, &labels, g, opts.keywords);
    // Unit centroids of the embeddings: distances and similarities are cosines.
    let mut unit = vec![vec![0f32; m.dim]; g];
    for (row, &l) in labels.iter().enumerate() {
        if l == usize::MAX {
            continue;
        }
        for (u, &v) in unit[l].iter_mut().zip(m.row(row)) {
            *u += v;
        }
    }
    unit.iter_mut().for_each(|v| normalize(v));
    let names: Vec<String> = group_ids
        .iter()
        .zip(&keywords)
        .map(|(id, kw)| {
            state.names.get(id).cloned().unwrap_or_else(|| {
                stored_name.get(id).map_or_else(
                    || label::name(&kw.iter().map(|x| x.0.clone()).collect::<Vec<_>>()),
                    |n| n.to_string(),
                )
            })
        })
        .collect();
    let years = crate::report::YearSpan::of(papers);
    let mut topics: Vec<TopicView> = groups
        .iter()
        .enumerate()
        .map(|(gi, (&id, (rows, change, _)))| {
            let mut members: Vec<Member> = rows
                .iter()
                .map(|&row| Member {
                    id: papers[row].id.clone(),
                    title: papers[row].title.clone(),
                    year: papers[row].year,
                    distance: round4(1.0 - crate::index::dot(m.row(row), &unit[gi])),
                    row,
                })
                .collect();
            members.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
            let mut similar: Vec<(u32, f32)> = (0..g)
                .filter(|&o| o != gi)
                .map(|o| (group_ids[o], round4(crate::index::dot(&unit[gi], &unit[o]))))
                .collect();
            similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            similar.truncate(3);
            let per_year = years.counts(rows.iter().map(|&r| papers[r].year));
            TopicView {
                id,
                name: names[gi].clone(),
                named_by_user: state.names.contains_key(&id),
                keywords: keywords[gi].iter().map(|x| x.0.clone()).collect(),
                weights: keywords[gi].iter().map(|x| round4(x.1)).collect(),
                size: rows.len(),
                change: *change,
                trend: years.trend(&per_year),
                years: per_year,
                representatives: members.iter().take(opts.representatives).cloned().collect(),
                papers: members,
                similar,
            }
        })
        .collect();
    topics.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    // The map holds the papers in topics; related papers are map indices.
    let mut at = vec![u32::MAX; papers.len()];
    let on_map: Vec<usize> = (0..papers.len())
        .filter(|&r| labels[r] != usize::MAX)
        .collect();
    for (i, &r) in on_map.iter().enumerate() {
        at[r] = i as u32;
    }
    let map = on_map
        .iter()
        .map(|&row| {
            let p = raw.xy[row];
            MapPoint {
                id: papers[row].id.clone(),
                topic: group_ids[labels[row]],
                x: round4(p[0]),
                y: round4(p[1]),
                related: raw.related[row]
                    .iter()
                    .filter_map(|&j| at.get(j as usize).copied().filter(|&i| i != u32::MAX))
                    .collect(),
            }
        })
        .collect();
    let hierarchy = hierarchy(
        &group_ids,
        &unit,
        &groups.values().map(|x| x.0.len()).collect::<Vec<_>>(),
    );
    let mut warnings = Vec::new();
    if raw.k_chosen_by != "user"
        && let (Some(first), Some(last)) = (raw.k_scores.first(), raw.k_scores.last())
        && first.k != last.k
        && (raw.k == first.k || raw.k == last.k)
    {
        warnings.push(format!(
            "the automatic k ({}) is at the edge of the range tried ({}..={}): the library may \
             have a clearer structure outside it; try `topics -k` with other values or pin one",
            raw.k, first.k, last.k
        ));
    }
    Ok(TopicReport {
        generator: format!("papermap {}", env!("CARGO_PKG_VERSION")),
        run: if main { "main" } else { "exploratory" }.into(),
        library: LibraryInfo {
            papers: papers.len(),
            model: lib
                .manifest()
                .model
                .as_ref()
                .map_or(String::new(), |m| m.id.clone()),
            fingerprint: raw.fingerprint.clone(),
        },
        params: Params {
            k: raw.k,
            seed: raw.seed,
            k_chosen_by: raw.k_chosen_by.clone(),
            k_scores: raw.k_scores.clone(),
            inertia: raw.inertia,
            pinned: main && state.pinned_k.is_some(),
        },
        warnings,
        not_embedded: 0,
        update: None,
        topics,
        hierarchy,
        map,
    })
}

/// Agglomerative tree over topic centroids (centroid linkage on cosine,
/// size-weighted means): each step joins the two most similar nodes.
fn hierarchy(ids: &[u32], unit: &[Vec<f32>], sizes: &[usize]) -> Vec<Join> {
    let mut nodes: Vec<(String, Vec<f32>, usize)> = ids
        .iter()
        .zip(unit)
        .zip(sizes)
        .map(|((id, u), &s)| {
            (
                format!("t{id}"),
                u.iter().map(|v| v * s as f32).collect(),
                s,
            )
        })
        .collect();
    let cos = |a: &[f32], b: &[f32]| {
        let (mut d, mut na, mut nb) = (0f32, 0f32, 0f32);
        for (x, y) in a.iter().zip(b) {
            d += x * y;
            na += x * x;
            nb += y * y;
        }
        d / (na.sqrt() * nb.sqrt()).max(1e-12)
    };
    let mut joins = Vec::new();
    while nodes.len() > 1 {
        let mut best = (f32::NEG_INFINITY, 0, 1);
        for i in 0..nodes.len() {
            for j in i + 1..nodes.len() {
                let s = cos(&nodes[i].1, &nodes[j].1);
                if s > best.0 {
                    best = (s, i, j);
                }
            }
        }
        let (s, i, j) = best;
        let b = nodes.remove(j);
        let a = nodes.remove(i);
        let node = format!("n{}", joins.len() + 1);
        joins.push(Join {
            node: node.clone(),
            a: a.0,
            b: b.0,
            similarity: round4(s),
            size: a.2 + b.2,
        });
        let sum: Vec<f32> = a.1.iter().zip(&b.1).map(|(x, y)| x + y).collect();
        nodes.push((node, sum, a.2 + b.2));
    }
    joins
}
