//! The Alertmanager path of high availability: two hapwatch nodes fed the
//! same stream post to a cluster of two real Alertmanagers (Debian's), each
//! node to each instance, as Prometheus pairs do. The same labels from both
//! nodes are one alert; the cluster notifies once; re-posting keeps the alert
//! firing past Alertmanager's resolve_timeout; the resolve arrives once.
//! (Grouped messages and old payloads are `store::outbox`'s unit tests.)

use serde_json::Value;

use crate::util::alertmanager::Alertmanager;
use crate::util::*;

const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

fn node(dir: &std::path::Path, ams: &[Alertmanager]) -> InProcess {
    let mut cfg = ConfigBuilder::new(dir)
        .set("notify", "group_wait", "\"0s\"")
        .udp();
    for (i, am) in ams.iter().enumerate() {
        cfg = cfg.channel(&format!(
            "name = \"am{i}\"\ntype = \"alertmanager\"\nurl = {:?}\nrepost = \"1s\"\n",
            am.url()
        ));
    }
    InProcess::start(&cfg.text())
}

/// AM's webhook bodies: (status, the alerts' `server` labels).
fn notices(bodies: &[Value]) -> Vec<(String, Vec<String>)> {
    bodies
        .iter()
        .map(|b| {
            let servers = b["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["labels"]["server"].as_str().unwrap_or("").to_owned())
                .collect();
            (b["status"].as_str().unwrap().to_owned(), servers)
        })
        .collect()
}

#[test]
fn an_ha_pair_through_an_alertmanager_cluster_pages_once_and_resolves_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let Some(ams) = Alertmanager::cluster(dir.path(), 2, hook.port, "6s") else {
        return;
    };
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = node(&a_dir, &ams);
    let b = node(&b_dir, &ams);

    // HAProxy with two `log` lines: both nodes get the DOWN.
    send_udp(a.udp_port(), &[DOWN.to_vec()]);
    send_udp(b.udp_port(), &[DOWN.to_vec()]);
    hook.wait_body("the cluster's firing notice", |n| n["status"] == "firing");

    // Each instance got the alert from both nodes, and holds one: the labels
    // name the server, not the node or its incident number.
    for am in &ams {
        let alerts = am.alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["labels"]["server"], "s1");
        assert!(alerts[0]["labels"].get("incident").is_none());
    }

    // Both nodes keep posting it (each second, ending a few seconds ahead):
    // past the 6 s resolve_timeout that would have ended the first post alone,
    // and past the second instance's 5 s wait, it is still firing, and was
    // notified once.
    // (Two channels a node: two posts a round; eight rounds are 8 s at least.)
    for n in [&a, &b] {
        n.wait("eight rounds of reposts", |s| {
            s.alertmanager_reposts.0 >= 16
        });
    }
    for am in &ams {
        let alerts = am.alerts();
        assert_eq!(alerts[0]["status"]["state"], "active", "{alerts:?}");
    }
    let so_far = notices(&hook.wait_bodies("the firing", |b| !b.is_empty()));
    assert_eq!(so_far, [("firing".to_owned(), vec!["s1".to_owned()])]);

    send_udp(a.udp_port(), &[UP.to_vec()]);
    send_udp(b.udp_port(), &[UP.to_vec()]);
    let all = hook.wait_bodies("the resolved notice", |b| {
        b.iter().any(|n| n["status"] == "resolved")
    });
    let (sa, sb) = (a.stop(), b.stop());
    assert_eq!(
        (sa.alertmanager_reposts.1, sb.alertmanager_reposts.1),
        (0, 0)
    );
    assert_eq!(
        notices(&all),
        [
            ("firing".to_owned(), vec!["s1".to_owned()]),
            ("resolved".to_owned(), vec!["s1".to_owned()]),
        ]
    );
}
