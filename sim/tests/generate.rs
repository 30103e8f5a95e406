//! Tests of the synthetic `ASSET_DATA_REPORT` generator (`qualys_connector_sim::qualys`)
//! and of its `qualys-sim generate` front end: determinism, a summary that matches the
//! document (checked by an independent count), well-formedness, the content rules
//! (QIDs in the glossary, unique (QID, port, protocol) per host, IPv6 rate, average
//! findings), and the command line's output and exit codes.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};

use qualys_connector_sim::qualys::{GenSpec, GenSummary, generate};

fn gen_doc(spec: &GenSpec) -> (String, GenSummary) {
    let mut out = Vec::new();
    let summary = generate(spec, &mut out).expect("generate into a Vec");
    let doc = String::from_utf8(out).expect("the report is UTF-8");
    (doc, summary)
}

/// The specs most tests run over.
fn cases() -> Vec<(&'static str, GenSpec)> {
    vec![
        (
            "0 hosts",
            GenSpec {
                hosts: 0,
                ..GenSpec::default()
            },
        ),
        (
            "1 host, default pool",
            GenSpec {
                hosts: 1,
                seed: 42,
                ..GenSpec::default()
            },
        ),
        (
            "1,000 hosts",
            GenSpec {
                hosts: 1_000,
                seed: 7,
                qids: 2_000,
                ..GenSpec::default()
            },
        ),
        (
            "glossary first",
            GenSpec {
                hosts: 120,
                seed: 3,
                qids: 500,
                ipv6_every: 7,
                glossary_first: true,
                ..GenSpec::default()
            },
        ),
        (
            "tiny pool, many findings",
            GenSpec {
                hosts: 30,
                seed: 11,
                qids: 3,
                findings_per_host: 40,
                ipv6_every: 1,
                ..GenSpec::default()
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// An independent reading of the document.

/// The document with every CDATA section's content removed and comments dropped, so that
/// element counting cannot be fooled by text.
fn strip_cdata_and_comments(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut pos = 0;
    while let Some(lt) = doc[pos..].find("<!") {
        let at = pos + lt;
        out.push_str(&doc[pos..at]);
        let rest = &doc[at..];
        let (open, close) = if rest.starts_with("<![CDATA[") {
            ("<![CDATA[", "]]>")
        } else if rest.starts_with("<!--") {
            ("<!--", "-->")
        } else {
            // DOCTYPE: keep it.
            out.push_str("<!");
            pos = at + 2;
            continue;
        };
        let end = rest[open.len()..]
            .find(close)
            .expect("unterminated CDATA or comment");
        pos = at + open.len() + end + close.len();
    }
    out.push_str(&doc[pos..]);
    out
}

/// Checks that every opened element is closed in order, that there is one root named
/// ASSET_DATA_REPORT with only the prolog, comments and whitespace around it, and that
/// `&` outside CDATA starts an entity. Returns the number of elements.
fn check_well_formed(doc: &str) -> Result<usize, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut elements = 0;
    let mut pos = 0;
    while pos < doc.len() {
        let Some(lt) = doc[pos..].find('<') else {
            check_text(&doc[pos..], stack.is_empty())?;
            break;
        };
        check_text(&doc[pos..pos + lt], stack.is_empty())?;
        let start = pos + lt;
        let rest = &doc[start..];
        if rest.starts_with("<![CDATA[") {
            if stack.is_empty() {
                return Err(format!("CDATA outside the root at {start}"));
            }
            let end = rest.find("]]>").ok_or("unterminated CDATA")?;
            pos = start + end + 3;
        } else if rest.starts_with("<!--") {
            let end = rest.find("-->").ok_or("unterminated comment")?;
            if rest[4..end].contains("--") {
                return Err(format!("`--` inside a comment at {start}"));
            }
            pos = start + end + 3;
        } else if rest.starts_with("<?") {
            if start != 0 {
                return Err(format!("processing instruction not at the start: {start}"));
            }
            pos = start + rest.find("?>").ok_or("unterminated PI")? + 2;
        } else if rest.starts_with("<!DOCTYPE") {
            if roots > 0 || !stack.is_empty() {
                return Err("DOCTYPE after the root".into());
            }
            pos = start + rest.find('>').ok_or("unterminated DOCTYPE")? + 1;
        } else {
            let end = rest.find('>').ok_or("unterminated tag")?;
            let tag = &rest[1..end];
            pos = start + end + 1;
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?} at {start}")),
                }
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    return Err(format!("bad element name {name:?} at {start}"));
                }
                check_attributes(&tag[name.len()..])?;
                if stack.is_empty() {
                    roots += 1;
                    if name != "ASSET_DATA_REPORT" || roots > 1 {
                        return Err(format!("unexpected root element {name}"));
                    }
                }
                elements += 1;
                if !self_closing {
                    stack.push(name);
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements: {stack:?}"));
    }
    if roots != 1 {
        return Err("no root element".into());
    }
    Ok(elements)
}

/// `name="value"` pairs with no `<` or bare `&` in values.
fn check_attributes(attrs: &str) -> Result<(), String> {
    let mut rest = attrs.trim();
    while !rest.is_empty() {
        let eq = rest
            .find("=\"")
            .ok_or(format!("bad attributes {attrs:?}"))?;
        let after = &rest[eq + 2..];
        let close = after
            .find('"')
            .ok_or(format!("unterminated attribute {attrs:?}"))?;
        let value = &after[..close];
        if value.contains('<') {
            return Err(format!("`<` in attribute value {value:?}"));
        }
        check_text(value, false)?;
        rest = after[close + 1..].trim_start();
    }
    Ok(())
}

fn check_text(text: &str, outside_root: bool) -> Result<(), String> {
    if outside_root && !text.trim().is_empty() {
        return Err(format!(
            "text outside the root: {:?}",
            &text[..text.len().min(40)]
        ));
    }
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
            .iter()
            .any(|e| entity.starts_with(e));
        if !ok {
            return Err(format!(
                "bare `&` in text: {:?}",
                &entity[..entity.len().min(20)]
            ));
        }
    }
    if text.contains('>') && text.contains("]]>") {
        return Err("`]]>` in text".into());
    }
    Ok(())
}

/// Text of the first `<tag>…</tag>` in `block` (without CDATA there).
fn field<'a>(block: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&format!("</{tag}>"))?;
    Some(&block[start..start + end])
}

/// Blocks between `<tag>`/`<tag ` and `</tag>`, in order.
fn blocks<'a>(doc: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(s) = rest.find(open) {
        let from = &rest[s..];
        let e = from.find(close).expect("closed block");
        out.push(&from[..e + close.len()]);
        rest = &from[e + close.len()..];
    }
    out
}

/// A VULN_INFO as read back: (QID, PORT, PROTOCOL, TYPE, VULN_STATUS).
type Finding = (u64, Option<u16>, Option<String>, String, Option<String>);

#[derive(Debug, Default)]
struct Host {
    ip: String,
    v6: bool,
    findings: Vec<Finding>,
}

#[derive(Debug, Default)]
struct Reading {
    summary: GenSummary,
    hosts: Vec<Host>,
    glossary: Vec<u64>,
}

fn read(doc: &str) -> Reading {
    let plain = strip_cdata_and_comments(doc);
    let mut r = Reading::default();
    r.summary.bytes = doc.len() as u64;
    for block in blocks(&plain, "<HOST>", "</HOST>") {
        let ip_open = block.find("<IP ").expect("IP element");
        let ip_tag_end = ip_open + block[ip_open..].find('>').expect("IP tag end");
        let ip_tag = &block[ip_open..ip_tag_end];
        let ip_end = block[ip_tag_end..].find("</IP>").expect("IP close") + ip_tag_end;
        let mut host = Host {
            ip: block[ip_tag_end + 1..ip_end].to_string(),
            v6: ip_tag.contains(" v6=\""),
            ..Host::default()
        };
        assert!(ip_tag.contains("network_id=\""), "{ip_tag}");
        if host.v6 {
            let v6 = ip_tag
                .split("v6=\"")
                .nth(1)
                .and_then(|s| s.split('"').next());
            assert_eq!(v6, Some(host.ip.as_str()), "v6 attribute equals the text");
        }
        for info in blocks(block, "<VULN_INFO>", "</VULN_INFO>") {
            let qid_text = info.split("<QID id=\"qid_").nth(1).expect("QID");
            let (id_attr, rest) = qid_text.split_once("\">").expect("QID attr");
            let qid: u64 = rest
                .split('<')
                .next()
                .expect("QID text")
                .parse()
                .expect("QID number");
            assert_eq!(id_attr.parse::<u64>().ok(), Some(qid), "QID id attribute");
            let port = field(info, "PORT").map(|p| p.parse::<u16>().expect("PORT number"));
            let proto = field(info, "PROTOCOL").map(str::to_string);
            assert_eq!(
                port.is_some(),
                proto.is_some(),
                "PORT and PROTOCOL together: {info}"
            );
            let ty = field(info, "TYPE").expect("TYPE").to_string();
            let status = field(info, "VULN_STATUS").map(str::to_string);
            match ty.as_str() {
                "Vuln" => r.summary.vuln += 1,
                "Practice" => r.summary.practice += 1,
                "Ig" => r.summary.ig += 1,
                other => panic!("unknown TYPE {other}"),
            }
            if ty != "Ig" {
                if status.as_deref() == Some("Fixed") {
                    r.summary.fixed += 1;
                } else {
                    r.summary.sendable += 1;
                }
            }
            host.findings.push((qid, port, proto, ty, status));
        }
        r.summary.hosts += 1;
        r.summary.ipv6_hosts += u64::from(host.v6);
        r.hosts.push(host);
    }
    for block in blocks(&plain, "<VULN_DETAILS id=\"qid_", "</VULN_DETAILS>") {
        let id: u64 = block["<VULN_DETAILS id=\"qid_".len()..]
            .split('"')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("VULN_DETAILS id");
        let inner = block.split("<QID id=\"qid_").nth(1).expect("glossary QID");
        let (attr, rest) = inner.split_once("\">").expect("glossary QID attr");
        assert_eq!(attr.parse::<u64>().ok(), Some(id));
        assert_eq!(
            rest.split('<').next().and_then(|s| s.parse().ok()),
            Some(id)
        );
        r.glossary.push(id);
    }
    r.summary.glossary = r.glossary.len() as u64;
    r
}

// ---------------------------------------------------------------------------------------

#[test]
fn same_spec_same_bytes_other_seed_other_bytes() {
    for (name, spec) in cases() {
        let (a, sa) = gen_doc(&spec);
        let (b, sb) = gen_doc(&spec);
        assert!(a == b, "{name}: two runs differ");
        assert_eq!(sa, sb, "{name}");
        let other = GenSpec {
            seed: spec.seed + 1,
            ..spec.clone()
        };
        let (c, _) = gen_doc(&other);
        assert!(a != c, "{name}: another seed gives the same document");
    }
}

#[test]
fn summary_matches_the_document() {
    for (name, spec) in cases() {
        let (doc, summary) = gen_doc(&spec);
        let reading = read(&doc);
        assert_eq!(reading.summary, summary, "{name}");
        assert_eq!(summary.hosts, spec.hosts, "{name}");
        let expected_glossary = if spec.hosts == 0 {
            0
        } else {
            u64::from(spec.qids)
        };
        assert_eq!(summary.glossary, expected_glossary, "{name}");
        assert_eq!(
            summary.sendable,
            summary.vuln + summary.practice - summary.fixed,
            "{name}"
        );
    }
}

#[test]
fn documents_are_well_formed() {
    for (name, spec) in cases() {
        let (doc, _) = gen_doc(&spec);
        let elements = check_well_formed(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(elements > 3, "{name}");
        assert!(
            doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>"),
            "{name}"
        );
        let tail = doc.trim_end();
        assert!(tail.ends_with("-->"), "{name}: a comment follows the root");
    }
}

#[test]
fn the_checker_rejects_broken_documents() {
    let good = "<?xml version=\"1.0\"?>\n<ASSET_DATA_REPORT><A x=\"1\"><![CDATA[<B> & ]]></A><C/></ASSET_DATA_REPORT>\n<!-- c -->";
    assert!(check_well_formed(good).is_ok());
    for bad in [
        "<ASSET_DATA_REPORT><A></ASSET_DATA_REPORT>",
        "<ASSET_DATA_REPORT><A></B></ASSET_DATA_REPORT>",
        "<ASSET_DATA_REPORT>a & b</ASSET_DATA_REPORT>",
        "<SCAN></SCAN>",
        "<ASSET_DATA_REPORT></ASSET_DATA_REPORT><ASSET_DATA_REPORT/>",
        "<ASSET_DATA_REPORT><![CDATA[x</ASSET_DATA_REPORT>",
        "<ASSET_DATA_REPORT></ASSET_DATA_REPORT>text",
    ] {
        assert!(check_well_formed(bad).is_err(), "{bad}");
    }
}

#[test]
fn shape_follows_real_reports() {
    for (name, spec) in cases() {
        let (doc, _) = gen_doc(&spec);
        let plain = strip_cdata_and_comments(&doc);
        let order: Vec<(usize, &str)> = [
            "<HEADER>",
            "<RISK_SCORE_PER_HOST>",
            "<HOST_LIST>",
            "<GLOSSARY>",
            "<APPENDICES>",
        ]
        .iter()
        .filter_map(|t| plain.find(t).map(|at| (at, *t)))
        .collect();
        let names: Vec<&str> = {
            let mut o = order.clone();
            o.sort();
            o.into_iter().map(|(_, t)| t).collect()
        };
        let expected: Vec<&str> = match (spec.hosts, spec.glossary_first) {
            (0, _) => vec!["<HEADER>", "<APPENDICES>"],
            (_, false) => vec![
                "<HEADER>",
                "<RISK_SCORE_PER_HOST>",
                "<HOST_LIST>",
                "<GLOSSARY>",
                "<APPENDICES>",
            ],
            (_, true) => vec![
                "<HEADER>",
                "<RISK_SCORE_PER_HOST>",
                "<GLOSSARY>",
                "<HOST_LIST>",
                "<APPENDICES>",
            ],
        };
        assert_eq!(names, expected, "{name}");
        if spec.hosts > 0 {
            for needle in [
                "<TRACKING_METHOD>",
                "<OPERATING_SYSTEM><![CDATA[",
                "<RESULT format=\"table\"><![CDATA[",
                "<FIRST_FOUND>",
                "<LAST_FOUND>",
                "<TIMES_FOUND>",
                "<VULN_STATUS>",
                "<SEVERITY>",
                "<THREAT>",
                "<TITLE><![CDATA[",
            ] {
                assert!(doc.contains(needle), "{name}: no {needle}");
            }
        }
    }
}

#[test]
fn content_rules_hold() {
    for (name, spec) in cases() {
        let (doc, _) = gen_doc(&spec);
        let r = read(&doc);
        // The glossary lists the pool in ascending order, once each.
        assert!(
            r.glossary.windows(2).all(|w| w[0] < w[1]),
            "{name}: glossary ascending"
        );
        let glossary: HashSet<u64> = r.glossary.iter().copied().collect();
        let mut ips = HashSet::new();
        for (i, host) in r.hosts.iter().enumerate() {
            assert!(ips.insert(host.ip.clone()), "{name}: IP {} twice", host.ip);
            let want_v6 = spec.ipv6_every > 0 && (i as u64 + 1).is_multiple_of(spec.ipv6_every);
            assert_eq!(host.v6, want_v6, "{name}: host {i} {}", host.ip);
            let parsed: std::net::IpAddr = host.ip.parse().expect("an IP address");
            assert_eq!(parsed.is_ipv6(), host.v6, "{name}: {}", host.ip);
            if let std::net::IpAddr::V6(a) = parsed {
                assert_eq!(
                    a.segments()[..2],
                    [0x2001, 0xdb8],
                    "{name}: documentation range"
                );
            }
            let mut keys = HashSet::new();
            for (qid, port, proto, _, _) in &host.findings {
                assert!(
                    glossary.contains(qid),
                    "{name}: QID {qid} not in the glossary"
                );
                assert!(
                    keys.insert((*qid, *port, proto.clone())),
                    "{name}: host {} has ({qid}, {port:?}, {proto:?}) twice",
                    host.ip
                );
            }
        }
        let want = spec.hosts.checked_div(spec.ipv6_every).unwrap_or(0);
        assert_eq!(r.summary.ipv6_hosts, want, "{name}: IPv6 hosts");
    }
}

#[test]
fn thousand_hosts_have_the_requested_mix() {
    let spec = GenSpec {
        hosts: 1_000,
        seed: 99,
        qids: 5_000,
        ..GenSpec::default()
    };
    let (doc, s) = gen_doc(&spec);
    let r = read(&doc);
    let findings = s.vuln + s.practice + s.ig;
    let avg = findings as f64 / s.hosts as f64;
    let want = f64::from(spec.findings_per_host);
    assert!(
        (avg - want).abs() <= want * 0.1,
        "average findings per host {avg}"
    );
    let share = |n: u64| n as f64 / findings as f64;
    assert!(
        (share(s.vuln) - 0.45).abs() < 0.03,
        "Vuln share {}",
        share(s.vuln)
    );
    assert!(
        (share(s.practice) - 0.15).abs() < 0.03,
        "Practice share {}",
        share(s.practice)
    );
    assert!(
        (share(s.ig) - 0.40).abs() < 0.03,
        "Ig share {}",
        share(s.ig)
    );
    let fixed = s.fixed as f64 / (s.vuln + s.practice) as f64;
    assert!((0.03..0.07).contains(&fixed), "Fixed share {fixed}");

    let all: Vec<_> = r.hosts.iter().flat_map(|h| &h.findings).collect();
    let with_port = all.iter().filter(|f| f.1.is_some()).count() as f64 / all.len() as f64;
    assert!(
        (0.62..0.78).contains(&with_port),
        "findings with a port {with_port}"
    );
    let udp = all.iter().filter(|f| f.2.as_deref() == Some("udp")).count();
    let tcp = all.iter().filter(|f| f.2.as_deref() == Some("tcp")).count();
    assert!(udp > 0 && tcp > 2 * udp, "tcp {tcp}, udp {udp}");
    assert!(
        doc.contains("<PORT/>"),
        "some host-level findings have an empty PORT"
    );

    // Counts per host vary; a few QIDs are very common; the same QID on several ports.
    let counts: HashSet<usize> = r.hosts.iter().map(|h| h.findings.len()).collect();
    assert!(counts.len() > 10, "findings per host vary");
    let mut per_qid: HashMap<u64, usize> = HashMap::new();
    for f in &all {
        *per_qid.entry(f.0).or_default() += 1;
    }
    let top = per_qid.values().max().copied().unwrap_or(0);
    assert!(top > 100, "most common QID only {top} times");
    let multi_port = r
        .hosts
        .iter()
        .filter(|h| {
            let mut seen = HashSet::new();
            h.findings
                .iter()
                .any(|f| f.1.is_some() && !seen.insert(f.0))
        })
        .count();
    assert!(
        multi_port > 50,
        "hosts with one QID on several ports: {multi_port}"
    );

    // Statuses of Vuln/Practice are New, Active, Re-Opened or Fixed.
    for f in all.iter().filter(|f| f.3 != "Ig") {
        let st = f.4.as_deref().expect("Vuln/Practice have a status");
        assert!(
            ["New", "Active", "Re-Opened", "Fixed"].contains(&st),
            "{st}"
        );
    }
}

#[test]
fn glossary_text_needs_care() {
    let spec = GenSpec {
        hosts: 1,
        seed: 5,
        qids: 3_000,
        ..GenSpec::default()
    };
    let (doc, _) = gen_doc(&spec);
    let titles: Vec<&str> = blocks(&doc, "<TITLE><![CDATA[", "]]></TITLE>")
        .into_iter()
        .map(|t| &t["<TITLE><![CDATA[".len()..t.len() - "]]></TITLE>".len()])
        .collect();
    assert_eq!(titles.len(), 3_000);
    for (what, test) in [
        (
            "comma",
            &(|t: &str| t.contains(',')) as &dyn Fn(&str) -> bool,
        ),
        ("double quote", &|t: &str| t.contains('"')),
        ("ampersand", &|t: &str| t.contains('&')),
        ("apostrophe", &|t: &str| t.contains('\'')),
        ("non-ASCII", &|t: &str| !t.is_ascii()),
    ] {
        let n = titles.iter().filter(|t| test(t)).count();
        assert!((10..600).contains(&n), "titles with a {what}: {n}");
    }
    let threats: Vec<&str> = blocks(&doc, "<THREAT>", "</THREAT>")
        .into_iter()
        .map(|t| {
            let s = t.find("<![CDATA[").expect("CDATA") + 9;
            let e = t.rfind("]]>").expect("CDATA end");
            &t[s..e]
        })
        .collect();
    let lens: Vec<usize> = threats.iter().map(|t| t.len()).collect();
    assert!(
        lens.iter().all(|&l| (50..=2000).contains(&l)),
        "THREAT lengths"
    );
    assert!(lens.iter().any(|&l| l > 1500) && lens.iter().any(|&l| l < 200));
    for tag in ["<P>", "<BR>", "<B>", "<A HREF=\"", "&amp;lt;", "&quot;"] {
        assert!(
            threats.iter().any(|t| t.contains(tag)),
            "no THREAT with {tag}"
        );
    }
    assert!(
        doc.contains("<THREAT>\n"),
        "some CDATA wrapped in whitespace"
    );
    let cve_lists = blocks(&doc, "<CVE_ID_LIST>", "</CVE_ID_LIST>");
    let max_cves = cve_lists
        .iter()
        .map(|l| l.matches("<CVE_ID>").count())
        .max();
    assert_eq!(max_cves, Some(4));
    assert!(
        cve_lists
            .iter()
            .all(|l| l.contains("<ID><![CDATA[CVE-") && l.contains("<URL>"))
    );
    let bugtraq = blocks(&doc, "<BUGTRAQ_ID_LIST>", "</BUGTRAQ_ID_LIST>");
    assert_eq!(
        bugtraq
            .iter()
            .map(|l| l.matches("<BUGTRAQ_ID>").count())
            .max(),
        Some(2)
    );
}

#[test]
fn zero_qids_is_an_error_when_hosts_have_findings() {
    let spec = GenSpec {
        hosts: 2,
        qids: 0,
        ..GenSpec::default()
    };
    let err = generate(&spec, &mut Vec::new()).expect_err("no pool");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// Memory does not depend on the number of hosts (the generator keeps only the current
/// host); this checks that a large run streams through to the end.
#[test]
fn two_hundred_thousand_hosts_stream_into_a_sink() {
    let spec = GenSpec {
        hosts: 200_000,
        seed: 1,
        findings_per_host: 4,
        qids: 1_000,
        ..GenSpec::default()
    };
    let summary = generate(&spec, &mut std::io::sink()).expect("generate");
    assert_eq!(summary.hosts, 200_000);
    assert_eq!(summary.ipv6_hosts, 4_000);
    assert!(summary.bytes > 200_000 * 1_000);
}

// ---------------------------------------------------------------------------------------
// The binary.

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qualys-sim"))
        .args(args)
        .output()
        .expect("run qualys-sim")
}

#[test]
fn cli_generate_writes_the_file_and_prints_the_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.xml");
    let path_str = path.to_str().expect("UTF-8 path");
    let out = run(&[
        "generate",
        "--hosts",
        "25",
        "--seed",
        "9",
        "--findings-per-host=6",
        "--qids",
        "300",
        "--ipv6-every",
        "5",
        "--glossary-first",
        "--out",
        path_str,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");

    let spec = GenSpec {
        hosts: 25,
        seed: 9,
        findings_per_host: 6,
        qids: 300,
        ipv6_every: 5,
        glossary_first: true,
        change_every: 0,
    };
    let (doc, summary) = gen_doc(&spec);
    assert_eq!(std::fs::read_to_string(&path).expect("report"), doc);
    assert_eq!(json, serde_json::to_value(&summary).expect("to JSON"));
    assert_eq!(json["hosts"], 25);
    assert_eq!(json["ipv6_hosts"], 5);
    assert_eq!(json["bytes"], doc.len() as u64);
}

#[test]
fn cli_generate_to_stdout_puts_the_summary_on_stderr() {
    let out = run(&[
        "generate", "--hosts", "3", "--seed", "2", "--qids", "50", "--out", "-",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let (doc, summary) = gen_doc(&GenSpec {
        hosts: 3,
        seed: 2,
        qids: 50,
        ..GenSpec::default()
    });
    assert!(out.stdout == doc.as_bytes(), "stdout is the report");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("JSON summary on stderr");
    assert_eq!(json, serde_json::to_value(&summary).expect("to JSON"));
}

#[test]
fn cli_help_lists_the_subcommands() {
    for args in [&["--help"][..], &["help"], &["generate", "--help"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("generate"), "{args:?}: {text}");
    }
}

#[test]
fn cli_bad_usage_exits_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing subcommand"),
        (&["frobnicate"], "unknown subcommand"),
        (&["generate"], "--hosts is required"),
        (
            &["generate", "--hosts", "1", "--out", "-"],
            "--seed is required",
        ),
        (
            &["generate", "--hosts", "1", "--seed", "1"],
            "--out is required",
        ),
        (
            &["generate", "--hosts", "x", "--seed", "1", "--out", "-"],
            "--hosts",
        ),
        (
            &["generate", "--hosts", "-1", "--seed", "1", "--out", "-"],
            "--hosts",
        ),
        (
            &[
                "generate", "--hosts", "1", "--seed", "1", "--out", "-", "--qids", "0",
            ],
            "--qids",
        ),
        (
            &[
                "generate", "--hosts", "1", "--seed", "1", "--out", "-", "--bogus",
            ],
            "unknown option",
        ),
        (&["generate", "--hosts"], "--hosts needs a value"),
        (&["generate", "--glossary-first=yes"], "takes no value"),
        (
            &[
                "generate",
                "--hosts",
                "1",
                "--seed",
                "1",
                "--findings-per-host",
                "99999999999",
                "--out",
                "-",
            ],
            "--findings-per-host",
        ),
    ];
    for (args, message) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(err.contains("usage: qualys-sim"), "{args:?}: {err}");
    }
}

#[test]
fn cli_unwritable_output_exits_1() {
    let out = run(&[
        "generate",
        "--hosts",
        "1",
        "--seed",
        "1",
        "--out",
        "/nonexistent-dir/report.xml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create"));
}

/// `change_every`: the same seed with and without it differs in every Nth host only, and
/// there in one finding's status.
#[test]
fn change_every_changes_every_nth_host_only() {
    let spec = GenSpec {
        hosts: 40,
        seed: 3,
        ..GenSpec::default()
    };
    let changed = GenSpec {
        change_every: 10,
        ..spec.clone()
    };
    let hosts = |doc: &str| -> Vec<String> {
        doc.split("<HOST>")
            .skip(1)
            .map(|h| h.split("</HOST>").next().unwrap_or_default().to_string())
            .collect()
    };
    let (a, _) = gen_doc(&spec);
    let (b, _) = gen_doc(&changed);
    let (ha, hb) = (hosts(&a), hosts(&b));
    assert_eq!(ha.len(), 40);
    assert_eq!(hb.len(), 40);
    for (i, (x, y)) in ha.iter().zip(&hb).enumerate() {
        if (i + 1) % 10 == 0 {
            assert_ne!(x, y, "host {} changes", i + 1);
            let fixed = |h: &str| h.matches("<VULN_STATUS>Fixed</VULN_STATUS>").count() as i64;
            assert_eq!(
                (fixed(x) - fixed(y)).abs(),
                1,
                "host {}: one status flipped",
                i + 1
            );
        } else {
            assert_eq!(x, y, "host {} is the same", i + 1);
        }
    }
}
