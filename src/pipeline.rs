//! The main job: a Qualys report in, Host Input commands out.
//!
//! Two stages. First the report streams through the parser: hosts outside `ip_ranges` are
//! dropped, the findings to send (by type, not Fixed) are written to a spill file, and the
//! glossary is kept in memory. Only when the whole document has parsed (so a truncated
//! report is never half-applied) does the second stage read the spill back, join each
//! finding with its glossary entry and hand each host's commands to the sink.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::filter::IpRanges;
use crate::hostinput::commands::{self, Commit, Field, ResultTail};
use crate::hostinput::{CommandSink, Delivery, HostBlock, SinkError};
use crate::model::{Finding, FindingType, Host, VulnDetails, VulnStatus};
use crate::progress::{self, Stage};
use crate::qualys::lossy::LossyUtf8;
use crate::qualys::readahead::Utf8Source;
use crate::qualys::report::{self, ParseOptions, ReportError, ReportStats, ReportVisitor};
use crate::repeats::{Listings, Merges};
use crate::spill::{SpillReader, SpillWriter};

/// What to send, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: String,
    pub commit: Commit,
    pub add_host: bool,
    pub include_types: Vec<FindingType>,
    pub description_length: usize,
    pub ip_ranges: IpRanges,
}

/// Counts of everything the run saw and did, for the log and the exit status.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub report: ReportStats,
    pub hosts_in_range: u64,
    pub hosts_out_of_range: u64,
    /// Findings seen on in-range hosts, by type (index: `FindingType::index`).
    pub findings_by_type: [u64; 3],
    pub findings_fixed: u64,
    pub findings_excluded_type: u64,
    pub findings_selected: u64,
    /// Distinct QIDs sent that the glossary did not describe.
    pub qids_without_details: u64,
    /// Hosts the report listed more than once (merged, not replaced).
    pub repeated_hosts: u64,
    /// Characters of glossary titles and descriptions dropped because they have no
    /// ASCII transliteration (CJK, emoji, ...), counted once per glossary entry.
    pub untransliterated_chars: u64,
    /// Hosts with nothing to send that got the generic "no open findings" result, so
    /// their `ScanFlush` clears what the FMC held (host-input.md §4).
    pub hosts_cleared: u64,
    pub delivery: Delivery,
    pub parse_time: Duration,
    pub send_time: Duration,
    /// When the report was downloaded.
    pub download_time: Option<Duration>,
    /// What the incremental sync did (set by the run, not the pipeline).
    pub sync: Option<crate::sync::SyncReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("temporary storage failed: {0}")]
    Spill(#[source] io::Error),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Runs the whole job from `input` to `sink`.
pub fn run(
    input: impl Read,
    settings: &Settings,
    sink: &mut dyn CommandSink,
) -> Result<Summary, PipelineError> {
    run_source(LossyUtf8::new(input), settings, sink)
}

/// `run`, from a source that already delivers valid UTF-8 (the report reader thread).
pub fn run_source(
    input: impl Utf8Source,
    settings: &Settings,
    sink: &mut dyn CommandSink,
) -> Result<Summary, PipelineError> {
    parse_source(input, settings)?.deliver(settings, sink)
}

/// The first stage on its own: the whole report parsed, its hosts spilled. Nothing has
/// been sent; a caller may still drop it (a download that turned out to be cut).
pub fn parse_source(input: impl Utf8Source, settings: &Settings) -> Result<Parsed, PipelineError> {
    let started = Instant::now();
    let mut collector = Collector {
        settings,
        spill: SpillWriter::new().map_err(PipelineError::Spill)?,
        glossary: HashMap::new(),
        summary: Summary::default(),
        kept: Vec::new(),
        listings: Listings::default(),
    };
    let options = ParseOptions {
        description_length: settings.description_length,
    };
    let stats = report::parse_source(input, options, &mut collector)?;
    let Collector {
        spill,
        glossary,
        mut summary,
        listings,
        ..
    } = collector;
    let (merges, repeats) = listings.resolve().map_err(PipelineError::Spill)?;
    summary.repeated_hosts = repeats;
    summary.report = stats;
    summary.parse_time = started.elapsed();
    Ok(Parsed {
        spill,
        merges,
        glossary,
        summary,
    })
}

/// A report that parsed to its end: the spilled hosts and the glossary, ready to send.
#[derive(Debug)]
pub struct Parsed {
    spill: SpillWriter,
    merges: Merges,
    glossary: HashMap<u32, Encoded>,
    summary: Summary,
}

impl Parsed {
    /// The second stage: every host's commands to the sink, then the sink's accounting.
    pub fn deliver(
        self,
        settings: &Settings,
        sink: &mut dyn CommandSink,
    ) -> Result<Summary, PipelineError> {
        let Parsed {
            spill,
            mut merges,
            glossary,
            mut summary,
        } = self;
        log_parse_results(&summary);
        log::info!("QualysGuard Report Processing Complete");

        let started = Instant::now();
        progress::stage(Stage::Deliver, summary.hosts_in_range);
        let reader = spill.into_reader().map_err(PipelineError::Spill)?;
        send(reader, &mut merges, &glossary, settings, sink, &mut summary)?;
        summary.delivery = sink.finish()?;
        summary.send_time = started.elapsed();
        Ok(summary)
    }

    /// Overrides the parse time (when parsing overlapped a download, the part after it).
    pub fn set_parse_time(&mut self, time: Duration) {
        self.summary.parse_time = time;
    }
}

/// A glossary entry as the second stage needs it: the encoded end of its AddScanResult
/// lines, and the title for the debug log.
#[derive(Debug)]
struct Encoded {
    title: String,
    tail: ResultTail,
}

/// First stage: filters each host as it is parsed and spills what will be sent.
struct Collector<'a> {
    settings: &'a Settings,
    spill: SpillWriter,
    glossary: HashMap<u32, Encoded>,
    summary: Summary,
    kept: Vec<Finding>,
    /// Every listing spilled, to find the hosts listed more than once (on disk: a set of
    /// addresses in memory would grow with the report).
    listings: Listings,
}

impl ReportVisitor for Collector<'_> {
    fn host(&mut self, host: &Host) -> io::Result<()> {
        if !select(self.settings, host, &mut self.kept, &mut self.summary) {
            return Ok(());
        }
        // Only a ScanFlush with nothing to send stages the generic result that a later
        // listing with findings replaces (see `repeats`).
        let nothing = self.kept.is_empty() && self.settings.commit == Commit::Flush;
        self.listings.push(host.ip, nothing)?;
        self.spill.push(host.ip, self.kept.iter())
    }

    fn vuln_details(&mut self, qid: u32, details: VulnDetails) {
        let encoded = encode_details(details, self.settings, &mut self.summary);
        self.glossary.insert(qid, encoded);
    }
}

/// Whether `host` is in `ip_ranges` (counted either way); if so, `kept` holds the findings
/// to send: of the included types, not Fixed (counted by type and reason).
fn select(
    settings: &Settings,
    host: &Host,
    kept: &mut Vec<Finding>,
    summary: &mut Summary,
) -> bool {
    if !settings.ip_ranges.contains(host.ip) {
        summary.hosts_out_of_range += 1;
        log::debug!("host {} is outside ip_ranges: skipped", host.ip);
        return false;
    }
    summary.hosts_in_range += 1;
    progress::hosts(summary.hosts_in_range);
    kept.clear();
    for f in &host.findings {
        summary.findings_by_type[f.kind.index()] += 1;
        if !settings.include_types.contains(&f.kind) {
            summary.findings_excluded_type += 1;
        } else if f.status == VulnStatus::Fixed {
            summary.findings_fixed += 1;
        } else {
            kept.push(*f);
        }
    }
    summary.findings_selected += kept.len() as u64;
    true
}

/// A glossary (or KnowledgeBase) entry, encoded once for every line that uses it.
fn encode_details(details: VulnDetails, settings: &Settings, summary: &mut Summary) -> Encoded {
    let tail = ResultTail::new(
        &details.title,
        &details.description,
        &details.cve_ids,
        &details.bugtraq_ids,
        settings.description_length,
    );
    summary.untransliterated_chars += tail.untransliterated() as u64;
    Encoded {
        title: details.title,
        tail,
    }
}

/// What [`Stream::host`] did with a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Outside `ip_ranges`: not sent.
    OutOfRange,
    /// Sent with nothing open (the generic result under ScanFlush).
    Nothing,
    Findings,
}

/// Hosts encoded and sent one at a time, with a glossary that may grow between them: the
/// detection path (qualys.md §7), whose KnowledgeBase entries arrive page by page. The
/// same selection (`ip_ranges`, `include_types`, Fixed) and the same lines as the report
/// path. A host whose address was already sent in this stream is merged (ScanUpdate):
/// `repeat` is the caller's to say, as it keeps the set of addresses sent.
pub struct Stream<'s> {
    settings: &'s Settings,
    glossary: HashMap<u32, Encoded>,
    encoder: Encoder<'s>,
    summary: Summary,
    kept: Host,
    buf: Vec<u8>,
    started: Instant,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("glossary", &self.glossary.len())
            .finish()
    }
}

impl<'s> Stream<'s> {
    /// Sends the preamble (SetSource) to `sink`.
    pub fn start(
        settings: &'s Settings,
        sink: &mut dyn CommandSink,
    ) -> Result<Stream<'s>, PipelineError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        commands::set_source(&mut buf, &settings.source);
        sink.preamble(&buf, 1)?;
        Ok(Stream {
            settings,
            glossary: HashMap::new(),
            encoder: Encoder::new(settings),
            summary: Summary::default(),
            kept: Host {
                ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                findings: Vec::new(),
            },
            buf,
            started: Instant::now(),
        })
    }

    /// Whether the details of `qid` are known.
    pub fn knows(&self, qid: u32) -> bool {
        self.glossary.contains_key(&qid)
    }

    /// Adds the details of `qid` (a KnowledgeBase entry).
    pub fn add_details(&mut self, qid: u32, details: VulnDetails) {
        let encoded = encode_details(details, self.settings, &mut self.summary);
        self.glossary.insert(qid, encoded);
    }

    /// Selects, encodes and sends one host. `merge`: its address was sent before in this
    /// stream with findings, so this record merges (ScanUpdate); after a record with
    /// nothing to send (only the generic result) it replaces that one, as the report
    /// path does.
    pub fn host(
        &mut self,
        host: &Host,
        merge: bool,
        sink: &mut dyn CommandSink,
    ) -> Result<Sent, PipelineError> {
        if !select(
            self.settings,
            host,
            &mut self.kept.findings,
            &mut self.summary,
        ) {
            return Ok(Sent::OutOfRange);
        }
        let repeat = merge;
        self.kept.ip = host.ip;
        let commit = if repeat {
            self.summary.repeated_hosts += 1;
            Commit::Update
        } else {
            self.settings.commit
        };
        self.buf.clear();
        let count = self.encoder.host(
            &self.glossary,
            &mut self.buf,
            &self.kept,
            commit,
            &mut self.summary,
        );
        sink.host(&HostBlock {
            ip: self.kept.ip,
            commands: count,
            findings: self.kept.findings.len(),
            bytes: &self.buf,
        })?;
        Ok(if self.kept.findings.is_empty() {
            Sent::Nothing
        } else {
            Sent::Findings
        })
    }

    /// Completes the delivery: the sink's accounting in the summary.
    pub fn finish(mut self, sink: &mut dyn CommandSink) -> Result<Summary, PipelineError> {
        self.summary.qids_without_details = self.encoder.missing.len() as u64;
        self.summary.delivery = sink.finish()?;
        self.summary.send_time = self.started.elapsed();
        Ok(self.summary)
    }
}

fn log_parse_results(s: &Summary) {
    let r = &s.report;
    log::info!(
        "report: {} hosts ({} in ip_ranges, {} outside), {} glossary entries, {} bytes",
        r.hosts,
        s.hosts_in_range,
        s.hosts_out_of_range,
        r.glossary_entries,
        r.bytes
    );
    log::info!(
        "findings on hosts in range: {} Vuln, {} Practice, {} Ig; {} selected to send, {} of excluded types, {} Fixed",
        s.findings_by_type[FindingType::Vuln.index()],
        s.findings_by_type[FindingType::Practice.index()],
        s.findings_by_type[FindingType::Ig.index()],
        s.findings_selected,
        s.findings_excluded_type,
        s.findings_fixed
    );
    if r.host_errors + r.bad_hosts + r.bad_findings > 0 {
        log::warn!(
            "report: skipped {} hosts holding an ERROR, {} hosts without a valid IP, {} unreadable findings (see the warnings above)",
            r.host_errors,
            r.bad_hosts,
            r.bad_findings
        );
    }
    if r.replaced_utf8 > 0 {
        log::warn!(
            "report: {} invalid UTF-8 sequences were replaced (the report is not valid UTF-8)",
            r.replaced_utf8
        );
    }
}

/// Second stage: turns each spilled host into its command block and hands it to the sink.
fn send(
    mut reader: SpillReader,
    merges: &mut Merges,
    glossary: &HashMap<u32, Encoded>,
    settings: &Settings,
    sink: &mut dyn CommandSink,
    summary: &mut Summary,
) -> Result<(), PipelineError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    commands::set_source(&mut buf, &settings.source);
    sink.preamble(&buf, 1)?;

    let mut encoder = Encoder::new(settings);
    let mut host = Host {
        ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
        findings: Vec::new(),
    };
    let mut seq = 0;
    while reader.next_into(&mut host).map_err(PipelineError::Spill)? {
        buf.clear();
        let repeat = merges.merges(seq).map_err(PipelineError::Spill)?;
        seq += 1;
        let commit = if repeat {
            Commit::Update
        } else {
            settings.commit
        };
        let count = encoder.host(glossary, &mut buf, &host, commit, summary);
        sink.host(&HostBlock {
            ip: host.ip,
            commands: count,
            findings: host.findings.len(),
            bytes: &buf,
        })?;
    }
    summary.qids_without_details = encoder.missing.len() as u64;
    Ok(())
}

/// What the second stage encodes every host with (the glossary is the caller's: the
/// detection path's grows between hosts).
struct Encoder<'a> {
    settings: &'a Settings,
    scanner: Field,
    no_details: Encoded,
    /// The generic result of a host with nothing open.
    nothing_open: ResultTail,
    /// QIDs sent that the glossary did not describe.
    missing: HashSet<u32>,
    debug: bool,
}

impl<'a> Encoder<'a> {
    fn new(settings: &'a Settings) -> Encoder<'a> {
        Encoder {
            settings,
            scanner: Field::new(&settings.source),
            no_details: Encoded {
                title: String::new(),
                tail: ResultTail::empty(),
            },
            nothing_open: ResultTail::new(
                commands::NOTHING_OPEN_NAME,
                commands::NOTHING_OPEN_DESCRIPTION,
                &[],
                &[],
                settings.description_length,
            ),
            missing: HashSet::new(),
            debug: log::log_enabled!(log::Level::Debug),
        }
    }

    /// Appends one host's commands to `buf`, closed by `commit`; returns how many.
    fn host(
        &mut self,
        glossary: &HashMap<u32, Encoded>,
        buf: &mut Vec<u8>,
        host: &Host,
        commit: Commit,
        summary: &mut Summary,
    ) -> usize {
        let mut count = 0;
        if self.settings.add_host {
            commands::add_host(buf, host.ip);
            count += 1;
        }
        for f in &host.findings {
            self.finding(glossary, buf, host.ip, f);
            count += 1;
        }
        // A ScanFlush with nothing staged commits nothing for the host, which would
        // keep its old results (host-input.md §4): stage the generic result. Merged
        // (ScanUpdate) it would clear nothing and claim nothing is open beside the kept
        // results, so it is not sent then.
        if host.findings.is_empty() && commit == Commit::Flush {
            commands::generic_result(buf, host.ip, &self.scanner, &self.nothing_open);
            count += 1;
            summary.hosts_cleared += 1;
            log::debug!(
                "host {}: no open findings to send: its results are cleared",
                host.ip
            );
        }
        commands::commit(buf, commit);
        count + 1
    }

    /// Appends one finding's AddScanResult.
    fn finding(
        &mut self,
        glossary: &HashMap<u32, Encoded>,
        buf: &mut Vec<u8>,
        ip: IpAddr,
        f: &Finding,
    ) {
        let details = glossary.get(&f.qid);
        if details.is_none() && self.missing.insert(f.qid) {
            log::warn!(
                "QID {} (on host {ip}) is not in the report's glossary: sent without a title",
                f.qid
            );
        }
        let d = details.unwrap_or(&self.no_details);
        commands::add_scan_result_with(
            buf,
            ip,
            &self.scanner,
            f.qid,
            f.port,
            f.protocol.map(|p| p.number()),
            &d.tail,
        );
        if self.debug {
            log::debug!(
                "importing {} QID {} on {ip}{}: {}",
                f.kind,
                f.qid,
                match (f.port, f.protocol) {
                    (Some(port), Some(proto)) => format!(" port {port}/{}", proto.as_str()),
                    _ => String::new(),
                },
                d.title
            );
        }
    }
}

#[cfg(test)]
mod tests;
