//! The FMC sink: delivers host command blocks to a Management Center over Host Input
//! and proves each host was accepted.
//!
//! Hosts are packed into data blocks no larger than the server's maximum (and never over
//! [`MAX_BLOCK`]), a host's results and its closing ScanFlush always in one block (a host
//! too large for one block is split: `pack.rs`, host-input.md §4). A sender thread owns
//! the connection and works through a bounded channel, so producing commands and waiting
//! for the server overlap while memory stays flat.
//!
//! Every new connection starts with a calibration block (the SetSource preamble and two
//! empty ScanUpdates, `count.rs`) whose reply tells how this FMC counts N in "Done
//! processing N commands."; the first connection learns the rule, later ones must show
//! the same. A block is confirmed only when one line of its reply is exactly "Done
//! processing N commands." with N what the learned rule counts for that block, and no line
//! starts with "Error"; a type-4 reply, a missing or misspelt count line or a wrong N fails
//! that block's hosts. A lost connection is reopened (bounded, with back-off) and the
//! unconfirmed block is sent again, packed again if the new connection announces a smaller
//! maximum; confirmed blocks are never resent. When the run must stop, no new block is
//! sent and the stop is reported with what was confirmed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::ClientConfig;

use super::client::{ConnectError, Connection, Endpoint, Reply, Timeouts, TransportError, quote};
use super::count::{CALIBRATION_COMMITS, CountRule, Learner, Tally};
use super::framing;
use super::pack::{self, Block, HostPart};
use super::{CommandSink, Delivery, HostBlock, SinkError};
use crate::stop::{self, Stopped};

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
/// [`MAX_BLOCK`] (the SetSource line travels in the calibration block, not here).
fn block_limit(announced: u32) -> usize {
    let announced = announced as usize;
    if announced > MAX_BLOCK {
        log::debug!(
            "the FMC accepts blocks of {announced} bytes; blocks are capped at {MAX_BLOCK} bytes to keep memory bounded"
        );
    }
    announced.min(MAX_BLOCK)
}

pub struct FmcSink {
    options: FmcOptions,
    /// Largest block (from the server, capped); the sender lowers it when a new
    /// connection announces a smaller maximum.
    limit: Arc<AtomicUsize>,
    current: Block,
    tx: Option<SyncSender<Block>>,
    sender: Option<JoinHandle<Outcome>>,
    shortened_lines: u64,
    /// A sender that stopped early (connection gone for good) drops the receiver: what is
    /// still produced is counted here as unconfirmed.
    undelivered: Vec<IpAddr>,
    /// Whether the run must stop (`stop::check`; replaceable in tests).
    stop: StopCheck,
    on_confirmed: Option<ConfirmHook>,
}

/// `Err` when the run must stop: checked before each block is sent.
type StopCheck = fn() -> Result<(), Stopped>;

/// Told, on the sender thread, the hosts each confirmed block completed (the sync state
/// records them: src/sync).
pub type ConfirmHook = Arc<dyn Fn(&[IpAddr]) + Send + Sync>;

impl std::fmt::Debug for FmcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FmcSink")
            .field("endpoint", &self.options.endpoint)
            .field("limit", &self.limit())
            .finish()
    }
}

/// What the sender thread reports at the end.
#[derive(Debug, Default)]
struct Outcome {
    delivery: Delivery,
    unconfirmed: Vec<IpAddr>,
    /// The stop that ended the delivery early, if one did.
    stopped: Option<Stopped>,
}

impl FmcSink {
    pub fn new(options: FmcOptions) -> FmcSink {
        FmcSink {
            options,
            limit: Arc::new(AtomicUsize::new(0)),
            current: Block::default(),
            tx: None,
            sender: None,
            shortened_lines: 0,
            undelivered: Vec::new(),
            stop: stop::check,
            on_confirmed: None,
        }
    }

    /// Calls `hook` with the hosts of each confirmed block whose every part is
    /// confirmed, as soon as the reply is judged. Set before the preamble.
    pub fn on_confirmed(&mut self, hook: ConfirmHook) {
        self.on_confirmed = Some(hook);
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

    fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn add_part(&mut self, bytes: &[u8], part: HostPart) {
        if self.current.bytes.len() + bytes.len() > self.limit() {
            self.push_block();
        }
        self.current.push(bytes, part);
    }

    /// Splits a host too large for one block into parts that each fit (host-input.md §4).
    fn add_split_host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        let limit = self.limit();
        log::debug!(
            "host {}: {} bytes of commands, more than a block ({limit} bytes): sent in parts",
            block.ip,
            block.bytes.len(),
        );
        self.push_block();
        let pieces = pack::split_host(
            block.ip,
            block.bytes,
            limit,
            true,
            &mut self.shortened_lines,
        )?;
        for piece in pieces {
            let last = piece.part.last;
            self.add_part(&piece.bytes, piece.part);
            if !last {
                self.push_block();
            }
        }
        Ok(())
    }
}

impl CommandSink for FmcSink {
    /// Connects (so a wrong address or certificate fails before any host is handled) and
    /// starts the sender thread.
    /// The connection is calibrated (`count.rs`) here, so a server whose replies the
    /// connector cannot judge fails before any host is sent.
    fn preamble(&mut self, bytes: &[u8], _commands: usize) -> Result<(), SinkError> {
        let calibration = calibration_block(bytes);
        let mut learner = Learner::default();
        let connection = open_first(&self.options, &calibration, &mut learner)?;
        self.limit
            .store(block_limit(connection.max_size()), Ordering::Relaxed);
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let options = self.options.clone();
        let check = self.stop;
        let limit = Arc::clone(&self.limit);
        let link = Link {
            connection,
            calibration,
            learner,
        };
        let hook = self.on_confirmed.clone();
        let handle = std::thread::Builder::new()
            .name("fmc-sender".into())
            .spawn(move || send_all(rx, link, &options, check, &limit, hook))
            .map_err(|e| SinkError::Delivery(format!("cannot start the sender thread: {e}")))?;
        self.tx = Some(tx);
        self.sender = Some(handle);
        Ok(())
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        if block.bytes.len() > self.limit() {
            return self.add_split_host(block);
        }
        let part = HostPart {
            ip: block.ip,
            findings: block.findings,
            commands: block.commands as u64,
            len: block.bytes.len(),
            last: true,
        };
        self.add_part(block.bytes, part);
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
        delivery.shortened_lines += self.shortened_lines;
        match outcome.stopped {
            Some(stopped) => {
                log_unconfirmed(&delivery.unconfirmed);
                Err(SinkError::Stopped { stopped, delivery })
            }
            None => Ok(delivery),
        }
    }
}

/// The block every connection starts with: the preamble and two empty commits.
fn calibration_block(preamble: &[u8]) -> Vec<u8> {
    let mut block = preamble.to_vec();
    if !block.is_empty() && !block.ends_with(b"\n") {
        block.push(b'\n');
    }
    block.extend_from_slice(CALIBRATION_COMMITS);
    block
}

/// Why a calibration did not give the rule.
#[derive(Debug, thiserror::Error)]
enum Calibration {
    #[error("{0}")]
    Transport(TransportError),
    /// The reply to the calibration block was an error, unreadable, or fit no rule (or
    /// not the rule learned before).
    #[error(
        "the reply to the calibration block (the SetSource line and two ScanUpdate lines) cannot be used: {0}"
    )]
    Refused(String),
}

/// Sends the calibration block on a new connection and checks its reply with `learner`:
/// the first connection learns the rule, a later one must fit it.
fn calibrate(
    connection: &mut Connection,
    block: &[u8],
    learner: &mut Learner,
) -> Result<CountRule, Calibration> {
    let reply = connection.exchange(block).map_err(Calibration::Transport)?;
    let (n, warnings) = reply_count(&reply).map_err(Calibration::Refused)?;
    for warning in warnings {
        log::warn!("the FMC warns about the calibration block: {warning}");
    }
    let quoted = |e: &dyn std::fmt::Display| {
        Calibration::Refused(format!("{e} (reply: {})", quote_reply(&reply)))
    };
    learner
        .check(&Tally::of(block), n)
        .map_err(|e| quoted(&e))?;
    learner
        .learned()
        .ok_or_else(|| quoted(&"the reply leaves more than one counting rule possible"))
}

/// Opens the first connection and learns the counting rule from its calibration reply;
/// a connection lost before that reply is tried again like a failed connect.
fn open_first(
    options: &FmcOptions,
    calibration: &[u8],
    learner: &mut Learner,
) -> Result<Connection, SinkError> {
    let stopped = |stopped| SinkError::Stopped {
        stopped,
        delivery: Delivery::default(),
    };
    let mut attempt = 0;
    loop {
        let mut connection = connect_with_retries(options, None).map_err(|e| match e {
            ConnectError::Stopped(s) => stopped(s),
            other => SinkError::Delivery(other.to_string()),
        })?;
        log::info!(
            "connected to the FMC at {} (maximum block {} bytes)",
            connection.addr(),
            connection.max_size()
        );
        let e = match calibrate(&mut connection, calibration, learner) {
            Ok(rule) => {
                log::info!(
                    "the FMC counts {} in its replies (rule {rule})",
                    rule.describe()
                );
                return Ok(connection);
            }
            Err(Calibration::Transport(TransportError::Stopped(s))) => return Err(stopped(s)),
            Err(e) => e,
        };
        connection.close();
        let retry = matches!(e, Calibration::Transport(_)) && attempt < options.retries;
        if !retry {
            return Err(SinkError::Delivery(format!(
                "the FMC at {}: {e}; no host was sent",
                options.endpoint.host
            )));
        }
        attempt += 1;
        log::warn!(
            "connection to the FMC lost before it answered the calibration block ({e}); retry {attempt} of {} in {:.1?}",
            options.retries,
            options.retry_wait * attempt
        );
        stop::sleep(options.retry_wait * attempt).map_err(stopped)?;
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
                    ConnectError::Resolve { .. }
                        | ConnectError::NoAddress { .. }
                        | ConnectError::Stopped(_)
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
                stop::sleep(wait).map_err(ConnectError::Stopped)?;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// The sender thread: one block at a time, one reply each. When the run must stop, no
/// new block is sent; the reply to the block in flight is awaited a short while
/// (`client::STOP_GRACE`).
fn send_all(
    rx: Receiver<Block>,
    link: Link,
    options: &FmcOptions,
    check: StopCheck,
    limit: &AtomicUsize,
    hook: Option<ConfirmHook>,
) -> Outcome {
    let mut sender = Sender {
        hook,
        outcome: Outcome::default(),
        connection: Some(link.connection),
        calibration: link.calibration,
        learner: link.learner,
        failed_split: SplitHosts::new(),
        options,
        limit,
    };
    while let Ok(block) = rx.recv() {
        // `deliver` fails a block it cannot send; a block not tried is failed here.
        let sent = match check() {
            Ok(()) => sender.deliver(&block),
            Err(stopped) => {
                sender.fail(&block);
                Err(End::Stopped(stopped))
            }
        };
        if let Err(end) = sent {
            if let End::Stopped(stopped) = end {
                log::warn!("{stopped}: no further block is sent to the FMC");
                sender.outcome.stopped = Some(stopped);
            }
            break;
        }
    }
    // Whatever is still queued was never sent.
    while let Ok(block) = rx.try_recv() {
        sender.fail(&block);
    }
    drop(rx);
    if let Some(c) = sender.connection.take() {
        c.close();
    }
    sender.outcome
}

/// Why the sender gave up before the end of the stream.
enum End {
    /// The connection is gone for good (logged).
    Lost,
    Stopped(Stopped),
    /// Internal to `deliver`: the new connection's maximum is smaller than the block.
    Shrunk,
}

/// A calibrated connection, and what the next one needs to be calibrated.
struct Link {
    connection: Connection,
    /// The block each new connection starts with (`calibration_block`).
    calibration: Vec<u8>,
    /// The learned counting rule.
    learner: Learner,
}

/// The sender thread's state.
struct Sender<'a> {
    outcome: Outcome,
    connection: Option<Connection>,
    calibration: Vec<u8>,
    learner: Learner,
    /// Hosts split over several blocks, until their last part is answered.
    failed_split: SplitHosts,
    options: &'a FmcOptions,
    /// Shared with the producer (see `FmcSink::limit`).
    limit: &'a AtomicUsize,
    hook: Option<ConfirmHook>,
}

impl Sender<'_> {
    /// Sends one block until it is answered (reconnecting as needed) and judges the
    /// reply; a block that cannot be sent is failed here.
    fn deliver(&mut self, block: &Block) -> Result<(), End> {
        if block.bytes.len() > self.limit.load(Ordering::Relaxed) {
            return self.deliver_repacked(block);
        }
        match self.send_until_answered(block) {
            Ok(()) => Ok(()),
            Err(End::Shrunk) => self.deliver_repacked(block),
            Err(end) => {
                self.fail(block);
                Err(end)
            }
        }
    }

    fn send_until_answered(&mut self, block: &Block) -> Result<(), End> {
        let mut attempts = 0;
        loop {
            if block.bytes.len() > self.limit.load(Ordering::Relaxed) {
                return Err(End::Shrunk);
            }
            let Some(conn) = self.connection.as_mut() else {
                return Err(End::Lost);
            };
            let e = match conn.exchange(&block.bytes) {
                Ok(reply) => {
                    self.judged(block, &reply);
                    return Ok(());
                }
                Err(TransportError::Stopped(stopped)) => return Err(End::Stopped(stopped)),
                Err(e) => e,
            };
            attempts += 1;
            self.reconnect(&e.to_string(), attempts)?;
        }
    }

    /// A block packed for a larger maximum than the current connection's: packed again
    /// and sent piece by piece.
    fn deliver_repacked(&mut self, block: &Block) -> Result<(), End> {
        let limit = self.limit.load(Ordering::Relaxed);
        let shortened = &mut self.outcome.delivery.shortened_lines;
        match pack::repack(block, limit, shortened) {
            Ok(blocks) => {
                for (i, b) in blocks.iter().enumerate() {
                    if let Err(end) = self.deliver(b) {
                        // `deliver` failed this piece; the rest of the block was not sent.
                        for rest in &blocks[i + 1..] {
                            self.fail(rest);
                        }
                        return Err(end);
                    }
                }
                Ok(())
            }
            Err(e) => {
                log::error!("cannot pack block again for the FMC's new maximum: {e}");
                self.fail(block);
                Ok(())
            }
        }
    }

    fn judged(&mut self, block: &Block, reply: &Reply) {
        self.outcome.delivery.blocks += 1;
        let number = self.outcome.delivery.blocks;
        match judge(reply, &Tally::of(&block.bytes), &mut self.learner) {
            Ok(warnings) => {
                for warning in warnings {
                    log::warn!(
                        "the FMC warns about block {number} (hosts {}): {warning}",
                        hosts_of(block)
                    );
                }
                let done = confirm(block, &mut self.outcome, &mut self.failed_split);
                if let Some(hook) = &self.hook
                    && !done.is_empty()
                {
                    hook(&done);
                }
            }
            Err(reason) => {
                self.outcome.delivery.failed_blocks += 1;
                log::error!(
                    "the FMC did not accept block {number} (hosts {}): {reason}",
                    hosts_of(block)
                );
                self.fail(block);
            }
        }
    }

    /// After a lost connection: waits (stop-aware) and opens a new one.
    fn reconnect(&mut self, reason: &str, attempts: u32) -> Result<(), End> {
        log::warn!("connection to the FMC lost: {reason}");
        if let Some(c) = self.connection.take() {
            c.close();
        }
        if attempts > self.options.retries {
            log::error!("giving up on the FMC after {attempts} attempts for one block: {reason}");
            return Err(End::Lost);
        }
        stop::sleep(self.options.retry_wait * attempts).map_err(End::Stopped)?;
        match connect_with_retries(self.options, Some(reason)) {
            Ok(mut c) => {
                log::info!("reconnected to the FMC at {}", c.addr());
                match calibrate(&mut c, &self.calibration, &mut self.learner) {
                    Ok(_) => {}
                    Err(Calibration::Transport(TransportError::Stopped(s))) => {
                        return Err(End::Stopped(s));
                    }
                    Err(Calibration::Transport(e)) => {
                        c.close();
                        return self.reconnect(&e.to_string(), attempts + 1);
                    }
                    Err(e) => {
                        c.close();
                        log::error!(
                            "giving up on the FMC: after reconnecting, {e}; the hosts not yet confirmed are not sent"
                        );
                        return Err(End::Lost);
                    }
                }
                let limit = block_limit(c.max_size());
                if limit < self.limit.load(Ordering::Relaxed) {
                    log::info!(
                        "the FMC now accepts blocks of {} bytes: the remaining hosts are packed for that",
                        c.max_size()
                    );
                    self.limit.store(limit, Ordering::Relaxed);
                }
                self.connection = Some(c);
                Ok(())
            }
            Err(ConnectError::Stopped(stopped)) => Err(End::Stopped(stopped)),
            Err(e) => {
                log::error!("cannot reconnect to the FMC: {e}");
                Err(End::Lost)
            }
        }
    }

    fn fail(&mut self, block: &Block) {
        fail(block, &mut self.outcome, &mut self.failed_split);
    }
}

/// Lists hosts the FMC did not confirm, 20 a line (a rerun sends them again).
pub fn log_unconfirmed(hosts: &[IpAddr]) {
    for chunk in hosts.chunks(20) {
        let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        log::error!("not confirmed by the FMC: {}", list.join(" "));
    }
}

/// Decides whether a reply confirms a block of `tally`'s lines: exactly one line must be
/// `Done processing N commands.` with N what the learned rule counts, and no line may
/// start with `Error` (host-input.md §3). A block confirmed wrongly loses its hosts for
/// good; one not confirmed is only sent again by the next run. On success, the other
/// lines (warnings), escaped, for the log.
fn judge(reply: &Reply, tally: &Tally, learner: &mut Learner) -> Result<Vec<String>, String> {
    let (n, warnings) = reply_count(reply)?;
    match learner.check(tally, n) {
        Ok(_) => Ok(warnings),
        Err(miscount) => Err(format!("{miscount} (reply: {})", quote_reply(reply))),
    }
}

/// The reply's text for a message, escaped and trimmed.
fn quote_reply(reply: &Reply) -> String {
    match reply {
        Reply::Text(value) | Reply::Error(value) => quote(value.trim_ascii()),
        Reply::Unexpected(kind) => format!("a message of type {kind}"),
    }
}

/// The N of a reply and its warning lines, or why the reply confirms nothing: a type-4
/// reply, a line starting with `Error`, no count line or more than one.
fn reply_count(reply: &Reply) -> Result<(u64, Vec<String>), String> {
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
        [n] => Ok((n, lines.others.iter().map(|l| quote(l)).collect())),
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

/// A host counts as confirmed, with all its findings, only when every part of it was;
/// returns the hosts this block completed.
fn confirm(block: &Block, outcome: &mut Outcome, split: &mut SplitHosts) -> Vec<IpAddr> {
    let mut done = Vec::new();
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
                done.push(part.ip);
            }
            None => {
                d.hosts += 1;
                d.findings += findings;
                crate::progress::add(1);
                done.push(part.ip);
            }
        }
    }
    done
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
        // Learned from a calibration reply of 3: every line counts.
        let mut learner = Learner::default();
        let calibration = Tally::of(&calibration_block(b"SetSource,Q\n"));
        assert_eq!(learner.check(&calibration, 3), Ok(Some(CountRule::All)));
        let block = Tally {
            lines: 5,
            sources: 0,
            commits: 0,
        };
        for (reply, want) in cases {
            match (judge(&reply, &block, &mut learner), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{reply:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{reply:?}: {e}"),
                (got, want) => panic!("{reply:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn block_limits() {
        let cases = [
            (524_288, 524_288),
            (300, 300),
            (16 * 1024 * 1024, MAX_BLOCK),
            (u32::MAX, MAX_BLOCK),
        ];
        for (announced, want) in cases {
            assert_eq!(block_limit(announced), want, "{announced}");
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
        sink.limit.store(block_limit(u32::MAX), Ordering::Relaxed);
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
            assert!(b.bytes.len() <= MAX_BLOCK, "{}", b.bytes.len());
        }
        assert_eq!(blocks.iter().map(|b| b.hosts.len()).sum::<usize>(), hosts);
    }

    fn options_for(addr: std::net::SocketAddr, dir: &std::path::Path) -> FmcOptions {
        use qualys_connector_sim::fmc::{EnrollOptions, enroll};
        let path = enroll(dir, "127.0.0.1", &EnrollOptions::default()).unwrap();
        let identity = super::super::pkcs12::load(&path, None).unwrap();
        FmcOptions {
            endpoint: Endpoint {
                host: addr.ip().to_string(),
                port: addr.port(),
                ipv6: false,
            },
            tls: super::super::tls::client_config(&identity, "test", true).unwrap(),
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                reply: Duration::from_secs(5),
            },
            retries: 0,
            retry_wait: Duration::ZERO,
        }
    }

    static CHECKS: AtomicUsize = AtomicUsize::new(0);

    /// The run is told to stop once the first block has gone out.
    fn stop_after_one_block() -> Result<(), Stopped> {
        if CHECKS.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(())
        } else {
            Err(Stopped::Signal(stop::SIGTERM))
        }
    }

    /// After a stop no new block is sent, and the sink reports the stop with what was
    /// confirmed and what was not.
    #[test]
    fn a_stop_sends_no_new_block_and_reports_the_outcome() {
        use qualys_connector_sim::fmc::{Server, ServerOptions};
        let dir = tempfile::tempdir().unwrap();
        let mut server_options = ServerOptions::new(dir.path());
        server_options.max_size = 300;
        let server = Server::start(server_options).unwrap();
        let mut sink = FmcSink::new(options_for(server.addr(), dir.path()));
        sink.stop = stop_after_one_block;
        sink.preamble(b"SetSource,Qualys\n", 1).unwrap();
        let ips: Vec<IpAddr> = (1..=6).map(|i| IpAddr::from([192, 0, 2, i])).collect();
        for ip in &ips {
            // About 80 bytes: three hosts to a 300-byte block.
            let commands = format!("AddHost,{ip}\n").repeat(3) + "ScanFlush\n";
            sink.host(&HostBlock {
                ip: *ip,
                commands: 4,
                findings: 0,
                bytes: commands.as_bytes(),
            })
            .unwrap();
        }
        let err = sink.finish().unwrap_err();
        let SinkError::Stopped { stopped, delivery } = &err else {
            panic!("{err}");
        };
        assert_eq!(*stopped, Stopped::Signal(stop::SIGTERM));
        let stats = server.stats();
        // The calibration block, then one block of hosts.
        assert_eq!(stats.blocks, 2, "{stats:?}");
        assert_eq!(delivery.blocks, 1);
        assert!(delivery.hosts >= 1, "{delivery:?}");
        assert_eq!(
            delivery.hosts as usize + delivery.unconfirmed.len(),
            ips.len()
        );
        assert!(
            err.to_string()
                .contains("stopped by SIGTERM during delivery"),
            "{err}"
        );
        assert_eq!(crate::exit::Failure::Sink(err).code().as_i32(), 143);
        server.stop();
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
                commands: 1,
                len: 2,
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
