//! `curfew init`: the ledger and the functions through which curfew's role writes it, installed
//! by an administrator, and the audit chain's anchor store (`crate::anchor`). curfew's role gets
//! `USAGE` on the schema, `SELECT` on the three tables and `EXECUTE` on the functions below
//! and `curfew.anchor`, nothing else: it never needs `CREATEROLE` (which on
//! PostgreSQL 14 and 15 lets a role grant itself `pg_execute_server_program`, a shell on the
//! server).
//!
//! The tables and functions belong to [`OWNER_ROLE`], a role nobody logs in as. The functions are
//! `SECURITY DEFINER` with a fixed `search_path`, `EXECUTE` revoked from `PUBLIC`. They switch
//! only `rolcanlogin`, only of ordinary roles (never a superuser, a `CREATEROLE` role, the owner,
//! or a role that may call the functions, such as curfew's own), record the change in the same
//! transaction, and, for the agent's writes, refuse unless the caller's leader lock session
//! (pid and start, as in `crate::leader`) is alive. The owner's attributes:
//!
//! - PostgreSQL 14 and 15: `CREATEROLE` (enough to alter non-superusers) and
//!   `pg_read_all_stats` (the fence reads the leader session's start);
//! - PostgreSQL 16 and later: `CREATEROLE` reaches only roles it holds `ADMIN OPTION` on, so when
//!   a superuser runs `curfew init` the owner is a `NOLOGIN SUPERUSER`. Nobody can log in as it or
//!   become it (it has no members); only the functions' fixed code runs with its rights, and
//!   they refuse everything but switching an ordinary role's login. (On PostgreSQL 14/15 a
//!   `CREATEROLE` role is as powerful as a superuser anyway, through the predefined roles it may
//!   grant itself.) When the provider's admin role runs it instead (managed PostgreSQL, no
//!   superuser), the owner gets `CREATEROLE`, and on 16+ it needs `ADMIN OPTION` on each role
//!   curfew locks: `GRANT <role> TO curfew_owner WITH ADMIN OPTION`.

use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::error::PgError;
use crate::names::{OWNER_ROLE, quote_identifier};
use crate::sql::install::{
    AGENT_ROLE, ROLE_EXISTS, SCHEMA_EXISTS, WHAT_AGENT, WHAT_SCHEMA, agent_role_note,
    create_owner_sql, decode_agent_role, functions_sql, grants_sql, owner_attributes,
    owner_setup_sql, schema_sql, tables_sql,
};
use crate::sql::ledger::{LEDGER_VERSION, SCHEMA_COMMENT};
use crate::sql::scalar;

/// What `curfew init` did on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Whether the schema was there before (made by an administrator or an older curfew).
    pub schema_existed: bool,
    /// Whether the owner role was created now.
    pub owner_created: bool,
    /// The owner's attributes, in words (`NOLOGIN SUPERUSER`, `NOLOGIN CREATEROLE`).
    pub owner_attributes: String,
    /// What the administrator still has to do, if anything.
    pub notes: Vec<String>,
}

impl Connection {
    /// Install (or upgrade) the ledger and its functions, as an administrator, for curfew's
    /// agent role `agent_role`: see the module documentation. Idempotent; an older ledger (made
    /// by curfew before version 2, owned by curfew's role) keeps its rows and changes hands.
    pub async fn install_ledger(&mut self, agent_role: &str) -> Result<Installed, PgError> {
        let target = self.target.clone();
        let admin = self.info.role.clone();
        let failed = |what: &'static str| {
            let target = target.clone();
            move |e: tokio_postgres::Error| PgError::query(&target, what, e)
        };
        let refuse = |why: String| PgError::Install {
            target: target.clone(),
            admin: admin.clone(),
            why,
        };
        if !self.info.superuser && !self.info.createrole {
            return Err(refuse("it is neither a superuser nor a role with CREATEROLE (the provider's admin role on managed PostgreSQL); connect as one with --admin-user".to_owned()));
        }
        let version_num = self.info.version_num;
        let superuser = self.info.superuser;
        let tx = self
            .client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let agent = tx
            .query_opt(AGENT_ROLE, &[&agent_role])
            .await
            .map_err(failed(WHAT_AGENT))?;
        let Some(agent) = agent else {
            return Err(refuse(format!(
                "there is no role named \"{agent_role}\" (--agent-role, or the user in the target's URL)"
            )));
        };
        let mut notes = Vec::new();
        let (agent_superuser, agent_createrole) = decode_agent_role(&agent, &target)?;
        notes.extend(agent_role_note(
            agent_role,
            agent_superuser,
            agent_createrole,
        ));
        let foreign = super::vetting::foreign_objects(&tx, agent_role)
            .await
            .map_err(failed("checking the existing curfew schema"))?;
        if !foreign.is_empty() {
            return Err(refuse(format!(
                "schema curfew or role {OWNER_ROLE} holds what curfew did not make and would run or grant with the owner's rights: {}; inspect it, then drop it (or DROP SCHEMA curfew CASCADE, losing the ledger's rows; REVOKE {OWNER_ROLE} FROM <member>) and run curfew init again",
                foreign.join("; ")
            )));
        }
        let owner_created = tx
            .query_opt(ROLE_EXISTS, &[&OWNER_ROLE])
            .await
            .map_err(failed("looking up the owner role"))?
            .is_none();
        if owner_created {
            tx.batch_execute(&create_owner_sql())
                .await
                .map_err(failed("creating the owner role"))?;
        }
        let owner_attributes = owner_attributes(superuser, version_num);
        if !superuser && version_num >= 160_000 {
            let owner_q = quote_identifier(OWNER_ROLE);
            notes.push(format!("on PostgreSQL 16 and later, {OWNER_ROLE} can change only the logins of roles it holds ADMIN OPTION on: for each role curfew may lock, run GRANT <role> TO {owner_q} WITH ADMIN OPTION; (or run curfew init as a superuser)"));
        }
        tx.batch_execute(&owner_setup_sql(owner_attributes, superuser))
            .await
            .map_err(failed("setting up the owner role"))?;
        let schema_existed = tx
            .query_one(SCHEMA_EXISTS, &[])
            .await
            .map_err(failed(WHAT_SCHEMA))
            .and_then(|r| scalar(&r, &target, WHAT_SCHEMA))?;
        let schema = schema_sql(schema_existed);
        let ddl = tables_sql();
        let functions = functions_sql();
        let grants = grants_sql(agent_role);
        for (what, sql) in [
            ("creating the curfew schema", schema.as_str()),
            ("creating the ledger's tables", ddl.as_str()),
            ("creating the ledger's functions", functions.as_str()),
            ("granting the ledger's privileges", grants.as_str()),
        ] {
            tx.batch_execute(sql).await.map_err(|e| {
                if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                    refuse(format!(
                        "{what}: {}",
                        e.as_db_error().map(|d| d.message()).unwrap_or_default()
                    ))
                } else {
                    PgError::query(&target, what, e)
                }
            })?;
        }
        tx.commit()
            .await
            .map_err(failed("committing the installation"))?;
        debug_assert!(SCHEMA_COMMENT.contains(&format!("(version {LEDGER_VERSION})")));
        Ok(Installed {
            schema_existed,
            owner_created,
            owner_attributes: owner_attributes.to_owned(),
            notes,
        })
    }
}
