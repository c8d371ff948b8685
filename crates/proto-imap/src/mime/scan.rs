//! The MIME structure of a big message in bounded memory (issue 19): a
//! streaming scan over chunks of the stored message that finds what
//! [`Part::parse`](super::Part::parse) finds (RFC 2045, RFC 2046 5.1.1
//! delimiters, RFC 9051 6.4.5 numbering) without holding the message: the
//! header of each part is kept (at most [`MAX_SCAN_HEADER`] octets), its
//! body is only looked at line by line for delimiters, line breaks and
//! its size. The result is the cache entry ([`Cached`]): ENVELOPE,
//! BODYSTRUCTURE and the part offsets, equal to the whole parse's (the
//! MIME stress test checks it on every mutant), except for a header
//! longer than [`MAX_SCAN_HEADER`], whose fields past it are not seen.
//!
//! It follows the whole parser's rules one for one: a part ends before
//! the line break that precedes the next delimiter line; the delimiters
//! of an outer multipart win over an inner one's (the outer body is split
//! first); a blank line ends a header only if its line break is inside
//! the part; a multipart without parts is a text part; depth and part
//! counts stop where [`MAX_DEPTH`] and [`MAX_PARTS`] stop the parser.
//!
//! [`Scanner::finish_binary`] ends the same scan with the leaves whose
//! NUL octets must be shown in base64 (RFC 3516 4.3): the first pass of
//! the streamed re-encoding ([`BinaryEncoder`](super::BinaryEncoder)).

use super::cache::Cached;
use super::offsets::{Cte, MapKind, PartMap};
use super::structure::{Entity, Shape};
use super::{ContentType, MAX_DEPTH, MAX_PARTS, default_type, parse_content_type, parse_fields};

/// Most octets of one part's header the scan keeps (and of one line it
/// looks at). RFC 5322 2.1.1 limits lines to 998 octets, not headers;
/// real part headers are a few hundred octets, top-level ones a few KiB.
pub const MAX_SCAN_HEADER: usize = 64 * 1024;

/// Header octets kept over all the parts of one message: what a scan
/// holds at most, whatever the message (each part's header up to
/// [`MAX_SCAN_HEADER`], [`MAX_PARTS`] parts, would be 64 MiB). Far more
/// than mail has (a thousand parts with 4 KiB headers each); past it the
/// scan gives up: [`Scanner::finish`] says to read the message the
/// whole-message way and [`Scanner::finish_binary`] re-encodes nothing.
pub const MAX_SCAN_HEADERS: usize = 4 * 1024 * 1024;

/// What a scan may still keep: parts (as the parser's [`MAX_PARTS`]) and
/// header octets ([`MAX_SCAN_HEADERS`]); `overflow` once a header was
/// cut for the second.
#[derive(Debug, Clone, Copy)]
struct Budget {
    parts: usize,
    headers: usize,
    overflow: bool,
}

/// One part found by the scan.
#[derive(Debug)]
pub struct ScannedPart {
    start: u64,
    body: u64,
    end: u64,
    header: Vec<u8>,
    content_type: ContentType,
    /// Line breaks before `body` and before `end`, and whether the body's
    /// last octet is a line feed: the body's line count.
    lf_body: u64,
    lf_end: u64,
    ends_with_lf: bool,
    kind: Kind,
    depth: usize,
    phase: Phase,
    /// A NUL octet in the body (then FETCH shows it re-encoded, RFC 3516
    /// 4.3, and the scan's result does not describe what is shown).
    nul: bool,
}

#[derive(Debug)]
enum Kind {
    Leaf,
    Multipart {
        boundary: Vec<u8>,
        children: Vec<ScannedPart>,
        /// Parts split so far (children dropped past the budget count).
        split: usize,
        /// A part is open (after a delimiter).
        open: bool,
        /// The close delimiter was seen, or MAX_PARTS parts.
        closed: bool,
        /// The open part was not parsed (no budget left).
        ghost: bool,
    },
    Message(Box<ScannedPart>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    /// A blank line was seen; it ends the header if its line break turns
    /// out to be inside the part (the next line is not a delimiter).
    BlankSeen,
    Body,
}

impl Entity for ScannedPart {
    fn field(&self, name: &str) -> Option<&[u8]> {
        let fields = parse_fields(&self.header);
        let f = fields
            .into_iter()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))?;
        // The value borrows the header, not the field list.
        let off = (f.value.as_ptr() as usize).checked_sub(self.header.as_ptr() as usize)?;
        self.header.get(off..off + f.value.len())
    }
    fn content_type(&self) -> &ContentType {
        &self.content_type
    }
    fn body_size(&self) -> u64 {
        self.end - self.body
    }
    fn body_lines(&self) -> u64 {
        let n = self.lf_end - self.lf_body;
        if self.end > self.body && !self.ends_with_lf {
            n + 1
        } else {
            n
        }
    }
    fn children(&self) -> Shape<'_, Self> {
        match &self.kind {
            Kind::Leaf => Shape::Leaf,
            Kind::Multipart { children, .. } => Shape::Multipart(children),
            Kind::Message(m) => Shape::Message(m),
        }
    }
}

impl ScannedPart {
    fn new(start: u64, lf: u64, in_digest: bool, depth: usize) -> ScannedPart {
        ScannedPart {
            start,
            body: start,
            end: start,
            header: Vec::new(),
            content_type: default_type(in_digest),
            lf_body: lf,
            lf_end: lf,
            ends_with_lf: false,
            kind: Kind::Leaf,
            depth,
            phase: Phase::Header,
            nul: false,
        }
    }

    fn map(&self) -> PartMap {
        PartMap {
            start: self.start,
            body: self.body,
            end: self.end,
            cte: Cte::of(&self.encoding()),
            kind: match &self.kind {
                Kind::Leaf => MapKind::Leaf,
                Kind::Multipart { children, .. } => {
                    MapKind::Multipart(children.iter().map(ScannedPart::map).collect())
                }
                Kind::Message(m) => MapKind::Message(Box::new(m.map())),
            },
        }
    }

    /// True if a leaf shown as stored holds NUL (what
    /// `encode_binary_parts` re-encodes).
    fn shown_reencoded(&self) -> bool {
        match &self.kind {
            Kind::Leaf => self.nul && Cte::of(&self.encoding()) == Cte::Identity,
            Kind::Multipart { children, .. } => children.iter().any(ScannedPart::shown_reencoded),
            Kind::Message(m) => m.shown_reencoded(),
        }
    }
}

/// A line of the message: its start, its first octets (up to
/// [`MAX_SCAN_HEADER`]) without the line break, its length, where its
/// trailing blanks start, and its line break (0, 1 for LF, 2 for CRLF).
#[derive(Debug, Default)]
struct Line {
    start: u64,
    head: Vec<u8>,
    len: u64,
    blank_from: u64,
    brk: u64,
    nul: bool,
    /// The line's last octet so far.
    last: u8,
}

impl Line {
    /// The delimiter test of the whole parser: `--boundary`, optionally
    /// `--`, then only blanks. Some(true) for the close delimiter.
    fn delimiter(&self, boundary: &[u8]) -> Option<bool> {
        let n = 2 + boundary.len() as u64;
        let rest = self.head.strip_prefix(b"--")?.strip_prefix(boundary)?;
        let close = rest.starts_with(b"--") && (self.head.len() as u64) >= n + 2;
        let after = if close { n + 2 } else { n };
        (self.blank_from <= after).then_some(close)
    }
}

/// The scanner: feed it the message in chunks, in order, then finish.
#[derive(Debug)]
pub struct Scanner {
    root: ScannedPart,
    line: Line,
    pos: u64,
    /// Line feeds before `line.start`.
    lf: u64,
    /// The previous line's break, not yet known to be inside its part.
    pending_brk: u64,
    /// Whether the octet before `line.start - pending_brk` is a line
    /// feed (for a body ending there).
    before_pending_lf: bool,
    budget: Budget,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            root: ScannedPart::new(0, 0, false, 0),
            line: Line::default(),
            pos: 0,
            lf: 0,
            pending_brk: 0,
            before_pending_lf: false,
            budget: Budget {
                parts: MAX_PARTS - 1,
                headers: MAX_SCAN_HEADERS,
                overflow: false,
            },
        }
    }

    /// The next octets of the message.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let (piece, ends) = match chunk.iter().position(|&b| b == b'\n') {
                Some(nl) => (chunk.get(..nl).unwrap_or_default(), true),
                None => (chunk, false),
            };
            let room = MAX_SCAN_HEADER.saturating_sub(self.line.head.len());
            self.line
                .head
                .extend_from_slice(piece.get(..room.min(piece.len())).unwrap_or_default());
            if let Some(p) = piece.iter().rposition(|b| !b.is_ascii_whitespace()) {
                self.line.blank_from = self.line.len + p as u64 + 1;
            }
            self.line.nul |= piece.contains(&0);
            if let Some(&b) = piece.last() {
                self.line.last = b;
            }
            self.line.len += piece.len() as u64;
            self.pos += piece.len() as u64;
            if !ends {
                return;
            }
            self.pos += 1;
            chunk = chunk.get(piece.len() + 1..).unwrap_or_default();
            // The line break is CRLF when the line's last octet is CR.
            let cr = self.line.len > 0 && self.line.last == b'\r';
            self.line.brk = if cr { 2 } else { 1 };
            if cr {
                self.line.len -= 1;
                if self.line.head.len() as u64 > self.line.len {
                    self.line.head.pop();
                }
                self.line.blank_from = self.line.blank_from.min(self.line.len);
            }
            self.end_line();
        }
    }

    /// Ends the message: the parts still open end at its end.
    pub fn finish(self) -> Option<Cached> {
        let (root, overflow) = self.close_all();
        if overflow || root.shown_reencoded() {
            return None;
        }
        Some(Cached {
            envelope: super::envelope(&root),
            structure: super::body_structure(&root),
            map: Some(root.map()),
        })
    }

    /// Ends the message and says which leaves
    /// [`encode_binary_parts`](super::encode_binary_parts) re-encodes (those
    /// with an identity encoding whose body holds NUL, RFC 3516 4.3), in
    /// message order: the plan of a [`BinaryEncoder`](super::BinaryEncoder).
    /// A leaf whose header is longer than [`MAX_SCAN_HEADER`] is left as it
    /// is (its header was not kept whole, so it cannot be rewritten); FETCH
    /// re-encodes such a message when it shows it.
    pub fn finish_binary(self) -> Vec<BinaryLeaf> {
        let (root, overflow) = self.close_all();
        // A part whose header was cut (over MAX_SCAN_HEADER, or past
        // MAX_SCAN_HEADERS) may hold fields the scan did not see, a
        // boundary among them: the tree can differ from the one
        // encode_binary_parts re-encodes by, so nothing is re-encoded.
        if overflow || any_cut(&root) {
            return Vec::new();
        }
        let mut leaves = Vec::new();
        binary_leaves(root, true, &mut leaves);
        leaves
    }

    /// The part tree with every open part closed at the message's end,
    /// and whether a header was cut for [`MAX_SCAN_HEADERS`].
    fn close_all(mut self) -> (ScannedPart, bool) {
        if self.line.len > 0 {
            // A last line without a line break.
            self.end_line();
        }
        let end = self.pos;
        // The last line break is inside every open part.
        let lf = self.lf;
        // The message's last octet is a line feed when its last line
        // has a break.
        let ends_with_lf = self.pending_brk > 0;
        let brk = self.pending_brk;
        let mut budget = self.budget;
        close(
            &mut self.root,
            end,
            lf,
            ends_with_lf,
            brk,
            true,
            &mut budget,
        );
        (self.root, budget.overflow)
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let next_start = line.start + line.len + line.brk;
        let (brk, lf) = (self.pending_brk, self.lf);
        let before_lf = self.before_pending_lf;
        let mut budget = self.budget;
        dispatch(&mut self.root, &line, brk, lf, before_lf, &mut budget);
        self.budget = budget;
        self.lf += u64::from(line.brk > 0);
        self.pending_brk = line.brk;
        // A line's content never holds a line feed: the octet before its
        // break is one only when the content is empty and a line came
        // before it.
        self.before_pending_lf = line.len == 0 && line.start > 0;
        self.line = Line {
            start: next_start,
            head: line.head,
            ..Line::default()
        };
        self.line.head.clear();
    }
}

/// A leaf to show in base64 (RFC 3516 4.3): its header is
/// `start..body` of the message, its body `body..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryLeaf {
    pub start: u64,
    pub body: u64,
    pub end: u64,
    /// The header octets, `body - start` of them.
    pub header: Vec<u8>,
    /// The leaf is the whole message (its body ends the message, which
    /// keeps a line break of its own after the base64).
    pub root: bool,
}

/// True when a part's header in the tree was not kept whole.
fn any_cut(p: &ScannedPart) -> bool {
    if p.header.len() as u64 != p.body.saturating_sub(p.start) {
        return true;
    }
    match &p.kind {
        Kind::Leaf => false,
        Kind::Multipart { children, .. } => children.iter().any(any_cut),
        Kind::Message(m) => any_cut(m),
    }
}

/// Collects the leaves under `p` that hold NUL and are shown as stored.
fn binary_leaves(p: ScannedPart, root: bool, out: &mut Vec<BinaryLeaf>) {
    match p.kind {
        Kind::Leaf => {
            let whole = p.header.len() as u64 == p.body - p.start;
            if p.nul && whole && Cte::of(&p.encoding()) == Cte::Identity {
                out.push(BinaryLeaf {
                    start: p.start,
                    body: p.body,
                    end: p.end,
                    header: p.header,
                    root,
                });
            }
        }
        Kind::Multipart { children, .. } => {
            for c in children {
                binary_leaves(c, false, out);
            }
        }
        Kind::Message(m) => binary_leaves(*m, false, out),
    }
}

/// Ends `p` (and everything open inside it) at `end`; `brk_inside`: the
/// previous line's break (`brk` octets before `end` when it is cut) is
/// part of `p`.
fn close(
    p: &mut ScannedPart,
    end: u64,
    lf_end: u64,
    ends_with_lf: bool,
    brk: u64,
    brk_inside: bool,
    budget: &mut Budget,
) {
    // A part opened by the delimiter line just before an outer part's
    // end starts after that end, past a line break that is cut off: it is
    // empty, at the end (as the whole parser's `(le + 1).min(len)`).
    p.start = p.start.min(end);
    // An empty part (it starts at `end`) holds no line break.
    let brk_inside = brk_inside && p.start < end;
    match p.phase {
        Phase::Header => {
            if brk_inside && brk > 0 {
                push_header(p, &b"\r\n"[(2 - brk) as usize..], budget);
            }
            p.body = end;
            p.lf_body = lf_end;
            p.phase = Phase::Body;
            settle_type(p, end, lf_end, budget);
        }
        Phase::BlankSeen => {
            if brk_inside {
                push_header(p, &b"\r\n"[(2 - brk) as usize..], budget);
            }
            p.body = end;
            p.lf_body = lf_end;
            p.phase = Phase::Body;
            settle_type(p, end, lf_end, budget);
        }
        Phase::Body => {}
    }
    p.end = end.max(p.body);
    p.lf_end = lf_end;
    p.ends_with_lf = ends_with_lf;
    let broken = match &mut p.kind {
        Kind::Leaf => false,
        Kind::Message(m) => {
            close(m, end, lf_end, ends_with_lf, brk, brk_inside, budget);
            false
        }
        Kind::Multipart {
            children,
            split,
            open,
            ghost,
            ..
        } => {
            if *open {
                *open = false;
                *split += 1;
                if !*ghost && let Some(c) = children.last_mut() {
                    close(c, end, lf_end, ends_with_lf, brk, brk_inside, budget);
                }
            }
            *split == 0
        }
    };
    if broken {
        // Broken multipart: shown as one text part.
        p.content_type = default_type(false);
        p.kind = Kind::Leaf;
    }
}

fn push_header(p: &mut ScannedPart, bytes: &[u8], budget: &mut Budget) {
    let room = MAX_SCAN_HEADER.saturating_sub(p.header.len());
    if room.min(bytes.len()) > budget.headers {
        budget.overflow = true;
    }
    let take = room.min(bytes.len()).min(budget.headers);
    budget.headers -= take;
    p.header
        .extend_from_slice(bytes.get(..take).unwrap_or_default());
}

/// The header is complete: the part's type and what it contains, by the
/// rules of `parse_entity`. A message/rfc822 part's encapsulated message
/// starts at once, at `body`.
fn settle_type(p: &mut ScannedPart, body: u64, lf: u64, budget: &mut Budget) {
    let fields = parse_fields(&p.header);
    if let Some(f) = fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(b"Content-Type"))
    {
        let ct = parse_content_type(f.value);
        if !ct.mtype.is_empty() && !ct.subtype.is_empty() {
            p.content_type = ct;
            let t = &mut p.content_type;
            if t.mtype.eq_ignore_ascii_case("text") && t.param("charset").is_none() {
                t.params.insert(0, ("charset".into(), "us-ascii".into()));
            }
        }
    }
    let ct = p.content_type.clone();
    let multipart = ct.mtype.eq_ignore_ascii_case("multipart");
    if p.depth >= MAX_DEPTH || budget.parts == 0 {
        if multipart {
            p.content_type = default_type(false);
        }
        return;
    }
    if multipart {
        match ct.param("boundary").filter(|b| !b.is_empty()) {
            Some(b) => {
                p.kind = Kind::Multipart {
                    boundary: b.as_bytes().to_vec(),
                    children: Vec::new(),
                    split: 0,
                    open: false,
                    closed: false,
                    ghost: false,
                }
            }
            None => p.content_type = default_type(false),
        }
    } else if (ct.is("message", "rfc822") || ct.is("message", "global"))
        && Cte::of(&p.encoding()) == Cte::Identity
    {
        budget.parts = budget.parts.saturating_sub(1);
        p.kind = Kind::Message(Box::new(ScannedPart::new(body, lf, false, p.depth + 1)));
    }
}

/// Hands one line to the part tree under `p` (which contains it).
/// `brk`: the previous line's break; `lf`: line feeds before this line.
fn dispatch(
    p: &mut ScannedPart,
    line: &Line,
    brk: u64,
    lf: u64,
    before_lf: bool,
    budget: &mut Budget,
) {
    // A delimiter of this multipart (outer ones were checked first, by
    // the caller) ends its open part.
    if p.phase == Phase::Body
        && let Kind::Multipart {
            boundary, closed, ..
        } = &p.kind
        && !*closed
        && let Some(is_close) = line.delimiter(boundary)
    {
        delimiter(p, line, brk, lf, before_lf, is_close, budget);
        return;
    }
    match p.phase {
        Phase::Header => {
            if brk > 0 && line.start > p.start {
                push_header(p, &b"\r\n"[(2 - brk) as usize..], budget);
            }
            push_header(p, &line.head, budget);
            if line.len == 0 && line.brk > 0 {
                p.phase = Phase::BlankSeen;
            }
        }
        Phase::BlankSeen => {
            // The blank line's break is inside: the header ends there.
            push_header(p, &b"\r\n"[(2 - brk) as usize..], budget);
            p.phase = Phase::Body;
            p.body = line.start;
            p.lf_body = lf;
            settle_type(p, line.start, lf, budget);
            // The line is the body's first: the part's own delimiter,
            // or the encapsulated message's first header line.
            dispatch(p, line, 0, lf, before_lf, budget);
        }
        Phase::Body => match &mut p.kind {
            Kind::Leaf => p.nul |= line.nul,
            Kind::Message(m) => dispatch(m, line, brk, lf, before_lf, budget),
            Kind::Multipart {
                children,
                open,
                ghost,
                ..
            } => {
                if *open && !*ghost {
                    if let Some(c) = children.last_mut() {
                        // An outer delimiter always wins: check the open
                        // part's multiparts only after this one's.
                        dispatch(c, line, brk, lf, before_lf, budget);
                    }
                } else {
                    // Preamble, epilogue or an unparsed part: the
                    // multipart's own body (shown whole if it is broken).
                    p.nul |= line.nul;
                }
            }
        },
    }
}

/// A delimiter line of the multipart `p`.
fn delimiter(
    p: &mut ScannedPart,
    line: &Line,
    brk: u64,
    lf: u64,
    before_lf: bool,
    is_close: bool,
    budget: &mut Budget,
) {
    let next = line.start + line.len + line.brk;
    let lf_next = lf + u64::from(line.brk > 0);
    let depth = p.depth;
    let digest = p.content_type.subtype.eq_ignore_ascii_case("digest");
    let Kind::Multipart {
        children,
        split,
        open,
        closed,
        ghost,
        ..
    } = &mut p.kind
    else {
        return;
    };
    if *open {
        // The open part ends before the line break ahead of this line,
        // unless it starts right here (an empty part).
        if !*ghost && let Some(c) = children.last_mut() {
            let cut = if line.start > c.start { brk } else { 0 };
            let end = line.start - cut;
            let lf_end = if cut > 0 { lf - 1 } else { lf };
            let ends_with_lf = if cut > 0 { before_lf } else { line.start > 0 };
            close(c, end, lf_end, ends_with_lf, brk, false, budget);
        }
        *split += 1;
        *open = false;
    }
    if is_close || *split >= MAX_PARTS {
        *closed = true;
        return;
    }
    *open = true;
    if budget.parts == 0 {
        *ghost = true;
        return;
    }
    *ghost = false;
    budget.parts -= 1;
    children.push(ScannedPart::new(next, lf_next, digest, depth + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(raw: &[u8], chunk: usize) -> Option<Cached> {
        let mut s = Scanner::new();
        for c in raw.chunks(chunk.max(1)) {
            s.feed(c);
        }
        s.finish()
    }

    const MESSAGES: &[&[u8]] = &[
        b"Subject: one part\r\n\r\nhello\r\n",
        b"",
        b"\r\n",
        b"\n\nx",
        b"Subject: x",
        b"Subject: x\r\n",
        b"Subject: x\r\n\r\n",
        b"From: outer@x\r\nContent-Type: message/rfc822\r\n\r\n\
From: inner@y\r\nSubject: sub\r\n\r\nHello\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Subject: m\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nplain=3D\r\n\
--c\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nq=3D=\r\nx\r\n--c--\r\n\
--b\r\nContent-Transfer-Encoding: x-uu\r\n\r\nbegin\r\n--b--\r\nepilogue\r\n",
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: d1\n\nbody\n--d",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n--b\r\nX: y\r\n\r\n--b  \t\r\n\r\n\r\n--b--",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n--b\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno delimiter\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\
Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\nin\r\n--a\r\nout\r\n--ab\r\n--a--",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n--b\r\nA: b\r\r\n\r\n--b\r\n\r\r\n\r\nz\r\r\n--b--",
        // A delimiter line right before the outer part's end opens an
        // empty part there (from a mutant of the stress test).
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\
Content-Type: multipart/alternative; boundary=\"i--\"\r\n\r\n--i\r\nx\r\n--i--\r\n--o--\r\n",
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n--b\nContent-Type: message/rfc822\n\nSubject: s\n\n\n--b--\n",
    ];

    #[test]
    fn the_scan_finds_what_the_parser_finds() {
        for raw in MESSAGES {
            let want = Cached::of(raw);
            for chunk in [1, 2, 3, 5, 64, 100_000] {
                assert_eq!(
                    scan(raw, chunk).as_ref(),
                    Some(&want),
                    "chunks of {chunk}: {}",
                    raw.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn a_leaf_holding_nul_is_left_to_the_whole_parse() {
        let raw = b"Content-Type: application/octet-stream\r\n\r\n\0\x01\r\n";
        assert_eq!(scan(raw, 3), None);
    }

    fn binary_plan(raw: &[u8], chunk: usize) -> Vec<BinaryLeaf> {
        let mut s = Scanner::new();
        for c in raw.chunks(chunk.max(1)) {
            s.feed(c);
        }
        s.finish_binary()
    }

    /// A root header cut inside its boundary parameter: the scan would
    /// split the body at `--ab` where the message's parts are delimited by
    /// `--abcd`, and re-encode what is no part at all. Nothing is
    /// re-encoded (found in review).
    #[test]
    fn a_cut_header_re_encodes_nothing() {
        // The kept header ends inside `boundary=abcd`, after `ab`.
        let upto_ab: &[u8] = b"Content-Type: multipart/mixed; boundary=ab";
        let mut raw = b"X-Pad: ".to_vec();
        raw.resize(MAX_SCAN_HEADER - upto_ab.len() - 2, b'x');
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(upto_ab);
        raw.extend_from_slice(b"cd\r\n");
        raw.extend_from_slice(b"\r\n--ab\r\n\r\n\0x\r\n--ab--\r\n");
        for chunk in [7, 4096, 1 << 20] {
            assert_eq!(binary_plan(&raw, chunk), Vec::new(), "chunks of {chunk}");
        }
        // The same parts with a short header are re-encoded.
        let short =
            b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\n\0x\r\n--ab--\r\n";
        assert_eq!(binary_plan(short, 5).len(), 1);
    }

    /// However many long headers a message has, a scan keeps at most
    /// MAX_SCAN_HEADERS of them; past it the scan says to take the
    /// whole-message way and re-encodes nothing.
    #[test]
    fn headers_past_the_total_bound_are_not_kept_and_the_scan_gives_up() {
        let pad = "y".repeat(MAX_SCAN_HEADER - 100);
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        let parts = MAX_SCAN_HEADERS / MAX_SCAN_HEADER + 10;
        for _ in 0..parts {
            raw.extend_from_slice(format!("--b\r\nX-Pad: {pad}\r\n\r\n\0\r\n").as_bytes());
        }
        raw.extend_from_slice(b"--b--\r\n");
        let mut s = Scanner::new();
        for c in raw.chunks(65_536) {
            s.feed(c);
        }
        let (root, overflow) = s.close_all();
        assert!(overflow);
        fn kept(p: &ScannedPart) -> usize {
            p.header.len()
                + match &p.kind {
                    Kind::Leaf => 0,
                    Kind::Multipart { children, .. } => children.iter().map(kept).sum(),
                    Kind::Message(m) => kept(m),
                }
        }
        assert!(kept(&root) <= MAX_SCAN_HEADERS, "{} kept", kept(&root));
        assert_eq!(binary_plan(&raw, 65_536), Vec::new());
        assert_eq!(scan(&raw, 65_536), None);
        // Under the bound, every part is re-encoded.
        let few: Vec<u8> = raw
            .split(|&b| b == b'\n')
            .take(2 + 4 * 3)
            .flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n')))
            .chain(b"--b--\r\n".iter().copied())
            .collect();
        assert_eq!(binary_plan(&few, 65_536).len(), 3);
    }
}
