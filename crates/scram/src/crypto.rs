//! SCRAM-SHA-256's primitives (RFC 5802 §2.2 with SHA-256) and the ClientKey, the one secret the
//! gateway holds for a session.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The length of every SCRAM-SHA-256 key, signature and proof, in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte SCRAM key or signature.
pub(crate) type Key = [u8; KEY_LEN];

/// HMAC-SHA-256 of `parts`, concatenated, under `key`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// `a XOR b`.
pub(crate) fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Constant-time equality of two keys: a proof or a signature is never compared byte by byte
/// with early exit.
pub(crate) fn keys_equal(a: &Key, b: &Key) -> bool {
    a.ct_eq(b).into()
}

/// `Hi(password, salt, i)` of RFC 5802: PBKDF2 with HMAC-SHA-256, one block.
pub(crate) fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()]);
    let mut result = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u]);
        for (r, x) in result.iter_mut().zip(&u) {
            *r ^= x;
        }
    }
    u.zeroize();
    result
}

/// A role's SCRAM ClientKey (`HMAC(SaltedPassword, "Client Key")`): what the gateway recovers
/// from the client's proof and presents upstream. It is as good as the password for logging in
/// to PostgreSQL as that role, so it is zeroized on drop and never printed.
#[derive(Clone)]
pub struct ClientKey([u8; KEY_LEN]);

impl Drop for ClientKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for ClientKey {}

impl ClientKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ClientKey {
        ClientKey(bytes)
    }

    /// The ClientKey of `password` (already SASLprep-normalized; ASCII passwords are their own
    /// normalization) with `salt` and `iterations`, as a client computes it. The gateway never
    /// has the password; tests and tools that start from one use this.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ClientKey {
        let mut salted = salted_password(password, salt, iterations);
        let key = hmac(&salted, &[b"Client Key"]);
        salted.zeroize();
        ClientKey(key)
    }

    /// The raw key bytes, for the exchange's arithmetic.
    pub(crate) fn bytes(&self) -> &Key {
        &self.0
    }

    /// `StoredKey = H(ClientKey)`.
    pub(crate) fn stored_key(&self) -> Key {
        sha256(&self.0)
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &ClientKey) -> bool {
        keys_equal(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hi_with_one_iteration_is_one_hmac() {
        let salt = b"salt";
        let expected = hmac(b"pw", &[salt, &[0, 0, 0, 1]]);
        assert_eq!(salted_password(b"pw", salt, 1), expected);
        assert_ne!(salted_password(b"pw", salt, 2), expected);
    }

    #[test]
    fn client_key_debug_is_redacted() {
        let key = ClientKey::from_bytes([0xAB; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn constant_time_equality_tells_keys_apart() {
        let a = ClientKey::from_bytes([1; KEY_LEN]);
        let mut other = [1; KEY_LEN];
        other[31] = 2;
        assert!(a.ct_eq(&a.clone()));
        assert!(!a.ct_eq(&ClientKey::from_bytes(other)));
    }
}
