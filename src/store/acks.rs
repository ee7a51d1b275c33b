//! Acknowledgements: written by the CLI (`hapwatch ack`), read by the daemon
//! each second. An ack stays with its incident after it resolves (history);
//! a new incident of the same key starts unacknowledged.

use super::db::{vals, Db, DbError, DbResult};

use crate::incidents::Ack;

/// Why an incident cannot be acknowledged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckRefused {
    #[error("no incident #{0}")]
    NoSuchIncident(i64),
    #[error("incident #{0} is already resolved: nothing to acknowledge")]
    Resolved(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    Refused(#[from] AckRefused),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Acknowledges an open incident (again: a new reason and time, and what it
/// owes is sent again). Returns the ack it replaced.
pub fn add(conn: &Db, id: i64, ack: &Ack) -> Result<Option<Ack>, AckError> {
    let resolved: Option<Option<i64>> = conn.query_opt(
        "SELECT resolved_at FROM incidents WHERE id = ?1",
        &vals![id],
        |r| r.get(0),
    )?;
    match resolved {
        None => return Err(AckRefused::NoSuchIncident(id).into()),
        Some(Some(_)) => return Err(AckRefused::Resolved(id).into()),
        Some(None) => {}
    }
    let before = of(conn, id)?;
    // Only while still open: the daemon may resolve it meanwhile.
    let written = conn.execute(
        "INSERT INTO acks (incident_id, acked_by, ack_reason, acked_at)
         SELECT ?1, ?2, ?3, ?4 FROM incidents WHERE id = ?1 AND resolved_at IS NULL
         ON CONFLICT (incident_id) DO UPDATE SET acked_by = ?2, ack_reason = ?3, acked_at = ?4,
             notified_at = NULL",
        &vals![id, ack.by, ack.reason, ack.at_ms],
    )?;
    if written == 0 {
        return Err(AckRefused::Resolved(id).into());
    }
    Ok(before)
}

/// Takes an acknowledgement back; false if there was none.
pub fn remove(conn: &Db, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM acks WHERE incident_id = ?1", &vals![id])? > 0)
}

pub fn of(conn: &Db, id: i64) -> DbResult<Option<Ack>> {
    conn.query_opt(
        "SELECT acked_by, ack_reason, acked_at FROM acks WHERE incident_id = ?1",
        &vals![id],
        |r| {
            Ok(Ack {
                by: r.get(0)?,
                reason: r.get(1)?,
                at_ms: r.get(2)?,
            })
        },
    )
}

/// An ack of an open incident, as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAck {
    pub incident_id: i64,
    pub ack: Ack,
    /// What it owes (PagerDuty's acknowledge) is already queued.
    pub notified: bool,
}

/// The acks of incidents still open.
pub fn open(conn: &Db) -> DbResult<Vec<OpenAck>> {
    conn.query(
        "SELECT a.incident_id, a.acked_by, a.ack_reason, a.acked_at, a.notified_at IS NOT NULL
         FROM acks a JOIN incidents i ON i.id = a.incident_id
         WHERE i.resolved_at IS NULL ORDER BY a.incident_id",
        &[],
        |r| {
            Ok(OpenAck {
                incident_id: r.get(0)?,
                ack: Ack {
                    by: r.get(1)?,
                    reason: r.get(2)?,
                    at_ms: r.get(3)?,
                },
                notified: r.get(4)?,
            })
        },
    )
}

/// Marks acks as handled, in the writer's transaction with the rows they owe.
pub fn mark_notified(tx: &Db, acks: &[(i64, i64)], now_ms: i64) -> DbResult<()> {
    for (id, at_ms) in acks {
        tx.execute(
            "UPDATE acks SET notified_at = ?3 WHERE incident_id = ?1 AND acked_at = ?2",
            &vals![id, at_ms, now_ms],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incidents(conn: &Db) {
        conn.batch(
            "INSERT INTO incidents (id, key, kind, severity, host, opened_at, resolved_at, summary, detail)
             VALUES (1, 'k1', 'server_down', 'warning', 'lb1', 0, NULL, 's', '{}'),
                    (2, 'k2', 'server_down', 'warning', 'lb1', 0, 5, 's', '{}');",
        )
        .unwrap();
    }

    fn ack(by: &str, at_ms: i64) -> Ack {
        Ack {
            by: by.into(),
            reason: "on it".into(),
            at_ms,
        }
    }

    #[test]
    fn only_open_incidents_are_acked_and_a_new_ack_is_owed_again() {
        crate::store::scratch::each(|conn| {
            incidents(conn);
            assert!(matches!(
                add(conn, 9, &ack("a", 1)),
                Err(AckError::Refused(AckRefused::NoSuchIncident(9)))
            ));
            assert!(matches!(
                add(conn, 2, &ack("a", 1)),
                Err(AckError::Refused(AckRefused::Resolved(2)))
            ));
            assert_eq!(add(conn, 1, &ack("alice", 10)).unwrap(), None);
            conn.transaction(|tx| mark_notified(tx, &[(1, 10)], 11))
                .unwrap();
            assert!(open(conn).unwrap()[0].notified);
            // Acked again: the new ack is owed again.
            assert_eq!(
                add(conn, 1, &ack("bob", 20)).unwrap(),
                Some(ack("alice", 10))
            );
            let now = open(conn).unwrap();
            assert_eq!((now[0].ack.by.as_str(), now[0].notified), ("bob", false));
            // Marking the older ack does not mark the newer one.
            conn.transaction(|tx| mark_notified(tx, &[(1, 10)], 21))
                .unwrap();
            assert!(!open(conn).unwrap()[0].notified);
            assert!(remove(conn, 1).unwrap());
            assert!(!remove(conn, 1).unwrap());
            assert!(open(conn).unwrap().is_empty());
        });
    }
}
