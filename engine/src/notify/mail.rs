//! The mail of a message: subject, body and threading ids, stored in the
//! outbox when the message is composed (the daemon's SMTP sender reads it).

use serde_json::{json, Value};

use super::{text, Message};

/// Subject, body and threading ids, stored in the outbox when the message is composed.
pub fn render(m: &Message<'_>) -> Value {
    let zone = m.zone;
    let mut body = String::new();
    for it in m.items {
        body += &text::headline(it);
        body += "\n";
    }
    for it in m.items {
        let i = &it.incident;
        body += &format!("\n{}\n", text::place(i));
        body += &format!(
            "  {:<10} #{} ({}, {})\n",
            "Incident",
            i.id,
            i.kind.as_str(),
            i.severity.as_str()
        );
        body += &format!(
            "  {:<10} {}\n",
            "Opened",
            text::local_time(i.opened_ms, zone)
        );
        if let Some(r) = &it.resolved {
            body += &format!(
                "  {:<10} {}, after {}: {}\n",
                "Resolved",
                text::local_time(r.ts_ms, zone),
                text::duration(r.ts_ms - i.opened_ms),
                r.note
            );
        }
        for (label, line) in text::evidence(i, zone) {
            body += &format!("  {label:<10} {line}\n");
        }
        body += &format!("  {:<10} hapwatch incident {}\n", "More", i.id);
    }
    let ids: Vec<i64> = m.items.iter().map(|it| it.incident.id).collect();
    json!({
        "subject": text::subject_line(&text::title(m.items)),
        "body": body,
        "message_id": m.message_id,
        "in_reply_to": m.parents.first(),
        "references": m.parents,
        // For the timelines appended when the mail is sent.
        "incidents": ids,
        "zone": zone.to_string(),
    })
}
