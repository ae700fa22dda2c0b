//! PURE: previous canonical text vs new → [`Verdict`]: which fees, durations
//! and documents changed, whether anything material did, and the diff.
//!
//! Facts are matched by context, not position: the same sentence with a new
//! value is a value change; a reordered list is no change; a reworded item
//! is `document_changed`. Whatever else differs is one `text` change, which
//! is recorded but not material. No I/O and no clock. The verdict computed
//! here is exactly what the report, the history and the alert show.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use similar::{ChangeTag, TextDiff};

use crate::facts::{self, Document, Fact, Facts, documents::similarity};
use crate::model::{Change, ChangeKind, Verdict};

/// Compares two cleaned canonical texts; `None` when nothing a reader would
/// call a change differs (identical, same text in the other script, or a
/// list only reordered).
pub fn compare(before: &str, after: &str) -> Option<Verdict> {
    if before == after || facts::transliterate(before) == facts::transliterate(after) {
        return None;
    }
    let (fb, fa) = (facts::parse(before), facts::parse(after));
    let mut changes = Vec::new();
    // Lines explained by reported facts (before, after), and whether a value
    // was only rewritten in an equal form ("1 year" → "12 months").
    let mut explained = (HashSet::new(), HashSet::new(), false);
    let (doc_changes, whole_items) = match_documents(&fb.documents, &fa.documents);
    changes.extend(match_values(
        &fb.fees,
        &fa.fees,
        ChangeKind::Fee,
        &whole_items,
        &mut explained,
    ));
    changes.extend(match_values(
        &fb.durations,
        &fa.durations,
        ChangeKind::Duration,
        &whole_items,
        &mut explained,
    ));
    changes.extend(doc_changes);
    if explained.2 || other_text_changed(before, after, &(explained.0, explained.1)) {
        changes.push(Change {
            kind: ChangeKind::Text,
            before: None,
            after: None,
            context: None,
        });
    }
    if changes.is_empty() {
        return None;
    }
    let (diff, word_diff) = diffs(before, after);
    Some(Verdict {
        material: changes.iter().any(|c| c.kind.is_material()),
        changes,
        diff,
        word_diff,
    })
}

/// The current facts of a text (for `show --facts` and `probe`).
pub fn facts_of(text: &str) -> Facts {
    facts::parse(text)
}

/// Whether anything differs besides the reported facts: lines that are not
/// list items, with fees and durations masked, compared as a multiset; a line
/// only on one side counts unless it is where a reported fact was added,
/// removed or reworded around a new value (`explained`).
fn other_text_changed(before: &str, after: &str, explained: &(HashSet<usize>, HashSet<usize>)) -> bool {
    let residual = |text: &str| -> Vec<(usize, String)> {
        facts::transliterate(text)
            .lines()
            .enumerate()
            .filter(|(_, l)| facts::documents::items(l).is_empty())
            .map(|(i, l)| {
                let fees = facts::fees::find(l);
                let mut spans: Vec<_> = fees.iter().map(|f| f.span.clone()).collect();
                let durs = facts::durations::find(l, &spans);
                spans.extend(durs.into_iter().map(|d| d.span));
                (i, facts::mask(l, &spans))
            })
            .collect()
    };
    let (rb, ra) = (residual(before), residual(after));
    let unmatched = |ours: &[(usize, String)], theirs: &[(usize, String)], explained: &HashSet<usize>| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, l) in theirs {
            *counts.entry(l.as_str()).or_default() += 1;
        }
        ours.iter().any(|(i, l)| match counts.get_mut(l.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => !explained.contains(i),
        })
    };
    unmatched(&rb, &ra, &explained.0) || unmatched(&ra, &rb, &explained.1)
}

fn change(kind: ChangeKind, before: Option<&Fact>, after: Option<&Fact>) -> Change {
    // "Free of charge" on a page without other fees has no currency of its
    // own: it takes the one it changed to or from ("0 EUR → 20 EUR").
    let currency = |f: Option<&Fact>| f.and_then(|f| f.value.split_once(' ').map(|(_, c)| c.to_string()));
    let value = |f: Option<&Fact>, other: Option<&Fact>| {
        f.map(|f| match currency(other) {
            Some(c) if f.value == "0" => format!("0 {c}"),
            _ => f.value.clone(),
        })
    };
    Change {
        kind,
        before: value(before, after),
        after: value(after, before),
        context: after.or(before).map(|f| f.context.clone()),
    }
}

/// Equal values, including a duration written in another unit ("1 years"
/// and "12 months", "2 weeks" and "14 days"): such a rewrite is text, not a
/// change of the requirement (`rewritten` records it).
fn same_value(a: &str, b: &str, rewritten: &mut bool) -> bool {
    if a == b {
        return true;
    }
    fn in_small_units(v: &str) -> Option<(u64, &str)> {
        let (n, unit) = v.split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        Some(match unit {
            "years" => (n * 12, "months"),
            "weeks" => (n * 7, "days"),
            other => (n, other),
        })
    }
    let same = matches!((in_small_units(a), in_small_units(b)), (Some(x), Some(y)) if x == y);
    *rewritten |= same;
    same
}

/// Pairs the unused keys whose similarity is at least 0.6, most similar
/// first, and marks them used: rewordings of the same fact or item.
fn pair_similar(
    before: &[&str],
    after: &[&str],
    used_b: &mut [bool],
    used_a: &mut [bool],
) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
    for (bi, b) in before.iter().enumerate().filter(|(i, _)| !used_b[*i]) {
        for (ai, a) in after.iter().enumerate().filter(|(i, _)| !used_a[*i]) {
            let s = similarity(b, a);
            if s >= 0.6 {
                candidates.push((s, bi, ai));
            }
        }
    }
    candidates.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut pairs = Vec::new();
    for (_, bi, ai) in candidates {
        if !used_b[bi] && !used_a[ai] {
            used_b[bi] = true;
            used_a[ai] = true;
            pairs.push((bi, ai));
        }
    }
    pairs
}

/// Keys of list items removed (`.0`) and added (`.1`) as a whole: the
/// facts inside them are told as the document, not again on their own.
type WholeItems = (HashSet<String>, HashSet<String>);

/// Pairs facts by key (in order within a key), then leftovers by similar
/// key, then by equal value (moved, not changed); a single leftover on each
/// side is one value that changed with its sentence ("free of charge" →
/// "the fee is 20 EUR"); the rest were added or removed.
fn match_values(
    before: &[Fact],
    after: &[Fact],
    kind: ChangeKind,
    whole_items: &WholeItems,
    explained: &mut (HashSet<usize>, HashSet<usize>, bool),
) -> Vec<Change> {
    let mut used_b = vec![false; before.len()];
    let mut used_a = vec![false; after.len()];
    let mut out = Vec::new();
    for (ai, a) in after.iter().enumerate() {
        if let Some(bi) = (0..before.len()).find(|&bi| !used_b[bi] && before[bi].key == a.key) {
            used_b[bi] = true;
            used_a[ai] = true;
            if !same_value(&before[bi].value, &a.value, &mut explained.2) {
                out.push(change(kind, Some(&before[bi]), Some(a)));
            }
        }
    }
    let b_keys: Vec<&str> = before.iter().map(|f| f.key.as_str()).collect();
    let a_keys: Vec<&str> = after.iter().map(|f| f.key.as_str()).collect();
    for (bi, ai) in pair_similar(&b_keys, &a_keys, &mut used_b, &mut used_a) {
        if !same_value(&before[bi].value, &after[ai].value, &mut explained.2) {
            explained.0.insert(before[bi].line);
            explained.1.insert(after[ai].line);
            out.push(change(kind, Some(&before[bi]), Some(&after[ai])));
        }
    }
    for (ai, a) in after.iter().enumerate() {
        if !used_a[ai]
            && let Some(bi) = (0..before.len()).find(|&bi| !used_b[bi] && before[bi].value == a.value)
        {
            used_b[bi] = true;
            used_a[ai] = true;
        }
    }
    for (used, facts, items, lines) in [
        (&mut used_b, before, &whole_items.0, &mut explained.0),
        (&mut used_a, after, &whole_items.1, &mut explained.1),
    ] {
        for (i, f) in facts.iter().enumerate() {
            if !used[i] && items.contains(&f.key) {
                used[i] = true;
                lines.insert(f.line);
            }
        }
    }
    let left_b: Vec<usize> = (0..before.len()).filter(|&i| !used_b[i]).collect();
    let left_a: Vec<usize> = (0..after.len()).filter(|&i| !used_a[i]).collect();
    if let ([bi], [ai]) = (left_b.as_slice(), left_a.as_slice()) {
        explained.0.insert(before[*bi].line);
        explained.1.insert(after[*ai].line);
        out.push(change(kind, Some(&before[*bi]), Some(&after[*ai])));
        return out;
    }
    for bi in left_b {
        explained.0.insert(before[bi].line);
        out.push(change(kind, Some(&before[bi]), None));
    }
    for ai in left_a {
        explained.1.insert(after[ai].line);
        out.push(change(kind, None, Some(&after[ai])));
    }
    out
}

/// Documents as a multiset: order does not matter; similar leftovers are
/// rewordings.
fn match_documents(before: &[Document], after: &[Document]) -> (Vec<Change>, WholeItems) {
    let mut whole = WholeItems::default();
    let mut used_b = vec![false; before.len()];
    let mut used_a = vec![false; after.len()];
    for (ai, a) in after.iter().enumerate() {
        if let Some(bi) = (0..before.len()).find(|&bi| !used_b[bi] && before[bi].key == a.key) {
            used_b[bi] = true;
            used_a[ai] = true;
        }
    }
    let b_keys: Vec<&str> = before.iter().map(|d| d.key.as_str()).collect();
    let a_keys: Vec<&str> = after.iter().map(|d| d.key.as_str()).collect();
    let mut out = Vec::new();
    for (bi, ai) in pair_similar(&b_keys, &a_keys, &mut used_b, &mut used_a) {
        out.push(Change {
            kind: ChangeKind::DocumentChanged,
            before: Some(before[bi].text.clone()),
            after: Some(after[ai].text.clone()),
            context: Some(after[ai].context.clone()),
        });
    }
    for (bi, b) in before.iter().enumerate() {
        if !used_b[bi] {
            whole.0.insert(b.key.clone());
            out.push(Change {
                kind: ChangeKind::DocumentRemoved,
                before: Some(b.text.clone()),
                after: None,
                context: Some(b.context.clone()),
            });
        }
    }
    for (ai, a) in after.iter().enumerate() {
        if !used_a[ai] {
            whole.1.insert(a.key.clone());
            out.push(Change {
                kind: ChangeKind::DocumentAdded,
                before: None,
                after: Some(a.text.clone()),
                context: Some(a.context.clone()),
            });
        }
    }
    (out, whole)
}

/// A unified line diff, and the same hunks with changed words marked
/// `[-old-]{+new+}` (git's --word-diff=plain notation).
pub fn diffs(before: &str, after: &str) -> (String, String) {
    let td = TextDiff::configure()
        .timeout(Duration::from_secs(2))
        .diff_lines(before, after);
    let unified = td
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string();
    let mut words = String::new();
    for group in td.grouped_ops(3) {
        for op in &group {
            for change in td.iter_inline_changes(op) {
                words.push(match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                });
                for (emph, value) in change.iter_strings_lossy() {
                    let value = value.trim_end_matches('\n');
                    match (emph, change.tag()) {
                        (true, ChangeTag::Delete) => words.push_str(&format!("[-{value}-]")),
                        (true, ChangeTag::Insert) => words.push_str(&format!("{{+{value}+}}")),
                        _ => words.push_str(value),
                    }
                }
                words.push('\n');
            }
        }
        words.push_str("~\n");
    }
    (unified, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(before: &str, after: &str) -> Vec<(ChangeKind, Option<String>, Option<String>)> {
        compare(before, after)
            .map(|v| {
                v.changes
                    .into_iter()
                    .map(|c| (c.kind, c.before, c.after))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    #[test]
    fn fee_change_in_a_sentence() {
        let v = compare("# Fees\nThe fee is 50 EUR.\n", "# Fees\nThe fee is €65.\n").unwrap();
        assert!(v.material);
        assert_eq!(
            v.changes,
            vec![Change {
                kind: ChangeKind::Fee,
                before: s("50 EUR"),
                after: s("65 EUR"),
                context: s("The fee is €65.")
            }]
        );
        assert!(
            v.word_diff.contains("[-50 EUR-]") || v.word_diff.contains("[-50-]"),
            "{}",
            v.word_diff
        );
    }

    #[test]
    fn reorder_is_nothing_and_reword_is_changed() {
        assert!(compare("Bring:\n- Passport\n- Photo\n", "Bring:\n- Photo\n- Passport\n").is_none());
        assert_eq!(
            kinds(
                "Bring:\n- Valid travel document\n- Photo\n",
                "Bring:\n- Valid travel document (at least 3 months beyond validity)\n- Photo\n"
            ),
            // The new wording also brings a new duration: both are reported.
            vec![
                (ChangeKind::Duration, None, s("3 months")),
                (
                    ChangeKind::DocumentChanged,
                    s("Valid travel document"),
                    s("Valid travel document (at least 3 months beyond validity)")
                )
            ]
        );
    }

    #[test]
    fn text_only_is_not_material() {
        let v = compare("Apply at the ministry.\n", "Apply in person at the ministry.\n").unwrap();
        assert!(!v.material);
        assert_eq!(v.changes[0].kind, ChangeKind::Text);
    }

    #[test]
    fn script_switch_is_nothing() {
        assert!(compare("Такса 15.000 динара.\n", "Taksa 15.000 dinara.\n").is_none());
    }

    #[test]
    fn new_sentence_with_a_fee_is_only_a_fee() {
        assert_eq!(
            kinds(
                "Apply at the ministry.\n",
                "Apply at the ministry.\nThe fee is €50.\n"
            ),
            vec![(ChangeKind::Fee, None, s("50 EUR"))]
        );
        // Reworded around an unchanged fee: text, not a fee change.
        assert_eq!(
            kinds(
                "The fee is €50 per application.\n",
                "Each application costs €50.\n"
            ),
            vec![(ChangeKind::Text, None, None)]
        );
    }

    #[test]
    fn paired_limits() {
        assert_eq!(
            kinds(
                "Stay 90 days within any 180 days.\n",
                "Stay 60 days within any 180 days.\n"
            ),
            vec![(ChangeKind::Duration, s("90 days"), s("60 days"))]
        );
    }
}
