//! `visawatch probe`: one page, fetched (http/https) or read (a local file),
//! through the same fetch and extraction as a check, printed and never
//! stored. How an editor tries selectors before adding a source.

use std::path::Path;

use serde::Serialize;

use crate::compare;
use crate::config::Settings;
use crate::facts::Facts;
use crate::facts::noise;
use crate::model::{BodyKind, Reading, Source};
use crate::read;

/// What `probe` found on one page.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub text: String,
    pub facts: Facts,
}

/// Fetches (http/https) or reads (a file path) one page and returns its
/// cleaned canonical text and facts, storing nothing: how an editor tries
/// selectors before adding a source.
pub async fn probe(target: &str, source: Source, settings: &Settings) -> anyhow::Result<Probe> {
    let text = if target.starts_with("http://") || target.starts_with("https://") {
        let fetcher = crate::fetch::Fetcher::new(settings, [(&source.url, source.allow_private)])?;
        let renderer = source
            .render
            .as_ref()
            .map(|_| crate::render::Renderer::new(settings));
        match read::fetch_and_extract(&fetcher, renderer.as_ref(), &source, None, None).await {
            Reading::Text(read) => read.text,
            Reading::Failed(f) => anyhow::bail!("{target}: {}", f.message),
            Reading::NotModified | Reading::Suspect(..) => unreachable!("no validators, no re-fetch"),
        }
    } else {
        let bytes = read_regular_file(Path::new(target), settings.max_body_bytes)?;
        let content_type = target.ends_with(".txt").then_some("text/plain");
        let kind = crate::fetch::body_kind(content_type, &bytes)
            .map_err(|t| anyhow::anyhow!("{target}: unsupported content type {t}"))?;
        let decoded;
        let body = match kind {
            BodyKind::Pdf => read::Body::Pdf {
                bytes: &bytes,
                max_pages: settings.max_pdf_pages,
            },
            BodyKind::Html | BodyKind::Text => {
                decoded = crate::fetch::decode(&bytes, None)
                    .map_err(|(cs, d)| anyhow::anyhow!("cannot decode {target} as {cs}: {d}"))?
                    .0;
                if kind == BodyKind::Html {
                    read::Body::Html(&decoded)
                } else {
                    read::Body::Text(&decoded)
                }
            }
        };
        read::read_body(body, &source).map_err(|e| anyhow::anyhow!("{target}: extraction failed: {e}"))?
    };
    if let Some(s) = noise::transient(None, &text) {
        tracing::warn!("{target}: {s}");
    }
    let facts = compare::facts_of(&text);
    Ok(Probe { text, facts })
}

/// Reads a local file for `probe`: only a regular file (a FIFO or a device
/// such as /dev/zero would block or never end), at most `limit` bytes.
pub fn read_regular_file(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    anyhow::ensure!(
        meta.len() <= limit,
        "{} is {} bytes, over max_body_bytes ({limit})",
        path.display(),
        meta.len()
    );
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= limit,
        "{} grew over max_body_bytes ({limit})",
        path.display()
    );
    Ok(bytes)
}
