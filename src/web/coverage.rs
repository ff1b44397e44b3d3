//! `/coverage`: how complete each account's record is. Per account the viewer may see: the last
//! reconciliation of GitHub's delivery list, deliveries recovered and redeliveries still
//! pending, every coverage gap, and the history backfills with their progress. The repository
//! page shows the same as one line ("complete since …" or the gaps).

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::WebState;
use super::access::Viewer;
use super::error::WebError;
use crate::projections::coverage::Window;

/// One account's completeness.
#[derive(Debug, Clone, Serialize)]
pub struct AccountCoverage {
    pub account: String,
    /// The end of the newest window checked; `None`: never reconciled.
    pub reconciled_through: Option<DateTime<Utc>>,
    /// Since when every delivery GitHub made is accounted for (after the last gap).
    pub complete_since: Option<DateTime<Utc>>,
    pub reconciliations: i64,
    /// Redeliveries asked for that have arrived.
    pub recovered: i64,
    /// Redeliveries asked for that have not arrived yet.
    pub pending: i64,
    /// Their GUIDs (operators only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_guids: Vec<String>,
    /// Redelivery requests GitHub refused.
    pub failed: i64,
    /// Stretches GitHub no longer listed when verdict looked: deliveries then are unchecked.
    pub gaps: Vec<Window>,
    pub backfills: Vec<BackfillItem>,
}

impl AccountCoverage {
    /// The one line the repository page shows.
    pub fn summary(&self) -> String {
        let at = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        match (&self.complete_since, self.gaps.is_empty()) {
            (None, _) => "not reconciled with GitHub's delivery list yet".into(),
            (Some(since), true) => format!("complete since {}", at(since)),
            (Some(since), false) => format!(
                "complete since {}; {} earlier gap{} GitHub no longer lists",
                at(since),
                self.gaps.len(),
                if self.gaps.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

/// A history backfill and how far it has come.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillItem {
    pub repo: String,
    pub state: String,
    pub since: Option<DateTime<Utc>>,
    pub pulls_seen: i32,
    pub pulls_done: i32,
    pub objects_appended: i32,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CoveragePage {
    pub accounts: Vec<AccountCoverage>,
}

/// The coverage of every account the viewer may see (or of `only` that one).
pub async fn coverage(
    pool: &PgPool,
    viewer: &Viewer,
    only: Option<&str>,
) -> Result<CoveragePage, WebError> {
    let logs: Vec<(i64, String)> = sqlx::query_as(
        "SELECT l.id, l.name FROM logs l
          WHERE ($1::text[] IS NULL
                 OR EXISTS (SELECT 1 FROM repositories r WHERE r.log_id = l.id AND r.repo = ANY($1)))
            AND ($2::text IS NULL OR l.name = $2)
          ORDER BY l.name",
    )
    .bind(viewer.visible())
    .bind(only)
    .fetch_all(pool)
    .await?;
    let mut accounts = Vec::new();
    for (log_id, name) in logs {
        let row = sqlx::query(
            "WITH r AS (SELECT * FROM reconciliations WHERE log_id = $1),
                  asked AS (SELECT DISTINCT unnest(requested) AS guid FROM r),
                  state AS (SELECT a.guid, EXISTS (SELECT 1 FROM log_entries e
                                                    WHERE e.kind = 'github-delivery'
                                                      AND e.delivery_id = a.guid) AS arrived
                              FROM asked a)
             SELECT (SELECT max(window_end) FROM r) AS through,
                    (SELECT min(window_start) FROM r) AS first_start,
                    (SELECT max(gap_end) FROM r) AS last_gap_end,
                    (SELECT count(*) FROM r) AS n,
                    (SELECT count(*) FROM state WHERE arrived) AS recovered,
                    coalesce((SELECT array_agg(guid ORDER BY guid) FROM state WHERE NOT arrived),
                             '{}') AS pending,
                    (SELECT count(DISTINCT f) FROM r, unnest(r.failed) AS f) AS failed",
        )
        .bind(log_id)
        .fetch_one(pool)
        .await?;
        let gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT DISTINCT gap_start, gap_end FROM reconciliations
              WHERE log_id = $1 AND gap_start IS NOT NULL ORDER BY gap_start",
        )
        .bind(log_id)
        .fetch_all(pool)
        .await?;
        let backfills = sqlx::query(
            "SELECT repo, state, since, pulls_seen, pulls_done, objects_appended, error,
                    updated_at
               FROM backfill_jobs
              WHERE lower(split_part(repo, '/', 1)) = $1
                AND ($2::text[] IS NULL OR repo = ANY($2))
              ORDER BY repo",
        )
        .bind(&name)
        .bind(viewer.visible())
        .fetch_all(pool)
        .await?
        .iter()
        .map(|b| BackfillItem {
            repo: b.get("repo"),
            state: b.get("state"),
            since: b.get("since"),
            pulls_seen: b.get("pulls_seen"),
            pulls_done: b.get("pulls_done"),
            objects_appended: b.get("objects_appended"),
            error: b.get("error"),
            updated_at: b.get("updated_at"),
        })
        .collect();
        let pending: Vec<String> = row.get("pending");
        let first: Option<DateTime<Utc>> = row.get("first_start");
        let last_gap: Option<DateTime<Utc>> = row.get("last_gap_end");
        accounts.push(AccountCoverage {
            account: name,
            reconciled_through: row.get("through"),
            complete_since: last_gap.or(first),
            reconciliations: row.get("n"),
            recovered: row.get("recovered"),
            pending: pending.len() as i64,
            pending_guids: if viewer.is_operator() {
                pending
            } else {
                Vec::new()
            },
            failed: row.get("failed"),
            gaps: gaps
                .into_iter()
                .map(|(from, to)| Window { from, to })
                .collect(),
            backfills,
        });
    }
    Ok(CoveragePage { accounts })
}

#[derive(Template)]
#[template(path = "coverage.html")]
struct CoverageHtml {
    viewer: Viewer,
    api_url: String,
    page: CoveragePage,
}

/// `GET /coverage`.
pub async fn page(State(s): State<WebState>, viewer: Viewer, uri: Uri) -> Response {
    let result = async {
        let page = coverage(&s.pool, &viewer, None).await?;
        CoverageHtml {
            viewer: viewer.clone(),
            api_url: format!("/api{}", uri.path()),
            page,
        }
        .render()
        .map_err(WebError::from)
    }
    .await;
    match result {
        Ok(html) => Html(html).into_response(),
        Err(err) => super::pages::error_page(&viewer, err),
    }
}

/// `GET /api/coverage`.
pub async fn api(State(s): State<WebState>, viewer: Viewer) -> Response {
    match coverage(&s.pool, &viewer, None).await {
        Ok(page) => axum::Json(page).into_response(),
        Err(err) => super::api::error(err),
    }
}
