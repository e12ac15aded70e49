//! The rest of `curfew-backend` on a real MariaDB, as far as it goes: the connector connects
//! without warnings, a lone connection leads, a missing login-lock ledger is named loudly when
//! the policy needs it and silent otherwise, anchoring without the store names `curfew init`.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_backend::{
    AnchorStore, Backend, Connector, Coordination, ErrorKind, LedgerStatus, LoginLedger,
};
use curfew_sandbox::MariaDbOptions;
use fixture::{AGENT, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_connection_leads_alone_and_refuses_what_it_cannot_do() {
    let f = Fixture::start(MariaDbOptions::default());
    let (mut c, warnings) = Connector::connect(&f.target()).await.unwrap();
    assert!(
        !warnings.iter().any(|w| w.contains("leader lock")),
        "{warnings:?}"
    );
    assert!(c.describe().starts_with("MariaDB "), "{}", c.describe());
    assert!(c.describe().contains(AGENT), "{}", c.describe());
    // Leadership is the leader lock's (tests/leader.rs).
    assert!(c.try_lead().await.unwrap().is_some());
    assert!(c.still_leads().await.unwrap());
    assert!(c.lock_holders().await.unwrap().is_empty());
    c.ping().await.unwrap();

    assert_eq!(c.own_role(), AGENT);
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Missing);
    assert_eq!(
        c.login_change_problem("m", LedgerStatus::Missing, false),
        None
    );
    let problem = c
        .login_change_problem("m", LedgerStatus::Missing, true)
        .unwrap();
    assert!(
        problem.contains("CREATE DATABASE IF NOT EXISTS curfew"),
        "{problem}"
    );
    assert!(problem.contains("\"m\""), "{problem}");

    let e = c.anchor("chain", 1, "abc").await.unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Refused {
            code: Some("1142".to_owned())
        },
        "{e}"
    );
    assert!(e.to_string().contains("curfew init installs it"), "{e}");
}
