//! A message's MIME structure as IMAP sees it (RFC 2045, RFC 2046; RFC 9051
//! 6.4.5 for part numbering): header and body of every part as slices of
//! the raw message, so sections are exact octets of the stored message.
//!
//! The parser is forgiving: a multipart without a boundary, or whose
//! boundary never appears, becomes a single text part; a missing closing
//! delimiter ends the last part at the end of the body; nesting is bounded
//! ([`MAX_DEPTH`], [`MAX_PARTS`]). So every message, however broken, has a
//! valid BODYSTRUCTURE.
//!
//! - `structure`: ENVELOPE and BODYSTRUCTURE values and their syntax;
//! - `address`: RFC 5322 address lists for ENVELOPE;
//! - `section`: BODY[section] and BINARY[part] extraction;
//! - `cache`: the stored form of ENVELOPE and BODYSTRUCTURE, kept per
//!   body so FETCH parses a message once;
//! - `offsets`: where each part lies in the stored message, so a section
//!   is read from the store alone;
//! - `scan`: the same structure found by a streaming scan, for big
//!   messages;
//! - `stream`: transfer decoding a chunk at a time, for big parts;
//! - `encode`: parts holding NUL re-encoded in base64 (RFC 3516 4.3);
//! - `text`: decoded text (RFC 2047 headers, transfer encodings,
//!   charsets) for SEARCH, with mail-parser.

mod address;
pub mod cache;
mod encode;
pub mod offsets;
pub mod scan;
mod section;
pub mod stream;
mod structure;
mod text;

pub use address::{Address, parse_address_list};
pub use encode::{BinaryEncoder, encode_base64_lines, encode_binary_parts};
pub use section::{BinaryError, binary, decode_base64, decode_qp, resolve, section};
pub use structure::{BodyStructure, Entity, Envelope, Shape, body_structure, envelope};
pub use text::{
    MAX_PREVIEW_CHARS, PreviewKind, SearchText, TEXT_PENDING_MAX, TextStream, date_utc, preview,
    preview_kind, search_text, search_text_of, unstructured_text,
};

/// Deepest nesting of multiparts and message/rfc822 parts we descend.
pub const MAX_DEPTH: usize = 20;
/// Most parts in one message; later ones are ignored.
pub const MAX_PARTS: usize = 1000;

/// One header field: its name, its value (folded, without the final line
/// break) and the whole field with its line break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// A Content-Type or Content-Disposition value: `type/subtype; params`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentType {
    pub mtype: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn is(&self, t: &str, s: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(t) && self.subtype.eq_ignore_ascii_case(s)
    }
}

/// What a part contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind<'a> {
    Leaf,
    Multipart(Vec<Part<'a>>),
    /// message/rfc822 (or message/global): the encapsulated message.
    Message(Box<Part<'a>>),
}

/// One MIME entity: a whole message, or a body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// Where the header starts, as an offset into the whole message: the
    /// part's octets are `start..start + header.len() + body.len()`.
    pub start: usize,
    /// The header block, including the blank line that ends it.
    pub header: &'a [u8],
    pub body: &'a [u8],
    pub fields: Vec<Field<'a>>,
    pub content_type: ContentType,
    pub kind: PartKind<'a>,
}

impl<'a> Part<'a> {
    /// Parses a whole message.
    pub fn parse(raw: &'a [u8]) -> Part<'a> {
        let mut budget = MAX_PARTS;
        parse_entity(raw, 0, false, 0, &mut budget)
    }

    /// Where the body starts in the whole message.
    pub fn body_start(&self) -> usize {
        self.start + self.header.len()
    }

    /// Where the part ends in the whole message.
    pub fn end(&self) -> usize {
        self.body_start() + self.body.len()
    }

    /// The first field of that name (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.value)
    }

    /// The transfer encoding, lowercased; "7bit" when absent.
    pub fn encoding(&self) -> String {
        self.field("Content-Transfer-Encoding")
            .map(|v| String::from_utf8_lossy(&unfold(v)).to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "7bit".into())
    }
}

/// Splits a header block from the body: the header ends with the first
/// empty line (CRLF or bare LF endings alike).
pub fn split_header(raw: &[u8]) -> (&[u8], &[u8]) {
    if raw.starts_with(b"\r\n") {
        return raw.split_at(2);
    }
    if raw.starts_with(b"\n") {
        return raw.split_at(1);
    }
    let mut i = 0;
    while let Some(p) = raw
        .get(i..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        let nl = i + p;
        let after = raw.get(nl + 1..).unwrap_or_default();
        if after.starts_with(b"\r\n") {
            return raw.split_at(nl + 3);
        }
        if after.starts_with(b"\n") {
            return raw.split_at(nl + 2);
        }
        i = nl + 1;
    }
    (raw, &raw[raw.len()..])
}

/// The fields of a header block. Lines without a colon are skipped.
pub fn parse_fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let len = header.len();
    while start < len {
        // A field runs until a line that does not start with WSP.
        let mut end = start;
        loop {
            let nl = header
                .get(end..)
                .and_then(|r| r.iter().position(|&b| b == b'\n'))
                .map_or(len, |p| end + p + 1);
            end = nl;
            if !matches!(header.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        let raw = header.get(start..end).unwrap_or_default();
        if let Some(colon) = raw.iter().position(|&b| b == b':') {
            let name = raw.get(..colon).unwrap_or_default().trim_ascii_end();
            let value = raw.get(colon + 1..).unwrap_or_default();
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            let value = value.strip_suffix(b"\r").unwrap_or(value);
            if !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()) {
                fields.push(Field { name, value, raw });
            }
        }
        start = end;
    }
    fields
}

/// A folded value on one line, trimmed.
pub fn unfold(v: &[u8]) -> Vec<u8> {
    let out: Vec<u8> = v
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    out.trim_ascii().to_vec()
}

/// Removes RFC 5322 comments `( ... )` outside quoted strings.
fn strip_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for &b in v {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(b);
            }
            continue;
        }
        match b {
            b'\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(b);
                }
            }
            b'"' if depth == 0 => {
                quoted = !quoted;
                out.push(b);
            }
            b'(' if !quoted => depth += 1,
            b')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(b),
            _ => {}
        }
    }
    out
}

/// Parses `type/subtype; a=b; c="d"` (also a Content-Disposition, whose
/// "type" has no subtype).
pub fn parse_content_type(v: &[u8]) -> ContentType {
    let v = strip_comments(&unfold(v));
    let text = String::from_utf8_lossy(&v);
    let mut segs = split_params(&text).into_iter();
    let head = segs.next().unwrap_or_default();
    let (mtype, subtype) = match head.split_once('/') {
        Some((t, s)) => (t.trim().to_string(), s.trim().to_string()),
        None => (head.trim().to_string(), String::new()),
    };
    let mut params = Vec::new();
    for p in segs {
        if let Some((k, val)) = p.split_once('=') {
            let k = k.trim();
            let val = val.trim();
            let val = match val.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Some(q) => q.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => val.to_string(),
            };
            if !k.is_empty() && params.len() < 64 {
                params.push((k.to_string(), val));
            }
        }
    }
    ContentType {
        mtype,
        subtype,
        params,
    }
}

/// Splits on `;` outside quoted strings.
fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for ch in s.chars() {
        if escaped {
            escaped = false;
            cur.push(ch);
            continue;
        }
        match ch {
            '\\' if quoted => {
                escaped = true;
                cur.push(ch);
            }
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

pub(crate) fn default_type(in_digest: bool) -> ContentType {
    if in_digest {
        ContentType {
            mtype: "message".into(),
            subtype: "rfc822".into(),
            params: Vec::new(),
        }
    } else {
        ContentType {
            mtype: "text".into(),
            subtype: "plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
        }
    }
}

/// `start`: where `raw` begins in the whole message.
fn parse_entity<'a>(
    raw: &'a [u8],
    start: usize,
    in_digest: bool,
    depth: usize,
    budget: &mut usize,
) -> Part<'a> {
    *budget = budget.saturating_sub(1);
    let (header, body) = split_header(raw);
    let fields = parse_fields(header);
    let body_start = start + header.len();
    let mut part = Part {
        start,
        header,
        body,
        fields,
        content_type: default_type(in_digest),
        kind: PartKind::Leaf,
    };
    if let Some(ct) = part.field("Content-Type") {
        let ct = parse_content_type(ct);
        if !ct.mtype.is_empty() && !ct.subtype.is_empty() {
            part.content_type = ct;
            // RFC 2045 5.2: text without a charset is US-ASCII.
            let t = &mut part.content_type;
            if t.mtype.eq_ignore_ascii_case("text") && t.param("charset").is_none() {
                t.params.insert(0, ("charset".into(), "us-ascii".into()));
            }
        }
    }
    let ct = part.content_type.clone();
    if depth >= MAX_DEPTH || *budget == 0 {
        if ct.mtype.eq_ignore_ascii_case("multipart") {
            part.content_type = default_type(false);
        }
        return part;
    }
    if ct.mtype.eq_ignore_ascii_case("multipart") {
        let bodies = ct
            .param("boundary")
            .filter(|b| !b.is_empty())
            .map(|b| split_multipart(body, b.as_bytes()))
            .unwrap_or_default();
        if bodies.is_empty() {
            // Broken multipart: show it as one text part.
            part.content_type = default_type(false);
            return part;
        }
        let digest = ct.subtype.eq_ignore_ascii_case("digest");
        let mut children = Vec::with_capacity(bodies.len());
        for (offset, b) in bodies {
            if *budget == 0 {
                break;
            }
            children.push(parse_entity(
                b,
                body_start + offset,
                digest,
                depth + 1,
                budget,
            ));
        }
        part.kind = PartKind::Multipart(children);
    } else if (ct.is("message", "rfc822") || ct.is("message", "global"))
        && matches!(part.encoding().as_str(), "7bit" | "8bit" | "binary")
    {
        part.kind = PartKind::Message(Box::new(parse_entity(
            body,
            body_start,
            false,
            depth + 1,
            budget,
        )));
    }
    part
}

/// The bodies of a multipart: the octets between delimiter lines, without
/// the line break that belongs to the delimiter (RFC 2046 5.1.1), each
/// with its offset in `body`.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<(usize, &'a [u8])> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut cur: Option<usize> = None;
    let mut i = 0;
    let len = body.len();
    loop {
        let le = body
            .get(i..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .map_or(len, |p| i + p);
        let line = body.get(i..le).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(delim.as_slice()) {
            let close = rest.starts_with(b"--");
            let after = if close {
                rest.get(2..).unwrap_or_default()
            } else {
                rest
            };
            if after.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = cur {
                    let mut end = i;
                    if end > s && body.get(end - 1) == Some(&b'\n') {
                        end -= 1;
                        if end > s && body.get(end - 1) == Some(&b'\r') {
                            end -= 1;
                        }
                    }
                    parts.push((s, body.get(s..end.max(s)).unwrap_or_default()));
                }
                if close || parts.len() >= MAX_PARTS {
                    return parts;
                }
                cur = Some((le + 1).min(len));
            }
        }
        if le >= len {
            break;
        }
        i = le + 1;
    }
    if let Some(s) = cur {
        parts.push((s, body.get(s..).unwrap_or_default()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\n\r\nsecond\r\n--XX--\r\nepilogue\r\n";

    #[test]
    fn multipart_parts_exclude_the_delimiter_line_break() {
        let p = Part::parse(MULTI);
        let PartKind::Multipart(children) = &p.kind else {
            panic!("not multipart: {p:?}");
        };
        assert_eq!(children.len(), 2);
        assert_eq!(children[0].body, b"hello");
        assert_eq!(children[0].header, b"Content-Type: text/plain\r\n\r\n");
        assert_eq!(children[1].header, b"\r\n");
        assert_eq!(children[1].body, b"second");
    }

    #[test]
    fn missing_boundary_is_a_text_part() {
        let raw = b"Content-Type: multipart/mixed\r\n\r\nbody\r\n";
        let p = Part::parse(raw);
        assert_eq!(p.kind, PartKind::Leaf);
        assert_eq!(p.content_type.mtype, "text");
    }

    #[test]
    fn header_only_message_and_lf_endings() {
        let p = Part::parse(b"Subject: x\r\n");
        assert_eq!(p.body, b"");
        let p = Part::parse(b"Subject: x\n\nbody\n");
        assert_eq!(p.header, b"Subject: x\n\n");
        assert_eq!(p.body, b"body\n");
        assert_eq!(p.field("subject"), Some(&b" x"[..]));
    }

    #[test]
    fn content_type_params_quoted_and_commented() {
        let ct = parse_content_type(b" text/plain; charset=\"utf-8\" (c); format=flowed");
        assert_eq!(ct.mtype, "text");
        assert_eq!(ct.param("CHARSET"), Some("utf-8"));
        assert_eq!(ct.param("format"), Some("flowed"));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut raw = Vec::new();
        for i in 0..100 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\nleaf\r\n");
        let _ = Part::parse(&raw);
    }
}
