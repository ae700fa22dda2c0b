//! The desk's HTML pages, rendered on the server with maud (which escapes
//! every value: page text from official sites is shown, never run). No
//! script anywhere; forms post with a CSRF token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use similar::ChangeTag;

use super::{Desk, WebError, Who, auth, editor};
use crate::model::{Change, Status, human};
use crate::store::{ChangeDetail, ReviewAction, ReviewRow, SourceRow};

type Params = Query<HashMap<String, String>>;

/// A posted form, or a 400 page when the body is not one.
type Posted = Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>;

fn fields(form: Posted) -> Result<HashMap<String, String>, WebError> {
    form.map(|Form(f)| f)
        .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))
}

/// Reasons an editor may give for "not relevant".
const REASONS: [(&str, &str); 3] = [
    ("noise", "Noise (no real change)"),
    ("not_our_topic", "Not our topic"),
    ("official_error", "Error on the official page"),
];

/// The frame of every page.
fn layout(title: &str, who: Option<&Who>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · visawatch" }
                link rel="stylesheet" href="/static/desk.css";
            }
            body {
                header.top {
                    a.brand href="/" { "visawatch" }
                    @if let Some(Who::Editor { name, secret }) = who {
                        nav {
                            a href="/" { "Sources" }
                            a href="/review" { "Review queue" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(auth::csrf_token(secret));
                                button.link type="submit" { "Sign out " (name) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page for an error status.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p { (message) }
            p { a href="/" { "Back to the sources" } }
        },
    )
}

/// The signed-in editor, or a redirect to the sign-in page.
async fn signed_in(desk: &Arc<Desk>, headers: &HeaderMap) -> Result<Result<Who, Response>, WebError> {
    Ok(match editor(desk, headers).await? {
        Some(who) => Ok(who),
        None => Err(Redirect::to("/login").into_response()),
    })
}

/// Refuses a form posted from another site, or without this session's token.
fn check_form(
    headers: &HeaderMap,
    secret: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<(), WebError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    let token_ok = match (secret, form.get("csrf")) {
        (Some(secret), Some(token)) => auth::csrf_ok(secret, token),
        _ => false,
    };
    if cross_site || !token_ok {
        return Err(WebError::Forbidden(
            "this form has expired or did not come from the desk; reload the page and try again".into(),
        ));
    }
    Ok(())
}

fn status_word(s: Option<Status>) -> &'static str {
    s.map_or("never checked", |s| s.as_str())
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(10)]
}

// Sign-in.

pub async fn login_form(State(desk): State<Arc<Desk>>, headers: HeaderMap) -> Result<Response, WebError> {
    if editor(&desk, &headers).await?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(&desk, None, StatusCode::OK)
}

/// The sign-in form with a fresh pre-session secret (its CSRF key).
fn login_page(desk: &Desk, message: Option<&str>, status: StatusCode) -> Result<Response, WebError> {
    let secret = auth::new_secret().map_err(|e| WebError::Internal(e.to_string()))?;
    let page = layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p.notice.bad role="alert" { (m) } }
            form.login method="post" action="/login" {
                input type="hidden" name="csrf" value=(auth::csrf_token(&secret));
                label for="name" { "Name" }
                input #name name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    );
    Ok((
        status,
        [(
            header::SET_COOKIE,
            auth::set_cookie(auth::LOGIN_COOKIE, &secret, 3600, desk.secure),
        )],
        page,
    )
        .into_response())
}

pub async fn login(
    State(desk): State<Arc<Desk>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Posted,
) -> Result<Response, WebError> {
    let form = fields(form)?;
    check_form(&headers, auth::cookie(&headers, auth::LOGIN_COOKIE), &form)?;
    let name = form.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let keys = [format!("user:{name}"), format!("ip:{}", peer.ip())];
    if let Some(wait) = desk.limiter.blocked(&keys) {
        return Err(WebError::TooMany(format!(
            "too many failed sign-ins; try again in {} minutes",
            wait.as_secs().div_ceil(60)
        )));
    }
    let lookup = name.clone();
    let stored = desk.db(move |s| s.password_hash(&lookup)).await?;
    let matches = tokio::task::spawn_blocking(move || {
        let hash = stored.as_deref().unwrap_or(auth::dummy_hash());
        stored.is_some() && auth::password_matches(&password, hash)
    })
    .await
    .unwrap_or(false);
    if !matches {
        desk.limiter.failed(&keys);
        tracing::info!(user = %name, peer = %peer.ip(), "desk: sign-in refused");
        return login_page(&desk, Some("Wrong name or password."), StatusCode::UNAUTHORIZED);
    }
    desk.limiter.succeeded(&name);
    let secret = auth::new_secret().map_err(|e| WebError::Internal(e.to_string()))?;
    let (hash, user) = (auth::secret_hash(&secret), name.clone());
    let now = chrono::Utc::now();
    let expires = crate::model::stamp(&(now + chrono::Duration::hours(auth::SESSION_HOURS)));
    desk.db(move |s| s.create_session(&hash, &user, &crate::model::stamp(&now), &expires))
        .await?;
    tracing::info!(user = %name, "desk: signed in");
    let cookies = axum::response::AppendHeaders([
        (
            header::SET_COOKIE,
            auth::set_cookie(
                auth::SESSION_COOKIE,
                &secret,
                auth::SESSION_HOURS * 3600,
                desk.secure,
            ),
        ),
        (
            header::SET_COOKIE,
            auth::set_cookie(auth::LOGIN_COOKIE, "", 0, desk.secure),
        ),
    ]);
    Ok((cookies, Redirect::to("/")).into_response())
}

pub async fn logout(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    form: Posted,
) -> Result<Response, WebError> {
    let form = fields(form)?;
    let secret = auth::cookie(&headers, auth::SESSION_COOKIE).map(str::to_string);
    check_form(&headers, secret.as_deref(), &form)?;
    if let Some(secret) = secret {
        let hash = auth::secret_hash(&secret);
        desk.db(move |s| s.end_session(&hash)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            auth::set_cookie(auth::SESSION_COOKIE, "", 0, desk.secure),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

// Overview.

/// Rows on one page of the overview: with 100,000 sources, the page is
/// read and drawn in milliseconds, and the browser is not handed 20 MB.
const PER_PAGE: usize = 100;

/// A source as the overview lists it before reading its page's rows.
struct Listed<'a> {
    id: &'a str,
    source: Option<&'a crate::model::Source>,
    status: Option<Status>,
    blind: bool,
    awaiting: u32,
}

/// Where a source stands in the overview: unreadable first, then those with
/// the most changes awaiting review, then those whose last check failed.
fn attention(blind: bool, awaiting: u32, status: Option<Status>) -> (u8, std::cmp::Reverse<u32>) {
    let rank = if blind {
        0
    } else if awaiting > 0 {
        1
    } else if status == Some(Status::Failed) {
        2
    } else {
        3
    };
    (rank, std::cmp::Reverse(awaiting))
}

pub async fn overview(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, WebError> {
    let who = match signed_in(&desk, &headers).await? {
        Ok(w) => w,
        Err(redirect) => return Ok(redirect),
    };
    let super::Catalog { config, maintainers } = desk.catalog();
    let by_id = config.by_id();
    let att = desk.db(|s| s.desk_attention()).await?;
    let maintainer = q.get("maintainer").filter(|m| !m.is_empty()).cloned();
    let status = q.get("status").filter(|m| !m.is_empty()).cloned();
    // Every source, in id order: those in sources.toml (some not checked
    // yet) merged with those the store knows (some from an earlier
    // sources.toml). One pass over lists already in id order: at 100,000
    // sources, sorting or hashing every id cost most of the page's time.
    let mut listed: Vec<Listed> = Vec::with_capacity(by_id.len().max(att.sources.len()));
    let (mut c, mut d, mut b, mut a) = (0, 0, 0, 0);
    loop {
        let from_config = by_id.get(c).map(|&i| config.sources[i as usize].id.as_str());
        let from_store = att.sources.get(d).map(|(id, _)| id.as_str());
        let id = match (from_config, from_store) {
            (None, None) => break,
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) => x,
            (None, Some(y)) => y,
        };
        let mut entry = Listed {
            id,
            source: None,
            status: None,
            blind: false,
            awaiting: 0,
        };
        if from_config == Some(id) {
            entry.source = Some(&config.sources[by_id[c] as usize]);
            c += 1;
        }
        if from_store == Some(id) {
            entry.status = att.sources[d].1;
            d += 1;
        }
        while b < att.blind.len() && att.blind[b].as_str() < id {
            b += 1;
        }
        entry.blind = att.blind.get(b).is_some_and(|x| x == id);
        while a < att.awaiting.len() && att.awaiting[a].0.as_str() < id {
            a += 1;
        }
        if let Some((x, n)) = att.awaiting.get(a)
            && x == id
        {
            entry.awaiting = *n;
        }
        let keep = maintainer.as_deref().is_none_or(|m| {
            entry.source.is_some_and(|s| {
                s.maintainers
                    .iter()
                    .any(|a| a.to_string().eq_ignore_ascii_case(m))
            })
        }) && match status.as_deref() {
            None => true,
            Some("awaiting") => entry.awaiting > 0,
            Some("unreadable") => entry.blind,
            Some(s) => entry.status.is_some_and(|st| st.as_str() == s),
        };
        if keep {
            listed.push(entry);
        }
    }
    // Stable: within a rank, still in id order.
    listed.sort_by_key(|e| attention(e.blind, e.awaiting, e.status));
    let pages = listed.len().div_ceil(PER_PAGE).max(1);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let page_of = &listed[((page - 1) * PER_PAGE).min(listed.len())..];
    let page_of = &page_of[..PER_PAGE.min(page_of.len())];
    let shown: Vec<String> = page_of.iter().map(|e| e.id.to_string()).collect();
    // What a source no check has reached yet shows: its name and URL.
    let unchecked: Vec<(String, String)> = page_of
        .iter()
        .map(|e| {
            e.source
                .map(|s| (s.name().to_string(), s.url.to_string()))
                .unwrap_or_default()
        })
        .collect();
    let total = listed.len();
    let awaiting: u32 = listed.iter().map(|e| e.awaiting).sum();
    drop(listed);
    let found = desk
        .db(move |s| {
            let mut rows = Vec::with_capacity(shown.len());
            for id in shown {
                rows.push(s.desk_source(&id)?.ok_or(id));
            }
            Ok(rows)
        })
        .await?;
    let rows: Vec<SourceRow> = found
        .into_iter()
        .zip(unchecked)
        .map(|(row, (name, url))| {
            row.unwrap_or_else(|id| SourceRow {
                name: if name.is_empty() { id.clone() } else { name },
                url,
                id,
                last_check_at: None,
                last_status: None,
                last_error: None,
                last_ok_at: None,
                blind_since: None,
                awaiting_review: 0,
                last_material_at: None,
            })
        })
        .collect();
    // A link to another page of the same filtered list.
    let page_link = |n: usize| {
        let mut link = format!("/?page={n}");
        for (key, value) in [("status", &status), ("maintainer", &maintainer)] {
            if let Some(v) = value {
                link.push_str(&format!("&{key}={}", form_urlencode(v)));
            }
        }
        link
    };
    let body = html! {
        h1 { "Sources" }
        p.summary {
            (crate::model::count(total, "source")) " · "
            a href="/review" { (crate::model::count(awaiting as usize, "change")) " awaiting review" }
        }
        form.filters method="get" action="/" {
            label for="status" { "Status" }
            select #status name="status" {
                @for (value, label) in [("", "any"), ("awaiting", "awaiting review"), ("unreadable", "cannot be read"),
                    ("failed", "last check failed"), ("changed", "changed"), ("unchanged", "unchanged"), ("baseline", "baseline")] {
                    option value=(value) selected[status.as_deref().unwrap_or("") == value] { (label) }
                }
            }
            label for="maintainer" { "Maintainer" }
            select #maintainer name="maintainer" {
                option value="" { "anyone" }
                @for m in maintainers.iter() {
                    option value=(m) selected[maintainer.as_deref() == Some(m.as_str())] { (m) }
                }
            }
            button type="submit" { "Filter" }
        }
        div.scroll {
            table.sources {
                thead { tr { th { "Source" } th { "Last check" } th { "Health" } th { "Awaiting review" } th { "Last material change" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td data-label="Source" {
                                a href={ "/sources/" (r.id) } { (r.name) }
                                br;
                                a.official href=(r.url) rel="noreferrer" { "official page" }
                            }
                            td data-label="Last check" {
                                (r.last_check_at.as_deref().unwrap_or("—")) br;
                                span class={ "status " (status_word(r.last_status)) } { (status_word(r.last_status)) }
                            }
                            td data-label="Health" {
                                @if let Some(since) = &r.blind_since {
                                    span.bad { "cannot be read since " (since) }
                                } @else if r.last_status == Some(Status::Failed) {
                                    span.warn { "last check failed" }
                                    @if let Some(e) = &r.last_error { br; small { (e) } }
                                } @else {
                                    "ok"
                                }
                            }
                            td.num data-label="Awaiting review" {
                                @if r.awaiting_review > 0 { a href={ "/review#" (r.id) } { (r.awaiting_review) } } @else { "0" }
                            }
                            td data-label="Last material change" { (r.last_material_at.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pages aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(page_link(page - 1)) { "← previous" } " " }
                "page " (page) " of " (pages)
                @if page < pages { " " a rel="next" href=(page_link(page + 1)) { "next →" } }
            }
        }
    };
    Ok(layout("Sources", Some(&who), body).into_response())
}

// The review queue.

pub async fn review_queue(State(desk): State<Arc<Desk>>, headers: HeaderMap) -> Result<Response, WebError> {
    let who = match signed_in(&desk, &headers).await? {
        Ok(w) => w,
        Err(redirect) => return Ok(redirect),
    };
    let queue = desk.db(|s| s.review_queue()).await?;
    let body = html! {
        h1 { "Review queue" }
        @if queue.is_empty() {
            p.notice.good #queue-empty { "Nothing awaits review: every material change has been handled." }
        } @else {
            p.summary { (crate::model::count(queue.len(), "change")) " awaiting review, oldest first." }
            ol.queue {
                @for c in &queue {
                    li id=(c.source_id) {
                        a.change href={ "/changes/" (c.id) } { "#" (c.id) " " (c.source_name) }
                        " " small { "fetched " (c.fetched_at) }
                        (changes_table(&c.changes))
                    }
                }
            }
        }
    };
    Ok(layout("Review queue", Some(&who), body).into_response())
}

fn changes_table(changes: &[Change]) -> Markup {
    html! {
        div.scroll {
            table.changes {
                thead { tr { th { "What" } th { "Before" } th { "After" } th { "Where" } } }
                tbody {
                    @for c in changes {
                        tr {
                            td data-label="What" { (c.kind.label()) }
                            td data-label="Before" { @if let Some(b) = &c.before { del { (human(b)) } } }
                            td data-label="After" { @if let Some(a) = &c.after { ins { (human(a)) } } }
                            td data-label="Where" { (c.context.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

// A change.

fn parse_number(n: &str) -> Result<i64, WebError> {
    n.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| WebError::BadRequest(format!("`{n}` is not a change number")))
}

/// An alert's link: the change found by a source's check at `at`.
pub async fn change_at(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path((id, at)): Path<(String, String)>,
) -> Result<Response, WebError> {
    if let Err(redirect) = signed_in(&desk, &headers).await? {
        return Ok(redirect);
    }
    match desk.db(move |s| s.change_at(&id, &at)).await? {
        Some(n) => Ok(Redirect::to(&format!("/changes/{n}")).into_response()),
        None => Err(WebError::NotFound("no change was recorded by that check".into())),
    }
}

pub async fn change(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(n): Path<String>,
) -> Result<Response, WebError> {
    let who = match signed_in(&desk, &headers).await? {
        Ok(w) => w,
        Err(redirect) => return Ok(redirect),
    };
    let n = parse_number(&n)?;
    type Loaded = (ChangeDetail, Vec<ReviewRow>, String, String);
    let loaded: Option<Loaded> = desk
        .db(move |s| {
            let Some(c) = s.desk_change(n)? else {
                return Ok(None);
            };
            let reviews = s.reviews_of(n)?;
            let before = s.snapshot_text(&c.before_hash)?.unwrap_or_default();
            let after = s.snapshot_text(&c.after_hash)?.unwrap_or_default();
            Ok(Some((c, reviews, before, after)))
        })
        .await?;
    let Some((c, reviews, before, after)) = loaded else {
        return Err(WebError::NotFound(format!("there is no change #{n}")));
    };
    let Who::Editor { secret, .. } = &who else {
        return Err(WebError::Unauthorized);
    };
    let state = match c.review_state.as_deref() {
        None if c.material => "awaiting review",
        None => "text only (not in the queue)",
        Some("applied") => "applied",
        Some("not_relevant") => "not relevant",
        Some(_) => "reviewed",
    };
    let body = html! {
        h1 { "Change #" (c.id) ": " (c.source_name) }
        p.meta {
            a.official href=(c.url) rel="noreferrer" { (c.url) } br;
            "Fetched " (c.fetched_at) " · " a href={ "/sources/" (c.source_id) } { "source history" } " · "
            span class={ "state " (state.replace(' ', "-")) } #review-state { (state) }
        }
        (changes_table(&c.changes))
        section.review {
            h2 { "Review" }
            form method="post" action={ "/changes/" (c.id) "/review" } {
                input type="hidden" name="csrf" value=(auth::csrf_token(secret));
                label for="reason" { "Reason (for “Not relevant”)" }
                select #reason name="reason" {
                    option value="" { "—" }
                    @for (v, l) in REASONS { option value=(v) { (l) } }
                }
                label for="note" { "Note (optional)" }
                textarea #note name="note" rows="2" maxlength="2000" {}
                div.buttons {
                    @if c.review_state.is_none() {
                        button #applied type="submit" name="action" value="applied" { "Applied" }
                        button #not-relevant type="submit" name="action" value="not_relevant" { "Not relevant" }
                    } @else {
                        button #reopen type="submit" name="action" value="reopen" { "Reopen" }
                    }
                }
            }
            @if !reviews.is_empty() {
                h3 { "History" }
                ul.history {
                    @for r in &reviews {
                        li {
                            (r.at) " · " strong { (r.user) } " · " (r.action.replace('_', " "))
                            @if let Some(reason) = &r.reason { " (" (reason.replace('_', " ")) ")" }
                            @if let Some(note) = &r.note { ": " q { (note) } }
                        }
                    }
                }
            }
        }
        h2 { "The requirement text" }
        (side_by_side(&before, &after))
    };
    Ok(layout(&format!("Change #{}", c.id), Some(&who), body).into_response())
}

/// Before and after, line by line, changed words marked; two columns on a
/// wide screen, one under the other on a phone (see the stylesheet).
fn side_by_side(before: &str, after: &str) -> Markup {
    let td = crate::compare::line_diff(before, after);
    let words = |line: &crate::compare::DiffLine| {
        html! {
            @for (emph, part) in &line.parts {
                @if *emph {
                    @if line.tag == ChangeTag::Delete { del { (part) } } @else { ins { (part) } }
                } @else { (part) }
            }
        }
    };
    html! {
        div.diff {
            @for group in td.grouped_ops(2) {
                div.hunk {
                    @for op in &group {
                        @for line in crate::compare::op_lines(&td, op) {
                            @match line.tag {
                                ChangeTag::Equal => { div.same { div.old { (words(&line)) } div.new { (words(&line)) } } }
                                ChangeTag::Delete => { div.removed { div.old { span.label { "before" } (words(&line)) } div.new {} } }
                                ChangeTag::Insert => { div.added { div.old {} div.new { span.label { "after" } (words(&line)) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn review(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(n): Path<String>,
    form: Posted,
) -> Result<Response, WebError> {
    let form = fields(form)?;
    let Some(Who::Editor { name, secret }) = editor(&desk, &headers).await? else {
        return Err(WebError::Forbidden("sign in to review changes".into()));
    };
    check_form(&headers, Some(&secret), &form)?;
    let n = parse_number(&n)?;
    let action = form
        .get("action")
        .and_then(|a| ReviewAction::parse(a))
        .ok_or_else(|| WebError::BadRequest("choose Applied, Not relevant or Reopen".into()))?;
    let reason = form
        .get("reason")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if let Some(r) = &reason
        && !REASONS.iter().any(|(v, _)| v == r)
    {
        return Err(WebError::BadRequest(format!("unknown reason `{r}`")));
    }
    if action == ReviewAction::NotRelevant && reason.is_none() {
        return Err(WebError::BadRequest(
            "“Not relevant” needs a reason: noise, not our topic, or an error on the official page".into(),
        ));
    }
    let note = form
        .get("note")
        .map(|r| r.trim().chars().take(2000).collect::<String>())
        .filter(|r| !r.is_empty());
    let at = crate::clock::now_stamp();
    let user = name.clone();
    let found = desk
        .db(move |s| s.record_review(n, action, reason.as_deref(), note.as_deref(), &user, &at))
        .await?;
    if !found {
        return Err(WebError::NotFound(format!("there is no change #{n}")));
    }
    tracing::info!(change = n, user = %name, action = action.as_str(), "desk: review recorded");
    Ok(Redirect::to(&format!("/changes/{n}")).into_response())
}

// A source.

pub async fn source(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, WebError> {
    let who = match signed_in(&desk, &headers).await? {
        Ok(w) => w,
        Err(redirect) => return Ok(redirect),
    };
    let lookup = id.clone();
    let (from, to) = (q.get("from").cloned(), q.get("to").cloned());
    type Loaded = (
        SourceRow,
        Vec<super::ledger::Entry>,
        Vec<crate::store::SnapshotRow>,
        Vec<crate::store::HistoryRow>,
        Option<(String, String)>,
    );
    let loaded: Option<Loaded> = desk
        .db(move |s| {
            let Some(row) = s.desk_source(&lookup)? else {
                return Ok(None);
            };
            let snaps = s.snapshots_of(&lookup)?;
            // The ledger looks back over the last 50 texts at most.
            let mut texts = Vec::new();
            for snap in snaps.iter().rev().take(50).rev() {
                let text = s.snapshot_text(&snap.hash)?.unwrap_or_default();
                texts.push((
                    snap.hash.clone(),
                    snap.since.clone(),
                    crate::compare::facts_of(&text),
                ));
            }
            let ledger = super::ledger::ledger(&texts);
            let history = s.history(&lookup, 50)?;
            let pair = match (from, to) {
                (Some(f), Some(t)) => match (s.snapshot_text(&f)?, s.snapshot_text(&t)?) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                },
                _ => None,
            };
            Ok(Some((row, ledger, snaps, history, pair)))
        })
        .await?;
    let Some((row, ledger, snaps, history, pair)) = loaded else {
        // Configured but never checked: say so rather than 404.
        if let Some(source) = desk.config().source(&id) {
            let body = html! {
                h1 { (source.name()) }
                p.meta { a.official href=(source.url.as_str()) rel="noreferrer" { (source.url.as_str()) } }
                p.notice { "Not checked yet: its facts appear after the first check." }
            };
            return Ok(layout(source.name(), Some(&who), body).into_response());
        }
        return Err(WebError::NotFound(format!("there is no source `{id}`")));
    };
    let body = html! {
        h1 { (row.name) }
        p.meta {
            a.official href=(row.url) rel="noreferrer" { (row.url) } br;
            "Last confirmed by a successful check: " (row.last_ok_at.as_deref().unwrap_or("never"))
            @if let Some(since) = &row.blind_since { br; span.bad { "Cannot be read since " (since) } }
        }
        h2 { "Current facts" }
        @if ledger.is_empty() {
            p { "No fees, durations or documents found in the current text." }
        } @else {
            div.scroll {
                table.ledger {
                    thead { tr { th { "Kind" } th { "Value" } th { "Where" } th { "First seen" } th { "Snapshot" } } }
                    tbody {
                        @for e in &ledger {
                            tr {
                                td data-label="Kind" { (e.kind) }
                                td data-label="Value" { (e.value) }
                                td data-label="Where" { (e.context) }
                                td data-label="First seen" { (e.first_seen) }
                                td data-label="Snapshot" { code { (short(&e.snapshot)) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Timeline" }
        ul.timeline {
            @for h in &history {
                li {
                    (h.started_at) " · " span class={ "status " (h.status.as_str()) } { (h.status.as_str()) }
                    @if h.material == Some(true) { " · " strong { "material" } }
                    @for c in &h.changes { br; small { (c.describe()) } }
                    @if let Some(e) = &h.error { br; small.bad { (e) } }
                }
            }
        }
        h2 { "Compare two snapshots" }
        @if snaps.len() < 2 {
            p { "Only one text recorded so far." }
        } @else {
            form.filters method="get" action={ "/sources/" (row.id) } {
                label for="from" { "From" }
                select #from name="from" {
                    @for (i, s) in snaps.iter().enumerate() {
                        option value=(s.hash) selected[i + 2 == snaps.len()] { (s.since) " (" (short(&s.hash)) ")" }
                    }
                }
                label for="to" { "To" }
                select #to name="to" {
                    @for (i, s) in snaps.iter().enumerate() {
                        option value=(s.hash) selected[i + 1 == snaps.len()] { (s.since) " (" (short(&s.hash)) ")" }
                    }
                }
                button type="submit" { "Compare" }
            }
        }
        @if let Some((a, b)) = &pair {
            (side_by_side(a, b))
        }
    };
    Ok(layout(&row.name, Some(&who), body).into_response())
}

/// A query-string value: every byte but the unreserved ones percent-encoded.
fn form_urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
