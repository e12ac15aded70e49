//! RFC 5929's `tls-server-end-point` channel-binding data: the hash of the server's certificate,
//! computed as PostgreSQL's `be_tls_get_certificate_hash` does.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// The `tls-server-end-point` hash of a certificate (28 to 64 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateHash(Vec<u8>);

impl CertificateHash {
    /// The hash bytes, as they go into the channel-binding data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Wraps a hash computed elsewhere (tests, or a TLS library that computes it).
    pub fn from_bytes(bytes: Vec<u8>) -> CertificateHash {
        CertificateHash(bytes)
    }
}

impl std::fmt::Debug for CertificateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateHash({} bytes)", self.0.len())
    }
}

/// Why no `tls-server-end-point` hash can be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The bytes are not a DER X.509 certificate's outer structure.
    #[error("not a DER-encoded X.509 certificate: {0}")]
    Der(&'static str),
    /// The signature algorithm has no hash to use (Ed25519, Ed448, RSA-PSS, or unknown), which
    /// PostgreSQL refuses too: SCRAM-SHA-256-PLUS cannot be used with this certificate.
    #[error(
        "could not determine the certificate's signature hash algorithm (OID {0}): channel binding is impossible with it"
    )]
    UnknownAlgorithm(String),
}

/// The hashes a `tls-server-end-point` binding can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlgorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The `tls-server-end-point` hash of the DER certificate `cert_der`: the certificate hashed
/// with its signature algorithm's hash, MD5 and SHA-1 replaced by SHA-256 (RFC 5929 §4.1).
///
/// # Errors
/// [`CertificateError`] when the certificate does not parse or its signature algorithm has no
/// hash.
pub fn tls_server_end_point(cert_der: &[u8]) -> Result<CertificateHash, CertificateError> {
    let oid = signature_algorithm_oid(cert_der)?;
    let hash = hash_of_signature_algorithm(oid)
        .ok_or_else(|| CertificateError::UnknownAlgorithm(oid_text(oid)))?;
    let bytes = match hash {
        HashAlgorithm::Sha224 => Sha224::digest(cert_der).to_vec(),
        HashAlgorithm::Sha256 => Sha256::digest(cert_der).to_vec(),
        HashAlgorithm::Sha384 => Sha384::digest(cert_der).to_vec(),
        HashAlgorithm::Sha512 => Sha512::digest(cert_der).to_vec(),
    };
    Ok(CertificateHash(bytes))
}

/// The hash for a signature algorithm OID (content bytes), as OpenSSL's `OBJ_find_sigid_algs`
/// maps it, MD5/SHA-1 upgraded to SHA-256.
fn hash_of_signature_algorithm(oid: &[u8]) -> Option<HashAlgorithm> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04]; // 1.2.840.10045.4
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03]; // 1.2.840.10040.4.3
    const DSA_SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03]; // 2.16.840.1.101.3.4.3
    use HashAlgorithm::*;
    if let Some(last) = oid.strip_prefix(RSA) {
        return match last {
            [4] | [5] | [11] => Some(Sha256), // md5, sha1, sha256 WithRSAEncryption
            [12] => Some(Sha384),
            [13] => Some(Sha512),
            [14] => Some(Sha224),
            _ => None, // RSASSA-PSS (10) and others carry no fixed hash here
        };
    }
    if let Some(rest) = oid.strip_prefix(ECDSA) {
        return match rest {
            [1] | [3, 2] => Some(Sha256), // ecdsa-with-SHA1, ecdsa-with-SHA256
            [3, 1] => Some(Sha224),
            [3, 3] => Some(Sha384),
            [3, 4] => Some(Sha512),
            _ => None,
        };
    }
    if oid == DSA_SHA1 {
        return Some(Sha256);
    }
    match oid.strip_prefix(DSA_SHA2) {
        Some([1]) => Some(Sha224),
        Some([2]) => Some(Sha256),
        _ => None,
    }
}

/// The outer `signatureAlgorithm`'s OID content bytes of `Certificate ::= SEQUENCE {
/// tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }`.
fn signature_algorithm_oid(der: &[u8]) -> Result<&[u8], CertificateError> {
    let (certificate, trailing) = read_tlv(der, 0x30).map_err(CertificateError::Der)?;
    if !trailing.is_empty() {
        return Err(CertificateError::Der("bytes after the certificate"));
    }
    let (_tbs, rest) = read_tlv(certificate, 0x30).map_err(CertificateError::Der)?;
    let (algorithm, rest) = read_tlv(rest, 0x30).map_err(CertificateError::Der)?;
    let (_signature, rest) = read_tlv(rest, 0x03).map_err(CertificateError::Der)?;
    if !rest.is_empty() {
        return Err(CertificateError::Der("more than three certificate fields"));
    }
    let (oid, _parameters) = read_tlv(algorithm, 0x06).map_err(CertificateError::Der)?;
    Ok(oid)
}

/// One DER element with tag `tag`: its contents and what follows it.
fn read_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (&found, rest) = input.split_first().ok_or("truncated")?;
    if found != tag {
        return Err("unexpected tag");
    }
    let (&first, rest) = rest.split_first().ok_or("truncated length")?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("unsupported length");
        }
        let (digits, rest) = rest.split_at(count);
        let length = digits
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, rest)
    };
    if rest.len() < length {
        return Err("length beyond the input");
    }
    Ok(rest.split_at(length))
}

/// Dotted text of OID content bytes, for the error message.
fn oid_text(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value
            .saturating_mul(128)
            .saturating_add(u64::from(b & 0x7f));
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}
