//! The status page and `/status` for sessions behind the gateway.

use super::*;

#[test]
fn a_gateway_session_s_termination_names_the_client_behind_the_gateway() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let kim = session(2, "kim", "psql", SessionState::Idle, 0);
    let direct = session(3, "lee", "psql", SessionState::Idle, 0);
    board.apply(&evaluated(vec![kim.clone(), direct.clone()], at(600)), t0);
    for (session, via_gateway) in [
        (
            kim,
            Some(curfew_agent::GatewayClient {
                addr: "10.9.8.7".parse().unwrap(),
                port: 5555,
                gateway: "gw1/42".into(),
            }),
        ),
        (direct, None),
    ] {
        board.apply(
            &AgentEvent::Terminated {
                target: "db".into(),
                session,
                via_gateway,
                rule: "inactivity".into(),
                reason: "idle for 10m; limit 10m".into(),
                deadline: at(600),
                at: at(600),
                lateness: SignedDuration::from_millis(4),
            },
            t0,
        );
    }
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(0));
    let vias: Vec<Option<&str>> = s
        .recent_terminations
        .iter()
        .map(|e| e.via_gateway.as_deref())
        .collect();
    assert_eq!(vias, [None, Some("via gateway from 10.9.8.7:5555")]);
    let json = serde_json::to_value(&s.recent_terminations).unwrap();
    assert_eq!(json[1]["via_gateway"], "via gateway from 10.9.8.7:5555");
    assert!(json[0].get("via_gateway").is_none(), "{json}");
    let html = crate::page::render(&s, 0).unwrap();
    assert_eq!(
        html.matches("via gateway from 10.9.8.7:5555").count(),
        1,
        "{html}"
    );
}

#[test]
fn a_live_gateway_session_shows_the_client_behind_the_gateway() {
    let mut board = Board::default();
    let t0 = Instant::now();
    let mut kim = session(2, "kim", "psql", SessionState::Idle, 0);
    kim.client_addr = curfew_policy::ClientAddr::Ip("10.0.0.5".parse().unwrap());
    let mut lee = session(3, "lee", "psql", SessionState::Idle, 0);
    lee.client_addr = curfew_policy::ClientAddr::Ip("10.0.0.5".parse().unwrap());
    let mut gateway = std::collections::BTreeMap::new();
    gateway.insert(
        kim.key(),
        curfew_agent::GatewayClient {
            addr: "192.0.2.7".parse().unwrap(),
            port: 40_001,
            gateway: "gw1/42".into(),
        },
    );
    let AgentEvent::Evaluated {
        target,
        at: seen_at,
        sessions,
        snapshot_time,
        evaluation_time,
        ..
    } = evaluated(vec![kim, lee], at(600))
    else {
        unreachable!()
    };
    board.apply(
        &AgentEvent::Evaluated {
            target,
            at: seen_at,
            sessions,
            gateway: Arc::new(gateway),
            snapshot_time,
            evaluation_time,
        },
        t0,
    );
    let loaded = loaded();
    let health = check(&board, &loaded, Ok(()), t0);
    let s = status(&board, &loaded, health, &about(), t0, at(600));
    let mut clients: Vec<(i64, &str)> = s.targets[0]
        .sessions
        .iter()
        .map(|x| (x.pid, x.client.as_str()))
        .collect();
    clients.sort_unstable();
    assert_eq!(
        clients,
        [
            (2, "10.0.0.5 (via gateway from 192.0.2.7:40001)"),
            (3, "10.0.0.5")
        ]
    );
    let html = crate::page::render(&s, 0).unwrap();
    assert!(html.contains("via gateway from 192.0.2.7:40001"), "{html}");
}
