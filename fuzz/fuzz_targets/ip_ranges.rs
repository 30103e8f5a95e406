//! Fuzz target `ip_ranges`: IpRanges::parse on arbitrary text: contains() consistent (IPv4 vs mapped, interval ends) and Display parses back to an equal value.
//! The checks live in `fuzz/src/lib.rs`, shared with tests/cli/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qualys_connector_fuzz::ip_ranges(data));
