//! The web console: fleet status, incidents and backends, read-only from
//! the store. Each page is a typed model (served as JSON with `?format=json`)
//! rendered to HTML on the server; a little script only adds live refresh.

pub mod backend;
pub mod chart;
pub mod fleet;
pub mod html;
pub mod incidents;
pub mod query;

use std::path::PathBuf;

use serde::Serialize;

/// What the console reads.
#[derive(Debug, Clone)]
pub struct Console {
    pub db: PathBuf,
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
    let conn = match crate::store::open_read(&console.db) {
        Ok(c) => c,
        Err(e) => {
            return Page::html(
                503,
                html::not_found(now_ms, &format!("The store cannot be read: {e}")),
            )
        }
    };
    let built = (|| -> rusqlite::Result<Page> {
        if path == "/" {
            let m = fleet::build(&conn, now_ms, &query::get(query, "q"))?;
            return Ok(Page::model(json, &m, html::fleet));
        }
        if path == "/incidents" {
            let filter = incidents::ListFilter {
                backend: query::get(query, "backend"),
                host: query::get(query, "host"),
                kind: query::get(query, "kind"),
                since: query::get(query, "since"),
            };
            let m = incidents::list(&conn, now_ms, filter)?;
            return Ok(Page::model(json, &m, html::incidents));
        }
        if let Some(id) = path.strip_prefix("/incidents/") {
            let found = match id.parse::<i64>() {
                Ok(id) => incidents::one(&conn, now_ms, id)?,
                Err(_) => None,
            };
            return Ok(match found {
                Some(m) => Page::model(json, &m, html::incident),
                None => Page::html(
                    404,
                    html::not_found(now_ms, &format!("No incident #{id} is stored.")),
                ),
            });
        }
        if let Some(name) = path.strip_prefix("/backends/") {
            let name = query::decode(name);
            let range =
                chart::Range::parse(&query::get(query, "range")).unwrap_or(chart::Range::Hour);
            return Ok(match backend::build(&conn, now_ms, &name, range)? {
                Some(m) => Page::model(json, &m, html::backend),
                None => Page::html(
                    404,
                    html::not_found(now_ms, &format!("No backend {name:?} is stored.")),
                ),
            });
        }
        Ok(Page::html(404, html::not_found(now_ms, "No such page.")))
    })();
    built.unwrap_or_else(|e| {
        tracing::warn!(error = %e, path, "console page failed");
        Page::html(
            503,
            html::not_found(now_ms, &format!("The store could not be read: {e}")),
        )
    })
}
