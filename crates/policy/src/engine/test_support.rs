//! What the engine's test modules share: a policy from text, and a fixed instant.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::parse_policy;
use crate::session::{BackendType, SessionState};
use crate::{Policy, Session};

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

/// A client session of `role` that began an hour before [`now`], in `state` for a minute.
pub(super) fn client_session(pid: i64, role: &str, state: SessionState) -> Session {
    Session {
        pid,
        backend_start: ago(3_600),
        xact_start: None,
        state,
        state_change: Some(ago(60)),
        role: role.into(),
        member_of: Arc::from(Vec::<String>::new()),
        database: "app".into(),
        client_addr: crate::ClientAddr::Ip("10.1.2.3".parse().unwrap()),
        application: "psql".into(),
        backend_type: BackendType::ClientBackend,
    }
}
