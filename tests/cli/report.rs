//! Report quirks at the binary level: each tolerated quirk exits 0 with the right output
//! and log line; each rejected document exits 3 with its message and writes no file.

use crate::harness::{Test, count_lines};

const HOST: &str = "<HOST><IP>192.0.2.10</IP><VULN_INFO_LIST>\
<VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>\
<VULN_INFO><QID>82003</QID><TYPE>Practice</TYPE></VULN_INFO>\
</VULN_INFO_LIST></HOST>";

const GLOSSARY: &str = "<GLOSSARY><VULN_DETAILS_LIST>\
<VULN_DETAILS id=\"qid_38170\"><QID>38170</QID><TITLE><![CDATA[SSL Certificate]]></TITLE></VULN_DETAILS>\
<VULN_DETAILS id=\"qid_82003\"><QID>82003</QID><TITLE><![CDATA[ICMP Timestamp Request]]></TITLE></VULN_DETAILS>\
</VULN_DETAILS_LIST></GLOSSARY>";

fn wrap(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE ASSET_DATA_REPORT SYSTEM \"https://qualysguard.qualys.com/asset_data_report.dtd\">\n<ASSET_DATA_REPORT>\n{body}\n</ASSET_DATA_REPORT>\n"
    )
}

fn run_report(doc: impl AsRef<[u8]>) -> (Test, crate::harness::Outcome) {
    let t = Test::new()
        .config("add_host: n\n")
        .file("report.xml", doc)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    let out = t.run();
    (t, out)
}

#[test]
fn tolerated_quirks() {
    let standard = wrap(&format!("<HOST_LIST>{HOST}</HOST_LIST>{GLOSSARY}"));
    let mut latin1 = standard.clone().into_bytes();
    let at = latin1.windows(4).position(|w| w == b"ICMP").unwrap();
    latin1.splice(at..at, b"Caf\xe9 ".iter().copied());
    // (name, document, AddScanResult lines, ScanFlush lines, a log line to expect)
    let cases: Vec<(&str, Vec<u8>, usize, usize, &str)> = vec![
        (
            "comments everywhere",
            format!("<!-- a -->{}<!-- z //-->", standard.replace("<HOST_LIST>", "<!-- b --><HOST_LIST><!-- c -->")).into_bytes(),
            2,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "CDATA with whitespace around it",
            standard
                .replace("<IP>192.0.2.10</IP>", "<IP>\n  <![CDATA[192.0.2.10]]>\n  </IP>")
                .into_bytes(),
            2,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "no XML declaration",
            standard.replace("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n", "").into_bytes(),
            2,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "external DOCTYPE never fetched",
            standard
                .replace("https://qualysguard.qualys.com/asset_data_report.dtd", "http://127.0.0.1:9/never.dtd")
                .into_bytes(),
            2,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "HOST holding only an ERROR",
            wrap(&format!(
                "<HOST_LIST><HOST><ERROR number=\"1\"><![CDATA[No data]]></ERROR></HOST>{HOST}</HOST_LIST>{GLOSSARY}"
            ))
            .into_bytes(),
            2,
            1,
            "Qualys reported an error instead of data, host skipped: No data",
        ),
        (
            "missing optional elements",
            wrap("<HOST_LIST><HOST><IP>192.0.2.11</IP><VULN_INFO_LIST><VULN_INFO><QID>1</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST>").into_bytes(),
            1,
            1,
            "QID 1 (on host 192.0.2.11) is not in the report's glossary: sent without a title",
        ),
        (
            "empty report",
            wrap("").into_bytes(),
            0,
            0,
            "report: 0 hosts",
        ),
        (
            "same QID on several ports",
            wrap(&format!(
                "<HOST_LIST>{}</HOST_LIST>{GLOSSARY}",
                HOST.replace(
                    "<VULN_INFO><QID>82003",
                    "<VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>8443</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO><VULN_INFO><QID>82003"
                )
            ))
            .into_bytes(),
            3,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "glossary before the host list",
            wrap(&format!("{GLOSSARY}<HOST_LIST>{HOST}</HOST_LIST>")).into_bytes(),
            2,
            1,
            "QualysGuard Report Processing Complete",
        ),
        (
            "invalid UTF-8",
            latin1,
            2,
            1,
            "1 invalid UTF-8 sequences were replaced",
        ),
    ];
    for (name, doc, results, flushes, log) in cases {
        let (t, out) = run_report(&doc);
        assert_eq!(out.code, 0, "{name}: {}", out.output());
        assert!(
            out.output().contains(log),
            "{name}: lacks {log:?}: {}",
            out.output()
        );
        let csv = t.read("Output.csv");
        assert_eq!(
            count_lines(&csv, "AddScanResult,"),
            results,
            "{name}: {csv}"
        );
        assert_eq!(count_lines(&csv, "ScanFlush"), flushes, "{name}");
        assert!(csv.is_ascii(), "{name}");
    }
}

#[test]
fn rejected_documents_exit_3_and_write_nothing() {
    let standard = wrap(&format!("<HOST_LIST>{HOST}</HOST_LIST>{GLOSSARY}"));
    let truncated = standard[..standard.find("<GLOSSARY>").unwrap() + 30].to_string();
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "SIMPLE_RETURN bad login",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<SIMPLE_RETURN>\n  <RESPONSE>\n    <DATETIME>2010-01-01T12:00:00Z</DATETIME>\n    <CODE>2010</CODE>\n    <TEXT>Bad Login/Password</TEXT>\n  </RESPONSE>\n</SIMPLE_RETURN>\n".into(),
            &["SIMPLE_RETURN CODE 2010: Bad Login/Password", "single quotes"],
        ),
        (
            "SIMPLE_RETURN invalid template, no declaration",
            "<SIMPLE_RETURN><RESPONSE><DATETIME>2010-01-01T12:00:00Z</DATETIME><CODE>999</CODE><TEXT>Internal error. Please contact customer support.</TEXT><ITEM_LIST><ITEM><KEY>Incident Signature</KEY><VALUE>Tried to launch invalid report.</VALUE></ITEM></ITEM_LIST></RESPONSE></SIMPLE_RETURN>".into(),
            &["CODE 999", "Tried to launch invalid report.", "check template_id"],
        ),
        (
            "GENERIC_RETURN",
            "<GENERIC_RETURN><RETURN status=\"FAILED\" number=\"2007\">IP not in secure list</RETURN></GENERIC_RETURN>".into(),
            &["GENERIC_RETURN CODE 2007: IP not in secure list", "secure IP list"],
        ),
        (
            "SCAN",
            "<SCAN value=\"scan/1\"><IP value=\"192.0.2.1\"/></SCAN>".into(),
            &["report.xml: unsupported document: SCAN is a v1 scan report"],
        ),
        (
            "HOST_LIST_VM_DETECTION_OUTPUT",
            "<HOST_LIST_VM_DETECTION_OUTPUT/>".into(),
            &["unsupported document: HOST_LIST_VM_DETECTION_OUTPUT"],
        ),
        (
            "KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
            "<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE/></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>".into(),
            &["unsupported document: KNOWLEDGE_BASE_VULN_LIST_OUTPUT"],
        ),
        (
            "another XML document",
            "<rss><channel/></rss>".into(),
            &["the root element is <rss>, expected <ASSET_DATA_REPORT>"],
        ),
        (
            "truncated",
            truncated,
            &["report.xml:", "the report is incomplete", "nothing was written or sent"],
        ),
        (
            "malformed",
            wrap("<HOST_LIST><HOST></HOST_LIST>"),
            &["report.xml:4:18: malformed XML at byte 168", "expected `</HOST>`"],
        ),
        ("empty file", String::new(), &["the report is empty"]),
    ];
    for (name, doc, wants) in cases {
        let (t, out) = run_report(&doc);
        assert_eq!(out.code, 3, "{name}: {}", out.output());
        for want in wants {
            assert!(
                out.output().contains(want),
                "{name}: lacks {want:?}: {}",
                out.output()
            );
        }
        assert!(!t.exists("Output.csv"), "{name}: no output file");
        assert_eq!(
            t.files(),
            vec!["InputPlugins", "report.xml"],
            "{name}: no leftovers"
        );
    }
}

#[test]
fn missing_report_file_exits_3() {
    Test::new()
        .config("")
        .args(&["-report=nope.xml", "-c=Output.csv"])
        .run()
        .assert_code(3)
        .assert_output_contains("cannot open report nope.xml");
}
