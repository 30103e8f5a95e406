//! Logging to the places the original could log to (guide Table ii-5): standard output by
//! default; standard error, a log file and syslog when asked (`-stderr`, `-logfile`,
//! `-syslog`, any combination; any of them replaces standard output). `-level` sets the
//! threshold: 0 error, 1 warning, 2 info, 3 debug.
//!
//! Warnings and errors are counted so the run's summary can say how many there were.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, LineWriter, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

thread_local! {
    /// Records this thread holds back (`hold`) instead of writing them.
    static HELD: RefCell<Option<Vec<(Level, String)>>> = const { RefCell::new(None) };
}

/// At most this many records are held; past it they are written after all (memory stays
/// bounded; at worst a discarded parse's warnings appear twice).
const HOLD_LIMIT: usize = 1000;

static WARNINGS: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// The local syslog socket; `SYSLOG_SOCKET` in the environment names another (chroots,
/// containers, and the tests' own rsyslogd).
const SYSLOG_SOCKET: &str = "/dev/log";

fn syslog_socket() -> String {
    std::env::var("SYSLOG_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| SYSLOG_SOCKET.to_string())
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// 0 error, 1 warning, 2 info, 3 debug.
    pub level: u8,
    pub stderr: bool,
    pub logfile: Option<PathBuf>,
    pub syslog: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

struct Logger {
    level: LevelFilter,
    stdout: bool,
    stderr: bool,
    file: Option<Mutex<LineWriter<File>>>,
    syslog: Option<UnixDatagram>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish()
    }
}

/// Maps the original's `-level` numbers onto log levels.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Error,
        1 => LevelFilter::Warn,
        2 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    }
}

/// Installs the process-wide logger. Call once, before anything logs.
pub fn init(options: &LogOptions) -> Result<(), LogError> {
    let file = match &options.logfile {
        Some(path) => Some(Mutex::new(LineWriter::new(open_logfile(path)?))),
        None => None,
    };
    let mut syslog_failure = None;
    let socket_path = syslog_socket();
    let syslog = if options.syslog {
        match UnixDatagram::unbound().and_then(|s| s.connect(&socket_path).map(|()| s)) {
            Ok(socket) => Some(socket),
            Err(e) => {
                syslog_failure = Some(e);
                None
            }
        }
    } else {
        None
    };
    // The guide: without Sys::Syslog, logging goes to standard error.
    let stderr = options.stderr || syslog_failure.is_some();
    let stdout = !options.stderr && options.logfile.is_none() && !options.syslog;
    let level = level_filter(options.level);
    let logger = Logger {
        level,
        stdout,
        stderr,
        file,
        syslog,
    };
    // Only fails when a logger is already set, which `init` being called once rules out.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
    if let Some(e) = syslog_failure {
        log::warn!("syslog is not available ({socket_path}: {e}): logging to standard error");
    }
    Ok(())
}

/// Appends to the log file, creating it; links on the way are followed under the link
/// rule (src/files.rs).
fn open_logfile(path: &Path) -> Result<File, LogError> {
    crate::files::open_append(path).map_err(|source| LogError {
        path: path.to_path_buf(),
        source,
    })
}

pub fn warnings() -> u64 {
    WARNINGS.load(Ordering::Relaxed)
}

pub fn errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Whether errors already reach a terminal-like stream (stdout or stderr); when they do
/// not (log file or syslog only), the caller also prints a fatal error to stderr so cron
/// mails it.
pub fn reaches_console(options: &LogOptions) -> bool {
    options.stderr || (options.logfile.is_none() && !options.syslog)
}

/// From now on this thread's log records are held back (up to `HOLD_LIMIT`) until
/// `take_held`: the parse that runs behind a download may be discarded (the transfer was
/// cut and fetched again), and its warnings must not then appear twice.
pub fn hold() {
    HELD.with(|h| *h.borrow_mut() = Some(Vec::new()));
}

/// Stops holding on this thread and returns what was held.
pub fn take_held() -> Held {
    Held(HELD.with(|h| h.borrow_mut().take()).unwrap_or_default())
}

/// Log records held back by `hold`: `emit` writes them (counted then), dropping them
/// discards them.
#[derive(Debug, Default)]
pub struct Held(Vec<(Level, String)>);

impl Held {
    pub fn emit(self) {
        for (level, text) in self.0 {
            log::log!(level, "{text}");
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Logger {
    /// Holds the record when this thread holds records; true when it did. Past the
    /// limit, writes what was held and stops holding.
    fn held(&self, record: &Record<'_>) -> bool {
        let overflow = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let held = h.as_mut()?;
            if held.len() < HOLD_LIMIT {
                held.push((record.level(), record.args().to_string()));
                return Some(None);
            }
            Some(h.take())
        });
        match overflow {
            None => false,
            Some(None) => true,
            Some(Some(records)) => {
                for (level, text) in records {
                    self.log(
                        &Record::builder()
                            .level(level)
                            .args(format_args!("{text}"))
                            .build(),
                    );
                }
                false
            }
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if self.held(record) {
            return;
        }
        match record.level() {
            Level::Warn => {
                WARNINGS.fetch_add(1, Ordering::Relaxed);
            }
            Level::Error => {
                ERRORS.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if !self.enabled(record.metadata()) {
            return;
        }
        // Every record, whatever its origin, loses the configured secrets here.
        let text = record.args().to_string();
        let message = crate::servertext::redact(&text);
        let line = format_line(SystemTime::now(), record.level(), &message);
        // A progress line on the terminal goes out of the way first.
        crate::progress::clear();
        // Logging must never take the job down: write errors are ignored.
        if self.stdout {
            let _ = io::stdout().lock().write_all(line.as_bytes());
        }
        if self.stderr {
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.write_all(line.as_bytes());
        }
        if let Some(socket) = &self.syslog {
            let _ = socket.send(syslog_message(record.level(), &message).as_bytes());
        }
    }

    fn flush(&self) {
        let _ = io::stdout().flush();
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.flush();
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// `2026-11-28T10:16:44Z [INFO] message\n`
fn format_line(now: SystemTime, level: Level, message: &str) -> String {
    format!(
        "{} [{}] {}\n",
        utc_timestamp(now),
        level_name(level),
        message
    )
}

/// RFC 3164 message for the local syslog socket: facility user, the program name and pid.
fn syslog_message(level: Level, message: &str) -> String {
    let severity = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let facility_user = 1;
    format!(
        "<{}>{}[{}]: {}",
        facility_user * 8 + severity,
        crate::cli::PROGRAM,
        std::process::id(),
        message
    )
}

/// ISO 8601 UTC time, computed without a time zone database (civil-from-days).
pub fn utc_timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn held_records_are_bounded_and_written_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let logger = Logger {
            level: LevelFilter::Info,
            stdout: false,
            stderr: false,
            file: Some(Mutex::new(LineWriter::new(open_logfile(&path).unwrap()))),
            syslog: None,
        };
        let record = |n: usize| {
            let text = format!("warning {n}");
            logger.log(
                &Record::builder()
                    .level(Level::Warn)
                    .args(format_args!("{text}"))
                    .build(),
            );
        };
        let written = || std::fs::read_to_string(&path).unwrap().lines().count();
        // Not holding: written at once.
        record(0);
        assert_eq!(written(), 1);
        // Holding: nothing written, up to the limit.
        hold();
        for n in 0..HOLD_LIMIT {
            record(n);
        }
        assert_eq!(written(), 1);
        // Past the limit: everything held is written, and holding stops.
        record(HOLD_LIMIT);
        assert_eq!(written(), 2 + HOLD_LIMIT);
        assert!(take_held().is_empty());
        // A hold taken back and dropped writes nothing.
        hold();
        record(0);
        let held = take_held();
        assert_eq!(held.len(), 1);
        drop(held);
        record(1);
        assert_eq!(written(), 3 + HOLD_LIMIT);
    }

    #[test]
    fn timestamps() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_861_004, "2026-11-28T10:16:44Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn line_and_syslog_formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_861_004);
        assert_eq!(
            format_line(t, Level::Warn, "careful"),
            "2026-11-28T10:16:44Z [WARNING] careful\n"
        );
        let msg = syslog_message(Level::Error, "boom");
        assert!(msg.starts_with("<11>qualys-connector["), "{msg}");
        assert!(msg.ends_with("]: boom"), "{msg}");
    }

    #[test]
    fn levels() {
        let cases = [
            (0, LevelFilter::Error),
            (1, LevelFilter::Warn),
            (2, LevelFilter::Info),
            (3, LevelFilter::Debug),
        ];
        for (n, want) in cases {
            assert_eq!(level_filter(n), want);
        }
    }
}
