//! Delivery of the outbox: builds each queued alert into a MIME message
//! (lettre) and hands it to SMTP, or writes `.eml` files when no SMTP server
//! is configured.
//!
//! What to say is `alert`'s job and what is owed is `store`'s; this module
//! only sends and records the outcome per recipient: sent, rejected for good
//! (a 5xx for that address), or retried later with exponential backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use crate::config::{Config, Email, Smtp};
use crate::model::{Outgoing, Queued};
use crate::store::{Store, StoreError};

pub const USERNAME_ENV: &str = "VISAWATCH_SMTP_USERNAME";
pub const PASSWORD_ENV: &str = "VISAWATCH_SMTP_PASSWORD";
/// Longest wait between two delivery attempts.
const BACKOFF_MAX_SECS: u64 = 6 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("SMTP credentials: set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")]
    HalfCredentials,
    #[error("tls_ca_file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("SMTP TLS setup for {host}: {detail}")]
    Tls { host: String, detail: String },
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox { path: PathBuf, source: std::io::Error },
    #[error("message {message_id}: {detail}")]
    Build { message_id: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where alerts go.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        url: String,
        /// Bounds a whole SMTP conversation: lettre's own timeout covers
        /// only connecting, and a relay that accepts and then says nothing
        /// would hang the run.
        timeout: Duration,
    },
    /// lettre's file transport: one `<uuid>.eml` per message.
    Files {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

impl Mailer {
    /// The SMTP transport of `[email]`, or the outbox folder under `data`.
    pub fn new(email: &Email, data: &Path, timeout: Duration) -> Result<Mailer, NotifyError> {
        match &email.smtp {
            Some(smtp) => smtp_transport(smtp, timeout),
            None => {
                let dir = data.join("outbox");
                std::fs::create_dir_all(&dir).map_err(|source| NotifyError::Outbox {
                    path: dir.clone(),
                    source,
                })?;
                Ok(Mailer::Files {
                    transport: AsyncFileTransport::new(&dir),
                    dir,
                })
            }
        }
    }

    /// "smtp://host:port" or "files in DIR", for reports.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { url, .. } => url.clone(),
            Mailer::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends one message to `rcpts`; the server's reply on success.
    pub async fn send(&self, msg: &Message, rcpts: &[Address]) -> Result<String, SendError> {
        let from = msg.envelope().from().cloned();
        let envelope = lettre::address::Envelope::new(from, rcpts.to_vec()).map_err(|e| SendError {
            permanent: true,
            connection: false,
            detail: e.to_string(),
        })?;
        let bytes = msg.formatted();
        match self {
            Mailer::Smtp {
                transport, timeout, ..
            } => match tokio::time::timeout(*timeout, transport.send_raw(&envelope, &bytes)).await {
                Err(_) => Err(SendError {
                    permanent: false,
                    connection: true,
                    detail: format!("the SMTP server did not finish within {}s", timeout.as_secs()),
                }),
                Ok(Ok(resp)) => Ok(format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                )),
                Ok(Err(e)) => Err(SendError {
                    permanent: e.is_permanent(),
                    connection: !e.is_permanent() && !e.is_transient(),
                    detail: smtp_error_text(&e),
                }),
            },
            Mailer::Files { transport, dir } => match transport.send_raw(&envelope, &bytes).await {
                Ok(id) => Ok(format!("written to {}", dir.join(format!("{id}.eml")).display())),
                Err(e) => Err(SendError {
                    permanent: false,
                    connection: true,
                    detail: format!("cannot write to {}: {e}", dir.display()),
                }),
            },
        }
    }

    fn one_envelope_per_recipient(&self) -> bool {
        // With SMTP a 5xx for one RCPT aborts the whole transaction in lettre:
        // one envelope each keeps a bad address from blocking the others.
        matches!(self, Mailer::Smtp { .. })
    }
}

/// A failed send, classified for the retry decision.
#[derive(Debug, Clone)]
pub struct SendError {
    /// A 5xx reply: retrying will not help.
    pub permanent: bool,
    /// The server could not be reached or the conversation broke off:
    /// stop this round, the next messages would fail the same way.
    pub connection: bool,
    pub detail: String,
}

fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn smtp_transport(smtp: &Smtp, timeout: Duration) -> Result<Mailer, NotifyError> {
    let tls_err = |e: lettre::transport::smtp::Error| NotifyError::Tls {
        host: smtp.host.clone(),
        detail: e.to_string(),
    };
    let mut params = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.tls_ca_file {
        let pem = std::fs::read(path).map_err(|e| NotifyError::CaFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| NotifyError::CaFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        params = params.add_root_certificate(cert);
    }
    let params = params.build().map_err(tls_err)?;
    let credentials = match (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        (Ok(user), Ok(pass)) => Some(Credentials::new(user, pass)),
        (Err(_), Err(_)) => None,
        _ => return Err(NotifyError::HalfCredentials),
    };
    // A password never crosses the wire in clear unless the operator said so:
    // with credentials, a server that offers no STARTTLS is refused.
    let tls = if smtp.implicit_tls {
        Tls::Wrapper(params)
    } else if credentials.is_some() && !smtp.allow_insecure_auth {
        Tls::Required(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(c) = credentials {
        builder = builder.credentials(c);
    }
    Ok(Mailer::Smtp {
        timeout,
        transport: builder.build(),
        url: format!(
            "{}://{}:{}",
            if smtp.implicit_tls { "smtps" } else { "smtp" },
            smtp.host,
            smtp.port
        ),
    })
}

/// What one delivery round did, counted in messages.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Delivered {
    /// Messages every recipient now has.
    pub sent: usize,
    /// Messages due that still owe someone (retried later) or were rejected,
    /// and those waiting for a recipient.
    pub failed: usize,
    /// Of `failed`: messages nobody is configured to receive yet.
    pub unaddressed: usize,
    /// Of `failed`: messages the server refused for good (a 5xx for each
    /// recipient it owes), or that cannot be built: never retried.
    pub rejected: usize,
}

/// The Message-ID of a queued alert: `<kind.source.nonce@sender's domain>`,
/// the nonce from the outbox row's sequence number and contents. Made once,
/// when the alert is queued, and kept through every retry (a duplicate
/// after a crash then carries the same id; see `deliver`).
pub fn message_id(q: &Queued, source_id: Option<&str>, created_at: &str, seq: i64) -> String {
    let domain = q
        .from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("visawatch.localhost");
    let nonce =
        blake3::hash(format!("{seq}\0{created_at}\0{source_id:?}\0{}", q.alert.subject).as_bytes()).to_hex();
    format!(
        "<{}.{}.{}@{domain}>",
        q.alert.kind.as_str(),
        source_id.unwrap_or("visawatch"),
        &nonce[..16]
    )
}

/// Which message an alert replies to: every later alert about a source
/// threads under its first one (kept with old outbox rows that stored it).
fn thread_root(store: &Store, o: &Outgoing) -> Result<Option<String>, StoreError> {
    if o.thread_root.is_some() {
        return Ok(o.thread_root.clone());
    }
    let Some(source) = &o.source_id else {
        return Ok(None);
    };
    Ok(store
        .first_message_of(source)?
        .filter(|root| root != &o.message_id))
}

/// `Auto-Submitted: auto-generated` (RFC 3834): vacation and other
/// automatic replies must not answer an alert.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// Builds the MIME message of an outbox row: `multipart/alternative`, the
/// stable Message-ID, and threading headers pointing at the source's first alert.
pub fn build(o: &Outgoing) -> Result<Message, NotifyError> {
    let bad = |detail: String| NotifyError::Build {
        message_id: o.message_id.clone(),
        detail,
    };
    let from: Mailbox = o
        .from
        .parse()
        .map_err(|e| bad(format!("from `{}`: {e}", o.from)))?;
    let mut b = Message::builder()
        .message_id(Some(o.message_id.clone()))
        .from(from)
        .subject(crate::alert::one_line(&o.subject))
        .header(AutoSubmitted);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&o.created_at) {
        b = b.date(t.into());
    }
    if let Some(root) = &o.thread_root {
        b = b.in_reply_to(root.clone()).references(root.clone());
    }
    for to in &o.to {
        b = b.to(Mailbox::new(None, to.clone()));
    }
    b.multipart(MultiPart::alternative_plain_html(o.text.clone(), o.html.clone()))
        .map_err(|e| bad(e.to_string()))
}

/// SIGTERM as delivery sees it: once `rx` turns true no new message starts,
/// and the one in flight gets `grace` to finish before it is abandoned
/// (pending again; see [`Store::recover_sending`]).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub rx: Option<tokio::sync::watch::Receiver<bool>>,
    pub grace: Duration,
}

impl Stop {
    pub fn requested(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves when a stop is requested; never without a receiver.
    async fn wait(&self) {
        match self.rx.clone() {
            Some(mut rx) => {
                if rx.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// What is noted on a delivery found `sending` at the start of a round.
const INTERRUPTED: &str =
    "interrupted while the server had it: sent again, a second copy (same Message-ID) is possible";

/// Sends every due outbox message (every pending one when `force`), oldest
/// first, and records each recipient's outcome at once, so a crash mid-round
/// re-sends at most the one message in flight.
///
/// Recipients are decided here for alerts that had none when queued
/// (`Config::recipients`); until someone is configured they wait, counted
/// as not delivered. A stop request ends the round between messages.
pub async fn deliver(
    store: &mut Store,
    mailer: &Mailer,
    config: &Config,
    force: bool,
    stop: &Stop,
) -> Result<Delivered, NotifyError> {
    let now = chrono::Utc::now();
    let mut counts = Delivered::default();
    for (recipient, message_id) in store.recover_sending(INTERRUPTED)? {
        tracing::warn!(%message_id, %recipient, "delivery was interrupted while the server had it; sending again");
    }
    for (outbox_id, source_id) in store.unaddressed()? {
        let recipients = config.recipients(source_id.as_deref());
        if recipients.is_empty() {
            counts.failed += 1;
            counts.unaddressed += 1;
        } else {
            tracing::info!(
                outbox_id,
                recipients = recipients.len(),
                "alert that waited for recipients is addressed"
            );
            store.address(outbox_id, &recipients)?;
        }
    }
    let backoff_secs = config.email.retry_backoff_secs;
    let mut server_down: Option<String> = None;
    // A page of alerts at a time: a run that changed 10,000 sources does
    // not hold 10,000 messages in memory to send them.
    let mut after = 0;
    loop {
        let mut due = store.due_after(now.timestamp(), force, after, DUE_PAGE)?;
        let Some(last) = due.last() else { break };
        after = last.outbox_id;
        for o in &mut due {
            o.thread_root = thread_root(store, o)?;
        }
        for o in &due {
            let next_at = |attempts: u32| {
                let delay = backoff_secs
                    .saturating_mul(1u64 << attempts.min(20))
                    .min(BACKOFF_MAX_SECS);
                Some(now.timestamp() + delay as i64)
            };
            if server_down.is_some() || stop.requested() {
                // Not attempted: keeps its schedule, counts as not delivered.
                tracing::debug!(message_id = %o.message_id, "delivery skipped (server unreachable or stopping)");
                counts.failed += 1;
                continue;
            }
            let msg = match build(o) {
                Ok(m) => m,
                Err(e) => {
                    for (id, _, _) in &o.pending {
                        store.mark_failed(*id, &e.to_string(), None)?;
                    }
                    tracing::error!(message_id = %o.message_id, error = %e, "alert cannot be built");
                    counts.failed += 1;
                    counts.rejected += 1;
                    continue;
                }
            };
            let batches: Vec<Vec<&(i64, Address, u32)>> = if mailer.one_envelope_per_recipient() {
                o.pending.iter().map(|p| vec![p]).collect()
            } else {
                vec![o.pending.iter().collect()]
            };
            let mut all_sent = true;
            // Whether some recipient's delivery is left for a later try.
            let mut retried = false;
            for batch in batches {
                if stop.requested() {
                    all_sent = false;
                    retried = true;
                    break;
                }
                let rcpts: Vec<Address> = batch.iter().map(|(_, r, _)| r.clone()).collect();
                let ids: Vec<i64> = batch.iter().map(|(id, _, _)| *id).collect();
                store.mark_sending(&ids)?;
                let sent = {
                    let send = mailer.send(&msg, &rcpts);
                    tokio::pin!(send);
                    tokio::select! {
                        r = &mut send => Some(r),
                        () = stop.wait() => tokio::time::timeout(stop.grace, &mut send).await.ok(),
                    }
                };
                let Some(sent) = sent else {
                    // Stopping, and the server did not finish within the grace:
                    // abandoned, pending again (it may still have arrived).
                    store.recover_sending(INTERRUPTED)?;
                    tracing::warn!(message_id = %o.message_id, "stopping: delivery abandoned; it stays pending");
                    all_sent = false;
                    retried = true;
                    break;
                };
                match sent {
                    Ok(reply) => {
                        let at = crate::clock::now_stamp();
                        for (id, rcpt, _) in &batch {
                            store.mark_sent(*id, &at)?;
                            tracing::info!(message_id = %o.message_id, recipient = %rcpt, %reply, "alert sent");
                        }
                    }
                    Err(e) => {
                        all_sent = false;
                        retried |= !e.permanent;
                        for (id, rcpt, attempts) in &batch {
                            let next = if e.permanent { None } else { next_at(*attempts) };
                            store.mark_failed(*id, &e.detail, next)?;
                            tracing::warn!(
                                message_id = %o.message_id, recipient = %rcpt, error = %e.detail,
                                permanent = e.permanent, "alert not delivered"
                            );
                        }
                        if e.connection {
                            server_down = Some(e.detail.clone());
                            // The batches not tried keep their schedule.
                            retried = true;
                            break;
                        }
                    }
                }
            }
            if all_sent {
                counts.sent += 1;
            } else {
                counts.failed += 1;
                counts.rejected += usize::from(!retried);
            }
        }
    }
    Ok(counts)
}

/// Alerts read from the outbox at a time.
const DUE_PAGE: i64 = 64;

/// What a round of webhook deliveries did.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct HooksDelivered {
    pub sent: usize,
    /// Left for a later try (429, 5xx, no answer) or rejected.
    pub failed: usize,
    /// Of `failed`: refused for good (another 4xx), or no longer configured.
    pub rejected: usize,
}

/// The client webhooks are posted with: the run's timeout, no redirects (a
/// receiver that moved is told, not followed).
pub fn hook_client(config: &Config) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(config.settings.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(config.settings.user_agent.clone())
        .build()
        .expect("a client without custom TLS builds")
}

/// Longest Retry-After honoured (a receiver asking for a week is retried
/// at the usual pace).
const RETRY_AFTER_MAX_SECS: i64 = 24 * 3600;

/// Posts the webhook deliveries due (all pending ones when `force`): 2xx
/// is sent; 429, 5xx, timeouts and connection errors are retried with
/// exponential backoff, later if the receiver's Retry-After says so; any
/// other status is rejected with its first 200 characters. At least once:
/// a crash after the POST and before the mark repeats that delivery, with
/// the same `webhook-id`.
pub async fn deliver_hooks(
    store: &mut Store,
    config: &Config,
    force: bool,
    stop: &Stop,
) -> Result<HooksDelivered, NotifyError> {
    let mut counts = HooksDelivered::default();
    let now = chrono::Utc::now().timestamp();
    let mut page = store.hooks_due(now, force, 0, DUE_PAGE)?;
    // The client only when something is owed: an unchanged round pays nothing.
    let client = if page.is_empty() {
        return Ok(counts);
    } else {
        hook_client(config)
    };
    // A page at a time, as for emails.
    while let Some(last) = page.last().map(|d| d.id) {
        for due in std::mem::take(&mut page) {
            if stop.requested() {
                counts.failed += 1;
                continue;
            }
            let Some(hook) = config.webhooks.iter().find(|w| w.name == due.webhook) else {
                let error = format!("webhook {} is no longer in the config", due.webhook);
                tracing::warn!(webhook = %due.webhook, "delivery rejected: {error}");
                store.mark_hook(due.id, Err((&error, None)))?;
                counts.failed += 1;
                counts.rejected += 1;
                continue;
            };
            store.mark_hook_sending(due.id)?;
            let id = hook_id(due.id);
            let result = post(&client, hook, &id, &due.body).await;
            // The receiver's Retry-After when it gives one (it knows when it
            // will be back), else `retry_backoff_secs` doubling per attempt.
            let retry_at = |after: Option<i64>| {
                let backoff = config
                    .email
                    .retry_backoff_secs
                    .max(1)
                    .saturating_mul(1u64 << due.attempts.min(20))
                    .min(BACKOFF_MAX_SECS) as i64;
                let wait = after.map_or(backoff, |a| a.clamp(1, RETRY_AFTER_MAX_SECS));
                Some(chrono::Utc::now().timestamp() + wait)
            };
            match result {
                Posted::Sent(status) => {
                    store.mark_hook(due.id, Ok(&crate::clock::now_stamp()))?;
                    tracing::info!(webhook = %hook.name, webhook_id = %id, status, "webhook delivered");
                    counts.sent += 1;
                }
                Posted::Retry { error, after } => {
                    store.mark_hook(due.id, Err((&error, retry_at(after))))?;
                    tracing::warn!(webhook = %hook.name, webhook_id = %id, %error, "webhook not delivered; retried later");
                    counts.failed += 1;
                }
                Posted::Rejected(error) => {
                    store.mark_hook(due.id, Err((&error, None)))?;
                    tracing::warn!(webhook = %hook.name, webhook_id = %id, %error, "webhook refused the delivery (not retried)");
                    counts.failed += 1;
                    counts.rejected += 1;
                }
            }
        }
        page = store.hooks_due(now, force, last, DUE_PAGE)?;
    }
    Ok(counts)
}

/// The `webhook-id` of a delivery: the same on every retry.
pub fn hook_id(delivery_id: i64) -> String {
    format!("msg_visawatch_{delivery_id}")
}

/// How one POST went.
pub enum Posted {
    Sent(u16),
    Retry { error: String, after: Option<i64> },
    Rejected(String),
}

/// POSTs `body` to the webhook, signed when it has a secret. Errors never
/// carry the URL (a Slack or Teams URL is a secret).
pub async fn post(client: &reqwest::Client, hook: &crate::config::Webhook, id: &str, body: &str) -> Posted {
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = client
        .post(hook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(secret) = &hook.secret {
        request = request
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                crate::webhook::signature(secret, id, timestamp, body),
            );
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let e = e.without_url();
            let what = if e.is_timeout() {
                "no answer in time"
            } else {
                "cannot connect"
            };
            return Posted::Retry {
                error: format!("{what} ({})", hook.redacted_url()),
                after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Posted::Sent(status.as_u16());
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after_secs);
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let error = format!("HTTP {}: {}", status.as_u16(), text.trim());
    if status.as_u16() == 429 || status.is_server_error() {
        Posted::Retry { error, after }
    } else {
        Posted::Rejected(error)
    }
}

/// Retry-After in seconds: a number of seconds or an HTTP date.
fn retry_after_secs(value: &str) -> Option<i64> {
    if let Ok(secs) = value.trim().parse::<i64>() {
        return Some(secs.max(0));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some((at.timestamp() - chrono::Utc::now().timestamp()).max(0))
}
