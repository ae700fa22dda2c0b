//! PURE: previous canonical text vs new → [`Verdict`]: which fees, durations
//! and documents changed, whether anything material did, and the diff.
//!
//! Facts are matched by context, not position: the same sentence with a new
//! value is a value change; a reordered list is no change; a reworded item
//! is `document_changed`. Whatever else differs is one `text` change, which
//! is recorded but not material. No I/O and no clock. The verdict computed
//! here is exactly what the report, the history and the alert show.

use std::collections::{HashMap, HashSet};

use similar::{ChangeTag, TextDiff};

use crate::facts::documents::{similarity_of, words};
use crate::facts::{self, Document, Fact, Facts, Value};
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
    let (doc_changes, whole_items) = match_documents(&fb.documents, &fa.documents, &mut explained);
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
    changes.extend(match_values(
        &fb.ages,
        &fa.ages,
        ChangeKind::Age,
        &whole_items,
        &mut explained,
    ));
    changes.extend(match_values(
        &fb.dates,
        &fa.dates,
        ChangeKind::Date,
        &whole_items,
        &mut explained,
    ));
    changes.extend(doc_changes);
    changes.extend(match_countries(&fb.countries, &fa.countries, &mut explained));
    let text_already = changes.iter().any(|c| c.kind == ChangeKind::Text);
    if !text_already && (explained.2 || other_text_changed(before, after, &(explained.0, explained.1))) {
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
/// list items, with fees, ages and durations masked, compared as a multiset; a line
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
                spans.extend(facts::ages::find(l).into_iter().map(|a| a.span));
                spans.extend(facts::dates::find(l).into_iter().map(|d| d.span));
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

/// Longest context kept with a change: a sentence listing 400 fees would
/// otherwise repeat itself 400 times in the report and the alert.
const CONTEXT_MAX: usize = 300;

fn change(kind: ChangeKind, before: Option<&Fact>, after: Option<&Fact>) -> Change {
    // "Free of charge" on a page without other fees has no currency of its
    // own: it takes the one it changed to or from ("0 EUR → 20 EUR").
    let value = |f: Option<&Fact>, other: Option<&Fact>| {
        f.map(|f| match other.and_then(|o| o.value.currency()) {
            Some(c) if f.value.is_bare_zero() => format!("0 {c}"),
            _ => f.value.to_string(),
        })
    };
    Change {
        kind,
        before: value(before, after),
        after: value(after, before),
        context: after.or(before).map(|f| cut(&f.context, CONTEXT_MAX)),
    }
}

/// Equal values, including a duration written in another unit ("1 years"
/// and "12 months", "2 weeks" and "14 days"): such a rewrite is text, not a
/// change of the requirement (`rewritten` records it).
fn same_value(a: &Value, b: &Value, rewritten: &mut bool) -> bool {
    if a == b {
        return true;
    }
    let same = matches!((a.in_small_units(), b.in_small_units()), (Some(x), Some(y)) if x == y);
    *rewritten |= same;
    same
}

/// Pairs the unused keys whose similarity is at least 0.6, most similar
/// first, and marks them used: rewordings of the same fact or item.
///
/// The work is bounded by the input's size, not its square, and decided by
/// the input alone (no clock): equal keys are scored once; when there are
/// many distinct keys, each is scored only against the few that share its
/// rarest words; character ratios stop after a fixed budget (word overlap
/// after that).
fn pair_similar(
    before: &[&str],
    after: &[&str],
    used_b: &mut [bool],
    used_a: &mut [bool],
) -> Vec<(usize, usize)> {
    // Distinct unused keys on each side, with the indices holding them.
    fn groups<'k>(keys: &[&'k str], used: &[bool]) -> Vec<(&'k str, Vec<usize>)> {
        let mut at: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| !used[*i]) {
            let g = *at.entry(k).or_insert_with(|| {
                out.push((k, Vec::new()));
                out.len() - 1
            });
            out[g].1.push(i);
        }
        out
    }
    let (gb, ga) = (groups(before, used_b), groups(after, used_a));
    if gb.is_empty() || ga.is_empty() {
        return Vec::new();
    }
    let wb: Vec<HashSet<&str>> = gb.iter().map(|(k, _)| words(k)).collect();
    let wa: Vec<HashSet<&str>> = ga.iter().map(|(k, _)| words(k)).collect();
    let candidates = candidate_pairs(&wb, &wa);
    let mut budget = CHAR_DIFF_BUDGET;
    let mut scored: Vec<(f32, usize, usize)> = Vec::new();
    for (b, a) in candidates {
        let (kb, ka) = (gb[b].0, ga[a].0);
        let cost = (kb.len() * ka.len()) as u64;
        let chars = budget >= cost;
        if chars {
            budget -= cost;
        }
        let s = similarity_of(kb, ka, &wb[b], &wa[a], chars);
        if s >= 0.6 {
            scored.push((s, b, a));
        }
    }
    scored.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    let mut pairs = Vec::new();
    for (_, b, a) in scored {
        // Equal keys pair in order, as many as both sides still hold.
        let free_b: Vec<usize> = gb[b].1.iter().copied().filter(|&i| !used_b[i]).collect();
        let free_a: Vec<usize> = ga[a].1.iter().copied().filter(|&i| !used_a[i]).collect();
        for (bi, ai) in free_b.into_iter().zip(free_a) {
            used_b[bi] = true;
            used_a[ai] = true;
            pairs.push((bi, ai));
        }
    }
    pairs
}

/// Character-diff work (product of lengths, summed) one comparison may
/// spend on pairing; past it, word overlap decides.
const CHAR_DIFF_BUDGET: u64 = 20_000_000;
/// Below this many pairs of distinct keys, every pair is scored.
const ALL_PAIRS_MAX: usize = 4_096;
/// Candidates scored per key when there are more.
const CANDIDATES_PER_KEY: usize = 16;
/// Keys on each side of the same position scored as well.
const NEIGHBOURS: usize = 4;
/// A word on more keys than this tells nothing about which pair belongs together.
const COMMON_WORD: usize = 64;

/// Which (before, after) key pairs to score: all of them when few, else
/// for each before key the after keys sharing most of its rarer words.
fn candidate_pairs(wb: &[HashSet<&str>], wa: &[HashSet<&str>]) -> Vec<(usize, usize)> {
    if wb.len() * wa.len() <= ALL_PAIRS_MAX {
        return (0..wb.len())
            .flat_map(|b| (0..wa.len()).map(move |a| (b, a)))
            .collect();
    }
    let mut postings: HashMap<&str, Vec<usize>> = HashMap::new();
    for (a, words) in wa.iter().enumerate() {
        for w in words {
            postings.entry(w).or_default().push(a);
        }
    }
    let mut out = Vec::new();
    let mut shared: HashMap<usize, usize> = HashMap::new();
    for (b, words) in wb.iter().enumerate() {
        shared.clear();
        for w in words {
            match postings.get(w) {
                Some(list) if list.len() <= COMMON_WORD => {
                    for &a in list {
                        *shared.entry(a).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        let mut best: Vec<(usize, usize)> = shared.iter().map(|(&a, &n)| (n, a)).collect();
        best.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut picked: Vec<usize> = best
            .into_iter()
            .take(CANDIDATES_PER_KEY)
            .map(|(_, a)| a)
            .collect();
        // Lists mostly keep their order: the keys at the same place are
        // candidates too (they are all there is when no word is rare).
        let at = b * wa.len() / wb.len();
        for a in at.saturating_sub(NEIGHBOURS)..(at + NEIGHBOURS + 1).min(wa.len()) {
            if !picked.contains(&a) {
                picked.push(a);
            }
        }
        out.extend(picked.into_iter().map(|a| (b, a)));
    }
    out
}

/// Indices of each key, in order: the first unused one with a key is
/// always the front of its queue (pairing by equal key without a search).
fn queues<'k>(keys: impl Iterator<Item = &'k str>) -> HashMap<&'k str, std::collections::VecDeque<usize>> {
    let mut out: HashMap<&str, std::collections::VecDeque<usize>> = HashMap::new();
    for (i, k) in keys.enumerate() {
        out.entry(k).or_default().push_back(i);
    }
    out
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
    let mut by_key = queues(before.iter().map(|f| f.key.as_str()));
    for (ai, a) in after.iter().enumerate() {
        if let Some(bi) = by_key.get_mut(a.key.as_str()).and_then(|q| q.pop_front()) {
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
    let mut by_value: HashMap<&Value, std::collections::VecDeque<usize>> = HashMap::new();
    for (i, f) in before.iter().enumerate().filter(|(i, _)| !used_b[*i]) {
        by_value.entry(&f.value).or_default().push_back(i);
    }
    for (ai, a) in after.iter().enumerate() {
        if !used_a[ai]
            && let Some(bi) = by_value.get_mut(&a.value).and_then(|q| q.pop_front())
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
fn match_documents(
    before: &[Document],
    after: &[Document],
    explained: &mut (HashSet<usize>, HashSet<usize>, bool),
) -> (Vec<Change>, WholeItems) {
    let mut whole = WholeItems::default();
    let mut used_b = vec![false; before.len()];
    let mut used_a = vec![false; after.len()];
    let mut by_key = queues(before.iter().map(|d| d.key.as_str()));
    for (ai, a) in after.iter().enumerate() {
        if let Some(bi) = by_key.get_mut(a.key.as_str()).and_then(|q| q.pop_front()) {
            used_b[bi] = true;
            used_a[ai] = true;
        }
    }
    let b_keys: Vec<&str> = before.iter().map(|d| d.key.as_str()).collect();
    let a_keys: Vec<&str> = after.iter().map(|d| d.key.as_str()).collect();
    let mut out = Vec::new();
    // Same key, other letters (case, a trailing stop) besides the values:
    // the same document, worded a little differently.
    let mut retouched = before
        .iter()
        .zip(&used_b)
        .filter(|(_, used)| **used)
        .any(|(b, _)| !after.iter().any(|a| a.shape == b.shape));
    for (bi, ai) in pair_similar(&b_keys, &a_keys, &mut used_b, &mut used_a) {
        // Only punctuation, articles, prepositions or case differ: text.
        if light(&before[bi].text) == light(&after[ai].text) {
            retouched = true;
            continue;
        }
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
    // A list inside a sentence: when the sentence around it reads the same,
    // its line says nothing beyond the documents reported.
    let frames =
        |docs: &[Document]| -> HashSet<String> { docs.iter().filter_map(|d| d.frame.clone()).collect() };
    let (fb, fa) = (frames(before), frames(after));
    let changed = !out.is_empty();
    for (docs, other, lines) in [(before, &fa, &mut explained.0), (after, &fb, &mut explained.1)] {
        for d in docs {
            if changed && d.frame.as_ref().is_some_and(|f| other.contains(f)) {
                lines.insert(d.line);
            }
        }
    }
    // Only when it is all that happened to the list: beside a document
    // added or removed, a separator that moved is part of that change.
    if retouched && out.is_empty() {
        out.push(Change {
            kind: ChangeKind::Text,
            before: None,
            after: None,
            context: None,
        });
    }
    (out, whole)
}

/// Lists of nationalities as sets of codes: a reordered list, a respelled
/// name or another script is no change. Lists pair up by their lead-in (or
/// sentence), else by the countries they share.
fn match_countries(
    before: &[facts::Country],
    after: &[facts::Country],
    explained: &mut (HashSet<usize>, HashSet<usize>, bool),
) -> Vec<Change> {
    type Lists<'a> = Vec<(&'a str, Vec<&'a facts::Country>)>;
    fn lists(countries: &[facts::Country]) -> Lists<'_> {
        let mut out: Lists<'_> = Vec::new();
        for c in countries {
            match out.iter_mut().find(|(k, _)| *k == c.key) {
                Some((_, l)) => l.push(c),
                None => out.push((c.key.as_str(), vec![c])),
            }
        }
        out
    }
    let codes = |l: &[&facts::Country]| l.iter().map(|c| c.code).collect::<HashSet<_>>();
    let (lb, la) = (lists(before), lists(after));
    let mut pairs: Vec<(Option<usize>, Option<usize>)> = Vec::new();
    let mut used_a = vec![false; la.len()];
    let mut left_b = Vec::new();
    for (bi, (key, _)) in lb.iter().enumerate() {
        match la
            .iter()
            .enumerate()
            .position(|(ai, (k, _))| !used_a[ai] && k == key)
        {
            Some(ai) => {
                used_a[ai] = true;
                pairs.push((Some(bi), Some(ai)));
            }
            None => left_b.push(bi),
        }
    }
    for bi in left_b {
        let cb = codes(&lb[bi].1);
        let best = (0..la.len())
            .filter(|&ai| !used_a[ai])
            .map(|ai| (codes(&la[ai].1).intersection(&cb).count(), ai))
            .filter(|(shared, _)| *shared > 0)
            .max_by_key(|(shared, ai)| (*shared, std::cmp::Reverse(*ai)));
        if let Some((_, ai)) = best {
            used_a[ai] = true;
        }
        pairs.push((Some(bi), best.map(|(_, ai)| ai)));
    }
    pairs.extend((0..la.len()).filter(|&ai| !used_a[ai]).map(|ai| (None, Some(ai))));
    let mut out = Vec::new();
    for (bi, ai) in pairs {
        let b: &[&facts::Country] = bi.map_or(&[], |i| &lb[i].1);
        let a: &[&facts::Country] = ai.map_or(&[], |i| &la[i].1);
        let (cb, ca) = (codes(b), codes(a));
        // The same list, worded alike: what differs on its lines is the
        // order or the spelling of names, which is no change.
        // (Only a sentence's key holds all of its other words; a table row
        // keyed by its lead-in may have changed in other cells.)
        if let (Some(bi), Some(ai)) = (bi, ai)
            && lb[bi].0 == la[ai].0
            && lb[bi].0.starts_with("sentence:")
        {
            explained.0.extend(b.iter().map(|c| c.line));
            explained.1.extend(a.iter().map(|c| c.line));
        }
        let mut seen = HashSet::new();
        for c in b.iter().filter(|c| !ca.contains(c.code) && seen.insert(c.code)) {
            explained.0.insert(c.line);
            out.push(Change {
                kind: ChangeKind::CountryRemoved,
                before: Some(c.code.to_string()),
                after: None,
                context: Some(c.name.clone()),
            });
        }
        let mut seen = HashSet::new();
        for c in a.iter().filter(|c| !cb.contains(c.code) && seen.insert(c.code)) {
            explained.1.insert(c.line);
            out.push(Change {
                kind: ChangeKind::CountryAdded,
                before: None,
                after: Some(c.code.to_string()),
                context: Some(c.name.clone()),
            });
        }
    }
    out
}

/// Words that do not change what a document is: articles and prepositions
/// (English, Serbian in Latin, Albanian), compared folded.
const LIGHT_WORDS: &[&str] = &[
    "a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "with", "from", "u", "za", "od", "na", "o",
    "sa", "s", "iz", "po", "i", "e", "te", "se", "per", "ne", "nga", "me", "tek",
];

/// An item's words without punctuation, case, articles and prepositions.
fn light(text: &str) -> Vec<String> {
    facts::fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !LIGHT_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

/// A unified line diff, and the same hunks with changed words marked
/// `[-old-]{+new+}` (git's --word-diff=plain notation). Long lines are shown
/// around their change (see [`op_lines`]), so a diff stays readable and
/// small whatever the page.
pub fn diffs(before: &str, after: &str) -> (String, String) {
    let td = line_diff(before, after);
    let mut unified = String::from("--- before\n+++ after\n");
    for hunk in td.grouped_ops(3) {
        unified.push_str(&format!("{}\n", similar::udiff::UnifiedHunkHeader::new(&hunk)));
        for op in &hunk {
            for line in op_lines(&td, op) {
                unified.push(line.sign());
                for (_, value) in &line.parts {
                    unified.push_str(value);
                }
                unified.push('\n');
            }
        }
    }
    let mut words = String::new();
    for (n, group) in td.grouped_ops(3).into_iter().enumerate() {
        // `~` separates hunks; none after the last (issue 12).
        if n > 0 {
            words.push_str("~\n");
        }
        for op in &group {
            for line in op_lines(&td, op) {
                words.push(line.sign());
                for (emph, value) in &line.parts {
                    match (emph, line.tag) {
                        (true, ChangeTag::Delete) => words.push_str(&format!("[-{value}-]")),
                        (true, ChangeTag::Insert) => words.push_str(&format!("{{+{value}+}}")),
                        _ => words.push_str(value),
                    }
                }
                words.push('\n');
            }
        }
    }
    (cap(unified), cap(words))
}

/// Largest diff kept (bytes); the rest of an enormous rewrite is cut.
const DIFF_MAX: usize = 512 * 1024;

fn cap(mut diff: String) -> String {
    if diff.len() > DIFF_MAX {
        let at = (0..=DIFF_MAX)
            .rev()
            .find(|&i| diff.is_char_boundary(i))
            .unwrap_or(0);
        let more = diff.len() - at;
        diff.truncate(at);
        diff.push_str(&format!("\n… (diff cut here: {more} more bytes)\n"));
    }
    diff
}

/// The line diff of two canonical texts, decided by the texts alone (no
/// clock, no deadline): exact (Myers) when the stretch between the common
/// first and last lines holds at most `EXACT_DIFF_LINES` lines, since Myers
/// costs up to the square of that; beyond, that stretch as one replacement.
pub struct LineDiff<'a> {
    old: Vec<&'a str>,
    new: Vec<&'a str>,
    ops: Vec<similar::DiffOp>,
    /// The exact diff, for word marks; `None` for a coarse one.
    exact: Option<TextDiff<'a, 'a, str>>,
}

impl LineDiff<'_> {
    /// The ops in hunks with `n` lines of context.
    pub fn grouped_ops(&self, n: usize) -> Vec<Vec<similar::DiffOp>> {
        similar::group_diff_ops(self.ops.clone(), n)
    }
}

pub fn line_diff<'a>(before: &'a str, after: &'a str) -> LineDiff<'a> {
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let prefix = old.iter().zip(&new).take_while(|(x, y)| x == y).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (gone, came) = (old.len() - prefix - suffix, new.len() - prefix - suffix);
    if gone + came <= EXACT_DIFF_LINES {
        let td = TextDiff::configure().diff_lines(before, after);
        return LineDiff {
            ops: td.ops().to_vec(),
            old,
            new,
            exact: Some(td),
        };
    }
    use similar::DiffOp;
    let mut ops = Vec::new();
    if prefix > 0 {
        ops.push(DiffOp::Equal {
            old_index: 0,
            new_index: 0,
            len: prefix,
        });
    }
    if gone > 0 {
        ops.push(DiffOp::Delete {
            old_index: prefix,
            old_len: gone,
            new_index: prefix,
        });
    }
    if came > 0 {
        ops.push(DiffOp::Insert {
            old_index: prefix + gone,
            new_index: prefix,
            new_len: came,
        });
    }
    if suffix > 0 {
        ops.push(DiffOp::Equal {
            old_index: prefix + gone,
            new_index: prefix + came,
            len: suffix,
        });
    }
    LineDiff {
        old,
        new,
        ops,
        exact: None,
    }
}

/// Lines of an exact line diff at most (both sides of the differing stretch).
const EXACT_DIFF_LINES: usize = 20_000;

/// One line of a rendered diff: its parts, `true` where words changed.
pub struct DiffLine {
    pub tag: ChangeTag,
    pub parts: Vec<(bool, String)>,
}

impl DiffLine {
    pub fn sign(&self) -> char {
        match self.tag {
            ChangeTag::Delete => '-',
            ChangeTag::Insert => '+',
            ChangeTag::Equal => ' ',
        }
    }
}

/// Longest line (bytes) diffed word by word: a word diff of two 9 MB lines
/// took 24 GB. Longer lines are shown as a window around what differs.
const INLINE_MAX: usize = 4_000;
/// Characters of context shown on each side of a long line's change.
const WINDOW: usize = 200;
/// Characters shown of a long line's changed stretch, or of a long line
/// with no counterpart.
const SHOWN_MAX: usize = 1_000;

/// The lines of one diff op with their changed words marked.
pub fn op_lines(diff: &LineDiff<'_>, op: &similar::DiffOp) -> Vec<DiffLine> {
    let line = |s: &str| s.trim_end_matches('\n').to_string();
    let old: Vec<&str> = op.old_range().filter_map(|i| diff.old.get(i).copied()).collect();
    let new: Vec<&str> = op.new_range().filter_map(|i| diff.new.get(i).copied()).collect();
    if let Some(td) = diff
        .exact
        .as_ref()
        .filter(|_| old.iter().chain(&new).all(|l| l.len() <= INLINE_MAX))
    {
        // No deadline: lines this short cost little, and the marks must not
        // depend on the machine's load.
        return td
            .iter_inline_changes_deadline(op, None)
            .map(|c| DiffLine {
                tag: c.tag(),
                parts: c
                    .iter_strings_lossy()
                    .map(|(emph, v)| (emph, line(&v)))
                    .filter(|(_, v)| !v.is_empty())
                    .collect(),
            })
            .collect();
    }
    let plain = |tag, l: &str| DiffLine {
        tag,
        parts: vec![(false, cut(&line(l), SHOWN_MAX))],
    };
    match op.tag() {
        similar::DiffTag::Equal => old.iter().map(|l| plain(ChangeTag::Equal, l)).collect(),
        similar::DiffTag::Delete => old.iter().map(|l| plain(ChangeTag::Delete, l)).collect(),
        similar::DiffTag::Insert => new.iter().map(|l| plain(ChangeTag::Insert, l)).collect(),
        similar::DiffTag::Replace => {
            let mut out = Vec::new();
            for (tag, ours, theirs) in [(ChangeTag::Delete, &old, &new), (ChangeTag::Insert, &new, &old)] {
                for (i, l) in ours.iter().enumerate() {
                    out.push(match theirs.get(i) {
                        Some(other) => DiffLine {
                            tag,
                            parts: window(&line(l), &line(other)),
                        },
                        None => plain(tag, l),
                    });
                }
            }
            out
        }
    }
}

/// `ours` shown around where it differs from `theirs`: the common start and
/// end cut to [`WINDOW`] characters, the differing middle marked.
fn window(ours: &str, theirs: &str) -> Vec<(bool, String)> {
    let prefix = ours
        .char_indices()
        .zip(theirs.chars())
        .find(|((_, a), b)| a != b)
        .map_or(ours.len().min(theirs.len()), |((i, _), _)| i);
    let prefix = (0..=prefix)
        .rev()
        .find(|&i| ours.is_char_boundary(i) && theirs.is_char_boundary(i))
        .unwrap_or(0);
    let (rest, other) = (&ours[prefix..], &theirs[prefix..]);
    let suffix = rest
        .chars()
        .rev()
        .zip(other.chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum::<usize>();
    let (middle, end) = rest.split_at(rest.len() - suffix);
    let head: String = {
        let n = ours[..prefix].chars().count();
        let kept: String = ours[..prefix].chars().skip(n.saturating_sub(WINDOW)).collect();
        if n > WINDOW { format!("…{kept}") } else { kept }
    };
    let tail = cut(end, WINDOW);
    let mut parts = Vec::new();
    for (emph, text) in [(false, head), (true, cut(middle, SHOWN_MAX)), (false, tail)] {
        if !text.is_empty() {
            parts.push((emph, text));
        }
    }
    parts
}

/// At most `max` characters of `s`, saying how many more there were.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}… ({} more characters)", &s[..at], s[at..].chars().count()),
    }
}

/// Pathological pairs of pages from issue 10 (6), shared by the tests and
/// `benches/compare_worst.rs`: canonical texts before and after.
#[doc(hidden)]
pub mod worst_cases {
    /// One sentence listing 400 fees, its first word reworded.
    pub fn fees_in_one_sentence() -> (String, String) {
        let sentence = |w: &str| {
            let parts: Vec<String> = (0..400)
                .map(|i| {
                    let who = if i == 0 { w } else { "citizens" };
                    let country = ["Albania", "Austria"][i % 2];
                    format!("{who} of {country} group {i} pay {} EUR", 40 + i % 90)
                })
                .collect();
            format!("Fee by nationality: {}\n", parts.join(", "))
        };
        (sentence("citizens"), sentence("nationals"))
    }

    /// 4,000 list items, each reworded by one word.
    pub fn reworded_items() -> (String, String) {
        let list = |w: &str| {
            let mut t = String::from("## Documents\n");
            for i in 0..4000 {
                t.push_str(&format!(
                    "- {w} copy of record {i} issued by registry office {}\n",
                    i * 7
                ));
            }
            t
        };
        (list("Certified"), list("Notarized"))
    }

    /// A 9 MB single-line paragraph with one word changed in the middle.
    pub fn huge_line() -> (String, String) {
        let words = [
            "visa",
            "permit",
            "residence",
            "applicant",
            "embassy",
            "consular",
            "office",
            "border",
        ];
        let mut line = String::with_capacity(9 << 20);
        let mut i = 0usize;
        while line.len() < 9 << 20 {
            line.push_str(words[(i * 7 + i / 3) % words.len()]);
            line.push(' ');
            i += 1;
        }
        let mid = line.len() / 2;
        let at = mid + line[mid..].find(' ').unwrap() + 1;
        let end = at + line[at..].find(' ').unwrap();
        let after = format!("{}REWORDED{}", &line[..at], &line[end..]);
        (
            line.trim_end().to_string() + "\n",
            after.trim_end().to_string() + "\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 (6): 118 s of CPU. The reworded sentence is text; its 400
    /// fees are all still there.
    #[test]
    fn four_hundred_fees_in_one_sentence_reworded_is_text_only() {
        let (a, b) = worst_cases::fees_in_one_sentence();
        let v = compare(&a, &b).unwrap();
        assert_eq!(
            v.changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
            [ChangeKind::Text]
        );
        assert!(!v.material);
        assert!(v.diff.len() < 40_000, "{}", v.diff.len());
    }

    /// Issue 10 (6): over 120 s. Every reworded item is one document change.
    #[test]
    fn four_thousand_reworded_items_pair_up() {
        let (a, b) = worst_cases::reworded_items();
        let v = compare(&a, &b).unwrap();
        assert!(v.material);
        let odd: Vec<_> = v
            .changes
            .iter()
            .filter(|c| c.kind != ChangeKind::DocumentChanged)
            .take(5)
            .collect();
        assert_eq!(v.changes.len(), 4000, "{odd:?}");
        assert!(v.changes.iter().all(|c| c.kind == ChangeKind::DocumentChanged));
        // Each item paired with its own rewording, none with another's.
        for c in &v.changes {
            let before = c.before.as_deref().unwrap();
            assert_eq!(
                c.after.as_deref(),
                Some(before.replace("Certified", "Notarized").as_str())
            );
        }
    }

    /// Issue 10 (6): 24 GB and the OOM killer. The diff shows the changed
    /// word in a window, not 18 MB of line.
    #[test]
    fn nine_megabyte_line_with_one_word_changed_diffs_around_it() {
        let (a, b) = worst_cases::huge_line();
        let v = compare(&a, &b).unwrap();
        assert_eq!(
            v.changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
            [ChangeKind::Text]
        );
        assert!(v.diff.len() < 10_000, "{}", v.diff.len());
        assert!(v.word_diff.contains("{+REWORDED+}"), "{}", v.word_diff);
        assert!(v.diff.contains("+…") && v.diff.contains("REWORDED"), "{}", v.diff);
    }

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

    /// Issue 11 (7): the same two texts give the same diff on any machine;
    /// a rewrite too large for an exact diff is one replacement, not a
    /// result of how busy the machine was.
    #[test]
    fn enormous_rewrites_diff_the_same_every_time() {
        let before: String = (0..15_000).map(|i| format!("line {i} alpha\n")).collect();
        let after: String = (0..15_000).map(|i| format!("line {i} beta\n")).collect();
        let first = diffs(&before, &after);
        assert_eq!(first, diffs(&before, &after));
        assert!(first.0.contains("-line 0 alpha") && first.0.contains("+line 0 beta"));
        assert!(first.0.len() <= DIFF_MAX + 100, "{}", first.0.len());
        // A local change in a long text is still diffed exactly.
        let mut edited = before.clone();
        edited = edited.replace("line 7000 alpha\n", "line 7000 gamma\n");
        let (unified, _) = diffs(&before, &edited);
        assert!(
            unified.contains("-line 7000 alpha\n+line 7000 gamma"),
            "{unified}"
        );
        assert!(unified.len() < 1_000, "{unified}");
    }

    #[test]
    fn word_diff_hunks_are_separated_not_terminated() {
        let before: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let after = before
            .replace("line 3\n", "line three\n")
            .replace("line 30\n", "line thirty\n");
        let (_, words) = diffs(&before, &after);
        assert_eq!(words.matches("~\n").count(), 1, "{words}");
        assert!(!words.ends_with("~\n"), "{words}");
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

    /// Issue 15: an age threshold is its own kind, worded for editors.
    #[test]
    fn an_age_threshold_change_is_an_age_limit() {
        let v = compare(
            "Children under 14 need the consent of both parents.\nValid for 6 years.\n",
            "Children under 16 need the consent of both parents.\nValid for 6 years.\n",
        )
        .unwrap();
        assert!(v.material);
        assert_eq!(v.changes.len(), 1, "{:?}", v.changes);
        assert_eq!(v.changes[0].kind, ChangeKind::Age);
        assert_eq!(
            v.changes[0].describe(),
            "age limit 14 → 16 years (Children under 16 need the consent of both parents.)"
        );
    }

    /// Issue 15: an item edited only in punctuation, articles, prepositions
    /// or letter case is the same document, worded anew: `text`.
    #[test]
    fn an_item_retouched_without_new_words_is_text() {
        for (b, a) in [
            (
                "Documents:\n- A valid passport.\n- Photo\n",
                "Documents:\n- Valid passport\n- Photo\n",
            ),
            (
                "Documents:\n- Proof of accommodation in Kosovo\n- Photo\n",
                "Documents:\n- proof of accommodation, in kosovo\n- Photo\n",
            ),
            (
                "Dokumenta:\n- Izvod iz matične knjige rođenih\n- Fotografija\n",
                "Dokumenta:\n- Izvod matične knjige rođenih.\n- Fotografija\n",
            ),
            (
                "Dokumentet:\n- Pasaporta e vlefshme\n",
                "Dokumentet:\n- Pasaporta, e vlefshme.\n",
            ),
            ("Documents:\n- Photo\n", "Documents:\n- photo\n"),
        ] {
            let v = compare(b, a).unwrap_or_else(|| panic!("{a:?} is a change"));
            let kinds: Vec<ChangeKind> = v.changes.iter().map(|c| c.kind).collect();
            assert_eq!(kinds, [ChangeKind::Text], "{b:?} → {a:?}");
            assert!(!v.material);
        }
        // A new word is a new requirement: material.
        let v = compare(
            "Documents:\n- Proof of accommodation in Kosovo\n- Photo\n",
            "Documents:\n- Proof of paid accommodation in Kosovo\n- Photo\n",
        )
        .unwrap();
        assert!(v.material, "{:?}", v.changes);
        assert_eq!(v.changes[0].kind, ChangeKind::DocumentChanged);
    }

    /// Issue 15: a list of dated links (news) in a broad selection is no
    /// document list: a new post is no change; a real list of forms is.
    #[test]
    fn a_news_list_is_no_document_list() {
        let page = |news: &[&str]| {
            let mut t = String::from(
                "## Documents\n- Valid passport\n- [Application form](/forms/a.pdf)\n## Latest news\n",
            );
            for n in news {
                t.push_str(&format!("- [{n}](/news/{}) 12.03.2026\n", n.len()));
            }
            t
        };
        let before = page(&[
            "Consulate closed on Monday",
            "New opening hours",
            "Holiday notice",
        ]);
        let after = page(&[
            "Visa centre moves",
            "Consulate closed on Monday",
            "New opening hours",
        ]);
        assert!(
            compare(&before, &after).is_none_or(|v| !v.material),
            "{:?}",
            compare(&before, &after)
        );
        let f = facts_of(&before);
        let docs: Vec<&str> = f.documents.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(docs, ["Valid passport", "[Application form](/forms/a.pdf)"]);
        // The documents themselves still count.
        let v = compare(&before, &before.replace("- Valid passport\n", "")).unwrap();
        assert_eq!(v.changes[0].kind, ChangeKind::DocumentRemoved);
    }

    /// Issue 15: countries in a list of nationalities, as sets of codes.
    #[test]
    fn a_country_added_to_a_list_is_country_added_not_a_document() {
        let list = |names: &[&str]| {
            let mut t =
                String::from("Citizens of the following countries may enter with an identity card:\n");
            for n in names {
                t.push_str(&format!("- {n}\n"));
            }
            t.push_str("Other travellers need a passport.\n");
            t
        };
        let before = list(&["Albania", "Bosnia and Herzegovina", "North Macedonia"]);
        let after = list(&[
            "Albania",
            "Bosnia and Herzegovina",
            "North Macedonia",
            "Montenegro",
        ]);
        assert_eq!(
            kinds(&before, &after),
            [(ChangeKind::CountryAdded, None, s("ME"))]
        );
        let v = compare(&before, &after).unwrap();
        assert_eq!(v.changes[0].describe(), "country added: Montenegro (ME)");
        assert!(v.material);
        // Reordered, respelled, or in another script: no change.
        let respelled = list(&["Republic of North Macedonia", "Albania", "Bosnia-Herzegovina"]);
        assert!(
            compare(&before, &respelled).is_none_or(|v| !v.material),
            "{:?}",
            compare(&before, &respelled)
        );
        assert!(
            facts_of(&before).documents.is_empty(),
            "a country list is no document list"
        );
        assert_eq!(
            kinds(&before, &list(&["Albania", "North Macedonia"])),
            [(ChangeKind::CountryRemoved, s("BA"), None)]
        );
    }

    #[test]
    fn countries_named_in_a_sentence_and_in_its_cases() {
        let en = "Citizens of the EU, Switzerland, Norway and Iceland may enter Serbia with an ID card.";
        let en2 = "Citizens of the EU, Switzerland, Norway, Iceland and Montenegro may enter Serbia with an ID card.";
        assert_eq!(kinds(en, en2), [(ChangeKind::CountryAdded, None, s("ME"))]);
        // Reordered names in the sentence: nothing at all.
        let reordered =
            "Citizens of Norway, the EU, Iceland and Switzerland may enter Serbia with an ID card.";
        assert_eq!(kinds(en, reordered), []);
        let sr = "Državljani Bosne i Hercegovine i Crne Gore ulaze sa ličnom kartom.";
        let sr2 = "Državljani Bosne i Hercegovine ulaze sa ličnom kartom.";
        assert_eq!(kinds(sr, sr2), [(ChangeKind::CountryRemoved, s("ME"), None)]);
        let cyr = "Држављани Босне и Херцеговине и Црне Горе улазе са личном картом.";
        assert_eq!(kinds(sr, cyr), [], "a script switch is no change");
        let sq = "Shtetasit e Shqipërisë dhe të Malit të Zi hyjnë me letërnjoftim.";
        let sq2 = "Shtetasit e Shqipërisë, të Malit të Zi dhe të Maqedonisë së Veriut hyjnë me letërnjoftim.";
        assert_eq!(kinds(sq, sq2), [(ChangeKind::CountryAdded, None, s("MK"))]);
    }

    #[test]
    fn a_table_of_countries_compares_as_a_set_but_keeps_its_other_cells() {
        let table = |rows: &[&str]| {
            let mut t = String::from("## Visa regime\nCountry | Visa\n");
            for r in rows {
                t.push_str(r);
                t.push('\n');
            }
            t
        };
        let before = table(&[
            "Albania | not required",
            "Montenegro | not required",
            "Turkey | required",
        ]);
        let after = table(&[
            "Montenegro | not required",
            "Albania | not required",
            "Türkiye | required",
            "Kosovo | required",
        ]);
        assert_eq!(
            kinds(&before, &after),
            [
                (ChangeKind::CountryAdded, None, s("XK")),
                (ChangeKind::Text, None, None)
            ]
        );
        // Another cell of a row changed: still seen.
        let changed = before.replace("Turkey | required", "Turkey | not required");
        assert_eq!(kinds(&before, &changed), [(ChangeKind::Text, None, None)]);
    }
}
