//! hapwatch's decisions, pure: events and time go in, figures and changes
//! come out. Nothing here opens a socket or a file or reads the clock on its
//! own (`timezone::now_ms` is for callers): the daemon and `replay` drive it
//! the same way, and Cargo keeps it from reaching back into I/O.

pub mod de;
pub mod escape;
pub mod fasthash;
pub mod figures;
pub mod hist;
pub mod incidents;
pub mod maintenance;
pub mod notify;
pub mod reloads;
pub mod route;
pub mod rules;
pub mod timezone;
pub mod urls;
pub mod windows;

/// Where ids come from once the block in hand is used up, when several
/// nodes number side by side: given the next id the caller would take, a
/// block no other node has (None: none could be had; numbering goes on
/// past the block, and the caller has said why).
pub type IdSource = Box<dyn FnMut(i64) -> Option<std::ops::Range<i64>> + Send>;

/// Ids from a block, refilled from an [`IdSource`]; without one, numbering
/// goes on without end (one node alone).
pub struct Numbering {
    next: i64,
    end: i64,
    source: Option<IdSource>,
}

impl Numbering {
    pub fn new(next: i64) -> Numbering {
        Numbering {
            next,
            end: i64::MAX,
            source: None,
        }
    }

    /// From now on, ids come in blocks from `source` (the first at once).
    pub fn blocks_from(&mut self, source: IdSource) {
        self.end = self.next;
        self.source = Some(source);
    }

    /// Carries on past `next` (an id read back from the store); a block
    /// in hand is kept.
    pub fn at_least(&mut self, next: i64) {
        if self.source.is_none() {
            self.next = self.next.max(next);
        }
    }

    pub fn take(&mut self) -> i64 {
        if self.next >= self.end {
            if let Some(block) = self.source.as_mut().and_then(|s| s(self.next)) {
                self.next = block.start;
                self.end = block.end;
            }
        }
        let id = self.next;
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_takes_a_block_when_the_one_in_hand_is_used_up() {
        let mut alone = Numbering::new(7);
        alone.at_least(9);
        assert_eq!((alone.take(), alone.take()), (9, 10));

        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        let mut next_block = 100;
        let mut shared = Numbering::new(5);
        shared.blocks_from(Box::new(move |at| {
            log.lock().unwrap().push(at);
            let b = next_block..next_block + 2;
            next_block += 10;
            Some(b)
        }));
        let ids: Vec<i64> = (0..5).map(|_| shared.take()).collect();
        assert_eq!(ids, [100, 101, 110, 111, 120]);
        assert_eq!(*asked.lock().unwrap(), [5, 102, 112]);
        // A stored id read back does not move numbering off its block.
        shared.at_least(500);
        assert_eq!(shared.take(), 121);

        let mut starved = Numbering::new(3);
        starved.blocks_from(Box::new(|_| None));
        assert_eq!((starved.take(), starved.take()), (3, 4), "goes on past");
    }
}
