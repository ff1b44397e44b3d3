//! `/{owner}/{repo}/features/{key}` and `/{owner}/features/{key}`: a feature's pull
//! requests, findings and decision history, in one repository or across an account's; the
//! pages and their JSON.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::access::Viewer;
use super::error::WebError;
use super::filters::Filters;
use super::history::{
    FeatureRef, PullSummary, Scope, Timeline, feature_ref, pull_summaries, timeline,
};
use super::repository::repository_row;
use super::{WebState, repo_name};

/// Counts a product manager reads first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeatureTotals {
    pub pull_requests: usize,
    pub merged: usize,
    pub open: usize,
    pub stale_approvals: usize,
    pub outstanding_change_requests: usize,
    /// Findings of the accountability rules across the feature's PRs (withdrawn ones aside).
    pub findings: usize,
    /// Of those, how many someone acknowledged.
    pub findings_acknowledged: usize,
}

impl FeatureTotals {
    /// Findings nobody has acknowledged yet.
    pub fn findings_open(&self) -> usize {
        self.findings - self.findings_acknowledged
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeaturePage {
    pub account: String,
    pub feature: FeatureRef,
    /// The repositories the feature spans (one, unless this is an account's feature).
    pub repositories: Vec<String>,
    /// This is `/{owner}/features/{key}`: the feature across the account's repositories.
    pub account_wide: bool,
    /// On a repository's feature page, the account-wide page when the key is used in other
    /// repositories of the account too.
    pub across_url: Option<String>,
    /// The issue the feature is named after, on GitHub.
    pub issue_github_url: Option<String>,
    /// The tracker's page of the feature's key (Jira, Linear), when configured.
    pub tracker_url: Option<String>,
    /// How PRs joined the feature: label, closing reference, milestone.
    pub sources: Vec<String>,
    pub pulls: Vec<PullSummary>,
    pub totals: FeatureTotals,
    pub decisions: Timeline,
}

impl FeaturePage {
    /// Links the tracker's page of the key, when pull requests joined through a tracker key
    /// (an `issue-41` that a case-insensitive pattern happens to match is not one).
    pub fn link_tracker(&mut self, linking: &crate::projections::features::FeatureLinking) {
        if self.sources.iter().any(|s| s == "tracker") {
            self.tracker_url = linking.tracker_link(&self.feature.key);
        }
    }

    /// The findings list narrowed to this feature's pull requests.
    pub fn findings_url(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("repo", &self.feature.repo);
        q.append_pair("feature", &self.feature.key);
        format!("/findings?{}", q.finish())
    }
    /// How PRs joined, in words.
    pub fn sources_text(&self) -> String {
        self.sources
            .iter()
            .map(|s| match s.as_str() {
                "closes" => "a closing keyword (“Closes #N”)",
                "label" => "a feature label",
                "milestone" => "their milestone",
                "tracker" => "a tracker key in their title or branch name",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn feature(
    pool: &PgPool,
    repo: &str,
    key: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let feature = sqlx::query("SELECT repo, key, title FROM features WHERE repo = $1 AND key = $2")
        .bind(repo)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(feature_ref)
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "{repo} has no feature {key:?}; the repository page lists its features"
            ))
        })?;
    let elsewhere = account_feature_repos(pool, &row.account, key, viewer).await?;
    let across_url = (elsewhere.len() > 1).then(|| format!("/{}/features/{key}", row.account));
    let mut page = feature_across(
        pool,
        row.account,
        feature,
        vec![repo.to_string()],
        filters,
        viewer,
    )
    .await?;
    page.across_url = across_url;
    Ok(page)
}

/// `/{owner}/features/{key}`: one feature across every repository of the account that uses
/// the key (a `feature:` label in a frontend and a backend repository, say).
pub async fn account_feature(
    pool: &PgPool,
    account: &str,
    key: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let account = account.to_lowercase();
    let repos = account_feature_repos(pool, &account, key, viewer).await?;
    // The title of the issue the feature is named after, else the first one.
    let titles = sqlx::query(
        "SELECT repo, key, title FROM features WHERE repo = ANY($1) AND key = $2
          ORDER BY titled_by_issue DESC, repo",
    )
    .bind(&repos)
    .bind(key)
    .fetch_all(pool)
    .await?;
    let first = titles.first().ok_or_else(|| {
        WebError::NotFound(format!(
            "no repository of {account:?} that you can see has a feature {key:?}; the account page lists its features{}",
            viewer.not_found_hint()
        ))
    })?;
    let feature = FeatureRef {
        repo: account.clone(),
        key: key.to_string(),
        title: first.get("title"),
        url: format!("/{account}/features/{key}"),
    };
    let mut page = feature_across(pool, account, feature, repos, filters, viewer).await?;
    page.account_wide = true;
    Ok(page)
}

/// The visible repositories of `account` with a feature `key`.
async fn account_feature_repos(
    pool: &PgPool,
    account: &str,
    key: &str,
    viewer: &Viewer,
) -> Result<Vec<String>, WebError> {
    Ok(sqlx::query_scalar(
        "SELECT f.repo FROM features f
           JOIN repositories r ON r.repo = f.repo JOIN logs l ON l.id = r.log_id
          WHERE l.name = $1 AND f.key = $2 AND ($3::text[] IS NULL OR f.repo = ANY($3))
          ORDER BY f.repo",
    )
    .bind(account)
    .bind(key)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?)
}

async fn feature_across(
    pool: &PgPool,
    account: String,
    feature: FeatureRef,
    repos: Vec<String>,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let key = feature.key.clone();
    let members = sqlx::query(
        "SELECT DISTINCT pr_repo, pr_number, source FROM feature_pull_requests
          WHERE repo = ANY($1) AND key = $2 ORDER BY pr_repo, pr_number",
    )
    .bind(&repos)
    .bind(&key)
    .fetch_all(pool)
    .await?;
    let mut prs: Vec<(String, i64)> = members
        .iter()
        .map(|r| (r.get("pr_repo"), r.get("pr_number")))
        .collect();
    prs.dedup();
    let mut sources: Vec<String> = members.iter().map(|r| r.get("source")).collect();
    sources.sort();
    sources.dedup();
    let pulls = pull_summaries(pool, &prs, viewer).await?;
    let totals = FeatureTotals {
        pull_requests: pulls.len(),
        merged: pulls.iter().filter(|p| p.merged).count(),
        open: pulls.iter().filter(|p| p.state == "open").count(),
        stale_approvals: pulls
            .iter()
            .map(|p| p.review.approvals.iter().filter(|a| a.stale).count())
            .sum(),
        outstanding_change_requests: pulls
            .iter()
            .map(|p| p.review.outstanding_change_requests.len())
            .sum(),
        findings: pulls
            .iter()
            .map(|p| p.findings.iter().filter(|f| f.withdrawn.is_none()).count())
            .sum(),
        findings_acknowledged: pulls
            .iter()
            .map(|p| {
                p.findings
                    .iter()
                    .filter(|f| f.withdrawn.is_none() && !f.acknowledgements.is_empty())
                    .count()
            })
            .sum(),
    };
    // The issue a feature is named after (`issue-N` in one repository), on GitHub.
    let issue_github_url = match (key.strip_prefix("issue-"), repos.as_slice()) {
        (Some(n), [repo]) if n.parse::<u64>().is_ok() => {
            viewer.github_link(&format!("{}/{repo}/issues/{n}", viewer.github_url_base()))
        }
        _ => None,
    };
    Ok(FeaturePage {
        account,
        decisions: timeline(pool, &Scope::Feature(&repos, &key), filters, viewer, false).await?,
        feature,
        repositories: repos,
        account_wide: false,
        across_url: None,
        issue_github_url,
        tracker_url: None,
        sources,
        pulls,
        totals,
    })
}

#[derive(Template)]
#[template(path = "feature.html")]
struct FeatureHtml {
    viewer: Viewer,
    api_url: String,
    path: String,
    kinds: &'static [super::filters::KindGroup],
    show_pr: bool,
    page: FeaturePage,
}

pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name, key)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let repo = repo_name(&owner, &name);
        let mut page = feature(&s.pool, &repo, &key, &filters, &viewer).await?;
        page.link_tracker(&s.features);
        Ok(FeatureHtml {
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

/// `/{owner}/features/{feature}`: the feature across the account's repositories.
pub async fn account_page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let mut page = account_feature(&s.pool, &owner, &key, &filters, &viewer).await?;
        page.link_tracker(&s.features);
        Ok(FeatureHtml {
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
    Path((owner, name, key)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::api::json(
        async {
            let filters = Filters::parse(&params)?;
            let mut page =
                feature(&s.pool, &repo_name(&owner, &name), &key, &filters, &viewer).await?;
            page.link_tracker(&s.features);
            Ok(page)
        }
        .await,
    )
}

/// The feature across the account's repositories.
pub async fn account_api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::api::json(
        async {
            let filters = Filters::parse(&params)?;
            let mut page = account_feature(&s.pool, &owner, &key, &filters, &viewer).await?;
            page.link_tracker(&s.features);
            Ok(page)
        }
        .await,
    )
}
