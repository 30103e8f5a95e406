//! `qualys-connector demo`: the whole job against the built-in simulators, for a first
//! look. It starts a Qualys simulator (HTTPS, with a generated report of `-hosts N`
//! hosts, default 1,000) and an FMC simulator (mutual TLS) in this process on loopback,
//! enrolls a client certificate, writes a configuration with an incremental-sync state,
//! and runs the real pipeline twice: a full sync of the report, then a delta run of the
//! same report with every 20th host changed, which sends only those. After each run it
//! prints what the FMC now holds, checked against what the generator made. Everything
//! lives in a temporary directory that is removed at the end.
//!
//! Only in builds with the `demo` feature: the simulators are test tools and stay out of
//! production builds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use qualys_connector_sim::fmc::{
    self, EnrollOptions, NetworkMap, Server, ServerOptions as FmcOptions,
};
use qualys_connector_sim::qualys::{
    GenSpec, QualysServer, ServerOptions as QualysOptions, TemplateSource, generate,
};

use super::{Run, qualysguard};
use crate::cli::Args;
use crate::exit::Failure;
use crate::pipeline::Summary;

const TEMPLATE: &str = "424242";
const DEFAULT_HOSTS: u64 = 1000;
/// The second run's report: every 20th host changed (5%).
const CHANGE_EVERY: u64 = 20;

fn setup(what: &str, e: std::io::Error) -> Failure {
    Failure::Spill(format!("demo: {what}: {e}"))
}

pub fn run(args: &Args) -> Result<Vec<Run>, Failure> {
    let started = Instant::now();
    let hosts = args.hosts.unwrap_or(DEFAULT_HOSTS);
    qualys_connector_sim::set_quiet(true);
    let dir = tempfile::Builder::new()
        .prefix("qualys-connector-demo-")
        .tempdir()
        .map_err(|e| setup("temporary directory", e))?;

    // The FMC: a CA, a client certificate for this host, a server on a free port.
    let fmc_dir = dir.path().join("fmc");
    let pkcs12 = fmc::enroll(&fmc_dir, "127.0.0.1", &EnrollOptions::default())
        .map_err(|e| setup("client certificate", e))?;
    let fmc = Server::start(FmcOptions::new(&fmc_dir)).map_err(|e| setup("FMC simulator", e))?;
    let demo_args = Args {
        server: Some(fmc.addr().ip().to_string()),
        port: fmc.addr().port(),
        pkcs12: Some(pkcs12),
        plugininfo: dir.path().join("QualysGuard.yaml"),
        report: None,
        csvfile: None,
        multiinfo: None,
        delta_csv: None,
        full: false,
        ..args.clone()
    };

    let mut all = Vec::new();
    for (round, change_every) in [(1, 0), (2, CHANGE_EVERY)] {
        let spec = GenSpec {
            hosts,
            seed: 1,
            change_every,
            ..GenSpec::default()
        };
        let runs = run_once(dir.path(), &demo_args, &spec, &fmc, round);
        let runs = match runs {
            Ok(runs) => runs,
            Err(failure) => {
                fmc.stop();
                return Err(failure);
            }
        };
        let failed = runs.iter().any(|r| r.failure.is_some());
        all.extend(runs);
        if failed {
            break;
        }
    }
    fmc.stop();
    println!("Whole demo: {:.2?}.", started.elapsed());
    drop(dir);
    Ok(all)
}

/// One run of the connector against a Qualys simulator serving `spec`'s report; prints
/// the run's summary and checks the FMC's map against the report.
fn run_once(
    dir: &Path,
    args: &Args,
    spec: &GenSpec,
    fmc: &Server,
    round: u32,
) -> Result<Vec<Run>, Failure> {
    // Qualys: HTTPS with its own CA (created once in the directory and reused), one
    // template whose report is generated on the fly.
    let password = format!("demo-{}", std::process::id());
    let mut qualys_options = QualysOptions::new("demo", &password);
    qualys_options.tls_dir = Some(dir.join("qualys"));
    qualys_options.report_delay_ms = 300;
    qualys_options.templates = vec![(TEMPLATE.into(), TemplateSource::Generated(spec.clone()))];
    let qualys = QualysServer::start(qualys_options).map_err(|e| setup("Qualys simulator", e))?;
    let ca = qualys
        .ca_pem()
        .ok_or_else(|| Failure::Spill("demo: the Qualys simulator has no CA".into()))?;
    write_config(
        &args.plugininfo,
        &password,
        &qualys.url(),
        &ca,
        &dir.join("sync.db"),
    )?;
    println!();
    match round {
        1 => println!(
            "demo, run 1: Qualys simulator at {} (template {TEMPLATE}: {} generated hosts), FMC simulator at {}",
            qualys.url(),
            spec.hosts,
            fmc.addr()
        ),
        _ => println!(
            "demo, run 2: the same report with every {}th host changed; only those are sent",
            spec.change_every
        ),
    }
    let runs = qualysguard::run(args);
    qualys.stop();
    let runs = runs?;
    if let Some(summary) = runs.first().and_then(|r| r.summary.as_ref()) {
        let expected = generate(spec, &mut std::io::sink()).map_err(|e| setup("report", e))?;
        let map = fmc.map();
        print_summary(summary, &map, expected.hosts, expected.sendable)?;
    }
    Ok(runs)
}

/// The configuration: the simulator's credentials and CA, `add_host`, and the state.
fn write_config(
    path: &Path,
    password: &str,
    url: &str,
    ca: &Path,
    state: &Path,
) -> Result<(), Failure> {
    let yaml = format!(
        "user_id: demo\npassword: '{password}'\ntemplate_id: {TEMPLATE}\nurl: {url}\nca_bundle: {}\nadd_host: y\npoll_interval: 0.1\nsync_state: {}\n",
        ca.display(),
        state.display()
    );
    // Readable by the owner only: it holds a password.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| setup("configuration", e))?;
    file.write_all(yaml.as_bytes())
        .map_err(|e| setup("configuration", e))
}

/// What the run did and what the FMC now holds, checked against the report.
fn print_summary(
    summary: &Summary,
    map: &NetworkMap,
    hosts: u64,
    sendable: u64,
) -> Result<(), Failure> {
    // Generic results ("no open findings") are not findings.
    let held = map.vulnerability_count() as u64;
    let d = &summary.delivery;
    if let Some(s) = &summary.sync {
        println!(
            "The sync: a {} run ({}): {} hosts unchanged (not sent), {} new, {} changed.",
            s.kind.map_or("?", crate::sync::Kind::as_str),
            s.reason,
            s.unchanged,
            s.new,
            s.changed
        );
    }
    println!(
        "The connector had {} hosts and {} findings confirmed.",
        d.hosts, d.findings
    );
    let agree = map.hosts.len() as u64 == hosts && held == sendable;
    println!(
        "The FMC now holds {} hosts and {held} findings from QualysGuard; the report has {hosts} hosts and {sendable} findings to send: {}.",
        map.hosts.len(),
        if agree { "they match" } else { "THEY DIFFER" }
    );
    let mut by_qid: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for host in map.hosts.values() {
        for r in &host.results {
            let Some(qid) = r.vuln_id else { continue };
            let entry = by_qid.entry(qid).or_insert((0, r.name.clone()));
            entry.0 += 1;
        }
    }
    let mut top: Vec<(u64, usize, String)> = by_qid
        .into_iter()
        .map(|(q, (n, name))| (q, n, name))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("Most frequent QIDs:");
    for (qid, count, name) in top.iter().take(5) {
        println!("  {qid:>6}  {count:>6} findings  {name}");
    }
    println!(
        "Timings: download {:.2?}, parse {:.2?}, deliver {:.2?}.",
        summary.download_time.unwrap_or_default(),
        summary.parse_time,
        summary.send_time
    );
    if !agree {
        return Err(Failure::Delivery(
            "demo: the FMC simulator's map does not match the report".into(),
        ));
    }
    Ok(())
}
