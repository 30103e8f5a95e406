//! What the FMC keeps after a run, and what real documents' text becomes: hosts whose
//! findings were fixed between two runs, ports without a protocol, entities and
//! characters outside ASCII, declared encodings. Against fmc-sim's network map or the
//! `-csvfile` output.

use qualys_connector_sim::fmc::{EnrollOptions, NetworkMap};

use crate::fmc::Fmc;
use crate::harness::{Outcome, Test};

/// A report of `hosts`, each `(ip, [(qid, status)])`, every finding a Vuln on 443/tcp,
/// with a glossary entry for each QID.
pub fn report(hosts: &[(&str, &[(u32, &str)])]) -> String {
    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ASSET_DATA_REPORT><HOST_LIST>\n",
    );
    let mut qids = std::collections::BTreeSet::new();
    for (ip, findings) in hosts {
        doc.push_str(&format!("<HOST><IP>{ip}</IP><VULN_INFO_LIST>\n"));
        for (qid, status) in *findings {
            qids.insert(*qid);
            doc.push_str(&format!(
                "<VULN_INFO><QID>{qid}</QID><TYPE>Vuln</TYPE><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL><VULN_STATUS>{status}</VULN_STATUS></VULN_INFO>\n"
            ));
        }
        doc.push_str("</VULN_INFO_LIST></HOST>\n");
    }
    doc.push_str("</HOST_LIST><GLOSSARY><VULN_DETAILS_LIST>\n");
    for qid in qids {
        doc.push_str(&format!(
            "<VULN_DETAILS id=\"qid_{qid}\"><QID>{qid}</QID><TITLE><![CDATA[Title {qid}]]></TITLE><THREAT><![CDATA[Threat {qid}.]]></THREAT><CVE_ID_LIST><CVE_ID><ID>CVE-2014-0160</ID></CVE_ID></CVE_ID_LIST></VULN_DETAILS>\n"
        ));
    }
    doc.push_str("</VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>\n");
    doc
}

/// Sends `doc` to `fmc` with `yaml`.
fn deliver(fmc: &Fmc, yaml: &str, doc: &str) -> Outcome {
    let test = Test::new().config(yaml).file("report.xml", doc);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        "-report=report.xml".to_string(),
    ]);
    test.run()
}

/// host → its results as (QID, name), generic results with no QID.
fn results(map: &NetworkMap, ip: &str) -> Vec<(Option<u64>, String)> {
    let host = map
        .host(ip.parse().unwrap())
        .unwrap_or_else(|| panic!("{ip} in the map"));
    host.results
        .iter()
        .map(|r| (r.vuln_id, r.name.clone()))
        .collect()
}

/// The issue: a host whose findings were all fixed got a ScanFlush with nothing staged,
/// which commits nothing for it, so the FMC kept its old vulnerabilities forever.
#[test]
fn a_host_fixed_between_two_runs_has_no_vulnerability_left() {
    let yaml = "add_host: y\n";
    let mut fmc = Fmc::start(|_| {});
    let first = report(&[
        ("192.0.2.30", &[(38170, "Active"), (90043, "New")]),
        ("192.0.2.31", &[(82003, "Active")]),
    ]);
    deliver(&fmc, yaml, &first)
        .assert_code(0)
        .assert_output_contains("2 hosts and 3 findings confirmed");
    let map = fmc.server.as_ref().unwrap().map();
    assert_eq!(results(&map, "192.0.2.30").len(), 2);

    let second = report(&[
        ("192.0.2.30", &[(38170, "Fixed"), (90043, "Fixed")]),
        ("192.0.2.31", &[(82003, "Active")]),
    ]);
    deliver(&fmc, yaml, &second)
        .assert_code(0)
        .assert_output_contains("2 hosts and 1 findings confirmed");
    let map = fmc.stop();
    assert_eq!(
        results(&map, "192.0.2.30"),
        vec![(None, "No open Qualys findings".to_string())],
        "only the generic result is left"
    );
    assert!(
        map.host("192.0.2.30".parse().unwrap()).unwrap().results[0]
            .cve_ids
            .is_empty()
    );
    assert_eq!(
        results(&map, "192.0.2.31"),
        vec![(Some(82003), "Title 82003".to_string())]
    );
    assert_eq!(map.vulnerability_count(), 1);
}

/// `scan_mode: update` merges: a generic result would clear nothing, so none is sent
/// and the host keeps what it had (the README says so).
#[test]
fn update_mode_keeps_a_fixed_hosts_old_results() {
    let yaml = "add_host: y\nscan_mode: update\n";
    let mut fmc = Fmc::start(|_| {});
    deliver(&fmc, yaml, &report(&[("192.0.2.30", &[(38170, "Active")])])).assert_code(0);
    deliver(&fmc, yaml, &report(&[("192.0.2.30", &[(38170, "Fixed")])])).assert_code(0);
    let map = fmc.stop();
    assert_eq!(
        results(&map, "192.0.2.30"),
        vec![(Some(38170), "Title 38170".to_string())]
    );
}

/// A host listed twice whose later listing has nothing open keeps the earlier
/// listing's findings; one whose earlier listing had nothing open ends with the later
/// findings and no generic result.
#[test]
fn a_repeated_host_keeps_what_its_listings_hold() {
    let yaml = "add_host: y\n";
    let mut fmc = Fmc::start(|_| {});
    let doc = report(&[
        ("192.0.2.30", &[(38170, "Active")]),
        ("192.0.2.31", &[(82003, "Fixed")]),
        ("192.0.2.30", &[(90043, "Fixed")]),
        ("192.0.2.31", &[(90043, "Active")]),
    ]);
    deliver(&fmc, yaml, &doc).assert_code(0);
    let map = fmc.stop();
    assert_eq!(
        results(&map, "192.0.2.30"),
        vec![(Some(38170), "Title 38170".to_string())]
    );
    assert_eq!(
        results(&map, "192.0.2.31"),
        vec![(Some(90043), "Title 90043".to_string())]
    );
}

/// The `-csvfile` output of a run with a cleared host goes through the `csv` plugin
/// (which checks every line first) to the same map.
#[test]
fn the_csv_plugin_sends_generic_results() {
    let doc = report(&[("192.0.2.30", &[(38170, "Fixed")])]);
    let test = Test::new()
        .config("add_host: y\n")
        .file("report.xml", &doc)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    test.run().assert_code(0);
    let csv = test.read("Output.csv");
    assert!(
        csv.contains("AddScanResult,192.0.2.30,\"QualysGuard\",,,,\"No open Qualys findings\""),
        "{csv}"
    );

    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().file("Output.csv", &csv);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        "-plugininfo=Output.csv".into(),
        "csv".into(),
    ]);
    test.run().assert_code(0);
    let map = fmc.stop();
    assert_eq!(
        results(&map, "192.0.2.30"),
        vec![(None, "No open Qualys findings".to_string())]
    );
}

/// A report in ISO-8859-1 keeps its accented letters (transliterated for the FMC); one
/// in an encoding the connector cannot decode is refused by name, exit code 3.
#[test]
fn declared_encodings_are_honoured_or_refused() {
    let doc = |encoding: &str| {
        report(&[("192.0.2.30", &[(38170, "Active")])])
            .replace("encoding=\"UTF-8\"", &format!("encoding=\"{encoding}\""))
            .replace("Title 38170", "Caf\u{e9}")
            .into_bytes()
            .into_iter()
            .flat_map(|b| {
                if b == 0xc3 {
                    None
                } else if b == 0xa9 {
                    Some(0xe9)
                } else {
                    Some(b)
                }
            })
            .collect::<Vec<u8>>()
    };
    let test = Test::new()
        .config("add_host: y\n")
        .file("report.xml", doc("ISO-8859-1"))
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    test.run().assert_code(0);
    let csv = test.read("Output.csv");
    assert!(csv.contains(",38170,443,6,\"Cafe\","), "{csv}");

    let test = Test::new()
        .config("add_host: y\n")
        .file("report.xml", doc("KOI8-R"))
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    test.run()
        .assert_code(3)
        .assert_output_contains("the report declares encoding=\"KOI8-R\", which cannot be read");
    assert!(!test.exists("Output.csv"), "nothing written");
}

/// Entities beyond the basic five are decoded in titles and THREAT alike, characters
/// with no ASCII form are counted in the log and the JSON summary, and so are hosts
/// cleared with the generic result.
#[test]
fn text_and_counts_reach_the_output_and_the_summary() {
    let doc = report(&[
        ("192.0.2.30", &[(38170, "Active")]),
        ("192.0.2.31", &[(82003, "Fixed")]),
    ])
    .replace(
        "<TITLE><![CDATA[Title 38170]]></TITLE><THREAT><![CDATA[Threat 38170.]]></THREAT>",
        "<TITLE><![CDATA[Caf&eacute; &frac12; \u{4e2d}\u{6587}]]></TITLE><THREAT><![CDATA[<p>Caf&eacute;&nbsp;&copy; \u{1F600}</p>]]></THREAT>",
    );
    let test = Test::new()
        .config("add_host: y\n")
        .file("report.xml", &doc)
        .args(&[
            "-report=report.xml",
            "-csvfile=Output.csv",
            "-summary-json=summary.json",
        ]);
    test.run()
        .assert_code(0)
        .assert_output_contains(
            "3 characters of glossary titles and descriptions have no ASCII transliteration",
        )
        .assert_output_contains("1 hosts had no open findings to send");
    let csv = test.read("Output.csv");
    assert!(
        csv.contains(",38170,443,6,\"Cafe 1/2\",\"Cafe (c)\","),
        "{csv}"
    );
    let summary: serde_json::Value = serde_json::from_str(&test.read("summary.json")).unwrap();
    let report = &summary["templates"][0]["report"];
    assert_eq!(report["untransliterated_characters"], 3, "{summary}");
    assert_eq!(report["hosts_cleared"], 1, "{summary}");
}

/// A QID on several ports without a PROTOCOL becomes one line, not one identical line a
/// port, with one warning for the host naming the QID.
#[test]
fn ports_without_a_protocol_are_one_result_and_one_warning() {
    let doc = report(&[(
        "192.0.2.30",
        &[(38170, "Active"), (38170, "Active"), (38170, "New")],
    )])
    .replacen("<PROTOCOL>tcp</PROTOCOL>", "", 2)
    .replacen("<PORT>443</PORT>", "<PORT>80</PORT>", 1);
    let test = Test::new()
        .config("add_host: y\n")
        .file("report.xml", &doc)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    let out = test.run();
    out.assert_code(0).assert_output_contains(
        "report: host 192.0.2.30: 2 findings on a port have no PROTOCOL tcp or udp (QID 38170): sent without a port, one result per QID",
    );
    assert_eq!(
        out.output().matches("no PROTOCOL tcp or udp").count(),
        1,
        "{}",
        out.output()
    );
    let csv = test.read("Output.csv");
    assert_eq!(csv.matches(",38170,,,").count(), 1, "{csv}");
    assert_eq!(csv.matches(",38170,443,6,").count(), 1, "{csv}");
}
