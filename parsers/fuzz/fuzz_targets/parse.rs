//! Any datagram: parse it and render it; neither may panic.
#![no_main]

use hapwatch_parsers::{json::record_to_json, LogFormat, Parser};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn parser() -> &'static Parser {
    static P: OnceLock<Parser> = OnceLock::new();
    P.get_or_init(|| {
        let json = r#"{"time":"%tr","client":"%ci","cport":%cp,"fe":"%ft","be":"%b","srv":"%s","TR":%TR,"Tw":%Tw,"Tc":%Tc,"Tr":%Tr,"Ta":%Ta,"status":%ST,"bytes":%B,"term":"%tsc","retries":"%rc","req":%{+Q}r,"uid":"%ID"}"#;
        Parser::new(vec![LogFormat::compile("custom_json", json).unwrap()])
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = parser().parse(data) {
        let _ = record_to_json(&rec);
    }
});
