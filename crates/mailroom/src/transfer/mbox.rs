//! mboxrd (the "From_"-quoting mbox variant, as mutt, Thunderbird and
//! Dovecot's `mbox` format read it): a reader that streams one message
//! at a time, line by line, to a sink, so an import's memory is a line's
//! piece and the header whatever the size of the file or of a message
//! (issue 19: a big message goes on to a spool file), and a writer.
//!
//! mboxrd quoting: every line that starts with `From ` is a separator; a
//! body line matching `^>*From ` is written with one more `>` and read
//! back with one fewer, so the round trip is exact. Messages in the store
//! are CRLF (SPEC 1); the file uses LF.

use std::io::{self, BufRead, Write};

/// Largest message an import takes; a larger one is skipped and reported
/// (SPEC 8: bounded work on any input). Streamed, it costs the spool
/// file, not memory.
pub const MAX_IMPORT_MESSAGE: usize = 64 * 1024 * 1024;

/// How much of a message's start the reader keeps to read its `Status:`
/// and `X-Status:` fields from: RFC 5322 sets no limit on the header
/// section, so this one is ours (the spool's own header bound); fields
/// past it are not looked at.
pub const MAX_STATUS_HEAD: usize = 256 * 1024;

/// The most of a `From ` separator line kept (its sender and date come
/// first; the rest of a longer line is read and dropped).
const MAX_FROM_LINE: usize = 4096;

/// `>`s at a line's start the reader looks past to tell a quoted `From `
/// line (mboxrd): a line with more is taken as it is.
const MAX_QUOTE_DEPTH: usize = 4096;

/// What one message of an mbox was, once its octets have gone to the
/// sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// The envelope sender of the `From ` line (`MAILER-DAEMON` if none).
    pub sender: String,
    /// The `From ` line's date, unix seconds, when it parses.
    pub date: Option<i64>,
    /// IMAP flags from the `Status:` / `X-Status:` headers mail readers
    /// write (R: \Seen; A: \Answered, F: \Flagged, T: \Draft, D: \Deleted).
    pub flags: Vec<String>,
    /// Octets given to the sink.
    pub len: usize,
}

/// What one step of the reader gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A message: its octets, CRLF line endings and quoting removed, went
    /// to the sink in order.
    Message(MessageInfo),
    /// A message over [`MAX_IMPORT_MESSAGE`], skipped; its `From ` line.
    /// The sink got a part of it, which the caller throws away.
    TooLarge(String),
}

/// Reads an mbox message by message, each streamed to a sink.
pub struct MboxReader<R> {
    input: R,
    /// The `From ` line that starts the next message, once read.
    pending: Option<String>,
    /// A line's start, until it tells what the line is.
    start: Vec<u8>,
    done: bool,
}

/// How far [`MboxReader::read_start`] got into a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At the end of the input, nothing read.
    Eof,
    /// The whole line is in `start`, its LF (if any) consumed.
    Line,
    /// `start` tells what the line is; the rest of it is still to read.
    Open,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> MboxReader<R> {
        MboxReader {
            input,
            pending: None,
            start: Vec::new(),
            done: false,
        }
    }

    /// Reads a line's start into `self.start`: up to its end, or until it
    /// holds its leading `>`s and the five octets after them (enough to
    /// tell a separator, a quoted `From ` line and any other).
    fn read_start(&mut self) -> io::Result<Start> {
        self.start.clear();
        // Where the first octet other than `>` is, once seen.
        let mut other: Option<usize> = None;
        loop {
            let avail = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(if self.start.is_empty() {
                    Start::Eof
                } else {
                    Start::Line
                });
            }
            let mut used = 0;
            let mut found = None;
            for &b in avail {
                used += 1;
                if b == b'\n' {
                    found = Some(Start::Line);
                    break;
                }
                if b != b'>' && other.is_none() {
                    other = Some(self.start.len());
                }
                self.start.push(b);
                let told = match other {
                    Some(k) => self.start.len() >= k + 5,
                    None => self.start.len() > MAX_QUOTE_DEPTH,
                };
                if told {
                    found = Some(Start::Open);
                    break;
                }
            }
            self.input.consume(used);
            if let Some(s) = found {
                return Ok(s);
            }
        }
    }

    /// Hands the rest of the current line (without its LF) to `f` piece
    /// by piece, and consumes its LF.
    fn read_rest(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let avail = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(());
            }
            match avail.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    f(avail.get(..i).unwrap_or_default());
                    self.input.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = avail.len();
                    f(avail);
                    self.input.consume(n);
                }
            }
        }
    }

    /// The separator line whose start is in `self.start`, read to its end.
    fn read_from_line(&mut self, state: Start) -> io::Result<String> {
        let mut line = std::mem::take(&mut self.start);
        if state == Start::Open {
            self.read_rest(|piece| {
                let room = MAX_FROM_LINE.saturating_sub(line.len());
                line.extend_from_slice(piece.get(..room.min(piece.len())).unwrap_or_default());
            })?;
        }
        Ok(String::from_utf8_lossy(trim_eol(&line)).into_owned())
    }

    /// Streams the next message's octets to `sink` and says what it was;
    /// `None` at the end of the file.
    pub fn next_item(&mut self, sink: &mut impl FnMut(&[u8])) -> io::Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        // Find the first `From ` line (text before it is not a message).
        let from_line = match self.pending.take() {
            Some(l) => l,
            None => loop {
                match self.read_start()? {
                    Start::Eof => {
                        self.done = true;
                        return Ok(None);
                    }
                    s if self.start.starts_with(b"From ") => break self.read_from_line(s)?,
                    Start::Open => self.read_rest(|_| {})?,
                    Start::Line => {}
                }
            },
        };
        let mut out = Out::new(sink);
        loop {
            let state = self.read_start()?;
            if state == Start::Eof {
                self.done = true;
                break;
            }
            if self.start.starts_with(b"From ") {
                self.pending = Some(self.read_from_line(state)?);
                break;
            }
            // mboxrd: one `>` less on a quoted From line.
            let quoted = is_quoted_from(&self.start);
            let start = if quoted {
                self.start.get(1..).unwrap_or_default()
            } else {
                &self.start
            };
            out.content(start);
            if state == Start::Open {
                self.read_rest(|piece| out.content(piece))?;
            }
            out.end_line();
        }
        if out.too_large {
            return Ok(Some(Item::TooLarge(from_line)));
        }
        let (sender, date) = parse_from_line(&from_line);
        let flags = status_flags(&out.head);
        Ok(Some(Item::Message(MessageInfo {
            sender,
            date,
            flags,
            len: out.len,
        })))
    }
}

/// One message's octets on their way to the sink: CRLF after each line,
/// a line's trailing CR dropped (as LF-file readers do), the blank line
/// before the next `From ` line (the separator's) held back until a
/// following line shows it was the message's, and the size bound.
struct Out<'a, F> {
    sink: &'a mut F,
    /// Octets given to the sink.
    len: usize,
    /// Octets the message has so far, a held blank line included: what
    /// the bound is checked against.
    counted: usize,
    /// Lines so far (a blank first line is always the message's).
    lines: u64,
    /// Octets of the current line given so far.
    line_len: usize,
    /// A blank line, not yet given.
    held_blank: bool,
    /// A CR at the end of what came of the current line, not yet given:
    /// dropped if the line ends there.
    held_cr: bool,
    /// The message's first octets, for its `Status:` fields.
    head: Vec<u8>,
    head_done: bool,
    too_large: bool,
}

impl<'a, F: FnMut(&[u8])> Out<'a, F> {
    fn new(sink: &'a mut F) -> Out<'a, F> {
        Out {
            sink,
            len: 0,
            counted: 0,
            lines: 0,
            line_len: 0,
            held_blank: false,
            held_cr: false,
            head: Vec::new(),
            head_done: false,
            too_large: false,
        }
    }

    /// Octets of the current line's content (no LF).
    fn content(&mut self, piece: &[u8]) {
        let Some((&last, body)) = piece.split_last() else {
            return;
        };
        if self.held_cr {
            self.held_cr = false;
            self.give_content(b"\r");
        }
        if last == b'\r' {
            self.give_content(body);
            self.held_cr = true;
        } else {
            self.give_content(piece);
        }
    }

    fn give_content(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.too_large {
            return;
        }
        // The held blank line was the message's: a line follows it.
        if self.held_blank {
            self.held_blank = false;
            self.give(b"\r\n");
        }
        // The line's CRLF is to come: counted now, as a whole-message
        // reader counts the line with it.
        if self.counted.saturating_add(bytes.len()).saturating_add(2) > MAX_IMPORT_MESSAGE {
            self.too_large = true;
            return;
        }
        self.counted += bytes.len();
        self.line_len += bytes.len();
        self.give(bytes);
    }

    fn end_line(&mut self) {
        self.held_cr = false;
        let blank = self.line_len == 0;
        let first = self.lines == 0;
        self.lines += 1;
        self.line_len = 0;
        if self.too_large {
            return;
        }
        if self.counted.saturating_add(2) > MAX_IMPORT_MESSAGE {
            self.too_large = true;
            return;
        }
        self.counted += 2;
        if blank && !first {
            if self.held_blank {
                self.give(b"\r\n");
            }
            self.held_blank = true;
        } else {
            if self.held_blank {
                self.held_blank = false;
                self.give(b"\r\n");
            }
            self.give(b"\r\n");
        }
    }

    fn give(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        (self.sink)(bytes);
        if !self.head_done {
            let from = self.head.len().saturating_sub(3);
            let room = MAX_STATUS_HEAD.saturating_sub(self.head.len());
            self.head
                .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
            let tail = self.head.get(from..).unwrap_or_default();
            self.head_done =
                self.head.len() >= MAX_STATUS_HEAD || tail.windows(4).any(|w| w == b"\r\n\r\n");
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `^>+From `
fn is_quoted_from(line: &[u8]) -> bool {
    let rest = line.iter().position(|b| *b != b'>').unwrap_or(line.len());
    rest > 0 && line.get(rest..).is_some_and(|r| r.starts_with(b"From "))
}

/// `^>*From `
fn needs_quoting(line: &[u8]) -> bool {
    let rest = line.iter().position(|b| *b != b'>').unwrap_or(line.len());
    line.get(rest..).is_some_and(|r| r.starts_with(b"From "))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `From sender Www Mmm dd hh:mm:ss yyyy` (asctime, UTC); extra words
/// (a time zone some writers add) are ignored.
fn parse_from_line(line: &str) -> (String, Option<i64>) {
    let mut words = line.split_whitespace().skip(1);
    let sender = words.next().unwrap_or("MAILER-DAEMON").to_string();
    let rest: Vec<&str> = words.collect();
    let date = (|| {
        let [_wday, mon, day, hms, year, ..] = rest.as_slice() else {
            return None;
        };
        let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))?;
        let month = time::Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
        let day: u8 = day.parse().ok()?;
        let year: i32 = year.parse().ok()?;
        let mut hms = hms.split(':').map(|p| p.parse::<u8>().ok());
        let (h, m, s) = (
            hms.next()??,
            hms.next()??,
            hms.next().flatten().unwrap_or(0),
        );
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        let t = time::Time::from_hms(h, m, s).ok()?;
        Some(
            time::PrimitiveDateTime::new(date, t)
                .assume_utc()
                .unix_timestamp(),
        )
    })();
    (sender, date)
}

/// The asctime date of a `From ` line.
fn asctime(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let wday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .get(t.weekday().number_days_from_monday() as usize)
        .copied()
        .unwrap_or("Mon");
    let mon = MONTHS
        .get(usize::from(u8::from(t.month())) - 1)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{wday} {mon} {:>2} {:02}:{:02}:{:02} {}",
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

/// Flags from `Status:` and `X-Status:` in the header.
fn status_flags(raw: &[u8]) -> Vec<String> {
    let mut flags = Vec::new();
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let header = raw.get(..header_end).unwrap_or_default();
    for line in header.split(|b| *b == b'\n') {
        let line = trim_eol(line);
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (
                line.get(..i).unwrap_or_default(),
                line.get(i + 1..).unwrap_or_default(),
            ),
            None => continue,
        };
        let mut add = |f: &str| {
            if !flags.iter().any(|x| x == f) {
                flags.push(f.to_string());
            }
        };
        if name.eq_ignore_ascii_case(b"Status") {
            if value.contains(&b'R') {
                add("\\Seen");
            }
        } else if name.eq_ignore_ascii_case(b"X-Status") {
            for (letter, flag) in [
                (b'A', "\\Answered"),
                (b'F', "\\Flagged"),
                (b'T', "\\Draft"),
                (b'D', "\\Deleted"),
            ] {
                if value.contains(&letter) {
                    add(flag);
                }
            }
        }
    }
    flags
}

/// Writes one message (CRLF, as stored) in mboxrd form: the `From ` line,
/// the quoted message with LF endings, a blank line.
pub fn write_message(
    out: &mut impl Write,
    sender: &str,
    internal_date: i64,
    raw: &[u8],
) -> io::Result<()> {
    let sender = if sender.is_empty() || sender.contains(char::is_whitespace) {
        "MAILER-DAEMON"
    } else {
        sender
    };
    writeln!(out, "From {sender} {}", asctime(internal_date))?;
    let mut lines = raw.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if lines.peek().is_none() && line.is_empty() {
            // The split after the final CRLF.
            break;
        }
        if needs_quoting(line) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

/// The envelope sender recorded in a stored message (its Return-Path).
pub fn return_path(raw: &[u8]) -> String {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    for line in raw
        .get(..header_end)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
    {
        let line = trim_eol(line);
        if line.len() > 12
            && line
                .get(..12)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"Return-Path:"))
        {
            let v = String::from_utf8_lossy(line.get(12..).unwrap_or_default());
            let v = v
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim();
            if !v.is_empty() {
                return v.to_string();
            }
        }
    }
    "MAILER-DAEMON".to_string()
}

#[cfg(test)]
#[path = "mbox_tests.rs"]
mod tests;
