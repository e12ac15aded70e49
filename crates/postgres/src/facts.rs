//! What `curfew check` reads from a server: settings, the effective `pg_hba.conf` rules, the
//! roles, whether a curfew agent leads it, and the login-lock ledger's privileges. Reading only; judging is done elsewhere
//! (`curfew-check`), without I/O.

use std::collections::BTreeMap;

pub use crate::sql::facts::{CHECKED_SETTINGS, HbaRule, RoleFacts, Setting};

use crate::connect::Connection;
use crate::error::PgError;
use crate::leader::LeaderInfo;
use crate::sql::facts::{
    CLOCK, HBA_RULES, ROLES, SETTINGS, UNIX_SOCKET, WHAT_ADDRESS, WHAT_CLOCK, WHAT_HBA, WHAT_ROLES,
    WHAT_SETTINGS, decode_hba_rule, decode_role, decode_setting, settings_param,
};
use crate::sql::scalar;

/// Everything `curfew check` reads from one server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `SELECT version()`.
    pub version: String,
    /// `server_version_num`.
    pub version_num: i32,
    /// The role curfew connected as, and whether it is a superuser.
    pub connected_as: String,
    /// Whether that role is a superuser.
    pub connected_as_superuser: bool,
    /// Whether that role has CREATEROLE (curfew needs it for nothing but `curfew verify`'s
    /// canaries; on PostgreSQL 14/15 it is a way to a shell on the server).
    pub connected_as_createrole: bool,
    /// Whether curfew reached the server over a Unix socket (TCP settings such as
    /// `tcp_keepalives_idle` then read 0, whatever the configuration says).
    pub unix_socket: bool,
    /// The settings of [`CHECKED_SETTINGS`] (a name missing here is unknown to this server).
    pub settings: BTreeMap<String, Setting>,
    /// The `pg_hba.conf` rules, or why they could not be read.
    pub hba: Result<Vec<HbaRule>, String>,
    /// Every role.
    pub roles: Vec<RoleFacts>,
    /// The session holding curfew's leader lock, if any: a curfew agent leads this server.
    pub leader: Option<LeaderInfo>,
    /// The login-lock ledger's ownership and privileges.
    pub ledger: crate::ledger::LedgerFacts,
    /// This host's clock against the server's.
    pub clock: ClockReading,
}

/// The offset between this host's clock and the server's, measured NTP-style: the server's
/// `clock_timestamp()` against the midpoint of the query's round trip on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockReading {
    /// The server's clock minus this host's (positive: this host is behind).
    pub offset: jiff::SignedDuration,
    /// The round trip of the reading used; the offset is exact to within half of it.
    pub round_trip: std::time::Duration,
}

impl ClockReading {
    /// From samples of (this host before, the server, this host after), the one with the
    /// shortest round trip, which bounds the error best. `None` without a usable sample.
    pub fn from_samples(
        samples: &[(jiff::Timestamp, jiff::Timestamp, jiff::Timestamp)],
    ) -> Option<Self> {
        samples
            .iter()
            .filter(|(before, _, after)| after >= before)
            .map(|(before, server, after)| {
                let trip = after.duration_since(*before);
                let midpoint = before.checked_add(trip / 2).unwrap_or(*before);
                ClockReading {
                    offset: server.duration_since(midpoint),
                    round_trip: trip.unsigned_abs(),
                }
            })
            .min_by_key(|r| r.round_trip)
    }
}

impl Connection {
    /// Read the facts `curfew check` judges. `pg_hba_file_rules` is readable only by
    /// superusers unless granted; not being able to read it is reported in
    /// [`ServerFacts::hba`], not as an error.
    pub async fn facts(&self) -> Result<ServerFacts, PgError> {
        let client = &self.client;
        let failed = |what| move |e| PgError::query(&self.target, what, e);
        let names = settings_param();
        let settings = client
            .query(SETTINGS, &[&names])
            .await
            .map_err(failed(WHAT_SETTINGS))?
            .iter()
            .map(|r| decode_setting(r, &self.target))
            .collect::<Result<_, PgError>>()?;
        let hba = match client.query(HBA_RULES, &[]).await {
            Ok(rows) => Ok(rows
                .iter()
                .map(|r| decode_hba_rule(r, &self.target))
                .collect::<Result<_, PgError>>()?),
            Err(e) => match e.as_db_error() {
                Some(db) => Err(db.message().to_owned()),
                None => return Err(PgError::query(&self.target, WHAT_HBA, e)),
            },
        };
        let roles = client
            .query(ROLES, &[])
            .await
            .map_err(failed(WHAT_ROLES))?
            .iter()
            .map(|r| decode_role(r, &self.target))
            .collect::<Result<_, PgError>>()?;
        let unix_socket: bool = client
            .query_one(UNIX_SOCKET, &[])
            .await
            .map_err(failed(WHAT_ADDRESS))
            .and_then(|r| scalar(&r, &self.target, WHAT_ADDRESS))?;
        let leader = self.leader().await?;
        let ledger = self.ledger_facts().await?;
        let what = WHAT_CLOCK;
        let mut samples = Vec::new();
        for _ in 0..3 {
            let before = jiff::Timestamp::now();
            let row = client.query_one(CLOCK, &[]).await.map_err(failed(what))?;
            let after = jiff::Timestamp::now();
            samples.push((before, scalar(&row, &self.target, what)?, after));
        }
        let clock = ClockReading::from_samples(&samples).unwrap_or_default();
        Ok(ServerFacts {
            version: self.info.version.clone(),
            version_num: self.info.version_num,
            connected_as: self.info.role.clone(),
            connected_as_superuser: self.info.superuser,
            connected_as_createrole: self.info.createrole,
            unix_socket,
            settings,
            hba,
            roles,
            leader,
            ledger,
            clock,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_offset_is_taken_from_the_shortest_round_trip() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let reading = super::ClockReading::from_samples(&[
            // A slow trip: the server's answer could be anywhere in 2s.
            (
                t("2026-01-01T00:00:00Z"),
                t("2026-01-01T00:00:09Z"),
                t("2026-01-01T00:00:02Z"),
            ),
            // A fast one: the server is 3s ahead of the midpoint 00:00:10.010.
            (
                t("2026-01-01T00:00:10Z"),
                t("2026-01-01T00:00:13.010Z"),
                t("2026-01-01T00:00:10.020Z"),
            ),
        ])
        .unwrap();
        assert_eq!(reading.offset, jiff::SignedDuration::from_secs(3));
        assert_eq!(reading.round_trip, std::time::Duration::from_millis(20));
        assert_eq!(super::ClockReading::from_samples(&[]), None);
    }
}
