//! How the FMC counts N in "Done processing N commands." is not public (host-input.md
//! §6). fmc-sim plays each plausible rule; the connector must learn it from its
//! calibration block, deliver everything under any of them, and still see a line the
//! server dropped, whichever rule it counts by. Each test here fails against a
//! connector that does not compare N.

use std::path::{Path, PathBuf};

use qualys_connector_sim::fmc::{CountRule, EnrollOptions, NetworkMap, ServerOptions, Stats};
use qualys_connector_sim::qualys::{GenSpec, generate};

use crate::fmc::{Findings, Fmc, map_findings, send};
use crate::harness::{Outcome, Test, example, shared_fixture};

/// Fast retries, so the reconnect tests finish quickly.
const FAST: &str = "fmc_retry_wait: 0.05\nfmc_connect_timeout: 5\n";

/// Runs `report` against an fmc-sim set up by `configure`.
fn deliver(
    report: &Path,
    yaml: &str,
    configure: impl FnOnce(&mut ServerOptions),
) -> (Outcome, NetworkMap, Stats) {
    let mut fmc = Fmc::start(configure);
    let test = Test::new().config(yaml);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, report, &[]);
    let stats = fmc.server.as_ref().unwrap().stats();
    (out, fmc.stop(), stats)
}

fn generated(dir: &tempfile::TempDir, hosts: u64) -> PathBuf {
    let path = dir.path().join(format!("generated-{hosts}.xml"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    generate(
        &GenSpec {
            hosts,
            seed: 12,
            ..GenSpec::default()
        },
        &mut file,
    )
    .unwrap();
    drop(file);
    path
}

/// The "N hosts and M findings confirmed" phrase of a run's summary.
fn confirmed(out: &Outcome) -> String {
    let text = out.output();
    let end = text.find(" findings confirmed").expect("a summary line");
    let start = text[..end].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == ' '));
    text[start.map_or(0, |s| s + 1)..end + " findings confirmed".len()]
        .trim()
        .to_string()
}

/// Every rule, with the default block size and with 4,000-byte blocks (hosts split over
/// blocks), delivers the 7-host fixture and a generated 1,000-host report whole: the
/// same map and the same confirmed counts as under `all`.
#[test]
fn every_rule_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = vec![(
        generated(&dir, 1000),
        "add_host: y\n".to_string(),
        1000usize,
    )];
    if let Some(seven) = shared_fixture("asset_data_report_7hosts.xml") {
        reports.push((seven, "add_host: y\n".to_string(), 7));
    }
    for (report, yaml, hosts) in &reports {
        let (out, map, _) = deliver(report, yaml, |_| {});
        out.assert_code(0);
        let reference: Findings = map_findings(&map);
        let summary = confirmed(&out);
        assert_eq!(reference.len(), *hosts);
        assert!(summary.starts_with(&format!("{hosts} hosts")), "{summary}");
        for rule in CountRule::ALL {
            for max_size in [4000, qualys_connector_sim::fmc::DEFAULT_MAX_SIZE] {
                let (out, map, _) = deliver(report, yaml, |o| {
                    o.count_rule = rule;
                    o.max_size = max_size;
                });
                out.assert_code(0)
                    .assert_output_contains(&format!("in its replies (rule {rule})"))
                    .assert_output_contains(&summary);
                assert_eq!(map_findings(&map), reference, "{rule} {max_size}");
            }
        }
    }
}

/// A line the server drops from a block of hosts is seen under every rule: that block
/// is unconfirmed (exit 5, its hosts listed, the reply quoted).
#[test]
fn a_dropped_line_in_a_block_of_hosts_is_seen_under_every_rule() {
    // Lines 1-3 are the calibration block; line 5 is the first host's first finding.
    for rule in CountRule::ALL {
        let (out, map, stats) = deliver(&example("report.xml"), "add_host: y\n", |o| {
            o.count_rule = rule;
            o.reject_line = Some(5);
        });
        out.assert_code(5)
            .assert_output_contains("the FMC did not accept block 1")
            .assert_output_contains("(reply: Done processing")
            .assert_output_contains("not confirmed by the FMC: 192.0.2.10");
        assert_eq!(stats.rejected_lines, 1, "{rule}");
        assert!(
            !map.hosts.is_empty(),
            "{rule}: the block was applied but for its line"
        );
    }
}

/// A line dropped from the calibration block itself (nothing of a host in it) may
/// teach a wrong rule, but never confirms a host wrongly: either the run fails, or
/// every host it confirms is in the map as sent.
#[test]
fn a_dropped_calibration_line_never_confirms_a_host_wrongly() {
    let reference = {
        let (out, map, _) = deliver(&example("report.xml"), "add_host: y\n", |_| {});
        out.assert_code(0);
        map_findings(&map)
    };
    for rule in CountRule::ALL {
        for line in 1..=3 {
            let (out, map, _) = deliver(&example("report.xml"), "add_host: y\n", |o| {
                o.count_rule = rule;
                o.reject_line = Some(line);
            });
            if out.code == 0 {
                assert_eq!(map_findings(&map), reference, "{rule} line {line}");
            } else {
                out.assert_code(5);
            }
        }
    }
}

/// A server that counts by another rule after a reconnect fails the run, naming both
/// rules; one that keeps its rule is fine.
#[test]
fn a_rule_that_changes_after_a_reconnect_fails_the_run() {
    for rule in CountRule::ALL {
        for after in CountRule::ALL {
            let (out, map, stats) = deliver(
                &example("report.xml"),
                &format!("add_host: y\n{FAST}"),
                |o| {
                    o.count_rule = rule;
                    o.count_rule_after = Some(after);
                    o.max_size = 700;
                    // The first session ends after its first block of hosts.
                    o.close_after = Some(2);
                },
            );
            assert_eq!(stats.sessions, 2, "{rule} → {after}: {stats:?}");
            if after == rule {
                out.assert_code(0);
                assert_eq!(map.hosts.len(), 4);
            } else {
                out.assert_code(5)
                    .assert_output_contains("after reconnecting")
                    .assert_output_contains(&format!("the count of rule {after}"))
                    .assert_output_contains(&format!("counted by rule {rule}"))
                    .assert_output_contains("not confirmed by the FMC");
            }
        }
    }
}

/// A warning line before the count, a trailing newline after it, or neither: all
/// confirm, under every rule, and the warning is logged.
#[test]
fn warning_lines_and_trailing_newlines_under_every_rule() {
    for rule in CountRule::ALL {
        let (out, map, _) = deliver(&example("report.xml"), "add_host: y\n", |o| {
            o.count_rule = rule;
            o.reply_prefix = Some("Warning: 1 host over its licence".into());
        });
        out.assert_code(0)
            .assert_output_contains("the FMC warns about block 1")
            .assert_output_contains("Warning: 1 host over its licence");
        assert_eq!(map.hosts.len(), 4);
        let (out, map, _) = deliver(&example("report.xml"), "add_host: y\n", |o| {
            o.count_rule = rule;
            o.reply_text = Some("Done processing {n} commands.\n".into());
        });
        out.assert_code(0);
        assert_eq!(map.hosts.len(), 4);
    }
}

/// One host (the calibration block alone separates the rules) and no host at all.
#[test]
fn one_host_and_no_host_under_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let one = generated(&dir, 1);
    let none = generated(&dir, 0);
    for rule in CountRule::ALL {
        let (out, map, _) = deliver(&one, "add_host: y\n", |o| o.count_rule = rule);
        out.assert_code(0)
            .assert_output_contains(&format!("(rule {rule})"));
        assert_eq!(map.hosts.len(), 1, "{rule}");
        let (out, map, stats) = deliver(&none, "add_host: y\n", |o| o.count_rule = rule);
        out.assert_code(0);
        assert!(map.hosts.is_empty());
        assert!(stats.blocks <= 1, "{rule}: {stats:?}");
    }
}
