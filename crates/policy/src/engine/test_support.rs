//! What the engine's test modules share: a policy from text, and a fixed instant.

use jiff::{SignedDuration, Timestamp};

use crate::Policy;
use crate::parse_policy;

/// A valid policy from `text` (the test fails with the diagnostics otherwise).
pub(super) fn policy(text: &str) -> Policy {
    parse_policy("t.toml", text, jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

/// 2026-11-23 15:00 UTC: a Monday, 10:00 in New York.
pub(super) fn now() -> Timestamp {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

/// `secs` seconds before [`now`].
pub(super) fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}
