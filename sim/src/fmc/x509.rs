//! X.509 certificates assembled by hand (RFC 5280 §4.1), shaped like the FMC's
//! (host-input.md §1, and the real file in `../shared/fixtures/fmc/`): the CA's subject
//! is one multi-valued RDN `title=InternalCA + OU=Intrusion Management System +
//! CN=<uuid>` followed by `O=Cisco Systems, Inc`, which rcgen cannot write (its names are
//! flat lists, so a certificate it signs would name a different issuer); v1 certificates
//! (no extensions) are written here too.

use std::io;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData, SigningKey};
use time::OffsetDateTime;

use super::der;

// Attribute types (RFC 4519, X.520).
const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_O: &[u64] = &[2, 5, 4, 10];
const OID_OU: &[u64] = &[2, 5, 4, 11];
const OID_TITLE: &[u64] = &[2, 5, 4, 12];
const OID_GENERATION_QUALIFIER: &[u64] = &[2, 5, 4, 44];

// Extensions (RFC 5280 §4.2.1) and key purposes (§4.2.1.12).
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
pub(crate) const OID_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
pub(crate) const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

// Signature algorithms: sha256WithRSAEncryption (RFC 4055 §5, NULL parameters) and
// ecdsa-with-SHA256 (RFC 5758 §3.2, parameters absent).
const OID_SHA256_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

/// The organisation and unit of every FMC certificate (the real file's subject and issuer).
pub(crate) const FMC_ORGANIZATION: &str = "Cisco Systems, Inc";
pub(crate) const FMC_UNIT: &str = "Intrusion Management System";

/// The FMC internal CA's name: `{title=InternalCA, OU=…, CN=<uuid>}, O=Cisco Systems, Inc`.
pub(crate) fn fmc_ca_name(uuid: &str) -> Vec<u8> {
    name(&[
        &[
            (OID_TITLE, "InternalCA"),
            (OID_OU, FMC_UNIT),
            (OID_CN, uuid),
        ],
        &[(OID_O, FMC_ORGANIZATION)],
    ])
}

/// A Host Input client's name, in the real file's order: `CN=<addr>, OU=…, O=…,
/// title=hostinputd, generationQualifier=client_<domain uuid>`.
pub(crate) fn fmc_client_name(addr: &str, domain_uuid: &str) -> Vec<u8> {
    let qualifier = format!("client_{domain_uuid}");
    name(&[
        &[(OID_CN, addr)],
        &[(OID_OU, FMC_UNIT)],
        &[(OID_O, FMC_ORGANIZATION)],
        &[(OID_TITLE, "hostinputd")],
        &[(OID_GENERATION_QUALIFIER, &qualifier)],
    ])
}

/// A name of one RDN per entry (`CN=<cn>` alone, or with `O=<organization>` first).
pub(crate) fn simple_name(organization: Option<&str>, cn: &str) -> Vec<u8> {
    match organization {
        Some(o) => name(&[&[(OID_O, o)], &[(OID_CN, cn)]]),
        None => name(&[&[(OID_CN, cn)]]),
    }
}

/// A Name (RFC 5280 §4.1.2.4): each inner slice is one RDN, a SET of its values (so an
/// RDN of several values is multi-valued), each value a UTF8String.
fn name(rdns: &[&[(&[u64], &str)]]) -> Vec<u8> {
    let sets: Vec<Vec<u8>> = rdns
        .iter()
        .map(|rdn| {
            let values: Vec<Vec<u8>> = rdn
                .iter()
                .map(|(oid, value)| der::sequence(&[&der::oid(oid), &der::utf8_string(value)]))
                .collect();
            der::set_of(&values.iter().map(Vec::as_slice).collect::<Vec<_>>())
        })
        .collect();
    der::sequence(&sets.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// Key usage bits of the first byte (RFC 5280 §4.2.1.3).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Usage {
    DigitalSignature = 0x80,
    KeyCertSign = 0x04,
}

/// A subjectAltName entry (RFC 5280 §4.2.1.6).
#[derive(Clone, Debug)]
pub(crate) enum AltName {
    Dns(String),
    Ip(std::net::IpAddr),
}

/// One certificate extension.
#[derive(Clone, Debug)]
pub(crate) enum Extension {
    /// basicConstraints, not critical, as the FMC writes it (`CA:FALSE` is the empty
    /// SEQUENCE because FALSE is the default).
    BasicConstraints {
        ca: bool,
    },
    SubjectAltName(Vec<AltName>),
    ExtendedKeyUsage(Vec<&'static [u64]>),
    /// keyUsage, critical.
    KeyUsage(Vec<Usage>),
}

impl Extension {
    fn encode(&self) -> Vec<u8> {
        let (oid, critical, value) = match self {
            Extension::BasicConstraints { ca: false } => {
                (OID_BASIC_CONSTRAINTS, false, der::sequence(&[]))
            }
            Extension::BasicConstraints { ca: true } => (
                OID_BASIC_CONSTRAINTS,
                false,
                der::sequence(&[&[0x01, 0x01, 0xff]]),
            ),
            Extension::SubjectAltName(names) => {
                let names: Vec<Vec<u8>> = names
                    .iter()
                    .map(|n| match n {
                        AltName::Dns(dns) => der::tlv(0x82, dns.as_bytes()),
                        AltName::Ip(std::net::IpAddr::V4(ip)) => der::tlv(0x87, &ip.octets()),
                        AltName::Ip(std::net::IpAddr::V6(ip)) => der::tlv(0x87, &ip.octets()),
                    })
                    .collect();
                let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
                (OID_SUBJECT_ALT_NAME, false, der::sequence(&refs))
            }
            Extension::ExtendedKeyUsage(purposes) => {
                let oids: Vec<Vec<u8>> = purposes.iter().map(|p| der::oid(p)).collect();
                let refs: Vec<&[u8]> = oids.iter().map(Vec::as_slice).collect();
                (OID_EXT_KEY_USAGE, false, der::sequence(&refs))
            }
            Extension::KeyUsage(usages) => {
                let bits = usages.iter().fold(0u8, |acc, u| acc | *u as u8);
                // DER drops trailing zero bits of a named bit list (X.690 §11.2.2).
                let unused = if bits == 0 {
                    0
                } else {
                    bits.trailing_zeros() as u8
                };
                let value = der::tlv(0x03, &[unused, bits]);
                (OID_KEY_USAGE, true, value)
            }
        };
        let value = der::octet_string(&value);
        if critical {
            der::sequence(&[&der::oid(oid), &[0x01, 0x01, 0xff], &value])
        } else {
            der::sequence(&[&der::oid(oid), &value])
        }
    }
}

/// What a certificate says; `extensions: None` makes an X.509 v1 certificate (no
/// version field, RFC 5280 §4.1.2.1).
#[derive(Clone, Debug)]
pub(crate) struct Template {
    pub(crate) serial: Vec<u8>,
    pub(crate) issuer: Vec<u8>,
    pub(crate) subject: Vec<u8>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) extensions: Option<Vec<Extension>>,
}

impl Template {
    /// The certificate (DER) for `subject_key`'s public key, signed by `signer`.
    pub(crate) fn sign(&self, subject_key: &KeyPair, signer: &KeyPair) -> io::Result<Vec<u8>> {
        let sig_alg = if signer.algorithm() == &PKCS_RSA_SHA256 {
            der::sequence(&[&der::oid(OID_SHA256_RSA), &der::null()])
        } else if signer.algorithm() == &PKCS_ECDSA_P256_SHA256 {
            der::sequence(&[&der::oid(OID_ECDSA_SHA256)])
        } else {
            return Err(io::Error::other(
                "the signing key is neither RSA nor ECDSA P-256",
            ));
        };
        let mut parts: Vec<Vec<u8>> = Vec::new();
        if self.extensions.is_some() {
            parts.push(der::explicit(0, &der::uint(2)));
        }
        parts.push(der::unsigned_integer(&self.serial));
        parts.push(sig_alg.clone());
        parts.push(self.issuer.clone());
        parts.push(der::sequence(&[
            &der::time(self.not_before),
            &der::time(self.not_after),
        ]));
        parts.push(self.subject.clone());
        parts.push(subject_key.subject_public_key_info());
        if let Some(extensions) = &self.extensions {
            let encoded: Vec<Vec<u8>> = extensions.iter().map(Extension::encode).collect();
            let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            parts.push(der::explicit(3, &der::sequence(&refs)));
        }
        let tbs = der::sequence(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let signature = signer
            .sign(&tbs)
            .map_err(|e| io::Error::other(format!("signing failed: {e}")))?;
        Ok(der::sequence(&[
            &tbs,
            &sig_alg,
            &der::bit_string(&signature),
        ]))
    }
}

/// A UUID in its text form from 16 bytes, marked version 4 (RFC 9562 §5.4).
pub(crate) fn uuid(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn names_read_back_in_the_fmc_layout() {
        // Table: (name DER, how x509-parser prints it: in DER order, as the real file's
        // names read with `openssl x509 -noout -subject -issuer`).
        let cases = [
            (
                fmc_ca_name("96fde978-65a6-11e7-a735-d8cb18f0357e"),
                "title=InternalCA + OU=Intrusion Management System + \
                 CN=96fde978-65a6-11e7-a735-d8cb18f0357e, O=Cisco Systems, Inc",
            ),
            (
                fmc_client_name("10.124.16.222", "e276abec-e0f2-11e3-8169-6d9ed49b625f"),
                "CN=10.124.16.222, OU=Intrusion Management System, O=Cisco Systems, Inc, \
                 title=hostinputd, generationQualifier=client_e276abec-e0f2-11e3-8169-6d9ed49b625f",
            ),
            (simple_name(Some("fmc-sim"), "x"), "O=fmc-sim, CN=x"),
        ];
        for (encoded, want) in cases {
            let (rest, parsed) = x509_parser::x509::X509Name::from_der(&encoded).unwrap();
            assert!(rest.is_empty());
            assert_eq!(parsed.to_string(), want);
        }
    }

    #[test]
    fn extensions_encode_as_the_fmc_writes_them() {
        // Table: (extension, DER), the first two as in the real file's certificates.
        let cases: Vec<(Extension, Vec<u8>)> = vec![
            (
                Extension::BasicConstraints { ca: false },
                vec![
                    0x30, 0x09, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x02, 0x30, 0x00,
                ],
            ),
            (
                Extension::BasicConstraints { ca: true },
                vec![
                    0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x05, 0x30, 0x03, 0x01, 0x01,
                    0xff,
                ],
            ),
            (
                Extension::KeyUsage(vec![Usage::DigitalSignature]),
                vec![
                    0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03,
                    0x02, 0x07, 0x80,
                ],
            ),
            (
                Extension::KeyUsage(vec![Usage::KeyCertSign]),
                vec![
                    0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03,
                    0x02, 0x02, 0x04,
                ],
            ),
        ];
        for (extension, want) in cases {
            assert_eq!(extension.encode(), want, "{extension:?}");
        }
    }

    #[test]
    fn a_signed_v3_certificate_parses_and_verifies() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let now = OffsetDateTime::now_utc();
        let ca_name = fmc_ca_name("00000000-0000-4000-8000-000000000000");
        let template = Template {
            serial: vec![0],
            issuer: ca_name.clone(),
            subject: ca_name,
            not_before: now,
            not_after: now + time::Duration::days(1),
            extensions: Some(vec![Extension::BasicConstraints { ca: true }]),
        };
        let cert = template.sign(&key, &key).unwrap();
        let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
        assert_eq!(parsed.version().0, 2);
        assert_eq!(parsed.raw_serial(), &[0]);
        assert!(parsed.is_ca());
        assert!(parsed.verify_signature(None).is_ok());
        assert_eq!(parsed.subject().as_raw(), parsed.issuer().as_raw());
    }

    #[test]
    fn uuids_are_version_4() {
        let text = uuid([0xff; 16]);
        assert_eq!(text, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
