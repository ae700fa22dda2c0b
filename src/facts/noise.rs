//! Noise and transient pages: lines to drop before comparing ("last
//! updated" dates, view counters, cookie notices, a source's own `ignore`
//! patterns) and the signs of an error, maintenance or bot-check page.

use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::LEXICON;
use super::{durations, fees, transliterate};

static DATEISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:1[89]|20)\d{2}\b|\b\d{1,2}\s?[./-]\s?\d{1,2}\s?[./-]\s?\d{2,4}\b|\b(?:today|yesterday|danas|juče|sot|dje)\b").unwrap()
});

static ONLY_DATE: LazyLock<Regex> = LazyLock::new(|| {
    let months =
        "jan|feb|mar|apr|may|maj|jun|jul|aug|avg|gus|sep|sht|oct|okt|tet|nov|nën|nen|dec|dhj|pri|qer|kor";
    // No words but month names: "12.03.2026", "March 2026", "👁 4812", "🕒 10:42".
    Regex::new(&format!(r"(?i)^(?:[^\p{{L}}]|\b(?:{months})\p{{L}}*)+$")).unwrap()
});

fn words_regex(words: &[String]) -> Regex {
    let alt: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    Regex::new(&format!(r"(?i)\b(?:{})\b", alt.join("|"))).unwrap()
}

static UPDATED: LazyLock<Regex> = LazyLock::new(|| words_regex(&LEXICON.updated));
static COUNTER: LazyLock<Regex> = LazyLock::new(|| words_regex(&LEXICON.counters));
/// A dated label line ("Datum: 12.03.2025.", "Data: …") or a copyright line.
static LABEL_OR_COPYRIGHT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:(?:date|datum|data)\s*[:\-–]|©|\(c\)\s*(?:19|20)\d\d|copyright\b)").unwrap()
});

static COOKIE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bcookies?\b|kolačić|kolacic|колачић").unwrap());

/// Whether a canonical line is noise on its own.
pub fn is_noise(line: &str, ignore: &[Regex]) -> bool {
    if ignore.iter().any(|r| r.is_match(line)) {
        return true;
    }
    let body = line.trim_start_matches(['#', '-', ' ', '*', '•']);
    let latin = transliterate(body);
    let chars = latin.chars().count();
    let has_digit = latin.chars().any(|c| c.is_ascii_digit());
    let counter = has_digit && chars <= 100 && COUNTER.is_match(&latin);
    let dated = (chars <= 120
        && (UPDATED.is_match(&latin) || LABEL_OR_COPYRIGHT.is_match(&latin))
        && DATEISH.is_match(&latin))
        || (has_digit && chars <= 40 && ONLY_DATE.is_match(&latin));
    let cookie = chars <= 200 && COOKIE.is_match(&latin);
    if !(counter || dated || cookie) {
        return false;
    }
    // "The fee was updated on 1 March 2026 to 65 EUR" is requirement text:
    // a line that states a fee is never noise, nor a dated line that states
    // a duration (a counter's "last 7 days" is part of the counter).
    fees::find(&latin).is_empty() && (counter || durations::find(&latin, &[]).is_empty())
}

/// Drops noise lines; the snapshot and the comparison both use the result.
pub fn clean(text: &str, ignore: &[Regex]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !is_noise(l, ignore)) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Why a freshly extracted text is not trusted as the real page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspicion {
    /// An error, maintenance or bot-check page, named by the marker found.
    ErrorPage(&'static str),
    /// The text lost more than half its length at once (truncated body,
    /// half-rendered page). Accepted only once it persists.
    Shrank { from: usize, to: usize },
}

/// A transient page as a check's failure: an error page is `transient`; a
/// shrink is `suspect` until enough checks confirm it.
impl From<Suspicion> for crate::model::Failure {
    fn from(s: Suspicion) -> Self {
        use crate::model::{Failure, Reason};
        match s {
            Suspicion::ErrorPage(_) => Failure {
                reason: Reason::Transient,
                message: format!("transient page, not stored (any earlier snapshot is kept): {s}"),
            },
            Suspicion::Shrank { .. } => Failure {
                reason: Reason::Suspect,
                message: format!("held as suspect (confirmed on re-fetch): {s}"),
            },
        }
    }
}

impl std::fmt::Display for Suspicion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Suspicion::ErrorPage(m) => {
                write!(f, "looks like an error or maintenance page (\"{m}\")")
            }
            Suspicion::Shrank { from, to } => {
                write!(f, "requirement text shrank from {from} to {to} bytes at once")
            }
        }
    }
}

/// Text at least this long, and not a fifth shorter than before, is a real
/// page even with an error block in it.
const INTACT_LEN: usize = 2000;

/// Checks a freshly extracted text against error markers and, given the
/// previous text's length, against a sudden shrink.
pub fn transient(prev: Option<usize>, text: &str) -> Option<Suspicion> {
    // An error marker inside a long page whose content is all there (a
    // broken widget under a full report) is not an error page: its lines can
    // only ever make a text change, never remove a requirement.
    let content_intact = text.len() >= INTACT_LEN && prev.is_none_or(|p| text.len() * 10 >= p * 8);
    for line in text.lines().filter(|_| !content_intact) {
        // An error block is a short line of its own ("Service Unavailable",
        // "# Error processing!"), not a sentence that happens to contain the
        // words ("Request rejected applications may be resubmitted …").
        let len = line.chars().count();
        if len > 120 {
            continue;
        }
        let body = line.trim_start_matches(['#', '-', '*', ' ']);
        let lower = transliterate(body).to_lowercase();
        // The marker ends the line or punctuation follows it: "Service
        // Unavailable", "Error processing!", "Access denied | Cloudflare".
        let heads_a_block = |m: &str| {
            lower.strip_prefix(m).is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.is_empty() || rest.starts_with(['.', '!', ':', '|', ',', '-', '–', '('])
            })
        };
        if let Some(m) = LEXICON
            .transient
            .iter()
            .find(|m| heads_a_block(m) || (len <= 60 && lower.contains(m.as_str())))
        {
            return Some(Suspicion::ErrorPage(m));
        }
    }
    if let Some(prev) = prev
        && prev > 200
        && text.len() * 2 < prev
    {
        return Some(Suspicion::Shrank {
            from: prev,
            to: text.len(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_lines() {
        for l in [
            "Last Updated: June 23, 2026",
            "Official source Updated 2026-06-23 · Government page ↗",
            "Përditësuar: 23.06.2026",
            "Ažurirano: 12.03.2026.",
            "Ажурирано 12.03.2026.",
            "Published: March 26, 2025",
            "May 2022",
            "193 all time - 2 last 7 days",
            "Shikime: 4812",
            "This page was viewed 10,482 times.",
            "We use cookies to improve your experience. Accept",
            "© 2026 Ministry of Internal Affairs",
            "Copyright 2025 Government of Kosovo",
            "Датум: 14.04.2026.",
            "Data: 14.04.2026",
            "👁 4812",
        ] {
            assert!(is_noise(l, &[]), "{l}");
        }
        for l in [
            "U.S. citizens do not need a visa for trips lasting up to 90 days within a six-month period.",
            "Beginning from June 12, 2010, citizens of European Union countries may enter the Republic of Serbia using their identity cards and stay up to 90 days.",
            "- Valid travel document",
            "Application / consular fee | €50",
        ] {
            assert!(!is_noise(l, &[]), "{l}");
        }
        let custom = [Regex::new("^Ref\\. no").unwrap()];
        assert!(is_noise("Ref. no 123/45", &custom));
    }

    #[test]
    fn a_dated_line_with_a_fee_is_not_noise() {
        assert!(!is_noise("The fee was updated on 1 March 2026 to 65 EUR.", &[]));
        assert!(!is_noise("Përditësuar më 01.03.2026: afati është 30 ditë.", &[]));
        assert!(is_noise("Updated on 1 March 2026.", &[]));
    }

    #[test]
    fn transient_pages() {
        assert!(transient(None, "# Error processing!\nPlease try again later.\n").is_some());
        assert!(transient(Some(100), "Service Unavailable\n").is_some());
        assert!(transient(None, "Сајт је у одржавању.\n").is_some());
        assert_eq!(
            transient(Some(5000), "# Fees\nshort\n"),
            Some(Suspicion::Shrank { from: 5000, to: 13 })
        );
        assert!(transient(Some(5000), &"x".repeat(3000)).is_none());
        // The OSAC report ends with a broken widget's "Error processing!":
        // the report itself is all there.
        let report = format!(
            "{}\nProcessing\nWarning\nError processing!\n",
            "Kosovo security report line.\n".repeat(100)
        );
        assert!(transient(None, &report).is_none());
        assert!(transient(Some(report.len()), &report).is_none());
        assert!(
            transient(Some(report.len() * 2), &report).is_some(),
            "content lost: suspect"
        );
        // The words inside a longer sentence of real content are not an error block.
        assert!(
            transient(
                None,
                "- Request rejected approved business requirement portal, mandatory tax certified hours.\n"
            )
            .is_none()
        );
        assert!(
            transient(
                None,
                "If your application is refused, see the Access denied appeals procedure of the ministry.\n"
            )
            .is_none()
        );
    }
}
