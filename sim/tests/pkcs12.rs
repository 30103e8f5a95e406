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
                assert!(
                    stdout.contains("friendlyName: 192.0.2.51"),
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
