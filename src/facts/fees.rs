//! Money amounts: `€50`, `50 EUR`, `US$160`, `15.000 RSD`, `1.500,50 din.`,
//! `free of charge` … → `"<amount> <ISO 4217>"` with a plain decimal amount.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::LEXICON;
use super::scan::{FactRegex, Kind, Lines};
use super::word_alternation;

/// "$36 million", "2 miliona dinara": a scale word between amount and currency.
const SCALE: &str =
    r"(?:[^\S\n]?(?P<scale>thousand|million|billion|milion|miliona|milijarde|milijardi|mln|bn)(?-u:\b))?";

const AMOUNT: &str =
    r"(?P<amt>[0-9]{1,3}(?:[.,\u{a0}\u{202f} ][0-9]{3})+(?:[.,][0-9]{1,2})?|[0-9]+(?:[.,][0-9]{1,2})?)";

pub(super) static BEFORE: LazyLock<FactRegex> = LazyLock::new(|| {
    let alt = word_alternation(LEXICON.currency_before.iter().map(|c| c.0.as_str()), true, false);
    FactRegex::new(format!(r"(?P<cur>{alt})[^\S\n]?{AMOUNT}{SCALE}"))
});

pub(super) static AFTER: LazyLock<FactRegex> = LazyLock::new(|| {
    let alt = word_alternation(LEXICON.currency_after.iter().map(|c| c.0.as_str()), false, true);
    FactRegex::new(format!(r"{AMOUNT}{SCALE}[^\S\n]?(?P<cur>{alt})"))
});

pub(super) static FREE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&word_alternation(
        LEXICON.free.iter().map(String::as_str),
        true,
        true,
    ))
    .unwrap()
});

/// A fee found in a line: where, and its normal form. `None` currency for
/// "free of charge", filled in by the caller from the page's other fees.
#[derive(Debug, Clone, PartialEq)]
pub struct FeeMatch {
    pub span: Range<usize>,
    pub amount: String,
    pub currency: Option<&'static str>,
}

fn lookup(table: &[(String, &'static str)], word: &str) -> Option<&'static str> {
    let w = word.to_lowercase();
    table.iter().find(|(k, _)| *k == w).map(|(_, v)| *v)
}

/// Finds every fee in `text` (already transliterated to Latin).
pub fn find(text: &str) -> Vec<FeeMatch> {
    // The regexes are written in lower case and run over an ASCII-lowercased
    // copy (same byte offsets): case-insensitive Unicode regexes are several
    // times slower. Upper-case letters of the original are read from `text`.
    let lower = text.to_ascii_lowercase();
    find_in(text, &lower, &Lines::everywhere(text))
}

/// [`find`] on the lines `lines` says hold fees; `lower` is `text` in
/// ASCII lower case.
pub(super) fn find_in(text: &str, lower: &str, lines: &Lines) -> Vec<FeeMatch> {
    let mut out: Vec<FeeMatch> = Vec::new();
    let overlaps =
        |out: &[FeeMatch], r: &Range<usize>| out.iter().any(|m| m.span.start < r.end && r.start < m.span.end);
    let [cur, amt, scale] = ["cur", "amt", "scale"].map(|g| BEFORE.group(g));
    BEFORE.each(lower, lines.get(Kind::FeeBefore), |caps| {
        let whole = caps.whole();
        let amount = caps.span(amt).expect("an amount");
        if glued_to_number(text, whole.start, amount.end) {
            return;
        }
        // "ALL" (Albanian lek) only in capitals: "all 20 pages" is English.
        let cur_text = &text[caps.span(cur).expect("a currency")];
        if cur_text.eq_ignore_ascii_case("all") && cur_text != "ALL" {
            return;
        }
        let amount = normalize_amount(&lower[amount]).map(|a| scaled(a, caps.text(scale)));
        let (Some(cur), Some(amount)) = (lookup(&LEXICON.currency_before, cur_text), amount) else {
            return;
        };
        out.push(FeeMatch {
            span: whole,
            amount,
            currency: Some(cur),
        });
    });
    let [cur, amt, scale] = ["cur", "amt", "scale"].map(|g| AFTER.group(g));
    AFTER.each(lower, lines.get(Kind::FeeAfter), |caps| {
        let whole = caps.whole();
        let cur_text = &text[caps.span(cur).expect("a currency")];
        // "ALL" (Albanian lek) only in capitals: "5 all" is English.
        if cur_text.eq_ignore_ascii_case("all") && cur_text != "ALL" {
            return;
        }
        if glued_to_number(text, whole.start, whole.end) || overlaps(&out, &whole) {
            return;
        }
        let amount = caps
            .text(amt)
            .and_then(normalize_amount)
            .map(|a| scaled(a, caps.text(scale)));
        let (Some(cur), Some(amount)) = (lookup(&LEXICON.currency_after, cur_text), amount) else {
            return;
        };
        out.push(FeeMatch {
            span: whole,
            amount,
            currency: Some(cur),
        });
    });
    for m in super::scan::matches(&FREE, lower, lines.get(Kind::Free)) {
        if !overlaps(&out, &m.range()) {
            out.push(FeeMatch {
                span: m.range(),
                amount: "0".into(),
                currency: None,
            });
        }
    }
    out.sort_by_key(|m| m.span.start);
    out
}

/// True when the match is part of a longer number (`1/50 EUR`, `12.50` cut at `50`).
fn glued_to_number(text: &str, start: usize, _end: usize) -> bool {
    let before = text[..start].chars().next_back();
    matches!(before, Some(c) if c.is_ascii_digit())
        || (matches!(before, Some('.' | ','))
            && text[..start]
                .chars()
                .rev()
                .nth(1)
                .is_some_and(|c| c.is_ascii_digit()))
}

/// Multiplies a plain decimal by a scale word ("36" million → "36000000").
fn scaled(amount: String, scale: Option<&str>) -> String {
    let zeros = match scale.map(str::to_lowercase).as_deref() {
        Some("thousand") => 3,
        Some("million" | "milion" | "miliona" | "mln") => 6,
        Some("billion" | "milijarde" | "milijardi" | "bn") => 9,
        _ => return amount,
    };
    let (int, frac) = amount.split_once('.').unwrap_or((&amount, ""));
    let mut digits = format!("{int}{frac}");
    let shift = zeros as isize - frac.len() as isize;
    if shift >= 0 {
        digits.push_str(&"0".repeat(shift as usize));
        normalize_amount(&digits).unwrap_or(amount)
    } else {
        let point = digits.len() - (-shift) as usize;
        digits.insert(point, '.');
        normalize_amount(&digits).unwrap_or(amount)
    }
}

/// `15.000` → `15000`, `1.500,50` → `1500.5`, `35.5` → `35.5`, `15 000` → `15000`.
pub fn normalize_amount(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    let dots = s.matches('.').count();
    let commas = s.matches(',').count();
    let plain = if dots > 0 && commas > 0 {
        // The last separator is the decimal one.
        let last = s.rfind(['.', ',']).unwrap();
        let (int, frac) = s.split_at(last);
        format!("{}.{}", int.replace(['.', ','], ""), &frac[1..])
    } else if dots + commas == 0 {
        s
    } else {
        let sep = if dots > 0 { '.' } else { ',' };
        let after = s.len() - s.rfind(sep).unwrap() - 1;
        if dots + commas > 1 || after == 3 {
            s.replace(sep, "")
        } else {
            s.replace(sep, ".")
        }
    };
    let (int, frac) = plain.split_once('.').unwrap_or((&plain, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The fees of a text in normal form (`"50 EUR"`, `"0"` for free).
    pub fn norm(text: &str) -> Vec<String> {
        find(&crate::facts::transliterate(text))
            .into_iter()
            .map(|m| {
                format!("{} {}", m.amount, m.currency.unwrap_or("?"))
                    .trim_end_matches(" ?")
                    .to_string()
            })
            .collect()
    }
}
