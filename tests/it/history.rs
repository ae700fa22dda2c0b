//! History retention (`visawatch prune`, issue 17): old "still the same"
//! checks go; every change, the texts on both sides of it, its review and
//! the source's current state stay.

use serde_json::Value;
use wiremock::MockServer;

use crate::helpers::*;

/// Moves every recorded time of the data folder `days` into the past, as
/// if the checks so far had run that long ago.
fn age_history(data: &std::path::Path, days: u32) {
    let db = rusqlite::Connection::open(data.join("visawatch.db")).unwrap();
    let shift = format!("-{days} days");
    for (table, column) in [
        ("checks", "started_at"),
        ("changes", "created_at"),
        ("snapshots", "created_at"),
        ("outbox", "created_at"),
    ] {
        db.execute(
            &format!("UPDATE {table} SET {column} = strftime('%Y-%m-%dT%H:%M:%SZ', {column}, ?1)"),
            [&shift],
        )
        .unwrap();
    }
}

fn count(data: &std::path::Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(data.join("visawatch.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn prune_removes_old_unchanged_checks_and_keeps_every_change_and_its_snapshots() {
    let http = MockServer::start().await;
    serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}keep_checks_days = 400\n{}",
        source_toml("xk", &format!("{}/xk", http.uri()), "select = \".content\"")
    ));
    // A year and more ago: baseline, unchanged twice, a fee change,
    // unchanged twice, a failure, unchanged again.
    assert_eq!(env.check().await.1["sources"][0]["status"], "baseline");
    env.check().await;
    env.check().await;
    http.reset().await;
    serve(&http, "/xk", xk(65), "text/html; charset=utf-8").await;
    assert_eq!(env.check().await.1["sources"][0]["status"], "changed");
    env.check().await;
    env.check().await;
    http.reset().await;
    assert_eq!(env.check().await.1["sources"][0]["status"], "failed");
    serve(&http, "/xk", xk(65), "text/html; charset=utf-8").await;
    assert_eq!(env.check().await.1["sources"][0]["status"], "unchanged");
    // An editor reviewed the change.
    {
        let mut store = visawatch::store::Store::open(&env.data(), visawatch::store::Access::Desk).unwrap();
        let change = count(&env.data(), "SELECT id FROM changes");
        assert!(
            store
                .record_review(
                    change,
                    visawatch::store::ReviewAction::Applied,
                    None,
                    Some("site updated"),
                    "ana",
                    "2026-01-01T00:00:00Z"
                )
                .unwrap()
        );
    }
    age_history(&env.data(), 500);
    // Today: one more unchanged check.
    assert_eq!(env.check().await.1["sources"][0]["status"], "unchanged");
    assert_eq!(count(&env.data(), "SELECT count(*) FROM checks"), 9);

    let (code, out, err) = env.run(&["prune", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let pruned: Value = serde_json::from_str(&out).unwrap();
    // Gone: the five old unchanged checks and the failure. Kept: the
    // baseline, the change's check, the last good check (today's).
    assert_eq!(pruned["checks"], 6, "{pruned}");
    assert_eq!(pruned["snapshots"], 0, "{pruned}");
    let (_, out, _) = env.run(&["history", "xk", "--json"]).await;
    let history: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["unchanged", "changed", "baseline"]);
    // The change, both texts, and its review survive.
    let (code, diff, _) = env.run(&["diff", "xk"]).await;
    assert_eq!(code, 0);
    assert!(
        diff.contains("-") && diff.contains("50 €") && diff.contains("65 €"),
        "{diff}"
    );
    assert_eq!(
        count(
            &env.data(),
            "SELECT count(*) FROM changes ch
             WHERE EXISTS (SELECT 1 FROM snapshots s WHERE s.hash = ch.before_hash)
               AND EXISTS (SELECT 1 FROM snapshots s WHERE s.hash = ch.after_hash)"
        ),
        1
    );
    assert_eq!(count(&env.data(), "SELECT count(*) FROM reviews"), 1);

    // Nothing newer than `keep_checks_days` goes, and a second prune finds nothing.
    let (_, out, _) = env.run(&["prune", "--json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["checks"], 0);

    // The pruned history still compares: the next change is found against
    // the current text.
    http.reset().await;
    serve(&http, "/xk", xk(80), "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(r["sources"][0]["status"], "changed");
    assert_eq!(r["sources"][0]["changes"][0]["before"], "65 EUR", "{r}");
    assert_eq!(r["sources"][0]["changes"][0]["after"], "80 EUR", "{r}");
}

#[tokio::test]
async fn prune_refuses_a_missing_data_folder_and_a_zero_day_window() {
    let env = Env::new();
    env.write_config(&source_toml("xk", "http://127.0.0.1:9/xk", ""));
    let (code, _, err) = env.run(&["prune"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no database at") && err.contains("visawatch.db"),
        "{err}"
    );
    let (code, _, err) = env.run(&["prune", "--keep-days", "0"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--keep-days"), "{err}");
}
