//! Shared by the examples: the real httplog datagrams of a captured stream.

/// The httplog datagrams of `stream` (e.g. "default"), byte for byte.
pub fn httplog_datagrams(stream: &str) -> Vec<Vec<u8>> {
    hapwatch_fixtures::labelled(stream)
        .into_iter()
        .filter(|(_, label)| label["template"] == "httplog")
        .map(|(datagram, _)| datagram)
        .collect()
}
