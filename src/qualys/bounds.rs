//! Bounds on one report download as it is written to the temporary file: its size
//! (`max_report_bytes`), its duration (`download_deadline`) and the free space left where
//! it lands (`tmp_min_free`). A server that streams hosts or keep-alive comments forever
//! must end the run with a clear error, not fill TMPDIR or hold the run (qualys.md §4).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Free space is asked every this many bytes written, not per write.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

/// The configured bounds of a download.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_bytes: u64,
    pub deadline: Duration,
    pub min_free: u64,
}

/// A bound that ended a download; carried inside the `io::Error` of the write.
#[derive(Debug, thiserror::Error)]
pub enum Exceeded {
    #[error(
        "the report is larger than max_report_bytes ({max} bytes); raise max_report_bytes if a report this large is expected"
    )]
    Size { max: u64 },
    #[error(
        "the download did not finish within download_deadline ({secs} s); raise download_deadline if the report is this slow to arrive"
    )]
    Deadline { secs: u64 },
    #[error(
        "{} has {free} bytes free, less than tmp_min_free ({min} bytes); free space there or set TMPDIR to a larger file system",
        dir.display()
    )]
    Space { dir: PathBuf, free: u64, min: u64 },
    #[error("cannot tell the free space of {}: {source}", dir.display())]
    SpaceUnknown {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Exceeded {
    /// The bound inside a write error, if a bound caused it.
    pub fn take(error: io::Error) -> Result<Exceeded, io::Error> {
        if error.get_ref().is_some_and(|e| e.is::<Exceeded>()) {
            if let Some(inner) = error.into_inner()
                && let Ok(exceeded) = inner.downcast::<Exceeded>()
            {
                return Ok(*exceeded);
            }
            return Err(io::Error::other("a download bound was exceeded"));
        }
        Err(error)
    }
}

/// A writer that refuses to go past the bounds. `space` is a handle of the file written
/// (for `fstatvfs`), `until` the end of the whole transfer, retries included.
#[derive(Debug)]
pub struct Bounded<'a, W: Write> {
    inner: W,
    space: &'a File,
    dir: PathBuf,
    bounds: Bounds,
    until: Instant,
    written: u64,
    next_space_check: u64,
}

impl<'a, W: Write> Bounded<'a, W> {
    pub fn new(inner: W, space: &'a File, path: &Path, bounds: Bounds, until: Instant) -> Self {
        Bounded {
            inner,
            space,
            dir: path.parent().unwrap_or(path).to_path_buf(),
            bounds,
            until,
            written: 0,
            next_space_check: 0,
        }
    }

    fn check(&mut self, len: usize) -> Result<(), Exceeded> {
        if self.written.saturating_add(len as u64) > self.bounds.max_bytes {
            return Err(Exceeded::Size {
                max: self.bounds.max_bytes,
            });
        }
        if Instant::now() >= self.until {
            return Err(Exceeded::Deadline {
                secs: self.bounds.deadline.as_secs(),
            });
        }
        if self.written >= self.next_space_check {
            self.next_space_check = self.written + SPACE_CHECK_EVERY;
            let free = free_bytes(self.space).map_err(|source| Exceeded::SpaceUnknown {
                dir: self.dir.clone(),
                source,
            })?;
            if free < self.bounds.min_free {
                return Err(Exceeded::Space {
                    dir: self.dir.clone(),
                    free,
                    min: self.bounds.min_free,
                });
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for Bounded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check(buf.len()).map_err(io::Error::other)?;
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes an unprivileged writer may still use on the file's file system.
fn free_bytes(file: &File) -> io::Result<u64> {
    let stat = rustix::fs::fstatvfs(file).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max_bytes: u64, deadline: Duration, min_free: u64) -> Bounds {
        Bounds {
            max_bytes,
            deadline,
            min_free,
        }
    }

    #[test]
    fn each_bound_ends_the_write_and_says_which_key() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        // (bounds, until, bytes written in 1000-byte writes, key named or None)
        let cases = [
            (
                bounds(10_000, Duration::from_secs(3600), 0),
                far,
                10_000,
                None,
            ),
            (
                bounds(9_999, Duration::from_secs(3600), 0),
                far,
                10_000,
                Some("max_report_bytes (9999 bytes)"),
            ),
            (
                bounds(u64::MAX, Duration::from_secs(2), 0),
                Instant::now(),
                1000,
                Some("download_deadline (2 s)"),
            ),
            (
                bounds(u64::MAX, Duration::from_secs(3600), u64::MAX),
                far,
                1000,
                Some("tmp_min_free"),
            ),
        ];
        for (bounds, until, bytes, want) in cases {
            let mut out = Vec::new();
            let mut w = Bounded::new(&mut out, file.as_file(), file.path(), bounds, until);
            let result = (0..bytes / 1000).try_for_each(|_| w.write_all(&[b'x'; 1000]));
            match (result, want) {
                (Ok(()), None) => assert_eq!(out.len() as u64, bytes),
                (Err(e), Some(want)) => {
                    let exceeded = Exceeded::take(e).unwrap();
                    assert!(exceeded.to_string().contains(want), "{exceeded}");
                    if want == "tmp_min_free" {
                        let dir = file.path().parent().unwrap().display().to_string();
                        assert!(exceeded.to_string().contains(&dir), "{exceeded}");
                    }
                }
                (got, want) => panic!("want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn other_write_errors_pass_through() {
        let e = Exceeded::take(io::Error::other("disk on fire")).unwrap_err();
        assert_eq!(e.to_string(), "disk on fire");
    }
}
