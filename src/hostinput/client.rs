//! One Host Input connection (host-input.md §1, §3): TCP to port 8307 (IPv4, or IPv6 with
//! `-ipv6`), the TLS handshake with the client certificate, the version / max-size
//! exchange, then one data block at a time, each answered by one reply.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::framing::{self, FrameError, FrameType, PROTOCOL_VERSION};
use super::tls;
use crate::stop::Stopped;
use crate::timed::{self, TimedStream, Timing};

/// Where the FMC is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Connect over IPv6 (`-ipv6`); otherwise IPv4.
    pub ipv6: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// How long to wait for the reply to one block (host-input.md §3: large blocks can
    /// take minutes).
    pub reply: Duration,
}

/// The guide's Troubleshooting, for every failure to reach the FMC.
const REACH_HINT: &str = "check that port 8307 (or -port) on the FMC is reachable from this host (firewall, routing) and that this host is registered on the FMC's Host Input Client page";

/// Failures to open a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} has no {family} address{hint}")]
    NoAddress {
        host: String,
        family: &'static str,
        hint: &'static str,
    },
    #[error("connection to {addr} refused: {REACH_HINT}")]
    Refused { addr: SocketAddr },
    #[error("connection to {addr} timed out after {secs} s: {REACH_HINT}")]
    Timeout { addr: SocketAddr, secs: u64 },
    #[error("cannot connect to {addr}: {source}; {REACH_HINT}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with {addr} failed: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("{addr} refused protocol version {PROTOCOL_VERSION}: {message}")]
    Version { addr: SocketAddr, message: String },
    #[error("{addr} did not complete the Host Input handshake: {message}")]
    Handshake { addr: SocketAddr, message: String },
    #[error(
        "the TLS and Host Input handshake with {addr} did not finish within {secs} s (fmc_connect_timeout): the network, a proxy or the FMC is too slow; {REACH_HINT}"
    )]
    HandshakeTimeout { addr: SocketAddr, secs: u64 },
    #[error("{0}")]
    Stopped(Stopped),
}

/// Failures while a block is in flight: the connection is no longer usable.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no reply within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Stopped(Stopped),
}

/// The server's answer to one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A data reply's text, as received (judged by `framing::reply_lines`).
    Text(Vec<u8>),
    /// A type-4 error message, as received.
    Error(Vec<u8>),
    /// A message of a type that is not a reply (max size, version).
    Unexpected(u32),
}

pub struct Connection {
    stream: Tls,
    /// The bounds of the stream under TLS, changed per phase.
    timing: Timing,
    addr: SocketAddr,
    max_size: u32,
    reply_timeout: Duration,
}

/// TLS over a TCP stream whose reads and writes are bounded per phase (src/timed.rs).
type Tls = StreamOwned<ClientConnection, TimedStream>;

/// How long the reply to a block in flight is still awaited after a stop (a signal): a
/// block whose reply is read is confirmed, not re-sent by the next run.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a polite close may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl Connection {
    /// Connects, completes TLS and the version / max-size exchange, all of it for one
    /// address within the connect timeout.
    pub fn open(
        endpoint: &Endpoint,
        config: Arc<ClientConfig>,
        timeouts: Timeouts,
    ) -> Result<Connection, ConnectError> {
        let addrs = resolve(endpoint)?;
        let mut last = None;
        for addr in addrs {
            let started = Instant::now();
            match connect_tcp(addr, timeouts.connect) {
                Ok(tcp) => {
                    // What the TCP connect used is gone from the handshake's time.
                    let left = timeouts.connect.saturating_sub(started.elapsed());
                    return Connection::handshake(tcp, addr, endpoint, config, timeouts, left);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ConnectError::NoAddress {
            host: endpoint.host.clone(),
            family: if endpoint.ipv6 { "IPv6" } else { "IPv4" },
            hint: "",
        }))
    }

    /// TLS, then the version / max-size exchange (host-input.md §3), within `left`.
    fn handshake(
        tcp: TcpStream,
        addr: SocketAddr,
        endpoint: &Endpoint,
        config: Arc<ClientConfig>,
        timeouts: Timeouts,
        left: Duration,
    ) -> Result<Connection, ConnectError> {
        tcp.set_nodelay(true)
            .map_err(|source| ConnectError::Io { addr, source })?;
        let (timed, timing) = TimedStream::new(tcp, timeouts.connect);
        timing.set_deadline(left);
        let bound = Bound {
            addr,
            secs: timeouts.connect.as_secs(),
        };
        // The FMC's certificate names are not checked (tls.rs); the name only feeds SNI.
        let name = ServerName::try_from(endpoint.host.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()));
        let conn = ClientConnection::new(config, name).map_err(|e| ConnectError::Tls {
            addr,
            message: tls::explain(&e),
        })?;
        let mut stream = StreamOwned::new(conn, timed);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(handshake_error(bound, &e));
            }
        }
        let max_size = exchange_version(&mut stream, bound)?;
        timing.set_idle(timeouts.reply);
        timing.clear_deadline();
        Ok(Connection {
            stream,
            timing,
            addr,
            max_size,
            reply_timeout: timeouts.reply,
        })
    }

    /// The largest data block the server accepts.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one block and waits for its one reply, both within the reply timeout as a
    /// whole (a reply trickled a byte at a time must not hold the run), and for at most
    /// [`STOP_GRACE`] after a stop.
    pub fn exchange(&mut self, block: &[u8]) -> Result<Reply, TransportError> {
        self.timing.set_deadline(self.reply_timeout);
        self.timing.set_grace(Some(STOP_GRACE));
        let reply = self.send_and_read(block);
        self.timing.clear_deadline();
        self.timing.set_grace(None);
        reply
    }

    fn send_and_read(&mut self, block: &[u8]) -> Result<Reply, TransportError> {
        framing::write_frame(&mut self.stream, FrameType::Data, block)
            .map_err(|e| self.transport_error(e))?;
        let frame = framing::read_frame(&mut self.stream).map_err(|e| match e {
            FrameError::Io(io) => self.transport_error(io),
            other => TransportError::Frame(other),
        })?;
        Ok(match frame.kind {
            FrameType::Data => Reply::Text(frame.value),
            FrameType::Error => Reply::Error(frame.value),
            other => Reply::Unexpected(other as u32),
        })
    }

    fn transport_error(&self, e: io::Error) -> TransportError {
        if let Some(stopped) = timed::stopped(&e) {
            return TransportError::Stopped(stopped);
        }
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return TransportError::Timeout(self.reply_timeout.as_secs());
        }
        if let Some(tls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return TransportError::Tls(tls::explain(tls_error));
        }
        TransportError::Frame(FrameError::Io(e))
    }

    /// Ends the session politely (close_notify); closing also triggers the server's
    /// implicit ScanUpdate (host-input.md §3), which has nothing left to apply since
    /// every block ends with its own ScanFlush/ScanUpdate.
    pub fn close(mut self) {
        self.timing.set_deadline(CLOSE_WITHIN);
        self.stream.conn.send_close_notify();
        let _ = self.stream.conn.complete_io(&mut self.stream.sock);
        let _ = self
            .stream
            .sock
            .get_ref()
            .shutdown(std::net::Shutdown::Both);
    }
}

/// Reads what the server sent before it went away, to find its TLS alert.
fn pending_alert(stream: &mut Tls) -> Option<rustls::Error> {
    for _ in 0..4 {
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) | Err(_) => return stream.conn.process_new_packets().err(),
            Ok(_) => {
                if let Err(e) = stream.conn.process_new_packets() {
                    return Some(e);
                }
            }
        }
    }
    None
}

/// FMC text as one safe, bounded log line: a server must not be able to forge log lines.
pub fn quote(bytes: &[u8]) -> String {
    crate::servertext::escape(bytes, crate::servertext::MAX_TEXT_CHARS)
}

/// A block must at least hold a SetSource line and one command.
const MIN_MAX_SIZE: u32 = 256;

fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, ConnectError> {
    let all: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|source| ConnectError::Resolve {
            host: endpoint.host.clone(),
            source,
        })?
        .collect();
    let wanted: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() == endpoint.ipv6)
        .collect();
    if wanted.is_empty() {
        return Err(ConnectError::NoAddress {
            host: endpoint.host.clone(),
            family: if endpoint.ipv6 { "IPv6" } else { "IPv4" },
            hint: if endpoint.ipv6 {
                " (drop -ipv6 to connect over IPv4)"
            } else if all.is_empty() {
                ""
            } else {
                " (use -ipv6 to connect over IPv6)"
            },
        });
    }
    Ok(wanted)
}

fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    TcpStream::connect_timeout(&addr, timeout).map_err(|source| match source.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused { addr },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectError::Timeout {
            addr,
            secs: timeout.as_secs(),
        },
        _ => ConnectError::Io { addr, source },
    })
}

/// The address and the connect timeout, for the messages of a failed handshake.
#[derive(Debug, Clone, Copy)]
struct Bound {
    addr: SocketAddr,
    secs: u64,
}

/// Sends the version and reads the max-size answer (host-input.md §3.2, §3.3).
fn exchange_version(stream: &mut Tls, bound: Bound) -> Result<u32, ConnectError> {
    let addr = bound.addr;
    let version = PROTOCOL_VERSION.to_be_bytes();
    // With TLS 1.3 the server judges the client certificate after the client's side
    // of the handshake is done: a refusal shows up as an alert (or a closed socket)
    // at the first exchange, and the alert says more than the socket error.
    framing::write_frame(stream, FrameType::Version, &version).map_err(|e| match pending_alert(
        stream,
    ) {
        Some(alert) => ConnectError::Tls {
            addr,
            message: tls::explain(&alert),
        },
        None => handshake_error(bound, &e),
    })?;
    let frame = framing::read_frame(stream).map_err(|e| match e {
        FrameError::Io(io) => match pending_alert(stream) {
            Some(alert) => ConnectError::Tls {
                addr,
                message: tls::explain(&alert),
            },
            None => handshake_error(bound, &io),
        },
        FrameError::Closed => ConnectError::Version {
            addr,
            message: "the server closed the connection after the version message".into(),
        },
        other => ConnectError::Handshake {
            addr,
            message: other.to_string(),
        },
    })?;
    max_size_of(&frame, addr)
}

/// The server's maximum block size from its answer to the version message.
fn max_size_of(frame: &framing::Frame, addr: SocketAddr) -> Result<u32, ConnectError> {
    let max_size = match frame.kind {
        FrameType::MaxSize => match <[u8; 4]>::try_from(frame.value.as_slice()) {
            Ok(bytes) => u32::from_be_bytes(bytes),
            Err(_) => {
                return Err(ConnectError::Handshake {
                    addr,
                    message: format!(
                        "the max-size message holds {} bytes instead of 4",
                        frame.value.len()
                    ),
                });
            }
        },
        FrameType::Error => {
            return Err(ConnectError::Version {
                addr,
                message: quote(frame.value.trim_ascii()),
            });
        }
        other => {
            return Err(ConnectError::Handshake {
                addr,
                message: format!("expected the max-size message, got type {}", other as u32),
            });
        }
    };
    if max_size < MIN_MAX_SIZE {
        return Err(ConnectError::Handshake {
            addr,
            message: format!(
                "the server's maximum block size ({max_size} bytes) is too small to send anything"
            ),
        });
    }
    Ok(max_size)
}

fn handshake_error(bound: Bound, e: &io::Error) -> ConnectError {
    let Bound { addr, secs } = bound;
    if let Some(stopped) = timed::stopped(e) {
        return ConnectError::Stopped(stopped);
    }
    if let Some(tls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return ConnectError::Tls {
            addr,
            message: tls::explain(tls_error),
        };
    }
    if timed::expired(e).is_some() {
        return ConnectError::HandshakeTimeout { addr, secs };
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ConnectError::HandshakeTimeout { addr, secs }
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => ConnectError::Tls {
            addr,
            message: "the FMC closed the connection during the TLS handshake: it may not accept this client's certificate (check the Host Input Client registration)".into(),
        },
        _ => ConnectError::Io {
            addr,
            source: io::Error::new(e.kind(), e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_display_and_resolve_by_family() {
        let v4 = Endpoint {
            host: "127.0.0.1".into(),
            port: 8307,
            ipv6: false,
        };
        assert_eq!(v4.to_string(), "127.0.0.1:8307");
        assert_eq!(
            resolve(&v4).unwrap(),
            vec!["127.0.0.1:8307".parse().unwrap()]
        );
        let v6 = Endpoint {
            host: "::1".into(),
            port: 8307,
            ipv6: true,
        };
        assert_eq!(v6.to_string(), "[::1]:8307");
        assert_eq!(resolve(&v6).unwrap(), vec!["[::1]:8307".parse().unwrap()]);
        let wrong_family = Endpoint { ipv6: true, ..v4 };
        let err = resolve(&wrong_family).unwrap_err().to_string();
        assert!(err.contains("has no IPv6 address"), "{err}");
        let v6_without_flag = Endpoint { ipv6: false, ..v6 };
        let err = resolve(&v6_without_flag).unwrap_err().to_string();
        assert!(err.contains("use -ipv6"), "{err}");
    }

    #[test]
    fn refused_connections_say_what_to_check() {
        // Bind then drop a listener to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect_tcp(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("refused"), "{err}");
        assert!(err.contains("port 8307"), "{err}");
        assert!(err.contains("Host Input Client"), "{err}");
    }
}
