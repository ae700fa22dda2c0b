//! PURE: the words of an alert. Turns a verdict (or a source's health) into
//! a subject, a plain-text body and an HTML body that an editor can act on
//! in a minute.
//!
//! Everything from a watched page is untrusted: it is HTML-escaped in the
//! HTML part and stripped of control characters before it can reach a
//! header. Sending, queueing and threading are `store` and `notify`'s work.

use std::fmt::Write;

use similar::ChangeTag;

pub use crate::model::{Alert, AlertKind};
use crate::model::{Change, Listed, Source, Verdict};

/// The weekly digest: sources in trouble (id, failed checks, last error),
/// the week's alerted changes (id, when, each change in words) and the
/// text-only changes (id, when, word diff) since `since`, which were
/// recorded but not alerted, so nothing is silently swallowed. Each list
/// shows its first [`DIGEST_LIST_MAX`] entries and says how many more.
pub fn digest(
    since: &str,
    now: &str,
    troubled: &Listed<(String, u32, String)>,
    alerted: &Listed<(String, String, Vec<String>)>,
    changes: &Listed<(String, String, String)>,
) -> Alert {
    let mut text = format!("visawatch weekly digest, {since} to {now}\n\n");
    if troubled.total == 0 {
        text.push_str("Sources in trouble: none.\n");
    } else {
        let _ = writeln!(text, "Sources in trouble (failed checks): {}", troubled.total);
        for (id, n, err) in &troubled.rows {
            let _ = writeln!(text, "  - {id}: {n} failed checks; last error: {}", one_line(err));
        }
        more(
            &mut text,
            troubled.more(),
            "`visawatch status` lists every source and its health",
        );
    }
    if alerted.total == 0 {
        text.push_str("\nChanges alerted: none.\n");
    } else {
        let _ = writeln!(text, "\nChanges alerted: {}", alerted.total);
        for (id, at, said) in &alerted.rows {
            let _ = writeln!(text, "  - {id} at {at}: {}", one_line(&said.join("; ")));
        }
        more(
            &mut text,
            alerted.more(),
            "each was alerted on its own; `visawatch history ID` lists them",
        );
    }
    if changes.total == 0 {
        text.push_str("\nText-only changes (not alerted): none.\n");
    } else {
        let _ = writeln!(
            text,
            "\nText-only changes (not alerted; `visawatch diff ID` for details): {}",
            changes.total
        );
        for (id, at, word_diff) in &changes.rows {
            let _ = writeln!(text, "\n  {id} at {at}:");
            for line in word_diff.lines().filter(|l| l.starts_with(['-', '+'])).take(20) {
                let _ = writeln!(text, "    {line}");
            }
        }
        more(
            &mut text,
            changes.more(),
            "`visawatch history ID` and `visawatch diff ID` show each",
        );
    }
    let subject = subject(&format!(
        "weekly digest: {} in trouble, {}",
        crate::model::count(troubled.total, "source"),
        crate::model::count(changes.total, "text-only change")
    ));
    plain_alert(AlertKind::Digest, subject, "visawatch weekly digest", text)
}

/// Entries of a digest's list: a week that changed 10,000 sources would
/// otherwise make a message of 10 MB that no editor reads (and many mail
/// servers refuse); the rest stays in the history.
pub const DIGEST_LIST_MAX: usize = 100;

/// The line that ends a list cut short.
fn more(text: &mut String, left_out: usize, where_: &str) {
    if left_out > 0 {
        let _ = writeln!(text, "  … and {left_out} more ({where_}).");
    }
}

/// Longest subject we write; mail clients cut anyway.
const SUBJECT_MAX: usize = 180;
/// Diff lines shown in an alert; the rest is in `visawatch diff`.
const DIFF_LINES_MAX: usize = 200;

/// What an editor does with a change alert.
const WHAT_TO_DO: &str = "What to do: check the official page, then update the article built from it.";

/// The alert for a material change: what changed as before → after, the
/// official URL, when it was fetched, and the diff of the requirement text.
/// `review_link`: the change's page on the editors' desk, when it has a
/// public address.
pub fn change(
    source: &Source,
    verdict: &Verdict,
    before: &str,
    after: &str,
    fetched_at: &str,
    review_link: Option<&str>,
) -> Alert {
    let material: Vec<&Change> = verdict.changes.iter().filter(|c| c.kind.is_material()).collect();
    let shown = if material.is_empty() {
        verdict.changes.iter().collect()
    } else {
        material
    };
    let first = shown
        .first()
        .map(|c| c.phrase(Some(60), false))
        .unwrap_or_else(|| "text changed".into());
    let more = match shown.len() {
        0 | 1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let subject = subject(&format!("{}: {first}{more}", source.name()));

    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}\n{}\nFetched {fetched_at}\n",
        one_line(source.name()),
        source.url
    );
    let _ = writeln!(text, "What changed:");
    for c in &verdict.changes {
        let _ = writeln!(text, "  - {}", c.describe());
    }
    let _ = writeln!(text, "\n{WHAT_TO_DO}");
    if let Some(link) = review_link {
        let _ = writeln!(text, "Review it on the desk: {link}");
    }
    let (plain_diff, html_diff) = diff(before, after);
    let _ = writeln!(text, "\nThe requirement text, before → after:\n\n{plain_diff}");
    let _ = writeln!(
        text,
        "-- \nvisawatch · source `{}` · `visawatch history {}` for the record",
        source.id, source.id
    );

    let mut html = html_head(source.name());
    let _ = write!(
        html,
        "<p><a href=\"{url}\">{url}</a><br>Fetched {at}</p>\n<table cellpadding=\"4\" style=\"border-collapse:collapse\">\n\
         <tr><th align=\"left\">What</th><th align=\"left\">Before</th><th align=\"left\">After</th><th align=\"left\">Where</th></tr>\n",
        url = escape(source.url.as_str()),
        at = escape(fetched_at),
    );
    for c in &verdict.changes {
        let _ = writeln!(
            html,
            "<tr style=\"border-top:1px solid #ccc\"><td>{}</td><td><del>{}</del></td><td><ins>{}</ins></td><td>{}</td></tr>",
            c.kind.label(),
            escape(c.before.as_deref().unwrap_or("")),
            escape(c.after.as_deref().unwrap_or("")),
            escape(c.context.as_deref().unwrap_or("")),
        );
    }
    let _ = write!(html, "</table>\n<p><b>{WHAT_TO_DO}</b></p>");
    if let Some(link) = review_link {
        let _ = write!(
            html,
            "\n<p><a href=\"{0}\">Review it on the desk</a></p>",
            escape(link)
        );
    }
    let _ = write!(
        html,
        "\n<h3>The requirement text</h3>\n<pre style=\"white-space:pre-wrap\">{html_diff}</pre>\n\
         <p style=\"color:#666\">visawatch · source <code>{}</code></p>\n</body></html>\n",
        escape(&source.id)
    );
    Alert {
        kind: AlertKind::Change,
        subject,
        text,
        html,
    }
}

/// "visawatch can no longer read `source`: `reason`".
pub fn blind(source: &Source, reason: &str, failures: u32, last_ok: Option<&str>) -> Alert {
    let subject = subject(&format!("can no longer read {}: {}", source.name(), reason));
    let since = last_ok.map_or("never read successfully".to_string(), |t| {
        format!("last read successfully {t}")
    });
    let body = format!(
        "visawatch could not read this source {failures} times in a row; until it reads again, changes to it go unnoticed.\n\n\
         Source: {}\nURL: {}\nReason: {}\n{since}\n\nCheck the page in a browser; if it moved or its layout changed, update sources.toml \
         (`visawatch probe URL --select CSS` helps).\n",
        one_line(source.name()),
        source.url,
        one_line(reason),
    );
    plain_alert(AlertKind::Blind, subject, source.name(), body)
}

/// The all-clear after [`blind`].
pub fn recovered(source: &Source, failures: u32) -> Alert {
    let subject = subject(&format!("recovered: {} reads again", source.name()));
    let body = format!(
        "visawatch reads this source again after {failures} failed checks; monitoring is back.\n\nSource: {}\nURL: {}\n\
         Changes made while it was unreadable are reported by this check, if any.\n",
        one_line(source.name()),
        source.url
    );
    plain_alert(AlertKind::Recovered, subject, source.name(), body)
}

/// This machine cannot reach the network: one alert instead of one per
/// source. `failing` and `hosts` count this run's hosts; `examples` are a
/// few (source, error) pairs.
pub fn network_down(failing: usize, hosts: usize, examples: &[(String, String)]) -> Alert {
    let subject = subject(&format!(
        "visawatch cannot reach the network ({failing} of {hosts} hosts)"
    ));
    let mut body = format!(
        "visawatch could not reach {failing} of the {hosts} hosts it checked (DNS or connection failures). \
         That is this machine's network, not the sources: until it is back, changes go unnoticed.\n\n\
         What to do: check the server's network, DNS and firewall. No per-source \"can no longer read\" \
         alerts are sent while the network is down; one message says when it is back.\n\nFor example:\n"
    );
    for (id, error) in examples {
        let _ = writeln!(body, "  - {id}: {}", one_line(error));
    }
    plain_alert(
        AlertKind::Network,
        subject,
        "visawatch cannot reach the network",
        body,
    )
}

/// The all-clear after [`network_down`].
pub fn network_back(since: &str) -> Alert {
    let body = format!(
        "visawatch reaches the sources again (the network was down since {since}). Monitoring is back; \
         changes made meanwhile are reported by the checks that follow.\n"
    );
    plain_alert(
        AlertKind::NetworkBack,
        subject("visawatch reaches the network again"),
        "visawatch reaches the network again",
        body,
    )
}

/// `visawatch test-email`.
pub fn test(to: &str, at: &str) -> Alert {
    let body = format!(
        "This is a test message from visawatch, sent {at} to {to}.\nIf you read this, alerts will reach you.\n"
    );
    plain_alert(
        AlertKind::Test,
        subject("test message"),
        "visawatch test message",
        body,
    )
}

/// An alert whose HTML part is its text, escaped.
pub fn plain_alert(kind: AlertKind, subject: String, title: &str, text: String) -> Alert {
    let html = format!(
        "{}<pre style=\"white-space:pre-wrap;font-family:inherit\">{}</pre>\n</body></html>\n",
        html_head(title),
        escape(&text)
    );
    Alert {
        kind,
        subject,
        text,
        html,
    }
}

/// `[visawatch] …`, one line, no control characters, bounded length.
pub fn subject(what: &str) -> String {
    let mut s = format!("[visawatch] {}", one_line(what));
    if s.chars().count() > SUBJECT_MAX {
        s = s.chars().take(SUBJECT_MAX - 1).collect::<String>() + "…";
    }
    s
}

/// Collapses every run of whitespace and control characters (CR, LF, NUL,
/// bidi controls…) to one space: page text that goes near a header.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}')
        {
            gap = true;
        } else {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        }
    }
    out
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body style=\"font-family:sans-serif\">\n<h2>{t}</h2>\n",
        t = escape(&one_line(title))
    )
}

/// The changed stretches of the requirement text with two lines of context,
/// each line labelled `before`, `after` or nothing (unchanged) in a column
/// of its own: the text's own list items start with `- `, so `-`/`+` signs
/// made an unchanged document read like a removed one. HTML also marks the
/// changed words (`<del>`/`<ins>`).
fn diff(before: &str, after: &str) -> (String, String) {
    let td = crate::compare::line_diff(before, after);
    let (mut plain, mut html, mut lines) = (String::new(), String::new(), 0);
    'groups: for group in td.grouped_ops(2) {
        for op in &group {
            for change in crate::compare::op_lines(&td, op) {
                if lines == DIFF_LINES_MAX {
                    plain.push_str("…(more in `visawatch diff`)\n");
                    html.push_str("…(more in <code>visawatch diff</code>)\n");
                    break 'groups;
                }
                lines += 1;
                let (label, style) = match change.tag {
                    ChangeTag::Delete => ("before", "background:#fdd"),
                    ChangeTag::Insert => ("after", "background:#dfd"),
                    ChangeTag::Equal => ("", "color:#555"),
                };
                let _ = write!(plain, "{label:>6} │ ");
                let _ = write!(html, "<span style=\"{style}\">{label:>6} │ ");
                for (emph, value) in &change.parts {
                    plain.push_str(value);
                    match (emph, change.tag) {
                        (true, ChangeTag::Delete) => {
                            let _ = write!(html, "<del style=\"background:#f99\">{}</del>", escape(value));
                        }
                        (true, ChangeTag::Insert) => {
                            let _ = write!(html, "<ins style=\"background:#9e9\">{}</ins>", escape(value));
                        }
                        _ => html.push_str(&escape(value)),
                    }
                }
                plain.push('\n');
                html.push_str("</span>\n");
            }
        }
        plain.push_str("       …\n");
        html.push_str("       …\n");
    }
    (plain, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A week that changed 10,000 sources made a digest of 10 MB: now
    /// each list shows its first entries and says how many more there are.
    #[test]
    fn a_digest_of_a_busy_week_lists_the_first_entries_and_counts_the_rest() {
        let at = "2026-11-30T16:32:00Z".to_string();
        let alerted = Listed {
            rows: (0..DIGEST_LIST_MAX)
                .map(|i| {
                    (
                        format!("s{i:05}"),
                        at.clone(),
                        vec!["fee 50 EUR → 65 EUR".to_string()],
                    )
                })
                .collect(),
            total: 10_000,
        };
        let changes = Listed {
            rows: vec![(
                "t".to_string(),
                at.clone(),
                "-old words\n+new words\n".to_string(),
            )],
            total: 1,
        };
        let troubled = Listed {
            rows: Vec::new(),
            total: 0,
        };
        let a = digest(
            "2026-11-23T08:00:00Z",
            "2026-11-30T08:00:00Z",
            &troubled,
            &alerted,
            &changes,
        );
        assert_eq!(
            a.subject,
            "[visawatch] weekly digest: 0 sources in trouble, 1 text-only change"
        );
        assert!(
            a.text.contains("Changes alerted: 10000\n  - s00000 at "),
            "{}",
            a.text
        );
        assert!(a.text.contains(&format!("s{:05}", DIGEST_LIST_MAX - 1)));
        assert!(!a.text.contains(&format!("s{DIGEST_LIST_MAX:05}")));
        assert!(
            a.text.contains(
                "… and 9900 more (each was alerted on its own; `visawatch history ID` lists them)."
            ),
            "{}",
            a.text
        );
        // A list shown whole says nothing more.
        assert!(a.text.contains("    +new words\n") && a.text.matches("more (").count() == 1);
        assert!(
            a.text.len() + a.html.len() < 40_000,
            "{} bytes",
            a.text.len() + a.html.len()
        );
    }

    fn source(name: &str) -> Source {
        Source {
            id: "xk".into(),
            title: Some(name.into()),
            url: "https://mpb.rks-gov.net/f/45".parse().unwrap(),
            select: Vec::new().into(),
            exclude: Vec::new().into(),
            section: None,
            maintainers: Vec::new().into(),
            language: None,
            ignore: vec![],
            schedule: None,
            allow_private: false,
            render: None,
        }
    }

    #[test]
    fn subject_names_source_and_first_change() {
        let before = "# Fees\nPermit | 50 €\nExtension | 30 €\n";
        let after = "# Fees\nPermit | 65 €\nExtension | 40 €\n";
        let v = crate::compare::compare(before, after).unwrap();
        let a = change(
            &source("Kosovo temporary residence permit"),
            &v,
            before,
            after,
            "2026-11-22T10:00:00Z",
            Some("https://desk.example.org/sources/xk/changes/2026-11-22T10:00:00Z"),
        );
        assert!(
            a.text
                .contains("Review it on the desk: https://desk.example.org/sources/xk/changes/")
        );
        assert!(
            a.html
                .contains("href=\"https://desk.example.org/sources/xk/changes/2026-11-22T10:00:00Z\"")
        );
        assert_eq!(
            a.subject,
            "[visawatch] Kosovo temporary residence permit: fee 50 EUR → 65 EUR (+1 more)"
        );
        assert!(a.text.contains("fee 30 EUR → 40 EUR"), "{}", a.text);
        assert!(a.text.contains("https://mpb.rks-gov.net/f/45"));
        assert!(a.html.contains("<del>50 EUR</del>") && a.html.contains("<ins>65 EUR</ins>"));
    }

    /// Issue 12: unchanged list items came out as `  - item`, removed lines
    /// as `- line`: an unchanged document read like a removal.
    #[test]
    fn context_removals_and_additions_cannot_be_confused() {
        let before = "Documents:\n- Passport\n- Photo\nFee: 50 €\n";
        let after = "Documents:\n- Passport\n- Photo\nFee: 65 €\n- Insurance\n";
        let (plain, _) = diff(before, after);
        assert!(plain.contains("       │ - Passport\n"), "{plain}");
        assert!(plain.contains("before │ Fee: 50 €\n"), "{plain}");
        assert!(plain.contains(" after │ Fee: 65 €\n"), "{plain}");
        assert!(plain.contains(" after │ - Insurance\n"), "{plain}");
        for line in plain
            .lines()
            .filter(|l| l.contains("Passport") || l.contains("Photo"))
        {
            assert!(
                line.starts_with("       │"),
                "unchanged, labelled as such: {line:?}"
            );
        }
    }

    #[test]
    fn page_text_cannot_break_out() {
        let before = "- Passport\n";
        let after = "- Passport\n- <script>alert(1)</script><img src=x onerror=alert(2)>\r\nBcc: x@evil\n";
        let v = crate::compare::compare(before, after).unwrap();
        let a = change(
            &source("Evil\r\nBcc: victim@example.org"),
            &v,
            before,
            after,
            "t",
            None,
        );
        assert!(
            !a.subject.contains('\r') && !a.subject.contains('\n'),
            "{:?}",
            a.subject
        );
        assert!(
            !a.html.contains("<script>") && !a.html.contains("<img"),
            "{}",
            a.html
        );
        assert!(a.html.contains("&lt;script&gt;"));
    }
}
