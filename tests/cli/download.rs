//! Downloading from the Qualys simulator over real HTTP(S): the v2 and v1 flows, each
//! Qualys error and fault, a real proxy (Debian's tinyproxy), and the end-to-end map
//! against the FMC simulator.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qualys_connector_sim::fmc::EnrollOptions;
use qualys_connector_sim::qualys::{
    GenSpec, InjectedError, QualysServer, ServerOptions, TemplateSource,
};

use crate::fmc::{Fmc, map_findings};
use crate::harness::{Outcome, Test, example, shared_fixture};

pub const USER: &str = "dirk_g";
/// Punctuation that URL-encoding would mangle (qualys.md §1).
pub const PASSWORD: &str = "d0nt+p@n&c%'\",x";

pub fn qualys(configure: impl FnOnce(&mut ServerOptions)) -> QualysServer {
    let mut options = ServerOptions::new(USER, PASSWORD);
    options.report_delay_ms = 50;
    options.templates = vec![("424242".into(), TemplateSource::File(example("report.xml")))];
    configure(&mut options);
    QualysServer::start(options).unwrap()
}

/// A YAML file for the simulator (credentials quoted as the guide says).
pub fn yaml(server: &QualysServer, extra: &str) -> String {
    let mut text = format!(
        "user_id: {USER}\npassword: '{}'\ntemplate_id: 424242\nurl: {}\nadd_host: y\npoll_interval: 0.05\n",
        PASSWORD.replace('\'', "''"),
        server.url()
    );
    if !extra.contains("qualys_retries") {
        text.push_str("qualys_retries: 3\n");
    }
    if let Some(ca) = server.ca_pem() {
        text.push_str(&format!("ca_bundle: {}\n", ca.display()));
    }
    text.push_str(extra);
    text
}

fn to_csv(server: &QualysServer, extra: &str) -> (Test, Outcome) {
    let t = Test::new()
        .config(&yaml(server, extra))
        .args(&["-csvfile=Output.csv"]);
    let out = t.run();
    (t, out)
}

/// The commands the example report gives with -report, to compare downloads with.
fn reference_csv() -> String {
    let t = Test::new().config("add_host: y\n").args(&[
        format!("-report={}", example("report.xml").display()),
        "-csvfile=Output.csv".into(),
    ]);
    t.run().assert_code(0);
    t.read("Output.csv")
}

#[test]
fn v2_flow_gives_the_same_commands_as_the_file() {
    let server = qualys(|_| {});
    let (t, out) = to_csv(&server, "");
    out.assert_code(0)
        .assert_output_contains("Qualys report")
        .assert_output_contains("launched for template 424242")
        .assert_output_contains("QualysGuard Report Processing Complete");
    assert_eq!(t.read("Output.csv"), reference_csv());
    let requests = server.requests();
    let actions: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            r.params
                .iter()
                .find(|(k, _)| k == "action")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(actions.first().map(String::as_str), Some("launch"));
    assert!(actions.contains(&"list".to_string()));
    assert_eq!(&actions[actions.len() - 2..], ["fetch", "delete"]);
    for r in &requests {
        assert!(r.auth_ok, "every call authenticated: {r:?}");
        assert!(
            r.requested_with.is_some(),
            "X-Requested-With on every call: {r:?}"
        );
    }
    assert_eq!(server.reports_alive(), 0, "the report was deleted");
    assert!(!out.output().contains("p@n"), "no password in the log");
}

#[test]
fn v1_flow_gives_the_same_commands() {
    let server = qualys(|_| {});
    let (t, out) = to_csv(&server, "report_api: v1\n");
    out.assert_code(0);
    assert_eq!(t.read("Output.csv"), reference_csv());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/msp/asset_data_report.php");
}

#[test]
fn https_with_a_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let server = qualys(|o| o.tls_dir = Some(dir.path().to_path_buf()));
    assert!(server.url().starts_with("https://"));
    let (t, out) = to_csv(&server, "");
    out.assert_code(0);
    assert_eq!(t.read("Output.csv"), reference_csv());

    // Without the bundle the simulator's certificate is not trusted.
    let without = yaml(&server, "")
        .lines()
        .filter(|l| !l.starts_with("ca_bundle"))
        .collect::<Vec<_>>()
        .join("\n");
    let t = Test::new().config(&without).args(&["-csvfile=Output.csv"]);
    t.run()
        .assert_code(6)
        .assert_output_contains("is not trusted")
        .assert_output_contains("ca_bundle");
    assert!(!t.exists("Output.csv"));
}

#[test]
fn plain_http_url_warns() {
    let server = qualys(|_| {});
    to_csv(&server, "")
        .1
        .assert_code(0)
        .assert_output_contains("plain http: the Qualys credentials travel in clear text");
}

/// Each Qualys error, with its exit code, message and hint.
#[test]
fn qualys_errors() {
    struct Case {
        name: &'static str,
        configure: fn(&mut ServerOptions),
        yaml: &'static str,
        wants: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "bad password (2010)",
            configure: |o| o.password = "something else".into(),
            yaml: "",
            wants: &["CODE 2010: Bad Login/Password", "single quotes"],
        },
        Case {
            name: "invalid template (999)",
            configure: |o| o.templates.clear(),
            yaml: "",
            wants: &[
                "CODE 999",
                "Tried to launch invalid report.",
                "check template_id",
            ],
        },
        Case {
            name: "expired account (2001 with HTTP 200, no declaration)",
            configure: |o| o.expired_account = true,
            yaml: "",
            wants: &["CODE 2001", "expired"],
        },
        Case {
            name: "report ends in Errors",
            configure: |o| o.errors_state = true,
            yaml: "",
            wants: &["ended in state Errors"],
        },
        Case {
            name: "report stuck Running",
            configure: |o| o.stuck = true,
            yaml: "report_deadline: 1\n",
            wants: &["was not finished after 1 s", "report_deadline"],
        },
        Case {
            name: "v1 error (GENERIC_RETURN)",
            configure: |o| o.templates.clear(),
            yaml: "report_api: v1\n",
            wants: &["GENERIC_RETURN CODE"],
        },
        Case {
            name: "rate-limit wait beyond qualys_max_wait (default 3600 s)",
            configure: |o| {
                o.rate_limit_first = 1;
                o.to_wait_sec = 999_999;
            },
            yaml: "",
            wants: &["asked to wait 999999 s", "qualys_max_wait (3600 s)"],
        },
        Case {
            name: "rate-limit wait beyond a configured qualys_max_wait",
            configure: |o| {
                o.rate_limit_first = 1;
                o.to_wait_sec = 61;
            },
            yaml: "qualys_max_wait: 60\n",
            wants: &["asked to wait 61 s", "raise qualys_max_wait"],
        },
        Case {
            name: "compressed report (Content-Encoding: gzip)",
            configure: |o| o.content_encoding = Some("gzip".into()),
            yaml: "",
            wants: &["Content-Encoding: gzip", "Accept-Encoding: identity"],
        },
        Case {
            name: "server errors beyond the retries",
            configure: |o| o.server_error_first = 100,
            yaml: "qualys_retries: 1\n",
            wants: &["HTTP 503"],
        },
    ];
    for case in cases {
        let server = qualys(case.configure);
        let (t, out) = to_csv(&server, case.yaml);
        assert_eq!(out.code, 6, "{}: {}", case.name, out.output());
        for want in case.wants {
            assert!(
                out.output().contains(want),
                "{}: lacks {want:?}\n{}",
                case.name,
                out.output()
            );
        }
        assert!(!t.exists("Output.csv"), "{}: nothing written", case.name);
        assert_eq!(
            server.reports_alive(),
            0,
            "{}: no report left on Qualys",
            case.name
        );
    }
}

/// A download that never ends stops at each bound with exit 6 naming the key, within a
/// generous time, and leaves nothing in TMPDIR.
#[test]
fn endless_downloads_end_at_their_bound() {
    // (trickle ms, YAML, wanted in the output)
    let cases = [
        (0, "max_report_bytes: 2MB\n", "max_report_bytes"),
        (20, "download_deadline: 2\n", "download_deadline (2 s)"),
        (0, "tmp_min_free: 1000TB\n", "less than tmp_min_free"),
    ];
    for (trickle, extra, want) in cases {
        let server = qualys(|o| {
            o.endless_body = true;
            o.trickle_ms = trickle;
        });
        let t = Test::new().config(&yaml(&server, extra));
        let tmp = t.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let t = t
            .env("TMPDIR", &tmp.display().to_string())
            .args(&["-csvfile=Output.csv"]);
        let started = Instant::now();
        let out = t.run();
        assert_eq!(out.code, 6, "{extra}: {}", out.output());
        assert!(
            out.output().contains(want),
            "{extra}: lacks {want:?}\n{}",
            out.output()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{extra}: finished in {:?}\n{}",
            started.elapsed(),
            out.output()
        );
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(
            left.is_empty(),
            "{extra}: TMPDIR empty afterwards: {left:?}"
        );
        assert!(!t.exists("Output.csv"), "{extra}: nothing written");
    }
}

#[test]
fn unreachable_qualys_says_what_to_check() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Test::new()
        .config(&format!("user_id: u\npassword: p\ntemplate_id: 1\nurl: http://127.0.0.1:{port}\nqualys_retries: 0\n"))
        .args(&["-csvfile=Output.csv"]);
    t.run()
        .assert_code(6)
        .assert_output_contains("refused the connection")
        .assert_output_contains("port 443");
}

/// Faults Qualys produces in the field: the run still ends with the right commands.
#[test]
fn recovered_faults_give_the_same_commands() {
    type Configure = fn(&mut ServerOptions);
    let cases: [(&str, Configure, &str); 5] = [
        (
            "rate limit (409, 1965)",
            |o| o.rate_limit_first = 2,
            "HTTP 409 CODE 1965",
        ),
        ("busy launching", |o| o.busy_first = 1, "Qualys is busy"),
        ("cut body", |o| o.cut_body_once = true, "incomplete"),
        (
            "trickle with keep-alive comments",
            |o| o.trickle_ms = 20,
            "downloaded",
        ),
        ("a 503 first", |o| o.server_error_first = 1, "HTTP 503"),
    ];
    let reference = reference_csv();
    for (name, configure, log) in cases {
        let server = qualys(configure);
        let (t, out) = to_csv(&server, "");
        assert_eq!(out.code, 0, "{name}: {}", out.output());
        assert!(
            out.output().contains(log),
            "{name}: lacks {log:?}\n{}",
            out.output()
        );
        assert_eq!(t.read("Output.csv"), reference, "{name}");
        assert_eq!(server.reports_alive(), 0, "{name}");
    }
}

/// The parse runs behind the download; what it read is used only when the first attempt
/// completed. A cut transfer fetched again is parsed again from the finished file.
#[test]
fn parse_behind_the_download_only_counts_for_a_complete_first_attempt() {
    type Configure = fn(&mut ServerOptions);
    let cases: [(&str, Configure, &str, &str); 3] = [
        (
            "fault-free",
            |_| {},
            "report parsed while it downloaded",
            "parsing the finished file",
        ),
        (
            "trickle",
            |o| o.trickle_ms = 20,
            "report parsed while it downloaded",
            "parsing the finished file",
        ),
        (
            "cut body",
            |o| o.cut_body_once = true,
            "parsing the finished file",
            "report parsed while it downloaded",
        ),
    ];
    let reference = reference_csv();
    for (name, configure, said, not_said) in cases {
        let server = qualys(configure);
        let (t, out) = to_csv(&server, "");
        assert_eq!(out.code, 0, "{name}: {}", out.output());
        assert!(
            out.output().contains(said),
            "{name}: lacks {said:?}\n{}",
            out.output()
        );
        assert!(
            !out.output().contains(not_said),
            "{name}: says {not_said:?}\n{}",
            out.output()
        );
        assert_eq!(t.read("Output.csv"), reference, "{name}");
    }
}

/// Reports that download in full but are not whole: the parse running behind the download
/// must stop with it, and nothing may be written.
#[test]
fn broken_downloads_stop_the_parse_behind_them() {
    let full = std::fs::read_to_string(example("report.xml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.xml");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    // Whole (the root closes) but malformed in the middle of the host list.
    let malformed = dir.path().join("malformed.xml");
    let at = full.find("</HOST>").unwrap();
    std::fs::write(
        &malformed,
        format!("{}<BROKEN attr=></HOST>{}", &full[..at], &full[at + 7..]),
    )
    .unwrap();
    let cases = [
        (&cut, 6, "incomplete 2 times"),
        (
            &malformed,
            3,
            "the report of template 424242 (not kept: set keep_report to keep downloaded reports):51:19: malformed XML",
        ),
    ];
    for (file, code, said) in cases {
        let server = qualys(|o| {
            o.templates = vec![("424242".into(), TemplateSource::File(file.clone()))];
        });
        let t = Test::new()
            .config(&yaml(&server, "qualys_retries: 1\n"))
            .args(&["-csvfile=Output.csv"]);
        let out = t.run();
        out.assert_code(code).assert_output_contains(said);
        assert!(!t.path("Output.csv").exists(), "{}", file.display());
        assert_eq!(server.reports_alive(), 0);
    }
    // With keep_report, the error points into the kept copy.
    let server = qualys(|o| {
        o.templates = vec![("424242".into(), TemplateSource::File(malformed.clone()))];
    });
    let keep = tempfile::tempdir().unwrap();
    let t = Test::new()
        .config(&yaml(
            &server,
            &format!("keep_report: {}\n", keep.path().display()),
        ))
        .args(&["-csvfile=Output.csv"]);
    let out = t.run();
    out.assert_code(3)
        .assert_output_contains(&format!("{}/424242-", keep.path().display()))
        .assert_output_contains(".xml:51:19: malformed XML");
}

/// The parse behind the download holds its warnings until it is known to count: a
/// discarded parse (the transfer was cut) must not make a warning appear twice.
#[test]
fn warnings_of_a_discarded_parse_are_not_repeated() {
    let full = std::fs::read_to_string(example("report.xml")).unwrap();
    // The first host listed twice early in the file, then 3 MB of comment: the body is
    // cut at half, well after the repeated host, and the reader hands the parser whole
    // 256 KiB chunks, so the parse behind the download logs the warning before the cut.
    let start = full.find("<HOST>").unwrap();
    let end = full.find("</HOST>").unwrap() + "</HOST>".len();
    let padding = format!("<!--{}-->", "x".repeat(3 << 20));
    let report = format!(
        "{}{}{padding}{}",
        &full[..end],
        &full[start..end],
        &full[end..]
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.xml");
    std::fs::write(&file, report).unwrap();
    type Configure = fn(&mut ServerOptions);
    let cases: [(&str, Configure); 2] = [
        ("fault-free", |_| {}),
        ("cut body", |o| o.cut_body_once = true),
    ];
    for (name, configure) in cases {
        let server = qualys(|o| {
            o.templates = vec![("424242".into(), TemplateSource::File(file.clone()))];
            configure(o);
        });
        let (_t, out) = to_csv(&server, "");
        out.assert_code(0);
        assert_eq!(
            out.output().matches("appears more than once").count(),
            1,
            "{name}:\n{}",
            out.output()
        );
    }
}

#[test]
fn keep_report_keeps_the_download() {
    let server = qualys(|_| {});
    let keep = tempfile::tempdir().unwrap();
    let (_t, out) = to_csv(
        &server,
        &format!("keep_report: {}\n", keep.path().display()),
    );
    out.assert_code(0).assert_output_contains("report kept as");
    let kept: Vec<PathBuf> = std::fs::read_dir(keep.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("424242-")
    );
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        std::fs::read(example("report.xml")).unwrap()
    );
}

#[test]
fn downloaded_report_reaches_the_fmc_as_the_file_does() {
    let Some(fixture) = shared_fixture("asset_data_report_7hosts.xml") else {
        return;
    };
    let server =
        qualys(|o| o.templates = vec![("424242".into(), TemplateSource::File(fixture.clone()))]);
    let mut direct = Fmc::start(|_| {});
    let test = Test::new().config(&yaml(&server, ""));
    direct.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", direct.addr().ip()),
        format!("-port={}", direct.addr().port()),
    ]);
    test.run()
        .assert_code(0)
        .assert_output_contains("7 hosts and 92 findings confirmed");
    let downloaded = map_findings(&direct.stop());

    let mut from_file = Fmc::start(|_| {});
    let test = Test::new().config("add_host: y\n");
    from_file.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", from_file.addr().ip()),
        format!("-port={}", from_file.addr().port()),
        format!("-report={}", fixture.display()),
    ]);
    test.run().assert_code(0);
    assert_eq!(downloaded, map_findings(&from_file.stop()));
}

#[test]
fn generated_report_with_faults_reaches_the_fmc_unchanged() {
    let spec = GenSpec {
        hosts: 300,
        seed: 7,
        ..GenSpec::default()
    };
    let reference = {
        let server = qualys(|o| {
            o.templates = vec![("424242".into(), TemplateSource::Generated(spec.clone()))]
        });
        let mut fmc = Fmc::start(|_| {});
        let test = Test::new().config(&yaml(&server, ""));
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        let test = test.args(&[
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
        ]);
        test.run().assert_code(0);
        map_findings(&fmc.stop())
    };
    assert_eq!(reference.len(), 300);
    let server = qualys(|o| {
        o.templates = vec![("424242".into(), TemplateSource::Generated(spec.clone()))];
        o.rate_limit_first = 1;
        o.cut_body_once = true;
    });
    let mut fmc = Fmc::start(|o| {
        o.close_after = Some(1);
        o.max_size = 65536;
    });
    let test = Test::new().config(&format!("{}fmc_retry_wait: 0.05\n", yaml(&server, "")));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
    ]);
    test.run().assert_code(0);
    assert_eq!(map_findings(&fmc.stop()), reference);
}

/// Debian's tinyproxy on loopback with Basic authentication.
struct Tinyproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Option<Tinyproxy> {
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIP: tinyproxy not installed (.ci/run installs it), proxy test skipped\n",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\nLogLevel Info\nLogFile \"{}\"\nBasicAuth proxyuser Pr0xyPass7\nAllow 127.0.0.1\n",
                dir.path().join("tinyproxy.log").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Tinyproxy {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn through_a_real_proxy() {
    let Some(proxy) = Tinyproxy::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = qualys(|o| o.tls_dir = Some(dir.path().to_path_buf()));
    let proxy_yaml = format!(
        "proxy: http://127.0.0.1:{}\nproxy_username: proxyuser\nproxy_password: 'Pr0xyPass7'\n",
        proxy.port
    );
    let (t, out) = to_csv(&server, &proxy_yaml);
    out.assert_code(0);
    assert_eq!(t.read("Output.csv"), reference_csv());
    assert!(!out.output().contains("Pr0xyPass7"));

    // A wrong proxy password is refused by the proxy, and the error names it.
    let wrong = proxy_yaml.replace("Pr0xyPass7", "wrong");
    let (t, out) = to_csv(&server, &wrong);
    out.assert_code(6)
        .assert_output_contains(&format!("the proxy http://127.0.0.1:{}", proxy.port))
        .assert_output_contains("Unauthorized")
        .assert_output_contains("check proxy_username and proxy_password");
    assert!(!t.exists("Output.csv"));
}

/// `-multiinfo` (the guide's process_multiple.pl): one template fails, the other is still
/// delivered; the exit code and both outcomes say so.
#[test]
fn two_templates_one_failing() {
    let server = qualys(|o| {
        o.templates = vec![("424242".into(), TemplateSource::File(example("report.xml")))];
    });
    let mut fmc = Fmc::start(|_| {});
    let test = Test::new().config(&yaml(&server, ""));
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let test = test.args(&[
        "-multiinfo".to_string(),
        "424242,535353".into(),
        format!("-server={}", fmc.addr().ip()),
        format!("-port={}", fmc.addr().port()),
        "-summary-json=summary.json".into(),
    ]);
    let out = test.run();
    out.assert_code(6)
        .assert_output_contains("template 424242: done: 4 hosts, 6 findings")
        .assert_output_contains("template 535353: failed (exit code 6)")
        .assert_output_contains("Tried to launch invalid report.")
        .assert_output_contains("2 templates: 1 succeeded, 1 failed");
    assert_eq!(fmc.stop().hosts.len(), 4, "the good template was delivered");
    let summary: serde_json::Value = serde_json::from_str(&test.read("summary.json")).unwrap();
    assert_eq!(summary["exit_code"], 6);
    assert_eq!(summary["templates"][0]["template_id"], "424242");
    assert_eq!(summary["templates"][0]["status"], "ok");
    assert_eq!(summary["templates"][0]["delivery"]["hosts_confirmed"], 4);
    assert_eq!(summary["templates"][1]["template_id"], "535353");
    assert_eq!(summary["templates"][1]["status"], "failed");
    assert_eq!(summary["templates"][1]["error"]["exit_code"], 6);
}

#[test]
fn multiinfo_csv_files_get_the_template_id_in_front() {
    let server = qualys(|o| {
        o.templates = vec![
            ("424242".into(), TemplateSource::File(example("report.xml"))),
            (
                "535353".into(),
                TemplateSource::Generated(GenSpec {
                    hosts: 20,
                    seed: 3,
                    ..GenSpec::default()
                }),
            ),
        ];
    });
    let test = Test::new()
        .config(&yaml(&server, ""))
        .file("out/.keep", "")
        .args(&["-multiinfo=424242,535353", "-csvfile=out/Output.csv"]);
    test.run().assert_code(0);
    assert_eq!(test.read("out/424242_Output.csv"), reference_csv());
    let other = test.read("out/535353_Output.csv");
    assert_eq!(
        other.lines().filter(|l| l.starts_with("AddHost,")).count(),
        20
    );
    assert!(!test.exists("out/Output.csv"));
}

/// `check` against a Qualys simulator: healthy, a wrong password, an unknown template.
#[test]
fn check_against_qualys() {
    let server = qualys(|_| {});
    let t = Test::new().config(&yaml(&server, "")).args(&["check"]);
    t.run()
        .assert_code(0)
        .assert_output_contains(&format!(
            "[ ok ] Qualys {}: logged in as {USER}",
            server.url()
        ))
        .assert_output_contains("[ ok ] template 424242: exists")
        .assert_output_contains("all checks passed");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path == "/msp/report_template_list.php"),
        "check only lists templates"
    );
    assert_eq!(server.reports_alive(), 0);

    let wrong = qualys(|o| o.password = "another".into());
    Test::new()
        .config(&yaml(&wrong, ""))
        .args(&["check"])
        .run()
        .assert_code(6)
        .assert_output_contains("[FAIL] Qualys")
        .assert_output_contains("2010")
        .assert_output_contains("fix: ");

    let unknown = qualys(|o| o.templates.clear());
    Test::new()
        .config(&yaml(&unknown, ""))
        .args(&["check"])
        .run()
        .assert_code(6)
        .assert_output_contains("[FAIL] template 424242: no report template with this ID")
        .assert_output_contains("fix: check template_id");
}

fn inject(status: u16, code: &str, text: &str, calls: u32) -> Option<InjectedError> {
    Some(InjectedError {
        status,
        code: code.into(),
        text: text.into(),
        calls,
    })
}

/// The codes no other fault produces: 2007 and 19xx fail with their hint, 1960 (the
/// concurrency limit, HTTP 409) is waited out and retried.
#[test]
fn more_qualys_codes() {
    let server = qualys(|o| {
        o.inject = inject(
            200,
            "2007",
            "Access denied: your IP is not in the secure IP list",
            100,
        )
    });
    let (t, out) = to_csv(&server, "");
    out.assert_code(6)
        .assert_output_contains("CODE 2007: Access denied")
        .assert_output_contains("secure IP list");
    assert!(!t.exists("Output.csv"));

    let server =
        qualys(|o| o.inject = inject(400, "1905", "parameter template_id has invalid value", 100));
    let (_t, out) = to_csv(&server, "");
    out.assert_code(6)
        .assert_output_contains("CODE 1905")
        .assert_output_contains("a request parameter was refused");

    let server = qualys(|o| o.inject = inject(409, "1960", "Concurrency limit exceeded", 2));
    let (t, out) = to_csv(&server, "");
    out.assert_code(0)
        .assert_output_contains("HTTP 409 CODE 1960");
    assert_eq!(t.read("Output.csv"), reference_csv());
}

/// Connect and TLS handshake together are bounded by the connect timeout, not per read.
#[test]
fn a_slow_tls_handshake_ends_at_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = qualys(|o| o.tls_dir = Some(dir.path().to_path_buf()));
    let relay = crate::relay::Relay::start(server.addr(), Duration::from_millis(500));
    let port = relay.addr().port();
    let relayed = server
        .url()
        .replace(&format!(":{}", server.addr().port()), &format!(":{port}"));
    let text = yaml(&server, "fmc_connect_timeout: 2\nqualys_retries: 0\n")
        .replace(&server.url(), &relayed);
    let t = Test::new().config(&text).args(&["-csvfile=Output.csv"]);
    let started = Instant::now();
    let out = t.run();
    assert_eq!(out.code, 6, "{}", out.output());
    assert!(
        out.output()
            .contains("TLS with 127.0.0.1 failed: not finished within 2"),
        "{}",
        out.output()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "finished within the timeout and a margin: {:?}",
        started.elapsed()
    );
    assert!(!t.exists("Output.csv"));
}

/// A `TMPDIR` on a file system that fills up (a 512 KiB tmpfs) while `tmp_min_free` lets
/// the download start: the write error names the file and says what to change; nothing
/// is left behind. Needs root for the mount (CI runs as root); skipped otherwise.
#[test]
fn a_full_tmpdir_is_named() {
    let server = qualys(|o| o.endless_body = true);
    let t = Test::new().config(&yaml(&server, "tmp_min_free: 0\nqualys_retries: 0\n"));
    let tmp = t.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("SKIP: a_full_tmpdir_is_named needs to mount a tmpfs (root)");
        return;
    }
    /// Unmounts however the test ends.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(tmp.clone());
    let t = t
        .env("TMPDIR", &tmp.display().to_string())
        .args(&["-csvfile=Output.csv"]);
    let out = t.run();
    assert_eq!(out.code, 6, "{}", out.output());
    let text = out.output();
    assert!(
        text.contains(&tmp.display().to_string()) && text.contains("TMPDIR"),
        "the full directory and TMPDIR are named:\n{text}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "TMPDIR empty afterwards: {left:?}");
    assert!(!t.exists("Output.csv"));
}
