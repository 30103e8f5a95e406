//! `qualys-connector demo` (builds with the `demo` feature): the whole job against the
//! built-in simulators, its printed counts checked against what the generator made.

use qualys_connector_sim::qualys::{GenSpec, generate};

use crate::harness::Test;

#[test]
fn demo_runs_and_its_counts_match_the_generated_report() {
    let t = Test::new().file("tmp/.keep", "");
    let tmp = t.path("tmp");
    let t = t
        .env("TMPDIR", &tmp.display().to_string())
        .args(&["demo", "-hosts=150"]);
    let out = t.run();
    out.assert_code(0)
        .assert_output_contains("they match")
        .assert_output_contains("Most frequent QIDs:");
    // The same report, generated here: the FMC must hold every host and every
    // sendable finding (Vuln and Practice, not Fixed).
    let summary = generate(
        &GenSpec {
            hosts: 150,
            seed: 1,
            ..GenSpec::default()
        },
        &mut std::io::sink(),
    )
    .unwrap();
    out.assert_output_contains(&format!(
        "The FMC now holds {} hosts and {} findings from QualysGuard; the report has {} hosts and {} findings to send: they match.",
        summary.hosts, summary.sendable, summary.hosts, summary.sendable
    ));
    // The second run: the report with every 20th host changed, a delta run that sends
    // those 7 hosts only, and the FMC then holds that report.
    let changed = generate(
        &GenSpec {
            hosts: 150,
            seed: 1,
            change_every: 20,
            ..GenSpec::default()
        },
        &mut std::io::sink(),
    )
    .unwrap();
    out.assert_output_contains("The sync: a full run (there was no sync state yet)")
        .assert_output_contains("The sync: a delta run (")
        .assert_output_contains("143 hosts unchanged (not sent), 0 new, 7 changed.")
        .assert_output_contains("The connector had 7 hosts and ")
        .assert_output_contains(&format!(
            "The FMC now holds 150 hosts and {} findings from QualysGuard; the report has 150 hosts and {} findings to send: they match.",
            changed.sendable, changed.sendable
        ));
    assert_ne!(
        changed.sendable, summary.sendable,
        "the second report differs"
    );
    assert_eq!(t.files(), vec!["tmp"], "no files left behind");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(".keep")],
        "temporary files removed"
    );
}
