//! The config loader (SPEC 7): any text gives a config or an error naming
//! what is wrong, never a panic, and a parsed config's checks run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The binary crate has no library; its config module stands alone.
#[allow(dead_code, unused_imports)]
#[path = "../../crates/mailroom/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = config::parse(text) {
        let _ = c.check();
        let _ = c.warnings();
    }
});
