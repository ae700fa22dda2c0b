//! Shared test helpers: fixture pages, a config writer, running the binary.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A temporary folder holding `sources.toml` and the data folder.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("sources.toml")
    }
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    /// Runs `visawatch --config … --data … ARGS`; returns (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_visawatch"));
        // Each test's data folder is new: created on purpose (`--init`).
        cmd.arg("--config")
            .arg(self.config())
            .arg("--data")
            .arg(self.data())
            .arg("--init")
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// `run` with the webhook tests' signing secret in the environment.
    pub async fn run_with_env(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(args)
            .env("VISAWATCH_CMS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `check --json` with the webhook tests' secret in the environment.
    pub async fn check_with_env(&self) -> (i32, Value) {
        let (code, stdout, stderr) = self.run_with_env(&["check", "--json"]).await;
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}), exit {code}\nstdout: {stdout}\nstderr: {stderr}"));
        (code, report)
    }

    /// `check --json`: exit code and the parsed report.
    pub async fn check(&self) -> (i32, Value) {
        let (code, stdout, stderr) = self.run(&["check", "--json"]).await;
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}), exit {code}\nstdout: {stdout}\nstderr: {stderr}"));
        (code, report)
    }
}

/// The report entry of one source.
pub fn source<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no source {id} in {report}"))
}

pub fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    source(report, id)["status"].as_str().unwrap()
}

/// Serves `body` at `route` as HTML (replacing what was served there before).
pub async fn serve(server: &MockServer, route: &str, body: Vec<u8>, content_type: &str) {
    Mock::given(method("GET"))
        .and(path(route.to_string()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
        .mount(server)
        .await;
}

pub async fn serve_fixture(server: &MockServer, route: &str, fixture_rel: &str) {
    serve(server, route, fixture(fixture_rel), "text/html; charset=utf-8").await;
}

/// A `[[source]]` block.
pub fn source_toml(id: &str, url: &str, extra: &str) -> String {
    format!("[[source]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

/// Settings for quick tests: short timeout, one fast retry.
pub const FAST: &str =
    "[settings]\ntimeout_secs = 2\nretries = 1\nretry_backoff_ms = 50\nmax_body_bytes = 1000000\n";

/// The Kosovo permit page (its fee 50 € in v1) with the fee set to `fee`.
pub fn xk(fee: u32) -> Vec<u8> {
    String::from_utf8(fixture("pages/xk-mpb-temporary-residence/v1.html"))
        .unwrap()
        .replace("<td>50 €</td>", &format!("<td>{fee} €</td>"))
        .into_bytes()
}
