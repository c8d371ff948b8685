//! Modified UTF-7 for mailbox names (RFC 3501 5.1.3), used with IMAP4rev1
//! clients; IMAP4rev2 clients send UTF-8 (RFC 9051 5.1).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Encodes a UTF-8 name as modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk.first().copied().unwrap_or(0),
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(B64[idx]));
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes a modified UTF-7 name; None when it is not valid modified
/// UTF-7 (8-bit bytes, bad base64, unpaired surrogates).
pub fn decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = name.get(i) {
        if !(0x20..0x7f).contains(&c) {
            return None;
        }
        if c != b'&' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let end = i + 1 + name.get(i + 1..)?.iter().position(|&b| b == b'-')?;
        let run = name.get(i + 1..end)?;
        if run.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut units: Vec<u16> = Vec::new();
            let mut bytes: Vec<u8> = Vec::new();
            for &b in run {
                bits = (bits << 6) | b64_value(b)?;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push(((bits >> nbits) & 0xff) as u8);
                }
            }
            if !bytes.len().is_multiple_of(2) || bytes.is_empty() {
                return None;
            }
            for pair in bytes.chunks_exact(2) {
                if let [a, b] = pair {
                    units.push(u16::from_be_bytes([*a, *b]));
                }
            }
            let s = String::from_utf16(&units).ok()?;
            // Printable ASCII must not be base64-encoded.
            if s.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&s);
        }
        i = end + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example_round_trips() {
        // RFC 3501 5.1.3: "~peter/mail/日本語/台北"
        let name = "~peter/mail/\u{65e5}\u{672c}\u{8a9e}/\u{53f0}\u{5317}";
        let wire = "~peter/mail/&ZeVnLIqe-/&U,BTFw-";
        assert_eq!(encode(name), wire);
        assert_eq!(decode(wire.as_bytes()).as_deref(), Some(name));
    }

    #[test]
    fn ampersand_and_bad_input() {
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode(b"A&-B").as_deref(), Some("A&B"));
        assert_eq!(decode(b"&Jjo!"), None);
        assert_eq!(decode(b"caf\xc3\xa9"), None);
        assert_eq!(decode(b"&AGE-"), None, "ASCII must not be encoded");
        for s in ["Entw\u{fc}rfe", "\u{1f600} smile", "a&b&c", "Gel\u{f6}scht"] {
            assert_eq!(decode(encode(s).as_bytes()).as_deref(), Some(s));
        }
    }
}
