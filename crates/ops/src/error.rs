//! Why an operator command did not do its work: the operator's mistake (the binary exits 2) or
//! a failure at run time (exit 1), the adapter's error kept as the source.

use curfew_agent::StandInError;
use curfew_postgres::{PgError, TargetUrlError};

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// `--target` names no primary, or the policy has none (locks live on primaries).
    #[error("{}", no_primary(policy, only.as_deref()))]
    NoPrimaryTarget {
        /// The policy's source (its file name).
        policy: String,
        /// The name asked for, if any.
        only: Option<String>,
    },
    /// A target's URL does not parse (only for a policy loaded without validation).
    #[error(transparent)]
    TargetUrl(#[from] TargetUrlError),
    /// The role is not on the target.
    #[error("target {target} has no role named \"{role}\" (names are case-sensitive)")]
    NoSuchRole {
        /// Target name.
        target: String,
        /// The name asked for.
        role: String,
    },
    /// curfew does not lock superusers.
    #[error(
        "role \"{}\" is a superuser; curfew does not lock superusers (revoke SUPERUSER first, or use ALTER ROLE by hand)",
        curfew_policy::visible(role)
    )]
    Superuser {
        /// The role.
        role: String,
    },
    /// The role is the one curfew connects as.
    #[error(
        "role \"{}\" is the role curfew itself connects as",
        curfew_policy::visible(role)
    )]
    OwnRole {
        /// The role.
        role: String,
    },
    /// An instant given to evaluate at does not resolve (the text says why).
    #[error("{0}")]
    BadInstant(String),
    /// The gateway's own role is unknown: its `auth_url` was not checked by a URL validator
    /// (the policy was loaded without them).
    #[error("[gateway]: the gateway's own role is unknown (auth_url has no user)")]
    GatewayRoleUnknown,
    /// `--until` is not in the future.
    #[error("--until is in the past")]
    UntilInPast,
    /// The lock's reason is blank.
    #[error("--reason must say why")]
    NoReason,
    /// The ledger's functions refused the change (administrators, curfew's own role, ...).
    #[error("{detail}")]
    Refused {
        /// The database's words.
        detail: String,
    },
    /// No agent leads a target, so the command applies the change itself, and has nowhere to
    /// record it.
    #[error(
        "no curfew agent leads the target, so this command applies the change itself and must record it: set audit_log in [agent] of the policy, or pass --audit-log FILE"
    )]
    NoAuditLog,
    /// `unlock` found no incident lock on any target.
    #[error("role \"{role}\" has no incident lock to lift")]
    NoIncidentLock {
        /// The role, as given.
        role: String,
    },
    /// The ledger is missing or not usable by curfew's role (what to run is in the text).
    #[error("{problem}")]
    Ledger {
        /// What is wrong and what an administrator must run.
        problem: String,
    },
    /// The database failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// A MariaDB/MySQL server failed.
    #[error(transparent)]
    Mysql(#[from] curfew_mysql::MysqlError),
    /// A database adapter failed (through the agent's interface).
    #[error(transparent)]
    Backend(#[from] curfew_backend::BackendError),
    /// A MariaDB/MySQL target's URL is not one the adapter reads.
    #[error(transparent)]
    MysqlUrl(#[from] curfew_mysql::TargetUrlError),
    /// The stand-in agent failed.
    #[error(transparent)]
    StandIn(#[from] StandInError),
    /// The caller's sink could not write a step.
    #[error(transparent)]
    Output(std::io::Error),
}

impl OpsError {
    /// Whether this is the operator's mistake (bad arguments or policy) rather than a failure
    /// at run time.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            OpsError::NoPrimaryTarget { .. }
                | OpsError::TargetUrl(_)
                | OpsError::MysqlUrl(_)
                | OpsError::NoSuchRole { .. }
                | OpsError::Superuser { .. }
                | OpsError::OwnRole { .. }
                | OpsError::BadInstant(_)
                | OpsError::UntilInPast
                | OpsError::NoReason
                | OpsError::GatewayRoleUnknown
                | OpsError::Refused { .. }
                | OpsError::NoAuditLog
                | OpsError::NoIncidentLock { .. }
        )
    }
}

fn no_primary(policy: &str, only: Option<&str>) -> String {
    match only {
        Some(name) => format!("{policy} has no primary target named \"{name}\""),
        None => format!("{policy} names no primary [[target]]"),
    }
}
