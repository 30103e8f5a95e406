//! The one place that decides exit codes and the hint printed with a failure.
//!
//! Exit codes are a contract for the schedulers that run the connector (README, "Exit
//! codes"); they never change meaning.

use std::fmt;
use std::path::PathBuf;

use crate::cli::UsageError;
use crate::config::ConfigError;
use crate::hostinput::SinkError;
use crate::hostinput::pkcs12::Pkcs12Error;
use crate::hostinput::tls::TlsSetupError;
use crate::hostinput::validate::CommandFileError;
use crate::logging::LogError;
use crate::qualys::advice;
use crate::qualys::client::DownloadError;
use crate::qualys::report::{self, ReportError};

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The job completed: every host was written or delivered.
    Success = 0,
    /// An unexpected internal failure (a bug: please report it).
    Internal = 1,
    /// The command line or the configuration file is wrong; nothing was done.
    Usage = 2,
    /// The report could not be used: unreadable, malformed, truncated, a Qualys error
    /// document, or another format. Nothing was written or sent.
    Report = 3,
    /// Local output failed (the `-csvfile` file, temporary storage). No partial file is
    /// left under the target name.
    Output = 4,
    /// Delivery to the Management Center failed or was not confirmed for every host.
    Delivery = 5,
    /// Downloading the report from Qualys failed.
    Download = 6,
    /// The run reached `max_run_seconds` and was ended (unconfirmed hosts listed).
    TimeLimit = 7,
    /// Another run holds the sync state (`sync_state`); nothing was done.
    StateBusy = 8,
    /// The sync state cannot be used: written by a newer version, writable by other
    /// users, or it could not be read or written during the run.
    StateUnusable = 9,
    /// `vanished_hosts: clear` would clear more than `max_vanished_percent` of the
    /// destination's hosts: they were not cleared (the other hosts were sent).
    VanishedGuard = 10,
    /// Ended by SIGHUP (128 + 1), cleanly: temporary files removed, what was confirmed
    /// logged.
    Hangup = 129,
    /// Ended by SIGINT (128 + 2), cleanly.
    Interrupt = 130,
    /// Ended by SIGQUIT (128 + 3), cleanly.
    Quit = 131,
    /// Ended by SIGTERM (128 + 15), cleanly.
    Terminated = 143,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code of a run ended by `stopped`.
    pub fn of_stop(stopped: crate::stop::Stopped) -> Code {
        use crate::stop::{SIGHUP, SIGINT, SIGQUIT, Stopped};
        match stopped {
            Stopped::Deadline(_) => Code::TimeLimit,
            Stopped::Signal(SIGHUP) => Code::Hangup,
            Stopped::Signal(SIGINT) => Code::Interrupt,
            Stopped::Signal(SIGQUIT) => Code::Quit,
            Stopped::Signal(_) => Code::Terminated,
        }
    }

    /// All codes with their meaning, for `--help` and the README.
    pub const TABLE: [(Code, &'static str); 15] = [
        (
            Code::Success,
            "success: every host was written or delivered",
        ),
        (Code::Internal, "internal error (a bug: please report it)"),
        (
            Code::Usage,
            "usage or configuration error (options, YAML file, PKCS#12 file): nothing was done",
        ),
        (
            Code::Report,
            "the input is unusable (a report unreadable, malformed, truncated, a Qualys error or another format; a command file with invalid lines): nothing was written or sent",
        ),
        (
            Code::Output,
            "local output failed (CSV file, temporary storage): no partial file is left",
        ),
        (
            Code::Delivery,
            "delivery to the Management Center failed or was not confirmed for every host (the hosts not confirmed are listed in the log)",
        ),
        (Code::Download, "downloading the report from Qualys failed"),
        (
            Code::TimeLimit,
            "the run reached max_run_seconds and was ended (the hosts not confirmed are listed in the log)",
        ),
        (
            Code::StateBusy,
            "another run is using the sync state file (sync_state): nothing was done",
        ),
        (
            Code::StateUnusable,
            "the sync state cannot be used: written by a newer version, writable by other users, or unreadable or unwritable during the run (what the FMC confirmed before is kept)",
        ),
        (
            Code::VanishedGuard,
            "vanished_hosts: clear would clear more than max_vanished_percent of the FMC's hosts: none was cleared (give -full to clear them)",
        ),
        (
            Code::Hangup,
            "ended by SIGHUP: no new block sent, temporary files removed, the report deleted on Qualys, what was confirmed logged",
        ),
        (Code::Interrupt, "ended by SIGINT (likewise)"),
        (Code::Quit, "ended by SIGQUIT (likewise)"),
        (Code::Terminated, "ended by SIGTERM (likewise)"),
    ];
}

/// The exit code table as Markdown, for the README (a test keeps the two identical).
pub fn markdown_table() -> String {
    let mut out = String::from("| Code | Meaning |\n|---|---|\n");
    for (code, meaning) in Code::TABLE {
        out.push_str(&format!("| {} | {meaning} |\n", code.as_i32()));
    }
    out
}

/// The exit code table for `--help`.
pub fn help_table() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, meaning) in Code::TABLE {
        out.push_str(&format!("  {}  {meaning}\n", code.as_i32()));
    }
    out
}

/// Everything that ends a run early, with what the operator needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(#[from] UsageError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Log(#[from] LogError),
    /// A usage problem found after parsing (conflicting or missing options).
    #[error("{0}")]
    Invalid(String),
    #[error("{path}{location}: {error}")]
    Report {
        path: PathBuf,
        /// ":line:column" when the error points into the file.
        location: Location,
        error: Box<ReportError>,
    },
    #[error("cannot open report {path}: {source}")]
    ReportOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Pkcs12(#[from] Pkcs12Error),
    #[error("{0}")]
    TlsSetup(#[from] TlsSetupError),
    #[error("{0}")]
    CommandFile(#[from] CommandFileError),
    /// An input file other than the report could not be used.
    #[error("{0}")]
    Input(String),
    /// Hosts were not confirmed by the FMC.
    #[error("{0}")]
    Delivery(String),
    #[error("download from Qualys failed: {0}")]
    Download(Box<DownloadError>),
    /// `check` found problems (each already printed with its fix).
    #[error("{failed} checks failed")]
    Check { failed: usize, code: Code },
    #[error("{0}")]
    Spill(String),
    /// A signal or `max_run_seconds` ended the run (src/stop.rs).
    #[error("{0}")]
    Stopped(#[from] crate::stop::Stopped),
    /// The sync state could not be opened (src/sync).
    #[error("{0}")]
    State(#[from] crate::sync::state::StateError),
    /// The vanished-host guard refused to clear (src/sync).
    #[error("{0}")]
    VanishedGuard(String),
}

/// `:line:column` of a report error, or nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Location(pub Option<(u64, u64)>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

impl Failure {
    pub fn code(&self) -> Code {
        match self {
            Failure::Usage(_) | Failure::Config(_) | Failure::Log(_) | Failure::Invalid(_) => {
                Code::Usage
            }
            Failure::Pkcs12(_) | Failure::TlsSetup(_) => Code::Usage,
            Failure::Report { .. }
            | Failure::ReportOpen { .. }
            | Failure::CommandFile(_)
            | Failure::Input(_) => Code::Report,
            Failure::Sink(SinkError::Write { .. }) | Failure::Spill(_) => Code::Output,
            Failure::Sink(SinkError::Delivery(_)) | Failure::Delivery(_) => Code::Delivery,
            Failure::Sink(SinkError::Stopped { stopped, .. }) => Code::of_stop(*stopped),
            Failure::Sink(SinkError::State(_)) => Code::StateUnusable,
            Failure::State(crate::sync::state::StateError::Locked(_)) => Code::StateBusy,
            Failure::State(_) => Code::StateUnusable,
            Failure::VanishedGuard(_) => Code::VanishedGuard,
            // A stop during the download exits as the stop does (128+n, or 7).
            Failure::Download(e) => match e.as_ref() {
                DownloadError::Stopped(stopped) => Code::of_stop(*stopped),
                _ => Code::Download,
            },
            Failure::Check { code, .. } => *code,
            Failure::Stopped(stopped) => Code::of_stop(*stopped),
        }
    }

    /// A line telling the operator what to do, when there is something specific to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Failure::Usage(_) => Some("run with --help for the list of options".into()),
            Failure::Download(e) => e.hint(),
            Failure::Report { error, .. } => match error.as_ref() {
                ReportError::Incomplete { .. } => Some(
                    "the report file is truncated: download it again; nothing was written or sent"
                        .into(),
                ),
                ReportError::Qualys(q) => {
                    let texts: Vec<&str> = std::iter::once(q.text.as_str())
                        .chain(q.items.iter().map(String::as_str))
                        .collect();
                    advice::hint(&advice::Facts {
                        code: q.code.as_deref(),
                        texts: &texts,
                        ..advice::Facts::default()
                    })
                }
                ReportError::NotXml { .. }
                | ReportError::NotAReport { .. }
                | ReportError::Unsupported { .. }
                | ReportError::ApiReply(_) => Some(report::NEEDED.into()),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_stable() {
        let want = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 129, 130, 131, 143];
        let got: Vec<i32> = Code::TABLE.iter().map(|(c, _)| c.as_i32()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn stop_codes() {
        use crate::stop::Stopped;
        use std::time::Duration;
        let cases = [
            (Stopped::Deadline(Duration::from_secs(1)), 7),
            (Stopped::Signal(1), 129),
            (Stopped::Signal(2), 130),
            (Stopped::Signal(3), 131),
            (Stopped::Signal(15), 143),
        ];
        for (stopped, want) in cases {
            assert_eq!(Code::of_stop(stopped).as_i32(), want, "{stopped:?}");
        }
    }

    #[test]
    fn report_hints() {
        use crate::qualys::report::QualysError;
        let failure = |error| Failure::Report {
            path: PathBuf::from("r.xml"),
            location: Location::default(),
            error: Box::new(error),
        };
        let qualys = |code: &str, item: &str| {
            ReportError::Qualys(QualysError {
                root: "SIMPLE_RETURN".into(),
                code: Some(code.into()),
                text: "x".into(),
                items: vec![item.into()],
            })
        };
        let cases = [
            (qualys("2010", ""), Some("single quotes")),
            (qualys("2000", ""), Some("platform")),
            (
                qualys("999", "Tried to launch invalid report."),
                Some("template_id"),
            ),
            (qualys("999", "something else"), None),
            (
                ReportError::ApiReply(QualysError::default()),
                Some("ASSET_DATA_REPORT of a scan report template"),
            ),
            (
                ReportError::Unsupported {
                    root: "WAS_SCAN_REPORT".into(),
                    what: "w",
                    hint: "",
                },
                Some("ASSET_DATA_REPORT of a scan report template"),
            ),
            (ReportError::Empty, None),
        ];
        for (error, want) in cases {
            let hint = failure(error).hint();
            match want {
                Some(w) => assert!(hint.as_deref().unwrap_or("").contains(w), "{hint:?}"),
                None => assert!(hint.is_none(), "{hint:?}"),
            }
        }
    }
}
