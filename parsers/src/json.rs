//! The JSON schema printed by `hapwatch parse` (and stored with every event).
//! Field names and values follow the labelled fixtures: HAProxy's escapes are
//! kept, absent values are `null`, numbers are numbers.

use serde_json::{json, Map, Value};

use crate::{Envelope, Event, Other, ParseError, Protocol, Record, StateChange, Traffic};

/// The whole object for a parsed record.
pub fn record_to_json(rec: &Record<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "syslog".into(),
        Value::Object(envelope_to_json(&rec.envelope)),
    );
    m.insert("message".into(), rec.message.into());
    event_fields(&rec.event, &mut m);
    m
}

/// `{"kind":"unparsed","error":…,"message":…}` for a line that failed.
pub fn unparsed_to_json(err: &ParseError, line: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), "unparsed".into());
    m.insert("error".into(), err.to_string().into());
    m.insert("message".into(), line.into());
    m
}

pub fn envelope_to_json(e: &Envelope<'_>) -> Map<String, Value> {
    let v = json!({
        "format": e.format.as_str(),
        "pri": e.pri,
        "facility": e.facility,
        "severity": e.severity,
        "timestamp": e.timestamp,
        "hostname": e.hostname,
        "tag": e.tag,
        "pid": e.pid,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object literal"),
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.to_string(), v.into());
}

/// `kind`, `template` and the kind's own fields.
pub fn event_fields(ev: &Event<'_>, m: &mut Map<String, Value>) {
    put(m, "kind", ev.kind());
    put(m, "template", ev.template());
    match ev {
        Event::HealthCheck(h) => {
            put(
                m,
                "check_type",
                match h.check_type {
                    crate::CheckType::Health => "health",
                    crate::CheckType::Agent => "agent",
                },
            );
            put(m, "proxy", h.proxy);
            put(m, "server", h.server);
            put(m, "backup", h.backup);
            put(m, "result", h.result.as_str());
            put(m, "reason", h.reason);
            put(m, "code", h.code);
            put(m, "info", h.info);
            put(m, "check_duration_ms", h.check_duration_ms);
            put(m, "health", h.health);
            put(m, "health_of", h.health_of);
            put(m, "health_state", h.health_state);
        }
        Event::StateChange(s) => state_fields(s, m),
        Event::BackendDown { proxy, proxy_type } => {
            put(m, "proxy", *proxy);
            put(m, "proxy_type", *proxy_type);
        }
        Event::Traffic(t) => traffic_fields(t, m),
        Event::Other(o) => other_fields(o, m),
    }
}

fn state_fields(s: &StateChange<'_>, m: &mut Map<String, Value>) {
    put(m, "proxy", s.proxy);
    put(m, "server", s.server);
    put(m, "backup", s.backup);
    put(m, "new_state", s.new_state.map(|x| x.as_str()));
    put(m, "old_state", s.old_state.map(|x| x.as_str()));
    put(m, "admin_state", s.admin_state.map(|x| x.as_str()));
    put(m, "reason", s.reason);
    put(m, "code", s.code);
    put(m, "info", s.info);
    put(m, "check_duration_ms", s.check_duration_ms);
    put(m, "cause", s.cause);
    put(m, "via", s.via);
    if let Some(f) = s.fqdn {
        put(m, "fqdn", f);
    }
    put(m, "active_servers", s.active_servers);
    put(m, "backup_servers", s.backup_servers);
    put(m, "running_on_backup", s.running_on_backup);
    put(m, "sessions_active", s.sessions_active);
    put(m, "sessions_requeued", s.sessions_requeued);
    put(m, "in_queue", s.in_queue);
}

fn traffic_fields(t: &Traffic<'_>, m: &mut Map<String, Value>) {
    put(m, "log_format", t.format.name());
    put(m, "client_ip", t.client_ip);
    put(m, "client_port", t.client_port);
    put(m, "accept_date", t.accept_date);
    if matches!(t.format, crate::TrafficFormat::Clf) {
        put(m, "accept_ms", t.accept_ms);
    }
    put(m, "frontend", t.frontend);
    put(m, "ssl_frontend", t.ssl_frontend);
    put(m, "backend", t.backend);
    put(m, "server", t.server);
    match t.protocol {
        Protocol::Http => {
            put(m, "TR", t.t_request);
            put(m, "Tw", t.t_wait);
            put(m, "Tc", t.t_connect);
            put(m, "Tr", t.t_response);
            put(m, "Ta", t.t_active);
            put(m, "logasap", t.logasap);
            put(m, "status", t.status);
        }
        Protocol::Tcp => {
            put(m, "Tw", t.t_wait);
            put(m, "Tc", t.t_connect);
            put(m, "Tt", t.t_total);
            put(m, "logasap", t.logasap);
        }
    }
    put(m, "bytes_read", t.bytes_read);
    if t.protocol == Protocol::Http {
        put(m, "req_cookie", t.req_cookie);
        put(m, "res_cookie", t.res_cookie);
    }
    put(m, "termination_state", t.termination_state);
    put(m, "actconn", t.actconn);
    put(m, "feconn", t.feconn);
    put(m, "beconn", t.beconn);
    put(m, "srv_conn", t.srv_conn);
    put(m, "retries", t.retries);
    put(m, "redispatched", t.redispatched);
    put(m, "srv_queue", t.srv_queue);
    put(m, "backend_queue", t.backend_queue);
    if t.protocol == Protocol::Tcp {
        return;
    }
    let caps = |c: Option<crate::Captures<'_>>| -> Value {
        match c {
            Some(c) => Value::Array(c.iter().map(Value::from).collect()),
            None => Value::Null,
        }
    };
    put(m, "req_headers", caps(t.req_headers));
    put(m, "res_headers", caps(t.res_headers));
    put(m, "request", t.request);
    put(m, "truncated", t.truncated);
    put(m, "method", t.method);
    put(m, "uri", t.uri);
    put(m, "http_version", t.http_version);
    if let Some(s) = &t.ssl {
        put(
            m,
            "ssl",
            json!({
                "fc_err": s.fc_err,
                "ssl_fc_err": s.ssl_fc_err,
                "ssl_c_err": s.ssl_c_err,
                "ssl_c_ca_err": s.ssl_c_ca_err,
                "resumed": s.resumed,
                "sni": s.sni,
                "version": s.version,
                "cipher": s.cipher,
            }),
        );
    }
    if matches!(t.format, crate::TrafficFormat::Custom(_)) {
        put(m, "unique_id", t.unique_id);
    }
}

fn other_fields(o: &Other<'_>, m: &mut Map<String, Value>) {
    match o {
        Other::ProxyStopped { proxy, fe, be } => {
            put(m, "proxy", *proxy);
            put(m, "fe", *fe);
            put(m, "be", *be);
        }
        Other::ProxyHardStopped { proxy, remaining } => {
            put(m, "proxy", *proxy);
            put(m, "remaining", *remaining);
        }
        Other::ProxyStarted { proxy } => put(m, "proxy", *proxy),
        Other::ProxyPaused { ptype, proxy } | Other::ProxyResumed { ptype, proxy } => {
            put(m, "ptype", *ptype);
            put(m, "proxy", *proxy);
        }
        Other::ProxyStopping { ptype, proxy, ms } => {
            put(m, "ptype", *ptype);
            put(m, "proxy", *proxy);
            put(m, "ms", *ms);
        }
        Other::SoftStopTooLong => {}
        Other::Process { text } => put(m, "text", *text),
        Other::ConnectFrom {
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            proxy,
            mode,
        } => {
            put(m, "src_ip", *src_ip);
            put(m, "src_port", *src_port);
            put(m, "dst_ip", *dst_ip);
            put(m, "dst_port", *dst_port);
            put(m, "proxy", *proxy);
            put(m, "mode", *mode);
        }
        Other::ConnError {
            client_ip,
            client_port,
            accept_date,
            frontend,
            bind,
            error,
        } => {
            put(m, "client_ip", *client_ip);
            put(m, "client_port", *client_port);
            put(m, "accept_date", *accept_date);
            put(m, "frontend", *frontend);
            put(m, "bind", *bind);
            put(m, "error", *error);
        }
    }
}
