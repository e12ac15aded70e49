//! Live traffic counters every session's relay adds to as it writes, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the relay moved before the session ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayTotals {
    /// Bytes from the client to the server.
    pub client_to_server: u64,
    /// Bytes from the server to the client.
    pub server_to_client: u64,
}

/// Bytes relayed by every session so far, per direction (counted as written, so a stop's
/// dropped tail is not counted). Relaxed atomics: a reader sees each counter move forward,
/// not the two in step.
#[derive(Debug, Default)]
pub struct Traffic {
    pub(crate) client_to_server: AtomicU64,
    pub(crate) server_to_client: AtomicU64,
}

impl Traffic {
    /// The totals now.
    pub fn snapshot(&self) -> RelayTotals {
        RelayTotals {
            client_to_server: self.client_to_server.load(Ordering::Relaxed),
            server_to_client: self.server_to_client.load(Ordering::Relaxed),
        }
    }
}
