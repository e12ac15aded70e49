//! The audit chain's anchor store as `curfew init` installs it, used by curfew's role at least
//! privilege: anchors are added with a higher seq only, never changed or removed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;

const CHAIN: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[tokio::test]
async fn curfews_role_adds_anchors_going_forward_only_and_cannot_change_or_remove_them() {
    let cluster = curfew_testkit::cluster_with_agent_role("");
    let mut admin = connect_trust(&cluster, "postgres").await;
    admin.install_ledger("curfew_agent").await.unwrap();
    // Installing again keeps the store and its rows (idempotent, vetting accepts it).
    let agent = connect_trust(&cluster, "curfew_agent").await;
    let first = agent.anchor(CHAIN, 3, &hash(3)).await.unwrap();
    admin.install_ledger("curfew_agent").await.unwrap();

    let later = agent.anchor(CHAIN, 7, &hash(7)).await.unwrap();
    assert!(later >= first);
    // The same head again (a retry after a lost reply) changes nothing.
    assert_eq!(agent.anchor(CHAIN, 7, &hash(7)).await.unwrap(), later);
    agent.anchor(OTHER, 1, &hash(1)).await.unwrap();

    // Going back, or another hash at the same seq, is refused, saying why.
    for (seq, h) in [(5, hash(5)), (7, hash(8))] {
        let refused = agent.anchor(CHAIN, seq, &h).await.unwrap_err().to_string();
        assert!(
            refused.contains(&format!(
                "anchor refused: chain {CHAIN} is anchored up to seq 7"
            )),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("seq {seq} would go back")),
            "{refused}"
        );
    }
    // Malformed heads are refused by the table's checks.
    assert!(agent.anchor("not-a-chain", 9, &hash(9)).await.is_err());

    let anchors = agent.anchors(Some(CHAIN)).await.unwrap();
    let seqs: Vec<_> = anchors.iter().map(|a| (a.seq, a.hash.clone())).collect();
    assert_eq!(seqs, vec![(3, hash(3)), (7, hash(7))]);
    assert!(anchors.iter().all(|a| a.anchored_by == "curfew_agent"));
    assert_eq!(anchors[0].anchored_at, first);
    assert_eq!(agent.anchors(None).await.unwrap().len(), 3);

    // With the agent's credential, no way to roll anchors back.
    let raw = client(cluster.port(), "curfew_agent", "forger").await;
    for sql in [
        "DELETE FROM curfew.anchor",
        "UPDATE curfew.anchor SET seq = 1",
        "TRUNCATE curfew.anchor",
        "INSERT INTO curfew.anchor (chain, seq, hash) VALUES (repeat('1', 64), 1, repeat('0', 64))",
        "ALTER TABLE curfew.anchor DISABLE TRIGGER ALL",
        "DROP TABLE curfew.anchor",
        "CREATE OR REPLACE FUNCTION curfew.anchor(p_chain text, p_seq bigint, p_hash text) RETURNS timestamptz LANGUAGE sql AS 'SELECT now()'",
    ] {
        let error = raw.client.batch_execute(sql).await.unwrap_err();
        assert_eq!(error.code().unwrap().code(), "42501", "{sql}: {error:?}");
    }
    assert_eq!(agent.anchors(None).await.unwrap().len(), 3);

    // Any other login role can neither add anchors nor read them.
    cluster.psql("CREATE ROLE kim LOGIN").unwrap();
    let kim = client(cluster.port(), "kim", "psql").await;
    for sql in [
        "SELECT curfew.anchor(repeat('1', 64), 99, repeat('9', 64))",
        "SELECT * FROM curfew.anchor",
        "BEGIN; LOCK TABLE curfew.anchor IN ACCESS SHARE MODE",
    ] {
        let error = kim.client.batch_execute(sql).await.unwrap_err();
        let _ = kim.client.batch_execute("ROLLBACK").await;
        assert_eq!(error.code().unwrap().code(), "42501", "{sql}: {error:?}");
    }
    assert_eq!(agent.anchors(None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_forger_cannot_choose_an_anchors_origin_and_init_adds_the_origin_to_an_old_store() {
    let cluster = curfew_testkit::cluster_with_agent_role("");
    let mut admin = connect_trust(&cluster, "postgres").await;
    admin.install_ledger("curfew_agent").await.unwrap();
    let agent = connect_trust(&cluster, "curfew_agent").await;
    agent.anchor(CHAIN, 1, &hash(1)).await.unwrap();
    // A store from before anchors named their origin.
    cluster
        .psql("ALTER TABLE curfew.anchor DROP COLUMN anchored_from")
        .unwrap();
    admin.install_ledger("curfew_agent").await.unwrap();
    agent.anchor(CHAIN, 2, &hash(2)).await.unwrap();
    let origin = agent.anchor_origin().await.unwrap();
    assert_eq!(origin.role, "curfew_agent");
    let anchors = agent.anchors(Some(CHAIN)).await.unwrap();
    // The old row is not stamped with the installer's address; the new one with the agent's.
    assert_eq!(anchors[0].anchored_from, None);
    assert_eq!(anchors[1].anchored_from, origin.addr);
    assert_eq!(anchors[1].anchored_by, "curfew_agent");
    // The column's owner is the store's owner, and curfew's role cannot write it.
    let raw = client(cluster.port(), "curfew_agent", "forger").await;
    let error = raw
        .client
        .batch_execute("UPDATE curfew.anchor SET anchored_from = '10.9.9.9'")
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42501", "{error:?}");
}
