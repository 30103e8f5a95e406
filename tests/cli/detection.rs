//! The detection path's documents (qualys.md §7): qualys-sim loads the real Host List
//! Detection and KnowledgeBase responses (`--detections`, `--kb`) and answers queries
//! from them over HTTP; the connector's readers (`qualys::detection`) read the answers,
//! following the paging WARNING by its `id_min` only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use base64::Engine as _;
use qualys_connector::qualys::detection::{ids, kb, page};
use qualys_connector_sim::qualys::{Estate, QualysServer, ServerOptions};

use crate::harness::shared_fixture;

/// A made-up page of three more hosts, to page through.
const MORE: &str = "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST>\
    <HOST><ID>7000001</ID><IP>192.0.2.1</IP><DETECTION_LIST><DETECTION><QID>6</QID><TYPE>Confirmed</TYPE><STATUS>Active</STATUS></DETECTION></DETECTION_LIST></HOST>\
    <HOST><ID>7000002</ID><IP>192.0.2.2</IP><DETECTION_LIST><DETECTION><QID>45017</QID><TYPE>Potential</TYPE><STATUS>New</STATUS></DETECTION></DETECTION_LIST></HOST>\
    <HOST><ID>7000003</ID><IPV6>2001:db8::3</IPV6><DETECTION_LIST><DETECTION><QID>38170</QID><TYPE>Confirmed</TYPE><STATUS>Fixed</STATUS></DETECTION></DETECTION_LIST></HOST>\
    </HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>";

/// `GET path?query` with the credentials and `X-Requested-With`; the body.
fn get(server: &QualysServer, path_and_query: &str) -> (u16, Vec<u8>) {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nX-Requested-With: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[test]
fn real_responses_replay_through_the_readers_page_by_page() {
    let (Some(hld), Some(kb_file)) = (
        shared_fixture("detection/hld_1host_3detections.xml"),
        shared_fixture("detection/kb_42_vulns.xml"),
    ) else {
        println!("SKIP: the detection fixtures are absent");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let more = dir.path().join("more.xml");
    std::fs::write(&more, MORE).unwrap();
    let estate = Estate::load(&[hld, more], &[kb_file]).unwrap();
    let mut options = ServerOptions::new("u", "p");
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.estate = Some(Arc::new(estate));
    // The WARNING's URL names another host: only its id_min may be used.
    options.warning_host = Some("elsewhere.example".into());
    let server = QualysServer::start(options).unwrap();

    // The host IDs in scope.
    let (status, body) = get(
        &server,
        "/api/2.0/fo/asset/host/?action=list&details=None&truncation_limit=0",
    );
    assert_eq!(status, 200);
    let mut ranges = Vec::new();
    let summary = ids::parse(&body[..], &mut |r| {
        ranges.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.ids, 4, "{ranges:?}");

    // Pages of one host, followed by id_min, with Fixed detections asked for.
    let mut hosts = Vec::new();
    let mut id_min: Option<u64> = None;
    let mut pages = 0;
    loop {
        let query = format!(
            "/api/4.0/fo/asset/host/vm/detection/?action=list&truncation_limit=1&status=New,Active,Re-Opened,Fixed{}",
            id_min.map(|i| format!("&id_min={i}")).unwrap_or_default()
        );
        let (status, body) = get(&server, &query);
        assert_eq!(status, 200);
        let summary = page::parse(&body[..], &mut |h| {
            hosts.push(h);
            Ok(())
        })
        .unwrap();
        pages += 1;
        match summary.warning {
            Some(w) => {
                assert!(w.url.as_deref().unwrap().contains("elsewhere.example"));
                id_min = Some(w.id_min().unwrap());
            }
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(pages, 4);
    let ids: Vec<u64> = hosts.iter().map(|h| h.id).collect();
    assert_eq!(ids, vec![6506432, 7000001, 7000002, 7000003]);
    assert_eq!(hosts[0].host.findings.len(), 3);
    assert_eq!(hosts[3].host.ip.to_string(), "2001:db8::3");

    // The KB for the QIDs seen: the known ones come back, the unknown are absent.
    let (status, body) = get(
        &server,
        "/api/2.0/fo/knowledge_base/vuln/?action=list&ids=6,45017,38170,999999",
    );
    assert_eq!(status, 200);
    let mut entries = Vec::new();
    kb::parse(&body[..], 512, &mut |e| {
        entries.push(e);
        Ok(())
    })
    .unwrap();
    let qids: Vec<u32> = entries.iter().map(|e| e.qid).collect();
    assert!(qids.contains(&6) && qids.contains(&45017), "{qids:?}");
    assert!(!qids.contains(&999999));
    assert_eq!(
        entries.iter().find(|e| e.qid == 6).unwrap().details.title,
        "DNS Host Name"
    );

    // A bad ids value is Qualys's error 1905, read as such.
    let (status, body) = get(
        &server,
        "/api/2.0/fo/asset/host/vm/detection/?action=list&ids=abc123",
    );
    assert_eq!(status, 400);
    let err = page::parse(&body[..], &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1905"), "{err}");
    server.stop();
}

/// A Qualys client for `server` (plain HTTP on loopback), as the run builds one.
fn client(server: &QualysServer) -> qualys_connector::qualys::client::Qualys {
    use qualys_connector::qualys::bounds::Bounds;
    use qualys_connector::qualys::client::{Api, Limits, Qualys, QualysOptions};
    use qualys_connector::qualys::http::{Client, Url};
    use std::time::Duration;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let http = Client {
        tls: Arc::new(tls),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
    };
    let options = QualysOptions {
        url: Url::parse(&server.url()).unwrap(),
        user: "u".into(),
        password: qualys_connector::secret::Secret::new("p"),
        api: Api::V2,
        api_path: "/api/2.0".into(),
        poll_interval: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
        retries: 3,
        max_wait: Duration::from_secs(5),
        bounds: Bounds {
            max_bytes: 1 << 30,
            deadline: Duration::from_secs(60),
            min_free: 0,
        },
    };
    Qualys::new(http, options, Arc::new(Limits::default()))
}

/// Every page of a generated estate, fetched by two workers in batches of 7 host IDs and
/// pages of 7 hosts, through a 409 burst, two cut pages and WARNINGs naming another host:
/// each host exactly once, with the detections the report path would send.
#[test]
fn every_page_of_every_batch_is_fetched_whole() {
    use qualys_connector::qualys::detection::fetch::{self, FetchOptions};
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 50,
        seed: 2,
        findings_per_host: 6,
        qids: 60,
        ..GenSpec::default()
    };
    let generated = generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let estate = Estate::from_report(&report).unwrap();
    let mut options = ServerOptions::new("u", "p");
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.estate = Some(Arc::new(estate));
    options.warning_host = Some("elsewhere.example".into());
    options.rate_limit_first = 2;
    options.to_wait_sec = 0;
    options.cut_pages_first = 2;
    let server = QualysServer::start(options).unwrap();
    let qualys = client(&server);
    let opts = FetchOptions {
        api_path: "/api/2.0".into(),
        hosts_per_call: 7,
        workers: 2,
        detection_params: vec![("status".into(), "New,Active,Re-Opened,Fixed".into())],
        scope_params: Vec::new(),
        page_tries: 3,
    };
    let (ranges, summary) = fetch::host_ids(&qualys, &opts).unwrap();
    assert_eq!(summary.ids, 50);
    let batches = fetch::batches(&ranges, 7);
    assert_eq!(batches.len(), 8);
    let mut ids = Vec::new();
    let mut sendable = 0u64;
    let pages = fetch::pages(&qualys, &opts, batches, &mut |p| {
        let file = std::fs::File::open(p.file.path()).map_err(|e| e.to_string())?;
        page::parse(std::io::BufReader::new(file), &mut |h| {
            ids.push(h.id);
            sendable += h
                .host
                .findings
                .iter()
                .filter(|f| {
                    f.kind != qualys_connector::model::FindingType::Ig
                        && f.status != qualys_connector::model::VulnStatus::Fixed
                })
                .count() as u64;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(())
    })
    .unwrap();
    assert!(pages >= 8, "{pages} pages");
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "no host twice");
    // Hosts without any detection are not listed by Qualys (nor by the simulator).
    assert!(
        ids.len() as u64 <= generated.hosts && ids.len() >= 45,
        "{}",
        ids.len()
    );
    assert_eq!(sendable, generated.sendable, "the report path's findings");
    // Every request went to the configured server, none to the WARNING's host; the 409s
    // and the cut pages were asked again.
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.auth_ok || r.status == 409));
    let detection_calls = requests
        .iter()
        .filter(|r| r.path.contains("/vm/detection"))
        .count();
    assert!(
        detection_calls >= pages as usize + 2,
        "{detection_calls} calls for {pages} pages"
    );
    server.stop();
}

/// The KnowledgeBase through the cache: the first lookup asks Qualys (in batches), the
/// second is served from the cache, unknown QIDs are reported, and a refresh asks only
/// for what changed since.
#[test]
fn the_knowledge_base_is_fetched_once_and_cached() {
    use qualys_connector::qualys::detection::kbcache::{self, KbCache};
    let Some(kb_file) = shared_fixture("detection/kb_42_vulns.xml") else {
        return;
    };
    let none: [&std::path::Path; 0] = [];
    let estate = Estate::load(&none, &[kb_file]).unwrap();
    let qids: Vec<u32> = estate.kb.keys().copied().collect();
    assert_eq!(qids.len(), 42);
    let mut options = ServerOptions::new("u", "p");
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.estate = Some(Arc::new(estate));
    let server = QualysServer::start(options).unwrap();
    let qualys = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let cache = KbCache::open(&dir.path().join("sync.db")).unwrap();
    let mut asked = qids.clone();
    asked.push(999_999);
    let (found, stats) = kbcache::lookup(&qualys, &cache, "/api/2.0", &asked, 512).unwrap();
    assert_eq!(found.len(), 42);
    assert_eq!((stats.cached, stats.fetched, stats.calls), (0, 42, 1));
    assert_eq!(stats.unknown, vec![999_999]);
    let kb_calls = |s: &QualysServer| {
        s.requests()
            .iter()
            .filter(|r| r.path.contains("knowledge_base"))
            .count()
    };
    assert_eq!(kb_calls(&server), 1);
    let (again, stats) = kbcache::lookup(&qualys, &cache, "/api/2.0", &qids, 512).unwrap();
    assert_eq!(again, found);
    assert_eq!((stats.cached, stats.calls), (42, 0));
    assert_eq!(kb_calls(&server), 1, "served from the cache");
    // A refresh since a moment after every entry's modification brings nothing new.
    kbcache::mark_refreshed(&cache, "2099-01-01T00:00:00Z").unwrap();
    assert_eq!(
        kbcache::refresh(&qualys, &cache, "/api/2.0", 512).unwrap(),
        0
    );
    kbcache::mark_refreshed(&cache, "2000-01-01T00:00:00Z").unwrap();
    assert_eq!(
        kbcache::refresh(&qualys, &cache, "/api/2.0", 512).unwrap(),
        42
    );
    let refreshed = cache.refreshed().unwrap().unwrap();
    assert!(
        refreshed.as_str() > "2000-01-01T00:00:00Z",
        "the answer's own time"
    );
    server.stop();
}

/// The same estate through both paths: a report template, and `qualys_source:
/// detections` (pages of 7 hosts, two workers), into two FMC simulators: the same map.
/// With `sync_state` the second detection run sends nothing.
#[test]
fn the_detection_path_puts_what_the_report_path_puts_in_the_fmc() {
    use crate::fmc::Fmc;
    use qualys_connector_sim::fmc::EnrollOptions;
    use qualys_connector_sim::qualys::{GenSpec, TemplateSource, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 60,
        seed: 5,
        findings_per_host: 5,
        qids: 80,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let server = crate::download::qualys(|o| {
        o.templates = vec![("424242".into(), TemplateSource::File(report.clone()))];
        o.estate = Some(Arc::new(Estate::from_report(&report).unwrap()));
    });
    let run = |fmc: &Fmc, extra: &str| {
        let test = crate::harness::Test::new().config(&crate::download::yaml(&server, extra));
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        let test = test.args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
        ]);
        (test.run(), test)
    };
    let mut by_report = Fmc::start(|_| {});
    run(&by_report, "").0.assert_code(0);
    let mut by_detections = Fmc::start(|_| {});
    let (out, test) = run(
        &by_detections,
        "qualys_source: detections\nhosts_per_call: 7\nqualys_workers: 2\nsync_state: sync.db\n",
    );
    out.assert_code(0)
        .assert_output_contains("Host List: 60 host IDs in scope")
        .assert_output_contains("full run for FMC");
    let report_map = by_report.stop();
    let want = crate::sync::held(&report_map);
    assert!(want.len() > 40, "{}", want.len());
    let detection_map = by_detections.server.as_ref().unwrap().map();
    let got = crate::sync::held(&detection_map);
    assert_eq!(got, want);
    // The same titles too (the KnowledgeBase's TITLE, the glossary's in the report).
    let titles = |map: &qualys_connector_sim::fmc::NetworkMap| {
        let mut t: Vec<(String, Option<u64>, String)> = map
            .hosts
            .iter()
            .flat_map(|(ip, h)| {
                h.results
                    .iter()
                    .map(move |r| (ip.to_string(), r.vuln_id, r.name.clone()))
            })
            .filter(|(_, qid, _)| qid.is_some())
            .collect();
        t.sort();
        t
    };
    assert_eq!(titles(&detection_map), titles(&report_map));
    assert!(
        titles(&report_map)
            .iter()
            .all(|(_, _, name)| !name.is_empty())
    );
    // Again, with the state: nothing changed, nothing sent.
    let before = by_detections
        .server
        .as_ref()
        .unwrap()
        .stats()
        .applied_results;
    let again = test.run();
    again
        .assert_code(0)
        .assert_output_contains("delta run for FMC")
        .assert_output_contains("0 new, 0 changed; 0 sent");
    assert_eq!(
        by_detections
            .server
            .as_ref()
            .unwrap()
            .stats()
            .applied_results,
        before
    );
    by_detections.stop();

    // check tries the detection path: the Host List and the KnowledgeBase.
    let t = crate::harness::Test::new()
        .config(&crate::download::yaml(
            &server,
            "qualys_source: detections\n",
        ))
        .args(&["check"]);
    let out = t.run();
    out.assert_output_contains(
        "Host List (/api/2.0): 60 host IDs in scope; KnowledgeBase (/api/2.0): answers",
    );

    // -report and -multiinfo are the report path's.
    let t = crate::harness::Test::new()
        .config(&crate::download::yaml(
            &server,
            "qualys_source: detections\n",
        ))
        .args(&["-report=x.xml", "-csvfile=o.csv"]);
    t.run()
        .assert_code(2)
        .assert_output_contains("-report does not apply to qualys_source: detections");
}

/// With `sync_state`, a delta run asks only for the hosts Qualys processed after the last
/// complete pull's start (less the margin); the hosts it does not get back are unchanged,
/// not vanished (even with `vanished_hosts: clear`); the FMC ends with what a full pull
/// of the changed estate gives.
#[test]
fn a_delta_pull_asks_for_what_qualys_processed_since() {
    use crate::fmc::Fmc;
    use qualys_connector_sim::fmc::EnrollOptions;
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 100,
        seed: 8,
        findings_per_host: 4,
        qids: 50,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let before = Estate::from_report(&report).unwrap();
    // Three hosts of 100 (3%) re-processed later: one finding of each now Fixed.
    let mut after = before.clone();
    let changed: Vec<u64> = after
        .hosts
        .iter()
        .filter(|(_, h)| {
            h.detections
                .iter()
                .any(|d| d.kind != "Info" && d.status != "Fixed")
        })
        .map(|(id, _)| *id)
        .step_by(29)
        .take(3)
        .collect();
    assert_eq!(changed.len(), 3);
    for id in &changed {
        let h = after.hosts.get_mut(id).unwrap();
        h.processed = "2099-01-01T00:00:00Z".into();
        if let Some(d) = h
            .detections
            .iter_mut()
            .find(|d| d.kind != "Info" && d.status != "Fixed")
        {
            d.status = "Fixed".into();
        }
    }
    let serve =
        |estate: &Estate| crate::download::qualys(|o| o.estate = Some(Arc::new(estate.clone())));
    let config = |server: &QualysServer, extra: &str| {
        crate::download::yaml(
            server,
            &format!(
                "qualys_source: detections\nhosts_per_call: 10\nvanished_hosts: clear\n{extra}"
            ),
        )
    };
    let mut fmc = Fmc::start(|_| {});
    let test = crate::harness::Test::new();
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let run = |server: &QualysServer| {
        run_in(
            &test,
            &config(server, "sync_state: sync.db\n"),
            fmc.addr(),
            &[],
        )
    };
    let first = serve(&before);
    run(&first)
        .assert_code(0)
        .assert_output_contains("full run for FMC");
    assert!(
        first
            .requests()
            .iter()
            .all(|r| !r.params.iter().any(|(k, _)| k == "vm_processed_after")),
        "a full pull asks for everything"
    );
    first.stop();
    let second = serve(&after);
    let out = run(&second);
    out.assert_code(0)
        .assert_output_contains("delta run for FMC")
        .assert_output_contains("an incremental pull: hosts Qualys processed after ")
        .assert_output_contains("0 new, 3 changed; 3 sent");
    assert!(
        !out.output().contains("no longer in the report"),
        "{}",
        out.output()
    );
    let asked: Vec<String> = second
        .requests()
        .iter()
        .flat_map(|r| r.params.clone())
        .filter(|(k, _)| k == "vm_processed_after")
        .map(|(_, v)| v)
        .collect();
    assert!(
        !asked.is_empty(),
        "the delta pull asks for processed hosts only"
    );
    second.stop();
    // What a full pull of the changed estate gives, into a fresh FMC.
    let reference = serve(&after);
    let mut fresh = Fmc::start(|_| {});
    let t = crate::harness::Test::new().config(&config(&reference, ""));
    fresh.enroll_into(&t, "CertFile.pkcs12", &EnrollOptions::default());
    t.args(&[
        format!("-server={}", fresh.addr().ip()),
        format!("-port={}", fresh.addr().port()),
    ])
    .run()
    .assert_code(0);
    assert_eq!(
        crate::sync::held(&fmc.stop()),
        crate::sync::held(&fresh.stop())
    );
}

/// Runs the connector in `test`, with `yaml` as its configuration (written anew), against
/// the FMC at `fmc`, with `extra` options.
fn run_in(
    test: &crate::harness::Test,
    yaml: &str,
    fmc: std::net::SocketAddr,
    extra: &[&str],
) -> crate::harness::Outcome {
    std::fs::create_dir_all(test.path("InputPlugins")).unwrap();
    std::fs::write(test.path("InputPlugins/QualysGuard.yaml"), yaml).unwrap();
    let out = test
        .command()
        .args([
            format!("-server={}", fmc.ip()),
            format!("-port={}", fmc.port()),
        ])
        .args(extra)
        .output()
        .unwrap();
    crate::harness::Outcome::from(out)
}

/// The run of `yaml` (the detection source) against `server` into a new fmc-sim: its
/// outcome, and the map.
fn detection_run(
    server: &QualysServer,
    extra: &str,
) -> (
    crate::harness::Outcome,
    qualys_connector_sim::fmc::NetworkMap,
) {
    use qualys_connector_sim::fmc::EnrollOptions;
    let mut fmc = crate::fmc::Fmc::start(|_| {});
    let test = crate::harness::Test::new().config(&crate::download::yaml(
        server,
        &format!("qualys_source: detections\n{extra}"),
    ));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let out = test
        .args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
        ])
        .run();
    (out, fmc.stop())
}

/// Four workers against a concurrency limit of 2: one slot is left for other tools, so
/// never more than one call is in flight from the connector.
#[test]
fn workers_leave_one_slot_of_the_concurrency_limit() {
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 80,
        seed: 3,
        findings_per_host: 3,
        qids: 40,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let server = crate::download::qualys(|o| {
        o.estate = Some(Arc::new(Estate::from_report(&report).unwrap()));
        o.concurrency_limit = 2;
        o.trickle_ms = 0;
    });
    let (out, map) = detection_run(&server, "hosts_per_call: 5\nqualys_workers: 4\n");
    out.assert_code(0);
    assert!(map.hosts.len() > 60);
    assert_eq!(server.max_concurrent_seen(), 1, "calls in flight at once");
    assert!(server.requests().iter().all(|r| r.status != 409), "no 409");
}

/// The real responses through a whole run: the host file's QIDs are not in the KB file,
/// so they are sent without titles, one warning each; the error documents give their
/// CODE, text, a hint and exit code 6.
#[test]
fn the_real_fixtures_through_a_run() {
    use qualys_connector_sim::qualys::InjectedBody;
    let (Some(hld), Some(kb_file), Some(error)) = (
        shared_fixture("detection/hld_1host_3detections.xml"),
        shared_fixture("detection/kb_42_vulns.xml"),
        shared_fixture("detection/hld_error_1905_http400.xml"),
    ) else {
        return;
    };
    let estate = Estate::load(&[hld], &[kb_file]).unwrap();
    let server = crate::download::qualys(|o| o.estate = Some(Arc::new(estate.clone())));
    let kept = tempfile::tempdir().unwrap();
    let (out, map) = detection_run(
        &server,
        &format!("keep_report: {}\n", kept.path().display()),
    );
    out.assert_code(0);
    let pages: Vec<_> = std::fs::read_dir(kept.path()).unwrap().collect();
    assert_eq!(pages.len(), 1, "keep_report keeps every page");
    for qid in [38170, 38173, 38601] {
        assert_eq!(
            out.output()
                .matches(&format!("QID {qid} is not in the KnowledgeBase"))
                .count(),
            1,
            "{}",
            out.output()
        );
    }
    let host = &map.hosts[&"10.10.10.11".parse().unwrap()];
    assert_eq!(host.results.len(), 3);
    assert!(host.results.iter().all(|r| r.name.is_empty()), "no titles");
    server.stop();

    let body = std::fs::read(error).unwrap();
    let server = crate::download::qualys(|o| {
        o.estate = Some(Arc::new(estate));
        o.inject_body = Some(InjectedBody {
            status: 400,
            body,
            calls: 100,
            action: None,
        });
    });
    let (out, _) = detection_run(&server, "");
    out.assert_code(6)
        .assert_output_contains("1905")
        .assert_output_contains("parameter ids has invalid value")
        .assert_output_contains("hint:");
}

/// 25,000 hosts in ID batches of 1,000 while the platform's page limit is 300: every
/// WARNING followed by id_min, with the other parameters kept, to the end of each batch.
#[test]
fn a_large_estate_is_fetched_completely_through_pages_smaller_than_the_batch() {
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 25_000,
        seed: 6,
        findings_per_host: 2,
        qids: 300,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let estate = Estate::from_report(&report).unwrap();
    let with_detections = estate
        .hosts
        .values()
        .filter(|h| h.detections.iter().any(|d| d.kind != "Info"))
        .count();
    let server = crate::download::qualys(|o| {
        o.estate = Some(Arc::new(estate));
        o.max_page_hosts = Some(300);
        o.concurrency_limit = 3;
    });
    let (out, map) = detection_run(&server, "hosts_per_call: 1000\n");
    out.assert_code(0)
        .assert_output_contains("Host List: 25000 host IDs in scope");
    assert_eq!(map.hosts.len(), with_detections);
    let pages: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/vm/detection"))
        .collect();
    // 25 batches of 4 pages each (300 + 300 + 300 + 100 hosts), or near it: hosts
    // without a detection are left out of pages.
    assert!(pages.len() >= 75, "{} pages", pages.len());
    let followed: Vec<_> = pages
        .iter()
        .filter(|r| r.params.iter().any(|(k, _)| k == "id_min"))
        .collect();
    assert!(!followed.is_empty());
    for r in &followed {
        let has = |k: &str| r.params.iter().any(|(n, _)| n == k);
        assert!(
            has("ids") && has("status") && has("truncation_limit"),
            "{:?}",
            r.params
        );
    }
    // Never more than the limit less one (whether two calls overlapped depends on the
    // machine's load: the bench shows the parallel speed).
    assert!(server.max_concurrent_seen() <= 2, "the limit less one");
}

/// Faults of the detection path: pages cut in half (fetched again within the run), and
/// the connector SIGKILLed at seeded moments of a run with `sync_state`: the rerun ends
/// with the fault-free map.
#[test]
fn faults_and_kills_of_a_detection_run_converge() {
    use crate::fmc::Fmc;
    use qualys_connector_sim::fmc::EnrollOptions;
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 60,
        seed: 9,
        findings_per_host: 4,
        qids: 60,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let estate = Arc::new(Estate::from_report(&report).unwrap());
    let clean = crate::download::qualys(|o| o.estate = Some(Arc::clone(&estate)));
    let (out, map) = detection_run(&clean, "hosts_per_call: 10\n");
    out.assert_code(0);
    let want = crate::sync::held(&map);
    clean.stop();

    let cut = crate::download::qualys(|o| {
        o.estate = Some(Arc::clone(&estate));
        o.cut_pages_first = 3;
    });
    let (out, map) = detection_run(&cut, "hosts_per_call: 10\n");
    out.assert_code(0)
        .assert_output_contains("fetching it again");
    assert_eq!(crate::sync::held(&map), want, "cut pages");
    cut.stop();

    let points: u64 = std::env::var("SYNC_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(8, |n: u64| n.min(40));
    let mut seed = 0xdec0de_u64;
    for point in 0..points {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let server = crate::download::qualys(|o| {
            o.estate = Some(Arc::clone(&estate));
            o.page_delay_ms = 20;
        });
        let mut fmc = Fmc::start(|_| {});
        let test = crate::harness::Test::new().config(&crate::download::yaml(
            &server,
            "qualys_source: detections\nhosts_per_call: 10\nsync_state: sync.db\n",
        ));
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        let args = [
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
        ];
        let mut child = test
            .command()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(seed % 300));
        let _ = child.kill();
        let _ = child.wait();
        let out = test.command().args(&args).output().unwrap();
        assert!(out.status.success(), "point {point}: {out:?}");
        assert_eq!(
            crate::sync::held(&fmc.stop()),
            want,
            "killed at point {point}"
        );
        server.stop();
    }
}

/// A stalled page and a stalled KnowledgeBase call (the idle timeout gives up, the call
/// is made again), and an error document mid-run (the run fails with what was confirmed
/// kept; with `sync_state` the rerun sends the rest): the fault-free map either way.
#[test]
fn stalls_and_an_error_mid_run_end_in_the_fault_free_map() {
    use qualys_connector_sim::qualys::{GenSpec, generate};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let spec = GenSpec {
        hosts: 50,
        seed: 10,
        findings_per_host: 3,
        qids: 40,
        ..GenSpec::default()
    };
    generate(&spec, &mut std::fs::File::create(&report).unwrap()).unwrap();
    let estate = Arc::new(Estate::from_report(&report).unwrap());
    let clean = crate::download::qualys(|o| o.estate = Some(Arc::clone(&estate)));
    let (out, map) = detection_run(&clean, "hosts_per_call: 10\n");
    out.assert_code(0);
    let want = crate::sync::held(&map);
    clean.stop();

    let stalls = crate::download::qualys(|o| {
        o.estate = Some(Arc::clone(&estate));
        o.stall_pages_first = 1;
        o.stall_kb_first = 1;
        o.stall_ms = 2500;
    });
    let (out, map) = detection_run(&stalls, "hosts_per_call: 10\ndownload_idle_timeout: 1\n");
    out.assert_code(0);
    assert_eq!(crate::sync::held(&map), want, "stalls");
    stalls.stop();

    // A full pull that fails part-way, after a complete one, with `vanished_hosts:
    // clear`: the hosts it did not get to are not vanished (nothing is cleared), and the
    // rerun converges.
    let mut fmc = crate::fmc::Fmc::start(|_| {});
    let test = crate::harness::Test::new();
    fmc.enroll_into(
        &test,
        "CertFile.pkcs12",
        &qualys_connector_sim::fmc::EnrollOptions::default(),
    );
    let run = |server: &QualysServer, extra: &[&str]| {
        let yaml = crate::download::yaml(
            server,
            "qualys_source: detections\nhosts_per_call: 10\nqualys_workers: 1\nsync_state: sync.db\nvanished_hosts: clear\nmax_vanished_percent: 100\n",
        );
        run_in(&test, &yaml, fmc.addr(), extra)
    };
    let clean = crate::download::qualys(|o| o.estate = Some(Arc::clone(&estate)));
    run(&clean, &[]).assert_code(0);
    clean.stop();
    let failing = crate::download::qualys(|o| {
        o.estate = Some(Arc::clone(&estate));
        o.error_after_pages = Some(2);
    });
    run(&failing, &["-full"])
        .assert_code(6)
        .assert_output_contains("999")
        .assert_output_contains("the pull failed part-way");
    assert_eq!(
        crate::sync::held(&fmc.server.as_ref().unwrap().map()),
        want,
        "nothing cleared by a pull that stopped part-way"
    );
    run(&failing, &[]).assert_code(0);
    assert_eq!(crate::sync::held(&fmc.stop()), want, "after the rerun");
}

/// One machine, two host records (an agent-tracked and an IP-tracked one) on different
/// pages: the first commits with ScanFlush, the second merges (ScanUpdate), so the FMC
/// holds both records' findings, as the report path gives for a host listed twice.
#[test]
fn two_records_of_one_address_merge() {
    use qualys_connector_sim::qualys::estate::{Detection, EstateHost};
    let detection = |qid: &str| Detection {
        qid: qid.into(),
        kind: "Confirmed".into(),
        status: "Active".into(),
        ..Detection::default()
    };
    let mut estate = Estate::default();
    for (id, tracking, qid) in [(1u64, "AGENT", "6"), (2, "IP", "45017")] {
        estate.hosts.insert(
            id,
            EstateHost {
                id,
                ip: "192.0.2.77".into(),
                tracking: tracking.into(),
                processed: "2026-01-01T00:00:00Z".into(),
                detections: vec![detection(qid)],
                ..EstateHost::default()
            },
        );
    }
    let server = crate::download::qualys(|o| o.estate = Some(Arc::new(estate)));
    // One host a page: the two records arrive on two pages.
    let (out, map) = detection_run(&server, "hosts_per_call: 1\n");
    out.assert_code(0);
    let host = &map.hosts[&"192.0.2.77".parse().unwrap()];
    let mut qids: Vec<Option<u64>> = host.results.iter().map(|r| r.vuln_id).collect();
    qids.sort();
    assert_eq!(qids, vec![Some(6), Some(45017)], "both records' findings");
}

/// A host ID Host List Detection returns that the Host List did not give is warned
/// about, and still sent.
#[test]
fn a_host_the_host_list_did_not_give_is_warned_about() {
    use qualys_connector_sim::qualys::estate::{Detection, EstateHost};
    let mut estate = Estate::default();
    for id in 1..=10u64 {
        estate.hosts.insert(
            id,
            EstateHost {
                id,
                ip: format!("192.0.2.{id}"),
                processed: "2026-01-01T00:00:00Z".into(),
                detections: vec![Detection {
                    qid: "6".into(),
                    kind: "Confirmed".into(),
                    status: "Active".into(),
                    ..Detection::default()
                }],
                ..EstateHost::default()
            },
        );
    }
    let server = crate::download::qualys(|o| {
        o.estate = Some(Arc::new(estate));
        o.unlisted_host = Some(5);
    });
    let (out, map) = detection_run(&server, "hosts_per_call: 3\n");
    out.assert_code(0)
        .assert_output_contains("Host List: 9 host IDs in scope")
        .assert_output_contains(
            "Host List Detection returned host ID 5 (192.0.2.5), which the Host List did not list",
        );
    assert_eq!(map.hosts.len(), 10);
}
