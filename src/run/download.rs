//! Getting a template's report from Qualys: the API client built from the configuration,
//! and the download into a temporary file (kept for audit when `keep_report` says so).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Config, ReportApi};
use crate::exit::Failure;
use crate::files;
use crate::logging;
use crate::qualys::bounds::Bounds;
use crate::qualys::client::{Api, Limits, Qualys, QualysOptions};
use crate::qualys::follow::Follow;
use crate::qualys::http::{Client as HttpClient, Proxy as HttpProxy, Scheme, Url};

/// Builds the Qualys API client from the configuration (nothing is sent yet).
pub fn qualys_client(config: &Config, limits: Arc<Limits>) -> Result<Qualys, Failure> {
    let invalid =
        |key: &str, e: String| Failure::Invalid(format!("{}: {key}: {e}", config.path.display()));
    let url = Url::parse(&config.url).map_err(|e| invalid("url", e))?;
    if url.scheme == Scheme::Http {
        log::warn!(
            "url {} is plain http: the Qualys credentials travel in clear text",
            config.url
        );
    }
    let proxy = match &config.proxy {
        Some(p) => Some(HttpProxy {
            url: Url::parse(&p.to_string()).map_err(|e| invalid("proxy", e))?,
            username: config.proxy_username.clone(),
            password: config.proxy_password.clone(),
        }),
        None => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &config.ca_bundle {
        roots
            .add(cert.clone())
            .map_err(|e| invalid("ca_bundle", e.to_string()))?;
    }
    if let Some(path) = &config.ca_bundle_path {
        log::info!(
            "trusting {} extra CA certificates from {}",
            config.ca_bundle.len(),
            path.display()
        );
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::Invalid(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = HttpClient {
        tls: Arc::new(tls),
        proxy,
        connect_timeout: config.fmc_connect_timeout,
        idle_timeout: config.download_idle_timeout,
    };
    let options = QualysOptions {
        url,
        user: config.user_id.clone().unwrap_or_default(),
        password: config.password.clone().unwrap_or_default(),
        api: match config.report_api {
            ReportApi::V2 => Api::V2,
            ReportApi::V1 => Api::V1,
        },
        api_path: config.api_path.clone(),
        poll_interval: config.poll_interval,
        deadline: config.report_deadline,
        retries: config.qualys_retries,
        max_wait: config.qualys_max_wait,
        bounds: Bounds {
            max_bytes: config.max_report_bytes,
            deadline: config.download_deadline,
            min_free: config.tmp_min_free,
        },
    };
    Ok(Qualys::new(http, options, limits))
}

/// A temporary file for the report, deleted when dropped.
pub fn temporary() -> Result<tempfile::NamedTempFile, Failure> {
    tempfile::Builder::new()
        .prefix("qualys-report-")
        .suffix(".xml")
        .tempfile()
        .map_err(|e| {
            Failure::Spill(format!(
                "cannot create a temporary file for the report in {}: {e}",
                std::env::temp_dir().display()
            ))
        })
}

/// Downloads the template's report into `tmp` (complete when this returns Ok); keeps a
/// copy when `keep_report` says so, and returns its path. `follow` hears of the bytes
/// as they land, for a parse that runs behind the download.
pub fn download(
    qualys: &Qualys,
    template_id: &str,
    config: &Config,
    tmp: &mut tempfile::NamedTempFile,
    follow: &Follow,
) -> Result<Option<PathBuf>, Failure> {
    let path = tmp.path().to_path_buf();
    log::info!(
        "downloading the report of template {template_id} from {}",
        config.url
    );
    let downloaded = qualys
        .download(template_id, tmp.as_file_mut(), &path, follow)
        .map_err(|e| Failure::Download(Box::new(e)))?;
    log::info!(
        "report downloaded: {} bytes in {:.1?}",
        downloaded.bytes,
        downloaded.elapsed
    );
    if let Some(dir) = &config.keep_report {
        let kept = keep_copy(tmp, dir, template_id, SystemTime::now())?;
        log::info!("report kept as {}", kept.display());
        return Ok(Some(kept));
    }
    Ok(None)
}

/// Copies the downloaded report into `dir` as `<template>-<time>.xml` (the UTC time of
/// `now`, to the second), or `<template>-<time>-2.xml` and so on when a run in the same
/// second kept one already: a kept report is never overwritten. The copy is written to a
/// hidden temporary file first, so a failed copy leaves no partial report.
fn keep_copy(
    report: &tempfile::NamedTempFile,
    dir: &Path,
    template_id: &str,
    now: SystemTime,
) -> Result<PathBuf, Failure> {
    let stamp = logging::utc_timestamp(now).replace(':', "");
    let stem = format!("{template_id}-{stamp}");
    let fail = |e: std::io::Error| {
        Failure::Spill(format!(
            "cannot keep the report as {}: {e}",
            dir.join(format!("{stem}.xml")).display()
        ))
    };
    let mut source = report.reopen().map_err(fail)?;
    let mut copy = files::temporary_in(dir, &format!(".{stem}.xml.")).map_err(fail)?;
    std::io::copy(&mut source, &mut copy).map_err(fail)?;
    files::persist_new(copy, &stem, "xml").map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn two_copies_in_the_same_second_are_both_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut kept = Vec::new();
        for content in ["<first/>", "<second/>"] {
            let mut report = tempfile::NamedTempFile::new().unwrap();
            report.write_all(content.as_bytes()).unwrap();
            kept.push(keep_copy(&report, dir.path(), "424242", now).unwrap());
        }
        let names: Vec<String> = kept
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "424242-2027-01-15T080000Z.xml",
                "424242-2027-01-15T080000Z-2.xml"
            ]
        );
        assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "<first/>");
        assert_eq!(std::fs::read_to_string(&kept[1]).unwrap(), "<second/>");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
