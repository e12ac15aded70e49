//! The queue between the enforcement path and the notify hooks: bounded, never waited on.

use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::mpsc;

/// Events waiting for the hooks; beyond this many, new events are dropped (and counted).
const QUEUE: usize = 256;

/// The sending end of the queue, kept in the agent's shared state; the receiving end is taken
/// once by the delivery task.
#[derive(Debug)]
pub(crate) struct Notifier {
    queue: mpsc::Sender<Value>,
    receiver: Mutex<Option<mpsc::Receiver<Value>>>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        let (queue, receiver) = mpsc::channel(QUEUE);
        Notifier {
            queue,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Queue an event (a JSON object) for the hooks; never waits. Returns false if it was
    /// dropped: logged, and `dropped` is called when the queue is full (to tell observers).
    pub(crate) fn send(&self, event: Value, dropped: impl FnOnce()) -> bool {
        match self.queue.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(target: "curfew::agent",
                    event = "notify_dropped",
                    "the notify hooks are {QUEUE} events behind: an event was dropped (it is in the audit log)");
                dropped();
                false
            }
            // The delivery task is gone (the agent is stopping).
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The receiving end, the first time it is asked for.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Value>> {
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
