//! Outbox reads: what delivery sends next, what the daemon carries on from
//! at start (groups still waiting, firings already sent), and what the CLI
//! shows of each row. (Writes are the writer's.)

use super::db::{vals, Db, DbError, DbResult, Dialect, Row as DbRow};

use hapwatch_engine::notify::group::{Release, SentFiring, WaitingRow, Withheld, MAINTENANCE};
use hapwatch_engine::notify::RowState;

/// One pending row, as the delivery task reads it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub incident_id: i64,
    pub channel: String,
    pub payload: String,
    pub attempts: i64,
    pub created_ms: i64,
}

/// What an attempt did, for the writer to record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub id: i64,
    /// The node that made it (`[cluster] node`).
    pub node: std::sync::Arc<str>,
    /// When it was made (or given up without one: a channel no longer configured).
    pub at_ms: i64,
    pub attempts: i64,
    pub delivered_ms: Option<i64>,
    pub next_attempt_ms: i64,
    /// Given up: a permanent error, or expired.
    pub failed: bool,
    pub error: Option<String>,
}

impl Attempt {
    /// As `delivery_attempts.outcome` stores it.
    pub fn outcome(&self) -> &'static str {
        match (self.delivered_ms, self.failed) {
            (Some(_), _) => "delivered",
            (None, true) => "failed",
            (None, false) => "retry",
        }
    }
}

/// One attempt as recorded: (outbox row, at, attempt number, outcome, error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRecord {
    pub outbox_id: i64,
    pub node: String,
    pub at_ms: i64,
    pub attempt: i64,
    pub outcome: String,
    pub error: Option<String>,
}

/// Every attempt at the rows of one incident (and at the rows carrying them), oldest first.
pub fn attempts_of(conn: &Db, incident: i64) -> DbResult<Vec<AttemptRecord>> {
    conn.query(
        "SELECT a.outbox_id, a.node, a.at, a.attempt, a.outcome, a.error FROM delivery_attempts a
         WHERE a.outbox_id IN (SELECT coalesce(message_id, id) FROM outbox WHERE incident_id = ?1)
         ORDER BY a.at, a.attempt",
        &vals![incident],
        |r| {
            Ok(AttemptRecord {
                outbox_id: r.get(0)?,
                node: r.get(1)?,
                at_ms: r.get(2)?,
                attempt: r.get(3)?,
                outcome: r.get(4)?,
                error: r.get(5)?,
            })
        },
    )
}

/// The oldest undelivered row of each (channel, backend) that is due.
///
/// A row due later than `now + horizon` (the longest backoff) was scheduled
/// before the clock was stepped back: it is due now, not hours from now.
pub fn due(conn: &Db, now_ms: i64, horizon_ms: i64) -> DbResult<Vec<Pending>> {
    conn.query(
        "SELECT o.id, o.incident_id, o.channel, o.payload, o.attempts, o.created_at FROM outbox o
         WHERE o.state = 'queued'
           AND (o.next_attempt_at <= ?1 OR o.next_attempt_at > ?1 + ?2)
           AND o.id = (SELECT min(p.id) FROM outbox p
                       WHERE p.channel = o.channel AND p.group_key = o.group_key
                         AND p.state = 'queued')
         ORDER BY o.id LIMIT 256",
        &vals![now_ms, horizon_ms],
        |r| {
            Ok(Pending {
                id: r.get(0)?,
                incident_id: r.get(1)?,
                channel: r.get(2)?,
                payload: r.get(3)?,
                attempts: r.get(4)?,
                created_ms: r.get(5)?,
            })
        },
    )
}

/// Claims a due row for `holder` to send, for `lease_ms` by the database's
/// clock: false if another node holds it or it is no longer due. A claim
/// lapses with its holder (killed mid-send), and goes when the attempt's
/// outcome is recorded. One node alone (SQLite) has nothing to claim from.
pub fn claim(conn: &Db, id: i64, holder: &str, lease_ms: i64) -> DbResult<bool> {
    if conn.dialect() == Dialect::Sqlite {
        return Ok(true);
    }
    let now = crate::cluster::DB_NOW_MS;
    let claimed: Option<i64> = conn.query_opt(
        &format!(
            "UPDATE outbox SET claim_node = ?2, claim_until = {now} + ?3
             WHERE id = (SELECT id FROM outbox WHERE id = ?1 AND state = 'queued'
                           AND (claim_until IS NULL OR claim_until <= {now} OR claim_node = ?2)
                         FOR UPDATE SKIP LOCKED)
             RETURNING id"
        ),
        &vals![id, holder, lease_ms],
        |r| r.get(0),
    )?;
    Ok(claimed.is_some())
}

/// When the next undelivered row is due, if any.
pub fn next_due(conn: &Db) -> DbResult<Option<i64>> {
    conn.scalar(
        "SELECT min(next_attempt_at) FROM outbox WHERE state = 'queued'",
        &[],
    )
}

/// The id the next row takes.
pub fn next_id(conn: &Db) -> DbResult<i64> {
    conn.scalar("SELECT coalesce(max(id), 0) + 1 FROM outbox", &[])
}

/// Rows still in their group wait, oldest first, and the ids of those whose
/// item cannot be read back (written by a newer version).
pub fn waiting(conn: &Db, group: Option<&str>) -> DbResult<(Vec<WaitingRow>, Vec<i64>)> {
    let rows = match group {
        None => conn.query(
            "SELECT id, item, next_attempt_at FROM outbox WHERE state = 'waiting' ORDER BY id",
            &[],
            |r| r.get::<(i64, Option<String>, i64)>(0),
        )?,
        // Several groups share the store: each composes its own incidents' rows.
        Some(g) => conn.query(
            "SELECT o.id, o.item, o.next_attempt_at FROM outbox o
             JOIN incidents i ON i.id = o.incident_id
             WHERE o.state = 'waiting' AND i.grp = ?1 ORDER BY o.id",
            &vals![g],
            |r| r.get::<(i64, Option<String>, i64)>(0),
        )?,
    };
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    for (id, item, due_ms) in rows {
        match item.as_deref().map(serde_json::from_str) {
            Some(Ok(item)) => out.push(WaitingRow { id, item, due_ms }),
            // Settled as failed at start, so it is neither kept waiting nor lost silently.
            _ => unreadable.push(id),
        }
    }
    Ok((out, unreadable))
}

/// Firings a channel was sent (or is being sent) whose resolve has not
/// gone yet, since `since_ms`: a resolve is paired with them.
/// Several groups sharing the store: only `group`'s incidents.
pub fn sent_firings(conn: &Db, since_ms: i64, group: Option<&str>) -> DbResult<Vec<SentFiring>> {
    conn.query(
        "SELECT f.channel, f.incident_id, coalesce(m.payload, f.payload) FROM outbox f
         LEFT JOIN outbox m ON m.id = f.message_id
         WHERE f.status = 'firing' AND f.created_at >= ?1
           AND (CAST(?2 AS TEXT) IS NULL
               OR f.incident_id IN (SELECT id FROM incidents WHERE grp = ?2))
           AND f.state IN ('queued', 'delivered', 'grouped', 'failed')
           AND NOT EXISTS (SELECT 1 FROM outbox r
               WHERE r.channel = f.channel AND r.incident_id = f.incident_id
                 AND r.status = 'resolved' AND r.state != 'waiting')
         ORDER BY f.id",
        &vals![since_ms, group],
        |r| {
            let payload: String = r.get(2)?;
            // Email payloads name their Message-ID; a resolve threads under it.
            let message_id = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v.get("message_id")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(SentFiring {
                channel: r.get(0)?,
                incident_id: r.get(1)?,
                message_id,
            })
        },
    )
}

/// Firings not sent (superseded, silenced, cancelled) whose resolve has not
/// come yet, with why: their resolves are not sent either, and say so.
pub fn withheld_firings(conn: &Db, since_ms: i64, group: Option<&str>) -> DbResult<Vec<Withheld>> {
    // A reminder not sent withholds nothing: its firing went out before.
    let reminder = match conn.dialect() {
        Dialect::Sqlite => "json_extract(f.item, '$.incident.reminder_ms')",
        Dialect::Postgres => "(f.item::jsonb #> '{incident,reminder_ms}')",
    };
    let sql = format!(
        "SELECT f.channel, f.incident_id,
            CASE f.state WHEN 'silenced' THEN 'silenced (' || f.note || ')'
                ELSE coalesce(f.note, f.state) END, f.state, coalesce(f.note, '') FROM outbox f
         WHERE f.status = 'firing' AND f.created_at >= ?1
           AND (CAST(?2 AS TEXT) IS NULL
               OR f.incident_id IN (SELECT id FROM incidents WHERE grp = ?2))
           AND f.state IN ('superseded', 'silenced', 'cancelled')
           AND {reminder} IS NULL
           AND NOT EXISTS (SELECT 1 FROM outbox r
               WHERE r.channel = f.channel AND r.incident_id = f.incident_id
                 AND r.status = 'resolved')
           -- Released since (a window ended, a superseding incident resolved):
           -- the later firing row speaks for it.
           AND NOT EXISTS (SELECT 1 FROM outbox l
               WHERE l.channel = f.channel AND l.incident_id = f.incident_id
                 AND l.status = 'firing' AND l.id > f.id)
         ORDER BY f.id"
    );
    conn.query(&sql, &vals![since_ms, group], |r| {
        let note: String = r.get(2)?;
        let (state, raw): (String, String) = (r.get(3)?, r.get(4)?);
        let window = raw
            .strip_prefix(MAINTENANCE)
            .filter(|_| state == "silenced")
            .and_then(|rest| rest.split(':').next());
        let release = match (window, superseded_by(&note)) {
            (Some(name), _) => Release::WindowEnd(name.to_owned()),
            (None, Some(by)) => Release::Resolve(by),
            (None, None) => Release::Never,
        };
        Ok(Withheld {
            channel: r.get(0)?,
            incident_id: r.get(1)?,
            release,
            why: format!("its firing was {note}"),
        })
    })
}

/// `superseded by incident #12 (…)` → 12.
fn superseded_by(note: &str) -> Option<i64> {
    let rest = note.strip_prefix("superseded by incident #")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Incidents up to this id were notified before rows per change existed.
pub fn legacy_max(conn: &Db) -> DbResult<i64> {
    conn.scalar("SELECT max_incident FROM outbox_legacy", &[])
}

/// One row of the outbox as people see it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub incident_id: i64,
    pub channel: String,
    /// firing, resolved, digest.
    pub status: String,
    pub state: RowState,
    /// Grouped: the row that carries its message.
    pub message_id: Option<i64>,
    /// Why it was grouped, superseded, cancelled or silenced.
    pub note: Option<String>,
    pub created_ms: i64,
    /// Of this row, or of the row carrying its message.
    pub attempts: i64,
    pub next_ms: i64,
    pub delivered_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Whether the message that carries it was delivered (grouped rows).
    pub carrier_state: Option<RowState>,
}

const COLUMNS: &str = "o.id, o.incident_id, o.channel, o.status, o.state, o.message_id, o.note,
    o.created_at, coalesce(m.attempts, o.attempts), coalesce(m.next_attempt_at, o.next_attempt_at),
    coalesce(m.delivered_at, o.delivered_at), coalesce(m.failed_at, o.failed_at),
    coalesce(m.last_error, o.last_error), m.state";

fn row(r: &DbRow<'_>) -> DbResult<Row> {
    let state = |index: usize, s: String| {
        RowState::parse(&s).ok_or_else(|| DbError::Column {
            index,
            message: format!("unknown outbox state {s:?}"),
        })
    };
    Ok(Row {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        channel: r.get(2)?,
        status: r.get(3)?,
        state: state(4, r.get(4)?)?,
        message_id: r.get(5)?,
        note: r.get(6)?,
        created_ms: r.get(7)?,
        attempts: r.get(8)?,
        next_ms: r.get(9)?,
        delivered_ms: r.get(10)?,
        failed_ms: r.get(11)?,
        last_error: r.get(12)?,
        carrier_state: r
            .get::<Option<String>>(13)?
            .map(|s| state(13, s))
            .transpose()?,
    })
}

/// Every row about one incident, oldest first.
pub fn of_incident(conn: &Db, incident: i64) -> DbResult<Vec<Row>> {
    conn.query(
        &format!(
            "SELECT {COLUMNS} FROM outbox o LEFT JOIN outbox m ON m.id = o.message_id
             WHERE o.incident_id = ?1 ORDER BY o.id"
        ),
        &vals![incident],
        row,
    )
}

/// The newest 100 rows: those not settled yet (waiting, queued, failed)
/// and those not sent (superseded, cancelled, silenced) from the last day,
/// or every kind with `all`.
pub fn list(conn: &Db, all: bool, now_ms: i64) -> DbResult<Vec<Row>> {
    let filter = if all {
        ""
    } else {
        "WHERE o.state IN ('waiting', 'queued', 'failed')
            OR (o.state IN ('superseded', 'cancelled', 'silenced') AND o.created_at >= ?1)"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox o LEFT JOIN outbox m ON m.id = o.message_id
         {filter} ORDER BY o.id DESC LIMIT 100"
    );
    let since = now_ms - 86_400_000;
    if all {
        conn.query(&sql, &[], row)
    } else {
        conn.query(&sql, &vals![since], row)
    }
}

/// The channels a daemon runs with, since when: [(name, fingerprint)].
pub type RunningChannels = (i64, Vec<(String, String)>);

/// The channels the daemon on this store last started or reloaded with;
/// None before any daemon stored them.
pub fn running_channels(conn: &Db) -> DbResult<Option<RunningChannels>> {
    let rows: Vec<(String, String, i64)> = conn.query(
        "SELECT name, fingerprint, since FROM channels_running ORDER BY name",
        &[],
        |r| r.get(0),
    )?;
    let Some(since) = rows.iter().map(|r| r.2).max() else {
        return Ok(None);
    };
    Ok(Some((
        since,
        rows.into_iter().map(|(n, f, _)| (n, f)).collect(),
    )))
}

/// What decides whether a row may be sent again.
#[derive(Debug, Clone)]
pub struct RetryCandidate {
    pub state: String,
    pub status: String,
    pub has_message: bool,
    pub incident_id: i64,
    pub incident_resolved: bool,
}

pub fn retry_candidate(conn: &Db, id: i64) -> DbResult<Option<RetryCandidate>> {
    conn.query_opt(
        "SELECT o.state, o.status, o.payload != '', o.incident_id, i.resolved_at IS NOT NULL
         FROM outbox o LEFT JOIN incidents i ON i.id = o.incident_id WHERE o.id = ?1",
        &vals![id],
        |r| {
            Ok(RetryCandidate {
                state: r.get(0)?,
                status: r.get(1)?,
                has_message: r.get(2)?,
                incident_id: r.get(3)?,
                incident_resolved: r.get::<Option<i64>>(4)?.is_some_and(|v| v != 0),
            })
        },
    )
}

/// The CLI asks for a failed row to be sent again; the daemon's delivery
/// applies it (through the writer) and forgets it had given up.
pub fn request_retry(conn: &Db, id: i64, at_ms: i64) -> DbResult<()> {
    conn.execute(
        "INSERT INTO outbox_retries (id, at) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        &vals![id, at_ms],
    )?;
    Ok(())
}

/// Rows asked to be retried.
pub fn retry_requests(conn: &Db) -> DbResult<Vec<i64>> {
    conn.query("SELECT id FROM outbox_retries ORDER BY id", &[], |r| {
        r.get(0)
    })
}

/// The alerts an Alertmanager channel was sent (or was owed and gave up on:
/// a re-post heals an instance that was down) for incidents still open, to
/// post again: each once, from its newest message, with the labels of today's
/// payloads (rows from before the incident number moved to the annotations
/// get the key label instead). Read in one transaction.
pub fn open_alerts(conn: &Db, channel: &str) -> DbResult<Vec<(i64, serde_json::Value)>> {
    let (open, payloads) = conn.transaction(|tx| {
        let open: std::collections::HashMap<String, (i64, String)> = tx
            .query(
                "SELECT id, key FROM incidents WHERE resolved_at IS NULL",
                &[],
                |r| r.get::<(i64, String)>(0),
            )?
            .into_iter()
            .map(|(id, key)| (id.to_string(), (id, key)))
            .collect();
        if open.is_empty() {
            return Ok((open, Vec::new()));
        }
        // A message's carrier is its group's first row, whatever that row's own
        // change: a resolve can carry the firings grouped with it.
        let payloads: Vec<String> = tx.query(
            "SELECT payload FROM outbox
             WHERE channel = ?1 AND state IN ('delivered', 'failed') AND message_id IS NULL
               AND id IN (SELECT coalesce(g.message_id, g.id) FROM outbox g
                          JOIN incidents i ON i.id = g.incident_id
                          WHERE g.channel = ?1 AND g.status = 'firing' AND i.resolved_at IS NULL)
             ORDER BY id DESC",
            &vals![channel],
            |r| r.get(0),
        )?;
        Ok((open, payloads))
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for payload in payloads {
        let Ok(serde_json::Value::Array(alerts)) = serde_json::from_str(&payload) else {
            continue;
        };
        for mut alert in alerts {
            if alert.get("endsAt").is_some() {
                continue;
            }
            let number = alert["annotations"]["hapwatch_incident"]
                .as_str()
                .or_else(|| alert["labels"]["incident"].as_str())
                .map(str::to_owned);
            let Some((id, key)) = number.and_then(|n| open.get(&n)) else {
                continue;
            };
            if !seen.insert(*id) {
                continue;
            }
            if let Some(labels) = alert["labels"].as_object_mut() {
                labels.remove("incident");
                labels.retain(|_, v| v.is_string());
                labels.insert("key".into(), key.clone().into());
            }
            alert["annotations"]["hapwatch_incident"] = id.to_string().into();
            out.push((*id, alert));
        }
    }
    Ok(out)
}

/// Of these incidents, those resolved since, with when: (id, resolved at ms).
pub fn resolved_of(conn: &Db, ids: &[i64]) -> DbResult<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for id in ids {
        let resolved = conn.query_opt(
            "SELECT resolved_at FROM incidents WHERE id = ?1 AND resolved_at IS NOT NULL",
            &vals![id],
            |r| r.get::<i64>(0),
        )?;
        if let Some(at) = resolved {
            out.push((*id, at));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_alerts_of_a_channel_include_those_grouped_behind_a_resolve() {
        crate::store::scratch::each(|conn| {
            conn.batch(
            "INSERT INTO incidents (id, key, kind, severity, host, opened_at, resolved_at, summary, detail) VALUES
               (1, 'server:lb1:be/s1', 'server_down', 'warning', 'lb1', 0, NULL, 's1 down', '{}'),
               (2, 'backend:lb1:be', 'backend_down', 'critical', 'lb1', 0, 5, 'be down', '{}'),
               (3, 'server:lb1:be/s3', 'server_down', 'warning', 'lb1', 0, NULL, 's3 down', '{}');",
        )
        .unwrap();
            let alert = |n: i64, ends: bool| {
                let mut a = serde_json::json!({
                    "labels": {"alertname": "hapwatch_server_down", "server": format!("s{n}")},
                    "annotations": {"hapwatch_incident": n.to_string()},
                    "startsAt": "2026-11-23T01:00:00Z",
                });
                if ends {
                    a["endsAt"] = "2026-11-23T01:01:00Z".into();
                }
                a
            };
            // Before the number moved to the annotations: a label, and a null.
            let old = serde_json::json!([{
                "labels": {"alertname": "hapwatch_server_down", "server": "s1", "incident": "1", "backend": null},
                "annotations": {"summary": "old"},
                "startsAt": "2026-11-23T01:00:00Z",
            }]);
            let carried = serde_json::json!([alert(2, true), alert(1, false)]);
            let rows = [
                (5, 1, "am", "firing", old.to_string(), "delivered", None),
                // A resolve carries a firing grouped into its message.
                (
                    10,
                    2,
                    "am",
                    "resolved",
                    carried.to_string(),
                    "delivered",
                    None,
                ),
                (11, 1, "am", "firing", String::new(), "grouped", Some(10)),
                // Another channel's, and an open incident's firing never sent.
                (
                    12,
                    3,
                    "other",
                    "firing",
                    serde_json::json!([alert(3, false)]).to_string(),
                    "delivered",
                    None,
                ),
                (
                    13,
                    3,
                    "am",
                    "firing",
                    serde_json::json!([alert(3, false)]).to_string(),
                    "silenced",
                    None,
                ),
            ];
            for (id, incident, channel, status, payload, state, message) in rows {
                conn.execute(
                "INSERT INTO outbox (id, incident_id, channel, group_key, status, payload, created_at,
                    next_attempt_at, state, message_id) VALUES (?1, ?2, ?3, 'lb1/be', ?4, ?5, 0, 0, ?6, ?7)",
                &vals![id, incident, channel, status, payload, state, message],
            )
            .unwrap();
            }
            let got = open_alerts(conn, "am").unwrap();
            assert_eq!(got.len(), 1, "{got:?}");
            let (id, a) = &got[0];
            assert_eq!(*id, 1);
            // From the newest message, with the key label, no number among the labels.
            assert_eq!(a["labels"]["key"], "server:lb1:be/s1");
            assert!(a["labels"].get("incident").is_none());
            assert!(a.get("endsAt").is_none());
            assert_eq!(a["annotations"]["hapwatch_incident"], "1");
            // The old row alone is normalised the same way.
            conn.execute("DELETE FROM outbox WHERE id IN (10, 11)", &[])
                .unwrap();
            let got = open_alerts(conn, "am").unwrap();
            let labels = got[0].1["labels"].as_object().unwrap();
            assert_eq!(labels["key"], "server:lb1:be/s1");
            assert!(!labels.contains_key("incident") && !labels.contains_key("backend"));
            assert_eq!(resolved_of(conn, &[1, 2, 3]).unwrap(), [(2, 5)]);
        });
    }
}
