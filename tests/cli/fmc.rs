//! Delivery to the FMC simulator over real TLS on loopback: the network map it ends
//! with, every fault flag, the certificate matrix, and the `csv` plugin.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use qualys_connector_sim::fmc::{
    CertVersion, EnrollOptions, KeyType, NetworkMap, P12Scheme, Server, ServerOptions, enroll,
};

use crate::harness::{Outcome, Test, example, shared_fixture};
use crate::relay::Relay;
use std::time::Duration;

/// Fast retries so fault tests finish quickly.
const FAST: &str = "fmc_retry_wait: 0.05\nfmc_connect_timeout: 5\n";

/// A simulator with its own CA in a temporary directory.
pub struct Fmc {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
}

impl Fmc {
    pub fn start(configure: impl FnOnce(&mut ServerOptions)) -> Fmc {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions::new(dir.path());
        options.listen = "127.0.0.1:0".parse().unwrap();
        // A line fmc-sim cannot parse is an error, never silently dropped.
        options.strict = true;
        configure(&mut options);
        let server = Server::start(options).unwrap();
        Fmc {
            dir,
            server: Some(server),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr()
    }

    /// Enrolls a client and copies its PKCS#12 into the test's directory as `name`.
    pub fn enroll_into(&self, test: &Test, name: &str, options: &EnrollOptions) -> PathBuf {
        let path = enroll(self.dir.path(), "127.0.0.1", options).unwrap();
        let dest = test.path(name);
        std::fs::copy(path, &dest).unwrap();
        dest
    }

    pub fn stop(&mut self) -> NetworkMap {
        self.server.take().unwrap().stop()
    }
}

/// The findings a map holds, in a form independent of the simulator's layout:
/// host → sorted (QID, port, protocol, CVEs, Bugtraq IDs); no QID for a generic result.
pub type Findings = BTreeMap<String, Vec<(Option<u64>, Option<u16>, Option<u8>, String, String)>>;

pub fn map_findings(map: &NetworkMap) -> Findings {
    let mut out = Findings::new();
    for (ip, host) in &map.hosts {
        let mut v: Vec<_> = host
            .results
            .iter()
            .map(|r| {
                (
                    r.vuln_id,
                    r.port,
                    r.proto,
                    r.cve_ids.join(" "),
                    r.bugtraq_ids.join(" "),
                )
            })
            .collect();
        v.sort();
        out.insert(ip.to_string(), v);
    }
    out
}

/// The same, from a command file written with -csvfile.
pub fn csv_findings(csv: &str) -> Findings {
    let mut out = Findings::new();
    for line in csv.lines() {
        if let Some(ip) = line.strip_prefix("AddHost,") {
            out.entry(ip.to_string()).or_default();
        }
        if !line.starts_with("AddScanResult,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let ids = |field: &str, prefix: &str| {
            field
                .trim_matches('"')
                .trim_start_matches(prefix)
                .to_string()
        };
        out.entry(f[1].to_string()).or_default().push((
            f[3].parse().ok(),
            f[4].parse().ok(),
            f[5].parse().ok(),
            ids(f[8], "cve_ids: "),
            ids(f[9], "bugtraq_ids: "),
        ));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub fn send(test: Test, fmc: &Fmc, report: &Path, extra: &[&str]) -> (Test, Outcome) {
    let mut args = vec![
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        format!("-report={}", report.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let test = test.args(&args);
    let out = test.run();
    (test, out)
}

fn expected_csv(yaml: &str, report: &Path) -> String {
    let t = Test::new().config(yaml).args(&[
        format!("-report={}", report.display()),
        "-csvfile=Output.csv".into(),
    ]);
    t.run().assert_code(0);
    t.read("Output.csv")
}

#[test]
fn seven_hosts_reach_the_map() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &report, &[]);
    out.assert_code(0)
        .assert_output_contains("7 hosts and 92 findings confirmed");
    let map = fmc.stop();
    let got = map_findings(&map);
    assert_eq!(got.len(), 7);
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 92);
    assert_eq!(got, csv_findings(&expected_csv("add_host: y\n", &report)));
}

#[test]
fn csvfile_then_csv_plugin_gives_the_same_map() {
    let report = example("report.xml");
    let yaml = "add_host: y\nip_ranges: 192.0.2.0/24, 2001:db8::/32\n";
    let mut direct = Fmc::start(|_| {});
    let test = Test::new().config(yaml);
    direct.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    send(test, &direct, &report, &[]).1.assert_code(0);
    let direct_map = direct.stop();

    let mut via_file = Fmc::start(|_| {});
    let test = Test::new()
        .config(yaml)
        .file("Output.csv", expected_csv(yaml, &report));
    via_file.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", via_file.addr().ip()),
        format!("-po={}", via_file.addr().port()),
        "-plugininfo=Output.csv".into(),
        "csv".into(),
    ]);
    test.run()
        .assert_code(0)
        .assert_output_contains("3 hosts and 5 findings confirmed");
    let file_map = via_file.stop();
    assert_eq!(map_findings(&direct_map), map_findings(&file_map));
    assert_eq!(direct_map, file_map, "identical maps, texts included");
    assert_eq!(map_findings(&direct_map).len(), 3);
}

#[test]
fn csv_plugin_sends_nothing_when_a_line_is_bad() {
    let mut fmc = Fmc::start(|_| {});
    let good = expected_csv("add_host: y\n", &example("report.xml"));
    let bad = good.replacen("AddScanResult,192.0.2.11,", "AddScanResult,192.0.2.311,", 1);
    let test = Test::new().file("Output.csv", &bad);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        "-pl=Output.csv".into(),
        "CSV".into(),
    ]);
    let bad_line = bad.lines().position(|l| l.contains("192.0.2.311")).unwrap() + 1;
    test.run()
        .assert_code(3)
        .assert_output_contains(&format!(
            "line {bad_line}: \"192.0.2.311\" is not an IP address"
        ))
        .assert_output_contains("nothing was sent");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.connections, 0, "no connection was made");
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn add_host_off_leaves_unknown_hosts_out() {
    let report = example("report.xml");
    let mut fmc = Fmc::start(|o| o.known_hosts = vec!["192.0.2.11".parse().unwrap()]);
    let test = Test::new().config("add_host: n\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &report, &[]);
    // The FMC accepts every block (it ignores results for hosts it does not know).
    out.assert_code(0);
    let map = fmc.stop();
    let got = map_findings(&map);
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["192.0.2.11"]);
}

/// Certificates of every kind the FMC may hand out load and authenticate.
#[test]
fn pkcs12_matrix_over_tls() {
    let report = example("report.xml");
    let cases = [
        (
            "legacy, no password",
            P12Scheme::Legacy,
            None,
            CertVersion::V3,
            KeyType::EcdsaP256,
        ),
        (
            "legacy, password",
            P12Scheme::Legacy,
            Some("p@ss,w0rd"),
            CertVersion::V3,
            KeyType::EcdsaP256,
        ),
        (
            "3DES",
            P12Scheme::TripleDes,
            Some("secret"),
            CertVersion::V3,
            KeyType::EcdsaP256,
        ),
        (
            "AES",
            P12Scheme::Aes,
            Some("secret"),
            CertVersion::V3,
            KeyType::EcdsaP256,
        ),
        (
            "v1 certificate",
            P12Scheme::Legacy,
            None,
            CertVersion::V1,
            KeyType::EcdsaP256,
        ),
        (
            "RSA key, v1",
            P12Scheme::Legacy,
            Some("rsa-Secr3t"),
            CertVersion::V1,
            KeyType::Rsa2048,
        ),
    ];
    for (name, scheme, password, cert_version, key) in cases {
        let mut fmc = Fmc::start(|_| {});
        let mut test = Test::new().config("add_host: y\n");
        let options = EnrollOptions {
            password: password.map(str::to_string),
            scheme,
            cert_version,
            key,
            ..EnrollOptions::default()
        };
        let p12 = fmc.enroll_into(&test, "client.pkcs12", &options);
        if let Some(p) = password {
            test = test.env("PKCS12_PASSWORD", p);
        }
        let (_t, out) = send(test, &fmc, &report, &[&format!("-pk={}", p12.display())]);
        assert_eq!(out.code, 0, "{name}: {}", out.output());
        if let Some(p) = password {
            assert!(!out.output().contains(p), "{name}: password leaked");
        }
        let map = fmc.stop();
        assert_eq!(map.hosts.len(), 4, "{name}");
    }
}

#[test]
fn wrong_pkcs12_password_is_a_config_error() {
    let fmc = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    let options = EnrollOptions {
        password: Some("right".into()),
        ..EnrollOptions::default()
    };
    fmc.enroll_into(&test, "CertFile.pkcs12", &options);
    let (_t, out) = send(test, &fmc, &example("report.xml"), &["-password=wrong"]);
    out.assert_code(2)
        .assert_output_contains("CertFile.pkcs12")
        .assert_output_contains("password");
    assert!(!out.output().contains("wrong\""));
}

#[test]
fn missing_pkcs12_is_a_config_error() {
    let fmc = Fmc::start(|_| {});
    let test = Test::new().config("");
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(2).assert_output_contains(".pkcs12");
}

#[test]
fn several_pkcs12_files_warn_and_the_first_is_used() {
    let mut fmc = Fmc::start(|_| {});
    let other = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "a.pkcs12", &EnrollOptions::default());
    other.enroll_into(&test, "b.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(0)
        .assert_output_contains("several .pkcs12 files")
        .assert_output_contains("a.pkcs12");
    assert_eq!(fmc.stop().hosts.len(), 4);
}

#[test]
fn another_fmcs_ca_is_refused_in_both_directions() {
    let report = example("report.xml");
    // The connector refuses an FMC whose certificate its PKCS#12's CA did not sign.
    let mut fmc = Fmc::start(|_| {});
    let stranger = Fmc::start(|_| {});
    let test = Test::new().config(&format!("add_host: y\n{FAST}fmc_retries: 0\n"));
    stranger.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &report, &[]);
    out.assert_code(5)
        .assert_output_contains("is not signed by the CA in the PKCS#12 file");
    assert!(fmc.stop().hosts.is_empty());

    // With verification off, the FMC refuses the stranger's client certificate.
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config(&format!(
        "add_host: y\nverify_fmc_certificate: n\n{FAST}fmc_retries: 0\n"
    ));
    stranger.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &report, &[]);
    out.assert_code(5).assert_output_contains("TLS");
    let text = out.output();
    assert!(
        text.contains("refused the client certificate")
            || text.contains("may not accept this client's certificate"),
        "{text}"
    );
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn refused_connection_says_what_to_check() {
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config(&format!("{FAST}fmc_retries: 1\n"));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let addr = fmc.addr();
    fmc.stop();
    let test = test.args(&[
        format!("-server={}", addr.ip()),
        format!("-port={}", addr.port()),
        format!("-report={}", example("report.xml").display()),
    ]);
    test.run()
        .assert_code(5)
        .assert_output_contains("refused")
        .assert_output_contains("port 8307")
        .assert_output_contains("retry 1 of 1");
}

#[test]
fn ipv6_connects_over_ipv6() {
    let mut fmc = Fmc::start(|o| o.listen = "[::1]:0".parse().unwrap());
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        "-server=::1".to_string(),
        format!("-port={}", fmc.addr().port()),
        "-ipv6".into(),
        format!("-report={}", example("report.xml").display()),
    ]);
    test.run().assert_code(0);
    assert_eq!(fmc.stop().hosts.len(), 4);

    // Without -ipv6, an IPv6 literal is refused with the hint, before any work.
    let test = Test::new().config("");
    let fmc = Fmc::start(|o| o.listen = "[::1]:0".parse().unwrap());
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        "-server=::1".to_string(),
        format!("-port={}", fmc.addr().port()),
        format!("-report={}", example("report.xml").display()),
    ]);
    test.run()
        .assert_code(2)
        .assert_output_contains("add -ipv6");
}

/// The fault-free map of the example report, to compare faulty runs with.
fn reference_map() -> Findings {
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    send(test, &fmc, &example("report.xml"), &[])
        .1
        .assert_code(0);
    map_findings(&fmc.stop())
}

#[test]
fn small_blocks_split_hosts_and_give_the_same_map() {
    let reference = reference_map();
    // 700 bytes: one host per block at most, the first host split over several blocks.
    let mut fmc = Fmc::start(|o| o.max_size = 700);
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &["-le=3"]);
    out.assert_code(0)
        .assert_output_contains("maximum block 700 bytes")
        .assert_output_contains("host 192.0.2.10: ")
        .assert_output_contains("more than a block (")
        .assert_output_contains("4 hosts and 6 findings confirmed");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert!(stats.blocks >= 3, "{stats:?}");
    assert_eq!(stats.unparseable_lines, 0);
    assert_eq!(map_findings(&fmc.stop()), reference);
}

#[test]
fn lines_longer_than_a_block_are_shortened_not_dropped() {
    let mut fmc = Fmc::start(|o| o.max_size = 300);
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(0)
        .assert_output_contains("its text was shortened")
        .assert_output_contains("6 findings confirmed");
    let map = fmc.stop();
    let total: usize = map.hosts.values().map(|h| h.results.len()).sum();
    assert_eq!(total, 6);
}

#[test]
fn rejected_version_fails_with_the_servers_word() {
    let mut fmc = Fmc::start(|o| o.reject_version = true);
    let test = Test::new().config(&format!("{FAST}fmc_retries: 0\n"));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(5)
        .assert_output_contains("refused protocol version 1");
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn error_reply_fails_that_blocks_hosts_only() {
    // 700-byte blocks: the first host is split over blocks 1 and 2, and block 2 also
    // carries the second host; block 2 fails, so both are unconfirmed, the rest arrive.
    // (The server's block 1 is the calibration block.)
    let mut fmc = Fmc::start(|o| {
        o.max_size = 700;
        o.error_on = Some(3);
    });
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(5)
        .assert_output_contains("error reply")
        .assert_output_contains("not confirmed by the FMC: 192.0.2.10 192.0.2.11")
        .assert_output_contains("2 hosts were not confirmed")
        .assert_output_contains("2 hosts and 2 findings confirmed");
    let map = fmc.stop();
    assert!(map.hosts.contains_key(&"198.51.100.7".parse().unwrap()));
    assert!(map.hosts.contains_key(&"2001:db8::20".parse().unwrap()));
    assert!(!map.hosts.contains_key(&"192.0.2.11".parse().unwrap()));
}

#[test]
fn garbage_replies_confirm_nothing() {
    let mut fmc = Fmc::start(|o| o.garbage_reply = true);
    let test = Test::new().config(&format!("add_host: y\n{FAST}fmc_retries: 1\n"));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    // The calibration block's reply is already unusable: nothing is sent after it.
    out.assert_code(5)
        .assert_output_contains("the reply to the calibration block")
        .assert_output_contains("lacks a line \"Done processing N commands.\"")
        .assert_output_contains("no host was sent");
    let stats = fmc.server.as_ref().unwrap().stats();
    // An unusable reply is not a lost connection: it is not tried again.
    assert_eq!(stats.blocks, 1, "the calibration block only: {stats:?}");
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn connection_closed_after_a_block_is_resumed_without_loss() {
    resumed_after_a_reconnect(
        |o| {
            o.max_size = 700;
            o.close_after = Some(2);
        },
        "connection to the FMC lost",
    );
}

/// Runs the example report against an FMC that drops the first connection: the run
/// reconnects, says `message`, and ends with the fault-free map.
fn resumed_after_a_reconnect(configure: impl FnOnce(&mut ServerOptions), message: &str) {
    let reference = reference_map();
    let mut fmc = Fmc::start(configure);
    let test = Test::new().config(&format!("add_host: y\n{FAST}"));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(0)
        .assert_output_contains(message)
        .assert_output_contains("reconnected to the FMC")
        .assert_output_contains("4 hosts and 6 findings confirmed");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.connections, 2, "{stats:?}");
    assert_eq!(stats.unparseable_lines, 0);
    assert_eq!(map_findings(&fmc.stop()), reference);
}

#[test]
fn slow_replies_within_the_timeout_are_fine_and_beyond_it_fail() {
    let mut fmc = Fmc::start(|o| o.delay_ms = 300);
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    send(test, &fmc, &example("report.xml"), &[])
        .1
        .assert_code(0);
    assert_eq!(fmc.stop().hosts.len(), 4);

    let mut fmc = Fmc::start(|o| o.delay_ms = 2500);
    let test = Test::new().config(&format!(
        "add_host: y\nfmc_reply_timeout: 1\n{FAST}fmc_retries: 1\n"
    ));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(5)
        .assert_output_contains("no reply within 1 s")
        .assert_output_contains("no host was sent");
    fmc.stop();
}

#[test]
fn the_connector_never_sends_an_unparseable_line() {
    let Some(report) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let mut fmc = Fmc::start(|o| o.strict = true);
    let test = Test::new().config("add_host: y\ninclude_types: Vuln, Practice, Ig\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &report, &[]);
    out.assert_code(0)
        .assert_output_contains("301 findings confirmed");
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.unparseable_lines, 0);
    fmc.stop();
}

/// A block counts only when one reply line is exactly "Done processing N commands." and
/// no line starts with "Error"; other lines are warnings, logged escaped.
#[test]
fn only_the_exact_count_line_without_errors_confirms_a_block() {
    let cases: [(&str, i32, &str); 4] = [
        ("Done processing {n} commandos", 5, "lacks a line"),
        (
            "Done processing {n} commands.\nError: not applied",
            5,
            "reports an error: Error: not applied",
        ),
        (
            "Done processing {n} commands.\nerror: lower case",
            5,
            "reports an error: error: lower case",
        ),
        (
            "Warning: host 1 \x1b[31mforged\nDone processing {n} commands.\n",
            0,
            "the FMC warns about block 1 (hosts 192.0.2.10 192.0.2.11 2001:db8::20 198.51.100.7): Warning: host 1 \\u{1b}[31mforged",
        ),
    ];
    for (text, code, message) in cases {
        let mut fmc = Fmc::start(|o| o.reply_text = Some(text.into()));
        let test = Test::new().config(&format!("add_host: y\n{FAST}fmc_retries: 0\n"));
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
        out.assert_code(code).assert_output_contains(message);
        if code != 0 {
            // Every reply says so, the calibration block's first.
            out.assert_output_contains("no host was sent");
        }
        fmc.stop();
    }
}

/// A reply trickled a byte every 300 ms never trips a per-read timeout; the reply
/// timeout bounds the whole reply.
#[test]
fn a_trickled_reply_is_bounded_by_the_reply_timeout() {
    let mut fmc = Fmc::start(|o| o.trickle_ms = 300);
    let test = Test::new().config(&format!(
        "add_host: y\nfmc_reply_timeout: 2\n{FAST}fmc_retries: 0\n"
    ));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let started = std::time::Instant::now();
    let (_t, out) = send(test, &fmc, &example("report.xml"), &[]);
    out.assert_code(5)
        .assert_output_contains("no reply within 2 s")
        .assert_output_contains("no host was sent");
    // The whole reply (36 bytes) would take about 11 s.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    fmc.stop();
}

/// A link passing one byte per 0.5 s holds no read for long, but the TLS handshake
/// as a whole must finish within fmc_connect_timeout.
#[test]
fn a_slow_link_bounds_the_whole_handshake() {
    let mut fmc = Fmc::start(|_| {});
    let relay = Relay::start(fmc.addr(), Duration::from_millis(500));
    let test = Test::new().config("add_host: y\nfmc_connect_timeout: 2\nfmc_retries: 0\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let started = std::time::Instant::now();
    let test = test.args(&[
        format!("-server={}", relay.addr().ip()),
        format!("-port={}", relay.addr().port()),
        format!("-report={}", example("report.xml").display()),
    ]);
    test.run()
        .assert_code(5)
        .assert_output_contains("did not finish within 2 s (fmc_connect_timeout)");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(relay);
    fmc.stop();
}

/// An FMC announcing 2^32-1 bytes gets blocks of at most 16 MiB, and the debug log says so.
#[test]
fn an_announced_maximum_of_4_gib_is_capped_at_16_mib() {
    let reference = reference_map();
    let mut fmc = Fmc::start(|o| o.max_size = u32::MAX);
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, &example("report.xml"), &["-le=3"]);
    out.assert_code(0)
        .assert_output_contains("maximum block 4294967295 bytes")
        .assert_output_contains("blocks are capped at 16777216 bytes");
    assert_eq!(map_findings(&fmc.stop()), reference);
}

/// A reconnected FMC announcing a smaller maximum (700 bytes, then 300) gets the
/// remaining hosts packed again for it: the same map, and no block over 300 bytes (the
/// simulator refuses those).
#[test]
fn a_smaller_maximum_after_a_reconnect_is_respected() {
    resumed_after_a_reconnect(
        |o| {
            o.max_size = 700;
            o.max_size_after = Some(300);
            o.close_after = Some(1);
        },
        "the FMC now accepts blocks of 300 bytes",
    );
}

/// The FMC merges whatever is staged when a connection closes (host-input.md §3.5): the
/// connector ends every host with its commit, so a clean close leaves nothing staged,
/// with hosts whole in one block and split over several.
#[test]
fn a_clean_close_leaves_nothing_staged() {
    let reference = reference_map();
    for max_size in [524_288, 700] {
        let mut fmc = Fmc::start(|o| o.max_size = max_size);
        let test = Test::new().config("add_host: y\n");
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        send(test, &fmc, &example("report.xml"), &[])
            .1
            .assert_code(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fmc.server.as_ref().unwrap().stats().closed_connections == 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = fmc.server.as_ref().unwrap().stats();
        assert_eq!(stats.closed_connections, 1, "{stats:?}");
        assert_eq!(stats.implicit_updates, 0, "{max_size}: {stats:?}");
        assert_eq!(map_findings(&fmc.stop()), reference, "{max_size}");
    }
}
