//! The gateway's auth function, which `curfew init` installs next to the ledger:
//! `curfew.gateway_secret(role_name)`, through which `curfew gateway` fetches the SCRAM
//! verifier of a role a client logs in as (as PgBouncer's `auth_query` and Odyssey's
//! `auth_query` do), so that SCRAM runs end to end and no password crosses the gateway.
//!
//! Whoever holds a verifier can attack its password offline, so the function hands out as
//! little as it can:
//!
//! - it is `SECURITY DEFINER` with `search_path = pg_catalog, pg_temp` and every catalog object
//!   qualified, owned by [`GATEWAY_AUTH_OWNER`], a `NOLOGIN NOSUPERUSER` role with no members
//!   that may read only the six columns of `pg_authid` the function reads (granted by the
//!   installing superuser) and holds nothing else: a role that existed before the install is
//!   refused if it owns or holds anything else, and demoted if an earlier install made it a
//!   superuser; nobody else may replace the function;
//! - its ACL is exactly `EXECUTE` for its owner and the gateway's own role: what `PUBLIC` or
//!   `ALTER DEFAULT PRIVILEGES` granted at `CREATE` is revoked, and the result checked, in the
//!   same transaction; the gateway's role may have no members (they would inherit `EXECUTE`);
//! - it serves (kind `mock` otherwise) neither the gateway's own role, an unknown role, a
//!   `NOLOGIN` role (unless curfew disabled its login for a lock still in force in the ledger:
//!   then the gateway authenticates it to refuse it with the lock's reason), a role whose
//!   `VALID UNTIL` has passed, a superuser (unless the gateway serves superusers) nor, when
//!   the gateway serves only the members of a role, any other role;
//! - for a served role it returns the kind of its secret (`scram-sha-256`, `md5`, `password`,
//!   `none`) and the verifier only when it is SCRAM (an MD5 hash is as good as the password),
//!   the ledger's locks in force on it and its memberships: the gateway uses them only after
//!   the client proved its password. Its owner may read those columns of `curfew.lock` and
//!   `curfew.disabled_login` and nothing else of the ledger.
//!
//! The served set is baked into the function's text at install (role names as hex, so no name
//! can change the SQL); installing again replaces it, grants included.

use tokio_postgres::error::SqlState;

use crate::connect::Connection;
use crate::error::PgError;
use crate::ledger::dedicated::{acl_mismatch, names, revoke_all_then_grant};
use crate::names::{GATEWAY_AUTH_OWNER, quote_identifier};
use crate::sql::dedicated::{GATEWAY_AUTH, expected_auth_acl};
use crate::sql::gateway_auth::{
    EXTRA_KEY_GRANTEES, INSERT_MOCK_KEY, OWNER_HOLDINGS, ROLE_EXISTS_BYTES, ROLE_MEMBERS,
    ROLE_SUPERUSER, function_sql, mock_key_sql, owner_sql,
};
use crate::sql::gateway_auth::{GATEWAY_MOCK_KEY_TABLE, GATEWAY_SECRET_FUNCTION};
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
                .query_opt(ROLE_EXISTS_BYTES, &[&group.as_bytes()])
                .await
                .map_err(failed("looking up the role whose members are served"))?
                .is_none()
        {
            notes.push(format!(
                "there is no role named \"{group}\" ([gateway] serve_members_of): the gateway serves no one until it exists"
            ));
        }
        let gateway_members = names(&tx, ROLE_MEMBERS, &settings.gateway_role)
            .await
            .map_err(failed("looking up the members of the gateway's role"))?;
        if !gateway_members.is_empty() {
            return Err(refuse(format!(
                "role \"{}\" (the gateway's own role) has members, who would inherit the right to read every served verifier: {}; give the gateway a role of its own that no role is a member of (REVOKE {} FROM <member>), then run curfew init again",
                settings.gateway_role,
                gateway_members.join(", "),
                quote_identifier(&settings.gateway_role)
            )));
        }
        let owner_created = tx
            .query_opt(ROLE_EXISTS, &[&GATEWAY_AUTH_OWNER])
            .await
            .map_err(failed("looking up the gateway auth function's owner"))?
            .is_none();
        if !owner_created {
            let members = names(&tx, ROLE_MEMBERS, GATEWAY_AUTH_OWNER)
                .await
                .map_err(failed("looking up who could act as the owner"))?;
            if !members.is_empty() {
                return Err(refuse(format!(
                    "role {GATEWAY_AUTH_OWNER} has members, who could act as it (it reads every verifier): {}; run REVOKE {} FROM <member>, then curfew init again",
                    members.join(", "),
                    quote_identifier(GATEWAY_AUTH_OWNER)
                )));
            }
            let holdings = names(&tx, OWNER_HOLDINGS, GATEWAY_AUTH_OWNER)
                .await
                .map_err(failed("looking up what the owner holds"))?;
            if !holdings.is_empty() {
                return Err(refuse(format!(
                    "role {GATEWAY_AUTH_OWNER} exists and holds more than the gateway auth function and its read of pg_authid ({}); it may have been created by someone else to own the function: check who made it, then DROP OWNED BY {owner}; DROP ROLE {owner}; (in every database) and run curfew init again",
                    holdings.join("; "),
                    owner = quote_identifier(GATEWAY_AUTH_OWNER)
                )));
            }
        }
        let owner = owner_sql(owner_created);
        let mock_key = mock_key_sql();
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
            ("creating the gateway's mock key table", mock_key.as_str()),
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
        // The mock key: random from the operating system, written once and kept, so an
        // unserved role's salt is the same across restarts and gateways.
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| {
            refuse(format!(
                "the operating system gave no random bytes for the gateway's mock key: {e}"
            ))
        })?;
        tx.execute(INSERT_MOCK_KEY, &[&key.as_slice()])
            .await
            .map_err(failed("writing the gateway's mock key"))?;
        tx.batch_execute(&function).await.map_err(|e| {
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                refuse(format!(
                    "creating the gateway auth function: {}",
                    e.as_db_error().map(|d| d.message()).unwrap_or_default()
                ))
            } else {
                PgError::query(&target, "creating the gateway auth function", e)
            }
        })?;
        let extra_on_key = names(&tx, EXTRA_KEY_GRANTEES, GATEWAY_AUTH_OWNER)
            .await
            .map_err(failed("reading the mock key's grants"))?;
        for grantee in &extra_on_key {
            tx.batch_execute(&format!(
                "REVOKE ALL ON {GATEWAY_MOCK_KEY_TABLE} FROM {grantee} CASCADE; GRANT SELECT ON {GATEWAY_MOCK_KEY_TABLE} TO {}",
                quote_identifier(GATEWAY_AUTH_OWNER)
            ))
            .await
            .map_err(failed("revoking a default privilege on the mock key"))?;
        }
        let left = names(&tx, EXTRA_KEY_GRANTEES, GATEWAY_AUTH_OWNER)
            .await
            .map_err(failed("reading the mock key's grants"))?;
        if !left.is_empty() {
            return Err(refuse(format!(
                "the gateway's mock key is readable by {left:?} after the install; nothing was installed"
            )));
        }
        // Default privileges (ALTER DEFAULT PRIVILEGES, global or IN SCHEMA curfew) may have
        // granted EXECUTE at CREATE; REVOKE … FROM PUBLIC leaves those. Revoke every grant,
        // grant the gateway's role again, then check.
        revoke_all_then_grant(
            &tx,
            &GATEWAY_AUTH,
            &format!(
                "GRANT EXECUTE ON FUNCTION {GATEWAY_SECRET_FUNCTION} TO {}",
                quote_identifier(&settings.gateway_role)
            ),
        )
        .await
        .map_err(failed("granting the gateway auth function's privileges"))?;
        if let Some(acl) = acl_mismatch(
            &tx,
            &GATEWAY_AUTH,
            &expected_auth_acl(&settings.gateway_role),
        )
        .await
        .map_err(failed("checking the gateway auth function's grants"))?
        {
            return Err(refuse(format!(
                "the gateway auth function's grants are {acl:?} after the install, not EXECUTE for \"{}\" alone; nothing was installed",
                settings.gateway_role
            )));
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
