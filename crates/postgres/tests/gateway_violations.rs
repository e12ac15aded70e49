//! The shared count of `per = "role"` violations against a real server: each call records one
//! error and returns the role's count for the rule within the window; rules and roles count
//! apart; rows out of the window stop counting and are pruned by the next call; bad arguments
//! are refused; only the gateway's role may call the function, and nobody reads or writes its
//! tables (not even curfew's own role).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod gateway_auth_fixtures;

use std::time::Duration;

use common::TempDir;
use curfew_postgres::GATEWAY_VIOLATION_QUERY;
use gateway_auth_fixtures::{GATEWAY, cluster, curfew_as, install, login, settings};
use tokio_postgres::Client;

async fn count(gateway: &Client, role: &str, rule: &str, within: i32) -> usize {
    let codes: Vec<String> = gateway
        .query_one(
            GATEWAY_VIOLATION_QUERY,
            &[&role, &rule, &"42501", &within, &"host-a/1"],
        )
        .await
        .unwrap()
        .get(0);
    assert!(codes.iter().all(|c| c == "42501"), "{codes:?}");
    codes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_per_role_and_rule_within_the_window_and_only_for_the_gateway() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-violations");
    install(&cluster, &dir, &settings(None, false)).await;
    let mut admin = curfew_as(&cluster, &dir, "postgres").await;
    let done = admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    assert!(done.installed, "{done:?}");

    // Two gateway connections (two instances) add to one count.
    let a = login(&cluster, GATEWAY).await;
    let b = login(&cluster, GATEWAY).await;
    assert_eq!(count(&a, "other", "misbehaviour", 600).await, 1);
    assert_eq!(count(&b, "other", "misbehaviour", 600).await, 2);
    assert_eq!(count(&a, "other", "misbehaviour", 600).await, 3);
    assert_eq!(count(&a, "other", "another-rule", 600).await, 1);
    assert_eq!(count(&a, "curfew_agent", "misbehaviour", 600).await, 1);
    assert_eq!(count(&a, "nobody-here", "misbehaviour", 600).await, 0);

    // Out of a three-second window, the old errors count no more; they are kept (a gateway
    // with a longer window for the same rule, in a rolling reload, still counts them) until
    // the longest window, past which anyone's rows go, with the gate rows of dropped roles.
    // (Three seconds: the first two counts must fall in one window on a loaded machine.)
    assert_eq!(count(&a, "other", "short", 3).await, 1);
    assert_eq!(count(&b, "other", "short", 3).await, 2);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(count(&a, "other", "short", 3).await, 1);
    assert_eq!(
        count(&b, "other", "short", 600).await,
        4,
        "a longer window sees them"
    );
    let superuser = login(&cluster, "postgres").await;
    superuser
        .batch_execute(
            "INSERT INTO curfew.gateway_violations VALUES \
               ((SELECT oid FROM pg_roles WHERE rolname = 'other'), 'ancient', '42501', now() - interval '8 days', 'host-z/9', 'curfew_gateway'); \
             INSERT INTO curfew.gateway_violation_gate VALUES (4000000000, 'dropped-role')",
        )
        .await
        .unwrap();
    // Any call prunes.
    assert_eq!(count(&a, "other", "prune", 600).await, 1);
    let left: (i64, i64) = {
        let row = superuser
            .query_one(
                "SELECT (SELECT count(*) FROM curfew.gateway_violations WHERE rule = 'ancient'), \
                        (SELECT count(*) FROM curfew.gateway_violation_gate WHERE rule = 'dropped-role')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        left,
        (0, 0),
        "rows past the longest window and a dropped role's gate row pruned"
    );
    let (gateway_id, sqlstate): (String, String) = {
        let row = superuser
            .query_one(
                "SELECT gateway_id, sqlstate FROM curfew.gateway_violations WHERE rule = 'short' ORDER BY at LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (gateway_id.as_str(), sqlstate.as_str()),
        ("host-a/1", "42501")
    );

    // Bad arguments: a clear refusal, nothing recorded.
    for (rule, sqlstate, within) in [
        ("", "42501", 600),
        ("r", "4250", 600),
        ("r", "42501'; --", 600),
        ("r", "42501", 0),
        ("r", "42501", 8 * 24 * 3600),
    ] {
        let e = a
            .query_one(
                GATEWAY_VIOLATION_QUERY,
                &[&"other", &rule, &sqlstate, &within, &"host-a/1"],
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.code().unwrap().code(),
            "22023",
            "{rule} {sqlstate} {within}: {e}"
        );
    }

    // Nobody but the gateway's role calls the function or touches the tables.
    let other = login(&cluster, "other").await;
    let agent = login(&cluster, "curfew_agent").await;
    for client in [&other, &agent] {
        for sql in [
            "SELECT curfew.count_gateway_violation('other', 'misbehaviour', '42501', 600, 'x')",
            "SELECT * FROM curfew.gateway_violations",
            "DELETE FROM curfew.gateway_violations",
            "INSERT INTO curfew.gateway_violations VALUES (1, 'r', '42501', now(), 'x', 'y')",
            "SELECT * FROM curfew.gateway_violation_gate FOR UPDATE",
        ] {
            let e = client.batch_execute(sql).await.unwrap_err();
            assert_eq!(e.code().unwrap().code(), "42501", "{sql}: {e}");
        }
    }
    assert_eq!(count(&a, "other", "misbehaviour", 600).await, 4);
}
