//! The streaming mbox reader: the cases of the format, and equality with
//! the whole-message reader it replaced (kept here as the reference) on
//! generated inputs read through buffers of every small size, so that
//! every line and quoting case falls across a read boundary somewhere.

use std::io::BufReader;

use super::*;

/// A message read whole, as the reader before issue 19 gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Whole {
    raw: Vec<u8>,
    sender: String,
    date: Option<i64>,
    flags: Vec<String>,
}

/// The whole-message reader before issue 19, word for word but for its
/// names: the reference the streaming one must equal.
mod reference {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    pub enum Got {
        Message(Whole),
        TooLarge(String),
    }

    pub struct Reader<R> {
        input: R,
        pending: Option<String>,
        line: Vec<u8>,
        done: bool,
    }

    impl<R: BufRead> Reader<R> {
        pub fn new(input: R) -> Reader<R> {
            Reader {
                input,
                pending: None,
                line: Vec::new(),
                done: false,
            }
        }

        fn read_line(&mut self) -> io::Result<bool> {
            self.line.clear();
            let limit = MAX_IMPORT_MESSAGE as u64 + 1;
            let n = io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.line)?;
            Ok(n > 0)
        }

        pub fn next_item(&mut self) -> io::Result<Option<Got>> {
            if self.done {
                return Ok(None);
            }
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
                return Ok(Some(Got::TooLarge(from_line)));
            }
            if raw.ends_with(b"\r\n\r\n") {
                raw.truncate(raw.len() - 2);
            }
            let (sender, date) = parse_from_line(&from_line);
            let flags = status_flags(&raw);
            Ok(Some(Got::Message(Whole {
                raw,
                sender,
                date,
                flags,
            })))
        }
    }

    pub fn read_all(text: &[u8]) -> Vec<Got> {
        let mut r = Reader::new(text);
        let mut out = Vec::new();
        while let Some(item) = r.next_item().expect("read") {
            out.push(item);
        }
        out
    }
}

use reference::Got;

/// Every item of `text`, read by the streaming reader through a buffer
/// of `capacity` octets, in the reference's terms.
fn stream_all(text: &[u8], capacity: usize) -> Vec<Got> {
    let mut r = MboxReader::new(BufReader::with_capacity(capacity, text));
    let mut out = Vec::new();
    loop {
        let mut raw = Vec::new();
        let mut pieces = 0usize;
        let item = r
            .next_item(&mut |b: &[u8]| {
                raw.extend_from_slice(b);
                pieces += 1;
            })
            .expect("read");
        match item {
            None => break,
            Some(Item::TooLarge(l)) => out.push(Got::TooLarge(l)),
            Some(Item::Message(m)) => {
                assert_eq!(m.len, raw.len());
                out.push(Got::Message(Whole {
                    raw,
                    sender: m.sender,
                    date: m.date,
                    flags: m.flags,
                }));
            }
        }
    }
    out
}

fn read_all(text: &[u8]) -> Vec<Whole> {
    stream_all(text, 8192)
        .into_iter()
        .map(|g| match g {
            Got::Message(m) => m,
            Got::TooLarge(l) => panic!("too large: {l}"),
        })
        .collect()
}

/// The streaming reader gives what the reference gives, through buffers
/// of 1 to 12 octets and a usual one.
fn assert_same(text: &[u8]) {
    let want = reference::read_all(text);
    for capacity in (1..=12).chain([64, 8192]) {
        let got = stream_all(text, capacity);
        assert!(
            got == want,
            "capacity {capacity}, input {:?}:\n got {got:?}\nwant {want:?}",
            String::from_utf8_lossy(text)
        );
    }
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
    assert_same(text);
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
    assert_same(&file);
}

#[test]
fn quoted_from_lines_are_unquoted_across_every_read_boundary() {
    // Each quoting case, at the start of a body, in its middle and last,
    // with LF and CRLF, each split at every offset by the 1..12-octet
    // buffers of assert_same.
    let text = b"From a Mon Jan  2 15:04:05 2006\nSubject: q\n\n>From one\n>>From two\r\n>From\n>Fro\n>>>>>>>>>>From deep\nFrom_ not a separator\n>From \n>From \r\nx >From y\n>From last";
    let m = read_all(text);
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].raw,
        b"Subject: q\r\n\r\nFrom one\r\n>From two\r\n>From\r\n>Fro\r\n>>>>>>>>>From deep\r\nFrom_ not a separator\r\nFrom \r\nFrom \r\nx >From y\r\nFrom last\r\n"
    );
    assert_same(text);
}

#[test]
fn crlf_and_lf_files_give_the_same_messages() {
    let lf = b"From a Mon Jan  2 15:04:05 2006\nSubject: one\n\nline\n>From q\n\nFrom b Mon Jan  2 15:04:05 2006\nSubject: two\n\nx\n";
    let crlf: Vec<u8> = String::from_utf8_lossy(lf)
        .replace('\n', "\r\n")
        .into_bytes();
    let a = read_all(lf);
    let b = read_all(&crlf);
    assert_eq!(a, b);
    assert_eq!(a[0].raw, b"Subject: one\r\n\r\nline\r\nFrom q\r\n");
    assert_same(lf);
    assert_same(&crlf);
    // A CR inside a line stays; only one before the LF goes.
    let cr = b"From a x\nA: b\rc\r\r\nd\r";
    assert_eq!(read_all(cr)[0].raw, b"A: b\rc\r\r\nd\r\n");
    assert_same(cr);
}

#[test]
fn a_last_message_without_a_trailing_newline_ends_with_crlf() {
    let text = b"From a Mon Jan  2 15:04:05 2006\nSubject: one\n\nfirst\n\nFrom b Mon Jan  2 15:04:05 2006\nSubject: last\n\nno newline";
    let m = read_all(text);
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].raw, b"Subject: last\r\n\r\nno newline\r\n");
    assert_same(text);
    // A From line alone at the very end is an empty message.
    let text = b"From a x\nA: b\n\nFrom b y";
    let m = read_all(text);
    assert_eq!(m.len(), 2);
    assert!(m[1].raw.is_empty());
    assert_eq!(m[1].sender, "b");
    assert_same(text);
}

#[test]
fn blank_lines_before_a_separator_lose_only_the_separators_one() {
    for text in [
        &b"From a x\n\nFrom b x\n\n\nFrom c x\n\n\n\nFrom d x\nA: b\n\n\n"[..],
        b"From a x\nA: b\n\n\n\n",
        b"From a x\n\n",
        b"From a x\n",
        b"From a x\r\n\r\n\r\n",
        b"From a x\nA: b\n\r\n",
    ] {
        assert_same(text);
    }
    let m = read_all(b"From a x\nA: b\n\nbody\n\n\nFrom b x\n");
    assert_eq!(m[0].raw, b"A: b\r\n\r\nbody\r\n\r\n");
}

#[test]
fn status_headers_give_flags() {
    let text = b"From x Mon Jan  2 15:04:05 2006\nStatus: RO\nX-Status: AF\n\nhi\n";
    let m = read_all(text);
    assert_eq!(m[0].flags, ["\\Seen", "\\Answered", "\\Flagged"]);
    assert_same(text);
    // In the body they are text, not flags.
    let text = b"From x y\nSubject: s\n\nStatus: RO\nX-Status: D\n";
    assert!(read_all(text)[0].flags.is_empty());
    assert_same(text);
}

#[test]
fn text_before_the_first_from_line_and_an_empty_file_give_nothing() {
    assert!(read_all(b"").is_empty());
    assert!(read_all(b"junk\nmore\n").is_empty());
    assert_same(b"junk\n>From x\nFro\nFrom a x\nA: b\n");
}

#[test]
fn an_unparsable_date_is_none_not_an_error() {
    let m = read_all(b"From x yesterday\n\nhi\n");
    assert_eq!(m[0].date, None);
    assert_eq!(m[0].sender, "x");
}

#[test]
fn a_message_over_the_bound_is_skipped_and_the_next_one_read() {
    let line = [b'x'; 1023];
    let mut text = b"From big Mon Jan  2 15:04:05 2006\nSubject: big\n\n".to_vec();
    while text.len() <= MAX_IMPORT_MESSAGE {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    text.extend_from_slice(b"From small Mon Jan  2 15:04:05 2006\nSubject: small\n\nok\n");
    let want = reference::read_all(&text);
    assert!(matches!(&want[0], Got::TooLarge(l) if l.starts_with("From big")));
    assert_eq!(stream_all(&text, 8192), want);
    assert_eq!(stream_all(&text, 1000), want);
}

#[test]
fn a_message_of_exactly_the_bound_is_taken() {
    // Lines of 1022 octets and LF: 1024 octets each in CRLF form.
    let mut text = b"From a x\n".to_vec();
    let line = [b'y'; 1022];
    for _ in 0..MAX_IMPORT_MESSAGE / 1024 {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    let got = stream_all(&text, 8192);
    assert!(matches!(&got[0], Got::Message(m) if m.raw.len() == MAX_IMPORT_MESSAGE));
    // With the separator's blank line after it too (counted, then dropped).
    text.extend_from_slice(b"\nFrom b x\n");
    assert_eq!(stream_all(&text, 8192), reference::read_all(&text));
}

/// A small deterministic generator (xorshift), so the corpus is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, of: &[&'a [u8]]) -> &'a [u8] {
        of[(self.next() % of.len() as u64) as usize]
    }
}

#[test]
fn the_stream_equals_the_whole_message_reader_on_generated_mboxes() {
    let lines: &[&[u8]] = &[
        b"From sender@x.test Mon Jan  2 15:04:05 2006",
        b"From ",
        b"From",
        b">From x",
        b">>From y",
        b">From",
        b">Fro",
        b">",
        b">>>",
        b"",
        b"\r",
        b"Status: RO",
        b"X-Status: AFT",
        b"Subject: generated",
        b"body text",
        b"a line with a CR\r inside",
        b"trailing CR\r",
        b"two CRs\r\r",
        b"x From not at the start",
    ];
    let ends: &[&[u8]] = &[b"\n", b"\r\n", b"\n", b"\n"];
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut text = Vec::new();
        let n = 1 + rng.next() % 30;
        for i in 0..n {
            text.extend_from_slice(rng.pick(lines));
            // Sometimes the file ends without its last line's LF.
            if i + 1 < n || !rng.next().is_multiple_of(3) {
                text.extend_from_slice(rng.pick(ends));
            }
        }
        assert_same(&text);
    }
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
