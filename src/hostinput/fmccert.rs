//! The checks on the FMC's own certificate that rustls's chain check does not make
//! (host-input.md §1): the KeyUsage rule of RFC 5280 §4.2.1.3 for a TLS server, and the
//! chain check of an X.509 v1 server certificate, which webpki refuses outright.
//!
//! A v1 certificate has no extensions (RFC 5280 §4.1.2.1), so the only things to check
//! are those that make a chain safe: the issuer is a CA certificate of the PKCS#12 file,
//! its signature verifies with that CA's key under a SHA-2 algorithm, and it is within
//! its validity period. The handshake signature is then checked against the v1
//! certificate's public key (`verify_handshake_with_key`).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, PeerMisbehaved};
use x509_parser::extensions::KeyUsage;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
use x509_parser::prelude::{FromDer as _, X509Certificate, X509Version};

/// A problem with the FMC's certificate, in words (shown after "the FMC's certificate").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error(
        "may only sign certificates or CRLs (KeyUsage {0}): it cannot be a server certificate; the FMC must present its server certificate, not its CA (verify_fmc_certificate: n skips the check)"
    )]
    OnlyCa(String),
    #[error(
        "does not allow TLS server use (KeyUsage {0}; a server needs digitalSignature or keyEncipherment) (verify_fmc_certificate: n skips the check)"
    )]
    NoServerUsage(String),
    #[error("has a KeyUsage extension that cannot be read: {0}")]
    BadKeyUsage(String),
    #[error("cannot be read as an X.509 certificate: {0}")]
    Unreadable(String),
    #[error(
        "is an X.509 v1 certificate not issued by the CA in the PKCS#12 file: is this the FMC that issued the file? (verify_fmc_certificate: n skips the check)"
    )]
    V1UnknownIssuer,
    #[error(
        "is an X.509 v1 certificate signed with {0}, which is too weak to trust (verify_fmc_certificate: n skips the check)"
    )]
    V1WeakSignature(&'static str),
    #[error(
        "is an X.509 v1 certificate whose signature does not verify with the CA in the PKCS#12 file ({0}): is this the FMC that issued the file? (verify_fmc_certificate: n skips the check)"
    )]
    V1BadSignature(String),
}

impl CertProblem {
    /// The rustls error that carries this problem out of the verifier; `explain` finds it.
    pub fn into_error(self) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, CertProblem> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CertProblem::Unreadable(e.to_string()))
}

/// Whether the end-entity certificate is X.509 v1 (no version field).
pub fn is_v1(der: &CertificateDer<'_>) -> bool {
    parse(der).is_ok_and(|c| c.version() == X509Version::V1)
}

/// RFC 5280 §4.2.1.3: when KeyUsage is present it must allow what the TLS server does
/// with its key: sign the handshake (digitalSignature) or, for RSA key exchange, decrypt
/// the premaster secret (keyEncipherment). Absent, any usage is allowed (the FMC's own
/// certificates carry none).
pub fn check_key_usage(der: &CertificateDer<'_>) -> Result<(), CertProblem> {
    let cert = parse(der)?;
    let usage = match cert.key_usage() {
        Ok(None) => return Ok(()),
        Ok(Some(ext)) => ext.value,
        Err(e) => return Err(CertProblem::BadKeyUsage(e.to_string())),
    };
    if usage.digital_signature() || usage.key_encipherment() {
        return Ok(());
    }
    let named = usage_names(usage);
    if usage.key_cert_sign() || usage.crl_sign() {
        Err(CertProblem::OnlyCa(named))
    } else {
        Err(CertProblem::NoServerUsage(named))
    }
}

/// The usages a KeyUsage allows, by their RFC 5280 §4.2.1.3 names.
fn usage_names(usage: &KeyUsage) -> String {
    let flags = [
        (usage.non_repudiation(), "nonRepudiation"),
        (usage.data_encipherment(), "dataEncipherment"),
        (usage.key_agreement(), "keyAgreement"),
        (usage.key_cert_sign(), "keyCertSign"),
        (usage.crl_sign(), "cRLSign"),
        (usage.encipher_only(), "encipherOnly"),
        (usage.decipher_only(), "decipherOnly"),
    ];
    let names: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    if names.is_empty() {
        "with no usage".into()
    } else {
        names.join(", ")
    }
}

/// Checks a v1 server certificate against the file's CA certificates: issuer name, a
/// SHA-2 signature by that CA, validity period (RFC 5280 §6.1.3 (a)).
pub fn verify_v1_chain(
    end_entity: &CertificateDer<'_>,
    cas: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<(), Error> {
    let cert = parse(end_entity).map_err(CertProblem::into_error)?;
    let sig_oid = &cert.signature_algorithm.algorithm;
    if *sig_oid == OID_PKCS1_SHA1WITHRSA || *sig_oid == OID_SHA1_WITH_RSA {
        return Err(CertProblem::V1WeakSignature("SHA-1").into_error());
    }
    // RFC 5280 §4.1.1.2: the signed and the outer algorithm must be the same.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(
            CertProblem::V1BadSignature("mismatched signature algorithms".into()).into_error(),
        );
    }
    let issuers: Vec<X509Certificate<'_>> = cas
        .iter()
        .filter_map(|ca| parse(ca).ok())
        .filter(|ca| ca.tbs_certificate.subject.as_raw() == cert.tbs_certificate.issuer.as_raw())
        .collect();
    if issuers.is_empty() {
        return Err(CertProblem::V1UnknownIssuer.into_error());
    }
    let mut last = String::new();
    let signed = issuers.iter().any(|ca| {
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|e| last = e.to_string())
            .is_ok()
    });
    if !signed {
        return Err(CertProblem::V1BadSignature(last).into_error());
    }
    check_validity(&cert, now)
}

fn check_validity(cert: &X509Certificate<'_>, now: UnixTime) -> Result<(), Error> {
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Verifies a handshake signature with the public key of a certificate webpki cannot
/// parse (v1): TLS 1.3 binds the scheme to one algorithm, TLS 1.2 tries each candidate,
/// as rustls does for v3 certificates.
pub fn verify_handshake_with_key(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let parsed = parse(cert).map_err(CertProblem::into_error)?;
    let spki = SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
    if tls13 {
        return rustls::crypto::verify_tls13_signature_with_raw_key(
            message, &spki, dss, algorithms,
        );
    }
    let key = webpki::RawPublicKeyEntity::try_from(&spki)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let candidates = algorithms
        .mapping
        .iter()
        .filter(|(scheme, _)| *scheme == dss.scheme)
        .flat_map(|(_, algs)| algs.iter())
        .collect::<Vec<_>>();
    if candidates.is_empty() {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    for alg in candidates {
        if key.verify_signature(*alg, message, dss.signature()).is_ok() {
            return Ok(HandshakeSignatureValid::assertion());
        }
    }
    Err(Error::InvalidCertificate(CertificateError::BadSignature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose as U};

    fn cert_with(usages: Option<Vec<U>>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["fmc".into()]).unwrap();
        if let Some(usages) = usages {
            params.key_usages = usages;
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn key_usage_follows_rfc_5280() {
        // (KeyUsage, None when accepted or the words of the refusal)
        let cases: [(Option<Vec<U>>, Option<&str>); 7] = [
            (None, None),
            (Some(vec![U::DigitalSignature]), None),
            (Some(vec![U::KeyEncipherment]), None),
            (Some(vec![U::DigitalSignature, U::KeyCertSign]), None),
            (
                Some(vec![U::KeyCertSign]),
                Some(
                    "may only sign certificates or CRLs (KeyUsage keyCertSign): it cannot be a server certificate",
                ),
            ),
            (
                Some(vec![U::KeyCertSign, U::CrlSign]),
                Some("(KeyUsage keyCertSign, cRLSign)"),
            ),
            (
                Some(vec![U::KeyAgreement]),
                Some("does not allow TLS server use (KeyUsage keyAgreement;"),
            ),
        ];
        for (usages, want) in cases {
            let label = format!("{usages:?}");
            let got = check_key_usage(&cert_with(usages));
            match want {
                None => assert_eq!(got, Ok(()), "{label}"),
                Some(words) => {
                    let text = got.unwrap_err().to_string();
                    assert!(text.contains(words), "{label}: {text}");
                }
            }
        }
    }

    #[test]
    fn the_real_fmc_generated_file_passes_the_key_usage_rule() {
        let path = std::path::Path::new("../shared/fixtures/fmc/fmc_generated_client.pkcs12");
        if !path.exists() {
            println!("SKIP: {} is absent", path.display());
            return;
        }
        let password = crate::secret::Secret::new("test12345");
        let identity = crate::hostinput::pkcs12::load(path, Some(&password)).unwrap();
        let all: Vec<_> = identity.chain.iter().chain(&identity.ca_certs).collect();
        assert!(all.len() >= 2, "client and CA certificates");
        for cert in all {
            let parsed = parse(cert).unwrap();
            assert!(
                parsed.key_usage().unwrap().is_none(),
                "no KeyUsage in the file"
            );
            assert_eq!(check_key_usage(cert), Ok(()));
        }
    }

    #[test]
    fn v1_chain_needs_the_files_ca_and_the_validity_period() {
        use qualys_connector_sim::fmc::{CertVersion, EnrollOptions, enroll};
        // fmc-sim's v1 client certificate: a v1 certificate signed by its CA.
        let dir = tempfile::tempdir().unwrap();
        let options = EnrollOptions {
            cert_version: CertVersion::V1,
            ..EnrollOptions::default()
        };
        let file = enroll(dir.path(), "127.0.0.1", &options).unwrap();
        let identity = crate::hostinput::pkcs12::load(&file, None).unwrap();
        let v1 = &identity.chain[0];
        assert!(is_v1(v1));
        let now = UnixTime::now();
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now.as_secs() + 3 * 365 * 86_400,
        ));
        let epoch = UnixTime::since_unix_epoch(std::time::Duration::ZERO);
        let other = tempfile::tempdir().unwrap();
        let other_file = enroll(other.path(), "127.0.0.1", &options).unwrap();
        let other_ca = crate::hostinput::pkcs12::load(&other_file, None)
            .unwrap()
            .ca_certs;
        let words = |r: Result<(), Error>| crate::hostinput::tls::explain(&r.unwrap_err());
        assert!(verify_v1_chain(v1, &identity.ca_certs, now).is_ok());
        assert!(words(verify_v1_chain(v1, &[], now)).contains("not issued by the CA"));
        // Another FMC's CA has another name (its UUID); a certificate whose signature was
        // changed names the right CA but does not verify.
        assert!(words(verify_v1_chain(v1, &other_ca, now)).contains("not issued by the CA"));
        let mut forged = v1.to_vec();
        if let Some(last) = forged.last_mut() {
            *last ^= 0x01;
        }
        let forged = CertificateDer::from(forged);
        assert!(
            words(verify_v1_chain(&forged, &identity.ca_certs, now)).contains("does not verify")
        );
        assert!(words(verify_v1_chain(v1, &identity.ca_certs, later)).contains("has expired"));
        assert!(words(verify_v1_chain(v1, &identity.ca_certs, epoch)).contains("not valid yet"));
    }

    #[test]
    fn unreadable_certificates_are_named() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert!(!is_v1(&junk));
        let text = check_key_usage(&junk).unwrap_err().to_string();
        assert!(
            text.starts_with("cannot be read as an X.509 certificate"),
            "{text}"
        );
    }

    #[test]
    fn explain_words_each_problem() {
        let text = crate::hostinput::tls::explain(&CertProblem::V1UnknownIssuer.into_error());
        assert!(
            text.starts_with(
                "the FMC's certificate is an X.509 v1 certificate not issued by the CA"
            ),
            "{text}"
        );
    }
}
