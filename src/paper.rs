//! `Paper`, the one record type that flows through every stage, and the
//! identity rules that decide when two records are the same paper:
//! DOI first, then arXiv id, then normalised title (+ year when both know it).

use serde::{Deserialize, Serialize};

/// A paper as stored in the library.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    /// The id users type: the source's own key (BibTeX key, record id) or one
    /// derived from the title. Unique within a library.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub abs: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// Month of `year` (1..=12) when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arxiv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Zotero collections the paper is in, as paths ("Thesis/Chapter 2").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Where the record came from: `file:line` (`file#KEY` for a Zotero item).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The original record verbatim (e.g. the BibTeX entry), for exports
    /// that give it back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Original>,
}

/// An input record kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Original {
    pub format: String,
    pub text: String,
}

impl Paper {
    /// The text that is embedded: `title. abstract`, or the title alone when
    /// the record has no abstract (such papers are flagged, not dropped).
    pub fn embed_text(&self) -> String {
        if self.abs.is_empty() {
            self.title.clone()
        } else {
            let sep = if self.title.ends_with(['.', '?', '!']) {
                " "
            } else {
                ". "
            };
            format!("{}{}{}", self.title, sep, self.abs)
        }
    }

    /// The source's own date (`year`, `month`), if it has a year.
    pub fn date(&self) -> Option<PubDate> {
        self.year.map(|year| PubDate {
            year,
            month: self.month.filter(|m| (1..=12).contains(m)),
        })
    }

    /// When the paper first appeared: the earlier of its source date and the
    /// month its arXiv id was assigned (a journal version's year is often
    /// later than the preprint's). At equal years the date that knows its
    /// month wins.
    pub fn first_published(&self) -> Option<PubDate> {
        let ax = self.arxiv.as_deref().and_then(arxiv_date);
        match (self.date(), ax) {
            (Some(a), Some(b)) => Some(if a.year != b.year {
                if a.year < b.year { a } else { b }
            } else {
                match (a.month, b.month) {
                    (Some(x), Some(y)) if x <= y => a,
                    (Some(_), None) => a,
                    _ => b,
                }
            }),
            (a, b) => a.or(b),
        }
    }

    pub fn has_abstract(&self) -> bool {
        !self.abs.is_empty()
    }

    /// Identity keys, strongest first. Two papers sharing any key are the same.
    pub fn identity_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(3);
        if let Some(doi) = &self.doi {
            keys.push(format!("doi:{}", doi.to_lowercase()));
        }
        if let Some(ax) = &self.arxiv {
            keys.push(format!("arxiv:{}", ax.to_lowercase()));
        }
        let t = normalize_title(&self.title);
        if !t.is_empty() {
            keys.push(format!("title:{t}"));
        }
        keys
    }

    /// Fills fields this paper lacks from `other` (a duplicate record).
    /// Returns true when anything changed.
    pub fn fill_from(&mut self, other: &Paper) -> bool {
        let mut changed = false;
        if self.abs.is_empty() && !other.abs.is_empty() {
            self.abs = other.abs.clone();
            changed = true;
        }
        if self.authors.is_empty() && !other.authors.is_empty() {
            self.authors = other.authors.clone();
            changed = true;
        }
        macro_rules! fill {
            ($($f:ident),*) => {$(
                if self.$f.is_none() && other.$f.is_some() {
                    self.$f = other.$f.clone();
                    changed = true;
                }
            )*};
        }
        if self.year.is_none() && other.year.is_some() {
            self.month = other.month;
        } else if self.year == other.year && self.month.is_none() && other.month.is_some() {
            self.month = other.month;
            changed = true;
        }
        fill!(year, doi, arxiv, venue, url);
        // The record given back by exports is the richest one seen (its
        // missing fields are added from the merged paper at export).
        let richer = match (&self.original, &other.original) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a != b && richness(b) > richness(a),
            _ => false,
        };
        if richer {
            self.original = other.original.clone();
            changed = true;
        }
        changed
    }
}

/// How much an original record holds: BibTeX (what exports give back
/// verbatim) before any other format, then by its number of fields.
fn richness(o: &Original) -> usize {
    if o.format != "bibtex" {
        return 0;
    }
    crate::ingest::bibtex::entries(&o.text)
        .into_iter()
        .find_map(std::result::Result::ok)
        .map_or(0, |e| 1 + e.fields.len())
}

/// A publication date at month precision; `month` is `None` when only the
/// year is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PubDate {
    pub year: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<u8>,
}

impl PubDate {
    /// Order at the precision both dates have: a date without a month is
    /// `Equal` to every month of its year ("same month counts").
    pub fn cmp_loose(&self, other: &PubDate) -> std::cmp::Ordering {
        self.year
            .cmp(&other.year)
            .then(match (self.month, other.month) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => std::cmp::Ordering::Equal,
            })
    }
}

impl std::fmt::Display for PubDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.month {
            Some(m) => write!(f, "{}-{m:02}", self.year),
            None => write!(f, "{}", self.year),
        }
    }
}

/// The month an arXiv id was assigned: new-style `YYMM.NNNNN` and old-style
/// `archive/YYMMNNN` (arXiv began in August 1991).
pub fn arxiv_date(id: &str) -> Option<PubDate> {
    let digits = match id.split_once('/') {
        Some((_, num)) => num,
        None => id.split_once('.').map(|(a, _)| a)?,
    };
    let yymm = digits.get(..4)?;
    if !yymm.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = yymm[..2].parse().ok()?;
    let mm: u8 = yymm[2..].parse().ok()?;
    let year = if yy >= 91 { 1900 + yy } else { 2000 + yy };
    (1..=12).contains(&mm).then_some(PubDate {
        year,
        month: Some(mm),
    })
}

/// Lowercase alphanumerics separated by single spaces: the title identity.
pub fn normalize_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    let mut pending_space = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// A short stable id derived from a title, for records without their own key.
pub fn derived_id(title: &str) -> String {
    let norm = normalize_title(title);
    let words: Vec<&str> = norm
        .split(' ')
        .filter(|w| !w.is_empty() && !crate::text::is_stop_word(w))
        .take(3)
        .collect();
    let slug = if words.is_empty() {
        "paper".to_string()
    } else {
        words.join("-")
    };
    format!(
        "{slug}-{:04x}",
        crate::text::fnv1a(norm.as_bytes()) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_normalisation_ignores_case_and_punctuation() {
        assert_eq!(
            normalize_title("  Attention Is All\nYou Need!  "),
            "attention is all you need"
        );
        assert_eq!(normalize_title("σ-GPTs: A New"), "σ gpts a new");
    }

    #[test]
    fn identity_prefers_doi_then_arxiv_then_title() {
        let p = Paper {
            title: "A B".into(),
            doi: Some("10.1/X".into()),
            arxiv: Some("2101.00001".into()),
            ..Default::default()
        };
        assert_eq!(
            p.identity_keys(),
            vec!["doi:10.1/x", "arxiv:2101.00001", "title:a b"]
        );
    }

    #[test]
    fn fill_from_keeps_existing_fields() {
        let mut a = Paper {
            title: "T".into(),
            year: Some(2020),
            ..Default::default()
        };
        let b = Paper {
            title: "T".into(),
            abs: "abstract".into(),
            year: Some(1999),
            ..Default::default()
        };
        assert!(a.fill_from(&b));
        assert_eq!(a.abs, "abstract");
        assert_eq!(a.year, Some(2020));
        assert!(!a.fill_from(&b));
    }

    #[test]
    fn arxiv_ids_give_the_month_and_the_earliest_date_wins() {
        let d = |year, month| PubDate { year, month };
        assert_eq!(arxiv_date("2106.15831"), Some(d(2021, Some(6))));
        assert_eq!(arxiv_date("0704.0010"), Some(d(2007, Some(4))));
        assert_eq!(arxiv_date("hep-th/9901001"), Some(d(1999, Some(1))));
        assert_eq!(arxiv_date("math.GT/0309136"), Some(d(2003, Some(9))));
        assert_eq!(arxiv_date("2113.00001"), None);
        assert_eq!(arxiv_date("abcd.efgh"), None);
        let mut p = Paper {
            year: Some(2022),
            month: Some(3),
            arxiv: Some("2106.15831".into()),
            ..Default::default()
        };
        assert_eq!(p.first_published(), Some(d(2021, Some(6))));
        p.year = Some(2021);
        p.month = None;
        assert_eq!(p.first_published(), Some(d(2021, Some(6))));
        p.month = Some(2);
        assert_eq!(p.first_published(), Some(d(2021, Some(2))));
        p.arxiv = None;
        p.year = None;
        assert_eq!(p.first_published(), None);
        assert_eq!(
            d(2020, None).cmp_loose(&d(2020, Some(5))),
            std::cmp::Ordering::Equal
        );
        assert_eq!(
            d(2020, Some(4)).cmp_loose(&d(2020, Some(5))),
            std::cmp::Ordering::Less
        );
        assert_eq!(d(2020, Some(4)).to_string(), "2020-04");
    }

    #[test]
    fn embed_text_joins_title_and_abstract() {
        let p = Paper {
            title: "Title".into(),
            abs: "Body.".into(),
            ..Default::default()
        };
        assert_eq!(p.embed_text(), "Title. Body.");
    }

    #[test]
    fn derived_id_is_readable_and_stable() {
        let id = derived_id("The Z-loss: a shift and scale invariant classification loss");
        assert!(id.starts_with("z-loss-shift-"), "{id}");
        assert_eq!(
            id,
            derived_id("The Z-loss: a shift and scale invariant classification loss")
        );
    }
}
