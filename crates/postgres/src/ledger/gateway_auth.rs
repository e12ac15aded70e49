//! The gateway's auth function, which `curfew init` installs next to the ledger:
//! `curfew.gateway_secret(role_name)`, through which `curfew gateway` fetches the SCRAM
//! verifier of a role a client logs in as (as PgBouncer's `auth_query` and Odyssey's
//! `auth_query` do), so that SCRAM runs end to end and no password crosses the gateway.
//!
//! Whoever holds a verifier can attack its password offline, so the function hands out as
//! little as it can:
//!
//! - it is `SECURITY DEFINER` with `search_path = pg_catalog, pg_temp` and every catalog object
//!   qualified, owned by [`GATEWAY_AUTH_OWNER`], a `NOLOGIN SUPERUSER` with no members (only a
//!   superuser can read `pg_authid`), and nobody else may replace it;
//! - `EXECUTE` is revoked from `PUBLIC` and granted to the gateway's own role alone;
//! - it returns no row for an unknown role, a `NOLOGIN` role, a role whose `VALID UNTIL` has
//!   passed, a superuser (unless the gateway serves superusers) and, when the gateway serves
//!   only the members of a role, for any other role;
//! - for a served role it returns the kind of its secret (`scram-sha-256`, `md5`, `password`,
//!   `none`) and the verifier only when it is SCRAM: an MD5 hash is as good as the password.
//!
//! The served set is baked into the function's text at install (role names as hex, so no name
//! can change the SQL); installing again replaces it, grants included.

use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::error::PgError;
use crate::names::{GATEWAY_AUTH_OWNER, quote_identifier};
use crate::sql::gateway_auth::{OWNER_MEMBERS, ROLE_SUPERUSER, function_sql, owner_sql};
use crate::sql::install::{ROLE_EXISTS, SCHEMA_EXISTS, WHAT_SCHEMA};
use crate::sql::scalar;

/// Which roles the gateway serves and which role it fetches their verifiers as: the settings
/// baked into `curfew.gateway_secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayAuth {
    /// The gateway's own role (the user of `[gateway] auth_url`): the only one that may call
    /// the function.
    pub gateway_role: String,
    /// Serve only the members, direct or indirect, of this role (and the role itself).
    pub serve_members_of: Option<String>,
    /// Serve superusers too.
    pub serve_superusers: bool,
}

impl GatewayAuth {
    /// The settings of a policy's `[gateway]`: its own role is the user of `auth_url` (by
    /// default the target's URL). `None` when the policy was parsed without URL validators, so
    /// the role is unknown.
    pub fn for_gateway(gateway: &curfew_policy::Gateway) -> Option<GatewayAuth> {
        Some(GatewayAuth {
            gateway_role: gateway.own_role()?.to_owned(),
            serve_members_of: gateway.serve_members_of.clone(),
            serve_superusers: gateway.serve_superusers,
        })
    }
}

/// What installing the gateway's auth function did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayAuthInstalled {
    /// Whether the function is installed now (false: the administrator is no superuser; see
    /// the notes).
    pub installed: bool,
    /// Whether the owner role was created now.
    pub owner_created: bool,
    /// What the administrator should know or still has to do.
    pub notes: Vec<String>,
}

impl Connection {
    /// Install (or replace) `curfew.gateway_secret` with `settings`, as an administrator, after
    /// the ledger (whose schema it lives in): see the module documentation. A non-superuser
    /// administrator installs nothing and gets a note saying what to do, not an error, so the
    /// rest of `curfew init` stands. Idempotent.
    pub async fn install_gateway_auth(
        &mut self,
        settings: &GatewayAuth,
    ) -> Result<GatewayAuthInstalled, PgError> {
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
            return Ok(GatewayAuthInstalled {
                installed: false,
                owner_created: false,
                notes: vec![format!(
                    "the gateway's auth function (curfew.gateway_secret) was not installed: it reads the roles' SCRAM verifiers in pg_authid, which only a superuser can read, and role \"{admin}\" is no superuser; run curfew init again as a superuser (--admin-user postgres) to install it. Without it, curfew gateway cannot authenticate clients (the ledger and the agent are not affected)"
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
        let mut notes = Vec::new();
        let gateway = tx
            .query_opt(ROLE_SUPERUSER, &[&settings.gateway_role])
            .await
            .map_err(failed("looking up the gateway's role"))?;
        match gateway {
            None => {
                return Err(refuse(format!(
                    "there is no role named \"{}\" (the gateway's own role: the user of [gateway] auth_url, or of its target's url)",
                    settings.gateway_role
                )));
            }
            Some(row) if scalar::<bool>(&row, &target, "looking up the gateway's role")? => {
                notes.push(format!(
                    "role \"{}\" is a superuser: it could read every verifier without the function; give the gateway a role of its own, with LOGIN and nothing else",
                    settings.gateway_role
                ));
            }
            Some(_) => {}
        }
        if let Some(group) = &settings.serve_members_of
            && tx
                .query_opt(ROLE_EXISTS, &[group])
                .await
                .map_err(failed("looking up the role whose members are served"))?
                .is_none()
        {
            notes.push(format!(
                "there is no role named \"{group}\" ([gateway] serve_members_of): the gateway serves no one until it exists"
            ));
        }
        let owner_created = tx
            .query_opt(ROLE_EXISTS, &[&GATEWAY_AUTH_OWNER])
            .await
            .map_err(failed("looking up the gateway auth function's owner"))?
            .is_none();
        if !owner_created {
            let members: Vec<String> = tx
                .query(OWNER_MEMBERS, &[&GATEWAY_AUTH_OWNER])
                .await
                .map_err(failed("looking up who could act as the owner"))?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(failed("looking up who could act as the owner"))?;
            if !members.is_empty() {
                return Err(refuse(format!(
                    "role {GATEWAY_AUTH_OWNER} has members, who could act as it (a superuser): {}; run REVOKE {} FROM <member>, then curfew init again",
                    members.join(", "),
                    quote_identifier(GATEWAY_AUTH_OWNER)
                )));
            }
        }
        let owner = owner_sql(owner_created);
        let function = function_sql(
            &settings.gateway_role,
            settings.serve_members_of.as_deref(),
            settings.serve_superusers,
        );
        for (what, sql) in [
            (
                "setting up the gateway auth function's owner",
                owner.as_str(),
            ),
            ("creating the gateway auth function", function.as_str()),
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
            .map_err(failed("committing the gateway auth function"))?;
        Ok(GatewayAuthInstalled {
            installed: true,
            owner_created,
            notes,
        })
    }
}
