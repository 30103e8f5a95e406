//! Where log lines go (-stderr, -logfile, default stdout), -level, and that secrets never
//! appear in any of them, even at level 3.

use crate::harness::{Test, example};

fn base(yaml: &str) -> Test {
    Test::new().config(yaml).args(&[
        format!("-report={}", example("report.xml").display()),
        "-csvfile=Output.csv".into(),
    ])
}

#[test]
fn default_is_standard_output() {
    let out = base("").run();
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("[INFO] QualysGuard Report Processing Complete")
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn stderr_replaces_standard_output() {
    let out = base("").args(&["-stderr"]).run();
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("QualysGuard Report Processing Complete")
    );
}

#[test]
fn logfile_receives_the_log() {
    let t = base("").args(&["-logfile=run.log"]);
    let out = t.run();
    out.assert_code(0);
    assert!(out.stdout.is_empty());
    let log = t.read("run.log");
    assert!(
        log.contains("[INFO] QualysGuard Report Processing Complete"),
        "{log}"
    );
    // A second run appends.
    t.run().assert_code(0);
    assert_eq!(t.read("run.log").matches("Processing Complete").count(), 2);
}

#[test]
fn a_fatal_error_with_only_a_logfile_still_reaches_stderr() {
    let t = Test::new().config("add_host: maybe\n").args(&[
        "-report=x.xml",
        "-c=Output.csv",
        "-lo=run.log",
    ]);
    let out = t.run();
    out.assert_code(2);
    assert!(out.stderr.contains("add_host"), "{}", out.stderr);
    assert!(t.read("run.log").contains("[ERROR]"));
}

#[test]
fn levels_filter_messages() {
    let cases = [
        ("0", false, false),
        ("1", false, false),
        ("2", true, false),
        ("3", true, true),
    ];
    for (level, info, debug) in cases {
        let out = base("").args(&[format!("-level={level}")]).run();
        out.assert_code(0);
        assert_eq!(out.stdout.contains("[INFO]"), info, "level {level}");
        assert_eq!(
            out.stdout.contains("[DEBUG] importing"),
            debug,
            "level {level}"
        );
    }
}

#[test]
fn level_3_logs_every_vulnerability_imported() {
    let out = base("").args(&["-le=3"]).run();
    out.assert_code(0);
    assert_eq!(
        out.stdout.matches("[DEBUG] importing").count(),
        6,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("importing Vuln QID 38170 on 192.0.2.10 port 443/tcp")
    );
}

#[test]
fn secrets_never_reach_any_output() {
    let yaml = "user_id: dirk_g\npassword: 'Fil3-P@ss'\ntemplate_id: 424242\nproxy: https://192.168.1.100:443\nproxy_username: zaphod\nproxy_password: 'Pr0xy-P@ss'\n";
    let t = base(yaml)
        .env("QUALYS_PROXY_PASSWORD", "Env-Pr0xy-P@ss")
        .env("PKCS12_PASSWORD", "Env-Pkcs12-P@ss")
        .args(&[
            "-le=3",
            "-stderr",
            "-logfile=run.log",
            "-password=Cli-Pkcs12-P@ss",
            "-server=10.10.10.10",
        ]);
    let out = t.run();
    out.assert_code(0);
    let everything = format!("{}{}{}", out.stdout, out.stderr, t.read("run.log"));
    assert!(everything.contains("[DEBUG]"), "ran at level 3");
    for secret in [
        "Fil3-P@ss",
        "Pr0xy-P@ss",
        "Env-Pr0xy-P@ss",
        "Env-Pkcs12-P@ss",
        "Cli-Pkcs12-P@ss",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

/// Progress goes to a terminal only: under a pseudo-terminal (`script`) the status line
/// shows; with stderr captured (as under cron) there is none.
#[test]
fn progress_only_on_a_terminal() {
    let t = base("").args(&["-le=1"]);
    let piped = t.run();
    piped.assert_code(0);
    assert!(
        !piped.stderr.contains('\r'),
        "no progress when piped: {:?}",
        piped.stderr
    );
    if !std::path::Path::new("/usr/bin/script").exists() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP: /usr/bin/script not found, terminal progress not checked\n",
        );
        return;
    }
    let command = format!(
        "{} -report={} -csvfile=Output.csv -le=1",
        crate::harness::BIN,
        example("report.xml").display()
    );
    let out = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(t.path("."))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\r\x1b[Ksend     [##############################] 100% 4 of 4 hosts done"),
        "{text:?}"
    );
}

/// A real syslog daemon (Debian's rsyslog) on a socket of the test's own: every line
/// arrives with the program name, and no secret does.
#[test]
fn syslog_reaches_a_real_rsyslogd() {
    let Some(rsyslogd) = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP: rsyslogd not installed (.ci/run installs it), syslog test skipped\n",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("log");
    let messages = dir.path().join("messages");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "module(load=\"imuxsock\" SysSock.Use=\"off\")\ninput(type=\"imuxsock\" Socket=\"{}\" CreatePath=\"on\")\n$WorkDirectory {}\n*.* action(type=\"omfile\" file=\"{}\" template=\"RSYSLOG_TraditionalFileFormat\")\n",
            socket.display(),
            dir.path().display(),
            messages.display()
        ),
    )
    .unwrap();
    let mut daemon = std::process::Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "rsyslogd did not create its socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = base("password: 'Sysl0g-Secr3t'\n")
        .env("SYSLOG_SOCKET", &socket.display().to_string())
        .args(&["-syslog", "-le=3"])
        .run();
    out.assert_code(0);
    assert!(
        out.stdout.is_empty(),
        "the log went to syslog, not stdout: {}",
        out.stdout
    );
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&messages).unwrap_or_default();
        if text.contains("done:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(text.contains("qualys-connector["), "{text}");
    assert!(
        text.contains("QualysGuard Report Processing Complete"),
        "{text}"
    );
    assert!(
        text.contains("importing Vuln QID 38170"),
        "level 3 reaches syslog: {text}"
    );
    assert!(!text.contains("Sysl0g-Secr3t"), "no secret in syslog");
}

#[test]
fn without_a_syslog_socket_the_log_goes_to_stderr_with_one_warning() {
    let out = base("")
        .env("SYSLOG_SOCKET", "/nonexistent/log")
        .args(&["-syslog"])
        .run();
    out.assert_code(0);
    assert_eq!(
        out.stderr
            .matches("syslog is not available (/nonexistent/log")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("QualysGuard Report Processing Complete")
    );
}
