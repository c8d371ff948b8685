//! Splitting the command stream into lines (RFC 1939 3: commands end with
//! CRLF; a bare LF is accepted too, for people at telnet).
//!
//! An over-long line is never buffered: the splitter switches to discarding
//! and reports [`Line::TooLong`] once, when the line finally ends, so the
//! session answers one `-ERR` and goes on with the next line.

/// RFC 2449 4 limits a command line to 255 octets and a status line to 512;
/// we accept command lines up to 512 octets, CRLF included (SPEC 2).
pub const MAX_COMMAND_LINE: usize = 512;

/// The longest client response line to a SASL challenge, CRLF included.
/// RFC 5034 4 exempts these lines from the command limit; a PLAIN response
/// is base64 of three 255-octet fields at most, about 1 KiB, so 2 KiB
/// leaves room without letting a client make us buffer much.
pub const MAX_SASL_LINE: usize = 2048;

/// One result of [`LineSplitter::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its CR LF.
    Line(&'a [u8]),
    /// A line longer than the limit has ended; its content was discarded.
    TooLong,
}

/// Finds lines in a byte stream without copying or buffering them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSplitter {
    max_len: usize,
    /// True while the rest of an over-long line is being skipped.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max_len` octets, counting the CRLF.
    pub fn new(max_len: usize) -> Self {
        LineSplitter {
            max_len: max_len.max(1),
            discarding: false,
        }
    }

    /// Changes the limit for the lines that follow (the SASL exchange of
    /// RFC 5034 has its own).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.max(1);
    }

    /// True while the rest of an over-long line is being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks for the next line at the start of `buf`; returns
    /// `(consumed, line)`. `(0, None)` means "read more". Once `max_len`
    /// octets pass without LF, everything given is consumed (never kept)
    /// until the LF, which yields [`Line::TooLong`] exactly once.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> (usize, Option<Line<'a>>) {
        let lf = buf.iter().position(|&b| b == b'\n');
        if self.discarding {
            return match lf {
                Some(i) => {
                    self.discarding = false;
                    (i.saturating_add(1), Some(Line::TooLong))
                }
                None => (buf.len(), None),
            };
        }
        match lf {
            Some(i) => {
                let consumed = i.saturating_add(1);
                if consumed > self.max_len {
                    return (consumed, Some(Line::TooLong));
                }
                let line = buf.get(..i).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (consumed, Some(Line::Line(line)))
            }
            None if buf.len() >= self.max_len => {
                self.discarding = true;
                (buf.len(), None)
            }
            None => (0, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes the way the driver does.
    fn split_all(max_len: usize, input: &[u8], step: usize) -> Vec<Option<Vec<u8>>> {
        let mut splitter = LineSplitter::new(max_len);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                let (consumed, line) = splitter.next(&buf);
                let done = line.is_none();
                match line {
                    Some(Line::Line(l)) => out.push(Some(l.to_vec())),
                    Some(Line::TooLong) => out.push(None),
                    None => {}
                }
                buf.drain(..consumed);
                assert!(buf.len() < max_len, "splitter let the buffer grow");
                if done {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn crlf_and_bare_lf_end_a_line() {
        assert_eq!(
            split_all(512, b"USER a\r\nSTAT\nQUIT\r\n", 3),
            vec![
                Some(b"USER a".to_vec()),
                Some(b"STAT".to_vec()),
                Some(b"QUIT".to_vec())
            ]
        );
    }

    #[test]
    fn line_of_exactly_512_octets_is_accepted_513_is_not() {
        let mut ok = vec![b'a'; 510];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(LineSplitter::new(512).next(&ok).0, 512);
        assert!(matches!(
            LineSplitter::new(512).next(&ok).1,
            Some(Line::Line(_))
        ));
        let mut long = vec![b'a'; 511];
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            LineSplitter::new(512).next(&long),
            (513, Some(Line::TooLong))
        );
    }

    #[test]
    fn ten_thousand_octet_line_is_reported_once_then_lines_go_on() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for step in [1, 7, 511, 512, 4096, 20_000] {
            assert_eq!(
                split_all(512, &input, step),
                vec![None, Some(b"NOOP".to_vec())],
                "step {step}"
            );
        }
    }

    #[test]
    fn limit_can_change_between_lines() {
        let mut s = LineSplitter::new(8);
        s.set_max_len(MAX_SASL_LINE);
        let line = [b'A'; 1000];
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        assert_eq!(s.next(&input), (1002, Some(Line::Line(&line[..]))));
    }
}
