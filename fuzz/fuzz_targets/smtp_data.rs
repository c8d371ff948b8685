//! The DATA receiver (RFC 5321 4.1.1.4, 4.5.2): fed in chunks whose sizes
//! come from the input's first byte, as reads from a socket would cut it.
//! It never panics, never stores more than its limit, and the end of data
//! is only CRLF.CRLF (the SMTP smuggling defence).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_smtp::{DataReceiver, DataStatus};

/// Small, so the over-limit path is reached often.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;
    let mut rx = DataReceiver::new(LIMIT);
    let mut offset = 0;
    let mut done = false;
    while offset < body.len() && !done {
        let end = (offset + chunk).min(body.len());
        let piece = body.get(offset..end).unwrap_or_default();
        let (used, status) = rx.feed(piece);
        assert!(used <= piece.len());
        offset += used;
        done = status == DataStatus::Done;
        if used == 0 && !done {
            break;
        }
    }
    assert!(
        rx.stored() <= LIMIT + 2,
        "stored {} over {LIMIT}",
        rx.stored()
    );
    if done {
        let consumed = body.get(..offset).unwrap_or_default();
        assert!(
            consumed.ends_with(b"\r\n.\r\n") || consumed == b".\r\n",
            "ended without CRLF.CRLF: {:?}",
            consumed.get(consumed.len().saturating_sub(8)..)
        );
        let message = rx.into_message();
        assert!(message.len() <= LIMIT + 2);
    }
});
