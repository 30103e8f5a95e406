//! The check of the FMC's certificate end to end (host-input.md §1, RFC 5280 §4.2.1.3):
//! fmc-sim presents a CA-only or an X.509 v1 server certificate.

use qualys_connector_sim::fmc::{EnrollOptions, ServerCert};

use crate::fmc::Fmc;
use crate::harness::{Outcome, Test, example};

const CONFIG: &str = "add_host: y\nfmc_retry_wait: 0.05\nfmc_connect_timeout: 5\nfmc_retries: 0\n";

/// Runs the connector against `fmc` with a client file issued by `issuer`.
fn run(fmc: &Fmc, issuer: &Fmc, extra_config: &str) -> Outcome {
    let test = Test::new().config(&format!("{CONFIG}{extra_config}"));
    issuer.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let report = example("report.xml");
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        format!("-report={}", report.display()),
    ]);
    test.run()
}

#[test]
fn a_ca_only_server_certificate_is_refused_in_words() {
    let mut fmc = Fmc::start(|o| o.server_cert = ServerCert::CaOnly);
    let out = run(&fmc, &fmc, "");
    out.assert_code(5).assert_output_contains(
        "the FMC's certificate may only sign certificates or CRLs (KeyUsage keyCertSign): it cannot be a server certificate",
    );
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn a_v1_server_certificate_of_the_files_ca_is_accepted() {
    let mut fmc = Fmc::start(|o| o.server_cert = ServerCert::V1);
    let out = run(&fmc, &fmc, "");
    out.assert_code(0).assert_output_contains("confirmed");
    assert!(!fmc.stop().hosts.is_empty());
}

#[test]
fn a_v1_server_certificate_of_another_ca_is_refused_in_words() {
    let mut fmc = Fmc::start(|o| o.server_cert = ServerCert::V1);
    let stranger = Fmc::start(|_| {});
    let out = run(&fmc, &stranger, "");
    // The two simulators' CAs have different names (each its own UUID, as two FMCs).
    out.assert_code(5)
        .assert_output_contains("the FMC's certificate is an X.509 v1 certificate")
        .assert_output_contains("the CA in the PKCS#12 file")
        .assert_output_contains("is this the FMC that issued the file?");
    let text = out.output();
    assert!(!text.contains("UnsupportedCertVersion"), "{text}");
    assert!(fmc.stop().hosts.is_empty());
}

#[test]
fn a_v1_server_certificate_passes_with_verification_off() {
    // The handshake signature is still checked, with the v1 certificate's own key.
    let mut fmc = Fmc::start(|o| o.server_cert = ServerCert::V1);
    let out = run(&fmc, &fmc, "verify_fmc_certificate: n\n");
    out.assert_code(0).assert_output_contains("confirmed");
    assert!(!fmc.stop().hosts.is_empty());
}
