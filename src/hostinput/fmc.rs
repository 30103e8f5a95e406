//! The FMC sink: delivers host command blocks to a Management Center over Host Input
//! and proves each host was accepted.
//!
//! Hosts are packed into data blocks no larger than the server's maximum, a host's
//! results and its closing ScanFlush always in one block (a host too large for one block
//! is split: ScanFlush after the first part, ScanUpdate after the others; host-input.md
//! §4). A sender thread owns the connection and works through a bounded channel, so
//! producing commands and waiting for the server overlap while memory stays flat.
//!
//! Each block's reply must say "Done processing N commands." with N the commands in that
//! block; a type-4 reply, a missing phrase or a wrong N fails that block's hosts. A lost
//! connection is reopened (bounded, with back-off) and the unconfirmed block is sent
//! again; confirmed blocks are never resent. Every new connection starts with SetSource.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::ClientConfig;

use super::client::{ConnectError, Connection, Endpoint, Reply, Timeouts, quote};
use super::{CommandSink, Delivery, HostBlock, SinkError};
use super::{commands, framing};

/// How the sink connects and how hard it tries.
#[derive(Debug, Clone)]
pub struct FmcOptions {
    pub endpoint: Endpoint,
    pub tls: Arc<ClientConfig>,
    pub timeouts: Timeouts,
    /// Reconnections tried for one block before giving up on the connection.
    pub retries: u32,
    /// First back-off delay; doubled after each failed attempt (capped at 60 s).
    pub retry_wait: Duration,
}

/// Blocks in flight between the producer and the sender thread.
const CHANNEL_DEPTH: usize = 4;

/// The largest block sent, whatever the server announces: a block is held in memory
/// (up to [`CHANNEL_DEPTH`] + 2 of them), so an FMC announcing 2^32-1 must not turn the
/// whole stream into one block.
pub const MAX_BLOCK: usize = 16 * 1024 * 1024;

/// Room for host commands in a block: the smaller of the server's maximum and
/// [`MAX_BLOCK`], less the SetSource line every connection starts with.
fn block_limit(announced: u32, source_line: usize) -> usize {
    let announced = announced as usize;
    if announced > MAX_BLOCK {
        log::debug!(
            "the FMC accepts blocks of {announced} bytes; blocks are capped at {MAX_BLOCK} bytes to keep memory bounded"
        );
    }
    announced.min(MAX_BLOCK).saturating_sub(source_line)
}

/// Part of one host in a block.
#[derive(Debug, Clone, Copy)]
struct HostPart {
    ip: IpAddr,
    findings: usize,
    /// The host's last part: the host is confirmed when this part is.
    last: bool,
}

#[derive(Debug, Default)]
struct Block {
    bytes: Vec<u8>,
    commands: u64,
    hosts: Vec<HostPart>,
}

pub struct FmcSink {
    options: FmcOptions,
    /// The SetSource line every connection starts with.
    source_line: Vec<u8>,
    /// Largest block (from the server), less room for the SetSource line.
    limit: usize,
    current: Block,
    tx: Option<SyncSender<Block>>,
    sender: Option<JoinHandle<Outcome>>,
    shortened_lines: u64,
    /// A sender that stopped early (connection gone for good) drops the receiver: what is
    /// still produced is counted here as unconfirmed.
    undelivered: Vec<IpAddr>,
}

impl std::fmt::Debug for FmcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FmcSink")
            .field("endpoint", &self.options.endpoint)
            .field("limit", &self.limit)
            .finish()
    }
}

/// What the sender thread reports at the end.
#[derive(Debug, Default)]
struct Outcome {
    delivery: Delivery,
    unconfirmed: Vec<IpAddr>,
}

impl FmcSink {
    pub fn new(options: FmcOptions) -> FmcSink {
        FmcSink {
            options,
            source_line: Vec::new(),
            limit: 0,
            current: Block::default(),
            tx: None,
            sender: None,
            shortened_lines: 0,
            undelivered: Vec::new(),
        }
    }

    fn push_block(&mut self) {
        if self.current.hosts.is_empty() {
            return;
        }
        let block = std::mem::take(&mut self.current);
        let unsent = match &self.tx {
            Some(tx) => tx.send(block).err().map(|e| e.0),
            None => Some(block),
        };
        if let Some(block) = unsent {
            // The sender has stopped: these hosts cannot be delivered any more.
            self.undelivered
                .extend(block.hosts.iter().filter(|h| h.last).map(|h| h.ip));
        }
    }

    fn add_part(&mut self, bytes: &[u8], commands: u64, part: HostPart) {
        if self.current.bytes.len() + bytes.len() > self.limit {
            self.push_block();
        }
        self.current.bytes.extend_from_slice(bytes);
        self.current.commands += commands;
        self.current.hosts.push(part);
    }

    /// Splits a host too large for one block into parts that each fit (host-input.md §4).
    fn add_split_host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        log::debug!(
            "host {}: {} bytes of commands, more than a block ({} bytes): sent in parts",
            block.ip,
            block.bytes.len(),
            self.limit
        );
        self.push_block();
        let mut lines: Vec<&[u8]> = block.bytes.split_inclusive(|&b| b == b'\n').collect();
        let commit = lines.pop().unwrap_or(b"ScanFlush\n");
        let mut first_part = true;
        let mut part = Vec::new();
        let mut part_commands = 0u64;
        let mut part_findings = 0usize;
        let closing = |first: bool| -> &[u8] { if first { commit } else { b"ScanUpdate\n" } };
        let room = self
            .limit
            .saturating_sub(commit.len().max(b"ScanUpdate\n".len()));
        for line in lines {
            let line: Vec<u8> = if line.len() > room {
                match commands::shorten_scan_result(line, room) {
                    Some(short) => {
                        self.shortened_lines += 1;
                        log::warn!(
                            "host {}: a {}-byte line exceeds the server's block size ({} bytes): its text was shortened",
                            block.ip,
                            line.len(),
                            self.limit
                        );
                        short
                    }
                    None => {
                        return Err(SinkError::Delivery(format!(
                            "host {}: a {}-byte command cannot be shortened to the server's block size ({} bytes)",
                            block.ip,
                            line.len(),
                            self.limit
                        )));
                    }
                }
            } else {
                line.to_vec()
            };
            if part.len() + line.len() > room && part_commands > 0 {
                part.extend_from_slice(closing(first_part));
                let p = HostPart {
                    ip: block.ip,
                    findings: part_findings,
                    last: false,
                };
                self.add_part(&std::mem::take(&mut part), part_commands + 1, p);
                self.push_block();
                first_part = false;
                part_commands = 0;
                part_findings = 0;
            }
            if line.starts_with(b"AddScanResult,") {
                part_findings += 1;
            }
            part.extend_from_slice(&line);
            part_commands += 1;
        }
        part.extend_from_slice(closing(first_part));
        let p = HostPart {
            ip: block.ip,
            findings: part_findings,
            last: true,
        };
        self.add_part(&part, part_commands + 1, p);
        Ok(())
    }
}

impl CommandSink for FmcSink {
    /// Connects (so a wrong address or certificate fails before any host is handled) and
    /// starts the sender thread.
    fn preamble(&mut self, bytes: &[u8], _commands: usize) -> Result<(), SinkError> {
        self.source_line = bytes.to_vec();
        let connection = connect_with_retries(&self.options, None)
            .map_err(|e| SinkError::Delivery(e.to_string()))?;
        let max = connection.max_size() as usize;
        log::info!(
            "connected to the FMC at {} (maximum block {max} bytes)",
            connection.addr()
        );
        self.limit = block_limit(connection.max_size(), self.source_line.len());
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let options = self.options.clone();
        let source_line = self.source_line.clone();
        let handle = std::thread::Builder::new()
            .name("fmc-sender".into())
            .spawn(move || send_all(rx, connection, options, source_line))
            .map_err(|e| SinkError::Delivery(format!("cannot start the sender thread: {e}")))?;
        self.tx = Some(tx);
        self.sender = Some(handle);
        Ok(())
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        if block.bytes.len() > self.limit {
            return self.add_split_host(block);
        }
        let part = HostPart {
            ip: block.ip,
            findings: block.findings,
            last: true,
        };
        self.add_part(block.bytes, block.commands as u64, part);
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        self.push_block();
        // Closing the channel tells the sender there is nothing more.
        self.tx = None;
        let outcome = match self.sender.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| SinkError::Delivery("the sender thread failed".into()))?,
            None => Outcome::default(),
        };
        let mut delivery = outcome.delivery;
        delivery.unconfirmed = outcome.unconfirmed;
        delivery.unconfirmed.append(&mut self.undelivered);
        delivery.shortened_lines = self.shortened_lines;
        Ok(delivery)
    }
}

/// Opens a connection, trying again with back-off. `previous` names the last failure
/// for the log.
fn connect_with_retries(
    options: &FmcOptions,
    previous: Option<&str>,
) -> Result<Connection, ConnectError> {
    let mut wait = options.retry_wait;
    let mut attempt = 0;
    loop {
        match Connection::open(
            &options.endpoint,
            Arc::clone(&options.tls),
            options.timeouts,
        ) {
            Ok(c) => return Ok(c),
            Err(e) => {
                // Configuration-type failures do not heal by waiting.
                let permanent = matches!(
                    e,
                    ConnectError::Resolve { .. } | ConnectError::NoAddress { .. }
                );
                if permanent || attempt >= options.retries {
                    return Err(e);
                }
                attempt += 1;
                log::warn!(
                    "cannot connect to the FMC ({e}){}; retry {attempt} of {} in {:.1?}",
                    previous.map(|p| format!(" after: {p}")).unwrap_or_default(),
                    options.retries,
                    wait
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// The sender thread: one block at a time, one reply each.
fn send_all(
    rx: Receiver<Block>,
    connection: Connection,
    options: FmcOptions,
    source_line: Vec<u8>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut connection = Some(connection);
    let mut fresh = true;
    // Hosts split over several blocks, until their last part is answered.
    let mut failed_split = SplitHosts::new();
    let mut frame = Vec::new();

    'blocks: while let Ok(block) = rx.recv() {
        let mut attempts = 0;
        while let Some(conn) = connection.as_mut() {
            frame.clear();
            let mut expected = block.commands;
            if fresh {
                // Every stream starts with SetSource (host-input.md §4).
                frame.extend_from_slice(&source_line);
                expected += 1;
            }
            frame.extend_from_slice(&block.bytes);
            match conn.exchange(&frame) {
                Ok(reply) => {
                    fresh = false;
                    outcome.delivery.blocks += 1;
                    match judge(&reply, expected) {
                        Ok(warnings) => {
                            for warning in warnings {
                                log::warn!(
                                    "the FMC warns about block {} (hosts {}): {warning}",
                                    outcome.delivery.blocks,
                                    hosts_of(&block)
                                );
                            }
                            confirm(&block, &mut outcome, &mut failed_split)
                        }
                        Err(reason) => {
                            outcome.delivery.failed_blocks += 1;
                            log::error!(
                                "the FMC did not accept block {} (hosts {}): {reason}",
                                outcome.delivery.blocks,
                                hosts_of(&block)
                            );
                            fail(&block, &mut outcome, &mut failed_split);
                        }
                    }
                    continue 'blocks;
                }
                Err(e) => {
                    let reason = e.to_string();
                    log::warn!("connection to the FMC lost: {reason}");
                    if let Some(c) = connection.take() {
                        c.close();
                    }
                    attempts += 1;
                    if attempts > options.retries {
                        log::error!(
                            "giving up on the FMC after {} attempts for one block: {reason}",
                            attempts
                        );
                        fail(&block, &mut outcome, &mut failed_split);
                        break 'blocks;
                    }
                    std::thread::sleep(options.retry_wait * attempts);
                    match connect_with_retries(&options, Some(&reason)) {
                        Ok(c) => {
                            log::info!("reconnected to the FMC at {}", c.addr());
                            connection = Some(c);
                            fresh = true;
                        }
                        Err(e) => {
                            log::error!("cannot reconnect to the FMC: {e}");
                            fail(&block, &mut outcome, &mut failed_split);
                            break 'blocks;
                        }
                    }
                }
            }
        }
    }
    // Whatever is still queued was never sent.
    while let Ok(block) = rx.try_recv() {
        fail(&block, &mut outcome, &mut failed_split);
    }
    drop(rx);
    if let Some(c) = connection {
        c.close();
    }
    outcome
}

/// Decides whether a reply confirms a block of `expected` commands: exactly one line
/// must be `Done processing N commands.` with N = `expected`, and no line may start with
/// `Error` (host-input.md §3). A block confirmed wrongly loses its hosts for good; one not
/// confirmed is only sent again by the next run. On success, the other lines (warnings),
/// escaped, for the log.
fn judge(reply: &Reply, expected: u64) -> Result<Vec<String>, String> {
    let value = match reply {
        Reply::Text(value) => value,
        Reply::Error(text) => return Err(format!("error reply: {}", quote(text.trim_ascii()))),
        Reply::Unexpected(kind) => {
            return Err(format!("a message of type {kind} instead of a reply"));
        }
    };
    let lines = framing::reply_lines(value);
    if let Some(error) = lines.errors.first() {
        return Err(format!(
            "the reply reports an error: {} (reply: {})",
            quote(error),
            quote(value.trim_ascii())
        ));
    }
    match lines.counts[..] {
        [n] if n == expected => Ok(lines.others.iter().map(|l| quote(l)).collect()),
        [n] => Err(format!(
            "the FMC processed {n} commands of {expected} (reply: {})",
            quote(value.trim_ascii())
        )),
        [] => Err(format!(
            "the reply lacks a line \"Done processing N commands.\": {}",
            quote(value.trim_ascii())
        )),
        _ => Err(format!(
            "the reply holds {} \"Done processing N commands.\" lines: {}",
            lines.counts.len(),
            quote(value.trim_ascii())
        )),
    }
}

/// The block's hosts for a log line: the first few, and how many more.
fn hosts_of(block: &Block) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = block
        .hosts
        .iter()
        .take(SHOWN)
        .map(|h| h.ip.to_string())
        .collect();
    if block.hosts.len() > SHOWN {
        out.push(format!("and {} more", block.hosts.len() - SHOWN));
    }
    out.join(" ")
}

/// Hosts whose earlier parts were answered, with their findings so far and whether any
/// part failed. Only hosts larger than a block are here, one at a time in practice.
type SplitHosts = HashMap<IpAddr, (u64, bool)>;

/// A host counts as confirmed, with all its findings, only when every part of it was.
fn confirm(block: &Block, outcome: &mut Outcome, split: &mut SplitHosts) {
    let d = &mut outcome.delivery;
    d.commands += block.commands;
    d.bytes += block.bytes.len() as u64;
    for part in &block.hosts {
        let findings = part.findings as u64;
        if !part.last {
            split.entry(part.ip).or_insert((0, false)).0 += findings;
            continue;
        }
        match split.remove(&part.ip) {
            Some((_, true)) => outcome.unconfirmed.push(part.ip),
            Some((earlier, false)) => {
                d.hosts += 1;
                d.findings += earlier + findings;
                crate::progress::add(1);
            }
            None => {
                d.hosts += 1;
                d.findings += findings;
                crate::progress::add(1);
            }
        }
    }
}

fn fail(block: &Block, outcome: &mut Outcome, split: &mut SplitHosts) {
    for part in &block.hosts {
        if part.last {
            split.remove(&part.ip);
            outcome.unconfirmed.push(part.ip);
        } else {
            split.entry(part.ip).or_insert((0, false)).1 = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_judged() {
        let text = |t: &str| Reply::Text(t.as_bytes().to_vec());
        let ok = |warnings: &[&str]| Ok(warnings.iter().map(|w| w.to_string()).collect());
        let cases: Vec<(Reply, Result<Vec<String>, &str>)> = vec![
            (text("Done processing 5 commands."), ok(&[])),
            (text("Done processing 5 commands.\n"), ok(&[])),
            (
                text("Warning: x\nDone processing 5 commands."),
                ok(&["Warning: x"]),
            ),
            (text("Done processing 5 commandos"), Err("lacks a line")),
            (
                text("Done processing 5 commands.\nError: half applied"),
                Err("reports an error: Error: half applied"),
            ),
            (
                text("error: lower case\nDone processing 5 commands."),
                Err("reports an error: error: lower case"),
            ),
            (
                text("Done processing 5 commands.\nDone processing 5 commands."),
                Err("holds 2"),
            ),
            (
                text("Done processing 4 commands."),
                Err("processed 4 commands of 5"),
            ),
            (text("OK"), Err("lacks a line")),
            (
                Reply::Text(b"Done processing 5 commands.\n\0forged\xff".to_vec()),
                ok(&["\\u{0}forged\\xFF"]),
            ),
            (
                text("Error\n2026-01-01 ERROR forged line"),
                Err("reply: Error\\n2026-01-01 ERROR forged line"),
            ),
            (
                Reply::Error(b"bad\nblock\xff".to_vec()),
                Err("error reply: bad\\nblock\\xFF"),
            ),
            (Reply::Unexpected(1), Err("type 1 instead of a reply")),
        ];
        for (reply, want) in cases {
            match (judge(&reply, 5), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{reply:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{reply:?}: {e}"),
                (got, want) => panic!("{reply:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn block_limits() {
        let cases = [
            (524_288, 40, 524_248),
            (300, 40, 260),
            (16 * 1024 * 1024, 0, MAX_BLOCK),
            (u32::MAX, 40, MAX_BLOCK - 40),
        ];
        for (announced, source, want) in cases {
            assert_eq!(block_limit(announced, source), want, "{announced}");
        }
    }

    /// With the limit of a server announcing 2^32-1, 20 MiB of hosts go out in blocks
    /// of at most 16 MiB each, every host in one.
    #[test]
    fn blocks_are_packed_within_the_cap() {
        let mut sink = FmcSink::new(FmcOptions {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 8307,
                ipv6: false,
            },
            tls: Arc::new(
                ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                reply: Duration::from_secs(1),
            },
            retries: 0,
            retry_wait: Duration::ZERO,
        });
        let source = b"SetSource,Qualys\n";
        sink.limit = block_limit(u32::MAX, source.len());
        let (tx, rx) = sync_channel(64);
        sink.tx = Some(tx);
        let host = vec![b'x'; 999]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let hosts = 20 * 1024;
        let collector = std::thread::spawn(move || rx.iter().collect::<Vec<Block>>());
        for i in 0..hosts {
            let block = HostBlock {
                ip: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
                commands: 1,
                findings: 0,
                bytes: &host,
            };
            sink.host(&block).unwrap();
        }
        sink.push_block();
        sink.tx = None;
        let blocks = collector.join().unwrap();
        assert_eq!(blocks.len(), 2);
        for b in &blocks {
            assert!(
                b.bytes.len() + source.len() <= MAX_BLOCK,
                "{}",
                b.bytes.len()
            );
        }
        assert_eq!(blocks.iter().map(|b| b.hosts.len()).sum::<usize>(), hosts);
    }

    #[test]
    fn split_hosts_are_confirmed_only_when_every_part_is() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let part = |last| Block {
            bytes: b"x\n".to_vec(),
            commands: 1,
            hosts: vec![HostPart {
                ip,
                findings: 1,
                last,
            }],
        };
        let mut outcome = Outcome::default();
        let mut failed = SplitHosts::new();
        fail(&part(false), &mut outcome, &mut failed);
        confirm(&part(true), &mut outcome, &mut failed);
        assert_eq!(outcome.unconfirmed, vec![ip]);
        assert_eq!(outcome.delivery.hosts, 0);

        let mut outcome = Outcome::default();
        confirm(&part(false), &mut outcome, &mut failed);
        confirm(&part(true), &mut outcome, &mut failed);
        assert!(outcome.unconfirmed.is_empty());
        assert_eq!(outcome.delivery.hosts, 1);
        assert_eq!(outcome.delivery.findings, 2);
    }
}
