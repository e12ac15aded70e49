//! Reading the live sessions of a server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use curfew_policy::{BackendType, Session, SessionState};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::error::PgError;

/// The sessions of a server at one instant of its clock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The server's clock when it received the request (the sessions are read just after).
    pub now: Timestamp,
    /// Every client session except curfew's own.
    pub sessions: Vec<Session>,
}

/// Each role's memberships, shared by its sessions and kept between snapshots while unchanged.
#[derive(Debug, Default)]
pub(crate) struct GroupCache {
    by_role: HashMap<Arc<str>, Arc<[String]>>,
}

impl GroupCache {
    fn get(&mut self, role: &Arc<str>, mut groups: Vec<String>) -> Arc<[String]> {
        groups.sort_unstable();
        if let Some(known) = self.by_role.get(role)
            && known[..] == groups[..]
        {
            return known.clone();
        }
        let shared: Arc<[String]> = Arc::from(groups);
        self.by_role.insert(role.clone(), shared.clone());
        shared
    }
}

impl Connection {
    /// Read every client session (except curfew's own connection and `also_exclude`), with the
    /// server's clock. `memberships`: also read role memberships (needed only when the policy
    /// uses `member_of`).
    pub async fn snapshot(
        &mut self,
        also_exclude: &[i32],
        memberships: bool,
    ) -> Result<Snapshot, PgError> {
        let mut exclude = Vec::with_capacity(also_exclude.len() + 1);
        exclude.push(self.info.backend_pid);
        exclude.extend_from_slice(also_exclude);
        let rows = self
            .client
            .query(&self.statements.snapshot, &[&exclude, &memberships])
            .await
            .map_err(|e| PgError::query(&self.target, "reading pg_stat_activity", e))?;
        let mut now = None;
        let mut sessions = Vec::with_capacity(rows.len());
        let no_groups: Arc<[String]> = Arc::from(Vec::<String>::new());
        for row in rows {
            now = Some(row.get::<_, Timestamp>(0));
            let Some(pid) = row.get::<_, Option<i32>>(1) else {
                continue; // no sessions: the clock row alone
            };
            let role = self.names.get(row.get::<_, &str>(6));
            let groups: Option<Vec<String>> = row.get(10);
            let member_of = match groups {
                Some(groups) => self.groups.get(&role, groups),
                None => no_groups.clone(),
            };
            sessions.push(Session {
                pid,
                backend_start: row.get(2),
                xact_start: row.get(3),
                state: SessionState::from_pg(row.get::<_, Option<&str>>(4)),
                state_change: row.get(5),
                role,
                member_of,
                database: self
                    .names
                    .get(row.get::<_, Option<&str>>(7).unwrap_or_default()),
                client_addr: row.get::<_, Option<IpAddr>>(8),
                application: self
                    .names
                    .get(row.get::<_, Option<&str>>(9).unwrap_or_default()),
                backend_type: BackendType::ClientBackend,
            });
        }
        let now = now.ok_or_else(|| PgError::Query {
            target: self.target.clone(),
            what: "reading pg_stat_activity",
            reason: "the snapshot returned no clock".to_owned(),
            lost: false,
        })?;
        if self.names.len() > 4 * sessions.len() + 1024 {
            self.names.prune();
        }
        Ok(Snapshot { now, sessions })
    }
}
