//! What can go wrong talking to PostgreSQL, said so that an operator knows what to do. No message
//! ever contains a password.

use tokio_postgres::error::SqlState;

use crate::names::{OWNER_ROLE, quote_identifier};
use crate::secret::PasswordFileError;
use crate::target::TargetSpec;
use crate::tls::TlsError;

/// An error from the PostgreSQL adapter.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// TLS could not be configured.
    #[error("target \"{target}\": {source}")]
    Tls {
        /// Target name.
        target: String,
        /// Why.
        source: TlsError,
    },
    /// The password file could not be used.
    #[error("target \"{target}\": {source}")]
    PasswordFile {
        /// Target name.
        target: String,
        /// Why.
        source: PasswordFileError,
    },
    /// The connection was refused or failed to authenticate.
    #[error("cannot connect to target \"{target}\" ({url}): {reason}")]
    Connect {
        /// Target name.
        target: String,
        /// The URL, safe to show.
        url: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The server is older than curfew supports.
    #[error("target \"{target}\" runs PostgreSQL {version}; curfew needs PostgreSQL 14 or later")]
    Unsupported {
        /// Target name.
        target: String,
        /// `server_version`.
        version: String,
    },
    /// The role lacks the grants curfew needs.
    #[error("{}", missing_privileges(target, role, missing))]
    MissingPrivileges {
        /// Target name.
        target: String,
        /// The role curfew logged in as.
        role: String,
        /// The predefined roles it is not a member of.
        missing: Vec<&'static str>,
    },
    /// curfew's role may not use the ledger or its functions (missing, outdated, not granted).
    #[error(
        "target \"{target}\": role \"{role}\" cannot use the curfew ledger ({detail}); as an administrator (a superuser, or the provider's admin role), run once: curfew init --target {target} --admin-user <admin> --agent-role {}",
        quote_identifier(role)
    )]
    LedgerPrivilege {
        /// Target name.
        target: String,
        /// curfew's role.
        role: String,
        /// The server's message.
        detail: String,
        /// The SQLSTATE: no privilege (42501), no function (42883), no schema (3F000) or no
        /// table (42P01).
        code: String,
    },
    /// curfew's functions refused to touch a role (a superuser, an administrator, curfew's own
    /// role or the ledger's owner).
    #[error("target \"{target}\": {detail}")]
    LoginRefused {
        /// Target name.
        target: String,
        /// The function's message, naming the role and why.
        detail: String,
    },
    /// The ledger's owner may not change a role's login.
    #[error("{}", alter_role_message(target, *version_num, detail))]
    AlterRole {
        /// Target name.
        target: String,
        /// The server's `server_version_num`.
        version_num: i32,
        /// The server's message.
        detail: String,
    },
    /// `curfew init` cannot install the ledger as this role.
    #[error(
        "target \"{target}\": curfew init cannot install the ledger as role \"{admin}\": {why}"
    )]
    Install {
        /// Target name.
        target: String,
        /// The role `curfew init` connected as.
        admin: String,
        /// Why, and what to do.
        why: String,
    },
    /// This agent no longer holds the target's leader lock (another replica may lead): the
    /// action was not taken, and the agent must stop acting until it leads again.
    #[error("target \"{target}\": this agent no longer holds the leader lock; it stops acting")]
    NotLeading {
        /// Target name.
        target: String,
    },
    /// A statement failed.
    #[error("target \"{target}\": {what} failed: {reason}")]
    Query {
        /// Target name.
        target: String,
        /// What curfew was doing.
        what: &'static str,
        /// The server's or the client's message.
        reason: String,
        /// Whether the connection is gone (reconnect and retry).
        lost: bool,
    },
}

impl PgError {
    /// Whether the connection is gone, so the caller should reconnect.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, PgError::Query { lost: true, .. })
    }

    /// Whether this agent lost its leadership (stop acting, campaign again).
    pub fn is_not_leading(&self) -> bool {
        matches!(self, PgError::NotLeading { .. })
    }

    pub(crate) fn query(target: &str, what: &'static str, e: tokio_postgres::Error) -> PgError {
        let lost = ends_session(&e);
        let reason = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        PgError::Query {
            target: target.to_owned(),
            what,
            reason,
            lost,
        }
    }

    pub(crate) fn connect(spec: &TargetSpec, e: tokio_postgres::Error) -> PgError {
        PgError::Connect {
            target: spec.name.clone(),
            url: spec.url.to_string(),
            reason: connect_reason(spec, &e),
        }
    }
}

/// Whether the connection is gone after this error: closed, an I/O failure, or an error the
/// server raised at FATAL or PANIC level (it ends the session right after sending it, e.g. when
/// curfew's own session is terminated or the server shuts down mid-statement; the client may
/// not have seen the socket close yet).
pub(crate) fn ends_session(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::Severity;
    e.is_closed()
        || find::<std::io::Error>(e).is_some()
        || e.as_db_error().is_some_and(|db| {
            matches!(
                db.parsed_severity(),
                Some(Severity::Fatal | Severity::Panic)
            ) || matches!(db.severity(), "FATAL" | "PANIC")
        })
}

fn alter_role_message(target: &str, version_num: i32, detail: &str) -> String {
    let owner = quote_identifier(OWNER_ROLE);
    let fix = if version_num >= 160_000 {
        format!(
            "on PostgreSQL 16 and later, a CREATEROLE role may change only roles it holds ADMIN OPTION on: run `curfew init` as a superuser (the owner then is a NOLOGIN superuser), or GRANT <role> TO {owner} WITH ADMIN OPTION;"
        )
    } else {
        format!("run `curfew init` again as a superuser (it gives {owner} CREATEROLE)")
    };
    format!(
        "target \"{target}\": curfew's ledger owner {owner} cannot change a role's login ({detail}): {fix}"
    )
}

fn missing_privileges(target: &str, role: &str, missing: &[&str]) -> String {
    let mut what = Vec::new();
    if missing.contains(&"pg_read_all_stats") {
        what.push("cannot see other roles' sessions (pg_read_all_stats)");
    }
    if missing.contains(&"pg_signal_backend") {
        what.push("cannot end other roles' sessions (pg_signal_backend)");
    }
    format!(
        "target \"{target}\": role \"{role}\" {}; as a superuser, run: GRANT {} TO {};",
        what.join(" and "),
        missing.join(", "),
        quote_identifier(role)
    )
}

/// Find an error of type `T` in a chain, looking inside `io::Error`s too (whose `source()`
/// skips the error they wrap).
fn find<'e, T: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find::<T>(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn connect_reason(spec: &TargetSpec, e: &tokio_postgres::Error) -> String {
    use rustls::CertificateError as C;
    if let Some(db) = e.as_db_error() {
        return if db.code() == &SqlState::INVALID_PASSWORD {
            format!(
                "password authentication failed for user \"{}\"; check the password in password_file",
                spec.url.user
            )
        } else {
            format!("{}: {}", db.severity(), db.message())
        };
    }
    if let Some(tls) = find::<rustls::Error>(e) {
        let host = spec.url.primary_host();
        return match tls {
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
                "the server's certificate is not signed by a CA in sslrootcert (unknown issuer)"
                    .to_owned()
            }
            // A CA in sslrootcert has the issuer's name but not its key (typically a CA that was
            // regenerated under the same name): webpki finds it by name, then the signature
            // fails. For the operator this is the same problem as an unknown issuer.
            rustls::Error::InvalidCertificate(C::BadSignature) => {
                "the server's certificate is not signed by a CA in sslrootcert (a CA there has the issuer's name but not its key)"
                    .to_owned()
            }
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not valid for host \"{host}\" (sslmode=verify-full checks the name; use the name in the certificate)"
            ),
            rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                "the server's certificate has expired".to_owned()
            }
            other => format!("TLS handshake failed: {other}"),
        };
    }
    if let Some(io) = find::<std::io::Error>(e) {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is the server running and listening on that address?)"
                    .to_owned()
            }
            std::io::ErrorKind::TimedOut => "timed out".to_owned(),
            _ => io.to_string(),
        };
    }
    e.to_string()
}
