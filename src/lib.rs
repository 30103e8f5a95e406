//! qualys-connector: imports Qualys vulnerability reports into a Cisco Firepower
//! Management Center through the Host Input API, or writes the same commands to a file.
//!
//! The Qualys side (`qualys`) produces the neutral data model (`model`); the Host Input
//! side (`hostinput`) consumes it; `pipeline` joins them. `run` is one invocation.

pub mod cli;
pub mod config;
pub mod exit;
pub mod files;
pub mod filter;
pub mod hostinput;
pub mod logging;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod qualys;
pub mod repeats;
pub mod run;
pub mod runsort;
pub mod secret;
pub mod servertext;
pub mod spill;
pub mod stop;
pub mod sync;
pub mod timed;
