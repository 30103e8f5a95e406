//! The Qualys API client (qualys.md §1-§4): gets the ASSET_DATA_REPORT for a template
//! into a local file, surviving what Qualys does in the field.
//!
//! Report API v2 by default: launch, poll until Finished (with back-off, bounded by a
//! deadline), fetch (streamed to the file, with an idle-read timeout), delete (also when
//! anything failed). Or the older synchronous v1 call. Every call carries HTTP Basic with
//! the raw password and `X-Requested-With`. Errors come as XML documents, sometimes with
//! HTTP 200 and without an XML declaration, so every answer's root element and CODE are
//! looked at. The limit headers are read on every response: 409 (codes 1960/1965) waits
//! for `ToWait-Sec` and tries again, 5xx backs off with jitter, both bounded; HTTP 401 is
//! fatal. A download that ends early is fetched again, never handed on half.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::advice;
use super::bounds::{Bounded, Bounds, Exceeded};
use super::follow::{Follow, Tapped, Verdict};
use super::http::{self, Client, HttpError, Response, Url};
use super::report;
use crate::secret::Secret;
use crate::servertext;

/// Which call gets the report (qualys.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V2,
    V1,
}

#[derive(Debug, Clone)]
pub struct QualysOptions {
    pub url: Url,
    pub user: String,
    pub password: Secret,
    pub api: Api,
    /// Version prefix of the v2 endpoints, e.g. `/api/2.0`.
    pub api_path: String,
    pub poll_interval: Duration,
    pub deadline: Duration,
    /// Tries of one call on 409/5xx/network trouble, and of a truncated download.
    pub retries: u32,
    /// The longest single wait Qualys may ask for (`qualys_max_wait`, qualys.md §3).
    pub max_wait: Duration,
    /// Size, duration and free-space bounds of the report download.
    pub bounds: Bounds,
}

/// A failed download, with what Qualys said.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Http(HttpError),
    #[error("Qualys answered {call} with {doc}")]
    Qualys { call: &'static str, doc: ErrorDoc },
    #[error("Qualys answered {call} with HTTP {status}{detail}")]
    Status {
        call: &'static str,
        status: u16,
        detail: String,
    },
    #[error("report {id} ended in state {state}{detail}")]
    ReportFailed {
        id: String,
        state: String,
        detail: String,
    },
    #[error(
        "report {id} was not finished after {secs} s (last state {state}); raise report_deadline"
    )]
    Deadline {
        id: String,
        secs: u64,
        state: String,
    },
    #[error("Qualys answered {call} with something unexpected: {message}")]
    Unexpected { call: &'static str, message: String },
    #[error("the download of report {id} was incomplete {tries} times: {reason}")]
    Truncated {
        id: String,
        tries: u32,
        reason: String,
    },
    /// Qualys asked for a wait longer than `qualys_max_wait` (qualys.md §3).
    #[error(
        "Qualys {call}: the server asked to wait {secs} s, more than qualys_max_wait ({max} s); raise qualys_max_wait or run later"
    )]
    WaitTooLong {
        call: &'static str,
        secs: u64,
        max: u64,
    },
    /// A signal or `max_run_seconds` ended the download (src/stop.rs).
    #[error("{0}")]
    Stopped(#[from] crate::stop::Stopped),
    /// A bound of the download (`max_report_bytes`, `download_deadline`, `tmp_min_free`).
    #[error("{0}")]
    Bound(#[from] Exceeded),
    #[error(
        "cannot store the download in {path}: {source}; free space there (keep tmp_min_free above what a report needs) or set TMPDIR to a larger file system"
    )]
    Local {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<HttpError> for DownloadError {
    /// A stop inside an exchange is the run's stop, not an HTTP failure.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Stopped(stopped) => DownloadError::Stopped(stopped),
            e => DownloadError::Http(e),
        }
    }
}

impl DownloadError {
    /// Qualys's CODE, when the failure is one of its error documents.
    pub fn code(&self) -> Option<&str> {
        match self {
            DownloadError::Qualys { doc, .. } => doc.code.as_deref(),
            _ => None,
        }
    }

    /// What to do about it (the guide's Troubleshooting, and qualys.md §3).
    pub fn hint(&self) -> Option<String> {
        match self {
            DownloadError::Qualys { doc, .. } => {
                let texts = doc.texts();
                advice::hint(&advice::Facts {
                    code: doc.code.as_deref(),
                    status: doc.answer.as_ref().map(|a| a.status),
                    texts: &texts,
                    limits: doc.answer.as_ref().map(|a| a.limits).unwrap_or_default(),
                })
            }
            DownloadError::Status { status: 404, .. } => Some("check url (the API host, e.g. https://qualysapi.qualys.com, not the web UI's qualysguard host) and api_path".into()),
            DownloadError::Status { status, .. } => advice::hint(&advice::Facts {
                status: Some(*status),
                ..advice::Facts::default()
            }),
            DownloadError::Unexpected { message, .. } if message.contains("web page") => Some("url must name the API host (qualysapi.…), not the web interface (qualysguard.…)".into()),
            DownloadError::Unexpected { message, .. } if message.contains("instead of the report") => Some(report::NEEDED.into()),
            DownloadError::Http(HttpError::Connect { .. } | HttpError::Resolve { .. }) => Some("the Qualys API must be reachable on port 443 from this host: check firewall, proxy and routing (guide, Troubleshooting)".into()),
            _ => None,
        }
    }
}

/// A Qualys error document: SIMPLE_RETURN (v2), GENERIC_RETURN (v1) or a SCAN holding an
/// ERROR. Its text is the server's: [`std::fmt::Display`] escapes it (servertext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDoc {
    pub root: String,
    pub code: Option<String>,
    pub text: String,
    pub items: Vec<(String, String)>,
    /// The HTTP answer it came with, when not 2xx (boxed: errors stay small).
    pub answer: Option<Box<Answer>>,
}

/// The HTTP side of a refused call: its status and limit headers (409: when to run
/// again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub limits: advice::Limits,
}

impl ErrorDoc {
    /// TEXT and the ITEM_LIST values, for the hint's phrase search.
    fn texts(&self) -> Vec<&str> {
        std::iter::once(self.text.as_str())
            .chain(self.items.iter().map(|(_, v)| v.as_str()))
            .collect()
    }
}

impl std::fmt::Display for ErrorDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items = self.items.iter().map(|(_, v)| v.as_str());
        report::write_error_doc(f, &self.root, self.code.as_deref(), &self.text, items)
    }
}

/// The API limits as the last response stated them (qualys.md §3), shared by every
/// download of the run so that concurrent calls never exceed the subscription's limit.
#[derive(Debug)]
pub struct Limits {
    state: Mutex<LimitState>,
    freed: Condvar,
}

#[derive(Debug, Clone)]
struct LimitState {
    concurrency: u32,
    /// Slots left for other tools of the subscription (the detection path leaves one).
    reserve: u32,
    running: u32,
    /// No call before this instant (ToWait-Sec with Remaining 0).
    not_before: Option<Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(2)
    }
}

impl Limits {
    /// `concurrency`: calls allowed at once until the headers say otherwise (a typical
    /// subscription allows 2).
    pub fn new(concurrency: u32) -> Limits {
        Limits {
            state: Mutex::new(LimitState {
                concurrency: concurrency.max(1),
                reserve: 0,
                running: 0,
                not_before: None,
            }),
            freed: Condvar::new(),
        }
    }

    /// The concurrency limit as last known.
    pub fn concurrency(&self) -> u32 {
        self.state.lock().map_or(1, |s| s.concurrency)
    }

    /// Leaves `slots` of the subscription's concurrency to other tools: at most the limit
    /// less `slots` calls at once, and always at least one (qualys.md §7: QualysETL leaves
    /// one slot).
    pub fn reserve(&self, slots: u32) {
        if let Ok(mut s) = self.state.lock() {
            s.reserve = slots;
        }
    }

    /// The most calls run at once so far is bounded by this.
    fn allowed(state: &LimitState) -> u32 {
        state.concurrency.saturating_sub(state.reserve).max(1)
    }

    /// Waits for a free slot and for the rate-limit window; a wait longer than `max_wait`
    /// is refused, and every wait ends early on a stop.
    fn acquire(&self, call: &'static str, max_wait: Duration) -> Result<Permit<'_>, DownloadError> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Other calls of this run hold the slots; they end within their own bounds. The
        // wait looks at the run's stop every slice, so it ends with the run.
        while state.running >= Limits::allowed(&state) {
            crate::stop::check()?;
            state = match self.freed.wait_timeout(state, crate::stop::SLICE) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.running += 1;
        let wait = state
            .not_before
            .and_then(|t| t.checked_duration_since(Instant::now()));
        drop(state);
        let permit = Permit { limits: self };
        if let Some(wait) = wait {
            check_wait(call, wait, max_wait)?;
            log::info!(
                "Qualys API rate limit: waiting {:.0?} before the next call",
                wait
            );
            crate::stop::sleep(wait)?;
        }
        Ok(permit)
    }

    /// Reads the limit headers of a response.
    fn observe(&self, response: &Response) {
        let number = |name: &str| {
            response
                .header(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(limit) = number("X-Concurrency-Limit-Limit").filter(|&n| n > 0) {
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            if limit != state.concurrency {
                log::debug!("Qualys API concurrency limit: {limit}");
            }
            state.concurrency = limit;
        }
        let remaining = number("X-RateLimit-Remaining");
        let to_wait = number("X-RateLimit-ToWait-Sec").filter(|&s| s > 0);
        if let Some(secs) = to_wait
            && remaining.is_none_or(|r| r == 0)
        {
            state.not_before = Some(Instant::now() + Duration::from_secs(secs));
        }
        if let (Some(limit), Some(remaining)) = (number("X-RateLimit-Limit"), remaining) {
            log::debug!("Qualys API calls left in this window: {remaining} of {limit}");
        }
        self.freed.notify_all();
    }
}

struct Permit<'a> {
    limits: &'a Limits,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.limits.state.lock() {
            state.running = state.running.saturating_sub(1);
        }
        self.limits.freed.notify_all();
    }
}

/// What a successful download produced.
#[derive(Debug)]
pub struct Downloaded {
    pub bytes: u64,
    pub report_id: Option<String>,
    pub elapsed: Duration,
}

pub struct Qualys {
    http: Client,
    options: QualysOptions,
    limits: Arc<Limits>,
}

impl std::fmt::Debug for Qualys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qualys")
            .field("url", &self.options.url)
            .field("user", &self.options.user)
            .finish()
    }
}

/// How long the delete of a launched report may go on after the run was told to stop.
pub const DELETE_GRACE: Duration = Duration::from_secs(5);

/// The most of an API answer (not the report) read into memory.
const ANSWER_LIMIT: u64 = 4 * 1024 * 1024;

impl Qualys {
    pub fn new(http: Client, options: QualysOptions, limits: Arc<Limits>) -> Qualys {
        Qualys {
            http,
            options,
            limits,
        }
    }

    /// Downloads the report of `template_id` into `out` (truncated first). The file is
    /// complete when this returns Ok: the root element was closed. `follow` hears of every
    /// attempt and byte written, for a reader parsing behind the download.
    pub fn download(
        &self,
        template_id: &str,
        out: &mut File,
        path: &Path,
        follow: &Follow,
    ) -> Result<Downloaded, DownloadError> {
        let started = Instant::now();
        match self.options.api {
            Api::V1 => {
                let query = format!(
                    "/msp/asset_data_report.php?template_id={}",
                    form_encode(template_id)
                );
                let bytes = self.fetch_complete(
                    "asset_data_report.php",
                    None,
                    &query,
                    None,
                    (out, path),
                    follow,
                )?;
                Ok(Downloaded {
                    bytes,
                    report_id: None,
                    elapsed: started.elapsed(),
                })
            }
            Api::V2 => {
                let id = self.launch(template_id)?;
                let result = self.wait_and_fetch(&id, out, path, follow);
                // Report storage is limited: delete it whatever happened (qualys.md §2),
                // also after a signal or max_run_seconds, which must not cut the delete
                // short; bounded by DELETE_GRACE then.
                if let Err(e) = crate::stop::grace(DELETE_GRACE, || self.delete(&id)) {
                    log::warn!("could not delete report {id} on Qualys: {e}");
                }
                let bytes = result?;
                Ok(Downloaded {
                    bytes,
                    report_id: Some(id),
                    elapsed: started.elapsed(),
                })
            }
        }
    }

    /// The concurrency limit as the last answer stated it (2 until one did).
    pub fn concurrency(&self) -> u32 {
        self.limits.concurrency()
    }

    /// One call of the detection path (qualys.md §7): `form` POSTed to `path` under the
    /// configured base URL (never another host), with the limits, retries and timeouts
    /// of every call, the answer streamed into `out` (emptied first). Whether the
    /// document is complete is for its reader to say.
    pub fn post_into(
        &self,
        call: &'static str,
        path: &str,
        form: &str,
        out: &mut File,
    ) -> Result<u64, DownloadError> {
        let local = |source| DownloadError::Local {
            path: PathBuf::from(call),
            source,
        };
        out.set_len(0).map_err(local)?;
        out.seek(SeekFrom::Start(0)).map_err(local)?;
        let response = self.request(call, "POST", path, Some(form.as_bytes()))?;
        let mut writer = BufWriter::with_capacity(256 * 1024, &mut *out);
        let bytes = response.copy_to(&mut writer)?;
        writer.flush().map_err(local)?;
        Ok(bytes)
    }

    /// Logs in and looks the template up in the account's report templates (one cheap
    /// call, for `check`). `Ok(Some(title))` when it exists, `Ok(None)` when it does not.
    pub fn find_template(&self, template_id: &str) -> Result<Option<String>, DownloadError> {
        let response = self.request(
            "report_template_list.php",
            "GET",
            "/msp/report_template_list.php",
            None,
        )?;
        let text = response.text(ANSWER_LIMIT * 4)?;
        let doc = Flat::parse(&text).map_err(|message| DownloadError::Unexpected {
            call: "report_template_list.php",
            message,
        })?;
        if doc.code.is_some() {
            return Err(DownloadError::Qualys {
                call: "report_template_list.php",
                doc: doc.into_error(),
            });
        }
        Ok(template_title(&text, template_id))
    }

    fn report_path(&self) -> String {
        format!("{}/fo/report/", self.options.api_path)
    }

    fn launch(&self, template_id: &str) -> Result<String, DownloadError> {
        let title = format!("qualys-connector {template_id}");
        let body = format!(
            "action=launch&template_id={}&output_format=xml&report_title={}",
            form_encode(template_id),
            form_encode(&title)
        );
        let started = Instant::now();
        let mut wait = self.options.poll_interval.max(Duration::from_secs(1));
        loop {
            let doc = self.call_xml("launch", &body)?;
            if let Some(id) = doc.item("ID") {
                // The ID goes into later calls and messages: Qualys's are numbers.
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(DownloadError::Unexpected {
                        call: "launch",
                        message: format!("a report ID that is not a number ({})", escaped(id)),
                    });
                }
                log::info!("Qualys report {id} launched for template {template_id}");
                return Ok(id.to_string());
            }
            if doc
                .text
                .to_ascii_lowercase()
                .contains("max number of allowed reports")
            {
                if started.elapsed() + wait > self.options.deadline {
                    return Err(DownloadError::Qualys {
                        call: "launch",
                        doc: doc.into_error(),
                    });
                }
                log::info!(
                    "Qualys is busy ({}); launching again in {wait:.0?}",
                    escaped(&doc.text)
                );
                crate::stop::sleep(wait)?;
                wait = (wait * 2).min(Duration::from_secs(300));
                continue;
            }
            return Err(match doc.code {
                Some(_) => DownloadError::Qualys {
                    call: "launch",
                    doc: doc.into_error(),
                },
                None => DownloadError::Unexpected {
                    call: "launch",
                    message: format!("no report ID in the answer ({})", escaped(&doc.text)),
                },
            });
        }
    }

    fn wait_and_fetch(
        &self,
        id: &str,
        out: &mut File,
        path: &Path,
        follow: &Follow,
    ) -> Result<u64, DownloadError> {
        let started = Instant::now();
        let mut wait = self.options.poll_interval;
        let mut last_state = String::from("not listed yet");
        loop {
            let doc = self.call_xml("list", &format!("action=list&id={}", form_encode(id)))?;
            if doc.root != "REPORT_LIST_OUTPUT" {
                return Err(DownloadError::Unexpected {
                    call: "list",
                    message: format!("a {} document", escaped(&doc.root)),
                });
            }
            if let Some(state) = doc.value("STATE") {
                if state != last_state {
                    let percent = doc
                        .value("PERCENT")
                        .map(|p| format!(" ({p}%)"))
                        .unwrap_or_default();
                    log::info!(
                        "Qualys report {id}: {}{}",
                        escaped(state),
                        escaped(&percent)
                    );
                    last_state = state.to_string();
                }
                match state {
                    "Finished" => break,
                    "Canceled" | "Errors" => {
                        return Err(DownloadError::ReportFailed {
                            id: id.to_string(),
                            state: state.to_string(),
                            detail: doc
                                .value("MESSAGE")
                                .map(|m| format!(": {}", escaped(m)))
                                .unwrap_or_default(),
                        });
                    }
                    _ => {}
                }
            }
            if started.elapsed() + wait > self.options.deadline {
                return Err(DownloadError::Deadline {
                    id: id.to_string(),
                    secs: self.options.deadline.as_secs(),
                    state: last_state,
                });
            }
            crate::stop::sleep(wait)?;
            // Back off: reports take minutes to hours (qualys.md §2).
            wait = (wait.mul_f64(1.5)).clamp(Duration::from_millis(10), Duration::from_secs(60));
        }
        let body = format!("action=fetch&id={}", form_encode(id));
        let path_query = self.report_path();
        self.fetch_complete(
            "fetch",
            Some(id),
            &path_query,
            Some(body.as_bytes()),
            (out, path),
            follow,
        )
    }

    fn delete(&self, id: &str) -> Result<(), DownloadError> {
        let doc = self.call_xml("delete", &format!("action=delete&id={}", form_encode(id)))?;
        match doc.code {
            Some(_) => Err(DownloadError::Qualys {
                call: "delete",
                doc: doc.into_error(),
            }),
            None => {
                log::debug!("Qualys report {id} deleted");
                Ok(())
            }
        }
    }

    /// Basic auth, `X-Requested-With`, and the form type for a call with a body.
    fn headers(&self, form: bool) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (
                "Authorization",
                http::basic_auth(&self.options.user, &self.options.password),
            ),
            ("X-Requested-With", "qualys-connector".to_string()),
        ];
        if form {
            headers.push(("Content-Type", "application/x-www-form-urlencoded".into()));
        }
        headers
    }

    /// One v2 call answered by a small XML document (launch, list, delete).
    fn call_xml(&self, call: &'static str, body: &str) -> Result<Flat, DownloadError> {
        let path = self.report_path();
        let response = self.request(call, "POST", &path, Some(body.as_bytes()))?;
        let text = response.text(ANSWER_LIMIT)?;
        let doc =
            Flat::parse(&text).map_err(|message| DownloadError::Unexpected { call, message })?;
        if doc.root == "SIMPLE_RETURN" && doc.code.is_some() {
            return Err(DownloadError::Qualys {
                call,
                doc: doc.into_error(),
            });
        }
        Ok(doc)
    }

    /// Sends a request, retrying 409 (after ToWait-Sec), 5xx (jittered back-off) and
    /// network trouble, bounded by `retries`. Returns a 2xx response whose body is unread.
    fn request(
        &self,
        call: &'static str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, DownloadError> {
        let headers = self.headers(body.is_some());
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self.limits.acquire(call, self.options.max_wait)?;
            let result = self
                .http
                .send(&self.options.url, method, path, &headers, body);
            let response = match result {
                Ok(r) => r,
                Err(e) if e.is_transient() && attempt <= self.options.retries => {
                    drop(permit);
                    let wait = backoff(attempt);
                    log::warn!("Qualys {call}: {e}; trying again in {wait:.1?}");
                    crate::stop::sleep(wait)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.limits.observe(&response);
            drop(permit);
            match response.status {
                200..=299 => return Ok(response),
                409 if attempt <= self.options.retries => {
                    let to_wait = response
                        .header("X-RateLimit-ToWait-Sec")
                        .or_else(|| response.header("X-Concurrency-Limit-ToWait-Sec"))
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = response.text(ANSWER_LIMIT).unwrap_or_default();
                    let doc = Flat::parse(&text).unwrap_or_default();
                    let wait = to_wait
                        .or_else(|| seconds_in(&doc.text))
                        .map_or_else(|| backoff(attempt), Duration::from_secs);
                    check_wait(call, wait, self.options.max_wait)?;
                    log::warn!(
                        "Qualys {call}: HTTP 409{}: {}; trying again in {wait:.0?}",
                        doc.code
                            .as_deref()
                            .map(|c| format!(" CODE {}", escaped(c)))
                            .unwrap_or_default(),
                        escaped(&doc.text)
                    );
                    crate::stop::sleep(wait)?;
                }
                500..=599 if attempt <= self.options.retries => {
                    let wait = backoff(attempt);
                    log::warn!(
                        "Qualys {call}: HTTP {} {}; trying again in {wait:.1?}",
                        response.status,
                        escaped(&response.reason)
                    );
                    crate::stop::sleep(wait)?;
                }
                status => return Err(refused(call, status, response)),
            }
        }
    }

    /// Streams the report into `out`, checks it is complete, and fetches again when it
    /// is not (qualys.md §4: a truncated download must never be half-applied).
    fn fetch_complete(
        &self,
        call: &'static str,
        id: Option<&str>,
        path_query: &str,
        body: Option<&[u8]>,
        (out, path): (&mut File, &Path),
        follow: &Follow,
    ) -> Result<u64, DownloadError> {
        let local = |source| DownloadError::Local {
            path: path.to_path_buf(),
            source,
        };
        let method = if body.is_some() { "POST" } else { "GET" };
        // One deadline for the whole transfer, retries included.
        let until = Instant::now() + self.options.bounds.deadline;
        let space = out.try_clone().map_err(local)?;
        let mut tries = 0;
        loop {
            tries += 1;
            follow.begin();
            out.set_len(0).map_err(local)?;
            out.seek(SeekFrom::Start(0)).map_err(local)?;
            let response = self.request(call, method, path_query, body)?;
            let length = response
                .header("Content-Length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            crate::progress::stage(crate::progress::Stage::Download, length);
            let copied = {
                let tapped = Tapped {
                    inner: &mut *out,
                    follow,
                };
                let mut writer = BufWriter::with_capacity(256 * 1024, tapped);
                let bounds = self.options.bounds;
                let mut bounded = Bounded::new(&mut writer, &space, path, bounds, until);
                let copied = response.copy_to(&mut bounded);
                writer.flush().map_err(local)?;
                copied
            };
            let problem = match copied {
                Ok(bytes) => match check_complete(out).map_err(local)? {
                    // The last bytes look right; the parser's end of document decides.
                    Completeness::Complete => match ended(out, follow).map_err(local)? {
                        None => {
                            follow.complete();
                            log::info!("downloaded {bytes} bytes");
                            return Ok(bytes);
                        }
                        Some(reason) => reason,
                    },
                    Completeness::ErrorDocument(text) => {
                        let doc = Flat::parse(&text).unwrap_or_default();
                        if doc.code.is_none() {
                            // A reply without CODE is no error ("New report launched"),
                            // but it is not the report either.
                            return Err(DownloadError::Unexpected {
                                call,
                                message: format!(
                                    "an API reply instead of the report ({})",
                                    doc.into_error()
                                ),
                            });
                        }
                        // 7001: report not ready for fetch yet: retryable.
                        if doc.code.as_deref() == Some("7001") && tries <= self.options.retries {
                            crate::stop::sleep(backoff(tries))?;
                            continue;
                        }
                        return Err(DownloadError::Qualys {
                            call,
                            doc: doc.into_error(),
                        });
                    }
                    Completeness::WebPage => {
                        return Err(DownloadError::Unexpected {
                            call,
                            message: "a web page instead of a report".into(),
                        });
                    }
                    Completeness::Truncated(reason) => reason,
                },
                Err(HttpError::Io { host, source }) if host == "the local file" => {
                    return Err(match Exceeded::take(source) {
                        Ok(exceeded) => exceeded.into(),
                        Err(source) => local(source),
                    });
                }
                Err(HttpError::Stopped(stopped)) => return Err(stopped.into()),
                Err(e) => e.to_string(),
            };
            let report = id.unwrap_or("(v1)");
            if tries > self.options.retries {
                return Err(DownloadError::Truncated {
                    id: report.to_string(),
                    tries,
                    reason: problem,
                });
            }
            log::warn!("download of report {report} incomplete ({problem}); fetching again");
            crate::stop::sleep(backoff(tries))?;
        }
    }
}

/// Server text as one safe log line (servertext).
fn escaped(text: &str) -> String {
    servertext::escape(text.as_bytes(), servertext::MAX_TEXT_CHARS)
}

/// The error for a non-2xx answer that is not retried (any more): its Qualys document
/// with the status and limit headers (for the hint), or the status with a bounded,
/// escaped piece of the body.
fn refused(call: &'static str, status: u16, response: Response) -> DownloadError {
    let limits = limits_of(&response);
    let text = response.text(ANSWER_LIMIT).unwrap_or_default();
    if let Ok(doc) = Flat::parse(&text)
        && doc.code.is_some()
    {
        let mut doc = doc.into_error();
        let limits = advice::Limits {
            to_wait_sec: limits.to_wait_sec.or_else(|| seconds_in(&doc.text)),
            ..limits
        };
        doc.answer = Some(Box::new(Answer { status, limits }));
        return DownloadError::Qualys { call, doc };
    }
    let snippet: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let snippet = servertext::escape(snippet.as_bytes(), 200);
    DownloadError::Status {
        call,
        status,
        detail: if snippet.is_empty() {
            String::new()
        } else {
            format!(": {snippet}")
        },
    }
}

/// The limit headers of an answer (qualys.md §3), as numbers.
fn limits_of(response: &Response) -> advice::Limits {
    let number = |name: &str| {
        response
            .header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    advice::Limits {
        to_wait_sec: number("X-RateLimit-ToWait-Sec")
            .or_else(|| number("X-Concurrency-Limit-ToWait-Sec"))
            .filter(|&s| s > 0),
        window_sec: number("X-RateLimit-Window-Sec"),
        calls: number("X-RateLimit-Limit"),
    }
}

/// Refuses a wait longer than `qualys_max_wait`: a server asking for 999999 s would
/// otherwise hold the run for days (qualys.md §3).
fn check_wait(call: &'static str, wait: Duration, max: Duration) -> Result<(), DownloadError> {
    if wait > max {
        return Err(DownloadError::WaitTooLong {
            call,
            secs: wait.as_secs(),
            max: max.as_secs(),
        });
    }
    Ok(())
}

/// 1 s, 2 s, 4 s ... capped at 60 s, with up to 50% jitter so that several clients do
/// not retry in step (qualys.md §3: "do not stack retries").
fn backoff(attempt: u32) -> Duration {
    backoff_from(Duration::from_secs(1), attempt)
}

/// `first`, doubled after each attempt (at most 6 times, capped at 60 s), with up to 50%
/// jitter.
pub(crate) fn backoff_from(first: Duration, attempt: u32) -> Duration {
    let base = (first * (1u32 << attempt.saturating_sub(1).min(6))).min(Duration::from_secs(60));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 500) / 1000.0)
}

/// "... please try again in 37 seconds" → 37.
fn seconds_in(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        w[1].to_ascii_lowercase()
            .starts_with("second")
            .then(|| w[0].parse().ok())
            .flatten()
    })
}

pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

enum Completeness {
    Complete,
    Truncated(String),
    ErrorDocument(String),
    WebPage,
}

/// Whether the downloaded document ended (`None`) or was cut (`Some(reason)`), by the
/// parser's own end of document: the verdict of the parse behind the download, or, when
/// none followed this attempt, a parse of the file here (qualys.md §4). A document the
/// parser rejects for what it holds counts as ended: the real parse reports it.
fn ended(file: &mut File, follow: &Follow) -> io::Result<Option<String>> {
    match follow.transferred() {
        Verdict::Ended => return Ok(None),
        Verdict::Cut(reason) => return Ok(Some(reason)),
        Verdict::Undecided => {}
    }
    struct Nothing;
    impl report::ReportVisitor for Nothing {
        fn host(&mut self, _: &crate::model::Host) -> io::Result<()> {
            Ok(())
        }
        fn vuln_details(&mut self, _: u32, _: crate::model::VulnDetails) {}
    }
    file.seek(SeekFrom::Start(0))?;
    let options = report::ParseOptions {
        description_length: 0,
    };
    let result = report::parse(io::BufReader::new(&mut *file), options, &mut Nothing);
    file.seek(SeekFrom::Start(0))?;
    Ok(match result {
        Err(e @ (report::ReportError::Incomplete { .. } | report::ReportError::Empty)) => {
            Some(e.to_string())
        }
        Err(report::ReportError::Io(e)) => return Err(e),
        _ => None,
    })
}

/// Looks at the file's root element and its end: an ASSET_DATA_REPORT must end with its
/// closing tag (only comments and whitespace may follow).
fn check_complete(file: &mut File) -> io::Result<Completeness> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Completeness::Truncated("empty answer".into()));
    }
    let mut head = vec![0u8; 4096.min(len as usize)];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    let head_text = String::from_utf8_lossy(&head);
    let root = first_element(&head_text);
    match root.as_deref() {
        Some("SIMPLE_RETURN" | "GENERIC_RETURN") => {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0))?;
            file.take(ANSWER_LIMIT).read_to_string(&mut text)?;
            return Ok(Completeness::ErrorDocument(text));
        }
        Some("html" | "HTML") => return Ok(Completeness::WebPage),
        Some("SCAN") if scan_error(&head_text) => {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0))?;
            file.take(ANSWER_LIMIT).read_to_string(&mut text)?;
            return Ok(Completeness::ErrorDocument(text));
        }
        _ => {}
    }
    let tail_len = len.min(64 * 1024);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.read_exact(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::from_utf8_lossy(&tail).into_owned();
    // Strip trailing whitespace and comments.
    loop {
        let trimmed = text.trim_end();
        if trimmed.ends_with("-->") {
            match trimmed.rfind("<!--") {
                Some(i) => text.truncate(i),
                None => break,
            }
        } else {
            text.truncate(trimmed.len());
            break;
        }
    }
    let Some(root) = root else {
        return Ok(Completeness::Truncated(
            "no XML element in the answer".into(),
        ));
    };
    let closing = format!("</{root}>");
    if text.ends_with(&closing) || (text.ends_with("/>") && len < 4096) {
        Ok(Completeness::Complete)
    } else {
        Ok(Completeness::Truncated(format!(
            "it does not end with {closing} ({len} bytes received)"
        )))
    }
}

/// True when the second element of `text` is an ERROR: `<SCAN><ERROR number="…">`, the
/// v1 scan API's error document.
fn scan_error(text: &str) -> bool {
    let mut reader = Reader::from_str(text);
    let mut elements = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                elements += 1;
                if elements == 2 {
                    return e.name().as_ref() == "ERROR";
                }
            }
            Ok(Event::Eof) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// The name of the first element in `text` (after declaration, comments, DOCTYPE).
fn first_element(text: &str) -> Option<String> {
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => return Some(e.name().as_ref().to_string()),
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A small API answer flattened to the values the client looks at.
#[derive(Debug, Clone, Default)]
struct Flat {
    root: String,
    code: Option<String>,
    text: String,
    /// ITEM_LIST KEY/VALUE pairs.
    items: Vec<(String, String)>,
    /// Every leaf element's text by element name, first occurrence.
    values: Vec<(String, String)>,
}

impl Flat {
    fn parse(text: &str) -> Result<Flat, String> {
        let mut reader = Reader::from_str(text);
        let mut flat = Flat::default();
        let mut stack: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut key: Option<String> = None;
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    let name = e.name().as_ref().to_string();
                    if stack.is_empty() {
                        flat.root = name.clone();
                    }
                    stack.push(name);
                    current.clear();
                }
                Ok(Event::Empty(e)) => {
                    if stack.is_empty() {
                        flat.root = e.name().as_ref().to_string();
                    }
                }
                Ok(Event::Text(t)) => current.push_str(&t),
                Ok(Event::CData(t)) => current.push_str(&t),
                Ok(Event::GeneralRef(r)) => {
                    let name: &str = &r;
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => current.push(c),
                        _ => current.push_str(match name {
                            "lt" => "<",
                            "gt" => ">",
                            "amp" => "&",
                            "quot" => "\"",
                            "apos" => "'",
                            _ => "",
                        }),
                    }
                }
                Ok(Event::End(_)) => {
                    let Some(name) = stack.pop() else { break };
                    let value = current.split_whitespace().collect::<Vec<_>>().join(" ");
                    match name.as_str() {
                        "CODE" if flat.code.is_none() => flat.code = Some(value.clone()),
                        "TEXT" if flat.text.is_empty() => flat.text = value.clone(),
                        "KEY" => key = Some(value.clone()),
                        "VALUE" => flat
                            .items
                            .push((key.take().unwrap_or_default(), value.clone())),
                        _ => {}
                    }
                    if (name == "RETURN" && flat.root == "GENERIC_RETURN")
                        || (name == "ERROR" && flat.root == "SCAN" && stack.len() == 1)
                    {
                        flat.text = value.clone();
                    }
                    if !value.is_empty() && !flat.values.iter().any(|(k, _)| *k == name) {
                        flat.values.push((name, value));
                    }
                    current.clear();
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "not XML: {}",
                        servertext::escape(e.to_string().as_bytes(), 200)
                    ));
                }
            }
        }
        if flat.root.is_empty() {
            return Err(format!(
                "not XML: {}",
                servertext::escape(text.trim().as_bytes(), 80)
            ));
        }
        // v1 errors: <RETURN status="FAILED" number="2003">text</RETURN>, and the scan
        // API's <SCAN><ERROR number="19001">text</ERROR></SCAN>.
        let numbered = match flat.root.as_str() {
            "GENERIC_RETURN" => Some("RETURN"),
            "SCAN" => Some("ERROR"),
            _ => None,
        };
        if let Some(element) = numbered
            && let Some(number) = attribute_value(text, element, "number")
        {
            flat.code = Some(number);
        }
        if flat.root == "html" || flat.root == "HTML" {
            return Err("a web page instead of an API answer".into());
        }
        Ok(flat)
    }

    fn item(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn into_error(self) -> ErrorDoc {
        ErrorDoc {
            root: self.root,
            code: self.code,
            text: self.text,
            items: self.items,
            ..ErrorDoc::default()
        }
    }
}

/// The TITLE of the REPORT_TEMPLATE whose ID is `id` in a template list.
fn template_title(text: &str, id: &str) -> Option<String> {
    let mut reader = Reader::from_str(text);
    let (mut current_id, mut current_title) = (String::new(), String::new());
    let mut field: Option<&'static str> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => match e.name().as_ref() {
                "REPORT_TEMPLATE" => {
                    current_id.clear();
                    current_title.clear();
                }
                "ID" => field = Some("id"),
                "TITLE" => field = Some("title"),
                _ => field = None,
            },
            Ok(Event::Text(t)) => match field {
                Some("id") => current_id.push_str(t.trim()),
                Some("title") => current_title.push_str(t.trim()),
                _ => {}
            },
            Ok(Event::CData(t)) => {
                if field == Some("title") {
                    current_title.push_str(t.trim());
                }
            }
            Ok(Event::End(e)) => {
                if e.name().as_ref() == "REPORT_TEMPLATE" && current_id == id {
                    return Some(current_title.clone());
                }
                field = None;
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn attribute_value(text: &str, element: &str, attribute: &str) -> Option<String> {
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.name().as_ref() == element => {
                return e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == attribute)
                    .map(|a| a.value.into_owned());
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_flattened() {
        let launched = "<?xml version=\"1.0\"?><SIMPLE_RETURN><RESPONSE><DATETIME>x</DATETIME><TEXT>New report launched</TEXT><ITEM_LIST><ITEM><KEY>ID</KEY><VALUE>4242</VALUE></ITEM></ITEM_LIST></RESPONSE></SIMPLE_RETURN>";
        let f = Flat::parse(launched).unwrap();
        assert_eq!(
            (f.root.as_str(), f.code.as_deref(), f.item("ID")),
            ("SIMPLE_RETURN", None, Some("4242"))
        );

        let listed = "<REPORT_LIST_OUTPUT><RESPONSE><REPORT_LIST><REPORT><ID>4242</ID><STATUS><STATE>Running</STATE><PERCENT>40</PERCENT></STATUS></REPORT></REPORT_LIST></RESPONSE></REPORT_LIST_OUTPUT>";
        let f = Flat::parse(listed).unwrap();
        assert_eq!(
            (f.value("STATE"), f.value("PERCENT")),
            (Some("Running"), Some("40"))
        );

        let bad_login = "<SIMPLE_RETURN>\n <RESPONSE>\n <CODE>2010</CODE>\n <TEXT>Bad Login/Password</TEXT>\n </RESPONSE>\n</SIMPLE_RETURN>";
        let e = Flat::parse(bad_login).unwrap().into_error();
        assert_eq!(e.to_string(), "SIMPLE_RETURN CODE 2010: Bad Login/Password");

        let v1 = "<GENERIC_RETURN><API name=\"asset_data_report.php\"/><RETURN status=\"FAILED\" number=\"2003\">Registration failed</RETURN></GENERIC_RETURN>";
        let e = Flat::parse(v1).unwrap().into_error();
        assert_eq!(
            e.to_string(),
            "GENERIC_RETURN CODE 2003: Registration failed"
        );

        assert!(
            Flat::parse("<html><body>Login</body></html>")
                .unwrap_err()
                .contains("web page")
        );
        assert!(Flat::parse("{\"json\": 1}").is_err());
    }

    #[test]
    fn hints_by_code() {
        let doc = |code: &str, item: &str| DownloadError::Qualys {
            call: "launch",
            doc: ErrorDoc {
                root: "SIMPLE_RETURN".into(),
                code: Some(code.into()),
                text: "Internal error".into(),
                items: vec![("Incident Signature".into(), item.into())],
                ..ErrorDoc::default()
            },
        };
        // A real EU bad login: HTTP 401 with CODE 2000.
        let eu_bad_login = DownloadError::Qualys {
            call: "launch",
            doc: ErrorDoc {
                root: "SIMPLE_RETURN".into(),
                code: Some("2000".into()),
                text: "Bad Login/Password".into(),
                answer: Some(Box::new(Answer {
                    status: 401,
                    ..Answer::default()
                })),
                ..ErrorDoc::default()
            },
        };
        // 409 after the retries: the limits, and when to run again.
        let limited = DownloadError::Qualys {
            call: "launch",
            doc: ErrorDoc {
                root: "SIMPLE_RETURN".into(),
                code: Some("1965".into()),
                text: "API rate limit exceeded.".into(),
                answer: Some(Box::new(Answer {
                    status: 409,
                    limits: advice::Limits {
                        to_wait_sec: Some(42),
                        window_sec: Some(3600),
                        calls: Some(300),
                    },
                })),
                ..ErrorDoc::default()
            },
        };
        let cases = [
            (doc("2010", ""), Some("single quotes")),
            (
                doc("999", "Tried to launch invalid report."),
                Some("check template_id"),
            ),
            (doc("999", "other"), None),
            (doc("2001", ""), Some("expired")),
            (doc("2007", ""), Some("secure IP list")),
            (doc("1905", ""), Some("parameter")),
            (
                eu_bad_login,
                Some("check that url names your account's platform"),
            ),
            (limited, Some("Qualys asked to wait 42 s")),
            (
                DownloadError::Status {
                    call: "launch",
                    status: 401,
                    detail: String::new(),
                },
                Some("check user_id and password"),
            ),
        ];
        for (error, want) in cases {
            match (error.hint(), want) {
                (Some(h), Some(w)) => assert!(h.contains(w), "{error}: {h}"),
                (None, None) => {}
                (got, want) => panic!("{error}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn template_titles() {
        let list = "<REPORT_TEMPLATE_LIST><REPORT_TEMPLATE><ID>1</ID><TITLE><![CDATA[One]]></TITLE></REPORT_TEMPLATE><REPORT_TEMPLATE><ID>424242</ID><TYPE>Auto</TYPE><TITLE><![CDATA[ Scan Report ]]></TITLE></REPORT_TEMPLATE></REPORT_TEMPLATE_LIST>";
        assert_eq!(
            template_title(list, "424242").as_deref(),
            Some("Scan Report")
        );
        assert_eq!(template_title(list, "1").as_deref(), Some("One"));
        assert_eq!(template_title(list, "7"), None);
    }

    #[test]
    fn small_helpers() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(seconds_in("Please try again in 37 seconds."), Some(37));
        assert_eq!(seconds_in("no number here"), None);
        for attempt in 1..10 {
            let b = backoff(attempt);
            assert!(
                b >= Duration::from_secs(1) && b <= Duration::from_secs(90),
                "{b:?}"
            );
        }
    }

    fn file_with(content: &str) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        let handle = f.reopen().unwrap();
        (f, handle)
    }

    #[test]
    fn completeness() {
        let cases = [
            (
                "<?xml version=\"1.0\"?><!DOCTYPE ASSET_DATA_REPORT SYSTEM \"x\"><ASSET_DATA_REPORT><HOST_LIST/></ASSET_DATA_REPORT>\n<!-- c -->\n ",
                "complete",
            ),
            ("<ASSET_DATA_REPORT><HOST_LIST><HOST>", "truncated"),
            ("<!-- keep-alive --><ASSET_DATA_REPORT>", "truncated"),
            (
                "<SIMPLE_RETURN><RESPONSE><CODE>7001</CODE></RESPONSE></SIMPLE_RETURN>",
                "error",
            ),
            ("<html><body>proxy</body></html>", "web"),
            ("", "truncated"),
            ("<!-- keep-alive -->", "truncated"),
        ];
        for (content, want) in cases {
            let (_keep, mut f) = file_with(content);
            let got = match check_complete(&mut f).unwrap() {
                Completeness::Complete => "complete",
                Completeness::Truncated(_) => "truncated",
                Completeness::ErrorDocument(_) => "error",
                Completeness::WebPage => "web",
            };
            assert_eq!(got, want, "{content:?}");
        }
    }

    /// With no parse behind the download, the file is parsed here: only a document whose
    /// root element closed counts as ended, whatever its last bytes look like.
    #[test]
    fn parser_end_of_document_decides() {
        let whole = "<ASSET_DATA_REPORT><HEADER><COMPANY><![CDATA[X </ASSET_DATA_REPORT>]]></COMPANY></HEADER></ASSET_DATA_REPORT>";
        let cut_in_cdata = &whole[..whole.find("</ASSET_DATA_REPORT>").unwrap() + 20];
        let cases = [
            (whole, None),
            (cut_in_cdata, Some("the report is incomplete")),
            ("<ASSET_DATA_REPORT><A></B></ASSET_DATA_REPORT>", None),
            ("<!-- only a comment -->", Some("the report is empty")),
        ];
        for (content, want) in cases {
            let (_keep, mut f) = file_with(content);
            let got = ended(&mut f, &Follow::new()).unwrap();
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(reason)) => assert!(reason.contains(w), "{content}: {reason}"),
                _ => panic!("{content}: {got:?}"),
            }
        }
        // The tail check alone takes the cut for a whole report.
        let (_keep, mut f) = file_with(cut_in_cdata);
        assert!(matches!(
            check_complete(&mut f).unwrap(),
            Completeness::Complete
        ));
    }

    #[test]
    fn waits_beyond_qualys_max_wait_are_refused() {
        let max = Duration::from_secs(60);
        // (asked, refused)
        let cases = [(0, false), (60, false), (61, true), (999_999, true)];
        for (secs, refused) in cases {
            let result = check_wait("launch", Duration::from_secs(secs), max);
            assert_eq!(result.is_err(), refused, "{secs} s");
            if let Err(e) = result {
                assert!(e.to_string().contains("qualys_max_wait (60 s)"), "{e}");
            }
        }
    }

    #[test]
    fn a_stopped_download_exits_as_the_stop() {
        use crate::exit::Failure;
        use crate::stop::Stopped;
        let cases = [
            (Stopped::Signal(15), 143),
            (Stopped::Signal(2), 130),
            (Stopped::Deadline(Duration::from_secs(5)), 7),
        ];
        for (stopped, code) in cases {
            let failure = Failure::Download(Box::new(DownloadError::Stopped(stopped)));
            assert_eq!(failure.code() as i32, code, "{stopped}");
        }
    }

    #[test]
    fn limits_bound_concurrency() {
        let limits = Arc::new(Limits::new(2));
        let peak = Arc::new(Mutex::new((0u32, 0u32)));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let limits = Arc::clone(&limits);
                let peak = Arc::clone(&peak);
                std::thread::spawn(move || {
                    let _permit = limits.acquire("test", Duration::from_secs(1)).unwrap();
                    {
                        let mut p = peak.lock().unwrap();
                        p.0 += 1;
                        p.1 = p.1.max(p.0);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    peak.lock().unwrap().0 -= 1;
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.lock().unwrap().1, 2);
    }
}
