//! The words visawatch reads in English, Albanian and Serbian, loaded once
//! from `data/lexicon.toml` (built into the binary): currencies, units of
//! time in every form, number words, months, the words that make a date or
//! an age a requirement's, and the phrases of noise and error pages.
//!
//! Data only; the parsers decide how to use it. Each word is also read
//! without its diacritics ("kater", "cetiri"), as pages sometimes write.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::facts::Unit;

const DATA: &str = include_str!("../../data/lexicon.toml");

/// The lexicon, read from the data file at first use.
pub static LEXICON: LazyLock<Lexicon> =
    LazyLock::new(|| Lexicon::load(DATA).unwrap_or_else(|e| panic!("data/lexicon.toml: {e}")));

/// Loads the data file now (its test fails on a mistake in it).
pub fn check_data() -> Result<(), String> {
    Lexicon::load(DATA).map(|_| ())
}

pub struct Lexicon {
    /// (word, ISO 4217) after an amount / before it.
    pub currency_after: Vec<(String, &'static str)>,
    pub currency_before: Vec<(String, &'static str)>,
    pub free: Vec<String>,
    pub qualifiers: Vec<String>,
    pub units: Vec<(String, Unit)>,
    pub numbers: foldhash::HashMap<String, u32>,
    /// The last word of every number phrase ("one" of "twenty one",
    /// "hundred" of "a hundred"): a word that is none ends no number.
    pub number_ends: foldhash::HashSet<String>,
    pub months: foldhash::HashMap<String, u8>,
    pub date_triggers: Vec<String>,
    pub age_before: Vec<String>,
    pub age_units: Vec<String>,
    pub age_alone: Vec<String>,
    /// Words after a number that make it anything but an age.
    pub not_age: Vec<String>,
    pub updated: Vec<String>,
    pub counters: Vec<String>,
    pub transient: Vec<String>,
    /// Word starts that name a document ("passport", "potvrd").
    pub document_words: Vec<String>,
    /// "and", "or" before the last item of an inline list.
    pub list_joining: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fees: Fees,
    durations: Durations,
    dates: Dates,
    ages: Ages,
    noise: Noise,
    documents: Documents,
    numbers: HashMap<String, HashMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fees {
    free: Vec<String>,
    after: HashMap<String, Vec<String>>,
    before: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Durations {
    qualifiers: Vec<String>,
    units: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dates {
    triggers: Vec<String>,
    months: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ages {
    before: Vec<String>,
    units: Vec<String>,
    alone: Vec<String>,
    not_after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Documents {
    words: Vec<String>,
    joining: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Noise {
    updated: Vec<String>,
    counters: Vec<String>,
    transient: Vec<String>,
}

/// The word, and the word without diacritics when it has any.
fn spellings(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(words.len() * 2);
    for w in words {
        let w = w.to_lowercase();
        let mut plain = String::with_capacity(w.len());
        for c in w.chars() {
            match c {
                'ë' => plain.push('e'),
                'ç' | 'č' | 'ć' => plain.push('c'),
                'š' => plain.push('s'),
                'ž' => plain.push('z'),
                'đ' => plain.push_str("dj"),
                other => plain.push(other),
            }
        }
        for s in [w, plain] {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

impl Lexicon {
    fn load(data: &str) -> Result<Lexicon, String> {
        let file: File = toml::from_str(data).map_err(|e| e.to_string())?;
        let currency = |table: &HashMap<String, Vec<String>>| -> Result<Vec<(String, &'static str)>, String> {
            let mut out = Vec::new();
            let mut codes: Vec<&String> = table.keys().collect();
            codes.sort();
            for code in codes {
                let code: &'static str = match code.as_str() {
                    "EUR" => "EUR",
                    "USD" => "USD",
                    "RSD" => "RSD",
                    "GBP" => "GBP",
                    "CHF" => "CHF",
                    "ALL" => "ALL",
                    other => {
                        return Err(format!(
                            "currency {other}: visawatch reads EUR, USD, RSD, GBP, CHF and ALL"
                        ));
                    }
                };
                out.extend(spellings(&table[code]).into_iter().map(|w| (w, code)));
            }
            Ok(out)
        };
        let mut units = Vec::new();
        for (name, words) in &file.durations.units {
            let unit = match name.as_str() {
                "hours" => Unit::Hours,
                "days" => Unit::Days,
                "weeks" => Unit::Weeks,
                "months" => Unit::Months,
                "years" => Unit::Years,
                other => {
                    return Err(format!(
                        "durations.units.{other}: not hours, days, weeks, months or years"
                    ));
                }
            };
            units.extend(spellings(words).into_iter().map(|w| (w, unit)));
        }
        units.sort_by(|a, b| a.0.cmp(&b.0));
        let mut numbers = foldhash::HashMap::default();
        for (lang, table) in &file.numbers {
            for (n, words) in table {
                let n: u32 = n
                    .parse()
                    .map_err(|_| format!("numbers.{lang}.{n}: not a number"))?;
                for w in spellings(words) {
                    numbers.insert(w, n);
                }
            }
        }
        let number_ends = numbers
            .keys()
            .map(|k: &String| k.rsplit([' ', '-']).next().unwrap_or(k).to_string())
            .collect();
        let mut months = foldhash::HashMap::default();
        for (m, words) in &file.dates.months {
            let m: u8 = m
                .parse()
                .ok()
                .filter(|m| (1..=12).contains(m))
                .ok_or(format!("dates.months.{m}: not a month number"))?;
            for w in spellings(words) {
                months.insert(w, m);
            }
        }
        let currency_after = currency(&file.fees.after)?;
        let mut not_age: Vec<String> = units
            .iter()
            .filter(|(_, u)| *u != Unit::Years)
            .map(|(w, _)| w.clone())
            .chain(currency_after.iter().map(|(w, _)| w.clone()))
            .chain(spellings(&file.ages.not_after))
            .collect();
        not_age.sort();
        not_age.dedup();
        Ok(Lexicon {
            currency_before: currency(&file.fees.before)?,
            currency_after,
            free: spellings(&file.fees.free),
            qualifiers: spellings(&file.durations.qualifiers),
            units,
            numbers,
            number_ends,
            months,
            date_triggers: spellings(&file.dates.triggers),
            age_before: spellings(&file.ages.before),
            age_units: spellings(&file.ages.units),
            age_alone: spellings(&file.ages.alone),
            not_age,
            updated: spellings(&file.noise.updated),
            counters: spellings(&file.noise.counters),
            transient: spellings(&file.noise.transient),
            document_words: spellings(&file.documents.words),
            list_joining: spellings(&file.documents.joining),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_loads_with_every_number_to_a_hundred() {
        check_data().unwrap();
        let l = &*LEXICON;
        for (word, n) in [
            ("ninety-nine", 99),
            ("twenty one", 21),
            ("a hundred", 100),
            ("njëzet e një", 21),
            ("njezet e nje", 21),
            ("nëntëdhjetë", 90),
            ("dvadeset i jedan", 21),
            ("četrdeset pet", 45),
            ("cetrdeset pet", 45),
            ("sto", 100),
        ] {
            assert_eq!(l.numbers.get(word), Some(&n), "{word}");
        }
        for lang_count in [99, 100] {
            assert!(l.numbers.values().filter(|&&v| v == lang_count).count() >= 3);
        }
        assert!(l.units.iter().any(|(w, u)| w == "ditesh" && *u == Unit::Days));
        assert!(l.not_age.contains(&"dana".to_string()) && !l.not_age.contains(&"godina".to_string()));
    }
}
