//! The Qualys side of the simulator: a deterministic generator of realistic
//! `ASSET_DATA_REPORT` documents (qualys.md §5) for the connector's scale and
//! correctness tests. The `qualys-sim` binary is its command-line front end.

mod corpus;
pub mod generate;

pub use generate::{GenSpec, GenSummary, generate};
