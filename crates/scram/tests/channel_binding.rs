//! `tls-server-end-point` hashes of certificates made by rcgen, and of hand-built DER for the
//! algorithms rcgen cannot sign with.
#![allow(clippy::unwrap_used)]

use curfew_scram::{CertificateError, tls_server_end_point};
use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A self-signed certificate for `localhost` with `key`, DER.
fn self_signed(key: &KeyPair) -> Vec<u8> {
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.self_signed(key).unwrap().der().to_vec()
}

fn generated(algorithm: &'static SignatureAlgorithm) -> Vec<u8> {
    self_signed(&KeyPair::generate_for(algorithm).unwrap())
}

/// A 2048-bit RSA key made once with `openssl genpkey` (ring signs with RSA but cannot make
/// keys).
fn rsa(algorithm: &'static SignatureAlgorithm) -> Vec<u8> {
    let pem = include_str!("data/rsa2048.key.pem");
    self_signed(&KeyPair::from_pem_and_sign_algo(pem, algorithm).unwrap())
}

#[test]
fn ecdsa_p256_sha256_hashes_with_sha256() {
    let der = generated(&rcgen::PKCS_ECDSA_P256_SHA256);
    let hash = tls_server_end_point(&der).unwrap();
    assert_eq!(hash.as_bytes(), Sha256::digest(&der).as_slice());
}

#[test]
fn ecdsa_p384_sha384_keeps_sha384() {
    let der = generated(&rcgen::PKCS_ECDSA_P384_SHA384);
    let hash = tls_server_end_point(&der).unwrap();
    assert_eq!(hash.as_bytes(), Sha384::digest(&der).as_slice());
}

#[test]
fn rsa_keeps_the_signature_hash() {
    let der = rsa(&rcgen::PKCS_RSA_SHA256);
    assert_eq!(
        tls_server_end_point(&der).unwrap().as_bytes(),
        Sha256::digest(&der).as_slice()
    );
    let der = rsa(&rcgen::PKCS_RSA_SHA512);
    assert_eq!(
        tls_server_end_point(&der).unwrap().as_bytes(),
        Sha512::digest(&der).as_slice()
    );
}

#[test]
fn ed25519_has_no_hash_as_in_postgresql() {
    let der = generated(&rcgen::PKCS_ED25519);
    let err = tls_server_end_point(&der).unwrap_err();
    assert_eq!(
        err,
        CertificateError::UnknownAlgorithm("1.3.101.112".into())
    );
}

/// A DER "certificate" with an empty TBS, signature algorithm `oid` (content bytes), and an
/// empty signature: enough for the outer structure the hash reads.
fn with_algorithm(oid: &[u8]) -> Vec<u8> {
    let mut algorithm = vec![0x06, u8::try_from(oid.len()).unwrap()];
    algorithm.extend(oid);
    algorithm.extend([0x05, 0x00]);
    let mut body = vec![0x30, 0x00, 0x30, u8::try_from(algorithm.len()).unwrap()];
    body.extend(algorithm);
    body.extend([0x03, 0x01, 0x00]);
    let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
    der.extend(body);
    der
}

#[test]
fn md5_and_sha1_signatures_hash_with_sha256() {
    let rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    let ecdsa_sha1 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    for oid in [
        [&rsa[..], &[4]].concat(),
        [&rsa[..], &[5]].concat(),
        ecdsa_sha1.to_vec(),
    ] {
        let der = with_algorithm(&oid);
        let hash = tls_server_end_point(&der).unwrap();
        assert_eq!(hash.as_bytes(), Sha256::digest(&der).as_slice(), "{oid:x?}");
    }
    let sha384 = with_algorithm(&[&rsa[..], &[12]].concat());
    assert_eq!(tls_server_end_point(&sha384).unwrap().as_bytes().len(), 48);
    // RSASSA-PSS names its hash in parameters, which PostgreSQL 15 cannot read either.
    let pss = with_algorithm(&[&rsa[..], &[10]].concat());
    assert_eq!(
        tls_server_end_point(&pss).unwrap_err(),
        CertificateError::UnknownAlgorithm("1.2.840.113549.1.1.10".into())
    );
}

#[test]
fn broken_der_is_an_error_not_a_panic() {
    let good = generated(&rcgen::PKCS_ECDSA_P256_SHA256);
    for len in 0..good.len() {
        assert!(
            tls_server_end_point(&good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(tls_server_end_point(&trailing).is_err());
    assert!(tls_server_end_point(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(tls_server_end_point(b"-----BEGIN CERTIFICATE-----").is_err());
}
