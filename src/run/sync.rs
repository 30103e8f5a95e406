//! The incremental sync in a QualysGuard run (src/sync): the state opened and checked
//! before any network traffic and held (locked) for the whole run, each template's sink
//! wrapped, and what the sync did said in the log.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::fmc::FmcTarget;
use crate::cli::Args;
use crate::config::{Config, VanishedHosts};
use crate::exit::Failure;
use crate::hostinput::CommandSink;
use crate::pipeline::Settings;
use crate::sync::plan::{self, Inputs};
use crate::sync::sink::Parts;
use crate::sync::state::{Opened, unix};
use crate::sync::{
    Confirmations, Destination, Kind, State, SyncOptions, SyncReport, SyncSink, Vanished,
};

/// A template's sink behind the sync, and what the sync did (filled in as it goes).
pub type Wrapped = (Box<dyn CommandSink>, Arc<Mutex<SyncReport>>);

/// The run's sync state and settings.
#[derive(Debug)]
pub struct SyncContext {
    /// The destination of the last sink wrapped (for the detection path's checkpoint).
    last_dest: Option<i64>,
    state: Option<Rc<State>>,
    path: PathBuf,
    /// How the state was found (decides the first template's plan).
    opened: Opened,
    preview: bool,
    forced_full: bool,
    full_sync_days: u32,
    options: SyncOptions,
}

/// Opens the state when the run uses one (`sync_state`, and the FMC or `-delta-csv` as
/// the destination); `-csvfile` never does.
pub fn open(
    args: &Args,
    config: &Config,
    settings: &Settings,
) -> Result<Option<SyncContext>, Failure> {
    let Some(path) = config.sync_state.clone() else {
        if args.delta_csv.is_some() {
            return Err(Failure::Invalid(format!(
                "-delta-csv needs sync_state in {}: without a state every host would be sent",
                config.path.display()
            )));
        }
        if args.full {
            log::warn!("-full has no effect without sync_state: every run sends every host");
        }
        return Ok(None);
    };
    if args.csvfile.is_some() {
        if args.delta_csv.is_some() {
            return Err(Failure::Invalid(
                "-delta-csv and -csvfile do not go together: -csvfile writes every host, -delta-csv what a delta run would send".into(),
            ));
        }
        log::info!(
            "sync_state is not used with -csvfile: the file holds every host (a preview of a full sync)"
        );
        return Ok(None);
    }
    let preview = args.delta_csv.is_some();
    let (state, opened) = if preview {
        let (state, warnings) = State::open_read_only(&path)?;
        for w in warnings {
            log::warn!("{w}");
        }
        let opened = if state.is_some() {
            Opened::Existing
        } else {
            Opened::Created
        };
        (state, opened)
    } else {
        let state = State::open(&path)?;
        for w in &state.warnings {
            log::warn!("{w}");
        }
        let opened = state.opened.clone();
        (Some(state), opened)
    };
    Ok(Some(SyncContext {
        last_dest: None,
        state: state.map(Rc::new),
        path,
        opened,
        preview,
        forced_full: args.full,
        full_sync_days: config.full_sync_days,
        options: SyncOptions {
            vanished: match config.vanished_hosts {
                VanishedHosts::Keep => Vanished::Keep,
                VanishedHosts::Clear => Vanished::Clear,
            },
            max_vanished_percent: config.max_vanished_percent,
            forced_full: args.full,
            source: settings.source.clone(),
            description_length: settings.description_length,
            judge_vanished: true,
        },
    }))
}

impl SyncContext {
    /// Wraps one template's sink; `confirmations` must be the FMC sink's hook.
    pub fn wrap(
        &mut self,
        inner: Box<dyn CommandSink>,
        confirmations: Confirmations,
        target: &FmcTarget,
        server: &str,
        port: u16,
        template: Option<&str>,
    ) -> Result<Wrapped, Failure> {
        let scope = Destination::template_scope(template);
        self.wrap_scoped(inner, confirmations, target, (server, port), scope)
    }

    /// Wraps a sink for the data of `scope` (a template, or the detection path's scope).
    pub fn wrap_scoped(
        &mut self,
        inner: Box<dyn CommandSink>,
        confirmations: Confirmations,
        target: &FmcTarget,
        (server, port): (&str, u16),
        scope: String,
    ) -> Result<Wrapped, Failure> {
        let destination =
            Destination::new(server, port, &target.ca_der, &self.options.source, scope);
        let (dest, new_destination) = match &self.state {
            Some(state) => state
                .destination(&destination, !self.preview)?
                .unwrap_or((-1, true)),
            None => (-1, true),
        };
        let last_full = match &self.state {
            Some(state) if dest >= 0 => state.last_successful_full(dest)?,
            _ => None,
        };
        let mut plan = plan::decide(&Inputs {
            forced: self.forced_full,
            full_sync_days: self.full_sync_days,
            opened: &self.opened,
            new_destination,
            last_full,
            now: unix(SystemTime::now()),
        });
        if self.preview {
            plan = crate::sync::Plan {
                kind: Kind::Delta,
                reason: format!(
                    "-delta-csv: what a delta run would send now (a run would be {}: {})",
                    plan.kind.as_str(),
                    plan.reason
                ),
            };
        }
        // Later templates of the run found the file as it is now.
        self.opened = Opened::Existing;
        let report = Arc::new(Mutex::new(SyncReport {
            state: self.path.display().to_string(),
            destination: destination.to_string(),
            ..SyncReport::default()
        }));
        let state = if dest >= 0 { self.state.clone() } else { None };
        self.last_dest = (dest >= 0).then_some(dest);
        log::info!(
            "sync state {}: {} run for {destination}: {}",
            self.path.display(),
            plan.kind.as_str(),
            plan.reason
        );
        let sink = SyncSink::start(Parts {
            inner,
            state,
            dest,
            plan,
            options: self.options.clone(),
            preview: self.preview,
            confirmations,
            report: Arc::clone(&report),
        })?;
        Ok((Box::new(sink), report))
    }
}

impl SyncContext {
    /// The state, to hold tables that belong with it (the KnowledgeBase cache); none
    /// for a preview, which writes nothing.
    pub fn writable_state(&self) -> Option<Rc<State>> {
        self.state.clone().filter(|_| !self.preview)
    }

    /// Whether a pull with this plan is incremental: hosts it does not get back are not
    /// vanished (set before wrapping).
    pub fn set_incremental(&mut self, incremental: bool) {
        self.options.judge_vanished = !incremental;
    }

    /// Moves the checkpoint of the last wrapped destination (never in a preview).
    pub fn save_checkpoint(&self, at: &str) -> Result<(), Failure> {
        match (&self.state, self.last_dest, self.preview) {
            (Some(state), Some(dest), false) => Ok(state.set_checkpoint(dest, at)?),
            _ => Ok(()),
        }
    }

    /// For a pull of `scope`, before wrapping: whether the run will be a full sync, and
    /// the destination's checkpoint.
    pub fn pull_plan(
        &self,
        target: &FmcTarget,
        (server, port): (&str, u16),
        scope: String,
    ) -> Result<(bool, Option<String>), Failure> {
        let destination =
            Destination::new(server, port, &target.ca_der, &self.options.source, scope);
        let Some(state) = &self.state else {
            return Ok((true, None));
        };
        let Some((dest, _)) = state.destination(&destination, false)? else {
            return Ok((true, None));
        };
        let checkpoint = state.checkpoint(dest)?;
        let plan = plan::decide(&Inputs {
            forced: self.forced_full,
            full_sync_days: self.full_sync_days,
            opened: &self.opened,
            new_destination: false,
            last_full: state.last_successful_full(dest)?,
            now: unix(SystemTime::now()),
        });
        Ok((plan.kind == Kind::Full, checkpoint))
    }
}

/// The sync's part of the end of a template's run, in the log.
pub fn log_report(report: &Arc<Mutex<SyncReport>>) -> SyncReport {
    let r = report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let kind = r.kind.map_or("?", Kind::as_str);
    let sent = r.new + r.changed + r.repeated;
    log::info!(
        "sync: {kind} run: {} hosts unchanged (not sent), {} new, {} changed{}; {sent} sent{}",
        r.unchanged,
        r.new,
        r.changed,
        if r.repeated > 0 {
            format!(", {} later listings of repeated hosts", r.repeated)
        } else {
            String::new()
        },
        if r.preview {
            " to the -delta-csv file (nothing sent to the FMC)"
        } else {
            ""
        }
    );
    if r.vanished > 0 {
        match (r.vanished_mode, r.clear_refused) {
            (Vanished::Keep, _) => log::info!(
                "sync: {} hosts the state holds are no longer in the report: kept on the FMC (vanished_hosts: keep)",
                r.vanished
            ),
            (Vanished::Clear, Some((n, of))) => log::error!(
                "sync: {n} of the {of} hosts the FMC holds for this destination are no longer in the report: more than max_vanished_percent, so none was cleared; check the report, template and ip_ranges, and give -full to clear them"
            ),
            (Vanished::Clear, None) => log::info!(
                "sync: {} hosts are no longer in the report: {} sent the generic \"no open findings\" result, {} confirmed and forgotten",
                r.vanished,
                r.clears_sent,
                r.cleared
            ),
        }
    }
    if !r.preview {
        log::info!(
            "sync: the state {} now tracks {} hosts for this destination (before: {})",
            r.state,
            r.tracked,
            r.tracked_before
        );
    }
    r
}
