//! PURE: a source's fact ledger. Its current fees, durations and documents,
//! each with when it was first seen: the oldest snapshot of the unbroken
//! run of snapshots, back from the current one, that carries the same fact
//! (same kind, same key, same value).

use crate::facts::{Facts, Value};

/// One line of the ledger.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// `fee`, `duration`, `age`, `date`, `document` or `country`.
    pub kind: &'static str,
    /// The value as editors read it (`50 EUR`, `90 days`, the document).
    pub value: String,
    pub context: String,
    /// When the snapshot that first showed it became current.
    pub first_seen: String,
    /// That snapshot's hash.
    pub snapshot: String,
}

/// A fact's identity across snapshots.
fn identities(f: &Facts) -> Vec<(&'static str, String, String, String)> {
    let value = |v: &Value| crate::model::human(&v.to_string());
    let mut out = Vec::new();
    for x in &f.fees {
        out.push(("fee", x.key.clone(), value(&x.value), x.context.clone()));
    }
    for x in &f.durations {
        out.push(("duration", x.key.clone(), value(&x.value), x.context.clone()));
    }
    for x in &f.ages {
        out.push(("age", x.key.clone(), value(&x.value), x.context.clone()));
    }
    for x in &f.dates {
        out.push(("date", x.key.clone(), value(&x.value), x.context.clone()));
    }
    for d in &f.documents {
        out.push(("document", d.key.clone(), d.text.clone(), d.context.clone()));
    }
    // A country is the same fact whatever its list's lead-in or spelling.
    for c in &f.countries {
        let context = format!("{} · {}", c.name, c.context);
        out.push(("country", c.code.to_string(), c.code.to_string(), context));
    }
    out
}

/// The ledger of the last of `snapshots` (oldest first: hash, since, facts).
pub fn ledger(snapshots: &[(String, String, Facts)]) -> Vec<Entry> {
    let Some((hash, since, current)) = snapshots.last() else {
        return Vec::new();
    };
    let older: Vec<Vec<(&'static str, String, String, String)>> =
        snapshots.iter().map(|(_, _, f)| identities(f)).collect();
    identities(current)
        .into_iter()
        .map(|(kind, key, value, context)| {
            let mut first = (hash.clone(), since.clone());
            for (i, ids) in older.iter().enumerate().rev().skip(1) {
                if ids
                    .iter()
                    .any(|(k, ky, v, _)| *k == kind && *ky == key && *v == value)
                {
                    first = (snapshots[i].0.clone(), snapshots[i].1.clone());
                } else {
                    break;
                }
            }
            Entry {
                kind,
                value,
                context,
                first_seen: first.1,
                snapshot: first.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_is_first_seen_where_its_unbroken_run_starts() {
        let snap = |h: &str, at: &str, text: &str| (h.to_string(), at.to_string(), crate::facts::parse(text));
        let l = ledger(&[
            snap("a", "2026-01-01", "Fee | 50 €\n## Documents\n- Passport\n"),
            snap("b", "2026-02-01", "Fee | 65 €\n## Documents\n- Passport\n"),
            snap(
                "c",
                "2026-03-01",
                "Fee | 65 €\n## Documents\n- Passport\n- Photo\n",
            ),
        ]);
        let find = |v: &str| {
            l.iter()
                .find(|e| e.value == v)
                .unwrap_or_else(|| panic!("{v} in {l:?}"))
        };
        assert_eq!(find("65 EUR").first_seen, "2026-02-01");
        assert_eq!(find("65 EUR").snapshot, "b");
        assert_eq!(find("Passport").first_seen, "2026-01-01");
        assert_eq!(find("Photo").first_seen, "2026-03-01");
        assert_eq!(find("Photo").context, "Documents");
    }

    /// Issue 15: the new kinds in the ledger; a country keeps its first
    /// sighting through a respelling and a script switch.
    #[test]
    fn ages_dates_and_countries_are_in_the_ledger() {
        let snap = |h: &str, at: &str, text: &str| (h.to_string(), at.to_string(), crate::facts::parse(text));
        let l = ledger(&[
            snap(
                "a",
                "2026-01-01",
                "Citizens of Albania and North Macedonia may enter with an ID card.\n",
            ),
            snap(
                "b",
                "2026-02-01",
                "Citizens of Albania, Montenegro and the Republic of North Macedonia may enter with an ID card.\n\
                 Children under 14 need the consent of both parents from 1 June 2026.\n",
            ),
        ]);
        let find = |kind: &str, v: &str| {
            l.iter()
                .find(|e| e.kind == kind && e.value == v)
                .unwrap_or_else(|| panic!("{kind} {v} in {l:?}"))
        };
        assert_eq!(find("country", "MK").first_seen, "2026-01-01");
        assert_eq!(find("country", "ME").first_seen, "2026-02-01");
        assert!(find("country", "ME").context.starts_with("Montenegro · "));
        assert_eq!(find("age", "14 years").first_seen, "2026-02-01");
        assert_eq!(find("date", "2026-06-01").first_seen, "2026-02-01");
    }
}
