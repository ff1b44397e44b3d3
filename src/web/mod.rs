//! The HTTP surface: the router that ties intake, health and (later) pages together.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::intake::webhook::{self, IntakeState};

/// Builds the application router.
pub fn router(pool: PgPool, intake: IntakeState) -> Router {
    let webhooks = Router::new()
        .route("/webhooks/github", post(webhook::receive))
        .with_state(intake);
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(pool)
        .merge(webhooks)
        .layer(tower_http::trace::TraceLayer::new_for_http())
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
