//! A year of history and what pruning gives back (issue 17): 1,000 sources
//! checked daily for 365 days, 1 % of them changing each day (a fee moves),
//! written through the store exactly as a run writes it (check rows,
//! snapshots, changes with their diffs). Then `prune` at the default 400
//! days (a year of history: nothing is old enough), at 90 and at 30 days.
//! Prints the database's size (file and WAL) after each step.
//!
//!     cargo bench --bench history
//!
//! The page texts are the seed captures in ../shared/seeds (one per source,
//! in turn), each with a fee line of its own.

use std::time::Instant;

use visawatch::model::{Check, Outcome, Read};
use visawatch::store::{Access, Store};

const SOURCES: usize = 1000;
const DAYS: i64 = 365;
/// One source in this many changes on a given day (1,000 / 100 = 10 a day).
const CHANGE_EVERY: usize = 100;

fn seeds() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn text(seeds: &[String], source: usize, version: usize) -> String {
    format!(
        "{}\nApplication fee for source {source}: {} EUR\n",
        seeds[source % seeds.len()],
        50 + version
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

fn main() {
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
    let start: visawatch::model::Time = "2025-11-30T06:00:00Z".parse().unwrap();
    let mut version = vec![0usize; SOURCES];
    let clock = Instant::now();
    let mut changes = 0;
    for day in 0..DAYS {
        let at = start + chrono::Duration::days(day);
        let mut recs = Vec::with_capacity(SOURCES);
        for (s, v) in version.iter_mut().enumerate() {
            let outcome = if day == 0 {
                Outcome::Baseline(Read::of_text(&text(&seeds, s, 0)))
            } else if (s + day as usize).is_multiple_of(CHANGE_EVERY) {
                let before = text(&seeds, s, *v);
                *v += 1;
                let after = text(&seeds, s, *v);
                let verdict = visawatch::compare::compare(&before, &after).expect("the fee changed");
                changes += 1;
                Outcome::Changed(Read::of_text(&after), verdict)
            } else {
                Outcome::Unchanged(None)
            };
            recs.push(Check {
                source_id: format!("src-{s:04}"),
                name: format!("Residence permit, source {s}"),
                url: format!("https://gov.example.org/{s}"),
                started_at: at,
                duration_ms: 40,
                outcome,
                alerts: Vec::new(),
                blind: None,
            });
        }
        for batch in recs.chunks(128) {
            store.record_all(batch, visawatch::notify::message_id).unwrap();
        }
    }
    let now = start + chrono::Duration::days(DAYS);
    println!(
        "history: {SOURCES} sources x {DAYS} days = {} checks, {changes} changes (written in {:.1} s)",
        SOURCES as i64 * DAYS,
        clock.elapsed().as_secs_f64()
    );
    println!("| step | checks pruned | database |");
    println!("|---|---:|---:|");
    println!("| after a year | | {} |", mb(store.size_on_disk()));
    for keep in [400, 90, 30] {
        let clock = Instant::now();
        let p = store.prune(now, keep).unwrap();
        println!(
            "| prune, keep_checks_days = {keep} ({:.2} s) | {} | {} |",
            clock.elapsed().as_secs_f64(),
            p.checks,
            mb(p.bytes_after)
        );
    }
}
