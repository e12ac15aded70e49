//! Reading a target's anchor store for an integrity check (`curfew audit verify`, `curfew
//! report`): connect, read every chain's anchors, and ask who this session is, within a time
//! limit, so that one unreachable target cannot hold the check up.

use std::time::Duration;

use crate::{AnchorOrigin, AnchorRow, PgError, TargetSpec, connect};

/// Why a target's anchors could not be read. The messages are the ones the check prints after
/// `anchors on target "NAME": not checked: `.
#[derive(Debug, thiserror::Error)]
pub enum AnchorReadError {
    /// The target could not be reached or refused the login.
    #[error("{0}")]
    Connect(#[source] PgError),
    /// The anchor store could not be read (most often: it is not installed).
    #[error("{0} (curfew init installs the anchor store)")]
    Store(#[source] PgError),
    /// The server did not say who this session is.
    #[error("{0}")]
    Origin(#[source] PgError),
    /// The whole read took longer than its limit.
    #[error("no answer within {seconds}s")]
    NoAnswer {
        /// The limit, in whole seconds.
        seconds: u64,
    },
}

/// Every anchor a target holds, and who this session is to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAnchorRows {
    /// The anchors of every chain, as the store holds them.
    pub rows: Vec<AnchorRow>,
    /// Where this session comes from: with the agent's credential on the agent's host, the
    /// place a replaced log's new chain would be anchored from.
    pub origin: AnchorOrigin,
}

/// Reads the anchors of the target `spec` within `limit` (connecting included).
pub async fn read_target_anchors(
    spec: &TargetSpec,
    limit: Duration,
) -> Result<TargetAnchorRows, AnchorReadError> {
    let read = async {
        let connected = connect(spec).await.map_err(AnchorReadError::Connect)?;
        let rows = connected
            .connection
            .anchors(None)
            .await
            .map_err(AnchorReadError::Store)?;
        let origin = connected
            .connection
            .anchor_origin()
            .await
            .map_err(AnchorReadError::Origin)?;
        Ok(TargetAnchorRows { rows, origin })
    };
    match tokio::time::timeout(limit, read).await {
        Err(_) => Err(AnchorReadError::NoAnswer {
            seconds: limit.as_secs(),
        }),
        Ok(result) => result,
    }
}
