//! The Qualys side of the simulator: a deterministic generator of realistic
//! `ASSET_DATA_REPORT` documents (qualys.md §5) for the connector's scale and
//! correctness tests, and [`QualysServer`], a simulated Qualys API (qualys.md §1–§4:
//! Report API v2 and v1, Basic auth, limit headers, and the faults met in the field).
//! The `qualys-sim` binary is the command-line front end of both.

mod body;
mod corpus;
pub mod estate;
pub mod generate;
mod http;
mod server;
mod tls;

pub use estate::Estate;
pub use generate::{GenSpec, GenSummary, generate};
pub use server::{
    InjectedBody, InjectedError, QualysServer, RATE_LIMIT, RATE_WINDOW_SEC, RecordedRequest,
    ServerOptions, TemplateSource,
};
