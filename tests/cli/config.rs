//! The YAML configuration at the binary level: errors name file, line, column and key and
//! exit 2 before any work; unknown keys warn; secrets may come from the environment.

use crate::harness::{Test, example};

fn with_config(yaml: &str) -> Test {
    Test::new().config(yaml).args(&[
        format!("-report={}", example("report.xml").display()),
        "-csvfile=Output.csv".into(),
    ])
}

#[test]
fn the_guides_sample_file_loads() {
    let sample = "# Required Parameters
user_id: dirk_g
password: 'd0ntp@nlc'
template_id: 424242
# Optional Parameters
add_host: y
ip_ranges: 192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1
proxy: https://192.168.1.100:443
proxy_username: zaphod
proxy_password: 't0w3L'
";
    let t = with_config(sample);
    let out = t.run();
    out.assert_code(0);
    // The example report has no host in those ranges.
    assert_eq!(t.read("Output.csv"), "SetSource,QualysGuard\n");
}

#[test]
fn config_errors_exit_2_naming_file_line_column_and_key() {
    let cases: [(&str, &str); 10] = [
        (
            "add_host: maybe\n",
            "InputPlugins/QualysGuard.yaml:1:11: add_host:",
        ),
        (
            "add_host: y\nip_ranges: 10.1.2.300\n",
            "QualysGuard.yaml:2:12: ip_ranges: bad entry '10.1.2.300': not an IP address",
        ),
        (
            "add_host: y\nadd_host: n\n",
            "QualysGuard.yaml:2:1: add_host:",
        ),
        (
            "proxy: http://proxy.example:70000\n",
            "QualysGuard.yaml:1:29: proxy: port 70000 is out of range (0-65535)",
        ),
        (
            "scan_mode: sometimes\n",
            "QualysGuard.yaml:1:12: scan_mode:",
        ),
        ("include_types: Vuln, Fixed\n", "QualysGuard.yaml:1:"),
        (
            "description_length: -5\n",
            "QualysGuard.yaml:1:21: description_length:",
        ),
        ("user_id: [a, b]\n", "QualysGuard.yaml:1:10: user_id:"),
        (
            "add_host: y\n\tip_ranges: 10.0.0.1\n",
            "QualysGuard.yaml:2:",
        ),
        ("- just\n- a list\n", "QualysGuard.yaml:1:1:"),
    ];
    for (yaml, want) in cases {
        let t = with_config(yaml);
        t.run().assert_code(2).assert_output_contains(want);
        assert!(!t.exists("Output.csv"), "{yaml:?}: nothing written");
    }
}

#[test]
fn duplicate_keys_name_both_lines() {
    with_config("template_id: 1\nadd_host: y\ntemplate_id: 2\n")
        .run()
        .assert_code(2)
        .assert_output_contains("line 1");
}

#[test]
fn missing_config_file_hints_at_plugininfo() {
    Test::new()
        .args(&[
            format!("-report={}", example("report.xml").display()),
            "-c=Output.csv".into(),
        ])
        .run()
        .assert_code(2)
        .assert_output_contains("InputPlugins/QualysGuard.yaml")
        .assert_output_contains("-plugininfo");
}

#[test]
fn a_directory_is_not_a_config_file() {
    Test::new()
        .file("conf/placeholder", "")
        .args(&[
            format!("-report={}", example("report.xml").display()),
            "-c=Output.csv".into(),
            "-pl=conf".into(),
        ])
        .run()
        .assert_code(2)
        .assert_output_contains("conf: is a directory");
}

#[test]
fn unknown_keys_warn_with_a_suggestion() {
    with_config("templte_id: 424242\nadd_host: y\n")
        .run()
        .assert_code(0)
        .assert_output_contains("[WARNING]")
        .assert_output_contains("templte_id")
        .assert_output_contains("template_id");
}

#[test]
fn credentials_are_checked_before_anything_else() {
    // No -report: the download needs the Qualys credentials; the environment can give
    // the password, then only the other two keys are missing.
    let out = Test::new()
        .config("add_host: y\n")
        .env("QUALYS_PASSWORD", "S3cr3t-Env")
        .args(&["-c=Output.csv"])
        .run();
    out.assert_code(2)
        .assert_output_contains("user_id")
        .assert_output_contains("template_id");
    assert!(!out.output().contains("S3cr3t-Env"));
}

#[test]
fn password_from_the_environment_is_logged_by_name_only() {
    let out = with_config("password: 'FileP@ss'\n")
        .env("QUALYS_PASSWORD", "EnvP@ss,w0rd")
        .args(&["-le=3"])
        .run();
    out.assert_code(0).assert_output_contains(
        "Qualys password taken from the environment variable QUALYS_PASSWORD",
    );
    assert!(!out.output().contains("EnvP@ss"));
    assert!(!out.output().contains("FileP@ss"));
}

#[test]
fn a_world_readable_config_with_a_secret_warns() {
    use std::os::unix::fs::PermissionsExt;
    let t = with_config("password: 'FileP@ss'\n");
    std::fs::set_permissions(
        t.path("InputPlugins/QualysGuard.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    t.run().assert_code(0).assert_output_contains("chmod 600");
}
