//! The run-wide stop: one place that says whether the run must end now, because a
//! termination signal arrived (SIGTERM, SIGINT, SIGHUP, SIGQUIT) or the run reached
//! `max_run_seconds`.
//!
//! The connector runs from cron, unattended: no wait may outlive the run's bound, and a
//! signal must end the run promptly and cleanly (temporary files removed, the report
//! deleted on Qualys, what was confirmed logged). So every wait asks this module: sleeps
//! go through [`sleep`], and blocking socket reads use timeouts no longer than
//! [`slice`] so that they come back to [`check`] often.
//!
//! The state is process-wide because a signal is; unit tests use their own [`StopState`].

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The signals that end a run cleanly, with their numbers on Linux.
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGTERM: i32 = 15;

/// The longest a blocking wait goes without looking at the stop state.
pub const SLICE: Duration = Duration::from_millis(200);

/// Why the run must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A termination signal (its number).
    Signal(i32),
    /// `max_run_seconds` passed (the configured bound).
    Deadline(Duration),
}

impl Stopped {
    /// The signal's name, e.g. `SIGTERM`.
    pub fn signal_name(signal: i32) -> &'static str {
        match signal {
            SIGHUP => "SIGHUP",
            SIGINT => "SIGINT",
            SIGQUIT => "SIGQUIT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Signal(n) => write!(f, "stopped by {}", Stopped::signal_name(*n)),
            Stopped::Deadline(limit) => {
                write!(f, "the run reached max_run_seconds ({} s)", limit.as_secs())
            }
        }
    }
}

impl std::error::Error for Stopped {}

/// A stop state: the signal received (0 = none) and the deadline.
#[derive(Debug)]
pub struct StopState {
    signal: Arc<AtomicUsize>,
    /// Nanoseconds after `origin` at which the run must end; `u64::MAX` = never.
    deadline_nanos: AtomicU64,
    /// The configured bound, for the message.
    limit_secs: AtomicU64,
    origin: Instant,
}

impl Default for StopState {
    fn default() -> Self {
        StopState::new()
    }
}

impl StopState {
    pub fn new() -> StopState {
        StopState {
            signal: Arc::new(AtomicUsize::new(0)),
            deadline_nanos: AtomicU64::new(u64::MAX),
            limit_secs: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// The run must end `limit` after now (a later call replaces an earlier deadline).
    pub fn set_deadline(&self, limit: Duration) {
        let at = self.origin.elapsed().saturating_add(limit);
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX - 1);
        self.limit_secs.store(limit.as_secs(), Ordering::SeqCst);
        self.deadline_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Records `signal` as received, unless one was already (the handler's own action
    /// records the latest; both end the run the same way).
    pub fn raise(&self, signal: i32) {
        let signal = usize::try_from(signal).unwrap_or(usize::MAX);
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why the run must end, if it must. A signal wins over the deadline. Within a
    /// [`grace`] on this thread, the stop is held off until the grace ends.
    pub fn stopped(&self) -> Option<Stopped> {
        if grace_left().is_some_and(|left| !left.is_zero()) {
            return None;
        }
        self.stopped_anyway()
    }

    /// Why the run must end, grace or not.
    fn stopped_anyway(&self) -> Option<Stopped> {
        match self.signal.load(Ordering::SeqCst) {
            0 => {}
            n => return Some(Stopped::Signal(i32::try_from(n).unwrap_or(i32::MAX))),
        }
        let deadline = self.deadline_nanos.load(Ordering::SeqCst);
        if deadline != u64::MAX
            && u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX) >= deadline
        {
            let limit = Duration::from_secs(self.limit_secs.load(Ordering::SeqCst));
            return Some(Stopped::Deadline(limit));
        }
        None
    }

    /// Time left before the deadline (`None`: no deadline). Within a [`grace`] on this
    /// thread, a run that must stop has what is left of the grace, so that socket timeouts
    /// capped by it ([`cap`]) let the grace's work be done.
    pub fn remaining(&self) -> Option<Duration> {
        let real = self.remaining_anyway();
        match grace_left() {
            None => real,
            Some(left) if self.stopped_anyway().is_some() => Some(left),
            Some(left) => real.map(|r| r.max(left)),
        }
    }

    fn remaining_anyway(&self) -> Option<Duration> {
        let deadline = self.deadline_nanos.load(Ordering::SeqCst);
        if deadline == u64::MAX {
            return None;
        }
        Some(Duration::from_nanos(deadline).saturating_sub(self.origin.elapsed()))
    }

    /// Sleeps `duration`, or less when the run must end; then says whether it must.
    pub fn sleep(&self, duration: Duration) -> Result<(), Stopped> {
        let until = Instant::now() + duration;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(SLICE));
        }
    }

    pub fn check(&self) -> Result<(), Stopped> {
        match self.stopped() {
            Some(stopped) => Err(stopped),
            None => Ok(()),
        }
    }
}

thread_local! {
    /// The end of the [`grace`] this thread is in, if any.
    static GRACE_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// What is left of this thread's [`grace`] (`None`: not in one).
fn grace_left() -> Option<Duration> {
    GRACE_UNTIL
        .with(Cell::get)
        .map(|until| until.saturating_duration_since(Instant::now()))
}

/// Runs `work` with the run's stop held off on this thread for at most `within`.
///
/// For the clean-up that a stop itself calls for: deleting the report launched on
/// Qualys (report storage is limited, qualys.md §2) must not be cut short by the very
/// stop that ended the download, yet must not hold a stopping run up for long either.
/// Within it [`check`] says Ok until `within` has passed (then the stop, if there is
/// one), and [`remaining`]/[`cap`]/[`slice`] give the work what is left of `within`.
/// Without a stop, the work runs as usual, bounded by its own timeouts.
pub fn grace<T>(within: Duration, work: impl FnOnce() -> T) -> T {
    /// Puts the outer grace back however `work` ends.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRACE_UNTIL.with(|g| g.set(self.0));
        }
    }
    let until = Instant::now().checked_add(within);
    let _restore = Restore(GRACE_UNTIL.with(|g| g.replace(until)));
    work()
}

fn state() -> &'static StopState {
    static STATE: OnceLock<StopState> = OnceLock::new();
    STATE.get_or_init(StopState::new)
}

/// Makes SIGTERM, SIGINT, SIGHUP and SIGQUIT record themselves instead of killing the
/// process; a second one of them while the run is ending kills it at once (exit 128 +
/// the signal), for an operator who does not want to wait.
pub fn install_signal_handlers() -> std::io::Result<()> {
    let state = state();
    let any = Arc::new(AtomicBool::new(false));
    for signal in [SIGHUP, SIGINT, SIGQUIT, SIGTERM] {
        // Actions run in the order registered: the shutdown looks at `any` before this
        // signal's own action sets it, so only a second signal ends the process.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&any))?;
        signal_hook::flag::register(signal, Arc::clone(&any))?;
        signal_hook::flag::register_usize(
            signal,
            Arc::clone(&state.signal),
            usize::try_from(signal).unwrap_or(usize::MAX),
        )?;
    }
    Ok(())
}

/// Ends the run `limit` from now (`max_run_seconds`).
pub fn set_deadline(limit: Duration) {
    state().set_deadline(limit);
}

/// Why the run must end, if it must.
pub fn stopped() -> Option<Stopped> {
    state().stopped()
}

/// `Err` when the run must end now.
pub fn check() -> Result<(), Stopped> {
    state().check()
}

/// Time left before `max_run_seconds` (`None`: no deadline set).
pub fn remaining() -> Option<Duration> {
    state().remaining()
}

/// Sleeps `duration` or until the run must end.
pub fn sleep(duration: Duration) -> Result<(), Stopped> {
    state().sleep(duration)
}

/// `timeout`, shortened to what is left of the run: for socket timeouts and deadlines.
pub fn cap(timeout: Duration) -> Duration {
    match remaining() {
        Some(left) => timeout.min(left.max(Duration::from_millis(1))),
        None => timeout,
    }
}

/// A socket read timeout for a wait of `timeout`: never longer than [`SLICE`], so the
/// reader comes back to [`check`] often, and never longer than the run has left.
pub fn slice(timeout: Duration) -> Duration {
    cap(timeout.min(SLICE)).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stop_by_default() {
        let s = StopState::new();
        assert_eq!(s.stopped(), None);
        assert_eq!(s.remaining(), None);
        assert!(s.sleep(Duration::from_millis(1)).is_ok());
    }

    #[test]
    fn deadline_passes() {
        let s = StopState::new();
        s.set_deadline(Duration::from_millis(30));
        assert!(
            s.remaining()
                .is_some_and(|r| r <= Duration::from_millis(30))
        );
        let started = Instant::now();
        let got = s.sleep(Duration::from_secs(60));
        assert_eq!(got, Err(Stopped::Deadline(Duration::from_secs(0))));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(s.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn signal_wins_and_the_first_one_counts() {
        let s = StopState::new();
        s.set_deadline(Duration::ZERO);
        s.raise(SIGTERM);
        s.raise(SIGINT);
        assert_eq!(s.stopped(), Some(Stopped::Signal(SIGTERM)));
        assert_eq!(s.check(), Err(Stopped::Signal(SIGTERM)));
    }

    #[test]
    fn a_grace_holds_the_stop_off_for_its_time_only() {
        let s = StopState::new();
        s.raise(SIGTERM);
        let inside = grace(Duration::from_millis(300), || {
            let first = (s.check(), s.remaining());
            // A sleep longer than the grace ends with the grace, with the stop.
            let started = Instant::now();
            let slept = s.sleep(Duration::from_secs(60));
            (first, slept, started.elapsed())
        });
        let ((check, remaining), slept, took) = inside;
        assert_eq!(check, Ok(()));
        assert!(remaining.is_some_and(|r| r > Duration::ZERO && r <= Duration::from_millis(300)));
        assert_eq!(slept, Err(Stopped::Signal(SIGTERM)));
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5));
        // Outside the grace the stop holds at once.
        assert_eq!(s.check(), Err(Stopped::Signal(SIGTERM)));
    }

    #[test]
    fn a_grace_changes_nothing_without_a_stop() {
        let s = StopState::new();
        assert_eq!(grace(Duration::from_millis(1), || s.remaining()), None);
        s.set_deadline(Duration::from_secs(100));
        let remaining = grace(Duration::from_millis(1), || s.remaining());
        assert!(remaining.is_some_and(|r| r > Duration::from_secs(90)));
        // A deadline passed inside the grace: what is left is the grace's.
        s.set_deadline(Duration::ZERO);
        let (check, remaining) = grace(Duration::from_secs(2), || (s.check(), s.remaining()));
        assert_eq!(check, Ok(()));
        assert!(remaining.is_some_and(|r| r > Duration::from_secs(1)));
        assert!(s.check().is_err());
    }

    #[test]
    fn messages() {
        let cases = [
            (Stopped::Signal(SIGTERM), "stopped by SIGTERM"),
            (Stopped::Signal(SIGHUP), "stopped by SIGHUP"),
            (
                Stopped::Deadline(Duration::from_secs(72_000)),
                "the run reached max_run_seconds (72000 s)",
            ),
        ];
        for (stopped, want) in cases {
            assert_eq!(stopped.to_string(), want);
        }
    }
}
