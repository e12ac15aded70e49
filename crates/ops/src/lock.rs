//! `curfew lock` and `curfew unlock`: record the change in the ledger of every primary
//! (PostgreSQL or MariaDB), then wait for the agent to apply it; where no enforcing agent leads,
//! run one here (the stand-in, `curfew_agent::StandIn`) until it has.

use std::path::{Path, PathBuf};

use curfew_agent::StandIn;
use curfew_backend::{Connector, RoleInfo};
use curfew_policy::{Limit, LoadedPolicy, Target};
use jiff::Timestamp;

use crate::error::OpsError;
use crate::primary::Primary;
use crate::step::{AfterLift, Step, Warning};
use crate::targets::{Progress, report};

/// What `curfew lock` asks for.
#[derive(Debug, Clone)]
pub struct LockRequest<'a> {
    /// The primaries to lock on ([`crate::primaries`]).
    pub targets: Vec<&'a Target>,
    /// The role to lock out (exact name).
    pub role: &'a str,
    /// Why (blank is refused).
    pub reason: &'a str,
    /// When the lock lapses by itself (must be in the future).
    pub until: Option<Timestamp>,
    /// How long to wait for the agent to apply it.
    pub wait: Limit,
    /// Where the stand-in records (default: `audit_log` in `[agent]`).
    pub audit_log: Option<&'a Path>,
}

/// What `curfew unlock` asks for.
#[derive(Debug, Clone)]
pub struct UnlockRequest<'a> {
    /// The primaries to unlock on ([`crate::primaries`]).
    pub targets: Vec<&'a Target>,
    /// The role whose incident lock to lift.
    pub role: &'a str,
    /// Why it is lifted (recorded with who lifted it).
    pub reason: &'a str,
    /// How long to wait for the agent to restore the login.
    pub wait: Limit,
    /// Where the stand-in records (default: `audit_log` in `[agent]`).
    pub audit_log: Option<&'a Path>,
}

/// Whether every target applied the change within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Every target applied it.
    Applied,
    /// Some did not: the change is in their ledger, applied when an agent runs.
    Pending,
}

/// The agent's connector for a target, for the stand-in (the caller's: it knows every
/// database this binary drives).
pub trait StandInConnector<C: Connector>: Fn(&Target) -> C + Send + Sync + 'static {}

impl<C: Connector, F: Fn(&Target) -> C + Send + Sync + 'static> StandInConnector<C> for F {}

/// A change recorded on one target, waiting for an agent.
struct Recorded {
    target: String,
    connection: Primary,
    role: RoleInfo,
    lock_id: i64,
    sessions: i64,
}

/// `curfew lock`: record an incident lock on every primary and wait for the agent to apply it.
pub async fn lock<C: Connector>(
    loaded: &LoadedPolicy,
    request: &LockRequest<'_>,
    connector: impl StandInConnector<C>,
    progress: &mut impl Progress,
) -> Result<Completion, OpsError> {
    if request.until.is_some_and(|u| u <= Timestamp::now()) {
        return Err(OpsError::UntilInPast);
    }
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(OpsError::NoReason);
    }
    // Every target is checked, and where the lock will be recorded when no agent applies it,
    // before any lock is recorded: a refusal leaves nothing half done.
    let mut checked = Vec::new();
    for target in &request.targets {
        let mut connection = Primary::open(target, progress).await?;
        connection.ensure_ledger(&target.name).await?;
        let role = connection.role(&target.name, request.role).await?;
        if role.superuser {
            return Err(OpsError::Superuser { role: role.name });
        }
        if role.name == connection.own_role() {
            return Err(OpsError::OwnRole { role: role.name });
        }
        if loaded
            .policy
            .exempt
            .by_role(&role.name, &role.member_of)
            .is_some()
        {
            let warning = Warning::ExemptRoleLocked {
                role: role.name.clone(),
            };
            report(progress, Step::Warning(warning))?;
        }
        if !connection.enforcing_agent_leads().await? {
            audit_path(loaded, request.audit_log)?;
        }
        checked.push((target, connection, role));
    }
    let mut pending = Vec::new();
    for (target, connection, role) in checked {
        // Who: the real uid's user (never $USER) and the role curfew connected as.
        let actor = curfew_audit::ledger_actor(connection.own_role(), None);
        let lock_id = connection
            .create_incident_lock(
                &target.name,
                &role,
                reason,
                &actor.to_ledger_text(),
                request.until,
            )
            .await?;
        let before = connection.lock_progress(&role, lock_id).await?;
        report(
            progress,
            Step::Recorded {
                target: target.name.clone(),
                role: role.name.clone(),
                lock_id,
                by: actor.label(),
                until: request.until,
                sessions: before.sessions,
            },
        )?;
        pending.push(Recorded {
            target: target.name.clone(),
            connection,
            role,
            lock_id,
            sessions: before.sessions,
        });
    }
    let stand_in =
        stand_in_for(loaded, &mut pending, request.audit_log, connector, progress).await?;
    let mut completion = Completion::Applied;
    for recorded in pending {
        let applied = recorded
            .connection
            .wait_for_lock_progress(
                &recorded.role,
                recorded.lock_id,
                request.wait.to_std(),
                |p| p.announced && !p.can_login && p.sessions == 0,
            )
            .await?;
        let step = match applied {
            Some(p) => Step::Applied {
                target: recorded.target,
                role: recorded.role.name,
                disabled_by_curfew: p.disabled_by_curfew,
                sessions_ended: recorded.sessions,
            },
            None => {
                completion = Completion::Pending;
                Step::NotApplied {
                    target: recorded.target,
                    wait: request.wait,
                }
            }
        };
        report(progress, step)?;
    }
    finish(stand_in, completion).await
}

/// `curfew unlock`: release the incident lock on every primary and wait for the agent.
pub async fn unlock<C: Connector>(
    loaded: &LoadedPolicy,
    request: &UnlockRequest<'_>,
    connector: impl StandInConnector<C>,
    progress: &mut impl Progress,
) -> Result<Completion, OpsError> {
    let mut released = Vec::new();
    for target in &request.targets {
        let connection = Primary::open(target, progress).await?;
        connection.ensure_ledger(&target.name).await?;
        let role = connection.role(&target.name, request.role).await?;
        // Who: the real uid's user (never $USER) and the role curfew connected as.
        let by = curfew_audit::ledger_actor(connection.own_role(), Some(request.reason))
            .to_ledger_text();
        let Some(lock_id) = connection.release_incident_lock(&role, &by).await? else {
            let step = Step::NoIncidentLock {
                target: target.name.clone(),
                role: role.name,
            };
            report(progress, step)?;
            continue;
        };
        released.push(Recorded {
            target: target.name.clone(),
            connection,
            role,
            lock_id,
            sessions: 0,
        });
    }
    if released.is_empty() {
        return Err(OpsError::NoIncidentLock {
            role: request.role.to_owned(),
        });
    }
    let stand_in = stand_in_for(
        loaded,
        &mut released,
        request.audit_log,
        connector,
        progress,
    )
    .await?;
    let mut completion = Completion::Applied;
    for recorded in released {
        let done = recorded
            .connection
            .wait_for_lock_progress(
                &recorded.role,
                recorded.lock_id,
                request.wait.to_std(),
                |p| {
                    p.announced && (p.can_login || !p.remaining.is_empty() || !p.disabled_by_curfew)
                },
            )
            .await?;
        let login = match done {
            Some(p) if !p.remaining.is_empty() => Some(AfterLift::StillLockedBy(p.remaining)),
            Some(p) if p.can_login => Some(AfterLift::CanLogIn),
            Some(_) => Some(AfterLift::StaysNologin),
            None => None,
        };
        let step = match login {
            Some(login) => Step::Lifted {
                target: recorded.target,
                role: recorded.role.name,
                login,
            },
            None => {
                completion = Completion::Pending;
                Step::NotRestored {
                    target: recorded.target,
                    wait: request.wait,
                }
            }
        };
        report(progress, step)?;
    }
    finish(stand_in, completion).await
}

/// The audit log the agent would write: `given` (`--audit-log`), else `audit_log` in
/// `[agent]`.
pub fn audit_path(loaded: &LoadedPolicy, given: Option<&Path>) -> Result<PathBuf, OpsError> {
    given
        .map(Path::to_owned)
        .or_else(|| loaded.policy.agent.audit_log.as_ref().map(PathBuf::from))
        .ok_or(OpsError::NoAuditLog)
}

/// When no enforcing agent leads some of the targets, run one here for them; `None` when
/// agents lead every target (they apply the change).
async fn stand_in_for<C: Connector>(
    loaded: &LoadedPolicy,
    pending: &mut [Recorded],
    audit_log: Option<&Path>,
    connector: impl StandInConnector<C>,
    progress: &mut impl Progress,
) -> Result<Option<StandIn>, OpsError> {
    // Asked again now that the change is recorded (an agent may have started meanwhile).
    let mut unled = Vec::new();
    for recorded in pending.iter_mut() {
        if !recorded.connection.enforcing_agent_leads().await? {
            unled.push(recorded.target.clone());
        }
    }
    if unled.is_empty() {
        return Ok(None);
    }
    let audit = audit_path(loaded, audit_log)?;
    report(
        progress,
        Step::StandInStarted {
            targets: unled.clone(),
            audit_log: audit.clone(),
        },
    )?;
    let stand_in = StandIn::start(loaded, &unled, &audit, connector)?;
    Ok(Some(stand_in))
}

/// Stop the agent this command ran, if any, then say whether every change was applied.
async fn finish(stand_in: Option<StandIn>, completion: Completion) -> Result<Completion, OpsError> {
    if let Some(stand_in) = stand_in {
        stand_in.stop().await?;
    }
    Ok(completion)
}
