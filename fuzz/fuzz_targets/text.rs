//! Fuzz target `text`: LossyUtf8 (valid UTF-8, same as from_utf8_lossy), html::to_plain_text (length limit, whitespace), commands::sanitize_into / add_scan_result / shorten_scan_result (safe ASCII fields, valid lines, length limit).
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::text(data));
