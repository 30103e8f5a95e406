//! Pipeline tests: report text in, exact command bytes out, through an in-memory sink.

use super::*;

/// Records what reaches it, and whether the delivery was completed.
#[derive(Default)]
struct Memory {
    bytes: Vec<u8>,
    blocks: Vec<(String, usize, usize)>,
    finished: bool,
}

impl CommandSink for Memory {
    fn preamble(&mut self, bytes: &[u8], _commands: usize) -> Result<(), SinkError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        self.bytes.extend_from_slice(block.bytes);
        self.blocks
            .push((block.ip.to_string(), block.commands, block.findings));
        Ok(())
    }
    fn finish(&mut self) -> Result<Delivery, SinkError> {
        self.finished = true;
        Ok(Delivery::default())
    }
}

fn settings() -> Settings {
    Settings {
        source: "QualysGuard".into(),
        commit: Commit::Flush,
        add_host: false,
        include_types: vec![FindingType::Vuln, FindingType::Practice],
        description_length: 512,
        ip_ranges: IpRanges::default(),
    }
}

const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<ASSET_DATA_REPORT>
<HOST_LIST>
<HOST><IP>192.0.2.10</IP><VULN_INFO_LIST>
<VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL><VULN_STATUS>Active</VULN_STATUS></VULN_INFO>
<VULN_INFO><QID>82003</QID><TYPE>Practice</TYPE><VULN_STATUS>New</VULN_STATUS></VULN_INFO>
<VULN_INFO><QID>6</QID><TYPE>Ig</TYPE></VULN_INFO>
<VULN_INFO><QID>90043</QID><TYPE>Vuln</TYPE><PORT>445</PORT><PROTOCOL>tcp</PROTOCOL><VULN_STATUS>Fixed</VULN_STATUS></VULN_INFO>
</VULN_INFO_LIST></HOST>
<HOST><IP>192.0.2.11</IP><VULN_INFO_LIST>
<VULN_INFO><QID>90043</QID><TYPE>Vuln</TYPE><PORT>445</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>
<VULN_INFO><QID>12345</QID><TYPE>Vuln</TYPE></VULN_INFO>
</VULN_INFO_LIST></HOST>
</HOST_LIST>
<GLOSSARY><VULN_DETAILS_LIST>
<VULN_DETAILS id="qid_38170"><QID>38170</QID><TITLE><![CDATA[SSL Certificate - Subject Common Name Does Not Match]]></TITLE><THREAT><![CDATA[<P>The certificate's common name does not match the host name.</P>]]></THREAT></VULN_DETAILS>
<VULN_DETAILS id="qid_82003"><QID>82003</QID><TITLE><![CDATA[ICMP Timestamp Request]]></TITLE><THREAT><![CDATA[The host answered an ICMP timestamp request.]]></THREAT><CVE_ID_LIST><CVE_ID><ID>CVE-1999-0524</ID></CVE_ID></CVE_ID_LIST></VULN_DETAILS>
<VULN_DETAILS id="qid_6"><QID>6</QID><TITLE><![CDATA[DNS Host Name]]></TITLE></VULN_DETAILS>
<VULN_DETAILS id="qid_90043"><QID>90043</QID><TITLE><![CDATA[SMB Signing Disabled, or "Not Required"]]></TITLE><THREAT><![CDATA[SMB signing is not required.]]></THREAT><BUGTRAQ_ID_LIST><BUGTRAQ_ID><ID>1</ID></BUGTRAQ_ID><BUGTRAQ_ID><ID>2</ID></BUGTRAQ_ID></BUGTRAQ_ID_LIST></VULN_DETAILS>
</VULN_DETAILS_LIST></GLOSSARY>
</ASSET_DATA_REPORT>
"#;

fn run_with(settings: &Settings, doc: &str) -> (Result<Summary, PipelineError>, Memory) {
    let mut sink = Memory::default();
    let result = run(doc.as_bytes(), settings, &mut sink);
    (result, sink)
}

#[test]
fn default_settings_give_the_spec_stream() {
    let (result, sink) = run_with(&settings(), REPORT);
    let summary = result.unwrap();
    let want = "SetSource,QualysGuard
AddScanResult,192.0.2.10,\"QualysGuard\",38170,443,6,\"SSL Certificate - Subject Common Name Does Not Match\",\"The certificate's common name does not match the host name.\",\"cve_ids: \",\"bugtraq_ids: \"
AddScanResult,192.0.2.10,\"QualysGuard\",82003,,,\"ICMP Timestamp Request\",\"The host answered an ICMP timestamp request.\",\"cve_ids: CVE-1999-0524\",\"bugtraq_ids: \"
ScanFlush
AddScanResult,192.0.2.11,\"QualysGuard\",90043,445,6,\"SMB Signing Disabled or 'Not Required'\",\"SMB signing is not required.\",\"cve_ids: \",\"bugtraq_ids: 1 2\"
AddScanResult,192.0.2.11,\"QualysGuard\",12345,,,\"\",\"\",\"cve_ids: \",\"bugtraq_ids: \"
ScanFlush
";
    assert_eq!(String::from_utf8(sink.bytes).unwrap(), want);
    assert!(sink.finished);
    assert_eq!(
        sink.blocks,
        vec![
            ("192.0.2.10".to_string(), 3, 2),
            ("192.0.2.11".to_string(), 3, 2)
        ]
    );
    assert_eq!(summary.findings_by_type, [4, 1, 1]);
    assert_eq!(summary.findings_fixed, 1);
    assert_eq!(summary.findings_excluded_type, 1);
    assert_eq!(summary.findings_selected, 4);
    assert_eq!(summary.qids_without_details, 1);
    assert_eq!(summary.hosts_in_range, 2);
    assert_eq!(summary.report.glossary_entries, 4);
}

#[test]
fn settings_change_the_stream() {
    struct Case {
        name: &'static str,
        change: fn(&mut Settings),
        lines: &'static [(&'static str, usize)],
    }
    let cases = [
        Case {
            name: "add_host",
            change: |s| s.add_host = true,
            lines: &[
                ("AddHost,192.0.2.10", 1),
                ("AddHost,", 2),
                ("AddScanResult,", 4),
            ],
        },
        Case {
            name: "Ig included",
            change: |s| s.include_types = FindingType::ALL.to_vec(),
            lines: &[("AddScanResult,", 5), (",6,,,\"DNS Host Name\"", 1)],
        },
        Case {
            name: "Vuln only",
            change: |s| s.include_types = vec![FindingType::Vuln],
            lines: &[("AddScanResult,", 3), ("82003", 0)],
        },
        Case {
            name: "update mode",
            change: |s| s.commit = Commit::Update,
            lines: &[("ScanUpdate", 2), ("ScanFlush", 0)],
        },
        Case {
            name: "ip_ranges keeps one host",
            change: |s| s.ip_ranges = IpRanges::parse("192.0.2.11").unwrap(),
            lines: &[
                ("AddScanResult,192.0.2.11", 2),
                ("192.0.2.10", 0),
                ("ScanFlush", 1),
            ],
        },
        Case {
            name: "ip_ranges keeps none",
            change: |s| s.ip_ranges = IpRanges::parse("10.0.0.0/8").unwrap(),
            lines: &[("SetSource,QualysGuard", 1), ("ScanFlush", 0)],
        },
        Case {
            name: "another source name",
            change: |s| s.source = "Qualys EU".into(),
            lines: &[("SetSource,Qualys EU", 1), ("\"Qualys EU\",38170", 1)],
        },
        Case {
            name: "short descriptions",
            change: |s| s.description_length = 10,
            lines: &[(",\"The cer...\",", 1), (",\"SMB sig...\",", 1)],
        },
    ];
    for case in cases {
        let mut s = settings();
        (case.change)(&mut s);
        let (result, sink) = run_with(&s, REPORT);
        result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let text = String::from_utf8(sink.bytes).unwrap();
        for (needle, count) in case.lines {
            let got = text.lines().filter(|l| l.contains(needle)).count();
            assert_eq!(
                got, *count,
                "{}: lines with {needle:?} in\n{text}",
                case.name
            );
        }
    }
}

#[test]
fn glossary_first_gives_the_same_stream() {
    let start = REPORT.find("<GLOSSARY>").unwrap();
    let end = REPORT.find("</GLOSSARY>").unwrap() + "</GLOSSARY>".len();
    let glossary = &REPORT[start..end];
    let moved = REPORT
        .replace(glossary, "")
        .replace("<HOST_LIST>", &format!("{glossary}\n<HOST_LIST>"));
    let (a, first) = run_with(&settings(), REPORT);
    let (b, second) = run_with(&settings(), &moved);
    a.unwrap();
    b.unwrap();
    assert_eq!(first.bytes, second.bytes);
}

#[test]
fn a_truncated_report_reaches_no_sink() {
    let cut = &REPORT[..REPORT.find("<GLOSSARY>").unwrap()];
    let (result, sink) = run_with(&settings(), cut);
    assert!(matches!(
        result,
        Err(PipelineError::Report(ReportError::Incomplete { .. }))
    ));
    assert!(sink.bytes.is_empty(), "nothing written");
    assert!(!sink.finished);
}

#[test]
fn a_host_listed_twice_keeps_both_sets_of_findings() {
    let doc = REPORT.replace(
        "</HOST_LIST>",
        "<HOST><IP>192.0.2.10</IP><VULN_INFO_LIST><VULN_INFO><QID>90043</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST>",
    );
    let (result, sink) = run_with(&settings(), &doc);
    let summary = result.unwrap();
    assert_eq!(summary.repeated_hosts, 1);
    let text = String::from_utf8(sink.bytes).unwrap();
    let blocks: Vec<&str> = text.split_inclusive("Scan").collect();
    assert!(text.ends_with("AddScanResult,192.0.2.10,\"QualysGuard\",90043,,,\"SMB Signing Disabled or 'Not Required'\",\"SMB signing is not required.\",\"cve_ids: \",\"bugtraq_ids: 1 2\"\nScanUpdate\n"), "{text}");
    assert_eq!(text.matches("ScanFlush").count(), 2, "{blocks:?}");
}

/// The command lines of each listing of a host with nothing to send, in order: a
/// generic result and ScanFlush replace what the FMC held, unless the listing merges.
#[test]
fn hosts_with_nothing_open_are_cleared() {
    let fixed = "<HOST><IP>192.0.2.20</IP><VULN_INFO_LIST><VULN_INFO><QID>90043</QID><TYPE>Vuln</TYPE><VULN_STATUS>Fixed</VULN_STATUS></VULN_INFO></VULN_INFO_LIST></HOST>";
    let ig_only = "<HOST><IP>192.0.2.20</IP><VULN_INFO_LIST><VULN_INFO><QID>6</QID><TYPE>Ig</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>";
    let open = "<HOST><IP>192.0.2.20</IP><VULN_INFO_LIST><VULN_INFO><QID>90043</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>";
    let generic = "AddScanResult,192.0.2.20,\"QualysGuard\",,,,\"No open Qualys findings\",\"The latest Qualys report lists no open finding of the types sent on this host.\",\"cve_ids: \",\"bugtraq_ids: \"";
    let finding = "AddScanResult,192.0.2.20,\"QualysGuard\",90043,,,";
    // Name, the host's listings, the scan mode, the lines sent, hosts cleared.
    type Case<'a> = (&'a str, Vec<&'a str>, Commit, Vec<&'a str>, u64);
    let cases: [Case<'_>; 6] = [
        (
            "all fixed",
            vec![fixed],
            Commit::Flush,
            vec![generic, "ScanFlush"],
            1,
        ),
        (
            "all filtered out",
            vec![ig_only],
            Commit::Flush,
            vec![generic, "ScanFlush"],
            1,
        ),
        (
            "update mode merges nothing",
            vec![fixed],
            Commit::Update,
            vec!["ScanUpdate"],
            0,
        ),
        (
            "a later empty listing keeps the earlier findings",
            vec![open, fixed],
            Commit::Flush,
            vec![finding, "ScanFlush", "ScanUpdate"],
            0,
        ),
        (
            "a later listing with findings replaces the generic result",
            vec![fixed, open],
            Commit::Flush,
            vec![generic, "ScanFlush", finding, "ScanFlush"],
            1,
        ),
        (
            "and the one after it merges",
            vec![fixed, open, open],
            Commit::Flush,
            vec![
                generic,
                "ScanFlush",
                finding,
                "ScanFlush",
                finding,
                "ScanUpdate",
            ],
            1,
        ),
    ];
    for (name, listings, commit, want, cleared) in cases {
        let doc = REPORT.replace(
            "</HOST_LIST>",
            &format!("{}</HOST_LIST>", listings.concat()),
        );
        let mut s = settings();
        s.commit = commit;
        s.ip_ranges = IpRanges::parse("192.0.2.20").unwrap();
        let (result, sink) = run_with(&s, &doc);
        let summary = result.unwrap();
        let text = String::from_utf8(sink.bytes).unwrap();
        let got: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(got.len(), want.len(), "{name}:\n{text}");
        for (line, want) in got.iter().zip(&want) {
            assert!(
                line.starts_with(want),
                "{name}: {line:?} is not {want:?}\n{text}"
            );
        }
        assert_eq!(summary.hosts_cleared, cleared, "{name}");
    }
}

/// The page-by-page stream (the detection path) writes the same lines as the report path
/// for the same hosts and details, merging a second record of an address.
#[test]
fn the_stream_writes_what_the_report_path_writes() {
    let (result, report_sink) = run_with(&settings(), REPORT);
    result.unwrap();
    // The same hosts and glossary, as the detection path would hand them over.
    struct Keep(Vec<Host>, Vec<(u32, VulnDetails)>);
    impl ReportVisitor for Keep {
        fn host(&mut self, host: &Host) -> io::Result<()> {
            self.0.push(host.clone());
            Ok(())
        }
        fn vuln_details(&mut self, qid: u32, details: VulnDetails) {
            self.1.push((qid, details));
        }
    }
    let mut keep = Keep(Vec::new(), Vec::new());
    report::parse(
        REPORT.as_bytes(),
        ParseOptions {
            description_length: 512,
        },
        &mut keep,
    )
    .unwrap();
    let s = settings();
    let mut sink = Memory::default();
    let mut stream = Stream::start(&s, &mut sink).unwrap();
    for (qid, details) in keep.1 {
        assert!(!stream.knows(qid));
        stream.add_details(qid, details);
        assert!(stream.knows(qid));
    }
    for host in &keep.0 {
        assert_eq!(stream.host(host, false, &mut sink).unwrap(), Sent::Findings);
    }
    let summary = stream.finish(&mut sink).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sink.bytes),
        String::from_utf8_lossy(&report_sink.bytes)
    );
    assert_eq!(summary.findings_selected, 4);
    assert_eq!(summary.qids_without_details, 1);
    // A second record of an address with findings merges; out of range is not sent.
    let mut s2 = settings();
    s2.ip_ranges = IpRanges::parse("192.0.2.10").unwrap();
    let mut sink = Memory::default();
    let mut stream = Stream::start(&s2, &mut sink).unwrap();
    assert_eq!(
        stream.host(&keep.0[0], false, &mut sink).unwrap(),
        Sent::Findings
    );
    assert_eq!(
        stream.host(&keep.0[0], true, &mut sink).unwrap(),
        Sent::Findings
    );
    assert_eq!(
        stream.host(&keep.0[1], false, &mut sink).unwrap(),
        Sent::OutOfRange
    );
    let text = String::from_utf8_lossy(&sink.bytes).into_owned();
    assert_eq!(text.matches("ScanFlush").count(), 1, "{text}");
    assert_eq!(text.matches("ScanUpdate").count(), 1, "{text}");
    // A record with nothing open sends the generic result.
    let empty = Host {
        ip: "192.0.2.10".parse().unwrap(),
        findings: Vec::new(),
    };
    assert_eq!(
        stream.host(&empty, false, &mut sink).unwrap(),
        Sent::Nothing
    );
}
