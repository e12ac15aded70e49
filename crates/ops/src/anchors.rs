//! A log's anchors as the targets hold them (`curfew audit verify`, `curfew report`): each
//! target's anchor rows read through the PostgreSQL adapter and compared with the chain.

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
        let read = match TargetSpec::from_policy(target) {
            Ok(spec) => curfew_postgres::read_target_anchors(&spec, TARGET_LIMIT)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let result = read.map(|TargetAnchorRows { rows, origin: me }| {
            let anchors: Vec<Anchor> = rows
                .into_iter()
                .map(|r| Anchor {
                    chain: r.chain,
                    seq: r.seq,
                    hash: r.hash,
                    at: r.anchored_at,
                    from: format!("target \"{}\" (by role {})", target.name, r.anchored_by),
                    by: r.anchored_by,
                    origin: r.anchored_from,
                })
                .collect();
            let rules = AnchorRules {
                verifier: Some((me.role, me.addr)),
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
