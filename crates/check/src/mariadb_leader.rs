//! CURFEW-MARIADB-LEADER: whether a curfew agent enforces this policy on a MariaDB/MySQL server,
//! seen from the server: who holds the leader lock (`curfew_mysql::LEADER_LOCK`) and what its
//! announcement locks say (`curfew_mysql::read_announcement`). Worded as PostgreSQL's
//! `enforcing_agent`. Pure: not yet read from a live server (the facts are the caller's).

use curfew_postgres::Announcement;

use crate::{Finding, PolicyContext, Status};

/// The leader lock's holder as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHolder {
    /// The holding connection's id.
    pub id: u64,
    /// Its account, quoted `user@host`.
    pub account: String,
    /// Whether that is curfew's account.
    pub own_account: bool,
    /// What the announcement locks say (`read_announcement`), if anything.
    pub announcement: Option<String>,
}

/// Judge the leader: `holder` is `None` when nobody holds the leader lock.
pub fn leader(
    holder: Option<&LeaderHolder>,
    curfew_account: &str,
    ctx: PolicyContext<'_>,
) -> Finding {
    let verdict = match holder {
        None => Err("no curfew agent leads this server".to_owned()),
        Some(h) if !h.own_account => Err(format!(
            "the connection holding curfew's leader lock (connection {}) is of account {}, not curfew's account {curfew_account}: it is not a curfew agent (any account can take a user lock), and no curfew agent leads this server",
            h.id, h.account
        )),
        Some(h) => match h.announcement.as_deref().and_then(Announcement::parse) {
            Some(a) if a.dry_run => Err(format!(
                "the curfew agent leading this server (connection {}) runs a dry run: it ends nothing",
                h.id
            )),
            Some(a) if !ctx.sha256.starts_with(&a.sha256_prefix) => Err(format!(
                "the curfew agent leading this server (connection {}) enforces another policy (sha256 {}), not this one",
                h.id, a.sha256_prefix
            )),
            Some(_) => Ok(format!(
                "a curfew agent enforces this policy on this server (connection {})",
                h.id
            )),
            None => Ok(format!(
                "a curfew agent leads this server (connection {}; it does not announce its policy)",
                h.id
            )),
        },
    };
    let (status, observed, why, fix) = match verdict {
        Ok(text) => (Status::Pass, text, String::new(), String::new()),
        Err(text) => (
            Status::Fail,
            text.clone(),
            text,
            "Run the agent with this policy, not as a dry run (`systemctl enable --now curfew`, `systemctl reload curfew` after a policy change); `curfew check` passes once it leads the server.".to_owned(),
        ),
    };
    Finding {
        id: "CURFEW-MARIADB-LEADER",
        title: "A curfew agent enforces this policy on the server",
        requirement: "NIST SP 800-171 3.1.11[b]: sessions are terminated after the defined conditions",
        status,
        observed,
        expected: "the leader lock held by curfew's account, announcing enforcement of this policy"
            .to_owned(),
        why,
        fix,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn judge(holder: Option<&LeaderHolder>) -> Finding {
        let policy = curfew_policy::parse_policy("t.toml", "", jiff::tz::db())
            .unwrap()
            .policy;
        let ctx = PolicyContext {
            policy: &policy,
            source: "t.toml",
            sha256: SHA,
            max_clock_offset: std::time::Duration::from_secs(2),
        };
        leader(holder, "`curfew`@`%`", ctx)
    }

    fn holder(own: bool, dry_run: bool, sha: &str) -> LeaderHolder {
        LeaderHolder {
            id: 7,
            account: if own { "`curfew`@`%`" } else { "`mallory`@`%`" }.to_owned(),
            own_account: own,
            announcement: Some(Announcement::text(dry_run, &sha[..12])),
        }
    }

    #[test]
    fn only_curfews_enforcing_agent_on_this_policy_passes() {
        assert_eq!(judge(Some(&holder(true, false, SHA))).status, Status::Pass);
        let none = judge(None);
        assert_eq!(none.status, Status::Fail);
        assert!(none.why.contains("no curfew agent leads"), "{}", none.why);
        let dry = judge(Some(&holder(true, true, SHA)));
        assert_eq!(dry.status, Status::Fail);
        assert!(dry.why.contains("dry run"), "{}", dry.why);
        let other = judge(Some(&holder(true, false, &"f".repeat(64))));
        assert_eq!(other.status, Status::Fail);
        assert!(other.why.contains("another policy"), "{}", other.why);
        let squatter = judge(Some(&holder(false, false, SHA)));
        assert_eq!(squatter.status, Status::Fail);
        assert!(squatter.why.contains("`mallory`@`%`"), "{}", squatter.why);
    }
}
