//! The Host Input session against the simulator over real TLS on 127.0.0.1: framing
//! (host-input.md §2), the session and its replies (§3), the command language and the
//! network map it builds (§4–§6), and every fault-injection flag.

// Helpers outside #[test] fns (fixtures, clients) fail loudly, as test code should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{Client, EXAMPLE, eventually, example_map, fixture};
use qualys_connector_sim::fmc::{
    CountRule, DEFAULT_SOURCE, FlushScope, HostEntry, NetworkMap, ScanResult, Server, ServerOptions,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A result line and the ScanResult it should become.
fn line(host: &str, vuln: u64, port: Option<u16>, name: &str) -> String {
    let (p, proto) = match port {
        Some(p) => (p.to_string(), "6".to_string()),
        None => (String::new(), String::new()),
    };
    format!(
        r#"AddScanResult,{host},"QualysGuard",{vuln},{p},{proto},"{name}","Description of {name}.","cve_ids: ","bugtraq_ids: ""#
    )
}

fn result(source: &str, vuln: u64, port: Option<u16>, name: &str) -> ScanResult {
    ScanResult {
        source: source.into(),
        scanner_id: "QualysGuard".into(),
        vuln_id: Some(vuln),
        port,
        proto: port.map(|_| 6),
        name: name.into(),
        description: format!("Description of {name}."),
        cve_ids: vec![],
        bugtraq_ids: vec![],
    }
}

fn wait_closed(server: &Server, n: u64) {
    eventually("connections to close", || {
        server.stats().closed_connections >= n
    });
}

#[test]
fn example_stream_of_the_spec_gives_the_expected_map() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut client, max) = Client::session(server.addr(), &fx.id).unwrap();
    assert_eq!(max, 524_288);
    client.ok_block(EXAMPLE, 8);
    client.close();
    wait_closed(&server, 1);
    assert_eq!(server.map(), example_map());
    let stats = server.stats();
    assert_eq!(
        (stats.blocks, stats.commands, stats.unparseable_lines),
        (1, 8, 0)
    );
    assert_eq!(stats.applied_results, 3);
    assert_eq!(server.stop(), example_map());
}

#[test]
fn done_processing_counts_the_commands_of_each_block() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut client, _) = Client::session(server.addr(), &fx.id).unwrap();
    let cases = [
        ("SetSource,QualysGuard\n", 1),
        ("# only a comment\n", 0),
        ("\n\n", 0),
        ("AddHost,192.0.2.1\n# comment\n\nAddHost,192.0.2.2\n", 2),
        // Not strict: an unparseable line is dropped but counted (and logged).
        ("AddHost,not-an-ip\nScanUpdate\n", 2),
        (EXAMPLE, 8),
    ];
    for (block, n) in cases {
        client.ok_block(block, n);
    }
    client.close();
    assert_eq!(server.stats().commands, 12);
    assert_eq!(server.stats().unparseable_lines, 1);
}

/// host-input.md §6: how N is counted is unknown; each rule gives its own N for the
/// same block, a `reply_prefix` line comes first, and a rejected line is not counted.
#[test]
fn count_rules_reply_prefix_and_rejected_lines() {
    let block =
        "SetSource,QualysGuard\nAddHost,192.0.2.1\nScanFlush\nAddHost,192.0.2.2\nScanUpdate\n";
    // (rule, reject_line, N)
    let cases = [
        (CountRule::All, None, 5),
        (CountRule::NoSetSource, None, 4),
        (CountRule::NoCommit, None, 3),
        (CountRule::DataOnly, None, 2),
        (CountRule::All, Some(2), 4),
        (CountRule::DataOnly, Some(4), 1),
        // A rejected commit: not counted by data-only anyway.
        (CountRule::DataOnly, Some(3), 2),
    ];
    for (rule, reject, n) in cases {
        let fx = fixture();
        let server = fx.start(|o| {
            o.count_rule = rule;
            o.reject_line = reject;
            o.reply_prefix = Some("Warning: simulated".into());
        });
        let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
        let (kind, reply) = c.block(block).unwrap();
        assert_eq!(
            (kind, reply),
            (
                3,
                format!("Warning: simulated\nDone processing {n} commands.")
            ),
            "{rule} {reject:?}"
        );
        c.close();
        wait_closed(&server, 1);
        let hosts = server.map().hosts.len();
        let want = if reject == Some(2) || reject == Some(4) {
            1
        } else {
            2
        };
        assert_eq!(
            hosts, want,
            "{rule} {reject:?}: a rejected line is not applied"
        );
        assert_eq!(server.stats().rejected_lines, u64::from(reject.is_some()));
    }
}

/// `count_rule_after`: the second session counts by another rule.
#[test]
fn the_count_rule_can_change_between_sessions() {
    let fx = fixture();
    let server = fx.start(|o| o.count_rule_after = Some(CountRule::NoSetSource));
    for n in [2, 1] {
        let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
        c.ok_block("SetSource,QualysGuard\nAddHost,192.0.2.1\n", n);
        c.close();
    }
}

#[test]
fn frames_split_into_small_writes_are_reassembled() {
    // host-input.md §2: never assume one read returns one message.
    let fx = fixture();
    let server = fx.start(|_| {});
    let mut client = Client::connect(server.addr(), &fx.id, &Default::default()).unwrap();
    let mut frame = vec![0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1];
    frame.extend_from_slice(&[0, 0, 0, 3]);
    frame.extend_from_slice(&(EXAMPLE.len() as u32).to_be_bytes());
    frame.extend_from_slice(EXAMPLE.as_bytes());
    for chunk in frame.chunks(5) {
        client.stream.write_all(chunk).unwrap();
        client.stream.flush().unwrap();
    }
    let (kind, value) = client.read_frame().unwrap();
    assert_eq!((kind, value), (1, 524_288u32.to_be_bytes().to_vec()));
    let (kind, value) = client.read_frame().unwrap();
    assert_eq!(
        (kind, String::from_utf8(value).unwrap()),
        (3, "Done processing 8 commands.".into())
    );
    client.close();
    wait_closed(&server, 1);
    assert_eq!(server.map(), example_map());
}

#[test]
fn scan_flush_replaces_scan_update_merges_and_close_updates() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let h = "192.0.2.30";
    let host = |server: &Server| server.map().hosts.get(&ip(h)).cloned().unwrap();
    let session = || Client::session(server.addr(), &fx.id).unwrap().0;

    // 1. Flush: results 1 and 2.
    let mut c = session();
    let block = format!(
        "SetSource,QualysGuard\nAddHost,{h}\n{}\n{}\nScanFlush\n",
        line(h, 1, Some(80), "one"),
        line(h, 2, None, "two")
    );
    c.ok_block(&block, 5);
    c.close();
    wait_closed(&server, 1);
    let want = HostEntry::with_results([
        result("QualysGuard", 1, Some(80), "one"),
        result("QualysGuard", 2, None, "two"),
    ]);
    assert_eq!(host(&server), want);

    // 2. Update: 3 is added, 1 (same source, vuln, port, proto) is replaced; staged
    //    results persist across blocks of one connection.
    let mut c = session();
    c.ok_block(
        &format!(
            "SetSource,QualysGuard\n{}\n",
            line(h, 3, Some(443), "three")
        ),
        2,
    );
    c.ok_block(
        &format!("{}\nScanUpdate\n", line(h, 1, Some(80), "one again")),
        2,
    );
    c.close();
    wait_closed(&server, 2);
    let want = HostEntry::with_results([
        result("QualysGuard", 1, Some(80), "one again"),
        result("QualysGuard", 2, None, "two"),
        result("QualysGuard", 3, Some(443), "three"),
    ]);
    assert_eq!(host(&server), want);

    // 3. Flush replaces everything of this source.
    let mut c = session();
    c.ok_block(
        &format!(
            "SetSource,QualysGuard\n{}\nScanFlush\n",
            line(h, 4, None, "four")
        ),
        3,
    );
    c.close();
    wait_closed(&server, 3);
    assert_eq!(
        host(&server),
        HostEntry::with_results([result("QualysGuard", 4, None, "four")])
    );

    // 4. No ScanFlush/ScanUpdate: closing the connection is an implicit ScanUpdate.
    let mut c = session();
    c.ok_block(
        &format!("SetSource,QualysGuard\n{}\n", line(h, 5, None, "five")),
        2,
    );
    assert_eq!(
        host(&server).results.len(),
        1,
        "nothing applied before the close"
    );
    c.close();
    wait_closed(&server, 4);
    let want = HostEntry::with_results([
        result("QualysGuard", 4, None, "four"),
        result("QualysGuard", 5, None, "five"),
    ]);
    assert_eq!(host(&server), want);
    assert_eq!(server.stats().implicit_updates, 1);

    // 5. The same when the client just drops the TCP connection (no close_notify).
    let mut c = session();
    c.ok_block(
        &format!("SetSource,QualysGuard\n{}\n", line(h, 6, None, "six")),
        2,
    );
    drop(c);
    wait_closed(&server, 5);
    assert_eq!(host(&server).results.len(), 3);
}

#[test]
fn flush_scope_this_source_or_all_sources() {
    for scope in [FlushScope::ThisSource, FlushScope::AllSources] {
        let fx = fixture();
        let server = fx.start(|o| o.flush_clears = scope);
        let h = "192.0.2.40";
        let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
        c.ok_block(
            &format!(
                "SetSource,Nessus\nAddHost,{h}\n{}\nScanFlush\n",
                line(h, 7, None, "seven")
            ),
            4,
        );
        c.ok_block(
            &format!(
                "SetSource,QualysGuard\n{}\nScanFlush\n",
                line(h, 8, None, "eight")
            ),
            3,
        );
        c.close();
        wait_closed(&server, 1);
        let got = server.map().hosts[&ip(h)].clone();
        let want = match scope {
            FlushScope::ThisSource => HostEntry::with_results([
                result("Nessus", 7, None, "seven"),
                result("QualysGuard", 8, None, "eight"),
            ]),
            FlushScope::AllSources => {
                HostEntry::with_results([result("QualysGuard", 8, None, "eight")])
            }
        };
        assert_eq!(got, want, "{scope:?}");
    }
}

#[test]
fn unknown_hosts_are_ignored_unless_added_or_known() {
    let fx = fixture();
    let server = fx.start(|o| o.known_hosts = vec![ip("192.0.2.61"), ip("2001:db8::61")]);
    assert_eq!(
        server.map().hosts.len(),
        2,
        "known hosts are in the map from the start"
    );
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let block = [
        "SetSource,QualysGuard".to_string(),
        line("192.0.2.60", 1, None, "unknown host"),
        line("192.0.2.61", 2, None, "known host"),
        line("2001:db8::61", 3, None, "known v6 host"),
        "AddHost,192.0.2.62,00:11:22:AA:BB:CC".into(),
        line("192.0.2.62", 4, None, "added host"),
        "ScanFlush".into(),
        "SetAttributeValue,192.0.2.62,Criticality,High".into(),
        "SetAttributeValue,192.0.2.60,Criticality,High".into(),
    ]
    .join("\n")
        + "\n";
    c.ok_block(&block, 9);
    c.close();
    wait_closed(&server, 1);
    let map = server.map();
    assert!(!map.hosts.contains_key(&ip("192.0.2.60")));
    assert_eq!(
        map.hosts[&ip("192.0.2.61")].results,
        vec![result("QualysGuard", 2, None, "known host")]
    );
    assert_eq!(map.hosts[&ip("2001:db8::61")].results.len(), 1);
    let added = &map.hosts[&ip("192.0.2.62")];
    assert_eq!(
        added.results,
        vec![result("QualysGuard", 4, None, "added host")]
    );
    assert_eq!(added.mac.as_deref(), Some("00:11:22:aa:bb:cc"));
    assert_eq!(
        added.attributes.get("Criticality").map(String::as_str),
        Some("High")
    );
    assert_eq!(server.stats().ignored_results, 1);

    // DeleteHost removes a host; its later results are ignored.
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let block = format!(
        "SetSource,QualysGuard\nDeleteHost,192.0.2.62\n{}\nScanUpdate\n",
        line("192.0.2.62", 5, None, "x")
    );
    c.ok_block(&block, 4);
    c.close();
    wait_closed(&server, 2);
    assert!(!server.map().hosts.contains_key(&ip("192.0.2.62")));
    assert_eq!(server.stats().ignored_results, 2);
}

/// host-input.md §6: Rapid7's plugin sends commands before SetSource, so a real FMC
/// accepts them; fmc-sim applies them to a default source and counts them.
#[test]
fn commands_before_set_source_go_to_a_default_source() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let block = format!(
        "AddHost,192.0.2.70\n{}\nScanFlush\nSetSource,QualysGuard\nAddHost,192.0.2.71\n",
        line("192.0.2.70", 1, None, "x")
    );
    c.ok_block(&block, 5);
    c.close();
    wait_closed(&server, 1);
    assert_eq!(server.stats().unparseable_lines, 0);
    let map = server.map();
    let hosts: Vec<IpAddr> = map.hosts.keys().copied().collect();
    assert_eq!(hosts, vec![ip("192.0.2.70"), ip("192.0.2.71")]);
    assert_eq!(
        map.hosts[&ip("192.0.2.70")].results,
        vec![result(DEFAULT_SOURCE, 1, None, "x")]
    );
}

/// Cisco's own forms (host-input.md §4): spaces after commas, tcp/udp, ID lists
/// without their space, CAN- IDs, CRLF endings, and the other commands, applied.
#[test]
fn the_documented_language_and_other_commands_are_applied() {
    let fx = fixture();
    let server = fx.start(|o| o.strict = true);
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let block = "SetSource, QualysGuard\r\n\
SetSourceType, 2\r\n\
SetMap, Qualys map\r\n\
AddHost, 10.9.9.1, 00:1A:2B:3C:4D:5E\r\n\
SetOS,10.9.9.1,Microsoft,Windows,\"10\"\r\n\
AddService, 10.9.9.1, 22, tcp, ssh, OpenBSD, 8.9\r\n\
AddService,10.9.9.1,53,UDP\r\n\
AddScanResult, 10.9.9.1, \"QualysGuard\", 38170, 443, tcp, \"SSL\", \"d\", \"cve_ids:CVE-2014-0160\", \"bugtraq_ids:\"\r\n\
AddScanResult,10.9.9.1,\"QualysGuard\",82003,,,\"ICMP\",\"d\",\"cve_ids: CAN-1999-0524\",\"bugtraq_ids: 66690\"\r\n\
ScanFlush\r\n\
AddHost,,aa:bb:cc:dd:ee:ff\r\n\
AddHost,10.9.9.2\r\n\
UnsetOS, 10.9.9.2\r\n";
    c.ok_block(block, 13);
    // DeleteScanResult (probable form) with ScanUpdate removes the one result.
    c.ok_block(
        "DeleteScanResult, 10.9.9.1, \"QualysGuard\", 82003\nScanUpdate\n",
        2,
    );
    c.ok_block("DeleteHost,,aa:bb:cc:dd:ee:ff\n", 1);
    c.close();
    wait_closed(&server, 1);
    assert_eq!(server.stats().unparseable_lines, 0);
    let map = server.map();
    let host = &map.hosts[&ip("10.9.9.1")];
    assert_eq!(host.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
    assert_eq!(host.results.len(), 1);
    assert_eq!(host.results[0].cve_ids, vec!["CVE-2014-0160"]);
    assert_eq!(host.results[0].proto, Some(6));
    let os = host.os.as_ref().unwrap();
    assert_eq!(
        (os.vendor.as_str(), os.product.as_str(), os.version.as_str()),
        ("Microsoft", "Windows", "10")
    );
    let services: Vec<(u16, u8, &str)> = host
        .services
        .iter()
        .map(|s| (s.port, s.proto, s.server.as_str()))
        .collect();
    assert_eq!(services, vec![(22, 6, "ssh"), (53, 17, "")]);
    assert!(map.hosts[&ip("10.9.9.2")].os.is_none());
    assert!(map.mac_only_hosts.is_empty(), "deleted by MAC");
    let settings = &map.sources["QualysGuard"];
    assert_eq!(settings.source_type, Some(2));
    assert_eq!(settings.map_set.as_deref(), Some("Qualys map"));
}

/// What is really invalid is still refused with its reason; an unknown command by name.
#[test]
fn invalid_lines_are_named() {
    let cases = [
        ("Frobnicate,1", "unknown command \"Frobnicate\""),
        ("SetSourceType, 4", "SetSourceType takes 2 (scanner) or 3"),
        ("AddService,10.9.9.1,22,icmp", "proto \"icmp\""),
        ("SetOS,10.9.9.1,Microsoft", "SetOS takes an address"),
        ("AddHost,,", "needs an address or a MAC address"),
        ("AddHost,10.9.9.1\r\r", "carriage return inside the line"),
    ];
    for (bad, reason) in cases {
        let fx = fixture();
        let server = fx.start(|o| o.strict = true);
        let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
        let (kind, reply) = c.block(&format!("SetSource,Q\n{bad}\n")).unwrap();
        assert_eq!(kind, 4, "{bad}: {reply}");
        assert!(reply.contains("line 2"), "{bad}: {reply}");
        assert!(reply.contains(reason), "{bad}: {reply}");
        c.close();
    }
}

/// A client that closes with results staged and no commit gets them merged: the
/// implicit ScanUpdate of host-input.md §3.5.
#[test]
fn staged_results_are_merged_when_the_client_closes() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block(
        &format!(
            "SetSource,QualysGuard\nAddHost,192.0.2.90\n{}\n",
            line("192.0.2.90", 7, None, "late")
        ),
        3,
    );
    assert!(
        server.map().hosts[&ip("192.0.2.90")].results.is_empty(),
        "not before the close"
    );
    c.close();
    wait_closed(&server, 1);
    assert_eq!(server.stats().implicit_updates, 1);
    assert_eq!(
        server.map().hosts[&ip("192.0.2.90")].results,
        vec![result("QualysGuard", 7, None, "late")]
    );
}

#[test]
fn lenient_drops_bad_lines_strict_refuses_the_block() {
    let bad_block = format!(
        "SetSource,QualysGuard\nAddHost,192.0.2.80\n{}\n{}\nScanFlush\n",
        line("192.0.2.80", 1, None, "good"),
        // An unquoted name: not a valid AddScanResult (§4: text fields are quoted).
        line("192.0.2.80", 2, None, "bad").replace("\"bad\"", "bad")
    );
    // (strict, rule, N without strict: the dropped line counts as a data line, logged)
    let cases = [
        (true, CountRule::All, 0),
        (false, CountRule::All, 5),
        (false, CountRule::NoSetSource, 4),
        (false, CountRule::NoCommit, 4),
        (false, CountRule::DataOnly, 3),
    ];
    for (strict, rule, n) in cases {
        let fx = fixture();
        let server = fx.start(|o| {
            o.strict = strict;
            o.count_rule = rule;
        });
        let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
        let (kind, reply) = c.block(&bad_block).unwrap();
        if strict {
            assert_eq!(kind, 4, "{reply}");
            assert!(reply.contains("line 4"), "{reply}");
            // Nothing applied, the connection stays usable.
            assert!(server.map().hosts.is_empty());
            c.ok_block("SetSource,QualysGuard\nAddHost,192.0.2.81\n", 2);
            assert_eq!(server.stats().errors_sent, 1);
        } else {
            assert_eq!(
                (kind, reply),
                (3, format!("Done processing {n} commands.")),
                "{rule}"
            );
            let host = &server.map().hosts[&ip("192.0.2.80")];
            assert_eq!(host.results, vec![result("QualysGuard", 1, None, "good")]);
        }
        assert_eq!(server.stats().unparseable_lines, 1, "strict={strict}");
        c.close();
    }
}

#[test]
fn version_is_checked() {
    // (reject_version flag, version sent, accepted?)
    let cases = [
        (false, 1, true),
        (false, 2, false),
        (false, 0, false),
        (true, 1, false),
    ];
    for (reject, version, ok) in cases {
        let fx = fixture();
        let server = fx.start(|o| o.reject_version = reject);
        let mut c = Client::connect(server.addr(), &fx.id, &Default::default()).unwrap();
        c.send(2, &u32::to_be_bytes(version)).unwrap();
        let (kind, value) = c.read_frame().unwrap();
        if ok {
            assert_eq!(kind, 1);
        } else {
            assert_eq!(kind, 4, "reject={reject} version={version}");
            assert!(String::from_utf8_lossy(&value).contains("version"));
            assert!(c.is_closed_by_server());
        }
    }
}

#[test]
fn protocol_errors_get_a_type_4_reply_and_close() {
    let fx = fixture();
    let server = fx.start(|o| o.max_size = 64);
    // (frames after the version exchange, expected error text)
    let too_big = "SetSource,QualysGuard\n".repeat(3);
    let cases: Vec<(u32, Vec<u8>, &str)> = vec![
        (3, too_big.into_bytes(), "exceeds the maximum of 64"),
        (3, b"SetSource,QualysGuard".to_vec(), "newline"),
        (3, Vec::new(), "newline"),
        (2, 1u32.to_be_bytes().to_vec(), "type 3"),
        (7, b"x".to_vec(), "type 3"),
    ];
    for (kind, value, want) in cases {
        let (mut c, max) = Client::session(server.addr(), &fx.id).unwrap();
        assert_eq!(max, 64);
        c.send(kind, &value).unwrap();
        let (got, text) = c.read_frame().unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(got, 4, "{text}");
        assert!(text.contains(want), "{text}");
        assert!(c.is_closed_by_server());
    }
    // Exactly max bytes is fine.
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let block = format!("SetSource,QualysGuard\n{}\n", "#".repeat(64 - 23));
    assert_eq!(block.len(), 64);
    c.ok_block(&block, 1);
    c.close();
    // A wrong first frame.
    let mut c = Client::connect(server.addr(), &fx.id, &Default::default()).unwrap();
    c.send(3, b"SetSource,QualysGuard\n").unwrap();
    assert_eq!(c.read_frame().unwrap().0, 4);
}

#[test]
fn delay_ms_delays_each_reply() {
    let fx = fixture();
    let server = fx.start(|o| o.delay_ms = 300);
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    for _ in 0..2 {
        let start = Instant::now();
        c.ok_block("SetSource,QualysGuard\n", 1);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
    c.close();
}

#[test]
fn error_on_fails_the_kth_block_of_the_server_lifetime() {
    let fx = fixture();
    let server = fx.start(|o| o.error_on = Some(3));
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\nAddHost,192.0.2.90\n", 2);
    c.close();
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\n", 1);
    // Block 3 of the server: type 4, not applied, connection still open.
    let (kind, text) = c.block("AddHost,192.0.2.91\n").unwrap();
    assert_eq!(kind, 4, "{text}");
    assert!(text.contains("error_on"));
    c.ok_block("AddHost,192.0.2.92\n", 1);
    c.close();
    wait_closed(&server, 2);
    let hosts: Vec<IpAddr> = server.map().hosts.keys().copied().collect();
    assert_eq!(hosts, vec![ip("192.0.2.90"), ip("192.0.2.92")]);
    assert_eq!(server.stats().errors_sent, 1);
}

#[test]
fn close_after_drops_the_first_connection_only() {
    let fx = fixture();
    let server = fx.start(|o| o.close_after = Some(2));
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\nAddHost,192.0.2.100\n", 2);
    c.ok_block(&format!("{}\n", line("192.0.2.100", 1, None, "staged")), 1);
    assert!(
        c.is_closed_by_server(),
        "dropped right after the reply to block 2"
    );
    wait_closed(&server, 1);
    // The staged result was discarded: the server, not the client, ended the connection.
    assert!(server.map().hosts[&ip("192.0.2.100")].results.is_empty());
    // A second connection is not affected.
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    for _ in 0..3 {
        c.ok_block("SetSource,QualysGuard\n", 1);
    }
    c.close();
}

#[test]
fn garbage_reply_lacks_the_done_phrase_but_applies_the_block() {
    let fx = fixture();
    let server = fx.start(|o| o.garbage_reply = true);
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    let (kind, text) = c
        .block("SetSource,QualysGuard\nAddHost,192.0.2.110\n")
        .unwrap();
    assert!(
        kind != 3 || !text.contains("Done processing 2 commands."),
        "{kind} {text}"
    );
    c.close();
    wait_closed(&server, 1);
    assert!(server.map().hosts.contains_key(&ip("192.0.2.110")));
}

#[test]
fn exit_after_stops_the_server_after_n_closed_connections() {
    let fx = fixture();
    let server = fx.start(|o| o.exit_after = Some(2));
    let (c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.close();
    wait_closed(&server, 1);
    assert!(!server.is_finished());
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\nAddHost,192.0.2.120\n", 2);
    c.close();
    eventually("server to finish", || server.is_finished());
    let map = server.wait();
    assert!(map.hosts.contains_key(&ip("192.0.2.120")));
}

#[test]
fn stop_ends_open_connections_and_discards_their_staged_results() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block(
        &format!(
            "SetSource,QualysGuard\nAddHost,192.0.2.130\n{}\n",
            line("192.0.2.130", 1, None, "x")
        ),
        3,
    );
    let start = Instant::now();
    let map = server.stop();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(map.hosts[&ip("192.0.2.130")].results.is_empty());
    let mut buf = [0u8; 1];
    assert!(!matches!(c.stream.read(&mut buf), Ok(n) if n > 0));
}

#[test]
fn serves_ipv6_loopback_when_available() {
    let fx = fixture();
    let opts = ServerOptions {
        listen: "[::1]:0".parse().unwrap(),
        ..fx.options()
    };
    let server = match Server::start(opts) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: serves_ipv6_loopback_when_available: {e}"
            );
            return;
        }
    };
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\n", 1);
    c.close();
}

#[test]
fn map_serialises_to_json_and_back() {
    let map = example_map();
    let json = serde_json::to_string_pretty(&map).unwrap();
    assert!(json.contains("\"192.0.2.10\""), "{json}");
    let back: NetworkMap = serde_json::from_str(&json).unwrap();
    assert_eq!(back, map);
}

#[test]
fn a_block_of_max_size_with_many_hosts_is_applied() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let (mut c, max) = Client::session(server.addr(), &fx.id).unwrap();
    let mut block = String::from("SetSource,QualysGuard\n");
    let mut commands = 1;
    let mut hosts = 0;
    'fill: for h in 0..=255u8 {
        let host = format!("198.51.100.{h}");
        let mut chunk = format!("AddHost,{host}\n");
        for v in 0..20 {
            chunk.push_str(&line(&host, 1000 + v, Some(443), &"long title ".repeat(20)));
            chunk.push('\n');
        }
        chunk.push_str("ScanFlush\n");
        if block.len() + chunk.len() > max as usize {
            break 'fill;
        }
        block.push_str(&chunk);
        commands += 22;
        hosts += 1;
    }
    assert!(block.len() > max as usize / 2);
    c.ok_block(&block, commands);
    c.close();
    let map = server.stop();
    assert_eq!(map.hosts.len(), hosts);
    assert_eq!(map.result_count(), hosts * 20);
}

#[test]
fn drop_reply_on_applies_the_block_and_closes_without_a_reply() {
    let fx = fixture();
    let server = fx.start(|o| o.drop_reply_on = Some(2));
    let (mut c, _) = Client::session(server.addr(), &fx.id).unwrap();
    c.ok_block("SetSource,QualysGuard\n", 1);
    let block = format!(
        "AddHost,192.0.2.90\n{}\nScanFlush\n",
        line("192.0.2.90", 7, None, "kept")
    );
    c.send(3, block.as_bytes()).unwrap();
    assert!(c.read_frame().is_err(), "no reply");
    wait_closed(&server, 1);
    let host = &server.map().hosts[&ip("192.0.2.90")];
    assert_eq!(host.results, vec![result("QualysGuard", 7, None, "kept")]);
}
