//! Golden files: the canonical text and the facts of every fixture page,
//! beside it as `<page>.expected.txt` and `<page>.facts.txt`. A change in
//! extraction or fact parsing shows here as a diff to review.
//!
//! To accept an intended change: `VISAWATCH_BLESS=1 cargo test --test it
//! golden`, which rewrites the files and prints what changed; then read
//! `git diff tests/fixtures` before committing. Never bless blindly.

use std::path::{Path, PathBuf};

use visawatch::extract::{Rules, extract};

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pages");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap().flatten() {
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "html") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    assert!(out.len() >= 10, "fixture pages: {out:?}");
    out
}

/// What a page reads as with the default rules (no `select`): the cleaned
/// canonical text a check stores, and its facts.
fn read(page: &Path) -> (String, String) {
    let bytes = std::fs::read(page).unwrap();
    let (html, _, _) = visawatch::fetch::decode(&bytes, None).unwrap();
    let text = extract(&html, &Rules::default()).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let text = visawatch::facts::noise::clean(&text, &[]);
    let facts = visawatch::report::facts(&visawatch::compare::facts_of(&text));
    (text, facts)
}

#[test]
fn every_fixture_page_reads_as_its_golden_files() {
    let bless = std::env::var_os("VISAWATCH_BLESS").is_some();
    let mut differ = Vec::new();
    for page in pages() {
        let (text, facts) = read(&page);
        for (suffix, got) in [("expected.txt", text), ("facts.txt", facts)] {
            let golden = page.with_extension(suffix);
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if want == got {
                continue;
            }
            let diff = similar::TextDiff::from_lines(&want, &got)
                .unified_diff()
                .header("golden", "now")
                .to_string();
            if bless {
                std::fs::write(&golden, &got).unwrap();
                eprintln!("blessed {}:\n{diff}", golden.display());
            } else {
                differ.push(format!("{}:\n{diff}", golden.display()));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "extraction differs from the golden files (VISAWATCH_BLESS=1 to accept after review):\n{}",
        differ.join("\n")
    );
}
