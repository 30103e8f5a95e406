//! The checks behind every fuzz target, one public function per target, each taking the raw
//! fuzz input and panicking when the library panics or breaks one of its documented
//! invariants. The fuzz targets (`fuzz_targets/*.rs`) are one-line wrappers around these,
//! and the regression tests (`tests/cli/fuzz_regressions.rs`) include this very file with
//! `#[path]`, so a saved reproducer is replayed through exactly the code that found it.
//!
//! Only the stable language and the library's public API are used here: the file must
//! build both in the nightly fuzz crate and in the stable test suite.

use std::ffi::OsString;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use qualys_connector::cli;
use qualys_connector::config;
use qualys_connector::filter::IpRanges;
use qualys_connector::hostinput::commands::{self, Commit, ScanResult};
use qualys_connector::hostinput::framing::{self, FrameType};
use qualys_connector::hostinput::pkcs12;
use qualys_connector::hostinput::validate::{LineKind, check_line};
use qualys_connector::hostinput::{CommandSink, Delivery, HostBlock, SinkError};
use qualys_connector::model::{FindingType, Host, VulnDetails, VulnStatus};
use qualys_connector::pipeline::{self, PipelineError, Settings};
use qualys_connector::qualys::html;
use qualys_connector::qualys::lossy::{self, LossyUtf8};
use qualys_connector::qualys::readahead::ReadAhead;
use qualys_connector::qualys::report::{self, ParseOptions, ReportStats, ReportVisitor};
use qualys_connector::secret::Secret;

/// One target's check: the raw fuzz input in, a panic out when something is wrong.
pub type Check = fn(&[u8]);

/// Every target by name, for the regression tests (which replay `fuzz/regressions/<name>/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("report_pipeline", report_pipeline),
    ("report_parser", report_parser),
    ("config", config),
    ("ip_ranges", ip_ranges),
    ("cli", cli),
    ("frame_decoder", frame_decoder),
    ("csv_line", csv_line),
    ("pkcs12", pkcs12),
    ("text", text),
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A reader handing out at most `chunk` bytes per call, so that UTF-8 sequences and XML
/// tokens get split across reads.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(self.chunk).min(out.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A cheap deterministic hash (FNV-1a), to derive parameters from the input itself.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How many invalid UTF-8 sequences a lossy decoder must replace in `data`.
fn invalid_sequences(data: &[u8]) -> u64 {
    data.utf8_chunks()
        .filter(|chunk| !chunk.invalid().is_empty())
        .count() as u64
}

/// The invalid UTF-8 sequences a report reader repairs in `data`: none in a document
/// that declares a single-byte encoding, which is decoded instead.
fn expected_replacements(data: &[u8]) -> u64 {
    if lossy::decodes_single_byte(data) {
        0
    } else {
        invalid_sequences(data)
    }
}

// ---------------------------------------------------------------------------------------
// report_pipeline
// ---------------------------------------------------------------------------------------

/// A sink that keeps nothing but checks everything it is given: every line must pass the
/// strict command-file validator, blocks must be well formed, and nothing may arrive
/// before the report has parsed.
struct CheckingSink<'a> {
    settings: &'a Settings,
    preambles: u64,
    hosts: u64,
    scan_results: u64,
    finished: bool,
    /// What was sent, per host block: the address and each AddScanResult's content.
    sent: Vec<(IpAddr, Vec<Sent>)>,
    /// Hosts whose listings so far had nothing to send (cleared with a generic result):
    /// their first later listing with findings flushes again.
    cleared: Vec<IpAddr>,
}

/// The parts of one AddScanResult line compared with the report: QID, port, protocol
/// number and the name field (without its quotes).
type Sent = (u32, Option<u16>, Option<u8>, String);

/// Reads the fields back out of an AddScanResult line that passed `check_line` (so it has
/// exactly ten comma-separated fields and no comma inside a field).
fn sent_fields(line: &str) -> Sent {
    fn number<T: std::str::FromStr>(fields: &[&str], i: usize) -> Option<T> {
        fields.get(i).and_then(|f| f.parse().ok())
    }
    let fields: Vec<&str> = line.split(',').collect();
    let qid = number(&fields, 3).unwrap_or_else(|| panic!("no QID in {line:?}"));
    let name = fields
        .get(6)
        .map_or("", |f| f.trim_matches('"'))
        .to_string();
    (qid, number(&fields, 4), number(&fields, 5), name)
}

/// Splits a command block into lines, checking that it is whole lines of ASCII.
fn block_lines(bytes: &[u8]) -> Vec<&str> {
    assert!(
        bytes.ends_with(b"\n"),
        "a command block does not end with a newline: {:?}",
        String::from_utf8_lossy(bytes)
    );
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => panic!(
            "command bytes are not UTF-8 ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    assert!(text.is_ascii(), "command bytes are not ASCII: {text:?}");
    let body = &text[..text.len() - 1];
    body.split('\n').collect()
}

fn valid_line(line: &str) -> LineKind {
    match check_line(line) {
        Ok(kind) => kind,
        Err(e) => panic!("the pipeline produced an invalid Host Input line ({e}): {line:?}"),
    }
}

impl CommandSink for CheckingSink<'_> {
    fn preamble(&mut self, bytes: &[u8], commands: usize) -> Result<(), SinkError> {
        assert_eq!(self.preambles, 0, "preamble sent twice");
        assert_eq!(self.hosts, 0, "preamble sent after a host");
        let lines = block_lines(bytes);
        assert_eq!(lines.len(), commands, "preamble command count: {lines:?}");
        for line in lines {
            assert_eq!(valid_line(line), LineKind::SetSource, "{line:?}");
        }
        self.preambles += 1;
        Ok(())
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        assert_eq!(self.preambles, 1, "host block before the preamble");
        assert!(!self.finished, "host block after finish");
        assert!(
            self.settings.ip_ranges.contains(block.ip),
            "host {} is outside ip_ranges but was sent",
            block.ip
        );
        let lines = block_lines(block.bytes);
        assert_eq!(
            lines.len(),
            block.commands,
            "block command count: {lines:?}"
        );
        // A host the report lists again is merged into what was sent for it: ScanUpdate;
        // unless all it was sent was the generic result of "nothing open".
        let repeat = self.sent.iter().any(|(ip, _)| *ip == block.ip);
        let replaces_generic = repeat && block.findings > 0 && self.cleared.contains(&block.ip);
        let keyword = if repeat && !replaces_generic {
            Commit::Update.keyword()
        } else {
            self.settings.commit.keyword()
        };
        if replaces_generic {
            self.cleared.retain(|ip| *ip != block.ip);
        } else if !repeat && block.findings == 0 && self.settings.commit == Commit::Flush {
            self.cleared.push(block.ip);
        }
        let mut generic = 0;
        let mut findings = 0;
        let mut sent = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            match valid_line(line) {
                LineKind::Commit => {
                    assert!(last, "commit inside a block: {lines:?}");
                    assert_eq!(*line, keyword, "wrong commit keyword");
                }
                LineKind::Host(ip) => {
                    assert!(!last, "block does not end with a commit: {lines:?}");
                    assert_eq!(
                        ip,
                        Some(block.ip),
                        "line for another host in block: {line:?}"
                    );
                    if line.starts_with("AddScanResult,") && line.split(',').nth(3) == Some("") {
                        generic += 1;
                    } else if line.starts_with("AddScanResult,") {
                        findings += 1;
                        sent.push(sent_fields(line));
                    } else {
                        assert!(line.starts_with("AddHost,"), "unexpected line {line:?}");
                        assert!(self.settings.add_host && i == 0, "stray AddHost: {lines:?}");
                    }
                }
                other => panic!("unexpected {other:?} line in a host block: {line:?}"),
            }
        }
        if self.settings.add_host {
            assert!(
                lines[0].starts_with("AddHost,"),
                "AddHost missing: {lines:?}"
            );
        }
        assert_eq!(findings, block.findings, "block finding count: {lines:?}");
        // A host with nothing open gets one generic result before its ScanFlush, so the
        // FMC replaces its old results (host-input.md §4); merged, it gets none.
        let wants_generic = findings == 0 && keyword == Commit::Flush.keyword();
        assert_eq!(
            generic,
            usize::from(wants_generic),
            "generic results: {lines:?}"
        );
        self.hosts += 1;
        self.scan_results += findings as u64;
        self.sent.push((block.ip, sent));
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        assert_eq!(self.preambles, 1, "finish without a preamble");
        assert!(!self.finished, "finish called twice");
        self.finished = true;
        Ok(Delivery::default())
    }
}

fn pipeline_settings(data: &[u8]) -> [Settings; 2] {
    let restricted = match IpRanges::parse("0.0.0.0/1, 192.0.2.0/24, 2001:db8::/32") {
        Ok(ranges) => ranges,
        Err(e) => panic!("fixed ip_ranges do not parse: {e}"),
    };
    [
        // The defaults of an empty configuration file.
        Settings {
            source: config::DEFAULT_SOURCE.to_string(),
            commit: Commit::Flush,
            add_host: false,
            include_types: config::DEFAULT_INCLUDE_TYPES.to_vec(),
            description_length: config::DEFAULT_DESCRIPTION_LENGTH,
            ip_ranges: IpRanges::default(),
        },
        // Everything switched the other way, with a short description (0 to 4 characters,
        // to exercise the cut) and a filter.
        Settings {
            source: "Scanner  'two' #2".to_string(),
            commit: Commit::Update,
            add_host: true,
            include_types: FindingType::ALL.to_vec(),
            description_length: data.len() % 5,
            ip_ranges: restricted,
        },
    ]
}

/// What the pipeline must send for a report the parser read as `collected`: each host in
/// range, in report order, with its findings of the included types that are not Fixed,
/// named by the last glossary entry for their QID.
fn expected_sends(collected: &Collected, settings: &Settings) -> Vec<(IpAddr, Vec<Sent>)> {
    let mut names = std::collections::HashMap::new();
    for (qid, details) in &collected.details {
        let mut name = Vec::new();
        commands::sanitize_into(&mut name, &details.title, usize::MAX);
        names.insert(*qid, String::from_utf8_lossy(&name).into_owned());
    }
    collected
        .hosts
        .iter()
        .filter(|host| settings.ip_ranges.contains(host.ip))
        .map(|host| {
            let findings = host
                .findings
                .iter()
                .filter(|f| settings.include_types.contains(&f.kind))
                .filter(|f| f.status != VulnStatus::Fixed)
                .map(|f| {
                    let name = names.get(&f.qid).cloned().unwrap_or_default();
                    (f.qid, f.port, f.protocol.map(|p| p.number()), name)
                })
                .collect();
            (host.ip, findings)
        })
        .collect()
}

/// Report bytes through the whole pipeline into a checking sink, under two settings: the
/// first read from the slice, the second (like the connector) through a `ReadAhead` thread.
/// What is sent must be what the parser on its own finds in the report.
pub fn report_pipeline(data: &[u8]) {
    for (index, settings) in pipeline_settings(data).into_iter().enumerate() {
        let options = ParseOptions {
            description_length: settings.description_length,
        };
        let (collected, parsed) = parse_collect(data, options);
        let mut sink = CheckingSink {
            settings: &settings,
            preambles: 0,
            hosts: 0,
            scan_results: 0,
            finished: false,
            sent: Vec::new(),
            cleared: Vec::new(),
        };
        let result = if index == 0 {
            pipeline::run(data, &settings, &mut sink)
        } else {
            match ReadAhead::spawn(io::Cursor::new(data.to_vec())) {
                Ok(source) => pipeline::run_source(source, &settings, &mut sink),
                // No thread to be had: the machine's trouble, not the input's.
                Err(_) => continue,
            }
        };
        match result {
            Ok(summary) => {
                assert!(sink.finished, "Ok without finish()");
                assert_eq!(summary.hosts_in_range, sink.hosts, "hosts in range vs sent");
                assert_eq!(
                    summary.findings_selected, sink.scan_results,
                    "findings selected vs AddScanResult lines sent"
                );
                assert_eq!(
                    summary.report.replaced_utf8,
                    expected_replacements(data),
                    "replaced UTF-8 count"
                );
                let Ok(stats) = &parsed else {
                    panic!("the pipeline succeeded where the parser failed: {parsed:?}");
                };
                let r = &summary.report;
                assert_eq!(
                    (r.hosts, r.host_errors, r.bad_hosts, r.bad_findings, r.bytes),
                    (
                        stats.hosts,
                        stats.host_errors,
                        stats.bad_hosts,
                        stats.bad_findings,
                        stats.bytes
                    ),
                    "parse statistics differ from the parser's"
                );
                assert_eq!(
                    r.glossary_entries, stats.glossary_entries,
                    "glossary entries"
                );
                assert_eq!(
                    sink.sent,
                    expected_sends(&collected, &settings),
                    "what was sent differs from what the report holds"
                );
            }
            Err(PipelineError::Report(e)) => {
                let shown = format!("{e} (offset {:?})", e.offset());
                assert_eq!(Err(&shown), parsed.as_ref(), "pipeline and parser disagree");
                assert_eq!(
                    (sink.preambles, sink.hosts),
                    (0, 0),
                    "output reached the sink although the report did not parse ({e})"
                );
            }
            // Temporary-file trouble is the machine's, not the input's.
            Err(PipelineError::Spill(_)) => {}
            Err(e @ PipelineError::Sink(_)) => panic!("the checking sink never fails: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// report_parser
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, PartialEq, Eq)]
struct Collected {
    hosts: Vec<Host>,
    details: Vec<(u32, VulnDetails)>,
}

impl ReportVisitor for Collected {
    fn host(&mut self, host: &Host) -> io::Result<()> {
        self.hosts.push(host.clone());
        Ok(())
    }

    fn vuln_details(&mut self, qid: u32, details: VulnDetails) {
        self.details.push((qid, details));
    }
}

fn parse_collect(
    input: impl Read,
    options: ParseOptions,
) -> (Collected, Result<ReportStats, String>) {
    let mut collected = Collected::default();
    let result = report::parse(input, options, &mut collected).map_err(|e| {
        let offset = e.offset();
        format!("{e} (offset {offset:?})")
    });
    (collected, result)
}

/// The streaming parser on its own: the same result whether the input arrives whole, in
/// small pieces or through the `ReadAhead` thread, and what it hands out respects the data
/// model's promises.
pub fn report_parser(data: &[u8]) {
    let description_length = [512, 0, 1, 3, 4, 16, 65536][data.len() % 7];
    let options = ParseOptions { description_length };
    let (collected, result) = parse_collect(data, options);
    let chunk = 1 + (hash(data) % 13) as usize;
    let (collected_chunked, result_chunked) = parse_collect(Chunked { data, chunk }, options);
    assert_eq!(
        result, result_chunked,
        "result depends on read sizes (chunk {chunk})"
    );
    assert_eq!(
        collected, collected_chunked,
        "parsed content depends on read sizes (chunk {chunk})"
    );

    if let Ok(source) = ReadAhead::spawn(io::Cursor::new(data.to_vec())) {
        let mut collected_ahead = Collected::default();
        let result_ahead = report::parse_source(source, options, &mut collected_ahead)
            .map_err(|e| format!("{e} (offset {:?})", e.offset()));
        assert_eq!(result, result_ahead, "result differs through ReadAhead");
        assert_eq!(
            collected, collected_ahead,
            "content differs through ReadAhead"
        );
    }

    for host in &collected.hosts {
        for f in &host.findings {
            assert_eq!(f.port.is_some(), f.protocol.is_some(), "{host:?}");
            assert_ne!(f.port, Some(0), "{host:?}");
        }
    }
    for (qid, details) in &collected.details {
        for text in [&details.title, &details.description]
            .into_iter()
            .chain(&details.cve_ids)
            .chain(&details.bugtraq_ids)
        {
            assert!(
                text.len() <= report::MAX_FIELD,
                "QID {qid}: a text of {} bytes, more than MAX_FIELD",
                text.len()
            );
        }
        let chars = details.description.chars().count();
        assert!(
            chars <= description_length,
            "QID {qid}: description of {chars} characters, limit {description_length}: {:?}",
            details.description
        );
        for id in details.cve_ids.iter().chain(&details.bugtraq_ids) {
            assert!(!id.is_empty() && id.trim() == id, "QID {qid}: id {id:?}");
        }
    }
    if let Ok(stats) = result {
        assert_eq!(
            stats.hosts - stats.host_errors - stats.bad_hosts,
            collected.hosts.len() as u64,
            "hosts visited vs counted: {stats:?}"
        );
        assert_eq!(stats.glossary_entries, collected.details.len() as u64);
        assert_eq!(
            stats.replaced_utf8,
            expected_replacements(data),
            "replaced UTF-8 count"
        );
    }
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

const SECRET_A: &str = "Fz-secret-AAAA-7q";
const SECRET_B: &str = "Fz-secret-BBBB-7q";

/// Everything a configuration parse shows a user: the error, or the warnings and the
/// configuration's `Debug` form (documented as safe to log).
fn config_outcome(text: &str, require: bool, env: &dyn Fn(&str) -> Option<String>) -> String {
    match config::parse_str(Path::new("fuzz.yaml"), text, require, env) {
        Ok((config, warnings)) => {
            assert!(config.description_length <= config::MAX_DESCRIPTION_LENGTH);
            assert!(!config.include_types.is_empty());
            assert!(
                !config.source.contains(['"', ',']) && config.source.is_ascii(),
                "source {:?}",
                config.source
            );
            let shown = config.ip_ranges.to_string();
            assert_eq!(
                IpRanges::parse(&shown).ok().as_ref(),
                Some(&config.ip_ranges),
                "ip_ranges {shown:?} does not parse back"
            );
            format!("{config:?}\n{}", warnings.join("\n"))
        }
        Err(e) => e.to_string(),
    }
}

/// The configuration file parser: no panic, valid results, and secrets never shown.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let no_env = |_: &str| None;
    config_outcome(&text, false, &no_env);

    // A password set on the first line must not show up in any message, whatever follows.
    // Two runs with different secrets tell a leak from the input's own copy of the text.
    let a = config_outcome(&format!("password: '{SECRET_A}'\n{text}"), true, &no_env);
    let b = config_outcome(&format!("password: '{SECRET_B}'\n{text}"), true, &no_env);
    assert!(
        !a.contains(SECRET_A) || b.contains(SECRET_A),
        "the file's password is shown: {a}"
    );
    // The same for the password from the environment.
    let env_a = |name: &str| (name == config::PASSWORD_ENV).then(|| SECRET_A.to_string());
    let env_b = |name: &str| (name == config::PASSWORD_ENV).then(|| SECRET_B.to_string());
    let a = config_outcome(&text, true, &env_a);
    let b = config_outcome(&text, true, &env_b);
    assert!(
        !a.contains(SECRET_A) || b.contains(SECRET_A),
        "the environment's password is shown: {a}"
    );
}

// ---------------------------------------------------------------------------------------
// ip_ranges
// ---------------------------------------------------------------------------------------

/// Addresses to test membership of: fixed ones and ones made from the input's bytes.
fn probe_addresses(data: &[u8]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = vec![
        Ipv4Addr::UNSPECIFIED.into(),
        Ipv4Addr::BROADCAST.into(),
        Ipv4Addr::new(192, 0, 2, 10).into(),
        Ipv4Addr::new(10, 1, 2, 3).into(),
        Ipv6Addr::UNSPECIFIED.into(),
        Ipv6Addr::LOCALHOST.into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        Ipv6Addr::from(u128::MAX).into(),
    ];
    for chunk in data.chunks(4).take(8) {
        let mut octets = [0u8; 4];
        octets[..chunk.len()].copy_from_slice(chunk);
        ips.push(Ipv4Addr::from(octets).into());
    }
    for chunk in data.chunks(16).take(4) {
        let mut octets = [0u8; 16];
        octets[..chunk.len()].copy_from_slice(chunk);
        ips.push(Ipv6Addr::from(octets).into());
    }
    ips
}

fn parse_ip(text: &str) -> IpAddr {
    match text.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("Display wrote {text:?}, which is not an address: {e}"),
    }
}

/// An IPv6 address inside the IPv4-mapped block, which `contains` tests as IPv4.
fn mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn neighbour(ip: IpAddr, up: bool) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => {
            let n = u32::from(a);
            let n = if up {
                n.checked_add(1)
            } else {
                n.checked_sub(1)
            }?;
            Some(Ipv4Addr::from(n).into())
        }
        IpAddr::V6(a) => {
            let n = u128::from(a);
            let n = if up {
                n.checked_add(1)
            } else {
                n.checked_sub(1)
            }?;
            Some(Ipv6Addr::from(n).into())
        }
    }
}

/// `IpRanges::parse` on arbitrary text; what parses must answer `contains` consistently
/// and print as a canonical form that parses back to an equal value.
pub fn ip_ranges(data: &[u8]) {
    let spec = String::from_utf8_lossy(data);
    let ranges = match IpRanges::parse(&spec) {
        Ok(ranges) => ranges,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let shown = ranges.to_string();
    match IpRanges::parse(&shown) {
        Ok(again) => {
            assert_eq!(again, ranges, "{spec:?} printed as {shown:?}");
            assert_eq!(again.to_string(), shown);
        }
        Err(e) => panic!("{spec:?} printed as {shown:?}, which does not parse: {e}"),
    }
    for ip in probe_addresses(data) {
        let inside = ranges.contains(ip);
        if ranges.is_unrestricted() {
            assert!(inside, "unrestricted but {ip} is outside");
        }
        if let IpAddr::V4(v4) = ip {
            assert_eq!(
                inside,
                ranges.contains(IpAddr::V6(v4.to_ipv6_mapped())),
                "{ip} and its IPv4-mapped form disagree for {shown:?}"
            );
        }
    }
    if ranges.is_unrestricted() {
        return;
    }
    // The canonical intervals are merged: each holds its ends, and (being non-adjacent)
    // not the addresses just outside them.
    let mut count = 0;
    for entry in shown.split(", ") {
        count += 1;
        let (start, end) = match entry.split_once('-') {
            Some((s, e)) => (parse_ip(s), parse_ip(e)),
            None => (parse_ip(entry), parse_ip(entry)),
        };
        for (ip, outside) in [
            (Some(start), false),
            (Some(end), false),
            (neighbour(start, false), true),
            (neighbour(end, true), true),
        ] {
            let Some(ip) = ip else { continue };
            if mapped(ip) || (mapped(start) != mapped(end)) {
                continue;
            }
            assert_eq!(
                ranges.contains(ip),
                !outside,
                "{ip} for interval {entry:?} of {shown:?}"
            );
        }
    }
    assert_eq!(count, ranges.interval_count(), "{shown:?}");
}

// ---------------------------------------------------------------------------------------
// cli
// ---------------------------------------------------------------------------------------

/// The command line: arbitrary argv (words split at NUL bytes, not necessarily UTF-8).
pub fn cli(data: &[u8]) {
    let argv: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|word| OsString::from_vec(word.to_vec()))
        .collect();
    match cli::parse(&argv) {
        Ok(args) => {
            assert_ne!(args.port, 0);
            assert!(args.level <= 3, "level {}", args.level);
            if let Some(ids) = &args.multiinfo {
                assert!(!ids.is_empty());
                for (i, id) in ids.iter().enumerate() {
                    assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
                    assert!(!ids[..i].contains(id), "{id} twice");
                }
            }
            let _ = format!("{args:?}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "multi-line message {message:?}");
            if let cli::UsageError::UnknownOption { option }
            | cli::UsageError::AmbiguousOption { option, .. } = &e
            {
                assert!(!option.contains('='), "value after '=' shown: {option:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// frame_decoder
// ---------------------------------------------------------------------------------------

fn frames(mut input: impl Read) -> (Vec<framing::Frame>, String) {
    let mut frames = Vec::new();
    loop {
        match framing::read_frame(&mut input) {
            Ok(frame) => frames.push(frame),
            Err(e) => return (frames, e.to_string()),
        }
    }
}

/// Host Input framing: decoding arbitrary bytes, whole or a byte at a time; re-encoding
/// what decoded; and the "Done processing N commands." reader.
pub fn frame_decoder(data: &[u8]) {
    let (whole, end) = frames(data);
    let (trickled, end_trickled) = frames(Chunked { data, chunk: 1 });
    assert_eq!(whole, trickled, "frames depend on read sizes");
    assert_eq!(end, end_trickled);
    let mut consumed = 0;
    for frame in &whole {
        assert!(frame.value.len() <= framing::MAX_REPLY_LEN as usize);
        consumed += 8 + frame.value.len();
        let mut wire = Vec::new();
        if let Err(e) = framing::write_frame(&mut wire, frame.kind, &frame.value) {
            panic!("write_frame into a Vec failed: {e}");
        }
        assert_eq!(
            wire[..],
            data[consumed - wire.len()..consumed],
            "re-encoding"
        );
        if frame.kind == FrameType::Data || frame.kind == FrameType::Error {
            done(&frame.value);
        }
    }
    assert!(consumed <= data.len());
    done(data);
}

/// Every count comes from an exact count line, and every line is sorted exactly once.
fn done(reply: &[u8]) {
    let lines = framing::reply_lines(reply);
    for n in &lines.counts {
        let line = format!("Done processing {n} commands.");
        let found = reply
            .split(|&b| b == b'\n')
            .any(|l| l.strip_suffix(b"\r").unwrap_or(l) == line.as_bytes());
        assert!(found, "{n} from {reply:?}");
    }
    for e in &lines.errors {
        assert!(e[..5].eq_ignore_ascii_case(b"error"), "{e:?}");
    }
    let non_blank = reply
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        lines.counts.len() + lines.errors.len() + lines.others.len(),
        non_blank
    );
}

// ---------------------------------------------------------------------------------------
// csv_line
// ---------------------------------------------------------------------------------------

/// The command-file validator on arbitrary lines; and a valid AddScanResult line, shortened
/// to fit a block, must still be valid.
pub fn csv_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let kind = match check_line(line) {
            Ok(kind) => kind,
            Err(message) => {
                assert!(!message.is_empty());
                continue;
            }
        };
        if kind == LineKind::Skip {
            assert!(line.trim().is_empty() || line.starts_with('#'), "{line:?}");
            continue;
        }
        assert!(line.is_ascii() && !line.contains('\r'), "{line:?}");
        match kind {
            LineKind::Commit => assert!(line == "ScanFlush" || line == "ScanUpdate"),
            LineKind::SetSource => assert!(line.starts_with("SetSource,")),
            LineKind::Host(Some(ip)) if line.starts_with("AddScanResult,") => {
                let full = format!("{line}\n");
                let max = full.len().saturating_sub(hash(data) as usize % 96);
                if let Some(short) = commands::shorten_scan_result(full.as_bytes(), max) {
                    check_shortened(&short, max, ip);
                }
            }
            LineKind::Host(_) | LineKind::Stream | LineKind::Skip => {}
        }
    }
}

/// A line from `shorten_scan_result`: within the limit and still a valid line.
fn check_shortened(short: &[u8], max: usize, ip: IpAddr) {
    let shown = String::from_utf8_lossy(short);
    assert!(
        short.len() <= max,
        "{} bytes > {max}: {shown:?}",
        short.len()
    );
    assert!(short.ends_with(b"\"\n"), "{shown:?}");
    let Ok(text) = std::str::from_utf8(&short[..short.len() - 1]) else {
        panic!("shortened line is not UTF-8: {shown:?}");
    };
    match check_line(text) {
        Ok(kind) => assert_eq!(kind, LineKind::Host(Some(ip)), "{shown:?}"),
        Err(e) => panic!("shortened line is invalid ({e}): {shown:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// pkcs12
// ---------------------------------------------------------------------------------------

/// The password the seed files that have one use.
pub const PKCS12_PASSWORD: &str = "fuzz-Pw9q";

fn pkcs12_outcome(data: &[u8], password: Option<&Secret>) -> String {
    match pkcs12::from_bytes(Path::new("fuzz.pkcs12"), data, password) {
        Ok(identity) => {
            assert!(!identity.chain.is_empty(), "identity without a certificate");
            let shown = format!("{identity:?}");
            format!("ok {} {:?} {shown}", identity.chain.len(), identity.info)
        }
        Err(e) => e.to_string(),
    }
}

/// PKCS#12 decoding without a password and with one; messages never show the password.
pub fn pkcs12(data: &[u8]) {
    pkcs12_outcome(data, None);
    let given = pkcs12_outcome(data, Some(&Secret::new(PKCS12_PASSWORD)));
    let in_data = data
        .windows(PKCS12_PASSWORD.len())
        .any(|w| w == PKCS12_PASSWORD.as_bytes());
    assert!(
        in_data || !given.contains(PKCS12_PASSWORD),
        "the password is shown: {given}"
    );
}

// ---------------------------------------------------------------------------------------
// text
// ---------------------------------------------------------------------------------------

/// What a sanitised Host Input field may hold.
fn check_field(field: &[u8], max: usize, input: &str) {
    let shown = String::from_utf8_lossy(field);
    assert!(field.is_ascii(), "not ASCII: {shown:?} from {input:?}");
    assert!(
        !field
            .iter()
            .any(|&b| b == b'"' || b == b',' || b.is_ascii_control()),
        "unsafe byte in {shown:?} from {input:?}"
    );
    assert!(field.len() <= max, "{} > {max}: {shown:?}", field.len());
    assert!(
        !field.starts_with(b" ") && !field.ends_with(b" ") && !shown.contains("  "),
        "spaces not collapsed: {shown:?} from {input:?}"
    );
}

/// Text handling: the lossy UTF-8 reader, HTML to plain text, field sanitising and line
/// shortening. Input: one byte for a length limit, one for a read size, then the text.
pub fn text(data: &[u8]) {
    let (limit, read_size, body) = match data {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    let max = match limit {
        255 => usize::MAX,
        n => usize::from(n),
    };

    // LossyUtf8: always valid UTF-8, the same as the standard library's lossy decoding.
    let mut reader = LossyUtf8::new(Chunked {
        data: body,
        chunk: 1 + usize::from(read_size),
    });
    let mut out = Vec::new();
    let read = reader.read_to_end(&mut out);
    let expected = String::from_utf8_lossy(body);
    let decoded = match std::str::from_utf8(&out) {
        Ok(decoded) => decoded,
        Err(e) => panic!("LossyUtf8 produced invalid UTF-8: {e}"),
    };
    match read {
        // A declared encoding it cannot decode: refused, naming it.
        Err(e) => assert!(
            body.starts_with(b"<?xml") && e.to_string().contains("declares encoding="),
            "reading from a slice failed: {e}"
        ),
        // A single-byte encoding: one character a byte, nothing to repair.
        Ok(_) if lossy::decodes_single_byte(body) => {
            assert_eq!(decoded.chars().count(), body.len(), "one character a byte");
            assert_eq!(reader.replaced(), 0, "replacement count");
        }
        Ok(_) => {
            assert_eq!(decoded, expected, "differs from from_utf8_lossy");
            assert_eq!(
                reader.replaced(),
                invalid_sequences(body),
                "replacement count"
            );
        }
    }
    let text = expected.as_ref();

    // html::to_plain_text: at most `max` characters, whitespace collapsed.
    let plain = html::to_plain_text(text, max);
    assert!(
        plain.chars().count() <= max,
        "{} chars > {max}: {plain:?}",
        plain.chars().count()
    );
    assert!(
        !plain.starts_with(' ')
            && !plain.ends_with(' ')
            && !plain.contains("  ")
            && !plain.chars().any(|c| c != ' ' && c.is_whitespace()),
        "whitespace not collapsed: {plain:?} from {text:?}"
    );

    // sanitize_into: appends a safe field after whatever is already there.
    let mut field = b"AddScanResult,\"".to_vec();
    commands::sanitize_into(&mut field, text, max);
    assert!(field.starts_with(b"AddScanResult,\""), "prefix changed");
    check_field(&field[15..], max, text);

    // A whole AddScanResult line built from the text is valid, and stays valid when
    // shortened for a small block.
    let mut parts = text.splitn(4, '|');
    let name = parts.next().unwrap_or("");
    let description = parts.next().unwrap_or("");
    let ids = |s: Option<&str>| -> Vec<String> {
        s.unwrap_or("").split(' ').map(str::to_string).collect()
    };
    let cve_ids = ids(parts.next());
    let bugtraq_ids = ids(parts.next());
    let ip: IpAddr = if read_size % 2 == 0 {
        Ipv4Addr::new(192, 0, 2, limit).into()
    } else {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(limit)).into()
    };
    let port = (read_size % 3 != 0).then_some(u16::from(limit).max(1));
    let result = ScanResult {
        ip,
        scanner_id: config::DEFAULT_SOURCE,
        vuln_id: u32::from(read_size),
        port,
        protocol: port.map(|_| if limit % 2 == 0 { 6 } else { 17 }),
        name,
        description,
        cve_ids: &cve_ids,
        bugtraq_ids: &bugtraq_ids,
    };
    let mut line = Vec::new();
    commands::add_scan_result(&mut line, &result, max);
    let shown = String::from_utf8_lossy(&line);
    assert!(line.ends_with(b"\n"), "{shown:?}");
    match check_line(&shown[..shown.len() - 1]) {
        Ok(kind) => assert_eq!(kind, LineKind::Host(Some(ip)), "{shown:?}"),
        Err(e) => panic!("add_scan_result wrote an invalid line ({e}): {shown:?}"),
    }
    let short_max = line.len().saturating_sub(usize::from(limit) * 2);
    if let Some(short) = commands::shorten_scan_result(&line, short_max) {
        check_shortened(&short, short_max, ip);
    }

    // shorten_scan_result on arbitrary bytes: never longer than asked.
    if let Some(short) = commands::shorten_scan_result(body, max) {
        assert!(short.len() <= max, "{} > {max}", short.len());
    }
}
