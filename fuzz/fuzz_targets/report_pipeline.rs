//! Fuzz target `report_pipeline`: report bytes through pipeline::run into a sink that validates every command line (check_line) and the block structure, and that receives nothing unless the report parsed.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::report_pipeline(data));
