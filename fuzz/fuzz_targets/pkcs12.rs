//! Fuzz target `pkcs12`: pkcs12::from_bytes on arbitrary bytes without and with a password; the password never appears in a message.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::pkcs12(data));
