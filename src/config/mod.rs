//! The TOML configuration. Every key has a default, so hapwatch runs with no
//! file; every key is documented in `packaging/hapwatch.toml`. Values are
//! checked while deserializing so that errors carry the key's line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::timezone::Zone;

mod http;
mod listener;
pub use http::{HttpAuth, HttpConfig, HttpListen, DEFAULT_HTTP};
pub use listener::ListenerConfig;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub storage: StorageConfig,
    pub parse: ParseConfig,
    /// `[[listen]]` tables; none means the default UDP listener.
    pub listen: Vec<ListenerConfig>,
    pub incidents: crate::incidents::IncidentsConfig,
    pub rules: crate::rules::RulesConfig,
    pub notify: crate::notify::NotifyConfig,
    /// `[[channel]]` tables: where notifications go; none means the log only.
    pub channel: Vec<crate::notify::ChannelConfig>,
    pub http: HttpConfig,
    pub digest: crate::digest::DigestConfig,
    /// `[reconcile]` (one HAProxy) or `[[reconcile]]` (several, each its host).
    #[serde(deserialize_with = "reconcile_list")]
    pub reconcile: Vec<crate::reconcile::ReconcileConfig>,
    pub limits: LimitsConfig,
    pub heartbeat: crate::heartbeat::HeartbeatConfig,
    /// `[[maintenance]]` windows: incidents recorded, not notified, while one is on.
    pub maintenance: Vec<crate::maintenance::WindowConfig>,
    pub cluster: ClusterConfig,
}

/// `[cluster]`: this node among others.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Shown in `/healthz`, `/metrics`, the console and each delivery attempt; default: the hostname.
    #[serde(deserialize_with = "node_name")]
    pub node: Option<String>,
    /// Nodes sharing a PostgreSQL store: how long the deciding node's lease
    /// (and a row being sent) lasts unrenewed before another takes over.
    #[serde(deserialize_with = "lease_term")]
    pub lease: Duration,
    /// Nodes receiving the same load balancers (an HA pair) share a group,
    /// and one of them decides for it; groups receiving different ones
    /// (shards) decide side by side over one history.
    #[serde(deserialize_with = "group_name")]
    pub group: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node: None,
            lease: Duration::from_secs(10),
            group: "default".into(),
        }
    }
}

/// A lease is renewed every fifth of its term: shorter than a second is
/// churn, longer than a minute leaves pages waiting that long after a crash.
fn lease_term<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let term = duration(d)?;
    if term < Duration::from_secs(1) || term > Duration::from_secs(60) {
        return Err(serde::de::Error::custom(format!(
            "{} is not a lease: from 1s to 60s",
            humantime::format_duration(term)
        )));
    }
    Ok(term)
}

impl ClusterConfig {
    /// The configured name, else the machine's hostname.
    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }
}

/// This machine's hostname ("localhost" if it has none).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn node_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    named(d, "node").map(Some)
}

fn group_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    named(d, "group")
}

/// A name people type and read in logs: 1 to 64 of letters, digits, `-_.`.
fn named<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !fits {
        return Err(serde::de::Error::custom(format!(
            "{name:?} is not a {what} name: 1 to 64 of letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(name)
}

/// `[limits]`: what outside input may make the daemon hold, at most.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Hosts watched for silence; more are counted and not watched.
    pub hosts: usize,
    /// (host, backend, server) routes kept in the live totals (/metrics);
    /// traffic of more goes to one overflow route, counted.
    pub routes: usize,
    /// A route with no traffic for this long leaves the live totals.
    #[serde(deserialize_with = "duration")]
    pub route_idle: Duration,
    /// Open TCP syslog connections; more are refused and counted.
    pub tcp_connections: usize,
    /// A TCP connection that sends nothing for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub tcp_idle: Duration,
    /// Open HTTP connections; more wait to be accepted.
    pub http_connections: usize,
    /// An HTTP connection idle (or a request unfinished) this long is closed.
    #[serde(deserialize_with = "duration")]
    pub http_idle: Duration,
    /// Distinct normalised URLs kept per backend and window (`stats --by
    /// url`); the rest are summed in one `(other)` row. 0 keeps none.
    pub urls: usize,
}

impl LimitsConfig {
    /// Distinct host, frontend, backend and server names the pipeline
    /// interns: room for every route of the live totals, four names each.
    pub fn names(&self) -> usize {
        self.routes.saturating_mul(4).max(1024)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            hosts: 10_000,
            routes: 20_000,
            route_idle: Duration::from_secs(3600),
            tcp_connections: 512,
            tcp_idle: Duration::from_secs(300),
            http_connections: 128,
            http_idle: Duration::from_secs(30),
            urls: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(deserialize_with = "duration")]
    pub stats_interval: Duration,
    /// Messages waiting between the sockets and the parser.
    #[serde(deserialize_with = "positive")]
    pub queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite file; default `hapwatch.db` in the state directory.
    pub path: Option<PathBuf>,
    /// A PostgreSQL database (URL or key=value string) to store everything in
    /// instead, shared by several nodes.
    #[serde(deserialize_with = "postgres_target")]
    pub postgres: Option<tokio_postgres::Config>,
    /// Its password, if the string has none (`env:NAME`, `file:/path`, or the value).
    pub postgres_password: Option<crate::notify::secret::Secret>,
    /// The longest one statement on it may take before it counts as failed
    /// (and is retried): a server that stopped answering holds no thread.
    #[serde(deserialize_with = "duration")]
    pub postgres_timeout: Duration,
    #[serde(deserialize_with = "window_span")]
    pub window: Duration,
    /// How long a window stays open in memory after it ends, for late lines.
    #[serde(deserialize_with = "duration")]
    pub window_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub retain_windows: Duration,
    #[serde(deserialize_with = "duration")]
    pub retain_events: Duration,
    /// Evidence lines go sooner than the windows they belong to: they are most
    /// of the store's size, and most useful while an incident is fresh.
    #[serde(deserialize_with = "duration")]
    pub retain_samples: Duration,
    /// Raw lines kept per window and error class, as evidence.
    pub samples_per_window: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseConfig {
    /// The zone of accept dates and syslog dates that carry none.
    #[serde(deserialize_with = "zone")]
    pub timezone: Zone,
    /// Learn custom `log-format`s from this HAProxy config.
    pub haproxy_config: Option<PathBuf>,
    /// Custom `log-format` strings.
    pub log_formats: Vec<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            stats_interval: Duration::from_secs(60),
            queue: 65_536,
        }
    }
}

impl StorageConfig {
    /// How long evidence lines are kept: `retain_samples`, never past their window.
    pub fn samples_kept(&self) -> Duration {
        self.retain_samples.min(self.retain_windows)
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: None,
            postgres: None,
            postgres_password: None,
            postgres_timeout: Duration::from_secs(10),
            window: Duration::from_secs(60),
            window_grace: Duration::from_secs(10),
            retain_windows: Duration::from_secs(30 * 86_400),
            retain_events: Duration::from_secs(365 * 86_400),
            retain_samples: Duration::from_secs(7 * 86_400),
            samples_per_window: 3,
        }
    }
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            timezone: Zone::Local,
            haproxy_config: None,
            log_formats: Vec::new(),
        }
    }
}

/// Why a config file gives no config.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a bad value, with its line.
    #[error("config {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("config {path}: {source}")]
    Invalid { path: String, source: ConfigError },
}

/// What a config breaks that no single key's type can say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("[limits] {0} must be more than 0")]
    Zero(&'static str),
    #[error("[[reconcile]] names host {0:?} twice: each load balancer is one table")]
    ReconcileHostTwice(String),
    #[error("[heartbeat] {0} must be more than 0")]
    HeartbeatZero(&'static str),
    #[error("two maintenance windows are named {0:?}")]
    DuplicateWindow(String),
    #[error("two channels are named {0:?}")]
    DuplicateChannel(String),
    #[error("channel {channel:?} (type {kind:?}) needs `{key}`")]
    ChannelNeeds {
        channel: String,
        kind: crate::notify::ChannelType,
        key: &'static str,
    },
    #[error("channel {channel:?} (type {kind:?}) takes no `{key}`: it is for another type")]
    ChannelForeignKey {
        channel: String,
        kind: crate::notify::ChannelType,
        key: &'static str,
    },
    #[error("channel {channel:?}: {address:?} is not an email address: {reason}")]
    BadAddress {
        channel: String,
        address: String,
        reason: String,
    },
    #[error("[digest] channel {0:?} is not an email channel")]
    DigestNotEmail(String),
    #[error("[digest] names channel {0:?}, which is not configured")]
    DigestUnknown(String),
    #[error("[digest] hour = {0} is not an hour of the day (0-23)")]
    DigestHour(u32),
    #[error("[reconcile] needs `host`: the host under which this HAProxy's logs arrive")]
    ReconcileNeedsHost,
    #[error("[reconcile] takes stats_socket or stats_url, not both")]
    ReconcileBoth,
    #[error("[http] {1} needs `{0}` too")]
    HttpNeeds(&'static str, &'static str),
    #[error("[http] {0} is empty: every request would get in")]
    HttpEmpty(&'static str),
    #[error("[http] user holds a colon, which basic auth cannot carry")]
    HttpUserColon,
}

/// The config the package installs, read when no `--config`, no
/// `$HAPWATCH_CONFIG` and no `--db` says otherwise, so that the CLI finds the
/// daemon's store as the daemon does. `$HAPWATCH_SYSTEM_CONFIG` moves it (tests).
pub fn system_config() -> Option<PathBuf> {
    let path = std::env::var_os("HAPWATCH_SYSTEM_CONFIG").map_or_else(
        || PathBuf::from("/etc/hapwatch/hapwatch.toml"),
        PathBuf::from,
    );
    path.is_file().then_some(path)
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads `path`, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config, LoadError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: shown(),
            source,
        })?;
        let config = Config::from_toml(&text).map_err(|e| LoadError::Syntax {
            path: shown(),
            // TOML quotes the line: a secret on it is cut out.
            message: crate::notify::secret::redact(&e.to_string(), &text),
        })?;
        config.validate().map_err(|source| LoadError::Invalid {
            path: shown(),
            source,
        })?;
        Ok(config)
    }

    /// Checks across keys that deserializing cannot make.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, zero) in [
            ("hosts", l.hosts == 0),
            ("routes", l.routes == 0),
            ("route_idle", l.route_idle.is_zero()),
            ("tcp_connections", l.tcp_connections == 0),
            ("tcp_idle", l.tcp_idle.is_zero()),
            ("http_connections", l.http_connections == 0),
            ("http_idle", l.http_idle.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::Zero(key));
            }
        }
        let mut names = std::collections::HashSet::new();
        for ch in &self.channel {
            if !names.insert(ch.name.as_str()) {
                return Err(ConfigError::DuplicateChannel(ch.name.clone()));
            }
        }
        for name in &self.digest.channels {
            match self.channel.iter().find(|c| &c.name == name) {
                Some(c) if c.kind == crate::notify::ChannelType::Email => {}
                Some(_) => return Err(ConfigError::DigestNotEmail(name.clone())),
                None => return Err(ConfigError::DigestUnknown(name.clone())),
            }
        }
        for (key, zero) in [
            ("every", self.heartbeat.every.is_zero()),
            ("timeout", self.heartbeat.timeout.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::HeartbeatZero(key));
            }
        }
        let mut windows = std::collections::HashSet::new();
        for w in &self.maintenance {
            if !windows.insert(w.name.as_str()) {
                return Err(ConfigError::DuplicateWindow(w.name.clone()));
            }
        }
        let mut hosts = std::collections::HashSet::new();
        for r in &self.reconcile {
            r.validate()?;
            if let Some(host) = &r.host {
                if !hosts.insert(host.as_str()) {
                    return Err(ConfigError::ReconcileHostTwice(host.clone()));
                }
            }
        }
        if self.digest.hour > 23 {
            return Err(ConfigError::DigestHour(self.digest.hour));
        }
        self.http.validate()
    }

    /// The SQLite file: the configured one, else `hapwatch.db` in the state directory.
    pub fn db_path(&self) -> PathBuf {
        self.storage
            .path
            .clone()
            .unwrap_or_else(|| state_dir().join("hapwatch.db"))
    }

    /// Where everything is stored: the PostgreSQL database if one is set, else the SQLite file.
    pub fn store(&self) -> crate::store::Location {
        match &self.storage.postgres {
            Some(target) => {
                let mut target = target.clone();
                if let Some(password) = &self.storage.postgres_password {
                    target.password(password.expose());
                }
                crate::store::Location::Postgres(Box::new(crate::store::PgTarget {
                    config: target,
                    timeout: Some(self.storage.postgres_timeout),
                }))
            }
            None => crate::store::Location::Sqlite(self.db_path()),
        }
    }

    /// The configured listeners, or the default one.
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        if self.listen.is_empty() {
            vec![ListenerConfig::new(
                crate::ingest::listen::DEFAULT_LISTEN
                    .parse()
                    .expect("valid"),
            )]
        } else {
            self.listen.clone()
        }
    }
}

/// systemd's `StateDirectory`, else the XDG state home, else the working directory.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("hapwatch");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/hapwatch");
    }
    PathBuf::from(".")
}

/// A share: 0.05 is 5 %. `5` would be a rule that can never fire.
/// A webhook URL: http:// or https://, nothing else.
pub fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    let scheme = url
        .split("://")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if url.contains("://") && (scheme == "http" || scheme == "https") {
        return Ok(Some(url));
    }
    Err(serde::de::Error::custom(
        "a url here starts with http:// or https://",
    ))
}

pub use hapwatch_engine::de::{duration, share};

/// `[reconcile]` (a table) or `[[reconcile]]` (a list of them): either way
/// a list, each entry one HAProxy's stats and the host its logs come as.
fn reconcile_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::reconcile::ReconcileConfig>, D::Error> {
    use serde::de::{value::MapAccessDeserializer, MapAccess, SeqAccess, Visitor};
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<crate::reconcile::ReconcileConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a [reconcile] table or [[reconcile]] tables")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let one =
                crate::reconcile::ReconcileConfig::deserialize(MapAccessDeserializer::new(map))?;
            // An empty [reconcile] table is reconciliation off, as no table is.
            Ok(if one.enabled() || one.host.is_some() {
                vec![one]
            } else {
                Vec::new()
            })
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(one) = seq.next_element()? {
                out.push(one);
            }
            Ok(out)
        }
    }
    d.deserialize_any(List)
}

fn postgres_target<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<tokio_postgres::Config>, D::Error> {
    let text = String::deserialize(d)?;
    let mut config: tokio_postgres::Config = text.parse().map_err(|e| {
        serde::de::Error::custom(format!(
            "not a PostgreSQL URL or key=value string ({e}): \"postgresql://user@host/db\" or \"host=/run/postgresql dbname=hapwatch\""
        ))
    })?;
    if config.get_hosts().is_empty() {
        return Err(serde::de::Error::custom(
            "names no host: add one (postgresql://HOST/db, or host=/run/postgresql)",
        ));
    }
    // An unreachable host must fail the start, not hang it.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(Some(config))
}

fn window_span<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let span = duration(d)?;
    let secs = span.as_secs();
    if secs == 0 || span.subsec_nanos() != 0 || 86_400 % secs != 0 {
        return Err(serde::de::Error::custom(format!(
            "window {span:?} must be whole seconds that divide a day (10s, 1m, 5m, 1h…)"
        )));
    }
    Ok(span)
}

pub(crate) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn zone<'de, D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_between_a_second_and_a_minute() {
        assert_eq!(Config::default().cluster.lease, Duration::from_secs(10));
        let c = Config::from_toml("[cluster]\nlease = \"3s\"\n").unwrap();
        assert_eq!(c.cluster.lease, Duration::from_secs(3));
        let e = Config::from_toml("[cluster]\nlease = \"500ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lease") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_node_is_named_or_the_hostname() {
        let named = Config::from_toml("[cluster]\nnode = \"lb-a.dc1\"\n").unwrap();
        assert_eq!(named.cluster.node(), "lb-a.dc1");
        assert!(!Config::default().cluster.node().is_empty());
        let e = Config::from_toml("\n[cluster]\nnode = \"a b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("node name"), "{e}");
        assert_eq!(Config::default().cluster.group, "default");
        let e = Config::from_toml("[cluster]\ngroup = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("group name"), "{e}");
    }

    #[test]
    fn no_file_means_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.storage.window, Duration::from_secs(60));
        assert_eq!(c.listeners().len(), 1);
        assert_eq!(c.storage.retain_events, Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn reconcile_is_one_table_or_a_list_each_with_its_own_host() {
        let single = "[reconcile]\nstats_socket = \"/run/haproxy/admin.sock\"\nhost = \"lb1\"\n";
        let c = Config::from_toml(single).unwrap();
        assert_eq!(c.reconcile.len(), 1);
        assert_eq!(c.reconcile[0].host.as_deref(), Some("lb1"));
        let one = "[[reconcile]]\nstats_socket = \"/run/haproxy/admin.sock\"\nhost = \"lb1\"\n";
        let two = format!(
            "{one}\n[[reconcile]]\nstats_url = \"http://lb2:8404/stats;csv\"\nhost = \"lb2\"\n"
        );
        let c = Config::from_toml(&two).unwrap();
        c.validate().unwrap();
        let hosts: Vec<_> = c.reconcile.iter().map(|r| r.host.as_deref()).collect();
        assert_eq!(hosts, [Some("lb1"), Some("lb2")]);
        let same = format!("{one}\n{one}");
        let e = Config::from_toml(&same)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"lb1\"") && e.contains("twice"), "{e}");
        assert!(Config::from_toml("[reconcile]\n")
            .unwrap()
            .reconcile
            .is_empty());
        let e = Config::from_toml("[reconcile]\nstats_sock = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `stats_sock`") && e.contains("line 2"),
            "{e}"
        );
        let e = Config::from_toml("[reconcile]\nhost = \"a\"\n[reconcile]\nhost = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn a_channel_key_of_another_type_or_a_missing_one_is_an_error_at_its_table() {
        let e = Config::from_toml(
            "[daemon]\nqueue = 10\n\n[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://x\"\nsmtp_host = \"mx\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("takes no `smtp_host`") && e.contains("line 4"),
            "{e}"
        );
        let e = Config::from_toml(
            "[[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"mx\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nrouting_key = \"k\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("takes no `routing_key`") && e.contains("line 1"),
            "{e}"
        );
        let e = Config::from_toml(
            "[[channel]]\nname = \"pd\"\ntype = \"pagerduty\"\nurl = \"http://x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("needs `routing_key`") && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let text = include_str!("../../packaging/hapwatch.toml");
        let c = Config::from_toml(text).unwrap();
        assert!(!c.listen.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn a_share_over_one_and_a_non_http_url_are_refused_with_their_line() {
        let e = Config::from_toml("[rules]\n\nerror_5xx = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("0.05 means 5 %"), "{e}");
        let e =
            Config::from_toml("[[channel]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"ftp://x\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 4") && e.contains("http://"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Config::from_toml("[storage]\nwindow = \"60s\"\nretain_window = \"3d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("retain_window"), "{e}");

        let e = Config::from_toml("[storage]\n\nwindow = \"7m\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("divide a day"), "{e}");

        let e = Config::from_toml(
            "[[listen]]\nurl = \"udp://127.0.0.1:1\"\nallow = [\"10.0.0.0/33\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("10.0.0.0/33"), "{e}");

        let e = Config::from_toml("[parse]\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("Mars/Olympus"), "{e}");
    }
}
