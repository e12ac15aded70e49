//! What `curfew check` reads about what `curfew init` installed for the gateway: the auth
//! function (`curfew.gateway_secret`) and the session registry (`curfew.gateway_sessions`,
//! `curfew.sessions`, `curfew.register_gateway_session`), their dedicated owners, their grants,
//! and the gateway's own role. Catalog reads only; judged by `curfew-check`.

use tokio_postgres::types::ToSql;

use crate::connect::Connection;
use crate::error::PgError;
use crate::names::{GATEWAY_AUTH_OWNER, GATEWAY_REGISTRY_OWNER};
use crate::sql::decode::col;
use crate::sql::gateway_catalog::{
    AUTH_FUNCTION_SIGNATURE, DEFINER, REGISTER_FUNCTION_SIGNATURE, RELATION_OWNER, ROLE,
    WHAT_GATEWAY_FACTS,
};
use crate::sql::gateway_registry::{REGISTRY_ACL, expected_acl};

/// A role as the catalogs show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstalledRole {
    /// Its name.
    pub name: String,
    /// `LOGIN`.
    pub can_login: bool,
    /// `SUPERUSER`.
    pub superuser: bool,
    /// Its other attributes that give power: `CREATEROLE`, `CREATEDB`, `REPLICATION`,
    /// `BYPASSRLS`.
    pub attributes: Vec<String>,
    /// The roles it is a member of.
    pub member_of: Vec<String>,
    /// Its members (who inherit what it may do, or may act as it).
    pub members: Vec<String>,
}

/// A `SECURITY DEFINER` function as the catalogs show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DefinerFacts {
    /// Its owner.
    pub owner: String,
    /// `SECURITY DEFINER`.
    pub security_definer: bool,
    /// Whether it fixes `search_path = pg_catalog, pg_temp`.
    pub fixed_search_path: bool,
    /// Every grant on it but its owner's, as `grantee:PRIVILEGE` (`PUBLIC` for everyone),
    /// sorted.
    pub grants: Vec<String>,
}

/// The gateway session registry as the catalogs show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryFacts {
    /// `curfew.register_gateway_session`, if it exists.
    pub function: Option<DefinerFacts>,
    /// The owner of the table `curfew.gateway_sessions`, if it exists.
    pub table_owner: Option<String>,
    /// The owner of the view `curfew.sessions`, if it exists.
    pub view_owner: Option<String>,
    /// The grants on the table, view and function as `object:grantee:PRIVILEGE`, their
    /// owners' apart, sorted (read only when all three exist).
    pub grants: Option<Vec<String>>,
    /// What the grants must be, for the target's role and the gateway's.
    pub expected_grants: Vec<String>,
}

/// What `curfew init` installed for the gateway, and the gateway's own role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayInstallFacts {
    /// The gateway's own role (the user of `[gateway] auth_url`), if it exists.
    pub gateway_role: Option<InstalledRole>,
    /// `curfew.gateway_secret`, if it exists.
    pub auth_function: Option<DefinerFacts>,
    /// Its dedicated owner role, if it exists.
    pub auth_owner: Option<InstalledRole>,
    /// The session registry.
    pub registry: RegistryFacts,
    /// The registry's dedicated owner role, if it exists.
    pub registry_owner: Option<InstalledRole>,
}

impl Connection {
    /// Read the gateway's auth function, session registry, their owners and the gateway's
    /// role `gateway_role` (for `curfew check`); the registry's grants are compared with
    /// those for `agent_role` (the role the check connects as) and `gateway_role`.
    pub async fn gateway_install_facts(
        &self,
        gateway_role: &str,
        agent_role: &str,
    ) -> Result<GatewayInstallFacts, PgError> {
        let table_owner = self
            .one_text(RELATION_OWNER, &[&"gateway_sessions"])
            .await?;
        let view_owner = self.one_text(RELATION_OWNER, &[&"sessions"]).await?;
        let function = self.definer(REGISTER_FUNCTION_SIGNATURE).await?;
        let grants = if table_owner.is_some() && view_owner.is_some() && function.is_some() {
            let rows = self
                .client
                .query(REGISTRY_ACL, &[])
                .await
                .map_err(|e| PgError::query(&self.target, WHAT_GATEWAY_FACTS, e))?;
            Some(
                rows.iter()
                    .map(|r| col::<String>(r, 0, &self.target, WHAT_GATEWAY_FACTS))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        } else {
            None
        };
        Ok(GatewayInstallFacts {
            gateway_role: self.role(gateway_role).await?,
            auth_function: self.definer(AUTH_FUNCTION_SIGNATURE).await?,
            auth_owner: self.role(GATEWAY_AUTH_OWNER).await?,
            registry: RegistryFacts {
                function,
                table_owner,
                view_owner,
                grants,
                expected_grants: expected_acl(agent_role, gateway_role),
            },
            registry_owner: self.role(GATEWAY_REGISTRY_OWNER).await?,
        })
    }

    async fn role(&self, name: &str) -> Result<Option<InstalledRole>, PgError> {
        let what = WHAT_GATEWAY_FACTS;
        let Some(row) = self
            .client
            .query_opt(ROLE, &[&name])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?
        else {
            return Ok(None);
        };
        Ok(Some(InstalledRole {
            name: col(&row, 0, &self.target, what)?,
            can_login: col(&row, 1, &self.target, what)?,
            superuser: col(&row, 2, &self.target, what)?,
            attributes: col(&row, 3, &self.target, what)?,
            member_of: col(&row, 4, &self.target, what)?,
            members: col(&row, 5, &self.target, what)?,
        }))
    }

    async fn definer(&self, signature: &str) -> Result<Option<DefinerFacts>, PgError> {
        let what = WHAT_GATEWAY_FACTS;
        let Some(row) = self
            .client
            .query_opt(DEFINER, &[&signature])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?
        else {
            return Ok(None);
        };
        Ok(Some(DefinerFacts {
            owner: col(&row, 0, &self.target, what)?,
            security_definer: col(&row, 1, &self.target, what)?,
            fixed_search_path: col(&row, 2, &self.target, what)?,
            grants: col(&row, 3, &self.target, what)?,
        }))
    }

    async fn one_text(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<String>, PgError> {
        let what = WHAT_GATEWAY_FACTS;
        match self
            .client
            .query_opt(sql, params)
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?
        {
            Some(row) => Ok(Some(col(&row, 0, &self.target, what)?)),
            None => Ok(None),
        }
    }
}
