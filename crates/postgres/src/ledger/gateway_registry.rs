//! The gateway session registry, which `curfew init` installs next to the gateway's auth
//! function: `curfew.gateway_sessions`, one row per backend `curfew gateway` logged in (pid,
//! backend start, role, the client's address and port, the gateway's id), so that the agent and
//! whoever reads `pg_stat_activity` see who is behind the gateway, and so that a gateway session
//! carries a marker no client can forge (a startup setting such as `curfew.client_addr` is the
//! client's to set).
//!
//! - No login role writes the table: it belongs to [`GATEWAY_REGISTRY_OWNER`] (`NOLOGIN`, no
//!   attribute, no members), and only `curfew.register_gateway_session` writes it, `SECURITY
//!   DEFINER` with `search_path = pg_catalog, pg_temp`, every object and operator qualified,
//!   `EXECUTE` for the gateway's role alone (checked after the install, default privileges
//!   revoked).
//! - The function does not trust its caller: the pid must be a live client backend of the
//!   named role whose peer (`client_addr`, `client_port`) is the upstream socket the gateway
//!   names, on the caller's own host when the caller comes over TCP. The backend's start is
//!   taken from `pg_stat_activity`, so a reused pid never inherits a row (readers join on pid
//!   and start); rows of backends that are gone are deleted at each registration.
//! - Seeing other roles' client addresses takes `pg_read_all_stats`: the owner is a member of
//!   it and of nothing else. A dedicated owner, rather than the ledger's `curfew_owner` (a
//!   superuser on PostgreSQL 16+) or the auth function's owner (which reads verifiers), keeps
//!   each definer's rights to what its one function needs.
//! - curfew's agent role and `pg_read_all_stats` may read the table and the view
//!   `curfew.sessions` (client backends with the real client of gateway sessions).
//! - The same owner (it sees every backend) holds the admission claims the gateway counts a
//!   login against `max_sessions` with (`crate::sql::gateway_admission`): two more functions
//!   `EXECUTE` for the gateway's role alone, two tables nobody else may touch.

use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::error::PgError;
use crate::ledger::dedicated::{acl_mismatch, names, revoke_all_then_grant};
use crate::names::{GATEWAY_REGISTRY_OWNER, quote_identifier};
use crate::sql::dedicated::GATEWAY_REGISTRY;
use crate::sql::gateway_auth::ROLE_MEMBERS;
use crate::sql::gateway_registry::{expected_acl, grants_sql, registry_owner_sql, registry_sql};
use crate::sql::install::{ROLE_EXISTS, SCHEMA_EXISTS, WHAT_SCHEMA};
use crate::sql::scalar;

/// What installing the gateway session registry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRegistryInstalled {
    /// Whether it is installed now (false: the administrator is no superuser; see the notes).
    pub installed: bool,
    /// Whether the owner role was created now.
    pub owner_created: bool,
    /// What the administrator should know or still has to do.
    pub notes: Vec<String>,
}

impl Connection {
    /// Install (or replace) the gateway session registry, as an administrator, after the ledger
    /// (whose schema it lives in): readable by `agent_role` and `pg_read_all_stats`, written
    /// through the function only `gateway_role` may call. See the module documentation. A
    /// non-superuser administrator installs nothing and gets a note. Idempotent; the rows of
    /// live backends are kept.
    pub async fn install_gateway_registry(
        &mut self,
        agent_role: &str,
        gateway_role: &str,
    ) -> Result<GatewayRegistryInstalled, PgError> {
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
        if !self.info.superuser {
            return Ok(GatewayRegistryInstalled {
                installed: false,
                owner_created: false,
                notes: vec![format!(
                    "the gateway session registry (curfew.gateway_sessions) was not installed: its owner must be made a member of pg_read_all_stats, and role \"{admin}\" is no superuser; run curfew init again as a superuser (--admin-user postgres). Without it, gateway sessions look like sessions from the gateway's host"
                )],
            });
        }
        let tx = self
            .client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let schema = tx
            .query_one(SCHEMA_EXISTS, &[])
            .await
            .map_err(failed(WHAT_SCHEMA))
            .and_then(|r| scalar::<bool>(&r, &target, WHAT_SCHEMA))?;
        if !schema {
            return Err(refuse(
                "schema curfew does not exist; install the ledger first (curfew init does both)"
                    .to_owned(),
            ));
        }
        let owner_created = tx
            .query_opt(ROLE_EXISTS, &[&GATEWAY_REGISTRY_OWNER])
            .await
            .map_err(failed("looking up the gateway registry's owner"))?
            .is_none();
        if !owner_created {
            let other_roles = GATEWAY_REGISTRY.other_memberships_sql();
            for (sql, what) in [
                (ROLE_MEMBERS, "has members, who could act as it"),
                (
                    other_roles.as_str(),
                    "is a member of roles curfew did not grant it",
                ),
            ] {
                let found = names(&tx, sql, GATEWAY_REGISTRY_OWNER)
                    .await
                    .map_err(failed("looking up the gateway registry's owner"))?;
                if !found.is_empty() {
                    return Err(refuse(format!(
                        "role {GATEWAY_REGISTRY_OWNER} {what} ({}); it may have been made by someone else: check, then REVOKE the memberships (or DROP OWNED BY {owner}; DROP ROLE {owner};) and run curfew init again",
                        found.join(", "),
                        owner = quote_identifier(GATEWAY_REGISTRY_OWNER)
                    )));
                }
            }
        }
        let owner = registry_owner_sql(owner_created);
        let registry = registry_sql(agent_role, gateway_role);
        for (what, sql) in [
            ("setting up the gateway registry's owner", owner.as_str()),
            ("creating the gateway session registry", registry.as_str()),
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
        // Default privileges (global or IN SCHEMA curfew) may have granted more at CREATE, and
        // an earlier install may have granted another agent or gateway role: revoke every
        // grant, grant again, then check.
        revoke_all_then_grant(
            &tx,
            &GATEWAY_REGISTRY,
            &grants_sql(agent_role, gateway_role),
        )
        .await
        .map_err(failed("granting the gateway registry's privileges"))?;
        let expected = expected_acl(agent_role, gateway_role);
        if let Some(acl) = acl_mismatch(&tx, &GATEWAY_REGISTRY, &expected)
            .await
            .map_err(failed("checking the gateway registry's grants"))?
        {
            return Err(refuse(format!(
                "the gateway registry's grants are {acl:?} after the install, not {expected:?}; nothing was installed"
            )));
        }
        tx.commit()
            .await
            .map_err(failed("committing the gateway session registry"))?;
        Ok(GatewayRegistryInstalled {
            installed: true,
            owner_created,
            notes: Vec::new(),
        })
    }
}
