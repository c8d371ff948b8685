//! BODY[section] and BINARY[part] (RFC 9051 6.4.5, RFC 3516): the octets
//! of one part, alone.

use super::{Part, PartKind};
use crate::fetch::{Section, SectionText};

/// The part at a part path (RFC 9051 6.4.5 numbering): the children of a
/// multipart are numbered from 1; a message/rfc822 part's numbers refer to
/// the encapsulated message's parts; a non-multipart message has part 1,
/// its body.
pub fn resolve<'p, 'a>(root: &'p Part<'a>, path: &[u32]) -> Option<&'p Part<'a>> {
    let mut node = root;
    for &n in path {
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
    let mut out = Vec::new();
    for f in &p.fields {
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

/// Quoted-printable (RFC 2045 6.7): soft line breaks removed, `=XX`
/// decoded, malformed escapes kept as they are.
pub fn decode_qp(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16);
    while let Some(&c) = s.get(i) {
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        match (s.get(i + 1), s.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(
            decode_qp(b"caf=C3=A9=\r\n ok =ZZ"),
            "caf\u{e9} ok =ZZ".as_bytes()
        );
    }
}
