//! The Host Input TLS server: accepts connections on a thread, serves each on its own
//! thread (TLS per host-input.md §1, framing §2, session §3, commands §4) and keeps the
//! network map, the counters and the fault injection that test scripts rely on.
//!
//! Who ends a connection decides what happens to staged results: when the client
//! closes (cleanly or not), they get the implicit `ScanUpdate` of §3.5; when the server
//! ends it (protocol error, `close_after`, stop), they are discarded.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::server::ServerConfig;
use rustls::{ServerConnection, version};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::command::Deletion;
use super::command::{self, CommandRef, LineRef};
use super::count::CountRule;
use super::map::{FlushScope, NetworkMap};
use super::map::{OsEntry, ServiceEntry};
use super::pki::{Authority, OneServerCert, ServerCert};
use super::split::Splitter;
use super::store::{Commit, Finding, Store};
use super::verify::CaClientVerifier;

/// Message types (host-input.md §2).
pub const TYPE_MAX_SIZE: u32 = 1;
pub const TYPE_VERSION: u32 = 2;
pub const TYPE_DATA: u32 = 3;
pub const TYPE_ERROR: u32 = 4;

/// The source of commands sent before any `SetSource` (host-input.md §6: a real FMC
/// accepts them, into which source is unknown).
pub const DEFAULT_SOURCE: &str = "fmc-sim default source";

/// The `max` that test doubles in the wild use (host-input.md §3.3).
pub const DEFAULT_MAX_SIZE: u32 = 524_288;

/// How often blocked reads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Oversized blocks up to this size are read and discarded so the client sees the error.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// What the server does and which faults it injects. The field names are those of the
/// `fmc-sim serve` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Directory with the CA and server certificate (created if absent).
    pub dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The `max` announced in the type-1 reply; larger blocks are a protocol error.
    pub max_size: u32,
    /// Refuse every version message with a type-4 error, then close.
    pub reject_version: bool,
    /// Sleep this long before each reply to a data block.
    pub delay_ms: u64,
    /// Reply type 4 to the K-th data block of the server's lifetime (1-based) and do
    /// not apply it; the connection stays open.
    pub error_on: Option<u64>,
    /// First session only: drop the connection (no TLS close_notify) right after the
    /// reply to its K-th block; staged results are discarded.
    pub close_after: Option<u64>,
    /// The K-th data block of the server's lifetime is applied, then the connection is
    /// dropped without its reply (a reply lost on the way).
    pub drop_reply_on: Option<u64>,
    /// Reply to each block with a type-3 frame that lacks `Done processing N commands.`
    /// (the block is still applied).
    pub garbage_reply: bool,
    /// A block with an unparseable line gets a type-4 reply and is not applied. Without
    /// it the line is dropped and logged, and N counts it as a data line.
    pub strict: bool,
    /// Reply to each applied block with this text instead of `Done processing N
    /// commands.`; `{n}` stands for the block's command count (to add warning or error
    /// lines, or misspell the count line).
    pub reply_text: Option<String>,
    /// The `max` announced from the second session on (a server whose limit changed
    /// between connections).
    pub max_size_after: Option<u32>,
    /// Send each reply (header and value) one byte at a time, this many milliseconds
    /// apart.
    pub trickle_ms: u64,
    /// Stop after this many connections (of any kind) have closed.
    pub exit_after: Option<u64>,
    /// Hosts the FMC already knows: in the map from the start (host-input.md §5).
    pub known_hosts: Vec<IpAddr>,
    /// What `ScanFlush` replaces (host-input.md §6).
    pub flush_clears: FlushScope,
    /// Which certificate the server presents.
    pub server_cert: ServerCert,
    /// How N of `Done processing N commands.` is counted (host-input.md §6).
    pub count_rule: CountRule,
    /// The rule from the second session on (a server whose counting changed between
    /// connections).
    pub count_rule_after: Option<CountRule>,
    /// A warning line put before the count line of every successful reply.
    pub reply_prefix: Option<String>,
    /// Drop the K-th command line the server receives (1-based, over its lifetime): not
    /// applied, not counted, logged; no error is sent (host-input.md §4: the FMC
    /// silently discards lines it cannot parse).
    pub reject_line: Option<u64>,
    /// Cut every message into pieces at random byte positions, each its own TLS record.
    pub split_writes: bool,
    /// Offer TLS 1.2 only.
    pub tls12_only: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            dir: PathBuf::from("."),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            max_size: DEFAULT_MAX_SIZE,
            reject_version: false,
            delay_ms: 0,
            error_on: None,
            close_after: None,
            drop_reply_on: None,
            garbage_reply: false,
            strict: false,
            reply_text: None,
            max_size_after: None,
            trickle_ms: 0,
            exit_after: None,
            known_hosts: Vec::new(),
            flush_clears: FlushScope::ThisSource,
            server_cert: ServerCert::Standard,
            count_rule: CountRule::All,
            count_rule_after: None,
            reply_prefix: None,
            reject_line: None,
            split_writes: false,
            tls12_only: false,
        }
    }
}

impl ServerOptions {
    /// Defaults, with the CA directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ServerOptions {
            dir: dir.into(),
            ..ServerOptions::default()
        }
    }
}

/// Counters over the server's lifetime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections that completed TLS and the version exchange.
    pub sessions: u64,
    /// Connections whose TLS handshake failed (bad or missing client certificate, …).
    pub rejected_handshakes: u64,
    /// Connections that have ended, for any reason.
    pub closed_connections: u64,
    /// Type-3 data blocks received (the count `error_on` uses).
    pub blocks: u64,
    /// Commands (non-empty, non-comment lines) in blocks that were processed.
    pub commands: u64,
    /// Command lines (non-empty, non-comment) received in data blocks, parsed or not:
    /// the count `reject_line` uses.
    pub lines: u64,
    /// Lines dropped by `reject_line`.
    pub rejected_lines: u64,
    /// Lines that did not parse (host-input.md §4: the FMC discards them).
    pub unparseable_lines: u64,
    /// Type-4 error frames sent.
    pub errors_sent: u64,
    /// Scan results committed to hosts of the map.
    pub applied_results: u64,
    /// Scan results dropped because their host is not in the map.
    pub ignored_results: u64,
    /// Implicit ScanUpdates on client close that had something staged.
    pub implicit_updates: u64,
}

struct Shared {
    options: ServerOptions,
    tls: Arc<ServerConfig>,
    map: Mutex<Store>,
    stats: Mutex<Stats>,
    stop: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `ms`, waking early when the server stops.
    fn sleep(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            thread::sleep((until - now).min(POLL));
        }
    }
}

/// A running simulator.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads (or creates) the CA of `options.dir`, binds, and starts accepting.
    pub fn start(options: ServerOptions) -> io::Result<Server> {
        let authority = Authority::load_or_create(&options.dir)?;
        let (server_der, server_key) = authority.server_identity(options.server_cert)?;
        let verifier = CaClientVerifier::new(&authority.ca_der).map_err(io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
            &[&version::TLS12]
        } else {
            &[&version::TLS13, &version::TLS12]
        };
        let tls = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(io::Error::other)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(OneServerCert::new(
                vec![server_der, authority.ca_der.clone()],
                server_key,
            )?);

        let listener = TcpListener::bind(options.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut map = Store::default();
        for ip in &options.known_hosts {
            map.add_host(*ip, None);
        }
        let shared = Arc::new(Shared {
            options,
            tls: Arc::new(tls),
            map: Mutex::new(map),
            stats: Mutex::new(Stats::default()),
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("fmc-sim-accept".into())
            .spawn(move || accept_loop(listener, for_thread))?;
        Ok(Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the network map.
    pub fn map(&self) -> NetworkMap {
        lock(&self.shared.map).snapshot()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats().clone()
    }

    /// True once the server has stopped on its own (`exit_after`).
    pub fn is_finished(&self) -> bool {
        self.shared.stopping()
    }

    /// Blocks until the server stops on its own (`exit_after`), then returns the final
    /// map. Without `exit_after` this waits forever.
    pub fn wait(self) -> NetworkMap {
        while !self.shared.stopping() {
            thread::sleep(POLL);
        }
        self.stop()
    }

    /// Stops accepting, ends open connections (their staged results are discarded),
    /// joins every thread and returns the final map.
    pub fn stop(mut self) -> NetworkMap {
        self.shutdown();
        // Nothing uses the store any more: take it, so it is freed before the caller
        // goes on (to write a map of a gigabyte, say).
        std::mem::take(&mut *lock(&self.shared.map)).snapshot()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn log(msg: &str) {
    if crate::quiet() {
        return;
    }
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "fmc-sim: {msg}");
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((tcp, peer)) => {
                let id = {
                    let mut stats = shared.stats();
                    stats.connections += 1;
                    stats.connections
                };
                log(&format!("connection #{id} from {peer}"));
                let for_thread = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name(format!("fmc-sim-conn-{id}"))
                    .spawn(move || serve_connection(tcp, id, &for_thread));
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                match spawned {
                    Ok(handle) => workers.push(handle),
                    Err(e) => log(&format!("connection #{id}: cannot start a thread: {e}")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log(&format!("accept failed: {e}"));
                thread::sleep(POLL);
            }
        }
    }
}

/// Why a connection ended.
enum End {
    /// The client closed (TLS close_notify, TCP FIN or reset): implicit ScanUpdate.
    ClientClosed(String),
    /// The server ended it (protocol error, fault, stop): staged results discarded.
    ServerClosed(String),
}

fn serve_connection(tcp: TcpStream, id: u64, shared: &Arc<Shared>) {
    match Tls::handshake(tcp, shared) {
        Ok(mut tls) => {
            if shared.options.split_writes {
                let seed = split_seed(id);
                log(&format!(
                    "connection #{id}: split_writes: every message cut at random positions (seed {seed})"
                ));
                tls.split = Some(Splitter::new(seed));
            }
            log(&format!(
                "connection #{id}: {} handshake done, client certificate CN={}",
                tls.conn
                    .protocol_version()
                    .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}")),
                tls.client_cn()
            ));
            let mut session = Session {
                shared,
                id,
                tls,
                source: None,
                staged: Vec::new(),
                deletions: Vec::new(),
                block: Vec::new(),
                blocks: 0,
                first: false,
                rule: shared.options.count_rule,
            };
            let end = session.run();
            session.finish(end);
        }
        Err(e) => {
            shared.stats().rejected_handshakes += 1;
            log(&format!("connection #{id}: TLS handshake failed: {e}"));
        }
    }
    let closed = {
        let mut stats = shared.stats();
        stats.closed_connections += 1;
        stats.closed_connections
    };
    if let Some(n) = shared.options.exit_after
        && closed >= n
        && !shared.stop.swap(true, Ordering::SeqCst)
    {
        log(&format!(
            "{closed} connection(s) closed: exit_after {n} reached, stopping"
        ));
    }
}

/// A seed for `split_writes`, different for every connection.
fn split_seed(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.rotate_left(32)
}

/// A server-side TLS connection over a blocking socket with a short read timeout, so
/// that reads can notice the stop flag without losing partial progress.
struct Tls {
    conn: ServerConnection,
    tcp: TcpStream,
    eof: bool,
    /// `split_writes`: where writes are cut.
    split: Option<Splitter>,
}

#[derive(Debug)]
enum ReadErr {
    /// End of stream before the buffer was full (`partial` bytes read).
    Eof {
        partial: usize,
        clean: bool,
    },
    /// The server is stopping.
    Stopped,
    Io(io::Error),
}

impl Tls {
    fn handshake(tcp: TcpStream, shared: &Shared) -> io::Result<Tls> {
        tcp.set_nonblocking(false)?;
        tcp.set_read_timeout(Some(POLL))?;
        tcp.set_write_timeout(Some(Duration::from_secs(60)))?;
        let _ = tcp.set_nodelay(true);
        let conn = ServerConnection::new(Arc::clone(&shared.tls)).map_err(io::Error::other)?;
        let mut tls = Tls {
            conn,
            tcp,
            eof: false,
            split: None,
        };
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        while tls.conn.is_handshaking() {
            tls.flush()?;
            if tls.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed the connection during the handshake",
                ));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "handshake timed out",
                ));
            }
            match tls.read_tls_once(shared) {
                Ok(()) => {}
                Err(ReadErr::Io(e)) => return Err(e),
                Err(ReadErr::Stopped) => return Err(io::Error::other("server stopping")),
                Err(ReadErr::Eof { .. }) => {}
            }
        }
        tls.flush()?;
        Ok(tls)
    }

    fn client_cn(&self) -> String {
        let Some(cert) = self.conn.peer_certificates().and_then(|c| c.first()) else {
            return "?".into();
        };
        let Ok((_, cert)) = X509Certificate::from_der(cert) else {
            return "?".into();
        };
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("?")
            .to_string()
    }

    /// Writes out whatever TLS records are pending.
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }

    /// One read from the socket into rustls; a timeout only checks the stop flag.
    fn read_tls_once(&mut self, shared: &Shared) -> Result<(), ReadErr> {
        match self.conn.read_tls(&mut self.tcp) {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if shared.stopping() {
                    return Err(ReadErr::Stopped);
                }
                return Ok(());
            }
            Err(e) => return Err(ReadErr::Io(e)),
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Send the alert rustls queued for this error before giving up.
            let _ = self.flush();
            return Err(ReadErr::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        self.flush().map_err(ReadErr::Io)
    }

    /// Reads exactly `buf.len()` plaintext bytes (host-input.md §2: "read exactly").
    fn read_exact(&mut self, buf: &mut [u8], shared: &Shared) -> Result<(), ReadErr> {
        let mut pos = 0;
        while pos < buf.len() {
            match self.conn.reader().read(&mut buf[pos..]) {
                Ok(0) => {
                    return Err(ReadErr::Eof {
                        partial: pos,
                        clean: true,
                    });
                }
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.eof {
                        return Err(ReadErr::Eof {
                            partial: pos,
                            clean: false,
                        });
                    }
                    self.read_tls_once(shared)?;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ReadErr::Eof {
                        partial: pos,
                        clean: false,
                    });
                }
                Err(e) => return Err(ReadErr::Io(e)),
            }
        }
        Ok(())
    }

    /// Sends one frame (host-input.md §2): the 8-byte header and the value as separate
    /// writes, so separate TLS records, as a real server most likely writes them (§6:
    /// Rapid7's client reads the header and the value with one read each). With
    /// `split_writes`, each is cut again at random positions.
    fn write_frame(&mut self, kind: u32, value: &[u8]) -> io::Result<()> {
        self.write_records(&frame_header(kind, value.len())?)?;
        if value.is_empty() {
            return Ok(());
        }
        self.write_records(value)
    }

    /// Writes `bytes` as TLS records of their own (cut first with `split_writes`).
    fn write_records(&mut self, bytes: &[u8]) -> io::Result<()> {
        let pieces = match self.split.as_mut() {
            Some(splitter) => splitter.pieces(bytes),
            None => vec![bytes],
        };
        for piece in pieces {
            self.write_record(piece)?;
        }
        Ok(())
    }

    /// One write of plaintext, sent out before anything else is written.
    fn write_record(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            if n == 0 {
                self.flush()?;
            }
            rest = &rest[n..];
        }
        self.flush()
    }

    /// Orderly close: TLS close_notify, then TCP shutdown.
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Abrupt close: no close_notify.
    fn drop_connection(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

/// A message's 8-byte header: type and value length, big-endian (host-input.md §2).
fn frame_header(kind: u32, len: usize) -> io::Result<[u8; 8]> {
    let len = u32::try_from(len).map_err(io::Error::other)?;
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&kind.to_be_bytes());
    header[4..].copy_from_slice(&len.to_be_bytes());
    Ok(header)
}

/// One Host Input session (host-input.md §3) on an established TLS connection.
struct Session<'a> {
    shared: &'a Shared,
    id: u64,
    tls: Tls,
    /// The `SetSource` in force (§4: a stream starts with SetSource).
    source: Option<Arc<str>>,
    /// Results added but not yet flushed; they survive across blocks (§6).
    staged: Vec<(IpAddr, Finding)>,
    /// `DeleteScanResult` lines waiting for the next commit, with their source.
    deletions: Vec<(Arc<str>, Deletion)>,
    /// The buffer data blocks are read into, kept from block to block.
    block: Vec<u8>,
    /// Data blocks received on this connection.
    blocks: u64,
    /// Whether this is the server's first session (`close_after`).
    first: bool,
    /// How this session counts N (`count_rule`, `count_rule_after`).
    rule: CountRule,
}

enum Header {
    Frame(u32, u32),
    Closed(End),
}

impl Session<'_> {
    fn log(&self, msg: &str) {
        log(&format!("connection #{}: {msg}", self.id));
    }

    fn read_header(&mut self, what: &str) -> Header {
        let mut header = [0u8; 8];
        match self.tls.read_exact(&mut header, self.shared) {
            Ok(()) => {
                let kind = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                Header::Frame(kind, len)
            }
            Err(e) => Header::Closed(self.read_end(e, what)),
        }
    }

    fn read_end(&self, e: ReadErr, what: &str) -> End {
        match e {
            ReadErr::Eof { partial: 0, clean } => End::ClientClosed(format!(
                "client closed the connection{} while the server waited for {what}",
                if clean { "" } else { " (no TLS close_notify)" }
            )),
            ReadErr::Eof { partial, .. } => End::ClientClosed(format!(
                "client closed the connection after {partial} byte(s) of {what}"
            )),
            ReadErr::Stopped => End::ServerClosed("server stopping".into()),
            ReadErr::Io(e) => {
                End::ClientClosed(format!("read error while waiting for {what}: {e}"))
            }
        }
    }

    /// Sends a type-4 frame; returns false when the connection is gone.
    fn send_error(&mut self, text: &str) -> bool {
        self.shared.stats().errors_sent += 1;
        self.log(&format!("sending type-4 error: {text}"));
        match self.tls.write_frame(TYPE_ERROR, text.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                self.log(&format!("cannot send the error: {e}"));
                false
            }
        }
    }

    /// A protocol violation: type-4 error, then the server closes.
    fn protocol_error(&mut self, text: &str) -> End {
        self.send_error(text);
        End::ServerClosed(format!("protocol error: {text}"))
    }

    fn run(&mut self) -> End {
        // §3.2: the client sends its version.
        let (kind, len) = match self.read_header("the version message") {
            Header::Frame(k, l) => (k, l),
            Header::Closed(end) => return end,
        };
        if kind != TYPE_VERSION || len != 4 {
            return self.protocol_error(&format!(
                "expected a version message (type 2, length 4), got type {kind} length {len}"
            ));
        }
        let mut value = [0u8; 4];
        if let Err(e) = self.tls.read_exact(&mut value, self.shared) {
            return self.read_end(e, "the version value");
        }
        let version = u32::from_be_bytes(value);
        self.log(&format!("client protocol version {version}"));
        if self.shared.options.reject_version {
            return self.protocol_error(&format!(
                "protocol version {version} rejected (reject_version)"
            ));
        }
        if version != 1 {
            return self.protocol_error(&format!(
                "unsupported protocol version {version}: this server speaks version 1"
            ));
        }
        // §3.3: the server answers with the maximum block size.
        let later = self.shared.stats().sessions > 0;
        let max = match self.shared.options.max_size_after {
            Some(after) if later => after,
            _ => self.shared.options.max_size,
        };
        if let Err(e) = self.tls.write_frame(TYPE_MAX_SIZE, &max.to_be_bytes()) {
            return End::ClientClosed(format!("cannot send the max size: {e}"));
        }
        self.first = {
            let mut stats = self.shared.stats();
            stats.sessions += 1;
            stats.sessions == 1
        };
        if let Some(after) = self.shared.options.count_rule_after
            && !self.first
        {
            self.rule = after;
        }
        self.log(&format!("replies count N by the rule {}", self.rule));

        // §3.4: blocks, one reply each.
        loop {
            let (kind, len) = match self.read_header("a data block") {
                Header::Frame(k, l) => (k, l),
                Header::Closed(end) => return end,
            };
            if kind != TYPE_DATA {
                return self.protocol_error(&format!(
                    "expected a data message (type 3), got type {kind} length {len}"
                ));
            }
            if len > max {
                self.drain(len);
                return self.protocol_error(&format!(
                    "data block of {len} bytes exceeds the maximum of {max}"
                ));
            }
            // The buffer is reused: only a larger block than any before costs an
            // allocation (and zeroing).
            let mut block = std::mem::take(&mut self.block);
            block.resize(len as usize, 0);
            let read = self.tls.read_exact(&mut block, self.shared);
            let handled = match read {
                Err(e) => Err(e),
                Ok(()) => {
                    self.blocks += 1;
                    let number = {
                        let mut stats = self.shared.stats();
                        stats.blocks += 1;
                        stats.blocks
                    };
                    Ok(self.handle_block(&block, number))
                }
            };
            self.block = block;
            match handled {
                Err(e) => return self.read_end(e, &format!("a data block of {len} bytes")),
                Ok(Some(end)) => return end,
                Ok(None) => {}
            }
            if self.first && self.shared.options.close_after == Some(self.blocks) {
                self.tls.drop_connection();
                return End::ServerClosed(format!(
                    "close_after {}: connection dropped after the reply",
                    self.blocks
                ));
            }
        }
    }

    /// Reads and discards an oversized block (when not absurdly large) so the client
    /// is not stuck writing and can read the error.
    fn drain(&mut self, len: u32) {
        if u64::from(len) > DRAIN_LIMIT {
            return;
        }
        let mut left = len as usize;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = left.min(buf.len());
            if self.tls.read_exact(&mut buf[..n], self.shared).is_err() {
                return;
            }
            left -= n;
        }
    }

    /// Sends a frame one byte per TLS record, `trickle_ms` apart (a server that answers,
    /// but never finishes answering).
    fn trickle_frame(&mut self, kind: u32, value: &[u8]) -> io::Result<()> {
        let mut frame = frame_header(kind, value.len())?.to_vec();
        frame.extend_from_slice(value);
        for byte in frame {
            if self.shared.stopping() {
                return Err(io::Error::other("stopping"));
            }
            self.tls.conn.writer().write_all(&[byte])?;
            self.tls.flush()?;
            self.shared.sleep(self.shared.options.trickle_ms);
        }
        Ok(())
    }

    /// Processes one data block; returns `Some` when the connection must end.
    fn handle_block<'b>(&mut self, block: &'b [u8], number: u64) -> Option<End> {
        let shared = self.shared;
        let opts = &shared.options;
        if opts.error_on == Some(number) {
            self.shared.sleep(opts.delay_ms);
            self.log(&format!("block {number}: error_on {number}, not applied"));
            if !self.send_error(&format!(
                "fmc-sim: injected error on data block {number} (error_on); block not processed"
            )) {
                return Some(End::ClientClosed("connection lost".into()));
            }
            return None;
        }
        let Some(body) = block.strip_suffix(b"\n") else {
            return Some(self.protocol_error(&format!(
                "data block {number} ({} bytes) does not end with a newline: commands must be whole lines",
                block.len()
            )));
        };

        // Parse every line first, so a strict refusal leaves the map untouched.
        let mut has_source = self.source.is_some();
        let mut commands = Vec::new();
        let mut bad = Vec::new();
        // Command lines of the server's lifetime before this block, for `reject_line`.
        let before = self.shared.stats().lines;
        let mut seen = 0u64;
        let mut rejected = Vec::new();
        let mut before_source = None;
        let reject = opts.reject_line;
        let mut line = |i: usize, raw: &'b [u8], parsed: LineRef<'b>| match parsed {
            LineRef::Blank | LineRef::Comment => {}
            LineRef::Command(cmd) => {
                seen += 1;
                if reject == Some(before + seen) {
                    rejected.push((i + 1, raw));
                    return;
                }
                if matches!(cmd, CommandRef::SetSource(_)) {
                    has_source = true;
                } else if !has_source {
                    before_source.get_or_insert(i + 1);
                }
                commands.push(cmd);
            }
            LineRef::Bad(reason) => {
                seen += 1;
                bad.push((i + 1, reason, raw));
            }
        };
        // The same lines and results either way. Blocks are normally ASCII, which the
        // UTF-8 check goes through quickly; then `str::split` finds the newlines with
        // a word-wide search (the byte split looks at one byte at a time) and the
        // lines need no UTF-8 check of their own.
        match std::str::from_utf8(body) {
            Ok(text) => {
                for (i, raw) in text.split('\n').enumerate() {
                    line(i, raw.as_bytes(), command::parse_text_ref(raw));
                }
            }
            Err(_) => {
                for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
                    line(i, raw, command::parse_line_ref(raw));
                }
            }
        }
        {
            let mut stats = self.shared.stats();
            stats.lines += seen;
            stats.unparseable_lines += bad.len() as u64;
            stats.rejected_lines += rejected.len() as u64;
        }
        if let Some(line_no) = before_source {
            self.log(&format!(
                "block {number} line {line_no}: commands before the first SetSource are applied to the source {DEFAULT_SOURCE:?}"
            ));
        }
        for (line_no, raw) in &rejected {
            self.log(&format!(
                "block {number} line {line_no}: dropped, not applied and not counted (reject_line): {}",
                String::from_utf8_lossy(raw).escape_debug()
            ));
        }
        let fate = if opts.strict {
            "the block is refused"
        } else {
            "dropped, not applied, counted in N as a data line"
        };
        for (line_no, reason, raw) in &bad {
            self.log(&format!(
                "block {number} line {line_no}: unparseable ({reason}): {fate}: {}",
                String::from_utf8_lossy(raw).escape_debug()
            ));
        }
        if opts.strict && !bad.is_empty() {
            self.shared.sleep(opts.delay_ms);
            let (line_no, reason, _) = &bad[0];
            let text = format!(
                "{} line(s) of data block {number} could not be parsed (first: line {line_no}: {reason}); block not processed",
                bad.len()
            );
            if !self.send_error(&text) {
                return Some(End::ClientClosed("connection lost".into()));
            }
            return None;
        }

        self.apply(&commands, number);
        let rule = self.rule;
        // Lenient: a dropped line is counted as a server that counts what it received
        // would, and the log says so; `reject_line` plays the server that does not.
        let counted = (commands.iter().filter(|c| rule.counts(c)).count() + bad.len()) as u64;
        self.shared.stats().commands += commands.len() as u64;
        self.log(&format!(
            "block {number} ({} bytes): {} command(s) applied, N = {counted} ({rule}), {} unparseable, {} dropped, {} result(s) staged",
            block.len(),
            commands.len(),
            bad.len(),
            rejected.len(),
            self.staged.len()
        ));
        if opts.drop_reply_on == Some(number) {
            self.log(&format!(
                "block {number}: applied, reply dropped with the connection (drop_reply_on)"
            ));
            self.tls.drop_connection();
            return Some(End::ServerClosed(format!(
                "drop_reply_on {number}: connection dropped instead of the reply"
            )));
        }
        self.shared.sleep(opts.delay_ms);
        let reply = self.reply_text(counted);
        let sent = if opts.trickle_ms > 0 {
            self.trickle_frame(TYPE_DATA, &reply)
        } else {
            self.tls.write_frame(TYPE_DATA, &reply)
        };
        if let Err(e) = sent {
            return Some(End::ClientClosed(format!("cannot send the reply: {e}")));
        }
        None
    }

    /// The text of a successful reply with N = `counted` (`garbage_reply`, `reply_text`,
    /// `reply_prefix`).
    fn reply_text(&self, counted: u64) -> Vec<u8> {
        let opts = &self.shared.options;
        if opts.garbage_reply {
            return b"\x00\x01fmc-sim garbage reply (garbage_reply)\xff".to_vec();
        }
        let count = match &opts.reply_text {
            Some(text) => text.replace("{n}", &counted.to_string()),
            None => format!("Done processing {counted} commands."),
        };
        match &opts.reply_prefix {
            Some(prefix) => format!("{prefix}\n{count}").into_bytes(),
            None => count.into_bytes(),
        }
    }

    /// Applies a block's commands to the map, under its lock for the whole block.
    fn apply(&mut self, commands: &[CommandRef<'_>], number: u64) {
        let shared = self.shared;
        let mut map = lock(&shared.map);
        if let Some(source) = &self.source {
            let scans = commands.iter().filter_map(|cmd| match cmd {
                CommandRef::AddScanResult(fields) => Some(fields),
                _ => None,
            });
            map.warm(source, scans);
        }
        for cmd in commands {
            self.apply_one(&mut map, cmd, number);
        }
    }

    /// The source in force: the last `SetSource`, or [`DEFAULT_SOURCE`] before any.
    fn source(&mut self, map: &mut Store) -> Arc<str> {
        match &self.source {
            Some(source) => Arc::clone(source),
            None => map.name(DEFAULT_SOURCE),
        }
    }

    fn apply_one(&mut self, map: &mut Store, cmd: &CommandRef<'_>, number: u64) {
        match *cmd {
            CommandRef::SetSource(s) => self.source = Some(map.name(s)),
            CommandRef::AddHost { ip, mac } => map.add_host(ip, mac),
            CommandRef::AddHostByMac(mac) => map.add_mac_host(mac),
            CommandRef::DeleteHost(ip) => {
                if !map.delete_host(ip) {
                    self.log(&format!("block {number}: DeleteHost {ip}: not in the map"));
                }
            }
            CommandRef::DeleteHostByMac(mac) => {
                if map.delete_mac_host(mac) == 0 {
                    self.log(&format!(
                        "block {number}: DeleteHost by MAC {mac}: not in the map"
                    ));
                }
            }
            CommandRef::AddScanResult(ref fields) => {
                let source = self.source(map);
                let finding = map.finding(&source, fields);
                self.staged.push((fields.ip, finding));
            }
            CommandRef::DeleteScanResult(deletion) => {
                let source = self.source(map);
                self.deletions.push((source, deletion));
            }
            CommandRef::ScanFlush => {
                let how = Commit::Flush(self.shared.options.flush_clears);
                self.commit(map, how, "ScanFlush");
            }
            CommandRef::ScanUpdate => self.commit(map, Commit::Update, "ScanUpdate"),
            CommandRef::SetSourceType(t) => {
                let source = self.source(map);
                map.source_settings(&source).source_type = Some(t);
            }
            CommandRef::SetMap(set) => {
                let source = self.source(map);
                map.source_settings(&source).map_set = Some(set.to_string());
            }
            _ => self.apply_host_detail(map, cmd, number),
        }
    }

    /// The commands that describe a known host: attributes, OS, services.
    fn apply_host_detail(&mut self, map: &mut Store, cmd: &CommandRef<'_>, number: u64) {
        let (ip, done, what) = match *cmd {
            CommandRef::SetAttributeValue {
                ip,
                attribute,
                value,
            } => (
                ip,
                map.set_attribute(ip, attribute, value),
                "SetAttributeValue",
            ),
            CommandRef::SetOs {
                ip,
                vendor,
                product,
                version,
            } => {
                let os = OsEntry {
                    vendor: vendor.to_string(),
                    product: product.to_string(),
                    version: version.to_string(),
                };
                (ip, map.set_os(ip, Some(os)), "SetOS")
            }
            CommandRef::UnsetOs(ip) => (ip, map.set_os(ip, None), "UnsetOS"),
            CommandRef::AddService {
                ip,
                port,
                proto,
                server,
                vendor,
                version,
            } => {
                let service = ServiceEntry {
                    port,
                    proto,
                    server: server.to_string(),
                    vendor: vendor.to_string(),
                    version: version.to_string(),
                };
                if let Err(why) = map.add_service(ip, service) {
                    self.log(&format!(
                        "block {number}: AddService for {ip} ignored: the host {why}"
                    ));
                }
                return;
            }
            _ => return,
        };
        if !done {
            self.log(&format!(
                "block {number}: {what} for unknown host {ip} ignored"
            ));
        }
    }

    fn commit(&mut self, map: &mut Store, how: Commit, what: &str) {
        let outcome = map.commit(&mut self.staged, how);
        // DeleteScanResult is "used with ScanUpdate" (Host Input API Guide, p.3-23):
        // applied by the next commit, after the results it stages.
        for (source, deletion) in std::mem::take(&mut self.deletions) {
            let removed = map.delete_results(&source, &deletion);
            self.log(&format!(
                "{what}: DeleteScanResult for {}: {removed} result(s) removed",
                deletion.ip
            ));
        }
        {
            let mut stats = self.shared.stats();
            stats.applied_results += outcome.applied;
            stats.ignored_results += outcome.ignored;
        }
        if outcome.ignored > 0 {
            let hosts: Vec<String> = outcome
                .ignored_hosts
                .iter()
                .map(IpAddr::to_string)
                .collect();
            self.log(&format!(
                "{what}: {} result(s) ignored for host(s) not in the network map: {}",
                outcome.ignored,
                hosts.join(" ")
            ));
        }
    }

    /// Ends the connection: implicit ScanUpdate when the client closed (§3.5).
    fn finish(&mut self, end: End) {
        match end {
            End::ClientClosed(why) => {
                self.log(&why);
                if !self.staged.is_empty() {
                    self.log(&format!(
                        "implicit ScanUpdate of {} staged result(s)",
                        self.staged.len()
                    ));
                    self.shared.stats().implicit_updates += 1;
                    let shared = self.shared;
                    let mut map = lock(&shared.map);
                    self.commit(&mut map, Commit::Update, "implicit ScanUpdate");
                }
                self.tls.close();
            }
            End::ServerClosed(why) => {
                self.log(&format!("closing: {why}"));
                if !self.staged.is_empty() {
                    self.log(&format!("{} staged result(s) discarded", self.staged.len()));
                    self.staged.clear();
                }
                self.deletions.clear();
                self.tls.close();
            }
        }
    }
}
