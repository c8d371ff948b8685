//! Transfer decoding a chunk at a time (RFC 2045 6.7, 6.8), for BINARY
//! of a part read from the store in chunks (RFC 3516 4.2, issue 19): the
//! output is exactly [`decode_base64`](super::decode_base64)'s or
//! [`decode_qp`](super::decode_qp)'s of the whole body, whatever the
//! chunks, in memory bounded by [`QP_PENDING_MAX`] plus one line's tail.

use super::offsets::Cte;
use super::section::decode_qp_line;

/// Quoted-printable is decoded per line (trailing blanks and a final `=`
/// depend on the line's end); a line longer than this is decoded up to a
/// point where neither can matter, so it is never held whole.
pub const QP_PENDING_MAX: usize = 64 * 1024;

/// A transfer decoder fed chunk by chunk.
#[derive(Debug, Clone)]
pub enum Decoder {
    Identity,
    Base64 { acc: u32, bits: u32, done: bool },
    QuotedPrintable { pending: Vec<u8> },
}

impl Decoder {
    /// The decoder of a known encoding; `None` for [`Cte::Unknown`].
    pub fn new(cte: Cte) -> Option<Decoder> {
        match cte {
            Cte::Identity => Some(Decoder::Identity),
            Cte::Base64 => Some(Decoder::Base64 {
                acc: 0,
                bits: 0,
                done: false,
            }),
            Cte::QuotedPrintable => Some(Decoder::QuotedPrintable {
                pending: Vec::new(),
            }),
            Cte::Unknown => None,
        }
    }

    /// Decodes the next chunk, appending to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            Decoder::Identity => out.extend_from_slice(input),
            Decoder::Base64 { acc, bits, done } => {
                for &c in input {
                    if *done {
                        return;
                    }
                    let v = match c {
                        b'A'..=b'Z' => c - b'A',
                        b'a'..=b'z' => c - b'a' + 26,
                        b'0'..=b'9' => c - b'0' + 52,
                        b'+' => 62,
                        b'/' => 63,
                        // As decode_base64: padding ends the data.
                        b'=' => {
                            *done = true;
                            return;
                        }
                        _ => continue,
                    };
                    *acc = (*acc << 6) | u32::from(v);
                    *bits += 6;
                    if *bits >= 8 {
                        *bits -= 8;
                        out.push((*acc >> *bits) as u8);
                        *acc &= (1 << *bits) - 1;
                    }
                }
            }
            Decoder::QuotedPrintable { pending } => {
                let mut rest = input;
                while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                    let (line, next) = rest.split_at(nl + 1);
                    if pending.is_empty() {
                        decode_qp_line(line, out);
                    } else {
                        pending.extend_from_slice(line);
                        decode_qp_line(pending, out);
                        pending.clear();
                    }
                    rest = next;
                }
                pending.extend_from_slice(rest);
                if pending.len() > QP_PENDING_MAX {
                    let cut = match safe_cut(pending) {
                        // Blanks (and `=`) alone for longer than any
                        // conforming line (RFC 2045 6.7 rule 5: 76
                        // characters): kept as text rather than held until
                        // the line ends, so memory stays bounded; only such
                        // malformed input decodes otherwise than whole. The
                        // last two octets stay, so no `=XX` is cut.
                        0 => pending.len().saturating_sub(2),
                        cut => cut,
                    };
                    if cut > 0 {
                        let head: Vec<u8> = pending.drain(..cut).collect();
                        decode_qp_line_part(&head, out);
                    }
                }
            }
        }
    }

    /// Ends the input: the last line of quoted-printable, if it had no
    /// line break.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Decoder::QuotedPrintable { pending } = self
            && !pending.is_empty()
        {
            decode_qp_line(pending, out);
            pending.clear();
        }
    }
}

/// The longest prefix of an unfinished line that decodes the same alone
/// as within the whole line: it ends on an octet that is neither blank
/// (trailing blanks are dropped, RFC 2045 6.7 rule 3) nor `=` (a soft
/// break, rule 5), and no `=XX` escape crosses it.
fn safe_cut(line: &[u8]) -> usize {
    let mut c = line.len();
    while c >= 2 {
        let last = line.get(c - 1).copied().unwrap_or(b'=');
        let before = line.get(c - 2).copied().unwrap_or(b'=');
        if !last.is_ascii_whitespace() && last != b'=' && before != b'=' {
            return c;
        }
        c -= 1;
    }
    0
}

/// Decodes the middle of a line: escapes only (no end-of-line rules).
fn decode_qp_line_part(s: &[u8], out: &mut Vec<u8>) {
    super::section::decode_qp_escapes(s, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::{decode_base64, decode_qp};

    fn chunked(cte: Cte, data: &[u8], size: usize) -> Vec<u8> {
        let mut d = Decoder::new(cte).expect("known");
        let mut out = Vec::new();
        for c in data.chunks(size.max(1)) {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    const QP: &[&[u8]] = &[
        b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\n\
            foo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n",
        b"caf=C3=A9=\r\n ok =ZZ",
        b"no break at the end =4",
        b"=\n=\r\n==41=4=\r\r\n  \n",
        b"",
    ];

    #[test]
    fn chunked_decoding_is_the_whole_decoding() {
        let b64 = b"aGVs\r\nbG8g d29y*bGQ=\r\nignored";
        for size in 1..12 {
            assert_eq!(chunked(Cte::Base64, b64, size), decode_base64(b64));
            for qp in QP {
                assert_eq!(chunked(Cte::QuotedPrintable, qp, size), decode_qp(qp));
            }
            assert_eq!(chunked(Cte::Identity, b64, size), b64.to_vec());
        }
    }

    #[test]
    fn a_long_qp_line_is_decoded_in_bounded_memory_and_the_same() {
        // Lines far longer than QP_PENDING_MAX, cut at every kind of
        // octet: escapes, blanks, soft breaks.
        let mut line = Vec::new();
        while line.len() < 3 * QP_PENDING_MAX {
            line.extend_from_slice(b"ab=3D  \t=4");
            line.extend_from_slice(b"1=\t=");
        }
        let mut data = line.clone();
        data.extend_from_slice(b"= \t\r\nnext\r\n");
        data.extend_from_slice(&line);
        for size in [7, 4096, 65_537] {
            let mut d = Decoder::new(Cte::QuotedPrintable).expect("qp");
            let mut out = Vec::new();
            for c in data.chunks(size) {
                d.feed(c, &mut out);
                let Decoder::QuotedPrintable { pending } = &d else {
                    panic!("not qp")
                };
                assert!(pending.len() <= QP_PENDING_MAX + size, "{}", pending.len());
            }
            d.finish(&mut out);
            assert_eq!(out, decode_qp(&data), "chunks of {size}");
        }
    }

    #[test]
    fn a_line_of_blanks_alone_is_held_in_bounded_memory() {
        let blanks = vec![b' '; 4 * QP_PENDING_MAX];
        for tail in [b"x\r\n".as_slice(), b"\r\n".as_slice()] {
            let data = [blanks.as_slice(), tail].concat();
            let mut d = Decoder::new(Cte::QuotedPrintable).expect("qp");
            let mut out = Vec::new();
            for c in data.chunks(4096) {
                d.feed(c, &mut out);
                let Decoder::QuotedPrintable { pending } = &d else {
                    panic!("not qp")
                };
                assert!(pending.len() <= QP_PENDING_MAX + 4096, "{}", pending.len());
            }
            d.finish(&mut out);
            if tail.starts_with(b"x") {
                // Blanks before text are text: the same as whole.
                assert_eq!(out, decode_qp(&data));
            } else {
                assert!(out.ends_with(b"\r\n") && out.len() <= data.len());
            }
        }
    }
}
