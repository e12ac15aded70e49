//! Where nonces come from: the OS in production, a fixed value in tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Random bytes in a nonce, as PostgreSQL and libpq use (`SCRAM_RAW_NONCE_LEN`).
pub const RAW_NONCE_LEN: usize = 18;

/// The OS random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("could not generate a SCRAM nonce: {0}")]
pub struct NonceError(pub getrandom::Error);

/// A source of SCRAM nonces: printable ASCII without `,` (RFC 5802's `c-nonce`/`s-nonce`).
/// Injected so tests are deterministic.
pub trait NonceSource {
    /// A fresh nonce.
    ///
    /// # Errors
    /// When no randomness is available.
    fn nonce(&mut self) -> Result<String, NonceError>;
}

/// [`RAW_NONCE_LEN`] bytes from the operating system, base64: PostgreSQL's own nonce.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsNonce;

impl NonceSource for OsNonce {
    fn nonce(&mut self) -> Result<String, NonceError> {
        let mut raw = [0u8; RAW_NONCE_LEN];
        getrandom::fill(&mut raw).map_err(NonceError)?;
        Ok(STANDARD.encode(raw))
    }
}

/// The same nonce every time: for tests and test vectors only (a repeated nonce lets a
/// recorded exchange be replayed). Built only for tests (`test-util`).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone)]
pub struct FixedNonce(pub String);

#[cfg(any(test, feature = "test-util"))]
impl NonceSource for FixedNonce {
    fn nonce(&mut self) -> Result<String, NonceError> {
        Ok(self.0.clone())
    }
}

/// Whether `nonce` is a valid SCRAM nonce: non-empty printable ASCII other than `,`.
pub(crate) fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_nonces_are_valid_and_differ() {
        let a = OsNonce.nonce().unwrap_or_else(|e| panic!("{e}"));
        let b = OsNonce.nonce().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.len(), 24);
        assert!(is_valid_nonce(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn nonce_validity() {
        assert!(is_valid_nonce(
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        ));
        assert!(!is_valid_nonce(""));
        assert!(!is_valid_nonce("a,b"));
        assert!(!is_valid_nonce("a b"));
        assert!(!is_valid_nonce("é"));
    }
}
