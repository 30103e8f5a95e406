//! The incremental sync (`sync_state`, src/sync): delta runs against fmc-sim's network
//! map, the state file's faults, the guard, the lock, `-delta-csv`, and equivalence with
//! full runs as a property over random sequences of reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use qualys_connector_sim::fmc::{EnrollOptions, NetworkMap, ServerOptions};

use crate::fmc::{Fmc, map_findings};
use crate::harness::{Outcome, Test};

/// One finding of the model: (QID, port).
pub type Finding = (u32, Option<u16>);

/// An estate: address → findings.
pub type Estate = BTreeMap<String, Vec<Finding>>;

/// A report of `estate` (every QID described in the glossary).
pub fn report(estate: &Estate) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<ASSET_DATA_REPORT>\n<HOST_LIST>\n",
    );
    let mut qids = std::collections::BTreeSet::new();
    for (ip, findings) in estate {
        let _ = write!(out, "<HOST><IP>{ip}</IP><VULN_INFO_LIST>");
        for (qid, port) in findings {
            qids.insert(*qid);
            let port = port
                .map(|p| format!("<PORT>{p}</PORT><PROTOCOL>tcp</PROTOCOL>"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<VULN_INFO><QID>{qid}</QID><TYPE>Vuln</TYPE>{port}<VULN_STATUS>Active</VULN_STATUS></VULN_INFO>"
            );
        }
        out.push_str("</VULN_INFO_LIST></HOST>\n");
    }
    out.push_str("</HOST_LIST>\n<GLOSSARY><VULN_DETAILS_LIST>\n");
    for qid in qids {
        let _ = writeln!(
            out,
            "<VULN_DETAILS id=\"qid_{qid}\"><QID>{qid}</QID><TITLE><![CDATA[Finding {qid}]]></TITLE><THREAT><![CDATA[About {qid}.]]></THREAT></VULN_DETAILS>"
        );
    }
    out.push_str("</VULN_DETAILS_LIST></GLOSSARY>\n</ASSET_DATA_REPORT>\n");
    out
}

/// A scratch directory with a client file of `fmc` and a configuration.
pub struct Site {
    pub test: Test,
    pub fmc_addr: std::net::SocketAddr,
}

pub const SYNC_CONFIG: &str =
    "add_host: y\nfmc_retry_wait: 0.05\nfmc_connect_timeout: 5\nsync_state: sync.db\n";

impl Site {
    pub fn new(fmc: &Fmc, yaml: &str) -> Site {
        let test = Test::new().config(yaml);
        fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
        Site {
            test,
            fmc_addr: fmc.addr(),
        }
    }

    /// The connector's command line for `estate`, with `extra` options.
    pub fn command(&self, estate: &Estate, extra: &[&str]) -> Command {
        std::fs::write(self.test.path("report.xml"), report(estate)).unwrap();
        let mut cmd = self.test.command();
        cmd.args([
            format!("-server={}", self.fmc_addr.ip()),
            format!("-port={}", self.fmc_addr.port()),
            "-report=report.xml".to_string(),
        ]);
        cmd.args(extra);
        cmd
    }

    pub fn run(&self, estate: &Estate, extra: &[&str]) -> Outcome {
        let out = self.command(estate, extra).output().unwrap();
        Outcome::from(out)
    }

    pub fn state(&self) -> PathBuf {
        self.test.path("sync.db")
    }
}

pub fn estate(hosts: &[(&str, &[Finding])]) -> Estate {
    hosts
        .iter()
        .map(|(ip, f)| (ip.to_string(), f.to_vec()))
        .collect()
}

/// `AddScanResult` lines fmc-sim applied so far (its statistics).
pub fn results_sent(fmc: &Fmc) -> u64 {
    fmc.server.as_ref().unwrap().stats().applied_results
}

fn base() -> Estate {
    estate(&[
        ("192.0.2.1", &[(1001, Some(443)), (1002, None)]),
        ("192.0.2.2", &[(1001, Some(80))]),
        ("192.0.2.3", &[(1003, None)]),
    ])
}

#[test]
fn a_delta_run_sends_only_what_changed() {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("full run for FMC")
        .assert_output_contains("there was no sync state yet")
        .assert_output_contains("0 hosts unchanged (not sent), 3 new, 0 changed; 3 sent");
    let after_full = results_sent(&fmc);

    // The same report: nothing is sent, not even a connection's worth of hosts.
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("delta run for FMC")
        .assert_output_contains("3 hosts unchanged (not sent), 0 new, 0 changed; 0 sent");
    assert_eq!(
        results_sent(&fmc),
        after_full,
        "an unchanged report sends nothing"
    );

    // One host changes, one is new; the order of the report changes too.
    let mut changed = base();
    changed.get_mut("192.0.2.2").unwrap().push((1004, Some(22)));
    changed.insert("192.0.2.4".into(), vec![(1001, Some(443))]);
    changed.get_mut("192.0.2.1").unwrap().reverse();
    site.run(&changed, &[])
        .assert_code(0)
        .assert_output_contains("2 hosts unchanged (not sent), 1 new, 1 changed; 2 sent");
    let map = fmc.stop();
    let got = map_findings(&map);
    assert_eq!(got["192.0.2.2"].len(), 2);
    assert_eq!(got["192.0.2.4"].len(), 1);
    assert_eq!(got["192.0.2.1"].len(), 2);
}

#[test]
fn csvfile_is_unaffected_and_leaves_no_state() {
    let fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    std::fs::write(site.test.path("report.xml"), report(&base())).unwrap();
    let out = site
        .test
        .command()
        .args(["-report=report.xml", "-csvfile=out.csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!site.state().exists(), "no state for -csvfile");
    let csv = site.test.read("out.csv");
    assert_eq!(crate::harness::count_lines(&csv, "AddScanResult,"), 4);
}

/// Hosts of a map with results other than the generic "no open findings" one; a host
/// cleared that way equals a host the FMC never had.
pub fn held(map: &NetworkMap) -> crate::fmc::Findings {
    let mut f = map_findings(map);
    f.retain(|_, results| results.iter().any(|r| r.0.is_some()));
    f
}

/// What `-csvfile` writes for `estate` under `yaml` (without the state): each host's
/// fingerprint, and the findings the FMC holds once it has them.
pub struct Expected {
    pub fingerprints: BTreeMap<String, [u8; 32]>,
    pub findings: crate::fmc::Findings,
}

pub fn expected(yaml: &str, estate: &Estate) -> Expected {
    let yaml: String = yaml
        .lines()
        .filter(|l| !l.starts_with("sync_state:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let test = Test::new()
        .config(&yaml)
        .file("report.xml", report(estate))
        .args(&["-report=report.xml", "-csvfile=out.csv"]);
    test.run().assert_code(0);
    let csv = test.read("out.csv");
    let mut fingerprints = BTreeMap::new();
    let mut block = String::new();
    for line in csv.lines().filter(|l| !l.starts_with("SetSource,")) {
        block.push_str(line);
        block.push('\n');
        if line == "ScanFlush" || line == "ScanUpdate" {
            let first = block.lines().next().unwrap_or_default();
            let ip = first.split(',').nth(1).unwrap_or_default().to_string();
            fingerprints.insert(
                ip,
                qualys_connector::sync::fingerprint::of_block(block.as_bytes()),
            );
            block.clear();
        }
    }
    Expected {
        fingerprints,
        findings: crate::fmc::csv_findings(&csv),
    }
}

/// The state never claims a fingerprint the map does not hold: every fingerprint in it
/// is that of `before` or `after` for the host, and the map then holds that report's
/// findings for it.
pub fn assert_state_true(site: &Site, map: &NetworkMap, before: &Expected, after: &Expected) {
    let Ok((Some(state), _)) = qualys_connector::sync::State::open_read_only(&site.state()) else {
        return;
    };
    let got = map_findings(map);
    for (_, ip, fp) in state.rows().unwrap() {
        let Some(fp) = fp else { continue };
        let held = got.get(&ip);
        let reports = [before, after];
        let claims = reports
            .iter()
            .find(|e| e.fingerprints.get(&ip).map(|f| &f[..]) == Some(&fp[..]));
        match claims {
            Some(e) => assert_eq!(
                held,
                e.findings.get(&ip),
                "the state claims {ip} holds what the map does not"
            ),
            None => panic!("the state holds a fingerprint of {ip} from neither report"),
        }
    }
}

/// A 60-host estate and a changed one: 10 hosts changed, 5 new, 5 gone.
fn big_pair() -> (Estate, Estate) {
    let mut before = Estate::new();
    for i in 0..60u32 {
        let findings = (0..(1 + i % 4)).map(|k| (2000 + k, Some(443))).collect();
        before.insert(format!("198.51.100.{}", i + 1), findings);
    }
    let mut after = before.clone();
    for i in 0..10u32 {
        after
            .get_mut(&format!("198.51.100.{}", i * 5 + 1))
            .unwrap()
            .push((3000 + i, None));
    }
    for i in 0..5u32 {
        after.remove(&format!("198.51.100.{}", 56 + i));
        after.insert(format!("198.51.100.{}", 100 + i), vec![(4000, Some(22))]);
    }
    (before, after)
}

/// Small blocks, so a run has many.
const BLOCKS: &str = "add_host: y\nfmc_retry_wait: 0.05\nfmc_connect_timeout: 5\nsync_state: sync.db\nfmc_retries: 0\n";

fn small_blocks(o: &mut ServerOptions) {
    o.max_size = 1500;
}

/// The map a fault-free full run of `before` then delta run of `after` gives.
fn reference(yaml: &str, before: &Estate, after: &Estate) -> crate::fmc::Findings {
    let mut fmc = Fmc::start(small_blocks);
    let site = Site::new(&fmc, yaml);
    site.run(before, &[]).assert_code(0);
    site.run(after, &[]).assert_code(0);
    held(&fmc.stop())
}

#[test]
fn faults_of_the_fmc_converge_on_the_rerun() {
    let (before, after) = big_pair();
    let want = reference(BLOCKS, &before, &after);
    let (exp_before, exp_after) = (expected(BLOCKS, &before), expected(BLOCKS, &after));
    // Blocks of a full run of `before` (calibration included), to aim at the delta run.
    let full_blocks = {
        let mut fmc = Fmc::start(small_blocks);
        Site::new(&fmc, BLOCKS).run(&before, &[]).assert_code(0);
        let n = fmc.server.as_ref().unwrap().stats().blocks;
        fmc.stop();
        n
    };
    assert!(full_blocks > 5, "{full_blocks} blocks");
    type Fault = Box<dyn Fn(&mut ServerOptions)>;
    let faults: Vec<(&str, Fault)> = vec![
        (
            "close after block 3 of the full run",
            Box::new(|o: &mut ServerOptions| o.close_after = Some(3)),
        ),
        (
            "reply of the full run's block 4 lost",
            Box::new(|o: &mut ServerOptions| o.drop_reply_on = Some(4)),
        ),
        (
            "reply of the delta run's second block lost",
            Box::new(move |o: &mut ServerOptions| o.drop_reply_on = Some(full_blocks + 2)),
        ),
    ];
    for (what, fault) in faults {
        let mut fmc = Fmc::start(|o| {
            small_blocks(o);
            fault(o);
        });
        let site = Site::new(&fmc, BLOCKS);
        let first = site.run(&before, &[]);
        let second = site.run(&after, &[]);
        assert!(
            first.code != 0 || second.code != 0,
            "{what}: the fault shows"
        );
        // Whatever failed: the state is true now, and the reruns converge.
        let map = fmc.server.as_ref().unwrap().map();
        assert_state_true(&site, &map, &exp_before, &exp_after);
        if first.code != 0 {
            site.run(&before, &[]).assert_code(0);
        }
        site.run(&after, &[]).assert_code(0);
        let map = fmc.stop();
        assert_eq!(held(&map), want, "{what}");
        assert_state_true(&site, &map, &exp_before, &exp_after);
    }
}

/// Seeded moments of a delta run, the connector SIGKILLed at each.
#[test]
fn a_delta_run_killed_at_any_moment_converges_on_the_rerun() {
    let (before, after) = big_pair();
    let slow = |o: &mut ServerOptions| {
        small_blocks(o);
        o.delay_ms = 25;
    };
    let want = reference(BLOCKS, &before, &after);
    let (exp_before, exp_after) = (expected(BLOCKS, &before), expected(BLOCKS, &after));
    // How long a delta run takes here: the moments are spread over it.
    let span = {
        let mut fmc = Fmc::start(slow);
        let site = Site::new(&fmc, BLOCKS);
        site.run(&before, &[]).assert_code(0);
        let started = std::time::Instant::now();
        site.run(&after, &[]).assert_code(0);
        let span = started.elapsed().as_millis() as u64;
        fmc.stop();
        span.max(20)
    };
    let points: u64 = std::env::var("SYNC_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut seed = 0x5eed_u64;
    let mut killed = 0;
    for point in 0..points {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = std::time::Duration::from_millis(seed % span);
        let mut fmc = Fmc::start(slow);
        let site = Site::new(&fmc, BLOCKS);
        site.run(&before, &[]).assert_code(0);
        let mut child = site
            .command(&after, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let map = fmc.server.as_ref().unwrap().map();
        assert_state_true(&site, &map, &exp_before, &exp_after);
        site.run(&after, &[]).assert_code(0);
        let map = fmc.stop();
        assert_eq!(held(&map), want, "killed at {at:?} (point {point})");
    }
    assert!(
        killed * 2 >= points,
        "most points fall inside the run ({killed} of {points})"
    );
}

#[test]
fn a_full_state_file_fails_the_run_and_the_rerun_converges() {
    let (before, mut after) = big_pair();
    // Enough new hosts that the state must grow.
    for i in 0..400u32 {
        after.insert(
            format!("203.0.113.{}", i % 250 + 1)
                .replace("203.0.113.", &format!("10.{}.0.", i / 250)),
            vec![(5000 + i % 7, Some(8443))],
        );
    }
    let want = reference(BLOCKS, &before, &after);
    let (exp_before, exp_after) = (expected(BLOCKS, &before), expected(BLOCKS, &after));
    let mut fmc = Fmc::start(small_blocks);
    let site = Site::new(&fmc, BLOCKS);
    site.run(&before, &[]).assert_code(0);
    let pages = std::fs::metadata(site.state()).unwrap().len() / 4096;
    // Room for the schema and a little more: the delta run's writes fill it.
    let out = {
        let mut cmd = site.command(&after, &[]);
        cmd.env(
            qualys_connector::sync::state::MAX_PAGES_ENV,
            (pages + 1).to_string(),
        );
        let o = cmd.output().unwrap();
        Outcome::from(o)
    };
    out.assert_code(9)
        .assert_output_contains("database or disk is full");
    let map = fmc.server.as_ref().unwrap().map();
    assert_state_true(&site, &map, &exp_before, &exp_after);
    site.run(&after, &[]).assert_code(0);
    let map = fmc.stop();
    assert_eq!(held(&map), want);
}

#[test]
fn an_unreadable_state_is_moved_aside_and_the_run_is_a_full_sync() {
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |p| {
            let len = std::fs::metadata(p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(len / 2 + 100).unwrap();
        }),
        ("zeros", |p| std::fs::write(p, vec![0u8; 8192]).unwrap()),
        ("plain text", |p| {
            std::fs::write(p, "host 192.0.2.1 is fine\nnothing to see\n").unwrap()
        }),
    ];
    for (what, damage) in damages {
        let mut fmc = Fmc::start(|_| {});
        let site = Site::new(&fmc, SYNC_CONFIG);
        // A state of some size, so that truncating it cuts pages off.
        let mut many = base();
        for i in 0..300 {
            many.insert(
                format!("10.1.{}.{}", i / 200, i % 200 + 1),
                vec![(1001, None)],
            );
        }
        site.run(&many, &[]).assert_code(0);
        damage(&site.state());
        let before = results_sent(&fmc);
        let out = site.run(&many, &[]);
        out.assert_code(0)
            .assert_output_contains("cannot be read")
            .assert_output_contains("moved to ")
            .assert_output_contains(".corrupt-")
            .assert_output_contains("full run for FMC");
        let text = out.output();
        assert!(
            text.contains(&site.state().display().to_string()) || text.contains("sync.db"),
            "{what}"
        );
        let moved: Vec<String> = site
            .test
            .files()
            .into_iter()
            .filter(|f| {
                f.starts_with("sync.db.corrupt-") && !f.ends_with("-wal") && !f.ends_with("-shm")
            })
            .collect();
        assert_eq!(moved.len(), 1, "{what}: {:?}", site.test.files());
        assert!(results_sent(&fmc) > before, "{what}: every host sent again");
        // And the new state works: the next run is a delta run that sends nothing.
        let sent = results_sent(&fmc);
        site.run(&many, &[])
            .assert_code(0)
            .assert_output_contains("delta run for FMC");
        assert_eq!(results_sent(&fmc), sent, "{what}");
        fmc.stop();
    }
}

fn sqlite3(db: &std::path::Path, sql: &str) -> Option<String> {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().ok()?;
    assert!(out.status.success(), "sqlite3 {sql}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn skip(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {what}: no sqlite3 command");
}

use std::io::Write as _;

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[]).assert_code(0);
    {
        let conn_ok = sqlite3(&site.state(), "PRAGMA user_version = 2;");
        if conn_ok.is_none() {
            skip("a_newer_schema_is_refused_and_left_alone");
            return;
        }
    }
    let bytes = std::fs::read(site.state()).unwrap();
    site.run(&base(), &[])
        .assert_code(9)
        .assert_output_contains(
            "was written by a newer version of qualys-connector (schema 2, this version knows 1)",
        );
    assert_eq!(std::fs::read(site.state()).unwrap(), bytes, "untouched");
    fmc.stop();
}

#[test]
fn a_state_others_can_write_is_refused_and_one_they_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[]).assert_code(0);
    let mode = std::fs::metadata(site.state())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "created private");
    let set =
        |m| std::fs::set_permissions(site.state(), std::fs::Permissions::from_mode(m)).unwrap();
    set(0o666);
    site.run(&base(), &[])
        .assert_code(9)
        .assert_output_contains("can be written by other users (mode 666)");
    set(0o644);
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("the sync state can be read by other users (mode 644)");
    set(0o600);
    let dir = site.test.path("");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = site.run(&base(), &[]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    out.assert_code(9)
        .assert_output_contains("can be written by other users (mode 777)");
    fmc.stop();
}

#[test]
fn a_second_run_on_the_same_state_exits_at_once_naming_the_first() {
    let mut fmc = Fmc::start(|o| o.delay_ms = 1500);
    let site = Site::new(&fmc, SYNC_CONFIG);
    let mut first = site
        .command(&base(), &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock (it has written its PID).
    let lock = site.test.path("sync.db.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let started = std::time::Instant::now();
    let second = site.run(&base(), &[]);
    second
        .assert_code(8)
        .assert_output_contains(&format!("is in use by another run (PID {})", first.id()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "at once"
    );
    assert!(first.wait().unwrap().success());
    // Neither run damaged the state: the next run is a delta run that sends nothing.
    let sent = results_sent(&fmc);
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("3 hosts unchanged");
    assert_eq!(results_sent(&fmc), sent);
    fmc.stop();
}

#[test]
fn a_killed_run_leaves_no_stale_lock() {
    let mut fmc = Fmc::start(|o| o.delay_ms = 2000);
    let site = Site::new(&fmc, SYNC_CONFIG);
    let mut first = site.command(&base(), &[]).spawn().unwrap();
    let lock = site.test.path("sync.db.lock");
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    fmc.stop();
    let mut fmc = Fmc::start(|_| {});
    let site = Site {
        fmc_addr: fmc.addr(),
        ..site
    };
    fmc.enroll_into(&site.test, "CertFile.pkcs12", &EnrollOptions::default());
    site.run(&base(), &[]).assert_code(0);
    fmc.stop();
}

/// A second simulator on the first one's address, with its CA and an empty map: the FMC
/// lost its data.
fn restart_empty(fmc: &mut Fmc) {
    let addr = fmc.addr();
    fmc.stop();
    let mut options = ServerOptions::new(fmc.dir.path());
    options.listen = addr;
    options.strict = true;
    fmc.server = Some(qualys_connector_sim::fmc::Server::start(options).unwrap());
}

#[test]
fn a_stale_state_is_healed_by_full_and_by_full_sync_days() {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[]).assert_code(0);
    let want = held(&fmc.server.as_ref().unwrap().map());
    assert_eq!(want.len(), 3);

    restart_empty(&mut fmc);
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("3 hosts unchanged");
    assert!(
        held(&fmc.server.as_ref().unwrap().map()).is_empty(),
        "stale: nothing sent"
    );
    site.run(&base(), &["-full"])
        .assert_code(0)
        .assert_output_contains("full run for FMC")
        .assert_output_contains("-full was given");
    assert_eq!(
        held(&fmc.server.as_ref().unwrap().map()),
        want,
        "healed by -full"
    );

    restart_empty(&mut fmc);
    // Eight days later (the run history aged with sqlite3): full_sync_days 7 is due.
    if sqlite3(
        &site.state(),
        "UPDATE run SET started = started - 8 * 86400;",
    )
    .is_none()
    {
        skip("a_stale_state_is_healed_by_full_and_by_full_sync_days (full_sync_days)");
        return;
    }
    site.run(&base(), &[])
        .assert_code(0)
        .assert_output_contains("the last complete full sync was 8 days ago (full_sync_days: 7)");
    assert_eq!(held(&fmc.stop()), want, "healed by full_sync_days");
}

#[test]
fn the_guard_refuses_to_clear_most_of_the_estate_unless_full() {
    let mut fmc = Fmc::start(|_| {});
    let yaml = format!("{SYNC_CONFIG}vanished_hosts: clear\n");
    let site = Site::new(&fmc, &yaml);
    let mut ten = Estate::new();
    for i in 1..=10 {
        ten.insert(format!("192.0.2.{i}"), vec![(1001, Some(443))]);
    }
    site.run(&ten, &[]).assert_code(0);
    // One host gone (10%): cleared.
    let mut nine = ten.clone();
    nine.remove("192.0.2.10");
    site.run(&nine, &[]).assert_code(0).assert_output_contains(
        "1 sent the generic \"no open findings\" result, 1 confirmed and forgotten",
    );
    assert!(!held(&fmc.server.as_ref().unwrap().map()).contains_key("192.0.2.10"));
    // An empty report would clear everything: refused, exit 10, nothing cleared.
    let empty = Estate::new();
    let out = site.run(&empty, &[]);
    out.assert_code(10)
        .assert_output_contains(
            "9 of the 9 hosts the FMC holds for this destination are no longer in the report",
        )
        .assert_output_contains("run with -full");
    assert_eq!(
        held(&fmc.server.as_ref().unwrap().map()).len(),
        9,
        "nothing cleared"
    );
    // The same again: still refused (the state still holds them).
    site.run(&empty, &[]).assert_code(10);
    // With -full it is done.
    site.run(&empty, &["-full"]).assert_code(0);
    assert!(held(&fmc.stop()).is_empty());
}

#[test]
fn delta_csv_writes_what_a_delta_run_would_send_and_changes_nothing() {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[]).assert_code(0);
    let connections = fmc.server.as_ref().unwrap().stats().connections;
    let state = std::fs::read(site.state()).unwrap();
    let mut changed = base();
    changed.get_mut("192.0.2.3").unwrap().push((1009, Some(25)));
    site.run(&changed, &["-delta-csv=delta.csv"])
        .assert_code(0)
        .assert_output_contains(
            "2 hosts unchanged (not sent), 0 new, 1 changed; 1 sent to the -delta-csv file",
        );
    let csv = site.test.read("delta.csv");
    assert_eq!(
        crate::harness::count_lines(&csv, "AddScanResult,192.0.2.3,"),
        2,
        "{csv}"
    );
    assert_eq!(
        crate::harness::count_lines(&csv, "AddScanResult,"),
        2,
        "{csv}"
    );
    assert_eq!(
        fmc.server.as_ref().unwrap().stats().connections,
        connections,
        "nothing sent"
    );
    assert_eq!(
        std::fs::read(site.state()).unwrap(),
        state,
        "the state is not changed"
    );
    // The real delta run sends the same.
    site.run(&changed, &[])
        .assert_code(0)
        .assert_output_contains("2 hosts unchanged (not sent), 0 new, 1 changed; 1 sent");
    fmc.stop();
}

#[test]
fn the_summary_json_and_check_report_the_sync() {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &[]).assert_code(0);
    site.run(&base(), &["-summary-json=run.json"])
        .assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&site.test.read("run.json")).unwrap();
    let sync = &json["templates"][0]["sync"];
    assert_eq!(sync["kind"], "delta", "{json}");
    assert_eq!(sync["hosts_unchanged"], 3);
    assert_eq!(sync["hosts_new"], 0);
    assert_eq!(sync["hosts_tracked"], 3);
    assert_eq!(sync["vanished_hosts"], "keep");
    let out = site
        .test
        .command()
        .args([
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
            "-report=report.xml".into(),
            "check".into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[ ok ] sync state sync.db: 1 destination(s); FMC 127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("3 hosts tracked (3 confirmed), last full sync "),
        "{text}"
    );
    assert!(text.contains("(success), last delta run "), "{text}");
    fmc.stop();
}

/// One step of a random history: edits to the previous estate, and the `ip_ranges` of
/// the run (0: none; 1: 192.0.2.0/29; 2: 192.0.2.4-192.0.2.12).
type Edit = (u8, u8, Vec<(u32, u8)>);
type Step = (Vec<Edit>, u8);

fn apply_step(prev: &Estate, edits: &[Edit]) -> Estate {
    let mut next = prev.clone();
    for (host, action, findings) in edits {
        let ip = format!("192.0.2.{}", host % 12 + 1);
        let findings: Vec<Finding> = findings
            .iter()
            .map(|(q, p)| {
                (
                    1001 + q % 6,
                    [None, Some(443), Some(22)][usize::from(p % 3)],
                )
            })
            .collect();
        match action % 4 {
            0 => {
                next.remove(&ip);
            }
            1 => {
                next.insert(ip, findings);
            }
            2 => next.entry(ip).or_default().extend(findings),
            _ => {
                if let Some(f) = next.get_mut(&ip) {
                    f.pop();
                }
            }
        }
    }
    // One finding per QID and port, as Qualys lists them.
    for f in next.values_mut() {
        f.sort();
        f.dedup();
    }
    next
}

fn ranges_yaml(base: &str, ranges: u8) -> String {
    match ranges % 3 {
        0 => base.to_string(),
        1 => format!("{base}ip_ranges: 192.0.2.0/29\n"),
        _ => format!("{base}ip_ranges: 192.0.2.4-192.0.2.12\n"),
    }
}

/// Runs each step of `history` on a new simulator and returns its map's hosts;
/// `only_last`: the last step alone.
fn replay(yaml: &str, history: &[(Estate, u8)], only_last: bool) -> crate::fmc::Findings {
    let mut fmc = Fmc::start(|_| {});
    let site = Site::new(&fmc, yaml);
    let steps = if only_last {
        &history[history.len() - 1..]
    } else {
        history
    };
    for (estate, ranges) in steps {
        std::fs::write(
            site.test.path("InputPlugins/QualysGuard.yaml"),
            ranges_yaml(yaml, *ranges),
        )
        .unwrap();
        site.run(estate, &[]).assert_code(0);
    }
    held(&fmc.stop())
}

/// Delta runs of each report in turn give the map of full runs: with `keep` the map of
/// full runs of each report in turn, with `clear` the map of one full run of the last.
#[test]
fn delta_runs_give_the_map_of_full_runs() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let cases = std::env::var("SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let edit = (
        0..12u8,
        0..4u8,
        proptest::collection::vec((0..6u32, 0..3u8), 0..4),
    );
    let step = (proptest::collection::vec(edit, 2..10), 0..3u8);
    let strategy = proptest::collection::vec(step, 2..5);
    // A fixed seed: CI runs the same cases every time; SYNC_PROPTEST_CASES runs more.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let full = "add_host: y\nfmc_retry_wait: 0.05\nfmc_connect_timeout: 5\n";
    let keep = format!("{full}sync_state: sync.db\n");
    let clear = format!("{keep}vanished_hosts: clear\nmax_vanished_percent: 100\n");
    runner
        .run(&strategy, |steps: Vec<Step>| {
            let mut history = Vec::new();
            let mut estate = Estate::new();
            for (edits, ranges) in &steps {
                estate = apply_step(&estate, edits);
                history.push((estate.clone(), *ranges));
            }
            let delta_keep = replay(&keep, &history, false);
            let full_each = replay(full, &history, false);
            prop_assert_eq!(&delta_keep, &full_each, "keep: {:?}", history);
            let delta_clear = replay(&clear, &history, false);
            let full_last = replay(full, &history, true);
            prop_assert_eq!(&delta_clear, &full_last, "clear: {:?}", history);
            Ok(())
        })
        .unwrap();
}

#[test]
fn sync_options_that_cannot_work_are_refused_before_anything_is_done() {
    let fmc = Fmc::start(|_| {});
    let plain = Site::new(&fmc, "add_host: y\n");
    plain
        .run(&base(), &["-delta-csv=d.csv"])
        .assert_code(2)
        .assert_output_contains("-delta-csv needs sync_state");
    let site = Site::new(&fmc, SYNC_CONFIG);
    site.run(&base(), &["-delta-csv=d.csv", "-csvfile=o.csv"])
        .assert_code(2)
        .assert_output_contains("-delta-csv and -csvfile do not go together");
    std::fs::write(site.test.path("report.xml"), report(&base())).unwrap();
    let out = site
        .test
        .command()
        .args(["-report=report.xml", "-delta-csv=d.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("-delta-csv needs -server"));
    assert!(
        !site.state().exists() && !site.test.exists("d.csv"),
        "nothing done"
    );
    assert_eq!(fmc.server.as_ref().unwrap().stats().connections, 0);
    plain
        .run(&base(), &["-full"])
        .assert_code(0)
        .assert_output_contains("-full has no effect without sync_state");
}

/// Each template has its own state (another template never reuses it); a client
/// re-enrolled on the same FMC keeps it, another FMC does not.
#[test]
fn destinations_are_the_fmc_its_ca_and_the_template() {
    use qualys_connector_sim::qualys::TemplateSource;
    let server = crate::download::qualys(|o| {
        o.templates = vec![
            (
                "424242".into(),
                TemplateSource::File(crate::harness::example("report.xml")),
            ),
            (
                "535353".into(),
                TemplateSource::File(crate::harness::example("report.xml")),
            ),
        ];
    });
    let mut fmc = Fmc::start(|_| {});
    let yaml = crate::download::yaml(&server, "sync_state: sync.db\n");
    let test = Test::new().config(&yaml);
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let args = |fmc: &Fmc| {
        vec![
            "-multiinfo=424242,535353".to_string(),
            format!("-server={}", fmc.addr().ip()),
            format!("-port={}", fmc.addr().port()),
        ]
    };
    let run = |fmc: &Fmc| {
        let out = test.command().args(args(fmc)).output().unwrap();
        Outcome::from(out)
    };
    let first = run(&fmc);
    first.assert_code(0);
    assert_eq!(
        first.output().matches("full run for FMC").count(),
        2,
        "{}",
        first.output()
    );
    assert!(first.output().contains("template 424242"));
    assert!(first.output().contains("template 535353"));
    // Both templates again: each finds its own state.
    let second = run(&fmc);
    second.assert_code(0);
    assert_eq!(
        second.output().matches("delta run for FMC").count(),
        2,
        "{}",
        second.output()
    );
    // A client re-enrolled on the same FMC (same CA): still delta.
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let third = run(&fmc);
    assert_eq!(
        third.output().matches("delta run for FMC").count(),
        2,
        "{}",
        third.output()
    );
    // Another FMC (its own CA), even on the same address, is a new destination.
    let addr = fmc.addr();
    fmc.stop();
    let other = Fmc::start(|o| o.listen = addr);
    other.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let fourth = run(&other);
    fourth.assert_code(0);
    assert_eq!(
        fourth
            .output()
            .matches("the state holds nothing for this destination yet")
            .count(),
        2,
        "{}",
        fourth.output()
    );
}
