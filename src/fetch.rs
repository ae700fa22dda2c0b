//! HTTP only: one shared client, global and per-host concurrency limits,
//! retries with backoff, conditional GET, a streaming body cap, and charset
//! decoding into a [`Page`].
//!
//! This is the only stage that waits on the network, so it is the only one
//! that runs concurrently. It knows nothing of selectors, facts or SQLite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use encoding_rs::Encoding;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::model::{BodyKind, CharsetSource, Fetched, Page, Reason, RobotsFile, Validators};

/// Why a fetch failed. The message is what the report and `history` show.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("DNS lookup failed for {host}{}", redirected_from.as_ref().map(|u| format!(" (redirected from {u})")).unwrap_or_default())]
    Dns {
        host: String,
        /// The source's URL, when a redirect led to the unknown host.
        redirected_from: Option<String>,
    },
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("timeout after {secs}s fetching {url}")]
    Timeout { url: String, secs: u64 },
    #[error("HTTP {status} from {url}")]
    Status {
        url: String,
        status: u16,
        #[source]
        retry_after: Option<RetryAfter>,
    },
    #[error("body too large: {url} exceeds {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("redirect refused for {url}: {detail}")]
    Redirect { url: String, detail: String },
    #[error("cannot decode {url} as {charset}: {detail}")]
    Decode {
        url: String,
        charset: String,
        detail: String,
    },
    /// A public source led into loopback, private or link-local addresses.
    #[error("{url}: {detail}")]
    Private { url: String, detail: String },
    /// Not HTML, XHTML or plain text: never stored, never compared.
    #[error("unsupported content type {content_type} at {url}")]
    Unsupported { url: String, content_type: String },
    #[error("fetching {url} failed: {detail}")]
    Other { url: String, detail: String },
    /// Not started: the run was asked to stop while this waited its turn.
    #[error("not started: stopping")]
    Stopped,
    /// `respect_robots = true`: the host's robots.txt forbids the URL, or
    /// could not be read (RFC 9309: then nothing of the host is fetched).
    #[error("{url}: {detail} (respect_robots = true)")]
    Robots { url: String, detail: String },
}

impl From<FetchError> for crate::model::Failure {
    fn from(e: FetchError) -> Self {
        crate::model::Failure {
            reason: e.reason(),
            message: e.to_string(),
        }
    }
}

/// A server's Retry-After, kept with the status error so the retry loop can honour it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl FetchError {
    /// Whether trying again could help: connect errors, timeouts, 429 and 5xx.
    pub fn retry_delay(&self, attempt: u32, base: Duration) -> Option<Duration> {
        let backoff = base.saturating_mul(1 << attempt.min(10));
        match self {
            FetchError::Connect { .. } | FetchError::Timeout { .. } => Some(backoff),
            FetchError::Status {
                status, retry_after, ..
            } if *status == 429 || *status >= 500 => Some(
                retry_after
                    .map(|r| r.0.min(Duration::from_secs(60)))
                    .unwrap_or(backoff),
            ),
            _ => None,
        }
    }

    /// The stable reason stored with the check.
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::Dns { .. } => Reason::Dns,
            FetchError::Connect { .. } => Reason::Connect,
            FetchError::Timeout { .. } => Reason::Timeout,
            FetchError::Status { .. } => Reason::HttpStatus,
            FetchError::TooLarge { .. } => Reason::BodyTooLarge,
            FetchError::Redirect { .. } => Reason::Redirect,
            FetchError::Decode { .. } => Reason::Decode,
            FetchError::Unsupported { .. } => Reason::UnsupportedContentType,
            FetchError::Private { .. } => Reason::PrivateNetwork,
            FetchError::Other { .. } => Reason::Other,
            FetchError::Stopped => Reason::Stopped,
            FetchError::Robots { .. } => Reason::Robots,
        }
    }
}

/// The rules of a robots.txt as kept: a 2xx body's, else none (all allowed).
fn rules_of(f: &RobotsFile) -> Rules {
    if (200..300).contains(&f.status) {
        Rules::Read(robotxt::Robots::parse(&f.body, ROBOTS_AGENT))
    } else {
        Rules::Read(robotxt::Robots::allow_all())
    }
}

/// Builds an HTTP client; `guarded`: no way into private networks.
fn client(settings: &Settings, guarded: bool) -> Result<reqwest::Client, FetchError> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else if !matches!(attempt.url().scheme(), "http" | "https") {
            let scheme = attempt.url().scheme().to_string();
            attempt.error(format!("redirect to a {scheme}: URL"))
        } else if guarded && host_is_private(attempt.url()) {
            let host = attempt.url().host_str().unwrap_or_default().to_string();
            attempt.error(format!(
                "{PRIVATE}: the page redirects to {host}; set allow_private = true on the source if that is intended"
            ))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(settings.user_agent.clone())
        .timeout(Duration::from_secs(settings.timeout_secs))
        .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
        .redirect(policy);
    builder = builder.dns_resolver(Arc::new(Resolver { public_only: guarded }));
    builder.build().map_err(|e| FetchError::Other {
        url: String::new(),
        detail: format!("cannot build HTTP client: {e}"),
    })
}

/// Marks a refusal to enter a private network (in messages and for `classify`).
const PRIVATE: &str = "refused to enter a private network";

/// Loopback, private (RFC 1918), shared (CGNAT), link-local, unique-local and
/// unspecified addresses: what a public page must not lead visawatch into.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// A URL whose host is a private address or a `localhost` name.
pub fn host_is_private(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => is_private(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// The system's resolver, with failures that name the host (after a
/// redirect, reqwest's own error still names the first URL). The guarded
/// client's drops private addresses; a name that resolves only to those is
/// refused.
struct Resolver {
    public_only: bool,
}

/// A name that did not resolve, found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("failed to lookup {host}: {cause}")]
struct LookupFailed {
    host: String,
    cause: std::io::Error,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let public_only = self.public_only;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|all| all.collect::<Vec<std::net::SocketAddr>>());
            let all = match found {
                Ok(all) => all,
                Err(cause) => return Err(Box::new(LookupFailed { host, cause }) as _),
            };
            let addrs = if public_only {
                public_addresses(&host, all)?
            } else {
                all
            };
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The host whose lookup failed, if that is what `e` is about.
fn failed_lookup(e: &reqwest::Error) -> Option<String> {
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        if let Some(l) = s.downcast_ref::<LookupFailed>() {
            return Some(l.host.clone());
        }
        cur = s.source();
    }
    None
}

/// The public ones of a name's addresses, or an error naming the name.
fn public_addresses(
    host: &str,
    all: Vec<std::net::SocketAddr>,
) -> Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let public: Vec<_> = all.iter().copied().filter(|a| !is_private(a.ip())).collect();
    if public.is_empty() && !all.is_empty() {
        return Err(format!(
            "{PRIVATE}: {host} resolves to {}; set allow_private = true on the source if that is intended",
            all[0].ip()
        )
        .into());
    }
    Ok(public)
}

/// The shared HTTP client with its limits.
pub struct Fetcher {
    /// For public sources: refuses redirects and DNS answers into private
    /// networks, so a page on (or a man in the middle of) a public host
    /// cannot make visawatch read an internal service and mail it out.
    guarded: std::sync::OnceLock<Result<reqwest::Client, FetchError>>,
    /// For sources that live in a private network themselves (or say
    /// `allow_private = true`).
    open: std::sync::OnceLock<Result<reqwest::Client, FetchError>>,
    settings: Settings,
    global: Arc<Semaphore>,
    /// A run's stop request: fetches waiting for their turn do not start.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// `respect_robots`: each origin's rules.
    robots: Option<RobotsRules>,
}

/// `respect_robots`: each origin's robots.txt, read once per run unless
/// the store had it from the last day, and the files this run read (for
/// the store to keep).
struct RobotsRules {
    known: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Rules>>>>,
    fetched: Mutex<Vec<RobotsFile>>,
}

enum Rules {
    Read(robotxt::Robots),
    /// Not readable (a 5xx, 429 or no answer): RFC 9309 says fetch nothing.
    Unreachable(String),
}

/// The name robots.txt groups are matched against.
const ROBOTS_AGENT: &str = "visawatch";

/// One host's share of a run: its request slots, and when its next request
/// may start (`per_host_gap_ms`).
struct Host {
    slots: Semaphore,
    next_start: tokio::sync::Mutex<tokio::time::Instant>,
}

/// What `per_host` counts as one host: its name and port.
pub fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Fetcher {
    /// The settings the fetcher was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A fetcher for the given (url, allow_private) sources. The clients
    /// they need are built now (building one reads the system's root
    /// certificates: callers do it off the async threads); another is built
    /// if a later fetch needs it.
    pub fn new<'a>(
        settings: &Settings,
        sources: impl IntoIterator<Item = (&'a Url, bool)>,
    ) -> Result<Self, FetchError> {
        let f = Fetcher {
            guarded: std::sync::OnceLock::new(),
            open: std::sync::OnceLock::new(),
            settings: settings.clone(),
            global: Arc::new(Semaphore::new(settings.concurrency)),
            hosts: Mutex::new(HashMap::new()),
            stop: None,
            robots: None,
        };
        let (mut private, mut public) = (false, false);
        for (url, allow_private) in sources {
            let p = allow_private || host_is_private(url);
            private |= p;
            public |= !p;
        }
        if public {
            f.client_for(false)?;
        }
        if private {
            f.client_for(true)?;
        }
        Ok(f)
    }

    /// Obeys each host's robots.txt, starting from the files of `cached`
    /// (those the store read in the last day).
    pub fn with_robots(mut self, cached: Vec<RobotsFile>) -> Self {
        let known = cached
            .into_iter()
            .map(|f| {
                (
                    f.origin.clone(),
                    Arc::new(tokio::sync::OnceCell::new_with(Some(rules_of(&f)))),
                )
            })
            .collect();
        self.robots = Some(RobotsRules {
            known: Mutex::new(known),
            fetched: Mutex::new(Vec::new()),
        });
        self
    }

    /// The robots.txt files this run read (none without `respect_robots`).
    pub fn fetched_robots(&self) -> Vec<RobotsFile> {
        self.robots
            .as_ref()
            .map(|r| std::mem::take(&mut *r.fetched.lock().expect("robots poisoned")))
            .unwrap_or_default()
    }

    /// Fetches that have not started when `stop` turns true never start.
    pub fn with_stop(mut self, stop: Option<tokio::sync::watch::Receiver<bool>>) -> Self {
        self.stop = stop;
        self
    }

    /// The client for a source that may (or may not) enter private networks.
    fn client_for(&self, private: bool) -> Result<&reqwest::Client, FetchError> {
        let cell = if private { &self.open } else { &self.guarded };
        cell.get_or_init(|| client(&self.settings, !private))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn host(&self, url: &Url) -> Arc<Host> {
        let key = host_key(url);
        let mut hosts = self.hosts.lock().expect("host map poisoned");
        hosts
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Host {
                    slots: Semaphore::new(self.settings.per_host),
                    next_start: tokio::sync::Mutex::new(tokio::time::Instant::now()),
                })
            })
            .clone()
    }

    /// Fetches a page, retrying transient failures. `validators` (when
    /// conditional GET is on) may turn the answer into [`Fetched::NotModified`].
    pub async fn fetch(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        allow_private: bool,
    ) -> Result<Fetched, FetchError> {
        let client = self.client_for(allow_private || host_is_private(url))?;
        let base = Duration::from_millis(self.settings.retry_backoff_ms);
        let mut attempt = 0;
        let host = self.host(url);
        let gap = Duration::from_millis(self.settings.per_host_gap_ms);
        if let Some(rules) = &self.robots {
            self.obey_robots(rules, client, url, &host).await?;
        }
        loop {
            let result = {
                // Permits are held only while a request is in flight, not
                // while backing off.
                let _turn = self.take_turn(&host, gap).await;
                // Asked to stop while this waited its turn: it does not start.
                if self.stop.as_ref().is_some_and(|s| *s.borrow()) {
                    return Err(FetchError::Stopped);
                }
                self.fetch_once(client, url, validators).await
            };
            // A 429 or 503 with Retry-After pauses the whole host for that
            // long (at most an hour); other hosts go on.
            if let Err(FetchError::Status {
                status: 429 | 503,
                retry_after: Some(after),
                ..
            }) = &result
            {
                let until = tokio::time::Instant::now() + after.0.min(Duration::from_secs(3600));
                let mut next = host.next_start.lock().await;
                *next = (*next).max(until);
            }
            match result {
                Err(e) if attempt < self.settings.retries => match e.retry_delay(attempt, base) {
                    Some(delay) => {
                        tracing::debug!(%url, error = %e, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Waits for the host's turn, then a global slot: sources waiting for
    /// a busy host hold no global slot meanwhile. The host's pace is
    /// `gap` between starts, and its own Retry-After when it asked for a pause.
    async fn take_turn<'a>(
        &'a self,
        host: &'a Host,
        gap: Duration,
    ) -> (tokio::sync::SemaphorePermit<'a>, tokio::sync::SemaphorePermit<'a>) {
        let host_slot = host.slots.acquire().await.expect("semaphore closed");
        let start = {
            let mut next = host.next_start.lock().await;
            let start = (*next).max(tokio::time::Instant::now());
            *next = start + gap;
            start
        };
        if start > tokio::time::Instant::now() {
            tokio::time::sleep_until(start).await;
        }
        let global = self.global.acquire().await.expect("semaphore closed");
        (host_slot, global)
    }

    /// `Err(Robots)` when the origin's robots.txt forbids `url` (read now
    /// if this run has not read it yet, in the host's turn like any request).
    async fn obey_robots(
        &self,
        rules: &RobotsRules,
        client: &reqwest::Client,
        url: &Url,
        host: &Host,
    ) -> Result<(), FetchError> {
        let origin = url.origin().ascii_serialization();
        let cell = rules
            .known
            .lock()
            .expect("robots poisoned")
            .entry(origin.clone())
            .or_default()
            .clone();
        let found = cell
            .get_or_init(|| async {
                let (rules_now, file) = self.read_robots(client, &origin, host).await;
                if let Some(file) = file {
                    rules.fetched.lock().expect("robots poisoned").push(file);
                }
                rules_now
            })
            .await;
        let detail = match found {
            Rules::Read(robots) => {
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                if robots.is_allowed(&path) {
                    return Ok(());
                }
                format!("disallowed by {origin}/robots.txt")
            }
            Rules::Unreachable(why) => {
                format!("{origin}/robots.txt could not be read ({why}), so nothing of that host is fetched")
            }
        };
        Err(FetchError::Robots {
            url: url.to_string(),
            detail,
        })
    }

    /// Reads `origin/robots.txt`: the rules, and the file to keep for the
    /// day (none when unreachable: it is asked again next run).
    async fn read_robots(
        &self,
        client: &reqwest::Client,
        origin: &str,
        host: &Host,
    ) -> (Rules, Option<RobotsFile>) {
        let Ok(robots_url) = Url::parse(&format!("{origin}/robots.txt")) else {
            return (Rules::Unreachable("not a URL".into()), None);
        };
        let gap = Duration::from_millis(self.settings.per_host_gap_ms);
        let _turn = self.take_turn(host, gap).await;
        let file = |status: u16, body: Vec<u8>| RobotsFile {
            origin: origin.to_string(),
            fetched_at: crate::model::stamp(&chrono::Utc::now()),
            status,
            body,
        };
        let mut resp = match client.get(robots_url.clone()).send().await {
            Ok(resp) => resp,
            Err(e) => {
                return (
                    Rules::Unreachable(self.classify(&robots_url, e).to_string()),
                    None,
                );
            }
        };
        let status = resp.status();
        if status.is_success() {
            let mut body = Vec::new();
            loop {
                match resp.chunk().await {
                    // Rules past the limit are not read (RFC 9309: 500 KiB at least).
                    Ok(Some(chunk)) if body.len() < robotxt::BYTE_LIMIT => body.extend_from_slice(&chunk),
                    Ok(_) => break,
                    Err(e) => {
                        return (
                            Rules::Unreachable(self.classify(&robots_url, e).to_string()),
                            None,
                        );
                    }
                }
            }
            body.truncate(robotxt::BYTE_LIMIT);
            let f = file(status.as_u16(), body);
            (rules_of(&f), Some(f))
        } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            // No robots.txt (404, 403…): everything may be fetched.
            let f = file(status.as_u16(), Vec::new());
            (rules_of(&f), Some(f))
        } else {
            (Rules::Unreachable(format!("HTTP {}", status.as_u16())), None)
        }
    }

    async fn fetch_once(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: Option<&Validators>,
    ) -> Result<Fetched, FetchError> {
        let mut req = client.get(url.clone());
        if self.settings.conditional_get
            && let Some(v) = validators
        {
            if let Some(etag) = &v.etag {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let mut resp = req.send().await.map_err(|e| self.classify(url, e))?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                retry_after: retry_after(resp.headers()),
            });
        }
        let limit = self.settings.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        // Content-Length is the compressed size; the streaming count below
        // (after decompression) is what stops gzip bombs.
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let headers = resp.headers().clone();
        let final_url = resp.url().to_string();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(url, e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let kind = body_kind(content_type, &body).map_err(|content_type| FetchError::Unsupported {
            url: url.to_string(),
            content_type,
        })?;
        // A PDF is bytes for the PDF reader, never text to decode.
        let (html, charset, charset_source) = if kind == BodyKind::Pdf {
            (String::new(), "binary", CharsetSource::Http)
        } else {
            let (html, encoding, source) =
                decode(&body, content_type).map_err(|detail| FetchError::Decode {
                    url: url.to_string(),
                    charset: detail.0.to_string(),
                    detail: detail.1,
                })?;
            (html, encoding.name(), source)
        };
        let text_header = |name| {
            headers
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Fetched::Page(Page {
            final_url,
            status: status.as_u16(),
            etag: text_header(header::ETAG),
            last_modified: text_header(header::LAST_MODIFIED),
            html,
            kind,
            charset,
            charset_source,
            bytes: body.len(),
            raw: if kind == BodyKind::Pdf { body } else { Vec::new() },
        }))
    }

    fn classify(&self, url: &Url, e: reqwest::Error) -> FetchError {
        let url_s = url.to_string();
        if e.is_timeout() {
            return FetchError::Timeout {
                url: url_s,
                secs: self.settings.timeout_secs,
            };
        }
        if error_chain(&e).contains(PRIVATE) {
            return FetchError::Private {
                url: url_s,
                detail: error_chain(&e),
            };
        }
        if e.is_redirect() {
            return FetchError::Redirect {
                url: url_s,
                detail: error_chain(&e),
            };
        }
        if e.is_connect() {
            if let Some(host) = failed_lookup(&e) {
                return FetchError::Dns {
                    redirected_from: (Some(host.as_str()) != url.host_str()).then_some(url_s),
                    host,
                };
            }
            return FetchError::Connect {
                url: url_s,
                detail: cause_chain(&e),
            };
        }
        FetchError::Other {
            url: url_s,
            detail: error_chain(&e),
        }
    }
}

/// What went wrong under reqwest's own message, which repeats the URL the
/// report already names ("error sending request for url (…)").
fn cause_chain(e: &reqwest::Error) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let msg = s.to_string();
        // hyper's wrapper adds nothing a reader can use.
        if !msg.starts_with("client error (") && !out.iter().any(|m| m.contains(&msg)) {
            out.push(msg);
        }
        cur = s.source();
    }
    if out.is_empty() {
        e.to_string()
    } else {
        out.join(": ")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(RetryAfter(Duration::from_secs(secs)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(RetryAfter(Duration::from_secs(secs)))
}

/// Magic numbers of formats served where a page was expected. The bytes
/// decide over the header: a PDF sent as `text/html` is still a PDF.
const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
    (b"RIFF", "application/octet-stream (RIFF)"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1F\x8B", "application/gzip"),
    (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "application/x-ole-storage"),
    (b"%!PS", "application/postscript"),
    (b"7z\xBC\xAF\x27\x1C", "application/x-7z-compressed"),
    (b"Rar!\x1A\x07", "application/vnd.rar"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
];

/// Decides what a body is from its `Content-Type` and magic bytes; `Err`
/// carries the unsupported type. Without a header, a body with NUL bytes in
/// its first KiB is binary and anything else is read as HTML.
pub fn body_kind(content_type: Option<&str>, body: &[u8]) -> Result<BodyKind, String> {
    if let Some((_, t)) = MAGIC.iter().find(|(m, _)| body.starts_with(m)) {
        return match *t {
            "application/pdf" => Ok(BodyKind::Pdf),
            other => Err(other.to_string()),
        };
    }
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    match mime.as_deref() {
        Some("text/html" | "application/xhtml+xml") => Ok(BodyKind::Html),
        Some("text/plain") => Ok(BodyKind::Text),
        // Declared a PDF but without its magic bytes: not one.
        Some("application/pdf") => Err("application/pdf (not a PDF: no %PDF- header)".into()),
        Some(other) => Err(other.to_string()),
        None if body[..body.len().min(1024)].contains(&0) => Err("application/octet-stream".into()),
        None => Ok(BodyKind::Html),
    }
}

/// Decodes a body to text. Order: a byte-order mark (it is the bytes
/// themselves, so it beats any label, as browsers do), the HTTP charset, a
/// `<meta>` declaration in the first 4 KiB, then statistical detection.
///
/// Fails (with the charset and a detail) only when the chosen charset turns
/// more than 2% of the text into replacement characters: that is not a page
/// anyone could read, and storing it would fake a change.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<(String, &'static Encoding, CharsetSource), (&'static str, String)> {
    let (encoding, source) = if let Some((enc, _)) = Encoding::for_bom(body) {
        (enc, CharsetSource::Bom)
    } else if let Some(enc) = content_type.and_then(charset_param).and_then(label) {
        (enc, CharsetSource::Http)
    } else if let Some(enc) = meta_charset(body) {
        (enc, CharsetSource::Meta)
    } else {
        let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        det.feed(body, true);
        // No TLD hint: with "rs" chardetng leans Cyrillic and misreads Latin Serbian.
        (
            det.guess(None, chardetng::Utf8Detection::Allow),
            CharsetSource::Detected,
        )
    };
    let (text, actual, had_errors) = encoding.decode(body);
    if had_errors {
        let bad = text.chars().filter(|&c| c == '\u{FFFD}').count();
        let total = text.chars().count().max(1);
        if bad * 50 > total {
            return Err((
                actual.name(),
                format!("{bad} of {total} characters are not valid {}", actual.name()),
            ));
        }
    }
    Ok((text.into_owned(), actual, source))
}

fn label(name: &str) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(name.trim().trim_matches(['"', '\'']).as_bytes())?;
    // A page cannot really be UTF-16 if its ASCII meta was readable; browsers do the same.
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        Some(encoding_rs::UTF_8)
    } else {
        Some(enc)
    }
}

fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then_some(v.trim())
    })
}

/// Finds `<meta charset=…>` or `<meta http-equiv=… content="…; charset=…">`.
fn meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    static META: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r#"(?i)<meta\b[^>]*?charset\s*=\s*["']?\s*([a-z0-9_:.\-]+)"#).unwrap()
    });
    let head = &body[..body.len().min(4096)];
    let caps = META.captures(head)?;
    label(std::str::from_utf8(&caps[1]).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_only_windows_1250_decodes() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1250.encode(
            "<meta charset=\"windows-1250\"><p>Taksa za boravak: 15.000 dinara, šest meseci, čekanje</p>",
        );
        let (text, enc, src) = decode(&bytes, Some("text/html")).unwrap();
        assert!(text.contains("šest meseci, čekanje"), "{text}");
        assert_eq!(enc, encoding_rs::WINDOWS_1250);
        assert_eq!(src, CharsetSource::Meta);
    }

    #[test]
    fn http_equiv_meta_is_read() {
        let (bytes, _, _) = encoding_rs::ISO_8859_2.encode(
            "<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-2\"><p>Žalba</p>",
        );
        let (text, _, src) = decode(&bytes, None).unwrap();
        assert!(text.contains("Žalba"));
        assert_eq!(src, CharsetSource::Meta);
    }

    #[test]
    fn bom_beats_header_and_header_beats_meta() {
        let mut b = vec![0xEF, 0xBB, 0xBF];
        b.extend_from_slice("<p>ë</p>".as_bytes());
        let (t, _, s) = decode(&b, Some("text/html; charset=iso-8859-1")).unwrap();
        assert_eq!((t.as_str(), s), ("<p>ë</p>", CharsetSource::Bom));
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode("<meta charset=utf-8><p>дана</p>");
        let (t, _, s) = decode(&bytes, Some("text/html; charset=windows-1251")).unwrap();
        assert!(t.contains("дана"));
        assert_eq!(s, CharsetSource::Http);
    }

    #[test]
    fn undeclared_cyrillic_is_detected() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1251
            .encode("<p>Страни држављани могу боравити до 90 дана у периоду од шест месеци без визе.</p>");
        let (t, _, s) = decode(&bytes, None).unwrap();
        assert!(t.contains("боравити до 90 дана"), "{t}");
        assert_eq!(s, CharsetSource::Detected);
    }

    #[test]
    fn garbage_declared_utf8_is_a_decode_error() {
        let body: Vec<u8> = (0..2000u32)
            .map(|i| if i % 3 == 0 { 0xFF } else { b'a' })
            .collect();
        let err = decode(&body, Some("text/html; charset=utf-8")).unwrap_err();
        assert_eq!(err.0, "UTF-8");
    }

    #[test]
    fn body_kind_by_header_and_magic() {
        assert_eq!(
            body_kind(Some("text/html; charset=utf-8"), b"<p>x"),
            Ok(BodyKind::Html)
        );
        assert_eq!(
            body_kind(Some("application/xhtml+xml"), b"<p>x"),
            Ok(BodyKind::Html)
        );
        assert_eq!(body_kind(Some("Text/Plain"), b"x"), Ok(BodyKind::Text));
        assert_eq!(body_kind(None, b"<p>x"), Ok(BodyKind::Html));
        assert_eq!(body_kind(Some("text/html"), b"%PDF-1.7\n"), Ok(BodyKind::Pdf));
        assert_eq!(
            body_kind(Some("image/png"), b"\x89PNG\r\n\x1a\n"),
            Err("image/png".into())
        );
        assert_eq!(
            body_kind(Some("application/octet-stream"), b"abc"),
            Err("application/octet-stream".into())
        );
        assert_eq!(body_kind(None, b"ab\0c"), Err("application/octet-stream".into()));
    }

    #[test]
    fn private_networks_are_told_apart() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(host_is_private(&url("http://localhost:8080/")));
        assert!(host_is_private(&url("http://[::1]/")));
        assert!(!host_is_private(&url("https://mpb.rks-gov.net/")));
        // A name that resolves only into private networks is refused; mixed answers keep the public ones.
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let e = public_addresses("intranet.example", vec![a("10.0.0.5:0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("intranet.example resolves to 10.0.0.5"), "{e}");
        assert_eq!(
            public_addresses("x", vec![a("10.0.0.5:0"), a("93.184.216.34:0")]).unwrap(),
            [a("93.184.216.34:0")]
        );
    }

    #[test]
    fn retry_policy() {
        let base = Duration::from_millis(100);
        let s = |status| FetchError::Status {
            url: "u".into(),
            status,
            retry_after: None,
        };
        assert!(s(404).retry_delay(0, base).is_none());
        assert_eq!(s(503).retry_delay(1, base), Some(Duration::from_millis(200)));
        assert!(s(429).retry_delay(0, base).is_some());
        let ra = FetchError::Status {
            url: "u".into(),
            status: 503,
            retry_after: Some(RetryAfter(Duration::from_secs(2))),
        };
        assert_eq!(ra.retry_delay(0, base), Some(Duration::from_secs(2)));
    }
}
