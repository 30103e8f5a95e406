//! Loads the Host Input client identity from the `.pkcs12` file that the FMC generates on
//! *System > Integration > Host Input Client > Create Client* (host-input.md §1): the client
//! certificate (subject CN = the client's registered address), its private key and the FMC's
//! internal CA certificate(s), which later verify the FMC's own server chain.
//!
//! Everything happens in-process with p12-keystore: real FMC files use the legacy
//! pbeWithSHA1And40BitRC2-CBC / pbeWithSHA1And3-KeyTripleDES-CBC / SHA-1 MAC scheme that
//! OpenSSL 3 refuses without its legacy provider (which is what broke Cisco's Perl client), and
//! shelling out to `openssl` would mean writing the key to disk. Certificates are read with
//! x509-parser, not webpki, because FMC client certificates may be X.509 v1.
//!
//! The empty password: PKCS#12 derives keys from the password as a zero-terminated BMPString,
//! so "" is two zero bytes. That is what OpenSSL (`-passout pass:`) and p12-keystore both
//! write, and PBES2 (AES) files use the raw UTF-8 bytes, where HMAC's zero padding makes
//! "" and "\0" the same key anyway. Some Windows and Java writers encode "no password" as an
//! empty string without the terminator instead; p12-keystore cannot derive that key, so such
//! a file fails here as `WrongPassword` (see `WrongPassword`'s message).

use std::fmt;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::secret::Secret;

/// FMC client files are a few kilobytes; anything this big was given by mistake (a log, an
/// archive) and is not worth reading into memory.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The extension the FMC gives its files, matched case-sensitively like the Perl client's glob.
const EXTENSION: &[u8] = b".pkcs12";

/// The client identity found in a PKCS#12 file.
pub struct Identity {
    /// The client (end-entity) certificate first, then any intermediate CA certificates that
    /// lead to its issuer; never the self-signed root, which the server already has.
    pub chain: Vec<CertificateDer<'static>>,
    /// The client's private key, PKCS#8.
    pub key: PrivateKeyDer<'static>,
    /// Every other certificate in the file (the FMC's CA, possibly a chain), to verify the
    /// FMC's server certificate with.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// About the client certificate, for logs and the `check` command.
    pub info: CertInfo,
    /// About each of `ca_certs`, in the same order.
    pub ca_info: Vec<CertInfo>,
}

/// Which certificate of the file a [`Lapse`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client certificate the connector presents.
    Client,
    /// A CA certificate of the file (the FMC's internal CA), which the FMC's server
    /// certificate chains to.
    Ca,
}

/// A certificate of the file outside its validity period (RFC 5280 §4.1.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lapse {
    NotYetValid {
        role: Role,
        subject: String,
        from: SystemTime,
    },
    Expired {
        role: Role,
        subject: String,
        at: SystemTime,
    },
}

impl Lapse {
    pub fn role(&self) -> Role {
        match self {
            Lapse::NotYetValid { role, .. } | Lapse::Expired { role, .. } => *role,
        }
    }
}

impl fmt::Display for Lapse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |role: &Role| match role {
            Role::Client => "the client certificate",
            Role::Ca => "the FMC's CA certificate",
        };
        match self {
            Lapse::NotYetValid {
                role,
                subject,
                from,
            } => write!(
                f,
                "{} (subject {subject}) is not valid before {} (is this host's clock right?)",
                which(role),
                crate::logging::utc_timestamp(*from)
            ),
            Lapse::Expired { role, subject, at } => write!(
                f,
                "{} (subject {subject}) expired at {}",
                which(role),
                crate::logging::utc_timestamp(*at)
            ),
        }
    }
}

impl Identity {
    /// The file's certificates that are not valid at `now` (see [`lapses`]).
    pub fn lapses(&self, now: SystemTime) -> Vec<Lapse> {
        lapses(&self.info, &self.ca_info, now)
    }
}

/// The certificates outside their validity period at `now`: the client certificate,
/// then the CA certificates. `now` is a parameter so that a file's dates can be judged at
/// any moment; the real path passes the system clock.
pub fn lapses(client: &CertInfo, cas: &[CertInfo], now: SystemTime) -> Vec<Lapse> {
    std::iter::once((Role::Client, client))
        .chain(cas.iter().map(|info| (Role::Ca, info)))
        .filter_map(|(role, info)| {
            let subject = info.subject.clone();
            if now < info.not_before {
                Some(Lapse::NotYetValid {
                    role,
                    subject,
                    from: info.not_before,
                })
            } else if now > info.not_after {
                Some(Lapse::Expired {
                    role,
                    subject,
                    at: info.not_after,
                })
            } else {
                None
            }
        })
        .collect()
}

impl fmt::Debug for Identity {
    // Key material must never reach a log line: print counts and the certificate summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field(
                "chain",
                &format_args!("{} certificate(s)", self.chain.len()),
            )
            .field("key", &format_args!("<redacted PKCS#8 key>"))
            .field(
                "ca_certs",
                &format_args!("{} certificate(s)", self.ca_certs.len()),
            )
            .field("info", &self.info)
            .field("ca_info", &self.ca_info)
            .finish()
    }
}

/// What the connector tells the user about the client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The first common name of the subject: the address the FMC registered the client under.
    pub subject_cn: Option<String>,
    /// The whole subject, RFC 4514 style ("CN=192.0.2.5").
    pub subject: String,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The X.509 version: 1 or 3 (2 is legal but unused).
    pub version: u8,
    /// "RSA 2048", "ECDSA P-256", ...
    pub key_algorithm: String,
}

/// Why the identity could not be loaded. Every message names the file and says what to do;
/// none ever contains the password or key bytes (no variant holds either).
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    #[error(
        "{}: PKCS#12 file not found (copy the client certificate file from the FMC's Host Input Client page, or give its path with -pkcs12)",
        .path.display()
    )]
    Missing { path: PathBuf },

    #[error("{}: cannot read the PKCS#12 file: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{}: not a PKCS#12 file: {found} (use the .pkcs12 file downloaded from the FMC's Host Input Client page)",
        .path.display()
    )]
    NotPkcs12 {
        path: PathBuf,
        /// What the file looks like instead ("a PEM file ...", "an empty file", "truncated ...").
        found: String,
    },

    #[error(
        "{}: wrong password for the PKCS#12 file ({})",
        .path.display(),
        if *.password_given {
            "check the one given with -password or PKCS12_PASSWORD; a damaged file fails the same way"
        } else {
            "none was given and the file needs one: give it with -password or PKCS12_PASSWORD"
        }
    )]
    WrongPassword {
        path: PathBuf,
        /// Whether a non-empty password was tried, to say the right thing.
        password_given: bool,
    },

    #[error(
        "{}: the PKCS#12 file holds no private key (download the client's file again from the FMC's Host Input Client page)",
        .path.display()
    )]
    NoKey { path: PathBuf },

    #[error(
        "{}: the PKCS#12 file holds no certificate (download the client's file again from the FMC's Host Input Client page)",
        .path.display()
    )]
    NoCertificate { path: PathBuf },

    #[error(
        "{}: the private key in the PKCS#12 file does not belong to any certificate in it (download the client's file again from the FMC's Host Input Client page)",
        .path.display()
    )]
    KeyMismatch { path: PathBuf },

    #[error(
        "{}: the PKCS#12 file uses {what}, which this program cannot read (convert it with `openssl pkcs12` to AES-256-CBC, or create the client again on the FMC's Host Input Client page)",
        .path.display()
    )]
    Unsupported { path: PathBuf, what: String },

    #[error(
        "no .pkcs12 file in {} (copy the client certificate file from the FMC's Host Input Client page there, or give its path with -pkcs12)",
        .dir.display()
    )]
    NoneFound { dir: PathBuf },
}

/// Reads and decodes the PKCS#12 file at `path`. `None` and an empty password are the same:
/// the FMC's default.
pub fn load(path: &Path, password: Option<&Secret>) -> Result<Identity, Pkcs12Error> {
    let data = read_file(path)?;
    from_bytes(path, &data, password)
}

/// Decodes PKCS#12 `data`; `path_for_messages` only names the file in errors.
pub fn from_bytes(
    path_for_messages: &Path,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<Identity, Pkcs12Error> {
    let path = path_for_messages;
    let password = password.map(Secret::expose).unwrap_or("");
    let password_given = !password.is_empty();
    // Recognise what is plainly not a PKCS#12 file (PEM, empty, truncated) before any
    // password is tried, so that it is never reported as a wrong password.
    let outer = inspect(data).map_err(|p| p.into_error(path, password_given))?;
    // PKCS#12 turns the password into a BMPString; p12-keystore cannot encode characters
    // beyond U+FFFF (which OpenSSL writes as surrogate pairs) and would call it bad data.
    if password.chars().any(|c| u32::from(c) > 0xFFFF) {
        return Err(Pkcs12Error::Unsupported {
            path: path.to_path_buf(),
            what: "a password with characters outside Unicode's Basic Multilingual Plane (such as emoji)"
                .to_string(),
        });
    }
    let archive = open_archive(data, password)
        .map_err(|e| Problem::from_p12(e, data, &outer).into_error(path, password_given))?;
    identity(archive, path)
}

/// The `-pkcs12` default: the first `*.pkcs12` file in a directory, and the others, which the
/// caller warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub path: PathBuf,
    /// The other candidates, in the same order, for the warning.
    pub others: Vec<PathBuf>,
}

/// The guide: "-pkcs12: Default is the first located file in the local directory with the
/// .pkcs12 file extension." and troubleshooting: "ensure that you only have a single .pkcs12
/// file in the directory. If you have more, the authentication process may be using the wrong
/// one." So: the first `*.pkcs12` in name (byte) order, the extension case-sensitive and hidden
/// files skipped as the Perl client's shell-style glob does; directories are no candidates.
pub fn discover(dir: &Path) -> Result<Discovered, Pkcs12Error> {
    let unreadable = |source| Pkcs12Error::Unreadable {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.starts_with(b".") || !bytes.ends_with(EXTENSION) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        found.push(path);
    }
    // All in one directory, so path order is file-name byte order.
    found.sort();
    let mut found = found.into_iter();
    match found.next() {
        Some(path) => Ok(Discovered {
            path,
            others: found.collect(),
        }),
        None => Err(Pkcs12Error::NoneFound {
            dir: dir.to_path_buf(),
        }),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Pkcs12Error> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            Pkcs12Error::Missing {
                path: path.to_path_buf(),
            }
        } else {
            Pkcs12Error::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let meta = fs::metadata(path).map_err(io_error)?;
    if meta.is_dir() {
        // Reading a directory fails with a bare "Is a directory"; say what to give instead.
        return Err(io_error(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory (give the path of the .pkcs12 file itself)",
        )));
    }
    let mut data = Vec::new();
    // `take` so that a file growing after the metadata call still cannot exhaust memory;
    // `open_input` refuses a FIFO or device instead of waiting on it (src/files.rs).
    crate::files::open_input(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut data))
        .map_err(io_error)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(Pkcs12Error::NotPkcs12 {
            path: path.to_path_buf(),
            found: format!(
                "a file of {} bytes, where the FMC's PKCS#12 files are a few kilobytes",
                meta.len().max(data.len() as u64)
            ),
        });
    }
    Ok(data)
}

/// Decodes the archive, retrying a non-ASCII password the way OpenSSL before 1.1.0 encoded it
/// (each UTF-8 byte as one BMP character), as OpenSSL itself still does when reading.
fn open_archive(data: &[u8], password: &str) -> Result<Pkcs12Archive, P12Error> {
    match Pkcs12Archive::from_pkcs12(data, password) {
        Err(first @ P12Error::MacError(_)) if !password.is_ascii() => {
            let bytewise: String = password.bytes().map(char::from).collect();
            Pkcs12Archive::from_pkcs12(data, &bytewise).map_err(|_| first)
        }
        other => other,
    }
}

/// A certificate from the file with what matching and chain building need.
struct CertEntry {
    der: Vec<u8>,
    local_key_id: Option<Vec<u8>>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    public: KeyPublic,
    info: CertInfo,
}

impl CertEntry {
    fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }
}

/// The public half of a key, in a form comparable between a private key and a certificate.
#[derive(PartialEq, Eq)]
enum KeyPublic {
    /// Modulus and exponent without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The subjectPublicKey bits (an EC point, an Ed25519 key, ...).
    Raw(Vec<u8>),
}

fn identity(archive: Pkcs12Archive, path: &Path) -> Result<Identity, Pkcs12Error> {
    let Pkcs12Archive { keys, certs, .. } = archive;
    if keys.is_empty() {
        return Err(Pkcs12Error::NoKey {
            path: path.to_path_buf(),
        });
    }
    if certs.is_empty() {
        return Err(Pkcs12Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let mut entries: Vec<CertEntry> = Vec::with_capacity(certs.len());
    for bag in certs {
        let der = bag.cert.as_der().to_vec();
        // Files repeat certificates (the client's, once as chain member and once as CA).
        if entries.iter().any(|e| e.der == der) {
            continue;
        }
        let entry = cert_entry(der, bag.local_key_id).map_err(|reason| Pkcs12Error::NotPkcs12 {
            path: path.to_path_buf(),
            found: format!("a damaged PKCS#12 file: a certificate in it cannot be read ({reason})"),
        })?;
        entries.push(entry);
    }

    // The client certificate is the one the key belongs to, whatever the order in the file:
    // by public key where the key says what it is, else by the localKeyId attribute.
    let mut chosen = None;
    for key in &keys {
        let der = key.key.as_der();
        let index = match key_public(der) {
            Some(public) => entries.iter().position(|c| c.public == public),
            None => key.local_key_id.as_ref().and_then(|id| {
                entries
                    .iter()
                    .position(|c| c.local_key_id.as_deref() == Some(id.as_ref()))
            }),
        };
        if let Some(index) = index {
            chosen = Some((der.to_vec(), index));
            break;
        }
    }
    let Some((key, client)) = chosen else {
        return Err(Pkcs12Error::KeyMismatch {
            path: path.to_path_buf(),
        });
    };

    let client = entries.remove(client);
    let mut chain = vec![client.der.clone()];
    let mut current = &client;
    // Follow issuers through the non-self-signed certificates: those are intermediates the
    // server may need; the root it already has.
    while !current.self_signed() {
        let next = entries
            .iter()
            .find(|c| c.subject == current.issuer && !c.self_signed() && !chain.contains(&c.der));
        match next {
            Some(next) => {
                chain.push(next.der.clone());
                current = next;
            }
            None => break,
        }
    }

    let (ca_certs, ca_info) = entries
        .into_iter()
        .map(|c| (CertificateDer::from(c.der), c.info))
        .unzip();
    Ok(Identity {
        chain: chain.into_iter().map(CertificateDer::from).collect(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        ca_certs,
        ca_info,
        info: client.info,
    })
}

fn cert_entry(der: Vec<u8>, local_key_id: Option<Vec<u8>>) -> Result<CertEntry, String> {
    let (subject, issuer, public, info) = {
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
        let spki = cert.public_key();
        let public = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyPublic::Rsa {
                n: strip_zeros(rsa.modulus).to_vec(),
                e: strip_zeros(rsa.exponent).to_vec(),
            },
            _ => KeyPublic::Raw(spki.subject_public_key.data.to_vec()),
        };
        let validity = cert.validity();
        let info = CertInfo {
            subject_cn: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            version: u8::try_from(cert.version().0.saturating_add(1)).unwrap_or(u8::MAX),
            key_algorithm: key_algorithm(spki),
        };
        (
            cert.subject().as_raw().to_vec(),
            cert.issuer().as_raw().to_vec(),
            public,
            info,
        )
    };
    Ok(CertEntry {
        der,
        local_key_id,
        subject,
        issuer,
        public,
        info,
    })
}

fn system_time(unix: i64) -> SystemTime {
    let offset = Duration::from_secs(unix.unsigned_abs());
    let time = if unix >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    // Only dates beyond what the platform's clock can represent miss; the epoch is then as
    // good an answer as any, since such a certificate fails validation either way.
    time.unwrap_or(UNIX_EPOCH)
}

fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", bit_length(rsa.modulus)),
        Ok(PublicKey::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().map(|p| p.data);
            match curve {
                Some(c) if c == oid::P256 => "ECDSA P-256".to_string(),
                Some(c) if c == oid::P384 => "ECDSA P-384".to_string(),
                Some(c) if c == oid::P521 => "ECDSA P-521".to_string(),
                Some(c) => format!("ECDSA (curve {})", oid::dotted(c)),
                None => "ECDSA".to_string(),
            }
        }
        _ => match spki.algorithm.algorithm.as_bytes() {
            oid::ED25519 => "Ed25519".to_string(),
            oid::ED448 => "Ed448".to_string(),
            oid::DSA => "DSA".to_string(),
            _ => spki.algorithm.algorithm.to_id_string(),
        },
    }
}

fn strip_zeros(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    &int[start..]
}

fn bit_length(int: &[u8]) -> usize {
    match strip_zeros(int) {
        [] => 0,
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// The public key inside a PKCS#8 private key, where the encoding carries it: always for
/// RSA, usually for EC (RFC 5915's optional publicKey), and PKCS#8 v2's publicKey otherwise.
fn key_public(pkcs8: &[u8]) -> Option<KeyPublic> {
    let (info, _) = der::next(pkcs8).ok()?;
    let fields = der::children(info.body)?;
    let algorithm = fields.get(1).filter(|t| t.tag == der::SEQUENCE)?;
    let algorithm = der::children(algorithm.body)?;
    let algorithm = algorithm.first().filter(|t| t.tag == der::OID)?.body;
    let private = fields.get(2).filter(|t| t.tag == der::OCTET_STRING)?.body;
    // [1] IMPLICIT BIT STRING publicKey (RFC 5958).
    let v2_public = fields
        .iter()
        .skip(3)
        .find(|t| t.tag == 0x81)
        .and_then(|t| der::bit_string(t.body));

    if algorithm == oid::RSA_ENCRYPTION || algorithm == oid::RSASSA_PSS {
        let (rsa, _) = der::next(private).ok()?;
        let rsa = der::children(rsa.body)?;
        let n = rsa.get(1).filter(|t| t.tag == der::INTEGER)?.body;
        let e = rsa.get(2).filter(|t| t.tag == der::INTEGER)?.body;
        return Some(KeyPublic::Rsa {
            n: strip_zeros(n).to_vec(),
            e: strip_zeros(e).to_vec(),
        });
    }
    if algorithm == oid::EC_PUBLIC_KEY {
        let ec_public = der::next(private)
            .ok()
            .and_then(|(ec, _)| der::children(ec.body))
            .and_then(|ec| {
                // [1] EXPLICIT BIT STRING publicKey (RFC 5915).
                let tagged = ec.iter().find(|t| t.tag == 0xA1)?;
                let (bits, _) = der::next(tagged.body).ok()?;
                (bits.tag == der::BIT_STRING)
                    .then(|| der::bit_string(bits.body))
                    .flatten()
            });
        if let Some(point) = ec_public {
            return Some(KeyPublic::Raw(point));
        }
    }
    v2_public.map(KeyPublic::Raw)
}

/// A reason the data cannot be loaded, before it is tied to a path.
enum Problem {
    NotPkcs12(String),
    Unsupported(String),
    WrongPassword,
}

impl Problem {
    fn into_error(self, path: &Path, password_given: bool) -> Pkcs12Error {
        let path = path.to_path_buf();
        match self {
            Problem::NotPkcs12(found) => Pkcs12Error::NotPkcs12 { path, found },
            Problem::Unsupported(what) => Pkcs12Error::Unsupported { path, what },
            Problem::WrongPassword => Pkcs12Error::WrongPassword {
                path,
                password_given,
            },
        }
    }

    /// Sorts p12-keystore's errors into what the user can act on.
    fn from_p12(error: P12Error, data: &[u8], outer: &Outer<'_>) -> Problem {
        let damaged = |detail: &dyn fmt::Display| {
            Problem::NotPkcs12(format!("a damaged PKCS#12 file ({detail})"))
        };
        match error {
            // A MAC that does not verify, or a decryption whose padding is wrong, is what a
            // wrong password looks like (a damaged file too, which the message admits).
            P12Error::MacError(_) | P12Error::UnpadError | P12Error::InvalidPrivateKey => {
                Problem::WrongPassword
            }
            P12Error::Pkcs5Error(text) => {
                if text.contains("decryption failed") {
                    Problem::WrongPassword
                } else if text.contains("unsupported") {
                    Problem::Unsupported(unsupported_name(data, outer))
                } else {
                    damaged(&text)
                }
            }
            P12Error::UnsupportedEncryptionScheme | P12Error::UnsupportedMacAlgorithm => {
                Problem::Unsupported(unsupported_name(data, outer))
            }
            P12Error::UnsupportedContentType => Problem::Unsupported(
                "public-key protection (contents encrypted or signed with a key instead of a password)"
                    .to_string(),
            ),
            P12Error::UnsupportedCertificateType => {
                Problem::Unsupported("a certificate that is not X.509".to_string())
            }
            P12Error::InvalidParameters => Problem::Unsupported(
                "encryption or MAC parameters beyond p12-keystore's limits (over 1,000,000 iterations, or missing parameters)"
                    .to_string(),
            ),
            // p12-keystore's PBES2 decoding rejects ciphers it lacks as unknown OIDs.
            P12Error::DerError(e) => match known_unsupported(data) {
                Some(name) => Problem::Unsupported(name.to_string()),
                None => damaged(&e),
            },
            other => damaged(&other),
        }
    }
}

/// Names the algorithm p12-keystore refused: the MAC's digest if that is not one it knows,
/// else the first known-unsupported encryption scheme in the file.
fn unsupported_name(data: &[u8], outer: &Outer<'_>) -> String {
    if let Some(mac) = outer.mac_digest
        && !oid::SUPPORTED_MAC_DIGESTS.contains(&mac)
    {
        let name = oid::UNSUPPORTED
            .iter()
            .find(|(o, _)| *o == mac)
            .map_or_else(|| oid::dotted(mac), |(_, name)| (*name).to_string());
        return format!("a MAC with {name}");
    }
    known_unsupported(data).map_or_else(
        || "an encryption algorithm that p12-keystore does not support".to_string(),
        str::to_string,
    )
}

/// Looks for the DER encoding of a known-unsupported algorithm OID anywhere in the file.
/// Algorithm identifiers are never encrypted themselves, and a 10-byte-plus match by chance
/// in encrypted data is negligible; this only ever names an algorithm in an error.
fn known_unsupported(data: &[u8]) -> Option<&'static str> {
    oid::UNSUPPORTED.iter().find_map(|(o, name)| {
        let mut needle = vec![der::OID, u8::try_from(o.len()).ok()?];
        needle.extend_from_slice(o);
        data.windows(needle.len())
            .any(|w| w == needle.as_slice())
            .then_some(*name)
    })
}

/// What the outer layer of the file says, gathered before decryption.
struct Outer<'a> {
    /// The OID (contents) of the MAC's digest algorithm, when there is a MAC.
    mac_digest: Option<&'a [u8]>,
}

/// Checks the outer PFX structure — `SEQUENCE { INTEGER 3, ContentInfo, MacData OPTIONAL }` —
/// and otherwise says what the data is, when that is recognisable.
fn inspect(data: &[u8]) -> Result<Outer<'_>, Problem> {
    let not = |found: String| Problem::NotPkcs12(found);
    if data.is_empty() {
        return Err(not("an empty file".to_string()));
    }
    // A text file can start with "0" (0x30, a DER SEQUENCE) too; DER PKCS#12 never starts
    // with printable text, its length bytes come first.
    if data[0] != der::SEQUENCE || looks_like_text(data) {
        return Err(not(describe_non_der(data)));
    }
    let (pfx, rest) = match der::next(data) {
        Ok(found) => found,
        Err(der::Fault::Truncated { missing }) => {
            return Err(not(format!(
                "a truncated file: its last {missing} byte(s) are missing (copy it again)"
            )));
        }
        Err(der::Fault::Indefinite) => {
            return Err(Problem::Unsupported(
                "BER indefinite-length encoding (not DER)".to_string(),
            ));
        }
        Err(der::Fault::Malformed) => return Err(not("damaged DER data".to_string())),
    };
    if !rest.is_empty() {
        return Err(not(format!(
            "a PKCS#12 structure followed by {} byte(s) of other data",
            rest.len()
        )));
    }
    let fields = der::children(pfx.body).ok_or_else(|| not("damaged DER data".to_string()))?;
    match fields.first() {
        Some(v) if v.tag == der::INTEGER && v.body == [3] => {}
        Some(v) if v.tag == der::INTEGER && (v.body == [0] || v.body == [1]) => {
            return Err(not(
                "a DER private key on its own (the file must also hold the certificate)"
                    .to_string(),
            ));
        }
        Some(v) if v.tag == der::INTEGER => {
            return Err(not(format!(
                "PKCS#12 version {} where only version 3 exists",
                oid::hex(v.body)
            )));
        }
        Some(v) if v.tag == der::SEQUENCE && X509Certificate::from_der(data).is_ok() => {
            return Err(not(
                "a DER X.509 certificate on its own (the file must also hold the private key)"
                    .to_string(),
            ));
        }
        _ => return Err(not("DER data that is not PKCS#12".to_string())),
    }
    let content_type = fields
        .get(1)
        .filter(|f| f.tag == der::SEQUENCE)
        .and_then(|f| der::children(f.body))
        .and_then(|f| f.first().filter(|t| t.tag == der::OID).map(|t| t.body))
        .ok_or_else(|| not("damaged PKCS#12 data (no content)".to_string()))?;
    if content_type == oid::SIGNED_DATA {
        return Err(Problem::Unsupported(
            "public-key integrity mode (a signature instead of a password MAC)".to_string(),
        ));
    }
    if content_type != oid::DATA {
        return Err(not("DER data that is not PKCS#12".to_string()));
    }
    // MacData ::= SEQUENCE { DigestInfo ::= SEQUENCE { AlgorithmIdentifier ::= SEQUENCE { OID, .. }, .. }, .. }
    let mac_digest = fields.get(2).and_then(|mac| {
        let digest_info = der::children(mac.body)?;
        let algorithm = der::children(digest_info.first()?.body)?;
        let algorithm = der::children(algorithm.first()?.body)?;
        algorithm
            .first()
            .filter(|t| t.tag == der::OID)
            .map(|t| t.body)
    });
    Ok(Outer { mac_digest })
}

/// For data that does not start like DER: say what it is, if it is something people mix up.
fn describe_non_der(data: &[u8]) -> String {
    let text = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if let Some(after) = text.strip_prefix(b"-----BEGIN ") {
        let label: String = after
            .iter()
            .take_while(|&&b| b != b'-' && (b.is_ascii_alphanumeric() || b == b' '))
            .take(40)
            .map(|&b| char::from(b))
            .collect();
        return format!(
            "this is a PEM file (-----BEGIN {label}-----), a text encoding, where the FMC's file is binary DER"
        );
    }
    let texty = looks_like_text(text);
    if texty && text.starts_with(b"MII") {
        return "base64 text, probably an encoded PKCS#12 file (decode it with `base64 -d`)"
            .to_string();
    }
    if texty {
        return "a text file".to_string();
    }
    if data.starts_with(b"PK\x03\x04") {
        return "a ZIP archive (extract the .pkcs12 file from it)".to_string();
    }
    format!(
        "binary data that is not DER (it starts with byte 0x{:02x})",
        data[0]
    )
}

/// Whether the data starts with a run of printable ASCII text.
fn looks_like_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(256)];
    head.len() >= 4
        && head
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// Just enough DER reading to check the outer PFX layer and to find public keys inside
/// PKCS#8 private keys; decryption and the bags themselves are p12-keystore's.
mod der {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;

    /// One element: its tag byte and contents.
    pub struct Tlv<'a> {
        pub tag: u8,
        pub body: &'a [u8],
    }

    pub enum Fault {
        /// The data ends before the element does.
        Truncated {
            missing: usize,
        },
        /// BER's indefinite length, which DER forbids.
        Indefinite,
        Malformed,
    }

    /// The first element of `input` and what follows it.
    pub fn next(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Fault> {
        let (&tag, rest) = input.split_first().ok_or(Fault::Truncated { missing: 1 })?;
        if tag & 0x1F == 0x1F {
            // High tag numbers occur nowhere in PKCS#12.
            return Err(Fault::Malformed);
        }
        let (&first, mut rest) = rest.split_first().ok_or(Fault::Truncated { missing: 1 })?;
        let length = match first {
            0..=0x7F => usize::from(first),
            0x80 => return Err(Fault::Indefinite),
            0x81..=0x84 => {
                let count = usize::from(first & 0x7F);
                // `ok_or_else`: the subtraction is only valid once the split has failed.
                let (bytes, after) =
                    rest.split_at_checked(count)
                        .ok_or_else(|| Fault::Truncated {
                            missing: count.saturating_sub(rest.len()),
                        })?;
                rest = after;
                bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
            }
            _ => return Err(Fault::Malformed),
        };
        let (body, after) = rest
            .split_at_checked(length)
            .ok_or_else(|| Fault::Truncated {
                missing: length.saturating_sub(rest.len()),
            })?;
        Ok((Tlv { tag, body }, after))
    }

    /// The elements inside a constructed element's contents; `None` if they do not parse.
    pub fn children(mut body: &[u8]) -> Option<Vec<Tlv<'_>>> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let (tlv, rest) = next(body).ok()?;
            out.push(tlv);
            body = rest;
        }
        Some(out)
    }

    /// A BIT STRING's bits, when it is a whole number of bytes (as keys are).
    pub fn bit_string(body: &[u8]) -> Option<Vec<u8>> {
        let (&unused, bits) = body.split_first()?;
        (unused == 0).then(|| bits.to_vec())
    }
}

/// Object identifiers, as the contents bytes of their DER encoding.
mod oid {
    use std::fmt::Write as _;

    pub const DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
    pub const SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];

    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    pub const RSASSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    pub const P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
    pub const ED25519: &[u8] = &[0x2B, 0x65, 0x70];
    pub const ED448: &[u8] = &[0x2B, 0x65, 0x71];
    pub const DSA: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01];

    /// SHA-1 and the SHA-2 family: the MAC digests p12-keystore verifies.
    pub const SUPPORTED_MAC_DIGESTS: &[&[u8]] = &[
        &[0x2B, 0x0E, 0x03, 0x02, 0x1A],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x05],
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x06],
    ];

    const PKCS12_PBE: [u8; 9] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01];
    const PKCS5: [u8; 8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05];
    const RSADSI_DIGEST: [u8; 7] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02];
    const RSADSI_CIPHER: [u8; 7] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x03];

    const fn with<const N: usize, const M: usize>(prefix: [u8; N], last: u8) -> [u8; M] {
        let mut out = [0u8; M];
        let mut i = 0;
        while i < N {
            out[i] = prefix[i];
            i += 1;
        }
        out[N] = last;
        out
    }

    /// Algorithms p12-keystore (with its `pbes1` feature) cannot use, by name.
    pub const UNSUPPORTED: &[(&[u8], &str)] = &[
        (&with::<9, 10>(PKCS12_PBE, 1), "pbeWithSHA1And128BitRC4"),
        (&with::<9, 10>(PKCS12_PBE, 2), "pbeWithSHA1And40BitRC4"),
        (
            &with::<9, 10>(PKCS12_PBE, 4),
            "pbeWithSHA1And2-KeyTripleDES-CBC",
        ),
        (&with::<9, 10>(PKCS12_PBE, 5), "pbeWithSHA1And128BitRC2-CBC"),
        (&with::<8, 9>(PKCS5, 1), "pbeWithMD2AndDES-CBC"),
        (&with::<8, 9>(PKCS5, 3), "pbeWithMD5AndDES-CBC"),
        (&with::<8, 9>(PKCS5, 4), "pbeWithMD2AndRC2-CBC"),
        (&with::<8, 9>(PKCS5, 6), "pbeWithMD5AndRC2-CBC"),
        (&with::<8, 9>(PKCS5, 10), "pbeWithSHA1AndDES-CBC"),
        (&with::<8, 9>(PKCS5, 11), "pbeWithSHA1AndRC2-CBC"),
        (&with::<8, 9>(PKCS5, 14), "PBMAC1"),
        (&with::<7, 8>(RSADSI_DIGEST, 2), "MD2"),
        (&with::<7, 8>(RSADSI_DIGEST, 5), "MD5"),
        (&with::<7, 8>(RSADSI_CIPHER, 2), "PBES2 with RC2-CBC"),
        (&with::<7, 8>(RSADSI_CIPHER, 7), "PBES2 with DES-EDE3-CBC"),
        (&[0x2B, 0x0E, 0x03, 0x02, 0x07], "PBES2 with DES-CBC"),
    ];

    /// "1.2.840.113549.2.5" from the contents bytes.
    pub fn dotted(contents: &[u8]) -> String {
        let mut arcs: Vec<u128> = Vec::new();
        let mut value: u128 = 0;
        for &b in contents {
            value = (value << 7) | u128::from(b & 0x7F);
            if b & 0x80 == 0 {
                arcs.push(value);
                value = 0;
            }
        }
        let mut out = String::new();
        if let Some((&first, rest)) = arcs.split_first() {
            let (a, b) = match first {
                0..=39 => (0, first),
                40..=79 => (1, first - 40),
                _ => (2, first - 80),
            };
            let _ = write!(out, "{a}.{b}");
            for arc in rest {
                let _ = write!(out, ".{arc}");
            }
        }
        out
    }

    /// Small DER integers for messages.
    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().fold(String::from("0x"), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::Command;
    use std::time::SystemTime;

    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    use super::*;

    const PASSWORD: &str = "Fmc-Cl1ent pass";
    const CLIENT_IP: &str = "192.0.2.5";
    const CA_NAME: &str = "FMC Internal CA";

    // OIDs (DER contents) that show which scheme a test file really uses.
    const RC2_40: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x06];
    const TRIPLE_DES: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x03];
    const PBES2: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x05, 0x0D];
    const AES_256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A];
    const SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
    const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

    fn contains_oid(data: &[u8], oid: &[u8]) -> bool {
        let mut needle = vec![der::OID, oid.len() as u8];
        needle.extend_from_slice(oid);
        data.windows(needle.len()).any(|w| w == needle.as_slice())
    }

    fn secret(password: &str) -> Option<Secret> {
        (!password.is_empty()).then(|| Secret::new(password))
    }

    /// Every error names the file and shows no password, in its message or its Debug form.
    fn check_message(err: &Pkcs12Error, path: &Path, password: &str) {
        let shown = err.to_string();
        assert!(
            shown.contains(&path.display().to_string()),
            "message does not name {}: {shown}",
            path.display()
        );
        if !password.is_empty() {
            assert!(!shown.contains(password), "password in message: {shown}");
            assert!(
                !format!("{err:?}").contains(password),
                "password in {err:?}"
            );
        }
    }

    fn public_of_key(identity: &Identity) -> Option<KeyPublic> {
        key_public(identity.key.secret_der())
    }

    fn public_of_cert(der: &[u8]) -> KeyPublic {
        match cert_entry(der.to_vec(), None) {
            Ok(entry) => entry.public,
            Err(e) => panic!("test certificate does not parse: {e}"),
        }
    }

    fn check_validity(info: &CertInfo) {
        let now = SystemTime::now();
        assert!(info.not_before <= now && now <= info.not_after, "{info:?}");
    }

    // ---- certificates and files made in-process: rcgen and p12-keystore's writer ----

    struct Pki {
        ca: Vec<u8>,
        client: Vec<u8>,
        client_key: Vec<u8>,
        other: Vec<u8>,
        other_key: Vec<u8>,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, CA_NAME);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.der().to_vec(), key.serialize_der())
        };
        let (client, client_key) = leaf(CLIENT_IP);
        let (other, other_key) = leaf("198.51.100.9");
        Pki {
            ca: ca_cert.der().to_vec(),
            client,
            client_key,
            other,
            other_key,
        }
    }

    fn chain_entry(key: &[u8], certs: &[&[u8]]) -> KeyStoreEntry {
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            vec![0x4B, 0x49, 0x44, 0x31],
            PrivateKey::from_der(key).unwrap(),
            certs.iter().map(|c| Certificate::from_der(c).unwrap()),
        ))
    }

    fn cert_entry_of(der: &[u8]) -> KeyStoreEntry {
        KeyStoreEntry::Certificate(Certificate::from_der(der).unwrap())
    }

    fn write_p12(
        entries: Vec<(&str, KeyStoreEntry)>,
        password: &str,
        encryption: EncryptionAlgorithm,
        mac: MacAlgorithm,
        iterations: u32,
    ) -> Vec<u8> {
        let mut store = KeyStore::new();
        for (alias, entry) in entries {
            store.add_entry(alias, entry);
        }
        store
            .writer(password)
            .encryption_algorithm(encryption)
            .mac_algorithm(mac)
            .encryption_iterations(iterations)
            .mac_iterations(iterations)
            .write()
            .unwrap()
    }

    fn fmc_like(pki: &Pki, password: &str) -> Vec<u8> {
        write_p12(
            vec![(
                "client",
                chain_entry(&pki.client_key, &[&pki.client, &pki.ca]),
            )],
            password,
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
            64,
        )
    }

    #[test]
    fn loads_files_written_by_p12_keystore() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let schemes = [
            (
                "aes",
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
                PBES2,
            ),
            (
                "3des",
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
                TRIPLE_DES,
            ),
            // p12-keystore's "Rc4" variant is pbeWithSHA1And40BitRC2-CBC, the FMC's certificate scheme.
            (
                "rc2-40",
                EncryptionAlgorithm::PbeWithShaAnd40BitRc4Cbc,
                MacAlgorithm::HmacSha1,
                RC2_40,
            ),
        ];
        for (name, encryption, mac, oid) in schemes {
            for password in ["", PASSWORD] {
                let case = format!("{name}, password {:?}", !password.is_empty());
                let data = write_p12(
                    vec![(
                        "client",
                        chain_entry(&pki.client_key, &[&pki.client, &pki.ca]),
                    )],
                    password,
                    encryption,
                    mac,
                    2048,
                );
                assert!(
                    contains_oid(&data, oid),
                    "{case}: not the scheme under test"
                );
                let path = dir.path().join(format!("{name}-{}.pkcs12", password.len()));
                fs::write(&path, &data).unwrap();

                let id = load(&path, secret(password).as_ref())
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(id.info.subject_cn.as_deref(), Some(CLIENT_IP), "{case}");
                assert_eq!(id.info.subject, format!("CN={CLIENT_IP}"), "{case}");
                assert_eq!(id.info.issuer, format!("CN={CA_NAME}"), "{case}");
                assert_eq!(id.info.version, 3, "{case}");
                assert_eq!(id.info.key_algorithm, "ECDSA P-256", "{case}");
                check_validity(&id.info);
                assert_eq!(
                    id.chain,
                    vec![CertificateDer::from(pki.client.clone())],
                    "{case}"
                );
                assert_eq!(
                    id.ca_certs,
                    vec![CertificateDer::from(pki.ca.clone())],
                    "{case}"
                );
                assert_eq!(id.key.secret_der(), pki.client_key.as_slice(), "{case}");

                // An empty Secret is the same as none.
                if password.is_empty() {
                    assert!(load(&path, Some(&Secret::new(""))).is_ok(), "{case}");
                }
                let wrong = if password.is_empty() {
                    PASSWORD
                } else {
                    "not it"
                };
                assert_refuses_wrong_passwords(&path, password, wrong, &case);
            }
        }
    }

    /// A wrong password, and no password where one is needed, are both WrongPassword
    /// (saying which), and no message shows either password.
    fn assert_refuses_wrong_passwords(path: &Path, password: &str, wrong: &str, case: &str) {
        let err = load(path, Some(&Secret::new(wrong))).unwrap_err();
        assert!(
            matches!(
                err,
                Pkcs12Error::WrongPassword {
                    password_given: true,
                    ..
                }
            ),
            "{case}: {err}"
        );
        check_message(&err, path, wrong);
        check_message(&err, path, password);
        if !password.is_empty() {
            let err = load(path, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    Pkcs12Error::WrongPassword {
                        password_given: false,
                        ..
                    }
                ),
                "{case}: {err}"
            );
            assert!(
                err.to_string().contains("-password or PKCS12_PASSWORD"),
                "{err}"
            );
            check_message(&err, path, password);
        }
    }

    #[test]
    fn client_is_found_by_its_key_not_by_order_or_local_key_id() {
        let pki = pki();
        // The localKeyId sits on the unrelated certificate, which also comes first.
        let data = write_p12(
            vec![(
                "client",
                chain_entry(&pki.client_key, &[&pki.other, &pki.client, &pki.ca]),
            )],
            PASSWORD,
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
            64,
        );
        let id = from_bytes(Path::new("x.pkcs12"), &data, Some(&Secret::new(PASSWORD))).unwrap();
        assert_eq!(id.info.subject_cn.as_deref(), Some(CLIENT_IP));
        assert_eq!(id.chain, vec![CertificateDer::from(pki.client.clone())]);
        assert_eq!(
            id.ca_certs,
            vec![
                CertificateDer::from(pki.other.clone()),
                CertificateDer::from(pki.ca.clone())
            ]
        );
        assert!(public_of_key(&id) == Some(public_of_cert(&pki.client)));
    }

    /// An EC key without its optional public key: ECPrivateKey with only version and scalar.
    fn strip_ec_public(pkcs8: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match body.len() {
                n @ 0..=0x7F => out.push(n as u8),
                n @ 0x80..=0xFF => out.extend([0x81, n as u8]),
                n => out.extend([0x82, (n >> 8) as u8, n as u8]),
            }
            out.extend_from_slice(body);
            out
        }
        let (info, _) = der::next(pkcs8).ok().unwrap();
        let fields = der::children(info.body).unwrap();
        let (ec, _) = der::next(fields[2].body).ok().unwrap();
        let ec = der::children(ec.body).unwrap();
        let mut ec_body = tlv(ec[0].tag, ec[0].body);
        ec_body.extend(tlv(ec[1].tag, ec[1].body));
        let mut body = tlv(fields[0].tag, fields[0].body);
        body.extend(tlv(fields[1].tag, fields[1].body));
        body.extend(tlv(der::OCTET_STRING, &tlv(der::SEQUENCE, &ec_body)));
        tlv(der::SEQUENCE, &body)
    }

    #[test]
    fn local_key_id_decides_when_the_key_hides_its_public_part() {
        let pki = pki();
        let stripped = strip_ec_public(&pki.client_key);
        assert!(key_public(&stripped).is_none());
        assert!(key_public(&pki.client_key).is_some());
        let data = write_p12(
            vec![
                ("a-other", cert_entry_of(&pki.other)),
                ("client", chain_entry(&stripped, &[&pki.client, &pki.ca])),
            ],
            "",
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
            64,
        );
        let id = from_bytes(Path::new("x.pkcs12"), &data, None).unwrap();
        assert_eq!(id.chain, vec![CertificateDer::from(pki.client.clone())]);
        assert_eq!(id.info.subject_cn.as_deref(), Some(CLIENT_IP));

        // No certificate carries the key's localKeyId: nothing says which one is the client's.
        let data = write_p12(
            vec![
                ("a", cert_entry_of(&pki.client)),
                ("client", chain_entry(&stripped, &[])),
            ],
            "",
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
            64,
        );
        let err = from_bytes(Path::new("x.pkcs12"), &data, None).unwrap_err();
        assert!(matches!(err, Pkcs12Error::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn incomplete_files_say_what_is_missing() {
        let pki = pki();
        type Expect = fn(&Pkcs12Error) -> bool;
        type Entries<'a> = Vec<(&'a str, KeyStoreEntry)>;
        let cases: Vec<(&str, Entries, Expect)> = vec![
            (
                "certificates only",
                vec![
                    ("ca", cert_entry_of(&pki.ca)),
                    ("client", cert_entry_of(&pki.client)),
                ],
                |e| matches!(e, Pkcs12Error::NoKey { .. }),
            ),
            (
                "key only",
                vec![("client", chain_entry(&pki.client_key, &[]))],
                |e| matches!(e, Pkcs12Error::NoCertificate { .. }),
            ),
            (
                "key of another certificate",
                vec![(
                    "client",
                    chain_entry(&pki.other_key, &[&pki.client, &pki.ca]),
                )],
                |e| matches!(e, Pkcs12Error::KeyMismatch { .. }),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (case, entries, expect) in cases {
            let data = write_p12(
                entries,
                PASSWORD,
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
                64,
            );
            let path = dir.path().join("client.pkcs12");
            fs::write(&path, &data).unwrap();
            let err = load(&path, Some(&Secret::new(PASSWORD))).unwrap_err();
            assert!(expect(&err), "{case}: {err}");
            check_message(&err, &path, PASSWORD);
            assert!(
                err.to_string().contains("Host Input Client"),
                "{case}: {err}"
            );
        }
    }

    #[test]
    fn other_kinds_of_file_are_named() {
        let pki = pki();
        let p12 = fmc_like(&pki, PASSWORD);
        let cert_pem = {
            let body = fs_base64(&pki.client);
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        };
        let mut with_trailer = p12.clone();
        with_trailer.extend_from_slice(b"\n\n");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "empty file"),
            (
                "PEM certificate",
                cert_pem.clone().into_bytes(),
                "PEM file (-----BEGIN CERTIFICATE-----)",
            ),
            (
                "PEM with BOM and blank lines",
                [b"\xEF\xBB\xBF\r\n\r\n".as_slice(), cert_pem.as_bytes()].concat(),
                "PEM file",
            ),
            (
                "PEM key",
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n".to_vec(),
                "PEM file (-----BEGIN ENCRYPTED PRIVATE KEY-----)",
            ),
            (
                "DER certificate",
                pki.client.clone(),
                "X.509 certificate on its own",
            ),
            (
                "DER PKCS#8 key",
                pki.client_key.clone(),
                "private key on its own",
            ),
            (
                "base64 of the PKCS#12 file",
                fs_base64(&p12).into_bytes(),
                "base64",
            ),
            ("text", b"server: 10.10.10.10\n".to_vec(), "a text file"),
            (
                "text starting like DER",
                b"0 */4 * * * qualys\n".to_vec(),
                "a text file",
            ),
            ("zip", b"PK\x03\x04\x14\x00\x00\x00".to_vec(), "ZIP archive"),
            ("binary", vec![0x00, 0xFF, 0x13, 0x37], "0x00"),
            ("trailing bytes", with_trailer, "followed by 2 byte(s)"),
            (
                "wrong version",
                {
                    let mut d = p12.clone();
                    // SEQUENCE header, then INTEGER 3: find the 02 01 03 right after the header.
                    let at = d.windows(3).position(|w| w == [0x02, 0x01, 0x03]).unwrap();
                    d[at + 2] = 0x07;
                    d
                },
                "version 0x07",
            ),
        ];
        for (case, data, expected) in cases {
            let path = Path::new("/srv/qualys/client.pkcs12");
            let err = from_bytes(path, &data, Some(&Secret::new(PASSWORD))).unwrap_err();
            match &err {
                Pkcs12Error::NotPkcs12 { found, .. } => {
                    assert!(
                        found.contains(expected),
                        "{case}: {found:?} lacks {expected:?}"
                    );
                }
                other => panic!("{case}: expected NotPkcs12, got {other}"),
            }
            check_message(&err, path, PASSWORD);
        }
    }

    /// Standard base64 with line breaks, for the PEM and base64 test inputs.
    fn fs_base64(data: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (i, chunk) in data.chunks(3).enumerate() {
            if i > 0 && i % 16 == 0 {
                out.push('\n');
            }
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let pki = pki();
        let password = Secret::new(PASSWORD);
        let path = Path::new("client.pkcs12");
        for data in [fmc_like(&pki, PASSWORD), {
            write_p12(
                vec![(
                    "client",
                    chain_entry(&pki.client_key, &[&pki.client, &pki.ca]),
                )],
                PASSWORD,
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
                16,
            )
        }] {
            assert!(from_bytes(path, &data, Some(&password)).is_ok());
            for cut in [
                1,
                2,
                3,
                4,
                10,
                100,
                data.len() / 2,
                data.len() - 40,
                data.len() - 1,
            ] {
                let err = from_bytes(path, &data[..cut], Some(&password)).unwrap_err();
                match &err {
                    Pkcs12Error::NotPkcs12 { found, .. } => {
                        assert!(found.contains("truncated"), "cut at {cut}: {found}");
                    }
                    other => panic!("cut at {cut}: {other}"),
                }
                check_message(&err, path, PASSWORD);
            }
            // Every single byte flipped: an error of the expected kinds, whatever the byte.
            for at in 0..data.len() {
                let mut damaged = data.clone();
                damaged[at] ^= 0x01;
                match from_bytes(path, &damaged, Some(&password)) {
                    Err(
                        e @ (Pkcs12Error::NotPkcs12 { .. }
                        | Pkcs12Error::WrongPassword { .. }
                        | Pkcs12Error::Unsupported { .. }),
                    ) => check_message(&e, path, PASSWORD),
                    Err(other) => panic!("byte {at} flipped: unexpected {other}"),
                    Ok(_) => panic!("byte {at} flipped: loaded anyway"),
                }
            }
        }
    }

    #[test]
    fn missing_directory_and_oversized_paths() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pkcs12");
        let err = load(&missing, None).unwrap_err();
        assert!(matches!(err, Pkcs12Error::Missing { .. }), "{err}");
        assert!(err.to_string().contains("-pkcs12"), "{err}");
        check_message(&err, &missing, "");

        let err = load(dir.path(), None).unwrap_err();
        assert!(matches!(err, Pkcs12Error::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("directory"), "{err}");
        check_message(&err, dir.path(), "");

        let big = dir.path().join("big.pkcs12");
        fs::write(&big, vec![0x30u8; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let err = load(&big, None).unwrap_err();
        assert!(
            matches!(&err, Pkcs12Error::NotPkcs12 { found, .. } if found.contains("kilobytes")),
            "{err}"
        );
    }

    #[test]
    fn debug_and_messages_keep_secrets() {
        let pki = pki();
        let data = fmc_like(&pki, PASSWORD);
        let id = from_bytes(Path::new("c.pkcs12"), &data, Some(&Secret::new(PASSWORD))).unwrap();
        let shown = format!("{id:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(shown.contains(CLIENT_IP), "{shown}");
        // No run of the key's bytes, in decimal (Vec Debug) or hex.
        let key = id.key.secret_der();
        let tail = &key[key.len() - 8..];
        let decimal = format!("{tail:?}");
        let hex: String = tail.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(decimal.trim_matches(['[', ']'])), "{shown}");
        assert!(!shown.to_lowercase().contains(&hex), "{shown}");
        assert!(!shown.contains(PASSWORD));
    }

    #[test]
    fn passwords_beyond_ascii() {
        let pki = pki();
        let password = "pässwörd";
        let path = Path::new("c.pkcs12");
        // Today's writers: the characters as BMP (PBES1) or UTF-8 (PBES2).
        for encryption in [
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        ] {
            let data = write_p12(
                vec![("client", chain_entry(&pki.client_key, &[&pki.client]))],
                password,
                encryption,
                MacAlgorithm::HmacSha1,
                64,
            );
            assert!(from_bytes(path, &data, Some(&Secret::new(password))).is_ok());
        }
        // OpenSSL before 1.1.0: every UTF-8 byte taken as one character.
        let bytewise: String = password.bytes().map(char::from).collect();
        let data = write_p12(
            vec![("client", chain_entry(&pki.client_key, &[&pki.client]))],
            &bytewise,
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
            64,
        );
        assert!(from_bytes(path, &data, Some(&Secret::new(password))).is_ok());

        // Beyond the BMP: refused by name, never echoed.
        let astral = "key\u{1F511}";
        let err = from_bytes(path, &data, Some(&Secret::new(astral))).unwrap_err();
        assert!(
            matches!(&err, Pkcs12Error::Unsupported { what, .. } if what.contains("password")),
            "{err}"
        );
        check_message(&err, path, astral);
    }

    // ---- discover ----

    #[test]
    fn discover_picks_the_first_pkcs12_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Decoys: other extensions, another case, hidden files, a directory.
        for decoy in [
            "notes.txt",
            "client.PKCS12",
            "client.p12",
            ".hidden.pkcs12",
            "pkcs12",
        ] {
            fs::write(d.join(decoy), b"x").unwrap();
        }
        fs::create_dir(d.join("dir.pkcs12")).unwrap();
        let err = discover(d).unwrap_err();
        assert!(matches!(err, Pkcs12Error::NoneFound { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains(&d.display().to_string()) && shown.contains("-pkcs12"),
            "{shown}"
        );
        assert!(shown.contains("Host Input Client"), "{shown}");

        fs::write(d.join("fmc.pkcs12"), b"x").unwrap();
        assert_eq!(
            discover(d).unwrap(),
            Discovered {
                path: d.join("fmc.pkcs12"),
                others: vec![]
            }
        );

        for name in ["b.pkcs12", "Z.pkcs12"] {
            fs::write(d.join(name), b"x").unwrap();
        }
        // Byte order: upper case sorts before lower case.
        assert_eq!(
            discover(d).unwrap(),
            Discovered {
                path: d.join("Z.pkcs12"),
                others: vec![d.join("b.pkcs12"), d.join("fmc.pkcs12")],
            }
        );

        let err = discover(&d.join("no-such-dir")).unwrap_err();
        assert!(matches!(err, Pkcs12Error::Unreadable { .. }), "{err}");
    }

    // ---- files written by the openssl binary ----

    fn openssl_or_skip() -> bool {
        let found = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            // Straight to stderr: test capture would hide a println.
            let _ = writeln!(
                io::stderr(),
                "SKIP: openssl not found, PKCS#12 matrix skipped"
            );
        }
        found
    }

    struct OpenSsl {
        dir: tempfile::TempDir,
    }

    impl OpenSsl {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::write(
                dir.path().join("client.ext"),
                "basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n",
            )
            .unwrap();
            fs::write(
                dir.path().join("ca.ext"),
                "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
            )
            .unwrap();
            OpenSsl { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn try_run(&self, args: &[&str]) -> Result<(), String> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }

        fn run(&self, args: &[&str]) {
            if let Err(e) = self.try_run(args) {
                panic!("openssl {}: {e}", args.join(" "));
            }
        }

        fn cert_der(&self, name: &str) -> Vec<u8> {
            let pem = fs::read(self.path(name)).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            pem.contents
        }

        fn cert_version(&self, name: &str) -> u8 {
            match cert_entry(self.cert_der(name), None) {
                Ok(entry) => entry.info.version,
                Err(e) => panic!("{name}: {e}"),
            }
        }

        fn root(&self, name: &str) {
            let subj = format!("/CN={name}");
            self.run(&[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30", "-subj",
                &subj, "-keyout", "ca.key", "-out", "ca.crt",
            ]);
        }

        fn key(&self, file: &str, algorithm: &str) {
            let (alg, opt) = match algorithm {
                "rsa" => ("RSA", "rsa_keygen_bits:2048"),
                _ => ("EC", "ec_paramgen_curve:P-256"),
            };
            self.run(&["genpkey", "-algorithm", alg, "-pkeyopt", opt, "-out", file]);
        }

        /// A certificate for `key` signed by `ca`: v1 without extensions, v3 with `ext`.
        fn sign(&self, key: &str, cn: &str, ca: &str, version: u8, ext: &str, out: &str) {
            let subj = format!("/CN={cn}");
            let csr = format!("{out}.csr");
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            self.run(&["req", "-new", "-key", key, "-subj", &subj, "-out", &csr]);
            let mut args = vec![
                "x509", "-req", "-sha256", "-days", "30", "-in", &csr, "-CA", &ca_crt, "-CAkey",
                &ca_key, "-out", out,
            ];
            if version == 3 {
                args.extend(["-extfile", ext]);
            }
            self.run(&args);
            if version == 1 && self.cert_version(out) != 1 {
                // OpenSSL 3.2 and later add key identifiers to `x509 -req` output, which makes
                // it v3; `req -x509v1` still writes a v1 certificate.
                self.run(&[
                    "req", "-x509", "-x509v1", "-new", "-sha256", "-days", "30", "-key", key,
                    "-subj", &subj, "-CA", &ca_crt, "-CAkey", &ca_key, "-out", out,
                ]);
            }
            assert_eq!(self.cert_version(out), version, "{out}");
        }

        fn export(
            &self,
            key: &str,
            cert: &str,
            certfile: &str,
            password: &str,
            options: &[&str],
            out: &str,
        ) -> Result<(), String> {
            let pass = format!("pass:{password}");
            let mut args = vec![
                "pkcs12",
                "-export",
                "-inkey",
                key,
                "-in",
                cert,
                "-certfile",
                certfile,
                "-passout",
                &pass,
                "-out",
                out,
            ];
            args.extend_from_slice(options);
            self.try_run(&args)
        }
    }

    const LEGACY: &[&str] = &["-legacy"];
    const ALL_3DES: &[&str] = &[
        "-certpbe",
        "PBE-SHA1-3DES",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
    ];
    const AES: &[&str] = &[
        "-certpbe",
        "AES-256-CBC",
        "-keypbe",
        "AES-256-CBC",
        "-macalg",
        "sha256",
    ];

    #[test]
    fn openssl_matrix() {
        if !openssl_or_skip() {
            return;
        }
        let o = OpenSsl::new();
        o.root(CA_NAME);
        let ca = o.cert_der("ca.crt");
        // Which schemes the files must really use, so that the matrix tests what it says.
        type Check = fn(&[u8]) -> bool;
        let schemes: [(&str, &[&str], Check); 3] = [
            ("legacy", LEGACY, |d| {
                contains_oid(d, RC2_40) && contains_oid(d, TRIPLE_DES) && contains_oid(d, SHA1)
            }),
            ("3des", ALL_3DES, |d| {
                !contains_oid(d, RC2_40) && contains_oid(d, TRIPLE_DES) && contains_oid(d, SHA1)
            }),
            ("aes", AES, |d| {
                contains_oid(d, PBES2) && contains_oid(d, AES_256_CBC) && contains_oid(d, SHA256)
            }),
        ];
        let mut loaded = 0;
        for (algorithm, expected_algorithm) in [("rsa", "RSA 2048"), ("ec", "ECDSA P-256")] {
            let key = format!("{algorithm}.key");
            o.key(&key, algorithm);
            for version in [1u8, 3] {
                let cert = format!("{algorithm}-v{version}.crt");
                o.sign(&key, CLIENT_IP, "ca", version, "client.ext", &cert);
                let client = o.cert_der(&cert);
                for (scheme, options, check) in schemes {
                    for password in ["", PASSWORD] {
                        let case = format!(
                            "{algorithm} v{version} {scheme} password {}",
                            !password.is_empty()
                        );
                        let file =
                            format!("{algorithm}-v{version}-{scheme}-{}.pkcs12", password.len());
                        if let Err(e) = o.export(&key, &cert, "ca.crt", password, options, &file) {
                            assert_eq!(scheme, "legacy", "{case}: {e}");
                            let _ = writeln!(
                                io::stderr(),
                                "SKIP: openssl cannot write legacy (RC2) files here, {case} skipped: {e}"
                            );
                            continue;
                        }
                        let path = o.path(&file);
                        let data = fs::read(&path).unwrap();
                        assert!(check(&data), "{case}: openssl wrote another scheme");

                        let id = load(&path, secret(password).as_ref())
                            .unwrap_or_else(|e| panic!("{case}: {e}"));
                        assert_eq!(id.info.subject_cn.as_deref(), Some(CLIENT_IP), "{case}");
                        assert_eq!(id.info.issuer, format!("CN={CA_NAME}"), "{case}");
                        assert_eq!(id.info.version, version, "{case}");
                        assert_eq!(id.info.key_algorithm, expected_algorithm, "{case}");
                        check_validity(&id.info);
                        assert_eq!(
                            id.chain,
                            vec![CertificateDer::from(client.clone())],
                            "{case}"
                        );
                        assert_eq!(
                            id.ca_certs,
                            vec![CertificateDer::from(ca.clone())],
                            "{case}"
                        );
                        assert!(
                            public_of_key(&id) == Some(public_of_cert(&client)),
                            "{case}: key"
                        );
                        loaded += 1;

                        let wrong = if password.is_empty() {
                            "guess"
                        } else {
                            "Fmc-Cl1ent pas"
                        };
                        assert_refuses_wrong_passwords(&path, password, wrong, &case);
                    }
                }
            }
        }
        assert!(loaded >= 16, "only {loaded} openssl files loaded");
    }

    #[test]
    fn openssl_chains_unprotected_and_unsupported_files() {
        if !openssl_or_skip() {
            return;
        }
        let o = OpenSsl::new();
        o.root("FMC Root CA");
        o.key("inter.key", "rsa");
        o.sign(
            "inter.key",
            "FMC Intermediate CA",
            "ca",
            3,
            "ca.ext",
            "inter.crt",
        );
        o.key("client.key", "rsa");
        o.sign(
            "client.key",
            CLIENT_IP,
            "inter",
            3,
            "client.ext",
            "client.crt",
        );
        let (root, inter, client) = (
            o.cert_der("ca.crt"),
            o.cert_der("inter.crt"),
            o.cert_der("client.crt"),
        );
        let bundle = [
            fs::read(o.path("inter.crt")).unwrap(),
            fs::read(o.path("ca.crt")).unwrap(),
        ]
        .concat();
        fs::write(o.path("bundle.crt"), bundle).unwrap();

        // A chain: the intermediate goes with the client certificate, both CAs are for the server.
        o.export(
            "client.key",
            "client.crt",
            "bundle.crt",
            PASSWORD,
            AES,
            "chain.pkcs12",
        )
        .unwrap();
        let id = load(&o.path("chain.pkcs12"), Some(&Secret::new(PASSWORD))).unwrap();
        assert_eq!(
            id.chain,
            vec![
                CertificateDer::from(client.clone()),
                CertificateDer::from(inter.clone())
            ]
        );
        let mut cas: Vec<_> = id.ca_certs.iter().map(|c| c.to_vec()).collect();
        cas.sort();
        let mut expected = vec![inter.clone(), root.clone()];
        expected.sort();
        assert_eq!(cas, expected);
        assert_eq!(id.info.issuer, "CN=FMC Intermediate CA");

        // Neither encrypted nor MACed: any password does.
        let plain = &["-keypbe", "NONE", "-certpbe", "NONE", "-nomac"];
        o.export(
            "client.key",
            "client.crt",
            "bundle.crt",
            "",
            plain,
            "plain.pkcs12",
        )
        .unwrap();
        for password in [None, Some(Secret::new(PASSWORD))] {
            let id = load(&o.path("plain.pkcs12"), password.as_ref()).unwrap();
            assert_eq!(id.info.subject_cn.as_deref(), Some(CLIENT_IP));
        }
        // Encrypted without a MAC: a wrong password shows in decryption (rarely as garbage).
        o.export(
            "client.key",
            "client.crt",
            "bundle.crt",
            PASSWORD,
            &["-nomac"],
            "nomac.pkcs12",
        )
        .unwrap();
        assert!(load(&o.path("nomac.pkcs12"), Some(&Secret::new(PASSWORD))).is_ok());
        let err = load(&o.path("nomac.pkcs12"), Some(&Secret::new("other"))).unwrap_err();
        assert!(
            matches!(
                err,
                Pkcs12Error::WrongPassword { .. } | Pkcs12Error::NotPkcs12 { .. }
            ),
            "{err}"
        );

        // What p12-keystore cannot decrypt is named.
        let unsupported: [(&[&str], &str); 4] = [
            (
                &["-keypbe", "des-ede3-cbc", "-certpbe", "des-ede3-cbc"],
                "PBES2 with DES-EDE3-CBC",
            ),
            (&["-macalg", "md5"], "MAC with MD5"),
            (
                &[
                    "-legacy",
                    "-keypbe",
                    "PBE-SHA1-RC4-128",
                    "-certpbe",
                    "PBE-SHA1-RC4-128",
                ],
                "pbeWithSHA1And128BitRC4",
            ),
            (
                &[
                    "-legacy",
                    "-keypbe",
                    "PBE-SHA1-RC2-128",
                    "-certpbe",
                    "PBE-SHA1-RC2-128",
                ],
                "pbeWithSHA1And128BitRC2-CBC",
            ),
        ];
        for (options, name) in unsupported {
            if let Err(e) = o.export(
                "client.key",
                "client.crt",
                "bundle.crt",
                PASSWORD,
                options,
                "odd.pkcs12",
            ) {
                let _ = writeln!(io::stderr(), "SKIP: openssl cannot write {name} here: {e}");
                continue;
            }
            let path = o.path("odd.pkcs12");
            let err = load(&path, Some(&Secret::new(PASSWORD))).unwrap_err();
            assert!(
                matches!(&err, Pkcs12Error::Unsupported { what, .. } if what.contains(name)),
                "{name}: {err}"
            );
            check_message(&err, &path, PASSWORD);
        }

        // The client certificate in PEM, as people mix them up.
        let err = load(&o.path("client.crt"), None).unwrap_err();
        assert!(
            matches!(&err, Pkcs12Error::NotPkcs12 { found, .. } if found.contains("PEM")),
            "{err}"
        );
    }

    /// The file a real FMC generated (`../shared/fixtures/fmc/`, password `test12345`):
    /// what it says, and its validity judged at chosen moments with the function the run
    /// and `check` use (its CA expires in 2027, so "now" would make the test age).
    #[test]
    fn the_real_fmc_generated_file_loads_and_its_dates_are_judged() {
        let path = Path::new("../shared/fixtures/fmc/fmc_generated_client.pkcs12");
        if !path.exists() {
            println!("SKIP: {} is absent", path.display());
            return;
        }
        let id = load(path, Some(&Secret::new("test12345"))).unwrap();
        // A moment by its UNIX time, checked against the text it stands for.
        let at = |text: &str, unix: i64| -> SystemTime {
            let t = system_time(unix);
            assert_eq!(crate::logging::utc_timestamp(t), text);
            t
        };
        let client_subject = "CN=10.124.16.222, OU=Intrusion Management System, \
            O=Cisco Systems, Inc, title=hostinputd, \
            generationQualifier=client_e276abec-e0f2-11e3-8169-6d9ed49b625f";
        let ca_subject = "title=InternalCA + OU=Intrusion Management System + \
            CN=96fde978-65a6-11e7-a735-d8cb18f0357e, O=Cisco Systems, Inc";
        assert_eq!(
            id.info,
            CertInfo {
                subject_cn: Some("10.124.16.222".into()),
                subject: client_subject.into(),
                issuer: ca_subject.into(),
                not_before: at("2022-02-23T17:25:18Z", 1645637118),
                not_after: at("2032-02-22T17:25:18Z", 1961083518),
                version: 3,
                key_algorithm: "RSA 2048".into(),
            }
        );
        assert_eq!(id.chain.len(), 1, "the client certificate alone");
        assert_eq!(id.ca_certs.len(), 1);
        let ca = &id.ca_info[0];
        assert_eq!(
            (
                ca.subject.as_str(),
                ca.issuer.as_str(),
                ca.key_algorithm.as_str()
            ),
            (ca_subject, ca_subject, "RSA 2048")
        );
        assert_eq!(
            (ca.not_before, ca.not_after),
            (
                at("2017-05-12T23:21:02Z", 1494631262),
                at("2027-05-10T23:21:02Z", 1809991262)
            )
        );

        // Table: (moment, the lapses then).
        let ca_expired = Lapse::Expired {
            role: Role::Ca,
            subject: ca_subject.into(),
            at: at("2027-05-10T23:21:02Z", 1809991262),
        };
        let cases = [
            (at("2026-06-01T00:00:00Z", 1780272000), vec![]),
            (
                at("2027-06-01T00:00:00Z", 1811808000),
                vec![ca_expired.clone()],
            ),
            (
                at("2032-03-01T00:00:00Z", 1961712000),
                vec![
                    Lapse::Expired {
                        role: Role::Client,
                        subject: client_subject.into(),
                        at: at("2032-02-22T17:25:18Z", 1961083518),
                    },
                    ca_expired,
                ],
            ),
            (
                at("2020-01-01T00:00:00Z", 1577836800),
                vec![Lapse::NotYetValid {
                    role: Role::Client,
                    subject: client_subject.into(),
                    from: at("2022-02-23T17:25:18Z", 1645637118),
                }],
            ),
        ];
        for (moment, want) in cases {
            let label = crate::logging::utc_timestamp(moment);
            assert_eq!(id.lapses(moment), want, "{label}");
        }
        assert_eq!(
            id.lapses(at("2027-06-01T00:00:00Z", 1811808000))[0].to_string(),
            format!(
                "the FMC's CA certificate (subject {ca_subject}) expired at 2027-05-10T23:21:02Z"
            )
        );

        for wrong in [Some(Secret::new("test1234")), None] {
            let err = load(path, wrong.as_ref()).unwrap_err();
            assert!(
                matches!(err, Pkcs12Error::WrongPassword { password_given, .. } if password_given == wrong.is_some()),
                "{err}"
            );
        }
    }
}
