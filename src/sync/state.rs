//! The sync state: one SQLite file (WAL mode, inspectable with `sqlite3`) holding, per
//! destination, per host address, the fingerprint of what the FMC last confirmed for that
//! host, and the history of runs.
//!
//! A row without a fingerprint is a host that was (or is being) sent and not confirmed:
//! it is never skipped, and it still counts as held by the FMC for the vanished-host
//! check. The file is checked when it is opened; one that cannot be read is moved aside
//! and a new one started (the run is then a full sync), one written by a newer version is
//! refused, never overwritten.

use std::fs::{self, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::destination::Destination;
use super::fingerprint::Fingerprint;
use super::lock::{self, LockError, StateLock};

/// The schema this version writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Test hook: a page limit on the state file, so that tests can fill it like a full disk
/// (SQLite then fails writes with "database or disk is full", as on a full file system).
pub const MAX_PAGES_ENV: &str = "QUALYS_CONNECTOR_TEST_STATE_MAX_PAGES";

const SCHEMA: &str = "
CREATE TABLE destination (
    id INTEGER PRIMARY KEY,
    fmc TEXT NOT NULL,
    ca_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    scope TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (fmc, ca_sha256, source, scope)
);
CREATE TABLE host (
    destination INTEGER NOT NULL REFERENCES destination (id),
    ip TEXT NOT NULL,
    fingerprint BLOB,
    confirmed INTEGER,
    PRIMARY KEY (destination, ip)
) WITHOUT ROWID;
CREATE TABLE run (
    id INTEGER PRIMARY KEY,
    destination INTEGER NOT NULL REFERENCES destination (id),
    started INTEGER NOT NULL,
    ended INTEGER,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT,
    unchanged INTEGER,
    new INTEGER,
    changed INTEGER,
    vanished INTEGER,
    cleared INTEGER,
    tracked INTEGER
);
CREATE INDEX run_by_destination ON run (destination, kind, outcome, started);
";

/// Tables added within schema 1, created when missing (older files lack them).
const SCHEMA_ADDITIONS: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    destination INTEGER PRIMARY KEY REFERENCES destination (id),
    at TEXT NOT NULL
);
";

/// Why the state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(
        "the sync state {} was written by a newer version of qualys-connector (schema {found}, this version knows {SCHEMA_VERSION}): it is left as it is; use the newer version, or another sync_state file",
        .path.display()
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("the sync state {}: {reason}", .path.display())]
    Unsafe { path: PathBuf, reason: String },
    #[error("the sync state {}: cannot {action}: {message}", .path.display())]
    Failed {
        path: PathBuf,
        action: &'static str,
        message: String,
    },
}

/// How the file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Created,
    Existing,
    /// It could not be read: moved to `moved_to`, a new one started.
    Recovered {
        moved_to: PathBuf,
        why: String,
    },
}

/// What the state holds for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Not tracked.
    Nothing,
    /// Sent, not confirmed: no fingerprint.
    Pending,
    Confirmed(Fingerprint),
}

/// One run's record, for the history and `check`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    pub started: u64,
    pub kind: String,
    pub reason: String,
    pub outcome: Option<String>,
}

/// One destination as `check` shows it.
#[derive(Debug, Clone)]
pub struct DestinationInfo {
    pub destination: Destination,
    pub hosts: u64,
    pub confirmed: u64,
    pub last_full: Option<RunRecord>,
    pub last_delta: Option<RunRecord>,
}

/// An open state file.
pub struct State {
    conn: Connection,
    path: PathBuf,
    pub opened: Opened,
    /// Warnings to log (a file other users can read, a file moved aside).
    pub warnings: Vec<String>,
    _lock: Option<StateLock>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("path", &self.path)
            .field("opened", &self.opened)
            .finish()
    }
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An SQLite integer (SQLite has no unsigned 64-bit type).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl State {
    /// Opens (creating it if missing) the state at `path` for a run that writes it:
    /// locked for the run, checked, moved aside and started again if unreadable.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let mut warnings = Vec::new();
        check_permissions(path, &mut warnings)?;
        let lock = lock::acquire(path)?;
        let (conn, opened) = match path.exists() {
            false => (create(path)?, Opened::Created),
            true => match open_existing(path, false) {
                Ok(conn) => (conn, Opened::Existing),
                Err(Unreadable::Newer(found)) => {
                    return Err(StateError::NewerSchema {
                        path: path.to_path_buf(),
                        found,
                    });
                }
                Err(Unreadable::Io(e)) => return Err(e),
                Err(Unreadable::Corrupt(why)) => {
                    let moved_to = move_aside(path)?;
                    warnings.push(format!(
                        "the sync state {} cannot be read ({why}): moved to {}, and a new state is started; this run is a full sync",
                        path.display(),
                        moved_to.display()
                    ));
                    (create(path)?, Opened::Recovered { moved_to, why })
                }
            },
        };
        test_page_limit(&conn, path)?;
        Ok(State {
            conn,
            path: path.to_path_buf(),
            opened,
            warnings,
            _lock: Some(lock),
        })
    }

    /// Opens the state only to read it (`-delta-csv`, `check`): never created, moved or
    /// written; `None` when there is none or it cannot be read (then every host is new).
    pub fn open_read_only(path: &Path) -> Result<(Option<State>, Vec<String>), StateError> {
        let mut warnings = Vec::new();
        check_permissions(path, &mut warnings)?;
        if !path.exists() {
            return Ok((None, warnings));
        }
        match open_existing(path, true) {
            Ok(conn) => Ok((
                Some(State {
                    conn,
                    path: path.to_path_buf(),
                    opened: Opened::Existing,
                    warnings: Vec::new(),
                    _lock: None,
                }),
                warnings,
            )),
            Err(Unreadable::Newer(found)) => Err(StateError::NewerSchema {
                path: path.to_path_buf(),
                found,
            }),
            Err(Unreadable::Io(e)) => Err(e),
            Err(Unreadable::Corrupt(why)) => {
                warnings.push(format!(
                    "the sync state {} cannot be read ({why}): every host counts as new",
                    path.display()
                ));
                Ok((None, warnings))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state's database, for tables that belong with it (the detection path's
    /// KnowledgeBase cache): their writes join the state's transactions.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn failed(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |e| StateError::Failed {
            path: self.path.clone(),
            action,
            message: e.to_string(),
        }
    }

    /// The destination's row ID, and whether it is new to this state; `None` when the
    /// state is read-only and does not know it.
    pub fn destination(
        &self,
        d: &Destination,
        create: bool,
    ) -> Result<Option<(i64, bool)>, StateError> {
        let fail = self.failed("read the destinations");
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM destination WHERE fmc = ?1 AND ca_sha256 = ?2 AND source = ?3 AND scope = ?4",
                params![d.fmc, d.ca_sha256, d.source, d.scope],
                |r| r.get(0),
            )
            .optional()
            .map_err(&fail)?;
        match (found, create) {
            (Some(id), _) => Ok(Some((id, false))),
            (None, false) => Ok(None),
            (None, true) => {
                self.conn
                    .execute(
                        "INSERT INTO destination (fmc, ca_sha256, source, scope, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![d.fmc, d.ca_sha256, d.source, d.scope, int(unix(SystemTime::now()))],
                    )
                    .map_err(self.failed("record the destination"))?;
                Ok(Some((self.conn.last_insert_rowid(), true)))
            }
        }
    }

    /// What the state holds for `ip` at `dest`.
    pub fn held(&self, dest: i64, ip: IpAddr) -> Result<Held, StateError> {
        let row: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT fingerprint FROM host WHERE destination = ?1 AND ip = ?2")
            .and_then(|mut s| {
                s.query_row(params![dest, ip.to_string()], |r| r.get(0))
                    .optional()
            })
            .map_err(self.failed("read a host"))?;
        Ok(match row {
            None => Held::Nothing,
            Some(None) => Held::Pending,
            Some(Some(bytes)) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(fp) => Held::Confirmed(fp),
                // Not a fingerprint this version wrote: never trusted.
                Err(_) => Held::Pending,
            },
        })
    }

    pub fn begin(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.failed("start a transaction"))
    }

    /// A transaction that takes no write lock until it writes (a preview writes only
    /// the temporary table).
    pub fn begin_deferred(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(self.failed("start a transaction"))
    }

    pub fn commit(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(self.failed("write (commit)"))
    }

    /// After a failed statement inside a transaction: undo it (errors ignored: the
    /// transaction may already be gone).
    pub fn rollback(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    /// Forgets the hosts seen so far (a new report starts).
    pub fn reset_seen(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("DELETE FROM temp.seen")
            .map_err(self.failed("start the list of the report's hosts"))
    }

    /// Records `ip` as seen in this run's report; false when it already was (a host the
    /// report lists more than once).
    pub fn mark_seen(&self, ip: IpAddr) -> Result<bool, StateError> {
        let n = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO temp.seen (ip) VALUES (?1)")
            .and_then(|mut s| s.execute(params![ip.to_string()]))
            .map_err(self.failed("record a host of the report"))?;
        Ok(n == 1)
    }

    /// The host is about to be sent: its fingerprint is removed (the row stays, so a host
    /// whose delivery fails is still known to be on the FMC).
    pub fn mark_pending(&self, dest: i64, ip: IpAddr) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO host (destination, ip, fingerprint) VALUES (?1, ?2, NULL)
                 ON CONFLICT (destination, ip) DO UPDATE SET fingerprint = NULL",
            )
            .and_then(|mut s| s.execute(params![dest, ip.to_string()]))
            .map_err(self.failed("record a host being sent"))?;
        Ok(())
    }

    /// The FMC confirmed the host: its new fingerprint.
    pub fn confirm(
        &self,
        dest: i64,
        ip: IpAddr,
        fp: &Fingerprint,
        at: u64,
    ) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "UPDATE host SET fingerprint = ?3, confirmed = ?4 WHERE destination = ?1 AND ip = ?2",
            )
            .and_then(|mut s| s.execute(params![dest, ip.to_string(), &fp[..], int(at)]))
            .map_err(self.failed("record a confirmed host"))?;
        Ok(())
    }

    /// The host is no longer tracked (cleared and confirmed).
    pub fn forget(&self, dest: i64, ip: IpAddr) -> Result<(), StateError> {
        self.conn
            .prepare_cached("DELETE FROM host WHERE destination = ?1 AND ip = ?2")
            .and_then(|mut s| s.execute(params![dest, ip.to_string()]))
            .map_err(self.failed("forget a cleared host"))?;
        Ok(())
    }

    /// A full sync starts: no fingerprint of the destination is trusted any more.
    pub fn forget_fingerprints(&self, dest: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE host SET fingerprint = NULL WHERE destination = ?1",
                params![dest],
            )
            .map_err(self.failed("start a full sync"))?;
        Ok(())
    }

    /// A full sync ended with every host confirmed: hosts not in its report are dropped
    /// (`vanished_hosts: keep` leaves them on the FMC; the state no longer tracks them).
    pub fn forget_unseen(&self, dest: i64) -> Result<u64, StateError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM host WHERE destination = ?1 AND ip NOT IN (SELECT ip FROM temp.seen)",
                params![dest],
            )
            .map_err(self.failed("replace the destination's hosts"))?;
        Ok(n as u64)
    }

    /// Hosts of `dest`.
    pub fn tracked(&self, dest: i64) -> Result<u64, StateError> {
        self.count("SELECT count(*) FROM host WHERE destination = ?1", dest)
    }

    /// Hosts of `dest` this run's report did not list.
    pub fn unseen(&self, dest: i64) -> Result<u64, StateError> {
        self.count(
            "SELECT count(*) FROM host WHERE destination = ?1 AND ip NOT IN (SELECT ip FROM temp.seen)",
            dest,
        )
    }

    fn count(&self, sql: &str, dest: i64) -> Result<u64, StateError> {
        let n: i64 = self
            .conn
            .query_row(sql, params![dest], |r| r.get(0))
            .map_err(self.failed("count hosts"))?;
        Ok(n.max(0) as u64)
    }

    /// Up to `limit` unseen hosts of `dest` after `after` (in the state's order).
    pub fn unseen_page(
        &self,
        dest: i64,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ip FROM host WHERE destination = ?1 AND ip > ?2
                 AND ip NOT IN (SELECT ip FROM temp.seen) ORDER BY ip LIMIT ?3",
            )
            .map_err(self.failed("list vanished hosts"))?;
        let rows = stmt
            .query_map(params![dest, after, limit], |r| r.get::<_, String>(0))
            .map_err(self.failed("list vanished hosts"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.failed("list vanished hosts"))
    }

    /// When the last full sync of `dest` that ended with every host confirmed started.
    pub fn last_successful_full(&self, dest: i64) -> Result<Option<u64>, StateError> {
        let t: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(started) FROM run WHERE destination = ?1 AND kind = 'full' AND outcome = 'success'",
                params![dest],
                |r| r.get(0),
            )
            .map_err(self.failed("read the run history"))?;
        Ok(t.map(|t| t.max(0) as u64))
    }

    /// The detection path's checkpoint of `dest` (Qualys's clock when the last complete
    /// pull started), if any.
    pub fn checkpoint(&self, dest: i64) -> Result<Option<String>, StateError> {
        let found = self
            .conn
            .query_row(
                "SELECT at FROM checkpoint WHERE destination = ?1",
                params![dest],
                |r| r.get(0),
            )
            .optional();
        match found {
            Ok(at) => Ok(at),
            // A read-only file from before the table: no checkpoint.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
                Ok(None)
            }
            Err(e) => Err(self.failed("read the checkpoint")(e)),
        }
    }

    /// Moves the checkpoint of `dest` to `at` (only after a complete, confirmed pull).
    pub fn set_checkpoint(&self, dest: i64, at: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO checkpoint (destination, at) VALUES (?1, ?2)
                 ON CONFLICT (destination) DO UPDATE SET at = ?2",
                params![dest, at],
            )
            .map_err(self.failed("record the checkpoint"))?;
        Ok(())
    }

    /// Records the start of a run; returns its ID.
    pub fn start_run(&self, dest: i64, kind: &str, reason: &str) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO run (destination, started, kind, reason) VALUES (?1, ?2, ?3, ?4)",
                params![dest, int(unix(SystemTime::now())), kind, reason],
            )
            .map_err(self.failed("record the run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a run.
    pub fn end_run(&self, id: i64, outcome: &str, counts: &RunCounts) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE run SET ended = ?2, outcome = ?3, unchanged = ?4, new = ?5, changed = ?6,
                 vanished = ?7, cleared = ?8, tracked = ?9 WHERE id = ?1",
                params![
                    id,
                    int(unix(SystemTime::now())),
                    outcome,
                    int(counts.unchanged),
                    int(counts.new),
                    int(counts.changed),
                    int(counts.vanished),
                    int(counts.cleared),
                    int(counts.tracked)
                ],
            )
            .map_err(self.failed("record the run's end"))?;
        Ok(())
    }

    /// Every host row of every destination: (destination ID, address, fingerprint), for
    /// inspection and tests.
    pub fn rows(&self) -> Result<Vec<Row>, StateError> {
        let fail = self.failed("read the hosts");
        let mut stmt = self
            .conn
            .prepare("SELECT destination, ip, fingerprint FROM host ORDER BY destination, ip")
            .map_err(&fail)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(&fail)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&fail)
    }

    /// Every destination with its hosts and last runs, for `check`.
    pub fn describe(&self) -> Result<Vec<DestinationInfo>, StateError> {
        let fail = self.failed("read the destinations");
        let mut stmt = self
            .conn
            .prepare("SELECT id, fmc, ca_sha256, source, scope FROM destination ORDER BY id")
            .map_err(&fail)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Destination {
                        fmc: r.get(1)?,
                        ca_sha256: r.get(2)?,
                        source: r.get(3)?,
                        scope: r.get(4)?,
                    },
                ))
            })
            .map_err(&fail)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&fail)?;
        let mut out = Vec::new();
        for (id, destination) in rows {
            let confirmed = self.count(
                "SELECT count(*) FROM host WHERE destination = ?1 AND fingerprint IS NOT NULL",
                id,
            )?;
            out.push(DestinationInfo {
                destination,
                hosts: self.tracked(id)?,
                confirmed,
                last_full: self.last_run(id, "full")?,
                last_delta: self.last_run(id, "delta")?,
            });
        }
        Ok(out)
    }

    fn last_run(&self, dest: i64, kind: &str) -> Result<Option<RunRecord>, StateError> {
        self.conn
            .query_row(
                "SELECT started, kind, reason, outcome FROM run WHERE destination = ?1 AND kind = ?2
                 ORDER BY started DESC, id DESC LIMIT 1",
                params![dest, kind],
                |r| {
                    Ok(RunRecord {
                        started: r.get::<_, i64>(0)?.max(0) as u64,
                        kind: r.get(1)?,
                        reason: r.get(2)?,
                        outcome: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.failed("read the run history"))
    }
}

/// A host row: destination ID, address, fingerprint if confirmed.
pub type Row = (i64, String, Option<Vec<u8>>);

/// A run's counts, as the history keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub unchanged: u64,
    pub new: u64,
    pub changed: u64,
    pub vanished: u64,
    pub cleared: u64,
    pub tracked: u64,
}

/// Why an existing file was not opened.
enum Unreadable {
    Newer(i64),
    Corrupt(String),
    Io(StateError),
}

/// Refuses a state that other users could write (a forged state could hide hosts from
/// the FMC); warns about one they can read.
fn check_permissions(path: &Path, warnings: &mut Vec<String>) -> Result<(), StateError> {
    let unsafe_ = |reason: String| StateError::Unsafe {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir_meta = fs::metadata(&dir).map_err(|e| {
        unsafe_(format!(
            "its directory {} cannot be used: {e} (sync_state names a file in an existing directory)",
            dir.display()
        ))
    })?;
    let dir_mode = dir_meta.permissions().mode();
    // A sticky directory (like /tmp) lets others create files but not replace ours.
    if dir_mode & 0o022 != 0 && dir_mode & 0o1000 == 0 {
        return Err(unsafe_(format!(
            "its directory {} can be written by other users (mode {:03o}): they could replace the state and hide hosts from the FMC; run: chmod go-w {}",
            dir.display(),
            dir_mode & 0o777,
            dir.display()
        )));
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unsafe_(format!("cannot be read: {e}"))),
    };
    if !meta.file_type().is_file() {
        return Err(unsafe_("is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "can be written by other users (mode {mode:03o}): a forged state could hide hosts from the FMC; run: chmod 600 {}",
            path.display()
        )));
    }
    if mode & 0o044 != 0 {
        warnings.push(format!(
            "{}: the sync state can be read by other users (mode {mode:03o}); run: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

fn failed(path: &Path, action: &'static str, e: impl std::fmt::Display) -> StateError {
    StateError::Failed {
        path: path.to_path_buf(),
        action,
        message: e.to_string(),
    }
}

/// Creates a new state file (mode 0600) with the schema.
fn create(path: &Path) -> Result<Connection, StateError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(path, "create the file", e))?;
    let conn = connect(path, false).map_err(|e| failed(path, "open", e))?;
    conn.execute_batch(&format!(
        "BEGIN; {SCHEMA} {SCHEMA_ADDITIONS} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(|e| failed(path, "create the schema", e))?;
    Ok(conn)
}

/// Opens an SQLite connection with the settings every use needs.
fn connect(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if !read_only {
        // WAL: a reader (`sqlite3`, `check`) never blocks the run; FULL: a committed
        // transaction survives a power cut, not only a crash.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::debug!("the sync state uses journal mode {mode} (WAL not available)");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    // The set of addresses seen in this run lives in a temporary table on disk, not in
    // memory: it grows with the report.
    conn.pragma_update(None, "temp_store", "FILE")?;
    conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS seen (ip TEXT PRIMARY KEY) WITHOUT ROWID")?;
    Ok(conn)
}

/// Opens and checks an existing state.
fn open_existing(path: &Path, read_only: bool) -> Result<Connection, Unreadable> {
    let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Unreadable::Corrupt(e.to_string())
        }
        _ => Unreadable::Io(failed(path, "open", e)),
    };
    let conn = connect(path, read_only).map_err(corrupt)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(corrupt)?;
    if version > SCHEMA_VERSION {
        return Err(Unreadable::Newer(version));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(corrupt)?;
    if check != "ok" {
        return Err(Unreadable::Corrupt(format!("integrity check: {check}")));
    }
    if version < SCHEMA_VERSION {
        return Err(Unreadable::Corrupt(format!(
            "no qualys-connector schema in it (user_version {version})"
        )));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('destination', 'host', 'run')",
            [],
            |r| r.get(0),
        )
        .map_err(corrupt)?;
    if tables != 3 {
        return Err(Unreadable::Corrupt("tables are missing".into()));
    }
    if !read_only {
        conn.execute_batch(SCHEMA_ADDITIONS)
            .map_err(|e| Unreadable::Io(failed(path, "add the checkpoint table", e)))?;
    }
    Ok(conn)
}

/// Moves an unreadable state (and its WAL files) to `<path>.corrupt-<time>`.
fn move_aside(path: &Path) -> Result<PathBuf, StateError> {
    let stamp = crate::logging::utc_timestamp(SystemTime::now()).replace([':', '-'], "");
    let mut target = path.as_os_str().to_os_string();
    target.push(format!(".corrupt-{stamp}"));
    let target = PathBuf::from(target);
    fs::rename(path, &target).map_err(|e| failed(path, "move the unreadable file aside", e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_os_string();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut moved = target.as_os_str().to_os_string();
            moved.push(suffix);
            let _ = fs::rename(&side, PathBuf::from(moved));
        }
    }
    Ok(target)
}

/// `MAX_PAGES_ENV`: the test hook for a full disk.
fn test_page_limit(conn: &Connection, path: &Path) -> Result<(), StateError> {
    if let Some(pages) = std::env::var(MAX_PAGES_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        log::warn!(
            "{MAX_PAGES_ENV}: the sync state may grow to {pages} pages only (a test of a full disk)"
        );
        conn.pragma_update(None, "max_page_count", int(pages))
            .map_err(|e| failed(path, "set the page limit", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> Destination {
        Destination::new("10.0.0.1", 8307, b"ca", "QualysGuard", "template 1".into())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_host_goes_from_nothing_to_pending_to_confirmed_to_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let state = State::open(&path).unwrap();
        assert_eq!(state.opened, Opened::Created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (d, new) = state.destination(&dest(), true).unwrap().unwrap();
        assert!(new);
        assert_eq!(state.destination(&dest(), true).unwrap(), Some((d, false)));
        let a = ip("192.0.2.1");
        let fp = [7u8; 32];
        // Table: (step, what the state then holds).
        let steps: [(&dyn Fn(), Held); 4] = [
            (&|| {}, Held::Nothing),
            (&|| state.mark_pending(d, a).unwrap(), Held::Pending),
            (
                &|| state.confirm(d, a, &fp, 1).unwrap(),
                Held::Confirmed(fp),
            ),
            (&|| state.forget(d, a).unwrap(), Held::Nothing),
        ];
        for (i, (step, want)) in steps.iter().enumerate() {
            step();
            assert_eq!(state.held(d, a).unwrap(), *want, "step {i}");
        }
        // A confirmation for a host that is not pending changes nothing.
        state.confirm(d, a, &fp, 1).unwrap();
        assert_eq!(state.held(d, a).unwrap(), Held::Nothing);
    }

    #[test]
    fn seen_hosts_decide_the_vanished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("s.db")).unwrap();
        let (d, _) = state.destination(&dest(), true).unwrap().unwrap();
        for h in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"] {
            state.mark_pending(d, ip(h)).unwrap();
        }
        assert!(state.mark_seen(ip("192.0.2.2")).unwrap());
        assert!(
            !state.mark_seen(ip("192.0.2.2")).unwrap(),
            "a second listing"
        );
        assert_eq!(state.tracked(d).unwrap(), 4);
        assert_eq!(state.unseen(d).unwrap(), 3);
        assert_eq!(
            state.unseen_page(d, "", 2).unwrap(),
            vec!["192.0.2.1".to_string(), "192.0.2.3".to_string()]
        );
        assert_eq!(
            state.unseen_page(d, "192.0.2.3", 2).unwrap(),
            vec!["2001:db8::1".to_string()]
        );
        assert_eq!(state.forget_unseen(d).unwrap(), 3);
        assert_eq!(state.tracked(d).unwrap(), 1);
        state.reset_seen().unwrap();
        assert_eq!(state.unseen(d).unwrap(), 1);
    }

    #[test]
    fn the_history_gives_the_last_complete_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("s.db")).unwrap();
        let (d, _) = state.destination(&dest(), true).unwrap().unwrap();
        assert_eq!(state.last_successful_full(d).unwrap(), None);
        let failed = state.start_run(d, "full", "first").unwrap();
        state
            .end_run(failed, "unconfirmed", &RunCounts::default())
            .unwrap();
        assert_eq!(
            state.last_successful_full(d).unwrap(),
            None,
            "an unconfirmed full sync"
        );
        let ok = state.start_run(d, "full", "again").unwrap();
        state.end_run(ok, "success", &RunCounts::default()).unwrap();
        assert!(state.last_successful_full(d).unwrap().is_some());
        let info = state.describe().unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(
            info[0].last_full.as_ref().unwrap().outcome.as_deref(),
            Some("success")
        );
        assert_eq!(info[0].last_delta, None);
    }

    #[test]
    fn unreadable_files_are_moved_aside_and_newer_ones_refused() {
        // Table: (what, contents).
        let cases: [(&str, &[u8]); 3] = [
            ("plain text", b"not a database\n"),
            ("zeros", &[0u8; 4096]),
            ("an SQLite header and nothing else", b"SQLite format 3\0"),
        ];
        for (what, contents) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.db");
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let state = State::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let Opened::Recovered { moved_to, .. } = &state.opened else {
                panic!("{what}: {:?}", state.opened);
            };
            assert_eq!(fs::read(moved_to).unwrap(), contents, "{what}");
            assert!(state.warnings[0].contains("moved to"), "{what}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(State::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        drop(conn);
        let err = State::open(&path).unwrap_err();
        assert!(
            matches!(err, StateError::NewerSchema { found: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            State::open_read_only(&path),
            Err(StateError::NewerSchema { .. })
        ));
        let (none, _) = State::open_read_only(&dir.path().join("missing.db")).unwrap();
        assert!(none.is_none());
    }
}
