//! Mutual TLS of the simulator (host-input.md §1): v1 and v3 client certificates with
//! ECDSA and RSA keys over TLS 1.2 and 1.3, every CertificateVerify scheme, and the
//! certificates that must be refused (other CA, expired, none).

// Helpers outside #[test] fns (fixtures, clients) fail loudly, as test code should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Client, ClientOptions, fixture, fixture_with, load_identity};
use qualys_connector_sim::fmc::{CertVersion, EnrollOptions, KeyType, enroll};
use rustls::SignatureScheme;

#[test]
fn v1_and_v3_clients_with_ecdsa_and_rsa_keys_are_accepted() {
    use SignatureScheme as S;
    // (cert version, key, TLS 1.3?, schemes the client may use)
    let cases = [
        (CertVersion::V3, KeyType::EcdsaP256, true, vec![]),
        (CertVersion::V3, KeyType::EcdsaP256, false, vec![]),
        (CertVersion::V1, KeyType::EcdsaP256, true, vec![]),
        (CertVersion::V1, KeyType::EcdsaP256, false, vec![]),
        (
            CertVersion::V3,
            KeyType::Rsa2048,
            true,
            vec![S::RSA_PSS_SHA256],
        ),
        (
            CertVersion::V3,
            KeyType::Rsa2048,
            true,
            vec![S::RSA_PSS_SHA384],
        ),
        (
            CertVersion::V3,
            KeyType::Rsa2048,
            true,
            vec![S::RSA_PSS_SHA512],
        ),
        (CertVersion::V1, KeyType::Rsa2048, true, vec![]),
        (
            CertVersion::V1,
            KeyType::Rsa2048,
            false,
            vec![S::RSA_PKCS1_SHA256],
        ),
        (
            CertVersion::V3,
            KeyType::Rsa2048,
            false,
            vec![S::RSA_PKCS1_SHA384],
        ),
        (
            CertVersion::V3,
            KeyType::Rsa2048,
            false,
            vec![S::RSA_PKCS1_SHA512],
        ),
        (
            CertVersion::V1,
            KeyType::Rsa2048,
            false,
            vec![S::RSA_PSS_SHA256],
        ),
    ];
    let fx = fixture();
    let server = fx.start(|_| {});
    for (version, key, tls13, schemes) in cases {
        let label = format!("{version:?} {key:?} tls13={tls13} {schemes:?}");
        let opts = EnrollOptions {
            cert_version: version,
            key,
            ..EnrollOptions::default()
        };
        let p12 = enroll(fx.dir.path(), &format!("client-{version:?}-{key:?}"), &opts).unwrap();
        let id = load_identity(&p12, "");
        let client_opts = ClientOptions {
            tls13_only: Some(tls13),
            schemes,
            ..ClientOptions::default()
        };
        let (mut client, max) = Client::session_with(server.addr(), &id, &client_opts)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(max, 524_288, "{label}");
        let negotiated = client.stream.conn.protocol_version().unwrap();
        let want = if tls13 {
            rustls::ProtocolVersion::TLSv1_3
        } else {
            rustls::ProtocolVersion::TLSv1_2
        };
        assert_eq!(negotiated, want, "{label}");
        client.ok_block("SetSource,QualysGuard\n", 1);
        client.close();
    }
    let stats = server.stats();
    assert_eq!(stats.rejected_handshakes, 0);
    assert_eq!(stats.sessions, 12);
}

#[test]
fn v1_certificate_really_is_v1() {
    let fx = fixture_with(&EnrollOptions {
        cert_version: CertVersion::V1,
        ..EnrollOptions::default()
    });
    let (_, cert) = x509_parser::parse_x509_certificate(&fx.id.chain[0]).unwrap();
    assert_eq!(cert.version(), x509_parser::x509::X509Version::V1);
    assert!(cert.extensions().is_empty());
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        common::CLIENT
    );
    // rustls's stock API refuses it, which is why the test client builds its CertifiedKey.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let refused = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(fx.id.chain.clone(), fx.id.key.clone_key());
    assert!(
        refused.is_err(),
        "rustls accepted a v1 certificate through with_client_auth_cert"
    );
}

/// The client's handshake or first exchange fails.
fn refused(
    server: &qualys_connector_sim::fmc::Server,
    id: &common::Identity,
    opts: &ClientOptions,
) -> String {
    match Client::session_with(server.addr(), id, opts) {
        Ok(_) => panic!("the connection should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn client_certificate_of_another_directory_is_refused() {
    let fx = fixture();
    let other = fixture();
    let server = fx.start(|_| {});
    for tls13 in [true, false] {
        let opts = ClientOptions {
            tls13_only: Some(tls13),
            // Trust this server's CA, present the other CA's client certificate.
            trust: Some(fx.id.ca.clone()),
            ..ClientOptions::default()
        };
        let err = refused(&server, &other.id, &opts);
        assert!(
            err.contains("UnknownCA") || err.contains("unknown") || err.contains("Unknown"),
            "tls13={tls13}: {err}"
        );
    }
    common::eventually("rejected handshakes", || {
        server.stats().rejected_handshakes == 2
    });
    assert_eq!(server.stats().sessions, 0);
}

#[test]
fn connector_trusting_another_ca_refuses_this_server() {
    let fx = fixture();
    let other = fixture();
    let server = fx.start(|_| {});
    let opts = ClientOptions {
        trust: Some(other.id.ca.clone()),
        ..ClientOptions::default()
    };
    let err = refused(&server, &fx.id, &opts);
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );
}

#[test]
fn expired_client_certificate_is_refused() {
    for version in [CertVersion::V3, CertVersion::V1] {
        let fx = fixture_with(&EnrollOptions {
            valid_days: -2,
            cert_version: version,
            ..EnrollOptions::default()
        });
        let server = fx.start(|_| {});
        for tls13 in [true, false] {
            let opts = ClientOptions {
                tls13_only: Some(tls13),
                ..ClientOptions::default()
            };
            let err = refused(&server, &fx.id, &opts);
            assert!(
                err.contains("Expired") || err.contains("expired"),
                "{version:?} {tls13}: {err}"
            );
        }
        common::eventually("rejected handshakes", || {
            server.stats().rejected_handshakes == 2
        });
    }
}

#[test]
fn missing_client_certificate_is_refused() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let opts = ClientOptions {
        no_client_cert: true,
        ..ClientOptions::default()
    };
    let err = refused(&server, &fx.id, &opts);
    assert!(
        err.contains("CertificateRequired") || err.contains("certificate"),
        "{err}"
    );
    common::eventually("rejected handshakes", || {
        server.stats().rejected_handshakes == 1
    });
}

#[test]
fn ca_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let a = enroll(dir.path(), "192.0.2.1", &EnrollOptions::default()).unwrap();
    let ca_pem = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let server_pem = std::fs::read(dir.path().join("server.pem")).unwrap();
    let b = enroll(dir.path(), "192.0.2.2", &EnrollOptions::default()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_pem);
    assert_eq!(
        std::fs::read(dir.path().join("server.pem")).unwrap(),
        server_pem
    );
    assert_eq!(a, dir.path().join("192.0.2.1.pkcs12"));
    let ia = load_identity(&a, "");
    let ib = load_identity(&b, "");
    assert_eq!(ia.ca, ib.ca);
    assert_ne!(ia.chain[0], ib.chain[0]);
    // Both clients may connect to a server of that directory.
    let server = qualys_connector_sim::fmc::Server::start(
        qualys_connector_sim::fmc::ServerOptions::new(dir.path()),
    )
    .unwrap();
    for id in [&ia, &ib] {
        let (client, _) = Client::session(server.addr(), id).unwrap();
        client.close();
    }
    // Names that cannot be file names are refused.
    for bad in ["", "..", "a/b", "a\\b"] {
        assert!(
            enroll(dir.path(), bad, &EnrollOptions::default()).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn handshake_signed_with_another_key_is_refused() {
    // Our CA's certificate for one client, the private key of another: the
    // CertificateVerify signature cannot verify (TLS 1.2 and 1.3 paths of the verifier).
    // RSA clients share one test key, so the other client has a P-256 key of its own.
    let fx = fixture();
    let ecdsa = EnrollOptions {
        key: KeyType::EcdsaP256,
        ..EnrollOptions::default()
    };
    let second = enroll(fx.dir.path(), "192.0.2.99", &ecdsa).unwrap();
    let second = load_identity(&second, "");
    let server = fx.start(|_| {});
    let forged = common::Identity {
        chain: fx.id.chain.clone(),
        key: second.key.clone_key(),
        ca: fx.id.ca.clone(),
    };
    for tls13 in [true, false] {
        let opts = ClientOptions {
            tls13_only: Some(tls13),
            ..ClientOptions::default()
        };
        let err = refused(&server, &forged, &opts);
        assert!(
            err.contains("DecryptError") || err.contains("BadSignature") || err.contains("alert"),
            "{err}"
        );
    }
    common::eventually("rejected handshakes", || {
        server.stats().rejected_handshakes == 2
    });
}
