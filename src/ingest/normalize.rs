//! Turning field values from any format into clean plain text: LaTeX markup
//! and accents, HTML/JATS tags and entities, hard line breaks, publisher
//! copyright tails, DOI and arXiv id forms.

use unicode_normalization::UnicodeNormalization;

/// Collapses every run of whitespace (including hard line breaks) to one space.
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text of a title or abstract from any source: tags stripped, entities
/// decoded, LaTeX turned into Unicode, whitespace collapsed.
pub fn clean_text(s: &str) -> String {
    let s = if s.contains('<') || s.contains('&') {
        strip_html(s)
    } else {
        s.to_string()
    };
    // `~` is not TeX here: outside BibTeX it means "about" ("~6 h"); the
    // BibTeX reader turns its ties into spaces itself (`bibtex_ties`).
    let s = if s.contains(['\\', '{', '$']) || s.contains("--") || s.contains("``") {
        latex_to_text(&s)
    } else {
        s
    };
    // Zotero escapes TeX it stored as text (`\$\$O{\textbackslash}left(`,
    // `{\textbackslash}emph\{x\}`); once unescaped, that is TeX again: read it
    // once more, so every record's maths and markup end up the same way.
    let s = if s.matches('$').count() >= 2 || has_known_command(&s) {
        latex_to_text(&s)
    } else {
        s
    };
    collapse_ws(&s).nfc().collect()
}

/// True when `s` holds a LaTeX command papermap knows (`\emph`, `\alpha`,
/// `\frac`), as opposed to a literal backslash (`\n`).
fn has_known_command(s: &str) -> bool {
    s.match_indices('\\').any(|(i, _)| {
        let name: String = s[i + 1..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        !name.is_empty() && (is_wrapper(&name) || symbol(&name).is_some() || is_math_layout(&name))
    })
}

/// Maths layout commands that carry no text of their own.
fn is_math_layout(cmd: &str) -> bool {
    matches!(
        cmd,
        "left"
            | "right"
            | "mathop"
            | "nolimits"
            | "limits"
            | "frac"
            | "dfrac"
            | "tfrac"
            | "big"
            | "Big"
            | "bigl"
            | "bigr"
            | "displaystyle"
    )
}

/// BibTeX ties: an unescaped `~` is a non-breaking space (`\~{n}` is an accent).
pub fn bibtex_ties(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        out.push(if c == '~' && prev != '\\' { ' ' } else { c });
        prev = c;
    }
    out
}

/// An abstract: `clean_text` plus removal of publisher copyright tails
/// ("© 2021 Elsevier B.V. All rights reserved.") and leading "Abstract" labels.
pub fn clean_abstract(s: &str) -> String {
    let mut t = clean_text(s);
    for label in [
        "Abstract:",
        "Abstract.",
        "ABSTRACT:",
        "ABSTRACT",
        "Abstract ",
    ] {
        if let Some(rest) = t.strip_prefix(label) {
            t = rest.trim_start().to_string();
            break;
        }
    }
    strip_copyright(&t)
}

/// Removes a trailing copyright notice. Only notices at the end are cut, and
/// only from their start marker (©, (c) YEAR, "Copyright"), so an abstract
/// that merely discusses copyright keeps its text. The earliest marker that
/// starts a notice wins: "© 2019, © 2019 Informa UK" goes whole.
pub fn strip_copyright(s: &str) -> String {
    let mut from = s.len().saturating_sub(MAX_TAIL);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    for (i, _) in s[from..].char_indices() {
        let rest = &s[from + i..];
        let starts = |m: &str| {
            rest.get(..m.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(m))
        };
        let tail = if rest.starts_with('©') {
            // A © at the end of an abstract is a notice even without a year
            // ("© Kalahari Journals.", "© COPYRIGHT SPIE.").
            rest.len() <= 200 || is_tail(rest)
        } else if ["(c) 19", "(c) 20", "copyright ", "copyright©"]
            .iter()
            .any(|m| starts(m))
        {
            is_tail(rest)
        } else {
            false
        };
        if tail {
            return s[..from + i].trim_end().to_string();
        }
    }
    s.to_string()
}

/// Longest copyright notice looked for at the end of an abstract.
const MAX_TAIL: usize = 400;

/// True when text from a copyright marker to the end looks like a notice,
/// not a sentence of the abstract: short, and naming a year or rights.
fn is_tail(t: &str) -> bool {
    let lower = t.to_lowercase();
    t.len() <= MAX_TAIL
        && (lower.contains("rights reserved")
            || lower.contains("licen")
            || lower.contains("published")
            || lower.contains("publishing")
            || lower.contains("author")
            || lower.chars().filter(char::is_ascii_digit).count() >= 4)
}

/// Strips HTML/XML tags (JATS `<jats:p>`, `<i>`, `<sub>`) and decodes entities.
pub fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '<' {
            // A tag is `<` followed by a letter, `/` or `!` and closed by `>`
            // within a short distance; otherwise it is a less-than sign.
            let rest = &s[i + 1..];
            let looks_tag = rest
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_alphabetic() || n == '/' || n == '!');
            if let (true, Some(end)) = (looks_tag, rest.find('>').filter(|e| *e < 200)) {
                let tag = rest[..end].trim_start_matches('/').to_ascii_lowercase();
                let block = [
                    "p",
                    "br",
                    "div",
                    "li",
                    "jats:p",
                    "jats:title",
                    "title",
                    "sec",
                    "jats:sec",
                ]
                .iter()
                .any(|b| tag == *b || tag.starts_with(&format!("{b} ")));
                if block {
                    out.push(' ');
                }
                while let Some(&(j, _)) = chars.peek() {
                    if j > i + 1 + end {
                        break;
                    }
                    chars.next();
                }
                continue;
            }
            out.push(c);
        } else if c == '&' {
            let rest = &s[i..];
            if let Some(end) = rest.find(';').filter(|e| *e <= 10)
                && let Some(decoded) = decode_entity(&rest[1..end])
            {
                out.push(decoded);
                for _ in 0..rest[..end].chars().count() {
                    chars.next();
                }
                continue;
            }
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse().ok()?
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "copy" => '©',
        "reg" => '®',
        "deg" => '°',
        "times" => '×',
        "plusmn" => '±',
        "alpha" => 'α',
        "beta" => 'β',
        "gamma" => 'γ',
        "delta" => 'δ',
        "mu" => 'μ',
        "sigma" => 'σ',
        "lambda" => 'λ',
        _ => return None,
    })
}

/// Combining mark for a LaTeX accent command.
fn accent_mark(cmd: &str) -> Option<char> {
    Some(match cmd {
        "'" => '\u{0301}',
        "`" => '\u{0300}',
        "^" => '\u{0302}',
        "\"" => '\u{0308}',
        "~" => '\u{0303}',
        "=" => '\u{0304}',
        "." => '\u{0307}',
        "u" => '\u{0306}',
        "v" => '\u{030C}',
        "H" => '\u{030B}',
        "c" => '\u{0327}',
        "k" => '\u{0328}',
        "r" => '\u{030A}',
        "d" => '\u{0323}',
        "b" => '\u{0331}',
        _ => return None,
    })
}

/// Replacement text for a LaTeX command without arguments.
fn symbol(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "ss" => "ß",
        "o" => "ø",
        "O" => "Ø",
        "ae" => "æ",
        "AE" => "Æ",
        "oe" => "œ",
        "OE" => "Œ",
        "aa" => "å",
        "AA" => "Å",
        "l" => "ł",
        "L" => "Ł",
        "i" => "ı",
        "j" => "ȷ",
        "&" => "&",
        "%" => "%",
        "$" => "$",
        "_" => "_",
        "#" => "#",
        "{" => "{",
        "}" => "}",
        " " => " ",
        "," | ";" | ":" | "!" | "quad" | "qquad" => " ",
        "\\" | "newline" | "par" => " ",
        "textbackslash" => "\\",
        "textbar" => "|",
        "textasciicircum" => "^",
        "textasciitilde" => "~",
        "textgreater" => ">",
        "textless" => "<",
        "textendash" => "–",
        "textemdash" => "—",
        "textquoteright" => "’",
        "textquoteleft" => "‘",
        "textregistered" => "®",
        "copyright" | "textcopyright" => "©",
        "ldots" | "dots" | "cdots" => "…",
        "LaTeX" => "LaTeX",
        "TeX" => "TeX",
        "alpha" => "α",
        "beta" => "β",
        "gamma" => "γ",
        "Gamma" => "Γ",
        "delta" => "δ",
        "Delta" => "Δ",
        "epsilon" | "varepsilon" => "ε",
        "zeta" => "ζ",
        "eta" => "η",
        "theta" => "θ",
        "Theta" => "Θ",
        "kappa" => "κ",
        "lambda" => "λ",
        "Lambda" => "Λ",
        "mu" => "μ",
        "nu" => "ν",
        "xi" => "ξ",
        "pi" => "π",
        "Pi" => "Π",
        "rho" => "ρ",
        "sigma" => "σ",
        "Sigma" => "Σ",
        "tau" => "τ",
        "phi" | "varphi" => "φ",
        "Phi" => "Φ",
        "chi" => "χ",
        "psi" => "ψ",
        "Psi" => "Ψ",
        "omega" => "ω",
        "Omega" => "Ω",
        "ell" => "ℓ",
        "infty" => "∞",
        "times" => "×",
        "cdot" => "·",
        "pm" => "±",
        "leq" | "le" => "≤",
        "geq" | "ge" => "≥",
        "neq" | "ne" => "≠",
        "approx" => "≈",
        "sim" => "~",
        "to" | "rightarrow" => "→",
        "leftarrow" => "←",
        "in" => "∈",
        "sum" => "∑",
        "prod" => "∏",
        "partial" => "∂",
        "nabla" => "∇",
        "sqrt" => "√",
        "log" => "log",
        "exp" => "exp",
        "max" => "max",
        "min" => "min",
        _ => return None,
    })
}

/// Commands whose braced argument is kept as text (formatting only).
fn is_wrapper(cmd: &str) -> bool {
    matches!(
        cmd,
        "emph"
            | "textit"
            | "textbf"
            | "textrm"
            | "textsf"
            | "texttt"
            | "textsc"
            | "textup"
            | "textmd"
            | "textnormal"
            | "mathrm"
            | "mathbf"
            | "mathit"
            | "mathsf"
            | "mathtt"
            | "mathcal"
            | "mathbb"
            | "mathfrak"
            | "boldsymbol"
            | "bm"
            | "text"
            | "mbox"
            | "hbox"
            | "url"
            | "href"
            | "uline"
            | "underline"
            | "em"
            | "it"
            | "bf"
            | "rm"
            | "sc"
            | "tt"
            | "sf"
            | "operatorname"
            | "textsuperscript"
            | "textsubscript"
            | "noopsort"
            | "ensuremath"
            | "protect"
            | "nolinkurl"
            | "enquote"
    )
}

/// LaTeX to plain Unicode text. Unknown commands keep their argument text
/// and lose their name; braces, `$` and `~` disappear.
pub fn latex_to_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let (cmd, next) = read_command(&chars, i + 1);
                if let Some(mark) = accent_mark(&cmd) {
                    // \'e, \'{e}, \' e, {\'e}; \c{c}; also \'\i
                    let (base, after) = accent_base(&chars, next);
                    out.push_str(&base);
                    out.push(mark);
                    i = after;
                    continue;
                }
                if let Some(sym) = symbol(&cmd) {
                    // An operator name glued to a symbol ("N\log N") is a word.
                    if sym.len() > 1
                        && sym.bytes().all(|b| b.is_ascii_alphabetic())
                        && out.chars().last().is_some_and(char::is_alphanumeric)
                    {
                        out.push(' ');
                    }
                    out.push_str(sym);
                    // `\ldots and` keeps a word space; `{\ss}` has none.
                    if next > i + 1 + cmd.len() && next < chars.len() && chars[next] != '}' {
                        out.push(' ');
                    }
                    i = next;
                    if chars.get(i) == Some(&'{') && chars.get(i + 1) == Some(&'}') {
                        i += 2;
                    }
                    continue;
                }
                if matches!(cmd.as_str(), "frac" | "dfrac" | "tfrac")
                    && chars.get(next) == Some(&'{')
                {
                    // \frac{a}{b} -> a/b, parenthesised when a side is not one token.
                    let end1 = skip_group(&chars, next);
                    let end2 = skip_group(&chars, end1);
                    let side = |a: usize, b: usize| {
                        let inner: String = chars[(a + 1).min(b)..b.saturating_sub(1).max(a + 1)]
                            .iter()
                            .collect();
                        let t = collapse_ws(&latex_to_text(&inner));
                        if t.contains(' ') || t.contains(['+', '-']) {
                            format!("({t})")
                        } else {
                            t
                        }
                    };
                    if end2 > end1 {
                        out.push_str(&side(next, end1));
                        out.push('/');
                        out.push_str(&side(end1, end2));
                        i = end2;
                        continue;
                    }
                }
                if cmd == "href" {
                    // \href{url}{text}: keep the text only.
                    let after_url = skip_group(&chars, next);
                    i = after_url;
                    continue;
                }
                if is_wrapper(&cmd) || cmd.chars().all(|c| c.is_ascii_alphabetic()) {
                    // Drop the command name; its argument (if any) is read as
                    // ordinary text by the loop.
                    i = next;
                    while chars.get(i) == Some(&' ') && chars.get(i + 1) == Some(&'{') {
                        i += 1;
                    }
                    continue;
                }
                // An escaped character we do not know: keep the character.
                out.push_str(&cmd);
                i = next;
            }
            '{' | '}' => i += 1,
            '$' => {
                // A maths span glued to a word ("bounded by$$O(") gets a space.
                let mut j = i;
                while chars.get(j) == Some(&'$') {
                    j += 1;
                }
                let glued_before = out.chars().last().is_some_and(char::is_alphanumeric);
                let glued_after = chars
                    .get(j)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '\\');
                if glued_before && glued_after {
                    out.push(' ');
                }
                i = j;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                if chars.get(i + 2) == Some(&'-') {
                    out.push('—');
                    i += 3;
                } else {
                    out.push('–');
                    i += 2;
                }
            }
            '`' if chars.get(i + 1) == Some(&'`') => {
                out.push('“');
                i += 2;
            }
            '\'' if chars.get(i + 1) == Some(&'\'') => {
                out.push('”');
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Reads a command name after a backslash: letters, or one other character.
/// Returns the name and the position after it and after any spaces a letter
/// command swallows.
fn read_command(chars: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while end < chars.len() && chars[end].is_ascii_alphabetic() {
        end += 1;
    }
    if end == start {
        return (chars[start].to_string(), start + 1);
    }
    let mut next = end;
    while next < chars.len() && chars[next] == ' ' {
        next += 1;
    }
    (chars[start..end].iter().collect(), next)
}

/// The base letter of an accent: `{e}`, `e`, `{\i}`, `\i`.
fn accent_base(chars: &[char], at: usize) -> (String, usize) {
    let mut i = at;
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    let braced = chars.get(i) == Some(&'{');
    if braced {
        i += 1;
    }
    let mut base = String::new();
    if chars.get(i) == Some(&'\\') {
        let (cmd, next) = read_command(chars, i + 1);
        base.push_str(match cmd.as_str() {
            "i" => "i",
            "j" => "j",
            other => symbol(other).unwrap_or(""),
        });
        i = next;
    } else if let Some(&c) = chars.get(i) {
        base.push(c);
        i += 1;
    }
    if braced && chars.get(i) == Some(&'}') {
        i += 1;
    }
    (base, i)
}

fn skip_group(chars: &[char], at: usize) -> usize {
    if chars.get(at) != Some(&'{') {
        return at;
    }
    let mut depth = 0;
    for (k, &c) in chars.iter().enumerate().skip(at) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    chars.len()
}

/// A bare lower-case DOI from `10.x/...`, `doi:10...` or a doi.org URL.
pub fn clean_doi(s: &str) -> Option<String> {
    let s = s.trim();
    let start = s.find("10.")?;
    let doi = s[start..].trim_end_matches(['.', ',', ';']).trim();
    (doi.contains('/') && doi.len() > 6).then(|| doi.to_lowercase())
}

/// A bare arXiv id without version from ids, `arXiv:` forms and abs/pdf URLs:
/// `2101.00001`, `hep-th/9901001`.
pub fn clean_arxiv(s: &str) -> Option<String> {
    let mut s = s.trim();
    for p in [
        "https://",
        "http://",
        "arxiv.org/abs/",
        "arxiv.org/pdf/",
        "export.",
        "www.",
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest;
        }
    }
    for p in ["arxiv.org/abs/", "arxiv.org/pdf/", "arXiv:", "arxiv:"] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest;
        }
    }
    let s = s.trim_end_matches(".pdf");
    let s = strip_version(s);
    let is_new = {
        let (a, b) = s.split_once('.').unwrap_or(("", ""));
        a.len() == 4
            && a.chars().all(|c| c.is_ascii_digit())
            && (4..=5).contains(&b.len())
            && b.chars().all(|c| c.is_ascii_digit())
    };
    let is_old = s.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '.')
            && b.len() == 7
            && b.chars().all(|c| c.is_ascii_digit())
    });
    (is_new || is_old).then(|| s.to_string())
}

/// The first arXiv id named anywhere in a field, in the forms exports use:
/// `arXiv:2106.15831 [cs]`, `arXiv: 2106.15831`, `arXiv preprint
/// arXiv:2103.07945`, `arxiv.org/abs/...`, `arxiv.org/pdf/...v2.pdf`,
/// `10.48550/arXiv.2003.02234`.
pub fn find_arxiv(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("arxiv").find_map(|(i, _)| {
        let mut rest = &text[i + 5..];
        for p in [".org/abs/", ".org/pdf/", ".org/abs", ".org/pdf"] {
            if rest
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p))
            {
                rest = &rest[p.len()..];
                break;
            }
        }
        let rest = rest.trim_start_matches([':', '.', ' ', '/', '\t']);
        let token: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !",;)]}\"'<>".contains(*c))
            .collect();
        clean_arxiv(token.trim_end_matches('.'))
    })
}

/// An arXiv id that went through a float column (pandas reads the arXiv
/// snapshot's `id` as a number: `704.001` for 0704.0010, `1501.1` for
/// 1501.10000): the leading zero of YYMM and the trailing zeros of the
/// sequence number (4 digits up to 1412, 5 from 1501) restored.
pub fn restore_float_arxiv(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(id) = clean_arxiv(s) {
        return Some(id);
    }
    let (a, b) = s.split_once('.')?;
    if !(3..=4).contains(&a.len())
        || b.is_empty()
        || b.len() > 5
        || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let yymm = format!("{a:0>4}");
    let month: u32 = yymm[2..].parse().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let width = if yymm.as_str() >= "1501" && !yymm.starts_with('9') {
        5
    } else {
        4
    };
    if b.len() > width {
        return None;
    }
    clean_arxiv(&format!("{yymm}.{b:0<width$}"))
}

/// Splits one string naming several authors, by the separators it uses:
/// `;`, " and ", or ", " between full names ("A. One, B. Two and C. Three").
/// A single "Last, First" stays one author: a comma splits only when every
/// part has a space in it (a first name and a last name).
pub fn split_author_list(s: &str) -> Vec<String> {
    let s = s.replace(", and ", " and ");
    let parts: Vec<String> = if s.contains(';') {
        s.split(';')
            .flat_map(|p| p.split(" and "))
            .map(str::to_string)
            .collect()
    } else {
        let by_and: Vec<&str> = s.split(" and ").collect();
        let by_comma: Vec<&str> = by_and
            .iter()
            .flat_map(|p| p.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if by_comma.len() > by_and.len() && by_comma.iter().all(|p| p.contains(' ')) {
            by_comma.into_iter().map(str::to_string).collect()
        } else {
            by_and.into_iter().map(str::to_string).collect()
        }
    };
    parts
        .iter()
        .map(|p| collapse_ws(p))
        .filter(|p| !p.is_empty())
        .collect()
}

fn strip_version(s: &str) -> &str {
    if let Some(pos) = s.rfind('v') {
        let tail = &s[pos + 1..];
        if pos > 0 && !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) {
            return &s[..pos];
        }
    }
    s
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// A month name or abbreviation ("March", "mar", "Sept.") or number (1..=12).
pub fn parse_month(s: &str) -> Option<u8> {
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        return (1..=12).contains(&n).then_some(n);
    }
    if s.len() < 3 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let m = MONTHS.iter().position(|m| s.starts_with(m))?;
    (full[m].starts_with(s.as_str()) || s == "sept").then_some(m as u8 + 1)
}

/// Year and month from a date-ish string: ISO and RIS dates
/// (`2019-05-12`, `2019/05/12/`, `2019-05`), dates with month names
/// (`May 2019`, `Mon, 2 Apr 2007 19:18:42 GMT`, `12 Sept. 2019`) or a bare
/// year. The month is `None` when the string does not give one.
pub fn parse_date(s: &str) -> Option<(i32, Option<u8>)> {
    let year = parse_year(s)?;
    let at = s.find(&year.to_string())?;
    // A number right after the year: YYYY-MM, YYYY/MM, YYYY.MM.
    let after = &s[at + 4..];
    let numeric = after
        .strip_prefix(['-', '/', '.'])
        .map(|r| r.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
        .filter(|d| (1..=2).contains(&d.len()))
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|m| (1..=12).contains(m));
    if numeric.is_some() {
        return Some((year, numeric));
    }
    // Otherwise the first word that is a month name.
    let named = s
        .split(|c: char| !c.is_ascii_alphabetic() && c != '.')
        .filter(|w| w.trim_end_matches('.').len() >= 3)
        .find_map(parse_month);
    Some((year, named))
}

/// The date of the first candidate that has a year, with the month of the
/// first candidate of that same year that has one (RIS `PY` often gives the
/// year, `DA` the full date).
pub fn best_date<'a>(
    candidates: impl IntoIterator<Item = Option<&'a str>>,
) -> (Option<i32>, Option<u8>) {
    let dates: Vec<(i32, Option<u8>)> = candidates
        .into_iter()
        .flatten()
        .filter_map(parse_date)
        .collect();
    let Some(&(year, _)) = dates.first() else {
        return (None, None);
    };
    let month = dates.iter().filter(|d| d.0 == year).find_map(|d| d.1);
    (Some(year), month)
}

/// The first plausible four-digit year (1800..=2100) in a date-ish string.
pub fn parse_year(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3)).find_map(|i| {
        let w = &b[i..i + 4];
        let boundary_before = i == 0 || !b[i - 1].is_ascii_digit();
        let boundary_after = i + 4 == b.len() || !b[i + 4].is_ascii_digit();
        if boundary_before && boundary_after && w.iter().all(u8::is_ascii_digit) {
            let y: i32 = std::str::from_utf8(w).ok()?.parse().ok()?;
            (1800..=2100).contains(&y).then_some(y)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_give_year_and_month_where_they_have_one() {
        assert_eq!(parse_date("2019-05-12"), Some((2019, Some(5))));
        assert_eq!(parse_date("2019/05/12/"), Some((2019, Some(5))));
        assert_eq!(parse_date("2019///"), Some((2019, None)));
        assert_eq!(parse_date("2017-06-12T17:57:34Z"), Some((2017, Some(6))));
        assert_eq!(
            parse_date("Mon, 2 Apr 2007 19:18:42 GMT"),
            Some((2007, Some(4)))
        );
        assert_eq!(parse_date("May 2019"), Some((2019, Some(5))));
        assert_eq!(parse_date("12 Sept. 2019"), Some((2019, Some(9))));
        assert_eq!(parse_date("2019-2020"), Some((2019, None)));
        assert_eq!(parse_date("2019"), Some((2019, None)));
        assert_eq!(parse_date("2019 original"), Some((2019, None)));
        assert_eq!(parse_date("Proceedings 2019"), Some((2019, None)));
        assert_eq!(parse_date("no date"), None);
        assert_eq!(parse_month("jan"), Some(1));
        assert_eq!(parse_month("January"), Some(1));
        assert_eq!(parse_month("11"), Some(11));
        assert_eq!(parse_month("13"), None);
        assert_eq!(parse_month("maybe"), None);
        assert_eq!(
            best_date([Some("2019"), None, Some("2019/05/12/")]),
            (Some(2019), Some(5))
        );
        assert_eq!(
            best_date([Some("2019"), Some("2018/05/12/")]),
            (Some(2019), None)
        );
        assert_eq!(best_date([None, None]), (None, None));
    }

    #[test]
    fn latex_accents_and_commands_become_unicode() {
        assert_eq!(
            clean_text(r#"Gro{\ss}berger and Bal\'azs"#),
            "Großberger and Balázs"
        );
        assert_eq!(
            clean_text(r#"{\'E}cole, \c{c}a, \v{S}koda, {\"o}"#),
            "École, ça, Škoda, ö"
        );
        assert_eq!(
            clean_text(r#"Na\"{\i}ve \emph{deep} nets"#),
            "Naïve deep nets"
        );
        assert_eq!(
            clean_text(r"{UMAP}: {Uniform} {Manifold} Approximation"),
            "UMAP: Uniform Manifold Approximation"
        );
        assert_eq!(
            clean_text(r"68.2\% top-1 \& 10\$ at $\alpha$-level"),
            "68.2% top-1 & 10$ at α-level"
        );
        assert_eq!(
            clean_text("pages 1--10 and so---on"),
            "pages 1–10 and so—on"
        );
        assert_eq!(clean_text(r"\textbackslash{}n and a\_b"), r"\n and a_b");
    }

    #[test]
    fn html_tags_and_entities_are_removed() {
        assert_eq!(
            clean_text("<jats:p>Deep &amp; wide <i>nets</i> for x&lt;y &#x3b1;</jats:p>"),
            "Deep & wide nets for x<y α"
        );
        assert_eq!(clean_text("if a < b and c > d"), "if a < b and c > d");
    }

    #[test]
    fn copyright_tails_are_cut() {
        assert_eq!(
            clean_abstract("We study X. © 2021 Elsevier B.V. All rights reserved."),
            "We study X."
        );
        assert_eq!(
            clean_abstract(
                "We study Y. © 2021, The Author(s), under exclusive license to Springer Nature."
            ),
            "We study Y."
        );
        assert_eq!(
            clean_abstract("Copyright law shapes how models are trained on text."),
            "Copyright law shapes how models are trained on text."
        );
    }

    #[test]
    fn ids_are_normalised() {
        assert_eq!(
            clean_arxiv("http://arxiv.org/abs/2003.02234v3").as_deref(),
            Some("2003.02234")
        );
        assert_eq!(
            clean_arxiv("arXiv:hep-th/9901001v1").as_deref(),
            Some("hep-th/9901001")
        );
        assert_eq!(clean_arxiv("0704.0001").as_deref(), Some("0704.0001"));
        assert_eq!(clean_arxiv("W1234"), None);
        assert_eq!(
            clean_doi("https://doi.org/10.1103/PhysRevD.76.013009").as_deref(),
            Some("10.1103/physrevd.76.013009")
        );
        assert_eq!(parse_year("Mon, 2 Apr 2007 19:18:42 GMT"), Some(2007));
        assert_eq!(parse_year("12345"), None);
    }
    // Issue 19: what real exports lost.
    #[test]
    fn arxiv_ids_are_found_in_every_field_exports_use() {
        for (text, id) in [
            ("arXiv: 2106.15831", "2106.15831"),
            ("arXiv:1606.02360 [cs, math]", "1606.02360"),
            ("arXiv preprint arXiv:2103.07945", "2103.07945"),
            ("http://arxiv.org/abs/2003.02234v3", "2003.02234"),
            ("https://arxiv.org/pdf/1706.03762v7.pdf", "1706.03762"),
            ("10.48550/arXiv.2003.02234", "2003.02234"),
            ("ArXiv:hep-th/9901001v2", "hep-th/9901001"),
        ] {
            assert_eq!(find_arxiv(text).as_deref(), Some(id), "{text}");
        }
        assert_eq!(find_arxiv("Publisher: arXiv"), None);
        // Found by the fuzz test: a multi-byte character where ".org/abs" would end.
        assert_eq!(find_arxiv("arXiv:2110.06ù48 [cs]"), None);
        assert_eq!(find_arxiv("arXiv.oùg"), None);
        assert_eq!(find_arxiv("https://example.org/2003.02234"), None);
    }

    #[test]
    fn zotero_escaped_tex_is_read_to_plain_text() {
        // As Zotero's BibTeX export writes TeX it stored as text.
        assert_eq!(
            clean_text(r"access to an {\textbackslash}emph\{unlabelled\} test sample"),
            "access to an unlabelled test sample"
        );
        assert_eq!(
            clean_text(r"called \${\textbackslash}mathcal\{V\}\$-information"),
            "called V-information"
        );
        assert_eq!(
            clean_text(r"classes of \${\textbackslash}phi\$-divergences"),
            "classes of φ-divergences"
        );
        assert_eq!(
            clean_text(r"{\em robust} and \textit{fast}, see \url{https://x.org/a}"),
            "robust and fast, see https://x.org/a"
        );
        let bound = clean_text(
            r"shown to be bounded by\$\$O{\textbackslash}left( \{{\textbackslash}frac\{\{{\textbackslash}mathop c{\textbackslash}nolimits\_f{\textasciicircum}2 \}\}\{n\}\} {\textbackslash}right)\$\$wheren",
        );
        assert_eq!(bound, "shown to be bounded by O( c_f^2/n )wheren");
        // A literal backslash stays.
        assert_eq!(clean_text(r"\textbackslash{}n"), r"\n");
    }

    #[test]
    fn tilde_means_about_outside_tex() {
        assert_eq!(
            clean_abstract("over a ~6 h period {sic}"),
            "over a ~6 h period sic"
        );
        assert_eq!(clean_text("over a ~6 h period"), "over a ~6 h period");
        assert_eq!(
            bibtex_ties(r"Fig.~1 and ma\~{n}ana"),
            r"Fig. 1 and ma\~{n}ana"
        );
        assert_eq!(
            clean_text(&bibtex_ties(r"Fig.~1, ma\~{n}ana")),
            "Fig. 1, mañana"
        );
    }

    #[test]
    fn copyright_tails_in_every_shape_are_cut() {
        for (text, kept) in [
            (
                "We measure wages. © Kalahari Journals.",
                "We measure wages.",
            ),
            (
                "Optics results. © COPYRIGHT SPIE. Downloading of the abstract is permitted for personal use only.",
                "Optics results.",
            ),
            (
                "We study Z. © 2019, © 2019 Informa UK Limited, trading as Taylor & Francis Group.",
                "We study Z.",
            ),
            ("We study W. Copyright © 2020 The Authors.", "We study W."),
        ] {
            assert_eq!(clean_abstract(text), kept, "{text}");
        }
    }

    #[test]
    fn float_mangled_arxiv_ids_are_restored() {
        assert_eq!(restore_float_arxiv("704.001").as_deref(), Some("0704.0010"));
        assert_eq!(
            restore_float_arxiv("704.0001").as_deref(),
            Some("0704.0001")
        );
        assert_eq!(restore_float_arxiv("1501.1").as_deref(), Some("1501.10000"));
        assert_eq!(restore_float_arxiv("1412.5").as_deref(), Some("1412.5000"));
        assert_eq!(
            restore_float_arxiv("2106.15831").as_deref(),
            Some("2106.15831")
        );
        assert_eq!(
            restore_float_arxiv("hep-th/9901001").as_deref(),
            Some("hep-th/9901001")
        );
        assert_eq!(restore_float_arxiv("713.5"), None);
        assert_eq!(restore_float_arxiv("abc"), None);
    }

    #[test]
    fn author_lists_split_by_the_separators_they_use() {
        assert_eq!(
            split_author_list("C. Balázs, E. L. Berger, P. M. Nadolsky and C.-P. Yuan"),
            vec!["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C.-P. Yuan"]
        );
        assert_eq!(split_author_list("Smith, John"), vec!["Smith, John"]);
        assert_eq!(
            split_author_list("Smith, John and Roe, R."),
            vec!["Smith, John", "Roe, R."]
        );
        assert_eq!(
            split_author_list("Doe, J.; Roe, R."),
            vec!["Doe, J.", "Roe, R."]
        );
        assert_eq!(split_author_list("Ada Lovelace"), vec!["Ada Lovelace"]);
    }
}
