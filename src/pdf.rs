//! PURE: a PDF's canonical text. Fee schedules and decisions come as PDFs;
//! their text is laid out, not marked up, so it is rebuilt from where each
//! piece of text is drawn: pieces at the same height form a line, read left
//! to right; a wide gap between pieces is a table column (` | `), so a fee
//! schedule row comes out as `Visa C, single entry | 35 EUR | 4.100 RSD`;
//! a line in a clearly larger type is a heading (`## `), so `section`
//! works; lines repeated on most pages (running headers and footers), page
//! numbers and "Printed on …" lines are dropped, so a regenerated file with
//! the same text reads the same. Metadata (dates, producer) is never read.
//!
//! Characters come from the fonts' encodings and ToUnicode maps (lopdf):
//! embedded Serbian Cyrillic and Albanian fonts read right when the file
//! maps its glyphs to Unicode, as producers do.
//!
//! Not for: scanned pages (no text layer: the source fails), text inside
//! form XObjects or annotations (not read), reflowing sentences that wrap
//! across lines (each visual line stays a line).

use std::collections::{BTreeMap, HashMap};

use lopdf::{Document, Encoding, Object};

/// Why a PDF gives no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error("pdf is encrypted")]
    Encrypted,
    #[error("pdf has no text layer (scanned pages?)")]
    NoText,
    #[error("pdf is damaged: {0}")]
    Damaged(String),
    #[error("pdf has {pages} pages, over max_pdf_pages ({max})")]
    TooManyPages { pages: usize, max: usize },
}

/// Decompressed content allowed per page (a small stream must not inflate
/// without bound).
const MAX_PAGE_CONTENT: usize = 32 << 20;

/// A piece of text as drawn: where, how big, what.
#[derive(Debug, Clone)]
struct Piece {
    x: f32,
    y: f32,
    size: f32,
    /// Estimated advance of the text, in user space units.
    width: f32,
    text: String,
}

/// Reads a PDF's text, at most `max_pages` pages.
pub fn text(bytes: &[u8], max_pages: usize) -> Result<String, PdfError> {
    // A file cut short may still parse, with pages missing: refuse it.
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(PdfError::Damaged("truncated (no %%EOF at the end)".into()));
    }
    let doc = match Document::load_mem(bytes) {
        Ok(doc) => doc,
        Err(e) => {
            let detail = e.to_string();
            if detail.to_ascii_lowercase().contains("encrypt")
                || detail.to_ascii_lowercase().contains("decrypt")
            {
                return Err(PdfError::Encrypted);
            }
            return Err(PdfError::Damaged(detail));
        }
    };
    if doc.is_encrypted() || doc.trailer.get(b"Encrypt").is_ok() {
        return Err(PdfError::Encrypted);
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(PdfError::Damaged("no pages".into()));
    }
    if pages.len() > max_pages {
        return Err(PdfError::TooManyPages {
            pages: pages.len(),
            max: max_pages,
        });
    }
    let mut page_lines: Vec<Vec<String>> = Vec::with_capacity(pages.len());
    for (_, id) in pages {
        let pieces = pieces_of(&doc, id)?;
        page_lines.push(lines_of(pieces));
    }
    if page_lines.iter().all(|p| p.is_empty()) {
        return Err(PdfError::NoText);
    }
    let lines = drop_running_lines(page_lines);
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// A 2-D affine matrix `[a b c d e f]`.
#[derive(Debug, Clone, Copy)]
struct Matrix([f32; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// `self × other` (apply self, then other).
    fn then(self, o: Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [oa, ob, oc, od, oe, of] = o.0;
        Matrix([
            a * oa + b * oc,
            a * ob + b * od,
            c * oa + d * oc,
            c * ob + d * od,
            e * oa + f * oc + oe,
            e * ob + f * od + of,
        ])
    }

    fn translate(tx: f32, ty: f32) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    fn scale(self) -> f32 {
        let [a, b, c, d, ..] = self.0;
        ((a * d - b * c).abs()).sqrt()
    }
}

/// One font: how to turn its bytes into text and how wide they are.
struct Font<'a> {
    encoding: Option<Encoding<'a>>,
    /// Simple fonts: widths in thousandths of the size from `FirstChar`.
    widths: Option<(u32, Vec<f32>)>,
    two_byte: bool,
}

impl Font<'_> {
    fn decode(&self, bytes: &[u8]) -> String {
        match &self.encoding {
            Some(e) => Document::decode_text(e, bytes).unwrap_or_default(),
            None => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// The advance of `bytes` at `size` (before the text matrix).
    fn width(&self, bytes: &[u8], chars: usize, size: f32) -> f32 {
        match (&self.widths, self.two_byte) {
            (Some((first, widths)), false) => bytes
                .iter()
                .map(|b| {
                    let w = (*b as u32)
                        .checked_sub(*first)
                        .and_then(|i| widths.get(i as usize));
                    w.copied().unwrap_or(500.0) / 1000.0 * size
                })
                .sum(),
            // No widths at hand: an average glyph is about half an em.
            _ => chars as f32 * 0.5 * size,
        }
    }
}

fn fonts_of<'a>(doc: &'a Document, page: lopdf::ObjectId) -> HashMap<Vec<u8>, Font<'a>> {
    let mut out = HashMap::new();
    let Ok(fonts) = doc.get_page_fonts(page) else {
        return out;
    };
    for (name, dict) in fonts {
        let encoding = dict.get_font_encoding_with_limit(doc, MAX_PAGE_CONTENT).ok();
        let two_byte = dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|s| s == b"Type0");
        let first = dict.get(b"FirstChar").and_then(Object::as_i64).ok();
        let widths = dict
            .get_deref(b"Widths", doc)
            .and_then(Object::as_array)
            .ok()
            .map(|a| {
                a.iter()
                    .map(|w| w.as_float().unwrap_or(500.0))
                    .collect::<Vec<f32>>()
            });
        out.insert(
            name,
            Font {
                encoding,
                widths: first.zip(widths).map(|(f, w)| (f.max(0) as u32, w)),
                two_byte,
            },
        );
    }
    out
}

fn number(ops: &[Object], i: usize) -> f32 {
    ops.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0)
}

/// Every piece of text a page draws, where it draws it.
fn pieces_of(doc: &Document, page: lopdf::ObjectId) -> Result<Vec<Piece>, PdfError> {
    let fonts = fonts_of(doc, page);
    let content = doc
        .get_page_content_with_limit(page, MAX_PAGE_CONTENT)
        .map_err(|e| PdfError::Damaged(format!("page content: {e}")))?;
    let content = lopdf::content::Content::decode(&content)
        .map_err(|e| PdfError::Damaged(format!("page content: {e}")))?;
    let mut pieces = Vec::new();
    let (mut ctm, mut stack) = (Matrix::IDENTITY, Vec::new());
    let (mut tm, mut tlm) = (Matrix::IDENTITY, Matrix::IDENTITY);
    let (mut font, mut size, mut leading) = (None::<&Font>, 0.0f32, 0.0f32);
    for op in &content.operations {
        let args = &op.operands;
        match op.operator.as_str() {
            "q" => stack.push(ctm),
            "Q" => ctm = stack.pop().unwrap_or(Matrix::IDENTITY),
            "cm" => ctm = Matrix(std::array::from_fn(|i| number(args, i))).then(ctm),
            "BT" => (tm, tlm) = (Matrix::IDENTITY, Matrix::IDENTITY),
            "Tf" => {
                font = args
                    .first()
                    .and_then(|n| n.as_name().ok())
                    .and_then(|n| fonts.get(n));
                size = number(args, 1);
            }
            "TL" => leading = number(args, 0),
            "Td" | "TD" => {
                if op.operator == "TD" {
                    leading = -number(args, 1);
                }
                tlm = Matrix::translate(number(args, 0), number(args, 1)).then(tlm);
                tm = tlm;
            }
            "Tm" => {
                tlm = Matrix(std::array::from_fn(|i| number(args, i)));
                tm = tlm;
            }
            "T*" => {
                tlm = Matrix::translate(0.0, -leading).then(tlm);
                tm = tlm;
            }
            "Tj" | "'" | "\"" | "TJ" => {
                if op.operator != "Tj" && op.operator != "TJ" {
                    tlm = Matrix::translate(0.0, -leading).then(tlm);
                    tm = tlm;
                }
                let Some(f) = font else { continue };
                let (mut text, mut advance) = (String::new(), 0.0f32);
                let shown: Vec<&Object> = match op.operator.as_str() {
                    "TJ" => args
                        .first()
                        .and_then(|a| a.as_array().ok())
                        .map(|a| a.iter().collect())
                        .unwrap_or_default(),
                    _ => args.last().into_iter().collect(),
                };
                for item in shown {
                    match item {
                        Object::String(bytes, _) => {
                            let s = f.decode(bytes);
                            advance += f.width(bytes, s.chars().count(), size);
                            text.push_str(&s);
                        }
                        // A kerning step wide enough to be a space.
                        other => {
                            let k = other.as_float().unwrap_or(0.0);
                            if k < -250.0 && !text.ends_with(' ') {
                                text.push(' ');
                            }
                            advance -= k / 1000.0 * size;
                        }
                    }
                }
                let at = tm.then(ctm);
                let scale = at.scale();
                if !text.trim().is_empty() {
                    pieces.push(Piece {
                        x: at.0[4],
                        y: at.0[5],
                        size: (size * scale).abs().max(0.1),
                        width: advance * scale,
                        text,
                    });
                }
                tm = Matrix::translate(advance, 0.0).then(tm);
            }
            _ => {}
        }
    }
    Ok(pieces)
}

/// Pieces → lines: same height, left to right; wide gaps are columns; a
/// line in clearly larger type than the page's body text is a heading.
fn lines_of(mut pieces: Vec<Piece>) -> Vec<String> {
    if pieces.is_empty() {
        return Vec::new();
    }
    // The body size: the size most characters are set in.
    let mut by_size: BTreeMap<i64, usize> = BTreeMap::new();
    for p in &pieces {
        *by_size.entry((p.size * 10.0).round() as i64).or_default() += p.text.chars().count();
    }
    let body = by_size
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(10.0, |(s, _)| *s as f32 / 10.0);
    pieces.sort_by(|a, b| b.y.total_cmp(&a.y).then(a.x.total_cmp(&b.x)));
    let mut rows: Vec<Vec<Piece>> = Vec::new();
    for p in pieces {
        match rows.last_mut() {
            Some(row) if (row[0].y - p.y).abs() <= 0.4 * row[0].size.max(p.size) => row.push(p),
            _ => rows.push(vec![p]),
        }
    }
    let mut lines = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| a.x.total_cmp(&b.x));
        let mut line = String::new();
        let mut end: Option<f32> = None;
        let mut biggest = 0.0f32;
        for p in &row {
            biggest = biggest.max(p.size);
            let text = p.text.trim();
            if let Some(end) = end {
                let gap = p.x - end;
                if gap > 1.5 * p.size {
                    line.push_str(" | ");
                } else if gap > 0.1 * p.size && !line.ends_with(' ') {
                    line.push(' ');
                }
            }
            line.push_str(text);
            end = Some(end.map_or(p.x + p.width, |e: f32| e.max(p.x + p.width)));
        }
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            continue;
        }
        if biggest >= 1.25 * body && !line.contains(" | ") {
            lines.push(format!("## {line}"));
        } else {
            lines.push(line);
        }
    }
    lines
}

/// Whether a line is a page number or a print stamp.
fn page_furniture(line: &str) -> bool {
    static FURNITURE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = FURNITURE.get_or_init(|| {
        regex::Regex::new(
            r"(?ix)^\s*(
                (page|strana|страна|faqja|faqe)?\s*\d+\s*((of|od|од|nga|/)\s*\d+)?
              | (printed|generated|created|downloaded|odštampano|одштампано|shtypur)\b.*
              | .{0,60}\b(page|strana|страна|faqja)\s+\d+\s+(of|od|од|nga)\s+\d+.{0,60}
            )\s*$",
        )
        .expect("static regex")
    });
    re.is_match(line)
}

/// Drops page furniture and the lines repeated on most pages (running
/// headers and footers, their numbers masked); joins the pages.
fn drop_running_lines(pages: Vec<Vec<String>>) -> Vec<String> {
    let mask = |l: &str| {
        l.chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect::<String>()
    };
    let mut on_pages: HashMap<String, usize> = HashMap::new();
    for page in &pages {
        let mut seen: Vec<String> = page.iter().map(|l| mask(l)).collect();
        seen.sort();
        seen.dedup();
        for l in seen {
            *on_pages.entry(l).or_default() += 1;
        }
    }
    let count = pages.len();
    let running = |l: &str| count >= 2 && on_pages.get(&mask(l)).is_some_and(|n| *n * 2 > count);
    pages
        .into_iter()
        .flatten()
        .filter(|l| !page_furniture(l) && !running(l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(x: f32, y: f32, size: f32, text: &str) -> Piece {
        Piece {
            x,
            y,
            size,
            width: text.chars().count() as f32 * 0.5 * size,
            text: text.into(),
        }
    }

    #[test]
    fn table_rows_are_one_line_with_columns_and_big_type_is_a_heading() {
        let lines = lines_of(vec![
            piece(50.0, 700.0, 16.0, "Consular fees"),
            piece(50.0, 650.0, 10.0, "Visa C, single entry"),
            piece(300.0, 650.2, 10.0, "35 EUR"),
            piece(420.0, 649.9, 10.0, "4.100 RSD"),
            piece(50.0, 630.0, 10.0, "Applications"),
            piece(113.0, 630.0, 10.0, "are decided in 15 days."),
        ]);
        assert_eq!(
            lines,
            [
                "## Consular fees",
                "Visa C, single entry | 35 EUR | 4.100 RSD",
                "Applications are decided in 15 days."
            ]
        );
    }

    #[test]
    fn running_headers_footers_and_page_numbers_are_dropped() {
        let pages = vec![
            vec![
                "Ministry of Foreign Affairs".into(),
                "Fee | 35 EUR".into(),
                "Page 1 of 2".into(),
            ],
            vec![
                "Ministry of Foreign Affairs".into(),
                "Visa D | 60 EUR".into(),
                "Page 2 of 2".into(),
            ],
        ];
        assert_eq!(drop_running_lines(pages), ["Fee | 35 EUR", "Visa D | 60 EUR"]);
        let one = vec![vec![
            "Fee | 35 EUR".into(),
            "Printed on 30.11.2026".into(),
            "3".into(),
            "Strana 1 od 1".into(),
        ]];
        assert_eq!(drop_running_lines(one), ["Fee | 35 EUR"]);
    }

    #[test]
    fn broken_files_fail_with_their_reason() {
        assert!(matches!(
            text(b"%PDF-1.4\n1 0 obj", 200),
            Err(PdfError::Damaged(_))
        ));
        assert!(matches!(
            text(b"%PDF-1.4\ngarbage\n%%EOF\n", 200),
            Err(PdfError::Damaged(_))
        ));
    }
}
