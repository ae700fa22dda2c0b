//! PURE: previous canonical text vs new → [`Verdict`]: the changes, whether
//! they are material, and the diff shown to editors.
//!
//! No I/O and no clock. The verdict computed here is exactly what the report,
//! the history and the alert show: nobody re-derives it downstream.

use std::time::Duration;

use similar::{ChangeTag, TextDiff};

use crate::model::{Change, ChangeKind, Verdict};

/// Compares two canonical texts; `None` when they are identical.
pub fn compare(before: &str, after: &str) -> Option<Verdict> {
    if before == after {
        return None;
    }
    let (diff, word_diff) = diffs(before, after);
    let changes = vec![Change {
        kind: ChangeKind::Text,
        before: None,
        after: None,
        context: None,
    }];
    Some(Verdict {
        material: changes.iter().any(|c| c.kind.is_material()),
        changes,
        diff,
        word_diff,
    })
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
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                words.push(sign);
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

    #[test]
    fn identical_is_none_and_diff_has_words() {
        assert!(compare("a\n", "a\n").is_none());
        let v = compare(
            "# Fees\nThe fee is 50 EUR.\n",
            "# Fees\nThe fee is 65 EUR.\n",
        )
        .unwrap();
        assert!(
            v.diff.contains("-The fee is 50 EUR.\n+The fee is 65 EUR."),
            "{}",
            v.diff
        );
        assert!(
            v.word_diff.contains("[-50-]") && v.word_diff.contains("{+65+}"),
            "{}",
            v.word_diff
        );
    }
}
