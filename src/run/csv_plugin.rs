//! The `csv` plugin (Cisco's SDK): validates a command file written earlier with
//! `-csvfile`, then sends it to the FMC. Nothing is sent if any line is invalid.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use super::fmc::{self, FmcSettings};
use crate::cli::{self, Args};
use crate::exit::Failure;
use crate::hostinput::{CommandSink, HostBlock, validate};
use crate::pipeline::Summary;

use super::Done;

/// The `csv` plugin (Cisco's SDK): validates a command file, then sends it.
pub fn send_command_file(args: &Args) -> Done {
    let (server, summary) = send(args).map_err(|failure| Box::new((None, failure)))?;
    match fmc::check_delivery(&server, &summary.delivery) {
        Ok(()) => Ok(summary),
        Err(failure) => Err(Box::new((Some(summary), failure))),
    }
}

/// Validates, then sends; the delivery is checked by the caller.
fn send(args: &Args) -> Result<(String, Summary), Failure> {
    if args.csvfile.is_some() {
        return Err(Failure::Invalid(
            "the csv plugin sends a command file to the FMC: give -server, not -csvfile".into(),
        ));
    }
    let Some(server) = args.server.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Failure::Invalid(
            "the csv plugin needs -server=<FMC address> to send the command file to".into(),
        ));
    };
    if args.plugininfo == Path::new(cli::DEFAULT_PLUGININFO) {
        return Err(Failure::Invalid(
            "the csv plugin needs the command file: give it with -plugininfo=FILE".into(),
        ));
    }
    let path = args.plugininfo.as_path();
    let started = Instant::now();
    let checked = validate::check_file(path)?;
    log::info!(
        "command file {}: {} commands in {} host blocks, all valid",
        path.display(),
        checked.commands,
        checked.chunks
    );
    if checked.crlf_lines > 0 {
        log::info!(
            "command file {}: {} lines end with CRLF; they are sent with LF",
            path.display(),
            checked.crlf_lines
        );
    }
    let mut sink = fmc::target(args, server, &FmcSettings::default())?.sink();
    sink.preamble(checked.source_line.as_bytes(), 1)?;
    let mut sink_error = None;
    validate::for_each_chunk(path, |ip, bytes, commands, findings| {
        sink.host(&HostBlock {
            // Hosts named by MAC address only: listed as 0.0.0.0 if not confirmed.
            ip: ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            commands,
            findings,
            bytes,
        })
        .map_err(|e| {
            let text = e.to_string();
            sink_error = Some(e);
            text
        })
    })
    .map_err(|e| match sink_error.take() {
        Some(sink) => Failure::Sink(sink),
        None => Failure::Input(e),
    })?;
    let delivery = sink.finish()?;
    Ok((
        server.to_string(),
        Summary {
            delivery,
            send_time: started.elapsed(),
            ..Summary::default()
        },
    ))
}
