//! Validated newtypes of the grammar: a value of these types is always
//! well-formed, because the only way to make one is through its check.

use crate::lexer::{Cursor, LexResult, is_tag_char};
use crate::utf7;

/// Most ranges in one sequence set; the command line bound keeps it far
/// smaller in practice, this bounds the work per set.
pub const MAX_SEQ_RANGES: usize = 4096;

/// A command tag (RFC 9051 9: 1*<any ASTRING-CHAR except "+">).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(s: &str) -> Option<Tag> {
        (!s.is_empty() && s.bytes().all(is_tag_char)).then(|| Tag(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a tag at the cursor.
    pub fn parse(c: &mut Cursor<'_>) -> LexResult<Tag> {
        let t = c.take_while(is_tag_char);
        if t.is_empty() {
            return Err("missing or invalid tag");
        }
        std::str::from_utf8(t)
            .ok()
            .and_then(Tag::new)
            .ok_or("invalid tag")
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox name in its internal form: UTF-8, "INBOX" in canonical case,
/// no control characters. On the wire it is UTF-8 for IMAP4rev2 and UTF8
/// clients, modified UTF-7 otherwise ([`Mailbox::to_wire`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(String);

impl Mailbox {
    /// Checks an internal-form name.
    pub fn new(name: &str) -> Option<Mailbox> {
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return None;
        }
        if name.eq_ignore_ascii_case("INBOX") {
            return Some(Mailbox("INBOX".into()));
        }
        // "inbox/x" is INBOX's child (RFC 9051 5.1: INBOX is
        // case-insensitive, also as a hierarchy prefix).
        if name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("INBOX/"))
        {
            return Some(Mailbox(format!(
                "INBOX/{}",
                name.get(6..).unwrap_or_default()
            )));
        }
        Some(Mailbox(name.to_string()))
    }

    /// Converts a wire name: UTF-8 when `utf8`, else modified UTF-7.
    pub fn from_wire(bytes: &[u8], utf8: bool) -> Result<Mailbox, &'static str> {
        let name = if utf8 {
            String::from_utf8(bytes.to_vec()).map_err(|_| "mailbox name is not UTF-8")?
        } else {
            utf7::decode(bytes).ok_or(crate::command::NOT_MUTF7)?
        };
        Mailbox::new(&name).ok_or("invalid mailbox name")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The name as sent to a client.
    pub fn to_wire(&self, utf8: bool) -> String {
        wire_name(&self.0, utf8)
    }
}

/// An internal-form name as sent to a client.
pub fn wire_name(name: &str, utf8: bool) -> String {
    if utf8 {
        name.to_string()
    } else {
        utf7::encode(name)
    }
}

/// One end of a sequence range: a number or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    /// The largest number in use (RFC 9051 9: seq-number "*").
    Star,
}

impl SeqNum {
    fn resolve(self, max: u32) -> u32 {
        match self {
            SeqNum::Value(n) => n,
            SeqNum::Star => max,
        }
    }
}

/// A sequence set (RFC 9051 9: sequence-set), or `$`, the saved search
/// result (RFC 5182, part of IMAP4rev2's base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqSet {
    Ranges(Vec<(SeqNum, SeqNum)>),
    Saved,
}

impl SeqSet {
    pub fn parse(c: &mut Cursor<'_>) -> LexResult<SeqSet> {
        if c.eat(b'$') {
            return Ok(SeqSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            if ranges.len() >= MAX_SEQ_RANGES {
                return Err("sequence set too long");
            }
            let a = seq_num(c)?;
            let b = if c.eat(b':') { seq_num(c)? } else { a };
            ranges.push((a, b));
            if !c.eat(b',') {
                return Ok(SeqSet::Ranges(ranges));
            }
        }
    }

    /// The set as sorted, merged, inclusive intervals, with `*` as `max`.
    /// Never allocates per number: `1:4294967295` is one interval.
    /// `Saved` resolves to nothing (the session substitutes it first).
    pub fn intervals(&self, max: u32) -> Vec<(u32, u32)> {
        let SeqSet::Ranges(ranges) = self else {
            return Vec::new();
        };
        let mut v: Vec<(u32, u32)> = ranges
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.resolve(max), b.resolve(max));
                (a.min(b), a.max(b))
            })
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }

    /// The largest explicit number in the set (to check sequence numbers
    /// against the mailbox size); `*` does not count.
    pub fn max_value(&self) -> u32 {
        match self {
            SeqSet::Ranges(r) => r
                .iter()
                .flat_map(|&(a, b)| [a, b])
                .filter_map(|n| match n {
                    SeqNum::Value(v) => Some(v),
                    SeqNum::Star => None,
                })
                .max()
                .unwrap_or(0),
            SeqSet::Saved => 0,
        }
    }

    /// A set of explicit numbers (for `$` substitution).
    pub fn from_numbers(nums: &[u32]) -> SeqSet {
        SeqSet::Ranges(
            compress(nums)
                .into_iter()
                .map(|(a, b)| (SeqNum::Value(a), SeqNum::Value(b)))
                .collect(),
        )
    }
}

fn seq_num(c: &mut Cursor<'_>) -> LexResult<SeqNum> {
    if c.eat(b'*') {
        Ok(SeqNum::Star)
    } else {
        c.nz_number().map(SeqNum::Value)
    }
}

/// True if `n` is in the sorted, merged `intervals`.
pub fn in_intervals(intervals: &[(u32, u32)], n: u32) -> bool {
    let i = intervals.partition_point(|&(_, b)| b < n);
    intervals.get(i).is_some_and(|&(a, _)| a <= n)
}

/// Sorted numbers as runs `(first, last)`.
pub fn compress(nums: &[u32]) -> Vec<(u32, u32)> {
    let mut v = nums.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in v {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(n) => last.1 = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// Numbers in IMAP set syntax, runs compressed ("1:3,7"), in the given
/// order (COPYUID pairs source and destination by position, RFC 4315).
pub fn format_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = nums.get(i) {
        let mut j = i;
        while let (Some(&x), Some(&y)) = (nums.get(j), nums.get(j + 1)) {
            if x.checked_add(1) == Some(y) {
                j += 1;
            } else {
                break;
            }
        }
        if !out.is_empty() {
            out.push(',');
        }
        let end = nums.get(j).copied().unwrap_or(start);
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i = j + 1;
    }
    out
}

/// The sorted, merged `intervals` without the numbers in `remove`
/// (ascending): what is left as runs. The work is bounded by the two
/// inputs, never by the span of an interval (`1:4294967295` is one run).
pub fn subtract(intervals: &[(u32, u32)], remove: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut r = 0;
    for &(a, b) in intervals {
        let mut start = a;
        // Skip what lies before this interval.
        while remove.get(r).is_some_and(|&x| x < a) {
            r += 1;
        }
        let mut open = true;
        while let Some(&x) = remove.get(r) {
            if x > b {
                break;
            }
            if x > start {
                out.push((start, x - 1));
            }
            r += 1;
            match x.checked_add(1) {
                Some(next) if next <= b => start = next,
                _ => {
                    open = false;
                    break;
                }
            }
        }
        if open && start <= b {
            out.push((start, b));
        }
    }
    out
}

/// Runs `(first, last)` in IMAP set syntax ("1:3,7").
pub fn format_runs(runs: &[(u32, u32)]) -> String {
    let parts: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect();
    parts.join(",")
}

/// A flag or keyword as given by a client (RFC 9051 9: flag). System flags
/// are returned in canonical case; `\Recent` cannot be stored and `\*` is
/// not a flag: the caller decides what to do with them.
pub fn parse_flag(c: &mut Cursor<'_>) -> LexResult<String> {
    if c.eat(b'\\') {
        let a = c.atom()?;
        for sys in ["Answered", "Flagged", "Deleted", "Seen", "Draft", "Recent"] {
            if a.eq_ignore_ascii_case(sys) {
                return Ok(format!("\\{sys}"));
            }
        }
        Err("unknown system flag")
    } else {
        c.atom().map(str::to_string)
    }
}

/// Most flags one list may hold: a flag and its separator take at least two
/// octets, so no command line of [`crate::framer::MAX_LINE`] holds more.
/// The store's own, lower limit is a `NO [LIMIT]` (RFC 5530 3), which a
/// parse error here could not give: a well-formed list must reach it.
pub const MAX_FLAGS_PARSED: usize = crate::framer::MAX_LINE / 2;

/// A parenthesised flag list.
pub fn parse_flag_list(c: &mut Cursor<'_>) -> LexResult<Vec<String>> {
    c.paren_list(true, MAX_FLAGS_PARSED, parse_flag)
}

#[cfg(test)]
mod tests {
    use super::{format_runs, subtract};

    #[test]
    fn subtract_leaves_runs_and_handles_the_edges() {
        assert_eq!(subtract(&[(1, 10)], &[]), vec![(1, 10)]);
        assert_eq!(subtract(&[(1, 10)], &[1, 5, 10]), vec![(2, 4), (6, 9)]);
        assert_eq!(
            subtract(&[(1, 3), (7, 9)], &[2, 3, 4, 8]),
            vec![(1, 1), (7, 7), (9, 9)]
        );
        assert_eq!(subtract(&[(5, 5)], &[5]), Vec::<(u32, u32)>::new());
        assert_eq!(
            subtract(&[(1, u32::MAX)], &[u32::MAX]),
            vec![(1, u32::MAX - 1)]
        );
        assert_eq!(subtract(&[(2, 4)], &[1, 9]), vec![(2, 4)]);
        assert_eq!(format_runs(&[(1, 1), (3, 9)]), "1,3:9");
        assert_eq!(format_runs(&[]), "");
    }

    use super::*;

    fn set(s: &str) -> SeqSet {
        SeqSet::parse(&mut Cursor::new(s.as_bytes())).unwrap()
    }

    #[test]
    fn huge_ranges_do_not_allocate_per_number() {
        assert_eq!(set("1:4294967295").intervals(10), vec![(1, 4294967295)]);
        assert_eq!(set("*:*").intervals(7), vec![(7, 7)]);
        assert_eq!(set("5:2,9,3:*").intervals(12), vec![(2, 12)]);
    }

    #[test]
    fn membership_and_formatting() {
        let iv = set("1:3,7,10:12").intervals(20);
        assert!(in_intervals(&iv, 2) && in_intervals(&iv, 7) && in_intervals(&iv, 12));
        assert!(!in_intervals(&iv, 4) && !in_intervals(&iv, 13) && !in_intervals(&iv, 0));
        assert_eq!(format_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(format_set(&[5, 3]), "5,3");
    }

    #[test]
    fn zero_and_garbage_are_rejected() {
        assert!(SeqSet::parse(&mut Cursor::new(b"0")).is_err());
        assert!(SeqSet::parse(&mut Cursor::new(b"a")).is_err());
    }

    #[test]
    fn mailbox_names_normalise_inbox_and_decode_utf7() {
        assert_eq!(Mailbox::new("inbox").unwrap().as_str(), "INBOX");
        assert_eq!(Mailbox::new("Inbox/Sub").unwrap().as_str(), "INBOX/Sub");
        assert_eq!(
            Mailbox::from_wire(b"Entw&APw-rfe", false).unwrap().as_str(),
            "Entw\u{fc}rfe"
        );
        assert!(Mailbox::from_wire(b"caf\xc3\xa9", false).is_err());
        assert!(Mailbox::from_wire(b"caf\xc3", true).is_err());
        assert!(Mailbox::new("a\u{0}b").is_none());
    }
}
