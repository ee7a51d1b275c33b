//! What hapwatch believes about every server and backend it has heard of,
//! from health checks and state changes, per load balancer.

use std::collections::{HashMap, VecDeque};

use hapwatch_parsers::ServerState;

/// What the logs said of a server's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StateSeen {
    /// No state line yet (only checks, or traffic).
    #[default]
    Never,
    /// A state line whose state could not be read.
    Unreadable,
    Is(ServerState),
}

impl StateSeen {
    /// As stored in `events.new_state`: a name HAProxy prints, else unreadable.
    pub fn from_name(name: &str) -> StateSeen {
        match name {
            "" => StateSeen::Never,
            n => ServerState::from_name(n).map_or(StateSeen::Unreadable, StateSeen::Is),
        }
    }

    pub fn known(self) -> Option<ServerState> {
        match self {
            StateSeen::Is(s) => Some(s),
            _ => None,
        }
    }

    pub fn is(self, state: ServerState) -> bool {
        self == StateSeen::Is(state)
    }
}

impl std::fmt::Display for StateSeen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateSeen::Never => "",
            StateSeen::Unreadable => "?",
            StateSeen::Is(s) => s.as_str(),
        })
    }
}

/// (host, backend, server)
pub type ServerKey = (String, String, String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStatus {
    pub state: StateSeen,
    pub since_ms: i64,
    /// The last failed check's reason, kept as evidence.
    pub last_failure: Option<String>,
    /// Servers of the backend left after the last change, as HAProxy counted them.
    pub active_left: Option<u32>,
    pub backup_left: Option<u32>,
    /// Times of recent UP/DOWN changes, for flap detection.
    pub changes: VecDeque<i64>,
    /// When a check or state line last named it (idle servers are forgotten).
    pub heard_ms: i64,
}

#[derive(Debug, Default)]
pub struct Fleet {
    pub servers: HashMap<ServerKey, ServerStatus>,
    /// Bumped when a server's state or the set of servers changes.
    pub version: u64,
}

impl Fleet {
    pub fn server(&mut self, host: &str, backend: &str, server: &str) -> &mut ServerStatus {
        self.servers
            .entry((host.to_owned(), backend.to_owned(), server.to_owned()))
            .or_default()
    }

    /// Servers of one backend currently DOWN, and how many HAProxy says are
    /// still active: their sum estimates the backend's size (servers that never
    /// changed state are not otherwise known).
    pub fn backend_down_share(&self, host: &str, backend: &str, active_left: u32) -> (usize, f64) {
        let down = self
            .servers
            .iter()
            .filter(|((h, b, _), s)| h == host && b == backend && s.state.is(ServerState::Down))
            .count();
        (down, share(down, down + active_left as usize))
    }

    /// The servers of one backend the logs last said were DOWN, by name.
    pub fn down_servers<'a>(
        &'a self,
        host: &'a str,
        backend: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let mut names: Vec<&str> = self
            .servers
            .iter()
            .filter(move |((h, b, _), s)| {
                h == host && b == backend && s.state.is(ServerState::Down)
            })
            .map(|((_, _, srv), _)| srv.as_str())
            .collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// Records an UP/DOWN change and returns how many fell within `period_ms`.
    pub fn note_change(&mut self, key: &ServerKey, ts_ms: i64, period_ms: i64) -> usize {
        self.version += 1;
        let s = self.servers.entry(key.clone()).or_default();
        s.changes.push_back(ts_ms);
        while s.changes.front().is_some_and(|t| *t < ts_ms - period_ms) {
            s.changes.pop_front();
        }
        s.changes.len()
    }
}

/// `part` of `total`, 0 for an empty whole.
pub fn share(part: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_outside_the_period_are_forgotten() {
        let mut f = Fleet::default();
        let key = ("lb".to_owned(), "be".to_owned(), "s1".to_owned());
        assert_eq!(f.note_change(&key, 0, 600_000), 1);
        assert_eq!(f.note_change(&key, 300_000, 600_000), 2);
        assert_eq!(f.note_change(&key, 900_001, 600_000), 1);
    }

    #[test]
    fn down_share_counts_known_down_servers_and_the_active_left() {
        let mut f = Fleet::default();
        f.server("lb", "be", "s1").state = StateSeen::Is(ServerState::Down);
        f.server("lb", "be", "s2").state = StateSeen::Is(ServerState::Up);
        f.server("lb2", "be", "s1").state = StateSeen::Is(ServerState::Down);
        assert_eq!(f.backend_down_share("lb", "be", 3), (1, 0.25));
    }
}
