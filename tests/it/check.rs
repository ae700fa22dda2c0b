//! `visawatch check` end to end: verdicts, failures, charsets, conditional
//! GET, locking and damaged data folders.

use std::io::Write;
use std::time::Duration;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const US: &str = "pages/us-state-kosovo-entry";

fn us_config(server: &MockServer) -> String {
    format!(
        "{FAST}{}",
        source_toml(
            "us-kosovo",
            &format!("{}/us", server.uri()),
            "section = \"Entry, Exit and Visa Requirements\""
        )
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn baseline_then_unchanged_then_changed() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));

    let (code, r) = env.check().await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(status(&r, "us-kosovo"), "baseline");
    assert_eq!(source(&r, "us-kosovo")["diff"], serde_json::Value::Null);
    let txt = std::fs::read_to_string(env.data().join("us-kosovo.txt")).unwrap();
    assert!(txt.starts_with("## Entry, Exit and Visa Requirements\n"), "{txt}");
    assert!(
        txt.contains("\n1. Proof of local health insurance.\n2. A police background check.\n"),
        "{txt}"
    );
    assert!(
        !txt.contains("Safety and Security") && !txt.contains("Quick Facts"),
        "{txt}"
    );

    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "us-kosovo")), (0, "unchanged"));

    server.reset().await;
    serve_fixture(&server, "/us", &format!("{US}/v2.html")).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "us-kosovo")), (0, "changed"));
    let s = source(&r, "us-kosovo");
    let diff = s["diff"].as_str().unwrap();
    assert!(
        diff.contains("-U.S. citizens do not need a visa for trips lasting up to 90 days"),
        "{diff}"
    );
    assert!(
        diff.contains("+U.S. citizens do not need a visa for trips lasting up to 60 days"),
        "{diff}"
    );
    assert!(diff.contains("+3. Proof of accommodation in Kosovo."), "{diff}");

    // The other commands read what check stored.
    let (code, out, _) = env.run(&["show", "us-kosovo"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("up to 60 days"));
    let (code, out, _) = env.run(&["history", "us-kosovo"]).await;
    assert_eq!(code, 0);
    let statuses: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(statuses, ["changed", "unchanged", "baseline"], "{out}");
    let (code, out, _) = env.run(&["diff", "us-kosovo", "--words"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("up to [-90-] days") && out.contains("up to {+60+} days"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_only_change_is_unchanged() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    assert_eq!(status(&env.check().await.1, "us-kosovo"), "baseline");
    server.reset().await;
    serve_fixture(&server, "/us", &format!("{US}/v1-markup.html")).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "us-kosovo")), (0, "unchanged"), "{r}");
}

/// Every kind of failure in one run: each fails with its reason while the
/// good source is still checked, and the exit code is 1.
#[tokio::test(flavor = "multi_thread")]
async fn failures_are_isolated_and_named() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/good", &format!("{US}/v1.html")).await;
    serve_fixture(&server, "/selector", &format!("{US}/v1.html")).await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/error"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<p>late</p>")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    serve(&server, "/huge", vec![b'a'; 2_000_000], "text/html").await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 50_000_000]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100_000);
    Mock::given(path("/bomb"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(bomb, "text/html"),
        )
        .mount(&server)
        .await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    let u = server.uri();
    let mut cfg = FAST.to_string();
    for (id, url, extra) in [
        ("good", format!("{u}/good"), ""),
        ("selector", format!("{u}/selector"), "select = \"#no-such-id\""),
        ("missing", format!("{u}/missing"), ""),
        ("error", format!("{u}/error"), ""),
        ("slow", format!("{u}/slow"), ""),
        ("huge", format!("{u}/huge"), ""),
        ("bomb", format!("{u}/bomb"), ""),
        ("refused", format!("http://127.0.0.1:{refused}/"), ""),
    ] {
        cfg.push_str(&source_toml(id, &url, extra));
    }
    let env = Env::new();
    env.write_config(&cfg);
    let (code, r) = env.check().await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(status(&r, "good"), "baseline");
    let err = |id| {
        let s = source(&r, id);
        assert_eq!(s["status"], "failed", "{id}: {s}");
        assert_eq!(s["changes"], serde_json::json!([]));
        s["error"].as_str().unwrap().to_string()
    };
    assert_eq!(
        err("selector"),
        "extraction failed: selector `#no-such-id` matched nothing"
    );
    assert_eq!(err("missing"), format!("HTTP 404 from {u}/missing"));
    assert_eq!(err("error"), format!("HTTP 500 from {u}/error"));
    assert_eq!(err("slow"), format!("timeout after 2s fetching {u}/slow"));
    assert_eq!(
        err("huge"),
        format!("body too large: {u}/huge exceeds 1000000 bytes")
    );
    assert_eq!(
        err("bomb"),
        format!("body too large: {u}/bomb exceeds 1000000 bytes")
    );
    assert!(err("refused").starts_with(&format!("cannot connect to http://127.0.0.1:{refused}/")));

    // 500 was retried once (retries = 1); 404 was not.
    let reqs = server.received_requests().await.unwrap();
    let count = |p: &str| reqs.iter().filter(|r| r.url.path() == p).count();
    assert_eq!((count("/error"), count("/missing")), (2, 1));
}

/// A source that fails after a baseline keeps its snapshot, produces no
/// change, and reads as unchanged when it recovers.
#[tokio::test(flavor = "multi_thread")]
async fn server_error_then_recovery_is_not_a_change() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    assert_eq!(status(&env.check().await.1, "us-kosovo"), "baseline");

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "us-kosovo")), (1, "failed"));
    let (_, shown, _) = env.run(&["show", "us-kosovo"]).await;
    assert!(
        shown.contains("up to 90 days"),
        "last good snapshot kept: {shown}"
    );

    server.reset().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "us-kosovo")), (0, "unchanged"), "{r}");
    let (_, out, _) = env.run(&["history", "us-kosovo"]).await;
    assert!(out.contains("HTTP 503"), "{out}");
    let (code, _, err) = env.run(&["diff", "us-kosovo"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no recorded change"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_1250_declared_only_in_meta() {
    let server = MockServer::start().await;
    // Content-Type without charset: only the page's <meta http-equiv> names windows-1250.
    serve(
        &server,
        "/rs",
        fixture("pages/rs-mup-boravak/v1.html"),
        "text/html",
    )
    .await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}{}",
        source_toml("rs", &format!("{}/rs", server.uri()), "select = \"#sadrzaj\"")
    ));
    let (code, r) = env.check().await;
    assert_eq!(code, 0, "{r}");
    let txt = std::fs::read_to_string(env.data().join("rs.txt")).unwrap();
    assert!(
        txt.contains("Stranac može boraviti bez vize do 90 dana u periodu od šest meseci."),
        "{txt}"
    );
    assert!(
        txt.contains("- ") || txt.contains("1. Važeća putna isprava"),
        "{txt}"
    );
    assert!(!txt.contains('\u{FFFD}'));
    assert!(!txt.contains("Početna"), "menu dropped: {txt}");
}

#[tokio::test(flavor = "multi_thread")]
async fn etag_304_means_unchanged_without_download() {
    let server = MockServer::start().await;
    Mock::given(path("/e"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/e"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_raw(fixture(&format!("{US}/v1.html")), "text/html; charset=utf-8"),
        )
        .mount(&server)
        .await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}{}",
        source_toml("e", &format!("{}/e", server.uri()), "")
    ));
    assert_eq!(status(&env.check().await.1, "e"), "baseline");
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "e")), (0, "unchanged"));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].headers.get("if-none-match").is_none());
    assert_eq!(reqs[1].headers.get("if-none-match").unwrap(), "\"v1\"");

    // With conditional GET off, no validator is sent.
    env.write_config(&format!(
        "{FAST}conditional_get = false\n{}",
        source_toml("e", &format!("{}/e", server.uri()), "")
    ));
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "e"), "unchanged");
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs[2].headers.get("if-none-match").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_runs_take_turns() {
    let server = MockServer::start().await;
    Mock::given(path("/us"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture(&format!("{US}/v1.html")), "text/html; charset=utf-8")
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&server)
        .await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    let a = env.command(&["check", "--json"]).output();
    let b = env.command(&["check", "--json"]).output();
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.status.success() && b.status.success());
    let st = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        status(&v, "us-kosovo").to_string()
    };
    let mut statuses = [st(&a), st(&b)];
    statuses.sort();
    assert_eq!(statuses, ["baseline", "unchanged"]);
    let waited = [&a, &b]
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting"))
        .count();
    assert_eq!(waited, 1);
    let (_, out, _) = env.run(&["history", "us-kosovo"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_data_folder_gives_clear_errors() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    assert_eq!(env.check().await.0, 0);

    // Database lost, snapshot files still there.
    let db = env.data().join("visawatch.db");
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(env.data().join("visawatch.db-wal"));
    let _ = std::fs::remove_file(env.data().join("visawatch.db-shm"));
    let (code, _, err) = env.run(&["check"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("visawatch.db is missing but") && err.contains("us-kosovo.txt"),
        "{err}"
    );

    // A file that is not a database.
    std::fs::write(
        &db,
        b"this is not sqlite, it is a text file that got copied over the database",
    )
    .unwrap();
    let (code, _, err) = env.run(&["check"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("is not a usable visawatch database"), "{err}");

    // Readers on an empty folder.
    let other = Env::new();
    other.write_config(&us_config(&server));
    let (code, _, err) = other.run(&["show", "us-kosovo"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no database at") && err.contains("run `visawatch check` first"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_exit_2_with_position() {
    let env = Env::new();
    env.write_config("[[source]]\nid = \"a\"\nurl = \"https://example.org/\"\nselect = \"div[\"\n");
    let (code, _, err) = env.run(&["check"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "sources.toml:4:10: source `a`: select: CSS selector `div[` is not valid: it stops too early"
        ),
        "{err}"
    );
    let (code, _, err) = env.run(&["check", "--source", "nope"]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identical_page_is_unchanged_until_the_rules_change() {
    // The server ignores conditional GET: visawatch recognises the identical
    // body itself, but a new `exclude` must still re-read it.
    let server = MockServer::start().await;
    serve_fixture(&server, "/xk", "pages/xk-mpb-temporary-residence/v1.html").await;
    let env = Env::new();
    let cfg = |extra: &str| {
        format!(
            "{FAST}conditional_get = false\n{}",
            source_toml(
                "xk",
                &format!("{}/xk", server.uri()),
                &format!("select = \".content\"\n{extra}")
            )
        )
    };
    env.write_config(&cfg(""));
    assert_eq!(status(&env.check().await.1, "xk"), "baseline");
    assert_eq!(status(&env.check().await.1, "xk"), "unchanged");

    env.write_config(&cfg("exclude = \"li:nth-child(3)\""));
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk")), (0, "changed"), "{r}");
    let c = &source(&r, "xk")["changes"][0];
    assert_eq!(c["kind"], "document_removed");
    assert_eq!(c["before"], "Sigurimin shëndetësor");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_offline_and_shows_the_alerts() {
    let env = Env::new();
    let (code, out, err) = env.run(&["demo"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 sources: 3 baseline"), "{out}");
    assert!(
        out.contains("3 sources: 0 baseline, 0 unchanged, 3 changed (3 material), 0 failed"),
        "{out}"
    );
    for subject in [
        "Subject: [visawatch] Kosovo temporary residence permit (example): fee 50 EUR → 65 EUR",
        "duration 90 days → 60 days",
        "document added: Извод из казнене евиденције",
    ] {
        assert!(out.contains(subject), "{subject} missing from\n{out}");
    }
    // Issue 12: it said the .eml files were in the data folder (they are in
    // its outbox/), and it ignored --data.
    let outbox = env.data().join("outbox");
    assert!(
        out.contains(&format!("The alerts are in {}", outbox.display())),
        "{out}"
    );
    let emls = std::fs::read_dir(&outbox).unwrap().count();
    assert!(emls >= 3, "{emls} .eml files");
    let (code, _, err) = env.run(&["demo"]).await;
    assert_eq!(code, 2, "a used folder is not overwritten");
    assert!(err.contains("not empty"), "{err}");
}

/// Issue 12: every demo left a /tmp/visawatch-demo-* folder behind. Without
/// --data its data is temporary, and the default `snapshots` is not touched.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_without_a_data_folder_leaves_nothing_behind() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_visawatch"))
        .arg("demo")
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("fee 50 EUR → 65 EUR"), "{stdout}");
    assert!(
        stdout.contains("visawatch demo --data"),
        "says how to keep it: {stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!cwd.path().join("snapshots").exists());
}

/// Issue 12: logs carried ANSI colours into pipes and journald. Plain text
/// unless stderr is a terminal.
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml("down", "http://127.0.0.1:9/x", "")
    ));
    let out = env
        .command(&["check"])
        .env("VISAWATCH_LOG", "info")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("check failed"),
        "the failure was logged: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr:?}");
}

/// Issue 12: a missing sources.toml printed the OS error twice and said
/// nothing of `--config` or where relative paths start.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_names_the_option_and_the_os_error_once() {
    let env = Env::new();
    let (code, _, stderr) = env.run(&["check"]).await;
    assert_eq!(code, 2);
    assert_eq!(stderr.matches("(os error 2)").count(), 1, "{stderr}");
    assert!(
        stderr.contains("--config") && stderr.contains("sources.toml"),
        "{stderr}"
    );
}

/// Issue 12: `check --data snapshotz` created the folder and stored every
/// source as a new baseline. Only the default folder, or `--init`, is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_data_folder_does_not_start_a_new_history() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    let typo = env.dir.path().join("snapshotz");
    let run = |init: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_visawatch"));
        cmd.arg("--config").arg(env.config()).arg("--data").arg(&typo);
        if init {
            cmd.arg("--init");
        }
        cmd.args(["check", "--json"]).output()
    };
    let out = run(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not exist") && stderr.contains("--init"),
        "{stderr}"
    );
    assert!(!typo.exists(), "nothing was created");
    let out = run(true).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(typo.join("visawatch.db").exists());
}

/// Issue 12: on a data folder the user may not write, the read-only
/// commands said the database was unusable and advised moving it away.
/// They must read it; a writer must name the permission problem.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_folder_the_user_cannot_write_is_read_not_declared_damaged() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&us_config(&server));
    assert_eq!(env.check().await.0, 0);

    // Another user: as root, the binary runs as `nobody` (root ignores
    // permissions); otherwise the folder is made read-only for us.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("visawatch");
    std::fs::copy(env!("CARGO_BIN_EXE_visawatch"), &exe).unwrap();
    for dir in [bin.path(), env.dir.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if !root {
        std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("--config")
            .arg(env.config())
            .arg("--data")
            .arg(env.data())
            .args(args);
        if root {
            cmd.uid(65534).gid(65534);
        }
        async move {
            let out = cmd.output().await.unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
        }
    };
    // With and without the WAL index (-shm) that a reader would have to create.
    for without_shm in [false, true] {
        if without_shm {
            let shm = env.data().join("visawatch.db-shm");
            if shm.exists() {
                if !root {
                    std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
                }
                std::fs::remove_file(&shm).unwrap();
                if !root {
                    std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o555)).unwrap();
                }
            }
        }
        for args in [
            &["status"][..],
            &["history", "us-kosovo"],
            &["show", "us-kosovo"],
            &["outbox"],
        ] {
            let (code, stdout, stderr) = run(args).await;
            assert_eq!(code, 0, "{args:?} (without -shm: {without_shm}): {stderr}");
            assert!(!stderr.contains("move it away"), "{stderr}");
            if args[0] != "outbox" {
                assert!(
                    stdout.contains("baseline") || stdout.contains("Kosovo"),
                    "{args:?}: {stdout}"
                );
            }
        }
    }
    let (code, _, stderr) = run(&["check"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("permission denied") && stderr.contains("run as the service user"),
        "{stderr}"
    );
    assert!(!stderr.contains("move it away"), "{stderr}");
    if !root {
        std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Issue 12: a connect error repeated the URL ("cannot connect to U: error
/// sending request for url (U): …"), and a redirect to a host that does not
/// resolve was blamed on the source's own host.
#[tokio::test(flavor = "multi_thread")]
async fn fetch_errors_name_the_url_once_and_the_host_that_failed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "http://visawatch-test.invalid/page"),
        )
        .mount(&server)
        .await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}{}{}",
        source_toml("down", "http://127.0.0.1:9/x", "allow_private = true"),
        source_toml(
            "moved",
            &format!("{}/moved", server.uri()),
            "allow_private = true"
        )
    ));
    let (code, report) = env.check().await;
    assert_eq!(code, 1);
    let down = source(&report, "down")["error"].as_str().unwrap();
    assert_eq!(down.matches("127.0.0.1:9").count(), 1, "{down}");
    assert!(down.contains("Connection refused"), "{down}");
    let moved = source(&report, "moved")["error"].as_str().unwrap();
    assert!(
        moved.contains("DNS lookup failed for visawatch-test.invalid") && moved.contains("redirected from"),
        "{moved}"
    );
}

/// Issue 12: on a terminal, log lines were written into the progress bar's
/// line (stale frames), and every failure was printed twice: as a warning
/// while running and in the report. Run under a real pseudo-terminal
/// (`script` from util-linux).
#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_failures_print_once_and_logs_never_share_the_bar_line() {
    let server = MockServer::start().await;
    serve_fixture(&server, "/us", &format!("{US}/v1.html")).await;
    let env = Env::new();
    env.write_config(&format!(
        "{}{}",
        us_config(&server),
        source_toml("down", "http://127.0.0.1:9/x", "allow_private = true")
    ));
    let in_terminal = |log: &str| {
        let cmd = format!(
            "{} --config {} --data {} --init check",
            env!("CARGO_BIN_EXE_visawatch"),
            env.config().display(),
            env.data().display()
        );
        let mut script = tokio::process::Command::new("script");
        script.args(["-qec", &cmd, "/dev/null"]).env("VISAWATCH_LOG", log);
        async move {
            let out = script.output().await.expect("`script` (util-linux) runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let screen = in_terminal("warn").await;
    assert!(
        screen.contains("checking sources"),
        "a progress bar was drawn: {screen:?}"
    );
    assert_eq!(screen.matches("Connection refused").count(), 1, "{screen:?}");

    // Every log line starts on a line of its own, not after a bar frame.
    let screen = in_terminal("info").await;
    let logs: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter(|l| l.contains("INFO"))
        .collect();
    assert!(!logs.is_empty(), "{screen:?}");
    for line in logs {
        assert!(
            !line.contains("checking sources"),
            "a log line shares the bar's line: {line:?}"
        );
    }
}

/// Issue 12: `sources` showed neither a source's schedule nor when it runs
/// next, so a schedule that meant other days than intended went unseen.
#[tokio::test(flavor = "multi_thread")]
async fn sources_shows_each_schedule_and_its_next_run() {
    use chrono::Datelike;
    let env = Env::new();
    env.write_config(&format!(
        "[settings]\nschedule = \"0 0 6 * * *\"\n{}{}",
        source_toml("daily", "https://example.org/a", ""),
        source_toml(
            "saturdays",
            "https://example.org/b",
            "schedule = \"0 30 7 * * Sat\""
        )
    ));
    let (code, out, stderr) = env.run(&["sources"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.contains("schedule: \"0 0 6 * * *\" (default) UTC, next run "),
        "{out}"
    );
    let saturday = out
        .split("schedule: \"0 30 7 * * Sat\" UTC, next run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no next run for `saturdays` in {out}"));
    let next = chrono::DateTime::parse_from_rfc3339(saturday).unwrap();
    assert_eq!(next.weekday(), chrono::Weekday::Sat, "{out}");
    assert_eq!((next.format("%H:%M").to_string()), "07:30");
    let days_ahead = (next.to_utc() - chrono::Utc::now()).num_days();
    assert!((0..7).contains(&days_ahead), "{out}");
    assert!(out.contains("2 sources OK in"), "{out}");
}

/// Issue 17: catalogs across files. Included sources are checked like the
/// main file's; a mistake in one names that file and line; an id used in
/// two files names both.
#[tokio::test(flavor = "multi_thread")]
async fn included_catalogs_are_checked_and_their_mistakes_name_their_own_file() {
    let http = MockServer::start().await;
    for id in ["xk", "a", "b"] {
        serve(&http, &format!("/{id}"), xk(50), "text/html; charset=utf-8").await;
    }
    let env = Env::new();
    let dir = env.dir.path().join("sources.d");
    std::fs::create_dir(&dir).unwrap();
    let entry = |id: &str| source_toml(id, &format!("{}/{id}", http.uri()), "select = \".content\"");
    env.write_config(&format!(
        "include = [\"sources.d/*.toml\"]\n{FAST}\n{}",
        entry("xk")
    ));
    std::fs::write(dir.join("a.toml"), entry("a")).unwrap();
    std::fs::write(dir.join("b.toml"), entry("b")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a catalog").unwrap();
    let (code, r) = env.check().await;
    assert_eq!(code, 0, "{r}");
    for id in ["xk", "a", "b"] {
        assert_eq!(status(&r, id), "baseline", "{r}");
    }

    // A mistake in an included file: its own path, line and column.
    std::fs::write(
        dir.join("b.toml"),
        "[[source]]\nid = \"b\"\nurl = \"not a url\"\n",
    )
    .unwrap();
    let (code, _, err) = env.run(&["sources"]).await;
    assert_eq!(code, 2, "{err}");
    let b = dir.join("b.toml");
    assert!(
        err.contains(&format!("{}:3:7: source `b`: bad url", b.display())),
        "{err}"
    );

    // The same id in two files: both places.
    std::fs::write(dir.join("b.toml"), entry("xk")).unwrap();
    let (code, _, err) = env.run(&["sources"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}:2:6: source `xk`: duplicate id (also at {}:",
            b.display(),
            env.config().display()
        )),
        "{err}"
    );

    // Settings belong to the main file only.
    std::fs::write(dir.join("b.toml"), "[settings]\ntimeout_secs = 5\n").unwrap();
    let (code, _, err) = env.run(&["sources"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("b.toml") && err.contains("[[source]] entries only"),
        "{err}"
    );

    // A plain path that is not there.
    env.write_config(&format!("include = [\"missing.toml\"]\n{FAST}\n{}", entry("xk")));
    let (code, _, err) = env.run(&["sources"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sources.toml:1:11: include `missing.toml`: no such file"),
        "{err}"
    );
}

/// Records when each request arrived, and answers with the Kosovo page.
#[derive(Clone)]
struct Arrivals(std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>);

impl wiremock::Respond for Arrivals {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.0.lock().unwrap().push(std::time::Instant::now());
        wiremock::ResponseTemplate::new(200).set_body_raw(xk(50), "text/html; charset=utf-8")
    }
}

/// Issue 17: `per_host_gap_ms` spaces the starts of requests to one host;
/// another host's requests are not held back by it.
#[tokio::test(flavor = "multi_thread")]
async fn requests_to_one_host_are_spaced_and_other_hosts_are_not_slowed() {
    let (slow, fast) = (MockServer::start().await, MockServer::start().await);
    let (at_slow, at_fast) = (Arrivals(Default::default()), Arrivals(Default::default()));
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(at_slow.clone())
        .mount(&slow)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(at_fast.clone())
        .mount(&fast)
        .await;
    let mut config = String::from(
        "[settings]\ntimeout_secs = 5\nretries = 0\nper_host = 4\nconcurrency = 8\nper_host_gap_ms = 400\n",
    );
    for i in 0..3 {
        config += &source_toml(&format!("slow-{i}"), &format!("{}/p{i}", slow.uri()), "");
        config += &source_toml(&format!("fast-{i}"), &format!("{}/p{i}", fast.uri()), "");
    }
    let env = Env::new();
    env.write_config(&config);
    let (code, r) = env.check().await;
    assert_eq!(code, 0, "{r}");
    let arrivals = |a: &Arrivals| {
        let mut t = a.0.lock().unwrap().clone();
        t.sort();
        assert_eq!(t.len(), 3);
        t
    };
    let (s, f) = (arrivals(&at_slow), arrivals(&at_fast));
    for t in [&s, &f] {
        for w in t.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(380),
                "one host spaced: {t:?}"
            );
        }
    }
    // Each host keeps its own pace: the second host's first request does
    // not wait for the first host's three.
    let apart = if s[0] > f[0] { s[0] - f[0] } else { f[0] - s[0] };
    assert!(
        apart < Duration::from_millis(300),
        "hosts start together: {apart:?}"
    );
}

/// Answers 503 with Retry-After: 2 the first time, the page after.
#[derive(Clone)]
struct BusyOnce(Arrivals);

impl wiremock::Respond for BusyOnce {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let first = self.0.0.lock().unwrap().is_empty();
        let page = self.0.respond(req);
        if first {
            wiremock::ResponseTemplate::new(503).insert_header("Retry-After", "2")
        } else {
            page
        }
    }
}

/// Issue 17: a host that answers 503 with Retry-After is left alone that
/// long; the run goes on with the other hosts meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_pauses_that_host_only() {
    let (busy, other) = (MockServer::start().await, MockServer::start().await);
    let (at_busy, at_other) = (Arrivals(Default::default()), Arrivals(Default::default()));
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(BusyOnce(at_busy.clone()))
        .mount(&busy)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(at_other.clone())
        .mount(&other)
        .await;
    let mut config =
        String::from("[settings]\ntimeout_secs = 5\nretries = 0\nper_host = 1\nconcurrency = 8\n");
    for i in 0..3 {
        config += &source_toml(&format!("busy-{i}"), &format!("{}/p{i}", busy.uri()), "");
        config += &source_toml(&format!("other-{i}"), &format!("{}/p{i}", other.uri()), "");
    }
    let env = Env::new();
    env.write_config(&config);
    let (_, r) = env.check().await;
    let busy_at = at_busy.0.lock().unwrap().clone();
    let other_at = at_other.0.lock().unwrap().clone();
    assert_eq!((busy_at.len(), other_at.len()), (3, 3), "{r}");
    // After the 503, the busy host's next request waits its 2 s.
    assert!(
        busy_at[1] - busy_at[0] >= Duration::from_millis(1900),
        "{busy_at:?}"
    );
    // The other host is done meanwhile.
    assert!(
        other_at
            .iter()
            .all(|t| *t < busy_at[0] + Duration::from_millis(1500)),
        "{other_at:?}"
    );
    let failed: Vec<&str> = ["busy-0", "busy-1", "busy-2"]
        .into_iter()
        .filter(|id| status(&r, id) == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "only the source that got the 503 failed: {r}");
}

/// How many requests `server` received for `path`.
async fn asked(server: &MockServer, path: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == path)
        .count()
}

/// Issue 17: with `respect_robots = true`, a URL the host's robots.txt
/// disallows for visawatch is not fetched and fails with reason `robots`;
/// a host without robots.txt is fetched; one whose robots.txt cannot be
/// read is left alone (RFC 9309); each robots.txt is read once a day.
#[tokio::test]
async fn robots_txt_is_obeyed_and_read_once_a_day() {
    let (strict, open, broken) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    serve(
        &strict,
        "/robots.txt",
        b"User-agent: *\nDisallow: /\n\nUser-agent: visawatch\nAllow: /\nDisallow: /internal/\n".to_vec(),
        "text/plain",
    )
    .await;
    for page in ["/permits", "/internal/fees"] {
        serve(&strict, page, xk(50), "text/html; charset=utf-8").await;
    }
    serve(&open, "/permits", xk(50), "text/html; charset=utf-8").await;
    wiremock::Mock::given(wiremock::matchers::path("/robots.txt"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&broken)
        .await;
    serve(&broken, "/permits", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    let sel = "select = \".content\"";
    env.write_config(&format!(
        "{FAST}respect_robots = true\n{}{}{}{}",
        source_toml("allowed", &format!("{}/permits", strict.uri()), sel),
        source_toml("disallowed", &format!("{}/internal/fees", strict.uri()), sel),
        source_toml("no-robots", &format!("{}/permits", open.uri()), sel),
        source_toml("robots-down", &format!("{}/permits", broken.uri()), sel),
    ));
    for _ in 0..2 {
        let (code, r) = env.check().await;
        assert_eq!(code, 1, "{r}");
        assert_ne!(status(&r, "allowed"), "failed", "{r}");
        assert_ne!(status(&r, "no-robots"), "failed", "{r}");
        assert_eq!(status(&r, "disallowed"), "failed");
        let error = source(&r, "disallowed")["error"].as_str().unwrap();
        assert!(
            error.contains("/internal/fees")
                && error.contains("disallowed by")
                && error.contains("robots.txt"),
            "{error}"
        );
        assert_eq!(status(&r, "robots-down"), "failed");
        let error = source(&r, "robots-down")["error"].as_str().unwrap();
        assert!(
            error.contains("robots.txt could not be read (HTTP 503)"),
            "{error}"
        );
    }
    let db = rusqlite::Connection::open(env.data().join("visawatch.db")).unwrap();
    let reasons: Vec<String> = db
        .prepare("SELECT DISTINCT reason FROM checks WHERE source_id IN ('disallowed', 'robots-down')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(reasons, ["robots"]);
    assert_eq!(
        asked(&strict, "/internal/fees").await,
        0,
        "a disallowed page is never fetched"
    );
    assert_eq!(
        asked(&strict, "/robots.txt").await,
        1,
        "read once, kept for the day"
    );
    assert_eq!(asked(&open, "/robots.txt").await, 1, "a 404 is kept too");
    assert_eq!(
        asked(&broken, "/robots.txt").await,
        2,
        "an unreadable one is asked again"
    );
    assert_eq!(asked(&broken, "/permits").await, 0);
}
