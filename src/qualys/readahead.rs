//! Reads a report on a second thread: file reads and the UTF-8 repair of `LossyUtf8` run
//! beside the XML parser instead of in front of it, handing over ready chunks through a
//! small bounded channel (so memory stays a few buffers whatever the file's size).
//!
//! On the 2-core machines the connector is sized for, this takes the kernel copy and the
//! validation pass off the parser's critical path (BENCHMARKS.md, "Profile").

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::lossy::LossyUtf8;

/// A source of valid UTF-8 that can say how many invalid sequences it replaced.
pub trait Utf8Source: BufRead {
    fn replaced(&self) -> u64;
}

impl<R: Read> Utf8Source for LossyUtf8<R> {
    fn replaced(&self) -> u64 {
        LossyUtf8::replaced(self)
    }
}

const CHUNK: usize = 256 * 1024;
/// Chunks in flight: enough to keep both threads busy.
const DEPTH: usize = 3;

enum Message {
    Data(Vec<u8>),
    End { replaced: u64 },
    Error(io::Error),
}

#[derive(Debug)]
pub struct ReadAhead {
    rx: Receiver<Message>,
    /// Empty buffers going back to the reader thread for reuse.
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    replaced: u64,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Message::End { replaced } => write!(f, "End({replaced})"),
            Message::Error(e) => write!(f, "Error({e})"),
        }
    }
}

impl ReadAhead {
    /// Starts reading `input` on its own thread.
    pub fn spawn<R: Read + Send + 'static>(input: R) -> io::Result<ReadAhead> {
        let (tx, rx) = sync_channel(DEPTH);
        let (recycle, returned) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::Builder::new()
            .name("report-reader".into())
            .spawn(move || produce(LossyUtf8::new(input), &tx, &returned))?;
        Ok(ReadAhead {
            rx,
            recycle,
            current: Vec::new(),
            pos: 0,
            done: false,
            replaced: 0,
            thread: Some(thread),
        })
    }
}

/// The reader thread: fills chunks of whole characters and sends them on.
fn produce<R: Read>(
    mut input: LossyUtf8<R>,
    tx: &SyncSender<Message>,
    returned: &Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = returned
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        chunk.clear();
        while chunk.len() < CHUNK {
            let available = match input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.send(Message::Error(e));
                    return;
                }
            };
            if available.is_empty() {
                break;
            }
            // LossyUtf8 hands out whole characters, so any prefix it gives is valid.
            let n = available.len().min(CHUNK - chunk.len());
            let cut = char_boundary(available, n);
            chunk.extend_from_slice(&available[..cut]);
            input.consume(cut);
            if cut == 0 {
                break;
            }
        }
        if chunk.is_empty() {
            let _ = tx.send(Message::End {
                replaced: input.replaced(),
            });
            return;
        }
        if tx.send(Message::Data(chunk)).is_err() {
            // The parser stopped (an error): nothing more to read.
            return;
        }
    }
}

/// The largest `cut <= n` that ends on a character boundary of the valid UTF-8 `bytes`.
fn char_boundary(bytes: &[u8], n: usize) -> usize {
    if n >= bytes.len() {
        return bytes.len();
    }
    let mut cut = n;
    while cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    cut
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.current.len() && !self.done {
            match self.rx.recv() {
                Ok(Message::Data(chunk)) => {
                    let old = std::mem::replace(&mut self.current, chunk);
                    let _ = self.recycle.try_send(old);
                    self.pos = 0;
                }
                Ok(Message::End { replaced }) => {
                    self.replaced = replaced;
                    self.done = true;
                }
                Ok(Message::Error(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the report reader thread stopped"));
                }
            }
        }
        Ok(self.current.get(self.pos..).unwrap_or(&[]))
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.current.len());
    }
}

impl Utf8Source for ReadAhead {
    fn replaced(&self) -> u64 {
        self.replaced
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Unblock the reader thread (it sees the channel closed) and wait for it.
        let (_, dead) = sync_channel(0);
        self.rx = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_everything_in_order_with_repairs_counted() {
        let mut input = Vec::new();
        for i in 0..200_000u32 {
            input.extend_from_slice(format!("<x>{i} caf\u{e9} \u{1F600}</x>").as_bytes());
            if i % 50_000 == 7 {
                input.push(0xff);
            }
        }
        let mut reader = ReadAhead::spawn(io::Cursor::new(input.clone())).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(reader.replaced(), 4);
        let text = String::from_utf8(out).expect("valid UTF-8");
        assert_eq!(text.matches('\u{FFFD}').count(), 4);
        let expected = String::from_utf8_lossy(&input);
        assert_eq!(text, expected);
    }

    #[test]
    fn errors_are_passed_on() {
        struct Failing(u32);
        impl Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                let n = out.len().min(1000);
                out[..n].fill(b'a');
                Ok(n)
            }
        }
        let mut reader = ReadAhead::spawn(Failing(3)).unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let big = io::repeat(b'a').take(100 * 1024 * 1024);
        let mut reader = ReadAhead::spawn(big).unwrap();
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        drop(reader); // must not hang
    }

    #[test]
    fn boundaries() {
        let s = "a\u{e9}\u{1F600}".as_bytes();
        assert_eq!(char_boundary(s, 2), 1);
        assert_eq!(char_boundary(s, 3), 3);
        assert_eq!(char_boundary(s, 5), 3);
        assert_eq!(char_boundary(s, 100), s.len());
    }
}
