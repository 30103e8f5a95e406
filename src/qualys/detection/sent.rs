//! The addresses a detection run has sent, on disk (qualys.md §7): one machine can be
//! several host records (an agent-tracked and an IP-tracked one) on different pages, so
//! the first record of an address commits with ScanFlush and later ones merge with
//! ScanUpdate, as repeated hosts of a report do. A set in memory would grow with the
//! estate; this one is a private temporary SQLite database, deleted when dropped.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

/// What was sent for an address before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: this is its first record.
    New,
    /// Records with nothing open (the generic result): a record with findings replaces it.
    Nothing,
    /// A record with findings: later records merge.
    Findings,
}

pub struct SentSet {
    conn: Connection,
}

impl std::fmt::Debug for SentSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentSet")
    }
}

impl SentSet {
    pub fn new() -> rusqlite::Result<SentSet> {
        // An empty name: a private on-disk database SQLite deletes when it is closed.
        let conn = Connection::open("")?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE sent (ip TEXT PRIMARY KEY, findings INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(SentSet { conn })
    }

    /// What was sent for `ip` before; records that now `findings` were sent too (a
    /// record with findings stays "findings").
    pub fn record(&self, ip: IpAddr, findings: bool) -> rusqlite::Result<Prior> {
        let key = ip.to_string();
        let before: Option<bool> = self
            .conn
            .prepare_cached("SELECT findings FROM sent WHERE ip = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?;
        self.conn
            .prepare_cached(
                "INSERT INTO sent (ip, findings) VALUES (?1, ?2)
                 ON CONFLICT (ip) DO UPDATE SET findings = findings OR ?2",
            )?
            .execute(params![key, findings])?;
        Ok(match before {
            None => Prior::New,
            Some(false) => Prior::Nothing,
            Some(true) => Prior::Findings,
        })
    }

    /// What was sent for `ip` before, without recording anything.
    pub fn prior(&self, ip: IpAddr) -> rusqlite::Result<Prior> {
        let before: Option<bool> = self
            .conn
            .prepare_cached("SELECT findings FROM sent WHERE ip = ?1")?
            .query_row(params![ip.to_string()], |r| r.get(0))
            .optional()?;
        Ok(match before {
            None => Prior::New,
            Some(false) => Prior::Nothing,
            Some(true) => Prior::Findings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_one_address() {
        let set = SentSet::new().unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        // Table: (address, this record has findings, what was sent before).
        let steps = [
            (a, false, Prior::New),
            (a, false, Prior::Nothing),
            (a, true, Prior::Nothing),
            (a, false, Prior::Findings),
            (b, true, Prior::New),
            (b, false, Prior::Findings),
        ];
        for (i, (ip, findings, want)) in steps.iter().enumerate() {
            assert_eq!(set.prior(*ip).unwrap(), *want, "step {i}");
            assert_eq!(set.record(*ip, *findings).unwrap(), *want, "step {i}");
        }
    }
}
