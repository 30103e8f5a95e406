//! Test helpers shared by the simulator's integration tests: a small Host Input client
//! (rustls, identity loaded from the enrolled PKCS#12 with p12-keystore, host-input.md
//! §1–§3), server start-up in a temporary directory, and a minimal DER walker.

// Test helpers outside #[test] fns: failing loudly is what a test helper should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use qualys_connector_sim::fmc::{
    EnrollOptions, HostEntry, NetworkMap, ScanResult, Server, ServerOptions, enroll,
};
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, SignatureAlgorithm, SignatureScheme, StreamOwned,
};

/// The client identity found in a `.pkcs12` file.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

/// Loads a PKCS#12 file as the connector would (host-input.md §1: in-process).
pub fn load_identity(path: &Path, password: &str) -> Identity {
    let bytes = std::fs::read(path).unwrap();
    let store = KeyStore::from_pkcs12(&bytes, password, Pkcs12ImportPolicy::Strict)
        .unwrap_or_else(|e| panic!("p12-keystore cannot read {}: {e}", path.display()));
    let (_, chain) = store.private_key_chain().expect("no key chain in the file");
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    assert_eq!(certs.len(), 2, "client certificate + CA expected");
    Identity {
        chain: vec![certs[0].clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
        ca: certs[1].clone(),
    }
}

/// A signing key that only offers the given schemes (to exercise each one).
#[derive(Debug)]
struct OnlySchemes {
    inner: Arc<dyn SigningKey>,
    allowed: Vec<SignatureScheme>,
}

impl SigningKey for OnlySchemes {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let offered: Vec<SignatureScheme> = offered
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        self.inner.choose_scheme(&offered)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// Always presents one certificate: built with `CertifiedKey::new` because
/// `with_client_auth_cert` refuses X.509 v1 certificates.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How the test client connects.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Only this TLS version (None: both).
    pub tls13_only: Option<bool>,
    /// Only these signature schemes for CertificateVerify (empty: any).
    pub schemes: Vec<SignatureScheme>,
    /// Trust this CA instead of the one in the file.
    pub trust: Option<CertificateDer<'static>>,
    /// Send no client certificate at all.
    pub no_client_cert: bool,
}

/// A Host Input client over TLS (host-input.md §2–§3).
pub struct Client {
    pub stream: StreamOwned<ClientConnection, TcpStream>,
}

impl Client {
    /// TCP connect and TLS handshake (with TLS 1.3 a refused client certificate only
    /// shows on the first read).
    pub fn connect(addr: SocketAddr, id: &Identity, opts: &ClientOptions) -> io::Result<Client> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match opts.tls13_only {
            Some(true) => &[&rustls::version::TLS13],
            Some(false) => &[&rustls::version::TLS12],
            None => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(opts.trust.clone().unwrap_or_else(|| id.ca.clone()))
            .unwrap();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_webpki_verifier(verifier);
        let config = if opts.no_client_cert {
            builder.with_no_client_auth()
        } else {
            let key = provider
                .key_provider
                .load_private_key(id.key.clone_key())
                .unwrap();
            let key: Arc<dyn SigningKey> = if opts.schemes.is_empty() {
                key
            } else {
                Arc::new(OnlySchemes {
                    inner: key,
                    allowed: opts.schemes.clone(),
                })
            };
            let certified = CertifiedKey::new(id.chain.clone(), key);
            builder.with_client_cert_resolver(Arc::new(FixedCert(Arc::new(certified))))
        };
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Client { stream })
    }

    /// Connect, send version 1, expect the type-1 max size (host-input.md §3.2–3.3).
    pub fn session(addr: SocketAddr, id: &Identity) -> io::Result<(Client, u32)> {
        Self::session_with(addr, id, &ClientOptions::default())
    }

    pub fn session_with(
        addr: SocketAddr,
        id: &Identity,
        opts: &ClientOptions,
    ) -> io::Result<(Client, u32)> {
        let mut client = Client::connect(addr, id, opts)?;
        client.send(2, &1u32.to_be_bytes())?;
        let (kind, value) = client.read_frame()?;
        if kind != 1 || value.len() != 4 {
            return Err(io::Error::other(format!(
                "expected max size, got type {kind}: {}",
                String::from_utf8_lossy(&value)
            )));
        }
        Ok((client, u32::from_be_bytes(value.try_into().unwrap())))
    }

    pub fn send(&mut self, kind: u32, value: &[u8]) -> io::Result<()> {
        let mut frame = kind.to_be_bytes().to_vec();
        frame.extend_from_slice(&(value.len() as u32).to_be_bytes());
        frame.extend_from_slice(value);
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }

    pub fn read_frame(&mut self) -> io::Result<(u32, Vec<u8>)> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header)?;
        let kind = u32::from_be_bytes(header[..4].try_into().unwrap());
        let len = u32::from_be_bytes(header[4..].try_into().unwrap());
        let mut value = vec![0u8; len as usize];
        self.stream.read_exact(&mut value)?;
        Ok((kind, value))
    }

    /// Sends one data block and returns the reply (type, text).
    pub fn block(&mut self, text: &str) -> io::Result<(u32, String)> {
        self.send(3, text.as_bytes())?;
        let (kind, value) = self.read_frame()?;
        Ok((kind, String::from_utf8_lossy(&value).into_owned()))
    }

    /// Sends a block and asserts the success reply for `n` commands.
    pub fn ok_block(&mut self, text: &str, n: usize) {
        let (kind, reply) = self.block(text).unwrap();
        assert_eq!(
            (kind, reply.as_str()),
            (3, format!("Done processing {n} commands.").as_str())
        );
    }

    /// Orderly close: TLS close_notify, then the socket closes.
    pub fn close(mut self) {
        self.stream.conn.send_close_notify();
        let _ = self.stream.conn.complete_io(&mut self.stream.sock);
    }

    /// True when the server has closed the connection (EOF or error on read).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1];
        !matches!(self.stream.read(&mut buf), Ok(n) if n > 0)
    }
}

/// A temporary simulator directory with an enrolled client.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub p12: PathBuf,
    pub id: Identity,
}

pub const CLIENT: &str = "127.0.0.1";

pub fn fixture() -> Fixture {
    fixture_with(&EnrollOptions::default())
}

pub fn fixture_with(opts: &EnrollOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let p12 = enroll(dir.path(), CLIENT, opts).unwrap();
    let id = load_identity(&p12, opts.password.as_deref().unwrap_or(""));
    Fixture { dir, p12, id }
}

impl Fixture {
    pub fn options(&self) -> ServerOptions {
        ServerOptions::new(self.dir.path())
    }

    pub fn start(&self, tweak: impl FnOnce(&mut ServerOptions)) -> Server {
        let mut opts = self.options();
        tweak(&mut opts);
        Server::start(opts).unwrap()
    }
}

/// Waits until `cond` holds (the server applies a close asynchronously).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// A minimal DER reader: (tag, contents, rest) of the first TLV in `input`.
pub fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | *b as usize);
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The TLVs inside a constructed value.
pub fn children(mut contents: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (tag, value, rest) = tlv(contents);
        out.push((tag, value));
        contents = rest;
    }
    out
}

/// Dotted form of an OBJECT IDENTIFIER's contents.
pub fn oid_string(contents: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value = 0u64;
    for (i, b) in contents.iter().enumerate() {
        value = value << 7 | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() && i < contents.len() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn ip_addr(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

/// The example stream of host-input.md §4.
pub const EXAMPLE: &str = r#"SetSource,QualysGuard
AddHost,192.0.2.10
AddScanResult,192.0.2.10,"QualysGuard",38170,443,6,"SSL Certificate - Subject Common Name Does Not Match","The certificate's common name does not match the host name.","cve_ids: ","bugtraq_ids: "
AddScanResult,192.0.2.10,"QualysGuard",82003,,,"ICMP Timestamp Request","The host answered an ICMP timestamp request.","cve_ids: CVE-1999-0524","bugtraq_ids: "
ScanFlush
AddHost,192.0.2.11
AddScanResult,192.0.2.11,"QualysGuard",90043,445,6,"SMB Signing Disabled","SMB signing is not required.","cve_ids: ","bugtraq_ids: "
ScanFlush
"#;

/// The map that the example stream of host-input.md §4 gives.
pub fn example_map() -> NetworkMap {
    let r = |vuln, port: Option<u16>, name: &str, description: &str, cves: &[&str]| ScanResult {
        source: "QualysGuard".into(),
        scanner_id: "QualysGuard".into(),
        vuln_id: Some(vuln),
        port,
        proto: port.map(|_| 6),
        name: name.into(),
        description: description.into(),
        cve_ids: cves.iter().map(|s| s.to_string()).collect(),
        bugtraq_ids: vec![],
    };
    let mut map = NetworkMap::default();
    map.hosts.insert(
        ip_addr("192.0.2.10"),
        HostEntry::with_results([
            r(
                82003,
                None,
                "ICMP Timestamp Request",
                "The host answered an ICMP timestamp request.",
                &["CVE-1999-0524"],
            ),
            r(
                38170,
                Some(443),
                "SSL Certificate - Subject Common Name Does Not Match",
                "The certificate's common name does not match the host name.",
                &[],
            ),
        ]),
    );
    map.hosts.insert(
        ip_addr("192.0.2.11"),
        HostEntry::with_results([r(
            90043,
            Some(445),
            "SMB Signing Disabled",
            "SMB signing is not required.",
            &[],
        )]),
    );
    map
}
