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

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::stable::{Change, PriorTopic, assign_ids};
use crate::cluster::{self, KMeansOptions, KScore};
use crate::embed::normalize;
use crate::error::{Error, Result};
use crate::index::Matrix;
use crate::label;
use crate::report::{Join, LibraryInfo, MapPoint, Member, Params, TopicReport, TopicView, round4};
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
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            k: None,
            seed: 42,
            keywords: 10,
            representatives: 5,
            state_lock_wait: None,
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
/// exploratory ones). Ids, names and labels are applied on top each time.
#[derive(Debug, Serialize, Deserialize)]
struct RawTopics {
    /// Bumped whenever clustering or layout changes, so a cache written by
    /// an older papermap is recomputed rather than reused.
    algorithm: u32,
    fingerprint: String,
    requested_k: Option<usize>,
    seed: u64,
    k: usize,
    k_chosen_by: String,
    k_scores: Vec<KScore>,
    inertia: f64,
    /// Cluster of each paper, in library order.
    labels: Vec<u32>,
    /// Map position of each paper.
    xy: Vec<[f32; 2]>,
    /// Up to five most related papers of each paper (rows).
    related: Vec<Vec<u32>>,
}

const TOPICS_ALGORITHM: u32 = 6;

fn cache_name(requested_k: Option<usize>, seed: u64, main: bool) -> String {
    if main {
        "topics.json".into()
    } else {
        match requested_k {
            Some(k) => format!("topics-k{k}-s{seed}.json"),
            None => format!("topics-auto-s{seed}.json"),
        }
    }
}

/// Computes topics, or reuses the cached clustering when the library and
/// the parameters are unchanged; ids, names and merges come from the topic
/// state (see the module doc).
pub fn topics(lib: &Library, opts: &TopicOptions) -> Result<TopicReport> {
    let state = TopicState::load(lib);
    let main = is_main(&state, opts);
    let requested_k = opts.k.or(if main { state.pinned_k } else { None });
    let path = lib
        .derived_dir()
        .join(cache_name(requested_k, opts.seed, main));
    let fingerprint = lib.fingerprint();
    let cached: Option<RawTopics> = read_checked_json(&path);
    let raw = match cached {
        Some(r)
            if r.algorithm == TOPICS_ALGORITHM
                && r.fingerprint == fingerprint
                && r.requested_k == requested_k
                && r.seed == opts.seed
                && r.labels.len() == lib.len()
                && r.labels.iter().all(|&l| (l as usize) < r.k) =>
        {
            r
        }
        _ => {
            let r = compute_raw(lib, requested_k, opts.seed, fingerprint)?;
            std::fs::create_dir_all(lib.derived_dir())
                .map_err(|e| Error::io(lib.derived_dir(), e))?;
            write_checked_json(&path, &r)?;
            r
        }
    };
    if !main {
        // Exploratory: matched against the stored run, nothing stored.
        return finish(lib, &raw, &mut state.clone(), false, opts);
    }
    // Read-modify-write of the state under the writer lock; it is read
    // again under the lock, as another process may have stored a run or a
    // name meanwhile (a changed seed or pin makes this run exploratory).
    let lock = state_lock(lib, opts.state_lock_wait)?;
    let mut state = TopicState::load(lib);
    let main = is_main(&state, opts) && requested_k == opts.k.or(state.pinned_k);
    let before = state.clone();
    let report = finish(lib, &raw, &mut state, main, opts)?;
    if main && state != before && lock.is_some() {
        state.save(lib)?;
    }
    Ok(report)
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
    read_checked_json::<RawTopics>(&lib.derived_dir().join("topics.json")).is_some_and(|r| {
        r.algorithm == TOPICS_ALGORITHM
            && r.fingerprint == lib.fingerprint()
            && r.labels.len() == lib.len()
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

fn compute_raw(
    lib: &Library,
    requested_k: Option<usize>,
    seed: u64,
    fingerprint: String,
) -> Result<RawTopics> {
    let m = Matrix::load_or_build(lib, &fingerprint)?;
    let n = m.rows();
    if n == 0 {
        return Err(Error::Empty(
            "the library is empty; add papers first".into(),
        ));
    }
    let (x, dim) = topic_space(lib, &m)?;
    let (k, k_scores, chosen_by) = match requested_k {
        Some(k) => (k, Vec::new(), "user"),
        None => {
            let (k, s) = cluster::choose_k(&x, dim, seed)?;
            (k, s, "stability")
        }
    };
    let c = cluster::kmeans(&x, dim, &KMeansOptions::new(k, seed))?;
    let lay = cluster::layout::layout(&x, dim, &c.labels, seed)?;
    Ok(RawTopics {
        algorithm: TOPICS_ALGORITHM,
        fingerprint,
        requested_k,
        seed,
        k,
        k_chosen_by: chosen_by.into(),
        k_scores,
        inertia: (c.inertia * 1e4).round() / 1e4,
        labels: c.labels.iter().map(|&l| l as u32).collect(),
        xy: lay.xy,
        related: lay.related,
    })
}

/// Ids, merges, names, keywords, representatives, time and hierarchy on top
/// of a clustering. Updates `state` when this is the main run.
fn finish(
    lib: &Library,
    raw: &RawTopics,
    state: &mut TopicState,
    main: bool,
    opts: &TopicOptions,
) -> Result<TopicReport> {
    let papers = lib.papers();
    let m = Matrix::load_or_build(lib, &raw.fingerprint)?;
    let mut clusters: Vec<Vec<usize>> = vec![Vec::new(); raw.k];
    for (row, &l) in raw.labels.iter().enumerate() {
        clusters[l as usize].push(row);
    }
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
    let unchanged = state
        .main
        .as_ref()
        .is_some_and(|s| s.fingerprint == raw.fingerprint && s.k == raw.k);
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
    let mut labels = vec![0usize; papers.len()];
    for (gi, (rows, _, _)) in groups.values().enumerate() {
        for &r in rows {
            labels[r] = gi;
        }
    }
    let keywords = label::keywords_weighted(papers, &labels, g, opts.keywords);
    // Unit centroids of the embeddings: distances and similarities are cosines.
    let mut unit = vec![vec![0f32; m.dim]; g];
    for (row, &l) in labels.iter().enumerate() {
        for (u, &v) in unit[l].iter_mut().zip(m.row(row)) {
            *u += v;
        }
    }
    unit.iter_mut().for_each(|v| normalize(v));
    let names: Vec<String> =
        group_ids
            .iter()
            .zip(&keywords)
            .map(|(id, kw)| {
                state.names.get(id).cloned().unwrap_or_else(|| {
                    label::name(&kw.iter().map(|x| x.0.clone()).collect::<Vec<_>>())
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
    let map = raw
        .xy
        .iter()
        .enumerate()
        .map(|(row, p)| MapPoint {
            id: papers[row].id.clone(),
            topic: group_ids[labels[row]],
            x: round4(p[0]),
            y: round4(p[1]),
            related: raw.related.get(row).cloned().unwrap_or_default(),
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
