//! Hostile and broken input at the binary level (TESTING.md): each case ends with a clear
//! message and a documented exit code, memory stays bounded, nothing is lost.

use crate::harness::{Test, count_lines};

fn wrap(hosts: &str, glossary: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<ASSET_DATA_REPORT><HOST_LIST>{hosts}</HOST_LIST><GLOSSARY><VULN_DETAILS_LIST>{glossary}</VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>\n"
    )
}

fn host(ip: &str, qid: u32) -> String {
    format!(
        "<HOST><IP>{ip}</IP><VULN_INFO_LIST><VULN_INFO><QID>{qid}</QID><TYPE>Vuln</TYPE><PORT>80</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO></VULN_INFO_LIST></HOST>"
    )
}

fn details(qid: u32, title: &str, extra: &str) -> String {
    format!(
        "<VULN_DETAILS id=\"qid_{qid}\"><QID>{qid}</QID><TITLE>{title}</TITLE>{extra}</VULN_DETAILS>"
    )
}

fn convert(doc: impl AsRef<[u8]>) -> (Test, crate::harness::Outcome) {
    let t = Test::new()
        .config("add_host: y\n")
        .file("report.xml", doc)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    let out = t.run();
    (t, out)
}

#[test]
fn control_characters_never_reach_a_command() {
    let doc = wrap(
        &host("192.0.2.1", 1),
        &details(
            1,
            "Bell\u{7}and\u{1b}[31mescape\u{0}",
            "<THREAT><![CDATA[tab\there\u{c}form]]></THREAT>",
        ),
    );
    let (t, out) = convert(doc);
    out.assert_code(0);
    let csv = t.read("Output.csv");
    assert!(
        csv.contains(",\"Belland[31mescape\",\"tab here form\","),
        "{csv}"
    );
    assert!(
        csv.bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)),
        "{csv:?}"
    );
}

#[test]
fn a_huge_text_node_is_cut_not_swallowed() {
    let title = "A".repeat(3 * 1024 * 1024);
    let doc = wrap(&host("192.0.2.1", 1), &details(1, &title, ""));
    let (t, out) = convert(doc);
    out.assert_code(0)
        .assert_output_contains("a text field longer than 1048576 bytes was cut");
    let csv = t.read("Output.csv");
    let line = csv
        .lines()
        .find(|l| l.starts_with("AddScanResult,"))
        .unwrap();
    assert!(line.len() < 1024 * 1024 + 200, "{}", line.len());
}

#[test]
fn deep_nesting_is_fine() {
    let depth = 50_000;
    let nested = format!("{}{}", "<X>".repeat(depth), "</X>".repeat(depth));
    let doc = wrap(
        &host("192.0.2.1", 1).replace("<VULN_INFO_LIST>", &format!("{nested}<VULN_INFO_LIST>")),
        &details(1, "t", ""),
    );
    let (t, out) = convert(doc);
    out.assert_code(0);
    assert_eq!(count_lines(&t.read("Output.csv"), "AddScanResult,"), 1);
}

#[test]
fn a_host_listed_twice_loses_nothing() {
    let doc = wrap(
        &format!(
            "{}{}{}",
            host("192.0.2.1", 1),
            host("192.0.2.2", 1),
            host("192.0.2.1", 2)
        ),
        &format!("{}{}", details(1, "one", ""), details(2, "two", "")),
    );
    let (t, out) = convert(doc);
    out.assert_code(0)
        .assert_output_contains("host 192.0.2.1 appears more than once in the report");
    let csv = t.read("Output.csv");
    assert_eq!(count_lines(&csv, "AddScanResult,192.0.2.1,"), 2);
    assert!(csv.ends_with("AddScanResult,192.0.2.1,\"QualysGuard\",2,80,6,\"two\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\nScanUpdate\n"), "{csv}");
}

#[test]
fn thousands_of_cve_ids_on_one_qid() {
    let cves: String = (0..5000)
        .map(|i| format!("<CVE_ID><ID>CVE-2020-{i:05}</ID></CVE_ID>"))
        .collect();
    let doc = wrap(
        &host("192.0.2.1", 1),
        &details(1, "many", &format!("<CVE_ID_LIST>{cves}</CVE_ID_LIST>")),
    );
    let (t, out) = convert(doc);
    out.assert_code(0);
    let csv = t.read("Output.csv");
    let line = csv
        .lines()
        .find(|l| l.starts_with("AddScanResult,"))
        .unwrap();
    assert_eq!(line.matches("CVE-2020-").count(), 5000);
    assert_eq!(line.split(',').count(), 10, "still one field");
}

#[test]
fn truncated_at_many_offsets_never_writes() {
    let full = wrap(
        &format!("{}{}", host("192.0.2.1", 1), host("192.0.2.2", 2)),
        &format!("{}{}", details(1, "one", ""), details(2, "two", "")),
    );
    let end = full.rfind("</ASSET_DATA_REPORT>").unwrap();
    for cut in (10..end).step_by(37) {
        let (t, out) = convert(&full[..cut]);
        assert_eq!(out.code, 3, "cut at {cut}: {}", out.output());
        assert!(!t.exists("Output.csv"), "cut at {cut}");
    }
}
