//! The body each channel type is sent.

use serde_json::{json, Value};

use super::{group_title, title, ChannelConfig, ChannelType, Item};
use crate::incidents::{Incident, Severity};
use crate::timezone::rfc3339;

fn incident_json(i: &Incident, resolved: Option<(i64, &str)>) -> Value {
    json!({
        "id": i.id, "key": i.key, "kind": i.kind.as_str(), "severity": i.severity.as_str(),
        "host": i.host, "backend": i.backend, "server": i.server, "summary": i.summary,
        "status": if resolved.is_some() { "resolved" } else { "firing" },
        "opened_at": rfc3339(i.opened_ms),
        "resolved_at": resolved.map(|(ts, _)| rfc3339(ts)),
        "resolution": resolved.map(|(_, why)| why),
        "detail": i.detail,
    })
}

/// Several changes of one backend in one body (not PagerDuty, not email).
pub fn build_group(ch: &ChannelConfig, items: &[Item]) -> Value {
    let heading = group_title(items);
    fn resolved(it: &Item) -> Option<(i64, &str)> {
        it.resolved.as_ref().map(|(ts, why)| (*ts, why.as_str()))
    }
    let status = if items.iter().any(|i| i.resolved.is_none()) {
        "firing"
    } else {
        "resolved"
    };
    let lines: Vec<String> = items
        .iter()
        .map(|it| match &it.resolved {
            Some((_, why)) => format!("RESOLVED {}: {why}", it.incident.summary),
            None => it.incident.summary.clone(),
        })
        .collect();
    match ch.kind {
        ChannelType::Slack => json!({ "text": format!("{heading}\n{}", lines.join("\n")) }),
        ChannelType::Alertmanager => Value::Array(
            items
                .iter()
                .flat_map(|it| match build(ch, &it.incident, resolved(it)) {
                    Value::Array(a) => a,
                    other => vec![other],
                })
                .collect(),
        ),
        ChannelType::Teams => {
            let mut card = build(ch, &items[0].incident, resolved(&items[0]));
            card["attachments"][0]["content"]["body"] = json!([
                { "type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": true },
                { "type": "TextBlock", "text": lines.join("\n\n"), "wrap": true },
            ]);
            card
        }
        _ => json!({
            "version": 1,
            "status": status,
            "title": heading,
            "incident": incident_json(&items[0].incident, resolved(&items[0])),
            "incidents": items.iter().map(|it| incident_json(&it.incident, resolved(it))).collect::<Vec<_>>(),
        }),
    }
}

/// `resolved` is (when, why) for a resolved notice.
pub fn build(ch: &ChannelConfig, i: &Incident, resolved: Option<(i64, &str)>) -> Value {
    let heading = title(i, resolved.is_some());
    let status = if resolved.is_some() {
        "resolved"
    } else {
        "firing"
    };
    match ch.kind {
        ChannelType::Webhook => json!({
            "version": 1,
            "status": status,
            "title": heading,
            "incident": incident_json(i, resolved),
            "incidents": [incident_json(i, resolved)],
        }),
        ChannelType::Slack => {
            let icon = match (resolved.is_some(), i.severity) {
                (true, _) => ":large_green_circle:",
                (false, Severity::Critical) => ":red_circle:",
                (false, _) => ":large_orange_circle:",
            };
            let why = resolved.map_or(String::new(), |(_, why)| format!("\n{why}"));
            json!({ "text": format!("{icon} {heading}{why}") })
        }
        ChannelType::Teams => {
            let why = resolved.map_or_else(
                || i.summary.clone(),
                |(_, why)| format!("{}: {why}", i.summary),
            );
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            { "type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": true },
                            { "type": "TextBlock", "text": why, "wrap": true },
                        ],
                    },
                }],
            })
        }
        ChannelType::Pagerduty => json!({
            "routing_key": ch.routing_key.clone().unwrap_or_default(),
            "event_action": if resolved.is_some() { "resolve" } else { "trigger" },
            // The same key ties the resolve to its trigger.
            "dedup_key": format!("hapwatch-{}", i.id),
            "payload": {
                "summary": heading,
                "source": i.host,
                "severity": i.severity.as_str(),
                "component": i.backend,
                "group": i.kind.as_str(),
                "timestamp": rfc3339(i.opened_ms),
                "custom_details": i.detail,
            },
        }),
        ChannelType::Alertmanager => {
            let mut alert = json!({
                "labels": {
                    "alertname": format!("hapwatch_{}", i.kind.as_str()),
                    "severity": i.severity.as_str(),
                    "host": i.host,
                    "backend": i.backend,
                    "server": i.server,
                    "incident": i.id.to_string(),
                },
                "annotations": { "summary": i.summary, "title": heading },
                "startsAt": rfc3339(i.opened_ms),
            });
            if let Some((ts, _)) = resolved {
                alert["endsAt"] = rfc3339(ts).into();
            }
            json!([alert])
        }
        ChannelType::Email => super::email::render(ch, i, resolved),
    }
}
