//! The HTTP surface: webhook intake, health, the decision-history pages and their JSON API.

pub mod access;
pub mod acks;
pub mod api;
pub mod error;
pub mod filters;
pub mod markdown;
pub mod outbox;
pub mod pages;
pub mod proofs;
pub mod report;
pub mod serving;
pub mod views;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sqlx::PgPool;

use std::sync::Arc;

use crate::intake::webhook::{self, IntakeState};
use crate::log::checkpoint::CheckpointSigner;
use access::{HasOperatorToken, OperatorToken};
use error::WebError;

/// What page and API handlers share.
#[derive(Clone)]
pub struct WebState {
    pub pool: PgPool,
    /// `None`: no operator; private repositories are shown to nobody.
    pub operator: Option<OperatorToken>,
    /// Publishes verifier keys; checkpoints are signed by the tree builder.
    pub signer: Arc<CheckpointSigner>,
    pub checkpoints: Arc<proofs::CheckpointCache>,
    /// Appends acknowledgements (the log is the only place they live).
    pub sequencer: crate::log::Sequencer,
}

impl HasOperatorToken for WebState {
    fn operator_token(&self) -> Option<&OperatorToken> {
        self.operator.as_ref()
    }
}

/// Builds the application router.
pub fn router(
    pool: PgPool,
    intake: IntakeState,
    operator: Option<OperatorToken>,
    signer: Arc<CheckpointSigner>,
) -> Router {
    let sequencer = intake.sequencer.clone();
    let webhooks = Router::new()
        .route("/webhooks/github", post(webhook::receive))
        .with_state(intake);
    let state = WebState {
        pool: pool.clone(),
        operator,
        signer,
        checkpoints: Arc::default(),
        sequencer,
    };
    let api = Router::new()
        .route("/", get(api::index))
        .route("/openapi.json", get(api::openapi))
        .route("/findings", get(api::findings))
        .route("/outbox", get(api::outbox))
        .route(
            "/findings/{account}/{seq}/acknowledgements",
            post(api::acknowledge),
        )
        .route("/logs", get(proofs::logs))
        .route("/logs/{account}/key", get(proofs::key))
        .route("/logs/{account}/checkpoint", get(proofs::checkpoint))
        .route("/logs/{account}/proof/inclusion", get(proofs::inclusion))
        .route(
            "/logs/{account}/proof/consistency",
            get(proofs::consistency),
        )
        .route("/records/{account}/{seq}", get(api::record))
        .route("/{owner}/{repo}", get(api::repository))
        .route("/{owner}/{repo}/report", get(api::report))
        .route("/{owner}/{repo}/pull/{number}", get(api::pull))
        .route("/{owner}/{repo}/features/{feature}", get(api::feature))
        .fallback(api::not_found)
        .with_state(state.clone());
    let pages = Router::new()
        .route("/", get(pages::index))
        .route(
            "/operator",
            get(pages::operator_form).post(pages::operator_sign_in),
        )
        .route("/operator/sign-out", post(pages::operator_sign_out))
        .route("/findings", get(pages::findings))
        .route("/outbox", get(pages::outbox))
        .route(
            "/findings/{account}/{seq}/acknowledge",
            post(pages::acknowledge),
        )
        .route("/records/{account}/{seq}", get(pages::record))
        .route(
            "/records/{account}/{seq}/proof",
            get(proofs::record_proof_file),
        )
        .route("/{owner}/{repo}", get(pages::repository))
        .route("/{owner}/{repo}/report", get(pages::report))
        .route("/{owner}/{repo}/report.csv", get(pages::report_csv))
        .route("/{owner}/{repo}/pull/{number}", get(pages::pull))
        .route("/{owner}/{repo}/features/{feature}", get(pages::feature))
        .fallback(pages::not_found)
        .with_state(state.clone());
    // The API's index is addressed with its trailing slash too, as the OpenAPI document does.
    let api_index = Router::new()
        .route("/api/", get(api::index))
        .with_state(state.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(pool)
        .merge(webhooks)
        .merge(api_index)
        .nest("/api", api)
        .merge(pages)
        // Failed requests are logged by the handlers that know why; the trace layer's own
        // failure lines would let any client fill the log.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
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

/// 200 when verdict can reach its database (and so can store deliveries), 503 otherwise.
async fn healthz(State(pool): State<PgPool>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&pool).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable: deliveries are refused with 503 until it is back\n",
        ),
    }
}
