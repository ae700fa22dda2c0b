//! The desk for other systems: JSON (`/api/v1/…`), Atom feeds of material
//! changes, and Prometheus metrics. Each needs an API token (or, for JSON
//! and feeds, an editor's session).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Desk, WebError, Who, reader};
use crate::store::{ChangeDetail, DURATION_BUCKETS_MS, ReviewRow};

type Params = Query<HashMap<String, String>>;

/// Errors as JSON for machines.
fn json_error(e: WebError) -> Response {
    let status = e.status();
    (status, Json(serde_json::json!({ "error": e.message() }))).into_response()
}

async fn who(desk: &Arc<Desk>, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<Who, WebError> {
    reader(desk, headers, q.get("token").map(String::as_str)).await
}

/// A change as `check --json` shows it, with its review state and history.
#[derive(Serialize)]
struct ChangeJson {
    id: i64,
    source: String,
    url: String,
    fetched_at: String,
    material: bool,
    changes: Vec<crate::model::Change>,
    /// `awaiting_review`, `applied`, `not_relevant`, or `text_only`.
    review_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reviews: Option<Vec<ReviewRow>>,
    link: String,
}

fn review_state(c: &ChangeDetail) -> &'static str {
    match c.review_state.as_deref() {
        None if c.material => "awaiting_review",
        None => "text_only",
        Some("applied") => "applied",
        Some("not_relevant") => "not_relevant",
        Some(_) => "reviewed",
    }
}

fn change_json(
    config: &crate::config::Config,
    c: ChangeDetail,
    reviews: Option<Vec<ReviewRow>>,
) -> ChangeJson {
    let path = format!("/changes/{}", c.id);
    ChangeJson {
        id: c.id,
        review_state: review_state(&c),
        link: config.desk_link(&path).unwrap_or(path),
        source: c.source_id,
        url: c.url,
        fetched_at: c.fetched_at,
        material: c.material,
        changes: c.changes,
        reviews,
    }
}

pub async fn sources(State(desk): State<Arc<Desk>>, headers: HeaderMap, Query(q): Params) -> Response {
    let run = async {
        who(&desk, &headers, &q).await?;
        desk.db(|s| s.desk_sources()).await
    };
    match run.await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => json_error(e),
    }
}

pub async fn source(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    let run = async {
        who(&desk, &headers, &q).await?;
        let lookup = id.clone();
        let found = desk
            .db(move |s| {
                let Some(row) = s.desk_source(&lookup)? else {
                    return Ok(None);
                };
                let facts = s
                    .previous(&lookup)?
                    .map(|p| crate::compare::facts_of(&p.text))
                    .unwrap_or_default();
                Ok(Some((row, facts)))
            })
            .await?;
        let (row, facts) = found.ok_or_else(|| WebError::NotFound(format!("there is no source `{id}`")))?;
        let mut v = serde_json::to_value(row).map_err(|e| WebError::Internal(e.to_string()))?;
        v["facts"] = serde_json::to_value(facts).map_err(|e| WebError::Internal(e.to_string()))?;
        Ok(v)
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_error(e),
    }
}

/// `?since=RFC3339&source=ID&material=true&before=N&limit=L`, newest first;
/// `next` is the `before` of the following page.
pub async fn changes(State(desk): State<Arc<Desk>>, headers: HeaderMap, Query(q): Params) -> Response {
    let run = async {
        who(&desk, &headers, &q).await?;
        let since = match q.get("since") {
            None => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| crate::model::stamp(&t.to_utc()))
                    .map_err(|_| WebError::BadRequest(format!("since `{s}` is not an RFC 3339 time")))?,
            ),
        };
        let material = match q.get("material").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(m) => return Err(WebError::BadRequest(format!("material `{m}`: true or false"))),
        };
        let number = |key: &str, default: i64| -> Result<i64, WebError> {
            match q.get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| WebError::BadRequest(format!("{key} `{v}` is not a positive number"))),
            }
        };
        let limit = number("limit", 100)?.min(1000) as usize;
        let before = q.get("before").map(|_| number("before", 0)).transpose()?;
        let source = q.get("source").cloned();
        let rows = desk
            .db(move |s| s.desk_changes(source.as_deref(), material, since.as_deref(), before, limit))
            .await?;
        let next = (rows.len() == limit).then(|| rows.last().map(|c| c.id)).flatten();
        let config = desk.config();
        let items: Vec<ChangeJson> = rows.into_iter().map(|c| change_json(&config, c, None)).collect();
        Ok(serde_json::json!({ "changes": items, "next": next }))
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_error(e),
    }
}

pub async fn change(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(n): Path<String>,
    Query(q): Params,
) -> Response {
    let run = async {
        who(&desk, &headers, &q).await?;
        let n: i64 = n
            .parse()
            .map_err(|_| WebError::BadRequest(format!("`{n}` is not a change number")))?;
        let found = desk
            .db(move |s| match s.desk_change(n)? {
                Some(c) => Ok(Some((c, s.reviews_of(n)?))),
                None => Ok(None),
            })
            .await?;
        let (c, reviews) = found.ok_or_else(|| WebError::NotFound(format!("there is no change #{n}")))?;
        Ok(change_json(&desk.config(), c, Some(reviews)))
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_error(e),
    }
}

/// The API described for generators and humans (OpenAPI 3.0).
pub async fn openapi(State(desk): State<Arc<Desk>>, headers: HeaderMap, Query(q): Params) -> Response {
    match who(&desk, &headers, &q).await {
        Ok(_) => (
            [(header::CONTENT_TYPE, "application/json")],
            include_str!("openapi.json"),
        )
            .into_response(),
        Err(e) => json_error(e),
    }
}

// Atom.

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// An Atom 1.0 feed of the newest material changes.
fn atom(desk: &Desk, title: &str, self_path: &str, changes: &[ChangeDetail]) -> String {
    let base = desk
        .config()
        .web
        .as_ref()
        .and_then(|w| w.base_url.clone())
        .unwrap_or_else(|| "http://localhost".into());
    let updated = changes
        .first()
        .map(|c| c.fetched_at.clone())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n",
    );
    let _ = writeln!(out, "  <title>{}</title>", xml(title));
    let _ = writeln!(out, "  <id>{}</id>", xml(&format!("{base}{self_path}")));
    let _ = writeln!(
        out,
        "  <link rel=\"self\" href=\"{}\"/>",
        xml(&format!("{base}{self_path}"))
    );
    let _ = writeln!(out, "  <updated>{}</updated>", xml(&updated));
    let _ = writeln!(out, "  <author><name>visawatch</name></author>");
    for c in changes {
        let link = format!("{base}/changes/{}", c.id);
        let what: Vec<String> = c
            .changes
            .iter()
            .filter(|x| x.kind.is_material())
            .map(|x| x.describe())
            .collect();
        let _ = writeln!(out, "  <entry>");
        let _ = writeln!(
            out,
            "    <title>{}</title>",
            xml(&format!(
                "{}: {}",
                c.source_name,
                what.first().cloned().unwrap_or_default()
            ))
        );
        let _ = writeln!(out, "    <id>{}</id>", xml(&link));
        let _ = writeln!(out, "    <link href=\"{}\"/>", xml(&link));
        let _ = writeln!(out, "    <updated>{}</updated>", xml(&c.fetched_at));
        let _ = writeln!(
            out,
            "    <summary type=\"text\">{}</summary>",
            xml(&format!("{}\nOfficial page: {}", what.join("\n"), c.url))
        );
        let _ = writeln!(out, "  </entry>");
    }
    out.push_str("</feed>\n");
    out
}

async fn feed_of(
    desk: Arc<Desk>,
    headers: HeaderMap,
    q: HashMap<String, String>,
    source: Option<String>,
) -> Response {
    let run = async {
        who(&desk, &headers, &q).await?;
        let lookup = source.clone();
        let (known, rows) = desk
            .db(move |s| {
                let known = match &lookup {
                    Some(id) => s.knows(id)?,
                    None => true,
                };
                Ok((known, s.desk_changes(lookup.as_deref(), true, None, None, 50)?))
            })
            .await?;
        if !known {
            return Err(WebError::NotFound("there is no such source".into()));
        }
        let (title, path) = match &source {
            Some(id) => (
                format!("visawatch: material changes of {id}"),
                format!("/sources/{id}/feed.atom"),
            ),
            None => (
                "visawatch: material changes".to_string(),
                "/feed.atom".to_string(),
            ),
        };
        Ok(atom(&desk, &title, &path, &rows))
    };
    match run.await {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => json_error(e),
    }
}

pub async fn feed(State(desk): State<Arc<Desk>>, headers: HeaderMap, Query(q): Params) -> Response {
    feed_of(desk, headers, q, None).await
}

pub async fn source_feed(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    feed_of(desk, headers, q, Some(id)).await
}

// Metrics.

/// Prometheus text format; an API token is required (not a session).
pub async fn metrics(State(desk): State<Arc<Desk>>, headers: HeaderMap, Query(q): Params) -> Response {
    let run = async {
        match who(&desk, &headers, &q).await? {
            Who::Token { .. } => {}
            Who::Editor { .. } => return Err(WebError::Forbidden("metrics need an API token".into())),
        }
        desk.db(|s| s.counts()).await
    };
    let c = match run.await {
        Ok(c) => c,
        Err(e) => return (e.status(), e.message()).into_response(),
    };
    let mut out = String::new();
    fn family(out: &mut String, name: &str, kind: &str, help: &str) {
        let _ = writeln!(out, "# HELP visawatch_{name} {help}");
        let _ = writeln!(out, "# TYPE visawatch_{name} {kind}");
    }
    family(
        &mut out,
        "checks_total",
        "counter",
        "Checks recorded, by outcome.",
    );
    for (status, n) in &c.checks_by_status {
        let _ = writeln!(out, "visawatch_checks_total{{status=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "changes_total",
        "counter",
        "Reported differences, by kind.",
    );
    for (kind, n) in &c.changes_by_kind {
        let _ = writeln!(out, "visawatch_changes_total{{kind=\"{kind}\"}} {n}");
    }
    family(
        &mut out,
        "alert_deliveries",
        "gauge",
        "Alert deliveries (one per recipient), by state.",
    );
    for (status, n) in &c.deliveries_by_status {
        let _ = writeln!(out, "visawatch_alert_deliveries{{state=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "outbox_pending",
        "gauge",
        "Deliveries not yet made (pending, being sent, or waiting for recipients).",
    );
    let _ = writeln!(out, "visawatch_outbox_pending {}", c.outbox_pending);
    family(
        &mut out,
        "sources_unreadable",
        "gauge",
        "Sources that cannot be read (their alert went out).",
    );
    let _ = writeln!(out, "visawatch_sources_unreadable {}", c.sources_unreadable);
    family(
        &mut out,
        "changes_awaiting_review",
        "gauge",
        "Material changes no editor has reviewed yet.",
    );
    let _ = writeln!(out, "visawatch_changes_awaiting_review {}", c.awaiting_review);
    family(
        &mut out,
        "check_duration_seconds",
        "histogram",
        "How long checks took.",
    );
    for (le, n) in &c.duration_buckets {
        let _ = writeln!(
            out,
            "visawatch_check_duration_seconds_bucket{{le=\"{}\"}} {n}",
            *le as f64 / 1000.0
        );
    }
    let _ = writeln!(
        out,
        "visawatch_check_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        c.duration_count
    );
    let _ = writeln!(
        out,
        "visawatch_check_duration_seconds_sum {}",
        c.duration_sum_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "visawatch_check_duration_seconds_count {}", c.duration_count);
    debug_assert_eq!(c.duration_buckets.len(), DURATION_BUCKETS_MS.len());
    family(
        &mut out,
        "last_check_timestamp_seconds",
        "gauge",
        "When the newest recorded check started (Unix time).",
    );
    let last = c
        .last_check_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp());
    let _ = writeln!(out, "visawatch_last_check_timestamp_seconds {last}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
