//! Acknowledging a finding: a person with operator access adds a note. The acknowledgement
//! is appended to the log as a `verdict-ack` entry, hash-chained like everything else; the
//! finding itself is never edited.

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::WebState;
use super::access::Viewer;
use super::error::WebError;
use crate::log::NewEntry;
use crate::log::entry::{KIND_ACK, body_hash};
use crate::projections::findings::{AckBody, FindingRepository};

/// Longest note kept (a paragraph or two; the log is not a document store).
pub const MAX_NOTE: usize = 4000;

/// What the form and the API send.
#[derive(Debug, Deserialize)]
pub struct AckRequest {
    pub by: String,
    pub note: String,
}

/// The acknowledgement's own record.
#[derive(Debug, Serialize)]
pub struct AckReceipt {
    pub account: String,
    pub seq: i64,
    pub record_url: String,
}

/// Appends an acknowledgement of the finding at `account`/`seq`; answers once it is durable.
pub async fn acknowledge(
    state: &WebState,
    viewer: Viewer,
    account: &str,
    seq: &str,
    request: AckRequest,
) -> Result<AckReceipt, WebError> {
    if !viewer.operator {
        return Err(WebError::Forbidden(if state.operator.is_some() {
            "acknowledging a finding needs operator access: sign in at /operator or send the \
             VERDICT_ADMIN_TOKEN as a bearer token"
                .into()
        } else {
            "acknowledging findings needs an operator: start verdict with VERDICT_ADMIN_TOKEN set"
                .into()
        }));
    }
    let by = request.by.trim();
    let note = request.note.trim();
    if by.is_empty() || by.chars().count() > 100 {
        return Err(WebError::BadRequest(
            "say who acknowledges the finding: `by` must be a name of 1 to 100 characters".into(),
        ));
    }
    if note.is_empty() || note.chars().count() > MAX_NOTE {
        return Err(WebError::BadRequest(format!(
            "the note must say why the finding is acknowledged, in 1 to {MAX_NOTE} characters"
        )));
    }
    let finding_seq: i64 = seq.parse().map_err(|_| {
        WebError::BadRequest(format!(
            "{seq:?} is not a log position; use the finding's number"
        ))
    })?;
    let finding = sqlx::query(
        "SELECT f.repo, f.repo_private FROM findings f JOIN logs l ON l.id = f.log_id
          WHERE l.name = $1 AND f.seq = $2",
    )
    .bind(account)
    .bind(finding_seq)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| {
        WebError::NotFound(format!(
            "there is no finding at {account}/{seq}; the findings page links each one"
        ))
    })?;
    let body = AckBody {
        finding_seq,
        by: by.to_string(),
        note: note.to_string(),
        repository: FindingRepository {
            full_name: finding.get("repo"),
            private: finding.get("repo_private"),
        },
    };
    let bytes = serde_json::to_vec(&body).expect("an acknowledgement serializes");
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| {
        WebError::BadRequest(format!("no randomness for an entry id ({e}); try again"))
    })?;
    let outcome = state
        .sequencer
        .append(NewEntry {
            log_name: account.to_string(),
            kind: KIND_ACK.into(),
            received_at: Utc::now(),
            delivery_id: format!("ack:{account}:{finding_seq}:{}", hex::encode(nonce)),
            event: "acknowledged".into(),
            hook_id: None,
            installation_target_type: None,
            installation_target_id: None,
            signature: None,
            body_sha256: body_hash(&bytes),
            body: Bytes::from(bytes),
            body_readable: true,
        })
        .await
        .map_err(|e| {
            WebError::Database(sqlx::Error::Protocol(format!(
                "the acknowledgement was not stored ({e}); send it again"
            )))
        })?;
    let seq = outcome.position().1 as i64;
    Ok(AckReceipt {
        account: account.to_string(),
        seq,
        record_url: format!("/records/{account}/{seq}"),
    })
}
