//! The detection path's estate (qualys.md §7), taken from files: `--detections FILE…`
//! loads the hosts of HOST_LIST_VM_DETECTION_OUTPUT documents and `--kb FILE…` the
//! VULNs of KNOWLEDGE_BASE_VULN_LIST_OUTPUT documents, so that real responses (or a
//! customer's saved pages) can be replayed through the real client. From them the
//! simulator answers the Host List (`ID_SET`), Host List Detection (`ids`, `id_min`,
//! `id_max`, `truncation_limit` with the WARNING paging, `status`, `show_igs`,
//! `vm_processed_after`, `include_ignored`, `include_disabled`) and KnowledgeBase
//! (`ids`) queries. `--report-estate FILE` takes the estate from an ASSET_DATA_REPORT
//! instead (one `qualys-sim generate` made, say), so that the report path and the
//! detection path can be fed the same estate: host IDs are given in report order from
//! [`FIRST_HOST_ID`], a host's processed time is its latest `LAST_FOUND`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::http::{cdata, xml_escape};

/// One detection as loaded (text fields kept as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detection {
    pub qid: String,
    pub kind: String,
    pub severity: String,
    pub port: String,
    pub protocol: String,
    pub status: String,
    pub ignored: bool,
    pub disabled: bool,
    pub results: String,
    pub processed: String,
}

/// One host of the estate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EstateHost {
    pub id: u64,
    pub ip: String,
    pub ipv6: String,
    pub tracking: String,
    pub dns: String,
    /// When Qualys last processed the host's scan data (ISO 8601 UTC).
    pub processed: String,
    pub detections: Vec<Detection>,
}

impl EstateHost {
    /// Adds a detection; the host's processed time is its latest detection's.
    fn add(&mut self, d: Detection) {
        if d.processed > self.processed {
            self.processed = d.processed.clone();
        }
        self.detections.push(d);
    }
}

/// One KnowledgeBase entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KbVuln {
    pub qid: u32,
    pub vuln_type: String,
    pub severity: String,
    pub title: String,
    pub diagnosis: String,
    pub modified: String,
    pub cves: Vec<String>,
    pub bugtraqs: Vec<String>,
}

/// The ID of a report's first host in an estate made from it.
pub const FIRST_HOST_ID: u64 = 1_000_001;

/// Hosts by ID, and the KB by QID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estate {
    pub hosts: BTreeMap<u64, EstateHost>,
    pub kb: BTreeMap<u32, KbVuln>,
}

/// A Host List Detection query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `ids`: IDs and ranges; `None`: all.
    pub ids: Option<Vec<(u64, u64)>>,
    pub id_min: Option<u64>,
    pub id_max: Option<u64>,
    /// Hosts per page; 0: no limit.
    pub truncation_limit: usize,
    /// Upper-case statuses wanted.
    pub status: Vec<String>,
    pub show_igs: bool,
    pub vm_processed_after: Option<String>,
    pub include_ignored: bool,
    pub include_disabled: bool,
    /// A host the Host List leaves out but Host List Detection still returns (in the
    /// page of the batch holding the ID before it): a platform out of step with itself.
    pub unlisted: Option<u64>,
}

/// `1,5-9, 12` → ranges; `None` when a part is no ID or range.
pub fn id_list(text: &str) -> Option<Vec<(u64, u64)>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => p.parse().ok().map(|id| (id, id)),
        })
        .collect()
}

impl Estate {
    /// Loads every host of `detections` and every VULN of `kb`.
    pub fn load(detections: &[impl AsRef<Path>], kb: &[impl AsRef<Path>]) -> io::Result<Estate> {
        let mut estate = Estate::default();
        for path in detections {
            let file = io::BufReader::new(std::fs::File::open(path.as_ref())?);
            load_hosts(file, &mut estate).map_err(|e| bad(path.as_ref(), &e))?;
        }
        for path in kb {
            let file = io::BufReader::new(std::fs::File::open(path.as_ref())?);
            load_kb(file, &mut estate).map_err(|e| bad(path.as_ref(), &e))?;
        }
        Ok(estate)
    }

    /// The estate of an ASSET_DATA_REPORT: its hosts (IDs from [`FIRST_HOST_ID`] in
    /// report order; Vuln / Practice / Ig become Confirmed / Potential / Info) and its
    /// glossary as the KB (THREAT as DIAGNOSIS).
    pub fn from_report(path: impl AsRef<Path>) -> io::Result<Estate> {
        let text = io::BufReader::new(std::fs::File::open(path.as_ref())?);
        let mut estate = Estate::default();
        load_report(text, &mut estate).map_err(|e| bad(path.as_ref(), &e))?;
        Ok(estate)
    }

    /// The hosts a query's scope holds (before paging): IDs, ID bounds, processed time.
    fn in_scope<'a>(&'a self, q: &'a Query) -> impl Iterator<Item = &'a EstateHost> + 'a {
        let start = q.id_min.unwrap_or(0);
        self.hosts
            .range(start..=q.id_max.unwrap_or(u64::MAX))
            .map(|(_, h)| h)
            .filter(move |h| {
                let unlisted = q.unlisted == Some(h.id);
                q.ids.as_ref().is_none_or(|ids| {
                    ids.iter().any(|(a, b)| {
                        (*a..=*b).contains(&h.id)
                            || (unlisted && (*a..=*b).contains(&h.id.saturating_sub(1)))
                    })
                })
            })
            .filter(move |h| {
                q.vm_processed_after
                    .as_deref()
                    .is_none_or(|after| h.processed.as_str() > after)
            })
    }

    fn detections_of<'a>(&self, h: &'a EstateHost, q: &Query) -> Vec<&'a Detection> {
        h.detections
            .iter()
            .filter(|d| q.show_igs || !d.kind.eq_ignore_ascii_case("info"))
            .filter(|d| q.status.iter().any(|s| s.eq_ignore_ascii_case(&d.status)))
            .filter(|d| q.include_ignored || !d.ignored)
            .filter(|d| q.include_disabled || !d.disabled)
            .collect()
    }

    /// The Host List answer: the IDs in scope as `ID` and `ID_RANGE`.
    pub fn host_list(&self, q: &Query, now: &str) -> String {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for h in self.in_scope(q).filter(|h| q.unlisted != Some(h.id)) {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == h.id => *last = h.id,
                _ => ranges.push((h.id, h.id)),
            }
        }
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<HOST_LIST_OUTPUT>\n  <RESPONSE>\n    <DATETIME>{now}</DATETIME>\n"
        );
        if !ranges.is_empty() {
            out.push_str("    <ID_SET>\n");
            for (a, b) in ranges {
                if a == b {
                    out.push_str(&format!("      <ID>{a}</ID>\n"));
                } else {
                    out.push_str(&format!("      <ID_RANGE>{a}-{b}</ID_RANGE>\n"));
                }
            }
            out.push_str("    </ID_SET>\n");
        }
        out.push_str("  </RESPONSE>\n</HOST_LIST_OUTPUT>\n");
        out
    }

    /// One Host List Detection page; `next_url(id_min)` makes the WARNING's URL. Hosts
    /// without a wanted detection are left out, as Qualys does.
    pub fn detection_page(&self, q: &Query, now: &str, next_url: &dyn Fn(u64) -> String) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM \"https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd\">\n<HOST_LIST_VM_DETECTION_OUTPUT>\n  <RESPONSE>\n    <DATETIME>{now}</DATETIME>\n"
        );
        let mut listed = 0usize;
        let mut next = None;
        for h in self.in_scope(q) {
            let found = self.detections_of(h, q);
            if found.is_empty() {
                continue;
            }
            if q.truncation_limit > 0 && listed == q.truncation_limit {
                next = Some(h.id);
                break;
            }
            if listed == 0 {
                out.push_str("    <HOST_LIST>\n");
            }
            listed += 1;
            write_host(&mut out, h, &found);
        }
        if listed > 0 {
            out.push_str("    </HOST_LIST>\n");
        }
        if let Some(id) = next {
            out.push_str(&format!(
                "    <WARNING>\n      <CODE>1980</CODE>\n      <TEXT>{} record limit exceeded. Use URL to get next batch of results.</TEXT>\n      <URL>{}</URL>\n    </WARNING>\n",
                q.truncation_limit,
                cdata(&next_url(id))
            ));
        }
        out.push_str("  </RESPONSE>\n</HOST_LIST_VM_DETECTION_OUTPUT>\n");
        out
    }

    /// The KnowledgeBase answer for `qids` (unknown ones are left out), only those
    /// modified after `after` when given (`last_modified_after`).
    pub fn kb_answer(&self, qids: &[(u64, u64)], after: Option<&str>, now: &str) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<KNOWLEDGE_BASE_VULN_LIST_OUTPUT>\n  <RESPONSE>\n    <DATETIME>{now}</DATETIME>\n"
        );
        let found: Vec<&KbVuln> = self
            .kb
            .values()
            .filter(|v| {
                qids.iter()
                    .any(|(a, b)| (*a..=*b).contains(&u64::from(v.qid)))
            })
            .filter(|v| after.is_none_or(|t| v.modified.as_str() > t))
            .collect();
        if !found.is_empty() {
            out.push_str("    <VULN_LIST>\n");
            for v in found {
                write_vuln(&mut out, v);
            }
            out.push_str("    </VULN_LIST>\n");
        }
        out.push_str("  </RESPONSE>\n</KNOWLEDGE_BASE_VULN_LIST_OUTPUT>\n");
        out
    }
}

fn write_host(out: &mut String, h: &EstateHost, found: &[&Detection]) {
    out.push_str(&format!("      <HOST>\n        <ID>{}</ID>\n", h.id));
    for (tag, value) in [
        ("IP", &h.ip),
        ("IPV6", &h.ipv6),
        ("TRACKING_METHOD", &h.tracking),
    ] {
        if !value.is_empty() {
            out.push_str(&format!("        <{tag}>{}</{tag}>\n", xml_escape(value)));
        }
    }
    if !h.dns.is_empty() {
        out.push_str(&format!("        <DNS>{}</DNS>\n", cdata(&h.dns)));
    }
    out.push_str("        <DETECTION_LIST>\n");
    for d in found {
        out.push_str("          <DETECTION>\n");
        let fields = [
            ("QID", &d.qid),
            ("TYPE", &d.kind),
            ("SEVERITY", &d.severity),
            ("PORT", &d.port),
            ("PROTOCOL", &d.protocol),
        ];
        for (tag, value) in fields {
            if !value.is_empty() {
                out.push_str(&format!(
                    "            <{tag}>{}</{tag}>\n",
                    xml_escape(value)
                ));
            }
        }
        if !d.results.is_empty() {
            out.push_str(&format!(
                "            <RESULTS>{}</RESULTS>\n",
                cdata(&d.results)
            ));
        }
        out.push_str(&format!(
            "            <STATUS>{}</STATUS>\n            <IS_IGNORED>{}</IS_IGNORED>\n            <IS_DISABLED>{}</IS_DISABLED>\n",
            xml_escape(&d.status),
            u8::from(d.ignored),
            u8::from(d.disabled)
        ));
        if !d.processed.is_empty() {
            out.push_str(&format!(
                "            <LAST_PROCESSED_DATETIME>{}</LAST_PROCESSED_DATETIME>\n",
                xml_escape(&d.processed)
            ));
        }
        out.push_str("          </DETECTION>\n");
    }
    out.push_str("        </DETECTION_LIST>\n      </HOST>\n");
}

fn write_vuln(out: &mut String, v: &KbVuln) {
    out.push_str(&format!(
        "      <VULN>\n        <QID>{}</QID>\n        <VULN_TYPE>{}</VULN_TYPE>\n        <SEVERITY_LEVEL>{}</SEVERITY_LEVEL>\n        <TITLE>{}</TITLE>\n",
        v.qid,
        xml_escape(&v.vuln_type),
        xml_escape(&v.severity),
        cdata(&v.title)
    ));
    if !v.modified.is_empty() {
        out.push_str(&format!(
            "        <LAST_SERVICE_MODIFICATION_DATETIME>{}</LAST_SERVICE_MODIFICATION_DATETIME>\n",
            xml_escape(&v.modified)
        ));
    }
    for (list, item, ids) in [
        ("CVE_LIST", "CVE", &v.cves),
        ("BUGTRAQ_LIST", "BUGTRAQ", &v.bugtraqs),
    ] {
        if ids.is_empty() {
            continue;
        }
        out.push_str(&format!("        <{list}>\n"));
        for id in ids {
            out.push_str(&format!(
                "          <{item}>\n            <ID>{}</ID>\n          </{item}>\n",
                cdata(id)
            ));
        }
        out.push_str(&format!("        </{list}>\n"));
    }
    if !v.diagnosis.is_empty() {
        out.push_str(&format!(
            "        <DIAGNOSIS>{}</DIAGNOSIS>\n",
            cdata(&v.diagnosis)
        ));
    }
    out.push_str("      </VULN>\n");
}

fn bad(path: &Path, e: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// Walks `text`, calling `on` with the path of open elements (names) and, at each
/// element's end, its text.
fn walk(input: impl io::BufRead, on: &mut dyn FnMut(&[String], &str)) -> Result<(), String> {
    let mut reader = Reader::from_reader(input);
    let mut path: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) => {
                path.push(e.name().as_ref().to_string());
                texts.push(String::new());
            }
            Event::Empty(e) => {
                path.push(e.name().as_ref().to_string());
                on(&path, "");
                path.pop();
            }
            Event::End(_) => {
                let t = texts.pop().unwrap_or_default();
                on(&path, t.trim());
                path.pop();
            }
            Event::Text(t) => {
                if let Some(last) = texts.last_mut() {
                    last.push_str(&t);
                }
            }
            Event::CData(t) => {
                if let Some(last) = texts.last_mut() {
                    last.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(last) = texts.last_mut() {
                    let name: &str = &r;
                    last.push_str(match name {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        _ => "",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if path.is_empty() {
        Ok(())
    } else {
        Err(format!("the document ends inside <{}>", path.join("/")))
    }
}

fn load_hosts(text: impl io::BufRead, estate: &mut Estate) -> Result<(), String> {
    let mut host = EstateHost::default();
    let mut d = Detection::default();
    walk(text, &mut |path, t| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let t = t.to_string();
        match names.as_slice() {
            [.., "HOST_LIST", "HOST", "ID"] => host.id = t.parse().unwrap_or(0),
            [.., "HOST_LIST", "HOST", "IP"] => host.ip = t,
            [.., "HOST_LIST", "HOST", "IPV6"] => host.ipv6 = t,
            [.., "HOST_LIST", "HOST", "TRACKING_METHOD"] => host.tracking = t,
            [.., "HOST_LIST", "HOST", "DNS"] => host.dns = t,
            [.., "HOST_LIST", "HOST", "LAST_VM_SCANNED_DATE"] if host.processed.is_empty() => {
                host.processed = t;
            }
            [.., "DETECTION", field] => match *field {
                "QID" => d.qid = t,
                "TYPE" => d.kind = t,
                "SEVERITY" => d.severity = t,
                "PORT" => d.port = t,
                "PROTOCOL" => d.protocol = t,
                "STATUS" => d.status = t,
                "RESULTS" => d.results = t,
                "IS_IGNORED" => d.ignored = t == "1",
                "IS_DISABLED" => d.disabled = t == "1",
                "LAST_PROCESSED_DATETIME" => d.processed = t,
                _ => {}
            },
            [.., "DETECTION_LIST", "DETECTION"] => host.add(std::mem::take(&mut d)),
            [.., "HOST_LIST", "HOST"] => {
                let done = std::mem::take(&mut host);
                if done.id > 0 {
                    estate.hosts.insert(done.id, done);
                }
            }
            _ => {}
        }
    })
}

fn load_report(text: impl io::BufRead, estate: &mut Estate) -> Result<(), String> {
    let mut host = EstateHost::default();
    let mut d = Detection::default();
    let mut v = KbVuln::default();
    let mut next_id = FIRST_HOST_ID;
    walk(text, &mut |path, t| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let t = t.to_string();
        match names.as_slice() {
            [.., "HOST_LIST", "HOST", "IP"] if t.contains(':') => host.ipv6 = t,
            [.., "HOST_LIST", "HOST", "IP"] => host.ip = t,
            [.., "HOST_LIST", "HOST", "TRACKING_METHOD"] => host.tracking = t,
            [.., "HOST_LIST", "HOST", "DNS"] => host.dns = t,
            [.., "VULN_INFO", field] => match *field {
                "QID" => d.qid = t,
                "TYPE" => {
                    d.kind = match t.as_str() {
                        "Vuln" => "Confirmed",
                        "Practice" => "Potential",
                        _ => "Info",
                    }
                    .to_string();
                }
                "PORT" => d.port = t,
                "PROTOCOL" => d.protocol = t,
                "VULN_STATUS" => d.status = t,
                "LAST_FOUND" => d.processed = t,
                _ => {}
            },
            [.., "VULN_INFO_LIST", "VULN_INFO"] => {
                let mut done = std::mem::take(&mut d);
                if done.status.is_empty() {
                    done.status = "Active".into();
                }
                host.add(done);
            }
            [.., "HOST_LIST", "HOST"] => {
                let mut done = std::mem::take(&mut host);
                done.id = next_id;
                next_id += 1;
                estate.hosts.insert(done.id, done);
            }
            [.., "VULN_DETAILS", "QID"] => v.qid = t.parse().unwrap_or(0),
            [.., "VULN_DETAILS", "TITLE"] => v.title = t,
            [.., "VULN_DETAILS", "THREAT"] => v.diagnosis = t,
            [.., "VULN_DETAILS", "SEVERITY"] => v.severity = t,
            [.., "CVE_ID_LIST", "CVE_ID", "ID"] => v.cves.push(t),
            [.., "BUGTRAQ_ID_LIST", "BUGTRAQ_ID", "ID"] => v.bugtraqs.push(t),
            [.., "VULN_DETAILS_LIST", "VULN_DETAILS"] => {
                let done = std::mem::take(&mut v);
                if done.qid > 0 {
                    estate.kb.insert(done.qid, done);
                }
            }
            _ => {}
        }
    })
}

fn load_kb(text: impl io::BufRead, estate: &mut Estate) -> Result<(), String> {
    let mut v = KbVuln::default();
    walk(text, &mut |path, t| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let t = t.to_string();
        match names.as_slice() {
            [.., "VULN", "QID"] => v.qid = t.parse().unwrap_or(0),
            [.., "VULN", "VULN_TYPE"] => v.vuln_type = t,
            [.., "VULN", "SEVERITY_LEVEL"] => v.severity = t,
            [.., "VULN", "TITLE"] => v.title = t,
            [.., "VULN", "DIAGNOSIS"] => v.diagnosis = t,
            [.., "VULN", "LAST_SERVICE_MODIFICATION_DATETIME"] => v.modified = t,
            [.., "CVE_LIST", "CVE", "ID"] => v.cves.push(t),
            [.., "BUGTRAQ_LIST", "BUGTRAQ", "ID"] => v.bugtraqs.push(t),
            [.., "VULN_LIST", "VULN"] => {
                let done = std::mem::take(&mut v);
                if done.qid > 0 {
                    estate.kb.insert(done.qid, done);
                }
            }
            _ => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST>\
        <HOST><ID>3</ID><IP>192.0.2.3</IP><DETECTION_LIST>\
        <DETECTION><QID>1</QID><TYPE>Confirmed</TYPE><STATUS>Active</STATUS><LAST_PROCESSED_DATETIME>2026-01-02T00:00:00Z</LAST_PROCESSED_DATETIME></DETECTION>\
        <DETECTION><QID>2</QID><TYPE>Info</TYPE><STATUS>Active</STATUS></DETECTION>\
        </DETECTION_LIST></HOST>\
        <HOST><ID>4</ID><IP>192.0.2.4</IP><DETECTION_LIST>\
        <DETECTION><QID>1</QID><TYPE>Confirmed</TYPE><STATUS>Fixed</STATUS><LAST_PROCESSED_DATETIME>2026-03-01T00:00:00Z</LAST_PROCESSED_DATETIME></DETECTION>\
        </DETECTION_LIST></HOST>\
        <HOST><ID>7</ID><IP>192.0.2.7</IP><DETECTION_LIST>\
        <DETECTION><QID>1</QID><TYPE>Confirmed</TYPE><STATUS>New</STATUS><IS_IGNORED>1</IS_IGNORED></DETECTION>\
        </DETECTION_LIST></HOST>\
        </HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>";

    fn estate() -> Estate {
        let mut e = Estate::default();
        load_hosts(PAGE.as_bytes(), &mut e).unwrap();
        e
    }

    fn query() -> Query {
        Query {
            status: vec!["NEW".into(), "ACTIVE".into(), "RE-OPENED".into()],
            ..Query::default()
        }
    }

    fn hosts_of(page: &str) -> Vec<String> {
        page.split("<ID>")
            .skip(1)
            .map(|s| s.split('<').next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn queries_filter_and_page_like_qualys() {
        let e = estate();
        assert_eq!(e.hosts.len(), 3);
        assert_eq!(e.hosts[&4].processed, "2026-03-01T00:00:00Z");
        let url = |id: u64| format!("https://other.example/x/?action=list&id_min={id}");
        // Table: (query change, hosts listed, the next page's id_min).
        type Change = fn(&mut Query);
        let cases: [(Change, &[&str], Option<&str>); 6] = [
            (|_| {}, &["3"], None),
            (|q| q.status.push("FIXED".into()), &["3", "4"], None),
            (|q| q.include_ignored = true, &["3", "7"], None),
            (
                |q| {
                    q.status.push("FIXED".into());
                    q.truncation_limit = 1;
                },
                &["3"],
                Some("id_min=4"),
            ),
            (
                |q| {
                    q.status.push("FIXED".into());
                    q.vm_processed_after = Some("2026-02-01T00:00:00Z".into());
                },
                &["4"],
                None,
            ),
            (|q| q.ids = id_list("4-7"), &[], None),
        ];
        for (i, (change, want, next)) in cases.iter().enumerate() {
            let mut q = query();
            change(&mut q);
            let page = e.detection_page(&q, "now", &url);
            assert_eq!(hosts_of(&page), *want, "case {i}: {page}");
            match next {
                Some(words) => assert!(
                    page.contains(words) && page.contains("<CODE>1980</CODE>"),
                    "case {i}"
                ),
                None => assert!(!page.contains("WARNING"), "case {i}"),
            }
        }
        // Info detections only with show_igs.
        let mut q = query();
        q.show_igs = true;
        assert_eq!(
            e.detection_page(&q, "now", &url)
                .matches("<DETECTION>")
                .count(),
            2
        );
        assert!(
            e.host_list(&query(), "now")
                .contains("<ID_RANGE>3-4</ID_RANGE>")
        );
        assert_eq!(id_list("1, 5-9"), Some(vec![(1, 1), (5, 9)]));
    }

    #[test]
    fn a_generated_report_is_the_same_estate() {
        use crate::qualys::{GenSpec, generate};
        let spec = GenSpec {
            hosts: 30,
            seed: 4,
            findings_per_host: 6,
            qids: 40,
            ..GenSpec::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.xml");
        let mut file = std::fs::File::create(&path).unwrap();
        let sum = generate(&spec, &mut file).unwrap();
        drop(file);
        let e = Estate::from_report(&path).unwrap();
        assert_eq!(e.hosts.len() as u64, sum.hosts);
        assert_eq!(e.hosts.keys().next(), Some(&FIRST_HOST_ID));
        assert_eq!(e.kb.len() as u64, sum.glossary);
        assert_eq!(
            e.hosts.values().filter(|h| !h.ipv6.is_empty()).count() as u64,
            sum.ipv6_hosts
        );
        // What the report path sends is what the detection path's defaults select.
        let sendable = e
            .hosts
            .values()
            .flat_map(|h| &h.detections)
            .filter(|d| d.kind != "Info" && d.status != "Fixed")
            .count() as u64;
        assert_eq!(sendable, sum.sendable);
        assert!(
            e.hosts
                .values()
                .all(|h| !h.processed.is_empty() || h.detections.is_empty())
        );
        assert_eq!(id_list("1,x"), None);
    }
}
