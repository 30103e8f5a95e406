//! The detection source in a run (`qualys_source: detections`, qualys.md §7): the host
//! IDs in scope, their Host List Detection pages fetched by worker threads, each whole
//! page's QIDs looked up in the KnowledgeBase (cached), then its hosts encoded and sent
//! while later pages download. Fixed detections are asked for and dropped here, so a
//! host whose findings were all fixed still comes back and gets the generic result. An
//! address met again (another record of the same machine) merges with ScanUpdate.

use std::collections::{BTreeSet, HashSet};
use std::io::BufReader;
use std::time::{Duration, Instant};

use super::qualysguard::{self, Destination};
use super::sync::SyncContext;
use super::{Done, Run};
use crate::cli::Args;
use crate::config::Config;
use crate::exit::Failure;
use crate::hostinput::CommandSink;
use crate::model::FindingType;
use crate::pipeline::{PipelineError, Sent, Settings, Stream};
use crate::qualys::client::{DownloadError, Qualys};
use crate::qualys::detection::fetch::{self, FetchError, FetchOptions};
use crate::qualys::detection::kbcache::{self, KbCache};
use crate::qualys::detection::page::{self, DetectedHost};
use crate::qualys::detection::sent::{Prior, SentSet};

/// The options that do not apply to this source, refused before anything is done.
pub fn refuse_options(args: &Args) -> Result<(), Failure> {
    let option = match (&args.report, &args.multiinfo) {
        (Some(_), _) => "-report",
        (None, Some(_)) => "-multiinfo",
        (None, None) => return Ok(()),
    };
    Err(Failure::Invalid(format!(
        "{option} does not apply to qualys_source: detections (it reads report templates); the detection path's scope is ips, ag_ids or ag_titles, use_tags and tag_set_include"
    )))
}

/// For `check`: one Host List call and one KnowledgeBase call, each tried once.
pub fn probe(qualys: &Qualys, config: &Config) -> Result<String, Failure> {
    let opts = FetchOptions {
        api_path: config.detection_api_path.clone(),
        hosts_per_call: 1,
        workers: 1,
        detection_params: Vec::new(),
        scope_params: scope_params(config),
        page_tries: 1,
    };
    let (_, ids) = fetch::host_ids(qualys, &opts).map_err(fetch_failure)?;
    let dir = tempfile::tempdir().map_err(|e| Failure::Spill(e.to_string()))?;
    let cache =
        KbCache::open(&dir.path().join("kb.db")).map_err(|e| Failure::Spill(e.to_string()))?;
    let (found, _) =
        kbcache::lookup(qualys, &cache, &config.kb_api_path, &[6], 64).map_err(fetch_failure)?;
    Ok(format!(
        "logged in as {}; Host List ({}): {} host IDs in scope; KnowledgeBase ({}): {}",
        config.user_id.as_deref().unwrap_or_default(),
        config.detection_api_path,
        ids.ids,
        config.kb_api_path,
        if found.is_empty() {
            "answers"
        } else {
            "answers (QID 6 found)"
        }
    ))
}

/// The scope as the sync state names it.
pub fn scope_name(config: &Config) -> String {
    let mut parts = vec!["detections".to_string()];
    for (key, value) in scope_params(config) {
        parts.push(format!("{key}={value}"));
    }
    parts.join(" ")
}

/// The scope parameters, as Qualys takes them.
fn scope_params(config: &Config) -> Vec<(String, String)> {
    let tags = config.scope_use_tags.then_some("1".to_string());
    let tag_set = config
        .scope_tag_set_include
        .clone()
        .filter(|_| config.scope_use_tags);
    [
        ("ips", config.scope_ips.clone()),
        ("ag_ids", config.scope_ag_ids.clone()),
        ("ag_titles", config.scope_ag_titles.clone()),
        ("use_tags", tags),
        ("tag_set_include", tag_set),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect()
}

fn fetch_options(config: &Config, settings: &Settings, qualys: &Qualys) -> FetchOptions {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut detection_params = vec![
        (
            "status".to_string(),
            "New,Active,Re-Opened,Fixed".to_string(),
        ),
        (
            "show_igs".to_string(),
            flag(settings.include_types.contains(&FindingType::Ig)),
        ),
        ("show_results".to_string(), "0".to_string()),
        ("include_ignored".to_string(), flag(config.include_ignored)),
        (
            "include_disabled".to_string(),
            flag(config.include_disabled),
        ),
    ];
    detection_params.extend(scope_params(config));
    FetchOptions {
        api_path: config.detection_api_path.clone(),
        hosts_per_call: config.hosts_per_call,
        workers: workers(config, qualys),
        detection_params,
        scope_params: scope_params(config),
        page_tries: config.qualys_retries + 1,
    }
}

/// Worker threads: `qualys_workers`, else the concurrency limit less the slot left for
/// other tools (qualys.md §7); the shared limits hold the calls to that either way.
fn workers(config: &Config, qualys: &Qualys) -> usize {
    config
        .qualys_workers
        .unwrap_or_else(|| qualys.concurrency().saturating_sub(1).max(1)) as usize
}

/// Runs the detection source into the run's destination.
pub fn run(
    args: &Args,
    config: &Config,
    settings: &Settings,
    destination: &Destination,
    qualys: &Qualys,
    sync: Option<&mut SyncContext>,
) -> Vec<Run> {
    vec![Run::timed(None, || {
        run_once(args, config, settings, destination, qualys, sync)
    })]
}

/// Taken off the checkpoint before it is used as `vm_processed_after`: Qualys's
/// processing of a scan and the start of a pull may overlap.
const CHECKPOINT_MARGIN_SECS: u64 = 3600;

fn run_once(
    args: &Args,
    config: &Config,
    settings: &Settings,
    destination: &Destination,
    qualys: &Qualys,
    mut sync: Option<&mut SyncContext>,
) -> Done {
    let early = |failure: Failure| Box::new((None, failure));
    let started = Instant::now();
    let (sink, confirmations) =
        qualysguard::template_sink(args, destination, sync.is_some(), false, None)
            .map_err(early)?;
    // The KnowledgeBase cache lives in the sync state's database when there is one.
    let cache_at = match sync.as_ref().and_then(|s| s.writable_state()) {
        Some(state) => CacheAt::State(state),
        None => match &config.kb_cache {
            Some(path) => CacheAt::File(path.clone()),
            None => CacheAt::Temporary,
        },
    };
    let scope = scope_name(config);
    // A delta run with a checkpoint asks only for hosts Qualys processed since; those it
    // does not get back are unchanged, not vanished.
    let mut since = None;
    if let (Some(ctx), Destination::Fmc(server, target)) = (sync.as_deref_mut(), destination) {
        let (full, checkpoint) = ctx
            .pull_plan(target, (server, args.port), scope.clone())
            .map_err(early)?;
        since = checkpoint.filter(|_| !full).and_then(|c| minus_margin(&c));
        ctx.set_incremental(since.is_some());
        if let Some(after) = &since {
            log::info!(
                "an incremental pull: hosts Qualys processed after {after} (the last complete pull's start, less {CHECKPOINT_MARGIN_SECS} s)"
            );
        }
    }
    let (sink, report) = match (sync.as_deref_mut(), destination) {
        (Some(ctx), Destination::Fmc(server, target)) => {
            let (sink, report) = ctx
                .wrap_scoped(sink, confirmations, target, (server, args.port), scope)
                .map_err(early)?;
            (sink, Some(report))
        }
        _ => (sink, None),
    };
    let mut pulled_at = None;
    let delivered = deliver(
        config,
        settings,
        qualys,
        sink,
        (&cache_at, report.as_ref()),
        since.as_deref(),
    )
    .map(|(summary, at)| {
        pulled_at = at;
        summary
    })
    .map_err(qualysguard::stopped_delivery);
    let download = Some(started.elapsed());
    let done = qualysguard::conclude(delivered, report, download, args, config, destination)?;
    // Only a complete pull whose every host was confirmed moves the checkpoint.
    if let (Some(ctx), Some(at)) = (sync, pulled_at) {
        ctx.save_checkpoint(&at)
            .map_err(|f| Box::new((Some(done.clone()), f)))?;
    }
    Ok(done)
}

/// `2026-12-01T10:00:00Z` less the margin, in the same form; `None` if it is not that form.
fn minus_margin(iso: &str) -> Option<String> {
    let b = iso.trim().as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| iso.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - CHECKPOINT_MARGIN_SECS as i64;
    let secs = u64::try_from(secs).ok()?;
    Some(crate::logging::utc_timestamp(
        std::time::UNIX_EPOCH + Duration::from_secs(secs),
    ))
}

/// Where the KnowledgeBase cache is kept.
enum CacheAt {
    /// In the sync state's database, through its connection.
    State(std::rc::Rc<crate::sync::State>),
    /// In its own file (`kb_cache`).
    File(std::path::PathBuf),
    /// For this run only.
    Temporary,
}

/// Fetches and delivers every page; the summary, or the failure.
fn deliver(
    config: &Config,
    settings: &Settings,
    qualys: &Qualys,
    mut sink: Box<dyn CommandSink>,
    (cache_at, report): (
        &CacheAt,
        Option<&std::sync::Arc<std::sync::Mutex<crate::sync::SyncReport>>>,
    ),
    since: Option<&str>,
) -> Result<(crate::pipeline::Summary, Option<String>), Failure> {
    let mut opts = fetch_options(config, settings, qualys);
    if let Some(after) = since {
        for params in [&mut opts.detection_params, &mut opts.scope_params] {
            params.push(("vm_processed_after".into(), after.to_string()));
        }
    }
    let (ranges, ids) = fetch::host_ids(qualys, &opts).map_err(fetch_failure)?;
    // The Host List's answer stated the concurrency limit: the workers follow it.
    opts.workers = workers(config, qualys);
    log::info!(
        "Host List: {} host IDs in scope; Host List Detection in batches of {}, {} at once",
        ids.ids,
        opts.hosts_per_call,
        opts.workers
    );
    let tmp_cache = tempfile::NamedTempFile::new()
        .map_err(|e| Failure::Spill(format!("KnowledgeBase cache: {e}")))?;
    let cache = open_cache(cache_at, tmp_cache.path())?;
    // Entries Qualys changed since the last run's refresh are fetched again.
    let refreshed = kbcache::refresh(
        qualys,
        &cache,
        &config.kb_api_path,
        settings.description_length,
    )
    .map_err(fetch_failure)?;
    if refreshed > 0 {
        log::info!("KnowledgeBase cache: {refreshed} entries changed since the last run, updated");
    }
    let stream = Stream::start(settings, sink.as_mut()).map_err(pipeline_failure)?;
    let mut pages = Pages {
        config,
        settings,
        qualys,
        sink: sink.as_mut(),
        stream,
        sent: SentSet::new().map_err(|e| Failure::Spill(format!("the addresses sent: {e}")))?,
        cache: &cache,
        ranges: &ranges,
        unknown: HashSet::new(),
        stamp: crate::logging::utc_timestamp(std::time::SystemTime::now()).replace([':', '-'], ""),
        kb_time: Duration::ZERO,
    };
    let batches = fetch::batches(&ranges, opts.hosts_per_call);
    let mut failure: Option<Failure> = None;
    let fetched = fetch::pages(qualys, &opts, batches, &mut |p| {
        pages.page(&p).map_err(|f| {
            failure.get_or_insert(f);
            "stopped".to_string()
        })
    });
    log::debug!("KnowledgeBase lookups took {:.2?}", pages.kb_time);
    let Pages { stream, .. } = pages;
    if let Err(e) = fetched {
        let failure = failure.unwrap_or_else(|| fetch_failure(e));
        return Err(deliver_before_failing(
            failure,
            stream,
            sink.as_mut(),
            report,
        ));
    }
    let summary = stream.finish(sink.as_mut()).map_err(pipeline_failure)?;
    if let Some(at) = &ids.datetime {
        kbcache::mark_refreshed(&cache, at).map_err(fetch_failure)?;
    }
    Ok((summary, ids.datetime))
}

/// The KnowledgeBase cache where `at` says (`temporary`: the file for one run).
fn open_cache<'a>(at: &'a CacheAt, temporary: &std::path::Path) -> Result<KbCache<'a>, Failure> {
    match at {
        CacheAt::State(state) => {
            KbCache::within(state.connection(), &state.path().display().to_string())
        }
        CacheAt::File(path) => KbCache::open(path),
        CacheAt::Temporary => KbCache::open(temporary),
    }
    .map_err(|e| Failure::Spill(e.to_string()))
}

/// A pull that failed part-way: the hosts handed over are whole, so they are delivered
/// and confirmed (and, with sync_state, recorded) before the run fails; no host counts
/// as vanished. A rerun sends the rest.
fn deliver_before_failing(
    failure: Failure,
    stream: Stream<'_>,
    sink: &mut dyn CommandSink,
    report: Option<&std::sync::Arc<std::sync::Mutex<crate::sync::SyncReport>>>,
) -> Failure {
    if matches!(failure, Failure::Sink(_)) {
        return failure;
    }
    if let Some(report) = report {
        report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .incomplete = true;
    }
    match stream.finish(sink) {
        Ok(s) => log::warn!(
            "the pull failed part-way: {} hosts were delivered and confirmed before it",
            s.delivery.hosts
        ),
        Err(e) => log::error!("delivering the hosts fetched before the failure: {e:?}"),
    }
    failure
}

/// What each whole page goes through.
struct Pages<'a, 's> {
    config: &'a Config,
    settings: &'s Settings,
    qualys: &'a Qualys,
    sink: &'a mut dyn CommandSink,
    stream: Stream<'s>,
    sent: SentSet,
    cache: &'a KbCache<'a>,
    /// The Host List's IDs, to notice a host it did not give.
    ranges: &'a [crate::qualys::detection::ids::IdRange],
    /// QIDs the KnowledgeBase did not know: not asked for again.
    unknown: HashSet<u32>,
    stamp: String,
    kb_time: Duration,
}

impl Pages<'_, '_> {
    /// Keeps the page if asked, looks up its new QIDs, sends its hosts.
    fn page(&mut self, p: &fetch::FetchedPage) -> Result<(), Failure> {
        if let Some(dir) = &self.config.keep_report {
            // Every page is kept for audit, as whole downloaded reports are.
            let kept = dir.join(format!(
                "detections-{}-batch{}-page{}.xml",
                self.stamp,
                p.batch + 1,
                p.page + 1
            ));
            std::fs::copy(p.file.path(), &kept).map_err(|e| {
                Failure::Spill(format!("cannot keep the page as {}: {e}", kept.display()))
            })?;
        }
        let file = std::fs::File::open(p.file.path())
            .map_err(|e| Failure::Spill(format!("a page: {e}")))?;
        let mut hosts: Vec<DetectedHost> = Vec::new();
        page::parse(BufReader::new(file), &mut |h| {
            hosts.push(h);
            Ok(())
        })
        .map_err(|e| fetch_failure(FetchError::Document(e)))?;
        self.details_for(&hosts)?;
        for h in &hosts {
            self.send(h)?;
        }
        Ok(())
    }

    /// The KnowledgeBase entries of the page's QIDs not known yet.
    fn details_for(&mut self, hosts: &[DetectedHost]) -> Result<(), Failure> {
        let qids: BTreeSet<u32> = hosts
            .iter()
            .flat_map(|h| h.host.findings.iter().map(|f| f.qid))
            .filter(|q| !self.stream.knows(*q) && !self.unknown.contains(q))
            .collect();
        if qids.is_empty() {
            return Ok(());
        }
        let qids: Vec<u32> = qids.into_iter().collect();
        let started = Instant::now();
        let (details, lookup) = kbcache::lookup(
            self.qualys,
            self.cache,
            &self.config.kb_api_path,
            &qids,
            self.settings.description_length,
        )
        .map_err(fetch_failure)?;
        self.kb_time += started.elapsed();
        self.unknown.extend(lookup.unknown);
        for (qid, d) in details {
            self.stream.add_details(qid, d);
        }
        Ok(())
    }

    fn send(&mut self, h: &DetectedHost) -> Result<(), Failure> {
        if !listed(self.ranges, h.id) {
            log::warn!(
                "Host List Detection returned host ID {} ({}), which the Host List did not list: sent all the same",
                h.id,
                h.host.ip
            );
        }
        let spill = |e: rusqlite::Error| Failure::Spill(format!("the addresses sent: {e}"));
        let prior = self.sent.prior(h.host.ip).map_err(spill)?;
        let done = self
            .stream
            .host(&h.host, prior == Prior::Findings, &mut *self.sink)
            .map_err(pipeline_failure)?;
        if done != Sent::OutOfRange {
            self.sent
                .record(h.host.ip, done == Sent::Findings)
                .map_err(spill)?;
        }
        Ok(())
    }
}

/// Whether the Host List gave `id` (its ranges come sorted).
fn listed(ranges: &[crate::qualys::detection::ids::IdRange], id: u64) -> bool {
    let i = ranges.partition_point(|r| r.last < id);
    ranges.get(i).is_some_and(|r| r.first <= id)
}

fn pipeline_failure(e: PipelineError) -> Failure {
    match e {
        PipelineError::Sink(e) => Failure::Sink(e),
        PipelineError::Spill(e) => Failure::Spill(e.to_string()),
        PipelineError::Report(e) => Failure::Spill(e.to_string()),
    }
}

fn fetch_failure(e: FetchError) -> Failure {
    match e {
        FetchError::Download(e) => Failure::Download(Box::new(e)),
        FetchError::Local(e) => Failure::Spill(format!("the detection pages: {e}")),
        other => Failure::Download(Box::new(DownloadError::Unexpected {
            call: "host list detection",
            message: other.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_the_host_list_gave() {
        use crate::qualys::detection::ids::IdRange;
        let ranges = [
            IdRange { first: 5, last: 9 },
            IdRange {
                first: 20,
                last: 20,
            },
        ];
        // Table: (ID, listed).
        for (id, want) in [
            (4, false),
            (5, true),
            (9, true),
            (10, false),
            (20, true),
            (21, false),
        ] {
            assert_eq!(listed(&ranges, id), want, "{id}");
        }
        assert!(!listed(&[], 1));
    }

    #[test]
    fn the_checkpoint_margin() {
        // Table: (checkpoint, what is asked for).
        let cases = [
            ("2026-12-01T10:00:00Z", Some("2026-12-01T09:00:00Z")),
            ("2026-03-01T00:30:00Z", Some("2026-02-28T23:30:00Z")),
            ("2024-03-01T00:00:00Z", Some("2024-02-29T23:00:00Z")),
            ("2026-12-01 10:00:00", None),
            ("yesterday", None),
            ("2026-13-01T10:00:00Z", None),
        ];
        for (at, want) in cases {
            assert_eq!(minus_margin(at).as_deref(), want, "{at}");
        }
    }
}
