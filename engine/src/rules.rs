//! Traffic rules per backend over a sliding window: 5xx and 4xx shares,
//! retries + redispatches per second, p95 of Ta, and the share of sessions
//! the server side ended. Traffic is counted into one-second buckets at
//! receive time; each second the window's sums are checked against the
//! thresholds, with hysteresis and an optional hold time before firing.

use std::collections::VecDeque;
use std::time::Duration;

use hapwatch_parsers::Traffic;
use serde::Deserialize;

use crate::fasthash::FastMap;
use crate::route::{NameId, RouteId, Routes};
use crate::windows::Counts;

/// `[rules]` in the config. A threshold of 0 disables its rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// The sliding window the figures are computed over.
    #[serde(deserialize_with = "crate::de::duration")]
    pub window: Duration,
    /// Fewer requests than this in the window: ratio rules do not judge.
    pub min_requests: u64,
    /// A condition must hold this long before its incident opens.
    #[serde(rename = "for", deserialize_with = "crate::de::duration")]
    pub hold: Duration,
    /// Share of 5xx responses (0.05 = 5 %) that fires, and the share under which it resolves.
    #[serde(deserialize_with = "crate::de::share")]
    pub error_5xx: f64,
    #[serde(deserialize_with = "crate::de::share")]
    pub error_5xx_resolve: f64,
    #[serde(deserialize_with = "crate::de::share")]
    pub error_4xx: f64,
    #[serde(deserialize_with = "crate::de::share")]
    pub error_4xx_resolve: f64,
    /// Retries + redispatches per second.
    pub retries_per_s: f64,
    pub retries_per_s_resolve: f64,
    /// p95 of Ta (Tt for tcplog), in ms.
    pub p95_ms: f64,
    pub p95_ms_resolve: f64,
    /// Share of sessions ended on the server side (termination state S…).
    #[serde(deserialize_with = "crate::de::share")]
    pub server_terminations: f64,
    #[serde(deserialize_with = "crate::de::share")]
    pub server_terminations_resolve: f64,
    /// Judge each server too, not only each backend.
    pub per_server: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            window: Duration::from_secs(60),
            min_requests: 20,
            hold: Duration::ZERO,
            error_5xx: 0.05,
            error_5xx_resolve: 0.025,
            error_4xx: 0.0,
            error_4xx_resolve: 0.0,
            retries_per_s: 0.0,
            retries_per_s_resolve: 0.0,
            p95_ms: 0.0,
            p95_ms_resolve: 0.0,
            server_terminations: 0.0,
            server_terminations_resolve: 0.0,
            per_server: false,
        }
    }
}

/// A rule's value as people read it: `0.42/s`, `310 ms`, `5.8 %`.
pub fn show_value(rule: &str, v: f64) -> String {
    match rule {
        "retries_per_s" => format!("{v:.2}/s"),
        "p95_ms" => format!("{v:.0} ms"),
        _ => format!("{:.1} %", v * 100.0),
    }
}

/// One rule's reading for one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `5xx_share`, `4xx_share`, `retries_per_s`, `p95_ms`, `server_terminations`.
    pub rule: &'static str,
    /// None: not enough requests to judge.
    pub value: Option<f64>,
    pub fire: f64,
    pub resolve: f64,
    pub requests: u64,
}

/// One second of one subject's traffic.
#[derive(Default)]
struct Second {
    at_s: i64,
    sums: Counts,
}

/// What a rule is about: a backend, or one of its servers (`per_server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub host: String,
    pub backend: String,
    pub server: Option<String>,
}

/// Totals of one subject over the window.
fn sums(seconds: &VecDeque<Second>) -> Counts {
    let mut t = Counts::default();
    for s in seconds {
        t.merge(&s.sums);
    }
    t
}

/// Retries as the rules count them: another connection attempt or another server.
fn retried(c: &Counts) -> u64 {
    c.retries + c.redispatches
}

/// A backend's own subject (no server), or one of its servers.
type SubjectKey = (NameId, NameId, Option<NameId>);

/// One-second buckets covering the window, per backend (and per server when asked).
#[derive(Default)]
pub struct Rates {
    subjects: FastMap<SubjectKey, (Subject, VecDeque<Second>)>,
}

impl Rates {
    pub fn add(
        &mut self,
        names: &Routes,
        route: RouteId,
        t: &Traffic<'_>,
        now_ms: i64,
        per_server: bool,
    ) {
        self.bump(names, (route.host, route.backend, None), t, now_ms);
        if per_server {
            self.bump(
                names,
                (route.host, route.backend, Some(route.server)),
                t,
                now_ms,
            );
        }
    }

    fn bump(&mut self, names: &Routes, key: SubjectKey, t: &Traffic<'_>, now_ms: i64) {
        let (_, seconds) = self.subjects.entry(key).or_insert_with(|| {
            let subject = Subject {
                host: names.name(key.0).to_owned(),
                backend: names.name(key.1).to_owned(),
                server: key.2.map(|s| names.name(s).to_owned()),
            };
            (subject, VecDeque::new())
        });
        let at_s = now_ms.div_euclid(1000);
        if seconds.back().is_none_or(|s| s.at_s != at_s) {
            seconds.push_back(Second {
                at_s,
                ..Default::default()
            });
        }
        seconds.back_mut().expect("just pushed").sums.add(t);
    }

    /// The system clock was stepped: the seconds keep their place in the window.
    pub fn shift_clock(&mut self, delta_ms: i64) {
        let delta_s = delta_ms.div_euclid(1000);
        for (_, seconds) in self.subjects.values_mut() {
            for s in seconds {
                s.at_s += delta_s;
            }
        }
    }

    /// The window's figures of a backend (or one server), as incident evidence.
    pub fn figures(
        &self,
        host: &str,
        backend: &str,
        server: Option<&str>,
    ) -> Option<serde_json::Value> {
        let (_, seconds) = self.subjects.values().find(|(s, _)| {
            s.host == host && s.backend == backend && s.server.as_deref() == server
        })?;
        let t = sums(seconds);
        let share = |n: u64| {
            if t.requests == 0 {
                0.0
            } else {
                n as f64 / t.requests as f64
            }
        };
        Some(serde_json::json!({
            "requests": t.requests,
            "5xx_share": share(t.s5xx),
            "4xx_share": share(t.s4xx),
            "retries": retried(&t),
            "server_terminations": t.term_server,
            "p95_ms": t.t_total.quantile(0.95),
        }))
    }

    /// Drops seconds older than the window, then reads every enabled rule of every subject.
    pub fn evaluate(&mut self, cfg: &RulesConfig, now_ms: i64) -> Vec<(Subject, Reading)> {
        let window_s = cfg.window.as_secs().max(1) as i64;
        let oldest = now_ms.div_euclid(1000) - window_s;
        let mut out = Vec::new();
        self.subjects.retain(|_, (subject, seconds)| {
            while seconds.front().is_some_and(|s| s.at_s <= oldest) {
                seconds.pop_front();
            }
            let t = sums(seconds);
            let enough = t.requests >= cfg.min_requests.max(1);
            let share = |n: u64| enough.then(|| n as f64 / t.requests as f64);
            let p95 = if enough {
                t.t_total.quantile(0.95).map(|v| v as f64)
            } else {
                None
            };
            let rules: [(&'static str, Option<f64>, f64, f64); 5] = [
                (
                    "5xx_share",
                    share(t.s5xx),
                    cfg.error_5xx,
                    cfg.error_5xx_resolve,
                ),
                (
                    "4xx_share",
                    share(t.s4xx),
                    cfg.error_4xx,
                    cfg.error_4xx_resolve,
                ),
                (
                    "retries_per_s",
                    Some(retried(&t) as f64 / window_s as f64),
                    cfg.retries_per_s,
                    cfg.retries_per_s_resolve,
                ),
                ("p95_ms", p95, cfg.p95_ms, cfg.p95_ms_resolve),
                (
                    "server_terminations",
                    share(t.term_server),
                    cfg.server_terminations,
                    cfg.server_terminations_resolve,
                ),
            ];
            for (rule, value, fire, resolve) in rules {
                if fire > 0.0 {
                    let resolve = if resolve > 0.0 {
                        resolve.min(fire)
                    } else {
                        fire
                    };
                    let reading = Reading {
                        rule,
                        value,
                        fire,
                        resolve,
                        requests: t.requests,
                    };
                    out.push((subject.clone(), reading));
                }
            }
            // A subject with no traffic left in the window is forgotten once read as empty.
            !seconds.is_empty()
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapwatch_parsers::{Event, Parser};

    fn line(status: u16) -> String {
        format!("10.0.0.1:1 [23/Nov/2026:01:23:33.398] fe be_api/s1 0/0/1/2/30 {status} 100 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"")
    }

    fn feed(rates: &mut Rates, parser: &Parser, status: u16, n: usize, at_ms: i64) {
        let l = line(status);
        let Event::Traffic(t) = parser.parse_message(&l).unwrap() else {
            panic!()
        };
        let mut names = Routes::new(100);
        let route = names.of("lb1", &t);
        for _ in 0..n {
            rates.add(&names, route, &t, at_ms, true);
        }
    }

    #[test]
    fn the_5xx_share_is_read_over_the_window_and_needs_enough_requests() {
        let parser = Parser::new(vec![]);
        let cfg = RulesConfig::default();
        let mut rates = Rates::default();
        feed(&mut rates, &parser, 503, 5, 1_000);
        let r = rates.evaluate(&cfg, 1_500);
        assert_eq!(
            r.len(),
            2,
            "only the 5xx rule is on by default, for the backend and its server"
        );
        assert!(
            r.iter().all(|x| x.1.value.is_none()),
            "5 requests are too few to judge"
        );
        feed(&mut rates, &parser, 200, 15, 2_000);
        let r = rates.evaluate(&cfg, 2_500);
        let backend = r.iter().find(|x| x.0.server.is_none()).unwrap();
        assert_eq!(backend.1.value, Some(0.25));
        assert_eq!(
            (backend.1.fire, backend.1.resolve, backend.1.requests),
            (0.05, 0.025, 20)
        );
        assert!(r
            .iter()
            .any(|x| x.0.server.as_deref() == Some("s1") && x.1.value == Some(0.25)));
        assert_eq!(
            rates.figures("lb1", "be_api", None).unwrap()["requests"],
            20
        );
        // A minute later the window is empty and the backend is forgotten.
        assert_eq!(rates.evaluate(&cfg, 62_500)[0].1.value, None);
        assert!(rates.evaluate(&cfg, 63_000).is_empty());
    }

    #[test]
    fn latency_and_retry_rules_when_enabled() {
        let parser = Parser::new(vec![]);
        let cfg = RulesConfig {
            p95_ms: 25.0,
            retries_per_s: 1.0,
            error_5xx: 0.0,
            ..Default::default()
        };
        let mut rates = Rates::default();
        feed(&mut rates, &parser, 200, 30, 1_000);
        let r = rates.evaluate(&cfg, 1_500);
        let p95 = r.iter().find(|x| x.1.rule == "p95_ms").unwrap();
        assert!(p95.1.value.unwrap() >= 29.0, "{p95:?}");
        let retries = r.iter().find(|x| x.1.rule == "retries_per_s").unwrap();
        assert_eq!(retries.1.value, Some(0.0));
    }

    #[test]
    fn a_clock_step_keeps_the_window_s_seconds() {
        let parser = Parser::new(vec![]);
        let cfg = RulesConfig::default();
        let mut rates = Rates::default();
        feed(&mut rates, &parser, 503, 20, 1_000);
        let step = 2 * 3_600_000;
        rates.shift_clock(step);
        let r = rates.evaluate(&cfg, 1_500 + step);
        let backend = r.iter().find(|x| x.0.server.is_none()).unwrap();
        assert_eq!((backend.1.value, backend.1.requests), (Some(1.0), 20));
    }
}
