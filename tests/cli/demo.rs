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
        "The FMC now holds {} hosts and {} findings from QualysGuard.",
        summary.hosts, summary.sendable
    ));
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
