//! The IMAP command parser (RFC 9051 6, 9) on one framed command, with
//! and without UTF8=ACCEPT. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_imap::command::ParseOptions;
use proto_imap::parse_command;

fuzz_target!(|data: &[u8]| {
    for utf8 in [false, true] {
        let _ = parse_command(data, ParseOptions { utf8 });
    }
});
