//! Simulators for testing qualys-connector without a real FMC or Qualys account.
//!
//! [`fmc`] is a Host Input server (host-input.md §1–§4) with the FMC's *Create Client*
//! enrolment, a network map to inspect, and fault injection for the connector's tests.

pub mod fmc;
pub mod qualys;
