//! Traffic over time as charts: stored windows summed into buckets, then
//! drawn as inline SVG (no script needed), incidents marked on the time axis.

use std::fmt::Write as _;

use crate::store::Db;
use maud::{html, Markup};
use serde::Serialize;

use crate::hist::Histogram;
use crate::store::queries::{self, WindowFilter};
use crate::store::summaries::ROLLUP_S;

/// The spans the backend page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Range {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    pub fn parse(text: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub fn span_ms(self) -> i64 {
        match self {
            Range::Hour => 3_600_000,
            Range::Day => 86_400_000,
            Range::Week => 7 * 86_400_000,
        }
    }

    /// About a hundred points whatever the span.
    pub fn bucket_s(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 900,
            Range::Week => 3600,
        }
    }
}

/// Windows summed per bucket.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub requests: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub t_total: Histogram,
    /// Whether any window fell in it (no window: no line drawn there).
    pub seen: bool,
}

/// Traffic of one backend (or server) from `start_s`, `bucket_s` apart.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub start_s: i64,
    pub bucket_s: i64,
    pub buckets: Vec<Bucket>,
    /// Where the stored windows end (or the chart does): the bucket it
    /// falls in is only covered that far (the window in progress is not stored yet).
    pub covered_until_s: i64,
}

/// Which windows a chart sums.
pub struct Scope<'a> {
    pub host: Option<&'a str>,
    pub backend: &'a str,
    pub server: Option<&'a str>,
}

impl Traffic {
    /// Sums the traffic of `scope` over [since, until) into buckets of at
    /// least `bucket_s` (and of at least a window). A backend's buckets of a
    /// quarter hour or more come from its rollups, the rest from windows.
    pub fn read(
        conn: &Db,
        scope: &Scope<'_>,
        (since_ms, until_ms): (i64, i64),
        bucket_s: i64,
        window_s: i64,
    ) -> crate::store::DbResult<Traffic> {
        // Whole windows per bucket, or the line saw-tooths.
        let window_s = window_s.max(1);
        let bucket_s = (bucket_s.max(window_s) + window_s - 1) / window_s * window_s;
        let start_s = (since_ms / 1000).div_euclid(bucket_s) * bucket_s;
        let until_s = until_ms.div_euclid(1000);
        let n = ((until_s - start_s + bucket_s - 1) / bucket_s).max(1) as usize;
        let mut t = Traffic {
            start_s,
            bucket_s,
            buckets: vec![Bucket::default(); n],
            covered_until_s: start_s,
        };
        let mut add = |start: i64, (requests, s4xx, s5xx): (u64, u64, u64), hist: &[u8]| {
            let i = (start - start_s).div_euclid(bucket_s);
            if let Some(b) = usize::try_from(i).ok().and_then(|i| t.buckets.get_mut(i)) {
                b.requests += requests;
                b.s4xx += s4xx;
                b.s5xx += s5xx;
                b.t_total.merge_encoded(hist);
                b.seen = true;
            }
        };
        // Quarter hours hold whole windows only when a window divides one.
        if scope.server.is_none() && bucket_s % ROLLUP_S == 0 && ROLLUP_S % window_s == 0 {
            queries::for_each_rollup(conn, scope.backend, scope.host, (start_s, until_s), |r| {
                add(r.start, (r.requests, r.s4xx, r.s5xx), r.t_total)
            })?;
        } else {
            let filter = WindowFilter {
                since_s: start_s,
                until_s,
                host: scope.host.map(str::to_owned),
                backend: Some(scope.backend.to_owned()),
                server: scope.server.map(str::to_owned),
                frontend: None,
            };
            queries::for_each_window_started(conn, &filter, |w| {
                let c = &w.counts;
                add(w.start, (c.requests, c.s4xx, c.s5xx), w.t_total)
            })?;
        }
        // Covered as far as the store is, whatever this scope's own last request.
        t.covered_until_s = queries::closed_until(conn)?.unwrap_or(start_s).min(until_s);
        Ok(t)
    }

    /// Seconds of bucket `i` the stored windows cover: all of it, but for
    /// the bucket the latest window ends in.
    fn covered_s(&self, i: usize) -> i64 {
        let start = self.start_s + i as i64 * self.bucket_s;
        (self.covered_until_s - start).clamp(1, self.bucket_s)
    }

    fn series(
        &self,
        name: &'static str,
        class: &'static str,
        f: impl Fn(&Bucket) -> Option<f64>,
    ) -> Series {
        Series {
            name,
            class,
            points: self
                .buckets
                .iter()
                .map(|b| if b.seen { f(b) } else { None })
                .collect(),
        }
    }

    fn chart(&self, title: &'static str, unit: &'static str, series: Vec<Series>) -> Chart {
        Chart {
            title,
            unit,
            start_ms: self.start_s * 1000,
            bucket_ms: self.bucket_s * 1000,
            series,
            marks: Vec::new(),
        }
    }

    pub fn requests(&self) -> Chart {
        let points = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| b.seen.then(|| b.requests as f64 / self.covered_s(i) as f64))
            .collect();
        self.chart(
            "Requests per second",
            "req/s",
            vec![Series {
                name: "req/s",
                class: "s-requests",
                points,
            }],
        )
    }

    pub fn errors(&self) -> Chart {
        let share = |part: fn(&Bucket) -> u64| {
            move |b: &Bucket| (b.requests > 0).then(|| crate::figures::pct(part(b), b.requests))
        };
        self.chart(
            "Errors",
            "%",
            vec![
                self.series("4xx %", "s-4xx", share(|b| b.s4xx)),
                self.series("5xx %", "s-5xx", share(|b| b.s5xx)),
            ],
        )
    }

    pub fn latency(&self) -> Chart {
        let q = |q: f64| move |b: &Bucket| b.t_total.quantile(q).map(|v| v as f64);
        self.chart(
            "Total time (Ta/Tt)",
            "ms",
            vec![
                self.series("p50", "s-p50", q(0.50)),
                self.series("p95", "s-p95", q(0.95)),
                self.series("p99", "s-p99", q(0.99)),
            ],
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: &'static str,
    /// The CSS class that colours it.
    #[serde(skip)]
    pub class: &'static str,
    /// One per bucket; none where no window was stored.
    pub points: Vec<Option<f64>>,
}

/// An incident on the time axis: from its opening to its end (or the chart's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub incident: i64,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    pub title: &'static str,
    pub unit: &'static str,
    pub start_ms: i64,
    pub bucket_ms: i64,
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
}

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

impl Chart {
    pub fn with_marks(mut self, marks: Vec<Mark>) -> Chart {
        self.marks = marks;
        self
    }

    fn end_ms(&self) -> i64 {
        let n = self.series.first().map_or(1, |s| s.points.len().max(1));
        self.start_ms + self.bucket_ms * n as i64
    }

    fn max(&self) -> f64 {
        let top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().flatten())
            .fold(0.0_f64, |a, b| a.max(*b));
        nice_ceiling(top)
    }

    /// A summary for screen readers: each series' latest and highest value.
    fn description(&self) -> String {
        let mut out = String::new();
        for s in &self.series {
            let values: Vec<f64> = s.points.iter().flatten().copied().collect();
            match (values.last(), values.iter().copied().reduce(f64::max)) {
                (Some(last), Some(max)) => {
                    let _ = write!(
                        out,
                        "{}: latest {}, highest {}. ",
                        s.name,
                        short(*last),
                        short(max)
                    );
                }
                _ => {
                    let _ = write!(out, "{}: no traffic stored. ", s.name);
                }
            }
        }
        if !self.marks.is_empty() {
            let _ = write!(out, "{} incident(s) marked.", self.marks.len());
        }
        out
    }

    /// The chart as inline SVG, with a legend in HTML.
    pub fn render(&self, id: &str) -> Markup {
        let (start, end) = (self.start_ms as f64, self.end_ms() as f64);
        let max = self.max();
        let x = |ms: f64| LEFT + (ms - start) / (end - start).max(1.0) * (W - LEFT - RIGHT);
        let y = |v: f64| TOP + (1.0 - v / max.max(f64::MIN_POSITIVE)) * (H - TOP - BOTTOM);
        let half = self.bucket_ms as f64 / 2.0;
        let mut paths = Vec::new();
        for s in &self.series {
            let mut d = String::new();
            // Runs of buckets with a value; a run of one is drawn as a short dash.
            let mut run: Vec<(f64, f64)> = Vec::new();
            let flush = |run: &mut Vec<(f64, f64)>, d: &mut String| {
                match run.as_slice() {
                    [] => {}
                    [(px, py)] => {
                        let _ = write!(d, "M{:.1},{py:.1} L{:.1},{py:.1} ", px - 2.0, px + 2.0);
                    }
                    points => {
                        for (i, (px, py)) in points.iter().enumerate() {
                            let _ = write!(d, "{}{px:.1},{py:.1} ", if i == 0 { "M" } else { "L" });
                        }
                    }
                }
                run.clear();
            };
            for (i, p) in s.points.iter().enumerate() {
                match p {
                    Some(v) => run.push((
                        x(self.start_ms as f64 + i as f64 * self.bucket_ms as f64 + half),
                        y(*v),
                    )),
                    None => flush(&mut run, &mut d),
                }
            }
            flush(&mut run, &mut d);
            paths.push((s, d));
        }
        let ticks = 5;
        let title_id = format!("{id}-title");
        let desc_id = format!("{id}-desc");
        html! {
            figure.chart id=(id) {
                figcaption { (self.title) " " span.unit { "(" (self.unit) ")" } }
                svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
                    title id=(title_id) { (self.title) }
                    desc id=(desc_id) { (self.description()) }
                    @for m in &self.marks {
                        @let from = x((m.from_ms as f64).max(start));
                        @let to = x((m.to_ms.unwrap_or(self.end_ms()) as f64).min(end));
                        a href=(format!("/incidents/{}", m.incident)) {
                            rect.mark x=(format!("{from:.1}")) y=(TOP) width=(format!("{:.1}", (to - from).max(2.0))) height=(H - TOP - BOTTOM) {
                                title { "#" (m.incident) " " (m.label) }
                            }
                        }
                    }
                    @for i in 0..=2 {
                        @let v = max * f64::from(i) / 2.0;
                        line.grid x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) {}
                        text.axis x=(LEFT - 4.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (short(v)) }
                    }
                    @for i in 0..=ticks {
                        @let ms = start + (end - start) * f64::from(i) / f64::from(ticks);
                        text.axis.tick x=(format!("{:.1}", x(ms))) y=(H - 6.0) text-anchor=(match i { 0 => "start", t if t == ticks => "end", _ => "middle" })
                            data-ms=(ms as i64) data-fmt=(if end - start > 2.0 * 86_400_000.0 { "date" } else { "time" }) {
                            (crate::console::html::axis_time(ms as i64, end - start > 2.0 * 86_400_000.0))
                        }
                    }
                    @for (s, d) in &paths {
                        path class=(s.class) d=(d) {}
                    }
                }
                ul.legend {
                    @for s in &self.series {
                        li { span class=(format!("swatch {}", s.class)) aria-hidden="true" {} (s.name) }
                    }
                }
            }
        }
    }
}

/// 1, 2 or 5 times a power of ten at or above `v`, so the axis reads cleanly.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// A figure in at most three significant digits.
pub fn short(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_figures() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(500.0), 500.0);
        assert_eq!(nice_ceiling(501.0), 1000.0);
    }

    #[test]
    fn a_gap_in_the_windows_is_a_gap_in_the_line() {
        let chart = Chart {
            title: "t",
            unit: "req/s",
            start_ms: 0,
            bucket_ms: 60_000,
            series: vec![Series {
                name: "req/s",
                class: "s-requests",
                points: vec![Some(1.0), Some(2.0), None, Some(4.0)],
            }],
            marks: vec![Mark {
                incident: 7,
                from_ms: 60_000,
                to_ms: None,
                label: "server be/s1 is DOWN".into(),
            }],
        };
        let svg = chart.render("c").into_string();
        let d = svg.split("class=\"s-requests\" d=\"").nth(1).unwrap();
        let d = &d[..d.find('"').unwrap()];
        // Two strokes: the pen lifts over the missing bucket; the last point alone is a dash.
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 2, "{d}");
        assert!(svg.contains("href=\"/incidents/7\""), "{svg}");
        assert!(svg.contains("req/s: latest 4, highest 4"), "{svg}");
    }
}
