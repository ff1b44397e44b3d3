//! The verifiable-log API: logs, verifier keys, signed checkpoints, inclusion and
//! consistency proofs (JSON, hashes base64 as in the C2SP specifications), and a record's
//! proof as a C2SP tlog-proof file that `verdict verify-proof` checks offline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use sqlx::PgPool;

use super::WebState;
use super::access::Viewer;
use super::api;
use super::error::WebError;
use crate::log::entry::Hash;
use crate::log::store;
use crate::log::tree::{self, StoredCheckpoint};

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn json_or_error<T: Serialize>(r: Result<T, WebError>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => api::error(e),
    }
}

fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// A log is visible to whoever may see one of its repositories (operators see every log).
fn log_visible(repos: &[String], viewer: &Viewer) -> bool {
    viewer.visible().is_none() || repos.iter().any(|r| viewer.may_see(Some(r)))
}

async fn visible(pool: &PgPool, account: &str, viewer: &Viewer) -> Result<i64, WebError> {
    let row: Option<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT l.id, array(SELECT r.repo FROM repositories r WHERE r.log_id = l.id)
           FROM logs l WHERE l.name = $1",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((id, repos)) if log_visible(&repos, viewer) => Ok(id),
        _ => Err(unknown_log(account)),
    }
}

/// log id, its repositories, newest checkpoint's size, root and note.
type LogCheckpointRow = (
    i64,
    Vec<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
);

/// Each log's newest checkpoint as last read, kept for as long as the tree builder waits
/// between runs: a proof then costs one query, not two. Proofs against a checkpoint a quarter
/// second old are as valid as any; only existing logs are kept, and at most 10,000.
#[derive(Default)]
pub struct CheckpointCache(Mutex<HashMap<String, (Instant, LogCheckpointRow)>>);

impl CheckpointCache {
    fn get(&self, account: &str) -> Option<LogCheckpointRow> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(account)
            .filter(|(at, _)| at.elapsed() < tree::INTERVAL)
            .map(|(_, row)| row.clone())
    }

    fn put(&self, account: &str, row: LogCheckpointRow) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(account.to_string(), (Instant::now(), row));
    }
}

/// The log (if visible) and its newest checkpoint, in one query (or none, within the cache's
/// quarter second): proofs are asked for often.
async fn log_and_checkpoint(
    state: &WebState,
    account: &str,
    viewer: &Viewer,
) -> Result<StoredCheckpoint, WebError> {
    let row = match state.checkpoints.get(account) {
        Some(row) => Some(row),
        None => {
            let row = read_log_and_checkpoint(&state.pool, account).await?;
            if let Some(r) = &row {
                state.checkpoints.put(account, r.clone());
            }
            row
        }
    };
    match row {
        Some((log_id, repos, size, root, note)) if log_visible(&repos, viewer) => {
            match (size, root, note) {
                (Some(size), Some(root), Some(note)) => Ok(StoredCheckpoint {
                    log_id,
                    tree_size: size as u64,
                    root: root.try_into().unwrap_or([0; 32]),
                    note,
                }),
                _ => Err(no_checkpoint(account)),
            }
        }
        _ => Err(unknown_log(account)),
    }
}

async fn read_log_and_checkpoint(
    pool: &PgPool,
    account: &str,
) -> Result<Option<LogCheckpointRow>, WebError> {
    let row: Option<LogCheckpointRow> = sqlx::query_as(
        "SELECT l.id, array(SELECT r.repo FROM repositories r WHERE r.log_id = l.id),
                c.tree_size, c.root_hash, c.note
           FROM logs l
           LEFT JOIN LATERAL (SELECT tree_size, root_hash, note FROM checkpoints
                               WHERE log_id = l.id ORDER BY tree_size DESC LIMIT 1) c ON true
          WHERE l.name = $1",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

fn unknown_log(account: &str) -> WebError {
    WebError::NotFound(format!(
        "there is no log for account {account:?}; GET /api/logs lists them"
    ))
}

fn no_checkpoint(account: &str) -> WebError {
    WebError::NotFound(format!(
        "log {account:?} has no signed checkpoint yet; one is signed within a second of its first entry"
    ))
}

#[derive(Serialize)]
pub struct LogItem {
    pub account: String,
    /// Entries in the log.
    pub size: u64,
    /// Entries covered by the newest signed checkpoint.
    pub checkpoint_size: u64,
    pub origin: String,
    pub key_url: String,
    pub checkpoint_url: String,
    /// Set while the tree builder finds the log contradicting what it signed: nothing more of
    /// it is signed until it checks out again.
    pub integrity_alarm: Option<crate::log::integrity::Alarm>,
}

pub async fn logs(State(s): State<WebState>, viewer: Viewer) -> Response {
    let result = async {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT l.name,
                    coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0),
                    coalesce((SELECT max(tree_size) FROM checkpoints c WHERE c.log_id = l.id), 0)
               FROM logs l
              WHERE $1::text[] IS NULL
                 OR EXISTS (SELECT 1 FROM repositories r WHERE r.log_id = l.id AND r.repo = ANY($1))
              ORDER BY l.name",
        )
        .bind(viewer.visible())
        .fetch_all(&s.pool)
        .await?;
        let mut alarms = crate::log::integrity::current(&s.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(account, size, checkpoint_size)| LogItem {
                origin: s.signer.origin(&account),
                key_url: format!("/api/logs/{account}/key"),
                checkpoint_url: format!("/api/logs/{account}/checkpoint"),
                integrity_alarm: alarms
                    .iter()
                    .position(|a| a.log == account)
                    .map(|i| alarms.remove(i)),
                account,
                size: size as u64,
                checkpoint_size: checkpoint_size as u64,
            })
            .collect::<Vec<_>>())
    }
    .await;
    json_or_error(result)
}

pub async fn key(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(account): Path<String>,
) -> Response {
    match async { visible(&s.pool, &account, &viewer).await }.await {
        Ok(_) => text(format!("{}\n", s.signer.verifier_key(&account))),
        Err(e) => api::error(e),
    }
}

/// The log's key rotations, each a note signed by the old key and the new one, concatenated
/// (empty when the key never changed): a verifier trusting an earlier key follows them.
pub async fn key_rotations(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(account): Path<String>,
) -> Response {
    let result = async {
        let log_id = visible(&s.pool, &account, &viewer).await?;
        Ok::<_, WebError>(crate::log::keys::stored(&s.pool, log_id).await?)
    }
    .await;
    match result {
        Ok(rotations) => text(crate::log::keys::concatenated(&rotations)),
        Err(e) => api::error(e),
    }
}

pub async fn checkpoint(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(account): Path<String>,
) -> Response {
    let result = async { log_and_checkpoint(&s, &account, &viewer).await }.await;
    match result {
        Ok(c) => text(c.note),
        Err(e) => api::error(e),
    }
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, WebError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| {
                    WebError::BadRequest(format!("{name}={v:?} is not a whole number from 0"))
                })
        })
        .transpose()
}

/// A tree size asked for, checked against what the tree covers.
fn tree_size_param(
    params: &HashMap<String, String>,
    name: &str,
    latest: &StoredCheckpoint,
) -> Result<u64, WebError> {
    let size = number(params, name)?.unwrap_or(latest.tree_size);
    if size > latest.tree_size {
        return Err(WebError::BadRequest(format!(
            "{name}={size} is larger than the log's signed tree ({} entries); ask for a size up to that",
            latest.tree_size
        )));
    }
    Ok(size)
}

#[derive(Serialize)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
}

pub async fn inclusion(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let latest = log_and_checkpoint(&s, &account, &viewer).await?;
        let log_id = latest.log_id;
        let size = tree_size_param(&params, "size", &latest)?;
        let index = match (number(&params, "index")?, params.get("delivery")) {
            (Some(i), None) => i,
            (None, Some(guid)) => {
                // Naming a delivery tells whether it exists: only where the viewer may see
                // the delivery's repository.
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM log_entries WHERE log_id = $1 AND delivery_id = $2",
                )
                .bind(log_id)
                .bind(guid)
                .fetch_optional(&s.pool)
                .await?;
                let entry = match seq {
                    Some(seq) => store::entry_at(&s.pool, &account, seq as u64).await?,
                    None => None,
                };
                let visible = match &entry {
                    Some(e) => {
                        let audience = super::records::audience_of(&s.pool, &account, e).await?;
                        viewer.may_see_entry(&s.pool, log_id, &audience).await?
                    }
                    None => false,
                };
                entry
                    .filter(|_| visible)
                    .ok_or_else(|| {
                        WebError::NotFound(format!(
                            "log {account:?} has no delivery {guid:?}{}",
                            viewer.not_found_hint()
                        ))
                    })?
                    .seq
            }
            _ => {
                return Err(WebError::BadRequest(
                    "give exactly one of index=N or delivery=GUID".into(),
                ));
            }
        };
        if index >= size {
            return Err(WebError::BadRequest(format!(
                "index {index} is not inside a tree of size {size}; indexes run from 0 to size - 1"
            )));
        }
        let mut conn = s.pool.acquire().await?;
        let (leaf, hashes) = tree::inclusion_proof(&mut conn, log_id, index, size).await?;
        Ok(InclusionProof {
            index,
            tree_size: size,
            leaf_hash: b64(&leaf),
            hashes: hashes.iter().map(b64).collect(),
        })
    }
    .await;
    json_or_error(result)
}

#[derive(Serialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
}

pub async fn consistency(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let latest = log_and_checkpoint(&s, &account, &viewer).await?;
        let log_id = latest.log_id;
        let to = tree_size_param(&params, "to", &latest)?;
        let from = number(&params, "from")?.ok_or_else(|| {
            WebError::BadRequest("from=N (the older tree size) is required".into())
        })?;
        if from > to {
            return Err(WebError::BadRequest(format!(
                "from={from} is larger than to={to}; a log only grows"
            )));
        }
        let mut conn = s.pool.acquire().await?;
        let hashes = tree::consistency_proof(&mut conn, log_id, from, to).await?;
        Ok(ConsistencyProof {
            from,
            to,
            hashes: hashes.iter().map(b64).collect(),
        })
    }
    .await;
    json_or_error(result)
}

/// A record's inclusion in the newest checkpoint, as the record page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordProof {
    pub tree_size: u64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
    pub checkpoint: String,
    /// The C2SP tlog-proof file, for `verdict verify-proof`.
    pub download_url: String,
}

/// The proof of entry `seq` against the newest checkpoint, or `None` while the tree does not
/// cover it yet.
pub async fn record_proof(
    pool: &PgPool,
    account: &str,
    seq: u64,
) -> Result<Option<(RecordProof, Vec<u8>)>, WebError> {
    let Some(latest) = tree::latest_checkpoint(pool, account).await? else {
        return Ok(None);
    };
    if seq >= latest.tree_size {
        return Ok(None);
    }
    let mut conn = pool.acquire().await?;
    let entry = store::entry_at(&mut *conn, account, seq)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("log {account:?} has no entry {seq}")))?;
    let (leaf, hashes) =
        tree::inclusion_proof(&mut conn, latest.log_id, seq, latest.tree_size).await?;
    let encoding = entry.fields(account).encode();
    let proof = RecordProof {
        tree_size: latest.tree_size,
        leaf_hash: b64(&leaf),
        hashes: hashes.iter().map(b64).collect(),
        checkpoint: latest.note,
        download_url: format!("/records/{account}/{seq}/proof"),
    };
    Ok(Some((proof, encoding)))
}

/// The C2SP tlog-proof text of a record. Its `extra` line carries the entry's hashed
/// encoding (docs/log-format.md), from which the leaf is recomputed.
pub fn tlog_proof_text(seq: u64, proof: &RecordProof, encoding: &[u8]) -> String {
    let mut out = format!(
        "c2sp.org/tlog-proof@v1\nextra {}\nindex {seq}\n",
        B64.encode(encoding)
    );
    for h in &proof.hashes {
        out.push_str(h);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&proof.checkpoint);
    out
}

pub async fn record_proof_file(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
) -> Response {
    let result = async {
        // Same visibility as the record page.
        let page = super::records::record(&s.pool, &account, &seq, &viewer).await?;
        let seq = page.seq as u64;
        record_proof(&s.pool, &account, seq).await?.ok_or_else(|| {
            WebError::NotFound(format!(
                "entry {seq} of {account:?} is not in a signed checkpoint yet; try again in a second"
            ))
        }).map(|(proof, encoding)| (seq, tlog_proof_text(seq, &proof, &encoding)))
    }
    .await;
    match result {
        Ok((seq, body)) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{account}-{seq}.tlog-proof\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => super::pages::error_page(&viewer, e),
    }
}
