//! The web console of a running daemon fed real datagrams: its pages over
//! HTTP (HTML and the JSON of the same models), its credentials, and the
//! pages in a real headless Chromium (screenshots in target/console-screenshots/).

use serde_json::Value;
use std::collections::BTreeMap;

use crate::util::browser::Browser;
use crate::util::*;

/// GET with extra header lines: (status, headers, body).
fn get(port: u16, path: &str, headers: &str) -> (u16, String, String) {
    http_request(port, path, "localhost", headers)
}

fn model(port: u16, path: &str) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, _, body) = get(port, &format!("{path}{sep}format=json"), "");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Each server's last state in the fixture's labels: (backend, server) → state.
fn last_states(labels: &[Value]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for l in labels.iter().filter(|l| l["kind"] == "state_change") {
        if let Some(state) = l["new_state"].as_str() {
            out.insert(
                (
                    l["proxy"].as_str().unwrap().to_owned(),
                    l["server"].as_str().unwrap().to_owned(),
                ),
                state.to_owned(),
            );
        }
    }
    out
}

/// Every backend the stream named: in state, check and no-server lines, and in traffic.
fn stream_backends(labels: &[Value]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for l in labels {
        let name = match l["kind"].as_str().unwrap() {
            "state_change" | "health_check" | "backend_down" => &l["proxy"],
            "http" | "tcp" => &l["backend"],
            _ => continue,
        };
        out.insert(name.as_str().unwrap().to_owned());
    }
    out.into_iter().collect()
}

/// A daemon fed the captured stream as if it had been logged three minutes
/// ago (so its windows are closed and stored), with everything stored.
fn fixture_daemon(dir: &std::path::Path) -> InProcess {
    let cfg = ConfigBuilder::new(dir).fixture_formats().http().udp();
    let daemon = InProcess::start(&cfg.text());
    let now = jiff::Timestamp::now().as_millisecond();
    let datagrams = datagrams_from("default", now - 180_000);
    send_udp(daemon.udp_port(), &datagrams);
    daemon.wait_handled(datagrams.len() as u64);
    // Stored, not only parsed: the last state line of the stream is in the store.
    let states = expected("default")
        .iter()
        .filter(|l| l["kind"] == "state_change")
        .count() as i64;
    daemon.wait_stored(
        "state lines",
        "SELECT count(*) FROM events WHERE kind = 'state_change'",
        states,
    );
    let mut routes = std::collections::BTreeSet::new();
    for l in expected("default")
        .iter()
        .filter(|l| l["kind"] == "http" || l["kind"] == "tcp")
    {
        routes.insert((l["backend"].to_string(), l["server"].to_string()));
    }
    daemon.wait_stored(
        "every route's windows",
        "SELECT count(DISTINCT backend || '/' || server) FROM routes",
        routes.len() as i64,
    );
    daemon.wait_stored(
        "the backend-down incident",
        "SELECT count(*) FROM incidents WHERE kind = 'backend_down'",
        1,
    );
    daemon
}

/// Every server of the model: (backend, server) → state.
fn model_states(fleet: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for h in fleet["hosts"].as_array().unwrap() {
        for b in h["backends"].as_array().unwrap() {
            for s in b["servers"].as_array().unwrap() {
                out.insert(
                    (
                        b["name"].as_str().unwrap().to_owned(),
                        s["name"].as_str().unwrap().to_owned(),
                    ),
                    s["status"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
    out
}

#[test]
fn the_pages_show_what_the_stream_said_as_html_and_as_their_models() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = fixture_daemon(dir.path());
    let http = daemon.addresses.http.unwrap().port();

    // Every server whose last state line said DOWN, MAINT, DRAIN… is shown so,
    // unless an open flapping incident holds it.
    let fleet = model(http, "/");
    let shown = model_states(&fleet);
    for (key, state) in last_states(&expected("default")) {
        let got = shown
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not on the page"));
        assert!(
            got == &state || got == "FLAPPING",
            "{key:?}: {got}, logged {state}"
        );
    }
    assert!(shown.values().any(|s| s == "DOWN"), "{shown:?}");
    let mut backends: Vec<String> = fleet["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["backends"].as_array().unwrap())
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    backends.sort();
    assert_eq!(backends, stream_backends(&expected("default")));
    // The HTML carries the same states, for scripts and people.
    let (status, head, page) = get(http, "/", "");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    for ((backend, server), state) in &shown {
        let attr = format!("data-server=\"{backend}/{server}\" data-state=\"{state}\"");
        assert!(page.contains(&attr), "{attr} not in the page");
    }
    // The filter works without the script too.
    let only = model_states(&model(http, "/?q=be_tcp"));
    assert!(
        !only.is_empty() && only.keys().all(|(b, _)| b == "be_tcp"),
        "{only:?}"
    );

    // The backend-down incident: its page has the timeline and the traffic chart.
    let list = model(http, "/incidents?since=365d");
    let all: Vec<&Value> = list["open"]
        .as_array()
        .unwrap()
        .iter()
        .chain(list["history"].as_array().unwrap())
        .collect();
    let down = all
        .iter()
        .find(|i| i["kind"] == "backend_down")
        .expect("a backend_down incident");
    let id = down["id"].as_i64().unwrap();
    let one = model(http, &format!("/incidents/{id}"));
    let timeline: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[1].as_str().unwrap())
        .collect();
    assert!(
        timeline
            .iter()
            .any(|t| t.contains("has no server available")),
        "{timeline:?}"
    );
    assert_eq!(one["charts"].as_array().unwrap().len(), 2);
    let (status, _, html) = get(http, &format!("/incidents/{id}"), "");
    assert_eq!(status, 200);
    assert!(html.contains("<svg") && html.contains(&format!("href=\"/incidents/{id}\"")));

    // Traffic was stored around it: the chart has points, not only an axis.
    let drawn = |chart: &Value| {
        chart["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p.is_null())
            .count()
    };
    assert!(drawn(&one["charts"][0]) > 0, "{}", one["charts"][0]);

    // A backend's page over each span (a day and a week from the quarter-hour
    // rollups): about a hundred points, some drawn; unknown things are 404s.
    for (range, points) in [("1h", 60), ("24h", 96), ("7d", 168)] {
        let b = model(http, &format!("/backends/be_app?range={range}"));
        assert_eq!(b["range"], range);
        let charts = b["charts"].as_array().unwrap();
        assert_eq!(charts.len(), 3);
        for c in charts {
            let n = c["series"][0]["points"].as_array().unwrap().len();
            assert!(n == points || n == points + 1, "{range}: {n} points");
            assert!(drawn(c) > 0, "{range}: nothing drawn in {c}");
        }
    }
    // The rollups hold what the windows hold.
    assert_eq!(
        stored(&daemon.db, "SELECT sum(requests) FROM backend_rollups"),
        stored(&daemon.db, "SELECT sum(requests) FROM windows")
    );
    assert_eq!(get(http, "/backends/no_such_backend", "").0, 404);
    let (status, head, body) = get(http, "/backends/no_such_backend?format=json", "");
    assert_eq!(status, 404);
    assert!(head.contains("application/json"), "{head}");
    assert!(body.contains("no_such_backend"), "{body}");
    assert_eq!(get(http, "/incidents/999999", "").0, 404);
    assert_eq!(get(http, "/incidents/x", "").0, 404);
    daemon.stop();
}

#[test]
fn names_from_the_network_are_text_on_the_page_never_markup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path()).http().udp();
    let daemon = InProcess::start(&cfg.text());
    let http = daemon.addresses.http.unwrap().port();
    let line = "<129>Nov 23 01:23:33 haproxy[1]: Server bé_x/<script>alert(1)</script> is DOWN, \
                reason: Layer4 timeout. 0 active and 0 backup servers left. 0 sessions active, \
                0 requeued, 0 remaining in queue.";
    send_udp(daemon.udp_port(), &[line.as_bytes().to_vec()]);
    daemon.wait_stored("the state", "SELECT count(*) FROM server_state", 1);
    let (status, _, page) = get(http, "/", "");
    assert_eq!(status, 200);
    assert!(
        !page.contains("<script>alert"),
        "markup from the network reached the page"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the name is not shown"
    );
    // A UTF-8 name round-trips through its link.
    assert!(
        page.contains("href=\"/backends/b%C3%A9_x\""),
        "no link to the backend"
    );
    let b = model(http, "/backends/b%C3%A9_x");
    assert_eq!(b["name"], "bé_x");
    assert_eq!(b["hosts"][0]["backends"][0]["servers"][0]["status"], "DOWN");
    // Odd queries are not errors.
    for path in [
        "/?q=%ZZ%",
        "/incidents?since=1y&kind=%00",
        "/backends/b%C3%A9_x?range=x",
    ] {
        assert_eq!(get(http, path, "").0, 200, "{path}");
    }
    daemon.stop();
}

#[test]
fn the_incident_page_lists_every_delivery_attempt() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver fails the first attempt, then takes the next.
    let receiver = Receiver::start(0, vec![500]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"0s\"")
        .set("notify", "retry_min", "\"50ms\"")
        .set("notify", "retry_max", "\"100ms\"")
        .set("cluster", "node", "\"node-a\"")
        .http()
        .udp()
        .webhook("ops", receiver.port, "");
    let daemon = InProcess::start(&cfg.text());
    let http = daemon.addresses.http.unwrap().port();
    send_udp(
        daemon.udp_port(),
        &[b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.".to_vec()],
    );
    receiver.wait_accepted(1);
    daemon.wait_stored(
        "the delivery recorded",
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'delivered'",
        1,
    );
    let id = stored(&daemon.db, "SELECT max(id) FROM incidents");
    let page = model(http, &format!("/incidents/{id}"));
    let deliveries = page["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let outcomes: Vec<&str> = deliveries[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "delivered"]);
    // Each attempt names the node that made it, as /healthz and /metrics name it.
    assert!(deliveries[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["node"] == "node-a"));
    let health: Value = serde_json::from_str(&get(http, "/healthz", "").2).unwrap();
    assert_eq!(health["node"], "node-a");
    let metrics = get(http, "/metrics", "").2;
    assert!(
        metrics.contains("hapwatch_node_info{node=\"node-a\"} 1"),
        "{metrics}"
    );
    assert!(deliveries[0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .contains("500"));
    let (_, _, html) = get(http, &format!("/incidents/{id}"), "");
    assert!(html.contains("data-outcome=\"retry\"") && html.contains("data-outcome=\"delivered\""));
    daemon.stop();
}

#[test]
fn a_token_or_a_password_guards_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .set("http", "listen", "\"127.0.0.1:0\"")
        .set("http", "token", "\"t0ken\"")
        .set("http", "user", "\"ops\"")
        .set("http", "password", "\"pw\"")
        .udp();
    let daemon = InProcess::start(&cfg.text());
    let http = daemon.addresses.http.unwrap().port();
    for path in ["/", "/incidents", "/metrics", "/healthz", "/health/haproxy"] {
        let (status, head, _) = get(http, path, "");
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("www-authenticate: basic"), "{head}");
        assert_eq!(get(http, path, "Authorization: Bearer wrong\r\n").0, 401);
        assert_eq!(get(http, path, "Authorization: Bearer\r\n").0, 401);
        let token = get(http, path, "Authorization: Bearer t0ken\r\n").0;
        assert_eq!(token, 200, "{path}");
        // ops:pw, then ops:px
        assert_eq!(get(http, path, "Authorization: Basic b3BzOnB3\r\n").0, 200);
        assert_eq!(get(http, path, "Authorization: Basic b3BzOnB4\r\n").0, 401);
        // With credentials, any Host may ask (a proxy in front names its own).
        assert_eq!(
            http_request(
                http,
                path,
                "console.example.org",
                "Authorization: Bearer t0ken\r\n"
            )
            .0,
            200
        );
    }
    daemon.stop();

    // A token alone: the challenge names it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .set("http", "listen", "\"127.0.0.1:0\"")
        .set("http", "token", "\"t0ken\"")
        .udp();
    let daemon = InProcess::start(&cfg.text());
    let (status, head, _) = get(daemon.addresses.http.unwrap().port(), "/", "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    daemon.stop();
}

#[test]
fn without_credentials_only_requests_for_localhost_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path()).http().udp();
    let daemon = InProcess::start(&cfg.text());
    let http = daemon.addresses.http.unwrap().port();
    // What a page whose name was rebound to 127.0.0.1 by its DNS would send.
    assert_eq!(
        http_request(http, "/?format=json", "attacker.example:9140", "").0,
        421
    );
    for host in ["localhost", "127.0.0.1", "[::1]"] {
        assert_eq!(
            http_request(http, "/?format=json", &format!("{host}:{http}"), "").0,
            200
        );
    }
    daemon.stop();
}

#[test]
fn the_default_address_taken_leaves_the_daemon_alerting_without_a_console() {
    // Whoever holds 127.0.0.1:9140 (this test, or anything else on the box).
    let _held = std::net::TcpListener::bind(hapwatch::config::DEFAULT_HTTP);
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::new(dir.path())
        .udp()
        .text()
        .replace("[http]\nlisten = \"\"\n", "");
    assert!(!text.contains("[http]"), "{text}");
    let daemon = InProcess::start(&text);
    assert_eq!(daemon.addresses.http, None);
    send_udp(daemon.udp_port(), &[b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.".to_vec()]);
    daemon.wait_stored("the event", "SELECT count(*) FROM events", 1);
    daemon.stop();
}

/// A state line as HAProxy would send it now (RFC 3164 header, UTC).
fn state_now(server: &str, state: &str) -> Vec<u8> {
    let now = jiff::Timestamp::now().strftime("%b %e %H:%M:%S");
    let tail = if state == "UP" {
        "reason: Layer7 check passed, code: 200, check duration: 3ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."
    } else {
        "reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."
    };
    format!("<129>{now} haproxy[1]: Server be_live/{server} is {state}, {tail}").into_bytes()
}

#[test]
fn in_a_real_browser_the_pages_render_without_errors_and_refresh_live() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = fixture_daemon(dir.path());
    let http = daemon.addresses.http.unwrap().port();
    let base = format!("http://127.0.0.1:{http}");

    // The fleet: every backend of the stream, DOWN servers marked.
    browser.open(&format!("{base}/"));
    let backends = browser.eval(
        "return [...document.querySelectorAll('[data-backend]')].map(e => e.dataset.backend)",
    );
    let mut shown: Vec<String> = backends
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    shown.sort();
    assert_eq!(shown, stream_backends(&expected("default")));
    let down = browser.eval(
        "return [...document.querySelectorAll('[data-state=DOWN]')].map(e => \
         [e.dataset.server, getComputedStyle(e.querySelector('.state')).color])",
    );
    let down = down.as_array().unwrap();
    assert!(!down.is_empty());
    let up_colour = browser
        .eval("return getComputedStyle(document.querySelector('[data-state=UP] .state')).color");
    // Red is not green: the colour differs, and the text says it anyway.
    assert!(
        down.iter().all(|d| d[1] != up_colour),
        "{down:?} vs {up_colour}"
    );
    browser.screenshot("fleet");
    // On a phone the page does not scroll sideways: wide tables scroll in their own box.
    browser.resize(390, 844);
    browser.open(&format!("{base}/"));
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is {overflow} px too wide"
    );
    browser.screenshot("fleet-phone");
    browser.resize(1280, 1600);

    let list = model(http, "/incidents?since=365d");
    let id = list["history"]
        .as_array()
        .unwrap()
        .iter()
        .chain(list["open"].as_array().unwrap())
        .find(|i| i["kind"] == "backend_down")
        .expect("a backend_down incident")["id"]
        .as_i64()
        .unwrap();
    browser.open(&format!("{base}/incidents?since=365d"));
    let rows = browser.eval("return document.querySelectorAll('[data-incident]').length");
    assert!(rows.as_u64().unwrap() > 0);
    browser.screenshot("incidents");

    browser.open(&format!("{base}/incidents/{id}"));
    let page = browser.eval(&format!(
        "return {{timeline: document.querySelectorAll('table.timeline tbody tr').length, \
         charts: document.querySelectorAll('figure.chart svg').length, \
         marks: document.querySelectorAll('figure.chart a[href=\"/incidents/{id}\"] rect').length, \
         localised: document.querySelector('main time[data-ms]').textContent}}"
    ));
    assert!(page["timeline"].as_u64().unwrap() >= 2, "{page}");
    assert_eq!(page["charts"], 2, "{page}");
    assert_eq!(page["marks"], 2, "{page}");
    // The script wrote the time in the browser's format, not the server's UTC text.
    assert!(
        !page["localised"].as_str().unwrap().ends_with("UTC"),
        "{page}"
    );
    browser.screenshot("incident");

    browser.open(&format!("{base}/backends/be_app?range=7d"));
    assert_eq!(
        browser.eval("return document.querySelectorAll('figure.chart svg').length"),
        3
    );
    browser.screenshot("backend");
    assert_eq!(browser.console_errors(), Vec::<String>::new());

    // Live: a server that goes DOWN turns red on the open page, with no reload.
    send_udp(daemon.udp_port(), &[state_now("s1", "UP")]);
    browser.open(&format!("{base}/?q=be_live"));
    browser.wait_eval(
        "be_live/s1 shown UP",
        "return document.querySelector('[data-server=\"be_live/s1\"]')?.dataset.state ?? null",
        |v| v == "UP",
    );
    browser.eval("window.sameDocument = 'yes'; return null");
    send_udp(daemon.udp_port(), &[state_now("s1", "DOWN")]);
    browser.wait_eval(
        "be_live/s1 turned DOWN in place",
        "return [document.querySelector('[data-server=\"be_live/s1\"]')?.dataset.state, window.sameDocument]",
        |v| v[0] == "DOWN",
    );
    assert_eq!(browser.eval("return window.sameDocument"), "yes");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    browser.screenshot("fleet-live");
    daemon.stop();
}
