//! Which lines hold which kind of fact, found in one pass over the text.
//!
//! Every kind reads its matches with its own regexes (see `fees`, `ages`,
//! `dates`, `durations`); run over the whole text, each is a scan of its
//! own, and a page paid for a dozen. Here the patterns of all kinds run
//! together, once, as one lazy DFA that reports where any match of any of
//! them ends; each kind then reads only the lines where one of its matches
//! ends. No fact regex crosses a line, so a kind finds the same matches on
//! its lines as over the whole text. Two kinds keep where each match ends:
//! unit words are read there, and a line or sentence where no word naming
//! a document ends holds no list of documents (it is not asked).
//!
//! For: telling each kind where to look. Not for: reading the matches
//! (the kinds do), nor countries (a byte scan of their own, `countries`).

use std::cell::RefCell;
use std::ops::Range;
use std::sync::LazyLock;

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Input, MatchKind};

/// The kinds of match told apart, in the order of `patterns()`.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A currency before its amount: "€50", "EUR 50".
    FeeBefore,
    /// A currency after its amount: "50 €", "15.000 dinara".
    FeeAfter,
    /// "free of charge", "pa pagesë", "besplatno".
    Free,
    Age,
    Date,
    /// A unit word of a duration: every duration has one.
    Unit,
    /// A word naming a document: a list inside a sentence needs one.
    Document,
}

const KINDS: usize = 7;

/// Lines of one kind at most this many bytes apart are searched as one
/// stretch.
const JOIN_GAP: usize = 256;

fn patterns() -> [&'static str; KINDS] {
    [
        super::fees::BEFORE.as_str(),
        super::fees::AFTER.as_str(),
        super::fees::FREE.as_str(),
        super::ages::AGE.as_str(),
        super::dates::DATE.as_str(),
        super::durations::UNIT.as_str(),
        super::documents::DOCUMENT_WORD.as_str(),
    ]
}

/// All patterns in one DFA whose match states hold every pattern matching
/// there (`MatchKind::All`): a match of one kind never hides another's.
static ALL: LazyLock<Option<DFA>> = LazyLock::new(|| {
    DFA::builder()
        // A dense page builds about 200 KB of states; each thread keeps
        // its own cache, so it is bounded (when full it starts over).
        .configure(DFA::config().match_kind(MatchKind::All).cache_capacity(1 << 20))
        .build_many(&patterns())
        .ok()
});

thread_local! {
    /// The DFA's states as they are built: one cache per thread, kept
    /// between pages (a cold cache costs more than the scan).
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// The stretches of the text (whole lines, those near each other joined) where a
/// match of each kind ends, by [`Kind`].
#[derive(Debug, Clone)]
pub struct Lines {
    by_kind: [Vec<Range<usize>>; KINDS],
    /// Where a word naming a document ends, in order (`None`: not known).
    document_ends: Option<Vec<usize>>,
    /// Where a unit word may end, in order (`None`: not known).
    unit_ends: Option<Vec<usize>>,
}

impl Lines {
    /// Every kind everywhere: for a line read alone, or should the DFA fail.
    pub fn everywhere(text: &str) -> Lines {
        Lines {
            by_kind: std::array::from_fn(|_| std::iter::once(0..text.len()).collect()),
            document_ends: None,
            unit_ends: None,
        }
    }

    /// The lines of `lower` (the Latin text in ASCII lower case, as every
    /// kind's regexes read it) that hold a match of each kind.
    pub fn of(lower: &str) -> Lines {
        let Some(dfa) = ALL.as_ref() else {
            return Lines::everywhere(lower);
        };
        CACHE.with(|cell| {
            let mut cache = cell.borrow_mut();
            let cache = cache.get_or_insert_with(|| dfa.create_cache());
            scan(dfa, cache, lower).unwrap_or_else(|| Lines::everywhere(lower))
        })
    }

    pub fn get(&self, kind: Kind) -> &[Range<usize>] {
        &self.by_kind[kind as usize]
    }

    /// Where a match of the unit words ends, in order: every unit word of
    /// the text ends at one (`None`: not known).
    pub fn unit_ends(&self) -> Option<&[usize]> {
        self.unit_ends.as_deref()
    }

    /// [`Self::may_name_a_document_from`] by a search from the start:
    /// parsing asks with the cursor; this is the tests' reference for it.
    #[cfg(test)]
    pub fn may_name_a_document(&self, part: Range<usize>) -> bool {
        let mut from = self
            .document_ends
            .as_ref()
            .map_or(0, |ends| ends.partition_point(|&e| e <= part.start));
        self.may_name_a_document_from(part, &mut from)
    }

    /// Whether `part` of the text (a line, a sentence) may hold a word
    /// naming a document, for parts asked in the order of their starts
    /// (the lines of a page, the sentences of a line): the search goes on
    /// from `*from`, moved past the ends before `part`, and each part costs
    /// a step or two. A part that holds no such word holds no list of
    /// documents in a sentence, and is not asked.
    pub fn may_name_a_document_from(&self, part: Range<usize>, from: &mut usize) -> bool {
        self.document_ends.as_ref().is_none_or(|ends| {
            // A word ends after its first letter: the first end past the
            // part's start, if any, is in it or after it.
            while ends.get(*from).is_some_and(|&e| e <= part.start) {
                *from += 1;
            }
            ends.get(*from).is_some_and(|&e| e <= part.end)
        })
    }
}

/// A fact regex whose groups are read (fees, ages, dates).
///
/// Built on the engine under `regex` (`regex_automata::meta`): one set of
/// group slots serves every match of a page, where `regex::Regex::captures_at`
/// allocates one a match (a parse reads a few hundred).
pub struct FactRegex {
    source: String,
    re: regex_automata::meta::Regex,
}

impl FactRegex {
    /// # Panics
    /// If `source` is not a valid regex. The patterns are built from the
    /// lexicon compiled into the program, on first use: every parse builds
    /// them all (for the one pass), so every test of facts does.
    pub fn new(source: String) -> FactRegex {
        let re = regex_automata::meta::Regex::new(&source)
            .unwrap_or_else(|e| panic!("fact regex {source:?}: {e}"));
        FactRegex { source, re }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Group `name`, to read from each match ([`Groups::span`]): looked up
    /// once, not at every match (a name is a hash look-up).
    ///
    /// # Panics
    /// If the regex has no group `name`: a mistake in the code.
    pub fn group(&self, name: &str) -> Group {
        let index = self
            .re
            .group_info()
            .to_index(regex_automata::PatternID::ZERO, name);
        Group(index.unwrap_or_else(|| panic!("fact regex has no group {name:?}")))
    }

    /// Each match on `lines` of `lower`, leftmost first as an iterator of
    /// captures would give them, at its offsets in the whole `lower`.
    pub fn each<'h>(&self, lower: &'h str, lines: &[Range<usize>], mut read: impl FnMut(Groups<'_, 'h>)) {
        let mut caps = self.re.create_captures();
        for line in lines {
            // The haystack ends with the line and starts with the text, so a
            // word boundary at either edge reads what the whole text has.
            let hay = &lower[..line.end];
            let mut at = line.start;
            loop {
                self.re
                    .search_captures(&Input::new(hay).span(at..hay.len()), &mut caps);
                let Some(whole) = caps.get_match() else { break };
                read(Groups { caps: &caps, hay });
                at = next_start(hay, whole.range());
            }
        }
    }
}

/// A group of a [`FactRegex`], by its index (see [`FactRegex::group`]).
#[derive(Debug, Clone, Copy)]
pub struct Group(usize);

/// The groups of one [`FactRegex`] match.
pub struct Groups<'c, 'h> {
    caps: &'c regex_automata::util::captures::Captures,
    hay: &'h str,
}

impl<'h> Groups<'_, 'h> {
    /// The whole match.
    pub fn whole(&self) -> Range<usize> {
        self.caps.get_match().expect("a match").range()
    }

    /// Where `group` matched, if it took part.
    pub fn span(&self, group: Group) -> Option<Range<usize>> {
        self.caps.get_group(group.0).map(|s| s.range())
    }

    /// The text `group` matched, if it took part.
    pub fn text(&self, group: Group) -> Option<&'h str> {
        self.span(group).map(|r| &self.hay[r])
    }
}

/// The matches of `re` on `lines` of `lower`, leftmost first, at their
/// offsets in the whole `lower` (no groups: see [`FactRegex`] for them).
pub fn matches<'h>(
    re: &'h regex::Regex,
    lower: &'h str,
    lines: &'h [Range<usize>],
) -> impl Iterator<Item = regex::Match<'h>> + 'h {
    lines.iter().flat_map(move |line| {
        // As in `FactRegex::each`: the haystack ends with the line.
        let hay = &lower[..line.end];
        let mut at = line.start;
        std::iter::from_fn(move || {
            let m = re.find_at(hay, at)?;
            at = next_start(hay, m.range());
            Some(m)
        })
    })
}

/// Where the search after a match goes on: its end, or past the next
/// character if it was empty (no fact pattern matches empty; a guard).
fn next_start(hay: &str, m: Range<usize>) -> usize {
    if m.is_empty() {
        m.end + hay[m.end..].chars().next().map_or(1, char::len_utf8)
    } else {
        m.end
    }
}

/// One pass over `text`, every match of every pattern; `None` if the DFA
/// gives up.
///
/// The DFA is stepped byte by byte here rather than through its
/// overlapping search: only where a match ends is wanted, and the plain
/// loop costs a third of the search's (a lazy DFA's match states come one
/// byte late: entering one after the byte at `at` means matches end at `at`).
///
/// Each step waits for the one before (the next state is read from the
/// table at the current one), so the two halves of the text are stepped
/// side by side: two chains the processor runs at once (the pass takes
/// about 0.7 of the time). No match crosses a line, and the halves are cut after
/// a line's end.
fn scan(dfa: &DFA, cache: &mut Cache, text: &str) -> Option<Lines> {
    let bytes = text.as_bytes();
    let half = bytes.len() / 2;
    let side_by_side = match memchr::memchr(b'\n', &bytes[half..]) {
        Some(i) => in_halves(dfa, cache, bytes, half + i + 1)?,
        None => None,
    };
    let found = match side_by_side {
        Some(found) => found,
        // One line, or the cache was cleared under a chain: once more, alone.
        None => alone(dfa, cache, bytes)?,
    };
    Some(Lines {
        by_kind: found.by_kind,
        document_ends: Some(found.document_ends),
        unit_ends: Some(found.unit_ends),
    })
}

/// The pass over `bytes` as one chain.
fn alone<'t>(dfa: &DFA, cache: &mut Cache, bytes: &'t [u8]) -> Option<Found<'t>> {
    let mut found = Found::new(bytes);
    let mut state = dfa.start_state_forward(cache, &Input::new(bytes)).ok()?;
    for (at, &byte) in bytes.iter().enumerate() {
        state = dfa.next_state(cache, state, byte).ok()?;
        if state.is_tagged() && !found.tagged(dfa, cache, state, at)? {
            return Some(found);
        }
    }
    let state = dfa.next_eoi_state(cache, state).ok()?;
    if state.is_match() {
        found.add_matches(dfa, cache, state, bytes.len());
    }
    Some(found)
}

/// The pass over `bytes[..mid]` and `bytes[mid..]` (`mid` just after a
/// line's end) side by side; `Some(None)` if the DFA's cache was cleared
/// on the way (the state the other chain holds is then stale) or a chain
/// ended early.
fn in_halves<'t>(dfa: &DFA, cache: &mut Cache, bytes: &'t [u8], mid: usize) -> Option<Option<Found<'t>>> {
    let (head, tail) = bytes.split_at(mid);
    let (mut first, mut second) = (Found::new(bytes), Found::new(bytes));
    let clears = cache.clear_count();
    let mut a = dfa
        .start_state_forward(cache, &Input::new(bytes).range(..mid))
        .ok()?;
    let mut b = dfa
        .start_state_forward(cache, &Input::new(bytes).range(mid..))
        .ok()?;
    // A clear of the cache (when it fills) makes the other chain's state
    // stale: checked after every step that may have made new states.
    for (k, (&x, &y)) in head.iter().zip(tail).enumerate() {
        a = dfa.next_state(cache, a, x).ok()?;
        if cache.clear_count() != clears {
            return Some(None);
        }
        b = dfa.next_state(cache, b, y).ok()?;
        if cache.clear_count() != clears {
            return Some(None);
        }
        if (a.is_tagged() && !first.tagged(dfa, cache, a, k)?)
            || (b.is_tagged() && !second.tagged(dfa, cache, b, mid + k)?)
        {
            return Some(None);
        }
    }
    // The longer half's last bytes, alone. The first half ends with a
    // line's end, which no match holds: every match in it has been seen by
    // then; the second ends the text.
    for (k, &x) in head.iter().enumerate().skip(tail.len()) {
        a = dfa.next_state(cache, a, x).ok()?;
        if cache.clear_count() != clears {
            return Some(None);
        }
        if a.is_tagged() && !first.tagged(dfa, cache, a, k)? {
            return Some(None);
        }
    }
    for (k, &y) in tail.iter().enumerate().skip(head.len()) {
        b = dfa.next_state(cache, b, y).ok()?;
        if b.is_tagged() && !second.tagged(dfa, cache, b, mid + k)? {
            return Some(None);
        }
    }
    let b = dfa.next_eoi_state(cache, b).ok()?;
    if b.is_match() {
        second.add_matches(dfa, cache, b, bytes.len());
    }
    first.append(second);
    Some(Some(first))
}

/// What the pass has found so far.
struct Found<'t> {
    bytes: &'t [u8],
    by_kind: [Vec<Range<usize>>; KINDS],
    document_ends: Vec<usize>,
    unit_ends: Vec<usize>,
    /// The line of the last match end, found once for all its matches.
    line: Range<usize>,
}

impl<'t> Found<'t> {
    fn new(bytes: &'t [u8]) -> Found<'t> {
        Found {
            bytes,
            by_kind: Default::default(),
            document_ends: Vec::new(),
            unit_ends: Vec::new(),
            line: 0..0,
        }
    }

    /// A tagged state entered after the byte at `at`: its matches are
    /// recorded. `Some(false)` if the chain is over (dead), `None` if the
    /// DFA gave up (quit).
    fn tagged(&mut self, dfa: &DFA, cache: &Cache, state: LazyStateID, at: usize) -> Option<bool> {
        if state.is_match() {
            self.add_matches(dfa, cache, state, at);
        } else if state.is_dead() {
            return Some(false);
        } else if state.is_quit() {
            return None;
        }
        Some(true)
    }

    /// Adds what the pass found after this one's stretch of text.
    fn append(&mut self, after: Found<'t>) {
        for (kind, ranges) in after.by_kind.into_iter().enumerate() {
            for r in ranges {
                self.extend(kind, r);
            }
        }
        self.document_ends.extend(after.document_ends);
        self.unit_ends.extend(after.unit_ends);
    }

    /// The matches of every pattern that match state `state` holds, ending at `end`.
    fn add_matches(&mut self, dfa: &DFA, cache: &Cache, state: LazyStateID, end: usize) {
        for i in 0..dfa.match_len(cache, state) {
            self.add(dfa.match_pattern(cache, state, i).as_usize(), end);
        }
    }

    /// A match of pattern `kind` ending at `end`.
    fn add(&mut self, kind: usize, end: usize) {
        let bytes = self.bytes;
        // Its last byte is in the line that counts.
        let last = end.saturating_sub(1);
        if !(self.line.start <= last && last < self.line.end) {
            let start = memchr::memrchr(b'\n', &bytes[..last]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &bytes[last..]).map_or(bytes.len(), |i| last + i);
            self.line = start..end;
        }
        if kind == Kind::Document as usize {
            self.document_ends.push(end);
        }
        if kind == Kind::Unit as usize {
            self.unit_ends.push(end);
        }
        self.extend(kind, self.line.clone());
    }

    /// Lines of `kind` take in `line`, which ends at or after the last.
    fn extend(&mut self, kind: usize, line: Range<usize>) {
        let ranges = &mut self.by_kind[kind];
        match ranges.last_mut() {
            Some(r) if r.end >= line.end => {}
            // A line near the last one: one stretch (the lines between
            // hold no match of this kind, and a search costs more to start
            // than to read them).
            Some(r) if line.start - r.end <= JOIN_GAP => r.end = line.end,
            _ => ranges.push(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind is told the lines holding one of its matches, and only
    /// those; a fee line is no unit line, a duration's line is.
    #[test]
    fn each_kind_is_told_its_lines() {
        // Filler between the lines, so that none is joined to the next.
        let text = [
            "# heading",
            "fee: 50 €",
            "valid for 90 days",
            "nothing here",
            "children under 14 need consent",
            "from 1 june 2026 on",
            "€20 and also 3 weeks",
        ]
        .join(&format!("\n{}\n", "no fact here. ".repeat(20)));
        let text = text.as_str();
        let lines = Lines::of(text);
        let at = |s: &str| {
            let start = text.find(s).unwrap();
            start..start + s.len()
        };
        assert_eq!(lines.get(Kind::FeeAfter), [at("fee: 50 €")]);
        assert_eq!(lines.get(Kind::FeeBefore), [at("€20 and also 3 weeks")]);
        assert!(lines.get(Kind::Free).is_empty());
        assert_eq!(lines.get(Kind::Age), [at("children under 14 need consent")]);
        assert_eq!(lines.get(Kind::Date), [at("from 1 june 2026 on")]);
        assert_eq!(
            lines.get(Kind::Unit),
            [at("valid for 90 days"), at("€20 and also 3 weeks")]
        );
    }

    /// Only lines and sentences holding a word that names a document may
    /// hold a list of documents inside a sentence: the others are not
    /// asked. Each part is told alone, however near the next.
    #[test]
    fn parts_naming_documents_are_told_alone() {
        let text = "bring a passport, a photo and the form.\nnothing to bring here.\nletërnjoftim ose pasaportë.\nthe passports.";
        let lines = Lines::of(text);
        let span = |s: &str| text.find(s).unwrap()..text.find(s).unwrap() + s.len();
        let told = |s: &str| lines.may_name_a_document(span(s));
        assert!(told("bring a passport, a photo and the form."));
        assert!(!told("bring a"));
        assert!(told("passport"));
        assert!(!told("nothing to bring here."));
        assert!(told("letërnjoftim ose pasaportë."));
        assert!(told("the passports."));
        assert!(Lines::everywhere(text).may_name_a_document(span("nothing to bring here.")));
        // Asked in order with one cursor, every part (every line, every
        // word, every sentence) gets the answer asked alone gets.
        let mut parts: Vec<Range<usize>> = Vec::new();
        for (at, _) in text.char_indices() {
            for end in (at..=text.len()).filter(|&e| text.is_char_boundary(e)) {
                parts.push(at..end);
            }
        }
        let mut from = 0;
        for part in parts {
            let alone = lines.may_name_a_document(part.clone());
            assert_eq!(
                lines.may_name_a_document_from(part.clone(), &mut from),
                alone,
                "{part:?}"
            );
        }
    }

    /// The halves stepped side by side find what one pass finds, wherever
    /// the text is cut: matches at either edge of a half, a stretch joined
    /// across the cut, the text's last word (its end seen at the end of input).
    #[test]
    fn halves_find_what_one_pass_finds() {
        let text = [
            "fee: 50 €",
            "valid for 90 days",
            "children under 14 need consent",
            "bring a passport and a photo",
            "nothing here at all",
            "from 1 june 2026 on",
            "€20 and also 3 weeks",
            "",
            "free of charge for 6 months",
        ]
        .join("\n");
        let text = format!("{text}\n{}\n{text}\nand 30 days", "no fact here. ".repeat(20));
        let dfa = ALL.as_ref().expect("the DFA builds");
        let mut cache = dfa.create_cache();
        let one = alone(dfa, &mut cache, text.as_bytes()).expect("one pass");
        let cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        for mid in cuts {
            let two = in_halves(dfa, &mut cache, text.as_bytes(), mid)
                .expect("no quit")
                .expect("no clear");
            assert_eq!(two.by_kind, one.by_kind, "cut at {mid}");
            assert_eq!(two.document_ends, one.document_ends, "cut at {mid}");
            assert_eq!(two.unit_ends, one.unit_ends, "cut at {mid}");
        }
        assert_eq!(*one.unit_ends.last().unwrap(), text.len());
    }

    /// A cache so small that it is cleared again and again: the halves
    /// give up (a state of the other chain would be stale) and the pass
    /// alone finds what a roomy cache finds.
    #[test]
    fn a_cache_cleared_under_the_halves_loses_nothing() {
        // The fixture pages' texts: many states, more than the least
        // cache holds.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pages/");
        let mut text = String::new();
        for page in [
            "us-state-kosovo-entry",
            "xk-mpb-temporary-residence",
            "rs-residence-article",
        ] {
            let page = std::fs::read_to_string(format!("{root}{page}/v1.expected.txt")).expect("fixture");
            text.push_str(&page.to_ascii_lowercase());
        }
        let roomy = Lines::of(&text);
        let tiny = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(0)
                    .skip_cache_capacity_check(true),
            )
            .build_many(&patterns())
            .expect("the DFA builds");
        let mut cache = tiny.create_cache();
        let mid = text.len() / 2 + text[text.len() / 2..].find('\n').unwrap() + 1;
        assert!(
            in_halves(&tiny, &mut cache, text.as_bytes(), mid)
                .expect("no quit")
                .is_none()
        );
        let found = scan(&tiny, &mut cache, &text).expect("no quit");
        assert!(cache.clear_count() > 0);
        assert_eq!(found.by_kind, roomy.by_kind);
        assert_eq!(found.document_ends, roomy.document_ends);
        assert_eq!(found.unit_ends, roomy.unit_ends);
    }

    /// Lines of one kind near each other are one stretch, read in one
    /// search; far apart, two.
    #[test]
    fn near_lines_are_joined() {
        let far = "no unit here. ".repeat(30);
        let text = format!("90 days\nnone\n6 months\n{far}\n2 weeks");
        let lines = Lines::of(&text);
        let two = text.find("2 weeks").unwrap();
        assert_eq!(lines.get(Kind::Unit), [0..21, two..text.len()]);
    }

    /// A fact regex reads every match of the lines it is given, several on
    /// a line, each with its own groups and at its offsets in the whole
    /// text (the one set of slots is refilled, never left stale), and
    /// nothing on the lines it is not given.
    #[test]
    fn a_fact_regex_reads_each_match_with_its_own_groups() {
        let re = FactRegex::new(r"(?P<n>[0-9]+)[^\S\n]+(?P<unit>days|weeks)|(?P<free>free)".into());
        let text = "skip 1 days\n90 days or 2 weeks, free\nskip 3 weeks\n7 days";
        let second = text.find("90").unwrap()..text.find("\nskip 3").unwrap();
        let last = text.rfind('7').unwrap()..text.len();
        let [n, unit, free] = ["n", "unit", "free"].map(|name| re.group(name));
        let mut read = Vec::new();
        re.each(text, &[second, last], |g| {
            read.push((
                &text[g.whole()],
                g.text(n),
                g.text(unit),
                g.span(free).map(|r| r.start),
            ))
        });
        let free = text.find("free").unwrap();
        assert_eq!(
            read,
            [
                ("90 days", Some("90"), Some("days"), None),
                ("2 weeks", Some("2"), Some("weeks"), None),
                ("free", None, None, Some(free)),
                ("7 days", Some("7"), Some("days"), None),
            ]
        );
    }
}
