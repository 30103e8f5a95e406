//! The end-of-run summary: the log lines, and `-summary-json` for schedulers.

use crate::harness::{Test, example};

fn json(test: &Test, name: &str) -> serde_json::Value {
    serde_json::from_str(&test.read(name)).expect("summary is JSON")
}

#[test]
fn summary_json_of_a_successful_run() {
    let t = Test::new().config("ip_ranges: 192.0.2.0/24\n").args(&[
        format!("-report={}", example("report.xml").display()),
        "-csvfile=Output.csv".into(),
        "-summary-json=summary.json".into(),
    ]);
    t.run().assert_code(0);
    let s = json(&t, "summary.json");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["status"], "ok");
    let run = &s["templates"][0];
    assert_eq!(run["status"], "ok");
    assert_eq!(run["report"]["hosts"], 4);
    assert_eq!(run["report"]["hosts_in_range"], 2);
    assert_eq!(run["report"]["hosts_out_of_range"], 2);
    assert_eq!(run["findings"]["vuln"], 3);
    assert_eq!(run["findings"]["practice"], 2);
    assert_eq!(run["findings"]["ig"], 1);
    assert_eq!(run["findings"]["fixed"], 1);
    assert_eq!(run["findings"]["selected"], 4);
    assert_eq!(run["delivery"]["hosts_confirmed"], 2);
    assert_eq!(run["delivery"]["findings_confirmed"], 4);
    assert!(run["durations_ms"]["parse"].is_u64());
    assert_eq!(s["warnings"], 0);
}

#[test]
fn summary_json_of_a_failed_run() {
    let t = Test::new()
        .config("")
        .file("report.xml", "<ASSET_DATA_REPORT><HOST_LIST>")
        .args(&[
            "-report=report.xml",
            "-csvfile=Output.csv",
            "-summary-json=summary.json",
        ]);
    t.run().assert_code(3);
    let s = json(&t, "summary.json");
    assert_eq!(s["exit_code"], 3);
    assert_eq!(s["status"], "failed");
    let run = &s["templates"][0];
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["exit_code"], 3);
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incomplete")
    );
    assert!(run["error"]["hint"].as_str().unwrap().contains("truncated"));
}

#[test]
fn summary_json_of_a_setup_failure() {
    let t = Test::new().config("add_host: maybe\n").args(&[
        "-report=x.xml",
        "-csvfile=Output.csv",
        "-summary-json=summary.json",
    ]);
    t.run().assert_code(2);
    let s = json(&t, "summary.json");
    assert_eq!(s["exit_code"], 2);
    assert!(s["error"]["message"].as_str().unwrap().contains("add_host"));
    assert_eq!(s["templates"].as_array().unwrap().len(), 0);
}

#[test]
fn report_and_multiinfo_do_not_mix() {
    Test::new()
        .config("")
        .args(&["-report=x.xml", "-csvfile=Output.csv", "-multiinfo=1,2"])
        .run()
        .assert_code(2)
        .assert_output_contains("-report and -multiinfo do not go together");
}

#[test]
fn multiinfo_needs_no_template_id_but_the_credentials() {
    Test::new()
        .config("add_host: y\n")
        .args(&["-csvfile=Output.csv", "-multiinfo", "424242,535353"])
        .run()
        .assert_code(2)
        .assert_output_contains("missing required keys user_id, password");
    let out = Test::new()
        .config("add_host: y\n")
        .args(&["-csvfile=Output.csv", "-multiinfo", "424242,535353"])
        .run();
    assert!(!out.output().contains("template_id"), "{}", out.output());
}
