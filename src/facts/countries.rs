//! Country names in lists of nationalities: "citizens of the EU,
//! Switzerland, Norway and Iceland", "državljani Crne Gore", a `<ul>` of
//! countries, a table whose rows are countries. Each name becomes its ISO
//! 3166-1 alpha-2 code (`ME`, `XK` for Kosovo) or a group (`EU`, `EEA`,
//! `Schengen`), so a respelled name ("Republic of North Macedonia"), a
//! script switch or another grammatical case is the same country.
//!
//! The names and their case endings are data (`data/countries.toml`); this
//! module only finds them. Whether a name is part of a list of nationalities
//! is decided by `facts::parse`, which knows lists, tables and sentences.
//!
//! Text comes transliterated to Latin (Cyrillic reads as Latin).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use serde::Deserialize;

/// One country name found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryMatch {
    pub span: Range<usize>,
    pub code: &'static str,
}

/// A run of names that form one list ("Norway, Iceland and Switzerland").
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub span: Range<usize>,
    /// Indices into the matches given to [`runs`].
    pub names: Range<usize>,
}

const DATA: &str = include_str!("../../data/countries.toml");

static TABLE: LazyLock<Table> =
    LazyLock::new(|| Table::load(DATA).unwrap_or_else(|e| panic!("data/countries.toml: {e}")));

/// Loads the table now (tests and the data check call it to fail early).
pub fn check_data() -> Result<usize, String> {
    Table::load(DATA).map(|t| t.codes.len())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    forms: HashMap<String, Vec<Rule>>,
    joining: Vec<String>,
    between: Vec<String>,
    nationality: Vec<String>,
    groups: HashMap<String, Names>,
    countries: HashMap<String, Names>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    ends: String,
    forms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Names {
    en: Vec<String>,
    sq: Vec<String>,
    sr: Vec<String>,
    #[serde(default)]
    extra: Vec<String>,
}

struct Name {
    code: usize,
    /// The forms each word may take, folded; joining words left out.
    words: Vec<Vec<String>>,
    /// "UK", "BiH", "SAD": matched only as written, letter case included.
    exact: Option<String>,
}

struct Table {
    codes: Vec<String>,
    names: Vec<Name>,
    /// First word's forms → names starting with it.
    first: foldhash::HashMap<String, Vec<usize>>,
    /// The first two letters of those forms, ASCII: most words of a page
    /// are passed over on this test alone.
    openings: Box<[u64; 1024]>,
    joining: foldhash::HashSet<String>,
    between: foldhash::HashSet<String>,
    nationality: Vec<Vec<String>>,
    /// Words in the longest of `nationality`.
    longest_nationality: usize,
    /// The last words of `nationality`: a phrase ends with one.
    nationality_ends: foldhash::HashSet<String>,
}

impl Table {
    fn load(data: &str) -> Result<Table, String> {
        let file: File = toml::from_str(data).map_err(|e| e.to_string())?;
        let fold_all = |v: &[String]| v.iter().map(|w| fold_word(w)).collect::<Vec<_>>();
        let joining: foldhash::HashSet<String> = fold_all(&file.joining).into_iter().collect();
        let mut table = Table {
            codes: Vec::new(),
            names: Vec::new(),
            first: foldhash::HashMap::default(),
            openings: Box::new([0; 1024]),
            between: fold_all(&file.between).into_iter().collect(),
            nationality: file
                .nationality
                .iter()
                .map(|p| words(p).map(|(_, w)| fold_word(w)).collect())
                .collect(),
            joining,
            longest_nationality: 0,
            nationality_ends: foldhash::HashSet::default(),
        };
        table.longest_nationality = table.nationality.iter().map(Vec::len).max().unwrap_or(0);
        table.nationality_ends = table
            .nationality
            .iter()
            .filter_map(|p| p.last().cloned())
            .collect();
        let rules = |lang: &str| -> Result<Vec<(String, Vec<String>)>, String> {
            let rules = file.forms.get(lang).ok_or(format!("no [forms] for {lang}"))?;
            if rules.last().is_none_or(|r| !r.ends.is_empty()) {
                return Err(format!("the last rule of forms.{lang} must have ends = \"\""));
            }
            Ok(rules
                .iter()
                .map(|r| (fold_word(&r.ends), fold_all(&r.forms)))
                .collect())
        };
        let en = rules("en")?;
        let sq = rules("sq")?;
        let sr = rules("sr")?;
        let mut entries: Vec<(&String, &Names)> = file.groups.iter().chain(&file.countries).collect();
        entries.sort_by_key(|(code, _)| code.as_str());
        for (code, names) in entries {
            let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
                || file.groups.contains_key(code);
            if !valid {
                return Err(format!("{code}: not an ISO 3166-1 alpha-2 code"));
            }
            let id = table.codes.len();
            table.codes.push(code.clone());
            for (list, rules) in [(&names.en, &en), (&names.sq, &sq), (&names.sr, &sr)] {
                for name in list {
                    table.add(id, name, Some(rules));
                }
            }
            for name in &names.extra {
                table.add(id, name, None);
            }
        }
        Ok(table)
    }

    fn add(&mut self, code: usize, name: &str, rules: Option<&Vec<(String, Vec<String>)>>) {
        let letters: Vec<char> = name.chars().filter(|c| c.is_alphanumeric()).collect();
        let exact = (letters.len() <= 5 && letters.iter().filter(|c| c.is_uppercase()).count() >= 2)
            .then(|| letters.iter().collect::<String>());
        let words: Vec<Vec<String>> = words(name)
            .map(|(_, w)| fold_word(w))
            .filter(|w| !self.joining.contains(w))
            .map(|w| match (rules, &exact) {
                (Some(rules), None) => inflect(&w, rules),
                _ => vec![w],
            })
            .collect();
        if words.is_empty() {
            return;
        }
        let id = self.names.len();
        for form in &words[0] {
            self.first.entry(form.clone()).or_default().push(id);
            if let [a, b, ..] = form.as_bytes() {
                let bit = usize::from(*a) << 8 | usize::from(*b);
                self.openings[bit / 64] |= 1 << (bit % 64);
            }
        }
        self.names.push(Name { code, words, exact });
    }
}

/// The forms of one word by the first rule whose ending fits.
fn inflect(word: &str, rules: &[(String, Vec<String>)]) -> Vec<String> {
    let Some((ends, forms)) = rules.iter().find(|(ends, _)| word.ends_with(ends.as_str())) else {
        return vec![word.to_string()];
    };
    let stem = &word[..word.len() - ends.len()];
    let mut out: Vec<String> = forms.iter().map(|f| format!("{stem}{f}")).collect();
    if !out.iter().any(|f| f == word) {
        out.push(word.to_string());
    }
    out.retain(|f| !f.is_empty());
    out.dedup();
    out
}

/// Words with their byte spans: letters and digits, split at everything else.
fn words(text: &str) -> impl Iterator<Item = (Range<usize>, &str)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = rest.peek() {
            if c.is_alphanumeric() {
                break;
            }
            rest.next();
        }
        let (start, _) = *rest.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = rest.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        Some((start..end, &text[start..end]))
    })
}

/// Lower case without diacritics ("Češka" → "ceska").
fn fold_word(word: &str) -> String {
    if word.is_ascii() {
        word.to_ascii_lowercase()
    } else {
        super::fold(word)
    }
}

/// [`fold_word`] of a word of a page, borrowed when it is folded already
/// (lower-case ASCII, most words): looked up, not kept.
fn folded(word: &str) -> std::borrow::Cow<'_, str> {
    if word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        std::borrow::Cow::Borrowed(word)
    } else {
        std::borrow::Cow::Owned(fold_word(word))
    }
}

/// [`folded`] of a capitalised word, in `buf` when it is ASCII (most are):
/// every capitalised word of a page is looked up.
fn lowered<'a>(word: &'a str, buf: &'a mut String) -> std::borrow::Cow<'a, str> {
    if word.is_ascii() {
        buf.clear();
        buf.push_str(word);
        buf.make_ascii_lowercase();
        std::borrow::Cow::Borrowed(buf.as_str())
    } else {
        folded(word)
    }
}

/// The code of a match, as written in the data ("ME", "EU", "Schengen").
fn code_of(id: usize) -> &'static str {
    TABLE.codes[id].as_str()
}

/// Every country name in `text`, longest name first where names overlap.
pub fn find(text: &str) -> Vec<CountryMatch> {
    let table = &*TABLE;
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // The words after a name's first, reused from name to name.
    let mut tokens: Vec<(Range<usize>, &str)> = Vec::new();
    let mut buf = String::new();
    let mut i = 0;
    // A byte scan: names start with a capital in all three languages, so
    // only words starting with one are looked up (every page is read).
    // Lower-case ASCII, digits and punctuation, most of a page, are passed
    // byte by byte; a capital or a non-ASCII letter is decoded.
    loop {
        i = next_capital_or_non_ascii(bytes, i);
        let Some(&b) = bytes.get(i) else { break };
        if b.is_ascii() && !b.is_ascii_uppercase() {
            i += 1;
            continue;
        }
        let c = text[i..].chars().next().expect("on a char boundary");
        // Only a word's first letter: the letter before, if any, is no
        // letter or digit.
        if !c.is_uppercase() || text[..i].chars().next_back().is_some_and(char::is_alphanumeric) {
            i += c.len_utf8();
            continue;
        }
        let end = word_end(text, i);
        let opening = || match bytes.get(i..i + 2) {
            Some([a, b]) if a.is_ascii() && b.is_ascii() => {
                let bit = usize::from(a.to_ascii_lowercase()) << 8 | usize::from(b.to_ascii_lowercase());
                table.openings[bit / 64] & (1 << (bit % 64)) != 0
            }
            _ => true,
        };
        if opening()
            && let Some(names) = table.first.get(lowered(&text[i..end], &mut buf).as_ref())
        {
            // The words from here on, as many as the longest candidate
            // needs (joining words between its words included).
            let need = names
                .iter()
                .map(|&n| table.names[n].words.len())
                .max()
                .unwrap_or(1);
            tokens.clear();
            tokens.extend(
                words(&text[i..])
                    .take(need * 2)
                    .map(|(r, w)| (i + r.start..i + r.end, w)),
            );
            let best = names
                .iter()
                .filter_map(|&n| {
                    match_name(table, &table.names[n], text, &tokens, &mut buf).map(|last| (last, n))
                })
                .max_by_key(|&(last, n)| (last, std::cmp::Reverse(n)));
            if let Some((last, n)) = best {
                out.push(CountryMatch {
                    span: i..tokens[last].0.end,
                    code: code_of(table.names[n].code),
                });
                i = tokens[last].0.end;
                continue;
            }
        }
        i = end;
    }
    out
}

/// Where the first byte at or after `i` is an ASCII capital or not ASCII
/// (a name starts at one), or the end: eight bytes at a time, since most
/// of a page is lower-case ASCII and every page is read.
fn next_capital_or_non_ascii(bytes: &[u8], mut i: usize) -> usize {
    use super::{HIGH, ONES};
    while let Some(chunk) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let low = x & !HIGH;
        // Per byte, no carry between them: the high bit is set where
        // `low <= b'Z'` and where `low >= b'A'`; `!x` keeps ASCII bytes.
        let capital = (ONES * (127 + u64::from(b'Z') + 1) - low)
            & !x
            & (low + ONES * (127 - u64::from(b'A') + 1))
            & HIGH;
        let hit = capital | (x & HIGH);
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        i += 1;
    }
    i
}

/// Where the word starting at `at` ends.
fn word_end(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = at;
    loop {
        // ASCII bytes one by one; other letters decoded.
        match bytes.get(i) {
            None => return text.len(),
            Some(b) if b.is_ascii_alphanumeric() => i += 1,
            Some(b) if b.is_ascii() => return i,
            Some(_) => {
                let c = text[i..].chars().next().expect("on a char boundary");
                if !c.is_alphanumeric() {
                    return i;
                }
                i += c.len_utf8();
            }
        }
    }
}

/// The index of the last token of `name` read from the first of `tokens`.
fn match_name(
    table: &Table,
    name: &Name,
    text: &str,
    tokens: &[(Range<usize>, &str)],
    buf: &mut String,
) -> Option<usize> {
    let mut t = 0;
    let mut last = 0;
    for (w, forms) in name.words.iter().enumerate() {
        loop {
            let (span, word) = tokens.get(t)?;
            // The words of one name stand together: no comma or line between.
            if w > 0 && text[tokens[last].0.end..span.start].contains([',', ';', ':', '|', '\n', '(', ')']) {
                return None;
            }
            let key = lowered(word, buf);
            if w > 0 && table.joining.contains(key.as_ref()) {
                t += 1;
                continue;
            }
            if !forms.iter().any(|f| *f == key) {
                return None;
            }
            break;
        }
        last = t;
        t += 1;
    }
    if let Some(exact) = &name.exact {
        let written: String = text[tokens[0].0.start..tokens[last].0.end]
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        if &written != exact {
            return None;
        }
    }
    Some(last)
}

/// The runs of names that stand together as one list: only commas,
/// "and", "or", articles and the like between them. `text` starts at
/// offset `at` of the text `matches` were found in; the runs' spans are in
/// `text`. Written to `out` (cleared first: one buffer serves a page).
pub fn runs(text: &str, at: usize, matches: &[CountryMatch], out: &mut Vec<Run>) {
    let table = &*TABLE;
    out.clear();
    for (i, m) in matches.iter().enumerate() {
        let span = m.span.start - at..m.span.end - at;
        if let Some(run) = out.last_mut()
            && run.names.end == i
            && joins(table, &text[run.span.end..span.start])
        {
            run.span.end = span.end;
            run.names.end = i + 1;
            continue;
        }
        out.push(Run {
            span,
            names: i..i + 1,
        });
    }
}

fn joins(table: &Table, gap: &str) -> bool {
    if gap.contains(['\n', '|', '.', ':']) {
        return false;
    }
    words(gap).all(|(_, w)| {
        let w = folded(w);
        table.joining.contains(w.as_ref()) || table.between.contains(w.as_ref())
    })
}

/// The identity of a sentence that names countries: its words folded, the
/// runs of names masked, joining words ("the", "and") left out, so the
/// same sentence with other names in another order is the same list.
pub fn sentence_key(masked: &str) -> String {
    let table = &*TABLE;
    let mut out = String::from("sentence:");
    for (i, part) in masked.split('§').enumerate() {
        if i > 0 {
            out.push_str(" §");
        }
        for (_, w) in words(part) {
            let w = folded(w);
            if !table.joining.contains(w.as_ref()) {
                out.push(' ');
                out.push_str(&w);
            }
        }
    }
    out
}

/// Whether `before` (the text up to a name) ends in the citizens or
/// nationals of it: "citizens of", "državljani", "shtetasit e". "U.S.
/// citizens need a passport" names the reader's country, not a list.
pub fn after_nationals(before: &str) -> bool {
    let table = &*TABLE;
    // From the name back: the words between ("of the member states of
    // the", "zemalja članica"), then the words a phrase can end with. Only
    // those are read: a sentence naming many countries asks this once for
    // each run of names.
    let mut back = words_back(before).map(folded);
    let Some(end) = back.by_ref().find(|w| {
        !(table.joining.contains(w.as_ref())
            || table.between.contains(w.as_ref())
            || matches!(w.as_ref(), "from" | "iz" | "nga"))
    }) else {
        return false;
    };
    // Most words end no phrase: the phrases are not compared.
    if !table.nationality_ends.contains(end.as_ref()) {
        return false;
    }
    let mut last: Vec<std::borrow::Cow<str>> = Vec::with_capacity(table.longest_nationality);
    last.push(end);
    last.extend(back.take(table.longest_nationality.saturating_sub(1)));
    last.truncate(table.longest_nationality);
    last.reverse();
    table.nationality.iter().any(|phrase| {
        last.len() >= phrase.len()
            && last[last.len() - phrase.len()..]
                .iter()
                .zip(phrase)
                .all(|(a, b)| a == b)
    })
}

/// The words of `text` (runs of letters and digits), the last one first.
fn words_back(text: &str) -> impl Iterator<Item = &str> {
    let mut end = text.len();
    std::iter::from_fn(move || {
        let head = text[..end].trim_end_matches(|c: char| !c.is_alphanumeric());
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(0, |(i, c)| i + c.len_utf8());
        end = start;
        (start < head.len()).then(|| &head[start..])
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The codes of `text` (for the data-file cases).
    pub fn norm(text: &str) -> Vec<String> {
        let latin = crate::facts::transliterate(text);
        find(&latin).iter().map(|m| m.code.to_string()).collect()
    }

    /// The eight-bytes-at-a-time skip stops where a byte-by-byte one
    /// does, for every byte value at every place in a word.
    #[test]
    fn capitals_and_non_ascii_are_found_eight_bytes_at_a_time() {
        let slow = |bytes: &[u8], from: usize| {
            (from..bytes.len())
                .find(|&i| !bytes[i].is_ascii() || bytes[i].is_ascii_uppercase())
                .unwrap_or(bytes.len())
        };
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut bytes = b"visa fees are paid in cash".to_vec();
                bytes[at] = b;
                for from in [0, 3, at] {
                    assert_eq!(
                        next_capital_or_non_ascii(&bytes, from),
                        slow(&bytes, from),
                        "{b} at {at} from {from}"
                    );
                }
            }
        }
        assert_eq!(next_capital_or_non_ascii(b"abc", 0), 3);
        assert_eq!(next_capital_or_non_ascii("a ë".as_bytes(), 0), 2);
    }

    #[test]
    fn the_data_file_loads_with_every_un_member() {
        let n = check_data().unwrap();
        // 193 UN members, Kosovo, 5 more often named, 3 groups.
        assert_eq!(n, 193 + 6 + 3);
    }

    #[test]
    fn names_in_their_cases_and_scripts() {
        assert_eq!(norm("državljani Crne Gore i Bosne i Hercegovine"), ["ME", "BA"]);
        assert_eq!(norm("државља Црне Горе"), ["ME"]);
        assert_eq!(norm("shtetasit e Malit të Zi dhe të Shqipërisë"), ["ME", "AL"]);
        assert_eq!(
            norm("Republic of North Macedonia, Macedonia, FYR Macedonia"),
            ["MK", "MK", "MK"]
        );
        assert_eq!(
            norm("Papua New Guinea, Guinea-Bissau, Guinea"),
            ["PG", "GW", "GN"]
        );
        // Capitals only for abbreviations: "sad" is Serbian for "now".
        assert_eq!(norm("sad SAD Sad"), ["US"]);
    }

    #[test]
    fn runs_are_names_joined_by_commas_and_conjunctions() {
        let text = "Citizens of the EU, Switzerland, Norway and Iceland may enter Serbia.";
        let m = find(text);
        let codes: Vec<&str> = m.iter().map(|m| m.code).collect();
        assert_eq!(codes, ["EU", "CH", "NO", "IS", "RS"]);
        let mut r = Vec::new();
        runs(text, 0, &m, &mut r);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].names, 0..4);
        assert!(after_nationals(&text[..r[0].span.start]));
        assert!(!after_nationals("U.S. "));
        assert!(after_nationals("Državljani "));
        assert!(after_nationals("shtetasit e "));
    }
}
