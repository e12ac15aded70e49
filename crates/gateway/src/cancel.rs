//! Cancel keys: each client gets its own random key, mapped to its server connection's process
//! id and key. The process id the client sees is the server's real one (drivers compare it with
//! `pg_backend_pid()`), so a lookup is by process id, then the key compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

/// The key length a protocol 3.0 client gets (it cannot take another).
pub const KEY_LEN_V3_0: usize = 4;
/// The key length a protocol 3.2 client gets (PostgreSQL 18 gives 32 bytes too).
pub const KEY_LEN_V3_2: usize = 32;

/// A server session's cancel identity: where a cancel for it must go.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ServerKey {
    /// The server's process id.
    pub(crate) process_id: i32,
    /// The server's secret key.
    pub(crate) key: Vec<u8>,
}

impl std::fmt::Debug for ServerKey {
    // The key is a secret: its length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("process_id", &self.process_id)
            .field("key_len", &self.key.len())
            .finish()
    }
}

struct Entry {
    id: u64,
    client_key: Vec<u8>,
    server: ServerKey,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_pid: HashMap<i32, Vec<Entry>>,
}

/// The live sessions' cancel keys.
#[derive(Clone, Default)]
pub(crate) struct CancelRegistry {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for CancelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CancelRegistry")
    }
}

/// Why no key could be made.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes for a cancel key: {0}")]
pub(crate) struct RandomError(String);

/// A session's entry; dropping it removes the entry (a later cancel with its key is dropped).
#[derive(Debug)]
pub(crate) struct Registration {
    registry: CancelRegistry,
    process_id: i32,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some(list) = inner.by_pid.get_mut(&self.process_id) {
            list.retain(|e| e.id != self.id);
            if list.is_empty() {
                inner.by_pid.remove(&self.process_id);
            }
        }
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `server` and returns the client's own random key of `key_len` bytes.
    pub(crate) fn register(
        &self,
        server: ServerKey,
        key_len: usize,
    ) -> Result<(Registration, Vec<u8>), RandomError> {
        let mut client_key = vec![0u8; key_len];
        getrandom::fill(&mut client_key).map_err(|e| RandomError(e.to_string()))?;
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let process_id = server.process_id;
        inner.by_pid.entry(process_id).or_default().push(Entry {
            id,
            client_key: client_key.clone(),
            server,
        });
        let registration = Registration {
            registry: self.clone(),
            process_id,
            id,
        };
        Ok((registration, client_key))
    }

    /// The server key a client's cancel request names, if its key is one the gateway gave
    /// out for that process id. Every candidate's key is compared in constant time, all of
    /// them, so the time taken does not tell how much of a key was right.
    pub(crate) fn lookup(&self, process_id: i32, client_key: &[u8]) -> Option<ServerKey> {
        let inner = self.lock();
        let mut found = None;
        for entry in inner.by_pid.get(&process_id).into_iter().flatten() {
            let equal = entry.client_key.len() == client_key.len()
                && bool::from(entry.client_key.as_slice().ct_eq(client_key));
            if equal {
                found = Some(entry.server.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(pid: i32) -> ServerKey {
        ServerKey {
            process_id: pid,
            key: vec![1, 2, 3, 4],
        }
    }

    #[test]
    fn a_registered_key_finds_its_server_and_nothing_else_does() {
        let registry = CancelRegistry::default();
        let (_held, key) = registry.register(server(42), KEY_LEN_V3_0).unwrap();
        assert_eq!(key.len(), 4);
        assert_eq!(registry.lookup(42, &key), Some(server(42)));
        let mut wrong = key.clone();
        wrong[3] ^= 1;
        assert_eq!(registry.lookup(42, &wrong), None);
        assert_eq!(registry.lookup(43, &key), None);
        assert_eq!(registry.lookup(42, &key[..3]), None);
    }

    #[test]
    fn keys_are_random_and_long_for_protocol_3_2() {
        let registry = CancelRegistry::default();
        let (_a, one) = registry.register(server(1), KEY_LEN_V3_2).unwrap();
        let (_b, two) = registry.register(server(1), KEY_LEN_V3_2).unwrap();
        assert_eq!(one.len(), 32);
        assert_ne!(one, two);
        assert_eq!(registry.lookup(1, &two), Some(server(1)));
    }

    #[test]
    fn a_dropped_registration_no_longer_cancels() {
        let registry = CancelRegistry::default();
        let (held, key) = registry.register(server(7), KEY_LEN_V3_0).unwrap();
        drop(held);
        assert_eq!(registry.lookup(7, &key), None);
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", server(5));
        assert!(shown.contains("key_len: 4"));
        assert!(!shown.contains("[1, 2, 3, 4]"));
    }
}
