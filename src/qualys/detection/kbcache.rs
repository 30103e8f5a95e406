//! The KnowledgeBase, fetched and cached (qualys.md §7): QIDs are looked up in batches of
//! at most 500 (POST, so long `ids` lists fit), and kept in an SQLite table so that a
//! nightly run asks only for QIDs it has never seen, plus the entries Qualys changed since
//! the last refresh (`last_modified_after`). The table lives in the sync state's database
//! when there is one (`sync_state`: the cache then shares the state's connection, so its
//! writes join the state's transactions instead of waiting for them), else in its own
//! file (`kb_cache`).

use std::collections::BTreeMap;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::fetch::FetchError;
use super::kb::{self, KbEntry};
use crate::model::VulnDetails;
use crate::qualys::client::Qualys;

/// QIDs per KnowledgeBase call.
pub const KB_BATCH: usize = 500;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kb (
    qid INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    cve_ids TEXT NOT NULL,
    bugtraq_ids TEXT NOT NULL,
    modified TEXT,
    description_length INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_refresh (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);";

#[derive(Debug, thiserror::Error)]
#[error("the KnowledgeBase cache {path}: {message}")]
pub struct CacheError {
    pub path: String,
    pub message: String,
}

/// The connection a cache uses: its own, or the sync state's.
enum Conn<'a> {
    Own(Connection),
    Shared(&'a Connection),
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Conn::Own(c) => c,
            Conn::Shared(c) => c,
        }
    }
}

/// An open cache.
pub struct KbCache<'a> {
    conn: Conn<'a>,
    path: String,
}

impl std::fmt::Debug for KbCache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbCache").field("path", &self.path).finish()
    }
}

impl<'a> KbCache<'a> {
    /// The cache's tables in an open database (the sync state's), created if needed.
    pub fn within(conn: &'a Connection, name: &str) -> Result<KbCache<'a>, CacheError> {
        conn.execute_batch(SCHEMA).map_err(|e| CacheError {
            path: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(KbCache {
            conn: Conn::Shared(conn),
            path: name.to_string(),
        })
    }

    /// Opens (creating if needed) the cache table in the file at `path`.
    pub fn open(path: &Path) -> Result<KbCache<'static>, CacheError> {
        let fail = |e: rusqlite::Error| CacheError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(KbCache {
            conn: Conn::Own(conn),
            path: path.display().to_string(),
        })
    }

    fn fail(&self, e: rusqlite::Error) -> CacheError {
        CacheError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The cached entry of `qid`, if cached for this description length.
    pub fn get(
        &self,
        qid: u32,
        description_length: usize,
    ) -> Result<Option<VulnDetails>, CacheError> {
        self.conn
            .prepare_cached(
                "SELECT title, description, cve_ids, bugtraq_ids FROM kb WHERE qid = ?1 AND description_length = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![qid, description_length as i64], |r| {
                    let split = |t: String| -> Vec<String> {
                        t.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
                    };
                    Ok(VulnDetails {
                        title: r.get(0)?,
                        description: r.get(1)?,
                        cve_ids: split(r.get(2)?),
                        bugtraq_ids: split(r.get(3)?),
                    })
                })
                .optional()
            })
            .map_err(|e| self.fail(e))
    }

    fn put(&self, e: &KbEntry, description_length: usize) -> Result<(), CacheError> {
        self.conn
            .prepare_cached(
                "INSERT INTO kb (qid, title, description, cve_ids, bugtraq_ids, modified, description_length)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (qid) DO UPDATE SET title = ?2, description = ?3, cve_ids = ?4,
                 bugtraq_ids = ?5, modified = ?6, description_length = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e.qid,
                    e.details.title,
                    e.details.description,
                    e.details.cve_ids.join(" "),
                    e.details.bugtraq_ids.join(" "),
                    e.modified,
                    description_length as i64
                ])
            })
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// When the cache was last refreshed (Qualys's clock), if ever.
    pub fn refreshed(&self) -> Result<Option<String>, CacheError> {
        self.conn
            .query_row("SELECT at FROM kb_refresh WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e))
    }

    fn set_refreshed(&self, at: &str) -> Result<(), CacheError> {
        self.conn
            .execute(
                "INSERT INTO kb_refresh (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = ?1",
                params![at],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// What a lookup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub cached: u64,
    pub fetched: u64,
    pub calls: u64,
    /// QIDs the KnowledgeBase does not know (sent without a title).
    pub unknown: Vec<u32>,
}

/// Details of every QID in `qids`: from the cache, the rest from the KnowledgeBase in
/// batches of [`KB_BATCH`] (then cached). `kb_path` is the KB's version prefix.
pub fn lookup(
    qualys: &Qualys,
    cache: &KbCache<'_>,
    kb_path: &str,
    qids: &[u32],
    description_length: usize,
) -> Result<(BTreeMap<u32, VulnDetails>, Lookup), FetchError> {
    let cache_error = |e: CacheError| FetchError::Caller(e.to_string());
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    let mut stats = Lookup::default();
    for &qid in qids {
        match cache.get(qid, description_length).map_err(cache_error)? {
            Some(d) => {
                stats.cached += 1;
                found.insert(qid, d);
            }
            None => missing.push(qid),
        }
    }
    for chunk in missing.chunks(KB_BATCH) {
        let ids: Vec<String> = chunk.iter().map(u32::to_string).collect();
        let form = format!("action=list&details=All&ids={}", ids.join(","));
        let entries = kb_call(qualys, kb_path, &form, description_length)?;
        stats.calls += 1;
        for e in entries {
            cache.put(&e, description_length).map_err(cache_error)?;
            stats.fetched += 1;
            found.insert(e.qid, e.details);
        }
    }
    stats.unknown = missing
        .into_iter()
        .filter(|q| !found.contains_key(q))
        .collect();
    for qid in &stats.unknown {
        log::warn!("QID {qid} is not in the KnowledgeBase: sent without a title");
    }
    Ok((found, stats))
}

/// Entries Qualys changed since the last refresh, written over the cached ones; the
/// refresh time is the answer's own `DATETIME`.
pub fn refresh(
    qualys: &Qualys,
    cache: &KbCache<'_>,
    kb_path: &str,
    description_length: usize,
) -> Result<u64, FetchError> {
    let cache_error = |e: CacheError| FetchError::Caller(e.to_string());
    let Some(since) = cache.refreshed().map_err(cache_error)? else {
        return Ok(0);
    };
    let form = format!(
        "action=list&details=All&last_modified_after={}",
        crate::qualys::client::form_encode(&since)
    );
    let (entries, datetime) = kb_call_dated(qualys, kb_path, &form, description_length)?;
    let n = entries.len() as u64;
    for e in entries {
        cache.put(&e, description_length).map_err(cache_error)?;
    }
    if let Some(at) = datetime {
        cache.set_refreshed(&at).map_err(cache_error)?;
    }
    Ok(n)
}

/// Marks the cache refreshed as of `at` (the first lookup's answer time).
pub fn mark_refreshed(cache: &KbCache<'_>, at: &str) -> Result<(), FetchError> {
    cache
        .set_refreshed(at)
        .map_err(|e| FetchError::Caller(e.to_string()))
}

fn kb_call(
    qualys: &Qualys,
    kb_path: &str,
    form: &str,
    description_length: usize,
) -> Result<Vec<KbEntry>, FetchError> {
    kb_call_dated(qualys, kb_path, form, description_length).map(|(e, _)| e)
}

fn kb_call_dated(
    qualys: &Qualys,
    kb_path: &str,
    form: &str,
    description_length: usize,
) -> Result<(Vec<KbEntry>, Option<String>), FetchError> {
    let mut file = tempfile::tempfile().map_err(FetchError::Local)?;
    let path = format!("{kb_path}/fo/knowledge_base/vuln/");
    qualys.post_into("knowledge base", &path, form, &mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(FetchError::Local)?;
    let mut entries = Vec::new();
    let summary = kb::parse(BufReader::new(file), description_length, &mut |e| {
        entries.push(e);
        Ok(())
    })?;
    Ok((entries, summary.datetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_per_description_length() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KbCache::open(&dir.path().join("kb.db")).unwrap();
        let entry = KbEntry {
            qid: 6,
            details: VulnDetails {
                title: "DNS Host Name".into(),
                description: "The name.".into(),
                cve_ids: vec!["CVE-1999-0001".into(), "CVE-1999-0002".into()],
                bugtraq_ids: vec![],
            },
            modified: Some("2018-01-04T17:39:37Z".into()),
        };
        cache.put(&entry, 512).unwrap();
        assert_eq!(cache.get(6, 512).unwrap(), Some(entry.details.clone()));
        // Another description length: not the same text, so not cached.
        assert_eq!(cache.get(6, 100).unwrap(), None);
        assert_eq!(cache.get(7, 512).unwrap(), None);
        assert_eq!(cache.refreshed().unwrap(), None);
        cache.set_refreshed("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            cache.refreshed().unwrap().as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        // A second connection (the sync state's file) sees it.
        let again = KbCache::open(&dir.path().join("kb.db")).unwrap();
        assert_eq!(again.get(6, 512).unwrap(), Some(entry.details));
    }
}
