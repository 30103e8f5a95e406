//! Everything the QualysGuard and csv plugins need to deliver to an FMC: the delivery
//! settings, the client identity from the PKCS#12 file, and the final check that every
//! host was confirmed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cli::Args;
use crate::config::Config;
use crate::exit::Failure;
use crate::hostinput::client::{ConnectError, Connection, Endpoint, Timeouts};
use crate::hostinput::fmc::{FmcOptions, FmcSink};
use crate::hostinput::{Delivery, pkcs12, tls};
use crate::logging;
use crate::secret::Secret;

/// Delivery settings from the YAML file, or their defaults for the csv plugin.
#[derive(Debug, Clone)]
pub struct FmcSettings {
    verify_server: bool,
    timeouts: Timeouts,
    retries: u32,
    retry_wait: Duration,
}

impl Default for FmcSettings {
    fn default() -> Self {
        FmcSettings::from(&Config::defaults(Path::new("")))
    }
}

impl From<&Config> for FmcSettings {
    fn from(c: &Config) -> Self {
        FmcSettings {
            verify_server: c.verify_fmc_certificate,
            timeouts: Timeouts {
                connect: c.fmc_connect_timeout,
                reply: c.fmc_reply_timeout,
            },
            retries: c.fmc_retries,
            retry_wait: c.fmc_retry_wait,
        }
    }
}

/// The client identity, loaded once and used for every connection of the run.
#[derive(Debug, Clone)]
pub struct FmcTarget {
    options: FmcOptions,
    /// The PKCS#12 file and what its client certificate says.
    pub pkcs12: PathBuf,
    pub info: pkcs12::CertInfo,
    /// What the file's CA certificates say.
    pub ca_info: Vec<pkcs12::CertInfo>,
    /// The first CA certificate of the file (DER; empty if it holds none): part of the
    /// sync state's destination identity.
    pub ca_der: Vec<u8>,
}

impl FmcTarget {
    /// The file's certificates outside their validity period at `now`.
    pub fn lapses(&self, now: SystemTime) -> Vec<pkcs12::Lapse> {
        pkcs12::lapses(&self.info, &self.ca_info, now)
    }

    /// A new sink for one stream of commands.
    pub fn sink(&self) -> FmcSink {
        FmcSink::new(self.options.clone())
    }

    /// Opens one connection, completes TLS and the version / max-size exchange, and
    /// closes it again (for `check`; no retries).
    pub fn probe(&self) -> Result<(std::net::SocketAddr, u32), ConnectError> {
        let connection = Connection::open(
            &self.options.endpoint,
            std::sync::Arc::clone(&self.options.tls),
            self.options.timeouts,
        )?;
        let result = (connection.addr(), connection.max_size());
        connection.close();
        Ok(result)
    }
}

/// Loads the PKCS#12 identity and prepares the FMC connection; nothing touches the
/// network yet.
pub fn target(args: &Args, server: &str, settings: &FmcSettings) -> Result<FmcTarget, Failure> {
    if let Some(problem) = crate::cli::server_problem(server, args.ipv6) {
        return Err(Failure::Invalid(problem));
    }
    let path: PathBuf = match &args.pkcs12 {
        Some(path) => path.clone(),
        None => {
            let found = pkcs12::discover(Path::new("."))?;
            if !found.others.is_empty() {
                // The guide: "If you have more, the authentication process may be using
                // the wrong one."
                log::warn!(
                    "several .pkcs12 files in the current directory; using {} (others: {}); name the right one with -pkcs12",
                    found.path.display(),
                    found
                        .others
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            found.path
        }
    };
    let password = pkcs12_password(args.password.as_ref(), &|name| std::env::var(name).ok());
    let identity = pkcs12::load(&path, password.as_ref())?;
    let info = &identity.info;
    log::info!(
        "client certificate {}: subject {}, issuer {}, X.509 v{}, {}, expires {}",
        path.display(),
        info.subject,
        info.issuer,
        info.version,
        info.key_algorithm,
        logging::utc_timestamp(info.not_after)
    );
    for lapse in identity.lapses(SystemTime::now()) {
        log::warn!("{}: {lapse}: {}", path.display(), lapse_hint(&lapse));
    }
    if !settings.verify_server {
        log::warn!(
            "verify_fmc_certificate is off: the FMC's certificate is not checked against the CA in {}",
            path.display()
        );
    }
    let tls = tls::client_config(
        &identity,
        &path.display().to_string(),
        settings.verify_server,
    )?;
    Ok(FmcTarget {
        pkcs12: path.clone(),
        info: identity.info.clone(),
        ca_info: identity.ca_info.clone(),
        ca_der: identity
            .ca_certs
            .first()
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        options: FmcOptions {
            endpoint: Endpoint {
                host: server.to_string(),
                port: args.port,
                ipv6: args.ipv6,
            },
            tls,
            timeouts: settings.timeouts,
            retries: settings.retries,
            retry_wait: settings.retry_wait,
        },
    })
}

/// The PKCS#12 password: `-password`, else `PKCS12_PASSWORD`, else none (README,
/// "Secrets").
pub fn pkcs12_password(
    option: Option<&Secret>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    let password = option.cloned().or_else(|| {
        env(PKCS12_PASSWORD_ENV).filter(|v| !v.is_empty()).map(|v| {
            log::info!(
                "PKCS#12 password taken from the environment variable {PKCS12_PASSWORD_ENV}"
            );
            Secret::new(v)
        })
    });
    if let Some(p) = &password {
        crate::servertext::register_secret(p.expose());
    }
    password
}

const PKCS12_PASSWORD_ENV: &str = "PKCS12_PASSWORD";

/// Fails the run when any host was not confirmed, listing them (nothing is lost
/// silently: a rerun sends them again).
pub fn check_delivery(server: &str, d: &Delivery) -> Result<(), Failure> {
    log::info!(
        "delivered to {server}: {} hosts and {} findings confirmed in {} blocks ({} commands, {} bytes)",
        d.hosts,
        d.findings,
        d.blocks,
        d.commands,
        d.bytes
    );
    if d.unconfirmed.is_empty() {
        return Ok(());
    }
    crate::hostinput::fmc::log_unconfirmed(&d.unconfirmed);
    Err(Failure::Delivery(format!(
        "{} hosts were not confirmed by the FMC at {server} ({} confirmed); they are listed above, run again to send them",
        d.unconfirmed.len(),
        d.hosts
    )))
}

/// What a certificate outside its validity period means for the run, and what to do.
pub(crate) fn lapse_hint(lapse: &pkcs12::Lapse) -> &'static str {
    match lapse {
        pkcs12::Lapse::Expired {
            role: pkcs12::Role::Client,
            ..
        } => "the FMC will refuse it; create a new client on the FMC's Host Input Client page",
        pkcs12::Lapse::NotYetValid {
            role: pkcs12::Role::Client,
            ..
        } => "the FMC will refuse it until then",
        pkcs12::Lapse::Expired {
            role: pkcs12::Role::Ca,
            ..
        }
        | pkcs12::Lapse::NotYetValid {
            role: pkcs12::Role::Ca,
            ..
        } => {
            "the FMC's server certificate may not verify against it; once the FMC has a new CA, download a new client file"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs12_passwords_are_registered_for_redaction() {
        let from_option = Secret::new("pkcs12-option-pw");
        let cases: [(Option<&Secret>, Option<&str>, &str); 2] = [
            (Some(&from_option), None, "pkcs12-option-pw"),
            (None, Some("pkcs12-env-pw"), "pkcs12-env-pw"),
        ];
        for (option, env, secret) in cases {
            let env = move |_: &str| env.map(str::to_string);
            let password = pkcs12_password(option, &env);
            assert_eq!(password.as_ref().map(Secret::expose), Some(secret));
            assert_eq!(
                crate::servertext::redact(&format!("echo {secret}")),
                "echo <redacted>"
            );
        }
    }
}
