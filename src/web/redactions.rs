//! `/redactions`: every erasure on the record, newest first, for whoever answers a deletion
//! request or audits one. Each redaction entry is shown to whoever may see it (the repository
//! it names; a retention batch names none, so operators).

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::WebState;
use super::access::{Viewer, entry_audience};
use super::error::WebError;
use crate::log::entry::KIND_REDACTION;
use crate::log::redaction::RedactionBody;

/// Newest redaction entries read.
const SHOWN: i64 = 500;

#[derive(Debug, Serialize)]
pub struct RedactionsPage {
    pub redactions: Vec<RedactionItem>,
    /// Entries erased, over the redactions shown.
    pub entries_erased: usize,
}

/// One redaction entry, in words.
#[derive(Debug, Serialize)]
pub struct RedactionItem {
    pub account: String,
    pub seq: i64,
    /// The redaction entry's permalink.
    pub record_url: String,
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    pub repository: Option<String>,
    /// What stands in the erased bodies' places: `fields`, `skeleton` or `nothing` (for a
    /// batch, `skeleton` when any target kept one).
    pub kept: &'static str,
    /// The fields replaced, for `fields`.
    pub fields: Vec<String>,
    pub targets: Vec<ErasedEntry>,
}

#[derive(Debug, Serialize)]
pub struct ErasedEntry {
    pub seq: u64,
    pub record_url: String,
    /// Whether a copy (fields' or skeleton) stands in its place.
    pub copy_kept: bool,
}

/// The redaction entries `viewer` may see, newest first.
pub async fn redactions(pool: &PgPool, viewer: &Viewer) -> Result<RedactionsPage, WebError> {
    let rows: Vec<(String, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT l.name, l.id, e.seq, e.body FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE e.kind = $1 AND e.body IS NOT NULL
          ORDER BY e.received_at DESC, l.name, e.seq DESC LIMIT $2",
    )
    .bind(KIND_REDACTION)
    .bind(SHOWN)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for (account, log_id, seq, body) in rows {
        let audience = entry_audience(KIND_REDACTION, None, &body);
        if !viewer.may_see_entry(pool, log_id, &audience).await? {
            continue;
        }
        let Some(r) = RedactionBody::parse(&body) else {
            continue;
        };
        let targets: Vec<ErasedEntry> = r
            .copies()
            .into_iter()
            .map(|(target, copy)| ErasedEntry {
                seq: target,
                record_url: format!("/records/{account}/{target}"),
                copy_kept: copy.is_some(),
            })
            .collect();
        let kept = if !r.fields.is_empty() {
            "fields"
        } else if targets.iter().any(|t| t.copy_kept) {
            "skeleton"
        } else {
            "nothing"
        };
        out.push(RedactionItem {
            record_url: format!("/records/{account}/{seq}"),
            account,
            seq,
            at: r.at,
            by: r.by,
            reason: r.reason,
            repository: r.repository.map(|x| x.full_name),
            kept,
            fields: r.fields,
            targets,
        });
    }
    Ok(RedactionsPage {
        entries_erased: out.iter().map(|r| r.targets.len()).sum(),
        redactions: out,
    })
}

#[derive(askama::Template)]
#[template(path = "redactions.html")]
struct RedactionsHtml {
    viewer: Viewer,
    api_url: String,
    page: RedactionsPage,
}

/// `GET /redactions`.
pub async fn page(State(s): State<WebState>, viewer: Viewer, uri: Uri) -> Response {
    let result = async {
        Ok(RedactionsHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page: redactions(&s.pool, &viewer).await?,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

/// `GET /api/redactions`.
pub async fn api(State(s): State<WebState>, viewer: Viewer) -> Response {
    super::api::json(redactions(&s.pool, &viewer).await)
}
