//! The client files of `enroll` (host-input.md §1): every scheme readable by
//! p12-keystore and by OpenSSL 3 with `-legacy`, with and without a password, and the
//! Legacy scheme's algorithms exactly as real FMC files have them.

// Helpers outside #[test] fns (fixtures, clients) fail loudly, as test code should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{children, load_identity, oid_string, tlv};
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use qualys_connector_sim::fmc::{CertVersion, EnrollOptions, KeyType, P12Scheme, enroll};

const SCHEMES: [P12Scheme; 3] = [P12Scheme::Legacy, P12Scheme::TripleDes, P12Scheme::Aes];
const PASSWORDS: [Option<&str>; 3] = [None, Some("s3cret"), Some("pässwörd with spaces")];

fn enroll_with(
    dir: &Path,
    scheme: P12Scheme,
    password: Option<&str>,
    key: KeyType,
) -> std::path::PathBuf {
    let opts = EnrollOptions {
        scheme,
        password: password.map(str::to_string),
        key,
        ..EnrollOptions::default()
    };
    enroll(dir, "192.0.2.50", &opts).unwrap()
}

#[test]
fn every_scheme_and_password_is_readable_by_p12_keystore() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in SCHEMES {
        for password in PASSWORDS {
            for key in [KeyType::EcdsaP256, KeyType::Rsa2048] {
                let label = format!("{scheme:?} {password:?} {key:?}");
                let p12 = enroll_with(dir.path(), scheme, password, key);
                let id = load_identity(&p12, password.unwrap_or(""));
                let (_, cert) = x509_parser::parse_x509_certificate(&id.chain[0]).unwrap();
                assert_eq!(
                    cert.subject()
                        .iter_common_name()
                        .next()
                        .unwrap()
                        .as_str()
                        .unwrap(),
                    "192.0.2.50",
                    "{label}"
                );
                let (_, ca) = x509_parser::parse_x509_certificate(&id.ca).unwrap();
                assert!(
                    cert.verify_signature(Some(ca.public_key())).is_ok(),
                    "{label}"
                );
                // The key matches the certificate: rustls checks the pair.
                let signer = rustls::crypto::ring::sign::any_supported_type(&id.key).unwrap();
                let spki = signer.public_key().unwrap();
                assert_eq!(spki.as_ref(), cert.public_key().raw, "{label}");

                let bytes = std::fs::read(&p12).unwrap();
                let wrong =
                    KeyStore::from_pkcs12(&bytes, "wrong password", Pkcs12ImportPolicy::Strict);
                assert!(wrong.is_err(), "{label}: a wrong password must fail");
            }
        }
    }
}

/// Walks PFX → AuthenticatedSafe and returns (cert bag cipher, key bag cipher, MAC digest).
fn algorithms(der: &[u8]) -> (String, String, String) {
    let (tag, pfx, _) = tlv(der);
    assert_eq!(tag, 0x30);
    let pfx = children(pfx);
    assert_eq!(pfx.len(), 3, "version, authSafe, macData");
    assert_eq!(pfx[0], (0x02, &[3u8][..]), "PFX version 3");
    // authSafe ContentInfo: data, [0] OCTET STRING holding the AuthenticatedSafe.
    let content_info = children(pfx[1].1);
    assert_eq!(oid_string(content_info[0].1), "1.2.840.113549.1.7.1");
    let (_, octets, _) = tlv(content_info[1].1);
    let (_, auth_safe, _) = tlv(octets);
    let safes = children(auth_safe);
    assert_eq!(safes.len(), 2);

    // 1: encryptedData with the certificate bags.
    let certs = children(safes[0].1);
    assert_eq!(
        oid_string(certs[0].1),
        "1.2.840.113549.1.7.6",
        "encryptedData"
    );
    let (_, encrypted_data, _) = tlv(certs[1].1);
    let encrypted_data = children(encrypted_data);
    let enc_content_info = children(encrypted_data[1].1);
    let alg = children(enc_content_info[1].1);
    let cert_alg = oid_string(alg[0].1);

    // 2: data with the shrouded key bag.
    let keys = children(safes[1].1);
    assert_eq!(oid_string(keys[0].1), "1.2.840.113549.1.7.1", "data");
    let (_, octets, _) = tlv(keys[1].1);
    let (_, safe_contents, _) = tlv(octets);
    let bags = children(safe_contents);
    assert_eq!(bags.len(), 1);
    let bag = children(bags[0].1);
    assert_eq!(
        oid_string(bag[0].1),
        "1.2.840.113549.1.12.10.1.2",
        "pkcs8ShroudedKeyBag"
    );
    let (_, epki, _) = tlv(bag[1].1);
    let epki = children(epki);
    let alg = children(epki[0].1);
    let key_alg = oid_string(alg[0].1);

    // MacData: DigestInfo { AlgorithmIdentifier, digest }, salt, iterations.
    let mac = children(pfx[2].1);
    let digest_info = children(mac[0].1);
    let digest_alg = children(digest_info[0].1);
    (cert_alg, key_alg, oid_string(digest_alg[0].1))
}

#[test]
fn schemes_use_the_expected_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let rc2_40 = "1.2.840.113549.1.12.1.6";
    let tdes = "1.2.840.113549.1.12.1.3";
    let pbes2 = "1.2.840.113549.1.5.13";
    let sha1 = "1.3.14.3.2.26";
    let sha256 = "2.16.840.1.101.3.4.2.1";
    let cases = [
        (P12Scheme::Legacy, rc2_40, tdes, sha1),
        (P12Scheme::TripleDes, tdes, tdes, sha1),
        (P12Scheme::Aes, pbes2, pbes2, sha256),
    ];
    for (scheme, cert_alg, key_alg, mac) in cases {
        let p12 = enroll_with(dir.path(), scheme, Some("pw"), KeyType::EcdsaP256);
        let bytes = std::fs::read(p12).unwrap();
        assert_eq!(
            algorithms(&bytes),
            (cert_alg.into(), key_alg.into(), mac.into()),
            "{scheme:?}"
        );
    }
    // The default is what real FMCs write.
    assert_eq!(EnrollOptions::default().scheme, P12Scheme::Legacy);
    // And the raw OID bytes of RC2-40 (1.2.840.113549.1.12.1.6) are in a Legacy file.
    let p12 = enroll_with(dir.path(), P12Scheme::Legacy, None, KeyType::EcdsaP256);
    let bytes = std::fs::read(p12).unwrap();
    let rc2_oid = [
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06,
    ];
    assert!(bytes.windows(rc2_oid.len()).any(|w| w == rc2_oid));
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_reads_every_scheme_with_legacy() {
    if !openssl_available() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: openssl_reads_every_scheme_with_legacy: no openssl binary"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for scheme in SCHEMES {
        for password in [None, Some("s3cret")] {
            for version in [CertVersion::V3, CertVersion::V1] {
                let label = format!("{scheme:?} {password:?} {version:?}");
                let opts = EnrollOptions {
                    scheme,
                    password: password.map(str::to_string),
                    cert_version: version,
                    ..EnrollOptions::default()
                };
                let p12 = enroll(dir.path(), "192.0.2.51", &opts).unwrap();
                let out = Command::new("openssl")
                    .arg("pkcs12")
                    .arg("-in")
                    .arg(&p12)
                    .arg("-passin")
                    .arg(format!("pass:{}", password.unwrap_or("")))
                    .args(["-nodes", "-legacy"])
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if stderr.contains("unable to load provider legacy")
                    || stderr.contains("legacy provider")
                {
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIP: openssl has no legacy provider: {stderr}"
                    );
                    return;
                }
                assert!(out.status.success(), "{label}: openssl failed: {stderr}");
                assert_eq!(
                    stdout.matches("-----BEGIN CERTIFICATE-----").count(),
                    2,
                    "{label}"
                );
                assert_eq!(
                    stdout.matches("-----BEGIN PRIVATE KEY-----").count(),
                    1,
                    "{label}"
                );
                assert!(
                    stdout.contains("CN = 192.0.2.51") || stdout.contains("CN=192.0.2.51"),
                    "{label}: {stdout}"
                );
                // The FMC's bags carry a localKeyID only; the other schemes, like
                // OpenSSL, add a friendlyName.
                assert!(stdout.contains("localKeyID:"), "{label}: {stdout}");
                assert_eq!(
                    stdout.contains("friendlyName: 192.0.2.51"),
                    scheme != P12Scheme::Legacy,
                    "{label}: {stdout}"
                );
                // A wrong password is refused (the MAC does not verify).
                let wrong = Command::new("openssl")
                    .arg("pkcs12")
                    .arg("-in")
                    .arg(&p12)
                    .args(["-passin", "pass:nope", "-nodes", "-legacy"])
                    .output()
                    .unwrap();
                assert!(!wrong.status.success(), "{label}: wrong password accepted");
            }
        }
    }
}

#[test]
fn openssl_3_without_legacy_refuses_the_legacy_scheme() {
    // host-input.md §1: "OpenSSL 3 refuses these without its legacy provider".
    if !openssl_available() {
        let _ = writeln!(std::io::stderr(), "SKIP: no openssl binary");
        return;
    }
    let version = Command::new("openssl").arg("version").output().unwrap();
    if !String::from_utf8_lossy(&version.stdout).starts_with("OpenSSL 3") {
        let _ = writeln!(std::io::stderr(), "SKIP: openssl is not OpenSSL 3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p12 = enroll_with(dir.path(), P12Scheme::Legacy, None, KeyType::EcdsaP256);
    let out = Command::new("openssl")
        .arg("pkcs12")
        .arg("-in")
        .arg(&p12)
        .args(["-passin", "pass:", "-nodes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "OpenSSL 3 read RC2 without -legacy");
    let aes = enroll_with(dir.path(), P12Scheme::Aes, None, KeyType::EcdsaP256);
    let out = Command::new("openssl")
        .arg("pkcs12")
        .arg("-in")
        .arg(&aes)
        .args(["-passin", "pass:", "-nodes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client file's shape, values aside: the PKCS#12 algorithms and iteration counts, and
/// for each certificate its version, signature algorithm, the attribute types of each
/// RDN of its subject and issuer, its key, serial zero or not, and its extensions.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    pkcs12: Vec<String>,
    certs: Vec<Vec<String>>,
}

fn shape(path: &Path, password: &str) -> Shape {
    let der = std::fs::read(path).unwrap();
    let id = load_identity(path, password);
    let certs = [&id.chain[0], &id.ca]
        .iter()
        .map(|c| cert_shape(c.as_ref()))
        .collect();
    Shape {
        pkcs12: pkcs12_shape(&der),
        certs,
    }
}

/// The iteration count in PBES1 parameters `SEQUENCE { salt, iterations }`.
fn pbe_iterations(params: &[u8]) -> u64 {
    integer_value(children(params)[1].1)
}

fn pkcs12_shape(der: &[u8]) -> Vec<String> {
    let (cert_alg, key_alg, mac) = algorithms(der);
    let (_, pfx, _) = tlv(der);
    let pfx = children(pfx);
    let content_info = children(pfx[1].1);
    let (_, octets, _) = tlv(content_info[1].1);
    let (_, auth_safe, _) = tlv(octets);
    let safes = children(auth_safe);
    let certs = children(safes[0].1);
    let (_, encrypted_data, _) = tlv(certs[1].1);
    let alg = children(children(children(encrypted_data)[1].1)[1].1);
    let cert_iterations = pbe_iterations(alg[1].1);
    let keys = children(safes[1].1);
    let (_, octets, _) = tlv(keys[1].1);
    let (_, safe_contents, _) = tlv(octets);
    let bag = children(children(safe_contents)[0].1);
    let (_, epki, _) = tlv(bag[1].1);
    let alg = children(children(epki)[0].1);
    let key_iterations = pbe_iterations(alg[1].1);
    let mac_fields = children(pfx[2].1);
    // MacData's iterations default to 1 when absent (RFC 7292 §4).
    let mac_iterations = mac_fields.get(2).map_or(1, |f| integer_value(f.1));
    vec![
        format!("certificate bags {cert_alg} x{cert_iterations}"),
        format!("key bag {key_alg} x{key_iterations}"),
        format!("MAC {mac} x{mac_iterations}"),
    ]
}

fn integer_value(integer: &[u8]) -> u64 {
    integer.iter().fold(0, |n, b| n * 256 + u64::from(*b))
}

fn cert_shape(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let layout = |name: &x509_parser::x509::X509Name<'_>| -> String {
        name.iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| atv.attr_type().to_id_string())
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = match cert.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => format!("RSA {}", rsa.key_size()),
        other => format!("{other:?}").chars().take(20).collect(),
    };
    let mut out = vec![
        format!("version {}", cert.version().0 + 1),
        format!(
            "signature {}",
            cert.signature_algorithm.algorithm.to_id_string()
        ),
        format!("subject {}", layout(cert.subject())),
        format!("issuer {}", layout(cert.issuer())),
        format!("key {key}"),
        format!("serial zero {}", cert.raw_serial().iter().all(|b| *b == 0)),
    ];
    for ext in cert.extensions() {
        let what = match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => format!("CA:{}", bc.ca),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                format!(
                    "clientAuth:{} serverAuth:{}",
                    eku.client_auth, eku.server_auth
                )
            }
            ParsedExtension::SubjectAlternativeName(san) => san
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(_) => "DNS",
                    GeneralName::IPAddress(_) => "IP",
                    _ => "other",
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        out.push(format!(
            "extension {} critical:{} {what}",
            ext.oid.to_id_string(),
            ext.critical
        ));
    }
    out
}

/// The default file of `enroll` has the shape of a file a real FMC generated
/// (`../shared/fixtures/fmc/`): RSA 2048 signed with SHA-256/RSA, the client's
/// `CN, OU, O, title, generationQualifier`, the CA's multi-valued RDN, the same
/// extensions, RC2-40 and 3DES with 2048 iterations, a SHA-1 MAC with one.
#[test]
fn the_default_file_has_the_shape_of_an_fmc_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = EnrollOptions {
        password: Some("test12345".into()),
        ..EnrollOptions::default()
    };
    let ours = shape(
        &enroll(dir.path(), "10.124.16.222", &options).unwrap(),
        "test12345",
    );
    // Written out, so the test says what the shape is even without the fixture.
    let client_name = "2.5.4.3, 2.5.4.11, 2.5.4.10, 2.5.4.12, 2.5.4.44";
    let ca_name = "2.5.4.12+2.5.4.11+2.5.4.3, 2.5.4.10";
    let want = Shape {
        pkcs12: vec![
            "certificate bags 1.2.840.113549.1.12.1.6 x2048".into(),
            "key bag 1.2.840.113549.1.12.1.3 x2048".into(),
            "MAC 1.3.14.3.2.26 x1".into(),
        ],
        certs: vec![
            vec![
                "version 3".into(),
                "signature 1.2.840.113549.1.1.11".into(),
                format!("subject {client_name}"),
                format!("issuer {ca_name}"),
                "key RSA 2048".into(),
                "serial zero false".into(),
                "extension 2.5.29.19 critical:false CA:false".into(),
                "extension 2.5.29.17 critical:false DNS".into(),
                "extension 2.5.29.37 critical:false clientAuth:true serverAuth:true".into(),
            ],
            vec![
                "version 3".into(),
                "signature 1.2.840.113549.1.1.11".into(),
                format!("subject {ca_name}"),
                format!("issuer {ca_name}"),
                "key RSA 2048".into(),
                "serial zero true".into(),
                "extension 2.5.29.19 critical:false CA:true".into(),
            ],
        ],
    };
    assert_eq!(ours, want);

    let real = Path::new("../../shared/fixtures/fmc/fmc_generated_client.pkcs12");
    if !real.exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: the comparison with {} (absent)",
            real.display()
        );
        return;
    }
    assert_eq!(shape(real, "test12345"), want, "the real file's shape");
}

/// The names are the FMC's, not only their layout: the client's address, the unit,
/// organisation and title, a `client_<uuid>` qualifier, the CA's `InternalCA` and UUID.
#[test]
fn the_default_names_are_the_fmcs() {
    let dir = tempfile::tempdir().unwrap();
    let id = load_identity(
        &enroll(dir.path(), "192.0.2.7", &EnrollOptions::default()).unwrap(),
        "",
    );
    let (_, cert) = x509_parser::parse_x509_certificate(&id.chain[0]).unwrap();
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    let (prefix, qualifier) = subject.rsplit_once("generationQualifier=client_").unwrap();
    assert_eq!(
        prefix,
        "CN=192.0.2.7, OU=Intrusion Management System, O=Cisco Systems, Inc, title=hostinputd, "
    );
    assert_eq!(qualifier.len(), 36, "a UUID: {qualifier}");
    let (head, uuid) = issuer.split_once("CN=").unwrap();
    assert_eq!(head, "title=InternalCA + OU=Intrusion Management System + ");
    let (uuid, tail) = uuid.split_once(", ").unwrap();
    assert_eq!((uuid.len(), tail), (36, "O=Cisco Systems, Inc"));
    // The same CA for a second client of the directory, another for another directory.
    let again = load_identity(
        &enroll(dir.path(), "192.0.2.8", &EnrollOptions::default()).unwrap(),
        "",
    );
    assert_eq!(again.ca, id.ca);
    let other = tempfile::tempdir().unwrap();
    let elsewhere = load_identity(
        &enroll(other.path(), "192.0.2.7", &EnrollOptions::default()).unwrap(),
        "",
    );
    let (_, other_ca) = x509_parser::parse_x509_certificate(&elsewhere.ca).unwrap();
    assert_ne!(other_ca.subject().to_string(), issuer);
    // ECDSA stays available.
    let ecdsa = EnrollOptions {
        key: KeyType::EcdsaP256,
        ..EnrollOptions::default()
    };
    let id = load_identity(&enroll(dir.path(), "192.0.2.9", &ecdsa).unwrap(), "");
    let (_, cert) = x509_parser::parse_x509_certificate(&id.chain[0]).unwrap();
    assert!(matches!(
        cert.public_key().parsed().unwrap(),
        x509_parser::public_key::PublicKey::EC(_)
    ));
}
