//! Fuzzing regressions: replays every saved input under `fuzz/regressions/<target>/` (inputs
//! that once crashed or hung a fuzz target, and a few interesting ones) through the very
//! checks that target runs, `fuzz/src/lib.rs`, included here as a module. Each test asserts
//! only that nothing panics and that the target's invariants hold; a target whose directory
//! is empty or missing has nothing to replay. See FUZZING.md.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// Runs every file of `fuzz/regressions/<target>/` through the target's check, and fails
/// naming each file whose check panicked (the panic messages are printed above).
fn replay(target: &str) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("{target} is not a fuzz target"));
    let dir = regressions().join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} saved fuzz inputs fail: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn every_regression_directory_names_a_target() {
    let Ok(entries) = std::fs::read_dir(regressions()) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            assert!(
                checks::TARGETS.iter().any(|(target, _)| *target == name),
                "fuzz/regressions/{name} is not a fuzz target"
            );
        }
    }
}

#[test]
fn report_pipeline() {
    replay("report_pipeline");
}

#[test]
fn report_parser() {
    replay("report_parser");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn ip_ranges() {
    replay("ip_ranges");
}

#[test]
fn cli() {
    replay("cli");
}

#[test]
fn frame_decoder() {
    replay("frame_decoder");
}

#[test]
fn csv_line() {
    replay("csv_line");
}

#[test]
fn pkcs12() {
    replay("pkcs12");
}

#[test]
fn text() {
    replay("text");
}
