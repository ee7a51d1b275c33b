//! HAProxy reloads and restarts, told by the worker's PID in the syslog
//! header: a PID a host has not logged under before, while it logged under
//! another one recently, is a new worker. Right after one, the new worker's
//! first checks can mark a healthy server DOWN and its old worker keeps
//! logging while it drains: what opens then is held for a grace period, as
//! in a maintenance window, and paged only if it outlasts it.

use std::collections::HashMap;

/// PIDs remembered per host: workers of recent reloads, and the processes
/// of a HAProxy 1.x `nbproc` or of several HAProxys logging as one host,
/// which take turns and are no reload once each has been heard.
const PIDS_KEPT: usize = 16;

/// A host unheard for this long starts afresh: its next PID is a start, not a reload.
const FORGET_MS: i64 = 3_600_000;

#[derive(Debug, Default)]
struct Host {
    /// Newest last.
    pids: Vec<u32>,
    last_ms: i64,
}

/// What the PIDs of each host say.
#[derive(Debug)]
pub struct Reloads {
    hosts: HashMap<String, Host>,
    /// Hosts tracked at most (`[limits] hosts`); more are not watched.
    limit: usize,
}

/// A new worker on a host: (its PID, the one it follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    pub pid: u32,
    pub previous: u32,
}

impl Reloads {
    pub fn new(limit: usize) -> Reloads {
        Reloads {
            hosts: HashMap::new(),
            limit,
        }
    }

    /// A message from `host`'s worker `pid`: Some when it is a new worker
    /// after another one (a reload or a restart), None otherwise.
    pub fn seen(&mut self, host: &str, pid: u32, now_ms: i64) -> Option<Reload> {
        let full = self.hosts.len() >= self.limit;
        let h = match self.hosts.get_mut(host) {
            Some(h) => h,
            None if full => return None,
            None => self.hosts.entry(host.to_owned()).or_default(),
        };
        let fresh = now_ms - h.last_ms > FORGET_MS;
        h.last_ms = now_ms;
        if h.pids.contains(&pid) {
            return None;
        }
        let previous = h.pids.last().copied().filter(|_| !fresh);
        if fresh {
            h.pids.clear();
        }
        h.pids.push(pid);
        if h.pids.len() > PIDS_KEPT {
            h.pids.remove(0);
        }
        previous.map(|previous| Reload { pid, previous })
    }

    /// Hosts unheard for an hour are forgotten (once in a while is enough).
    pub fn expire(&mut self, now_ms: i64) {
        self.hosts.retain(|_, h| now_ms - h.last_ms <= FORGET_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pid_after_another_is_a_reload_and_the_old_one_draining_is_not() {
        let mut r = Reloads::new(10);
        assert_eq!(
            r.seen("lb1", 100, 0),
            None,
            "the first worker heard is a start"
        );
        assert_eq!(r.seen("lb1", 100, 1000), None);
        assert_eq!(
            r.seen("lb1", 200, 2000),
            Some(Reload {
                pid: 200,
                previous: 100
            })
        );
        // The old worker drains, interleaved with the new one.
        assert_eq!(r.seen("lb1", 100, 2100), None);
        assert_eq!(r.seen("lb1", 200, 2200), None);
        assert_eq!(r.seen("lb2", 300, 2300), None, "hosts apart");
        // After an hour of silence, a new PID is a start.
        assert_eq!(r.seen("lb1", 400, 2200 + FORGET_MS + 1), None);
        // A worker heard steadily for longer than an hour is still known.
        let mut steady = Reloads::new(10);
        steady.seen("lb1", 100, 0);
        for t in (1..=3).map(|n| n * FORGET_MS / 2) {
            assert_eq!(steady.seen("lb1", 100, t), None);
        }
        assert!(
            steady.seen("lb1", 200, 2 * FORGET_MS).is_some(),
            "a reload after hours of one worker"
        );
        let mut full = Reloads::new(1);
        full.seen("a", 1, 0);
        assert_eq!(full.seen("b", 1, 0), None);
        assert_eq!(
            full.seen("b", 2, 0),
            None,
            "past the limit nothing is tracked"
        );
    }
}
