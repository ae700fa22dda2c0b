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

use super::WB;

/// Month names and their case forms, lower case, Latin script.
const MONTHS: &[(&str, u8)] = &[
    ("january", 1),
    ("jan", 1),
    ("januar", 1),
    ("januara", 1),
    ("januaru", 1),
    ("janar", 1),
    ("janari", 1),
    ("janarit", 1),
    ("januarom", 1),
    ("february", 2),
    ("feb", 2),
    ("februar", 2),
    ("februara", 2),
    ("februaru", 2),
    ("shkurt", 2),
    ("shkurti", 2),
    ("shkurtit", 2),
    ("februarom", 2),
    ("march", 3),
    ("mar", 3),
    ("mart", 3),
    ("marta", 3),
    ("martu", 3),
    ("mars", 3),
    ("marsi", 3),
    ("marsit", 3),
    ("martom", 3),
    ("april", 4),
    ("apr", 4),
    ("aprila", 4),
    ("aprilu", 4),
    ("prill", 4),
    ("prilli", 4),
    ("prillit", 4),
    ("aprilom", 4),
    ("may", 5),
    ("maj", 5),
    ("maja", 5),
    ("maju", 5),
    ("maji", 5),
    ("majit", 5),
    ("majem", 5),
    ("june", 6),
    ("jun", 6),
    ("juna", 6),
    ("junu", 6),
    ("qershor", 6),
    ("qershori", 6),
    ("qershorit", 6),
    ("junom", 6),
    ("july", 7),
    ("jul", 7),
    ("jula", 7),
    ("julu", 7),
    ("korrik", 7),
    ("korriku", 7),
    ("korrikut", 7),
    ("julom", 7),
    ("august", 8),
    ("aug", 8),
    ("avgust", 8),
    ("avgusta", 8),
    ("avgustu", 8),
    ("gusht", 8),
    ("gushti", 8),
    ("gushtit", 8),
    ("avgustom", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("septembar", 9),
    ("septembra", 9),
    ("septembru", 9),
    ("shtator", 9),
    ("shtatori", 9),
    ("shtatorit", 9),
    ("septembrom", 9),
    ("october", 10),
    ("oct", 10),
    ("oktobar", 10),
    ("oktobra", 10),
    ("oktobru", 10),
    ("tetor", 10),
    ("tetori", 10),
    ("tetorit", 10),
    ("oktobrom", 10),
    ("november", 11),
    ("nov", 11),
    ("novembar", 11),
    ("novembra", 11),
    ("novembru", 11),
    ("nëntor", 11),
    ("nentor", 11),
    ("nëntori", 11),
    ("nëntorit", 11),
    ("novembrom", 11),
    ("december", 12),
    ("dec", 12),
    ("decembar", 12),
    ("decembra", 12),
    ("decembru", 12),
    ("dhjetor", 12),
    ("dhjetori", 12),
    ("dhjetorit", 12),
    ("decembrom", 12),
];

/// Words after which a date is a requirement's date. Not "on" / "më" / "na"
/// alone: "published on 5 May" is how news and updates are dated.
const TRIGGERS: &str = r"(?:from|as of|as from|starting|starting from|starting on|effective|effective from|with effect from|until|till|through|by|before|after|since|no later than|not later than|valid until|in|počev od|počevši od|počev|od|do|zaključno sa|zaključno|nakon|pre|posle|najkasnije do|nga|deri|deri më|deri në|duke filluar nga|duke filluar më|prej|pas|para)";

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let mut names: Vec<&str> = MONTHS.iter().map(|m| m.0).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let months = names.join("|");
    Regex::new(&format!(
        r"{WB}{TRIGGERS}[^\S\n]+(?:the[^\S\n]+)?(?:(?P<iy>[0-9]{{4}})-(?P<im>[0-9]{{2}})-(?P<id>[0-9]{{2}})|(?P<nd>[0-9]{{1,2}})\.(?P<nm>[0-9]{{1,2}})\.(?P<ny>[0-9]{{4}})\.?|(?P<d1>[0-9]{{1,2}})\.?[^\S\n]+(?P<m1>{months})\.?,?[^\S\n]+(?P<y1>[0-9]{{4}})\.?|(?P<m2>{months})\.?[^\S\n]+(?P<d2>[0-9]{{1,2}}),?[^\S\n]+(?P<y2>[0-9]{{4}})|(?P<m3>{months})[^\S\n]+(?P<y3>[0-9]{{4}}))(?-u:\b)"
    ))
    .unwrap()
});

/// Any calendar date, with or without a trigger word (for telling a news
/// list from a document list).
static ANY_DATE: LazyLock<Regex> = LazyLock::new(|| {
    let mut names: Vec<&str> = MONTHS.iter().map(|m| m.0).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let months = names.join("|");
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
    let edge = |from: usize, to: usize| {
        let (mut from, mut to) = (from, to);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        while !text.is_char_boundary(to) {
            to -= 1;
        }
        text[from..to.max(from)].to_ascii_lowercase()
    };
    let head = edge(0, text.len().min(32));
    if ANY_DATE.find(&head).is_some_and(|m| m.start() <= 2) {
        return true;
    }
    let tail = edge(text.len().saturating_sub(32), text.len());
    ANY_DATE.find_iter(&tail).any(|m| tail.len() - m.end() <= 2)
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
    MONTHS.iter().find(|(k, _)| *k == word).map(|(_, m)| *m)
}

/// Finds every requirement date in `text` (transliterated to Latin).
pub fn find(text: &str) -> Vec<DateMatch> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    for c in DATE.captures_iter(&lower) {
        let num = |name: &str| c.name(name).and_then(|m| m.as_str().parse::<u16>().ok());
        let month = |name: &str| c.name(name).and_then(|m| month_of(m.as_str()));
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
            continue;
        };
        let Some(month) = month.filter(|m| (1..=12).contains(m)) else {
            continue;
        };
        if !(1900..=2200).contains(&year) || day.is_some_and(|d| !(1..=31).contains(&d)) {
            continue;
        }
        // The span covers the date, not its trigger word: the trigger stays
        // in the context ("from", "until").
        let first = ["iy", "nd", "d1", "m2", "m3"]
            .iter()
            .find_map(|n| c.name(n))
            .map_or(0, |m| m.start());
        let whole = c.get(0).expect("match");
        out.push(DateMatch {
            span: first..whole.end(),
            year,
            month,
            day,
        });
    }
    out
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
