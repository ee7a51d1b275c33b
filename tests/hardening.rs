//! Hostile input a running daemon must survive without losing anything else:
//! every number of every template, out of range.

mod common;

use std::collections::BTreeMap;

use common::*;

/// One real datagram per (kind, template) of the captured stream.
fn one_per_template() -> Vec<Vec<u8>> {
    let mut seen = BTreeMap::new();
    for (d, label) in hapwatch_fixtures::labelled("default") {
        let key = (label["kind"].to_string(), label["template"].to_string());
        seen.entry(key).or_insert(d);
    }
    seen.into_values().collect()
}

/// The datagram with its `n`th run of digits replaced by `value`.
fn with_number(d: &[u8], n: usize, value: &str) -> Option<Vec<u8>> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() {
            let start = i;
            while i < d.len() && d[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    let (start, end) = *runs.get(n)?;
    Some([&d[..start], value.as_bytes(), &d[end..]].concat())
}

#[test]
fn out_of_range_numbers_lose_only_their_own_line() {
    const VALUES: [&str; 4] = [
        "18446744073709551615",                     // u64::MAX
        "9223372036854775808",                      // i64::MAX + 1
        "-1",                                       // negative
        "1234567890123456789012345678901234567890", // 40 digits
    ];
    let mut hostile = Vec::new();
    for d in one_per_template() {
        for n in 0.. {
            let Some(first) = with_number(&d, n, VALUES[0]) else {
                break;
            };
            hostile.push(first);
            hostile.extend(VALUES[1..].iter().filter_map(|v| with_number(&d, n, v)));
        }
    }
    assert!(hostile.len() > 500, "{} variants", hostile.len());
    // The real stream around them: its lines must all be stored.
    let good = datagrams("default");
    let mut all = good.clone();
    all.extend(hostile.iter().cloned());
    all.extend(good.iter().cloned());

    let dir = tempfile::tempdir().unwrap();
    let udp = free_port();
    let cfg = dir.path().join("hapwatch.toml");
    let db = dir.path().join("h.db");
    std::fs::write(
        &cfg,
        format!("[storage]\npath = {db:?}\n[[listen]]\nurl = \"udp://127.0.0.1:{udp}\"\n"),
    )
    .unwrap();
    let mut daemon = Daemon::start(&cfg, 1);
    send_udp(udp, &all);
    daemon.wait_received(all.len() as u64);
    // Stopping closes every window; the totals line says what was parsed.
    let log = daemon.stop();
    let totals = log
        .iter()
        .find(|l| l.contains(" totals "))
        .expect("a totals line");
    assert_eq!(field(totals, "received"), all.len() as u64);
    assert_eq!(
        field(totals, "parsed") + field(totals, "parse_errors"),
        all.len() as u64,
        "every message parsed or counted as an error: {totals}"
    );
    assert_eq!(field(totals, "rows_rejected"), 0, "{totals}");

    let db = db.to_str().unwrap();
    let events = json_lines(&["events", "--db", db, "--since", "60d", "--json"]);
    assert_eq!(
        events.len() as u64,
        field(totals, "events"),
        "every parsed event is stored: {totals}"
    );
    let windows = json_lines(&[
        "stats", "--db", db, "--by", "server", "--since", "60d", "--json",
    ]);
    let requests: u64 = windows
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        requests,
        field(totals, "traffic"),
        "every parsed traffic line is counted: {totals}"
    );
}
