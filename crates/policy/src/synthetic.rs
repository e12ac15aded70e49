//! Deterministic synthetic workloads: a realistic ten-rule policy and any number of sessions, for
//! benchmarks and load tests. Same seed, same sessions.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::session::{BackendType, Names, Session, SessionState};

/// A ten-rule policy touching every kind of condition the engine evaluates.
pub const TEN_RULE_POLICY: &str = r#"
[exempt]
roles = ["postgres", "replicator"]
applications = ["pg_dump", "batch-*"]
addresses = ["10.99.0.0/16"]

[[rule]]
name = "inactivity"
idle = "15m"
warn = "2m"
member_of = ["humans"]

[[rule]]
name = "service-idle"
idle = "1h"
roles = ["app_*"]

[[rule]]
name = "abandoned-transaction"
idle_in_transaction = "5m"

[[rule]]
name = "session-lifetime"
lifetime = "12h"

[[rule]]
name = "working-hours"
allow = ["Mon-Fri 07:00-19:00", "Sat 08:00-12:00"]
timezone = "America/New_York"
roles = ["analyst_*"]

[[rule]]
name = "one-session-each"
max_sessions = 1
roles = ["analyst_*"]

[[rule]]
name = "app-pool-cap"
max_sessions = 50
roles = ["app_*"]
databases = ["orders", "billing"]

[[rule]]
name = "year-end-maintenance"
deny = ["2026-12-31 22:00 - 2027-01-01 02:00"]
timezone = "UTC"

[[rule]]
name = "night-batch-window"
deny = ["daily 01:00-03:00"]
timezone = "Europe/Berlin"
applications = ["psql", "DBeaver*"]
addresses = ["192.168.0.0/16"]

[[rule]]
name = "staged-lifetime"
lifetime = "4h"
action = "report"
databases = ["reporting"]
"#;

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// `n` client sessions (and a few non-client backends) as a busy server at `now` might have:
/// about 300 roles, 6 databases, 12 applications, 2,000 client addresses, ages up to a day.
pub fn sessions(n: usize, now: Timestamp, seed: u64) -> Vec<Session> {
    let mut rng = Rng::new(seed);
    // Names are shared across sessions, as a snapshot shares them.
    let mut names = Names::new();
    let humans: Arc<[String]> = Arc::from(vec!["humans".to_owned()]);
    let nobody: Arc<[String]> = Arc::from(Vec::<String>::new());
    let databases = [
        "orders",
        "billing",
        "reporting",
        "postgres",
        "inventory",
        "audit",
    ];
    let applications = [
        "psql",
        "DBeaver 24.1",
        "orders-api",
        "billing-worker",
        "pg_dump",
        "batch-nightly",
        "",
        "metabase",
        "pgAdmin 4",
        "reporting-etl",
        "grafana",
        "orders-api",
    ];
    let states = [
        SessionState::Idle,
        SessionState::Idle,
        SessionState::Active,
        SessionState::IdleInTransaction,
        SessionState::IdleInTransactionAborted,
        SessionState::Idle,
    ];
    (0..n)
        .map(|i| {
            let role_kind = rng.below(10);
            let (role, member_of) = match role_kind {
                0..=3 => (format!("analyst_{}", rng.below(150)), humans.clone()),
                4..=7 => (format!("app_{}", rng.below(100)), nobody.clone()),
                8 => (format!("svc_{}", rng.below(40)), nobody.clone()),
                _ => (
                    ["postgres", "replicator"][(rng.below(2)) as usize].to_owned(),
                    nobody.clone(),
                ),
            };
            let age = SignedDuration::from_secs(i64::try_from(rng.below(86_400)).unwrap_or(0) + 1);
            let backend_start = now - age;
            let idle_for = SignedDuration::from_secs(
                i64::try_from(rng.below(u64::try_from(age.as_secs()).unwrap_or(1))).unwrap_or(0),
            );
            let state = states[rng.below(states.len() as u64) as usize];
            let state_change = Some(now - idle_for);
            let addr = if rng.below(20) == 0 {
                None
            } else {
                let host = u32::try_from(rng.below(2_000)).unwrap_or(0);
                let net = if rng.below(4) == 0 { 192u8 } else { 10 };
                Some(IpAddr::V4(Ipv4Addr::new(
                    net,
                    if net == 192 { 168 } else { 20 },
                    (host / 250) as u8,
                    (host % 250) as u8 + 1,
                )))
            };
            Session {
                pid: 10_000 + i64::try_from(i).unwrap_or(i64::MAX - 10_000),
                backend_start,
                xact_start: state.is_idle_in_transaction().then_some(now - idle_for),
                state,
                state_change,
                role: names.get(&role),
                member_of,
                database: names.get(databases[rng.below(databases.len() as u64) as usize]),
                client_addr: addr.into(),
                application: names.get(applications[rng.below(applications.len() as u64) as usize]),
                backend_type: if i % 500 == 499 {
                    BackendType::Other("autovacuum worker".to_owned())
                } else {
                    BackendType::ClientBackend
                },
            }
        })
        .collect()
}
