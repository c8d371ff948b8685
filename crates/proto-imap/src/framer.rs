//! Cuts the client's byte stream into whole commands (RFC 9051 2.2.1,
//! 4.3, 7.5): a command is lines joined by literals. The framer finds each
//! literal announcement `{n}` / `{n+}`, tells the driver when to send a
//! continuation request for a synchronising one, and enforces the limits
//! without ever buffering past them (STYLE.md: discard state, answer once).
//!
//! Limits:
//! - a line (outside literals) is at most [`FramerLimits::max_line`];
//! - a literal of APPEND at most `max_append_literal`, any other literal
//!   `max_literal`; the literals of one command together at most the
//!   larger of the two (a MULTIAPPEND, RFC 3502, is buffered whole, so
//!   its messages share one message's limit);
//! - a non-synchronising literal over the limit cannot be refused without
//!   losing sync with the client (RFC 7888 4): the driver answers
//!   `BAD [TOOBIG]` and closes.

use crate::lexer::is_tag_char;

/// Longest command line (outside literals). RFC 7162 4 recommends
/// accepting at least 8192 octets; RFC 2971 3.3 allows an ID command of 30
/// pairs of 30-octet fields and 1024-octet values, quoted: about 32 KiB on
/// one line. 64 KiB holds that with room, as Dovecot's limit does.
pub const MAX_LINE: usize = 64 * 1024;

/// Literals of commands other than APPEND (passwords, search strings,
/// mailbox names): small.
pub const MAX_LITERAL: usize = 64 * 1024;

/// RFC 9051 4.3 / RFC 7888 (LITERAL-): non-synchronising literals of at
/// most 4096 octets are always allowed.
pub const LITERAL_MINUS_MAX: usize = 4096;

/// Before login every literal is at most this (issue 19: a client that has
/// not logged in must not make the server buffer a 25 MiB APPEND it will
/// refuse anyway); 8 KiB holds LOGIN or AUTHENTICATE with a literal.
pub const PRE_AUTH_LITERAL_MAX: usize = 8192;

/// Most literals in one command: bounds the work per command.
pub const MAX_LITERALS_PER_COMMAND: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct FramerLimits {
    pub max_line: usize,
    pub max_literal: usize,
    pub max_append_literal: usize,
    /// APPEND literals larger than this are not buffered with the command
    /// but handed to the driver ([`Frame::Stream`]), which writes them to
    /// the spool as they arrive (issue 19). `usize::MAX`: never.
    pub stream_above: usize,
}

impl Default for FramerLimits {
    fn default() -> Self {
        FramerLimits {
            max_line: MAX_LINE,
            max_literal: MAX_LITERAL,
            max_append_literal: 64 * 1024 * 1024,
            stream_above: usize::MAX,
        }
    }
}

/// What the buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: the first `n` bytes of the buffer.
    Complete(usize),
    /// Read more.
    Incomplete,
    /// A synchronising literal was announced and is acceptable: send a
    /// continuation request ("+ ..."), then read more.
    Continue,
    /// The line is too long: `n` bytes were dropped (the buffer's first `n`
    /// bytes are garbage to discard). `done` is true once the end of the
    /// long line was seen (answer `BAD` then, with `tag` if known).
    LineTooLong {
        discard: usize,
        done: bool,
        tag: Option<String>,
    },
    /// A literal over the limit: the first `discard` bytes (the command up
    /// to the announcement) are to be dropped. `sync`: it was synchronising
    /// (answer `NO [TOOBIG]`, no "+", the client will not send it);
    /// otherwise the client is already sending it: `BAD [TOOBIG]`, close.
    LiteralTooBig {
        discard: usize,
        sync: bool,
        tag: Option<String>,
    },
    /// An APPEND literal over `stream_above`: its `size` octets start at
    /// offset `data` (after its announcement line) and are for the driver
    /// to take out of the stream (and answer "+" first when `sync`).
    /// `announce` is the announcement's range in the buffer (`{n}`,
    /// `{n+}`, `~{n}` without the `~`): the driver replaces it with `{0}`
    /// once it took the literal, so that the command parses with an empty
    /// literal in its place.
    Stream {
        announce: std::ops::Range<usize>,
        data: usize,
        size: u64,
        sync: bool,
        tag: Option<String>,
    },
}

/// The framer's memory between calls: how far the current command was
/// checked, and whether the literal at that point was already continued.
#[derive(Debug, Default)]
pub struct Framer {
    limits: FramerLimits,
    /// Offset (in the current command) of the next line to scan.
    pos: usize,
    literals: usize,
    /// Octets of the literals already read whole.
    literal_bytes: u64,
    /// Start offset of the literal data already answered with "+".
    continued: Option<usize>,
    /// Discarding the rest of an over-long line.
    discarding: bool,
    discard_tag: Option<String>,
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Framer {
            limits,
            ..Framer::default()
        }
    }

    /// New limits from the next literal on (the session logged in).
    pub fn set_limits(&mut self, limits: FramerLimits) {
        self.limits = limits;
    }

    /// Forgets the current command (the driver dropped it: a streamed
    /// literal it refused).
    pub fn restart(&mut self) {
        self.reset();
        self.discarding = false;
        self.discard_tag = None;
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.literals = 0;
        self.literal_bytes = 0;
        self.continued = None;
    }

    /// Looks at the buffer, whose first byte starts the current command.
    /// After `Complete(n)`, `LineTooLong` or `LiteralTooBig` the caller
    /// drops the bytes said and calls again.
    pub fn next(&mut self, buf: &[u8]) -> Frame {
        if self.discarding {
            return match buf.iter().position(|&b| b == b'\n') {
                // Nothing left to drop: asking the caller to drop nothing
                // would have it call again at once, for ever.
                None if buf.is_empty() => Frame::Incomplete,
                None => Frame::LineTooLong {
                    discard: buf.len(),
                    done: false,
                    tag: None,
                },
                Some(i) => {
                    self.discarding = false;
                    Frame::LineTooLong {
                        discard: i + 1,
                        done: true,
                        tag: self.discard_tag.take(),
                    }
                }
            };
        }
        loop {
            let rest = buf.get(self.pos..).unwrap_or_default();
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                // The same bound as for a whole line below (max_line plus
                // CRLF), so that how the input was split never matters.
                if rest.len() > self.limits.max_line + 1 {
                    return self.too_long(buf);
                }
                return Frame::Incomplete;
            };
            if nl + 1 > self.limits.max_line + 2 {
                let tag = self.tag_of(buf);
                let discard = self.pos + nl + 1;
                self.reset();
                return Frame::LineTooLong {
                    discard,
                    done: true,
                    tag,
                };
            }
            let line = rest.get(..nl).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line_end = self.pos + nl + 1;
            let Some((size, sync)) = literal_announcement(line) else {
                self.reset();
                return Frame::Complete(line_end);
            };
            let limit = if is_append(buf) {
                self.limits.max_append_literal
            } else {
                self.limits.max_literal
            };
            // `literals` counts the literals already read whole: this one
            // is seen again on every call until all its octets are in.
            let total = self.literal_bytes.saturating_add(size);
            if size > limit as u64
                || total > self.limits.max_append_literal.max(self.limits.max_literal) as u64
                || self.literals >= MAX_LITERALS_PER_COMMAND
            {
                let tag = self.tag_of(buf);
                self.reset();
                return Frame::LiteralTooBig {
                    discard: line_end,
                    sync,
                    tag,
                };
            }
            if is_append(buf) && size > self.limits.stream_above as u64 {
                let tag = self.tag_of(buf);
                let open = line.iter().rposition(|&b| b == b'{').unwrap_or(0);
                return Frame::Stream {
                    announce: self.pos + open..self.pos + line.len(),
                    data: line_end,
                    size,
                    sync,
                    tag,
                };
            }
            let size = size as usize;
            let have = buf.len().saturating_sub(line_end);
            if have < size {
                if sync && self.continued != Some(line_end) && have == 0 {
                    self.continued = Some(line_end);
                    return Frame::Continue;
                }
                return Frame::Incomplete;
            }
            self.pos = line_end + size;
            self.literals += 1;
            self.literal_bytes = total;
        }
    }

    /// The command's tag, looked for within the first `max_line` octets
    /// only: an over-long line is reported before all of it has arrived,
    /// and the answer must not depend on how much had.
    fn tag_of(&self, buf: &[u8]) -> Option<String> {
        tag_of(buf.get(..self.limits.max_line).unwrap_or(buf))
    }

    fn too_long(&mut self, buf: &[u8]) -> Frame {
        self.discarding = true;
        self.discard_tag = self.tag_of(buf);
        self.reset();
        Frame::LineTooLong {
            discard: buf.len(),
            done: false,
            tag: None,
        }
    }
}

/// `{n}` or `{n+}` at the end of a line: (n, synchronising).
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = inner.get(open + 1..)?;
    let mut sync = true;
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
        sync = false;
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

/// The tag at the start of a command, if it is a valid one.
pub fn tag_of(buf: &[u8]) -> Option<String> {
    let end = buf.iter().position(|&b| !is_tag_char(b))?;
    if end == 0 || buf.get(end) != Some(&b' ') {
        return None;
    }
    buf.get(..end)
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(str::to_string)
}

/// True if the command is APPEND (or UID-less forms thereof): its literal
/// may be as large as a message.
fn is_append(buf: &[u8]) -> bool {
    let Some(sp) = buf.iter().position(|&b| b == b' ') else {
        return false;
    };
    buf.get(sp + 1..sp + 8)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(FramerLimits {
            max_line: 100,
            max_literal: 10,
            max_append_literal: 1000,
            stream_above: usize::MAX,
        })
    }

    #[test]
    fn a_big_append_literal_is_left_to_the_driver_then_parses_as_empty() {
        let mut f = Framer::new(FramerLimits {
            stream_above: 100,
            ..FramerLimits::default()
        });
        let mut buf = b"a1 APPEND INBOX {500}\r\nxx".to_vec();
        let Frame::Stream {
            announce,
            data,
            size,
            sync,
            tag,
        } = f.next(&buf)
        else {
            panic!("not streamed: {:?}", f.next(&buf));
        };
        assert_eq!(
            (&buf[announce.clone()], data, size, sync),
            (&b"{500}"[..], 23, 500, true)
        );
        assert_eq!(tag.as_deref(), Some("a1"));
        // The driver took the literal and put an empty one in its place.
        buf.truncate(data);
        buf.extend_from_slice(b"\r\n");
        buf.splice(announce, b"{0}".iter().copied());
        assert_eq!(f.next(&buf), Frame::Complete(buf.len()));
        // A small one is buffered as before, and other commands never.
        let mut f = Framer::new(FramerLimits {
            stream_above: 100,
            ..FramerLimits::default()
        });
        assert_eq!(f.next(b"a APPEND INBOX {50}\r\n"), Frame::Continue);
        assert!(matches!(
            Framer::new(FramerLimits {
                stream_above: 1,
                ..FramerLimits::default()
            })
            .next(b"a LOGIN {50}\r\n"),
            Frame::Continue
        ));
    }

    #[test]
    fn simple_line_is_complete() {
        assert_eq!(framer().next(b"a NOOP\r\nb"), Frame::Complete(8));
        assert_eq!(framer().next(b"a NOOP"), Frame::Incomplete);
    }

    #[test]
    fn sync_literal_asks_continuation_once() {
        let mut f = framer();
        let cmd = b"a LOGIN {3}\r\n".to_vec();
        assert_eq!(f.next(&cmd), Frame::Continue);
        assert_eq!(f.next(&cmd), Frame::Incomplete);
        let mut more = cmd.clone();
        more.extend_from_slice(b"bob {2}\r\n");
        assert_eq!(f.next(&more), Frame::Continue);
        more.extend_from_slice(b"pw\r\n");
        assert_eq!(f.next(&more), Frame::Complete(more.len()));
    }

    #[test]
    fn non_sync_literal_needs_no_continuation() {
        let mut f = framer();
        assert_eq!(f.next(b"a LOGIN {3+}\r\nbo"), Frame::Incomplete);
        let all = b"a LOGIN {3+}\r\nbob x\r\n";
        assert_eq!(f.next(all), Frame::Complete(all.len()));
    }

    #[test]
    fn oversized_literals_are_refused_before_reading_them() {
        let r = framer().next(b"a1 LOGIN {4294967296}\r\n");
        assert_eq!(
            r,
            Frame::LiteralTooBig {
                discard: 23,
                sync: true,
                tag: Some("a1".into())
            }
        );
        assert!(matches!(
            framer().next(b"a1 LOGIN {11+}\r\n"),
            Frame::LiteralTooBig { sync: false, .. }
        ));
        // APPEND gets the larger limit.
        assert_eq!(framer().next(b"a APPEND x {500}\r\n"), Frame::Continue);
    }

    #[test]
    fn the_literals_of_one_command_share_the_append_limit() {
        // Two 600-octet messages of a MULTIAPPEND: each fits the 1000
        // limit, both do not; refused before the second is read.
        let mut f = framer();
        let mut buf = b"a APPEND x {600+}\r\n".to_vec();
        buf.resize(buf.len() + 600, b'x');
        buf.extend_from_slice(b" {600}\r\n");
        assert_eq!(
            f.next(&buf),
            Frame::LiteralTooBig {
                discard: buf.len(),
                sync: true,
                tag: Some("a".into())
            }
        );
        // The next command starts afresh.
        assert_eq!(f.next(b"b APPEND x {600}\r\n"), Frame::Continue);
    }

    #[test]
    fn a_literal_arriving_in_many_pieces_is_counted_once() {
        // The same literal seen on 100 reads is still one literal.
        let mut f = Framer::new(FramerLimits {
            max_line: 100,
            max_literal: 10,
            max_append_literal: 1000,
            stream_above: usize::MAX,
        });
        let mut buf = b"a APPEND x {200}\r\n".to_vec();
        assert_eq!(f.next(&buf), Frame::Continue);
        for _ in 0..199 {
            buf.push(b'x');
            assert_eq!(f.next(&buf), Frame::Incomplete);
        }
        buf.extend_from_slice(b"x\r\n");
        assert_eq!(f.next(&buf), Frame::Complete(buf.len()));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted_however_it_arrives() {
        let line = [b"t1 NOOP ".as_slice(), &[b'x'; 92]].concat();
        assert_eq!(line.len(), 100);
        let mut whole = line.clone();
        whole.extend_from_slice(b"\r\n");
        assert_eq!(framer().next(&whole), Frame::Complete(whole.len()));
        let mut f = framer();
        assert_eq!(f.next(&line), Frame::Incomplete);
        assert_eq!(f.next(&[&line[..], b"\r"].concat()), Frame::Incomplete);
        assert_eq!(f.next(&whole), Frame::Complete(whole.len()));
    }

    #[test]
    fn long_line_is_discarded_and_reported_once() {
        let mut f = framer();
        let long = [b"t1 NOOP ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(
            f.next(&long),
            Frame::LineTooLong {
                discard: long.len(),
                done: false,
                tag: None
            }
        );
        assert_eq!(
            f.next(b"xxx\r\nt2 NOOP\r\n"),
            Frame::LineTooLong {
                discard: 5,
                done: true,
                tag: Some("t1".into())
            }
        );
        assert_eq!(f.next(b"t2 NOOP\r\n"), Frame::Complete(9));
    }

    #[test]
    fn discarding_an_empty_buffer_asks_for_more() {
        // A driver drops what it is told and calls again: once the long
        // line's start is dropped, it must be told to read, not to drop
        // zero bytes (which made it spin).
        let mut f = framer();
        let long = [b"t1 NOOP ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(
            f.next(&long),
            Frame::LineTooLong { done: false, .. }
        ));
        assert_eq!(f.next(b""), Frame::Incomplete);
        assert_eq!(
            f.next(b"x\r\n"),
            Frame::LineTooLong {
                discard: 3,
                done: true,
                tag: Some("t1".into())
            }
        );
    }
}
