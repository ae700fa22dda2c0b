//! The before/after corpus (`tests/fixtures/pairs.toml`), table-driven: every
//! pair is a source of one data folder; run 1 serves the before pages, run 2
//! the after pages and checks each verdict exactly, run 3 serves the before
//! pages again where a transient page must recover without a change.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use wiremock::MockServer;

use crate::helpers::*;

#[derive(Deserialize)]
struct Corpus {
    base: BTreeMap<String, Base>,
    pair: Vec<Pair>,
}

#[derive(Deserialize)]
struct Base {
    page: String,
    #[serde(default)]
    charset: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    rules: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    name: String,
    base: String,
    #[serde(default)]
    before: Vec<(String, String)>,
    #[serde(default)]
    after: Vec<(String, String)>,
    after_page: Option<String>,
    after_file: Option<String>,
    status: String,
    material: bool,
    changes: Vec<(String, String, String)>,
    error_contains: Option<String>,
    #[serde(default)]
    recovers: bool,
}

impl Base {
    fn encoding(&self) -> &'static encoding_rs::Encoding {
        encoding_rs::Encoding::for_label(self.charset.as_deref().unwrap_or("utf-8").as_bytes()).unwrap()
    }
    fn content_type(&self) -> &str {
        self.content_type.as_deref().unwrap_or("text/html; charset=utf-8")
    }
}

fn apply(page: &str, edits: &[(String, String)], name: &str) -> String {
    let mut out = page.to_string();
    for (from, to) in edits {
        assert!(
            out.contains(from.as_str()),
            "pair `{name}`: edit target not in page: {from:?}"
        );
        out = out.replacen(from.as_str(), to, 1);
    }
    out
}

struct Built {
    before: Vec<u8>,
    after: Vec<u8>,
    content_type: String,
}

fn build(corpus: &Corpus) -> Vec<Built> {
    corpus
        .pair
        .iter()
        .map(|p| {
            let base = &corpus.base[&p.base];
            let enc = base.encoding();
            let raw = fixture(&base.page);
            let (page, _, _) = enc.decode(&raw);
            let before = apply(&page, &p.before, &p.name);
            let after = match (&p.after_page, &p.after_file) {
                (Some(html), _) => html.clone(),
                (None, Some(file)) => enc.decode(&fixture(file)).0.into_owned(),
                (None, None) => apply(&before, &p.after, &p.name),
            };
            Built {
                before: enc.encode(&before).0.into_owned(),
                after: enc.encode(&after).0.into_owned(),
                content_type: base.content_type().to_string(),
            }
        })
        .collect()
}

async fn serve_all(server: &MockServer, built: &[Built], after: bool) {
    server.reset().await;
    for (i, b) in built.iter().enumerate() {
        let body = if after { b.after.clone() } else { b.before.clone() };
        serve(server, &format!("/p/{i}"), body, &b.content_type).await;
    }
}

fn expected_changes(p: &Pair) -> Vec<(String, Value, Value)> {
    let v = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s.to_string())
        }
    };
    let mut out: Vec<_> = p
        .changes
        .iter()
        .map(|(k, b, a)| (k.clone(), v(b), v(a)))
        .collect();
    out.sort_by_key(|c| format!("{c:?}"));
    out
}

fn actual_changes(s: &Value) -> Vec<(String, Value, Value)> {
    let mut out: Vec<_> = s["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect();
    out.sort_by_key(|c| format!("{c:?}"));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_verdicts() {
    let text = String::from_utf8(fixture("pairs.toml")).unwrap();
    let corpus: Corpus = toml::from_str(&text).unwrap();
    assert!(
        corpus.pair.len() >= 40,
        "the corpus holds {} pairs",
        corpus.pair.len()
    );
    let built = build(&corpus);
    let server = MockServer::start().await;
    let mut cfg = format!("{FAST}concurrency = 16\nper_host = 16\n");
    for (i, p) in corpus.pair.iter().enumerate() {
        let rules = &corpus.base[&p.base].rules;
        cfg.push_str(&source_toml(
            &format!("p{i}"),
            &format!("{}/p/{i}", server.uri()),
            rules,
        ));
    }
    let env = Env::new();
    env.write_config(&cfg);

    serve_all(&server, &built, false).await;
    let (code, r) = env.check().await;
    assert_eq!(code, 0, "every before page reads: {r}");

    serve_all(&server, &built, true).await;
    let (_, r) = env.check().await;
    let mut failures = Vec::new();
    for (i, p) in corpus.pair.iter().enumerate() {
        let s = source(&r, &format!("p{i}"));
        let got = (
            s["status"].as_str().unwrap(),
            s["material"].as_bool().unwrap(),
            actual_changes(s),
        );
        let want = (p.status.as_str(), p.material, expected_changes(p));
        if got != want {
            failures.push(format!(
                "{}:\n   want {want:?}\n   got  {got:?}\n   error {}",
                p.name, s["error"]
            ));
        }
        if let Some(needle) = &p.error_contains {
            let err = s["error"].as_str().unwrap_or("").to_lowercase();
            if !err.contains(needle.as_str()) {
                failures.push(format!("{}: error {err:?} lacks {needle:?}", p.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pairs wrong:\n{}",
        failures.len(),
        corpus.pair.len(),
        failures.join("\n")
    );

    serve_all(&server, &built, false).await;
    let (_, r) = env.check().await;
    for (i, p) in corpus.pair.iter().enumerate().filter(|(_, p)| p.recovers) {
        assert_eq!(status(&r, &format!("p{i}")), "unchanged", "{} recovers", p.name);
    }
}
