//! The stop: a [`Shutdown`] asks for it, the accept loops stop at once, the sessions get
//! `shutdown_timeout` to finish by themselves (with the count still running logged), and those
//! still running then (or at once, on a second request) are ended with FATAL 57P01 and
//! [`SHUTDOWN_REASON`] (through the relay's stop at a frame boundary, `crate::drain`).

use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::error::{Fatal, sqlstate};

/// The reason a session ended by the drain is given: the DETAIL of its FATAL 57P01
/// (`admin_shutdown`, "terminating connection due to administrator command", as PostgreSQL's
/// own fast shutdown says).
pub const SHUTDOWN_REASON: &str = "the curfew gateway is shutting down";

/// The FATAL the drain ends sessions with.
pub(crate) fn shutdown_fatal() -> Fatal {
    Fatal::new(
        sqlstate::ADMIN_SHUTDOWN,
        "terminating connection due to administrator command",
    )
    .with_detail(SHUTDOWN_REASON)
}

/// How often the drain logs how many sessions remain.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long ended sessions get to deliver their FATAL and close before the gateway returns
/// anyway.
const END_GRACE: Duration = Duration::from_secs(10);

/// Asks a running gateway to stop: [`Shutdown::drain`] first, [`Shutdown::end_now`] for a
/// second signal. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    now: CancellationToken,
}

impl Shutdown {
    /// A shutdown not asked for yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Stop accepting; let the sessions finish within `shutdown_timeout`, then end them.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Stop accepting and end every session now (a second SIGTERM or Ctrl-C).
    pub fn end_now(&self) {
        self.drain.cancel();
        self.now.cancel();
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Completes when a stop is asked for.
    pub async fn asked(&self) {
        self.drain.cancelled().await;
    }
}

/// How the drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections open when the drain began.
    pub at_start: usize,
    /// Connections still open at `shutdown_timeout` (or the second request), ended then.
    pub ended: usize,
}

/// Waits for `sessions` (closed to new ones) for `timeout`, or until `shutdown` asks to end
/// them now; then calls `end` (each session ends itself with the FATAL) and waits a little
/// for them to go.
pub(crate) async fn drain(
    sessions: &TaskTracker,
    shutdown: &Shutdown,
    end: impl FnOnce(),
    timeout: Duration,
) -> Drained {
    sessions.close();
    let at_start = sessions.len();
    let deadline = Instant::now() + timeout;
    if at_start > 0 && !shutdown.now.is_cancelled() {
        info!(
            sessions = at_start,
            shutdown_timeout = ?timeout,
            "draining: no new clients; the sessions may finish within the shutdown timeout"
        );
    }
    let mut next_report = Instant::now() + PROGRESS_EVERY;
    let finished = loop {
        tokio::select! {
            () = sessions.wait() => break true,
            () = sleep_until(deadline) => break false,
            () = shutdown.now.cancelled() => break false,
            () = sleep_until(next_report) => {
                info!(sessions = sessions.len(), "draining: sessions remain");
                next_report += PROGRESS_EVERY;
            }
        }
    };
    if finished {
        return Drained { at_start, ended: 0 };
    }
    let ended = sessions.len();
    warn!(
        sessions = ended,
        "ending the remaining sessions with FATAL 57P01 (the curfew gateway is shutting down)"
    );
    end();
    if tokio::time::timeout(END_GRACE, sessions.wait())
        .await
        .is_err()
    {
        warn!(
            sessions = sessions.len(),
            "sessions did not close after their FATAL; stopping anyway"
        );
    }
    Drained { at_start, ended }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions under a tracker, each ending after its lifetime or when `ending` is cancelled.
    struct Sessions {
        tracker: TaskTracker,
        ending: CancellationToken,
        shutdown: Shutdown,
    }

    impl Sessions {
        fn new(lifetimes_s: &[u64]) -> Sessions {
            let sessions = Sessions {
                tracker: TaskTracker::new(),
                ending: CancellationToken::new(),
                shutdown: Shutdown::new(),
            };
            for &after in lifetimes_s {
                let ending = sessions.ending.clone();
                sessions.tracker.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(after)) => {}
                        () = ending.cancelled() => {}
                    }
                });
            }
            sessions
        }

        /// Drains with a 30 s timeout: what it reports, and how long it took.
        async fn drain(&self) -> (Drained, Duration) {
            let begun = Instant::now();
            let drained = drain(
                &self.tracker,
                &self.shutdown,
                || self.ending.cancel(),
                Duration::from_secs(30),
            )
            .await;
            (drained, begun.elapsed())
        }
    }

    fn drained(at_start: usize, ended: usize) -> Drained {
        Drained { at_start, ended }
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_that_finish_in_time_are_not_ended() {
        let sessions = Sessions::new(&[3, 9]);
        let (result, took) = sessions.drain().await;
        assert_eq!(result, drained(2, 0));
        assert!(!sessions.ending.is_cancelled());
        assert_eq!(took, Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_still_running_at_the_timeout_are_ended() {
        let sessions = Sessions::new(&[1, 3600]);
        let (result, took) = sessions.drain().await;
        assert_eq!(result, drained(2, 1));
        assert!(sessions.ending.is_cancelled());
        assert_eq!(took, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_request_ends_them_at_once() {
        let sessions = Sessions::new(&[3600]);
        sessions.shutdown.drain();
        let again = sessions.shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            again.end_now();
        });
        let (result, took) = sessions.drain().await;
        assert_eq!(result, drained(1, 1));
        assert_eq!(took, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn no_session_no_wait() {
        let (result, _) = Sessions::new(&[]).drain().await;
        assert_eq!(result, drained(0, 0));
    }
}
