//! A log's anchors as the targets hold them (`curfew audit verify`, `curfew report`): each
//! target's anchor rows read through its adapter (PostgreSQL's, or MariaDB/MySQL's for a
//! `mariadb://`/`mysql://` URL) and compared with the chain.

use std::time::Duration;

use curfew_audit::{Anchor, AnchorRules, ChainVerification, TargetAnchors};
use curfew_policy::Policy;
use curfew_postgres::{TargetAnchorRows, TargetSpec};

/// How long reading one target's anchors may take (connect included).
pub const TARGET_LIMIT: Duration = Duration::from_secs(15);

/// How long after a record an anchor naming it still confirms it: max(2 min, 10 × `[agent]
/// interval`). The agent anchors within an interval or two of each record; the margin also
/// covers the offset between the agent host's clock (the record's ts) and the target's (the
/// anchor's time).
pub fn late_after(policy: Option<&Policy>) -> jiff::SignedDuration {
    let floor = jiff::SignedDuration::from_mins(2);
    let interval = policy.map_or(Duration::ZERO, |p| p.agent.interval.to_std());
    let ten = jiff::SignedDuration::try_from(interval.saturating_mul(10)).unwrap_or(floor);
    ten.max(floor)
}

/// Each target's anchors of every chain, compared with `chain` under `rules` (with this
/// session's role and address as the verifier). A target that cannot be read says why in its
/// result; it does not stop the others.
pub async fn read_anchors(
    policy: &Policy,
    chain: &ChainVerification,
    rules: &AnchorRules,
) -> Vec<TargetAnchors> {
    let mut out = Vec::new();
    for target in &policy.targets {
        let read = match is_mysql(&target.url.text) {
            true => read_mysql(target).await,
            false => read_postgres(target).await,
        };
        let result = read.map(|(rows, me)| {
            let anchors: Vec<Anchor> = rows
                .into_iter()
                .map(|mut a| {
                    a.from = format!("target \"{}\" (by role {})", target.name, a.by);
                    a
                })
                .collect();
            let rules = AnchorRules {
                verifier: Some(me),
                ..rules.clone()
            };
            chain.check_anchors(&anchors, &rules)
        });
        out.push(TargetAnchors {
            target: target.name.clone(),
            result,
        });
    }
    out
}

/// A target's anchors (`from` left empty) and the verifying session's origin (role, address).
type Read = Result<(Vec<Anchor>, (String, Option<String>)), String>;

/// Whether `url` is one the MariaDB/MySQL adapter reads (its scheme, case aside).
fn is_mysql(url: &str) -> bool {
    curfew_mysql::is_mysql_url(url)
}

async fn read_postgres(target: &curfew_policy::Target) -> Read {
    let spec = TargetSpec::from_policy(target).map_err(|e| e.to_string())?;
    let TargetAnchorRows { rows, origin } =
        curfew_postgres::read_target_anchors(&spec, TARGET_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
    let anchors = rows
        .into_iter()
        .map(|r| Anchor {
            chain: r.chain,
            seq: r.seq,
            hash: r.hash,
            at: r.anchored_at,
            from: String::new(),
            by: r.anchored_by,
            origin: r.anchored_from,
        })
        .collect();
    Ok((anchors, (origin.role, origin.addr)))
}

/// A MariaDB store stamps `USER()`: its user as the role, the host it saw as the origin.
async fn read_mysql(target: &curfew_policy::Target) -> Read {
    let spec = curfew_mysql::MysqlTarget::from_policy(target).map_err(|e| e.to_string())?;
    let curfew_mysql::TargetAnchorRows { rows, origin } =
        curfew_mysql::read_target_anchors(&spec, TARGET_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
    let anchors = rows
        .into_iter()
        .map(|r| Anchor {
            chain: r.chain,
            seq: r.seq,
            hash: r.hash,
            at: r.anchored_at,
            from: String::new(),
            by: r.anchored_by,
            origin: Some(r.anchored_from),
        })
        .collect();
    Ok((anchors, (origin.user, Some(origin.host))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_with_interval(interval: &str) -> Policy {
        let text = format!(
            "[agent]\ninterval = \"{interval}\"\n\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n\n[[rule]]\nname = \"idle\"\nidle_in_transaction = \"5m\"\n"
        );
        curfew_policy::LoadedPolicy::from_bytes_with("t.toml", text.into_bytes(), None)
            .expect("a valid policy")
            .policy
    }

    #[test]
    fn mariadb_and_mysql_urls_are_read_through_their_adapter() {
        for url in ["mariadb://a@h/", "MySQL://a@h:3306/", " mysql://a@h/"] {
            assert!(is_mysql(url), "{url}");
        }
        for url in [
            "postgresql://a@h/",
            "postgres://a@h/",
            "mysql:/a",
            "mysqlx://a@h/",
        ] {
            assert!(!is_mysql(url), "{url}");
        }
    }

    #[test]
    fn without_a_policy_the_limit_is_two_minutes() {
        assert_eq!(late_after(None), jiff::SignedDuration::from_mins(2));
    }

    #[test]
    fn a_short_interval_keeps_the_two_minute_floor() {
        let policy = policy_with_interval("5s");
        assert_eq!(
            late_after(Some(&policy)),
            jiff::SignedDuration::from_mins(2)
        );
    }

    #[test]
    fn a_long_interval_gives_ten_intervals() {
        let policy = policy_with_interval("1m");
        assert_eq!(
            late_after(Some(&policy)),
            jiff::SignedDuration::from_mins(10)
        );
    }
}
