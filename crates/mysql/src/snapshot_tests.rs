#![allow(clippy::unwrap_used)]

use super::*;
use jiff::SignedDuration;

const NOW: i64 = 1_800_000_000_000_000;

fn row(id: u64, command: &str, time_s: i64, trx: Option<i64>) -> ProcessRow {
    ProcessRow {
        now_us: NOW,
        uptime_s: 3600,
        id,
        user: "app".to_owned(),
        host: "10.0.0.9:41000".to_owned(),
        db: Some("shop".to_owned()),
        command: command.to_owned(),
        time_us: time_s * 1_000_000,
        trx_started_us: trx,
        program: Some("billing".to_owned()),
    }
}

#[test]
fn sleep_is_idle_with_a_transaction_idle_in_transaction_and_anything_else_running() {
    let mut seen = SeenSessions::default();
    let rows = vec![
        row(1, "Query", 0, None),
        row(2, "Sleep", 30, None),
        row(3, "Sleep", 40, Some(NOW - 60_000_000)),
        row(4, "Query", 90, Some(NOW - 90_000_000)),
        ProcessRow {
            user: "event_scheduler".to_owned(),
            host: "localhost".to_owned(),
            ..row(5, "Daemon", 500, None)
        },
    ];
    let snapshot = decode_snapshot(rows, 1, &mut seen, "m").unwrap();
    assert_eq!(snapshot.now, Timestamp::from_microsecond(NOW).unwrap());
    let by_pid = |pid| snapshot.sessions.iter().find(|s| s.pid == pid).unwrap();
    assert!(snapshot.sessions.iter().all(|s| s.pid != 1), "curfew's own");
    assert_eq!(by_pid(2).state, SessionState::Idle);
    assert_eq!(
        by_pid(2).state_change,
        Some(snapshot.now - SignedDuration::from_secs(30))
    );
    assert_eq!(by_pid(3).state, SessionState::IdleInTransaction);
    assert_eq!(
        by_pid(3).xact_start,
        Some(snapshot.now - SignedDuration::from_secs(60))
    );
    assert_eq!(by_pid(4).state, SessionState::Active);
    assert_eq!(
        by_pid(5).backend_type,
        BackendType::Other("Daemon".to_owned())
    );
    let s = by_pid(2);
    assert_eq!(s.backend_type, BackendType::ClientBackend);
    assert_eq!(&*s.role, "app");
    assert_eq!(&*s.database, "shop");
    assert_eq!(&*s.application, "billing");
    assert_eq!(s.client_addr, ClientAddr::Ip("10.0.0.9".parse().unwrap()));
    // Its start at first sight: the start of its current command, no earlier.
    assert_eq!(
        s.backend_start,
        snapshot.now - SignedDuration::from_secs(30)
    );
}

#[test]
fn a_session_s_start_is_kept_from_its_first_sighting() {
    let mut seen = SeenSessions::default();
    let first = decode_snapshot(vec![row(2, "Sleep", 30, None)], 1, &mut seen, "m").unwrap();
    let later = ProcessRow {
        now_us: NOW + 60_000_000,
        uptime_s: 3660,
        ..row(2, "Sleep", 5, None)
    };
    let second = decode_snapshot(vec![later], 1, &mut seen, "m").unwrap();
    assert_eq!(
        first.sessions[0].backend_start,
        second.sessions[0].backend_start
    );
    // After a restart (the boot moved) the same id is another session.
    let rebooted = ProcessRow {
        now_us: NOW + 120_000_000,
        uptime_s: 10,
        ..row(2, "Sleep", 5, None)
    };
    let third = decode_snapshot(vec![rebooted], 1, &mut seen, "m").unwrap();
    assert_ne!(
        first.sessions[0].backend_start,
        third.sessions[0].backend_start
    );
}

/// CI: a session that connected within a second of the server's boot was shown starting after
/// its current command (`Uptime` is whole seconds, the boot estimate up to a second late).
#[test]
fn a_session_never_changes_state_before_it_started() {
    let mut seen = SeenSessions::default();
    let near_boot = ProcessRow {
        uptime_s: 2,
        ..row(2, "Sleep", 3, None)
    };
    let first = decode_snapshot(vec![near_boot.clone()], 1, &mut seen, "m").unwrap();
    let s = &first.sessions[0];
    // The boot is taken at its earliest (now - Uptime - 1 s): the 3 s the session reports fit.
    assert_eq!(s.backend_start, first.now - SignedDuration::from_secs(3));
    assert_eq!(s.state_change, Some(s.backend_start));
    // A later reading of the boot a second earlier does not move it before the start either.
    let later = ProcessRow {
        now_us: NOW + 1_000_000,
        uptime_s: 4,
        ..row(2, "Sleep", 4, None)
    };
    let second = decode_snapshot(vec![later], 1, &mut seen, "m").unwrap();
    let t = &second.sessions[0];
    assert_eq!(t.backend_start, s.backend_start);
    assert!(t.state_change.unwrap() >= t.backend_start);
}

/// CI (kill.rs, `a_session_that_changed_or_is_not_due_is_left_alone`): in the server's first
/// second `Uptime` is 0, the boot was estimated at the snapshot's own instant, and every
/// session's idleness was clamped to it; a statement run just after the snapshot then looked
/// like the same idleness to the kill's re-check, and the session was killed.
#[test]
fn in_the_server_s_first_second_idleness_is_not_clamped_to_the_snapshot() {
    let mut seen = SeenSessions::default();
    let fresh = ProcessRow {
        uptime_s: 0,
        time_us: 300_000,
        ..row(2, "Sleep", 0, None)
    };
    let snapshot = decode_snapshot(vec![fresh], 1, &mut seen, "m").unwrap();
    let s = &snapshot.sessions[0];
    assert_eq!(
        s.state_change,
        Some(snapshot.now - SignedDuration::from_millis(300))
    );
}

#[test]
fn bad_rows_are_errors_not_panics() {
    let mut seen = SeenSessions::default();
    assert!(decode_snapshot(Vec::new(), 1, &mut seen, "m").is_err());
    // Ids past 2^31 are keys like any other (the key is 64-bit)...
    let large = row(u64::from(u32::MAX) + 5, "Sleep", 1, None);
    let snap = decode_snapshot(vec![large], 1, &mut seen, "m").unwrap();
    assert_eq!(snap.sessions[0].pid, i64::from(u32::MAX) + 5);
    // ...and one past 2^63 is a clear error, never a wrapped pid.
    let huge = row(u64::MAX, "Sleep", 1, None);
    let err = decode_snapshot(vec![huge], 1, &mut seen, "m").unwrap_err();
    assert!(err.to_string().contains("beyond 2^63"), "{err}");
}

#[test]
fn client_origins_tell_a_socket_from_an_address_from_a_name() {
    let ip = |a: &str| ClientAddr::Ip(a.parse().unwrap());
    let name = |n: &str| ClientAddr::Unresolved(Arc::from(n));
    assert_eq!(client_origin("127.0.0.1:5000"), ip("127.0.0.1"));
    assert_eq!(client_origin("[::1]:5000"), ip("::1"));
    assert_eq!(client_origin("::1:5000"), ip("::1"));
    assert_eq!(client_origin("::ffff:10.0.0.1:5000"), ip("::ffff:10.0.0.1"));
    assert_eq!(client_origin("10.0.0.1"), ip("10.0.0.1"));
    // A socket: `localhost` with no port (and the server's own threads, with no host).
    assert_eq!(client_origin("localhost"), ClientAddr::Socket);
    assert_eq!(client_origin(""), ClientAddr::Socket);
    // Name resolution on: TCP from 127.0.0.1 shows as `localhost:port`, a remote client as
    // whatever its reverse DNS says. Neither is a socket.
    assert_eq!(client_origin("localhost:55866"), name("localhost"));
    assert_eq!(
        client_origin("host.attacker.example:40000"),
        name("host.attacker.example")
    );
    assert_eq!(client_origin("[fe80::1%eth0]:5000"), name("[fe80::1%eth0]"));
    // Anything else unexpected is unknown, not a socket.
    assert_eq!(client_origin("app.example"), name("app.example"));
    assert_eq!(client_origin("app.example:"), name("app.example:"));
    assert_eq!(client_address("localhost:55866"), None);
    assert_eq!(
        client_address("10.0.0.1:1"),
        Some("10.0.0.1".parse().unwrap())
    );
}

#[test]
fn a_session_from_a_resolved_name_is_not_a_socket_one() {
    let mut seen = SeenSessions::default();
    let rows = vec![
        ProcessRow {
            host: "localhost:55866".to_owned(),
            ..row(2, "Sleep", 30, None)
        },
        ProcessRow {
            host: "localhost".to_owned(),
            ..row(3, "Sleep", 30, None)
        },
    ];
    let snapshot = decode_snapshot(rows, 1, &mut seen, "m").unwrap();
    let by_pid = |pid| snapshot.sessions.iter().find(|s| s.pid == pid).unwrap();
    assert_eq!(
        by_pid(2).client_addr,
        ClientAddr::Unresolved(Arc::from("localhost"))
    );
    assert_eq!(by_pid(3).client_addr, ClientAddr::Socket);
}

#[test]
fn curfew_s_own_connections_are_known_by_account_and_program_name() {
    let agent = |program: Option<&str>| ProcessRow {
        user: "curfew_agent".to_owned(),
        program: program.map(str::to_owned),
        ..row(9, "Sleep", 30, None)
    };
    assert!(curfew_connection(
        &agent(Some("curfew")),
        "curfew_agent",
        true
    ));
    // Another program on curfew's account is a client like any other...
    assert!(!curfew_connection(
        &agent(Some("mysql")),
        "curfew_agent",
        true
    ));
    // A session of curfew's account without a program name is curfew's over TLS (the driver
    // drops its attributes there).
    assert!(curfew_connection(&agent(None), "curfew_agent", true));
    // ...unless program names cannot be read: then every session of curfew's account is left out.
    assert!(curfew_connection(&agent(None), "curfew_agent", false));
    assert!(!curfew_connection(
        &row(9, "Sleep", 30, None),
        "curfew_agent",
        false
    ));
}
