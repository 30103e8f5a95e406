//! The acceptance figures on the real public reports in ../shared/fixtures.

use crate::harness::{Test, count_lines, shared_fixture};

fn convert(yaml: &str, report: &std::path::Path) -> (Test, String) {
    let t = Test::new().config(yaml).args(&[
        format!("-report={}", report.display()),
        "-csvfile=Output.csv".into(),
    ]);
    t.run().assert_code(0);
    let csv = t.read("Output.csv");
    (t, csv)
}

#[test]
fn seven_hosts_with_default_settings() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let (_, csv) = convert("add_host: n\n", &report);
    assert_eq!(count_lines(&csv, "SetSource,QualysGuard"), 1);
    assert!(
        csv.starts_with("SetSource,QualysGuard\n"),
        "SetSource first"
    );
    assert_eq!(
        count_lines(&csv, "AddScanResult,"),
        92,
        "90 Vuln + 2 Practice"
    );
    assert_eq!(count_lines(&csv, "ScanFlush"), 7);
    assert_eq!(count_lines(&csv, "AddHost,"), 0);
    assert_eq!(csv.lines().count(), 1 + 92 + 7);
    // Every line is one of the commands, with the field count the spec gives.
    for line in csv.lines().filter(|l| l.starts_with("AddScanResult,")) {
        assert_eq!(line.split(',').count(), 10, "{line}");
        assert!(line.is_ascii(), "{line}");
    }
    // Ig (information gathered) QID 6 is not sent by default; QID 82003 (Vuln) is,
    // with its CVE from the glossary.
    assert!(!csv.contains(",\"QualysGuard\",6,"));
    assert!(csv.contains(
        "AddScanResult,64.41.200.243,\"QualysGuard\",82003,,,\"ICMP Timestamp Request\","
    ));
    assert!(csv.contains("\"cve_ids: CVE-1999-0524\""));
}

#[test]
fn seven_hosts_with_add_host() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let (_, csv) = convert("add_host: y\n", &report);
    assert_eq!(count_lines(&csv, "AddHost,"), 7);
    assert_eq!(count_lines(&csv, "AddScanResult,"), 92);
    // AddHost opens each host's block, before its results.
    let lines: Vec<&str> = csv.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(ip) = line.strip_prefix("AddHost,") {
            assert!(
                lines[i + 1].starts_with(&format!("AddScanResult,{ip},")),
                "{}",
                lines[i + 1]
            );
        }
    }
}

#[test]
fn seven_hosts_filtered_to_one() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let (_, csv) = convert("ip_ranges: 64.41.200.250\n", &report);
    assert_eq!(count_lines(&csv, "AddScanResult,"), 55);
    assert_eq!(count_lines(&csv, "AddScanResult,64.41.200.250,"), 55);
    assert_eq!(count_lines(&csv, "ScanFlush"), 1);
}

#[test]
fn seven_hosts_with_information_gathered() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let (_, csv) = convert("include_types: Vuln, Practice, Ig\n", &report);
    assert_eq!(
        count_lines(&csv, "AddScanResult,"),
        301,
        "209 Ig + 90 Vuln + 2 Practice"
    );
}

#[test]
fn empty_report_gives_only_set_source() {
    let Some(report) = shared_fixture("asset_data_report_empty.xml") else {
        return;
    };
    let (_, csv) = convert("add_host: y\n", &report);
    assert_eq!(csv, "SetSource,QualysGuard\n");
}
