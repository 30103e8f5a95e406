//! `qualys-connector check`: a healthy setup passes every step; each broken piece is
//! reported with its fix and a non-zero exit code; nothing is sent.

use qualys_connector_sim::fmc::EnrollOptions;

use crate::download;
use crate::fmc::Fmc;
use crate::harness::{Test, example};

fn check_args(fmc_addr: std::net::SocketAddr) -> Vec<String> {
    vec![
        format!("-server={}", fmc_addr.ip()),
        format!("-port={}", fmc_addr.port()),
        format!("-report={}", example("report.xml").display()),
        "check".into(),
    ]
}

#[test]
fn healthy_fmc_setup_passes() {
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&check_args(fmc.addr()));
    let out = test.run();
    out.assert_code(0)
        .assert_output_contains("[ ok ] configuration InputPlugins/QualysGuard.yaml: valid")
        .assert_output_contains(
            "[ ok ] client certificate: ./CertFile.pkcs12 (subject CN=127.0.0.1",
        )
        .assert_output_contains("TLS and Host Input handshake done (maximum block 524288 bytes)")
        .assert_output_contains("all checks passed");
    // The simulator counts the session on its own thread: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fmc.server.as_ref().unwrap().stats().sessions == 0 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stats = fmc.server.as_ref().unwrap().stats();
    assert_eq!(stats.sessions, 1, "one handshake");
    assert_eq!(stats.blocks, 0, "no data sent");
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn fmc_down_fails_with_the_fix() {
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config("fmc_connect_timeout: 5\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let addr = fmc.addr();
    fmc.stop();
    test.args(&check_args(addr))
        .run()
        .assert_code(5)
        .assert_output_contains("[FAIL] FMC 127.0.0.1: connection to")
        .assert_output_contains("fix: check that the FMC is reachable on port 8307");
}

#[test]
fn wrong_ca_fails() {
    let mut fmc = Fmc::start(|_| {});
    let stranger = Fmc::start(|_| {});
    let test = Test::new().config("");
    stranger.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    test.args(&check_args(fmc.addr()))
        .run()
        .assert_code(5)
        .assert_output_contains("[FAIL] FMC")
        .assert_output_contains("is not signed by the CA in the PKCS#12 file");
    assert_eq!(fmc.server.as_ref().unwrap().stats().blocks, 0);
    fmc.stop();
}

#[test]
fn an_expired_client_certificate_fails_with_its_date() {
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config("fmc_connect_timeout: 5\n");
    let options = EnrollOptions {
        valid_days: -10,
        ..EnrollOptions::default()
    };
    fmc.enroll_into(&test, "CertFile.pkcs12", &options);
    let out = test.args(&check_args(fmc.addr())).run();
    out.assert_code(2)
        .assert_output_contains(
            "[FAIL] client certificate: ./CertFile.pkcs12 (subject CN=127.0.0.1",
        )
        .assert_output_contains(": the client certificate (subject CN=127.0.0.1")
        .assert_output_contains(") expired at ")
        .assert_output_contains("fix: create a new client on the FMC's Host Input Client page");
    fmc.stop();
}

#[test]
fn wrong_pkcs12_password_fails() {
    let fmc = Fmc::start(|_| {});
    let test = Test::new().config("");
    let options = EnrollOptions {
        password: Some("right-one".into()),
        ..EnrollOptions::default()
    };
    fmc.enroll_into(&test, "CertFile.pkcs12", &options);
    let mut args = check_args(fmc.addr());
    args.push("-password=wrong-one".into());
    let out = test.args(&args).run();
    out.assert_code(2)
        .assert_output_contains("[FAIL] client certificate")
        .assert_output_contains("wrong password");
    assert!(!out.output().contains("wrong-one"));
}

#[test]
fn broken_configuration_fails_first() {
    Test::new()
        .config("add_host: perhaps\n")
        .args(&["check"])
        .run()
        .assert_code(2)
        .assert_output_contains("[FAIL] configuration InputPlugins/QualysGuard.yaml")
        .assert_output_contains("add_host");
}

/// Every configuration error is reported, and the certificate, the FMC and Qualys are
/// still checked with the values that were valid: one run shows everything to fix.
#[test]
fn a_broken_configuration_does_not_stop_the_other_checks() {
    let qualys = download::qualys(|_| {});
    let mut fmc = Fmc::start(|_| {});
    let yaml = download::yaml(&qualys, "scan_mode: sometimes\nfmc_retries: many\n");
    let test = Test::new().config(&yaml);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let out = test
        .args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            "check".into(),
        ])
        .run();
    out.assert_code(2)
        .assert_output_contains(
            "[FAIL] configuration InputPlugins/QualysGuard.yaml: InputPlugins/QualysGuard.yaml:",
        )
        .assert_output_contains(": scan_mode: ")
        .assert_output_contains(": fmc_retries: expected a whole number")
        .assert_output_contains("[ ok ] client certificate: ./CertFile.pkcs12")
        .assert_output_contains("TLS and Host Input handshake done")
        .assert_output_contains(&format!("[ ok ] Qualys {}: logged in as", qualys.url()))
        .assert_output_contains("[ ok ] template 424242: exists");
    assert_eq!(
        out.stdout.matches("[FAIL] configuration").count(),
        2,
        "{}",
        out.stdout
    );
    fmc.stop();
}

/// A Qualys key in error: that step says it was not checked; the FMC is still checked.
#[test]
fn a_qualys_key_in_error_skips_only_the_qualys_step() {
    let mut fmc = Fmc::start(|_| {});
    let test =
        Test::new().config("user_id: u\npassword: p\ntemplate_id: 1\nurl: ftp://qualys.example\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let out = test
        .args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            "check".into(),
        ])
        .run();
    out.assert_code(2)
        .assert_output_contains("[FAIL] configuration")
        .assert_output_contains("url")
        .assert_output_contains("TLS and Host Input handshake done")
        .assert_output_contains(
            "[ ok ] Qualys: not checked: the configuration's key url is invalid or missing",
        );
    fmc.stop();
}

/// Each network check is tried once: Qualys answering 503, or 409 with a wait, and an
/// FMC refusing the session, each see exactly one attempt.
#[test]
fn network_checks_are_tried_once() {
    for configure in [
        (|o: &mut qualys_connector_sim::qualys::ServerOptions| o.server_error_first = 10)
            as fn(&mut qualys_connector_sim::qualys::ServerOptions),
        |o| {
            o.rate_limit_first = 10;
            o.to_wait_sec = 30;
        },
    ] {
        let qualys = download::qualys(configure);
        let started = std::time::Instant::now();
        Test::new()
            .config(&download::yaml(&qualys, "qualys_retries: 5\n"))
            .args(&["check"])
            .run()
            .assert_code(6)
            .assert_output_contains("[FAIL] Qualys");
        assert_eq!(qualys.requests().len(), 1, "{:?}", qualys.requests());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "did not wait"
        );
    }

    let mut fmc = Fmc::start(|o| o.reject_version = true);
    let test = Test::new().config("fmc_retries: 5\nfmc_retry_wait: 1\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    test.args(&check_args(fmc.addr()))
        .run()
        .assert_code(5)
        .assert_output_contains("[FAIL] FMC");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fmc.server.as_ref().unwrap().stats().closed_connections == 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(fmc.server.as_ref().unwrap().stats().connections, 1);
    fmc.stop();
}
