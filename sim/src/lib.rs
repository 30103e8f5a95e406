//! Simulators for testing qualys-connector without a real FMC or Qualys account.
//!
//! [`fmc`] is a Host Input server (host-input.md §1–§4) with the FMC's *Create Client*
//! enrolment, a network map to inspect, and fault injection for the connector's tests.
//!
//! [`qualys`] generates synthetic `ASSET_DATA_REPORT` documents (qualys.md §5) and
//! serves them from a simulated Qualys API (qualys.md §1–§4) with the limits and faults
//! the connector must survive.

pub mod fmc;
pub mod qualys;

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences the simulators' request log on stderr (for `qualys-connector demo`, whose
/// own output tells the story).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}
