//! Group commit: one sequencer task per log and process takes every entry waiting for that log,
//! chains them, inserts them in one transaction and only then tells each waiting request where
//! its entry landed. Between processes, an advisory lock taken inside the transaction
//! serializes appends; the database's chain trigger rejects anything that would fork or gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::entry::Hash;
use super::store::{self, NewEntry, PlacedEntry};

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
}

impl Sequencer {
    pub fn new(pool: PgPool) -> Self {
        Sequencer {
            pool,
            queues: Arc::default(),
        }
    }

    /// Appends `entry` to its log; returns once the commit holding it is durable.
    pub async fn append(&self, entry: NewEntry) -> Result<AppendOutcome, AppendError> {
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
        tokio::spawn(run_log(self.pool.clone(), log_name.to_string(), rx));
        queues.insert(log_name.to_string(), tx.clone());
        tx
    }
}

async fn run_log(pool: PgPool, log_name: String, mut rx: mpsc::Receiver<Job>) {
    let mut log_id = None;
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
        let outcome = commit_with_retry(&pool, &log_name, &mut log_id, &entries).await;
        match outcome {
            Ok(outcomes) => {
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

async fn commit_with_retry(
    pool: &PgPool,
    log_name: &str,
    log_id: &mut Option<i64>,
    entries: &[&NewEntry],
) -> sqlx::Result<Vec<AppendOutcome>> {
    let mut attempt = 1;
    loop {
        match commit_batch(pool, log_name, log_id, entries).await {
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

async fn commit_batch(
    pool: &PgPool,
    log_name: &str,
    log_id: &mut Option<i64>,
    entries: &[&NewEntry],
) -> sqlx::Result<Vec<AppendOutcome>> {
    let id = match *log_id {
        Some(id) => id,
        None => {
            let id = store::ensure_log(pool, log_name).await?;
            *log_id = Some(id);
            id
        }
    };
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    store::lock_log(&mut *tx, id).await?;
    let (mut next_seq, mut prev_hash) = store::tail(&mut *tx, id).await?;

    // Deduplicate against the database and within the batch, per entry kind.
    let mut known: HashMap<(String, String), (String, u64)> = HashMap::new();
    let mut kinds: HashMap<&str, Vec<String>> = HashMap::new();
    for e in entries {
        kinds
            .entry(e.kind.as_str())
            .or_default()
            .push(e.delivery_id.clone());
    }
    for (kind, ids) in kinds {
        for (delivery, name, seq) in store::find_deliveries(&mut *tx, kind, ids).await? {
            known.insert((kind.to_string(), delivery), (name, seq));
        }
    }

    let mut outcomes = Vec::with_capacity(entries.len());
    let mut placed = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = (entry.kind.clone(), entry.delivery_id.clone());
        if let Some((name, seq)) = known.get(&key) {
            outcomes.push(AppendOutcome::Duplicate {
                log_name: name.clone(),
                seq: *seq,
            });
            continue;
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
        known.insert(key, (log_name.to_string(), next_seq));
        prev_hash = entry_hash;
        next_seq += 1;
    }
    if !placed.is_empty() {
        store::insert_entries(&mut *tx, id, &placed).await?;
    }
    tx.commit().await?;
    tracing::debug!(log = log_name, entries = entries.len(), appended = placed.len(),
        elapsed = ?started.elapsed(), "batch committed");
    Ok(outcomes)
}
