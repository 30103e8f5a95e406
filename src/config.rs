//! Reads and validates the plugin configuration file, `InputPlugins/QualysGuard.yaml`
//! (named with `-plugininfo`).
//!
//! The file is a compatibility contract: the Perl connector read it with YAML::XS, so
//! every file that worked there (guide Table ii-2, ii-3, ii-4 and the guide's sample)
//! must load here with the same meaning. On top of that come a few new keys with
//! defaults (`source`, `scan_mode`, `include_types`, `description_length`) and secrets
//! from the environment (`QUALYS_PASSWORD`, `QUALYS_PROXY_PASSWORD`).
//!
//! The connector runs from cron, where nobody watches it, so everything is checked here,
//! at start-up: a bad value is an error naming file, line, column and key; nothing is
//! left to fail half way through a run. Secret values never appear in an error or a
//! warning.
//!
//! YAML is read with yaml-rust2's event parser rather than its `Yaml` tree because the
//! tree forgets positions and silently merges duplicate keys.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use crate::filter::IpRanges;
use crate::model::FindingType;
use crate::secret::Secret;

/// Where the connector looks when `-plugininfo` is not given (guide, `-plugininfo`).
pub const DEFAULT_PATH: &str = "InputPlugins/QualysGuard.yaml";
/// Guide Table ii-3: `url` "defaults to https://qualysapi.qualys.com".
pub const DEFAULT_URL: &str = "https://qualysapi.qualys.com";
/// The Host Input source / scanner name the Perl connector used.
pub const DEFAULT_SOURCE: &str = "QualysGuard";
pub const DEFAULT_DESCRIPTION_LENGTH: usize = 512;
pub const MAX_DESCRIPTION_LENGTH: usize = 65536;
/// Confirmed and potential findings; information gathered is noise for impact flags.
pub const DEFAULT_INCLUDE_TYPES: [FindingType; 2] = [FindingType::Vuln, FindingType::Practice];
/// Overrides `password`, so the secret need not sit in the file.
pub const PASSWORD_ENV: &str = "QUALYS_PASSWORD";
/// Overrides `proxy_password`.
pub const PROXY_PASSWORD_ENV: &str = "QUALYS_PROXY_PASSWORD";

const PLUGININFO_HINT: &str =
    "use -plugininfo to name the YAML file (default InputPlugins/QualysGuard.yaml)";
/// A real configuration is a dozen lines; anything this big is the wrong file, and the
/// limit keeps a mistaken `-plugininfo /dev/zero` from eating memory.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Bounds on the YAML tree: nesting (our recursion) and alias expansion ("billion
/// laughs") cannot blow the stack or the heap.
const MAX_DEPTH: usize = 64;
const MAX_NODES: usize = 100_000;
/// How far an unknown key may be from a known one to be suggested.
const MAX_SUGGESTION_DISTANCE: usize = 2;

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

/// How each host's staged results are committed (host-input.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// `ScanFlush`: replace the host's existing results.
    Flush,
    /// `ScanUpdate`: merge with them.
    Update,
}

impl ScanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanMode::Flush => "flush",
            ScanMode::Update => "update",
        }
    }
}

impl fmt::Display for ScanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
}

impl ProxyScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        }
    }

    /// The port used when the proxy URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            ProxyScheme::Http => 80,
            ProxyScheme::Https => 443,
        }
    }
}

impl fmt::Display for ProxyScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `proxy` key (guide Table ii-4). Credentials are separate keys
/// (`proxy_username`, `proxy_password`) and are never part of this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub scheme: ProxyScheme,
    /// Host name or IP address; an IPv6 address is stored without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Proxy {
    /// `scheme://host:port`, with brackets around an IPv6 host: usable as a proxy URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Where a secret came from, so the caller can log it without the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    File,
    /// The environment variable's name.
    Env(&'static str),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::File => f.write_str("the configuration file"),
            SecretOrigin::Env(var) => f.write_str(var),
        }
    }
}

/// Which keys a run needs (guide Table ii-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    /// The report comes from a file: no Qualys key is needed.
    Nothing,
    /// Downloading needs `user_id` and `password`, and `template_id` unless the
    /// templates are given on the command line (`-multiinfo`).
    Download { template: bool },
}

impl From<bool> for Require {
    fn from(download: bool) -> Require {
        if download {
            Require::Download { template: true }
        } else {
            Require::Nothing
        }
    }
}

/// The validated configuration. `Debug` is safe to log: secrets print `<redacted>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub password_origin: Option<SecretOrigin>,
    /// Digits only.
    pub template_id: Option<String>,
    /// `http(s)://host[:port][/path]`, scheme in lower case, no trailing slash.
    pub url: String,
    pub add_host: bool,
    pub ip_ranges: IpRanges,
    pub proxy: Option<Proxy>,
    pub proxy_username: Option<String>,
    pub proxy_password: Option<Secret>,
    pub proxy_password_origin: Option<SecretOrigin>,
    pub source: String,
    pub scan_mode: ScanMode,
    pub include_types: Vec<FindingType>,
    pub description_length: usize,
    pub verify_fmc_certificate: bool,
    pub fmc_connect_timeout: Duration,
    pub fmc_reply_timeout: Duration,
    pub fmc_retries: u32,
    pub fmc_retry_wait: Duration,
    pub report_api: ReportApi,
    pub api_path: String,
    pub report_deadline: Duration,
    pub poll_interval: Duration,
    pub download_idle_timeout: Duration,
    pub qualys_retries: u32,
    pub keep_report: Option<PathBuf>,
    /// Extra trusted CA certificates (DER), and the file they came from.
    pub ca_bundle: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub ca_bundle_path: Option<PathBuf>,
    /// The longest single wait a Qualys server may ask for (`X-RateLimit-ToWait-Sec`, or
    /// the same in an error text); a longer request fails the download.
    pub qualys_max_wait: Duration,
    /// The longest one report transfer may take, however steadily bytes arrive.
    pub download_deadline: Duration,
    /// The largest report (or page) accepted, in bytes.
    pub max_report_bytes: u64,
    /// A download stops when the temporary directory has less free space than this.
    pub tmp_min_free: u64,
    /// The bound on a whole run: `-multiinfo`, every retry and every wait included.
    pub max_run_seconds: Duration,
    /// The incremental sync's state file (src/sync); `None`: every run sends every host.
    pub sync_state: Option<PathBuf>,
    pub vanished_hosts: VanishedHosts,
    /// The vanished-host guard: a clear of more than this share (0–100) of the
    /// destination's hosts is refused unless `-full` is given.
    pub max_vanished_percent: f64,
    /// A full sync when the last complete one is this many days old; 0: never by age.
    pub full_sync_days: u32,
    /// Where the data comes from (qualys.md §7): a report template, or Host List Detection.
    pub qualys_source: QualysSource,
    /// The detection path's scope, passed to Qualys as given: `ips`, `ag_ids`,
    /// `ag_titles`, `use_tags` + `tag_set_include`.
    pub scope_ips: Option<String>,
    pub scope_ag_ids: Option<String>,
    pub scope_ag_titles: Option<String>,
    pub scope_use_tags: bool,
    pub scope_tag_set_include: Option<String>,
    /// Version prefixes of Host List + Host List Detection, and of the KnowledgeBase.
    pub detection_api_path: String,
    pub kb_api_path: String,
    /// Host IDs per Host List Detection call (`ids=`, also `truncation_limit`).
    pub hosts_per_call: usize,
    pub include_ignored: bool,
    pub include_disabled: bool,
    /// Calls at once; `None`: the concurrency limit − 1, at least 1.
    pub qualys_workers: Option<u32>,
    /// The KnowledgeBase cache's file when `sync_state` is unset.
    pub kb_cache: Option<PathBuf>,
}

/// `qualys_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualysSource {
    /// The report of a template (the original's only source).
    Report,
    /// Host List Detection and the KnowledgeBase (qualys.md §7).
    Detections,
}

/// `vanished_hosts`: what happens to hosts the FMC holds that the report no longer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VanishedHosts {
    /// Their results stay on the FMC (the original's behaviour).
    Keep,
    /// They get the generic "no open findings" result, then are forgotten.
    Clear,
}

/// Which Qualys call gets the report (qualys.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportApi {
    V2,
    V1,
}

impl Config {
    /// Every key at its default: what an empty file gives.
    pub fn defaults(path: &Path) -> Config {
        Config {
            path: path.to_path_buf(),
            user_id: None,
            password: None,
            password_origin: None,
            template_id: None,
            url: DEFAULT_URL.to_string(),
            // Guide Table ii-3: "n - (the Connector default value)".
            add_host: false,
            // Guide Table ii-3: ip_ranges "default is none", i.e. no filtering.
            ip_ranges: IpRanges::default(),
            proxy: None,
            proxy_username: None,
            proxy_password: None,
            proxy_password_origin: None,
            source: DEFAULT_SOURCE.to_string(),
            scan_mode: ScanMode::Flush,
            include_types: DEFAULT_INCLUDE_TYPES.to_vec(),
            description_length: DEFAULT_DESCRIPTION_LENGTH,
            verify_fmc_certificate: true,
            fmc_connect_timeout: Duration::from_secs(30),
            fmc_reply_timeout: Duration::from_secs(600),
            fmc_retries: 3,
            fmc_retry_wait: Duration::from_secs(2),
            report_api: ReportApi::V2,
            api_path: "/api/2.0".to_string(),
            report_deadline: Duration::from_secs(4 * 3600),
            poll_interval: Duration::from_secs(10),
            download_idle_timeout: Duration::from_secs(600),
            qualys_retries: 5,
            keep_report: None,
            ca_bundle: Vec::new(),
            ca_bundle_path: None,
            qualys_max_wait: Duration::from_secs(3600),
            download_deadline: Duration::from_secs(4 * 3600),
            max_report_bytes: 50_000_000_000,
            tmp_min_free: 1 << 30,
            // Under a day, so a daily cron job never overlaps itself.
            max_run_seconds: Duration::from_secs(20 * 3600),
            sync_state: None,
            vanished_hosts: VanishedHosts::Keep,
            max_vanished_percent: 20.0,
            full_sync_days: 7,
            qualys_source: QualysSource::Report,
            scope_ips: None,
            scope_ag_ids: None,
            scope_ag_titles: None,
            scope_use_tags: false,
            scope_tag_set_include: None,
            detection_api_path: "/api/2.0".into(),
            kb_api_path: "/api/2.0".into(),
            hosts_per_call: 1000,
            include_ignored: false,
            include_disabled: false,
            qualys_workers: None,
            kb_cache: None,
        }
    }
}

/// A configuration error. Displays as `path:line:column: key: message`, each part
/// present only when known.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The process environment, for `load`'s `env` parameter in production.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads, checks and parses the file at `path`. Warnings (unknown keys, a file with a
/// secret that others can read, ...) each name the file and come back with the config.
///
/// `require_qualys`: `user_id`, `password` and `template_id` must be set (they are not
/// needed when the report is read from a file). `env` looks up environment variables.
pub fn load(
    path: &Path,
    require_qualys: impl Into<Require>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let require_qualys = require_qualys.into();
    let metadata = fs::metadata(path).map_err(|e| file_error(path, &e))?;
    if metadata.is_dir() {
        return Err(bare_error(
            path,
            format!("is a directory, not a YAML file; {PLUGININFO_HINT}"),
        ));
    }
    let text = read_text(path)?;
    let mut parsed = parse(path, &text, require_qualys, env)?;
    if !parsed.errors.is_empty() {
        return Err(parsed.errors.remove(0));
    }
    let mut warnings = parsed.warnings;
    if let Some(warning) = permission_warning(path, &metadata, &parsed.file_secrets) {
        warnings.push(warning);
    }
    Ok((parsed.config, warnings))
}

/// `load` without the file system: parses `text` as if read from `path`.
pub fn parse_str(
    path: &Path,
    text: &str,
    require_qualys: impl Into<Require>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut parsed = parse(path, text, require_qualys.into(), env)?;
    if !parsed.errors.is_empty() {
        return Err(parsed.errors.remove(0));
    }
    Ok((parsed.config, parsed.warnings))
}

/// A configuration read as far as it goes, for `check`: every error, and the Config
/// with the values that were valid (defaults for the others).
#[derive(Debug)]
pub struct Partial {
    pub config: Config,
    pub warnings: Vec<String>,
    /// Every error, in file order; empty when the file is valid.
    pub errors: Vec<ConfigError>,
    /// The keys in error or missing; every key when the file could not be read at all.
    pub failed: Vec<&'static str>,
}

/// `load`, going on past errors: a file that cannot be read or parsed as YAML gives
/// the defaults and that one error; otherwise every key error is reported.
pub fn load_partial(
    path: &Path,
    require_qualys: impl Into<Require>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Partial {
    let whole_file = |error: ConfigError| Partial {
        config: Config::defaults(path),
        warnings: Vec::new(),
        errors: vec![error],
        failed: KEYS.iter().map(|d| d.name).collect(),
    };
    let require_qualys = require_qualys.into();
    let (config, warnings) = match load(path, require_qualys, env) {
        Ok(loaded) => loaded,
        Err(first) => {
            let parsed = fs::metadata(path)
                .ok()
                .filter(|m| !m.is_dir())
                .and_then(|_| read_text(path).ok())
                .map(|text| parse(path, &text, require_qualys, env));
            return match parsed {
                Some(Ok(parsed)) if !parsed.errors.is_empty() => Partial {
                    config: parsed.config,
                    warnings: parsed.warnings,
                    errors: parsed.errors,
                    failed: parsed.failed,
                },
                _ => whole_file(first),
            };
        }
    };
    Partial {
        config,
        warnings,
        errors: Vec::new(),
        failed: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The key table
// ---------------------------------------------------------------------------------------

/// What a key accepts. Decides how values are read, quoted in messages and overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One scalar.
    Text,
    /// One scalar that is never quoted in a message; the named environment variable,
    /// when set and non-empty, overrides the file.
    Secret(&'static str),
    /// A comma-separated scalar or a YAML list of scalars.
    TextOrList,
}

type Handler = fn(&mut Config, &Value) -> Result<(), Fail>;

#[derive(Debug)]
struct KeyDef {
    name: &'static str,
    kind: Kind,
    /// Needed to download the report from Qualys (guide Table ii-2).
    required: bool,
    handler: Handler,
}

const REQUIRED: bool = true;
const OPTIONAL: bool = false;

const fn key(name: &'static str, kind: Kind, required: bool, handler: Handler) -> KeyDef {
    KeyDef {
        name,
        kind,
        required,
        handler,
    }
}

/// Every key the file may hold. A new key is one line here plus its handler.
#[rustfmt::skip]
const KEYS: &[KeyDef] = &[
    // Guide Table ii-2: required to download the report.
    key("user_id",            Kind::Text,                       REQUIRED, set_user_id),
    key("password",           Kind::Secret(PASSWORD_ENV),       REQUIRED, set_password),
    key("template_id",        Kind::Text,                       REQUIRED, set_template_id),
    // Guide Table ii-3: optional, with defaults.
    key("url",                Kind::Text,                       OPTIONAL, set_url),
    key("add_host",           Kind::Text,                       OPTIONAL, set_add_host),
    key("ip_ranges",          Kind::TextOrList,                 OPTIONAL, set_ip_ranges),
    // Guide Table ii-4: proxy support, no defaults.
    key("proxy",              Kind::Text,                       OPTIONAL, set_proxy),
    key("proxy_username",     Kind::Text,                       OPTIONAL, set_proxy_username),
    key("proxy_password",     Kind::Secret(PROXY_PASSWORD_ENV), OPTIONAL, set_proxy_password),
    // New keys (not in the guide), with defaults.
    key("source",             Kind::Text,                       OPTIONAL, set_source),
    key("scan_mode",          Kind::Text,                       OPTIONAL, set_scan_mode),
    key("include_types",      Kind::TextOrList,                 OPTIONAL, set_include_types),
    key("description_length", Kind::Text,                       OPTIONAL, set_description_length),
    // Delivery to the FMC (host-input.md §1, §3).
    key("verify_fmc_certificate", Kind::Text,                   OPTIONAL, set_verify_fmc_certificate),
    key("fmc_connect_timeout", Kind::Text,                      OPTIONAL, set_fmc_connect_timeout),
    key("fmc_reply_timeout",  Kind::Text,                       OPTIONAL, set_fmc_reply_timeout),
    key("fmc_retries",        Kind::Text,                       OPTIONAL, set_fmc_retries),
    key("fmc_retry_wait",     Kind::Text,                       OPTIONAL, set_fmc_retry_wait),
    // Downloading from Qualys (qualys.md §2-§4).
    key("report_api",         Kind::Text,                       OPTIONAL, set_report_api),
    key("api_path",           Kind::Text,                       OPTIONAL, set_api_path),
    key("report_deadline",    Kind::Text,                       OPTIONAL, set_report_deadline),
    key("poll_interval",      Kind::Text,                       OPTIONAL, set_poll_interval),
    key("download_idle_timeout", Kind::Text,                    OPTIONAL, set_download_idle_timeout),
    key("qualys_retries",     Kind::Text,                       OPTIONAL, set_qualys_retries),
    key("keep_report",        Kind::Text,                       OPTIONAL, set_keep_report),
    key("ca_bundle",          Kind::Text,                       OPTIONAL, set_ca_bundle),
    // Upper bounds on every wait and every transfer: nothing may hang a cron job.
    key("qualys_max_wait",    Kind::Text,                       OPTIONAL, set_qualys_max_wait),
    key("download_deadline",  Kind::Text,                       OPTIONAL, set_download_deadline),
    key("max_report_bytes",   Kind::Text,                       OPTIONAL, set_max_report_bytes),
    key("tmp_min_free",       Kind::Text,                       OPTIONAL, set_tmp_min_free),
    key("max_run_seconds",    Kind::Text,                       OPTIONAL, set_max_run_seconds),
    // The incremental sync (src/sync).
    key("sync_state",         Kind::Text,                       OPTIONAL, set_sync_state),
    key("vanished_hosts",     Kind::Text,                       OPTIONAL, set_vanished_hosts),
    key("max_vanished_percent", Kind::Text,                     OPTIONAL, set_max_vanished_percent),
    key("full_sync_days",     Kind::Text,                       OPTIONAL, set_full_sync_days),
    // The detection path (qualys.md §7).
    key("qualys_source",      Kind::Text,                       OPTIONAL, set_qualys_source),
    key("ips",                Kind::TextOrList,                 OPTIONAL, set_scope_ips),
    key("ag_ids",             Kind::TextOrList,                 OPTIONAL, set_scope_ag_ids),
    key("ag_titles",          Kind::TextOrList,                 OPTIONAL, set_scope_ag_titles),
    key("use_tags",           Kind::Text,                       OPTIONAL, set_scope_use_tags),
    key("tag_set_include",    Kind::TextOrList,                 OPTIONAL, set_scope_tag_set_include),
    key("detection_api_path", Kind::Text,                       OPTIONAL, set_detection_api_path),
    key("kb_api_path",        Kind::Text,                       OPTIONAL, set_kb_api_path),
    key("hosts_per_call",     Kind::Text,                       OPTIONAL, set_hosts_per_call),
    key("include_ignored",    Kind::Text,                       OPTIONAL, set_include_ignored),
    key("include_disabled",   Kind::Text,                       OPTIONAL, set_include_disabled),
    key("qualys_workers",     Kind::Text,                       OPTIONAL, set_qualys_workers),
    key("kb_cache",           Kind::Text,                       OPTIONAL, set_kb_cache),
];

/// A key's value as its handler sees it.
#[derive(Debug)]
struct Value {
    /// Where the value starts; `None` when it came from the environment.
    pos: Option<Pos>,
    origin: SecretOrigin,
    form: Form,
}

#[derive(Debug)]
enum Form {
    One(String),
    List(Vec<Item>),
}

#[derive(Debug)]
struct Item {
    pos: Pos,
    text: String,
}

impl Value {
    /// The scalar, for keys that take one value.
    fn scalar(&self) -> Result<&str, Fail> {
        match &self.form {
            Form::One(text) => Ok(text),
            Form::List(_) => Err(fail("expected a single value, got a list")),
        }
    }

    /// The trimmed scalar, which must not be blank.
    fn text(&self) -> Result<&str, Fail> {
        let text = self.scalar()?.trim();
        if text.is_empty() {
            return Err(fail("is blank"));
        }
        Ok(text)
    }

    /// The comma-separated parts of a scalar, or the parts of every list item, each with
    /// where to point an error at.
    fn parts(&self) -> Vec<(Option<Pos>, &str)> {
        match &self.form {
            Form::One(text) => text.split(',').map(|p| (self.pos, p.trim())).collect(),
            Form::List(items) => items
                .iter()
                .flat_map(|i| i.text.split(',').map(|p| (Some(i.pos), p.trim())))
                .collect(),
        }
    }
}

/// A handler's complaint; the caller adds file, key and (unless given) the position.
#[derive(Debug)]
struct Fail {
    pos: Option<Pos>,
    /// Text to look for on the value's line to point the column at it exactly.
    near: Option<String>,
    message: String,
}

fn fail(message: impl Into<String>) -> Fail {
    Fail {
        pos: None,
        near: None,
        message: message.into(),
    }
}

impl Fail {
    fn at(mut self, pos: Option<Pos>) -> Fail {
        self.pos = pos;
        self
    }

    fn near(mut self, text: &str) -> Fail {
        self.near = Some(text.to_string());
        self
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// A user name goes into HTTP basic authentication, which cannot carry ':' or control
/// characters (RFC 7617).
fn user_name(value: &Value) -> Result<String, Fail> {
    let text = value.text()?;
    if text.chars().any(char::is_control) {
        return Err(fail("must not contain control characters"));
    }
    if text.contains(':') {
        return Err(fail(format!(
            "must not contain ':' (HTTP basic authentication cannot carry it), got {}",
            quote(text)
        ))
        .near(":"));
    }
    Ok(text.to_string())
}

fn set_user_id(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.user_id = Some(user_name(value)?);
    Ok(())
}

fn set_proxy_username(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.proxy_username = Some(user_name(value)?);
    Ok(())
}

/// Passwords are taken verbatim (no trimming: spaces may be part of them). A line break
/// or tab is refused: it is almost always a YAML block scalar or a paste gone wrong, and
/// the server would just answer "Bad Login/Password" (guide, troubleshooting).
fn secret(value: &Value) -> Result<Secret, Fail> {
    let text = value.scalar()?;
    if text.chars().any(char::is_control) {
        return Err(fail(
            "contains a line break, tab or other control character (value not shown); \
             write it on one line in single quotes",
        ));
    }
    Ok(Secret::new(text))
}

fn set_password(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.password = Some(secret(value)?);
    config.password_origin = Some(value.origin);
    Ok(())
}

fn set_proxy_password(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.proxy_password = Some(secret(value)?);
    config.proxy_password_origin = Some(value.origin);
    Ok(())
}

/// Guide Table ii-2: the report template's ID, a number. YAML gives it to us as text
/// whether it was written as an integer or quoted.
fn set_template_id(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(format!(
            "expected the report template's number (digits only), got {}",
            quote(text)
        )));
    }
    config.template_id = Some(text.to_string());
    Ok(())
}

/// Guide Table ii-3: the QualysGuard API server. A path is allowed (some installations
/// sit below a prefix); the connector appends `/api/...` itself, hence no trailing slash.
fn set_url(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    let url = split_url(text, "user_id and password are separate keys")?;
    if url.rest.contains(['?', '#']) {
        return Err(fail(format!(
            "must not contain a query or fragment, got {}",
            quote(&redact_url(text))
        )));
    }
    let path = url.rest.trim_end_matches('/');
    config.url = format!("{}://{}{}", url.scheme, url.authority, path);
    Ok(())
}

/// Guide Table ii-3: y or n; the guide's troubleshooting also names `yes`, and YAML
/// booleans come to us as `true` / `false`.
fn set_add_host(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.add_host = yes_no(value)?;
    Ok(())
}

/// The guide's y/n values (Table ii-3, `add_host`), for every yes/no key.
fn yes_no(value: &Value) -> Result<bool, Fail> {
    let text = value.text()?;
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" => Ok(true),
        "n" | "no" | "false" => Ok(false),
        _ => Err(fail(format!(
            "expected y, yes, true, n, no or false, got {}",
            quote(text)
        ))),
    }
}

/// A number of seconds within `range`, decimals allowed ("0.5").
fn seconds(value: &Value, range: std::ops::RangeInclusive<f64>) -> Result<Duration, Fail> {
    let text = value.text()?;
    match text.parse::<f64>() {
        Ok(n) if range.contains(&n) => Ok(Duration::from_secs_f64(n)),
        _ => Err(fail(format!(
            "expected a number of seconds from {} to {}, got {}",
            range.start(),
            range.end(),
            quote(text)
        ))),
    }
}

/// Off by default only for servers whose chain does not lead to the CA in the PKCS#12
/// file (host-input.md §1: "an explicit opt-out for compatibility").
fn set_verify_fmc_certificate(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.verify_fmc_certificate = yes_no(value)?;
    Ok(())
}

fn set_fmc_connect_timeout(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.fmc_connect_timeout = seconds(value, 1.0..=3600.0)?;
    Ok(())
}

/// host-input.md §3: "Large blocks can take minutes to process: the reply timeout must
/// be long (minutes) and configurable."
fn set_fmc_reply_timeout(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.fmc_reply_timeout = seconds(value, 1.0..=86_400.0)?;
    Ok(())
}

fn set_fmc_retries(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.fmc_retries = retries(value)?;
    Ok(())
}

/// A number of retries, 0 to 100.
fn retries(value: &Value) -> Result<u32, Fail> {
    let text = value.text()?;
    match text.parse::<u32>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(fail(format!(
            "expected a whole number from 0 to 100, got {}",
            quote(text)
        ))),
    }
}

fn set_fmc_retry_wait(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.fmc_retry_wait = seconds(value, 0.0..=600.0)?;
    Ok(())
}

/// qualys.md §2: the Report API v2 launch/poll/fetch/delete flow (`v2`) or the older
/// synchronous `/msp/asset_data_report.php` call (`v1`).
fn set_report_api(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    config.report_api = match text.to_ascii_lowercase().as_str() {
        "v2" | "2" => ReportApi::V2,
        "v1" | "1" => ReportApi::V1,
        _ => return Err(fail(format!("expected v2 or v1, got {}", quote(text)))),
    };
    Ok(())
}

/// qualys.md §2: "the version prefix must be configurable; Qualys is retiring 2.0
/// endpoints on a 12-month schedule".
fn set_api_path(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    let path = text.trim_end_matches('/');
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return Err(fail(format!(
            "expected a path such as /api/2.0, got {}",
            quote(text)
        )));
    }
    config.api_path = path.to_string();
    Ok(())
}

/// qualys.md §2: reports take minutes to hours; the wait is bounded.
fn set_report_deadline(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.report_deadline = seconds(value, 1.0..=604_800.0)?;
    Ok(())
}

fn set_poll_interval(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.poll_interval = seconds(value, 0.0..=3600.0)?;
    Ok(())
}

/// qualys.md §4: an idle-read timeout, not a short total one (peers moved to 300-900 s).
fn set_download_idle_timeout(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.download_idle_timeout = seconds(value, 1.0..=86_400.0)?;
    Ok(())
}

fn set_qualys_retries(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.qualys_retries = retries(value)?;
    Ok(())
}

/// qualys.md §3: ToWait is honoured, but a server asking for days holds a cron job
/// hostage; past this bound the download fails instead.
fn set_qualys_max_wait(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.qualys_max_wait = seconds(value, 1.0..=86_400.0)?;
    Ok(())
}

/// qualys.md §4: the idle timeout alone lets a server that streams forever hold the run.
fn set_download_deadline(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.download_deadline = seconds(value, 1.0..=604_800.0)?;
    Ok(())
}

fn set_max_report_bytes(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.max_report_bytes = bytes(value, 1)?;
    Ok(())
}

fn set_tmp_min_free(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.tmp_min_free = bytes(value, 0)?;
    Ok(())
}

fn set_max_run_seconds(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.max_run_seconds = seconds(value, 1.0..=604_800.0)?;
    Ok(())
}

fn set_qualys_source(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    config.qualys_source = match text.to_ascii_lowercase().as_str() {
        "report" => QualysSource::Report,
        "detections" => QualysSource::Detections,
        _ => {
            return Err(fail(format!(
                "expected report or detections, got {}",
                quote(text)
            )));
        }
    };
    Ok(())
}

/// A list key's parts joined with commas, as Qualys takes them.
fn joined(value: &Value) -> Result<String, Fail> {
    let parts: Vec<String> = value
        .parts()
        .into_iter()
        .map(|(_, p)| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(fail("expected at least one value"));
    }
    Ok(parts.join(","))
}

fn set_scope_ips(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = joined(value)?;
    IpRanges::parse(&text).map_err(|e| fail(e.to_string()))?;
    config.scope_ips = Some(text);
    Ok(())
}

/// IDs and ranges (`123`, `100-200`), as Qualys's `ag_ids` and `tag_set_include` take them.
fn id_list(value: &Value) -> Result<String, Fail> {
    let text = joined(value)?;
    for part in text.split(',') {
        let ok = match part.split_once('-') {
            Some((a, b)) => a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok(),
            None => part.parse::<u64>().is_ok(),
        };
        if !ok {
            return Err(fail(format!(
                "expected IDs or ranges of IDs separated by commas, got {}",
                quote(part)
            )));
        }
    }
    Ok(text)
}

fn set_scope_ag_ids(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.scope_ag_ids = Some(id_list(value)?);
    Ok(())
}

fn set_scope_ag_titles(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.scope_ag_titles = Some(joined(value)?);
    Ok(())
}

fn set_scope_use_tags(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.scope_use_tags = yes_no(value)?;
    Ok(())
}

fn set_scope_tag_set_include(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.scope_tag_set_include = Some(id_list(value)?);
    Ok(())
}

/// `/api/<major>.0` for a major version in `versions` (platforms move each API
/// separately, qualys.md §7).
fn version_prefix(value: &Value, versions: &[u32]) -> Result<String, Fail> {
    let text = value.text()?;
    let path = text.trim_end_matches('/');
    let ok = versions.iter().any(|v| path == format!("/api/{v}.0"));
    if !ok {
        let list: Vec<String> = versions.iter().map(|v| format!("/api/{v}.0")).collect();
        return Err(fail(format!(
            "expected one of {}, got {}",
            list.join(", "),
            quote(text)
        )));
    }
    Ok(path.to_string())
}

fn set_detection_api_path(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.detection_api_path = version_prefix(value, &[2, 3, 4, 5])?;
    Ok(())
}

fn set_kb_api_path(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.kb_api_path = version_prefix(value, &[2, 3, 4])?;
    Ok(())
}

fn set_hosts_per_call(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    match text.parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => {
            config.hosts_per_call = n;
            Ok(())
        }
        _ => Err(fail(format!(
            "expected a whole number from 1 to 10000, got {}",
            quote(text)
        ))),
    }
}

fn set_include_ignored(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.include_ignored = yes_no(value)?;
    Ok(())
}

fn set_include_disabled(config: &mut Config, value: &Value) -> Result<(), Fail> {
    config.include_disabled = yes_no(value)?;
    Ok(())
}

fn set_qualys_workers(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    match text.parse::<u32>() {
        Ok(n) if (1..=32).contains(&n) => {
            config.qualys_workers = Some(n);
            Ok(())
        }
        _ => Err(fail(format!(
            "expected a whole number from 1 to 32, got {}",
            quote(text)
        ))),
    }
}

fn set_kb_cache(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let path = PathBuf::from(value.text()?);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() || !dir.is_dir() {
        return Err(fail(format!(
            "{} is not a file in an existing directory",
            quote(&path.display().to_string())
        )));
    }
    config.kb_cache = Some(path);
    Ok(())
}

/// The scope keys' combinations (qualys.md §7): asset groups by ID or by title, not
/// both; tags need both `use_tags` and `tag_set_include`.
fn check_detection_scope(source: &Source<'_>, c: &Config) -> Result<(), ConfigError> {
    let problem = if c.scope_ag_ids.is_some() && c.scope_ag_titles.is_some() {
        Some("ag_ids and ag_titles do not go together: give the asset groups one way")
    } else if c.scope_use_tags && c.scope_tag_set_include.is_none() {
        Some("use_tags: y needs tag_set_include (the tag IDs)")
    } else if !c.scope_use_tags && c.scope_tag_set_include.is_some() {
        Some("tag_set_include needs use_tags: y")
    } else {
        None
    };
    match problem {
        Some(message) => Err(source.error(None, None, message.to_string())),
        None => Ok(()),
    }
}

/// The state file's directory must exist; the file itself is created on the first run.
fn set_sync_state(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let path = PathBuf::from(value.text()?);
    if path.as_os_str().is_empty() {
        return Err(fail("expected the path of the sync state file"));
    }
    if path.is_dir() {
        return Err(fail(format!(
            "{} is a directory: sync_state names a file (for example {}/qualys-sync.db)",
            quote(&path.display().to_string()),
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "the directory {} of {} does not exist",
            quote(&dir.display().to_string()),
            quote(&path.display().to_string())
        )));
    }
    config.sync_state = Some(path);
    Ok(())
}

fn set_vanished_hosts(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    config.vanished_hosts = match text.to_ascii_lowercase().as_str() {
        "keep" => VanishedHosts::Keep,
        "clear" => VanishedHosts::Clear,
        _ => return Err(fail(format!("expected keep or clear, got {}", quote(text)))),
    };
    Ok(())
}

fn set_max_vanished_percent(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    match text.trim().trim_end_matches('%').trim().parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => {
            config.max_vanished_percent = n;
            Ok(())
        }
        _ => Err(fail(format!(
            "expected a percentage from 0 to 100, got {}",
            quote(text)
        ))),
    }
}

fn set_full_sync_days(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    match text.parse::<u32>() {
        Ok(n) if n <= 3650 => {
            config.full_sync_days = n;
            Ok(())
        }
        _ => Err(fail(format!(
            "expected a whole number of days from 0 (never) to 3650, got {}",
            quote(text)
        ))),
    }
}

/// A size in bytes: a whole number, optionally with a decimal unit (`KB`, `MB`, `GB`,
/// `TB`) or a binary one (`KiB`, `MiB`, `GiB`, `TiB`), in any case, e.g. `50GB`, `1 GiB`.
fn bytes(value: &Value, min: u64) -> Result<u64, Fail> {
    let text = value.text()?;
    match parse_bytes(text) {
        Some(n) if n >= min => Ok(n),
        _ => Err(fail(format!(
            "expected a size in bytes of at least {min} (a whole number, optionally with KB, MB, GB, TB, KiB, MiB, GiB or TiB), got {}",
            quote(text)
        ))),
    }
}

fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A directory where each downloaded report is kept for audit.
fn set_keep_report(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let dir = PathBuf::from(value.text()?);
    if !dir.is_dir() {
        return Err(fail(format!(
            "{} is not a directory (keep_report names the directory downloaded reports are kept in)",
            quote(&dir.display().to_string())
        )));
    }
    config.keep_report = Some(dir);
    Ok(())
}

/// A PEM file of CA certificates trusted for the Qualys API and the proxy, besides the
/// built-in ones (for TLS-inspecting proxies and private platforms).
fn set_ca_bundle(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let path = PathBuf::from(value.text()?);
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    // Refuses a FIFO or device instead of waiting on it (src/files.rs).
    let certs: Result<Vec<CertificateDer<'static>>, _> = match crate::files::open_input(&path) {
        Ok(file) => CertificateDer::pem_reader_iter(file).collect(),
        Err(e) => {
            return Err(fail(format!(
                "cannot read {}: {e}",
                quote(&path.display().to_string())
            )));
        }
    };
    match certs {
        Ok(certs) if !certs.is_empty() => {
            config.ca_bundle = certs;
            config.ca_bundle_path = Some(path);
            Ok(())
        }
        Ok(_) => Err(fail(format!(
            "{} holds no PEM certificate",
            quote(&path.display().to_string())
        ))),
        Err(e) => Err(fail(format!(
            "{} is not a PEM certificate file: {e}",
            quote(&path.display().to_string())
        ))),
    }
}

/// Guide Table ii-3: "One or more IP ranges ... CIDR notation or a dashed range",
/// default none. A YAML list is accepted too; its items mean the same as a comma list.
fn set_ip_ranges(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let (spec, items): (String, &[Item]) = match &value.form {
        Form::One(text) => (text.clone(), &[]),
        Form::List(items) => {
            let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
            (texts.join(","), items)
        }
    };
    config.ip_ranges = IpRanges::parse(&spec).map_err(|e| {
        // Point at the list item holding the bad entry, then at the entry itself.
        let pos = items
            .iter()
            .find(|i| i.text.contains(e.token.as_str()))
            .map(|i| i.pos)
            .or(value.pos);
        fail(format!("bad entry {}: {}", quote(&e.token), e.reason))
            .at(pos)
            .near(&e.token)
    })?;
    Ok(())
}

/// Guide Table ii-4: `https://192.168.1.100:443`; "the port number must be between 0
/// and 65535".
fn set_proxy(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    let url = split_url(text, "set proxy_username and proxy_password instead")?;
    if !url.rest.is_empty() && url.rest != "/" {
        return Err(fail(format!(
            "expected scheme://host[:port] without a path, got {}",
            quote(&redact_url(text))
        )));
    }
    config.proxy = Some(Proxy {
        scheme: url.scheme,
        host: url.host,
        port: url.port.unwrap_or(url.scheme.default_port()),
    });
    Ok(())
}

/// The Host Input source (`SetSource,<source>`) and scanner name: a field of a
/// comma-separated command line, so no commas or quotes.
fn set_source(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    if let Some(bad) = text
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == '"' || c == ',')
    {
        return Err(fail(format!(
            "expected printable ASCII without '\"' or ',' (it becomes a field of the Host \
             Input commands), got {} (bad character {})",
            quote(text),
            quote(&bad.to_string())
        ))
        .near(&bad.to_string()));
    }
    config.source = text.to_string();
    Ok(())
}

fn set_scan_mode(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    config.scan_mode = match text.to_ascii_lowercase().as_str() {
        "flush" => ScanMode::Flush,
        "update" => ScanMode::Update,
        _ => {
            return Err(fail(format!(
                "expected flush or update, got {}",
                quote(text)
            )));
        }
    };
    Ok(())
}

fn set_include_types(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let mut types = Vec::new();
    for (pos, part) in value.parts() {
        if part.is_empty() {
            continue;
        }
        let kind = FindingType::from_str(part).map_err(|e| fail(e).at(pos).near(part))?;
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    if types.is_empty() {
        return Err(fail(
            "names no finding type; give at least one of Vuln, Practice, Ig \
             (or remove the key for the default Vuln, Practice)",
        ));
    }
    config.include_types = types;
    Ok(())
}

fn set_description_length(config: &mut Config, value: &Value) -> Result<(), Fail> {
    let text = value.text()?;
    let digits = text.strip_prefix('+').unwrap_or(text);
    let out_of_range = || {
        fail(format!(
            "must be between 0 and {MAX_DESCRIPTION_LENGTH}, got {}",
            quote(text)
        ))
    };
    let negative = text
        .strip_prefix('-')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if negative {
        return Err(out_of_range());
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(format!(
            "expected a whole number between 0 and {MAX_DESCRIPTION_LENGTH}, got {}",
            quote(text)
        )));
    }
    match digits.parse::<usize>() {
        Ok(n) if n <= MAX_DESCRIPTION_LENGTH => {
            config.description_length = n;
            Ok(())
        }
        _ => Err(out_of_range()),
    }
}

// ---------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct UrlParts<'a> {
    pub scheme: ProxyScheme,
    /// As written (host and port), for rebuilding the URL.
    pub authority: &'a str,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Path, query and fragment, as written.
    pub rest: &'a str,
}

/// Splits `scheme://host[:port]rest`, checking scheme, host and port. Credentials in the
/// URL are refused (`credentials_hint` says where they go) and never quoted back.
/// A URL split by the same rules and messages as the configuration check, for the
/// connection code (one URL parser for both).
pub fn parse_url(text: &str) -> Result<UrlParts<'_>, String> {
    split_url(text, "give the credentials as their own keys").map_err(|f| f.message)
}

fn split_url<'a>(text: &'a str, credentials_hint: &str) -> Result<UrlParts<'a>, Fail> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail(format!(
            "must not contain spaces or control characters, got {}",
            quote(&redact_url(text))
        )));
    }
    let Some((scheme, after)) = text.split_once("://") else {
        return Err(fail(format!(
            "expected an http:// or https:// URL, got {}",
            quote(&redact_url(text))
        )));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => ProxyScheme::Http,
        "https" => ProxyScheme::Https,
        _ => {
            return Err(fail(format!(
                "expected an http:// or https:// URL, got {}",
                quote(&redact_url(text))
            )));
        }
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return Err(fail(format!(
            "must not contain a user name or password (value not shown); {credentials_hint}"
        )));
    }
    let (host, port) = split_authority(authority)?;
    Ok(UrlParts {
        scheme,
        authority,
        host,
        port,
        rest,
    })
}

fn split_authority(authority: &str) -> Result<(String, Option<u16>), Fail> {
    if authority.is_empty() {
        return Err(fail("has no host name"));
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(fail(format!("has an unclosed '[' in {}", quote(authority))));
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(fail(format!("bad IPv6 address {}", quote(addr))).near(addr));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(parse_port(port)?),
                None => {
                    return Err(fail(format!("unexpected {} after ']'", quote(after))).near(after));
                }
            },
        };
        return Ok((addr.to_string(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => {
            if port.contains(':') {
                return Err(fail(format!(
                    "an IPv6 address must be written in brackets, as in http://[2001:db8::1]:8080, got {}",
                    quote(authority)
                )));
            }
            (host, Some(parse_port(port)?))
        }
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(fail("has no host name"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(fail(format!(
            "bad host name {} (letters, digits, '.', '-' and '_' only; write an \
             international name in its xn-- form)",
            quote(host)
        ))
        .near(host));
    }
    Ok((host.to_string(), port))
}

fn parse_port(port: &str) -> Result<u16, Fail> {
    if port.is_empty() {
        return Err(fail("has an empty port after ':'"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(format!("port {} is not a number", quote(port))).near(port));
    }
    port.parse::<u16>().map_err(|_| {
        let shown: String = port.chars().take(20).collect();
        fail(format!("port {shown} is out of range (0-65535)")).near(port)
    })
}

/// The URL with anything before an '@' in its authority replaced, so a message can
/// quote it without leaking an embedded password.
fn redact_url(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn from_marker(mark: &Marker) -> Pos {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Pos {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

#[derive(Debug)]
struct Parsed {
    config: Config,
    warnings: Vec<String>,
    /// The secret keys the file itself holds (for the permission warning).
    file_secrets: Vec<&'static str>,
    /// Every key error, in file order (`load` reports the first).
    errors: Vec<ConfigError>,
    /// The keys in error, and the required keys missing.
    failed: Vec<&'static str>,
}

/// Source text and file name, for building located messages.
#[derive(Debug)]
struct Source<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
}

impl Source<'_> {
    fn error(
        &self,
        pos: Option<Pos>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    fn warning(&self, pos: Pos, message: &str) -> String {
        format!(
            "{}:{}:{}: {message}",
            self.path.display(),
            pos.line,
            pos.column
        )
    }

    /// Moves `pos` to where `needle` first appears on its line at or after it; keeps
    /// `pos` when the needle is not there (a multi-line or escaped scalar).
    fn refine(&self, pos: Pos, needle: &str) -> Pos {
        let Some(line) = self.lines.get(pos.line.wrapping_sub(1)) else {
            return pos;
        };
        let Some((start, _)) = line.char_indices().nth(pos.column.saturating_sub(1)) else {
            return pos;
        };
        match line[start..].find(needle) {
            Some(offset) if !needle.is_empty() => Pos {
                line: pos.line,
                column: pos.column + line[start..start + offset].chars().count(),
            },
            _ => pos,
        }
    }
}

fn parse(
    path: &Path,
    text: &str,
    require_qualys: Require,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ConfigError> {
    // A BOM (Windows editors) is not part of the first key; yaml-rust2 would keep it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = untab_after_keys(text);
    let source = Source {
        path,
        lines: text.lines().collect(),
    };
    let entries = top_level_entries(&source, &text)?;
    let mut state = ParseState::new(path);
    for (key, value) in entries {
        apply_entry(&source, &key, &value, &mut state);
    }
    apply_env_secrets(&source, env, &mut state);
    if let Require::Download { template } = require_qualys {
        // The detection path needs no template (qualys.md §7).
        let template = template && state.config.qualys_source == QualysSource::Report;
        check_required(&source, template, &mut state);
    }
    if let Err(e) = check_detection_scope(&source, &state.config) {
        state.errors.push(e);
    }
    if let Err(e) = check_proxy_credentials(&source, &state.config, &state.set, &mut state.warnings)
    {
        state.errors.push(e);
    }
    Ok(Parsed {
        config: state.config,
        warnings: state.warnings,
        file_secrets: state.file_secrets,
        errors: state.errors,
        failed: state.failed,
    })
}

/// What parsing has found so far.
struct ParseState {
    config: Config,
    warnings: Vec<String>,
    file_secrets: Vec<&'static str>,
    /// Every key error, in file order; a key in error keeps its default.
    errors: Vec<ConfigError>,
    /// The keys whose values were refused.
    failed: Vec<&'static str>,
    /// Where each key was first seen (duplicates).
    seen: HashMap<String, Pos>,
    /// Which known keys have a value, and where.
    set: HashMap<&'static str, Option<Pos>>,
    /// Unknown keys that look like known ones: (known, as written, where).
    misspelt: Vec<(&'static str, String, Pos)>,
}

impl ParseState {
    fn new(path: &Path) -> ParseState {
        ParseState {
            config: Config::defaults(path),
            warnings: Vec::new(),
            file_secrets: Vec::new(),
            errors: Vec::new(),
            failed: Vec::new(),
            seen: HashMap::new(),
            set: HashMap::new(),
            misspelt: Vec::new(),
        }
    }
}

/// The document's `key: value` pairs; anything else at the top is an error for the file.
fn top_level_entries(source: &Source<'_>, text: &str) -> Result<Vec<(Node, Node)>, ConfigError> {
    match read_document(source, text)? {
        None => Ok(Vec::new()),
        Some(node) if node.is_null() => Ok(Vec::new()),
        Some(Node {
            value: NodeValue::Map(entries),
            ..
        }) => Ok(entries),
        Some(node) => Err(source.error(
            Some(node.pos),
            None,
            format!(
                "expected `key: value` lines (a YAML mapping) at the top level, got {}",
                node.describe()
            ),
        )),
    }
}

/// One `key: value` line: checked and applied, or its error recorded.
fn apply_entry(source: &Source<'_>, key: &Node, value: &Node, state: &mut ParseState) {
    let name = match &key.value {
        NodeValue::Scalar { text, .. } => text.clone(),
        _ => {
            state.errors.push(source.error(
                Some(key.pos),
                None,
                format!("expected a key name, got {}", key.describe()),
            ));
            return;
        }
    };
    if let Some(first) = state.seen.get(&name) {
        state.errors.push(source.error(
            Some(key.pos),
            Some(&name),
            format!(
                "duplicate key: set on line {} and again on line {}",
                first.line, key.pos.line
            ),
        ));
        return;
    }
    state.seen.insert(name.clone(), key.pos);

    let Some(def) = KEYS.iter().find(|d| d.name == name) else {
        let mut message = format!("unknown key {} ignored", quote(&name));
        if let Some(known) = suggest(&name) {
            message.push_str(&format!(" (did you mean '{known}'?)"));
            state.misspelt.push((known, name.clone(), key.pos));
        }
        state.warnings.push(source.warning(key.pos, &message));
        return;
    };
    if let Err(e) = apply_value(source, def, key, value, state) {
        state.errors.push(e);
        state.failed.push(def.name);
        // A key in error counts as set: "missing required key" would be a second,
        // wrong, message about it.
        state.set.insert(def.name, Some(key.pos));
    }
}

/// Checks and applies the value of a known key.
fn apply_value(
    source: &Source<'_>,
    def: &'static KeyDef,
    key: &Node,
    value: &Node,
    state: &mut ParseState,
) -> Result<(), ConfigError> {
    let located = |fail: Fail| {
        let pos = fail.pos.or(Some(value.pos));
        let pos = match (pos, &fail.near) {
            (Some(pos), Some(near)) => Some(source.refine(pos, near)),
            _ => pos,
        };
        source.error(pos, Some(def.name), fail.message)
    };
    check_tag(value).map_err(|fail| {
        // yaml-rust2 marks a tagged scalar after its tag (on the next line when the
        // value is empty); point at the '!' when it is on the key's line.
        let at_bang = source.refine(key.pos, "!");
        if at_bang == key.pos {
            located(fail)
        } else {
            located(fail.at(Some(at_bang)))
        }
    })?;
    if value.is_null() {
        // `key:` and `key: ~` leave the default in place.
        return Ok(());
    }
    let input = to_value(value, def.kind).map_err(located)?;
    (def.handler)(&mut state.config, &input)
        .map_err(|fail| located(redact_secret(def, &input, fail)))?;
    state.set.insert(def.name, Some(key.pos));
    if matches!(def.kind, Kind::Secret(_)) {
        state.file_secrets.push(def.name);
    }
    Ok(())
}

/// Secrets from the environment win over the file, when set and non-empty.
fn apply_env_secrets(
    source: &Source<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    state: &mut ParseState,
) {
    for def in KEYS {
        let Kind::Secret(var) = def.kind else {
            continue;
        };
        let Some(text) = env(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let input = Value {
            pos: None,
            origin: SecretOrigin::Env(var),
            form: Form::One(text),
        };
        if let Err(fail) = (def.handler)(&mut state.config, &input) {
            let fail = redact_secret(def, &input, fail);
            state.errors.push(source.error(
                None,
                Some(def.name),
                format!("{} (from environment variable {var})", fail.message),
            ));
            state.failed.push(def.name);
        }
        state.set.entry(def.name).or_insert(None);
    }
}

/// The keys a download needs (guide Table ii-2) must be set.
fn check_required(source: &Source<'_>, template: bool, state: &mut ParseState) {
    let missing: Vec<&KeyDef> = KEYS
        .iter()
        .filter(|d| d.required && !state.set.contains_key(d.name))
        .filter(|d| template || d.name != "template_id")
        .collect();
    if missing.is_empty() {
        return;
    }
    let noun = if missing.len() == 1 { "key" } else { "keys" };
    let names: Vec<String> = missing
        .iter()
        .map(|d| match d.kind {
            Kind::Secret(env) => format!("{} (or set {env})", d.name),
            _ => d.name.to_string(),
        })
        .collect();
    let mut message = format!(
        "missing required {noun} {}; needed to download the report from Qualys \
         (guide Table ii-2)",
        names.join(", ")
    );
    // The warning about a misspelt key would be lost with this error; a typo is the
    // likeliest reason for a missing key, so say it here.
    for (known, written, pos) in &state.misspelt {
        if missing.iter().any(|d| d.name == *known) {
            message.push_str(&format!(
                "; line {} has {}: did you mean '{known}'?",
                pos.line,
                quote(written)
            ));
        }
    }
    state.errors.push(source.error(None, None, message));
    state.failed.extend(missing.iter().map(|d| d.name));
}

/// Proxy credentials only mean something with a proxy, and a password without a user
/// name cannot be sent at all (guide Table ii-4).
fn check_proxy_credentials(
    source: &Source<'_>,
    config: &Config,
    set: &HashMap<&'static str, Option<Pos>>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if config.proxy.is_none() {
        for name in ["proxy_username", "proxy_password"] {
            if let Some(Some(pos)) = set.get(name) {
                warnings.push(source.warning(
                    *pos,
                    &format!("{name} is set but proxy is not; {name} is ignored"),
                ));
            }
        }
        return Ok(());
    }
    if config.proxy_password.is_some() && config.proxy_username.is_none() {
        let pos = set.get("proxy_password").copied().flatten();
        let from = match config.proxy_password_origin {
            Some(SecretOrigin::Env(var)) => format!(" (from environment variable {var})"),
            _ => String::new(),
        };
        return Err(source.error(
            pos,
            Some("proxy_password"),
            format!("is set{from} but proxy_username is not; set both or neither"),
        ));
    }
    Ok(())
}

/// A handler message must not carry a secret; they are written not to, and this makes
/// sure of it.
fn redact_secret(def: &KeyDef, input: &Value, mut fail: Fail) -> Fail {
    if let (Kind::Secret(_), Form::One(text)) = (def.kind, &input.form) {
        if !text.is_empty() && fail.message.contains(text.as_str()) {
            fail.message = "invalid value (not shown)".to_string();
        }
        fail.near = None;
    }
    fail
}

/// Tags other than YAML's own (`!!str`, `!!int`, ...) mean nothing here; a value that
/// starts with '!' was most likely meant as text (a password), so say to quote it and
/// do not echo the tag.
fn check_tag(node: &Node) -> Result<(), Fail> {
    match &node.value {
        NodeValue::Scalar { tag: Some(tag), .. } if !tag.starts_with(YAML_TAG_PREFIX) => Err(fail(
            "starts with '!', which YAML reads as a tag (value not shown); put the value in \
             single quotes",
        )
        .at(Some(node.pos))),
        _ => Ok(()),
    }
}

const YAML_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// A value node as a handler input: a scalar, or (for `Kind::TextOrList`) a list of
/// scalars. Every other shape is refused here, so handlers only see what they take.
fn to_value(node: &Node, kind: Kind) -> Result<Value, Fail> {
    let expected = match kind {
        Kind::TextOrList => "a value or a list of values",
        Kind::Text | Kind::Secret(_) => "a single value",
    };
    let form = match &node.value {
        NodeValue::Scalar { text, .. } => Form::One(text.clone()),
        NodeValue::Seq(items) if kind == Kind::TextOrList => {
            let mut list = Vec::new();
            for item in items {
                check_tag(item)?;
                match &item.value {
                    _ if item.is_null() => {}
                    NodeValue::Scalar { text, .. } => {
                        list.push(Item {
                            pos: item.pos,
                            text: text.clone(),
                        });
                    }
                    _ => {
                        return Err(fail(format!(
                            "list items must be single values, got {}",
                            item.describe()
                        ))
                        .at(Some(item.pos)));
                    }
                }
            }
            Form::List(list)
        }
        NodeValue::Seq(_) => return Err(fail(format!("expected {expected}, got a list"))),
        NodeValue::Map(_) => {
            return Err(fail(format!(
                "expected {expected}, got a nested mapping (are the following lines \
                 indented by mistake?)"
            )));
        }
    };
    Ok(Value {
        pos: Some(node.pos),
        origin: SecretOrigin::File,
        form,
    })
}

/// yaml-rust2 refuses a tab between `key:` and its value, which libyaml (and so the Perl
/// connector) accepts. Turn such tabs into spaces; columns stay the same.
fn untab_after_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let key_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        let after_key = &rest[key_len..];
        match after_key.strip_prefix(':') {
            Some(value) if key_len > 0 && value.starts_with('\t') => {
                let tabs = value.len() - value.trim_start_matches('\t').len();
                out.push_str(&line[..indent + key_len + 1]);
                out.push_str(&" ".repeat(tabs));
                out.push_str(&value[tabs..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// YAML tree
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Node {
    pos: Pos,
    value: NodeValue,
}

#[derive(Debug, Clone)]
enum NodeValue {
    Scalar {
        text: String,
        plain: bool,
        /// Full tag (`tag:yaml.org,2002:str` for `!!str`).
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// `key:`, `key: ~`, `key: null` and `key: ''` all mean "not set".
    fn is_null(&self) -> bool {
        match &self.value {
            NodeValue::Scalar { text, plain, tag } => {
                text.is_empty()
                    || (*plain
                        && tag.is_none()
                        && matches!(text.as_str(), "~" | "null" | "Null" | "NULL"))
            }
            _ => false,
        }
    }

    fn describe(&self) -> &'static str {
        match self.value {
            NodeValue::Scalar { .. } => "a single value",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        1 + match &self.value {
            NodeValue::Scalar { .. } => 0,
            NodeValue::Seq(items) => items.iter().map(Node::size).sum(),
            NodeValue::Map(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
        }
    }
}

#[derive(Debug, Default)]
struct EventSink {
    events: Vec<(Event, Pos)>,
}

impl MarkedEventReceiver for EventSink {
    fn on_event(&mut self, event: Event, mark: Marker) {
        self.events.push((event, Pos::from_marker(&mark)));
    }
}

/// Parses `text` into at most one document's tree (`None` for an empty file).
fn read_document(source: &Source<'_>, text: &str) -> Result<Option<Node>, ConfigError> {
    let mut sink = EventSink::default();
    Parser::new_from_str(text)
        .load(&mut sink, true)
        .map_err(|e| syntax_error(source, &e))?;
    let mut tree = TreeBuilder {
        events: sink.events.into_iter(),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut root = None;
    let fail = |(pos, message): (Pos, String)| source.error(Some(pos), None, message);
    while let Some((event, pos)) = tree.events.next() {
        match event {
            Event::DocumentStart if root.is_some() => {
                return Err(source.error(
                    Some(pos),
                    None,
                    "a second YAML document ('---') follows; the file must hold one mapping",
                ));
            }
            Event::DocumentStart => {
                let (event, pos) = tree.next(pos).map_err(fail)?;
                root = Some(tree.node(event, pos, 0).map_err(fail)?);
            }
            _ => {}
        }
    }
    Ok(root)
}

struct TreeBuilder {
    events: std::vec::IntoIter<(Event, Pos)>,
    /// Anchored nodes with their sizes, for aliases.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl fmt::Debug for TreeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeBuilder")
            .field("nodes", &self.nodes)
            .finish()
    }
}

type TreeResult<T> = Result<T, (Pos, String)>;

impl TreeBuilder {
    fn next(&mut self, after: Pos) -> TreeResult<(Event, Pos)> {
        self.events
            .next()
            .ok_or((after, "YAML ends unexpectedly".to_string()))
    }

    fn count(&mut self, pos: Pos, n: usize) -> TreeResult<()> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err((
                pos,
                format!("more than {MAX_NODES} YAML values (alias loop?)"),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.size()));
        }
    }

    fn node(&mut self, event: Event, pos: Pos, depth: usize) -> TreeResult<Node> {
        if depth > MAX_DEPTH {
            return Err((pos, format!("nested more than {MAX_DEPTH} levels deep")));
        }
        self.count(pos, 1)?;
        let node = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    pos,
                    value: NodeValue::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                        tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)),
                    },
                };
                self.remember(anchor, &node);
                node
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, at) = self.next(pos)?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, at, depth + 1)?);
                }
                let node = Node {
                    pos,
                    value: NodeValue::Seq(items),
                };
                self.remember(anchor, &node);
                node
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, at) = self.next(pos)?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(event, at, depth + 1)?;
                    let (event, at) = self.next(at)?;
                    let value = self.node(event, at, depth + 1)?;
                    entries.push((key, value));
                }
                // yaml-rust2 marks a block mapping one column after its first key;
                // the earlier of the two is where the mapping really starts.
                let pos = entries.first().map_or(pos, |(key, _)| pos.min(key.pos));
                let node = Node {
                    pos,
                    value: NodeValue::Map(entries),
                };
                self.remember(anchor, &node);
                node
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err((pos, "alias to an unknown anchor".to_string()));
                };
                self.count(pos, size)?;
                Node { pos, ..node }
            }
            _ => return Err((pos, "unexpected YAML structure".to_string())),
        };
        Ok(node)
    }
}

/// A YAML syntax error. Two common causes get a precise message: tabs used for
/// indentation (YAML allows only spaces), and a password with punctuation that is not
/// quoted (guide Table ii-2: "put your password in single quotes"); the latter must not
/// echo the value, and yaml-rust2 may quote a character of it.
fn syntax_error(source: &Source<'_>, error: &ScanError) -> ConfigError {
    let pos = Pos::from_marker(error.marker());
    if let Some(tab) = first_indenting_tab(&source.lines) {
        return source.error(
            Some(tab),
            None,
            "tab character in the indentation; YAML indents with spaces only",
        );
    }
    let line_key = source
        .lines
        .get(pos.line.wrapping_sub(1))
        .and_then(|l| line_key(l));
    if let Some(def) = KEYS
        .iter()
        .find(|d| matches!(d.kind, Kind::Secret(_)) && Some(d.name) == line_key)
    {
        return source.error(
            Some(pos),
            Some(def.name),
            "YAML syntax error in this value (not shown); put it in single quotes, \
             writing any ' inside it as ''",
        );
    }
    source.error(
        Some(pos),
        None,
        format!("YAML syntax error: {}", error.info()),
    )
}

/// The first tab in the leading whitespace of a line that has content.
fn first_indenting_tab(lines: &[&str]) -> Option<Pos> {
    lines.iter().enumerate().find_map(|(i, line)| {
        let content = line.trim_start_matches([' ', '\t']);
        let indent = &line[..line.len() - content.len()];
        let column = indent.find('\t')?;
        (!content.is_empty() && !content.starts_with('#')).then_some(Pos {
            line: i + 1,
            column: column + 1,
        })
    })
}

/// The key a `key: value` line starts with, without quotes.
fn line_key(line: &str) -> Option<&str> {
    let (key, _) = line.trim_start().split_once(':')?;
    Some(key.trim().trim_matches(['\'', '"']))
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// A value quoted for a message: single quotes, control characters escaped, long values
/// cut (a message is one line in a cron mail).
fn quote(text: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The known key closest to `name` (case ignored), if close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    KEYS.iter()
        .map(|d| (edit_distance(&name, d.name), d.name))
        .filter(|&(distance, _)| distance <= MAX_SUGGESTION_DISTANCE)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------

fn bare_error(path: &Path, message: String) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        line: None,
        column: None,
        key: None,
        message,
    }
}

fn file_error(path: &Path, error: &io::Error) -> ConfigError {
    match error.kind() {
        io::ErrorKind::NotFound => bare_error(path, format!("file not found; {PLUGININFO_HINT}")),
        io::ErrorKind::PermissionDenied => bare_error(
            path,
            format!("cannot read the file: {error}; check its permissions and owner"),
        ),
        _ => bare_error(path, format!("cannot read the file: {error}")),
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    // Refuses a FIFO or device instead of waiting on it (src/files.rs).
    let file = crate::files::open_input(path).map_err(|e| file_error(path, &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, &e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bare_error(
            path,
            format!(
                "is larger than {MAX_FILE_BYTES} bytes, so it is not a QualysGuard.yaml; \
                 {PLUGININFO_HINT}"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by definition; count lines and characters in it.
        let prefix = String::from_utf8_lossy(valid);
        let line = prefix.matches('\n').count() + 1;
        let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError {
            path: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: None,
            message: "is not valid UTF-8 text; save it as UTF-8 (or plain ASCII)".to_string(),
        }
    })
}

/// A password in a file other users can read is a leak waiting to happen: say so when
/// the file holds a secret and group or others have any access to it.
#[cfg(unix)]
fn permission_warning(
    path: &Path,
    metadata: &fs::Metadata,
    file_secrets: &[&'static str],
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if file_secrets.is_empty() || mode & 0o077 == 0 {
        return None;
    }
    Some(format!(
        "{}: holds {} but group or others can access it (mode {mode:03o}); run: chmod 600 {} \
         (or move the secret to {PASSWORD_ENV} / {PROXY_PASSWORD_ENV})",
        path.display(),
        file_secrets.join(" and "),
        path.display(),
    ))
}

#[cfg(not(unix))]
fn permission_warning(
    _path: &Path,
    _metadata: &fs::Metadata,
    _file_secrets: &[&'static str],
) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const PATH: &str = "InputPlugins/QualysGuard.yaml";
    const PW: &str = "S3cr3t-Pw";
    const PROXY_PW: &str = "Pr0xy-S3cr3t";

    const GUIDE_SAMPLE: &str = "\
# Required Parameters
user_id: dirk_g
password: 'd0ntp@nlc'
template_id: 424242
# Optional Parameters
add_host: y
ip_ranges: 192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1
proxy: https://192.168.1.100:443
proxy_username: zaphod
proxy_password: 't0w3L'
";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_ok(text: &str) -> (Config, Vec<String>) {
        match parse_str(Path::new(PATH), text, false, &no_env) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{text:?} should parse, got: {e}"),
        }
    }

    fn parse_err(text: &str, require_qualys: bool) -> ConfigError {
        match parse_str(Path::new(PATH), text, require_qualys, &no_env) {
            Ok((config, _)) => panic!("{text:?} should fail, got {config:?}"),
            Err(e) => e,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn exposed(secret: &Option<Secret>) -> Option<&str> {
        secret.as_ref().map(Secret::expose)
    }

    #[test]
    fn guide_sample() {
        let (c, warnings) = parse_str(Path::new(PATH), GUIDE_SAMPLE, true, &no_env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.path, Path::new(PATH));
        assert_eq!(c.user_id.as_deref(), Some("dirk_g"));
        assert_eq!(exposed(&c.password), Some("d0ntp@nlc"));
        assert_eq!(c.password_origin, Some(SecretOrigin::File));
        assert_eq!(c.template_id.as_deref(), Some("424242"));
        assert_eq!(c.url, DEFAULT_URL);
        assert!(c.add_host);
        let ranges = IpRanges::parse("192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1").unwrap();
        assert_eq!(c.ip_ranges, ranges);
        assert!(c.ip_ranges.contains(ip("10.1.2.5")));
        assert!(!c.ip_ranges.contains(ip("10.1.2.11")));
        let host = "192.168.1.100".to_string();
        let proxy = Proxy {
            scheme: ProxyScheme::Https,
            host,
            port: 443,
        };
        assert_eq!(c.proxy, Some(proxy));
        assert_eq!(c.proxy_username.as_deref(), Some("zaphod"));
        assert_eq!(exposed(&c.proxy_password), Some("t0w3L"));
        assert_eq!(c.proxy_password_origin, Some(SecretOrigin::File));
        assert_eq!(c.source, "QualysGuard");
        assert_eq!(c.scan_mode, ScanMode::Flush);
        assert_eq!(c.include_types, [FindingType::Vuln, FindingType::Practice]);
        assert_eq!(c.description_length, 512);
        // Debug is safe to log.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("d0ntp@nlc") && !debug.contains("t0w3L"),
            "{debug}"
        );
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn empty_documents_give_defaults() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "--- ~\n",
            "~\n",
            "{}\n",
        ] {
            let (c, warnings) = parse_ok(text);
            assert!(warnings.is_empty(), "{text:?}");
            assert_eq!(c.user_id, None);
            assert!(c.password.is_none() && c.password_origin.is_none());
            assert_eq!(c.template_id, None);
            assert_eq!(c.url, "https://qualysapi.qualys.com");
            assert!(!c.add_host);
            assert!(c.ip_ranges.is_unrestricted());
            assert_eq!(c.proxy, None);
            assert_eq!(c.proxy_username, None);
            assert!(c.proxy_password.is_none() && c.proxy_password_origin.is_none());
            assert_eq!(c.source, DEFAULT_SOURCE);
            assert_eq!(c.scan_mode, ScanMode::Flush);
            assert_eq!(c.include_types, DEFAULT_INCLUDE_TYPES);
            assert_eq!(c.description_length, DEFAULT_DESCRIPTION_LENGTH);
        }
    }

    #[test]
    fn null_and_empty_values_mean_not_set() {
        let defaults = format!("{:?}", Config::defaults(Path::new(PATH)));
        for def in KEYS {
            for value in ["", " ~", " null", " Null", " NULL", " ''", " \"\""] {
                let text = format!("{}:{value}\n", def.name);
                let (c, warnings) = parse_ok(&text);
                assert!(warnings.is_empty(), "{text:?}: {warnings:?}");
                assert_eq!(format!("{c:?}"), defaults, "{text:?}");
            }
        }
        // `!!str` makes "null" a value like any other.
        let (c, _) = parse_ok("user_id: !!str null\n");
        assert_eq!(c.user_id.as_deref(), Some("null"));
    }

    #[test]
    fn add_host_forms() {
        #[rustfmt::skip]
        let cases = [
            ("y", true), ("Y", true), ("yes", true), ("YES", true), ("true", true),
            ("True", true), ("'y'", true),
            ("n", false), ("No", false), ("false", false), ("FALSE", false), ("\"n\"", false),
        ];
        for (value, want) in cases {
            let (c, _) = parse_ok(&format!("add_host: {value}\n"));
            assert_eq!(c.add_host, want, "{value}");
        }
    }

    #[test]
    fn scalar_key_forms() {
        type Check = fn(&Config) -> bool;
        #[rustfmt::skip]
        let cases: &[(&str, Check)] = &[
            ("user_id: dirk_g", |c| c.user_id.as_deref() == Some("dirk_g")),
            ("user_id: '  spaced  '", |c| c.user_id.as_deref() == Some("spaced")),
            ("user_id: 12345", |c| c.user_id.as_deref() == Some("12345")),
            ("template_id: 424242", |c| c.template_id.as_deref() == Some("424242")),
            ("template_id: '424242'", |c| c.template_id.as_deref() == Some("424242")),
            ("template_id: \"007\"", |c| c.template_id.as_deref() == Some("007")),
            ("template_id: !!str 42", |c| c.template_id.as_deref() == Some("42")),
            ("url: https://qualysapi.qg2.apps.qualys.com", |c| c.url == "https://qualysapi.qg2.apps.qualys.com"),
            ("url: https://qualysapi.qualys.com/", |c| c.url == DEFAULT_URL),
            ("url: HTTPS://Qualys.Example.com:8443/qualys//", |c| c.url == "https://Qualys.Example.com:8443/qualys"),
            ("url: http://10.0.0.5", |c| c.url == "http://10.0.0.5"),
            ("url: 'https://[2001:db8::5]:443'", |c| c.url == "https://[2001:db8::5]:443"),
            ("source: Qualys Cloud", |c| c.source == "Qualys Cloud"),
            ("source: \"Q-1_(test)\"", |c| c.source == "Q-1_(test)"),
            ("scan_mode: flush", |c| c.scan_mode == ScanMode::Flush),
            ("scan_mode: Update", |c| c.scan_mode == ScanMode::Update),
            ("scan_mode: UPDATE", |c| c.scan_mode == ScanMode::Update),
            ("description_length: 0", |c| c.description_length == 0),
            ("description_length: 65536", |c| c.description_length == 65536),
            ("description_length: '1024'", |c| c.description_length == 1024),
            ("description_length: +7", |c| c.description_length == 7),
            ("password: d0ntp@nlc", |c| exposed(&c.password) == Some("d0ntp@nlc")),
            ("password: ' two  spaces '", |c| exposed(&c.password) == Some(" two  spaces ")),
            ("password: 'it''s'", |c| exposed(&c.password) == Some("it's")),
            ("password: 0777", |c| exposed(&c.password) == Some("0777")),
            // libyaml (the Perl connector) accepts a tab after the colon.
            ("user_id:\tdirk_g", |c| c.user_id.as_deref() == Some("dirk_g")),
            // Anchors and aliases resolve.
            ("user_id: &u zaphod\nsource: *u", |c| c.source == "zaphod"),
        ];
        for (text, check) in cases {
            let (c, warnings) = parse_ok(&format!("{text}\n"));
            assert!(check(&c), "{text:?} gave {c:?}");
            assert!(warnings.is_empty(), "{text:?}: {warnings:?}");
        }
        assert_eq!(ScanMode::Update.to_string(), "update");
    }

    #[test]
    fn proxy_forms() {
        use ProxyScheme::{Http, Https};
        #[rustfmt::skip]
        let cases = [
            ("http://proxy.example.com", Http, "proxy.example.com", 80, "http://proxy.example.com:80"),
            ("https://proxy.example.com", Https, "proxy.example.com", 443, "https://proxy.example.com:443"),
            ("https://192.168.1.100:443", Https, "192.168.1.100", 443, "https://192.168.1.100:443"),
            ("http://192.168.1.100:3128/", Http, "192.168.1.100", 3128, "http://192.168.1.100:3128"),
            ("HTTP://Proxy:8080", Http, "Proxy", 8080, "http://Proxy:8080"),
            ("http://proxy:0", Http, "proxy", 0, "http://proxy:0"),
            ("http://proxy:65535", Http, "proxy", 65535, "http://proxy:65535"),
            ("'http://[2001:db8::1]:8080'", Http, "2001:db8::1", 8080, "http://[2001:db8::1]:8080"),
            ("'https://[::1]'", Https, "::1", 443, "https://[::1]:443"),
        ];
        for (value, scheme, host, port, display) in cases {
            let (c, _) = parse_ok(&format!("proxy: {value}\n"));
            let want = Proxy {
                scheme,
                host: host.to_string(),
                port,
            };
            assert_eq!(c.proxy, Some(want), "{value}");
            assert_eq!(c.proxy.map(|p| p.to_string()).as_deref(), Some(display));
        }
    }

    #[test]
    fn ip_ranges_as_string_and_list() {
        // (yaml, Some((inside, outside)) or None for unrestricted)
        #[rustfmt::skip]
        let cases = [
            ("ip_ranges: 10.0.0.0/8", Some(("10.1.2.3", "11.0.0.1"))),
            ("ip_ranges: 10.0.0.1, 10.0.0.3-10.0.0.4", Some(("10.0.0.4", "10.0.0.2"))),
            ("ip_ranges: '10.0.0.1,10.0.0.2'", Some(("10.0.0.2", "10.0.0.3"))),
            ("ip_ranges: [10.0.0.1, 10.0.0.2]", Some(("10.0.0.2", "10.0.0.3"))),
            ("ip_ranges:\n  - 192.168.1.0/24\n  - 10.1.2.3-10.1.2.10", Some(("10.1.2.4", "10.1.2.11"))),
            ("ip_ranges:\n  - 10.0.0.1, 10.0.0.2\n  - 10.0.0.9", Some(("10.0.0.9", "10.0.0.3"))),
            ("ip_ranges: 10.0.0.1,\n  10.0.0.2", Some(("10.0.0.2", "10.0.0.3"))),
            ("ip_ranges: none", None),
            ("ip_ranges: []", None),
            ("ip_ranges: [~]", None),
        ];
        for (text, inside_outside) in cases {
            let (c, _) = parse_ok(&format!("{text}\n"));
            match inside_outside {
                Some((inside, outside)) => {
                    assert!(!c.ip_ranges.is_unrestricted(), "{text}");
                    assert!(c.ip_ranges.contains(ip(inside)), "{text}: {inside}");
                    assert!(!c.ip_ranges.contains(ip(outside)), "{text}: {outside}");
                }
                None => assert!(c.ip_ranges.is_unrestricted(), "{text}"),
            }
        }
    }

    #[test]
    fn include_types_as_string_and_list() {
        use FindingType::{Ig, Practice, Vuln};
        #[rustfmt::skip]
        let cases: &[(&str, &[FindingType])] = &[
            ("include_types: Vuln", &[Vuln]),
            ("include_types: vuln, practice, ig", &[Vuln, Practice, Ig]),
            ("include_types: Ig,Vuln", &[Ig, Vuln]),
            ("include_types: Vuln, Vuln, Potential", &[Vuln, Practice]),
            ("include_types: [Practice]", &[Practice]),
            ("include_types:\n  - Vuln\n  - Ig", &[Vuln, Ig]),
            ("include_types: 'Vuln,,Ig'", &[Vuln, Ig]),
        ];
        for (text, want) in cases {
            let (c, _) = parse_ok(&format!("{text}\n"));
            assert_eq!(c.include_types, *want, "{text}");
        }
    }

    #[test]
    fn error_display_names_file_line_column_and_key() {
        let text = "user_id: dirk_g\npassword: x\ntemplate_id: 1\n# comment\nadd_host: maybe\n";
        let e = parse_err(text, false);
        assert_eq!(
            e.to_string(),
            "InputPlugins/QualysGuard.yaml:5:11: add_host: \
             expected y, yes, true, n, no or false, got 'maybe'"
        );
        let path = PathBuf::from("x.yaml");
        let bare = ConfigError {
            path,
            line: None,
            column: None,
            key: None,
            message: "m".into(),
        };
        assert_eq!(bare.to_string(), "x.yaml: m");
        let line_only = ConfigError {
            line: Some(3),
            key: Some("k".into()),
            ..bare
        };
        assert_eq!(line_only.to_string(), "x.yaml:3: k: m");
        let _: &dyn std::error::Error = &line_only;
    }

    #[test]
    fn errors() {
        // (yaml, "line:column", key, part of the message)
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            // Wrong shapes.
            ("user_id: [a, b]\n", "1:10", Some("user_id"), "expected a single value, got a list"),
            ("user_id:\n  - a\n", "2:3", Some("user_id"), "expected a single value, got a list"),
            ("user_id:\n  name: dirk\n", "2:3", Some("user_id"), "got a nested mapping"),
            ("add_host: {y: 1}\n", "1:11", Some("add_host"), "got a nested mapping"),
            ("ip_ranges:\n  - [10.0.0.1]\n", "2:5", Some("ip_ranges"), "list items must be single values, got a list"),
            ("? [a]\n: 1\n", "1:3", None, "expected a key name, got a list"),
            // Top level.
            ("- user_id\n- password\n", "1:1", None, "at the top level, got a list"),
            ("just some text\n", "1:1", None, "at the top level, got a single value"),
            ("user_id: a\n---\nuser_id: b\n", "2:1", None, "a second YAML document"),
            // Syntax.
            ("user_id: 'dirk\n", "1:10", None, "YAML syntax error"),
            ("user_id: a: b\n", "1:11", None, "YAML syntax error: mapping values are not allowed"),
            ("user_id: [a, b\n", "2:1", None, "YAML syntax error"),
            ("user_id: *nowhere\n", "1:10", None, "YAML syntax error"),
            // Tabs used for indentation.
            ("user_id:\n\tdirk\n", "2:1", None, "tab character in the indentation"),
            ("user_id: a\n\ttemplate_id: 1\n", "2:1", None, "tab character in the indentation"),
            ("ip_ranges:\n\t- 10.0.0.1\n", "2:1", None, "tab character in the indentation"),
            ("user_id: a\npassword:\n\t\tb\n", "3:1", None, "tab character in the indentation"),
            // Duplicates name both lines.
            ("user_id: a\ntemplate_id: 1\nuser_id: b\n", "3:1", Some("user_id"), "duplicate key: set on line 1 and again on line 3"),
            ("user_id:\nuser_id: b\n", "2:1", Some("user_id"), "set on line 1 and again on line 2"),
            ("unknown: 1\nunknown: 2\n", "2:1", Some("unknown"), "duplicate key"),
            // Values.
            ("user_id: '  '\n", "1:10", Some("user_id"), "is blank"),
            ("user_id: 'a:b'\n", "1:12", Some("user_id"), "must not contain ':'"),
            ("proxy_username: \"a\\tb\"\n", "1:17", Some("proxy_username"), "control characters"),
            ("template_id: abc\n", "1:14", Some("template_id"), "expected the report template's number (digits only), got 'abc'"),
            ("template_id: -42\n", "1:14", Some("template_id"), "got '-42'"),
            ("template_id: 4.2\n", "1:14", Some("template_id"), "got '4.2'"),
            ("url: ftp://qualysapi.qualys.com\n", "1:6", Some("url"), "expected an http:// or https:// URL, got 'ftp://qualysapi.qualys.com'"),
            ("url: qualysapi.qualys.com\n", "1:6", Some("url"), "expected an http:// or https:// URL"),
            ("url: https://\n", "1:6", Some("url"), "has no host name"),
            ("url: https://:443/\n", "1:6", Some("url"), "has no host name"),
            ("url: https://qualys.example.com/api?x=1\n", "1:6", Some("url"), "must not contain a query or fragment"),
            ("url: https://bad_host!.com\n", "1:14", Some("url"), "bad host name 'bad_host!.com'"),
            ("url: 'https://qualys example.com'\n", "1:6", Some("url"), "must not contain spaces"),
            ("url: https://qualys.example.com:99999\n", "1:33", Some("url"), "port 99999 is out of range (0-65535)"),
            ("add_host: maybe\n", "1:11", Some("add_host"), "expected y, yes, true, n, no or false, got 'maybe'"),
            ("add_host: 1\n", "1:11", Some("add_host"), "got '1'"),
            ("add_host: !custom y\n", "1:11", Some("add_host"), "which YAML reads as a tag"),
            ("user_id: a\npassword: !S3cr3t\n", "2:11", Some("password"), "which YAML reads as a tag"),
            ("include_types: [Vuln, !x Ig]\n", "1:26", Some("include_types"), "which YAML reads as a tag"),
            ("ip_ranges: 10.0.0.1, 10.1.2.300\n", "1:22", Some("ip_ranges"), "bad entry '10.1.2.300': not an IP address"),
            ("ip_ranges: '10.0.0.0/33'\n", "1:13", Some("ip_ranges"), "bad entry '10.0.0.0/33'"),
            ("ip_ranges:\n  - 10.0.0.1\n  - 10.0.0.0/33\n", "3:5", Some("ip_ranges"), "bad entry '10.0.0.0/33'"),
            ("proxy: http://proxy.example.com:70000\n", "1:33", Some("proxy"), "port 70000 is out of range (0-65535)"),
            ("proxy: http://proxy:99999999999999999999999\n", "1:21", Some("proxy"), "is out of range (0-65535)"),
            ("proxy: http://proxy:80a\n", "1:21", Some("proxy"), "port '80a' is not a number"),
            ("proxy: 'http://proxy:'\n", "1:8", Some("proxy"), "empty port"),
            ("proxy: socks5://proxy:1080\n", "1:8", Some("proxy"), "expected an http:// or https:// URL"),
            ("proxy: 192.168.1.100:3128\n", "1:8", Some("proxy"), "expected an http:// or https:// URL"),
            ("proxy: http://proxy:3128/path\n", "1:8", Some("proxy"), "without a path"),
            ("proxy: http://2001:db8::1:3128\n", "1:8", Some("proxy"), "must be written in brackets"),
            ("proxy: 'http://[2001:db8::zz]:3128'\n", "1:17", Some("proxy"), "bad IPv6 address '2001:db8::zz'"),
            ("proxy: 'http://[::1'\n", "1:8", Some("proxy"), "unclosed '['"),
            // Proxy credentials without a user name cannot be sent.
            ("proxy: http://p:3128\nproxy_password: x\n", "2:1", Some("proxy_password"), "proxy_username is not"),
            ("source: 'Qualys,Guard'\n", "1:16", Some("source"), "without '\"' or ','"),
            ("source: 'Qualys \"Guard\"'\n", "1:17", Some("source"), "bad character '\"'"),
            ("source: Qualysé\n", "1:15", Some("source"), "printable ASCII"),
            ("scan_mode: merge\n", "1:12", Some("scan_mode"), "expected flush or update, got 'merge'"),
            ("include_types: Vuln, Fixed\n", "1:22", Some("include_types"), "unknown finding type 'fixed'"),
            ("include_types:\n  - Vuln\n  - Nope\n", "3:5", Some("include_types"), "unknown finding type 'nope'"),
            ("include_types: []\n", "1:16", Some("include_types"), "names no finding type"),
            ("include_types: ','\n", "1:16", Some("include_types"), "names no finding type"),
            ("description_length: 65537\n", "1:21", Some("description_length"), "must be between 0 and 65536, got '65537'"),
            ("description_length: -1\n", "1:21", Some("description_length"), "must be between 0 and 65536, got '-1'"),
            ("description_length: 99999999999999999999999\n", "1:21", Some("description_length"), "must be between 0 and 65536"),
            ("description_length: 1.5\n", "1:21", Some("description_length"), "expected a whole number"),
            ("description_length: lots\n", "1:21", Some("description_length"), "expected a whole number between 0 and 65536, got 'lots'"),
        ];
        for &(text, at, key, message) in cases {
            let e = parse_err(text, false);
            let got = format!("{}:{}", e.line.unwrap_or(0), e.column.unwrap_or(0));
            assert_eq!((got.as_str(), e.key.as_deref()), (at, key), "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert_eq!(e.path, Path::new(PATH));
            assert!(e.to_string().starts_with(&format!("{PATH}:{at}: ")), "{e}");
        }
    }

    #[test]
    fn missing_required_keys_are_listed_in_one_error() {
        #[rustfmt::skip]
        let cases = [
            ("", "missing required keys user_id, password (or set QUALYS_PASSWORD), template_id;"),
            ("user_id: a\ntemplate_id: 1\n", "missing required key password (or set QUALYS_PASSWORD);"),
            ("user_id: a\npassword: b\n", "missing required key template_id;"),
            ("user_id:\npassword: ~\ntemplate_id: ''\n", "keys user_id, password (or set QUALYS_PASSWORD), template_id;"),
        ];
        for (text, message) in cases {
            let e = parse_err(text, true);
            assert_eq!(
                (e.line, e.column, e.key.as_deref()),
                (None, None, None),
                "{e}"
            );
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("{PATH}: missing required"))
            );
            // Not needed when the report is read from a file.
            assert!(
                parse_str(Path::new(PATH), text, false, &no_env).is_ok(),
                "{text:?}"
            );
        }
        // A misspelt key is the likeliest cause, and its warning would be lost.
        let e = parse_err("user_id: a\npassword: b\ntemplte_id: 1\n", true);
        let want = "missing required key template_id; needed to download the report from \
                    Qualys (guide Table ii-2); line 3 has 'templte_id': did you mean 'template_id'?";
        assert_eq!(e.message, want);
        // The environment can supply the password.
        let env = |name: &str| (name == PASSWORD_ENV).then(|| PW.to_string());
        let text = "user_id: a\ntemplate_id: 1\n";
        assert!(parse_str(Path::new(PATH), text, true, &env).is_ok());
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() {
        #[rustfmt::skip]
        let cases = [
            ("templte_id: 1\n", "InputPlugins/QualysGuard.yaml:1:1: unknown key 'templte_id' ignored (did you mean 'template_id'?)"),
            ("user_id: a\n\nUser_ID: b\n", "InputPlugins/QualysGuard.yaml:3:1: unknown key 'User_ID' ignored (did you mean 'user_id'?)"),
            ("ip_range: 10.0.0.1\n", "InputPlugins/QualysGuard.yaml:1:1: unknown key 'ip_range' ignored (did you mean 'ip_ranges'?)"),
            ("proxy_pasword: x\n", "(did you mean 'proxy_password'?)"),
            ("addhost: y\n", "(did you mean 'add_host'?)"),
            ("colour: blue\n", "InputPlugins/QualysGuard.yaml:1:1: unknown key 'colour' ignored"),
        ];
        for (text, want) in cases {
            let (_, warnings) = parse_ok(text);
            assert_eq!(warnings.len(), 1, "{text:?}: {warnings:?}");
            assert!(warnings[0].contains(want), "{text:?}: {warnings:?}");
        }
        let (_, warnings) = parse_ok("colour: blue\n");
        assert!(!warnings[0].contains("did you mean"), "{warnings:?}");
        // Known keys still load beside an unknown one.
        let (c, _) = parse_ok("templte_id: 1\nuser_id: a\n");
        assert_eq!(c.user_id.as_deref(), Some("a"));
        assert_eq!(c.template_id, None);
    }

    #[test]
    fn proxy_credentials_without_proxy_warn() {
        let (c, warnings) = parse_ok("proxy_username: zaphod\nproxy_password: x\n");
        assert_eq!(c.proxy_username.as_deref(), Some("zaphod"));
        assert_eq!(
            warnings,
            [
                "InputPlugins/QualysGuard.yaml:1:1: proxy_username is set but proxy is not; \
                 proxy_username is ignored",
                "InputPlugins/QualysGuard.yaml:2:1: proxy_password is set but proxy is not; \
                 proxy_password is ignored",
            ]
        );
        // A proxy without credentials, or with a user name only, is fine.
        for text in ["proxy: http://p\n", "proxy: http://p\nproxy_username: u\n"] {
            let (_, warnings) = parse_ok(text);
            assert!(warnings.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn environment_secrets_override_the_file() {
        use SecretOrigin::{Env, File};
        let file = "password: f1\nproxy: http://p\nproxy_username: u\nproxy_password: f2\n";
        let bare = "proxy: http://p\nproxy_username: u\n";
        type Want = Option<(&'static str, SecretOrigin)>;
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Want,
            Want,
        );
        // (file, QUALYS_PASSWORD, QUALYS_PROXY_PASSWORD, password, proxy password)
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (file, None, None, Some(("f1", File)), Some(("f2", File))),
            (file, Some("e1"), None, Some(("e1", Env("QUALYS_PASSWORD"))), Some(("f2", File))),
            (file, None, Some("e2"), Some(("f1", File)), Some(("e2", Env("QUALYS_PROXY_PASSWORD")))),
            (file, Some("e1"), Some("e2"), Some(("e1", Env(PASSWORD_ENV))), Some(("e2", Env(PROXY_PASSWORD_ENV)))),
            // Empty variables are ignored.
            (file, Some(""), Some(""), Some(("f1", File)), Some(("f2", File))),
            (bare, Some(""), Some(""), None, None),
            (bare, Some("e1"), Some("e2"), Some(("e1", Env(PASSWORD_ENV))), Some(("e2", Env(PROXY_PASSWORD_ENV)))),
            // Spaces are part of a secret.
            (bare, Some(" e1 "), None, Some((" e1 ", Env(PASSWORD_ENV))), None),
        ];
        for &(text, pw, proxy_pw, want_pw, want_proxy_pw) in cases {
            let env = |name: &str| match name {
                "QUALYS_PASSWORD" => pw.map(str::to_string),
                "QUALYS_PROXY_PASSWORD" => proxy_pw.map(str::to_string),
                _ => None,
            };
            let (c, warnings) = parse_str(Path::new(PATH), text, false, &env).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            let got_pw = exposed(&c.password).zip(c.password_origin);
            let got_proxy_pw = exposed(&c.proxy_password).zip(c.proxy_password_origin);
            assert_eq!(got_pw, want_pw, "{text:?} {pw:?}");
            assert_eq!(got_proxy_pw, want_proxy_pw, "{text:?} {proxy_pw:?}");
        }
        assert_eq!(Env(PASSWORD_ENV).to_string(), "QUALYS_PASSWORD");
        assert_eq!(File.to_string(), "the configuration file");
    }

    #[test]
    fn environment_secret_errors_name_the_variable() {
        let env = |name: &str| (name == PASSWORD_ENV).then(|| format!("{PW}\n"));
        let e = parse_str(Path::new(PATH), "", false, &env).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (None, Some("password")));
        assert!(
            e.message
                .contains("from environment variable QUALYS_PASSWORD"),
            "{e}"
        );
        assert!(!e.to_string().contains(PW));

        let env = |name: &str| (name == PROXY_PASSWORD_ENV).then(|| PROXY_PW.to_string());
        let e = parse_str(Path::new(PATH), "proxy: http://p\n", false, &env).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (None, Some("proxy_password")));
        assert!(e.message.contains("QUALYS_PROXY_PASSWORD"), "{e}");
        assert!(!e.to_string().contains(PROXY_PW));
    }

    #[test]
    fn secrets_never_appear_in_messages() {
        let texts = [
            format!("password: [{PW}]\n"),
            format!("password:\n  nested: {PW}\n"),
            format!("password: @{PW}\n"),
            format!("password: `{PW}\n"),
            format!("password: '{PW}\n"),
            format!("password: {PW}: more\n"),
            format!("password: !{PW} x\n"),
            format!("password: !{PW}\n"),
            format!("password: \"{PW}\\n\"\n"),
            format!("password: |\n  {PW}\n"),
            format!("password: {PW}\npassword: {PW}\n"),
            format!("password: {PW}\n\tuser_id: a\n"),
            format!("pasword: {PW}\n"),
            format!("proxy_password: [{PW}]\n"),
            format!("proxy_password: @{PW}\n"),
            format!("proxy_password: \"{PW}\\t\"\n"),
            format!("proxy: http://p\nproxy_password: {PW}\n"),
            format!("proxy_password: {PW}\n"),
            format!("proxy: http://zaphod:{PW}@proxy:8080\n"),
            format!("proxy: http://zaphod:{PW}@proxy:70000\n"),
            format!("proxy: ftp://zaphod:{PW}@proxy\n"),
            format!("proxy: zaphod:{PW}@proxy\n"),
            format!("proxy: 'http://zaphod:{PW}@proxy/x y'\n"),
            format!("url: https://dirk:{PW}@qualysapi.qualys.com\n"),
            format!("url: https://dirk:{PW}@qualysapi.qualys.com/?q\n"),
            format!("password: {PW}\nadd_host: maybe\n"),
            format!("password: {PW}\n"),
        ];
        for text in &texts {
            for require in [false, true] {
                let messages = match parse_str(Path::new(PATH), text, require, &no_env) {
                    Ok((config, mut warnings)) => {
                        warnings.push(format!("{config:?}"));
                        warnings
                    }
                    Err(e) => vec![e.to_string(), format!("{e:?}")],
                };
                for message in messages {
                    assert!(!message.contains(PW), "{text:?} leaked: {message}");
                }
            }
        }
        // And the messages still help.
        let e = parse_err(&format!("user_id: a\npassword: @{PW}\n"), false);
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("password")),
            "{e}"
        );
        assert!(e.message.contains("single quotes"), "{e}");
        let e = parse_err(&format!("proxy: http://zaphod:{PW}@proxy:8080\n"), false);
        assert!(
            e.message.contains("proxy_username and proxy_password"),
            "{e}"
        );
    }

    #[test]
    fn text_quirks() {
        // Windows line endings and a byte order mark.
        let crlf = GUIDE_SAMPLE.replace('\n', "\r\n");
        for text in [crlf, format!("\u{feff}{GUIDE_SAMPLE}")] {
            let (c, warnings) = parse_ok(&text);
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(c.user_id.as_deref(), Some("dirk_g"));
            assert_eq!(exposed(&c.proxy_password), Some("t0w3L"));
        }
        // A BOM does not shift columns.
        let e = parse_err("\u{feff}add_host: maybe\n", false);
        assert_eq!((e.line, e.column), (Some(1), Some(11)));
        // An explicit document start and end are fine.
        let (c, _) = parse_ok("---\nuser_id: a\n...\n");
        assert_eq!(c.user_id.as_deref(), Some("a"));
        // Tabs in comments and after values are not indentation.
        let (c, _) = parse_ok("\t# indented comment\nuser_id: a # trailing\tcomment\n");
        assert_eq!(c.user_id.as_deref(), Some("a"));
    }

    #[test]
    fn limits_on_nesting_and_aliases() {
        let deep = format!("user_id: {}{}\n", "[".repeat(200), "]".repeat(200));
        let e = parse_err(&deep, false);
        assert!(e.message.contains("nested more than"), "{e}");

        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let e = parse_err(&bomb, false);
        assert!(e.message.contains("alias loop"), "{e}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("templte_id", "template_id"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("URL"), Some("url"));
        assert_eq!(suggest("prox"), Some("proxy"));
        assert_eq!(suggest("completely_else"), None);
    }

    #[test]
    fn every_key_is_in_the_table_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
        let required: Vec<&str> = KEYS.iter().filter(|d| d.required).map(|d| d.name).collect();
        assert_eq!(required, ["user_id", "password", "template_id"]);
    }

    // --- load: the file system -------------------------------------------------------

    fn write(dir: &Path, name: &str, text: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "QualysGuard.yaml",
            GUIDE_SAMPLE.as_bytes(),
            0o600,
        );
        let (c, warnings) = load(&path, true, &no_env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.path, path);
        assert_eq!(c.template_id.as_deref(), Some("424242"));
    }

    #[test]
    fn load_missing_file_hints_at_plugininfo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("InputPlugins/QualysGuard.yaml");
        let e = load(&path, true, &no_env).unwrap_err();
        assert_eq!(e.path, path);
        assert_eq!((e.line, e.key.as_deref()), (None, None));
        assert!(e.message.contains("not found"), "{e}");
        let hint = "use -plugininfo to name the YAML file (default InputPlugins/QualysGuard.yaml)";
        assert!(e.to_string().contains(hint), "{e}");
        assert!(e.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn load_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), true, &no_env).unwrap_err();
        assert_eq!(e.path, dir.path());
        assert!(e.message.contains("is a directory"), "{e}");
        assert!(e.message.contains("-plugininfo"), "{e}");
    }

    #[test]
    fn load_non_utf8_names_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "q.yaml", b"user_id: a\nsource: Qu\xe9\n", 0o600);
        let e = load(&path, false, &no_env).unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(11)), "{e}");
        assert!(e.message.contains("not valid UTF-8"), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2:11: ", path.display()))
        );
    }

    #[test]
    fn load_refuses_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# padding\n".repeat(120_000);
        let path = write(dir.path(), "big.yaml", text.as_bytes(), 0o600);
        let e = load(&path, false, &no_env).unwrap_err();
        assert!(e.message.contains("is larger than"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn load_unreadable_path() {
        // Permission bits do not stop root (CI runs as root), so the unreadable case is
        // a path through a regular file, which fails for every user.
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "q.yaml", GUIDE_SAMPLE.as_bytes(), 0o600);
        let path = file.join("inner.yaml");
        let e = load(&path, true, &no_env).unwrap_err();
        assert_eq!(e.path, path);
        assert!(e.to_string().contains("q.yaml/inner.yaml"), "{e}");
        assert!(
            e.to_string().to_lowercase().contains("not a directory"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_warns_about_readable_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let with_pw = format!("user_id: a\npassword: '{PW}'\ntemplate_id: 1\n");
        let with_proxy_pw = format!("proxy: http://p\nproxy_username: u\nproxy_password: {PW}\n");
        let without = "user_id: a\ntemplate_id: 1\n";
        // (text, mode, part of the expected warning)
        #[rustfmt::skip]
        let cases: &[(&str, u32, Option<&str>)] = &[
            (&with_pw, 0o644, Some("holds password but group or others can access it (mode 644)")),
            (&with_pw, 0o640, Some("(mode 640)")),
            (&with_pw, 0o604, Some("(mode 604)")),
            (&with_pw, 0o620, Some("(mode 620)")),
            (&with_proxy_pw, 0o644, Some("holds proxy_password but")),
            (&with_pw, 0o600, None),
            (&with_pw, 0o400, None),
            (without, 0o644, None),
        ];
        for (i, &(text, mode, want)) in cases.iter().enumerate() {
            let path = write(dir.path(), &format!("q{i}.yaml"), text.as_bytes(), mode);
            let (_, warnings) = load(&path, false, &no_env).unwrap();
            match want {
                Some(part) => {
                    assert_eq!(warnings.len(), 1, "{warnings:?}");
                    let w = &warnings[0];
                    assert!(w.starts_with(&format!("{}: ", path.display())), "{w}");
                    assert!(w.contains(part), "{w}");
                    assert!(w.contains(&format!("chmod 600 {}", path.display())), "{w}");
                    assert!(!w.contains(PW), "{w}");
                }
                None => assert!(warnings.is_empty(), "{mode:o}: {warnings:?}"),
            }
        }
        // A password only in the environment: nothing secret in the file.
        let path = write(dir.path(), "env.yaml", without.as_bytes(), 0o644);
        let env = |name: &str| (name == PASSWORD_ENV).then(|| PW.to_string());
        let (c, warnings) = load(&path, true, &env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.password_origin,
            Some(SecretOrigin::Env("QUALYS_PASSWORD"))
        );
        // The file's copy is exposed even when the environment overrides it.
        let path = write(dir.path(), "both.yaml", with_pw.as_bytes(), 0o644);
        let (_, warnings) = load(&path, true, &env).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn load_errors_carry_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "q.yaml",
            b"user_id: a\nadd_host: maybe\n",
            0o600,
        );
        let e = load(&path, false, &no_env).unwrap_err();
        assert_eq!(e.path, path);
        let want = "2:11: add_host: expected y, yes, true, n, no or false, got 'maybe'";
        assert_eq!(e.to_string(), format!("{}:{want}", path.display()));
    }

    #[test]
    fn fmc_delivery_keys() {
        let (c, _) = parse_ok("");
        assert!(c.verify_fmc_certificate);
        assert_eq!(c.fmc_connect_timeout, Duration::from_secs(30));
        assert_eq!(c.fmc_reply_timeout, Duration::from_secs(600));
        assert_eq!(
            (c.fmc_retries, c.fmc_retry_wait),
            (3, Duration::from_secs(2))
        );
        let (c, _) = parse_ok(
            "verify_fmc_certificate: n\nfmc_connect_timeout: 5\nfmc_reply_timeout: 0.5e1\nfmc_retries: 0\nfmc_retry_wait: 0.25\n",
        );
        assert!(!c.verify_fmc_certificate);
        assert_eq!(c.fmc_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.fmc_reply_timeout, Duration::from_secs(5));
        assert_eq!(
            (c.fmc_retries, c.fmc_retry_wait),
            (0, Duration::from_millis(250))
        );
        let cases = [
            (
                "verify_fmc_certificate: maybe\n",
                "1:25: verify_fmc_certificate: expected y, yes",
            ),
            (
                "fmc_connect_timeout: 0\n",
                "1:22: fmc_connect_timeout: expected a number of seconds from 1 to 3600",
            ),
            (
                "fmc_reply_timeout: soon\n",
                "fmc_reply_timeout: expected a number of seconds",
            ),
            (
                "fmc_retries: -1\n",
                "fmc_retries: expected a whole number from 0 to 100, got '-1'",
            ),
            (
                "fmc_retries: 101\n",
                "fmc_retries: expected a whole number from 0 to 100",
            ),
            (
                "fmc_retry_wait: NaN\n",
                "fmc_retry_wait: expected a number of seconds",
            ),
        ];
        for (text, want) in cases {
            let e = parse_err(text, false).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn detection_keys() {
        let (c, _) = parse_ok("");
        assert_eq!(c.qualys_source, QualysSource::Report);
        assert_eq!(
            (c.detection_api_path.as_str(), c.kb_api_path.as_str()),
            ("/api/2.0", "/api/2.0")
        );
        assert_eq!((c.hosts_per_call, c.qualys_workers), (1000, None));
        let (c, _) = parse_ok(
            "qualys_source: detections\nips: 10.0.0.0/8, 192.0.2.1-192.0.2.9\nag_ids: [12, 20-25]\nuse_tags: y\ntag_set_include: 7\ndetection_api_path: /api/5.0/\nkb_api_path: /api/4.0\nhosts_per_call: 300\ninclude_ignored: y\nqualys_workers: 3\n",
        );
        assert_eq!(c.qualys_source, QualysSource::Detections);
        assert_eq!(
            c.scope_ips.as_deref(),
            Some("10.0.0.0/8,192.0.2.1-192.0.2.9")
        );
        assert_eq!(c.scope_ag_ids.as_deref(), Some("12,20-25"));
        assert!(c.scope_use_tags);
        assert_eq!(c.detection_api_path, "/api/5.0");
        assert_eq!(c.kb_api_path, "/api/4.0");
        assert_eq!((c.hosts_per_call, c.qualys_workers), (300, Some(3)));
        assert!(c.include_ignored && !c.include_disabled);
        // Table: (text, words of the error).
        let cases = [
            ("qualys_source: api\n", "expected report or detections"),
            ("ips: 10.0.0.300\n", "ips"),
            ("ag_ids: 12, x\n", "expected IDs or ranges of IDs"),
            (
                "kb_api_path: /api/5.0\n",
                "expected one of /api/2.0, /api/3.0, /api/4.0",
            ),
            ("detection_api_path: /api/1.0\n", "expected one of /api/2.0"),
            (
                "hosts_per_call: 0\n",
                "expected a whole number from 1 to 10000",
            ),
            (
                "qualys_workers: 99\n",
                "expected a whole number from 1 to 32",
            ),
            (
                "ag_ids: 1\nag_titles: Servers\n",
                "ag_ids and ag_titles do not go together",
            ),
            ("use_tags: y\n", "use_tags: y needs tag_set_include"),
            ("tag_set_include: 5\n", "tag_set_include needs use_tags: y"),
        ];
        for (text, want) in cases {
            let e = parse_err(text, false).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // The detection path needs no template; the report path does.
        let creds = "user_id: u\npassword: p\n";
        let with = format!("{creds}qualys_source: detections\n");
        assert!(parse_str(Path::new(PATH), &with, true, &no_env).is_ok());
        let e = parse_err(creds, true).to_string();
        assert!(e.contains("template_id"), "{e}");
    }

    #[test]
    fn sync_keys() {
        let (c, _) = parse_ok("");
        assert_eq!(c.sync_state, None);
        assert_eq!(c.vanished_hosts, VanishedHosts::Keep);
        assert_eq!(c.max_vanished_percent, 20.0);
        assert_eq!(c.full_sync_days, 7);
        let (c, _) = parse_ok(
            "sync_state: sync.db\nvanished_hosts: CLEAR\nmax_vanished_percent: 5.5%\nfull_sync_days: 0\n",
        );
        assert_eq!(c.sync_state, Some(PathBuf::from("sync.db")));
        assert_eq!(c.vanished_hosts, VanishedHosts::Clear);
        assert_eq!(c.max_vanished_percent, 5.5);
        assert_eq!(c.full_sync_days, 0);
        // Table: (line, words of the error).
        let cases = [
            (
                "sync_state: /nonexistent/dir/s.db\n",
                "the directory '/nonexistent/dir' of",
            ),
            ("sync_state: /\n", "is a directory: sync_state names a file"),
            (
                "vanished_hosts: delete\n",
                "expected keep or clear, got 'delete'",
            ),
            (
                "max_vanished_percent: 101\n",
                "expected a percentage from 0 to 100",
            ),
            (
                "max_vanished_percent: lots\n",
                "expected a percentage from 0 to 100",
            ),
            (
                "full_sync_days: -1\n",
                "expected a whole number of days from 0 (never) to 3650",
            ),
            ("full_sync_days: 1.5\n", "expected a whole number of days"),
        ];
        for (text, want) in cases {
            let e = parse_err(text, false).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn bound_keys() {
        let (c, _) = parse_ok("");
        assert_eq!(c.qualys_max_wait, Duration::from_secs(3600));
        assert_eq!(c.download_deadline, Duration::from_secs(14_400));
        assert_eq!(c.max_report_bytes, 50_000_000_000);
        assert_eq!(c.tmp_min_free, 1 << 30);
        assert_eq!(c.max_run_seconds, Duration::from_secs(72_000));
        let (c, _) = parse_ok(
            "qualys_max_wait: 5\ndownload_deadline: 60\nmax_report_bytes: 2 MiB\ntmp_min_free: 0\nmax_run_seconds: 90\n",
        );
        assert_eq!(c.qualys_max_wait, Duration::from_secs(5));
        assert_eq!(c.download_deadline, Duration::from_secs(60));
        assert_eq!(c.max_report_bytes, 2 << 20);
        assert_eq!(c.tmp_min_free, 0);
        assert_eq!(c.max_run_seconds, Duration::from_secs(90));
        let sizes = [
            ("123", Some(123)),
            ("50GB", Some(50_000_000_000)),
            ("1 gib", Some(1 << 30)),
            ("7kB", Some(7_000)),
            ("2TiB", Some(2 << 40)),
            ("", None),
            ("GB", None),
            ("-1", None),
            ("1.5GB", None),
            ("10 parsecs", None),
            ("99999999999999999999", None),
            ("18446744073709551615 KB", None),
        ];
        for (text, want) in sizes {
            assert_eq!(parse_bytes(text), want, "{text:?}");
        }
        let cases = [
            (
                "qualys_max_wait: 0\n",
                "1:18: qualys_max_wait: expected a number of seconds from 1 to 86400",
            ),
            (
                "download_deadline: forever\n",
                "download_deadline: expected a number of seconds",
            ),
            (
                "max_report_bytes: 0\n",
                "max_report_bytes: expected a size in bytes of at least 1",
            ),
            (
                "tmp_min_free: lots\n",
                "tmp_min_free: expected a size in bytes",
            ),
            (
                "max_run_seconds: 0\n",
                "max_run_seconds: expected a number of seconds from 1 to 604800",
            ),
        ];
        for (text, want) in cases {
            let e = parse_err(text, false).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
