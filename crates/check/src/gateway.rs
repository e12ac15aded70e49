//! What `curfew init` installed for the gateway, as it should be: the auth function
//! (`curfew.gateway_secret`, which hands out SCRAM verifiers) and the session registry
//! (`curfew.gateway_sessions`, `curfew.sessions` and the function that writes the table), each
//! owned by its dedicated `NOLOGIN` role, `SECURITY DEFINER` with a fixed `search_path`, granted
//! exactly as installed; and the gateway's own role holding nothing more than it needs. curfew's
//! own privileges are an attack surface: whoever can call the auth function can attack every
//! served password offline. Each problem comes with the statement that mends it.

use curfew_postgres::{
    DedicatedFacts, DefinerFacts, GATEWAY_AUTH_OWNER, GATEWAY_REGISTER_FUNCTION,
    GATEWAY_REGISTRY_OWNER, GATEWAY_SECRET_FUNCTION, GatewayInstallFacts, InstalledRole,
    quote_identifier,
};

use crate::{Finding, Status};

/// A problem and the statement that mends it (`None`: `curfew init` must install it again).
type Problem = (String, Option<String>);

/// The three findings about the gateway on the target it forwards to: its auth function, its
/// session registry, its own role. `init` is the `curfew init` command line that installs
/// them again.
pub(crate) fn findings(
    facts: &GatewayInstallFacts,
    gateway_role: &str,
    agent_role: &str,
    init: &str,
) -> Vec<Finding> {
    vec![
        finding(
            "CURFEW-GATEWAY-AUTH",
            "The gateway's auth function is installed and secured",
            format!(
                "{GATEWAY_SECRET_FUNCTION} owned by {GATEWAY_AUTH_OWNER} (NOLOGIN, no superuser, no memberships, no members), SECURITY DEFINER with search_path pg_catalog, pg_temp, EXECUTE for {gateway_role} alone"
            ),
            auth_problems(facts),
            init,
        ),
        finding(
            "CURFEW-GATEWAY-REGISTRY",
            "The gateway session registry is installed and secured",
            format!(
                "curfew.gateway_sessions, curfew.sessions and the function that writes the table owned by {GATEWAY_REGISTRY_OWNER} (NOLOGIN, no superuser, a member of pg_read_all_stats alone, no members), the function SECURITY DEFINER with search_path pg_catalog, pg_temp; grants exactly {}",
                facts.registry.expected_grants.join(", ")
            ),
            registry_problems(facts),
            init,
        ),
        finding(
            "CURFEW-GATEWAY-ROLE",
            "The gateway's own role holds no more than it needs",
            format!(
                "{gateway_role}: LOGIN, no superuser, no CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, a member of no role, no members"
            ),
            gateway_role_problems(facts, gateway_role, agent_role),
            init,
        ),
    ]
}

fn finding(
    id: &'static str,
    title: &'static str,
    expected: String,
    problems: Vec<Problem>,
    init: &str,
) -> Finding {
    let mut finding = Finding {
        id,
        title,
        requirement: "curfew's own security: least privilege for the gateway's verifier lookups and session registry",
        status: Status::Pass,
        observed: "as curfew init installs it".to_owned(),
        expected,
        why: String::new(),
        fix: String::new(),
    };
    if problems.is_empty() {
        return finding;
    }
    finding.status = Status::Fail;
    finding.observed = problems
        .iter()
        .map(|(what, _)| what.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    finding.why = finding.observed.clone();
    let statements: Vec<&str> = problems
        .iter()
        .filter_map(|(_, fix)| fix.as_deref())
        .collect();
    let reinstall = problems.iter().any(|(_, fix)| fix.is_none());
    finding.fix = match (statements.is_empty(), reinstall) {
        (_, true) => format!(
            "{init} (it installs the functions and grants again).{}",
            if statements.is_empty() {
                String::new()
            } else {
                format!(" Then, as a superuser: {}", statements.join(" "))
            }
        ),
        (false, false) => format!("As a superuser, run: {}", statements.join(" ")),
        (true, false) => String::new(),
    };
    finding
}

/// The auth function, its owner and its grants.
fn auth_problems(facts: &GatewayInstallFacts) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(function) = &facts.auth_function else {
        problems.push((format!("{GATEWAY_SECRET_FUNCTION} does not exist"), None));
        return problems;
    };
    let on = format!("FUNCTION {GATEWAY_SECRET_FUNCTION}");
    definer_problems(&mut problems, function, &on, GATEWAY_AUTH_OWNER);
    dedicated_problems(&mut problems, &facts.auth);
    problems
}

/// The registry's table, view and function, their owner and their grants.
fn registry_problems(facts: &GatewayInstallFacts) -> Vec<Problem> {
    let mut problems = Vec::new();
    let on = format!("FUNCTION {GATEWAY_REGISTER_FUNCTION}");
    for (kind, relation, owner) in [
        ("TABLE", "curfew.gateway_sessions", &facts.table_owner),
        ("VIEW", "curfew.sessions", &facts.view_owner),
    ] {
        let name = format!("{} {relation}", kind.to_ascii_lowercase());
        match owner {
            None => problems.push((format!("the {name} does not exist"), None)),
            Some(owner) if owner != GATEWAY_REGISTRY_OWNER => problems.push((
                format!("the {name} belongs to {owner}, not {GATEWAY_REGISTRY_OWNER}"),
                Some(format!(
                    "ALTER {kind} {relation} OWNER TO {};",
                    quote_identifier(GATEWAY_REGISTRY_OWNER)
                )),
            )),
            Some(_) => {}
        }
    }
    match &facts.register_function {
        None => problems.push((format!("{GATEWAY_REGISTER_FUNCTION} does not exist"), None)),
        Some(function) => definer_problems(&mut problems, function, &on, GATEWAY_REGISTRY_OWNER),
    }
    if problems.iter().any(|(_, fix)| fix.is_none()) {
        // Something is missing: its grants cannot be right, and init installs them all.
        owner_problems(&mut problems, &facts.registry);
    } else {
        dedicated_problems(&mut problems, &facts.registry);
    }
    problems
}

/// A dedicated owner and the exact grants of what it owns.
fn dedicated_problems(problems: &mut Vec<Problem>, dedicated: &DedicatedFacts) {
    for (grant, mend) in grant_differences(&dedicated.grants, &dedicated.expected_grants) {
        let Some((label, rest)) = grant.split_once(':') else {
            continue;
        };
        let Some((grantee, privilege)) = rest.rsplit_once(':') else {
            continue;
        };
        if let Some((_, on)) = dedicated.objects.iter().find(|(l, _)| l == label) {
            problems.push(grant_problem(on, grantee, privilege, mend));
        }
    }
    owner_problems(problems, dedicated);
}

/// The gateway's own role: it logs in, and nothing more.
fn gateway_role_problems(
    facts: &GatewayInstallFacts,
    gateway_role: &str,
    agent_role: &str,
) -> Vec<Problem> {
    let quoted = quote_identifier(gateway_role);
    if gateway_role == agent_role {
        // The agent's memberships are the agent's needs; the fix is a role of the gateway's own.
        return vec![(
            format!(
                "the gateway fetches verifiers as {gateway_role}, curfew's agent role, which then holds every served verifier"
            ),
            Some(
                "CREATE ROLE curfew_gateway LOGIN PASSWORD '...'; then set [gateway] auth_url to log in as curfew_gateway (and auth_password_file), and run curfew init again.".to_owned(),
            ),
        )];
    }
    let Some(role) = &facts.gateway_role else {
        return vec![(
            format!("there is no role {gateway_role} (the user of [gateway] auth_url)"),
            Some(format!("CREATE ROLE {quoted} LOGIN PASSWORD '...';")),
        )];
    };
    let mut problems = Vec::new();
    if !role.can_login {
        problems.push((
            format!("{gateway_role} cannot log in"),
            Some(format!("ALTER ROLE {quoted} LOGIN;")),
        ));
    }
    power_problems(&mut problems, role, &[]);
    problems
}

/// A definer function's owner, `SECURITY DEFINER` and `search_path`.
fn definer_problems(problems: &mut Vec<Problem>, function: &DefinerFacts, on: &str, owner: &str) {
    let name = on.trim_start_matches("FUNCTION ");
    if function.owner != owner {
        problems.push((
            format!("{name} belongs to {}, not {owner}", function.owner),
            Some(format!("ALTER {on} OWNER TO {};", quote_identifier(owner))),
        ));
    }
    if !function.security_definer {
        problems.push((
            format!("{name} is not SECURITY DEFINER"),
            Some(format!("ALTER {on} SECURITY DEFINER;")),
        ));
    }
    if !function.fixed_search_path {
        problems.push((
            format!("{name} does not fix search_path = pg_catalog, pg_temp"),
            Some(format!("ALTER {on} SET search_path = pg_catalog, pg_temp;")),
        ));
    }
}

/// What a grant is when it is extra (revoke) or missing (grant).
#[derive(Clone, Copy)]
enum Mend {
    Revoke,
    Grant,
}

/// The grants present but not expected, then those expected but absent.
fn grant_differences<'a>(grants: &'a [String], expected: &'a [String]) -> Vec<(&'a str, Mend)> {
    let extra = grants
        .iter()
        .filter(|g| !expected.contains(g))
        .map(|g| (g.as_str(), Mend::Revoke));
    let missing = expected
        .iter()
        .filter(|g| !grants.contains(g))
        .map(|g| (g.as_str(), Mend::Grant));
    extra.chain(missing).collect()
}

fn grant_problem(on: &str, grantee: &str, privilege: &str, mend: Mend) -> Problem {
    let name = on.trim_start_matches("FUNCTION ");
    let who = if grantee == "PUBLIC" {
        "PUBLIC".to_owned()
    } else {
        quote_identifier(grantee)
    };
    match mend {
        Mend::Revoke => (
            format!("{grantee} has {privilege} on {name}, which curfew did not grant"),
            Some(format!("REVOKE {privilege} ON {on} FROM {who};")),
        ),
        Mend::Grant => (
            format!("{grantee} lacks {privilege} on {name}"),
            Some(format!("GRANT {privilege} ON {on} TO {who};")),
        ),
    }
}

/// A dedicated owner: it exists, nobody logs in as it, and it holds only its memberships.
fn owner_problems(problems: &mut Vec<Problem>, dedicated: &DedicatedFacts) {
    let name = &dedicated.owner_name;
    let Some(role) = &dedicated.owner else {
        problems.push((format!("the owner role {name} does not exist"), None));
        return;
    };
    if role.can_login {
        problems.push((
            format!("its owner {name} can log in"),
            Some(format!("ALTER ROLE {} NOLOGIN;", quote_identifier(name))),
        ));
    }
    let member_of: Vec<&str> = dedicated
        .owner_member_of
        .iter()
        .map(String::as_str)
        .collect();
    power_problems(problems, role, &member_of);
    for needed in &member_of {
        if !role.member_of.iter().any(|m| m == needed) {
            problems.push((
                format!("its owner {name} is not a member of {needed}"),
                Some(format!("GRANT {needed} TO {};", quote_identifier(name))),
            ));
        }
    }
}

/// Superuser, powerful attributes, memberships beyond `member_of`, and members.
fn power_problems(problems: &mut Vec<Problem>, role: &InstalledRole, member_of: &[&str]) {
    let name = &role.name;
    let quoted = quote_identifier(name);
    if role.superuser {
        problems.push((
            format!("{name} is a superuser"),
            Some(format!("ALTER ROLE {quoted} NOSUPERUSER;")),
        ));
    }
    for attribute in &role.attributes {
        problems.push((
            format!("{name} has {attribute}"),
            Some(format!("ALTER ROLE {quoted} NO{attribute};")),
        ));
    }
    for group in role
        .member_of
        .iter()
        .filter(|g| !member_of.contains(&g.as_str()))
    {
        problems.push((
            format!("{name} is a member of {group}"),
            Some(format!("REVOKE {} FROM {quoted};", quote_identifier(group))),
        ));
    }
    for member in &role.members {
        problems.push((
            format!("{member} is a member of {name} (and may act as it)"),
            Some(format!(
                "REVOKE {quoted} FROM {};",
                quote_identifier(member)
            )),
        ));
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
