//! Group commit: one sequencer task per log and process takes every entry waiting for that log,
//! chains them, inserts them in one statement and only then tells each waiting request where
//! its entry landed.
//!
//! The database keeps the chain whole whichever process writes: the primary key
//! `(log_id, seq)` lets only one entry take each position and the chain trigger refuses an
//! entry that does not link to its predecessor. On top of that, two paths:
//!
//! - **fast path**: the task remembers the tail it last committed and appends the next batch
//!   on it in a single autocommitted statement, one round trip, which first takes the log's
//!   advisory lock (so writers on one log queue instead of racing). If another process
//!   appended meanwhile, or a delivery id is already stored, the database refuses the whole
//!   statement and nothing is stored;
//! - **careful path**, after any refusal and on the first batch: a transaction that takes the
//!   same lock, reads the tail, looks up which delivery ids are already stored, and inserts
//!   the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::entry::{Hash, KIND_GITHUB_DELIVERY};
use super::store::{self, NewEntry, PlacedEntry};
use crate::background::IntakeLoad;

/// Largest number of entries committed together.
const MAX_BATCH_ENTRIES: usize = 512;
/// Largest total body size committed together, so one transaction stays bounded in memory.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Entries that may wait for one log before `append` itself waits (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// How often a batch that hit a concurrent duplicate is retried with a fresh duplicate check.
const MAX_ATTEMPTS: usize = 3;

/// Where an appended (or already present) entry is in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Newly committed at `seq`.
    Appended {
        log_name: String,
        seq: u64,
        entry_hash: Hash,
    },
    /// The delivery id was already in a log; nothing was added.
    Duplicate { log_name: String, seq: u64 },
    /// A GitHub delivery whose body is byte-identical to entry `seq` of the same log, under
    /// another delivery id: a replay of a (public) body, not a new event. Nothing was added.
    Replay { log_name: String, seq: u64 },
}

impl AppendOutcome {
    /// Where the entry (or the entry it repeats) is: `(log, seq)`.
    pub fn position(&self) -> (&str, u64) {
        match self {
            AppendOutcome::Appended { log_name, seq, .. }
            | AppendOutcome::Duplicate { log_name, seq }
            | AppendOutcome::Replay { log_name, seq } => (log_name, *seq),
        }
    }
}

/// Why an entry was not committed. Nothing was acknowledged, so the sender should retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("the database is unavailable ({0}); the delivery was not stored, retry it")]
    Database(Arc<sqlx::Error>),
    #[error("verdict is shutting down; the delivery was not stored, retry it")]
    ShuttingDown,
}

struct Job {
    entry: NewEntry,
    reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// Hands entries to the per-log sequencer tasks, starting each on first use.
#[derive(Clone)]
pub struct Sequencer {
    pool: PgPool,
    queues: Arc<Mutex<HashMap<String, mpsc::Sender<Job>>>>,
    /// Where the per-log tasks run: the runtime that created the sequencer (the webhook's),
    /// even when the first append comes from background work.
    runtime: tokio::runtime::Handle,
    /// Appends waiting for their commit, which background work watches to step aside.
    load: IntakeLoad,
    /// Counts group commits' sizes, when set.
    metrics: Option<Arc<crate::ops::metrics::Metrics>>,
}

impl Sequencer {
    /// Must be called within a tokio runtime, which will run the per-log tasks.
    pub fn new(pool: PgPool) -> Self {
        Sequencer {
            pool,
            queues: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
            load: IntakeLoad::default(),
            metrics: None,
        }
    }

    /// Records each group commit's size in `metrics` (set before the first append).
    pub fn with_metrics(mut self, metrics: Arc<crate::ops::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How many appends are waiting for their commit right now, for background work to
    /// step aside while intake is saturated.
    pub fn load(&self) -> IntakeLoad {
        self.load.clone()
    }

    /// Appends `entry` to its log; returns once the commit holding it is durable.
    pub async fn append(&self, entry: NewEntry) -> Result<AppendOutcome, AppendError> {
        let _waiting = self.load.waiting_for_commit();
        let queue = self.queue_for(&entry.log_name);
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { entry, reply })
            .await
            .map_err(|_| AppendError::ShuttingDown)?;
        answer.await.map_err(|_| AppendError::ShuttingDown)?
    }

    fn queue_for(&self, log_name: &str) -> mpsc::Sender<Job> {
        let mut queues = self.queues.lock().expect("sequencer map poisoned");
        if let Some(queue) = queues.get(log_name) {
            return queue.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        self.runtime.spawn(run_log(
            self.pool.clone(),
            log_name.to_string(),
            rx,
            self.metrics.clone(),
        ));
        queues.insert(log_name.to_string(), tx.clone());
        tx
    }
}

/// What a sequencer task knows of its log between batches.
#[derive(Default)]
struct LogState {
    id: Option<i64>,
    /// `(next seq, hash of the last entry)` as of this task's last commit; `None` when unknown
    /// (first batch, or after any failure), which sends the next batch down the careful path.
    tail: Option<(u64, Hash)>,
}

async fn run_log(
    pool: PgPool,
    log_name: String,
    mut rx: mpsc::Receiver<Job>,
    metrics: Option<Arc<crate::ops::metrics::Metrics>>,
) {
    let mut state = LogState::default();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.entry.body.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_ENTRIES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.entry.body.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let entries: Vec<&NewEntry> = batch.iter().map(|j| &j.entry).collect();
        let outcome = commit(&pool, &log_name, &mut state, &entries).await;
        match outcome {
            Ok(outcomes) => {
                if let Some(m) = &metrics {
                    let appended = outcomes
                        .iter()
                        .filter(|o| matches!(o, AppendOutcome::Appended { .. }))
                        .count();
                    if appended > 0 {
                        m.batch(appended);
                    }
                }
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::warn!(log = %log_name, entries = batch.len(), error = %err, "batch not committed");
                let err = AppendError::Database(Arc::new(err));
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Commits one batch: on the remembered tail if there is one, else (or if the database refuses
/// that) carefully under the log's lock.
async fn commit(
    pool: &PgPool,
    log_name: &str,
    state: &mut LogState,
    entries: &[&NewEntry],
) -> sqlx::Result<Vec<AppendOutcome>> {
    let id = match state.id {
        Some(id) => id,
        None => {
            let id = store::ensure_log(pool, log_name).await?;
            state.id = Some(id);
            id
        }
    };
    if let Some(tail) = state.tail.take() {
        let plan = place(log_name, tail, entries, &Stored::default());
        match store::append_entries_locked(pool, id, &plan.placed).await {
            Ok(()) => {
                tracing::debug!(log = log_name, entries = entries.len(), "batch committed");
                state.tail = Some(plan.tail);
                return Ok(plan.outcomes);
            }
            // Another writer moved the tail, or a delivery id is already stored: nothing of
            // this statement was stored; sort it out under the lock.
            Err(sqlx::Error::Database(db)) if is_conflict(db.code().as_deref()) => {
                tracing::debug!(log = log_name, error = %db, "fast append refused; retrying under the lock");
            }
            Err(err) => return Err(err),
        }
    }
    let (outcomes, tail) = commit_locked_with_retry(pool, log_name, id, entries).await?;
    state.tail = Some(tail);
    Ok(outcomes)
}

/// Integrity-constraint errors (SQLSTATE class 23): a taken position, a stored delivery id,
/// or the chain trigger's refusal. Anything else (connection lost, server down) is not
/// retried here: the requests get 503 and GitHub's redelivery tries again.
fn is_conflict(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("23"))
}

async fn commit_locked_with_retry(
    pool: &PgPool,
    log_name: &str,
    id: i64,
    entries: &[&NewEntry],
) -> sqlx::Result<(Vec<AppendOutcome>, (u64, Hash))> {
    let mut attempt = 1;
    loop {
        match commit_locked(pool, log_name, id, entries).await {
            Err(sqlx::Error::Database(db))
                if db.is_unique_violation() && attempt < MAX_ATTEMPTS =>
            {
                // Another process stored one of these delivery ids meanwhile: check again.
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn commit_locked(
    pool: &PgPool,
    log_name: &str,
    id: i64,
    entries: &[&NewEntry],
) -> sqlx::Result<(Vec<AppendOutcome>, (u64, Hash))> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    store::lock_log(&mut *tx, id).await?;
    let tail = store::tail(&mut *tx, id).await?;

    // Deduplicate against the database, per entry kind; and find replayed bodies.
    let mut known = Stored::default();
    let mut kinds: HashMap<&str, Vec<String>> = HashMap::new();
    for e in entries {
        kinds
            .entry(e.kind.as_str())
            .or_default()
            .push(e.delivery_id.clone());
    }
    for (kind, ids) in kinds {
        for (delivery, name, seq) in store::find_deliveries(&mut *tx, kind, ids).await? {
            known
                .deliveries
                .insert((kind.to_string(), delivery), (name, seq));
        }
    }
    let bodies: Vec<Hash> = entries
        .iter()
        .filter(|e| e.kind == KIND_GITHUB_DELIVERY)
        .map(|e| e.body_sha256)
        .collect();
    if !bodies.is_empty() {
        known.bodies = store::find_bodies(&mut *tx, id, &bodies).await?;
    }
    let Plan {
        placed,
        outcomes,
        tail,
    } = place(log_name, tail, entries, &known);
    if !placed.is_empty() {
        store::insert_entries(&mut *tx, id, &placed).await?;
    }
    tx.commit().await?;
    tracing::debug!(log = log_name, entries = entries.len(), appended = placed.len(),
        elapsed = ?started.elapsed(), "batch committed under the lock");
    Ok((outcomes, tail))
}

/// A batch laid out on the chain.
struct Plan<'a> {
    placed: Vec<PlacedEntry<'a>>,
    outcomes: Vec<AppendOutcome>,
    /// The tail once `placed` is stored.
    tail: (u64, Hash),
}

/// What the database already holds of a batch, as the careful path reads it under the lock.
#[derive(Default)]
struct Stored {
    /// `(kind, delivery id)` → where that entry is (in any log).
    deliveries: HashMap<(String, String), (String, u64)>,
    /// Body SHA-256 of a GitHub delivery in this log → its first position.
    bodies: HashMap<Hash, u64>,
}

/// Chains `entries` after `tail`. Entries whose delivery id is in `stored`, or repeats one
/// earlier in the batch, become duplicates; GitHub deliveries whose body is already in the log
/// (or earlier in the batch) under another delivery id become replays. Neither takes a position.
fn place<'a>(
    log_name: &str,
    tail: (u64, Hash),
    entries: &[&'a NewEntry],
    stored: &Stored,
) -> Plan<'a> {
    let (mut next_seq, mut prev_hash) = tail;
    let mut in_batch: HashMap<(&str, &str), u64> = HashMap::new();
    let mut bodies_in_batch: HashMap<Hash, u64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut placed = Vec::with_capacity(entries.len());
    for &entry in entries {
        if let Some((name, seq)) = stored
            .deliveries
            .get(&(entry.kind.clone(), entry.delivery_id.clone()))
        {
            outcomes.push(AppendOutcome::Duplicate {
                log_name: name.clone(),
                seq: *seq,
            });
            continue;
        }
        let key = (entry.kind.as_str(), entry.delivery_id.as_str());
        if let Some(&seq) = in_batch.get(&key) {
            outcomes.push(AppendOutcome::Duplicate {
                log_name: log_name.to_string(),
                seq,
            });
            continue;
        }
        let is_delivery = entry.kind == KIND_GITHUB_DELIVERY;
        if is_delivery
            && let Some(&seq) = stored
                .bodies
                .get(&entry.body_sha256)
                .or_else(|| bodies_in_batch.get(&entry.body_sha256))
        {
            outcomes.push(AppendOutcome::Replay {
                log_name: log_name.to_string(),
                seq,
            });
            continue;
        }
        if is_delivery {
            bodies_in_batch.insert(entry.body_sha256, next_seq);
        }
        let entry_hash = entry.fields(next_seq, prev_hash).entry_hash();
        placed.push(PlacedEntry {
            entry,
            seq: next_seq,
            prev_hash,
            entry_hash,
        });
        outcomes.push(AppendOutcome::Appended {
            log_name: log_name.to_string(),
            seq: next_seq,
            entry_hash,
        });
        in_batch.insert(key, next_seq);
        prev_hash = entry_hash;
        next_seq += 1;
    }
    Plan {
        placed,
        outcomes,
        tail: (next_seq, prev_hash),
    }
}
