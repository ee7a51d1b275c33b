//! Many rows to one table in few statements. On PostgreSQL each statement is
//! a round trip, and a backfill where every line is a window of its own
//! would pay one per row: there, rows go in chunks of up to 64 per statement.
//! SQLite runs in-process: one prepared statement per row is as fast there.

use std::collections::HashSet;
use std::hash::Hash;

use super::db::{Db, DbResult, Dialect, Value};

/// Rows per statement at most (a power of two: chunks come in a few shapes,
/// so few statements are prepared).
const CHUNK: usize = 64;

/// A table's insert: `head` up to its column list, `tail` after the values
/// (an `ON CONFLICT …`, or nothing).
pub struct Insert<'s> {
    pub head: &'s str,
    pub tail: &'s str,
    pub columns: usize,
}

impl Insert<'_> {
    fn sql(&self, rows: usize) -> String {
        let mut sql =
            String::with_capacity(self.head.len() + self.tail.len() + rows * self.columns * 5);
        sql.push_str(self.head);
        sql.push_str(" VALUES ");
        let mut n = 0;
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..self.columns {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('?');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(self.tail);
        sql
    }

    /// Inserts `rows` (each `columns` values); the rows the database says
    /// it changed. Rows of one statement never share a `key`: an upsert may
    /// not touch a row twice in one statement.
    pub fn run<K: Hash + Eq>(
        &self,
        tx: &Db,
        rows: &[Vec<Value<'_>>],
        key: impl Fn(usize) -> K,
    ) -> DbResult<u64> {
        let mut changed = 0;
        if tx.dialect() == Dialect::Sqlite {
            let sql = self.sql(1);
            for row in rows {
                changed += tx.execute(&sql, row)?;
            }
            return Ok(changed);
        }
        let mut start = 0;
        while start < rows.len() {
            // The longest run from `start` of distinct keys, CHUNK at most.
            let mut keys = HashSet::new();
            let mut end = start;
            while end < rows.len() && end - start < CHUNK && keys.insert(key(end)) {
                end += 1;
            }
            // In power-of-two pieces.
            while start < end {
                let size = 1 << (usize::BITS - 1 - (end - start).leading_zeros());
                let params: Vec<Value<'_>> = rows[start..start + size]
                    .iter()
                    .flat_map(|r| r.iter().copied())
                    .collect();
                changed += tx.execute(&self.sql(size), &params)?;
                start += size;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_land_in_chunks_and_a_repeated_key_is_merged_not_refused() {
        crate::store::scratch::each(|db| {
            db.batch("CREATE TABLE t (k BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
                .unwrap();
            let insert = Insert {
                head: "INSERT INTO t (k, n)",
                tail: "ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n",
                columns: 2,
            };
            // 150 rows, key 7 three times: chunks of 64, 32, 16, … and splits.
            let keys: Vec<i64> = (0..150).map(|i| if i % 50 == 7 { 7 } else { i }).collect();
            let rows: Vec<Vec<Value<'_>>> = keys
                .iter()
                .map(|k| vec![Value::Int(*k), Value::Int(1)])
                .collect();
            db.transaction(|tx| insert.run(tx, &rows, |i| keys[i]))
                .unwrap();
            let n: i64 = db.scalar("SELECT n FROM t WHERE k = 7", &[]).unwrap();
            assert_eq!(n, 3);
            let total: i64 = db.scalar("SELECT sum(n) FROM t", &[]).unwrap();
            assert_eq!(total, 150);
            let distinct: i64 = db.scalar("SELECT count(*) FROM t", &[]).unwrap();
            assert_eq!(distinct, 148);
        });
    }
}
