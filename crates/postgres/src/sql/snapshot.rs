//! The snapshot statement: the server's clock, every client session but curfew's own, and
//! each session role's memberships; and the decoding of its rows into a [`Snapshot`].

use std::net::IpAddr;
use std::sync::Arc;

use std::collections::BTreeMap;

use curfew_backend::{GatewayClient, Snapshot};
use curfew_policy::{BackendType, Names, Session, SessionKey, SessionState};
use jiff::Timestamp;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::groups::GroupCache;
use crate::sql::decode::col;

/// What the snapshot's errors say curfew was doing.
pub(crate) const WHAT: &str = "reading pg_stat_activity";

/// One query for everything the engine needs: the server's clock, every client session but
/// curfew's own, and (when the policy uses `member_of`) each session role's memberships, direct
/// and indirect. Ages are computed on this clock, never the agent host's.
///
/// curfew's own sessions are this connection (its pid is passed in) and those of any other
/// curfew process: the same role with application_name 'curfew' (another replica, `curfew plan`,
/// a second target on the same server) or a leader's announcement, 'curfew agent: ...' (its
/// lock session). Both conditions are needed, so nobody else is exempted by naming an
/// application 'curfew'.
///
/// The clock is `statement_timestamp()`, the moment the server received the request, so the
/// agent can map it to the moment it sent it; the activity rows are read after (building them
/// takes tens of milliseconds with thousands of sessions).
///
/// With `registry` (the gateway session registry exists and this role may read it), each
/// session the gateway registered carries the client behind it, joined on pid and start so
/// that a reused pid never inherits a row; without, those columns are NULL.
pub(crate) fn snapshot_sql(registry: bool) -> String {
    let (columns, join) = if registry {
        (
            "gw.client_addr, gw.client_port, gw.gateway_id",
            "LEFT JOIN curfew.gateway_sessions gw
  ON gw.pid = s.pid AND gw.backend_start = s.backend_start",
        )
    } else {
        ("NULL::inet, NULL::int4, NULL::text", "")
    };
    format!("{SNAPSHOT_HEAD}, {columns}{SNAPSHOT_FROM}\n{join}")
}

/// Whether the gateway session registry exists and this role may read it (oid forms, so a
/// missing schema or table is `false`, never an error).
pub(crate) const REGISTRY_READABLE: &str = "
SELECT COALESCE(bool_and(has_schema_privilege(c.relnamespace, 'USAGE')
                         AND has_table_privilege(c.oid, 'SELECT')), false)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'curfew' AND c.relname = 'gateway_sessions' AND c.relkind = 'r'";

const SNAPSHOT_HEAD: &str = "
WITH RECURSIVE
  s AS MATERIALIZED (
    SELECT pid, backend_start, xact_start, state, state_change, usesysid,
           usename::text AS usename, datname::text AS datname, client_addr, application_name
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
      AND usesysid IS NOT NULL
      AND pid <> ALL($1::int4[])
      AND NOT (usesysid = (SELECT oid FROM pg_roles WHERE rolname = current_user)
               AND (application_name = 'curfew' OR application_name LIKE 'curfew agent: %'))
  ),
  m(member, roleid) AS (
    SELECT a.member, a.roleid FROM pg_auth_members a
    WHERE $2::bool AND a.member IN (SELECT usesysid FROM s)
    UNION
    SELECT m.member, a.roleid FROM m JOIN pg_auth_members a ON a.member = m.roleid
  ),
  g AS (
    SELECT m.member, array_agg(DISTINCT r.rolname::text) AS groups
    FROM m JOIN pg_roles r ON r.oid = m.roleid
    GROUP BY m.member
  )
SELECT c.now, s.pid, s.backend_start, s.xact_start, s.state, s.state_change,
       s.usename, s.datname, s.client_addr, s.application_name, g.groups, s.usesysid";

const SNAPSHOT_FROM: &str = "
FROM (SELECT statement_timestamp() AS now) c
LEFT JOIN s ON true
LEFT JOIN g ON g.member = s.usesysid";

/// The snapshot's `$1`: the pids not to read, curfew's own connection first, then
/// `also_exclude`. (`$2` is whether to read role memberships, passed as it is.)
pub(crate) fn snapshot_params(own_pid: i32, also_exclude: &[i32]) -> Vec<i32> {
    let mut exclude = Vec::with_capacity(also_exclude.len() + 1);
    exclude.push(own_pid);
    exclude.extend_from_slice(also_exclude);
    exclude
}

/// One row of [`SNAPSHOT`], its columns extracted. The clock row alone (no session) has only
/// `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActivityRow<'a> {
    pub(crate) now: Timestamp,
    pub(crate) pid: Option<i32>,
    pub(crate) backend_start: Option<Timestamp>,
    pub(crate) xact_start: Option<Timestamp>,
    pub(crate) state: Option<&'a str>,
    pub(crate) state_change: Option<Timestamp>,
    /// `None`: the role was dropped while the session lives on.
    pub(crate) role: Option<&'a str>,
    pub(crate) database: Option<&'a str>,
    pub(crate) client_addr: Option<IpAddr>,
    pub(crate) application: Option<&'a str>,
    /// `None` when memberships were not asked for, or the role is in no group.
    pub(crate) groups: Option<Vec<String>>,
    pub(crate) role_oid: Option<u32>,
    /// The client behind a gateway session: address, port and gateway id, as registered.
    pub(crate) gateway_addr: Option<IpAddr>,
    pub(crate) gateway_port: Option<i32>,
    pub(crate) gateway_id: Option<&'a str>,
}

impl<'a> ActivityRow<'a> {
    /// The columns of one reply row; a column of an unexpected type is an error.
    pub(crate) fn extract(row: &'a Row, target: &str) -> Result<ActivityRow<'a>, PgError> {
        Ok(ActivityRow {
            now: col(row, 0, target, WHAT)?,
            pid: col(row, 1, target, WHAT)?,
            backend_start: col(row, 2, target, WHAT)?,
            xact_start: col(row, 3, target, WHAT)?,
            state: col(row, 4, target, WHAT)?,
            state_change: col(row, 5, target, WHAT)?,
            role: col(row, 6, target, WHAT)?,
            database: col(row, 7, target, WHAT)?,
            client_addr: col(row, 8, target, WHAT)?,
            application: col(row, 9, target, WHAT)?,
            groups: col(row, 10, target, WHAT)?,
            role_oid: col(row, 11, target, WHAT)?,
            gateway_addr: col(row, 12, target, WHAT)?,
            gateway_port: col(row, 13, target, WHAT)?,
            gateway_id: col(row, 14, target, WHAT)?,
        })
    }
}

/// The snapshot the rows show: the clock and each session, names shared through `names` and
/// memberships through `groups` (both kept by the connection between snapshots). No clock (no
/// row at all) is an error.
pub(crate) fn decode_snapshot(
    rows: Vec<ActivityRow<'_>>,
    names: &mut Names,
    groups: &mut GroupCache,
    target: &str,
) -> Result<Snapshot, PgError> {
    let mut now = None;
    let mut sessions = Vec::with_capacity(rows.len());
    let mut gateway = BTreeMap::new();
    let no_groups: Arc<[String]> = Arc::from(Vec::<String>::new());
    for row in rows {
        now = Some(row.now);
        let Some(pid) = row.pid.map(i64::from) else {
            continue; // no sessions: the clock row alone
        };
        // A role dropped while its session lives on has no name any more: the session is
        // still a client session, shown under its former oid, so unscoped rules still apply.
        let role = match row.role {
            Some(name) => names.get(name),
            None => names.get(&dropped_role_name(row.role_oid)),
        };
        let member_of = match row.groups {
            Some(list) => groups.get(&role, list),
            None => no_groups.clone(),
        };
        let Some(backend_start) = row.backend_start else {
            continue; // a backend still starting up: seen in the next snapshot
        };
        if let (Some(addr), Some(port), Some(id)) =
            (row.gateway_addr, row.gateway_port, row.gateway_id)
            && let Ok(port) = u16::try_from(port)
        {
            let client = GatewayClient {
                addr,
                port,
                gateway: id.to_owned(),
            };
            gateway.insert(SessionKey { pid, backend_start }, client);
        }
        sessions.push(Session {
            pid,
            backend_start,
            xact_start: row.xact_start,
            state: SessionState::from_pg(row.state),
            state_change: row.state_change,
            role,
            member_of,
            database: names.get(row.database.unwrap_or_default()),
            client_addr: row.client_addr.into(),
            application: names.get(row.application.unwrap_or_default()),
            backend_type: BackendType::ClientBackend,
        });
    }
    let now = now.ok_or_else(|| PgError::Query {
        target: target.to_owned(),
        what: WHAT,
        reason: "the snapshot returned no clock".to_owned(),
        lost: false,
    })?;
    Ok(Snapshot {
        now,
        sessions,
        gateway,
    })
}

/// The name under which a session of a dropped role is shown and judged: no role pattern a
/// policy can write matches it by accident except `*`.
pub(crate) fn dropped_role_name(oid: Option<u32>) -> String {
    match oid {
        Some(oid) => format!("(dropped role {oid})"),
        None => "(dropped role)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn clock_row(now: Timestamp) -> ActivityRow<'static> {
        ActivityRow {
            now,
            pid: None,
            backend_start: None,
            xact_start: None,
            state: None,
            state_change: None,
            role: None,
            database: None,
            client_addr: None,
            application: None,
            groups: None,
            role_oid: None,
            gateway_addr: None,
            gateway_port: None,
            gateway_id: None,
        }
    }

    fn session_row(now: Timestamp, pid: i32, role: Option<&'static str>) -> ActivityRow<'static> {
        ActivityRow {
            pid: Some(pid),
            backend_start: Some(at("2026-01-01T00:00:00Z")),
            state: Some("idle"),
            state_change: Some(at("2026-01-01T00:01:00Z")),
            role,
            role_oid: Some(16_384),
            database: Some("app"),
            application: Some("psql"),
            ..clock_row(now)
        }
    }

    fn decode(rows: Vec<ActivityRow<'_>>) -> Result<Snapshot, PgError> {
        decode_snapshot(rows, &mut Names::new(), &mut GroupCache::default(), "t")
    }

    #[test]
    fn the_clock_row_alone_is_an_empty_snapshot() {
        let now = at("2026-01-01T00:05:00Z");
        let snapshot = decode(vec![clock_row(now)]).unwrap();
        assert_eq!(snapshot.now, now);
        assert!(snapshot.sessions.is_empty());
    }

    #[test]
    fn no_row_at_all_is_an_error_not_a_snapshot() {
        let error = decode(Vec::new()).unwrap_err().to_string();
        assert!(error.contains("the snapshot returned no clock"), "{error}");
        assert!(error.contains(WHAT), "{error}");
    }

    #[test]
    fn sessions_are_decoded_with_their_names_and_groups() {
        let now = at("2026-01-01T00:05:00Z");
        let mut row = session_row(now, 42, Some("analyst"));
        row.groups = Some(vec!["readers".to_owned(), "analysts".to_owned()]);
        row.client_addr = Some("10.0.0.7".parse().unwrap());
        let snapshot = decode(vec![row, session_row(now, 43, Some("web"))]).unwrap();
        let [first, second] = &snapshot.sessions[..] else {
            panic!("two sessions expected: {:?}", snapshot.sessions);
        };
        assert_eq!(
            (first.pid, &*first.role, &*first.database),
            (42, "analyst", "app")
        );
        assert_eq!(&first.member_of[..], ["analysts", "readers"]);
        assert_eq!(first.state, SessionState::Idle);
        assert_eq!(first.client_addr.ip(), Some("10.0.0.7".parse().unwrap()));
        assert!(second.member_of.is_empty());
        assert_eq!(&*second.application, "psql");
    }

    #[test]
    fn a_registered_gateway_session_carries_its_client_and_a_direct_one_nothing() {
        let now = at("2026-01-01T00:05:00Z");
        let mut via = session_row(now, 42, Some("analyst"));
        via.gateway_addr = Some("10.9.8.7".parse().unwrap());
        via.gateway_port = Some(5555);
        via.gateway_id = Some("gw1/7");
        let mut bad_port = session_row(now, 44, Some("web"));
        bad_port.gateway_addr = Some("10.9.8.8".parse().unwrap());
        bad_port.gateway_port = Some(70_000);
        bad_port.gateway_id = Some("gw1/7");
        let snapshot = decode(vec![via, session_row(now, 43, Some("web")), bad_port]).unwrap();
        assert_eq!(snapshot.gateway.len(), 1, "{:?}", snapshot.gateway);
        let client = snapshot
            .gateway_client(&snapshot.sessions[0].key())
            .unwrap();
        assert_eq!(client.to_string(), "via gateway from 10.9.8.7:5555");
        assert_eq!(client.gateway, "gw1/7");
        assert_eq!(snapshot.gateway_client(&snapshot.sessions[1].key()), None);
    }

    #[test]
    fn the_registry_is_joined_on_pid_and_start_only_when_readable() {
        let with = snapshot_sql(true);
        assert!(with.contains("ON gw.pid = s.pid AND gw.backend_start = s.backend_start"));
        let without = snapshot_sql(false);
        assert!(!without.contains("gateway_sessions"));
        assert!(without.contains("NULL::inet, NULL::int4, NULL::text"));
    }

    #[test]
    fn a_dropped_role_is_named_by_its_oid_and_a_starting_backend_is_skipped() {
        let now = at("2026-01-01T00:05:00Z");
        let mut starting = session_row(now, 44, Some("web"));
        starting.backend_start = None;
        let snapshot = decode(vec![session_row(now, 42, None), starting]).unwrap();
        assert_eq!(snapshot.sessions.len(), 1);
        assert_eq!(&*snapshot.sessions[0].role, "(dropped role 16384)");
        assert_eq!(dropped_role_name(None), "(dropped role)");
    }
}
