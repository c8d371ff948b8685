//! mboxrd (the "From_"-quoting mbox variant, as mutt, Thunderbird and
//! Dovecot's `mbox` format read it): a reader that yields one message at
//! a time, so an import's memory is one message whatever the file's size,
//! and a writer.
//!
//! mboxrd quoting: every line that starts with `From ` is a separator; a
//! body line matching `^>*From ` is written with one more `>` and read
//! back with one fewer, so the round trip is exact. Messages in the store
//! are CRLF (SPEC 1); the file uses LF.

use std::io::{self, BufRead, Write};

/// Largest message an import takes; a larger one is skipped and reported,
/// never buffered beyond this (SPEC 8: bounded memory on any input).
pub const MAX_IMPORT_MESSAGE: usize = 64 * 1024 * 1024;

/// One message read from an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    /// The message, CRLF line endings, quoting removed.
    pub raw: Vec<u8>,
    /// The envelope sender of the `From ` line (`MAILER-DAEMON` if none).
    pub sender: String,
    /// The `From ` line's date, unix seconds, when it parses.
    pub date: Option<i64>,
    /// IMAP flags from the `Status:` / `X-Status:` headers mail readers
    /// write (R: \Seen; A: \Answered, F: \Flagged, T: \Draft, D: \Deleted).
    pub flags: Vec<String>,
}

/// What one step of the reader gives.
#[derive(Debug)]
pub enum Item {
    Message(MboxMessage),
    /// A message over [`MAX_IMPORT_MESSAGE`], skipped; its `From ` line.
    TooLarge(String),
}

/// Reads an mbox message by message.
pub struct MboxReader<R> {
    input: R,
    /// The `From ` line that starts the next message, once read.
    pending: Option<String>,
    line: Vec<u8>,
    done: bool,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> MboxReader<R> {
        MboxReader {
            input,
            pending: None,
            line: Vec::new(),
            done: false,
        }
    }

    /// Reads one line (with its LF) into `self.line`; false at the end.
    fn read_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        // A line is bounded by the message bound: a file without newlines
        // is read in bounded pieces.
        let limit = MAX_IMPORT_MESSAGE as u64 + 1;
        let n = io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.line)?;
        Ok(n > 0)
    }

    /// The next message, `None` at the end of the file.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        // Find the first `From ` line (text before it is not a message).
        let from_line = match self.pending.take() {
            Some(l) => l,
            None => loop {
                if !self.read_line()? {
                    self.done = true;
                    return Ok(None);
                }
                if self.line.starts_with(b"From ") {
                    break String::from_utf8_lossy(trim_eol(&self.line)).into_owned();
                }
            },
        };
        let mut raw = Vec::new();
        let mut too_large = false;
        loop {
            if !self.read_line()? {
                self.done = true;
                break;
            }
            if self.line.starts_with(b"From ") {
                self.pending = Some(String::from_utf8_lossy(trim_eol(&self.line)).into_owned());
                break;
            }
            if too_large {
                continue;
            }
            let body = trim_eol(&self.line);
            // mboxrd: one `>` less on a quoted From line.
            let unquoted = if is_quoted_from(body) {
                body.get(1..).unwrap_or_default()
            } else {
                body
            };
            if raw.len() + unquoted.len() + 2 > MAX_IMPORT_MESSAGE {
                too_large = true;
                raw = Vec::new();
                continue;
            }
            raw.extend_from_slice(unquoted);
            raw.extend_from_slice(b"\r\n");
        }
        if too_large {
            return Ok(Some(Item::TooLarge(from_line)));
        }
        // The blank line before the next `From ` line is the separator's.
        if raw.ends_with(b"\r\n\r\n") {
            raw.truncate(raw.len() - 2);
        }
        let (sender, date) = parse_from_line(&from_line);
        let flags = status_flags(&raw);
        Ok(Some(Item::Message(MboxMessage {
            raw,
            sender,
            date,
            flags,
        })))
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
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Vec<MboxMessage> {
        let mut r = MboxReader::new(text);
        let mut out = Vec::new();
        while let Some(item) = r.next_item().expect("read") {
            match item {
                Item::Message(m) => out.push(m),
                Item::TooLarge(l) => panic!("too large: {l}"),
            }
        }
        out
    }

    #[test]
    fn messages_split_on_from_lines_and_get_crlf() {
        let text = b"From a@x.test Mon Jan  2 15:04:05 2006\nSubject: one\n\nbody 1\n\nFrom b@y.test Tue Feb 14 00:00:00 2023\nSubject: two\n\nbody 2\n";
        let m = read_all(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].sender, "a@x.test");
        assert_eq!(m[0].raw, b"Subject: one\r\n\r\nbody 1\r\n");
        assert_eq!(m[0].date, Some(1136214245));
        assert_eq!(m[1].raw, b"Subject: two\r\n\r\nbody 2\r\n");
    }

    #[test]
    fn mboxrd_quoting_round_trips_from_lines_in_bodies() {
        let raw = b"Subject: q\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nFrom\r\n".to_vec();
        let mut file = Vec::new();
        write_message(&mut file, "s@x.test", 1136214245, &raw).expect("write");
        write_message(&mut file, "", 0, b"Subject: 2\r\n\r\nx\r\n").expect("write");
        let text = String::from_utf8_lossy(&file).into_owned();
        assert!(
            text.starts_with("From s@x.test Mon Jan  2 15:04:05 2006\n"),
            "{text}"
        );
        assert!(
            text.contains("\n>From here\n>>From there\n>>>From far\nFrom\n"),
            "{text}"
        );
        assert!(
            text.contains("\nFrom MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"),
            "{text}"
        );
        let back = read_all(&file);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].raw, raw);
        assert_eq!(back[0].date, Some(1136214245));
        assert_eq!(back[1].raw, b"Subject: 2\r\n\r\nx\r\n");
    }

    #[test]
    fn status_headers_give_flags() {
        let text = b"From x Mon Jan  2 15:04:05 2006\nStatus: RO\nX-Status: AF\n\nhi\n";
        let m = read_all(text);
        assert_eq!(m[0].flags, ["\\Seen", "\\Answered", "\\Flagged"]);
    }

    #[test]
    fn text_before_the_first_from_line_and_an_empty_file_give_nothing() {
        assert!(read_all(b"").is_empty());
        assert!(read_all(b"junk\nmore\n").is_empty());
    }

    #[test]
    fn an_unparsable_date_is_none_not_an_error() {
        let m = read_all(b"From x yesterday\n\nhi\n");
        assert_eq!(m[0].date, None);
        assert_eq!(m[0].sender, "x");
    }

    #[test]
    fn return_path_names_the_sender() {
        assert_eq!(
            return_path(b"Return-Path: <a@b.test>\r\nX: y\r\n\r\n"),
            "a@b.test"
        );
        assert_eq!(return_path(b"Return-Path: <>\r\n\r\n"), "MAILER-DAEMON");
        assert_eq!(
            return_path(b"Subject: x\r\n\r\nReturn-Path: <no@x>\r\n"),
            "MAILER-DAEMON"
        );
    }
}
