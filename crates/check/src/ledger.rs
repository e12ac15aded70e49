//! The login-lock ledger: installed by `curfew init` as it should be (functions owned by a role
//! nobody logs in as, `SECURITY DEFINER` with a fixed `search_path`, not executable by
//! `PUBLIC`), and curfew's role able to read it and call the functions, nothing more.

use curfew_policy::Policy;
use curfew_postgres::{OWNER_ROLE, ServerFacts};

use crate::{Finding, Status};

pub(crate) fn finding(facts: &ServerFacts, policy: &Policy) -> Finding {
    let ledger = &facts.ledger;
    let lock_rules: Vec<&str> = policy
        .rules
        .iter()
        .filter(|r| r.lock_logins)
        .map(|r| r.name.as_str())
        .collect();
    let init = format!(
        "As a superuser (or the provider's admin role), run: curfew init --admin-user <admin> --agent-role {}",
        curfew_postgres::quote_identifier(&facts.connected_as)
    );
    let mut finding = Finding {
        why: String::new(),
        id: "CURFEW-LOGIN-FUNCTIONS",
        title: "Login locks go through curfew's secured functions",
        requirement: "curfew's own security: login changes without CREATEROLE for curfew's role",
        status: Status::Pass,
        observed: String::new(),
        expected: format!(
            "schema curfew and its functions owned by {OWNER_ROLE} (NOLOGIN), SECURITY DEFINER with search_path pg_catalog, pg_temp, EXECUTE for curfew's role only; curfew's role may only read the ledger"
        ),
        fix: String::new(),
    };
    let Some(owner) = &ledger.schema_owner else {
        finding.observed = "there is no curfew ledger (schema curfew) on this server".to_owned();
        if lock_rules.is_empty() {
            finding.status = Status::Info;
            finding.expected =
                "needed only for login locks (lock_logins rules, curfew lock)".to_owned();
        } else {
            finding.status = Status::Fail;
            finding.observed.push_str(&format!(
                "; the policy locks logins ({}), which are not enforced",
                lock_rules.join(", ")
            ));
            finding.fix = init;
        }
        return finding;
    };
    let mut problems = Vec::new();
    if !ledger.current {
        problems.push("the ledger was made by an older curfew (before its functions)".to_owned());
    }
    if owner != OWNER_ROLE {
        problems.push(format!(
            "schema curfew belongs to {owner}, not {OWNER_ROLE}"
        ));
    }
    if ledger.owner_can_login {
        problems.push(format!("its owner {owner} can log in"));
    }
    for f in &ledger.functions {
        let name = &f.signature;
        if !f.present {
            problems.push(format!("{name} is missing"));
            continue;
        }
        if f.owner.as_deref() != Some(OWNER_ROLE) {
            problems.push(format!(
                "{name} belongs to {}",
                f.owner.as_deref().unwrap_or("?")
            ));
        }
        if !f.security_definer {
            problems.push(format!("{name} is not SECURITY DEFINER"));
        }
        if !f.fixed_search_path {
            problems.push(format!(
                "{name} does not fix search_path = pg_catalog, pg_temp"
            ));
        }
        if f.public_execute {
            problems.push(format!("PUBLIC may execute {name}"));
        }
        if !f.agent_execute {
            problems.push(format!("{} may not execute {name}", facts.connected_as));
        }
    }
    for excess in &ledger.agent_excess {
        problems.push(format!("{} has {excess}", facts.connected_as));
    }
    if problems.is_empty() {
        finding.observed = format!(
            "schema curfew and its {} functions belong to {owner} (NOLOGIN), secured as curfew init installs them; {} may read the ledger and call them, nothing more",
            ledger.functions.len(),
            facts.connected_as
        );
    } else {
        finding.status = Status::Fail;
        finding.observed = problems.join("; ");
        finding.fix = format!(
            "{init} (it reinstalls the functions, hands the schema to {OWNER_ROLE} and takes back the write privileges of curfew's role)."
        );
    }
    finding
}
