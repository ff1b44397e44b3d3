//! `POST /webhooks/github`: verify, inspect, append, and acknowledge only once durable.
//!
//! The endpoint faces the internet, so what a request may cost is bounded before any of its
//! body is read: the headers must name an event and a delivery and carry a well-formed
//! signature, and declare the body's length; the body's bytes are reserved from a budget
//! shared by every delivery in flight (small ones apart from large, so a flood of large
//! bodies never starves GitHub's ordinary ones), read within a time limit, and fed to the
//! HMAC as they arrive. Nothing is stored unless every check passes.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::account;
use super::signature::{BodyCheck, SignatureError, WebhookSecrets, expected_digest};
use crate::log::entry::KIND_GITHUB_DELIVERY;
use crate::log::{AppendError, AppendOutcome, NewEntry, Sequencer};

/// GitHub caps webhook payloads at 25 MB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
/// Bodies up to this size (nearly all of GitHub's) are reserved from the small pool.
pub const SMALL_BODY_BYTES: usize = 1024 * 1024;
/// Bytes of small bodies in flight at once.
pub const SMALL_POOL_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of large bodies in flight at once: room for five of the largest GitHub sends.
pub const LARGE_POOL_BYTES: usize = 128 * 1024 * 1024;
/// How long a delivery waits for room in its pool before it is answered 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// What the webhook endpoint needs.
#[derive(Clone)]
pub struct IntakeState {
    pub secrets: WebhookSecrets,
    pub sequencer: Sequencer,
    /// Bytes of webhook bodies in flight.
    pub budget: BodyBudget,
    /// Time to send a whole body once the headers arrived.
    pub body_timeout: Duration,
    /// Counts outcomes and the time to commit.
    pub metrics: Arc<crate::ops::metrics::Metrics>,
}

/// The bytes webhook bodies may hold in memory at once, in two pools.
#[derive(Clone)]
pub struct BodyBudget {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget::new(SMALL_POOL_BYTES, LARGE_POOL_BYTES)
    }
}

impl BodyBudget {
    pub fn new(small_pool: usize, large_pool: usize) -> BodyBudget {
        BodyBudget {
            small: Arc::new(Semaphore::new(small_pool)),
            large: Arc::new(Semaphore::new(large_pool)),
        }
    }

    /// Room for a body of `length` bytes until the permit is dropped, or `Busy` if none
    /// frees up within [`BUDGET_WAIT`].
    pub async fn reserve(&self, length: usize) -> Result<OwnedSemaphorePermit, IntakeError> {
        let pool = if length <= SMALL_BODY_BYTES {
            &self.small
        } else {
            &self.large
        };
        let bytes = u32::try_from(length).map_err(|_| IntakeError::TooLarge)?;
        match tokio::time::timeout(BUDGET_WAIT, pool.clone().acquire_many_owned(bytes)).await {
            Ok(Ok(permit)) => Ok(permit),
            // A pool smaller than the body (a misconfiguration) or a closed pool.
            Ok(Err(_)) | Err(_) => Err(IntakeError::Busy),
        }
    }
}

/// A refused delivery: status plus the one-line reason the sender sees.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("payload larger than GitHub's 25 MB cap")]
    TooLarge,
    #[error("send the body's length in Content-Length, as GitHub does")]
    LengthRequired,
    #[error("the body did not arrive within {0} seconds")]
    SlowBody(u64),
    #[error("too many large deliveries in flight; retry shortly")]
    Busy,
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
    /// The `outcome` label of `verdict_deliveries_total`.
    fn outcome(&self) -> &'static str {
        match self {
            IntakeError::TooLarge => "too_large",
            IntakeError::LengthRequired => "length_required",
            IntakeError::SlowBody(_) => "slow_body",
            IntakeError::Busy => "busy",
            IntakeError::BadBody(_) => "bad_body",
            IntakeError::Signature(_) => "bad_signature",
            IntakeError::MissingHeader(_) | IntakeError::BadHeader(..) => "bad_header",
            IntakeError::Unavailable(_) => "unavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            IntakeError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            IntakeError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            IntakeError::Busy => StatusCode::SERVICE_UNAVAILABLE,
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
        // Refusals of what a client sent are the client's business, and an attacker can send
        // thousands a second: only the database being down is worth a warning.
        if matches!(self, IntakeError::Unavailable(_)) {
            tracing::warn!(error = %self, "delivery not stored");
        } else {
            tracing::debug!(error = %self, "delivery refused");
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

/// The webhook handler: answers, and counts the outcome.
pub async fn receive(
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let started = std::time::Instant::now();
    let metrics = state.metrics.clone();
    match store(state, headers, body).await {
        Ok((outcome, response)) => {
            metrics.delivery(outcome);
            if outcome == "stored" {
                metrics.appended(started.elapsed());
            }
            Ok(response)
        }
        Err(err) => {
            metrics.delivery(err.outcome());
            Err(err)
        }
    }
}

/// Verifies, inspects and appends one delivery; says which outcome it was.
async fn store(
    state: IntakeState,
    headers: HeaderMap,
    body: Body,
) -> Result<(&'static str, Response), IntakeError> {
    let received_at = now_micros();
    // Everything the headers can settle is settled before a byte of the body is read.
    let signature = header_str(&headers, "X-Hub-Signature-256")?;
    let expected = expected_digest(signature)?;
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
    let length = content_length(&headers)?;
    let _room = state.budget.reserve(length).await?;
    let mut check = state.secrets.check();
    let body = read_body(body, length, state.body_timeout, &mut check).await?;
    let body_sha256 = check.finish(&expected)?;

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
        body_sha256,
        body,
        body_readable: inspection.readable,
    };
    let receipt = match state.sequencer.append(entry).await? {
        AppendOutcome::Appended {
            log_name,
            seq,
            entry_hash,
        } => (
            "stored",
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
            "duplicate",
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
                "replay",
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
    Ok((receipt.0, (receipt.1, Json(receipt.2)).into_response()))
}

/// The receive time at the precision PostgreSQL stores, so the hash computed now is the hash
/// recomputed later from the stored value.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The declared body length: required (GitHub always sends it), and within GitHub's cap.
fn content_length(headers: &HeaderMap) -> Result<usize, IntakeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .ok_or(IntakeError::LengthRequired)?
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(IntakeError::BadHeader(
            "Content-Length",
            "not a whole number",
        ))?;
    if declared > MAX_BODY_BYTES as u64 {
        return Err(IntakeError::TooLarge);
    }
    Ok(declared as usize)
}

/// Reads exactly `length` bytes within `timeout`, feeding each chunk to `check` as it comes.
async fn read_body(
    body: Body,
    length: usize,
    timeout: Duration,
    check: &mut BodyCheck,
) -> Result<Bytes, IntakeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = body;
    let mut buf = BytesMut::with_capacity(length);
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| IntakeError::SlowBody(timeout.as_secs()))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| IntakeError::BadBody(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > length {
                return Err(IntakeError::BadBody(
                    "the body is longer than its Content-Length".into(),
                ));
            }
            check.update(&data);
            buf.extend_from_slice(&data);
        }
    }
    if buf.len() != length {
        return Err(IntakeError::BadBody(
            "the body is shorter than its Content-Length".into(),
        ));
    }
    Ok(buf.freeze())
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
