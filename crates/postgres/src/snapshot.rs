//! Reading the live sessions of a server.

use std::net::IpAddr;
use std::sync::Arc;

use curfew_backend::Snapshot;
use curfew_policy::{BackendType, Session, SessionState};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

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
        let what = "reading pg_stat_activity";
        for row in &rows {
            let get_str = |idx| col::<Option<&str>>(row, idx, &self.target, what);
            now = Some(col::<Timestamp>(row, 0, &self.target, what)?);
            let Some(pid) = col::<Option<i32>>(row, 1, &self.target, what)? else {
                continue; // no sessions: the clock row alone
            };
            // A role dropped while its session lives on has no name any more: the session is
            // still a client session, shown under its former oid, so unscoped rules still apply.
            let role = match get_str(6)? {
                Some(name) => self.names.get(name),
                None => {
                    let oid: Option<u32> = col(row, 11, &self.target, what)?;
                    self.names.get(&dropped_role_name(oid))
                }
            };
            let groups: Option<Vec<String>> = col(row, 10, &self.target, what)?;
            let member_of = match groups {
                Some(groups) => self.groups.get(&role, groups),
                None => no_groups.clone(),
            };
            let Some(backend_start) = col::<Option<Timestamp>>(row, 2, &self.target, what)? else {
                continue; // a backend still starting up: seen in the next snapshot
            };
            sessions.push(Session {
                pid,
                backend_start,
                xact_start: col(row, 3, &self.target, what)?,
                state: SessionState::from_pg(get_str(4)?),
                state_change: col(row, 5, &self.target, what)?,
                role,
                member_of,
                database: self.names.get(get_str(7)?.unwrap_or_default()),
                client_addr: col::<Option<IpAddr>>(row, 8, &self.target, what)?,
                application: self.names.get(get_str(9)?.unwrap_or_default()),
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

/// The name under which a session of a dropped role is shown and judged: no role pattern a
/// policy can write matches it by accident except `*`.
pub(crate) fn dropped_role_name(oid: Option<u32>) -> String {
    match oid {
        Some(oid) => format!("(dropped role {oid})"),
        None => "(dropped role)".to_owned(),
    }
}
