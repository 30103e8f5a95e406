//! One invocation from start to finish: command line → logging → configuration → the
//! pipeline → exit code. Everything is validated before any work starts.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use std::time::{Duration, Instant, SystemTime};

use crate::cli::{self, Args, Plugin};
use crate::config::{self, Config, ReportApi, ScanMode, SecretOrigin};
use crate::exit::{Code, Failure, Location};
use crate::hostinput::client::{Endpoint, Timeouts};
use crate::hostinput::commands::Commit;
use crate::hostinput::csvfile::CsvFile;
use crate::hostinput::fmc::{FmcOptions, FmcSink};
use crate::hostinput::{CommandSink, Delivery, HostBlock, pkcs12, tls, validate};
use crate::logging::{self, LogOptions};
use crate::pipeline::{self, PipelineError, Settings, Summary};
use crate::qualys::client::{Api, Limits, Qualys, QualysOptions};
use crate::qualys::http::{Client as HttpClient, Proxy as HttpProxy, Scheme, Url};
use crate::qualys::report;
use crate::secret::Secret;

/// Runs the connector with `argv` (without the program name) and returns the exit code.
pub fn main(argv: &[OsString]) -> i32 {
    // The guide's "Checking the Version": no arguments print the version line first.
    if argv.is_empty() {
        println!("{}", cli::version_line());
        print!("{}", cli::usage_summary());
        return Code::Success.as_i32();
    }
    let args = match cli::parse(argv) {
        Ok(args) => args,
        Err(e) => {
            let failure = Failure::from(e);
            eprintln!("{}: {failure}", cli::PROGRAM);
            if let Some(hint) = failure.hint() {
                eprintln!("{}: {hint}", cli::PROGRAM);
            }
            return failure.code().as_i32();
        }
    };
    if args.help {
        print!("{}\n{}", cli::help_text(), crate::exit::help_table());
        return Code::Success.as_i32();
    }
    if args.version {
        println!("{}", cli::version_line());
        return Code::Success.as_i32();
    }

    let log_options = LogOptions {
        level: args.level,
        stderr: args.stderr,
        logfile: args.logfile.clone(),
        syslog: args.syslog,
    };
    if let Err(e) = logging::init(&log_options) {
        let failure = Failure::from(e);
        eprintln!("{}: {failure}", cli::PROGRAM);
        return failure.code().as_i32();
    }

    match job(&args) {
        Ok(summary) => {
            log_summary(&summary);
            Code::Success.as_i32()
        }
        Err(failure) => {
            log::error!("{failure}");
            if let Some(hint) = failure.hint() {
                log::error!("hint: {hint}");
            }
            // With only a log file or syslog configured, cron would see nothing: say it
            // on stderr too.
            if !logging::reaches_console(&log_options) {
                eprintln!("{}: {failure}", cli::PROGRAM);
            }
            log::logger().flush();
            failure.code().as_i32()
        }
    }
}

fn job(args: &Args) -> Result<Summary, Failure> {
    log::info!("{} starting", cli::version_line());
    match args.plugin {
        Plugin::QualysGuard => qualysguard(args),
        Plugin::Csv => send_command_file(args),
    }
}

/// Where the commands go.
enum Destination<'a> {
    File(&'a Path),
    Fmc(&'a str),
}

fn destination(args: &Args) -> Result<Destination<'_>, Failure> {
    match (args.csvfile.as_deref(), args.server.as_deref()) {
        (Some(file), server) => {
            if server.is_some() {
                // The guide: "If both -csvfile and -server options are specified, the
                // -server option is ignored."
                log::warn!(
                    "-server is ignored because -csvfile is given: commands are written to the file only"
                );
            }
            if file.as_os_str().is_empty() {
                return Err(Failure::Invalid("-csvfile needs a file name".into()));
            }
            Ok(Destination::File(file))
        }
        (None, Some(server)) if !server.is_empty() => Ok(Destination::Fmc(server)),
        (None, Some(_)) => Err(Failure::Invalid("-server needs the FMC's address".into())),
        (None, None) => Err(Failure::Invalid(
            "nothing to do: give -server=<FMC address> to send, or -csvfile=FILE to write the commands to a file"
                .into(),
        )),
    }
}

/// The QualysGuard plugin: a report in, commands out.
fn qualysguard(args: &Args) -> Result<Summary, Failure> {
    let destination = destination(args)?;
    let config = load_config(args)?;
    let settings = settings(&config);
    log::info!(
        "settings: source {}, {}, add_host {}, types {}, ip_ranges {}",
        settings.source,
        settings.commit.keyword(),
        if settings.add_host { "y" } else { "n" },
        settings
            .include_types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(","),
        settings.ip_ranges
    );
    // Everything is checked before the first byte goes over the network.
    let sink: Box<dyn CommandSink> = match destination {
        Destination::File(path) => Box::new(CsvFile::create(path)?),
        Destination::Fmc(server) => Box::new(fmc_sink(args, server, &FmcSettings::from(&config))?),
    };
    match args.report.as_deref() {
        Some(report_path) => process_file(report_path, &settings, sink, destination),
        None => {
            let template_id = config.template_id.clone().unwrap_or_default();
            let qualys = qualys_client(&config)?;
            // Deleted when it goes out of scope, after processing.
            let report = download(&qualys, &template_id, &config)?;
            process_file(&report, &settings, sink, destination)
        }
    }
}

/// Builds the Qualys API client from the configuration (nothing is sent yet).
fn qualys_client(config: &Config) -> Result<Qualys, Failure> {
    let invalid =
        |key: &str, e: String| Failure::Invalid(format!("{}: {key}: {e}", config.path.display()));
    let url = Url::parse(&config.url).map_err(|e| invalid("url", e))?;
    if url.scheme == Scheme::Http {
        log::warn!(
            "url {} is plain http: the Qualys credentials travel in clear text",
            config.url
        );
    }
    let proxy = match &config.proxy {
        Some(p) => Some(HttpProxy {
            url: Url::parse(&p.to_string()).map_err(|e| invalid("proxy", e))?,
            username: config.proxy_username.clone(),
            password: config.proxy_password.clone(),
        }),
        None => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &config.ca_bundle {
        roots
            .add(cert.clone())
            .map_err(|e| invalid("ca_bundle", e.to_string()))?;
    }
    if let Some(path) = &config.ca_bundle_path {
        log::info!(
            "trusting {} extra CA certificates from {}",
            config.ca_bundle.len(),
            path.display()
        );
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::Invalid(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = HttpClient {
        tls: Arc::new(tls),
        proxy,
        connect_timeout: config.fmc_connect_timeout,
        idle_timeout: config.download_idle_timeout,
    };
    let options = QualysOptions {
        url,
        user: config.user_id.clone().unwrap_or_default(),
        password: config.password.clone().unwrap_or_default(),
        api: match config.report_api {
            ReportApi::V2 => Api::V2,
            ReportApi::V1 => Api::V1,
        },
        api_path: config.api_path.clone(),
        poll_interval: config.poll_interval,
        deadline: config.report_deadline,
        retries: config.qualys_retries,
    };
    Ok(Qualys::new(http, options, Arc::new(Limits::default())))
}

/// Downloads the template's report into a temporary file, deleted when the returned
/// path is dropped; keeps a copy when `keep_report` says so.
fn download(
    qualys: &Qualys,
    template_id: &str,
    config: &Config,
) -> Result<tempfile::TempPath, Failure> {
    let mut tmp = tempfile::Builder::new()
        .prefix("qualys-report-")
        .suffix(".xml")
        .tempfile()
        .map_err(|e| {
            Failure::Spill(format!(
                "cannot create a temporary file for the report in {}: {e}",
                std::env::temp_dir().display()
            ))
        })?;
    let path = tmp.path().to_path_buf();
    log::info!(
        "downloading the report of template {template_id} from {}",
        config.url
    );
    let downloaded = qualys
        .download(template_id, tmp.as_file_mut(), &path)
        .map_err(|e| Failure::Download(Box::new(e)))?;
    log::info!(
        "report downloaded: {} bytes in {:.1?}",
        downloaded.bytes,
        downloaded.elapsed
    );
    if let Some(dir) = &config.keep_report {
        let stamp = logging::utc_timestamp(SystemTime::now()).replace(':', "");
        let kept = dir.join(format!("{template_id}-{stamp}.xml"));
        std::fs::copy(&path, &kept).map_err(|e| {
            Failure::Spill(format!("cannot keep the report as {}: {e}", kept.display()))
        })?;
        log::info!("report kept as {}", kept.display());
    }
    Ok(tmp.into_temp_path())
}

/// Parses a report file and hands the commands to the sink.
fn process_file(
    report_path: &Path,
    settings: &Settings,
    mut sink: Box<dyn CommandSink>,
    destination: Destination<'_>,
) -> Result<Summary, Failure> {
    let input = File::open(report_path).map_err(|source| Failure::ReportOpen {
        path: report_path.to_path_buf(),
        source,
    })?;
    if input.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(Failure::ReportOpen {
            path: report_path.to_path_buf(),
            source: io::Error::other("is a directory"),
        });
    }
    log::info!("reading report {}", report_path.display());
    let summary = match pipeline::run(
        io::BufReader::with_capacity(256 * 1024, input),
        settings,
        sink.as_mut(),
    ) {
        Ok(summary) => summary,
        Err(PipelineError::Report(error)) => return Err(report_failure(report_path, error)),
        Err(PipelineError::Spill(e)) => return Err(Failure::Spill(e.to_string())),
        Err(PipelineError::Sink(e)) => return Err(Failure::Sink(e)),
    };
    match destination {
        Destination::File(path) => log::info!("commands written to {}", path.display()),
        Destination::Fmc(server) => check_delivery(server, &summary.delivery)?,
    }
    Ok(summary)
}

/// The `csv` plugin (Cisco's SDK): validates a command file, then sends it.
fn send_command_file(args: &Args) -> Result<Summary, Failure> {
    if args.csvfile.is_some() {
        return Err(Failure::Invalid(
            "the csv plugin sends a command file to the FMC: give -server, not -csvfile".into(),
        ));
    }
    let Some(server) = args.server.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Failure::Invalid(
            "the csv plugin needs -server=<FMC address> to send the command file to".into(),
        ));
    };
    if args.plugininfo == Path::new(cli::DEFAULT_PLUGININFO) {
        return Err(Failure::Invalid(
            "the csv plugin needs the command file: give it with -plugininfo=FILE".into(),
        ));
    }
    let path = args.plugininfo.as_path();
    let started = Instant::now();
    let checked = validate::check_file(path)?;
    log::info!(
        "command file {}: {} commands in {} host blocks, all valid",
        path.display(),
        checked.commands,
        checked.chunks
    );
    let mut sink = fmc_sink(args, server, &FmcSettings::default())?;
    sink.preamble(checked.source_line.as_bytes(), 1)?;
    let mut sink_error = None;
    validate::for_each_chunk(path, |ip, bytes, commands, findings| {
        sink.host(&HostBlock {
            ip,
            commands,
            findings,
            bytes,
        })
        .map_err(|e| {
            let text = e.to_string();
            sink_error = Some(e);
            text
        })
    })
    .map_err(|e| match sink_error.take() {
        Some(sink) => Failure::Sink(sink),
        None => Failure::Input(e),
    })?;
    let delivery = sink.finish()?;
    check_delivery(server, &delivery)?;
    Ok(Summary {
        delivery,
        send_time: started.elapsed(),
        ..Summary::default()
    })
}

/// Delivery settings from the YAML file, or their defaults for the csv plugin.
#[derive(Debug, Clone)]
struct FmcSettings {
    verify_server: bool,
    timeouts: Timeouts,
    retries: u32,
    retry_wait: Duration,
}

impl Default for FmcSettings {
    fn default() -> Self {
        FmcSettings::from(&Config::defaults(Path::new("")))
    }
}

impl From<&Config> for FmcSettings {
    fn from(c: &Config) -> Self {
        FmcSettings {
            verify_server: c.verify_fmc_certificate,
            timeouts: Timeouts {
                connect: c.fmc_connect_timeout,
                reply: c.fmc_reply_timeout,
            },
            retries: c.fmc_retries,
            retry_wait: c.fmc_retry_wait,
        }
    }
}

/// Loads the PKCS#12 identity and builds the FMC sink; nothing touches the network yet.
fn fmc_sink(args: &Args, server: &str, settings: &FmcSettings) -> Result<FmcSink, Failure> {
    let path = match &args.pkcs12 {
        Some(path) => path.clone(),
        None => {
            let found = pkcs12::discover(Path::new("."))?;
            if !found.others.is_empty() {
                // The guide: "If you have more, the authentication process may be using
                // the wrong one."
                log::warn!(
                    "several .pkcs12 files in the current directory; using {} (others: {}); name the right one with -pkcs12",
                    found.path.display(),
                    found
                        .others
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            found.path
        }
    };
    let password = pkcs12_password(args.password.as_ref(), &|name| std::env::var(name).ok());
    let identity = pkcs12::load(&path, password.as_ref())?;
    let info = &identity.info;
    log::info!(
        "client certificate {}: subject {}, issuer {}, X.509 v{}, {}, expires {}",
        path.display(),
        info.subject,
        info.issuer,
        info.version,
        info.key_algorithm,
        logging::utc_timestamp(info.not_after)
    );
    if info.not_after < SystemTime::now() {
        log::warn!(
            "the client certificate in {} has expired: the FMC will refuse it; create a new one on the FMC's Host Input Client page",
            path.display()
        );
    }
    if !settings.verify_server {
        log::warn!(
            "verify_fmc_certificate is off: the FMC's certificate is not checked against the CA in {}",
            path.display()
        );
    }
    let tls = tls::client_config(
        &identity,
        &path.display().to_string(),
        settings.verify_server,
    )?;
    Ok(FmcSink::new(FmcOptions {
        endpoint: Endpoint {
            host: server.to_string(),
            port: args.port,
            ipv6: args.ipv6,
        },
        tls,
        timeouts: settings.timeouts,
        retries: settings.retries,
        retry_wait: settings.retry_wait,
    }))
}

/// The PKCS#12 password: `-password`, else `PKCS12_PASSWORD`, else none (README,
/// "Secrets").
fn pkcs12_password(
    option: Option<&Secret>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    option.cloned().or_else(|| {
        env(PKCS12_PASSWORD_ENV).filter(|v| !v.is_empty()).map(|v| {
            log::info!(
                "PKCS#12 password taken from the environment variable {PKCS12_PASSWORD_ENV}"
            );
            Secret::new(v)
        })
    })
}

const PKCS12_PASSWORD_ENV: &str = "PKCS12_PASSWORD";

/// Fails the run when any host was not confirmed, listing them (nothing is lost
/// silently: a rerun sends them again).
fn check_delivery(server: &str, d: &Delivery) -> Result<(), Failure> {
    log::info!(
        "delivered to {server}: {} hosts and {} findings confirmed in {} blocks ({} commands, {} bytes)",
        d.hosts,
        d.findings,
        d.blocks,
        d.commands,
        d.bytes
    );
    if d.unconfirmed.is_empty() {
        return Ok(());
    }
    for chunk in d.unconfirmed.chunks(20) {
        let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        log::error!("not confirmed by the FMC: {}", list.join(" "));
    }
    Err(Failure::Delivery(format!(
        "{} hosts were not confirmed by the FMC at {server} ({} confirmed); they are listed above, run again to send them",
        d.unconfirmed.len(),
        d.hosts
    )))
}

fn load_config(args: &Args) -> Result<Config, Failure> {
    let require_qualys = args.report.is_none();
    let env = |name: &str| std::env::var(name).ok();
    let (config, warnings) = config::load(&args.plugininfo, require_qualys, &env)?;
    for w in &warnings {
        log::warn!("{w}");
    }
    for (what, origin) in [
        ("Qualys password", config.password_origin),
        ("proxy password", config.proxy_password_origin),
    ] {
        if let Some(SecretOrigin::Env(var)) = origin {
            log::info!("{what} taken from the environment variable {var}");
        }
    }
    log::debug!("configuration read from {}", args.plugininfo.display());
    Ok(config)
}

fn settings(config: &Config) -> Settings {
    Settings {
        source: config.source.clone(),
        commit: match config.scan_mode {
            ScanMode::Flush => Commit::Flush,
            ScanMode::Update => Commit::Update,
        },
        add_host: config.add_host,
        include_types: config.include_types.clone(),
        description_length: config.description_length,
        ip_ranges: config.ip_ranges.clone(),
    }
}

/// Attaches the file name and, when the error points into the file, its line and column.
fn report_failure(path: &Path, error: report::ReportError) -> Failure {
    let location = error
        .offset()
        .and_then(|offset| File::open(path).ok().map(|f| (f, offset)))
        .and_then(|(f, offset)| report::locate(f, offset).ok());
    Failure::Report {
        path: path.to_path_buf(),
        location: Location(location),
        error: Box::new(error),
    }
}

fn log_summary(s: &Summary) {
    let d = &s.delivery;
    log::info!(
        "done: {} hosts, {} findings, {} commands ({} bytes); parse {:.2?}, send {:.2?}; {} warnings",
        d.hosts,
        d.findings,
        d.commands,
        d.bytes,
        s.parse_time,
        s.send_time,
        logging::warnings()
    );
    if s.qids_without_details > 0 {
        log::warn!(
            "{} QIDs were not in the report's glossary and were sent without a title",
            s.qids_without_details
        );
    }
    let _ = io::stdout().flush();
}
