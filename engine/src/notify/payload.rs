//! The body each channel type is sent.

use serde_json::{json, Map, Value};

use super::{text, ChannelType, Item, Message, Route};
use crate::incidents::Severity;
use crate::timezone::{rfc3339, Zone};

/// The version of hapwatch's own JSON (README: "Webhook JSON").
pub const VERSION: u32 = 2;

fn incident_json(it: &Item, zone: &Zone) -> Value {
    let i = &it.incident;
    let evidence: Map<String, Value> = text::evidence(i, zone)
        .into_iter()
        .map(|(label, line)| (label.to_lowercase().replace(' ', "_"), line.into()))
        .collect();
    json!({
        "id": i.id, "key": i.key, "kind": i.kind.as_str(), "severity": i.severity.as_str(),
        "host": i.host, "backend": i.backend, "server": i.server, "summary": i.summary,
        "headline": text::headline(it),
        "status": it.status().as_str(),
        "opened_at": rfc3339(i.opened_ms),
        "resolved_at": it.resolved.as_ref().map(|r| rfc3339(r.ts_ms)),
        "resolution": it.resolved.as_ref().map(|r| r.note.as_str()),
        "evidence": evidence,
        "detail": i.detail,
        "ack": i.ack.as_ref().map(|a| json!({
            "by": a.by, "reason": a.reason, "at": rfc3339(a.at_ms),
        })),
    })
}

/// PagerDuty's `acknowledge` for an incident's trigger (the same dedup key):
/// its page stops escalating.
pub fn acknowledge(ch: &Route, i: &crate::incidents::Incident) -> Value {
    json!({
        "routing_key": ch.routing_key.as_deref().unwrap_or_default(),
        "event_action": "acknowledge",
        "dedup_key": dedup_key(i),
    })
}

/// Ties a trigger, its acknowledge and its resolve together.
fn dedup_key(i: &crate::incidents::Incident) -> String {
    format!("hapwatch-{}", i.id)
}

/// Slack reads `&`, `<` and `>` as markup (mentions, links): names from logs
/// must not become either.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Teams reads Markdown in a TextBlock: names from logs must not become links or emphasis.
fn teams_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '[' | ']' | '(' | ')' | '*' | '_' | '`' | '<' | '>' | '#' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The body of a message for a webhook channel. Items come sorted, most
/// severe first: the top-level incident and severity are the worst one's.
pub fn build(ch: &Route, m: &Message<'_>) -> Value {
    let items = m.items;
    let lead = &items[0];
    let heading = text::title(items);
    let lines: Vec<String> = items.iter().map(text::headline).collect();
    let status = m.status().as_str();
    match ch.kind {
        ChannelType::Slack => {
            let icon = match (m.status(), lead.incident.severity) {
                (super::Status::Resolved, _) => ":large_green_circle:",
                (_, Severity::Critical) => ":red_circle:",
                _ => ":large_orange_circle:",
            };
            let rest = if lines.len() > 1 {
                format!("\n{}", lines.join("\n"))
            } else {
                String::new()
            };
            json!({ "text": slack_escape(&format!("{icon} {heading}{rest}")) })
        }
        ChannelType::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "TextBlock", "text": teams_escape(&heading), "weight": "Bolder", "wrap": true },
                        { "type": "TextBlock", "text": teams_escape(&lines.join("\n\n")), "wrap": true },
                    ],
                },
            }],
        }),
        ChannelType::Pagerduty => {
            let i = &lead.incident;
            json!({
                "routing_key": ch.routing_key.as_deref().unwrap_or_default(),
                "event_action": if lead.resolved.is_some() { "resolve" } else { "trigger" },
                "dedup_key": dedup_key(i),
                "payload": {
                    "summary": heading,
                    "source": i.host,
                    "severity": i.severity.as_str(),
                    "component": i.backend,
                    "group": i.kind.as_str(),
                    "timestamp": rfc3339(i.opened_ms),
                    "custom_details": i.detail,
                },
            })
        }
        ChannelType::Alertmanager => Value::Array(
            items
                .iter()
                .map(|it| {
                    let i = &it.incident;
                    // What the incident is, never which node saw it: every node of
                    // an HA pair posts the same labels, so Alertmanager keeps one
                    // alert. The node's own incident number is an annotation.
                    let mut labels = serde_json::Map::new();
                    labels.insert(
                        "alertname".into(),
                        format!("hapwatch_{}", i.kind.as_str()).into(),
                    );
                    labels.insert("severity".into(), i.severity.as_str().into());
                    labels.insert("host".into(), i.host.clone().into());
                    // The incident's identity (two rules on one backend are two alerts).
                    labels.insert("key".into(), i.key.as_str().into());
                    for (key, value) in [("backend", &i.backend), ("server", &i.server)] {
                        if let Some(v) = value {
                            labels.insert(key.into(), v.clone().into());
                        }
                    }
                    let mut alert = json!({
                        "labels": labels,
                        "annotations": {
                            "summary": i.summary,
                            "title": text::headline(it),
                            "hapwatch_incident": i.id.to_string(),
                        },
                        "startsAt": rfc3339(i.opened_ms),
                    });
                    if let Some(r) = &it.resolved {
                        alert["endsAt"] = rfc3339(r.ts_ms).into();
                    }
                    alert
                })
                .collect(),
        ),
        ChannelType::Webhook | ChannelType::Email => json!({
            "version": VERSION,
            "status": status,
            "severity": lead.incident.severity.as_str(),
            "title": heading,
            "text": lines.join("\n"),
            "incident": incident_json(lead, m.zone),
            "incidents": items.iter().map(|it| incident_json(it, m.zone)).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, Kind};
    use crate::notify::Resolution;

    fn incident() -> Incident {
        let mut detail = serde_json::Map::new();
        detail.insert("reason".into(), "Layer4 timeout".into());
        Incident {
            id: 9,
            key: crate::incidents::IncidentKey::server("lb1", "be_api", "s1"),
            kind: Kind::ServerDown,
            severity: Severity::Warning,
            host: "lb1".into(),
            backend: Some("be_api".into()),
            server: Some("s1".into()),
            opened_ms: 1_795_395_600_000,
            reminder_ms: None,
            ack: None,
            summary: "server be_api/s1 is DOWN".into(),
            detail,
        }
    }

    fn channel(kind: &str) -> Route {
        Route {
            routing_key: Some("R0UT1NG".into()),
            ..Route::new("c", serde_json::from_value(json!(kind)).unwrap())
        }
    }

    fn body(kind: &str, items: &[Item]) -> Value {
        build(
            &channel(kind),
            &Message {
                items,
                message_id: String::new(),
                parents: vec![],
                zone: &Zone::Utc,
            },
        )
    }

    fn firing() -> Item {
        Item {
            channel: "c".into(),
            incident: incident(),
            resolved: None,
        }
    }

    fn resolved() -> Item {
        Item {
            resolved: Some(Resolution {
                ts_ms: 1_795_395_660_000,
                note: "UP again".into(),
            }),
            ..firing()
        }
    }

    #[test]
    fn pagerduty_triggers_and_resolves_the_same_dedup_key() {
        let fire = body("pagerduty", &[firing()]);
        let done = body("pagerduty", &[resolved()]);
        assert_eq!(fire["event_action"], "trigger");
        assert_eq!(done["event_action"], "resolve");
        assert_eq!(fire["dedup_key"], done["dedup_key"]);
        assert_eq!(fire["routing_key"], "R0UT1NG");
        assert_eq!(fire["payload"]["severity"], "warning");
        assert_eq!(fire["payload"]["source"], "lb1");
    }

    #[test]
    fn an_ack_is_pagerdutys_acknowledge_and_the_resolve_says_who_acked() {
        let fire = body("pagerduty", &[firing()]);
        let ack = acknowledge(&channel("pagerduty"), &incident());
        assert_eq!(ack["event_action"], "acknowledge");
        assert_eq!(ack["dedup_key"], fire["dedup_key"]);
        assert_eq!(ack["routing_key"], "R0UT1NG");
        let mut done = resolved();
        done.incident.ack = Some(Box::new(crate::incidents::Ack {
            by: "alice".into(),
            reason: "rebooting the host".into(),
            at_ms: 1_795_395_630_000,
        }));
        let hook = body("webhook", &[done]);
        assert_eq!(hook["incident"]["ack"]["by"], "alice");
        assert_eq!(hook["incident"]["ack"]["at"], "2026-11-23T01:00:30Z");
        assert!(
            hook["text"]
                .as_str()
                .unwrap()
                .ends_with("(acknowledged by alice)"),
            "{hook}"
        );
        assert_eq!(
            hook["incident"]["evidence"]["acked"],
            "by alice at 2026-11-23 01:00:30 UTC: rebooting the host"
        );
        assert!(body("webhook", &[firing()])["incident"]["ack"].is_null());
    }

    #[test]
    fn alertmanager_alerts_end_when_resolved() {
        let fire = body("alertmanager", &[firing()]);
        assert_eq!(fire[0]["labels"]["alertname"], "hapwatch_server_down");
        // Labels say what, not which node: no incident id (each node numbers its own).
        let labels = fire[0]["labels"].as_object().unwrap();
        let mut keys: Vec<&str> = labels.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["alertname", "backend", "host", "key", "server", "severity"]
        );
        assert_eq!(fire[0]["labels"]["key"], "server:lb1:be_api/s1");
        assert_eq!(fire[0]["annotations"]["hapwatch_incident"], "9");
        assert_eq!(fire[0]["startsAt"], "2026-11-23T01:00:00Z");
        assert!(fire[0].get("endsAt").is_none());
        let done = body("alertmanager", &[resolved()]);
        assert_eq!(done[0]["endsAt"], "2026-11-23T01:01:00Z");
    }

    #[test]
    fn slack_and_teams_carry_the_title_and_slack_markup_is_escaped() {
        let slack = body("slack", &[firing()]);
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .contains("[hapwatch] DOWN be_api/s1 on lb1 (Layer4 timeout)"));
        let mut evil = firing();
        evil.incident.server = Some("<!channel>".into());
        let text = body("slack", &[evil])["text"].as_str().unwrap().to_owned();
        assert!(
            text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"),
            "{text}"
        );
        let teams = body("teams", &[resolved()]);
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        // Markdown is escaped: a name cannot become a link.
        assert_eq!(
            card["content"]["body"][0]["text"],
            "\\[hapwatch\\] RESOLVED be\\_api/s1 on lb1: UP again after 1m"
        );
        let mut evil = firing();
        evil.incident.server = Some("[x](https://evil/)".into());
        let text = body("teams", &[evil])["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains("\\[x\\]\\(https://evil/\\)"), "{text}");
    }

    #[test]
    fn the_webhook_leads_with_the_most_severe_incident() {
        let mut critical = firing();
        critical.incident.id = 10;
        critical.incident.kind = Kind::BackendDown;
        critical.incident.severity = Severity::Critical;
        critical.incident.server = None;
        let v = body("webhook", &[critical, firing()]);
        assert_eq!(v["version"], 2);
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["incident"]["id"], 10);
        assert_eq!(v["incidents"].as_array().unwrap().len(), 2);
        assert_eq!(v["incidents"][1]["evidence"]["reason"], "Layer4 timeout");
    }
}
