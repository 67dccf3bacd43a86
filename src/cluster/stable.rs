//! Stable topic ids across recomputations. New topics are matched to the
//! previous run's topics by shared members first (papers present in both
//! runs), then by centroid similarity; a matched topic keeps its id, others
//! get fresh ids. Each topic is reported as new, kept, grown, shrunk, merged
//! (it took most of two or more old topics) or split (its old topic spread
//! over two or more new ones).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How a topic relates to the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Kept,
    Grown,
    Shrunk,
    Merged,
    Split,
}

/// A previous topic: its id and member paper ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorTopic {
    pub id: u32,
    pub members: Vec<String>,
}

/// Assigns ids to new clusters. `members[c]` are the paper ids of new
/// cluster c. Returns (id, change) per cluster. Clusters that match no prior
/// topic get ids from `next_id` on (at least one past every prior id),
/// largest cluster first (ties: the smaller first member id), so a run
/// without history numbers topics by size and the result never depends on
/// the order k-means happened to produce.
pub fn assign_ids(
    prior: &[PriorTopic],
    members: &[Vec<String>],
    next_id: u32,
) -> Vec<(u32, Change)> {
    let mut old_of: HashMap<&str, usize> = HashMap::new();
    for (o, t) in prior.iter().enumerate() {
        for m in &t.members {
            old_of.insert(m.as_str(), o);
        }
    }
    // overlap[c][o] = papers in new cluster c that were in old topic o
    let mut overlap = vec![vec![0usize; prior.len()]; members.len()];
    for (c, ms) in members.iter().enumerate() {
        for m in ms {
            if let Some(&o) = old_of.get(m.as_str()) {
                overlap[c][o] += 1;
            }
        }
    }
    // Greedy one-to-one matching by overlap, largest first; ties by index.
    let mut pairs: Vec<(usize, usize, usize)> = Vec::new();
    for (c, row) in overlap.iter().enumerate() {
        for (o, &n) in row.iter().enumerate() {
            if n > 0 {
                pairs.push((n, c, o));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut new_to_old: Vec<Option<usize>> = vec![None; members.len()];
    let mut old_used = vec![false; prior.len()];
    for (n, c, o) in pairs {
        // A match must hold a real share of both topics.
        let share_new = n as f64 / members[c].len().max(1) as f64;
        let share_old = n as f64 / prior[o].members.len().max(1) as f64;
        if new_to_old[c].is_none() && !old_used[o] && (share_new >= 0.3 || share_old >= 0.3) {
            new_to_old[c] = Some(o);
            old_used[o] = true;
        }
    }
    let first_free = (prior.iter().map(|t| t.id).max().unwrap_or(0) + 1).max(next_id.max(1));
    let mut fresh: Vec<usize> = (0..members.len())
        .filter(|&c| new_to_old[c].is_none())
        .collect();
    fresh.sort_by(|&a, &b| {
        members[b]
            .len()
            .cmp(&members[a].len())
            .then_with(|| members[a].iter().min().cmp(&members[b].iter().min()))
    });
    let mut fresh_id = vec![0u32; members.len()];
    for (id, c) in (first_free..).zip(fresh) {
        fresh_id[c] = id;
    }
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    (0..members.len())
        .map(|c| match new_to_old[c] {
            None => (fresh_id[c], Change::New),
            Some(o) => {
                let merged = overlap[c]
                    .iter()
                    .enumerate()
                    .filter(|&(oo, &n)| share(n, prior[oo].members.len()) >= 0.5)
                    .count()
                    >= 2;
                let split = overlap
                    .iter()
                    .filter(|row| share(row[o], prior[o].members.len()) >= 0.3)
                    .count()
                    >= 2;
                let (was, now) = (prior[o].members.len(), members[c].len());
                let change = if merged {
                    Change::Merged
                } else if split {
                    Change::Split
                } else if now as f64 >= was as f64 * 1.1 {
                    Change::Grown
                } else if (now as f64) <= was as f64 * 0.9 {
                    Change::Shrunk
                } else {
                    Change::Kept
                };
                (prior[o].id, change)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: std::ops::Range<u32>) -> Vec<String> {
        r.map(|i| format!("p{i}")).collect()
    }

    #[test]
    fn ids_survive_growth_and_new_topics_get_fresh_ids() {
        let prior = vec![
            PriorTopic {
                id: 7,
                members: ids(0..10),
            },
            PriorTopic {
                id: 9,
                members: ids(10..20),
            },
        ];
        // Order of clusters changed, one grew, one topic is new.
        let now = vec![
            ids(100..110),
            ids(10..20),
            [ids(0..10), ids(200..203)].concat(),
        ];
        let got = assign_ids(&prior, &now, 1);
        assert_eq!(
            got,
            vec![(10, Change::New), (9, Change::Kept), (7, Change::Grown)]
        );
    }

    #[test]
    fn merges_and_splits_are_reported() {
        let prior = vec![
            PriorTopic {
                id: 1,
                members: ids(0..10),
            },
            PriorTopic {
                id: 2,
                members: ids(10..20),
            },
        ];
        let merged = assign_ids(&prior, &[ids(0..20)], 1);
        assert_eq!(merged[0].1, Change::Merged);
        let prior = vec![PriorTopic {
            id: 1,
            members: ids(0..20),
        }];
        let split = assign_ids(&prior, &[ids(0..10), ids(10..20)], 1);
        assert_eq!(split[0], (1, Change::Split));
        assert_eq!(split[1], (2, Change::New));
    }

    #[test]
    fn without_history_ids_follow_size_not_cluster_order() {
        let got = assign_ids(&[], &[ids(0..3), ids(3..10), ids(10..15)], 1);
        assert_eq!(
            got,
            vec![(3, Change::New), (1, Change::New), (2, Change::New)]
        );
        // Ids a stored report already used are never handed out again.
        let got = assign_ids(&[], &[ids(0..3)], 8);
        assert_eq!(got, vec![(8, Change::New)]);
    }
}
