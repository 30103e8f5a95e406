//! The promises that matter most to an unattended job (TESTING.md): a killed run loses
//! nothing (a rerun completes the delivery; no partial CSV), and no secret or key ever
//! reaches an output or the disk.

use std::process::{Command, Stdio};
use std::time::Duration;

use qualys_connector_sim::fmc::EnrollOptions;
use qualys_connector_sim::qualys::{GenSpec, generate};

use crate::download::{PASSWORD, qualys, yaml};
use crate::fmc::{Fmc, map_findings};
use crate::harness::{BIN, Test};

fn generated_report(test: &Test, hosts: u64) -> std::path::PathBuf {
    let path = test.path("report.xml");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    generate(
        &GenSpec {
            hosts,
            seed: 11,
            ..GenSpec::default()
        },
        &mut file,
    )
    .unwrap();
    drop(file);
    path
}

#[test]
fn killed_while_delivering_then_rerun_loses_nothing() {
    let reference = {
        let mut fmc = Fmc::start(|_| {});
        let test = Test::new().config("add_host: y\n");
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        let report = generated_report(&test, 400);
        let test = test.args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            format!("-report={}", report.display()),
        ]);
        test.run().assert_code(0);
        map_findings(&fmc.stop())
    };
    assert_eq!(reference.len(), 400);

    // Slow replies and small blocks: the run is killed with blocks still to go.
    let mut slow = Fmc::start(|o| {
        o.delay_ms = 150;
        o.max_size = 32 * 1024;
    });
    let test = Test::new().config("add_host: y\n");
    slow.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let report = generated_report(&test, 400);
    let mut child = Command::new(BIN)
        .current_dir(test.path("."))
        .args([
            format!("-server={}", slow.addr().ip()),
            format!("-port={}", slow.addr().port()),
            format!("-report={}", report.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while slow.server.as_ref().unwrap().stats().blocks < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "delivery did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let partial = map_findings(&slow.server.as_ref().unwrap().map());
    assert!(
        partial.len() < reference.len(),
        "killed before the end: {}",
        partial.len()
    );

    // The rerun sends everything again; ScanFlush makes that safe.
    let fast_again = test.args(&[
        format!("-server={}", slow.addr().ip()),
        format!("-port={}", slow.addr().port()),
        format!("-report={}", report.display()),
    ]);
    fast_again.run().assert_code(0);
    assert_eq!(map_findings(&slow.stop()), reference);
}

#[test]
fn killed_while_converting_leaves_no_csv() {
    let test = Test::new().config("add_host: y\n");
    let report = generated_report(&test, 3000);
    for delay in [50, 150, 400] {
        let mut child = Command::new(BIN)
            .current_dir(test.path("."))
            .args([
                format!("-report={}", report.display()),
                "-csvfile=Output.csv".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok();
        let _ = child.wait();
        if finished {
            // Too fast to interrupt: then the file is complete.
            assert!(test.read("Output.csv").ends_with("ScanFlush\n"));
            std::fs::remove_file(test.path("Output.csv")).unwrap();
        } else {
            assert!(
                !test.exists("Output.csv"),
                "killed after {delay} ms: no partial file"
            );
        }
    }
}

/// Every output at level 3 (stdout, stderr, log file, summary JSON) and the disk: no
/// password, proxy password, PKCS#12 password or private key, ever.
#[test]
fn no_secret_or_key_anywhere() {
    let server = qualys(|_| {});
    let mut fmc = Fmc::start(|_| {});
    let pkcs12_password = "Pkcs12-Secr3t";
    let proxy_password = "Pr0xy-Secr3t";
    let tmp = tempfile::tempdir().unwrap();
    let test = Test::new().config(&yaml(
        &server,
        &format!("proxy_password: '{proxy_password}'\n"),
    ));
    let p12 = fmc.enroll_into(
        &test,
        "CertFile.pkcs12",
        &EnrollOptions {
            password: Some(pkcs12_password.into()),
            ..EnrollOptions::default()
        },
    );
    let before: Vec<String> = test.files();
    let test = test
        .env("PKCS12_PASSWORD", pkcs12_password)
        .env("TMPDIR", &tmp.path().display().to_string())
        .args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            "-le=3".into(),
            "-stderr".into(),
            "-logfile=run.log".into(),
            "-summary-json=summary.json".into(),
        ]);
    let out = test.run();
    out.assert_code(0);
    fmc.stop();
    let key_der = {
        let data = std::fs::read(&p12).unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &data,
            pkcs12_password,
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .unwrap();
        store.private_key_chain().unwrap().1.key().as_der().to_vec()
    };
    let everything = format!(
        "{}{}{}{}",
        out.stdout,
        out.stderr,
        test.read("run.log"),
        test.read("summary.json")
    );
    assert!(everything.contains("[DEBUG]"), "ran at level 3");
    for secret in [PASSWORD, proxy_password, pkcs12_password] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(!everything.contains("PRIVATE KEY"));
    let hex: String = key_der[key_der.len() - 16..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!everything.contains(&hex), "key bytes leaked");
    // Nothing new on disk but the outputs asked for, and nothing left in TMPDIR.
    let mut after = test.files();
    after.retain(|f| !before.contains(f));
    assert_eq!(after, vec!["run.log", "summary.json"]);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "TMPDIR left empty"
    );
}
