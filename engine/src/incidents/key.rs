//! What an incident is about: one open incident per key. Built only here,
//! one constructor per kind, and stored as its text (`server:lb1:be_api/api3`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentKey(String);

impl IncidentKey {
    pub fn server(host: &str, backend: &str, server: &str) -> Self {
        IncidentKey(format!("server:{host}:{backend}/{server}"))
    }

    /// A server an operator put in maintenance or drain.
    pub fn operator(host: &str, backend: &str, server: &str) -> Self {
        IncidentKey(format!("operator:{host}:{backend}/{server}"))
    }

    pub fn flapping(host: &str, backend: &str, server: &str) -> Self {
        IncidentKey(format!("flapping:{host}:{backend}/{server}"))
    }

    /// A backend with some of its servers down.
    pub fn degraded(host: &str, backend: &str) -> Self {
        IncidentKey(format!("degraded:{host}:{backend}"))
    }

    /// A backend with no server left.
    pub fn backend(host: &str, backend: &str) -> Self {
        IncidentKey(format!("backend:{host}:{backend}"))
    }

    /// A traffic rule firing for a backend or one of its servers.
    pub fn rule(host: &str, backend: &str, server: Option<&str>, rule: &str) -> Self {
        IncidentKey(match server {
            Some(s) => format!("rule:{host}:{backend}/{s}:{rule}"),
            None => format!("rule:{host}:{backend}:{rule}"),
        })
    }

    /// Most of a host's backends down at once.
    pub fn host(host: &str) -> Self {
        IncidentKey(format!("host:{host}"))
    }

    /// A host that stopped sending logs.
    pub fn silence(host: &str) -> Self {
        IncidentKey(format!("silence:{host}"))
    }

    /// A notification channel that keeps failing.
    pub fn channel(name: &str) -> Self {
        IncidentKey(format!("channel:{name}"))
    }

    /// HAProxy's stats that cannot be read for reconciliation.
    pub fn reconcile(host: &str) -> Self {
        IncidentKey(format!("reconcile:{host}"))
    }

    /// `hapwatch test-alert`'s pretend incident, never stored.
    pub fn test_alert() -> Self {
        IncidentKey("test".to_owned())
    }

    /// A key as the store holds it.
    pub fn stored(text: String) -> Self {
        IncidentKey(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
