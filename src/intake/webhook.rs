//! `POST /webhooks/github`: verify, inspect, append, and acknowledge only once durable.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use super::account;
use super::signature::{SignatureError, WebhookSecrets};
use crate::log::entry::{KIND_GITHUB_DELIVERY, body_hash};
use crate::log::{AppendError, AppendOutcome, NewEntry, Sequencer};

/// GitHub caps webhook payloads at 25 MB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// What the webhook endpoint needs.
#[derive(Clone)]
pub struct IntakeState {
    pub secrets: WebhookSecrets,
    pub sequencer: Sequencer,
}

/// A refused delivery: status plus the one-line reason the sender sees.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("payload larger than GitHub's 25 MB cap")]
    TooLarge,
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing {0} header: this endpoint only accepts GitHub webhook deliveries")]
    MissingHeader(&'static str),
    #[error("invalid {0} header: {1}")]
    BadHeader(&'static str, &'static str),
    #[error(transparent)]
    Unavailable(#[from] AppendError),
}

impl IntakeError {
    fn status(&self) -> StatusCode {
        match self {
            IntakeError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::BadBody(_) => StatusCode::BAD_REQUEST,
            IntakeError::Signature(_) => StatusCode::UNAUTHORIZED,
            IntakeError::MissingHeader(_) | IntakeError::BadHeader(..) => StatusCode::BAD_REQUEST,
            IntakeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "delivery not stored");
        } else {
            tracing::info!(error = %self, "delivery refused");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

/// The acknowledgement: where the delivery now is in the log.
#[derive(Debug, Serialize)]
pub struct Receipt {
    pub log: String,
    pub seq: u64,
    /// Hex SHA-256 entry hash; absent for a duplicate or a replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_hash: Option<String>,
    pub duplicate: bool,
    /// The entry whose body this delivery repeats under another delivery id: nothing was
    /// stored, and nothing is derived from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<Position>,
}

/// A log position.
#[derive(Debug, Serialize)]
pub struct Position {
    pub log: String,
    pub seq: u64,
}

/// The webhook handler.
pub async fn receive(
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let received_at = now_micros();
    let body = read_body(&headers, body).await?;
    let signature = header_str(&headers, "X-Hub-Signature-256")?;
    state.secrets.verify(signature, &body)?;

    let event = required(&headers, "X-GitHub-Event")?;
    let delivery_id = required(&headers, "X-GitHub-Delivery")?;
    if !is_token(event) {
        return Err(IntakeError::BadHeader(
            "X-GitHub-Event",
            "not an event name",
        ));
    }
    if delivery_id.len() > 128 || !is_token(delivery_id) {
        return Err(IntakeError::BadHeader(
            "X-GitHub-Delivery",
            "expected a GUID of at most 128 letters, digits and hyphens",
        ));
    }

    let inspection = account::inspect(&body);
    if !inspection.readable {
        tracing::warn!(
            delivery = delivery_id,
            event,
            "signed body is not readable JSON; stored and flagged"
        );
    }
    let entry = NewEntry {
        log_name: inspection.log_name,
        kind: KIND_GITHUB_DELIVERY.to_string(),
        received_at,
        delivery_id: delivery_id.to_string(),
        event: event.to_string(),
        hook_id: optional(&headers, "X-GitHub-Hook-ID")?,
        installation_target_type: optional(&headers, "X-GitHub-Hook-Installation-Target-Type")?,
        installation_target_id: optional(&headers, "X-GitHub-Hook-Installation-Target-ID")?,
        signature: signature.map(str::to_string),
        body_sha256: body_hash(&body),
        body,
        body_readable: inspection.readable,
    };
    let receipt = match state.sequencer.append(entry).await? {
        AppendOutcome::Appended {
            log_name,
            seq,
            entry_hash,
        } => (
            StatusCode::CREATED,
            Receipt {
                log: log_name,
                seq,
                entry_hash: Some(hex::encode(entry_hash)),
                duplicate: false,
                replay_of: None,
            },
        ),
        AppendOutcome::Duplicate { log_name, seq } => (
            StatusCode::OK,
            Receipt {
                log: log_name,
                seq,
                entry_hash: None,
                duplicate: true,
                replay_of: None,
            },
        ),
        AppendOutcome::Replay { log_name, seq } => {
            tracing::warn!(delivery = %delivery_id, event, log = %log_name, original = seq,
                "replayed body under a new delivery id: not stored");
            (
                StatusCode::OK,
                Receipt {
                    log: log_name.clone(),
                    seq,
                    entry_hash: None,
                    duplicate: false,
                    replay_of: Some(Position { log: log_name, seq }),
                },
            )
        }
    };
    Ok((receipt.0, Json(receipt.1)).into_response())
}

/// The receive time at the precision PostgreSQL stores, so the hash computed now is the hash
/// recomputed later from the stored value.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, IntakeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(IntakeError::TooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(IntakeError::TooLarge),
        Err(err) => Err(IntakeError::BadBody(err.to_string())),
    }
}

fn header_str<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, IntakeError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
            .map_err(|_| IntakeError::BadHeader(name, "not visible ASCII")),
    }
}

fn required<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, IntakeError> {
    header_str(headers, name)?.ok_or(IntakeError::MissingHeader(name))
}

fn optional(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, IntakeError> {
    Ok(header_str(headers, name)?.map(str::to_string))
}

/// Event names and delivery GUIDs: letters, digits, `-`, `_`, `.`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
