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
use crate::render::Renderer;

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
    renderer: Option<&Renderer>,
    source: &Source,
    validators: Option<Validators>,
    prev_len: Option<usize>,
    prev_body: Option<blake3::Hash>,
    recheck: Duration,
) -> Reading {
    let first = fetch_and_extract(fetcher, renderer, source, validators.as_ref(), prev_body.as_ref()).await;
    match &first {
        Reading::Text(read) if noise::transient(prev_len, &read.text).is_some() => {}
        _ => return first,
    }
    tracing::info!(source = %source.id, "suspicious page, fetching again");
    tokio::time::sleep(recheck).await;
    match fetch_and_extract(fetcher, renderer, source, None, None).await {
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
    renderer: Option<&Renderer>,
    source: &Source,
    validators: Option<&Validators>,
    prev_body: Option<&blake3::Hash>,
) -> Reading {
    // A rendered page is fetched plainly first (reachability, the status,
    // the private-network guard, retries) and never conditionally: what a
    // script writes into it is not covered by the server's validators.
    let validators = if source.render.is_some() { None } else { validators };
    let mut page = match fetcher.fetch(&source.url, validators, source.allow_private).await {
        Ok(Fetched::Page(page)) => page,
        Ok(Fetched::NotModified) => return Reading::NotModified,
        Err(e) => return Reading::Failed(e.into()),
    };
    if let Some(how) = &source.render
        && page.kind == BodyKind::Html
    {
        let Some(renderer) = renderer else {
            return Reading::Failed(internal_failure("a rendered source without a browser".into()));
        };
        match renderer.render(&page.final_url, how).await {
            Ok(html) => {
                page.html = html;
                page.etag = None;
                page.last_modified = None;
                page.charset = "utf-8";
            }
            Err(e) => return Reading::Failed(e.into()),
        }
    }
    let body_hash = body_fingerprint(source, page.kind, &page.html, &page.raw);
    if prev_body.is_some_and(|p| p.to_hex().as_str() == body_hash) {
        return Reading::NotModified;
    }
    // scraper's tree is !Send and parsing is CPU work: keep it off the async threads.
    let src = source.clone();
    let (html, raw, kind) = (page.html, page.raw, page.kind);
    let max_pages = fetcher.settings().max_pdf_pages;
    let extracted = tokio::task::spawn_blocking(move || {
        let body = match kind {
            BodyKind::Pdf => Body::Pdf {
                bytes: &raw,
                max_pages,
            },
            BodyKind::Html => Body::Html(&html),
            BodyKind::Text => Body::Text(&html),
        };
        read_body(body, &src)
    });
    // A document built to take forever must not hold the run: the check
    // fails after this long (the thread finishes on its own).
    let extracted = match tokio::time::timeout(EXTRACT_TIME, extracted).await {
        Ok(Ok(e)) => e,
        Ok(Err(crash)) => return Reading::Failed(internal_failure(format!("extraction crashed: {crash}"))),
        Err(_) => {
            return Reading::Failed(Failure {
                reason: Reason::TooComplex,
                message: format!(
                    "extraction failed: page too complex to read: took more than {} s",
                    EXTRACT_TIME.as_secs()
                ),
            });
        }
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

/// Longest a page's extraction may take (HTML is bounded by its limits; a
/// PDF's content streams are not, so the clock bounds it).
const EXTRACT_TIME: Duration = Duration::from_secs(30);

/// A body as extraction takes it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Html(&'a str),
    Text(&'a str),
    Pdf { bytes: &'a [u8], max_pages: usize },
}

/// A body → the source's cleaned canonical text.
pub fn read_body(body: Body, source: &Source) -> Result<String, ExtractError> {
    let css = !source.select.is_empty() || !source.exclude.is_empty();
    let text = match body {
        Body::Html(html) => extract::extract(
            html,
            &Rules {
                select: &source.select,
                exclude: &source.exclude,
                section: source.section.as_deref(),
            },
        )?,
        Body::Text(_) if css => {
            return Err(ExtractError::NotHtml(
                "select and exclude apply to HTML; this URL served text/plain".into(),
            ));
        }
        Body::Text(_) if source.section.is_some() => {
            return Err(ExtractError::NotHtml(
                "section needs the headings of an HTML page; this URL served text/plain".into(),
            ));
        }
        Body::Text(text) => extract::plain_text(text)?,
        // The content type is known only once the page arrives: a CSS rule
        // meant for HTML must not be silently ignored on a PDF.
        Body::Pdf { .. } if css => {
            return Err(ExtractError::NotHtml(
                "select applies to HTML; this URL served a PDF: use section instead".into(),
            ));
        }
        Body::Pdf { bytes, max_pages } => {
            // A crash in the PDF reader fails this source, not the run.
            let text = std::panic::catch_unwind(|| crate::pdf::text(bytes, max_pages)).map_err(|_| {
                ExtractError::Pdf(crate::pdf::PdfError::Damaged(
                    "the PDF reader crashed on it".into(),
                ))
            })??;
            match source.section.as_deref() {
                Some(section) => extract::section_of_text(&text, section)?,
                None => text,
            }
        }
    };
    Ok(noise::clean(&text, &source.ignore))
}

/// Hash of a page's body together with everything that shapes its text
/// (the source's rules and visawatch's version): equal means same text.
fn body_fingerprint(source: &Source, kind: BodyKind, html: &str, raw: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        match kind {
            BodyKind::Text => "text",
            BodyKind::Html => "html",
            BodyKind::Pdf => "pdf",
        },
        source.section.as_deref().unwrap_or("\u{1}"),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for list in [&source.select, &source.exclude] {
        for s in list.iter() {
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
    h.update(raw);
    h.finalize().to_hex().to_string()
}
