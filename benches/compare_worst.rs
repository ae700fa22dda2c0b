//! Issue 10 (6): the pathological pairs of pages, each read from HTML,
//! compared and rendered as an alert, timed one by one in this process.
//! Peak memory is the process's high-water mark after each case.
//!
//! `cargo bench --bench compare_worst`

use std::time::Instant;

use visawatch::compare::{self, worst_cases};
use visawatch::extract::{self, Rules};

/// Canonical text back to a page: `- ` lines as list items, others as paragraphs.
fn page(text: &str) -> String {
    let mut html = String::from("<html><body><main><ul>");
    for line in text.lines() {
        let esc = line.replace('&', "&amp;").replace('<', "&lt;");
        match esc.strip_prefix("- ") {
            Some(item) => html.push_str(&format!("<li>{item}</li>")),
            None => html.push_str(&format!("<p>{esc}</p>")),
        }
    }
    html + "</ul></main></body></html>"
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let source = visawatch::config::parse(
        "[[source]]\nid = \"worst\"\nurl = \"http://127.0.0.1/worst\"\n",
        std::path::Path::new("bench.toml"),
    )
    .unwrap()
    .sources
    .remove(0);
    type Case = (&'static str, fn() -> (String, String));
    let cases: [Case; 3] = [
        (
            "400 fees in one sentence, one word reworded",
            worst_cases::fees_in_one_sentence,
        ),
        (
            "4,000 list items, each reworded by one word",
            worst_cases::reworded_items,
        ),
        (
            "9 MB single-line paragraph, one word changed",
            worst_cases::huge_line,
        ),
    ];
    println!("| case | page size | extract both | compare | alert | total | peak RSS so far |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, make) in cases {
        let (a, b) = make();
        let (ha, hb) = (page(&a), page(&b));
        let t0 = Instant::now();
        let ta = extract::extract(&ha, &Rules::default()).unwrap();
        let tb = extract::extract(&hb, &Rules::default()).unwrap();
        let t1 = Instant::now();
        let verdict = compare::compare(&ta, &tb).expect("a change");
        let t2 = Instant::now();
        let alert = visawatch::alert::change(&source, &verdict, &ta, &tb, "2026-11-30T00:00:00Z", None);
        let t3 = Instant::now();
        std::hint::black_box(&alert);
        println!(
            "| {name} | {:.1} MB | {:.2} s | {:.2} s | {:.2} s | **{:.2} s** | {:.0} MiB |",
            hb.len() as f64 / 1e6,
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t3 - t0).as_secs_f64(),
            peak_rss_mib()
        );
    }
}
