//! Extraction and fact-parsing throughput on realistic ~100 KB pages.
//! Run: `cargo bench --bench extract` (figures in README.md).
//!
//! With `VISAWATCH_FACTS_PARSES=N` set, it parses the synthetic page's
//! canonical text N times and exits instead: `benches/facts_instructions.sh`
//! counts the instructions of a parse that way, a figure that does not
//! move with the machine's load as times do.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use visawatch::extract::{Rules, extract};
use visawatch::facts;

/// A ~100 KB government-style page: the fixture pages' content repeated
/// inside realistic chrome (menus, scripts, footer).
fn page_100k() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pages/");
    let mut inner = String::new();
    for f in [
        "us-state-kosovo-entry/v1.html",
        "xk-mpb-temporary-residence/v1.html",
        "rs-mup-cyrillic/v1.html",
        "rs-residence-article/v1.html",
    ] {
        let html = std::fs::read_to_string(format!("{root}{f}")).unwrap();
        let body = html
            .split("<body>")
            .nth(1)
            .unwrap()
            .split("</body>")
            .next()
            .unwrap();
        inner.push_str(
            &body
                .replace("<main>", "<section>")
                .replace("</main>", "</section>")
                .replace("<article>", "<div>")
                .replace("</article>", "</div>"),
        );
    }
    let mut page = String::from(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Bench</title><script>var x = 1;</script></head><body><main>",
    );
    let mut i = 0;
    while page.len() < 100_000 {
        page.push_str(&format!("<div class=\"block-{i}\">{inner}</div>\n"));
        i += 1;
    }
    page.push_str("</main></body></html>");
    page
}

fn bench(c: &mut Criterion) {
    let page = page_100k();
    let text = extract(&page, &Rules::default()).unwrap();
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/realworld/capture-775a8b04.html"
    ))
    .ok()
    .map(|b| String::from_utf8_lossy(&b).into_owned());

    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.bench_function("synthetic_100k_page", |b| {
        b.iter(|| extract(black_box(&page), &Rules::default()).unwrap())
    });
    if let Some(real) = &real {
        g.throughput(Throughput::Bytes(real.len() as u64));
        g.bench_function("energy_gov_capture_102k", |b| {
            b.iter(|| extract(black_box(real), &Rules::default()).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("facts");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("canonical_text_of_100k_page", |b| {
        b.iter(|| facts::parse(black_box(&text)))
    });
    if let Some(real) = &real {
        let real_text = extract(real, &Rules::default()).unwrap();
        g.throughput(Throughput::Bytes(real_text.len() as u64));
        g.bench_function("energy_gov_capture_102k", |b| {
            b.iter(|| facts::parse(black_box(&real_text)))
        });
    }
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut big = String::new();
    while big.len() < 100_000 {
        big.push_str(&text);
    }
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("100k_of_canonical_text", |b| {
        b.iter(|| facts::parse(black_box(&big)))
    });
    g.bench_function("clean_and_compare_100k", |b| {
        let changed = big.replacen("50 €", "65 €", 1);
        b.iter(|| visawatch::compare::compare(black_box(&big), black_box(&changed)))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(n) = std::env::var("VISAWATCH_FACTS_PARSES") {
        let n: usize = n.parse().expect("VISAWATCH_FACTS_PARSES is a count");
        let text = extract(&page_100k(), &Rules::default()).unwrap();
        let mut fees = 0;
        for _ in 0..n {
            fees += black_box(facts::parse(black_box(&text))).fees.len();
        }
        eprintln!("{n} parses, {} fees each", fees / n.max(1));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
