//! The clients being served, counted against the live `max_clients`: a reload that changes the
//! limit applies to the next client (a lowered limit ends nobody; it refuses new clients until
//! enough have left).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many clients hold a slot now.
#[derive(Debug, Default)]
pub(crate) struct ClientSlots {
    taken: AtomicUsize,
}

/// One client's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot(Arc<ClientSlots>);

impl ClientSlots {
    /// A slot if fewer than `limit` are taken (exact across accept loops: compare and swap).
    pub(crate) fn try_take(self: &Arc<Self>, limit: usize) -> Option<ClientSlot> {
        let mut taken = self.taken.load(Ordering::Acquire);
        loop {
            if taken >= limit {
                return None;
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(ClientSlot(self.clone())),
                Err(now) => taken = now,
            }
        }
    }

    /// How many are taken.
    #[cfg(test)]
    fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a reloaded `max_clients` was reported as applied but the accept limit was a
    /// semaphore sized once at start.
    #[test]
    fn the_limit_is_read_at_each_take() {
        let slots = Arc::new(ClientSlots::default());
        let a = slots.try_take(2);
        let b = slots.try_take(2);
        assert!(a.is_some() && b.is_some());
        assert!(slots.try_take(2).is_none(), "over the limit");
        // Raised by a reload: one more.
        let c = slots.try_take(3);
        assert!(c.is_some());
        // Lowered to 1: nobody is ended, but nobody new gets in until they are under it.
        assert!(slots.try_take(1).is_none());
        drop((a, b));
        assert!(slots.try_take(1).is_none(), "one still connected");
        drop(c);
        assert_eq!(slots.taken(), 0);
        assert!(slots.try_take(1).is_some());
    }
}
