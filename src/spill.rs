//! A compact on-disk queue of hosts and their findings.
//!
//! Titles and references live in the report's glossary, which normally comes after the
//! hosts (qualys.md §5), and nothing may be sent before the whole document is known to be
//! complete. So hosts are written here while the report streams past, and read back once
//! parsing has succeeded. Memory stays flat whatever the number of hosts; the file is
//! anonymous (unlinked on creation) and vanishes with the process.
//!
//! Record: family (4 or 6), address (4 or 16 bytes), finding count (u32), then per finding: QID (u32), port (u16,
//! 0 = none), protocol (u8, 0 = none), type (u8). All little-endian.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{Finding, FindingType, Host, Protocol, VulnStatus};

const BUFFER: usize = 256 * 1024;

#[derive(Debug)]
pub struct SpillWriter {
    out: BufWriter<File>,
    hosts: u64,
}

impl SpillWriter {
    /// A new anonymous file in the system's temporary directory (`TMPDIR`).
    pub fn new() -> io::Result<SpillWriter> {
        Ok(SpillWriter {
            out: BufWriter::with_capacity(BUFFER, temp_file()?),
            hosts: 0,
        })
    }

    /// Appends a host with the given findings.
    pub fn push<'a>(
        &mut self,
        ip: IpAddr,
        findings: impl ExactSizeIterator<Item = &'a Finding>,
    ) -> io::Result<()> {
        match ip {
            IpAddr::V4(v4) => {
                self.out.write_all(&[4])?;
                self.out.write_all(&v4.octets())?;
            }
            IpAddr::V6(v6) => {
                self.out.write_all(&[6])?;
                self.out.write_all(&v6.octets())?;
            }
        }
        let count = u32::try_from(findings.len())
            .map_err(|_| io::Error::other("more than 2^32 findings on one host"))?;
        self.out.write_all(&count.to_le_bytes())?;
        for f in findings {
            let mut rec = [0u8; 8];
            rec[..4].copy_from_slice(&f.qid.to_le_bytes());
            rec[4..6].copy_from_slice(&f.port.unwrap_or(0).to_le_bytes());
            rec[6] = f.protocol.map_or(0, Protocol::number);
            rec[7] = f.kind.index() as u8;
            self.out.write_all(&rec)?;
        }
        self.hosts += 1;
        Ok(())
    }

    pub fn hosts(&self) -> u64 {
        self.hosts
    }

    /// Ends writing and rewinds for reading.
    pub fn into_reader(self) -> io::Result<SpillReader> {
        let hosts = self.hosts;
        let mut file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpillReader {
            input: BufReader::with_capacity(BUFFER, file),
            remaining: hosts,
        })
    }
}

/// A new anonymous file in `TMPDIR`, unlinked on creation; the error names the directory.
pub fn temp_file() -> io::Result<File> {
    tempfile::tempfile().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create a temporary file in {}: {e}",
                std::env::temp_dir().display()
            ),
        )
    })
}

#[derive(Debug)]
pub struct SpillReader {
    input: BufReader<File>,
    remaining: u64,
}

impl SpillReader {
    /// Reads the next host into `host` (reusing its allocation): `false` at the end.
    pub fn next_into(&mut self, host: &mut Host) -> io::Result<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        self.remaining -= 1;
        let mut family = [0u8; 1];
        self.input.read_exact(&mut family)?;
        host.ip = match family[0] {
            4 => {
                let mut a = [0u8; 4];
                self.input.read_exact(&mut a)?;
                IpAddr::V4(Ipv4Addr::from(a))
            }
            6 => {
                let mut a = [0u8; 16];
                self.input.read_exact(&mut a)?;
                IpAddr::V6(Ipv6Addr::from(a))
            }
            other => return Err(corrupt(format!("address family {other}"))),
        };
        let mut count = [0u8; 4];
        self.input.read_exact(&mut count)?;
        host.findings.clear();
        for _ in 0..u32::from_le_bytes(count) {
            let mut rec = [0u8; 8];
            self.input.read_exact(&mut rec)?;
            let port = u16::from_le_bytes([rec[4], rec[5]]);
            let protocol = match rec[6] {
                0 => None,
                6 => Some(Protocol::Tcp),
                17 => Some(Protocol::Udp),
                other => return Err(corrupt(format!("protocol {other}"))),
            };
            let kind = *FindingType::ALL
                .get(usize::from(rec[7]))
                .ok_or_else(|| corrupt(format!("finding type {}", rec[7])))?;
            host.findings.push(Finding {
                qid: u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]),
                kind,
                port: (port != 0).then_some(port),
                protocol,
                // Fixed findings are never spilled (they are not sent).
                status: VulnStatus::Unknown,
            });
        }
        Ok(true)
    }
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("temporary host file is corrupt: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let hosts = vec![
            Host {
                ip: "192.0.2.1".parse().unwrap(),
                findings: vec![
                    Finding {
                        qid: 82003,
                        kind: FindingType::Vuln,
                        port: None,
                        protocol: None,
                        status: VulnStatus::Unknown,
                    },
                    Finding {
                        qid: 38170,
                        kind: FindingType::Practice,
                        port: Some(443),
                        protocol: Some(Protocol::Tcp),
                        status: VulnStatus::Unknown,
                    },
                ],
            },
            Host {
                ip: "2001:db8::7".parse().unwrap(),
                findings: vec![Finding {
                    qid: u32::MAX,
                    kind: FindingType::Ig,
                    port: Some(65535),
                    protocol: Some(Protocol::Udp),
                    status: VulnStatus::Unknown,
                }],
            },
            Host {
                ip: "192.0.2.2".parse().unwrap(),
                findings: vec![],
            },
        ];
        let mut w = SpillWriter::new().unwrap();
        for h in &hosts {
            w.push(h.ip, h.findings.iter()).unwrap();
        }
        assert_eq!(w.hosts(), 3);
        let mut r = w.into_reader().unwrap();
        let mut got = Vec::new();
        let mut h = Host {
            ip: "0.0.0.0".parse().unwrap(),
            findings: vec![],
        };
        while r.next_into(&mut h).unwrap() {
            got.push(h.clone());
        }
        assert_eq!(got, hosts);
    }
}
