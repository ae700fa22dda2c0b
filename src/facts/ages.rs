//! Age thresholds inside a rule: `children under 14`, `persons over 70 are
//! exempt`, `minors (under 18)`, `mlađi od 14 godina`, `fëmijët nën 14
//! vjeç` … → `"<n> years"`. The comparison ("under", "over") stays in the
//! context. An age is not a duration: "children under 6 years" is an age,
//! "valid for 6 years" a duration; ages are found first and durations skip
//! their spans.
//!
//! Text comes transliterated to Latin (Cyrillic reads as Latin).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::WB;

/// What puts a number in an age: a comparison with an age word, or the age
/// word itself ("vjeç" is "years of age"). Lower case, Latin script.
static AGE: LazyLock<Regex> = LazyLock::new(|| {
    // English: "under 14", "under the age of 14", "over 70", "aged 16 and over",
    // "younger than 14", "14 years of age", "14 years old".
    let en_before = r"(?:under|over|below|above|younger than|older than|aged|age|ages|the age of|under the age of|over the age of|minors? \(under)";
    // Serbian (Latin, and Cyrillic transliterated): "mlađi od 14", "stariji od 70",
    // "mlađe od 18 godina", "uzrasta do 14", "do navršenih 18 godina".
    let sr_before = r"(?:mlađ(?:a|e|i|u|oj|ih|ima|eg|em)?|starij(?:a|e|i|u|oj|ih|ima|eg|em)?|uzrasta do|uzrasta od|do navršenih|navršenih|ispod|iznad)(?:[^\S\n]+od)?";
    // Albanian: "nën 14 vjeç", "nën moshën 18", "mbi 70 vjeç", "më të rinj se 14".
    let sq_before = r"(?:nën moshën|mbi moshën|nën|mbi|më të rinj se|më të reja se|më të vjetër se|moshës)";
    Regex::new(&format!(
        r"{WB}(?:(?P<cmp>{en_before}|{sr_before}|{sq_before})[^\S\n]+(?P<n1>[0-9]{{1,3}})(?P<tail1>[^\S\n]*(?:years? of age|years? old|years?|godin[aeu]?|godina starosti|vjeç|vjet)?)|(?P<n2>[0-9]{{1,3}})[^\S\n]*(?P<unit2>years? of age|years? old|vjeç|godina starosti|godine starosti|godina života))(?P<after>[^\S\n]*[a-zčćđšžëç%]*)"
    ))
    .unwrap()
});

/// Words after a number that make it something else than an age.
const NOT_AGE: &[&str] = &[
    "day", "days", "week", "weeks", "month", "months", "hour", "hours", "dana", "dan", "meseci", "mesec",
    "meseca", "nedelja", "nedelje", "sati", "sata", "ditë", "ditësh", "ditëve", "javë", "muaj", "orë", "eur",
    "euro", "euros", "usd", "rsd", "din", "dinara", "lekë", "all", "%", "percent", "kg", "km",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AgeMatch {
    pub span: Range<usize>,
    pub n: u32,
}

/// Finds every age threshold in `text` (transliterated to Latin).
pub fn find(text: &str) -> Vec<AgeMatch> {
    // ASCII lower case keeps every byte where it was (see `fees::find`).
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    for c in AGE.captures_iter(&lower) {
        let n = c
            .name("n1")
            .or(c.name("n2"))
            .and_then(|m| m.as_str().parse::<u32>().ok());
        let Some(n) = n.filter(|n| (1..=130).contains(n)) else {
            continue;
        };
        let has_age_word =
            c.name("unit2").is_some() || c.name("tail1").is_some_and(|t| !t.as_str().trim().is_empty());
        let next = c.name("after").map_or("", |a| a.as_str().trim());
        // "under 14 days", "over 50 EUR": not an age.
        if !has_age_word && NOT_AGE.contains(&next) {
            continue;
        }
        // "aged"/"age" alone need the number to be plausible and alone.
        let whole = c.get(0).expect("match");
        let end = c.name("after").map_or(whole.end(), |a| a.start());
        out.push(AgeMatch {
            span: whole.start()..end,
            n,
        });
    }
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The ages of `text` in normal form (for the data-file cases).
    pub fn norm(text: &str) -> Vec<String> {
        find(&crate::facts::transliterate(text))
            .iter()
            .map(|m| format!("{} years", m.n))
            .collect()
    }
}
