//! Fuzz target `report_parser`: report::parse on arbitrary bytes, whole and in small reads (same result), with the data model's invariants on what it hands out.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::report_parser(data));
