//! A command file that takes no more hosts once the run must stop (a signal or
//! `max_run_seconds`, src/stop.rs).
//!
//! A command file is complete or absent: after a stop the sink refuses the next host, so
//! the file is never finished, and dropping it removes its hidden temporary file; nothing
//! is left under the target name. A file whose every host was written is still
//! completed. (The FMC sink handles the stop itself: the block in flight still has its
//! reply awaited.)

use std::path::{Path, PathBuf};

use crate::hostinput::{CommandSink, Delivery, HostBlock, SinkError};
use crate::stop::{self, Stopped};

/// Says whether the run must stop (`stop::check`; a stand-in in tests).
type Check = fn() -> Result<(), Stopped>;

pub struct UntilStop<S> {
    sink: S,
    target: PathBuf,
    check: Check,
}

impl<S: CommandSink> UntilStop<S> {
    pub fn new(sink: S, target: &Path) -> UntilStop<S> {
        UntilStop::with_check(sink, target, stop::check)
    }

    fn with_check(sink: S, target: &Path, check: Check) -> UntilStop<S> {
        UntilStop {
            sink,
            target: target.to_path_buf(),
            check,
        }
    }

    /// The error a stopped sink gives (the run then reports the stop, with its code).
    fn check(&self) -> Result<(), SinkError> {
        (self.check)().map_err(|stopped| SinkError::Write {
            path: self.target.display().to_string(),
            source: std::io::Error::other(stopped),
        })
    }
}

impl<S: CommandSink> CommandSink for UntilStop<S> {
    fn preamble(&mut self, bytes: &[u8], commands: usize) -> Result<(), SinkError> {
        self.check()?;
        self.sink.preamble(bytes, commands)
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        self.check()?;
        self.sink.host(block)
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostinput::csvfile::CsvFile;

    fn running() -> Result<(), Stopped> {
        Ok(())
    }

    fn terminated() -> Result<(), Stopped> {
        Err(Stopped::Signal(stop::SIGTERM))
    }

    const HOST: HostBlock<'static> = HostBlock {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        commands: 1,
        findings: 0,
        bytes: b"ScanFlush\n",
    };

    #[test]
    fn a_stop_leaves_no_file_and_no_temporary_file() {
        // (check, whether the file is written)
        let cases: [(Check, bool); 2] = [(running, true), (terminated, false)];
        for (check, written) in cases {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("Output.csv");
            let result = {
                let csv = CsvFile::create(&target).unwrap();
                let mut sink = UntilStop::with_check(csv, &target, check);
                sink.preamble(b"SetSource,QualysGuard\n", 1)
                    .and_then(|()| sink.host(&HOST))
                    .and_then(|()| sink.finish())
            };
            assert_eq!(result.is_ok(), written);
            assert_eq!(target.exists(), written);
            let left = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(left, usize::from(written), "no hidden temporary file left");
            if let Err(e) = result {
                assert!(e.to_string().contains("stopped by SIGTERM"), "{e}");
            }
        }
    }
}
