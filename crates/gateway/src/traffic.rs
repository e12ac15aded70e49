//! Live traffic counters every session's relay adds to as it writes, for `/metrics`.
//!
//! One pair of counters per slot, each slot on its own cache line, and each thread adding to
//! its own slot: the workers never write the same cache line per message (a shared counter
//! would bounce between cores on every write); a reader sums the slots.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How many slots (threads beyond this share them; still exact, only less spread).
const SLOTS: usize = 16;

/// What the relay moved before the session ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayTotals {
    /// Bytes from the client to the server.
    pub client_to_server: u64,
    /// Bytes from the server to the client.
    pub server_to_client: u64,
}

/// One thread's counters, alone on its cache line (128 bytes: adjacent-line prefetch too).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    client_to_server: AtomicU64,
    server_to_client: AtomicU64,
}

/// Bytes relayed by every session so far, per direction (counted as written, so a stop's
/// dropped tail is not counted). Relaxed atomics: a reader sees each counter move forward,
/// not the two in step.
#[derive(Debug, Default)]
pub struct Traffic {
    slots: [Slot; SLOTS],
}

/// Which way bytes were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// Client to server.
    ClientToServer,
    /// Server to client.
    ServerToClient,
}

/// The next slot a thread takes.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

impl Traffic {
    /// Counts `bytes` written `way`, in this thread's slot.
    pub(crate) fn add(&self, way: Way, bytes: u64) {
        let slot = &self.slots[SLOT.try_with(|slot| *slot).unwrap_or(0)];
        let counter = match way {
            Way::ClientToServer => &slot.client_to_server,
            Way::ServerToClient => &slot.server_to_client,
        };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn snapshot(&self) -> RelayTotals {
        self.slots
            .iter()
            .fold(RelayTotals::default(), |totals, slot| RelayTotals {
                client_to_server: totals.client_to_server
                    + slot.client_to_server.load(Ordering::Relaxed),
                server_to_client: totals.server_to_client
                    + slot.server_to_client.load(Ordering::Relaxed),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_sums_every_threads_counts() {
        let traffic = std::sync::Arc::new(Traffic::default());
        traffic.add(Way::ClientToServer, 5);
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let traffic = traffic.clone();
                std::thread::spawn(move || {
                    traffic.add(Way::ClientToServer, 1);
                    traffic.add(Way::ServerToClient, 10);
                })
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .unwrap_or_else(|_| panic!("a counting thread panicked"));
        }
        let totals = traffic.snapshot();
        assert_eq!(totals.client_to_server, 25);
        assert_eq!(totals.server_to_client, 200);
    }
}
