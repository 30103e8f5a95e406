//! One invocation from start to finish: command line → logging → the plugin's work →
//! summary → exit code. Each plugin validates everything before any work starts.

mod check;
mod csv_plugin;
#[cfg(feature = "demo")]
mod demo;
mod detections;
mod download;
mod fmc;
mod qualysguard;
mod summary;
mod sync;
mod until_stop;

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use crate::cli::{self, Plugin};
use crate::exit::{Code, Failure};
use crate::logging::{self, LogOptions};
use crate::pipeline::Summary;
use crate::servertext;
use crate::stop::{self, Stopped};

/// What one report template's run came to (one line of the summary).
#[derive(Debug)]
pub struct Run {
    /// The template ID, when known (`None` for `-report` without one, and for the csv
    /// plugin).
    pub template: Option<String>,
    /// What was done, also when the run failed part-way (delivery counts, for example).
    pub summary: Option<Summary>,
    pub failure: Option<Failure>,
    pub elapsed: Duration,
    /// False for a template never begun because the run had to stop first.
    pub started: bool,
}

impl Run {
    fn timed(template: Option<String>, work: impl FnOnce() -> Done) -> Run {
        let started = std::time::Instant::now();
        let (summary, failure) = match work() {
            Ok(summary) => (Some(summary), None),
            Err(unfinished) => {
                let (summary, failure) = *unfinished;
                (summary, Some(failure))
            }
        };
        Run {
            template,
            summary,
            failure,
            elapsed: started.elapsed(),
            started: true,
        }
    }

    /// A template left out because the run must stop (a signal, `max_run_seconds`).
    fn not_started(template: Option<String>, stopped: Stopped) -> Run {
        Run {
            template,
            summary: None,
            failure: Some(Failure::Stopped(stopped)),
            elapsed: Duration::ZERO,
            started: false,
        }
    }
}

/// A template's result: its summary, or the failure with whatever summary there is.
pub type Done = Result<Summary, Box<(Option<Summary>, Failure)>>;

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
            fatal(&failure.to_string());
            if let Some(hint) = failure.hint() {
                fatal(&hint);
            }
            return failure.code().as_i32();
        }
    };
    // The PKCS#12 password of -password is known now; the configured ones when the
    // configuration is read (qualysguard::load_config), before any network traffic.
    if let Some(password) = &args.password {
        servertext::register_secret(password.expose());
    }
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
        fatal(&failure.to_string());
        return failure.code().as_i32();
    }

    // From here a termination signal ends the run cleanly (temporary files removed, the
    // launched report deleted, what was confirmed logged) instead of killing it.
    if let Err(e) = stop::install_signal_handlers() {
        log::warn!(
            "cannot handle termination signals ({e}): a signal will end the run at once, without clean-up"
        );
    }
    // The bound over the whole run, until a configuration file sets its own
    // (`max_run_seconds`; the csv plugin reads none).
    stop::set_deadline(crate::config::Config::defaults(std::path::Path::new("")).max_run_seconds);
    let started = SystemTime::now();
    crate::progress::init(true);
    log::info!("{} starting", cli::version_line());
    let outcome = match args.plugin {
        Plugin::QualysGuard => qualysguard::run(&args),
        Plugin::Csv => Ok(vec![Run::timed(None, || {
            csv_plugin::send_command_file(&args)
        })]),
        #[cfg(feature = "demo")]
        Plugin::Demo => demo::run(&args),
        #[cfg(not(feature = "demo"))]
        Plugin::Demo => Err(Failure::Invalid(
            "this build has no demo (the simulators are left out of production builds): run `cargo run --release --features demo -- demo`".into(),
        )),
        Plugin::Check => {
            let mut run = Run::timed(None, || {
                check::run(&args).map_err(|failure| Box::new((None, failure)))
            });
            // Nothing was sent: no "done" line.
            run.summary = None;
            Ok(vec![run])
        }
    };
    let code = match &outcome {
        Ok(runs) => exit_code(runs),
        Err(failure) => failure.code(),
    };
    crate::progress::finish();
    summary::log(&outcome, &log_options);
    let code = match &args.summary_json {
        Some(path) => match summary::write_json(path, &outcome, started, code) {
            Ok(()) => code,
            Err(e) => {
                log::error!("{e}");
                if code == Code::Success {
                    Code::Output
                } else {
                    code
                }
            }
        },
        None => code,
    };
    log::logger().flush();
    code.as_i32()
}

/// A line on stderr that does not go through the logger (which redacts every record):
/// redacted here, so no configured secret leaves this way either.
pub fn fatal(line: &str) {
    eprintln!("{}: {}", cli::PROGRAM, servertext::redact(line));
}

/// The run's exit code: a stop's (128 + the signal, or 7 for `max_run_seconds`) when the
/// run was cut short by one, since the scheduler must learn that first; otherwise the
/// first template's failure, or success.
fn exit_code(runs: &[Run]) -> Code {
    let codes: Vec<Code> = runs
        .iter()
        .filter_map(|r| r.failure.as_ref().map(Failure::code))
        .collect();
    let stop = codes.iter().copied().find(|c| {
        matches!(
            c,
            Code::TimeLimit | Code::Hangup | Code::Interrupt | Code::Quit | Code::Terminated
        )
    });
    stop.or(codes.first().copied()).unwrap_or(Code::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(failure: Option<Failure>) -> Run {
        Run {
            template: None,
            summary: None,
            failure,
            elapsed: Duration::ZERO,
            started: true,
        }
    }

    #[test]
    fn a_stop_decides_the_exit_code() {
        let earlier = || Some(Failure::Invalid("an earlier template's failure".into()));
        let term = || Some(Failure::Stopped(Stopped::Signal(stop::SIGTERM)));
        let limit = || Some(Failure::Stopped(Stopped::Deadline(Duration::from_secs(2))));
        let cases: Vec<(Vec<Run>, Code)> = vec![
            (vec![], Code::Success),
            (vec![run(None), run(None)], Code::Success),
            (vec![run(earlier()), run(None)], Code::Usage),
            (
                vec![run(None), run(earlier()), run(term())],
                Code::Terminated,
            ),
            (
                vec![
                    run(earlier()),
                    Run::not_started(None, Stopped::Deadline(Duration::ZERO)),
                ],
                Code::TimeLimit,
            ),
            (vec![run(limit())], Code::TimeLimit),
        ];
        for (runs, want) in cases {
            assert_eq!(exit_code(&runs), want, "{runs:?}");
        }
    }
}
