//! `hapwatch replay FILE...`: backfill the store from log files as rsyslog
//! writes them (plain or gzip, `-` for stdin), each line at its own time.
//! A reader thread cuts the input into blocks of whole lines; worker threads
//! parse and aggregate their own windows, which the store merges exactly.

use std::io::{BufReader, IsTerminal as _, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::common::StoreArgs;
use crate::counters::Stats;
use crate::pipeline::{Processor, TimeSource};
use crate::store::writer::Writer;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Log files (plain or .gz); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub formats: crate::parser::FormatArgs,
    /// Parsing threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replay a file this store already took in (it then counts twice).
    #[arg(long)]
    pub force: bool,
}

/// Lines are handed to workers in blocks this large.
const BLOCK: usize = 1 << 20;

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.store.load()?;
    args.formats.apply(&mut config.parse);
    let parser = Arc::new(crate::parser::parser_for(&config.parse)?);
    let db = args.store.location()?;
    // Incident ids and counts are the store's: not while a daemon writes it.
    // (On PostgreSQL, the lock file is this node's daemon's: not while it runs.)
    let lock = db
        .file()
        .map_or_else(|| config.db_path(), Path::to_path_buf);
    let _guard = crate::store::guard::StoreGuard::acquire(&lock)
        .map_err(|e| anyhow::anyhow!("{e}; stop it, or replay into another --db"))?;
    let conn = db.open_write()?;
    let mut prints = Vec::new();
    for path in &args.files {
        let Some(print) = super::replay_after::fingerprint(path)? else {
            continue;
        };
        if let Some((at, was)) = crate::store::replays::replayed_before(&conn, &print)? {
            if !args.force {
                anyhow::bail!(
                    "{} was replayed into {} on {} (as {was}): again, it would count twice; --force to do it anyway",
                    path.display(),
                    db,
                    super::output::local_time(at)
                );
            }
        }
        prints.push((print, path.clone()));
    }
    let events_before = crate::store::replays::last_event(&conn)?;
    // A backfill writes all over the windows index: a larger page cache keeps it hot.
    if let Some(file) = conn.sqlite() {
        file.pragma_update(None, "cache_size", -65_536)?;
    }
    let stats = Arc::new(Stats::default());
    let writer = Writer::spawn(conn, None, stats.writer_counters());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let now = crate::timezone::now_ms();
    let mut workers = Vec::new();
    let mut queues = Vec::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        queues.push(tx);
        let mut p = Processor::new(
            parser.clone(),
            &config,
            writer.tx.clone(),
            stats.clone(),
            TimeSource::Replay,
        );
        workers.push(
            std::thread::Builder::new()
                .name(format!("hapwatch-replay-{i}"))
                .spawn(move || {
                    for block in rx {
                        let mut start = 0;
                        for end in memchr::memchr_iter(b'\n', &block) {
                            let line = &block[start..end];
                            start = end + 1;
                            let line = line.strip_suffix(b"\r").unwrap_or(line);
                            if !line.is_empty() {
                                p.handle(line, None, now, false);
                            }
                        }
                        p.tick(now);
                    }
                    p.finish();
                })
                .context("cannot start a replay thread")?,
        );
    }

    let progress = Progress::new(&args.files);
    let mut next = 0usize;
    let mut read_result = Ok(());
    for path in &args.files {
        let r = read_blocks(path, &progress, |block| {
            // Blocks go round the workers; a full queue is back-pressure, never a drop.
            let _ = queues[next % queues.len()].send(block);
            next += 1;
            let s = stats.snapshot();
            progress.show(s.parsed + s.parse_errors_total(), started);
        });
        if let Err(e) = r {
            read_result = Err(e);
            break;
        }
    }
    drop(queues);
    let crashed = workers
        .into_iter()
        .map(|w| w.join())
        .filter(Result::is_err)
        .count();
    writer.finish();
    progress.clear();
    read_result?;
    if crashed > 0 {
        anyhow::bail!("{crashed} replay thread(s) failed; the store may be incomplete");
    }
    // The incidents of what was replayed, on its own time; nobody is notified.
    let conn = db.open_write()?;
    let changes = super::replay_after::incidents(&conn, events_before, &parser, &config)?;
    let opened = changes
        .iter()
        .filter(|c| matches!(c, crate::incidents::Change::Opened(_)))
        .count();
    // Remembered only when everything was stored: a failed replay may be run again.
    if stats.snapshot().write_errors == 0 {
        for (print, path) in &prints {
            crate::store::replays::record(&conn, print, path, crate::timezone::now_ms())?;
        }
    }
    let incidents_writer = Writer::spawn(conn, None, stats.writer_counters());
    let _ = incidents_writer
        .tx
        .send(crate::store::writer::WriteOp::Incidents(
            changes,
            Vec::new(),
        ));
    incidents_writer.finish();

    let s = stats.snapshot();
    let secs = started.elapsed().as_secs_f64();
    let errors = s.parse_errors_text(", ");
    let rate = s.parsed as f64 + s.parse_errors_total() as f64;
    writeln!(
        std::io::stdout(),
        "replayed {} lines in {:.2}s ({:.0} lines/s): {} traffic into windows, {} events, {} incidents, {} unparsed{}; {} rows written to {}",
        s.parsed + s.parse_errors_total(),
        secs,
        rate / secs.max(1e-9),
        s.traffic,
        s.events,
        opened,
        s.parse_errors_total(),
        if errors.is_empty() { String::new() } else { format!(" ({errors})") },
        s.rows_written,
        db,
    )?;
    if s.write_errors > 0 {
        anyhow::bail!(
            "{} database writes failed; see the messages above",
            s.write_errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a file (gzip when its name ends in .gz or it starts with gzip's magic)
/// and calls `each` with blocks that end on a line boundary.
fn read_blocks(
    path: &Path,
    progress: &Progress,
    mut each: impl FnMut(Vec<u8>),
) -> anyhow::Result<()> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    let mut counted = Counting {
        inner: raw,
        read: progress.read.clone(),
    };
    // Peek at the first bytes for gzip's magic, then put them back in front.
    let mut head = Vec::with_capacity(2);
    (&mut counted)
        .take(2)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    let gz = path.extension().is_some_and(|e| e == "gz") || head.starts_with(&[0x1f, 0x8b]);
    let counted = std::io::Cursor::new(head).chain(counted);
    // No BufReader for plain files: blocks are read straight into their own buffers.
    let mut input: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(counted)))
    } else {
        Box::new(counted)
    };
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut block = std::mem::take(&mut carry);
        block.reserve(BLOCK);
        // `take` + `read_to_end` fills the spare capacity without zeroing it first.
        let n = (&mut input)
            .take(BLOCK as u64)
            .read_to_end(&mut block)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            if !block.is_empty() {
                block.push(b'\n');
                each(block);
            }
            return Ok(());
        }
        // Keep the partial last line for the next block.
        match block.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                carry = block[i + 1..].to_vec();
                block.truncate(i + 1);
                each(block);
            }
            None => carry = block,
        }
    }
}

/// Counts bytes read from the underlying file, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

/// A one-line progress bar on stderr, only when it is a terminal.
struct Progress {
    tty: bool,
    total: u64,
    read: Arc<AtomicU64>,
    last: std::cell::Cell<Option<Instant>>,
}

impl Progress {
    fn new(files: &[PathBuf]) -> Progress {
        let total = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            read: Arc::default(),
            last: std::cell::Cell::new(None),
        }
    }

    fn show(&self, lines: u64, started: Instant) {
        if !self.tty
            || self
                .last
                .get()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last.set(Some(Instant::now()));
        let read = self.read.load(Relaxed);
        let rate = lines as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let bar = if self.total > 0 {
            let done = (read as f64 / self.total as f64).min(1.0);
            let filled = (done * 30.0) as usize;
            format!(
                "[{}{}] {:3.0}% ",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                done * 100.0
            )
        } else {
            String::new()
        };
        eprint!("\r{bar}{lines} lines, {:.0} lines/s ", rate);
    }

    fn clear(&self) {
        if self.tty && self.last.get().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}
