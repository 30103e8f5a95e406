//! Progress on a terminal: one status line on stderr for the stage under way (download
//! in bytes, parsing in bytes and hosts, delivery in hosts confirmed), redrawn a few
//! times a second. Nothing at all when stderr is not a terminal (cron, pipes, files).
//!
//! The stages publish counters into atomics; a ticker thread draws them, so the hot
//! paths only do a relaxed atomic store.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the status line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Idle = 0,
    Download = 1,
    Parse = 2,
    Deliver = 3,
}

static STAGE: AtomicU8 = AtomicU8::new(Stage::Idle as u8);
static DONE: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);
static HOSTS: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);
static TICKER: OnceLock<Mutex<Option<JoinHandle<()>>>> = OnceLock::new();
/// Whether a status line is on screen (the logger clears it before writing).
static SHOWN: AtomicBool = AtomicBool::new(false);
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Starts drawing when stderr is a terminal. `allowed` is false when the log itself goes
/// to stderr's terminal in a way the line would garble (never true for cron).
pub fn init(allowed: bool) {
    if !allowed || !std::io::stderr().is_terminal() {
        return;
    }
    ENABLED.store(true, Ordering::Relaxed);
    let handle = std::thread::Builder::new()
        .name("progress".into())
        .spawn(ticker)
        .ok();
    let _ = TICKER.set(Mutex::new(handle));
}

/// Enters a stage; `total` is the expected end of its counter, 0 when unknown.
pub fn stage(stage: Stage, total: u64) {
    DONE.store(0, Ordering::Relaxed);
    HOSTS.store(0, Ordering::Relaxed);
    TOTAL.store(total, Ordering::Relaxed);
    STAGE.store(stage as u8, Ordering::Relaxed);
}

/// The stage's main counter (bytes, or hosts confirmed).
pub fn set(done: u64) {
    DONE.store(done, Ordering::Relaxed);
}

/// `set`, but only while `stage` is the one shown: a parse running behind the download
/// must not overwrite the download's counter.
pub fn set_in(stage: Stage, done: u64) {
    if STAGE.load(Ordering::Relaxed) == stage as u8 {
        DONE.store(done, Ordering::Relaxed);
    }
}

pub fn add(n: u64) {
    DONE.fetch_add(n, Ordering::Relaxed);
}

/// Hosts seen while parsing.
pub fn hosts(n: u64) {
    HOSTS.store(n, Ordering::Relaxed);
}

/// Stops drawing and clears the line.
pub fn finish() {
    if !ENABLED.swap(false, Ordering::Relaxed) {
        return;
    }
    if let Some(lock) = TICKER.get()
        && let Ok(mut handle) = lock.lock()
        && let Some(h) = handle.take()
    {
        let _ = h.join();
    }
    // The final state, however short the run was, then out of the way.
    draw();
    clear();
}

/// Clears the status line so a log line can be written; the ticker redraws it.
pub fn clear() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(b"\r\x1b[K");
    }
}

fn ticker() {
    while ENABLED.load(Ordering::Relaxed) {
        draw();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn draw() {
    let started = *STARTED.get_or_init(Instant::now);
    if let Some(line) = render(
        STAGE.load(Ordering::Relaxed),
        DONE.load(Ordering::Relaxed),
        TOTAL.load(Ordering::Relaxed),
        HOSTS.load(Ordering::Relaxed),
        started.elapsed(),
    ) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
        SHOWN.store(true, Ordering::Relaxed);
    }
}

/// The status line for a stage, or nothing when idle.
fn render(stage: u8, done: u64, total: u64, hosts: u64, elapsed: Duration) -> Option<String> {
    let bar = |done: u64, total: u64| {
        if total == 0 {
            return String::new();
        }
        let width = 30u64;
        let filled = (done.min(total) * width / total) as usize;
        format!(
            "[{}{}] {:>3}% ",
            "#".repeat(filled),
            "-".repeat(width as usize - filled),
            done.min(total) * 100 / total
        )
    };
    let mb = |b: u64| b as f64 / 1e6;
    let text = match stage {
        s if s == Stage::Download as u8 => format!(
            "download {}{:.1} MB{}",
            bar(done, total),
            mb(done),
            if total > 0 {
                format!(" of {:.1} MB", mb(total))
            } else {
                String::new()
            }
        ),
        s if s == Stage::Parse as u8 => format!(
            "parse    {}{:.1} MB, {hosts} hosts",
            bar(done, total),
            mb(done)
        ),
        s if s == Stage::Deliver as u8 => {
            format!("send     {}{done} of {total} hosts done", bar(done, total))
        }
        _ => return None,
    };
    Some(format!(
        "{text}  ({:.0?})",
        Duration::from_secs(elapsed.as_secs())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let t = Duration::from_secs(3);
        let cases = [
            (Stage::Idle, 0, 0, 0, None),
            (
                Stage::Download,
                5_000_000,
                10_000_000,
                0,
                Some("download [###############---------------]  50% 5.0 MB of 10.0 MB  (3s)"),
            ),
            (
                Stage::Download,
                1_500_000,
                0,
                0,
                Some("download 1.5 MB  (3s)"),
            ),
            (
                Stage::Parse,
                10,
                10,
                7,
                Some("parse    [##############################] 100% 0.0 MB, 7 hosts  (3s)"),
            ),
            (
                Stage::Deliver,
                1,
                4,
                0,
                Some("send     [#######-----------------------]  25% 1 of 4 hosts done  (3s)"),
            ),
        ];
        for (stage, done, total, hosts, want) in cases {
            assert_eq!(
                render(stage as u8, done, total, hosts, t).as_deref(),
                want,
                "{stage:?}"
            );
        }
    }
}
