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
    let agent = Finding {
        id: "CURFEW-AGENT-PRIVILEGE",
        title: "curfew's role is not a superuser",
        requirement: "curfew's own security: least privilege (pg_read_all_stats, pg_signal_backend)",
        status: if facts.connected_as_superuser {
            Status::Fail
        } else {
            Status::Pass
        },
        observed: format!(
            "curfew connects as {}{}",
            facts.connected_as,
            if facts.connected_as_superuser {
                ", a superuser"
            } else {
                ", not a superuser"
            }
        ),
        expected:
            "a role with pg_read_all_stats and pg_signal_backend (CREATEROLE for login locks)"
                .to_owned(),
        fix: if facts.connected_as_superuser {
            "CREATE ROLE curfew_agent LOGIN; GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent; and use it in the target URL.".to_owned()
        } else {
            String::new()
        },
    };
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
