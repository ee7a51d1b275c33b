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
    // the count and the last error), and every route seen.
    "CREATE TABLE delivery_attempts (
        outbox_id INTEGER NOT NULL,
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
        GROUP BY host, backend, server;",
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
        tracing::info!(path = %path.display(), version = n + 1, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let conn = Connection::open(&path).unwrap();
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
