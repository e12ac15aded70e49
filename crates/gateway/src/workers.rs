//! The session workers: N threads, each running its own single-threaded runtime, and the
//! accept loop handing each accepted client to the next one in turn. A session lives its
//! whole life on one thread (its client socket, its server connection, its timers), so the
//! relay's wake-ups never cross threads; PgBouncer's single event loop has none either.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The worker threads (see the module). Dropping it stops them: sessions still on them are
/// dropped, so drop it after [`crate::run_on`] returned.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> io::Result<Workers> {
        let count = count.max(1);
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("curfew-gateway-{index}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stops,
        })
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `session` on the next worker in turn.
    pub(crate) fn spawn<F>(&self, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[index].spawn(session));
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}
