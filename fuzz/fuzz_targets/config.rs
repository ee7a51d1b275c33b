//! The config loader on any text: a TOML error or a validation error naming
//! the key, never a panic, a hang or an unbounded read.
#![no_main]

use hapwatch::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            let _ = config.validate();
            let _ = config.listeners();
        }
        // Every error says where, as `check-config` prints it.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
