//! Host Input message framing (host-input.md §2): `u32 type`, `u32 length`, then `length`
//! bytes of value, big-endian, in both directions. Reads are exact: one `read` call is
//! never assumed to return one message.

use std::io::{self, Read, Write};

/// Message types of host-input.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Server → client: the largest data block the server accepts.
    MaxSize = 1,
    /// Client → server: the protocol version.
    Version = 2,
    /// Commands (client → server) or the response text (server → client).
    Data = 3,
    /// Server → client: an error.
    Error = 4,
}

impl FrameType {
    fn from_u32(v: u32) -> Option<FrameType> {
        match v {
            1 => Some(FrameType::MaxSize),
            2 => Some(FrameType::Version),
            3 => Some(FrameType::Data),
            4 => Some(FrameType::Error),
            _ => None,
        }
    }
}

/// The protocol version this client speaks (host-input.md §3: "clients send 1").
pub const PROTOCOL_VERSION: u32 = 1;

/// Replies are short texts; anything claiming to be larger than this is not a reply (a
/// corrupt or hostile stream), and is refused before allocating for it.
pub const MAX_REPLY_LEN: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server sent a message of unknown type {0} (not Host Input, or a corrupt stream)")]
    UnknownType(u32),
    #[error("the server announced a {0}-byte message, more than any reply can be (corrupt stream)")]
    TooLong(u32),
    #[error("the connection was closed by the server")]
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameType,
    pub value: Vec<u8>,
}

/// Writes one message. The header and value go out in one write where possible.
pub fn write_frame(out: &mut impl Write, kind: FrameType, value: &[u8]) -> io::Result<()> {
    let len = u32::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message longer than 4 GiB"))?;
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&(kind as u32).to_be_bytes());
    header[4..].copy_from_slice(&len.to_be_bytes());
    out.write_all(&header)?;
    out.write_all(value)?;
    out.flush()
}

/// Reads one message, exactly.
pub fn read_frame(input: &mut impl Read) -> Result<Frame, FrameError> {
    let mut header = [0u8; 8];
    read_exact_or_closed(input, &mut header)?;
    let kind = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let kind = FrameType::from_u32(kind).ok_or(FrameError::UnknownType(kind))?;
    if len > MAX_REPLY_LEN {
        return Err(FrameError::TooLong(len));
    }
    let mut value = vec![0u8; len as usize];
    input.read_exact(&mut value).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Frame { kind, value })
}

fn read_exact_or_closed(input: &mut impl Read, buf: &mut [u8]) -> Result<(), FrameError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    })
}

/// A data reply's lines, sorted by what they say (host-input.md §3: the count line "may be
/// preceded by warning lines"). Lines end at `\n` (a `\r` before it is dropped); blank
/// lines are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplyLines<'a> {
    /// The N of every line that is exactly `Done processing N commands.`.
    pub counts: Vec<u64>,
    /// Lines that start with `Error`, in any case.
    pub errors: Vec<&'a [u8]>,
    /// Every other line: warnings.
    pub others: Vec<&'a [u8]>,
}

/// Sorts the lines of a data reply. Only the exact count line counts: `Done processing 3
/// commandos` or `Done processing 3 commands. (partial)` are other lines, so a reply the
/// connector does not understand never confirms a block.
pub fn reply_lines(value: &[u8]) -> ReplyLines<'_> {
    let mut lines = ReplyLines::default();
    for line in value.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(n) = count_line(line) {
            lines.counts.push(n);
        } else if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"error") {
            lines.errors.push(line);
        } else {
            lines.others.push(line);
        }
    }
    lines
}

/// The N of a line that is exactly `Done processing N commands.`.
fn count_line(line: &[u8]) -> Option<u64> {
    let digits = line
        .strip_prefix(b"Done processing ")?
        .strip_suffix(b" commands.")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, to prove reads are exact.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn round_trip_through_one_byte_reads() {
        let mut wire = Vec::new();
        write_frame(&mut wire, FrameType::Version, &1u32.to_be_bytes()).unwrap();
        write_frame(&mut wire, FrameType::Data, b"Done processing 3 commands.").unwrap();
        assert_eq!(&wire[..8], &[0, 0, 0, 2, 0, 0, 0, 4]);
        let mut r = Trickle(&wire);
        let a = read_frame(&mut r).unwrap();
        assert_eq!(
            (a.kind, a.value.as_slice()),
            (FrameType::Version, &[0, 0, 0, 1][..])
        );
        let b = read_frame(&mut r).unwrap();
        assert_eq!(b.kind, FrameType::Data);
        assert!(matches!(read_frame(&mut r), Err(FrameError::Closed)));
    }

    #[test]
    fn bad_frames() {
        let cases: [(&[u8], &str); 4] = [
            (&[0, 0, 0, 9, 0, 0, 0, 0], "unknown type 9"),
            (
                &[0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff],
                "4294967295-byte message",
            ),
            (&[0, 0, 0, 3, 0, 0, 0, 10, b'a'], "closed"),
            (&[0, 0], "closed"),
        ];
        for (bytes, want) in cases {
            let err = read_frame(&mut &bytes[..]).unwrap_err().to_string();
            assert!(err.contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn reply_lines_are_sorted() {
        type Want = (&'static [u64], usize, usize);
        let cases: [(&[u8], Want); 12] = [
            (b"Done processing 3 commands.", (&[3], 0, 0)),
            (b"Done processing 3 commands.\n", (&[3], 0, 0)),
            (b"Done processing 3 commands.\r\n\n", (&[3], 0, 0)),
            (b"Done processing 3 commandos", (&[], 0, 1)),
            (b"Done processing 3 commands", (&[], 0, 1)),
            (b"Done processing 1 command.", (&[], 0, 1)),
            (b"Done processing commands.", (&[], 0, 1)),
            (b"done processing 3 commands.", (&[], 0, 1)),
            (b"Done processing 3 commands.\nError: x", (&[3], 1, 0)),
            (
                b"error: lower\nERROR upper\nDone processing 2 commands.",
                (&[2], 2, 0),
            ),
            (
                b"Warning: line 2 ignored\nDone processing 12 commands.\n",
                (&[12], 0, 1),
            ),
            (
                b"Done processing 99999999999999999999999 commands.",
                (&[], 0, 1),
            ),
        ];
        for (text, (counts, errors, others)) in cases {
            let got = reply_lines(text);
            assert_eq!(got.counts, counts, "{text:?}");
            assert_eq!(got.errors.len(), errors, "{text:?}");
            assert_eq!(got.others.len(), others, "{text:?}");
        }
        assert_eq!(reply_lines(b""), ReplyLines::default());
    }
}
