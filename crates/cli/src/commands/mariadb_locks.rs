//! `curfew lock`, `unlock` and `locks` on MariaDB/MySQL targets: the same steps as
//! `curfew_ops` takes on PostgreSQL (check every target first, record in each ledger, wait for
//! the agent to apply it), through `curfew_mysql`'s ledger. MariaDB has no leader lock here, so
//! the command cannot ask whether an agent enforces a target: it waits `--wait` for one to
//! apply the change, and if none did, runs the agent itself (the stand-in) until it has.

use std::time::{Duration, Instant};

use curfew_backend::{LedgerStatus, LoginLedger, RoleInfo};
use curfew_mysql::{Connection, LockProgress, MysqlTarget};
use curfew_ops::{
    AfterLift, Completion, LockListing, LockRequest, Login, OpsError, Progress, Step,
    UnlockRequest, Warning,
};
use curfew_policy::{LoadedPolicy, Target};
use jiff::Timestamp;

use crate::databases::AnyTarget;
use crate::exit::Failure;

/// How often the ledger is read while waiting.
const POLL: Duration = Duration::from_millis(250);

fn report(progress: &mut impl Progress, step: Step) -> Result<(), Failure> {
    progress
        .step(step)
        .map_err(|e| Failure::from(OpsError::Output(e)))
}

fn runtime_error(e: impl std::error::Error + Send + Sync + 'static) -> Failure {
    Failure::Runtime(anyhow::Error::new(e))
}

/// Connect to a MariaDB target, reporting the connection's warnings.
async fn open(target: &Target, progress: &mut impl Progress) -> Result<Connection, Failure> {
    let spec = MysqlTarget::from_policy(target).map_err(runtime_error)?;
    let connected = curfew_mysql::connect(&spec).await.map_err(runtime_error)?;
    for warning in connected.warnings {
        report(progress, Step::Warning(Warning::Connection(warning)))?;
    }
    Ok(connected.connection)
}

/// The ledger must be usable by curfew's account (the problem names the exact statements).
async fn ensure_ledger(connection: &Connection, target: &str) -> Result<(), Failure> {
    let status = connection.ledger_status().await.map_err(runtime_error)?;
    if status == LedgerStatus::Ready {
        return Ok(());
    }
    let problem = connection
        .login_change_problem(target, status, true)
        .unwrap_or_else(|| format!("target \"{target}\": the ledger is not ready ({status:?})"));
    Err(OpsError::Ledger { problem }.into())
}

async fn find_role(connection: &Connection, target: &str, name: &str) -> Result<RoleInfo, Failure> {
    let roles = connection.roles().await.map_err(runtime_error)?;
    roles.into_iter().find(|r| r.name == name).ok_or_else(|| {
        OpsError::NoSuchRole {
            target: target.to_owned(),
            role: name.to_owned(),
        }
        .into()
    })
}

/// Poll `done` on each lock's progress until all hold or `wait` passes; the progress of each
/// (`None`: not done in time).
async fn wait_for(
    pending: &[(String, Connection, String, i64)],
    wait: Duration,
    done: impl Fn(&LockProgress) -> bool,
) -> Result<Vec<Option<LockProgress>>, Failure> {
    let deadline = Instant::now() + wait;
    loop {
        let mut all = Vec::with_capacity(pending.len());
        for (_, connection, role, id) in pending {
            let p = connection
                .lock_progress(role, *id)
                .await
                .map_err(runtime_error)?;
            all.push(done(&p).then_some(p));
        }
        if all.iter().all(Option::is_some) || Instant::now() >= deadline {
            return Ok(all);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait for an agent; if none applied the change on every target within `wait`, run one here
/// for those targets and wait again.
async fn applied(
    loaded: &LoadedPolicy,
    audit_log: Option<&std::path::Path>,
    pending: &[(String, Connection, String, i64)],
    wait: Duration,
    done: impl Fn(&LockProgress) -> bool + Copy,
    progress: &mut impl Progress,
) -> Result<Vec<Option<LockProgress>>, Failure> {
    let first = wait_for(pending, wait, done).await?;
    let unled: Vec<String> = pending
        .iter()
        .zip(&first)
        .filter(|(_, p)| p.is_none())
        .map(|((t, ..), _)| t.clone())
        .collect();
    if unled.is_empty() {
        return Ok(first);
    }
    let audit = curfew_ops::audit_path(loaded, audit_log)?;
    report(
        progress,
        Step::StandInStarted {
            targets: unled.clone(),
            audit_log: audit.clone(),
        },
    )?;
    let stand_in = curfew_agent::StandIn::start(loaded, &unled, &audit, AnyTarget::from_policy)
        .map_err(|e| Failure::from(OpsError::StandIn(e)))?;
    let second = wait_for(pending, wait, done).await;
    stand_in
        .stop()
        .await
        .map_err(|e| Failure::from(OpsError::StandIn(e)))?;
    second
}

/// `curfew lock` on MariaDB targets: every target checked, then the incident lock recorded on
/// each, then applied (by the agent, or the stand-in).
pub(crate) async fn lock(
    loaded: &LoadedPolicy,
    request: &LockRequest<'_>,
    progress: &mut impl Progress,
) -> Result<Completion, Failure> {
    if request.until.is_some_and(|u| u <= Timestamp::now()) {
        return Err(OpsError::UntilInPast.into());
    }
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(OpsError::NoReason.into());
    }
    curfew_ops::audit_path(loaded, request.audit_log)?;
    let mut checked = Vec::new();
    for target in &request.targets {
        let connection = open(target, progress).await?;
        ensure_ledger(&connection, &target.name).await?;
        let role = find_role(&connection, &target.name, request.role).await?;
        if role.superuser {
            return Err(OpsError::Superuser { role: role.name }.into());
        }
        if role.name == connection.own_role() {
            return Err(OpsError::OwnRole { role: role.name }.into());
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
        checked.push((target, connection, role));
    }
    let mut pending = Vec::new();
    let mut sessions = Vec::new();
    for (target, connection, role) in checked {
        let actor = curfew_audit::ledger_actor(connection.own_role(), None);
        let row = connection
            .create_incident_lock(&role.name, reason, &actor.to_ledger_text(), request.until)
            .await
            .map_err(runtime_error)?
            .ok_or_else(|| OpsError::NoSuchRole {
                target: target.name.clone(),
                role: role.name.clone(),
            })?;
        let before = connection
            .lock_progress(&role.name, row.id)
            .await
            .map_err(runtime_error)?;
        report(
            progress,
            Step::Recorded {
                target: target.name.clone(),
                role: role.name.clone(),
                lock_id: row.id,
                by: actor.label(),
                until: request.until,
                sessions: before.sessions,
            },
        )?;
        sessions.push(before.sessions);
        pending.push((target.name.clone(), connection, role.name, row.id));
    }
    let done = |p: &LockProgress| p.announced && !p.can_login && p.sessions == 0;
    let results = applied(
        loaded,
        request.audit_log,
        &pending,
        request.wait.to_std(),
        done,
        progress,
    )
    .await?;
    let mut completion = Completion::Applied;
    for (((target, _, role, _), result), sessions) in pending.into_iter().zip(results).zip(sessions)
    {
        let step = match result {
            Some(p) => Step::Applied {
                target,
                role,
                disabled_by_curfew: p.disabled_by_curfew,
                sessions_ended: sessions,
            },
            None => {
                completion = Completion::Pending;
                Step::NotApplied {
                    target,
                    wait: request.wait,
                }
            }
        };
        report(progress, step)?;
    }
    Ok(completion)
}

/// `curfew unlock` on MariaDB targets: the incident locks released on each, then the logins
/// restored (by the agent, or the stand-in). `Ok(None)`: no target had an incident lock.
pub(crate) async fn unlock(
    loaded: &LoadedPolicy,
    request: &UnlockRequest<'_>,
    progress: &mut impl Progress,
) -> Result<Option<Completion>, Failure> {
    let mut released = Vec::new();
    for target in &request.targets {
        let connection = open(target, progress).await?;
        ensure_ledger(&connection, &target.name).await?;
        let role = find_role(&connection, &target.name, request.role).await?;
        let by = curfew_audit::ledger_actor(connection.own_role(), Some(request.reason))
            .to_ledger_text();
        let ids = connection
            .release_incident_locks(&role.name, &by)
            .await
            .map_err(runtime_error)?;
        let Some(id) = ids.last() else {
            let step = Step::NoIncidentLock {
                target: target.name.clone(),
                role: role.name,
            };
            report(progress, step)?;
            continue;
        };
        released.push((target.name.clone(), connection, role.name, *id));
    }
    if released.is_empty() {
        return Ok(None);
    }
    let done = |p: &LockProgress| {
        p.announced && (p.can_login || !p.remaining.is_empty() || !p.disabled_by_curfew)
    };
    let results = applied(
        loaded,
        request.audit_log,
        &released,
        request.wait.to_std(),
        done,
        progress,
    )
    .await?;
    let mut completion = Completion::Applied;
    for ((target, _, role, _), result) in released.into_iter().zip(results) {
        let step = match result {
            Some(p) => Step::Lifted {
                target,
                role,
                login: if !p.remaining.is_empty() {
                    AfterLift::StillLockedBy(p.remaining)
                } else if p.can_login {
                    AfterLift::CanLogIn
                } else {
                    AfterLift::StaysNologin
                },
            },
            None => {
                completion = Completion::Pending;
                Step::NotRestored {
                    target,
                    wait: request.wait,
                }
            }
        };
        report(progress, step)?;
    }
    Ok(Some(completion))
}

/// `curfew locks` on MariaDB targets (targets without a ledger left out).
pub(crate) async fn list(
    targets: &[&Target],
    history: bool,
    progress: &mut impl Progress,
) -> Result<Vec<LockListing>, Failure> {
    let mut listed = Vec::new();
    for target in targets {
        let connection = open(target, progress).await?;
        let status = connection.ledger_status().await.map_err(runtime_error)?;
        if status == LedgerStatus::Missing {
            continue;
        }
        if !status.readable() {
            ensure_ledger(&connection, &target.name).await?;
        }
        let roles = connection.roles().await.map_err(runtime_error)?;
        for lock in connection.lock_rows(history).await.map_err(runtime_error)? {
            let login = roles.iter().find(|r| r.oid == lock.role_oid).map_or(
                Login::RoleDropped,
                |r| match r.can_login {
                    true => Login::Enabled,
                    false => Login::Disabled,
                },
            );
            let released_by = lock
                .released_by
                .as_deref()
                .map(curfew_audit::actor::ledger_label)
                .unwrap_or_default();
            listed.push(LockListing {
                target: target.name.clone(),
                role: lock.role_name,
                rule: lock.rule,
                created_by: curfew_audit::actor::ledger_label(&lock.created_by),
                created_at: lock.created_at,
                expires_at: lock.expires_at,
                released: lock.released_at.map(|at| (at, released_by)),
                login,
                reason: lock.reason,
            });
        }
    }
    Ok(listed)
}
