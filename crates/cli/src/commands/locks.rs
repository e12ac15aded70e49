//! `curfew init`, `curfew lock`, `curfew unlock`, `curfew locks`: the login-lock ledger from the
//! command line. The commands record locks in the ledger (on every primary target); the running
//! agent applies them, with audit records, and these commands wait for it to confirm.

use std::path::Path;

use anyhow::Context;
use curfew_policy::{LoadedPolicy, visible};
use curfew_postgres::{Connection, LedgerProblem as _, RoleInfo};
use jiff::Timestamp;

use super::stand_in::{agent_leads, audit_path};
use crate::exit::{Failure, out, out_text};
use crate::policy_file;
use crate::when::parse_instant;
use curfew_agent::StandIn;

/// Options of `curfew init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// The role curfew's agent connects as, granted the use of the ledger (default: the user in
    /// the target's URL).
    #[arg(long, value_name = "ROLE")]
    agent_role: Option<String>,
    /// Connect as this administrator (a superuser, or the provider's admin role) instead of the
    /// user in the target's URL; host, database and TLS settings stay the target's.
    #[arg(long, value_name = "ROLE")]
    admin_user: Option<String>,
    /// The administrator's password file (with --admin-user; mode 0600).
    #[arg(long, value_name = "FILE", requires = "admin_user")]
    admin_password_file: Option<std::path::PathBuf>,
}

/// Options of `curfew lock`.
#[derive(Debug, clap::Args)]
pub(crate) struct LockArgs {
    /// The role to lock out (exact name, case-sensitive).
    role: String,
    /// Why: recorded in the ledger and the audit log.
    #[arg(long)]
    reason: String,
    /// Lift the lock by itself at this time: 2026-11-23T19:00:00Z, "2026-11-23 19:00", +4h.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// How long to wait for the agent to apply the lock.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    wait: curfew_policy::Limit,
    /// Where to record the change when no agent leads a target and this command applies it
    /// itself (default: `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<std::path::PathBuf>,
}

/// Options of `curfew unlock`.
#[derive(Debug, clap::Args)]
pub(crate) struct UnlockArgs {
    /// The role whose incident lock to lift.
    role: String,
    /// Why the lock is lifted (required): recorded with who lifted it.
    #[arg(long)]
    reason: Option<String>,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// How long to wait for the agent to restore the login.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    wait: curfew_policy::Limit,
    /// Where to record the change when no agent leads a target and this command applies it
    /// itself (default: `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<std::path::PathBuf>,
}

/// Options of `curfew locks`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Also show released and expired locks.
    #[arg(long)]
    all: bool,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
}

/// The primary targets selected (locks live on primaries; standbys follow them).
fn primaries<'p>(
    loaded: &'p LoadedPolicy,
    only: Option<&str>,
) -> Result<Vec<&'p curfew_policy::Target>, Failure> {
    let chosen: Vec<_> = loaded
        .policy
        .targets
        .iter()
        .filter(|t| !t.standby && only.is_none_or(|n| t.name == n))
        .collect();
    if chosen.is_empty() {
        return Err(Failure::Usage(match only {
            Some(name) => format!("{} has no primary target named \"{name}\"", loaded.source),
            None => format!("{} names no primary [[target]]", loaded.source),
        }));
    }
    Ok(chosen)
}

async fn open(target: &curfew_policy::Target) -> Result<Connection, Failure> {
    let connected = curfew_postgres::connect(&policy_file::target_spec(target)?)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    for warning in &connected.warnings {
        eprintln!("curfew: warning: {warning}");
    }
    Ok(connected.connection)
}

/// The ledger must be installed and usable by curfew's role (`curfew init`, as an
/// administrator, installs it).
async fn ensure_ledger(connection: &Connection, target: &str) -> Result<(), Failure> {
    let status = connection
        .ledger_status()
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    match status.problem(target, &connection.info.role, true) {
        Some(problem) => Err(Failure::Runtime(anyhow::anyhow!(problem))),
        None => Ok(()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Runtime::new().context("starting the runtime")?)
}

/// `curfew init`: as an administrator, install the ledger and its functions on each primary
/// and grant curfew's role their use.
pub(crate) fn init(config: &Path, args: &InitArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = primaries(&loaded, args.target.as_deref())?;
    runtime()?.block_on(async {
        for target in targets {
            let mut spec = policy_file::target_spec(target)?;
            let agent_role = args
                .agent_role
                .clone()
                .unwrap_or_else(|| spec.url.user.clone());
            if let Some(admin) = &args.admin_user {
                spec.url.user = admin.clone();
                spec.password_file = args.admin_password_file.clone();
            }
            let connected = curfew_postgres::connect(&spec)
                .await
                .map_err(|e| Failure::Runtime(e.into()))?;
            let mut connection = connected.connection;
            let installed = connection
                .install_ledger(&agent_role)
                .await
                .map_err(|e| Failure::Runtime(e.into()))?;
            out_text(&format!(
                "target {}: the curfew ledger (schema curfew) {}; its functions belong to {} ({}), and role \"{agent_role}\" may read the ledger and execute them\n",
                target.name,
                if installed.schema_existed {
                    "was there and is up to date"
                } else {
                    "was created"
                },
                curfew_postgres::OWNER_ROLE,
                installed.owner_attributes,
            ))?;
            for note in &installed.notes {
                eprintln!("curfew: note: target {}: {note}", target.name);
            }
        }
        Ok(())
    })
}

/// `curfew lock`: record an incident lock on every primary and wait for the agent to apply it.
pub(crate) fn lock(config: &Path, args: &LockArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = primaries(&loaded, args.target.as_deref())?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_instant(u, Timestamp::now()).map_err(Failure::Usage))
        .transpose()?;
    if until.is_some_and(|u| u <= Timestamp::now()) {
        return Err(Failure::Usage("--until is in the past".to_owned()));
    }
    if args.reason.trim().is_empty() {
        return Err(Failure::Usage("--reason must say why".to_owned()));
    }
    runtime()?.block_on(async {
        // Every target is checked, and where the lock will be recorded when no agent applies
        // it, before any lock is recorded: a refusal leaves nothing half done.
        let mut checked = Vec::new();
        for target in &targets {
            let connection = open(target).await?;
            ensure_ledger(&connection, &target.name).await?;
            let role = find_role(&connection, &target.name, &args.role).await?;
            if role.superuser {
                return Err(Failure::Usage(format!(
                    "role \"{}\" is a superuser; curfew does not lock superusers (revoke SUPERUSER first, or use ALTER ROLE by hand)",
                    visible(&role.name)
                )));
            }
            if role.name == connection.info.role {
                return Err(Failure::Usage(format!(
                    "role \"{}\" is the role curfew itself connects as",
                    visible(&role.name)
                )));
            }
            if loaded.policy.exempt.by_role(&role.name, &role.member_of).is_some() {
                eprintln!(
                    "curfew: warning: role \"{}\" is exempt in the policy; an incident lock overrides the exemption",
                    visible(&role.name)
                );
            }
            if !agent_leads(&connection).await? {
                audit_path(&loaded, args.audit_log.as_deref())?;
            }
            checked.push((target, connection, role));
        }
        let mut pending = Vec::new();
        for (target, connection, role) in checked {
            // Who: the real uid's user (never $USER) and the role curfew connected as.
            let actor = curfew_audit::ledger_actor(&connection.info.role, None);
            let by = actor.label();
            let row = connection
                .create_incident_lock(&role, args.reason.trim(), &actor.to_ledger_text(), until)
                .await
                .map_err(|e| match e {
                    // The ledger's functions refuse administrators, curfew's own role, ...
                    curfew_postgres::PgError::LoginRefused { detail, .. } => Failure::Usage(detail),
                    e => Failure::Runtime(e.into()),
                })?;
            let before = connection
                .lock_progress(role.oid, row.id)
                .await
                .map_err(|e| Failure::Runtime(e.into()))?;
            out_text(&format!(
                "target {}: lock on role \"{}\" recorded (lock {}, by {by}{}); {} session{} open; waiting for the agent...\n",
                target.name,
                visible(&role.name),
                row.id,
                until.map(|u| format!(", until {u}")).unwrap_or_default(),
                before.sessions,
                if before.sessions == 1 { "" } else { "s" }
            ))?;
            pending.push((target.name.clone(), connection, role, row.id, before));
        }
        let stand_in = stand_in_for(&loaded, &pending, args.audit_log.as_deref()).await?;
        let mut all_applied = true;
        for (target, connection, role, id, before) in pending {
            let applied = connection.wait_for_lock_progress(role.oid, id, args.wait.to_std(), |p| {
                p.announced && !p.can_login && p.sessions == 0
            })
            .await
            .map_err(|e| Failure::Runtime(e.into()))?;
            match applied {
                Some(p) => out_text(&format!(
                    "target {target}: role \"{}\" is locked out: {}, {} session{} ended\n",
                    visible(&role.name),
                    if p.disabled_by_curfew {
                        "login disabled"
                    } else {
                        "login was already disabled before (it will stay so)"
                    },
                    before.sessions,
                    if before.sessions == 1 { "" } else { "s" }
                ))?,
                None => {
                    all_applied = false;
                    eprintln!(
                        "curfew: target {target}: the lock is recorded, but no agent applied it within {}: is `curfew agent` running against this target?",
                        args.wait
                    );
                }
            }
        }
        finish(stand_in, all_applied, "the lock is in the ledger and will be applied when an agent runs").await
    })
}

/// Stop the agent this command ran, if any; exit 1 (with `pending`) unless every change was
/// applied.
async fn finish(
    stand_in: Option<StandIn>,
    all_applied: bool,
    pending: &'static str,
) -> Result<(), Failure> {
    if let Some(stand_in) = stand_in {
        stand_in
            .stop()
            .await
            .map_err(|e| Failure::Runtime(e.into()))?;
    }
    if all_applied {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(pending)))
    }
}

/// When no enforcing agent leads some of the targets, run one here for them (see
/// [`super::stand_in`]); `None` when agents lead every target (they apply the change).
async fn stand_in_for<T>(
    loaded: &LoadedPolicy,
    pending: &[(String, Connection, RoleInfo, i64, T)],
    audit_log: Option<&Path>,
) -> Result<Option<StandIn>, Failure> {
    // Asked again now that the change is recorded (an agent may have started meanwhile).
    let mut unled = Vec::new();
    for (target, connection, ..) in pending {
        if !agent_leads(connection).await? {
            unled.push(target.clone());
        }
    }
    if unled.is_empty() {
        return Ok(None);
    }
    let audit = audit_path(loaded, audit_log)?;
    out(&format!(
        "no curfew agent leads {}: this command applies the change itself, recorded in {}\n",
        unled
            .iter()
            .map(|t| format!("target {t}"))
            .collect::<Vec<_>>()
            .join(", "),
        audit.display()
    ))?;
    StandIn::start(
        loaded,
        &unled,
        &audit,
        curfew_postgres::PolicyTarget::from_policy,
    )
    .map(Some)
    .map_err(|e| Failure::Runtime(e.into()))
}

/// `curfew unlock`: release the incident lock on every primary and wait for the agent.
pub(crate) fn unlock(config: &Path, args: &UnlockArgs) -> Result<(), Failure> {
    let reason = match args.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => {
            return Err(Failure::Usage(
                "curfew unlock needs --reason \"...\": say why the lock is lifted (it is recorded in the audit log with who lifted it)".to_owned(),
            ));
        }
    };
    let loaded = policy_file::load(config)?;
    let targets = primaries(&loaded, args.target.as_deref())?;
    runtime()?.block_on(async {
        let mut released = Vec::new();
        for target in targets {
            let connection = open(target).await?;
            ensure_ledger(&connection, &target.name).await?;
            let role = find_role(&connection, &target.name, &args.role).await?;
            // Who: the real uid's user (never $USER) and the role curfew connected as.
            let by = curfew_audit::ledger_actor(&connection.info.role, Some(&reason)).to_ledger_text();
            let Some(row) = connection
                .release_incident_lock(role.oid, &by)
                .await
                .map_err(|e| Failure::Runtime(e.into()))?
            else {
                out_text(&format!(
                    "target {}: role \"{}\" has no incident lock\n",
                    target.name, visible(&role.name)
                ))?;
                continue;
            };
            released.push((target.name.clone(), connection, role, row.id, ()));
        }
        if released.is_empty() {
            return Err(Failure::Usage(format!(
                "role \"{}\" has no incident lock to lift",
                args.role
            )));
        }
        let stand_in = stand_in_for(&loaded, &released, args.audit_log.as_deref()).await?;
        let mut all_applied = true;
        for (name, connection, role, id, ()) in released {
            let done = connection.wait_for_lock_progress(role.oid, id, args.wait.to_std(), |p| {
                p.announced && (p.can_login || !p.remaining.is_empty() || !p.disabled_by_curfew)
            })
            .await
            .map_err(|e| Failure::Runtime(e.into()))?;
            match done {
                Some(p) if !p.remaining.is_empty() => out_text(&format!(
                    "target {}: incident lock lifted, but role \"{}\" stays locked by: {}\n",
                    name,
                    visible(&role.name),
                    p.remaining.join("; ")
                ))?,
                Some(p) if p.can_login => out_text(&format!(
                    "target {}: incident lock lifted; role \"{}\" can log in again\n",
                    name,
                    visible(&role.name)
                ))?,
                Some(_) => out_text(&format!(
                    "target {}: incident lock lifted; role \"{}\" was NOLOGIN before curfew locked it and stays so\n",
                    name,
                    visible(&role.name)
                ))?,
                None => {
                    all_applied = false;
                    eprintln!(
                        "curfew: target {}: the lock is released in the ledger, but no agent restored the login within {}",
                        name, args.wait
                    );
                }
            }
        }
        finish(stand_in, all_applied, "the release is in the ledger and will be applied when an agent runs").await
    })
}

/// `curfew locks`: the locks in force (or all, with --all).
pub(crate) fn list(config: &Path, args: &ListArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = primaries(&loaded, args.target.as_deref())?;
    runtime()?.block_on(async {
        let mut rows = Vec::new();
        for target in targets {
            let connection = open(target).await?;
            let status = connection
                .ledger_status()
                .await
                .map_err(|e| Failure::Runtime(e.into()))?;
            if status == curfew_postgres::LedgerStatus::Missing {
                continue;
            }
            if !status.readable() {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    status
                        .problem(&target.name, &connection.info.role, true)
                        .unwrap_or_default()
                )));
            }
            let roles = connection
                .roles()
                .await
                .map_err(|e| Failure::Runtime(e.into()))?;
            for lock in connection
                .locks(args.all)
                .await
                .map_err(|e| Failure::Runtime(e.into()))?
            {
                let login =
                    roles
                        .iter()
                        .find(|r| r.oid == lock.role_oid)
                        .map_or("role dropped", |r| {
                            if r.can_login { "enabled" } else { "disabled" }
                        });
                let time = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
                rows.push(vec![
                    target.name.clone(),
                    lock.role_name.clone(),
                    lock.rule.clone().unwrap_or_else(|| "incident".to_owned()),
                    curfew_audit::actor::ledger_label(&lock.created_by),
                    time(lock.created_at),
                    match (lock.released_at, lock.expires_at) {
                        (Some(at), _) => format!(
                            "released {} by {}",
                            time(at),
                            lock.released_by
                                .as_deref()
                                .map(curfew_audit::actor::ledger_label)
                                .unwrap_or_default()
                        ),
                        (None, Some(until)) => format!("until {}", time(until)),
                        (None, None) => "until lifted".to_owned(),
                    },
                    login.to_owned(),
                    lock.reason.clone(),
                ]);
            }
        }
        if rows.is_empty() {
            return out("no locks\n");
        }
        out(&crate::table::render(
            "",
            &[
                "TARGET",
                "ROLE",
                "BY RULE",
                "CREATED BY",
                "CREATED",
                "EXPIRY",
                "LOGIN",
                "REASON",
            ],
            &rows,
            &[],
        ))
    })
}

async fn find_role(connection: &Connection, target: &str, name: &str) -> Result<RoleInfo, Failure> {
    let roles = connection
        .roles()
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    roles.into_iter().find(|r| r.name == name).ok_or_else(|| {
        Failure::Usage(format!(
            "target {target} has no role named \"{name}\" (names are case-sensitive)"
        ))
    })
}
