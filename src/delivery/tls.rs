//! Trusting a private relay: `ca_file` may hold the CA that signed the
//! relay's certificate, or the relay's own certificate (self-signed, CA:TRUE
//! or not), which is then pinned: the presented leaf must equal it and name
//! the host. When trust fails, the error says what the server presented.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// Who a certificate is, for people: subject, issuer, SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sha256: String,
}

impl CertInfo {
    pub fn of(der: &[u8]) -> CertInfo {
        let (subject, issuer) = names(der).unwrap_or_else(|| ("?".into(), "?".into()));
        CertInfo {
            subject,
            issuer,
            sha256: fingerprint(der),
        }
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", issuer \"{}\", SHA-256 {}",
            self.subject, self.issuer, self.sha256
        )
    }
}

/// A TLS failure, with what to do about it.
#[derive(Debug, Clone)]
pub struct TlsDiagnosis {
    pub channel: String,
    pub server: String,
    /// What the TLS library said.
    pub reason: String,
    pub presented: Option<CertInfo>,
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file`, when it has any.
    pub trusted: Vec<CertInfo>,
}

impl fmt::Display for TlsDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {} is not trusted ({})", self.server, self.reason)?;
        if let Some(p) = &self.presented {
            write!(f, "; it presented {p}")?;
        }
        match &self.ca_file {
            Some(path) => {
                let held: Vec<String> = self.trusted.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "; that matches neither the certificate in ca_file {} nor a CA in it ({}): put the relay's own certificate or the CA that signed it in `ca_file` of channel {:?}",
                    path.display(),
                    if held.is_empty() { "no certificate".into() } else { held.join("; ") },
                    self.channel
                )
            }
            None => write!(
                f,
                "; if it is a private relay, put its certificate (or the CA that signed it) in a PEM file and name it as `ca_file` of channel {:?}",
                self.channel
            ),
        }
    }
}

/// Why `ca_file` gives no certificate to trust.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("ca_file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("ca_file {path}: {source}")]
    Pem {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("ca_file {path}: no PEM certificate in it")]
    Empty { path: String },
}

/// The certificates of a PEM file, as DER.
pub fn read_pem(path: &Path) -> Result<Vec<Vec<u8>>, CaFileError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| CaFileError::Unreadable {
        path: shown(),
        source,
    })?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|source| CaFileError::Pem {
            path: shown(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty { path: shown() });
    }
    Ok(certs)
}

/// Why a relay's certificate is not the pinned one.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("no ca_file")]
    NoCaFile,
    #[error("the presented certificate is not the one in ca_file")]
    NotPinned,
    #[error("{0}")]
    Unreadable(webpki::Error),
    #[error("{0}")]
    BadHost(rustls_pki_types::InvalidDnsNameError),
    #[error("the pinned certificate does not name {host}: {source}")]
    WrongName { host: String, source: webpki::Error },
}

/// Whether the presented leaf is one of the pinned certificates and names `host`.
pub fn pinned(leaf: &[u8], pins: &[Vec<u8>], host: &str) -> Result<(), PinError> {
    if !pins.iter().any(|p| p == leaf) {
        return Err(PinError::NotPinned);
    }
    let der = CertificateDer::from(leaf);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(PinError::Unreadable)?;
    let name = ServerName::try_from(host).map_err(PinError::BadHost)?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|source| PinError::WrongName {
            host: host.to_owned(),
            source,
        })
}

fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One DER element: (tag, contents, what follows).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// (subject, issuer) of a certificate, as `CN=…, O=…`.
fn names(der: &[u8]) -> Option<(String, String)> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // version
    }
    let (_, _, rest) = element(rest)?; // serial
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (_, issuer, rest) = element(rest)?;
    let (_, _, rest) = element(rest)?; // validity
    let (_, subject, _) = element(rest)?;
    Some((name(subject), name(issuer)))
}

/// A Name's common attributes, most specific first as OpenSSL prints them.
fn name(mut rdns: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((_, set, rest)) = element(rdns) {
        rdns = rest;
        let mut attrs = set;
        while let Some((_, attr, more)) = element(attrs) {
            attrs = more;
            let Some((_, oid, value)) = element(attr) else {
                continue;
            };
            let Some((_, text, _)) = element(value) else {
                continue;
            };
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x55, 0x04, 0x06] => "C",
                _ => continue,
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
        }
    }
    if parts.is_empty() {
        "(no name)".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_der_lengths_are_read_and_truncation_is_refused() {
        assert_eq!(
            element(&[0x30, 0x02, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        let long = [&[0x04u8, 0x81, 0x03][..], &[7, 8, 9]].concat();
        assert_eq!(element(&long), Some((0x04, &[7u8, 8, 9][..], &[][..])));
        assert_eq!(element(&[0x30, 0x05, 1]), None);
        assert_eq!(names(&[0x30, 0x00]), None);
    }
}
