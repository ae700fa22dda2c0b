//! `sources.toml` → validated [`Config`]: settings with defaults and the list
//! of [`Source`]s.
//!
//! Everything a run could trip over later is checked here, at load, and
//! reported with the file, line and column and the source id: unknown keys,
//! duplicate or malformed ids, bad URLs, CSS selectors that do not parse, bad
//! regexes. This module does not touch the network or the data folder.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::model::Source;

/// Fetch and run settings (`[settings]`), all optional.
#[derive(Debug, Clone)]
pub struct Settings {
    pub user_agent: String,
    /// `render = "browser"` sources: the Chromium to run (else found on the PATH).
    pub browser: Option<PathBuf>,
    /// Rendered pages loaded at once.
    pub browser_tabs: usize,
    pub timeout_secs: u64,
    /// Sources fetched at once.
    pub concurrency: usize,
    /// A PDF with more pages fails (`pdf`): real fee schedules have a few.
    pub max_pdf_pages: usize,
    /// Requests at once to one host.
    pub per_host: usize,
    /// Least time between the starts of two requests to one host.
    pub per_host_gap_ms: u64,
    pub max_body_bytes: u64,
    /// Send If-None-Match / If-Modified-Since from the last good fetch.
    pub conditional_get: bool,
    /// Retries after a connect error, a timeout, 429 or 5xx.
    pub retries: u32,
    /// First retry delay in milliseconds; doubles each retry.
    pub retry_backoff_ms: u64,
    /// Failed checks in a row before maintainers hear that a source is unreadable.
    pub failure_alert_after: u32,
    /// Daemon: when every source is checked (cron, seconds first, UTC).
    pub schedule: String,
    /// Daemon: when the weekly digest goes to `[email].to` (cron, UTC).
    pub digest_schedule: String,
    /// Daemon: how long in-flight checks may finish after SIGTERM.
    pub grace_secs: u64,
    /// Daemon: sources due together start up to this many seconds apart
    /// (random per source), so one host is not hit at the same second.
    pub jitter_secs: u64,
    /// Unchanged and failed checks older than this many days are pruned
    /// (changes, their snapshots and reviews never are).
    pub keep_checks_days: u32,
    /// Fetch `robots.txt` (once per host a day) and skip what it disallows.
    pub respect_robots: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            user_agent: concat!("visawatch/", env!("CARGO_PKG_VERSION")).to_string(),
            browser: None,
            browser_tabs: 2,
            timeout_secs: 30,
            concurrency: 8,
            max_pdf_pages: 200,
            per_host: 2,
            per_host_gap_ms: 0,
            max_body_bytes: 10 * 1024 * 1024,
            conditional_get: true,
            retries: 2,
            retry_backoff_ms: 500,
            failure_alert_after: 3,
            schedule: "0 0 6 * * *".into(),
            digest_schedule: "0 0 8 * * Mon".into(),
            grace_secs: 30,
            jitter_secs: 5,
            keep_checks_days: 400,
            respect_robots: false,
        }
    }
}

/// `[settings]` as written, with positions for messages. Numbers are read
/// wide (i64) so that an absurd value is a range error naming its line, not
/// a panic later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    user_agent: Option<Spanned<String>>,
    browser: Option<PathBuf>,
    browser_tabs: Option<Spanned<i64>>,
    timeout_secs: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    max_pdf_pages: Option<Spanned<i64>>,
    per_host: Option<Spanned<i64>>,
    per_host_gap_ms: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    conditional_get: Option<bool>,
    retries: Option<Spanned<i64>>,
    retry_backoff_ms: Option<Spanned<i64>>,
    failure_alert_after: Option<Spanned<i64>>,
    schedule: Option<String>,
    digest_schedule: Option<String>,
    grace_secs: Option<Spanned<i64>>,
    jitter_secs: Option<Spanned<i64>>,
    keep_checks_days: Option<Spanned<i64>>,
    respect_robots: Option<bool>,
}

/// The longest source id: it names `<id>.txt` and appears in subjects.
pub const MAX_ID_LEN: usize = 64;

/// Validates `[settings]`: every number within a range a run can live with.
fn settings(raw: RawSettings, text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Setting {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let num = |v: Option<Spanned<i64>>, key: &str, min: i64, max: i64, default: u64| match v {
        None => Ok(default),
        Some(v) => {
            let span = v.span();
            let n = v.into_inner();
            if (min..=max).contains(&n) {
                Ok(n as u64)
            } else {
                Err(at(span, format!("{key} = {n} is out of range ({min} to {max})")))
            }
        }
    };
    s.timeout_secs = num(raw.timeout_secs, "timeout_secs", 1, 3600, s.timeout_secs)?;
    s.concurrency = num(raw.concurrency, "concurrency", 1, 1024, s.concurrency as u64)? as usize;
    s.max_pdf_pages = num(
        raw.max_pdf_pages,
        "max_pdf_pages",
        1,
        10_000,
        s.max_pdf_pages as u64,
    )? as usize;
    s.per_host = num(raw.per_host, "per_host", 1, 256, s.per_host as u64)? as usize;
    s.per_host_gap_ms = num(
        raw.per_host_gap_ms,
        "per_host_gap_ms",
        0,
        60_000,
        s.per_host_gap_ms,
    )?;
    s.max_body_bytes = num(raw.max_body_bytes, "max_body_bytes", 1, 1 << 30, s.max_body_bytes)?;
    s.retries = num(raw.retries, "retries", 0, 10, s.retries.into())? as u32;
    s.retry_backoff_ms = num(
        raw.retry_backoff_ms,
        "retry_backoff_ms",
        0,
        600_000,
        s.retry_backoff_ms,
    )?;
    s.failure_alert_after = num(
        raw.failure_alert_after,
        "failure_alert_after",
        0,
        10_000,
        s.failure_alert_after.into(),
    )? as u32;
    s.grace_secs = num(raw.grace_secs, "grace_secs", 0, 3600, s.grace_secs)?;
    s.jitter_secs = num(raw.jitter_secs, "jitter_secs", 0, 86_400, s.jitter_secs)?;
    s.keep_checks_days = num(
        raw.keep_checks_days,
        "keep_checks_days",
        1,
        36_500,
        s.keep_checks_days.into(),
    )? as u32;
    s.browser_tabs = num(raw.browser_tabs, "browser_tabs", 1, 16, s.browser_tabs as u64)? as usize;
    s.browser = raw.browser;
    if let Some(ua) = raw.user_agent {
        let span = ua.span();
        let ua = ua.into_inner();
        // What an HTTP header value may hold: visible ASCII and spaces.
        if ua.trim().is_empty() || ua.len() > 256 || !ua.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(at(
                span,
                "user_agent must be 1 to 256 printable ASCII characters (no line breaks or control characters)"
                    .into(),
            ));
        }
        s.user_agent = ua;
    }
    if let Some(v) = raw.conditional_get {
        s.conditional_get = v;
    }
    if let Some(v) = raw.respect_robots {
        s.respect_robots = v;
    }
    if let Some(v) = raw.schedule {
        s.schedule = v;
    }
    if let Some(v) = raw.digest_schedule {
        s.digest_schedule = v;
    }
    Ok(s)
}

/// Where alerts go (`[email]`). Without the section, alerts are still
/// written, as `.eml` files in the data folder's `outbox/`.
#[derive(Debug, Clone)]
pub struct Email {
    /// `"visawatch <alerts@example.org>"`, validated.
    pub from: lettre::message::Mailbox,
    /// Receive every alert, besides each source's maintainers.
    pub to: Vec<lettre::Address>,
    /// `smtp://` or `smtps://`; `None` writes `.eml` files instead.
    pub smtp: Option<Smtp>,
    /// First redelivery delay after a failed send; doubles each attempt.
    pub retry_backoff_secs: u64,
}

/// A validated `smtp_url`. Credentials never live here: they come from
/// `VISAWATCH_SMTP_USERNAME` / `VISAWATCH_SMTP_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte; `smtp://`: STARTTLS when offered.
    pub implicit_tls: bool,
    /// Extra PEM root certificate (a private relay's CA).
    pub tls_ca_file: Option<PathBuf>,
    /// Send credentials over a connection without TLS (dangerous: anyone
    /// on the path reads the password). Off unless the operator says so.
    pub allow_insecure_auth: bool,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            from: "visawatch <visawatch@localhost>".parse().expect("static mailbox"),
            to: Vec::new(),
            smtp: None,
            retry_backoff_secs: 60,
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: Settings,
    /// `settings.schedule`, parsed.
    pub schedule: cron::Schedule,
    /// `settings.digest_schedule`, parsed.
    pub digest_schedule: cron::Schedule,
    pub email: Email,
    /// `[web]`: the editors' desk (served by `daemon` when present, and by `serve`).
    pub web: Option<Web>,
    pub sources: Vec<Source>,
    /// `[[webhook]]`: chat and machine receivers of alerts.
    pub webhooks: Vec<Webhook>,
    /// Positions in `sources`, in the order of their ids (a lookup per
    /// alert over 100,000 sources was a scan each): sorted while the file
    /// is read, which is how repeated ids are found.
    by_id: Vec<u32>,
}

/// A webhook alerts go to besides email (`[[webhook]]`).
#[derive(Clone)]
pub struct Webhook {
    /// Unique, `[a-z0-9-]`: the name in the outbox and in logs.
    pub name: String,
    /// Where to POST. Slack and Teams URLs carry a token: never log it
    /// ([`Webhook::redacted_url`]).
    pub url: reqwest::Url,
    pub format: HookFormat,
    /// The signing key of a `json` webhook (decoded from `whsec_…`).
    pub secret: Option<Vec<u8>>,
    /// Source ids or globs (`xk-*`); empty: every source.
    pub sources: Vec<String>,
    pub events: Vec<HookEvent>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL's token nor the secret reaches a log.
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Whether this webhook wants `event` of `source` (`None`: not about
    /// one source).
    pub fn wants(&self, source: Option<&str>, event: HookEvent) -> bool {
        self.events.contains(&event)
            && (self.sources.is_empty()
                || source.is_some_and(|id| self.sources.iter().any(|g| glob_match(g, id))))
    }

    /// The URL as it may be shown: scheme, host and port only.
    pub fn redacted_url(&self) -> String {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{port}/…",
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        )
    }
}

/// `*` matches any run of characters; nothing else is special.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// What a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookFormat {
    /// Standard Webhooks: signed JSON.
    Json,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Teams Workflows message with an Adaptive Card.
    Teams,
}

/// The events a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    Change,
    SourceDown,
    SourceRecovered,
}

impl HookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::Change => "change",
            HookEvent::SourceDown => "source_down",
            HookEvent::SourceRecovered => "source_recovered",
        }
    }

    pub fn parse(s: &str) -> Option<HookEvent> {
        [
            HookEvent::Change,
            HookEvent::SourceDown,
            HookEvent::SourceRecovered,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The editors' desk's settings.
#[derive(Debug, Clone)]
pub struct Web {
    /// Where the desk listens; loopback unless the operator says otherwise.
    pub listen: std::net::SocketAddr,
    /// The desk's public address, for links in emails and feeds (no
    /// trailing slash). Cookies are `Secure` when it is https.
    pub base_url: Option<String>,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_url: None,
        }
    }
}

impl Config {
    /// The desk's address for `path` (`/changes/7`), when `base_url` is set.
    pub fn desk_link(&self, path: &str) -> Option<String> {
        let base = self.web.as_ref()?.base_url.as_ref()?;
        Some(format!("{base}{path}"))
    }

    /// The source with this id.
    pub fn source(&self, id: &str) -> Option<&Source> {
        let by_id = self.by_id();
        by_id
            .binary_search_by(|&i| self.sources[i as usize].id.as_str().cmp(id))
            .ok()
            .map(|at| &self.sources[by_id[at] as usize])
    }

    /// Positions in `sources`, in the order of their ids: 4 bytes a
    /// source, where a map of ids would copy each id.
    pub fn by_id(&self) -> &[u32] {
        &self.by_id
    }

    /// Who receives an alert about `source_id` now: its maintainers (while
    /// the source is still configured) and `[email].to`, each once. Decided
    /// at delivery, so an alert queued while nobody was configured goes out
    /// once someone is.
    pub fn recipients(&self, source_id: Option<&str>) -> Vec<lettre::Address> {
        let maintainers = source_id
            .and_then(|id| self.source(id))
            .map(|s| s.maintainers.to_vec())
            .unwrap_or_default();
        let mut out: Vec<lettre::Address> = Vec::new();
        for r in maintainers.into_iter().chain(self.email.to.iter().cloned()) {
            let same = |x: &lettre::Address| AsRef::<str>::as_ref(x).eq_ignore_ascii_case(r.as_ref());
            if !out.iter().any(same) {
                out.push(r);
            }
        }
        out
    }

    /// A source's own schedule, else the global one.
    pub fn schedule_of<'a>(&'a self, source: &'a Source) -> &'a cron::Schedule {
        source.schedule.as_deref().unwrap_or(&self.schedule)
    }
}

/// Parses a cron expression as the `cron` crate wants it: 6 or 7 fields,
/// seconds first. Its own error for a 5-field crontab line is empty, so
/// explain the field order here.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let order = "fields are `sec min hour day-of-month month day-of-week [year]`, e.g. \"0 0 6 * * *\" \
                 (daily 06:00 UTC) or \"0 30 7 * * Mon-Fri\"; use day names: numbers count 1 = Sunday";
    if !(6..=7).contains(&fields) {
        return Err(format!("schedule `{expr}` has {fields} fields; {order}"));
    }
    // `1-5` means Sunday–Thursday in this crate, not Monday–Friday as in
    // crontab: numbers are refused so that nobody gets the wrong days.
    if let Some(dow) = expr.split_whitespace().nth(5)
        && dow.bytes().any(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "schedule `{expr}`: day-of-week `{dow}` is a number, and numbers count 1 = Sunday here \
             (crontab's 1-5 would be Sunday–Thursday); write day names such as Mon-Fri"
        ));
    }
    expr.parse::<cron::Schedule>().map_err(|e| {
        let e = e.to_string();
        let why = if e.trim().is_empty() {
            "does not parse".to_string()
        } else {
            e
        };
        format!("schedule `{expr}`: {why}; {order}")
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read {path}: {cause} (pass --config FILE; relative paths start at {})",
        cwd()
    )]
    Io { path: PathBuf, cause: std::io::Error },
    /// toml's message already names the line and column and quotes the line.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: source `{id}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        id: String,
        message: String,
    },
    #[error("{path}:{line}:{column}: [settings] {message}")]
    Setting {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: [web]: {message}")]
    Web {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Include {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: [[webhook]] {name}: {message}")]
    Webhook {
        path: PathBuf,
        line: usize,
        column: usize,
        name: String,
        message: String,
    },
    #[error("{path}:{line}:{column}: [email]: {message}")]
    Email {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: no [[source]] entries")]
    Empty { path: PathBuf },
}

/// A string or a list of strings (`select = "main"` or `select = ["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// Files of more `[[source]]` entries (globs relative to this file).
    include: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    settings: RawSettings,
    email: Option<Spanned<RawEmail>>,
    web: Option<Spanned<RawWeb>>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    webhook: Vec<Spanned<RawWebhook>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Spanned<String>,
    url: Spanned<String>,
    format: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    sources: Option<Spanned<Vec<String>>>,
    events: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    from: Option<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    smtp_url: Option<Spanned<String>>,
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    allow_insecure_auth: bool,
    retry_backoff_secs: Option<Spanned<i64>>,
    // Named only to be refused with a clear message.
    password: Option<Spanned<toml::Value>>,
    smtp_password: Option<Spanned<toml::Value>>,
    username: Option<Spanned<toml::Value>>,
    smtp_username: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: Spanned<String>,
    name: Option<String>,
    url: Spanned<String>,
    select: Option<Spanned<OneOrMany>>,
    exclude: Option<Spanned<OneOrMany>>,
    section: Option<String>,
    #[serde(default)]
    maintainers: Vec<Spanned<String>>,
    language: Option<Spanned<String>>,
    ignore: Option<Spanned<OneOrMany>>,
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    allow_private: bool,
    render: Option<Spanned<String>>,
    wait_for: Option<Spanned<String>>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(&read_capped(path)?, path)
}

/// A config file's text: a regular file only (a FIFO or a device would
/// block or never end), capped.
fn read_capped(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let io = |cause| ConfigError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("not a regular file of at most {MAX_CONFIG_BYTES} bytes"),
        });
    }
    // Sized at once: a buffer grown by doubling holds up to twice the file.
    let mut text = String::with_capacity(meta.len() as usize + 1);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES).read_to_string(&mut text))
        .map_err(io)?;
    Ok(text)
}

/// Largest `sources.toml` read (100,000 sources fit in far less).
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Validates config text; `path` names it in messages and anchors `include`.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut sources = Vec::new();
    // Where each source's id is written, by position in `sources`, and the
    // files they come from: duplicates are looked for once all are read.
    let mut ids = IdsAt::default();
    let (raw, rest): (RawFile, String) =
        read_sources(text, path, &mut ids, &mut sources, |e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
    // What is left to read, at the same lines.
    let text = rest.as_str();
    let s = settings(raw.settings, text, path)?;
    let schedule = parse_schedule(&s.schedule).map_err(|m| ConfigError::Parse {
        path: path.to_path_buf(),
        message: format!("[settings] {m}"),
    })?;
    let digest_schedule = parse_schedule(&s.digest_schedule).map_err(|m| ConfigError::Parse {
        path: path.to_path_buf(),
        message: format!("[settings] digest_{m}"),
    })?;
    let email = match raw.email {
        None => Email::default(),
        Some(e) => parse_email(e, text, path)?,
    };
    let web = raw.web.map(|w| parse_web(w, text, path)).transpose()?;

    // Catalogs across files: their sources join the main file's.
    for file in included(raw.include, text, path)? {
        let inc_text = read_capped(&file)?;
        let _: (RawIncluded, String) =
            read_sources(&inc_text, &file, &mut ids, &mut sources, |e| ConfigError::Parse {
                path: file.clone(),
                message: format!(
                    "{} (an included file holds [[source]] entries only)",
                    e.to_string().trim_end()
                ),
            })?;
    }
    if sources.is_empty() {
        return Err(ConfigError::Empty {
            path: path.to_path_buf(),
        });
    }
    let by_id = ids.unique(&sources)?;
    Ok(Config {
        path: path.to_path_buf(),
        settings: s,
        schedule,
        digest_schedule,
        email,
        web,
        sources,
        webhooks: parse_webhooks(raw.webhook, text, path)?,
        by_id,
    })
}

/// Reads one file (the main one or an included one): each `[[source]]`
/// table parsed on its own and checked into `sources`, and the rest of the
/// file (its source tables reduced to their line breaks, so every other
/// line keeps its number) as `T`, returned with that rest's text, which
/// spans in `T` point into. Parsing a 100,000-source file whole held a syntax tree of
/// about 3 KB a source; table by table, the peak is one table.
fn read_sources<T: serde::de::DeserializeOwned + WithSources>(
    text: &str,
    path: &Path,
    ids: &mut IdsAt,
    sources: &mut Vec<Source>,
    parse_error: impl Fn(toml::de::Error) -> ConfigError,
) -> Result<(T, String), ConfigError> {
    let tables = source_tables(text);
    // The tables are whole lines: leaving their line breaks keeps every
    // other line's number and columns.
    let mut rest = String::with_capacity(text.len() - tables.iter().map(|t| t.len()).sum::<usize>());
    let mut from = 0;
    for t in &tables {
        rest.push_str(&text[from..t.start]);
        rest.extend(std::iter::repeat_n(
            '\n',
            memchr::memchr_iter(b'\n', text[t.clone()].as_bytes()).count(),
        ));
        from = t.end;
    }
    rest.push_str(&text[from..]);
    let mut file: T = toml::from_str(&rest).map_err(&parse_error)?;
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
    // Sources written another way (`source = [{ … }]`) stayed in the rest.
    let rest_newlines: Vec<usize> = memchr::memchr_iter(b'\n', rest.as_bytes()).collect();
    let file_no = ids.file(path);
    let inline = parse_sources(file.take_sources(), 0, &rest, path, &mut Shared::default())?;
    IdsAt::place(inline, &rest, &rest_newlines, file_no, sources, &mut ids.at);
    // Neighbouring tables are read a few dozen at a time (one parse per
    // table cost as much again in setting up the parser), and a large file
    // on two cores: 100,000 sources are a second of CPU.
    let mut chunks: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < tables.len() {
        let start = tables[i].start;
        let mut end = tables[i].end;
        i += 1;
        while i < tables.len() && tables[i].start == end && i % 64 != 0 {
            end = tables[i].end;
            i += 1;
        }
        chunks.push(start..end);
    }
    let read = |chunks: &[Range<usize>], room: usize| -> Result<(Vec<Source>, Vec<IdAt>), ChunkError> {
        let (mut out, mut at) = (Vec::with_capacity(room), Vec::with_capacity(room));
        let mut shared = Shared::default();
        for c in chunks {
            let chunk: RawIncluded = toml::from_str(&text[c.clone()]).map_err(ChunkError::Toml)?;
            let parsed = parse_sources(chunk.source, c.start, text, path, &mut shared)?;
            IdsAt::place(parsed, text, &newlines, file_no, &mut out, &mut at);
        }
        Ok((out, at))
    };
    let (first, second) = chunks.split_at(if tables.len() >= 2_000 {
        chunks.len() / 2
    } else {
        chunks.len()
    });
    // Lists sized once: the first part's, when it starts the list, has
    // room for the second's (a list grown by doubling, then copied into
    // another, held three times its size at the peak).
    let in_second = second.first().map_or(0, |c| {
        tables.len() - tables.partition_point(|t| t.start < c.start)
    });
    let room = if sources.is_empty() {
        tables.len()
    } else {
        sources.reserve_exact(tables.len());
        ids.at.reserve_exact(tables.len());
        tables.len() - in_second
    };
    let (first, second) = std::thread::scope(|s| {
        let other = (!second.is_empty()).then(|| s.spawn(|| read(second, in_second)));
        let first = read(first, room);
        (
            first,
            other.map(|t| t.join().expect("reading sources.toml crashed")),
        )
    });
    for part in [Some(first), second].into_iter().flatten() {
        match part {
            Ok((mut parsed, mut at)) => {
                // Moved, not copied: the first part becomes the list
                // itself when it is the first.
                if sources.is_empty() {
                    *sources = parsed;
                    ids.at = at;
                } else {
                    sources.append(&mut parsed);
                    ids.at.append(&mut at);
                }
            }
            // Said with the line in the file: the whole file gives the
            // same mistake with its own position.
            Err(ChunkError::Toml(e)) => {
                return Err(parse_error(toml::from_str::<T>(text).err().unwrap_or(e)));
            }
            Err(ChunkError::Config(e)) => return Err(e),
        }
    }
    Ok((file, rest))
}

/// Why a part of a file's sources could not be read.
enum ChunkError {
    Toml(toml::de::Error),
    Config(ConfigError),
}

impl From<ConfigError> for ChunkError {
    fn from(e: ConfigError) -> Self {
        ChunkError::Config(e)
    }
}

/// Where a source's id is written: file (index into [`IdsAt::files`]),
/// line and column.
#[derive(Clone, Copy)]
struct IdAt {
    file: u32,
    line: u32,
    column: u32,
}

/// Where every source's id is written, by position in the sources: 12
/// bytes a source, where a map of ids seen held a copy of each id and path.
#[derive(Default)]
struct IdsAt {
    files: Vec<PathBuf>,
    at: Vec<IdAt>,
}

impl IdsAt {
    /// The number of a file read next.
    fn file(&mut self, path: &Path) -> u32 {
        self.files.push(path.to_path_buf());
        (self.files.len() - 1) as u32
    }

    /// Appends `parsed` (each source with where its id is in `text`) to
    /// `sources`, and where each id is to `at` (the lists of [`IdsAt`], or
    /// a part's own, read on its own thread).
    fn place(
        parsed: Vec<(Source, usize)>,
        text: &str,
        newlines: &[usize],
        file: u32,
        sources: &mut Vec<Source>,
        at: &mut Vec<IdAt>,
    ) {
        for (source, offset) in parsed {
            // Found by binary search: counting lines from the top for each
            // id made a load of 20,000 sources take 20 s.
            let line = newlines.partition_point(|&n| n < offset);
            let start = if line == 0 { 0 } else { newlines[line - 1] + 1 };
            let column = text[start..offset].chars().count() + 1;
            at.push(IdAt {
                file,
                line: line as u32 + 1,
                column: column as u32,
            });
            sources.push(source);
        }
    }

    /// Refuses an id used twice (naming the first repeat in reading order
    /// and where the id was first written); else the sources' positions
    /// ordered by id, for [`Config::source`].
    fn unique(&self, sources: &[Source]) -> Result<Vec<u32>, ConfigError> {
        let mut order: Vec<u32> = (0..sources.len() as u32).collect();
        // Stable: an id's repeats stay in reading order.
        order.sort_by(|&a, &b| sources[a as usize].id.cmp(&sources[b as usize].id));
        let repeat = order
            .windows(2)
            .filter(|w| sources[w[0] as usize].id == sources[w[1] as usize].id)
            .map(|w| (w[1] as usize, w[0] as usize))
            .min();
        let Some((again, _)) = repeat else {
            return Ok(order);
        };
        // The id's first use: the earliest of its group.
        let id = &sources[again].id;
        let first = (0..again).find(|&i| sources[i].id == *id).unwrap_or(again);
        let (was, is) = (self.at[first], self.at[again]);
        let also = if was.file == is.file {
            format!("line {}", was.line)
        } else {
            format!("{}:{}", self.files[was.file as usize].display(), was.line)
        };
        Err(ConfigError::Invalid {
            path: self.files[is.file as usize].clone(),
            line: is.line as usize,
            column: is.column as usize,
            id: id.clone(),
            message: format!("duplicate id (also at {also})"),
        })
    }
}

/// The byte ranges of a file's `[[source]]` tables (each with its own
/// `[source.…]` sub-tables), found with the TOML lexer: a `[[` inside a
/// string, a comment or a value is no header.
fn source_tables(text: &str) -> Vec<Range<usize>> {
    use toml_parser::lexer::TokenKind as K;
    let mut tables: Vec<Range<usize>> = Vec::new();
    let mut tokens = toml_parser::Source::new(text).lex().peekable();
    // Inside a value's brackets or braces; at the start of a line.
    let (mut depth, mut line_start) = (0usize, true);
    // Where the current line begins: tables are whole lines.
    let mut line_begin = 0;
    // Where the current `[[source]]` table started, if in one.
    let mut open: Option<usize> = None;
    while let Some(tok) = tokens.next() {
        match tok.kind() {
            K::LeftSquareBracket if depth == 0 && line_start => {
                let start = line_begin;
                let double = tokens.next_if(|t| t.kind() == K::LeftSquareBracket).is_some();
                let mut name = String::new();
                while let Some(t) =
                    tokens.next_if(|t| !matches!(t.kind(), K::RightSquareBracket | K::Newline | K::Eof))
                {
                    let raw = &text[t.span().start()..t.span().end()];
                    match t.kind() {
                        K::Whitespace => {}
                        K::BasicString | K::LiteralString => {
                            name.push_str(&raw[1..raw.len().saturating_sub(1)])
                        }
                        _ => name.push_str(raw),
                    }
                }
                let is_source = name == "source" && double;
                let in_source = name.starts_with("source.");
                if !in_source && let Some(from) = open.take() {
                    tables.push(from..start);
                }
                if is_source {
                    open = Some(start);
                }
                line_start = false;
            }
            K::LeftSquareBracket | K::LeftCurlyBracket => {
                depth += 1;
                line_start = false;
            }
            K::RightSquareBracket | K::RightCurlyBracket => {
                depth = depth.saturating_sub(1);
                line_start = false;
            }
            K::Newline => {
                line_start = true;
                line_begin = tok.span().end();
            }
            K::Whitespace => {}
            K::Eof => {
                if let Some(from) = open.take() {
                    tables.push(from..text.len());
                }
            }
            _ => line_start = false,
        }
    }
    tables
}

/// Lists many sources repeat (the same selectors, the same maintainers),
/// checked once and held once: 100,000 sources of one site share them.
struct Shared {
    none: Arc<[String]>,
    selectors: HashMap<Vec<String>, Arc<[String]>>,
    /// Keyed by the addresses as written, one per line.
    maintainers: HashMap<String, Arc<[lettre::Address]>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            none: Arc::from([]),
            selectors: HashMap::new(),
            maintainers: HashMap::new(),
        }
    }
}

/// The `[[source]]` entries of one part of a file (the main one or an
/// included one), checked, each with where its id is in `text` (for
/// [`keep_unique`]); `base` is where the part starts in the file's `text`.
fn parse_sources(
    raw: Vec<Spanned<RawSource>>,
    base: usize,
    text: &str,
    path: &Path,
    shared: &mut Shared,
) -> Result<Vec<(Source, usize)>, ConfigError> {
    let invalid = |span: Range<usize>, id: &str, message: String| {
        let (line, column) = line_col(text, base + span.start);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            id: id.to_string(),
            message,
        }
    };
    let mut sources = Vec::with_capacity(raw.len());
    for entry in raw {
        let entry_span = entry.span();
        let r = entry.into_inner();
        let id_span = r.id.span();
        let id = r.id.into_inner();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                id_span,
                &id,
                "id must be non-empty and use only a-z, 0-9 and '-'".into(),
            ));
        }
        if id.len() > MAX_ID_LEN {
            return Err(invalid(
                id_span,
                &id[..16],
                format!("id is {} characters long (at most {MAX_ID_LEN})", id.len()),
            ));
        }
        let id_at = base + id_span.start;
        let url_span = r.url.span();
        let url_text = r.url.into_inner();
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| invalid(url_span.clone(), &id, format!("bad url `{url_text}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                url_span,
                &id,
                format!("url `{url_text}` must be http:// or https:// with a host"),
            ));
        }
        let mut selectors = |field: &str, v: Option<Spanned<OneOrMany>>| {
            let Some(v) = v else {
                return Ok(Arc::clone(&shared.none));
            };
            let span = v.span();
            let list = v.into_inner().into_vec();
            if let Some(known) = shared.selectors.get(&list) {
                return Ok(Arc::clone(known));
            }
            for sel in &list {
                if let Err(e) = crate::extract::parse_selector(sel) {
                    return Err(invalid(span.clone(), &id, format!("{field}: {e}")));
                }
            }
            let checked: Arc<[String]> = list.clone().into();
            shared.selectors.insert(list, Arc::clone(&checked));
            Ok(checked)
        };
        let select = selectors("select", r.select)?;
        let exclude = selectors("exclude", r.exclude)?;
        let ignore = match r.ignore {
            None => Vec::new(),
            Some(v) => {
                let span = v.span();
                let list = v.into_inner().into_vec();
                let mut compiled = Vec::with_capacity(list.len());
                for pat in &list {
                    match regex::Regex::new(pat) {
                        Ok(r) => compiled.push(r),
                        Err(e) => {
                            return Err(invalid(
                                span.clone(),
                                &id,
                                format!("ignore: bad regex `{pat}`: {e}"),
                            ));
                        }
                    }
                }
                compiled
            }
        };
        let language = match r.language {
            None => None,
            Some(l) => {
                let span = l.span();
                let l = l.into_inner();
                if !matches!(l.as_str(), "en" | "sq" | "sr") {
                    return Err(invalid(
                        span,
                        &id,
                        format!("language `{l}` is not one of en, sq, sr"),
                    ));
                }
                Some(l)
            }
        };
        if r.section.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(invalid(entry_span, &id, "section must not be empty".into()));
        }
        // One key for the whole list (addresses hold no line break).
        let listed = r
            .maintainers
            .iter()
            .map(|m| m.get_ref().as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let maintainers = match shared.maintainers.get(&listed) {
            Some(known) => Arc::clone(known),
            None => {
                let mut checked = Vec::with_capacity(r.maintainers.len());
                for m in &r.maintainers {
                    match m.get_ref().parse::<lettre::Address>() {
                        Ok(a) => checked.push(a),
                        Err(e) => {
                            return Err(invalid(
                                m.span(),
                                &id,
                                format!("maintainer `{}` is not an email address: {e}", m.get_ref()),
                            ));
                        }
                    }
                }
                let checked: Arc<[lettre::Address]> = checked.into();
                shared.maintainers.insert(listed, Arc::clone(&checked));
                checked
            }
        };
        let schedule = match r.schedule {
            None => None,
            Some(sch) => {
                let span = sch.span();
                Some(Box::new(
                    parse_schedule(sch.get_ref()).map_err(|m| invalid(span, &id, m))?,
                ))
            }
        };
        let render = match r.render {
            None => None,
            Some(v) if v.get_ref() == "browser" => Some(crate::model::Render {
                wait_for: match r.wait_for {
                    None => None,
                    Some(w) => {
                        let span = w.span();
                        crate::extract::parse_selector(w.get_ref())
                            .map_err(|e| invalid(span, &id, format!("wait_for: {e}")))?;
                        Some(w.into_inner())
                    }
                },
            }),
            Some(v) => {
                let span = v.span();
                return Err(invalid(
                    span,
                    &id,
                    format!("render `{}`: the only value is \"browser\"", v.get_ref()),
                ));
            }
        };
        let source = Source {
            render,
            schedule,
            title: r.name.filter(|n| *n != id),
            id,
            url,
            select,
            exclude,
            section: r.section,
            maintainers,
            language,
            ignore,
            allow_private: r.allow_private,
        };
        sources.push((source, id_at));
    }
    Ok(sources)
}

/// A file's form that may hold `[[source]]` entries.
trait WithSources {
    fn take_sources(&mut self) -> Vec<Spanned<RawSource>>;
}

impl WithSources for RawFile {
    fn take_sources(&mut self) -> Vec<Spanned<RawSource>> {
        std::mem::take(&mut self.source)
    }
}

impl WithSources for RawIncluded {
    fn take_sources(&mut self) -> Vec<Spanned<RawSource>> {
        std::mem::take(&mut self.source)
    }
}

/// An included file holds sources only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncluded {
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
}

/// The files `include` names, in order: each pattern relative to the main
/// file's folder, `*` allowed in its last part (sorted matches), a plain
/// path required to exist.
fn included(raw: Option<Spanned<Vec<String>>>, text: &str, path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let span = raw.span();
    let invalid = |message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Include {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for pattern in raw.into_inner() {
        let full = base.join(&pattern);
        let name = full
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let dir = full.parent().unwrap_or(base).to_path_buf();
        if dir.to_string_lossy().contains('*') {
            return Err(invalid(format!("include `{pattern}`: `*` only in the file name")));
        }
        if !name.contains('*') {
            if !full.is_file() {
                return Err(invalid(format!(
                    "include `{pattern}`: no such file ({})",
                    full.display()
                )));
            }
            files.push(full);
            continue;
        }
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| invalid(format!("include `{pattern}`: cannot read {}: {e}", dir.display())))?;
        let mut matched: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| glob_match(&name, n))
            })
            .collect();
        matched.sort();
        files.extend(matched);
    }
    Ok(files)
}

fn parse_webhooks(
    raw: Vec<Spanned<RawWebhook>>,
    text: &str,
    path: &Path,
) -> Result<Vec<Webhook>, ConfigError> {
    let mut out: Vec<Webhook> = Vec::new();
    for entry in raw {
        let r = entry.into_inner();
        let name = r.name.get_ref().clone();
        let invalid = |span: Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ConfigError::Webhook {
                path: path.to_path_buf(),
                line,
                column,
                name: name.clone(),
                message,
            }
        };
        if name.is_empty()
            || name.len() > MAX_ID_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                r.name.span(),
                "name must be 1 to 64 of a-z, 0-9 and '-'".into(),
            ));
        }
        if out.iter().any(|w| w.name == name) {
            return Err(invalid(r.name.span(), "duplicate webhook name".into()));
        }
        let url = reqwest::Url::parse(r.url.get_ref())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        // The URL itself is not repeated: Slack and Teams URLs are secrets.
        let Some(url) = url else {
            return Err(invalid(r.url.span(), "url is not an http(s) URL".into()));
        };
        let format = match r.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("json") => HookFormat::Json,
            Some("slack") => HookFormat::Slack,
            Some("teams") => HookFormat::Teams,
            Some(other) => {
                let span = r.format.as_ref().map_or(0..0, |f| f.span());
                return Err(invalid(
                    span,
                    format!("format `{other}` is not json, slack or teams"),
                ));
            }
        };
        let secret = match (&r.secret_env, format) {
            (None, HookFormat::Json) => {
                return Err(invalid(
                    r.url.span(),
                    "a json webhook needs secret_env, the variable holding its signing secret (whsec_…)"
                        .into(),
                ));
            }
            (None, _) => None,
            (Some(var), _) => {
                let value = std::env::var(var.get_ref()).map_err(|_| {
                    invalid(
                        var.span(),
                        format!("environment variable {} is not set", var.get_ref()),
                    )
                })?;
                // Never echo the value.
                let key = value
                    .strip_prefix("whsec_")
                    .and_then(|b| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(b).ok()
                    })
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        invalid(
                            var.span(),
                            format!("{} does not hold whsec_ and a base64 key", var.get_ref()),
                        )
                    })?;
                Some(key)
            }
        };
        let events = match &r.events {
            None => vec![HookEvent::Change],
            Some(list) => {
                let mut events = Vec::new();
                for e in list.get_ref() {
                    let Some(ev) = HookEvent::parse(e) else {
                        return Err(invalid(
                            list.span(),
                            format!("event `{e}` is not change, source_down or source_recovered"),
                        ));
                    };
                    events.push(ev);
                }
                events
            }
        };
        out.push(Webhook {
            name,
            url,
            format,
            secret,
            sources: r.sources.map(Spanned::into_inner).unwrap_or_default(),
            events,
        });
    }
    Ok(out)
}

fn parse_web(raw: Spanned<RawWeb>, text: &str, path: &Path) -> Result<Web, ConfigError> {
    let invalid = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Web {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let r = raw.into_inner();
    let mut web = Web::default();
    if let Some(listen) = r.listen {
        web.listen = listen.get_ref().parse().map_err(|_| {
            invalid(
                listen.span(),
                format!(
                    "listen `{}` is not an address and port, e.g. \"127.0.0.1:8080\"",
                    listen.get_ref()
                ),
            )
        })?;
    }
    if let Some(base) = r.base_url {
        let url = reqwest::Url::parse(base.get_ref()).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.query().is_none()
        });
        let Some(url) = url else {
            return Err(invalid(
                base.span(),
                format!(
                    "base_url `{}` must be an http:// or https:// address, e.g. \"https://visawatch.example.org\"",
                    base.get_ref()
                ),
            ));
        };
        web.base_url = Some(url.as_str().trim_end_matches('/').to_string());
    }
    Ok(web)
}

fn parse_email(raw: Spanned<RawEmail>, text: &str, path: &Path) -> Result<Email, ConfigError> {
    let invalid = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Email {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let span = raw.span();
    let r = raw.into_inner();
    for (key, v) in [
        ("password", &r.password),
        ("smtp_password", &r.smtp_password),
        ("username", &r.username),
        ("smtp_username", &r.smtp_username),
    ] {
        if let Some(v) = v {
            return Err(invalid(
                v.span(),
                format!(
                    "`{key}` is refused: SMTP credentials are read only from the environment \
                     (VISAWATCH_SMTP_USERNAME, VISAWATCH_SMTP_PASSWORD), never from sources.toml"
                ),
            ));
        }
    }
    let mut email = Email::default();
    if let Some(from) = r.from {
        let sp = from.span();
        email.from = from
            .into_inner()
            .parse()
            .map_err(|e| invalid(sp, format!("from: not a mailbox: {e}")))?;
    } else {
        return Err(invalid(
            span,
            "from is required, e.g. from = \"visawatch <alerts@example.org>\"".into(),
        ));
    }
    for to in r.to {
        let sp = to.span();
        let addr = to.into_inner();
        email.to.push(
            addr.parse()
                .map_err(|e| invalid(sp, format!("to: `{addr}` is not an email address: {e}")))?,
        );
    }
    if let Some(url) = r.smtp_url {
        let sp = url.span();
        let url = url.into_inner();
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| invalid(sp.clone(), format!("smtp_url `{url}`: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                sp,
                "smtp_url must not hold credentials: set VISAWATCH_SMTP_USERNAME and VISAWATCH_SMTP_PASSWORD"
                    .into(),
            ));
        }
        let implicit_tls = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(invalid(
                    sp,
                    format!("smtp_url scheme `{other}`: use smtp:// or smtps://"),
                ));
            }
        };
        let Some(host) = parsed.host_str() else {
            return Err(invalid(sp, format!("smtp_url `{url}` has no host")));
        };
        email.smtp = Some(Smtp {
            host: host.trim_matches(['[', ']']).to_string(),
            port: parsed.port().unwrap_or(if implicit_tls { 465 } else { 587 }),
            implicit_tls,
            tls_ca_file: r
                .tls_ca_file
                .map(|p| path.parent().unwrap_or(Path::new(".")).join(p)),
            allow_insecure_auth: r.allow_insecure_auth,
        });
    } else if r.tls_ca_file.is_some() {
        return Err(invalid(span, "tls_ca_file needs an smtp_url".into()));
    }
    if let Some(b) = r.retry_backoff_secs {
        let sp = b.span();
        let b = b.into_inner();
        if !(0..=86_400).contains(&b) {
            return Err(invalid(
                sp,
                format!("retry_backoff_secs = {b} is out of range (1 to 86400)"),
            ));
        }
        email.retry_backoff_secs = b as u64;
    }
    Ok(email)
}

/// The working directory, for messages about relative paths.
fn cwd() -> String {
    std::env::current_dir().map_or_else(|_| "the working directory".into(), |d| d.display().to_string())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("sources.toml")).unwrap_err().to_string()
    }

    /// Issue 17: a large file is read on two cores; its mistakes and
    /// duplicates still name their own line, across the halves.
    #[test]
    fn a_large_file_read_in_two_halves_names_its_mistakes() {
        let mut text = String::new();
        for i in 0..2500 {
            text += &format!("[[source]]\nid = \"s{i:04}\"\nurl = \"https://e.example/{i}\"\n\n");
        }
        let c = parse(&text, Path::new("big.toml")).unwrap();
        assert_eq!(c.sources.len(), 2500);
        assert_eq!(c.sources[2499].id, "s2499", "in the file's order");
        // Source n's id is on line 4n + 2.
        let dup = text.replace("id = \"s2400\"", "id = \"s0003\"");
        let e = parse(&dup, Path::new("big.toml")).unwrap_err().to_string();
        assert!(
            e.starts_with("big.toml:9602:6: source `s0003`: duplicate id (also at line 14)"),
            "{e}"
        );
        let bad = text.replace("https://e.example/2300", "ftp://e.example/");
        let e = parse(&bad, Path::new("big.toml")).unwrap_err().to_string();
        assert!(e.starts_with("big.toml:9203:7: source `s2300`"), "{e}");
    }

    /// Issue 17: sources are read table by table. A `[[source]]` inside a
    /// string is no table, sources written inline still count, the order
    /// is the file's, and a mistake in a late table names its own line.
    #[test]
    fn sources_read_table_by_table_keep_their_order_and_lines() {
        let text = r##"
[settings]
user_agent = "visawatch"

[[source]]
id = "a"
url = "https://a.example/x" # [[source]]
select = ["main", "#content"]
section = """Fees
[[source]]"""

[web]
listen = "127.0.0.1:8080"

[[ source ]]
id = "b"
url = "https://b.example/x"
"##;
        let c = parse(text, Path::new("sources.toml")).unwrap();
        let ids: Vec<&str> = c.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(c.sources[0].section.as_deref(), Some("Fees\n[[source]]"));
        assert_eq!(*c.sources[0].select, ["main", "#content"]);

        let inline = "source = [{ id = \"c\", url = \"https://c.example/\" }]\n";
        let c = parse(inline, Path::new("sources.toml")).unwrap();
        assert_eq!(c.sources[0].id, "c");

        let late = format!("{text}\n[[source]]\nid = \"c\"\nurl = \"ftp://c.example/\"\n");
        let e = err(&late);
        assert!(e.starts_with("sources.toml:21:7: source `c`"), "{e}");
        let broken = format!("{text}\n[[source]]\nid = \"c\"\nurl = \"https://c.example/\nx = 1\n");
        let e = err(&broken);
        assert!(e.contains("line 21"), "{e}");
        // A mistake outside the source tables keeps its line too.
        let e = err(&text.replace("127.0.0.1:8080", "nowhere"));
        assert!(e.contains(":13:"), "{e}");
        let dup = format!("{text}\n[[source]]\nid = \"a\"\nurl = \"https://c.example/\"\n");
        assert!(
            err(&dup).contains("duplicate id (also at line 6)"),
            "{}",
            err(&dup)
        );
    }

    /// Issue 17: a daemon of 100,000 sources held each source's selectors
    /// and maintainers as its own copies (and checked each copy); a list
    /// repeated is now one list, and a bad one in a late source is still
    /// named with its line.
    #[test]
    fn sources_repeating_selectors_and_maintainers_share_them_and_are_found_by_id() {
        let mut text = String::new();
        for i in (0..300).rev() {
            text.push_str(&format!(
                "[[source]]\nid = \"s{i:03}\"\nurl = \"https://e.org/{i}\"\nselect = [\"main\", \".fees\"]\nmaintainers = [\"ed@e.org\"]\n\n"
            ));
        }
        let c = parse(&text, Path::new("sources.toml")).unwrap();
        let (first, last) = (&c.sources[0], &c.sources[299]);
        assert!(Arc::ptr_eq(&first.select, &last.select));
        assert!(Arc::ptr_eq(&first.maintainers, &last.maintainers));
        assert_eq!(*last.select, ["main", ".fees"]);
        assert_eq!(last.maintainers[0].to_string(), "ed@e.org");
        for i in 0..300 {
            let id = format!("s{i:03}");
            assert_eq!(c.source(&id).map(|s| s.id.as_str()), Some(id.as_str()));
        }
        assert!(c.source("s300").is_none() && c.source("").is_none());

        let bad = text.replace(
            "id = \"s000\"\nurl = \"https://e.org/0\"\nselect = [\"main\", \".fees\"]",
            "id = \"s000\"\nurl = \"https://e.org/0\"\nselect = [\"main\", \"((\"]",
        );
        let e = err(&bad);
        assert!(
            e.starts_with("sources.toml:1798:10: source `s000`: select:"),
            "{e}"
        );
    }

    #[test]
    fn minimal_source_gets_defaults() {
        let c = parse(
            "[[source]]\nid = \"a\"\nurl = \"https://example.org/x\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(c.sources[0].name(), "a");
        assert_eq!(c.settings.concurrency, 8);
        assert!(c.settings.conditional_get);
    }

    #[test]
    fn duplicate_id_names_line_and_id() {
        let e = err(
            "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n\n[[source]]\nid = \"a\"\nurl = \"https://e.org/2\"\n",
        );
        assert_eq!(e, "sources.toml:6:6: source `a`: duplicate id (also at line 2)");
    }

    #[test]
    fn bad_selector_names_selector_and_line() {
        let e = err("[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\nselect = [\"main\", \"div[\"]\n");
        assert!(
            e.starts_with("sources.toml:4:10: source `a`: select: CSS selector `div[`"),
            "{e}"
        );
    }

    /// Issue 12: a bad maintainer and an `[email]` without `from` were
    /// reported at the source's entry or at 1:1, not where the mistake is.
    #[test]
    fn address_mistakes_point_at_their_own_line() {
        let e = err(
            "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\nmaintainers = [\"ok@e.org\",\n  \"not an address\"]\n",
        );
        assert!(
            e.starts_with(
                "sources.toml:5:3: source `a`: maintainer `not an address` is not an email address"
            ),
            "{e}"
        );
        let e = err(
            "[settings]\nretries = 1\n\n[email]\nto = [\"a@e.org\"]\n\n[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n",
        );
        assert!(
            e.starts_with("sources.toml:4:1: [email]: from is required"),
            "{e}"
        );
    }

    /// Issue 12: the selectors crate answered "Unexpected error occurred.
    /// Please report this to the developer / DanglingCombinator".
    #[test]
    fn a_selector_mistake_is_told_in_plain_words_at_its_line() {
        let e = err("[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\nexclude = \"nav >\"\n");
        assert_eq!(
            e,
            "sources.toml:4:11: source `a`: exclude: CSS selector `nav >` is not valid: it ends with a combinator (`>`, `+` or `~`) with nothing after it"
        );
        let e = err("[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n\nselect = \"main,\"\n");
        assert!(
            e.starts_with("sources.toml:5:10: ") && e.contains("a selector is empty (a stray comma"),
            "{e}"
        );
        assert!(!e.contains("developer"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_position() {
        let e = err("[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\nselector = \"main\"\n");
        assert!(
            e.contains("line 4") && e.contains("unknown field `selector`"),
            "{e}"
        );
    }

    #[test]
    fn bad_url_and_scheme() {
        assert!(
            err("[[source]]\nid = \"a\"\nurl = \"not a url\"\n")
                .contains("sources.toml:3:7: source `a`: bad url")
        );
        assert!(err("[[source]]\nid = \"a\"\nurl = \"ftp://e.org/\"\n").contains("must be http"));
    }

    #[test]
    fn email_section() {
        let base = "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n";
        let c = parse(
            &format!("[email]\nfrom = \"vw <a@e.org>\"\nto = [\"b@e.org\"]\nsmtp_url = \"smtp://127.0.0.1:2525\"\n{base}"),
            Path::new("s.toml"),
        )
        .unwrap();
        let smtp = c.email.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.implicit_tls),
            ("127.0.0.1", 2525, false)
        );
        assert_eq!(c.email.to[0].to_string(), "b@e.org");
        let e = err(&format!(
            "[email]\nfrom = \"a@e.org\"\npassword = \"hunter2\"\n{base}"
        ));
        assert!(
            e.starts_with("sources.toml:3:12: [email]: `password` is refused"),
            "{e}"
        );
        assert!(!e.contains("hunter2"));
        let e = err(&format!(
            "[email]\nfrom = \"a@e.org\"\nsmtp_url = \"smtp://u:p@h\"\n{base}"
        ));
        assert!(e.contains("must not hold credentials"), "{e}");
        let e = err(&format!("[email]\nfrom = \"a@e.org\"\nto = [\"nobody\"]\n{base}"));
        assert!(e.starts_with("sources.toml:3:7: [email]: to: `nobody`"), "{e}");
    }

    #[test]
    fn schedules_explain_the_field_order() {
        let base = "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n";
        let e = err(&format!("[settings]\nschedule = \"0 6 * * *\"\n{base}"));
        assert!(e.contains("has 5 fields") && e.contains("sec min hour"), "{e}");
        let e = err(&format!("{base}schedule = \"0 0 25 * * *\"\n"));
        assert!(
            e.starts_with("sources.toml:4:12: source `a`: schedule `0 0 25 * * *`"),
            "{e}"
        );
        let c = parse(
            &format!("{base}schedule = \"0 30 7 * * Mon-Fri\"\n"),
            Path::new("s"),
        )
        .unwrap();
        assert!(c.sources[0].schedule.is_some());
    }

    /// Issue 10 (10): out-of-range settings used to pass and panic later.
    #[test]
    fn out_of_range_settings_name_their_line() {
        let base = "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n";
        // Past i64: TOML's own error, which names the line and column.
        let e = err(&format!("[settings]\nconcurrency = 18446744073709551615\n{base}"));
        assert!(e.contains("line 2, column 15"), "{e}");
        let e = err(&format!(
            "[settings]\ntimeout_secs = 5\nconcurrency = 100000\n{base}"
        ));
        assert_eq!(
            e,
            "sources.toml:3:15: [settings] concurrency = 100000 is out of range (1 to 1024)"
        );
        let e = err(&format!("[settings]\ngrace_secs = 9223372036854775807\n{base}"));
        assert!(e.starts_with("sources.toml:2:14: [settings] grace_secs"), "{e}");
        let e = err(&format!("[settings]\nper_host = 0\n{base}"));
        assert!(e.contains("per_host = 0 is out of range"), "{e}");
        let e = err(&format!("[settings]\nuser_agent = \"a\\r\\nb\"\n{base}"));
        assert!(
            e.starts_with("sources.toml:2:14: [settings] user_agent must be"),
            "{e}"
        );
        let long = "a".repeat(300);
        let e = err(&format!(
            "[[source]]\nid = \"{long}\"\nurl = \"https://e.org/\"\n"
        ));
        assert!(
            e.starts_with("sources.toml:2:6: source `aaaaaaaaaaaaaaaa`: id is 300 characters long"),
            "{e}"
        );
    }

    /// Issue 10 (9): `--config` on a FIFO hung.
    #[test]
    fn config_on_a_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let e = load(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    /// Issue 12: `1-5` was accepted and meant Sunday–Thursday.
    #[test]
    fn numeric_days_of_week_are_refused() {
        let base = "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n";
        let e = err(&format!("[settings]\nschedule = \"0 0 6 * * 1-5\"\n{base}"));
        assert!(
            e.contains("day-of-week `1-5` is a number") && e.contains("Mon-Fri"),
            "{e}"
        );
        assert!(parse_schedule("0 0 6 * * Mon-Fri").is_ok());
        assert!(parse_schedule("*/10 * * * * *").is_ok());
    }

    #[test]
    fn bad_id() {
        assert!(err("[[source]]\nid = \"Bad Id\"\nurl = \"https://e.org/\"\n").contains("a-z, 0-9"));
    }
}
