//! The command line at the binary level: the guide's invocations, version, help, usage
//! errors and their exit codes.

use crate::harness::{Test, count_lines, example};

#[test]
fn no_arguments_print_the_version_first() {
    let empty: [&str; 0] = [];
    let out = Test::new().args(&empty).run();
    out.assert_code(0);
    let first = out.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("qualys-connector Ver. {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        out.stdout.contains("-csvfile"),
        "usage follows: {}",
        out.stdout
    );
}

#[test]
fn help_prints_the_option_table_and_exit_codes() {
    for flag in ["--help", "-help", "-he", "--HELP"] {
        let out = Test::new().args(&[flag]).run();
        out.assert_code(0);
        for option in qualys_connector::cli::OPTIONS {
            assert!(
                out.stdout.contains(option.name),
                "{flag}: lacks {}",
                option.name
            );
        }
        assert!(out.stdout.contains("Exit codes"), "{flag}");
    }
}

#[test]
fn usage_errors_exit_2_with_the_reason() {
    let cases: [(&[&str], &str); 7] = [
        (&["-bogus"], "unknown option -bogus"),
        (
            &["-p=1"],
            "option -p is ambiguous (port, plugininfo, pkcs12, password)",
        ),
        (
            &["-s"],
            "option -s is ambiguous (server, syslog, stderr, summary-json)",
        ),
        (&["-level=7"], "-level"),
        (&["-port=99999"], "-port"),
        (
            &["Nessus"],
            "unknown plugin \"Nessus\"; known plugins: QualysGuard",
        ),
        (&["-csvfile"], "option -csvfile requires a value"),
    ];
    for (args, want) in cases {
        let out = Test::new().args(args).run();
        out.assert_code(2).assert_output_contains(want);
        assert!(out.stdout.is_empty(), "{args:?}: errors go to stderr");
    }
}

/// The guide's documented invocations, with abbreviations, single and double dashes.
#[test]
fn guide_invocations_work() {
    let report = example("report.xml");
    let report = report.display();
    let cases: Vec<Vec<String>> = vec![
        vec![
            format!("-report={report}"),
            "-csvfile=Output.csv".into(),
            "-plugininfo=InputPlugins/QualysGuard.yaml".into(),
        ],
        vec![
            format!("-report={report}"),
            "-c=Output.csv".into(),
            "-pl=InputPlugins/QualysGuard.yaml".into(),
        ],
        vec![
            format!("--report={report}"),
            "--c".into(),
            "Output.csv".into(),
            "--le".into(),
            "3".into(),
            "QualysGuard".into(),
        ],
        vec![
            "qualysguard".into(),
            format!("-REPORT={report}"),
            "-C".into(),
            "Output.csv".into(),
        ],
        vec![
            format!("-report={report}"),
            "-c=Output.csv".into(),
            "-se=10.10.10.10".into(),
            "-po=8307".into(),
            "-i".into(),
            "-pk=CertFile.pkcs12".into(),
            "-pa=-x1".into(),
        ],
    ];
    for args in cases {
        let t = Test::new().config("add_host: y\n").args(&args);
        let out = t.run();
        out.assert_code(0);
        let csv = t.read("Output.csv");
        assert_eq!(count_lines(&csv, "AddScanResult,"), 6, "{args:?}");
        assert_eq!(count_lines(&csv, "AddHost,"), 4, "{args:?}");
    }
}

#[test]
fn csvfile_with_server_ignores_the_server_with_a_warning() {
    let t = Test::new().config("").args(&[
        format!("-report={}", example("report.xml").display()),
        "-server=10.10.10.10".into(),
        "-csvfile=Output.csv".into(),
    ]);
    t.run()
        .assert_code(0)
        .assert_output_contains("[WARNING] -server is ignored because -csvfile is given");
    assert!(t.exists("Output.csv"));
}

#[test]
fn nothing_to_do_is_a_usage_error() {
    Test::new()
        .config("")
        .args(&[format!("-report={}", example("report.xml").display())])
        .run()
        .assert_code(2)
        .assert_output_contains("nothing to do");
}

#[test]
fn download_without_report_needs_the_credentials() {
    // Without -report the report would be downloaded: user_id, password and
    // template_id are then required, and checked before anything else.
    Test::new()
        .config("add_host: y\n")
        .args(&["-csvfile=Output.csv"])
        .run()
        .assert_code(2)
        .assert_output_contains("user_id")
        .assert_output_contains("template_id");
}
