//! The live test's enforcement point for MariaDB watched by the curfew agent: canary accounts
//! made and dropped through curfew's own connection (`curfew_mysql`'s canary calls), logins
//! over the target's endpoint and TLS, locks through the MariaDB ledger as `curfew lock` makes
//! them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use curfew_audit::SessionInfo;
use curfew_backend::LoginLedger as _;
use curfew_mysql::{CanarySeen, Connection, Flavor, MysqlTarget};
use jiff::Timestamp;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::target::{CanaryConnection, CanaryTarget, LockState};
use crate::Canary;

/// The host part of every canary account: a policy's role is a MariaDB user name and covers
/// every account with it, so the host changes nothing the agent matches, and `'%'` lets the
/// canary log in from wherever verify runs (as the target's URL reaches the server).
pub(super) const CANARY_HOST: &str = "%";

/// Why a canary in a `member_of` scope is not made on MariaDB.
pub(super) const NO_ROLES: &str = "not tested on MariaDB: roles are not read (member_of matches no MariaDB session, so the agent does not enforce this scope there)";

/// What the server says to a login whose account is locked (error 4151).
const LOCKED: &str = "this account is locked";

/// A MariaDB target as verify tests it.
pub(super) struct MariaDbCanaries<'a> {
    /// curfew's own connection to the server (creates and drops canaries, watches sessions,
    /// reads the ledger through its own connection).
    admin: tokio::sync::Mutex<Connection>,
    /// The target, for the canaries' own connections (and a fresh connection at cleanup).
    spec: &'a MysqlTarget,
    /// curfew's account, `user`@`host`.
    operator: String,
    flavor: Flavor,
    /// The users verify locked, by their ledger id.
    locked: Mutex<BTreeMap<u32, String>>,
}

impl<'a> MariaDbCanaries<'a> {
    pub(super) fn new(admin: Connection, spec: &'a MysqlTarget) -> MariaDbCanaries<'a> {
        let info = admin.info();
        let operator = curfew_mysql::account_name(&info.user, &info.host);
        let flavor = info.flavor;
        MariaDbCanaries {
            admin: tokio::sync::Mutex::new(admin),
            spec,
            operator,
            flavor,
            locked: Mutex::new(BTreeMap::new()),
        }
    }

    fn target(&self) -> &str {
        &self.spec.name
    }

    /// The user verify locked with ledger id `id`.
    fn locked_user(&self, id: u32) -> Result<String, String> {
        lock_map(&self.locked)
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("verify holds no lock on ledger id {id}"))
    }
}

fn lock_map<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A canary account's password: letters and digits only (`IDENTIFIED BY` takes a literal),
/// never printed.
pub(super) struct CanaryPassword(String);

impl CanaryPassword {
    fn random() -> std::io::Result<CanaryPassword> {
        curfew_postgres::random_hex(24).map(CanaryPassword)
    }
}

/// A canary's open session on MariaDB.
pub(super) struct MariaDbSession {
    /// The connection, shared with a statement running in the background.
    conn: Arc<tokio::sync::Mutex<Conn>>,
    /// Its connection id.
    id: u64,
    /// The canary's user name.
    user: String,
    /// How the agent's snapshot sees it.
    seen: CanarySeen,
}

impl CanaryTarget for MariaDbCanaries<'_> {
    type Session = MariaDbSession;
    type Secret = CanaryPassword;
    type LockedRole = u32;

    fn session_list(&self) -> &str {
        "information_schema.PROCESSLIST"
    }

    fn operator(&self) -> &str {
        &self.operator
    }

    fn cannot_make(&self, canary: &Canary) -> Option<&str> {
        (!canary.groups.is_empty()).then_some(NO_ROLES)
    }

    fn open_transaction(&self) -> &str {
        // InnoDB lists a transaction (what the agent reads as idle in transaction) only once
        // it has a read view or touched a table; a bare BEGIN has neither.
        "START TRANSACTION WITH CONSISTENT SNAPSHOT; SELECT 1"
    }

    fn sleep_statement(&self, seconds: u64) -> String {
        format!("SELECT SLEEP({seconds})")
    }

    fn locked_login_refusal(&self) -> &str {
        LOCKED
    }

    async fn now(&self) -> Result<Timestamp, String> {
        self.admin
            .lock()
            .await
            .server_now()
            .await
            .map_err(|e| e.to_string())
    }

    async fn create_canary(
        &self,
        role: &str,
        groups: &[String],
        _valid_until: Timestamp,
    ) -> Result<CanaryPassword, String> {
        if !groups.is_empty() {
            return Err(NO_ROLES.to_owned());
        }
        let password = CanaryPassword::random().map_err(|e| format!("no random password: {e}"))?;
        let mut admin = self.admin.lock().await;
        curfew_mysql::create_canary_account(
            admin.inspection(),
            self.target(),
            role,
            CANARY_HOST,
            &password.0,
        )
        .await
        .map_err(|e| {
            format!(
                "The canary account could not be created ({e}). curfew's account makes canaries through the procedure curfew.create_canary, which `curfew init --admin-user ADMIN` installs and grants to {} (it needs no CREATE USER).",
                self.operator
            )
        })?;
        Ok(password)
    }

    /// MariaDB accounts do not expire: verify drops it whatever happens.
    fn created_step(&self, role: &str, _groups: &[String], _valid_until: Timestamp) -> String {
        format!(
            "Created account {} with a random password and no privileges (dropped at the end of the run, whatever happens).",
            curfew_mysql::account_name(role, CANARY_HOST)
        )
    }

    async fn drop_canary(&self, role: &str) -> Result<(), String> {
        let first = {
            let mut admin = self.admin.lock().await;
            curfew_mysql::drop_canary_account(admin.inspection(), self.target(), role, CANARY_HOST)
                .await
        };
        if first.is_ok() {
            return Ok(());
        }
        // A test interrupted mid-statement may leave curfew's connection unusable: a fresh one.
        let mut fresh = curfew_mysql::connect(self.spec)
            .await
            .map_err(|e| e.to_string())?
            .connection;
        curfew_mysql::drop_canary_account(fresh.inspection(), self.target(), role, CANARY_HOST)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn login(
        &self,
        canary: &Canary,
        password: &CanaryPassword,
    ) -> Result<(MariaDbSession, String), String> {
        let conn =
            curfew_mysql::connect_canary(self.spec, &canary.role, &password.0, &canary.application)
                .await
                .map_err(|e| {
                    format!(
                        "The canary account was created but could not log in ({e}): the server must let a new account with a password ({}) connect the way the target's URL does",
                        curfew_mysql::account_name(&canary.role, CANARY_HOST)
                    )
                })?;
        let id = u64::from(conn.id());
        let seen = {
            let mut admin = self.admin.lock().await;
            curfew_mysql::canary_seen(admin.inspection(), self.target(), self.flavor, id)
                .await
                .map_err(|e| e.to_string())?
        };
        let seen = seen.ok_or_else(|| {
            format!(
                "the canary's session (connection {id}) is not in information_schema.PROCESSLIST"
            )
        })?;
        let step = format!(
            "It logged in as {} without a default database, presenting program name \"{}\", from {} (connection {id}).",
            curfew_mysql::account_name(&canary.role, CANARY_HOST),
            canary.application,
            from_where(&seen.host)
        );
        let session = MariaDbSession {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            id,
            user: canary.role.clone(),
            seen,
        };
        Ok((session, step))
    }

    async fn switch_off_own_limits(&self, session: &MariaDbSession) -> Result<String, String> {
        let statement = curfew_mysql::switch_off_statement(self.flavor);
        session
            .run(statement)
            .await
            .map_err(|e| format!("the canary could not set its own timeouts ({e})"))?;
        Ok(statement.to_owned())
    }

    async fn session_exists(&self, session: &MariaDbSession) -> Result<bool, String> {
        let mut admin = self.admin.lock().await;
        curfew_mysql::session_exists(admin.inspection(), self.target(), session.id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn lock_problem(&self, target: &str) -> Option<String> {
        let admin = self.admin.lock().await;
        match admin.ledger_status().await {
            Ok(status) => admin.login_change_problem(target, status, true),
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
        let row = self
            .admin
            .lock()
            .await
            .create_incident_lock(role, reason, by, Some(until))
            .await
            .map_err(|e| format!("The incident lock could not be recorded: {e}."))?
            .ok_or_else(|| format!("user \"{role}\" has no account in mysql.global_priv"))?;
        lock_map(&self.locked).insert(row.role_oid, role.to_owned());
        Ok((row.role_oid, row.id))
    }

    async fn lock_state(&self, role: u32, lock_id: i64) -> Result<LockState, String> {
        let user = self.locked_user(role)?;
        let p = self
            .admin
            .lock()
            .await
            .lock_progress(&user, lock_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(LockState {
            announced: p.announced,
            can_login: p.can_login,
            sessions: p.sessions,
        })
    }

    async fn unlock_role(&self, role: u32, by: &str) -> Result<(), String> {
        let user = self.locked_user(role)?;
        self.admin
            .lock()
            .await
            .release_incident_locks(&user, by)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Where a session comes from, from the process list's `HOST`.
fn from_where(host: &str) -> String {
    match curfew_mysql::client_address(host) {
        Some(addr) => addr.to_string(),
        None if host == "localhost" => "the server's socket".to_owned(),
        None => format!(
            "\"{}\" (a name, not an address)",
            curfew_policy::visible(host)
        ),
    }
}

/// Whether a recorded session is connection `id` of `user` (the start is not compared: see
/// [`MariaDbSession::is`]).
fn same_session(id: u64, user: &str, recorded: &SessionInfo) -> bool {
    u64::try_from(recorded.pid).is_ok_and(|pid| pid == id) && recorded.role == user
}

impl CanaryConnection for MariaDbSession {
    fn number(&self) -> i64 {
        i64::try_from(self.id).unwrap_or(i64::MAX)
    }

    /// As the agent's snapshot has it: the address (a socket, an address, or a host name the
    /// server resolved), the database (empty without one), no groups (roles are not read), the
    /// start estimated.
    fn place(&self, seen: &mut curfew_policy::Session) {
        seen.pid = self.number();
        seen.backend_start = self.seen.started_at;
        seen.client_addr = curfew_mysql::client_origin(&self.seen.host);
        seen.database = Arc::from(self.seen.database.as_deref().unwrap_or(""));
        seen.member_of = Arc::from(Vec::new());
    }

    /// The same connection id and user: the recorded start is the agent's own estimate (at
    /// its first sight), not comparable exactly with verify's, and the user is unique to the
    /// run.
    fn is(&self, recorded: &SessionInfo) -> bool {
        same_session(self.id, &self.user, recorded)
    }

    fn describe(&self) -> String {
        format!(
            "connection {} of user \"{}\" (started about {})",
            self.id,
            self.user,
            self.seen
                .started_at
                .round(jiff::Unit::Second)
                .unwrap_or(self.seen.started_at)
        )
    }

    fn numbered(&self) -> String {
        format!("connection {}", self.id)
    }

    async fn run(&self, statement: &str) -> Result<(), String> {
        self.conn
            .lock()
            .await
            .query_drop(statement)
            .await
            .map_err(|e| e.to_string())
    }

    fn sleep(&self, seconds: f64) -> tokio::task::JoinHandle<Result<(), String>> {
        let conn = self.conn.clone();
        let statement = format!("SELECT SLEEP({seconds:.0})");
        tokio::spawn(async move {
            conn.lock()
                .await
                .query_drop(statement)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_placed_where_the_agent_sees_it() {
        assert_eq!(from_where("127.0.0.1:50712"), "127.0.0.1");
        assert_eq!(from_where("localhost"), "the server's socket");
        assert!(from_where("db-client:50712").contains("not an address"));
    }

    #[test]
    fn a_record_is_the_canary_s_by_connection_id_and_user_whatever_its_start() {
        let recorded = |pid: i64, role: &str, start: i64| SessionInfo {
            pid,
            backend_start: Timestamp::from_second(start).unwrap_or_default(),
            role: role.to_owned(),
            database: String::new(),
            client_addr: Some("127.0.0.1".to_owned()),
            application: String::new(),
            state: "idle".to_owned(),
        };
        // The agent's estimate of the start differs from verify's: still the canary.
        assert!(same_session(
            42,
            "curfew_verify_x",
            &recorded(42, "curfew_verify_x", 1_000)
        ));
        assert!(same_session(
            42,
            "curfew_verify_x",
            &recorded(42, "curfew_verify_x", 1_003)
        ));
        // Another user on the same id (after a restart), or another id: not the canary.
        assert!(!same_session(
            42,
            "curfew_verify_x",
            &recorded(42, "kim", 1_000)
        ));
        assert!(!same_session(
            42,
            "curfew_verify_x",
            &recorded(43, "curfew_verify_x", 1_000)
        ));
        assert!(!same_session(
            42,
            "curfew_verify_x",
            &recorded(-42, "curfew_verify_x", 1_000)
        ));
    }
}
