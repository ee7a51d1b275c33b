//! Email notifications with lettre: SMTP with STARTTLS or implicit TLS and
//! AUTH. A resolve threads under its firing (Message-ID / In-Reply-To); a
//! private relay's own certificate may be pinned (`tls.rs`).

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message as Mail;
use serde_json::Value;

use super::{tls, DeliveryError, SetupError};
use crate::notify::{ChannelConfig, EmailTarget, SmtpTls};

/// How one email channel reaches its relay: strict verification against the
/// system's CAs and `ca_file`, or the relay's own certificate pinned.
pub struct SmtpChannel {
    name: String,
    timeout: std::time::Duration,
    email: EmailTarget,
    /// Verifies the chain (None: `tls = "none"`).
    strict: Option<TlsParameters>,
    /// Accepts any certificate: used only to check the pin before AUTH.
    probe: Option<TlsParameters>,
    pins: Vec<Vec<u8>>,
    /// The relay was last trusted by its pinned certificate: try that first.
    pinned: std::sync::atomic::AtomicBool,
}

impl SmtpChannel {
    pub fn new(ch: &ChannelConfig) -> Result<SmtpChannel, SetupError> {
        super::ensure_crypto_provider();
        let email = ch
            .email()
            .ok_or_else(|| SetupError::NotEmail(ch.name.clone()))?;
        let host = email.smtp_host.clone();
        let pins = match &email.ca_file {
            Some(path) => tls::read_pem(path)?,
            None => Vec::new(),
        };
        let (strict, probe) = if email.tls == SmtpTls::None {
            (None, None)
        } else {
            let mut strict = TlsParameters::builder(host.clone());
            for der in &pins {
                // A CA:TRUE self-signed leaf is not a usable root; it is pinned instead.
                if let Ok(cert) = Certificate::from_der(der.clone()) {
                    strict = strict.add_root_certificate(cert);
                }
            }
            let strict = strict
                .build_rustls()
                .or_else(|_| TlsParameters::builder(host.clone()).build_rustls())
                .map_err(SetupError::Tls)?;
            let probe = TlsParameters::builder(host)
                .dangerous_accept_invalid_certs(true)
                .build_rustls()
                .map_err(SetupError::Tls)?;
            (Some(strict), Some(probe))
        };
        Ok(SmtpChannel {
            name: ch.name.clone(),
            timeout: ch.timeout,
            email: email.clone(),
            strict,
            probe,
            pins,
            pinned: Default::default(),
        })
    }

    fn port(&self) -> u16 {
        self.email.smtp_port.unwrap_or(match self.email.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    fn server(&self) -> String {
        format!("{}:{}", self.email.smtp_host, self.port())
    }

    /// Connects and, with TLS, encrypts (implicit TLS or STARTTLS).
    async fn open(
        &self,
        params: Option<&TlsParameters>,
    ) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let host = self.email.smtp_host.as_str();
        let hello = ClientId::default();
        let addr = (host, self.port());
        let timeout = Some(self.timeout);
        match (self.email.tls, params) {
            (SmtpTls::Tls, Some(p)) => {
                AsyncSmtpConnection::connect_tokio1(addr, timeout, &hello, Some(p.clone()), None)
                    .await
            }
            (SmtpTls::Starttls, Some(p)) => {
                let mut c =
                    AsyncSmtpConnection::connect_tokio1(addr, timeout, &hello, None, None).await?;
                c.starttls(p.clone(), &hello).await?;
                Ok(c)
            }
            _ => AsyncSmtpConnection::connect_tokio1(addr, timeout, &hello, None, None).await,
        }
    }

    /// An encrypted connection to a relay this channel trusts, before any credential is sent.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let (Some(strict), Some(probe)) = (&self.strict, &self.probe) else {
            return self.open(None).await.map_err(classify);
        };
        use std::sync::atomic::Ordering::Relaxed;
        let mut strict_error = None;
        if !self.pinned.load(Relaxed) || self.pins.is_empty() {
            match self.open(Some(strict)).await {
                Ok(c) => return Ok(c),
                Err(e) if untrusted(&e) => strict_error = Some(super::error_chain(&e)),
                Err(e) => return Err(classify(e)),
            }
        }
        // See what the server presents; with a pin, trust exactly that certificate.
        let mut c = self.open(Some(probe)).await.map_err(classify)?;
        let leaf = c.peer_certificate().map_err(classify)?;
        let host = self.email.smtp_host.as_str();
        let pin = if self.pins.is_empty() {
            Err(tls::PinError::NoCaFile)
        } else {
            tls::pinned(&leaf, &self.pins, host)
        };
        match pin {
            Ok(()) => {
                self.pinned.store(true, Relaxed);
                Ok(c)
            }
            Err(why) if strict_error.is_none() && self.pinned.swap(false, Relaxed) => {
                // The pin no longer matches; the next attempt verifies the chain.
                c.abort().await;
                Err(DeliveryError::Transport(format!(
                    "the pinned certificate changed: {why}"
                )))
            }
            Err(why) => {
                c.abort().await;
                Err(DeliveryError::Tls(Box::new(tls::TlsDiagnosis {
                    channel: self.name.clone(),
                    server: self.server(),
                    reason: strict_error.unwrap_or_else(|| why.to_string()),
                    presented: Some(tls::CertInfo::of(&leaf)),
                    ca_file: self.email.ca_file.clone(),
                    trusted: self.pins.iter().map(|p| tls::CertInfo::of(p)).collect(),
                })))
            }
        }
    }

    pub async fn send(&self, payload: &str) -> Result<(), DeliveryError> {
        let mail = mail(&self.email, payload)
            .map_err(|e| DeliveryError::Permanent(super::error_chain(&e)))?;
        let mut conn = self.connect().await?;
        let result = async {
            if let Some((u, p)) = &self.email.credentials {
                let creds = Credentials::new(u.clone(), p.expose().to_owned());
                conn.auth(DEFAULT_MECHANISMS, &creds).await?;
            }
            conn.send(mail.envelope(), &mail.formatted()).await?;
            Ok::<_, lettre::transport::smtp::Error>(())
        }
        .await;
        match result {
            Ok(()) => {
                let _ = conn.quit().await;
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(classify(e))
            }
        }
    }
}

/// Whether the server's certificate was refused (lettre reports it as a
/// connection error wrapping rustls' own).
fn untrusted(e: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(_)) = s.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return matches!(inner, rustls::Error::InvalidCertificate(_));
        }
        source = s.source();
    }
    e.is_tls() || super::error_chain(e).contains("invalid peer certificate")
}

/// SMTP 5xx (AUTH rejected, recipient refused) and client errors are for a
/// person to fix; 4xx, timeouts and broken connections are worth retrying.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryError {
    let mut text = super::error_chain(&e);
    if text.contains("STARTTLS is not supported") {
        text += ": the relay offers no TLS; for a relay on this machine without it, set tls = \"none\" in the channel";
    }
    if e.is_permanent() || e.is_client() || untrusted(&e) {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Transport(text)
    }
}

/// Why a stored mail cannot be made into a message for its channel.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad stored mail: {0}")]
    Stored(#[from] serde_json::Error),
    #[error("from: {0}")]
    From(#[source] lettre::address::AddressError),
    #[error("to {to:?}: {source}")]
    To {
        to: String,
        source: lettre::address::AddressError,
    },
    #[error("{0}")]
    Build(#[from] lettre::error::Error),
}

/// The stored mail as a message for this channel's sender and recipients.
fn mail(e: &EmailTarget, payload: &str) -> Result<Mail, MailError> {
    let v: Value = serde_json::from_str(payload)?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let from: Mailbox = e.from.parse().map_err(MailError::From)?;
    let mut m = Mail::builder()
        .from(from)
        .subject(text("subject"))
        .message_id(Some(text("message_id")));
    for to in &e.to {
        m = m.to(to.parse().map_err(|source| MailError::To {
            to: to.clone(),
            source,
        })?);
    }
    if let Some(parent) = v.get("in_reply_to").and_then(Value::as_str) {
        m = m.in_reply_to(parent.to_owned());
        let refs: Vec<&str> = v
            .get("references")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        m = m.references(if refs.is_empty() {
            parent.to_owned()
        } else {
            refs.join(" ")
        });
    }
    Ok(m.header(ContentType::TEXT_PLAIN).body(text("body"))?)
}
