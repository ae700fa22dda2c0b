//! Human-readable renderings of run reports, histories and source lists.
//! (`--json` serializes the same structs directly.)

use std::fmt::Write;

use crate::config::Config;
use crate::facts::Facts;
use std::io::IsTerminal;

use serde::Serialize;

use crate::model::{Change, DeliveryStatus, Status};
use crate::store::{HistoryRow, OutboxRow};

/// The report of one run; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub started_at: String,
    pub finished_at: String,
    /// One line per source checked; empty when the run kept only the
    /// counts below (the daemon).
    pub sources: Vec<SourceReport>,
    /// Sources checked and, of them, failed.
    #[serde(skip)]
    pub checked: usize,
    #[serde(skip)]
    pub failed: usize,
    pub alerts: AlertCounts,
    /// Where alerts went (human output only).
    #[serde(skip)]
    pub delivered_to: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub id: String,
    pub url: String,
    pub status: Status,
    pub material: bool,
    pub error: Option<String>,
    pub changes: Vec<Change>,
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AlertCounts {
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
    /// Of `failed`: alerts nobody is configured to receive (human output only).
    #[serde(skip)]
    pub unaddressed: usize,
    /// Of `failed`: alerts the mail server refused for good (not retried).
    #[serde(skip)]
    pub rejected: usize,
    /// Webhook deliveries, when `[[webhook]]`s are configured: sent, and
    /// not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_sent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_failed: Option<usize>,
}

impl RunReport {
    pub fn any_failed(&self) -> bool {
        self.sources.iter().any(|s| s.status == Status::Failed)
    }
}

/// A progress bar on stderr while a run checks its sources (hidden
/// unless wanted and stderr is a terminal). Log lines written meanwhile
/// through [`LogWriter`] clear it and draw it again below them.
pub fn progress_bar(wanted: bool, len: usize) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} checking sources {pos}/{len} {wide_bar} {elapsed}",
        )
        .expect("valid template"),
    );
    *SHOWN_BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.downgrade());
    bar
}

/// The progress bar on screen, if any: log lines must go around it.
static SHOWN_BAR: std::sync::Mutex<Option<indicatif::WeakProgressBar>> = std::sync::Mutex::new(None);

/// Stderr for log lines. A line written straight to the terminal under a
/// progress bar leaves the bar's old frame behind; this one hides the bar,
/// writes, and lets the bar redraw itself below.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = SHOWN_BAR
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|weak| weak.upgrade())
            .filter(|bar| !bar.is_finished());
        match bar {
            // The formatter hands over a whole line at once.
            Some(bar) => bar
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One line per source and a summary line.
pub fn human(report: &RunReport) -> String {
    let mut out = String::new();
    let width = report.sources.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &report.sources {
        let detail = match s.status {
            Status::Failed => s.error.clone().unwrap_or_default(),
            Status::Changed => {
                let what: Vec<String> = s.changes.iter().map(Change::describe).collect();
                format!(
                    "{}{}",
                    if s.material { "MATERIAL: " } else { "" },
                    what.join("; ")
                )
            }
            Status::Baseline => "first snapshot stored".into(),
            Status::Unchanged => String::new(),
        };
        let _ = writeln!(out, "{:<9} {:<width$}  {}", s.status.as_str(), s.id, detail);
    }
    let count = |st| report.sources.iter().filter(|s| s.status == st).count();
    let _ = writeln!(
        out,
        "{}: {} baseline, {} unchanged, {} changed ({} material), {} failed",
        crate::model::count(report.sources.len(), "source"),
        count(Status::Baseline),
        count(Status::Unchanged),
        count(Status::Changed),
        report.sources.iter().filter(|s| s.material).count(),
        count(Status::Failed),
    );
    let a = &report.alerts;
    if a.queued + a.sent + a.failed > 0 {
        let _ = writeln!(
            out,
            "alerts: {} queued, {} sent, {} not delivered{}",
            a.queued,
            a.sent,
            a.failed,
            report
                .delivered_to
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        if a.unaddressed > 0 {
            let _ = writeln!(
                out,
                "  {} wait for recipients (no recipients configured): add maintainers or [email].to; \
                 they go out at the next run",
                a.unaddressed
            );
        }
        if a.rejected > 0 {
            let _ = writeln!(
                out,
                "  {} refused for good by the mail server (not retried): `visawatch outbox` shows its answer",
                a.rejected
            );
        }
        if a.failed > a.unaddressed + a.rejected {
            let _ = writeln!(
                out,
                "  {} wait in the outbox and are retried: see `visawatch outbox`",
                a.failed - a.unaddressed - a.rejected
            );
        }
    }
    out
}

/// A row of `visawatch status`.
#[derive(Debug, serde::Serialize)]
pub struct StatusRow {
    pub id: String,
    pub last_check: Option<String>,
    pub status: Option<Status>,
    pub error: Option<String>,
    /// RFC 3339; now or earlier when the source is overdue.
    pub next_due: String,
    pub failures_in_a_row: u32,
    pub pending_alerts: u32,
    /// Alerts queued while nobody was configured to receive them.
    pub waiting_for_recipients: u32,
}

/// `visawatch status`: one line per source.
pub fn status(rows: &[StatusRow]) -> String {
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!(
        "{:<width$}  {:<20}  {:<9}  {:<20}  {:>8}  {:>7}\n",
        "id", "last check", "status", "next due", "failures", "pending"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:<20}  {:<9}  {:<20}  {:>8}  {:>7}{}{}",
            r.id,
            r.last_check.as_deref().unwrap_or("never"),
            r.status.map_or("-", Status::as_str),
            r.next_due,
            r.failures_in_a_row,
            r.pending_alerts + r.waiting_for_recipients,
            if r.waiting_for_recipients > 0 {
                format!(
                    "\n  {} alert(s) wait: no recipients configured (add maintainers or [email].to)",
                    r.waiting_for_recipients
                )
            } else {
                String::new()
            },
            r.error
                .as_deref()
                .map(|e| format!("\n  last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}

/// `visawatch outbox`: one line per undelivered recipient.
pub fn outbox(rows: &[OutboxRow], hooks: &[crate::store::HookRow]) -> String {
    if rows.is_empty() && hooks.is_empty() {
        return "outbox empty: every alert was delivered\n".into();
    }
    let mut out = String::new();
    // Webhook deliveries beside the emails: the webhook's name, never its URL.
    for h in hooks {
        let when = match h.status.as_str() {
            "pending" if h.attempts == 0 => "not tried yet: goes out at the next run".to_string(),
            "pending" => format!(
                "next try {}",
                chrono::DateTime::from_timestamp(h.next_attempt_at, 0)
                    .map(|t| crate::model::stamp(&t))
                    .unwrap_or_default()
            ),
            "sending" => "posted; the answer was not recorded (sent again, same webhook-id)".to_string(),
            _ => "rejected, not retried".to_string(),
        };
        let _ = writeln!(
            out,
            "#{:<4} {:<9} {:<28} {} attempts, {}  {} of {}{}",
            h.id,
            h.status,
            format!("webhook {}", h.webhook),
            h.attempts,
            when,
            h.event,
            h.source_id.as_deref().unwrap_or("-"),
            h.last_error
                .as_deref()
                .map(|e| format!("\n      last error: {e}"))
                .unwrap_or_default()
        );
    }
    for r in rows {
        let when = match r.status {
            DeliveryStatus::Pending if r.attempts == 0 => "not tried yet: goes out at the next run".into(),
            DeliveryStatus::Pending => format!("next try {}", r.next_attempt_at),
            DeliveryStatus::Sending => "handed to the server; its answer was not recorded".into(),
            DeliveryStatus::Sent => "sent".into(),
            DeliveryStatus::Rejected => "rejected, not retried".into(),
            DeliveryStatus::NoRecipients => "nobody to send it to: add maintainers or [email].to".into(),
        };
        let _ = writeln!(
            out,
            "#{:<4} {:<9} {:<28} {} attempts, {}  {}{}",
            r.outbox_id,
            r.status.as_str(),
            r.recipient,
            r.attempts,
            when,
            r.subject,
            r.last_error
                .as_deref()
                .map(|e| format!("\n      last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}

pub fn history(rows: &[HistoryRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let detail = match (&r.error, r.changes.is_empty()) {
            (Some(e), _) => e.clone(),
            (None, false) => {
                let what: Vec<String> = r.changes.iter().map(Change::describe).collect();
                format!(
                    "{}{}",
                    if r.material == Some(true) {
                        "MATERIAL: "
                    } else {
                        ""
                    },
                    what.join("; ")
                )
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "{}  {:<9} {}", r.started_at, r.status.as_str(), detail);
    }
    out
}

/// Each source with what it watches and when the daemon checks it next
/// after `now` (by its schedule, before the daemon's jitter).
pub fn sources(config: &Config, now: crate::model::Time) -> String {
    let mut out = String::new();
    let describe = |schedule: &cron::Schedule, own: &str| {
        let next = schedule
            .after(&now)
            .next()
            .map_or_else(|| "never".to_string(), |t| crate::model::stamp(&t));
        format!("    schedule: \"{schedule}\"{own} UTC, next run {next}")
    };
    // The default schedule's line, worked out once for all its sources.
    let default = describe(&config.schedule, " (default)");
    for s in &config.sources {
        let _ = writeln!(out, "{}  {}\n    {}", s.id, s.name(), s.url);
        match &s.schedule {
            Some(own) => {
                let _ = writeln!(out, "{}", describe(own, ""));
            }
            None => {
                let _ = writeln!(out, "{default}");
            }
        }
        if !s.select.is_empty() {
            let _ = writeln!(out, "    select: {}", s.select.join(", "));
        }
        if let Some(sec) = &s.section {
            let _ = writeln!(out, "    section: {sec}");
        }
    }
    let _ = writeln!(
        out,
        "{} OK in {}",
        crate::model::count(config.sources.len(), "source"),
        config.path.display()
    );
    out
}

/// The facts of a text, grouped, each with its context.
pub fn facts(f: &Facts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fees ({}):", f.fees.len());
    for x in &f.fees {
        let _ = writeln!(
            out,
            "  {:<14} {}",
            crate::model::human(&x.value.to_string()),
            x.context
        );
    }
    let _ = writeln!(out, "durations ({}):", f.durations.len());
    for x in &f.durations {
        let _ = writeln!(
            out,
            "  {:<14} {}",
            crate::model::human(&x.value.to_string()),
            x.context
        );
    }
    let _ = writeln!(out, "ages ({}):", f.ages.len());
    for x in &f.ages {
        let _ = writeln!(out, "  {:<14} {}", x.value.to_string(), x.context);
    }
    let _ = writeln!(out, "dates ({}):", f.dates.len());
    for x in &f.dates {
        let _ = writeln!(out, "  {:<14} {}", x.value.to_string(), x.context);
    }
    let _ = writeln!(out, "documents ({}):", f.documents.len());
    let mut last = None;
    for d in &f.documents {
        if last != Some(&d.context) {
            let _ = writeln!(out, "  [{}]", d.context);
            last = Some(&d.context);
        }
        let _ = writeln!(out, "  - {}", d.text);
    }
    let _ = writeln!(out, "countries ({}):", f.countries.len());
    let mut last = None;
    for c in &f.countries {
        if last != Some(&c.context) {
            let _ = writeln!(out, "  [{}]", c.context);
            last = Some(&c.context);
        }
        let _ = writeln!(out, "  {:<14} {}", c.code, c.name);
    }
    out
}

/// `visawatch prune`: what went and what the file weighs now.
pub fn pruned(p: &crate::store::Pruned, keep_days: u32) -> String {
    let mb = |b: u64| b as f64 / 1_048_576.0;
    format!(
        "pruned {} unchanged or failed checks older than {keep_days} days, {} unreferenced snapshots, \
         {} delivered alerts older than a year, {} expired sessions\n\
         database: {:.1} MB -> {:.1} MB\n",
        p.checks,
        p.snapshots,
        p.alerts,
        p.sessions,
        mb(p.bytes_before),
        mb(p.bytes_after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: DeliveryStatus, attempts: u32, next: &str) -> OutboxRow {
        OutboxRow {
            outbox_id: 1,
            source_id: Some("xk".into()),
            kind: "change".into(),
            subject: "[visawatch] Kosovo: fee 50 EUR → 65 EUR".into(),
            created_at: "2026-11-30T06:00:00Z".into(),
            recipient: "ed@example.org".into(),
            status,
            attempts,
            next_attempt_at: next.into(),
            last_error: None,
        }
    }

    /// Issue 12: a delivery never tried said "next try 1970-01-01T00:00:00Z".
    #[test]
    fn an_untried_delivery_is_not_dated_1970() {
        let out = outbox(&[row(DeliveryStatus::Pending, 0, "1970-01-01T00:00:00Z")], &[]);
        assert!(out.contains("not tried yet") && !out.contains("1970"), "{out}");
        let out = outbox(&[row(DeliveryStatus::Pending, 2, "2026-11-30T07:00:00Z")], &[]);
        assert!(out.contains("next try 2026-11-30T07:00:00Z"), "{out}");
    }
}
