//! PURE: HTML → canonical requirement text.
//!
//! Canonical text is one block per line: headings as `#`…, list items as `- `
//! (ordered: `1. `), table rows as cells joined by ` | `, paragraphs as plain
//! lines; whitespace collapsed, Unicode NFC. Attributes, class names, wrapping
//! elements, indentation and line wrapping leave it unchanged, so only a
//! change a reader could see reaches `compare`.
//!
//! No network, no disk, no clock. A selector or section that matches nothing
//! is an error, never an empty text: an empty snapshot would read as "every
//! requirement was removed".

use std::collections::HashSet;

use ego_tree::{NodeId, NodeRef};
use scraper::{ElementRef, Html, Node, Selector};
use unicode_normalization::UnicodeNormalization;

use crate::model::{Failure, Reason};

/// What to take from a page; mirrors a source's `select`, `exclude`, `section`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    pub select: &'a [String],
    pub exclude: &'a [String],
    pub section: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("selector `{0}` matched nothing")]
    SelectorMatchedNothing(String),
    #[error("section `{0}` not found: no heading with that text")]
    SectionNotFound(String),
    #[error("CSS selector `{0}` does not parse")]
    BadSelector(String),
    #[error("the requirement section has no text")]
    Empty,
    /// A page built to cost more than any real one (see the limits below): the
    /// source fails instead of stalling or crashing the run.
    #[error("page too complex to read: {0}")]
    TooComplex(String),
    #[error("{0}")]
    NotHtml(String),
    #[error("{0}")]
    Pdf(#[from] crate::pdf::PdfError),
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        let reason = match e {
            ExtractError::SelectorMatchedNothing(_) => Reason::SelectorMatchedNothing,
            ExtractError::SectionNotFound(_) => Reason::SectionNotFound,
            ExtractError::TooComplex(_) => Reason::TooComplex,
            ExtractError::NotHtml(_) => Reason::NotHtml,
            ExtractError::Pdf(_) => Reason::Pdf,
            ExtractError::BadSelector(_) | ExtractError::Empty => Reason::Extract,
        };
        Failure {
            reason,
            message: format!("extraction failed: {e}"),
        }
    }
}

/// What one document may cost. Browsers draw the same lines: Blink's parser
/// stops nesting at 512 levels. The walker below recurses once per level, so
/// the depth cap is also what keeps a hostile page from overflowing the stack.
pub const MAX_DEPTH: usize = 512;
/// html5ever checks each new attribute against the tag's others (quadratic:
/// 200,000 attributes on one tag took 35 s). Real tags carry a few dozen.
pub const MAX_ATTRIBUTES: usize = 1_000;
/// Nodes in one document; a real 100 KB page has a few thousand.
pub const MAX_NODES: usize = 1_000_000;

/// Elements that never carry requirement text.
const DROPPED_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "iframe", "svg",
    "head", "button", "select", "dialog",
];

/// id/class words that mark chrome around the content: cookie banners, share
/// bars, breadcrumbs, menus.
const CHROME_WORDS: &[&str] = &[
    "cookie",
    "cookies",
    "cookiebanner",
    "consent",
    "gdpr",
    "share",
    "sharing",
    "sharebar",
    "social",
    "breadcrumb",
    "breadcrumbs",
    "menu",
    "navbar",
    "megamenu",
    "skiplink",
];

const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "hr",
    "html",
    "legend",
    "main",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
];

/// Parses a CSS selector; what is wrong with it in plain words otherwise
/// (the selectors crate's own message for some mistakes asks the reader to
/// report a bug to its developers).
pub fn parse_selector(selector: &str) -> Result<Selector, String> {
    use scraper::error::SelectorErrorKind as K;
    let e = match Selector::parse(selector) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let words = match &e {
        K::UnexpectedToken => "a character is not valid where it stands",
        K::EndOfLine => "it stops too early (an unclosed `[`, `(` or quote, or nothing after `:` or `.`)",
        K::ExpectedColonOnPseudoElement | K::ExpectedIdentityOnPseudoElement => {
            "a `:` or `::` is not followed by a name"
        }
        K::InvalidAtRule | K::InvalidAtRuleBody | K::QualRuleInvalid | K::TooManyNestedBlocks => {
            "it is not a CSS selector"
        }
        // The selectors crate's kinds, by name: scraper does not re-export them.
        K::UnexpectedSelectorParseError(kind) => match format!("{kind:?}").as_str() {
            "DanglingCombinator" => "it ends with a combinator (`>`, `+` or `~`) with nothing after it",
            "EmptySelector" => "a selector is empty (a stray comma, or nothing at all)",
            "ClassNeedsIdent" => "a `.` is not followed by a class name",
            "NoIdentForPseudo" | "PseudoElementExpectedIdent" | "PseudoElementExpectedColon" => {
                "a `:` or `::` is not followed by a name"
            }
            "UnsupportedPseudoClassOrElement" => {
                "it uses a pseudo-class or pseudo-element that is not supported"
            }
            "UnexpectedIdent" => "a name stands where it cannot (a tag name goes first, as in `div.note`)",
            "ExpectedNamespace" | "ExplicitNamespaceUnexpectedToken" => {
                "namespaces (`ns|tag`) are not supported"
            }
            "NoQualifiedNameInAttributeSelector"
            | "UnexpectedTokenInAttributeSelector"
            | "ExpectedBarInAttr"
            | "BadValueInAttr"
            | "InvalidQualNameInAttr" => {
                "an attribute test is malformed: write `[name]` or `[name=\"value\"]`"
            }
            _ => "it is not a valid CSS selector",
        },
    };
    Err(format!("CSS selector `{selector}` is not valid: {words}"))
}

/// Extracts the canonical text of the requirement sections of `html`.
pub fn extract(html: &str, rules: &Rules) -> Result<String, ExtractError> {
    let attributes = most_attributes(html);
    if attributes > MAX_ATTRIBUTES {
        return Err(ExtractError::TooComplex(format!(
            "an element has more than {MAX_ATTRIBUTES} attributes"
        )));
    }
    let doc = Html::parse_document(html);
    check_shape(&doc)?;
    let parse = |s: &str| parse_selector(s).map_err(|_| ExtractError::BadSelector(s.to_string()));

    let mut skip = HashSet::new();
    for s in rules.exclude {
        skip.extend(doc.select(&parse(s)?).map(|e| e.id()));
    }

    let mut roots: Vec<ElementRef> = Vec::new();
    if rules.select.is_empty() {
        for s in ["main", "[role=main]", "article", "body"] {
            roots.extend(doc.select(&parse(s)?));
            if !roots.is_empty() {
                break;
            }
        }
    } else {
        for s in rules.select {
            let before = roots.len();
            roots.extend(doc.select(&parse(s)?));
            if roots.len() == before {
                return Err(ExtractError::SelectorMatchedNothing(s.clone()));
            }
        }
    }
    // Document order, and a root inside another root is already covered.
    let ids: HashSet<NodeId> = roots.iter().map(|r| r.id()).collect();
    let mut seen = HashSet::new();
    let mut ordered: Vec<ElementRef> = doc
        .root_element()
        .descendent_elements()
        .filter(|e| ids.contains(&e.id()))
        .collect();
    ordered.retain(|r| seen.insert(r.id()) && !r.ancestors().any(|a| ids.contains(&a.id())));

    let mut w = Walker {
        skip: &skip,
        lines: Vec::new(),
        buf: String::new(),
        prefix: None,
        lists: Vec::new(),
    };
    for root in ordered {
        w.walk_children(*root);
        w.flush();
    }
    let mut lines = w.lines;
    if let Some(section) = rules.section {
        lines = slice_section(lines, section)
            .ok_or_else(|| ExtractError::SectionNotFound(section.to_string()))?;
    }
    let text: Vec<String> = lines.into_iter().map(|l| l.text).collect();
    if text.is_empty() {
        return Err(ExtractError::Empty);
    }
    let mut out = text.join("\n");
    out.push('\n');
    Ok(out)
}

struct Line {
    /// Heading level, for cutting out a section.
    heading: Option<u8>,
    text: String,
}

struct ListCtx {
    ordered: bool,
    next: i64,
}

struct Walker<'a> {
    skip: &'a HashSet<NodeId>,
    lines: Vec<Line>,
    buf: String,
    /// Marker waiting for the next non-empty line (`- `, `2. `, `## `).
    prefix: Option<(String, Option<u8>)>,
    lists: Vec<ListCtx>,
}

impl Walker<'_> {
    fn walk_children(&mut self, node: NodeRef<'_, Node>) {
        for child in node.children() {
            self.walk(child);
        }
    }

    fn walk(&mut self, node: NodeRef<'_, Node>) {
        match node.value() {
            Node::Text(t) => self.buf.push_str(t),
            Node::Element(el) => {
                if self.skip.contains(&node.id()) || is_chrome(el) {
                    return;
                }
                let tag = el.name();
                match tag {
                    "br" => self.flush(),
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                        let level = tag.as_bytes()[1] - b'0';
                        self.block(node, Some(("#".repeat(level as usize) + " ", Some(level))));
                    }
                    "ul" | "ol" | "menu" => {
                        self.flush();
                        let next = el.attr("start").and_then(|s| s.trim().parse().ok()).unwrap_or(1);
                        self.lists.push(ListCtx {
                            ordered: tag == "ol",
                            next,
                        });
                        self.walk_children(node);
                        self.flush();
                        self.lists.pop();
                    }
                    "li" => {
                        let marker = match self.lists.last_mut() {
                            Some(l) if l.ordered => {
                                let n = el
                                    .attr("value")
                                    .and_then(|s| s.trim().parse().ok())
                                    .unwrap_or(l.next);
                                l.next = n + 1;
                                format!("{n}. ")
                            }
                            _ => "- ".to_string(),
                        };
                        self.block(node, Some((marker, None)));
                    }
                    "dl" => {
                        // A definition is a row: "Fee | 50 €", like a table's.
                        self.flush();
                        let mut terms = Vec::new();
                        for c in node.children() {
                            match c.value().as_element().map(|e| e.name()) {
                                Some("dt" | "dd") => terms.push(c),
                                // HTML allows <div> around each dt/dd group.
                                Some("div") => terms.extend(node_children_named(c, &["dt", "dd"])),
                                _ => {}
                            }
                        }
                        let mut row: Vec<String> = Vec::new();
                        for t in terms {
                            let is_term = t.value().as_element().is_some_and(|e| e.name() == "dt");
                            if is_term && !row.is_empty() {
                                self.buf = row.join(" | ");
                                self.flush();
                                row.clear();
                            }
                            let text = self.inline_text(t);
                            if !text.is_empty() {
                                row.push(text);
                            }
                        }
                        if !row.is_empty() {
                            self.buf = row.join(" | ");
                            self.flush();
                        }
                    }
                    "tr" if node.children().any(is_layout_cell) => {
                        // A layout table: each cell is a block of the page
                        // (a heading and a document list stay what they are).
                        self.flush();
                        for cell in node.children().filter(|c| is_cell(*c)) {
                            self.block(cell, None);
                        }
                    }
                    "tr" => {
                        self.flush();
                        let cells: Vec<String> = node
                            .children()
                            .filter(|c| {
                                c.value()
                                    .as_element()
                                    .is_some_and(|e| matches!(e.name(), "td" | "th"))
                            })
                            .map(|c| self.inline_text(c))
                            .filter(|c| !c.is_empty())
                            .collect();
                        if !cells.is_empty() {
                            self.buf = cells.join(" | ");
                            self.flush();
                        }
                    }
                    _ if BLOCK_TAGS.contains(&tag) => self.block(node, None),
                    _ => self.walk_children(node),
                }
            }
            _ => {}
        }
    }

    fn block(&mut self, node: NodeRef<'_, Node>, prefix: Option<(String, Option<u8>)>) {
        self.flush();
        let had = prefix.is_some();
        if had {
            self.prefix = prefix;
        }
        self.walk_children(node);
        self.flush();
        if had {
            self.prefix = None;
        }
    }

    /// A table cell's text on one line (inner blocks joined by spaces).
    fn inline_text(&self, node: NodeRef<'_, Node>) -> String {
        let mut sub = Walker {
            skip: self.skip,
            lines: Vec::new(),
            buf: String::new(),
            prefix: None,
            lists: Vec::new(),
        };
        sub.walk_children(node);
        sub.flush();
        sub.lines
            .into_iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn flush(&mut self) {
        let text = normalize(&self.buf);
        self.buf.clear();
        if text.is_empty() {
            return;
        }
        let (prefix, heading) = self.prefix.take().unwrap_or_default();
        self.lines.push(Line {
            heading,
            text: format!("{prefix}{text}"),
        });
    }
}

fn is_cell(node: NodeRef<'_, Node>) -> bool {
    node.value()
        .as_element()
        .is_some_and(|e| matches!(e.name(), "td" | "th"))
}

/// A cell that holds block content (a list, a heading, a nested table, or
/// several paragraphs) lays out a page; a cell of short text is data.
fn is_layout_cell(cell: NodeRef<'_, Node>) -> bool {
    if !is_cell(cell) {
        return false;
    }
    let mut paragraphs = 0;
    for d in cell.descendants().skip(1) {
        match d.value().as_element().map(|e| e.name()) {
            Some("ul" | "ol" | "dl" | "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => return true,
            Some("p" | "div" | "blockquote" | "pre" | "section" | "article") => paragraphs += 1,
            _ => {}
        }
        if paragraphs >= 2 {
            return true;
        }
    }
    false
}

/// Refuses a parsed document deeper or larger than [`MAX_DEPTH`] /
/// [`MAX_NODES`], walking it without recursion.
fn check_shape(doc: &Html) -> Result<(), ExtractError> {
    let (mut depth, mut deepest, mut nodes) = (0usize, 0usize, 0usize);
    for edge in doc.tree.root().traverse() {
        match edge {
            ego_tree::iter::Edge::Open(_) => {
                depth += 1;
                nodes += 1;
                deepest = deepest.max(depth);
            }
            ego_tree::iter::Edge::Close(_) => depth -= 1,
        }
    }
    if deepest > MAX_DEPTH {
        return Err(ExtractError::TooComplex(format!(
            "elements nested {deepest} deep (at most {MAX_DEPTH})"
        )));
    }
    if nodes > MAX_NODES {
        return Err(ExtractError::TooComplex(format!(
            "{nodes} nodes (at most {MAX_NODES})"
        )));
    }
    Ok(())
}

/// The most attributes on any one start tag, read with a small tokenizer
/// before the real parser sees the page (which is where the cost would be).
/// Comments and the raw text of script-like elements are skipped as the
/// parser skips them. Stops counting past [`MAX_ATTRIBUTES`].
fn most_attributes(html: &str) -> usize {
    const RAW: &[&[u8]] = &[
        b"script",
        b"style",
        b"textarea",
        b"title",
        b"xmp",
        b"iframe",
        b"noembed",
        b"noframes",
        b"plaintext",
    ];
    let b = html.as_bytes();
    let (mut i, mut most) = (0usize, 0usize);
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // memchr: this runs over every byte of every page, before the parser.
    while let Some(at) = memchr::memchr(b'<', &b[i..]) {
        i += at;
        if b[i + 1..].starts_with(b"!--") {
            i = memchr::memmem::find(&b[i + 4..], b"-->").map_or(b.len(), |p| i + 4 + p + 3);
            continue;
        }
        if !b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
            continue;
        }
        let name_start = i + 1;
        i = name_start;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'>' | b'/') {
            i += 1;
        }
        let name = &b[name_start..i];
        let mut count = 0;
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            count += 1;
            if count > MAX_ATTRIBUTES {
                return count;
            }
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'>' | b'/' | b'=') {
                i += 1;
            }
            i = skip_ws(i);
            if i < b.len() && b[i] == b'=' {
                i = skip_ws(i + 1);
                match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        i = memchr::memchr(q, &b[i + 1..]).map_or(b.len(), |p| i + 2 + p);
                    }
                    _ => {
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                    }
                }
            }
        }
        most = most.max(count);
        if RAW.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            // Raw text up to its end tag, as the parser reads it.
            loop {
                match memchr::memchr(b'<', &b[i.min(b.len())..]) {
                    None => return most,
                    Some(p) => i += p,
                }
                let end = &b[i + 1..];
                if end.first() == Some(&b'/')
                    && end.len() > name.len()
                    && end[1..=name.len()].eq_ignore_ascii_case(name)
                {
                    break;
                }
                i += 1;
            }
        }
    }
    most
}

/// Canonical text of a `text/plain` body: each paragraph (lines up to a
/// blank line) on one line; lines that start like list items stay their own.
pub fn plain_text(text: &str) -> Result<String, ExtractError> {
    static ITEM: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^\s*(?:[-*•–]\s|\d{1,3}[.)]\s|[a-z]\)\s)").unwrap());
    let item = |l: &str| ITEM.is_match(l);
    let mut lines: Vec<String> = Vec::new();
    let mut para = String::new();
    let end = |para: &mut String, lines: &mut Vec<String>| {
        let t = normalize(para);
        if !t.is_empty() {
            lines.push(t);
        }
        para.clear();
    };
    for l in text.lines() {
        if l.trim().is_empty() || item(l) {
            end(&mut para, &mut lines);
        }
        para.push_str(l);
        para.push(' ');
        if item(l) {
            end(&mut para, &mut lines);
        }
    }
    end(&mut para, &mut lines);
    if lines.is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(lines.join("\n") + "\n")
}

/// The children of `node` that are elements named one of `names`.
fn node_children_named<'a>(node: NodeRef<'a, Node>, names: &[&str]) -> Vec<NodeRef<'a, Node>> {
    node.children()
        .filter(|c| c.value().as_element().is_some_and(|e| names.contains(&e.name())))
        .collect()
}

fn is_chrome(el: &scraper::node::Element) -> bool {
    if DROPPED_TAGS.contains(&el.name()) || el.attr("hidden").is_some() {
        return true;
    }
    if matches!(el.attr("role"), Some("navigation" | "banner" | "contentinfo"))
        || el.attr("aria-hidden") == Some("true")
    {
        return true;
    }
    let marks = |v: &str| {
        v.split_whitespace().any(|class| {
            let lower = class.to_ascii_lowercase();
            let mut words = lower.split(['-', '_']).filter(|w| !w.is_empty());
            let first = words.next();
            let last = words.next_back().or(first);
            [first, last]
                .into_iter()
                .flatten()
                .any(|w| CHROME_WORDS.contains(&w))
        })
    };
    el.attr("id").is_some_and(marks) || el.attr("class").is_some_and(marks)
}

/// Collapses whitespace, drops invisible characters, applies NFC.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else if matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
        ) {
            continue;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    if out.is_ascii() { out } else { out.nfc().collect() }
}

fn heading_key(s: &str) -> String {
    s.trim_start_matches('#')
        .trim()
        .trim_end_matches([':', '.'])
        .to_lowercase()
}

/// `section` applied to a canonical text whose headings are `#` lines (a
/// PDF's): from that heading to the next of the same or a higher level.
pub fn section_of_text(text: &str, section: &str) -> Result<String, ExtractError> {
    let lines: Vec<Line> = text
        .lines()
        .map(|l| {
            let level = l.chars().take_while(|c| *c == '#').count();
            match l[level..].strip_prefix(' ') {
                Some(rest) if level > 0 => Line {
                    heading: Some(level as u8),
                    text: rest.to_string(),
                },
                _ => Line {
                    heading: None,
                    text: l.to_string(),
                },
            }
        })
        .collect();
    let cut =
        slice_section(lines, section).ok_or_else(|| ExtractError::SectionNotFound(section.to_string()))?;
    let mut out = String::new();
    for l in cut {
        if let Some(level) = l.heading {
            out.push_str(&"#".repeat(level as usize));
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    Ok(out)
}

/// From the heading whose text is `section` to the next heading of the same
/// or a higher level. An exact match wins over a heading that only contains it.
fn slice_section(lines: Vec<Line>, section: &str) -> Option<Vec<Line>> {
    let want = heading_key(&normalize(section));
    let headings = || lines.iter().enumerate().filter(|(_, l)| l.heading.is_some());
    let (start, level) = headings()
        .find(|(_, l)| heading_key(&l.text) == want)
        .or_else(|| headings().find(|(_, l)| heading_key(&l.text).contains(&want)))
        .map(|(i, l)| (i, l.heading.unwrap()))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.heading.is_some_and(|h| h <= level))
        .map_or(lines.len(), |p| start + 1 + p);
    Some(lines.into_iter().skip(start).take(end - start).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(html: &str) -> String {
        extract(html, &Rules::default()).unwrap()
    }

    #[test]
    fn blocks_become_lines() {
        let t = ex(
            "<html><body><nav>Home</nav><main><h2>Fees</h2><p>The fee is\n   <b>€50</b>.</p>\
            <ul><li>Passport</li><li><p>Photo</p></li></ul><ol start=3><li>One</li><li>Two</li></ol>\
            <table><tr><th>Fee</th><td>€ 50</td></tr></table><script>x=1</script></main>\
            <footer>© 2026</footer></body></html>",
        );
        assert_eq!(
            t,
            "## Fees\nThe fee is €50.\n- Passport\n- Photo\n3. One\n4. Two\nFee | € 50\n"
        );
    }

    #[test]
    fn markup_only_changes_are_invisible() {
        let a = ex("<main><div class=a><p>Visa free for 90 days.</p><ul><li>Passport</li></ul></div></main>");
        let b = ex(
            "<main id=x>\n  <section><div class=\"b c\" data-x=1><p style=color:red>Visa free\n for <span>90</span>  days.</p>\n<ul class=list>\n<li><span>Passport</span></li></ul></div></section></main>",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn chrome_is_dropped() {
        let t = ex(
            "<body><div id=cookie-banner>We use cookies</div><div class=share-bar>Share</div>\
            <ol class=breadcrumb><li>Home</li></ol><div class=main-menu>Menu</div><p>Content</p></body>",
        );
        assert_eq!(t, "Content\n");
    }

    #[test]
    fn select_exclude_and_section() {
        let html = "<body><div class=c><h2>Intro</h2><p>a</p><h2>Entry Requirements</h2><p>b</p>\
            <h3>Sub</h3><p>c</p><span class=counter>12 views</span><h2>Other</h2><p>d</p></div></body>";
        let sel = vec![".c".to_string()];
        let exc = vec![".counter".to_string()];
        let r = Rules {
            select: &sel,
            exclude: &exc,
            section: Some("entry requirements:"),
        };
        assert_eq!(
            extract(html, &r).unwrap(),
            "## Entry Requirements\nb\n### Sub\nc\n"
        );
        let miss = vec![".nope".to_string()];
        let r = Rules {
            select: &miss,
            ..Rules::default()
        };
        assert_eq!(
            extract(html, &r),
            Err(ExtractError::SelectorMatchedNothing(".nope".into()))
        );
        let r = Rules {
            section: Some("Fees"),
            ..Rules::default()
        };
        assert!(matches!(extract(html, &r), Err(ExtractError::SectionNotFound(_))));
    }

    #[test]
    fn nfc_and_invisible_characters() {
        let t = ex("<p>Leje-qe\u{0308}ndrim\u{00A0}i\u{200B} përkohshëm</p>");
        assert_eq!(t, "Leje-qëndrim i përkohshëm\n");
    }

    #[test]
    fn definition_lists_are_rows() {
        assert_eq!(
            ex(
                "<main><dl><dt>Fee</dt><dd>50 €</dd><div><dt>Validity</dt><dd>1 year</dd><dd>renewable</dd></div></dl></main>"
            ),
            "Fee | 50 €\nValidity | 1 year | renewable\n"
        );
    }

    /// Issue 10 (2): a `<td>` holding a heading and a list is page layout,
    /// not a data row; a data table stays ` | ` rows.
    #[test]
    fn layout_table_keeps_its_document_list() {
        let t = ex(
            "<table><tr><td><h2>Documents</h2><ul><li>Passport</li><li>Photo</li></ul></td>\
            <td><p>Apply at the police station.</p></td></tr></table>",
        );
        assert_eq!(
            t,
            "## Documents\n- Passport\n- Photo\nApply at the police station.\n"
        );
        let t = ex(
            "<table><tr><th>Fee</th><td><p>50 EUR</p></td></tr><tr><td>Validity</td><td>1 year</td></tr></table>",
        );
        assert_eq!(t, "Fee | 50 EUR\nValidity | 1 year\n");
    }

    /// Issue 10 (5): 5,000 nested elements used to overflow the stack and
    /// abort the process; now the page fails with a reason.
    #[test]
    fn deep_page_fails_instead_of_overflowing_the_stack() {
        let deep = format!("<main>{}x{}</main>", "<div>".repeat(5000), "</div>".repeat(5000));
        // On a 2 MiB thread, as the runtime's workers have.
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || extract(&deep, &Rules::default()))
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(&r, Err(ExtractError::TooComplex(m)) if m.contains("nested")),
            "{r:?}"
        );
        let ok = format!("<main>{}x{}</main>", "<div>".repeat(500), "</div>".repeat(500));
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || extract(&ok, &Rules::default()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(r.unwrap(), "x\n");
    }

    /// Issue 10 (8): 200,000 attributes on one tag took 35 s to parse.
    #[test]
    fn many_attributes_fail_before_parsing() {
        let attrs: String = (0..200_000).map(|i| format!(" a{i}=1")).collect();
        let html = format!("<main><p{attrs}>x</p></main>");
        let r = extract(&html, &Rules::default());
        assert!(
            matches!(&r, Err(ExtractError::TooComplex(m)) if m.contains("attributes")),
            "{r:?}"
        );
        // Quoted values with '>' inside and scripts full of '<' are read as a parser does.
        let html = format!(
            "<main><p title=\"a>b\" {}>x</p><script>if (a<b) {{ s = \"{}\" }}</script></main>",
            (0..50)
                .map(|i| format!("data-{i}='>'"))
                .collect::<Vec<_>>()
                .join(" "),
            "<i x ".repeat(2000)
        );
        assert_eq!(extract(&html, &Rules::default()).unwrap(), "x\n");
    }

    #[test]
    fn plain_text_paragraphs_and_items() {
        let t = plain_text("Visa fee\nis 50 EUR.\n\nBring:\n- Passport\n- Photo\n1) Form\nU.S. citizens may stay\n90 days.\n").unwrap();
        assert_eq!(
            t,
            "Visa fee is 50 EUR.\nBring:\n- Passport\n- Photo\n1) Form\nU.S. citizens may stay 90 days.\n"
        );
    }

    #[test]
    fn empty_page_is_an_error() {
        assert_eq!(
            extract("<body><script>1</script></body>", &Rules::default()),
            Err(ExtractError::Empty)
        );
    }
}
