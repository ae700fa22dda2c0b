//! Plain data shared by the stages: what a source is, what a fetch returned,
//! what extraction produced, what a comparison found.
//!
//! Nothing here does I/O; the types only name the domain so that each stage's
//! signature says what flows in and out.

use std::sync::Arc;

use serde::Serialize;

/// One watched page, validated from `sources.toml`.
///
/// A catalog may hold 100,000 of these for the life of the daemon: lists
/// that many sources repeat (selectors, maintainers) are shared, not copied.
#[derive(Debug, Clone)]
pub struct Source {
    /// Stable key of the source's history (never the URL: editing a URL keeps history).
    pub id: String,
    /// The editors' name for it, when it has one other than its id (see [`Source::name`]).
    pub title: Option<String>,
    pub url: reqwest::Url,
    /// CSS selectors of the requirement sections (already validated).
    pub select: Arc<[String]>,
    /// CSS selectors removed before extraction.
    pub exclude: Arc<[String]>,
    /// Heading text where the requirement section starts.
    pub section: Option<String>,
    pub maintainers: Arc<[lettre::Address]>,
    pub language: Option<String>,
    /// Extra noise patterns: canonical lines they match are ignored.
    pub ignore: Vec<regex::Regex>,
    /// Daemon: this source's own schedule (else `[settings] schedule`).
    /// Boxed: a parsed schedule is large, and most sources have none.
    pub schedule: Option<Box<cron::Schedule>>,
    /// May redirect or resolve into loopback, private and link-local
    /// networks (a public source may not; see `fetch`).
    pub allow_private: bool,
    /// `render = "browser"`: the page is filled in by script; it is loaded
    /// in headless Chromium and its rendered DOM is read.
    pub render: Option<Render>,
}

impl Source {
    /// What editors call it: its `name`, else its id.
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }
}

/// How a script-rendered page is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Render {
    /// A CSS selector to wait for (else: the page's load, then a quiet moment).
    pub wait_for: Option<String>,
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
    /// `application/pdf`: read by the PDF reader, never decoded as text.
    Pdf,
}

/// A page as fetched and decoded.
#[derive(Debug, Clone)]
pub struct Page {
    pub final_url: String,
    pub status: u16,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The decoded body (HTML, or plain text when `kind` says so); empty
    /// for a PDF, whose bytes are in `raw`.
    pub html: String,
    /// A PDF's bytes (empty otherwise).
    pub raw: Vec<u8>,
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
    /// A status as stored (`as_str`'s words).
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Baseline,
            Status::Unchanged,
            Status::Changed,
            Status::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Baseline => "baseline",
            Status::Unchanged => "unchanged",
            Status::Changed => "changed",
            Status::Failed => "failed",
        }
    }
}

/// Where one recipient's copy of an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Owed; tried at its next attempt time.
    Pending,
    /// Handed to the server, its answer not yet recorded.
    Sending,
    Sent,
    /// Refused for good (a 5xx for that address); not retried.
    Rejected,
    /// Nobody to send it to yet: no maintainers, no `[email].to`.
    #[serde(rename = "no recipients")]
    NoRecipients,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::NoRecipients => "no recipients",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        use DeliveryStatus::*;
        [Pending, Sending, Sent, Rejected, NoRecipients]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// What kind of change a [`Change`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Fee,
    Duration,
    /// An age threshold in a rule ("children under 14").
    Age,
    /// An effective, start or deadline date ("from 1 June 2026").
    Date,
    DocumentAdded,
    DocumentRemoved,
    DocumentChanged,
    /// A country added to a list of nationalities: the value is its code.
    CountryAdded,
    CountryRemoved,
    Text,
}

impl ChangeKind {
    /// The kind as a table heading says it (alerts, the desk).
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::Fee => "Fee",
            ChangeKind::Duration => "Duration",
            ChangeKind::Age => "Age limit",
            ChangeKind::Date => "Effective date",
            ChangeKind::DocumentAdded => "Document added",
            ChangeKind::DocumentRemoved => "Document removed",
            ChangeKind::DocumentChanged => "Document changed",
            ChangeKind::CountryAdded => "Country added",
            ChangeKind::CountryRemoved => "Country removed",
            ChangeKind::Text => "Text",
        }
    }

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
            let s = s.map(human).unwrap_or_default();
            let s = s.as_str();
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
            ChangeKind::Date => value("effective date"),
            // "age limit 14 → 16 years": the unit once.
            ChangeKind::Age => match (&self.before, &self.after) {
                (Some(_), Some(_)) => {
                    let b = b.strip_suffix(" years").unwrap_or(&b);
                    format!("age limit {b} → {a}{ctx}")
                }
                _ => value("age limit"),
            },
            ChangeKind::DocumentAdded => format!("document added: {a}"),
            ChangeKind::DocumentRemoved => format!("document removed: {b}"),
            ChangeKind::DocumentChanged => format!("document changed: {b} → {a}"),
            // "country added: Montenegro (ME)": the name as the page writes it.
            ChangeKind::CountryAdded | ChangeKind::CountryRemoved => {
                let (what, code) = match self.kind {
                    ChangeKind::CountryAdded => ("added", &a),
                    _ => ("removed", &b),
                };
                match &self.context {
                    Some(name) if name != code => format!("country {what}: {name} ({code})"),
                    _ => format!("country {what}: {code}"),
                }
            }
            ChangeKind::Text => "text changed".into(),
        }
    }
}

/// A normal-form value as people read it: "1 year", not the JSON's "1 years".
pub fn human(value: &str) -> String {
    match value.split_once(' ') {
        Some(("1", unit)) if matches!(unit, "hours" | "days" | "weeks" | "months" | "years") => {
            format!("1 {}", unit.trim_end_matches('s'))
        }
        _ => value.to_string(),
    }
}

/// "1 source", "2 sources": a count and its noun, for people.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
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

/// A page read and reduced to its cleaned canonical text.
#[derive(Debug, Clone)]
pub struct Read {
    pub text: String,
    /// Fingerprint of the body this text came from (with the source's rules).
    pub body_hash: String,
    pub validators: Validators,
    pub http_status: u16,
    pub charset: &'static str,
}

impl Read {
    /// A read of `text` alone (a test, or a caller with only a text).
    pub fn of_text(text: &str) -> Read {
        Read {
            text: text.to_string(),
            body_hash: content_hash(text),
            validators: Validators::default(),
            http_status: 200,
            charset: "UTF-8",
        }
    }
}

/// Why a source gave no usable text: a stable reason (stored, and what
/// `--json` consumers can match on) and the message people read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

/// The stable reasons of a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Dns,
    Connect,
    Timeout,
    HttpStatus,
    BodyTooLarge,
    Redirect,
    PrivateNetwork,
    Decode,
    UnsupportedContentType,
    SelectorMatchedNothing,
    SectionNotFound,
    TooComplex,
    NotHtml,
    Extract,
    /// An error, maintenance or bot-check page served as a page.
    Transient,
    /// A sudden shrink not yet confirmed by enough checks.
    Suspect,
    /// A PDF with no text to read: encrypted, scanned, damaged, too long.
    Pdf,
    /// A `render = "browser"` page that the browser could not render.
    Browser,
    /// A bug met on this page (a crash while reading or comparing it).
    Internal,
    /// Never started: the run was stopping. Not recorded.
    Stopped,
    /// `respect_robots = true` and the host's robots.txt disallows the URL
    /// (or could not be read).
    Robots,
    Other,
}

impl Reason {
    /// The network between visawatch and the host failed (no answer at
    /// all), as opposed to the host answering wrongly.
    pub fn is_network(self) -> bool {
        matches!(self, Reason::Dns | Reason::Connect)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Redirect => "redirect",
            Reason::PrivateNetwork => "private_network",
            Reason::Decode => "decode",
            Reason::UnsupportedContentType => "unsupported_content_type",
            Reason::SelectorMatchedNothing => "selector_matched_nothing",
            Reason::SectionNotFound => "section_not_found",
            Reason::TooComplex => "too_complex",
            Reason::Pdf => "pdf",
            Reason::Browser => "browser",
            Reason::NotHtml => "not_html",
            Reason::Extract => "extract",
            Reason::Transient => "transient",
            Reason::Suspect => "suspect",
            Reason::Internal => "internal",
            Reason::Stopped => "stopped",
            Reason::Robots => "robots",
            Reason::Other => "other",
        }
    }
}

/// What fetching and extracting one source gave, before it is judged.
#[derive(Debug, Clone)]
pub enum Reading {
    Text(Read),
    /// 304, or a body identical to the last good one.
    NotModified,
    /// A text that shrank suspiciously, still so after a re-fetch.
    Suspect(Read, Failure),
    Failed(Failure),
}

/// What happened to a source in one check.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The first text of a source.
    Baseline(Read),
    /// Nothing a reader would call a change; `None` when nothing was read
    /// (304, or the same body as last time).
    Unchanged(Option<Read>),
    Changed(Read, Verdict),
    /// No new text; the last good snapshot stays. `suspect_hash`: the text
    /// held back as a suspect shrink, to confirm on later checks.
    Failed {
        failure: Failure,
        suspect_hash: Option<String>,
    },
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Baseline(_) => Status::Baseline,
            Outcome::Unchanged(_) => Status::Unchanged,
            Outcome::Changed(..) => Status::Changed,
            Outcome::Failed { .. } => Status::Failed,
        }
    }

    /// The text read in this check, if any.
    pub fn read(&self) -> Option<&Read> {
        match self {
            Outcome::Baseline(r) | Outcome::Changed(r, _) | Outcome::Unchanged(Some(r)) => Some(r),
            _ => None,
        }
    }

    /// A text that `<id>.txt` does not hold yet.
    pub fn new_text(&self) -> Option<&str> {
        match self {
            Outcome::Baseline(r) | Outcome::Changed(r, _) => Some(&r.text),
            _ => None,
        }
    }

    pub fn verdict(&self) -> Option<&Verdict> {
        match self {
            Outcome::Changed(_, v) => Some(v),
            _ => None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// One source's check as it is recorded, in one transaction: the outcome,
/// the alerts it causes and the change of the source's health.
#[derive(Debug, Clone)]
pub struct Check {
    pub source_id: String,
    pub name: String,
    pub url: String,
    pub started_at: Time,
    pub duration_ms: u64,
    pub outcome: Outcome,
    /// Alerts caused by this outcome, queued in the same transaction.
    pub alerts: Vec<Queued>,
    /// `Some(true)`: the source is now blind (its failure alert is queued);
    /// `Some(false)`: it reads again.
    pub blind: Option<bool>,
}

/// A source's recent health, for failure alerts.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Failed checks since the last good one.
    pub failures_in_a_row: u32,
    /// Set while a "can no longer read" alert is outstanding.
    pub blind_since: Option<String>,
    pub last_ok_at: Option<String>,
}

/// A host's robots.txt as fetched (`respect_robots`), kept a day per
/// origin (`https://host:port`) so each host is asked once a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotsFile {
    pub origin: String,
    pub fetched_at: String,
    /// 2xx: `body` holds the rules; another status: no rules (all allowed).
    pub status: u16,
    pub body: Vec<u8>,
}

/// The last good snapshot of a source.
#[derive(Debug, Clone)]
pub struct Previous {
    pub text: String,
    pub hash: String,
    pub validators: Validators,
}

/// What a fetch needs of a source's last good check.
#[derive(Debug, Clone)]
pub struct Known {
    pub validators: Validators,
    /// Bytes of the stored canonical text (for the shrink check).
    pub text_len: usize,
    /// How `<id>.txt` looked when last written (`None`: not written since
    /// its text changed, or never).
    pub file_stamp: Option<String>,
    /// The fingerprint of the last body read (32 bytes, not its 64 hex
    /// digits: a run holds one for each of its sources at once).
    pub body_hash: Option<blake3::Hash>,
}

/// How an alert's Message-ID is made: `notify`'s policy, handed to the
/// store, which calls it inside the transaction that queues the alert with
/// the row's sequence number (`seq`), so the id is unique and never changes
/// across retries.
pub type MessageIdFn = fn(q: &Queued, source_id: Option<&str>, created_at: &str, seq: i64) -> String;

/// An alert with its envelope, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub alert: Alert,
    /// The `From:` mailbox, formatted.
    pub from: String,
    pub recipients: Vec<lettre::Address>,
    /// One body per webhook that wants this alert (`[[webhook]]`).
    pub hooks: Vec<HookQueued>,
}

/// A webhook delivery to queue with an alert: the webhook's name (its URL
/// and secret stay in the config) and the body it will receive.
#[derive(Debug, Clone, PartialEq)]
pub struct HookQueued {
    pub webhook: String,
    pub event: &'static str,
    pub body: String,
}

/// An outbox message with the recipients still owed it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub outbox_id: i64,
    pub source_id: Option<String>,
    pub kind: String,
    pub created_at: String,
    pub message_id: String,
    pub thread_root: Option<String>,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Everyone in `To:`.
    pub to: Vec<lettre::Address>,
    /// (delivery id, recipient, attempts so far) still pending.
    pub pending: Vec<(i64, lettre::Address, u32)>,
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
    /// Most hosts unreachable at once: this machine's network, not the sources.
    Network,
    /// The network reaches the sources again after [`AlertKind::Network`].
    NetworkBack,
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
            AlertKind::Network => "network",
            AlertKind::NetworkBack => "network_back",
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

/// A moment, always in UTC. Times are compared as this type; they become
/// text only where they are stored or shown ([`stamp`]).
pub type Time = chrono::DateTime<chrono::Utc>;

/// A time as stored and shown: RFC 3339, UTC, whole seconds
/// (`2026-11-30T06:00:00Z`).
pub fn stamp(t: &Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Content hash of a canonical text (snapshots are deduplicated by it).
pub fn content_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The first rows of a list, and how many rows the whole list has: what
/// a digest shows of a week that changed 10,000 sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    pub rows: Vec<T>,
    pub total: usize,
}

impl<T> Listed<T> {
    /// Rows left out.
    pub fn more(&self) -> usize {
        self.total.saturating_sub(self.rows.len())
    }
}
