//! List items of the requirement sections: documents to submit, conditions
//! of entry, grounds of refusal. Bulleted and numbered items come marked
//! from extraction (`- `, `1. `); list-like paragraphs (`1)`, `a)`, `•`) are
//! recognised here.

use std::sync::LazyLock;

use regex::Regex;

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:- |\d{1,3}\. |\d{1,3}\)\s*|[a-zа-ш]\)\s+|[•·▪◦‣●○■►✓✔–—*]\s*)").unwrap()
});

/// The item text of a list line, or `None` for other lines.
pub fn item(line: &str) -> Option<&str> {
    // Most lines start with a capital or `#`: told by their first bytes
    // what [`MARKER`] would find (a dash, a star, a digit, a small letter
    // and `)`, or a bullet or Cyrillic letter, all led by 0xC2, 0xD0,
    // 0xD1 or 0xE2).
    if !matches!(
        line.as_bytes(),
        [b'-' | b'*' | b'0'..=b'9' | 0xc2 | 0xd0 | 0xd1 | 0xe2, ..] | [b'a'..=b'z', b')', ..]
    ) {
        return None;
    }
    let m = MARKER.find(line)?;
    let rest = line[m.end()..].trim();
    (!rest.is_empty()).then_some(rest)
}

/// A word that names a document: the lexicon's words as word starts, the
/// short ones ("id") as whole words.
pub(super) static DOCUMENT_WORD: LazyLock<Regex> = LazyLock::new(|| {
    let words = &super::lexicon::LEXICON.document_words;
    let long = super::word_alternation(
        words.iter().filter(|w| w.chars().count() > 3).map(String::as_str),
        true,
        false,
    );
    let short = super::word_alternation(
        words
            .iter()
            .filter(|w| w.chars().count() <= 3)
            .map(String::as_str),
        true,
        true,
    );
    // Lower case, run over an ASCII-lowercased copy: a case-insensitive
    // Unicode regex is several times slower, and every sentence is asked.
    Regex::new(&format!("{long}|{short}")).expect("document words")
});

fn names_a_document(text: &str) -> bool {
    DOCUMENT_WORD.is_match(&text.to_ascii_lowercase())
}

/// The first bytes (ASCII lower case) of the joining words: most words of
/// a sentence are told apart by it without comparing.
static JOINING_FIRST: LazyLock<[bool; 256]> = LazyLock::new(|| {
    let mut first = [false; 256];
    for w in &super::lexicon::LEXICON.list_joining {
        if let Some(b) = w.bytes().next() {
            first[usize::from(b.to_ascii_lowercase())] = true;
        }
    }
    first
});

/// Whether `word` joins the last item of a list ("and", "or", "ili", "dhe").
fn is_joining(word: &str) -> bool {
    word.bytes()
        .next()
        .is_some_and(|b| JOINING_FIRST[usize::from(b.to_ascii_lowercase())])
        && super::lexicon::LEXICON
            .list_joining
            .iter()
            .any(|j| j.eq_ignore_ascii_case(word))
}

/// A list written inside a sentence: "photo ID (original ID, a driver's
/// license, or a passport)", "Uz zahtev: pasoš, fotografija i potvrda".
/// The list is the part in brackets or after a colon (or the whole
/// sentence when every part is short): at least two items joined by commas
/// and a last "and"/"or", one of them naming a document (a word from
/// `data/lexicon.toml`), none longer than eight words. Returns the items,
/// slices of `sentence`, and the span of the list in it.
pub fn inline_items(sentence: &str) -> Option<(std::ops::Range<usize>, Vec<&str>)> {
    // The shape first, the words last: every sentence of a page is asked,
    // and few hold a list.
    // (The marks are ASCII: found as bytes by `memchr`, faster than the
    // standard library's search on the short texts of sentences.)
    let bytes = sentence.as_bytes();
    let region = if let (Some(open), Some(close)) =
        (memchr::memchr(b'(', bytes), memchr::memrchr(b')', bytes))
        && open < close
        && (sentence[open..close].contains(',') || sentence[open..close].split(' ').any(is_joining))
    {
        open + 1..close
    } else if let Some(colon) = memchr::memchr_iter(b':', bytes).find(|&i| bytes.get(i + 1) == Some(&b' ')) {
        colon + 2..sentence.len()
    } else if sentence.trim_end().ends_with('.') {
        // A whole sentence, not a title ("Entry, Exit and Visa Requirements").
        0..sentence.len()
    } else {
        return None;
    };
    let text = &sentence[region.clone()];
    let text_end = region.start + text.trim_end_matches(['.', ';', '!', ' ']).len();
    // Split at commas, then the last part at its first joining word.
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    let mut at = region.start;
    for cut in memchr::memchr2_iter(b',', b';', &bytes[region.start..text_end]) {
        parts.push(at..region.start + cut);
        at = region.start + cut + 1;
    }
    let last = at..text_end;
    // "…, or a passport": the last part starts with its joining word;
    // "…, fotografija i potvrda": the joining word splits it in two.
    let lead = sentence[last.clone()].trim_start();
    let start = last.end - lead.len();
    let first_word = lead.split(' ').next().unwrap_or("");
    if is_joining(first_word) {
        if parts.is_empty() {
            return None;
        }
        parts.push(start + first_word.len()..last.end);
    } else {
        // The words before the joining word are an item, eight words at
        // most: a long sentence is not read to its end.
        let mut at = 0;
        let (split, word) = lead
            .split(' ')
            .map(|w| {
                at += w.len() + 1;
                (at - w.len() - 1, w)
            })
            .skip(1)
            .filter(|(_, w)| !w.is_empty())
            .take(8)
            .find(|(_, w)| is_joining(w))?;
        parts.push(start..start + split);
        parts.push(start + split + word.len()..last.end);
    }
    let items: Vec<&str> = parts.iter().map(|r| sentence[r.clone()].trim()).collect();
    let words = |s: &str| s.split_whitespace().count();
    if items.len() < 2 || items.iter().any(|i| i.is_empty() || words(i) > 8) {
        return None;
    }
    // A whole sentence is a list only when its first part is short too.
    if region.start == 0 && words(items[0]) > 4 {
        return None;
    }
    if !items.iter().any(|i| names_a_document(i)) {
        return None;
    }
    // Two items only when both name documents ("passport or ID card").
    if items.len() == 2 && !items.iter().all(|i| names_a_document(i)) {
        return None;
    }
    Some((region.start..text_end, items))
}

/// The lines of lists that are news, not requirements: runs of at least
/// three list items, most of them links and at least half of them dated,
/// or two thirds of them starting or ending with a date ("latest news",
/// press releases, "recent posts"). Their items are no
/// documents, and their changes no change: a broad selection (`main`, no
/// selector) takes such lists in with the requirements.
/// `items[i]` is the [`item`] of `lines[i]`; `news[i]` says whether
/// `lines[i]` is news.
pub fn news_lines(lines: &[&str], items: &[Option<&str>]) -> Vec<bool> {
    let mut news = vec![false; lines.len()];
    let mut run: Vec<usize> = Vec::new();
    let mut close = |run: &mut Vec<usize>| {
        if run.len() >= 3 {
            let linked = run.iter().filter(|i| lines[**i].contains("](")).count();
            // Dates are looked for only where they can decide.
            let dated_links = || {
                linked * 5 >= run.len() * 3
                    && run.iter().filter(|i| super::dates::has_date(lines[**i])).count() * 2 >= run.len()
            };
            // Two thirds dated: decided as soon as a third and one are not
            // (a document list is given up after its first few items).
            let dated_edges = || {
                let mut undated = 0;
                for i in &run[..] {
                    if !items[*i].is_some_and(super::dates::dated_at_an_edge) {
                        undated += 1;
                        if undated * 3 > run.len() {
                            return false;
                        }
                    }
                }
                true
            };
            if dated_links() || dated_edges() {
                for &i in run.iter() {
                    news[i] = true;
                }
            }
        }
        run.clear();
    };
    for (i, first) in items.iter().enumerate() {
        if first.is_some() {
            run.push(i);
        } else {
            close(&mut run);
        }
    }
    close(&mut run);
    news
}

/// The items of a list line: usually one, several when a numbered
/// paragraph enumerates inline ("1) pasoš; 2) fotografija; 3) dokaz o
/// smeštaju."), split at the next numbers in sequence.
pub fn items(line: &str) -> Vec<&str> {
    let mut items = Vec::new();
    items_after(line, item(line), &mut items);
    items
}

/// [`items`] of a line whose [`item`] is known, in `items` (cleared first:
/// one buffer serves every line of a page).
pub fn items_after<'a>(line: &'a str, item: Option<&'a str>, items: &mut Vec<&'a str>) {
    items.clear();
    let (first, mut next) = match item {
        Some(first) => {
            let lead = line.trim_start();
            let digits = lead.bytes().take_while(u8::is_ascii_digit).count();
            match lead[..digits].parse::<u32>() {
                Ok(n) => (first, n),
                Err(_) => return items.push(first),
            }
        }
        // "Uz zahtev se prilaže: 1) pasoš; 2) fotografija": a paragraph that
        // enumerates inline (at least "1)" and "2)") lists items too.
        None if memchr::memchr(b')', line.as_bytes()).is_none() => return,
        None => match (line.find(" 1) "), line.find(" 2) ")) {
            (Some(one), Some(two)) if one < two => (&line[one + 4..], 1),
            _ => return,
        },
    };
    let mut rest = first;
    loop {
        next += 1;
        let found = [b')', b'.']
            .into_iter()
            .filter_map(|mark| find_number(rest, next, mark))
            .min();
        let Some((at, len)) = found else { break };
        let part = rest[..at].trim().trim_end_matches([';', ',']);
        if !part.is_empty() {
            items.push(part);
        }
        rest = &rest[at + len..];
    }
    let last = rest.trim();
    if !last.is_empty() {
        items.push(last);
    }
}

/// Where `" {n}{mark} "` is in `text`, and its length: the next number of
/// an inline enumeration, found without making a string of it.
fn find_number(text: &str, n: u32, mark: u8) -> Option<(usize, usize)> {
    use std::io::Write;
    let mut buf = [0u8; 16];
    let mut out = &mut buf[..];
    write!(out, " {n}").expect("a u32 fits");
    let len = 16 - out.len();
    buf[len] = mark;
    buf[len + 1] = b' ';
    let needle = &buf[..len + 2];
    memchr::memmem::find(text.as_bytes(), needle).map(|at| (at, needle.len()))
}

/// Similarity of two items (folded text), 0..=1: the better of a discounted
/// character ratio and the share of content words of the shorter item found in the
/// longer, so that "Valid travel document" and "Valid travel document (at
/// least 3 months…)" pair up while "Proof of health insurance" and "Proof of
/// vaccination" do not.
pub fn similarity(a: &str, b: &str) -> f32 {
    similarity_of(a, b, &words(a), &words(b), true)
}

/// Longest text (in bytes) compared character by character: the character
/// diff costs up to the product of the lengths, the word overlap is linear.
pub const CHAR_RATIO_MAX: usize = 500;

/// The content words of an item, for [`similarity_of`].
pub fn words(s: &str) -> std::collections::HashSet<&str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2 && !STOP.contains(w))
        .collect()
}

/// [`similarity`] with the word sets computed once by the caller; the
/// character ratio only when `chars` and both texts are short.
pub fn similarity_of(
    a: &str,
    b: &str,
    wa: &std::collections::HashSet<&str>,
    wb: &std::collections::HashSet<&str>,
    chars: bool,
) -> f32 {
    let small = wa.len().min(wb.len());
    let overlap = if small >= 2 {
        wa.intersection(wb).count() as f32 / small as f32
    } else {
        0.0
    };
    if !chars || a.len() > CHAR_RATIO_MAX || b.len() > CHAR_RATIO_MAX {
        return overlap;
    }
    let chars = similar::TextDiff::configure().diff_chars(a, b).ratio();
    // Characters alone overrate items sharing a stock opening ("Proof of …").
    (chars - 0.2).max(overlap)
}

const STOP: &[&str] = &[
    "the", "and", "for", "from", "with", "proof", "copy", "your", "any", "valid", "të", "për", "dhe", "nga",
    "ose", "dëshmi", "deshmi", "kopje", "dokaz", "kopija", "ili", "iz", "od", "koji",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every marker a list line can start with is still read, though most
    /// lines are told none by their first bytes.
    #[test]
    fn list_markers_are_read_and_other_lines_are_not() {
        for (line, want) in [
            ("- Valid passport", Some("Valid passport")),
            ("12. Proof of address", Some("Proof of address")),
            ("3) pasoš", Some("pasoš")),
            ("b) fotografija", Some("fotografija")),
            ("в) фотографија", Some("фотографија")),
            ("• Leje qëndrimi", Some("Leje qëndrimi")),
            ("· certificate", Some("certificate")),
            ("– ugovor", Some("ugovor")),
            ("* insurance", Some("insurance")),
            ("Valid passport", None),
            ("# Documents", None),
            ("2026 was a year", None),
            ("a) ", None),
            ("ab) no", None),
        ] {
            assert_eq!(item(line), want, "{line:?}");
        }
    }

    #[test]
    fn list_lines() {
        assert_eq!(item("- Passport"), Some("Passport"));
        assert_eq!(item("12. Photo"), Some("Photo"));
        assert_eq!(
            item("1) He does not have a visa"),
            Some("He does not have a visa")
        );
        assert_eq!(item("• Photo"), Some("Photo"));
        assert_eq!(item("a) foto"), Some("foto"));
        assert_eq!(item("2026. godine"), None);
        assert_eq!(item("U.S. citizens"), None);
    }

    #[test]
    fn inline_enumerations_split() {
        assert_eq!(
            items("1) pasoš; 2) fotografija; 3) dokaz o smeštaju."),
            ["pasoš", "fotografija", "dokaz o smeštaju."]
        );
        assert_eq!(items("2. Valid passport"), ["Valid passport"]);
        assert_eq!(items("- Proof of funds, 2) maybe"), ["Proof of funds, 2) maybe"]);
        assert!(items("Plain sentence.").is_empty());
        assert_eq!(
            items("Uz zahtev se prilaže: 1) pasoš; 2) fotografija."),
            ["pasoš", "fotografija."]
        );
    }

    #[test]
    fn pairing() {
        assert!(
            similarity(
                "valid travel document",
                "valid travel document (at least 3 months beyond permit validity)"
            ) >= 0.6
        );
        assert!(similarity("proof of health insurance", "proof of vaccination") < 0.6);
        assert!(
            similarity(
                "proof of accommodation (ownership or notarized lease contract, if relevant)",
                "proof of accommodation (ownership or lease contract)"
            ) >= 0.6
        );
    }
}

#[cfg(test)]
mod inline_tests {
    use super::*;

    #[test]
    fn a_list_inside_a_sentence() {
        let s = "Kosovo law requires U.S. citizens to show photo ID (original ID, a driver's license, or a passport) to authorized officials if asked.";
        let (_, items) = inline_items(s).expect("a list");
        assert_eq!(items, ["original ID", "a driver's license", "a passport"]);
        let s = "Kosovo law requires U.S. citizens to show photo ID (original ID or a passport) to authorized officials if asked.";
        assert_eq!(inline_items(s).expect("a list").1, ["original ID", "a passport"]);
        let s = "Uz zahtev se prilaže: pasoš, fotografija i potvrda o zaposlenju.";
        assert_eq!(
            inline_items(s).expect("a list").1,
            ["pasoš", "fotografija", "potvrda o zaposlenju"]
        );
        assert_eq!(
            inline_items("Zyrat tona janë në Prishtinë, Prizren dhe Pejë."),
            None
        );
        assert_eq!(inline_items("Entry, Exit and Visa Requirements"), None);
    }
}
