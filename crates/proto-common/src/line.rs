//! Splitting a command stream into lines, for the line-based protocols
//! (SMTP, RFC 5321 2.3.8 and 4.5.3.1.4; POP3, RFC 1939 3).
//!
//! Commands end with CRLF; a bare LF is accepted too because people type at
//! telnet and some clients get it wrong (SPEC section 1, tolerance). An
//! over-long line is never buffered: the splitter switches to discarding and
//! reports [`Line::TooLong`] once, when the line finally ends, so the session
//! can answer `500 5.5.2` exactly once (as Stalwart and Postfix do).

/// One result of [`LineSplitter::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its CR LF.
    Line(&'a [u8]),
    /// A line longer than the limit has ended; its content was discarded.
    TooLong,
}

/// Finds command lines in a byte stream without copying or buffering them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSplitter {
    max_len: usize,
    /// True while we are skipping the rest of an over-long line.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max_len` octets, counting the CRLF.
    pub fn new(max_len: usize) -> Self {
        // A limit of 0 could never make progress on a bare "\n"; 1 is the
        // smallest limit under which some line fits.
        LineSplitter {
            max_len: max_len.max(1),
            discarding: false,
        }
    }

    /// True while the rest of an over-long line is being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Changes the limit for the lines that follow (POP3's SASL exchange,
    /// RFC 5034 4, has its own).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.max(1);
    }

    /// Looks for the next line at the start of `buf`. Returns `(consumed, line)`:
    ///
    /// - a line ends at LF; a CR before it is stripped (bare LF accepted:
    ///   SPEC tolerance); the returned slice has no CR/LF.
    /// - `(0, None)`: need more data (`buf` has no LF and is shorter than `max_len`).
    /// - if `max_len` bytes pass without LF: switch to discarding; consume
    ///   everything given (never buffer it), return `(n, None)` until the LF
    ///   arrives, then return `(consumed_through_LF, Some(Line::TooLong))`
    ///   exactly once and go back to normal.
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
                // The limit has passed without an LF: whatever comes next, this
                // line is too long, so drop what we have rather than hold it.
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

    /// Feeds `input` in pieces of `step` bytes through a caller-side buffer,
    /// the way the tokio driver does, and collects the lines.
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
                assert!(buf.len() < max_len.max(1), "splitter let the buffer grow");
                if done {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn crlf_and_bare_lf_both_end_a_line() {
        let lines = split_all(512, b"HELO a\r\nNOOP\nQUIT\r\n", 100);
        assert_eq!(
            lines,
            vec![
                Some(b"HELO a".to_vec()),
                Some(b"NOOP".to_vec()),
                Some(b"QUIT".to_vec())
            ]
        );
    }

    #[test]
    fn incomplete_line_consumes_nothing() {
        let mut s = LineSplitter::new(512);
        assert_eq!(s.next(b"HELO a\r"), (0, None));
        assert_eq!(s.next(b""), (0, None));
    }

    #[test]
    fn line_of_exactly_max_len_is_accepted() {
        let mut line = vec![b'a'; 510];
        line.extend_from_slice(b"\r\n");
        let mut s = LineSplitter::new(512);
        let (n, l) = s.next(&line);
        assert_eq!(n, 512);
        assert_eq!(l, Some(Line::Line(&line[..510])));
    }

    #[test]
    fn line_one_over_max_len_is_too_long() {
        let mut line = vec![b'a'; 511];
        line.extend_from_slice(b"\r\n");
        let mut s = LineSplitter::new(512);
        assert_eq!(s.next(&line), (513, Some(Line::TooLong)));
    }

    #[test]
    fn over_long_line_reports_too_long_once() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for step in [1, 7, 512, 513, 10_000] {
            let lines = split_all(512, &input, step);
            assert_eq!(lines, vec![None, Some(b"NOOP".to_vec())], "step {step}");
        }
    }

    #[test]
    fn discarding_consumes_everything_until_lf() {
        let mut s = LineSplitter::new(8);
        assert_eq!(s.next(b"12345678"), (8, None));
        assert!(s.is_discarding());
        assert_eq!(s.next(b"abc"), (3, None));
        assert_eq!(s.next(b"abc\r\nNOOP\r\n"), (5, Some(Line::TooLong)));
        assert!(!s.is_discarding());
        assert_eq!(s.next(b"NOOP\r\n"), (6, Some(Line::Line(b"NOOP"))));
    }

    #[test]
    fn empty_line_is_a_line() {
        let mut s = LineSplitter::new(512);
        assert_eq!(s.next(b"\r\n"), (2, Some(Line::Line(b""))));
        assert_eq!(s.next(b"\n"), (1, Some(Line::Line(b""))));
    }
}
