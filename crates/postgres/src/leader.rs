//! Leadership among agent replicas: a session-level advisory lock on a dedicated connection.
//! PostgreSQL is the coordination service: the lock is released when the holder's session ends,
//! whatever ended it.
//!
//! Holding the lock is not enough to act safely: the leader's lock connection may be gone on the
//! server while the agent has not noticed yet, and another replica may already lead. So every
//! action is *fenced*: the statement that ends sessions, and the transaction that changes a
//! login, check on the server, in the same statement, that the leader's lock session (pid and
//! start time) is still alive. curfew never unlocks the lock on that session, so the session
//! alive means the lock held; a replica whose lock session ended cannot act. (Checking
//! `pg_locks` instead would cost a scan of the whole lock table per termination: 6 ms with 2000
//! sessions, measured.) One gap remains, inside PostgreSQL: an exiting backend releases its
//! advisory locks a moment (well under a millisecond) before it leaves `pg_stat_activity`. A new
//! leader would have to take the lock and act within that moment while the old one acts too;
//! and even then each termination's own guard makes a second signal to the same session a
//! no-op. Connect directly, not through a pooler: a pooler may run `DISCARD ALL`, which releases
//! the lock while the server session lives on.

use jiff::Timestamp;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

/// The advisory lock key that elects one agent per server (per database: advisory locks are
/// scoped to the database of the connection). `pg_locks` shows it as classid 1668676813,
/// objid 2871492352, objsubid 1 (see `LEADING`).
pub const LEADER_KEY: i64 = 7_166_912_342_300_000_000;

/// SQL: the `pg_locks` row (alias `l`) of the leader lock, in any database.
const LOCK_ROW: &str = "l.locktype = 'advisory'
      AND l.classid = 1668676813 AND l.objid = 2871492352 AND l.objsubid = 1";

/// SQL: true while the lock session with pid `{pid}` and start `{start}` is alive.
const LEADING: &str =
    "EXISTS (SELECT 1 FROM pg_stat_get_activity({pid}) a WHERE a.backend_start = {start})";

/// The fence condition over the given parameter placeholders (e.g. `$6::int4`).
pub(crate) fn leading_sql(pid: &str, start: &str) -> String {
    LEADING.replace("{pid}", pid).replace("{start}", start)
}

/// The session that holds a target's leader lock: the leader's lock connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// Its backend pid.
    pub pid: i32,
    /// Its backend start (pids are reused).
    pub backend_start: Timestamp,
}

/// Who holds the leader lock, as far as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The holder's backend pid.
    pub pid: i32,
    /// Its client address, if it connected over TCP.
    pub client_addr: Option<String>,
    /// When its session started (about when it became leader, or shortly before).
    pub backend_start: Option<Timestamp>,
    /// The database it is connected to.
    pub database: Option<String>,
    /// Its `application_name`: a curfew agent announces its mode and policy there
    /// ([`Connection::announce`]).
    pub application: Option<String>,
    /// The holder's role (None: not a client session, e.g. a prepared transaction).
    pub role: Option<String>,
    /// Whether the holder is a session of the role curfew is connected as. Only such a session
    /// can be a curfew agent: any role can take an advisory lock and set its application name.
    pub own_role: bool,
    /// Whether it holds the lock (else it waits for it).
    pub granted: bool,
}

impl LeaderInfo {
    /// The holder in words: "session 4242 of role \"mallory\" from 10.0.0.5 on database
    /// \"app\", since ...".
    pub fn describe(&self) -> String {
        if self.backend_start.is_none() && self.role.is_none() {
            return format!(
                "a prepared transaction on database \"{}\" (no session to end: a superuser must ROLLBACK PREPARED it; see pg_prepared_xacts)",
                curfew_policy::visible(self.database.as_deref().unwrap_or("?"))
            );
        }
        // Names and addresses are the holder's own: shown, never obeyed.
        curfew_policy::visible(&format!(
            "session {} of role \"{}\" from {} on database \"{}\", since {}",
            self.pid,
            self.role.as_deref().unwrap_or("?"),
            self.client_addr.as_deref().unwrap_or("a local socket"),
            self.database.as_deref().unwrap_or("?"),
            self.backend_start.map_or_else(
                || "?".to_owned(),
                |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()
            ),
        ))
        .into_owned()
    }
}

impl Connection {
    /// Try to take the leader lock on this connection (which should do nothing else and must
    /// never unlock it). `Some` when this connection holds it now. A lock held by a replica
    /// connected to another database of the same server counts as taken: advisory locks are
    /// per database, and two leaders on one server would end the same sessions.
    pub async fn try_lead(&mut self) -> Result<Option<Leadership>, PgError> {
        let failed = |e| PgError::query(&self.target, "taking the leader lock", e);
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1),
                        (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()))",
                &[&LEADER_KEY],
            )
            .await
            .map_err(failed)?;
        let what = "taking the leader lock";
        let held: bool = col(&row, 0, &self.target, what)?;
        let backend_start: Option<Timestamp> = col(&row, 1, &self.target, what)?;
        let (true, Some(backend_start)) = (held, backend_start) else {
            return Ok(None);
        };
        if self.leads.is_none() {
            let row = self
                .client
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks l
                                        WHERE {LOCK_ROW} AND l.granted
                                          AND l.pid IS DISTINCT FROM pg_backend_pid())"
                    ),
                    &[],
                )
                .await
                .map_err(failed)?;
            let elsewhere: bool = col(&row, 0, &self.target, what)?;
            if elsewhere {
                self.client
                    .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_KEY])
                    .await
                    .map_err(failed)?;
                return Ok(None);
            }
        } else {
            // Taken again by its holder: keep the count at one.
            self.client
                .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_KEY])
                .await
                .map_err(failed)?;
        }
        let leadership = Leadership {
            pid: self.info.backend_pid,
            backend_start,
        };
        self.leads = Some(leadership);
        Ok(Some(leadership))
    }

    /// Whether this connection still holds the leader lock: it took it, and its session still
    /// answers as the same one (a heartbeat round trip: a session that answers has not lost it).
    pub async fn still_leads(&self) -> Result<bool, PgError> {
        let Some(leadership) = self.leads else {
            return Ok(false);
        };
        let row = self
            .client
            .query_one(
                &format!("SELECT {}", leading_sql("$1::int4", "$2::timestamptz")),
                &[&leadership.pid, &leadership.backend_start],
            )
            .await
            .map_err(|e| PgError::query(&self.target, "checking the leader lock", e))?;
        col(&row, 0, &self.target, "checking the leader lock")
    }

    /// Who holds the leader lock now, if anyone: a session of curfew's own role first (see
    /// [`Connection::lock_holders`]).
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, PgError> {
        Ok(self.lock_holders().await?.into_iter().find(|h| h.granted))
    }

    /// Every other session that holds the leader lock, in any database (advisory locks are per
    /// database, so several may), or waits for it: holders first, sessions of curfew's own role
    /// first. Any role may take an advisory lock: a holder of another role is a squatter, never
    /// a curfew agent; so is a session of another role waiting for it (it would get the lock
    /// the moment a squatter ahead of it is ended).
    pub async fn lock_holders(&self) -> Result<Vec<LeaderInfo>, PgError> {
        let what = "finding the leader";
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT l.pid, host(a.client_addr), a.backend_start, d.datname::text,
                            a.application_name, a.usename::text,
                            COALESCE(a.usesysid = (SELECT oid FROM pg_roles
                                                   WHERE rolname = current_user), false),
                            l.granted
                     FROM pg_locks l
                     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                     LEFT JOIN pg_database d ON d.oid = l.database
                     WHERE {LOCK_ROW} AND l.pid IS DISTINCT FROM pg_backend_pid()
                     ORDER BY 8 DESC, 7 DESC, a.backend_start NULLS LAST, l.pid"
                ),
                &[],
            )
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?;
        rows.iter()
            .map(|r| {
                Ok(LeaderInfo {
                    pid: col::<Option<i32>>(r, 0, &self.target, what)?.unwrap_or(0),
                    client_addr: col(r, 1, &self.target, what)?,
                    backend_start: col(r, 2, &self.target, what)?,
                    database: col(r, 3, &self.target, what)?,
                    application: col(r, 4, &self.target, what)?,
                    role: col(r, 5, &self.target, what)?,
                    own_role: col(r, 6, &self.target, what)?,
                    granted: col(r, 7, &self.target, what)?,
                })
            })
            .collect()
    }

    /// Show `text` as this session's `application_name`, where `pg_stat_activity` and
    /// `curfew check` see it: the leader announces its mode and policy on its lock session.
    pub async fn announce(&self, text: &str) -> Result<(), PgError> {
        self.client
            .execute("SELECT set_config('application_name', $1, false)", &[&text])
            .await
            .map(drop)
            .map_err(|e| PgError::query(&self.target, "announcing the agent", e))
    }

    /// One round trip: the connection and the server still answer.
    pub async fn ping(&self) -> Result<(), PgError> {
        self.client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| PgError::query(&self.target, "checking the connection", e))
    }

    /// Fence this connection's actions: from now on, sessions are ended and logins changed
    /// only while `leadership` holds the leader lock (checked by the server in the same
    /// statement). `None` removes the fence (a single process with no replicas, or tests).
    pub fn fence(&mut self, leadership: Option<Leadership>) {
        self.fence = leadership;
    }

    /// The NotLeading error for this connection.
    pub(crate) fn not_leading(&self) -> PgError {
        PgError::NotLeading {
            target: self.target.clone(),
        }
    }
}

/// What a leading agent shows as its lock session's `application_name`: its mode and the
/// start of its policy's SHA-256, e.g. `curfew agent: enforcing policy sha256:0123456789ab`
/// (at most 63 bytes, PostgreSQL's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The agent only records what it would do.
    pub dry_run: bool,
    /// The first 12 hex digits of its policy's SHA-256.
    pub sha256_prefix: String,
}

impl Announcement {
    /// The text for an agent in this mode with this policy.
    pub fn text(dry_run: bool, sha256: &str) -> String {
        format!(
            "curfew agent: {} policy sha256:{}",
            if dry_run { "dry run of" } else { "enforcing" },
            sha256.get(..12).unwrap_or(sha256)
        )
    }

    /// Read an announcement back; `None` for any other application name.
    pub fn parse(text: &str) -> Option<Announcement> {
        let rest = text.strip_prefix("curfew agent: ")?;
        let (dry_run, rest) = match rest.strip_prefix("dry run of policy sha256:") {
            Some(sha) => (true, sha),
            None => (false, rest.strip_prefix("enforcing policy sha256:")?),
        };
        // Exactly the 12 hex digits an agent writes: an empty or short prefix would match any
        // policy's hash.
        if rest.len() != 12 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Announcement {
            dry_run,
            sha256_prefix: rest.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_locks_shows_the_key_as_its_two_halves() {
        let (high, low) = (1_668_676_813_i64, 2_871_492_352_i64);
        assert_eq!((high << 32) | low, LEADER_KEY);
        assert!(LOCK_ROW.contains(&format!("l.classid = {high}")));
        assert!(LOCK_ROW.contains(&format!("l.objid = {low}")));
        let sql = leading_sql("$6", "$7");
        assert!(!sql.contains('{'), "{sql}");
    }

    #[test]
    fn announcements_fit_and_read_back() {
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for dry_run in [false, true] {
            let text = Announcement::text(dry_run, sha);
            assert!(text.len() <= 63, "{text}");
            assert_eq!(
                Announcement::parse(&text),
                Some(Announcement {
                    dry_run,
                    sha256_prefix: "0123456789ab".to_owned()
                })
            );
        }
        assert_eq!(Announcement::parse("curfew"), None);
        assert_eq!(
            Announcement::parse("curfew agent: enforcing policy sha256:"),
            None
        );
        assert_eq!(
            Announcement::parse("curfew agent: enforcing policy sha256:0123"),
            None
        );
        assert_eq!(Announcement::parse("psql"), None);
    }
}
