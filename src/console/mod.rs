//! The web console: fleet status, incidents and backends, read-only from
//! the store. Each page is a typed model (served as JSON with `?format=json`)
//! rendered to HTML on the server; a little script only adds live refresh.

pub mod backend;
pub mod chart;
pub mod fleet;
pub mod html;
pub mod incidents;
pub mod query;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What the console reads.
#[derive(Debug, Clone)]
pub struct Console {
    pub location: crate::store::Location,
    /// `[cluster] node`, named in every page's header.
    pub node: String,
    /// `[storage] window`, in seconds: rates divide by the time windows cover.
    pub window_s: i64,
}

/// Page builds at once: each is a read of the store on a blocking thread, and
/// the daemon's runtime has two; more requests wait their turn.
const BUILDS: usize = 2;
/// A page answered again within this is not rebuilt: tabs refreshing every
/// few seconds, or a burst of clients, cost one read of the store.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Pages kept for reuse at most (one per path and query).
const CACHED: usize = 64;

/// The console as the HTTP server uses it: builds bounded, recent pages reused.
pub struct Pages {
    console: Console,
    builds: Arc<tokio::sync::Semaphore>,
    recent: Mutex<HashMap<String, (Instant, Page)>>,
}

impl Pages {
    pub fn new(console: Console) -> Arc<Pages> {
        Arc::new(Pages {
            console,
            builds: Arc::new(tokio::sync::Semaphore::new(BUILDS)),
            recent: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &str) -> Option<Page> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .get(key)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, page)| page.clone())
    }

    /// The page at `path`, built on a blocking thread (or reused from the last second).
    pub async fn get(self: &Arc<Self>, path: &str, query: Option<&str>, now_ms: i64) -> Page {
        let key = format!("{path}?{}", query.unwrap_or(""));
        let json = query::get(query, "format") == "json";
        if let Some(page) = self.cached(&key) {
            return page;
        }
        // Owned and moved into the build: a client that leaves does not free
        // the slot while its build still runs.
        let Ok(permit) = self.builds.clone().acquire_owned().await else {
            return Page::error(json, 503, now_ms, "shutting down");
        };
        // Built by whoever held the permit before us.
        if let Some(page) = self.cached(&key) {
            return page;
        }
        let (me, path, query) = (self.clone(), path.to_owned(), query.map(str::to_owned));
        let page = tokio::task::spawn_blocking(move || {
            let _held = permit;
            page(&me.console, &path, query.as_deref(), now_ms)
        })
        .await
        .unwrap_or_else(|e| Page::error(json, 500, now_ms, &format!("page failed: {e}")));
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= CACHED {
            recent.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
        }
        if recent.len() < CACHED {
            recent.insert(key, (Instant::now(), page.clone()));
        }
        page
    }
}

/// A page as HTTP sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    fn html(status: u16, markup: maud::Markup) -> Page {
        Page {
            status,
            content_type: "text/html; charset=utf-8",
            body: markup.into_string(),
        }
    }

    fn json(model: &impl Serialize) -> Page {
        Page {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_string(model)
                .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string())),
        }
    }

    /// A page for what went wrong: JSON when JSON was asked for.
    fn error(json: bool, status: u16, now_ms: i64, what: &str) -> Page {
        if json {
            return Page {
                status,
                content_type: "application/json",
                body: serde_json::json!({ "error": what }).to_string(),
            };
        }
        Page::html(status, html::not_found(now_ms, what))
    }

    fn model<M: Serialize>(json: bool, model: &M, render: impl FnOnce(&M) -> maud::Markup) -> Page {
        if json {
            Page::json(model)
        } else {
            Page::html(200, render(model))
        }
    }
}

/// Whether a path is one of the console's.
pub fn serves(path: &str) -> bool {
    path == "/"
        || path == "/incidents"
        || path.starts_with("/incidents/")
        || path.starts_with("/backends/")
}

/// Builds the page at `path`; a store that cannot be read is a 503 saying why.
pub fn page(console: &Console, path: &str, query: Option<&str>, now_ms: i64) -> Page {
    let json = query::get(query, "format") == "json";
    let conn = match console.location.open_read() {
        Ok(c) => c,
        Err(e) => return Page::error(json, 503, now_ms, &format!("The store cannot be read: {e}")),
    };
    let built = (|| -> crate::store::DbResult<Page> {
        if path == "/" {
            let m = fleet::build(&conn, now_ms, &query::get(query, "q"), console.window_s)?;
            return Ok(Page::model(json, &m, |m| html::fleet(m, &console.node)));
        }
        if path == "/incidents" {
            let filter = incidents::ListFilter {
                backend: query::get(query, "backend"),
                host: query::get(query, "host"),
                kind: query::get(query, "kind"),
                since: query::get(query, "since"),
            };
            let m = incidents::list(&conn, now_ms, filter)?;
            return Ok(Page::model(json, &m, |m| html::incidents(m, &console.node)));
        }
        if let Some(id) = path.strip_prefix("/incidents/") {
            let found = match id.parse::<i64>() {
                Ok(id) => incidents::one(&conn, now_ms, id, console.window_s)?,
                Err(_) => None,
            };
            return Ok(match found {
                Some(m) => Page::model(json, &m, |m| html::incident(m, &console.node)),
                None => Page::error(json, 404, now_ms, &format!("No incident #{id} is stored.")),
            });
        }
        if let Some(name) = path.strip_prefix("/backends/") {
            let name = query::decode(name);
            let range =
                chart::Range::parse(&query::get(query, "range")).unwrap_or(chart::Range::Hour);
            return Ok(
                match backend::build(&conn, now_ms, &name, range, console.window_s)? {
                    Some(m) => Page::model(json, &m, |m| html::backend(m, &console.node)),
                    None => Page::error(
                        json,
                        404,
                        now_ms,
                        &format!("No backend {name:?} is stored."),
                    ),
                },
            );
        }
        Ok(Page::error(json, 404, now_ms, "No such page."))
    })();
    built.unwrap_or_else(|e| {
        tracing::warn!(error = %e, path, "console page failed");
        Page::error(
            json,
            503,
            now_ms,
            &format!("The store could not be read: {e}"),
        )
    })
}
