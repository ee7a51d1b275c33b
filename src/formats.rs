//! Builds the message parser from the custom `log-format`s the user gave:
//! strings on the command line or in the config, and a HAProxy config file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hapwatch_parsers::{find_log_formats, LogFormat, Parser};

/// The flags that teach hapwatch custom formats, shared by every command that parses.
#[derive(clap::Args, Debug)]
pub struct FormatArgs {
    /// Learn custom formats from the `log-format` directives of this HAProxy config.
    #[arg(long, value_name = "FILE")]
    pub haproxy_config: Option<PathBuf>,
    /// A custom HAProxy `log-format` string (repeatable).
    #[arg(long = "log-format", value_name = "STR")]
    pub log_formats: Vec<String>,
}

impl FormatArgs {
    pub fn build_parser(&self) -> anyhow::Result<Parser> {
        build_parser(self.haproxy_config.as_deref(), &self.log_formats)
    }

    /// Command-line formats add to the config's; a HAProxy config given here replaces its.
    pub fn apply(&self, parse: &mut crate::config::ParseConfig) {
        if let Some(p) = &self.haproxy_config {
            parse.haproxy_config = Some(p.clone());
        }
        parse.log_formats.extend(self.log_formats.iter().cloned());
    }
}

/// The parser a config describes.
pub fn parser_for(parse: &crate::config::ParseConfig) -> anyhow::Result<Parser> {
    build_parser(parse.haproxy_config.as_deref(), &parse.log_formats)
}

/// Compiles user formats, naming unnamed ones like the fixtures do
/// (`custom_json` for JSON-looking formats, else `custom`, numbered when repeated).
fn build_parser(haproxy_config: Option<&Path>, extra: &[String]) -> anyhow::Result<Parser> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if let Some(path) = haproxy_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read HAProxy config {}", path.display()))?;
        for found in find_log_formats(&text)
            .with_context(|| format!("in HAProxy config {}", path.display()))?
        {
            let origin = format!("{}:{} ({})", path.display(), found.line, found.section);
            sources.push((found.format, origin));
        }
    }
    for (i, f) in extra.iter().enumerate() {
        sources.push((f.clone(), format!("--log-format #{}", i + 1)));
    }
    let formats = LogFormat::compile_all(sources.iter().map(|(s, _)| s.as_str()))
        .map_err(|(i, e)| anyhow::anyhow!("log-format from {}: {e}", sources[i].1))?;
    Ok(Parser::new(formats))
}
