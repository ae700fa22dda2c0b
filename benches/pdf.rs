//! PDF extraction speed: a 20-page consular fee schedule (a heading, a
//! table of 30 rows and a footer per page), generated here with lopdf,
//! read by `visawatch::pdf::text` on one core.
//!
//!     cargo bench --bench pdf

use std::time::Instant;

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, StringFormat, dictionary};

fn schedule(pages: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } });
    let mut kids = Vec::new();
    for p in 0..pages {
        let mut ops = Vec::new();
        let mut draw = |x: f32, y: f32, size: f32, text: String| {
            ops.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), size.into()]),
                Operation::new(
                    "Tm",
                    vec![1.into(), 0.into(), 0.into(), 1.into(), x.into(), y.into()],
                ),
                Operation::new(
                    "Tj",
                    vec![Object::String(text.into_bytes(), StringFormat::Literal)],
                ),
                Operation::new("ET", vec![]),
            ]);
        };
        draw(
            50.0,
            790.0,
            16.0,
            format!("Tariff of consular fees, part {}", p + 1),
        );
        for r in 0..30 {
            let y = 750.0 - r as f32 * 22.0;
            draw(
                50.0,
                y,
                10.0,
                format!("Visa category {p}-{r}, single entry, adults over 12"),
            );
            draw(330.0, y, 10.0, format!("{} EUR", 35 + r));
            draw(430.0, y, 10.0, format!("{}.100 RSD", 4 + r));
        }
        draw(50.0, 30.0, 8.0, "Printed on 30.11.2026".into());
        draw(500.0, 30.0, 8.0, format!("Page {} of {pages}", p + 1));
        let content = doc.add_object(Stream::new(
            dictionary! {},
            Content { operations: ops }.encode().unwrap(),
        ));
        kids.push(
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content, "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            })
            .into(),
        );
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn main() {
    for pages in [20, 200] {
        let bytes = schedule(pages);
        let text = visawatch::pdf::text(&bytes, 10_000).unwrap();
        assert!(text.contains("Visa category 0-0, single entry, adults over 12 | 35 EUR | 4.100 RSD"));
        let runs = 20;
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(visawatch::pdf::text(&bytes, 10_000).unwrap());
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[runs / 2];
        println!(
            "{pages} pages, {} KiB (compressed), {} KiB of text: median {:.1} ms, {:.1} MB/s of PDF, {:.1} MB/s of text",
            bytes.len() / 1024,
            text.len() / 1024,
            median * 1000.0,
            bytes.len() as f64 / median / 1e6,
            text.len() as f64 / median / 1e6,
        );
    }
}
