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

use super::lexicon::LEXICON;
use super::scan::{FactRegex, Kind, Lines};
use super::{WB, word_alternation};

/// What puts a number in an age: a comparison with an age word, or the age
/// word itself ("vjeç" is "years of age"). Words from `data/lexicon.toml`;
/// lower case, Latin script.
pub(super) static AGE: LazyLock<FactRegex> = LazyLock::new(|| {
    let alt = |words: &[String]| word_alternation(words.iter().map(String::as_str), false, true);
    // "under 14", "under the age of 14", "mlađi od 14", "nën moshën 18";
    // "14 years old", "14 vjeç".
    let before = alt(&LEXICON.age_before);
    let units = alt(&LEXICON.age_units);
    let alone = alt(&LEXICON.age_alone);
    FactRegex::new(format!(
        r"{WB}(?:(?P<cmp>{before})(?:[^\S\n]+(?:od|se|than))?[^\S\n]+(?P<n1>[0-9]{{1,3}})(?P<tail1>[^\S\n]*(?:{units})?)|(?P<n2>[0-9]{{1,3}})[^\S\n]*(?P<unit2>{alone}))(?P<after>[^\S\n]*[a-zčćđšžëç%]*)"
    ))
});

#[derive(Debug, Clone, PartialEq)]
pub struct AgeMatch {
    pub span: Range<usize>,
    pub n: u32,
}

/// Finds every age threshold in `text` (transliterated to Latin).
pub fn find(text: &str) -> Vec<AgeMatch> {
    // ASCII lower case keeps every byte where it was (see `fees::find`).
    let lower = text.to_ascii_lowercase();
    find_in(&lower, &Lines::everywhere(text))
}

/// [`find`] on the lines `lines` says hold ages; `lower` is the text in
/// ASCII lower case.
pub(super) fn find_in(lower: &str, lines: &Lines) -> Vec<AgeMatch> {
    let mut out = Vec::new();
    let [n1, n2, unit2, tail1, after] = ["n1", "n2", "unit2", "tail1", "after"].map(|g| AGE.group(g));
    AGE.each(lower, lines.get(Kind::Age), |c| {
        let n = c.text(n1).or(c.text(n2)).and_then(|n| n.parse::<u32>().ok());
        let Some(n) = n.filter(|n| (1..=130).contains(n)) else {
            return;
        };
        let has_age_word = c.span(unit2).is_some() || c.text(tail1).is_some_and(|t| !t.trim().is_empty());
        let next = c.text(after).map_or("", str::trim);
        // "under 14 days", "over 50 EUR": not an age.
        if !has_age_word && LEXICON.not_age.iter().any(|w| w == next) {
            return;
        }
        // "aged"/"age" alone need the number to be plausible and alone.
        let whole = c.whole();
        let end = c.span(after).map_or(whole.end, |a| a.start);
        out.push(AgeMatch {
            span: whole.start..end,
            n,
        });
    });
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
