//! Fuzz target `frame_decoder`: framing::read_frame on arbitrary bytes (whole and byte by byte, re-encoding checked) and framing::reply_lines on arbitrary text.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::frame_decoder(data));
