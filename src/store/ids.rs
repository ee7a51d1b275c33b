//! Ids handed out in blocks. Groups of nodes sharing one store decide side
//! by side, each numbering the incidents and outbox rows it makes; a block
//! reserved in one statement is a node's alone, so no two take the same id.
//! (One node alone numbers from the largest id stored, as it always did.)

use super::db::{vals, Db, DbResult};

/// What is numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbered {
    Incidents,
    Outbox,
}

impl Numbered {
    fn as_str(self) -> &'static str {
        match self {
            Numbered::Incidents => "incidents",
            Numbered::Outbox => "outbox",
        }
    }
}

/// How many ids a block holds: a restart skips at most this many.
pub const BLOCK: i64 = 1000;

/// Reserves the next block, at or past `floor` (the largest id stored plus
/// one, so rows numbered otherwise, e.g. by `replay`, are stepped over).
pub fn reserve(db: &Db, what: Numbered, floor: i64) -> DbResult<std::ops::Range<i64>> {
    let start: i64 = db.scalar(
        "UPDATE id_blocks SET next = greatest(next, ?2) + ?3 WHERE name = ?1
         RETURNING next - ?3",
        &vals![what.as_str(), floor, BLOCK],
    )?;
    Ok(start..start + BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_overlap_and_step_over_ids_stored_past_them() {
        let Some(scratch) = crate::store::scratch::postgres() else {
            return;
        };
        let (a, b) = (scratch.open(), scratch.open());
        let first = reserve(&a, Numbered::Incidents, 1).unwrap();
        let second = reserve(&b, Numbered::Incidents, 1).unwrap();
        assert_eq!(first.end, second.start, "one after the other");
        assert_eq!(first.start, 1);
        let past = reserve(&a, Numbered::Incidents, 5000).unwrap();
        assert_eq!(past.start, 5000);
        // Each kind is numbered on its own.
        assert_eq!(reserve(&a, Numbered::Outbox, 1).unwrap().start, 1);
    }
}
