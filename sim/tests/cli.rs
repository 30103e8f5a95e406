//! The `fmc-sim` binary as scripts use it: `enroll` prints the file's path, `serve`
//! prints `listening on <addr>` first and writes `--map-out` JSON when it stops
//! (`--exit-after`, SIGTERM), and bad arguments exit with code 2.

// Helpers outside #[test] fns (fixtures, clients) fail loudly, as test code should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, EXAMPLE, example_map, load_identity};
use qualys_connector_sim::fmc::NetworkMap;

const BIN: &str = env!("CARGO_BIN_EXE_fmc-sim");

fn enroll_cli(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = Command::new(BIN)
        .args(["enroll", "--client", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim_end());
    assert_eq!(path, dir.join("127.0.0.1.pkcs12"));
    path
}

/// Starts `fmc-sim serve` and returns the child and the address of its first line.
fn serve(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .trim_end()
        .parse()
        .unwrap();
    (child, addr)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fmc-sim did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_prints_listening_first_and_writes_the_map_on_exit_after() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = enroll_cli(dir.path(), &[]);
    let id = load_identity(&p12, "");
    let map_out = dir.path().join("map.json");
    let map_arg = map_out.to_str().unwrap();
    let (mut child, addr) = serve(dir.path(), &["--map-out", map_arg, "--exit-after", "1"]);
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let (mut client, _) = Client::session(addr, &id).unwrap();
    client.ok_block(EXAMPLE, 8);
    client.close();
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    let json = std::fs::read_to_string(&map_out).unwrap();
    assert!(json.contains('\n'), "pretty JSON expected");
    let map: NetworkMap = serde_json::from_str(&json).unwrap();
    assert_eq!(map, example_map());
}

#[test]
fn serve_stops_on_sigterm_and_writes_the_map() {
    let dir = tempfile::tempdir().unwrap();
    // serve creates the CA itself when the directory has none.
    let map_out = dir.path().join("out.json");
    let (mut child, _) = serve(
        dir.path(),
        &[
            "--map-out",
            map_out.to_str().unwrap(),
            "--known-host",
            "192.0.2.1",
        ],
    );
    assert!(dir.path().join("ca.pem").exists());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status}");
    let map: NetworkMap =
        serde_json::from_str(&std::fs::read_to_string(&map_out).unwrap()).unwrap();
    assert_eq!(map.hosts.len(), 1);
}

#[test]
fn enroll_options_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = enroll_cli(
        dir.path(),
        &[
            "--password",
            "pw",
            "--scheme",
            "aes",
            "--cert-version",
            "1",
            "--key",
            "rsa",
            "--valid-days=30",
        ],
    );
    let id = load_identity(&p12, "pw");
    let (_, cert) = x509_parser::parse_x509_certificate(&id.chain[0]).unwrap();
    assert_eq!(cert.version(), x509_parser::x509::X509Version::V1);
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 31);
    // And serve accepts that client (v1, RSA).
    let (mut child, addr) = serve(
        dir.path(),
        &["--exit-after=1", "--strict", "--flush-clears", "all"],
    );
    let (client, _) = Client::session(addr, &id).unwrap();
    client.close();
    assert!(wait_exit(&mut child).success());
}

#[test]
fn bad_arguments_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["bogus"],
        vec!["serve"],
        vec!["serve", "--dir", d, "--max-size", "abc"],
        vec!["serve", "--dir", d, "--listen", "nope"],
        vec!["serve", "--dir", d, "--strict=yes"],
        vec!["serve", "--dir", d, "--flush-clears", "some"],
        vec!["serve", "--dir", d, "--server-cert", "v2"],
        vec!["serve", "--dir", d, "--known-host", "example.com"],
        vec!["serve", "--dir", d, "--error-on", "0"],
        vec!["serve", "--dir", d, "--delay-ms"],
        vec!["serve", "--dir", d, "extra"],
        vec!["enroll", "--dir", d],
        vec!["enroll", "--client", "127.0.0.1"],
        vec![
            "enroll",
            "--client",
            "127.0.0.1",
            "--dir",
            d,
            "--scheme",
            "rc4",
        ],
        vec![
            "enroll",
            "--client",
            "127.0.0.1",
            "--dir",
            d,
            "--cert-version",
            "2",
        ],
        vec![
            "enroll",
            "--client",
            "127.0.0.1",
            "--dir",
            d,
            "--key",
            "dsa",
        ],
        vec![
            "enroll",
            "--client",
            "127.0.0.1",
            "--dir",
            d,
            "--valid-days",
            "x",
        ],
        vec!["enroll", "--client", "127.0.0.1", "--dir", d, "--unknown"],
    ];
    for args in cases {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("fmc-sim: "), "{args:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("ca.pem").exists(),
        "nothing created on bad arguments"
    );
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
}
