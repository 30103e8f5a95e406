//! The -csvfile output: exact bytes, atomic replacement, nothing partial.

use crate::harness::{Test, example};

#[test]
fn the_example_report_gives_the_expected_file() {
    let t = Test::new()
        .config("add_host: y\nip_ranges: 192.0.2.0/24, 2001:db8::/32\n")
        .args(&[
            format!("-report={}", example("report.xml").display()),
            "-csvfile=Output.csv".into(),
        ]);
    t.run().assert_code(0);
    let want = "SetSource,QualysGuard
AddHost,192.0.2.10
AddScanResult,192.0.2.10,\"QualysGuard\",38170,443,6,\"SSL Certificate - Subject Common Name Does Not Match Server FQDN\",\"An SSL Certificate associates an entity (person organization host etc.) with a Public Key. The certificate's common name does not match the host name.\",\"cve_ids: \",\"bugtraq_ids: \"
AddScanResult,192.0.2.10,\"QualysGuard\",38170,8443,6,\"SSL Certificate - Subject Common Name Does Not Match Server FQDN\",\"An SSL Certificate associates an entity (person organization host etc.) with a Public Key. The certificate's common name does not match the host name.\",\"cve_ids: \",\"bugtraq_ids: \"
AddScanResult,192.0.2.10,\"QualysGuard\",82003,,,\"ICMP Timestamp Request\",\"ICMP (Internet Control and Error Message Protocol) is a protocol encapsulated in IP packets. ICMP timestamp packets are used to synchronize clocks between hosts.\",\"cve_ids: CVE-1999-0524\",\"bugtraq_ids: \"
ScanFlush
AddHost,192.0.2.11
AddScanResult,192.0.2.11,\"QualysGuard\",90043,445,6,\"SMB Signing Disabled or SMB Signing Not Required\",\"This host does not require SMB signing which allows 'man-in-the-middle' attacks on SMB traffic.\",\"cve_ids: \",\"bugtraq_ids: 66690\"
ScanFlush
AddHost,2001:db8::20
AddScanResult,2001:db8::20,\"QualysGuard\",38170,443,6,\"SSL Certificate - Subject Common Name Does Not Match Server FQDN\",\"An SSL Certificate associates an entity (person organization host etc.) with a Public Key. The certificate's common name does not match the host name.\",\"cve_ids: \",\"bugtraq_ids: \"
ScanFlush
";
    assert_eq!(t.read("Output.csv"), want);
    assert_eq!(
        t.files(),
        vec!["InputPlugins", "Output.csv"],
        "no temporary files left"
    );
}

#[test]
fn a_failed_run_keeps_the_previous_file() {
    let full = std::fs::read_to_string(example("report.xml")).unwrap();
    let truncated = &full[..full.len() / 2];
    let t = Test::new()
        .config("")
        .file("Output.csv", "previous run\n")
        .file("report.xml", truncated)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    t.run().assert_code(3);
    assert_eq!(t.read("Output.csv"), "previous run\n");
    assert_eq!(t.files(), vec!["InputPlugins", "Output.csv", "report.xml"]);
}

#[test]
fn a_successful_run_replaces_the_previous_file() {
    let t = Test::new()
        .config("")
        .file("Output.csv", "previous run\n")
        .args(&[
            format!("-report={}", example("report.xml").display()),
            "-c=Output.csv".into(),
        ]);
    t.run().assert_code(0);
    assert!(t.read("Output.csv").starts_with("SetSource,QualysGuard\n"));
}

#[test]
fn an_unwritable_destination_exits_4_before_reading() {
    let t = Test::new().config("").args(&[
        format!("-report={}", example("report.xml").display()),
        "-c=missing/dir/Output.csv".into(),
    ]);
    t.run()
        .assert_code(4)
        .assert_output_contains("cannot write missing/dir/Output.csv");
}
