//! PKCS#12 writer for the client files that `enroll` produces (host-input.md §1: the
//! `.pkcs12` file of *Create Client*). Written from RFC 7292 with our own DER writer, so
//! that reading it back with p12-keystore or OpenSSL is an independent cross-check.
//!
//! Layout, as OpenSSL and the FMC write it: an AuthenticatedSafe of two ContentInfos,
//! first an `encryptedData` holding the certificate bags (client certificate with
//! friendlyName + localKeyId, then the CA certificate), then a `data` holding one
//! pkcs8ShroudedKeyBag for the private key; an HMAC over the AuthenticatedSafe.

use std::io;
use std::num::NonZeroU32;

use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

use super::der;

/// How the file is protected (host-input.md §1: real FMC files use the legacy scheme).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum P12Scheme {
    /// What real FMCs write: certificate bags with pbeWithSHA1And40BitRC2-CBC, the key bag
    /// with pbeWithSHA1And3-KeyTripleDES-CBC (2048 iterations each), SHA-1 MAC with one
    /// iteration, bags with a localKeyID and no friendlyName. OpenSSL 3 needs `-legacy`.
    #[default]
    Legacy,
    /// Everything pbeWithSHA1And3-KeyTripleDES-CBC, SHA-1 MAC (OpenSSL 1.1's default).
    TripleDes,
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for both, HMAC-SHA256 MAC (OpenSSL 3's default).
    Aes,
}

/// Iteration count of the encryption KDFs (OpenSSL's default, and the FMC's).
const ITERATIONS: u32 = 2048;

/// Iteration count of the MAC key: the FMC's files use 1, OpenSSL 2048.
fn mac_iterations(scheme: P12Scheme) -> u32 {
    match scheme {
        P12Scheme::Legacy => 1,
        P12Scheme::TripleDes | P12Scheme::Aes => ITERATIONS,
    }
}

// Object identifiers (RFC 7292 Appendix D, RFC 8018, RFC 5652).
const OID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
const OID_ENCRYPTED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 6];
const OID_PBE_SHA1_3DES: &[u64] = &[1, 2, 840, 113549, 1, 12, 1, 3];
const OID_PBE_SHA1_RC2_40: &[u64] = &[1, 2, 840, 113549, 1, 12, 1, 6];
const OID_PBES2: &[u64] = &[1, 2, 840, 113549, 1, 5, 13];
const OID_PBKDF2: &[u64] = &[1, 2, 840, 113549, 1, 5, 12];
const OID_HMAC_SHA256: &[u64] = &[1, 2, 840, 113549, 2, 9];
const OID_AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const OID_SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_KEY_BAG_SHROUDED: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 2];
const OID_CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
const OID_X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
const OID_FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
const OID_LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113549, 1, 9, 21];

/// What goes into the file.
#[derive(Clone, Copy, Debug)]
pub struct Contents<'a> {
    /// The client certificate (DER).
    pub cert: &'a [u8],
    /// Its private key, PKCS#8 DER.
    pub key_pkcs8: &'a [u8],
    /// The CA certificate (DER).
    pub ca: &'a [u8],
    /// friendlyName of the client certificate and key bags, if any.
    pub friendly_name: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Rc2_40,
    TripleDes,
    Aes256,
}

/// Writes a PKCS#12 file (DER) protected by `password` ("" for none) with `scheme`.
pub fn write(contents: &Contents<'_>, password: &str, scheme: P12Scheme) -> io::Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let (cert_cipher, key_cipher) = match scheme {
        P12Scheme::Legacy => (Cipher::Rc2_40, Cipher::TripleDes),
        P12Scheme::TripleDes => (Cipher::TripleDes, Cipher::TripleDes),
        P12Scheme::Aes => (Cipher::Aes256, Cipher::Aes256),
    };

    // localKeyId = SHA-1 of the certificate, as OpenSSL does; it links key and certificate.
    let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, contents.cert);
    let key_id = attribute(OID_LOCAL_KEY_ID, &der::octet_string(local_key_id.as_ref()));
    let attributes = match contents.friendly_name {
        Some(name) => der::set_of(&[
            &attribute(OID_FRIENDLY_NAME, &der::bmp_string(name)),
            &key_id,
        ]),
        None => der::set_of(&[&key_id]),
    };

    // Certificate bags (RFC 7292 §4.2.3), encrypted as one SafeContents.
    let certs = der::sequence(&[
        &cert_bag(contents.cert, Some(&attributes)),
        &cert_bag(contents.ca, None),
    ]);
    let (alg, encrypted) = encrypt(&rng, cert_cipher, password, &certs)?;
    let encrypted_data = der::sequence(&[
        &der::uint(0),
        &der::sequence(&[
            &der::oid(OID_DATA),
            &alg,
            &der::implicit_octets(0, &encrypted),
        ]),
    ]);
    let certs_info = der::sequence(&[
        &der::oid(OID_ENCRYPTED_DATA),
        &der::explicit(0, &encrypted_data),
    ]);

    // Shrouded key bag (RFC 7292 §4.2.2): EncryptedPrivateKeyInfo, in a plain `data`.
    let (alg, encrypted) = encrypt(&rng, key_cipher, password, contents.key_pkcs8)?;
    let epki = der::sequence(&[&alg, &der::octet_string(&encrypted)]);
    let key_bag = der::sequence(&[
        &der::oid(OID_KEY_BAG_SHROUDED),
        &der::explicit(0, &epki),
        &attributes,
    ]);
    let key_info = der::sequence(&[
        &der::oid(OID_DATA),
        &der::explicit(0, &der::octet_string(&der::sequence(&[&key_bag]))),
    ]);

    let auth_safe = der::sequence(&[&certs_info, &key_info]);
    let mac_data = mac(&rng, scheme, password, &auth_safe)?;
    Ok(der::sequence(&[
        &der::uint(3),
        &der::sequence(&[
            &der::oid(OID_DATA),
            &der::explicit(0, &der::octet_string(&auth_safe)),
        ]),
        &mac_data,
    ]))
}

fn attribute(oid: &[u64], value: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::oid(oid), &der::set_of(&[value])])
}

fn cert_bag(cert: &[u8], attributes: Option<&[u8]>) -> Vec<u8> {
    let bag_value = der::sequence(&[
        &der::oid(OID_X509_CERTIFICATE),
        &der::explicit(0, &der::octet_string(cert)),
    ]);
    let bag_id = der::oid(OID_CERT_BAG);
    let wrapped = der::explicit(0, &bag_value);
    match attributes {
        Some(attrs) => der::sequence(&[&bag_id, &wrapped, attrs]),
        None => der::sequence(&[&bag_id, &wrapped]),
    }
}

fn random<const N: usize>(rng: &SystemRandom) -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    rng.fill(&mut out)
        .map_err(|_| io::Error::other("system random generator failed"))?;
    Ok(out)
}

/// Encrypts `data`; returns the DER AlgorithmIdentifier and the ciphertext.
fn encrypt(
    rng: &SystemRandom,
    cipher: Cipher,
    password: &str,
    data: &[u8],
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let bad_len = |_| io::Error::other("cipher key or IV length");
    match cipher {
        Cipher::Rc2_40 | Cipher::TripleDes => {
            // PBES1 with the PKCS#12 KDF (RFC 7292 Appendix B and C).
            let salt: [u8; 8] = random(rng)?;
            let (oid, key_len) = match cipher {
                Cipher::Rc2_40 => (OID_PBE_SHA1_RC2_40, 5),
                _ => (OID_PBE_SHA1_3DES, 24),
            };
            let key = pkcs12_kdf(Hash::Sha1, password, &salt, KdfId::Key, ITERATIONS, key_len);
            let iv = pkcs12_kdf(Hash::Sha1, password, &salt, KdfId::Iv, ITERATIONS, 8);
            let ciphertext = if cipher == Cipher::Rc2_40 {
                cbc::Encryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
                    .map_err(bad_len)?
                    .encrypt_padded_vec::<Pkcs7>(data)
            } else {
                cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                    .map_err(bad_len)?
                    .encrypt_padded_vec::<Pkcs7>(data)
            };
            let params = der::sequence(&[&der::octet_string(&salt), &der::uint(ITERATIONS.into())]);
            Ok((der::sequence(&[&der::oid(oid), &params]), ciphertext))
        }
        Cipher::Aes256 => {
            // PBES2 (RFC 8018 §6.2) with PBKDF2-HMAC-SHA256 and AES-256-CBC.
            let salt: [u8; 16] = random(rng)?;
            let iv: [u8; 16] = random(rng)?;
            let mut key = [0u8; 32];
            pbkdf2::derive(
                pbkdf2::PBKDF2_HMAC_SHA256,
                iterations(),
                &salt,
                password.as_bytes(),
                &mut key,
            );
            let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .map_err(bad_len)?
                .encrypt_padded_vec::<Pkcs7>(data);
            let kdf = der::sequence(&[
                &der::oid(OID_PBKDF2),
                &der::sequence(&[
                    &der::octet_string(&salt),
                    &der::uint(ITERATIONS.into()),
                    &der::sequence(&[&der::oid(OID_HMAC_SHA256), &der::null()]),
                ]),
            ]);
            let scheme = der::sequence(&[&der::oid(OID_AES256_CBC), &der::octet_string(&iv)]);
            let params = der::sequence(&[&kdf, &scheme]);
            Ok((der::sequence(&[&der::oid(OID_PBES2), &params]), ciphertext))
        }
    }
}

fn iterations() -> NonZeroU32 {
    NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN)
}

/// MacData (RFC 7292 §4): HMAC keyed with the PKCS#12 KDF (ID 3), SHA-1 or SHA-256.
fn mac(
    rng: &SystemRandom,
    scheme: P12Scheme,
    password: &str,
    auth_safe: &[u8],
) -> io::Result<Vec<u8>> {
    let salt: [u8; 8] = random(rng)?;
    let (hash, hmac_alg, oid) = match scheme {
        P12Scheme::Aes => (Hash::Sha256, hmac::HMAC_SHA256, OID_SHA256),
        P12Scheme::Legacy | P12Scheme::TripleDes => {
            (Hash::Sha1, hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, OID_SHA1)
        }
    };
    let key_bytes = pkcs12_kdf(
        hash,
        password,
        &salt,
        KdfId::Mac,
        mac_iterations(scheme),
        hash.output_len(),
    );
    let tag = hmac::sign(&hmac::Key::new(hmac_alg, &key_bytes), auth_safe);
    Ok(der::sequence(&[
        &der::sequence(&[
            &der::sequence(&[&der::oid(oid), &der::null()]),
            &der::octet_string(tag.as_ref()),
        ]),
        &der::octet_string(&salt),
        &der::uint(mac_iterations(scheme).into()),
    ]))
}

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    fn output_len(self) -> usize {
        self.algorithm().output_len()
    }
}

#[derive(Clone, Copy, Debug)]
enum KdfId {
    Key = 1,
    Iv = 2,
    Mac = 3,
}

/// The PKCS#12 key derivation function (RFC 7292 Appendix B.2). The password is the
/// BMPString (UTF-16BE) of `password` with a two-byte NUL terminator, so "" is `00 00`.
fn pkcs12_kdf(
    hash: Hash,
    password: &str,
    salt: &[u8],
    id: KdfId,
    iterations: u32,
    len: usize,
) -> Vec<u8> {
    let alg = hash.algorithm();
    let u = alg.output_len();
    let v = alg.block_len();
    let mut pass: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    pass.extend_from_slice(&[0, 0]);

    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let n = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(n).collect()
    };
    let d = vec![id as u8; v];
    let mut i_block = fill(salt);
    i_block.extend(fill(&pass));

    let mut out = Vec::with_capacity(len + u);
    while out.len() < len {
        let mut a = {
            let mut ctx = digest::Context::new(alg);
            ctx.update(&d);
            ctx.update(&i_block);
            ctx.finish().as_ref().to_vec()
        };
        for _ in 1..iterations {
            a = digest::digest(alg, &a).as_ref().to_vec();
        }
        out.extend_from_slice(&a);
        if out.len() >= len {
            break;
        }
        // I_j = (I_j + B + 1) mod 2^(8v) for each v-byte block of I.
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for chunk in i_block.chunks_mut(v) {
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let sum = u16::from(chunk[k]) + u16::from(b[k]) + carry;
                chunk[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn kdf_matches_known_vectors() {
        // Vectors from the PKCS#12 test suites of OpenSSL and BouncyCastle
        // ("smeg" and "queeg", salt 0a58cf64530d823f / 1682c0fc5b3f7ec5).
        let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
        let key = pkcs12_kdf(Hash::Sha1, "smeg", &salt, KdfId::Key, 1, 24);
        assert_eq!(
            hex(&key),
            "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3"
        );
        let iv = pkcs12_kdf(Hash::Sha1, "smeg", &salt, KdfId::Iv, 1, 8);
        assert_eq!(hex(&iv), "79993dfe048d3b76");
        let salt = [0x16, 0x82, 0xc0, 0xfc, 0x5b, 0x3f, 0x7e, 0xc5];
        let key = pkcs12_kdf(Hash::Sha1, "queeg", &salt, KdfId::Key, 1000, 24);
        assert_eq!(
            hex(&key),
            "483dd6e919d7de2e8e648ba8f862f3fbfbdc2bcb2c02957f"
        );
    }
}
