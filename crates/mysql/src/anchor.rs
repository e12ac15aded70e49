//! The audit chain's anchor store on MariaDB: heads of curfew's chains (chain, seq, hash) in
//! `curfew`.`anchor`, so that a forger holding the agent's host, and so its credential, cannot
//! make a rewritten or truncated log agree with them.
//!
//! An administrator installs the table and its triggers ([`anchor_install_sql`], `curfew
//! init`) and grants curfew's account `SELECT, INSERT` on that table only: no `UPDATE`,
//! `DELETE`, `DROP` or `TRIGGER`, so with the agent's credential anchors can be added, never
//! rolled back. The `BEFORE INSERT` trigger (run as its definer, the administrator) refuses a
//! seq not above the chain's highest (kept in `curfew`.`anchor_head` under a row lock, so two
//! writers serialize) and stamps the
//! server's clock and `USER()` (the login's user and the host the server saw it come from): the
//! caller cannot choose them. `BEFORE UPDATE` and `BEFORE DELETE` triggers refuse every change,
//! so even an account wrongly granted those privileges cannot edit rows one by one (one holding
//! `DROP` or `TRIGGER` on `curfew` could: [`anchor_install_sql`] grants neither).

use curfew_backend::{AnchorStore, BackendError};
use jiff::Timestamp;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::connect::Connection;
use crate::error::MysqlError;

/// What anchoring's errors say curfew was doing.
const WHAT_ANCHOR: &str = "anchoring the audit chain";
/// What anchoring's errors say when the store is missing or not granted.
const WHAT_NO_STORE: &str = "anchoring the audit chain (no `curfew`.`anchor` this account may write: curfew init installs it)";
/// The server's "no such database/table" and "access denied" errors.
const NO_STORE: [u16; 5] = [1044, 1049, 1142, 1143, 1146];

/// A failed anchoring statement, saying what to do when the store is not there.
fn anchor_failed(target: &str, e: mysql_async::Error) -> MysqlError {
    let what = match &e {
        mysql_async::Error::Server(s) if NO_STORE.contains(&s.code) => WHAT_NO_STORE,
        _ => WHAT_ANCHOR,
    };
    MysqlError::query(target, what, e)
}

/// What reading anchors' errors say curfew was doing.
const WHAT_READ: &str = "reading the audit chain's anchors";

/// The table (idempotent). Instants are microseconds since the epoch on the server's clock.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS `curfew`.`anchor` (\
       chain CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL \
         CHECK (chain REGEXP '^[0-9a-f]{64}$'), \
       seq BIGINT UNSIGNED NOT NULL CHECK (seq > 0), \
       hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL \
         CHECK (hash REGEXP '^[0-9a-f]{64}$'), \
       anchored_at BIGINT NOT NULL DEFAULT 0, \
       anchored_by VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '', \
       anchored_from VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '', \
       PRIMARY KEY (chain, seq)) ENGINE=InnoDB";

/// Each chain's highest seq, kept by the trigger alone (curfew's account has no grant on it): a
/// trigger may not lock its own table, and this row's lock serializes two writers of a chain.
const HEAD_TABLE: &str = "CREATE TABLE IF NOT EXISTS `curfew`.`anchor_head` (\
       chain CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, \
       seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB";

/// Going forward only, stamped by the server (replaced at each install, so a fix reaches old
/// stores).
const FORWARD_TRIGGER: &str = "CREATE OR REPLACE TRIGGER `curfew`.`anchor_forward` \
     BEFORE INSERT ON `curfew`.`anchor` FOR EACH ROW BEGIN \
       DECLARE top BIGINT UNSIGNED DEFAULT NULL; \
       DECLARE message VARCHAR(255); \
       SELECT h.seq INTO top FROM `curfew`.`anchor_head` h WHERE h.chain = NEW.chain FOR UPDATE; \
       IF top IS NOT NULL AND NEW.seq <= top THEN \
         SET message = CONCAT('anchor refused: chain ', NEW.chain, ' is anchored up to seq ', top, \
           '; seq ', NEW.seq, ' would go back (anchors are only ever added)'); \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = message; \
       END IF; \
       INSERT INTO `curfew`.`anchor_head` (chain, seq) VALUES (NEW.chain, NEW.seq) \
         ON DUPLICATE KEY UPDATE seq = NEW.seq; \
       SET NEW.anchored_at = CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED); \
       SET NEW.anchored_from = SUBSTRING_INDEX(USER(), '@', -1); \
       SET NEW.anchored_by = LEFT(USER(), CHAR_LENGTH(USER()) - CHAR_LENGTH(NEW.anchored_from) - 1); \
     END";

/// No anchor is ever changed.
const NO_UPDATE_TRIGGER: &str = "CREATE OR REPLACE TRIGGER `curfew`.`anchor_no_update` \
     BEFORE UPDATE ON `curfew`.`anchor` FOR EACH ROW \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'anchors are never changed'";

/// No anchor is ever removed (row by row; `TRUNCATE` needs `DROP`, never granted).
const NO_DELETE_TRIGGER: &str = "CREATE OR REPLACE TRIGGER `curfew`.`anchor_no_delete` \
     BEFORE DELETE ON `curfew`.`anchor` FOR EACH ROW \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'anchors are never removed'";

/// What an administrator runs (idempotent) so that `account` (quoted as
/// [`crate::account_name`] quotes it) keeps anchors: the database, the table, its triggers, and
/// `SELECT, INSERT` on the table alone.
pub fn anchor_install_sql(account: &str) -> Vec<String> {
    vec![
        "CREATE DATABASE IF NOT EXISTS `curfew`".to_owned(),
        TABLE.to_owned(),
        HEAD_TABLE.to_owned(),
        FORWARD_TRIGGER.to_owned(),
        NO_UPDATE_TRIGGER.to_owned(),
        NO_DELETE_TRIGGER.to_owned(),
        format!("GRANT SELECT, INSERT ON `curfew`.`anchor` TO {account}"),
    ]
}

/// One anchor as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRow {
    /// The chain's identity.
    pub chain: String,
    /// The head's seq.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
    /// The server's clock when it was stored.
    pub anchored_at: Timestamp,
    /// The user that stored it (`USER()`'s user part).
    pub anchored_by: String,
    /// The host the server saw it come from (`USER()`'s host part).
    pub anchored_from: String,
}

/// Who this connection is to the server, as an anchor stored over it would be stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorOrigin {
    /// `USER()`'s user part.
    pub user: String,
    /// `USER()`'s host part.
    pub host: String,
}

fn decode_anchor(row: Row, target: &str) -> Result<AnchorRow, MysqlError> {
    type Columns = (String, u64, String, i64, String, String);
    let (chain, seq, hash, at, anchored_by, anchored_from): Columns =
        mysql_async::from_row_opt(row).map_err(|e| MysqlError::Decode {
            target: target.to_owned(),
            what: WHAT_READ,
            reason: e.to_string(),
        })?;
    let anchored_at = Timestamp::from_microsecond(at).map_err(|e| MysqlError::Decode {
        target: target.to_owned(),
        what: WHAT_READ,
        reason: format!("anchored_at {at}: {e}"),
    })?;
    Ok(AnchorRow {
        chain,
        seq,
        hash,
        anchored_at,
        anchored_by,
        anchored_from,
    })
}

/// The head of `chain` as stored: its seq and hash.
async fn top(
    conn: &mut Conn,
    target: &str,
    chain: &str,
) -> Result<Option<(u64, String)>, MysqlError> {
    conn.exec_first(
        "SELECT seq, hash FROM `curfew`.`anchor` WHERE chain = ? ORDER BY seq DESC LIMIT 1",
        (chain,),
    )
    .await
    .map_err(|e| anchor_failed(target, e))
}

impl Connection {
    /// Anchors the head `(chain, seq, hash)`. The same head again changes nothing; a seq at or
    /// below the chain's highest (with another hash) is refused by the server.
    pub async fn store_anchor(
        &mut self,
        chain: &str,
        seq: u64,
        hash: &str,
    ) -> Result<(), MysqlError> {
        if top(&mut self.conn, &self.target, chain).await? == Some((seq, hash.to_owned())) {
            return Ok(());
        }
        self.conn
            .exec_drop(
                "INSERT INTO `curfew`.`anchor` (chain, seq, hash) VALUES (?, ?, ?)",
                (chain, seq, hash),
            )
            .await
            .map_err(|e| anchor_failed(&self.target, e))
    }

    /// Every anchor of every chain, by chain then seq.
    pub async fn anchors(&mut self) -> Result<Vec<AnchorRow>, MysqlError> {
        let rows: Vec<Row> = self
            .conn
            .query(
                "SELECT chain, seq, hash, anchored_at, anchored_by, anchored_from \
                 FROM `curfew`.`anchor` ORDER BY chain, seq",
            )
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT_READ, e))?;
        rows.into_iter()
            .map(|row| decode_anchor(row, &self.target))
            .collect()
    }

    /// This connection's origin, as an anchor stored over it would record it.
    pub async fn anchor_origin(&mut self) -> Result<AnchorOrigin, MysqlError> {
        let row: Option<(String, String)> = self
            .conn
            .query_first(
                "SELECT LEFT(USER(), CHAR_LENGTH(USER()) - CHAR_LENGTH(SUBSTRING_INDEX(USER(), '@', -1)) - 1), \
                 SUBSTRING_INDEX(USER(), '@', -1)",
            )
            .await
            .map_err(|e| MysqlError::query(&self.target, "asking the server who this session is", e))?;
        let (user, host) = row.ok_or_else(|| MysqlError::Decode {
            target: self.target.clone(),
            what: "asking the server who this session is",
            reason: "no row".to_owned(),
        })?;
        Ok(AnchorOrigin { user, host })
    }
}

impl AnchorStore for Connection {
    async fn anchor(&mut self, chain: &str, seq: u64, hash: &str) -> Result<(), BackendError> {
        Ok(self.store_anchor(chain, seq, hash).await?)
    }
}
