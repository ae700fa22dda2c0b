//! The editors' desk under a year of history: 1,000 sources checked daily
//! for 365 days (365,000 checks, 3,650 changes of which the newest 1,000
//! await review), served by the real `visawatch serve` (release build) on
//! 127.0.0.1. Prints the median and worst time of each page over 40
//! requests (measured at the client, so server time plus loopback) and the
//! server's peak RSS.
//!
//!     cargo build --release && cargo bench --bench desk
//!
//! At scale (issue 17): `VISAWATCH_BENCH_SOURCES=100000 VISAWATCH_BENCH_DAYS=30`.

use std::time::{Duration, Instant};

use rusqlite::params;
use visawatch::store::{Access, Store};

/// Sources and days of history: 1,000 × 365 unless the environment says.
fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// One source in this many changes on a given day (1,000 / 100 = 10 a day).
const CHANGE_EVERY: usize = 100;
const AWAITING: i64 = 1000;

fn text(source: usize, version: usize) -> String {
    let mut t = format!(
        "# Temporary residence permit {source}\n## Fees\nPermit | {} €\nExtension | 30 €\n",
        50 + version
    );
    t.push_str("Applications are decided within 30 days of submission.\n## Documents\n");
    for d in 0..12 {
        t.push_str(&format!(
            "- Document {d} required for the permit, issued within the last {} months\n",
            3 + d % 4
        ));
    }
    t.push_str("The permit is issued for one year and may be renewed.\n");
    t
}

fn build(dir: &std::path::Path, sources: usize, days: usize) {
    drop(Store::open(dir, Access::WriteWait).expect("a new data folder"));
    let mut db = rusqlite::Connection::open(dir.join("visawatch.db")).unwrap();
    let tx = db.transaction().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2025-11-30T06:00:00Z")
        .unwrap()
        .to_utc();
    let mut version = vec![0usize; sources];
    let hash = |s: usize, v: usize| format!("{:064x}", s * 100_000 + v);
    for s in 0..sources {
        tx.execute(
            "INSERT INTO sources (id, name, url, current_hash) VALUES (?1, ?2, ?3, NULL)",
            params![
                format!("src-{s:04}"),
                format!("Residence permit, source {s}"),
                format!("https://gov.example.org/{s}")
            ],
        )
        .unwrap();
    }
    let mut change_no = 0i64;
    for day in 0..days {
        let at = visawatch::model::stamp(&(start + chrono::Duration::days(day as i64)));
        for (s, version_of_s) in version.iter_mut().enumerate() {
            let id = format!("src-{s:04}");
            let changes_today = day > 0 && (s + day) % CHANGE_EVERY == 0;
            let status = if day == 0 {
                "baseline"
            } else if changes_today {
                "changed"
            } else {
                "unchanged"
            };
            if changes_today {
                *version_of_s += 1;
            }
            let v = *version_of_s;
            let h = hash(s, v);
            if day == 0 || changes_today {
                tx.execute(
                    "INSERT OR IGNORE INTO snapshots (hash, text, created_at) VALUES (?1, ?2, ?3)",
                    params![h, text(s, v), at],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO checks (source_id, started_at, duration_ms, status, http_status, charset, snapshot_hash)
                 VALUES (?1, ?2, ?3, ?4, 200, 'utf-8', ?5)",
                params![id, at, 40 + (s % 200) as i64, status, h],
            )
            .unwrap();
            if changes_today {
                change_no += 1;
                let check_id = tx.last_insert_rowid();
                let changes = format!(
                    r#"[{{"kind":"fee","before":"{} EUR","after":"{} EUR","context":"Permit"}}]"#,
                    50 + v - 1,
                    50 + v
                );
                tx.execute(
                    "INSERT INTO changes (check_id, source_id, created_at, before_hash, after_hash, material, changes, diff, word_diff)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, '', '')",
                    params![check_id, id, at, hash(s, v - 1), h, changes],
                )
                .unwrap();
            }
            tx.execute(
                "UPDATE sources SET current_hash = ?2, last_status = ?3 WHERE id = ?1",
                params![id, h, status],
            )
            .unwrap();
        }
    }
    // All but the newest AWAITING changes were reviewed.
    tx.execute(
        "UPDATE changes SET review_state = 'applied' WHERE id <= ?1",
        [change_no - AWAITING],
    )
    .unwrap();
    tx.commit().unwrap();
    println!(
        "history: {sources} sources, {} checks, {change_no} changes, {AWAITING} awaiting review",
        sources * days
    );
}

fn main() {
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/visawatch");
    assert!(
        exe.exists(),
        "build the release binary first: cargo build --release"
    );
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let t = Instant::now();
    let (sources, days) = (
        size("VISAWATCH_BENCH_SOURCES", 1000),
        size("VISAWATCH_BENCH_DAYS", 365),
    );
    build(&data, sources, days);
    println!("built in {:.1} s", t.elapsed().as_secs_f64());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = work.path().join("sources.toml");
    let mut toml = format!("[web]\nlisten = \"127.0.0.1:{port}\"\n\n");
    for s in 0..sources {
        toml.push_str(&format!(
            "[[source]]\nid = \"src-{s:04}\"\nurl = \"https://gov.example.org/{s}\"\n\n"
        ));
    }
    std::fs::write(&config, toml).unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new(&exe)
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["user", "add", "bench"], Some("a bench password\n"));
    let mut server = std::process::Command::new(&exe)
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Sign in.
        let form = client.get(format!("{base}/login")).send().await.unwrap();
        let login_cookie = form.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = form.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = html[at..at + 64].to_string();
        let resp = client
            .post(format!("{base}/login"))
            .header("cookie", login_cookie)
            .form(&[
                ("name", "bench"),
                ("password", "a bench password"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        let session = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("visawatch_session=") && !c.starts_with("visawatch_session=;"))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        println!("\n| page | median | worst of 40 | bytes |\n|---|---:|---:|---:|");
        for (label, path) in [
            ("overview `/`", "/"),
            ("review queue `/review`", "/review"),
            ("change `/changes/3000`", "/changes/3000"),
            ("source `/sources/src-0500`", "/sources/src-0500"),
            ("API `/api/v1/changes`", "/api/v1/changes"),
            ("`/healthz`", "/healthz"),
        ] {
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..41 {
                let t = Instant::now();
                let resp = client
                    .get(format!("{base}{path}"))
                    .header("cookie", &session)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                bytes = resp.bytes().await.unwrap().len();
                times.push(t.elapsed());
            }
            times.remove(0); // the first request warms the handle pool
            times.sort();
            println!(
                "| {label} | {:.1} ms | {:.1} ms | {bytes} |",
                times[times.len() / 2].as_secs_f64() * 1000.0,
                times[times.len() - 1].as_secs_f64() * 1000.0
            );
        }
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "\nserve peak RSS (VmHWM): {}",
        hwm.trim_start_matches("VmHWM:").trim()
    );
    let _ = server.kill();
    let _ = server.wait();
}
