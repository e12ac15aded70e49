//! Reading a MariaDB target's anchor store for an integrity check (`curfew audit verify`,
//! `curfew report`): connect, read every chain's anchors and ask who this session is, within a
//! time limit, so that one unreachable target cannot hold the check up.

use std::time::Duration;

use crate::anchor::{AnchorOrigin, AnchorRow};
use crate::error::MysqlError;
use crate::target::MysqlTarget;

/// Why a target's anchors could not be read (printed after `anchors on target "NAME": not
/// checked: `).
#[derive(Debug, thiserror::Error)]
pub enum AnchorReadError {
    /// The target could not be reached or refused the login.
    #[error("{0}")]
    Connect(#[source] MysqlError),
    /// The anchor store could not be read (most often: it is not installed).
    #[error("{0} (curfew init installs the anchor store)")]
    Store(#[source] MysqlError),
    /// The server did not say who this session is.
    #[error("{0}")]
    Origin(#[source] MysqlError),
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
    /// The anchors of every chain.
    pub rows: Vec<AnchorRow>,
    /// Where this session comes from, as an anchor stored over it would record it.
    pub origin: AnchorOrigin,
}

/// Reads the anchors of `target` within `limit` (connecting included).
pub async fn read_target_anchors(
    target: &MysqlTarget,
    limit: Duration,
) -> Result<TargetAnchorRows, AnchorReadError> {
    let read = async {
        let mut connection = crate::connect(target)
            .await
            .map_err(AnchorReadError::Connect)?
            .connection;
        let rows = connection.anchors().await.map_err(AnchorReadError::Store)?;
        let origin = connection
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
