//! Fuzz target `config`: config::parse_str on arbitrary YAML: no panic, valid values, and a password never shown in an error, warning or the Config's Debug.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::config(data));
