//! The session's relay: both directions driven by one task through [`Pump`]s (no second
//! task, no split streams, no cross-thread wake-up), until a side leaves, an error, or a stop.
//!
//! A stop (the drain, later the policy) ends the session cleanly: the server's bytes are
//! forwarded up to the next frame boundary and what follows is dropped, the FATAL is written
//! (so the client reads a well-formed stream ending in it), the server gets a Terminate when
//! what it received ends at a frame boundary (mid-frame one would be garbage: it is just
//! closed), and both connections close.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::buffers::Pooled;
use crate::enforce::Enforcer;
use crate::error::{Fatal, SessionError};
use crate::pump::{Leg, Pump, PumpEnd};
use crate::stream::{ClientStream, ServerStream};
use crate::traffic::{RelayTotals, Traffic};

/// How long the server may take to close after the client left (it got a Terminate).
const SERVER_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long a stop waits for the server's frame in progress to end, and then for the FATAL
/// and the Terminate to be written.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stopped client may take to close after its FATAL.
const LINGER: Duration = Duration::from_secs(2);

/// PostgreSQL's Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// How a relayed session ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client closed its connection (the server got a Terminate).
    ClientLeft,
    /// The server closed its connection (the client's was closed after it).
    ServerLeft,
    /// Stopped with this FATAL; `delivered` when the client got it after whole frames (not
    /// when the server's frame in progress did not end in time or the write failed).
    Stopped {
        /// The FATAL sent.
        fatal: Fatal,
        /// Whether it was written to the client.
        delivered: bool,
    },
    /// Reading or writing a side failed.
    Failed(SessionError),
}

/// How a relayed session ended and what it moved.
#[derive(Debug)]
pub struct RelayOutcome {
    /// How it ended.
    pub end: RelayEnd,
    /// Bytes each way.
    pub totals: RelayTotals,
}

/// What ended the first phase.
enum Phase {
    ClientLeft,
    ServerLeft,
    Stop(Fatal),
    Failed(SessionError),
}

/// Relays until a side leaves, an error, or `stop` completes with the FATAL to end the
/// session with. `client_rest`/`server_rest` are bytes read during the login that belong to
/// the session. Every byte written is added to `traffic`; `enforcer` observes the session's
/// state while it is relayed and stops it when its policy ends it.
pub(crate) async fn relay(
    mut client: ClientStream,
    client_rest: Vec<u8>,
    mut server: ServerStream,
    server_rest: Vec<u8>,
    stop: impl Future<Output = Fatal>,
    traffic: &Traffic,
    enforcer: &mut Enforcer<'_>,
) -> RelayOutcome {
    let mut up = Pump::new(Leg::Upward, client_rest);
    let mut down = Pump::new(Leg::Downward, server_rest);
    let stop = pin!(stop);
    let mut stop = StopWatch::new(stop);
    let phase = poll_fn(|cx| {
        if let Poll::Ready(fatal) = stop.poll(cx) {
            return Poll::Ready(Phase::Stop(fatal));
        }
        match down.poll_pump(
            cx,
            &mut server,
            &mut client,
            false,
            traffic,
            Some(&mut enforcer.watched),
        ) {
            Poll::Ready(Ok(_)) => return Poll::Ready(Phase::ServerLeft),
            Poll::Ready(Err(e)) => return Poll::Ready(Phase::Failed(e)),
            Poll::Pending => {}
        }
        match up.poll_pump(
            cx,
            &mut client,
            &mut server,
            false,
            traffic,
            Some(&mut enforcer.watched),
        ) {
            Poll::Ready(Ok(_)) => return Poll::Ready(Phase::ClientLeft),
            Poll::Ready(Err(e)) => return Poll::Ready(Phase::Failed(e)),
            Poll::Pending => {}
        }
        // After the pumps: the state they just observed arms the policy's timers.
        let verdict = enforcer.poll(cx).map(Phase::Stop);
        if let Some(notice) = enforcer.take_notice() {
            match down.inject(notice) {
                // Written on the next turn, which comes at once.
                Ok(()) => cx.waker().wake_by_ref(),
                // The server's frame in progress first: tried again on the next wake-up.
                Err(notice) => enforcer.keep_notice(notice),
            }
        }
        verdict
    })
    .await;
    let end = match phase {
        Phase::ServerLeft => {
            // Nothing the client sends can go anywhere now.
            let _ = client.shutdown().await;
            // The server closing after the client's Terminate is the client leaving: which
            // close the gateway sees first is a race.
            if up.wrote_terminate() {
                RelayEnd::ClientLeft
            } else {
                RelayEnd::ServerLeft
            }
        }
        Phase::ClientLeft => {
            client_left(&mut client, &mut server, &up, &mut down, traffic).await;
            RelayEnd::ClientLeft
        }
        Phase::Stop(fatal) => {
            stopped(&mut client, &mut server, &up, &mut down, fatal, traffic).await
        }
        Phase::Failed(e) => RelayEnd::Failed(e),
    };
    RelayOutcome {
        end,
        totals: RelayTotals {
            client_to_server: up.total(),
            server_to_client: down.total(),
        },
    }
}

/// The stop future, polled only when its own waker fired (or the task's waker changed), not on
/// every wake-up of the relay: the drain's future locks a mutex every sessions share each time
/// it is polled, and the relay wakes twice per round trip.
struct StopWatch<'a, S> {
    stop: Pin<&'a mut S>,
    signal: Arc<StopSignal>,
    /// `signal` as a waker, handed to `stop` (the same one each time, so it keeps it).
    stop_waker: Waker,
    /// The task's waker `signal` holds (compared locally: no lock on the relay's path).
    task_waker: Option<Waker>,
}

/// Set by the stop's wake-up; wakes the relay's task.
struct StopSignal {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for StopSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self.task.lock().ok().and_then(|task| task.clone());
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<'a, S: Future<Output = Fatal>> StopWatch<'a, S> {
    fn new(stop: Pin<&'a mut S>) -> StopWatch<'a, S> {
        let signal = Arc::new(StopSignal {
            fired: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        StopWatch {
            stop,
            stop_waker: Waker::from(signal.clone()),
            signal,
            task_waker: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Fatal> {
        if !self
            .task_waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            if let Ok(mut task) = self.signal.task.lock() {
                *task = Some(waker.clone());
            }
            self.task_waker = Some(waker);
            self.signal.fired.store(true, Ordering::Relaxed);
        }
        // Cleared before the poll: a wake-up during it sets it again.
        if !self.signal.fired.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        self.stop
            .as_mut()
            .poll(&mut Context::from_waker(&self.stop_waker))
    }
}

/// The client left: the server hears a Terminate (unless the client left mid-message: then
/// it is just closed), and its last words still reach the client until it closes.
async fn client_left(
    client: &mut ClientStream,
    server: &mut ServerStream,
    up: &Pump,
    down: &mut Pump,
    traffic: &Traffic,
) {
    // One after the client's own Terminate is harmless: the server has closed by then.
    if up.at_boundary() {
        let _ = timeout(SERVER_CLOSE_GRACE, server.write_all(&TERMINATE)).await;
    }
    let _ = timeout(SERVER_CLOSE_GRACE, server.shutdown()).await;
    let _ = timeout(
        SERVER_CLOSE_GRACE,
        poll_fn(|cx| down.poll_pump(cx, server, client, false, traffic, None)),
    )
    .await;
    let _ = timeout(SERVER_CLOSE_GRACE, client.shutdown()).await;
}

/// The stop: the server's stream up to a frame boundary, the FATAL, a Terminate when the
/// server's stream is at a boundary, both closed.
async fn stopped(
    client: &mut ClientStream,
    server: &mut ServerStream,
    up: &Pump,
    down: &mut Pump,
    fatal: Fatal,
    traffic: &Traffic,
) -> RelayEnd {
    let reached = timeout(
        STOP_GRACE,
        poll_fn(|cx| down.poll_pump(cx, server, client, true, traffic, None)),
    )
    .await;
    let delivered = match reached {
        Ok(Ok(PumpEnd::AtBoundary)) => timeout(STOP_GRACE, async {
            client.write_all(&fatal.encode()).await?;
            client.flush().await
        })
        .await
        .is_ok_and(|written| written.is_ok()),
        // The server left meanwhile, an error, or its frame did not end in time: the client
        // cannot be given a FATAL after a partial frame.
        Ok(Ok(PumpEnd::Eof)) | Ok(Err(_)) | Err(_) => false,
    };
    let _ = timeout(STOP_GRACE, client.shutdown()).await;
    if up.at_boundary() {
        let _ = timeout(STOP_GRACE, server.write_all(&TERMINATE)).await;
    }
    let _ = timeout(STOP_GRACE, server.shutdown()).await;
    linger(client).await;
    RelayEnd::Stopped { fatal, delivered }
}

/// Reads (and drops) what the client still sends until it closes, for at most [`LINGER`]:
/// closing a socket with unread bytes sends a reset, and a reset can destroy the FATAL in
/// the client's receive buffer before the client reads it (a driver with a message in
/// flight at the stop would see "connection reset" instead of 57P01).
async fn linger(client: &mut ClientStream) {
    let mut sink = Pooled::take();
    let _ = timeout(LINGER, async {
        while let Ok(read) = client.read(&mut sink).await
            && read > 0
        {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// What a [`CountedStop`] counts and obeys.
    #[derive(Default)]
    struct StopState {
        polls: AtomicUsize,
        go: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    /// A stop that counts its polls and completes once `go` is set and its waker called.
    struct CountedStop<'a>(&'a StopState);

    impl Future for CountedStop<'_> {
        type Output = Fatal;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fatal> {
            self.0.polls.fetch_add(1, Ordering::Relaxed);
            if self.0.go.load(Ordering::Relaxed) {
                return Poll::Ready(Fatal::new(crate::error::sqlstate::ADMIN_SHUTDOWN, "stop"));
            }
            if let Ok(mut waker) = self.0.waker.lock() {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    /// Counts the relay task's wake-ups.
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_stop_is_polled_only_after_its_own_wake_up() {
        let state = StopState::default();
        let stop = pin!(CountedStop(&state));
        let mut watch = StopWatch::new(stop);
        let task = Arc::new(Task(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        for _ in 0..10 {
            assert!(watch.poll(&mut cx).is_pending());
        }
        // Polled once to register, not on the relay's other wake-ups.
        assert_eq!(state.polls.load(Ordering::Relaxed), 1);

        state.go.store(true, Ordering::Relaxed);
        let stored = state.waker.lock().ok().and_then(|w| w.clone());
        stored
            .unwrap_or_else(|| panic!("the stop kept no waker"))
            .wake();
        // The stop's wake-up reaches the relay's task, and the next poll sees the stop.
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert!(watch.poll(&mut cx).is_ready());
        assert_eq!(state.polls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_new_task_waker_polls_the_stop_again() {
        let state = StopState::default();
        let stop = pin!(CountedStop(&state));
        let mut watch = StopWatch::new(stop);
        let first = Waker::from(Arc::new(Task(AtomicUsize::new(0))));
        assert!(watch.poll(&mut Context::from_waker(&first)).is_pending());
        let second = Arc::new(Task(AtomicUsize::new(0)));
        let second_waker = Waker::from(second.clone());
        state.go.store(true, Ordering::Relaxed);
        // A different task waker: the stop is asked again (and is ready).
        assert!(
            watch
                .poll(&mut Context::from_waker(&second_waker))
                .is_ready()
        );
        assert_eq!(state.polls.load(Ordering::Relaxed), 2);
    }
}
