//! `/{owner}/{repo}`: a repository's features, open and recent pull requests and its
//! decision timeline; the page and its JSON at `/api/{owner}/{repo}`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::access::Viewer;
use super::error::WebError;
use super::filters::Filters;
use super::history::{Scope, Timeline, timeline};
use super::{WebState, repo_name};

#[derive(Debug, Clone, Serialize)]
pub struct FeatureItem {
    pub key: String,
    pub title: String,
    pub pull_requests: i64,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullItem {
    pub number: i64,
    pub title: String,
    pub author: Option<String>,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub updated_at: DateTime<Utc>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryPage {
    pub repo: String,
    pub account: String,
    pub private: bool,
    pub features: Vec<FeatureItem>,
    pub open_pull_requests: Vec<PullItem>,
    pub recent_pull_requests: Vec<PullItem>,
    pub decisions: Timeline,
    /// How complete the account's record is ("complete since …", or the gaps).
    pub coverage: String,
}

pub(crate) struct RepoRow {
    pub(crate) account: String,
    pub(crate) private: bool,
}

pub(crate) async fn repository_row(
    pool: &PgPool,
    repo: &str,
    viewer: &Viewer,
) -> Result<RepoRow, WebError> {
    let row = sqlx::query(
        "SELECT l.name, r.private FROM repositories r JOIN logs l ON l.id = r.log_id
          WHERE r.repo = $1",
    )
    .bind(repo)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(r) if viewer.may_see(Some(repo)) => Ok(RepoRow {
            account: r.get("name"),
            private: r.get("private"),
        }),
        _ => Err(WebError::NotFound(format!(
            "verdict has no record of a repository named {repo}{}",
            viewer.not_found_hint()
        ))),
    }
}

fn pull_item(r: &sqlx::postgres::PgRow) -> PullItem {
    let repo: String = r.get("repo");
    let number: i64 = r.get("number");
    PullItem {
        url: format!("/{repo}/pull/{number}"),
        number,
        title: r.get("title"),
        author: r.get("author"),
        state: r.get("state"),
        draft: r.get("draft"),
        merged: r.get("merged"),
        updated_at: r.get("updated_at"),
    }
}

pub async fn repository(
    pool: &PgPool,
    repo: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<RepositoryPage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let features = sqlx::query(
        "SELECT f.key, f.title,
                (SELECT count(DISTINCT (p.pr_repo, p.pr_number)) FROM feature_pull_requests p
                  WHERE p.repo = f.repo AND p.key = f.key
                    AND ($2::text[] IS NULL OR p.pr_repo = ANY($2))) AS prs
           FROM features f WHERE f.repo = $1 ORDER BY f.title, f.key",
    )
    .bind(repo)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        let key: String = r.get("key");
        FeatureItem {
            url: format!("/{repo}/features/{key}"),
            key,
            title: r.get("title"),
            pull_requests: r.get("prs"),
        }
    })
    .collect();
    let pulls = sqlx::query(
        "SELECT repo, number, title, author, state, draft, merged, updated_at FROM pull_requests
          WHERE repo = $1 ORDER BY (state = 'open') DESC, updated_at DESC LIMIT 100",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;
    let (open, recent): (Vec<PullItem>, Vec<PullItem>) =
        pulls.iter().map(pull_item).partition(|p| p.state == "open");
    let coverage = super::coverage::coverage(pool, viewer, Some(&row.account))
        .await?
        .accounts
        .first()
        .map(|a| a.summary())
        .unwrap_or_default();
    Ok(RepositoryPage {
        coverage,
        repo: repo.to_string(),
        account: row.account,
        private: row.private,
        features,
        open_pull_requests: open,
        recent_pull_requests: recent.into_iter().take(20).collect(),
        decisions: timeline(pool, &Scope::Repo(repo), filters, viewer, true).await?,
    })
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryHtml {
    viewer: Viewer,
    api_url: String,
    path: String,
    kinds: &'static [super::filters::KindGroup],
    show_pr: bool,
    page: RepositoryPage,
}

pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let repo = repo_name(&owner, &name);
        let page = repository(&s.pool, &repo, &filters, &viewer).await?;
        Ok(RepositoryHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            path: uri.path().to_string(),
            kinds: super::pages::kind_choices(),
            show_pr: true,
            page,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::api::json(
        async {
            let filters = Filters::parse(&params)?;
            repository(&s.pool, &repo_name(&owner, &name), &filters, &viewer).await
        }
        .await,
    )
}
