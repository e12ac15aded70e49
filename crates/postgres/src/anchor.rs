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

pub use crate::sql::anchor::{ANCHOR_FUNCTION, AnchorOrigin, AnchorRow};

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::anchor::{
    ANCHOR, ANCHORS, ORIGIN, WHAT_ANCHOR, WHAT_ORIGIN, WHAT_READ, decode_anchor,
    decode_anchored_at, decode_origin, seq_param,
};

impl Connection {
    /// Anchors the head `(chain, seq, hash)`; returns the server's time of the anchor. Refused
    /// (a query error quoting the server) when the chain is already anchored at a higher seq,
    /// or at this seq with another hash.
    pub async fn anchor(&self, chain: &str, seq: u64, hash: &str) -> Result<Timestamp, PgError> {
        let seq = seq_param(seq, &self.target)?;
        let row = self
            .client
            .query_one(ANCHOR, &[&chain, &seq, &hash])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_ANCHOR, e))?;
        decode_anchored_at(&row, &self.target)
    }

    /// Every anchor of `chain` (or of every chain), lowest seq first.
    pub async fn anchors(&self, chain: Option<&str>) -> Result<Vec<AnchorRow>, PgError> {
        let rows = self
            .client
            .query(ANCHORS, &[&chain])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_READ, e))?;
        rows.iter()
            .map(|row| decode_anchor(row, &self.target))
            .collect()
    }

    /// This connection's own origin, as an anchor stored over it would record it.
    pub async fn anchor_origin(&self) -> Result<AnchorOrigin, PgError> {
        let row = self
            .client
            .query_one(ORIGIN, &[])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_ORIGIN, e))?;
        decode_origin(&row, &self.target)
    }
}
