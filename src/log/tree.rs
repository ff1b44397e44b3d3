//! The stored Merkle tree of each log and its signed checkpoints. A background builder
//! extends the tree from committed entries (never in the webhook's path) and signs a
//! checkpoint for every new size; proofs are read back with one query each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool, Row};

use super::checkpoint::{CheckpointSigner, NoteVerifier};
use super::entry::{GENESIS_PREV_HASH, Hash};
use super::merkle::{self, Frontier, NodeId, Range};
use super::{integrity, keys, store};
use crate::background::IntakeLoad;

/// Namespace of the per-log tree lock (the sequencer and projector use others).
const LOCK_NAMESPACE: i32 = 0x7472_6565; // "tree"
/// Leaves added per transaction.
const BATCH: i64 = 8192;
/// How often the builder looks for new entries.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// How often every log's signed tree is checked against its entries and stored nodes, and
/// missing nodes rebuilt (besides whenever the builder extends a log).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How a missing stored node announces itself (proofs answer 503 until it is rebuilt).
const MISSING_NODE: &str = "Merkle node missing: ";

/// Why a log's tree was not extended.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// What is stored contradicts what was signed (or what an entry's hash says): nothing
    /// of the log is signed until it checks out again.
    #[error("{0}")]
    Integrity(String),
}

impl TreeError {
    fn missing_node(&self) -> bool {
        matches!(self, TreeError::Database(sqlx::Error::Protocol(m)) if m.starts_with(MISSING_NODE))
    }
}

/// A log's newest checkpoint, checked: what it signed is still what is stored.
struct Anchor {
    /// Its size and root (`None` before the first checkpoint).
    signed: Option<(u64, Hash)>,
    /// The tree it signed, ready to extend.
    frontier: Frontier,
    /// The hash of the last entry it covers (the next entry must link to it).
    prev: Hash,
}

/// The newest signed checkpoint of a log.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub log_id: i64,
    pub tree_size: u64,
    pub root: Hash,
    pub note: String,
}

/// Extends every log's tree and signs checkpoints.
#[derive(Clone)]
pub struct TreeBuilder {
    pool: PgPool,
    signer: Arc<CheckpointSigner>,
    /// When set, each extension waits (boundedly) while this intake is saturated.
    yield_to: Option<IntakeLoad>,
}

impl TreeBuilder {
    pub fn new(pool: PgPool, signer: Arc<CheckpointSigner>) -> TreeBuilder {
        TreeBuilder {
            pool,
            signer,
            yield_to: None,
        }
    }

    /// Steps aside before each extension while `load` says intake is saturated (see
    /// [`IntakeLoad::until_quiet`]).
    pub fn yielding_to(mut self, load: IntakeLoad) -> TreeBuilder {
        self.yield_to = Some(load);
        self
    }

    /// Brings every log's tree up to its last committed entry; returns leaves added.
    pub async fn catch_up(&self) -> sqlx::Result<u64> {
        // Logs whose tree lags the log (both sides are one index probe each).
        let behind: Vec<(i64, String)> = sqlx::query_as(
            "SELECT l.id, l.name FROM logs l
              WHERE coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0)
                  > coalesce((SELECT max(tree_size) FROM checkpoints c WHERE c.log_id = l.id), 0)
              ORDER BY l.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut added = 0;
        let mut failed = None;
        // One log whose tree cannot grow now does not hold up the others.
        for (log_id, name) in behind {
            let mut rebuilt = false;
            loop {
                if let Some(load) = &self.yield_to {
                    load.until_quiet().await;
                }
                match self.extend(log_id, &name).await {
                    Ok(n) => {
                        added += n;
                        if n < BATCH as u64 {
                            break;
                        }
                    }
                    // Stored nodes deleted: rebuilt from the log (checked against every
                    // stored checkpoint), then the extension is tried again.
                    Err(err) if err.missing_node() && !rebuilt => {
                        rebuilt = true;
                        tracing::warn!(log = %name, error = %err, "rebuilding the stored tree");
                        if let Err(err) = self.rebuild(log_id, &name).await {
                            self.failed(log_id, &name, err, &mut failed).await;
                            break;
                        }
                    }
                    Err(err) => {
                        self.failed(log_id, &name, err, &mut failed).await;
                        break;
                    }
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(added),
        }
    }

    /// An extension or rebuild that failed: an integrity problem raises the log's alarm; a
    /// database problem is retried next time.
    async fn failed(
        &self,
        log_id: i64,
        name: &str,
        err: TreeError,
        first: &mut Option<sqlx::Error>,
    ) {
        match err {
            TreeError::Integrity(problem) => {
                integrity::raise(&self.pool, log_id, name, &problem).await;
            }
            TreeError::Database(err) => {
                tracing::warn!(log = %name, error = %err, "tree not extended now; will retry");
                first.get_or_insert(err);
            }
        }
    }

    /// The keys whose checkpoints this builder accepts as its own: its signer's.
    fn verifier(&self, name: &str) -> Result<NoteVerifier, TreeError> {
        NoteVerifier::parse(&self.signer.verifier_key(name)).map_err(|e| {
            TreeError::Integrity(format!("the server's verifier key is unusable: {e}"))
        })
    }

    /// Checks that the newest checkpoint of a log still describes it: signed by this server's
    /// key over the row's size and root, the stored nodes giving that root, and the last entry
    /// it covers still the one it signed (a log truncated and grown again would not be).
    async fn anchor(
        &self,
        conn: &mut PgConnection,
        log_id: i64,
        name: &str,
    ) -> Result<Anchor, TreeError> {
        let newest = sqlx::query(
            "SELECT tree_size, root_hash, note FROM checkpoints WHERE log_id = $1
              ORDER BY tree_size DESC LIMIT 1",
        )
        .bind(log_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(newest) = newest else {
            return Ok(Anchor {
                signed: None,
                frontier: Frontier::default(),
                prev: GENESIS_PREV_HASH,
            });
        };
        let size = newest.get::<i64, _>("tree_size") as u64;
        let root: Hash = newest
            .get::<Vec<u8>, _>("root_hash")
            .try_into()
            .unwrap_or([0; 32]);
        let note: String = newest.get("note");
        let bad = |what: String| TreeError::Integrity(what);
        let ours = self
            .verifier(name)?
            .open_checkpoint(&note)
            .is_ok_and(|c| c.size == size && c.root == root);
        // Signed by an earlier key: only the checkpoint a stored rotation handed over at.
        // (Rotations are read only then: finding them means reading the log.)
        if !ours
            && !keys::accepts(
                &self.signer,
                name,
                &keys::stored(&mut *conn, log_id).await?,
                &note,
                size,
                &root,
            )
        {
            return Err(bad(format!(
                "checkpoint {size} is not signed over its stored size and root by this server's \
                 key, nor by a key that handed over to it"
            )));
        }
        let frontier =
            Frontier::from_nodes(size, node_hashes(conn, log_id, &Frontier::ids(size)).await?);
        if frontier.root() != root {
            return Err(bad(format!(
                "the stored tree no longer gives checkpoint {size}'s root: its nodes were changed"
            )));
        }
        let last = store::headers_from(&mut *conn, log_id, size - 1, 1).await?;
        let last = last.first().filter(|e| e.seq == size - 1).ok_or_else(|| {
            bad(format!(
                "entry {}, the last one checkpoint {size} covers, is gone: the log was truncated",
                size - 1
            ))
        })?;
        let hash = last.fields(name).entry_hash();
        if hash[..] != last.entry_hash[..] {
            return Err(bad(format!(
                "entry {}: the stored entry hash is not the hash of its fields",
                size - 1
            )));
        }
        let (leaf, proof) = inclusion_proof(conn, log_id, size - 1, size).await?;
        let proof: Vec<Vec<u8>> = proof.iter().map(|h| h.to_vec()).collect();
        if leaf != merkle::leaf_hash(&hash)
            || merkle::verify_inclusion(size - 1, size, &leaf, &proof, &root).is_err()
        {
            return Err(bad(format!(
                "entry {} is not the entry checkpoint {size} signed: the log was rewritten",
                size - 1
            )));
        }
        Ok(Anchor {
            signed: Some((size, root)),
            frontier,
            prev: hash,
        })
    }

    /// Adds up to [`BATCH`] leaves to one log's tree and signs the new size, after checking
    /// that the checkpoint it extends still holds ([`Self::anchor`]), that every new entry
    /// hashes to its stored hash and links to the one before, that stored nodes it meets
    /// agree, and that the new tree is consistent with the old checkpoint.
    async fn extend(&self, log_id: i64, name: &str) -> Result<u64, TreeError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(log_id as i32)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let Anchor {
            signed,
            mut frontier,
            mut prev,
        } = self.anchor(&mut tx, log_id, name).await?;
        let size = frontier.size();
        let leaves = store::headers_from(&mut *tx, log_id, size, BATCH).await?;
        let mut computed: Vec<(NodeId, Hash)> = Vec::new();
        for e in &leaves {
            check_entry(name, frontier.size(), &prev, e)?;
            prev = e.fields(name).entry_hash();
            computed.extend(
                frontier
                    .push(merkle::leaf_hash(&prev))
                    .into_iter()
                    .filter(|(id, _)| id.level > 0),
            );
        }
        if frontier.size() == size {
            return Ok(0);
        }
        store_nodes(&mut tx, log_id, &computed).await?;
        let root = frontier.root();
        if let Some((old, old_root)) = signed {
            let proof: Vec<Vec<u8>> = consistency_proof(&mut tx, log_id, old, frontier.size())
                .await?
                .iter()
                .map(|h| h.to_vec())
                .collect();
            merkle::verify_consistency(old, frontier.size(), &proof, &old_root, &root).map_err(
                |e| {
                    TreeError::Integrity(format!(
                        "the tree of {} entries would not extend checkpoint {old} ({e})",
                        frontier.size()
                    ))
                },
            )?;
        }
        let note = self.signer.sign_checkpoint(name, frontier.size(), &root);
        sqlx::query(
            "INSERT INTO checkpoints (log_id, tree_size, root_hash, note) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(log_id)
        .bind(frontier.size() as i64)
        .bind(&root[..])
        .bind(&note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        integrity::clear(&self.pool, log_id).await?;
        Ok(frontier.size() - size)
    }

    /// Rebuilds a log's stored tree from its entries, up to its newest checkpoint: checks
    /// every entry's hash and link and every stored checkpoint's root on the way, and stores
    /// the nodes that are missing. A history that contradicts a stored checkpoint is an
    /// integrity problem, and nothing is stored.
    async fn rebuild(&self, log_id: i64, name: &str) -> Result<u64, TreeError> {
        let checkpoints: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT tree_size, root_hash FROM checkpoints WHERE log_id = $1 ORDER BY tree_size",
        )
        .bind(log_id)
        .fetch_all(&self.pool)
        .await?;
        let Some(&(signed, _)) = checkpoints.last() else {
            return Ok(0);
        };
        let signed = signed as u64;
        let mut pending = checkpoints.iter().peekable();
        let (mut frontier, mut prev, mut stored) = (Frontier::default(), GENESIS_PREV_HASH, 0);
        while frontier.size() < signed {
            let want = BATCH.min((signed - frontier.size()) as i64);
            let rows = store::headers_from(&self.pool, log_id, frontier.size(), want).await?;
            if rows.is_empty() {
                return Err(TreeError::Integrity(format!(
                    "entry {} is gone, but checkpoint {signed} covers it: the log was truncated",
                    frontier.size()
                )));
            }
            let mut computed = Vec::new();
            for e in &rows {
                check_entry(name, frontier.size(), &prev, e)?;
                prev = e.fields(name).entry_hash();
                computed.extend(
                    frontier
                        .push(merkle::leaf_hash(&prev))
                        .into_iter()
                        .filter(|(id, _)| id.level > 0),
                );
                while let Some((size, root)) =
                    pending.next_if(|(s, _)| *s as u64 <= frontier.size())
                {
                    if *size as u64 == frontier.size() && frontier.root()[..] != root[..] {
                        return Err(TreeError::Integrity(format!(
                            "the log no longer gives checkpoint {size}'s root: its history was rewritten"
                        )));
                    }
                }
            }
            let mut tx = self.pool.begin().await?;
            stored += store_nodes(&mut tx, log_id, &computed).await?;
            tx.commit().await?;
        }
        tracing::info!(
            log = name,
            nodes = stored,
            "stored tree rebuilt from the log"
        );
        Ok(stored)
    }

    /// Checks every log's newest checkpoint against what is stored, rebuilds trees whose
    /// nodes are missing, and raises (or clears) alarms: a log that receives nothing new is
    /// checked too.
    pub async fn sweep(&self) -> sqlx::Result<()> {
        let logs: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT l.id, l.name, max(c.tree_size) FROM logs l
               JOIN checkpoints c ON c.log_id = l.id GROUP BY l.id, l.name ORDER BY l.id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (log_id, name, size) in logs {
            if let Some(load) = &self.yield_to {
                load.until_quiet().await;
            }
            // Interior nodes a tree of `size` leaves has, against those stored.
            let stored: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM merkle_nodes WHERE log_id = $1 AND idx < ($2::bigint >> level)",
            )
            .bind(log_id)
            .bind(size)
            .fetch_one(&self.pool)
            .await?;
            let expected: i64 = (1..64).map(|level| size >> level).sum();
            let mut result = Ok(0);
            if stored < expected {
                tracing::warn!(log = %name, stored, expected, "stored tree nodes are missing");
                result = self.rebuild(log_id, &name).await;
            }
            if result.is_ok() {
                let mut conn = self.pool.acquire().await?;
                result = self.anchor(&mut conn, log_id, &name).await.map(|_| 0);
            }
            match result {
                Ok(_) => integrity::clear(&self.pool, log_id).await?,
                Err(TreeError::Integrity(problem)) => {
                    integrity::raise(&self.pool, log_id, &name, &problem).await;
                }
                Err(TreeError::Database(err)) => return Err(err),
            }
        }
        Ok(())
    }

    /// Runs in the background: catches up every [`INTERVAL`], and sweeps every log at
    /// start and every [`SWEEP_INTERVAL`].
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_sweep: Option<std::time::Instant> = None;
            loop {
                if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_INTERVAL) {
                    if let Err(err) = self.sweep().await {
                        tracing::warn!(error = %err, "tree check paused; will retry");
                    }
                    last_sweep = Some(std::time::Instant::now());
                }
                if let Err(err) = self.catch_up().await {
                    tracing::warn!(error = %err, "Merkle tree paused; will retry");
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
    }
}

/// Checks entry `e` is at `seq`, hashes to its stored hash, and links to `prev`.
fn check_entry(name: &str, seq: u64, prev: &Hash, e: &store::StoredEntry) -> Result<(), TreeError> {
    let bad = |what: String| Err(TreeError::Integrity(what));
    if e.seq != seq {
        return bad(format!(
            "entry {seq} is missing: the next stored entry is {} (entries deleted)",
            e.seq
        ));
    }
    let fields = e.fields(name);
    if fields.entry_hash()[..] != e.entry_hash[..] {
        return bad(format!(
            "entry {seq}: the stored entry hash is not the hash of its fields in log {name} \
             (entry changed, or moved in from another log)"
        ));
    }
    if fields.prev_hash != *prev {
        return bad(format!(
            "entry {seq}: prev_hash is not the hash of entry {} (chain broken)",
            seq.wrapping_sub(1)
        ));
    }
    Ok(())
}

/// Stores computed interior nodes; a node already stored (left by a checkpoint since
/// deleted, say) must be the same, or the stored tree contradicts the log. Returns how many
/// were new.
async fn store_nodes(
    conn: &mut PgConnection,
    log_id: i64,
    nodes: &[(NodeId, Hash)],
) -> Result<u64, TreeError> {
    if nodes.is_empty() {
        return Ok(0);
    }
    let levels: Vec<i16> = nodes.iter().map(|(id, _)| id.level as i16).collect();
    let indexes: Vec<i64> = nodes.iter().map(|(id, _)| id.index as i64).collect();
    let hashes: Vec<Vec<u8>> = nodes.iter().map(|(_, h)| h.to_vec()).collect();
    let conflicting: Option<(i16, i64)> = sqlx::query_as(
        "SELECT n.level, n.idx FROM merkle_nodes n
           JOIN UNNEST($2::smallint[], $3::bigint[], $4::bytea[]) AS w(level, idx, hash)
             ON n.level = w.level AND n.idx = w.idx
          WHERE n.log_id = $1 AND n.hash <> w.hash LIMIT 1",
    )
    .bind(log_id)
    .bind(&levels)
    .bind(&indexes)
    .bind(&hashes)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((level, idx)) = conflicting {
        return Err(TreeError::Integrity(format!(
            "the stored Merkle node at level {level}, index {idx} contradicts the log's entries"
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO merkle_nodes (log_id, level, idx, hash)
         SELECT $1, * FROM UNNEST($2::smallint[], $3::bigint[], $4::bytea[])
         ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(&levels)
    .bind(&indexes)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected())
}

/// Leaves in a log's stored tree: the newest checkpoint's size (the two are written in one
/// transaction).
pub async fn tree_size(conn: impl PgExecutor<'_>, log_id: i64) -> sqlx::Result<u64> {
    let n: Option<i64> =
        sqlx::query_scalar("SELECT max(tree_size) FROM checkpoints WHERE log_id = $1")
            .bind(log_id)
            .fetch_one(conn)
            .await?;
    Ok(n.unwrap_or(0) as u64)
}

/// The hashes of `ids`, in order (every id must exist).
async fn node_hashes(
    conn: &mut PgConnection,
    log_id: i64,
    ids: &[NodeId],
) -> sqlx::Result<Vec<Hash>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Leaves come from the log's entry hashes, interior nodes from merkle_nodes: one query.
    let seqs: Vec<i64> = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| id.index as i64)
        .collect();
    let interior: Vec<&NodeId> = ids.iter().filter(|id| id.level > 0).collect();
    let levels: Vec<i16> = interior.iter().map(|id| id.level as i16).collect();
    let indexes: Vec<i64> = interior.iter().map(|id| id.index as i64).collect();
    let rows = sqlx::query(
        "SELECT 0::smallint AS level, seq AS idx, entry_hash AS hash FROM log_entries
          WHERE log_id = $1 AND seq = ANY($4)
         UNION ALL
         SELECT n.level, n.idx, n.hash FROM merkle_nodes n
           JOIN UNNEST($2::smallint[], $3::bigint[]) AS w(level, idx)
             ON n.level = w.level AND n.idx = w.idx
          WHERE n.log_id = $1",
    )
    .bind(log_id)
    .bind(&levels)
    .bind(&indexes)
    .bind(&seqs)
    .fetch_all(&mut *conn)
    .await?;
    let found: HashMap<NodeId, Hash> = rows
        .iter()
        .map(|r| {
            let id = NodeId {
                level: r.get::<i16, _>("level") as u8,
                index: r.get::<i64, _>("idx") as u64,
            };
            let stored: Hash = r.get::<Vec<u8>, _>("hash").try_into().unwrap_or([0; 32]);
            // A level-0 row carries the entry hash; the leaf hash is derived from it.
            let hash = if id.level == 0 {
                merkle::leaf_hash(&stored)
            } else {
                stored
            };
            (id, hash)
        })
        .collect();
    ids.iter()
        .map(|id| {
            found.get(id).copied().ok_or_else(|| {
                sqlx::Error::Protocol(format!("{MISSING_NODE}{id:?} of log {log_id}"))
            })
        })
        .collect()
}

/// The MTHs of `ranges`, fetching all their nodes in one query.
async fn range_hashes(
    conn: &mut PgConnection,
    log_id: i64,
    ranges: &[Range],
) -> sqlx::Result<Vec<Hash>> {
    let per_range: Vec<Vec<NodeId>> = ranges.iter().map(Range::nodes).collect();
    let all: Vec<NodeId> = per_range.iter().flatten().copied().collect();
    let hashes = node_hashes(conn, log_id, &all).await?;
    let mut at = 0;
    Ok(per_range
        .iter()
        .map(|ids| {
            let h = Range::hash_from(&hashes[at..at + ids.len()]);
            at += ids.len();
            h
        })
        .collect())
}

/// The leaf hash at `index` and its inclusion proof in the tree of `size` leaves.
/// The caller checks `index < size <= tree size`.
pub async fn inclusion_proof(
    conn: &mut PgConnection,
    log_id: i64,
    index: u64,
    size: u64,
) -> sqlx::Result<(Hash, Vec<Hash>)> {
    let mut ranges = vec![Range {
        start: index,
        end: index + 1,
    }];
    ranges.extend(merkle::inclusion_plan(index, size));
    let mut hashes = range_hashes(conn, log_id, &ranges).await?;
    let leaf = hashes.remove(0);
    Ok((leaf, hashes))
}

/// The consistency proof between trees of `from` and `to` leaves (`from <= to <= tree size`).
pub async fn consistency_proof(
    conn: &mut PgConnection,
    log_id: i64,
    from: u64,
    to: u64,
) -> sqlx::Result<Vec<Hash>> {
    range_hashes(conn, log_id, &merkle::consistency_plan(from, to)).await
}

/// The root of the tree's first `size` leaves.
pub async fn root_at(conn: &mut PgConnection, log_id: i64, size: u64) -> sqlx::Result<Hash> {
    if size == 0 {
        return Ok(merkle::empty_root());
    }
    Ok(range_hashes(
        conn,
        log_id,
        &[Range {
            start: 0,
            end: size,
        }],
    )
    .await?[0])
}

/// The newest checkpoint of the log named `account`.
pub async fn latest_checkpoint(
    conn: impl PgExecutor<'_>,
    account: &str,
) -> sqlx::Result<Option<StoredCheckpoint>> {
    let row = sqlx::query(
        "SELECT c.log_id, c.tree_size, c.root_hash, c.note FROM checkpoints c
           JOIN logs l ON l.id = c.log_id
          WHERE l.name = $1 ORDER BY c.tree_size DESC LIMIT 1",
    )
    .bind(account)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| StoredCheckpoint {
        log_id: r.get("log_id"),
        tree_size: r.get::<i64, _>("tree_size") as u64,
        root: r
            .get::<Vec<u8>, _>("root_hash")
            .try_into()
            .unwrap_or([0; 32]),
        note: r.get("note"),
    }))
}
