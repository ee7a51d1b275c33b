use super::*;
use hapwatch_parsers::Parser;

const MIN: i64 = 60_000;

fn feed(engine: &mut Engine, host: &str, message: &str, ts_ms: i64) -> Vec<Change> {
    let parser = Parser::new(vec![]);
    let event = parser.parse_message(message).unwrap();
    engine.on_event(host, &event, ts_ms, message)
}

fn down(srv: &str, active: u32) -> String {
    format!("Server be_app/{srv} is DOWN, reason: Layer4 timeout, check duration: 2001ms. {active} active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
}

fn up(srv: &str, active: u32) -> String {
    format!("Server be_app/{srv} is UP. {active} active and 0 backup servers online. 0 sessions requeued, 0 total in queue.")
}

fn opened(changes: &[Change]) -> Vec<&Incident> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Opened(i) => Some(i),
            _ => None,
        })
        .collect()
}

fn resolved(changes: &[Change]) -> Vec<i64> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Resolved { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn engine() -> Engine {
    Engine::new(IncidentsConfig::default(), 1, vec![], Fleet::default())
}

#[test]
fn a_down_server_opens_one_incident_and_up_resolves_it() {
    let mut e = engine();
    let c = feed(&mut e, "lb1", &down("app1", 3), 0);
    let o = opened(&c);
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].kind, o[0].severity),
        (Kind::ServerDown, Severity::Warning)
    );
    assert_eq!(o[0].summary, "server be_app/app1 is DOWN");
    assert_eq!(o[0].detail["reason"], "Layer4 timeout");
    assert_eq!(o[0].detail["active_left"], 3);
    let id = o[0].id;
    // HAProxy repeats nothing, but a duplicate line must not open a second incident.
    assert!(opened(&feed(&mut e, "lb1", &down("app1", 3), 1000)).is_empty());
    // Another load balancer's view of the same server is its own incident.
    assert_eq!(
        opened(&feed(&mut e, "lb2", &down("app1", 3), 1000)).len(),
        1
    );
    let c = feed(&mut e, "lb1", &up("app1", 4), 2 * MIN);
    assert_eq!(resolved(&c), vec![id]);
    assert_eq!(e.open_incidents().count(), 1, "lb2's stays open");
}

#[test]
fn the_last_failed_check_is_the_reason_when_the_state_line_has_none() {
    let mut e = engine();
    feed(&mut e, "lb1", "Health check for server be_app/app2 failed, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms, status: 0/2 DOWN.", 0);
    let c = feed(&mut e, "lb1", "Server be_app/app2 is DOWN. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.", 10);
    assert_eq!(
        opened(&c)[0].detail["reason"],
        "Layer4 connection problem (Connection refused)"
    );
}

#[test]
fn a_backend_without_servers_is_critical_until_any_server_is_up() {
    let mut e = engine();
    let c = feed(&mut e, "lb1", "backend be_app has no server available!", 0);
    let o = opened(&c);
    assert_eq!(
        (o[0].kind, o[0].severity),
        (Kind::BackendDown, Severity::Critical)
    );
    let id = o[0].id;
    let c = feed(&mut e, "lb1", &up("app3", 1), MIN);
    assert!(resolved(&c).contains(&id));
}

#[test]
fn flapping_absorbs_the_changes_and_resolves_once_stable() {
    let mut e = engine();
    let mut all = Vec::new();
    for i in 0..10 {
        let line = if i % 2 == 0 {
            down("app1", 3)
        } else {
            up("app1", 4)
        };
        all.extend(feed(&mut e, "lb1", &line, i * 12_000));
    }
    let o = opened(&all);
    let kinds: Vec<Kind> = o.iter().map(|i| i.kind).collect();
    // DOWN #1 (resolved by UP), DOWN #2 (open when the 5th change makes it flap), then one flapping.
    assert_eq!(
        kinds,
        vec![Kind::ServerDown, Kind::ServerDown, Kind::Flapping]
    );
    let flap = o[2].id;
    assert!(
        o[2].summary.contains("is flapping (5 changes in 10m)"),
        "{}",
        o[2].summary
    );
    // Nothing more opens while it flaps; later changes are timeline entries.
    let after = all
        .iter()
        .position(|c| matches!(c, Change::Opened(i) if i.id == flap))
        .unwrap();
    assert!(opened(&all[after + 1..]).is_empty());
    assert!(all[after + 1..]
        .iter()
        .any(|c| matches!(c, Change::Timeline { id, .. } if *id == flap)));
    // It ends UP; stable for the quiet period → resolved, and no DOWN incident follows.
    assert!(e.tick(108_000 + 9 * MIN).is_empty());
    let c = e.tick(108_000 + 10 * MIN);
    assert_eq!(resolved(&c), vec![flap]);
    assert!(opened(&c).is_empty());
    assert_eq!(e.open_incidents().count(), 0);
}

#[test]
fn a_flapping_server_that_settles_down_gets_a_down_incident() {
    let mut e = engine();
    for i in 0..5 {
        let line = if i % 2 == 0 {
            down("app1", 3)
        } else {
            up("app1", 4)
        };
        feed(&mut e, "lb1", &line, i * 1000);
    }
    let c = e.tick(4000 + 10 * MIN);
    assert_eq!(resolved(&c).len(), 1);
    assert_eq!(opened(&c)[0].kind, Kind::ServerDown);
}

#[test]
fn operator_actions_are_info_incidents_not_outages() {
    let mut e = engine();
    let c = feed(&mut e, "lb1", "Server be_agent/ag1 is going DOWN for maintenance. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.", 0);
    let o = opened(&c);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].kind, o[0].severity), (Kind::Operator, Severity::Info));
    let c = feed(
        &mut e,
        "lb1",
        "Server be_agent/ag1 is UP/READY (leaving forced maintenance).",
        MIN,
    );
    assert_eq!(resolved(&c), vec![o[0].id]);
}

#[test]
fn a_quarter_of_a_backend_down_is_degraded() {
    let mut e = engine();
    assert!(opened(&feed(&mut e, "lb1", &down("app1", 3), 0))
        .iter()
        .all(|i| i.kind != Kind::BackendDegraded));
    let c = feed(&mut e, "lb1", &down("app2", 2), 1000);
    let degraded: Vec<_> = opened(&c)
        .into_iter()
        .filter(|i| i.kind == Kind::BackendDegraded)
        .collect();
    assert_eq!(degraded.len(), 1);
    assert_eq!(
        degraded[0].summary,
        "backend be_app has 2 of 4 servers DOWN"
    );
    let c = feed(&mut e, "lb1", &up("app2", 3), 2000);
    assert!(resolved(&c).contains(&degraded[0].id));
}

#[test]
fn a_silent_host_opens_an_incident_that_its_next_message_resolves() {
    let mut e = engine();
    // Heard steadily for the silence period, then quiet.
    e.seen("lb1", 0);
    e.seen("lb1", 5 * MIN);
    assert!(e.tick(9 * MIN).is_empty());
    let c = e.tick(10 * MIN);
    let o = opened(&c);
    assert_eq!(
        (o[0].kind, o[0].summary.as_str()),
        (Kind::Silence, "no log from lb1 for 5m")
    );
    assert!(e.tick(11 * MIN).is_empty(), "opened once");
    assert_eq!(resolved(&e.seen("lb1", 12 * MIN)), vec![o[0].id]);
}

#[test]
fn an_engine_that_takes_over_finds_a_host_silent_that_its_forerunner_heard() {
    let mut standing_by = engine();
    standing_by.seen("lb1", 0);
    standing_by.seen("lb1", 5 * MIN);
    // The store's decisions read back into a fresh engine, at a takeover.
    let mut taking_over = engine();
    assert!(
        taking_over.tick(10 * MIN).is_empty(),
        "it heard nothing itself"
    );
    taking_over.carry_hearing(&mut standing_by);
    let o = opened(&taking_over.tick(10 * MIN)).len();
    assert_eq!(o, 1, "lb1's silence");
}

#[test]
fn a_host_heard_once_is_not_silent_and_hosts_beyond_the_limit_are_not_watched() {
    let mut e = engine().with_host_limit(100);
    for n in 0..1000 {
        e.seen(&format!("spoofed-{n}"), 0);
    }
    assert!(
        opened(&e.tick(60 * MIN)).is_empty(),
        "one line each is no steady host"
    );
    assert_eq!(e.hosts_untracked, 900);
    // Long gone, they are forgotten: a real host can be watched again.
    e.tick(48 * 60 * MIN);
    e.seen("lb1", 48 * 60 * MIN);
    e.seen("lb1", 48 * 60 * MIN + 5 * MIN);
    let c = e.tick(48 * 60 * MIN + 10 * MIN);
    let o = opened(&c);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].host, "lb1");
}

#[test]
fn a_rule_fires_after_its_hold_and_resolves_under_the_lower_threshold() {
    use crate::rules::{Reading, Subject};
    let mut e = engine();
    let be = Subject {
        host: "lb1".into(),
        backend: "be_api".into(),
        server: None,
    };
    let reading = |v: Option<f64>| Reading {
        rule: "5xx_share",
        value: v,
        fire: 0.05,
        resolve: 0.025,
        requests: 100,
    };
    assert!(
        e.on_reading(&be, &reading(Some(0.2)), 0, 2000).is_empty(),
        "held"
    );
    let c = e.on_reading(&be, &reading(Some(0.2)), 2000, 2000);
    let o = opened(&c);
    assert_eq!(o.len(), 1);
    assert_eq!(
        o[0].summary,
        "backend be_api: 5xx share 20.0 % (fires above 5.0 %)"
    );
    // Between the thresholds: still firing (hysteresis).
    assert!(e
        .on_reading(&be, &reading(Some(0.04)), 3000, 2000)
        .is_empty());
    assert_eq!(
        resolved(&e.on_reading(&be, &reading(Some(0.01)), 4000, 2000)),
        vec![o[0].id]
    );
    // A blip shorter than the hold never fires.
    e.on_reading(&be, &reading(Some(0.2)), 5000, 2000);
    e.on_reading(&be, &reading(Some(0.0)), 6000, 2000);
    assert!(e
        .on_reading(&be, &reading(Some(0.2)), 7500, 2000)
        .is_empty());
}

#[test]
fn quiet_servers_never_seen_changing_are_forgotten_and_those_with_a_state_kept() {
    let mut e = engine().with_server_idle(Duration::from_secs(3600));
    feed(&mut e, "lb1", &down("app1", 3), 0);
    feed(&mut e, "lb1", &up("app2", 4), 0);
    feed(
        &mut e,
        "lb1",
        "Health check for server be_app/app3 failed, reason: Layer4 timeout, check duration: 2001ms, status: 1/2 UP.",
        0,
    );
    e.tick(30 * MIN);
    assert_eq!(e.fleet().servers.len(), 3, "not idle yet");
    e.tick(61 * MIN);
    let mut left: Vec<&str> = e
        .fleet()
        .servers
        .keys()
        .map(|(_, _, s)| s.as_str())
        .collect();
    left.sort_unstable();
    assert_eq!(
        left,
        ["app1", "app2"],
        "UP and DOWN are part of their backend's health"
    );
}

#[test]
fn a_silence_scope_covers_servers_and_incidents_alike() {
    let mut e = engine();
    let server = opened(&feed(&mut e, "lb1", &down("s1", 3), 0))[0].clone();
    let be_app = ServerMatch {
        backend: Some("be_app".into()),
        ..Default::default()
    };
    let other = ServerMatch {
        backend: Some("be_web".into()),
        ..Default::default()
    };
    assert!(be_app.matches("lb1", "be_app", "s1"));
    assert!(be_app.matches_incident(&server));
    assert!(!other.matches_incident(&server));
    // An incident about a whole host (silence) has no backend: only a
    // scope naming none covers it.
    let host_only = Incident {
        backend: None,
        server: None,
        ..server
    };
    assert!(!be_app.matches_incident(&host_only));
    assert!(ServerMatch::default().matches_incident(&host_only));
}
