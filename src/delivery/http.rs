//! Webhooks (hapwatch JSON, Slack, Teams, PagerDuty, Alertmanager): one
//! POST, signed when the channel has a secret; a redirect is not followed.

use super::{http_status, DeliveryError};
use crate::notify::HttpTarget;

/// HMAC-SHA256 of the body, hex, as `X-Hapwatch-Signature: sha256=…` carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// An error body says why; more than this of it is not worth memory.
const ERROR_BODY: usize = 4096;

pub async fn post(
    client: &reqwest::Client,
    target: &HttpTarget,
    payload: &str,
) -> Result<(), DeliveryError> {
    let mut req = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("hapwatch/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(secret) = &target.secret {
        req = req.header(
            "x-hapwatch-signature",
            signature(secret.expose(), payload.as_bytes()),
        );
    }
    let mut resp = req.body(payload.to_owned()).send().await.map_err(|e| {
        // A webhook URL is often the secret itself (Slack, Teams): never log it.
        let text = super::error_chain(&e.without_url());
        if text.contains("invalid peer certificate") {
            DeliveryError::Permanent(format!("TLS: {text}"))
        } else {
            DeliveryError::Transport(text)
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        let to = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("nowhere");
        return Err(DeliveryError::Permanent(format!(
            "HTTP {status}: a redirect to {to} is not followed for a POST; set `url` to where it points"
        )));
    }
    let mut body = Vec::new();
    while body.len() < ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY - body.len())])
            }
            _ => break,
        }
    }
    Err(DeliveryError::Status {
        status: http_status::Status(status.as_u16()),
        body: String::from_utf8_lossy(&body).chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
