//! Integration tests: the real `qualys-connector` binary, run in a scratch directory.
//! One test binary (ripgrep style); each file is one area.

// A failing test is a panic: the no-panic policy is for the connector, not its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod certs;
mod check;
mod config;
mod countrule;
mod csvplugin;
#[cfg(feature = "demo")]
mod demo;
mod detection;
mod docs;
mod download;
mod files;
mod fixtures;
mod fmc;
mod fuzz_regressions;
mod guarantees;
mod hostile;
mod logging;
mod options;
mod output;
mod relay;
mod report;
mod results;
mod signals;
mod summary;
mod sync;
mod wire;
mod words;
