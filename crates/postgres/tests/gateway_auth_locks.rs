//! What `curfew.gateway_secret` says of the ledger's locks and a role's memberships, against
//! a real server: for a served role its locks in force and its memberships (direct and
//! indirect); a role NOLOGIN because curfew locked it (the ledger's record of the disabled
//! login and a lock in force) is served, one NOLOGIN otherwise or whose lock was released is
//! not; a role not served gets no locks and no memberships.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "gateway_auth_fixtures/mod.rs"]
mod fixtures;

use common::TempDir;
use curfew_postgres::GATEWAY_SECRET_QUERY;
use fixtures::*;
use tokio_postgres::Client;

type Answer = (
    String,
    Option<Vec<String>>,
    Option<Vec<Option<String>>>,
    Option<Vec<String>>,
);

/// The kind, the lock kinds and reasons, and the memberships (sorted) the function returns.
async fn answer(gateway: &Client, role: &str) -> Answer {
    let row = gateway
        .query_one(GATEWAY_SECRET_QUERY, &[&role])
        .await
        .unwrap();
    let mut groups: Option<Vec<String>> = row.get(8);
    if let Some(groups) = groups.as_mut() {
        groups.sort();
    }
    (row.get(0), row.get(4), row.get(6), groups)
}

fn lock(cluster: &curfew_sandbox::Cluster, role: &str, reason: &str) {
    cluster
        .psql(&format!(
            "INSERT INTO curfew.lock (role_oid, role_name, kind, reason, created_by)
               SELECT oid, rolname, 'incident', '{reason}', 'test' FROM pg_roles
                WHERE rolname = '{role}'"
        ))
        .unwrap();
}

fn disabled(cluster: &curfew_sandbox::Cluster, role: &str) {
    cluster
        .psql(&format!(
            "INSERT INTO curfew.disabled_login (role_oid, role_name)
               SELECT oid, rolname FROM pg_roles WHERE rolname = '{role}'"
        ))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_memberships_come_with_a_served_roles_verifier_only() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-locks");
    install(&cluster, &dir, &settings(None, false)).await;
    let gateway = login(&cluster, GATEWAY).await;

    let mut expected_groups = vec!["team".to_owned(), GROUP.to_owned()];
    expected_groups.sort();
    assert_eq!(
        answer(&gateway, OBRIEN).await,
        (
            "scram-sha-256".to_owned(),
            Some(vec![]),
            Some(vec![]),
            Some(expected_groups)
        )
    );

    // dormant is NOLOGIN: a lock alone does not serve it, nor curfew's record alone.
    lock(&cluster, "dormant", "breach");
    assert_eq!(
        answer(&gateway, "dormant").await,
        ("mock".to_owned(), None, None, None)
    );
    cluster
        .psql("UPDATE curfew.lock SET released_at = now(), released_by = 't'")
        .unwrap();
    disabled(&cluster, "dormant");
    assert_eq!(
        answer(&gateway, "dormant").await,
        ("mock".to_owned(), None, None, None)
    );
    // Both: curfew locked it, and the lock is in force.
    lock(&cluster, "dormant", "breach again");
    assert_eq!(
        answer(&gateway, "dormant").await,
        (
            "scram-sha-256".to_owned(),
            Some(vec!["incident".to_owned()]),
            Some(vec![Some("breach again".to_owned())]),
            Some(vec![])
        )
    );
    // An expired lock is not in force.
    cluster
        .psql("UPDATE curfew.lock SET expires_at = now() - interval '1 minute' WHERE released_at IS NULL")
        .unwrap();
    assert_eq!(answer(&gateway, "dormant").await.0, "mock");

    // A superuser the gateway does not serve tells nothing of its locks, whatever the ledger.
    lock(&cluster, "boss", "secret reason");
    disabled(&cluster, "boss");
    assert_eq!(
        answer(&gateway, "boss").await,
        ("mock".to_owned(), None, None, None)
    );
    // A LOGIN role with a lock recorded and not applied: served, with the lock.
    lock(&cluster, "ana", "not applied yet");
    assert_eq!(
        answer(&gateway, "ana").await.2,
        Some(vec![Some("not applied yet".to_owned())])
    );

    // The gateway's role reads the ledger only through the function.
    let e = gateway
        .batch_execute("SELECT reason FROM curfew.lock")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "42501", "{e}");
}
