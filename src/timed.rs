//! A TCP stream whose every read and write is bounded twice: by an idle timeout (no
//! progress for that long) and by the deadline of the current phase (the whole TLS
//! handshake, one whole FMC reply, one whole download), and that gives up when the run
//! must stop (src/stop.rs).
//!
//! A socket timeout alone bounds one read, not a phase: a relay passing one byte every
//! half second, or an FMC trickling its reply a byte every 3 s, would hold a cron job
//! forever. Here the socket's own timeout is only a short slice ([`stop::SLICE`]) after
//! which the stream looks at the clock and the stop state again. TLS runs on top of this
//! stream, so the bounds hold for the handshake and for every record.
//!
//! The settings live behind a shared [`Timing`] handle, so the owner can change them
//! between phases even when the stream sits inside a TLS session or a boxed stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stop::{self, Stopped};

/// Which bound a timed-out read or write hit (the payload of its `TimedOut` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No byte moved for the idle timeout.
    Idle(Duration),
    /// The phase's deadline passed; the phase lasted this long when it was set.
    Deadline(Duration),
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expired::Idle(d) => write!(f, "nothing received for {} s", secs(*d)),
            Expired::Deadline(d) => write!(f, "not finished within {} s", secs(*d)),
        }
    }
}

impl std::error::Error for Expired {}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s:.1}")
    }
}

/// The bound a timed-out I/O error carries, if it is one of ours.
pub fn expired(e: &io::Error) -> Option<Expired> {
    e.get_ref()?.downcast_ref::<Expired>().copied()
}

/// The stop an I/O error carries, if the run's stop ended it.
pub fn stopped(e: &io::Error) -> Option<Stopped> {
    e.get_ref()?.downcast_ref::<Stopped>().copied()
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    idle: Duration,
    /// The phase's deadline and its length (for the message).
    deadline: Option<(Instant, Duration)>,
    /// After the run is told to stop, keep going this long (the FMC reply in flight);
    /// `None`: give up at once.
    grace: Option<Duration>,
    /// When the stop was first seen by a stream with a grace period.
    stop_seen: Option<Instant>,
}

/// The shared, changeable bounds of one [`TimedStream`].
#[derive(Debug, Clone)]
pub struct Timing(Arc<Mutex<Settings>>);

impl Timing {
    fn lock(&self) -> MutexGuard<'_, Settings> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The longest one read or write may wait for progress.
    pub fn set_idle(&self, idle: Duration) {
        self.lock().idle = idle;
    }

    /// Ends the current phase `within` from now (replacing any earlier deadline).
    pub fn set_deadline(&self, within: Duration) {
        let at = Instant::now().checked_add(within);
        self.lock().deadline = at.map(|at| (at, within));
    }

    pub fn clear_deadline(&self) {
        self.lock().deadline = None;
    }

    /// After a stop, reads and writes carry on for at most `grace` (`None`: stop at once).
    pub fn set_grace(&self, grace: Option<Duration>) {
        self.lock().grace = grace;
    }
}

/// A TCP stream with idle, phase and stop bounds on every read and write.
#[derive(Debug)]
pub struct TimedStream {
    tcp: TcpStream,
    timing: Timing,
    /// The socket timeout last set, to skip repeating the system call.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl TimedStream {
    /// Wraps `tcp` with an idle bound of `idle` and no deadline yet.
    pub fn new(tcp: TcpStream, idle: Duration) -> (TimedStream, Timing) {
        let timing = Timing(Arc::new(Mutex::new(Settings {
            idle,
            deadline: None,
            grace: None,
            stop_seen: None,
        })));
        let stream = TimedStream {
            tcp,
            timing: timing.clone(),
            read_timeout: None,
            write_timeout: None,
        };
        (stream, timing)
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// How long the next wait may last, or why it may not.
    fn next_wait(&self, started: Instant) -> io::Result<Duration> {
        let mut s = self.timing.lock();
        let now = Instant::now();
        if let Some(stopped) = stop::stopped() {
            match s.grace {
                None => return Err(io::Error::other(stopped)),
                Some(grace) => {
                    let seen = *s.stop_seen.get_or_insert(now);
                    if now >= seen + grace {
                        return Err(io::Error::other(stopped));
                    }
                }
            }
        }
        let idle_left = s.idle.saturating_sub(now - started);
        if idle_left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                Expired::Idle(s.idle),
            ));
        }
        let mut wait = idle_left.min(stop::SLICE);
        if let Some((at, length)) = s.deadline {
            let left = at.saturating_duration_since(now);
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    Expired::Deadline(length),
                ));
            }
            wait = wait.min(left);
        }
        Ok(stop::cap(wait).max(Duration::from_millis(1)))
    }
}

/// Whether an I/O error only means "no progress within the slice": try again.
fn is_slice_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Read for TimedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        loop {
            let wait = self.next_wait(started)?;
            if self.read_timeout != Some(wait) {
                self.tcp.set_read_timeout(Some(wait))?;
                self.read_timeout = Some(wait);
            }
            match self.tcp.read(buf) {
                Err(e) if is_slice_timeout(&e) => continue,
                other => return other,
            }
        }
    }
}

impl Write for TimedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let started = Instant::now();
        loop {
            let wait = self.next_wait(started)?;
            if self.write_timeout != Some(wait) {
                self.tcp.set_write_timeout(Some(wait))?;
                self.write_timeout = Some(wait);
            }
            match self.tcp.write(buf) {
                Err(e) if is_slice_timeout(&e) => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair: (the side under test, the peer).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn idle_bound() {
        let (tcp, _peer) = pair();
        let (mut s, _) = TimedStream::new(tcp, Duration::from_millis(300));
        let started = Instant::now();
        let e = s.read(&mut [0u8; 8]).expect_err("no data");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(expired(&e), Some(Expired::Idle(Duration::from_millis(300))));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// A peer trickling a byte every 100 ms never trips the idle bound of 1 s, but the
    /// phase's deadline ends the reading.
    #[test]
    fn deadline_bounds_a_trickle() {
        let (tcp, mut peer) = pair();
        let writer = std::thread::spawn(move || {
            for _ in 0..60 {
                if peer.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (mut s, timing) = TimedStream::new(tcp, Duration::from_secs(1));
        timing.set_deadline(Duration::from_millis(700));
        let started = Instant::now();
        let mut got = 0;
        let e = loop {
            match s.read(&mut [0u8; 1]) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(
            expired(&e),
            Some(Expired::Deadline(Duration::from_millis(700)))
        );
        assert!(got >= 2, "read {got} bytes before the deadline");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(s);
        let _ = writer.join();
    }

    #[test]
    fn data_passes_and_the_deadline_can_be_cleared() {
        let (tcp, mut peer) = pair();
        let (mut s, timing) = TimedStream::new(tcp, Duration::from_secs(5));
        timing.set_deadline(Duration::ZERO);
        assert!(s.read(&mut [0u8; 1]).is_err());
        timing.clear_deadline();
        peer.write_all(b"hello").expect("write");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hello");
        s.write_all(b"back").expect("write back");
        let mut back = [0u8; 4];
        peer.read_exact(&mut back).expect("peer read");
        assert_eq!(&back, b"back");
    }

    #[test]
    fn messages() {
        assert_eq!(
            Expired::Idle(Duration::from_secs(600)).to_string(),
            "nothing received for 600 s"
        );
        assert_eq!(
            Expired::Deadline(Duration::from_millis(2500)).to_string(),
            "not finished within 2.5 s"
        );
    }
}
