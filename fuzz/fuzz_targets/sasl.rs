//! SASL client responses (RFC 4422) through the server mechanisms of
//! proto-common: LOGIN and SCRAM-SHA-256 (RFC 5802, RFC 7677). The input
//! is split at the first NUL into client-first and client-final messages.
//! Nothing may panic, and a proof made without the password never passes.
#![no_main]

use std::num::NonZeroU32;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proto_common::{LoginServer, LoginStep, ScramKeys, ScramServer, ServerNonce, derive_keys};

fn keys() -> ScramKeys {
    static KEYS: OnceLock<ScramKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        derive_keys(
            "fuzz password",
            b"fuzz salt 16 oct",
            NonZeroU32::new(proto_common::MIN_ITERATIONS).unwrap_or(NonZeroU32::MIN),
        )
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let (first, fin) = match data.iter().position(|&b| b == 0) {
        Some(i) => {
            let (first, rest) = data.split_at(i);
            (first, rest.get(1..).unwrap_or_default())
        }
        None => (data, &b""[..]),
    };
    if let Ok(need) = ScramServer::start(first) {
        let nonce = ServerNonce::from_random(&[7; proto_common::SERVER_NONCE_LEN]);
        let (_, state) = need.with_keys(keys(), &nonce);
        assert!(state.finish(fin).is_err());
    }
    if let Ok(LoginStep::Challenge { state, .. }) = LoginServer::start(Some(first)) {
        let _ = state.step(fin);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = proto_common::base64_decode(text);
    }
});
