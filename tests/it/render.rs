//! Script-rendered pages (issue 14): `render = "browser"` loads the page in
//! headless Chromium (Debian's `chromium` and `chromium-driver`, installed
//! by `.ci/run`); without it such a page fails instead of storing nothing.

use std::time::{Duration, Instant};

use wiremock::MockServer;

use crate::helpers::*;

/// A page whose fees and documents are written into the DOM by its script.
fn scripted(fee: u32) -> Vec<u8> {
    format!(
        r#"<!doctype html><html><head><title>Visas</title></head><body>
<main id="content"></main>
<script>
  document.getElementById('content').innerHTML =
    '<h2>Consular fees</h2><table><tr><td>Visa C, single entry</td><td>{fee} EUR</td></tr></table>' +
    '<h2>Documents</h2><ul><li>Passport</li><li>Photo</li></ul>';
</script></body></html>"#
    )
    .into_bytes()
}

fn config(http: &MockServer, extra: &str) -> String {
    let url = format!("{}/visas", http.uri());
    format!(
        "{FAST}{}{}",
        source_toml(
            "rendered",
            &url,
            &format!("allow_private = true\nselect = \"#content\"\nrender = \"browser\"\n{extra}")
        ),
        source_toml("plain", &url, "allow_private = true\nselect = \"#content\"")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fee_written_by_script_is_read_only_when_rendered() {
    let http = MockServer::start().await;
    serve(&http, "/visas", scripted(35), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, "wait_for = \"#content table\""));
    let (code, r) = env.check().await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(status(&r, "rendered"), "baseline", "{r}");
    // Without rendering, the page's requirement section is empty: a
    // failure, never an empty snapshot.
    assert_eq!(status(&r, "plain"), "failed", "{r}");
    let error = source(&r, "plain")["error"].as_str().unwrap();
    assert!(error.contains("no text"), "{error}");
    assert!(!env.data().join("plain.txt").exists());
    let (_, text, _) = env.run(&["show", "rendered"]).await;
    assert!(text.contains("Visa C, single entry | 35 EUR"), "{text}");

    http.reset().await;
    serve(&http, "/visas", scripted(40), "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "rendered"), "changed", "{r}");
    let c = &source(&r, "rendered")["changes"][0];
    assert_eq!(
        (c["kind"].as_str(), c["before"].as_str(), c["after"].as_str()),
        (Some("fee"), Some("35 EUR"), Some("40 EUR")),
        "{r}"
    );
    assert_eq!(c["context"], "Visa C, single entry");
}

/// Chromium processes whose command line names `marker`.
fn browsers(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("chrom"))
        .map(str::to_string)
        .collect()
}

/// Checks of the rendered source that read the page (a browser that was
/// slow to start on a loaded machine fails its check, and is started again
/// at the next run).
async fn rendered_ok(env: &Env) -> usize {
    let (code, out, _) = env
        .run(&["history", "rendered", "--json", "--limit", "1000"])
        .await;
    if code != 0 {
        return 0;
    }
    let history: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    history
        .as_array()
        .map_or(0, |a| a.iter().filter(|c| c["status"] != "failed").count())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_leaves_no_browser_behind() {
    let http = MockServer::start().await;
    serve(&http, "/visas", scripted(35), "text/html; charset=utf-8").await;
    let env = Env::new();
    // Waits for an element that never comes: the check is still rendering
    // when visawatch is killed.
    env.write_config(
        &config(&http, "wait_for = \"#never\"").replace("timeout_secs = 2", "timeout_secs = 60"),
    );
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let marker = tmp.to_str().unwrap().to_string();
    let mut run = env.command(&["check"]).env("TMPDIR", &tmp).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while browsers(&marker).is_empty() {
        assert!(Instant::now() < until, "Chromium never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.start_kill().unwrap();
    run.wait().await.unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !browsers(&marker).is_empty() {
        assert!(
            Instant::now() < until,
            "Chromium outlived visawatch: {:?}",
            browsers(&marker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon keeps one browser across its runs, and takes it down with it.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_keeps_one_browser_and_stops_it_on_sigterm() {
    let http = MockServer::start().await;
    serve(&http, "/visas", scripted(35), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, "wait_for = \"#content table\"").replace(
        "[settings]\n",
        "[settings]\nschedule = \"*/1 * * * * *\"\njitter_secs = 0\n",
    ));
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let marker = tmp.to_str().unwrap().to_string();
    let mut daemon = env
        .command(&["daemon"])
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let driver_of = |pid: u32| {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &pid.to_string(), "-x", "chromedriver"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let pid = daemon.id().unwrap();
    crate::daemon::wait_for(30, "a rendered check", || async { rendered_ok(&env).await >= 1 }).await;
    let first = driver_of(pid);
    assert!(!first.is_empty(), "the daemon runs chromedriver");
    crate::daemon::wait_for(30, "three more rendered checks", || async {
        rendered_ok(&env).await >= 4
    })
    .await;
    assert_eq!(driver_of(pid), first, "the same browser across runs");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let until = Instant::now() + Duration::from_secs(10);
    while !browsers(&marker).is_empty() {
        assert!(Instant::now() < until, "Chromium outlived the daemon");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Without a browser, rendered sources fail with the reason and the others
/// run as usual.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_browser_rendered_sources_fail_and_the_rest_run() {
    let http = MockServer::start().await;
    serve(&http, "/visas", scripted(35), "text/html; charset=utf-8").await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&format!(
        "{}{}",
        config(&http, "").replace(
            "[settings]\n",
            "[settings]\nbrowser = \"/nonexistent/chromium\"\n"
        ),
        source_toml("xk", &format!("{}/xk", http.uri()), "allow_private = true")
    ));
    let (code, r) = env.check().await;
    assert_eq!(code, 1);
    assert_eq!(status(&r, "xk"), "baseline", "{r}");
    let error = source(&r, "rendered")["error"].as_str().unwrap();
    assert!(
        error.contains("browser not found: /nonexistent/chromium"),
        "{error}"
    );
}
