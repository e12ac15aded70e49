//! Accepting clients: every listener's accept loop, TCP keepalive and no-delay on each
//! socket, the `max_clients` limit (one more is refused with FATAL 53300), one task per
//! client (on this runtime, or handed to the next of the [`Workers`] as a plain socket that
//! the worker registers with its own runtime), and the stop: accept no more, then wait for
//! the sessions.

use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::config::Keepalive;
use crate::gateway::Shared;
use crate::session::{refuse_too_many, serve};
use crate::shutdown::{Drained, Shutdown, drain, shutdown_fatal};
use crate::slots::ClientSlots;
use crate::workers::Workers;

/// How many over-limit clients may be in the middle of being refused at once; beyond that a
/// connection is closed at once (a flood must not cost more than this).
const MAX_REFUSALS: usize = 64;

/// How long to pause after an accept error (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `listeners` until `shutdown` asks to stop, then accepts no more (the listeners are
/// closed) and drains the sessions.
pub(crate) async fn run(
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    shutdown: &Shutdown,
    workers: Option<Arc<Workers>>,
) -> Drained {
    let stop = CancellationToken::new();
    let sessions = TaskTracker::new();
    let slots = Arc::new(ClientSlots::default());
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut loops = Vec::new();
    for listener in listeners {
        let accept = AcceptLoop {
            listener,
            shared: shared.clone(),
            slots: slots.clone(),
            refusals: refusals.clone(),
            sessions: sessions.clone(),
            workers: workers.clone(),
        };
        loops.push(tokio::spawn(accept.run(stop.clone())));
    }
    shutdown.asked().await;
    stop.cancel();
    for accept in loops {
        let _ = accept.await;
    }
    shared.metrics.draining(true);
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let timeout = shared.config().shutdown_timeout;
    let drained = drain(
        &sessions,
        shutdown,
        || shared.drain.end_sessions(shutdown_fatal()),
        timeout,
    )
    .await;
    shared.metrics.draining(false);
    drained
}

struct AcceptLoop {
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<ClientSlots>,
    refusals: Arc<Semaphore>,
    sessions: TaskTracker,
    workers: Option<Arc<Workers>>,
}

impl AcceptLoop {
    async fn run(self, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            configure(&tcp, self.shared.config().keepalive.as_ref());
            let shared = self.shared.clone();
            // The limit as configured now: a reload changes it for the next client.
            match self.slots.try_take(self.shared.config().max_clients) {
                Some(slot) => match &self.workers {
                    None => {
                        self.sessions.spawn(async move {
                            serve(tcp, peer, shared).await;
                            drop(slot);
                        });
                    }
                    Some(workers) => {
                        // Registered again on the worker's runtime, so its readiness wakes
                        // that thread, not this one.
                        let tcp = match tcp.into_std() {
                            Ok(tcp) => tcp,
                            Err(e) => {
                                warn!(error = %e, "cannot hand a client to a worker");
                                continue;
                            }
                        };
                        workers.spawn(self.sessions.track_future(async move {
                            match TcpStream::from_std(tcp) {
                                Ok(tcp) => serve(tcp, peer, shared).await,
                                Err(e) => warn!(error = %e, "a worker cannot take a client"),
                            }
                            drop(slot);
                        }));
                    }
                },
                None => {
                    if let Ok(refusing) = self.refusals.clone().try_acquire_owned() {
                        self.sessions.spawn(async move {
                            refuse_too_many(tcp, peer, shared).await;
                            drop(refusing);
                        });
                    }
                }
            }
        }
    }
}

/// No-delay (the protocol's messages are small and latency-bound) and keepalive (a vanished
/// client's session is noticed). Failures only cost those properties: logged, not fatal.
fn configure(tcp: &TcpStream, keepalive: Option<&Keepalive>) {
    if let Err(e) = tcp.set_nodelay(true) {
        warn!(error = %e, "cannot set TCP_NODELAY on a client socket");
    }
    let Some(keepalive) = keepalive else {
        return;
    };
    let params = TcpKeepalive::new()
        .with_time(keepalive.idle)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.retries);
    if let Err(e) = SockRef::from(tcp).set_tcp_keepalive(&params) {
        warn!(error = %e, "cannot set TCP keepalive on a client socket");
    }
}
