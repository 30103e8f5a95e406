//! One invocation from start to finish: command line → logging → configuration → the
//! pipeline → exit code. Everything is validated before any work starts.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::cli::{self, Args};
use crate::config::{self, Config, ScanMode, SecretOrigin};
use crate::exit::{Code, Failure, Location};
use crate::hostinput::commands::Commit;
use crate::hostinput::csvfile::CsvFile;
use crate::logging::{self, LogOptions};
use crate::pipeline::{self, PipelineError, Settings, Summary};
use crate::qualys::report;

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
    if args.csvfile.is_some() && args.server.is_some() {
        // The guide: "If both -csvfile and -server options are specified, the -server
        // option is ignored."
        log::warn!(
            "-server is ignored because -csvfile is given: commands are written to the file only"
        );
    }
    let Some(csvfile) = args.csvfile.as_deref() else {
        return Err(if args.server.is_some() {
            Failure::NotAvailable(
                "sending to a Management Center (-server) is not available in this build; write the commands to a file with -csvfile=FILE"
                    .into(),
            )
        } else {
            Failure::Invalid(
                "nothing to do: give -csvfile=FILE to write the commands to a file".into(),
            )
        });
    };
    if csvfile.as_os_str().is_empty() {
        return Err(Failure::Invalid("-csvfile needs a file name".into()));
    }

    let config = load_config(args)?;
    let Some(report_path) = args.report.as_deref() else {
        return Err(Failure::NotAvailable(
            "downloading the report from Qualys is not available in this build; give the report file with -report=FILE"
                .into(),
        ));
    };
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

    // Open everything before the work starts, so a bad path fails fast.
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
    let mut sink = CsvFile::create(csvfile)?;
    log::info!("reading report {}", report_path.display());
    match pipeline::run(
        io::BufReader::with_capacity(256 * 1024, input),
        &settings,
        &mut sink,
    ) {
        Ok(summary) => {
            log::info!("commands written to {}", csvfile.display());
            Ok(summary)
        }
        Err(PipelineError::Report(error)) => Err(report_failure(report_path, error)),
        Err(PipelineError::Spill(e)) => Err(Failure::Spill(e.to_string())),
        Err(PipelineError::Sink(e)) => Err(Failure::Sink(e)),
    }
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
        "done: {} hosts, {} findings, {} commands ({} bytes); parse {:.2?}, write {:.2?}; {} warnings",
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
