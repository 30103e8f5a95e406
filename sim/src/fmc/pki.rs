//! The simulator's certificates, like the FMC's internal CA (host-input.md §1): one CA
//! and one server certificate per directory, created once and reused, and the client
//! files that *Create Client* hands out (`enroll`).
//!
//! Files in the directory: `ca.pem` (CA certificate, then its PKCS#8 key) and
//! `server.pem` (server certificate, then its key). Each is published with a hard link
//! so that two processes enrolling into the same fresh directory agree on one CA.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SerialNumber,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pkcs12::{self, P12Scheme};
use super::x509::{self, AltName, Extension, Template, Usage};

/// X.509 version of the client certificate (host-input.md §1: "may be X.509 v1").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertVersion {
    /// No extensions, no version field (RFC 5280 §4.1.2.1).
    V1,
    /// The real FMC file's extensions: basicConstraints CA:FALSE, subjectAltName DNS:<addr>,
    /// extendedKeyUsage clientAuth + serverAuth, no keyUsage.
    #[default]
    V3,
}

/// Which certificate the server presents (`fmc-sim serve --server-cert`), to test the
/// connector's check of the FMC's certificate (RFC 5280 §4.2.1.3, host-input.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// The directory's v3 server certificate (KeyUsage digitalSignature, serverAuth).
    #[default]
    Standard,
    /// A v3 certificate whose KeyUsage allows only keyCertSign: a CA's, not a server's.
    CaOnly,
    /// An X.509 v1 certificate (no extensions), signed by the directory's CA.
    V1,
}

/// The client's key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyType {
    /// A fresh P-256 key per client.
    EcdsaP256,
    /// RSA 2048, as the FMC's files hold. ring cannot generate RSA keys, so every RSA
    /// client of every simulator shares one fixed test key (`rsa2048-test-key.pem`); only
    /// the certificate differs.
    #[default]
    Rsa2048,
}

/// How `enroll` writes the client file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollOptions {
    /// Password of the PKCS#12 file; `None` means empty (host-input.md §1: "often empty").
    pub password: Option<String>,
    /// Encryption of the file.
    pub scheme: P12Scheme,
    /// X.509 version of the client certificate.
    pub cert_version: CertVersion,
    /// Key type of the client certificate.
    pub key: KeyType,
    /// Days of validity from now; negative means it expired that many days ago.
    pub valid_days: i64,
}

impl Default for EnrollOptions {
    fn default() -> Self {
        EnrollOptions {
            password: None,
            scheme: P12Scheme::Legacy,
            cert_version: CertVersion::V3,
            key: KeyType::Rsa2048,
            valid_days: 365,
        }
    }
}

const RSA_TEST_KEY: &str = include_str!("rsa2048-test-key.pem");
/// The key of every directory's CA, RSA 2048 like the FMC's internal CA (ring cannot
/// generate RSA keys). Two directories' CAs still differ: each has its own UUID in its
/// name, and both sides match the issuer's name before they check a signature.
const RSA_CA_KEY: &str = include_str!("rsa2048-ca-key.pem");
const CA_FILE: &str = "ca.pem";
const SERVER_FILE: &str = "server.pem";
/// The server certificate's name (and DNS names, with `localhost`).
const SERVER_NAME: &str = "fmc-sim";

/// Serialises creation within one process (across processes the hard link decides).
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// The CA and server credentials of one simulator directory.
#[derive(Debug)]
pub(crate) struct Authority {
    pub(crate) ca_der: CertificateDer<'static>,
    ca_key: KeyPair,
    pub(crate) server_der: CertificateDer<'static>,
    pub(crate) server_key: PrivateKeyDer<'static>,
}

pub(crate) fn rcgen_err(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("certificate generation failed: {e}"))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Authority {
    /// Loads the CA and server certificate from `dir`, creating what is missing.
    pub(crate) fn load_or_create(dir: &Path) -> io::Result<Authority> {
        let _guard = CREATE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        fs::create_dir_all(dir)?;
        let ca_path = dir.join(CA_FILE);
        if !ca_path.exists() {
            publish(&ca_path, &new_fmc_ca()?)?;
        }
        let (ca_der, ca_key_der) = read_pair(&ca_path)?;
        let ca_key = KeyPair::try_from(&ca_key_der)
            .map_err(|e| invalid(format!("{}: unusable CA key: {e}", ca_path.display())))?;
        let mut authority = Authority {
            ca_der,
            ca_key,
            server_der: CertificateDer::from(Vec::new()),
            server_key: PrivateKeyDer::Pkcs8(Vec::new().into()),
        };

        let server_path = dir.join(SERVER_FILE);
        let server_ok = server_path.exists()
            && read_pair(&server_path)
                .ok()
                .is_some_and(|(cert, _)| signed_by(&cert, &authority.ca_der));
        if !server_ok {
            let (cert, key) = authority.server_identity(ServerCert::Standard)?;
            if server_path.exists() {
                // A server certificate of another CA: replace it.
                fs::remove_file(&server_path)?;
            }
            let text = pem("CERTIFICATE", &cert) + &pem("PRIVATE KEY", key.secret_der());
            publish(&server_path, &text)?;
        }
        (authority.server_der, authority.server_key) = read_pair(&server_path)?;
        Ok(authority)
    }

    /// The CA's name, as its certificates' issuer.
    fn ca_name(&self) -> io::Result<Vec<u8>> {
        let (_, ca) = X509Certificate::from_der(&self.ca_der)
            .map_err(|e| invalid(format!("CA certificate: {e}")))?;
        Ok(ca.tbs_certificate.subject.as_raw().to_vec())
    }

    /// The UUID in the client certificates' `generationQualifier=client_<uuid>` (on an
    /// FMC the Global domain's): derived from the CA, so it is stable per directory.
    fn domain_uuid(&self) -> String {
        let hash = digest::digest(&digest::SHA256, &self.ca_der);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_ref()[..16]);
        x509::uuid(bytes)
    }

    /// The certificate and key the server presents, signed by this CA: the directory's
    /// own for `Standard` once it exists, the variants made fresh. The server key is a
    /// fresh P-256 key (the FMC's server key type is not known).
    pub(crate) fn server_identity(
        &self,
        kind: ServerCert,
    ) -> io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        if kind == ServerCert::Standard && !self.server_der.is_empty() {
            return Ok((self.server_der.clone(), self.server_key.clone_key()));
        }
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?;
        let extensions = match kind {
            ServerCert::Standard => Some(vec![
                Extension::SubjectAltName(vec![
                    AltName::Dns(SERVER_NAME.into()),
                    AltName::Dns("localhost".into()),
                    AltName::Ip([127, 0, 0, 1].into()),
                    AltName::Ip(std::net::Ipv6Addr::LOCALHOST.into()),
                ]),
                Extension::KeyUsage(vec![Usage::DigitalSignature]),
                Extension::ExtendedKeyUsage(vec![x509::OID_SERVER_AUTH]),
            ]),
            ServerCert::CaOnly => Some(vec![
                Extension::KeyUsage(vec![Usage::KeyCertSign]),
                Extension::ExtendedKeyUsage(vec![x509::OID_SERVER_AUTH]),
            ]),
            ServerCert::V1 => None,
        };
        let template = Template {
            serial: random_serial()?.to_vec(),
            issuer: self.ca_name()?,
            subject: x509::simple_name(None, SERVER_NAME),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(10 * 365),
            extensions,
        };
        let der = template.sign(&key, &self.ca_key)?;
        let key =
            PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| invalid(e.to_string()))?;
        Ok((CertificateDer::from(der), key))
    }

    /// Issues a client certificate for `client` shaped like the FMC's (see
    /// [`CertVersion`]) and returns (certificate DER, PKCS#8 key DER).
    fn issue_client(
        &self,
        client: &str,
        options: &EnrollOptions,
    ) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let key = match options.key {
            KeyType::EcdsaP256 => {
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?
            }
            KeyType::Rsa2048 => {
                KeyPair::from_pkcs8_pem_and_sign_algo(RSA_TEST_KEY, &PKCS_RSA_SHA256)
                    .map_err(rcgen_err)?
            }
        };
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::days(options.valid_days);
        let extensions = match options.cert_version {
            CertVersion::V3 => Some(vec![
                Extension::BasicConstraints { ca: false },
                Extension::SubjectAltName(vec![AltName::Dns(client.to_owned())]),
                Extension::ExtendedKeyUsage(vec![x509::OID_CLIENT_AUTH, x509::OID_SERVER_AUTH]),
            ]),
            CertVersion::V1 => None,
        };
        let template = Template {
            serial: random_serial()?.to_vec(),
            issuer: self.ca_name()?,
            subject: x509::fmc_client_name(client, &self.domain_uuid()),
            not_before: now.min(not_after) - Duration::days(1),
            not_after,
            extensions,
        };
        Ok((template.sign(&key, &self.ca_key)?, key.serialize_der()))
    }
}

/// A new FMC-like internal CA, as the text of `ca.pem`: self-signed RSA 2048, serial 0,
/// ten years, named `{title=InternalCA, OU=…, CN=<uuid>}, O=Cisco Systems, Inc`, with
/// basicConstraints CA:TRUE as its only extension (the real file's CA).
fn new_fmc_ca() -> io::Result<String> {
    let key =
        KeyPair::from_pkcs8_pem_and_sign_algo(RSA_CA_KEY, &PKCS_RSA_SHA256).map_err(rcgen_err)?;
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| io::Error::other("system random generator failed"))?;
    let name = x509::fmc_ca_name(&x509::uuid(id));
    let now = OffsetDateTime::now_utc();
    let template = Template {
        serial: vec![0],
        issuer: name.clone(),
        subject: name,
        not_before: now - Duration::days(1),
        not_after: now + Duration::days(10 * 365),
        extensions: Some(vec![Extension::BasicConstraints { ca: true }]),
    };
    let cert = template.sign(&key, &key)?;
    Ok(pem("CERTIFICATE", &cert) + RSA_CA_KEY)
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

/// Presents one certificate to every client. rustls's `with_single_cert` parses the
/// certificate with webpki, which refuses v1, so the certified key is assembled here.
#[derive(Debug)]
pub(crate) struct OneServerCert(Arc<CertifiedKey>);

impl OneServerCert {
    pub(crate) fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Arc<OneServerCert>> {
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| invalid(format!("server key: {e}")))?;
        Ok(Arc::new(OneServerCert(Arc::new(CertifiedKey::new(
            chain, signing,
        )))))
    }
}

impl ResolvesServerCert for OneServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A random positive 128-bit certificate serial number.
pub(crate) fn random_serial() -> io::Result<[u8; 16]> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| io::Error::other("system random generator failed"))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    Ok(serial)
}

/// A self-signed CA (ECDSA P-256, 20 years) named `organization` / `common_name`; the
/// Qualys simulator's HTTPS uses it too.
pub(crate) fn new_ca(
    organization: &str,
    common_name: &str,
) -> io::Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(20 * 365);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok((cert, key))
}

/// Whether `cert` carries a valid signature by `ca` (host-input.md §1: chain to the CA).
pub(crate) fn signed_by(cert: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(ca),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Writes `text` to `path` unless it exists (then the existing file wins).
pub(crate) fn publish(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, text)?;
    let result = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => fs::rename(&tmp, path),
    };
    let _ = fs::remove_file(&tmp);
    result
}

fn read_pair(path: &Path) -> io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let text = fs::read(path)?;
    let bad = |what: &str| invalid(format!("{}: no {what} in the file", path.display()));
    let cert = CertificateDer::pem_slice_iter(&text)
        .next()
        .ok_or_else(|| bad("certificate"))?
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|_| bad("private key"))?;
    Ok((cert, key))
}

/// Like the FMC's *Create Client* page (host-input.md §1): creates (once) the CA and
/// server certificate in `dir`, then writes `dir/<client>.pkcs12` with the client
/// certificate (subject `CN=<client>, OU=Intrusion Management System, O=Cisco Systems,
/// Inc, title=hostinputd, generationQualifier=client_<uuid>`, signed by the CA), its key
/// and the CA certificate, shaped like the real file in `../shared/fixtures/fmc/`.
/// Returns the file's path.
pub fn enroll(dir: &Path, client: &str, options: &EnrollOptions) -> io::Result<PathBuf> {
    if client.is_empty()
        || client == "."
        || client == ".."
        || client.contains(['/', '\\', '\0'])
        || client.chars().any(char::is_control)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("client name {client:?} cannot be a file name"),
        ));
    }
    if !client.is_ascii() {
        // It is the certificate's DNS name, an IA5String (RFC 5280 §4.2.1.6).
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("client name {client:?} must be ASCII: it is the certificate's DNS name"),
        ));
    }
    let authority = Authority::load_or_create(dir)?;
    let (cert, key) = authority.issue_client(client, options)?;
    let bytes = pkcs12::write(
        &pkcs12::Contents {
            cert: &cert,
            key_pkcs8: &key,
            ca: &authority.ca_der,
            // The FMC's bags carry a localKeyID only; OpenSSL's add a friendlyName.
            friendly_name: (options.scheme != P12Scheme::Legacy).then_some(client),
        },
        options.password.as_deref().unwrap_or(""),
        options.scheme,
    )?;
    let path = dir.join(format!("{client}.pkcs12"));
    fs::write(&path, bytes)?;
    Ok(path)
}
