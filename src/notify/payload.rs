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
            "routing_key": ch.routing_key.as_ref().map_or("", |k| k.expose()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Kind;

    fn incident() -> Incident {
        let mut detail = serde_json::Map::new();
        detail.insert("reason".into(), "Layer4 timeout".into());
        Incident {
            id: 9,
            key: "server:lb1:be_api/s1".into(),
            kind: Kind::ServerDown,
            severity: Severity::Warning,
            host: "lb1".into(),
            backend: Some("be_api".into()),
            server: Some("s1".into()),
            opened_ms: 1_795_395_600_000,
            summary: "server be_api/s1 is DOWN".into(),
            detail,
        }
    }

    fn channel(kind: &str) -> ChannelConfig {
        toml::from_str(&format!(
            "name = \"c\"\ntype = \"{kind}\"\nurl = \"http://x\"\nrouting_key = \"R0UT1NG\"\n"
        ))
        .unwrap()
    }

    const RESOLVED: Option<(i64, &str)> = Some((1_795_395_660_000, "UP again"));

    #[test]
    fn pagerduty_triggers_and_resolves_the_same_dedup_key() {
        let ch = channel("pagerduty");
        let fire = build(&ch, &incident(), None);
        let done = build(&ch, &incident(), RESOLVED);
        assert_eq!(fire["event_action"], "trigger");
        assert_eq!(done["event_action"], "resolve");
        assert_eq!(fire["dedup_key"], done["dedup_key"]);
        assert_eq!(fire["routing_key"], "R0UT1NG");
        assert_eq!(fire["payload"]["severity"], "warning");
        assert_eq!(fire["payload"]["source"], "lb1");
    }

    #[test]
    fn alertmanager_alerts_end_when_resolved() {
        let ch = channel("alertmanager");
        let fire = build(&ch, &incident(), None);
        assert_eq!(fire[0]["labels"]["alertname"], "hapwatch_server_down");
        assert_eq!(fire[0]["startsAt"], "2026-11-23T01:00:00Z");
        assert!(fire[0].get("endsAt").is_none());
        let done = build(&ch, &incident(), RESOLVED);
        assert_eq!(done[0]["endsAt"], "2026-11-23T01:01:00Z");
    }

    #[test]
    fn slack_and_teams_carry_the_title() {
        let slack = build(&channel("slack"), &incident(), None);
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .contains("[hapwatch] DOWN be_api/s1 on lb1 (Layer4 timeout)"));
        let teams = build(&channel("teams"), &incident(), RESOLVED);
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert!(card["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("[hapwatch] RESOLVED"));
        assert!(card["content"]["body"][1]["text"]
            .as_str()
            .unwrap()
            .ends_with("UP again"));
    }
}
