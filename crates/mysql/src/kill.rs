//! Ending sessions with `KILL CONNECTION`, re-checked immediately before. There is no
//! conditional `KILL`, so on MariaDB one compound statement (`BEGIN NOT ATOMIC`, one round
//! trip) re-reads each session (id, account, boot, idleness, the deadline, the keepers) and
//! kills it only if all still hold; the race left is the server's own time between that
//! re-read and the `KILL`, inside one statement. A refusal for one session is its verdict, not
//! the batch's.
//!
//! Measured (`tests/kill.rs`, MariaDB 10.11 in the sandbox, two shared cores): the whole
//! statement took 1.7 ms on the server for one session and 35 ms for 19, about 2 ms per
//! session, most of it each re-check's scan of the process list; a session's own window
//! between its re-check and its `KILL` is a part of its 2 ms. A statement the client sends
//! in that window is killed with the session. A server restart is detected twice: curfew's
//! connection dies with it (a new one knows no earlier session), and the boot instant each
//! request carries must match the server's within [`SAME_BOOT_TOLERANCE`].

use curfew_backend::{IdleState, Outcome, Signal};
use jiff::{SignedDuration, Timestamp};
use mysql_async::prelude::Queryable;

use crate::connect::Connection;
use crate::error::MysqlError;
use crate::grants::Flavor;
use crate::leader_lock::{Leadership, fence_condition};
use crate::names::string_literal;
use crate::row::{column, micros};
use crate::seen::{SAME_BOOT_TOLERANCE, SeenSession};

const WHAT: &str = "ending sessions (KILL CONNECTION)";

/// How much later than judged an idle session's idleness may appear to start and still be the
/// same idleness (the process list's time is in milliseconds; any statement in between moves
/// it by far more, to after the snapshot).
const IDLE_TOLERANCE_US: i64 = 50_000;

/// What must still hold when a session is killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillRequest {
    /// The session, as a snapshot saw it.
    pub session: SeenSession,
    /// For idle rules: the state it must still be in, and since when.
    pub idle_since: Option<(IdleState, Timestamp)>,
    /// Not before this instant of the server's clock.
    pub not_before: Option<Timestamp>,
    /// Sessions that must all still be there (a session cap's older sessions).
    pub keepers: Vec<SeenSession>,
}

/// The server's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillAnswer {
    /// One verdict per request, in order.
    pub verdicts: Vec<Verdict>,
    /// The server's clock when it began.
    pub at: Timestamp,
    /// How long the whole statement took on the server: an upper bound of the time between
    /// any request's re-check and its `KILL` (the race that remains).
    pub took: SignedDuration,
}

/// What the server did about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything held and `KILL CONNECTION` was run.
    Killed,
    /// Something had changed; nothing was done.
    NoLongerMatched,
    /// The deadline had not come; nothing was done.
    NotYetDue,
    /// The server refused, with its error number.
    Refused(u16),
    /// The fence failed: the leader this connection acts for no longer holds the leader lock
    /// (or the server restarted since it took it); nothing was done.
    NotLeading,
}

/// The condition under which the session still is the one requested (SQL, over `p`, the
/// process list row, with `now_us` in scope).
fn same_session(s: &SeenSession) -> String {
    format!(
        "p.ID = {} AND p.USER = {} AND p.HOST = {}",
        s.id,
        string_literal(&s.user),
        string_literal(&s.host)
    )
}

fn request_check(r: &KillRequest) -> String {
    let mut check = same_session(&r.session);
    if let Some((state, since)) = r.idle_since {
        let trx = "EXISTS (SELECT 1 FROM information_schema.INNODB_TRX t \
                   WHERE t.trx_mysql_thread_id = p.ID)";
        let trx = match state {
            IdleState::Idle => format!("NOT {trx}"),
            IdleState::InTransaction => trx.to_owned(),
        };
        check.push_str(&format!(
            " AND p.COMMAND = 'Sleep' AND {trx} \
             AND now_us - CAST(p.TIME_MS * 1000 AS SIGNED) <= {}",
            since.as_microsecond() + IDLE_TOLERANCE_US
        ));
    }
    let mut sql = format!("EXISTS (SELECT 1 FROM information_schema.PROCESSLIST p WHERE {check})");
    if !r.keepers.is_empty() {
        let keepers: Vec<String> = r
            .keepers
            .iter()
            .map(|k| format!("({})", same_session(k)))
            .collect();
        sql.push_str(&format!(
            " AND (SELECT COUNT(*) FROM information_schema.PROCESSLIST p WHERE {}) = {}",
            keepers.join(" OR "),
            r.keepers.len()
        ));
    }
    sql
}

/// MariaDB's compound statement for a batch, unfenced (see [`fenced_kill_block_sql`]).
pub fn kill_block_sql(requests: &[KillRequest]) -> String {
    fenced_kill_block_sql(requests, None)
}

/// MariaDB's compound statement for a batch: one verdict letter per request, in order, comma
/// separated (`K`, `N`, `D`, `F<errno>`, `L` when `fence` no longer leads, checked immediately
/// before each `KILL`), and the server's clock.
pub fn fenced_kill_block_sql(requests: &[KillRequest], fence: Option<&Leadership>) -> String {
    let fence = fence.map_or_else(
        || "FALSE".to_owned(),
        |f| format!("NOT {}", fence_condition(f)),
    );
    let mut sql = String::from(
        "BEGIN NOT ATOMIC \
         DECLARE v TEXT DEFAULT ''; \
         DECLARE now_us BIGINT DEFAULT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED); \
         DECLARE boot_us BIGINT DEFAULT now_us - 1000000 * (SELECT CAST(VARIABLE_VALUE AS SIGNED) \
         FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'); ",
    );
    let tolerance = SAME_BOOT_TOLERANCE.as_micros();
    for r in requests {
        let boot = r.session.booted_at.as_microsecond();
        let due = r.not_before.map_or_else(
            || "FALSE".to_owned(),
            |t| format!("now_us < {}", t.as_microsecond()),
        );
        sql.push_str(&format!(
            "BEGIN \
             DECLARE e INT DEFAULT 0; \
             DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN \
             GET DIAGNOSTICS CONDITION 1 e = MYSQL_ERRNO; SET v = CONCAT(v, 'F', e, ','); END; \
             IF {fence} THEN SET v = CONCAT(v, 'L,'); \
             ELSEIF ABS(boot_us - {boot}) > {tolerance} THEN SET v = CONCAT(v, 'N,'); \
             ELSEIF {due} THEN SET v = CONCAT(v, 'D,'); \
             ELSEIF {check} THEN KILL CONNECTION {id}; SET v = CONCAT(v, 'K,'); \
             ELSE SET v = CONCAT(v, 'N,'); END IF; \
             END; ",
            check = request_check(r),
            id = r.session.id,
        ));
    }
    // SYSDATE is the clock when it is read (NOW is fixed per statement): the whole block's
    // time on the server bounds every request's window between its re-check and its KILL.
    sql.push_str(
        "SELECT v, now_us, CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED) - now_us; END",
    );
    sql
}

/// The verdicts in the block's answer, if it holds exactly `count` of them.
pub fn parse_verdicts(text: &str, count: usize) -> Option<Vec<Verdict>> {
    let verdicts: Option<Vec<Verdict>> = text
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| match v {
            "K" => Some(Verdict::Killed),
            "N" => Some(Verdict::NoLongerMatched),
            "D" => Some(Verdict::NotYetDue),
            "L" => Some(Verdict::NotLeading),
            _ => v.strip_prefix('F')?.parse().ok().map(Verdict::Refused),
        })
        .collect();
    verdicts.filter(|v| v.len() == count)
}

/// The loop's answer for a verdict given at `at` on the server's clock.
pub fn signal(verdict: &Verdict, at: Timestamp) -> Signal {
    match verdict {
        Verdict::Killed => Signal::Signalled { at },
        Verdict::NoLongerMatched => Signal::Settled(Outcome::NoLongerMatched { at }),
        Verdict::NotYetDue => Signal::Settled(Outcome::NotYetDue { at }),
        Verdict::NotLeading => Signal::Settled(Outcome::Failed {
            reason: "this agent no longer leads (the leader lock's fence failed)".to_owned(),
            code: None,
        }),
        Verdict::Refused(code) => Signal::Settled(Outcome::Failed {
            reason: match code {
                1094 => "the server knows no such connection (error 1094)".to_owned(),
                1095 => "curfew's account may not end this session (error 1095: not the owner \
                         of the thread; the account needs CONNECTION ADMIN)"
                    .to_owned(),
                other => format!("the server refused KILL CONNECTION (error {other})"),
            },
            code: Some(code.to_string()),
        }),
    }
}

impl Connection {
    /// Kill every session whose request still holds, re-checked on the server immediately
    /// before, in one round trip; the answers come in the requests' order.
    pub async fn kill_all(&mut self, requests: &[KillRequest]) -> Result<KillAnswer, MysqlError> {
        if requests.is_empty() {
            return Ok(KillAnswer {
                verdicts: Vec::new(),
                at: Timestamp::UNIX_EPOCH,
                took: SignedDuration::ZERO,
            });
        }
        if self.info.flavor == Flavor::MySql {
            return Err(MysqlError::Unsupported {
                target: self.target.clone(),
                what: "ending sessions on MySQL (it has no compound statements outside stored \
                       programs; the re-checked KILL is MariaDB's only, for now)",
            });
        }
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(fenced_kill_block_sql(
                requests,
                self.leader_fence().as_ref(),
            ))
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let row = row.ok_or_else(|| MysqlError::decode(&self.target, WHAT, "no row"))?;
        let text: String = column(&row, 0, &self.target, WHAT)?;
        let at = micros(column(&row, 1, &self.target, WHAT)?, &self.target, WHAT)?;
        let took: i64 = column(&row, 2, &self.target, WHAT)?;
        let verdicts = parse_verdicts(&text, requests.len()).ok_or_else(|| {
            MysqlError::decode(&self.target, WHAT, format!("verdicts \"{text}\""))
        })?;
        // A fence that failed for one request failed for the batch: this agent does not lead.
        if verdicts.contains(&Verdict::NotLeading) {
            return Err(MysqlError::NotLeading {
                target: self.target.clone(),
            });
        }
        Ok(KillAnswer {
            verdicts,
            at,
            took: SignedDuration::from_micros(took),
        })
    }

    /// For each session, the server's clock if it is gone (its id no longer listed for the
    /// same account, or the server restarted since).
    pub async fn gone(
        &mut self,
        sessions: &[SeenSession],
    ) -> Result<Vec<Option<Timestamp>>, MysqlError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let checks: Vec<String> = sessions
            .iter()
            .map(|s| {
                format!(
                    "EXISTS (SELECT 1 FROM information_schema.PROCESSLIST p WHERE {})",
                    same_session(s)
                )
            })
            .collect();
        let sql = format!(
            "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), {}",
            checks.join(", ")
        );
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let row = row.ok_or_else(|| MysqlError::decode(&self.target, WHAT, "no row"))?;
        let now = micros(column(&row, 0, &self.target, WHAT)?, &self.target, WHAT)?;
        let restarted = !crate::seen::same_boot(self.info.booted_at, sessions[0].booted_at);
        let mut gone = Vec::with_capacity(sessions.len());
        for (i, s) in sessions.iter().enumerate() {
            let present: i64 = column(&row, i + 1, &self.target, WHAT)?;
            let restarted = restarted || !crate::seen::same_boot(self.info.booted_at, s.booted_at);
            gone.push((present == 0 || restarted).then_some(now));
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_strictly() {
        assert_eq!(
            parse_verdicts("K,N,D,F1095,", 4),
            Some(vec![
                Verdict::Killed,
                Verdict::NoLongerMatched,
                Verdict::NotYetDue,
                Verdict::Refused(1095)
            ])
        );
        assert_eq!(parse_verdicts("L,", 1), Some(vec![Verdict::NotLeading]));
        assert_eq!(parse_verdicts("K,", 2), None);
        assert_eq!(parse_verdicts("K,X,", 2), None);
        assert_eq!(parse_verdicts("Fabc,", 1), None);
    }

    #[test]
    fn a_quote_in_a_user_name_stays_inside_its_literal() {
        let s = SeenSession {
            id: 12,
            user: "o'brien\\".to_owned(),
            host: "10.0.0.1:5000".to_owned(),
            booted_at: Timestamp::UNIX_EPOCH,
            started_at: Timestamp::UNIX_EPOCH,
        };
        let sql = kill_block_sql(&[KillRequest {
            session: s,
            idle_since: None,
            not_before: None,
            keepers: Vec::new(),
        }]);
        assert!(!sql.contains("o'brien"), "{sql}");
        assert!(sql.contains("KILL CONNECTION 12;"), "{sql}");
    }
}
