//! The observer's logic without I/O: events in, status and health out, at chosen instants.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use curfew_agent::AgentEvent;
use curfew_policy::{BackendType, LoadedPolicy, Session, SessionState};
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use crate::board::Board;
use crate::health::{check, stale_after};
use crate::status::{About, Fate, Role, status};

mod gateway;

const POLICY: &str = r#"
[agent]
interval = "1s"

[[target]]
name = "db"
url = "postgresql://curfew@db.example:5432/postgres?sslmode=verify-full"

[exempt]
applications = ["pg_dump"]

[[rule]]
name = "inactivity"
idle = "10m"
roles = ["kim"]

[[rule]]
name = "watch-lee"
lifetime = "1h"
action = "report"
roles = ["lee"]
"#;

fn loaded() -> LoadedPolicy {
    LoadedPolicy::from_bytes("t.toml", POLICY.as_bytes().to_vec()).unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn session(pid: i64, role: &str, app: &str, state: SessionState, since: i64) -> Session {
    Session {
        pid,
        backend_start: at(since),
        xact_start: None,
        state,
        state_change: Some(at(since)),
        role: role.into(),
        member_of: Arc::from(Vec::new()),
        database: "postgres".into(),
        client_addr: curfew_policy::ClientAddr::Socket,
        application: app.into(),
        backend_type: BackendType::ClientBackend,
    }
}

fn evaluated(sessions: Vec<Session>, server_now: Timestamp) -> AgentEvent {
    AgentEvent::Evaluated {
        target: "db".into(),
        at: server_now,
        sessions: sessions.into(),
        gateway: Arc::default(),
        snapshot_time: Duration::from_millis(3),
        evaluation_time: Duration::from_micros(40),
    }
}

fn about() -> About {
    About {
        started_at: at(0),
        dry_run: false,
    }
}

#[test]
fn sessions_are_listed_soonest_end_first_with_a_countdown_on_the_server_clock() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let sessions = vec![
        session(1, "app", "orders", SessionState::Idle, 0),
        session(2, "kim", "psql", SessionState::Idle, 0),
        session(3, "kim", "psql", SessionState::Idle, 300),
        session(4, "kim", "pg_dump", SessionState::Active, 0),
        session(5, "lee", "psql", SessionState::Active, 0),
    ];
    board.apply(&evaluated(sessions, at(400)), t0);
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    // Asked 20 s after the snapshot: the server's clock is estimated at 420 s.
    let s = status(
        &board,
        &loaded,
        health,
        &about(),
        t0 + Duration::from_secs(20),
        at(0),
    );
    let t = &s.targets[0];
    assert_eq!(t.role, Role::Leading);
    let order: Vec<(i64, Fate)> = t.sessions.iter().map(|s| (s.pid, s.fate)).collect();
    assert_eq!(
        order,
        [
            (2, Fate::Scheduled),
            (3, Fate::Scheduled),
            (5, Fate::Reported),
            (1, Fate::Untouched),
            (4, Fate::Exempt)
        ]
    );
    assert_eq!(t.sessions[0].ends_in_seconds, Some(180.0));
    assert_eq!(t.sessions[0].rule.as_deref(), Some("inactivity"));
    assert_eq!(t.sessions[1].ends_in_seconds, Some(480.0));
    assert_eq!(t.sessions[4].rule.as_deref(), Some("[exempt] applications"));
    let info = t.snapshot.as_ref().unwrap();
    assert_eq!((info.sessions, info.to_end, info.exempt), (5, 2, 1));
}

#[test]
fn a_session_ended_after_the_snapshot_is_no_longer_shown_as_live() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let kim = session(2, "kim", "psql", SessionState::Idle, 0);
    board.apply(&evaluated(vec![kim.clone()], at(600)), t0);
    board.apply(
        &AgentEvent::Terminated {
            target: "db".into(),
            session: kim.clone(),
            via_gateway: None,
            rule: "inactivity".into(),
            reason: "idle for 10m; limit 10m".into(),
            deadline: at(600),
            at: at(600),
            lateness: SignedDuration::from_millis(4),
        },
        t0,
    );
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(0));
    assert!(s.targets[0].sessions.is_empty());
    assert_eq!(s.recent_terminations.len(), 1);
    assert_eq!(s.recent_terminations[0].lateness_ms, 4.0);
    // The next snapshot starts afresh.
    board.apply(&evaluated(vec![kim], at(601)), t0);
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(0));
    assert_eq!(s.targets[0].sessions.len(), 1);
}

#[test]
fn health_needs_recent_contact_with_every_target_and_a_writable_audit_log() {
    let loaded = loaded();
    let t0 = Instant::now();
    let mut board = Board::default();
    let h = check(&board, &loaded, Ok(()), t0);
    assert!(!h.healthy, "a target never reached is not healthy");
    assert_eq!(h.checks[0].detail, "not connected yet");

    board.apply(
        &AgentEvent::Connected {
            target: "db".into(),
            server: "PostgreSQL 17".into(),
        },
        t0,
    );
    board.apply(&evaluated(Vec::new(), at(0)), t0);
    assert!(check(&board, &loaded, Ok(()), t0 + Duration::from_secs(4)).healthy);
    let stale = t0 + stale_after(Duration::from_secs(1)) + Duration::from_millis(1);
    let h = check(&board, &loaded, Ok(()), stale);
    assert!(
        !h.healthy && h.checks[0].detail.starts_with("last snapshot 5.0s ago"),
        "{h:?}"
    );

    // A replica standing by is healthy as long as it keeps checking the lock.
    board.apply(
        &AgentEvent::StandingBy {
            target: "db".into(),
        },
        stale,
    );
    let h = check(&board, &loaded, Ok(()), stale);
    assert!(h.healthy, "{h:?}");
    assert!(h.checks[0].detail.contains("another replica leads"));

    let h = check(&board, &loaded, Err("audit.jsonl: moved".into()), stale);
    assert!(!h.healthy && !h.checks[1].ok);
    board.apply(
        &AgentEvent::AuditFailed {
            error: "disk full".into(),
        },
        stale,
    );
    let h = check(&board, &loaded, Ok(()), stale);
    assert!(
        !h.healthy && h.checks[1].detail.contains("disk full"),
        "{h:?}"
    );
    board.apply(
        &AgentEvent::Recorded {
            records: Vec::new(),
        },
        stale,
    );
    assert!(check(&board, &loaded, Ok(()), stale).healthy);

    board.apply(
        &AgentEvent::Disconnected {
            target: "db".into(),
            error: "connection refused".into(),
            retry_in: Duration::from_secs(1),
        },
        stale,
    );
    let h = check(&board, &loaded, Ok(()), stale);
    assert!(
        !h.healthy
            && h.checks[0]
                .detail
                .starts_with("disconnected: connection refused")
    );
    assert!(
        h.text().contains("FAIL target \"db\": disconnected"),
        "{}",
        h.text()
    );
}

#[test]
fn the_page_escapes_what_clients_chose_and_needs_no_script() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let evil = session(7, "kim", "<script>alert(1)</script>", SessionState::Idle, 0);
    board.apply(&evaluated(vec![evil], at(10)), t0);
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(0));
    let html = crate::page::render(&s, 5).unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    let still = crate::page::render(&s, 0).unwrap();
    assert!(!still.contains("http-equiv"));
}

/// A client the server showed by host name (MariaDB with name resolution on): the name as
/// given, marked unverified and escaped on the page; a socket session is `local`.
#[test]
fn a_client_known_only_by_host_name_is_shown_so_never_as_an_address() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let mut named = session(8, "kim", "psql", SessionState::Idle, 0);
    named.client_addr = curfew_policy::ClientAddr::Unresolved("<b>x</b>.example".into());
    let socket = session(9, "kim", "psql", SessionState::Idle, 0);
    board.apply(&evaluated(vec![named, socket], at(10)), t0);
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(0));
    let client = |pid| {
        s.targets[0]
            .sessions
            .iter()
            .find(|v| v.pid == pid)
            .unwrap()
            .client
            .clone()
    };
    assert_eq!(client(8), "name:<b>x</b>.example (unverified)");
    assert_eq!(client(9), "local");
    let html = crate::page::render(&s, 0).unwrap();
    assert!(!html.contains("<b>x"), "{html}");
    assert!(html.contains("(unverified)"), "{html}");
}

#[test]
fn counters_follow_the_tally_and_removed_targets_lose_their_gauges() {
    use curfew_agent::{AuditTally, RecordedEvent};
    use curfew_audit::Event;
    let metrics = crate::metrics::Metrics::new(true);
    metrics.apply(&AgentEvent::Connected {
        target: "old".into(),
        server: "PostgreSQL 17".into(),
    });
    let tally = AuditTally::new();
    let ended = |rule: &str| RecordedEvent {
        seq: 0,
        event: Event::SessionTerminated,
        target: Some("db".into()),
        rule: Some(rule.into()),
        result: Some("ended".into()),
    };
    tally.add(&[ended("idle"), ended("idle"), ended("lifetime")]);
    let ages = [("db".to_owned(), Some(0.5))];
    let text = metrics.encode(&ages, true, &tally.snapshot(), "abc");
    assert!(
        text.contains(r#"curfew_terminations_total{target="db",rule="idle",result="ended"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"curfew_audit_records_total{event="session_terminated"} 3"#),
        "{text}"
    );
    assert!(text.contains("curfew_dry_run 1"), "{text}");
    assert!(!text.contains(r#"target="old""#), "{text}");
    // Counting again adds only what is new.
    tally.add(&[ended("idle")]);
    let text = metrics.encode(&ages, true, &tally.snapshot(), "abc");
    assert!(
        text.contains(r#"curfew_terminations_total{target="db",rule="idle",result="ended"} 3"#),
        "{text}"
    );
}

#[test]
fn metrics_show_the_policy_hash_reloads_locks_warnings_and_hook_failures() {
    use curfew_agent::{AuditTally, LoginLock, RecordedEvent};
    use curfew_audit::Event;
    let metrics = crate::metrics::Metrics::new(false);
    let tally = AuditTally::new();
    let warned = |rule: &str| RecordedEvent {
        seq: 0,
        event: Event::SessionWarned,
        target: Some("db".into()),
        rule: Some(rule.into()),
        result: Some("recorded".into()),
    };
    tally.add(&[
        warned("inactivity"),
        warned("inactivity"),
        warned("lifetime"),
    ]);
    let applied = |reload| AgentEvent::PolicyApplied {
        source: "curfew.toml".into(),
        sha256: "abc".into(),
        reload,
    };
    // The policy the agent starts with is not a reload.
    metrics.apply(&applied(false));
    metrics.apply(&applied(true));
    metrics.apply(&AgentEvent::PolicyRejected {
        source: "curfew.toml".into(),
        problems: 2,
    });
    metrics.apply(&AgentEvent::PolicyRejected {
        source: "curfew.toml".into(),
        problems: 1,
    });
    let lock = |role: &str| LoginLock {
        role: role.into(),
        kind: "incident".into(),
        rule: None,
        reason: "compromised".into(),
        created_by: "alice".into(),
        since: at(0),
        until: None,
    };
    metrics.apply(&AgentEvent::LoginLocks {
        target: "db".into(),
        locks: vec![lock("kim"), lock("lee")],
    });
    for _ in 0..2 {
        metrics.apply(&AgentEvent::NotifyFailed {
            hook: "webhook",
            error: "http://127.0.0.1:9/… answered 500".into(),
        });
    }
    metrics.apply(&AgentEvent::NotifyDropped);
    metrics.apply(&AgentEvent::AnchorFailed {
        target: "db".into(),
        error: "anchor refused".into(),
    });
    metrics.apply(&AgentEvent::GatewayMissed {
        target: "db".into(),
        session: session(4, "kim", "psql", SessionState::Idle, 0),
        gateway: curfew_agent::GatewayClient {
            addr: "10.9.8.7".parse().unwrap(),
            port: 5555,
            gateway: "gw1/42".into(),
        },
        rule: "inactivity".into(),
        deadline: at(600),
    });
    let ages = [("db".to_owned(), Some(0.5))];
    let text = metrics.encode(&ages, true, &tally.snapshot(), "abc");
    for line in [
        r#"curfew_policy_info{sha256="abc"} 1"#,
        r#"curfew_policy_reloads_total{result="applied"} 1"#,
        r#"curfew_policy_reloads_total{result="rejected"} 2"#,
        r#"curfew_login_locks{target="db"} 2"#,
        r#"curfew_sessions_warned_total{target="db",rule="inactivity"} 2"#,
        r#"curfew_sessions_warned_total{target="db",rule="lifetime"} 1"#,
        r#"curfew_notify_failures_total{hook="webhook"} 2"#,
        r#"curfew_notify_failures_total{hook="command"} 0"#,
        "curfew_notify_dropped_total 1",
        r#"curfew_anchor_failures_total{target="db"} 1"#,
        r#"curfew_gateway_missed_total{target="db"} 1"#,
    ] {
        assert!(text.contains(line), "no {line} in:\n{text}");
    }
    // A new policy replaces the old hash; the old one is gone, not left at 1.
    metrics.apply(&AgentEvent::LoginLocks {
        target: "db".into(),
        locks: Vec::new(),
    });
    let text = metrics.encode(&ages, true, &tally.snapshot(), "def");
    assert!(
        text.contains(r#"curfew_policy_info{sha256="def"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"sha256="abc""#), "{text}");
    assert!(
        text.contains(r#"curfew_login_locks{target="db"} 0"#),
        "{text}"
    );
    // No line says the user was warned.
    assert!(!text.to_lowercase().contains("user was"), "{text}");
}

#[test]
fn the_status_and_its_page_show_the_login_locks_in_force() {
    use curfew_agent::LoginLock;
    let mut board = Board::default();
    let t0 = Instant::now();
    board.apply(&evaluated(Vec::new(), at(10)), t0);
    board.apply(
        &AgentEvent::LoginLocks {
            target: "db".into(),
            locks: vec![
                LoginLock {
                    role: "analyst_kim".into(),
                    kind: "window".into(),
                    rule: Some("working-hours".into()),
                    reason: "rule working-hours: outside the allowed windows".into(),
                    created_by: "curfew".into(),
                    since: at(0),
                    until: Some(at(3600)),
                },
                LoginLock {
                    role: "mallory".into(),
                    kind: "incident".into(),
                    rule: None,
                    reason: "INC-42 credential leak".into(),
                    created_by: "alice".into(),
                    since: at(5),
                    until: None,
                },
            ],
        },
        t0,
    );
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(10));
    let json = serde_json::to_value(&s).unwrap();
    let locks = &json["targets"][0]["login_locks"];
    assert_eq!(locks[0]["role"], "analyst_kim", "{json}");
    assert_eq!(locks[0]["rule"], "working-hours");
    assert_eq!(locks[0]["until"], at(3600).to_string());
    assert_eq!(locks[1]["kind"], "incident");
    assert!(locks[1]["until"].is_null());
    let html = crate::page::render(&s, 0).unwrap();
    for text in [
        "Login locks in force",
        "analyst_kim",
        "rule working-hours",
        "incident lock by alice",
        "INC-42 credential leak",
        "until released",
        &at(3600).strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    ] {
        assert!(html.contains(text), "no {text:?} on the page");
    }
    // Disconnected, the agent no longer knows what is in force: it shows nothing stale.
    board.apply(
        &AgentEvent::Disconnected {
            target: "db".into(),
            error: "connection refused".into(),
            retry_in: Duration::from_secs(1),
        },
        t0,
    );
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(10));
    assert!(s.targets[0].login_locks.is_empty());
}

#[test]
fn a_recorded_warning_is_shown_as_recorded_and_passed_on_never_as_told() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let kim = session(7, "kim", "psql", SessionState::Idle, 0);
    let lee = session(8, "kim", "psql", SessionState::Idle, 1);
    board.apply(&evaluated(vec![kim.clone(), lee.clone()], at(590)), t0);
    for (s, hooks) in [(&kim, vec!["command", "webhook"]), (&lee, Vec::new())] {
        board.apply(
            &AgentEvent::Warned {
                target: "db".into(),
                session: s.clone(),
                rule: "inactivity".into(),
                deadline: at(600),
                at: at(590),
                reason: "will be ended".into(),
                hooks,
            },
            t0,
        );
    }
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let st = status(&board, &loaded, health, &about(), t0, at(590));
    let shown = |pid| {
        st.targets[0]
            .sessions
            .iter()
            .find(|s| s.pid == pid)
            .and_then(|s| s.warning.clone())
            .unwrap()
    };
    assert_eq!(
        shown(7),
        "warning recorded in the audit log and queued for the notify hooks: command, webhook"
    );
    assert!(shown(8).contains("no notify hook, so the user is not told"));
    let html = crate::page::render(&st, 0).unwrap();
    assert!(html.contains("queued for the notify hooks: command, webhook"));
    assert!(!html.to_lowercase().contains("user was warned"));
    // A session gone from the next snapshot is forgotten.
    board.apply(&evaluated(vec![lee], at(591)), t0);
    assert_eq!(board.targets["db"].warned.len(), 1);
}
