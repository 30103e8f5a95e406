//! The `csv` plugin replays command files written for Cisco's SDK, in the language as
//! Cisco's Host Input API Guide documents it (host-input.md §4): CRLF endings, spaces
//! after commas, `tcp`/`udp`, the ID lists with or without their space, `CAN-` IDs,
//! and the other commands of the language.

use qualys_connector_sim::fmc::EnrollOptions;

use crate::fmc::{Fmc, map_findings};
use crate::harness::{Outcome, Test, example};

fn replay(fmc: &Fmc, file: &str) -> Outcome {
    let test = Test::new().file("Commands.csv", file);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        "-plugininfo=Commands.csv".into(),
        "csv".into(),
    ]);
    test.run()
}

/// The connector's own `-csvfile` output, with CRLF line endings, gives the map the LF
/// file gives (fmc-sim refuses a carriage return inside a line in strict mode, so none
/// reached it).
#[test]
fn a_command_file_with_crlf_endings_is_sent_with_lf() {
    let lf = {
        let t = Test::new().config("add_host: y\n").args(&[
            format!("-report={}", example("report.xml").display()),
            "-csvfile=Output.csv".into(),
        ]);
        t.run().assert_code(0);
        t.read("Output.csv")
    };
    let crlf = lf.replace('\n', "\r\n");
    let mut plain = Fmc::start(|_| {});
    replay(&plain, &lf).assert_code(0);
    let reference = plain.stop();
    let mut fmc = Fmc::start(|_| {});
    replay(&fmc, &crlf)
        .assert_code(0)
        .assert_output_contains("lines end with CRLF; they are sent with LF")
        .assert_output_contains("4 hosts and 6 findings confirmed");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.unparseable_lines, 0);
    let map = fmc.stop();
    assert_eq!(map_findings(&map), map_findings(&reference));
    assert_eq!(map, reference);
}

/// Cisco's own forms and the other commands, replayed: every host they name is in the
/// map with its findings, IDs as written, OS and services where fmc-sim keeps them.
#[test]
fn the_languages_documented_forms_and_other_commands_are_replayed() {
    let file = "\
SetSource, QualysGuard\r
SetSourceType, 2\r
AddHost, 10.9.9.1\r
SetOS,10.9.9.1,Microsoft,Windows,\"10\"\r
AddService, 10.9.9.1, 22, tcp, ssh, OpenBSD, 8.9\r
AddScanResult, 10.9.9.1, \"QualysGuard\", 38170, 443, tcp, \"SSL name\", \"desc\", \"cve_ids:CVE-2014-0160\", \"bugtraq_ids:\"\r
AddScanResult,10.9.9.1,\"QualysGuard\",82003,53,udp,\"ICMP\",\"desc\",\"cve_ids: CAN-1999-0524\",\"bugtraq_ids: 66690\"\r
SetAttributeValue, 10.9.9.1, criticality, High\r
ScanFlush\r
AddHost,10.9.9.2\r
AddScanResult,10.9.9.2,\"QualysGuard\",90043,445,6,\"SMB\",\"desc\",\"cve_ids: \",\"bugtraq_ids: \"\r
ScanFlush\r
";
    let mut fmc = Fmc::start(|_| {});
    replay(&fmc, file)
        .assert_code(0)
        .assert_output_contains("2 hosts and 3 findings confirmed");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.unparseable_lines, 0, "{stats:?}");
    let map = fmc.stop();
    let findings = map_findings(&map);
    assert_eq!(
        findings["10.9.9.1"],
        vec![
            (
                Some(38170),
                Some(443),
                Some(6),
                "CVE-2014-0160".to_string(),
                String::new()
            ),
            (
                Some(82003),
                Some(53),
                Some(17),
                "CAN-1999-0524".to_string(),
                "66690".to_string()
            ),
        ]
    );
    assert_eq!(findings["10.9.9.2"].len(), 1);
    let host = &map.hosts[&"10.9.9.1".parse().unwrap()];
    assert_eq!(
        host.attributes.get("criticality").map(String::as_str),
        Some("High")
    );
}

/// What is really invalid is still refused before anything is sent, by line and reason.
#[test]
fn invalid_lines_are_refused_by_line_and_reason() {
    let mut fmc = Fmc::start(|_| {});
    let file = "SetSource,QualysGuard\r\nAddHost, 10.9.9.1\r\nAddService,10.9.9.1,22,icmp\r\nFrobnicate,10.9.9.1\r\nScanFlush\r\n";
    replay(&fmc, file)
        .assert_code(3)
        .assert_output_contains("line 3: AddService: protocol \"icmp\"")
        .assert_output_contains("line 4: unknown command \"Frobnicate\"")
        .assert_output_contains("nothing was sent");
    assert_eq!(fmc.server.as_ref().unwrap().stats().connections, 0);
    assert!(fmc.stop().hosts.is_empty());
}
