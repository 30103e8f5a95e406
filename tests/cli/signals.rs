//! Signals and the run's time bound, end to end: the real binary, real signals sent with
//! `kill`, against the simulators slowed down (a trickled download, slow FMC replies, a
//! slow delete). A stopped run exits 128 + the signal (7 for `max_run_seconds`), leaves
//! nothing in TMPDIR nor beside `-csvfile`, and deletes the report it launched on Qualys.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qualys_connector_sim::fmc::EnrollOptions;
use qualys_connector_sim::qualys::{GenSpec, QualysServer, TemplateSource, generate};

use crate::download::{qualys, yaml};
use crate::fmc::Fmc;
use crate::harness::{Outcome, Test, example};

/// A connector started in the background, its output going to files in the scratch
/// directory (a pipe nobody reads could block it).
struct Running {
    child: Child,
    started: Instant,
}

impl Running {
    /// Starts `test`'s command line with TMPDIR set to the scratch directory's `tmp`.
    fn start(test: &Test) -> Running {
        std::fs::create_dir_all(test.path("tmp")).unwrap();
        let out = std::fs::File::create(test.path("tmp-stdout")).unwrap();
        let err = std::fs::File::create(test.path("tmp-stderr")).unwrap();
        let child = test
            .command()
            .env("TMPDIR", test.path("tmp"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Running {
            child,
            started: Instant::now(),
        }
    }

    /// Sends `signal` (a name for `kill`, e.g. `TERM`) with the `kill` command.
    fn kill(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the exit, at most `bound`; the process is killed and the test fails
    /// past it. Returns the outcome and how long the wait took.
    fn wait(mut self, test: &Test, bound: Duration) -> (Outcome, Duration) {
        let waited = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if waited.elapsed() > bound {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {bound:?} after the signal\n--- stderr\n{}",
                    test.read("tmp-stderr")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let outcome = Outcome {
            // A process killed by a signal has no code: -1 fails every code check.
            code: status.code().unwrap_or(-1),
            stdout: test.read("tmp-stdout"),
            stderr: test.read("tmp-stderr"),
        };
        (outcome, waited.elapsed())
    }
}

/// Waits until the simulator has seen a call with `action` (the run reached that phase).
fn await_action(server: &QualysServer, action: &str, run: &Running) {
    while !server.requests().iter().any(|r| has_action(r, action)) {
        assert!(
            run.started.elapsed() < Duration::from_secs(30),
            "no {action} call within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_action(r: &qualys_connector_sim::qualys::RecordedRequest, action: &str) -> bool {
    r.params.iter().any(|(k, v)| k == "action" && v == action)
}

/// What the run left behind: files in TMPDIR, and anything but the configuration and
/// the captured output in the scratch directory (the CSV file or its hidden temporary).
#[track_caller]
fn assert_nothing_left(test: &Test) {
    let tmp: Vec<_> = std::fs::read_dir(test.path("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "TMPDIR not empty: {tmp:?}");
    let left: Vec<String> = test
        .files()
        .into_iter()
        .filter(|f| {
            !matches!(
                f.as_str(),
                "InputPlugins" | "tmp" | "tmp-stdout" | "tmp-stderr" | "summary.json"
            )
        })
        .collect();
    assert!(left.is_empty(), "left beside the CSV target: {left:?}");
}

/// A download writing the CSV file, trickled by `trickle_ms` (the example report then
/// takes about 23 × `trickle_ms`).
fn trickled(trickle_ms: u64, delete_delay_ms: u64) -> (QualysServer, Test) {
    let server = qualys(|o| {
        o.trickle_ms = trickle_ms;
        o.delete_delay_ms = delete_delay_ms;
    });
    let test = Test::new()
        .config(&yaml(&server, ""))
        .args(&["-csvfile=Output.csv"]);
    (server, test)
}

/// Runs `test`, sends `signal` `after` the report's fetch began, and waits for the end
/// (at most 60 s); returns how long the run took after the signal.
fn signal_during_fetch(
    server: &QualysServer,
    test: &Test,
    signal: &str,
    after: Duration,
) -> (Outcome, Duration) {
    let run = Running::start(test);
    await_action(server, "fetch", &run);
    std::thread::sleep(after);
    run.kill(signal);
    run.wait(test, Duration::from_secs(60))
}

#[test]
fn each_signal_ends_a_download_with_its_code_and_cleans_up() {
    for (signal, code) in [("HUP", 129), ("INT", 130), ("QUIT", 131), ("TERM", 143)] {
        let (server, test) = trickled(150, 0);
        let (out, _) = signal_during_fetch(&server, &test, signal, Duration::from_millis(300));
        out.assert_code(code)
            .assert_output_contains(&format!("stopped by SIG{signal}"));
        assert_nothing_left(&test);
        assert!(
            server.requests().iter().any(|r| has_action(r, "delete")),
            "SIG{signal}: the report is deleted on Qualys"
        );
        assert_eq!(server.reports_alive(), 0, "SIG{signal}");
    }
}

/// Needs the stop-aware Qualys client (its reads and waits give up on a stop).
#[test]
fn sigterm_ends_a_slow_download_promptly() {
    // About 23 s of download.
    let (server, test) = trickled(1000, 0);
    let (out, took) = signal_during_fetch(&server, &test, "TERM", Duration::from_millis(500));
    out.assert_code(143)
        .assert_output_contains("stopped by SIGTERM")
        .assert_output_contains("Output.csv was not written");
    assert!(
        took < Duration::from_secs(10),
        "ended {took:?} after SIGTERM"
    );
    assert_nothing_left(&test);
    assert_eq!(server.reports_alive(), 0, "the report is deleted on Qualys");
}

/// Needs the stop-aware Qualys client: the delete after a stop is bounded (5 s), not
/// cut short by the stop, not as long as the server makes it.
#[test]
fn the_delete_after_a_stop_is_bounded() {
    let (server, test) = trickled(1000, 30_000);
    let (out, took) = signal_during_fetch(&server, &test, "TERM", Duration::ZERO);
    out.assert_code(143)
        .assert_output_contains("could not delete report");
    assert!(
        took < Duration::from_secs(15),
        "the delete held the run {took:?}"
    );
    assert!(server.requests().iter().any(|r| has_action(r, "delete")));
    assert_nothing_left(&test);
}

#[test]
fn a_second_signal_ends_the_run_at_once() {
    // The download takes about 23 s and the delete after it 30 s: only a second signal
    // ends the run within seconds of the first, and it does not wait for the clean-up.
    let (server, test) = trickled(1000, 30_000);
    let run = Running::start(&test);
    await_action(&server, "fetch", &run);
    run.kill("TERM");
    std::thread::sleep(Duration::from_millis(1000));
    let second = Instant::now();
    run.kill("INT");
    let (out, _) = run.wait(&test, Duration::from_secs(60));
    let took = second.elapsed();
    // 128 + the second signal: the process ends from the signal handler.
    out.assert_code(130);
    assert!(
        took < Duration::from_secs(3),
        "ended {took:?} after the second signal"
    );
    assert!(
        !out.output()
            .contains("QualysGuard Report Processing Complete")
    );
}

#[test]
fn max_run_seconds_ends_multiinfo_and_the_rest_is_not_started() {
    // Two templates; the first one's download alone outlasts max_run_seconds.
    let server = qualys(|o| {
        o.trickle_ms = 200;
        o.templates = vec![
            ("424242".into(), TemplateSource::File(example("report.xml"))),
            ("434343".into(), TemplateSource::File(example("report.xml"))),
        ];
    });
    let test = Test::new()
        .config(&yaml(&server, "max_run_seconds: 2\n"))
        .args(&[
            "-csvfile=Output.csv",
            "-multiinfo=424242,434343",
            "-summary-json=summary.json",
        ]);
    let run = Running::start(&test);
    let (out, took) = run.wait(&test, Duration::from_secs(60));
    out.assert_code(7)
        .assert_output_contains("the run reached max_run_seconds (2 s)")
        .assert_output_contains("template 434343: not started")
        .assert_output_contains("424242_Output.csv was not written")
        .assert_output_contains("2 templates: 0 succeeded, 1 failed, 1 not started");
    assert!(took < Duration::from_secs(30), "ended after {took:?}");
    assert_nothing_left(&test);
    let launched = server
        .requests()
        .iter()
        .filter(|r| has_action(r, "launch"))
        .count();
    assert_eq!(launched, 1, "the second template is not launched");
    let json: serde_json::Value = serde_json::from_str(&test.read("summary.json")).unwrap();
    assert_eq!(json["exit_code"], 7);
    let statuses: Vec<&str> = json["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "not started"]);
    assert_eq!(server.reports_alive(), 0, "the report is deleted on Qualys");
}

/// Needs the stop-aware Qualys client: the bound cuts the download itself.
#[test]
fn max_run_seconds_ends_a_stuck_report_with_7() {
    let server = qualys(|o| o.stuck = true);
    let test = Test::new()
        .config(&yaml(&server, "max_run_seconds: 2\n"))
        .args(&["-csvfile=Output.csv"]);
    let run = Running::start(&test);
    let (out, took) = run.wait(&test, Duration::from_secs(60));
    out.assert_code(7).assert_output_contains("max_run_seconds");
    assert!(took < Duration::from_secs(10), "ended after {took:?}");
    assert_nothing_left(&test);
    assert_eq!(server.reports_alive(), 0, "the report is deleted on Qualys");
}

/// Needs the stop-aware FMC sink: no new block after the signal, the reply of the block
/// in flight awaited, the unconfirmed hosts listed.
#[test]
fn sigterm_during_slow_fmc_replies_lists_what_was_not_confirmed() {
    const HOSTS: usize = 40;
    let fmc = Fmc::start(|o| {
        o.delay_ms = 1500;
        o.max_size = 4000;
    });
    let test = Test::new().config("add_host: y\nfmc_reply_timeout: 30\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let report = test.path("report.xml");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&report).unwrap());
    let spec = GenSpec {
        hosts: HOSTS as u64,
        seed: 7,
        ..GenSpec::default()
    };
    generate(&spec, &mut file).unwrap();
    drop(file);
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        format!("-report={}", report.display()),
    ]);
    let run = Running::start(&test);
    // Delivery starts once the report is parsed (slow on a loaded machine); the first
    // reply comes 1.5 s later: the signal lands while a later block waits.
    let parsed = Instant::now();
    while !std::fs::read_to_string(test.path("tmp-stdout"))
        .unwrap_or_default()
        .contains("Report Processing Complete")
    {
        assert!(parsed.elapsed() < Duration::from_secs(60), "never parsed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    run.kill("TERM");
    let (out, took) = run.wait(&test, Duration::from_secs(60));
    out.assert_code(143)
        .assert_output_contains("stopped by SIGTERM")
        .assert_output_contains("not confirmed by the FMC");
    assert!(
        took < Duration::from_secs(15),
        "ended {took:?} after SIGTERM"
    );
    let mut fmc = fmc;
    let map = fmc.stop();
    assert!(
        !map.hosts.is_empty() && map.hosts.len() < HOSTS,
        "some hosts delivered, not all: {}",
        map.hosts.len()
    );
}

#[test]
fn a_signal_during_the_download_sends_nothing_to_the_fmc() {
    let mut fmc = Fmc::start(|_| {});
    let server = qualys(|o| o.trickle_ms = 150);
    let test = Test::new().config(&yaml(&server, ""));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
    ]);
    let (out, _) = signal_during_fetch(&server, &test, "TERM", Duration::from_millis(300));
    out.assert_code(143)
        .assert_output_contains("stopped by SIGTERM: nothing was sent to 127.0.0.1");
    assert!(fmc.stop().hosts.is_empty(), "no host reached the FMC");
    assert_eq!(server.reports_alive(), 0, "the report is deleted on Qualys");
}

#[test]
fn max_run_seconds_ends_the_parse_of_a_large_report_file() {
    // 4,000 generated hosts, about 58 MB: several seconds of parsing in a test build,
    // well past the bound of 1 s (the smallest max_run_seconds takes).
    let test = Test::new().config("add_host: y\nmax_run_seconds: 1\n");
    let report = test.path("tmp-report.xml");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&report).unwrap());
    let spec = GenSpec {
        hosts: 4000,
        seed: 5,
        ..GenSpec::default()
    };
    generate(&spec, &mut file).unwrap();
    drop(file);
    let test = test.args(&[
        format!("-report={}", report.display()),
        "-csvfile=Output.csv".into(),
        "-level=3".into(),
    ]);
    let run = Running::start(&test);
    let (out, took) = run.wait(&test, Duration::from_secs(120));
    std::fs::remove_file(&report).unwrap();
    out.assert_code(7)
        .assert_output_contains("the run reached max_run_seconds (1 s)")
        .assert_output_contains("Output.csv was not written");
    // The parse itself was cut (the debug log keeps the error the stop caused).
    out.assert_output_contains("cannot read the report: the run reached max_run_seconds");
    assert!(took < Duration::from_secs(30), "ended after {took:?}");
    assert_nothing_left(&test);
}
