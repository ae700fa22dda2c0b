//! The editors' desk: a small web app over the data folder. Editors sign in,
//! see every source's current facts, and work the review queue down; other
//! systems read JSON, Atom feeds and metrics with an API token.
//!
//! - this file: the server, its state, routing, the security headers, who
//!   is asking (session or token), errors as pages;
//! - `auth`: passwords, sessions, CSRF, the sign-in rate limit;
//! - `pages`: the HTML pages (maud: every value escaped);
//! - `api`: JSON, Atom feeds, Prometheus metrics.
//!
//! It reads through the store's query side and writes only reviews and
//! sessions ([`Access::Desk`]: no folder lock, so it runs beside `check` and
//! the daemon). Not for: deciding anything about a source; that is `judge`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::{Config, Web};
use crate::store::{Access, Store, StoreError};

pub mod api;
pub mod auth;
mod ledger;
pub mod pages;

/// The stylesheet, embedded: no file to install, no CDN.
const STYLESHEET: &str = include_str!("desk.css");

/// Everything a request handler may use.
pub struct Desk {
    pub data: PathBuf,
    /// `sources.toml` as last read, and its modification time then.
    config: Mutex<Loaded>,
    /// `Secure` cookies (the desk is reached over https).
    pub secure: bool,
    pub limiter: auth::Limiter,
    /// Open database handles, reused across requests.
    handles: Mutex<Vec<Store>>,
    /// Under the daemon: whether its scheduler still runs (for `/healthz`).
    pub scheduler: Option<Arc<AtomicBool>>,
}

/// The configuration the desk works from, with what its pages derive from
/// it once rather than at every request (with 100,000 sources, sorting
/// their ids or maintainers at each request cost most of the overview's
/// time; the ids' order comes with the configuration,
/// [`crate::config::Config::by_id`]).
#[derive(Clone)]
pub struct Catalog {
    pub config: Arc<Config>,
    /// Every maintainer named, sorted, once each.
    pub maintainers: Arc<[String]>,
}

struct Loaded {
    catalog: Catalog,
    stamp: Option<std::time::SystemTime>,
}

impl Loaded {
    fn new(config: Arc<Config>, stamp: Option<std::time::SystemTime>) -> Loaded {
        let maintainers: std::collections::BTreeSet<String> = config
            .sources
            .iter()
            .flat_map(|s| s.maintainers.iter().map(|a| a.to_string()))
            .collect();
        Loaded {
            catalog: Catalog {
                config,
                maintainers: maintainers.into_iter().collect(),
            },
            stamp,
        }
    }
}

impl Desk {
    pub fn new(data: PathBuf, config: Arc<Config>, scheduler: Option<Arc<AtomicBool>>) -> Desk {
        let secure = config
            .web
            .as_ref()
            .and_then(|w| w.base_url.as_deref())
            .is_some_and(|b| b.starts_with("https://"));
        let stamp = modified(&config.path);
        Desk {
            data,
            config: Mutex::new(Loaded::new(config, stamp)),
            secure,
            limiter: auth::Limiter::default(),
            handles: Mutex::new(Vec::new()),
            scheduler,
        }
    }

    /// The configuration: read again when `sources.toml` changed (a source
    /// added, a maintainer changed; also after the daemon's reload). A file
    /// that no longer loads is logged and the last good one kept.
    pub fn config(&self) -> Arc<Config> {
        self.catalog().config
    }

    /// [`Desk::config`], with what the overview derives from it.
    pub fn catalog(&self) -> Catalog {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = modified(&current.catalog.config.path);
        if stamp.is_some() && stamp != current.stamp {
            match crate::config::load(&current.catalog.config.path) {
                Ok(fresh) => *current = Loaded::new(Arc::new(fresh), stamp),
                Err(e) => {
                    tracing::warn!(error = %e, "desk: sources.toml changed but does not load; keeping the last good one");
                    current.stamp = stamp;
                }
            }
        }
        current.catalog.clone()
    }

    /// Runs `f` on a database handle, off the async threads.
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WebError> {
        let desk = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = desk.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut store = match pooled {
                Some(s) => s,
                None => Store::open(&desk.data, Access::Desk)?,
            };
            let out = f(&mut store);
            // A handle that failed may be broken: only good ones go back.
            if out.is_ok() {
                desk.handles.lock().unwrap_or_else(|e| e.into_inner()).push(store);
            }
            out
        })
        .await
        .map_err(|e| WebError::Internal(format!("request task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "desk: database error");
            WebError::Internal(e.to_string())
        })
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What went wrong, as the page (or JSON) the client gets.
#[derive(Debug)]
pub enum WebError {
    NotFound(String),
    BadRequest(String),
    Forbidden(String),
    Unauthorized,
    TooMany(String),
    Internal(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            WebError::NotFound(m)
            | WebError::BadRequest(m)
            | WebError::Forbidden(m)
            | WebError::TooMany(m) => m.clone(),
            WebError::Unauthorized => "sign in, or send an API token (Authorization: Bearer …)".into(),
            // The detail is in the log; the page says only that it happened.
            WebError::Internal(_) => "something went wrong on the server; the details are in its log".into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, pages::error_page(status, &self.message())).into_response()
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Who {
    /// An editor with a session; `secret` is the session cookie's value
    /// (the key of this session's CSRF tokens).
    Editor { name: String, secret: String },
    /// A system with an API token.
    Token { name: String },
}

impl Who {
    pub fn name(&self) -> &str {
        match self {
            Who::Editor { name, .. } | Who::Token { name } => name,
        }
    }
}

/// The editor behind the session cookie, if any.
pub async fn editor(desk: &Arc<Desk>, headers: &HeaderMap) -> Result<Option<Who>, WebError> {
    let Some(secret) = auth::cookie(headers, auth::SESSION_COOKIE).map(str::to_string) else {
        return Ok(None);
    };
    let hash = auth::secret_hash(&secret);
    let now = crate::clock::now_stamp();
    let user = desk.db(move |s| s.session_user(&hash, &now)).await?;
    Ok(user.map(|(name, _)| Who::Editor { name, secret }))
}

/// An editor's session or an API token (`Authorization: Bearer`, or
/// `?token=` for feed readers that cannot send headers).
pub async fn reader(
    desk: &Arc<Desk>,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Who, WebError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer.or(query_token) {
        let hash = auth::secret_hash(token);
        return match desk.db(move |s| s.token_named(&hash)).await? {
            Some(name) => Ok(Who::Token { name }),
            None => Err(WebError::Unauthorized),
        };
    }
    editor(desk, headers).await?.ok_or(WebError::Unauthorized)
}

/// The desk's routes.
pub fn router(desk: Arc<Desk>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/review", get(pages::review_queue))
        .route("/sources/{id}", get(pages::source))
        .route("/sources/{id}/changes/{at}", get(pages::change_at))
        .route("/changes/{n}", get(pages::change))
        .route("/changes/{n}/review", post(pages::review))
        .route("/feed.atom", get(api::feed))
        .route("/sources/{id}/feed.atom", get(api::source_feed))
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/sources/{id}", get(api::source))
        .route("/api/v1/changes", get(api::changes))
        .route("/api/v1/changes/{n}", get(api::change))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(healthz))
        .route("/static/desk.css", get(stylesheet))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(desk)
}

/// Headers on every response: no script at all, no framing, no sniffing.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// 200 when the database answers (and the daemon's scheduler runs).
async fn healthz(State(desk): State<Arc<Desk>>) -> Response {
    let db = desk.db(|s| s.meta("db_stamp").map(drop)).await;
    let scheduler = desk
        .scheduler
        .as_ref()
        .is_none_or(|alive| alive.load(Ordering::Relaxed));
    match (db, scheduler) {
        (Ok(()), true) => (StatusCode::OK, "ok\n").into_response(),
        (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "database not answering\n").into_response(),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "scheduler stopped\n").into_response(),
    }
}

async fn not_found() -> WebError {
    WebError::NotFound("no such page".into())
}

/// Serves the desk on `web.listen` until `shutdown` resolves; then finishes
/// the requests in flight and returns.
pub async fn serve(
    web: &Web,
    desk: Arc<Desk>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|e| anyhow::anyhow!("[web] listen {}: {e}", web.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "editors' desk listening on http://{addr}/");
    axum::serve(
        listener,
        router(desk).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
