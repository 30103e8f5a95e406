//! The `-csvfile` sink: writes the exact bytes that would be sent to the FMC into a file
//! (the guide's "CSV" output, host-input.md §4).
//!
//! A regular file appears atomically: commands go to a hidden temporary file in the same
//! directory, which is synced and renamed over the target only when the whole stream has
//! been written. An interrupted or failed run leaves no partial file under the target
//! name (and an existing file there is left as it was). A symbolic link is followed, so
//! the file it points to is replaced, not the link, except a link another user planted
//! in a sticky, world-writable directory (src/files.rs, the link rule). A target that
//! exists and is not a regular file (`/dev/null`, `/dev/stdout`, a pipe) is written
//! directly: renaming over it would destroy it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{CommandSink, Delivery, HostBlock, SinkError};
use crate::files;

/// Commands are written in large blocks: one write per 256 KiB.
const BUFFER: usize = 256 * 1024;

#[derive(Debug)]
pub struct CsvFile {
    target: PathBuf,
    out: Option<Output>,
    delivery: Delivery,
}

#[derive(Debug)]
enum Output {
    /// A temporary file renamed over the target at the end.
    Atomic(BufWriter<tempfile::NamedTempFile>),
    /// A device or pipe, written as it goes.
    Direct(BufWriter<std::fs::File>),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Atomic(w) => w,
            Output::Direct(w) => w,
        }
    }
}

impl CsvFile {
    /// Creates the temporary file beside `target`. Fails early (before any work) when the
    /// directory is missing or not writable, or a link on the way may not be followed.
    pub fn create(target: &Path) -> Result<CsvFile, SinkError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let output = files::create_output(target, &format!(".{name}.")).map_err(|source| {
            SinkError::Write {
                path: target.display().to_string(),
                source,
            }
        })?;
        let (target, out) = match output {
            files::Output::Replace { tmp, target } => (
                target,
                Output::Atomic(BufWriter::with_capacity(BUFFER, tmp)),
            ),
            files::Output::Direct { file, target } => (
                target,
                Output::Direct(BufWriter::with_capacity(BUFFER, file)),
            ),
        };
        Ok(CsvFile {
            target,
            out: Some(out),
            delivery: Delivery::default(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let target = &self.target;
        let out = self.out.as_mut().ok_or_else(|| SinkError::Write {
            path: target.display().to_string(),
            source: std::io::Error::other("the file was already completed"),
        })?;
        out.writer()
            .write_all(bytes)
            .map_err(|source| SinkError::Write {
                path: target.display().to_string(),
                source,
            })?;
        self.delivery.bytes += bytes.len() as u64;
        Ok(())
    }
}

impl CommandSink for CsvFile {
    fn preamble(&mut self, bytes: &[u8], commands: usize) -> Result<(), SinkError> {
        self.write(bytes)?;
        self.delivery.commands += commands as u64;
        Ok(())
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        self.write(block.bytes)?;
        self.delivery.hosts += 1;
        crate::progress::add(1);
        self.delivery.findings += block.findings as u64;
        self.delivery.commands += block.commands as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        let path = self.target.display().to_string();
        let err = |source: std::io::Error| SinkError::Write {
            path: path.clone(),
            source,
        };
        let out = self
            .out
            .take()
            .ok_or_else(|| err(std::io::Error::other("the file was already completed")))?;
        let tmp = match out {
            Output::Atomic(w) => w.into_inner().map_err(|e| err(e.into_error()))?,
            Output::Direct(mut w) => {
                w.flush().map_err(err)?;
                return Ok(self.delivery.clone());
            }
        };
        files::commit(tmp, &self.target).map_err(err)?;
        log::info!("commands written to {}", self.target.display());
        Ok(self.delivery.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("Output.csv");
        let mut sink = CsvFile::create(&target).unwrap();
        sink.preamble(b"SetSource,QualysGuard\n", 1).unwrap();
        sink.host(&HostBlock {
            ip: "192.0.2.1".parse().unwrap(),
            commands: 1,
            findings: 0,
            bytes: b"ScanFlush\n",
        })
        .unwrap();
        assert!(!target.exists(), "no file before finish");
        let delivery = sink.finish().unwrap();
        assert_eq!(delivery.hosts, 1);
        assert_eq!(delivery.commands, 2);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "SetSource,QualysGuard\nScanFlush\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file removed");
    }

    #[test]
    fn dropped_sink_leaves_nothing_and_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("Output.csv");
        std::fs::write(&target, "old\n").unwrap();
        {
            let mut sink = CsvFile::create(&target).unwrap();
            sink.preamble(b"SetSource,QualysGuard\n", 1).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn devices_are_written_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let target = Path::new("/dev/null");
        let mut sink = CsvFile::create(target).unwrap();
        sink.preamble(b"SetSource,QualysGuard\n", 1).unwrap();
        sink.finish().unwrap();
        let meta = std::fs::metadata(target).unwrap();
        assert!(
            meta.file_type().is_char_device(),
            "/dev/null is still a device"
        );
    }

    #[test]
    fn symbolic_links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        let link = dir.path().join("Output.csv");
        std::fs::write(&real, "old\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut sink = CsvFile::create(&link).unwrap();
        sink.preamble(b"SetSource,QualysGuard\n", 1).unwrap();
        sink.finish().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "SetSource,QualysGuard\n"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = CsvFile::create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/Output.csv");
        let err = CsvFile::create(&target).unwrap_err().to_string();
        assert!(err.contains("no/such/dir/Output.csv"), "{err}");
    }
}
