//! Effective, start, deadline and validity dates inside a requirement
//! sentence: `from 1 June 2026`, `as of 1 January 2024`, `until 31 December
//! 2026`, `od 1. juna 2026.`, `од 1. јануара 2026. године`, `nga 1 qershori
//! 2026`, `from 2026-06-01`, `in April 2027` → `2026-06-01` (or `2027-04`
//! when the page gives only the month). A date rewritten in another format
//! is the same date.
//!
//! Only a date right after a word that makes it a requirement's date
//! ("from", "until", "od", "do", "nga", "deri" …) is one: "last updated",
//! publication, news and copyright dates are noise (and "last updated"
//! lines are dropped before facts are read).
//!
//! Text comes transliterated to Latin (Cyrillic reads as Latin).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::LEXICON;
use super::scan::{FactRegex, Groups, Kind, Lines};
use super::{WB, word_alternation};

/// Month names in every case, longest first, as a regex alternation.
fn months() -> String {
    let mut names: Vec<&str> = LEXICON.months.keys().map(String::as_str).collect();
    names.sort_by_key(|n| (std::cmp::Reverse(n.len()), *n));
    names
        .iter()
        .map(|n| regex::escape(n))
        .collect::<Vec<_>>()
        .join("|")
}

pub(super) static DATE: LazyLock<FactRegex> = LazyLock::new(|| {
    let months = months();
    // Words after which a date is a requirement's date ("from", "od", "nga").
    let triggers = word_alternation(LEXICON.date_triggers.iter().map(String::as_str), false, false);
    FactRegex::new(format!(
        r"{WB}(?:{triggers})[^\S\n]+(?:the[^\S\n]+)?(?:(?P<iy>[0-9]{{4}})-(?P<im>[0-9]{{2}})-(?P<id>[0-9]{{2}})|(?P<nd>[0-9]{{1,2}})\.(?P<nm>[0-9]{{1,2}})\.(?P<ny>[0-9]{{4}})\.?|(?P<d1>[0-9]{{1,2}})\.?[^\S\n]+(?P<m1>{months})\.?,?[^\S\n]+(?P<y1>[0-9]{{4}})\.?|(?P<m2>{months})\.?[^\S\n]+(?P<d2>[0-9]{{1,2}}),?[^\S\n]+(?P<y2>[0-9]{{4}})|(?P<m3>{months})[^\S\n]+(?P<y3>[0-9]{{4}}))(?-u:\b)"
    ))
});

/// Any calendar date, with or without a trigger word (for telling a news
/// list from a document list).
static ANY_DATE: LazyLock<Regex> = LazyLock::new(|| {
    let months = months();
    Regex::new(&format!(
        r"{WB}(?:[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|[0-9]{{1,2}}[./][0-9]{{1,2}}[./][0-9]{{2,4}}|[0-9]{{1,2}}\.?[^\S\n]+(?:{months})\.?,?[^\S\n]+[0-9]{{4}}|(?:{months})[^\S\n]+[0-9]{{1,2}},?[^\S\n]+[0-9]{{4}})"
    ))
    .unwrap()
});

/// Whether `line` (transliterated to Latin) holds a calendar date.
pub fn has_date(line: &str) -> bool {
    ANY_DATE.is_match(&line.to_ascii_lowercase())
}

/// Whether `text` begins or ends with a calendar date, as news items are
/// dated ("Visa centre moves 14.03.2026", "12 March 2026: New hours").
/// Only the first and last 32 bytes are searched: a date there is all
/// that counts, and every item of a long list is asked.
pub fn dated_at_an_edge(text: &str) -> bool {
    let text = text.trim().trim_end_matches(['.', ')', ']']);
    // Lowered in a buffer on the stack: every item of a list is asked.
    let edge = |from: usize, to: usize, buf: &mut [u8; 32]| -> usize {
        let (mut from, mut to) = (from, to);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        while !text.is_char_boundary(to) {
            to -= 1;
        }
        let part = &text.as_bytes()[from..to.max(from)];
        buf[..part.len()].copy_from_slice(part);
        buf[..part.len()].make_ascii_lowercase();
        part.len()
    };
    // Every date has four digits or more and ends with one: an edge
    // without them is not searched (most items of a document list).
    let digits = |part: &[u8]| part.iter().filter(|b| b.is_ascii_digit()).count();
    let mut buf = [0u8; 32];
    let len = edge(0, text.len().min(32), &mut buf);
    let head = std::str::from_utf8(&buf[..len]).expect("whole characters");
    if digits(head.as_bytes()) >= 4 && ANY_DATE.find(head).is_some_and(|m| m.start() <= 2) {
        return true;
    }
    let len = edge(text.len().saturating_sub(32), text.len(), &mut buf);
    let tail = std::str::from_utf8(&buf[..len]).expect("whole characters");
    // A date ending two bytes or less before the end ends in its last three.
    digits(&tail.as_bytes()[len.saturating_sub(3)..]) > 0
        && digits(tail.as_bytes()) >= 4
        && ANY_DATE.find_iter(tail).any(|m| tail.len() - m.end() <= 2)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DateMatch {
    pub span: Range<usize>,
    pub year: u16,
    pub month: u8,
    pub day: Option<u8>,
}

impl DateMatch {
    pub fn normal(&self) -> String {
        match self.day {
            Some(d) => format!("{:04}-{:02}-{d:02}", self.year, self.month),
            None => format!("{:04}-{:02}", self.year, self.month),
        }
    }
}

fn month_of(word: &str) -> Option<u8> {
    LEXICON.months.get(word).copied()
}

/// Finds every requirement date in `text` (transliterated to Latin).
pub fn find(text: &str) -> Vec<DateMatch> {
    let lower = text.to_ascii_lowercase();
    // Every form of a date has a four-digit year and none crosses a line:
    // only lines holding four digits in a row are searched (a dense page
    // has a number on every line, but few years).
    let mut lines = Vec::new();
    let mut at = 0;
    for line in lower.split('\n') {
        if has_four_digits(line) {
            lines.push(at..at + line.len());
        }
        at += line.len() + 1;
    }
    let mut out = Vec::new();
    DATE.each(&lower, &lines, |c| read(&c, &mut out));
    out
}

/// [`find`] on the lines `lines` says hold dates; `lower` is the text in
/// ASCII lower case.
pub(super) fn find_in(lower: &str, lines: &Lines) -> Vec<DateMatch> {
    let mut out = Vec::new();
    DATE.each(lower, lines.get(Kind::Date), |c| read(&c, &mut out));
    out
}

/// Whether `line` has four ASCII digits in a row.
fn has_four_digits(line: &str) -> bool {
    let mut run = 0;
    for b in line.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run == 4 {
            return true;
        }
    }
    false
}

/// The date of a [`DATE`] match `c`, if it is one, onto `out`.
fn read(c: &Groups, out: &mut Vec<DateMatch>) {
    // Groups by name, at each match: dates are few (fees and ages look
    // theirs up once a page).
    let num = |name: &str| c.text(DATE.group(name)).and_then(|m| m.parse::<u16>().ok());
    let month = |name: &str| c.text(DATE.group(name)).and_then(month_of);
    let (year, month, day) = if let Some(y) = num("iy") {
        (y, num("im").map(|m| m as u8), num("id").map(|d| d as u8))
    } else if let Some(y) = num("ny") {
        (y, num("nm").map(|m| m as u8), num("nd").map(|d| d as u8))
    } else if let Some(y) = num("y1") {
        (y, month("m1"), num("d1").map(|d| d as u8))
    } else if let Some(y) = num("y2") {
        (y, month("m2"), num("d2").map(|d| d as u8))
    } else if let Some(y) = num("y3") {
        (y, month("m3"), None)
    } else {
        return;
    };
    let Some(month) = month.filter(|m| (1..=12).contains(m)) else {
        return;
    };
    if !(1900..=2200).contains(&year) || day.is_some_and(|d| !(1..=31).contains(&d)) {
        return;
    }
    // The span covers the date, not its trigger word: the trigger stays
    // in the context ("from", "until").
    let first = ["iy", "nd", "d1", "m2", "m3"]
        .iter()
        .find_map(|&n| c.span(DATE.group(n)))
        .map_or(0, |m| m.start);
    out.push(DateMatch {
        span: first..c.whole().end,
        year,
        month,
        day,
    });
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn norm(text: &str) -> Vec<String> {
        find(&crate::facts::transliterate(text))
            .iter()
            .map(DateMatch::normal)
            .collect()
    }
}
