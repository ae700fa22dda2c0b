//! `sources.toml` → validated [`Config`]: settings with defaults and the list
//! of [`Source`]s.
//!
//! Everything a run could trip over later is checked here, at load, and
//! reported with the file, line and column and the source id: unknown keys,
//! duplicate or malformed ids, bad URLs, CSS selectors that do not parse, bad
//! regexes. This module does not touch the network or the data folder.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::model::Source;

/// Fetch and run settings (`[settings]`), all optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub user_agent: String,
    pub timeout_secs: u64,
    /// Sources fetched at once.
    pub concurrency: usize,
    /// Requests at once to one host.
    pub per_host: usize,
    pub max_body_bytes: u64,
    /// Send If-None-Match / If-Modified-Since from the last good fetch.
    pub conditional_get: bool,
    /// Retries after a connect error, a timeout, 429 or 5xx.
    pub retries: u32,
    /// First retry delay in milliseconds; doubles each retry.
    pub retry_backoff_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            user_agent: concat!("visawatch/", env!("CARGO_PKG_VERSION")).to_string(),
            timeout_secs: 30,
            concurrency: 8,
            per_host: 2,
            max_body_bytes: 10 * 1024 * 1024,
            conditional_get: true,
            retries: 2,
            retry_backoff_ms: 500,
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: Settings,
    pub sources: Vec<Source>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
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
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
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
    maintainers: Vec<String>,
    language: Option<Spanned<String>>,
    ignore: Option<Spanned<OneOrMany>>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let invalid = |span: Range<usize>, id: &str, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            id: id.to_string(),
            message,
        }
    };
    let s = &raw.settings;
    if s.concurrency == 0 || s.per_host == 0 || s.timeout_secs == 0 || s.max_body_bytes == 0 {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: "[settings] concurrency, per_host, timeout_secs and max_body_bytes must be > 0".into(),
        });
    }

    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(raw.source.len());
    for entry in raw.source {
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
        if !seen.insert(id.clone()) {
            return Err(invalid(id_span, &id, "duplicate id".into()));
        }
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
        let selectors = |field: &str, v: Option<Spanned<OneOrMany>>| {
            let Some(v) = v else { return Ok(Vec::new()) };
            let span = v.span();
            let list = v.into_inner().into_vec();
            for sel in &list {
                if let Err(e) = scraper::Selector::parse(sel) {
                    return Err(invalid(
                        span.clone(),
                        &id,
                        format!("{field}: CSS selector `{sel}` does not parse: {e}"),
                    ));
                }
            }
            Ok(list)
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
        for m in &r.maintainers {
            if !m.contains('@') || m.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(invalid(
                    entry_span.clone(),
                    &id,
                    format!("maintainer `{m}` is not an email address"),
                ));
            }
        }
        sources.push(Source {
            name: r.name.unwrap_or_else(|| id.clone()),
            id,
            url,
            select,
            exclude,
            section: r.section,
            maintainers: r.maintainers,
            language,
            ignore,
        });
    }
    if sources.is_empty() {
        return Err(ConfigError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Config {
        path: path.to_path_buf(),
        settings: raw.settings,
        sources,
    })
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

    #[test]
    fn minimal_source_gets_defaults() {
        let c = parse(
            "[[source]]\nid = \"a\"\nurl = \"https://example.org/x\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(c.sources[0].name, "a");
        assert_eq!(c.settings.concurrency, 8);
        assert!(c.settings.conditional_get);
    }

    #[test]
    fn duplicate_id_names_line_and_id() {
        let e = err(
            "[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\n\n[[source]]\nid = \"a\"\nurl = \"https://e.org/2\"\n",
        );
        assert_eq!(e, "sources.toml:6:6: source `a`: duplicate id");
    }

    #[test]
    fn bad_selector_names_selector_and_line() {
        let e = err("[[source]]\nid = \"a\"\nurl = \"https://e.org/\"\nselect = [\"main\", \"div[\"]\n");
        assert!(
            e.starts_with("sources.toml:4:10: source `a`: select: CSS selector `div[`"),
            "{e}"
        );
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
    fn bad_id() {
        assert!(err("[[source]]\nid = \"Bad Id\"\nurl = \"https://e.org/\"\n").contains("a-z, 0-9"));
    }
}
