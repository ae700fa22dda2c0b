//! Reading one source: fetch it, then extract its cleaned canonical text
//! into a [`Reading`]. A text that looks transient (an error page, a sudden
//! shrink) is fetched once more before it is believed or held back; a body
//! identical to the last good one is not parsed at all.
//!
//! Used by a run (`pipeline`) and by `probe`. Knows nothing of the store.

use std::time::Duration;

use crate::extract::{self, ExtractError, Rules};
use crate::facts::noise;
use crate::fetch::Fetcher;
use crate::model::{BodyKind, Failure, Fetched, Read, Reading, Reason, Source, Validators};

/// A bug met on this page: the source fails, the run goes on.
pub fn internal_failure(what: String) -> Failure {
    Failure {
        reason: Reason::Internal,
        message: format!("internal error, please report it with the page: {what}"),
    }
}

/// Fetches and extracts a source; a text that looks transient is fetched
/// once more (unconditionally) before it is believed or held back.
pub async fn read_source(
    fetcher: &Fetcher,
    source: &Source,
    validators: Option<Validators>,
    prev_len: Option<usize>,
    prev_body: Option<String>,
    recheck: Duration,
) -> Reading {
    let first = fetch_and_extract(fetcher, source, validators.as_ref(), prev_body.as_deref()).await;
    match &first {
        Reading::Text(read) if noise::transient(prev_len, &read.text).is_some() => {}
        _ => return first,
    }
    tracing::info!(source = %source.id, "suspicious page, fetching again");
    tokio::time::sleep(recheck).await;
    match fetch_and_extract(fetcher, source, None, None).await {
        Reading::Text(read) => match noise::transient(prev_len, &read.text) {
            Some(s) => Reading::Suspect(read, s.into()),
            None => Reading::Text(read),
        },
        other => other,
    }
}

/// Fetches, extracts and cleans one source's text. A page identical to the
/// last good one (same body, same rules) is unchanged without parsing: the
/// servers that ignore conditional GET cost a hash, not an extraction.
pub async fn fetch_and_extract(
    fetcher: &Fetcher,
    source: &Source,
    validators: Option<&Validators>,
    prev_body: Option<&str>,
) -> Reading {
    let page = match fetcher.fetch(&source.url, validators, source.allow_private).await {
        Ok(Fetched::Page(page)) => page,
        Ok(Fetched::NotModified) => return Reading::NotModified,
        Err(e) => return Reading::Failed(e.into()),
    };
    let body_hash = body_fingerprint(source, page.kind, &page.html);
    if prev_body == Some(body_hash.as_str()) {
        return Reading::NotModified;
    }
    // scraper's tree is !Send and parsing is CPU work: keep it off the async threads.
    let src = source.clone();
    let (html, kind) = (page.html, page.kind);
    let extracted = tokio::task::spawn_blocking(move || read_body(&html, kind, &src)).await;
    let extracted = match extracted {
        Ok(e) => e,
        Err(crash) => return Reading::Failed(internal_failure(format!("extraction crashed: {crash}"))),
    };
    match extracted {
        Ok(text) if text.trim().is_empty() => Reading::Failed(ExtractError::Empty.into()),
        Ok(text) => Reading::Text(Read {
            text,
            body_hash,
            validators: Validators {
                etag: page.etag,
                last_modified: page.last_modified,
            },
            http_status: page.status,
            charset: page.charset,
        }),
        Err(e) => Reading::Failed(e.into()),
    }
}

/// A decoded body → the source's cleaned canonical text.
pub fn read_body(body: &str, kind: BodyKind, source: &Source) -> Result<String, ExtractError> {
    let text = match kind {
        BodyKind::Html => extract::extract(
            body,
            &Rules {
                select: &source.select,
                exclude: &source.exclude,
                section: source.section.as_deref(),
            },
        )?,
        BodyKind::Text if !source.select.is_empty() || !source.exclude.is_empty() => {
            return Err(ExtractError::NotHtml(
                "select and exclude apply to HTML; this URL served text/plain".into(),
            ));
        }
        BodyKind::Text if source.section.is_some() => {
            return Err(ExtractError::NotHtml(
                "section needs the headings of an HTML page; this URL served text/plain".into(),
            ));
        }
        BodyKind::Text => extract::plain_text(body)?,
    };
    Ok(noise::clean(&text, &source.ignore))
}

/// Hash of a page's body together with everything that shapes its text
/// (the source's rules and visawatch's version): equal means same text.
fn body_fingerprint(source: &Source, kind: BodyKind, html: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        if kind == BodyKind::Text { "text" } else { "html" },
        source.section.as_deref().unwrap_or("\u{1}"),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for list in [&source.select, &source.exclude] {
        for s in list {
            h.update(s.as_bytes());
            h.update(b"\0");
        }
        h.update(b"\x01");
    }
    for r in &source.ignore {
        h.update(r.as_str().as_bytes());
        h.update(b"\0");
    }
    h.update(html.as_bytes());
    h.finalize().to_hex().to_string()
}
