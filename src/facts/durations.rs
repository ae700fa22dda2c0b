//! Durations: `90 days`, `six-month period`, `a year`, `24 hours`,
//! `šest meseci`, `tre muaj`, `90 (деведесет) дана` … → `"<n> <unit>"`.
//! Dates and plain counts are not durations.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::LEXICON;
use super::scan::{Kind, Lines};
use super::{Unit, WB, word_alternation};

/// A number in digits before a unit word, up to the word: "90 ", "2-3 ",
/// "od 30 do 90 ", "90 (ninety) ", "(90) ", "15 working ". Anchored at the
/// end, so the regex reads back from each unit word (a reverse search as
/// long as the number) instead of scanning the page for numbers.
static NUMBERED: LazyLock<Regex> = LazyLock::new(|| {
    let qualifiers = word_alternation(LEXICON.qualifiers.iter().map(String::as_str), true, true);
    Regex::new(&format!(
        r"(?:{WB}(?P<from>[0-9]{{1,4}})[^\S\n]*(?:-|–|to|do|deri në|deri)[^\S\n]*)?(?:(?P<num>{WB}[0-9]{{1,4}})(?:[^\S\n]*\((?P<paren>[0-9a-zčćđšžëç ,.-]{{1,30}})\))?|\((?P<pnum>[0-9]{{1,4}})\))(?:[^\S\n]+(?:{qualifiers}))?(?:[^\S\n]*-[^\S\n]*|[^\S\n]+)$"
    ))
    .unwrap()
});

/// The unit words, for the one pass (`scan`) to tell where they end.
pub(super) static UNIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&word_alternation(
        LEXICON.units.iter().map(|u| u.0.as_str()),
        true,
        true,
    ))
    .unwrap()
});

/// Words after which "a year" is a length of time ("for a year", "up to
/// a year", "period of a month"), not a rate ("100 EUR a day", "once a
/// year").
const ARTICLE_AFTER: &[&str] = &[
    "for", "to", "of", "within", "than", "over", "after", "about", "least", "most",
];

#[derive(Debug, Clone, PartialEq)]
pub struct DurationMatch {
    pub span: Range<usize>,
    pub n: u32,
    pub unit: Unit,
}

impl DurationMatch {
    pub fn normal(&self) -> String {
        format!("{} {}", self.n, self.unit.as_str())
    }
}

/// Each unit word's unit, looked up once a match is found (every unit
/// word of a dense page is).
static UNIT_OF: LazyLock<foldhash::HashMap<&'static str, Unit>> =
    LazyLock::new(|| LEXICON.units.iter().map(|(k, u)| (k.as_str(), *u)).collect());

fn unit_of(word: &str) -> Option<Unit> {
    if word.chars().any(char::is_uppercase) {
        UNIT_OF.get(word.to_lowercase().as_str()).copied()
    } else {
        UNIT_OF.get(word).copied()
    }
}

fn number_of(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse() {
        return Some(n);
    }
    // Most phrases are written as the lexicon writes them: looked up as
    // they are.
    if !word.contains("  ")
        && word
            .chars()
            .all(|c| c == ' ' || !(c.is_whitespace() || c.is_uppercase()))
    {
        return LEXICON.numbers.get(word).copied();
    }
    // "twenty  one" as the lexicon writes it: one space between words.
    let w = word
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    LEXICON.numbers.get(&w).copied()
}

/// The number that `text[start..end]` (digits or a number word) ends:
/// the longest phrase of the lexicon ending there ("twenty one", "njëzet e
/// një", "dvadeset i pet"), with where it starts.
fn number_before(text: &str, start: usize, end: usize) -> Option<(u32, usize)> {
    let word = &text[start..end];
    if let Ok(n) = word.parse() {
        return Some((n, start));
    }
    // Most words before a unit ("per day", "the months") end no number:
    // asked nothing more.
    // (The text is in ASCII lower case: only a non-ASCII capital is left.)
    if !LEXICON.number_ends.contains(word)
        && (word.is_ascii() || !LEXICON.number_ends.contains(word.to_lowercase().as_str()))
    {
        return None;
    }
    // Up to three words before it, longest phrase first.
    let mut starts = [start; 4];
    let mut found = 1;
    for _ in 0..3 {
        let Some((from, _)) = word_before(text, starts[found - 1]) else {
            break;
        };
        starts[found] = from;
        found += 1;
    }
    starts[..found].iter().rev().find_map(|&from| {
        let phrase = &text[from..end];
        if phrase.contains('-') {
            number_of(&phrase.replace('-', " "))
        } else {
            number_of(phrase)
        }
        .map(|n| (n, from))
    })
}

/// The word that ends just before `at` (spaces or a hyphen between), on
/// the same line: its start and end.
fn word_before(text: &str, at: usize) -> Option<(usize, usize)> {
    // Only spaces and hyphens between: not a line, not a "€".
    let lead = text[..at].trim_end_matches([' ', '-', '\u{a0}', '\t']);
    if lead.len() == at {
        return None;
    }
    let start = lead
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(0, |(i, c)| i + c.len_utf8());
    (start < lead.len()).then_some((start, lead.len()))
}

/// The durations found so far, and the spans they may not lie on. Both
/// are asked once for every candidate of a page, so neither is scanned:
/// `taken` is sorted by start with the furthest end up to each, and the
/// durations' own spans (never overlapping one another: a candidate on one
/// is dropped) are kept by start.
struct Found {
    out: Vec<DurationMatch>,
    spans: std::collections::BTreeMap<usize, usize>,
    taken: Vec<Range<usize>>,
    /// `taken_reach[i]`: the largest end among `taken[..=i]`.
    taken_reach: Vec<usize>,
}

impl Found {
    fn new(taken: &[Range<usize>]) -> Found {
        let mut taken = taken.to_vec();
        taken.sort_by_key(|t| t.start);
        let taken_reach = taken
            .iter()
            .scan(0, |reach, t| {
                *reach = t.end.max(*reach);
                Some(*reach)
            })
            .collect();
        Found {
            out: Vec::new(),
            spans: std::collections::BTreeMap::new(),
            taken,
            taken_reach,
        }
    }

    /// Whether `span` overlaps a taken span or a duration already found.
    fn overlaps(&self, span: &Range<usize>) -> bool {
        // Taken spans starting before `span` ends: one of them reaches into it?
        let before = self.taken.partition_point(|t| t.start < span.end);
        if before > 0 && self.taken_reach[before - 1] > span.start {
            return true;
        }
        // Disjoint spans sorted by start are sorted by end too: the last
        // one starting before `span` ends reaches furthest.
        self.spans
            .range(..span.end)
            .next_back()
            .is_some_and(|(_, &end)| end > span.start)
    }

    fn add(&mut self, m: DurationMatch) {
        self.spans.insert(m.span.start, m.span.end);
        self.out.push(m);
    }

    /// Adds a duration unless it is a year ("2014 godine"), nothing, or lies
    /// on a fee, an age, a date or a duration already found; both ends of a
    /// range ("2-3 weeks", "od 30 do 90 dana") are durations.
    fn push(&mut self, span: Range<usize>, n: u32, unit: Unit, from: Option<u32>) {
        if n == 0 || (unit == Unit::Years && (1900..=2100).contains(&n)) {
            return;
        }
        if self.overlaps(&span) {
            return;
        }
        if let Some(from) = from.filter(|&f| f > 0) {
            self.add(DurationMatch {
                span: span.clone(),
                n: from,
                unit,
            });
        }
        self.add(DurationMatch { span, n, unit });
    }
}

/// Finds every duration in `text` (already transliterated to Latin),
/// skipping ranges in `taken` (the fees of the same line).
pub fn find(text: &str, taken: &[Range<usize>]) -> Vec<DurationMatch> {
    // Lower-case regexes over an ASCII-lowercased copy: see `fees::find`.
    let lower = text.to_ascii_lowercase();
    find_in(&lower, &Lines::of(&lower), taken)
}

/// [`find`] on the lines `lines` says hold unit words (every duration
/// has one); `text` is in ASCII lower case.
pub(super) fn find_in(text: &str, lines: &Lines, taken: &[Range<usize>]) -> Vec<DurationMatch> {
    let mut found = Found::new(taken);
    // Every duration ends with a unit word: each is read back from one.
    // A number's reading ends where the last one's began, as a search
    // through the page would go on after it.
    let mut numbered_from = 0;
    for u in unit_words(text, lines) {
        let word = &text[u.clone()];
        let Some(unit) = unit_of(word) else {
            continue;
        };
        // "godinu dana": a year.
        if word == "godinu"
            && let Some(rest) = text[u.end..].strip_prefix(" dana")
            && !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            found.add(DurationMatch {
                span: u.start..u.end + " dana".len(),
                n: 1,
                unit: Unit::Years,
            });
            continue;
        }
        // No number reads across a line: the search starts on the unit's.
        if let Some(nl) = memchr::memrchr(b'\n', &text.as_bytes()[numbered_from..u.start]) {
            numbered_from += nl + 1;
        }
        if may_be_numbered(text, u.start)
            && let Some(head) = NUMBERED.find_at(&text[..u.start], numbered_from)
        {
            numbered_from = u.end;
            // "90 days", most of them: the digits alone, read without the
            // regex's groups (asking for them costs more than the search).
            let digits = head
                .as_str()
                .trim_end_matches(|c: char| c == '-' || (c.is_whitespace() && c != '\n'));
            let read = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                (!continues_a_number(text, head.start()))
                    .then(|| digits.parse().ok())
                    .flatten()
                    .map(|n| (head.start()..u.end, n, None))
            } else {
                NUMBERED
                    .captures_at(&text[..u.start], head.start())
                    .and_then(|caps| numbered(text, &caps, u.end))
            };
            if let Some((span, n, from)) = read {
                found.push(span, n, unit, from);
            }
        }
        if let Some((n, from)) = in_words(text, u.start) {
            found.push(from..u.end, n, unit, None);
        }
        // "for a year", "up to a month".
        if let Some((art, art_end)) = word_before(text, u.start)
            && matches!(&text[art..art_end], "a" | "an")
            && spaced(&text[art_end..u.start])
            && let Some((w, w_end)) = word_before(text, art)
            && ARTICLE_AFTER.contains(&&text[w..w_end])
            && spaced(&text[w_end..art])
        {
            found.push(art..u.end, 1, unit, None);
        }
    }
    let mut out = found.out;
    out.sort_by_key(|m| m.span.start);
    out
}

/// The words of `text` (runs of letters and digits) that may be unit
/// words, each once: those around the ends of [`UNIT`]'s matches the one
/// pass found, or every word of the unit lines when it found none. A unit
/// word is a whole word: "days" in "90 days", not in "holidays" nor
/// in "daysë".
fn unit_words<'a>(text: &'a str, lines: &'a Lines) -> Box<dyn Iterator<Item = Range<usize>> + 'a> {
    match lines.unit_ends() {
        Some(ends) => {
            let mut last = usize::MAX;
            Box::new(ends.iter().filter_map(move |&end| {
                let word = word_around(text, end);
                (word.start != last).then(|| {
                    last = word.start;
                    word
                })
            }))
        }
        None => Box::new(lines.get(Kind::Unit).iter().flat_map(move |line| {
            let mut at = line.start;
            std::iter::from_fn(move || {
                let rest = &text[at..line.end];
                let start = at + rest.find(char::is_alphanumeric)?;
                let word = word_around(text, start);
                at = word.end;
                Some(word)
            })
        })),
    }
}

/// The word (letters and digits) that `at` is in or at an edge of.
fn word_around(text: &str, at: usize) -> Range<usize> {
    let start = text[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric())
        .last()
        .map_or(at, |(i, _)| i);
    let end = at
        + text[at..]
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(text.len() - at);
    start..end
}

/// A number in digits before a unit word ending at `end`, as [`NUMBERED`]
/// captured it: its span, its number, and where a range starts.
fn numbered(text: &str, caps: &regex::Captures, end: usize) -> Option<(Range<usize>, u32, Option<u32>)> {
    let whole = caps.get(0).expect("match");
    let num = caps.name("num").or(caps.name("pnum"))?;
    if continues_a_number(text, num.start()) {
        return None;
    }
    // "90 (ninety) days" reads the digits; so does "ninety (90) days".
    let n = caps
        .name("paren")
        .and_then(|p| p.as_str().trim().parse().ok())
        .or_else(|| num.as_str().parse().ok())?;
    // "ninety (90) days": the words of the number belong to it.
    let mut span = whole.start()..end;
    if caps.name("pnum").is_some()
        && let Some((ws, we)) = word_before(text, span.start)
        && let Some((_, from)) = number_before(text, ws, we)
    {
        span.start = from;
    }
    Some((span, n, caps.name("from").and_then(|f| f.as_str().parse().ok())))
}

/// Whether digits starting at `at` are part of a longer number ("46,300
/// days" is a count's tail, "1.5" a decimal, "1/2" a fraction).
fn continues_a_number(text: &str, at: usize) -> bool {
    matches!(text.as_bytes()[..at], [.., d, b'.' | b',' | b'/'] if d.is_ascii_digit())
}

/// Whether a [`NUMBERED`] head can end at `unit`: before the space or
/// hyphen there is a digit, a bracket or a qualifier ("15 working days").
/// Most unit words follow a letter ("six months", "per day"): asked so,
/// they cost no search.
fn may_be_numbered(text: &str, unit: usize) -> bool {
    let head = text[..unit].trim_end_matches(|c: char| c == '-' || (c.is_whitespace() && c != '\n'));
    match head.chars().next_back() {
        Some(c) if c.is_ascii_digit() || c == ')' => true,
        Some(c) if c.is_alphanumeric() => {
            let word = &head[head.trim_end_matches(char::is_alphanumeric).len()..];
            LEXICON.qualifiers.iter().any(|q| q == word)
        }
        _ => false,
    }
}

/// A number in words before the unit word at `unit`: "šest meseci",
/// "twenty one days", "pesëmbëdhjetë ditë pune", a qualifier between them
/// allowed. Its value and where it starts.
fn in_words(text: &str, unit: usize) -> Option<(u32, usize)> {
    let (word_start, word_end) = word_before(text, unit)?;
    let (word_start, word_end) = if LEXICON
        .qualifiers
        .iter()
        .any(|q| *q == text[word_start..word_end])
    {
        word_before(text, word_start)?
    } else {
        (word_start, word_end)
    };
    if text[word_start..word_end].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number_before(text, word_start, word_end)
}

/// Whether `gap` is spaces only, at least one, no line break.
fn spaced(gap: &str) -> bool {
    !gap.is_empty() && gap.chars().all(|c| c.is_whitespace() && c != '\n')
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A candidate lying on any taken span is dropped, also when a shorter
    /// span starts after the long one that covers it (spans are looked up
    /// by halves, not scanned).
    #[test]
    fn durations_on_taken_spans_are_dropped() {
        let text = "Valid 90 days, then 30 days, then 6 months.";
        let all = |taken: &[Range<usize>]| -> Vec<String> {
            find(text, taken).iter().map(DurationMatch::normal).collect()
        };
        assert_eq!(all(&[]), ["90 days", "30 days", "6 months"]);
        let at = |s: &str| text.find(s).unwrap();
        // A long span over the first two, and a short one inside it.
        let long = at("90")..at(", then 6");
        let short = at("then 30")..at("then 30") + 2;
        assert_eq!(all(&[short.clone(), long.clone()]), ["6 months"]);
        assert_eq!(all(&[long, short]), ["6 months"]);
        // Touching is not overlapping.
        let before = 0..at("90");
        assert_eq!(
            all(std::slice::from_ref(&before)),
            ["90 days", "30 days", "6 months"]
        );
    }

    /// Each duration is read back from its unit word: the number right
    /// before it on the same line, in digits or words, or "a" after a word
    /// of length ("for a year"); each unit word reads its own number.
    #[test]
    fn numbers_are_read_back_from_each_unit_word() {
        let all = |text: &str| -> Vec<String> { norm(text) };
        assert_eq!(all("5 days 10 days"), ["5 days", "10 days"]);
        assert_eq!(all("valid for 90\ndays"), Vec::<String>::new());
        assert_eq!(all("for a year, or up to a month"), ["1 years", "1 months"]);
        assert_eq!(all("into a year"), Vec::<String>::new());
        assert_eq!(all("1 godinu dana"), ["1 years"]);
        assert_eq!(all("(90) days, ninety (90) days"), ["90 days", "90 days"]);
        // Digits alone are read without the regex's groups, and the tail
        // of a longer number is still none.
        assert_eq!(
            all("46,300 days, 1.5 days, 1/2 day, 15 working days"),
            ["15 days"]
        );
        assert_eq!(all("30 - days"), ["30 days"]);
        assert_eq!(
            all("2-3 weeks, then six months"),
            ["2 weeks", "3 weeks", "6 months"]
        );
    }

    /// A unit word is a whole word ("holidays", "daysë" are none), found
    /// alike where the one pass told where unit words end and where it
    /// did not (then every word of the line is asked).
    #[test]
    fn unit_words_are_whole_words() {
        let text = "holidays of 5 days; 3 orëve e 2 ditëve; 10 daysë; 4 weeks";
        let lower = text.to_ascii_lowercase();
        let told = find_in(&lower, &Lines::of(&lower), &[]);
        let asked = find_in(&lower, &Lines::everywhere(&lower), &[]);
        assert_eq!(told, asked);
        assert_eq!(
            told.iter().map(DurationMatch::normal).collect::<Vec<_>>(),
            ["5 days", "3 hours", "2 days", "4 weeks"]
        );
    }

    /// The durations of a text in normal form (`"90 days"`).
    pub fn norm(text: &str) -> Vec<String> {
        find(&crate::facts::transliterate(text), &[])
            .iter()
            .map(DurationMatch::normal)
            .collect()
    }
}
