//! The SMTP command stream: lines split as the driver splits them
//! (RFC 5321 4.5.3.1.4 limits), then parsed. Nothing may panic; every
//! refusal has a reply; a parsed command serialises to a line that parses
//! back to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_common::Line;
use proto_smtp::{
    Command, LineSplitter, MAX_COMMAND_LINE_WITH_PARAMS, parse_command, xtext_decode, xtext_encode,
};

/// RFC 3461 4: what an accepted ENVID or ORCPT decodes to encodes back to
/// xtext that decodes to it again.
fn check_xtext(v: &str) {
    if let Some(text) = xtext_decode(v) {
        assert_eq!(xtext_decode(&xtext_encode(&text)).as_deref(), Some(text.as_str()));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut splitter = LineSplitter::new(MAX_COMMAND_LINE_WITH_PARAMS);
    let mut rest = data;
    // Each call consumes at least one byte or returns no line.
    while !rest.is_empty() {
        let (used, line) = splitter.next(rest);
        if let Some(Line::Line(line)) = line {
            match parse_command(line) {
                Ok(cmd) => {
                    match &cmd {
                        Command::Mail(m) => m.params.envid.iter().for_each(|e| check_xtext(e)),
                        Command::Rcpt(r) => r
                            .params
                            .orcpt
                            .iter()
                            .filter_map(|o| o.split_once(';'))
                            .for_each(|(_, a)| check_xtext(a)),
                        _ => {}
                    }
                    let again = parse_command(cmd.to_line().as_bytes());
                    assert_eq!(again.as_ref(), Ok(&cmd), "round trip of {line:?}");
                }
                Err(e) => {
                    let reply = e.reply();
                    assert!((500..600).contains(&reply.code));
                }
            }
        }
        if used == 0 {
            break;
        }
        rest = rest.get(used..).unwrap_or_default();
    }
});
