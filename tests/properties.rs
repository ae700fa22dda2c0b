//! Property tests: markup-only mutations never change canonical text or
//! facts, and no parser panics on arbitrary input.

use proptest::prelude::*;
use visawatch::extract::{Rules, extract};
use visawatch::facts;

/// A block of a requirement page, rendered by `render` with or without
/// markup noise.
#[derive(Debug, Clone)]
enum Block {
    Heading(u8, String),
    Para(String),
    List(bool, Vec<String>),
    Row(String, String),
}

fn words() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("fee".to_string()),
        Just("€50".to_string()),
        Just("15.000 dinara".to_string()),
        Just("90 days".to_string()),
        Just("šest meseci".to_string()),
        Just("tre muaj".to_string()),
        Just("passport".to_string()),
        Just("dokument".to_string()),
        Just("Проф".to_string()),
        "[a-zA-Zëç]{1,10}",
    ];
    prop::collection::vec(word, 1..8).prop_map(|w| w.join(" "))
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        (1u8..=4, words()).prop_map(|(l, t)| Block::Heading(l, t)),
        words().prop_map(Block::Para),
        (any::<bool>(), prop::collection::vec(words(), 1..5)).prop_map(|(o, i)| Block::List(o, i)),
        (words(), words()).prop_map(|(a, b)| Block::Row(a, b)),
    ]
}

/// Markup noise: a wrapper, attributes, whitespace and line breaks inside text.
#[derive(Debug, Clone, Copy)]
struct Noise {
    wrap: bool,
    attrs: bool,
    spaces: bool,
    split: bool,
}

fn text(t: &str, n: Noise) -> String {
    let t = if n.spaces {
        t.replace(' ', " \n\t ")
    } else {
        t.to_string()
    };
    if n.split {
        // Wrap the first word in an inline element.
        match t.split_once(' ') {
            Some((a, b)) => format!("<span class=\"x\">{a}</span> {b}"),
            None => format!("<em>{t}</em>"),
        }
    } else {
        t
    }
}

fn render(blocks: &[Block], n: Noise) -> String {
    let a = if n.attrs {
        " class=\"c-1 wrapper\" data-id=\"7\" style=\"color:red\""
    } else {
        ""
    };
    let mut body = String::new();
    for b in blocks {
        let html = match b {
            Block::Heading(l, t) => format!("<h{l}{a}>{}</h{l}>", text(t, n)),
            Block::Para(t) => format!("<p{a}>{}</p>", text(t, n)),
            Block::List(ordered, items) => {
                let tag = if *ordered { "ol" } else { "ul" };
                let lis: String = items
                    .iter()
                    .map(|i| format!("<li{a}>{}</li>\n", text(i, n)))
                    .collect();
                format!("<{tag}{a}>\n{lis}</{tag}>")
            }
            Block::Row(x, y) => format!(
                "<table{a}><tr><th>{}</th><td>{}</td></tr></table>",
                text(x, n),
                text(y, n)
            ),
        };
        if n.wrap {
            body.push_str(&format!("<div{a}>\n  {html}\n</div>\n"));
        } else {
            body.push_str(&html);
        }
    }
    format!("<html><body><main>{body}</main></body></html>")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn markup_only_mutations_change_nothing(
        blocks in prop::collection::vec(block(), 1..8),
        wrap: bool, attrs: bool, spaces: bool, split: bool,
    ) {
        let plain = render(&blocks, Noise { wrap: false, attrs: false, spaces: false, split: false });
        let noisy = render(&blocks, Noise { wrap, attrs, spaces, split });
        let a = extract(&plain, &Rules::default());
        let b = extract(&noisy, &Rules::default());
        prop_assert_eq!(&a, &b);
        if let Ok(text) = a {
            prop_assert_eq!(facts::parse(&text), facts::parse(&b.unwrap()));
        }
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,400}") {
        let _ = facts::parse(&s);
        let _ = facts::noise::clean(&s, &[]);
        let _ = facts::noise::transient(Some(1000), &s);
        let _ = facts::fees::normalize_amount(&s);
        let _ = visawatch::compare::compare(&s, "x\n");
        let _ = extract(&s, &Rules::default());
    }

    #[test]
    fn number_heavy_text_never_panics(s in "[0-9 .,€$a-zA-Z()\\-]{0,200}") {
        let _ = facts::parse(&s);
        let _ = visawatch::compare::compare("The fee is 50 EUR.\n", &s);
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = visawatch::fetch::decode(&bytes, None);
        let _ = visawatch::fetch::decode(&bytes, Some("text/html; charset=windows-1250"));
    }
}

/// The unedited real captures in ../shared/realworld: no panic, sensible
/// text, no invented fees; the two captures of one page differ only where
/// the page did.
#[test]
fn realworld_captures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld");
    // Never skipped: CI runs with ../shared beside the clone.
    assert!(
        dir.is_dir(),
        "{} is missing: run the tests with ../shared beside the project (as .ci/run does)",
        dir.display()
    );
    let normal_form = regex::Regex::new(r"^(0|\d+(\.\d+)? [A-Z]{3})$").unwrap();
    for name in [
        "capture-775a8b04.html",
        "capture-9d4de183.html",
        "capture-fc74d750.html",
        "capture-f2d5d701.html",
        "unknown-encoding.html",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (html, _, _) = visawatch::fetch::decode(&bytes, None).unwrap();
        let text = extract(&html, &Rules::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.len() > 200, "{name}: {text}");
        assert!(!text.contains("<script") && !text.contains("function("), "{name}");
        // No invented fees: each is in normal form and its context is a
        // stretch of the page's own text.
        let f = facts::parse(&text);
        let latin = facts::transliterate(&text);
        for fee in &f.fees {
            assert!(normal_form.is_match(&fee.value.to_string()), "{name}: {fee:?}");
            assert!(
                latin.contains(&*facts::transliterate(&fee.context)),
                "{name}: {fee:?}"
            );
        }
    }
    let bytes = std::fs::read(dir.join("poorly-encoded-utf8.txt")).unwrap();
    match visawatch::fetch::decode(&bytes, Some("text/plain; charset=utf-8")) {
        Ok((text, _, _)) => assert!(!text.is_empty()),
        Err((cs, detail)) => assert!(cs == "UTF-8" && detail.contains("not valid"), "{detail}"),
    }
}
