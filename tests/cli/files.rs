//! The connector's own files: symbolic links in sticky, world-writable directories (the
//! fs.protected_symlinks rule) for every file it writes, FIFOs and devices refused as
//! inputs, keep_report names that never collide, `-server` checked before any work, and
//! command file lines with control characters.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use qualys_connector_sim::fmc::EnrollOptions;

use crate::download::{qualys, yaml};
use crate::fmc::Fmc;
use crate::harness::{BIN, Outcome, SCRUBBED_ENV, Test, example};

/// Long enough for any of these runs on a loaded machine; a run still going then hangs.
const LIMIT: Duration = Duration::from_secs(30);

const NOBODY: u32 = 65534;

fn report_arg() -> String {
    format!("-report={}", example("report.xml").display())
}

/// Runs the binary in `t`'s directory with `args`, killed after `LIMIT`: a run that
/// would block forever fails the test instead of hanging the suite.
fn run_within(t: &Test, args: &[String]) -> Outcome {
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let mut cmd = Command::new(BIN);
    cmd.current_dir(t.path("."))
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    for key in SCRUBBED_ENV {
        cmd.env_remove(key);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(out).unwrap(),
        stderr: fs::read_to_string(err).unwrap(),
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from(0o600)).unwrap();
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: not root, cannot give a symbolic link to another user; test skipped");
    false
}

/// A test directory with `shared/` (mode `mode`, 1777 is /tmp's) holding `name`, a
/// symbolic link owned by `owner` to `victim`, a root-only file outside it.
struct Planted {
    test: Test,
    shared: PathBuf,
    link: PathBuf,
    victim: PathBuf,
}

const VICTIM: &str = "root only\n";

/// `config` is the YAML file, `{shared}` in it replaced by the path of `shared/`.
fn planted(config: &str, name: &str, mode: u32, owner: u32) -> Planted {
    let test = Test::new().file("victim", VICTIM);
    let config = config.replace("{shared}", &test.path("shared").display().to_string());
    let test = test.config(&config);
    let victim = test.path("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let shared = test.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(mode)).unwrap();
    let link = shared.join(name);
    symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(owner), Some(owner)).unwrap();
    Planted {
        test,
        shared,
        link,
        victim,
    }
}

impl Planted {
    /// The victim is untouched, the link is still a link, nothing else appeared.
    #[track_caller]
    fn assert_untouched(&self) {
        assert_eq!(fs::read_to_string(&self.victim).unwrap(), VICTIM);
        assert!(fs::symlink_metadata(&self.link).unwrap().is_symlink());
        assert_eq!(
            fs::read_dir(&self.shared).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}

#[test]
fn a_csvfile_link_planted_by_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let p = planted("", "Output.csv", 0o1777, NOBODY);
    let out = run_within(&p.test, &[report_arg(), format!("-c={}", p.link.display())]);
    out.assert_code(4)
        .assert_output_contains(&format!(
            "refusing to follow the symbolic link {}",
            p.link.display()
        ))
        .assert_output_contains("owned by uid 65534");
    p.assert_untouched();
}

#[test]
fn a_csvfile_link_of_this_user_or_outside_sticky_directories_is_followed() {
    if !is_root() {
        return;
    }
    // Root's own link in the sticky directory; nobody's link in an ordinary one.
    for (mode, owner) in [(0o1777, 0), (0o777, NOBODY)] {
        let p = planted("", "Output.csv", mode, owner);
        let out = run_within(&p.test, &[report_arg(), format!("-c={}", p.link.display())]);
        out.assert_code(0);
        assert!(
            fs::read_to_string(&p.victim)
                .unwrap()
                .starts_with("SetSource,QualysGuard\n"),
            "mode {mode:o}, owner {owner}"
        );
        assert!(fs::symlink_metadata(&p.link).unwrap().is_symlink());
    }
}

#[test]
fn logfile_and_summary_links_planted_by_another_user_are_refused() {
    if !is_root() {
        return;
    }
    let cases = [
        ("run.log", "-logfile", 2),
        ("summary.json", "-summary-json", 4),
    ];
    for (name, option, code) in cases {
        let p = planted("", name, 0o1777, NOBODY);
        let out = run_within(
            &p.test,
            &[
                report_arg(),
                "-csvfile=Output.csv".into(),
                format!("{option}={}", p.link.display()),
            ],
        );
        out.assert_code(code)
            .assert_output_contains("refusing to follow the symbolic link")
            .assert_output_contains(&p.link.display().to_string());
        p.assert_untouched();
    }
}

#[test]
fn a_keep_report_link_planted_by_another_user_is_refused() {
    if !is_root() {
        return;
    }
    let server = qualys(|_| {});
    let config = yaml(&server, "keep_report: {shared}/kept\n");
    let p = planted(&config, "kept", 0o1777, NOBODY);
    // The link points at a directory root owns.
    fs::remove_file(&p.victim).unwrap();
    fs::create_dir(&p.victim).unwrap();
    let out = run_within(&p.test, &["-csvfile=Output.csv".into()]);
    out.assert_code(4)
        .assert_output_contains("cannot keep the report")
        .assert_output_contains("refusing to follow the symbolic link");
    assert_eq!(fs::read_dir(&p.victim).unwrap().count(), 0);
}

#[test]
fn keep_report_never_overwrites_a_copy_of_the_same_second() {
    let server = qualys(|_| {});
    let keep = tempfile::tempdir().unwrap();
    // Copies "from an earlier run" under every name this run could choose.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut earlier = Vec::new();
    for second in now - 1..now + LIMIT.as_secs() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
        let stamp = qualys_connector::logging::utc_timestamp(when).replace(':', "");
        let path = keep.path().join(format!("424242-{stamp}.xml"));
        fs::write(&path, "earlier run\n").unwrap();
        earlier.push(path);
    }
    let t = Test::new().config(&yaml(
        &server,
        &format!("keep_report: {}\n", keep.path().display()),
    ));
    let out = run_within(&t, &["-csvfile=Output.csv".into()]);
    out.assert_code(0).assert_output_contains("report kept as");
    for path in &earlier {
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            "earlier run\n",
            "{path:?}"
        );
    }
    let new: Vec<PathBuf> = fs::read_dir(keep.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !earlier.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("424242-") && name.ends_with("-2.xml"),
        "{name}"
    );
    assert_eq!(
        fs::read(&new[0]).unwrap(),
        fs::read(example("report.xml")).unwrap()
    );
}

#[test]
fn fifos_given_as_input_files_are_refused() {
    let fmc = Fmc::start(|_| {});
    let server = [
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
    ];
    // (file names made FIFOs, configuration, arguments, exit code)
    let cases: [(&[&str], &str, Vec<String>, i32); 6] = [
        (
            &["plugin.yaml"],
            "",
            vec![
                report_arg(),
                "-c=Output.csv".into(),
                "-plugininfo=plugin.yaml".into(),
            ],
            2,
        ),
        (
            &["client.pkcs12"],
            "",
            vec![
                report_arg(),
                server[0].clone(),
                server[1].clone(),
                "-pkcs12=client.pkcs12".into(),
            ],
            2,
        ),
        // The default: the first *.pkcs12 file of the directory.
        (
            &["CertFile.pkcs12"],
            "",
            vec![report_arg(), server[0].clone(), server[1].clone()],
            2,
        ),
        (
            &["report.xml"],
            "",
            vec!["-report=report.xml".into(), "-c=Output.csv".into()],
            3,
        ),
        (
            &["ca.pem"],
            "ca_bundle: ca.pem\n",
            vec![report_arg(), "-c=Output.csv".into()],
            2,
        ),
        // The csv plugin's command file.
        (
            &["Output.csv"],
            "",
            vec![
                server[0].clone(),
                server[1].clone(),
                "-pkcs12=good.pkcs12".into(),
                "-plugininfo=Output.csv".into(),
                "csv".into(),
            ],
            3,
        ),
    ];
    for (fifos, config, args, code) in cases {
        let t = Test::new().config(config);
        fmc.enroll_into(&t, "good.pkcs12", &EnrollOptions::default());
        for name in fifos {
            mkfifo(&t.path(name));
        }
        let out = run_within(&t, &args);
        out.assert_code(code)
            .assert_output_contains(fifos[0])
            .assert_output_contains("it is a FIFO (named pipe), not a regular file");
        assert!(!t.exists("Output.csv") || fifos[0] == "Output.csv");
    }
}

#[test]
fn a_malformed_server_is_refused_before_any_work() {
    let fmc = Fmc::start(|_| {});
    let cases = [
        ("127.0.0.1:8307", "-server=127.0.0.1 -port=8307"),
        ("[::1]", "without brackets and add -ipv6"),
        ("http://127.0.0.1", "without http://"),
        ("fmc example", "contains spaces"),
        ("::1", "add -ipv6"),
    ];
    for plugin in [None, Some("csv")] {
        for (server, said) in cases {
            let t = Test::new()
                .config("fmc_retry_wait: 0.05\nfmc_connect_timeout: 5\n")
                .file(
                    "Output.csv",
                    "SetSource,QualysGuard\nAddHost,192.0.2.1\nScanFlush\n",
                );
            fmc.enroll_into(&t, "CertFile.pkcs12", &EnrollOptions::default());
            let mut args = vec![format!("-server={server}")];
            match plugin {
                None => args.push(report_arg()),
                Some(csv) => args.extend(["-plugininfo=Output.csv".into(), csv.into()]),
            }
            let out = run_within(&t, &args);
            out.assert_code(2).assert_output_contains(said);
            assert!(
                !out.output().contains("reading report"),
                "{server}: refused before the report is read\n{}",
                out.output()
            );
        }
    }
}

#[test]
fn command_file_lines_with_control_characters_are_refused() {
    let mut fmc = Fmc::start(|_| {});
    let line = "AddScanResult,192.0.2.1,\"QualysGuard\",38170,443,6,\"SSL\u{0}x\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"";
    let t = Test::new().config("").file(
        "Output.csv",
        format!("SetSource,QualysGuard\nAddHost,192.0.2.1\n{line}\nScanFlush\n"),
    );
    fmc.enroll_into(&t, "CertFile.pkcs12", &EnrollOptions::default());
    let out = run_within(
        &t,
        &[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            "-plugininfo=Output.csv".into(),
            "csv".into(),
        ],
    );
    out.assert_code(3)
        .assert_output_contains("line 3: contains the control character NUL (0x00) at column 55")
        .assert_output_contains("nothing was sent");
    assert!(fmc.stop().hosts.is_empty(), "nothing reached the FMC");
}
