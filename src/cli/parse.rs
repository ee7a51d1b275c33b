//! `hapwatch parse`: syslog lines in, one JSON object per line out.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hapwatch_parsers::json::{record_to_json, unparsed_to_json};
use hapwatch_parsers::Parser;

#[derive(clap::Args, Debug)]
pub struct ParseArgs {
    /// Files to read (`-` or nothing: standard input).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub formats: crate::parser::FormatArgs,
}

pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let parser = args.formats.build_parser()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    for path in &files {
        let result = if path.as_os_str() == "-" {
            parse_stream(&parser, std::io::stdin().lock(), &mut out)
        } else {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            parse_stream(&parser, std::io::BufReader::new(file), &mut out)
        };
        match result {
            Ok(()) => {}
            // `hapwatch parse … | head` is normal use, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Parses every line; a line that is not UTF-8 is read lossily, so one stray
/// byte does not hide the rest of the message.
pub fn parse_stream(
    parser: &Parser,
    mut input: impl BufRead,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r', '\0']);
        if line.is_empty() {
            continue;
        }
        let obj = match parser.parse_str(line) {
            Ok(rec) => record_to_json(&rec),
            Err(e) => unparsed_to_json(&e, line),
        };
        serde_json::to_writer(&mut *out, &obj)?;
        out.write_all(b"\n")?;
    }
}
