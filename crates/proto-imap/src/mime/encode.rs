//! Binary content made safe for non-BINARY FETCH (RFC 3516 4.3, RFC 9051
//! 4.3: a literal must not hold NUL; only BINARY's `literal8` may).
//!
//! A message whose parts hold NUL octets (an APPEND with `literal8`, RFC
//! 3516 4.4, or BINARYMIME mail) is rewritten with each such part in base64
//! and its Content-Transfer-Encoding field saying so, as Dovecot does on
//! APPEND. BODY[...] then sends only 7-bit text, BODYSTRUCTURE says BASE64,
//! and BINARY[part] decodes it back to the octets the client sent.

use std::ops::Range;

use super::{Part, PartKind};

/// RFC 2045 6.8: encoded lines are at most 76 characters.
const BASE64_LINE: usize = 76;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 2045 6.8) in CRLF-separated lines of [`BASE64_LINE`].
pub fn encode_base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 * 4 + data.len() / 57 * 2 + 8);
    let sym = |v: u32| ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'=');
    let mut col = 0;
    for chunk in data.chunks(3) {
        if col == BASE64_LINE {
            out.extend_from_slice(b"\r\n");
            col = 0;
        }
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(n) } else { b'=' });
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
            for f in &p.fields {
                if f.name.eq_ignore_ascii_case(b"Content-Transfer-Encoding") {
                    continue;
                }
                header.extend_from_slice(f.raw);
                if !f.raw.ends_with(b"\n") {
                    header.extend_from_slice(b"\r\n");
                }
            }
            header.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
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
}
