//! The lexical half of hybrid relevance, over title and abstract (title terms
//! counted twice): one inverted index of words and two-word phrases, scored
//! two ways, TF-IDF cosine over words and phrases (sublinear tf, smooth idf,
//! length-normalised: the document-to-document similarity `related` fuses,
//! comparable across queries) and BM25 over words (kept for comparison in
//! `scripts/bench-relevance`); and the "why related" explanation: the shared
//! terms and phrases that carry the most weight.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::error::Result;
use crate::paper::Paper;
use crate::store::Library;
use crate::store::codec::{Reader, put_bytes, put_u32s, seal, unseal};
use crate::store::delta::{Delta, Segment};
use crate::store::derived::{Access, Built, DerivedFile, refresh};
use crate::store::manifest::write_atomic;
use crate::text;

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Query-term frequency saturation (BM25's k3).
const K3: f32 = 1.2;

const MAGIC: &[u8; 8] = b"PMBM25\0\0";
/// 2: two-word phrases indexed beside words; the vocabulary stored as one
/// buffer.
const VERSION: u32 = 2;

/// A phrase's TF-IDF weight relative to a word's of the same frequency.
/// At full weight phrases pulled lexical-only search below the words alone
/// on the citation set (nDCG@10 0.220 vs 0.230: a shared phrase also
/// repeats its two shared words); at half weight 0.234, and hybrid `--prior`
/// 0.363 -> 0.365 (0 gives 0.229 and 0.360; 0.7 gives 0.231 and 0.364).
const PHRASE_WEIGHT: f32 = 0.5;

/// One 14-byte record of [`Bm25`]'s single phrases: xxh3 hash of the
/// phrase (u64), document (u32), term frequency (u16), little-endian.
const SINGLE: usize = 14;
pub const LEXICAL_FILE: &str = "lexical.bin";

/// A sorted vocabulary in one buffer: term `i` is
/// `text[ends[i - 1]..ends[i]]`. Loading it is two reads, not millions of
/// small allocations (phrases make the vocabulary several times larger
/// than the words alone). Lookups go through a hash table of term ids
/// built on the first lookup (~40 ms for a million terms): a query looks
/// up hundreds of terms and phrases, and a binary search's cache misses
/// over the whole buffer were a third of a query's time at 100k papers.
#[derive(Debug, Clone, Default)]
struct Vocab {
    text: String,
    ends: Vec<u64>,
    /// Open addressing by xxh3 of the term: `id + 1`, 0 for empty; twice
    /// as many slots as terms, rounded up to a power of two.
    slots: std::sync::OnceLock<Box<[u32]>>,
}

impl PartialEq for Vocab {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.ends == other.ends
    }
}

impl Vocab {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn span(&self, i: usize) -> std::ops::Range<usize> {
        let lo = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        lo..self.ends[i] as usize
    }

    fn get(&self, i: usize) -> &str {
        &self.text[self.span(i)]
    }

    fn bytes(&self, i: usize) -> &[u8] {
        &self.text.as_bytes()[self.span(i)]
    }

    fn push(&mut self, t: &str) {
        self.text.push_str(t);
        self.ends.push(self.text.len() as u64);
        self.slots = std::sync::OnceLock::new();
    }

    fn slots(&self) -> &[u32] {
        self.slots.get_or_init(|| {
            let size = (2 * self.len()).next_power_of_two().max(2);
            let mask = size - 1;
            let mut slots = vec![0u32; size];
            for i in 0..self.len() {
                let mut at = xxhash_rust::xxh3::xxh3_64(self.bytes(i)) as usize & mask;
                while slots[at] != 0 {
                    at = (at + 1) & mask;
                }
                slots[at] = i as u32 + 1;
            }
            slots.into_boxed_slice()
        })
    }

    fn find(&self, t: &str) -> Option<u32> {
        let slots = self.slots();
        let mask = slots.len() - 1;
        let mut at = xxhash_rust::xxh3::xxh3_64(t.as_bytes()) as usize & mask;
        loop {
            match slots[at] {
                0 => return None,
                id if self.bytes(id as usize - 1) == t.as_bytes() => return Some(id - 1),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// A vocabulary read from a file: every end within the text and on a
    /// character boundary, in order.
    fn from_parts(text: String, ends: Vec<u64>) -> Option<Vocab> {
        let mut prev = 0u64;
        for &e in &ends {
            if e < prev || e as usize > text.len() || !text.is_char_boundary(e as usize) {
                return None;
            }
            prev = e;
        }
        (prev as usize == text.len()).then_some(Vocab {
            text,
            ends,
            slots: std::sync::OnceLock::new(),
        })
    }
}

/// Whether a vocabulary entry is a two-word phrase (words never hold a
/// space).
fn is_phrase(t: &str) -> bool {
    t.contains(' ')
}

/// The words of `terms` and the two-word phrases of adjacent ones ("neural
/// network", "language model"), each as often as it occurs: what the index
/// counts for a document.
fn features(terms: &[String]) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    terms.iter().map(|t| Cow::Borrowed(t.as_str())).chain(
        terms
            .windows(2)
            .map(|w| Cow::Owned(format!("{} {}", w[0], w[1]))),
    )
}

/// A query's terms with their vocabulary ids ([`Bm25::lookup`]): each
/// term's, and each adjacent pair's as a phrase (`None`: not in the
/// vocabulary).
#[derive(Debug, Clone)]
pub struct QueryTerms<'t> {
    pub terms: &'t [String],
    words: Vec<Option<u32>>,
    phrases: Vec<Option<u32>>,
}

impl QueryTerms<'_> {
    /// The distinct vocabulary ids of the words, sorted.
    pub fn distinct_words(&self) -> Vec<u32> {
        distinct(self.words.iter().flatten().copied())
    }
}

fn distinct(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// An inverted index over a library's papers: sorted vocabulary of words
/// and of the two-word phrases at least two papers use, postings in flat
/// arrays (document, term frequency), document lengths in words, and the
/// hashes of phrases one paper uses. Persisted as
/// `derived/lexical.bin` with the library fingerprint and a CRC32, so a
/// query command loads it instead of tokenising the whole library.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bm25 {
    vocab: Vocab,
    /// Postings of term `t` are `docs[starts[t]..starts[t + 1]]`.
    starts: Vec<u64>,
    docs: Vec<u32>,
    tfs: Vec<u16>,
    /// Words of each document (phrases not counted): BM25's length.
    doc_len: Vec<u32>,
    avg_len: f32,
    /// One over the Euclidean norm of each document's TF-IDF vector (0 for
    /// an empty one; derived at load).
    inv_norm: Vec<f32>,
    /// Phrases only one paper uses, as [`SINGLE`]-byte records sorted by
    /// (hash, document). They match nothing and do not count in the cosine
    /// (a phrase one paper uses is shared with nothing, yet would weigh in
    /// its length normalisation: scikit-learn's `min_df = 2`, for phrases),
    /// so only their hash is kept: when an added paper uses one too, it
    /// becomes a vocabulary phrase with both postings, exactly as a build
    /// over all papers would have it. About 80% of all phrases; kept as
    /// strings they made the file five times the words-only one.
    singles: Vec<u8>,
    /// Per posting, `doc << 4 | min(tf, 15)` (derived at load, in memory
    /// only; empty for a library of 2^28 papers or more): scoring reads 4
    /// bytes a posting instead of 6 or 8. Scoring a paper's text touches
    /// about two million postings at 100k papers, and reading them is most
    /// of a query's time.
    packed: Vec<u32>,
    /// Terms in at least an eighth of the documents, one byte a document
    /// (derived at load, in memory only): see [`Dense`].
    dense: Dense,
    /// Per vocabulary term, its TF-IDF idf ([`Bm25::tfidf_idf`]; derived
    /// at load): a query looks up hundreds of terms, and the title lean
    /// every candidate's title words.
    idf: Vec<f32>,
}

impl DerivedFile for Bm25 {
    const FILE: &'static str = LEXICAL_FILE;
    type Input<'a> = ();

    /// The state of the file and the segments appended beside it.
    fn peek(path: &Path) -> Option<Built> {
        let base = Bm25::peek(path)?;
        Some(match Delta::read(path) {
            Some(d) if d.base == base => d.state().clone(),
            _ => base,
        })
    }

    fn load(path: &Path, built: &Built, _: &Library, (): ()) -> Option<Bm25> {
        Bm25::load_at(path, built)
    }

    fn build(lib: &Library, (): ()) -> Result<Bm25> {
        Ok(Bm25::build(lib.papers()))
    }

    fn extend(self, from: usize, lib: &Library, (): ()) -> Result<Bm25> {
        Ok(self.extend_with(&lib.papers()[from..]))
    }

    /// The new papers' postings as one more segment beside the file
    /// (tokenising only them; the file is not read), until the segments
    /// would pass an eighth of the file's bytes: then they are folded
    /// into a new file with the new papers (read, merged once, written),
    /// so a paper's postings are written about nine times in all, and a
    /// reader merges at most an eighth more than the file.
    fn append(path: &Path, built: &Built, lib: &Library, (): ()) -> Result<bool> {
        Bm25::append_segment(path, built, &lib.papers()[built.rows..], &lib.fingerprint())
    }

    fn shrink(self, removed: &[usize], _: &Library, (): ()) -> Result<Option<Bm25>> {
        Ok(Some(self.without_docs(removed)))
    }

    fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        Bm25::save(self, path, fingerprint)
    }
}

impl Bm25 {
    /// The file at `path`, with the segments beside it that take it to
    /// `built` merged in.
    fn load_at(path: &Path, built: &Built) -> Option<Bm25> {
        let base = Bm25::peek(path)?;
        if &base == built {
            return Bm25::load(path, &built.fingerprint, built.rows);
        }
        let delta = Delta::read(path).filter(|d| d.base == base)?;
        let (add, new_len) = decode_segments(delta.segments_to(built)?)?;
        let parts = Parts::read(path, &base.fingerprint, base.rows)?;
        Some(Self::assemble(parts.merge(add, new_len)))
    }

    /// Appends `papers` (the library's next ones after `built`, whose
    /// fingerprint is then `fingerprint`) as a segment beside the file at
    /// `path`, whose state is `built`; `Ok(false)` when the file is not at
    /// `built` or the segments would grow past [`FOLD`].
    fn append_segment(
        path: &Path,
        built: &Built,
        papers: &[Paper],
        fingerprint: &str,
    ) -> Result<bool> {
        let Some(base) = Bm25::peek(path) else {
            return Ok(false);
        };
        let delta = Delta::read(path).filter(|d| d.base == base);
        if delta.as_ref().map_or(&base, |d| d.state()) != built {
            return Ok(false);
        }
        let (add, new_len) = postings_of(papers, built.rows);
        let body = encode_segment(&add, &new_len);
        let to = Built {
            fingerprint: fingerprint.to_string(),
            rows: built.rows + papers.len(),
        };
        let base_bytes = fs::metadata(path).map_or(0, |m| m.len());
        if Delta::bytes_after(delta.as_ref(), &base, &to, body.len()) * FOLD <= base_bytes {
            // A reader that saved a whole file meanwhile removed the delta:
            // then (or on any failure) the file is brought up to date the
            // long way, which reports a real write error.
            return Ok(Delta::append(path, &base, built.rows, &to, &body).is_ok());
        }
        // The fold: the file, its segments and these papers merged once
        // and written as the new file (nothing scored, so no norms or
        // dense rows derived).
        let segments = delta.as_ref().map_or(&[][..], |d| &d.segments[..]);
        let (Some(parts), Some((all, mut lens))) = (
            Parts::read(path, &base.fingerprint, base.rows),
            decode_segments(segments),
        ) else {
            return Ok(false);
        };
        lens.extend(new_len);
        let all = combine(vec![all, sorted(add)]);
        parts.merge(all, lens).save(path, fingerprint)?;
        Ok(true)
    }
}

/// Segments beside the lexical file are folded into it once they would
/// pass `1 / FOLD` of its bytes.
const FOLD: u64 = 8;

/// A segment's body: the documents' lengths, then each term (sorted) with
/// its postings (absolute document numbers).
fn encode_segment(add: &Postings, doc_len: &[u32]) -> Vec<u8> {
    let mut terms: Vec<(&String, &Vec<(u32, u16)>)> = add.iter().collect();
    terms.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut b = Vec::new();
    b.extend_from_slice(&(doc_len.len() as u64).to_le_bytes());
    put_u32s(&mut b, doc_len);
    b.extend_from_slice(&(terms.len() as u64).to_le_bytes());
    for (t, list) in terms {
        put_bytes(&mut b, t.as_bytes());
        b.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for (d, tf) in list {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&tf.to_le_bytes());
        }
    }
    b
}

/// The postings and document lengths of `segments` (in order), or `None`
/// when one does not decode or numbers a document outside its rows.
fn decode_segments(segments: &[Segment]) -> Option<(Sorted, Vec<u32>)> {
    let mut each = Vec::with_capacity(segments.len());
    let mut doc_len = Vec::new();
    for s in segments {
        let mut add = Sorted::new();
        let mut r = Reader::new(&s.body);
        let n = usize::try_from(r.u64()?).ok()?;
        if n != s.to.rows - s.from {
            return None;
        }
        doc_len.extend(r.u32s(n)?);
        let terms = r.u64()?;
        for _ in 0..terms {
            let t = std::str::from_utf8(r.bytes()?).ok()?;
            let k = r.u32()? as usize;
            let list = r.array(k, 6, |c| {
                let d = u32::from_le_bytes(c[..4].try_into().expect("4"));
                (d, u16::from_le_bytes(c[4..].try_into().expect("2")))
            })?;
            let inside = |&(d, _): &(u32, u16)| (s.from..s.to.rows).contains(&(d as usize));
            let ascending = list.windows(2).all(|w| w[0].0 < w[1].0);
            if list.is_empty() || !ascending || !list.iter().all(inside) {
                return None;
            }
            if add.last().is_some_and(|(prev, _)| prev.as_str() >= t) {
                return None;
            }
            add.push((t.to_string(), list));
        }
        if !r.done() {
            return None;
        }
        each.push(add);
    }
    Some((combine(each), doc_len))
}

/// Each term's postings, sorted by term (no two entries for one term).
type Sorted = Vec<(String, Vec<(u32, u16)>)>;

fn sorted(p: Postings) -> Sorted {
    let mut v: Sorted = p.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Sorted lists of postings of consecutive documents (each list's after
/// the one before), as one: a term in several has their postings in turn.
fn combine(lists: Vec<Sorted>) -> Sorted {
    if lists.len() <= 1 {
        return lists.into_iter().next().unwrap_or_default();
    }
    let mut all: Sorted = lists.into_iter().flatten().collect();
    // Stable: a term's lists stay in document order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Sorted = Vec::with_capacity(all.len());
    for (t, list) in all {
        match out.last_mut() {
            Some((prev, into)) if *prev == t => into.extend(list),
            _ => out.push((t, list)),
        }
    }
    out
}

/// Terms of a paper for lexical matching: title twice, then abstract.
pub fn paper_terms(p: &Paper) -> Vec<String> {
    let mut t = text::terms(&p.title);
    t.extend(t.clone());
    t.extend(text::terms(&p.abs));
    t
}

/// Each term's (document, term frequency) list.
type Postings = HashMap<String, Vec<(u32, u16)>>;

/// Postings of `papers` (words and phrases) numbered from document
/// `first`, and their lengths in words.
fn postings_of(papers: &[Paper], first: usize) -> (Postings, Vec<u32>) {
    let mut postings = Postings::new();
    let mut doc_len = Vec::with_capacity(papers.len());
    for (d, p) in papers.iter().enumerate() {
        let terms = paper_terms(p);
        doc_len.push(terms.len() as u32);
        let mut tf: HashMap<String, u16> = HashMap::new();
        for t in features(&terms) {
            let e = tf.entry(t.into_owned()).or_default();
            *e = e.saturating_add(1);
        }
        for (t, n) in tf {
            postings.entry(t).or_default().push(((first + d) as u32, n));
        }
    }
    (postings, doc_len)
}

fn phrase_hash(t: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(t.as_bytes())
}

/// The phrases of `postings` that only one document uses, removed from it
/// as [`SINGLE`]-byte records, sorted.
fn take_singles(postings: &mut Postings) -> Vec<u8> {
    let mut one: Vec<(u64, u32, u16)> = Vec::new();
    postings.retain(|t, list| {
        let single = list.len() == 1 && is_phrase(t);
        if single {
            one.push((phrase_hash(t), list[0].0, list[0].1));
        }
        !single
    });
    encode_singles(one)
}

fn encode_singles(mut one: Vec<(u64, u32, u16)>) -> Vec<u8> {
    one.sort_unstable();
    let mut b = Vec::with_capacity(one.len() * SINGLE);
    for (h, d, tf) in one {
        b.extend_from_slice(&h.to_le_bytes());
        b.extend_from_slice(&d.to_le_bytes());
        b.extend_from_slice(&tf.to_le_bytes());
    }
    b
}

fn decode_single(r: &[u8]) -> (u64, u32, u16) {
    (
        u64::from_le_bytes(r[..8].try_into().expect("8")),
        u32::from_le_bytes(r[8..12].try_into().expect("4")),
        u16::from_le_bytes(r[12..14].try_into().expect("2")),
    )
}

fn single_at(singles: &[u8], i: usize) -> &[u8] {
    &singles[i * SINGLE..(i + 1) * SINGLE]
}

/// The records of single phrases with hash `h`: one or none (two only if
/// two phrases' 64-bit hashes collide, and then neither is promoted; a new
/// phrase colliding with an old single one would take its posting: about
/// one chance in 10^6 over ten million phrases).
fn single_range(singles: &[u8], h: u64) -> std::ops::Range<usize> {
    let n = singles.len() / SINGLE;
    let hash = |i: usize| decode_single(single_at(singles, i)).0;
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if hash(mid) < h {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut end = lo;
    while end < n && hash(end) == h {
        end += 1;
    }
    lo..end
}

/// `singles` (sorted records) without the records at `promoted` and with
/// the records `new`, sorted: in place, one pass each (the records are
/// most of a large index's phrases, so neither decoded nor sorted again).
fn merge_singles(
    mut singles: Vec<u8>,
    mut promoted: Vec<usize>,
    mut new: Vec<(u64, u32, u16)>,
) -> Vec<u8> {
    promoted.sort_unstable();
    promoted.dedup();
    if !promoted.is_empty() {
        let n = singles.len() / SINGLE;
        let mut w = promoted[0];
        for (k, &p) in promoted.iter().enumerate() {
            let next = promoted.get(k + 1).copied().unwrap_or(n);
            let run = (p + 1)..next;
            singles.copy_within(run.start * SINGLE..run.end * SINGLE, w * SINGLE);
            w += run.len();
        }
        singles.truncate(w * SINGLE);
    }
    new.sort_unstable();
    let (mut i, mut j) = (singles.len() / SINGLE, new.len());
    singles.resize((i + j) * SINGLE, 0);
    // From the back: a record moves right or stays, never over one not yet moved.
    let mut k = i + j;
    while j > 0 {
        if i > 0 && decode_single(single_at(&singles, i - 1)) > new[j - 1] {
            singles.copy_within((i - 1) * SINGLE..i * SINGLE, (k - 1) * SINGLE);
            i -= 1;
        } else {
            let (h, d, tf) = new[j - 1];
            let r = &mut singles[(k - 1) * SINGLE..k * SINGLE];
            r[..8].copy_from_slice(&h.to_le_bytes());
            r[8..12].copy_from_slice(&d.to_le_bytes());
            r[12..].copy_from_slice(&tf.to_le_bytes());
            j -= 1;
        }
        k -= 1;
    }
    singles
}

/// What the file stores of an index (everything else is derived at load
/// by [`Bm25::assemble`]).
#[derive(Debug, Default)]
struct Parts {
    vocab: Vocab,
    starts: Vec<u64>,
    docs: Vec<u32>,
    tfs: Vec<u16>,
    doc_len: Vec<u32>,
    singles: Vec<u8>,
}

/// What the file stores, borrowed from a [`Bm25`] or from [`Parts`].
struct Stored<'a> {
    vocab: &'a Vocab,
    starts: &'a [u64],
    docs: &'a [u32],
    tfs: &'a [u16],
    doc_len: &'a [u32],
    singles: &'a [u8],
}

impl Stored<'_> {
    /// Writes the file atomically, and removes the segments beside the old
    /// one (they extend a base that is gone).
    fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        let mut b = Vec::with_capacity(64 + self.docs.len() * 6 + self.doc_len.len() * 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        put_bytes(&mut b, fingerprint.as_bytes());
        b.extend_from_slice(&(self.doc_len.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.vocab.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.docs.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.vocab.text.len() as u64).to_le_bytes());
        b.extend_from_slice(self.vocab.text.as_bytes());
        self.vocab
            .ends
            .iter()
            .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
        self.starts
            .iter()
            .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
        put_u32s(&mut b, self.docs);
        self.tfs
            .iter()
            .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
        put_u32s(&mut b, self.doc_len);
        b.extend_from_slice(&(self.singles.len() as u64).to_le_bytes());
        b.extend_from_slice(self.singles);
        seal(&mut b);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        write_atomic(path, &b)?;
        Delta::remove(path);
        Ok(())
    }
}

impl Parts {
    /// The parts saved at `path` for `fingerprint` over `docs` documents;
    /// `None` when missing, stale or damaged.
    fn read(path: &Path, fingerprint: &str, docs: usize) -> Option<Parts> {
        // Mapped, not read: the parts are decoded into arrays of their own,
        // and a copy of the whole file first (1.9 GB at 1M papers) cost as
        // much again in fresh memory. SAFETY: the file is only ever replaced
        // whole (`write_atomic`), never written in place, so the mapped
        // bytes do not change.
        let file = fs::File::open(path).ok()?;
        let b = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let body = unseal(&b)?;
        let mut r = Reader::new(body);
        if r.take(8)? != MAGIC || r.u32()? != VERSION || r.bytes()? != fingerprint.as_bytes() {
            return None;
        }
        let (n_docs, n_terms, n_post) = (r.u64()? as usize, r.u64()? as usize, r.u64()? as usize);
        if n_docs != docs {
            return None;
        }
        let text_len = usize::try_from(r.u64()?).ok()?;
        let text = String::from_utf8(r.take(text_len)?.to_vec()).ok()?;
        let ends: Vec<u64> =
            r.array(n_terms, 8, |c| u64::from_le_bytes(c.try_into().expect("8")))?;
        let vocab = Vocab::from_parts(text, ends)?;
        let starts: Vec<u64> = r.array(n_terms.checked_add(1)?, 8, |c| {
            u64::from_le_bytes(c.try_into().expect("8"))
        })?;
        let docs_v = r.u32s(n_post)?;
        let tfs: Vec<u16> = r.array(n_post, 2, |c| u16::from_le_bytes(c.try_into().expect("2")))?;
        let doc_len = r.u32s(n_docs)?;
        let singles_len = usize::try_from(r.u64()?).ok()?;
        let singles = r.take(singles_len)?.to_vec();
        let ok = r.done()
            && singles.len() % SINGLE == 0
            && singles
                .chunks_exact(SINGLE)
                .all(|c| (decode_single(c).1 as usize) < n_docs)
            && starts.first() == Some(&0)
            && starts.last() == Some(&(n_post as u64))
            && starts.windows(2).all(|w| w[0] <= w[1])
            && docs_v.iter().all(|&d| (d as usize) < n_docs);
        ok.then_some(Parts {
            vocab,
            starts,
            docs: docs_v,
            tfs,
            doc_len,
            singles,
        })
    }

    fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        Stored {
            vocab: &self.vocab,
            starts: &self.starts,
            docs: &self.docs,
            tfs: &self.tfs,
            doc_len: &self.doc_len,
            singles: &self.singles,
        }
        .save(path, fingerprint)
    }

    /// These parts with the postings `add` of the next documents (lengths
    /// `new_len`, numbered after every old one): exactly what a build over
    /// all of them makes. A phrase one old paper used and a new one uses
    /// too joins the vocabulary with the old posting first; the other
    /// single phrases stay single, and the new ones only one new paper
    /// uses are added to them. The old vocabulary and the new terms are
    /// merged as two sorted lists, every old posting list copied once with
    /// the new postings after it (new documents number after every old
    /// one, so lists stay sorted).
    fn merge(self, add: Sorted, new_len: Vec<u32>) -> Parts {
        let Parts {
            vocab: old,
            starts: old_starts,
            docs: old_docs,
            tfs: old_tfs,
            mut doc_len,
            singles,
        } = self;
        // Whether the old vocabulary has each new term: one walk of both
        // sorted lists.
        let mut known = Vec::with_capacity(add.len());
        let mut i = 0;
        for (t, _) in &add {
            while i < old.len() && old.get(i) < t.as_str() {
                i += 1;
            }
            known.push(i < old.len() && old.get(i) == t);
        }
        // The old single phrase each unknown new phrase matches: one walk
        // of the singles (sorted by hash) against the phrases' hashes,
        // sorted (a binary search per phrase missed the cache every step).
        let mut probes: Vec<(u64, usize)> = add
            .iter()
            .zip(&known)
            .enumerate()
            .filter(|(_, ((t, _), k))| !**k && is_phrase(t))
            .map(|(i, ((t, _), _))| (phrase_hash(t), i))
            .collect();
        probes.sort_unstable();
        let n_single = singles.len() / SINGLE;
        let hash_at = |i: usize| decode_single(single_at(&singles, i)).0;
        let mut matched: Vec<Option<usize>> = vec![None; add.len()];
        let mut at = 0;
        for &(h, i) in &probes {
            while at < n_single && hash_at(at) < h {
                at += 1;
            }
            let mut end = at;
            while end < n_single && hash_at(end) == h {
                end += 1;
            }
            // Two records: two phrases' hashes collide; neither promoted.
            if end - at == 1 {
                matched[i] = Some(at);
            }
        }
        let mut one: Vec<(u64, u32, u16)> = Vec::new();
        let mut promoted: Vec<usize> = Vec::new();
        let mut fresh: Vec<(String, Vec<(u32, u16)>)> = Vec::with_capacity(add.len());
        for (i, ((t, mut list), known)) in add.into_iter().zip(known).enumerate() {
            if !known && is_phrase(&t) {
                if let Some(at) = matched[i] {
                    let (_, d, tf) = decode_single(single_at(&singles, at));
                    promoted.push(at);
                    list.insert(0, (d, tf));
                }
                if list.len() == 1 {
                    one.push((phrase_hash(&t), list[0].0, list[0].1));
                    continue;
                }
            }
            fresh.push((t, list));
        }
        let singles = merge_singles(singles, promoted, one);
        // The merged order of the old vocabulary and the fresh terms (both
        // sorted): for each merged term, its old index and its new postings.
        const NONE: u32 = u32::MAX;
        let mut plan: Vec<(u32, u32)> = Vec::with_capacity(old.len() + fresh.len());
        let mut i = 0;
        let mut f = 0;
        loop {
            let (take_old, take_new) = match (i < old.len(), fresh.get(f)) {
                (true, Some((b, _))) => match old.get(i).cmp(b.as_str()) {
                    std::cmp::Ordering::Less => (true, false),
                    std::cmp::Ordering::Equal => (true, true),
                    std::cmp::Ordering::Greater => (false, true),
                },
                (true, None) => (true, false),
                (false, Some(_)) => (false, true),
                (false, None) => break,
            };
            plan.push((
                if take_old { i as u32 } else { NONE },
                if take_new { f as u32 } else { NONE },
            ));
            i += usize::from(take_old);
            f += usize::from(take_new);
        }
        // Where each merged term's postings and text end.
        let mut starts = Vec::with_capacity(plan.len() + 1);
        let mut ends = Vec::with_capacity(plan.len());
        starts.push(0u64);
        let (mut posts, mut text) = (0u64, 0u64);
        for &(o, n) in &plan {
            if o != NONE {
                posts += old_starts[o as usize + 1] - old_starts[o as usize];
                text += old.span(o as usize).len() as u64;
            }
            if n != NONE {
                posts += fresh[n as usize].1.len() as u64;
                if o == NONE {
                    text += fresh[n as usize].0.len() as u64;
                }
            }
            starts.push(posts);
            ends.push(text);
        }
        // The old arrays grown in place and filled from the back: every old
        // run moves right (terms and postings are only inserted), so none
        // is overwritten before it moves, and no second copy of the
        // postings is allocated (a large index's load was mostly the kernel
        // zeroing fresh pages).
        let (mut docs, mut tfs) = (old_docs, old_tfs);
        docs.resize(posts as usize, 0);
        tfs.resize(posts as usize, 0);
        let Vocab {
            text: old_text,
            ends: old_ends,
            ..
        } = old;
        let mut bytes = old_text.into_bytes();
        bytes.resize(text as usize, 0);
        for (t, &(o, n)) in plan.iter().enumerate().rev() {
            let mut end = starts[t + 1] as usize;
            if n != NONE {
                let list = &fresh[n as usize].1;
                for (k, &(d, tf)) in list.iter().enumerate() {
                    docs[end - list.len() + k] = d;
                    tfs[end - list.len() + k] = tf;
                }
                end -= list.len();
            }
            let tend = ends[t] as usize;
            if o != NONE {
                let o = o as usize;
                let (lo, hi) = (old_starts[o] as usize, old_starts[o + 1] as usize);
                docs.copy_within(lo..hi, end - (hi - lo));
                tfs.copy_within(lo..hi, end - (hi - lo));
                let tlo = if o == 0 { 0 } else { old_ends[o - 1] as usize };
                let thi = old_ends[o] as usize;
                bytes.copy_within(tlo..thi, tend - (thi - tlo));
            } else {
                let term = fresh[n as usize].0.as_bytes();
                bytes[tend - term.len()..tend].copy_from_slice(term);
            }
        }
        let vocab = Vocab {
            text: String::from_utf8(bytes).expect("terms are whole strings, moved whole"),
            ends,
            slots: std::sync::OnceLock::new(),
        };
        doc_len.extend(new_len);
        Parts {
            vocab,
            starts,
            docs,
            tfs,
            doc_len,
            singles,
        }
    }
}

impl Bm25 {
    pub fn build(papers: &[Paper]) -> Bm25 {
        let (mut postings, doc_len) = postings_of(papers, 0);
        let singles = take_singles(&mut postings);
        let mut terms: Vec<String> = postings.keys().cloned().collect();
        terms.sort_unstable();
        let mut vocab = Vocab::default();
        let mut starts = Vec::with_capacity(terms.len() + 1);
        let mut docs = Vec::new();
        let mut tfs = Vec::new();
        starts.push(0);
        for t in &terms {
            let mut list = postings.remove(t).unwrap_or_default();
            list.sort_unstable();
            for (d, n) in list {
                docs.push(d);
                tfs.push(n);
            }
            starts.push(docs.len() as u64);
            vocab.push(t);
        }
        Self::assemble(Parts {
            vocab,
            starts,
            docs,
            tfs,
            doc_len,
            singles,
        })
    }

    /// This index (over the first `self.docs()` papers) with `papers`
    /// added as the next documents: only the new papers are tokenised (see
    /// [`Parts::merge`]), and the norms are derived again (idf changed for
    /// every term).
    pub fn extend_with(self, papers: &[Paper]) -> Bm25 {
        let (add, new_len) = postings_of(papers, self.docs());
        Self::assemble(self.into_parts().merge(sorted(add), new_len))
    }

    /// What the file holds of this index.
    fn into_parts(self) -> Parts {
        Parts {
            vocab: self.vocab,
            starts: self.starts,
            docs: self.docs,
            tfs: self.tfs,
            doc_len: self.doc_len,
            singles: self.singles,
        }
    }

    /// This index without documents `removed` (sorted), the others
    /// numbered again in order: exactly what a build over the remaining
    /// papers makes, in one pass over the postings. A term no remaining
    /// paper uses leaves the vocabulary, and a phrase only one uses becomes
    /// a single phrase again.
    pub fn without_docs(self, removed: &[usize]) -> Bm25 {
        let n = self.docs();
        let mut new_id = vec![u32::MAX; n];
        let mut next = 0u32;
        let mut r = removed.iter().peekable();
        for (d, id) in new_id.iter_mut().enumerate() {
            if r.next_if(|&&x| x == d).is_some() {
                continue;
            }
            *id = next;
            next += 1;
        }
        let mut one: Vec<(u64, u32, u16)> = Vec::new();
        for i in 0..self.singles.len() / SINGLE {
            let (h, d, tf) = decode_single(self.single(i));
            if let Some(&nd) = new_id.get(d as usize).filter(|&&x| x != u32::MAX) {
                one.push((h, nd, tf));
            }
        }
        let mut vocab = Vocab::default();
        let mut starts = Vec::with_capacity(self.starts.len());
        let mut docs = Vec::with_capacity(self.docs.len());
        let mut tfs = Vec::with_capacity(self.tfs.len());
        starts.push(0u64);
        for ti in 0..self.vocab.len() {
            let (lo, hi) = self.range(ti as u32);
            let at = docs.len();
            for (&d, &tf) in self.docs[lo..hi].iter().zip(&self.tfs[lo..hi]) {
                let nd = new_id[d as usize];
                if nd != u32::MAX {
                    docs.push(nd);
                    tfs.push(tf);
                }
            }
            let term = self.vocab.get(ti);
            match docs.len() - at {
                0 => continue,
                1 if is_phrase(term) => {
                    one.push((phrase_hash(term), docs[at], tfs[at]));
                    docs.truncate(at);
                    tfs.truncate(at);
                    continue;
                }
                _ => {}
            }
            vocab.push(term);
            starts.push(docs.len() as u64);
        }
        let doc_len = self
            .doc_len
            .iter()
            .zip(&new_id)
            .filter(|(_, id)| **id != u32::MAX)
            .map(|(&l, _)| l)
            .collect();
        Self::assemble(Parts {
            vocab,
            starts,
            docs,
            tfs,
            doc_len,
            singles: encode_singles(one),
        })
    }

    fn single(&self, i: usize) -> &[u8] {
        single_at(&self.singles, i)
    }

    fn single_range(&self, h: u64) -> std::ops::Range<usize> {
        single_range(&self.singles, h)
    }

    fn assemble(parts: Parts) -> Bm25 {
        let Parts {
            vocab,
            starts,
            docs,
            tfs,
            doc_len,
            singles,
        } = parts;
        let avg_len =
            doc_len.iter().map(|&l| l as f64).sum::<f64>() as f32 / doc_len.len().max(1) as f32;
        let mut b = Bm25 {
            vocab,
            starts,
            docs,
            tfs,
            doc_len,
            avg_len,
            inv_norm: Vec::new(),
            packed: Vec::new(),
            dense: Dense::default(),
            singles,
            idf: Vec::new(),
        };
        let n = b.docs() as f32;
        b.idf = (0..b.vocab.len())
            .map(|ti| {
                let idf = ((1.0 + n) / (1.0 + b.df_of(ti as u32) as f32)).ln() + 1.0;
                if is_phrase(b.vocab.get(ti)) {
                    PHRASE_WEIGHT * idf
                } else {
                    idf
                }
            })
            .collect();
        // One pass over the postings (~10 ms per million): cheaper than a
        // second array in the file to keep consistent.
        let mut sq = vec![0f64; b.doc_len.len()];
        for ti in 0..b.vocab.len() as u32 {
            let idf = b.tfidf_idf(ti);
            let (lo, hi) = b.range(ti);
            for (&d, &tf) in b.docs[lo..hi].iter().zip(&b.tfs[lo..hi]) {
                let w = f64::from(sublinear(f32::from(tf)) * idf);
                sq[d as usize] += w * w;
            }
        }
        b.inv_norm = sq
            .into_iter()
            .map(|x| {
                if x > 0.0 {
                    (1.0 / x.sqrt()) as f32
                } else {
                    0.0
                }
            })
            .collect();
        if b.docs() < 1 << 28 {
            b.packed = b
                .docs
                .iter()
                .zip(&b.tfs)
                .map(|(&d, &tf)| d << 4 | u32::from(tf.min(15)))
                .collect();
        }
        b.dense = Dense::of(&b);
        b
    }

    fn range(&self, ti: u32) -> (usize, usize) {
        (
            self.starts[ti as usize] as usize,
            self.starts[ti as usize + 1] as usize,
        )
    }

    /// scikit-learn's smooth idf, `ln((1 + n) / (1 + df)) + 1`: a term in
    /// every document still counts a little, so short texts keep a norm;
    /// a phrase weighs [`PHRASE_WEIGHT`] of that.
    pub fn tfidf_idf(&self, ti: u32) -> f32 {
        self.idf[ti as usize]
    }

    /// The unit TF-IDF vector of a text given as terms, over this index's
    /// words only (unknown terms dropped), sorted by term: the lexical side
    /// of the topic space.
    pub fn tfidf_vector(&self, terms: &[String]) -> Vec<(u32, f32)> {
        self.unit_vector(terms.iter().filter_map(|t| self.vocab.find(t)))
    }

    /// The unit TF-IDF vector of a text given as terms, over its words and
    /// two-word phrases (those at least two papers use): the vector
    /// `related` compares papers by, as the index holds them.
    pub fn query_vector(&self, terms: &[String]) -> Vec<(u32, f32)> {
        self.query_vector_of(&self.lookup(terms))
    }

    /// [`Bm25::query_vector`] of terms already looked up.
    pub fn query_vector_of(&self, q: &QueryTerms<'_>) -> Vec<(u32, f32)> {
        self.unit_vector(q.words.iter().chain(&q.phrases).flatten().copied())
    }

    /// A text's terms looked up once, for all that a query does with them.
    pub fn lookup<'t>(&self, terms: &'t [String]) -> QueryTerms<'t> {
        // Each phrase spelled into one reused buffer rather than a new string.
        let mut phrase = String::new();
        QueryTerms {
            terms,
            words: terms.iter().map(|t| self.vocab.find(t)).collect(),
            phrases: terms
                .windows(2)
                .map(|w| {
                    phrase.clear();
                    phrase.push_str(&w[0]);
                    phrase.push(' ');
                    phrase.push_str(&w[1]);
                    self.vocab.find(&phrase)
                })
                .collect(),
        }
    }

    fn unit_vector(&self, ids: impl Iterator<Item = u32>) -> Vec<(u32, f32)> {
        let mut ids: Vec<u32> = ids.collect();
        ids.sort_unstable();
        let mut v: Vec<(u32, f32)> = Vec::new();
        for run in ids.chunk_by(|a, b| a == b) {
            let tf = run.len() as f32;
            v.push((run[0], sublinear(tf) * self.tfidf_idf(run[0])));
        }
        let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|(_, w)| *w /= norm);
        }
        v
    }

    /// The TF-IDF cosine of every document with a weighted sum of queries
    /// (unit vectors from [`Bm25::query_vector`], e.g. a text with weight 1
    /// and texts to avoid with a negative one), into `acc` (one score per
    /// document; its old content is dropped). The document norm is applied
    /// once per document at the end, not once per posting.
    pub fn cosine_scores(&self, queries: &[(&[(u32, f32)], f32)], acc: &mut Vec<f32>) {
        acc.clear();
        acc.resize(self.docs(), 0.0);
        let table: [f32; 16] = std::array::from_fn(|tf| sublinear(tf as f32));
        let mut dense = Vec::new();
        for &(query, weight) in queries {
            for &(ti, qw) in query {
                let w = self.tfidf_idf(ti) * qw * weight;
                if let Some(row) = self.dense.row(ti) {
                    let by_tf: [f32; 8] = std::array::from_fn(|tf| table[tf] * w);
                    dense.push((row, by_tf, w));
                    continue;
                }
                let (lo, hi) = self.range(ti);
                if self.packed.is_empty() {
                    for (&d, &tf) in self.docs[lo..hi].iter().zip(&self.tfs[lo..hi]) {
                        acc[d as usize] += w * sublinear(f32::from(tf));
                    }
                    continue;
                }
                let by_tf = table.map(|s| s * w);
                for (i, &p) in self.packed[lo..hi].iter().enumerate() {
                    let code = (p & 15) as usize;
                    let add = if code < 15 {
                        by_tf[code]
                    } else {
                        w * sublinear(f32::from(self.tfs[lo + i]))
                    };
                    acc[(p >> 4) as usize] += add;
                }
            }
        }
        // The dense rows block by block, so that each block of scores stays
        // in the first-level cache while every row adds to it, four rows a
        // pass over the block.
        const BLOCK: usize = 2048;
        let codes: Vec<(&[u8], [f32; 8])> = dense
            .iter()
            .map(|(row, by_tf, _)| (row.codes.as_slice(), *by_tf))
            .collect();
        for start in (0..acc.len()).step_by(BLOCK) {
            let end = (start + BLOCK).min(acc.len());
            add_codes(&codes, start, &mut acc[start..end]);
        }
        for (row, _, w) in &dense {
            for &(d, tf) in &row.over {
                acc[d as usize] += w * sublinear(f32::from(tf));
            }
        }
        for (a, &inv) in acc.iter_mut().zip(&self.inv_norm) {
            *a *= inv;
        }
    }

    /// The persisted index when it matches `fingerprint`, else built from
    /// the library and saved (`writer`: a failed save is an error; a
    /// reader's save is best effort).
    pub fn load_or_build(lib: &Library, fingerprint: &str, writer: bool) -> Result<Bm25> {
        if fingerprint == lib.fingerprint() {
            let access = if writer {
                Access::Writer
            } else {
                Access::Reader
            };
            return Ok(refresh::<Bm25>(lib, (), access)?.0);
        }
        let path = lib.derived_dir().join(LEXICAL_FILE);
        if let Some(b) = Bm25::load(&path, fingerprint, lib.len()) {
            return Ok(b);
        }
        let b = Bm25::build(lib.papers());
        match b.save(&path, fingerprint) {
            Err(e) if writer => Err(e),
            _ => Ok(b),
        }
    }

    pub fn save(&self, path: &Path, fingerprint: &str) -> Result<()> {
        Stored {
            vocab: &self.vocab,
            starts: &self.starts,
            docs: &self.docs,
            tfs: &self.tfs,
            doc_len: &self.doc_len,
            singles: &self.singles,
        }
        .save(path, fingerprint)
    }

    /// The fingerprint and document count a saved index's header names.
    pub fn peek(path: &Path) -> Option<Built> {
        let b = crate::store::codec::head(path, 1024)?;
        let mut r = Reader::new(&b);
        if r.take(8)? != MAGIC || r.u32()? != VERSION {
            return None;
        }
        let fingerprint = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let rows = usize::try_from(r.u64()?).ok()?;
        Some(Built { fingerprint, rows })
    }

    /// Loads a saved index for `fingerprint` over `docs` documents; `None`
    /// when missing, stale or damaged (segments beside it are not read:
    /// see the [`DerivedFile`] impl).
    pub fn load(path: &Path, fingerprint: &str, docs: usize) -> Option<Bm25> {
        Parts::read(path, fingerprint, docs).map(Self::assemble)
    }

    pub fn docs(&self) -> usize {
        self.doc_len.len()
    }

    /// Documents containing `term`.
    pub fn df(&self, term: &str) -> usize {
        match self.vocab.find(term) {
            Some(t) => self.df_of(t),
            None if is_phrase(term) => self.single_range(phrase_hash(term)).len().min(1),
            None => 0,
        }
    }

    /// The distinct vocabulary ids of `terms` (words; unknown ones
    /// dropped), sorted.
    pub fn distinct_ids(&self, terms: &[String]) -> Vec<u32> {
        distinct(terms.iter().filter_map(|t| self.vocab.find(t)))
    }

    /// The TF-IDF idf of `term` (of an unseen term: as if in no document).
    pub fn idf_tfidf(&self, term: &str) -> f32 {
        match self.vocab.find(term) {
            Some(t) => self.tfidf_idf(t),
            None => (1.0 + self.docs() as f32).ln() + 1.0,
        }
    }

    /// How often document `d` uses term `ti` (0: not at all).
    fn tf_in(&self, ti: u32, d: u32) -> u32 {
        let (lo, hi) = self.range(ti);
        match self.docs[lo..hi].binary_search(&d) {
            Ok(i) => u32::from(self.tfs[lo + i]),
            Err(_) => 0,
        }
    }

    fn df_of(&self, ti: u32) -> usize {
        (self.starts[ti as usize + 1] - self.starts[ti as usize]) as usize
    }

    /// Inverse document frequency (BM25+ style, never negative).
    pub fn idf(&self, term: &str) -> f32 {
        self.vocab
            .find(term)
            .map_or_else(|| self.idf_for_df(0), |t| self.idf_of(t))
    }

    fn idf_for_df(&self, df: usize) -> f32 {
        let (n, df) = (self.docs() as f32, df as f32);
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// Query-side weights: each distinct known term scores its idf times its
    /// saturated frequency in the query, `qtf (K3 + 1) / (qtf + K3)`: a term
    /// a whole-abstract query repeats is central to it, but cannot dominate.
    /// On the labelled arXiv fixture this lifted lexical nDCG@10 from 0.302
    /// (each distinct term once) to 0.313; keeping only the 30 or 60
    /// heaviest terms (Lucene's more-like-this) lowered it to 0.291-0.312.
    fn query_weights(&self, query_terms: &[String]) -> Vec<(u32, f32)> {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for t in query_terms {
            if let Some(ti) = self.vocab.find(t) {
                *counts.entry(ti).or_default() += 1.0;
            }
        }
        let mut w: Vec<(u32, f32)> = counts
            .into_iter()
            .map(|(ti, qtf)| (ti, self.idf_of(ti) * qtf * (K3 + 1.0) / (qtf + K3)))
            .collect();
        // A fixed order keeps the float sums identical run to run.
        w.sort_unstable_by_key(|&(ti, _)| ti);
        w
    }

    fn idf_of(&self, ti: u32) -> f32 {
        self.idf_for_df(self.df_of(ti))
    }

    /// Adds `weight` times the BM25 score of every document for the query
    /// terms into `acc` (one slot per document), with the query-side
    /// weights of `query_weights`.
    pub fn accumulate(&self, query_terms: &[String], weight: f32, acc: &mut [f32]) {
        let norm = self.avg_len.max(1.0);
        for (ti, qw) in self.query_weights(query_terms) {
            let qw = qw * weight;
            let (a, b) = (
                self.starts[ti as usize] as usize,
                self.starts[ti as usize + 1] as usize,
            );
            for (&d, &tf) in self.docs[a..b].iter().zip(&self.tfs[a..b]) {
                let tf = f32::from(tf);
                let len = self.doc_len[d as usize] as f32;
                acc[d as usize] += qw * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / norm));
            }
        }
    }

    /// BM25 scores of every document with at least one query term.
    pub fn scores(&self, query_terms: &[String]) -> HashMap<usize, f32> {
        let mut acc = vec![0f32; self.docs()];
        self.accumulate(query_terms, 1.0, &mut acc);
        acc.into_iter()
            .enumerate()
            .filter(|(_, s)| *s != 0.0)
            .collect()
    }
}

/// Sublinear term frequency, `1 + ln tf`: the tenth mention of a term adds
/// little.
/// The postings of the most common terms as one byte per document: a term
/// in most papers ("model", "learning") has as many postings as papers,
/// and adding them one by one at scattered positions was most of a
/// query's scoring time. As a row of per-document codes it is read in
/// order, eight documents per AVX2 step, all of a query's rows over one
/// cache-sized block of scores before the next. Each document gets the
/// same addends as from its postings (0 where the term is absent), summed
/// in another order.
#[derive(Debug, Clone, Default, PartialEq)]
struct Dense {
    /// Sorted ids of the terms kept dense.
    terms: Vec<u32>,
    rows: Vec<DenseRow>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct DenseRow {
    /// Per document, the term's frequency when 1..=7, else 0 (absent, or
    /// in `over`): one lookup in a table of eight scores.
    codes: Vec<u8>,
    /// (document, frequency) where the frequency is over 7.
    over: Vec<(u32, u16)>,
}

impl Dense {
    /// Smallest library that keeps dense rows (below it scoring is cheap).
    const MIN_DOCS: usize = 4096;

    /// The dense rows of `b`'s terms in at least an eighth of its documents:
    /// at 100k papers, 3,000 queries took 13.8 s with a quarter, 12.2 s with
    /// an eighth, 13.3 s with a sixteenth (a row is N bytes read in order,
    /// eight documents a step; postings are 4 bytes each, added one by one).
    fn of(b: &Bm25) -> Dense {
        let n = b.docs();
        let mut dense = Dense::default();
        if n < Self::MIN_DOCS {
            return dense;
        }
        for ti in 0..b.vocab.len() as u32 {
            let (lo, hi) = b.range(ti);
            if 8 * (hi - lo) < n {
                continue;
            }
            let mut row = DenseRow {
                codes: vec![0; n],
                over: Vec::new(),
            };
            for (&d, &tf) in b.docs[lo..hi].iter().zip(&b.tfs[lo..hi]) {
                if tf <= DenseRow::MAX_CODE {
                    row.codes[d as usize] = tf as u8;
                } else {
                    row.over.push((d, tf));
                }
            }
            dense.terms.push(ti);
            dense.rows.push(row);
        }
        dense
    }

    fn row(&self, ti: u32) -> Option<&DenseRow> {
        self.terms.binary_search(&ti).ok().map(|i| &self.rows[i])
    }
}

impl DenseRow {
    /// The highest frequency kept as a code.
    const MAX_CODE: u16 = 7;
}

/// Adds each row's `table[code]` to the scores `acc` of the documents from
/// `first` on, row after row for each document (`table[0]` must be 0;
/// frequencies over [`DenseRow::MAX_CODE`] are left to the caller).
fn add_codes(rows: &[(&[u8], [f32; 8])], first: usize, acc: &mut [f32]) {
    let n = rows
        .iter()
        .map(|(c, _)| c.len().saturating_sub(first))
        .min()
        .unwrap_or(0)
        .min(acc.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // Four rows a pass: the scores are loaded and stored once for four
        // rows' addends.
        let mut groups = rows.chunks_exact(4);
        for g in groups.by_ref() {
            let codes = [0, 1, 2, 3].map(|r| &g[r].0[first..first + n]);
            let tables = [0, 1, 2, 3].map(|r| &g[r].1);
            // SAFETY: AVX2 is present; every slice holds `n` entries.
            done = unsafe { add_codes_avx2(codes, tables, &mut acc[..n]) };
        }
        for (c, t) in groups.remainder() {
            // SAFETY: as above.
            done = unsafe { add_codes_avx2([&c[first..first + n]], [t], &mut acc[..n]) };
        }
    }
    // What the SIMD path left (all without AVX2), row after row.
    for (c, t) in rows {
        for (a, &x) in acc[done..n].iter_mut().zip(&c[first + done..first + n]) {
            *a += t[usize::from(x & 7)];
        }
    }
}

/// `acc[i] += tables[r][codes[r][i]]` for each row `r` in turn, eight
/// documents at a time (codes below 8); returns how many leading entries it
/// did (a multiple of 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_codes_avx2<const R: usize>(
    codes: [&[u8]; R],
    tables: [&[f32; 8]; R],
    acc: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let n = codes.iter().fold(acc.len(), |n, c| n.min(c.len())) / 8 * 8;
    // SAFETY: every load and store below is at `i..i + 8` with `i + 8 <= n`.
    unsafe {
        let mut t = [_mm256_setzero_ps(); R];
        for r in 0..R {
            t[r] = _mm256_loadu_ps(tables[r].as_ptr());
        }
        let mut i = 0;
        while i < n {
            let p = acc.as_mut_ptr().add(i);
            let mut s = _mm256_loadu_ps(p);
            for r in 0..R {
                let c = _mm_loadl_epi64(codes[r].as_ptr().add(i) as *const __m128i);
                s = _mm256_add_ps(s, _mm256_permutevar8x32_ps(t[r], _mm256_cvtepu8_epi32(c)));
            }
            _mm256_storeu_ps(p, s);
            i += 8;
        }
    }
    n
}

fn sublinear(tf: f32) -> f32 {
    // Small whole frequencies (nearly all) from a table: a query weighs
    // a few hundred terms and each "why" a few hundred more.
    static SMALL: std::sync::OnceLock<[f32; 32]> = std::sync::OnceLock::new();
    let small = SMALL.get_or_init(|| std::array::from_fn(|n| sublinear_exact(n as f32)));
    if (0.0..32.0).contains(&tf) && tf.fract() == 0.0 {
        small[tf as usize]
    } else {
        sublinear_exact(tf)
    }
}

fn sublinear_exact(tf: f32) -> f32 {
    if tf > 0.0 { 1.0 + tf.ln() } else { 0.0 }
}

/// Largest share of the library a single "why" term may appear in: above
/// it, words like "iteration", "pattern" or "produce" crowd in.
const SPECIFIC_TERM: f32 = 0.02;
/// Largest share for each word of a "why" phrase ("language modeling" is
/// specific although "language" alone is not).
const SPECIFIC_PHRASE_WORD: f32 = 0.15;

/// The shared terms and phrases that carry the most weight between a query
/// and a paper, best first: two-word phrases both contain, then single
/// terms, each ranked by its contribution to the TF-IDF cosine (weight in
/// the query x weight in the paper), so a term central to both beats a rare
/// word each mentions once. Generic words are left out: a single term must
/// be specific (in at most [`SPECIFIC_TERM`] of the library) and not a bare
/// participle ("interpreted", "weighted"); both words of a phrase must be
/// in at most [`SPECIFIC_PHRASE_WORD`] and the phrase must not start with a
/// participle.
pub fn why_related(
    bm: &Bm25,
    query: &WhyQuery<'_>,
    doc_terms: &[String],
    max: usize,
) -> Vec<String> {
    why_from(bm, query, &query.shared_by_terms(doc_terms), max)
}

/// [`why_related`] for document `d` of the index, from its postings rather
/// than its text (which every result would otherwise tokenise again).
pub fn why_related_doc(bm: &Bm25, query: &WhyQuery<'_>, d: usize, max: usize) -> Vec<String> {
    if d >= bm.docs() {
        return Vec::new();
    }
    why_from(bm, query, &query.shared_by_index(bm, d as u32), max)
}

/// What a document shares with a query: per query term, how often the
/// document uses it (0: not at all), and the query's adjacent pairs (as
/// term positions) that the document has adjacent too.
struct Shared {
    tf: Vec<u32>,
    pairs: Vec<(usize, usize)>,
}

fn why_from(bm: &Bm25, query: &WhyQuery<'_>, shared: &Shared, max: usize) -> Vec<String> {
    let terms = &query.terms;
    // The document's weight of each shared term (no other term can
    // contribute).
    let wd: Vec<f32> = shared
        .tf
        .iter()
        .zip(terms)
        .map(|(&n, (_, q))| {
            if n > 0 {
                sublinear(n as f32) * q.idf
            } else {
                0.0
            }
        })
        .collect();
    let contribution = |i: usize| terms[i].1.weight * wd[i];
    // The pairs are those [`WhyQuery`] kept: of two specific words, the
    // first not a participle.
    let mut phrases: Vec<(f32, String)> = shared
        .pairs
        .iter()
        .map(|&(a, b)| {
            (
                contribution(a) + contribution(b),
                format!("{} {}", terms[a].0, terms[b].0),
            )
        })
        .collect();
    phrases.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut singles: Vec<(f32, String)> = (0..terms.len())
        .filter(|&i| {
            shared.tf[i] > 0
                && !common(bm, terms[i].1.df, SPECIFIC_TERM)
                && !is_participle(terms[i].0)
                && !is_markup(terms[i].0)
        })
        .map(|i| (contribution(i), terms[i].0.to_string()))
        .collect();
    singles.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<String> = Vec::new();
    for (_, p) in phrases.into_iter().chain(singles) {
        if out.len() >= max {
            break;
        }
        // Skip a single term already inside a chosen phrase, and a phrase
        // whose words are both shown already.
        let words: Vec<&str> = p.split(' ').collect();
        if words
            .iter()
            .all(|w| out.iter().any(|o| o.split(' ').any(|x| x == *w)))
        {
            continue;
        }
        out.push(p);
    }
    out
}

/// Whether a term in `df` papers is too common to show as a reason. In a
/// library of a few dozen papers every term is "common": there a term in
/// up to three papers still counts as specific.
fn common(bm: &Bm25, df: usize, share: f32) -> bool {
    df > 3 && df as f32 > share * bm.docs() as f32
}

/// A bare participle ("interpreted", "weighted"): no reason on its own.
fn is_participle(t: &str) -> bool {
    t.len() > 4 && t.ends_with("ed")
}

/// TeX formatting commands, sorted (binary search).
const TEX: &[&str] = &[
    "boldsymbol",
    "cdot",
    "cdots",
    "ddot",
    "ddots",
    "dfrac",
    "emph",
    "frac",
    "geq",
    "infty",
    "ldot",
    "ldots",
    "leq",
    "mathbb",
    "mathbf",
    "mathcal",
    "mathfrak",
    "mathit",
    "mathrm",
    "mathscr",
    "mathsf",
    "mathtt",
    "neq",
    "operatorname",
    "overline",
    "rightarrow",
    "sqrt",
    "textbf",
    "textit",
    "textrm",
    "textsc",
    "textsf",
    "texttt",
    "tfrac",
    "vdot",
    "vdots",
    "widehat",
    "widetilde",
];

/// The name of a TeX formatting command left in an abstract
/// (`$\mathcal{O}(n)$` gives "mathcal"): shared markup, not a reason.
fn is_markup(t: &str) -> bool {
    TEX.binary_search(&t).is_ok()
}

/// One query term as [`why_related`] weighs it.
#[derive(Debug, Clone, Copy)]
struct WhyTerm {
    /// `(1 + ln tf) * idf` in the query.
    weight: f32,
    idf: f32,
    df: usize,
    /// Its vocabulary id, if the index has it.
    id: Option<u32>,
}

/// A pair of adjacent query terms (positions in [`WhyQuery::terms`]) and
/// how the index holds the phrase.
#[derive(Debug, Clone)]
struct WhyPair {
    a: usize,
    b: usize,
    /// The phrase's vocabulary id, if at least two papers use it.
    id: Option<u32>,
    /// Else the documents that use it alone (kept as a hash: none, or one
    /// unless hashes collide).
    alone: Vec<u32>,
}

/// The query side of [`why_related`], prepared once per query (its terms
/// looked up once, not once per result shown).
#[derive(Debug, Clone)]
pub struct WhyQuery<'t> {
    /// The distinct query terms, sorted.
    terms: Vec<(&'t str, WhyTerm)>,
    /// The distinct pairs of different adjacent terms, sorted.
    pairs: Vec<WhyPair>,
}

impl<'t> WhyQuery<'t> {
    pub fn new(bm: &Bm25, query_terms: &'t [String]) -> WhyQuery<'t> {
        Self::of(bm, &bm.lookup(query_terms))
    }

    /// The query side of terms already looked up.
    pub fn of(bm: &Bm25, q: &QueryTerms<'t>) -> WhyQuery<'t> {
        let query_terms = q.terms;
        let mut sorted: Vec<(&str, Option<u32>)> = query_terms
            .iter()
            .map(String::as_str)
            .zip(q.words.iter().copied())
            .collect();
        sorted.sort_unstable();
        let terms: Vec<(&str, WhyTerm)> = sorted
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| {
                let (t, id) = run[0];
                let (idf, df) = match id {
                    Some(id) => (bm.tfidf_idf(id), bm.df_of(id)),
                    None => (bm.idf_tfidf(t), bm.df(t)),
                };
                let term = WhyTerm {
                    weight: sublinear(run.len() as f32) * idf,
                    idf,
                    df,
                    id,
                };
                (t, term)
            })
            .collect();
        let pos = |t: &str| terms.binary_search_by(|x| x.0.cmp(t)).ok();
        // Only the pairs that can be shown: of two specific words, the
        // first not a participle.
        let specific = |i: usize| !common(bm, terms[i].1.df, SPECIFIC_PHRASE_WORD);
        let mut pairs: Vec<(usize, usize, Option<u32>)> = query_terms
            .windows(2)
            .zip(&q.phrases)
            .filter(|(w, _)| {
                w[0] != w[1] && !is_participle(&w[0]) && !is_markup(&w[0]) && !is_markup(&w[1])
            })
            .filter_map(|(w, &id)| Some((pos(&w[0])?, pos(&w[1])?, id)))
            .filter(|&(a, b, _)| specific(a) && specific(b))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let pairs = pairs
            .into_iter()
            .map(|(a, b, id)| {
                let alone = match id {
                    Some(_) => Vec::new(),
                    None => bm
                        .single_range(phrase_hash(&format!("{} {}", terms[a].0, terms[b].0)))
                        .map(|i| decode_single(bm.single(i)).1)
                        .collect(),
                };
                WhyPair { a, b, id, alone }
            })
            .collect();
        WhyQuery { terms, pairs }
    }

    fn position(&self, t: &str) -> Option<usize> {
        self.terms.binary_search_by(|x| x.0.cmp(t)).ok()
    }

    /// What a document given as its terms shares with the query.
    fn shared_by_terms(&self, doc_terms: &[String]) -> Shared {
        let mut tf = vec![0u32; self.terms.len()];
        let at: Vec<Option<usize>> = doc_terms.iter().map(|t| self.position(t)).collect();
        for i in at.iter().flatten() {
            tf[*i] += 1;
        }
        let mut pairs: Vec<(usize, usize)> = at
            .windows(2)
            .filter_map(|w| Some((w[0]?, w[1]?)))
            .filter(|&(a, b)| {
                self.pairs
                    .binary_search_by(|p| (p.a, p.b).cmp(&(a, b)))
                    .is_ok()
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        Shared { tf, pairs }
    }

    /// What document `d` of `bm` shares with the query, read off the
    /// index (which counts the same words and adjacent pairs of the same
    /// terms): as [`WhyQuery::shared_by_terms`] of its terms, except that
    /// words [`why_from`] cannot show are left at 0.
    fn shared_by_index(&self, bm: &Bm25, d: u32) -> Shared {
        let n = self.terms.len();
        let mut tf = vec![0u32; n];
        let mut known = vec![false; n];
        let mut look = |i: usize, tf: &mut [u32]| {
            if !known[i] {
                known[i] = true;
                tf[i] = self.terms[i].1.id.map_or(0, |id| bm.tf_in(id, d));
            }
        };
        // The words that can be shown alone; a word too common for that
        // only when a shown phrase holds it (its postings are long, and
        // looking them up was most of this function's time).
        for i in 0..n {
            if !common(bm, self.terms[i].1.df, SPECIFIC_TERM) {
                look(i, &mut tf);
            }
        }
        let mut pairs = Vec::new();
        for p in &self.pairs {
            let present = match p.id {
                Some(id) => bm.tf_in(id, d) > 0,
                None => p.alone.contains(&d),
            };
            if present {
                look(p.a, &mut tf);
                look(p.b, &mut tf);
                pairs.push((p.a, p.b));
            }
        }
        Shared { tf, pairs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(title: &str, abs: &str) -> Paper {
        Paper {
            title: title.into(),
            abs: abs.into(),
            ..Default::default()
        }
    }

    #[test]
    fn dense_rows_and_packed_postings_score_exactly_as_plain_postings() {
        // 5,003 papers (not a multiple of 8: the SIMD path leaves a tail):
        // "everywhere" in all (17 times in every 7th: a
        // frequency over the row's codes), "often" in a third (both dense
        // rows), "sometimes" in a tenth (postings), a rarer word each.
        let papers: Vec<Paper> = (0..5003)
            .map(|i| {
                let mut abs = String::from("everywhere ");
                if i % 7 == 0 {
                    abs.push_str(&"everywhere ".repeat(16));
                }
                if i % 3 == 0 {
                    abs.push_str("often often ");
                }
                if i % 10 == 0 {
                    abs.push_str("sometimes ");
                }
                abs.push_str(&format!("rare{} word{}", i % 997, i % 13));
                paper(&format!("paper {i}"), &abs)
            })
            .collect();
        let full = Bm25::build(&papers);
        let common: Vec<&str> = full
            .dense
            .terms
            .iter()
            .map(|&t| full.vocab.get(t as usize))
            .collect();
        assert!(
            common.contains(&"everywher") || common.contains(&"everywhere"),
            "{common:?}"
        );
        assert!(
            !common.iter().any(|t| t.starts_with("sometim")),
            "{common:?}"
        );
        let mut packed_only = full.clone();
        packed_only.dense = Dense::default();
        let mut plain = packed_only.clone();
        plain.packed.clear();
        let q = full.query_vector(&text::terms("everywhere often sometimes rare5 word3"));
        let neg = full.query_vector(&text::terms("often rare7"));
        let score = |b: &Bm25| {
            let mut acc = Vec::new();
            b.cosine_scores(&[(&q, 1.0), (&neg, -0.5)], &mut acc);
            acc
        };
        let (a, b, c) = (score(&full), score(&packed_only), score(&plain));
        // The same addends: packed equals plain exactly; dense rows add
        // theirs after the postings, so the sums differ in the last bits.
        assert_eq!(b, c);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1e-3), "{x} {y}");
        }
        assert!(a.iter().any(|&x| x > 0.0) && a.iter().any(|&x| x < 0.0));
    }

    #[test]
    fn an_index_without_some_papers_equals_one_built_without_them() {
        // Phrases two papers share ("graph kernel" in 0 and 3) become single
        // when one of them goes; a word only removed papers use leaves.
        let papers = vec![
            paper("graph kernel methods", "graph kernel for molecules"),
            paper("unique zebra words", "zebra zebra stripes"),
            paper("diffusion models", "score based diffusion models"),
            paper("graph kernel survey", "a survey of kernels"),
            paper("diffusion for graphs", "graph diffusion kernel"),
            paper("score matching", "denoising score matching"),
        ];
        let full = Bm25::build(&papers);
        for removed in [vec![0], vec![1, 3], vec![0, 2, 5], vec![5], vec![]] {
            let kept: Vec<Paper> = papers
                .iter()
                .enumerate()
                .filter(|(i, _)| !removed.contains(i))
                .map(|(_, p)| p.clone())
                .collect();
            assert_eq!(
                full.clone().without_docs(&removed),
                Bm25::build(&kept),
                "removed {removed:?}"
            );
        }
        // And with dense rows and packed postings (a large library).
        let many: Vec<Paper> = (0..7000)
            .map(|i| {
                paper(
                    &format!("paper {i} common"),
                    &format!("word{} shared{} term", i % 7, i % 11),
                )
            })
            .collect();
        let removed: Vec<usize> = (0..7000).filter(|i| i % 5 == 1).collect();
        let kept: Vec<Paper> = many
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 != 1)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(
            Bm25::build(&many).without_docs(&removed),
            Bm25::build(&kept)
        );
    }

    #[test]
    fn why_from_the_index_equals_why_from_the_text() {
        // Made-up abstracts over a small vocabulary: shared words, phrases
        // two papers use (in the vocabulary) and phrases one uses (kept as
        // hashes only), with repeats; participles and common words too.
        let mut words: Vec<String> = [
            "graph",
            "neural",
            "network",
            "diffusion",
            "kernel",
            "weighted",
            "learned",
        ]
        .map(String::from)
        .to_vec();
        words.extend((0..120).map(|i| format!("topic{i}")));
        fn next(seed: &mut u64) -> usize {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 33) as usize
        }
        let mut seed = 7u64;
        // Skewed: low indices (the common words) far more often.
        let text = |n: usize, seed: &mut u64| -> String {
            (0..n)
                .map(|_| {
                    // The named words and topic0..topic39 only.
                    let r = next(seed) % 47;
                    words[r * r / 47].as_str()
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Planted phrases of specific words, each in a few papers.
        let mut papers: Vec<Paper> = (0..80)
            .map(|_| {
                let planted = |x: usize| format!("topic{} topic{}", 40 + x, 80 + x);
                let abs = format!(
                    "{} {} {} {}",
                    text(15, &mut seed),
                    planted(next(&mut seed) % 30),
                    text(15, &mut seed),
                    planted(next(&mut seed) % 30)
                );
                paper(&text(4, &mut seed), &abs)
            })
            .collect();
        // A phrase of two words only paper 20 uses.
        papers[20].abs.push_str(" crystalline lattice");
        let bm = Bm25::build(&papers);
        let mut queries: Vec<Vec<String>> = papers.iter().take(12).map(paper_terms).collect();
        queries.push(text::terms(
            "weighted graph kernel for sparse protein fold prediction",
        ));
        queries.push(text::terms(&text(40, &mut seed)));
        // A library paper's text as free text: its phrases no other paper
        // uses are shared with it (the index keeps those as hashes only).
        queries.push(text::terms(&papers[20].abs));
        let mut checked = 0;
        for q in &queries {
            let wq = WhyQuery::new(&bm, q);
            for (d, p) in papers.iter().enumerate() {
                let by_text = why_related(&bm, &wq, &paper_terms(p), 50);
                assert_eq!(why_related_doc(&bm, &wq, d, 50), by_text, "doc {d}");
                checked += usize::from(by_text.iter().any(|w| w.contains(' ')));
            }
        }
        assert!(checked > 100, "{checked}");
        let alone = WhyQuery::new(&bm, queries.last().expect("query"));
        assert!(alone.pairs.iter().any(|p| p.id.is_none()));
        let why = why_related_doc(&bm, &alone, 20, 50);
        assert!(why.iter().any(|w| w.starts_with("crystallin")), "{why:?}");
    }

    #[test]
    fn extending_equals_building_over_all_papers() {
        let all = vec![
            paper("Graph neural networks", "message passing on graphs"),
            paper("Diffusion models", "denoising score matching for images"),
            paper("Graph diffusion", "heat kernels on graphs and images"),
            paper("Bandits", "regret bounds for exploration"),
            paper("Zebra", "an unseen word and graphs"),
            paper("Kernels", "heat kernels and message passing"),
            paper("Regret", "regret bounds again, heat kernels"),
        ];
        for cut in 0..=all.len() {
            let grown = Bm25::build(&all[..cut]).extend_with(&all[cut..]);
            assert_eq!(grown, Bm25::build(&all), "cut at {cut}");
        }
        // "heat kernel": single in the first three papers, then shared.
        assert_eq!(Bm25::build(&all[..3]).vocab.find("heat kernel"), None);
        assert_eq!(Bm25::build(&all[..3]).df("heat kernel"), 1);
        let grown = Bm25::build(&all[..3]).extend_with(&all[3..]);
        assert_eq!(grown.df("heat kernel"), 3);
        assert!(grown.vocab.find("message passing").is_some());
        assert!(grown.vocab.find("unseen word").is_none());
    }

    #[test]
    fn segments_beside_the_file_load_as_the_index_built_over_all_papers() {
        // Phrases shared across the base and a segment ("heat kernels": one
        // base paper, then segments), within one segment, and across two
        // segments only ("regret bounds").
        let all = vec![
            paper("Graph neural networks", "message passing on graphs"),
            paper("Diffusion models", "denoising score matching for images"),
            paper("Graph diffusion", "heat kernels on graphs and images"),
            paper("Bandits", "regret bounds for exploration"),
            paper("Zebra", "an unseen word and graphs"),
            paper("Kernels", "heat kernels and message passing"),
            paper("Regret", "regret bounds again, heat kernels"),
            paper("Zebra again", "an unseen phrase"),
        ];
        let built = |n: usize| Built {
            fingerprint: format!("fp{n}"),
            rows: n,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEXICAL_FILE);
        for (base, cuts) in [(3, vec![5, 6, 8]), (2, vec![8]), (1, vec![2, 4, 7, 8])] {
            Bm25::build(&all[..base])
                .save(&path, &built(base).fingerprint)
                .unwrap();
            let mut from = base;
            for &to in &cuts {
                let (add, len) = postings_of(&all[from..to], from);
                let body = encode_segment(&add, &len);
                Delta::append(&path, &built(base), from, &built(to), &body).unwrap();
                assert_eq!(<Bm25 as DerivedFile>::peek(&path), Some(built(to)));
                from = to;
            }
            for &n in std::iter::once(&base).chain(&cuts) {
                let loaded = Bm25::load_at(&path, &built(n));
                assert_eq!(loaded, Some(Bm25::build(&all[..n])), "base {base}, at {n}");
            }
            assert_eq!(
                Bm25::load_at(&path, &built(4).clone()).is_some(),
                cuts.contains(&4)
            );
        }
        // A new base drops the segments of the old one.
        Bm25::build(&all).save(&path, "fp8").unwrap();
        assert!(Delta::read(&path).is_none());
        // The segments stop growing past an eighth of the file.
        let many: Vec<Paper> = (0..400)
            .map(|i| paper(&format!("paper {i} title"), &format!("word{} text", i % 13)))
            .collect();
        Bm25::build(&many[..300]).save(&path, "fp300").unwrap();
        let mut at = built(300);
        at.fingerprint = "fp300".into();
        let mut segments = 0;
        loop {
            let next = built(at.rows + 5);
            let papers = &many[at.rows..next.rows];
            assert!(Bm25::append_segment(&path, &at, papers, &next.fingerprint).unwrap());
            at = next;
            assert_eq!(
                Bm25::load_at(&path, &at),
                Some(Bm25::build(&many[..at.rows]))
            );
            let Some(delta) = Delta::read(&path) else {
                break;
            };
            assert!(delta.bytes() * FOLD <= fs::metadata(&path).unwrap().len());
            segments += 1;
        }
        // Folded into a new file with the last papers: no segment left.
        assert!(segments > 1 && at.rows < 400, "{segments} segments");
        assert_eq!(Bm25::peek(&path), Some(at.clone()));
        assert_eq!(
            Bm25::load(&path, &at.fingerprint, at.rows),
            Some(Bm25::build(&many[..at.rows]))
        );
    }

    #[test]
    fn phrases_count_once_two_papers_share_them() {
        let papers = vec![
            paper(
                "Language models",
                "pretrained language models follow instructions",
            ),
            paper("Language evolution", "how models change a language"),
            paper(
                "Instruction tuning",
                "tuning language models to follow instructions",
            ),
        ];
        let bm = Bm25::build(&papers);
        let ids = |v: &[(u32, f32)]| -> Vec<String> {
            v.iter()
                .map(|&(t, _)| bm.vocab.get(t as usize).to_string())
                .collect()
        };
        let q = ids(&bm.query_vector(&paper_terms(&papers[0])));
        // In two papers: counts. Only in this one: indexed, not counted.
        assert!(q.contains(&"language model".to_string()), "{q:?}");
        assert!(q.contains(&"follow instruction".to_string()), "{q:?}");
        assert!(!q.contains(&"pretrained language".to_string()), "{q:?}");
        assert_eq!(bm.df("pretrained language"), 1);
        // Words alone for the topic space.
        assert!(
            ids(&bm.tfidf_vector(&paper_terms(&papers[0])))
                .iter()
                .all(|t| !is_phrase(t))
        );
        // The same words in another order share no phrase: paper 2 (which
        // has "language model") is closer to paper 0 than paper 1 is,
        // though paper 1 has both words too.
        let cos = |a: usize, b: usize| {
            let (x, y) = (
                bm.query_vector(&paper_terms(&papers[a])),
                bm.query_vector(&paper_terms(&papers[b])),
            );
            x.iter()
                .filter_map(|(t, w)| y.iter().find(|(u, _)| u == t).map(|(_, v)| w * v))
                .sum::<f32>()
        };
        assert!(cos(0, 2) > cos(0, 1), "{} vs {}", cos(0, 2), cos(0, 1));
    }

    #[test]
    fn the_vocabulary_finds_every_term_and_rejects_bad_bounds() {
        let mut v = Vocab::default();
        let terms = ["a b", "alpha", "beta", "beta gamma", "zeta", "é"];
        for t in terms {
            v.push(t);
        }
        for (i, t) in terms.iter().enumerate() {
            assert_eq!(v.find(t), Some(i as u32));
            assert_eq!(v.get(i), *t);
        }
        for t in ["", "a", "b", "alphabet", "gamma", "zz"] {
            assert_eq!(v.find(t), None, "{t}");
        }
        let text = v.text.clone();
        assert!(Vocab::from_parts(text.clone(), v.ends.clone()).is_some());
        // An end past the text, backwards, inside "é", or short of the end.
        for ends in [vec![3, 99], vec![5, 3], vec![27, 28], vec![3, 8]] {
            assert!(
                Vocab::from_parts(text.clone(), ends.clone()).is_none(),
                "{ends:?}"
            );
        }
    }

    #[test]
    fn bm25_prefers_rare_shared_terms_and_explains_them() {
        let papers = vec![
            paper(
                "Graph neural networks for molecules",
                "Message passing on molecular graphs.",
            ),
            paper(
                "Convolutional networks for images",
                "Image classification with deep networks.",
            ),
            paper(
                "Molecular property prediction",
                "Graph neural networks predict molecular properties.",
            ),
        ];
        let bm = Bm25::build(&papers);
        let q = text::terms("graph neural networks molecular");
        let s = bm.scores(&q);
        assert!(s[&0] > s[&1] && s[&2] > s[&1]);
        let why = why_related(&bm, &WhyQuery::new(&bm, &q), &paper_terms(&papers[2]), 3);
        assert_eq!(why[0], "graph neural");
    }

    #[test]
    fn tex_markup_is_never_a_reason() {
        let mut papers: Vec<Paper> = (0..60)
            .map(|i| paper(&format!("filler {i}"), &format!("topic{i} words{i}")))
            .collect();
        papers.push(paper(
            "Bandits with delays",
            "We prove a $\\mathcal{O}(\\sqrt{T})$ regret bound for delayed bandits.",
        ));
        papers.push(paper(
            "Delayed feedback",
            "A $\\mathcal{O}(\\sqrt{T})$ regret bound under delayed feedback.",
        ));
        let bm = Bm25::build(&papers);
        let q = paper_terms(&papers[60]);
        let why = why_related(&bm, &WhyQuery::new(&bm, &q), &paper_terms(&papers[61]), 10);
        assert!(why.iter().any(|t| t.contains("regret")), "{why:?}");
        assert!(
            !why.iter()
                .any(|t| t.contains("mathcal") || t.contains("sqrt")),
            "{why:?}"
        );
        // Every entry is found (the list is sorted for the binary search).
        for t in [
            "boldsymbol",
            "ddot",
            "dfrac",
            "mathcal",
            "sqrt",
            "widetilde",
        ] {
            assert!(is_markup(t), "{t}");
        }
        assert!(!is_markup("regret"));
        assert!(TEX.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_term_the_query_repeats_weighs_more_but_saturates() {
        let papers = vec![
            paper("Diffusion sampling", "Fast sampling."),
            paper("Graph pruning", "Sparse graphs."),
            paper("Unrelated", "Nothing shared."),
        ];
        let bm = Bm25::build(&papers);
        let q: Vec<String> = "diffusion diffusion diffusion graph"
            .split(' ')
            .map(String::from)
            .collect();
        let s = bm.scores(&q);
        // Same idf for both terms; the repeated one wins.
        assert!(s[&0] > s[&1], "{s:?}");
        // Saturation: three mentions weigh less than three times one.
        let once = bm.scores(&["diffusion".to_string()]);
        assert!(s[&0] < 3.0 * once[&0] && s[&0] > once[&0]);
    }

    #[test]
    fn saved_index_round_trips_and_rejects_damage() {
        let papers: Vec<Paper> = (0..40)
            .map(|i| {
                paper(
                    &format!("Paper {i} on topic {}", i % 3),
                    "Some shared abstract words here.",
                )
            })
            .collect();
        let bm = Bm25::build(&papers);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LEXICAL_FILE);
        bm.save(&p, "fp").unwrap();
        assert_eq!(Bm25::load(&p, "fp", 40).as_ref(), Some(&bm));
        assert!(Bm25::load(&p, "fp2", 40).is_none());
        assert!(Bm25::load(&p, "fp", 41).is_none());
        let bytes = fs::read(&p).unwrap();
        for at in [0, 10, bytes.len() / 2, bytes.len() - 2] {
            let mut b = bytes.clone();
            b[at] ^= 4;
            fs::write(&p, &b).unwrap();
            assert!(Bm25::load(&p, "fp", 40).is_none(), "flip at {at}");
        }
    }
}
