//! What `curfew check` reads about what `curfew init` installed for the gateway: the auth
//! function (`curfew.gateway_secret`) and the session registry (`curfew.gateway_sessions`,
//! `curfew.sessions`, `curfew.register_gateway_session`), their dedicated owners, their grants
//! (read and expected as the install reads and expects them: `crate::sql::dedicated`), and the
//! gateway's own role. Catalog reads only; judged by `curfew-check`.

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::decode::col;
use crate::sql::dedicated::{Dedicated, GATEWAY_AUTH, GATEWAY_REGISTRY, expected_auth_acl};
use crate::sql::gateway_catalog::{
    AUTH_FUNCTION_SIGNATURE, DEFINER, REGISTER_FUNCTION_SIGNATURE, RELATION_OWNER, ROLE,
    WHAT_GATEWAY_FACTS,
};
use crate::sql::gateway_registry::expected_acl;

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
}

/// Objects owned by a dedicated role and granted exactly: their owner and grants, with what
/// the install makes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DedicatedFacts {
    /// The owner's name, as installed.
    pub owner_name: String,
    /// The owner role, if it exists.
    pub owner: Option<InstalledRole>,
    /// The only roles the owner should be a member of.
    pub owner_member_of: Vec<String>,
    /// The grants on the objects as `object:grantee:PRIVILEGE` (`PUBLIC` for everyone), their
    /// owners' apart, sorted; objects that do not exist have none.
    pub grants: Vec<String>,
    /// What the grants must be, for the target's role and the gateway's (sorted).
    pub expected_grants: Vec<String>,
    /// Each object's label in the grant lines and its name as `GRANT ... ON` takes it.
    pub objects: Vec<(String, String)>,
}

/// What `curfew init` installed for the gateway, and the gateway's own role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayInstallFacts {
    /// The gateway's own role (the user of `[gateway] auth_url`), if it exists.
    pub gateway_role: Option<InstalledRole>,
    /// `curfew.gateway_secret`, if it exists.
    pub auth_function: Option<DefinerFacts>,
    /// The auth function's owner and grants.
    pub auth: DedicatedFacts,
    /// `curfew.register_gateway_session`, if it exists.
    pub register_function: Option<DefinerFacts>,
    /// The owner of the table `curfew.gateway_sessions`, if it exists.
    pub table_owner: Option<String>,
    /// The owner of the view `curfew.sessions`, if it exists.
    pub view_owner: Option<String>,
    /// The registry's owner and grants.
    pub registry: DedicatedFacts,
}

impl Connection {
    /// Read the gateway's auth function, session registry, their owners and the gateway's
    /// role `gateway_role` (for `curfew check`); the registry's grants are expected for
    /// `agent_role` (the role the check connects as) and `gateway_role`.
    pub async fn gateway_install_facts(
        &self,
        gateway_role: &str,
        agent_role: &str,
    ) -> Result<GatewayInstallFacts, PgError> {
        Ok(GatewayInstallFacts {
            gateway_role: self.role(gateway_role).await?,
            auth_function: self.definer(AUTH_FUNCTION_SIGNATURE).await?,
            auth: self
                .dedicated(&GATEWAY_AUTH, expected_auth_acl(gateway_role))
                .await?,
            register_function: self.definer(REGISTER_FUNCTION_SIGNATURE).await?,
            table_owner: self.relation_owner("gateway_sessions").await?,
            view_owner: self.relation_owner("sessions").await?,
            registry: self
                .dedicated(&GATEWAY_REGISTRY, expected_acl(agent_role, gateway_role))
                .await?,
        })
    }

    async fn dedicated(
        &self,
        spec: &Dedicated,
        mut expected_grants: Vec<String>,
    ) -> Result<DedicatedFacts, PgError> {
        let what = WHAT_GATEWAY_FACTS;
        let grants = self
            .client
            .query(&spec.acl_sql(), &[])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?
            .iter()
            .map(|r| col::<String>(r, 0, &self.target, what))
            .collect::<Result<Vec<_>, _>>()?;
        expected_grants.sort();
        Ok(DedicatedFacts {
            owner_name: spec.owner.to_owned(),
            owner: self.role(spec.owner).await?,
            owner_member_of: spec.member_of.iter().map(|m| (*m).to_owned()).collect(),
            grants,
            expected_grants,
            objects: spec
                .objects
                .iter()
                .map(|o| (o.label.to_owned(), o.on()))
                .collect(),
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
        }))
    }

    async fn relation_owner(&self, name: &str) -> Result<Option<String>, PgError> {
        let what = WHAT_GATEWAY_FACTS;
        match self
            .client
            .query_opt(RELATION_OWNER, &[&name])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?
        {
            Some(row) => Ok(Some(col(&row, 0, &self.target, what)?)),
            None => Ok(None),
        }
    }
}
