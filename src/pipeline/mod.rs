//! The parse-and-aggregate stage: raw messages in, events and closed windows
//! out to the store. The daemon and `replay` share it; they differ only in
//! which clock closes windows (the wall clock, or the newest line seen).

mod cluster;
mod decide;
mod reconcile;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use hapwatch_parsers::json::record_to_json;
use hapwatch_parsers::{parse_accept_date, Event, Parser, Record, ServerState};

use crate::counters::Stats;
use crate::incidents::fleet::StateSeen;
use crate::incidents::Engine;
use crate::notify::notifier::Notifier;
use crate::route::Routes;
use crate::store::writer::{EventRow, WriteOp};
use crate::timezone::Clock;
use crate::windows::Windows;
use cluster::{Cluster, Decisions};
use decide::{add_evidence, apply, decide, log_event};

/// Events are sent to the store in batches of this size, or at each tick.
const EVENT_BATCH: usize = 256;
/// Parsed messages are added to the shared counters this many at a time, or at each tick.
const COUNT_BATCH: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The daemon: events at receive time, traffic at its accept date.
    Live,
    /// Files: every line at its own time (header date, accept date).
    Replay,
}

pub struct Processor {
    parser: Arc<Parser>,
    clock: Clock,
    /// Every traffic line's names, interned once for the windows, rates and totals.
    routes: Routes,
    /// Lines counted under `_overflow` since the last `publish_counts`.
    over_limits: u64,
    windows: Windows,
    events: Vec<EventRow>,
    store: SyncSender<WriteOp>,
    stats: Arc<Stats>,
    time: TimeSource,
    /// Replay: the newest line time seen, which closes windows, and the last
    /// time known, for lines that carry none.
    newest_ms: i64,
    last_ms: i64,
    /// The wall clock notifications are decided by (a test steps it).
    wall: crate::timezone::WallClock,
    /// Host identity of senders whose header names no host.
    local_host: Box<str>,
    peer_names: HashMap<IpAddr, Box<str>>,
    /// The daemon reports state changes in its log; a replay does not.
    log_events: bool,
    /// (traffic, events) parsed but not yet added to the shared counters.
    counted: (u64, u64),
    /// The daemon's incident engine; a replay has none.
    engine: Option<Engine>,
    /// The last sender reported to the engine as alive and to `reloads`:
    /// (host, worker PID, when).
    seen: (String, Option<u32>, i64),
    /// HAProxy workers by their PIDs.
    reloads: hapwatch_engine::reloads::Reloads,
    /// Where incident changes are notified, and the changes waiting to be grouped.
    notifier: Notifier,
    /// HAProxy's stats readings and the host they describe (daemon, when configured).
    reconcile: Option<crate::reconcile::Latest>,
    /// Totals since start and the view the HTTP endpoints serve (daemon only).
    totals: crate::view::TrafficTotals,
    observed: Option<Arc<crate::view::Observed>>,
    /// Routes seen serving (by the live totals' key), the server list last
    /// published, and the fleet it reflects.
    served: HashMap<crate::view::TotalsKey, crate::view::Route>,
    servers_view: Vec<crate::view::ServerView>,
    published_fleet: u64,
    /// Whether HAProxy's stats can be read, from the reconcile task.
    stats_health: Option<std::sync::mpsc::Receiver<(String, Option<String>)>>,
    /// Channels delivery reports failing or working again (daemon only).
    channel_health: Option<std::sync::mpsc::Receiver<crate::notify::outbox::ChannelHealth>>,
    /// Traffic rules, judged at receive time (daemon only).
    rates: crate::rules::Rates,
    rules: crate::rules::RulesConfig,
    /// Where decisions go: the writer, unless another node decides.
    decisions: Decisions,
    /// Several nodes on one store: what taking the lease needs.
    cluster: Option<Cluster>,
}

impl Processor {
    pub fn new(
        parser: Arc<Parser>,
        config: &crate::config::Config,
        store: SyncSender<WriteOp>,
        stats: Arc<Stats>,
        time: TimeSource,
    ) -> Self {
        Processor {
            parser,
            clock: Clock::new(&config.parse.timezone),
            routes: Routes::new(config.limits.names()),
            over_limits: 0,
            windows: Windows::new(
                config.storage.window,
                config.storage.window_grace,
                config.storage.samples_per_window,
                config.limits.urls,
            ),
            events: Vec::new(),
            store: store.clone(),
            stats,
            time,
            newest_ms: i64::MIN,
            last_ms: crate::timezone::now_ms(),
            wall: crate::timezone::WallClock::system(),
            local_host: crate::config::hostname().into(),
            peer_names: HashMap::new(),
            log_events: time == TimeSource::Live,
            counted: (0, 0),
            engine: None,
            seen: (String::new(), None, i64::MIN),
            reloads: hapwatch_engine::reloads::Reloads::new(config.limits.hosts),
            notifier: Notifier::new(config, 1),
            rates: crate::rules::Rates::default(),
            totals: crate::view::TrafficTotals::new(
                config.limits.routes,
                config.limits.route_idle.as_millis() as i64,
            ),
            observed: None,
            channel_health: None,
            stats_health: None,
            served: Default::default(),
            servers_view: Vec::new(),
            published_fleet: u64::MAX,
            reconcile: None,
            rules: config.rules.clone(),
            decisions: Decisions {
                store: store.clone(),
                role: None,
            },
            cluster: None,
        }
    }

    /// Events and time now also open and resolve incidents; silences are read
    /// from `conn`, and the notifications owed are carried on from the outbox.
    /// Decides notifications (and the digest's schedule) by `wall`.
    pub fn with_wall_clock(mut self, wall: crate::timezone::WallClock) -> Self {
        self.last_ms = wall.now_ms();
        self.notifier.schedule_digest(self.last_ms);
        self.wall = wall;
        self
    }

    pub fn with_engine(
        mut self,
        engine: Engine,
        conn: crate::store::Db,
        outbox: crate::notify::group::Restored,
    ) -> Self {
        self.engine = Some(engine);
        self.notifier.restore(outbox);
        self.notifier.read_silences_from(conn);
        self
    }

    /// Applies a reloaded config's parser and zone (SIGHUP).
    pub fn reconfigure(&mut self, parser: Arc<Parser>, config: &crate::config::Config) {
        self.parser = parser;
        self.clock = Clock::new(&config.parse.timezone);
        self.notifier.reconfigure(config);
        self.rules = config.rules.clone();
        if let Some(c) = &mut self.cluster {
            // The node's place in the cluster (its lease, its group's
            // incidents) is fixed at start: a reload keeps it.
            let cluster = std::mem::take(&mut c.config.cluster);
            if cluster.group != config.cluster.group || cluster.node() != config.cluster.node() {
                tracing::warn!(
                    group = %cluster.group,
                    "[cluster] changed; it takes effect at the next restart"
                );
            }
            c.config = config.clone();
            c.config.cluster = cluster;
        }
    }

    /// One message. `peer` is the sender (None: a local unix socket).
    pub fn handle(
        &mut self,
        bytes: &[u8],
        peer: Option<IpAddr>,
        received_ms: i64,
        oversized: bool,
    ) {
        if oversized {
            self.stats.oversized();
        }
        let parser = self.parser.clone();
        let rec = match parser.parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.stats.parse_error(e.kind, || {
                    let from = peer.map_or_else(|| "local socket".to_owned(), |p| p.to_string());
                    format!(
                        "from {from}: {e}: {:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                    )
                });
                return;
            }
        };
        if matches!(rec.event, Event::Traffic(_)) {
            self.counted.0 += 1;
        } else {
            self.counted.1 += 1;
        }
        if self.counted.0 + self.counted.1 >= COUNT_BATCH {
            self.publish_counts();
        }
        let ts = match &rec.event {
            Event::Traffic(t) => t
                .accept_date
                .and_then(parse_accept_date)
                .and_then(|mut d| {
                    // clf carries the milliseconds apart (`%ms`).
                    if let Some(ms) = t.accept_ms.filter(|_| d.millis == 0) {
                        d.millis = ms.min(999) as u16;
                    }
                    self.clock.accept_ms(&d)
                })
                .unwrap_or_else(|| self.fallback_ms(&rec, received_ms)),
            _ if self.time == TimeSource::Live => self.event_ms(&rec, received_ms),
            _ => self.fallback_ms(&rec, received_ms),
        };
        self.last_ms = ts;
        self.newest_ms = self.newest_ms.max(ts);
        let host = sender(
            rec.envelope.hostname,
            &mut self.peer_names,
            &self.local_host,
            peer,
        );
        if let Some(engine) = &mut self.engine {
            // Once a second per sender run, and when the host or its worker
            // changes: the host's liveness, and whether a new worker took over
            // (the second-by-second look also keeps a steady worker's PID known).
            let pid = rec.envelope.pid;
            if self.seen.0 != host || self.seen.1 != pid || received_ms - self.seen.2 >= 1000 {
                self.seen.0.clear();
                self.seen.0.push_str(host);
                self.seen.1 = pid;
                self.seen.2 = received_ms;
                if let Some(r) = pid.and_then(|pid| self.reloads.seen(host, pid, received_ms)) {
                    if self.decisions.deciding() {
                        on_reload(&mut self.notifier, &mut self.events, host, r, received_ms);
                    }
                }
                let changes = engine.seen(host, received_ms);
                apply(
                    &self.decisions,
                    &mut self.notifier,
                    changes,
                    engine,
                    self.wall.now_ms(),
                );
            }
        }
        match &rec.event {
            Event::Traffic(t) => {
                let route = self.routes.of(host, t);
                let mut over = route.overflowed();
                self.windows
                    .add(route, t, ts, || String::from_utf8_lossy(bytes).into_owned());
                if self.engine.is_some() {
                    let names = &self.routes;
                    self.rates
                        .add(names, route, t, received_ms, self.rules.per_server);
                    over |= self.totals.add(names, route, t, received_ms);
                }
                self.over_limits += u64::from(over);
            }
            _ => {
                if self.log_events {
                    log_event(host, &rec);
                }
                if let Some(c) = &mut self.cluster {
                    c.remember(bytes, peer, received_ms);
                }
                let now = self.wall.now_ms();
                let deciding = (&self.rates, &self.decisions, &mut self.notifier, now);
                decide(&mut self.engine, deciding, host, &rec, ts);
                self.events
                    .push(event_row(&rec, host.to_owned(), ts, bytes));
                if self.events.len() >= EVENT_BATCH {
                    self.send_events();
                }
            }
        }
    }

    /// Time of a line without an accept date: the header's in a replay, else receive time.
    /// A live event's time: the header's, when it is plausibly this sender's
    /// clock (a relay's queue delivered it late), else the receive time.
    fn event_ms(&mut self, rec: &Record<'_>, received_ms: i64) -> i64 {
        rec.envelope
            .timestamp
            .and_then(|t| self.clock.header_ms(t, received_ms))
            .filter(|h| plausible_header(*h, received_ms))
            .unwrap_or(received_ms)
    }

    fn fallback_ms(&mut self, rec: &Record<'_>, received_ms: i64) -> i64 {
        match self.time {
            TimeSource::Live => received_ms,
            TimeSource::Replay => rec
                .envelope
                .timestamp
                .and_then(|t| self.clock.header_ms(t, received_ms))
                .unwrap_or(self.last_ms),
        }
    }

    fn publish_counts(&mut self) {
        let (traffic, events) = std::mem::take(&mut self.counted);
        self.stats.add_parsed(traffic, events);
        self.stats.over_limits.fetch_add(
            std::mem::take(&mut self.over_limits),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A channel that keeps failing becomes an incident (and working again resolves it).
    pub fn with_channel_health(
        mut self,
        rx: std::sync::mpsc::Receiver<crate::notify::outbox::ChannelHealth>,
    ) -> Self {
        self.channel_health = Some(rx);
        self
    }

    fn channel_health(&mut self, now_ms: i64) {
        let (Some(rx), Some(engine)) = (&self.channel_health, &mut self.engine) else {
            return;
        };
        for h in rx.try_iter() {
            let changes =
                engine.on_channel(&self.local_host, &h.channel, h.failing.as_deref(), now_ms);
            apply(
                &self.decisions,
                &mut self.notifier,
                changes,
                engine,
                self.wall.now_ms(),
            );
        }
    }

    /// Publishes what the HTTP endpoints show, each tick.
    pub fn with_observed(mut self, observed: Arc<crate::view::Observed>) -> Self {
        self.observed = Some(observed);
        self
    }

    fn publish(&mut self, now_ms: i64) {
        let (Some(observed), Some(engine)) = (&self.observed, &self.engine) else {
            return;
        };
        // Work in proportion to what changed: the routes touched this second.
        self.totals.expire(now_ms);
        let (changed, forgotten) = self.totals.take_changes();
        let new_routes = changed.iter().any(|(k, _, _)| !self.served.contains_key(k));
        if new_routes || !forgotten.is_empty() || engine.fleet_version() != self.published_fleet {
            for (k, r, _) in &changed {
                if !self.served.contains_key(k) {
                    self.served.insert(*k, r.clone());
                }
            }
            for key in &forgotten {
                self.served.remove(key);
            }
            self.servers_view = servers_view(engine, &self.served);
            self.published_fleet = engine.fleet_version();
        }
        observed.update_traffic(changed, forgotten);
        let mut open_incidents = [0u64; 3];
        for i in engine.open_incidents() {
            open_incidents[i.severity as usize] += 1;
        }
        observed.publish(crate::view::View {
            traffic: Vec::new(),
            servers: self.servers_view.clone(),
            open_incidents,
            updated_ms: now_ms,
        });
    }

    /// The system clock was stepped by `delta_ms`: everything that waits on
    /// received time moves with it (windows follow the logs' own dates).
    pub fn clock_stepped(&mut self, delta_ms: i64) {
        self.seen.2 = self.seen.2.saturating_add(delta_ms);
        self.rates.shift_clock(delta_ms);
        self.notifier.shift_clock(delta_ms);
        if let Some(engine) = &mut self.engine {
            engine.shift_clock(delta_ms);
        }
    }

    /// When grouped notifications are next due, if any wait.
    pub fn next_group_deadline(&self) -> Option<i64> {
        self.notifier.next_deadline()
    }

    /// Sends the groups whose wait is over (`i64::MAX`: all of them).
    pub fn flush_groups(&mut self, now_ms: i64) {
        let due = self.notifier.due(now_ms);
        if !due.is_empty() {
            self.decisions.send(WriteOp::Incidents(Vec::new(), due));
        }
    }

    /// Periodic work: close the windows that are due, send pending events, publish counts.
    pub fn tick(&mut self, now_ms: i64) {
        self.publish_counts();
        self.follow_lease();
        if let Some(engine) = &mut self.engine {
            self.notifier.refresh(now_ms);
            engine.set_muted(self.notifier.muted());
            let mut changes = engine.tick(now_ms);
            let hold = self.rules.hold.as_millis() as i64;
            for (subject, reading) in self.rates.evaluate(&self.rules, now_ms) {
                changes.extend(engine.on_reading(&subject, &reading, now_ms, hold));
            }
            add_evidence(&self.rates, &mut changes);
            apply(
                &self.decisions,
                &mut self.notifier,
                changes,
                engine,
                self.wall.now_ms(),
            );
            if let Some(acked) = self
                .notifier
                .acknowledgements(engine.open_incidents(), now_ms)
            {
                self.decisions.send(acked);
            }
            self.reloads.expire(now_ms);
            let (ended, windows_on) = self.notifier.windows_ended(engine.open_incidents(), now_ms);
            self.stats
                .maintenance_active
                .store(windows_on as u64, std::sync::atomic::Ordering::Relaxed);
            self.stats.silences_active.store(
                self.notifier.silences_active() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            if !ended.is_empty() {
                self.decisions.send(WriteOp::Incidents(Vec::new(), ended));
            }
            let mut reminders = self.notifier.reminders(engine.open_incidents(), now_ms);
            // Once for all groups sharing the store: by the node with the jobs.
            match &self.cluster {
                Some(c) if !c.role.runs_jobs() => self.notifier.skip_digest(now_ms),
                _ => reminders.extend(self.notifier.digest(now_ms)),
            }
            if !reminders.is_empty() {
                self.decisions
                    .send(WriteOp::Incidents(Vec::new(), reminders));
            }
            self.reconcile(now_ms);
            self.channel_health(now_ms);
            self.publish(now_ms);
        }
        let watermark = match self.time {
            TimeSource::Live => now_ms,
            TimeSource::Replay => self.newest_ms,
        };
        let closed = self.windows.close_before(&self.routes, watermark);
        self.send_windows(closed);
        self.send_events();
    }

    /// Closes every window and sends everything (shutdown, end of replay).
    pub fn finish(&mut self) {
        self.publish_counts();
        self.flush_groups(i64::MAX);
        let closed = self.windows.close_all(&self.routes);
        self.send_windows(closed);
        self.send_events();
    }

    fn send_events(&mut self) {
        if !self.events.is_empty() {
            let batch = std::mem::take(&mut self.events);
            // Blocking here backs up into the bounded ingest queue, where drops are counted.
            let _ = self.store.send(WriteOp::Events(batch));
        }
    }

    fn send_windows(&mut self, closed: crate::windows::Closed) {
        if !closed.windows.is_empty() {
            let _ = self.store.send(WriteOp::Windows(closed.windows));
        }
        if !closed.urls.is_empty() {
            let _ = self.store.send(WriteOp::Urls(closed.urls));
        }
    }
}

/// Every server's state the logs told, and servers only seen serving
/// traffic as UP. Rebuilt only when the fleet or the set of routes changed.
fn servers_view(
    engine: &Engine,
    served: &HashMap<crate::view::TotalsKey, crate::view::Route>,
) -> Vec<crate::view::ServerView> {
    let fleet = &engine.fleet().servers;
    let mut servers: Vec<crate::view::ServerView> = fleet
        .iter()
        .filter(|(_, s)| s.state != StateSeen::Never)
        .map(|((host, backend, server), s)| crate::view::ServerView {
            host: host.clone(),
            backend: backend.clone(),
            server: server.clone(),
            state: s.state,
        })
        .collect();
    for r in served.values() {
        let key = (r.host.clone(), r.backend.clone(), r.server.clone());
        let known = fleet.get(&key).is_some_and(|s| s.state != StateSeen::Never);
        if !known && !r.server.starts_with('<') && !r.server.is_empty() && r.host != "_overflow" {
            let (host, backend, server) = key;
            servers.push(crate::view::ServerView {
                host,
                backend,
                server,
                state: StateSeen::Is(ServerState::Up),
            });
        }
    }
    servers
}

/// A header time up to 55 minutes behind the receive time (a relay's disk
/// queue, a restart) and at most 5 s ahead is the log's own time. Further off,
/// it is more likely a header in another zone (HAProxy writes local time
/// without an offset) than a queue: the receive time is then safer.
fn plausible_header(header_ms: i64, received_ms: i64) -> bool {
    let behind = received_ms - header_ms;
    (-5_000..=55 * 60_000).contains(&behind)
}

/// The host a line is from: its header's hostname, else the sender's
/// address (this host for a local socket).
fn sender<'a>(
    hostname: Option<&'a str>,
    names: &'a mut HashMap<IpAddr, Box<str>>,
    local: &'a str,
    peer: Option<IpAddr>,
) -> &'a str {
    if let Some(h) = hostname.filter(|h| *h != "-") {
        return h;
    }
    let Some(ip) = peer else {
        return local;
    };
    if names.len() > 65_536 {
        names.clear();
    }
    names.entry(ip).or_insert_with(|| ip.to_string().into())
}

fn event_row(rec: &Record<'_>, host: String, ts_ms: i64, raw: &[u8]) -> EventRow {
    let mut row = EventRow::bare(
        ts_ms,
        host,
        rec.event.kind(),
        rec.event.template().to_owned(),
        serde_json::Value::Object(record_to_json(rec)).to_string(),
        String::from_utf8_lossy(raw).trim_end().to_owned(),
    );
    match &rec.event {
        Event::HealthCheck(h) => {
            row.proxy = Some(h.proxy.into());
            row.server = Some(h.server.into());
            row.new_state = h.health_state.map(Into::into);
            row.reason = Some(h.reason.into());
            row.code = h.code;
            row.info = h.info.map(Into::into);
            row.check_duration_ms = h.check_duration_ms;
            row.check_result = Some(h.result.as_str());
        }
        Event::StateChange(s) => {
            row.proxy = Some(s.proxy.into());
            row.server = Some(s.server.into());
            row.new_state = s.new_state.map(|x| x.as_str().into());
            row.old_state = s.old_state.map(|x| x.as_str().into());
            row.reason = s.reason.or(s.cause).map(Into::into);
            row.code = s.code;
            row.info = s.info.map(Into::into);
            row.check_duration_ms = s.check_duration_ms;
            row.active_left = s.active_servers;
            row.backup_left = s.backup_servers;
        }
        Event::BackendDown { proxy, .. } => {
            row.proxy = Some((*proxy).into());
            row.new_state = Some("DOWN".into());
            row.active_left = Some(0);
        }
        Event::Other(o) => row.proxy = other_proxy(o).map(Into::into),
        Event::Traffic(_) => {}
    }
    row.ident = Some(identity(
        &row.host,
        raw,
        rec.envelope.timestamp.is_some(),
        ts_ms,
    ));
    row
}

/// An event's identity, the same on every node that received the line: its
/// sender and the line as sent, less the priority (two `log` lines of one
/// HAProxy may differ only in facility). Without a header time the line
/// alone could be a repeat, so the time it was given here is part of it.
fn identity(host: &str, raw: &[u8], header_time: bool, ts_ms: i64) -> [u8; 16] {
    let line = match raw.strip_prefix(b"<") {
        Some(rest) => rest
            .iter()
            .position(|b| *b == b'>')
            .map_or(raw, |end| &rest[end + 1..]),
        None => raw,
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(host.as_bytes());
    ctx.update(b"\0");
    ctx.update(line.trim_ascii_end());
    if !header_time {
        ctx.update(&ts_ms.to_le_bytes());
    }
    let mut ident = [0; 16];
    ident.copy_from_slice(&ctx.finish().as_ref()[..16]);
    ident
}

fn other_proxy<'a>(o: &hapwatch_parsers::Other<'a>) -> Option<&'a str> {
    use hapwatch_parsers::Other::*;
    match o {
        ProxyStopped { proxy, .. }
        | ProxyHardStopped { proxy, .. }
        | ProxyStarted { proxy }
        | ProxyPaused { proxy, .. }
        | ProxyResumed { proxy, .. }
        | ProxyStopping { proxy, .. }
        | ConnectFrom { proxy, .. } => Some(proxy),
        ConnError { frontend, .. } => Some(frontend),
        SoftStopTooLong | Process { .. } => None,
    }
}

/// A new HAProxy worker on `host`: an event to tell of it, and a grace
/// over what opens there while its checks settle and the old one drains.
fn on_reload(
    notifier: &mut Notifier,
    events: &mut Vec<EventRow>,
    host: &str,
    r: hapwatch_engine::reloads::Reload,
    now_ms: i64,
) {
    let message = format!(
        "HAProxy reloaded or restarted: worker {} follows {}",
        r.pid, r.previous
    );
    tracing::info!(host = %crate::escape::escape(host), pid = r.pid, previous = r.previous, "HAProxy reloaded or restarted");
    notifier.reloaded(host, now_ms);
    let json = serde_json::json!({
        "kind": "other", "template": "haproxy_reload", "message": message,
        "pid": r.pid, "previous_pid": r.previous,
    });
    let mut row = EventRow::bare(
        now_ms,
        host.to_owned(),
        "other",
        "haproxy_reload".into(),
        json.to_string(),
        message,
    );
    // Two nodes noticing the same new worker store one reload.
    row.ident = Some(identity(host, row.raw.as_bytes(), true, 0));
    events.push(row);
}
