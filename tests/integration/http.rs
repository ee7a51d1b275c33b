//! The HTTP endpoints of a running daemon fed real fixture datagrams:
//! JSON and the Prometheus exposition, parsed.

use std::collections::{BTreeMap, HashMap};

use crate::util::*;
use serde_json::Value;

/// `name{labels} value` lines, comments skipped: (name, labels, value).
fn prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                // Label values here hold no commas or escaped quotes.
                for pair in body.split(',') {
                    let (k, v) = pair.split_once('=').unwrap();
                    labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
                (n.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        out.push((name, labels, value));
    }
    out
}

/// Secrets in the config, which no endpoint may show.
const URL_TOKEN: &str = "tok-7d1f0a";
const HMAC_SECRET: &str = "hmac-9b2e44";

#[test]
fn every_endpoint_answers_from_the_log_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .set(
            "parse",
            "haproxy_config",
            &format!("{:?}", fixture("config/haproxy-default.cfg")),
        )
        .http()
        .set("notify", "group_wait", "\"0s\"")
        .udp()
        .channel(&format!(
            "name = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook?token={URL_TOKEN}\"\n\
             secret = \"{HMAC_SECRET}\"\n"
        ))
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let http = daemon.http_port();
    let datagrams = datagrams("default");
    send_udp(daemon.port(0), &datagrams);
    daemon.wait_received(datagrams.len() as u64);

    let (status, body) = http_get(http, "/healthz");
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["received"], datagrams.len());

    // Metrics: every traffic line is in haproxy_log_requests_total, per server,
    // once the pipeline has published its view (each second).
    let labels = expected("default");
    let mut want: HashMap<(String, String), f64> = HashMap::new();
    for l in labels
        .iter()
        .filter(|l| l["kind"] == "http" || l["kind"] == "tcp")
    {
        *want
            .entry((
                l["backend"].as_str().unwrap().into(),
                l["server"].as_str().unwrap().into(),
            ))
            .or_default() += 1.0;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (series, got) = loop {
        let (status, text) = http_get(http, "/metrics");
        assert_eq!(status, 200);
        let series = prometheus(&text);
        let mut got: HashMap<(String, String), f64> = HashMap::new();
        for (name, l, v) in &series {
            if name == "haproxy_log_requests_total" {
                *got.entry((l["backend"].clone(), l["server"].clone()))
                    .or_default() += v;
            }
        }
        if got == want || std::time::Instant::now() > deadline {
            break (series, got);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(got, want);
    let received = series
        .iter()
        .find(|(n, _, _)| n == "hapwatch_received_total")
        .unwrap()
        .2;
    assert_eq!(received, datagrams.len() as f64);
    // Histogram buckets are cumulative and end at the count.
    let app1 = |name: &str, le: Option<&str>| {
        series
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l["server"] == "app1"
                    && l["backend"] == "be_app"
                    && l.get("le").map(String::as_str) == le
            })
            .map(|x| x.2)
            .unwrap()
    };
    assert!(
        app1("haproxy_log_duration_ms_bucket", Some("10"))
            <= app1("haproxy_log_duration_ms_bucket", Some("100"))
    );
    assert_eq!(
        app1("haproxy_log_duration_ms_bucket", Some("+Inf")),
        app1("haproxy_log_duration_ms_count", None)
    );

    // Backend health, from the last state of each server in the stream.
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in labels.iter().filter(|l| l["kind"] == "state_change") {
        if let Some(state) = l["new_state"].as_str() {
            last.insert(
                (
                    l["proxy"].as_str().unwrap().into(),
                    l["server"].as_str().unwrap().into(),
                ),
                state.into(),
            );
        }
    }
    for backend in ["be_app", "be_agent", "be_solo"] {
        let (status, body) = http_get(http, &format!("/health/haproxy/backend/{backend}"));
        let v: Value = serde_json::from_str(&body).unwrap();
        let down_known = last
            .iter()
            .filter(|((b, _), s)| b == backend && *s != "UP")
            .count() as u64;
        assert_eq!(v["down"].as_u64(), Some(down_known), "{backend}: {body}");
        let total = v["total"].as_u64().unwrap();
        match v["status"].as_str().unwrap() {
            "ok" => assert_eq!((status, down_known), (200, 0)),
            "degraded" => assert!(status == 200 && down_known > 0 && down_known < total),
            "all_down" => assert!(status == 503 && down_known == total),
            other => panic!("{other}"),
        }
    }
    let (status, _) = http_get(http, "/health/haproxy/backend/no_such_backend");
    assert_eq!(status, 404);
    let (status, body) = http_get(http, "/health/haproxy");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["total"].as_u64().unwrap() >= 3, "{body}");
    // One backend with no server UP makes the whole answer a 503, for uptime monitors.
    let any_backend_down = !v["all_down"].as_array().unwrap().is_empty();
    assert_eq!(status, if any_backend_down { 503 } else { 200 }, "{body}");
    let (status, _) = http_get(http, "/health/haproxy?strict=1");
    assert_eq!(status, if v["down"] == 0 { 200 } else { 503 }, "{body}");
    // Strict: any server not UP is unhealthy, for one backend too.
    let (status, body) = http_get(http, "/health/haproxy/backend/be_app?strict=1");
    let v: Value = serde_json::from_str(&body).unwrap();
    let want = if v["down"] == 0 { 200 } else { 503 };
    assert_eq!(status, want, "{body}");
    let (status, _) = http_get(http, "/nope");
    assert_eq!(status, 404);
    for path in ["/healthz", "/metrics", "/health/haproxy"] {
        let (_, body) = http_get(http, path);
        assert!(
            !body.contains(URL_TOKEN) && !body.contains(HMAC_SECRET),
            "{path} shows a secret"
        );
    }
    // The fixtures' DOWN servers were notified to a closed port: failures are logged.
    daemon.wait_retry_pending();
    let log = daemon.stop();
    assert!(
        !log.iter()
            .any(|l| l.contains(URL_TOKEN) || l.contains(HMAC_SECRET)),
        "a secret reached the log"
    );
}
