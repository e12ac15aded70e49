//! A role's stored SCRAM secret, as PostgreSQL keeps it in `pg_authid.rolpassword`, and the mock
//! one an unknown role gets.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroize as _;

use crate::crypto::{ClientKey, KEY_LEN, Key, hmac, salted_password};

/// The most PBKDF2 iterations curfew accepts in a verifier or a server-first message.
/// PostgreSQL's default is 4096; a count far above this is a denial of service on whoever must
/// compute it (the client), so it is refused as malformed.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// PostgreSQL's salt length for new secrets (`SCRAM_DEFAULT_SALT_LEN`): the mock salt has it, so
/// it looks like a real one.
pub const MOCK_SALT_LEN: usize = 16;

/// A stored secret that is not a SCRAM-SHA-256 verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherSecret {
    /// An `md5…` hash: the role must get a new password with
    /// `password_encryption = scram-sha-256`.
    Md5,
    /// A secret PostgreSQL would take as a plaintext password (stored before PostgreSQL 10, or
    /// something unrecognized).
    Plaintext,
}

/// Why a stored secret cannot be used. The secret itself is never part of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The role has a secret, but not a SCRAM one.
    #[error(
        "the role's password is stored as {}, not SCRAM-SHA-256: set password_encryption = scram-sha-256 and set the password again",
        match .0 { OtherSecret::Md5 => "an MD5 hash", OtherSecret::Plaintext => "plaintext" }
    )]
    NotScram(OtherSecret),
    /// It looks like a SCRAM verifier but one of its parts is wrong.
    #[error("malformed SCRAM-SHA-256 verifier: {0}")]
    Malformed(&'static str),
    /// The iteration count is 0 or above [`MAX_ITERATIONS`].
    #[error("SCRAM iteration count {0} is outside 1..={MAX_ITERATIONS}")]
    Iterations(u64),
}

/// A role's SCRAM-SHA-256 verifier: salt, iteration count, StoredKey and ServerKey. Equality
/// (not constant-time) exists for tests only (`test-util`).
#[derive(Clone)]
#[cfg_attr(any(test, feature = "test-util"), derive(PartialEq, Eq))]
pub struct Verifier {
    pub(crate) iterations: u32,
    pub(crate) salt: Vec<u8>,
    pub(crate) stored_key: Key,
    pub(crate) server_key: Key,
    /// A mock verifier for a role that does not exist (or may not log in): every exchange with
    /// it fails, as PostgreSQL's `doomed` exchanges do.
    pub(crate) mock: bool,
}

impl Verifier {
    /// Parses PostgreSQL's stored form
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
    ///
    /// # Errors
    /// [`VerifierError::NotScram`] for an MD5 or plaintext secret (told apart as PostgreSQL's
    /// `get_password_type` does), [`VerifierError::Malformed`] or
    /// [`VerifierError::Iterations`] for a broken SCRAM one.
    pub fn parse(stored: &str) -> Result<Verifier, VerifierError> {
        let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
            return Err(VerifierError::NotScram(other_kind(stored)));
        };
        let (params, keys) = rest.split_once('$').ok_or(VerifierError::Malformed(
            "no '$' between parameters and keys",
        ))?;
        let (iterations, salt) = params.split_once(':').ok_or(VerifierError::Malformed(
            "no ':' between iterations and salt",
        ))?;
        let (stored_key, server_key) = keys.split_once(':').ok_or(VerifierError::Malformed(
            "no ':' between StoredKey and ServerKey",
        ))?;
        let iterations = parse_iterations(iterations)?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| VerifierError::Malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(VerifierError::Malformed("salt is empty"));
        }
        Ok(Verifier {
            iterations,
            salt,
            stored_key: decode_key(stored_key, "StoredKey is not 32 bytes of base64")?,
            server_key: decode_key(server_key, "ServerKey is not 32 bytes of base64")?,
            mock: false,
        })
    }

    /// The verifier of `password` (SASLprep-normalized) with `salt` and `iterations`, as
    /// `CREATE ROLE … PASSWORD` computes it. For tests and tools; the gateway reads verifiers.
    ///
    /// # Errors
    /// [`VerifierError::Iterations`] out of range, [`VerifierError::Malformed`] for an empty salt.
    pub fn from_password(
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Verifier, VerifierError> {
        check_iterations(u64::from(iterations))?;
        if salt.is_empty() {
            return Err(VerifierError::Malformed("salt is empty"));
        }
        let salted = zeroize::Zeroizing::new(salted_password(password, salt, iterations));
        let client_key = ClientKey::derive(password, salt, iterations);
        Ok(Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: client_key.stored_key(),
            server_key: hmac(salted.as_ref(), &[b"Server Key"]),
            mock: false,
        })
    }

    /// A deterministic stand-in for a role the gateway may not authenticate (unknown, NOLOGIN,
    /// expired, MD5 only): its salt is `HMAC(secret_key, role)` cut to PostgreSQL's salt length,
    /// so the server-first message looks like a real role's and is the same on every attempt (a
    /// changing salt would tell the role apart), like PostgreSQL's `scram_mock_salt`. No proof
    /// can succeed against it. `secret_key` is the gateway's own random secret, stable for its
    /// lifetime.
    ///
    /// # Errors
    /// [`VerifierError::Iterations`] out of range.
    pub fn mock(role: &str, secret_key: &[u8], iterations: u32) -> Result<Verifier, VerifierError> {
        check_iterations(u64::from(iterations))?;
        let salt = hmac(secret_key, &[b"curfew scram mock salt\0", role.as_bytes()]);
        Ok(Verifier {
            iterations,
            salt: salt[..MOCK_SALT_LEN].to_vec(),
            stored_key: hmac(
                secret_key,
                &[b"curfew scram mock stored key\0", role.as_bytes()],
            ),
            server_key: hmac(
                secret_key,
                &[b"curfew scram mock server key\0", role.as_bytes()],
            ),
            mock: true,
        })
    }

    /// A stand-in for a role the gateway may not authenticate, with the salt (base64) and
    /// iteration count the server's auth function computed for it: the salt from a key kept in
    /// the database and the role's name, so it is the same across restarts and for every
    /// gateway, and the count the server gives new verifiers. No proof can succeed against it.
    ///
    /// # Errors
    /// [`VerifierError::Malformed`] for a salt that is not 1 to 64 bytes of base64,
    /// [`VerifierError::Iterations`] out of range.
    pub fn mock_with_salt(salt_base64: &str, iterations: u32) -> Result<Verifier, VerifierError> {
        check_iterations(u64::from(iterations))?;
        if salt_base64.is_empty() || salt_base64.len() > 88 {
            return Err(VerifierError::Malformed("mock salt is not 1 to 64 bytes"));
        }
        let salt = STANDARD
            .decode(salt_base64)
            .map_err(|_| VerifierError::Malformed("mock salt is not base64"))?;
        Ok(Verifier {
            iterations,
            stored_key: hmac(&salt, &[b"curfew scram mock stored key"]),
            server_key: hmac(&salt, &[b"curfew scram mock server key"]),
            salt,
            mock: true,
        })
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt (not secret: every client that asks sees it).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Whether this is a mock verifier that nothing can match.
    pub fn is_mock(&self) -> bool {
        self.mock
    }

    /// PostgreSQL's stored form, for tests comparing with `pg_authid` (`test-util` only: the
    /// gateway never writes a verifier out).
    #[cfg(any(test, feature = "test-util"))]
    pub fn to_stored_form(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        // Whoever holds a verifier can attack the password offline: no copy outlives its use.
        self.stored_key.zeroize();
        self.server_key.zeroize();
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// MD5 or plaintext, the way PostgreSQL's `get_password_type` decides.
fn other_kind(stored: &str) -> OtherSecret {
    match stored.strip_prefix("md5") {
        Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            OtherSecret::Md5
        }
        _ => OtherSecret::Plaintext,
    }
}

/// An iteration count as decimal digits within `1..=MAX_ITERATIONS`.
pub(crate) fn parse_iterations(text: &str) -> Result<u32, VerifierError> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifierError::Malformed(
            "iteration count is not a decimal number",
        ));
    }
    let value: u64 = text
        .parse()
        .map_err(|_| VerifierError::Malformed("iteration count is not a decimal number"))?;
    check_iterations(value)
}

fn check_iterations(value: u64) -> Result<u32, VerifierError> {
    match u32::try_from(value) {
        Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => Ok(n),
        _ => Err(VerifierError::Iterations(value)),
    }
}

fn decode_key(text: &str, why: &'static str) -> Result<Key, VerifierError> {
    // A key is 44 base64 characters; anything longer is refused before decoding.
    if text.len() != 44 {
        return Err(VerifierError::Malformed(why));
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| VerifierError::Malformed(why))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| VerifierError::Malformed(why))
}
