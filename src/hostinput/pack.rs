//! Packing host commands into data blocks no larger than the FMC accepts
//! (host-input.md §3.3, §4): a host's results and its closing ScanFlush travel together; a
//! host too large for one block is split, ScanFlush after its first part and ScanUpdate
//! after the others, so each part commits on its own. The same split serves the first
//! packing and the re-packing of queued blocks when a reconnected FMC announces a smaller
//! maximum.

use std::net::IpAddr;

use super::{SinkError, commands};

/// Part of one host in a block.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostPart {
    pub ip: IpAddr,
    pub findings: usize,
    /// Its commands, and its bytes in the block (parts follow each other in order).
    pub commands: u64,
    pub len: usize,
    /// The host's last part: the host is confirmed when this part is.
    pub last: bool,
}

/// One data block, without the SetSource line a connection starts with.
#[derive(Debug, Default)]
pub(super) struct Block {
    pub bytes: Vec<u8>,
    pub commands: u64,
    pub hosts: Vec<HostPart>,
}

impl Block {
    pub fn push(&mut self, bytes: &[u8], part: HostPart) {
        self.bytes.extend_from_slice(bytes);
        self.commands += part.commands;
        self.hosts.push(HostPart {
            len: bytes.len(),
            ..part
        });
    }

    /// Each host part with its bytes.
    pub fn parts(&self) -> impl Iterator<Item = (HostPart, &[u8])> {
        let mut offset = 0;
        self.hosts.iter().map(move |part| {
            let end = (offset + part.len).min(self.bytes.len());
            let bytes = &self.bytes[offset.min(end)..end];
            offset = end;
            (*part, bytes)
        })
    }
}

/// A piece of a host, ready to go into a block.
#[derive(Debug)]
pub(super) struct Piece {
    pub bytes: Vec<u8>,
    pub part: HostPart,
}

/// Splits the commands of one host (or of one part of it: `last` says whether it holds
/// the host's end) into pieces of at most `limit` bytes. Lines longer than a piece have
/// their text shortened (`shortened` counts them).
pub(super) fn split_host(
    ip: IpAddr,
    bytes: &[u8],
    limit: usize,
    last: bool,
    shortened: &mut u64,
) -> Result<Vec<Piece>, SinkError> {
    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let commit = lines.pop().unwrap_or(b"ScanFlush\n");
    let room = limit.saturating_sub(commit.len().max(b"ScanUpdate\n".len()));
    let mut pieces = Vec::new();
    let mut piece = Piece {
        bytes: Vec::new(),
        part: HostPart {
            ip,
            findings: 0,
            commands: 0,
            len: 0,
            last: false,
        },
    };
    for line in lines {
        let line = fit_line(ip, line, room, limit, shortened)?;
        if piece.bytes.len() + line.len() > room && piece.part.commands > 0 {
            let closing: &[u8] = if pieces.is_empty() {
                commit
            } else {
                b"ScanUpdate\n"
            };
            let next = close(&mut piece, closing);
            pieces.push(next);
        }
        if line.starts_with(b"AddScanResult,") {
            piece.part.findings += 1;
        }
        piece.bytes.extend_from_slice(&line);
        piece.part.commands += 1;
    }
    let closing: &[u8] = if pieces.is_empty() {
        commit
    } else {
        b"ScanUpdate\n"
    };
    let mut end = close(&mut piece, closing);
    end.part.last = last;
    pieces.push(end);
    Ok(pieces)
}

/// Ends a piece with its closing line; `piece` starts over, empty.
fn close(piece: &mut Piece, closing: &[u8]) -> Piece {
    piece.bytes.extend_from_slice(closing);
    piece.part.commands += 1;
    piece.part.len = piece.bytes.len();
    let done = Piece {
        bytes: std::mem::take(&mut piece.bytes),
        part: piece.part,
    };
    piece.part.findings = 0;
    piece.part.commands = 0;
    done
}

/// A line that fits in `room` bytes: as it is, or with its text shortened.
fn fit_line(
    ip: IpAddr,
    line: &[u8],
    room: usize,
    limit: usize,
    shortened: &mut u64,
) -> Result<Vec<u8>, SinkError> {
    if line.len() <= room {
        return Ok(line.to_vec());
    }
    match commands::shorten_scan_result(line, room) {
        Some(short) => {
            *shortened += 1;
            log::warn!(
                "host {ip}: a {}-byte line exceeds the server's block size ({limit} bytes): its text was shortened",
                line.len()
            );
            Ok(short)
        }
        None => Err(SinkError::Delivery(format!(
            "host {ip}: a {}-byte command cannot be shortened to the server's block size ({limit} bytes)",
            line.len()
        ))),
    }
}

/// Packs a block again for a smaller `limit`, host parts in the same order, parts too
/// large split as the first packing would.
pub(super) fn repack(
    block: &Block,
    limit: usize,
    shortened: &mut u64,
) -> Result<Vec<Block>, SinkError> {
    let mut blocks = Vec::new();
    let mut current = Block::default();
    for (part, bytes) in block.parts() {
        let pieces = if bytes.len() > limit {
            split_host(part.ip, bytes, limit, part.last, shortened)?
        } else {
            vec![Piece {
                bytes: bytes.to_vec(),
                part,
            }]
        };
        for piece in pieces {
            if current.bytes.len() + piece.bytes.len() > limit && !current.hosts.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            current.push(&piece.bytes, piece.part);
        }
    }
    if !current.hosts.is_empty() {
        blocks.push(current);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ip: [u8; 4], results: usize) -> (IpAddr, Vec<u8>, u64) {
        let ip = IpAddr::from(ip);
        let mut bytes = format!("AddHost,{ip}\n").into_bytes();
        for i in 0..results {
            bytes.extend_from_slice(
                format!("AddScanResult,{ip},\"Qualys\",{i},,,\"t\",\"d\",\"\",\"\"\n").as_bytes(),
            );
        }
        bytes.extend_from_slice(b"ScanFlush\n");
        (ip, bytes, results as u64 + 2)
    }

    /// The commit lines of the pieces of each host, in order.
    fn closings(blocks: &[Block]) -> Vec<(IpAddr, String, bool)> {
        blocks
            .iter()
            .flat_map(|b| b.parts().map(|(p, bytes)| (p, bytes.to_vec())))
            .map(|(p, bytes)| {
                let text = String::from_utf8(bytes).unwrap();
                let last = text.trim_end().rsplit('\n').next().unwrap().to_string();
                (p.ip, last, p.last)
            })
            .collect()
    }

    #[test]
    fn repacking_for_a_smaller_maximum_splits_as_the_first_packing() {
        let mut block = Block::default();
        for (i, results) in [(1u8, 1usize), (2, 12), (3, 2)] {
            let (ip, bytes, commands) = host([192, 0, 2, i], results);
            block.push(
                &bytes,
                HostPart {
                    ip,
                    findings: results,
                    commands,
                    len: 0,
                    last: true,
                },
            );
        }
        let mut shortened = 0;
        let blocks = repack(&block, 300, &mut shortened).unwrap();
        assert!(blocks.len() >= 3);
        for b in &blocks {
            assert!(b.bytes.len() <= 300, "{}", b.bytes.len());
            let lines = b.bytes.iter().filter(|&&c| c == b'\n').count() as u64;
            assert_eq!(b.commands, lines);
        }
        let ends = closings(&blocks);
        let second: Vec<_> = ends
            .iter()
            .filter(|(ip, ..)| *ip == IpAddr::from([192, 0, 2, 2]))
            .collect();
        assert!(second.len() >= 2, "{ends:?}");
        assert_eq!(second[0].1, "ScanFlush");
        assert!(second[1..].iter().all(|(_, l, _)| l == "ScanUpdate"));
        assert_eq!(second.iter().filter(|(.., last)| *last).count(), 1);
        assert!(second.last().unwrap().2);
        let findings: usize = blocks
            .iter()
            .flat_map(|b| &b.hosts)
            .map(|p| p.findings)
            .sum();
        assert_eq!(findings, 15);
        assert_eq!(shortened, 0);
        // Blocks that already fit stay as they are.
        assert_eq!(repack(&block, 100_000, &mut shortened).unwrap().len(), 1);
    }
}
