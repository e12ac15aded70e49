//! Reaching a MariaDB/MySQL target for the live test: curfew's own connection (as the agent
//! connects) and the leading agent, read from the `GET_LOCK` leader lock's holder and its
//! announcement locks (`curfew_mysql`'s `lock_holders`, the reading `curfew check` uses too).

use curfew_mysql::{Connection, Flavor, MysqlTarget};

use super::canary::Fallback;
use super::{LiveError, Notice, Verified};

/// Connect as curfew's account and find the leading agent: the connection (unless the target
/// could not be reached) and why the live tests cannot run, if they cannot. Fills in the
/// server and the agent's announcement.
pub(super) async fn connect(
    spec: &MysqlTarget,
    notice: &dyn Fn(Notice),
    verified: &mut Verified,
) -> Result<(Option<Connection>, Option<Fallback>), LiveError> {
    let mut admin = match curfew_mysql::connect(spec).await {
        Ok(c) => {
            for warning in &c.warnings {
                notice(Notice::ConnectWarning(warning.clone()));
            }
            c.connection
        }
        Err(e) => {
            return Ok((
                None,
                Some(Fallback::Fail(format!(
                    "The target could not be reached: {e}."
                ))),
            ));
        }
    };
    let info = admin.info();
    verified.server = Some(server_name(info.flavor, &info.version));
    let failed = |source| LiveError::MariaDb {
        target: spec.name.clone(),
        source,
    };
    let read_only = curfew_mysql::read_only(admin.inspection(), &spec.name)
        .await
        .map_err(failed)?;
    if read_only {
        return Ok((
            Some(admin),
            Some(Fallback::Evaluate(
                "the target is read-only (read_only = ON, a replica): a canary account cannot be created there"
                    .to_owned(),
            )),
        ));
    }
    // An agent that has just taken the lock announces itself a moment later: a holder of
    // curfew's account is given ANNOUNCE_WAIT to do so.
    let waited = std::time::Instant::now();
    let holder = loop {
        let holders = admin.lock_holders().await.map_err(failed)?;
        let holder = holders.into_iter().find(|h| h.granted);
        let unannounced = holder.as_ref().is_some_and(|h| {
            h.own_role
                && h.application
                    .as_deref()
                    .and_then(curfew_backend::Announcement::parse)
                    .is_none()
        });
        if !unannounced || waited.elapsed() >= super::ANNOUNCE_WAIT {
            break holder;
        }
        tokio::time::sleep(super::ANNOUNCE_POLL).await;
    };
    let blocked = match holder {
        None => super::no_agent(&spec.name, None),
        // Any account can take a user lock: a holder of another account is no curfew agent.
        Some(h) if !h.own_role => Some(Fallback::Fail(format!(
            "No curfew agent enforces the policy on target \"{}\": curfew's leader lock is held by connection {} of user \"{}\", not curfew's account, so nothing would end the canary. Start `curfew agent` (it ends such a squatter) and verify again.",
            spec.name,
            h.pid,
            curfew_policy::visible(h.role.as_deref().unwrap_or(""))
        ))),
        Some(h) => {
            verified.agent.clone_from(&h.application);
            super::no_agent(&spec.name, h.application.as_deref())
        }
    };
    Ok((Some(admin), blocked))
}

/// "MariaDB 10.11.14" from `VERSION()` ("10.11.14-MariaDB-0+deb12u2"), "MySQL 8.0.36".
pub(super) fn server_name(flavor: Flavor, version: &str) -> String {
    let number = version.split('-').next().unwrap_or(version);
    match flavor {
        Flavor::MariaDb { .. } => format!("MariaDB {number}"),
        Flavor::MySql => format!("MySQL {number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_named_by_its_flavor_and_version_number() {
        let maria = Flavor::MariaDb {
            major: 10,
            minor: 11,
        };
        assert_eq!(
            server_name(maria, "10.11.14-MariaDB-0+deb12u2"),
            "MariaDB 10.11.14"
        );
        assert_eq!(server_name(Flavor::MySql, "8.0.36"), "MySQL 8.0.36");
    }

    /// The leader's announcement decides, as on PostgreSQL: nobody (or no curfew text) and a
    /// dry run fail the live tests, an enforcing agent lets them run.
    #[test]
    fn only_an_enforcing_agent_lets_the_live_tests_run() {
        let sentence = |fallback: Option<Fallback>| match fallback {
            Some(Fallback::Fail(why)) => why,
            Some(Fallback::Evaluate(why)) => format!("evaluate: {why}"),
            None => String::new(),
        };
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let none = sentence(super::super::no_agent("maria", None));
        assert!(
            none.starts_with("No curfew agent enforces the policy on target \"maria\""),
            "{none}"
        );
        assert_eq!(
            sentence(super::super::no_agent("maria", Some("psql"))),
            none
        );
        let dry = curfew_postgres::Announcement::text(true, sha);
        assert!(sentence(super::super::no_agent("maria", Some(&dry))).contains("dry run"));
        let enforcing = curfew_postgres::Announcement::text(false, sha);
        assert!(super::super::no_agent("maria", Some(&enforcing)).is_none());
    }
}
