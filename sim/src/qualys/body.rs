//! How a report body goes out (qualys.md §4): framed by Content-Length or chunked,
//! optionally trickled (keep-alive comments, then small pieces, like Qualys while it
//! works) and optionally cut off halfway (a download that ends early). The layers are
//! plain `Write` adapters so a report streams from its source to the socket without
//! ever being held in memory.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How often sleeps look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Sleeps `ms`, failing early when `stop` is set.
pub(crate) fn sleep(ms: u64, stop: &AtomicBool) -> io::Result<()> {
    let until = Instant::now() + Duration::from_millis(ms);
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the server is stopping",
            ));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        thread::sleep((until - now).min(POLL));
    }
}

/// The response body's framing on the connection. `guard` (the call's place in the
/// concurrency count) is dropped just before the last byte of the response goes out, so
/// a client that starts its next call as soon as this one ends is never counted twice.
pub(crate) struct Framed<'a, W: Write, G> {
    out: &'a mut W,
    chunked: bool,
    /// Bytes still owed under Content-Length.
    remaining: u64,
    guard: Option<G>,
}

impl<'a, W: Write, G> Framed<'a, W, G> {
    /// Chunked transfer coding (RFC 9112 §7.1).
    pub(crate) fn chunked(out: &'a mut W, guard: G) -> Self {
        Framed {
            out,
            chunked: true,
            remaining: 0,
            guard: Some(guard),
        }
    }

    /// Exactly `length` bytes, as announced in Content-Length.
    pub(crate) fn sized(out: &'a mut W, length: u64, guard: G) -> Self {
        let mut framed = Framed {
            out,
            chunked: false,
            remaining: length,
            guard: Some(guard),
        };
        if length == 0 {
            framed.guard = None;
        }
        framed
    }

    /// Ends the body: the last chunk, or a check that every announced byte was sent.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if self.chunked {
            self.guard = None;
            self.out.write_all(b"0\r\n\r\n")?;
        } else if self.remaining > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the report ended {} bytes short of its Content-Length",
                    self.remaining
                ),
            ));
        }
        self.out.flush()
    }
}

impl<W: Write, G> Write for Framed<'_, W, G> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.chunked {
            self.out
                .write_all(format!("{:x}\r\n", buf.len()).as_bytes())?;
            self.out.write_all(buf)?;
            self.out.write_all(b"\r\n")?;
            return Ok(buf.len());
        }
        let n = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if n == 0 {
            return Err(io::Error::other(
                "the report is longer than its Content-Length",
            ));
        }
        if n as u64 == self.remaining {
            self.out.write_all(&buf[..n - 1])?;
            self.out.flush()?;
            self.guard = None;
            self.out.write_all(&buf[n - 1..n])?;
        } else {
            self.out.write_all(&buf[..n])?;
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Passes `limit` bytes on, flushes them, then fails every write (`--cut-body-once`:
/// the connection is then dropped without ending the body).
pub(crate) struct Cut<W: Write> {
    inner: W,
    left: u64,
    pub(crate) happened: bool,
}

impl<W: Write> Cut<W> {
    /// `None`: no limit.
    pub(crate) fn new(inner: W, limit: Option<u64>) -> Self {
        Cut {
            inner,
            left: limit.unwrap_or(u64::MAX),
            happened: false,
        }
    }

    fn cut(&mut self) -> io::Error {
        self.happened = true;
        io::Error::new(io::ErrorKind::ConnectionAborted, "body cut on purpose")
    }
}

impl<W: Write> Write for Cut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(self.cut());
        }
        let n = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        self.inner.write_all(&buf[..n])?;
        self.left -= n as u64;
        if self.left == 0 {
            self.inner.flush()?;
            return Err(self.cut());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Keep-alive comments this many times before the body.
pub(crate) const TRICKLE_COMMENTS: u32 = 3;
/// Then this many small pieces, `ms` apart; the rest goes at full speed.
pub(crate) const TRICKLE_PIECES: u32 = 20;
/// Size of a small piece.
pub(crate) const TRICKLE_PIECE: usize = 256;
/// The XML declaration is looked for in this many first bytes.
const DECLARATION_WINDOW: usize = 1024;

enum Phase {
    /// Collecting the start of the document to find the end of the XML declaration.
    Declaration(Vec<u8>),
    /// Sending small pieces; how many are left.
    Pieces(u32),
    Done,
}

/// `--trickle-ms`: the XML declaration line (a comment cannot come before it), then
/// [`TRICKLE_COMMENTS`] `<!-- keep-alive … -->` comments `ms` apart, then
/// [`TRICKLE_PIECES`] pieces of [`TRICKLE_PIECE`] bytes `ms` apart, then the rest.
pub(crate) struct Trickle<'s, W: Write> {
    inner: W,
    ms: u64,
    comment: String,
    stop: &'s AtomicBool,
    phase: Phase,
}

impl<'s, W: Write> Trickle<'s, W> {
    pub(crate) fn new(inner: W, ms: u64, label: &str, stop: &'s AtomicBool) -> Self {
        Trickle {
            inner,
            ms,
            comment: format!("<!-- keep-alive for {label} -->\n"),
            stop,
            phase: Phase::Declaration(Vec::new()),
        }
    }

    /// Where the document may take a comment: after the declaration line (and a UTF-8
    /// BOM), or at 0 when there is no declaration. `None`: not known yet.
    fn split_point(head: &[u8], complete: bool) -> Option<usize> {
        let bom = if head.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let rest = &head[bom..];
        if rest.len() < 5 && !complete {
            return if b"<?xml".starts_with(rest) {
                None
            } else {
                Some(0)
            };
        }
        if !rest.starts_with(b"<?xml") {
            return Some(0);
        }
        let Some(end) = rest.windows(2).position(|w| w == b"?>") else {
            return (complete || head.len() >= DECLARATION_WINDOW).then_some(head.len());
        };
        let mut at = bom + end + 2;
        // Keep the line ending with the declaration.
        match &head[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            [b'\r'] | [] if !complete => return None,
            _ => {}
        }
        Some(at)
    }

    fn start(&mut self, head: Vec<u8>, at: usize) -> io::Result<()> {
        self.inner.write_all(&head[..at])?;
        self.inner.flush()?;
        for _ in 0..TRICKLE_COMMENTS {
            sleep(self.ms, self.stop)?;
            self.inner.write_all(self.comment.as_bytes())?;
            self.inner.flush()?;
        }
        self.phase = Phase::Pieces(TRICKLE_PIECES);
        self.push(&head[at..])
    }

    fn push(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match &mut self.phase {
                Phase::Declaration(head) => {
                    head.extend_from_slice(buf);
                    buf = &[];
                    if let Some(at) = Self::split_point(head, false) {
                        let head = std::mem::take(head);
                        self.start(head, at)?;
                    }
                }
                Phase::Pieces(left) => {
                    if *left == 0 {
                        self.phase = Phase::Done;
                        continue;
                    }
                    *left -= 1;
                    sleep(self.ms, self.stop)?;
                    let n = buf.len().min(TRICKLE_PIECE);
                    self.inner.write_all(&buf[..n])?;
                    self.inner.flush()?;
                    buf = &buf[n..];
                }
                Phase::Done => {
                    self.inner.write_all(buf)?;
                    buf = &[];
                }
            }
        }
        Ok(())
    }

    /// Sends what is still held back (a document shorter than its declaration window).
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if let Phase::Declaration(head) = &mut self.phase {
            let head = std::mem::take(head);
            let at = Self::split_point(&head, true).unwrap_or(head.len());
            self.start(head, at)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for Trickle<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if matches!(self.phase, Phase::Declaration(_)) {
            return Ok(());
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trickled(doc: &[u8], pieces: &[usize]) -> Vec<u8> {
        let stop = AtomicBool::new(false);
        let mut out = Vec::new();
        {
            let mut t = Trickle::new(&mut out, 0, "report 7", &stop);
            let mut rest = doc;
            for &n in pieces {
                let n = n.min(rest.len());
                t.write_all(&rest[..n]).map_err(|e| e.to_string()).ok();
                rest = &rest[n..];
            }
            t.write_all(rest).map_err(|e| e.to_string()).ok();
            t.finish().map_err(|e| e.to_string()).ok();
        }
        out
    }

    #[test]
    fn comments_go_after_the_declaration_line() {
        let doc = b"<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE A SYSTEM \"x\">\n<A/>\n";
        let comments = "<!-- keep-alive for report 7 -->\n".repeat(3);
        let expected = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n{comments}<!DOCTYPE A SYSTEM \"x\">\n<A/>\n"
        );
        for split in [vec![], vec![1], vec![3, 4], vec![39], vec![40], vec![41]] {
            assert_eq!(
                String::from_utf8_lossy(&trickled(doc, &split)),
                expected,
                "{split:?}"
            );
        }
    }

    #[test]
    fn comments_go_first_without_a_declaration() {
        let comments = "<!-- keep-alive for report 7 -->\n".repeat(3);
        assert_eq!(
            String::from_utf8_lossy(&trickled(b"<A/>", &[2])),
            format!("{comments}<A/>")
        );
        assert_eq!(String::from_utf8_lossy(&trickled(b"", &[])), comments);
    }

    #[test]
    fn cut_passes_the_limit_then_fails() {
        let mut out = Vec::new();
        let mut cut = Cut::new(&mut out, Some(5));
        assert!(cut.write_all(b"abc").is_ok());
        assert!(cut.write_all(b"defg").is_err());
        assert!(cut.happened);
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn framing() {
        let mut out = Vec::new();
        let mut framed = Framed::chunked(&mut out, ());
        framed.write_all(b"hello").ok();
        framed.finish().ok();
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");

        let mut out = Vec::new();
        let mut framed = Framed::sized(&mut out, 3, ());
        assert!(framed.write_all(b"abcd").is_err());
        assert!(framed.finish().is_ok());
        assert_eq!(out, b"abc");
    }
}
