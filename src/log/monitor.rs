//! `verdict monitor`: what a witness does. Given a checkpoint saved earlier, fetch the
//! server's current one and prove, with a consistency proof, that the current tree extends
//! the saved one: nothing in the saved log was changed or removed since.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::checkpoint::{Checkpoint, NoteError, NoteVerifier, peek_origin};
use super::entry::EntryFields;
use super::keys;
use super::merkle::{self, ProofError, verify_consistency};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the saved checkpoint: {0}")]
    Saved(NoteError),
    #[error("the server's checkpoint: {0}")]
    Current(NoteError),
    #[error("cannot reach {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the log shrank from {old} to {new} entries: entries were removed")]
    Shrunk { old: u64, new: u64 },
    #[error("the server's tree does not extend the saved one: {0}")]
    Inconsistent(ProofError),
    #[error("the saved checkpoint has no origin line")]
    NoOrigin,
    #[error("the server sent a malformed proof: {0}")]
    MalformedProof(String),
    #[error("the log's key rotations: {0}")]
    Rotations(NoteError),
    #[error(
        "entry {seq}, the newest the server's checkpoint covers, is not the entry it signed: \
         {reason}"
    )]
    NewestEntry { seq: u64, reason: String },
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Observation {
    pub account: String,
    pub saved: Checkpoint,
    pub current: Checkpoint,
    /// The current checkpoint note, to save for the next check.
    pub current_note: String,
    /// When the log's key was rotated since: the verifier key now to trust.
    pub rotated_to: Option<String>,
}

#[derive(Deserialize)]
struct ConsistencyJson {
    hashes: Vec<String>,
}

#[derive(Deserialize)]
struct InclusionJson {
    leaf_hash: String,
    hashes: Vec<String>,
}

/// The hashed fields of a record, as `/api/records/ACCOUNT/SEQ` shows them.
#[derive(Deserialize)]
struct RecordJson {
    seq: u64,
    kind: String,
    received_at: chrono::DateTime<chrono::Utc>,
    delivery_id: String,
    event: String,
    hook_id: Option<String>,
    installation_target_type: Option<String>,
    installation_target_id: Option<String>,
    signature: Option<String>,
    body_sha256: String,
    prev_hash: String,
}

/// Who is asking: an operator's admin token (`--token`) sees logs of private repositories too.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    token: Option<String>,
}

async fn get(client: &Client, url: String) -> Result<String, MonitorError> {
    let mut request = client.http.get(&url);
    if let Some(token) = &client.token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.map_err(|source| MonitorError::Fetch {
        url: url.clone(),
        source,
    })?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|source| MonitorError::Fetch {
        url: url.clone(),
        source,
    })?;
    if status != 200 {
        return Err(MonitorError::Status {
            url,
            status,
            body: body.trim().to_string(),
        });
    }
    Ok(body)
}

/// The account a checkpoint's origin (`<key name>/<account>`) names.
pub fn account_of(origin: &str) -> &str {
    origin.rsplit('/').next().unwrap_or(origin)
}

fn decode_all(hashes: &[String]) -> Result<Vec<Vec<u8>>, MonitorError> {
    hashes
        .iter()
        .map(|h| B64.decode(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MonitorError::MalformedProof(e.to_string()))
}

/// Checks that the server at `base` still extends the `saved` checkpoint note, trusting
/// `key` (or, without it, the key the server publishes, which only detects changes made
/// without changing the key) and the rotations the log records from it; and that the newest
/// entry the current checkpoint covers is still the one it signed. `token` is sent as a
/// bearer token (an operator's, for logs of private repositories).
pub async fn observe(
    base: &str,
    saved: &str,
    key: Option<&str>,
    token: Option<&str>,
) -> Result<(Observation, bool), MonitorError> {
    let client = Client {
        http: reqwest::Client::new(),
        token: token.map(str::to_string),
    };
    let base = base.trim_end_matches('/');
    let origin = peek_origin(saved).ok_or(MonitorError::NoOrigin)?;
    let account = account_of(origin).to_string();
    let (key, key_from_server) = match key {
        Some(k) => (k.trim().to_string(), false),
        None => (
            get(&client, format!("{base}/api/logs/{account}/key"))
                .await?
                .trim()
                .to_string(),
            true,
        ),
    };
    let verifier = NoteVerifier::parse(&key).map_err(MonitorError::Saved)?;
    let old = verifier
        .open_checkpoint(saved)
        .map_err(MonitorError::Saved)?;
    let current_note = get(&client, format!("{base}/api/logs/{account}/checkpoint")).await?;
    // Signed by the trusted key, or by a key it handed over to (each handover signed by
    // both keys, in the log).
    let (new, rotated_to) = match verifier.open_checkpoint(&current_note) {
        Ok(c) => (c, None),
        Err(first) => {
            let text = get(&client, format!("{base}/api/logs/{account}/key-rotations")).await?;
            let rotations = keys::parse_concatenated(&text).map_err(MonitorError::Rotations)?;
            let (_, followed) = keys::follow(&verifier, &rotations);
            let opened = followed
                .iter()
                .rev()
                .map(|r| &r.new)
                .chain(std::iter::once(&verifier))
                .find_map(|k| k.open_checkpoint(&current_note).ok())
                .ok_or(MonitorError::Current(first))?;
            let rotated = followed.last().and_then(|r| key_text(&r.new, &r.note));
            (opened, rotated)
        }
    };
    if new.size < old.size {
        return Err(MonitorError::Shrunk {
            old: old.size,
            new: new.size,
        });
    }
    let proof: ConsistencyJson = serde_json::from_str(
        &get(
            &client,
            format!(
                "{base}/api/logs/{account}/proof/consistency?from={}&to={}",
                old.size, new.size
            ),
        )
        .await?,
    )
    .map_err(|e| MonitorError::MalformedProof(e.to_string()))?;
    let hashes = decode_all(&proof.hashes)?;
    verify_consistency(old.size, new.size, &hashes, &old.root, &new.root)
        .map_err(MonitorError::Inconsistent)?;
    if new.size > 0 {
        newest_entry(&client, base, &account, &new).await?;
    }
    Ok((
        Observation {
            account,
            saved: old,
            current: new,
            current_note,
            rotated_to,
        },
        key_from_server,
    ))
}

/// The verifier key text a rotation note names as the new key.
fn key_text(new: &NoteVerifier, note: &str) -> Option<String> {
    note.lines()
        .filter_map(|l| l.strip_prefix("new "))
        .find(|k| NoteVerifier::parse(k).is_ok_and(|v| v == *new))
        .map(str::to_string)
}

/// Checks that entry `size - 1` as the server shows it now (its hashed fields, rehashed
/// here) is the leaf the checkpoint signed: a log truncated behind an intact checkpoint, or
/// truncated and grown again, fails.
async fn newest_entry(
    client: &Client,
    base: &str,
    account: &str,
    checkpoint: &Checkpoint,
) -> Result<(), MonitorError> {
    let seq = checkpoint.size - 1;
    let bad = |reason: String| MonitorError::NewestEntry { seq, reason };
    let record: RecordJson = serde_json::from_str(
        &get(client, format!("{base}/api/records/{account}/{seq}"))
            .await
            .map_err(|e| bad(format!("the server cannot show it ({e})")))?,
    )
    .map_err(|e| bad(format!("its record is malformed ({e})")))?;
    let hash = |h: &str| {
        hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("a hash in its record is not 64 hex digits".into()))
    };
    if record.seq != seq {
        return Err(bad(format!(
            "the server showed entry {} instead",
            record.seq
        )));
    }
    let entry_hash = EntryFields {
        log_name: account,
        seq,
        prev_hash: hash(&record.prev_hash)?,
        received_at: record.received_at,
        kind: &record.kind,
        delivery_id: &record.delivery_id,
        event: &record.event,
        hook_id: record.hook_id.as_deref(),
        installation_target_type: record.installation_target_type.as_deref(),
        installation_target_id: record.installation_target_id.as_deref(),
        signature: record.signature.as_deref(),
        body_sha256: hash(&record.body_sha256)?,
    }
    .entry_hash();
    let proof: InclusionJson = serde_json::from_str(
        &get(
            client,
            format!(
                "{base}/api/logs/{account}/proof/inclusion?index={seq}&size={}",
                checkpoint.size
            ),
        )
        .await?,
    )
    .map_err(|e| MonitorError::MalformedProof(e.to_string()))?;
    let leaf = merkle::leaf_hash(&entry_hash);
    let served = B64
        .decode(&proof.leaf_hash)
        .map_err(|e| MonitorError::MalformedProof(e.to_string()))?;
    if served != leaf {
        return Err(bad(
            "its fields hash to another leaf than the server's tree holds".into(),
        ));
    }
    merkle::verify_inclusion(
        seq,
        checkpoint.size,
        &leaf,
        &decode_all(&proof.hashes)?,
        &checkpoint.root,
    )
    .map_err(|e| bad(format!("it is not included in the signed tree ({e})")))
}
