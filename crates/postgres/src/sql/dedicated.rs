//! One spec for what `curfew init` installs for the gateway (the auth function, the session
//! registry): objects owned by a dedicated `NOLOGIN` role that is a member of only the roles it
//! needs, granted exactly. The install revokes every grant, grants again and checks the result
//! against it in one transaction; `curfew check` reads the same grants with the same statement
//! and compares them with the same expectation.

use crate::names::{GATEWAY_AUTH_OWNER, GATEWAY_REGISTRY_OWNER};
use crate::sql::gateway_admission::{
    GATEWAY_ADMISSION_GATE_TABLE, GATEWAY_ADMISSIONS_TABLE, GATEWAY_CLAIM_FUNCTION,
    GATEWAY_RELEASE_FUNCTION,
};
use crate::sql::gateway_auth::GATEWAY_SECRET_FUNCTION;
use crate::sql::gateway_registry::{GATEWAY_REGISTER_FUNCTION, GATEWAY_SESSIONS_TABLE};
use crate::sql::gateway_violations::{
    GATEWAY_VIOLATION_FUNCTION, GATEWAY_VIOLATION_GATE_TABLE, GATEWAY_VIOLATIONS_TABLE,
};

/// What kind of object a grant is on (how `GRANT`, `REVOKE` and the catalogs name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A table or a view (`pg_class`).
    Relation,
    /// A function (`pg_proc`).
    Function,
}

/// One object of a spec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Object {
    /// Its label in grant lines (`table:grantee:SELECT`).
    pub(crate) label: &'static str,
    /// Its kind.
    pub(crate) kind: Kind,
    /// Its name as `GRANT` and `REVOKE` take it (a function with its argument types).
    pub(crate) name: &'static str,
}

impl Object {
    /// How `GRANT ... ON` names it.
    pub(crate) fn on(&self) -> String {
        match self.kind {
            Kind::Relation => self.name.to_owned(),
            Kind::Function => format!("FUNCTION {}", self.name),
        }
    }
}

/// Objects owned by a dedicated role, granted exactly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dedicated {
    /// The owner role, which nobody logs in as.
    pub(crate) owner: &'static str,
    /// The only roles the owner is a member of.
    pub(crate) member_of: &'static [&'static str],
    /// The objects.
    pub(crate) objects: &'static [Object],
}

/// The auth function, owned by [`GATEWAY_AUTH_OWNER`], a member of no role.
pub(crate) const GATEWAY_AUTH: Dedicated = Dedicated {
    owner: GATEWAY_AUTH_OWNER,
    member_of: &[],
    objects: &[Object {
        label: "function",
        kind: Kind::Function,
        name: GATEWAY_SECRET_FUNCTION,
    }],
};

/// The session registry, the admission claims and the shared violation counts, owned by [`GATEWAY_REGISTRY_OWNER`], a
/// member of `pg_read_all_stats` alone (to see every backend's client address and role).
pub(crate) const GATEWAY_REGISTRY: Dedicated = Dedicated {
    owner: GATEWAY_REGISTRY_OWNER,
    member_of: &["pg_read_all_stats"],
    objects: &[
        Object {
            label: "table",
            kind: Kind::Relation,
            name: GATEWAY_SESSIONS_TABLE,
        },
        Object {
            label: "view",
            kind: Kind::Relation,
            name: "curfew.sessions",
        },
        Object {
            label: "function",
            kind: Kind::Function,
            name: GATEWAY_REGISTER_FUNCTION,
        },
        Object {
            label: "admissions table",
            kind: Kind::Relation,
            name: GATEWAY_ADMISSIONS_TABLE,
        },
        Object {
            label: "admission gate",
            kind: Kind::Relation,
            name: GATEWAY_ADMISSION_GATE_TABLE,
        },
        Object {
            label: "claim function",
            kind: Kind::Function,
            name: GATEWAY_CLAIM_FUNCTION,
        },
        Object {
            label: "release function",
            kind: Kind::Function,
            name: GATEWAY_RELEASE_FUNCTION,
        },
        Object {
            label: "violations table",
            kind: Kind::Relation,
            name: GATEWAY_VIOLATIONS_TABLE,
        },
        Object {
            label: "violation gate",
            kind: Kind::Relation,
            name: GATEWAY_VIOLATION_GATE_TABLE,
        },
        Object {
            label: "violation function",
            kind: Kind::Function,
            name: GATEWAY_VIOLATION_FUNCTION,
        },
    ],
};

impl Dedicated {
    /// Each object's ACL (the default when it has none), its owner and label; an object that
    /// does not exist gives no row (`to_regclass`, `to_regprocedure`), so readers without
    /// it installed get an answer rather than an error.
    fn acls(&self) -> String {
        self.objects
            .iter()
            .map(|o| {
                let name = o.name.replace('\'', "''");
                match o.kind {
                    Kind::Relation => format!(
                        "SELECT '{label}' AS what, coalesce(c.relacl, acldefault('r', c.relowner)) AS acl, c.relowner AS owner FROM pg_class c WHERE c.oid = to_regclass('{name}')",
                        label = o.label
                    ),
                    Kind::Function => format!(
                        "SELECT '{label}' AS what, coalesce(p.proacl, acldefault('f', p.proowner)) AS acl, p.proowner AS owner FROM pg_proc p WHERE p.oid = to_regprocedure('{name}')",
                        label = o.label
                    ),
                }
            })
            .collect::<Vec<_>>()
            .join("\n        UNION ALL\n        ")
    }

    /// Every grant on the objects as `object:grantee:PRIVILEGE` (`PUBLIC` for everyone), the
    /// owner's own apart, sorted.
    pub(crate) fn acl_sql(&self) -> String {
        format!(
            "SELECT x.what || ':' || CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END
       || ':' || e.privilege_type
  FROM ({}) x
  CROSS JOIN LATERAL aclexplode(x.acl) e
  LEFT JOIN pg_roles r ON r.oid = e.grantee
 WHERE e.grantee <> x.owner
 ORDER BY 1",
            self.acls()
        )
    }

    /// Every grantee on the objects but their owner (quoted, `PUBLIC` for everyone).
    pub(crate) fn grantees_sql(&self) -> String {
        format!(
            "SELECT DISTINCT CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
  FROM ({}) x
  CROSS JOIN LATERAL aclexplode(x.acl) e
  LEFT JOIN pg_roles r ON r.oid = e.grantee
 WHERE e.grantee <> x.owner
 ORDER BY 1",
            self.acls()
        )
    }

    /// Revokes every grant on the objects from `grantee` (quoted, or `PUBLIC`).
    pub(crate) fn revoke_all_sql(&self, grantee: &str) -> String {
        self.objects
            .iter()
            .map(|o| format!("REVOKE ALL ON {} FROM {grantee} CASCADE;", o.on()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Roles the owner (`$1`) is a member of beyond [`Dedicated::member_of`], as names.
    pub(crate) fn other_memberships_sql(&self) -> String {
        let allowed = self
            .member_of
            .iter()
            .map(|m| format!("'{}'", m.replace('\'', "''")))
            .collect::<Vec<_>>();
        let filter = if allowed.is_empty() {
            String::new()
        } else {
            format!(" AND g.rolname NOT IN ({})", allowed.join(", "))
        };
        format!(
            "SELECT g.rolname::text FROM pg_auth_members m
     JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
    WHERE r.rolname = $1{filter} ORDER BY 1"
        )
    }
}

/// What [`Dedicated::acl_sql`] must return for the auth function: `EXECUTE` for the gateway's
/// role alone.
pub(crate) fn expected_auth_acl(gateway: &str) -> Vec<String> {
    vec![format!("function:{gateway}:EXECUTE")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_name_every_object() {
        let acl = GATEWAY_REGISTRY.acl_sql();
        assert!(acl.contains("to_regclass('curfew.gateway_sessions')"));
        assert!(acl.contains("to_regclass('curfew.sessions')"));
        assert!(acl.contains(&format!("to_regprocedure('{GATEWAY_REGISTER_FUNCTION}')")));
        assert_eq!(
            GATEWAY_AUTH.revoke_all_sql("PUBLIC"),
            format!("REVOKE ALL ON FUNCTION {GATEWAY_SECRET_FUNCTION} FROM PUBLIC CASCADE;")
        );
        assert!(
            GATEWAY_REGISTRY
                .other_memberships_sql()
                .contains("NOT IN ('pg_read_all_stats')")
        );
        assert!(!GATEWAY_AUTH.other_memberships_sql().contains("NOT IN"));
    }
}
