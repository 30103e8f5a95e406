//! TLS for the Host Input connection (host-input.md §1): mutual TLS with the client
//! certificate and key from the FMC-generated PKCS#12 file, and verification of the
//! FMC's certificate chain against the CA certificate found in that same file.
//!
//! The FMC's certificate names are not the address the user dials, so there is no
//! hostname check; the chain must still lead to the FMC's own CA (existing clients never
//! verified the server at all; `verify_fmc_certificate: n` restores that behaviour for
//! servers whose chain does not match). The client certificate may be X.509 v1, which
//! rustls's `with_client_auth_cert` refuses, so the certified key is assembled here.
//! The FMC's own certificate may be v1 as well, which webpki refuses: `fmccert` checks
//! that chain and the KeyUsage rule webpki does not apply.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore,
    SignatureScheme,
};

use super::fmccert;
use super::pkcs12::Identity;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the private key in {path} cannot be used for TLS: {reason}")]
    Key { path: String, reason: String },
    #[error("the CA certificate in {path} cannot be used to verify the FMC: {reason}")]
    Ca { path: String, reason: String },
    #[error(
        "{path} holds no CA certificate to verify the FMC with; set verify_fmc_certificate: n to connect without verifying the FMC"
    )]
    NoCa { path: String },
    #[error("TLS setup failed: {0}")]
    Other(String),
}

/// Builds the client configuration from the PKCS#12 identity. `verify_server: false`
/// accepts any server certificate (handshake signatures are still checked).
pub fn client_config(
    identity: &Identity,
    source: &str,
    verify_server: bool,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(identity.key.clone_key())
        .map_err(|e| TlsSetupError::Key {
            path: source.to_string(),
            reason: e.to_string(),
        })?;
    let certified = Arc::new(CertifiedKey::new(identity.chain.clone(), signing_key));

    let roots = if verify_server {
        let mut roots = RootCertStore::empty();
        for ca in &identity.ca_certs {
            roots.add(ca.clone()).map_err(|e| TlsSetupError::Ca {
                path: source.to_string(),
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsSetupError::NoCa {
                path: source.to_string(),
            });
        }
        Some(roots)
    } else {
        None
    };
    let verifier = Arc::new(FmcVerifier {
        roots,
        cas: identity.ca_certs.clone(),
        algorithms: provider.signature_verification_algorithms,
    });

    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Other(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(OneCertificate(certified)));
    Ok(Arc::new(config))
}

/// Presents the one client certificate whatever the server asks for: the FMC issued it.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OneCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies the server chain against the PKCS#12's CA, without a name check; with no
/// roots (verification turned off) any certificate passes. The handshake signatures are
/// checked either way: the server must hold the key of the certificate it presents.
struct FmcVerifier {
    roots: Option<RootCertStore>,
    /// The file's CA certificates, for the chain check of a v1 server certificate.
    cas: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for FmcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FmcVerifier")
            .field("roots", &self.roots.as_ref().map(RootCertStore::len))
            .finish()
    }
}

impl ServerCertVerifier for FmcVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki refuses v1 certificates, which the FMC may use (host-input.md §1).
        if fmccert::is_v1(end_entity) {
            fmccert::verify_v1_chain(end_entity, &self.cas, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        fmccert::check_key_usage(end_entity).map_err(fmccert::CertProblem::into_error)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if fmccert::is_v1(cert) {
            return fmccert::verify_handshake_with_key(message, cert, dss, &self.algorithms, false);
        }
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if fmccert::is_v1(cert) {
            return fmccert::verify_handshake_with_key(message, cert, dss, &self.algorithms, true);
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What to tell the operator about a TLS failure: the alert or certificate problem by
/// name, and the likely cause.
pub fn explain(error: &Error) -> String {
    match error {
        Error::AlertReceived(alert) => {
            let name = alert_name(*alert);
            let hint = match alert {
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateRequired
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::AccessDenied
                | AlertDescription::DecryptError => {
                    "the FMC refused the client certificate: check that this host is registered on the FMC (System > Integration > Host Input Client) and that -pkcs12 names the file the FMC generated for it"
                }
                AlertDescription::HandshakeFailure
                | AlertDescription::ProtocolVersion
                | AlertDescription::InsufficientSecurity
                | AlertDescription::IllegalParameter => {
                    "no TLS version or cipher suite in common with the FMC (TLS 1.2 with ECDHE/AES-GCM and TLS 1.3 are offered)"
                }
                _ => "the FMC ended the TLS handshake",
            };
            format!("TLS alert {name} from the FMC: {hint}")
        }
        Error::InvalidCertificate(cert_error) => {
            let what = match cert_error {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "is not signed by the CA in the PKCS#12 file: is this the FMC that issued the file? (verify_fmc_certificate: n skips the check)"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "has expired (check this host's clock)"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "is not valid yet (check this host's clock)"
                }
                CertificateError::Other(other) => return explain_other(&other.0),
                _ => "was refused",
            };
            format!("the FMC's certificate {what} ({cert_error:?})")
        }
        Error::NoCertificatesPresented => "the FMC presented no certificate".into(),
        Error::PeerIncompatible(reason) => {
            format!("the FMC's TLS is incompatible with this client: {reason:?}")
        }
        Error::PeerMisbehaved(reason) => format!("the FMC broke the TLS protocol: {reason:?}"),
        other => format!("TLS error: {other}"),
    }
}

/// Our own problems are in words already; webpki's are named here.
fn explain_other(other: &Arc<dyn std::error::Error + Send + Sync>) -> String {
    if let Some(problem) = other.downcast_ref::<fmccert::CertProblem>() {
        return format!("the FMC's certificate {problem}");
    }
    if let Some(webpki::Error::UnsupportedCertVersion) = other.downcast_ref::<webpki::Error>() {
        return "the FMC's certificate chain holds an X.509 version this client cannot check (a v2 certificate, or a v1 intermediate): set verify_fmc_certificate: n to connect without verifying the FMC".into();
    }
    format!("the FMC's certificate was refused ({other})")
}

fn alert_name(alert: AlertDescription) -> String {
    // "BadCertificate" → "bad_certificate", the name the RFCs and OpenSSL use.
    let debug = format!("{alert:?}");
    let mut out = String::with_capacity(debug.len() + 4);
    let mut previous_lower = false;
    for c in debug.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_named_and_explained() {
        let cases = [
            (
                Error::AlertReceived(AlertDescription::BadCertificate),
                "TLS alert bad_certificate from the FMC: the FMC refused the client certificate",
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                "TLS alert unknown_ca from the FMC",
            ),
            (
                Error::AlertReceived(AlertDescription::HandshakeFailure),
                "no TLS version or cipher suite in common",
            ),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "is not signed by the CA in the PKCS#12 file",
            ),
            (
                Error::InvalidCertificate(CertificateError::Expired),
                "has expired",
            ),
        ];
        for (error, want) in cases {
            let text = explain(&error);
            assert!(text.contains(want), "{error:?}: {text}");
        }
    }

    #[test]
    fn crypto_provider_is_ring() {
        let p: rustls::crypto::CryptoProvider = rustls::crypto::ring::default_provider();
        assert!(!p.cipher_suites.is_empty());
    }
}
