//! The anchor store: heads of curfew's audit chains (chain, seq, hash), kept in each target's
//! `curfew` schema so that a forger with write access to the agent's host, and so with the
//! agent's database credential, cannot make a rewritten or truncated log agree with them.
//!
//! `curfew.anchor` belongs to `curfew_owner`. curfew's role may only read it and call
//! `curfew.anchor(chain, seq, hash)`, a SECURITY DEFINER function (fixed `search_path`) that
//! adds a row only when `seq` is greater than the chain's highest anchored seq (the same head
//! again is accepted and changes nothing), stamping the server's clock, `session_user` and the
//! client's address as the server sees it (`inet_client_addr()`, NULL over a Unix socket): the
//! caller cannot choose any of them, so verification can tell which anchors came from the same
//! place (see `curfew_audit::Anchor::origin`). No
//! role but the owner may update or delete rows: with the agent's credential, anchors can be
//! added, never rolled back.

use jiff::Timestamp;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

/// The function curfew's role calls to anchor a head, by signature.
pub const ANCHOR_FUNCTION: &str = "curfew.anchor(text,bigint,text)";

/// The anchor table (idempotent).
pub(crate) const ANCHOR_DDL: &str = "
CREATE TABLE IF NOT EXISTS curfew.anchor (
    chain text NOT NULL CHECK (chain ~ '^[0-9a-f]{64}$'),
    seq bigint NOT NULL CHECK (seq > 0),
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    anchored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    anchored_by name NOT NULL DEFAULT session_user,
    anchored_from inet DEFAULT inet_client_addr(),
    PRIMARY KEY (chain, seq)
);
-- Stores made before anchors named their origin get the column, NULL in their old rows (a
-- default given with ADD COLUMN would stamp them all with the installer's address).
ALTER TABLE curfew.anchor ADD COLUMN IF NOT EXISTS anchored_from inet;
ALTER TABLE curfew.anchor ALTER COLUMN anchored_from SET DEFAULT inet_client_addr();
";

/// The function (installed with the ledger's functions).
pub(crate) const ANCHOR_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION curfew.anchor(p_chain text, p_seq bigint, p_hash text)
RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    top record;
    stamp timestamptz;
BEGIN
    -- One writer at a time: only this table's owner and functions can take this lock.
    LOCK TABLE curfew.anchor IN SHARE ROW EXCLUSIVE MODE;
    SELECT a.seq, a.hash, a.anchored_at INTO top FROM curfew.anchor a
    WHERE a.chain = p_chain ORDER BY a.seq DESC LIMIT 1;
    IF FOUND AND top.seq = p_seq AND top.hash = p_hash THEN
        RETURN top.anchored_at;
    END IF;
    IF FOUND AND p_seq <= top.seq THEN
        RAISE EXCEPTION 'anchor refused: chain % is anchored up to seq % (at %); seq % would go back (anchors are only ever added)',
            p_chain, top.seq, top.anchored_at, p_seq
            USING ERRCODE = 'CF004';
    END IF;
    INSERT INTO curfew.anchor (chain, seq, hash) VALUES (p_chain, p_seq, p_hash)
    RETURNING anchored_at INTO stamp;
    RETURN stamp;
END $f$;
"#;

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
    /// The role that stored it (`session_user`).
    pub anchored_by: String,
    /// The client address it was stored from, as the server saw it (`None`: a Unix socket,
    /// or an anchor stored before the store recorded addresses).
    pub anchored_from: Option<String>,
}

/// Who this connection is to the server: `session_user` and `inet_client_addr()` (as text,
/// `None` over a Unix socket), what an anchor stored over it would be stamped with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorOrigin {
    /// `session_user`.
    pub role: String,
    /// `inet_client_addr()`, host part only.
    pub addr: Option<String>,
}

impl Connection {
    /// Anchors the head `(chain, seq, hash)`; returns the server's time of the anchor. Refused
    /// (a query error quoting the server) when the chain is already anchored at a higher seq,
    /// or at this seq with another hash.
    pub async fn anchor(&self, chain: &str, seq: u64, hash: &str) -> Result<Timestamp, PgError> {
        let what = "anchoring the audit chain";
        let seq = i64::try_from(seq).map_err(|_| PgError::Query {
            target: self.target.clone(),
            what,
            reason: format!("seq {seq} is out of range"),
            lost: false,
        })?;
        let row = self
            .client
            .query_one("SELECT curfew.anchor($1, $2, $3)", &[&chain, &seq, &hash])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?;
        col(&row, 0, &self.target, what)
    }

    /// Every anchor of `chain` (or of every chain), lowest seq first.
    pub async fn anchors(&self, chain: Option<&str>) -> Result<Vec<AnchorRow>, PgError> {
        let what = "reading the audit chain's anchors";
        let rows = self
            .client
            .query(
                "SELECT chain, seq, hash, anchored_at, anchored_by::text, host(anchored_from)
                 FROM curfew.anchor
                 WHERE $1::text IS NULL OR chain = $1 ORDER BY chain, seq",
                &[&chain],
            )
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = col(row, 1, &self.target, what)?;
                Ok(AnchorRow {
                    chain: col(row, 0, &self.target, what)?,
                    seq: u64::try_from(seq).map_err(|_| PgError::Query {
                        target: self.target.clone(),
                        what,
                        reason: format!("an anchor has seq {seq}"),
                        lost: false,
                    })?,
                    hash: col(row, 2, &self.target, what)?,
                    anchored_at: col(row, 3, &self.target, what)?,
                    anchored_by: col(row, 4, &self.target, what)?,
                    anchored_from: col(row, 5, &self.target, what)?,
                })
            })
            .collect()
    }

    /// This connection's own origin, as an anchor stored over it would record it.
    pub async fn anchor_origin(&self) -> Result<AnchorOrigin, PgError> {
        let what = "asking the server who this session is";
        let row = self
            .client
            .query_one("SELECT session_user::text, host(inet_client_addr())", &[])
            .await
            .map_err(|e| PgError::query(&self.target, what, e))?;
        Ok(AnchorOrigin {
            role: col(&row, 0, &self.target, what)?,
            addr: col(&row, 1, &self.target, what)?,
        })
    }
}
