//! Shared by the examples: the real httplog datagrams of a captured stream.

use base64::Engine as _;

/// The httplog datagrams of `stream` (e.g. "default"), byte for byte.
pub fn httplog_datagrams(stream: &str) -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/haproxy-2.6/");
    let data = std::fs::read_to_string(format!("{dir}{stream}.datagrams.jsonl")).expect("fixtures");
    let labels =
        std::fs::read_to_string(format!("{dir}{stream}.expected.jsonl")).expect("fixtures");
    data.lines()
        .zip(labels.lines())
        .filter(|(_, l)| l.contains("\"template\": \"httplog\""))
        .map(|(d, _)| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}
