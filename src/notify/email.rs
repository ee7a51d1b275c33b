//! Email notifications with lettre: SMTP with STARTTLS or implicit TLS and
//! AUTH. A resolve threads under its firing (Message-ID / In-Reply-To).

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

use super::{group_title, title, ChannelConfig, Item, SmtpTls};
use crate::incidents::Incident;
use crate::timezone::rfc3339;

fn message_id(ch: &ChannelConfig, i: &Incident, status: &str) -> String {
    let domain = ch
        .from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map_or("hapwatch.invalid", |(_, d)| d.trim_end_matches('>'));
    format!("<hapwatch-{}-{status}@{domain}>", i.id)
}

/// Subject, body and threading ids, stored in the outbox as they were when the change happened.
pub fn render(ch: &ChannelConfig, i: &Incident, resolved: Option<(i64, &str)>) -> Value {
    let status = if resolved.is_some() {
        "resolved"
    } else {
        "firing"
    };
    let mut body = format!("{}\n\n", i.summary);
    body += &format!(
        "incident   #{} ({}, {})\n",
        i.id,
        i.kind.as_str(),
        i.severity.as_str()
    );
    body += &format!("host       {}\n", i.host);
    if let Some(b) = &i.backend {
        body += &format!("backend    {b}\n");
    }
    if let Some(s) = &i.server {
        body += &format!("server     {s}\n");
    }
    body += &format!("opened     {}\n", rfc3339(i.opened_ms));
    if let Some((ts, why)) = resolved {
        body += &format!(
            "resolved   {} after {}s: {why}\n",
            rfc3339(ts),
            (ts - i.opened_ms) / 1000
        );
    }
    for (k, v) in &i.detail {
        if !v.is_null() {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            body += &format!("{k:<10} {v}\n");
        }
    }
    body += &format!(
        "\nThe traffic before it opened and its notifications: hapwatch incident {}\n",
        i.id
    );
    // A reminder threads under the first mail, with an id of its own.
    let reminder = i.detail.get("reminder_ms").and_then(Value::as_i64);
    let own = match reminder {
        Some(at) => message_id(ch, i, &format!("reminder-{at}")),
        None => message_id(ch, i, status),
    };
    let parent = (resolved.is_some() || reminder.is_some()).then(|| message_id(ch, i, "firing"));
    json!({
        "subject": title(i, resolved.is_some()),
        "body": body,
        "message_id": own,
        "in_reply_to": parent,
    })
}

/// One mail for several changes of a backend.
pub fn render_group(ch: &ChannelConfig, items: &[Item]) -> Value {
    let mut body = String::new();
    for it in items {
        let resolved = it.resolved.as_ref().map(|(ts, why)| (*ts, why.as_str()));
        let one = render(ch, &it.incident, resolved);
        body += one["body"].as_str().unwrap_or_default();
        body += "\n";
    }
    let status = if items.iter().any(|i| i.resolved.is_none()) {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "subject": group_title(items),
        "body": body,
        "message_id": message_id(ch, &items[0].incident, &format!("group-{status}")),
        "in_reply_to": null,
    })
}

/// A transport for the channel; built once per channel and reused.
pub fn transport(ch: &ChannelConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = ch.smtp_host.clone().ok_or("no smtp_host")?;
    let mut params = TlsParameters::builder(host.clone());
    if let Some(path) = &ch.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let cert =
            Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        params = params.add_root_certificate(cert);
    }
    let params = params.build_rustls().map_err(|e| e.to_string())?;
    let (tls, port) = match ch.tls {
        SmtpTls::Starttls => (Tls::Required(params), 587),
        SmtpTls::Tls => (Tls::Wrapper(params), 465),
        SmtpTls::None => (Tls::None, 25),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(ch.smtp_port.unwrap_or(port))
        .tls(tls);
    if let (Some(u), Some(p)) = (&ch.username, &ch.password) {
        b = b.credentials(Credentials::new(u.clone(), p.expose().to_owned()));
    }
    Ok(b.build())
}

pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    ch: &ChannelConfig,
    payload: &str,
) -> Result<(), String> {
    let v: Value = serde_json::from_str(payload).map_err(|e| format!("bad stored mail: {e}"))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let from: Mailbox = ch
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("from: {e}"))?;
    let mut m = Message::builder()
        .from(from)
        .subject(text("subject"))
        .message_id(Some(text("message_id")));
    for to in &ch.to {
        m = m.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    if let Some(parent) = v.get("in_reply_to").and_then(Value::as_str) {
        m = m
            .in_reply_to(parent.to_owned())
            .references(parent.to_owned());
    }
    let message = m
        .header(ContentType::TEXT_PLAIN)
        .body(text("body"))
        .map_err(|e| e.to_string())?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| super::error_chain(&e))
}
