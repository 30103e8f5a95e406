//! `qualys-sim`: command-line front end of the Qualys simulator. `generate` writes a
//! deterministic synthetic `ASSET_DATA_REPORT` (see `qualys_connector_sim::qualys`) and
//! prints what it wrote as one JSON line; `serve` runs the simulated Qualys API
//! (qualys.md §1–§4) for scripts: it prints `listening on <addr>` first (and `ca <path>`
//! with `--tls`), logs requests on stderr (never the password) and writes the recorded
//! requests as JSON lines when it stops. Exit codes: 0 done, 1 I/O error, 2 bad usage.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qualys_connector_sim::qualys::{
    GenSpec, GenSummary, QualysServer, RecordedRequest, ServerOptions, TemplateSource, generate,
};

const USAGE: &str = "\
usage: qualys-sim <subcommand> [options]

subcommands:
  generate   write a synthetic Qualys ASSET_DATA_REPORT and print a JSON summary
  serve      run a simulated Qualys API (HTTP or HTTPS) on a loopback address
  help       print this message

Run `qualys-sim <subcommand> --help` for the options of a subcommand.
";

const GENERATE_USAGE: &str = "\
usage: qualys-sim generate --hosts N --seed S [--findings-per-host M] [--qids Q]
                           [--ipv6-every K] [--change-every N] [--glossary-first] --out FILE

Writes a deterministic synthetic ASSET_DATA_REPORT (the same options give the same
bytes) and prints the summary as one JSON line on stdout, or on stderr when the report
itself goes to stdout.

  --hosts N              number of hosts (required)
  --seed S               random seed (required)
  --findings-per-host M  average findings per host (default 20)
  --qids Q               QID pool and glossary size, at least 1 (default 20000)
  --ipv6-every K         every Kth host is IPv6; 0 = none (default 50)
  --change-every N       every Nth host has its first Vuln/Practice finding's status
                         flipped (Fixed <-> open); 0 = none (default); for sync benchmarks
  --glossary-first       put GLOSSARY before HOST_LIST (real reports put it after)
  --out FILE             where to write the report; `-` for stdout (required)

Options also take the form --name=value.
";

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => return usage_error(&format!("argument is not UTF-8: {bad:?}"), USAGE),
        }
    }
    match args.first().map(String::as_str) {
        None => usage_error("missing subcommand", USAGE),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("generate") => generate_command(&args[1..]),
        Some("serve") => serve_command(&args[1..]),
        Some(other) => usage_error(&format!("unknown subcommand `{other}`"), USAGE),
    }
}

/// Prints `qualys-sim: message` and the usage on stderr; exit status 2.
fn usage_error(message: &str, usage: &str) -> ExitCode {
    eprintln!("qualys-sim: {message}\n\n{usage}");
    ExitCode::from(2)
}

struct GenerateArgs {
    spec: GenSpec,
    out: String,
}

/// `Ok(None)` when help was asked for.
fn parse_generate(args: &[String]) -> Result<Option<GenerateArgs>, String> {
    let mut spec = GenSpec::default();
    let (mut hosts, mut seed, mut out) = (None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = split_option(arg);
        if name == "--glossary-first" {
            if inline.is_some() {
                return Err("--glossary-first takes no value".into());
            }
            spec.glossary_first = true;
            continue;
        }
        if !matches!(
            name,
            "--hosts"
                | "--seed"
                | "--findings-per-host"
                | "--qids"
                | "--ipv6-every"
                | "--change-every"
                | "--out"
        ) {
            return Err(format!("unknown option `{arg}`"));
        }
        let value = option_value(name, inline, &mut it)?;
        match name {
            "--hosts" => hosts = Some(number(name, &value)?),
            "--seed" => seed = Some(number(name, &value)?),
            "--findings-per-host" => spec.findings_per_host = number(name, &value)?,
            "--qids" => spec.qids = number(name, &value)?,
            "--ipv6-every" => spec.ipv6_every = number(name, &value)?,
            "--change-every" => spec.change_every = number(name, &value)?,
            _ => {
                if value.is_empty() {
                    return Err("--out needs a file name (or `-` for stdout)".into());
                }
                out = Some(value);
            }
        }
    }
    spec.hosts = hosts.ok_or("--hosts is required")?;
    spec.seed = seed.ok_or("--seed is required")?;
    let out = out.ok_or("--out is required (a file, or `-` for stdout)")?;
    if spec.qids == 0 {
        return Err("--qids must be at least 1".into());
    }
    Ok(Some(GenerateArgs { spec, out }))
}

/// A decimal number; `_` may group digits (`100_000`).
fn number<T: TryFrom<u64>>(name: &str, value: &str) -> Result<T, String> {
    let digits: String = value.chars().filter(|&c| c != '_').collect();
    digits
        .parse::<u64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{name}: `{value}` is not a valid number"))
}

fn generate_command(args: &[String]) -> ExitCode {
    let parsed = match parse_generate(args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{GENERATE_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return usage_error(&message, GENERATE_USAGE),
    };
    let to_stdout = parsed.out == "-";
    let result = if to_stdout {
        generate(&parsed.spec, &mut io::stdout().lock())
    } else {
        match File::create(&parsed.out) {
            Ok(mut file) => generate(&parsed.spec, &mut file),
            Err(e) => {
                eprintln!("qualys-sim: cannot create {}: {e}", parsed.out);
                return ExitCode::FAILURE;
            }
        }
    };
    match result {
        Ok(summary) => report_summary(&summary, to_stdout),
        Err(e) => {
            let target = if to_stdout { "stdout" } else { &parsed.out };
            eprintln!("qualys-sim: writing {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report_summary(summary: &GenSummary, on_stderr: bool) -> ExitCode {
    let line = match serde_json::to_string(summary) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("qualys-sim: cannot encode the summary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = if on_stderr {
        writeln!(io::stderr(), "{line}")
    } else {
        writeln!(io::stdout(), "{line}")
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

const SERVE_USAGE: &str = "\
usage: qualys-sim serve --user U --password P [--listen 127.0.0.1:0]
                        [--template ID=FILE | --template ID=gen:hosts=N,seed=S[,findings=M]]...
                        [--tls DIR] [--report-delay-ms N] [--rate-limit-first K]
                        [--to-wait-sec N] [--trickle-ms N] [--cut-body-once] [--stuck]
                        [--errors-state] [--expired-account] [--busy-first K]
                        [--concurrency-limit N] [--server-error-first K]
                        [--delete-delay-ms N] [--content-encoding NAME] [--endless-body]
                        [--requests-out FILE] [--exit-after-requests N]

Serves the Qualys Report API v2 (/api/<version>/fo/report/: launch, list, fetch,
delete) and the v1 calls /msp/asset_data_report.php and /msp/report_template_list.php
with HTTP Basic auth. Prints 'listening on <addr:port>' first (then 'ca <path>' with
--tls); stops on SIGTERM/SIGINT or after --exit-after-requests answered requests, then
writes the recorded requests to --requests-out as JSON lines.

  --listen ADDR             loopback address and port (default 127.0.0.1:0)
  --user U, --password P    the account's credentials (required; the password is
                            compared raw, never URL-decoded)
  --template ID=SOURCE      template ID and its report: a file, or
                            gen:hosts=N,seed=S[,findings=M][,qids=Q][,ipv6-every=K]
                            [,glossary-first] for a report generated while it is sent
  --tls DIR                 HTTPS; the CA and server certificate are created once in
                            DIR and clients trust DIR/ca.pem
  --report-delay-ms N       Submitted -> Running -> Finished over N ms (default 200)
  --rate-limit-first K      the first K calls get HTTP 409, CODE 1965
  --to-wait-sec N           X-RateLimit-ToWait-Sec of those answers (default 1)
  --trickle-ms N            report downloads: keep-alive comments, then small pieces,
                            N ms apart
  --cut-body-once           the first report download stops halfway, connection dropped
  --stuck                   reports stay Running
  --errors-state            reports end in state Errors
  --expired-account         every call answers CODE 2001 (HTTP 200, no XML declaration)
  --busy-first K            the first K launches answer 'Max number of allowed reports
                            already running. Please try again later.'
  --concurrency-limit N     X-Concurrency-Limit-Limit; calls beyond it get HTTP 409,
                            CODE 1960 (default 2; 0 = no limit)
  --server-error-first K    the first K requests get HTTP 503
  --delete-delay-ms N       a delete waits N ms before it deletes and answers
  --content-encoding NAME   report downloads say Content-Encoding: NAME (body unchanged)
  --endless-body            report downloads never end (XML head, then comments forever)
  --requests-out FILE       write the recorded requests as JSON lines when stopping
  --exit-after-requests N   stop once N requests have been answered
  --detections FILE         load the hosts of a HOST_LIST_VM_DETECTION_OUTPUT document
                            (repeatable) and answer Host List, Host List Detection
                            (ids, id_min, id_max, truncation_limit, status, show_igs,
                            vm_processed_after, include_ignored, include_disabled) from them
  --kb FILE                 load the VULNs of a KNOWLEDGE_BASE_VULN_LIST_OUTPUT document
                            (repeatable) and answer KnowledgeBase queries (ids) from them
  --report-estate FILE      take the detection estate from an ASSET_DATA_REPORT instead
                            (host IDs from 1000001 in report order, the glossary as the KB)
  --warning-host HOST       the host the paging WARNING's URL names (default: the request's)
  --max-page-hosts N        a Host List Detection page holds at most N hosts
  --page-delay-ms N         each Host List Detection page waits N ms (Qualys's latency)
  --cut-pages-first N       the first N Host List Detection pages are sent cut in half

Options also take the form --name=value.
";

struct ServeArgs {
    options: ServerOptions,
    requests_out: Option<PathBuf>,
    exit_after: Option<usize>,
}

/// `Ok(None)` when help was asked for.
fn parse_serve(args: &[String]) -> Result<Option<ServeArgs>, String> {
    let mut options = ServerOptions::new("", "");
    let (mut user, mut password) = (None, None);
    let (mut requests_out, mut exit_after) = (None, None);
    let (mut detections, mut kb): (Vec<PathBuf>, Vec<PathBuf>) = (Vec::new(), Vec::new());
    let mut report_estate: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = split_option(arg);
        let flag = match name {
            "--cut-body-once" => Some(&mut options.cut_body_once),
            "--endless-body" => Some(&mut options.endless_body),
            "--stuck" => Some(&mut options.stuck),
            "--errors-state" => Some(&mut options.errors_state),
            "--expired-account" => Some(&mut options.expired_account),
            _ => None,
        };
        if let Some(flag) = flag {
            if inline.is_some() {
                return Err(format!("{name} takes no value"));
            }
            *flag = true;
            continue;
        }
        if !matches!(
            name,
            "--listen"
                | "--user"
                | "--password"
                | "--template"
                | "--tls"
                | "--report-delay-ms"
                | "--rate-limit-first"
                | "--to-wait-sec"
                | "--trickle-ms"
                | "--busy-first"
                | "--concurrency-limit"
                | "--server-error-first"
                | "--delete-delay-ms"
                | "--content-encoding"
                | "--requests-out"
                | "--exit-after-requests"
                | "--detections"
                | "--kb"
                | "--report-estate"
                | "--max-page-hosts"
                | "--page-delay-ms"
                | "--cut-pages-first"
                | "--warning-host"
        ) {
            return Err(format!("unknown option `{arg}`"));
        }
        let value = option_value(name, inline, &mut it)?;
        match name {
            "--listen" => {
                let addr: SocketAddr = value
                    .parse()
                    .map_err(|_| format!("--listen: `{value}` is not an address:port"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--listen: {addr} is not a loopback address (the simulator only listens on loopback)"
                    ));
                }
                options.listen = addr;
            }
            "--user" => user = Some(value),
            "--detections" => detections.push(PathBuf::from(value)),
            "--kb" => kb.push(PathBuf::from(value)),
            "--report-estate" => report_estate = Some(PathBuf::from(value)),
            "--max-page-hosts" => options.max_page_hosts = Some(number(name, &value)?),
            "--page-delay-ms" => options.page_delay_ms = number(name, &value)?,
            "--cut-pages-first" => options.cut_pages_first = number(name, &value)?,
            "--warning-host" => options.warning_host = Some(value),
            "--password" => password = Some(value),
            "--template" => {
                let (id, source) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--template: `{value}` is not ID=FILE or ID=gen:…"))?;
                let id = id.trim();
                if id.is_empty() {
                    return Err(format!("--template: `{value}` has an empty template ID"));
                }
                if options.templates.iter().any(|(t, _)| t == id) {
                    return Err(format!("--template: template ID {id} given twice"));
                }
                let source =
                    TemplateSource::parse(source).map_err(|e| format!("--template {id}: {e}"))?;
                if let TemplateSource::File(path) = &source
                    && !path.is_file()
                {
                    return Err(format!(
                        "--template {id}: {} is not a readable file",
                        path.display()
                    ));
                }
                options.templates.push((id.to_string(), source));
            }
            "--tls" => {
                if value.is_empty() {
                    return Err("--tls needs a directory".into());
                }
                options.tls_dir = Some(PathBuf::from(value));
            }
            "--report-delay-ms" => options.report_delay_ms = number(name, &value)?,
            "--rate-limit-first" => options.rate_limit_first = number(name, &value)?,
            "--to-wait-sec" => options.to_wait_sec = number(name, &value)?,
            "--trickle-ms" => options.trickle_ms = number(name, &value)?,
            "--busy-first" => options.busy_first = number(name, &value)?,
            "--concurrency-limit" => options.concurrency_limit = number(name, &value)?,
            "--server-error-first" => options.server_error_first = number(name, &value)?,
            "--delete-delay-ms" => options.delete_delay_ms = number(name, &value)?,
            "--content-encoding" => options.content_encoding = Some(value.to_string()),
            "--requests-out" => {
                if value.is_empty() {
                    return Err("--requests-out needs a file name".into());
                }
                requests_out = Some(PathBuf::from(value));
            }
            _ => {
                let n: usize = number(name, &value)?;
                if n == 0 {
                    return Err("--exit-after-requests must be at least 1".into());
                }
                exit_after = Some(n);
            }
        }
    }
    options.user = user.ok_or("--user is required")?;
    options.password = password.ok_or("--password is required")?;
    if let Some(path) = report_estate {
        if !detections.is_empty() || !kb.is_empty() {
            return Err("--report-estate and --detections / --kb do not go together".into());
        }
        let estate = qualys_connector_sim::qualys::Estate::from_report(&path)
            .map_err(|e| format!("--report-estate: {e}"))?;
        options.estate = Some(Arc::new(estate));
    } else if !detections.is_empty() || !kb.is_empty() {
        let estate = qualys_connector_sim::qualys::Estate::load(&detections, &kb)
            .map_err(|e| format!("--detections / --kb: {e}"))?;
        options.estate = Some(Arc::new(estate));
    }
    Ok(Some(ServeArgs {
        options,
        requests_out,
        exit_after,
    }))
}

fn serve_command(args: &[String]) -> ExitCode {
    let parsed = match parse_serve(args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{SERVE_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return usage_error(&message, SERVE_USAGE),
    };
    match serve(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("qualys-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    let server =
        QualysServer::start(args.options).map_err(|e| format!("cannot start the server: {e}"))?;
    {
        let mut out = io::stdout().lock();
        let mut text = format!("listening on {}\n", server.addr());
        if let Some(ca) = server.ca_pem() {
            text.push_str(&format!("ca {}\n", ca.display()));
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
    }
    eprintln!("qualys-sim: serving {}", server.url());
    while !stop.load(Ordering::SeqCst)
        && args
            .exit_after
            .is_none_or(|n| server.completed_requests() < n)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let requests = server.requests();
    let alive = server.reports_alive();
    let max = server.max_concurrent_seen();
    server.stop();
    eprintln!(
        "qualys-sim: stopped: {} request(s), {alive} report(s) not deleted, at most {max} call(s) at once",
        requests.len()
    );
    if let Some(path) = &args.requests_out {
        write_requests(path, &requests)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One JSON object per line, written to a temporary file then renamed into place.
fn write_requests(path: &PathBuf, requests: &[RecordedRequest]) -> io::Result<()> {
    let mut text = String::new();
    for request in requests {
        text.push_str(&serde_json::to_string(request).map_err(io::Error::other)?);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `--name=value` → (`--name`, the value); anything else as it is, with no value.
fn split_option(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
        _ => (arg, None),
    }
}

/// The value of option `name`: given inline, or the next argument.
fn option_value<'a>(
    name: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<String, String> {
    match inline {
        Some(v) => Ok(v),
        None => rest
            .next()
            .cloned()
            .ok_or_else(|| format!("{name} needs a value")),
    }
}
