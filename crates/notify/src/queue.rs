//! The queue between an enforcement path and the notify hooks: bounded, never waited on.

use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::warning::Warning;

/// Warnings waiting for the hooks; beyond this many, new ones are dropped (and counted).
const QUEUE: usize = 256;

/// The sending end of the queue, kept by the sender (the agent's shared state, the gateway);
/// the receiving end is taken once by the delivery task.
#[derive(Debug)]
pub struct Notifier {
    queue: mpsc::Sender<Warning>,
    receiver: Mutex<Option<Deliveries>>,
}

/// The receiving end of a [`Notifier`], for [`crate::run`].
#[derive(Debug)]
pub struct Deliveries(pub(crate) mpsc::Receiver<Warning>);

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// An empty queue.
    pub fn new() -> Notifier {
        let (queue, receiver) = mpsc::channel(QUEUE);
        Notifier {
            queue,
            receiver: Mutex::new(Some(Deliveries(receiver))),
        }
    }

    /// Queue a warning for the hooks; never waits. Returns false if it was dropped: logged,
    /// and `dropped` is called when the queue is full (to tell observers).
    pub fn send(&self, warning: Warning, dropped: impl FnOnce()) -> bool {
        match self.queue.try_send(warning) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(target: "curfew::notify",
                    event = "notify_dropped",
                    "the notify hooks are {QUEUE} warnings behind: a warning was dropped (it is in the audit log)");
                dropped();
                false
            }
            // The delivery task is gone (the sender is stopping).
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The receiving end, the first time it is asked for.
    pub fn take_receiver(&self) -> Option<Deliveries> {
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
