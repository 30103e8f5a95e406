//! Parser tests: each tolerated quirk and each rejected document kind of qualys.md §5,
//! on small documents written from the spec.

use super::*;
use crate::model::{FindingType, Protocol, VulnStatus};

#[derive(Default)]
struct Collected {
    hosts: Vec<Host>,
    glossary: Vec<(u32, VulnDetails)>,
}

impl ReportVisitor for Collected {
    fn host(&mut self, host: &Host) -> io::Result<()> {
        self.hosts.push(host.clone());
        Ok(())
    }
    fn vuln_details(&mut self, qid: u32, details: VulnDetails) {
        self.glossary.push((qid, details));
    }
}

fn parse_str(doc: &str) -> Result<(Collected, ReportStats), ReportError> {
    parse_bytes(doc.as_bytes())
}

fn parse_bytes(doc: &[u8]) -> Result<(Collected, ReportStats), ReportError> {
    let mut c = Collected::default();
    let stats = parse(
        doc,
        ParseOptions {
            description_length: 512,
        },
        &mut c,
    )?;
    Ok((c, stats))
}

const HOST_A: &str = r#"<HOST><IP network_id="0">192.0.2.10</IP><TRACKING_METHOD>IP</TRACKING_METHOD>
<DNS><![CDATA[a.example]]></DNS>
<VULN_INFO_LIST>
<VULN_INFO><QID id="qid_38170">38170</QID><TYPE>Vuln</TYPE><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL><SSL>true</SSL>
<RESULT format="table"><![CDATA[a	b
c	d]]></RESULT><VULN_STATUS>Active</VULN_STATUS></VULN_INFO>
<VULN_INFO><QID id="qid_82003">82003</QID><TYPE>Practice</TYPE><VULN_STATUS>New</VULN_STATUS></VULN_INFO>
</VULN_INFO_LIST></HOST>"#;

const GLOSSARY: &str = r#"<GLOSSARY><VULN_DETAILS_LIST>
<VULN_DETAILS id="qid_38170"><QID id="qid_38170">38170</QID><TITLE><![CDATA[SSL Certificate - Subject Common Name Does Not Match]]></TITLE>
<SEVERITY>2</SEVERITY><THREAT><![CDATA[<P>The certificate's <B>common name</B> does not match.]]></THREAT>
<CVE_ID_LIST/><BUGTRAQ_ID_LIST/></VULN_DETAILS>
<VULN_DETAILS id="qid_82003"><QID id="qid_82003">82003</QID><TITLE><![CDATA[ICMP Timestamp Request]]></TITLE>
<THREAT><![CDATA[ICMP &amp; timestamps]]></THREAT>
<CVE_ID_LIST><CVE_ID><ID><![CDATA[CVE-1999-0524]]></ID><URL><![CDATA[http://x]]></URL></CVE_ID></CVE_ID_LIST>
<BUGTRAQ_ID_LIST><BUGTRAQ_ID><ID><![CDATA[66690]]></ID></BUGTRAQ_ID></BUGTRAQ_ID_LIST></VULN_DETAILS>
</VULN_DETAILS_LIST></GLOSSARY>"#;

fn report(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE ASSET_DATA_REPORT SYSTEM \"https://qualysguard.example/asset_data_report.dtd\">\n<ASSET_DATA_REPORT>\n<HEADER><COMPANY><![CDATA[X]]></COMPANY></HEADER>\n{body}\n</ASSET_DATA_REPORT>\n"
    )
}

fn standard() -> String {
    report(&format!("<HOST_LIST>{HOST_A}</HOST_LIST>{GLOSSARY}"))
}

#[test]
fn standard_report() {
    let (c, stats) = parse_str(&standard()).unwrap();
    assert_eq!(c.hosts.len(), 1);
    let h = &c.hosts[0];
    assert_eq!(h.ip.to_string(), "192.0.2.10");
    assert_eq!(
        h.findings,
        vec![
            Finding {
                qid: 38170,
                kind: FindingType::Vuln,
                port: Some(443),
                protocol: Some(Protocol::Tcp),
                status: VulnStatus::Active,
            },
            Finding {
                qid: 82003,
                kind: FindingType::Practice,
                port: None,
                protocol: None,
                status: VulnStatus::New,
            },
        ]
    );
    assert_eq!(c.glossary.len(), 2);
    let (qid, d) = &c.glossary[0];
    assert_eq!(*qid, 38170);
    assert_eq!(
        d.title,
        "SSL Certificate - Subject Common Name Does Not Match"
    );
    assert_eq!(
        d.description,
        "The certificate's common name does not match."
    );
    assert!(d.cve_ids.is_empty());
    let (qid, d) = &c.glossary[1];
    assert_eq!(*qid, 82003);
    assert_eq!(d.description, "ICMP & timestamps");
    assert_eq!(d.cve_ids, vec!["CVE-1999-0524"]);
    assert_eq!(d.bugtraq_ids, vec!["66690"]);
    assert_eq!(stats.hosts, 1);
    assert_eq!(stats.glossary_entries, 2);
    assert_eq!(stats.replaced_utf8, 0);
    assert_eq!(stats.bytes, standard().len() as u64);
}

/// Each tolerated quirk of qualys.md §5, with what must come out of it.
#[test]
fn tolerated_quirks() {
    struct Case {
        name: &'static str,
        doc: String,
        hosts: usize,
        findings: usize,
        glossary: usize,
        check: fn(&Collected, &ReportStats),
    }
    let noop: fn(&Collected, &ReportStats) = |_, _| {};
    let cases = vec![
        Case {
            name: "comments before, inside and after the root",
            doc: format!(
                "<!-- before -->\n{}<!-- after //-->\n",
                report(&format!(
                    "<!-- keep-alive -->\n<HOST_LIST><!-- in list -->{}</HOST_LIST>{GLOSSARY}",
                    HOST_A.replace("<TYPE>Vuln</TYPE>", "<TYPE><!-- c -->Vuln</TYPE>")
                ))
            ),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: |c, _| assert_eq!(c.hosts[0].findings[0].kind, FindingType::Vuln),
        },
        Case {
            name: "CDATA wrapped in whitespace",
            doc: report(&format!(
                "<HOST_LIST>{}</HOST_LIST>{}",
                HOST_A.replace(
                    "<IP network_id=\"0\">192.0.2.10</IP>",
                    "<IP>\n   <![CDATA[192.0.2.10]]>\n   </IP>"
                ),
                GLOSSARY.replace(
                    "<TITLE><![CDATA[ICMP Timestamp Request]]></TITLE>",
                    "<TITLE>\n      <![CDATA[ICMP Timestamp Request]]>\n    </TITLE>"
                )
            )),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: |c, _| {
                assert_eq!(c.hosts[0].ip.to_string(), "192.0.2.10");
                assert_eq!(c.glossary[1].1.title, "ICMP Timestamp Request");
            },
        },
        Case {
            name: "no XML declaration and no DOCTYPE",
            doc: format!(
                "<ASSET_DATA_REPORT><HOST_LIST>{HOST_A}</HOST_LIST>{GLOSSARY}</ASSET_DATA_REPORT>"
            ),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: noop,
        },
        Case {
            name: "DOCTYPE with an internal subset: entities are not expanded",
            doc: format!(
                "<?xml version=\"1.0\"?>\n<!DOCTYPE ASSET_DATA_REPORT [<!ENTITY xxe SYSTEM \"file:///etc/passwd\"><!ENTITY lol \"lollollol\">]>\n<ASSET_DATA_REPORT><HOST_LIST>{HOST_A}</HOST_LIST>{}</ASSET_DATA_REPORT>",
                GLOSSARY.replace("ICMP &amp; timestamps", "&xxe; &lol;")
            ),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: |c, stats| {
                assert_eq!(c.glossary[1].1.title, "ICMP Timestamp Request");
                // Inside CDATA the references are plain text; the HTML step keeps
                // unknown entities as written.
                assert!(!c.glossary[1].1.description.contains("root:"));
                assert_eq!(stats.unexpanded_entities, 0);
            },
        },
        Case {
            name: "entity references outside CDATA stay unexpanded and counted",
            doc: format!(
                "<!DOCTYPE ASSET_DATA_REPORT [<!ENTITY a \"AAAAAAAAAA\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n<ASSET_DATA_REPORT><HOST_LIST>{HOST_A}</HOST_LIST>{}</ASSET_DATA_REPORT>",
                GLOSSARY.replace(
                    "<TITLE><![CDATA[ICMP Timestamp Request]]></TITLE>",
                    "<TITLE>ICMP &b; &lt;x&gt; &#65;</TITLE>"
                )
            ),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: |c, stats| {
                assert_eq!(c.glossary[1].1.title, "ICMP &b; <x> A");
                assert_eq!(stats.unexpanded_entities, 1);
            },
        },
        Case {
            name: "a HOST holding only an ERROR is skipped",
            doc: report(&format!(
                "<HOST_LIST><HOST><ERROR number=\"1\"><![CDATA[Host data unavailable]]></ERROR></HOST>{HOST_A}</HOST_LIST>{GLOSSARY}"
            )),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: |_, stats| {
                assert_eq!(stats.hosts, 2);
                assert_eq!(stats.host_errors, 1);
            },
        },
        Case {
            name: "missing optional elements",
            doc: report(
                "<HOST_LIST><HOST><IP>192.0.2.20</IP><VULN_INFO_LIST><VULN_INFO><QID>6</QID><TYPE>Ig</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>\
                 <HOST><IP>192.0.2.21</IP></HOST></HOST_LIST>\
                 <GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id=\"qid_6\"><QID>6</QID></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY>",
            ),
            hosts: 2,
            findings: 1,
            glossary: 1,
            check: |c, _| {
                assert_eq!(c.hosts[0].findings[0].status, VulnStatus::Unknown);
                assert_eq!(c.hosts[0].findings[0].port, None);
                assert!(c.hosts[1].findings.is_empty());
                assert_eq!(c.glossary[0].1, VulnDetails::default());
            },
        },
        Case {
            name: "an empty report (no HOST_LIST, no GLOSSARY)",
            doc: report("<APPENDICES><TEMPLATE_DETAILS/></APPENDICES>"),
            hosts: 0,
            findings: 0,
            glossary: 0,
            check: noop,
        },
        Case {
            name: "a self-closed empty report",
            doc: "<?xml version=\"1.0\"?><ASSET_DATA_REPORT/>".into(),
            hosts: 0,
            findings: 0,
            glossary: 0,
            check: noop,
        },
        Case {
            name: "the same QID on several ports is several findings",
            doc: report(
                "<HOST_LIST><HOST><IP>192.0.2.30</IP><VULN_INFO_LIST>\
                 <VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>\
                 <VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>8443</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>\
                 <VULN_INFO><QID>38170</QID><TYPE>Vuln</TYPE><PORT>53</PORT><PROTOCOL>UDP</PROTOCOL></VULN_INFO>\
                 </VULN_INFO_LIST></HOST></HOST_LIST>",
            ),
            hosts: 1,
            findings: 3,
            glossary: 0,
            check: |c, _| {
                let ports: Vec<_> = c.hosts[0]
                    .findings
                    .iter()
                    .map(|f| (f.port, f.protocol))
                    .collect();
                assert_eq!(
                    ports,
                    vec![
                        (Some(443), Some(Protocol::Tcp)),
                        (Some(8443), Some(Protocol::Tcp)),
                        (Some(53), Some(Protocol::Udp))
                    ]
                );
            },
        },
        Case {
            name: "GLOSSARY before HOST_LIST",
            doc: report(&format!("{GLOSSARY}<HOST_LIST>{HOST_A}</HOST_LIST>")),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: noop,
        },
        Case {
            name: "IPv6 hosts: a literal, and the v6 attribute",
            doc: report(
                "<HOST_LIST><HOST><IP>2001:db8::10</IP><VULN_INFO_LIST><VULN_INFO><QID>1</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>\
                 <HOST><IP v6=\"2001:db8::11\"></IP><VULN_INFO_LIST><VULN_INFO><QID>2</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>\
                 <HOST><IP v6=\"2001:db8::12\">192.0.2.12</IP></HOST></HOST_LIST>",
            ),
            hosts: 3,
            findings: 2,
            glossary: 0,
            check: |c, _| {
                let ips: Vec<String> = c.hosts.iter().map(|h| h.ip.to_string()).collect();
                assert_eq!(ips, vec!["2001:db8::10", "2001:db8::11", "192.0.2.12"]);
            },
        },
        Case {
            name: "invalid UTF-8 is replaced and counted",
            doc: String::new(),
            hosts: 1,
            findings: 2,
            glossary: 2,
            check: noop,
        },
        Case {
            name: "unreadable fields skip the finding or host, with the rest kept",
            doc: report(
                "<HOST_LIST><HOST><IP>192.0.2.40</IP><VULN_INFO_LIST>\
                 <VULN_INFO><QID>abc</QID><TYPE>Vuln</TYPE></VULN_INFO>\
                 <VULN_INFO><QID>5</QID><TYPE>Vuln</TYPE><PORT>70000</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>\
                 <VULN_INFO><QID>6</QID><TYPE>Bogus</TYPE></VULN_INFO>\
                 <VULN_INFO><QID>7</QID><TYPE>Vuln</TYPE><PORT>0</PORT><PROTOCOL>tcp</PROTOCOL></VULN_INFO>\
                 <VULN_INFO><QID>8</QID><TYPE>Vuln</TYPE><PORT>22</PORT><PROTOCOL>icmp</PROTOCOL></VULN_INFO>\
                 <VULN_INFO><QID>9</QID><TYPE>Vuln</TYPE><VULN_STATUS>Fixed</VULN_STATUS></VULN_INFO>\
                 </VULN_INFO_LIST></HOST>\
                 <HOST><IP>not-an-ip</IP><VULN_INFO_LIST><VULN_INFO><QID>1</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST>\
                 <HOST><IP>999.1.1.1</IP></HOST><HOST><DNS>x</DNS></HOST></HOST_LIST>",
            ),
            hosts: 1,
            findings: 2,
            glossary: 0,
            check: |c, stats| {
                assert_eq!(stats.bad_findings, 4);
                assert_eq!(stats.bad_hosts, 3);
                let f = &c.hosts[0].findings;
                assert_eq!((f[0].qid, f[0].port, f[0].protocol), (8, None, None));
                assert_eq!((f[1].qid, f[1].status), (9, VulnStatus::Fixed));
            },
        },
    ];
    for mut case in cases {
        let bytes = if case.name.starts_with("invalid UTF-8") {
            let mut doc = standard().into_bytes();
            // Latin-1 bytes in a title and a stray byte in a comment.
            let at = doc.windows(8).position(|w| w == b"ICMP Tim").unwrap();
            doc.splice(at..at, b"Caf\xe9 \xff".iter().copied());
            doc.splice(0..0, b"<!-- \xfe -->".iter().copied());
            doc
        } else {
            std::mem::take(&mut case.doc).into_bytes()
        };
        let (c, stats) = parse_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(c.hosts.len(), case.hosts, "{}: hosts", case.name);
        let findings: usize = c.hosts.iter().map(|h| h.findings.len()).sum();
        assert_eq!(findings, case.findings, "{}: findings", case.name);
        assert_eq!(c.glossary.len(), case.glossary, "{}: glossary", case.name);
        if case.name.starts_with("invalid UTF-8") {
            assert_eq!(stats.replaced_utf8, 3);
            assert_eq!(
                c.glossary[1].1.title,
                "Caf\u{FFFD} \u{FFFD}ICMP Timestamp Request"
            );
        }
        (case.check)(&c, &stats);
    }
}

/// Each rejected document kind, with the message it must produce.
#[test]
fn rejected_documents() {
    let simple_return = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE SIMPLE_RETURN SYSTEM \"https://qualysapi.qualys.com/api/2.0/simple_return.dtd\">\n<SIMPLE_RETURN>\n  <RESPONSE>\n    <DATETIME>2010-01-01T12:00:00Z</DATETIME>\n    <CODE>2010</CODE>\n    <TEXT>Bad Login/Password</TEXT>\n  </RESPONSE>\n</SIMPLE_RETURN>\n";
    let invalid_template = "<SIMPLE_RETURN><RESPONSE><DATETIME>2010-01-01T12:00:00Z</DATETIME><CODE>999</CODE><TEXT>Internal error. Please contact customer\n      support.</TEXT><ITEM_LIST><ITEM><KEY>Incident Signature</KEY><VALUE>Tried to launch invalid report.</VALUE></ITEM></ITEM_LIST></RESPONSE></SIMPLE_RETURN>";
    let generic = "<?xml version=\"1.0\"?><GENERIC_RETURN><API name=\"asset_data_report.php\" username=\"u\" at=\"2020-01-01\"/><RETURN status=\"FAILED\" number=\"2003\">Registration failed</RETURN></GENERIC_RETURN>";
    let full = standard();
    let cut_in_host = &full[..full.find("<VULN_STATUS>Active").unwrap() + 5];
    let cut_in_glossary = &full[..full.find("ICMP Timestamp").unwrap()];
    let cut_before_end = &full[..full.find("</ASSET_DATA_REPORT>").unwrap()];
    let cut_in_end_tag = &full[..full.find("</ASSET_DATA_REPORT>").unwrap() + 8];
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "SIMPLE_RETURN 2010",
            simple_return.into(),
            "Qualys returned an error instead of a report: SIMPLE_RETURN CODE 2010: Bad Login/Password",
        ),
        (
            "SIMPLE_RETURN 999 without declaration",
            invalid_template.into(),
            "SIMPLE_RETURN CODE 999: Internal error. Please contact customer support. (Tried to launch invalid report.)",
        ),
        (
            "GENERIC_RETURN",
            generic.into(),
            "GENERIC_RETURN CODE 2003: Registration failed",
        ),
        (
            "SCAN",
            "<?xml version=\"1.0\"?><SCAN value=\"scan/1\"><IP value=\"1.2.3.4\"/></SCAN>".into(),
            "unsupported document: SCAN is a v1 scan report, not an ASSET_DATA_REPORT",
        ),
        (
            "HOST_LIST_VM_DETECTION_OUTPUT",
            "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE/></HOST_LIST_VM_DETECTION_OUTPUT>".into(),
            "unsupported document: HOST_LIST_VM_DETECTION_OUTPUT is a host detection list",
        ),
        (
            "KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
            "<KNOWLEDGE_BASE_VULN_LIST_OUTPUT/>".into(),
            "unsupported document: KNOWLEDGE_BASE_VULN_LIST_OUTPUT is a KnowledgeBase listing",
        ),
        (
            "a success reply",
            "<SIMPLE_RETURN><RESPONSE><TEXT>New report launched</TEXT><ITEM_LIST><ITEM><KEY>ID</KEY><VALUE>4242</VALUE></ITEM></ITEM_LIST></RESPONSE></SIMPLE_RETURN>".into(),
            "a Qualys API reply, not a report: SIMPLE_RETURN: New report launched (4242); the connector needs the ASSET_DATA_REPORT",
        ),
        (
            "SCAN ERROR",
            "<SCAN value=\"scan/1\"><ERROR number=\"19001\">Scan\n not found</ERROR></SCAN>".into(),
            "Qualys returned an error instead of a report: SCAN ERROR 19001: Scan not found",
        ),
        (
            "SCAN with an ERROR after other content",
            "<SCAN><HEADER/><ERROR number=\"1\">x</ERROR></SCAN>".into(),
            "SCAN is a v1 scan report",
        ),
        ("an empty SCAN", "<SCAN/>".into(), "SCAN is a v1 scan report"),
        (
            "WAS",
            "<WAS_WEBAPP_REPORT><HEADER/></WAS_WEBAPP_REPORT>".into(),
            "WAS_WEBAPP_REPORT is a web application scan (WAS) report, not an ASSET_DATA_REPORT; the connector needs",
        ),
        (
            "SCAN_LIST_OUTPUT",
            "<SCAN_LIST_OUTPUT><RESPONSE/></SCAN_LIST_OUTPUT>".into(),
            "SCAN_LIST_OUTPUT is a list of scans",
        ),
        (
            "HOST_LIST_OUTPUT",
            "<HOST_LIST_OUTPUT><RESPONSE><ID_SET><ID>1</ID></ID_SET></RESPONSE></HOST_LIST_OUTPUT>".into(),
            "HOST_LIST_OUTPUT is a host list",
        ),
        (
            "control characters in an error TEXT",
            "<SIMPLE_RETURN><RESPONSE><CODE>999</CODE><TEXT>a\u{0}b\u{1b}[31m</TEXT></RESPONSE></SIMPLE_RETURN>".into(),
            "SIMPLE_RETURN CODE 999: a\\u{0}b\\u{1b}[31m",
        ),
        (
            "some other XML",
            "<?xml version=\"1.0\"?><catalog><book/></catalog>".into(),
            "not a Qualys report: the root element is <catalog>, expected <ASSET_DATA_REPORT>",
        ),
        (
            "an HTML page",
            "<!DOCTYPE html><html><body>Proxy login</body></html>".into(),
            "the root element is <html>, expected <ASSET_DATA_REPORT> (this is a web page",
        ),
        (
            "JSON",
            "{\"error\": \"nope\"}".into(),
            "the input is not XML",
        ),
        (
            "empty file",
            String::new(),
            "the report is empty: no XML element found",
        ),
        (
            "only a comment",
            "<?xml version=\"1.0\"?><!-- x -->".into(),
            "the report is empty",
        ),
        (
            "truncated inside a host",
            cut_in_host.into(),
            "the report is incomplete: it ends at byte",
        ),
        (
            "truncated inside the glossary",
            cut_in_glossary.into(),
            "inside <TITLE>",
        ),
        (
            "truncated before the root closes",
            cut_before_end.into(),
            "inside <ASSET_DATA_REPORT>",
        ),
        (
            "truncated inside the closing tag",
            cut_in_end_tag.into(),
            "the report is incomplete",
        ),
        (
            "mismatched end tag",
            report("<HOST_LIST><HOST><IP>1.2.3.4</IP></HOSTX></HOST_LIST>"),
            "malformed XML at byte",
        ),
        (
            "a second root element",
            format!("{}<ASSET_DATA_REPORT/>", standard()),
            "unexpected content after the end of the report",
        ),
    ];
    for (name, doc, want) in cases {
        match parse_str(&doc) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{name}: {msg}");
            }
        }
    }
}

#[test]
fn truncated_everywhere_is_never_accepted() {
    // Cutting the document at any byte must give an error, never a partial success.
    let full = standard();
    let end = full.find("</ASSET_DATA_REPORT>").unwrap() + "</ASSET_DATA_REPORT>".len();
    for cut in 0..end {
        let Some(doc) = full.get(..cut) else { continue };
        if let Ok((c, _)) = parse_str(doc) {
            panic!("accepted a document cut at {cut} ({} hosts)", c.hosts.len());
        }
    }
    assert!(parse_str(&full[..end]).is_ok());
}

#[test]
fn descriptions_are_capped_while_parsing() {
    let long = "word ".repeat(1000);
    let doc = report(&format!(
        "<GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS><QID>1</QID><THREAT><![CDATA[{long}]]></THREAT></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY>"
    ));
    let mut c = Collected::default();
    parse(
        doc.as_bytes(),
        ParseOptions {
            description_length: 40,
        },
        &mut c,
    )
    .unwrap();
    assert_eq!(c.glossary[0].1.description.len(), 40);
    assert!(c.glossary[0].1.description.ends_with("..."));
}

#[test]
fn locate_lines_and_columns() {
    let text = "ab\ncd\n\u{e9}f";
    let cases = [
        (0, (1, 1)),
        (1, (1, 2)),
        (3, (2, 1)),
        (5, (2, 3)),
        (6, (3, 1)),
        (8, (3, 2)),
    ];
    for (offset, want) in cases {
        assert_eq!(
            locate(text.as_bytes(), offset).unwrap(),
            want,
            "offset {offset}"
        );
    }
}

#[test]
fn visitor_errors_stop_the_parse() {
    struct Failing;
    impl ReportVisitor for Failing {
        fn host(&mut self, _: &Host) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
        fn vuln_details(&mut self, _: u32, _: VulnDetails) {}
    }
    let err = parse(
        standard().as_bytes(),
        ParseOptions {
            description_length: 10,
        },
        &mut Failing,
    )
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
}

/// The declared encoding is honoured for ISO-8859-1 and Windows-1252, UTF-8 stays as
/// it was, and other declarations are refused by name.
#[test]
fn declared_encodings() {
    let doc = |encoding: &str, title: &[u8]| {
        let mut d = format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?>\n<ASSET_DATA_REPORT><GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id=\"qid_1\"><QID>1</QID><TITLE>").into_bytes();
        d.extend_from_slice(title);
        d.extend_from_slice(
            b"</TITLE></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>",
        );
        d
    };
    let cases: [(&str, &[u8], &str, u64); 4] = [
        ("ISO-8859-1", b"Caf\xe9", "Caf\u{e9}", 0),
        (
            "windows-1252",
            b"\x93Caf\xe9\x94",
            "\u{201c}Caf\u{e9}\u{201d}",
            0,
        ),
        ("UTF-8", "Caf\u{e9}".as_bytes(), "Caf\u{e9}", 0),
        ("utf-8", b"Caf\xe9", "Caf\u{fffd}", 1),
    ];
    for (encoding, title, want, replaced) in cases {
        let (c, stats) = parse_bytes(&doc(encoding, title)).unwrap();
        assert_eq!(c.glossary[0].1.title, want, "{encoding}");
        assert_eq!(stats.replaced_utf8, replaced, "{encoding}");
    }
    let refused = parse_bytes(&doc("ISO-8859-15", b"Caf\xe9")).err().unwrap();
    assert!(matches!(refused, ReportError::Encoding(_)), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "the report declares encoding=\"ISO-8859-15\", which cannot be read (UTF-8, US-ASCII, ISO-8859-1 and Windows-1252 can)"
    );
}

/// Titles and THREAT text decode the same HTML entities, in CDATA or not.
#[test]
fn titles_and_threats_decode_entities_alike() {
    let cases = [
        (
            "<![CDATA[Caf&eacute; &amp; &frac12;]]>",
            "Caf\u{e9} & \u{bd}",
        ),
        ("Caf&eacute; &amp; &frac12;", "Caf\u{e9} & \u{bd}"),
        ("<![CDATA[A &lt;b&gt; &copy;]]>", "A <b> \u{a9}"),
        ("A &unknown; &#x263A;", "A &unknown; \u{263a}"),
    ];
    for (text, title) in cases {
        let doc = report(&format!(
            "<GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id=\"qid_1\"><QID>1</QID><TITLE>{text}</TITLE><THREAT>{text}</THREAT></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY>"
        ));
        let (c, stats) = parse_str(&doc).unwrap();
        let details = &c.glossary[0].1;
        assert_eq!(details.title, title, "{text}");
        // An escaped '<' is text in HTML too.
        assert_eq!(details.description, title, "{text}");
        // One in the title, one in THREAT.
        assert_eq!(
            stats.unexpanded_entities,
            2 * u64::from(text == cases[3].0),
            "{text}"
        );
    }
}

/// A QID on several ports without a usable PROTOCOL is one host-level finding, open if
/// any of them is; a QID on a port with one stays apart.
#[test]
fn ports_without_a_protocol_merge_into_one_finding() {
    let vuln = |qid: u32, port: &str, protocol: &str, status: &str| {
        format!(
            "<VULN_INFO><QID>{qid}</QID><TYPE>Vuln</TYPE>{port}{protocol}<VULN_STATUS>{status}</VULN_STATUS></VULN_INFO>"
        )
    };
    let findings = [
        vuln(1, "<PORT>80</PORT>", "", "Fixed"),
        vuln(1, "<PORT>443</PORT>", "<PROTOCOL>icmp</PROTOCOL>", "Active"),
        vuln(1, "", "", "New"),
        vuln(1, "<PORT>8080</PORT>", "<PROTOCOL>tcp</PROTOCOL>", "Active"),
        vuln(2, "<PORT>53</PORT>", "", "Fixed"),
        vuln(2, "<PORT>54</PORT>", "", "Fixed"),
    ]
    .concat();
    let doc = report(&format!(
        "<HOST_LIST><HOST><IP>192.0.2.1</IP><VULN_INFO_LIST>{findings}</VULN_INFO_LIST></HOST>{HOST_A}</HOST_LIST>"
    ));
    let (c, stats) = parse_str(&doc).unwrap();
    let got: Vec<(u32, Option<u16>, VulnStatus)> = c.hosts[0]
        .findings
        .iter()
        .map(|f| (f.qid, f.port, f.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, None, VulnStatus::Active),
            (1, Some(8080), VulnStatus::Active),
            (2, None, VulnStatus::Fixed),
        ]
    );
    assert_eq!(stats.merged_findings, 3);
    assert_eq!(c.hosts[1].findings.len(), 2, "the next host starts afresh");
}
