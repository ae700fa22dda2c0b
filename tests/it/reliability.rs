//! Issue 10: inputs and faults that lost alerts, crashed or stalled a run.
//! One regression test per case, each against real servers on 127.0.0.1
//! and real files; named after the case.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use wiremock::MockServer;

use crate::daemon::{Daemon, checks, wait_for};
use crate::helpers::*;
use crate::smtp::{Options, SmtpServer, free_port};

async fn serve_xk(http: &MockServer, fee: u32) {
    http.reset().await;
    serve(http, "/xk", xk(fee), "text/html; charset=utf-8").await;
}

/// `.eml` files written by the default file transport.
fn eml_files(env: &Env) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(env.data().join("outbox")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

/// (1) No `[email]`, no maintainers: the alert waits, visible, and goes
/// out as an `.eml` once maintainers are added.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_with_nobody_to_send_to_waits_and_goes_out_once_recipients_exist() {
    let http = MockServer::start().await;
    let env = Env::new();
    let url = format!("{}/xk", http.uri());
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml("xk", &url, "select = \".content\"")
    ));
    serve_xk(&http, 50).await;
    env.check().await;
    serve_xk(&http, 65).await;
    let (code, r) = env.check().await;
    assert_eq!(code, 0);
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1}),
        "not delivered: nobody to send to"
    );
    assert!(eml_files(&env).is_empty());
    let (_, out, _) = env.run(&["status"]).await;
    assert!(out.contains("no recipients configured"), "{out}");
    let (_, out, _) = env.run(&["outbox"]).await;
    assert!(
        out.contains("no recipients") && out.contains("fee 50 EUR → 65 EUR"),
        "{out}"
    );

    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml(
            "xk",
            &url,
            "select = \".content\"\nmaintainers = [\"kosovo@example.org\"]"
        )
    ));
    let (code, _, err) = env.run(&["outbox", "--retry"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 sent"), "{err}");
    let emls = eml_files(&env);
    assert_eq!(emls.len(), 1, "the waiting alert is written once");
    assert!(emls[0].contains("To: kosovo@example.org"), "{}", emls[0]);
    assert!(emls[0].contains("fee 50 EUR"), "{}", emls[0]);
    let (_, out, _) = env.run(&["outbox"]).await;
    assert!(out.contains("outbox empty"), "{out}");
    // And a later run does not send it again.
    env.check().await;
    assert_eq!(eml_files(&env).len(), 1);
}

/// (2) A `<td>` holding a heading and a list: an added document is a
/// material `document_added`, not a text change.
#[tokio::test(flavor = "multi_thread")]
async fn a_document_added_to_a_list_in_a_layout_table_is_material() {
    let page = |extra: &str| {
        format!(
            "<html><body><table><tr><td><h2>Documents</h2><ul><li>Passport</li><li>Photo</li>{extra}</ul></td>\
             <td><p>Apply at the police station.</p></td></tr></table></body></html>"
        )
        .into_bytes()
    };
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml("layout", &format!("{}/p", http.uri()), "")
    ));
    serve(&http, "/p", page(""), "text/html").await;
    env.check().await;
    http.reset().await;
    serve(&http, "/p", page("<li>Proof of accommodation</li>"), "text/html").await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "layout")), (0, "changed"), "{r}");
    let s = source(&r, "layout");
    assert_eq!(s["material"], true, "{r}");
    assert_eq!(s["changes"][0]["kind"], "document_added");
    assert_eq!(s["changes"][0]["after"], "Proof of accommodation");
}

/// (3) Random bytes, a PNG, and an HTML page replaced by a PDF: each fails
/// its source with `unsupported content type`; never a baseline, never a
/// change, the last good snapshot kept.
#[tokio::test(flavor = "multi_thread")]
async fn binary_bodies_fail_the_source_and_keep_the_last_good_snapshot() {
    let http = MockServer::start().await;
    let random: Vec<u8> = (0..200_000).map(|_| fastrand::u8(..)).collect();
    serve(&http, "/bin", random, "application/octet-stream").await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..5000).map(|_| fastrand::u8(..)));
    serve(&http, "/png", png, "image/png").await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    let u = |p: &str| format!("{}/{p}", http.uri());
    env.write_config(&format!(
        "{FAST}\n{}{}{}",
        source_toml("bin", &u("bin"), ""),
        source_toml("png", &u("png"), ""),
        source_toml("xk", &u("xk"), "select = \".content\"")
    ));
    let (code, r) = env.check().await;
    assert_eq!(code, 1, "{r}");
    for (id, ty) in [("bin", "application/octet-stream"), ("png", "image/png")] {
        assert_eq!(status(&r, id), "failed");
        let err = source(&r, id)["error"].as_str().unwrap();
        assert!(err.contains(&format!("unsupported content type {ty}")), "{err}");
        assert!(!env.data().join(format!("{id}.txt")).exists());
    }
    assert_eq!(status(&r, "xk"), "baseline");
    let before = std::fs::read_to_string(env.data().join("xk.txt")).unwrap();

    // The same URL now serves a PDF, labelled as HTML by a careless server:
    // the bytes decide, and the source's CSS selector cannot apply to it.
    http.reset().await;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..5000).map(|_| fastrand::u8(..)));
    serve(&http, "/xk", pdf, "text/html").await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk"), "failed");
    let err = source(&r, "xk")["error"].as_str().unwrap();
    assert!(err.contains("this URL served a PDF"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.data().join("xk.txt")).unwrap(),
        before
    );
    let (code, out, _) = env.run(&["show", "bin"]).await;
    assert_ne!(code, 0, "no snapshot was ever stored: {out}");

    http.reset().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk"), "unchanged", "the page back is no change");
}

/// (4) A deleted `<id>.txt` and one left with an old text are repaired by
/// the next run, even when the page did not change.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_or_stale_text_file_is_repaired_by_the_next_run() {
    let http = MockServer::start().await;
    serve(&http, "/a", xk(50), "text/html; charset=utf-8").await;
    serve(&http, "/b", xk(70), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}\n{}{}",
        source_toml("a", &format!("{}/a", http.uri()), "select = \".content\""),
        source_toml("b", &format!("{}/b", http.uri()), "select = \".content\"")
    ));
    env.check().await;
    let (a, b) = (env.data().join("a.txt"), env.data().join("b.txt"));
    let good_a = std::fs::read_to_string(&a).unwrap();
    let good_b = std::fs::read_to_string(&b).unwrap();
    std::fs::remove_file(&a).unwrap();
    // What a kill between the commit and the file leaves: the old text, same length.
    std::fs::write(&b, good_b.replace("70 €", "60 €")).unwrap();
    let (code, r) = env.check().await;
    assert_eq!(
        (code, status(&r, "a"), status(&r, "b")),
        (0, "unchanged", "unchanged")
    );
    assert_eq!(std::fs::read_to_string(&a).unwrap(), good_a);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), good_b);
}

/// (5) and (8): a page nested 5,000 deep aborted the process; 200,000
/// attributes on one tag took 35 s. Each now fails its own source.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_documents_fail_their_source_not_the_run() {
    let http = MockServer::start().await;
    let deep = format!("<main>{}x{}</main>", "<div>".repeat(5000), "</div>".repeat(5000));
    serve(&http, "/deep", deep.clone().into_bytes(), "text/html").await;
    let attrs: String = (0..200_000).map(|i| format!(" a{i}=1")).collect();
    serve(
        &http,
        "/attrs",
        format!("<main><p{attrs}>x</p></main>").into_bytes(),
        "text/html",
    )
    .await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    let u = |p: &str| format!("{}/{p}", http.uri());
    env.write_config(&format!(
        "[settings]\ntimeout_secs = 5\nretries = 0\n{}{}{}",
        source_toml("deep", &u("deep"), ""),
        source_toml("attrs", &u("attrs"), ""),
        source_toml("xk", &u("xk"), "select = \".content\"")
    ));
    let (code, r) = env.check().await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(status(&r, "xk"), "baseline");
    let err = |id| source(&r, id)["error"].as_str().unwrap().to_string();
    assert!(
        err("deep").contains("nested 5") && err("deep").contains("at most 512"),
        "{}",
        err("deep")
    );
    assert!(
        err("attrs").contains("more than 1000 attributes"),
        "{}",
        err("attrs")
    );

    let file = env.dir.path().join("d.html");
    std::fs::write(&file, deep).unwrap();
    let (code, _, stderr) = env.run(&["probe", file.to_str().unwrap()]).await;
    assert_eq!(code, 2, "a clean error, not an abort (134): {stderr}");
    assert!(stderr.contains("too complex"), "{stderr}");
}

/// (9) `probe /dev/zero` read until memory ran out; a FIFO hung.
#[tokio::test(flavor = "multi_thread")]
async fn probe_reads_only_regular_files() {
    let env = Env::new();
    let fifo = env.dir.path().join("page.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for target in ["/dev/zero", fifo.to_str().unwrap()] {
        let (code, _, stderr) = tokio::time::timeout(Duration::from_secs(20), env.run(&["probe", target]))
            .await
            .expect("probe returns");
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
    let (code, _, stderr) = tokio::time::timeout(
        Duration::from_secs(20),
        env.run(&["--config", fifo.to_str().unwrap(), "sources"]),
    )
    .await
    .expect("--config on a FIFO returns");
    assert_eq!(code, 2, "{stderr}");
}

/// (10) Settings that used to pass and fail later are config errors.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_settings_are_config_errors_with_their_line() {
    let env = Env::new();
    let src = source_toml("a", "http://127.0.0.1:9/a", "");
    for (setting, expect) in [
        (
            "grace_secs = 9223372036854775807",
            "sources.toml:2:14: [settings] grace_secs",
        ),
        (
            "user_agent = \"a\\r\\nb\"",
            "sources.toml:2:14: [settings] user_agent",
        ),
        (
            "concurrency = 100000",
            "sources.toml:2:15: [settings] concurrency",
        ),
    ] {
        env.write_config(&format!("[settings]\n{setting}\n{src}"));
        let (code, _, stderr) = env.run(&["check"]).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(expect), "{setting}: {stderr}");
    }
    assert!(!env.data().exists(), "nothing was written");
}

/// A relay that accepts connections and never says a word.
fn silent_relay() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    port
}

fn smtp_config(http: &MockServer, port: u16, extra: &str) -> String {
    format!(
        "{FAST}grace_secs = 2\njitter_secs = 0\nschedule = \"0 0 6 * * *\"\n\n[email]\n\
         from = \"visawatch <alerts@example.org>\"\nto = [\"editors@example.org\"]\n\
         smtp_url = \"smtp://127.0.0.1:{port}\"\nretry_backoff_secs = 0\n\n{}",
        source_toml(
            "xk",
            &format!("{}/xk", http.uri()),
            &format!("select = \".content\"\n{extra}")
        )
    )
}

/// (7) A relay that accepts and never answers hung `check` forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_smtp_relay_leaves_the_alert_pending_not_the_run() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&smtp_config(&http, silent_relay(), ""));
    serve_xk(&http, 50).await;
    env.check().await;
    serve_xk(&http, 65).await;
    let (code, r) = tokio::time::timeout(Duration::from_secs(30), env.check())
        .await
        .expect("check ends although the relay is silent");
    assert_eq!(code, 0);
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1})
    );
    let (_, out, _) = env.run(&["outbox"]).await;
    assert!(
        out.contains("pending") && out.contains("did not finish within 2s"),
        "{out}"
    );
}

/// A relay that takes `delay` over every reply: slow, but it delivers.
fn slow_relay(port: u16, delay: Duration) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                let mut reply = |text: &str| {
                    std::thread::sleep(delay);
                    let _ = out.write_all(format!("{text}\r\n").as_bytes());
                };
                reply("220 slow.test ESMTP");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("DATA") {
                        reply("354 go on");
                        let mut body = String::new();
                        while reader.read_line(&mut body).unwrap_or(0) > 0 && !body.ends_with("\r\n.\r\n") {}
                        reply("250 queued");
                    } else if cmd.starts_with("QUIT") {
                        reply("221 bye");
                        break;
                    } else {
                        reply("250 ok");
                    }
                    line.clear();
                }
            });
        }
    });
}

/// (12) 20 recipients pending on a slow relay took 28.9 s after SIGTERM
/// (past systemd's stop timeout). Delivery stops; what is pending stays.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_slow_delivery_exits_within_the_grace() {
    let http = MockServer::start().await;
    let port = free_port();
    let maintainers: Vec<String> = (0..20).map(|i| format!("\"m{i}@example.org\"")).collect();
    let env = Env::new();
    env.write_config(&smtp_config(
        &http,
        port,
        &format!("maintainers = [{}]", maintainers.join(", ")),
    ));
    serve_xk(&http, 50).await;
    env.check().await;
    serve_xk(&http, 65).await;
    let (_, r) = env.check().await;
    assert_eq!(r["alerts"]["failed"], 1, "relay down: 21 recipients pending");

    slow_relay(port, Duration::from_millis(100));
    let d = Daemon::start(&env);
    wait_for(20, "delivery to start", || async {
        d.log().contains("alert sent")
    })
    .await;
    let asked = Instant::now();
    let code = d.stop().await;
    let took = asked.elapsed();
    assert_eq!(code, 0);
    assert!(
        took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM (grace 2 s)"
    );
    let (_, out, _) = env.run(&["outbox", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str::<serde_json::Value>(&out).unwrap()["emails"].clone();
    let pending = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "pending")
        .count();
    assert!(pending >= 10, "the rest stays pending: {out}");
}

/// (15) With credentials set, a server that offers no STARTTLS never sees
/// them: the alert is not sent and stays pending, saying why.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_never_sent_without_tls() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = Env::new();
    env.write_config(&smtp_config(&http, smtp.port, ""));
    serve_xk(&http, 50).await;
    env.check().await;
    serve_xk(&http, 65).await;
    let out = env
        .command(&["check", "--json"])
        .env("VISAWATCH_SMTP_USERNAME", "editor")
        .env("VISAWATCH_SMTP_PASSWORD", "hunter2-secret")
        .output()
        .await
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1})
    );
    assert!(smtp.drain().is_empty(), "nothing reached the server");
    let (_, outbox, _) = env.run(&["outbox"]).await;
    assert!(outbox.to_ascii_lowercase().contains("tls"), "{outbox}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

/// (13) 4 KB of random bytes in the middle of a checkpointed database:
/// `check` exited 0 and kept writing. Now it refuses, with the way back.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_database_is_refused_with_the_recovery_steps() {
    let http = MockServer::start().await;
    let env = Env::new();
    let mut config = String::from(FAST);
    for i in 0..40 {
        serve(&http, &format!("/s{i}"), xk(50 + i), "text/html; charset=utf-8").await;
        config.push_str(&source_toml(
            &format!("s{i}"),
            &format!("{}/s{i}", http.uri()),
            "select = \".content\"",
        ));
    }
    env.write_config(&config);
    for _ in 0..3 {
        assert_eq!(env.check().await.0, 0);
    }
    let (code, out, _) = env.run(&["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": ok"), "{out}");

    let db = env.data().join("visawatch.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 64 * 1024, "a database worth damaging: {len} bytes");
    let noise: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    f.write_all(&noise).unwrap();
    drop(f);

    let before = std::fs::metadata(&db).unwrap().len();
    let (code, _, stderr) = env.run(&["check"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("failed its integrity check"), "{stderr}");
    assert!(
        stderr.contains("sqlite3 visawatch.db .recover") && stderr.contains("backup"),
        "{stderr}"
    );
    assert!(!stderr.contains("move it away"), "{stderr}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), before);
    let (code, _, stderr) = env.run(&["verify"]).await;
    assert_eq!(code, 2, "{stderr}");
}

/// A small tmpfs mounted on a test's data folder (root only: CI runs as
/// root, and a test that cannot mount fails rather than skips), unmounted
/// when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount(8) is needed for this test (run as root)");
        assert!(
            mount.success(),
            "mounting a tmpfs needs root: this test must run as root"
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `file` until the disk is full.
fn fill(file: &std::path::Path) {
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", file.display()))
        .stderr(std::process::Stdio::null())
        .status();
}

/// (11) A full disk made the daemon exit 2, and the unit does not restart
/// after exit 2. The daemon logs, stays up, and records again once there
/// is room.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_does_not_stop_the_daemon() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    let _disk = SmallDisk::mount(&env.data(), "4m");
    env.write_config(&format!(
        "{FAST}schedule = \"* * * * * *\"\njitter_secs = 0\n\n{}",
        source_toml("xk", &format!("{}/xk", http.uri()), "select = \".content\"")
    ));
    let d = Daemon::start(&env);
    wait_for(20, "the first checks", || async { checks(&env, "xk").await >= 2 }).await;

    // Fill the disk, and give the daemon pages that need room to record.
    let filler = env.data().join("filler");
    fill(&filler);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut fee = 51;
    while !d.log().contains("daemon step failed") {
        assert!(Instant::now() < deadline, "no storage error logged: {}", d.log());
        fee += 1;
        serve_xk(&http, fee).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = d.log();
    assert!(
        log.contains("full") || log.contains("No space left"),
        "the error says why: {log}"
    );
    std::fs::remove_file(&filler).unwrap();
    let before = checks(&env, "xk").await;
    wait_for(60, "checks recorded again", || async {
        checks(&env, "xk").await > before
    })
    .await;
    assert_eq!(d.stop().await, 0, "still running; SIGTERM stops it");
}

/// (16) A public page that redirects into loopback (here through a proxy
/// standing in for a man in the middle) had the internal page stored and
/// mailed. Refused, unless the source says `allow_private = true`.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_from_a_public_host_into_a_private_network_is_refused() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let internal = MockServer::start().await;
    let proxy = MockServer::start().await;
    let secret = format!("{}/secret", internal.uri());
    for server in [&internal, &proxy] {
        serve(
            server,
            "/secret",
            b"<main><p>Internal admin token: 12345</p></main>".to_vec(),
            "text/html",
        )
        .await;
    }
    Mock::given(method("GET"))
        .and(path("/visa"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", secret.as_str()))
        .mount(&proxy)
        .await;
    let env = Env::new();
    let check = |allow: bool| {
        env.write_config(&format!(
            "{FAST}\n{}",
            source_toml(
                "public",
                "http://example.org/visa",
                &format!("allow_private = {allow}")
            )
        ));
        // `example.org` is a reserved example domain, never
        // resolved: every request goes to the proxy on 127.0.0.1.
        env.command(&["check", "--json"])
            .env("http_proxy", proxy.uri())
            .env("HTTP_PROXY", proxy.uri())
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .output()
    };
    let out = check(false).await.unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&r, "public"), "failed", "{r}");
    let err = source(&r, "public")["error"].as_str().unwrap();
    assert!(
        err.contains("refused to enter a private network") && err.contains("127.0.0.1"),
        "{err}"
    );
    let mut asked = 0;
    for s in [&internal, &proxy] {
        let reqs = s.received_requests().await.unwrap();
        asked += reqs.iter().filter(|q| q.url.path() == "/secret").count();
    }
    assert_eq!(asked, 0, "the internal page was never asked for");
    assert!(!env.data().join("public.txt").exists());

    let out = check(true).await.unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&r, "public"), "baseline", "allowed on purpose: {r}");
}

/// (11) A daemon that starts on a full disk exits 1, which the service
/// unit restarts, not 2, which it leaves down.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_starting_on_a_full_disk_exits_so_that_it_is_restarted() {
    let env = Env::new();
    let _disk = SmallDisk::mount(&env.data(), "1m");
    fill(&env.data().join("filler"));
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml("xk", "http://127.0.0.1:9/xk", "")
    ));
    let (code, _, stderr) = tokio::time::timeout(Duration::from_secs(30), env.run(&["daemon"]))
        .await
        .expect("the daemon gives up at once");
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.matches("No space left on device").count(),
        1,
        "said once: {stderr}"
    );
}

/// Issue 12: with the machine offline, every source sent its own "can no
/// longer read" email. Most hosts unreachable at once is one "cannot reach
/// the network" alert; the per-source ones only when the rest answers.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_machine_sends_one_network_alert_not_one_per_source() {
    let http = MockServer::start().await;
    serve_xk(&http, 50).await;
    let env = Env::new();
    // Four hosts that refuse connections (closed port 9 on loopback addresses).
    let offline = |id: &str, n: u8| {
        source_toml(
            id,
            &format!("http://127.0.0.{n}:9/{id}"),
            "allow_private = true\nmaintainers = [\"ed@example.org\"]",
        )
    };
    let settings = format!("{FAST}failure_alert_after = 1\n");
    env.write_config(&format!(
        "{settings}{}{}{}{}",
        offline("a", 2),
        offline("b", 3),
        offline("c", 4),
        offline("d", 5)
    ));
    let subjects = |env: &Env| -> Vec<String> {
        let mut s: Vec<String> = eml_files(env)
            .iter()
            .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")).map(str::to_string))
            .collect();
        s.sort();
        s
    };
    let (code, r) = env.check().await;
    assert_eq!(code, 1, "{r}");
    let sent = subjects(&env);
    assert_eq!(sent.len(), 1, "one alert, not one per source: {sent:?}");
    assert!(
        sent[0].contains("cannot reach the network (4 of 4 hosts)"),
        "{sent:?}"
    );

    // Still offline: nothing more.
    env.check().await;
    assert_eq!(subjects(&env).len(), 1, "{:?}", subjects(&env));

    // Back online: the sources answer; one all-clear.
    let online = |id: &str| {
        source_toml(
            id,
            &format!("{}/xk", http.uri()),
            "allow_private = true\nmaintainers = [\"ed@example.org\"]",
        )
    };
    env.write_config(&format!(
        "{settings}{}{}{}{}",
        online("a"),
        online("b"),
        online("c"),
        online("d")
    ));
    let (code, r) = env.check().await;
    assert_eq!(code, 0, "{r}");
    let sent = subjects(&env);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().any(|s| s.contains("reaches the network again")),
        "{sent:?}"
    );

    // One source unreachable while the rest answers: its own alert.
    env.write_config(&format!(
        "{settings}{}{}{}{}",
        online("a"),
        online("b"),
        online("c"),
        offline("d", 5)
    ));
    env.check().await;
    let sent = subjects(&env);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter().any(|s| s.contains("can no longer read d")),
        "{sent:?}"
    );
}

/// Issue 12: the systemd unit rated 7.1 (MEDIUM) in `systemd-analyze
/// security`. It must verify clean and rate 3.0 or lower.
#[test]
fn the_systemd_unit_is_hardened_and_verifies_clean() {
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/check-unit.sh"))
        .arg(env!("CARGO_BIN_EXE_visawatch"))
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("verify: clean") && text.contains("exposure"),
        "{text}"
    );
}
