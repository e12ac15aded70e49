//! `curfew init`, `curfew lock`, `curfew unlock`, `curfew locks`: the login-lock ledger from the
//! command line. The work is `curfew_ops`' (record on every primary, wait for the agent, run
//! the stand-in), on PostgreSQL and MariaDB/MySQL targets alike; here the arguments, and the
//! printing of its steps and rows. `init` on MariaDB/MySQL goes through `mariadb_init`.

use std::path::Path;

use anyhow::Context;
use curfew_ops::{Completion, Login};
use jiff::Timestamp;

use crate::databases::AnyTarget;
use crate::exit::{Failure, out};
use crate::policy_file;
use crate::steps;
use crate::when::parse_instant;

/// Options of `curfew init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// The role curfew's agent connects as, granted the use of the ledger (default: the user in
    /// the target's URL). On MariaDB/MySQL a user name: every account with it is granted.
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

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Runtime::new().context("starting the runtime")?)
}

/// `curfew init`: as an administrator, install the ledger and its functions on each primary
/// and grant curfew's role their use (MariaDB/MySQL targets: `mariadb_init`).
pub(crate) fn init(config: &Path, args: &InitArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let (mysql, postgres): (Vec<_>, Vec<_>) =
        curfew_ops::primaries(&loaded, args.target.as_deref())?
            .into_iter()
            .partition(|t| crate::databases::is_mysql(t));
    let runtime = runtime()?;
    if !postgres.is_empty() {
        let request = curfew_ops::InitRequest {
            targets: postgres,
            agent_role: args.agent_role.as_deref(),
            admin_user: args.admin_user.as_deref(),
            admin_password_file: args.admin_password_file.clone(),
            gateway: loaded.policy.gateway.as_ref(),
        };
        runtime.block_on(curfew_ops::init(&request, &mut steps::print))?;
    }
    let request = super::mariadb_init::MariaInit {
        agent_user: args.agent_role.as_deref(),
        admin_user: args.admin_user.as_deref(),
        admin_password_file: args.admin_password_file.clone(),
    };
    runtime.block_on(super::mariadb_init::init(&mysql, &request))
}

/// `curfew lock`: record an incident lock on every primary and wait for the agent to apply it.
pub(crate) fn lock(config: &Path, args: &LockArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = curfew_ops::primaries(&loaded, args.target.as_deref())?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_instant(u, Timestamp::now()).map_err(Failure::Usage))
        .transpose()?;
    let request = curfew_ops::LockRequest {
        targets,
        role: &args.role,
        reason: &args.reason,
        until,
        wait: args.wait,
        audit_log: args.audit_log.as_deref(),
    };
    let completion = runtime()?.block_on(curfew_ops::lock(
        &loaded,
        &request,
        AnyTarget::from_policy,
        &mut steps::print,
    ))?;
    finished(
        completion,
        "the lock is in the ledger and will be applied when an agent runs",
    )
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
    let targets = curfew_ops::primaries(&loaded, args.target.as_deref())?;
    let request = curfew_ops::UnlockRequest {
        targets,
        role: &args.role,
        reason: &reason,
        wait: args.wait,
        audit_log: args.audit_log.as_deref(),
    };
    let completion = runtime()?.block_on(curfew_ops::unlock(
        &loaded,
        &request,
        AnyTarget::from_policy,
        &mut steps::print,
    ))?;
    finished(
        completion,
        "the release is in the ledger and will be applied when an agent runs",
    )
}

/// Exit 1 (with `pending`) unless every change was applied.
fn finished(completion: Completion, pending: &'static str) -> Result<(), Failure> {
    match completion {
        Completion::Applied => Ok(()),
        Completion::Pending => Err(Failure::Runtime(anyhow::anyhow!(pending))),
    }
}

/// `curfew locks`: the locks in force (or all, with --all).
pub(crate) fn list(config: &Path, args: &ListArgs) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = curfew_ops::primaries(&loaded, args.target.as_deref())?;
    let locks = runtime()?.block_on(curfew_ops::list(&targets, args.all, &mut steps::print))?;
    if locks.is_empty() {
        return out("no locks\n");
    }
    let time = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let rows: Vec<Vec<String>> = locks
        .into_iter()
        .map(|lock| {
            vec![
                lock.target,
                lock.role,
                lock.rule.unwrap_or_else(|| "incident".to_owned()),
                lock.created_by,
                time(lock.created_at),
                match (lock.released, lock.expires_at) {
                    (Some((at, by)), _) => format!("released {} by {by}", time(at)),
                    (None, Some(until)) => format!("until {}", time(until)),
                    (None, None) => "until lifted".to_owned(),
                },
                match lock.login {
                    Login::Enabled => "enabled",
                    Login::Disabled => "disabled",
                    Login::RoleDropped => "role dropped",
                }
                .to_owned(),
                lock.reason,
            ]
        })
        .collect();
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
}
