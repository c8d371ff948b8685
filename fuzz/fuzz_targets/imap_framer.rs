//! The IMAP framer (RFC 9051 4.3 literals, RFC 7888 LITERAL+/-) over a
//! stream that arrives in pieces: it never panics, never asks to drop more
//! than it was given, always makes progress on a complete buffer, and each
//! frame it completes goes to the command parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_imap::command::ParseOptions;
use proto_imap::{Frame, Framer, FramerLimits, parse_command};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) * 4 + 1;
    let limits = FramerLimits {
        max_line: 512,
        max_literal: 2048,
        ..FramerLimits::default()
    };
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    // Bounded: each round either drops bytes or feeds more.
    for _ in 0..stream.len() * 2 + 16 {
        let frame = framer.next(&buf);
        let drop = match frame {
            Frame::Complete(n) => {
                let cmd = buf.get(..n).expect("complete within the buffer");
                let _ = parse_command(cmd, ParseOptions { utf8: false });
                n
            }
            Frame::LineTooLong { discard, .. } | Frame::LiteralTooBig { discard, .. } => discard,
            _ => 0,
        };
        assert!(drop <= buf.len(), "drop {drop} of {}", buf.len());
        if drop > 0 {
            buf.drain(..drop);
            continue;
        }
        if fed >= stream.len() {
            break;
        }
        let end = (fed + chunk).min(stream.len());
        buf.extend_from_slice(stream.get(fed..end).unwrap_or_default());
        fed = end;
    }
});
