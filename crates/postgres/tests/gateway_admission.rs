//! The gateway's admission claims against a real server: a claim counts the role's live
//! client backends and the claims in flight, with each one's database, application and client
//! address (a registered gateway backend's client, not the gateway); a second claim of the
//! same role waits for the first's transaction (the gate's row lock), then counts it; a
//! release frees the place; only the gateway's role may call the functions, and nobody reads
//! or writes their tables; `curfew init` replaces an earlier install's claim function.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod gateway_auth_fixtures;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::TempDir;
use curfew_postgres::{GATEWAY_CLAIM_QUERY, GATEWAY_REGISTER_QUERY, GATEWAY_RELEASE_QUERY};
use gateway_auth_fixtures::{GATEWAY, cluster, curfew_as, install, login, settings};
use tokio_postgres::{Client, GenericClient, Row};

/// What the function names of each of the role's other sessions.
type Other = (String, String, Option<IpAddr>);

/// The claim function's answer for a login of `role` to `postgres` from `psql` at `client`,
/// claimed as `id`, on `on` (a connection or a transaction of the gateway's role).
async fn claim_row(
    on: &impl GenericClient,
    role: &str,
    client: Option<IpAddr>,
    id: &str,
) -> Result<Row, tokio_postgres::Error> {
    on.query_one(
        GATEWAY_CLAIM_QUERY,
        &[&role, &"postgres", &"psql", &client, &id],
    )
    .await
}

/// A claim for a login of `role` to `postgres` from `psql` at 10.0.0.1: the claim, the count,
/// and the others, sorted.
async fn claim_with(gateway: &Client, role: &str) -> (Option<String>, i32, Vec<Other>) {
    let client: IpAddr = "10.0.0.1".parse().unwrap();
    let id = new_claim();
    let row = claim_row(gateway, role, Some(client), &id).await.unwrap();
    let claimed: Option<String> = row.get(0);
    assert!(
        claimed.is_none() || claimed.as_ref() == Some(&id),
        "{claimed:?}"
    );
    let databases: Vec<String> = row.get(2);
    let applications: Vec<String> = row.get(3);
    let addrs: Vec<Option<IpAddr>> = row.get(4);
    assert!(databases.len() == applications.len() && applications.len() == addrs.len());
    let mut others: Vec<Other> = databases
        .into_iter()
        .zip(applications)
        .zip(addrs)
        .map(|((d, a), c)| (d, a, c))
        .collect();
    others.sort();
    (row.get(0), row.get(1), others)
}

/// A claim id of the gateway's choosing: a uuid distinct within this process.
fn new_claim() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn claim(gateway: &Client, role: &str) -> (Option<String>, i32) {
    let (claim, live, others) = claim_with(gateway, role).await;
    assert_eq!(usize::try_from(live).unwrap(), others.len(), "{others:?}");
    (claim, live)
}

fn other(database: &str, application: &str, addr: &str) -> Other {
    (
        database.to_owned(),
        application.to_owned(),
        Some(addr.parse().unwrap()),
    )
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
    let two = login(&cluster, "other").await;
    two.batch_execute("SET application_name = 'reports'")
        .await
        .unwrap();
    let (first, live, others) = claim_with(&gateway, "other").await;
    assert_eq!(live, 2, "two live sessions, no claim before");
    assert_eq!(
        others,
        [
            other("postgres", "", "127.0.0.1"),
            other("postgres", "reports", "127.0.0.1")
        ]
    );
    let (second, live, others) = claim_with(&gateway, "other").await;
    assert_eq!(live, 3, "the first claim counts until released");
    assert!(
        others.contains(&other("postgres", "psql", "10.0.0.1")),
        "a claim in flight names its login: {others:?}"
    );
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

    // A backend the gateway registered is its client's, not the gateway's.
    let registered = login(&cluster, "other").await;
    let row = registered
        .query_one("SELECT pg_backend_pid(), inet_client_port()", &[])
        .await
        .unwrap();
    let (pid, port): (i32, i32) = (row.get(0), row.get(1));
    let (upstream, client): (IpAddr, IpAddr) =
        ("127.0.0.1".parse().unwrap(), "10.9.8.7".parse().unwrap());
    gateway
        .query_one(
            GATEWAY_REGISTER_QUERY,
            &[
                &pid, &"other", &upstream, &port, &client, &5555i32, &"test/1",
            ],
        )
        .await
        .unwrap();
    let (third, live, others) = claim_with(&gateway, "other").await;
    assert_eq!(live, 4, "three backends and the unreleased claim above");
    assert!(
        others.contains(&other("postgres", "", "10.9.8.7")),
        "{others:?}"
    );
    // A claim id used twice is refused, never merged into one place.
    let again = claim_row(&gateway, "other", None, third.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(again.code().unwrap().code(), "23505", "{again}");
    gateway
        .query_one(GATEWAY_RELEASE_QUERY, &[&third.unwrap()])
        .await
        .unwrap();
    drop(registered);

    // A claim inside an open transaction holds the role's gate: another gateway connection's
    // claim waits for it, then counts it.
    let mut holder = login(&cluster, GATEWAY).await;
    let tx = holder.transaction().await.unwrap();
    let held = claim_row(&tx, "other", None, &new_claim()).await.unwrap();
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
        GATEWAY_CLAIM_QUERY
            .replace("$1::text", "'other'")
            .replace("$2::text", "'postgres'")
            .replace("$3::text", "''")
            .replace("$4::inet", "NULL")
            .replace("$5::pg_catalog.text", "gen_random_uuid()::text"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_replaces_an_earlier_installs_claim_function_and_table() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-admission-upgrade");
    install(&cluster, &dir, &settings(None, false)).await;
    let mut admin = curfew_as(&cluster, &dir, "postgres").await;
    admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    // As an earlier release left it: the table without the login's details, a claim in
    // flight, and the one-argument function.
    let superuser = login(&cluster, "postgres").await;
    superuser
        .batch_execute(
            "ALTER TABLE curfew.gateway_admissions DROP COLUMN database_name,
                 DROP COLUMN application_name, DROP COLUMN client_addr;
             INSERT INTO curfew.gateway_admissions VALUES
                 (gen_random_uuid(), 'other'::regrole, 'gw', clock_timestamp());
             CREATE FUNCTION curfew.claim_gateway_admission(p_role text)
                 RETURNS TABLE (claim uuid, live int4) LANGUAGE sql AS 'SELECT NULL::uuid, 0';
             DROP FUNCTION curfew.claim_gateway_admission(text, text, text, inet, uuid);
             CREATE FUNCTION curfew.claim_gateway_admission(text, text, text, inet)
                 RETURNS TABLE (claim uuid, live int4) LANGUAGE sql AS 'SELECT NULL::uuid, 0';",
        )
        .await
        .unwrap();
    admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    let old = superuser
        .query_one(
            "SELECT to_regprocedure('curfew.claim_gateway_admission(text)') IS NULL",
            &[],
        )
        .await
        .unwrap();
    assert!(old.get::<_, bool>(0), "the old function is dropped");
    let second = superuser
        .query_one(
            "SELECT to_regprocedure('curfew.claim_gateway_admission(text, text, text, inet)') IS NULL",
            &[],
        )
        .await
        .unwrap();
    assert!(
        second.get::<_, bool>(0),
        "the function without the claim's id is dropped"
    );
    let gateway = login(&cluster, GATEWAY).await;
    let (_, live, others) = claim_with(&gateway, "other").await;
    assert_eq!((live, others), (0, Vec::new()), "the old claim is gone");
}
