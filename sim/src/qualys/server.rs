//! The simulated Qualys API server (qualys.md §1–§4), over HTTP or HTTPS: the Report API
//! v2 (`/api/<version>/fo/report/`: launch, list, fetch, delete), the synchronous v1
//! `/msp/asset_data_report.php` and `/msp/report_template_list.php`, Basic auth with the
//! raw password, the limit headers on every response, and the faults the connector must
//! survive (§3–§4): rate and concurrency limits, 503s, busy launches, expired accounts,
//! reports that never finish or end in Errors, trickled and cut-off downloads.
//!
//! One thread per connection; keep-alive is honoured but `Connection: close` is what the
//! connector sends. Each request is checked in this order, the first that applies
//! answering it (a fault counter counts only the requests that reach it):
//! 1. `server_error_first`: HTTP 503 with a short HTML page;
//! 2. a v2 call (`/api/…`) without `X-Requested-With`: HTTP 400, CODE 1905;
//! 3. wrong or missing Basic credentials: HTTP 401, CODE 2010 (the guide's document);
//! 4. `expired_account`: HTTP 200, CODE 2001, no XML declaration;
//! 5. more calls in progress than `concurrency_limit`: HTTP 409, CODE 1960;
//! 6. `rate_limit_first`: HTTP 409, CODE 1965;
//! 7. the call itself (unknown path: HTTP 404).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde::Serialize;
use time::OffsetDateTime;

use super::body::{Cut, Framed, Trickle};
use super::estate::{self, Estate, Query};
use super::generate::{GenSpec, generate};
use super::http::{self, ReadError, Request, cdata, xml_escape};
use super::tls;

/// `X-RateLimit-Limit` (qualys.md §3: a typical subscription allows 300 calls an hour).
pub const RATE_LIMIT: u64 = 300;
/// `X-RateLimit-Window-Sec`.
pub const RATE_WINDOW_SEC: u64 = 3600;

/// A client idle this long between requests is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A client that does not read for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Copy buffer between a report's source and the connection.
const BODY_BUFFER: usize = 64 * 1024;

const SIMPLE_RETURN_DTD: &str = "https://qualysapi.qualys.com/api/2.0/simple_return.dtd";
const REPORT_LIST_DTD: &str =
    "https://qualysapi.qualys.com/api/2.0/fo/report/report_list_output.dtd";

/// Where a template's report comes from.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    /// A file served as it is (read at each fetch, so it may change between fetches).
    File(PathBuf),
    /// A synthetic report generated while it is sent (never held in memory).
    Generated(GenSpec),
}

impl TemplateSource {
    /// Parses the value of `--template ID=…`: a file name, or
    /// `gen:hosts=N,seed=S[,findings=M][,qids=Q][,ipv6-every=K][,glossary-first]`.
    pub fn parse(text: &str) -> Result<TemplateSource, String> {
        let Some(spec) = text.strip_prefix("gen:") else {
            if text.is_empty() {
                return Err("empty file name".into());
            }
            return Ok(TemplateSource::File(PathBuf::from(text)));
        };
        let mut gen_spec = GenSpec::default();
        let (mut hosts, mut seed) = (None, None);
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "glossary-first" {
                gen_spec.glossary_first = true;
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` in `{text}` is not name=value"))?;
            let digits: String = value.chars().filter(|&c| c != '_').collect();
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("`{name}={value}`: not a number"))?;
            let small = || u32::try_from(n).map_err(|_| format!("`{name}={value}`: too large"));
            match name {
                "hosts" => hosts = Some(n),
                "seed" => seed = Some(n),
                "findings" => gen_spec.findings_per_host = small()?,
                "qids" => gen_spec.qids = small()?.max(1),
                "ipv6-every" | "ipv6_every" => gen_spec.ipv6_every = n,
                other => {
                    return Err(format!(
                        "unknown generator option `{other}` (hosts, seed, findings, qids, ipv6-every, glossary-first)"
                    ));
                }
            }
        }
        gen_spec.hosts = hosts.ok_or_else(|| format!("`{text}` needs hosts=N"))?;
        gen_spec.seed = seed.ok_or_else(|| format!("`{text}` needs seed=S"))?;
        Ok(TemplateSource::Generated(gen_spec))
    }

    /// The template's title in `report_template_list.php` and the report list.
    fn title(&self) -> String {
        match self {
            TemplateSource::File(path) => format!(
                "Scan Report ({})",
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into()
                )
            ),
            TemplateSource::Generated(spec) => format!(
                "Generated Scan Report (hosts={}, seed={})",
                spec.hosts, spec.seed
            ),
        }
    }
}

/// What the server does and which faults it injects; the field names follow the
/// `qualys-sim serve` flags. A fault counter (`*_first`) counts only the requests that
/// reach its check (see the module documentation for the order).
#[derive(Clone)]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port (default 127.0.0.1:0).
    pub listen: SocketAddr,
    /// Basic-auth user name.
    pub user: String,
    /// Basic-auth password, compared byte for byte (qualys.md §1: never URL-decoded).
    pub password: String,
    /// Template ID → report. The first entry wins when an ID repeats.
    pub templates: Vec<(String, TemplateSource)>,
    /// HTTPS with the CA and server certificate of this directory (created once);
    /// clients trust `DIR/ca.pem`. `None`: plain HTTP.
    pub tls_dir: Option<PathBuf>,
    /// A launched report is Submitted for the first quarter of this delay, then Running
    /// (with PERCENT), then Finished (default 200).
    pub report_delay_ms: u64,
    /// The first K calls reaching the check answer HTTP 409, CODE 1965, with
    /// `X-RateLimit-ToWait-Sec` and `X-RateLimit-Remaining: 0`; the call is not performed.
    pub rate_limit_first: u32,
    /// The value of `X-RateLimit-ToWait-Sec` (default 1).
    pub to_wait_sec: u64,
    /// Report downloads (v2 fetch and v1) are trickled: keep-alive comments, then small
    /// pieces, this many ms apart (0: off).
    pub trickle_ms: u64,
    /// The first report download (v2 fetch or v1) stops halfway through its body and the
    /// connection is dropped without ending the body (no final chunk, no TLS close_notify).
    pub cut_body_once: bool,
    /// The first report download (v2 fetch or v1) of a file template is the file up to
    /// and including the first occurrence of these bytes, as a properly framed body (the
    /// HTTP layer sees nothing wrong): a document that ends early with a plausible-looking
    /// end, e.g. right after a CDATA that holds `</ASSET_DATA_REPORT>`. The file is read
    /// into memory: for small test files.
    pub cut_body_after: Option<Vec<u8>>,
    /// Report downloads carry `Content-Encoding: <this>` (the body is sent as it is), as
    /// behind a proxy that recompresses answers.
    pub content_encoding: Option<String>,
    /// Report downloads never end: the XML head, then keep-alive comments, chunked, until
    /// the client hangs up (a server stuck in a loop); slowly with `trickle_ms`.
    pub endless_body: bool,
    /// Reports never leave Running.
    pub stuck: bool,
    /// A delete call waits this many ms before it deletes and answers (0: at once).
    pub delete_delay_ms: u64,
    /// Reports end in state Errors instead of Finished.
    pub errors_state: bool,
    /// Every authenticated call answers CODE 2001 "Your account has expired." with HTTP
    /// 200 and no XML declaration.
    pub expired_account: bool,
    /// The first K valid launches answer "Max number of allowed reports already running.
    /// Please try again later." (HTTP 200, no CODE) and launch nothing.
    pub busy_first: u32,
    /// `X-Concurrency-Limit-Limit` (default 2); a call that finds more than this many calls
    /// in progress (itself included) answers HTTP 409, CODE 1960. 0: no limit.
    pub concurrency_limit: u32,
    /// The first K requests answer HTTP 503 with a short HTML page.
    pub server_error_first: u32,
    /// The first `calls` authenticated calls answer this error document (for the codes
    /// no other option produces: 2007, 19xx, 1960 ...).
    pub inject: Option<InjectedError>,
    /// The first `calls` authenticated calls (of `action`, when set) answer these bytes
    /// as they are: Qualys documents no other option produces (success replies, other
    /// document kinds, text with control characters or invalid UTF-8).
    pub inject_body: Option<InjectedBody>,
    /// The detection path's estate (Host List, Host List Detection, KnowledgeBase;
    /// qualys.md §7); `None`: those paths answer 404.
    pub estate: Option<Arc<Estate>>,
    /// The host the paging WARNING's URL names (default: the request's `Host`), to
    /// test that a client never follows it elsewhere.
    pub warning_host: Option<String>,
    /// The first N Host List Detection calls, and the first M KnowledgeBase calls, stall
    /// for `stall_ms` before answering (a client gives up on them at its idle timeout).
    pub stall_pages_first: u32,
    pub stall_kb_first: u32,
    pub stall_ms: u64,
    /// A host ID the Host List leaves out while Host List Detection returns it.
    pub unlisted_host: Option<u64>,
    /// After this many Host List Detection pages, the next call answers an error
    /// document once (CODE 999), as a platform failing mid-run does.
    pub error_after_pages: Option<u32>,
    /// Each Host List Detection page waits this long before it is sent (Qualys's latency:
    /// a sleep, not CPU).
    pub page_delay_ms: u64,
    /// The most hosts a Host List Detection page holds, whatever `truncation_limit` asks
    /// for (the platform's own page limit); `None`: as asked.
    pub max_page_hosts: Option<usize>,
    /// The first N Host List Detection pages are sent cut in half (a whole HTTP answer
    /// whose document ends mid-element), as a proxy or a failing server may.
    pub cut_pages_first: u32,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("listen", &self.listen)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("templates", &self.templates)
            .field("tls_dir", &self.tls_dir)
            .field("report_delay_ms", &self.report_delay_ms)
            .field("rate_limit_first", &self.rate_limit_first)
            .field("to_wait_sec", &self.to_wait_sec)
            .field("trickle_ms", &self.trickle_ms)
            .field("cut_body_once", &self.cut_body_once)
            .field("cut_body_after", &self.cut_body_after.is_some())
            .field("content_encoding", &self.content_encoding)
            .field("endless_body", &self.endless_body)
            .field("stuck", &self.stuck)
            .field("delete_delay_ms", &self.delete_delay_ms)
            .field("errors_state", &self.errors_state)
            .field("expired_account", &self.expired_account)
            .field("busy_first", &self.busy_first)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("server_error_first", &self.server_error_first)
            .field("inject", &self.inject.is_some())
            .field("inject_body", &self.inject_body.is_some())
            .finish()
    }
}

impl ServerOptions {
    /// Defaults (plain HTTP on 127.0.0.1:0, no templates, no faults) with these
    /// credentials.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        ServerOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            user: user.into(),
            password: password.into(),
            templates: Vec::new(),
            tls_dir: None,
            report_delay_ms: 200,
            rate_limit_first: 0,
            to_wait_sec: 1,
            trickle_ms: 0,
            cut_body_once: false,
            cut_body_after: None,
            content_encoding: None,
            endless_body: false,
            stuck: false,
            delete_delay_ms: 0,
            errors_state: false,
            expired_account: false,
            busy_first: 0,
            concurrency_limit: 2,
            server_error_first: 0,
            inject: None,
            inject_body: None,
            estate: None,
            warning_host: None,
            cut_pages_first: 0,
            max_page_hosts: None,
            page_delay_ms: 0,
            stall_pages_first: 0,
            stall_kb_first: 0,
            stall_ms: 0,
            error_after_pages: None,
            unlisted_host: None,
        }
    }

    /// Adds a template (builder style).
    pub fn template(mut self, id: impl Into<String>, source: TemplateSource) -> Self {
        self.templates.push((id.into(), source));
        self
    }
}

impl Default for ServerOptions {
    /// [`ServerOptions::new`] with user `user` and password `password`.
    fn default() -> Self {
        ServerOptions::new("user", "password")
    }
}

/// One request as the server saw it, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// Query parameters then form parameters, decoded; the value of a parameter named
    /// `password` is replaced by `<redacted>`.
    pub params: Vec<(String, String)>,
    /// An `Authorization` header was sent.
    pub has_auth: bool,
    /// It carried the right Basic credentials.
    pub auth_ok: bool,
    /// The `X-Requested-With` header.
    pub requested_with: Option<String>,
    /// The HTTP status answered (0 until the answer is decided).
    pub status: u16,
}

/// A report launched and not deleted.
struct Report {
    template_id: String,
    title: String,
    launched: Instant,
    launched_at: OffsetDateTime,
}

#[derive(Default)]
struct State {
    /// Requests parsed so far.
    calls: u64,
    server_errors: u32,
    injected: u32,
    injected_bodies: u32,
    rate_limited: u32,
    busy: u32,
    cut_done: bool,
    cut_pages: u32,
    stalled_pages: u32,
    stalled_kb: u32,
    pages_answered: u32,
    mid_run_errors: u32,
    running: u32,
    max_running: u32,
    next_report: u64,
    reports: BTreeMap<u64, Report>,
    requests: Vec<RecordedRequest>,
    completed: usize,
}

struct Shared {
    options: ServerOptions,
    tls: Option<Arc<ServerConfig>>,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Open connections, to shut them down on stop.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn template(&self, id: &str) -> Option<&TemplateSource> {
        self.options
            .templates
            .iter()
            .find(|(t, _)| t == id)
            .map(|(_, s)| s)
    }

    /// Takes one unit of a `*_first` fault: true while fewer than `first` were taken.
    fn take(&self, counter: impl FnOnce(&mut State) -> &mut u32, first: u32) -> bool {
        let mut state = self.state();
        let n = counter(&mut state);
        if *n < first {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// Where report `id` is at `now` (qualys.md §2): Submitted, Running (with PERCENT),
    /// then Finished, Errors, or Running forever.
    fn report_state(&self, report: &Report, now: Instant) -> (&'static str, Option<u64>) {
        let delay = self.options.report_delay_ms;
        let elapsed =
            u64::try_from(now.duration_since(report.launched).as_millis()).unwrap_or(u64::MAX);
        let submitted = delay / 4;
        if elapsed < submitted {
            return ("Submitted", None);
        }
        let span = (delay - submitted).max(1);
        let percent = ((elapsed - submitted).saturating_mul(100) / span).min(99);
        if self.options.stuck || elapsed < delay {
            ("Running", Some(percent))
        } else if self.options.errors_state {
            ("Errors", None)
        } else {
            ("Finished", None)
        }
    }
}

/// A call's place in the concurrency count; leaving it ends the call.
struct Running<'a> {
    shared: &'a Shared,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.running = state.running.saturating_sub(1);
    }
}

/// One request being answered.
struct Call<'a> {
    shared: &'a Shared,
    index: usize,
    /// 1-based number of the request in the server's lifetime.
    seq: u64,
    remaining: u64,
    running: u32,
    guard: Option<Running<'a>>,
}

impl<'a> Call<'a> {
    fn begin(shared: &'a Shared, record: RecordedRequest) -> Call<'a> {
        let mut state = shared.state();
        state.calls += 1;
        state.running += 1;
        state.max_running = state.max_running.max(state.running);
        state.requests.push(record);
        Call {
            shared,
            index: state.requests.len() - 1,
            seq: state.calls,
            remaining: RATE_LIMIT.saturating_sub(state.calls),
            running: state.running,
            guard: Some(Running { shared }),
        }
    }

    fn set_status(&self, status: u16) {
        if let Some(r) = self.shared.state().requests.get_mut(self.index) {
            r.status = status;
        }
    }

    /// The limit headers of qualys.md §3, on every response.
    fn limit_headers(&self) -> Vec<(String, String)> {
        vec![
            ("X-RateLimit-Limit".into(), RATE_LIMIT.to_string()),
            ("X-RateLimit-Window-Sec".into(), RATE_WINDOW_SEC.to_string()),
            ("X-RateLimit-Remaining".into(), self.remaining.to_string()),
            (
                "X-Concurrency-Limit-Limit".into(),
                self.shared.options.concurrency_limit.to_string(),
            ),
            (
                "X-Concurrency-Limit-Running".into(),
                self.running.to_string(),
            ),
        ]
    }
}

/// What to answer.
enum Reply {
    Doc {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    Report {
        source: TemplateSource,
        /// `Content-Disposition` file name (v2 fetch).
        file_name: Option<String>,
        /// For the keep-alive comments and the log.
        label: String,
    },
}

impl Reply {
    fn xml(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Doc {
            status,
            content_type: "text/xml; charset=UTF-8",
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn html(status: u16, title: &str) -> Reply {
        Reply::Doc {
            status,
            content_type: "text/html; charset=UTF-8",
            body: format!(
                "<html><head><title>{status} {title}</title></head><body><h1>{title}</h1></body></html>\n"
            )
            .into_bytes(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &str, value: String) -> Reply {
        if let Reply::Doc { headers, .. } = &mut self {
            headers.push((name.to_string(), value));
        }
        self
    }
}

/// How a connection goes on after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    KeepAlive,
    Close,
    /// Drop the connection without a clean close (cut body, broken connection).
    Abort,
}

/// A running simulator; stops when dropped.
pub struct QualysServer {
    addr: SocketAddr,
    ca_pem: Option<PathBuf>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for QualysServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QualysServer")
            .field("addr", &self.addr)
            .field("ca_pem", &self.ca_pem)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl QualysServer {
    /// Creates the certificates (with `tls_dir`), binds and starts accepting.
    pub fn start(options: ServerOptions) -> io::Result<QualysServer> {
        let (tls, ca_pem) = match &options.tls_dir {
            Some(dir) => {
                let (config, ca) = tls::server_config(dir)?;
                (Some(config), Some(ca))
            }
            None => (None, None),
        };
        let listener = TcpListener::bind(options.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            tls,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                next_report: 5_000_001,
                ..State::default()
            }),
            sockets: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("qualys-sim-accept".into())
            .spawn(move || accept_loop(&listener, &for_thread))?;
        Ok(QualysServer {
            addr,
            ca_pem,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` or `https://127.0.0.1:port` (IPv6 in brackets).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// `DIR/ca.pem` with HTTPS: the certificate a client must trust.
    pub fn ca_pem(&self) -> Option<PathBuf> {
        self.ca_pem.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Requests whose response has been sent completely (or given up on).
    pub fn completed_requests(&self) -> usize {
        self.shared.state().completed
    }

    /// Reports launched and not deleted.
    pub fn reports_alive(&self) -> usize {
        self.shared.state().reports.len()
    }

    /// The most calls that were in progress at once (rejected ones included).
    pub fn max_concurrent_seen(&self) -> u32 {
        self.shared.state().max_running
    }

    /// Stops accepting, drops open connections and joins every thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for socket in lock(&self.shared.sockets).values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for QualysServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn log(message: &str) {
    if crate::quiet() {
        return;
    }
    let _ = writeln!(io::stderr().lock(), "qualys-sim: {message}");
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    while !shared.stopping() {
        match listener.accept() {
            Ok((tcp, _peer)) => {
                next_id += 1;
                let id = next_id;
                let registered = tcp.try_clone().map(|clone| {
                    lock(&shared.sockets).insert(id, clone);
                });
                if let Err(e) = registered {
                    log(&format!("connection #{id}: {e}"));
                    continue;
                }
                let for_thread = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name(format!("qualys-sim-conn-{id}"))
                    .spawn(move || {
                        serve_connection(tcp, id, &for_thread);
                        lock(&for_thread.sockets).remove(&id);
                    });
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                match spawned {
                    Ok(handle) => workers.push(handle),
                    Err(e) => {
                        lock(&shared.sockets).remove(&id);
                        log(&format!("connection #{id}: cannot start a thread: {e}"));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log(&format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// A clean end: TLS close_notify, FIN, then what the client still sends is drained
    /// briefly so the close does not turn into a reset that loses the response.
    fn close(mut self) {
        if let Stream::Tls(tls) = &mut self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let tcp = self.tcp();
        let _ = tcp.shutdown(Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let mut sink = [0u8; 4096];
        let mut tcp_ref = tcp;
        for _ in 0..16 {
            match tcp_ref.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// An abrupt end: no close_notify, no final chunk.
    fn abort(self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn serve_connection(tcp: TcpStream, id: u64, shared: &Shared) {
    let setup = tcp
        .set_nonblocking(false)
        .and_then(|()| tcp.set_read_timeout(Some(IDLE_TIMEOUT)))
        .and_then(|()| tcp.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(e) = setup {
        log(&format!("connection #{id}: {e}"));
        return;
    }
    let _ = tcp.set_nodelay(true);
    let mut stream = match &shared.tls {
        None => Stream::Plain(tcp),
        Some(config) => match ServerConnection::new(Arc::clone(config)) {
            Ok(conn) => Stream::Tls(Box::new(StreamOwned::new(conn, tcp))),
            Err(e) => {
                log(&format!("connection #{id}: TLS: {e}"));
                return;
            }
        },
    };
    let mut buf = Vec::new();
    let outcome = loop {
        if shared.stopping() {
            break Outcome::Close;
        }
        match http::read_request(&mut stream, &mut buf) {
            Ok(request) => {
                let outcome = handle(&mut stream, &request, shared);
                shared.state().completed += 1;
                if outcome != Outcome::KeepAlive {
                    break outcome;
                }
            }
            Err(ReadError::Closed) => break Outcome::Close,
            Err(ReadError::Bad(status, message)) => {
                log(&format!("connection #{id}: {message}: HTTP {status}"));
                let body = format!("{message}\n");
                let mut headers = vec![
                    ("Content-Type".to_string(), "text/plain".to_string()),
                    ("Content-Length".to_string(), body.len().to_string()),
                    ("Connection".to_string(), "close".to_string()),
                ];
                headers.extend(idle_limit_headers(shared));
                let mut bytes = http::head(status, &headers);
                bytes.extend_from_slice(body.as_bytes());
                let _ = stream.write_all(&bytes).and_then(|()| stream.flush());
                break Outcome::Close;
            }
            Err(ReadError::Io(e)) => {
                if !shared.stopping() {
                    log(&format!("connection #{id}: {e}"));
                }
                break Outcome::Abort;
            }
        }
    };
    match outcome {
        Outcome::Abort => stream.abort(),
        _ => stream.close(),
    }
}

/// Limit headers for an answer that is not a call (a malformed request).
fn idle_limit_headers(shared: &Shared) -> Vec<(String, String)> {
    let state = shared.state();
    vec![
        ("X-RateLimit-Limit".into(), RATE_LIMIT.to_string()),
        ("X-RateLimit-Window-Sec".into(), RATE_WINDOW_SEC.to_string()),
        (
            "X-RateLimit-Remaining".into(),
            RATE_LIMIT.saturating_sub(state.calls).to_string(),
        ),
        (
            "X-Concurrency-Limit-Limit".into(),
            shared.options.concurrency_limit.to_string(),
        ),
        (
            "X-Concurrency-Limit-Running".into(),
            state.running.to_string(),
        ),
    ]
}

fn handle(stream: &mut Stream, request: &Request, shared: &Shared) -> Outcome {
    let params: Vec<(String, String)> = request
        .params()
        .into_iter()
        .map(|(name, value)| {
            if name.eq_ignore_ascii_case("password") {
                (name, "<redacted>".to_string())
            } else {
                (name, value)
            }
        })
        .collect();
    let expected = format!("{}:{}", shared.options.user, shared.options.password);
    let credentials = http::basic_credentials(request);
    let record = RecordedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        params,
        has_auth: request.header("Authorization").is_some(),
        auth_ok: credentials.as_deref() == Some(expected.as_bytes()),
        requested_with: request.header("X-Requested-With"),
        status: 0,
    };
    let summary = summarize(&record);
    let mut call = Call::begin(shared, record.clone());
    let reply = route(&mut call, request, &record);
    let close = request.wants_close() || shared.stopping();
    let (status, outcome, note) = send(stream, &mut call, reply, close);
    log(&format!("#{} {summary} -> {status}{note}", call.seq));
    outcome
}

/// `METHOD path action=… id=… template_id=…` for the log (never credentials).
fn summarize(record: &RecordedRequest) -> String {
    let mut line = format!("{} {}", record.method, record.path);
    for (name, value) in &record.params {
        if matches!(
            name.as_str(),
            "action" | "id" | "template_id" | "output_format"
        ) {
            line.push_str(&format!(" {name}={value}"));
        }
    }
    if !record.auth_ok {
        line.push_str(if record.has_auth {
            " (bad credentials)"
        } else {
            " (no credentials)"
        });
    }
    line
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// What the path is.
enum Endpoint {
    /// `/api/<version>/fo/report/`.
    Report,
    /// `/msp/asset_data_report.php`.
    AssetDataReport,
    /// `/msp/report_template_list.php`.
    TemplateList,
    /// `/api/<version>/fo/asset/host/` (qualys.md §7).
    HostList,
    /// `/api/<version>/fo/asset/host/vm/detection/`.
    Detection(String),
    /// `/api/<version>/fo/knowledge_base/vuln/`.
    KnowledgeBase,
    Unknown,
}

fn endpoint(path: &str) -> Endpoint {
    let trimmed = path.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("/api/")
        && let Some((version, tail)) = rest.split_once('/')
    {
        match tail {
            "fo/report" => return Endpoint::Report,
            "fo/asset/host" => return Endpoint::HostList,
            "fo/asset/host/vm/detection" => return Endpoint::Detection(version.to_string()),
            "fo/knowledge_base/vuln" => return Endpoint::KnowledgeBase,
            _ => {}
        }
    }
    match trimmed {
        "/msp/asset_data_report.php" => Endpoint::AssetDataReport,
        "/msp/report_template_list.php" => Endpoint::TemplateList,
        _ => Endpoint::Unknown,
    }
}

fn route(call: &mut Call<'_>, request: &Request, record: &RecordedRequest) -> Reply {
    let shared = call.shared;
    let options = &shared.options;
    if shared.take(|s| &mut s.server_errors, options.server_error_first) {
        return Reply::html(503, "Service Temporarily Unavailable");
    }
    if request.path.starts_with("/api/") && record.requested_with.is_none() {
        return Reply::xml(
            400,
            simple_return(Some("1905"), "X-Requested-With header is required", &[]),
        );
    }
    if !record.auth_ok {
        // The guide's Troubleshooting, Step 1.
        return Reply::xml(401, simple_return(Some("2010"), "Bad Login/Password", &[]))
            .with_header("WWW-Authenticate", "Basic realm=\"Qualys\"".into());
    }
    if let Some(inject) = &options.inject
        && shared.take(|s| &mut s.injected, inject.calls)
    {
        return Reply::xml(
            inject.status,
            simple_return(Some(&inject.code), &inject.text, &[]),
        );
    }
    if let Some(inject) = &options.inject_body
        && inject
            .action
            .as_deref()
            .is_none_or(|a| param(&record.params, "action") == Some(a))
        && shared.take(|s| &mut s.injected_bodies, inject.calls)
    {
        return Reply::xml(inject.status, inject.body.clone());
    }
    if options.expired_account {
        return Reply::xml(
            200,
            "<SIMPLE_RETURN><RESPONSE><CODE>2001</CODE><TEXT>Your account has expired.</TEXT></RESPONSE></SIMPLE_RETURN>\n",
        );
    }
    if options.concurrency_limit > 0 && call.running > options.concurrency_limit {
        return Reply::xml(
            409,
            simple_return(Some("1960"), "Concurrency limit exceeded", &[]),
        )
        .with_header("X-Concurrency-Limit-ToWait-Sec", "1".into());
    }
    if shared.take(|s| &mut s.rate_limited, options.rate_limit_first) {
        call.remaining = 0;
        let wait = options.to_wait_sec;
        return Reply::xml(
            409,
            simple_return(
                Some("1965"),
                &format!(
                    "API rate limit exceeded. Please wait {wait} seconds before making another call."
                ),
                &[],
            ),
        )
        .with_header("X-RateLimit-ToWait-Sec", wait.to_string());
    }
    let params = &record.params;
    match endpoint(&request.path) {
        Endpoint::Unknown => Reply::html(404, "Not Found"),
        _ if !matches!(request.method.as_str(), "GET" | "POST") => {
            Reply::html(405, "Method Not Allowed").with_header("Allow", "GET, POST".into())
        }
        Endpoint::Report => report_call(shared, params),
        Endpoint::AssetDataReport => asset_data_report(shared, params),
        Endpoint::TemplateList => Reply::xml(200, template_list(shared)),
        Endpoint::HostList | Endpoint::Detection(_) | Endpoint::KnowledgeBase => {
            detection_call(shared, request, params, endpoint(&request.path))
        }
    }
}

/// The detection path's calls (qualys.md §7), answered from the estate.
fn detection_call(
    shared: &Shared,
    request: &Request,
    params: &[(String, String)],
    which: Endpoint,
) -> Reply {
    let Some(estate) = &shared.options.estate else {
        return Reply::html(404, "Not Found");
    };
    if param(params, "action") != Some("list") {
        return missing("action=list");
    }
    let now = iso(OffsetDateTime::now_utc());
    let query = match detection_query(params) {
        Ok(q) => q,
        Err(text) => return Reply::xml(400, simple_return(Some("1905"), &text, &[])),
    };
    let mut query = query;
    query.unlisted = shared.options.unlisted_host;
    if let Some(max) = shared.options.max_page_hosts
        && (query.truncation_limit == 0 || query.truncation_limit > max)
    {
        query.truncation_limit = max;
    }
    match which {
        Endpoint::HostList => Reply::xml(200, estate.host_list(&query, &now)),
        Endpoint::Detection(version) => {
            detection_page(shared, request, params, &version, &query, &now)
        }
        _ => {
            if shared.take(|s| &mut s.stalled_kb, shared.options.stall_kb_first) {
                thread::sleep(Duration::from_millis(shared.options.stall_ms));
            }
            let ids = match param(params, "ids") {
                Some(v) => match estate::id_list(v) {
                    Some(ids) => Some(ids),
                    None => return missing("ids"),
                },
                None => None,
            };
            let after = param(params, "last_modified_after");
            if ids.is_none() && after.is_none() {
                return missing("ids");
            }
            let all = [(0, u64::MAX)];
            Reply::xml(
                200,
                estate.kb_answer(ids.as_deref().unwrap_or(&all), after, &now),
            )
        }
    }
}

/// One Host List Detection page, with the faults that apply to it.
fn detection_page(
    shared: &Shared,
    request: &Request,
    params: &[(String, String)],
    version: &str,
    query: &Query,
    now: &str,
) -> Reply {
    let Some(estate) = &shared.options.estate else {
        return Reply::html(404, "Not Found");
    };
    let host = shared
        .options
        .warning_host
        .clone()
        .or_else(|| request.header("Host"))
        .unwrap_or_else(|| "qualysapi.qualys.com".into());
    let scheme = if shared.options.tls_dir.is_some() {
        "https"
    } else {
        "http"
    };
    let rest: Vec<String> = params
        .iter()
        .filter(|(n, _)| n != "id_min")
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let next = |id: u64| {
        format!(
            "{scheme}://{host}/api/{version}/fo/asset/host/vm/detection/?{}&id_min={id}",
            rest.join("&")
        )
    };
    if shared.take(|s| &mut s.stalled_pages, shared.options.stall_pages_first) {
        thread::sleep(Duration::from_millis(shared.options.stall_ms));
    }
    if let Some(n) = shared.options.error_after_pages {
        let fail = {
            let mut state = shared.state();
            let due = state.pages_answered >= n && state.mid_run_errors == 0;
            if due {
                state.mid_run_errors += 1;
            } else {
                state.pages_answered += 1;
            }
            due
        };
        if fail {
            return Reply::xml(
                400,
                simple_return(
                    Some("999"),
                    "Internal error. Please contact customer support.",
                    &[],
                ),
            );
        }
    }
    if shared.options.page_delay_ms > 0 {
        thread::sleep(Duration::from_millis(shared.options.page_delay_ms));
    }
    let page = estate.detection_page(query, now, &next);
    if shared.take(|s| &mut s.cut_pages, shared.options.cut_pages_first) {
        let mut cut = page.len() / 2;
        while !page.is_char_boundary(cut) {
            cut -= 1;
        }
        return Reply::xml(200, page[..cut].to_string());
    }
    Reply::xml(200, page)
}

/// A detection query from the call's parameters (qualys.md §7 defaults).
fn detection_query(params: &[(String, String)]) -> Result<Query, String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        param(params, name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("parameter {name} has invalid value: {v}"))
            })
            .transpose()
    };
    let ids = match param(params, "ids") {
        Some(v) => Some(estate::id_list(v).ok_or_else(|| {
            format!("parameter ids has invalid value: {v} (neither a positive integer nor a range)")
        })?),
        None => None,
    };
    let flag = |name: &str| param(params, name) == Some("1");
    Ok(Query {
        ids,
        id_min: number("id_min")?,
        id_max: number("id_max")?,
        truncation_limit: number("truncation_limit")?.map_or(1000, |n| n as usize),
        status: param(params, "status")
            .unwrap_or("New,Active,Re-Opened")
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .collect(),
        show_igs: flag("show_igs"),
        vm_processed_after: param(params, "vm_processed_after").map(str::to_string),
        include_ignored: flag("include_ignored"),
        include_disabled: flag("include_disabled"),
        unlisted: None,
    })
}

/// An error document to answer with (`ServerOptions::inject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedError {
    pub status: u16,
    pub code: String,
    pub text: String,
    pub calls: u32,
}

/// A document to answer with as it is (`ServerOptions::inject_body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedBody {
    pub status: u16,
    pub body: Vec<u8>,
    pub calls: u32,
    /// Only calls with this `action` (`fetch`, `launch` ...); `None`: every call.
    pub action: Option<String>,
}

/// `/api/<version>/fo/report/` (qualys.md §2).
fn report_call(shared: &Shared, params: &[(String, String)]) -> Reply {
    match param(params, "action") {
        None => missing("action"),
        Some("launch") => launch(shared, params),
        Some("list") => Reply::xml(200, report_list(shared, param(params, "id"))),
        Some("fetch") => fetch(shared, params),
        Some("delete") => delete(shared, params),
        Some(other) => Reply::xml(
            400,
            simple_return(
                Some("1901"),
                &format!("Unrecognized parameter value: action={other}"),
                &[],
            ),
        ),
    }
}

fn missing(name: &str) -> Reply {
    Reply::xml(
        400,
        simple_return(
            Some("1903"),
            &format!("Missing required parameter(s): {name}"),
            &[],
        ),
    )
}

fn launch(shared: &Shared, params: &[(String, String)]) -> Reply {
    let Some(template_id) = param(params, "template_id") else {
        return missing("template_id");
    };
    let Some(format) = param(params, "output_format") else {
        return missing("output_format");
    };
    if !format.eq_ignore_ascii_case("xml") {
        return Reply::xml(
            400,
            simple_return(
                Some("1905"),
                &format!(
                    "Parameter output_format has invalid value: {format} (this simulator serves xml only)"
                ),
                &[],
            ),
        );
    }
    let Some(source) = shared.template(template_id) else {
        // The guide's Troubleshooting, Step 2.
        return Reply::xml(
            200,
            simple_return(
                Some("999"),
                "Internal error. Please contact customer support.",
                &[("Incident Signature", "Tried to launch invalid report.")],
            ),
        );
    };
    if shared.take(|s| &mut s.busy, shared.options.busy_first) {
        return Reply::xml(
            200,
            simple_return(
                None,
                "Max number of allowed reports already running. Please try again later.",
                &[],
            ),
        );
    }
    let title = param(params, "report_title").map_or_else(|| source.title(), str::to_string);
    let id = {
        let mut state = shared.state();
        let id = state.next_report;
        state.next_report += 1;
        state.reports.insert(
            id,
            Report {
                template_id: template_id.to_string(),
                title,
                launched: Instant::now(),
                launched_at: OffsetDateTime::now_utc(),
            },
        );
        id
    };
    Reply::xml(
        200,
        simple_return(None, "New report launched", &[("ID", &id.to_string())]),
    )
}

/// `action=list`: REPORT_LIST_OUTPUT, without REPORT_LIST when nothing matches.
fn report_list(shared: &Shared, id: Option<&str>) -> String {
    let now = Instant::now();
    let mut rows = String::new();
    {
        let state = shared.state();
        let selected: Vec<(&u64, &Report)> = match id {
            None => state.reports.iter().collect(),
            Some(id) => id
                .parse::<u64>()
                .ok()
                .and_then(|id| state.reports.get_key_value(&id))
                .into_iter()
                .collect(),
        };
        for (id, report) in selected {
            let (st, percent) = shared.report_state(report, now);
            let percent = percent
                .map(|p| format!("<PERCENT>{p}</PERCENT>"))
                .unwrap_or_default();
            let expires = report.launched_at + time::Duration::days(7);
            rows.push_str(&format!(
                "      <REPORT>\n        <ID>{id}</ID>\n        <TITLE>{}</TITLE>\n        <TYPE>Scan</TYPE>\n        <USER_LOGIN>{}</USER_LOGIN>\n        <LAUNCH_DATETIME>{}</LAUNCH_DATETIME>\n        <OUTPUT_FORMAT>XML</OUTPUT_FORMAT>\n        <STATUS>\n          <STATE>{st}</STATE>{percent}\n        </STATUS>\n        <EXPIRATION_DATETIME>{}</EXPIRATION_DATETIME>\n      </REPORT>\n",
                cdata(&report.title),
                xml_escape(&shared.options.user),
                iso(report.launched_at),
                iso(expires),
            ));
        }
    }
    let list = if rows.is_empty() {
        String::new()
    } else {
        format!("    <REPORT_LIST>\n{rows}    </REPORT_LIST>\n")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE REPORT_LIST_OUTPUT SYSTEM \"{REPORT_LIST_DTD}\">\n<REPORT_LIST_OUTPUT>\n  <RESPONSE>\n    <DATETIME>{}</DATETIME>\n{list}  </RESPONSE>\n</REPORT_LIST_OUTPUT>\n",
        iso(OffsetDateTime::now_utc())
    )
}

fn no_such_report(id: &str) -> Reply {
    Reply::xml(
        400,
        simple_return(
            Some("1905"),
            &format!("Parameter id has invalid value: no report with ID {id}"),
            &[],
        ),
    )
}

fn fetch(shared: &Shared, params: &[(String, String)]) -> Reply {
    let Some(id_text) = param(params, "id") else {
        return missing("id");
    };
    let now = Instant::now();
    let found = {
        let state = shared.state();
        id_text
            .parse::<u64>()
            .ok()
            .and_then(|id| state.reports.get(&id).map(|r| (id, r)))
            .map(|(id, r)| (id, r.template_id.clone(), shared.report_state(r, now).0))
    };
    let Some((id, template_id, state)) = found else {
        return no_such_report(id_text);
    };
    if state != "Finished" {
        return Reply::xml(
            200,
            simple_return(Some("7001"), "Report not ready for fetch", &[]),
        );
    }
    match shared.template(&template_id) {
        Some(source) => Reply::Report {
            source: source.clone(),
            file_name: Some(format!("Scan_Report_{id}.xml")),
            label: format!("report {id}"),
        },
        None => no_such_report(id_text),
    }
}

fn delete(shared: &Shared, params: &[(String, String)]) -> Reply {
    let Some(id_text) = param(params, "id") else {
        return missing("id");
    };
    if super::body::sleep(shared.options.delete_delay_ms, &shared.stop).is_err() {
        return no_such_report(id_text);
    }
    let removed = id_text
        .parse::<u64>()
        .ok()
        .and_then(|id| shared.state().reports.remove(&id).map(|_| id));
    match removed {
        Some(id) => Reply::xml(
            200,
            simple_return(None, "Report deleted", &[("ID", &id.to_string())]),
        ),
        None => no_such_report(id_text),
    }
}

/// `/msp/asset_data_report.php?template_id=N` (qualys.md §2, API v1): the report
/// directly, or a GENERIC_RETURN.
fn asset_data_report(shared: &Shared, params: &[(String, String)]) -> Reply {
    let failed = |number: &str, text: &str| {
        Reply::xml(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE GENERIC_RETURN SYSTEM \"https://qualysapi.qualys.com/generic_return.dtd\">\n<GENERIC_RETURN>\n  <API name=\"asset_data_report.php\" username=\"{}\" at=\"{}\" />\n  <RETURN status=\"FAILED\" number=\"{number}\">{}</RETURN>\n</GENERIC_RETURN>\n",
                xml_escape(&shared.options.user),
                iso(OffsetDateTime::now_utc()),
                xml_escape(text)
            ),
        )
    };
    let Some(template_id) = param(params, "template_id") else {
        return failed("1903", "Missing required parameter: template_id");
    };
    match shared.template(template_id) {
        Some(source) => Reply::Report {
            source: source.clone(),
            file_name: None,
            label: format!("template {template_id}"),
        },
        None => failed(
            "2003",
            &format!("Invalid template_id {template_id}: no such report template"),
        ),
    }
}

/// `/msp/report_template_list.php` (API v1): the configured templates.
fn template_list(shared: &Shared) -> String {
    let now = iso(OffsetDateTime::now_utc());
    let user = xml_escape(&shared.options.user);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE REPORT_TEMPLATE_LIST SYSTEM \"https://qualysapi.qualys.com/report_template_list.dtd\">\n<REPORT_TEMPLATE_LIST>\n",
    );
    for (id, source) in &shared.options.templates {
        out.push_str(&format!(
            "  <REPORT_TEMPLATE>\n    <ID>{}</ID>\n    <TYPE>Auto</TYPE>\n    <TEMPLATE_TYPE>Scan</TEMPLATE_TYPE>\n    <TITLE>{}</TITLE>\n    <USER>\n      <LOGIN>{}</LOGIN>\n      <FIRSTNAME>{}</FIRSTNAME>\n      <LASTNAME>{}</LASTNAME>\n    </USER>\n    <LAST_UPDATE>{now}</LAST_UPDATE>\n    <GLOBAL>1</GLOBAL>\n  </REPORT_TEMPLATE>\n",
            xml_escape(id),
            cdata(&source.title()),
            cdata(&shared.options.user),
            cdata("Simulated"),
            cdata(&user),
        ));
    }
    out.push_str("</REPORT_TEMPLATE_LIST>\n");
    out
}

/// A v2 `SIMPLE_RETURN` (qualys.md §3), laid out like the guide's examples.
fn simple_return(code: Option<&str>, text: &str, items: &[(&str, &str)]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE SIMPLE_RETURN SYSTEM \"{SIMPLE_RETURN_DTD}\">\n<SIMPLE_RETURN>\n  <RESPONSE>\n    <DATETIME>{}</DATETIME>\n",
        iso(OffsetDateTime::now_utc())
    );
    if let Some(code) = code {
        out.push_str(&format!("    <CODE>{code}</CODE>\n"));
    }
    out.push_str(&format!("    <TEXT>{}</TEXT>\n", xml_escape(text)));
    if !items.is_empty() {
        out.push_str("    <ITEM_LIST>\n");
        for (key, value) in items {
            out.push_str(&format!(
                "      <ITEM>\n        <KEY>{}</KEY>\n        <VALUE>{}</VALUE>\n      </ITEM>\n",
                xml_escape(key),
                xml_escape(value)
            ));
        }
        out.push_str("    </ITEM_LIST>\n");
    }
    out.push_str("  </RESPONSE>\n</SIMPLE_RETURN>\n");
    out
}

/// `2010-01-01T12:00:00Z`.
fn iso(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Sends `reply`; returns the status, how the connection goes on, and a note for the log.
fn send(
    stream: &mut Stream,
    call: &mut Call<'_>,
    reply: Reply,
    close: bool,
) -> (u16, Outcome, String) {
    match reply {
        Reply::Doc {
            status,
            content_type,
            body,
            headers: extra,
        } => {
            let mut headers = vec![
                ("Content-Type".to_string(), content_type.to_string()),
                ("Content-Length".to_string(), body.len().to_string()),
            ];
            headers.extend(call.limit_headers());
            headers.extend(extra);
            if close {
                headers.push(("Connection".into(), "close".into()));
            }
            call.set_status(status);
            let mut bytes = http::head(status, &headers);
            bytes.extend_from_slice(&body);
            // The call is over before the client can see the end of the answer.
            call.guard = None;
            match stream.write_all(&bytes).and_then(|()| stream.flush()) {
                Ok(()) if close => (status, Outcome::Close, String::new()),
                Ok(()) => (status, Outcome::KeepAlive, String::new()),
                Err(e) => (status, Outcome::Abort, format!(" (send failed: {e})")),
            }
        }
        Reply::Report {
            source,
            file_name,
            label,
        } => send_report(stream, call, &source, file_name, &label, close),
    }
}

/// Streams a report (qualys.md §4): from the file (Content-Length unless trickled) or
/// generated while sent (chunked), through the trickle and cut faults when enabled.
fn send_report(
    stream: &mut Stream,
    call: &mut Call<'_>,
    source: &TemplateSource,
    file_name: Option<String>,
    label: &str,
    close: bool,
) -> (u16, Outcome, String) {
    let shared = call.shared;
    let options = &shared.options;
    let file = match source {
        TemplateSource::File(path) => {
            match File::open(path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((len, f)) => Some((len, f)),
                Err(e) => {
                    log(&format!("cannot open {}: {e}", path.display()));
                    let reply = Reply::html(500, "Internal Server Error");
                    return send(stream, call, reply, close);
                }
            }
        }
        TemplateSource::Generated(_) => None,
    };
    if let (Some(after), TemplateSource::File(path)) = (&options.cut_body_after, source)
        && let Some(prefix) = cut_prefix(path, after)
        && !std::mem::replace(&mut shared.state().cut_done, true)
    {
        return send(stream, call, Reply::xml(200, prefix), close);
    }
    let cut = options.cut_body_once && {
        let mut state = shared.state();
        !std::mem::replace(&mut state.cut_done, true)
    };
    let trickle = options.trickle_ms > 0;
    let sized = match &file {
        Some((len, _)) if !trickle && !options.endless_body => Some(*len),
        _ => None,
    };
    let cut_at = if cut {
        let total = match (&file, source) {
            (Some((len, _)), _) => *len,
            (None, TemplateSource::Generated(spec)) => match generate(spec, &mut io::sink()) {
                Ok(summary) => summary.bytes,
                Err(_) => 0,
            },
            (None, TemplateSource::File(_)) => 0,
        };
        Some(total / 2)
    } else {
        None
    };

    let mut headers = vec![("Content-Type".to_string(), "text/xml".to_string())];
    if let Some(name) = &file_name {
        headers.push((
            "Content-Disposition".into(),
            format!("attachment; filename=\"{name}\""),
        ));
    }
    match sized {
        Some(len) => headers.push(("Content-Length".into(), len.to_string())),
        None => headers.push(("Transfer-Encoding".into(), "chunked".into())),
    }
    if let Some(encoding) = &options.content_encoding {
        headers.push(("Content-Encoding".into(), encoding.clone()));
    }
    headers.extend(call.limit_headers());
    if close {
        headers.push(("Connection".into(), "close".into()));
    }
    call.set_status(200);
    if let Err(e) = stream
        .write_all(&http::head(200, &headers))
        .and_then(|()| stream.flush())
    {
        return (200, Outcome::Abort, format!(" (send failed: {e})"));
    }

    let guard = call.guard.take();
    let mut framed = match sized {
        Some(len) => Framed::sized(stream, len, guard),
        None => Framed::chunked(stream, guard),
    };
    let mut buffered = BufWriter::with_capacity(BODY_BUFFER, &mut framed);
    let (written, was_cut) = {
        let mut cutter = Cut::new(&mut buffered, cut_at);
        let written = if options.endless_body {
            write_endless(&mut cutter, options.trickle_ms, &shared.stop)
        } else if trickle {
            let mut trickled = Trickle::new(&mut cutter, options.trickle_ms, label, &shared.stop);
            write_source(source, file, &mut trickled).and_then(|()| trickled.finish())
        } else {
            write_source(source, file, &mut cutter)
        };
        (written, cutter.happened)
    };
    if was_cut {
        drop(buffered);
        drop(framed);
        let detail = match cut_at {
            Some(n) => format!(" (cut after {n} body bytes, connection dropped)"),
            None => String::new(),
        };
        return (200, Outcome::Abort, detail);
    }
    let mut ended = written.and_then(|()| buffered.flush());
    drop(buffered);
    if ended.is_ok() {
        ended = framed.finish();
    }
    match ended {
        Ok(()) if close => (200, Outcome::Close, format!(" ({label})")),
        Ok(()) => (200, Outcome::KeepAlive, format!(" ({label})")),
        Err(e) => (200, Outcome::Abort, format!(" ({label}: send failed: {e})")),
    }
}

/// The file up to and including the first occurrence of `after` (`cut_body_after`).
fn cut_prefix(path: &std::path::Path, after: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(path).ok()?;
    let at = bytes.windows(after.len().max(1)).position(|w| w == after)?;
    bytes.truncate(at + after.len());
    Some(bytes)
}

/// The XML head, then keep-alive comments until the client hangs up or the server stops:
/// one comment every `ms` milliseconds, or as fast as possible when `ms` is 0.
fn write_endless(out: &mut impl Write, ms: u64, stop: &AtomicBool) -> io::Result<()> {
    out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<ASSET_DATA_REPORT>\n")?;
    let comment = b"<!-- keep-alive -->\n";
    let block = if ms > 0 {
        comment.to_vec()
    } else {
        comment.repeat(1000)
    };
    while !stop.load(Ordering::Relaxed) {
        out.write_all(&block)?;
        if ms > 0 {
            out.flush()?;
            thread::sleep(Duration::from_millis(ms));
        }
    }
    Ok(())
}

/// Copies the report into `out` (a file up to the length announced; a generated report
/// through the generator's own buffer).
fn write_source(
    source: &TemplateSource,
    file: Option<(u64, File)>,
    out: &mut impl Write,
) -> io::Result<()> {
    match (source, file) {
        (_, Some((len, file))) => {
            io::copy(&mut file.take(len), out)?;
            Ok(())
        }
        (TemplateSource::Generated(spec), None) => generate(spec, out).map(|_| ()),
        (TemplateSource::File(path), None) => Err(io::Error::other(format!(
            "{} was not opened",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_sources() {
        assert!(matches!(
            TemplateSource::parse("report.xml"),
            Ok(TemplateSource::File(p)) if p == std::path::Path::new("report.xml")
        ));
        match TemplateSource::parse("gen:hosts=1_000,seed=7,findings=3,qids=50,ipv6-every=0") {
            Ok(TemplateSource::Generated(spec)) => {
                assert_eq!(
                    (
                        spec.hosts,
                        spec.seed,
                        spec.findings_per_host,
                        spec.qids,
                        spec.ipv6_every
                    ),
                    (1000, 7, 3, 50, 0)
                );
            }
            other => unreachable!("{other:?}"),
        }
        for bad in [
            "",
            "gen:seed=1",
            "gen:hosts=1",
            "gen:hosts=x,seed=1",
            "gen:hosts=1,seed=1,colour=red",
        ] {
            assert!(TemplateSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(matches!(endpoint("/api/2.0/fo/report/"), Endpoint::Report));
        assert!(matches!(endpoint("/api/3.0/fo/report"), Endpoint::Report));
        assert!(matches!(endpoint("/api/2.0/fo/scan/"), Endpoint::Unknown));
        assert!(matches!(
            endpoint("/msp/asset_data_report.php"),
            Endpoint::AssetDataReport
        ));
        assert!(matches!(
            endpoint("/msp/report_template_list.php"),
            Endpoint::TemplateList
        ));
    }

    #[test]
    fn datetime() {
        let t = OffsetDateTime::from_unix_timestamp(1_262_347_200).map(iso);
        assert_eq!(t.ok().as_deref(), Some("2010-01-01T12:00:00Z"));
    }
}
