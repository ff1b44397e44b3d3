//! The demo's local alert receiver: it stands where a team's chat or incident tool would, so
//! `verdict demo` shows the feedback loop end to end with no account anywhere. It checks each
//! alert's `X-Verdict-Signature-256` the way a real receiver should.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use tokio::net::TcpListener;

use verdict::intake::WebhookSecrets;

/// One alert as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedAlert {
    pub rule: String,
    pub repository: String,
    pub pull_request: Option<i64>,
    pub finding_url: String,
    /// Whether the signature matched the shared alert secret.
    pub signature_ok: bool,
}

/// The fields of verdict's JSON alert the demo prints.
#[derive(Deserialize)]
struct Alert {
    rule: String,
    repository: String,
    pull_request: Option<i64>,
    finding_url: String,
}

#[derive(Clone)]
struct Sink {
    secret: WebhookSecrets,
    received: Arc<Mutex<Vec<ReceivedAlert>>>,
}

/// A running receiver; it stops with the demo's runtime.
pub struct AlertSink {
    /// Where verdict sends alerts (`--alert-webhook`).
    pub url: String,
    received: Arc<Mutex<Vec<ReceivedAlert>>>,
}

impl AlertSink {
    /// Listens on a free port of the loopback interface.
    pub async fn start(secret: &str) -> std::io::Result<AlertSink> {
        let sink = Sink {
            secret: WebhookSecrets::from_list(&[secret]),
            received: Arc::default(),
        };
        let received = sink.received.clone();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/alerts", listener.local_addr()?);
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(sink);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(AlertSink { url, received })
    }

    /// What has arrived so far.
    pub fn received(&self) -> Vec<ReceivedAlert> {
        self.received.lock().expect("alert sink poisoned").clone()
    }
}

async fn receive(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("X-Verdict-Signature-256")
        .and_then(|v| v.to_str().ok());
    let signature_ok = sink.secret.verify(signature, &body).is_ok();
    let Ok(alert) = serde_json::from_slice::<Alert>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    sink.received
        .lock()
        .expect("alert sink poisoned")
        .push(ReceivedAlert {
            rule: alert.rule,
            repository: alert.repository,
            pull_request: alert.pull_request,
            finding_url: alert.finding_url,
            signature_ok,
        });
    if signature_ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}
