//! The relay's buffers, pooled: a plaintext direction takes one only while its socket has data
//! and gives it back when the socket is drained, so an idle session holds none; a busy one
//! reuses pooled buffers, so the steady state allocates nothing. One pool per thread: a
//! worker's sessions never contend for a lock (a buffer given back on another thread joins
//! that thread's pool).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// One buffer's length: one read, forwarded whole.
pub(crate) const BUFFER_LEN: usize = 8 * 1024;

/// The most buffers a thread's pool keeps (4 MiB); more are freed when given back.
const POOL_LIMIT: usize = 512;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer from the pool, given back when dropped.
pub(crate) struct Pooled(Option<Box<[u8]>>);

impl Pooled {
    /// A pooled buffer, or a new one when the pool is empty.
    pub(crate) fn take() -> Pooled {
        let pooled = POOL
            .try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut pool| pool.pop()))
            .ok()
            .flatten();
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
            // A thread being torn down has no pool: the buffer is freed.
            let _ = POOL.try_with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut()
                    && pool.len() < POOL_LIMIT
                {
                    pool.push(buffer);
                }
            });
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
        // The thread's own pool hands out what it holds first.
        let again = Pooled::take();
        assert_eq!(again.as_ptr(), address);
    }
}
