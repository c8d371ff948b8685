//! The IMAP command parser (RFC 9051 6, 9) on one framed command, with
//! and without UTF8=ACCEPT. Nothing may panic, and every command it
//! accepts serialises to bytes that parse back to the same command
//! (STYLE.md: parse(serialize(x)) == x).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_imap::command::ParseOptions;
use proto_imap::parse_command;

fuzz_target!(|data: &[u8]| {
    for utf8 in [false, true] {
        let opts = ParseOptions { utf8 };
        if let Ok(cmd) = parse_command(data, opts) {
            let bytes = cmd.to_bytes(opts);
            let back = parse_command(&bytes, opts);
            assert_eq!(
                back.as_ref(),
                Ok(&cmd),
                "round trip of {:?} through {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
});
