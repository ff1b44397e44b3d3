//! Where verdict's background work runs: the projector, the rules' judge, the Merkle tree
//! builder and the outbox dispatcher. They get their own thread, runtime and database pool,
//! at a lower CPU priority than the webhook's path.
//!
//! Why: GitHub waits at most 10 seconds for an answer and deliveries arrive in bursts (a
//! merge train, a reorganised repository). During a burst, acknowledging durably comes
//! first; the projections are derived and can follow a few seconds later. When the machine
//! has spare CPU the priority changes nothing. The backlog is visible: `/healthz` and the
//! pages read the projections, which show how far they have come.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Niceness of the background thread (Linux): while the webhook path keeps the CPUs busy it
/// gets what they leave, so projections slow down rather than slow intake.
pub const NICENESS: i32 = 19;

/// Deliveries waiting for their commit at or above which intake counts as saturated. A commit
/// takes a few milliseconds, so at ordinary rates (even 1,000 deliveries/s) a handful wait; a
/// burst that outruns the database queues hundreds.
pub const BUSY_WAITING: usize = 32;
/// Longest a background task defers one unit of work (a page of projections, a tree
/// extension, a judging round) to a saturated intake: under sustained overload the
/// projections still move, only slower.
pub const MAX_DEFERRAL: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// How busy the webhook path of this process is: deliveries handed to the sequencer and not
/// yet answered.
///
/// Why: niceness lowers the background thread's own CPU share, but not the share of the
/// PostgreSQL backends it keeps busy, which compete with the appends at full priority. So
/// background work also steps aside, for a bounded time, while intake is saturated.
#[derive(Clone, Default)]
pub struct IntakeLoad {
    waiting: Arc<AtomicUsize>,
}

/// Counts one waiting delivery until dropped.
pub struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IntakeLoad {
    /// Marks one delivery as waiting for its commit, until the guard is dropped.
    pub fn waiting_for_commit(&self) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.waiting.clone())
    }

    /// Deliveries now waiting for their commit.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Returns once fewer than [`BUSY_WAITING`] deliveries wait, or after [`MAX_DEFERRAL`].
    pub async fn until_quiet(&self) {
        let started = Instant::now();
        while self.waiting() >= BUSY_WAITING && started.elapsed() < MAX_DEFERRAL {
            tokio::time::sleep(POLL).await;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_waits_while_intake_is_saturated_and_no_longer() {
        let load = IntakeLoad::default();
        // Quiet: no wait at all.
        load.until_quiet().await;

        let mut busy: Vec<Waiting> = (0..BUSY_WAITING)
            .map(|_| load.waiting_for_commit())
            .collect();
        assert_eq!(load.waiting(), BUSY_WAITING);
        let waiter = tokio::spawn({
            let load = load.clone();
            async move { load.until_quiet().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "must wait while intake is saturated");

        // One commit answered: below the threshold, the work goes ahead.
        busy.pop();
        assert_eq!(load.waiting(), BUSY_WAITING - 1);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("goes ahead once intake is below the threshold")
            .unwrap();

        // Saturated for good: the wait is bounded.
        let _stuck: Vec<Waiting> = (0..BUSY_WAITING)
            .map(|_| load.waiting_for_commit())
            .collect();
        let started = Instant::now();
        load.until_quiet().await;
        assert!(started.elapsed() >= MAX_DEFERRAL);
    }
}
