//! PDF sources (issue 14): fee schedules generated here with lopdf, served
//! as `application/pdf` by a real HTTP server on 127.0.0.1.

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, StringFormat, dictionary};
use wiremock::MockServer;

use crate::helpers::*;

/// Text drawn at (x, y) in a size.
type Draw<'a> = (f32, f32, f32, &'a str);

/// Latin-1 (WinAnsi) bytes of `s`; the tests only draw such text in Helvetica.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(c as u32).expect("Latin-1 text"))
        .collect()
}

/// A PDF with one page per entry of `pages`, in Helvetica, with
/// `producer` and `created` as its metadata.
pub fn pdf(pages: &[Vec<Draw>], producer: &str, created: &str) -> Vec<u8> {
    build(pages, producer, created, false)
}

/// The same, drawn in a Type0 font whose glyph codes map to Unicode only
/// through a ToUnicode CMap: how producers embed Cyrillic fonts.
pub fn unicode_mapped_pdf(pages: &[Vec<Draw>]) -> Vec<u8> {
    build(pages, "test", "D:20261130000000Z", true)
}

fn build(pages: &[Vec<Draw>], producer: &str, created: &str, mapped: bool) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    // Glyph codes of the mapped font: each distinct character, from 1.
    let mut codes: Vec<char> = pages
        .iter()
        .flatten()
        .flat_map(|(_, _, _, t)| t.chars())
        .collect();
    codes.sort();
    codes.dedup();
    let code_of = |c: char| codes.iter().position(|x| *x == c).unwrap() as u16 + 1;
    let font_id = if mapped {
        let mut cmap = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        for chunk in codes.chunks(100) {
            cmap.push_str(&format!("{} beginbfchar\n", chunk.len()));
            for c in chunk {
                let mut utf16 = [0u16; 2];
                let units = c.encode_utf16(&mut utf16);
                let hex: String = units.iter().map(|u| format!("{u:04X}")).collect();
                cmap.push_str(&format!("<{:04X}> <{hex}>\n", code_of(*c)));
            }
            cmap.push_str("endbfchar\n");
        }
        cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.into_bytes()));
        let descendant = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "TestSans",
            "CIDSystemInfo" => dictionary! { "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"), "Supplement" => 0 },
            "DW" => 500,
        });
        doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "TestSans",
            "Encoding" => "Identity-H", "DescendantFonts" => vec![descendant.into()],
            "ToUnicode" => to_unicode,
        })
    } else {
        doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
        })
    };
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for draws in pages {
        let mut ops = Vec::new();
        for (x, y, size, text) in draws {
            let shown = if mapped {
                let bytes: Vec<u8> = text.chars().flat_map(|c| code_of(c).to_be_bytes()).collect();
                Object::String(bytes, StringFormat::Hexadecimal)
            } else {
                Object::String(win_ansi(text), StringFormat::Literal)
            };
            ops.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), (*size).into()]),
                Operation::new(
                    "Tm",
                    vec![1.into(), 0.into(), 0.into(), 1.into(), (*x).into(), (*y).into()],
                ),
                Operation::new("Tj", vec![shown]),
                Operation::new("ET", vec![]),
            ]);
        }
        let content = Content { operations: ops }.encode().unwrap();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        });
        kids.push(page.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    let info = doc.add_object(dictionary! {
        "Producer" => Object::string_literal(producer), "CreationDate" => Object::string_literal(created),
    });
    doc.trailer.set("Root", catalog);
    doc.trailer.set("Info", info);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A consular fee schedule: a heading, a table, a footer with the print date.
fn schedule(fee_c: &str, extra_row: Option<(&str, &str)>, printed: &str) -> Vec<u8> {
    let mut page = vec![
        (50.0, 780.0, 16.0, "Consular fees"),
        (50.0, 740.0, 10.0, "Visa type"),
        (300.0, 740.0, 10.0, "Fee"),
        (420.0, 740.0, 10.0, "Fee in dinars"),
        (50.0, 720.0, 10.0, "Visa C, single entry"),
        (300.0, 720.0, 10.0, fee_c),
        (420.0, 720.0, 10.0, "4.100 RSD"),
        (50.0, 700.0, 10.0, "Visa D, long stay"),
        (300.0, 700.0, 10.0, "60 EUR"),
        (420.0, 700.0, 10.0, "7.000 RSD"),
        (50.0, 40.0, 8.0, printed),
        (500.0, 40.0, 8.0, "Page 1 of 1"),
    ];
    if let Some((label, fee)) = extra_row {
        page.extend([(50.0, 680.0, 10.0, label), (300.0, 680.0, 10.0, fee)]);
    }
    pdf(&[page], "Writer 1.0", "D:20260101000000Z")
}

async fn serve_pdf(http: &MockServer, body: Vec<u8>) {
    http.reset().await;
    serve(http, "/fees.pdf", body, "application/pdf").await;
}

fn config(http: &MockServer, extra: &str) -> String {
    format!(
        "{FAST}{}",
        source_toml(
            "fees",
            &format!("{}/fees.pdf", http.uri()),
            &format!("allow_private = true\n{extra}")
        )
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fee_change_in_a_pdf_table_is_a_fee_change_with_the_row_label() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&config(&http, ""));
    serve_pdf(&http, schedule("35 EUR", None, "Printed on 01.11.2026")).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "fees")), (0, "baseline"), "{r}");
    let (_, text, _) = env.run(&["show", "fees"]).await;
    assert!(
        text.contains("Visa C, single entry | 35 EUR | 4.100 RSD"),
        "a row is one line: {text}"
    );
    assert!(text.contains("## Consular fees"), "{text}");
    assert!(!text.contains("Printed") && !text.contains("Page 1"), "{text}");

    // Printed again a month later: the same schedule.
    serve_pdf(&http, schedule("35 EUR", None, "Printed on 30.11.2026")).await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "fees"), "unchanged", "{r}");

    serve_pdf(&http, schedule("40 EUR", None, "Printed on 30.11.2026")).await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "fees"), "changed", "{r}");
    let c = &source(&r, "fees")["changes"][0];
    assert_eq!(c["kind"], "fee", "{r}");
    assert_eq!(c["before"], "35 EUR");
    assert_eq!(c["after"], "40 EUR");
    assert_eq!(c["context"], "Visa C, single entry");

    // A row added: a fee with no before.
    serve_pdf(
        &http,
        schedule("40 EUR", Some(("Visa A, airport transit", "35 EUR")), "x"),
    )
    .await;
    let (_, r) = env.check().await;
    let changes = source(&r, "fees")["changes"].as_array().unwrap().clone();
    assert!(
        changes
            .iter()
            .any(|c| c["kind"] == "fee" && c["before"].is_null() && c["after"] == "35 EUR"),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_regenerated_with_new_metadata_is_unchanged() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&config(&http, ""));
    let page = |printed: &'static str| {
        vec![
            (50.0, 720.0, 10.0, "Visa C, single entry"),
            (300.0, 720.0, 10.0, "35 EUR"),
            (50.0, 40.0, 8.0, printed),
        ]
    };
    serve_pdf(
        &http,
        pdf(
            &[page("Printed on 01.11.2026")],
            "Writer 1.0",
            "D:20261101000000Z",
        ),
    )
    .await;
    assert_eq!(env.check().await.0, 0);
    serve_pdf(
        &http,
        pdf(
            &[page("Printed on 30.11.2026")],
            "Writer 2.5",
            "D:20261130120000Z",
        ),
    )
    .await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "fees"), "unchanged", "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cyrillic_pdf_reads_through_its_tounicode_map() {
    let env = Env::new();
    let file = env.dir.path().join("takse.pdf");
    std::fs::write(
        &file,
        unicode_mapped_pdf(&[vec![
            (50.0, 780.0, 16.0, "Конзуларне таксе"),
            (50.0, 740.0, 10.0, "Виза Ц, једнократни улазак"),
            (300.0, 740.0, 10.0, "4.100 динара"),
            (50.0, 720.0, 10.0, "Taksa për vizën, një hyrje"),
            (300.0, 720.0, 10.0, "35 €"),
        ]]),
    )
    .unwrap();
    let (code, out, err) = env.run(&["probe", file.to_str().unwrap(), "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("## Конзуларне таксе"), "{text}");
    assert!(
        text.contains("Виза Ц, једнократни улазак | 4.100 динара"),
        "{text}"
    );
    let fee = &v["facts"]["fees"][0];
    assert_eq!(fee["value"], "4100 RSD", "{v}");
    assert_eq!(fee["context"], "Виза Ц, једнократни улазак");
    // Albanian letters through the same map.
    let fee = &v["facts"]["fees"][1];
    assert_eq!(fee["value"], "35 EUR", "{v}");
    assert_eq!(fee["context"], "Taksa për vizën, një hyrje");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_encrypted_and_scanned_pdfs_fail_with_their_reason() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&config(&http, ""));
    let good = schedule("35 EUR", None, "Printed on 01.11.2026");
    serve_pdf(&http, good.clone()).await;
    assert_eq!(env.check().await.0, 0);

    let truncated = good[..good.len() / 2].to_vec();
    // An image-only page: drawing, no text.
    let scanned = {
        let mut doc = lopdf::Document::load_mem(&pdf(&[vec![]], "scanner", "D:2026")).unwrap();
        doc.compress();
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    };
    let encrypted = {
        let mut doc = lopdf::Document::load_mem(&good).unwrap();
        let enc = doc.add_object(dictionary! { "Filter" => "Standard", "V" => 1, "R" => 2,
        "O" => Object::String(vec![0; 32], StringFormat::Hexadecimal),
        "U" => Object::String(vec![0; 32], StringFormat::Hexadecimal), "P" => -4 });
        doc.trailer.set("Encrypt", enc);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    };
    for (body, want) in [
        (truncated, "pdf is damaged"),
        (scanned, "pdf has no text layer"),
        (encrypted, "pdf is encrypted"),
    ] {
        serve_pdf(&http, body).await;
        let (code, r) = env.check().await;
        assert_eq!(code, 1, "{r}");
        let s = source(&r, "fees");
        assert_eq!(s["status"], "failed");
        let error = s["error"].as_str().unwrap();
        assert!(error.contains(want), "{want}: {error}");
    }
    // Longer than max_pdf_pages: refused, not read.
    let env2 = Env::new();
    env2.write_config(&config(&http, "").replace("[settings]\n", "[settings]\nmax_pdf_pages = 2\n"));
    let page = vec![(50.0, 720.0, 10.0, "Visa C | 35 EUR")];
    serve_pdf(&http, pdf(&[page.clone(), page.clone(), page], "w", "D:2026")).await;
    let (code, r) = env2.check().await;
    assert_eq!(code, 1);
    let error = source(&r, "fees")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("pdf has 3 pages, over max_pdf_pages (2)"),
        "{error}"
    );

    // The last good text is still the one stored.
    let (_, text, _) = env.run(&["show", "fees"]).await;
    assert!(text.contains("35 EUR"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_css_selector_on_a_pdf_fails_clearly_and_section_works() {
    let http = MockServer::start().await;
    serve_pdf(&http, schedule("35 EUR", None, "Printed on 01.11.2026")).await;
    let env = Env::new();
    env.write_config(&config(&http, "select = \"main\""));
    let (code, r) = env.check().await;
    assert_eq!(code, 1);
    let error = source(&r, "fees")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("select applies to HTML; this URL served a PDF: use section instead"),
        "{error}"
    );

    let env = Env::new();
    env.write_config(&config(&http, "section = \"Consular fees\""));
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "fees")), (0, "baseline"), "{r}");
}
