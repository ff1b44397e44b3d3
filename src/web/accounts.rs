//! Finding one's way: the home page's search over features and pull requests and its recently
//! active features, and an account's page (`/{owner}`) listing its repositories and features.
//! Everything follows the visibility rule: only repositories the viewer may read.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::WebState;
use super::access::Viewer;
use super::error::WebError;

/// Most hits of each kind a search shows.
const HITS: i64 = 30;
/// Features on the home page.
const RECENT_FEATURES: i64 = 12;
/// Longest search text.
const MAX_QUERY: usize = 200;

/// A feature, wherever it is listed.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureLink {
    pub repo: String,
    pub key: String,
    pub title: String,
    pub pull_requests: i64,
    /// The newest update of one of its pull requests.
    pub last_activity: Option<DateTime<Utc>>,
    pub url: String,
}

/// A pull request found by a search.
#[derive(Debug, Clone, Serialize)]
pub struct PullHit {
    pub repo: String,
    pub number: i64,
    pub title: String,
    pub author: Option<String>,
    /// open, closed or merged.
    pub status: &'static str,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub q: String,
    pub features: Vec<FeatureLink>,
    pub pull_requests: Vec<PullHit>,
}

/// The home page: the search box (and its results), recently active features, accounts.
#[derive(Debug, Clone, Serialize)]
pub struct Home {
    pub search: Option<SearchResults>,
    pub recent_features: Vec<FeatureLink>,
    #[serde(flatten)]
    pub index: Index,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountPage {
    pub account: String,
    pub log_size: i64,
    pub repositories: Vec<RepositoryItem>,
    pub features: Vec<FeatureLink>,
}

/// `%`, `_` and `\` taken literally in a `LIKE` pattern.
fn like_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

fn feature_link(r: &sqlx::postgres::PgRow) -> FeatureLink {
    let repo: String = r.get("repo");
    let key: String = r.get("key");
    FeatureLink {
        url: format!("/{repo}/features/{key}"),
        title: r.get("title"),
        pull_requests: r.get("pull_requests"),
        last_activity: r.get("last_activity"),
        repo,
        key,
    }
}

/// Features of visible repositories (of `account`, when given) matching `pattern` (a `LIKE`
/// pattern over key and title; `None`: all), most recently active first.
async fn features(
    pool: &PgPool,
    viewer: &Viewer,
    account: Option<&str>,
    pattern: Option<&str>,
    limit: i64,
) -> Result<Vec<FeatureLink>, WebError> {
    let rows = sqlx::query(
        "SELECT f.repo, f.key, f.title,
                count(DISTINCT (fp.pr_repo, fp.pr_number)) AS pull_requests,
                max(p.updated_at) AS last_activity
           FROM features f
           JOIN repositories r ON r.repo = f.repo
           JOIN logs l ON l.id = r.log_id
           LEFT JOIN feature_pull_requests fp
                  ON fp.repo = f.repo AND fp.key = f.key
                 AND ($1::text[] IS NULL OR fp.pr_repo = ANY($1))
           LEFT JOIN pull_requests p ON p.repo = fp.pr_repo AND p.number = fp.pr_number
          WHERE ($1::text[] IS NULL OR f.repo = ANY($1))
            AND ($2::text IS NULL OR l.name = $2)
            AND ($3::text IS NULL OR f.key ILIKE $3 OR f.title ILIKE $3)
          GROUP BY f.repo, f.key, f.title
          ORDER BY max(p.updated_at) DESC NULLS LAST, f.repo, f.key
          LIMIT $4",
    )
    .bind(viewer.visible())
    .bind(account)
    .bind(pattern)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(feature_link).collect())
}

/// Features and pull requests whose title, number, feature key or people match `q`.
pub async fn search(pool: &PgPool, q: &str, viewer: &Viewer) -> Result<SearchResults, WebError> {
    let q = q.trim();
    if q.chars().count() > MAX_QUERY {
        return Err(WebError::BadRequest(format!(
            "the search text is longer than {MAX_QUERY} characters; search for fewer words"
        )));
    }
    let pattern = format!("%{}%", like_escape(q));
    let person = q.trim_start_matches('@');
    let number: Option<i64> = q.trim_start_matches('#').parse().ok();
    let pulls = sqlx::query(
        "SELECT p.repo, p.number, p.title, p.author, p.state, p.merged
           FROM pull_requests p
          WHERE ($1::text[] IS NULL OR p.repo = ANY($1))
            AND (p.title ILIKE $2
                 OR p.number = $3
                 OR lower(p.author) = lower($4)
                 OR lower(p.merged_by) = lower($4)
                 OR EXISTS (SELECT 1 FROM decisions d
                             WHERE d.repo = p.repo AND d.pr_number = p.number
                               AND lower(d.actor) = lower($4)))
          ORDER BY p.updated_at DESC
          LIMIT $5",
    )
    .bind(viewer.visible())
    .bind(&pattern)
    .bind(number)
    .bind(person)
    .bind(HITS)
    .fetch_all(pool)
    .await?;
    Ok(SearchResults {
        q: q.to_string(),
        features: features(pool, viewer, None, Some(&pattern), HITS).await?,
        pull_requests: pulls
            .iter()
            .map(|r| {
                let repo: String = r.get("repo");
                let number: i64 = r.get("number");
                PullHit {
                    url: format!("/{repo}/pull/{number}"),
                    title: r.get("title"),
                    author: r.get("author"),
                    status: match (r.get::<bool, _>("merged"), r.get::<String, _>("state")) {
                        (true, _) => "merged",
                        (false, s) if s == "closed" => "closed",
                        _ => "open",
                    },
                    repo,
                    number,
                }
            })
            .collect(),
    })
}

pub async fn home(pool: &PgPool, q: Option<&str>, viewer: &Viewer) -> Result<Home, WebError> {
    let search = match q.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => Some(search(pool, q, viewer).await?),
        None => None,
    };
    Ok(Home {
        search,
        recent_features: features(pool, viewer, None, None, RECENT_FEATURES).await?,
        index: index(pool, viewer).await?,
    })
}

/// An account's repositories and features; 404 when the viewer may see none of them.
pub async fn account(pool: &PgPool, owner: &str, viewer: &Viewer) -> Result<AccountPage, WebError> {
    let owner = owner.to_lowercase();
    let index = index(pool, viewer).await?;
    let account = index
        .accounts
        .into_iter()
        .find(|a| a.account == owner)
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "verdict has no records of account {owner:?} that you can see; the home page lists the accounts{}",
                viewer.not_found_hint()
            ))
        })?;
    Ok(AccountPage {
        features: features(pool, viewer, Some(&owner), None, 1000).await?,
        account: account.account,
        log_size: account.log_size,
        repositories: account.repositories,
    })
}

#[derive(Template)]
#[template(path = "index.html")]
struct HomeHtml {
    viewer: Viewer,
    api_url: String,
    page: Home,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountHtml {
    viewer: Viewer,
    api_url: String,
    page: AccountPage,
}

pub async fn home_page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let page = home(&s.pool, params.get("q").map(String::as_str), &viewer).await;
    super::pages::respond(
        &viewer,
        page.map(|page| HomeHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page,
        }),
    )
}

pub async fn account_page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path(owner): Path<String>,
) -> Response {
    let page = account(&s.pool, &owner, &viewer).await;
    super::pages::respond(
        &viewer,
        page.map(|page| AccountHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page,
        }),
    )
}

pub async fn account_api(
    State(s): State<WebState>,
    viewer: Viewer,
    Path(owner): Path<String>,
) -> Response {
    super::api::json(account(&s.pool, &owner, &viewer).await)
}

pub async fn search_api(
    State(s): State<WebState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = params.get("q").map(|q| q.trim()).unwrap_or_default();
    let result = if q.is_empty() {
        Err(WebError::BadRequest(
            "say what to look for: /api/search?q=WORDS (a title, #number, feature key or login)"
                .into(),
        ))
    } else {
        search(&s.pool, q, &viewer).await
    };
    super::api::json(result)
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryItem {
    pub repo: String,
    pub private: bool,
    pub last_activity: DateTime<Utc>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountItem {
    pub account: String,
    /// Entries in the account's log.
    pub log_size: i64,
    pub repositories: Vec<RepositoryItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Index {
    pub accounts: Vec<AccountItem>,
}

pub async fn index(pool: &PgPool, viewer: &Viewer) -> Result<Index, WebError> {
    let rows = sqlx::query(
        "SELECT l.name, coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0)
                AS size, r.repo, r.private, r.last_activity
           FROM logs l LEFT JOIN repositories r ON r.log_id = l.id
                                               AND ($1::text[] IS NULL OR r.repo = ANY($1))
          ORDER BY l.name, r.repo",
    )
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    let mut accounts: Vec<AccountItem> = Vec::new();
    for r in rows {
        let name: String = r.get("name");
        if accounts.last().is_none_or(|a| a.account != name) {
            accounts.push(AccountItem {
                account: name,
                log_size: r.get("size"),
                repositories: Vec::new(),
            });
        }
        if let Some(repo) = r.get::<Option<String>, _>("repo") {
            accounts
                .last_mut()
                .unwrap()
                .repositories
                .push(RepositoryItem {
                    url: format!("/{repo}"),
                    repo,
                    private: r.get("private"),
                    last_activity: r.get("last_activity"),
                });
        }
    }
    // Nobody learns which accounts have only repositories they cannot see.
    if !viewer.is_operator() {
        accounts.retain(|a| !a.repositories.is_empty());
    }
    Ok(Index { accounts })
}

pub async fn index_api(State(s): State<WebState>, viewer: Viewer) -> Response {
    super::api::json(async { index(&s.pool, &viewer).await }.await)
}
