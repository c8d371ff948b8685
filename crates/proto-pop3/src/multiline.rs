//! Multi-line responses (RFC 1939 3): after the `+OK` line come the lines
//! of the body, each ending in CRLF; a line that begins with "." gets one
//! more "." in front (dot-stuffing); the end is a line holding only ".".
//!
//! [`DotStuffer`] works on chunks, so a large message goes out in pieces
//! without a second copy of it. Message lines pass through untouched apart
//! from the stuffing; a message that does not end in CRLF gets one before
//! the terminator. [`top`] cuts a message for TOP (RFC 1939 7), and
//! [`parse_multiline`] is the client side, for tests.

use crate::Parsed;

/// Dot-stuffs a body handed over in chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotStuffer {
    /// True when the next octet starts a line.
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
        }
    }

    /// Appends `chunk` to `out`, doubling a "." that starts a line. A line
    /// starts after LF (stored messages are CRLF; a bare LF still ends a
    /// line for a client, so a dot after it is stuffed too).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len());
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.at_line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (line, after) = rest.split_at(i.saturating_add(1));
                    out.extend_from_slice(line);
                    self.at_line_start = true;
                    rest = after;
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// Ends the body: CRLF if the last line is open, then ".\r\n".
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Writes a whole multi-line body made of `lines` (without line ends), as
/// for LIST, UIDL and CAPA.
pub fn write_lines<S: AsRef<str>>(lines: &[S], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::new();
    for line in lines {
        stuffer.push(line.as_ref().as_bytes(), out);
        stuffer.push(b"\r\n", out);
    }
    stuffer.finish(out);
}

/// [`top`] for a message read in chunks (issue 19: a big message is never
/// read whole): says how much of each chunk belongs to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopCut {
    in_header: bool,
    /// Octets of the current line so far, and whether they are just "\r".
    line_len: usize,
    only_cr: bool,
    left: u64,
    done: bool,
}

impl TopCut {
    pub fn new(lines: u64) -> TopCut {
        TopCut {
            in_header: true,
            line_len: 0,
            only_cr: false,
            left: lines,
            done: false,
        }
    }

    /// True once the answer is complete: no more chunks are needed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// How many leading octets of `chunk` (the next part of the message)
    /// belong to the answer.
    pub fn take(&mut self, chunk: &[u8]) -> usize {
        for (i, &b) in chunk.iter().enumerate() {
            if self.done {
                return i;
            }
            let first = self.line_len == 0;
            self.line_len += 1;
            if b != b'\n' {
                self.only_cr = first && b == b'\r';
                continue;
            }
            // A whole line (up to its LF).
            let empty = self.line_len == 1 || (self.line_len == 2 && self.only_cr);
            if self.in_header {
                if empty {
                    self.in_header = false;
                    self.done = self.left == 0;
                }
            } else {
                self.left = self.left.saturating_sub(1);
                self.done = self.left == 0;
            }
            self.line_len = 0;
            self.only_cr = false;
        }
        chunk.len()
    }
}

/// RFC 1939 7: the header, the blank line after it, and the first `lines`
/// lines of the body. A message without a blank line is all header.
pub fn top(message: &[u8], lines: u64) -> &[u8] {
    let mut pos = 0usize;
    // The header ends with the first empty line.
    let mut body_start = None;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or_default();
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i.saturating_add(1));
        let line = rest.get(..line_len).unwrap_or_default();
        pos = pos.saturating_add(line_len);
        if line == b"\r\n" || line == b"\n" {
            body_start = Some(pos);
            break;
        }
    }
    let Some(mut end) = body_start else {
        return message;
    };
    let mut left = lines;
    while left > 0 && end < message.len() {
        let rest = message.get(end..).unwrap_or_default();
        end = end.saturating_add(
            rest.iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i.saturating_add(1)),
        );
        left -= 1;
    }
    message.get(..end).unwrap_or(message)
}

/// Client side: reads a multi-line body (the part after the status line)
/// from the start of `buf`, undoing the dot-stuffing. Returns the body in
/// CRLF form and the octets consumed, terminator included.
pub fn parse_multiline(buf: &[u8]) -> Parsed<Vec<u8>> {
    let mut body = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Parsed::Incomplete;
        };
        let line = rest.get(..=lf).unwrap_or_default();
        pos = pos.saturating_add(lf).saturating_add(1);
        if line == b".\r\n" || line == b".\n" {
            return Parsed::Complete(body, pos);
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_cut_in_chunks_agrees_with_top() {
        let messages: [&[u8]; 5] = [
            b"A: b\r\nC: d\r\n\r\nl1\r\nl2\r\nl3\r\n",
            b"A: b\n\nl1\nl2",
            b"no blank line\r\nat all",
            b"\r\n\r\nx\r\n",
            b"A: b\r\n\r\n\r\n.\r\nlast",
        ];
        for m in messages {
            for lines in 0..5 {
                let want = top(m, lines);
                for piece in 1..=m.len() {
                    let mut cut = TopCut::new(lines);
                    let mut got = Vec::new();
                    for chunk in m.chunks(piece) {
                        let n = cut.take(chunk);
                        got.extend_from_slice(&chunk[..n]);
                        if cut.is_done() {
                            break;
                        }
                    }
                    assert_eq!(got, want, "{m:?} TOP {lines} in pieces of {piece}");
                }
            }
        }
    }

    fn stuff(body: &[u8], step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = DotStuffer::new();
        for chunk in body.chunks(step.max(1)) {
            s.push(chunk, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn leading_dots_are_doubled_and_body_ends_with_dot_line() {
        let body = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nnot.first\r\n.\r\n";
        assert_eq!(
            stuff(body, 1000),
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nnot.first\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn open_last_line_gets_crlf_before_the_terminator() {
        assert_eq!(stuff(b"a\r\nb", 1), b"a\r\nb\r\n.\r\n");
        assert_eq!(stuff(b"", 1), b".\r\n");
    }

    #[test]
    fn rfc_1939_list_example() {
        let mut out = Vec::new();
        write_lines(&["1 120", "2 200"], &mut out);
        assert_eq!(out, b"1 120\r\n2 200\r\n.\r\n");
    }

    #[test]
    fn top_0_is_the_header_and_blank_line() {
        let m = b"A: 1\r\nB: 2\r\n\r\nline1\r\nline2\r\n";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 1), b"A: 1\r\nB: 2\r\n\r\nline1\r\n");
        assert_eq!(top(m, 2), &m[..]);
        assert_eq!(top(m, u64::MAX), &m[..]);
    }

    #[test]
    fn top_of_message_without_body_is_the_whole_message() {
        assert_eq!(top(b"A: 1\r\nB: 2\r\n", 0), b"A: 1\r\nB: 2\r\n");
        assert_eq!(top(b"", 5), b"");
    }

    #[test]
    fn stuffed_bodies_round_trip_whatever_the_chunking() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 6] = [b".", b"..", b"a", b"\r\n", b" ", b"x."];
        for _ in 0..2000 {
            let mut body = Vec::new();
            for _ in 0..next() % 20 {
                body.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            // Stored messages are CRLF-canonical: no bare CR or LF.
            body.extend_from_slice(b"\r\n");
            let step = (next() % 7 + 1) as usize;
            let wire = stuff(&body, step);
            assert_eq!(stuff(&body, 4096), wire, "chunking changed the output");
            match parse_multiline(&wire) {
                Parsed::Complete(back, n) => {
                    assert_eq!(back, body);
                    assert_eq!(n, wire.len());
                }
                Parsed::Incomplete => panic!("incomplete {wire:?}"),
            }
            for cut in 0..wire.len() {
                assert_eq!(parse_multiline(&wire[..cut]), Parsed::Incomplete);
            }
        }
    }
}
