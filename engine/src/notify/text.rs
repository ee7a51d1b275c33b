//! What people read: titles, headlines and evidence as sentences, times in
//! the configured zone with the zone named. Pure functions of the items.

use serde_json::{Map, Value};

use super::Item;
use crate::incidents::{Incident, Kind};
use crate::timezone::Zone;

/// `2026-11-23 03:11:58 CET` in the configured zone.
pub fn local_time(ms: i64, zone: &Zone) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| {
            t.to_zoned(zone.time_zone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}

/// `2m 13s`, to the second.
pub fn duration(ms: i64) -> String {
    let secs = (ms.max(0) + 500) / 1000;
    humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
}

/// `be_api/api2 on lb1`, `be_api on lb1` or `lb1`.
pub fn place(i: &Incident) -> String {
    match (&i.backend, &i.server) {
        (Some(b), Some(s)) => format!("{b}/{s} on {}", i.host),
        (Some(b), None) => format!("{b} on {}", i.host),
        _ => i.host.clone(),
    }
}

/// DOWN, CRITICAL, DEGRADED, …: the word a title starts with.
pub fn word(i: &Incident) -> &'static str {
    match i.kind {
        Kind::ServerDown => "DOWN",
        Kind::BackendDown => "CRITICAL",
        Kind::BackendDegraded => "DEGRADED",
        Kind::Flapping => "FLAPPING",
        Kind::Silence => "SILENT",
        Kind::Channel => "CHANNEL FAILING",
        Kind::Reconcile => "STATS UNREADABLE",
        Kind::HostDown => "HOST DOWN",
        Kind::Operator => "MAINTENANCE",
        Kind::Rule => match i.detail.get("rule").and_then(Value::as_str) {
            Some("p95_ms") => "SLOW",
            Some("retries_per_s") => "RETRIES",
            _ => "ERRORS",
        },
    }
}

fn int(d: &Map<String, Value>, k: &str) -> Option<u64> {
    d.get(k).and_then(Value::as_u64)
}

/// What is wrong, after the place: `(Layer4 timeout) — 3 of 4 servers left`,
/// `: no server available (st1, st2 DOWN)`.
fn what(i: &Incident) -> String {
    let d = &i.detail;
    match i.kind {
        Kind::ServerDown => {
            let mut t = String::new();
            if let Some(reason) = d.get("reason").and_then(Value::as_str) {
                t += &format!(" ({reason})");
            }
            match (int(d, "active_left"), int(d, "servers")) {
                (Some(active), Some(total)) => t += &format!(" — {active} of {total} servers left"),
                (Some(active), None) => t += &format!(" — {active} active servers left"),
                _ => {}
            }
            t
        }
        Kind::BackendDown => {
            let down: Vec<&str> = d
                .get("down_servers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if down.is_empty() {
                ": no server available".into()
            } else {
                format!(": no server available ({} DOWN)", down.join(", "))
            }
        }
        Kind::BackendDegraded => match (int(d, "down"), int(d, "servers")) {
            (Some(down), Some(total)) => format!(": {down} of {total} servers DOWN"),
            _ => format!(": {}", i.summary),
        },
        Kind::Flapping => match int(d, "changes") {
            Some(n) => format!(" ({n} UP/DOWN changes)"),
            None => String::new(),
        },
        Kind::Channel => match d.get("reason").and_then(Value::as_str) {
            Some(reason) => format!(
                ": {} ({reason})",
                d.get("channel").and_then(Value::as_str).unwrap_or_default()
            ),
            None => format!(": {}", i.summary),
        },
        Kind::Reconcile => match d.get("reason").and_then(Value::as_str) {
            Some(reason) => format!(": {reason}"),
            None => String::new(),
        },
        Kind::HostDown => format!(
            ": {}",
            i.summary
                .split_once(": ")
                .map_or(i.summary.as_str(), |(_, r)| r)
        ),
        Kind::Rule | Kind::Silence | Kind::Operator => {
            // The summary already names the place; keep what follows it.
            let s = i.summary.as_str();
            let rest = s.split_once(": ").map_or(s, |(_, r)| r);
            format!(": {rest}")
        }
    }
}

/// One line for one item: `DOWN be_api/api2 on lb1 (Connection refused) — 2 of 3 servers left`,
/// `RESOLVED be_api/api2 on lb1: UP again after 2m 13s`.
pub fn headline(it: &Item) -> String {
    let i = &it.incident;
    let mut line = match &it.resolved {
        Some(r) => format!(
            "RESOLVED {}: {} after {}",
            place(i),
            r.note,
            duration(r.ts_ms - i.opened_ms)
        ),
        None => {
            let mut line = format!("{} {}{}", word(i), place(i), what(i));
            if let Some(at) = reminder_ms(i) {
                line += &format!(", still open after {}", duration(at - i.opened_ms));
            }
            line
        }
    };
    if let Some(ack) = &i.ack {
        line += &format!(" (acknowledged by {})", ack.by);
    }
    line
}

/// When this firing is a reminder of an incident still open.
pub fn reminder_ms(i: &Incident) -> Option<i64> {
    // Rows stored before it was a field carry it in the detail.
    i.reminder_ms
        .or_else(|| i.detail.get("reminder_ms").and_then(Value::as_i64))
}

/// The subject of a message: its most severe item (items come sorted),
/// with the rest counted. Servers of one backend that went DOWN together
/// are named together.
pub fn title(items: &[Item]) -> String {
    let lead = &items[0];
    let same = items.iter().all(|it| {
        it.incident.kind == Kind::ServerDown
            && it.resolved.is_some() == lead.resolved.is_some()
            && it.incident.backend == lead.incident.backend
    });
    if items.len() > 1 && same {
        let i = &lead.incident;
        let names: Vec<&str> = items
            .iter()
            .filter_map(|it| it.incident.server.as_deref())
            .collect();
        let backend = i.backend.as_deref().unwrap_or_default();
        let head = if lead.resolved.is_some() {
            "RESOLVED"
        } else {
            "DOWN"
        };
        let mut t = format!(
            "[hapwatch] {head} {backend}/{} on {}",
            names.join(", "),
            i.host
        );
        // The fewest left is the backend's state after the last of them.
        if lead.resolved.is_none() {
            let last = items
                .iter()
                .map(|it| &it.incident.detail)
                .filter_map(|d| Some((int(d, "active_left")?, int(d, "servers")?)))
                .min();
            if let Some((a, n)) = last {
                t += &format!(" — {a} of {n} servers left");
            }
        }
        return t;
    }
    let mut t = format!("[hapwatch] {}", headline(lead));
    if items.len() > 1 {
        t += &format!(" (+{} more)", items.len() - 1);
    }
    t
}

/// A subject line people and mail servers take: no control characters, and
/// short (RFC 5322 caps a line at 998 characters; a subject needs far fewer).
pub fn subject_line(title: &str) -> String {
    const MAX: usize = 200;
    let clean = crate::escape::escape(title);
    if clean.chars().count() <= MAX {
        return clean.into_owned();
    }
    let mut cut: String = clean.chars().take(MAX - 1).collect();
    cut.push('…');
    cut
}

/// The traffic evidence as a sentence: `5xx 5.8 % of 172 requests, 4xx 0.0 %, p95 6 ms`.
pub fn traffic(v: &Value) -> Option<String> {
    let requests = v.get("requests")?.as_u64()?;
    let pct = |k: &str| v.get(k).and_then(Value::as_f64).map(|s| s * 100.0);
    let mut parts = vec![format!(
        "5xx {:.1} % of {requests} requests",
        pct("5xx_share").unwrap_or(0.0)
    )];
    if let Some(p) = pct("4xx_share") {
        parts.push(format!("4xx {p:.1} %"));
    }
    if let Some(r) = v.get("retries").and_then(Value::as_u64).filter(|r| *r > 0) {
        parts.push(format!("{r} retries"));
    }
    if let Some(t) = v
        .get("server_terminations")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
    {
        parts.push(format!("{t} ended by the server"));
    }
    if let Some(p95) = v.get("p95_ms").and_then(Value::as_u64) {
        parts.push(format!("p95 {p95} ms"));
    }
    Some(parts.join(", "))
}

/// The evidence of an incident as `(label, sentence)` lines, for mail bodies.
pub fn evidence(i: &Incident, zone: &Zone) -> Vec<(&'static str, String)> {
    let d = &i.detail;
    let mut out = Vec::new();
    if let Some(reason) = d.get("reason").and_then(Value::as_str) {
        out.push(("Reason", reason.to_owned()));
    }
    if let Some(active) = int(d, "active_left") {
        let backup = int(d, "backup_left").map_or(String::new(), |b| format!(", {b} backup"));
        let of = int(d, "servers").map_or(String::new(), |n| format!(" of {n}"));
        out.push(("Left", format!("{active}{of} servers active{backup}")));
    }
    if let Some(down) = d.get("down_servers").and_then(Value::as_array) {
        let names: Vec<&str> = down.iter().filter_map(Value::as_str).collect();
        out.push(("Down", names.join(", ")));
    }
    if let Some(n) = int(d, "changes") {
        out.push(("Changes", format!("{n} UP/DOWN changes")));
    }
    if let (Some(rule), Some(value), Some(threshold)) = (
        d.get("rule").and_then(Value::as_str),
        d.get("value").and_then(Value::as_f64),
        d.get("threshold").and_then(Value::as_f64),
    ) {
        let show = |v: f64| crate::rules::show_value(rule, v);
        let requests = int(d, "requests").map_or(String::new(), |n| format!(" over {n} requests"));
        out.push((
            "Rule",
            format!(
                "{} {} (fires above {}){requests}",
                rule.replace('_', " "),
                show(value),
                show(threshold)
            ),
        ));
    }
    if let Some(last) = d.get("last_message_ms").and_then(Value::as_i64) {
        out.push(("Last log", local_time(last, zone)));
    }
    if let Some(t) = d.get("last_window").and_then(traffic) {
        out.push(("Traffic", format!("{t} (the last rules window)")));
    }
    if let Some(ack) = &i.ack {
        let when = local_time(ack.at_ms, zone);
        out.push(("Acked", format!("by {} at {when}: {}", ack.by, ack.reason)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Severity;
    use crate::notify::Resolution;

    fn down(server: &str, active: u64) -> Incident {
        let mut detail = Map::new();
        detail.insert("reason".into(), "Connection refused".into());
        detail.insert("active_left".into(), active.into());
        detail.insert("servers".into(), 3.into());
        Incident {
            id: 4,
            key: crate::incidents::IncidentKey::server("lb1", "be_api", server),
            kind: Kind::ServerDown,
            severity: Severity::Warning,
            host: "lb1".into(),
            backend: Some("be_api".into()),
            server: Some(server.into()),
            opened_ms: 1_795_395_600_000,
            reminder_ms: None,
            ack: None,
            summary: format!("server be_api/{server} is DOWN"),
            detail,
        }
    }

    fn item(i: Incident, resolved: Option<(i64, &str)>) -> Item {
        Item {
            channel: "a".into(),
            incident: i,
            resolved: resolved.map(|(ts_ms, note)| Resolution {
                ts_ms,
                note: note.into(),
            }),
        }
    }

    #[test]
    fn evidence_reads_as_sentences_in_the_zone() {
        let mut i = down("api2", 2);
        i.detail.insert(
            "last_window".into(),
            serde_json::json!({"requests": 172, "5xx_share": 0.0581, "4xx_share": 0.0, "retries": 0, "server_terminations": 0, "p95_ms": 6}),
        );
        let zone: Zone = "Europe/Paris".parse().unwrap();
        let ev = evidence(&i, &zone);
        assert!(ev.contains(&(
            "Traffic",
            "5xx 5.8 % of 172 requests, 4xx 0.0 %, p95 6 ms (the last rules window)".into()
        )));
        assert!(ev.contains(&("Left", "2 of 3 servers active".into())));
        assert_eq!(
            local_time(1_795_395_600_000, &zone),
            "2026-11-23 02:00:00 CET"
        );
    }

    #[test]
    fn a_subject_is_short_and_has_no_control_characters() {
        let mut i = down("api2", 2);
        i.backend = Some("b".repeat(10_000));
        i.server = Some("s\r\nBcc: x@example.org".into());
        let subject = subject_line(&title(&[item(i, None)]));
        assert!(subject.chars().count() <= 200, "{}", subject.len());
        assert!(!subject.contains('\r') && !subject.contains('\n'));
    }

    #[test]
    fn titles_lead_with_the_worst_and_resolves_say_what_came_back() {
        let one = [item(down("api2", 2), None)];
        assert_eq!(
            title(&one),
            "[hapwatch] DOWN be_api/api2 on lb1 (Connection refused) — 2 of 3 servers left"
        );
        let two = [item(down("api1", 2), None), item(down("api2", 1), None)];
        assert_eq!(
            title(&two),
            "[hapwatch] DOWN be_api/api1, api2 on lb1 — 1 of 3 servers left"
        );
        let back = [item(
            down("api2", 2),
            Some((1_795_395_600_000 + 133_000, "UP again")),
        )];
        assert_eq!(
            title(&back),
            "[hapwatch] RESOLVED be_api/api2 on lb1: UP again after 2m 13s"
        );
        let mut critical = down("x", 0);
        critical.kind = Kind::BackendDown;
        critical.severity = Severity::Critical;
        critical.server = None;
        critical.detail = Map::new();
        critical
            .detail
            .insert("down_servers".into(), serde_json::json!(["st1", "st2"]));
        let mixed = [item(critical, None), item(down("api2", 2), None)];
        assert_eq!(
            title(&mixed),
            "[hapwatch] CRITICAL be_api on lb1: no server available (st1, st2 DOWN) (+1 more)"
        );
    }
}
