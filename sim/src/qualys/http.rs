//! The little HTTP/1.1 the Qualys simulator needs (qualys.md §1–§4): request heads parsed
//! with `httparse`, bodies read by Content-Length or chunked, form and query decoding,
//! the Basic credentials, and the two ways a response body goes out (Content-Length, or
//! chunked for streamed reports).

use std::io::{self, Read, Write};

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (API calls are small forms).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path without the query string, as sent (not percent-decoded).
    pub(crate) path: String,
    /// The raw query string (after `?`), empty when absent.
    pub(crate) query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor: u8,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive), lossily as text.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    }

    /// Whether the client wants the connection closed after the response.
    pub(crate) fn wants_close(&self) -> bool {
        let connection = self.header("Connection").unwrap_or_default();
        let tokens = || connection.split(',').map(str::trim);
        if self.minor == 0 {
            !tokens().any(|t| t.eq_ignore_ascii_case("keep-alive"))
        } else {
            tokens().any(|t| t.eq_ignore_ascii_case("close"))
        }
    }

    /// Query parameters, then form parameters of the body (when it is a form), decoded.
    pub(crate) fn params(&self) -> Vec<(String, String)> {
        let mut params = decode_pairs(self.query.as_bytes());
        let content_type = self.header("Content-Type").unwrap_or_default();
        let is_form = content_type.is_empty()
            || content_type
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded");
        if is_form && !self.body.is_empty() {
            params.extend(decode_pairs(&self.body));
        }
        params
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client closed the connection between requests: nothing to answer.
    Closed,
    /// Not a valid request: answer 400 (or 413) and close.
    Bad(u16, String),
    /// The connection failed.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads bytes into `buf` (which may already hold the start of the next request).
/// Answers `100 Continue` when the client waits for it.
pub(crate) fn read_request<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((head_len, mut request)) = parse_head(buf)? {
            buf.drain(..head_len);
            let expects_continue = request
                .header("Expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
            if expects_continue {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                stream.flush()?;
            }
            request.body = read_body(stream, buf, &request)?;
            return Ok(request);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large".into()));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(if buf.iter().all(u8::is_ascii_whitespace) {
                ReadError::Closed
            } else {
                ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a request head",
                ))
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `Some((length of the head, request without body))` when `buf` holds a whole head.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Request)>, ReadError> {
    // Tolerate blank lines between requests (RFC 9112 §2.2).
    let skip = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(&buf[skip..]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ReadError::Bad(400, format!("malformed request: {e}"))),
    };
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: parsed.method.unwrap_or("GET").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        minor: parsed.version.unwrap_or(1),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    Ok(Some((skip + len, request)))
}

fn read_body<S: Read>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    request: &Request,
) -> Result<Vec<u8>, ReadError> {
    let chunked = request
        .header("Transfer-Encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(stream, buf);
    }
    let length = match request.header("Content-Length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(400, format!("bad Content-Length {v:?}")))?,
    };
    if length > MAX_BODY {
        return Err(ReadError::Bad(413, "request body too large".into()));
    }
    fill(stream, buf, length)?;
    Ok(buf.drain(..length).collect())
}

/// Reads until `buf` holds at least `n` bytes.
fn fill<S: Read>(stream: &mut S, buf: &mut Vec<u8>, n: usize) -> Result<(), ReadError> {
    let mut chunk = [0u8; 8192];
    while buf.len() < n {
        let got = stream.read(&mut chunk)?;
        if got == 0 {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a request body",
            )));
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Ok(())
}

/// Reads one CRLF-terminated line (without the CRLF) from the front of `buf`.
fn take_line<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    loop {
        if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..pos].to_vec();
            buf.drain(..pos + 2);
            return Ok(line);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(400, "chunk line too long".into()));
        }
        let have = buf.len();
        fill(stream, buf, have + 1)?;
    }
}

/// A chunked request body (RFC 9112 §7.1); trailers are read and ignored.
fn read_chunked<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = take_line(stream, buf)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Bad(400, format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            while !take_line(stream, buf)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Bad(413, "request body too large".into()));
        }
        fill(stream, buf, size + 2)?;
        body.extend(buf.drain(..size));
        if buf.drain(..2).as_slice() != b"\r\n" {
            return Err(ReadError::Bad(400, "chunk not followed by CRLF".into()));
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (also query strings): `+` is a
/// space, `%XX` a byte; invalid UTF-8 is replaced.
pub(crate) fn decode_pairs(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(eq) => (&part[..eq], &part[eq + 1..]),
                None => (part, &b""[..]),
            };
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The raw bytes of `Authorization: Basic …` (qualys.md §1: base64 of the raw
/// `user:password`, never URL-decoded). `None` when the header is absent or not Basic.
pub(crate) fn basic_credentials(request: &Request) -> Option<Vec<u8>> {
    let value = request.header("Authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64_decode(encoded.trim())
}

/// Standard base64 with padding optional; `None` on any invalid character.
pub(crate) fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Reason phrase of the statuses the simulator sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The status line and headers, ending with the empty line.
pub(crate) fn head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Escapes text for XML content and attribute values.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a CDATA section (a `]]>` inside is split across two sections).
pub(crate) fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(
            decode_pairs(b"action=launch&template_id=42&report_title=a+b%26c%3D&flag&%zz=%4"),
            vec![
                ("action".into(), "launch".into()),
                ("template_id".into(), "42".into()),
                ("report_title".into(), "a b&c=".into()),
                ("flag".into(), String::new()),
                ("%zz".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").as_deref(),
            Some(&b"Aladdin:open sesame"[..])
        );
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("a*b"), None);
    }

    #[test]
    fn chunked_request_body() {
        let mut wire: &[u8] = b"";
        let mut buf = b"4\r\nab=c\r\n3;x=y\r\n&d=\r\n0\r\nTrailer: z\r\n\r\nNEXT".to_vec();
        let body = read_chunked(&mut wire, &mut buf).map_err(|e| format!("{e:?}"));
        assert_eq!(body.as_deref(), Ok(&b"ab=c&d="[..]));
        assert_eq!(buf, b"NEXT");
    }
}
