//! The guarded termination statement and the exit check: their text, the building of their
//! parameters from [`Guard`]s, and the decoding of their rows into [`Signal`]s and exit times.

use curfew_backend::{EndRequest, IdleState, Outcome, Signal};
use curfew_policy::Decision;
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::PgError;
use crate::fence::Leadership;
use crate::sql::decode::col;

/// What the termination's errors say curfew was doing.
pub(crate) const WHAT: &str = "terminating sessions";

/// What the exit check's errors say curfew was doing.
pub(crate) const WHAT_EXITED: &str = "confirming terminations";

/// The `kind` the termination statement compares with the session's state.
fn idle_state_sql(state: IdleState) -> &'static str {
    match state {
        IdleState::Idle => "idle",
        IdleState::InTransaction => "in_transaction",
    }
}

/// What must still hold, at the moment of the signal, for a session to be ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The process.
    pub pid: i32,
    /// Its start: with the pid, the session's identity (pids are reused).
    pub backend_start: Timestamp,
    /// For idle rules: the state it must still be in, and since when (a statement in between
    /// resets the clock).
    pub idle_since: Option<(IdleState, Timestamp)>,
    /// Not before this instant on the server's clock (the deadline): an early signal is refused.
    pub not_before: Option<Timestamp>,
    /// For a session over a `max_sessions` limit: the older sessions that keep their places
    /// (pid, backend_start). All must still be there, or this session may now be within the
    /// limit and is left alone (the next snapshot ranks again).
    pub keepers: Vec<(i32, Timestamp)>,
}

impl Guard {
    /// The guard for an engine decision.
    pub fn for_decision(decision: &Decision) -> Guard {
        Guard::from(&EndRequest::for_decision(decision))
    }
}

/// An end request in PostgreSQL's terms: a session is a pid and its backend start.
impl From<&EndRequest> for Guard {
    fn from(request: &EndRequest) -> Guard {
        Guard {
            pid: pg_pid(request.session.pid),
            backend_start: request.session.backend_start,
            idle_since: request.idle_since,
            not_before: request.not_before,
            keepers: request
                .keepers
                .iter()
                .map(|k| (pg_pid(k.pid), k.backend_start))
                .collect(),
        }
    }
}

/// A session key's pid as PostgreSQL's `int4`. Keys are widened for adapters whose ids are
/// larger (MariaDB's); one that does not fit came from no PostgreSQL server and reads as pid
/// 0, which no backend has: its guard matches nothing and ends nothing.
pub(crate) fn pg_pid(pid: i64) -> i32 {
    i32::try_from(pid).unwrap_or(0)
}

/// Guarded termination of a batch, in one statement: for each session, re-check that the process
/// is still the same session (pid and backend_start: pids are reused), for idle rules that it is
/// still idle since the same moment (a statement in between resets the clock), and that the
/// server's clock has reached the deadline; then signal it. The clock is read after each signal:
/// the moment that session ended. Rows come back in the input's order (`n`).
/// Each session is read with `pg_stat_get_activity(pid)` rather than the `pg_stat_activity` view,
/// which builds a row for every backend: with thousands of sessions that made each termination
/// cost tens of milliseconds. (The server reads the activity table once per transaction, so the
/// checks all see one consistent picture.)
/// (`pg_terminate_backend(pid, timeout)` would confirm the exit too, but it polls in 100 ms
/// steps; the exits are confirmed with `EXITED` instead.)
///
/// For a session over a `max_sessions` limit, `$8`–`$10` list (by guard `n`) the older sessions
/// that keep their places: if one has gone, the session may be within the limit now, and it is
/// left alone.
///
/// It is fenced (see `crate::leader`): with a leader's lock session in `$6`/`$7`, nothing is
/// signalled unless that session is still alive (and so still holds the leader lock); the last
/// column says whether it was. `$6` NULL means unfenced.
pub(crate) fn terminate_sql() -> String {
    format!(
        "{TERMINATE_HEAD}{}{TERMINATE_TAIL}",
        crate::fence::leading_sql("$6::int4", "$7::timestamptz")
    )
}

const TERMINATE_HEAD: &str = "
WITH f AS (
  SELECT $6::int4 IS NULL OR ";

const TERMINATE_TAIL: &str = " AS leading
),
g AS (
  SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::timestamptz[])
    WITH ORDINALITY AS g(pid, backend_start, kind, since, not_before, n)
)
SELECT g.n, m.matched, m.early,
       CASE WHEN f.leading AND m.matched AND NOT m.early AND NOT m.refused
            THEN pg_terminate_backend(g.pid) END,
       clock_timestamp(), f.leading, m.refused
FROM g
CROSS JOIN f
LEFT JOIN LATERAL (
  SELECT s.pid, s.state, s.state_change, s.usesysid FROM pg_stat_get_activity(g.pid) s
  WHERE s.backend_start = g.backend_start
) a ON true
CROSS JOIN LATERAL (
  SELECT a.pid IS NOT NULL
         AND (g.kind IS NULL OR (a.state_change = g.since AND (
               (g.kind = 'idle' AND a.state = 'idle')
               OR (g.kind = 'in_transaction'
                   AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')))))
         -- Over a session limit only while every older session that keeps its place is there.
         AND NOT EXISTS (
           SELECT 1 FROM unnest($8::int8[], $9::int4[], $10::timestamptz[]) k(n, pid, backend_start)
           WHERE k.n = g.n AND NOT EXISTS (
             SELECT 1 FROM pg_stat_get_activity(k.pid) x WHERE x.backend_start = k.backend_start)
         ) AS matched,
         g.not_before IS NOT NULL AND clock_timestamp() < g.not_before AS early,
         -- Only a superuser may signal a superuser's session: asking anyway would fail the whole
         -- statement, and with it every other session of the batch.
         COALESCE((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false)
           AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) AS refused
) m
ORDER BY g.n";

/// For each signalled session, in order: whether its process is gone.
pub(crate) const EXITED: &str = "
SELECT NOT EXISTS (
  SELECT 1 FROM pg_stat_get_activity(g.pid) a WHERE a.backend_start = g.backend_start
), clock_timestamp()
FROM unnest($1::int4[], $2::timestamptz[]) WITH ORDINALITY AS g(pid, backend_start, n)
ORDER BY g.n";

/// The ten parameters of [`terminate_sql`] for a batch of guards, fenced by `fence` (`None`:
/// unfenced). Guards are numbered from 1 in their order (`n`), and keepers refer to them so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TerminateParams {
    pids: Vec<i32>,
    starts: Vec<Timestamp>,
    kinds: Vec<Option<&'static str>>,
    since: Vec<Option<Timestamp>>,
    not_before: Vec<Option<Timestamp>>,
    leader_pid: Option<i32>,
    leader_start: Option<Timestamp>,
    keeper_of: Vec<i64>,
    keeper_pids: Vec<i32>,
    keeper_starts: Vec<Timestamp>,
}

impl TerminateParams {
    /// The parameters for `guards`.
    pub(crate) fn new(guards: &[Guard], fence: Option<Leadership>) -> TerminateParams {
        let mut keeper_of: Vec<i64> = Vec::new();
        let mut keeper_pids: Vec<i32> = Vec::new();
        let mut keeper_starts: Vec<Timestamp> = Vec::new();
        for (n, guard) in (1i64..).zip(guards) {
            for (pid, start) in &guard.keepers {
                keeper_of.push(n);
                keeper_pids.push(*pid);
                keeper_starts.push(*start);
            }
        }
        TerminateParams {
            pids: guards.iter().map(|g| g.pid).collect(),
            starts: guards.iter().map(|g| g.backend_start).collect(),
            kinds: guards
                .iter()
                .map(|g| g.idle_since.map(|(k, _)| idle_state_sql(k)))
                .collect(),
            since: guards
                .iter()
                .map(|g| g.idle_since.map(|(_, t)| t))
                .collect(),
            not_before: guards.iter().map(|g| g.not_before).collect(),
            leader_pid: fence.map(|f| f.pid),
            leader_start: fence.map(|f| f.backend_start),
            keeper_of,
            keeper_pids,
            keeper_starts,
        }
    }

    /// `$1`–`$10`, in order.
    pub(crate) fn as_params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.pids,
            &self.starts,
            &self.kinds,
            &self.since,
            &self.not_before,
            &self.leader_pid,
            &self.leader_start,
            &self.keeper_of,
            &self.keeper_pids,
            &self.keeper_starts,
        ]
    }
}

/// One row of the termination statement, its columns extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TerminationRow {
    /// The guard's number, from 1.
    pub(crate) n: i64,
    pub(crate) matched: bool,
    pub(crate) early: bool,
    /// `pg_terminate_backend`'s answer, when it was called.
    pub(crate) signal: Option<bool>,
    pub(crate) at: Timestamp,
    /// Whether the fence held (the same in every row).
    pub(crate) leading: bool,
    pub(crate) refused: bool,
}

impl TerminationRow {
    /// The columns of one reply row; a column of an unexpected type is an error.
    pub(crate) fn extract(row: &Row, target: &str) -> Result<TerminationRow, PgError> {
        Ok(TerminationRow {
            n: col(row, 0, target, WHAT)?,
            matched: col(row, 1, target, WHAT)?,
            early: col(row, 2, target, WHAT)?,
            signal: col(row, 3, target, WHAT)?,
            at: col(row, 4, target, WHAT)?,
            leading: col(row, 5, target, WHAT)?,
            refused: col(row, 6, target, WHAT)?,
        })
    }
}

/// What the termination did to each of `guards` sessions, in the guards' order; `None` when
/// the fence did not hold (nothing was signalled). A guard without a row is a failure.
pub(crate) fn decode_signals(rows: &[TerminationRow], guards: usize) -> Option<Vec<Signal>> {
    // Fenced out: nothing was signalled, and nothing may be until this agent leads again.
    if rows.first().is_some_and(|first| !first.leading) {
        return None;
    }
    let mut signals = vec![
        Signal::Settled(Outcome::Failed {
            reason: "no result for the session".to_owned(),
            code: None,
        });
        guards
    ];
    for row in rows {
        let n = usize::try_from(row.n - 1).unwrap_or(usize::MAX);
        let at = row.at;
        if let Some(slot) = signals.get_mut(n) {
            *slot = match (row.matched, row.early, row.refused, row.signal) {
                (false, _, _, _) => Signal::Settled(Outcome::NoLongerMatched { at }),
                (true, true, _, _) => Signal::Settled(Outcome::NotYetDue { at }),
                (true, false, true, _) => Signal::Settled(Outcome::Failed {
                    reason: "the session belongs to a superuser, and only a superuser may end it (curfew's role is not one)".to_owned(),
                    code: None,
                }),
                (true, false, false, Some(true)) => Signal::Signalled { at },
                _ => Signal::Settled(Outcome::Failed {
                    reason: "PostgreSQL could not signal the process".to_owned(),
                    code: None,
                }),
            };
        }
    }
    Some(signals)
}

/// The two parameters of [`EXITED`] for sessions (pid, backend_start).
pub(crate) fn exited_params(sessions: &[(i32, Timestamp)]) -> (Vec<i32>, Vec<Timestamp>) {
    sessions.iter().copied().unzip()
}

/// One row of [`EXITED`]: the server's clock if the process is gone.
pub(crate) fn decode_exited(row: &Row, target: &str) -> Result<Option<Timestamp>, PgError> {
    let gone: bool = col(row, 0, target, WHAT_EXITED)?;
    let at: Timestamp = col(row, 1, target, WHAT_EXITED)?;
    Ok(gone.then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn row(
        n: i64,
        matched: bool,
        early: bool,
        refused: bool,
        signal: Option<bool>,
    ) -> TerminationRow {
        TerminationRow {
            n,
            matched,
            early,
            signal,
            at: at("2026-01-01T00:00:00Z"),
            leading: true,
            refused,
        }
    }

    fn guard(pid: i32) -> Guard {
        Guard {
            pid,
            backend_start: at("2026-01-01T00:00:00Z"),
            idle_since: None,
            not_before: None,
            keepers: Vec::new(),
        }
    }

    #[test]
    fn each_row_settles_its_own_guard() {
        let t = at("2026-01-01T00:00:00Z");
        let rows = [
            row(1, true, false, false, Some(true)),
            row(2, false, false, false, None),
            row(3, true, true, false, None),
            row(4, true, false, true, None),
            row(5, true, false, false, Some(false)),
        ];
        let signals = decode_signals(&rows, 6).unwrap();
        assert_eq!(signals[0], Signal::Signalled { at: t });
        assert_eq!(
            signals[1],
            Signal::Settled(Outcome::NoLongerMatched { at: t })
        );
        assert_eq!(signals[2], Signal::Settled(Outcome::NotYetDue { at: t }));
        let failed = |s: &Signal| match s {
            Signal::Settled(Outcome::Failed { reason, .. }) => reason.clone(),
            other => panic!("a failure expected: {other:?}"),
        };
        assert!(failed(&signals[3]).contains("only a superuser may end it"));
        assert_eq!(
            failed(&signals[4]),
            "PostgreSQL could not signal the process"
        );
        // No row for the sixth guard.
        assert_eq!(failed(&signals[5]), "no result for the session");
    }

    #[test]
    fn a_broken_fence_signals_nothing_and_stray_rows_are_ignored() {
        let mut fenced = row(1, true, false, false, Some(true));
        fenced.leading = false;
        assert_eq!(decode_signals(&[fenced], 1), None);
        let strays = [
            row(0, true, false, false, Some(true)),
            row(9, true, false, false, Some(true)),
        ];
        let signals = decode_signals(&strays, 1).unwrap();
        assert!(matches!(
            signals[0],
            Signal::Settled(Outcome::Failed { .. })
        ));
        assert_eq!(decode_signals(&[], 0), Some(Vec::new()));
    }

    #[test]
    fn keepers_are_numbered_by_their_guard_and_the_fence_fills_six_and_seven() {
        let start = at("2026-01-01T00:00:00Z");
        let mut second = guard(20);
        second.keepers = vec![(5, start), (6, start)];
        second.idle_since = Some((IdleState::InTransaction, start));
        let fence = Leadership {
            pid: 99,
            backend_start: start,
        };
        let params = TerminateParams::new(&[guard(10), second], Some(fence));
        assert_eq!(params.pids, [10, 20]);
        assert_eq!(params.kinds, [None, Some("in_transaction")]);
        assert_eq!(params.since, [None, Some(start)]);
        assert_eq!(params.keeper_of, [2, 2]);
        assert_eq!(params.keeper_pids, [5, 6]);
        assert_eq!(
            (params.leader_pid, params.leader_start),
            (Some(99), Some(start))
        );
        let unfenced = TerminateParams::new(&[guard(10)], None);
        assert_eq!((unfenced.leader_pid, unfenced.leader_start), (None, None));
        assert!(unfenced.keeper_of.is_empty());
        assert_eq!(
            exited_params(&[(1, start), (2, start)]),
            (vec![1, 2], vec![start, start])
        );
    }
}
