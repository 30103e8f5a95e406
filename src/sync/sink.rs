//! The sync sink: sits in front of the real sink (the FMC, or `-delta-csv`'s file) and
//! passes on only what the FMC does not already hold.
//!
//! The order of writes is what keeps the state true whatever happens (a crash, a kill, a
//! lost reply): before a host goes out, its fingerprint is removed and that is committed;
//! its new fingerprint is written only once the FMC has confirmed the block holding its
//! commit. Hosts are handled in batches: one transaction records a batch's hosts (and
//! the confirmations received meanwhile), then the batch is passed on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use super::fingerprint::{self, Fingerprint};
use super::plan::{Kind, Plan};
use super::state::{Held, RunCounts, State, StateError, unix};
use crate::hostinput::commands::{self, Commit, Field, ResultTail};
use crate::hostinput::{CommandSink, Delivery, HostBlock, SinkError};

/// Hosts per transaction, and bytes of commands held back at most.
const BATCH_HOSTS: usize = 1000;
const BATCH_BYTES: usize = 1 << 20;
/// Vanished hosts read from the state at a time.
const VANISHED_PAGE: u32 = 1000;
/// Hosts sent and awaiting their confirmation, at most. Normally a few blocks' worth; a
/// sender that gave up confirms nothing more, and past this a host's confirmation is not
/// waited for: it stays without a fingerprint and is sent again next time (safe), so
/// memory does not grow with the hosts.
const PENDING_MAX: usize = 200_000;

/// `vanished_hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vanished {
    /// Their results stay on the FMC (the original's behaviour).
    #[default]
    Keep,
    /// They get the generic "no open findings" result and `ScanFlush`, then are forgotten.
    Clear,
}

impl Vanished {
    pub fn as_str(self) -> &'static str {
        match self {
            Vanished::Keep => "keep",
            Vanished::Clear => "clear",
        }
    }
}

/// Hosts the FMC confirmed, handed over by the FMC sink's sender thread.
#[derive(Debug, Clone, Default)]
pub struct Confirmations(Arc<Mutex<Vec<IpAddr>>>);

impl Confirmations {
    /// The hook for `FmcSink::on_confirmed`.
    pub fn hook(&self) -> impl Fn(&[IpAddr]) + Send + Sync + 'static {
        let queue = Arc::clone(&self.0);
        move |ips: &[IpAddr]| {
            queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(ips);
        }
    }

    fn take(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What the run did, for the log, the summary and `-summary-json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub state: String,
    pub destination: String,
    pub kind: Option<Kind>,
    pub reason: String,
    /// `-delta-csv`: nothing sent, the state not changed.
    pub preview: bool,
    pub vanished_mode: Vanished,
    /// Hosts whose fingerprint matched: not sent.
    pub unchanged: u64,
    pub new: u64,
    pub changed: u64,
    /// Later listings of hosts the report lists more than once (always sent).
    pub repeated: u64,
    pub vanished: u64,
    /// Vanished hosts sent the generic result (confirmed or not).
    pub clears_sent: u64,
    /// Vanished hosts whose clearing the FMC confirmed (forgotten).
    pub cleared: u64,
    /// The guard refused to clear: (vanished, hosts the destination had).
    pub clear_refused: Option<(u64, u64)>,
    /// Hosts the state tracks for the destination at the end, and how many of them with
    /// a confirmed fingerprint.
    pub tracked: u64,
    pub tracked_before: u64,
    /// Set by the source before `finish` when it stopped part-way (a pull that failed):
    /// the hosts it did not get to are not vanished, and a full sync replaces nothing.
    pub incomplete: bool,
}

/// The settings a sync sink needs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub vanished: Vanished,
    pub max_vanished_percent: f64,
    /// `-full`: the guard does not apply.
    pub forced_full: bool,
    /// The Host Input source and description length, for the generic result.
    pub source: String,
    pub description_length: usize,
    /// Whether hosts missing from this run's data vanished: not in an incremental pull
    /// (hosts Qualys did not re-process since the checkpoint are unchanged).
    pub judge_vanished: bool,
}

/// What a host sent and not yet confirmed becomes once it is.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Fingerprint(Fingerprint),
    /// Listed more than once: its whole content is in no single block, so no
    /// fingerprint is kept (it is sent again next time).
    Unfingerprinted,
    /// A vanished host's clearing: forgotten once confirmed.
    Clear,
}

/// A host held back until its batch is recorded.
#[derive(Debug)]
struct Queued {
    ip: IpAddr,
    commands: usize,
    findings: usize,
    start: usize,
    end: usize,
}

pub struct SyncSink {
    inner: Box<dyn CommandSink>,
    /// `None` for a preview without a readable state: every host is new. Shared by the
    /// templates of one run, which hold its lock throughout.
    state: Option<Rc<State>>,
    dest: i64,
    plan: Plan,
    options: SyncOptions,
    /// Writes nothing to the state (`-delta-csv`).
    preview: bool,
    run_id: Option<i64>,
    scanner: Field,
    nothing_open: ResultTail,
    batch: Vec<Queued>,
    bytes: Vec<u8>,
    seen_in_batch: usize,
    in_transaction: bool,
    pending: HashMap<IpAddr, Pending>,
    confirmations: Confirmations,
    report: Arc<Mutex<SyncReport>>,
}

impl std::fmt::Debug for SyncSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSink")
            .field("state", &self.state)
            .field("plan", &self.plan)
            .finish()
    }
}

/// How a sync sink is made.
#[allow(missing_debug_implementations)]
pub struct Parts {
    pub inner: Box<dyn CommandSink>,
    pub state: Option<Rc<State>>,
    pub dest: i64,
    pub plan: Plan,
    pub options: SyncOptions,
    pub preview: bool,
    pub confirmations: Confirmations,
    pub report: Arc<Mutex<SyncReport>>,
}

impl SyncSink {
    /// Starts the run in the state: its history record, and for a full sync the end of
    /// trust in every fingerprint of the destination.
    pub fn start(parts: Parts) -> Result<SyncSink, StateError> {
        let Parts {
            inner,
            state,
            dest,
            plan,
            options,
            preview,
            confirmations,
            report,
        } = parts;
        let mut run_id = None;
        let mut tracked_before = 0;
        if let Some(state) = &state {
            // A state shared by several templates: each starts with no host seen.
            state.reset_seen()?;
            tracked_before = state.tracked(dest)?;
            if !preview {
                state.begin()?;
                let started = (|| {
                    if plan.kind == Kind::Full {
                        state.forget_fingerprints(dest)?;
                    }
                    state.start_run(dest, plan.kind.as_str(), &plan.reason)
                })();
                match started {
                    Ok(id) => run_id = Some(id),
                    Err(e) => {
                        state.rollback();
                        return Err(e);
                    }
                }
                state.commit()?;
            }
        }
        {
            let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
            r.kind = Some(plan.kind);
            r.reason = plan.reason.clone();
            r.preview = preview;
            r.vanished_mode = options.vanished;
            r.tracked_before = tracked_before;
        }
        let scanner = Field::new(&options.source);
        let nothing_open = ResultTail::new(
            commands::NOTHING_OPEN_NAME,
            commands::NOTHING_OPEN_DESCRIPTION,
            &[],
            &[],
            options.description_length,
        );
        Ok(SyncSink {
            inner,
            state,
            dest,
            plan,
            options,
            preview,
            run_id,
            scanner,
            nothing_open,
            batch: Vec::new(),
            bytes: Vec::new(),
            seen_in_batch: 0,
            in_transaction: false,
            pending: HashMap::new(),
            confirmations,
            report,
        })
    }

    fn report(&self) -> std::sync::MutexGuard<'_, SyncReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ensure_transaction(&mut self) -> Result<(), StateError> {
        if let (Some(state), false) = (&self.state, self.in_transaction) {
            if self.preview {
                // Only the temporary table of seen hosts is written.
                state.begin_deferred()?;
            } else {
                state.begin()?;
            }
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Decides one host of the report: held back to be sent, or skipped.
    fn consider(&mut self, block: &HostBlock<'_>) -> Result<(), StateError> {
        self.ensure_transaction()?;
        let fp = fingerprint::of_block(block.bytes);
        let (first, held) = match &self.state {
            Some(state) => {
                let first = state.mark_seen(block.ip)?;
                let held = state.held(self.dest, block.ip)?;
                (first, held)
            }
            None => (true, Held::Nothing),
        };
        let pending = if !first {
            self.report().repeated += 1;
            Pending::Unfingerprinted
        } else {
            match held {
                Held::Confirmed(old) if old == fp && self.plan.kind == Kind::Delta => {
                    self.report().unchanged += 1;
                    return Ok(());
                }
                Held::Nothing => {
                    self.report().new += 1;
                    Pending::Fingerprint(fp)
                }
                Held::Pending | Held::Confirmed(_) => {
                    self.report().changed += 1;
                    Pending::Fingerprint(fp)
                }
            }
        };
        if let (Some(state), false) = (&self.state, self.preview) {
            state.mark_pending(self.dest, block.ip)?;
        }
        self.await_confirmation(block.ip, pending);
        let start = self.bytes.len();
        self.bytes.extend_from_slice(block.bytes);
        self.batch.push(Queued {
            ip: block.ip,
            commands: block.commands,
            findings: block.findings,
            start,
            end: self.bytes.len(),
        });
        Ok(())
    }

    fn await_confirmation(&mut self, ip: IpAddr, pending: Pending) {
        // A preview is confirmed by nobody. A host listed again replaces its entry.
        if !self.preview && (self.pending.len() < PENDING_MAX || self.pending.contains_key(&ip)) {
            self.pending.insert(ip, pending);
        }
    }

    /// Records the batch (and the confirmations received so far) in one transaction, then
    /// passes its hosts on.
    fn flush(&mut self) -> Result<(), SinkError> {
        if self.in_transaction {
            self.apply_confirmations().map_err(state_error)?;
            if let Some(state) = &self.state {
                state.commit().map_err(state_error)?;
            }
            self.in_transaction = false;
        }
        self.seen_in_batch = 0;
        let batch = std::mem::take(&mut self.batch);
        for q in &batch {
            self.inner.host(&HostBlock {
                ip: q.ip,
                commands: q.commands,
                findings: q.findings,
                bytes: &self.bytes[q.start..q.end],
            })?;
        }
        self.bytes.clear();
        Ok(())
    }

    /// Writes what the FMC confirmed: fingerprints, forgotten cleared hosts.
    fn apply_confirmations(&mut self) -> Result<(), StateError> {
        let confirmed = self.confirmations.take();
        let (Some(state), false) = (&self.state, self.preview) else {
            return Ok(());
        };
        let now = unix(std::time::SystemTime::now());
        let mut cleared = 0;
        for ip in confirmed {
            match self.pending.remove(&ip) {
                Some(Pending::Fingerprint(fp)) => state.confirm(self.dest, ip, &fp, now)?,
                Some(Pending::Clear) => {
                    state.forget(self.dest, ip)?;
                    cleared += 1;
                }
                Some(Pending::Unfingerprinted) | None => {}
            }
        }
        self.report().cleared += cleared;
        Ok(())
    }

    /// Vanished hosts: counted; with `clear`, and unless the guard refuses, each sent the
    /// generic result and `ScanFlush`.
    fn vanished(&mut self) -> Result<(), SinkError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if !self.options.judge_vanished || self.report().incomplete {
            return Ok(());
        }
        let vanished = state.unseen(self.dest).map_err(state_error)?;
        let before = self.report().tracked_before;
        self.report().vanished = vanished;
        if vanished == 0 || self.options.vanished == Vanished::Keep {
            return Ok(());
        }
        let share = vanished as f64 * 100.0 / before.max(1) as f64;
        if share > self.options.max_vanished_percent && !self.options.forced_full {
            self.report().clear_refused = Some((vanished, before));
            return Ok(());
        }
        let mut after = String::new();
        loop {
            let Some(state) = &self.state else {
                return Ok(());
            };
            let page = state
                .unseen_page(self.dest, &after, VANISHED_PAGE)
                .map_err(state_error)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.clone();
            self.ensure_transaction().map_err(state_error)?;
            for text in &page {
                let Ok(ip) = text.parse::<IpAddr>() else {
                    log::warn!(
                        "the sync state holds {text:?}, which is not an address: not cleared"
                    );
                    continue;
                };
                self.queue_clear(ip).map_err(state_error)?;
            }
            self.flush()?;
        }
    }

    fn queue_clear(&mut self, ip: IpAddr) -> Result<(), StateError> {
        if let (Some(state), false) = (&self.state, self.preview) {
            state.mark_pending(self.dest, ip)?;
        }
        self.await_confirmation(ip, Pending::Clear);
        let start = self.bytes.len();
        commands::generic_result(&mut self.bytes, ip, &self.scanner, &self.nothing_open);
        commands::commit(&mut self.bytes, Commit::Flush);
        self.batch.push(Queued {
            ip,
            commands: 2,
            findings: 0,
            start,
            end: self.bytes.len(),
        });
        self.report().clears_sent += 1;
        Ok(())
    }

    /// After the real sink finished: the last confirmations, a complete full sync's
    /// replacement of the destination's hosts, the run's record.
    fn conclude(&mut self, delivery: Option<&Delivery>) -> Result<(), StateError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if self.preview {
            self.report().tracked = state.tracked(self.dest)?;
            return Ok(());
        }
        if !self.in_transaction {
            state.begin()?;
            self.in_transaction = true;
        }
        self.apply_confirmations()?;
        let Some(state) = &self.state else {
            return Ok(());
        };
        let complete =
            delivery.is_some_and(|d| d.unconfirmed.is_empty()) && !self.report().incomplete;
        let refused = self.report().clear_refused.is_some();
        if complete && self.plan.kind == Kind::Full && self.options.vanished == Vanished::Keep {
            state.forget_unseen(self.dest)?;
        }
        let tracked = state.tracked(self.dest)?;
        let outcome = match (delivery, complete, refused) {
            (None, _, _) => "failed or stopped",
            (Some(_), false, _) => "unconfirmed",
            (Some(_), true, true) => "clear refused",
            (Some(_), true, false) => "success",
        };
        let counts = {
            let r = self.report();
            RunCounts {
                unchanged: r.unchanged,
                new: r.new,
                changed: r.changed,
                vanished: r.vanished,
                cleared: r.cleared,
                tracked,
            }
        };
        if let Some(id) = self.run_id {
            state.end_run(id, outcome, &counts)?;
        }
        state.commit()?;
        self.in_transaction = false;
        self.report().tracked = tracked;
        Ok(())
    }
}

impl Drop for SyncSink {
    /// A run that ended without `finish` (the pipeline failed): the batch not passed on
    /// is undone, so the state still describes only what was passed on and confirmed,
    /// and the state is ready for the next template.
    fn drop(&mut self) {
        if self.in_transaction
            && let Some(state) = &self.state
        {
            state.rollback();
        }
    }
}

fn state_error(e: StateError) -> SinkError {
    SinkError::State(e.to_string())
}

impl CommandSink for SyncSink {
    fn preamble(&mut self, bytes: &[u8], commands: usize) -> Result<(), SinkError> {
        self.inner.preamble(bytes, commands)
    }

    fn host(&mut self, block: &HostBlock<'_>) -> Result<(), SinkError> {
        if let Err(e) = self.consider(block) {
            if let Some(state) = &self.state {
                state.rollback();
            }
            self.in_transaction = false;
            return Err(state_error(e));
        }
        self.seen_in_batch += 1;
        if self.seen_in_batch >= BATCH_HOSTS || self.bytes.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        self.flush()?;
        self.vanished()?;
        let finished = self.inner.finish();
        if let Err(e) = self.conclude(finished.as_ref().ok()) {
            if let Some(state) = &self.state {
                state.rollback();
            }
            return Err(state_error(e));
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Destination;

    /// The hosts passed on, with their bytes.
    type Sent = Arc<Mutex<Vec<(IpAddr, Vec<u8>)>>>;

    /// Records the hosts passed on; confirms nothing by itself.
    #[derive(Default)]
    struct Memory(Sent);

    impl CommandSink for Memory {
        fn preamble(&mut self, _: &[u8], _: usize) -> Result<(), SinkError> {
            Ok(())
        }
        fn host(&mut self, b: &HostBlock<'_>) -> Result<(), SinkError> {
            self.0.lock().unwrap().push((b.ip, b.bytes.to_vec()));
            Ok(())
        }
        fn finish(&mut self) -> Result<Delivery, SinkError> {
            Ok(Delivery::default())
        }
    }

    fn block(ip: &str, qid: u32) -> (IpAddr, Vec<u8>) {
        let ip: IpAddr = ip.parse().unwrap();
        let bytes = format!(
            "AddScanResult,{ip},\"QualysGuard\",{qid},,,\"t\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\nScanFlush\n"
        );
        (ip, bytes.into_bytes())
    }

    struct Run {
        sent: Sent,
        confirmations: Confirmations,
        report: Arc<Mutex<SyncReport>>,
        sink: SyncSink,
    }

    fn run(state: &Rc<State>, kind: Kind, preview: bool, vanished: Vanished) -> Run {
        let d = Destination::new("10.0.0.1", 8307, b"ca", "QualysGuard", "t".into());
        let (dest, _) = state.destination(&d, true).unwrap().unwrap();
        let memory = Memory::default();
        let sent = Arc::clone(&memory.0);
        let confirmations = Confirmations::default();
        let report = Arc::new(Mutex::new(SyncReport::default()));
        let sink = SyncSink::start(Parts {
            inner: Box::new(memory),
            state: Some(Rc::clone(state)),
            dest,
            plan: Plan {
                kind,
                reason: "test".into(),
            },
            options: SyncOptions {
                vanished,
                max_vanished_percent: 50.0,
                forced_full: false,
                source: "QualysGuard".into(),
                description_length: 512,
                judge_vanished: true,
            },
            preview,
            confirmations: confirmations.clone(),
            report: Arc::clone(&report),
        })
        .unwrap();
        Run {
            sent,
            confirmations,
            report,
            sink,
        }
    }

    impl Run {
        /// Sends `hosts`, confirms those in `confirm` (the FMC's hook), finishes.
        fn go(
            mut self,
            hosts: &[(IpAddr, Vec<u8>)],
            confirm: &[&str],
        ) -> (Vec<IpAddr>, SyncReport) {
            self.sink.preamble(b"SetSource,QualysGuard\n", 1).unwrap();
            for (ip, bytes) in hosts {
                self.sink
                    .host(&HostBlock {
                        ip: *ip,
                        commands: 2,
                        findings: 1,
                        bytes,
                    })
                    .unwrap();
            }
            self.sink.flush().unwrap();
            let hook = self.confirmations.hook();
            let ips: Vec<IpAddr> = confirm.iter().map(|s| s.parse().unwrap()).collect();
            hook(&ips);
            self.sink.finish().unwrap();
            let sent = self
                .sent
                .lock()
                .unwrap()
                .iter()
                .map(|(ip, _)| *ip)
                .collect();
            let report = self.report.lock().unwrap().clone();
            (sent, report)
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_confirmed_hosts_are_skipped_later() {
        let dir = tempfile::tempdir().unwrap();
        let state = Rc::new(State::open(&dir.path().join("s.db")).unwrap());
        let a = block("192.0.2.1", 1);
        let b = block("192.0.2.2", 1);
        // A full sync of a and b; only a is confirmed.
        let (sent, _) = run(&state, Kind::Full, false, Vanished::Keep)
            .go(&[a.clone(), b.clone()], &["192.0.2.1"]);
        assert_eq!(sent, ips(&["192.0.2.1", "192.0.2.2"]));
        // Delta: a unchanged (skipped), b sent again (never confirmed).
        let (sent, r) = run(&state, Kind::Delta, false, Vanished::Keep)
            .go(&[a.clone(), b.clone()], &["192.0.2.2"]);
        assert_eq!(sent, ips(&["192.0.2.2"]));
        assert_eq!((r.unchanged, r.changed, r.new), (1, 1, 0));
        // Both confirmed now: nothing sent; a changed a is sent.
        let (sent, _) =
            run(&state, Kind::Delta, false, Vanished::Keep).go(&[a.clone(), b.clone()], &[]);
        assert!(sent.is_empty());
        let a2 = block("192.0.2.1", 2);
        let (sent, r) = run(&state, Kind::Delta, false, Vanished::Keep).go(&[a2, b.clone()], &[]);
        assert_eq!(sent, ips(&["192.0.2.1"]));
        assert_eq!(r.changed, 1);
        // a2 was not confirmed: a (the old content) must not be skipped either.
        let (sent, _) = run(&state, Kind::Delta, false, Vanished::Keep).go(&[a, b], &[]);
        assert_eq!(sent, ips(&["192.0.2.1"]));
    }

    #[test]
    fn a_host_listed_twice_keeps_no_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let state = Rc::new(State::open(&dir.path().join("s.db")).unwrap());
        let first = block("192.0.2.1", 1);
        let second = block("192.0.2.1", 2);
        let (sent, r) = run(&state, Kind::Full, false, Vanished::Keep)
            .go(&[first.clone(), second.clone()], &["192.0.2.1"]);
        assert_eq!(sent.len(), 2);
        assert_eq!(r.repeated, 1);
        // Both listings go again: the host's content was in no single block.
        let (sent, _) =
            run(&state, Kind::Delta, false, Vanished::Keep).go(&[first.clone(), second], &[]);
        assert_eq!(sent.len(), 2);
        assert_eq!(state.held(1, first.0).unwrap(), Held::Pending);
    }

    #[test]
    fn vanished_hosts_are_cleared_within_the_guard_and_a_preview_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = Rc::new(State::open(&dir.path().join("s.db")).unwrap());
        let hosts: Vec<_> = (1..=4).map(|i| block(&format!("192.0.2.{i}"), 1)).collect();
        let all: Vec<&str> = vec!["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
        run(&state, Kind::Full, false, Vanished::Clear).go(&hosts, &all);
        // A preview of a report without host 4: the clear is in the file, the state unchanged.
        let (sent, r) = run(&state, Kind::Delta, true, Vanished::Clear).go(&hosts[..3], &[]);
        assert_eq!(sent, ips(&["192.0.2.4"]));
        assert_eq!((r.vanished, r.clears_sent), (1, 1));
        assert_eq!(state.tracked(1).unwrap(), 4);
        // The real run: cleared, and once confirmed forgotten.
        let (sent, r) =
            run(&state, Kind::Delta, false, Vanished::Clear).go(&hosts[..3], &["192.0.2.4"]);
        assert_eq!(sent, ips(&["192.0.2.4"]));
        assert_eq!(r.cleared, 1);
        assert_eq!(state.tracked(1).unwrap(), 3);
        // Three of three gone: more than 50%: refused, nothing sent.
        let (sent, r) = run(&state, Kind::Delta, false, Vanished::Clear).go(&[], &[]);
        assert!(sent.is_empty());
        assert_eq!(r.clear_refused, Some((3, 3)));
        assert_eq!(state.tracked(1).unwrap(), 3);
    }

    #[test]
    fn a_sink_dropped_before_finish_undoes_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let state = Rc::new(State::open(&dir.path().join("s.db")).unwrap());
        let (ip, bytes) = block("192.0.2.1", 1);
        let mut r = run(&state, Kind::Full, false, Vanished::Keep);
        r.sink
            .host(&HostBlock {
                ip,
                commands: 2,
                findings: 1,
                bytes: &bytes,
            })
            .unwrap();
        drop(r);
        assert_eq!(state.held(1, ip).unwrap(), Held::Nothing, "never passed on");
        // The next template of the run starts cleanly.
        let (sent, _) = run(&state, Kind::Delta, false, Vanished::Keep).go(&[(ip, bytes)], &[]);
        assert_eq!(sent, vec![ip]);
    }
}
