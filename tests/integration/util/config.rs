//! Test configs built by name rather than `format!`ed TOML: a store in the
//! test's directory, listeners on port 0 (the ready file gives the ports),
//! channels, and any section by its keys. `write` puts it in
//! `DIR/hapwatch.toml`.

use std::path::{Path, PathBuf};

pub struct ConfigBuilder {
    dir: PathBuf,
    db: PathBuf,
    /// `[section]` → its `key = value` lines, in the order first given.
    sections: Vec<(String, Vec<String>)>,
    /// TOML of the test's own, after the sections.
    raw: String,
    /// Whole `[[listen]]` / `[[channel]]` tables.
    tables: Vec<String>,
}

impl ConfigBuilder {
    /// A store at `DIR/h.db`, nothing else.
    pub fn new(dir: &Path) -> ConfigBuilder {
        ConfigBuilder {
            dir: dir.to_owned(),
            db: dir.join("h.db"),
            sections: Vec::new(),
            raw: String::new(),
            tables: Vec::new(),
        }
    }

    /// Another store file.
    pub fn db(mut self, path: &Path) -> Self {
        self.db = path.to_owned();
        self
    }

    /// `key = value` in `[section]`; `value` is TOML (`"\"0s\""`, `"20"`).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        let line = format!("{key} = {value}");
        match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, lines)) => lines.push(line),
            None => self.sections.push((section.to_owned(), vec![line])),
        }
        self
    }

    /// Whole sections or tables as written, placed before the listeners.
    pub fn toml(mut self, text: &str) -> Self {
        self.raw += text;
        self
    }

    /// A UDP listener on a loopback port the kernel picks.
    pub fn udp(self) -> Self {
        self.listen("udp://127.0.0.1:0", "")
    }

    /// The console, `/healthz` and `/metrics` on a loopback port the kernel picks
    /// (without it, a test's config turns HTTP off).
    pub fn http(self) -> Self {
        self.set("http", "listen", "\"127.0.0.1:0\"")
    }

    /// A `[[listen]]` table: its URL and more of its keys, as TOML lines.
    pub fn listen(mut self, url: &str, extra: &str) -> Self {
        self.tables
            .push(format!("[[listen]]\nurl = {url:?}\n{extra}"));
        self
    }

    /// A webhook channel posting to `http://127.0.0.1:PORT/hook`, plus `extra` keys.
    pub fn webhook(self, name: &str, port: u16, extra: &str) -> Self {
        self.channel(&format!(
            "name = {name:?}\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n{extra}"
        ))
    }

    /// A `[[channel]]` table from its keys as TOML lines, for channels the shortcuts don't cover.
    pub fn channel(mut self, keys: &str) -> Self {
        self.tables.push(format!("[[channel]]\n{keys}"));
        self
    }

    /// An email channel through the relay at `127.0.0.1:PORT`, plus `extra` keys (auth, TLS, addresses).
    pub fn mail(self, name: &str, port: u16, extra: &str) -> Self {
        self.channel(&format!(
            "name = {name:?}\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n{extra}"
        ))
    }

    /// A mail channel to the test relay (util::smtp): its login, its CA, one recipient.
    pub fn relay_mail(self, name: &str, port: u16, ca: &Path) -> Self {
        self.mail(
            name,
            port,
            &format!(
                "username = \"hapwatch\"\npassword = \"s3cret\"\nca_file = {ca:?}\n\
                 from = \"hapwatch@example.org\"\nto = [\"ops@example.org\"]\n"
            ),
        )
    }

    /// The log-formats of the captured fixtures, read in UTC.
    pub fn fixture_formats(self) -> Self {
        let cfg = super::fixture("config/haproxy-default.cfg");
        self.set("parse", "timezone", "\"UTC\"")
            .set("parse", "haproxy_config", &format!("{cfg:?}"))
    }

    pub fn text(&self) -> String {
        let mut out = format!("[storage]\npath = {:?}\n", self.db);
        for (section, lines) in &self.sections {
            if section == "storage" {
                // Joins the table opened above.
                lines.iter().for_each(|l| out += &format!("{l}\n"));
            }
        }
        for (section, lines) in self.sections.iter().filter(|(s, _)| s != "storage") {
            out += &format!("[{section}]\n");
            lines.iter().for_each(|l| out += &format!("{l}\n"));
        }
        // The console is on by default; a test wants it on a port of its own, or not at all.
        if !self.sections.iter().any(|(s, _)| s == "http") && !self.raw.contains("[http]") {
            out += "[http]\nlisten = \"\"\n";
        }
        out += &self.raw;
        for t in &self.tables {
            out += t;
        }
        out
    }

    pub fn write(self) -> PathBuf {
        self.write_as("hapwatch.toml")
    }

    /// Writes to `DIR/NAME` instead, for tests that keep more than one config.
    pub fn write_as(self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, self.text()).unwrap();
        path
    }
}
