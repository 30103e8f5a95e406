//! HTTPS for the Qualys simulator (qualys.md §1: the API is reached over HTTPS): one CA
//! and one server certificate (for `localhost`, 127.0.0.1 and ::1) per directory,
//! created once and reused, so a client configured to trust `DIR/ca.pem` keeps working
//! across restarts.
//!
//! Files in the directory: `ca.pem` (the CA certificate only, PEM: what a client is told
//! to trust), `ca-key.pem` (its PKCS#8 key) and `server.pem` (server certificate, then its
//! key). The key is published before the certificate, each with a hard link, so two
//! processes creating the same fresh directory agree on one CA. The directory must not
//! be shared with `fmc-sim` (its `ca.pem` holds a key too).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use crate::fmc::pki::{new_ca, publish, random_serial, rcgen_err};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::ServerConfig;
use rustls::version;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";

/// Serialises creation within one process (across processes the hard links decide).
static CREATE_LOCK: Mutex<()> = Mutex::new(());

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Loads (or creates) the certificates of `dir` and returns the TLS configuration and
/// the path of `ca.pem`.
pub(crate) fn server_config(dir: &Path) -> io::Result<(Arc<ServerConfig>, PathBuf)> {
    let (ca_der, server_der, server_key) = load_or_create(dir)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![server_der, ca_der], server_key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), dir.join(CA_FILE)))
}

type Loaded = (
    CertificateDer<'static>,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
);

fn load_or_create(dir: &Path) -> io::Result<Loaded> {
    let _guard = CREATE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    fs::create_dir_all(dir)?;
    let ca_path = dir.join(CA_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if !ca_path.exists() && !key_path.exists() {
        let (cert, key) = new_ca("qualys-sim", "qualys-sim test CA")?;
        publish(&key_path, &key.serialize_pem())?;
        publish(&ca_path, &cert.pem())?;
    }
    // Another process may be between its two hard links.
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while !(ca_path.exists() && key_path.exists()) && Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(20));
    }
    let ca_der = read_cert(&ca_path)?;
    let ca_key_pem = fs::read_to_string(&key_path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (the CA key of {}; use a directory of its own)",
                key_path.display(),
                ca_path.display()
            ),
        )
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .map_err(|e| invalid(format!("{}: unusable CA key: {e}", key_path.display())))?;

    let server_path = dir.join(SERVER_FILE);
    let existing = read_cert(&server_path)
        .ok()
        .filter(|cert| signed_by(cert, &ca_der))
        .and_then(|cert| {
            let text = fs::read(&server_path).ok()?;
            Some((cert, PrivateKeyDer::from_pem_slice(&text).ok()?))
        });
    let (server_der, server_key) = match existing {
        Some(pair) => pair,
        None => {
            let (cert, key) = new_server(&ca_der, &ca_key)?;
            let mut pem = cert.pem();
            pem.push_str(&key.serialize_pem());
            let tmp = server_path.with_extension(format!("tmp.{}", std::process::id()));
            fs::write(&tmp, pem)?;
            fs::rename(&tmp, &server_path)?;
            let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(invalid_str)?;
            (cert.der().clone(), key_der)
        }
    };
    Ok((ca_der, server_der, server_key))
}

fn invalid_str(e: &str) -> io::Error {
    invalid(e.to_string())
}

fn read_cert(path: &Path) -> io::Result<CertificateDer<'static>> {
    let text = fs::read(path)?;
    CertificateDer::pem_slice_iter(&text)
        .next()
        .ok_or_else(|| invalid(format!("{}: no certificate in the file", path.display())))?
        .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

fn signed_by(cert: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(ca),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

fn new_server(
    ca_der: &CertificateDer<'_>,
    ca_key: &KeyPair,
) -> io::Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().map_err(rcgen_err)?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(10 * 365);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let issuer = Issuer::from_ca_cert_der(ca_der, ca_key).map_err(rcgen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_err)?;
    Ok((cert, key))
}
