//! `curfew init` (install the ledger as an administrator) and `curfew locks` (the locks each
//! primary's ledger holds).

use std::path::PathBuf;

use curfew_policy::Target;
use curfew_postgres::{LedgerStatus, TargetSpec};
use jiff::Timestamp;

use crate::error::OpsError;
use crate::primary::Primary;
use crate::step::Step;
use crate::targets::{Progress, report};

/// What `curfew init` asks for.
#[derive(Debug, Clone)]
pub struct InitRequest<'a> {
    /// The primaries to install on ([`crate::primaries`]).
    pub targets: Vec<&'a Target>,
    /// The role granted the ledger's use (default: the user in the target's URL).
    pub agent_role: Option<&'a str>,
    /// Connect as this administrator instead of the URL's user.
    pub admin_user: Option<&'a str>,
    /// The administrator's password file.
    pub admin_password_file: Option<PathBuf>,
    /// The policy's `[gateway]`, whose auth function is installed on the primary it forwards
    /// to (`None`: no gateway, nothing installed for one).
    pub gateway: Option<&'a curfew_policy::Gateway>,
}

/// `curfew init`: as an administrator, install the ledger and its functions on each primary
/// and grant curfew's role their use. Connection warnings are not reported (the administrator's
/// session is not the agent's).
pub async fn init(request: &InitRequest<'_>, progress: &mut impl Progress) -> Result<(), OpsError> {
    for target in &request.targets {
        let mut spec = TargetSpec::from_policy(target)?;
        let agent_role = request
            .agent_role
            .map_or_else(|| spec.url.user.clone(), str::to_owned);
        if let Some(admin) = request.admin_user {
            spec.url.user = admin.to_owned();
            spec.password_file.clone_from(&request.admin_password_file);
        }
        let mut connection = curfew_postgres::connect(&spec).await?.connection;
        let installed = connection.install_ledger(&agent_role).await?;
        let agent = agent_role.clone();
        report(
            progress,
            Step::Installed {
                target: target.name.clone(),
                agent_role,
                schema_existed: installed.schema_existed,
                owner_attributes: installed.owner_attributes,
            },
        )?;
        for note in installed.notes {
            let step = Step::Note {
                target: target.name.clone(),
                note,
            };
            report(progress, step)?;
        }
        if let Some(gateway) = request.gateway.filter(|g| g.target == target.name) {
            install_gateway_auth(&mut connection, &target.name, gateway, progress).await?;
            install_gateway_registry(&mut connection, &target.name, &agent, gateway, progress)
                .await?;
        }
    }
    Ok(())
}

/// The gateway's auth function (`curfew.gateway_secret`) on the primary the gateway forwards
/// to, executable by the gateway's own role only.
async fn install_gateway_auth(
    connection: &mut curfew_postgres::Connection,
    target: &str,
    gateway: &curfew_policy::Gateway,
    progress: &mut impl Progress,
) -> Result<(), OpsError> {
    let settings =
        curfew_postgres::GatewayAuth::for_gateway(gateway).ok_or(OpsError::GatewayRoleUnknown)?;
    let installed = connection.install_gateway_auth(&settings).await?;
    if installed.installed {
        report(
            progress,
            Step::GatewayAuthInstalled {
                target: target.to_owned(),
                gateway_role: settings.gateway_role.clone(),
                serve_members_of: settings.serve_members_of.clone(),
                serve_superusers: settings.serve_superusers,
            },
        )?;
    }
    for note in installed.notes {
        let step = Step::Note {
            target: target.to_owned(),
            note,
        };
        report(progress, step)?;
    }
    Ok(())
}

/// The gateway session registry (`curfew.gateway_sessions`, written through
/// `curfew.register_gateway_session` by the gateway's role only, read by curfew's role) on the
/// primary the gateway forwards to.
async fn install_gateway_registry(
    connection: &mut curfew_postgres::Connection,
    target: &str,
    agent_role: &str,
    gateway: &curfew_policy::Gateway,
    progress: &mut impl Progress,
) -> Result<(), OpsError> {
    let gateway_role = gateway
        .own_role()
        .ok_or(OpsError::GatewayRoleUnknown)?
        .to_owned();
    let installed = connection
        .install_gateway_registry(agent_role, &gateway_role)
        .await?;
    if installed.installed {
        report(
            progress,
            Step::GatewayRegistryInstalled {
                target: target.to_owned(),
                gateway_role,
                agent_role: agent_role.to_owned(),
            },
        )?;
    }
    for note in installed.notes {
        let step = Step::Note {
            target: target.to_owned(),
            note,
        };
        report(progress, step)?;
    }
    Ok(())
}

/// One lock a ledger holds, for `curfew locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockListing {
    /// Target name.
    pub target: String,
    /// The role's name when it was locked.
    pub role: String,
    /// The `lock_logins` rule that made it; `None` for an incident lock.
    pub rule: Option<String>,
    /// Who made it, as a label.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it lapses by itself.
    pub expires_at: Option<Timestamp>,
    /// When it was released and by whom (as a label), if it was.
    pub released: Option<(Timestamp, String)>,
    /// The role's login now.
    pub login: Login,
    /// Why it was made.
    pub reason: String,
}

/// A locked role's login as the server has it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// The role can log in.
    Enabled,
    /// It cannot.
    Disabled,
    /// The role no longer exists.
    RoleDropped,
}

/// `curfew locks`: the locks in force on each primary (every lock with `history`), targets
/// without a ledger left out.
pub async fn list(
    targets: &[&Target],
    history: bool,
    progress: &mut impl Progress,
) -> Result<Vec<LockListing>, OpsError> {
    let mut listed = Vec::new();
    for target in targets {
        let connection = Primary::open(target, progress).await?;
        let (status, problem) = connection.ledger(&target.name).await?;
        if status == LedgerStatus::Missing {
            continue;
        }
        if !status.readable() {
            return Err(OpsError::Ledger {
                problem: problem.unwrap_or_default(),
            });
        }
        let roles = connection.roles().await?;
        for lock in connection.lock_rows(history).await? {
            let login =
                roles
                    .iter()
                    .find(|r| r.oid == lock.role_oid)
                    .map_or(Login::RoleDropped, |r| {
                        if r.can_login {
                            Login::Enabled
                        } else {
                            Login::Disabled
                        }
                    });
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
