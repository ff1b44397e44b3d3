//! `/findings`: findings across repositories, filtered by rule, repository, status and
//! acknowledgement; the page and its JSON.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::WebState;
use super::access::Viewer;
use super::error::WebError;
use super::filters::PER_PAGE;
use super::history::{AckItem, Withdrawal, acknowledgements, rule_name, withdrawal};

/// One finding in the findings list.
#[derive(Debug, Clone, Serialize)]
pub struct FindingItem {
    pub rule: String,
    /// The rule in words.
    pub rule_name: &'static str,
    pub severity: String,
    pub message: String,
    pub repo: String,
    pub pr_number: Option<i64>,
    pub evidence: Vec<String>,
    pub record_url: String,
    pub recorded_at: DateTime<Utc>,
    /// Notes people appended about it, oldest first.
    pub acknowledgements: Vec<AckItem>,
    /// About history read from GitHub's API: shown, not alerted.
    pub history: bool,
    /// Withdrawn, when records that arrived later showed it wrong.
    pub withdrawn: Option<Withdrawal>,
}

/// The filters of the findings page, checked against the rules that exist.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindingFilters {
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub repo: Option<String>,
    /// `true`: only acknowledged findings; `false`: only open ones.
    pub acknowledged: Option<bool>,
    /// Only the findings about pull requests of this feature of `repo`.
    pub feature: Option<String>,
    pub page: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingsPage {
    pub findings: Vec<FindingItem>,
    pub filters: FindingFilters,
    pub total: i64,
    pub per_page: i64,
}

impl FindingsPage {
    pub fn pages(&self) -> i64 {
        ((self.total + PER_PAGE - 1) / PER_PAGE).max(1)
    }
    /// The query string of another page with the same filters.
    pub fn query_for_page(&self, page: i64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("rule", &self.filters.rule),
            ("severity", &self.filters.severity),
            ("repo", &self.filters.repo),
            ("feature", &self.filters.feature),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(a) = self.filters.acknowledged {
            q.append_pair("acknowledged", if a { "yes" } else { "no" });
        }
        q.append_pair("page", &page.to_string());
        format!("?{}", q.finish())
    }
}

impl FindingFilters {
    pub fn parse(params: &std::collections::HashMap<String, String>) -> Result<Self, WebError> {
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let rule = get("rule");
        if let Some(r) = &rule
            && !crate::feedback::rules::RULES
                .iter()
                .any(|known| known.id == r)
        {
            let ids: Vec<&str> = crate::feedback::rules::RULES.iter().map(|r| r.id).collect();
            return Err(WebError::BadRequest(format!(
                "rule={r:?} is not a rule; use one of {}",
                ids.join(", ")
            )));
        }
        let severity = get("severity");
        if let Some(s) = &severity
            && !["low", "medium", "high"].contains(&s.as_str())
        {
            return Err(WebError::BadRequest(format!(
                "severity={s:?} is not a severity; use low, medium or high"
            )));
        }
        let repo = get("repo");
        if let Some(r) = &repo
            && r.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            return Err(WebError::BadRequest(format!(
                "repo={r:?} is not a repository; write it as owner/name"
            )));
        }
        let feature = get("feature");
        if feature.is_some() && repo.is_none() {
            return Err(WebError::BadRequest(
                "feature= needs repo= too: a feature belongs to a repository (e.g. ?repo=acme/web&feature=issue-41)".into(),
            ));
        }
        let acknowledged = match get("acknowledged").as_deref() {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(v) => {
                return Err(WebError::BadRequest(format!(
                    "acknowledged={v:?} must be yes or no"
                )));
            }
        };
        let page = match get("page") {
            None => 1,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    WebError::BadRequest(format!("page={v:?} is not a page number from 1"))
                })?,
        };
        Ok(FindingFilters {
            rule,
            severity,
            repo,
            acknowledged,
            feature,
            page,
        })
    }
}

/// Findings across every repository the viewer may see, newest first.
pub async fn findings(
    pool: &PgPool,
    filters: &FindingFilters,
    viewer: &Viewer,
) -> Result<FindingsPage, WebError> {
    let rows = sqlx::query(
        "SELECT f.rule, f.severity, f.message, f.repo, f.pr_number, f.evidence, f.seq,
                f.recorded_at, l.name AS account, count(*) OVER () AS total, f.history,
                f.withdrawn_seq, f.withdrawn_at, f.withdrawn_why
           FROM findings f JOIN logs l ON l.id = f.log_id
          WHERE ($1::text[] IS NULL OR f.repo = ANY($1))
            AND ($2::text IS NULL OR f.rule = $2)
            AND ($3::text IS NULL OR f.severity = $3)
            AND ($4::text IS NULL OR f.repo = $4)
            AND ($7::boolean IS NULL OR $7 = (f.withdrawn_seq IS NOT NULL OR EXISTS (
                 SELECT 1 FROM finding_acks a WHERE a.log_id = f.log_id AND a.finding_seq = f.seq)))
            AND ($8::text IS NULL OR EXISTS (
                 SELECT 1 FROM feature_pull_requests fp
                  WHERE fp.repo = $4 AND fp.key = $8
                    AND fp.pr_repo = f.repo AND fp.pr_number = f.pr_number))
          ORDER BY f.recorded_at DESC, f.log_id, f.seq DESC
          LIMIT $5 OFFSET $6",
    )
    .bind(viewer.visible())
    .bind(&filters.rule)
    .bind(&filters.severity)
    .bind(&filters.repo)
    .bind(PER_PAGE)
    .bind((filters.page - 1) * PER_PAGE)
    .bind(filters.acknowledged)
    .bind(&filters.feature)
    .fetch_all(pool)
    .await?;
    let total = rows.first().map(|r| r.get("total")).unwrap_or(0);
    let keys: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.get("account"), r.get("seq")))
        .collect();
    let mut acks = acknowledgements(pool, &keys).await?;
    Ok(FindingsPage {
        findings: rows
            .iter()
            .map(|r| {
                let account: String = r.get("account");
                let seq: i64 = r.get("seq");
                let evidence: Value = r.get("evidence");
                FindingItem {
                    rule_name: rule_name(&r.get::<String, _>("rule")),
                    rule: r.get("rule"),
                    severity: r.get("severity"),
                    message: r.get("message"),
                    repo: r.get("repo"),
                    pr_number: r.get("pr_number"),
                    evidence: serde_json::from_value(evidence).unwrap_or_default(),
                    acknowledgements: acks.remove(&(account.clone(), seq)).unwrap_or_default(),
                    record_url: format!("/records/{account}/{seq}"),
                    recorded_at: r.get("recorded_at"),
                    history: r.get("history"),
                    withdrawn: withdrawal(r, &account),
                }
            })
            .collect(),
        filters: filters.clone(),
        total,
        per_page: PER_PAGE,
    })
}

#[derive(Template)]
#[template(path = "findings.html")]
struct FindingsHtml {
    viewer: Viewer,
    api_url: String,
    rules: &'static [crate::feedback::rules::Rule],
    page: FindingsPage,
}

pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = FindingFilters::parse(&params)?;
        Ok(FindingsHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            rules: crate::feedback::rules::RULES,
            page: findings(&s.pool, &filters, &viewer).await?,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::api::json(
        async {
            let filters = FindingFilters::parse(&params)?;
            findings(&s.pool, &filters, &viewer).await
        }
        .await,
    )
}
