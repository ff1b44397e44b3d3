//! One log entry: its page (`/records/A/N`), its JSON, and its exact bytes
//! (`/records/A/N/body`). A delivery's page shows the decision records it yields; an entry
//! verdict wrote (a finding, an acknowledgement, a withdrawal, a reconciliation, a key
//! rotation) shows what it says in words. Every entry shows its place in the log and its proof.

pub mod written;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::WebState;
use super::access::Viewer;
use super::error::WebError;
use super::history::{DECISION_COLUMNS, DecisionView};
use crate::log::entry::{GENESIS_PREV_HASH, body_hash};
use crate::log::store;
pub use written::Written;

#[derive(Template)]
#[template(path = "record.html")]
struct RecordHtml {
    viewer: Viewer,
    api_url: String,
    page: RecordPage,
}

/// `/records/{account}/{seq}`.
pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((account, seq)): Path<(String, String)>,
) -> Response {
    let page = record(&s.pool, &account, &seq, &viewer).await;
    super::pages::respond(
        &viewer,
        page.map(|page| RecordHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page,
        }),
    )
}

/// `/api/records/{account}/{seq}`.
pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
) -> Response {
    super::api::json(record(&s.pool, &account, &seq, &viewer).await)
}

/// `/records/{account}/{seq}/body`: the stored body byte for byte, as a file, with its
/// SHA-256 in `Repr-Digest` (RFC 9530) so a download can be checked against `body_sha256`.
pub async fn body(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
) -> Response {
    let result = async {
        let (seq, _) = parse_seq(&seq)?;
        let mut conn = s.pool.acquire().await?;
        let entry = visible_entry(&mut conn, &s.pool, &account, seq, &viewer).await?;
        Ok::<_, WebError>(entry)
    }
    .await;
    match result {
        Ok(entry) if entry.redacted => super::pages::error_page(
            &viewer,
            WebError::Gone(format!(
                "the body of entry {} of {account} was redacted: its SHA-256 is kept in the entry, the bytes are gone; the record page says by whom and why",
                entry.seq
            )),
        ),
        Ok(entry) => {
            let json = serde_json::from_slice::<serde::de::IgnoredAny>(&entry.body).is_ok();
            let file = format!(
                "{account}-{}.{}",
                entry.seq,
                if json { "json" } else { "bin" }
            );
            let digest = format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode(&entry.body_sha256)
            );
            let mut response = (StatusCode::OK, entry.body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&digest) {
                headers.insert("repr-digest", v);
            }
            response
        }
        Err(err) => super::pages::error_page(&viewer, err),
    }
}

/// What the record page says about an erased body.
#[derive(Debug, Clone, Serialize)]
pub struct RedactionNote {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    /// Fields replaced in the redacted copy; empty: the whole body is gone.
    pub fields: Vec<String>,
    /// Whether a copy stands in the body's place (the redacted fields', or for a whole body
    /// its skeleton).
    pub copy_kept: bool,
    /// The redaction entry's permalink.
    pub record_url: String,
    /// Whether the redaction entry names the erased body's SHA-256 as the entry stores it
    /// (otherwise the missing body is not accounted for: tampering).
    #[serde(skip)]
    pub names_body_hash: bool,
}

/// The latest redaction entry naming entry `seq` (an entry redacted in part may be redacted
/// again, whole).
async fn redaction_note(
    pool: &PgPool,
    account: &str,
    seq: i64,
    body_sha256: &[u8],
) -> Result<Option<RedactionNote>, WebError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.seq, e.body FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE l.name = $1 AND e.kind = $2 AND e.body IS NOT NULL
            AND (convert_from(e.body, 'UTF8')::jsonb ->> 'target_seq' = $3::text
                 OR (convert_from(e.body, 'UTF8')::jsonb -> 'targets')
                    @> jsonb_build_array(jsonb_build_object('seq', $3::bigint)))
          ORDER BY e.seq DESC LIMIT 1",
    )
    .bind(account)
    .bind(crate::log::entry::KIND_REDACTION)
    .bind(seq)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(at_seq, body)| {
        let r = crate::log::redaction::RedactionBody::parse(&body)?;
        let copy_kept = r
            .copies()
            .iter()
            .any(|(s, copy)| *s == seq as u64 && copy.is_some());
        let names_body_hash = r
            .erased()
            .iter()
            .any(|(s, sha)| *s == seq as u64 && *sha == hex::encode(body_sha256));
        Some(RedactionNote {
            at: r.at,
            by: r.by,
            reason: r.reason,
            copy_kept,
            fields: r.fields,
            record_url: format!("/records/{account}/{at_seq}"),
            names_body_hash,
        })
    }))
}

/// A log position from the path, or a 400 saying what one is.
fn parse_seq(raw: &str) -> Result<(i64, u64), WebError> {
    let seq: u64 = raw.parse().map_err(|_| {
        WebError::BadRequest(format!(
            "{raw:?} is not a log position; positions are whole numbers from 0"
        ))
    })?;
    if seq > i64::MAX as u64 {
        return Err(WebError::BadRequest(format!("{seq} is beyond any log")));
    }
    Ok((seq as i64, seq))
}

/// The entry at `account`/`seq` if the viewer may see it; 404 otherwise (the same answer as
/// for an entry that does not exist, so private entries are not confirmed).
async fn visible_entry(
    conn: &mut sqlx::PgConnection,
    pool: &PgPool,
    account: &str,
    seq: i64,
    viewer: &Viewer,
) -> Result<store::StoredEntry, WebError> {
    let not_found = || {
        WebError::NotFound(format!(
            "log {account:?} has no entry {seq}{}",
            viewer.not_found_hint()
        ))
    };
    let entry = store::entry_at(&mut *conn, account, seq as u64)
        .await?
        .ok_or_else(not_found)?;
    let log_id: i64 = sqlx::query_scalar("SELECT id FROM logs WHERE name = $1")
        .bind(account)
        .fetch_one(&mut *conn)
        .await?;
    let audience = audience_of(pool, account, &entry).await?;
    if !viewer.may_see_entry(pool, log_id, &audience).await? {
        return Err(not_found());
    }
    Ok(entry)
}

/// Who may see `entry`: by its body, or for a redacted entry by its redacted copy or by the
/// repository its redaction entry names (the erasure changes nobody's view).
pub async fn audience_of(
    pool: &PgPool,
    account: &str,
    entry: &store::StoredEntry,
) -> Result<super::access::Audience, WebError> {
    let hook = entry.hook_id.as_deref();
    if !entry.redacted {
        return Ok(super::access::entry_audience(
            &entry.kind,
            hook,
            &entry.body,
        ));
    }
    if let Some(copy) = &entry.copy {
        return Ok(super::access::entry_audience(&entry.kind, hook, copy));
    }
    let redaction: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT e.body FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE l.name = $1 AND e.kind = $2 AND e.body IS NOT NULL
            AND (convert_from(e.body, 'UTF8')::jsonb ->> 'target_seq' = $3::text
                 OR (convert_from(e.body, 'UTF8')::jsonb -> 'targets')
                    @> jsonb_build_array(jsonb_build_object('seq', $3::bigint)))
          ORDER BY e.seq DESC LIMIT 1",
    )
    .bind(account)
    .bind(crate::log::entry::KIND_REDACTION)
    .bind(entry.seq as i64)
    .fetch_optional(pool)
    .await?;
    Ok(match (entry.kind.as_str(), redaction) {
        (crate::log::entry::KIND_GITHUB_API, _) => {
            super::access::entry_audience(&entry.kind, hook, &[])
        }
        (_, Some(body)) => {
            super::access::entry_audience(crate::log::entry::KIND_REDACTION, None, &body)
        }
        (_, None) => super::access::Audience::Operators,
    })
}

/// How far the chain is known to verify, as the projector found reading the log.
#[derive(Debug, Clone, Serialize)]
pub struct ChainStatus {
    /// Entries 0..verified_size form an unbroken chain.
    pub verified_size: i64,
    /// The first problem found, if any.
    pub problem: Option<String>,
    /// This entry is inside the verified prefix.
    pub covers_this_entry: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordPage {
    pub account: String,
    pub seq: i64,
    pub log_size: i64,
    pub kind: String,
    pub event: String,
    pub delivery_id: String,
    pub hook_id: Option<String>,
    pub installation_target_type: Option<String>,
    pub installation_target_id: Option<String>,
    pub signature: Option<String>,
    pub received_at: DateTime<Utc>,
    pub body_sha256: String,
    pub prev_hash: String,
    pub entry_hash: String,
    /// The entry hash recomputed from the stored fields and body just now.
    pub recomputed_entry_hash: String,
    /// The body hashes to `body_sha256` and the fields to `entry_hash`.
    pub entry_intact: bool,
    /// `prev_hash` is the stored hash of the entry before (or zeros for entry 0).
    pub links_to_previous: bool,
    pub chain: ChainStatus,
    pub body_readable: bool,
    pub body_bytes: usize,
    /// The delivery's body exactly as GitHub sent it (lossless when `body_readable`).
    pub body: String,
    pub decisions: Vec<DecisionView>,
    /// What an entry verdict wrote says, in words (absent for GitHub's deliveries and API
    /// objects, whose meaning is in `decisions`).
    pub written: Option<Written>,
    /// The stored body, byte for byte, as a download.
    pub body_url: String,
    /// When the body was erased: by whom, when, why, and the redaction entry.
    pub redaction: Option<RedactionNote>,
    /// Inclusion in the newest signed checkpoint (absent for a moment after the entry lands).
    pub proof: Option<super::proofs::RecordProof>,
}

impl RecordPage {
    /// An object read from GitHub's API by a backfill, not a delivery: its fields mean the
    /// request URL and GitHub's `Date` (docs/log-format.md).
    pub fn from_api(&self) -> bool {
        self.kind == crate::log::entry::KIND_GITHUB_API
    }
    /// A webhook delivery: its body is GitHub's, byte for byte.
    pub fn from_github_delivery(&self) -> bool {
        self.kind == crate::log::entry::KIND_GITHUB_DELIVERY
    }
    pub fn body_pretty(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| self.body.clone())
    }
    pub fn previous_url(&self) -> Option<String> {
        (self.seq > 0).then(|| format!("/records/{}/{}", self.account, self.seq - 1))
    }
    pub fn next_url(&self) -> Option<String> {
        (self.seq + 1 < self.log_size)
            .then(|| format!("/records/{}/{}", self.account, self.seq + 1))
    }
}

pub async fn record(
    pool: &PgPool,
    account: &str,
    seq: &str,
    viewer: &Viewer,
) -> Result<RecordPage, WebError> {
    let (_, seq) = parse_seq(seq)?;
    let mut conn = pool.acquire().await?;
    let entry = visible_entry(&mut conn, pool, account, seq as i64, viewer).await?;
    let decisions: Vec<DecisionView> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{DECISION_COLUMNS} FROM decisions d JOIN logs l ON l.id = d.log_id
          WHERE l.name = $1 AND d.seq = $2 ORDER BY d.ordinal"
    )))
    .bind(account)
    .bind(seq as i64)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(DecisionView::from_row)
    .filter(|d| viewer.may_see(Some(&d.repo)))
    .collect();
    let meta = sqlx::query(
        "SELECT (SELECT coalesce(max(seq) + 1, 0) FROM log_entries WHERE log_id = l.id) AS size,
                c.verified_size, c.chain_problem,
                (SELECT entry_hash FROM log_entries WHERE log_id = l.id AND seq = $2) AS prev
           FROM logs l LEFT JOIN projection_cursors c ON c.log_id = l.id WHERE l.name = $1",
    )
    .bind(account)
    .bind(seq as i64 - 1)
    .fetch_one(&mut *conn)
    .await?;
    let fields = entry.fields(account);
    let recomputed = fields.entry_hash();
    let redaction = if entry.redacted {
        redaction_note(pool, account, seq as i64, &entry.body_sha256).await?
    } else {
        None
    };
    // An erased body is accounted for by its redaction entry naming its hash.
    let body_intact = match (&redaction, entry.redacted) {
        (_, false) => body_hash(&entry.body)[..] == entry.body_sha256[..],
        (Some(note), true) => note.names_body_hash,
        (None, true) => false,
    };
    let entry_intact = recomputed[..] == entry.entry_hash[..] && body_intact;
    let expected_prev: Option<Vec<u8>> = if seq == 0 {
        Some(GENESIS_PREV_HASH.to_vec())
    } else {
        meta.get("prev")
    };
    let verified_size: i64 = meta.get::<Option<i64>, _>("verified_size").unwrap_or(0);
    Ok(RecordPage {
        account: account.to_string(),
        seq: seq as i64,
        log_size: meta.get("size"),
        kind: entry.kind.clone(),
        event: entry.event.clone(),
        delivery_id: entry.delivery_id.clone(),
        hook_id: entry.hook_id.clone(),
        installation_target_type: entry.installation_target_type.clone(),
        installation_target_id: entry.installation_target_id.clone(),
        signature: entry.signature.clone(),
        received_at: entry.received_at,
        body_sha256: hex::encode(&entry.body_sha256),
        prev_hash: hex::encode(&entry.prev_hash),
        entry_hash: hex::encode(&entry.entry_hash),
        recomputed_entry_hash: hex::encode(recomputed),
        entry_intact,
        links_to_previous: expected_prev.as_deref() == Some(&entry.prev_hash[..]),
        chain: ChainStatus {
            verified_size,
            problem: meta.get("chain_problem"),
            covers_this_entry: (seq as i64) < verified_size,
        },
        body_readable: entry.body_readable,
        body_bytes: entry.body.len(),
        body: String::from_utf8_lossy(entry.readable_body().unwrap_or_default()).into_owned(),
        redaction,
        written: written::read(pool, account, seq as i64, &entry.kind, &entry.body, viewer).await?,
        body_url: format!("/records/{account}/{seq}/body"),
        decisions,
        proof: super::proofs::record_proof(pool, account, seq)
            .await?
            .map(|(proof, _)| proof),
    })
}

/// What the redaction form and API send.
#[derive(Debug, serde::Deserialize)]
pub struct RedactRequest {
    pub reason: String,
    /// Who asks for it; defaults to the operator's GitHub login.
    #[serde(default)]
    pub by: Option<String>,
    /// Dotted JSON fields, comma-separated; empty: the whole body.
    #[serde(default)]
    pub fields: Option<String>,
    /// A whole-body redaction normally keeps the entry's skeleton, so its decision records
    /// stay with their texts `[redacted]`; `true` erases those records too.
    #[serde(default)]
    pub erase_records: bool,
}

/// Redacts entry `seq` of `account` for an operator (the record page's form and the API).
async fn redact_for(
    s: &WebState,
    viewer: &Viewer,
    account: &str,
    seq: &str,
    request: RedactRequest,
) -> Result<crate::log::redaction::Receipt, WebError> {
    if !viewer.is_operator() {
        return Err(WebError::Forbidden(
            "erasing a body is for operators: sign in at /operator, as an operator login, or \
             send VERDICT_ADMIN_TOKEN as a bearer token"
                .into(),
        ));
    }
    let (_, seq) = parse_seq(seq)?;
    let mut conn = s.pool.acquire().await?;
    visible_entry(&mut conn, &s.pool, account, seq as i64, viewer).await?;
    drop(conn);
    let by = match (request.by.as_deref().map(str::trim), viewer.login()) {
        (Some(by), _) if !by.is_empty() => by.to_string(),
        (_, Some(login)) => format!("@{login}"),
        _ => {
            return Err(WebError::BadRequest(
                "say who asks for the redaction: `by` (a name, 1 to 100 characters)".into(),
            ));
        }
    };
    let fields: Vec<String> = request
        .fields
        .unwrap_or_default()
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    if request.erase_records && !fields.is_empty() {
        return Err(WebError::BadRequest(
            "erasing the decision records goes with erasing the whole body: leave the fields \
             empty, or keep the records"
                .into(),
        ));
    }
    use crate::log::redaction::{RedactionError, Request, redact};
    redact(
        &s.pool,
        &Request {
            log: account.to_string(),
            seq,
            reason: request.reason,
            by,
            keep_records: !request.erase_records,
            fields,
        },
    )
    .await
    .map_err(|e| match e {
        RedactionError::Database(db) => WebError::Database(db),
        other => WebError::BadRequest(other.to_string()),
    })
}

/// `POST /records/{account}/{seq}/redact`: the record page's form (operators only; the
/// access middleware checked its CSRF token and origin).
pub async fn redact_form(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    axum::Form(request): axum::Form<RedactRequest>,
) -> Response {
    match redact_for(&s, &viewer, &account, &seq, request).await {
        Ok(r) => axum::response::Redirect::to(&format!("/records/{}/{}", r.log, r.target_seq))
            .into_response(),
        Err(err) => super::pages::error_page(&viewer, err),
    }
}

/// `POST /api/records/{account}/{seq}/redactions`.
pub async fn redact_api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    body: Result<axum::Json<RedactRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = async {
        let axum::Json(request) = body.map_err(|e| {
            WebError::BadRequest(format!(
                "send JSON like {{\"reason\": \"why\", \"by\": \"who\", \"fields\": \"review.body\"}} ({e})"
            ))
        })?;
        redact_for(&s, &viewer, &account, &seq, request).await
    }
    .await;
    match result {
        Ok(r) => (StatusCode::CREATED, axum::Json(r)).into_response(),
        Err(err) => super::api::error(err),
    }
}
