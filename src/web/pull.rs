//! `/{owner}/{repo}/pull/{number}`: one pull request's review summary, findings, features
//! and decision timeline; the page and its JSON.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;
use sqlx::PgPool;

use super::access::Viewer;
use super::error::WebError;
use super::filters::Filters;
use super::history::{
    FeatureRef, PullSummary, Scope, Timeline, feature_ref, pull_summaries, timeline,
};
use super::repository::repository_row;
use super::{WebState, parse_number, repo_name};

#[derive(Debug, Clone, Serialize)]
pub struct PullPage {
    pub account: String,
    pub pull: PullSummary,
    pub features: Vec<FeatureRef>,
    pub decisions: Timeline,
}

impl PullPage {
    /// The PR as a one-row summary table.
    pub fn pulls(&self) -> &[PullSummary] {
        std::slice::from_ref(&self.pull)
    }
}

pub async fn pull(
    pool: &PgPool,
    repo: &str,
    number: i64,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<PullPage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let pull = pull_summaries(pool, &[(repo.to_string(), number)], viewer)
        .await?
        .pop()
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "verdict has no record of pull request #{number} in {repo}"
            ))
        })?;
    let features = sqlx::query(
        "SELECT DISTINCT f.repo, f.key, f.title FROM feature_pull_requests p
           JOIN features f ON f.repo = p.repo AND f.key = p.key
          WHERE p.pr_repo = $1 AND p.pr_number = $2 AND ($3::text[] IS NULL OR f.repo = ANY($3))
          ORDER BY f.repo, f.key",
    )
    .bind(repo)
    .bind(number)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?
    .iter()
    .map(feature_ref)
    .collect();
    Ok(PullPage {
        account: row.account,
        pull,
        features,
        decisions: timeline(pool, &Scope::Pull(repo, number), filters, viewer, false).await?,
    })
}

#[derive(Template)]
#[template(path = "pull.html")]
struct PullHtml {
    viewer: Viewer,
    api_url: String,
    path: String,
    kinds: &'static [super::filters::KindGroup],
    show_pr: bool,
    page: PullPage,
}

pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name, number)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let number = parse_number(&number)?;
        let filters = Filters::parse(&params)?;
        let repo = repo_name(&owner, &name);
        let page = pull(&s.pool, &repo, number, &filters, &viewer).await?;
        Ok(PullHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            path: uri.path().to_string(),
            kinds: super::pages::kind_choices(),
            show_pr: false,
            page,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name, number)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::api::json(
        async {
            let number = parse_number(&number)?;
            let filters = Filters::parse(&params)?;
            pull(
                &s.pool,
                &repo_name(&owner, &name),
                number,
                &filters,
                &viewer,
            )
            .await
        }
        .await,
    )
}
