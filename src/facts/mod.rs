//! PURE: requirement facts from canonical text: fees, durations and
//! document lists, each with the context that tells it apart (the table row
//! label, the list item, or the sentence).
//!
//! Text is read in one canonical script (Serbian Cyrillic is transliterated
//! to Latin first), so a page that switches script changes no fact. No
//! network, no disk, no clock; `compare` decides what changed.

pub mod ages;
pub mod countries;
pub mod dates;
pub mod documents;
pub mod durations;
pub mod fees;
pub mod lexicon;
pub mod noise;
pub mod scan;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Hours => "hours",
            Unit::Days => "days",
            Unit::Weeks => "weeks",
            Unit::Months => "months",
            Unit::Years => "years",
        }
    }
}

/// A value with its unit, as read from a page. Compared typed; written in
/// its normal form (`"15000 RSD"`, `"90 days"`, `"0"`) only at the edge
/// (reports, the JSON contract).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `amount` is a canonical decimal (`"1500.5"`); `currency` an ISO 4217
    /// code, `None` for "free of charge" on a page that names no currency.
    Money {
        amount: String,
        currency: Option<&'static str>,
    },
    /// A span of time: `90 days`, `6 months`.
    Span { count: u32, unit: Unit },
    /// A calendar date, or a month when the page names no day.
    Date { year: u16, month: u8, day: Option<u8> },
}

impl Value {
    /// The currency of a sum of money.
    pub fn currency(&self) -> Option<&'static str> {
        match self {
            Value::Money { currency, .. } => *currency,
            Value::Span { .. } | Value::Date { .. } => None,
        }
    }

    /// Free of charge, with no currency of its own.
    pub fn is_bare_zero(&self) -> bool {
        matches!(self, Value::Money { amount, currency: None } if amount == "0")
    }

    /// The same span in the smallest whole unit it converts to exactly
    /// (years → months, weeks → days), so "1 year" equals "12 months".
    pub fn in_small_units(&self) -> Option<(u64, Unit)> {
        match *self {
            Value::Span { count, unit } => Some(match unit {
                Unit::Years => (u64::from(count) * 12, Unit::Months),
                Unit::Weeks => (u64::from(count) * 7, Unit::Days),
                other => (u64::from(count), other),
            }),
            Value::Money { .. } | Value::Date { .. } => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Value::Money {
                amount,
                currency: Some(c),
            } => format!("{amount} {c}"),
            Value::Money {
                amount,
                currency: None,
            } => amount.clone(),
            Value::Span { count, unit } => format!("{count} {}", unit.as_str()),
            Value::Date {
                year,
                month,
                day: Some(d),
            } => format!("{year:04}-{month:02}-{d:02}"),
            Value::Date {
                year,
                month,
                day: None,
            } => format!("{year:04}-{month:02}"),
        };
        f.pad(&text)
    }
}

/// The JSON contract keeps the normal-form string.
impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A fee or a duration with its context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    pub value: Value,
    pub context: String,
    /// Matching key: the context folded, with every value masked, so the
    /// same sentence with a new value still matches.
    #[serde(skip)]
    pub key: String,
    /// Index of the line it was read from.
    #[serde(skip)]
    pub line: usize,
}

/// A list item and the lead-in or heading it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub text: String,
    pub context: String,
    #[serde(skip)]
    pub key: String,
    /// The item as written, its values masked: tells a retouched item
    /// (case, punctuation) from one whose value alone changed.
    #[serde(skip)]
    pub shape: String,
    /// Index of the line it was read from.
    #[serde(skip)]
    pub line: usize,
    /// For an item of a list written inside a sentence: the sentence with
    /// its list masked, folded. Tells the same sentence with an item
    /// dropped from a sentence rewritten.
    #[serde(skip)]
    pub frame: Option<String>,
}

/// A country (or EU, EEA, Schengen) in a list of nationalities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code (`XK` for Kosovo), or `EU`, `EEA`, `Schengen`.
    pub code: &'static str,
    /// The name as the page writes it.
    pub name: String,
    /// The list's lead-in, or the sentence that names it.
    pub context: String,
    /// Which list it belongs to: lists are compared as sets of codes.
    #[serde(skip)]
    pub key: String,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub fees: Vec<Fact>,
    pub durations: Vec<Fact>,
    /// Age thresholds ("children under 14"): `<n> years`.
    pub ages: Vec<Fact>,
    /// Effective, start and deadline dates ("from 1 June 2026").
    pub dates: Vec<Fact>,
    pub documents: Vec<Document>,
    /// Countries in lists of nationalities.
    pub countries: Vec<Country>,
}

/// One stretch of text that facts are read from, with its display context.
struct Unit_<'a> {
    body: &'a str,
    context: &'a str,
    /// A table row's label: the key when the label itself holds no value.
    label: Option<&'a str>,
}

/// Parses the facts of a canonical text.
pub fn parse(text: &str) -> Facts {
    let latin = transliterate(text);
    // Each kind's regexes run once over the ASCII-lowercased text (see
    // `fees`), on the lines one pass over it found holding that kind (no
    // regex crosses a line); units below take the matches inside their
    // span. Far cheaper than a search per sentence.
    let lower = latin.to_ascii_lowercase();
    let lines = scan::Lines::of(&lower);
    let all_fees = fees::find_in(&latin, &lower, &lines);
    let all_ages = ages::find_in(&lower, &lines);
    let all_dates = dates::find_in(&lower, &lines);
    // An age is not a duration: durations skip the ages' spans too.
    let taken: Vec<Range<usize>> = all_fees
        .iter()
        .map(|f| f.span.clone())
        .chain(all_ages.iter().map(|a| a.span.clone()))
        .chain(all_dates.iter().map(|d| d.span.clone()))
        .collect();
    let all_durs = durations::find_in(&lower, &lines, &taken);
    let all_countries = countries::find(&latin);
    let offset = |part: &str| part.as_ptr() as usize - latin.as_ptr() as usize;
    // A part of the text with its own values masked (`§`): the key of a
    // document, the same when only its fee or duration changed.
    let mask_values = |part: &str, on: &OnLine| {
        let at = offset(part);
        let spans: Vec<Range<usize>> = within(on.fees, |f| &f.span, at, part.len())
            .map(|f| &f.span)
            .chain(within(on.durs, |d| &d.span, at, part.len()).map(|d| &d.span))
            .chain(within(on.ages, |a| &a.span, at, part.len()).map(|a| &a.span))
            .chain(within(on.dates, |d| &d.span, at, part.len()).map(|d| &d.span))
            .map(|s| s.start - at..s.end - at)
            .collect();
        mask(part, &spans)
    };
    let mut facts = Facts::default();
    let mut lead_in = LeadIn::default();
    let mut free_fees: Vec<usize> = Vec::new();
    // Transliteration maps line to line, so the page's own script is at hand
    // for what editors read (document items); matching uses the Latin keys.
    let mut original_lines = lines_of(text);
    let latin_lines: Vec<&str> = lines_of(&latin).collect();
    // Each line's list item, if it is one (asked twice below).
    let firsts: Vec<Option<&str>> = latin_lines.iter().map(|l| documents::item(l)).collect();
    let news = documents::news_lines(&latin_lines, &firsts);
    // Countries named in list items and table rows: a list or a table is one
    // of nationalities only when most of its entries are countries (below).
    let mut item_countries: Vec<Named> = Vec::new();
    let mut row_countries: Vec<Named> = Vec::new();
    // Where a value or a country starts: a line with none, no list item
    // and no word naming a document gives no fact (most lines of a page),
    // and is only a lead-in.
    let mut marks: Vec<usize> = all_fees
        .iter()
        .map(|f| f.span.start)
        .chain(all_ages.iter().map(|a| a.span.start))
        .chain(all_dates.iter().map(|d| d.span.start))
        .chain(all_durs.iter().map(|d| d.span.start))
        .chain(all_countries.iter().map(|c| c.span.start))
        .collect();
    marks.sort_unstable();
    // Buffers of one line's units and list items and one unit's spans and
    // runs of country names, reused: most lines with a fact have one or
    // two, and the page has thousands of lines.
    let mut units: Vec<Unit_> = Vec::new();
    let mut spans: Vec<Range<usize>> = Vec::new();
    let mut items: Vec<&str> = Vec::new();
    let mut runs: Vec<countries::Run> = Vec::new();
    // Lines come in order: where the next mark and the next match of each
    // kind are, moved on line by line (not searched for each).
    let mut next_mark = 0;
    // Where the next word naming a document ends.
    let mut next_document = 0;
    // Fees, durations, ages, dates, countries (as in `OnLine`).
    let mut next = [0; 5];
    for (line_no, line) in latin_lines.iter().copied().enumerate() {
        let original = original_lines.next().unwrap_or(line);
        if news[line_no] {
            continue;
        }
        let start = offset(line);
        let range = start..start + line.len();
        while marks.get(next_mark).is_some_and(|&m| m < range.start) {
            next_mark += 1;
        }
        let marked = marks.get(next_mark).is_some_and(|&m| m < range.end);
        let may_list = lines.may_name_a_document_from(range.clone(), &mut next_document);
        // What editors read (contexts, labels, lead-ins) in the page's script.
        let same_script = line == original;
        let shown = |part: &str| {
            if same_script {
                part.to_string()
            } else {
                in_page_script(line, original, part)
            }
        };
        let heading = line.starts_with('#');
        let body = line.trim_start_matches('#').trim();
        // A table row: its cells joined by " | " (see `extract`).
        let label = row_label(body);
        let first = firsts[line_no];
        let list_line = first.is_some();
        documents::items_after(line, first, &mut items);
        if !marked && !may_list && items.is_empty() {
            if heading || label.is_none() {
                lead_in = LeadIn::of(line, original, body);
            }
            continue;
        }
        let on = OnLine {
            fees: starting_in(&all_fees, |f| &f.span, &mut next[0], &range),
            durs: starting_in(&all_durs, |d| &d.span, &mut next[1], &range),
            ages: starting_in(&all_ages, |a| &a.span, &mut next[2], &range),
            dates: starting_in(&all_dates, |d| &d.span, &mut next[3], &range),
            countries: starting_in(&all_countries, |c| &c.span, &mut next[4], &range),
        };
        units.clear();
        if list_line {
            units.extend(items.iter().map(|item| Unit_ {
                body: item,
                context: item,
                label: None,
            }));
        } else if let Some(label) = label {
            units.push(Unit_ {
                body,
                context: label,
                label: Some(label),
            });
        } else {
            units.extend(sentences(body).map(|s| Unit_ {
                body: s,
                context: s,
                label: None,
            }));
        }
        for u in &units {
            let at = offset(u.body);
            let named = countries_within(on.countries, at, u.body.len());
            if let Some(first_named) = named.first() {
                // A country entry is the name, alone or with a note after a
                // mark: "Montenegro", "Albania (ID card)", "Kosovo – 90 days";
                // not "U.S. Department of Defense Photos".
                let (first, end) = (first_named.span.start - at, first_named.span.end - at);
                let rest = u.body[end..].trim_start();
                let starts = (u.body[..first]
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .is_empty()
                    || u.body[..first].trim().len() <= 12 && fold(&u.body[..first]) == "the")
                    && (rest.trim_end_matches('.').is_empty()
                        || rest.starts_with([',', '(', '–', '—', '-', ':', ';', '/', '*', '|']));
                let found = || -> Vec<(&'static str, String)> {
                    named
                        .iter()
                        .map(|c| (c.code, shown(&latin[c.span.clone()])))
                        .collect()
                };
                if list_line {
                    item_countries.push(Named {
                        at: facts.documents.len() + item_index(&items, u.body),
                        lead_in: String::new(),
                        starts,
                        names: found(),
                    });
                } else if u.label.is_some() {
                    row_countries.push(Named {
                        at: line_no,
                        lead_in: lead_in.shown(),
                        starts,
                        names: found(),
                    });
                } else {
                    // A sentence: its runs of names ("Norway, Iceland and
                    // Switzerland"), and a name after "citizens of".
                    countries::runs(u.body, at, named, &mut runs);
                    runs.retain(|r| {
                        r.names.len() >= 2 || countries::after_nationals(&u.body[..r.span.start])
                    });
                    if !runs.is_empty() {
                        let spans: Vec<Range<usize>> = runs.iter().map(|r| r.span.clone()).collect();
                        let key = countries::sentence_key(&mask(u.body, &spans));
                        let found = found();
                        for r in &runs {
                            for (code, name) in &found[r.names.clone()] {
                                facts.countries.push(Country {
                                    code,
                                    name: name.clone(),
                                    context: shown(u.context),
                                    key: key.clone(),
                                    line: line_no,
                                });
                            }
                        }
                    }
                }
            }
            let fees = within(on.fees, |f| &f.span, at, u.body.len());
            let durs = within(on.durs, |d| &d.span, at, u.body.len());
            let ages = within(on.ages, |a| &a.span, at, u.body.len());
            let dates = within(on.dates, |d| &d.span, at, u.body.len());
            // The unit's values, at their offsets in it.
            let here = |s: &Range<usize>| s.start - at..s.end - at;
            spans.clear();
            spans.extend(fees.clone().map(|f| here(&f.span)));
            spans.extend(durs.clone().map(|d| here(&d.span)));
            spans.extend(ages.clone().map(|a| here(&a.span)));
            spans.extend(dates.clone().map(|d| here(&d.span)));
            if !list_line
                && !heading
                && u.label.is_none()
                && lines.may_name_a_document_from(at..at + u.body.len(), &mut next_document)
                && let Some((list, inline)) = documents::inline_items(u.body)
            {
                // A list of countries is no document list (see above).
                let in_list = |c: &&countries::CountryMatch| {
                    c.span.start >= at + list.start && c.span.end <= at + list.end
                };
                let named = within(on.countries, |c| &c.span, at, u.body.len())
                    .filter(in_list)
                    .count();
                if named * 2 < inline.len() {
                    let frame = fold(&mask(u.body, std::slice::from_ref(&list)));
                    for item in inline {
                        let masked = mask_values(item, &on);
                        facts.documents.push(Document {
                            text: shown(item),
                            context: shown(u.context),
                            key: fold(&masked),
                            shape: masked,
                            line: line_no,
                            frame: Some(frame.clone()),
                        });
                    }
                }
            }
            if spans.is_empty() {
                continue;
            }
            let key = match u.label {
                Some(label) if !spans.iter().any(|s| s.start < label.len()) => fold(label),
                _ => fold(&mask(u.body, &spans)),
            };
            // Every fact of this stretch shares its context, key and line.
            let (mut context, mut key) = (shown(u.context), key);
            // One fact for each span; the last takes the strings.
            let mut left = spans.len();
            let mut fact = |value: Value| {
                left -= 1;
                let (context, key) = if left == 0 {
                    (std::mem::take(&mut context), std::mem::take(&mut key))
                } else {
                    (context.clone(), key.clone())
                };
                Fact {
                    value,
                    context,
                    key,
                    line: line_no,
                }
            };
            for f in fees {
                if f.currency.is_none() {
                    free_fees.push(facts.fees.len());
                }
                facts.fees.push(fact(Value::Money {
                    amount: f.amount.clone(),
                    currency: f.currency,
                }));
            }
            for d in dates {
                facts.dates.push(fact(Value::Date {
                    year: d.year,
                    month: d.month,
                    day: d.day,
                }));
            }
            for a in ages {
                facts.ages.push(fact(Value::Span {
                    count: a.n,
                    unit: Unit::Years,
                }));
            }
            for d in durs {
                facts.durations.push(fact(Value::Span {
                    count: d.n,
                    unit: d.unit,
                }));
            }
        }
        if !items.is_empty() {
            // The page's own script for what editors read, when it splits alike.
            let other = (!same_script)
                .then(|| documents::items(original))
                .filter(|shown| shown.len() == items.len());
            let shown = other.as_deref().unwrap_or(&items);
            for (item, text) in items.iter().zip(shown) {
                // The key masks the item's own fees and durations, so an item
                // whose value changed is the same document.
                let masked = mask_values(item, &on);
                facts.documents.push(Document {
                    text: text.to_string(),
                    context: lead_in.shown(),
                    key: fold(&masked),
                    shape: masked,
                    line: line_no,
                    frame: None,
                });
            }
        } else if heading || label.is_none() {
            lead_in = LeadIn::of(line, original, body);
        }
    }
    country_lists(&mut facts, item_countries, row_countries);
    // "Free of charge" takes the currency the page's other fees use.
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for f in &facts.fees {
        if let Some(cur) = f.value.currency() {
            *counts.entry(cur).or_default() += 1;
        }
    }
    if let Some(cur) = counts
        .into_iter()
        .max_by_key(|(c, n)| (*n, std::cmp::Reverse(*c)))
        .map(|(c, _)| c)
    {
        for i in free_fees {
            facts.fees[i].value = Value::Money {
                amount: "0".into(),
                currency: Some(cur),
            };
        }
    }
    facts
}

/// The last heading or paragraph before a list or a table, the context
/// of its items and rows: made into the page's script only when one asks
/// (most paragraphs lead into nothing).
#[derive(Default)]
struct LeadIn<'a> {
    /// The paragraph in Latin, its line in Latin and in the page's script.
    part: &'a str,
    latin: &'a str,
    original: &'a str,
    shown: Option<String>,
}

impl<'a> LeadIn<'a> {
    fn of(latin: &'a str, original: &'a str, part: &'a str) -> LeadIn<'a> {
        LeadIn {
            part,
            latin,
            original,
            shown: None,
        }
    }

    fn shown(&mut self) -> String {
        self.shown
            .get_or_insert_with(|| in_page_script(self.latin, self.original, self.part))
            .clone()
    }
}

/// Countries named in a list item or a table row, waiting for the verdict
/// on their list.
struct Named {
    /// The document's index (items) or the line (table rows).
    at: usize,
    lead_in: String,
    /// The entry starts with the name: it is a country entry.
    starts: bool,
    names: Vec<(&'static str, String)>,
}

/// The position of `item` (a slice of the line) among the line's items.
fn item_index(items: &[&str], item: &str) -> usize {
    items
        .iter()
        .position(|i| i.as_ptr() == item.as_ptr())
        .unwrap_or(0)
}

/// Lists and tables most of whose entries are countries are lists of
/// nationalities: their countries become facts, and their items are no
/// documents (a country added is `country_added`, not `document_added`).
fn country_lists(facts: &mut Facts, items: Vec<Named>, rows: Vec<Named>) {
    // Entries of one list: same lead-in, on consecutive lines.
    fn groups<T>(entries: Vec<T>, same: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
        let mut out: Vec<Vec<T>> = Vec::new();
        for e in entries {
            match out.last_mut() {
                Some(g) if same(g.last().expect("non-empty"), &e) => g.push(e),
                _ => out.push(vec![e]),
            }
        }
        out
    }
    let is_list = |starting: usize, total: usize| starting >= 2 && starting * 5 >= total * 3;
    let docs = &facts.documents;
    let mut drop = vec![false; docs.len()];
    let mut found = Vec::new();
    for group in groups(items, |a, b| {
        docs[a.at].context == docs[b.at].context && docs[b.at].line <= docs[a.at].line + 1
    }) {
        let first = &docs[group[0].at];
        let last = &docs[group[group.len() - 1].at];
        // Every item of the list counts, countries or not.
        let total = docs
            .iter()
            .filter(|d| d.context == first.context && d.line >= first.line && d.line <= last.line)
            .count();
        if !is_list(group.iter().filter(|e| e.starts).count(), total) {
            continue;
        }
        let key = format!("list: {}", fold(&first.context));
        for Named { at: doc, names, .. } in group {
            drop[doc] = true;
            for (code, name) in names {
                found.push(Country {
                    code,
                    name,
                    context: docs[doc].context.clone(),
                    key: key.clone(),
                    line: docs[doc].line,
                });
            }
        }
    }
    for group in groups(rows, |a, b| a.lead_in == b.lead_in && b.at <= a.at + 1) {
        // Rows before and after the countries (a header row) do not count.
        if !is_list(group.iter().filter(|e| e.starts).count(), group.len()) {
            continue;
        }
        let key = format!("table: {}", fold(&group[0].lead_in));
        for Named {
            at: line,
            lead_in,
            names,
            ..
        } in group
        {
            for (code, name) in names {
                found.push(Country {
                    code,
                    name,
                    context: lead_in.clone(),
                    key: key.clone(),
                    line,
                });
            }
        }
    }
    let mut i = 0;
    facts.documents.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    facts.countries.extend(found);
    facts.countries.sort_by_key(|c| c.line);
}

/// The lines of `text` as `str::lines` gives them, found by `memchr`: a
/// dense page has thousands, and the standard search starts over for each.
fn lines_of(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
    std::iter::from_fn(move || match ends.next() {
        Some(end) => {
            let line = &text[start..end];
            start = end + 1;
            Some(line.strip_suffix('\r').unwrap_or(line))
        }
        None if start < text.len() => {
            let line = &text[start..];
            start = text.len();
            Some(line)
        }
        None => None,
    })
}

/// The matches of each kind starting on one line: slices of the page's.
struct OnLine<'m> {
    fees: &'m [fees::FeeMatch],
    durs: &'m [durations::DurationMatch],
    ages: &'m [ages::AgeMatch],
    dates: &'m [dates::DateMatch],
    countries: &'m [countries::CountryMatch],
}

/// The matches of `all` (sorted by start) starting in `range`, looked for
/// from `*from` on, which is moved past those starting before it: ranges
/// asked in order cost a step or two each.
fn starting_in<'m, T>(
    all: &'m [T],
    span: impl Fn(&T) -> &Range<usize>,
    from: &mut usize,
    range: &Range<usize>,
) -> &'m [T] {
    while all.get(*from).is_some_and(|m| span(m).start < range.start) {
        *from += 1;
    }
    let rest = &all[*from..];
    let n = rest.iter().take_while(|m| span(m).start < range.end).count();
    &rest[..n]
}

/// The matches lying wholly inside `text[at..at + len]`; `all` is sorted by start.
fn within<'m, T>(
    all: &'m [T],
    span: impl Fn(&T) -> &Range<usize> + Copy + 'm,
    at: usize,
    len: usize,
) -> impl Iterator<Item = &'m T> + Clone + 'm {
    let first = all.partition_point(|m| span(m).start < at);
    all[first..]
        .iter()
        .take_while(move |m| span(m).start < at + len)
        .filter(move |m| span(m).end <= at + len)
}

/// The countries lying wholly inside `text[at..at + len]`, as a slice:
/// [`within`] for matches that never overlap, so that only the last one
/// starting inside may end outside.
fn countries_within(all: &[countries::CountryMatch], at: usize, len: usize) -> &[countries::CountryMatch] {
    let first = all.partition_point(|c| c.span.start < at);
    let rest = &all[first..];
    let mut n = rest.iter().take_while(|c| c.span.start < at + len).count();
    if n > 0 && rest[n - 1].span.end > at + len {
        n -= 1;
    }
    &rest[..n]
}

/// The first cell of a table row (cells joined by `" | "`), `None` for
/// any other line. `|` is rare in text: found by `memchr`, where `" | "`
/// would be looked for at every space.
fn row_label(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    memchr::memchr_iter(b'|', bytes)
        .find(|&i| i > 0 && bytes[i - 1] == b' ' && bytes.get(i + 1) == Some(&b' '))
        .map(|i| &line[..i - 1])
}

/// Splits a paragraph into sentences at `.`, `!`, `?` or `;` followed by a
/// space and a capital letter ("U.S. citizens" stays whole).
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut done = false;
    // The marks are ASCII: bytes are searched (by `memchr`), not
    // characters decoded.
    let bytes = text.as_bytes();
    let mut stops = memchr::memchr3_iter(b'.', b'!', b'?', bytes).peekable();
    let mut semicolons = memchr::memchr_iter(b';', bytes).peekable();
    let mut marks = std::iter::from_fn(move || match (stops.peek(), semicolons.peek()) {
        (Some(&a), Some(&b)) if b < a => semicolons.next(),
        (Some(_), _) => stops.next(),
        (None, _) => semicolons.next(),
    });
    std::iter::from_fn(move || {
        for i in marks.by_ref() {
            let c = bytes[i];
            let mut next = text[i + 1..].chars();
            if next.next() != Some(' ') || !next.next().is_some_and(char::is_uppercase) {
                continue;
            }
            // "No. 119", "e.g. The": an abbreviation is short and starts a word.
            let word_start = text[..i].rfind(' ').map_or(0, |p| p + 1);
            let word = &text[word_start..i];
            if c == b'.' && word.chars().count() <= 2 && word.chars().next().is_some_and(char::is_uppercase) {
                continue;
            }
            let sentence = text[start..=i].trim();
            start = i + 1;
            return Some(sentence);
        }
        // The rest after the last mark, if any.
        let rest = text[start..].trim();
        if done || rest.is_empty() {
            return None;
        }
        done = true;
        Some(rest)
    })
}

/// ASCII word boundary. The regex crate's fast DFA cannot run a Unicode `\b`
/// over non-ASCII text (and every page has `€`, `ë` or `š`), so the fact
/// regexes use this instead: 20× faster, same matches where the word's edge
/// letter is ASCII.
pub(crate) const WB: &str = r"(?-u:\b)";

/// A regex alternation of `words`, longest first, each fenced by [`WB`] on
/// the sides whose edge letter is ASCII alphanumeric (a word ending in `ë`
/// ends there anyway). `start` / `end` false leave that side open: a
/// currency glued to its amount (`50EUR`, `EUR50`).
pub(crate) fn word_alternation<'a>(
    words: impl IntoIterator<Item = &'a str>,
    start: bool,
    end: bool,
) -> String {
    let mut words: Vec<&str> = words.into_iter().collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words
        .iter()
        .map(|w| {
            let fence = |c: Option<char>| {
                if c.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    WB
                } else {
                    ""
                }
            };
            let front = if start { fence(w.chars().next()) } else { "" };
            let back = if end { fence(w.chars().last()) } else { "" };
            format!("{front}{}{back}", regex::escape(w))
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Replaces each span with `§`.
pub fn mask(text: &str, spans: &[Range<usize>]) -> String {
    // Spans come in order but for a unit's mixed kinds: sorted only then.
    let spans = if spans.is_sorted_by_key(|s| s.start) {
        std::borrow::Cow::Borrowed(spans)
    } else {
        let mut sorted = spans.to_vec();
        sorted.sort_by_key(|s| s.start);
        std::borrow::Cow::Owned(sorted)
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans.iter().cloned() {
        if s.start < at {
            continue;
        }
        out.push_str(&text[at..s.start]);
        out.push('§');
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Lower case, no diacritics, single spaces, no trailing punctuation: the
/// form in which contexts and items are matched.
///
/// Runs of ASCII letters, digits and punctuation (most of any key) are
/// lowered and copied as a whole; only the other characters are decoded
/// and looked up.
pub fn fold(text: &str) -> String {
    let latin = transliterate(text);
    let latin = latin.as_ref();
    let bytes = latin.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(latin.len());
    // Whitespace seen since the last character written: one space before
    // the next (none at the start).
    let mut gap = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b > b' ' && b.is_ascii() {
            if gap && !out.is_empty() {
                out.push(b' ');
            }
            gap = false;
            i = lowered_run(bytes, i, &mut out);
            continue;
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            // What `char::is_whitespace` holds in ASCII.
            gap = true;
            i += 1;
            continue;
        }
        let c = latin[i..].chars().next().expect("on a char boundary");
        i += c.len_utf8();
        let mut push = |c: char| {
            if gap && !out.is_empty() {
                out.push(b' ');
            }
            gap = false;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        };
        if c.is_whitespace() {
            gap = true;
        } else if c.is_ascii() || c == '§' {
            // A control character; a masked value (see `mask`), in most keys.
            push(c);
        } else if let Some(plain) = plain_letter(c) {
            // The letters of our languages, without a table look-up.
            plain.chars().for_each(push);
        } else {
            for lower in c.to_lowercase() {
                if lower == 'đ' {
                    push('d');
                    push('j');
                    continue;
                }
                // Canonical decomposition without the combining marks: ë → e, š → s.
                unicode_normalization::char::decompose_canonical(lower, |d| {
                    if !('\u{300}'..='\u{36f}').contains(&d) {
                        push(d);
                    }
                });
            }
        }
    }
    let out = String::from_utf8(out).expect("whole characters were written");
    trim_folded(out, &['"', '“', '”', '„'])
}

/// For reading eight bytes at a time as one `u64` (`lowered_run`, the
/// countries' scan): a one in every byte, and every byte's high bit.
const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = ONES * 0x80;

/// Copies the run of ASCII letters, digits and punctuation starting at
/// `bytes[i]` to `out` in lower case, eight bytes at a time; returns where
/// it ends (at whitespace, a control or a non-ASCII byte, or the end).
fn lowered_run(bytes: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // The run ends at a byte `<= b' '` or not ASCII. The borrow of the
        // subtraction can only mark bytes after the first that ends it.
        let stop = (x.wrapping_sub(ONES * 0x21) & !x | x) & HIGH;
        // Per byte's low seven bits, no carry between them: the high bit is
        // set where `b >= b'A'` and where `b > b'Z'`; capitals get 0x20
        // added. (Bytes not ASCII are past the run's end: dropped.)
        let low = x & !HIGH;
        let capital =
            (low + ONES * (0x80 - u64::from(b'A'))) & !(low + ONES * (0x7f - u64::from(b'Z'))) & HIGH;
        let lower = (x | capital >> 2).to_le_bytes();
        if stop == 0 {
            out.extend_from_slice(&lower);
            i += 8;
            continue;
        }
        // All eight written (one store), the bytes after the run dropped.
        let n = (stop.trailing_zeros() / 8) as usize;
        let len = out.len();
        out.extend_from_slice(&lower);
        out.truncate(len + n);
        return i + n;
    }
    // Fewer than eight bytes left.
    while let Some(&b) = bytes.get(i).filter(|&&b| b > b' ' && b.is_ascii()) {
        out.push(b.to_ascii_lowercase());
        i += 1;
    }
    i
}

/// A folded text without its trailing punctuation and enclosing quotes,
/// trimmed in place (no second string).
fn trim_folded(mut out: String, quotes: &[char]) -> String {
    let end = out.trim_end_matches(['.', ';', ':', ',', ' ']).len();
    out.truncate(end);
    // Most texts are not quoted: asked with one character each.
    if out.ends_with(quotes) {
        let end = out.trim_end_matches(quotes).len();
        out.truncate(end);
    }
    if out.starts_with(quotes) {
        let start = out.len() - out.trim_start_matches(quotes).len();
        out.drain(..start);
    }
    out
}

/// The folded form of the accented letters of Albanian and Serbian Latin
/// (the same as lower case and decomposition give, see `fold`).
fn plain_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'ë' | 'Ë' => "e",
        'ç' | 'Ç' | 'č' | 'Č' | 'ć' | 'Ć' => "c",
        'š' | 'Š' => "s",
        'ž' | 'Ž' => "z",
        'đ' | 'Đ' => "dj",
        _ => return None,
    })
}

/// The part of `original` that `part` (a slice of `latin`, the
/// transliteration of `original`) was made from: a Cyrillic page's
/// contexts are shown in Cyrillic, though matched in Latin.
fn in_page_script(latin: &str, original: &str, part: &str) -> String {
    if latin.len() == original.len() && latin == original {
        return part.to_string();
    }
    let start = part.as_ptr() as usize - latin.as_ptr() as usize;
    let end = start + part.len();
    let (mut from, mut to) = (None, None);
    let mut at = 0;
    for (i, c) in original.char_indices() {
        if at == start {
            from.get_or_insert(i);
        }
        if at == end {
            to = Some(i);
            break;
        }
        at += latin_of(c).map_or(c.len_utf8(), str::len);
    }
    if at == end && to.is_none() {
        to = Some(original.len());
    }
    match (from.or((start == end).then_some(original.len())), to) {
        (Some(from), Some(to)) if from <= to => original[from..to].to_string(),
        // Not on a letter boundary (cannot happen for slices of `latin`).
        _ => part.to_string(),
    }
}

/// The Latin letters of a Serbian Cyrillic letter (lower case), if it is one.
fn latin_of(c: char) -> Option<&'static str> {
    // Serbian Cyrillic capitals sit at a fixed distance from their
    // small letters (А–Я +0x20, Ѐ–Џ +0x50): no Unicode tables needed.
    let lower = match c {
        '\u{410}'..='\u{42f}' => char::from_u32(c as u32 + 0x20).unwrap_or(c),
        '\u{400}'..='\u{40f}' => char::from_u32(c as u32 + 0x50).unwrap_or(c),
        _ => c,
    };
    Some(match lower {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'ђ' => "đ",
        'е' => "e",
        'ж' => "ž",
        'з' => "z",
        'и' => "i",
        'ј' => "j",
        'к' => "k",
        'л' => "l",
        'љ' => "lj",
        'м' => "m",
        'н' => "n",
        'њ' => "nj",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'ћ' => "ć",
        'у' => "u",
        'ф' => "f",
        'х' => "h",
        'ц' => "c",
        'ч' => "č",
        'џ' => "dž",
        'ш' => "š",
        _ => return None,
    })
}

/// Each Serbian Cyrillic letter's Latin as `transliterate` writes it, by
/// code point from U+0400 (capitals capitalised: "Љ" → "Lj").
static LATIN: LazyLock<Vec<Option<String>>> = LazyLock::new(|| {
    (0x400..0x460)
        .map(|code| {
            let c = char::from_u32(code)?;
            let latin = latin_of(c)?;
            // Serbian capitals are U+0400–U+042F (see `latin_of`): the
            // first letter only is made upper case.
            Some(if c <= '\u{42f}' {
                let mut it = latin.chars();
                it.next()
                    .map(|first| first.to_uppercase().chain(it).collect())
                    .unwrap_or_default()
            } else {
                latin.to_string()
            })
        })
        .collect()
});

/// Serbian Cyrillic → Latin (Gaj's alphabet); other text passes unchanged.
pub fn transliterate(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    // The letters are U+0400–U+045F: two bytes, the first 0xD0 or 0xD1
    // (never a continuation byte). Everything between is copied as it is.
    let Some(first) = memchr::memchr2(0xd0, 0xd1, bytes) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let latin = &*LATIN;
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let (mut copied, mut at) = (0, first);
    loop {
        out.push_str(&text[copied..at]);
        // A word's letters one after another; the text between words by
        // `memchr2`.
        while let Some(&[lead @ (0xd0 | 0xd1), next]) = bytes.get(at..at + 2) {
            let code = usize::from(lead & 0x1f) << 6 | usize::from(next & 0x3f);
            match latin.get(code - 0x400) {
                Some(Some(letter)) => out.push_str(letter),
                _ => out.push_str(&text[at..at + 2]),
            }
            at += 2;
        }
        copied = at;
        match memchr::memchr2(0xd0, 0xd1, &bytes[at..]) {
            Some(next) => at += next,
            None => break,
        }
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serbian Cyrillic letters become Gaj's Latin, a capital its first
    /// letter capitalised; other Cyrillic (Ѣ, Ґ) and other text stay as
    /// they are; text with no Cyrillic is not copied.
    #[test]
    fn serbian_cyrillic_is_written_in_latin() {
        assert_eq!(
            transliterate("Љиљана, ЏЕМ, ђак ће шест (6) месеци; Ѣ Ґ € ë"),
            "Ljiljana, DžEM, đak će šest (6) meseci; Ѣ Ґ € ë"
        );
        assert!(matches!(
            transliterate("Kosovo: 90 ditë, €50"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// The cases in `tests/fixtures/facts.toml`: `[kind] lang = [[text, values…], …]`.
    #[test]
    fn cases_from_the_data_file() {
        type Cases = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<Vec<String>>>>;
        let data: Cases =
            toml::from_str(include_str!("../../tests/fixtures/facts.toml")).expect("facts.toml");
        let mut failed = Vec::new();
        let mut count = 0;
        for (kind, langs) in &data {
            for (lang, cases) in langs {
                // Issue 15: each new kind in each language, at least 15 cases.
                if matches!(kind.as_str(), "age" | "date" | "country") {
                    assert!(
                        cases.len() >= 15,
                        "facts.toml: only {} {kind} cases in {lang}",
                        cases.len()
                    );
                }
                for case in cases {
                    let (text, want) = case.split_first().expect("a case has its text");
                    let got = match kind.as_str() {
                        "fee" => fees::tests::norm(text),
                        "duration" => durations::tests::norm(text),
                        "age" => ages::tests::norm(text),
                        "date" => dates::tests::norm(text),
                        "country" => parse(text).countries.iter().map(|c| c.code.to_string()).collect(),
                        other => panic!("facts.toml: unknown kind {other}"),
                    };
                    count += 1;
                    if got != want {
                        failed.push(format!("{kind}.{lang}: {text:?}: want {want:?}, got {got:?}"));
                    }
                }
            }
            if matches!(kind.as_str(), "age" | "date" | "country") {
                for lang in ["en", "sq", "sr-Latn", "sr-Cyrl"] {
                    assert!(langs.contains_key(lang), "facts.toml: no {kind} cases in {lang}");
                }
            }
        }
        assert!(count >= 290, "only {count} cases read");
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn facts_with_context() {
        let f = parse(
            "## Taksa\nLloji i lejes | Taksa\nLeje-qëndrimi i përkohshëm | 50 €\nVazhdimi i lejes | 30 €\n\
             Leja lëshohet për një vit. Kërkesa shqyrtohet brenda 30 ditëve.\n\
             ## Dokumentet\nJu duhet të sillni:\n- Pasaportë e vlefshme\n- Sigurimin shëndetësor\n",
        );
        let fees: Vec<(String, &str)> = f
            .fees
            .iter()
            .map(|x| (x.value.to_string(), x.context.as_str()))
            .collect();
        assert_eq!(
            fees,
            [
                ("50 EUR".to_string(), "Leje-qëndrimi i përkohshëm"),
                ("30 EUR".to_string(), "Vazhdimi i lejes")
            ]
        );
        let durs: Vec<String> = f.durations.iter().map(|x| x.value.to_string()).collect();
        assert_eq!(durs, ["1 years", "30 days"]);
        assert_eq!(f.durations[1].context, "Kërkesa shqyrtohet brenda 30 ditëve.");
        let docs: Vec<(&str, &str)> = f
            .documents
            .iter()
            .map(|d| (d.text.as_str(), d.context.as_str()))
            .collect();
        assert_eq!(
            docs,
            [
                ("Pasaportë e vlefshme", "Ju duhet të sillni:"),
                ("Sigurimin shëndetësor", "Ju duhet të sillni:")
            ]
        );
    }

    /// Issue 12: a Cyrillic page's contexts came out in Latin ("Where:
    /// Potrebna dokumenta" while the page says "Потребна документа").
    #[test]
    fn contexts_are_shown_in_the_page_s_own_script() {
        let f = parse(
            "## Потребна документа\n- Доказ о обезбеђеном смештају\nТакса | 1.200 динара\nЉубазно: боравак до 90 дана.\n",
        );
        assert_eq!(f.documents[0].context, "Потребна документа");
        assert_eq!(f.documents[0].text, "Доказ о обезбеђеном смештају");
        assert_eq!(f.fees[0].context, "Такса");
        assert_eq!(f.durations[0].context, "Љубазно: боравак до 90 дана.");
        // Matched in Latin all the same.
        assert_eq!(f.fees[0].key, "taksa");
        let v = crate::compare::compare(
            "## Потребна документа\n- Пасош\nТакса | 1.200 динара\n",
            "## Potrebna dokumenta\n- Pasoš\nTaksa | 1.200 dinara\n",
        );
        assert!(v.is_none_or(|v| !v.material), "a script switch is no change");
    }

    #[test]
    fn cyrillic_equals_latin() {
        let cyr = parse(
            "Такса износи 15.000 динара.\nБоравак до 90 дана у периоду од шест месеци.\n- Важећа путна исправа\n",
        );
        let lat = parse(
            "Taksa iznosi 15.000 dinara.\nBoravak do 90 dana u periodu od šest meseci.\n- Važeća putna isprava\n",
        );
        let values = |f: &Facts| -> Vec<String> {
            f.fees
                .iter()
                .chain(&f.durations)
                .map(|x| format!("{}|{}", x.value, x.key))
                .chain(f.documents.iter().map(|d| d.key.clone()))
                .collect()
        };
        assert_eq!(values(&cyr), values(&lat));
        assert_eq!(
            cyr.fees[0].value,
            Value::Money {
                amount: "15000".into(),
                currency: Some("RSD")
            }
        );
        assert_eq!(
            lat.durations
                .iter()
                .map(|d| d.value.to_string())
                .collect::<Vec<_>>(),
            ["90 days", "6 months"]
        );
    }

    /// `fold`'s shortcut for the accented letters of our languages gives
    /// what lower case and canonical decomposition give.
    #[test]
    fn folded_accented_letters_equal_their_decomposition() {
        for c in "ëËçÇčČćĆšŠžŽđĐ".chars() {
            let mut want = String::new();
            for lower in c.to_lowercase() {
                if lower == 'đ' {
                    want.push_str("dj");
                    continue;
                }
                unicode_normalization::char::decompose_canonical(lower, |d| {
                    if !('\u{300}'..='\u{36f}').contains(&d) {
                        want.push(d);
                    }
                });
            }
            assert_eq!(plain_letter(c), Some(want.as_str()), "{c}");
            assert_eq!(fold(&format!("A{c}b")), format!("a{want}b"), "{c}");
        }
    }

    /// ASCII bytes fold as bytes, the rest by character: spaces of any
    /// kind are one, quotes and trailing punctuation go, `§` stays.
    #[test]
    fn ascii_and_other_text_fold_alike() {
        for (text, want) in [
            ("Proof of  Health\tInsurance.", "proof of health insurance"),
            ("  \"Valid Passport\";: ", "valid passport"),
            ("A\x0bB\x0cC\rD", "a b c d"),
            ("U.S. citizens, 90 DAYS...", "u.s. citizens, 90 days"),
            ("", ""),
            (" . ", ""),
            ("Fee § for  § days §.", "fee § for § days §"),
            ("50\u{a0}§", "50 §"),
            ("Ç§", "c§"),
            ("„Pasaportë e vlefshme“", "pasaporte e vlefshme"),
            ("Важећи  ПАСОШ.", "vazeci pasos"),
        ] {
            assert_eq!(fold(text), want, "{text:?}");
        }
    }

    /// A run is lowered eight bytes at a time as byte by byte: every kind
    /// of byte (the edges of the capitals, of what ends a run) at every
    /// place of runs shorter and longer than eight.
    #[test]
    fn runs_are_lowered_eight_bytes_at_a_time() {
        let by_byte = |bytes: &[u8], i: usize| {
            let run: Vec<u8> = bytes[i..]
                .iter()
                .take_while(|&&b| b > b' ' && b.is_ascii())
                .map(u8::to_ascii_lowercase)
                .collect();
            (i + run.len(), run)
        };
        let specials: &[&[u8]] = &[
            b"@",
            b"A",
            b"Z",
            b"[",
            b"`",
            b"a",
            b"z",
            b"!",
            b"~",
            b"\x7f",
            b" ",
            b"\x20",
            b"\x21",
            b"\t",
            b"\x01",
            "ë".as_bytes(),
            "€".as_bytes(),
        ];
        for len in 0..20 {
            for at in 0..len {
                for special in specials {
                    let mut bytes = b"Ab".repeat(len)[..len].to_vec();
                    bytes.splice(at..at + 1, special.iter().copied());
                    for start in 0..bytes.len().min(3) {
                        let mut out = Vec::new();
                        let end = lowered_run(&bytes, start, &mut out);
                        assert_eq!((end, out), by_byte(&bytes, start), "{bytes:?} from {start}");
                    }
                }
            }
        }
    }

    #[test]
    fn free_takes_page_currency() {
        let f = parse("Permit | 50 €\nChildren | free of charge\n");
        assert_eq!(f.fees[1].value.to_string(), "0 EUR");
    }

    /// Lines split as the standard library splits them.
    #[test]
    fn lines_are_split_as_str_lines() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\r\nb",
            "a\r",
            "a\n\nb\r\n",
            "\r\n\r\n",
            "ë\nж\r\n€",
        ] {
            assert_eq!(
                lines_of(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    /// A row's label is its text up to the first `" | "`, as splitting
    /// there gives it; a line without one is no row.
    #[test]
    fn row_label_is_the_first_cell() {
        for line in [
            "Fee | 50 €",
            "a|b | c",
            "x || y | z",
            " | ",
            "| a | b",
            "a | | b",
            "a |b",
            "a| b",
            "|",
            "",
            "no row",
            "ë | ж",
        ] {
            let split = line.contains(" | ").then(|| line.split(" | ").next().unwrap());
            assert_eq!(row_label(line), split, "{line:?}");
        }
    }

    #[test]
    fn sentence_split() {
        assert_eq!(
            sentences(
                "U.S. citizens need a passport. They may need documents. Published in No. 119 of 2014."
            )
            .collect::<Vec<_>>(),
            [
                "U.S. citizens need a passport.",
                "They may need documents.",
                "Published in No. 119 of 2014."
            ]
        );
        // Every mark, in every order (`;` is searched apart from the others).
        assert_eq!(
            sentences("Bring a form; Pay the fee! Wait? Go on. Done; End; Then. Stop; a; b! C")
                .collect::<Vec<_>>(),
            [
                "Bring a form;",
                "Pay the fee!",
                "Wait?",
                "Go on.",
                "Done;",
                "End;",
                "Then.",
                "Stop; a; b!",
                "C"
            ]
        );
    }
}
