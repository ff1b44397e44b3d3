//! The stored Merkle tree of each log and its signed checkpoints. A background builder
//! extends the tree from committed entries (never in the webhook's path) and signs a
//! checkpoint for every new size; proofs are read back with one query each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool, Row};

use super::checkpoint::CheckpointSigner;
use super::entry::Hash;
use super::merkle::{self, Frontier, NodeId, Range};
use crate::background::IntakeLoad;

/// Namespace of the per-log tree lock (the sequencer and projector use others).
const LOCK_NAMESPACE: i32 = 0x7472_6565; // "tree"
/// Leaves added per transaction.
const BATCH: i64 = 8192;
/// How often the builder looks for new entries.
pub const INTERVAL: Duration = Duration::from_millis(250);

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
                    Err(err) => {
                        tracing::warn!(log = %name, error = %err, "tree not extended now; will retry");
                        failed.get_or_insert(err);
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

    /// Adds up to [`BATCH`] leaves to one log's tree and signs the new size.
    async fn extend(&self, log_id: i64, name: &str) -> sqlx::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(log_id as i32)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let size = tree_size(&mut *tx, log_id).await?;
        let mut frontier = Frontier::from_nodes(
            size,
            node_hashes(&mut tx, log_id, &Frontier::ids(size)).await?,
        );
        let leaves = sqlx::query(
            "SELECT seq, entry_hash FROM log_entries WHERE log_id = $1 AND seq >= $2
              ORDER BY seq LIMIT $3",
        )
        .bind(log_id)
        .bind(size as i64)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let (mut levels, mut indexes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for row in &leaves {
            let seq: i64 = row.get("seq");
            let entry_hash: Vec<u8> = row.get("entry_hash");
            // The log is gapless by construction (its insert trigger); a tree over a gap
            // would be wrong, so stop rather than guess.
            if seq as u64 != frontier.size() {
                tracing::error!(
                    log = name,
                    seq,
                    expected = frontier.size(),
                    "gap in the log; tree not extended"
                );
                break;
            }
            // Leaf hashes are not stored: they are recomputed from the entry hashes.
            for (id, hash) in frontier
                .push(merkle::leaf_hash(&entry_hash))
                .into_iter()
                .filter(|(id, _)| id.level > 0)
            {
                levels.push(id.level as i16);
                indexes.push(id.index as i64);
                hashes.push(hash.to_vec());
            }
        }
        if frontier.size() == size {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO merkle_nodes (log_id, level, idx, hash)
             SELECT $1, * FROM UNNEST($2::smallint[], $3::bigint[], $4::bytea[])",
        )
        .bind(log_id)
        .bind(&levels)
        .bind(&indexes)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        let root = frontier.root();
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
        Ok(frontier.size() - size)
    }

    /// Runs in the background: catches up every [`INTERVAL`].
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(err) = self.catch_up().await {
                    tracing::warn!(error = %err, "Merkle tree paused; will retry");
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
    }
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
                sqlx::Error::Protocol(format!("Merkle node {id:?} of log {log_id} is missing"))
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
