//! KnowledgeBase answers: the real ones of `../shared/fixtures/qualys/detection/`.

use super::*;

fn kb(doc: &[u8]) -> (Result<KbSummary, DocError>, Vec<KbEntry>) {
    let mut out = Vec::new();
    let r = parse(doc, 512, &mut |e| {
        out.push(e);
        Ok(())
    });
    (r, out)
}

#[test]
fn real_answers() {
    let dir = std::path::Path::new("../shared/fixtures/qualys/detection");
    if !dir.exists() {
        println!("SKIP: {} is absent", dir.display());
        return;
    }
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (s, entries) = kb(&read("kb_42_vulns.xml"));
    assert_eq!(s.unwrap().entries, 42);
    assert_eq!(entries.len(), 42);
    assert_eq!(entries[0].qid, 6);
    assert_eq!(entries[0].details.title, "DNS Host Name");
    assert!(
        entries[0]
            .details
            .description
            .starts_with("The fully qualified domain name")
    );
    assert_eq!(entries[0].modified.as_deref(), Some("2018-01-04T17:39:37Z"));
    assert!(
        entries
            .iter()
            .all(|e| e.details.description.chars().count() <= 512)
    );
    // The keep-alive answer, with CVEs.
    let (s, entries) = kb(&read("kb_1_vuln_keepalive.xml"));
    assert_eq!(s.unwrap().entries, 1);
    assert_eq!(entries[0].qid, 316760);
    assert!(
        entries[0]
            .details
            .title
            .starts_with("Cisco IOS XE Software Command Injection")
    );
    assert!(!entries[0].details.cve_ids.is_empty());
    assert!(
        entries[0]
            .details
            .cve_ids
            .iter()
            .all(|c| c.starts_with("CVE-"))
    );
    // Unknown QIDs: no entry; the error answers: errors.
    let (s, entries) = kb(&read("kb_unknown_id.xml"));
    assert_eq!((s.unwrap().entries, entries.len()), (0, 0));
    for name in ["kb_error_http400.xml", "simple_return_2001_expired.xml"] {
        let (s, _) = kb(&read(name));
        let text = s.unwrap_err().to_string();
        assert!(
            text.contains("Qualys returned an error instead of the KnowledgeBase answer"),
            "{name}: {text}"
        );
    }
}
