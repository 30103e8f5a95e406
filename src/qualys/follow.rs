//! Reading a report while it downloads.
//!
//! The download writes the report into a temporary file; a `FollowReader` on another
//! handle of the same file reads behind it, so parsing overlaps the transfer instead of
//! waiting for it (issue: full pipeline within 1.3× of parsing a file). The completeness
//! guarantee stays whole (qualys.md §4): the reader reports the end of the file only when
//! the first attempt's transfer is over, and that parse's own end of document is the
//! [`Verdict`] the download waits for: a document that ends early (a cut right after a
//! CDATA holding `</ASSET_DATA_REPORT>` looks complete from its last bytes) is fetched
//! again. If the transfer is cut and fetched again, or fails, the reader returns an error
//! and the caller parses the finished file again from the start; nothing parsed from an
//! attempt that did not complete is ever used.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The download's side: where the file stands. Shared by the downloading thread (which
/// calls `begin`, `wrote`, `complete`, `close`) and the reader.
#[derive(Debug, Default)]
pub struct Follow {
    state: Mutex<State>,
    changed: Condvar,
    /// Bytes the reader has handed on (for the log: how far behind it ran).
    read: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Attempts begun; the reader follows the first one only.
    attempt: u32,
    /// Bytes of the current attempt on disk.
    written: u64,
    end: End,
    /// A parse follows the first attempt and will give its verdict.
    judged: bool,
    verdict: Option<Verdict>,
}

/// What the parse behind the download found at the end of the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The document ended (its root element closed), or the parser rejected it for what
    /// it holds: fetching again would not change it.
    Ended,
    /// The input ended inside the document: the transfer was cut (the reason says where).
    Cut(String),
    /// The parse could not say (it stopped for another reason, or none followed).
    Undecided,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum End {
    #[default]
    Open,
    /// The attempt's transfer is over and awaits the verdict: the reader may report the
    /// end of the file.
    Transferred,
    /// The attempt's document is complete: the reader may report the end of the file.
    Complete,
    /// The download is over without a complete first attempt.
    Closed,
}

impl Follow {
    pub fn new() -> Follow {
        Follow::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking writer cannot leave the counters half-updated: each is one store.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new attempt starts writing the file from its beginning.
    pub fn begin(&self) {
        let mut s = self.lock();
        s.attempt += 1;
        s.written = 0;
        s.end = End::Open;
        s.verdict = None;
        self.changed.notify_all();
    }

    /// The first attempt's transfer is over and looks complete: the parse behind it reads
    /// to the end, and its verdict comes back. `Undecided` at once when no parse follows
    /// this attempt; waits are sliced so that a stop of the run is seen.
    pub fn transferred(&self) -> Verdict {
        let mut s = self.lock();
        if s.attempt != 1 {
            return Verdict::Undecided;
        }
        // A parse that already stopped (it rejected the document early) has decided.
        if let Some(verdict) = s.verdict.clone() {
            return verdict;
        }
        if !s.judged {
            return Verdict::Undecided;
        }
        s.end = End::Transferred;
        self.changed.notify_all();
        loop {
            if let Some(verdict) = s.verdict.clone() {
                return verdict;
            }
            if crate::stop::check().is_err() {
                return Verdict::Undecided;
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(200))
                .map_or_else(|e| e.into_inner().0, |(s, _)| s);
        }
    }

    /// The parse that follows the first attempt: it gives its verdict through the
    /// returned [`Judge`] (dropping it undecided says `Undecided`).
    pub fn judge(self: &Arc<Self>) -> Judge {
        self.lock().judged = true;
        Judge {
            follow: Arc::clone(self),
            decided: false,
        }
    }

    fn decide(&self, verdict: Verdict) {
        let mut s = self.lock();
        if s.attempt <= 1 && s.verdict.is_none() {
            s.verdict = Some(verdict);
        }
        s.judged = false;
        self.changed.notify_all();
    }

    /// `n` more bytes of the current attempt are in the file.
    pub fn wrote(&self, n: usize) {
        let mut s = self.lock();
        s.written += n as u64;
        self.changed.notify_all();
    }

    /// The current attempt's document was checked complete.
    pub fn complete(&self) {
        let mut s = self.lock();
        s.end = End::Complete;
        self.changed.notify_all();
    }

    /// The download is over (whatever happened): a reader still waiting stops.
    pub fn close(&self) {
        let mut s = self.lock();
        if s.end != End::Complete {
            s.end = End::Closed;
        }
        self.changed.notify_all();
    }

    /// True when the first attempt was the one that completed: what a reader read is the
    /// downloaded report.
    pub fn first_attempt_complete(&self) -> bool {
        let s = self.lock();
        s.attempt == 1 && s.end == End::Complete
    }

    /// Bytes the reader has handed on so far.
    pub fn read_so_far(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// A reader of the file's first attempt; `file` is another handle on the same file
    /// (its own offset: a `try_clone` would share the writer's).
    pub fn reader(self: &Arc<Self>, file: File) -> FollowReader {
        FollowReader {
            follow: Arc::clone(self),
            file,
            pos: 0,
        }
    }
}

/// The parse's side of the verdict ([`Follow::judge`]).
#[derive(Debug)]
pub struct Judge {
    follow: Arc<Follow>,
    decided: bool,
}

impl Judge {
    pub fn decide(mut self, verdict: Verdict) {
        self.decided = true;
        self.follow.decide(verdict);
    }
}

impl Drop for Judge {
    fn drop(&mut self) {
        if !self.decided {
            self.follow.decide(Verdict::Undecided);
        }
    }
}

/// Passes writes to the file and tells the `Follow` about them.
#[derive(Debug)]
pub struct Tapped<'a, W: Write> {
    pub inner: W,
    pub follow: &'a Follow,
}

impl<W: Write> Write for Tapped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.follow.wrote(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the first attempt of a download as it is written; blocks while it has caught up
/// with the download, ends only at a complete document.
#[derive(Debug)]
pub struct FollowReader {
    follow: Arc<Follow>,
    file: File,
    pos: u64,
}

impl FollowReader {
    /// Bytes handed on so far.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

fn superseded() -> io::Error {
    io::Error::other("the download started again: this reading of it is abandoned")
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.follow.lock();
        let available = loop {
            if s.attempt > 1 {
                return Err(superseded());
            }
            if s.attempt == 1 && s.written > self.pos {
                break s.written - self.pos;
            }
            match s.end {
                End::Complete | End::Transferred if s.attempt == 1 => return Ok(0),
                End::Closed => return Err(io::Error::other("the download did not complete")),
                _ => {}
            }
            s = self
                .follow
                .changed
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(s);
        let want = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read(&mut buf[..want])?;
        // A new attempt truncates the file: bytes read across that moment are not this
        // attempt's, so they are checked before being handed on.
        if self.follow.lock().attempt != 1 {
            return Err(superseded());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the downloaded file is shorter than what was written to it",
            ));
        }
        self.pos += n as u64;
        self.follow.read.store(self.pos, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    /// Writes each of `attempts` as one attempt (the last one completes when
    /// `complete_last`), with the reader running beside; returns what the reader got.
    fn follow(attempts: &[&[u8]], complete_last: bool) -> io::Result<Vec<u8>> {
        let named = tempfile::NamedTempFile::new().unwrap();
        // Its own handle, as in the connector: a clone would share the file offset.
        let reader_file = File::open(named.path()).unwrap();
        let mut file = named.reopen().unwrap();
        let follow = Arc::new(Follow::new());
        std::thread::scope(|s| {
            let reading = s.spawn(|| {
                let mut got = Vec::new();
                let mut r = follow.reader(reader_file);
                r.read_to_end(&mut got).map(|_| got)
            });
            for (i, part) in attempts.iter().enumerate() {
                follow.begin();
                file.set_len(0).unwrap();
                file.rewind().unwrap();
                for chunk in part.chunks(3) {
                    let mut t = Tapped {
                        inner: &mut file,
                        follow: &follow,
                    };
                    t.write_all(chunk).unwrap();
                }
                if i + 1 == attempts.len() && complete_last {
                    follow.complete();
                }
            }
            follow.close();
            reading.join().unwrap()
        })
    }

    #[test]
    fn outcomes() {
        // (attempts, last completes, reader's result)
        type Case<'a> = (&'a [&'a [u8]], bool, Result<&'a [u8], &'a str>);
        let table: &[Case] = &[
            (&[b"<A>hello</A>"], true, Ok(b"<A>hello</A>")),
            (&[b""], true, Ok(b"")),
            (&[b"<A>hel"], false, Err("did not complete")),
            (&[b"<A>hel", b"<A>hello</A>"], true, Err("started again")),
            (&[], false, Err("did not complete")),
        ];
        for (attempts, complete, want) in table {
            let got = follow(attempts, *complete);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g.as_slice(), *w, "{attempts:?}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{attempts:?}: {e}"),
                _ => panic!("{attempts:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// The parse behind the first attempt gives the verdict the download waits for; a
    /// later attempt, or no parse at all, is undecided at once.
    #[test]
    fn verdicts() {
        type Case = (&'static str, fn(&Arc<Follow>) -> Verdict, Verdict);
        let cases: [Case; 5] = [
            (
                "the parse decides after the transfer",
                |f| {
                    f.begin();
                    let judge = f.judge();
                    std::thread::scope(|s| {
                        s.spawn(move || judge.decide(Verdict::Cut("cut".into())));
                        f.transferred()
                    })
                },
                Verdict::Cut("cut".into()),
            ),
            (
                "a parse that stopped early has decided",
                |f| {
                    f.begin();
                    f.judge().decide(Verdict::Ended);
                    f.transferred()
                },
                Verdict::Ended,
            ),
            (
                "a parse dropped undecided",
                |f| {
                    f.begin();
                    drop(f.judge());
                    f.transferred()
                },
                Verdict::Undecided,
            ),
            (
                "no parse follows",
                |f| {
                    f.begin();
                    f.transferred()
                },
                Verdict::Undecided,
            ),
            (
                "a second attempt",
                |f| {
                    let _judge = f.judge();
                    f.begin();
                    f.begin();
                    f.transferred()
                },
                Verdict::Undecided,
            ),
        ];
        for (name, run, want) in cases {
            assert_eq!(run(&Arc::new(Follow::new())), want, "{name}");
        }
    }

    #[test]
    fn first_attempt_complete_only_when_it_was_the_first() {
        let f = Arc::new(Follow::new());
        assert!(!f.first_attempt_complete());
        f.begin();
        f.complete();
        assert!(f.first_attempt_complete());
        f.begin();
        f.complete();
        assert!(!f.first_attempt_complete());
    }
}
