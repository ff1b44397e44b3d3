//! Health for orchestrators: `/livez` (the process answers), `/readyz` (the database answers,
//! no integrity alarm, background work not stuck; JSON naming what is wrong) and `/healthz`
//! (the same answer as `/readyz`, kept for existing checks).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::PgPool;

use crate::ops::status::{self, Expectations};

#[derive(Clone)]
pub struct HealthState {
    pub pool: PgPool,
    pub expect: Expectations,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    /// What is wrong, one line each (empty when ready).
    pub problems: Vec<String>,
}

pub async fn readiness(state: &HealthState) -> Readiness {
    match status::read(&state.pool).await {
        Ok(s) => {
            let problems = s.problems(state.expect);
            Readiness {
                ready: problems.is_empty(),
                database: true,
                problems,
            }
        }
        Err(_) => Readiness {
            ready: false,
            database: false,
            problems: vec![
                "database unreachable: deliveries are refused with 503 until it is back".into(),
            ],
        },
    }
}

/// 200 while the process serves requests at all.
pub async fn livez() -> &'static str {
    "ok\n"
}

/// 200 with `{"ready": true, ...}`, or 503 naming each problem.
pub async fn readyz(State(state): State<HealthState>) -> Response {
    let r = readiness(&state).await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

/// The readiness answer as text: `ok`, or one line per problem.
pub async fn healthz(State(state): State<HealthState>) -> (StatusCode, String) {
    let r = readiness(&state).await;
    if r.ready {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r.problems.iter().map(|p| format!("{p}\n")).collect(),
        )
    }
}
