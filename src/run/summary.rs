//! The end of every run: what happened, in the log (a line per template, the failures
//! with their hints) and, with `-summary-json=FILE`, as JSON for schedulers.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::Run;
use crate::cli;
use crate::exit::{Code, Failure};
use crate::files;
use crate::logging::{self, LogOptions};
use crate::model::FindingType;
use crate::pipeline::Summary;
use crate::servertext;

/// Logs the outcome. Failures also go to stderr when the log goes only to a file or
/// syslog, so cron mails them.
pub fn log(outcome: &Result<Vec<Run>, Failure>, options: &LogOptions) {
    let failures: Vec<(Option<&str>, &Failure)> = match outcome {
        Err(failure) => vec![(None, failure)],
        Ok(runs) => {
            let multi = runs.len() > 1;
            for run in runs {
                let label = match (&run.template, multi) {
                    (Some(t), true) => format!("template {t}: "),
                    _ => String::new(),
                };
                if let Some(summary) = &run.summary {
                    log_done(&label, summary);
                }
                if let Some(failure) = &run.failure
                    && multi
                {
                    if !run.started {
                        log::warn!("{label}not started: {failure}");
                        continue;
                    }
                    log::error!(
                        "{label}failed (exit code {}): {failure}",
                        failure.code().as_i32()
                    );
                }
            }
            runs.iter()
                .filter_map(|r| r.failure.as_ref().map(|f| (r.template.as_deref(), f)))
                .collect()
        }
    };
    let multi = matches!(outcome, Ok(runs) if runs.len() > 1);
    for (template, failure) in &failures {
        if !multi {
            log::error!("{failure}");
        }
        if let Some(hint) = failure.hint() {
            match template.filter(|_| multi) {
                Some(t) => log::error!("template {t}: hint: {hint}"),
                None => log::error!("hint: {hint}"),
            }
        }
        if !logging::reaches_console(options) {
            super::fatal(&failure.to_string());
        }
    }
    if let Ok(runs) = outcome
        && multi
    {
        let failed = runs
            .iter()
            .filter(|r| r.failure.is_some() && r.started)
            .count();
        let not_started = runs.iter().filter(|r| !r.started).count();
        log::info!(
            "{} templates: {} succeeded, {failed} failed{}",
            runs.len(),
            runs.len() - failed - not_started,
            match not_started {
                0 => String::new(),
                n => format!(", {n} not started (the run was stopped)"),
            }
        );
    }
    let _ = std::io::stdout().flush();
}

fn log_done(label: &str, s: &Summary) {
    let d = &s.delivery;
    log::info!(
        "{label}done: {} hosts, {} findings, {} commands ({} bytes); {}parse {:.2?}, send {:.2?}; {} warnings",
        d.hosts,
        d.findings,
        d.commands,
        d.bytes,
        s.download_time
            .map(|t| format!("download {t:.2?}, "))
            .unwrap_or_default(),
        s.parse_time,
        s.send_time,
        logging::warnings()
    );
    if s.hosts_cleared > 0 {
        log::info!(
            "{label}{} hosts had no open findings to send: each got the generic result \"No open Qualys findings\", which replaces their earlier results",
            s.hosts_cleared
        );
    }
    if s.untransliterated_chars > 0 {
        log::info!(
            "{label}{} characters of glossary titles and descriptions have no ASCII transliteration (CJK, emoji, ...) and were left out",
            s.untransliterated_chars
        );
    }
    if s.qids_without_details > 0 {
        log::warn!(
            "{label}{} QIDs were not in the report's glossary and were sent without a title",
            s.qids_without_details
        );
    }
}

/// Writes the summary as JSON (atomically: a scheduler never reads half a file).
pub fn write_json(
    path: &Path,
    outcome: &Result<Vec<Run>, Failure>,
    started: SystemTime,
    code: Code,
) -> Result<(), String> {
    let value = to_json(outcome, started, code);
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    let fail = |e: std::io::Error| format!("cannot write the summary {}: {e}", path.display());
    // Links are followed under the link rule; a device or pipe is written directly.
    match files::create_output(path, ".summary.").map_err(fail)? {
        files::Output::Replace { mut tmp, target } => {
            write_text(&mut tmp, &text).map_err(fail)?;
            files::commit(tmp, &target).map_err(fail)
        }
        files::Output::Direct { mut file, .. } => write_text(&mut file, &text).map_err(fail),
    }
}

fn write_text(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

fn to_json(outcome: &Result<Vec<Run>, Failure>, started: SystemTime, code: Code) -> Value {
    let runs: Vec<Value> = match outcome {
        Ok(runs) => runs.iter().map(run_json).collect(),
        Err(_) => Vec::new(),
    };
    json!({
        "program": cli::PROGRAM,
        "version": env!("CARGO_PKG_VERSION"),
        "started": logging::utc_timestamp(started),
        "finished": logging::utc_timestamp(SystemTime::now()),
        "exit_code": code.as_i32(),
        "status": if code == Code::Success { "ok" } else { "failed" },
        "error": outcome.as_ref().err().map(failure_json),
        "templates": runs,
        "warnings": logging::warnings(),
        "errors": logging::errors(),
    })
}

/// A failure for the summary, which bypasses the logger: redacted like a log record.
fn failure_json(f: &Failure) -> Value {
    let redacted = |text: String| servertext::redact(&text).into_owned();
    json!({
        "exit_code": f.code().as_i32(),
        "message": redacted(f.to_string()),
        "hint": f.hint().map(redacted),
    })
}

/// What the incremental sync did (src/sync).
fn sync_json(r: &crate::sync::SyncReport) -> Value {
    json!({
        "state": r.state,
        "destination": r.destination,
        "kind": r.kind.map(crate::sync::Kind::as_str),
        "reason": r.reason,
        "preview": r.preview,
        "hosts_unchanged": r.unchanged,
        "hosts_new": r.new,
        "hosts_changed": r.changed,
        "repeated_listings": r.repeated,
        "hosts_vanished": r.vanished,
        "vanished_hosts": r.vanished_mode.as_str(),
        "vanished_clears_sent": r.clears_sent,
        "vanished_cleared": r.cleared,
        "clear_refused": r.clear_refused.is_some(),
        "hosts_tracked_before": r.tracked_before,
        "hosts_tracked": r.tracked,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn run_json(run: &Run) -> Value {
    let mut value = json!({
        "template_id": run.template,
        "status": match (run.started, &run.failure) {
            (false, _) => "not started",
            (true, None) => "ok",
            (true, Some(_)) => "failed",
        },
        "elapsed_ms": millis(run.elapsed),
        "error": run.failure.as_ref().map(failure_json),
    });
    match &run.summary {
        None => {}
        Some(s) => {
            let r = &s.report;
            let d = &s.delivery;
            value["report"] = json!({
                "hosts": r.hosts,
                "hosts_in_range": s.hosts_in_range,
                "hosts_out_of_range": s.hosts_out_of_range,
                "hosts_with_error": r.host_errors,
                "hosts_without_valid_ip": r.bad_hosts,
                "unreadable_findings": r.bad_findings,
                "glossary_entries": r.glossary_entries,
                "replaced_utf8_sequences": r.replaced_utf8,
                "oversized_fields": r.oversized_fields,
                "merged_findings": r.merged_findings,
                "hosts_listed_twice": s.repeated_hosts,
                "hosts_cleared": s.hosts_cleared,
                "untransliterated_characters": s.untransliterated_chars,
                "bytes": r.bytes,
            });
            value["findings"] = json!({
                "vuln": s.findings_by_type[FindingType::Vuln.index()],
                "practice": s.findings_by_type[FindingType::Practice.index()],
                "ig": s.findings_by_type[FindingType::Ig.index()],
                "fixed": s.findings_fixed,
                "excluded_by_type": s.findings_excluded_type,
                "selected": s.findings_selected,
                "qids_without_details": s.qids_without_details,
            });
            value["delivery"] = json!({
                "hosts_confirmed": d.hosts,
                "findings_confirmed": d.findings,
                "commands": d.commands,
                "bytes": d.bytes,
                "blocks": d.blocks,
                "failed_blocks": d.failed_blocks,
                "hosts_unconfirmed": d.unconfirmed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "shortened_lines": d.shortened_lines,
            });
            if let Some(y) = &s.sync {
                value["sync"] = sync_json(y);
            }
            value["durations_ms"] = json!({
                "download": s.download_time.map(millis),
                "parse": millis(s.parse_time),
                "send": millis(s.send_time),
            });
        }
    }
    value
}
