//! POP3 command lines (RFC 1939, RFC 2449 4 line limits, RFC 5034 AUTH),
//! split as the driver splits them, then parsed. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_pop3::{Line, LineSplitter, MAX_COMMAND_LINE, parse_command};

fuzz_target!(|data: &[u8]| {
    let mut splitter = LineSplitter::new(MAX_COMMAND_LINE);
    let mut rest = data;
    while !rest.is_empty() {
        let (used, line) = splitter.next(rest);
        if let Some(Line::Line(line)) = line {
            let _ = parse_command(line);
        }
        if used == 0 {
            break;
        }
        rest = rest.get(used..).unwrap_or_default();
    }
    // Lines longer than the limit reach the parser too (SASL responses).
    let _ = parse_command(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = proto_pop3::decode_plain(text);
    }
});
