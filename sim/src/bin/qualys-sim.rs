//! `qualys-sim`: command-line front end of the Qualys simulator. `generate` writes a
//! deterministic synthetic `ASSET_DATA_REPORT` (see `qualys_connector_sim::qualys`) and
//! prints what it wrote as one JSON line. Exit codes: 0 done, 1 I/O error, 2 bad usage.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use qualys_connector_sim::qualys::{GenSpec, GenSummary, generate};

const USAGE: &str = "\
usage: qualys-sim <subcommand> [options]

subcommands:
  generate   write a synthetic Qualys ASSET_DATA_REPORT and print a JSON summary
  help       print this message

Run `qualys-sim <subcommand> --help` for the options of a subcommand.
";

const GENERATE_USAGE: &str = "\
usage: qualys-sim generate --hosts N --seed S [--findings-per-host M] [--qids Q]
                           [--ipv6-every K] [--glossary-first] --out FILE

Writes a deterministic synthetic ASSET_DATA_REPORT (the same options give the same
bytes) and prints the summary as one JSON line on stdout, or on stderr when the report
itself goes to stdout.

  --hosts N              number of hosts (required)
  --seed S               random seed (required)
  --findings-per-host M  average findings per host (default 20)
  --qids Q               QID pool and glossary size, at least 1 (default 20000)
  --ipv6-every K         every Kth host is IPv6; 0 = none (default 50)
  --glossary-first       put GLOSSARY before HOST_LIST (real reports put it after)
  --out FILE             where to write the report; `-` for stdout (required)

Options also take the form --name=value.
";

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => return usage_error(&format!("argument is not UTF-8: {bad:?}"), USAGE),
        }
    }
    match args.first().map(String::as_str) {
        None => usage_error("missing subcommand", USAGE),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("generate") => generate_command(&args[1..]),
        Some(other) => usage_error(&format!("unknown subcommand `{other}`"), USAGE),
    }
}

/// Prints `qualys-sim: message` and the usage on stderr; exit status 2.
fn usage_error(message: &str, usage: &str) -> ExitCode {
    eprintln!("qualys-sim: {message}\n\n{usage}");
    ExitCode::from(2)
}

struct GenerateArgs {
    spec: GenSpec,
    out: String,
}

/// `Ok(None)` when help was asked for.
fn parse_generate(args: &[String]) -> Result<Option<GenerateArgs>, String> {
    let mut spec = GenSpec::default();
    let (mut hosts, mut seed, mut out) = (None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if name == "--glossary-first" {
            if inline.is_some() {
                return Err("--glossary-first takes no value".into());
            }
            spec.glossary_first = true;
            continue;
        }
        if !matches!(
            name,
            "--hosts" | "--seed" | "--findings-per-host" | "--qids" | "--ipv6-every" | "--out"
        ) {
            return Err(format!("unknown option `{arg}`"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name {
            "--hosts" => hosts = Some(number(name, &value)?),
            "--seed" => seed = Some(number(name, &value)?),
            "--findings-per-host" => spec.findings_per_host = number(name, &value)?,
            "--qids" => spec.qids = number(name, &value)?,
            "--ipv6-every" => spec.ipv6_every = number(name, &value)?,
            _ => {
                if value.is_empty() {
                    return Err("--out needs a file name (or `-` for stdout)".into());
                }
                out = Some(value);
            }
        }
    }
    spec.hosts = hosts.ok_or("--hosts is required")?;
    spec.seed = seed.ok_or("--seed is required")?;
    let out = out.ok_or("--out is required (a file, or `-` for stdout)")?;
    if spec.qids == 0 {
        return Err("--qids must be at least 1".into());
    }
    Ok(Some(GenerateArgs { spec, out }))
}

/// A decimal number; `_` may group digits (`100_000`).
fn number<T: TryFrom<u64>>(name: &str, value: &str) -> Result<T, String> {
    let digits: String = value.chars().filter(|&c| c != '_').collect();
    digits
        .parse::<u64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{name}: `{value}` is not a valid number"))
}

fn generate_command(args: &[String]) -> ExitCode {
    let parsed = match parse_generate(args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{GENERATE_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return usage_error(&message, GENERATE_USAGE),
    };
    let to_stdout = parsed.out == "-";
    let result = if to_stdout {
        generate(&parsed.spec, &mut io::stdout().lock())
    } else {
        match File::create(&parsed.out) {
            Ok(mut file) => generate(&parsed.spec, &mut file),
            Err(e) => {
                eprintln!("qualys-sim: cannot create {}: {e}", parsed.out);
                return ExitCode::FAILURE;
            }
        }
    };
    match result {
        Ok(summary) => report_summary(&summary, to_stdout),
        Err(e) => {
            let target = if to_stdout { "stdout" } else { &parsed.out };
            eprintln!("qualys-sim: writing {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report_summary(summary: &GenSummary, on_stderr: bool) -> ExitCode {
    let line = match serde_json::to_string(summary) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("qualys-sim: cannot encode the summary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = if on_stderr {
        writeln!(io::stderr(), "{line}")
    } else {
        writeln!(io::stdout(), "{line}")
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
