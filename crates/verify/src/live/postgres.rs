//! The live test's enforcement point for PostgreSQL watched by the curfew agent: canary roles
//! made through curfew's own connection, logins over the target's URL, locks through the ledger.

use curfew_audit::SessionInfo;
use curfew_postgres::{CanarySession, Connection, LedgerProblem as _, Password, TargetSpec};
use jiff::Timestamp;

use super::target::{CanaryConnection, CanaryTarget, LockState};
use crate::Canary;

/// A PostgreSQL target as verify tests it.
pub(super) struct PostgresCanaries<'a> {
    /// curfew's own connection to the server (creates and drops canaries, watches sessions).
    pub(super) admin: &'a Connection,
    /// The target, for the canaries' own connections.
    pub(super) spec: &'a TargetSpec,
}

impl CanaryTarget for PostgresCanaries<'_> {
    type Session = CanarySession;
    type Secret = Password;
    type LockedRole = u32;

    fn session_list(&self) -> &str {
        "pg_stat_activity"
    }

    fn operator(&self) -> &str {
        &self.admin.info.role
    }

    async fn now(&self) -> Result<Timestamp, String> {
        self.admin.server_now().await.map_err(|e| e.to_string())
    }

    async fn create_canary(
        &self,
        role: &str,
        groups: &[String],
        valid_until: Timestamp,
    ) -> Result<Password, String> {
        let admin = self.admin;
        let password = Password::random().map_err(|e| format!("no random password: {e}"))?;
        admin
            .create_canary(role, &password, groups, valid_until)
            .await
            .map_err(|e| {
                format!(
                    "The canary role could not be created ({e}). curfew's role needs CREATEROLE{}.",
                    if groups.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " and, on PostgreSQL 16 and later, ADMIN OPTION on {} (GRANT {} TO {} WITH ADMIN OPTION)",
                            groups.join(", "),
                            groups.iter().map(|g| curfew_postgres::quote_identifier(g)).collect::<Vec<_>>().join(", "),
                            curfew_postgres::quote_identifier(&admin.info.role)
                        )
                    }
                )
            })?;
        Ok(password)
    }

    async fn drop_canary(&self, role: &str) -> Result<(), String> {
        self.admin
            .drop_canary(role)
            .await
            .map_err(|e| e.to_string())
    }

    async fn login(
        &self,
        canary: &Canary,
        password: &Password,
    ) -> Result<(CanarySession, String), String> {
        let session = CanarySession::open(
            self.spec,
            &canary.role,
            password,
            canary.database.as_deref(),
            &canary.application,
        )
        .await
        .map_err(|e| {
            format!(
                "The canary role was created but could not log in ({e}): pg_hba.conf must let a new role with a SCRAM password connect the way the target's URL does."
            )
        })?;
        let step = format!(
            "It logged in to database \"{}\" as application \"{}\" from {} (pid {}).",
            canary.database.as_deref().unwrap_or(&self.spec.url.dbname),
            canary.application,
            session
                .client_addr
                .map_or_else(|| "a Unix socket".to_owned(), |a| a.to_string()),
            session.pid
        );
        Ok((session, step))
    }

    async fn switch_off_own_limits(&self, session: &CanarySession) -> Result<String, String> {
        let switch_off = if self.admin.info.version_num >= 170_000 {
            "SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0; SET transaction_timeout = 0"
        } else {
            "SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0"
        };
        session
            .run(switch_off)
            .await
            .map_err(|e| format!("the canary could not set its own timeouts ({e})"))?;
        Ok(switch_off.to_owned())
    }

    async fn session_exists(&self, session: &CanarySession) -> Result<bool, String> {
        self.admin
            .session_exists(session.pid, session.backend_start)
            .await
            .map_err(|e| e.to_string())
    }

    async fn lock_problem(&self, target: &str) -> Option<String> {
        match self.admin.ledger_status().await {
            Ok(status) => status.problem(target, &self.admin.info.role, true),
            Err(e) => Some(e.to_string()),
        }
    }

    async fn lock_role(
        &self,
        role: &str,
        reason: &str,
        by: &str,
        until: Timestamp,
    ) -> Result<(u32, i64), String> {
        let admin = self.admin;
        let info = admin
            .roles()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.name == role)
            .ok_or_else(|| format!("role \"{role}\" is not in pg_roles"))?;
        let row = admin
            .create_incident_lock(&info, reason, by, Some(until))
            .await
            .map_err(|e| format!("The incident lock could not be recorded: {e}."))?;
        Ok((info.oid, row.id))
    }

    async fn lock_state(&self, role: u32, lock_id: i64) -> Result<LockState, String> {
        let p = self
            .admin
            .lock_progress(role, lock_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(LockState {
            announced: p.announced,
            can_login: p.can_login,
            sessions: p.sessions,
        })
    }

    async fn unlock_role(&self, role: u32, by: &str) -> Result<(), String> {
        self.admin
            .release_incident_lock(role, by)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl CanaryConnection for CanarySession {
    fn number(&self) -> i64 {
        i64::from(self.pid)
    }

    fn place(&self, seen: &mut curfew_policy::Session) {
        seen.pid = i64::from(self.pid);
        seen.backend_start = self.backend_start;
        seen.client_addr = self.client_addr.into();
    }

    fn is(&self, recorded: &SessionInfo) -> bool {
        recorded.pid == i64::from(self.pid) && recorded.backend_start == self.backend_start
    }

    fn describe(&self) -> String {
        format!("pid {} (backend started {})", self.pid, self.backend_start)
    }

    async fn run(&self, statement: &str) -> Result<(), String> {
        CanarySession::run(self, statement).await
    }

    fn sleep(&self, seconds: f64) -> tokio::task::JoinHandle<Result<(), String>> {
        CanarySession::sleep(self, seconds)
    }
}
