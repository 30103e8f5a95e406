//! A simulated Cisco FMC Host Input server (host-input.md), for the connector's tests
//! and scripts: `enroll` writes client `.pkcs12` files like the FMC's *Create Client*
//! page (§1), `Server` speaks the framed protocol over mutual TLS (§1–§3) and applies
//! the command language (§4) to a [`NetworkMap`] that tests compare.
//!
//! Choices where the spec is silent (§6), all documented on [`ServerOptions`]:
//! - `max` is 524288 unless `max_size` says otherwise; a larger block, a block that does
//!   not end with `\n`, a wrong message type or a version other than 1 gets a type-4
//!   error and the server closes the connection.
//! - The reply is exactly `Done processing N commands.`, N counting the block's processed
//!   command lines under the `count_rule` ([`CountRule`]: all of them by default, or
//!   without SetSource, without the commits, or neither); a line dropped by
//!   `reject_line` never counts.
//! - The language is Cisco's (`command.rs`): spaces after commas, `tcp`/`udp`, ID lists
//!   with or without their space, `CAN-` IDs, CRLF, and the other documented commands,
//!   applied to the map (OS, services, MAC-only hosts, source type and map set;
//!   `DeleteScanResult` in its probable form, uncertain). Commands before the first
//!   `SetSource` go to [`DEFAULT_SOURCE`], logged.
//! - With `strict` a block with an unparseable line gets a type-4 reply naming the line
//!   and is not applied; without it the line is dropped, logged, and counted as a data
//!   line (a server that counts what it received; the log says so).
//! - Staged results persist across blocks of one connection; `ScanFlush` replaces the
//!   flushed source's results (`FlushScope::AllSources`: all results) of each host with
//!   staged results; a client close is an implicit `ScanUpdate`, a server-side close
//!   discards what is staged.
//! - Results for hosts not in the map (not added, not in `known_hosts`) are ignored.
//! - Every message goes out as its 8-byte header and its value in TLS records of their
//!   own (`split_writes`: cut again at random byte positions); TLS 1.3 and 1.2 are
//!   offered (`tls12_only`: 1.2 alone).
//!
//! [`command::parse_line`] is the strict parser, usable on its own to check the
//! connector's `-csvfile` output line by line.

pub mod command;
mod count;
mod der;
mod map;
pub mod pkcs12;
pub(crate) mod pki;
#[cfg(test)]
mod reference;
mod server;
mod split;
mod store;
mod verify;
mod x509;

pub use count::CountRule;
pub use map::{
    FlushScope, HostEntry, NetworkMap, OsEntry, ScanResult, ServiceEntry, SourceSettings,
};
pub use pkcs12::P12Scheme;
pub use pki::{CertVersion, EnrollOptions, KeyType, ServerCert, enroll};
pub use server::{
    DEFAULT_MAX_SIZE, DEFAULT_SOURCE, Server, ServerOptions, Stats, TYPE_DATA, TYPE_ERROR,
    TYPE_MAX_SIZE, TYPE_VERSION,
};
