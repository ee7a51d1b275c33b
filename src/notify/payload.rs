//! The body each channel type is sent.

use serde_json::{json, Value};

use super::{title, ChannelConfig, ChannelType};
use crate::incidents::{Incident, Severity};
use crate::timezone::rfc3339;

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
            "incident": {
                "id": i.id, "key": i.key, "kind": i.kind.as_str(), "severity": i.severity.as_str(),
                "host": i.host, "backend": i.backend, "server": i.server, "summary": i.summary,
                "opened_at": rfc3339(i.opened_ms),
                "resolved_at": resolved.map(|(ts, _)| rfc3339(ts)),
                "resolution": resolved.map(|(_, why)| why),
                "detail": i.detail,
            },
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
