//! Naming topics: class-based TF-IDF keywords (unigrams and bigrams, stop
//! words removed, near-duplicates dropped), a short name from the top terms,
//! and the most representative papers (closest to the centroid).
//!
//! Terms are counted by their stem (`text::stem`, shared with lexical
//! search, so "mesh" and "meshes" are one term) but shown as a word people
//! write: the most frequent surface form of the stem among the topic's
//! papers ("meshes", never the stem "meshe").

use std::collections::HashMap;

use crate::paper::Paper;
use crate::text::{self, is_stop_word, stem};

/// Names of symbols that survive as words when math is flattened to text
/// ("$O(\\log n)$" -> "log"); they never name a topic.
const MATH_WORDS: &[&str] = &[
    "varepsilon",
    "epsilon",
    "log",
    "exp",
    "alpha",
    "beta",
    "gamma",
    "omega",
    "sigma",
    "delta",
    "theta",
    "lambda",
    "rho",
    "tau",
    "phi",
    "psi",
    "eta",
    "mu",
    "nu",
    "xi",
    "pi",
    "mathcal",
    "mathbb",
    "mathrm",
    "tilde",
    "frac",
    "sqrt",
    "ldots",
    "cdot",
    "hat",
    "bar",
    "vec",
    "le",
    "ge",
    "leq",
    "geq",
    "sim",
    "infty",
    "poly",
    "polylog",
    "max",
    "min",
    "sup",
    "inf",
    "arg",
    "argmin",
    "argmax",
    "ln",
    "mid",
    "top",
];

/// Terms and adjacent-pair bigrams of one text. A bigram never spans a stop
/// word ("networks for molecules" gives no "network molecule").
pub fn grams(s: &str) -> Vec<String> {
    grams_with_surface(s).into_iter().map(|g| g.0).collect()
}

/// `grams` with the words as written (lower-cased): (term, surface), e.g.
/// ("graph network", "graph networks").
fn grams_with_surface(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prev: Option<(String, String)> = None;
    for w in text::words(s) {
        if w.chars().count() < 2
            || is_stop_word(&w)
            || MATH_WORDS.contains(&w.as_str())
            || w.chars().all(|c| c.is_ascii_digit() || c == '-')
        {
            prev = None;
            continue;
        }
        let t = stem(&w);
        if let Some((p, pw)) = &prev
            && *p != t
        {
            out.push((format!("{p} {t}"), format!("{pw} {w}")));
        }
        out.push((t.clone(), w.clone()));
        prev = Some((t, w));
    }
    out
}

/// Words that describe research in general, not a field: never keywords
/// on their own (they may still appear inside a phrase, "language model").
const GENERIC: &[&str] = &[
    "model",
    "learning",
    "data",
    "method",
    "approach",
    "framework",
    "task",
    "performance",
    "result",
    "system",
    "problem",
    "work",
    "study",
    "use",
    "using",
    "based",
    "new",
    "propose",
    "proposed",
    "show",
    "present",
    "existing",
    "state",
    "art",
    "art method",
    "state art",
    "challenge",
    "application",
    "paper",
    "experiment",
    "demonstrate",
    "achieve",
    "improve",
    "effective",
    "efficient",
    "evaluation",
    "dataset",
    "benchmark",
    "analysis",
    "significant",
    "significantly",
    "outperform",
    "outperforms",
    "approache",
    "technique",
    "algorithm",
    "information",
    "training",
    "tasks",
    "extensive",
    "code",
    "available",
    "github",
    "http",
    "https",
    "com",
    "publicly",
    "large",
    "high",
    "different",
    "various",
    "key",
    "recent",
    "address",
    "introduce",
    "limitation",
    "finally",
    "first",
    "second",
    "furthermore",
];

/// Keywords of each cluster by c-TF-IDF, best first; see `keywords_weighted`.
pub fn keywords(
    papers: &[Paper],
    labels: &[usize],
    k: usize,
    per_topic: usize,
) -> Vec<Vec<String>> {
    keywords_weighted(papers, labels, k, per_topic)
        .into_iter()
        .map(|kw| kw.into_iter().map(|(t, _)| t).collect())
        .collect()
}

/// Keywords of each cluster with their c-TF-IDF weights, best first.
///
/// Score (as in BERTopic, with its `reduce_frequent_words`):
/// `sqrt(tf(t, c)) * ln(1 + A / f(t))`, A = mean terms per cluster,
/// f(t) = frequency of t over all clusters. On top of it:
/// - a keyword must occur in at least two of the cluster's papers (one
///   paper's pet symbol is not a topic), unless the cluster has one paper;
/// - it must be at least 1.5x as common among the cluster's papers as in
///   the library (a word every topic uses says nothing about this one), and
///   words of research in general (`GENERIC`) never stand alone;
/// - a word that mostly occurs inside one phrase is shown as the phrase, in
///   reading order ("monte carlo", not "carlo" and "monte");
/// - a term leads (is among the first three keywords of) only the topic
///   where it scores highest, so two topics are not both named "label".
pub fn keywords_weighted(
    papers: &[Paper],
    labels: &[usize],
    k: usize,
    per_topic: usize,
) -> Vec<Vec<(String, f32)>> {
    let mut tf: Vec<HashMap<String, f64>> = vec![HashMap::new(); k];
    // Per cluster, the surface forms of a term that differ from the term
    // itself, with counts (the term as written is then `tf` minus these).
    let mut surfaces: Vec<HashMap<String, HashMap<String, f64>>> = vec![HashMap::new(); k];
    let mut df: Vec<HashMap<String, usize>> = vec![HashMap::new(); k];
    let mut sizes = vec![0usize; k];
    for (p, &l) in papers.iter().zip(labels) {
        // A paper in no topic (not embedded yet) has a label past the last.
        if l >= k {
            continue;
        }
        sizes[l] += 1;
        let mut text = p.title.clone();
        text.push_str(". ");
        text.push_str(&p.abs);
        let gs = grams_with_surface(&text);
        let mut uniq: Vec<&String> = gs.iter().map(|g| &g.0).collect();
        uniq.sort();
        uniq.dedup();
        for t in uniq {
            *df[l].entry(t.clone()).or_default() += 1;
        }
        for (t, w) in gs {
            if w != t {
                *surfaces[l]
                    .entry(t.clone())
                    .or_default()
                    .entry(w)
                    .or_default() += 1.0;
            }
            *tf[l].entry(t).or_default() += 1.0;
        }
    }
    let mut total: HashMap<&str, f64> = HashMap::new();
    let mut df_all: HashMap<&str, usize> = HashMap::new();
    for (m, d) in tf.iter().zip(&df) {
        for (t, n) in m {
            *total.entry(t.as_str()).or_default() += n;
        }
        for (t, n) in d {
            *df_all.entry(t.as_str()).or_default() += n;
        }
    }
    let n_docs = sizes.iter().sum::<usize>().max(1) as f64;
    let avg = tf.iter().map(|m| m.values().sum::<f64>()).sum::<f64>() / k.max(1) as f64;
    let mut ranked: Vec<Vec<(f64, String)>> = (0..k)
        .map(|c| {
            let min_df = if sizes[c] >= 2 { 2 } else { 1 };
            // The most frequent phrase holding each word, for "monte carlo".
            let mut phrase_of: HashMap<&str, (&str, f64)> = HashMap::new();
            for (t, &n) in &tf[c] {
                if let Some((a, b)) = t.split_once(' ') {
                    for w in [a, b] {
                        let e = phrase_of.entry(w).or_insert((t.as_str(), 0.0));
                        if n > e.1 || (n == e.1 && t.as_str() < e.0) {
                            *e = (t.as_str(), n);
                        }
                    }
                }
            }
            let mut scored: HashMap<String, f64> = HashMap::new();
            for (t, &n) in &tf[c] {
                let d = df[c][t.as_str()];
                let lift =
                    (d as f64 / sizes[c].max(1) as f64) / (df_all[t.as_str()] as f64 / n_docs);
                if d < min_df || (k > 1 && lift < 1.5) || GENERIC.contains(&t.as_str()) {
                    continue;
                }
                let mut score = n.sqrt() * (1.0 + avg / total[t.as_str()]).ln();
                let mut term = t.clone();
                if !t.contains(' ')
                    && let Some(&(ph, pn)) = phrase_of.get(t.as_str())
                    && pn >= 0.5 * n
                    && df[c][ph] >= min_df
                {
                    // Shown as its phrase; the phrase keeps the better score.
                    term = ph.to_string();
                    score = score.max(pn.sqrt() * (1.0 + avg / total[ph]).ln());
                }
                let e = scored.entry(term).or_insert(0.0);
                *e = e.max(score);
            }
            let mut v: Vec<(f64, String)> = scored.into_iter().map(|(t, s)| (s, t)).collect();
            v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            v
        })
        .collect();
    // A term leads only the topic where it scores highest.
    let mut best_for: HashMap<String, (f64, usize)> = HashMap::new();
    for (c, v) in ranked.iter().enumerate() {
        for (s, t) in v.iter().take(3) {
            let e = best_for.entry(t.clone()).or_insert((*s, c));
            if *s > e.0 || (*s == e.0 && c < e.1) {
                *e = (*s, c);
            }
        }
    }
    for (c, v) in ranked.iter_mut().enumerate() {
        let (lead, rest): (Vec<_>, Vec<_>) = v
            .drain(..)
            .enumerate()
            .partition(|(i, (_, t))| *i >= 3 || best_for.get(t).is_none_or(|b| b.1 == c));
        let mut lead: Vec<(f64, String)> = lead.into_iter().map(|x| x.1).collect();
        // Terms another topic owns move behind this topic's own leaders.
        let at = lead.len().min(3);
        lead.splice(at..at, rest.into_iter().map(|x| x.1));
        *v = lead;
    }
    ranked
        .into_iter()
        .enumerate()
        .map(|(c, v)| {
            let weight: HashMap<&str, f64> = v.iter().map(|(s, t)| (t.as_str(), *s)).collect();
            let mut shown: Vec<(String, f32)> = Vec::new();
            for t in pick_distinct(v.iter().map(|(_, t)| t.as_str()), per_topic) {
                let w = weight[t.as_str()] as f32;
                let s = surface(
                    &t,
                    tf[c].get(&t).copied().unwrap_or(0.0),
                    surfaces[c].get(&t),
                );
                if !shown.iter().any(|x| x.0 == s) {
                    shown.push((s, w));
                }
            }
            shown
        })
        .collect()
}

/// The most frequent way `term` is written among a topic's papers: the term
/// itself (written `total` times minus its other forms) or one of `other`
/// forms; ties go to the shorter, then the alphabetically first form.
fn surface(term: &str, total: f64, other: Option<&HashMap<String, f64>>) -> String {
    let Some(other) = other else {
        return term.to_string();
    };
    let as_is = total - other.values().sum::<f64>();
    let mut best: (f64, &str) = (as_is, term);
    for (w, &n) in other {
        let better = n > best.0
            || (n == best.0
                && (w.len() < best.1.len() || (w.len() == best.1.len() && w.as_str() < best.1)));
        if better {
            best = (n, w);
        }
    }
    best.1.to_string()
}

/// Takes terms in order, dropping near-duplicates: a unigram already inside
/// a chosen bigram, a bigram whose words are both chosen, and terms sharing a
/// long common prefix with a chosen one ("optim" / "optimization").
fn pick_distinct<'a>(terms: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        if out.len() >= n {
            break;
        }
        let words: Vec<&str> = t.split(' ').collect();
        let dup = out.iter().any(|o| {
            let ow: Vec<&str> = o.split(' ').collect();
            if words.len() == 1 {
                ow.iter().any(|w| near(w, t))
            } else {
                words
                    .iter()
                    .all(|w| out.iter().any(|o2| o2.split(' ').any(|x| near(x, w))))
                    || (ow.len() == 2 && ow == words)
            }
        });
        if dup {
            continue;
        }
        // A new bigram absorbs the unigrams it contains.
        if words.len() == 2 {
            out.retain(|o| o.contains(' ') || !words.iter().any(|w| near(w, o)));
        }
        out.push(t.to_string());
    }
    out
}

fn near(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    common >= 6 && common * 4 >= a.chars().count().min(b.chars().count()) * 3
}

/// A short name from the top keywords: up to three, joined.
pub fn name(keywords: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for k in keywords {
        if parts.len() >= 3 {
            break;
        }
        parts.push(k);
    }
    if parts.is_empty() {
        "untitled".into()
    } else {
        parts.join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, a: &str) -> Paper {
        Paper {
            title: t.into(),
            abs: a.into(),
            ..Default::default()
        }
    }

    #[test]
    fn grams_skip_stop_words() {
        assert_eq!(
            grams("Graph networks for molecules"),
            vec!["graph", "graph network", "network", "molecule"]
        );
    }

    #[test]
    fn ctfidf_picks_distinctive_terms_without_duplicates() {
        let papers = vec![
            p(
                "Diffusion models for images",
                "Denoising diffusion models generate images.",
            ),
            p(
                "Faster diffusion models",
                "Sampling diffusion models with fewer steps.",
            ),
            p(
                "Graph neural networks",
                "Message passing in graph neural networks.",
            ),
            p(
                "Graph neural networks for chemistry",
                "Graph neural networks on molecules.",
            ),
        ];
        let kw = keywords(&papers, &[0, 0, 1, 1], 2, 3);
        // Counted as the stem "diffusion model", shown as written.
        assert_eq!(kw[0][0], "diffusion models", "{kw:?}");
        assert!(!kw[0].contains(&"diffusion".to_string()), "{kw:?}");
        assert!(
            kw[1][0].starts_with("graph neural") || kw[1][0].starts_with("neural network"),
            "{kw:?}"
        );
    }

    #[test]
    fn keywords_show_the_most_frequent_written_form_not_the_stem() {
        // "meshes" stems to "meshe", which nobody writes; "policy" is
        // written "policies" twice and "policy" three times.
        let papers = vec![
            p(
                "Meshes for simulation",
                "Adaptive meshes and policy search.",
            ),
            p("Coarse meshes", "Meshes refine; a policy and policies."),
            p("Mesh policies", "Meshes with a policy, policies."),
            p(
                "Proteins folding",
                "Protein structure prediction of proteins.",
            ),
            p(
                "Protein design",
                "Designing proteins with structure models.",
            ),
        ];
        let kw = keywords(&papers, &[0, 0, 0, 1, 1], 2, 5);
        let all: Vec<&String> = kw.iter().flatten().collect();
        assert!(all.iter().any(|k| k.as_str() == "meshes"), "{kw:?}");
        assert!(
            all.iter().all(|k| !k.split(' ').any(|w| w == "meshe")),
            "{kw:?}"
        );
        assert!(kw[0].contains(&"policy".to_string()), "{kw:?}");
        assert!(kw[1].iter().any(|k| k.starts_with("protein")), "{kw:?}");
        assert_eq!(
            surface("meshe", 4.0, Some(&[("meshes".to_string(), 4.0)].into())),
            "meshes"
        );
        assert_eq!(
            surface("policy", 5.0, Some(&[("policies".to_string(), 2.0)].into())),
            "policy"
        );
    }

    #[test]
    fn near_duplicates_are_dropped() {
        let got = pick_distinct(
            ["optimization", "optimizer", "loss", "loss landscape"].into_iter(),
            5,
        );
        assert_eq!(got, vec!["optimization", "loss landscape"]);
    }
}
