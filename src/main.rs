//! The `verdict` binary: the command-line edge. Library errors become `anyhow` here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use verdict::db;
use verdict::intake::WebhookSecrets;
use verdict::log::verify::{ExpectedHead, VerifyError, verify_log};
use verdict::server::{self, ServerConfig};

mod audit_cli;
mod demo;
mod demo_sink;

/// verdict keeps GitHub review and merge decisions in an append-only, hash-chained log.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive GitHub webhooks and append them to the log.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations, then exit.
    Migrate(DbArgs),
    /// Recompute every hash of one log or all logs and print their heads.
    Verify(VerifyArgs),
    /// Rebuild every projection (decision records, pull requests, features) from the log.
    Reproject(ReprojectArgs),
    /// Accountability rules: `verdict rules rerun` judges the whole history again.
    Rules(RulesArgs),
    /// Start verdict on a private database and replay a bundled feature story through it.
    Demo(DemoArgs),
    /// Create the Ed25519 key that signs the logs' checkpoints.
    Keygen(audit_cli::KeygenArgs),
    /// Write one account's log, checkpoint and verifier key to a bundle for offline audit.
    Export(audit_cli::ExportArgs),
    /// Check a bundle completely, without verdict's database.
    VerifyBundle(audit_cli::VerifyBundleArgs),
    /// Check one record's downloaded proof (.tlog-proof) against a verifier key.
    VerifyProof(audit_cli::VerifyProofArgs),
    /// Prove that a server's current checkpoint extends one saved earlier (as a witness does).
    Monitor(audit_cli::MonitorArgs),
    /// Reconcile GitHub's list of the App's deliveries with the log now, and ask GitHub to
    /// send again the ones the log lacks.
    CatchUp(CatchUpArgs),
    /// Read a repository's history (pull requests, reviews, comments, checks) from GitHub's
    /// API into the log.
    Backfill(BackfillArgs),
    /// Exit 0 when a running server is ready (its /readyz answers 200), 1 otherwise: for
    /// container health checks.
    Healthcheck(HealthcheckArgs),
    /// Print, per log, its size, how much is signed, projected and judged, the outbox and any
    /// integrity alarm.
    Status(DbArgs),
    /// Erase an entry's body (or named fields of it), keeping every hash and proof valid; the
    /// erasure is recorded in the log as a `verdict-redaction` entry.
    Redact(RedactArgs),
    /// Drop now the bodies the rules configuration's [retention] section says are due (serve
    /// does it on its schedule).
    Retention(RetentionArgs),
}

#[derive(Args)]
struct RetentionArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The rules configuration holding the [retention] section.
    #[arg(long, env = "VERDICT_RULES_CONFIG")]
    rules_config: PathBuf,
}

#[derive(Args)]
struct RedactArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The log (account) holding the entry.
    #[arg(long, required_unless_present = "user")]
    log: Option<String>,
    /// The entry's position in the log.
    #[arg(long, required_unless_present = "user")]
    seq: Option<u64>,
    /// Instead of one entry: every text this GitHub login wrote (comment, review, pull
    /// request and issue bodies), in every log, for a deletion request.
    #[arg(long, conflicts_with_all = ["log", "seq", "fields"])]
    user: Option<String>,
    /// With --user: print the plan and change nothing.
    #[arg(long, requires = "user")]
    dry_run: bool,
    /// Why, in words (recorded in the log).
    #[arg(long)]
    reason: String,
    /// Who asked for it or did it (recorded in the log).
    #[arg(long)]
    by: String,
    /// Only these JSON fields, dotted and comma-separated (e.g. comment.body,review.body): a
    /// redacted copy keeps the rest readable. Default: the whole body.
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Whole body only: also erase the decision records derived from the entry. By default
    /// its skeleton stays (identities, states, times, names; every text `[redacted]`), so
    /// the history of who decided what survives.
    #[arg(long, conflicts_with_all = ["fields", "user"])]
    erase_records: bool,
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The server's address; default: http://127.0.0.1 on VERDICT_LISTEN's port.
    #[arg(long, env = "VERDICT_HEALTHCHECK_URL")]
    url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

#[derive(Args)]
struct BackfillArgs {
    /// The repository, OWNER/REPO.
    repo: String,
    /// Only pull requests updated on or after this day (YYYY-MM-DD).
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
    /// Send alerts and write-back for findings on this history too (by default they are
    /// recorded and shown, not sent).
    #[arg(long)]
    alert_history: bool,
    #[command(flatten)]
    reproject: ReprojectArgs,
    #[command(flatten)]
    feedback: FeedbackArgs,
}

#[derive(Args)]
struct CatchUpArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    feedback: FeedbackArgs,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// PostgreSQL URL. Without it, a private cluster is started in --data-dir from the
    /// installed PostgreSQL server binaries.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where verdict keeps its private PostgreSQL cluster when no DATABASE_URL is given.
    #[arg(long, env = "VERDICT_DATA_DIR", default_value = ".verdict")]
    data_dir: PathBuf,
    /// Password of the verdict_runtime login role the server runs as (set by `migrate` and
    /// `serve`). Without it, one is made and kept in --data-dir.
    #[arg(long, env = "VERDICT_APP_DATABASE_PASSWORD", hide_env_values = true)]
    app_database_password: Option<String>,
}

impl DbArgs {
    /// The URL the server logs in with (see `verdict::db::roles`), warning when that login
    /// could get round the log's protections.
    async fn runtime_url(&self, admin_url: &str, app_url: Option<&str>) -> anyhow::Result<String> {
        let url = db::roles::runtime_url(
            admin_url,
            app_url,
            self.app_database_password.as_deref(),
            &self.data_dir,
        )
        .await?;
        let login = db::roles::login(&url).await?;
        match login.warning() {
            Some(warning) => tracing::warn!("{warning}"),
            None => {
                tracing::info!(user = %login.user, "the server logs in as a role that may only read and append the log")
            }
        }
        Ok(url)
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// GitHub App webhook secret(s); several, comma-separated, while rotating.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    webhook_secret: Vec<String>,
    /// Address to listen on.
    #[arg(long, env = "VERDICT_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Most database connections the server opens.
    #[arg(long, env = "VERDICT_DB_CONNECTIONS", default_value_t = 16)]
    db_connections: u32,
    /// Label prefix that puts a PR in a feature (`feature: checkout`).
    #[arg(long, env = "VERDICT_FEATURE_LABEL_PREFIX", default_value = verdict::projections::features::DEFAULT_LABEL_PREFIX)]
    feature_label_prefix: String,
    /// Tracker keys (Jira, Linear) in PR titles and branch names put the PR in the feature of
    /// that key, e.g. `[A-Z][A-Z0-9]+-[0-9]+` (a regular expression; `(?i)` for any case).
    #[arg(long, env = "VERDICT_FEATURE_KEY_PATTERN", value_parser = key_pattern)]
    feature_key_pattern: Option<regex::Regex>,
    /// Where a tracker key's issue is, `{key}` standing for the key, e.g.
    /// `https://linear.app/acme/issue/{key}`.
    #[arg(long, env = "VERDICT_FEATURE_KEY_URL")]
    feature_key_url: Option<String>,
    #[command(flatten)]
    access: AccessArgs,
    /// Key that signs the logs' checkpoints (from `verdict keygen`). Without it, verdict
    /// keeps one in --data-dir, generating it on first start.
    #[arg(long, env = "VERDICT_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
    /// The URL the server's connections log in with: a role that may only read and append
    /// the log, as `verdict migrate` prints it. Without DATABASE_URL, serve then runs on it
    /// alone (and needs the database migrated already). Default: verdict_runtime, set up
    /// through DATABASE_URL.
    #[arg(long, env = "VERDICT_APP_DATABASE_URL", hide_env_values = true)]
    app_database_url: Option<String>,
    /// Hand the logs' checkpoints over from this key file (the key that signed them so far)
    /// to --signing-key: each log records the rotation, signed by both keys, so verifiers that
    /// trust the old key follow to the new one. Without it, `serve` refuses a key that did not
    /// sign the newest checkpoints.
    #[arg(long, value_name = "OLD_KEY_FILE")]
    rotate_key: Option<PathBuf>,
    /// Don't maintain the Merkle tree and checkpoints: only for measuring what they cost.
    #[arg(long, hide = true)]
    no_merkle: bool,
    /// A second address serving only /metrics, without a token, for a Prometheus scraper
    /// (keep it off the internet); without it, /metrics wants the admin token as Bearer.
    #[arg(long, env = "VERDICT_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Connections open at once; past it, new ones are closed at once.
    #[arg(long, env = "VERDICT_MAX_CONNECTIONS", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    max_connections: u32,
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open).
    #[arg(long, env = "VERDICT_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    header_timeout: u64,
    /// Seconds between two reconciliations of GitHub's list of deliveries with the log
    /// (needs the App's credentials); 0: only `verdict catch-up`.
    #[arg(long, env = "VERDICT_CATCH_UP_INTERVAL", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    catch_up_interval: u64,
    /// Seconds a client has to send a webhook's whole body (GitHub gives up after 10).
    #[arg(long, env = "VERDICT_BODY_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    body_timeout: u64,
    /// Seconds an entry may wait for the checkpoint signer or the projector before /readyz
    /// (and `verdict healthcheck`) report the server not ready.
    #[arg(long, env = "VERDICT_STUCK_AFTER", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(5..=86_400))]
    stuck_after: u64,
    #[command(flatten)]
    feedback: FeedbackArgs,
}

/// Who may see what: sign-in with GitHub, operators, the admin token.
#[derive(Args, Clone)]
struct AccessArgs {
    /// The GitHub App's client ID (its settings page, "Client ID"): with the secret, turns on
    /// sign-in with GitHub.
    #[arg(long, env = "GITHUB_CLIENT_ID", requires = "github_client_secret")]
    github_client_id: Option<String>,
    /// The GitHub App's client secret ("Generate a new client secret").
    #[arg(
        long,
        env = "GITHUB_CLIENT_SECRET",
        hide_env_values = true,
        requires = "github_client_id"
    )]
    github_client_secret: Option<String>,
    /// Where people sign in to GitHub (GitHub Enterprise Server: https://HOST).
    #[arg(long, env = "GITHUB_URL", default_value = "https://github.com")]
    github_url: String,
    /// GitHub logins who see every repository (comma-separated).
    #[arg(long, env = "VERDICT_OPERATORS", value_delimiter = ',')]
    operators: Vec<String>,
    /// Operator token for scripts (`Authorization: Bearer`) and for a browser once through
    /// /operator: its holder sees every repository.
    #[arg(long, env = "VERDICT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl AccessArgs {
    fn config(&self, api_url: &str) -> verdict::web::access::AccessConfig {
        let sign_in = match (&self.github_client_id, &self.github_client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Some(verdict::github::sign_in::SignInConfig {
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                    github_url: self.github_url.trim_end_matches('/').to_string(),
                    api_url: api_url.trim_end_matches('/').to_string(),
                })
            }
            _ => None,
        };
        verdict::web::access::AccessConfig {
            sign_in,
            admin_token: self.admin_token.clone().filter(|t| !t.trim().is_empty()),
            operators: self.operators.clone(),
            github_url: Some(self.github_url.trim_end_matches('/').to_string()),
        }
    }
}

/// What leaves verdict: alerts and write-back into GitHub.
#[derive(Args, Clone)]
struct FeedbackArgs {
    /// Where verdict's pages are reachable from outside, for the links in alerts and on
    /// GitHub. Default: http://<listen address>.
    #[arg(long, env = "VERDICT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Outgoing webhooks that receive each finding, comma-separated. Slack incoming-webhook
    /// URLs (and any URL prefixed `slack+`) get Slack's format, others verdict's JSON.
    #[arg(
        long = "alert-webhook",
        env = "VERDICT_ALERT_WEBHOOKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    alert_webhooks: Vec<String>,
    /// Signs alert bodies: `X-Verdict-Signature-256: sha256=<HMAC-SHA256 hex>`.
    #[arg(long, env = "VERDICT_ALERT_SECRET", hide_env_values = true)]
    alert_secret: Option<String>,
    /// The GitHub App's id (its settings page, "App ID"). With the private key, turns on
    /// write-back: check runs on merged PRs and answers to /decision commands.
    #[arg(long, env = "GITHUB_APP_ID", requires = "github_private_key")]
    github_app_id: Option<u64>,
    /// The GitHub App's private key (.pem file).
    #[arg(long, env = "GITHUB_APP_PRIVATE_KEY_FILE", requires = "github_app_id")]
    github_private_key: Option<PathBuf>,
    /// GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api_url: String,
    /// How a merged or closed PR hears from verdict: check-run or comment.
    #[arg(long, env = "VERDICT_WRITE_BACK", default_value = "check-run")]
    write_back: verdict::feedback::github::WriteBackMode,
    /// TOML file saying which rules apply to which repositories, at which severity
    /// (README, "Rules"). Default: every rule everywhere.
    #[arg(long, env = "VERDICT_RULES_CONFIG")]
    rules_config: Option<PathBuf>,
    /// Attempts at delivering an alert or a write-back before it is marked failed on
    /// /outbox.
    #[arg(long, env = "VERDICT_RETRY_ATTEMPTS", default_value_t = 20,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    retry_attempts: i32,
    /// Seconds to wait before the second attempt; doubled after each failure.
    #[arg(long, env = "VERDICT_RETRY_FIRST_DELAY", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    retry_first_delay: u64,
    /// Seconds after a pull request's last record before the rules judge it: deliveries arrive
    /// out of order, and a merge judged before its approval arrives would be judged wrong.
    #[arg(long, env = "VERDICT_JUDGE_SETTLE", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    judge_settle: u64,
    /// Longest wait between two attempts, in seconds.
    #[arg(long, env = "VERDICT_RETRY_MAX_DELAY", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    retry_max_delay: u64,
}

impl FeedbackArgs {
    fn config(&self) -> anyhow::Result<verdict::feedback::FeedbackConfig> {
        let alerts = self
            .alert_webhooks
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|u| verdict::feedback::alerts::parse_target(u).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let github = match (self.github_app_id, &self.github_private_key) {
            (Some(app_id), Some(path)) => Some(verdict::feedback::github::GitHubAppConfig {
                app_id,
                private_key_pem: std::fs::read(path).with_context(|| {
                    format!(
                        "reading the GitHub App private key {}; download it from the App's settings page",
                        path.display()
                    )
                })?,
                api_url: self.github_api_url.trim_end_matches('/').to_string(),
            }),
            _ => None,
        };
        Ok(verdict::feedback::FeedbackConfig {
            public_url: self.public_url.clone(),
            alerts,
            alert_secret: self.alert_secret.clone().filter(|s| !s.is_empty()),
            github,
            write_back: self.write_back,
            retry: verdict::feedback::outbox::RetryPolicy {
                first_delay: std::time::Duration::from_secs(self.retry_first_delay),
                max_delay: std::time::Duration::from_secs(
                    self.retry_max_delay.max(self.retry_first_delay),
                ),
                max_attempts: self.retry_attempts,
            },
            github_spacing: std::time::Duration::from_secs(1),
            judge_settle: std::time::Duration::from_secs(self.judge_settle),
            rules: match &self.rules_config {
                Some(path) => verdict::feedback::config::RuleConfig::load(path)?,
                None => Default::default(),
            },
        })
    }

    /// The judge's outputs outside `serve` (`rules rerun`): links need a public URL.
    fn outputs(&self) -> anyhow::Result<std::sync::Arc<verdict::feedback::messages::Outputs>> {
        let config = self.config()?;
        Ok(std::sync::Arc::new(verdict::feedback::messages::Outputs {
            public_url: config
                .public_url
                .unwrap_or_else(|| "http://127.0.0.1:3000".into())
                .trim_end_matches('/')
                .to_string(),
            alerts: config.alerts,
            write_back: config.github.map(|_| config.write_back),
        }))
    }
}

#[derive(Args)]
struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Apply every rule to the whole history; findings not yet in the log are appended
    /// (the ones already there are not repeated) and alerted as `serve` would.
    Rerun(RerunArgs),
}

#[derive(Args)]
struct RerunArgs {
    #[command(flatten)]
    reproject: ReprojectArgs,
    #[command(flatten)]
    feedback: FeedbackArgs,
}

#[derive(Args)]
struct ReprojectArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Label prefix that puts a PR in a feature.
    #[arg(long, env = "VERDICT_FEATURE_LABEL_PREFIX", default_value = verdict::projections::features::DEFAULT_LABEL_PREFIX)]
    feature_label_prefix: String,
    /// Tracker keys in PR titles and branch names (as `serve --feature-key-pattern`).
    #[arg(long, env = "VERDICT_FEATURE_KEY_PATTERN", value_parser = key_pattern)]
    feature_key_pattern: Option<regex::Regex>,
}

/// A tracker key pattern: a regular expression that matches no empty key.
fn key_pattern(text: &str) -> Result<regex::Regex, String> {
    let pattern = regex::Regex::new(text).map_err(|e| {
        format!("{text:?} is not a regular expression ({e}); e.g. [A-Z][A-Z0-9]+-[0-9]+")
    })?;
    if pattern.is_match("") {
        return Err(format!(
            "{text:?} matches an empty text: every pull request would join a feature; e.g. [A-Z][A-Z0-9]+-[0-9]+"
        ));
    }
    Ok(pattern)
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only this log (a GitHub account login, lower-case). Default: every log.
    #[arg(long)]
    log: Option<String>,
    /// A head printed by an earlier run (SIZE:HASH): the log must still contain it, which
    /// catches truncation and rewritten history past the newest checkpoint. Needs --log.
    #[arg(long, requires = "log")]
    head: Option<ExpectedHead>,
    /// The log's verifier key (`<origin>+<id>+<key>`, as /api/logs/ACCOUNT/key serves it):
    /// the newest checkpoint must be signed by it. Needs --log. Without it, the server's own
    /// key (--signing-key, or the one kept in --data-dir) is used when it is there.
    #[arg(long, requires = "log")]
    key: Option<String>,
    /// The server's checkpoint signing key file.
    #[arg(long, env = "VERDICT_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "VERDICT_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Replay, verify, print, and exit instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

/// Log lines on stderr: coloured for a terminal, plain when written to a file or a pipe, one
/// JSON object per line with `VERDICT_LOG_FORMAT=json` (for log shippers).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VERDICT_LOG")
        .unwrap_or_else(|_| "verdict=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("VERDICT_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().flatten_event(true).init(),
        Ok("text") | Err(_) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            builder.with_ansi(std::io::stderr().is_terminal()).init();
            tracing::warn!("VERDICT_LOG_FORMAT={other:?} is not json or text; writing text");
        }
    }
}

fn main() -> ExitCode {
    return_large_buffers_to_the_system();
    init_logging();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("verdict: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Status(args) => status(args).await,
        Command::Redact(args) => redact(args).await,
        Command::Retention(args) => {
            let config = verdict::feedback::config::RuleConfig::load(&args.rules_config)?;
            let retention = config.retention.with_context(|| {
                format!("{} has no [retention] section", args.rules_config.display())
            })?;
            let db = open_db(&args.db, db::Migrations::Apply).await?;
            let pool = db::app_pool(&db.url, 2).await?;
            let erased = verdict::log::retention::run(&pool, &retention).await;
            stop_cluster(&db);
            println!(
                "retention: {} bodies dropped, each batch recorded as a redaction entry",
                erased?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            let db = open_db(&args, db::Migrations::Apply).await?;
            println!("migrations applied to {}", db::redact(&db.url));
            let runtime = args.runtime_url(&db.url, None).await?;
            if runtime != db.url {
                println!(
                    "the server logs in as {} (it may only read and append the log):\nVERDICT_APP_DATABASE_URL={runtime}",
                    db::roles::RUNTIME_ROLE
                );
            }
            stop_cluster(&db);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify(args).await,
        Command::CatchUp(args) => catch_up(args).await,
        Command::Backfill(args) => backfill(args).await,
        Command::Keygen(args) => audit_cli::keygen(args),
        Command::Export(args) => audit_cli::export(args).await,
        Command::VerifyBundle(args) => audit_cli::verify_bundle(args),
        Command::VerifyProof(args) => audit_cli::verify_proof(args),
        Command::Monitor(args) => audit_cli::monitor(args).await,
        Command::Rules(RulesArgs {
            command:
                RulesCommand::Rerun(RerunArgs {
                    reproject: args,
                    feedback,
                }),
        }) => {
            let outputs = feedback.outputs()?;
            let rules = std::sync::Arc::new(feedback.config()?.rules);
            let db = open_db(&args.db, db::Migrations::Apply).await?;
            let pool = db::app_pool(&db.url, 2).await?;
            // Judge what the log says now: bring the projections up to date first.
            verdict::projections::projector::Projector::new(
                pool.clone(),
                args.feature_label_prefix,
            )
            .with_key_pattern(args.feature_key_pattern)
            .catch_up()
            .await?;
            for table in ["judge_cursors", "judge_pending"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&pool)
                    .await?;
            }
            let judge = verdict::feedback::judge::Judge::new(
                pool.clone(),
                verdict::log::Sequencer::new(pool.clone()),
                outputs,
            )
            .with_rules(rules);
            let appended = judge.catch_up().await?;
            println!("judged the whole history: {appended} new findings appended to the log");
            stop_cluster(&db);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reproject(args) => {
            let db = open_db(&args.db, db::Migrations::Apply).await?;
            let pool = db::app_pool(&db.url, 2).await?;
            let projector =
                verdict::projections::projector::Projector::new(pool, args.feature_label_prefix)
                    .with_key_pattern(args.feature_key_pattern);
            let done = projector.rebuild().await?;
            println!(
                "reprojected {} entries: {} decision records, {} entries not understood (kept in the log)",
                done.entries, done.decisions, done.problems
            );
            stop_cluster(&db);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            demo::run(
                args.db.database_url.as_deref().filter(|u| !u.is_empty()),
                &args.db.data_dir,
                args.listen,
                !args.no_wait,
            )
            .await
        }
    }
}

async fn open_db(args: &DbArgs, migrations: db::Migrations) -> anyhow::Result<db::Database> {
    if args.database_url.is_none() {
        eprintln!(
            "no DATABASE_URL: using a private PostgreSQL cluster in {}",
            args.data_dir.join("postgres").display()
        );
    }
    Ok(db::open(
        args.database_url.as_deref().filter(|u| !u.is_empty()),
        &args.data_dir,
        migrations,
    )
    .await?)
}

/// Stops the private cluster if this process started it (one another process started, such as
/// a running `serve`, is left alone).
fn stop_cluster(db: &db::Database) {
    if let Some(cluster) = &db.cluster
        && cluster.started_here()
        && let Err(err) = cluster.stop()
    {
        eprintln!("verdict: stopping the private cluster: {err}");
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let secrets = WebhookSecrets::from_list(&args.webhook_secret);
    // What can be refused without a database is refused before one is started.
    if secrets.is_empty() {
        return Err(server::ServeError::NoSecret.into());
    }
    let (signer, key_path, generated) =
        verdict::log::checkpoint::load_or_generate(args.signing_key.as_deref(), &args.db.data_dir)?;
    if generated {
        tracing::warn!(
            "generated a checkpoint signing key at {} (name {}); keep it safe, back it up, and give \
             every `verdict serve` on this database the same key with --signing-key",
            key_path.display(),
            signer.name()
        );
    } else {
        tracing::info!(
            "signing checkpoints with {} (name {})",
            key_path.display(),
            signer.name()
        );
    }
    let rotate_from = args
        .rotate_key
        .as_deref()
        .map(verdict::log::checkpoint::read_key_file)
        .transpose()?
        .map(std::sync::Arc::new);
    // Migrations need a user that may run them; the server itself logs in as one that may
    // only read and append the log.
    let db = match (&args.db.database_url, &args.app_database_url) {
        (None, Some(app)) => {
            db::roles::ensure_migrated(app).await?;
            db::Database {
                url: app.clone(),
                cluster: None,
            }
        }
        _ => open_db(&args.db, db::Migrations::Apply).await?,
    };
    // From here on a failure stops the private cluster this run started: a failed start
    // leaves nothing running.
    let started = start_serving(args, secrets, signer, rotate_from, &db).await;
    let running = match started {
        Ok(running) => running,
        Err(err) => {
            stop_cluster(&db);
            return Err(err);
        }
    };
    tracing::info!(
        "verdict listening on http://{} (webhooks: POST /webhooks/github)",
        running.addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight deliveries");
    let stopped = running.shutdown().await;
    stop_cluster(&db);
    stopped.context("server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

/// Sets up the server's login and starts serving on `db`.
async fn start_serving(
    args: ServeArgs,
    secrets: WebhookSecrets,
    signer: verdict::log::checkpoint::CheckpointSigner,
    rotate_from: Option<std::sync::Arc<verdict::log::checkpoint::CheckpointSigner>>,
    db: &db::Database,
) -> anyhow::Result<server::RunningServer> {
    let runtime_url = match (&args.db.database_url, &args.app_database_url) {
        (None, Some(app)) => args.db.runtime_url(app, Some(app)).await?,
        _ => {
            args.db
                .runtime_url(&db.url, args.app_database_url.as_deref())
                .await?
        }
    };
    Ok(server::start(ServerConfig {
        database_url: runtime_url,
        secrets,
        listen: args.listen,
        max_connections: args.db_connections,
        features: verdict::projections::features::FeatureLinking {
            label_prefix: args.feature_label_prefix,
            key_pattern: args.feature_key_pattern,
            key_url: args.feature_key_url,
        },
        access: args.access.config(&args.feedback.github_api_url),
        signer: std::sync::Arc::new(signer),
        build_tree: !args.no_merkle,
        judge: true,
        feedback: args.feedback.config()?,
        limits: verdict::web::serving::Limits {
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
            body_timeout: std::time::Duration::from_secs(args.body_timeout),
            max_connections: args.max_connections as usize,
            stuck_after: std::time::Duration::from_secs(args.stuck_after),
            ..Default::default()
        },
        catch_up: (args.catch_up_interval > 0)
            .then(|| std::time::Duration::from_secs(args.catch_up_interval)),
        metrics_listen: args.metrics_listen,
        rotate_from,
    })
    .await?)
}

/// glibc's malloc serves an allocation above its mmap threshold from its own mapping, returned
/// to the system when freed, but raises the threshold to the size of each such block freed: after
/// one 20 MB webhook body, later ones come from the heap and stay resident after they are
/// freed. A fixed threshold keeps large bodies in their own mappings, and two arenas (instead of
/// eight per core) keep freed memory from spreading over many heaps: the server's memory then
/// follows what is in flight, as the body budget intends.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The server's readiness, for container health checks.
async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.unwrap_or_else(|| {
        let port = std::env::var("VERDICT_LISTEN")
            .ok()
            .and_then(|l| l.parse::<SocketAddr>().ok())
            .map_or(3000, |a| a.port());
        format!("http://127.0.0.1:{port}")
    });
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if ok {
                println!("ready: {url}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("not ready ({status}): {}", body.trim());
                Ok(ExitCode::FAILURE)
            }
        }
        Err(err) => {
            eprintln!("no answer from {url}: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A deletion request: every text `login` wrote, redacted field by field, the plan first.
async fn redact_user(
    pool: &sqlx::PgPool,
    login: &str,
    args: &RedactArgs,
) -> anyhow::Result<ExitCode> {
    let plan = verdict::log::redaction::plan_for_user(pool, login).await?;
    println!(
        "{} entr{} hold text @{login} wrote:",
        plan.len(),
        if plan.len() == 1 { "y" } else { "ies" }
    );
    for p in &plan {
        println!(
            "  {}/{} {:<28} {}",
            p.log,
            p.seq,
            p.event,
            p.fields.join(", ")
        );
    }
    if args.dry_run || plan.is_empty() {
        if args.dry_run {
            println!("dry run: nothing changed");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(plan.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries redacted")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for p in &plan {
        verdict::log::redaction::redact(
            pool,
            &verdict::log::redaction::Request {
                log: p.log.clone(),
                seq: p.seq,
                reason: args.reason.clone(),
                by: args.by.clone(),
                fields: p.fields.clone(),
                keep_records: true,
            },
        )
        .await
        .with_context(|| format!("redacting {}/{}", p.log, p.seq))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "redacted what @{login} wrote in {} entr{}; each redaction is an entry of its own log",
        plan.len(),
        if plan.len() == 1 { "y" } else { "ies" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Erases one entry's body through the only path the database allows.
async fn redact(args: RedactArgs) -> anyhow::Result<ExitCode> {
    let db = open_db(&args.db, db::Migrations::Apply).await?;
    let pool = db::app_pool(&db.url, 2).await?;
    if let Some(login) = &args.user {
        let done = redact_user(&pool, login, &args).await;
        stop_cluster(&db);
        return done;
    }
    let receipt = verdict::log::redaction::redact(
        &pool,
        &verdict::log::redaction::Request {
            log: args.log.clone().unwrap_or_default().to_lowercase(),
            seq: args.seq.unwrap_or_default(),
            reason: args.reason,
            by: args.by,
            fields: args.fields.iter().map(|f| f.trim().to_string()).collect(),
            keep_records: !args.erase_records,
        },
    )
    .await;
    stop_cluster(&db);
    let receipt = receipt?;
    if receipt.fields.is_empty() {
        println!(
            "redacted entry {} of log {}: its body is erased, its hashes kept; recorded as entry {}",
            receipt.target_seq, receipt.log, receipt.redaction_seq
        );
        if receipt.copy_kept {
            println!(
                "its skeleton stays (identities, states, times, names; every text [redacted]), so \
                 the decision records derived from it remain; --erase-records removes them too"
            );
        }
    } else {
        println!(
            "redacted {} of entry {} of log {}: a redacted copy is kept, its hash in entry {}",
            receipt.fields.join(", "),
            receipt.target_seq,
            receipt.log,
            receipt.redaction_seq
        );
    }
    println!(
        "the bytes leave the table's live rows now; VACUUM (autovacuum, or `VACUUM log_entries`) \
         reclaims their space, and backups and WAL archives made before keep them until they expire"
    );
    Ok(ExitCode::SUCCESS)
}

/// Where every log stands.
async fn status(args: DbArgs) -> anyhow::Result<ExitCode> {
    let db = open_db(&args, db::Migrations::Apply).await?;
    let pool = db::app_pool(&db.url, 2).await?;
    let status = verdict::ops::status::read(&pool).await?;
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>14} {:>10}",
        "log", "entries", "signed", "unsigned", "not projected", "not judged"
    );
    for l in &status.logs {
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>14} {:>10}",
            l.log,
            l.size,
            l.signed,
            l.unsigned(),
            l.projection_lag(),
            l.judge_lag().map_or("-".to_string(), |n| n.to_string())
        );
    }
    let outbox: Vec<String> = status
        .outbox
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    println!(
        "outbox: {}",
        if outbox.is_empty() {
            "empty".to_string()
        } else {
            outbox.join(", ")
        }
    );
    for a in &status.alarms {
        println!("INTEGRITY ALARM log {}: {}", a.log, a.problem);
    }
    stop_cluster(&db);
    Ok(if status.alarms.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn catch_up(args: CatchUpArgs) -> anyhow::Result<ExitCode> {
    let config = args.feedback.config()?;
    let app = config.github.as_ref().context(
        "catch-up asks GitHub as the App: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE",
    )?;
    let app = std::sync::Arc::new(verdict::github::app::GitHubApp::new(app)?);
    let db = open_db(&args.db, db::Migrations::Apply).await?;
    let pool = db::app_pool(&db.url, 2).await?;
    let catch_up = verdict::intake::catch_up::CatchUp::new(
        pool.clone(),
        app,
        verdict::log::Sequencer::new(pool),
    );
    let Some(report) = catch_up.run_once().await? else {
        println!("another verdict is reconciling right now; nothing done");
        stop_cluster(&db);
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(w) = report.window {
        println!("checked deliveries from {} to {}", w.from, w.to);
    }
    println!(
        "GitHub listed {} deliveries; {} already in the log; asked GitHub to send {} again{}",
        report.listed,
        report.already_logged,
        report.requested.len(),
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(
                " ({} requests refused: {})",
                report.failed.len(),
                report.failed.join(", ")
            )
        }
    );
    if let Some(g) = report.gap {
        println!(
            "coverage gap: GitHub no longer lists deliveries from {} to {}; recorded in the log",
            g.from, g.to
        );
    }
    stop_cluster(&db);
    Ok(ExitCode::SUCCESS)
}

async fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        verdict::github::names::is_full_name(&args.repo),
        "{:?} is not a repository: write it as OWNER/REPO",
        args.repo
    );
    let config = args.feedback.config()?;
    let app = config.github.as_ref().context(
        "backfill reads GitHub as the App: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE",
    )?;
    let app = std::sync::Arc::new(verdict::github::app::GitHubApp::new(app)?);
    let installation = app.repository_installation(&args.repo).await?;
    let db = open_db(&args.reproject.db, db::Migrations::Apply).await?;
    let pool = db::app_pool(&db.url, 4).await?;
    let backfill = verdict::intake::backfill::Backfill::new(
        pool.clone(),
        app,
        verdict::log::Sequencer::new(pool.clone()),
    );
    let since = args
        .since
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    backfill
        .enqueue(&args.repo, installation, since, args.alert_history)
        .await?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} pull requests, {prefix} objects appended ({eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(format!("backfilling {}", args.repo));
    let started = std::time::Instant::now();
    let done = backfill
        .run(&args.repo, |p| {
            bar.set_length(p.pulls_seen);
            bar.set_position(p.pulls_done);
            bar.set_prefix(p.appended.to_string());
        })
        .await;
    bar.finish_and_clear();
    let done = done?;
    println!(
        "backfilled {}: {} pull requests, {} new entries in the log, {} requests to GitHub ({:.1} per pull request) in {:.1} s",
        args.repo,
        done.pulls_done,
        done.appended,
        done.requests,
        done.requests as f64 / done.pulls_done.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    // The pages follow: project what was appended.
    let projected =
        verdict::projections::projector::Projector::new(pool, args.reproject.feature_label_prefix)
            .with_key_pattern(args.reproject.feature_key_pattern)
            .catch_up()
            .await?;
    println!(
        "projected {} entries into {} decision records",
        projected.entries, projected.decisions
    );
    stop_cluster(&db);
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let db = open_db(&args.db, db::Migrations::LeaveAlone).await?;
    let pool = db::app_pool(&db.url, 2).await?;
    let names = match &args.log {
        Some(name) => vec![name.clone()],
        None => verdict::log::store::heads(&pool)
            .await?
            .into_iter()
            .map(|h| h.name)
            .collect(),
    };
    if names.is_empty() {
        println!("no logs yet: nothing to verify");
    }
    // Whose signature the newest checkpoints must carry.
    let given = args
        .key
        .as_deref()
        .map(|k| {
            verdict::log::checkpoint::NoteVerifier::parse(k).with_context(|| {
                format!("--key {k:?} is not a verifier key; copy it from /api/logs/ACCOUNT/key")
            })
        })
        .transpose()?;
    let key_file = args.signing_key.clone().or_else(|| {
        Some(args.db.data_dir.join("checkpoint-signing.key")).filter(|kept| kept.exists())
    });
    let server_key = match &key_file {
        Some(path) if given.is_none() => {
            println!(
                "checking checkpoint signatures with the server key in {}",
                path.display()
            );
            Some(verdict::log::checkpoint::read_key_file(path)?)
        }
        _ => None,
    };
    if given.is_none() && server_key.is_none() {
        println!(
            "note: no key given and no server key found: checkpoint roots are checked, their signatures are not (use --key or --signing-key)"
        );
    }
    let mut failed = false;
    for name in names {
        let key = match (&given, &server_key) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(signer)) => Some(verdict::log::checkpoint::NoteVerifier::parse(
                &signer.verifier_key(&name),
            )?),
            (None, None) => None,
        };
        let check = verdict::log::verify::Check {
            head: args.head,
            key,
        };
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({eta})")
                .expect("valid template"),
        );
        bar.set_message(format!("verifying {name}"));
        let result = verify_log(&pool, &name, check, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
        bar.finish_and_clear();
        match result {
            Ok(head) => println!("ok {head}"),
            Err(err @ VerifyError::Bad { .. }) => {
                println!("FAILED {err}");
                failed = true;
            }
            Err(err) => return Err(err.into()),
        }
    }
    stop_cluster(&db);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback(args: &[&str]) -> anyhow::Result<verdict::feedback::FeedbackConfig> {
        let cli = Cli::try_parse_from(args.iter().copied())?;
        match cli.command {
            Command::Serve(serve) => serve.feedback.config(),
            _ => unreachable!("parsed a serve command"),
        }
    }

    #[test]
    fn retry_policy_comes_from_the_command_line_with_sane_defaults() {
        let default = feedback(&["verdict", "serve"]).unwrap().retry;
        assert_eq!(default.max_attempts, 20);
        assert_eq!(default.first_delay, std::time::Duration::from_secs(10));
        assert_eq!(default.max_delay, std::time::Duration::from_secs(3600));

        let set = feedback(&[
            "verdict",
            "serve",
            "--retry-attempts",
            "5",
            "--retry-first-delay",
            "2",
            "--retry-max-delay",
            "60",
        ])
        .unwrap()
        .retry;
        assert_eq!(set.max_attempts, 5);
        assert_eq!(set.delay(1), std::time::Duration::from_secs(2));
        assert_eq!(set.delay(10), std::time::Duration::from_secs(60));

        assert!(feedback(&["verdict", "serve", "--retry-attempts", "0"]).is_err());
    }
}
