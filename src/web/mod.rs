//! The HTTP surface: webhook intake, health, the decision-history pages and their JSON API.

pub mod access;
pub mod accounts;
pub mod acks;
pub mod api;
pub mod coverage;
pub mod error;
pub mod feature;
pub mod filters;
pub mod findings;
pub mod hardening;
pub mod health;
pub mod history;
pub mod markdown;
pub mod outbox;
pub mod pages;
pub mod proofs;
pub mod pull;
pub mod records;
pub mod redactions;
pub mod report;
pub mod repository;
pub mod rules;
pub mod serving;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sqlx::PgPool;

use std::sync::Arc;

use crate::intake::webhook::{self, IntakeState};
use crate::log::checkpoint::CheckpointSigner;
use access::{Access, Viewer};
use error::WebError;

/// What page and API handlers share.
#[derive(Clone)]
pub struct WebState {
    pub pool: PgPool,
    /// Who may see what: sessions, sign-in, operators.
    pub access: Arc<Access>,
    /// Publishes verifier keys; checkpoints are signed by the tree builder.
    pub signer: Arc<CheckpointSigner>,
    pub checkpoints: Arc<proofs::CheckpointCache>,
    /// Appends acknowledgements (the log is the only place they live).
    pub sequencer: crate::log::Sequencer,
    /// The rules configuration the judge applies (shown on `/rules`).
    pub rules: Arc<crate::feedback::config::RuleConfig>,
    /// How PRs join features, and where tracker keys link to.
    pub features: Arc<crate::projections::features::FeatureLinking>,
    /// What `/metrics` exports.
    pub metrics: Arc<crate::ops::metrics::Metrics>,
}

impl axum::extract::FromRef<WebState> for Arc<Access> {
    fn from_ref(state: &WebState) -> Arc<Access> {
        state.access.clone()
    }
}

/// Whether a route shows what people may or may not see (and so goes through the access
/// check), or is for machines and shows nothing of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Behind [`access::resolve`]: the visibility rule applies.
    Viewer,
    /// The webhook endpoint and health: no viewer, no repository data.
    Machine,
}

/// One route of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub guard: Guard,
}

/// Adds routes and remembers each: the router is built and the route table listed by the same
/// code, so a route cannot be added without the access test seeing it.
pub trait Registrar<S>: Sized {
    fn add<H, T>(self, method: &'static str, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static;

    fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("GET", path, handler)
    }

    fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("POST", path, handler)
    }
}

struct Building<S> {
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Registrar<S> for Building<S> {
    fn add<H: Handler<T, S>, T: 'static>(
        mut self,
        method: &'static str,
        path: &'static str,
        h: H,
    ) -> Self {
        let method_router = match method {
            "GET" => get(h),
            _ => post(h),
        };
        self.router = self.router.route(path, method_router);
        self
    }
}

/// Collects the route table without building anything.
struct Listing(Vec<RouteSpec>, Guard);

impl<S> Registrar<S> for Listing {
    fn add<H: Handler<T, S>, T: 'static>(
        mut self,
        method: &'static str,
        path: &'static str,
        _: H,
    ) -> Self {
        self.0.push(RouteSpec {
            method,
            path,
            guard: self.1,
        });
        self
    }
}

/// Every route that shows something to a viewer: pages, their JSON, proofs, sign-in.
fn viewer_routes<R: Registrar<WebState>>(r: R) -> R {
    r.get("/", accounts::home_page)
        .get("/login", access::sign_in::login)
        .get("/login/callback", access::sign_in::callback)
        .post("/login/refresh", access::sign_in::refresh)
        .post("/logout", access::sign_in::logout)
        .get("/operator", access::sign_in::operator_form)
        .post("/operator", access::sign_in::operator_sign_in)
        .get("/findings", findings::page)
        .get("/rules", rules::page)
        .get("/outbox", outbox::page)
        .get("/coverage", coverage::page)
        .get("/redactions", redactions::page)
        .post("/findings/{account}/{seq}/acknowledge", acks::form)
        .get("/records/{account}/{seq}", records::page)
        .get("/records/{account}/{seq}/body", records::body)
        .post("/records/{account}/{seq}/redact", records::redact_form)
        .get("/records/{account}/{seq}/proof", proofs::record_proof_file)
        .get("/{owner}", accounts::account_page)
        .get("/{owner}/features/{feature}", feature::account_page)
        .get("/{owner}/{repo}", repository::page)
        .get("/{owner}/{repo}/report", report::page)
        .get("/{owner}/{repo}/report.csv", report::csv)
        .get("/{owner}/{repo}/pull/{number}", pull::page)
        .get("/{owner}/{repo}/features/{feature}", feature::page)
        .get("/api/", accounts::index_api)
        .get("/api/openapi.json", api::openapi)
        .get("/api/findings", findings::api)
        .get("/api/rules", rules::api)
        .get("/api/search", accounts::search_api)
        .get("/api/outbox", outbox::api)
        .get("/api/coverage", coverage::api)
        .get("/api/redactions", redactions::api)
        .post("/api/findings/{account}/{seq}/acknowledgements", acks::api)
        .get("/metrics", metrics)
        .get("/api/logs", proofs::logs)
        .get("/api/logs/{account}/key", proofs::key)
        .get("/api/logs/{account}/key-rotations", proofs::key_rotations)
        .get("/api/logs/{account}/checkpoint", proofs::checkpoint)
        .get("/api/logs/{account}/proof/inclusion", proofs::inclusion)
        .get("/api/logs/{account}/proof/consistency", proofs::consistency)
        .get("/api/records/{account}/{seq}", records::api)
        .post(
            "/api/records/{account}/{seq}/redactions",
            records::redact_api,
        )
        .get("/api/{owner}", accounts::account_api)
        .get("/api/{owner}/features/{feature}", feature::account_api)
        .get("/api/{owner}/{repo}", repository::api)
        .get("/api/{owner}/{repo}/report", report::api)
        .get("/api/{owner}/{repo}/pull/{number}", pull::api)
        .get("/api/{owner}/{repo}/features/{feature}", feature::api)
}

/// The routes for machines: GitHub's deliveries and health checks.
fn machine_routes<R: Registrar<IntakeState>>(r: R) -> R {
    r.post("/webhooks/github", webhook::receive)
}

/// Every route of the router, for tests and documentation.
pub fn route_table() -> Vec<RouteSpec> {
    let mut all = viewer_routes(Listing(Vec::new(), Guard::Viewer)).0;
    all.extend(machine_routes(Listing(Vec::new(), Guard::Machine)).0);
    for path in ["/healthz", "/livez", "/readyz", "/assets/verdict.css"] {
        all.push(RouteSpec {
            method: "GET",
            path,
            guard: Guard::Machine,
        });
    }
    all
}

/// Builds the application router.
pub fn router(
    pool: PgPool,
    intake: IntakeState,
    access: Arc<Access>,
    signer: Arc<CheckpointSigner>,
    rules: Arc<crate::feedback::config::RuleConfig>,
    features: Arc<crate::projections::features::FeatureLinking>,
    expect: crate::ops::status::Expectations,
) -> Router {
    let sequencer = intake.sequencer.clone();
    let metrics = intake.metrics.clone();
    let health = health::HealthState {
        pool: pool.clone(),
        expect,
    };
    let webhooks = machine_routes(Building {
        router: Router::new(),
    })
    .router
    .with_state(intake);
    let state = WebState {
        pool: pool.clone(),
        access: access.clone(),
        signer,
        checkpoints: Arc::default(),
        sequencer,
        rules,
        features,
        metrics: metrics.clone(),
    };
    // Everything a viewer reads goes through the access middleware, unknown addresses
    // included (their 404 says whether signing in might help).
    let viewed = viewer_routes(Building {
        router: Router::new(),
    })
    .router
    // Names in paths are checked (after the viewer is known, so a 400 page says who is
    // looking) before any handler sees them.
    .route_layer(axum::middleware::from_fn(hardening::check_names))
    .fallback(not_found)
    .layer(axum::middleware::from_fn_with_state(
        access,
        access::resolve,
    ))
    .with_state(state);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .with_state(health)
        .route("/assets/verdict.css", get(hardening::stylesheet))
        .merge(webhooks)
        .merge(viewed)
        .layer(axum::middleware::from_fn(hardening::browser_headers))
        .layer(axum::middleware::from_fn_with_state(metrics, time_requests))
        // Failed requests are logged by the handlers that know why; the trace layer's own
        // failure lines would let any client fill the log.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
}

/// Unknown addresses: JSON under `/api/`, a page elsewhere (each says whether signing in
/// might show more).
async fn not_found(viewer: Viewer, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        api::not_found(&viewer, &uri)
    } else {
        pages::not_found(&viewer, &uri)
    }
}

/// An error answered before a handler ran (by the access middleware): JSON under `/api/`,
/// a page elsewhere.
pub fn respond_error(uri: &Uri, viewer: &Viewer, err: WebError) -> Response {
    if uri.path().starts_with("/api/") {
        api::error(err)
    } else {
        pages::error_page(viewer, err)
    }
}

/// `owner/name` as GitHub writes it in payloads.
pub fn repo_name(owner: &str, name: &str) -> String {
    format!("{owner}/{name}")
}

/// A PR number from the path, or a 400 that says what a PR number is.
pub fn parse_number(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        WebError::BadRequest(format!(
            "{raw:?} is not a pull request number; use the number GitHub shows, e.g. /pull/42"
        ))
    })
}

/// Times every request by its route template (`/{owner}/{repo}`, never the concrete path, so
/// the label set stays small) and status.
async fn time_requests(
    State(metrics): State<Arc<crate::ops::metrics::Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.http(&route, response.status().as_u16(), started.elapsed());
    response
}

/// `/metrics` for operators (the admin token as Bearer, or an operator's session); a
/// scraper without the token uses the separate `VERDICT_METRICS_LISTEN` address.
async fn metrics(State(s): State<WebState>, viewer: Viewer) -> Response {
    if !viewer.is_operator() {
        return api::error(WebError::Unauthorized(
            "metrics are for operators: send VERDICT_ADMIN_TOKEN as a Bearer token, or scrape \
             the VERDICT_METRICS_LISTEN address"
                .into(),
        ));
    }
    metrics_text(&s.metrics, &s.pool).await
}

/// The metrics answer.
pub async fn metrics_text(metrics: &crate::ops::metrics::Metrics, pool: &PgPool) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::ops::metrics::CONTENT_TYPE,
        )],
        metrics.render(pool, pool).await,
    )
        .into_response()
}

/// The router of the separate metrics address: `/metrics` only, no token.
pub fn metrics_router(metrics: Arc<crate::ops::metrics::Metrics>, pool: PgPool) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, pool) = (metrics.clone(), pool.clone());
            async move { metrics_text(&metrics, &pool).await }
        }),
    )
}
