//! Any format string and any line: compiling and matching may fail, never panic.
#![no_main]

use hapwatch_parsers::{split_words, LogFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (fmt, line) = text.split_once('\n').unwrap_or((text, ""));
    let _ = split_words(fmt);
    if let Ok(f) = LogFormat::compile("fuzz", fmt) {
        let _ = f.parse(line);
    }
});
