//! Findings on roles: superusers who can log in, curfew's own privilege, and the login roles
//! for the record.

use curfew_postgres::ServerFacts;

use crate::{Finding, Status};

/// How many login roles the record names before it only counts.
const NAMED: usize = 30;

pub(crate) fn findings(facts: &ServerFacts) -> Vec<Finding> {
    let extra_superusers: Vec<&str> = facts
        .roles
        .iter()
        .filter(|r| r.superuser && r.can_login && !r.bootstrap)
        .map(|r| r.name.as_str())
        .collect();
    let bootstrap = facts
        .roles
        .iter()
        .find(|r| r.bootstrap)
        .map_or("the bootstrap superuser", |r| r.name.as_str());
    let superusers = Finding {
        why: String::new(),
        id: "PG-SUPERUSERS",
        title: "No superuser logins beside the bootstrap superuser",
        requirement: "PostgreSQL security guide: least privilege (the three-role pattern)",
        status: if extra_superusers.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        observed: if extra_superusers.is_empty() {
            format!("only {bootstrap} is a superuser that can log in")
        } else {
            format!(
                "superusers that can log in besides {bootstrap}: {}",
                extra_superusers.join(", ")
            )
        },
        expected: format!("only {bootstrap}, used for maintenance over a local socket"),
        fix: if extra_superusers.is_empty() {
            String::new()
        } else {
            "ALTER ROLE ... NOSUPERUSER (grant the predefined roles each needs instead), or NOLOGIN for roles no one should log in as.".to_owned()
        },
    };
    let agent = agent_privilege(facts);
    let logins: Vec<&str> = facts
        .roles
        .iter()
        .filter(|r| r.can_login)
        .map(|r| r.name.as_str())
        .collect();
    let mut named = logins
        .iter()
        .take(NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if logins.len() > NAMED {
        named.push_str(&format!(" and {} more", logins.len() - NAMED));
    }
    let record = Finding {
        why: String::new(),
        id: "PG-LOGIN-ROLES",
        title: "Roles that can log in",
        requirement: "NIST SP 800-171 3.1.1 (authorized users), for the assessor's review",
        status: Status::Info,
        observed: format!("{} login roles: {named}", logins.len()),
        expected: "each one an authorized user or service".to_owned(),
        fix: String::new(),
    };
    vec![superusers, agent, record]
}

/// curfew's role is neither a superuser nor a CREATEROLE role. CREATEROLE is refused on every
/// version: on PostgreSQL 14 and 15 it lets the role grant itself any non-superuser role,
/// `pg_execute_server_program` included, so `COPY ... FROM PROGRAM` runs commands as the
/// server's operating-system user (whoever steals curfew's password has a shell on the database
/// host); on 16 and later it still creates login roles, and alters and grants every role made
/// with it. curfew needs none of it: login changes go through the functions of `curfew init`.
fn agent_privilege(facts: &ServerFacts) -> Finding {
    let role = curfew_postgres::quote_identifier(&facts.connected_as);
    let (status, observed, fix) = if facts.connected_as_superuser {
        (
            Status::Fail,
            format!("curfew connects as {}, a superuser", facts.connected_as),
            "CREATE ROLE curfew_agent LOGIN; GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent; use it in the target URL; for login locks, run curfew init as the superuser.".to_owned(),
        )
    } else if facts.connected_as_createrole {
        let escalation = if facts.version_num < 160_000 {
            "on this PostgreSQL (before 16) CREATEROLE lets it GRANT pg_execute_server_program to itself and run COPY ... FROM PROGRAM as the server's operating-system user: a stolen curfew password is a shell on the database host"
        } else {
            "CREATEROLE lets it create login roles and alter and grant the roles it creates (on PostgreSQL 14/15 it would be a shell on the host, through pg_execute_server_program)"
        };
        (
            Status::Fail,
            format!(
                "curfew connects as {}, which has CREATEROLE: {escalation}",
                facts.connected_as
            ),
            format!(
                "ALTER ROLE {role} NOCREATEROLE; login locks need no CREATEROLE since curfew init installs its functions (run it as the superuser). Only curfew verify's canaries need CREATEROLE: grant it to a separate role used for verify."
            ),
        )
    } else {
        (
            Status::Pass,
            format!(
                "curfew connects as {}, neither a superuser nor CREATEROLE",
                facts.connected_as
            ),
            String::new(),
        )
    };
    Finding {
        why: String::new(),
        id: "CURFEW-AGENT-PRIVILEGE",
        title: "curfew's role is neither a superuser nor CREATEROLE",
        requirement: "curfew's own security: least privilege (pg_read_all_stats, pg_signal_backend)",
        status,
        observed,
        expected: "a role with pg_read_all_stats and pg_signal_backend, and EXECUTE on curfew's login-lock functions".to_owned(),
        fix,
    }
}
