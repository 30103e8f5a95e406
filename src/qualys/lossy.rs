//! A `BufRead` adapter that turns any byte stream into valid UTF-8 by replacing each
//! invalid sequence with U+FFFD, counting the replacements.
//!
//! Reports declare UTF-8 but invalid bytes turn up in the field (qualys.md §5: "recover
//! (lossy decoding) and count what was replaced, do not crash"). The XML reader insists on
//! UTF-8, so the repair happens here, before it, in one streaming pass. Valid input is
//! handed through without copying; a multi-byte sequence split across two reads is held
//! back until the rest arrives.
//!
//! The XML declaration decides how the bytes are read: UTF-8 (any case, `utf8`), US-ASCII
//! or none as above; ISO-8859-1 and Windows-1252 (and their other names) are decoded to
//! UTF-8 on the way; any other declared encoding is refused with its name
//! ([`UnsupportedEncoding`]) rather than read as UTF-8 with its letters lost.

use std::io::{self, BufRead, Read};

use encoding_rs::{Decoder, Encoding, WINDOWS_1252};

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
const CAPACITY: usize = 256 * 1024;
/// How far into the input the XML declaration is looked for (it is the first thing of
/// the document, and short).
const DECLARATION_WINDOW: usize = 1024;
/// The most UTF-8 bytes one byte of a single-byte encoding becomes (U+20AC, €).
const MAX_UTF8_PER_BYTE: usize = 3;

/// The report declares an encoding the connector cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the report declares encoding=\"{declared}\", which cannot be read (UTF-8, US-ASCII, ISO-8859-1 and Windows-1252 can)"
)]
pub struct UnsupportedEncoding {
    /// The declared name, escaped (it is the document's text).
    pub declared: String,
}

/// The decoder of a single-byte encoding.
struct SingleByte(Decoder);

impl std::fmt::Debug for SingleByte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SingleByte({})", self.0.encoding().name())
    }
}

#[derive(Debug)]
pub struct LossyUtf8<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes `pos..ready` are valid UTF-8, ready to hand out.
    pos: usize,
    ready: usize,
    /// Bytes `ready..filled` are the start of a sequence that may complete on the next read.
    filled: usize,
    eof: bool,
    replaced: u64,
    /// Whether the declaration was looked at yet.
    sniffed: bool,
    /// Input read while looking for the declaration, not yet handed on.
    head: Vec<u8>,
    /// Set when the document is in a single-byte encoding, decoded to UTF-8 here.
    decoder: Option<SingleByte>,
    /// Raw input of the decoder.
    raw: Vec<u8>,
}

impl<R: Read> LossyUtf8<R> {
    pub fn new(inner: R) -> Self {
        LossyUtf8 {
            inner,
            buf: vec![0; CAPACITY],
            pos: 0,
            ready: 0,
            filled: 0,
            eof: false,
            replaced: 0,
            sniffed: false,
            head: Vec::new(),
            decoder: None,
            raw: Vec::new(),
        }
    }

    /// How many invalid sequences were replaced so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Reads the start of the input and chooses the decoding its XML declaration asks for.
    fn sniff(&mut self) -> io::Result<()> {
        self.sniffed = true;
        let mut chunk = [0u8; DECLARATION_WINDOW];
        while self.head.len() < DECLARATION_WINDOW && !self.head.windows(2).any(|w| w == b"?>") {
            let want = DECLARATION_WINDOW - self.head.len();
            let n = read_retrying(&mut self.inner, &mut chunk[..want])?;
            if n == 0 {
                break;
            }
            self.head.extend_from_slice(&chunk[..n]);
            if !could_start_declaration(&self.head) {
                break;
            }
        }
        if let Some(encoding) = single_byte_encoding(&self.head).map_err(io::Error::other)? {
            self.decoder = Some(SingleByte(encoding.new_decoder_without_bom_handling()));
            self.raw = vec![0; CAPACITY / MAX_UTF8_PER_BYTE];
        }
        Ok(())
    }

    /// Appends more input, as UTF-8 (or what claims to be), at `buf[filled..]`; 0 at the
    /// end of the input.
    fn read_more(&mut self) -> io::Result<usize> {
        let room = self.buf.len() - self.filled;
        let Some(decoder) = self.decoder.as_mut() else {
            if !self.head.is_empty() {
                let n = self.head.len().min(room);
                self.buf[self.filled..self.filled + n].copy_from_slice(&self.head[..n]);
                self.head.drain(..n);
                return Ok(n);
            }
            return read_retrying(&mut self.inner, &mut self.buf[self.filled..]);
        };
        let take = (room / MAX_UTF8_PER_BYTE).min(self.raw.len());
        let n = if self.head.is_empty() {
            read_retrying(&mut self.inner, &mut self.raw[..take])?
        } else {
            let n = self.head.len().min(take);
            self.raw[..n].copy_from_slice(&self.head[..n]);
            self.head.drain(..n);
            n
        };
        // A single-byte decoder maps every byte and keeps no state between calls; the
        // room was reserved for the longest output.
        let (_, _, written, _) =
            decoder
                .0
                .decode_to_utf8(&self.raw[..n], &mut self.buf[self.filled..], false);
        Ok(written)
    }

    fn refill(&mut self) -> io::Result<()> {
        if !self.sniffed {
            self.sniff()?;
        }
        // Move the held-back partial sequence (at most 3 bytes) to the front.
        let tail = self.filled - self.ready;
        self.buf.copy_within(self.ready..self.filled, 0);
        self.pos = 0;
        self.ready = 0;
        self.filled = tail;
        while self.ready == 0 {
            if self.eof {
                if self.filled > 0 {
                    // The stream ended inside a sequence: that is one invalid sequence.
                    self.replaced += 1;
                    self.buf[..REPLACEMENT.len()].copy_from_slice(REPLACEMENT);
                    self.filled = REPLACEMENT.len();
                    self.ready = self.filled;
                }
                return Ok(());
            }
            let n = self.read_more()?;
            if n == 0 {
                self.eof = true;
                continue;
            }
            self.filled += n;
            self.validate();
        }
        Ok(())
    }

    /// Sets `ready` to the end of the valid prefix of `buf[..filled]`, repairing invalid
    /// sequences on the way (rare: only then is the buffer copied).
    fn validate(&mut self) {
        let mut checked = 0;
        let mut repaired: Option<Vec<u8>> = None;
        loop {
            match std::str::from_utf8(&self.buf[checked..self.filled]) {
                Ok(_) => {
                    if let Some(out) = repaired.as_mut() {
                        out.extend_from_slice(&self.buf[checked..self.filled]);
                    }
                    checked = self.filled;
                    break;
                }
                Err(e) => {
                    let good = checked + e.valid_up_to();
                    match e.error_len() {
                        Some(bad) => {
                            let out = repaired.get_or_insert_with(|| Vec::with_capacity(CAPACITY));
                            out.extend_from_slice(&self.buf[checked..good]);
                            out.extend_from_slice(REPLACEMENT);
                            self.replaced += 1;
                            checked = good + bad;
                        }
                        None => {
                            // Incomplete sequence at the end: keep it for the next read.
                            if let Some(out) = repaired.as_mut() {
                                out.extend_from_slice(&self.buf[checked..good]);
                            }
                            checked = good;
                            break;
                        }
                    }
                }
            }
        }
        match repaired {
            None => {
                self.ready = checked;
            }
            Some(mut out) => {
                let ready = out.len();
                out.extend_from_slice(&self.buf[checked..self.filled]);
                let filled = out.len();
                if out.len() < CAPACITY {
                    out.resize(CAPACITY, 0);
                }
                self.buf = out;
                self.ready = ready;
                self.filled = filled;
            }
        }
    }
}

impl<R: Read> Read for LossyUtf8<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for LossyUtf8<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.ready {
            self.refill()?;
        }
        Ok(&self.buf[self.pos..self.ready])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.ready);
    }
}

fn read_retrying(inner: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether `head` (the first bytes read) may still be the start of an XML declaration,
/// so reading on to its end is worth it.
fn could_start_declaration(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let n = head.len().min(5);
    head[..n] == b"<?xml"[..n]
}

/// Whether a document starting with `input` is decoded from a single-byte encoding
/// (so has no invalid UTF-8 to repair), as [`LossyUtf8`] decides from its first bytes.
pub fn decodes_single_byte(input: &[u8]) -> bool {
    let head = input.get(..DECLARATION_WINDOW).unwrap_or(input);
    matches!(single_byte_encoding(head), Ok(Some(_)))
}

/// The encoding a document starting with `head` must be decoded from, when it is a
/// single-byte one; `None` for UTF-8 (declared, implied or with its BOM) and US-ASCII
/// (a subset of it).
fn single_byte_encoding(head: &[u8]) -> Result<Option<&'static Encoding>, UnsupportedEncoding> {
    if head.starts_with(b"\xef\xbb\xbf") {
        return Ok(None);
    }
    let Some(label) = declared_encoding(head) else {
        return Ok(None);
    };
    let lower = label.to_ascii_lowercase();
    if matches!(
        lower.as_slice(),
        b"utf8" | b"us-ascii" | b"ascii" | b"ansi_x3.4-1968"
    ) {
        return Ok(None);
    }
    // The WHATWG labels: "iso-8859-1", "latin1", "cp1252", "windows-1252"... all name
    // Windows-1252, the superset that real "ISO-8859-1" documents are written in.
    match Encoding::for_label(label) {
        Some(e) if e == encoding_rs::UTF_8 => Ok(None),
        Some(e) if e == WINDOWS_1252 => Ok(Some(e)),
        _ => Err(UnsupportedEncoding {
            declared: crate::servertext::escape(label, 64),
        }),
    }
}

/// The `encoding` pseudo-attribute of the XML declaration at the start of `head`.
fn declared_encoding(head: &[u8]) -> Option<&[u8]> {
    let decl = head.strip_prefix(b"<?xml")?;
    let end = decl.windows(2).position(|w| w == b"?>")?;
    let decl = &decl[..end];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let (&quote, value) = rest.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let close = value.iter().position(|&b| b == quote)?;
    Some(&value[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads through the adapter with a source that returns at most `chunk` bytes a call,
    /// so sequences get split across reads.
    fn run(input: &[u8], chunk: usize) -> (String, u64) {
        try_run(input, chunk).unwrap()
    }

    /// `run`, with a read error as its message.
    fn try_run(input: &[u8], chunk: usize) -> Result<(String, u64), String> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = LossyUtf8::new(Chunked(input, chunk));
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok((
            String::from_utf8(out).expect("output is UTF-8"),
            r.replaced(),
        ))
    }

    #[test]
    fn repairs_and_counts() {
        let cases: &[(&[u8], &str, u64)] = &[
            (b"plain ascii", "plain ascii", 0),
            (
                "caf\u{e9} \u{2014} \u{1F600}".as_bytes(),
                "caf\u{e9} \u{2014} \u{1F600}",
                0,
            ),
            (b"a\xffb", "a\u{FFFD}b", 1),
            (b"latin1 caf\xe9!", "latin1 caf\u{FFFD}!", 1),
            (b"\xc3", "\u{FFFD}", 1),
            (b"end \xe2\x82", "end \u{FFFD}", 1),
            (b"\xff\xfe<x/>", "\u{FFFD}\u{FFFD}<x/>", 2),
            (b"", "", 0),
        ];
        for (input, want, count) in cases {
            for chunk in [1, 2, 3, 7, 1 << 20] {
                let (got, n) = run(input, chunk);
                assert_eq!(&got, want, "input {input:?} chunk {chunk}");
                assert_eq!(n, *count, "input {input:?} chunk {chunk}");
            }
        }
    }

    /// The text read and the replacements made, or the read error's message.
    type Decoded = Result<(String, u64), String>;

    /// Reads `input` in chunks of every size that splits it differently; the output (or
    /// the error message) must not depend on the chunking.
    fn decoded(input: &[u8]) -> Decoded {
        let outcomes = [1, 2, 3, 7, 1 << 20].map(|chunk| try_run(input, chunk));
        for other in &outcomes[1..] {
            assert_eq!(*other, outcomes[0], "input {input:?}");
        }
        outcomes[0].clone()
    }

    #[test]
    fn declared_encodings() {
        let doc = |encoding: &str, body: &[u8]| {
            let mut d = format!("<?xml version=\"1.0\" encoding={encoding}?>").into_bytes();
            d.extend_from_slice(body);
            d
        };
        let decl = |encoding: &str, text: &str| {
            format!("<?xml version=\"1.0\" encoding={encoding}?>{text}")
        };
        let ok = |text: String, replaced: u64| Ok((text, replaced));
        let cases: Vec<(Vec<u8>, Decoded)> = vec![
            (
                doc("\"ISO-8859-1\"", b"<a>Caf\xe9</a>"),
                ok(decl("\"ISO-8859-1\"", "<a>Caf\u{e9}</a>"), 0),
            ),
            (
                doc("'iso-8859-1'", b"\xbd"),
                ok(decl("'iso-8859-1'", "\u{bd}"), 0),
            ),
            (
                doc("\"latin1\"", b"\xe9"),
                ok(decl("\"latin1\"", "\u{e9}"), 0),
            ),
            (
                doc("\"Windows-1252\"", b"\x80 \x93q\x94"),
                ok(decl("\"Windows-1252\"", "\u{20ac} \u{201c}q\u{201d}"), 0),
            ),
            (
                b"<?xml version='1.0' encoding = \"cp1252\" ?>\xe9".to_vec(),
                ok(
                    "<?xml version='1.0' encoding = \"cp1252\" ?>\u{e9}".into(),
                    0,
                ),
            ),
            // As today: UTF-8 (any spelling), US-ASCII, no declaration.
            (
                doc("\"UTF-8\"", b"caf\xc3\xa9 \xe9"),
                ok(decl("\"UTF-8\"", "caf\u{e9} \u{fffd}"), 1),
            ),
            (
                doc("\"utf8\"", b"\xe9"),
                ok(decl("\"utf8\"", "\u{fffd}"), 1),
            ),
            (
                doc("\"US-ASCII\"", b"\xe9"),
                ok(decl("\"US-ASCII\"", "\u{fffd}"), 1),
            ),
            (b"<a>\xe9</a>".to_vec(), ok("<a>\u{fffd}</a>".into(), 1)),
            // A UTF-8 byte order mark wins over the declaration.
            (
                [
                    b"\xef\xbb\xbf".as_slice(),
                    &doc("\"ISO-8859-1\"", b"\xc3\xa9"),
                ]
                .concat(),
                ok(format!("\u{feff}{}", decl("\"ISO-8859-1\"", "\u{e9}")), 0),
            ),
            // Others are refused, by name.
            (doc("\"ISO-8859-15\"", b"x"), Err("ISO-8859-15".into())),
            (doc("\"Shift_JIS\"", b"x"), Err("Shift_JIS".into())),
            (doc("\"UTF-16\"", b"x"), Err("UTF-16".into())),
            (doc("\"no\u{1b}such\"", b"x"), Err("no\\u{1b}such".into())),
        ];
        for (input, want) in cases {
            let got = decoded(&input);
            match (&got, &want) {
                (Err(message), Err(name)) => assert!(
                    message.contains(&format!("encoding=\"{name}\", which cannot be read")),
                    "{message}"
                ),
                _ => assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(&input)),
            }
        }
    }

    #[test]
    fn large_input_with_scattered_errors() {
        let mut input = Vec::new();
        for i in 0..100_000u32 {
            input.extend_from_slice(format!("line {i} \u{e9}").as_bytes());
            if i % 1000 == 0 {
                input.push(0xff);
            }
        }
        let (got, n) = run(&input, 4093);
        assert_eq!(n, 100);
        assert_eq!(got.matches('\u{FFFD}').count(), 100);
        assert_eq!(got.matches('\u{e9}').count(), 100_000);
    }
}
