//! The pages as HTML, from their models. Everything is rendered here; the
//! script only localises times, filters and refreshes.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::backend::BackendPage;
use super::chart::Range;
use super::fleet::{BackendRow, FleetPage, Rates, ServerRow};
use super::incidents::{IncidentPage, IncidentRow, IncidentsPage, SINCE};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
/// Seconds between refreshes of a page's live part.
const REFRESH_S: u32 = 5;

/// `/backends/NAME` with the name escaped for a path.
pub fn backend_href(name: &str) -> String {
    format!("/backends/{}", super::query::encode(name))
}

fn utc(ms: i64, format: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// An axis label in UTC (the script shows it in the browser's zone).
pub fn axis_time(ms: i64, date: bool) -> String {
    utc(ms, if date { "%b %d" } else { "%H:%M" })
}

/// A time, absolute and relative: UTC in the HTML, the browser's zone once the script runs.
fn time(ms: i64, now_ms: i64) -> Markup {
    html! {
        time datetime=(crate::timezone::rfc3339(ms)) data-ms=(ms) { (utc(ms, "%Y-%m-%d %H:%M:%S UTC")) }
        " "
        span.rel { "(" (crate::cli::output::relative(ms, now_ms)) ")" }
    }
}

fn layout(title: &str, now_ms: i64, (nav, node): (&str, &str), body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                // No favicon request (and no 404 for it in the browser's console).
                link rel="icon" href="data:,";
                title { (title) " · hapwatch" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "hapwatch" }
                    @if !node.is_empty() { span.dim.node title="[cluster] node" { (node) } }
                    nav aria-label="Pages" {
                        a href="/" aria-current=[(nav == "fleet").then_some("page")] { "Fleet" }
                        a href="/incidents" aria-current=[(nav == "incidents").then_some("page")] { "Incidents" }
                    }
                    span.updated { "Updated " time #updated datetime=(crate::timezone::rfc3339(now_ms)) data-ms=(now_ms) { (utc(now_ms, "%H:%M:%S UTC")) } }
                }
                main { (body) }
                script { (PreEscaped(JS)) }
            }
        }
    }
}

fn state(status: &str, light: &str) -> Markup {
    html! { span class=(format!("state light-{light}")) { (status) } }
}

fn rates(r: &Rates) -> Markup {
    html! {
        td.num { (format!("{:.2}", r.per_s)) }
        td.num { (format!("{:.2}", r.s5xx_pct)) }
        td.num { (r.p95_ms.map_or("-".to_owned(), |p| format!("{p} ms"))) }
    }
}

fn server_row(host: &str, backend: &str, s: &ServerRow, now_ms: i64) -> Markup {
    html! {
        tr class=(format!("light-{}", s.light.as_str()))
            data-host=(host) data-server=(format!("{backend}/{}", s.name)) data-state=(s.status.as_str())
            data-filter=(format!("{host} {backend} {}", s.name)) {
            th scope="row" { (s.name) }
            td {
                (state(s.status.as_str(), s.light.as_str()))
                @if let Some(id) = s.incident { " " a href=(format!("/incidents/{id}")) { "#" (id) } }
            }
            td {
                @match (s.since_ms, s.last_request_ms) {
                    (Some(ms), _) => { (time(ms, now_ms)) }
                    (None, Some(ms)) => { span.dim { "no state line; last request " } (time(ms, now_ms)) }
                    (None, None) => span.dim { "no state line" },
                }
                @if let Some(r) = &s.reason { br; span.dim { (r) } }
            }
            td.wide {
                @match &s.last_check {
                    Some(c) => {
                        (c.result) ": " (c.reason)
                        @if let Some(code) = c.code { ", code " (code) }
                        @if let Some(info) = &c.info { ", \"" (info) "\"" }
                        @if let Some(d) = c.duration_ms { ", " (d) " ms" }
                        br; span.dim { (time(c.at_ms, now_ms)) }
                    }
                    None => span.dim { "none logged" },
                }
            }
            (rates(&s.traffic))
        }
    }
}

fn backend_table(host: &str, b: &BackendRow, now_ms: i64) -> Markup {
    let names: Vec<&str> = b.servers.iter().map(|s| s.name.as_str()).collect();
    html! {
        div.table-wrap data-backend=(b.name) data-filter=(format!("{host} {} {}", b.name, names.join(" "))) {
            table.servers {
                colgroup {
                    col.c-server; col.c-state; col.c-since; col.c-check; col.c-num; col.c-num; col.c-num;
                }
                caption {
                    a href=(backend_href(&b.name)) { (b.name) } " "
                    (state(match b.light { super::fleet::Light::Red => "DOWN", super::fleet::Light::Amber => "DEGRADED", super::fleet::Light::Green | super::fleet::Light::Grey => "OK" }, b.light.as_str()))
                    span.dim {
                        @if let Some(a) = b.active_left { " · " (a) " active" }
                        @if let Some(k) = b.backup_left { ", " (k) " backup left" }
                        " · " (format!("{:.2}", b.traffic.per_s)) " req/s, " (format!("{:.2}", b.traffic.s5xx_pct)) " % 5xx"
                        @if let Some(p) = b.traffic.p95_ms { ", p95 " (p) " ms" }
                    }
                    @for i in &b.incidents {
                        br; span.incident { a href=(format!("/incidents/{}", i.id)) { "#" (i.id) } " " (i.summary) }
                    }
                }
                thead { tr {
                    th scope="col" { "Server" } th scope="col" { "State" } th scope="col" { "Since" }
                    th.wide scope="col" { "Last check" }
                    th.num scope="col" { "req/s" } th.num scope="col" { "5xx %" } th.num scope="col" { "p95" }
                } }
                tbody {
                    @for s in &b.servers { (server_row(host, &b.name, s, now_ms)) }
                    @if b.servers.is_empty() { tr { td.empty colspan="7" { "no server seen yet" } } }
                }
            }
        }
    }
}

/// What the script's filter matches a host section by: every name in it.
fn host_filter(h: &super::fleet::HostRow) -> String {
    let mut names = vec![h.name.clone()];
    for b in &h.backends {
        names.push(b.name.clone());
        names.extend(b.servers.iter().map(|s| s.name.clone()));
    }
    names.join(" ")
}

pub fn fleet(p: &FleetPage, node: &str) -> Markup {
    let body = html! {
        h1 { "Fleet" }
        form.filters method="get" action="/" role="search" {
            label for="filter" { "Filter by host, backend or server"
                input #filter type="search" name="q" value=(p.filter) autocomplete="off";
            }
            button type="submit" { "Filter" }
        }
        div #live data-refresh=(REFRESH_S) {
            p.summary {
                @for (state, n) in &p.counts { span { strong { (n) } " " (state) } }
                span { a href="/incidents" { strong { (p.open_incidents) } " open incident(s)" } }
            }
            @if !p.other_incidents.is_empty() {
                section.other {
                    h2 { "Open, of no load balancer" }
                    @for i in &p.other_incidents {
                        p { a href=(format!("/incidents/{}", i.id)) { "#" (i.id) } " " (i.summary) }
                    }
                }
            }
            @if p.hosts.is_empty() {
                p.empty { "Nothing stored yet: point HAProxy's log at hapwatch (README: Point HAProxy at it)." }
            }
            @for h in &p.hosts {
                section data-host=(h.name) data-filter=(host_filter(h)) {
                    h2 { (state(&h.name, h.light.as_str())) }
                    @for i in &h.incidents {
                        p { a href=(format!("/incidents/{}", i.id)) { "#" (i.id) } " " (i.summary) }
                    }
                    @for b in &h.backends { (backend_table(&h.name, b, p.now_ms)) }
                }
            }
        }
    };
    layout("Fleet", p.now_ms, ("fleet", node), body)
}

fn incident_table(caption: &str, rows: &[IncidentRow], now_ms: i64) -> Markup {
    html! {
        div.table-wrap { table {
            caption { (caption) " " span.dim { "(" (rows.len()) ")" } }
            thead { tr {
                th scope="col" { "#" } th scope="col" { "State" } th.wide scope="col" { "Severity" }
                th scope="col" { "Opened" } th.num scope="col" { "Duration" } th.wide scope="col" { "Host" }
                th scope="col" { "Summary" }
            } }
            tbody {
                @for i in rows {
                    tr class=(format!("light-{}", i.light.as_str())) data-incident=(i.id) data-kind=(i.kind) {
                        th scope="row" { a href=(format!("/incidents/{}", i.id)) { "#" (i.id) } }
                        td { (state(i.state.as_str(), i.light.as_str())) }
                        td.wide { (i.severity) }
                        td { (time(i.opened_ms, now_ms)) }
                        td.num { (crate::figures::compact_duration(i.duration_ms)) }
                        td.wide { (i.host) }
                        td {
                            (i.summary)
                            @if let Some(b) = &i.backend { " " a.dim href=(backend_href(b)) { "[" (b) "]" } }
                        }
                    }
                }
                @if rows.is_empty() { tr { td.empty colspan="7" { "none" } } }
            }
        } }
    }
}

pub fn incidents(p: &IncidentsPage, node: &str) -> Markup {
    let f = &p.filter;
    let body = html! {
        h1 { "Incidents" }
        form.filters method="get" action="/incidents" {
            label { "Backend" input type="text" name="backend" value=(f.backend); }
            label { "Host" input type="text" name="host" value=(f.host); }
            label { "Kind" select name="kind" {
                option value="" selected[f.kind.is_empty()] { "any" }
                @for k in &p.kinds { option value=(k) selected[f.kind == *k] { (k) } }
            } }
            label { "Since" select name="since" {
                @for (name, _) in SINCE { option value=(name) selected[f.since == name] { (name) } }
            } }
            button type="submit" { "Show" }
        }
        div #live data-refresh=(REFRESH_S) {
            (incident_table("Open", &p.open, p.now_ms))
            (incident_table(&format!("Resolved in the last {}", f.since), &p.history, p.now_ms))
            @if p.more { p.dim { "More matched than shown: narrow the filters, or use `hapwatch incidents`." } }
        }
    };
    layout("Incidents", p.now_ms, ("incidents", node), body)
}

pub fn incident(p: &IncidentPage, node: &str) -> Markup {
    let i = &p.incident;
    let now = p.now_ms;
    let body = html! {
        h1 { "#" (i.id) " " (i.summary) }
        div #live data-refresh=(if i.resolved_ms.is_none() { REFRESH_S } else { 0 }) {
            dl.facts {
                dt { "State" } dd { (state(i.state.as_str(), i.light.as_str())) }
                dt { "Kind" } dd { (i.kind) " (" (i.severity) ")" }
                dt { "Host" } dd { (i.host) }
                @if let Some(b) = &i.backend { dt { "Backend" } dd { a href=(backend_href(b)) { (b) } } }
                @if let Some(s) = &i.server { dt { "Server" } dd { (s) } }
                dt { "Opened" } dd { (time(i.opened_ms, now)) }
                dt { "Resolved" } dd {
                    @match i.resolved_ms {
                        Some(r) => { (time(r, now)) " after " (crate::figures::compact_duration(i.duration_ms))
                            @if let Some(why) = &i.resolution { ": " (why) } }
                        None => { "not yet (open for " (crate::figures::compact_duration(i.duration_ms)) ")" }
                    }
                }
                @if let Some(a) = &p.ack { dt { "Acked" } dd { "by " (a.by) " " (time(a.at_ms, now)) ": " (a.reason) } }
                @for (label, line) in &p.evidence { dt { (label) } dd { (line) } }
            }
            h2 { "Timeline" }
            div.table-wrap { table.timeline {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } } }
                tbody {
                    @for (ts, text) in &p.timeline { tr { td { (time(*ts, now)) } td { (text) } } }
                    @if p.timeline.is_empty() { tr { td.empty colspan="2" { "no entries" } } }
                }
            } }
            @if !p.charts.is_empty() {
                h2 { "Traffic around it" }
                @for (n, c) in p.charts.iter().enumerate() { (c.render(&format!("chart{n}"))) }
            }
            @if !p.log_lines.is_empty() {
                h2 { "Log lines before it opened" }
                pre.log { @for l in &p.log_lines { (l.class) "  " (l.server) "  " (l.raw) "\n" } }
            }
            h2 { "Notifications" }
            div.table-wrap { table.deliveries {
                thead { tr {
                    th scope="col" { "Row" } th scope="col" { "Channel" } th scope="col" { "Change" }
                    th scope="col" { "State" } th scope="col" { "Attempts" }
                } }
                tbody {
                    @for d in &p.deliveries {
                        tr data-delivery=(d.id) data-state=(d.state) {
                            th scope="row" { (d.id) }
                            td { (d.channel) }
                            td { (d.status) }
                            td {
                                (d.state)
                                @if let Some(m) = d.message_id { span.dim { " in row " (m) } }
                                @if let Some(n) = &d.note { br; span.dim { (n) } }
                            }
                            td {
                                @if d.attempts.is_empty() {
                                    span.dim { "none yet" }
                                    @if let Some(e) = &d.last_error { br; (e) }
                                }
                                ol.attempts { @for a in &d.attempts {
                                    li data-outcome=(a.outcome) data-node=(a.node) { (time(a.at_ms, now)) " " strong { (a.outcome) } span.dim { " by " (a.node) }
                                        @if let Some(e) = &a.error { ": " (e) } }
                                } }
                            }
                        }
                    }
                    @if p.deliveries.is_empty() { tr { td.empty colspan="5" { "no notification owed (no channel matched, or the log only)" } } }
                }
            } }
        }
    };
    layout(
        &format!("#{} {}", i.id, i.summary),
        now,
        ("incidents", node),
        body,
    )
}

pub fn backend(p: &BackendPage, node: &str) -> Markup {
    let body = html! {
        h1 { "Backend " (p.name) }
        p.ranges { "Span: "
            @for r in Range::ALL {
                a href=(format!("{}?range={}", backend_href(&p.name), r.as_str())) aria-current=[(r == p.range).then_some("true")] { (r.as_str()) }
            }
        }
        div #live data-refresh=(if p.range == Range::Hour { REFRESH_S } else { 0 }) {
            @for h in &p.hosts {
                h2 { "On " (h.name) }
                @for b in &h.backends { (backend_table(&h.name, b, p.now_ms)) }
            }
            @for (n, c) in p.charts.iter().enumerate() { (c.render(&format!("chart{n}"))) }
            (incident_table(&format!("Incidents in the last {}", p.range.as_str()), &p.incidents, p.now_ms))
        }
    };
    layout(&format!("Backend {}", p.name), p.now_ms, ("", node), body)
}

/// A page for what is not there, in the same frame.
pub fn not_found(now_ms: i64, what: &str) -> Markup {
    layout(
        "Not found",
        now_ms,
        ("", ""),
        html! { h1 { "Not found" } p { (what) } p { a href="/" { "Back to the fleet" } } },
    )
}
