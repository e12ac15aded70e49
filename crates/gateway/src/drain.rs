//! Ending every session at once with a FATAL (the drain's last step after
//! `shutdown_timeout`): one signal all relays wait on, with the error they send.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

use crate::error::{Fatal, sqlstate};

/// The stop every session's relay waits on.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    token: CancellationToken,
    fatal: OnceLock<Fatal>,
}

impl Drain {
    /// Ends every session, now and from now on, with `fatal` (the first one given wins).
    pub(crate) fn end_sessions(&self, fatal: Fatal) {
        let _ = self.fatal.set(fatal);
        self.token.cancel();
    }

    /// Completes with the FATAL to send once sessions are to end.
    pub(crate) async fn ended(&self) -> Fatal {
        self.token.cancelled().await;
        self.fatal.get().cloned().unwrap_or_else(|| {
            Fatal::new(
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection due to administrator command",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_waiting_gets_the_first_fatal_given() {
        let drain = std::sync::Arc::new(Drain::default());
        let waiting = tokio::spawn({
            let drain = drain.clone();
            async move { drain.ended().await }
        });
        tokio::task::yield_now().await;
        drain.end_sessions(Fatal::new(sqlstate::ADMIN_SHUTDOWN, "first"));
        drain.end_sessions(Fatal::new(sqlstate::ADMIN_SHUTDOWN, "second"));
        let fatal = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fatal.message, "first");
        // A session that starts later is ended at once.
        assert_eq!(drain.ended().await.message, "first");
    }
}
