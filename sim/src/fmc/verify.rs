//! Client certificate verification for the simulator's TLS server (host-input.md §1:
//! mutual TLS with the FMC-issued certificate, which "may be X.509 v1").
//!
//! rustls's stock `WebPkiClientVerifier` refuses v1 certificates, so this verifier
//! checks the chain itself with x509-parser (issuer name, CA signature, validity period)
//! and verifies the TLS 1.2 / 1.3 CertificateVerify signatures with ring, using the
//! public key of the client certificate.

use std::sync::Arc;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Accepts exactly the certificates that the CA of one simulator directory issued.
#[derive(Debug)]
pub(crate) struct CaClientVerifier {
    ca_der: Vec<u8>,
    hints: Vec<DistinguishedName>,
}

impl CaClientVerifier {
    pub(crate) fn new(ca_der: &[u8]) -> Result<Arc<Self>, String> {
        let (_, ca) =
            X509Certificate::from_der(ca_der).map_err(|e| format!("CA certificate: {e}"))?;
        let subject = ca.tbs_certificate.subject.as_raw().to_vec();
        Ok(Arc::new(CaClientVerifier {
            ca_der: ca_der.to_vec(),
            hints: vec![DistinguishedName::from(subject)],
        }))
    }
}

fn bad(e: CertificateError) -> Error {
    Error::InvalidCertificate(e)
}

/// The signature schemes we verify, with ring's algorithms. TLS 1.2 allows ECDSA with
/// any curve per hash, TLS 1.3 binds the curve (RFC 8446 §4.2.3) and forbids PKCS#1.
fn algorithms(scheme: SignatureScheme, tls13: bool) -> Vec<&'static dyn VerificationAlgorithm> {
    use SignatureScheme as S;
    match (scheme, tls13) {
        (S::ECDSA_NISTP256_SHA256, false) => {
            vec![
                &signature::ECDSA_P256_SHA256_ASN1,
                &signature::ECDSA_P384_SHA256_ASN1,
            ]
        }
        (S::ECDSA_NISTP256_SHA256, true) => vec![&signature::ECDSA_P256_SHA256_ASN1],
        (S::ECDSA_NISTP384_SHA384, false) => {
            vec![
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P256_SHA384_ASN1,
            ]
        }
        (S::ECDSA_NISTP384_SHA384, true) => vec![&signature::ECDSA_P384_SHA384_ASN1],
        (S::ED25519, _) => vec![&signature::ED25519],
        (S::RSA_PSS_SHA256, _) => vec![&signature::RSA_PSS_2048_8192_SHA256],
        (S::RSA_PSS_SHA384, _) => vec![&signature::RSA_PSS_2048_8192_SHA384],
        (S::RSA_PSS_SHA512, _) => vec![&signature::RSA_PSS_2048_8192_SHA512],
        (S::RSA_PKCS1_SHA256, false) => vec![&signature::RSA_PKCS1_2048_8192_SHA256],
        (S::RSA_PKCS1_SHA384, false) => vec![&signature::RSA_PKCS1_2048_8192_SHA384],
        (S::RSA_PKCS1_SHA512, false) => vec![&signature::RSA_PKCS1_2048_8192_SHA512],
        _ => vec![],
    }
}

fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let algs = algorithms(dss.scheme, tls13);
    if algs.is_empty() {
        return Err(Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let (_, cert) =
        X509Certificate::from_der(cert).map_err(|_| bad(CertificateError::BadEncoding))?;
    // The BIT STRING content: an EC point, or the DER RSAPublicKey, which is what ring wants.
    let key = &cert.public_key().subject_public_key.data;
    let ok = algs.iter().any(|alg| {
        UnparsedPublicKey::new(*alg, key)
            .verify(message, dss.signature())
            .is_ok()
    });
    if ok {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(bad(CertificateError::BadSignature))
    }
}

impl ClientCertVerifier for CaClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let (_, ca) = X509Certificate::from_der(&self.ca_der)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let (_, cert) = X509Certificate::from_der(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        // The FMC's CA issues client certificates directly: no intermediates.
        if cert.tbs_certificate.issuer.as_raw() != ca.tbs_certificate.subject.as_raw() {
            return Err(bad(CertificateError::UnknownIssuer));
        }
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            // Same name, other key: a certificate of another simulator's CA.
            return Err(bad(CertificateError::UnknownIssuer));
        }
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if now_secs < validity.not_before.timestamp() {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now_secs > validity.not_after.timestamp() {
            return Err(bad(CertificateError::Expired));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_handshake_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_handshake_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ]
    }
}
