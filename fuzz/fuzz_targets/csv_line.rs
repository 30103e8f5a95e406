//! Fuzz target `csv_line`: validate::check_line on arbitrary lines; valid AddScanResult lines stay valid through commands::shorten_scan_result.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::csv_line(data));
