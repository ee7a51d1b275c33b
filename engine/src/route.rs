//! The path a traffic line took — host, frontend, backend, server — as four
//! interned names. A line's names are hashed once, here; the windows, the
//! rules' rates and the live totals then key their tallies by integers.

use std::hash::{BuildHasher as _, Hasher as _};

use hapwatch_parsers::Traffic;

use crate::fasthash::{FastMap, FastState};

/// An interned name; `Routes::name` reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(u32);

/// One line's path, as interned names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId {
    pub host: NameId,
    pub frontend: NameId,
    pub backend: NameId,
    pub server: NameId,
}

impl RouteId {
    /// Some name of it did not fit in the interner.
    pub fn overflowed(self) -> bool {
        [self.host, self.frontend, self.backend, self.server].contains(&Routes::OVERFLOW_ID)
    }
}

/// The name every new name becomes once the interner is full.
pub const OVERFLOW: &str = "_overflow";

/// The interner. Names are never forgotten while it lives (ids are held by
/// open windows, rates and the HTTP view), so it stops growing at `limit`
/// names: later names all become `_overflow`, counted and still tallied.
pub struct Routes {
    ids: FastMap<Box<str>, NameId>,
    names: Vec<Box<str>>,
    /// The four ids by the hash of the four names: one probe per line
    /// instead of four. A collision falls back to interning each name.
    by_hash: FastMap<u64, RouteId>,
    hasher: FastState,
    limit: usize,
    /// Whether a name was turned into `_overflow` because the interner was full.
    warned: bool,
}

impl Routes {
    /// The id of `_overflow`, interned first.
    pub const OVERFLOW_ID: NameId = NameId(0);

    pub fn new(limit: usize) -> Routes {
        let mut routes = Routes {
            ids: FastMap::default(),
            names: Vec::new(),
            by_hash: FastMap::default(),
            hasher: FastState::default(),
            limit: limit.max(2),
            warned: false,
        };
        routes.intern(OVERFLOW);
        routes
    }

    /// The route of a traffic line received from `host`.
    pub fn of(&mut self, host: &str, t: &Traffic<'_>) -> RouteId {
        self.route([
            host,
            t.frontend.unwrap_or(""),
            t.backend.unwrap_or(""),
            t.server.unwrap_or(""),
        ])
    }

    pub fn route(&mut self, names: [&str; 4]) -> RouteId {
        let mut h = self.hasher.build_hasher();
        for n in names {
            h.write(n.as_bytes());
            h.write_u8(0xff); // not UTF-8: no name can run into the next
        }
        let hash = h.finish();
        if let Some(route) = self.by_hash.get(&hash) {
            if self.names_of(*route) == names {
                return *route;
            }
            return self.intern_all(names);
        }
        let route = self.intern_all(names);
        if self.by_hash.len() < self.limit.saturating_mul(4) {
            self.by_hash.insert(hash, route);
        }
        route
    }

    fn intern_all(&mut self, [host, frontend, backend, server]: [&str; 4]) -> RouteId {
        RouteId {
            host: self.intern(host),
            frontend: self.intern(frontend),
            backend: self.intern(backend),
            server: self.intern(server),
        }
    }

    pub fn intern(&mut self, name: &str) -> NameId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.names.len() >= self.limit {
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    limit = self.limit,
                    "more distinct host, frontend, backend and server names than the interner holds: the rest are counted as \"_overflow\""
                );
            }
            return Routes::OVERFLOW_ID;
        }
        let id = NameId(self.names.len() as u32);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: NameId) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn names_of(&self, r: RouteId) -> [&str; 4] {
        [r.host, r.frontend, r.backend, r.server].map(|id| self.name(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_names_are_the_same_route_and_read_back() {
        let mut r = Routes::new(100);
        let a = r.route(["lb1", "fe", "be_api", "s1"]);
        let b = r.route(["lb1", "fe", "be_api", "s2"]);
        assert_eq!(a, r.route(["lb1", "fe", "be_api", "s1"]));
        assert_ne!(a, b);
        assert_eq!((a.backend, a.host), (b.backend, b.host));
        assert_eq!(r.names_of(b), ["lb1", "fe", "be_api", "s2"]);
        // Names cannot run into each other.
        let c = r.route(["lb1", "fe", "be_ap", "is1"]);
        assert_ne!(c.backend, a.backend);
        assert_eq!(r.names_of(c), ["lb1", "fe", "be_ap", "is1"]);
    }

    #[test]
    fn a_full_interner_names_the_rest_overflow() {
        let mut r = Routes::new(5); // `_overflow` and four names
        let a = r.route(["h", "fe", "be", "s1"]);
        assert_eq!(r.names_of(a), ["h", "fe", "be", "s1"]);
        let b = r.route(["h", "fe", "be", "s2"]);
        assert_eq!(r.names_of(b), ["h", "fe", "be", OVERFLOW]);
        assert!(b.overflowed() && !a.overflowed());
        assert_eq!(
            r.route(["h", "fe", "be", "s1"]),
            a,
            "known names still resolve"
        );
    }
}
