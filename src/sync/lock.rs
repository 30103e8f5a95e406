//! One run per state file: an exclusive `flock` on `<state>.lock`, held for the whole
//! run. The kernel drops it when the process ends, however it ends, so a SIGKILLed run
//! leaves no stale lock. The holder writes its PID into the file so that the run that
//! finds it taken can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the sync state {} is in use by another run{}: wait for it to end (only one run at a time may use a state file)",
        .state.display(),
        .pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
    )]
    Busy { state: PathBuf, pid: Option<u32> },
    #[error("cannot lock the sync state with {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The lock file beside `state`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `state` without waiting.
pub fn acquire(state: &Path) -> Result<StateLock, LockError> {
    let path = lock_path(state);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Busy {
                state: state.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(io(e.into())),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(StateLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sync.db");
        let held = acquire(&state).unwrap();
        let err = acquire(&state).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("(PID {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains("sync.db is in use by another run"), "{text}");
        drop(held);
        assert!(acquire(&state).is_ok());
    }
}
