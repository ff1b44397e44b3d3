//! Running verdict's HTTP server on a database that is already migrated.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::intake::WebhookSecrets;
use crate::intake::webhook::IntakeState;
use crate::log::Sequencer;

/// Everything `serve` needs once the database is resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub secrets: WebhookSecrets,
    pub listen: SocketAddr,
    pub max_connections: u32,
    /// What puts a PR in a feature (label prefix, tracker keys) and where keys link to.
    pub features: crate::projections::features::FeatureLinking,
    /// Sign-in with GitHub, operators and the admin token.
    pub access: crate::web::access::AccessConfig,
    /// Maintain the Merkle tree and checkpoints (off only to measure what they cost).
    pub build_tree: bool,
    /// Apply the accountability rules and append findings (off in tests that count entries).
    pub judge: bool,
    /// Signs each log's checkpoints; every process sharing a database needs the same key.
    pub signer: std::sync::Arc<crate::log::checkpoint::CheckpointSigner>,
    /// Alerts and write-back into GitHub.
    pub feedback: crate::feedback::FeedbackConfig,
    /// What one client may hold, and for how long.
    pub limits: crate::web::serving::Limits,
    /// How often to reconcile GitHub's list of deliveries with the log (needs the App's
    /// credentials); `None`: never in the background.
    pub catch_up: Option<std::time::Duration>,
    /// A second address serving only `/metrics`, without a token, for the scraper
    /// (`VERDICT_METRICS_LISTEN`); without it `/metrics` wants the admin token.
    pub metrics_listen: Option<SocketAddr>,
    /// The key that signed the checkpoints so far, when `signer` takes over from it
    /// (`--rotate-key`): the handover is recorded in each log, signed by both.
    pub rotate_from: Option<std::sync::Arc<crate::log::checkpoint::CheckpointSigner>>,
}

/// A bound, running server.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where the scraper's `/metrics` listens, when asked for.
    pub metrics_addr: Option<SocketAddr>,
    /// What the server's judge writes to the outbox (a caller driving a judge itself must
    /// give it the same).
    pub outputs: std::sync::Arc<crate::feedback::messages::Outputs>,
    /// The rules the server's judge applies.
    pub rules: std::sync::Arc<crate::feedback::config::RuleConfig>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight deliveries finish their commits (for at most the
    /// shutdown grace period), then returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.handle
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "no webhook secret configured: set GITHUB_WEBHOOK_SECRET (or --webhook-secret) to the GitHub App's webhook secret"
    )]
    NoSecret,
    #[error(
        "cannot listen on {addr}: {source}. Choose another address with --listen / VERDICT_LISTEN"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    GitHub(#[from] crate::feedback::github::GitHubError),
    #[error(transparent)]
    Keys(#[from] crate::log::keys::ContinuityError),
    #[error(
        "cannot start verdict's background thread: {0}. Check the process's thread limit (ulimit -u)"
    )]
    Background(std::io::Error),
}

/// Binds and starts serving in the background.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServeError> {
    if config.secrets.is_empty() {
        return Err(ServeError::NoSecret);
    }
    let pool = crate::db::app_pool(&config.database_url, config.max_connections).await?;
    let metrics = std::sync::Arc::new(crate::ops::metrics::Metrics::new());
    let sequencer = Sequencer::new(pool.clone()).with_metrics(metrics.clone());
    let intake_load = sequencer.load();
    // Sign nothing with a key that does not continue every log's checkpoints.
    crate::log::keys::ensure_continuity(
        &pool,
        &config.signer,
        config.rotate_from.as_deref(),
        &sequencer,
    )
    .await?;
    // Background work has its own thread, runtime and pool: see crate::background.
    let background = crate::background::Background::start().map_err(ServeError::Background)?;
    let bg_pool = {
        let url = config.database_url.clone();
        background
            .handle()
            .spawn(async move { crate::db::app_pool(&url, 4).await })
            .await
            .map_err(|e| ServeError::Background(std::io::Error::other(e)))??
    };
    let in_background = background.handle().enter();
    let intake = IntakeState {
        secrets: config.secrets.clone(),
        sequencer: sequencer.clone(),
        budget: Default::default(),
        body_timeout: config.limits.body_timeout,
        metrics: metrics.clone(),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let feedback = &config.feedback;
    // The GitHub App, as a client: write-back, catch-up and backfill share it (and its cap on
    // requests in flight).
    let github_app = match &feedback.github {
        Some(app) => {
            tracing::info!(app_id = app.app_id, api = %app.api_url, mode = ?feedback.write_back,
                "GitHub App credentials set: write-back, catch-up and backfill are on");
            Some(std::sync::Arc::new(crate::github::app::GitHubApp::new(
                app,
            )?))
        }
        None => {
            tracing::info!(
                "write-back, catch-up and backfill are off: set GITHUB_APP_ID and \
                 GITHUB_APP_PRIVATE_KEY_FILE to post check runs on merged PRs, answer /decision \
                 commands, recover missed deliveries and read history"
            );
            None
        }
    };
    let github = github_app
        .clone()
        .map(|app| std::sync::Arc::new(crate::feedback::github::GitHubWriter::new(app)));
    if !feedback.alerts.is_empty() && feedback.alert_secret.is_none() {
        tracing::warn!(
            "alerts are sent unsigned: set VERDICT_ALERT_SECRET so receivers can verify them"
        );
    }
    let outputs = std::sync::Arc::new(crate::feedback::messages::Outputs {
        public_url: feedback
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string(),
        alerts: feedback.alerts.clone(),
        write_back: github.as_ref().map(|_| feedback.write_back),
    });
    // The accountability rules judge what the projector derived, and append their findings.
    let judge = config.judge.then(|| {
        crate::feedback::judge::Judge::new(bg_pool.clone(), sequencer.clone(), outputs.clone())
            .with_rules(std::sync::Arc::new(feedback.rules.clone()))
            .settling(feedback.judge_settle)
            .yielding_to_intake()
            .spawn()
    });
    // Messages leave through the outbox, whichever process wrote them.
    let dispatcher = crate::feedback::dispatcher::Dispatcher::new(
        bg_pool.clone(),
        crate::feedback::alerts::AlertSender::new(feedback.alert_secret.clone()),
        github,
        feedback.retry,
        feedback.github_spacing,
    )
    .spawn();
    // Projections follow the log in the background, never in the webhook's path.
    let projector = crate::projections::projector::Projector::new(
        bg_pool.clone(),
        config.features.label_prefix.clone(),
    )
    .with_key_pattern(config.features.key_pattern.clone())
    .yielding_to(intake_load.clone())
    .spawn(std::sync::Arc::new(tokio::sync::Notify::new()));
    let access = &config.access;
    match (
        &access.sign_in,
        access.admin_token.is_some() || !access.operators.is_empty(),
    ) {
        (Some(s), _) => tracing::info!(github = %s.github_url, client_id = %s.client_id,
            operators = access.operators.len(), "sign-in with GitHub is on"),
        (None, true) => tracing::info!(
            "sign-in with GitHub is off (set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET); \
             public repositories are shown to everyone, the rest to operators"
        ),
        (None, false) => tracing::info!(
            "no sign-in and no VERDICT_ADMIN_TOKEN: pages show public repositories only"
        ),
    }
    let access = std::sync::Arc::new(crate::web::access::Access::new(
        pool.clone(),
        access,
        &outputs.public_url,
    ));
    // Missed deliveries are recovered, and history read, in the background too.
    let catch_up = match (&github_app, config.catch_up) {
        (Some(app), Some(every)) => Some(
            crate::intake::catch_up::CatchUp::new(bg_pool.clone(), app.clone(), sequencer.clone())
                .spawn(every),
        ),
        _ => None,
    };
    let backfill = github_app.as_ref().map(|app| {
        crate::intake::backfill::Runner::new(crate::intake::backfill::Backfill::new(
            bg_pool.clone(),
            app.clone(),
            sequencer.clone(),
        ))
        .spawn(crate::intake::backfill::RUNNER_INTERVAL)
    });
    // Retention drops due bodies on its schedule, through the recorded redaction path.
    let retention = config
        .feedback
        .rules
        .retention
        .clone()
        .map(|r| crate::log::retention::spawn(bg_pool.clone(), r));
    // The Merkle tree and checkpoints follow the log in the background too.
    let tree = config.build_tree.then(|| {
        crate::log::tree::TreeBuilder::new(bg_pool, config.signer.clone())
            .yielding_to(intake_load)
            .spawn()
    });
    drop(in_background);
    let app = crate::web::router(
        pool.clone(),
        intake,
        access,
        config.signer.clone(),
        std::sync::Arc::new(config.feedback.rules.clone()),
        std::sync::Arc::new(config.features.clone()),
        crate::ops::status::Expectations {
            signing: config.build_tree,
            stuck_after: config.limits.stuck_after,
        },
    );
    // The scraper's own address: /metrics only, no token.
    let (metrics_addr, metrics_server) = match config.metrics_listen {
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .map_err(|source| ServeError::Bind { addr: at, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr: at, source })?;
            let router = crate::web::metrics_router(metrics.clone(), pool.clone());
            (
                Some(bound),
                Some(tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                })),
            )
        }
        None => (None, None),
    };
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = config.limits;
    let handle = tokio::spawn(async move {
        let served = crate::web::serving::serve(listener, app, limits, async {
            let _ = stopped.await;
        })
        .await;
        projector.abort();
        dispatcher.abort();
        if let Some(judge) = judge {
            judge.abort();
        }
        if let Some(tree) = tree {
            tree.abort();
        }
        if let Some(catch_up) = catch_up {
            catch_up.abort();
        }
        if let Some(backfill) = backfill {
            backfill.abort();
        }
        if let Some(m) = metrics_server {
            m.abort();
        }
        if let Some(r) = retention {
            r.abort();
        }
        drop(background);
        served
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        outputs,
        rules: std::sync::Arc::new(config.feedback.rules.clone()),
        handle,
        shutdown,
    })
}
