//! Leadership among agent replicas on MariaDB/MySQL: a user-level lock (`GET_LOCK`) held by a
//! dedicated connection. The server releases it when that connection ends, whatever ended it,
//! and user-level locks are server-wide (not per database), so one server has one leader.
//!
//! Any account can call `GET_LOCK` with any name, so a holder of another account is a squatter
//! (reported and ended by the agent, as on PostgreSQL), and every `KILL` is *fenced*: the
//! compound statement that kills re-checks, immediately before each `KILL`, that the lock is
//! still held by the leader's connection (`IS_USED_LOCK`) and that the server has not restarted
//! since it was taken (connection ids start again after a restart).
//!
//! The announcement (the leader's mode and policy) must be readable by any agent of curfew's
//! account without `performance_schema`, which MariaDB ships off. A connection's attributes are
//! fixed at connect and its user variables are private, so the leader announces with more user
//! locks: `curfew_leader:announced`, `curfew_leader:dry_run` and one lock per bit of the
//! policy's 12-hex-digit hash prefix (`curfew_leader:sha256:00`..`47`), each held when set.
//! Readers ask `IS_USED_LOCK` for each name and count only the locks held by the leader's
//! connection: another session cannot take a lock on the leader's behalf, so the announcement
//! cannot be forged, and one holding an announcement lock is a squatter like the leader lock's.

use curfew_backend::LockHolder;
use jiff::{SignedDuration, Timestamp};
use mysql_async::prelude::Queryable;

use crate::connect::Connection;
use crate::error::MysqlError;
use crate::grants::Flavor;
use crate::leader_lock::{
    ANNOUNCED, LEADER_LOCK, Leadership, announcement_locks, lock_names, read_announcement,
};
use crate::row::{column, micros};
use crate::snapshot::client_origin;

const WHAT_TAKE: &str = "taking the leader lock (GET_LOCK)";
const WHAT_CHECK: &str = "checking the leader lock";
const WHAT_HOLDERS: &str = "finding the leader lock's holders";
const WHAT_ANNOUNCE: &str = "announcing the agent (its announcement locks)";

/// `SELECT` of each name's holder, after the connection's own id and the server's clock.
fn used_by_sql(names: &[String]) -> String {
    let used: Vec<String> = names
        .iter()
        .map(|n| format!("IS_USED_LOCK('{n}')"))
        .collect();
    format!(
        "SELECT CONNECTION_ID(), CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), {}",
        used.join(", ")
    )
}

/// One process-list row of a lock holder.
struct HolderRow {
    id: u64,
    user: String,
    host: String,
    db: Option<String>,
    time_us: i64,
}

impl Connection {
    /// The leadership this connection's kills are fenced on, if any.
    pub(crate) fn leader_fence(&self) -> Option<Leadership> {
        self.leader.fence
    }

    /// Fence this connection's kills on `leadership` (checked by the server in the statement
    /// that kills); `None` removes the fence.
    pub fn set_fence(&mut self, leadership: Option<Leadership>) {
        self.leader.fence = leadership;
    }

    /// Try to take the leader lock on this connection, which must do nothing else. `Some` when
    /// it holds it now. A lock taken while another session holds one of the announcement
    /// locks is given back: that session is a squatter to end first ([`Self::lock_holders`]
    /// lists it), and no leader could announce itself meanwhile.
    pub async fn try_lead(&mut self) -> Result<Option<Leadership>, MysqlError> {
        let failed = |e| MysqlError::query(&self.target, WHAT_TAKE, e);
        let row: Option<(Option<i64>, u64, i64)> = self
            .conn
            .query_first(format!(
                "SELECT GET_LOCK('{LEADER_LOCK}', 0), CONNECTION_ID(), \
                 CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"
            ))
            .await
            .map_err(failed)?;
        let (got, id, now_us) =
            row.ok_or_else(|| MysqlError::decode(&self.target, WHAT_TAKE, "no row"))?;
        if got != Some(1) {
            return Ok(None);
        }
        if let Some(leadership) = self.leader.leads {
            // Taken again by its holder (user locks count): keep the count at one.
            self.release_leader_lock().await?;
            return Ok(Some(leadership));
        }
        let (own, _, used_by) = self.used_by().await?;
        if used_by
            .iter()
            .skip(1)
            .flatten()
            .any(|&holder| holder != own)
        {
            self.release_leader_lock().await?;
            return Ok(None);
        }
        let leadership = Leadership {
            id,
            taken_at: micros(now_us, &self.target, WHAT_TAKE)?,
        };
        self.leader.leads = Some(leadership);
        Ok(Some(leadership))
    }

    async fn release_leader_lock(&mut self) -> Result<(), MysqlError> {
        self.conn
            .query_drop(format!("DO RELEASE_LOCK('{LEADER_LOCK}')"))
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_TAKE, e))
    }

    /// Whether this connection took the leader lock and still holds it.
    pub async fn still_leads(&mut self) -> Result<bool, MysqlError> {
        if self.leader.leads.is_none() {
            return Ok(false);
        }
        let held: Option<i64> = self
            .conn
            .query_first(format!(
                "SELECT IS_USED_LOCK('{LEADER_LOCK}') <=> CONNECTION_ID()"
            ))
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_CHECK, e))?;
        Ok(held == Some(1))
    }

    /// This connection's id, the server's clock, and who holds each of [`lock_names`].
    async fn used_by(&mut self) -> Result<(u64, Timestamp, Vec<Option<u64>>), MysqlError> {
        let names = lock_names();
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(used_by_sql(&names))
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_HOLDERS, e))?;
        let row = row.ok_or_else(|| MysqlError::decode(&self.target, WHAT_HOLDERS, "no row"))?;
        let t = &self.target;
        let own: u64 = column(&row, 0, t, WHAT_HOLDERS)?;
        let now = micros(column(&row, 1, t, WHAT_HOLDERS)?, t, WHAT_HOLDERS)?;
        let used_by = (0..names.len())
            .map(|i| column::<Option<u64>>(&row, i + 2, t, WHAT_HOLDERS))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((own, now, used_by))
    }

    /// Every other session holding the leader lock or one of the announcement locks: the
    /// leader lock's holder first (`granted`), then sessions of curfew's own account. Each is
    /// remembered like a snapshot's session, so it can be ended on this connection. Sessions
    /// still waiting in `GET_LOCK` are not listed (MariaDB shows them only in
    /// `performance_schema`, which is often off): one that gets the lock when a squatter ahead
    /// of it is ended is a holder at the next look.
    pub async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, MysqlError> {
        let (own, now, used_by) = self.used_by().await?;
        let mut ids: Vec<u64> = used_by
            .iter()
            .flatten()
            .copied()
            .filter(|&id| id != own)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.holder_rows(&ids).await?;
        let booted_at = self.info.booted_at;
        let mut holders = Vec::with_capacity(rows.len());
        for row in rows {
            let held: Vec<bool> = used_by.iter().map(|h| *h == Some(row.id)).collect();
            let since = now - SignedDuration::from_micros(row.time_us.max(0));
            let seen = self.seen.observe(
                row.id,
                &row.user,
                &row.host,
                booted_at,
                since.max(booted_at),
            );
            holders.push(LockHolder {
                pid: i64::try_from(row.id).map_err(|_| {
                    MysqlError::decode(&self.target, WHAT_HOLDERS, "connection id beyond 2^63")
                })?,
                client_addr: client_origin(&row.host).shown(),
                backend_start: Some(seen.started_at),
                database: row.db,
                application: held.get(1..).and_then(read_announcement),
                own_role: row.user == self.info.user,
                role: Some(row.user),
                granted: held.first() == Some(&true),
            });
        }
        holders.sort_by_key(|h| (!h.granted, !h.own_role, h.pid));
        Ok(holders)
    }

    /// Whether a curfew agent enforcing a policy (not a dry run) holds the leader lock: a
    /// connection of curfew's own account holding it and announcing enforcement. What
    /// `curfew lock` asks before it runs an agent itself, as on PostgreSQL.
    pub async fn enforcing_agent_leads(&mut self) -> Result<bool, MysqlError> {
        let holders = self.lock_holders().await?;
        Ok(holders.iter().any(|h| {
            h.granted
                && h.own_role
                && h.application
                    .as_deref()
                    .and_then(curfew_backend::Announcement::parse)
                    .is_some_and(|a| !a.dry_run)
        }))
    }

    /// The process-list rows of these connections (all numbers from the server).
    async fn holder_rows(&mut self, ids: &[u64]) -> Result<Vec<HolderRow>, MysqlError> {
        let time_us = match self.info.flavor {
            Flavor::MariaDb { .. } => "CAST(p.TIME_MS * 1000 AS SIGNED)",
            Flavor::MySql => "CAST(p.TIME AS SIGNED) * 1000000",
        };
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let sql = format!(
            "SELECT p.ID, p.USER, p.HOST, p.DB, {time_us} \
             FROM information_schema.PROCESSLIST p WHERE p.ID IN ({})",
            list.join(", ")
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .query(sql)
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_HOLDERS, e))?;
        let t = &self.target;
        rows.iter()
            .map(|r| {
                Ok(HolderRow {
                    id: column(r, 0, t, WHAT_HOLDERS)?,
                    user: column(r, 1, t, WHAT_HOLDERS)?,
                    host: column(r, 2, t, WHAT_HOLDERS)?,
                    db: column(r, 3, t, WHAT_HOLDERS)?,
                    time_us: column(r, 4, t, WHAT_HOLDERS)?,
                })
            })
            .collect()
    }

    /// Announce `text` (a curfew [`Announcement`]) with the announcement locks: the marker is
    /// given back first and taken last, so a reader never sees a half-written announcement as
    /// a whole one. Fails when another session holds one of them (a squatter).
    pub async fn announce(&mut self, text: &str) -> Result<(), MysqlError> {
        let wanted = announcement_locks(text).ok_or_else(|| MysqlError::Unsupported {
            target: self.target.clone(),
            what: "announcing anything but a curfew agent's mode and policy",
        })?;
        let names = lock_names();
        let flags: Vec<(&String, bool)> = names.iter().skip(1).zip(wanted).collect();
        let release = |n: &str| {
            format!("IF(IS_USED_LOCK('{n}') <=> CONNECTION_ID(), RELEASE_LOCK('{n}'), 1)")
        };
        let take =
            |n: &str| format!("IF(IS_USED_LOCK('{n}') <=> CONNECTION_ID(), 1, GET_LOCK('{n}', 0))");
        let mut steps = vec![release(ANNOUNCED)];
        for (name, set) in flags.iter().skip(1) {
            steps.push(if *set { take(name) } else { release(name) });
        }
        steps.push(take(ANNOUNCED));
        let sql = format!("SELECT {}", steps.join(", "));
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_ANNOUNCE, e))?;
        let row = row.ok_or_else(|| MysqlError::decode(&self.target, WHAT_ANNOUNCE, "no row"))?;
        for i in 0..steps.len() {
            let done: Option<i64> = column(&row, i, &self.target, WHAT_ANNOUNCE)?;
            if done != Some(1) {
                return Err(MysqlError::AnnouncementTaken {
                    target: self.target.clone(),
                });
            }
        }
        Ok(())
    }
}
