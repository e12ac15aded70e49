//! Where role verifiers come from: an injected source, so the gateway itself never reads
//! `pg_authid`. The real source calls the auth function `curfew init` installs; a test may use
//! another real read.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::registry::SessionRegistry;

/// A role's stored secret exactly as PostgreSQL keeps it (`SCRAM-SHA-256$…`, or an MD5 hash a
/// role may still have). A secret: it is never shown, in Debug or anywhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret(String);

impl StoredSecret {
    /// Wraps the stored text.
    pub fn new(stored: String) -> StoredSecret {
        StoredSecret(stored)
    }

    /// The stored text, for the SCRAM verifier's parser only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredSecret(<redacted>)")
    }
}

/// What a source knows of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSecret {
    /// The role is served; its stored secret (SCRAM, or whatever the server keeps).
    Stored(StoredSecret),
    /// The role is served but its secret is not SCRAM (`md5`, `password`, `none`): it fails
    /// like a wrong password, and the gateway's log names the fix.
    NotScram {
        /// The kind of secret, as the auth function names it.
        kind: String,
    },
    /// Not served (unknown, NOLOGIN, expired, not among the served roles).
    NotServed,
}

/// What a stand-in verifier takes for a role without a usable SCRAM one: a salt derived from a
/// key kept in the database and the role's name (the same across restarts and for every
/// gateway, as a real role's is), and the iteration count the server gives new verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSalt {
    /// The salt, base64 as the auth function returns it.
    pub salt_base64: String,
    /// The server's `scram_iterations` (4096 before PostgreSQL 16).
    pub iterations: u32,
}

/// A source's answer for a role: its secret, and the mock salt every answer carries (so the
/// same query and path run whoever logs in). The locks and memberships come with the secret
/// (one round trip) but are acted on only once the client has proved its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLookup {
    /// What the source knows of the role.
    pub secret: RoleSecret,
    /// The stand-in's salt and count, used unless the secret is a SCRAM verifier.
    pub mock: MockSalt,
    /// The login locks in force on the role in curfew's ledger (none for a role not served).
    pub locks: Vec<LedgerLock>,
    /// Every role it is a member of, directly or indirectly (empty for a role not served).
    pub member_of: Vec<String>,
}

/// Which kind of login lock the ledger records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// `curfew lock`: an incident lock.
    Incident,
    /// A window lock the agent recorded for a `lock_logins` rule.
    Window,
}

/// A login lock in force on a role, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLock {
    /// Incident or window.
    pub kind: LockKind,
    /// The rule a window lock is for.
    pub rule: Option<String>,
    /// The reason recorded.
    pub reason: String,
    /// When it expires (None: until released).
    pub until: Option<jiff::Timestamp>,
}

/// Why a source could not answer (the role's existence is not the question: a role it does
/// not serve is [`RoleSecret::NotServed`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch the role's verifier: {reason}")]
pub struct VerifierSourceError {
    /// The database's SQLSTATE, when it refused.
    pub code: Option<String>,
    /// What went wrong (never a secret).
    pub reason: String,
}

/// The future a [`VerifierSource`] returns.
pub type VerifierFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RoleLookup, VerifierSourceError>> + Send + 'a>>;

/// Fetches a role's stored secret. A role the gateway does not serve, or whose secret is not
/// SCRAM, fails exactly like a wrong password.
pub trait VerifierSource: Send + Sync + 'static {
    /// The stored secret of `role`, with its mock salt.
    fn fetch<'a>(&'a self, role: &'a str) -> VerifierFuture<'a>;

    /// Where the gateway registers the backends it logs in, over the same connection and role
    /// (`None`: nowhere, as for a test's source that reads verifiers another way).
    fn registry(&self) -> Option<&dyn SessionRegistry> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let secret = StoredSecret::new("SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5".to_owned());
        let shown = format!("{:?}", RoleSecret::Stored(secret));
        assert!(!shown.contains("SCRAM"), "{shown}");
        assert!(!shown.contains("c2FsdA"), "{shown}");
    }
}
