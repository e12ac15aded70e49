//! The gateway's admission claims against a real server: a claim counts the role's live
//! client backends and the claims in flight; a second claim of the same role waits for the
//! first's transaction (the gate's row lock), then counts it; a release frees the place; only
//! the gateway's role may call the functions, and nobody reads or writes their tables.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod gateway_auth_fixtures;

use std::time::Duration;

use common::TempDir;
use curfew_postgres::{GATEWAY_CLAIM_QUERY, GATEWAY_RELEASE_QUERY};
use gateway_auth_fixtures::{GATEWAY, cluster, curfew_as, install, login, settings};
use tokio_postgres::Client;

async fn claim(gateway: &Client, role: &str) -> (Option<String>, i32) {
    let row = gateway
        .query_one(GATEWAY_CLAIM_QUERY, &[&role])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_count_sessions_and_each_other_and_serialize_per_role() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-admission");
    install(&cluster, &dir, &settings(None, false)).await;
    let mut admin = curfew_as(&cluster, &dir, "postgres").await;
    let done = admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    assert!(done.installed, "{done:?}");

    let gateway = login(&cluster, GATEWAY).await;
    let _one = login(&cluster, "other").await;
    let _two = login(&cluster, "other").await;
    let (first, live) = claim(&gateway, "other").await;
    assert_eq!(live, 2, "two live sessions, no claim before");
    let (second, live) = claim(&gateway, "other").await;
    assert_eq!(live, 3, "the first claim counts until released");
    assert_eq!(claim(&gateway, "nobody-here").await, (None, 0));
    gateway
        .query_one(GATEWAY_RELEASE_QUERY, &[&first.unwrap()])
        .await
        .unwrap();
    gateway
        .query_one(GATEWAY_RELEASE_QUERY, &[&second.unwrap()])
        .await
        .unwrap();
    assert_eq!(
        claim(&gateway, "other").await.1,
        2,
        "released claims count no more"
    );

    // A claim inside an open transaction holds the role's gate: another gateway connection's
    // claim waits for it, then counts it.
    let mut holder = login(&cluster, GATEWAY).await;
    let tx = holder.transaction().await.unwrap();
    let held = tx
        .query_one(GATEWAY_CLAIM_QUERY, &[&"other"])
        .await
        .unwrap();
    let held_live: i32 = held.get(1);
    let waiter = login(&cluster, GATEWAY).await;
    let waiting = tokio::spawn(async move { claim(&waiter, "other").await.1 });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a second claim of the role waits for the first"
    );
    tx.commit().await.unwrap();
    let waited_live = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited_live, held_live + 1);

    // Nobody but the gateway's role calls the functions or touches the tables.
    let other = login(&cluster, "other").await;
    for sql in [
        GATEWAY_CLAIM_QUERY.replace("$1::text", "'other'"),
        GATEWAY_RELEASE_QUERY.replace("$1::pg_catalog.text", "gen_random_uuid()::text"),
        "SELECT * FROM curfew.gateway_admissions".to_owned(),
        "DELETE FROM curfew.gateway_admissions".to_owned(),
        "SELECT * FROM curfew.gateway_admission_gate FOR UPDATE".to_owned(),
    ] {
        let e = other.batch_execute(&sql).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), "42501", "{sql}: {e}");
    }
    let agent = login(&cluster, "curfew_agent").await;
    let e = agent
        .batch_execute("DELETE FROM curfew.gateway_admissions")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42501", "{e}");
}
