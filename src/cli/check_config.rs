//! `hapwatch check-config [FILE]`: validate a config and say what it means.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// The file to check (default: $HAPWATCH_CONFIG; without either, the built-in defaults).
    #[arg(value_name = "FILE", env = "HAPWATCH_CONFIG")]
    pub file: Option<PathBuf>,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.file.as_deref())?;
    // Building the parser checks every log-format and the HAProxy config they come from.
    let parser = crate::formats::parser_for(&config.parse)?;
    let mut out = std::io::stdout().lock();
    let name = args.file.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    writeln!(out, "{name}: OK")?;
    for l in config.listeners() {
        let allow = if l.allow.is_empty() {
            "any sender".to_owned()
        } else {
            format!("{} allowed network(s)", l.allow.len())
        };
        writeln!(out, "  listen    {} ({allow})", l.url)?;
    }
    let s = &config.storage;
    writeln!(out, "  database  {}", config.db_path().display())?;
    writeln!(
        out,
        "  windows   {} (grace {}), kept {}; events kept {}",
        humantime::format_duration(s.window),
        humantime::format_duration(s.window_grace),
        humantime::format_duration(s.retain_windows),
        humantime::format_duration(s.retain_events)
    )?;
    writeln!(out, "  timezone  {}", config.parse.timezone)?;
    for f in parser.custom_formats() {
        writeln!(out, "  format    {}: {}", f.name(), f.source())?;
    }
    Ok(ExitCode::SUCCESS)
}
