//! The gateway findings from facts made by hand: a clean install passes, each tampering fails
//! with the statement that mends it.

use curfew_postgres::{DedicatedFacts, DefinerFacts, GatewayInstallFacts, InstalledRole};

use super::findings;
use crate::Status;

const INIT: &str = "run curfew init";

fn role(name: &str, login: bool, member_of: &[&str]) -> InstalledRole {
    InstalledRole {
        name: name.to_owned(),
        can_login: login,
        member_of: member_of.iter().map(|m| (*m).to_owned()).collect(),
        ..InstalledRole::default()
    }
}

fn definer(owner: &str) -> DefinerFacts {
    DefinerFacts {
        owner: owner.to_owned(),
        security_definer: true,
        fixed_search_path: true,
    }
}

fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|g| (*g).to_owned()).collect()
}

/// Objects owned by `owner` and granted exactly `grants`.
fn dedicated(
    owner: &str,
    member_of: &[&str],
    grants: &[&str],
    objects: &[(&str, &str)],
) -> DedicatedFacts {
    DedicatedFacts {
        owner_name: owner.to_owned(),
        owner: Some(role(owner, false, member_of)),
        owner_member_of: lines(member_of),
        grants: lines(grants),
        expected_grants: lines(grants),
        objects: objects
            .iter()
            .map(|(l, on)| ((*l).to_owned(), (*on).to_owned()))
            .collect(),
    }
}

/// What a clean `curfew init` leaves, for agent `curfew_agent` and gateway `gw`.
fn clean() -> GatewayInstallFacts {
    GatewayInstallFacts {
        gateway_role: Some(role("gw", true, &[])),
        auth_function: Some(definer("curfew_gateway_auth")),
        auth: dedicated(
            "curfew_gateway_auth",
            &[],
            &["function:gw:EXECUTE"],
            &[(
                "function",
                "FUNCTION curfew.gateway_secret(pg_catalog.text)",
            )],
        ),
        register_function: Some(definer("curfew_gateway_registry")),
        table_owner: Some("curfew_gateway_registry".to_owned()),
        view_owner: Some("curfew_gateway_registry".to_owned()),
        registry: dedicated(
            "curfew_gateway_registry",
            &["pg_read_all_stats"],
            &[
                "function:gw:EXECUTE",
                "table:curfew_agent:SELECT",
                "table:pg_read_all_stats:SELECT",
                "view:curfew_agent:SELECT",
                "view:pg_read_all_stats:SELECT",
            ],
            &[
                ("table", "curfew.gateway_sessions"),
                ("view", "curfew.sessions"),
                ("function", "FUNCTION curfew.register_gateway_session(...)"),
            ],
        ),
    }
}

fn statuses(facts: &GatewayInstallFacts) -> Vec<(&'static str, Status)> {
    findings(facts, "gw", "curfew_agent", INIT)
        .into_iter()
        .map(|f| (f.id, f.status))
        .collect()
}

#[test]
fn a_clean_install_passes() {
    assert_eq!(
        statuses(&clean()),
        [
            ("CURFEW-GATEWAY-AUTH", Status::Pass),
            ("CURFEW-GATEWAY-REGISTRY", Status::Pass),
            ("CURFEW-GATEWAY-ROLE", Status::Pass),
        ]
    );
}

#[test]
fn each_tampering_fails_with_its_fix() {
    let fix_of = |facts: &GatewayInstallFacts, id: &str| {
        let f = findings(facts, "gw", "curfew_agent", INIT)
            .into_iter()
            .find(|f| f.id == id)
            .unwrap();
        assert_eq!(f.status, Status::Fail, "{f:?}");
        assert!(!f.why.is_empty(), "{f:?}");
        f.fix
    };
    let mut public = clean();
    public
        .auth
        .grants
        .insert(0, "function:PUBLIC:EXECUTE".to_owned());
    assert_eq!(
        fix_of(&public, "CURFEW-GATEWAY-AUTH"),
        "As a superuser, run: REVOKE EXECUTE ON FUNCTION curfew.gateway_secret(pg_catalog.text) FROM PUBLIC;"
    );
    let mut owner = clean();
    owner.auth_function.as_mut().unwrap().owner = "mallory".to_owned();
    assert!(fix_of(&owner, "CURFEW-GATEWAY-AUTH").contains("OWNER TO \"curfew_gateway_auth\";"));
    let mut path = clean();
    path.register_function.as_mut().unwrap().fixed_search_path = false;
    assert!(
        fix_of(&path, "CURFEW-GATEWAY-REGISTRY").contains("SET search_path = pg_catalog, pg_temp;")
    );
    let mut extra = clean();
    extra.registry.grants.push("table:kim:INSERT".to_owned());
    assert_eq!(
        fix_of(&extra, "CURFEW-GATEWAY-REGISTRY"),
        "As a superuser, run: REVOKE INSERT ON curfew.gateway_sessions FROM \"kim\";"
    );
    let mut superuser = clean();
    superuser.gateway_role.as_mut().unwrap().superuser = true;
    superuser.gateway_role.as_mut().unwrap().members = vec!["kim".to_owned()];
    let fix = fix_of(&superuser, "CURFEW-GATEWAY-ROLE");
    assert!(
        fix.contains("ALTER ROLE \"gw\" NOSUPERUSER;")
            && fix.contains("REVOKE \"gw\" FROM \"kim\";"),
        "{fix}"
    );
    let mut gone = clean();
    gone.auth_function = None;
    assert!(fix_of(&gone, "CURFEW-GATEWAY-AUTH").starts_with(INIT));
}

#[test]
fn a_dedicated_owner_with_more_than_it_needs_fails() {
    let mut owner = clean();
    let role = owner.registry.owner.as_mut().unwrap();
    role.member_of = vec!["pg_write_server_files".to_owned()];
    let f = findings(&owner, "gw", "curfew_agent", INIT)
        .into_iter()
        .find(|f| f.id == "CURFEW-GATEWAY-REGISTRY")
        .unwrap();
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.fix
            .contains("REVOKE \"pg_write_server_files\" FROM \"curfew_gateway_registry\";"),
        "{}",
        f.fix
    );
    assert!(
        f.fix
            .contains("GRANT pg_read_all_stats TO \"curfew_gateway_registry\";"),
        "{}",
        f.fix
    );
}

#[test]
fn the_agents_own_role_as_the_gateways_is_one_problem_with_its_fix() {
    let mut facts = clean();
    facts.gateway_role = Some(role(
        "curfew_agent",
        true,
        &["pg_read_all_stats", "pg_signal_backend"],
    ));
    let f = findings(&facts, "curfew_agent", "curfew_agent", INIT)
        .into_iter()
        .find(|f| f.id == "CURFEW-GATEWAY-ROLE")
        .unwrap();
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.fix.contains("auth_url") && !f.fix.contains("REVOKE"),
        "{}",
        f.fix
    );
}
