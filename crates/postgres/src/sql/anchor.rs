//! The anchor store's SQL (see `crate::anchor` for what it guards against): the table, the
//! function curfew's role calls, the statements that anchor and read heads, and the decoding
//! of their rows.

use jiff::Timestamp;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::sql::decode::col;

/// What anchoring's errors say curfew was doing.
pub(crate) const WHAT_ANCHOR: &str = "anchoring the audit chain";

/// What reading anchors' errors say curfew was doing.
pub(crate) const WHAT_READ: &str = "reading the audit chain's anchors";

/// What reading this session's origin's errors say curfew was doing.
pub(crate) const WHAT_ORIGIN: &str = "asking the server who this session is";

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

/// Anchor the head `$1` (chain), `$2` (seq), `$3` (hash); returns the server's time.
pub(crate) const ANCHOR: &str = "SELECT curfew.anchor($1, $2, $3)";

/// Every anchor of chain `$1` (NULL: of every chain), lowest seq first.
pub(crate) const ANCHORS: &str =
    "SELECT chain, seq, hash, anchored_at, anchored_by::text, host(anchored_from)
                 FROM curfew.anchor
                 WHERE $1::text IS NULL OR chain = $1 ORDER BY chain, seq";

/// This session's role and client address, as an anchor would be stamped with them.
pub(crate) const ORIGIN: &str = "SELECT session_user::text, host(inet_client_addr())";

/// A head's seq as the store's `bigint`; one beyond it is an error.
pub(crate) fn seq_param(seq: u64, target: &str) -> Result<i64, PgError> {
    i64::try_from(seq).map_err(|_| PgError::Query {
        target: target.to_owned(),
        what: WHAT_ANCHOR,
        reason: format!("seq {seq} is out of range"),
        lost: false,
    })
}

/// A stored seq as a head's; a negative one (the table forbids it) is an error.
fn stored_seq(seq: i64, target: &str) -> Result<u64, PgError> {
    u64::try_from(seq).map_err(|_| PgError::Query {
        target: target.to_owned(),
        what: WHAT_READ,
        reason: format!("an anchor has seq {seq}"),
        lost: false,
    })
}

/// [`ANCHOR`]'s row: the server's time of the anchor.
pub(crate) fn decode_anchored_at(row: &Row, target: &str) -> Result<Timestamp, PgError> {
    col(row, 0, target, WHAT_ANCHOR)
}

/// One row of [`ANCHORS`].
pub(crate) fn decode_anchor(row: &Row, target: &str) -> Result<AnchorRow, PgError> {
    let what = WHAT_READ;
    let seq: i64 = col(row, 1, target, what)?;
    Ok(AnchorRow {
        chain: col(row, 0, target, what)?,
        seq: stored_seq(seq, target)?,
        hash: col(row, 2, target, what)?,
        anchored_at: col(row, 3, target, what)?,
        anchored_by: col(row, 4, target, what)?,
        anchored_from: col(row, 5, target, what)?,
    })
}

/// [`ORIGIN`]'s row.
pub(crate) fn decode_origin(row: &Row, target: &str) -> Result<AnchorOrigin, PgError> {
    Ok(AnchorOrigin {
        role: col(row, 0, target, WHAT_ORIGIN)?,
        addr: col(row, 1, target, WHAT_ORIGIN)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_beyond_the_stores_range_are_errors() {
        assert_eq!(seq_param(7, "t").unwrap(), 7);
        let error = seq_param(u64::MAX, "t").unwrap_err().to_string();
        assert!(
            error.contains(&format!("seq {} is out of range", u64::MAX)),
            "{error}"
        );
        assert_eq!(stored_seq(7, "t").unwrap(), 7);
        let error = stored_seq(-1, "t").unwrap_err().to_string();
        assert!(error.contains("an anchor has seq -1"), "{error}");
    }
}
