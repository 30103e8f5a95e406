//! A simulated Cisco FMC Host Input server (host-input.md), for the connector's tests
//! and scripts: `enroll` writes client `.pkcs12` files like the FMC's *Create Client*
//! page (§1), `Server` speaks the framed protocol over mutual TLS (§1–§3) and applies
//! the command language (§4) to a [`NetworkMap`] that tests compare.

pub mod command;
mod der;
mod map;
pub mod pkcs12;
mod pki;
mod server;
mod verify;

pub use map::{FlushScope, HostEntry, NetworkMap, ScanResult};
pub use pkcs12::P12Scheme;
pub use pki::{CertVersion, EnrollOptions, KeyType, enroll};
pub use server::{
    DEFAULT_MAX_SIZE, Server, ServerOptions, Stats, TYPE_DATA, TYPE_ERROR, TYPE_MAX_SIZE,
    TYPE_VERSION,
};
