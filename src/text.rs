//! Word-level text tools shared by lexical search and topic labels: one
//! tokenizer, one stop-word list and a light stemmer, so that "why related"
//! terms and topic keywords speak the same vocabulary.

use std::collections::HashSet;
use std::sync::LazyLock;

/// English stop words plus words that carry no topic in paper abstracts.
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "across", "after", "again", "against", "all", "almost", "also",
    "although", "always", "am", "among", "an", "and", "another", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "cannot", "could", "did", "do", "does", "doing", "done", "down", "due", "during", "each",
    "either", "else", "enough", "especially", "etc", "even", "ever", "every", "few", "for",
    "from", "further", "furthermore", "had", "has", "have", "having", "he", "hence", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "however", "i", "if", "in",
    "into", "is", "it", "its", "itself", "just", "less", "like", "made", "make", "makes",
    "many", "may", "me", "might", "more", "moreover", "most", "much", "must", "my", "myself",
    "namely", "neither", "no", "nor", "not", "now", "of", "off", "often", "on", "once", "one",
    "only", "onto", "or", "other", "others", "otherwise", "our", "ours", "ourselves", "out",
    "over", "own", "per", "perhaps", "quite", "rather", "same", "several", "she", "should",
    "show", "shows", "shown", "showed", "since", "so", "some", "such", "than", "that", "the",
    "their", "theirs", "them", "themselves", "then", "there", "thereby", "therefore", "these",
    "they", "this", "those", "though", "through", "thus", "to", "too", "toward", "towards",
    "under", "until", "up", "upon", "us", "use", "used", "uses", "using", "various", "very",
    "via", "was", "we", "well", "were", "what", "whatever", "when", "where", "whereas",
    "whether", "which", "while", "who", "whom", "whose", "why", "will", "with", "within",
    "without", "would", "yet", "you", "your", "yours", "yourself", "paper", "propose",
    "proposed", "proposes", "present", "presents", "presented", "approach", "approaches",
    "method", "methods", "new", "novel", "work", "works", "results", "result", "based",
    "first", "two", "three", "able", "existing", "demonstrate", "demonstrates", "introduce",
    "introduces", "study", "studies", "well", "significantly", "significant", "achieve",
    "achieves", "achieving", "state", "art", "recent", "recently", "however", "provide",
    "provides", "task", "tasks", "problem", "problems", "experiments", "experimental",
    "extensive", "performance", "improve", "improves", "improved", "improving", "effective",
    "effectively", "efficient", "efficiently", "outperforms", "compared", "code", "available",
    "github", "https", "http", "com", "www", "org", "e.g", "i.e", "et", "al", "large", "wide",
    "range", "key", "important", "different", "specific", "given", "allows", "enables",
    "despite", "thereof", "whereby", "yield", "yields", "leading", "leads", "lead", "across",
];

/// True for words that never make a keyword or a match reason.
pub fn is_stop_word(w: &str) -> bool {
    static SET: LazyLock<HashSet<&'static str>> =
        LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    SET.contains(w)
}

/// Lower-case word tokens of `text`, keeping intra-word hyphens and digits
/// ("fp8", "in-context", "gpt-4"). Stop words are kept; callers filter.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .map(|w| w.trim_matches('-'))
        .filter(|w| !w.is_empty() && w.chars().any(char::is_alphabetic))
        .map(str::to_lowercase)
}

/// Content terms: words that are not stop words, folded to a light stem so
/// that "networks" matches "network" and "graphs" matches "graph".
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .filter(|w| w.chars().count() > 1 && !is_stop_word(w))
        .map(|w| stem(&w))
        .collect()
}

/// A deliberately light English stemmer (plural and a few suffixes only):
/// aggressive stemming merges distinct technical terms.
pub fn stem(w: &str) -> String {
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..n - 3]);
    }
    if n > 4 && (w.ends_with("sses") || w.ends_with("xes") || w.ends_with("ches")) {
        return w[..n - 2].to_string();
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is")
    {
        return w[..n - 1].to_string();
    }
    w.to_string()
}

/// 32-bit FNV-1a: a tiny stable hash for derived ids (not for integrity).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_recognised() {
        assert!(is_stop_word("the") && is_stop_word("however") && !is_stop_word("graph"));
    }

    #[test]
    fn terms_drop_stop_words_and_stem_plurals() {
        assert_eq!(
            terms("We propose Graph Neural Networks for in-context learning of GPT-4 policies"),
            vec!["graph", "neural", "network", "in-context", "learning", "gpt-4", "policy"]
        );
    }

    #[test]
    fn stem_leaves_short_and_latin_words() {
        assert_eq!(stem("loss"), "loss");
        assert_eq!(stem("analysis"), "analysis");
        assert_eq!(stem("corpus"), "corpus");
        assert_eq!(stem("gas"), "gas");
    }
}
