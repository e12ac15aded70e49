//! A primary as `curfew lock`, `unlock` and `locks` use it, whichever database it runs: its
//! ledger of login locks, its roles, and whether an enforcing agent leads it. One type, so a
//! policy mixing PostgreSQL and MariaDB targets is checked, recorded and waited on in one pass.

use std::time::{Duration, Instant};

use curfew_backend::{LedgerStatus, LockProgress, LockRow, LoginLedger as _, RoleInfo};
use curfew_policy::Target;
use curfew_postgres::{LedgerProblem as _, TargetSpec};
use jiff::Timestamp;

use crate::error::OpsError;
use crate::step::{Step, Warning};
use crate::targets::{Progress, report};

/// How often a lock's progress is read while waiting for an agent.
const POLL: Duration = Duration::from_millis(200);

/// An open connection to one primary.
// A handful per command: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Primary {
    /// A PostgreSQL primary.
    Postgres(curfew_postgres::Connection),
    /// A MariaDB/MySQL primary.
    Mysql(curfew_mysql::Connection),
}

impl Primary {
    /// Connect to `target` by its URL's scheme, reporting the connection's warnings.
    pub(crate) async fn open(
        target: &Target,
        progress: &mut impl Progress,
    ) -> Result<Primary, OpsError> {
        let (primary, warnings) = if curfew_mysql::is_mysql_url(&target.url.text) {
            let spec = curfew_mysql::MysqlTarget::from_policy(target)?;
            let connected = curfew_mysql::connect(&spec).await?;
            (Primary::Mysql(connected.connection), connected.warnings)
        } else {
            let connected = curfew_postgres::connect(&TargetSpec::from_policy(target)?).await?;
            (Primary::Postgres(connected.connection), connected.warnings)
        };
        for warning in warnings {
            report(progress, Step::Warning(Warning::Connection(warning)))?;
        }
        Ok(primary)
    }

    /// The role (MariaDB: the user) curfew connected as.
    pub(crate) fn own_role(&self) -> &str {
        match self {
            Primary::Postgres(c) => &c.info.role,
            Primary::Mysql(c) => c.own_role(),
        }
    }

    /// The ledger's state, and what an administrator must run when curfew's role cannot use it.
    pub(crate) async fn ledger(
        &self,
        target: &str,
    ) -> Result<(LedgerStatus, Option<String>), OpsError> {
        Ok(match self {
            Primary::Postgres(c) => {
                let status = c.ledger_status().await?;
                (status, status.problem(target, &c.info.role, true))
            }
            Primary::Mysql(c) => {
                let status = c.ledger_status().await?;
                let problem = (status != LedgerStatus::Ready).then(|| {
                    c.login_change_problem(target, status, true)
                        .unwrap_or_else(|| {
                            format!("target \"{target}\": the ledger is not ready ({status:?})")
                        })
                });
                (status, problem)
            }
        })
    }

    /// The ledger must be installed and usable by curfew's role (`curfew init`, as an
    /// administrator, installs it).
    pub(crate) async fn ensure_ledger(&self, target: &str) -> Result<(), OpsError> {
        match self.ledger(target).await?.1 {
            Some(problem) => Err(OpsError::Ledger { problem }),
            None => Ok(()),
        }
    }

    /// Every role (MariaDB: every user, with its accounts' state).
    pub(crate) async fn roles(&self) -> Result<Vec<RoleInfo>, OpsError> {
        Ok(match self {
            Primary::Postgres(c) => c.roles().await?,
            Primary::Mysql(c) => c.roles().await?,
        })
    }

    /// The role named `name` (exactly), or why not.
    pub(crate) async fn role(&self, target: &str, name: &str) -> Result<RoleInfo, OpsError> {
        self.roles()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| OpsError::NoSuchRole {
                target: target.to_owned(),
                role: name.to_owned(),
            })
    }

    /// Whether an agent enforcing a policy (not a dry run) holds the leader lock.
    pub(crate) async fn enforcing_agent_leads(&mut self) -> Result<bool, OpsError> {
        Ok(match self {
            Primary::Postgres(c) => c.enforcing_agent_leads().await?,
            Primary::Mysql(c) => c.enforcing_agent_leads().await?,
        })
    }

    /// Record an incident lock on `role`; the lock's id.
    pub(crate) async fn create_incident_lock(
        &self,
        target: &str,
        role: &RoleInfo,
        reason: &str,
        by: &str,
        until: Option<Timestamp>,
    ) -> Result<i64, OpsError> {
        match self {
            Primary::Postgres(c) => c
                .create_incident_lock(role, reason, by, until)
                .await
                .map(|row| row.id)
                .map_err(|e| match e {
                    // The ledger's functions refuse administrators, curfew's own role, ...
                    curfew_postgres::PgError::LoginRefused { detail, .. } => {
                        OpsError::Refused { detail }
                    }
                    e => OpsError::Postgres(e),
                }),
            Primary::Mysql(c) => c
                .create_incident_lock(&role.name, reason, by, until)
                .await?
                .map(|row| row.id)
                .ok_or_else(|| OpsError::NoSuchRole {
                    target: target.to_owned(),
                    role: role.name.clone(),
                }),
        }
    }

    /// Release the incident lock on `role`; the released lock's id, `None` when it had none.
    pub(crate) async fn release_incident_lock(
        &self,
        role: &RoleInfo,
        by: &str,
    ) -> Result<Option<i64>, OpsError> {
        Ok(match self {
            Primary::Postgres(c) => c.release_incident_lock(role.oid, by).await?.map(|r| r.id),
            Primary::Mysql(c) => c
                .release_incident_locks(&role.name, by)
                .await?
                .last()
                .copied(),
        })
    }

    /// Where lock `lock_id` on `role` stands.
    pub(crate) async fn lock_progress(
        &self,
        role: &RoleInfo,
        lock_id: i64,
    ) -> Result<LockProgress, OpsError> {
        Ok(match self {
            Primary::Postgres(c) => c.lock_progress(role.oid, lock_id).await?,
            Primary::Mysql(c) => c.lock_progress(&role.name, lock_id).await?,
        })
    }

    /// Polls the progress of lock `lock_id` on `role` until `done` holds (`Some`, the
    /// progress then), or `limit` has passed (`None`).
    pub(crate) async fn wait_for_lock_progress(
        &self,
        role: &RoleInfo,
        lock_id: i64,
        limit: Duration,
        done: impl Fn(&LockProgress) -> bool,
    ) -> Result<Option<LockProgress>, OpsError> {
        let started = Instant::now();
        loop {
            let progress = self.lock_progress(role, lock_id).await?;
            if done(&progress) {
                return Ok(Some(progress));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The locks in force (every lock row with `history`).
    pub(crate) async fn lock_rows(&self, history: bool) -> Result<Vec<LockRow>, OpsError> {
        Ok(match self {
            Primary::Postgres(c) => c.locks(history).await?,
            Primary::Mysql(c) => c.lock_rows(history).await?,
        })
    }
}
