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
