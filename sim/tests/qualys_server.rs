//! Tests of the simulated Qualys API (`qualys_connector_sim::qualys::QualysServer` and
//! `qualys-sim serve`) over real loopback sockets with a tiny HTTP/1.1 client: each
//! endpoint and report state (qualys.md §2), Basic auth with a raw password and
//! `X-Requested-With` on v2 only (§1), the guide's Troubleshooting documents, the error
//! and limit behaviour of §3, each fault flag (§3–§4), HTTPS with `--tls`, a large
//! generated report streamed without buffering, and the binary's output contract.

// Helpers outside #[test] fns (the client, fixtures) fail loudly, as test code should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qualys_connector_sim::qualys::{
    GenSpec, QualysServer, RecordedRequest, ServerOptions, TemplateSource, generate,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const USER: &str = "acme_qa";
/// The characters that broke peers' logins when URL-encoded (qualys.md §1).
const PASSWORD: &str = "p+&%w'd,\"x";
const BIN: &str = env!("CARGO_BIN_EXE_qualys-sim");

/// The guide's Troubleshooting, Step 1 (wrong user name or password).
const GUIDE_2010: &str = "<SIMPLE_RETURN>
  <RESPONSE>
    <DATETIME>2010-01-01T12:00:00Z</DATETIME>
    <CODE>2010</CODE>
    <TEXT>Bad Login/Password</TEXT>
  </RESPONSE>
</SIMPLE_RETURN>";

/// The guide's Troubleshooting, Step 2 (wrong template ID).
const GUIDE_999: &str = "<SIMPLE_RETURN>
  <RESPONSE>
    <DATETIME>2010-01-01T12:00:00Z</DATETIME>
    <CODE>999</CODE>
    <TEXT>Internal error. Please contact customer
      support.</TEXT>
    <ITEM_LIST>
      <ITEM>
        <KEY>Incident Signature</KEY>
        <VALUE>Tried to launch invalid report.</VALUE>
      </ITEM>
    </ITEM_LIST>
  </RESPONSE>
</SIMPLE_RETURN>";

const EXPIRED: &str = "<SIMPLE_RETURN><RESPONSE><CODE>2001</CODE><TEXT>Your account has expired.</TEXT></RESPONSE></SIMPLE_RETURN>";

const LIMIT_HEADERS: [&str; 5] = [
    "X-RateLimit-Limit",
    "X-RateLimit-Window-Sec",
    "X-RateLimit-Remaining",
    "X-Concurrency-Limit-Limit",
    "X-Concurrency-Limit-Running",
];

// ---------------------------------------------------------------------------------
// A tiny HTTP/1.1 client.

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A response; `body` is empty when it went to a sink.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Body bytes received.
    bytes: u64,
    /// The body ended as announced (last chunk, Content-Length reached, or clean EOF).
    complete: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn number(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .parse()
            .unwrap()
    }
}

#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    /// Raw `user:password` for Basic.
    auth: Option<String>,
    requested_with: bool,
}

/// Buffered reading of a response.
struct Input {
    conn: Conn,
    buf: Vec<u8>,
    eof: bool,
}

impl Input {
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        let n = self.conn.read(&mut chunk)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(Some(line));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Copies up to `n` bytes to `out`; the number copied (less at EOF).
    fn copy(&mut self, mut n: u64, out: &mut dyn Write) -> io::Result<u64> {
        let mut copied = 0;
        while n > 0 {
            if self.buf.is_empty() && !self.fill()? {
                break;
            }
            let take = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            out.write_all(&self.buf[..take])?;
            self.buf.drain(..take);
            n -= take as u64;
            copied += take as u64;
        }
        Ok(copied)
    }
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            tls: None,
            auth: Some(format!("{USER}:{PASSWORD}")),
            requested_with: true,
        }
    }

    fn for_server(server: &QualysServer) -> Client {
        let mut client = Client::new(server.addr());
        if let Some(ca) = server.ca_pem() {
            client.tls = Some(trusting(&ca));
        }
        client
    }

    fn auth(mut self, raw: Option<&str>) -> Client {
        self.auth = raw.map(str::to_string);
        self
    }

    fn without_requested_with(mut self) -> Client {
        self.requested_with = false;
        self
    }

    fn connect(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect(self.addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(match &self.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let name = ServerName::from(self.addr.ip());
                let conn =
                    ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
                Conn::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        })
    }

    /// Sends one request (`Connection: close`) and streams the body to `sink`.
    fn send(
        &self,
        method: &str,
        target: &str,
        form: Option<&str>,
        sink: &mut dyn Write,
    ) -> io::Result<Reply> {
        let mut conn = self.connect()?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: qualys-sim-test\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(auth) = &self.auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(auth.as_bytes())
            ));
        }
        if self.requested_with {
            head.push_str("X-Requested-With: qualys-sim-test\r\n");
        }
        if let Some(form) = form {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                form.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(form.unwrap_or(""));
        conn.write_all(head.as_bytes())?;
        conn.flush()?;
        read_response(conn, sink)
    }

    fn call(&self, method: &str, target: &str, form: Option<&str>) -> Reply {
        let mut body = Vec::new();
        let mut reply = self
            .send(method, target, form, &mut body)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        reply.body = body;
        reply
    }

    /// A v2 report call with a form body.
    fn v2(&self, form: &str) -> Reply {
        self.call("POST", "/api/2.0/fo/report/", Some(form))
    }

    fn get(&self, target: &str) -> Reply {
        self.call("GET", target, None)
    }

    fn launch(&self, template: &str) -> String {
        let reply = self.v2(&format!(
            "action=launch&template_id={template}&output_format=xml&report_title=test+run"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text = reply.text();
        assert_eq!(tag(&text, "TEXT").as_deref(), Some("New report launched"));
        assert_eq!(tag(&text, "KEY").as_deref(), Some("ID"));
        tag(&text, "VALUE").unwrap()
    }

    fn state(&self, id: &str) -> Option<String> {
        tag(&self.v2(&format!("action=list&id={id}")).text(), "STATE")
    }

    fn wait_finished(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.state(id).as_deref() != Some("Finished") {
            assert!(Instant::now() < deadline, "report {id} never finished");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_response(conn: Conn, sink: &mut dyn Write) -> io::Result<Reply> {
    let mut input = Input {
        conn,
        buf: Vec::new(),
        eof: false,
    };
    let (status, headers, head_len) = loop {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(len) =
            parsed.parse(&input.buf).map_err(io::Error::other)?
        {
            let headers = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect::<Vec<_>>();
            break (parsed.code.unwrap(), headers, len);
        }
        if !input.fill()? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
    };
    input.buf.drain(..head_len);
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
        bytes: 0,
        complete: false,
    };
    let chunked = reply
        .header("Transfer-Encoding")
        .is_some_and(|t| t.contains("chunked"));
    let length = reply
        .header("Content-Length")
        .map(|l| l.parse::<u64>().unwrap());
    // An error in the body (an abrupt close over TLS) leaves `complete` false.
    let outcome: io::Result<()> = (|| {
        if chunked {
            loop {
                let Some(line) = input.line()? else {
                    return Ok(());
                };
                let size = u64::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .map_err(io::Error::other)?;
                if size == 0 {
                    while input.line()?.is_some_and(|l| !l.is_empty()) {}
                    reply.complete = true;
                    return Ok(());
                }
                let got = input.copy(size, sink)?;
                reply.bytes += got;
                if got < size || input.line()?.is_none() {
                    return Ok(());
                }
            }
        } else if let Some(length) = length {
            reply.bytes = input.copy(length, sink)?;
            reply.complete = reply.bytes == length;
            Ok(())
        } else {
            reply.bytes = input.copy(u64::MAX, sink)?;
            reply.complete = input.eof;
            Ok(())
        }
    })();
    if outcome.is_err() {
        reply.complete = false;
    }
    Ok(reply)
}

/// A client configuration trusting only the certificates in `ca`.
fn trusting(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The text of the first `<name>` element (CDATA unwrapped).
fn tag(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    let inner = text[start..end].trim();
    let inner = inner
        .strip_prefix("<![CDATA[")
        .and_then(|s| s.strip_suffix("]]>"))
        .unwrap_or(inner);
    Some(inner.to_string())
}

/// A document reduced to its content: no declaration or DOCTYPE, DATETIME blanked, no
/// whitespace between tags, runs of whitespace in text as one space.
fn content(doc: &str) -> String {
    let mut text = doc.trim().to_string();
    for prefix in ["<?xml", "<!DOCTYPE"] {
        if text.starts_with(prefix) {
            let end = text.find('>').unwrap();
            text = text[end + 1..].trim_start().to_string();
        }
    }
    if let (Some(start), Some(end)) = (text.find("<DATETIME>"), text.find("</DATETIME>")) {
        text.replace_range(start + "<DATETIME>".len()..end, "");
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replace("> <", "><")
}

// ---------------------------------------------------------------------------------
// Fixtures.

struct Fixture {
    dir: tempfile::TempDir,
    /// Template 424242: a small generated report in a file.
    file: PathBuf,
    file_bytes: Vec<u8>,
    /// Template 7: generated while sent.
    spec: GenSpec,
}

fn small_spec() -> GenSpec {
    GenSpec {
        hosts: 5,
        seed: 11,
        findings_per_host: 4,
        qids: 40,
        ..GenSpec::default()
    }
}

fn generated(spec: &GenSpec) -> Vec<u8> {
    let mut out = Vec::new();
    generate(spec, &mut out).unwrap();
    out
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    let file_bytes = generated(&GenSpec {
        hosts: 8,
        seed: 3,
        findings_per_host: 3,
        qids: 30,
        ..GenSpec::default()
    });
    std::fs::write(&file, &file_bytes).unwrap();
    Fixture {
        dir,
        file,
        file_bytes,
        spec: small_spec(),
    }
}

impl Fixture {
    fn options(&self) -> ServerOptions {
        ServerOptions::new(USER, PASSWORD)
            .template("424242", TemplateSource::File(self.file.clone()))
            .template("7", TemplateSource::Generated(self.spec.clone()))
    }

    fn start(&self, tweak: impl FnOnce(&mut ServerOptions)) -> (QualysServer, Client) {
        let mut options = self.options();
        tweak(&mut options);
        let server = QualysServer::start(options).unwrap();
        let client = Client::for_server(&server);
        (server, client)
    }
}

fn assert_limit_headers(reply: &Reply) {
    for name in LIMIT_HEADERS {
        assert!(
            reply.header(name).is_some_and(|v| v.parse::<u64>().is_ok()),
            "HTTP {}: {name} missing or not a number in {:?}",
            reply.status,
            reply.headers
        );
    }
    assert_eq!(reply.header("X-RateLimit-Limit"), Some("300"));
    assert_eq!(reply.header("X-RateLimit-Window-Sec"), Some("3600"));
}

// ---------------------------------------------------------------------------------
// Report API v2 (qualys.md §2).

#[test]
fn launch_list_fetch_delete_walks_through_the_states() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.report_delay_ms = 1200);
    assert_eq!(server.url(), format!("http://{}", server.addr()));
    assert_eq!(server.ca_pem(), None);

    let launched = Instant::now();
    let id = client.launch("424242");
    assert_eq!(server.reports_alive(), 1);

    // Not ready yet: CODE 7001.
    let early = client.v2(&format!("action=fetch&id={id}"));
    assert_eq!(early.status, 200);
    assert_eq!(tag(&early.text(), "CODE").as_deref(), Some("7001"));
    assert_eq!(
        tag(&early.text(), "TEXT").as_deref(),
        Some("Report not ready for fetch")
    );

    let mut seen: Vec<String> = Vec::new();
    let mut running_had_percent = true;
    loop {
        let list = client.v2(&format!("action=list&id={id}"));
        let text = list.text();
        assert!(text.contains("<REPORT_LIST_OUTPUT>"), "{text}");
        assert_eq!(tag(&text, "ID").as_deref(), Some(id.as_str()));
        assert_eq!(tag(&text, "TITLE").as_deref(), Some("test run"));
        assert_eq!(tag(&text, "USER_LOGIN").as_deref(), Some(USER));
        assert_eq!(tag(&text, "OUTPUT_FORMAT").as_deref(), Some("XML"));
        for field in ["TYPE", "LAUNCH_DATETIME", "EXPIRATION_DATETIME", "DATETIME"] {
            assert!(tag(&text, field).is_some(), "{field} missing: {text}");
        }
        let state = tag(&text, "STATE").unwrap();
        if state == "Running" {
            running_had_percent &=
                tag(&text, "PERCENT").is_some_and(|p| p.parse::<u32>().is_ok_and(|p| p < 100));
        } else {
            assert_eq!(tag(&text, "PERCENT"), None, "{text}");
        }
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "Finished" {
            break;
        }
        assert!(launched.elapsed() < Duration::from_secs(20), "{seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, ["Submitted", "Running", "Finished"]);
    assert!(running_had_percent);
    assert!(launched.elapsed() >= Duration::from_millis(1200));

    let report = client.v2(&format!("action=fetch&id={id}"));
    assert_eq!(report.status, 200);
    assert!(report.complete);
    assert_eq!(report.header("Content-Type"), Some("text/xml"));
    assert_eq!(
        report.header("Content-Disposition"),
        Some(format!("attachment; filename=\"Scan_Report_{id}.xml\"").as_str())
    );
    assert_eq!(
        report.header("Content-Length"),
        Some(fx.file_bytes.len().to_string().as_str())
    );
    assert_eq!(report.body, fx.file_bytes);

    let deleted = client.v2(&format!("action=delete&id={id}"));
    assert_eq!(deleted.status, 200);
    assert_eq!(
        tag(&deleted.text(), "TEXT").as_deref(),
        Some("Report deleted")
    );
    assert_eq!(tag(&deleted.text(), "KEY").as_deref(), Some("ID"));
    assert_eq!(tag(&deleted.text(), "VALUE").as_deref(), Some(id.as_str()));
    assert_eq!(tag(&deleted.text(), "CODE"), None);
    assert_eq!(server.reports_alive(), 0);

    // Gone: listed without REPORT_LIST, and neither fetch nor delete finds it.
    let list = client.v2(&format!("action=list&id={id}")).text();
    assert!(
        list.contains("<RESPONSE>") && list.contains("<DATETIME>"),
        "{list}"
    );
    assert!(!list.contains("REPORT_LIST>"), "{list}");
    for action in ["fetch", "delete"] {
        let reply = client.v2(&format!("action={action}&id={id}"));
        assert_eq!(
            tag(&reply.text(), "CODE").as_deref(),
            Some("1905"),
            "{action}"
        );
        assert!(tag(&reply.text(), "TEXT").unwrap().contains(&id));
    }
    server.stop();
}

#[test]
fn a_generated_template_is_fetched_chunked_and_matches_the_generator() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.report_delay_ms = 0);
    let id = client.launch("7");
    client.wait_finished(&id);
    // GET with the parameters in the query works too.
    let report = client.call(
        "GET",
        &format!("/api/2.0/fo/report/?action=fetch&id={id}"),
        None,
    );
    assert_eq!(report.status, 200);
    assert_eq!(report.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(report.header("Content-Length"), None);
    assert!(report.complete);
    assert_eq!(report.body, generated(&fx.spec));
    server.stop();
}

#[test]
fn list_without_id_lists_every_live_report_and_unknown_ids_list_nothing() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.report_delay_ms = 0);
    let a = client.launch("424242");
    let b = client.launch("7");
    assert_ne!(a, b);
    let all = client.v2("action=list").text();
    assert!(all.contains(&format!("<ID>{a}</ID>")) && all.contains(&format!("<ID>{b}</ID>")));
    for unknown in ["1", "abc"] {
        let text = client.v2(&format!("action=list&id={unknown}")).text();
        assert!(text.contains("<REPORT_LIST_OUTPUT>") && text.contains("<RESPONSE>"));
        assert!(!text.contains("REPORT_LIST>"), "{text}");
    }
    assert_eq!(server.reports_alive(), 2);
    server.stop();
}

#[test]
fn parameter_errors_name_the_parameter() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    let cases = [
        ("action=launch&output_format=xml", "1903", "template_id"),
        ("action=launch&template_id=424242", "1903", "output_format"),
        (
            "action=launch&template_id=424242&output_format=pdf",
            "1905",
            "output_format",
        ),
        ("template_id=424242", "1903", "action"),
        ("action=explode", "1901", "explode"),
        ("action=fetch", "1903", "id"),
        ("action=delete", "1903", "id"),
    ];
    for (form, code, mentions) in cases {
        let reply = client.v2(form);
        let text = reply.text();
        assert_eq!(tag(&text, "CODE").as_deref(), Some(code), "{form}: {text}");
        assert!(
            tag(&text, "TEXT").unwrap().contains(mentions),
            "{form}: {text}"
        );
        assert!(text.starts_with("<?xml"), "{text}");
        assert_limit_headers(&reply);
    }
    assert_eq!(server.reports_alive(), 0);
    server.stop();
}

#[test]
fn an_unknown_template_answers_the_guides_999_document_with_http_200() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    let reply = client.v2("action=launch&template_id=999999&output_format=xml");
    assert_eq!(reply.status, 200);
    assert_eq!(content(&reply.text()), content(GUIDE_999));
    assert_eq!(server.reports_alive(), 0);
    server.stop();
}

// ---------------------------------------------------------------------------------
// Authentication and headers (qualys.md §1).

#[test]
fn basic_auth_takes_the_raw_password_and_refuses_anything_else() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    let list = "/msp/report_template_list.php";
    assert_eq!(client.get(list).status, 200);

    let url_encoded = format!("{USER}:p%2B%26%25w%27d%2C%22x");
    let refusals = [
        Some(format!("{USER}:wrong")),
        Some(format!("nobody:{PASSWORD}")),
        Some(url_encoded),
        Some(USER.to_string()),
        None,
    ];
    for auth in &refusals {
        let reply = client.clone().auth(auth.as_deref()).get(list);
        assert_eq!(reply.status, 401, "{auth:?}");
        assert_eq!(content(&reply.text()), content(GUIDE_2010), "{auth:?}");
        assert_limit_headers(&reply);
        // v2 as well.
        let v2 = client.clone().auth(auth.as_deref()).v2("action=list");
        assert_eq!(v2.status, 401);
        assert_eq!(tag(&v2.text(), "CODE").as_deref(), Some("2010"));
    }

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1 + 2 * refusals.len());
    assert!(recorded[0].has_auth && recorded[0].auth_ok);
    assert_eq!(recorded[0].status, 200);
    let last = recorded.last().unwrap();
    assert!(!last.has_auth && !last.auth_ok);
    assert_eq!(last.status, 401);
    assert!(recorded[1].has_auth && !recorded[1].auth_ok);
    server.stop();
}

#[test]
fn x_requested_with_is_required_on_v2_calls_only() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.report_delay_ms = 0);
    let bare = client.clone().without_requested_with();

    let refused = bare.v2("action=list");
    assert_eq!(refused.status, 400);
    assert_eq!(tag(&refused.text(), "CODE").as_deref(), Some("1905"));
    assert_eq!(
        tag(&refused.text(), "TEXT").as_deref(),
        Some("X-Requested-With header is required")
    );
    assert_limit_headers(&refused);

    assert_eq!(bare.get("/msp/report_template_list.php").status, 200);
    let v1 = bare.get("/msp/asset_data_report.php?template_id=424242");
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body, fx.file_bytes);
    assert_eq!(server.reports_alive(), 0);

    let recorded = server.requests();
    assert_eq!(recorded[0].requested_with, None);
    assert_eq!(client.v2("action=list").status, 200);
    assert_eq!(
        server.requests()[3].requested_with.as_deref(),
        Some("qualys-sim-test")
    );
    server.stop();
}

#[test]
fn v1_calls_serve_the_report_and_the_template_list() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    let file = client.get("/msp/asset_data_report.php?template_id=424242");
    assert_eq!(file.status, 200);
    assert_eq!(file.header("Content-Type"), Some("text/xml"));
    assert_eq!(file.body, fx.file_bytes);
    let made = client.get("/msp/asset_data_report.php?template_id=7");
    assert_eq!(made.body, generated(&fx.spec));

    let unknown = client.get("/msp/asset_data_report.php?template_id=5");
    assert_eq!(unknown.status, 200);
    let text = unknown.text();
    assert!(text.contains("<GENERIC_RETURN>"), "{text}");
    assert!(
        text.contains(&format!(
            "<API name=\"asset_data_report.php\" username=\"{USER}\" at=\""
        )),
        "{text}"
    );
    assert!(
        text.contains("<RETURN status=\"FAILED\" number=\"2003\">"),
        "{text}"
    );

    let templates = client.get("/msp/report_template_list.php").text();
    assert!(templates.contains("<REPORT_TEMPLATE_LIST>"), "{templates}");
    assert_eq!(templates.matches("<REPORT_TEMPLATE>").count(), 2);
    for (id, title) in [
        ("424242", "Scan Report (report.xml)"),
        ("7", "Generated Scan Report (hosts=5, seed=11)"),
    ] {
        assert!(
            templates.contains(&format!(
                "<ID>{id}</ID>\n    <TYPE>Auto</TYPE>\n    <TEMPLATE_TYPE>Scan</TEMPLATE_TYPE>\n    <TITLE><![CDATA[{title}]]></TITLE>"
            )),
            "{templates}"
        );
    }

    assert_eq!(client.get("/msp/scan_report.php").status, 404);
    assert_eq!(client.v2("action=list").status, 200);
    assert_eq!(
        client
            .call("GET", "/api/2.0/fo/asset/host/?action=list", None)
            .status,
        404
    );
    server.stop();
}

#[test]
fn every_response_carries_the_limit_headers_and_remaining_counts_down() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.report_delay_ms = 0;
        o.server_error_first = 1;
        o.rate_limit_first = 0;
    });
    let mut replies = vec![
        client.get("/msp/report_template_list.php"), // 503
        client.get("/msp/report_template_list.php"),
        client.clone().auth(None).v2("action=list"),
        client.clone().without_requested_with().v2("action=list"),
        client.get("/nowhere"),
        client.v2("action=launch&template_id=1&output_format=xml"),
        client.v2("action=bogus"),
    ];
    let id = client.launch("424242");
    replies.push(client.v2(&format!("action=list&id={id}")));
    replies.push(client.v2(&format!("action=fetch&id={id}")));
    replies.push(client.get("/msp/asset_data_report.php?template_id=7"));
    replies.push(client.v2(&format!("action=delete&id={id}")));

    assert_eq!(replies[0].status, 503);
    assert!(replies[0].text().contains("<html>"));
    let mut previous = u64::MAX;
    for reply in &replies {
        assert_limit_headers(reply);
        let remaining = reply.number("X-RateLimit-Remaining");
        assert!(remaining < previous, "{remaining} after {previous}");
        previous = remaining;
        assert_eq!(reply.header("X-Concurrency-Limit-Limit"), Some("2"));
        assert_eq!(reply.header("X-Concurrency-Limit-Running"), Some("1"));
        assert_eq!(reply.header("X-RateLimit-ToWait-Sec"), None);
    }
    assert_eq!(replies[0].number("X-RateLimit-Remaining"), 299);
    server.stop();
}

#[test]
fn remaining_stops_at_zero() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    let mut last = None;
    for _ in 0..302 {
        last = Some(client.get("/nowhere"));
    }
    let last = last.unwrap();
    assert_eq!(last.number("X-RateLimit-Remaining"), 0);
    // Only --rate-limit-first refuses calls.
    assert_eq!(last.status, 404);
    server.stop();
}

// ---------------------------------------------------------------------------------
// Fault flags (qualys.md §3–§4).

#[test]
fn rate_limit_first_refuses_k_calls_with_409_1965_and_to_wait() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.rate_limit_first = 2;
        o.to_wait_sec = 3;
    });
    for _ in 0..2 {
        let reply = client.v2("action=launch&template_id=424242&output_format=xml");
        assert_eq!(reply.status, 409);
        assert_eq!(reply.header("X-RateLimit-ToWait-Sec"), Some("3"));
        assert_eq!(reply.header("X-RateLimit-Remaining"), Some("0"));
        assert_limit_headers(&reply);
        let text = reply.text();
        assert_eq!(tag(&text, "CODE").as_deref(), Some("1965"));
        assert!(
            tag(&text, "TEXT")
                .unwrap()
                .starts_with("API rate limit exceeded. Please wait 3 seconds"),
            "{text}"
        );
    }
    // Not performed.
    assert_eq!(server.reports_alive(), 0);
    client.launch("424242");
    assert_eq!(server.reports_alive(), 1);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [409, 409, 200]);
    server.stop();
}

#[test]
fn rate_limit_applies_to_v1_calls_too() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.rate_limit_first = 1);
    let refused = client.get("/msp/asset_data_report.php?template_id=424242");
    assert_eq!(refused.status, 409);
    assert_eq!(refused.header("X-RateLimit-ToWait-Sec"), Some("1"));
    let served = client.get("/msp/asset_data_report.php?template_id=424242");
    assert_eq!(served.body, fx.file_bytes);
    server.stop();
}

#[test]
fn calls_beyond_the_concurrency_limit_get_409_1960() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.concurrency_limit = 1;
        o.trickle_ms = 60;
        o.report_delay_ms = 0;
    });
    // A trickled download keeps one call in progress for more than a second.
    let slow = {
        let client = client.clone();
        std::thread::spawn(move || client.get("/msp/asset_data_report.php?template_id=424242"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests().first().is_none_or(|r| r.status != 200) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = client.v2("action=list");
    assert_eq!(refused.status, 409);
    assert_eq!(tag(&refused.text(), "CODE").as_deref(), Some("1960"));
    assert_eq!(
        tag(&refused.text(), "TEXT").as_deref(),
        Some("Concurrency limit exceeded")
    );
    assert_eq!(refused.header("X-Concurrency-Limit-ToWait-Sec"), Some("1"));
    assert_eq!(refused.header("X-Concurrency-Limit-Limit"), Some("1"));
    assert_eq!(refused.header("X-Concurrency-Limit-Running"), Some("2"));
    assert_limit_headers(&refused);

    let download = slow.join().unwrap();
    assert!(download.complete);
    assert_eq!(client.v2("action=list").status, 200);
    assert_eq!(server.max_concurrent_seen(), 2);
    server.stop();
}

#[test]
fn back_to_back_calls_never_overlap_in_the_count() {
    // A call leaves the count before the client can see the end of its answer, so a
    // client that keeps to the limit never gets 1960 (whatever the body framing).
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.concurrency_limit = 1;
        o.report_delay_ms = 0;
    });
    let id = client.launch("424242");
    for _ in 0..25 {
        assert_eq!(client.v2(&format!("action=list&id={id}")).status, 200);
        assert_eq!(client.v2(&format!("action=fetch&id={id}")).status, 200);
        assert_eq!(
            client
                .get("/msp/asset_data_report.php?template_id=7")
                .status,
            200
        );
    }
    assert_eq!(server.max_concurrent_seen(), 1);
    server.stop();
}

#[test]
fn expired_account_answers_2001_with_http_200_and_no_declaration() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.expired_account = true);
    for reply in [
        client.v2("action=launch&template_id=424242&output_format=xml"),
        client.v2("action=list"),
        client.get("/msp/asset_data_report.php?template_id=424242"),
        client.get("/msp/report_template_list.php"),
    ] {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text().trim_end(), EXPIRED);
        assert!(!reply.text().contains("<?xml"));
        assert_limit_headers(&reply);
    }
    assert_eq!(server.reports_alive(), 0);
    server.stop();
}

#[test]
fn server_error_first_answers_503_then_serves() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.server_error_first = 2);
    for _ in 0..2 {
        let reply = client.v2("action=launch&template_id=424242&output_format=xml");
        assert_eq!(reply.status, 503);
        assert!(
            reply
                .header("Content-Type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(reply.text().contains("<html>"));
        assert_limit_headers(&reply);
    }
    assert_eq!(server.reports_alive(), 0);
    client.launch("424242");
    server.stop();
}

#[test]
fn busy_first_answers_max_number_of_reports_then_launches() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.busy_first = 2);
    for _ in 0..2 {
        let reply = client.v2("action=launch&template_id=424242&output_format=xml");
        assert_eq!(reply.status, 200);
        let text = reply.text();
        assert_eq!(
            tag(&text, "TEXT").as_deref(),
            Some("Max number of allowed reports already running. Please try again later.")
        );
        assert_eq!(tag(&text, "CODE"), None);
        assert_eq!(tag(&text, "ITEM_LIST"), None);
    }
    assert_eq!(server.reports_alive(), 0);
    // An invalid launch is not a busy one.
    let invalid = client.v2("action=launch&template_id=1&output_format=xml");
    assert_eq!(tag(&invalid.text(), "CODE").as_deref(), Some("999"));
    client.launch("424242");
    assert_eq!(server.reports_alive(), 1);
    server.stop();
}

#[test]
fn stuck_reports_stay_running() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.stuck = true;
        o.report_delay_ms = 40;
    });
    let id = client.launch("424242");
    std::thread::sleep(Duration::from_millis(300));
    let text = client.v2(&format!("action=list&id={id}")).text();
    assert_eq!(tag(&text, "STATE").as_deref(), Some("Running"));
    assert_eq!(tag(&text, "PERCENT").as_deref(), Some("99"));
    let fetch = client.v2(&format!("action=fetch&id={id}"));
    assert_eq!(tag(&fetch.text(), "CODE").as_deref(), Some("7001"));
    server.stop();
}

#[test]
fn errors_state_reports_end_in_errors() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.errors_state = true;
        o.report_delay_ms = 40;
    });
    let id = client.launch("424242");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(client.state(&id).as_deref(), Some("Errors"));
    let fetch = client.v2(&format!("action=fetch&id={id}"));
    assert_eq!(tag(&fetch.text(), "CODE").as_deref(), Some("7001"));
    assert_eq!(server.reports_alive(), 1);
    client.v2(&format!("action=delete&id={id}"));
    assert_eq!(server.reports_alive(), 0);
    server.stop();
}

/// A writer that notes when bytes arrive.
struct Timed {
    start: Instant,
    bytes: Vec<u8>,
    arrivals: Vec<(Duration, usize)>,
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arrivals.push((self.start.elapsed(), buf.len()));
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn trickle_sends_keep_alive_comments_after_the_declaration_then_small_pieces() {
    let fx = fixture();
    let ms = 40;
    let (server, client) = fx.start(|o| {
        o.trickle_ms = ms;
        o.report_delay_ms = 0;
    });
    let id = client.launch("424242");
    client.wait_finished(&id);
    let mut timed = Timed {
        start: Instant::now(),
        bytes: Vec::new(),
        arrivals: Vec::new(),
    };
    let reply = client
        .send(
            "POST",
            "/api/2.0/fo/report/",
            Some(&format!("action=fetch&id={id}")),
            &mut timed,
        )
        .unwrap();
    let total = timed.start.elapsed();
    assert!(reply.complete);
    assert_eq!(reply.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(
        reply.header("Content-Disposition"),
        Some(format!("attachment; filename=\"Scan_Report_{id}.xml\"").as_str())
    );
    // 3 comments and 20 pieces, each after a pause.
    assert!(total >= Duration::from_millis(23 * ms), "{total:?}");
    let body = String::from_utf8(timed.bytes).unwrap();
    let original = String::from_utf8(fx.file_bytes.clone()).unwrap();
    let declaration_end = original.find('\n').unwrap() + 1;
    let comment = format!("<!-- keep-alive for report {id} -->\n");
    assert_eq!(
        body,
        format!(
            "{}{}{}",
            &original[..declaration_end],
            comment.repeat(3),
            &original[declaration_end..]
        )
    );
    // The document arrived in many small writes spread over time.
    assert!(timed.arrivals.len() >= 24, "{:?}", timed.arrivals.len());
    let first = timed.arrivals.first().unwrap().0;
    let last = timed.arrivals.last().unwrap().0;
    assert!(last - first >= Duration::from_millis(20 * ms));
    server.stop();
}

#[test]
fn trickle_puts_comments_first_when_there_is_no_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.xml");
    std::fs::write(
        &path,
        "<ASSET_DATA_REPORT><HOST_LIST/></ASSET_DATA_REPORT>\n",
    )
    .unwrap();
    let server = QualysServer::start(
        ServerOptions {
            trickle_ms: 5,
            ..ServerOptions::new(USER, PASSWORD)
        }
        .template("1", TemplateSource::File(path)),
    )
    .unwrap();
    let reply = Client::for_server(&server).get("/msp/asset_data_report.php?template_id=1");
    assert_eq!(
        reply.text(),
        format!(
            "{}<ASSET_DATA_REPORT><HOST_LIST/></ASSET_DATA_REPORT>\n",
            "<!-- keep-alive for template 1 -->\n".repeat(3)
        )
    );
    server.stop();
}

#[test]
fn cut_body_once_drops_the_first_download_halfway() {
    let fx = fixture();
    let (server, client) = fx.start(|o| {
        o.cut_body_once = true;
        o.report_delay_ms = 0;
    });
    let id = client.launch("424242");
    client.wait_finished(&id);
    let fetch = format!("action=fetch&id={id}");
    let cut = client.v2(&fetch);
    assert_eq!(cut.status, 200);
    let full = fx.file_bytes.len() as u64;
    assert_eq!(
        cut.header("Content-Length"),
        Some(full.to_string().as_str())
    );
    assert!(!cut.complete);
    assert_eq!(cut.bytes, full / 2);
    assert_eq!(cut.body, fx.file_bytes[..cut.body.len()]);
    // Once only: the v2 fetch and the v1 call now get it all.
    let again = client.v2(&fetch);
    assert!(again.complete);
    assert_eq!(again.body, fx.file_bytes);
    let v1 = client.get("/msp/asset_data_report.php?template_id=424242");
    assert!(v1.complete);
    assert_eq!(server.requests().len(), 5);
    server.stop();
}

#[test]
fn cut_body_once_on_a_generated_report_leaves_the_chunked_body_unterminated() {
    let fx = fixture();
    let (server, client) = fx.start(|o| o.cut_body_once = true);
    let expected = generated(&fx.spec);
    let cut = client.get("/msp/asset_data_report.php?template_id=7");
    assert_eq!(cut.header("Transfer-Encoding"), Some("chunked"));
    assert!(!cut.complete);
    assert_eq!(cut.bytes, expected.len() as u64 / 2);
    assert_eq!(cut.body, expected[..cut.body.len()]);
    let again = client.get("/msp/asset_data_report.php?template_id=7");
    assert!(again.complete);
    assert_eq!(again.body, expected);
    server.stop();
}

// ---------------------------------------------------------------------------------
// Connections.

#[test]
fn keep_alive_and_chunked_request_bodies_work() {
    let fx = fixture();
    let (server, _client) = fx.start(|_| {});
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    let auth = base64(format!("{USER}:{PASSWORD}").as_bytes());
    let form = "action=launch&template_id=424242&output_format=xml";
    let request = format!(
        "GET /msp/report_template_list.php HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n\
         POST /api/2.0/fo/report/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nX-Requested-With: t\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &form[..10],
        form.len() - 10,
        &form[10..]
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut all = String::new();
    tcp.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
    assert!(all.contains("<REPORT_TEMPLATE_LIST>") && all.contains("New report launched"));
    assert_eq!(server.reports_alive(), 1);
    let recorded = server.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[1].params,
        vec![
            ("action".to_string(), "launch".to_string()),
            ("template_id".to_string(), "424242".to_string()),
            ("output_format".to_string(), "xml".to_string()),
        ]
    );
    server.stop();
}

#[test]
fn requests_are_recorded_in_order_with_decoded_params_and_statuses() {
    let fx = fixture();
    let (server, client) = fx.start(|_| {});
    client.call(
        "POST",
        "/api/2.0/fo/report/?echo=q%20s",
        Some("action=launch&template_id=424242&output_format=xml&report_title=a+b%26c&password=hunter2"),
    );
    client
        .clone()
        .auth(Some("x:y"))
        .get("/msp/report_template_list.php");
    let recorded = server.requests();
    assert_eq!(
        recorded[0],
        RecordedRequest {
            method: "POST".into(),
            path: "/api/2.0/fo/report/".into(),
            params: vec![
                ("echo".into(), "q s".into()),
                ("action".into(), "launch".into()),
                ("template_id".into(), "424242".into()),
                ("output_format".into(), "xml".into()),
                ("report_title".into(), "a b&c".into()),
                ("password".into(), "<redacted>".into()),
            ],
            has_auth: true,
            auth_ok: true,
            requested_with: Some("qualys-sim-test".into()),
            status: 200,
        }
    );
    assert_eq!(recorded[1].path, "/msp/report_template_list.php");
    assert_eq!(recorded[1].status, 401);
    // Counted once the server is done with the response (a moment after the client).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.completed_requests() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.completed_requests(), 2);
    server.stop();
}

// ---------------------------------------------------------------------------------
// HTTPS.

#[test]
fn https_with_a_tls_dir_is_trusted_through_ca_pem_only() {
    let fx = fixture();
    let tls_dir = tempfile::tempdir().unwrap();
    let dir = tls_dir.path().join("pki");
    let (server, client) = fx.start(|o| {
        o.tls_dir = Some(dir.clone());
        o.report_delay_ms = 0;
    });
    assert_eq!(server.url(), format!("https://{}", server.addr()));
    let ca = server.ca_pem().unwrap();
    assert_eq!(ca, dir.join("ca.pem"));
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 1);
    assert!(
        !pem.contains("PRIVATE KEY"),
        "ca.pem must hold the certificate only"
    );

    let id = client.launch("7");
    client.wait_finished(&id);
    let report = client.v2(&format!("action=fetch&id={id}"));
    assert!(report.complete);
    assert_eq!(report.body, generated(&fx.spec));

    // A client that trusts another CA fails the handshake.
    let other = tempfile::tempdir().unwrap();
    let stranger = QualysServer::start(ServerOptions {
        tls_dir: Some(other.path().to_path_buf()),
        ..ServerOptions::new(USER, PASSWORD)
    })
    .unwrap();
    let mut distrustful = Client::new(server.addr());
    distrustful.tls = Some(trusting(&stranger.ca_pem().unwrap()));
    let refused = distrustful.send(
        "GET",
        "/msp/report_template_list.php",
        None,
        &mut io::sink(),
    );
    let error = refused
        .expect_err("a client not trusting ca.pem must fail")
        .to_string();
    assert!(
        error.contains("certificate") || error.contains("Unknown"),
        "{error}"
    );
    // Plain HTTP to the HTTPS port gets no answer either.
    let plain = Client::new(server.addr());
    assert!(
        plain
            .send(
                "GET",
                "/msp/report_template_list.php",
                None,
                &mut io::sink()
            )
            .is_err()
    );
    stranger.stop();
    server.stop();

    // The CA is created once: a restart on the same directory keeps it.
    let again = QualysServer::start(ServerOptions {
        tls_dir: Some(dir.clone()),
        ..fx.options()
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&ca).unwrap(), pem);
    let client = Client::for_server(&again);
    assert_eq!(client.get("/msp/report_template_list.php").status, 200);
    again.stop();
}

#[test]
fn a_cut_over_https_is_an_abrupt_close() {
    let fx = fixture();
    let tls_dir = tempfile::tempdir().unwrap();
    let (server, client) = fx.start(|o| {
        o.tls_dir = Some(tls_dir.path().to_path_buf());
        o.cut_body_once = true;
    });
    let cut = client.get("/msp/asset_data_report.php?template_id=424242");
    assert!(!cut.complete);
    assert!(cut.bytes <= fx.file_bytes.len() as u64 / 2);
    let again = client.get("/msp/asset_data_report.php?template_id=424242");
    assert!(again.complete);
    assert_eq!(again.body, fx.file_bytes);
    server.stop();
}

// ---------------------------------------------------------------------------------
// The binary.

/// Starts `qualys-sim serve`; returns the child, its address and the rest of stdout.
fn serve_bin(args: &[&str]) -> (Child, SocketAddr, BufReader<ChildStdout>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .trim_end()
        .parse()
        .unwrap();
    (child, addr, stdout)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("qualys-sim did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn binary_prints_listening_first_and_writes_requests_out_after_n_requests() {
    let fx = fixture();
    let out = fx.dir.path().join("requests.jsonl");
    let template = format!("424242={}", fx.file.display());
    let (mut child, addr, _stdout) = serve_bin(&[
        "--listen",
        "127.0.0.1:0",
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--template",
        &template,
        "--template",
        "7=gen:hosts=5,seed=11,findings=4,qids=40",
        "--report-delay-ms",
        "0",
        "--requests-out",
        out.to_str().unwrap(),
        "--exit-after-requests",
        "4",
    ]);
    assert!(addr.ip().is_loopback());
    let client = Client::new(addr);
    let id = client.launch("424242");
    client.wait_finished(&id); // one list
    assert_eq!(
        client.get("/msp/asset_data_report.php?template_id=7").body,
        generated(&small_spec())
    );
    client
        .clone()
        .auth(Some("x:y"))
        .get("/msp/report_template_list.php");
    assert!(wait_exit(&mut child).success());
    let log = stderr_of(&mut child);
    assert!(!log.contains(PASSWORD), "the log shows the password: {log}");
    assert!(log.contains("action=launch"), "{log}");

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/api/2.0/fo/report/");
    assert_eq!(
        lines[0]["params"][0],
        serde_json::json!(["action", "launch"])
    );
    assert_eq!(lines[0]["has_auth"], true);
    assert_eq!(lines[0]["auth_ok"], true);
    assert_eq!(lines[0]["requested_with"], "qualys-sim-test");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[2]["path"], "/msp/asset_data_report.php");
    assert_eq!(lines[3]["auth_ok"], false);
    assert_eq!(lines[3]["status"], 401);
}

#[test]
fn binary_with_tls_prints_the_ca_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("tls");
    let out = dir.path().join("requests.jsonl");
    let (mut child, addr, mut stdout) = serve_bin(&[
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--tls",
        pki.to_str().unwrap(),
        "--requests-out",
        out.to_str().unwrap(),
    ]);
    let mut second = String::new();
    stdout.read_line(&mut second).unwrap();
    let ca = PathBuf::from(second.strip_prefix("ca ").unwrap().trim_end());
    assert_eq!(ca, pki.join("ca.pem"));
    let mut client = Client::new(addr);
    client.tls = Some(trusting(&ca));
    assert_eq!(client.get("/msp/report_template_list.php").status, 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(wait_exit(&mut child).success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("/msp/report_template_list.php"));
}

#[test]
fn binary_refuses_bad_arguments_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.xml");
    let missing_template = format!("1={}", missing.display());
    let cases: Vec<Vec<&str>> = vec![
        vec!["--password", "p"],
        vec!["--user", "u"],
        vec!["--user", "u", "--password", "p", "--bogus"],
        vec!["--user", "u", "--password", "p", "--listen", "0.0.0.0:0"],
        vec!["--user", "u", "--password", "p", "--listen", "nowhere"],
        vec!["--user", "u", "--password", "p", "--template", "nothing"],
        vec![
            "--user",
            "u",
            "--password",
            "p",
            "--template",
            &missing_template,
        ],
        vec![
            "--user",
            "u",
            "--password",
            "p",
            "--template",
            "1=gen:hosts=3",
        ],
        vec![
            "--user",
            "u",
            "--password",
            "p",
            "--template",
            "1=gen:hosts=1,seed=1",
            "--template",
            "1=gen:hosts=2,seed=1",
        ],
        vec!["--user", "u", "--password", "p", "--trickle-ms", "soon"],
        vec!["--user", "u", "--password", "p", "--stuck=yes"],
        vec![
            "--user",
            "u",
            "--password",
            "p",
            "--exit-after-requests",
            "0",
        ],
        vec!["--user", "u", "--password", "p", "--requests-out"],
    ];
    for args in cases {
        let output = Command::new(BIN).arg("serve").args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("qualys-sim: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--user",
        "--password",
        "--template",
        "--tls",
        "--report-delay-ms",
        "--rate-limit-first",
        "--to-wait-sec",
        "--trickle-ms",
        "--cut-body-once",
        "--stuck",
        "--errors-state",
        "--expired-account",
        "--busy-first",
        "--concurrency-limit",
        "--server-error-first",
        "--requests-out",
        "--exit-after-requests",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
}

/// Peak resident memory of a process, in KiB (Linux).
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_50000_host_generated_report_streams_without_the_server_growing() {
    let spec = GenSpec {
        hosts: 50_000,
        seed: 1,
        findings_per_host: 2,
        ..GenSpec::default()
    };
    let (mut child, addr, _stdout) = serve_bin(&[
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--template",
        "50000=gen:hosts=50000,seed=1,findings=2",
        "--report-delay-ms",
        "0",
    ]);
    let client = Client::new(addr);
    #[cfg(target_os = "linux")]
    let before = peak_rss_kib(child.id());
    let id = client.launch("50000");
    client.wait_finished(&id);

    /// Counts what it is given, keeps nothing.
    struct Counter(u64);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let reply = client
        .send(
            "POST",
            "/api/2.0/fo/report/",
            Some(&format!("action=fetch&id={id}")),
            &mut counter,
        )
        .unwrap();
    assert!(reply.complete);
    let expected = generate(&spec, &mut io::sink()).unwrap().bytes;
    assert_eq!(counter.0, expected);
    assert!(expected > 100_000_000, "{expected}");
    #[cfg(target_os = "linux")]
    {
        let after = peak_rss_kib(child.id());
        // The report is over 100 MB; the server's peak grows by a few buffers at most.
        assert!(
            after < before + 32 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
}
