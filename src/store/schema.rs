//! Schema migrations, recorded in a version table. Each step runs once, in
//! its own transaction; a file from a newer hapwatch is refused, not guessed at.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Migration N brings the schema from version N to N + 1.
const MIGRATIONS: &[&str] = &[
    // 1: events, windows, evidence samples, the daemon's own counters.
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,              -- Unix ms
        host TEXT NOT NULL,
        kind TEXT NOT NULL,               -- health_check, state_change, backend_down, other
        template TEXT NOT NULL,
        proxy TEXT,
        server TEXT,
        new_state TEXT,
        old_state TEXT,
        reason TEXT,
        code INTEGER,
        info TEXT,
        check_duration_ms INTEGER,
        active_left INTEGER,
        backup_left INTEGER,
        json TEXT NOT NULL,               -- the event as `hapwatch parse` prints it
        raw TEXT NOT NULL
    );
    CREATE INDEX events_ts ON events (ts);
    CREATE INDEX events_proxy_ts ON events (proxy, ts);
    CREATE TABLE windows (
        start INTEGER NOT NULL,           -- Unix s
        span_s INTEGER NOT NULL,
        host TEXT NOT NULL,
        frontend TEXT NOT NULL,
        backend TEXT NOT NULL,
        server TEXT NOT NULL,
        requests INTEGER NOT NULL,
        s1xx INTEGER NOT NULL, s2xx INTEGER NOT NULL, s3xx INTEGER NOT NULL,
        s4xx INTEGER NOT NULL, s5xx INTEGER NOT NULL, s_other INTEGER NOT NULL,
        retries INTEGER NOT NULL,
        redispatches INTEGER NOT NULL,
        term_client INTEGER NOT NULL, term_server INTEGER NOT NULL,
        term_proxy INTEGER NOT NULL, term_resource INTEGER NOT NULL, term_other INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        t_total_hist BLOB NOT NULL,
        t_response_hist BLOB NOT NULL,
        PRIMARY KEY (start, span_s, host, frontend, backend, server)
    ) WITHOUT ROWID;
    CREATE INDEX windows_backend_start ON windows (backend, start);
    CREATE TABLE samples (
        start INTEGER NOT NULL,
        span_s INTEGER NOT NULL,
        host TEXT NOT NULL,
        frontend TEXT NOT NULL,
        backend TEXT NOT NULL,
        server TEXT NOT NULL,
        class TEXT NOT NULL,              -- 5xx, termination
        raw TEXT NOT NULL
    );
    CREATE INDEX samples_start ON samples (start);
    CREATE TABLE ingest_stats (
        ts INTEGER NOT NULL,              -- Unix ms, end of the interval
        interval_ms INTEGER NOT NULL,
        received INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        parsed INTEGER NOT NULL,
        traffic INTEGER NOT NULL,
        events INTEGER NOT NULL,
        parse_errors INTEGER NOT NULL,
        oversized INTEGER NOT NULL,
        denied INTEGER NOT NULL,
        queue_drops INTEGER NOT NULL,
        socket_drops INTEGER NOT NULL,
        rows_written INTEGER NOT NULL,
        detail TEXT NOT NULL              -- JSON: parse errors by reason, per-listener figures
    );
    CREATE INDEX ingest_stats_ts ON ingest_stats (ts);",
    // 2: incidents and their timelines.
    "CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,           -- assigned by the incident engine
        key TEXT NOT NULL,                -- server:HOST:BACKEND/SERVER, backend:HOST:BACKEND, …
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        host TEXT NOT NULL,
        backend TEXT,
        server TEXT,
        opened_at INTEGER NOT NULL,       -- Unix ms
        resolved_at INTEGER,
        summary TEXT NOT NULL,
        resolution TEXT,
        detail TEXT NOT NULL              -- JSON evidence known at opening
    );
    CREATE INDEX incidents_opened ON incidents (opened_at);
    CREATE INDEX incidents_open ON incidents (resolved_at) WHERE resolved_at IS NULL;
    CREATE TABLE incident_timeline (
        incident_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX incident_timeline_id ON incident_timeline (incident_id, ts);",
    // 3: the notification outbox.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL,     -- the first incident of a grouped notification
        channel TEXT NOT NULL,
        group_key TEXT NOT NULL,          -- host/backend: delivered in order within it
        status TEXT NOT NULL,             -- firing, resolved
        payload TEXT NOT NULL,            -- the body, built when the change happened
        created_at INTEGER NOT NULL,      -- Unix ms
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        delivered_at INTEGER,
        failed_at INTEGER,                -- given up (expired)
        last_error TEXT
    );
    CREATE INDEX outbox_pending ON outbox (channel, group_key)
        WHERE delivered_at IS NULL AND failed_at IS NULL;
    CREATE INDEX outbox_incident ON outbox (incident_id);
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        host TEXT,                        -- NULL: any
        backend TEXT,
        server TEXT,
        created_at INTEGER NOT NULL,      -- Unix ms
        until INTEGER NOT NULL,
        reason TEXT NOT NULL
    );",
    // 4: every notification owed is a row from the moment it is decided: one
    // row per (channel, incident change), waiting in its group, then carrying
    // a message, grouped into another row's, or settled unsent, with why.
    "ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'queued';
    ALTER TABLE outbox ADD COLUMN item TEXT;         -- the change as JSON (notify::Item)
    ALTER TABLE outbox ADD COLUMN message_id INTEGER; -- grouped: the row carrying the message
    ALTER TABLE outbox ADD COLUMN note TEXT;          -- why it was grouped, superseded, cancelled
    UPDATE outbox SET state = CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
        WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'queued' END;
    DROP INDEX outbox_pending;
    CREATE INDEX outbox_queued ON outbox (channel, group_key) WHERE state = 'queued';
    CREATE INDEX outbox_waiting ON outbox (state) WHERE state = 'waiting';
    CREATE INDEX outbox_message ON outbox (message_id) WHERE message_id IS NOT NULL;
    -- Incidents notified before this migration have no row per change: pair their resolves as v3 did.
    CREATE TABLE outbox_legacy AS SELECT coalesce(max(id), 0) AS max_incident FROM incidents;
    -- Files `replay` took in, so the same file is not counted twice.
    -- Failed rows the CLI asks to send again (`outbox --retry ID`).
    CREATE TABLE outbox_retries (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
    CREATE TABLE replays (fingerprint TEXT PRIMARY KEY, path TEXT NOT NULL, at INTEGER NOT NULL);
    CREATE TABLE channels_running (       -- what the daemon delivers to, for check-config
        name TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,        -- SHA-256 of the channel's settings
        since INTEGER NOT NULL            -- Unix ms of the start or reload that set it
    );",
    // 5: requests by status code per route, and by normalised URL per backend.
    "CREATE TABLE status_windows (
        start INTEGER NOT NULL,
        span_s INTEGER NOT NULL,
        host TEXT NOT NULL,
        frontend TEXT NOT NULL,
        backend TEXT NOT NULL,
        server TEXT NOT NULL,
        status INTEGER NOT NULL,          -- 0: no status (tcplog, -1)
        requests INTEGER NOT NULL,
        PRIMARY KEY (start, span_s, host, frontend, backend, server, status)
    ) WITHOUT ROWID;
    CREATE TABLE url_windows (
        start INTEGER NOT NULL,
        span_s INTEGER NOT NULL,
        host TEXT NOT NULL,
        backend TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,               -- normalised; '(other)' past [limits] urls
        requests INTEGER NOT NULL,
        s4xx INTEGER NOT NULL,
        s5xx INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        t_total_hist BLOB NOT NULL,
        PRIMARY KEY (start, span_s, host, backend, method, path)
    ) WITHOUT ROWID;
    CREATE INDEX url_windows_backend_start ON url_windows (backend, start);",
    // 6: acknowledgements (`hapwatch ack`), kept after the incident resolves.
    "CREATE TABLE acks (
        incident_id INTEGER PRIMARY KEY,
        acked_by TEXT NOT NULL,
        ack_reason TEXT NOT NULL,
        acked_at INTEGER NOT NULL,        -- Unix ms
        notified_at INTEGER               -- when the daemon queued what the ack owes (PagerDuty)
    );",
    // 7: maintenance windows added from the CLI (those of the config are not stored).
    "CREATE TABLE IF NOT EXISTS maintenance (
        id INTEGER PRIMARY KEY,
        hosts TEXT NOT NULL,              -- JSON array of names; [] = any
        backends TEXT NOT NULL,
        every TEXT,                       -- \"sun 02:00-04:00\"; NULL: once, start_at to end_at
        timezone TEXT,
        start_at INTEGER,                 -- Unix ms
        end_at INTEGER,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        removed_at INTEGER
    );",
    // 8: for the console: every delivery attempt (the outbox row keeps only
    // the count and the last error), every route seen, each backend's traffic
    // per quarter hour, each server's latest state.
    "CREATE TABLE delivery_attempts (
        outbox_id INTEGER NOT NULL,
        node TEXT NOT NULL,               -- [cluster] node that made it
        at INTEGER NOT NULL,              -- Unix ms
        attempt INTEGER NOT NULL,         -- 1 for the first
        outcome TEXT NOT NULL,            -- delivered, retry, failed
        error TEXT
    );
    CREATE INDEX delivery_attempts_row ON delivery_attempts (outbox_id, at);
    -- Every (host, backend, server) traffic was counted for, with its first
    -- and last window: the fleet without scanning a month of windows.
    CREATE TABLE routes (
        host TEXT NOT NULL,
        backend TEXT NOT NULL,
        server TEXT NOT NULL,
        first_seen INTEGER NOT NULL,      -- Unix s, window start
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (host, backend, server)
    ) WITHOUT ROWID;
    INSERT INTO routes SELECT host, backend, server, min(start), max(start) FROM windows
        GROUP BY host, backend, server;
    -- Each backend's traffic per quarter hour (windows.start rounded down to
    -- 900 s), for charts of a day or a week without reading every window.
    CREATE TABLE backend_rollups (
        backend TEXT NOT NULL,
        start INTEGER NOT NULL,           -- Unix s, a multiple of 900
        host TEXT NOT NULL,
        requests INTEGER NOT NULL,
        s4xx INTEGER NOT NULL,
        s5xx INTEGER NOT NULL,
        t_total_hist BLOB NOT NULL,
        PRIMARY KEY (backend, start, host)
    ) WITHOUT ROWID;
    INSERT INTO backend_rollups SELECT backend, start - start % 900, host, sum(requests),
        sum(s4xx), sum(s5xx), hist_sum(t_total_hist) FROM windows
        GROUP BY backend, start - start % 900, host;
    -- Each server's latest state line and check line (the writer keeps them):
    -- the fleet, and a restart, without searching a year of events.
    CREATE TABLE server_state (
        host TEXT NOT NULL,
        backend TEXT NOT NULL,
        server TEXT NOT NULL,
        state TEXT,                       -- UP, DOWN, MAINT, … as the line said
        state_ts INTEGER,                 -- Unix ms
        log_ts INTEGER,                   -- of the last state line logged (not reconciled)
        reason TEXT,
        active_left INTEGER,
        backup_left INTEGER,
        check_ts INTEGER,
        check_result TEXT,                -- succeeded, failed, conditionally succeeded
        check_reason TEXT,
        check_code INTEGER,
        check_info TEXT,
        check_duration_ms INTEGER,
        PRIMARY KEY (host, backend, server)
    ) WITHOUT ROWID;
    INSERT INTO server_state (host, backend, server, state, state_ts, log_ts, reason, active_left,
            backup_left)
        SELECT host, proxy, server, new_state, ts, ts, reason, active_left, backup_left FROM (
            SELECT host, proxy, server, new_state, ts, reason, active_left, backup_left,
                row_number() OVER (PARTITION BY host, proxy, server ORDER BY ts DESC, id DESC) AS n
            FROM events WHERE (kind = 'state_change' OR template = 'reconciliation')
                AND new_state IS NOT NULL AND proxy IS NOT NULL AND server IS NOT NULL)
        WHERE n = 1;
    INSERT INTO server_state (host, backend, server, check_ts, check_result, check_reason,
            check_code, check_info, check_duration_ms)
        SELECT host, proxy, server, ts, json_extract(json, '$.result'), reason, code, info,
            check_duration_ms FROM (
            SELECT host, proxy, server, ts, json, reason, code, info, check_duration_ms,
                row_number() OVER (PARTITION BY host, proxy, server ORDER BY ts DESC, id DESC) AS n
            FROM events WHERE kind = 'health_check' AND proxy IS NOT NULL AND server IS NOT NULL)
        WHERE n = 1
        ON CONFLICT (host, backend, server) DO UPDATE SET check_ts = excluded.check_ts,
            check_result = excluded.check_result, check_reason = excluded.check_reason,
            check_code = excluded.check_code, check_info = excluded.check_info,
            check_duration_ms = excluded.check_duration_ms;",
    // 8 → 9: several nodes on one store (used on PostgreSQL; the same here so
    // the schemas stay one list). An event's identity, which node counted each
    // sender's window, the one node deciding, and who holds a row being sent.
    "ALTER TABLE events ADD COLUMN ident BLOB;
    CREATE TABLE window_claims (
        host TEXT NOT NULL,
        span_s INTEGER NOT NULL,
        start INTEGER NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (host, span_s, start)
    ) WITHOUT ROWID;
    CREATE INDEX window_claims_start ON window_claims (start);
    CREATE TABLE cluster_leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        node TEXT NOT NULL,
        holder TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    INSERT INTO cluster_leader VALUES (1, '', '', 0, 0);
    ALTER TABLE outbox ADD COLUMN claim_node TEXT;
    ALTER TABLE outbox ADD COLUMN claim_until INTEGER;",
    // 9 → 10: groups of nodes, each deciding for the load balancers it
    // receives (shards). A lease per group and one for the once-only jobs;
    // the group that decided each incident; ids handed out in blocks, so
    // groups deciding at once never take the same one.
    "CREATE TABLE cluster_leases (
        name TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        holder TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    INSERT INTO cluster_leases SELECT 'decide:default', node, holder, epoch, until FROM cluster_leader;
    DROP TABLE cluster_leader;
    ALTER TABLE incidents ADD COLUMN grp TEXT NOT NULL DEFAULT 'default';
    CREATE TABLE id_blocks (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
    INSERT INTO id_blocks SELECT 'incidents', coalesce(max(id), 0) + 1 FROM incidents;
    INSERT INTO id_blocks SELECT 'outbox', coalesce(max(id), 0) + 1 FROM outbox;",
    // 10 → 11: fail-open. A node's local spool keeps, beside the rows it
    // delivers from, each write it made while the shared store was
    // unreachable (the journal, in order); the shared store remembers which
    // spooled episodes it merged, so a merge is never applied twice.
    "CREATE TABLE spool_journal (
        seq INTEGER PRIMARY KEY,
        episode TEXT NOT NULL,
        op TEXT NOT NULL                  -- JSON: one write, as the writer had it
    );
    CREATE TABLE spool_merges (
        episode TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        merged_at INTEGER NOT NULL,       -- Unix ms
        ops INTEGER NOT NULL,
        duplicates INTEGER NOT NULL       -- events, windows and incidents already there
    );",
];

pub const CURRENT: i64 = MIGRATIONS.len() as i64;

pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
}

pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(err)?;
    let found = version(conn).map_err(err)?;
    if found > CURRENT {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found,
            known: CURRENT,
        });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // Some steps read what is stored (8 sums every window): say why it waits.
        if found > 0 {
            tracing::info!(path = %path.display(), version = n + 1, "migrating the database schema");
        }
        let started = std::time::Instant::now();
        let step = || -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            conn.execute_batch(sql)?;
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [n as i64 + 1],
            )?;
            conn.execute_batch("COMMIT")
        };
        if let Err(e) = step() {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(e));
        }
        tracing::info!(path = %path.display(), version = n + 1, took_ms = started.elapsed().as_millis() as u64, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_8_fills_the_consoles_tables_from_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let conn = Connection::open(&path).unwrap();
        super::super::writer::register_functions(&conn).unwrap();
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .unwrap();
        for (n, sql) in MIGRATIONS[..7].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_version VALUES (?1)", [n as i64 + 1])
                .unwrap();
        }
        let mut h = crate::hist::Histogram::default();
        h.record(7);
        let window = "INSERT INTO windows VALUES (?1, 60, 'lb1', 'fe', 'be', ?2, ?3,
            0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?4, ?4)";
        for (start, server, requests) in [(900, "s1", 3), (960, "s2", 4), (1800, "s1", 5)] {
            conn.execute(
                window,
                rusqlite::params![start, server, requests, h.encode()],
            )
            .unwrap();
        }
        let event = "INSERT INTO events (id, ts, host, kind, template, proxy, server, new_state,
            reason, code, json, raw) VALUES (?1, ?2, 'lb1', ?3, ?3, 'be', 's1', ?4, 'r', 200, ?5, '')";
        for (id, ts, kind, state, json) in [
            (1, 5, "state_change", Some("DOWN"), "{}"),
            (2, 9, "state_change", Some("UP"), "{}"),
            (3, 9, "state_change", Some("MAINT"), "{}"),
            (4, 7, "health_check", None, r#"{"result":"succeeded"}"#),
        ] {
            conn.execute(event, rusqlite::params![id, ts, kind, state, json])
                .unwrap();
        }
        migrate(&conn, &path).unwrap();
        let routes: Vec<(String, i64, i64)> = conn
            .prepare("SELECT server, first_seen, last_seen FROM routes ORDER BY server")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(routes, [("s1".into(), 900, 1800), ("s2".into(), 960, 960)]);
        let rollups: Vec<(i64, i64, Vec<u8>)> = conn
            .prepare("SELECT start, requests, t_total_hist FROM backend_rollups ORDER BY start")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rollups.len(), 2);
        assert_eq!((rollups[0].0, rollups[0].1), (900, 7));
        assert_eq!((rollups[1].0, rollups[1].1), (1800, 5));
        // Two windows' histograms summed: two values of 7 ms.
        let sum = crate::hist::Histogram::decode(&rollups[0].2).unwrap();
        assert_eq!(sum.total(), 2);
        let state: (String, i64, String, i64) = conn
            .query_row(
                "SELECT state, state_ts, check_result, check_ts FROM server_state",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        // Of the two lines of the same millisecond, the last stored.
        assert_eq!(state, ("MAINT".into(), 9, "succeeded".into(), 7));
    }

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let conn = Connection::open(&path).unwrap();
        super::super::writer::register_functions(&conn).unwrap();
        migrate(&conn, &path).unwrap();
        migrate(&conn, &path).unwrap();
        assert_eq!(version(&conn).unwrap(), CURRENT);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, CURRENT);
        conn.execute("INSERT INTO schema_version VALUES (?1)", [CURRENT + 1])
            .unwrap();
        assert!(matches!(
            migrate(&conn, &path),
            Err(StoreError::TooNew { .. })
        ));
    }
}
