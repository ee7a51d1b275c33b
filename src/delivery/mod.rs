//! Delivery: the senders that take a composed payload to a channel (an HTTP
//! POST, an SMTP dialogue) and say, as a `DeliveryError`, whether another
//! attempt can succeed. The outbox task (notify::outbox) decides when.

pub mod http;
pub mod smtp;
pub mod tls;

use std::sync::Arc;

use crate::notify::ChannelConfig;

/// Why a delivery attempt failed, and so whether another can succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer within the channel's `timeout`: retried.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(std::time::Duration),
    /// The receiver answered this HTTP status (5xx, 408 and 429 are retried).
    #[error("HTTP {status}: {body}")]
    Status {
        status: http_status::Status,
        body: String,
    },
    /// Connecting or talking failed (refused, reset, DNS, SMTP 4xx): retried.
    #[error("{0}")]
    Transport(String),
    /// The server's certificate is not trusted: what it presented, what to do.
    #[error("{0}")]
    Tls(Box<tls::TlsDiagnosis>),
    /// Only a person can fix it: a redirect, SMTP 5xx, AUTH rejected, a bad
    /// address, a channel that cannot be set up.
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Transport(_) => false,
            DeliveryError::Status { status, .. } => !status.is_retried(),
            DeliveryError::Tls(_) | DeliveryError::Permanent(_) => true,
        }
    }
}

pub mod http_status {
    /// An HTTP status as a receiver answered it, shown as `503 Service Unavailable`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Status(pub u16);

    impl Status {
        /// Worth another attempt: the receiver is overloaded, down or asks to wait.
        pub fn is_retried(self) -> bool {
            matches!(self.0, 500..=599 | 408 | 429)
        }
    }

    impl std::fmt::Display for Status {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match reqwest::StatusCode::from_u16(self.0) {
                Ok(code) => write!(f, "{code}"),
                Err(_) => write!(f, "{}", self.0),
            }
        }
    }
}

/// A channel that cannot be set up to deliver (its `ca_file`, its TLS
/// settings, the HTTP client): no attempt can succeed until the config changes.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("channel {0:?} has no SMTP settings")]
    NotEmail(String),
    #[error(transparent)]
    CaFile(#[from] tls::CaFileError),
    #[error("TLS settings: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl From<SetupError> for DeliveryError {
    fn from(e: SetupError) -> Self {
        DeliveryError::Permanent(error_chain(&e))
    }
}

/// An error with its causes, each said once (some errors already print their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg += &format!(": {text}");
        }
        src = s.source();
    }
    msg
}

/// How a channel is reached.
#[derive(Clone)]
pub enum Sender {
    Http(reqwest::Client, Arc<crate::notify::HttpTarget>),
    Smtp(Arc<smtp::SmtpChannel>),
}

/// One attempt, bounded by the channel's `timeout` as a whole: a server that
/// stalls mid-dialogue must not hold the notification (and those queued
/// behind it) for good.
pub async fn send(via: &Sender, ch: &ChannelConfig, payload: &str) -> Result<(), DeliveryError> {
    let attempt = async {
        match via {
            Sender::Http(client, target) => http::post(client, target, payload).await,
            Sender::Smtp(smtp) => smtp.send(payload).await,
        }
    };
    tokio::time::timeout(ch.timeout, attempt)
        .await
        .unwrap_or(Err(DeliveryError::Timeout(ch.timeout)))
}

/// reqwest and lettre are built without a TLS provider of their own: ring,
/// installed once per process (the binary does it too; a daemon started
/// in-process must not depend on that).
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http_client() -> Result<reqwest::Client, SetupError> {
    ensure_crypto_provider();
    reqwest::Client::builder()
        // A POST is never re-sent elsewhere: a redirect is reported instead.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(SetupError::Http)
}

pub fn sender(ch: &ChannelConfig, client: &reqwest::Client) -> Result<Sender, SetupError> {
    Ok(match &ch.target {
        crate::notify::Target::Email(_) => Sender::Smtp(Arc::new(smtp::SmtpChannel::new(ch)?)),
        crate::notify::Target::Http(h) => Sender::Http(client.clone(), Arc::new(h.clone())),
    })
}

/// Sends one payload now, outside the outbox (`hapwatch test-alert`).
pub async fn send_now(ch: &ChannelConfig, payload: &str) -> Result<(), DeliveryError> {
    let client = http_client()?;
    let via = sender(ch, &client)?;
    send(&via, ch, payload).await
}
