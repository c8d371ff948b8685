//! Binary content made safe for non-BINARY FETCH (RFC 3516 4.3, RFC 9051
//! 4.3: a literal must not hold NUL; only BINARY's `literal8` may).
//!
//! A message whose parts hold NUL octets (an APPEND with `literal8`, RFC
//! 3516 4.4, or BINARYMIME mail) is rewritten with each such part in base64
//! and its Content-Transfer-Encoding field saying so, as Dovecot does on
//! APPEND. BODY[...] then sends only 7-bit text, BODYSTRUCTURE says BASE64,
//! and BINARY[part] decodes it back to the octets the client sent.
//!
//! The server does this when it stores such a message (issue 19), so
//! what FETCH shows is what is stored and RFC822.SIZE is its size: a small
//! message whole ([`encode_binary_parts`]), a spooled one in two passes
//! over its chunks (a [`Scanner`](super::scan::Scanner), then a
//! [`BinaryEncoder`]), which give the same octets.

use std::ops::Range;

use super::scan::BinaryLeaf;
use super::{Part, PartKind, parse_fields};

/// RFC 2045 6.8: encoded lines are at most 76 characters.
const BASE64_LINE: usize = 76;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 2045 6.8) in CRLF-separated lines of [`BASE64_LINE`].
pub fn encode_base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 * 4 + data.len() / 57 * 2 + 8);
    let mut col = 0;
    for chunk in data.chunks(3) {
        if col == BASE64_LINE {
            out.extend_from_slice(b"\r\n");
            col = 0;
        }
        push_group(chunk, &mut out);
        col += 4;
    }
    out
}

/// Where `sub` (a slice of `raw`) starts in `raw`.
fn offset(raw: &[u8], sub: &[u8]) -> Option<usize> {
    let off = (sub.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    (off + sub.len() <= raw.len()).then_some(off)
}

fn collect(p: &Part<'_>, raw: &[u8], edits: &mut Vec<(Range<usize>, Vec<u8>)>, root: bool) {
    match &p.kind {
        PartKind::Multipart(children) => {
            for c in children {
                collect(c, raw, edits, false);
            }
        }
        PartKind::Message(m) => collect(m, raw, edits, false),
        PartKind::Leaf => {
            let identity = matches!(p.encoding().as_str(), "7bit" | "8bit" | "binary");
            if !identity || !p.body.contains(&0) {
                return;
            }
            let (Some(h), Some(b)) = (offset(raw, p.header), offset(raw, p.body)) else {
                return;
            };
            let mut header = Vec::with_capacity(p.header.len() + 40);
            base64_header(p.header, &mut header);
            let mut body = encode_base64_lines(p.body);
            // A part's body ends where its delimiter's line break begins;
            // a whole message ends with a line break of its own.
            if root {
                body.extend_from_slice(b"\r\n");
            }
            edits.push((h..h + p.header.len(), header));
            edits.push((b..b + p.body.len(), body));
        }
    }
}

/// The message with every part that holds NUL re-encoded in base64; None
/// when no part does (the common case costs one scan for NUL).
pub fn encode_binary_parts(raw: &[u8]) -> Option<Vec<u8>> {
    if !raw.contains(&0) {
        return None;
    }
    let root = Part::parse(raw);
    let mut edits = Vec::new();
    collect(&root, raw, &mut edits, true);
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(raw.len() * 4 / 3 + 64);
    let mut at = 0;
    for (range, with) in edits {
        if range.start < at {
            continue;
        }
        out.extend_from_slice(raw.get(at..range.start).unwrap_or_default());
        out.extend_from_slice(&with);
        at = range.end;
    }
    out.extend_from_slice(raw.get(at..).unwrap_or_default());
    Some(out)
}

/// The header of a re-encoded part: its fields without
/// Content-Transfer-Encoding (and, as the parser reads them, without
/// lines that are no field), then `Content-Transfer-Encoding: base64` and
/// the blank line.
fn base64_header(header: &[u8], out: &mut Vec<u8>) {
    for f in parse_fields(header) {
        if f.name.eq_ignore_ascii_case(b"Content-Transfer-Encoding") {
            continue;
        }
        out.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
}

/// [`encode_binary_parts`] a chunk at a time, for messages too big to hold
/// (issue 19): the second pass over a message whose first pass, a
/// [`Scanner`](super::scan::Scanner) ending in
/// [`finish_binary`](super::scan::Scanner::finish_binary), found the
/// leaves to re-encode. Fed the same octets in chunks of any size, it
/// writes what `encode_binary_parts` returns for the whole message (the
/// message unchanged when there is no leaf), holding only the leaves'
/// headers and two octets of base64 carry.
#[derive(Debug)]
pub struct BinaryEncoder {
    leaves: std::vec::IntoIter<BinaryLeaf>,
    /// The leaf being copied towards or through.
    current: Option<BinaryLeaf>,
    /// Its new header is written.
    entered: bool,
    /// Octets of the input seen so far.
    pos: u64,
    /// Base64 input not yet making a group of three.
    carry: [u8; 3],
    carry_len: usize,
    /// Characters on the current base64 line.
    col: usize,
}

impl BinaryEncoder {
    pub fn new(leaves: Vec<BinaryLeaf>) -> BinaryEncoder {
        let mut leaves = leaves.into_iter();
        BinaryEncoder {
            current: leaves.next(),
            leaves,
            entered: false,
            pos: 0,
            carry: [0; 3],
            carry_len: 0,
            col: 0,
        }
    }

    /// The next octets of the message; what they become is added to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        loop {
            let Some(leaf) = self.current.as_ref() else {
                out.extend_from_slice(chunk);
                self.pos += chunk.len() as u64;
                return;
            };
            let (start, body, end) = (leaf.start, leaf.body, leaf.end);
            let take = |upto: u64, chunk: &[u8]| {
                let n = usize::try_from(upto.saturating_sub(self.pos)).unwrap_or(usize::MAX);
                n.min(chunk.len())
            };
            let n;
            if !self.entered && self.pos < start {
                n = take(start, chunk);
                out.extend_from_slice(chunk.get(..n).unwrap_or_default());
            } else if !self.entered {
                base64_header(&leaf.header, out);
                self.entered = true;
                continue;
            } else if self.pos < body {
                // The old header, replaced.
                n = take(body, chunk);
            } else if self.pos < end {
                n = take(end, chunk);
                let (now, _) = chunk.split_at(n);
                self.base64(now, out);
            } else {
                self.end_leaf(out);
                continue;
            }
            if n == 0 {
                return;
            }
            self.pos += n as u64;
            chunk = chunk.get(n..).unwrap_or_default();
        }
    }

    /// The message has ended: a leaf still open (the plan ran past the
    /// octets given) ends here.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.feed(&[], out);
        if self.entered {
            self.end_leaf(out);
        }
    }

    fn end_leaf(&mut self, out: &mut Vec<u8>) {
        if self.carry_len > 0 {
            let carry = self.carry;
            self.group(carry.get(..self.carry_len).unwrap_or_default(), out);
        }
        if self.current.as_ref().is_some_and(|l| l.root) {
            out.extend_from_slice(b"\r\n");
        }
        self.carry_len = 0;
        self.col = 0;
        self.entered = false;
        self.current = self.leaves.next();
    }

    fn base64(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if self.carry_len > 0 {
            while self.carry_len < 3
                && let Some((&b, rest)) = data.split_first()
            {
                if let Some(slot) = self.carry.get_mut(self.carry_len) {
                    *slot = b;
                }
                self.carry_len += 1;
                data = rest;
            }
            if self.carry_len < 3 {
                return;
            }
            let carry = self.carry;
            self.group(&carry, out);
            self.carry_len = 0;
        }
        let mut groups = data.chunks_exact(3);
        out.reserve(data.len() / 3 * 4 + data.len() / 57 * 2 + 4);
        for g in groups.by_ref() {
            self.group(g, out);
        }
        let rest = groups.remainder();
        if let Some(dst) = self.carry.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.carry_len = rest.len();
    }

    /// One group of base64 (1 to 3 octets), after a line break when the
    /// line is full, as [`encode_base64_lines`] writes it.
    fn group(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.col == BASE64_LINE {
            out.extend_from_slice(b"\r\n");
            self.col = 0;
        }
        push_group(chunk, out);
        self.col += 4;
    }
}

fn push_group(chunk: &[u8], out: &mut Vec<u8>) {
    let sym = |v: u32| ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'=');
    let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
    let n = (b(0) << 16) | (b(1) << 8) | b(2);
    out.push(sym(n >> 18));
    out.push(sym(n >> 12));
    out.push(if chunk.len() > 1 { sym(n >> 6) } else { b'=' });
    out.push(if chunk.len() > 2 { sym(n) } else { b'=' });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::{binary, section::decode_base64};

    #[test]
    fn base64_lines_round_trip() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let enc = encode_base64_lines(&data);
        assert!(
            enc.split(|&b| b == b'\n')
                .all(|l| l.len() <= BASE64_LINE + 1)
        );
        assert_eq!(decode_base64(&enc), data);
        assert_eq!(encode_base64_lines(b"hi"), b"aGk=");
    }

    #[test]
    fn parts_with_nul_become_base64_and_binary_gives_them_back() {
        // imaptest append-binary: a one-part message, CTE binary, with NUL.
        let content = b"\x00 -\xff\r\n\r\n\r\n";
        let mut raw = b"From: u@d\r\nContent-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(content);
        let enc = encode_binary_parts(&raw).expect("converted");
        assert!(!enc.contains(&0));
        let root = Part::parse(&enc);
        assert_eq!(root.encoding(), "base64");
        assert_eq!(root.field("From"), Some(&b" u@d"[..]));
        assert_eq!(binary(&root, &enc, &[1]).as_deref(), Ok(&content[..]));
        // Without NUL nothing changes.
        assert_eq!(
            encode_binary_parts(b"Subject: x\r\n\r\n8bit \xff\r\n"),
            None
        );
    }

    #[test]
    fn only_the_part_with_nul_changes_in_a_multipart() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain\r\n\r\ntext\r\n--b\r\n\
            Content-Type: application/x\r\n\r\na\x00b\r\n--b--\r\n";
        let enc = encode_binary_parts(raw).expect("converted");
        let root = Part::parse(&enc);
        assert_eq!(binary(&root, &enc, &[1]).as_deref(), Ok(&b"text"[..]));
        assert_eq!(binary(&root, &enc, &[2]).as_deref(), Ok(&b"a\x00b"[..]));
        assert!(!enc.contains(&0));
    }

    /// Scan in chunks of `scan`, encode in chunks of `write`.
    fn streamed(raw: &[u8], scan: usize, write: usize) -> Vec<u8> {
        let mut scanner = crate::mime::scan::Scanner::new();
        for c in raw.chunks(scan) {
            scanner.feed(c);
        }
        let mut enc = BinaryEncoder::new(scanner.finish_binary());
        let mut out = Vec::new();
        for c in raw.chunks(write) {
            enc.feed(c, &mut out);
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn streamed_reencoding_is_the_whole_one_at_every_chunk_size() {
        let blob: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut nested = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\
            Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\
            Content-Transfer-Encoding: BINARY\r\nX-Keep: 1\r\n\r\n"
            .to_vec();
        nested.extend_from_slice(&blob);
        nested.extend_from_slice(
            b"\r\n--i\r\n\r\nplain\r\n--i--\r\n--o\r\n\
            Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nin\x00ner\r\n--o\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nAA\x00A\r\n--o\r\n\
            Content-Type: application/x\r\n\r\n--o--\r\n",
        );
        let mut single = b"Content-Type: application/octet-stream\n\n".to_vec();
        single.extend_from_slice(&blob[..4000]);
        let cases: Vec<Vec<u8>> = vec![
            nested,
            single,
            b"Subject: header only \x00\r\n".to_vec(),
            b"Subject: x\r\n\r\n\x00".to_vec(),
            b"\r\n\x00\x00\x00\x00".to_vec(),
            b"Subject: no nul\r\n\r\nbody\r\n".to_vec(),
        ];
        for raw in &cases {
            let want = encode_binary_parts(raw).unwrap_or_else(|| raw.clone());
            // The NUL lands at every position relative to chunk
            // boundaries of both passes.
            for (scan, write) in [(1, 1), (2, 3), (3, 2), (57, 76), (4096, 1), (1, 100_000)] {
                assert_eq!(
                    streamed(raw, scan, write),
                    want,
                    "chunks {scan}/{write}: {}",
                    raw.escape_ascii()
                );
            }
        }
        // What it gives back: the identity parts with NUL are base64, the
        // others as they were.
        let enc = streamed(&cases[0], 5, 7);
        assert_eq!(enc.iter().filter(|&&b| b == 0).count(), 1);
        let root = Part::parse(&enc);
        assert_eq!(binary(&root, &enc, &[1, 1]).as_deref(), Ok(&blob[..]));
        assert_eq!(binary(&root, &enc, &[1, 2]).as_deref(), Ok(&b"plain"[..]));
        assert_eq!(
            binary(&root, &enc, &[2, 1]).as_deref(),
            Ok(&b"in\x00ner"[..])
        );
        // A part already encoded is left as it is, its NUL too (a broken
        // base64 body; BINARY decodes what it can).
        assert!(enc.windows(5).any(|w| w == b"AA\x00A\r"));
        // With nothing to re-encode the encoder copies its input.
        assert_eq!(streamed(&cases[5], 3, 3), cases[5]);
    }
}
