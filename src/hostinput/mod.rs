//! The Host Input side (host-input.md): the command language, and the sinks that take a
//! stream of per-host command blocks to their destination: a command file (`csvfile`) or
//! a Management Center (`fmc`, over `client`, `framing`, `tls` and `pkcs12`).
//!
//! A sink receives commands a host at a time, so that a host's results and its closing
//! ScanFlush always travel together (host-input.md §4).

pub mod client;
pub mod commands;
pub mod count;
pub mod csvfile;
pub mod fmc;
pub mod fmccert;
pub mod framing;
mod pack;
pub mod pkcs12;
pub mod tls;
pub mod validate;

use std::net::IpAddr;

/// The commands for one host: `AddHost` (optional), its `AddScanResult` lines and the
/// closing `ScanFlush`/`ScanUpdate`, as the exact bytes to send.
#[derive(Debug, Clone, Copy)]
pub struct HostBlock<'a> {
    pub ip: IpAddr,
    pub commands: usize,
    pub findings: usize,
    pub bytes: &'a [u8],
}

/// What a sink confirms at the end: for the FMC, only what the server acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub hosts: u64,
    pub findings: u64,
    pub commands: u64,
    pub bytes: u64,
    /// Data blocks sent, and those the server did not accept.
    pub blocks: u64,
    pub failed_blocks: u64,
    /// Hosts whose commands were not confirmed: the run has failed if there are any.
    pub unconfirmed: Vec<IpAddr>,
    /// Lines whose text was shortened to fit the server's block size.
    pub shortened_lines: u64,
}

/// A destination for Host Input commands.
pub trait CommandSink {
    /// The stream's opening lines (`SetSource`), sent before any host.
    fn preamble(&mut self, bytes: &[u8], commands: usize) -> Result<(), SinkError>;
    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError>;
    /// Completes the delivery; nothing counts as delivered before this returns Ok.
    fn finish(&mut self) -> Result<Delivery, SinkError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Delivery(String),
    /// The run was told to stop (signal, `max_run_seconds`) during delivery: no new block
    /// was sent; `delivery` says what the FMC confirmed and which hosts it did not.
    #[error("{stopped} during delivery: {} hosts confirmed, {} not confirmed", delivery.hosts, delivery.unconfirmed.len())]
    Stopped {
        stopped: crate::stop::Stopped,
        delivery: Delivery,
    },
    /// The sync state could not be read or written (src/sync): nothing more is sent, so
    /// that the state never falls behind what the FMC holds.
    #[error("{0}")]
    State(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
