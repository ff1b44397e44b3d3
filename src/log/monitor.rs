//! `verdict monitor`: what a witness does. Given a checkpoint saved earlier, fetch the
//! server's current one and prove, with a consistency proof, that the current tree extends
//! the saved one: nothing in the saved log was changed or removed since.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::checkpoint::{Checkpoint, NoteError, NoteVerifier, peek_origin};
use super::merkle::{ProofError, verify_consistency};

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
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Observation {
    pub account: String,
    pub saved: Checkpoint,
    pub current: Checkpoint,
    /// The current checkpoint note, to save for the next check.
    pub current_note: String,
}

#[derive(Deserialize)]
struct ConsistencyJson {
    hashes: Vec<String>,
}

async fn get(client: &reqwest::Client, url: String) -> Result<String, MonitorError> {
    let r = client
        .get(&url)
        .send()
        .await
        .map_err(|source| MonitorError::Fetch {
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

/// Checks that the server at `base` still extends the `saved` checkpoint note, trusting
/// `key` (or, without it, the key the server publishes, which only detects changes made
/// without changing the key).
pub async fn observe(
    base: &str,
    saved: &str,
    key: Option<&str>,
) -> Result<(Observation, bool), MonitorError> {
    let client = reqwest::Client::new();
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
    let new = verifier
        .open_checkpoint(&current_note)
        .map_err(MonitorError::Current)?;
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
    let hashes = proof
        .hashes
        .iter()
        .map(|h| B64.decode(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MonitorError::MalformedProof(e.to_string()))?;
    verify_consistency(old.size, new.size, &hashes, &old.root, &new.root)
        .map_err(MonitorError::Inconsistent)?;
    Ok((
        Observation {
            account,
            saved: old,
            current: new,
            current_note,
        },
        key_from_server,
    ))
}
