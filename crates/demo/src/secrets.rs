//! The demo's passwords: one random password per login role, made for this run. The server is
//! given only SCRAM verifiers computed here, so no password reaches it (or its log) in the
//! clear; the agent and the gateway read theirs from files, as a real deployment does.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use curfew_postgres::quote_identifier;

use crate::error::DemoError;

/// A password; its `Debug` never shows it.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The passwords of the demo's login roles.
#[derive(Debug)]
pub(super) struct Passwords {
    by_role: Vec<(&'static str, Secret)>,
}

impl Passwords {
    /// A fresh random password for each of `roles`.
    pub(super) fn generate(roles: &[&'static str]) -> Result<Passwords, DemoError> {
        let by_role = roles
            .iter()
            .map(|role| {
                curfew_postgres::random_hex(24)
                    .map(|hex| (*role, Secret(hex)))
                    .map_err(|source| DemoError::Io {
                        what: "reading random bytes for the demo's passwords".to_owned(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Passwords { by_role })
    }

    /// The password of `role`, or `None` for a role the demo made none for.
    pub(super) fn of(&self, role: &str) -> Option<&str> {
        self.by_role
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, secret)| secret.0.as_str())
    }

    /// `ALTER ROLE ... PASSWORD` for every role, with SCRAM-SHA-256 verifiers made here (the
    /// server stores them as given: `password_encryption` does not re-hash a verifier).
    pub(super) fn verifiers_sql(&self) -> String {
        self.by_role
            .iter()
            .map(|(role, secret)| {
                let verifier = postgres_protocol::password::scram_sha_256(secret.0.as_bytes());
                format!(
                    "ALTER ROLE {} PASSWORD {};\n",
                    quote_identifier(role),
                    quote_literal(&verifier)
                )
            })
            .collect()
    }

    /// Writes `role`'s password to `dir/<file_name>`, readable by its owner only, for a
    /// policy's `password_file`.
    pub(super) fn write_file(
        &self,
        role: &str,
        dir: &Path,
        file_name: &str,
    ) -> Result<PathBuf, DemoError> {
        let path = dir.join(file_name);
        let io = |source| DemoError::Io {
            what: format!("writing the password file {}", path.display()),
            source,
        };
        let password = self.of(role).ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the demo made no password for {role}"),
            ))
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        writeln!(file, "{password}").map_err(io)?;
        Ok(path)
    }
}

/// A SQL string literal (a verifier is base64 and `$:`, but quoted properly all the same).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_role_gets_its_own_password_and_debug_shows_none() {
        let passwords = Passwords::generate(&["a", "b"]).unwrap();
        let (a, b) = (passwords.of("a").unwrap(), passwords.of("b").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 48);
        assert!(passwords.of("c").is_none());
        let shown = format!("{passwords:?}");
        assert!(!shown.contains(a) && !shown.contains(b), "{shown}");
    }

    #[test]
    fn the_server_is_given_verifiers_not_passwords() {
        let passwords = Passwords::generate(&["analyst_kim"]).unwrap();
        let sql = passwords.verifiers_sql();
        assert!(
            sql.starts_with("ALTER ROLE \"analyst_kim\" PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        assert!(!sql.contains(passwords.of("analyst_kim").unwrap()));
    }

    #[test]
    fn a_literal_doubles_its_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
