//! The sessions a connection has seen: MariaDB and MySQL show no connection's start, and ids
//! start again after a restart, so a session's identity is its id, account and the server's
//! boot, and its start is estimated at first sight (never earlier than it can have been).
//!
//! Kept per connection: a new connection (after a restart, or any reconnect) starts empty, so
//! an end request planned on an earlier one matches nothing and is discarded.

use std::collections::HashMap;

use curfew_policy::SessionKey;
use jiff::{SignedDuration, Timestamp};

/// How far two estimates of the server's boot may differ and still be the same boot (`Uptime`
/// is in whole seconds, so two readings differ by up to one).
pub const SAME_BOOT_TOLERANCE: SignedDuration = SignedDuration::from_secs(2);

/// One session as curfew identified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSession {
    /// The connection id (`CONNECTION_ID()`, the process list's `ID`).
    pub id: u64,
    /// The account's user.
    pub user: String,
    /// The process list's `HOST` (`address:port`, or `localhost` for a socket).
    pub host: String,
    /// The server's boot when it was seen: ids are unique only within one boot.
    pub booted_at: Timestamp,
    /// When it started, at the latest: at first sight, the server's clock minus the time it
    /// had spent in its current command. Its lifetime is never overstated.
    pub started_at: Timestamp,
}

impl SeenSession {
    /// The key the engine and the loop use for it.
    pub fn key(&self) -> Result<SessionKey, std::num::TryFromIntError> {
        Ok(SessionKey {
            pid: i64::try_from(self.id)?,
            backend_start: self.started_at,
        })
    }
}

/// Whether two estimates of the boot are the same boot.
pub fn same_boot(a: Timestamp, b: Timestamp) -> bool {
    a.duration_since(b).abs() <= SAME_BOOT_TOLERANCE
}

/// The server's boot, at the earliest it can have been: `Uptime` counts whole seconds, so the
/// boot lies within the second before `now - Uptime`. The earliest bound, because a start or
/// an idleness clamped to a boot estimated late would begin after the truth: a statement run
/// just after a snapshot in the server's first second could then look like the same
/// idleness to the kill's re-check.
pub(crate) fn booted_at(now: Timestamp, uptime_s: i64) -> Timestamp {
    now - SignedDuration::from_secs(uptime_s.saturating_add(1))
}

/// The sessions seen by one connection, by id.
#[derive(Debug, Default)]
pub(crate) struct SeenSessions {
    by_id: HashMap<u64, SeenSession>,
}

impl SeenSessions {
    /// The session a snapshot row shows, remembered: the same id, account and boot as before
    /// keeps its first start; anything else is a new session starting at `started_at`.
    pub(crate) fn observe(
        &mut self,
        id: u64,
        user: &str,
        host: &str,
        booted_at: Timestamp,
        started_at: Timestamp,
    ) -> &SeenSession {
        let fresh = SeenSession {
            id,
            user: user.to_owned(),
            host: host.to_owned(),
            booted_at,
            started_at,
        };
        let entry = self.by_id.entry(id).or_insert_with(|| fresh.clone());
        if entry.user != user || entry.host != host || !same_boot(entry.booted_at, booted_at) {
            *entry = fresh;
        }
        entry
    }

    /// Forget sessions not in the latest snapshot.
    pub(crate) fn retain(&mut self, present: impl Fn(u64) -> bool) {
        self.by_id.retain(|id, _| present(*id));
    }

    /// The session a key names, if this connection saw it.
    pub(crate) fn get(&self, key: &SessionKey) -> Option<&SeenSession> {
        let id = u64::try_from(key.pid).ok()?;
        self.by_id
            .get(&id)
            .filter(|s| s.started_at == key.backend_start)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn a_session_keeps_its_first_start_until_its_identity_changes() {
        let mut seen = SeenSessions::default();
        let first = seen
            .observe(7, "app", "10.0.0.1:5000", at(1000), at(1500))
            .clone();
        // Later sightings (its current command started later) keep the first start, even with
        // the boot read a second apart.
        let again = seen
            .observe(7, "app", "10.0.0.1:5000", at(1001), at(1600))
            .clone();
        assert_eq!(again.started_at, at(1500));
        assert_eq!(seen.get(&first.key().unwrap()), Some(&again));
        // The same id for another account, or on another boot, is another session.
        let other = seen
            .observe(7, "app", "10.0.0.2:6000", at(1000), at(1700))
            .clone();
        assert_eq!(other.started_at, at(1700));
        assert_eq!(seen.get(&first.key().unwrap()), None);
        let rebooted = seen
            .observe(7, "app", "10.0.0.2:6000", at(2000), at(2100))
            .clone();
        assert_eq!(rebooted.started_at, at(2100));
        seen.retain(|id| id != 7);
        assert_eq!(seen.get(&rebooted.key().unwrap()), None);
    }

    #[test]
    fn an_id_beyond_the_key_s_range_is_an_error_not_a_wrapped_pid() {
        let s = SeenSession {
            id: u64::from(u32::MAX),
            user: String::new(),
            host: String::new(),
            booted_at: at(0),
            started_at: at(0),
        };
        assert_eq!(s.key().unwrap().pid, i64::from(u32::MAX));
        let s = SeenSession { id: u64::MAX, ..s };
        assert!(s.key().is_err());
    }
}
