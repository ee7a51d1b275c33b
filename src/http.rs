//! The HTTP server: the console (`/`, `/incidents`, `/backends/NAME`),
//! `/healthz`, `/metrics` (Prometheus text) and `/health/haproxy[/backend/NAME]`,
//! the backends' health as the logs tell it, for uptime monitors that cannot
//! reach HAProxy's stats socket. With `[http] token` or credentials, every path
//! asks for them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use hapwatch_parsers::ServerState;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::counters::Stats;
use crate::view::{cumulative, Observed, View, LE_MS};

/// What the handlers read.
pub struct State {
    pub observed: Arc<Observed>,
    pub stats: Arc<Stats>,
    pub started_ms: i64,
    pub wall: crate::timezone::WallClock,
    /// `[cluster] node`.
    pub node: String,
    /// Several nodes on one store: whether this one decides, and who does.
    pub cluster: Option<Arc<crate::cluster::Role>>,
    pub console: Arc<crate::console::Pages>,
    pub auth: crate::config::HttpAuth,
    /// On loopback with no credentials: only requests addressed to a loopback
    /// name are answered, so a web page cannot reach it by DNS rebinding.
    pub loopback_hosts_only: bool,
}

/// Whether a `Host` header names this machine's loopback (any port).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Binds before any runtime exists; `serve` adopts the listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves until the task is dropped; one task per connection.
/// Serves until the process stops: at most `max` connections at once (the
/// rest wait in the kernel's backlog), each closed after `idle` without a
/// complete request, so idle clients cannot take the descriptors delivery needs.
pub async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    max: usize,
    idle: std::time::Duration,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "HTTP listener cannot be used");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(idle)
                .serve_connection(TokioIo::new(stream), service);
            // A keep-alive client that lingers is closed too.
            let _ = tokio::time::timeout(idle * 4, conn).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", v.to_string())
}

/// Checks the credentials, then answers: console pages read the store on a
/// blocking thread, the rest from memory.
async fn respond<B>(state: Arc<State>, req: Request<B>) -> Response<Full<Bytes>> {
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !state.auth.allows(given) {
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "hapwatch: this needs [http] token (Authorization: Bearer …) or the user and password\n"
                .into(),
        );
        if let Some(challenge) = state.auth.challenge() {
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static(challenge),
            );
        }
        return r;
    }
    if state.loopback_hosts_only {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .map(|h| h.to_str().unwrap_or("?"));
        // No Host at all (HTTP/1.0 health checkers) is no browser: let it in.
        if host.is_some_and(|h| !loopback_host(h)) {
            return json_reply(
                StatusCode::MISDIRECTED_REQUEST,
                json!({"error": "this listener answers requests for localhost only; set [http] token or user/password to serve other names"}),
            );
        }
    }
    let path = req.uri().path().to_owned();
    if req.method() != hyper::Method::GET || !crate::console::serves(&path) {
        return route(&state, &req);
    }
    let now = state.wall.now_ms();
    let page = state.console.get(&path, req.uri().query(), now).await;
    let mut r = reply(
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        page.content_type,
        page.body,
    );
    let headers = r.headers_mut();
    // The pages show live state: never from a cache. They load nothing from
    // elsewhere, and say so to the browser.
    for (name, value) in [
        (hyper::header::CACHE_CONTROL, "no-store"),
        (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            hyper::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, hyper::header::HeaderValue::from_static(value));
    }
    r
}

/// What failing open did (`/healthz`): whether writes go to the local
/// spool now (since when), and what the merges found.
fn spool_json(s: &crate::store::spool::SpoolCounters) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
    let since = s.since_ms.load(Relaxed);
    json!({
        "spooling": s.spooling.load(Relaxed),
        "since_ms": (since > 0).then_some(since),
        "episodes": n(&s.episodes),
        "merged": n(&s.merged),
        "ops_spooled": n(&s.ops_spooled),
        "ops_merged": n(&s.ops_merged),
        "duplicate_events": n(&s.duplicate_events),
        "duplicate_windows": n(&s.duplicate_windows),
        "duplicate_incidents": n(&s.duplicate_incidents),
    })
}

pub fn route<B>(state: &State, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return json_reply(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "GET only"}));
    }
    let path = req.uri().path();
    // `?strict=1`: any server not UP is unhealthy, as stats-CSV health proxies answer.
    let strict = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "strict=1" || p == "strict"));
    match path {
        "/healthz" => {
            let now = state.wall.now_ms();
            let updated = state.observed.updated_ms();
            let stuck = updated > 0 && now - updated > crate::view::STALE_MS;
            let store_error = state.stats.store_error();
            let status = match (&store_error, stuck) {
                (Some(_), _) => "store_failed",
                (None, true) => "stuck",
                (None, false) => "ok",
            };
            json_reply(
                if status == "ok" {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                json!({
                    "status": status,
                    "node": state.node,
                    "cluster": state.cluster.as_ref().map(|r| json!({
                        "group": &*r.group,
                        "deciding": r.is_deciding(),
                        "epoch": r.deciding(),
                        "jobs": r.runs_jobs(),
                        "leader": r.leader(),
                        "lease_s": r.lease.as_secs(),
                        "decisions_fenced": state.stats.decisions_fenced.load(std::sync::atomic::Ordering::Relaxed),
                        "events_duplicate": state.stats.events_duplicate.load(std::sync::atomic::Ordering::Relaxed),
                        "windows_peer": state.stats.windows_peer.load(std::sync::atomic::Ordering::Relaxed),
                        "failing_open": r.failing_open(),
                        "spool": spool_json(&state.stats.spool),
                    })),
                    "error": store_error,
                    "uptime_s": (now - state.started_ms) / 1000,
                    "pipeline_age_ms": (updated > 0).then_some(now - updated),
                    "received": state.stats.received.load(std::sync::atomic::Ordering::Relaxed),
                    "store_retrying": state.stats.store_retrying.load(std::sync::atomic::Ordering::Relaxed),
                    "write_errors": state.stats.write_errors.load(std::sync::atomic::Ordering::Relaxed),
                    "reloads": state.stats.reloads.load(std::sync::atomic::Ordering::Relaxed),
                    "clock_steps": state.stats.clock_steps.load(std::sync::atomic::Ordering::Relaxed),
                    "maintenance_active": state.stats.maintenance_active.load(std::sync::atomic::Ordering::Relaxed),
                    "silences_active": state.stats.silences_active.load(std::sync::atomic::Ordering::Relaxed),
                    "alertmanager_reposts": {
                        "sent": state.stats.alertmanager_reposts.load(std::sync::atomic::Ordering::Relaxed),
                        "failed": state.stats.alertmanager_repost_failures.load(std::sync::atomic::Ordering::Relaxed),
                    },
                    "heartbeats": {
                        "sent": state.stats.heartbeats_sent.load(std::sync::atomic::Ordering::Relaxed),
                        "failed": state.stats.heartbeats_failed.load(std::sync::atomic::Ordering::Relaxed),
                        "withheld": state.stats.heartbeats_withheld.load(std::sync::atomic::Ordering::Relaxed),
                    },
                }),
            )
        }
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics(state, &state.observed.view()),
        ),
        "/health/haproxy" => health(&state.observed.view(), None, strict),
        _ => match path.strip_prefix("/health/haproxy/backend/") {
            Some(name) if !name.is_empty() => health(&state.observed.view(), Some(name), strict),
            _ => json_reply(StatusCode::NOT_FOUND, json!({"error": "no such path"})),
        },
    }
}

/// One counter family with an `outcome` label.
fn by_outcome(
    out: &mut String,
    (name, help): (&str, &str),
    outcomes: &[(&str, &std::sync::atomic::AtomicU64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (outcome, n) in outcomes {
        let _ = writeln!(
            out,
            "{name}{{outcome=\"{outcome}\"}} {}",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// ok (200), degraded (200, with counts), all_down (503); 404 for an unknown backend.
/// The fleet's (or one backend's) health for uptime monitors. Overall, a
/// backend with no server UP is a 503 even when others are fine; with
/// `strict`, any server not UP is.
fn health(view: &View, backend: Option<&str>, strict: bool) -> Response<Full<Bytes>> {
    let servers: Vec<_> = view
        .servers
        .iter()
        .filter(|s| backend.is_none_or(|b| s.backend == b))
        .collect();
    if servers.is_empty() {
        return match backend {
            Some(b) => json_reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no backend {b:?} seen in the logs")}),
            ),
            None => json_reply(
                StatusCode::OK,
                json!({"status": "ok", "down": 0, "total": 0}),
            ),
        };
    }
    let down = servers
        .iter()
        .filter(|s| !s.state.is(ServerState::Up))
        .count();
    let total = servers.len();
    // (host, backend) with servers, none of them UP.
    let mut backends: std::collections::BTreeMap<(&str, &str), bool> = Default::default();
    for s in &servers {
        *backends.entry((&s.host, &s.backend)).or_insert(false) |= s.state.is(ServerState::Up);
    }
    let all_down: Vec<String> = backends
        .iter()
        .filter(|(_, up)| !**up)
        .map(|((host, b), _)| format!("{b} on {host}"))
        .collect();
    let word = match (down, all_down.is_empty()) {
        (0, _) => "ok",
        _ if down == total => "all_down",
        (_, false) => "backend_down",
        _ => "degraded",
    };
    let status = match word {
        "ok" => StatusCode::OK,
        "degraded" if !strict => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let not_up: Vec<String> = servers
        .iter()
        .filter(|s| !s.state.is(ServerState::Up))
        .map(|s| format!("{}/{} {} on {}", s.backend, s.server, s.state, s.host))
        .collect();
    json_reply(
        status,
        json!({"status": word, "down": down, "total": total, "not_up": not_up, "all_down": all_down}),
    )
}

/// Prometheus label values escape `\`, `"` and newlines.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn metrics(state: &State, view: &View) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let s = state.stats.snapshot();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        &mut out,
        "hapwatch_received_total",
        "Messages received.",
        s.received,
    );
    counter(
        &mut out,
        "hapwatch_received_bytes_total",
        "Bytes received.",
        s.bytes,
    );
    counter(
        &mut out,
        "hapwatch_parsed_total",
        "Messages parsed.",
        s.parsed,
    );
    counter(
        &mut out,
        "hapwatch_queue_drops_total",
        "Messages dropped because the parser fell behind.",
        s.queue_drops,
    );
    counter(
        &mut out,
        "hapwatch_socket_drops_total",
        "Datagrams the kernel dropped on hapwatch's sockets.",
        s.socket_drops,
    );
    counter(
        &mut out,
        "hapwatch_denied_total",
        "Messages from senders outside the allow-list.",
        s.denied,
    );
    counter(
        &mut out,
        "hapwatch_rows_written_total",
        "Rows written to SQLite.",
        state.stats.rows_written.load(Relaxed),
    );
    counter(
        &mut out,
        "hapwatch_write_errors_total",
        "Failed SQLite batches.",
        state.stats.write_errors.load(Relaxed),
    );
    counter(
        &mut out,
        "hapwatch_notifications_failed_total",
        "Notifications given up: a permanent error, expiry or a removed channel.",
        state.stats.notifications_failed.load(Relaxed),
    );
    counter(
        &mut out,
        "hapwatch_overflow_lines_total",
        "Traffic lines counted under _overflow: more routes than [limits] routes.",
        state.stats.over_limits.load(Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP hapwatch_node_info This node ([cluster] node).\n# TYPE hapwatch_node_info gauge\nhapwatch_node_info{{node=\"{}\"}} 1",
        label(&state.node)
    );
    if let Some(role) = &state.cluster {
        let _ = writeln!(
            out,
            "# HELP hapwatch_cluster_deciding 1 while this node holds its group's lease and decides for it.\n# TYPE hapwatch_cluster_deciding gauge\nhapwatch_cluster_deciding{{group=\"{}\"}} {}",
            label(&role.group),
            u8::from(role.is_deciding())
        );
        let _ = writeln!(
            out,
            "# HELP hapwatch_cluster_jobs 1 while this node runs the once-only jobs (the digest).\n# TYPE hapwatch_cluster_jobs gauge\nhapwatch_cluster_jobs {}",
            u8::from(role.runs_jobs())
        );
        let _ = writeln!(
            out,
            "# HELP hapwatch_cluster_failing_open 1 while the shared store does not answer and this node spools and decides on its own.\n# TYPE hapwatch_cluster_failing_open gauge\nhapwatch_cluster_failing_open {}",
            u8::from(role.failing_open())
        );
        let spool = &state.stats.spool;
        for (name, help, n) in [
            (
                "hapwatch_cluster_decisions_fenced_total",
                "Decisions not committed: another node had taken the lease.",
                &*state.stats.decisions_fenced,
            ),
            (
                "hapwatch_cluster_events_duplicate_total",
                "Events another node (or a takeover) had stored already.",
                &*state.stats.events_duplicate,
            ),
            (
                "hapwatch_cluster_windows_peer_total",
                "Traffic windows left out: another node counted them.",
                &*state.stats.windows_peer,
            ),
            (
                "hapwatch_spool_episodes_total",
                "Times the shared store stopped answering and this node failed open.",
                &spool.episodes,
            ),
            (
                "hapwatch_spool_merged_total",
                "Spooled episodes merged back into the shared store.",
                &spool.merged,
            ),
            (
                "hapwatch_spool_ops_total",
                "Writes kept in the local spool.",
                &spool.ops_spooled,
            ),
            (
                "hapwatch_spool_ops_merged_total",
                "Spooled writes merged back.",
                &spool.ops_merged,
            ),
            (
                "hapwatch_spool_duplicate_events_total",
                "Spooled events another node had stored already.",
                &spool.duplicate_events,
            ),
            (
                "hapwatch_spool_duplicate_windows_total",
                "Spooled traffic windows another node counted.",
                &spool.duplicate_windows,
            ),
            (
                "hapwatch_spool_duplicate_incidents_total",
                "Incidents opened while failing open that another node had opened too.",
                &spool.duplicate_incidents,
            ),
        ] {
            counter(&mut out, name, help, n.load(Relaxed));
        }
    }
    by_outcome(
        &mut out,
        (
            "hapwatch_alertmanager_reposts_total",
            "Open alerts posted again to Alertmanager channels, by outcome.",
        ),
        &[
            ("sent", &state.stats.alertmanager_reposts),
            ("failed", &state.stats.alertmanager_repost_failures),
        ],
    );
    by_outcome(
        &mut out,
        (
            "hapwatch_heartbeats_total",
            "[heartbeat] requests, by outcome (withheld: the daemon was unhealthy).",
        ),
        &[
            ("sent", &state.stats.heartbeats_sent),
            ("failed", &state.stats.heartbeats_failed),
            ("withheld", &state.stats.heartbeats_withheld),
        ],
    );
    counter(
        &mut out,
        "hapwatch_reloads_total",
        "Reloaded configs applied (SIGHUP).",
        state.stats.reloads.load(Relaxed),
    );
    counter(
        &mut out,
        "hapwatch_clock_steps_total",
        "System clock steps noticed; timers moved with them.",
        state.stats.clock_steps.load(Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP hapwatch_store_retrying 1 while a failed batch is held and retried.\n# TYPE hapwatch_store_retrying gauge\nhapwatch_store_retrying {}",
        u8::from(state.stats.store_retrying.load(Relaxed))
    );
    let _ = writeln!(out, "# HELP hapwatch_parse_errors_total Messages that did not parse, by reason.\n# TYPE hapwatch_parse_errors_total counter");
    for (reason, n) in &s.parse_errors {
        let _ = writeln!(
            out,
            "hapwatch_parse_errors_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP hapwatch_incidents_open Open incidents by severity.\n# TYPE hapwatch_incidents_open gauge");
    for (i, sev) in ["info", "warning", "critical"].iter().enumerate() {
        let _ = writeln!(
            out,
            "hapwatch_incidents_open{{severity=\"{sev}\"}} {}",
            view.open_incidents[i]
        );
    }

    let mut traffic = view.traffic.clone();
    traffic.sort_by(|a, b| {
        (&a.0.host, &a.0.backend, &a.0.server).cmp(&(&b.0.host, &b.0.backend, &b.0.server))
    });
    let labels = |r: &crate::view::Route| {
        format!(
            "host=\"{}\",backend=\"{}\",server=\"{}\"",
            label(&r.host),
            label(&r.backend),
            label(&r.server)
        )
    };
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    // The per-route counters, each one family.
    type Field = fn(&crate::view::Totals) -> u64;
    let counters: [(&str, &str, Field); 4] = [
        (
            "haproxy_log_requests_total",
            "Requests (tcplog: sessions) logged, per server.",
            |t| t.requests,
        ),
        ("haproxy_log_retries_total", "Connection retries.", |t| {
            t.retries
        }),
        (
            "haproxy_log_redispatches_total",
            "Redispatches to another server.",
            |t| t.redispatches,
        ),
        ("haproxy_log_bytes_total", "Bytes sent to clients.", |t| {
            t.bytes
        }),
    ];
    for (name, help, field) in counters {
        family(&mut out, name, "counter", help);
        for (r, t) in &traffic {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(r), field(t));
        }
    }
    family(
        &mut out,
        "haproxy_log_responses_total",
        "counter",
        "Responses by status class (other: none, tcplog).",
    );
    for (r, t) in &traffic {
        for (class, n) in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
            .iter()
            .zip(t.classes())
        {
            let _ = writeln!(
                out,
                "haproxy_log_responses_total{{{},class=\"{class}\"}} {n}",
                labels(r)
            );
        }
    }
    family(
        &mut out,
        "haproxy_log_duration_ms",
        "histogram",
        "Ta (Tt for tcplog) in ms.",
    );
    for (r, t) in &traffic {
        let l = labels(r);
        for (le, n) in LE_MS.iter().zip(cumulative(&t.t_total)) {
            let _ = writeln!(out, "haproxy_log_duration_ms_bucket{{{l},le=\"{le}\"}} {n}");
        }
        let count = t.t_total.total();
        let _ = writeln!(
            out,
            "haproxy_log_duration_ms_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "haproxy_log_duration_ms_sum{{{l}}} {}",
            t.t_total_sum_ms
        );
        let _ = writeln!(out, "haproxy_log_duration_ms_count{{{l}}} {count}");
    }
    family(
        &mut out,
        "haproxy_log_server_up",
        "gauge",
        "1 when the server's last logged state is UP.",
    );
    let mut servers = view.servers.clone();
    servers.sort_by(|a, b| (&a.host, &a.backend, &a.server).cmp(&(&b.host, &b.backend, &b.server)));
    for s in &servers {
        let _ = writeln!(
            out,
            "haproxy_log_server_up{{host=\"{}\",backend=\"{}\",server=\"{}\",state=\"{}\"}} {}",
            label(&s.host),
            label(&s.backend),
            label(&s.server),
            label(&s.state.to_string()),
            u8::from(s.state.is(ServerState::Up))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ServerView;

    fn view(servers: &[(&str, &str, &str)]) -> View {
        View {
            servers: servers
                .iter()
                .map(|(b, s, state)| ServerView {
                    host: "lb1".into(),
                    backend: (*b).into(),
                    server: (*s).into(),
                    state: crate::incidents::fleet::StateSeen::from_name(state),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in [
            "localhost",
            "localhost:9140",
            "127.0.0.1:9140",
            "127.0.0.2",
            "[::1]:9140",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:9140",
            "10.0.0.1:9140",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_dead_backend_makes_the_fleet_unhealthy_and_strict_counts_every_server() {
        let v = view(&[
            ("be_api", "a1", "UP"),
            ("be_api", "a2", "DOWN"),
            ("be_static", "s1", "DOWN"),
        ]);
        assert_eq!(
            health(&v, None, false).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let v = view(&[("be_api", "a1", "UP"), ("be_api", "a2", "DOWN")]);
        assert_eq!(health(&v, None, false).status(), StatusCode::OK);
        assert_eq!(
            health(&v, None, true).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(health(&v, Some("be_api"), false).status(), StatusCode::OK);
    }
}
