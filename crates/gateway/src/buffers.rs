//! The relay's buffers, pooled: a plaintext direction takes one only while its socket has data
//! and gives it back when the socket is drained, so an idle session holds none; a busy one
//! reuses pooled buffers, so the steady state allocates nothing.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// One buffer's length: one read, forwarded whole.
pub(crate) const BUFFER_LEN: usize = 8 * 1024;

/// The most buffers the pool keeps (8 MiB); more are freed when given back.
const POOL_LIMIT: usize = 1024;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// A buffer from the pool, given back when dropped.
pub(crate) struct Pooled(Option<Box<[u8]>>);

impl Pooled {
    /// A pooled buffer, or a new one when the pool is empty.
    pub(crate) fn take() -> Pooled {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Pooled(Some(
            pooled.unwrap_or_else(|| vec![0u8; BUFFER_LEN].into_boxed_slice()),
        ))
    }
}

impl Deref for Pooled {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buffer) = self.0.take() {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_LIMIT {
                pool.push(buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again() {
        let first = Pooled::take();
        assert_eq!(first.len(), BUFFER_LEN);
        let address = first.as_ptr();
        drop(first);
        // Other tests may take buffers meanwhile; the pool hands out what it holds first.
        let again: Vec<Pooled> = (0..4).map(|_| Pooled::take()).collect();
        assert!(again.iter().any(|b| b.as_ptr() == address));
    }
}
