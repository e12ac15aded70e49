//! Reading the live sessions: the process list joined with InnoDB's transactions (and the
//! clients' program names where `performance_schema` has them), on the server's clock.
//!
//! Idle is `Sleep`; idle in transaction is `Sleep` with an open InnoDB transaction; any other
//! command is running, never idle. A transaction InnoDB has not started yet (`BEGIN` with no
//! statement since) is not open for InnoDB either, and reads as idle.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use curfew_backend::Snapshot;
use curfew_policy::{BackendType, ClientAddr, Session, SessionState};
use jiff::Timestamp;
use mysql_async::prelude::Queryable;

use crate::connect::{Connection, ProgramNames};
use crate::error::MysqlError;
use crate::grants::Flavor;
use crate::row::{column, micros};
use crate::seen::SeenSessions;

const WHAT: &str = "reading the process list";

/// The snapshot statement for a server: MariaDB's `TIME_MS` and `GLOBAL_STATUS` where it has
/// them, MySQL's `TIME` (whole seconds) and `performance_schema.global_status` otherwise; the
/// program names' join only where they can be read.
pub fn snapshot_sql(flavor: Flavor, program_names: bool) -> String {
    let (time_us, uptime) = match flavor {
        Flavor::MariaDb { .. } => (
            "CAST(p.TIME_MS * 1000 AS SIGNED)",
            "information_schema.GLOBAL_STATUS",
        ),
        Flavor::MySql => (
            "CAST(p.TIME AS SIGNED) * 1000000",
            "performance_schema.global_status",
        ),
    };
    let (program, join) = if program_names {
        (
            "a.ATTR_VALUE",
            "LEFT JOIN performance_schema.session_connect_attrs a \
             ON a.PROCESSLIST_ID = p.ID AND a.ATTR_NAME = 'program_name'",
        )
    } else {
        ("NULL", "")
    };
    format!(
        "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), \
         (SELECT CAST(VARIABLE_VALUE AS SIGNED) FROM {uptime} WHERE VARIABLE_NAME = 'UPTIME'), \
         p.ID, p.USER, p.HOST, p.DB, p.COMMAND, {time_us}, \
         CAST(UNIX_TIMESTAMP(t.trx_started) * 1000000 AS SIGNED), {program} \
         FROM information_schema.PROCESSLIST p \
         LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID {join}"
    )
}

/// One row of the snapshot statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    /// The server's clock, microseconds since the epoch.
    pub now_us: i64,
    /// The server's `Uptime`, seconds.
    pub uptime_s: i64,
    /// `ID`.
    pub id: u64,
    /// `USER`.
    pub user: String,
    /// `HOST`.
    pub host: String,
    /// `DB`.
    pub db: Option<String>,
    /// `COMMAND`.
    pub command: String,
    /// How long it has been in its current command, microseconds.
    pub time_us: i64,
    /// When its InnoDB transaction started, if it has one.
    pub trx_started_us: Option<i64>,
    /// Its `program_name` attribute, where known.
    pub program: Option<String>,
}

impl ProcessRow {
    fn extract(row: &mysql_async::Row, target: &str) -> Result<ProcessRow, MysqlError> {
        Ok(ProcessRow {
            now_us: column(row, 0, target, WHAT)?,
            uptime_s: column(row, 1, target, WHAT)?,
            id: column(row, 2, target, WHAT)?,
            user: column(row, 3, target, WHAT)?,
            host: column(row, 4, target, WHAT)?,
            db: column(row, 5, target, WHAT)?,
            command: column(row, 6, target, WHAT)?,
            time_us: column(row, 7, target, WHAT)?,
            trx_started_us: column(row, 8, target, WHAT)?,
            program: column(row, 9, target, WHAT)?,
        })
    }
}

/// Commands of server threads, not clients: never ended, never counted as idle.
const SERVER_COMMANDS: [&str; 7] = [
    "Daemon",
    "Binlog Dump",
    "Binlog Dump GTID",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Connect",
];

/// Users the server gives its own threads and connections still logging in.
const SERVER_USERS: [&str; 4] = [
    "system user",
    "event_scheduler",
    "unauthenticated user",
    "delayed",
];

/// The engine's view of the rows (curfew's own connection `own_id` left out), remembering each
/// session in `seen`.
pub(crate) fn decode_snapshot(
    rows: Vec<ProcessRow>,
    own_id: u64,
    seen: &mut SeenSessions,
    target: &str,
) -> Result<Snapshot, MysqlError> {
    let Some(first) = rows.first() else {
        return Err(MysqlError::decode(
            target,
            WHAT,
            "no rows (curfew's own connection is always listed)",
        ));
    };
    let now = micros(first.now_us, target, WHAT)?;
    let booted_at = crate::seen::booted_at(now, first.uptime_s);
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let mut share = |text: &str| -> Arc<str> {
        names
            .entry(text.to_owned())
            .or_insert_with(|| Arc::from(text))
            .clone()
    };
    let no_groups: Arc<[String]> = Arc::from(Vec::new());
    let mut sessions = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.id == own_id {
            continue;
        }
        let since = micros(row.now_us.saturating_sub(row.time_us.max(0)), target, WHAT)?;
        let seen_session = seen.observe(
            row.id,
            &row.user,
            &row.host,
            booted_at,
            since.max(booted_at),
        );
        let pid = i64::try_from(row.id).map_err(|_| {
            MysqlError::decode(
                target,
                WHAT,
                format!("connection id {} is beyond 2^63", row.id),
            )
        })?;
        let in_transaction = row.trx_started_us.is_some();
        let state = match row.command.as_str() {
            "Sleep" if in_transaction => SessionState::IdleInTransaction,
            "Sleep" => SessionState::Idle,
            _ => SessionState::Active,
        };
        let server_thread = SERVER_COMMANDS.contains(&row.command.as_str())
            || SERVER_USERS.contains(&row.user.as_str());
        // `Uptime` is whole seconds, so the boot estimate can be up to a second late and the
        // start clamped to it can fall after the current command's: a session's state never
        // changes before it started (its idleness is understated, never overstated).
        let since = since.max(seen_session.started_at);
        sessions.push(Session {
            pid,
            backend_start: seen_session.started_at,
            xact_start: row
                .trx_started_us
                .map(|us| micros(us, target, WHAT))
                .transpose()?,
            state,
            state_change: Some(since),
            role: share(&row.user),
            member_of: no_groups.clone(),
            database: share(row.db.as_deref().unwrap_or("")),
            client_addr: client_origin(&row.host),
            application: share(row.program.as_deref().unwrap_or("")),
            backend_type: if server_thread {
                BackendType::Other(row.command.clone())
            } else {
                BackendType::ClientBackend
            },
        });
    }
    let present: HashSet<u64> = rows.iter().map(|r| r.id).collect();
    seen.retain(|id| present.contains(&id));
    Ok(Snapshot::new(now, sessions))
}

/// Whether a process-list row is one of curfew's own connections: a session of curfew's
/// account presenting curfew's program name or none at all, or (where program names are
/// unknown) any session of curfew's account, as PostgreSQL leaves out curfew's role with its
/// application name. No program name counts as curfew's because mysql_async 0.37 loses its
/// connection attributes over TLS (its SSL request does not announce them, and MariaDB takes
/// the client's capabilities from that packet): curfew's own TLS connections show none.
pub fn curfew_connection(row: &ProcessRow, own_user: &str, program_names_known: bool) -> bool {
    row.user == own_user
        && (!program_names_known
            || matches!(
                row.program.as_deref(),
                None | Some(crate::connect::PROGRAM_NAME)
            ))
}

/// Where the client connects from, per the process list's `HOST`: `10.0.0.1:5000`,
/// `[::1]:5000` or `::1:5000` is TCP from that address; `localhost` (no port) or nothing is a
/// socket; `name:port` is TCP from an address the server resolved to `name` (with
/// `skip_name_resolve` off, `localhost:5000` for a client of 127.0.0.1): the address is
/// unknown, never taken for a socket. Any other text without a port is unknown too.
pub fn client_origin(host: &str) -> ClientAddr {
    if host.is_empty() || host == "localhost" {
        return ClientAddr::Socket;
    }
    // The port first: a TCP client's `HOST` always ends in one, and `::1:5000` would also
    // read as one IPv6 address.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            let bracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
            if let Ok(ip) = bracketed.unwrap_or(name).parse::<IpAddr>() {
                return ClientAddr::Ip(ip);
            }
            name
        }
        _ => {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return ClientAddr::Ip(ip);
            }
            host
        }
    };
    ClientAddr::Unresolved(Arc::from(name))
}

/// The client's address, when the process list's `HOST` shows one; None for a socket *and* for
/// a host name, so only where the two need no telling apart ([`client_origin`] does).
pub fn client_address(host: &str) -> Option<IpAddr> {
    client_origin(host).ip()
}

impl Connection {
    /// Every client session except curfew's own: this connection, the login-lock ledger's, and
    /// (as on PostgreSQL) any other of curfew's account presenting the program name `curfew`
    /// (another agent's, `curfew lock`'s) or, where program names are unknown, any other of
    /// curfew's account at all; on the server's clock.
    pub async fn snapshot(&mut self) -> Result<Snapshot, MysqlError> {
        let sql = snapshot_sql(
            self.info.flavor,
            self.info.program_names == ProgramNames::Attributes,
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .query(sql)
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let mut rows = rows
            .iter()
            .map(|r| ProcessRow::extract(r, &self.target))
            .collect::<Result<Vec<_>, _>>()?;
        let names_known = self.info.program_names == ProgramNames::Attributes;
        let ledger = self.ledger.connection_id();
        // Never an agent's own connections (its lock connection, the login-lock ledger's,
        // other replicas'): a rule that covers curfew's account would otherwise end the leader
        // lock's session. This connection's own row stays (left out later): every row carries
        // the server's clock.
        let own = self.info.connection_id;
        rows.retain(|r| {
            r.id == own
                || !(curfew_connection(r, &self.info.user, names_known)
                    || (Some(r.id) == ledger && r.user == self.info.user))
        });
        decode_snapshot(rows, own, &mut self.seen, &self.target)
    }

    /// The server's clock now.
    pub async fn server_now(&mut self) -> Result<Timestamp, MysqlError> {
        const NOW: &str = "reading the server's clock";
        let us: Option<i64> = self
            .conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await
            .map_err(|e| MysqlError::query(&self.target, NOW, e))?;
        micros(
            us.ok_or_else(|| MysqlError::decode(&self.target, NOW, "no row"))?,
            &self.target,
            NOW,
        )
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
