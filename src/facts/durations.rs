//! Durations: `90 days`, `six-month period`, `a year`, `24 hours`,
//! `šest meseci`, `tre muaj`, `90 (деведесет) дана` … → `"<n> <unit>"`.
//! Dates and plain counts are not durations.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::LEXICON;
use super::{Unit, WB, word_alternation};

static NUMBERED: LazyLock<Regex> = LazyLock::new(|| {
    let nums = word_alternation(LEXICON.numbers.keys().map(String::as_str), true, true);
    let units = word_alternation(LEXICON.units.iter().map(|u| u.0.as_str()), true, true);
    let qualifiers = word_alternation(LEXICON.qualifiers.iter().map(String::as_str), true, true);
    // Between number and unit may sit a spelled-out number in brackets
    // ("90 (ninety) days") and a qualifier ("15 working days", "10 radnih dana").
    Regex::new(&format!(
        r"(?:{WB}(?P<from>[0-9]{{1,4}})[^\S\n]*(?:-|–|to|do|deri në|deri)[^\S\n]*)?(?:(?P<num>{WB}[0-9]{{1,4}}|{nums})(?:[^\S\n]*\((?P<paren>[^)\n]{{1,30}})\))?|{WB}\p{{L}}+[^\S\n]*\((?P<pnum>[0-9]{{1,4}})\))(?:[^\S\n]+(?:{qualifiers}))?(?:[^\S\n]*-[^\S\n]*|[^\S\n]+)(?P<unit>{units})"
    ))
    .unwrap()
});

static ARTICLE: LazyLock<Regex> = LazyLock::new(|| {
    let units = word_alternation(LEXICON.units.iter().map(|u| u.0.as_str()), true, true);
    // "a year" only after a word that makes it a length of time ("for a year",
    // "to a year"), not a rate ("100 EUR a day", "once a year").
    Regex::new(&format!(
        r"{WB}(?:for|to|of|within|than|over|after|about|least|most|up to|period of|validity of)[^\S\n]+(?P<art>an?)[^\S\n]+(?P<unit>{units})"
    ))
    .unwrap()
});

static GODINU_DANA: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u:\b)godinu dana(?-u:\b)").unwrap());

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

fn unit_of(word: &str) -> Option<Unit> {
    let w = word.to_lowercase();
    LEXICON.units.iter().find(|(k, _)| *k == w).map(|(_, u)| *u)
}

fn number_of(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse() {
        return Some(n);
    }
    // "twenty  one" as the lexicon writes it: one space between words.
    let w = word
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    LEXICON.numbers.get(&w).copied()
}

/// Finds every duration in `text` (already transliterated to Latin),
/// skipping ranges in `taken` (the fees of the same line).
pub fn find(text: &str, taken: &[Range<usize>]) -> Vec<DurationMatch> {
    // Lower-case regexes over an ASCII-lowercased copy: see `fees::find`.
    let text = &text.to_ascii_lowercase();
    let mut out: Vec<DurationMatch> = Vec::new();
    let free = |out: &[DurationMatch], r: &Range<usize>| {
        !taken
            .iter()
            .chain(out.iter().map(|m| &m.span))
            .any(|t| t.start < r.end && r.start < t.end)
    };
    for m in GODINU_DANA.find_iter(text) {
        out.push(DurationMatch {
            span: m.range(),
            n: 1,
            unit: Unit::Years,
        });
    }
    for caps in NUMBERED.captures_iter(text) {
        let whole = caps.get(0).unwrap();
        let Some(num) = caps.name("num").or(caps.name("pnum")) else {
            continue;
        };
        // Part of a longer number ("46,300 days" is a count's tail, "1.5" a decimal).
        let prev: Vec<char> = text[..num.start()].chars().rev().take(2).collect();
        if matches!(prev.as_slice(), [c, d, ..] if matches!(c, '.' | ',' | '/') && d.is_ascii_digit()) {
            continue;
        }
        // "ninety (90) days", "one hundred eighty (180) days": digits in
        // brackets are the number.
        let n = caps
            .name("paren")
            .and_then(|p| p.as_str().trim().parse().ok())
            .or_else(|| number_of(num.as_str()));
        let (Some(n), Some(unit)) = (n, unit_of(&caps["unit"])) else {
            continue;
        };
        // "2014 godine" is the year 2014, not a duration.
        if n == 0 || (unit == Unit::Years && (1900..=2100).contains(&n)) || !free(&out, &whole.range()) {
            continue;
        }
        // "2-3 weeks", "od 30 do 90 dana": both ends of a range are durations.
        if let Some(from) = caps
            .name("from")
            .and_then(|f| f.as_str().parse().ok())
            .filter(|&f| f > 0)
        {
            out.push(DurationMatch {
                span: whole.range(),
                n: from,
                unit,
            });
        }
        out.push(DurationMatch {
            span: whole.range(),
            n,
            unit,
        });
    }
    for caps in ARTICLE.captures_iter(text) {
        let art = caps.name("art").unwrap();
        let span = art.start()..caps.get(0).unwrap().end();
        if let Some(unit) = unit_of(&caps["unit"])
            && free(&out, &span)
        {
            out.push(DurationMatch { span, n: 1, unit });
        }
    }
    out.sort_by_key(|m| m.span.start);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The durations of a text in normal form (`"90 days"`).
    pub fn norm(text: &str) -> Vec<String> {
        find(&crate::facts::transliterate(text), &[])
            .iter()
            .map(DurationMatch::normal)
            .collect()
    }
}
