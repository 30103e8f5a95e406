//! `qualys-connector demo`: the whole job against the built-in simulators, for a first
//! look. It starts a Qualys simulator (HTTPS, with a generated report of `-hosts N`
//! hosts, default 1,000) and an FMC simulator (mutual TLS) in this process on loopback,
//! enrolls a client certificate, writes a configuration, and runs the real pipeline:
//! download, parse, filter, deliver. Then it prints what the FMC now holds. Everything
//! lives in a temporary directory that is removed at the end.
//!
//! Only in builds with the `demo` feature: the simulators are test tools and stay out of
//! production builds.

use std::collections::BTreeMap;
use std::time::Instant;

use qualys_connector_sim::fmc::{self, EnrollOptions, Server, ServerOptions as FmcOptions};
use qualys_connector_sim::qualys::{
    GenSpec, QualysServer, ServerOptions as QualysOptions, TemplateSource,
};

use super::{Run, qualysguard};
use crate::cli::Args;
use crate::exit::Failure;

const TEMPLATE: &str = "424242";
const DEFAULT_HOSTS: u64 = 1000;

pub fn run(args: &Args) -> Result<Vec<Run>, Failure> {
    let started = Instant::now();
    let hosts = args.hosts.unwrap_or(DEFAULT_HOSTS);
    qualys_connector_sim::set_quiet(true);
    let setup = |what: &str, e: std::io::Error| Failure::Spill(format!("demo: {what}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("qualys-connector-demo-")
        .tempdir()
        .map_err(|e| setup("temporary directory", e))?;

    // The FMC: a CA, a client certificate for this host, a server on a free port.
    let fmc_dir = dir.path().join("fmc");
    let pkcs12 = fmc::enroll(&fmc_dir, "127.0.0.1", &EnrollOptions::default())
        .map_err(|e| setup("client certificate", e))?;
    let fmc = Server::start(FmcOptions::new(&fmc_dir)).map_err(|e| setup("FMC simulator", e))?;

    // Qualys: HTTPS with its own CA, one template whose report is generated on the fly.
    let password = format!("demo-{}", std::process::id());
    let mut qualys_options = QualysOptions::new("demo", &password);
    qualys_options.tls_dir = Some(dir.path().join("qualys"));
    qualys_options.report_delay_ms = 300;
    qualys_options.templates = vec![(
        TEMPLATE.into(),
        TemplateSource::Generated(GenSpec {
            hosts,
            seed: 1,
            ..GenSpec::default()
        }),
    )];
    let qualys = QualysServer::start(qualys_options).map_err(|e| setup("Qualys simulator", e))?;

    let config = dir.path().join("QualysGuard.yaml");
    let ca = qualys
        .ca_pem()
        .ok_or_else(|| Failure::Spill("demo: the Qualys simulator has no CA".into()))?;
    let yaml = format!(
        "user_id: demo\npassword: '{password}'\ntemplate_id: {TEMPLATE}\nurl: {}\nca_bundle: {}\nadd_host: y\npoll_interval: 0.1\n",
        qualys.url(),
        ca.display()
    );
    // Readable by the owner only: it holds a password.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .map_err(|e| setup("configuration", e))?;
        file.write_all(yaml.as_bytes())
            .map_err(|e| setup("configuration", e))?;
    }

    println!(
        "demo: Qualys simulator at {} (template {TEMPLATE}: {hosts} generated hosts), FMC simulator at {}",
        qualys.url(),
        fmc.addr()
    );
    let demo_args = Args {
        server: Some(fmc.addr().ip().to_string()),
        port: fmc.addr().port(),
        pkcs12: Some(pkcs12),
        plugininfo: config,
        report: None,
        csvfile: None,
        multiinfo: None,
        ..args.clone()
    };
    let runs = qualysguard::run(&demo_args);
    let map = fmc.stop();
    qualys.stop();

    let runs = runs?;
    if let Some(summary) = runs.first().and_then(|r| r.summary.as_ref()) {
        // Generic results ("no open findings") are not findings.
        let held = map.vulnerability_count();
        println!();
        println!(
            "The FMC now holds {} hosts and {held} findings from QualysGuard.",
            map.hosts.len()
        );
        let d = &summary.delivery;
        let agree = d.hosts == map.hosts.len() as u64 && d.findings == held as u64;
        println!(
            "The connector had {} hosts and {} findings confirmed: {}.",
            d.hosts,
            d.findings,
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
            "Timings: download {:.2?}, parse {:.2?}, deliver {:.2?}; whole demo {:.2?}.",
            summary.download_time.unwrap_or_default(),
            summary.parse_time,
            summary.send_time,
            started.elapsed()
        );
        if !agree {
            return Err(Failure::Delivery(
                "demo: the FMC simulator's map does not match the delivery summary".into(),
            ));
        }
    }
    drop(dir);
    Ok(runs)
}
