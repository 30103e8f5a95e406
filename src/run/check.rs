//! `qualys-connector check`: verifies a new installation without sending any data. It
//! reads the options and the configuration like a real run, then checks each piece in
//! turn (configuration, client certificate, Qualys login and template, FMC connection
//! and handshake) and prints `ok` or what failed with how to fix it. This replaces the
//! guide's `telnet FMC 8307` advice with a real TLS and Host Input handshake.
//!
//! A preflight reports everything it can in one go: every configuration error, then the
//! certificate and both connections with the values that were valid. A step that needs a
//! key in error says it was not checked. Each network check is tried once: no
//! reconnection, no retry, no waiting for a rate limit.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::download;
use super::fmc::{self, FmcSettings};
use super::qualysguard;
use crate::cli::Args;
use crate::config::Config;
use crate::exit::{Code, Failure};
use crate::hostinput::pkcs12;
use crate::logging;
use crate::pipeline::Summary;
use crate::qualys::client::Limits;
use crate::servertext;

/// One line of the check's report.
struct Step {
    name: String,
    outcome: Result<String, (String, Option<String>, Code)>,
}

/// A step that cannot run: reported, but not a failure of its own.
fn skipped(name: &str, why: String) -> Step {
    ok(name.to_string(), format!("not checked: {why}"))
}

/// Runs every check and prints the report; fails with the first failing step's code.
pub fn run(args: &Args) -> Result<Summary, Failure> {
    let mut steps: Vec<Step> = Vec::new();
    let partial = qualysguard::load_config_partial(args);
    let name = format!("configuration {}", args.plugininfo.display());
    if partial.errors.is_empty() {
        steps.push(ok(name.clone(), "valid".into()));
    }
    for error in partial.errors {
        steps.push(fail(name.clone(), &Failure::Config(error)));
    }
    check_fmc(args, &partial.config, &mut steps);
    check_qualys(args, &partial.config, &partial.failed, &mut steps);
    check_sync(&partial.config, &mut steps);

    let mut first_failure = None;
    for step in &steps {
        match &step.outcome {
            // stdout bypasses the logger's redaction: what a server echoed is redacted here.
            Ok(detail) => println!("[ ok ] {}: {}", step.name, servertext::redact(detail)),
            Err((problem, fix, code)) => {
                println!("[FAIL] {}: {}", step.name, servertext::redact(problem));
                if let Some(fix) = fix {
                    println!("       fix: {}", servertext::redact(fix));
                }
                first_failure.get_or_insert(*code);
            }
        }
    }
    match first_failure {
        None => {
            println!("all checks passed");
            Ok(Summary::default())
        }
        Some(code) => Err(Failure::Check {
            failed: steps.iter().filter(|s| s.outcome.is_err()).count(),
            code,
        }),
    }
}

/// The sync state, read only: its destinations, hosts and last runs.
fn check_sync(config: &Config, steps: &mut Vec<Step>) {
    let Some(path) = &config.sync_state else {
        return;
    };
    let name = format!("sync state {}", path.display());
    let (state, warnings) = match crate::sync::State::open_read_only(path) {
        Ok(found) => found,
        Err(e) => {
            steps.push(fail(name, &Failure::State(e)));
            return;
        }
    };
    for w in &warnings {
        log::warn!("{w}");
    }
    let Some(state) = state else {
        let detail = if path.exists() {
            "cannot be read: the next run moves it aside and is a full sync"
        } else {
            "not created yet: the first run creates it and is a full sync"
        };
        steps.push(ok(name, detail.into()));
        return;
    };
    let destinations = match state.describe() {
        Ok(d) => d,
        Err(e) => {
            steps.push(fail(name, &Failure::State(e)));
            return;
        }
    };
    let run = |r: &Option<crate::sync::state::RunRecord>| match r {
        None => "never".to_string(),
        Some(r) => format!(
            "{} ({})",
            logging::utc_timestamp(crate::sync::state::from_unix(r.started)),
            r.outcome.as_deref().unwrap_or("did not finish")
        ),
    };
    let mut detail = format!("{} destination(s)", destinations.len());
    for d in &destinations {
        detail.push_str(&format!(
            "; {}: {} hosts tracked ({} confirmed), last full sync {}, last delta run {}",
            d.destination,
            d.hosts,
            d.confirmed,
            run(&d.last_full),
            run(&d.last_delta)
        ));
    }
    steps.push(ok(name, detail));
}

fn ok(name: String, detail: String) -> Step {
    Step {
        name,
        outcome: Ok(detail),
    }
}

fn fail(name: String, failure: &Failure) -> Step {
    Step {
        name,
        outcome: Err((failure.to_string(), failure.hint(), failure.code())),
    }
}

fn problem(name: &str, text: String, fix: &str, code: Code) -> Step {
    Step {
        name: name.to_string(),
        outcome: Err((text, Some(fix.to_string()), code)),
    }
}

fn check_fmc(args: &Args, config: &Config, steps: &mut Vec<Step>) {
    let Some(server) = args.server.as_deref().filter(|s| !s.is_empty()) else {
        steps.push(ok("FMC".into(), "not checked (no -server given)".into()));
        return;
    };
    let target = match fmc::target(args, server, &FmcSettings::from(config)) {
        Ok(target) => target,
        Err(failure) => {
            steps.push(fail("client certificate".into(), &failure));
            return;
        }
    };
    let info = &target.info;
    let days_left = info
        .not_after
        .duration_since(SystemTime::now())
        .map_or(0, |d| d.as_secs() / 86_400);
    let detail = format!(
        "{} (subject {}, issuer {}, expires {}, {} days left)",
        target.pkcs12.display(),
        info.subject,
        info.issuer,
        logging::utc_timestamp(info.not_after),
        days_left
    );
    let lapses = target.lapses(SystemTime::now());
    for lapse in lapses.iter().filter(|l| l.role() == pkcs12::Role::Ca) {
        log::warn!(
            "{}: {lapse}: {}",
            target.pkcs12.display(),
            fmc::lapse_hint(lapse)
        );
    }
    if let Some(lapse) = lapses.iter().find(|l| l.role() == pkcs12::Role::Client) {
        steps.push(problem(
            "client certificate",
            format!("{detail}: {lapse}"),
            "create a new client on the FMC's Host Input Client page and download its .pkcs12 file",
            Code::Usage,
        ));
    } else {
        steps.push(ok("client certificate".into(), detail));
        if days_left <= 30 {
            log::warn!(
                "the client certificate {} expires in {days_left} days: renew it on the FMC's Host Input Client page",
                target.pkcs12.display()
            );
        }
    }
    // The FMC knows this host by the certificate's CN: it should be the address this
    // host connects from.
    if let Some(cn) = &info.subject_cn {
        match local_address_towards(server, args.port, args.ipv6) {
            Some(local) if cn.parse::<IpAddr>().ok() == Some(local) => {}
            Some(local) => log::warn!(
                "the client certificate is for {cn}, but this host reaches {server} from {local}: the FMC may refuse it (register this host's address on the Host Input Client page)"
            ),
            None => {}
        }
    }
    match target.probe() {
        Ok((addr, max)) => steps.push(ok(
            format!("FMC {server}"),
            format!("connected to {addr}, TLS and Host Input handshake done (maximum block {max} bytes)"),
        )),
        Err(e) => steps.push(problem(
            &format!("FMC {server}"),
            e.to_string(),
            "check that the FMC is reachable on port 8307 (or -port), that this host is registered on its Host Input Client page, and that -pkcs12 is the file it generated",
            Code::Delivery,
        )),
    }
}

/// The keys the Qualys step needs.
const QUALYS_KEYS: [&str; 8] = [
    "url",
    "user_id",
    "password",
    "template_id",
    "proxy",
    "proxy_username",
    "proxy_password",
    "ca_bundle",
];

/// The Qualys step is not run when a key it needs is in error or missing.
fn unusable_qualys_keys(failed: &[&str]) -> Option<Step> {
    let unusable: Vec<&str> = QUALYS_KEYS
        .into_iter()
        .filter(|k| failed.contains(k))
        .collect();
    if unusable.is_empty() {
        return None;
    }
    let (noun, verb) = if unusable.len() == 1 {
        ("key", "is")
    } else {
        ("keys", "are")
    };
    Some(skipped(
        "Qualys",
        format!(
            "the configuration's {noun} {} {verb} invalid or missing",
            unusable.join(", ")
        ),
    ))
}

fn check_qualys(args: &Args, config: &Config, failed: &[&str], steps: &mut Vec<Step>) {
    if args.report.is_some() {
        steps.push(ok(
            "Qualys".into(),
            "not checked (-report reads the report from a file)".into(),
        ));
        return;
    }
    if let Some(step) = unusable_qualys_keys(failed) {
        steps.push(step);
        return;
    }
    // One try: a preflight reports the failure instead of waiting out retries.
    let config = Config {
        qualys_retries: 0,
        ..config.clone()
    };
    let qualys = match download::qualys_client(&config, Arc::new(Limits::default())) {
        Ok(q) => q,
        Err(failure) => {
            steps.push(fail("Qualys".into(), &failure));
            return;
        }
    };
    let name = format!("Qualys {}", config.url);
    if config.qualys_source == crate::config::QualysSource::Detections {
        steps.push(match super::detections::probe(&qualys, &config) {
            Ok(detail) => ok(name, detail),
            Err(failure) => fail(name, &failure),
        });
        return;
    }
    let templates: Vec<String> = match &args.multiinfo {
        Some(ids) => ids.clone(),
        None => config.template_id.iter().cloned().collect(),
    };
    for (i, template) in templates.iter().enumerate() {
        match qualys.find_template(template) {
            Ok(Some(title)) => {
                if i == 0 {
                    steps.push(ok(
                        name.clone(),
                        format!(
                            "logged in as {}",
                            config.user_id.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                steps.push(ok(
                    format!("template {template}"),
                    format!("exists ({title:?})"),
                ));
            }
            Ok(None) => {
                if i == 0 {
                    steps.push(ok(
                        name.clone(),
                        format!(
                            "logged in as {}",
                            config.user_id.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                steps.push(problem(
                    &format!("template {template}"),
                    "no report template with this ID in the account".into(),
                    "check template_id: log into Qualys, open Report Templates and read the ID from the template's Info link",
                    Code::Download,
                ));
            }
            Err(e) => {
                steps.push(Step {
                    name: name.clone(),
                    outcome: Err((e.to_string(), e.hint(), Code::Download)),
                });
                return;
            }
        }
    }
}

/// The local address this host uses to reach `server` (a connected UDP socket sends
/// nothing but learns the route).
fn local_address_towards(server: &str, port: u16, ipv6: bool) -> Option<IpAddr> {
    let target: SocketAddr = (server, port)
        .to_socket_addrs()
        .ok()?
        .find(|a| a.is_ipv6() == ipv6)?;
    let bind = if ipv6 { "[::]:0" } else { "0.0.0.0:0" };
    let socket = UdpSocket::bind(bind).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}
