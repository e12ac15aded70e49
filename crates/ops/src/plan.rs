//! `curfew plan`: one snapshot of each target, the verdict on each session at an instant, and
//! the login locks in force then, as data the caller formats.

use curfew_agent::LoginWindowPlan;
use curfew_policy::{LoadedPolicy, Session, Target, Verdict};
use curfew_postgres::Connection;
use jiff::Timestamp;

use crate::error::OpsError;
use crate::targets::{Progress, open};

/// The plan for one target.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// Target name.
    pub target: String,
    /// The server, in words (`PostgreSQL 16.4`).
    pub server: String,
    /// The server's clock at the snapshot.
    pub now: Timestamp,
    /// The instant the sessions are judged at.
    pub at: Timestamp,
    /// The client sessions, in the server's order.
    pub sessions: Vec<Session>,
    /// The verdict on each session, in the same order.
    pub verdicts: Vec<Verdict>,
    /// The login locks as of `at` (none on a standby).
    pub login_locks: Vec<LoginLock>,
    /// The sessions curfew gateway logged in, with the client behind each (the registry's
    /// rows): the gateway ends them itself for the rules it enforces, the agent only
    /// `[agent] gateway_grace` later if it has not.
    pub gateway: std::collections::BTreeMap<curfew_policy::SessionKey, curfew_agent::GatewayClient>,
}

/// A login lock in force or scheduled, as of the plan's instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginLock {
    /// A `lock_logins` rule's window and the roles it covers.
    Window(LoginWindowPlan),
    /// An incident lock in the ledger.
    Incident {
        /// The role's name when it was locked.
        role: String,
        /// Who made it, as a label.
        by: String,
        /// Why.
        reason: String,
        /// When it lapses by itself.
        expires_at: Option<Timestamp>,
    },
}

/// The plan for each of `targets`, judged at `at(server's clock)`: a caller's instant may be
/// relative to the server's clock, so it is resolved per target (its error is a usage error).
pub async fn plan(
    loaded: &LoadedPolicy,
    targets: &[&Target],
    at: &dyn Fn(Timestamp) -> Result<Timestamp, String>,
    progress: &mut impl Progress,
) -> Result<Vec<TargetPlan>, OpsError> {
    let mut plans = Vec::new();
    for target in targets {
        let mut connection = open(target, progress).await?;
        let server = format!("PostgreSQL {}", connection.info.version);
        let snapshot = connection.snapshot(&[], loaded.needs_memberships()).await?;
        let at = at(snapshot.now).map_err(OpsError::BadInstant)?;
        let verdicts = curfew_agent::judge_sessions(&loaded.policy, &snapshot.sessions, at);
        let login_locks = if target.standby {
            Vec::new()
        } else {
            login_locks(&connection, loaded, at).await?
        };
        plans.push(TargetPlan {
            target: target.name.clone(),
            server,
            now: snapshot.now,
            at,
            sessions: snapshot.sessions,
            verdicts,
            login_locks,
            gateway: snapshot.gateway,
        });
    }
    Ok(plans)
}

/// When each `lock_logins` rule locks and restores which roles, and the incident locks, as of
/// `at`.
async fn login_locks(
    connection: &Connection,
    loaded: &LoadedPolicy,
    at: Timestamp,
) -> Result<Vec<LoginLock>, OpsError> {
    let has_rules = loaded.policy.rules.iter().any(|r| r.lock_logins);
    let ledger = connection.ledger_exists().await?;
    if !has_rules && !ledger {
        return Ok(Vec::new());
    }
    let roles = connection.roles().await?;
    let mut locks: Vec<LoginLock> =
        curfew_agent::login_windows(&loaded.policy, &roles, &connection.info.role, at)
            .into_iter()
            .map(LoginLock::Window)
            .collect();
    if ledger {
        for lock in connection.locks(false).await? {
            if lock.kind != "incident" {
                continue;
            }
            locks.push(LoginLock::Incident {
                role: lock.role_name,
                by: curfew_audit::actor::ledger_label(&lock.created_by),
                reason: lock.reason,
                expires_at: lock.expires_at,
            });
        }
    }
    Ok(locks)
}
