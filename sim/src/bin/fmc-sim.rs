//! `fmc-sim`: command-line front end of the FMC Host Input simulator (host-input.md).
//!
//! `fmc-sim enroll` writes a client `.pkcs12` file like the FMC's *Create Client* page
//! (§1); `fmc-sim serve` runs the Host Input server (§1–§4) with the fault-injection
//! flags test scripts use, prints `listening on <addr>` first, and writes the network
//! map as JSON when it stops. Bad arguments exit with code 2, failures with 1.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qualys_connector_sim::fmc::{
    CertVersion, CountRule, EnrollOptions, FlushScope, KeyType, NetworkMap, P12Scheme, Server,
    ServerCert, ServerOptions, enroll,
};

const USAGE: &str = "\
usage:
  fmc-sim enroll --client <addr> --dir DIR [--password P] [--scheme legacy|3des|aes]
                 [--cert-version 1|3] [--key rsa|ecdsa] [--valid-days N]
  fmc-sim serve --dir DIR [--listen ADDR:PORT] [--max-size N] [--max-size-after N]
                [--map-out FILE]
                [--reject-version] [--delay-ms N] [--error-on K] [--close-after K]
                [--garbage-reply] [--reply-text TEXT] [--trickle-ms N] [--strict]
                [--drop-reply-on K]
                [--exit-after N] [--known-host IP]... [--flush-clears source|all]
                [--server-cert standard|ca-only|v1]
                [--count-rule all|no-setsource|no-commit|data-only]
                [--count-rule-after RULE] [--reply-prefix TEXT] [--reject-line K]
                [--split-writes] [--tls12-only]

enroll  creates the simulator's CA in DIR (once) and writes DIR/<addr>.pkcs12 shaped like an
        FMC's file (RSA 2048, the FMC's names and extensions, RC2-40 / 3DES, SHA-1 MAC of one
        iteration; --key ecdsa for a P-256 key); prints its path.
serve   runs the Host Input server (default --listen 127.0.0.1:8307); prints
        'listening on <addr:port>' first; stops on SIGTERM/SIGINT or --exit-after N
        closed connections, then writes the network map to --map-out as JSON.";

/// A command-line error: printed with the usage, exit code 2.
struct Usage(String);

/// Splits `--name=value` / `--name value` arguments.
struct Args {
    items: std::vec::IntoIter<String>,
}

impl Args {
    /// The next option and its inline value, if any.
    fn next_option(&mut self) -> Option<Result<(String, Option<String>), Usage>> {
        let arg = self.items.next()?;
        if !arg.starts_with("--") {
            return Some(Err(Usage(format!("unexpected argument {arg:?}"))));
        }
        Some(Ok(match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg, None),
        }))
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, Usage> {
        match inline {
            Some(v) => Ok(v),
            None => self
                .items
                .next()
                .ok_or_else(|| Usage(format!("{name} needs a value"))),
        }
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        name: &str,
        inline: Option<String>,
    ) -> Result<T, Usage> {
        let v = self.value(name, inline)?;
        v.parse()
            .map_err(|_| Usage(format!("{name}: {v:?} is not a valid number")))
    }
}

fn no_value(name: &str, inline: Option<String>) -> Result<(), Usage> {
    match inline {
        Some(_) => Err(Usage(format!("{name} takes no value"))),
        None => Ok(()),
    }
}

fn parse_enroll(args: &mut Args) -> Result<(PathBuf, String, EnrollOptions), Usage> {
    let mut client = None;
    let mut dir = None;
    let mut options = EnrollOptions::default();
    while let Some(opt) = args.next_option() {
        let (name, inline) = opt?;
        match name.as_str() {
            "--client" => client = Some(args.value(&name, inline)?),
            "--dir" => dir = Some(PathBuf::from(args.value(&name, inline)?)),
            "--password" => options.password = Some(args.value(&name, inline)?),
            "--scheme" => {
                options.scheme = match args.value(&name, inline)?.as_str() {
                    "legacy" => P12Scheme::Legacy,
                    "3des" => P12Scheme::TripleDes,
                    "aes" => P12Scheme::Aes,
                    other => {
                        return Err(Usage(format!(
                            "--scheme: {other:?} is not legacy, 3des or aes"
                        )));
                    }
                }
            }
            "--cert-version" => {
                options.cert_version = match args.value(&name, inline)?.as_str() {
                    "1" => CertVersion::V1,
                    "3" => CertVersion::V3,
                    other => return Err(Usage(format!("--cert-version: {other:?} is not 1 or 3"))),
                }
            }
            "--key" => {
                options.key = match args.value(&name, inline)?.as_str() {
                    "ecdsa" => KeyType::EcdsaP256,
                    "rsa" => KeyType::Rsa2048,
                    other => return Err(Usage(format!("--key: {other:?} is not ecdsa or rsa"))),
                }
            }
            "--valid-days" => options.valid_days = args.number(&name, inline)?,
            other => return Err(Usage(format!("enroll: unknown option {other}"))),
        }
    }
    let client = client.ok_or_else(|| Usage("enroll needs --client <addr>".into()))?;
    let dir = dir.ok_or_else(|| Usage("enroll needs --dir DIR".into()))?;
    Ok((dir, client, options))
}

fn parse_serve(args: &mut Args) -> Result<(ServerOptions, Option<PathBuf>), Usage> {
    let mut options = ServerOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 8307)),
        ..ServerOptions::default()
    };
    let mut dir = None;
    let mut map_out = None;
    while let Some(opt) = args.next_option() {
        let (name, inline) = opt?;
        match name.as_str() {
            "--dir" => dir = Some(PathBuf::from(args.value(&name, inline)?)),
            "--listen" => {
                let v = args.value(&name, inline)?;
                options.listen = v
                    .parse()
                    .map_err(|_| Usage(format!("--listen: {v:?} is not ADDRESS:PORT")))?;
            }
            "--max-size" => options.max_size = args.number(&name, inline)?,
            "--max-size-after" => options.max_size_after = Some(args.number(&name, inline)?),
            "--map-out" => map_out = Some(PathBuf::from(args.value(&name, inline)?)),
            "--reject-version" => {
                no_value(&name, inline)?;
                options.reject_version = true;
            }
            "--server-cert" => {
                options.server_cert = match args.value(&name, inline)?.as_str() {
                    "standard" => ServerCert::Standard,
                    "ca-only" => ServerCert::CaOnly,
                    "v1" => ServerCert::V1,
                    v => {
                        return Err(Usage(format!(
                            "--server-cert: {v:?} is not standard, ca-only or v1"
                        )));
                    }
                }
            }
            "--delay-ms" => options.delay_ms = args.number(&name, inline)?,
            "--error-on" => options.error_on = Some(positive(&name, args.number(&name, inline)?)?),
            "--drop-reply-on" => {
                options.drop_reply_on = Some(positive(&name, args.number(&name, inline)?)?)
            }
            "--close-after" => {
                options.close_after = Some(positive(&name, args.number(&name, inline)?)?)
            }
            "--garbage-reply" => {
                no_value(&name, inline)?;
                options.garbage_reply = true;
            }
            "--reply-text" => {
                // `\n` in the argument stands for a line break; `{n}` for the count.
                options.reply_text = Some(args.value(&name, inline)?.replace("\\n", "\n"))
            }
            "--trickle-ms" => options.trickle_ms = args.number(&name, inline)?,
            "--count-rule" => options.count_rule = count_rule(&name, args.value(&name, inline)?)?,
            "--count-rule-after" => {
                options.count_rule_after = Some(count_rule(&name, args.value(&name, inline)?)?)
            }
            "--reply-prefix" => {
                options.reply_prefix = Some(args.value(&name, inline)?.replace("\\n", "\n"))
            }
            "--reject-line" => {
                options.reject_line = Some(positive(&name, args.number(&name, inline)?)?)
            }
            "--split-writes" => {
                no_value(&name, inline)?;
                options.split_writes = true;
            }
            "--tls12-only" => {
                no_value(&name, inline)?;
                options.tls12_only = true;
            }
            "--strict" => {
                no_value(&name, inline)?;
                options.strict = true;
            }
            "--exit-after" => {
                options.exit_after = Some(positive(&name, args.number(&name, inline)?)?)
            }
            "--known-host" => {
                let v = args.value(&name, inline)?;
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| Usage(format!("--known-host: {v:?} is not an IP address")))?;
                options.known_hosts.push(ip);
            }
            "--flush-clears" => {
                options.flush_clears = match args.value(&name, inline)?.as_str() {
                    "source" => FlushScope::ThisSource,
                    "all" => FlushScope::AllSources,
                    other => {
                        return Err(Usage(format!(
                            "--flush-clears: {other:?} is not source or all"
                        )));
                    }
                }
            }
            other => return Err(Usage(format!("serve: unknown option {other}"))),
        }
    }
    options.dir = dir.ok_or_else(|| Usage("serve needs --dir DIR".into()))?;
    Ok((options, map_out))
}

fn count_rule(name: &str, value: String) -> Result<CountRule, Usage> {
    value.parse().map_err(|e| Usage(format!("{name}: {e}")))
}

fn positive(name: &str, n: u64) -> Result<u64, Usage> {
    if n == 0 {
        Err(Usage(format!("{name} must be at least 1")))
    } else {
        Ok(n)
    }
}

fn write_map(path: &PathBuf, map: &NetworkMap) -> io::Result<()> {
    let mut json = serde_json::to_string_pretty(map).map_err(io::Error::other)?;
    json.push('\n');
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

fn serve(options: ServerOptions, map_out: Option<PathBuf>) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    let dir = options.dir.clone();
    let server = Server::start(options)
        .map_err(|e| format!("cannot start the server (dir {}): {e}", dir.display()))?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", server.addr())
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
    }
    while !stop.load(Ordering::SeqCst) && !server.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = server.stats();
    let map = server.stop();
    eprintln!(
        "fmc-sim: stopped: {} connection(s), {} block(s), {} command(s), {} unparseable line(s), {} host(s), {} result(s)",
        stats.connections,
        stats.blocks,
        stats.commands,
        stats.unparseable_lines,
        map.hosts.len(),
        map.result_count()
    );
    if let Some(path) = map_out {
        write_map(&path, &map).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn run() -> Result<(), Failure> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        return Err(Failure::Usage("a subcommand is needed".into()));
    }
    let sub = argv.remove(0);
    let mut args = Args {
        items: argv.into_iter(),
    };
    match sub.as_str() {
        "enroll" => {
            let (dir, client, options) =
                parse_enroll(&mut args).map_err(|Usage(m)| Failure::Usage(m))?;
            let path = enroll(&dir, &client, &options)
                .map_err(|e| Failure::Runtime(format!("enroll: {e}")))?;
            println!("{}", path.display());
            Ok(())
        }
        "serve" => {
            let (options, map_out) =
                parse_serve(&mut args).map_err(|Usage(m)| Failure::Usage(m))?;
            serve(options, map_out).map_err(Failure::Runtime)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown subcommand {other:?}"))),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("fmc-sim: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("fmc-sim: {msg}");
            ExitCode::FAILURE
        }
    }
}
