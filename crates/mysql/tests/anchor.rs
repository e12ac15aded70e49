//! The audit chain's anchor store on a real MariaDB: installed by an administrator, written by
//! curfew's account going forward only, never changed or removed by it (nor, row by row, by
//! the administrator), each anchor stamped by the server with who stored it and from where.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_backend::AnchorStore;
use curfew_mysql::{AnchorRow, anchor_install_sql};
use curfew_sandbox::MariaDbOptions;
use fixture::{AGENT, Fixture};
use mysql_async::prelude::Queryable;

const CHAIN: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A server whose administrator installed the anchor store for curfew's account (twice: the
/// install is idempotent).
async fn installed() -> Fixture {
    let f = Fixture::start(MariaDbOptions::default());
    let mut admin = f.socket_client(f.server.admin()).await;
    for _ in 0..2 {
        for statement in anchor_install_sql(&format!("'{AGENT}'@'127.0.0.1'")) {
            admin.query_drop(statement).await.unwrap();
        }
    }
    f
}

fn heads(rows: &[AnchorRow]) -> Vec<(u64, String)> {
    rows.iter().map(|r| (r.seq, r.hash.clone())).collect()
}

#[tokio::test]
async fn anchors_go_forward_only_stamped_by_the_server() {
    let f = installed().await;
    let mut c = f.curfew().await;
    let before = jiff::Timestamp::now();
    AnchorStore::anchor(&mut c, CHAIN, 3, &hash(3))
        .await
        .unwrap();
    AnchorStore::anchor(&mut c, CHAIN, 7, &hash(7))
        .await
        .unwrap();
    // The same head again changes nothing.
    AnchorStore::anchor(&mut c, CHAIN, 7, &hash(7))
        .await
        .unwrap();

    // Back, or the same seq with another hash: refused by the server, saying why.
    let back = AnchorStore::anchor(&mut c, CHAIN, 5, &hash(5))
        .await
        .unwrap_err();
    let text = format!(
        "{back}: {:?}",
        std::error::Error::source(&back).map(|s| s.to_string())
    );
    assert!(text.contains("would go back"), "{text}");
    assert!(
        AnchorStore::anchor(&mut c, CHAIN, 7, &hash(8))
            .await
            .is_err()
    );
    // Not a chain id or a hash: refused by the table's checks.
    assert!(AnchorStore::anchor(&mut c, "x", 9, &hash(9)).await.is_err());
    assert!(
        AnchorStore::anchor(&mut c, CHAIN, 9, "' OR 1=1 --")
            .await
            .is_err()
    );

    let rows = c.anchors().await.unwrap();
    assert_eq!(heads(&rows), vec![(3, hash(3)), (7, hash(7))]);
    for row in &rows {
        assert_eq!(row.chain, CHAIN);
        assert_eq!(row.anchored_by, AGENT);
        assert_eq!(row.anchored_from, "127.0.0.1");
        let skew = jiff::SignedDuration::from_secs(60);
        assert!(
            row.anchored_at >= before - skew && row.anchored_at <= jiff::Timestamp::now() + skew
        );
    }
    let origin = c.anchor_origin().await.unwrap();
    assert_eq!(
        (origin.user.as_str(), origin.host.as_str()),
        (AGENT, "127.0.0.1")
    );
}

#[tokio::test]
async fn curfews_account_cannot_rewrite_what_it_stored() {
    let f = installed().await;
    let mut c = f.curfew().await;
    AnchorStore::anchor(&mut c, CHAIN, 10, &hash(10))
        .await
        .unwrap();

    // curfew's account, as a forger holding its credential would use it.
    let mut forger = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(f.server.port())
            .prefer_socket(false)
            .user(Some(AGENT))
            .pass(Some("agent-secret")),
    )
    .await
    .unwrap();
    for statement in [
        "UPDATE `curfew`.`anchor` SET seq = 1",
        "DELETE FROM `curfew`.`anchor`",
        "TRUNCATE TABLE `curfew`.`anchor`",
        "DROP TRIGGER `curfew`.`anchor_forward`",
        "DROP TABLE `curfew`.`anchor`",
        "ALTER TABLE `curfew`.`anchor` DROP PRIMARY KEY",
        "REPLACE INTO `curfew`.`anchor` (chain, seq, hash) VALUES ('c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', 10, 'abababababababababababababababababababababababababababababababab')",
        "INSERT INTO `curfew`.`anchor` (chain, seq, hash) VALUES ('c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', 2, 'abababababababababababababababababababababababababababababababab')",
        "INSERT IGNORE INTO `curfew`.`anchor` (chain, seq, hash) VALUES ('c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', 3, 'abababababababababababababababababababababababababababababababab')",
        "INSERT INTO `curfew`.`anchor` (chain, seq, hash) VALUES ('c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', 10, 'abababababababababababababababababababababababababababababababab') ON DUPLICATE KEY UPDATE hash = VALUES(hash)",
        "UPDATE `curfew`.`anchor_head` SET seq = 0",
        "DELETE FROM `curfew`.`anchor_head`",
    ] {
        assert!(forger.query_drop(statement).await.is_err(), "{statement}");
    }
    // A stamp of its own choosing is overwritten by the server's.
    forger
        .query_drop(format!(
            "INSERT INTO `curfew`.`anchor` (chain, seq, hash, anchored_at, anchored_by, anchored_from) \
             VALUES ('{CHAIN}', 11, '{}', 1, 'someone', '10.9.9.9')",
            hash(11)
        ))
        .await
        .unwrap();
    // The administrator cannot edit rows one by one either.
    let mut admin = f.socket_client(f.server.admin()).await;
    assert!(
        admin
            .query_drop("DELETE FROM `curfew`.`anchor`")
            .await
            .is_err()
    );
    assert!(
        admin
            .query_drop("UPDATE `curfew`.`anchor` SET hash = hash")
            .await
            .is_err()
    );

    let rows = c.anchors().await.unwrap();
    assert_eq!(heads(&rows), vec![(10, hash(10)), (11, hash(11))]);
    assert_eq!(rows[1].anchored_by, AGENT);
    assert_eq!(rows[1].anchored_from, "127.0.0.1");
    assert!(rows[1].anchored_at.as_second() > 1_000_000);
}

#[tokio::test]
async fn without_the_store_anchoring_and_reading_fail_clearly() {
    let f = Fixture::start(MariaDbOptions::default());
    let mut c = f.curfew().await;
    let error = AnchorStore::anchor(&mut c, CHAIN, 1, &hash(1))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("anchoring the audit chain"),
        "{error}"
    );
    let error = curfew_mysql::read_target_anchors(&f.target(), std::time::Duration::from_secs(20))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("curfew init installs the anchor store"),
        "{error}"
    );
}
