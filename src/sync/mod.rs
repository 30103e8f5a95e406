//! Incremental sync: the FMC is sent only what changed since it last confirmed a host.
//!
//! `sync_state` names an SQLite file (`state.rs`) that remembers, per destination
//! (`destination.rs`: FMC, its CA, source, scope) and per host, the fingerprint
//! (`fingerprint.rs`) of what the FMC confirmed. Each run is full or delta (`plan.rs`);
//! the sync sink (`sink.rs`) sits in front of the real sink and skips unchanged hosts,
//! and handles hosts that vanished from the report. One run per state file (`lock.rs`).
//! Depends on the Host Input side only; the run layer wires it in.

pub mod destination;
pub mod fingerprint;
pub mod lock;
pub mod plan;
pub mod sink;
pub mod state;

pub use destination::Destination;
pub use plan::{Kind, Plan};
pub use sink::{Confirmations, SyncOptions, SyncReport, SyncSink, Vanished};
pub use state::{State, StateError};
