//! Fuzz target `cli`: cli::parse on an arbitrary argv (words split at NUL bytes, not necessarily UTF-8).
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::cli(data));
