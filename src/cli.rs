//! The command line, parsed the way the original Perl connector's Getopt::Long (default
//! configuration: auto_abbrev, ignore_case, permute) parsed it, so that existing cron
//! entries keep working unchanged. `OPTIONS` is the single source of truth: the parser, the
//! `--help` text and the README's option table are all generated from it.

use std::ffi::OsString;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use crate::secret::Secret;

/// The program name shown in usage and version lines (not argv[0], which cron may mangle).
pub const PROGRAM: &str = "qualys-connector";

const DEFAULT_PORT: u16 = 8307;
const DEFAULT_LEVEL: u8 = 2;
pub const DEFAULT_PLUGININFO: &str = "InputPlugins/QualysGuard.yaml";

const PORT_RANGE: RangeInclusive<i64> = 1..=65535;
const PORT_EXPECTED: &str = "a port number from 1 to 65535";
const LEVEL_RANGE: RangeInclusive<i64> = 0..=3;
const HOSTS_RANGE: RangeInclusive<i64> = 1..=10_000_000;
const HOSTS_EXPECTED: &str = "a number of hosts from 1 to 10000000";
const LEVEL_EXPECTED: &str = "a log level from 0 to 3 (0 error, 1 warning, 2 info, 3 debug)";

/// Which option a table row describes; lets the parser match exhaustively instead of on
/// name strings, so a new row without a parser arm does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptId {
    Server,
    Port,
    PluginInfo,
    Ipv6,
    Pkcs12,
    Password,
    Syslog,
    Stderr,
    Logfile,
    Level,
    Csvfile,
    Report,
    MultiInfo,
    SummaryJson,
    Full,
    DeltaCsv,
    Hosts,
    Help,
    Version,
}

/// What an option takes after its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Takes no value; giving one (`-ipv6=1`) is an error.
    Flag,
    /// Takes any string, verbatim.
    Text,
    /// Takes a decimal integer, range-checked per option.
    Integer,
}

/// One row of the option table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptSpec {
    pub id: OptId,
    /// The full name, lowercase ASCII.
    pub name: &'static str,
    /// The abbreviation documented in Cisco's guide, if any. Documentation only: the parser
    /// accepts every unique prefix, and a test pins these to their options.
    pub abbrev: Option<&'static str>,
    pub value: ValueKind,
    /// Placeholder for the value in help text, e.g. `<host>`; empty for flags.
    pub value_name: &'static str,
    /// The default as shown to users (may be prose, e.g. for `pkcs12`).
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// The option table, in the order of the original guide followed by our additions.
pub const OPTIONS: &[OptSpec] = &[
    OptSpec {
        id: OptId::Server,
        name: "server",
        abbrev: Some("se"),
        value: ValueKind::Text,
        value_name: "<host>",
        default: None,
        help: "The Management Center's IP address or host name.",
    },
    OptSpec {
        id: OptId::Port,
        name: "port",
        abbrev: Some("po"),
        value: ValueKind::Integer,
        value_name: "<port>",
        default: Some("8307"),
        help: "The server port to connect to.",
    },
    OptSpec {
        id: OptId::PluginInfo,
        name: "plugininfo",
        abbrev: Some("pl"),
        value: ValueKind::Text,
        value_name: "<file>",
        default: Some(DEFAULT_PLUGININFO),
        help: "The YAML file with the plugin's configuration.",
    },
    OptSpec {
        id: OptId::Ipv6,
        name: "ipv6",
        abbrev: Some("i"),
        value: ValueKind::Flag,
        value_name: "",
        default: Some("off"),
        help: "Connect to the Management Center over IPv6.",
    },
    OptSpec {
        id: OptId::Pkcs12,
        name: "pkcs12",
        abbrev: Some("pk"),
        value: ValueKind::Text,
        value_name: "<file>",
        default: Some("first *.pkcs12 file in the current directory"),
        help: "Certificate file for Host Input authentication.",
    },
    OptSpec {
        id: OptId::Password,
        name: "password",
        abbrev: Some("pa"),
        value: ValueKind::Text,
        value_name: "<password>",
        default: None,
        help: "Password for the .pkcs12 file; the PKCS12_PASSWORD environment variable is used when this is not given.",
    },
    OptSpec {
        id: OptId::Syslog,
        name: "syslog",
        abbrev: Some("sy"),
        value: ValueKind::Flag,
        value_name: "",
        default: Some("off"),
        help: "Log to the local syslog (falls back to standard error when /dev/log is missing).",
    },
    OptSpec {
        id: OptId::Stderr,
        name: "stderr",
        abbrev: Some("st"),
        value: ValueKind::Flag,
        value_name: "",
        default: Some("off"),
        help: "Log to standard error.",
    },
    OptSpec {
        id: OptId::Logfile,
        name: "logfile",
        abbrev: Some("lo"),
        value: ValueKind::Text,
        value_name: "<file>",
        default: None,
        help: "Append the log to this file. Any of -syslog, -stderr, -logfile replaces logging to standard output.",
    },
    OptSpec {
        id: OptId::Level,
        name: "level",
        abbrev: Some("le"),
        value: ValueKind::Integer,
        value_name: "<level>",
        default: Some("2"),
        help: "Log level: 0 error, 1 warning, 2 info, 3 debug.",
    },
    OptSpec {
        id: OptId::Csvfile,
        name: "csvfile",
        abbrev: Some("c"),
        value: ValueKind::Text,
        value_name: "<file>",
        default: None,
        help: "Write the commands to this file instead of sending them; -server is then ignored.",
    },
    OptSpec {
        id: OptId::Report,
        name: "report",
        abbrev: None,
        value: ValueKind::Text,
        value_name: "<file>",
        default: None,
        help: "Read the Qualys report from this file instead of downloading it.",
    },
    OptSpec {
        id: OptId::MultiInfo,
        name: "multiinfo",
        abbrev: None,
        value: ValueKind::Text,
        value_name: "<id,id,...>",
        default: None,
        help: "Process these report templates in turn (comma-separated IDs, no spaces) instead of template_id; with -csvfile each file name gets the template ID in front (424242_Output.csv).",
    },
    OptSpec {
        id: OptId::SummaryJson,
        name: "summary-json",
        abbrev: None,
        value: ValueKind::Text,
        value_name: "<file>",
        default: None,
        help: "Write the run's summary (counts, outcomes, durations) to this file as JSON, for schedulers.",
    },
    OptSpec {
        id: OptId::Full,
        name: "full",
        abbrev: None,
        value: ValueKind::Flag,
        value_name: "",
        default: Some("off"),
        help: "With sync_state: send every host (a full sync) and replace the state; also lets vanished_hosts: clear clear more than max_vanished_percent.",
    },
    OptSpec {
        id: OptId::DeltaCsv,
        name: "delta-csv",
        abbrev: None,
        value: ValueKind::Text,
        value_name: "<file>",
        default: None,
        help: "With sync_state, -server and -pkcs12 naming the destination: write only what a delta run would send to this file; nothing is sent and the state is not changed.",
    },
    OptSpec {
        id: OptId::Hosts,
        name: "hosts",
        abbrev: None,
        value: ValueKind::Integer,
        value_name: "<n>",
        default: Some("1000"),
        help: "demo only: the number of hosts in the generated report.",
    },
    OptSpec {
        id: OptId::Help,
        name: "help",
        abbrev: None,
        value: ValueKind::Flag,
        value_name: "",
        default: None,
        help: "Print the full option table and exit.",
    },
    OptSpec {
        id: OptId::Version,
        name: "version",
        abbrev: None,
        value: ValueKind::Flag,
        value_name: "",
        default: None,
        help: "Print the version line and exit.",
    },
];

/// The input plugins this build knows; the positional argument selects one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plugin {
    /// Download (or read with -report) a Qualys report and convert it.
    #[default]
    QualysGuard,
    /// Cisco's SDK plugin: validate and send an existing command file (-plugininfo).
    Csv,
    /// Check the installation (configuration, certificate, Qualys, FMC) sending no data.
    Check,
    /// Run the whole job against built-in simulators of Qualys and an FMC.
    Demo,
}

impl Plugin {
    /// Every plugin, in the order help lists them.
    pub const ALL: &'static [Plugin] = &[
        Plugin::QualysGuard,
        Plugin::Csv,
        Plugin::Check,
        Plugin::Demo,
    ];

    /// The name users type (matched case-insensitively).
    pub fn name(self) -> &'static str {
        match self {
            Plugin::QualysGuard => "QualysGuard",
            Plugin::Csv => "csv",
            Plugin::Check => "check",
            Plugin::Demo => "demo",
        }
    }

    /// One line for `--help`.
    pub fn description(self) -> &'static str {
        match self {
            Plugin::QualysGuard => {
                "download (or read with -report) a Qualys report and send or write its commands"
            }
            Plugin::Csv => {
                "validate a command file (-plugininfo=FILE) and send it to the FMC (-server)"
            }
            Plugin::Check => {
                "check the configuration, certificate, Qualys login and FMC connection, sending no data"
            }
            Plugin::Demo => {
                "run the whole job against built-in Qualys and FMC simulators on loopback (-hosts N)"
            }
        }
    }

    /// The plugin called `name`, in any case.
    pub fn from_name(name: &str) -> Option<Plugin> {
        Self::ALL
            .iter()
            .copied()
            .find(|plugin| plugin.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The parsed command line. `Debug` is safe to log: the password is a `Secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub server: Option<String>,
    pub port: u16,
    pub plugininfo: PathBuf,
    pub ipv6: bool,
    /// `None` means "search the current directory", which is the caller's job.
    pub pkcs12: Option<PathBuf>,
    pub password: Option<Secret>,
    pub syslog: bool,
    pub stderr: bool,
    pub logfile: Option<PathBuf>,
    pub level: u8,
    pub csvfile: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// `-multiinfo`: template IDs, validated (digits, no spaces, no duplicates).
    pub multiinfo: Option<Vec<String>>,
    pub summary_json: Option<PathBuf>,
    /// `-full`: a full sync (src/sync).
    pub full: bool,
    /// `-delta-csv`: a preview of the delta run, to this file.
    pub delta_csv: Option<PathBuf>,
    /// `-hosts` for `demo`.
    pub hosts: Option<u64>,
    pub help: bool,
    pub version: bool,
    pub plugin: Plugin,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server: None,
            port: DEFAULT_PORT,
            plugininfo: PathBuf::from(DEFAULT_PLUGININFO),
            ipv6: false,
            pkcs12: None,
            password: None,
            syslog: false,
            stderr: false,
            logfile: None,
            level: DEFAULT_LEVEL,
            csvfile: None,
            report: None,
            multiinfo: None,
            summary_json: None,
            full: false,
            delta_csv: None,
            hosts: None,
            help: false,
            version: false,
            plugin: Plugin::default(),
        }
    }
}

/// A command line the connector cannot run with. Each message is one line and never
/// contains an option's value unless that value is the problem (a bad integer, a plugin
/// name); text after `=` in an unrecognised option is dropped, since it may be a password.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("argument {position} is not valid UTF-8")]
    NotUtf8 { position: usize },
    #[error("unknown option {}; run with --help for the list of options", .option.escape_debug())]
    UnknownOption { option: String },
    #[error("option {} is ambiguous ({})", .option.escape_debug(), .candidates.join(", "))]
    AmbiguousOption {
        option: String,
        candidates: Vec<&'static str>,
    },
    #[error("option -{option} requires a value")]
    MissingValue { option: &'static str },
    #[error("option -{option} does not take a value")]
    FlagWithValue { option: &'static str },
    #[error("invalid value {value:?} for option -{option}: expected {expected}")]
    BadInteger {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown plugin {name:?}; known plugins: {}", plugin_names())]
    UnknownPlugin { name: String },
    #[error("unexpected extra argument {argument:?}; only one plugin name may be given")]
    ExtraArgument { argument: String },
    #[error(
        "invalid -multiinfo {value:?}: {reason} (expected template IDs separated by commas, without spaces, e.g. 424242,535353)"
    )]
    BadTemplateList { value: String, reason: String },
}

/// Parses the arguments (without argv[0]).
pub fn parse(argv: &[OsString]) -> Result<Args, UsageError> {
    let mut words = utf8_words(argv)?.into_iter();
    let mut args = Args::default();
    let mut plugin = None;
    while let Some(word) = words.next() {
        match classify(word) {
            Word::EndOfOptions => {
                for rest in words.by_ref() {
                    choose_plugin(&mut plugin, rest)?;
                }
            }
            Word::Positional(name) => choose_plugin(&mut plugin, name)?,
            Word::Option {
                dashes,
                name,
                inline,
            } => {
                let spec = resolve(OPTIONS, dashes, name)?;
                let value = take_value(spec, inline, &mut words)?;
                apply(&mut args, spec, value)?;
            }
        }
    }
    args.plugin = plugin.unwrap_or_default();
    Ok(args)
}

/// The version line for `--version`.
/// The guide's "Checking the Version": `qualys_connector.pl Ver. 1.0.0-30` in the original.
pub fn version_line() -> String {
    format!("{PROGRAM} Ver. {}", env!("CARGO_PKG_VERSION"))
}

/// The short usage shown after a usage error: every option's spelling, no descriptions.
pub fn usage_summary() -> String {
    let mut out = format!("Usage: {PROGRAM} [options] [plugin]\n");
    for spec in OPTIONS {
        out.push_str(&format!("  {}\n", synopsis(spec)));
    }
    out.push_str("Run with --help for the full option table.\n");
    out
}

/// The full `--help` text: every option with abbreviation, value, default and description,
/// then the plugins.
pub fn help_text() -> String {
    let mut out = format!("Usage: {PROGRAM} [options] [plugin]\n\n");
    out.push_str(
        "Options start with - or --, take a value as -option=value or -option value,\n\
         and may be shortened to any unique prefix, in any case.\n\n",
    );
    for spec in OPTIONS {
        out.push_str(&format!("  {}\n      {}\n", synopsis(spec), spec.help));
        // No full stop after the default: it is often a path users copy.
        let default = default_text(spec);
        if !default.is_empty() {
            out.push_str(&format!("      Default: {default}\n"));
        }
    }
    out.push_str(&format!(
        "\nPlugins (the optional positional argument, in any case; default {}):\n",
        Plugin::default()
    ));
    for plugin in Plugin::ALL {
        out.push_str(&format!(
            "  {:<12} {}\n",
            plugin.name(),
            plugin.description()
        ));
    }
    out
}

/// The option table as Markdown, for the README (which embeds it verbatim; a test there
/// keeps the two identical).
pub fn option_table_markdown() -> String {
    let mut out = String::from(
        "| Option | Abbreviation | Value | Default | Description |\n|---|---|---|---|---|\n",
    );
    for spec in OPTIONS {
        let row = [
            code(&format!("-{}", spec.name)),
            spec.abbrev
                .map(|a| code(&format!("-{a}")))
                .unwrap_or_default(),
            code(spec.value_name),
            markdown_escape(default_text(spec)),
            markdown_escape(spec.help),
        ];
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// How one command-line word reads before the option table is consulted.
#[derive(Debug, PartialEq, Eq)]
enum Word<'a> {
    EndOfOptions,
    Positional(&'a str),
    Option {
        dashes: &'static str,
        name: &'a str,
        inline: Option<&'a str>,
    },
}

fn utf8_words(argv: &[OsString]) -> Result<Vec<&str>, UsageError> {
    argv.iter()
        .enumerate()
        .map(|(index, arg)| {
            arg.to_str().ok_or(UsageError::NotUtf8 {
                position: index + 1,
            })
        })
        .collect()
}

/// Getopt::Long without bundling: `-abc` and `--abc` are both the option `abc`, a lone `-`
/// is a positional (conventionally stdin), and `--` ends the options.
fn classify(word: &str) -> Word<'_> {
    if word == "--" {
        return Word::EndOfOptions;
    }
    let (dashes, body) = if let Some(body) = word.strip_prefix("--") {
        ("--", body)
    } else if let Some(body) = word.strip_prefix('-') {
        ("-", body)
    } else {
        return Word::Positional(word);
    };
    if body.is_empty() {
        return Word::Positional(word);
    }
    let (name, inline) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    };
    Word::Option {
        dashes,
        name,
        inline,
    }
}

/// Finds the option `name` names: an exact match (in any case) first, so a full name is
/// never ambiguous, then a unique prefix. Takes the table so tests can exercise rules the
/// real table has no example of.
fn resolve<'t>(table: &'t [OptSpec], dashes: &str, name: &str) -> Result<&'t OptSpec, UsageError> {
    let wanted = name.to_ascii_lowercase();
    if let Some(spec) = table.iter().find(|spec| spec.name == wanted) {
        return Ok(spec);
    }
    let hits: Vec<&OptSpec> = if wanted.is_empty() {
        Vec::new()
    } else {
        table
            .iter()
            .filter(|spec| spec.name.starts_with(&wanted))
            .collect()
    };
    let option = format!("{dashes}{name}");
    match hits.as_slice() {
        [spec] => Ok(spec),
        [] => Err(UsageError::UnknownOption { option }),
        _ => Err(UsageError::AmbiguousOption {
            option,
            candidates: hits.iter().map(|spec| spec.name).collect(),
        }),
    }
}

/// The option's value: after `=`, or else the next word taken verbatim even if it starts
/// with `-` (Getopt::Long's mandatory values do this, so `-password -x1` works). Flags
/// get an empty value, which `apply` ignores.
fn take_value<'a>(
    spec: &OptSpec,
    inline: Option<&'a str>,
    rest: &mut impl Iterator<Item = &'a str>,
) -> Result<&'a str, UsageError> {
    match (spec.value, inline) {
        (ValueKind::Flag, None) => Ok(""),
        (ValueKind::Flag, Some(_)) => Err(UsageError::FlagWithValue { option: spec.name }),
        (ValueKind::Text | ValueKind::Integer, Some(value)) => Ok(value),
        (ValueKind::Text | ValueKind::Integer, None) => rest
            .next()
            .ok_or(UsageError::MissingValue { option: spec.name }),
    }
}

/// Stores one option; a repeated option simply overwrites, so the last one wins.
fn apply(args: &mut Args, spec: &OptSpec, value: &str) -> Result<(), UsageError> {
    match spec.id {
        OptId::Server => args.server = Some(value.to_owned()),
        OptId::Port => args.port = bounded(spec, value, PORT_RANGE, PORT_EXPECTED)?,
        OptId::PluginInfo => args.plugininfo = PathBuf::from(value),
        OptId::Ipv6 => args.ipv6 = true,
        OptId::Pkcs12 => args.pkcs12 = Some(PathBuf::from(value)),
        OptId::Password => args.password = Some(Secret::new(value)),
        OptId::Syslog => args.syslog = true,
        OptId::Stderr => args.stderr = true,
        OptId::Logfile => args.logfile = Some(PathBuf::from(value)),
        OptId::Level => args.level = bounded(spec, value, LEVEL_RANGE, LEVEL_EXPECTED)?,
        OptId::Csvfile => args.csvfile = Some(PathBuf::from(value)),
        OptId::Report => args.report = Some(PathBuf::from(value)),
        OptId::MultiInfo => args.multiinfo = Some(template_ids(value)?),
        OptId::SummaryJson => args.summary_json = Some(PathBuf::from(value)),
        OptId::Full => args.full = true,
        OptId::DeltaCsv => args.delta_csv = Some(PathBuf::from(value)),
        OptId::Hosts => args.hosts = Some(bounded(spec, value, HOSTS_RANGE, HOSTS_EXPECTED)?),
        OptId::Help => args.help = true,
        OptId::Version => args.version = true,
    }
    Ok(())
}

/// The guide: "the template IDs are separated by commas, but the list of IDs must not
/// contain any spaces".
fn template_ids(value: &str) -> Result<Vec<String>, UsageError> {
    let bad = |reason: String| UsageError::BadTemplateList {
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("no template ID".into()));
    }
    if value.contains(char::is_whitespace) {
        return Err(bad("it contains a space".into()));
    }
    let mut ids: Vec<String> = Vec::new();
    for id in value.split(',') {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{id:?} is not a template ID")));
        }
        if ids.iter().any(|seen| seen == id) {
            return Err(bad(format!("{id} is listed twice")));
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

fn bounded<T: TryFrom<i64>>(
    spec: &OptSpec,
    value: &str,
    range: RangeInclusive<i64>,
    expected: &'static str,
) -> Result<T, UsageError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|number| range.contains(number))
        .and_then(|number| T::try_from(number).ok())
        .ok_or_else(|| UsageError::BadInteger {
            option: spec.name,
            value: value.to_owned(),
            expected,
        })
}

fn choose_plugin(chosen: &mut Option<Plugin>, name: &str) -> Result<(), UsageError> {
    if chosen.is_some() {
        return Err(UsageError::ExtraArgument {
            argument: name.to_owned(),
        });
    }
    let plugin = Plugin::from_name(name).ok_or_else(|| UsageError::UnknownPlugin {
        name: name.to_owned(),
    })?;
    *chosen = Some(plugin);
    Ok(())
}

fn plugin_names() -> String {
    Plugin::ALL
        .iter()
        .map(|plugin| plugin.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `-server, -se <host>`: how an option may be written.
fn synopsis(spec: &OptSpec) -> String {
    let mut out = format!("-{}", spec.name);
    if let Some(abbrev) = spec.abbrev {
        out.push_str(&format!(", -{abbrev}"));
    }
    if !spec.value_name.is_empty() {
        out.push_str(&format!(" {}", spec.value_name));
    }
    out
}

/// The default as shown to users: value options without one say so; `--help` and
/// `--version` are actions, so a default would be noise.
fn default_text(spec: &OptSpec) -> &'static str {
    match (spec.default, spec.value) {
        (Some(default), _) => default,
        (None, ValueKind::Flag) => "",
        (None, ValueKind::Text | ValueKind::Integer) => "none",
    }
}

fn code(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("`{text}`")
    }
}

/// Escapes what Markdown would otherwise read as table syntax, emphasis or HTML.
fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '|' | '*' | '_' | '`' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What is wrong with `-server=<server>` (with or without `-ipv6`), said so that the
/// operator knows how to write it; `None` when it is a host name, an IPv4 address, or an
/// IPv6 address given with `-ipv6`. Checked before anything else is done, so a typo is
/// not found only after the whole report was parsed. The port and the address family
/// have options of their own (`-port`, `-ipv6`, host-input.md §2).
pub fn server_problem(server: &str, ipv6: bool) -> Option<String> {
    let shown = server.escape_debug();
    let fault = |what: &str| Some(format!("-server=\"{shown}\": {what}"));
    if server.trim().is_empty() {
        return Some("-server needs the FMC's host name or IP address".into());
    }
    if server.contains("://") {
        return fault(
            "give only the FMC's host name or IP address, without http:// or another scheme (the port goes in -port)",
        );
    }
    if server.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fault(
            "contains spaces or control characters; give only the host name or IP address",
        );
    }
    if server.starts_with('[') {
        return fault(
            "write an IPv6 address without brackets and add -ipv6 (e.g. -server=2001:db8::1 -ipv6), and the port with -port",
        );
    }
    if let Ok(addr) = server.parse::<std::net::Ipv6Addr>() {
        return (!ipv6).then(|| {
            format!(
                "-server=\"{shown}\" is an IPv6 address ({addr}): add -ipv6 to connect over IPv6"
            )
        });
    }
    if let Some((host, port)) = server.rsplit_once(':') {
        return if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            fault(&format!(
                "give the port with -port, not in -server (e.g. -server={} -port={port})",
                host.escape_debug()
            ))
        } else {
            fault("is neither a host name nor an IP address")
        };
    }
    if server.parse::<std::net::Ipv4Addr>().is_ok() {
        return ipv6.then(|| {
            format!("-server=\"{shown}\" is an IPv4 address: drop -ipv6 to connect over IPv4")
        });
    }
    if !is_host_name(server) {
        return fault(
            "is neither a host name nor an IP address (letters, digits, '-' and '.' only)",
        );
    }
    None
}

/// RFC 1123 host names (labels of letters, digits and inner hyphens, up to 63 bytes,
/// 253 in all, an optional final dot); underscores too, as some internal DNS allows.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(argv: &[&str]) -> Vec<OsString> {
        argv.iter().map(OsString::from).collect()
    }

    fn parse_strs(argv: &[&str]) -> Result<Args, UsageError> {
        parse(&os(argv))
    }

    fn secret(value: &str) -> Option<Secret> {
        Some(Secret::new(value))
    }

    fn path(value: &str) -> Option<PathBuf> {
        Some(PathBuf::from(value))
    }

    /// argv → the change from `Args::default()` it must make.
    type ParseCase = (&'static [&'static str], fn(&mut Args));

    const PARSE_CASES: &[ParseCase] = &[
        (&["-multiinfo", "424242,535353"], |a| {
            a.multiinfo = Some(vec!["424242".into(), "535353".into()])
        }),
        (&["-multiinfo=424242"], |a| {
            a.multiinfo = Some(vec!["424242".into()])
        }),
        (&["-full"], |a| a.full = true),
        (&["-delta-csv=delta.csv"], |a| {
            a.delta_csv = Some(PathBuf::from("delta.csv"))
        }),
        (&["--summary-json=run.json"], |a| {
            a.summary_json = Some(PathBuf::from("run.json"))
        }),
        (&["-su", "run.json"], |a| {
            a.summary_json = Some(PathBuf::from("run.json"))
        }),
        // Nothing given: every default.
        (&[], |_| {}),
        // Full names, one or two dashes, `=` or space.
        (&["-server=fmc"], |a| a.server = Some("fmc".into())),
        (&["--server=fmc"], |a| a.server = Some("fmc".into())),
        (&["-server", "fmc"], |a| a.server = Some("fmc".into())),
        (&["--server", "fmc"], |a| a.server = Some("fmc".into())),
        // Value split at the first `=` only.
        (&["-server=a=b"], |a| a.server = Some("a=b".into())),
        // Prefixes and case.
        (&["-SE", "fmc"], |a| a.server = Some("fmc".into())),
        (&["-serv=fmc"], |a| a.server = Some("fmc".into())),
        (&["--Server=fmc"], |a| a.server = Some("fmc".into())),
        (&["-C=out.csv"], |a| a.csvfile = path("out.csv")),
        (&["-csv", "out.csv"], |a| a.csvfile = path("out.csv")),
        (&["-I"], |a| a.ipv6 = true),
        (&["-r", "report.xml"], |a| a.report = path("report.xml")),
        (&["-he"], |a| a.help = true),
        (&["-hosts=200", "demo"], |a| {
            a.hosts = Some(200);
            a.plugin = Plugin::Demo;
        }),
        (&["--v"], |a| a.version = true),
        // Every option once, by its full name.
        (&["-port", "443"], |a| a.port = 443),
        (&["-plugininfo", "my.yaml"], |a| {
            a.plugininfo = "my.yaml".into()
        }),
        (&["-ipv6"], |a| a.ipv6 = true),
        (&["-pkcs12", "fmc.pkcs12"], |a| {
            a.pkcs12 = path("fmc.pkcs12")
        }),
        (&["-password", "s3cret"], |a| a.password = secret("s3cret")),
        (&["-syslog"], |a| a.syslog = true),
        (&["-stderr"], |a| a.stderr = true),
        (&["-logfile", "c.log"], |a| a.logfile = path("c.log")),
        (&["-level", "3"], |a| a.level = 3),
        (&["-report=r.xml"], |a| a.report = path("r.xml")),
        (&["--help"], |a| a.help = true),
        (&["--version"], |a| a.version = true),
        // Values are taken verbatim, even when they look like options.
        (&["-password", "-x1"], |a| a.password = secret("-x1")),
        (&["-pa=-x1"], |a| a.password = secret("-x1")),
        (&["-server", "--"], |a| a.server = Some("--".into())),
        (&["-logfile", "-"], |a| a.logfile = path("-")),
        (&["-pa="], |a| a.password = secret("")),
        (&["-server="], |a| a.server = Some(String::new())),
        // Integer bounds and spellings.
        (&["-port=1"], |a| a.port = 1),
        (&["-port=65535"], |a| a.port = 65535),
        (&["-po", "+443"], |a| a.port = 443),
        (&["-level=0"], |a| a.level = 0),
        // Positionals anywhere, in any case.
        (&["QualysGuard"], |a| a.plugin = Plugin::QualysGuard),
        (&["qualysguard", "-st"], |a| a.stderr = true),
        (&["-st", "QUALYSGUARD", "-sy"], |a| {
            a.stderr = true;
            a.syslog = true;
        }),
        (&["-se", "fmc", "qualysguard", "-po", "9"], |a| {
            a.server = Some("fmc".into());
            a.port = 9;
        }),
        // `--` ends options; what follows is positional even if it looks like an option.
        (&["-st", "--", "QualysGuard"], |a| a.stderr = true),
        (&["--"], |_| {}),
        // Last one wins.
        (&["-po=1", "-port", "2", "--PO=3"], |a| a.port = 3),
        (&["-se", "a", "-server=b"], |a| a.server = Some("b".into())),
        (&["-pa", "one", "-pa", "two"], |a| {
            a.password = secret("two")
        }),
        (&["-i", "-ipv6"], |a| a.ipv6 = true),
        // A realistic cron line from the guide.
        (
            &[
                "-se", "10.1.1.1", "-pk", "c.pkcs12", "-pa", "pw", "-lo", "q.log", "-le", "3",
            ],
            |a| {
                a.server = Some("10.1.1.1".into());
                a.pkcs12 = path("c.pkcs12");
                a.password = secret("pw");
                a.logfile = path("q.log");
                a.level = 3;
            },
        ),
    ];

    #[test]
    fn parses_valid_command_lines() {
        for (argv, change) in PARSE_CASES {
            let mut expected = Args::default();
            change(&mut expected);
            match parse_strs(argv) {
                Ok(args) => assert!(
                    args == expected,
                    "{argv:?}: got {args:?}, want {expected:?} (passwords compare hidden)"
                ),
                Err(err) => panic!("{argv:?}: unexpected error: {err}"),
            }
        }
    }

    const ERROR_CASES: &[(&[&str], &str)] = &[
        (
            &["-p", "1"],
            "option -p is ambiguous (port, plugininfo, pkcs12, password)",
        ),
        (
            &["--P=1"],
            "option --P is ambiguous (port, plugininfo, pkcs12, password)",
        ),
        (
            &["-s"],
            "option -s is ambiguous (server, syslog, stderr, summary-json)",
        ),
        (
            &["-multiinfo", "424242, 535353"],
            "invalid -multiinfo \"424242, 535353\": it contains a space (expected template IDs separated by commas, without spaces, e.g. 424242,535353)",
        ),
        (
            &["-multiinfo=424242,,1"],
            "invalid -multiinfo \"424242,,1\": \"\" is not a template ID (expected template IDs separated by commas, without spaces, e.g. 424242,535353)",
        ),
        (
            &["-m=1,abc"],
            "invalid -multiinfo \"1,abc\": \"abc\" is not a template ID (expected template IDs separated by commas, without spaces, e.g. 424242,535353)",
        ),
        (
            &["-multiinfo", "7,7"],
            "invalid -multiinfo \"7,7\": 7 is listed twice (expected template IDs separated by commas, without spaces, e.g. 424242,535353)",
        ),
        (&["-l", "x"], "option -l is ambiguous (logfile, level)"),
        (
            &["-bogus"],
            "unknown option -bogus; run with --help for the list of options",
        ),
        (
            &["--servers=x"],
            "unknown option --servers; run with --help for the list of options",
        ),
        // No bundling: `-is` is not `-i -s`.
        (
            &["-is"],
            "unknown option -is; run with --help for the list of options",
        ),
        (
            &["-=x"],
            "unknown option -; run with --help for the list of options",
        ),
        (&["-server"], "option -server requires a value"),
        (&["-st", "-pa"], "option -password requires a value"),
        (&["-ipv6=1"], "option -ipv6 does not take a value"),
        (&["--sy="], "option -syslog does not take a value"),
        (
            &["-port", "0"],
            "invalid value \"0\" for option -port: expected a port number from 1 to 65535",
        ),
        (
            &["-port=65536"],
            "invalid value \"65536\" for option -port: expected a port number from 1 to 65535",
        ),
        (
            &["-po", "http"],
            "invalid value \"http\" for option -port: expected a port number from 1 to 65535",
        ),
        (
            &["-po="],
            "invalid value \"\" for option -port: expected a port number from 1 to 65535",
        ),
        (
            &["-po", "-1"],
            "invalid value \"-1\" for option -port: expected a port number from 1 to 65535",
        ),
        (
            &["-level", "4"],
            "invalid value \"4\" for option -level: \
             expected a log level from 0 to 3 (0 error, 1 warning, 2 info, 3 debug)",
        ),
        (
            &["-le=debug"],
            "invalid value \"debug\" for option -level: \
             expected a log level from 0 to 3 (0 error, 1 warning, 2 info, 3 debug)",
        ),
        (
            &["Nessus"],
            "unknown plugin \"Nessus\"; known plugins: QualysGuard, csv, check, demo",
        ),
        (
            &["-"],
            "unknown plugin \"-\"; known plugins: QualysGuard, csv, check, demo",
        ),
        (
            &["--", "-st"],
            "unknown plugin \"-st\"; known plugins: QualysGuard, csv, check, demo",
        ),
        (
            &["QualysGuard", "-st", "extra"],
            "unexpected extra argument \"extra\"; only one plugin name may be given",
        ),
        (
            &["--", "qualysguard", "QualysGuard"],
            "unexpected extra argument \"QualysGuard\"; only one plugin name may be given",
        ),
    ];

    #[test]
    fn rejects_bad_command_lines_with_clear_messages() {
        for (argv, message) in ERROR_CASES {
            match parse_strs(argv) {
                Ok(args) => panic!("{argv:?}: expected an error, got {args:?}"),
                Err(err) => assert_eq!(err.to_string(), *message, "{argv:?}"),
            }
        }
    }

    #[test]
    fn ambiguity_lists_candidates_in_table_order() {
        match parse_strs(&["-p"]) {
            Err(UsageError::AmbiguousOption { candidates, .. }) => {
                assert_eq!(candidates, ["port", "plugininfo", "pkcs12", "password"]);
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_argument_is_named_by_position() {
        use std::os::unix::ffi::OsStringExt;
        let argv = vec![OsString::from("-pk"), OsString::from_vec(vec![b'c', 0xff])];
        let err = parse(&argv).map(|_| ()).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("argument 2 is not valid UTF-8"));
    }

    #[test]
    fn password_never_appears_in_errors_or_debug() {
        let password = "hunter2-XYZ";
        let with_equals = format!("--passwd={password}");
        let error_lines: [&[&str]; 3] = [
            &["-pa", password, "-bogus"],
            &[with_equals.as_str()],
            &[&format!("-p={password}")],
        ];
        for argv in error_lines {
            let message = parse_strs(argv).map(|_| ()).err().map(|e| e.to_string());
            let message = message.unwrap_or_default();
            assert!(!message.is_empty(), "{argv:?} should fail");
            assert!(!message.contains(password), "{argv:?} leaked: {message}");
        }
        let args = parse_strs(&["-pa", password]).map(|args| format!("{args:?}"));
        let debug = args.unwrap_or_default();
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains(password), "{debug}");
    }

    /// Cisco's guide documents these abbreviations, and cron lines in the field use them.
    /// They must resolve to the same options forever: if a new option makes one ambiguous,
    /// this test fails and the new option needs another name.
    const GUIDE_ABBREVIATIONS: &[(&str, &str)] = &[
        ("se", "server"),
        ("po", "port"),
        ("pl", "plugininfo"),
        ("i", "ipv6"),
        ("pk", "pkcs12"),
        ("pa", "password"),
        ("sy", "syslog"),
        ("st", "stderr"),
        ("lo", "logfile"),
        ("le", "level"),
        ("c", "csvfile"),
    ];

    fn resolved_name(typed: &str) -> Result<&'static str, String> {
        resolve(OPTIONS, "-", typed)
            .map(|spec| spec.name)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn guide_abbreviations_are_a_contract() {
        for (abbrev, name) in GUIDE_ABBREVIATIONS {
            let upper = abbrev.to_ascii_uppercase();
            let upper_name = name.to_ascii_uppercase();
            for typed in [*abbrev, upper.as_str(), *name, upper_name.as_str()] {
                assert_eq!(resolved_name(typed), Ok(*name), "-{typed}");
            }
        }
    }

    #[test]
    fn table_declares_exactly_the_guide_abbreviations() {
        for spec in OPTIONS {
            let guide = GUIDE_ABBREVIATIONS
                .iter()
                .find(|(_, name)| *name == spec.name)
                .map(|(abbrev, _)| *abbrev);
            assert_eq!(spec.abbrev, guide, "{}", spec.name);
        }
    }

    #[test]
    fn every_full_name_resolves_to_itself() {
        for spec in OPTIONS {
            assert_eq!(resolved_name(spec.name), Ok(spec.name));
        }
    }

    #[test]
    fn exact_name_beats_longer_name_it_prefixes() {
        // The real table has no such pair yet; a future one must not break the shorter name.
        let text = |id, name| OptSpec {
            id,
            name,
            abbrev: None,
            value: ValueKind::Text,
            value_name: "<x>",
            default: None,
            help: "",
        };
        let table = [text(OptId::Port, "port"), text(OptId::Report, "portal")];
        let name = |typed| {
            resolve(&table, "-", typed)
                .map(|spec| spec.name)
                .map_err(|err| err.to_string())
        };
        assert_eq!(name("port"), Ok("port"));
        assert_eq!(name("PORT"), Ok("port"));
        assert_eq!(name("porta"), Ok("portal"));
        assert_eq!(
            name("por"),
            Err("option -por is ambiguous (port, portal)".to_owned())
        );
    }

    #[test]
    fn table_is_in_guide_order_with_unique_lowercase_names() {
        let names: Vec<&str> = OPTIONS.iter().map(|spec| spec.name).collect();
        assert_eq!(
            names,
            [
                "server",
                "port",
                "plugininfo",
                "ipv6",
                "pkcs12",
                "password",
                "syslog",
                "stderr",
                "logfile",
                "level",
                "csvfile",
                "report",
                "multiinfo",
                "summary-json",
                "full",
                "delta-csv",
                "hosts",
                "help",
                "version"
            ]
        );
        for (i, spec) in OPTIONS.iter().enumerate() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(OPTIONS[..i].iter().all(|other| other.id != spec.id));
            assert_eq!(spec.value == ValueKind::Flag, spec.value_name.is_empty());
        }
    }

    #[test]
    fn value_kinds_match_the_parser() {
        // A flag accepts no value and needs none; a value option needs one. "1" is valid
        // for every value option, including both integers.
        for spec in OPTIONS {
            let bare = parse_strs(&[&format!("--{}", spec.name)]);
            let valued = parse_strs(&[&format!("--{}=1", spec.name)]);
            match spec.value {
                ValueKind::Flag => {
                    assert!(bare.is_ok(), "{}", spec.name);
                    assert!(
                        matches!(valued, Err(UsageError::FlagWithValue { .. })),
                        "{}",
                        spec.name
                    );
                }
                ValueKind::Text | ValueKind::Integer => {
                    assert!(
                        matches!(bare, Err(UsageError::MissingValue { .. })),
                        "{}",
                        spec.name
                    );
                    assert!(valued.is_ok(), "{}", spec.name);
                }
            }
        }
    }

    #[test]
    fn documented_defaults_match_args_default() {
        let args = Args::default();
        let documented = |name| {
            OPTIONS
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.default)
        };
        assert_eq!(documented("port"), Some(args.port.to_string().as_str()));
        assert_eq!(documented("level"), Some(args.level.to_string().as_str()));
        assert_eq!(
            documented("plugininfo").map(PathBuf::from),
            Some(args.plugininfo)
        );
        assert_eq!(args.plugin, Plugin::QualysGuard);
    }

    #[test]
    fn plugins_match_by_name_in_any_case() {
        for plugin in Plugin::ALL {
            let name = plugin.name();
            for typed in [
                name.to_owned(),
                name.to_ascii_lowercase(),
                name.to_ascii_uppercase(),
            ] {
                assert_eq!(Plugin::from_name(&typed), Some(*plugin), "{typed}");
            }
        }
        assert_eq!(Plugin::from_name("Qualys"), None);
    }

    #[test]
    fn help_and_markdown_mention_every_option_and_plugin() {
        let help = help_text();
        let markdown = option_table_markdown();
        for spec in OPTIONS {
            let synopsis = synopsis(spec);
            assert!(help.contains(&synopsis), "help lacks {synopsis}");
            assert!(help.contains(spec.help), "help lacks {}", spec.name);
            let row = format!("| `-{}` |", spec.name);
            assert!(markdown.contains(&row), "markdown lacks {}", spec.name);
        }
        for plugin in Plugin::ALL {
            assert!(help.contains(plugin.name()));
        }
        // Header, separator, one row per option.
        assert_eq!(markdown.lines().count(), OPTIONS.len() + 2);
    }

    #[test]
    fn markdown_rows_are_well_formed() {
        let markdown = option_table_markdown();
        let mut lines = markdown.lines();
        assert_eq!(
            lines.next(),
            Some("| Option | Abbreviation | Value | Default | Description |")
        );
        assert_eq!(lines.next(), Some("|---|---|---|---|---|"));
        assert_eq!(
            lines.next(),
            Some(
                "| `-server` | `-se` | `<host>` | none | \
                 The Management Center's IP address or host name. |"
            )
        );
        assert!(markdown.contains("| first \\*.pkcs12 file in the current directory |"));
        assert!(markdown.contains("| `-help` |  |  |  | Print the full option table and exit. |"));
    }

    #[test]
    fn usage_summary_lists_every_option_briefly() {
        let usage = usage_summary();
        let lines: Vec<&str> = usage.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"Usage: qualys-connector [options] [plugin]")
        );
        assert_eq!(
            lines.last(),
            Some(&"Run with --help for the full option table.")
        );
        assert_eq!(lines.len(), OPTIONS.len() + 2);
        assert!(lines.contains(&"  -server, -se <host>"));
        assert!(lines.contains(&"  -ipv6, -i"));
        assert!(lines.contains(&"  -report <file>"));
        assert!(!usage.contains(OPTIONS[0].help));
    }

    #[test]
    fn help_shows_defaults() {
        let help = help_text();
        let port =
            "  -port, -po <port>\n      The server port to connect to.\n      Default: 8307\n";
        assert!(help.contains(port), "{help}");
        // Actions have no default line.
        let help_flag = "  -help\n      Print the full option table and exit.\n  -version";
        assert!(help.contains(help_flag), "{help}");
    }

    #[test]
    fn classifies_words() {
        let cases: &[(&str, Word<'_>)] = &[
            ("--", Word::EndOfOptions),
            ("-", Word::Positional("-")),
            ("csv", Word::Positional("csv")),
            (
                "-a=b=c",
                Word::Option {
                    dashes: "-",
                    name: "a",
                    inline: Some("b=c"),
                },
            ),
            (
                "---x",
                Word::Option {
                    dashes: "--",
                    name: "-x",
                    inline: None,
                },
            ),
        ];
        for (word, expected) in cases {
            assert_eq!(&classify(word), expected, "{word}");
        }
    }

    #[test]
    fn version_line_names_the_program() {
        assert_eq!(
            version_line(),
            format!("qualys-connector Ver. {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn server_forms() {
        let valid: [(&str, bool); 7] = [
            ("fmc", false),
            ("fmc.example.com", false),
            ("fmc.example.com.", false),
            ("fmc_01.corp", false),
            ("192.0.2.10", false),
            ("::1", true),
            ("2001:db8::10", true),
        ];
        for (server, ipv6) in valid {
            assert_eq!(server_problem(server, ipv6), None, "{server} ipv6={ipv6}");
        }
        let invalid: [(&str, bool, &str); 12] = [
            ("", false, "needs the FMC's host name"),
            ("  ", false, "needs the FMC's host name"),
            ("127.0.0.1:8307", false, "-port=8307"),
            (
                "fmc.example.com:8307",
                false,
                "-server=fmc.example.com -port=8307",
            ),
            ("[::1]", true, "without brackets and add -ipv6"),
            ("[::1]:8307", false, "without brackets"),
            ("http://fmc.example.com", false, "without http://"),
            ("fmc example", false, "contains spaces"),
            ("fmc\u{0}", false, "control characters"),
            ("::1", false, "add -ipv6"),
            ("192.0.2.10", true, "drop -ipv6"),
            ("fmc/24", false, "neither a host name nor an IP address"),
        ];
        for (server, ipv6, want) in invalid {
            let problem = server_problem(server, ipv6).unwrap_or_default();
            assert!(problem.contains(want), "{server:?}: {problem}");
        }
    }
}
