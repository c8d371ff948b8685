//! BODY[section] and BINARY[part] (RFC 9051 6.4.5, RFC 3516): the octets
//! of one part, alone.

use super::{Part, PartKind};
use crate::fetch::{Section, SectionText};

/// The part at a part path (RFC 9051 6.4.5 numbering): the children of a
/// multipart are numbered from 1; a message/rfc822 part's numbers refer to
/// the encapsulated message's parts; a non-multipart message has part 1,
/// its body.
///
/// The top level is a message, not a message/rfc822 part: when it is not
/// a multipart its part 1 is its own body, whatever its type. So for a
/// top-level message/rfc822, `1` is the whole encapsulated message,
/// `1.HEADER` / `1.TEXT` its header and body, `1.MIME` the outer header,
/// and `1.1` the encapsulated message's first part.
pub fn resolve<'p, 'a>(root: &'p Part<'a>, path: &[u32]) -> Option<&'p Part<'a>> {
    let mut node = root;
    let mut rest = path;
    if let Some((&first, tail)) = path.split_first()
        && !matches!(root.kind, PartKind::Multipart(_))
    {
        if first != 1 {
            return None;
        }
        rest = tail;
    }
    for &n in rest {
        node = child(node, n)?;
    }
    Some(node)
}

fn child<'p, 'a>(node: &'p Part<'a>, n: u32) -> Option<&'p Part<'a>> {
    let idx = usize::try_from(n).ok()?.checked_sub(1)?;
    match &node.kind {
        PartKind::Multipart(children) => children.get(idx),
        PartKind::Message(m) => match &m.kind {
            PartKind::Multipart(children) => children.get(idx),
            _ => (idx == 0).then_some(m.as_ref()),
        },
        PartKind::Leaf => (idx == 0).then_some(node),
    }
}

/// Header fields selected (or excluded) by name, then the blank line.
fn header_fields(p: &Part<'_>, names: &[String], keep: bool) -> Vec<u8> {
    header_fields_of(&p.fields, names, keep)
}

/// [`header_fields`] of a list of fields.
pub(super) fn header_fields_of(
    fields: &[super::Field<'_>],
    names: &[String],
    keep: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(f.name));
        if listed == keep {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The octets of a section of `raw` (parsed as `root`); None when the part
/// does not exist or the section does not apply to it.
pub fn section(root: &Part<'_>, raw: &[u8], s: &Section) -> Option<Vec<u8>> {
    let node = resolve(root, &s.part)?;
    // HEADER, TEXT and HEADER.FIELDS apply to a message: the root, or the
    // encapsulated message of a message/rfc822 part.
    let message = || -> Option<&Part<'_>> {
        if s.part.is_empty() {
            Some(root)
        } else {
            match &node.kind {
                PartKind::Message(m) => Some(m.as_ref()),
                _ => None,
            }
        }
    };
    Some(match &s.text {
        None if s.part.is_empty() => raw.to_vec(),
        None => node.body.to_vec(),
        Some(SectionText::Mime) => {
            if s.part.is_empty() {
                return None;
            }
            node.header.to_vec()
        }
        Some(SectionText::Header) => message()?.header.to_vec(),
        Some(SectionText::Text) => message()?.body.to_vec(),
        Some(SectionText::HeaderFields(names)) => header_fields(message()?, names, true),
        Some(SectionText::HeaderFieldsNot(names)) => header_fields(message()?, names, false),
    })
}

/// Why BINARY cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryError {
    NoSuchPart,
    /// RFC 3516 4.3: the transfer encoding is unknown: `NO [UNKNOWN-CTE]`.
    UnknownEncoding,
}

/// The decoded content of a part (BINARY[part]); the whole message for an
/// empty path.
pub fn binary(root: &Part<'_>, raw: &[u8], path: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if path.is_empty() {
        return Ok(raw.to_vec());
    }
    let node = resolve(root, path).ok_or(BinaryError::NoSuchPart)?;
    if matches!(node.kind, PartKind::Multipart(_)) {
        return Err(BinaryError::NoSuchPart);
    }
    match node.encoding().as_str() {
        "7bit" | "8bit" | "binary" => Ok(node.body.to_vec()),
        "base64" => Ok(decode_base64(node.body)),
        "quoted-printable" => Ok(decode_qp(node.body)),
        _ => Err(BinaryError::UnknownEncoding),
    }
}

/// Base64 (RFC 2045 6.8), ignoring characters outside the alphabet.
pub fn decode_base64(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable (RFC 2045 6.7): `=XX` decoded; whitespace at the end
/// of a line is transport padding and deleted (rule 3); a line ending in
/// `=` (after that padding is gone, so `= ` and `=\t` too) is a soft line
/// break and joins the next line (rule 5); malformed escapes are kept as
/// they are (the robustness note after rule 5). Line breaks stay as sent.
pub fn decode_qp(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => rest.split_at(nl + 1),
            None => (rest, &b""[..]),
        };
        decode_qp_line(line, &mut out);
        rest = next;
    }
    out
}

/// One line of quoted-printable, with its line break if it has one (the
/// last line may not): decoded into `out` by the rules of [`decode_qp`].
pub(super) fn decode_qp_line(line: &[u8], out: &mut Vec<u8>) {
    let (line, brk): (&[u8], &[u8]) = match line.strip_suffix(b"\n") {
        Some(l) => match l.strip_suffix(b"\r") {
            Some(l) => (l, b"\r\n"),
            None => (l, b"\n"),
        },
        None => (line, b""),
    };
    let line = line.trim_ascii_end();
    let (line, soft) = match line.strip_suffix(b"=") {
        Some(l) => (l, true),
        None => (line, false),
    };
    decode_qp_escapes(line, out);
    if !soft {
        out.extend_from_slice(brk);
    }
}

/// The `=XX` escapes of a stretch of quoted-printable decoded, malformed
/// ones kept as they are.
pub(super) fn decode_qp_escapes(line: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while let Some(&c) = line.get(i) {
        match (c, line.get(i + 1), line.get(i + 2)) {
            (b'=', Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                let v = hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC822: &[u8] = b"From: outer@x\r\nContent-Type: message/rfc822\r\n\r\n\
        From: inner@y\r\nSubject: sub\r\n\r\nHello\r\n";

    fn sec(raw: &[u8], s: &str) -> Option<Vec<u8>> {
        let c = format!("a FETCH 1 BODY[{s}]\r\n");
        let cmd = crate::command::parse_command(c.as_bytes(), Default::default()).ok()?;
        let crate::CommandKind::Fetch { atts, .. } = cmd.kind else {
            return None;
        };
        let Some(crate::FetchAtt::Section { section, .. }) = atts.first() else {
            return None;
        };
        section_of(raw, section)
    }

    fn section_of(raw: &[u8], s: &Section) -> Option<Vec<u8>> {
        section(&Part::parse(raw), raw, s)
    }

    #[test]
    fn top_level_message_rfc822_sections_are_one_level_up() {
        let inner = &b"From: inner@y\r\nSubject: sub\r\n\r\nHello\r\n"[..];
        assert_eq!(sec(RFC822, "1").as_deref(), Some(inner));
        assert_eq!(
            sec(RFC822, "1.HEADER").as_deref(),
            Some(&b"From: inner@y\r\nSubject: sub\r\n\r\n"[..])
        );
        assert_eq!(sec(RFC822, "1.TEXT").as_deref(), Some(&b"Hello\r\n"[..]));
        assert_eq!(
            sec(RFC822, "1.MIME").as_deref(),
            Some(&b"From: outer@x\r\nContent-Type: message/rfc822\r\n\r\n"[..])
        );
        assert_eq!(sec(RFC822, "1.1").as_deref(), Some(&b"Hello\r\n"[..]));
        assert_eq!(
            sec(RFC822, "1.HEADER.FIELDS (SUBJECT)").as_deref(),
            Some(&b"Subject: sub\r\n\r\n"[..])
        );
        assert_eq!(sec(RFC822, "2"), None);
        // A plain one-part message is unchanged: 1 is its body.
        assert_eq!(
            sec(b"Subject: s\r\n\r\nbody\r\n", "1").as_deref(),
            Some(&b"body\r\n"[..])
        );
    }

    #[test]
    fn decoders() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(
            decode_qp(b"caf=C3=A9=\r\n ok =ZZ"),
            "caf\u{e9} ok =ZZ".as_bytes()
        );
    }

    #[test]
    fn qp_drops_trailing_blanks_and_joins_soft_breaks_followed_by_blanks() {
        // imaptest fetch-binary-mime-qp: RFC 2045 6.7 rules 3 and 5.
        let enc = b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\n\
            foo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n";
        let dec = b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\n\
            foo\r\nbar\r\nfoo_bar\r\n";
        assert_eq!(decode_qp(enc), dec.to_vec());
        assert_eq!(dec.len(), 65);
    }
}
