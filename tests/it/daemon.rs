//! `visawatch daemon` end to end: schedules, signals, reload, the lock,
//! catch-up after a restart. Real HTTP and SMTP servers on 127.0.0.1.

use std::process::Stdio;
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::smtp::{Options, SmtpServer};

fn config(http: &MockServer, smtp_port: u16, schedule: &str, sources: &[&str]) -> String {
    let mut c = format!(
        "{FAST}schedule = \"{schedule}\"\njitter_secs = 0\ngrace_secs = 10\n\n[email]\n\
         from = \"visawatch <alerts@example.org>\"\nto = [\"editors@example.org\"]\n\
         smtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nretry_backoff_secs = 0\n\n"
    );
    for id in sources {
        c.push_str(&source_toml(
            id,
            &format!("{}/{id}", http.uri()),
            "name = \"Kosovo permit\"\nselect = \".content\"",
        ));
    }
    c
}

/// The daemon run in this process, told to stop through its channel (what
/// the CLI feeds from SIGTERM): no process, no `kill`.
pub struct InProcess {
    tx: tokio::sync::mpsc::Sender<visawatch::daemon::Signal>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn start(env: &Env) -> InProcess {
        let config = visawatch::config::load(&env.config()).unwrap();
        let store = visawatch::daemon::open(&env.data()).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (path, data) = (env.config(), env.data());
        let task = tokio::spawn(async move { visawatch::daemon::run(&path, &data, config, store, rx).await });
        InProcess { tx, task }
    }

    /// Stops it and waits: it must end cleanly within the grace.
    pub async fn stop(self) {
        self.tx.send(visawatch::daemon::Signal::Stop).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the daemon stops when told")
            .unwrap()
            .unwrap();
    }
}

pub struct Daemon {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    pub fn start(env: &Env) -> Daemon {
        let log = env.dir.path().join(format!("daemon-{}.log", fastrand_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let child = env
            .command(&["daemon"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Daemon { child, log }
    }
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub async fn stop(mut self) -> i32 {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("daemon exits after SIGTERM")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Number of checks recorded for a source (via `history --json`).
pub async fn checks(env: &Env, id: &str) -> usize {
    let (code, out, _) = env.run(&["history", id, "--json", "--limit", "1000"]).await;
    if code != 0 {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&out)
        .map(|v| v.as_array().map_or(0, |a| a.len()))
        .unwrap_or(0)
}

pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_second_schedule_picks_up_a_change_and_alerts() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, smtp.port, "* * * * * *", &["xk"]));
    let d = Daemon::start(&env);
    wait_for(15, "the baseline", || async { checks(&env, "xk").await >= 1 }).await;
    let (code, out, _) = env.run(&["status", "--json"]).await;
    assert_eq!(code, 0, "status reads while the daemon runs");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st[0]["id"], "xk");
    assert!(
        matches!(st[0]["status"].as_str(), Some("baseline" | "unchanged")),
        "{st}"
    );

    http.reset().await;
    serve(&http, "/xk", xk(65), "text/html; charset=utf-8").await;
    let m = smtp.next(15).expect("the alert arrives within a few ticks");
    assert_eq!(m.subject(), "[visawatch] Kosovo permit: fee 50 EUR → 65 EUR");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        smtp.drain().is_empty(),
        "later ticks see no change: no second alert"
    );
    let log = d.log();
    assert_eq!(d.stop().await, 0);
    assert!(log.contains("checked") && log.contains("alert sent"), "{log}");
    assert!(
        !log.contains("Leje-qëndrimi"),
        "no page text or mail body in logs: {log}"
    );
}

/// A round keeps counts, not a line per source (100,000 of them, with
/// every changed page's diff, would be held to its end): the log still
/// says how many sources were checked and how many failed.
#[tokio::test(flavor = "multi_thread")]
async fn each_round_logs_how_many_sources_it_checked_and_how_many_failed() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    // Nothing is served at /gone: a 404, a failed check.
    let env = Env::new();
    env.write_config(&config(&http, smtp.port, "* * * * * *", &["xk", "gone"]));
    let d = Daemon::start(&env);
    wait_for(15, "a round to finish", || async {
        d.log().contains("run finished")
    })
    .await;
    let log = d.log();
    assert_eq!(d.stop().await, 0);
    let round = log.lines().find(|l| l.contains("run finished")).unwrap();
    assert!(
        round.contains("checked=2") && round.contains("failed=1"),
        "{round}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_check_lets_it_finish_and_exits_0() {
    let http = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/xk"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(xk(50), "text/html; charset=utf-8")
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&http)
        .await;
    let env = Env::new();
    env.write_config(&config(&http, 9, "0 0 6 * * *", &["xk"]));
    let d = Daemon::start(&env);
    wait_for(10, "the first request", || async {
        !http.received_requests().await.unwrap_or_default().is_empty()
    })
    .await;
    let started = Instant::now();
    let log_path = d.log.clone();
    let code = d.stop().await;
    assert_eq!(code, 0, "{}", std::fs::read_to_string(log_path).unwrap());
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "waited for the in-flight check"
    );
    assert_eq!(checks(&env, "xk").await, 1, "the in-flight check was recorded");
    let (_, hist, _) = env.run(&["history", "xk"]).await;
    let (code, out, err) = env.run(&["show", "xk"]).await;
    assert_eq!(code, 0, "{hist}{err}");
    assert!(out.contains("Leje-qëndrimi i përkohshëm | 50 €"), "{out}");
    let (code, _, err) = env.run(&["status"]).await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_the_same_data_folder_refuses_to_start() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, 9, "0 0 6 * * *", &["xk"]));
    let d = Daemon::start(&env);
    wait_for(10, "the first daemon", || async { checks(&env, "xk").await >= 1 }).await;
    let (code, _, err) = tokio::time::timeout(Duration::from_secs(10), env.run(&["daemon"]))
        .await
        .expect("the second daemon exits at once");
    assert_eq!(code, 2);
    assert!(err.contains("another visawatch process holds the lock"), "{err}");
    assert!(err.contains("(daemon pid "), "{err}");
    // A manual check does not hang waiting for a daemon that never lets go.
    let (code, _, err) = tokio::time::timeout(Duration::from_secs(10), env.run(&["check"]))
        .await
        .expect("check fails at once while the daemon runs");
    assert_eq!(code, 2);
    assert!(err.contains("daemon pid"), "{err}");
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_a_broken_config_keeps_the_old_one() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    serve(&http, "/other", xk(80), "text/html; charset=utf-8").await;
    let smtp = SmtpServer::start(Options::default());
    let env = Env::new();
    env.write_config(&config(&http, smtp.port, "* * * * * *", &["xk"]));
    let d = Daemon::start(&env);
    wait_for(10, "the baseline", || async { checks(&env, "xk").await >= 1 }).await;

    env.write_config("[[source]]\nid = \"broken\"\nurl = \"not a url\"\n");
    d.signal("-HUP");
    wait_for(5, "the reload error", || async {
        d.log().contains("reload failed")
    })
    .await;
    assert!(d.log().contains("not a url"), "{}", d.log());
    let before = checks(&env, "xk").await;
    wait_for(10, "checks under the old config", || async {
        checks(&env, "xk").await > before
    })
    .await;

    env.write_config(&config(&http, smtp.port, "* * * * * *", &["xk", "other"]));
    d.signal("-HUP");
    wait_for(10, "the new source's first check", || async {
        checks(&env, "other").await >= 1
    })
    .await;
    assert!(d.log().contains("configuration reloaded"));
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_a_missed_schedule_checks_at_once() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, 9, "0 0 6 * * *", &["xk"]));
    let (code, _) = env.check().await;
    assert_eq!(code, 0);
    // A schedule firing once a minute, two seconds from now: it passes
    // while no daemon runs.
    let second = (chrono::Utc::now().timestamp() + 2).rem_euclid(60);
    env.write_config(&config(&http, 9, &format!("{second} * * * * *"), &["xk"]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = InProcess::start(&env).await;
    wait_for(5, "the catch-up check", || async {
        checks(&env, "xk").await >= 2
    })
    .await;
    let (_, out, _) = env.run(&["status", "--json"]).await;
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(st[0]["next_due"].as_str().unwrap()).unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(30),
        "next run is the next minute: {st}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_digest_reports_text_only_changes_and_sources_in_trouble() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let smtp = SmtpServer::start(Options::default());
    let env = Env::new();
    let with_digest = |c: String| {
        c.replace(
            "jitter_secs = 0",
            "jitter_secs = 0\ndigest_schedule = \"*/2 * * * * *\"",
        )
    };
    // `missing` is never served: a 404 on every check.
    env.write_config(&with_digest(config(
        &http,
        smtp.port,
        "* * * * * *",
        &["xk", "missing"],
    )));
    let d = Daemon::start(&env);
    wait_for(10, "the baseline", || async { checks(&env, "xk").await >= 1 }).await;

    // A reworded sentence without any fee, duration or document: text only.
    let reworded = String::from_utf8(xk(50))
        .unwrap()
        .replace("dhe mund të vazhdohet", "dhe mund të zgjatet")
        .into_bytes();
    http.reset().await;
    serve(&http, "/xk", reworded, "text/html; charset=utf-8").await;
    wait_for(10, "the text change", || async {
        env.run(&["diff", "xk"]).await.1.contains("zgjatet")
    })
    .await;

    let until = Instant::now() + Duration::from_secs(15);
    let mut digest = None;
    while Instant::now() < until && digest.is_none() {
        if let Some(m) = smtp.next(1) {
            let body = m.parsed().body_text(0).unwrap_or_default().to_string();
            if m.subject().starts_with("[visawatch] weekly digest") && body.contains("zgjatet") {
                digest = Some((m.subject(), body, m.to.clone()));
            }
        }
    }
    let (subject, body, to) = digest.expect("a digest with the text change arrives");
    assert_eq!(to, ["editors@example.org"]);
    assert!(
        subject.contains("1 source in trouble, 1 text-only change"),
        "{subject}"
    );
    assert!(body.contains("missing:") && body.contains("HTTP 404"), "{body}");
    assert!(
        body.contains("+Leja e qëndrimit") || body.contains("{+zgjatet+}"),
        "{body}"
    );

    // An alerted change of a new kind (issue 15) is in the next digest's
    // look back at what was alerted.
    let with_countries = String::from_utf8(xk(50))
        .unwrap()
        .replace("dhe mund të vazhdohet", "dhe mund të zgjatet")
        .replace(
            "<h2>Taksa</h2>",
            "<p>Shtetasit e Shqipërisë dhe të Malit të Zi hyjnë me letërnjoftim.</p><h2>Taksa</h2>",
        )
        .into_bytes();
    http.reset().await;
    serve(&http, "/xk", with_countries, "text/html; charset=utf-8").await;
    let until = Instant::now() + Duration::from_secs(15);
    let mut alerted = None;
    while Instant::now() < until && alerted.is_none() {
        if let Some(m) = smtp.next(1) {
            let body = m.parsed().body_text(0).unwrap_or_default().to_string();
            if m.subject().starts_with("[visawatch] weekly digest") && body.contains("  - xk at ") {
                alerted = Some(body);
            }
        }
    }
    let body = alerted.expect("a digest with the alerted change arrives");
    assert!(
        body.contains("country added: Malit të Zi (ME)") && body.contains("country added: Shqipërisë (AL)"),
        "{body}"
    );
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_that_failed_is_retried_by_the_daemon_without_waiting_for_a_check() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let port = crate::smtp::free_port();
    let env = Env::new();
    // A daily schedule: nothing is due while the test runs.
    env.write_config(
        &config(&http, port, "0 0 6 * * *", &["xk"])
            .replace("retry_backoff_secs = 0", "retry_backoff_secs = 1"),
    );
    env.check().await;
    http.reset().await;
    serve(&http, "/xk", xk(65), "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1}),
        "SMTP is down"
    );

    let d = InProcess::start(&env).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let smtp = SmtpServer::start(Options {
        port: Some(port),
        ..Options::default()
    });
    let m = smtp.next(20).expect("the daemon retries the outbox on its own");
    assert_eq!(m.subject(), "[visawatch] Kosovo permit: fee 50 EUR → 65 EUR");
    assert_eq!(checks(&env, "xk").await, 2, "no check was needed for it");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_with_its_own_schedule_runs_on_it() {
    let http = MockServer::start().await;
    serve(&http, "/fast", xk(50), "text/html; charset=utf-8").await;
    serve(&http, "/slow", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    // The global schedule is daily; `fast` has its own, every second.
    let cfg = config(&http, 9, "0 0 6 * * *", &["fast", "slow"]).replace(
        &format!("url = \"{}/fast\"\n", http.uri()),
        &format!("url = \"{}/fast\"\nschedule = \"* * * * * *\"\n", http.uri()),
    );
    env.write_config(&cfg);
    let d = InProcess::start(&env).await;
    wait_for(15, "several checks of the fast source", || async {
        checks(&env, "fast").await >= 4
    })
    .await;
    assert_eq!(
        checks(&env, "slow").await,
        1,
        "the daily source ran once, at start"
    );
    d.stop().await;
}

/// The daemon driven in-process: its stop comes through the channel the
/// CLI feeds from SIGTERM, and it lets go of the folder when it returns.
#[tokio::test(flavor = "multi_thread")]
async fn in_process_a_stop_ends_the_daemon_after_its_checks() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&config(&http, 9, "* * * * * *", &["xk"]));
    let d = InProcess::start(&env).await;
    wait_for(15, "two checks", || async { checks(&env, "xk").await >= 2 }).await;
    d.stop().await;
    // The folder's lock went with it: a check can run now.
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk")), (0, "unchanged"), "{r}");
}

/// Issue 12: after "stopping: finishing in-flight checks", checks that
/// were waiting for their host's turn still started. Now only the one in
/// flight finishes; the queued ones are left for the next run.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_starts_no_queued_check() {
    let http = MockServer::start().await;
    for id in ["a", "b", "c"] {
        Mock::given(method("GET"))
            .and(path(format!("/{id}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(xk(50), "text/html; charset=utf-8")
                    .set_delay(Duration::from_millis(1500)),
            )
            .mount(&http)
            .await;
    }
    let env = Env::new();
    // One request at a time to the one host: b and c wait behind a.
    env.write_config(
        &config(&http, 9, "0 0 6 * * *", &["a", "b", "c"])
            .replace("grace_secs = 10\n", "grace_secs = 10\nper_host = 1\n"),
    );
    let d = Daemon::start(&env);
    wait_for(10, "the first request", || async {
        !http.received_requests().await.unwrap_or_default().is_empty()
    })
    .await;
    assert_eq!(d.stop().await, 0);
    let asked = http.received_requests().await.unwrap().len();
    assert_eq!(asked, 1, "nothing started after the stop");
    let recorded = checks(&env, "a").await + checks(&env, "b").await + checks(&env, "c").await;
    assert_eq!(
        recorded, 1,
        "the in-flight check was recorded, the queued ones left"
    );
}

/// Issue 13: with `[web]`, the daemon serves the desk in the same process,
/// reports its scheduler alive on /healthz, and stops with it on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_the_desk_and_stops_with_it() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    let port = crate::smtp::free_port();
    env.write_config(&format!(
        "{FAST}schedule = \"*/1 * * * * *\"\n[web]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        source_toml("xk", &format!("{}/xk", http.uri()), "allow_private = true")
    ));
    let daemon = Daemon::start(&env);
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    wait_for(20, "the desk's /healthz", || {
        let req = client.get(&url).send();
        async move { req.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    wait_for(20, "a check by the daemon", || async {
        checks(&env, "xk").await > 0
    })
    .await;
    let resp = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.url().path().ends_with("/login"),
        "the desk answers: {}",
        resp.url()
    );
    let log = daemon.log();
    assert_eq!(daemon.stop().await, 0, "{log}");
    assert!(
        client.get(&url).send().await.is_err(),
        "the desk stopped with the daemon"
    );
}

/// Issue 17: SIGHUP reads the included catalogs again, a new file included.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_included_catalogs() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    serve(&http, "/other", xk(80), "text/html; charset=utf-8").await;
    let env = Env::new();
    let dir = env.dir.path().join("sources.d");
    std::fs::create_dir(&dir).unwrap();
    let catalog = |id: &str| source_toml(id, &format!("{}/{id}", http.uri()), "select = \".content\"");
    std::fs::write(dir.join("a.toml"), catalog("xk")).unwrap();
    let main = format!(
        "include = [\"sources.d/*.toml\"]\n{}",
        config(&http, 9, "* * * * * *", &[])
    );
    env.write_config(&main);
    let d = Daemon::start(&env);
    wait_for(10, "the included source's baseline", || async {
        checks(&env, "xk").await >= 1
    })
    .await;
    std::fs::write(dir.join("b.toml"), catalog("other")).unwrap();
    d.signal("-HUP");
    wait_for(10, "the newly included source's first check", || async {
        checks(&env, "other").await >= 1
    })
    .await;
    assert_eq!(d.stop().await, 0);
}
