//! Builds the message parser from the custom `log-format`s the user gave:
//! strings on the command line or in the config, and a HAProxy config file.

use std::path::{Path, PathBuf};

use hapwatch_parsers::{find_log_formats, LogFormat, Parser};

/// Why the custom formats give no parser.
#[derive(Debug, thiserror::Error)]
pub enum ParserError {
    #[error("cannot read HAProxy config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("in HAProxy config {path}: {source}")]
    HaproxyConfig {
        path: String,
        source: hapwatch_parsers::CfgError,
    },
    #[error("log-format from {origin}: {source}")]
    Compile {
        origin: String,
        source: hapwatch_parsers::FormatError,
    },
}

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
    pub fn build_parser(&self) -> Result<Parser, ParserError> {
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
pub fn parser_for(parse: &crate::config::ParseConfig) -> Result<Parser, ParserError> {
    build_parser(parse.haproxy_config.as_deref(), &parse.log_formats)
}

/// Compiles user formats, naming unnamed ones like the fixtures do
/// (`custom_json` for JSON-looking formats, else `custom`, numbered when repeated).
fn build_parser(haproxy_config: Option<&Path>, extra: &[String]) -> Result<Parser, ParserError> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if let Some(path) = haproxy_config {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ParserError::Read {
            path: shown(),
            source,
        })?;
        let found = find_log_formats(&text).map_err(|source| ParserError::HaproxyConfig {
            path: shown(),
            source,
        })?;
        for found in found {
            let origin = format!("{}:{} ({})", path.display(), found.line, found.section);
            sources.push((found.format, origin));
        }
    }
    for (i, f) in extra.iter().enumerate() {
        sources.push((f.clone(), format!("--log-format #{}", i + 1)));
    }
    let formats = LogFormat::compile_all(sources.iter().map(|(s, _)| s.as_str())).map_err(
        |(i, source)| ParserError::Compile {
            origin: sources[i].1.clone(),
            source,
        },
    )?;
    Ok(Parser::new(formats))
}
