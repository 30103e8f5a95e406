//! Pages of Host List Detection: the real responses of `../shared/fixtures/qualys/detection/`
//! and made-up pages for what they do not show (paging, cuts, odd values).

use super::*;

fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = std::path::Path::new("../shared/fixtures/qualys/detection").join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            println!("SKIP: {} is absent", path.display());
            None
        }
    }
}

fn read(doc: &[u8]) -> (Result<PageSummary, DocError>, Vec<DetectedHost>) {
    let mut hosts = Vec::new();
    let result = parse(doc, &mut |h| {
        hosts.push(h);
        Ok(())
    });
    (result, hosts)
}

#[test]
fn the_real_page_gives_its_host_and_detections() {
    let Some(doc) = fixture("hld_1host_3detections.xml") else {
        return;
    };
    let (summary, hosts) = read(&doc);
    let summary = summary.unwrap();
    assert_eq!(summary.datetime.as_deref(), Some("2020-09-27T01:29:21Z"));
    assert_eq!((summary.hosts, summary.detections), (1, 3));
    assert_eq!(summary.warning, None);
    let h = &hosts[0];
    assert_eq!(h.id, 6506432);
    assert_eq!(h.host.ip.to_string(), "10.10.10.11");
    let qids: Vec<u32> = h.host.findings.iter().map(|f| f.qid).collect();
    assert_eq!(qids, vec![38170, 38173, 38601]);
    for f in &h.host.findings {
        assert_eq!(
            (f.kind, f.port, f.protocol, f.status),
            (
                FindingType::Vuln,
                Some(3389),
                Some(Protocol::Tcp),
                VulnStatus::Active
            )
        );
    }
}

#[test]
fn real_empty_pages_and_errors() {
    // Table: (fixture, hosts, or the words of the error).
    let cases: [(&str, Result<u64, &str>); 3] = [
        ("hld_empty_response.xml", Ok(0)),
        ("hld_unknown_id.xml", Ok(0)),
        (
            "hld_error_1905_http400.xml",
            Err(
                "Qualys returned an error instead of the Host List Detection page: SIMPLE_RETURN CODE 1905: parameter ids has invalid value",
            ),
        ),
    ];
    for (name, want) in cases {
        let Some(doc) = fixture(name) else { return };
        let (result, _) = read(&doc);
        match (result, want) {
            (Ok(s), Ok(n)) => assert_eq!(s.hosts, n, "{name}"),
            (Err(e), Err(words)) => {
                let text = e.to_string();
                assert!(text.contains(words), "{name}: {text}");
            }
            (got, want) => panic!("{name}: {got:?}, expected {want:?}"),
        }
    }
}

const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM "x.dtd">
<HOST_LIST_VM_DETECTION_OUTPUT>
  <RESPONSE>
    <DATETIME>2026-12-01T00:00:00Z</DATETIME>
<!-- keep-alive -->
    <HOST_LIST>
      <HOST><ID>11</ID><IP>192.0.2.1</IP><DETECTION_LIST>
        <DETECTION><QID>1</QID><TYPE>Potential</TYPE><STATUS>New</STATUS></DETECTION>
        <DETECTION><QID>2</QID><TYPE>Info</TYPE><PORT>53</PORT><PROTOCOL>udp</PROTOCOL><STATUS>Active</STATUS></DETECTION>
        <DETECTION><QID>3</QID><TYPE>Confirmed</TYPE><STATUS>Fixed</STATUS></DETECTION>
        <DETECTION><QID>4</QID><TYPE>Confirmed</TYPE><STATUS>Active</STATUS><IS_IGNORED>1</IS_IGNORED></DETECTION>
        <DETECTION><QID>x5</QID><TYPE>Confirmed</TYPE></DETECTION>
        <DETECTION><QID>6</QID><TYPE>Confirmed</TYPE><PORT>8080</PORT><STATUS>Re-Opened</STATUS></DETECTION>
      </DETECTION_LIST></HOST>
      <HOST><ID>12</ID><IPV6>2001:db8::12</IPV6><DETECTION_LIST/></HOST>
      <HOST><ID>13</ID><TRACKING_METHOD>AGENT</TRACKING_METHOD></HOST>
    </HOST_LIST>
    <WARNING>
      <CODE>1980</CODE>
      <TEXT>1000 record limit exceeded. Use URL to get next batch of results.</TEXT>
      <URL><![CDATA[https://elsewhere.example/api/2.0/fo/asset/host/vm/detection/?action=list&truncation_limit=1000&id_min=14]]></URL>
    </WARNING>
  </RESPONSE>
</HOST_LIST_VM_DETECTION_OUTPUT>
"#;

#[test]
fn a_made_up_page_with_every_case() {
    let (summary, hosts) = read(PAGE.as_bytes());
    let summary = summary.unwrap();
    assert_eq!(summary.hosts, 2, "host 13 has no address");
    assert_eq!(summary.hosts_without_address, 1);
    assert_eq!(summary.ignored_or_disabled, 1);
    assert_eq!(summary.bad_detections, 1, "QID x5");
    let first = &hosts[0].host.findings;
    // Table: (QID, type, port, protocol, status): a port without a protocol is dropped.
    let want = [
        (1, FindingType::Practice, None, None, VulnStatus::New),
        (
            2,
            FindingType::Ig,
            Some(53),
            Some(Protocol::Udp),
            VulnStatus::Active,
        ),
        (3, FindingType::Vuln, None, None, VulnStatus::Fixed),
        (6, FindingType::Vuln, None, None, VulnStatus::ReOpened),
    ];
    let got: Vec<_> = first
        .iter()
        .map(|f| (f.qid, f.kind, f.port, f.protocol, f.status))
        .collect();
    assert_eq!(got, want);
    assert_eq!(hosts[1].host.ip.to_string(), "2001:db8::12");
    assert!(hosts[1].host.findings.is_empty());
    let warning = summary.warning.unwrap();
    assert_eq!(warning.code.as_deref(), Some("1980"));
    // Only the id_min is taken from the URL, whatever host it names.
    assert_eq!(warning.id_min(), Some(14));
}

#[test]
fn a_cut_page_or_another_document_is_refused() {
    let cut = &PAGE[..PAGE.find("<HOST><ID>12").unwrap()];
    // Table: (document, words of the error).
    let cases = [
        (cut.to_string(), "is incomplete: it ends at byte"),
        (String::new(), "is empty"),
        (
            "<ASSET_DATA_REPORT/>".to_string(),
            "the root element is <ASSET_DATA_REPORT>",
        ),
        (
            "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>".to_string(),
            "malformed XML",
        ),
    ];
    for (doc, words) in cases {
        let (result, _) = read(doc.as_bytes());
        let text = result.unwrap_err().to_string();
        assert!(text.contains(words), "{doc:?}: {text}");
    }
    // The hosts before the cut were handed over: the caller must not use them.
    let (_, hosts) = read(cut.as_bytes());
    assert_eq!(hosts.len(), 1);
}

#[test]
fn id_min_is_read_from_the_query_only() {
    let w = |url: &str| Warning {
        url: Some(url.into()),
        ..Warning::default()
    };
    // Table: (URL, id_min).
    let cases = [
        ("https://h/x/?action=list&id_min=42", Some(42)),
        ("https://h/x/?id_min=7&truncation_limit=10", Some(7)),
        ("https://h/x/?action=list&xid_min=42", None),
        ("https://h/x/?action=list&id_min=abc", None),
        ("https://h/x/", None),
    ];
    for (url, want) in cases {
        assert_eq!(w(url).id_min(), want, "{url}");
    }
    assert_eq!(Warning::default().id_min(), None);
}
