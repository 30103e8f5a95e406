//! Fetching the detection path's pages (qualys.md §7): the host IDs in scope (Host List),
//! split into `ids=` batches, each batch's Host List Detection pages fetched by a pool of
//! worker threads and followed by the WARNING's `id_min` to the last page.
//!
//! Every page is streamed into a temporary file and read to its end before it counts: a
//! cut or unreadable page is fetched again (bounded, with back-off); only whole pages
//! reach the caller, on the calling thread, while the workers fetch the next ones
//! (bounded channel). The next page is always the connector's own request (same
//! parameters, the new `id_min`) to the configured base URL: a WARNING URL is a hint,
//! never a place to send the credentials.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::ids::{self, IdRange, IdsSummary};
use super::page::{self, PageSummary};
use super::walk::DocError;
use crate::qualys::client::{DownloadError, Qualys};

/// How the pages are asked for.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The version prefix of Host List and Host List Detection, e.g. `/api/2.0`.
    pub api_path: String,
    /// Host IDs per `ids=` batch, also sent as `truncation_limit`.
    pub hosts_per_call: usize,
    /// Calls at once.
    pub workers: usize,
    /// Parameters every Host List Detection call carries besides `action`, `ids`,
    /// `truncation_limit` and `id_min` (status, show_igs, scope, vm_processed_after...).
    pub detection_params: Vec<(String, String)>,
    /// Parameters the Host List call carries besides `action`, `details` and
    /// `truncation_limit` (scope, vm_processed_after).
    pub scope_params: Vec<(String, String)>,
    /// Tries of one page that arrives cut or unreadable.
    pub page_tries: u32,
}

/// A whole page, in its temporary file (read it again to get its hosts).
#[derive(Debug)]
pub struct FetchedPage {
    /// The batch (0-based) and the page within it (0-based).
    pub batch: usize,
    pub page: usize,
    pub file: tempfile::NamedTempFile,
    pub summary: PageSummary,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Download(#[from] DownloadError),
    #[error("{0}")]
    Document(#[from] DocError),
    #[error("batch {batch}: page {page} was cut or unreadable {tries} times: {last}")]
    PageFailed {
        batch: usize,
        page: usize,
        tries: u32,
        last: String,
    },
    #[error(
        "batch {batch}: the paging WARNING's id_min {id_min} does not move past {after}: the pages would repeat"
    )]
    Paging {
        batch: usize,
        id_min: u64,
        after: u64,
    },
    #[error("cannot keep a page in a temporary file: {0}")]
    Local(#[source] std::io::Error),
    #[error("{0}")]
    Caller(String),
}

/// The wait before a page is asked again: from 200 ms, growing with the tries, with
/// jitter so that workers whose pages failed together do not ask again together.
fn backoff(tries: u32) -> Duration {
    crate::qualys::client::backoff_from(Duration::from_millis(200), tries)
}

/// `name=value&…`, form-encoded.
fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::qualys::client::form_encode(k),
                crate::qualys::client::form_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The host IDs in scope, as ranges.
pub fn host_ids(
    qualys: &Qualys,
    opts: &FetchOptions,
) -> Result<(Vec<IdRange>, IdsSummary), FetchError> {
    let mut params = vec![
        ("action".to_string(), "list".to_string()),
        ("details".to_string(), "None".to_string()),
        ("truncation_limit".to_string(), "0".to_string()),
    ];
    params.extend(opts.scope_params.iter().cloned());
    let mut file = tempfile::tempfile().map_err(FetchError::Local)?;
    let path = format!("{}/fo/asset/host/", opts.api_path);
    qualys.post_into("host list", &path, &form(&params), &mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(FetchError::Local)?;
    let mut ranges = Vec::new();
    let summary = ids::parse(BufReader::new(file), &mut |r| {
        ranges.push(r);
        Ok(())
    })?;
    Ok((ranges, summary))
}

/// Splits ID ranges into `ids=` values of at most `per_call` IDs each.
pub fn batches(ranges: &[IdRange], per_call: usize) -> Vec<String> {
    let per_call = per_call.max(1) as u64;
    let mut out = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut room = per_call;
    for r in ranges {
        let mut first = r.first;
        while first <= r.last {
            let take = (r.last - first + 1).min(room);
            let last = first + take - 1;
            parts.push(if take == 1 {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
            room -= take;
            if room == 0 {
                out.push(parts.join(","));
                parts.clear();
                room = per_call;
            }
            if last == u64::MAX {
                break;
            }
            first = last + 1;
        }
    }
    if !parts.is_empty() {
        out.push(parts.join(","));
    }
    out
}

/// Fetches every page of every batch with `opts.workers` threads and hands each whole
/// page to `on_page` on this thread. The first error stops the workers (the pages
/// fetched before it were handed over) and is returned.
pub fn pages(
    qualys: &Qualys,
    opts: &FetchOptions,
    batches: Vec<String>,
    on_page: &mut dyn FnMut(FetchedPage) -> Result<(), String>,
) -> Result<u64, FetchError> {
    let queue = Mutex::new(batches.into_iter().enumerate().collect::<VecDeque<_>>());
    let stop = AtomicBool::new(false);
    let workers = opts.workers.max(1);
    let (tx, rx) = sync_channel::<Result<FetchedPage, FetchError>>(workers);
    let mut handed = 0u64;
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, stop) = (&queue, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let next = queue
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pop_front();
                    let Some((batch, ids)) = next else { return };
                    if let Err(e) = fetch_batch(qualys, opts, batch, &ids, &tx, stop) {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            });
        }
        drop(tx);
        for item in rx {
            match item {
                Ok(page) if first_error.is_none() => match on_page(page) {
                    Ok(()) => handed += 1,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error = Some(FetchError::Caller(e));
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(handed),
    }
}

/// Every page of one batch, in order.
fn fetch_batch(
    qualys: &Qualys,
    opts: &FetchOptions,
    batch: usize,
    ids: &str,
    tx: &std::sync::mpsc::SyncSender<Result<FetchedPage, FetchError>>,
    stop: &AtomicBool,
) -> Result<(), FetchError> {
    let mut id_min: Option<u64> = None;
    for page in 0.. {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let fetched = fetch_page(qualys, opts, batch, page, ids, id_min)?;
        let next = fetched
            .summary
            .warning
            .as_ref()
            .and_then(page::Warning::id_min);
        let after = id_min.unwrap_or(0);
        if tx.send(Ok(fetched)).is_err() {
            return Ok(());
        }
        match next {
            None => return Ok(()),
            Some(n) if n <= after => {
                return Err(FetchError::Paging {
                    batch,
                    id_min: n,
                    after,
                });
            }
            Some(n) => id_min = Some(n),
        }
    }
    Ok(())
}

/// One page, fetched again while it arrives cut or unreadable.
fn fetch_page(
    qualys: &Qualys,
    opts: &FetchOptions,
    batch: usize,
    page: usize,
    ids: &str,
    id_min: Option<u64>,
) -> Result<FetchedPage, FetchError> {
    let mut params = vec![
        ("action".to_string(), "list".to_string()),
        ("ids".to_string(), ids.to_string()),
        (
            "truncation_limit".to_string(),
            opts.hosts_per_call.to_string(),
        ),
    ];
    params.extend(opts.detection_params.iter().cloned());
    if let Some(id) = id_min {
        params.push(("id_min".to_string(), id.to_string()));
    }
    let body = form(&params);
    let path = format!("{}/fo/asset/host/vm/detection/", opts.api_path);
    let mut tries = 0;
    loop {
        tries += 1;
        let mut file = tempfile::NamedTempFile::new().map_err(FetchError::Local)?;
        match qualys.post_into("host list detection", &path, &body, file.as_file_mut()) {
            Ok(_) => {}
            // A transfer that stalled (idle timeout) or broke: the page is asked again.
            Err(DownloadError::Http(e)) if e.is_transient() && tries < opts.page_tries.max(1) => {
                let wait = backoff(tries);
                log::warn!(
                    "Host List Detection batch {batch} page {page}: {e}; fetching it again in {wait:.1?}"
                );
                crate::stop::sleep(wait).map_err(DownloadError::from)?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let reread = File::open(file.path()).map_err(FetchError::Local)?;
        match page::parse(BufReader::new(reread), &mut |_| Ok(())) {
            Ok(summary) => {
                return Ok(FetchedPage {
                    batch,
                    page,
                    file,
                    summary,
                });
            }
            // A Qualys error document is an answer, not a cut page.
            Err(e @ DocError::Qualys { .. }) => return Err(e.into()),
            Err(e) if tries < opts.page_tries.max(1) => {
                let wait = backoff(tries);
                log::warn!(
                    "Host List Detection batch {batch} page {page}: {e}; fetching it again in {wait:.1?}"
                );
                crate::stop::sleep(wait).map_err(DownloadError::from)?;
            }
            Err(e) => {
                return Err(FetchError::PageFailed {
                    batch,
                    page,
                    tries,
                    last: e.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_split_into_batches() {
        let r = |first, last| IdRange { first, last };
        // Table: (ranges, per call, batches).
        let cases: Vec<(Vec<IdRange>, usize, Vec<&str>)> = vec![
            (vec![], 1000, vec![]),
            (vec![r(1, 1)], 1000, vec!["1"]),
            (vec![r(1, 5), r(9, 9)], 3, vec!["1-3", "4-5,9"]),
            (vec![r(10, 19)], 5, vec!["10-14", "15-19"]),
            (vec![r(1, 1), r(3, 3), r(5, 5)], 2, vec!["1,3", "5"]),
        ];
        for (ranges, per_call, want) in cases {
            assert_eq!(batches(&ranges, per_call), want, "{ranges:?} by {per_call}");
        }
    }
}
