//! Property tests of the framer and the command parser, deterministic and
//! dependency-free (a xorshift generator with fixed seeds):
//!
//! - random input, built from grammar fragments, random bytes and mutated
//!   valid commands, never panics;
//! - cutting the same input into random pieces (as TCP may deliver it)
//!   never changes what the driver sees: the same commands, the same parse
//!   errors, the same limit violations, in the same order;
//! - every command the parser accepts survives a round trip through
//!   [`Command::to_bytes`].

use proto_imap::command::ParseOptions;
use proto_imap::{Command, Frame, Framer, FramerLimits, ParseError, parse_command};

/// xorshift64*: small, fast and good enough to explore inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Pieces of the grammar, so that random input gets past the first token
/// often enough to reach the deeper parsers.
const FRAGMENTS: &[&str] = &[
    "a1 ",
    "* ",
    "+ ",
    "LOGIN ",
    "SELECT ",
    "FETCH ",
    "UID ",
    "STORE ",
    "SEARCH ",
    "APPEND ",
    "LIST ",
    "LSUB ",
    "STATUS ",
    "ID ",
    "ENABLE ",
    "COPY ",
    "MOVE ",
    "EXPUNGE",
    "IDLE",
    "NOOP",
    "AUTHENTICATE PLAIN ",
    "RENAME ",
    "CREATE ",
    "INBOX",
    "\"",
    "\"\"",
    "\\",
    "(",
    ")",
    "[",
    "]",
    "<0.5>",
    " ",
    " ",
    " ",
    "\r\n",
    "\r\n",
    "\n",
    "\r",
    "*",
    "$",
    "%",
    "1",
    "1:*",
    "2,4:7",
    "4294967295",
    "4294967296",
    "0",
    "{3}\r\n",
    "{5+}\r\n",
    "{0}\r\n",
    "~{2}\r\n",
    "{4096+}\r\n",
    "{99999999999999999999}\r\n",
    "{1",
    "}",
    "BODY[",
    "BODY.PEEK[",
    "HEADER.FIELDS (",
    "TEXT",
    "MIME",
    "BINARY[",
    "BINARY.SIZE[",
    "RFC822",
    "ENVELOPE",
    "FLAGS",
    "+FLAGS.SILENT ",
    "(\\Seen $Work)",
    "\\Deleted",
    "RETURN (",
    "MIN COUNT SAVE) ",
    "CHARSET UTF-8 ",
    "NOT ",
    "OR ",
    "SINCE 1-Feb-1994",
    "\"7-Feb-1994 21:52:25 -0800\" ",
    "HEADER ",
    "KEYWORD ",
    "NIL",
    "(SUBSCRIBED RECURSIVEMATCH) ",
    "RETURN (STATUS (MESSAGES))",
    "&APw-",
    "caf\u{e9}",
    "\0",
    "\u{7f}",
    "\u{ff}",
];

/// Valid commands to mutate.
const SEEDS: &[&str] = &[
    "a001 LOGIN {5}\r\nalice \"sec ret\"\r\n",
    "a2 SELECT \"Entw&APw-rfe\"\r\n",
    "a3 FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1])\r\n",
    "a4 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (SEEN FROM {3}\r\nbob) NOT UID 1:5\r\n",
    "a5 APPEND Drafts (\\Draft) \"07-Feb-1994 21:52:25 +0100\" {5+}\r\nhello\r\n",
    "a6 LIST (SPECIAL-USE) \"\" (\"*\" %) RETURN (CHILDREN STATUS (UNSEEN SIZE))\r\n",
    "a7 STORE 2,4:* -FLAGS.SILENT (\\Seen $Junk)\r\n",
    "a8 ID (\"name\" \"x\" \"os\" NIL)\r\n",
    "a9 STATUS INBOX (MESSAGES UIDNEXT)\r\n",
    "b1 UID MOVE $ Archive\r\n",
];

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let commands = 1 + rng.below(4);
    for _ in 0..commands {
        if rng.chance(40) {
            let mut cmd = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
            for _ in 0..rng.below(4) {
                let i = rng.below(cmd.len());
                match rng.below(4) {
                    0 => cmd[i] = rng.next() as u8,
                    1 => {
                        cmd.remove(i);
                    }
                    2 => cmd.insert(i, rng.next() as u8),
                    _ => {
                        let f = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                        cmd.splice(i..i, f.iter().copied());
                    }
                }
            }
            out.extend_from_slice(&cmd);
            continue;
        }
        for _ in 0..rng.below(24) {
            match rng.below(10) {
                0 => out.push(rng.next() as u8),
                // Long runs reach the line and literal limits.
                1 => out.extend(std::iter::repeat_n(b'x', rng.below(150))),
                _ => out.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes()),
            }
        }
        if rng.chance(80) {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// What a server driver would act on.
#[derive(Debug, PartialEq)]
enum Event {
    Parsed(Result<Command, ParseError>),
    LineTooLong(Option<String>),
    LiteralTooBig { sync: bool, tag: Option<String> },
}

/// Feeds `input` in pieces ending at `cuts` (and at its end) to a framer,
/// as the server's driver does: after every piece, handle every frame.
fn drive(input: &[u8], cuts: &[usize], limits: FramerLimits, opts: ParseOptions) -> Vec<Event> {
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            match framer.next(&buf) {
                Frame::Incomplete | Frame::Continue => break,
                Frame::Stream { .. } => unreachable!("stream_above is usize::MAX"),
                Frame::Complete(n) => {
                    assert!(n > 0 && n <= buf.len(), "Complete({n}) of {}", buf.len());
                    events.push(Event::Parsed(parse_command(&buf[..n], opts)));
                    buf.drain(..n);
                }
                Frame::LineTooLong { discard, done, tag } => {
                    assert!(discard <= buf.len(), "discard {discard} of {}", buf.len());
                    // Dropping nothing and calling again would spin.
                    assert!(discard > 0, "LineTooLong asks to drop nothing");
                    buf.drain(..discard);
                    if done {
                        events.push(Event::LineTooLong(tag));
                    }
                }
                Frame::LiteralTooBig { discard, sync, tag } => {
                    assert!(discard > 0 && discard <= buf.len());
                    buf.drain(..discard);
                    events.push(Event::LiteralTooBig { sync, tag });
                    if !sync {
                        // The server closes the connection here.
                        return events;
                    }
                }
            }
        }
    }
    events
}

fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut cuts: Vec<usize> = match rng.below(3) {
        // Byte by byte: the worst case for the framer's memory.
        0 => (1..len).collect(),
        _ => (0..rng.below(12)).map(|_| rng.below(len)).collect(),
    };
    cuts.sort_unstable();
    cuts
}

/// Small limits, so that random input reaches them.
const LIMITS: FramerLimits = FramerLimits {
    max_line: 64,
    max_literal: 16,
    max_append_literal: 200,
    stream_above: usize::MAX,
};

#[test]
fn random_input_in_random_pieces_parses_the_same_and_never_panics() {
    // Commands parsed, parse errors, long lines, big literals: each kind
    // must come up, or the generator explores too little.
    let mut seen = [0usize; 4];
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let input = random_input(&mut rng);
        let opts = ParseOptions {
            utf8: rng.chance(50),
        };
        let whole = drive(&input, &[], LIMITS, opts);
        for _ in 0..4 {
            let cuts = random_cuts(&mut rng, input.len());
            let pieces = drive(&input, &cuts, LIMITS, opts);
            assert_eq!(
                whole,
                pieces,
                "seed {seed}: {:?} cut at {cuts:?}",
                String::from_utf8_lossy(&input)
            );
        }
        for event in &whole {
            match event {
                Event::Parsed(Ok(_)) => seen[0] += 1,
                Event::Parsed(Err(_)) => seen[1] += 1,
                Event::LineTooLong(_) => seen[2] += 1,
                Event::LiteralTooBig { .. } => seen[3] += 1,
            }
            if let Event::Parsed(Ok(cmd)) = event {
                let bytes = cmd.to_bytes(opts);
                let back = parse_command(&bytes, opts);
                assert_eq!(
                    back.as_ref(),
                    Ok(cmd),
                    "seed {seed}: round trip of {:?} via {:?}",
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
    assert!(
        seen[0] > 500 && seen[1] > 500 && seen[2] > 50 && seen[3] > 50,
        "too little coverage: {seen:?}"
    );
}

#[test]
fn random_bytes_never_panic_the_parser() {
    let mut rng = Rng(0x5EED);
    for _ in 0..20_000 {
        let len = rng.below(80);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        input.extend_from_slice(b"\r\n");
        for utf8 in [false, true] {
            let _ = parse_command(&input, ParseOptions { utf8 });
        }
        let _ = Framer::new(LIMITS).next(&input);
    }
}
