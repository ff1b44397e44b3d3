//! Server-rendered pages (askama): readable without JavaScript, printable, one address per
//! thing so reviewers can paste links into PRs. Every handler takes the [`Viewer`] the access
//! middleware resolved; what it shows follows the visibility rule in `access`.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::access::Viewer;
use super::error::WebError;
use super::filters::Filters;
use super::views::{self, FeaturePage, PullPage, RepositoryPage};
use super::{WebState, parse_number, repo_name};

/// The decision filter's choices, in words.
fn kind_choices() -> &'static [super::filters::KindGroup] {
    super::filters::GROUPS
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

#[derive(Template)]
#[template(path = "report.html")]
struct ReportHtml {
    viewer: Viewer,
    api_url: String,
    page: super::report::ReportPage,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxHtml {
    viewer: Viewer,
    api_url: String,
    page: super::outbox::OutboxPage,
}

#[derive(Template)]
#[template(path = "findings.html")]
struct FindingsHtml {
    viewer: Viewer,
    api_url: String,
    rules: &'static [crate::feedback::rules::Rule],
    page: views::FindingsPage,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorHtml {
    viewer: Viewer,
    api_url: String,
    title: &'static str,
    message: String,
}

/// Renders a template, or the error page when something failed on the way.
pub(super) fn respond<T: Template>(viewer: &Viewer, result: Result<T, WebError>) -> Response {
    match result.and_then(|t| t.render().map_err(WebError::from)) {
        Ok(html) => Html(html).into_response(),
        Err(err) => error_page(viewer, err),
    }
}

/// The HTML page for an error: its status, a title and the one-line reason.
pub fn error_page(viewer: &Viewer, err: WebError) -> Response {
    if matches!(
        err,
        WebError::Database(_) | WebError::Render(_) | WebError::Internal(_)
    ) {
        tracing::error!(error = %err, "page failed");
    }
    let page = ErrorHtml {
        viewer: viewer.clone(),
        api_url: String::new(),
        title: err.title(),
        message: err.shown(),
    };
    let body = page
        .render()
        .unwrap_or_else(|_| format!("{}: {}", err.title(), err.shown()));
    (err.status(), Html(body)).into_response()
}

pub(super) fn api_url(uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("/api{}?{q}", uri.path()),
        None => format!("/api{}", uri.path()),
    }
}

pub async fn repository(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let repo = repo_name(&owner, &name);
        let page = views::repository(&s.pool, &repo, &filters, &viewer).await?;
        Ok(RepositoryHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            path: uri.path().to_string(),
            kinds: kind_choices(),
            show_pr: true,
            page,
        })
    }
    .await;
    respond(&viewer, result)
}

pub async fn pull(
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
        let page = views::pull(&s.pool, &repo, number, &filters, &viewer).await?;
        Ok(PullHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            path: uri.path().to_string(),
            kinds: kind_choices(),
            show_pr: false,
            page,
        })
    }
    .await;
    respond(&viewer, result)
}

pub async fn feature(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name, key)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let repo = repo_name(&owner, &name);
        let mut page = views::feature(&s.pool, &repo, &key, &filters, &viewer).await?;
        page.link_tracker(&s.features);
        Ok(FeatureHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            path: uri.path().to_string(),
            kinds: kind_choices(),
            show_pr: true,
            page,
        })
    }
    .await;
    respond(&viewer, result)
}

/// `/{owner}/features/{feature}`: the feature across the account's repositories.
pub async fn account_feature(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = Filters::parse(&params)?;
        let mut page = views::account_feature(&s.pool, &owner, &key, &filters, &viewer).await?;
        page.link_tracker(&s.features);
        Ok(FeatureHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            path: uri.path().to_string(),
            kinds: kind_choices(),
            show_pr: true,
            page,
        })
    }
    .await;
    respond(&viewer, result)
}

pub fn not_found(viewer: &Viewer, uri: &Uri) -> Response {
    error_page(
        viewer,
        WebError::NotFound(format!(
            "there is no page at {}; addresses look like /OWNER, /OWNER/REPO, /OWNER/REPO/pull/N, /OWNER/REPO/features/KEY or /records/ACCOUNT/N{}",
            uri.path(),
            viewer.not_found_hint()
        )),
    )
}

pub async fn findings(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filters = views::FindingFilters::parse(&params)?;
        Ok(FindingsHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            rules: crate::feedback::rules::RULES,
            page: views::findings(&s.pool, &filters, &viewer).await?,
        })
    }
    .await;
    respond(&viewer, result)
}

/// The attempts page: every alert and GitHub message, with each attempt to send it.
pub async fn outbox(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let state = params.get("state").filter(|s| !s.is_empty()).cloned();
    let result = async {
        Ok(OutboxHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            page: super::outbox::outbox(&s.pool, state, &viewer).await?,
        })
    }
    .await;
    respond(&viewer, result)
}

/// The acknowledge form on the findings page (the access middleware has checked its CSRF
/// token and origin). Shows the acknowledgement's own record once it is durable.
pub async fn acknowledge(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    Form(request): Form<super::acks::AckRequest>,
) -> Response {
    match super::acks::acknowledge(&s, &viewer, &account, &seq, request).await {
        Ok(receipt) => Redirect::to(&receipt.record_url).into_response(),
        Err(err) => error_page(&viewer, err),
    }
}

/// The repository's weekly report.
pub async fn report(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let result = async {
        Ok(ReportHtml {
            viewer: viewer.clone(),
            api_url: api_url(&uri),
            page: super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await?,
        })
    }
    .await;
    respond(&viewer, result)
}

/// The report's weekly table as a CSV download.
pub async fn report_csv(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    match super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{owner}-{name}-report.csv\""),
                ),
            ],
            page.csv(),
        )
            .into_response(),
        Err(err) => error_page(&viewer, err),
    }
}
