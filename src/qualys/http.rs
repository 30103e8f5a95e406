//! A small synchronous HTTP/1.1 client for the Qualys API (qualys.md §1, §4): HTTPS with
//! rustls, an optional HTTP or HTTPS proxy reached with CONNECT (Basic proxy auth), and a
//! response body that streams with an idle-read timeout.
//!
//! Qualys trickles keep-alive comments while a report is produced and reports run to
//! hundreds of MB, so the body is never held in memory and the only timeout while reading
//! it is "no byte for N seconds" (qualys.md §4). One request per connection
//! (`Connection: close`): the API is called a handful of times per run.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::secret::Secret;
use crate::timed::TimedStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// An absolute `http(s)://host[:port][/path]` URL, as the configuration holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// The path prefix without a trailing slash ("" for none).
    pub path: String,
}

impl Url {
    /// Parses by the configuration's own rules (`config::parse_url`): one URL parser, one
    /// set of messages.
    pub fn parse(text: &str) -> Result<Url, String> {
        let parts = crate::config::parse_url(text)?;
        let (scheme, default_port) = match parts.scheme {
            crate::config::ProxyScheme::Http => (Scheme::Http, 80),
            crate::config::ProxyScheme::Https => (Scheme::Https, 443),
        };
        Ok(Url {
            scheme,
            host: parts.host,
            port: parts.port.unwrap_or(default_port),
            path: parts.rest.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// The proxy to go through (guide Table ii-4).
#[derive(Debug, Clone)]
pub struct Proxy {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub tls: Arc<ClientConfig>,
    pub proxy: Option<Proxy>,
    pub connect_timeout: Duration,
    /// No byte for this long while waiting for or reading a response is an error.
    pub idle_timeout: Duration,
}

/// What goes wrong talking HTTP, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot resolve {host}: {source}; check the host name and this host's DNS")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {target}: {reason}; {hint}")]
    Connect {
        target: String,
        reason: String,
        hint: String,
    },
    #[error("TLS with {host} failed: {message}")]
    Tls { host: String, message: String },
    #[error("the proxy {proxy} refused the tunnel to {target}: {status}{hint}")]
    Proxy {
        proxy: String,
        target: String,
        status: String,
        hint: &'static str,
    },
    #[error("no data from {host} for {secs} s (idle timeout)")]
    Idle { host: String, secs: u64 },
    #[error("connection to {host} failed: {source}")]
    Io {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} sent an invalid HTTP response: {message}")]
    Protocol { host: String, message: String },
    #[error(
        "{host} sent the answer compressed (Content-Encoding: {encoding}) although the request asked for none (Accept-Encoding: identity); a proxy or load balancer on the way recompresses it: have it pass Qualys answers unchanged"
    )]
    Compressed { host: String, encoding: String },
    /// A signal or `max_run_seconds` ended the exchange (src/timed.rs).
    #[error("{0}")]
    Stopped(crate::stop::Stopped),
}

impl HttpError {
    /// Whether trying again later may help (network trouble rather than configuration).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Connect { .. } | HttpError::Idle { .. } | HttpError::Io { .. }
        )
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    body: Body,
    host: String,
    idle_secs: u64,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body, refusing more than `limit` bytes (API answers other than
    /// the report are small).
    pub fn text(mut self, limit: u64) -> Result<String, HttpError> {
        let mut bytes = Vec::new();
        let host = self.host.clone();
        let idle = self.idle_secs;
        (&mut self)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&host, idle, e))?;
        if bytes.len() as u64 > limit {
            return Err(HttpError::Protocol {
                host,
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Streams the body into `out`; returns the bytes copied.
    pub fn copy_to(mut self, out: &mut impl Write) -> Result<u64, HttpError> {
        let host = self.host.clone();
        let idle = self.idle_secs;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match self.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(&host, idle, e)),
            };
            out.write_all(&buf[..n]).map_err(|source| HttpError::Io {
                host: "the local file".into(),
                source,
            })?;
            total += n as u64;
            crate::progress::set(total);
        }
    }
}

impl Read for Response {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.body.read(out)
    }
}

fn read_error(host: &str, idle_secs: u64, e: io::Error) -> HttpError {
    if let Some(stopped) = crate::timed::stopped(&e) {
        return HttpError::Stopped(stopped);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Idle {
            host: host.to_string(),
            secs: idle_secs,
        },
        _ => HttpError::Io {
            host: host.to_string(),
            source: e,
        },
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

type Conn = BufReader<Box<dyn Stream>>;

enum Body {
    Length {
        conn: Conn,
        remaining: u64,
    },
    Chunked {
        conn: Conn,
        remaining: u64,
        done: bool,
    },
    UntilClose(Conn),
    Empty,
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Empty => Ok(0),
            Body::UntilClose(conn) => match conn.read(out) {
                // A TLS peer that closes without close_notify still ends the body here;
                // completeness of the document is checked afterwards.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Body::Length { conn, remaining } => {
                if *remaining == 0 {
                    return Ok(0);
                }
                let want = out
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let n = conn.read(&mut out[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the connection closed with {remaining} bytes of the body missing"),
                    ));
                }
                *remaining -= n as u64;
                Ok(n)
            }
            Body::Chunked {
                conn,
                remaining,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *remaining == 0 {
                    let size = read_chunk_size(conn)?;
                    if size == 0 {
                        // Trailers, then the final empty line.
                        loop {
                            let line = read_line(conn)?;
                            if line.is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *remaining = size;
                }
                let want = out
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let n = conn.read(&mut out[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside a chunk",
                    ));
                }
                *remaining -= n as u64;
                if *remaining == 0 {
                    let end = read_line(conn)?;
                    if !end.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a chunk is not followed by CRLF",
                        ));
                    }
                }
                Ok(n)
            }
        }
    }
}

/// Reads one CRLF-terminated line (without it), at most 8 KiB.
fn read_line(conn: &mut Conn) -> io::Result<String> {
    let mut line = Vec::new();
    let n = conn.by_ref().take(8192).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of the response",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a line is too long",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads a chunk-size line (RFC 9112 §7.1) with `httparse`, which takes only hex digits:
/// `+a`, `-1`, `0x10` or an empty size are a malformed response, not a size.
fn read_chunk_size(conn: &mut Conn) -> io::Result<u64> {
    let line = read_line(conn)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "bad chunk size \"{}\"",
                quoted(line.split(';').next().unwrap_or(""))
            ),
        )
    };
    // httparse reads an empty line as size 0, the last chunk: that would end the body early.
    if !line.starts_with(|c: char| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let framed = format!("{line}\r\n");
    match httparse::parse_chunk_size(framed.as_bytes()) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(bad()),
    }
}

/// A header value or status line quoted in a message: the server's text, so one escaped,
/// bounded line (servertext).
fn quoted(text: &str) -> String {
    crate::servertext::escape(text.as_bytes(), 200)
}

const REACH_HINT: &str = "check that this host can reach port 443 of the Qualys API host (firewall, proxy, routing) and the url in the YAML file";

impl Client {
    /// Sends one request and reads the response head. `path` is the path and query,
    /// appended to the URL's path prefix.
    pub fn send(
        &self,
        base: &Url,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let mut conn = BufReader::with_capacity(64 * 1024, self.connect(base)?);
        let target_path = format!("{}{}", base.path, path);
        // Through a proxy without a tunnel (plain http target), the request names the
        // whole URL and carries the proxy's credentials.
        let direct_proxy = self.proxy.as_ref().filter(|_| base.scheme == Scheme::Http);
        let request_target = match direct_proxy {
            Some(_) => format!("http://{}{}", base.authority(), target_path),
            None => target_path,
        };
        // Accept-Encoding: identity: the report is parsed as it arrives, uncompressed.
        let mut head = format!(
            "{method} {request_target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept-Encoding: identity\r\nUser-Agent: qualys-connector/{}\r\n",
            base.authority(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(auth) = direct_proxy.and_then(proxy_authorization) {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let io = |source| HttpError::Io {
            host: base.host.clone(),
            source,
        };
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes()).map_err(io)?;
        if let Some(body) = body {
            stream.write_all(body).map_err(io)?;
        }
        stream.flush().map_err(io)?;
        let idle_secs = self.idle_timeout.as_secs();
        let (status, reason, headers) =
            read_head(&mut conn).map_err(|e| head_error(&base.host, idle_secs, e))?;
        if let Some(encoding) = compressed(&headers) {
            return Err(HttpError::Compressed {
                host: base.host.clone(),
                encoding,
            });
        }
        let body =
            body_kind(method, status, &headers, conn).map_err(|message| HttpError::Protocol {
                host: base.host.clone(),
                message,
            })?;
        Ok(Response {
            status,
            reason,
            headers,
            body,
            host: base.host.clone(),
            idle_secs,
        })
    }

    /// TCP (to the proxy or the server), the proxy's TLS and tunnel if any, then the
    /// server's TLS for https.
    /// Connect, the proxy's TLS, the CONNECT and the server's TLS share one bound, the
    /// connect timeout: a server sending a byte every few seconds cannot stretch the
    /// handshake (qualys.md §4). The body then has the idle timeout on every read.
    fn connect(&self, base: &Url) -> Result<Box<dyn Stream>, HttpError> {
        let started = Instant::now();
        let first_hop = self.proxy.as_ref().map_or(base, |p| &p.url);
        let tcp = self.tcp(first_hop)?;
        let (timed, timing) = TimedStream::new(tcp, self.idle_timeout);
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        timing.set_deadline(left.max(Duration::from_millis(1)));
        let stream = self.handshake(timed, first_hop, base)?;
        timing.clear_deadline();
        Ok(stream)
    }

    fn handshake(
        &self,
        tcp: TimedStream,
        first_hop: &Url,
        base: &Url,
    ) -> Result<Box<dyn Stream>, HttpError> {
        let mut stream: Box<dyn Stream> = match first_hop.scheme {
            Scheme::Https => Box::new(self.tls(tcp, first_hop)?),
            Scheme::Http => Box::new(tcp),
        };
        let Some(proxy) = &self.proxy else {
            // No proxy: the first hop was the server itself, TLS included.
            return Ok(stream);
        };
        if base.scheme == Scheme::Http {
            return Ok(stream);
        }
        self.tunnel(&mut stream, proxy, base)?;
        Ok(Box::new(self.tls(stream, base)?))
    }

    fn tcp(&self, url: &Url) -> Result<TcpStream, HttpError> {
        let addrs: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|source| HttpError::Resolve {
                host: url.host.clone(),
                source,
            })?
            .collect();
        let is_proxy = self.proxy.as_ref().is_some_and(|p| &p.url == url);
        let hint = if is_proxy {
            format!("check the proxy setting ({url}) and that the proxy is running")
        } else {
            REACH_HINT.to_string()
        };
        let mut reason = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(tcp) => {
                    let io = |source| HttpError::Io {
                        host: url.host.clone(),
                        source,
                    };
                    tcp.set_nodelay(true).map_err(io)?;
                    return Ok(tcp);
                }
                Err(e) => {
                    reason = match e.kind() {
                        io::ErrorKind::ConnectionRefused => {
                            format!("{addr} refused the connection")
                        }
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                            "{addr} did not answer within {} s",
                            self.connect_timeout.as_secs()
                        ),
                        _ => format!("{addr}: {e}"),
                    };
                }
            }
        }
        Err(HttpError::Connect {
            target: url.authority(),
            reason,
            hint,
        })
    }

    fn tls<S: Read + Write + Send + 'static>(
        &self,
        stream: S,
        url: &Url,
    ) -> Result<StreamOwned<ClientConnection, S>, HttpError> {
        let tls_error = |message: String| HttpError::Tls {
            host: url.host.clone(),
            message,
        };
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| tls_error(format!("{:?} is not a valid server name: {e}", url.host)))?;
        let conn = ClientConnection::new(Arc::clone(&self.tls), name)
            .map_err(|e| tls_error(e.to_string()))?;
        let mut tls = StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                if let Some(stopped) = crate::timed::stopped(&e) {
                    return Err(HttpError::Stopped(stopped));
                }
                let message = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::InvalidCertificate(c)) => format!(
                        "the certificate of {} is not trusted ({c:?}); if a proxy inspects TLS, add its CA with ca_bundle",
                        url.host
                    ),
                    Some(other) => other.to_string(),
                    None => e.to_string(),
                };
                return Err(tls_error(message));
            }
        }
        Ok(tls)
    }

    /// CONNECT through the proxy (qualys.md §4).
    fn tunnel(
        &self,
        stream: &mut Box<dyn Stream>,
        proxy: &Proxy,
        base: &Url,
    ) -> Result<(), HttpError> {
        let target = base.authority();
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = proxy_authorization(proxy) {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        let io = |source| HttpError::Io {
            host: proxy.url.host.clone(),
            source,
        };
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.flush().map_err(io)?;
        // Read the proxy's answer byte by byte: what follows it belongs to the tunnel.
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            if raw.len() > 16 * 1024 {
                return Err(HttpError::Protocol {
                    host: proxy.url.host.clone(),
                    message: "the proxy's answer to CONNECT is too long".into(),
                });
            }
            match stream.read(&mut byte) {
                Ok(0) => {
                    return Err(HttpError::Proxy {
                        proxy: proxy.url.to_string(),
                        target,
                        status: "it closed the connection".into(),
                        hint: "",
                    });
                }
                Ok(_) => raw.push(byte[0]),
                Err(e) => return Err(head_error(&proxy.url.host, self.idle_timeout.as_secs(), e)),
            }
        }
        let status_line = String::from_utf8_lossy(&raw)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let code = status_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        if code.starts_with('2') {
            return Ok(());
        }
        Err(HttpError::Proxy {
            proxy: proxy.url.to_string(),
            target,
            status: quoted(&status_line),
            hint: match code.as_str() {
                "407" | "401" => {
                    ": proxy authentication failed, check proxy_username and proxy_password"
                }
                "403" => ": the proxy does not allow this destination or port",
                _ => "",
            },
        })
    }
}

fn proxy_authorization(proxy: &Proxy) -> Option<String> {
    let user = proxy.username.as_deref()?;
    let password = proxy.password.as_ref().map_or("", Secret::expose);
    Some(format!(
        "Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    ))
}

/// `Authorization: Basic` value for the raw `user:password` (qualys.md §1: never
/// URL-encode the password first).
pub fn basic_auth(user: &str, password: &Secret) -> String {
    format!(
        "Basic {}",
        base64(format!("{user}:{}", password.expose()).as_bytes())
    )
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

type Head = (u16, String, Vec<(String, String)>);

/// Interim (1xx) responses accepted before the real one: a server sending `100 Continue`
/// forever would otherwise hold the run (RFC 9110 §15.2 allows several, not endless ones).
const MAX_INTERIM: u32 = 16;

/// Reads the status line and headers.
fn read_head(conn: &mut Conn) -> io::Result<Head> {
    let mut interim = 0u32;
    loop {
        let mut raw = Vec::new();
        loop {
            let n = conn.by_ref().take(8192).read_until(b'\n', &mut raw)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a response",
                ));
            }
            if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") {
                break;
            }
            if raw.len() > 64 * 1024 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response headers too long",
                ));
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "incomplete headers",
                ));
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
        let status = response.code.unwrap_or(0);
        // 1xx answers precede the real one.
        if (100..200).contains(&status) {
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than {MAX_INTERIM} interim (1xx) responses"),
                ));
            }
            continue;
        }
        let reason = response.reason.unwrap_or("").to_string();
        let headers = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect();
        return Ok((status, reason, headers));
    }
}

fn head_error(host: &str, idle_secs: u64, e: io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::InvalidData => HttpError::Protocol {
            host: host.to_string(),
            message: e.to_string(),
        },
        _ => read_error(host, idle_secs, e),
    }
}

/// The `Content-Encoding` of a body that is not plain (escaped, as it is server text).
fn compressed(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Encoding"))
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty() && !v.eq_ignore_ascii_case("identity"))
        .map(|v| crate::servertext::escape(v.as_bytes(), crate::servertext::MAX_TEXT_CHARS))
}

fn body_kind(
    method: &str,
    status: u16,
    headers: &[(String, String)],
    conn: Conn,
) -> Result<Body, String> {
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(Body::Empty);
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Body::Chunked {
            conn,
            remaining: 0,
            done: false,
        });
    }
    // Two different lengths leave the body's end unknown (RFC 9112 §6.3): refuse rather
    // than guess which one frames it.
    let mut lengths = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, v)| v.trim());
    let first = lengths.next();
    if let Some(other) = lengths.find(|v| Some(*v) != first) {
        return Err(format!(
            "two different Content-Length headers ({:?} and {other:?})",
            first.unwrap_or("")
        ));
    }
    match first {
        Some(len) => len
            .parse()
            .map(|remaining| Body::Length { conn, remaining })
            .map_err(|_| format!("bad Content-Length \"{}\"", quoted(len))),
        None => Ok(Body::UntilClose(conn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            (
                "https://qualysapi.qualys.com",
                Scheme::Https,
                "qualysapi.qualys.com",
                443,
                "",
            ),
            (
                "https://qualysapi.qualys.com/",
                Scheme::Https,
                "qualysapi.qualys.com",
                443,
                "",
            ),
            (
                "HTTP://127.0.0.1:8080/base/",
                Scheme::Http,
                "127.0.0.1",
                8080,
                "/base",
            ),
            ("https://[::1]:4443", Scheme::Https, "::1", 4443, ""),
            ("https://[::1]", Scheme::Https, "::1", 443, ""),
        ];
        for (text, scheme, host, port, path) in ok {
            let u = Url::parse(text).unwrap();
            assert_eq!(
                (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
                (scheme, host, port, path),
                "{text}"
            );
        }
        assert_eq!(
            Url::parse("https://[::1]:4443").unwrap().authority(),
            "[::1]:4443"
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@host",
            "https://h:99999",
            "https://[::1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_and_basic_auth() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want);
        }
        // The raw password, not URL-encoded: "+", "&" and "%" stay as they are.
        assert_eq!(
            basic_auth("dirk_g", &Secret::new("p+&%w'd")),
            format!("Basic {}", base64(b"dirk_g:p+&%w'd"))
        );
    }

    fn conn(bytes: &'static [u8]) -> Conn {
        BufReader::new(Box::new(io::Cursor::new(bytes.to_vec())) as Box<dyn Stream>)
    }

    #[test]
    fn response_heads_and_bodies() {
        let mut c = conn(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nX-RateLimit-ToWait-Sec: 5\r\nContent-Length: 5\r\n\r\nhello");
        let (status, reason, headers) = read_head(&mut c).unwrap();
        assert_eq!((status, reason.as_str()), (409, "Conflict"));
        assert_eq!(
            headers[0],
            ("X-RateLimit-ToWait-Sec".to_string(), "5".to_string())
        );
        let mut body = body_kind("GET", status, &headers, c).unwrap();
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");

        let mut c = conn(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<A/>\r\n3;ext=1\r\nxyz\r\n0\r\nTrailer: x\r\n\r\n");
        let (status, _, headers) = read_head(&mut c).unwrap();
        let mut body = body_kind("GET", status, &headers, c).unwrap();
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert_eq!(text, "<A/>xyz");

        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let (status, _, headers) = read_head(&mut c).unwrap();
        let mut body = body_kind("GET", status, &headers, c).unwrap();
        let err = body.read_to_string(&mut String::new()).unwrap_err();
        assert!(
            err.to_string().contains("5 bytes of the body missing"),
            "{err}"
        );

        let mut c = conn(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        let (status, _, headers) = read_head(&mut c).unwrap();
        let mut body = body_kind("GET", status, &headers, c).unwrap();
        assert!(body.read_to_string(&mut String::new()).is_err());

        assert!(read_head(&mut conn(b"garbage\r\n\r\n")).is_err());
    }

    #[test]
    fn endless_interim_responses_are_refused() {
        let mut many = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(17);
        many.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let mut c = BufReader::new(Box::new(io::Cursor::new(many)) as Box<dyn Stream>);
        let err = read_head(&mut c).unwrap_err();
        assert!(err.to_string().contains("interim (1xx)"), "{err}");
        let mut few = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(16);
        few.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let mut c = BufReader::new(Box::new(io::Cursor::new(few)) as Box<dyn Stream>);
        assert_eq!(read_head(&mut c).unwrap().0, 200);
    }

    #[test]
    fn compressed_bodies_are_named() {
        let h = |v: &str| vec![("content-encoding".to_string(), v.to_string())];
        let cases = [
            (h("gzip"), Some("gzip")),
            (h("br"), Some("br")),
            (h("identity"), None),
            (h("IDENTITY"), None),
            (vec![], None),
        ];
        for (headers, want) in cases {
            assert_eq!(compressed(&headers).as_deref(), want, "{headers:?}");
        }
    }

    #[test]
    fn malformed_framing_is_refused() {
        // (response, error text expected, or None for a body read fine)
        let cases: [(&[u8], Option<&str>); 7] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
                Some("bad chunk size"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
                Some("bad chunk size"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
                Some("bad chunk size"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
                Some("bad chunk size"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x=y\r\nabc\r\n0\r\n\r\n",
                None,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
                Some("two different Content-Length headers"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
                None,
            ),
        ];
        for (bytes, want) in cases {
            let mut c = conn(bytes);
            let (status, _, headers) = read_head(&mut c).unwrap();
            let result = body_kind("GET", status, &headers, c)
                .map_err(|e| e.to_string())
                .and_then(|mut body| {
                    let mut text = String::new();
                    body.read_to_string(&mut text).map_err(|e| e.to_string())?;
                    Ok(text)
                });
            match (want, result) {
                (None, Ok(text)) => assert_eq!(text, "abc"),
                (Some(want), Err(e)) => assert!(e.contains(want), "{e}"),
                (want, got) => panic!(
                    "{:?}: want {want:?}, got {got:?}",
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
        assert!(read_head(&mut conn(b"")).is_err());
    }

    /// Server values quoted in messages are one escaped, bounded line (servertext).
    #[test]
    fn quoted_server_values_are_escaped() {
        // A chunk size line is bounded when quoted.
        let long: &'static [u8] = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}\r\n",
            "z".repeat(300)
        )
        .into_bytes()
        .leak();
        let mut c = conn(long);
        let (status, _, headers) = read_head(&mut c).unwrap();
        let mut body = body_kind("GET", status, &headers, c).unwrap();
        let err = body.read_to_string(&mut String::new()).unwrap_err();
        assert!(err.to_string().contains("... (100 more bytes)"), "{err}");

        // A proxy's status line is shown escaped, on one line.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.1 407 Denied\x1b[2J\x00\xFF\r\n\r\n")
                .unwrap();
        });
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
        let client = Client {
            tls: Arc::new(tls),
            proxy: Some(Proxy {
                url: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
                username: None,
                password: None,
            }),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
        };
        let target = Url::parse("https://qualysapi.example:443").unwrap();
        let err = client.send(&target, "GET", "/", &[], None).unwrap_err();
        proxy.join().unwrap();
        let message = err.to_string();
        assert!(
            message.contains("HTTP/1.1 407 Denied\\u{1b}[2J\\u{0}\u{FFFD}"),
            "{message:?}"
        );
    }
}
