//! The QualysGuard plugin: for each report template (the configured one, or each of
//! `-multiinfo`), a report in (downloaded or `-report`), commands out (a file, or the
//! FMC). One template's failure does not stop the others.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::download;
use super::fmc::{self, FmcSettings, FmcTarget};
use super::sync::{self, SyncContext};
use super::until_stop::UntilStop;
use super::{Done, Run};
use crate::cli::Args;
use crate::config::{self, Config, Require, ScanMode, SecretOrigin};
use crate::exit::{Code, Failure, Location};
use crate::files;
use crate::hostinput::commands::Commit;
use crate::hostinput::csvfile::CsvFile;
use crate::hostinput::{CommandSink, SinkError};
use crate::logging;
use crate::pipeline::{self, Parsed, PipelineError, Settings, Summary};
use crate::progress::{self, Stage};
use crate::qualys::client::{Limits, Qualys};
use crate::qualys::follow::{Follow, FollowReader, Verdict};
use crate::qualys::readahead::ReadAhead;
use crate::qualys::report;
use crate::servertext;
use crate::stop::{self, Stopped};

/// Counts bytes read for the progress line, and ends the parse of a report file when
/// the run must stop (a multi-gigabyte report takes minutes).
struct Counted<R>(R);

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stop::check().map_err(io::Error::other)?;
        let n = self.0.read(buf)?;
        progress::add(n as u64);
        Ok(n)
    }
}

/// Where the commands go.
#[derive(Debug, Clone)]
pub(super) enum Destination {
    File(PathBuf),
    Fmc(String, FmcTarget),
}

/// Runs every template; a failure before any template starts (options, configuration,
/// certificate) is returned as the error.
pub fn run(args: &Args) -> Result<Vec<Run>, Failure> {
    if args.report.is_some() && args.multiinfo.is_some() {
        return Err(Failure::Invalid(
            "-report and -multiinfo do not go together: a report file is one template's report"
                .into(),
        ));
    }
    let config = load_config(args)?;
    let settings = settings(&config);
    log_settings(&settings);
    // Everything is checked before the first byte goes over the network.
    if args.delta_csv.is_some() && args.server.as_deref().is_none_or(str::is_empty) {
        return Err(Failure::Invalid(
            "-delta-csv needs -server (and -pkcs12) to name the FMC whose state it compares with; nothing is sent".into(),
        ));
    }
    if config.qualys_source == config::QualysSource::Detections {
        super::detections::refuse_options(args)?;
    }
    let destination = destination(args, &config)?;
    let mut sync = sync::open(args, &config, &settings)?;
    if config.qualys_source == config::QualysSource::Detections {
        return detections_run(args, &config, &settings, &destination, sync.as_mut());
    }
    let templates: Vec<Option<String>> = match (&args.multiinfo, &args.report) {
        (Some(ids), _) => ids.iter().cloned().map(Some).collect(),
        (None, Some(_)) => vec![None],
        (None, None) => vec![config.template_id.clone()],
    };
    // One client, so the API limits are shared by every template (qualys.md §3).
    let qualys = match args.report {
        Some(_) => None,
        None => Some(download::qualys_client(
            &config,
            Arc::new(Limits::default()),
        )?),
    };
    let multi = args.multiinfo.is_some();
    let mut runs = Vec::with_capacity(templates.len());
    for template in templates {
        if let Err(stopped) = stop::check() {
            // -multiinfo: a stop ends the run, not just the template it came in.
            log::warn!(
                "template {}: not started: {stopped}",
                template.as_deref().unwrap_or_default()
            );
            runs.push(Run::not_started(template, stopped));
            continue;
        }
        if multi {
            log::info!(
                "template {}: starting",
                template.as_deref().unwrap_or_default()
            );
        }
        let mut run = Run::timed(template.clone(), || {
            run_template(
                args,
                &config,
                &settings,
                &destination,
                qualys.as_ref(),
                template.as_deref(),
                multi,
                sync.as_mut(),
            )
        });
        if let Some(stopped) = stop::stopped() {
            stopped_run(&mut run, stopped, &destination, multi);
        }
        if let Some(failure) = &run.failure
            && multi
        {
            // Said now, in order; the summary repeats each template's outcome.
            log::error!(
                "template {}: {failure}",
                template.as_deref().unwrap_or_default()
            );
        }
        runs.push(run);
    }
    Ok(runs)
}

fn log_settings(settings: &Settings) {
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
}

/// `qualys_source: detections`: its own client, one slot of the subscription's
/// concurrency left for other tools (qualys.md §7).
fn detections_run(
    args: &Args,
    config: &Config,
    settings: &Settings,
    destination: &Destination,
    sync: Option<&mut SyncContext>,
) -> Result<Vec<Run>, Failure> {
    let limits = Arc::new(Limits::default());
    limits.reserve(1);
    let qualys = download::qualys_client(config, limits)?;
    Ok(super::detections::run(
        args,
        config,
        settings,
        destination,
        &qualys,
        sync,
    ))
}

#[allow(clippy::too_many_arguments)]
fn run_template(
    args: &Args,
    config: &Config,
    settings: &Settings,
    destination: &Destination,
    qualys: Option<&Qualys>,
    template: Option<&str>,
    multi: bool,
    sync: Option<&mut SyncContext>,
) -> Done {
    let early = |failure: Failure| Box::new((None, failure));
    let (sink, confirmations) =
        template_sink(args, destination, sync.is_some(), multi, template).map_err(early)?;
    let (parsed, download_time) = match (&args.report, qualys) {
        (Some(path), _) => (parse_file(path, settings).map_err(early)?, None),
        (None, Some(qualys)) => {
            let template_id = template.unwrap_or_default();
            let (parsed, time) =
                download_and_parse(qualys, template_id, config, settings).map_err(early)?;
            (parsed, Some(time))
        }
        (None, None) => {
            return Err(early(Failure::Invalid(
                "no report to read: give -report=FILE or the Qualys credentials".into(),
            )));
        }
    };
    // A stop during the download or the parse: nothing is sent.
    stop::check().map_err(|stopped| early(stopped.into()))?;
    // The sync wraps the sink only now: a report that failed to download or parse
    // leaves no trace in the state.
    let (sink, report) = match (sync, destination) {
        (Some(ctx), Destination::Fmc(server, target)) => {
            let (sink, report) = ctx
                .wrap(sink, confirmations, target, server, args.port, template)
                .map_err(early)?;
            (sink, Some(report))
        }
        (_, _) => (sink, None),
    };
    let delivered = deliver(parsed, settings, sink).map_err(stopped_delivery);
    conclude(delivered, report, download_time, args, config, destination)
}

/// After a delivery: what the sync did in the log and the summary, then the checks that
/// fail the run (hosts not confirmed, a clear the guard refused).
pub(super) fn conclude(
    delivered: Done,
    report: Option<Arc<std::sync::Mutex<crate::sync::SyncReport>>>,
    download_time: Option<Duration>,
    args: &Args,
    config: &Config,
    destination: &Destination,
) -> Done {
    let sync_report = report.as_ref().map(sync::log_report);
    let mut summary = match delivered {
        Ok(summary) => summary,
        Err(mut unfinished) => {
            if let Some(s) = &mut unfinished.0 {
                s.sync = sync_report;
            }
            return Err(unfinished);
        }
    };
    summary.download_time = download_time;
    summary.sync = sync_report.clone();
    if args.delta_csv.is_some() {
        return Ok(summary);
    }
    if let Destination::Fmc(server, _) = destination
        && let Err(failure) = fmc::check_delivery(server, &summary.delivery)
    {
        return Err(Box::new((Some(summary), failure)));
    }
    if let Some((vanished, of)) = sync_report.and_then(|r| r.clear_refused) {
        let failure = Failure::VanishedGuard(format!(
            "{vanished} of the {of} hosts the FMC holds for this destination are no longer in the report, more than max_vanished_percent ({}%): none was cleared; if that is intended, run with -full",
            config.max_vanished_percent
        ));
        return Err(Box::new((Some(summary), failure)));
    }
    Ok(summary)
}

/// The sink of one template: the command file, the FMC (with the hook the sync state
/// needs), or with `-delta-csv` the preview file.
pub(super) fn template_sink(
    args: &Args,
    destination: &Destination,
    synced: bool,
    multi: bool,
    template: Option<&str>,
) -> Result<(Box<dyn CommandSink>, crate::sync::Confirmations), Failure> {
    let confirmations = crate::sync::Confirmations::default();
    let file = |path: &Path| -> Result<Box<dyn CommandSink>, Failure> {
        let path = command_file(path, multi, template);
        let csv = CsvFile::create(&path)?;
        Ok(Box::new(UntilStop::new(csv, &path)))
    };
    let sink = match (destination, &args.delta_csv) {
        (Destination::File(path), _) => file(path)?,
        (Destination::Fmc(..), Some(preview)) => file(preview)?,
        (Destination::Fmc(_, target), None) => {
            let mut fmc = target.sink();
            if synced {
                fmc.on_confirmed(Arc::new(confirmations.hook()));
            }
            Box::new(fmc)
        }
    };
    Ok((sink, confirmations))
}

/// A delivery the stop cut short keeps what the FMC confirmed (the sink has listed the
/// hosts it did not confirm), and its failure is the stop's.
pub(super) fn stopped_delivery(failure: Failure) -> Box<(Option<Summary>, Failure)> {
    let Failure::Sink(SinkError::Stopped { stopped, delivery }) = failure else {
        return Box::new((None, failure));
    };
    let summary = Summary {
        delivery,
        ..Summary::default()
    };
    Box::new((Some(summary), Failure::Stopped(stopped)))
}

/// A template's run that a stop cut short: its failure becomes the stop, whatever error
/// the stop caused on the way out (a cut download, a refused host), so the exit code is
/// the stop's; says what was and was not done.
fn stopped_run(run: &mut Run, stopped: Stopped, destination: &Destination, multi: bool) {
    let Some(failure) = run.failure.take() else {
        // Finished before the stop was noticed: it stands.
        return;
    };
    // Only the sink's errors come after the first command went out.
    let sending = matches!(failure, Failure::Sink(_) | Failure::Delivery(_));
    if failure.code() == Code::of_stop(stopped) {
        run.failure = Some(failure);
    } else {
        log::debug!("after the stop: {failure}");
        run.failure = Some(Failure::Stopped(stopped));
    }
    match (destination, &run.summary) {
        (Destination::File(path), _) => log::warn!(
            "{stopped}: {} was not written (a file already there is left as it was)",
            command_file(path, multi, run.template.as_deref()).display()
        ),
        (Destination::Fmc(server, _), Some(s)) => log::warn!(
            "{stopped}: {} hosts confirmed by the FMC at {server}, {} not confirmed (listed above): they are sent on the next run",
            s.delivery.hosts,
            s.delivery.unconfirmed.len()
        ),
        (Destination::Fmc(server, _), None) if sending => log::warn!(
            "{stopped}: the delivery to {server} was cut short; hosts without the FMC's confirmation are sent on the next run"
        ),
        (Destination::Fmc(server, _), None) => log::warn!(
            "{stopped}: nothing was sent to {server}; the report is sent on the next run"
        ),
    }
}

/// The command file of a template: `-csvfile`'s, or with `-multiinfo` the template's.
fn command_file(path: &Path, multi: bool, template: Option<&str>) -> PathBuf {
    match (multi, template) {
        // The guide: process_multiple.pl "prepends the template ID to the CSV file",
        // keeping its directory.
        (true, Some(id)) => prefixed(path, id),
        _ => path.to_path_buf(),
    }
}

/// `dir/Output.csv` → `dir/424242_Output.csv`.
fn prefixed(path: &Path, template_id: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{template_id}_{name}"))
}

fn destination(args: &Args, config: &Config) -> Result<Destination, Failure> {
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
            Ok(Destination::File(file.to_path_buf()))
        }
        (None, Some(server)) if !server.is_empty() => Ok(Destination::Fmc(
            server.to_string(),
            fmc::target(args, server, &FmcSettings::from(config))?,
        )),
        (None, Some(_)) => Err(Failure::Invalid("-server needs the FMC's address".into())),
        (None, None) => Err(Failure::Invalid(
            "nothing to do: give -server=<FMC address> to send, or -csvfile=FILE to write the commands to a file"
                .into(),
        )),
    }
}

/// Downloads the report and parses it at the same time: the parser reads the temporary
/// file behind the download (`qualys::follow`). What it parsed is used only when the
/// first attempt was the one that completed; otherwise (a cut transfer fetched again)
/// the finished file is parsed again from the start. Nothing is sent before both end.
fn download_and_parse(
    qualys: &Qualys,
    template_id: &str,
    config: &Config,
    settings: &Settings,
) -> Result<(Parsed, Duration), Failure> {
    let started = Instant::now();
    let mut tmp = download::temporary()?;
    let path = tmp.path().to_path_buf();
    let follow = Arc::new(Follow::new());
    let behind = File::open(&path).map_err(|source| Failure::ReportOpen {
        path: path.clone(),
        source,
    })?;
    let (downloaded, download_end, parsed) = std::thread::scope(|scope| {
        let reader = follow.reader(behind);
        // The parse's end of document decides whether the first transfer is complete.
        let judge = follow.judge();
        let parsing = std::thread::Builder::new()
            .name("report-parser".into())
            .spawn_scoped(scope, || {
                // What this parse logs waits until it is known whether the parse counts.
                logging::hold();
                let result =
                    parse(Behind(reader), &path, settings).map(|parsed| (parsed, Instant::now()));
                judge.decide(verdict(&result));
                (result, logging::take_held())
            });
        let downloaded = download::download(qualys, template_id, config, &mut tmp, &follow);
        // Whatever happened, a parser still waiting for bytes stops now.
        follow.close();
        let download_end = Instant::now();
        log::debug!(
            "download over; the parser had read {} bytes of it",
            follow.read_so_far()
        );
        let parsed = match parsing {
            Ok(handle) => match handle.join() {
                Ok(result) => Some(result),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => {
                log::debug!("no parser thread beside the download ({e}): parsing after it");
                None
            }
        };
        (downloaded, download_end, parsed)
    });
    let kept = downloaded?;
    let download_time = download_end.duration_since(started);
    // The temporary file is gone when the run ends: errors name the kept copy, or say
    // how to keep one.
    let name = |failure: Failure| downloaded_report_failure(failure, kept.as_deref(), template_id);
    if let Some((parsed, held)) = parsed {
        if follow.first_attempt_complete() {
            held.emit();
            let (mut parsed, parse_end) = parsed.map_err(name)?;
            // The parse ran during the download: what it adds is the time after it.
            parsed.set_parse_time(parse_end.saturating_duration_since(download_end));
            log::info!("report parsed while it downloaded");
            return Ok((parsed, download_time));
        }
        log::debug!("{} log records of the abandoned parse dropped", held.len());
        log::info!("the download was fetched again: parsing the finished file");
    }
    Ok((parse_file(&path, settings).map_err(name)?, download_time))
}

/// The parse's verdict on the transfer it followed (qualys.md §4): the document ended,
/// was cut, or the parse stopped for a reason that says nothing about the transfer.
fn verdict<T>(result: &Result<T, Failure>) -> Verdict {
    use report::ReportError;
    match result {
        Ok(_) => Verdict::Ended,
        Err(Failure::Report { error, .. }) => match error.as_ref() {
            ReportError::Incomplete { .. } | ReportError::Empty => Verdict::Cut(error.to_string()),
            ReportError::Io(_) | ReportError::Visitor(_) => Verdict::Undecided,
            _ => Verdict::Ended,
        },
        Err(_) => Verdict::Undecided,
    }
}

/// A report failure of a downloaded report, naming the kept copy or saying how to keep
/// one (the temporary file is deleted when the run ends).
fn downloaded_report_failure(failure: Failure, kept: Option<&Path>, template_id: &str) -> Failure {
    match failure {
        Failure::Report {
            location, error, ..
        } => Failure::Report {
            path: kept.map_or_else(
                || {
                    PathBuf::from(format!(
                        "the report of template {template_id} (not kept: set keep_report to keep downloaded reports)"
                    ))
                },
                Path::to_path_buf,
            ),
            location,
            error,
        },
        other => other,
    }
}

/// The report file behind the download, counted for the progress line once the
/// download is over.
struct Behind(FollowReader);

impl io::Read for Behind {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        progress::set_in(Stage::Parse, self.0.position());
        Ok(n)
    }
}

/// Parses a report file to its end (nothing sent yet).
fn parse_file(report_path: &Path, settings: &Settings) -> Result<Parsed, Failure> {
    // Only a regular file: a FIFO or device is refused instead of waited on.
    let input = files::open_input(report_path).map_err(|source| Failure::ReportOpen {
        path: report_path.to_path_buf(),
        source,
    })?;
    log::info!("reading report {}", report_path.display());
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    progress::stage(Stage::Parse, size);
    parse(Counted(input), report_path, settings)
}

/// Parses a report read from `input` (on the reader thread) to its end; errors name
/// `report_path`.
fn parse(
    input: impl io::Read + Send + 'static,
    report_path: &Path,
    settings: &Settings,
) -> Result<Parsed, Failure> {
    let source = ReadAhead::spawn(input)
        .map_err(|e| Failure::Spill(format!("cannot start the report reader thread: {e}")))?;
    pipeline::parse_source(source, settings).map_err(|e| pipeline_failure(report_path, e))
}

/// Hands a parsed report's commands to the sink.
fn deliver(
    parsed: Parsed,
    settings: &Settings,
    mut sink: Box<dyn CommandSink>,
) -> Result<Summary, Failure> {
    parsed
        .deliver(settings, sink.as_mut())
        // The second stage reads no report: its errors are the spill file's or the sink's.
        .map_err(|e| pipeline_failure(Path::new(""), e))
}

fn pipeline_failure(report_path: &Path, error: PipelineError) -> Failure {
    match error {
        PipelineError::Report(error) => report_failure(report_path, error),
        PipelineError::Spill(e) => Failure::Spill(e.to_string()),
        PipelineError::Sink(e) => Failure::Sink(e),
    }
}

pub fn load_config(args: &Args) -> Result<Config, Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let (config, warnings) = config::load(&args.plugininfo, required_keys(args), &env)?;
    register_secrets(&config);
    // One bound over everything that follows, retries and -multiinfo included.
    stop::set_deadline(config.max_run_seconds);
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

/// The keys this run needs: those of a download unless the report is read from a file,
/// `template_id` unless `-multiinfo` names the templates.
fn required_keys(args: &Args) -> Require {
    match (&args.report, &args.multiinfo) {
        (Some(_), _) => Require::Nothing,
        (None, ids) => Require::Download {
            template: ids.is_none(),
        },
    }
}

/// `load_config` going on past errors, for `check`: every error, and the valid values.
pub fn load_config_partial(args: &Args) -> config::Partial {
    let env = |name: &str| std::env::var(name).ok();
    let partial = config::load_partial(&args.plugininfo, required_keys(args), &env);
    register_secrets(&partial.config);
    for w in &partial.warnings {
        log::warn!("{w}");
    }
    partial
}

/// The configured passwords are known from here on: nothing a server echoes of them
/// reaches a log line, a message or the summary (servertext). Before any network traffic.
fn register_secrets(config: &Config) {
    let user = config.user_id.as_deref().unwrap_or_default();
    if let Some(password) = &config.password {
        servertext::register_basic(user, password.expose());
    }
    if let Some(password) = &config.proxy_password {
        let proxy_user = config.proxy_username.as_deref().unwrap_or_default();
        servertext::register_basic(proxy_user, password.expose());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use base64::Engine as _;

    #[test]
    fn configured_secrets_are_registered_for_redaction() {
        let mut config = Config::defaults(Path::new("q.yaml"));
        config.user_id = Some("qualys_user".into());
        config.password = Some(Secret::new("qualys-pw-4711"));
        config.proxy_username = Some("proxy_user".into());
        config.proxy_password = Some(Secret::new("proxy-pw-0815"));
        register_secrets(&config);
        let basic = |user: &str, password: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        };
        let text = format!(
            "qualys-pw-4711 {} proxy-pw-0815 {}",
            basic("qualys_user", "qualys-pw-4711"),
            basic("proxy_user", "proxy-pw-0815")
        );
        assert_eq!(
            servertext::redact(&text),
            "<redacted> <redacted> <redacted> <redacted>"
        );
    }
}
