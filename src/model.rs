//! Plain data shared by the stages: what a source is, what a fetch returned,
//! what extraction produced, what a comparison found.
//!
//! Nothing here does I/O; the types only name the domain so that each stage's
//! signature says what flows in and out.

use serde::Serialize;

/// One watched page, validated from `sources.toml`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Stable key of the source's history (never the URL: editing a URL keeps history).
    pub id: String,
    pub name: String,
    pub url: reqwest::Url,
    /// CSS selectors of the requirement sections (already validated).
    pub select: Vec<String>,
    /// CSS selectors removed before extraction.
    pub exclude: Vec<String>,
    /// Heading text where the requirement section starts.
    pub section: Option<String>,
    pub maintainers: Vec<String>,
    pub language: Option<String>,
    /// Extra noise patterns: canonical lines they match are ignored.
    pub ignore: Vec<regex::Regex>,
    /// Daemon: this source's own schedule (else `[settings] schedule`).
    pub schedule: Option<cron::Schedule>,
    /// May redirect or resolve into loopback, private and link-local
    /// networks (a public source may not; see `fetch`).
    pub allow_private: bool,
}

/// How the fetched bytes were turned into text, and who decided the charset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CharsetSource {
    Bom,
    Http,
    Meta,
    Detected,
}

/// What a body is, decided by its `Content-Type` and its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// HTML or XHTML.
    Html,
    /// `text/plain`: paragraphs become lines.
    Text,
}

/// A page as fetched and decoded.
#[derive(Debug, Clone)]
pub struct Page {
    pub final_url: String,
    pub status: u16,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The decoded body (HTML, or plain text when `kind` says so).
    pub html: String,
    pub kind: BodyKind,
    pub charset: &'static str,
    pub charset_source: CharsetSource,
    pub bytes: usize,
}

/// Validators remembered from the last good fetch, sent as a conditional GET.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Result of a fetch that reached the server and got a usable answer.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// 200 with a body.
    Page(Page),
    /// 304: the server says nothing changed since the stored validators.
    NotModified,
}

/// The verdict for one source in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Baseline,
    Unchanged,
    Changed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Baseline => "baseline",
            Status::Unchanged => "unchanged",
            Status::Changed => "changed",
            Status::Failed => "failed",
        }
    }
}

/// What kind of change a [`Change`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Fee,
    Duration,
    DocumentAdded,
    DocumentRemoved,
    DocumentChanged,
    Text,
}

impl ChangeKind {
    /// Fee, duration and document changes are what editors must act on.
    pub fn is_material(self) -> bool {
        !matches!(self, ChangeKind::Text)
    }
}

/// One reported difference between the previous and the new snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub before: Option<String>,
    pub after: Option<String>,
    pub context: Option<String>,
}

impl Change {
    /// "fee 50 EUR → 65 EUR (Application fee)": one line for reports and alerts.
    pub fn describe(&self) -> String {
        self.phrase(None, true)
    }

    /// The change in words: values cut to `max` characters when given, the
    /// context in brackets when `context` (subjects leave it out).
    pub fn phrase(&self, max: Option<usize>, context: bool) -> String {
        let cut = |s: Option<&str>| {
            let s = s.unwrap_or("");
            match max {
                Some(m) if s.chars().count() > m => s.chars().take(m - 1).collect::<String>() + "…",
                _ => s.to_string(),
            }
        };
        let (b, a) = (cut(self.before.as_deref()), cut(self.after.as_deref()));
        let ctx = match (&self.context, context) {
            (Some(c), true) => format!(" ({c})"),
            _ => String::new(),
        };
        let value = |what: &str| match (&self.before, &self.after) {
            (Some(_), Some(_)) => format!("{what} {b} → {a}{ctx}"),
            (None, _) => format!("{what} added: {a}{ctx}"),
            (_, None) => format!("{what} removed: {b}{ctx}"),
        };
        match self.kind {
            ChangeKind::Fee => value("fee"),
            ChangeKind::Duration => value("duration"),
            ChangeKind::DocumentAdded => format!("document added: {a}"),
            ChangeKind::DocumentRemoved => format!("document removed: {b}"),
            ChangeKind::DocumentChanged => format!("document changed: {b} → {a}"),
            ChangeKind::Text => "text changed".into(),
        }
    }
}

/// Outcome of comparing a new canonical text with the stored one.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub changes: Vec<Change>,
    pub material: bool,
    /// Unified line diff of the canonical texts.
    pub diff: String,
    /// The same diff with changed words marked `[-old-]{+new+}`.
    pub word_diff: String,
}

/// Why an alert was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A material change of a source.
    Change,
    /// A source failed `failure_alert_after` checks in a row.
    Blind,
    /// A blind source reads again.
    Recovered,
    /// The weekly digest.
    Digest,
    /// `visawatch test-email`.
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Change => "change",
            AlertKind::Blind => "blind",
            AlertKind::Recovered => "recovered",
            AlertKind::Digest => "digest",
            AlertKind::Test => "test",
        }
    }
}

/// A rendered alert, ready to be queued.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    pub subject: String,
    pub text: String,
    pub html: String,
}
