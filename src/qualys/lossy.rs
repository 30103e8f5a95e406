//! A `BufRead` adapter that turns any byte stream into valid UTF-8 by replacing each
//! invalid sequence with U+FFFD, counting the replacements.
//!
//! Reports declare UTF-8 but invalid bytes turn up in the field (qualys.md §5: "recover
//! (lossy decoding) and count what was replaced, do not crash"). The XML reader insists on
//! UTF-8, so the repair happens here, before it, in one streaming pass. Valid input is
//! handed through without copying; a multi-byte sequence split across two reads is held
//! back until the rest arrives.

use std::io::{self, BufRead, Read};

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
const CAPACITY: usize = 256 * 1024;

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
        }
    }

    /// How many invalid sequences were replaced so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    fn refill(&mut self) -> io::Result<()> {
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
            let n = loop {
                match self.inner.read(&mut self.buf[self.filled..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads through the adapter with a source that returns at most `chunk` bytes a call,
    /// so sequences get split across reads.
    fn run(input: &[u8], chunk: usize) -> (String, u64) {
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
        r.read_to_end(&mut out).unwrap();
        (
            String::from_utf8(out).expect("output is UTF-8"),
            r.replaced(),
        )
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
