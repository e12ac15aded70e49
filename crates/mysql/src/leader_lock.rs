//! The leader lock's names, the announcement's encoding in user locks, the fence's SQL and the
//! per-connection state: pure, so the connection can hold the state without depending on the
//! statements in `crate::leader` (see there for why and how).

use curfew_backend::Announcement;
use jiff::Timestamp;

use crate::seen::SAME_BOOT_TOLERANCE;

/// The leader lock's name.
pub const LEADER_LOCK: &str = "curfew_leader";

/// The announcement's marker lock: held while the other announcement locks say something.
pub(crate) const ANNOUNCED: &str = "curfew_leader:announced";

/// Held by a leader that runs a dry run.
pub(crate) const DRY_RUN: &str = "curfew_leader:dry_run";

/// The bits of the 12 hex digits of the policy's hash an announcement carries.
pub(crate) const SHA_BITS: usize = 48;

/// Every lock name curfew uses: the leader lock first, then the announcement's (the marker,
/// the dry run, the hash's bits from the most significant).
pub fn lock_names() -> Vec<String> {
    let mut names = vec![
        LEADER_LOCK.to_owned(),
        ANNOUNCED.to_owned(),
        DRY_RUN.to_owned(),
    ];
    names.extend((0..SHA_BITS).map(|i| format!("curfew_leader:sha256:{i:02}")));
    names
}

/// Which announcement locks (every name of [`lock_names`] after the leader lock's, in order)
/// an announcement takes; `None` for a text that is no curfew announcement.
pub fn announcement_locks(text: &str) -> Option<Vec<bool>> {
    let announcement = Announcement::parse(text)?;
    let bits = u64::from_str_radix(&announcement.sha256_prefix, 16).ok()?;
    let mut held = vec![true, announcement.dry_run];
    held.extend((0..SHA_BITS).map(|i| bits >> (SHA_BITS - 1 - i) & 1 == 1));
    Some(held)
}

/// The announcement the held announcement locks say (as [`announcement_locks`] orders them);
/// `None` without the marker or with the wrong number of locks.
pub fn read_announcement(held: &[bool]) -> Option<String> {
    let [true, dry_run, bits @ ..] = held else {
        return None;
    };
    if bits.len() != SHA_BITS {
        return None;
    }
    let value = bits
        .iter()
        .fold(0u64, |acc, &bit| (acc << 1) | u64::from(bit));
    Some(Announcement::text(*dry_run, &format!("{value:012x}")))
}

/// The leader's lock connection as the server knows it: its id and when it took the lock on
/// the server's clock (a restart since then means it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The lock connection's id (`CONNECTION_ID()`).
    pub id: u64,
    /// When it took the lock, on the server's clock.
    pub taken_at: Timestamp,
}

/// The leader lock's state on one connection: the lock this connection took, and the
/// leadership its kills are fenced on.
#[derive(Debug, Default)]
pub(crate) struct LeaderState {
    /// The lock this connection took.
    pub(crate) leads: Option<Leadership>,
    /// The leadership this connection's kills are fenced on.
    pub(crate) fence: Option<Leadership>,
}

/// The SQL condition under which `fence` still leads, inside the kill block (`boot_us`: the
/// server's boot in microseconds): its connection holds the leader lock, and the server has not
/// restarted since it took it.
pub(crate) fn fence_condition(fence: &Leadership) -> String {
    format!(
        "(IS_USED_LOCK('{LEADER_LOCK}') <=> {id} AND boot_us <= {taken} + {tolerance})",
        id = fence.id,
        taken = fence.taken_at.as_microsecond(),
        tolerance = SAME_BOOT_TOLERANCE.as_micros(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn an_announcement_reads_back_from_its_locks() {
        for dry_run in [false, true] {
            let text = Announcement::text(dry_run, SHA);
            let held = announcement_locks(&text).unwrap();
            assert_eq!(held.len(), lock_names().len() - 1);
            assert_eq!(read_announcement(&held).as_deref(), Some(text.as_str()));
        }
        let zeros = Announcement::text(false, &"0".repeat(64));
        assert_eq!(
            read_announcement(&announcement_locks(&zeros).unwrap()).as_deref(),
            Some(zeros.as_str())
        );
    }

    #[test]
    fn no_marker_no_announcement() {
        let mut held = announcement_locks(&Announcement::text(false, SHA)).unwrap();
        held[0] = false;
        assert_eq!(read_announcement(&held), None);
        assert_eq!(read_announcement(&[true, false]), None);
        assert_eq!(read_announcement(&[]), None);
        assert_eq!(announcement_locks("psql"), None);
    }

    #[test]
    fn lock_names_are_distinct_and_fit_the_server_s_limit() {
        let names = lock_names();
        assert_eq!(names.len(), 3 + SHA_BITS);
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(names.iter().all(|n| n.len() <= 64 && !n.contains('\'')));
    }

    #[test]
    fn the_fence_names_the_leader_and_its_boot() {
        let fence = Leadership {
            id: 42,
            taken_at: Timestamp::from_second(1_000).unwrap(),
        };
        let sql = fence_condition(&fence);
        assert!(
            sql.contains("IS_USED_LOCK('curfew_leader') <=> 42"),
            "{sql}"
        );
        assert!(sql.contains("boot_us <= 1000000000 + 2000000"), "{sql}");
    }
}
