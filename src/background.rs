//! Where verdict's background work runs: the projector, the rules' judge, the Merkle tree
//! builder and the outbox dispatcher. They get their own thread, runtime and database pool,
//! at a lower CPU priority than the webhook's path.
//!
//! Why: GitHub waits at most 10 seconds for an answer and deliveries arrive in bursts (a
//! merge train, a reorganised repository). During a burst, acknowledging durably comes
//! first; the projections are derived and can follow a few seconds later. When the machine
//! has spare CPU the priority changes nothing. The backlog is visible: `/healthz` and the
//! pages read the projections, which show how far they have come.

use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Niceness of the background thread (Linux): it still gets about a tenth of a busy CPU, so
/// projections never stall, only slow down while intake is saturated.
pub const NICENESS: i32 = 19;

/// A thread running a single-threaded tokio runtime for background tasks. Dropping it stops
/// the runtime and every task on it.
pub struct Background {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Background {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Background> {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("verdict-background".into())
            .spawn(move || {
                lower_priority();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = handle_tx.send(Err(err));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the background thread exited at start-up"))??;
        Ok(Background {
            handle,
            stop: Some(stop),
        })
    }

    /// The runtime to spawn background tasks on (`handle().enter()` makes `tokio::spawn` go
    /// there).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Lowers the calling thread's CPU priority (on Linux, niceness is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS) };
        if done != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the background thread's priority; it runs at normal priority"
            );
        }
    }
}
