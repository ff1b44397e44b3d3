//! Acknowledging a finding: a person who may read the finding's repository adds a note, as
//! themselves. The acknowledgement is appended to the log as a `verdict-ack` entry that records
//! their GitHub login and user id from the session, hash-chained like everything else; the
//! finding itself is never edited. Scripts holding the admin token may acknowledge too, and
//! say who they act for.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
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

/// What the form and the API send. `by` is only for the admin token (a signed-in person is who
/// the session says).
#[derive(Debug, Deserialize)]
pub struct AckRequest {
    #[serde(default)]
    pub by: Option<String>,
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
    viewer: &Viewer,
    account: &str,
    seq: &str,
    request: AckRequest,
) -> Result<AckReceipt, WebError> {
    let (by, github_user_id, via) = match (viewer.login(), viewer.user_id()) {
        (Some(login), id) => (login.to_string(), id, "github"),
        (None, _) if viewer.is_operator() => {
            let by = request.by.as_deref().map(str::trim).unwrap_or_default();
            if by.is_empty() || by.chars().count() > 100 {
                return Err(WebError::BadRequest(
                    "with the admin token, say who acknowledges: `by` must be a name of 1 to 100 characters"
                        .into(),
                ));
            }
            (by.to_string(), None, "admin-token")
        }
        _ => {
            return Err(WebError::Forbidden(if viewer.sign_in {
                "acknowledging a finding needs you to sign in with GitHub".into()
            } else {
                "acknowledging a finding needs an operator: sign in at /operator or send the \
                 VERDICT_ADMIN_TOKEN as a bearer token"
                    .into()
            }));
        }
    };
    let note = request.note.trim();
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
    let not_found = || {
        WebError::NotFound(format!(
            "there is no finding at {account}/{seq}; the findings page links each one{}",
            viewer.not_found_hint()
        ))
    };
    let finding = sqlx::query(
        "SELECT f.repo, f.repo_private FROM findings f JOIN logs l ON l.id = f.log_id
          WHERE l.name = $1 AND f.seq = $2",
    )
    .bind(account)
    .bind(finding_seq)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let repo: String = finding.get("repo");
    if !viewer.may_see(Some(&repo)) {
        return Err(not_found());
    }
    let body = AckBody {
        finding_seq,
        by,
        github_user_id,
        via: Some(via.into()),
        note: note.to_string(),
        repository: FindingRepository {
            full_name: repo,
            private: finding.get("repo_private"),
        },
    };
    let bytes = serde_json::to_vec(&body).expect("an acknowledgement serializes");
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| {
        WebError::Internal(format!("no randomness for an entry id ({e}); try again"))
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

/// The acknowledge form on the findings page (the access middleware has checked its CSRF
/// token and origin). Shows the acknowledgement's own record once it is durable.
pub async fn form(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    Form(request): Form<super::acks::AckRequest>,
) -> Response {
    match super::acks::acknowledge(&s, &viewer, &account, &seq, request).await {
        Ok(receipt) => Redirect::to(&receipt.record_url).into_response(),
        Err(err) => super::pages::error_page(&viewer, err),
    }
}

/// `POST /api/findings/{account}/{seq}/acknowledgements` with `{"by": ..., "note": ...}`.
pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    body: Result<Json<super::acks::AckRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = async {
        let Json(request) = body.map_err(|e| {
            WebError::BadRequest(format!(
                "send JSON like {{\"by\": \"your name\", \"note\": \"why\"}} ({e})"
            ))
        })?;
        super::acks::acknowledge(&s, &viewer, &account, &seq, request).await
    }
    .await;
    match result {
        Ok(receipt) => (axum::http::StatusCode::CREATED, Json(receipt)).into_response(),
        Err(err) => super::api::error(err),
    }
}
