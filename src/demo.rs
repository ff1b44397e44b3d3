//! `verdict demo`: verdict end to end on a private database, fed real GitHub deliveries
//! through its signed HTTP endpoint, so a newcomer sees it work with one command.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::demo_sink::AlertSink;
use verdict::db;
use verdict::feedback::FeedbackConfig;
use verdict::feedback::alerts::parse_target;
use verdict::github::stand_in::{StandIn, demo_people};
use verdict::intake::WebhookSecrets;
use verdict::intake::signature::sign;
use verdict::log::verify::verify_log;
use verdict::server::{self, ServerConfig};
use verdict::story;
use verdict::web::access::AccessConfig;

/// repo, PR, kind, actor, time: one line of the demo's decision listing.
type DecisionLine = (
    String,
    Option<i64>,
    String,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

/// The secret the demo signs with; the demo server accepts only it.
const DEMO_SECRET: &str = "verdict-demo-secret";
/// The secret the demo server signs its alerts with, and its local receiver checks.
const DEMO_ALERT_SECRET: &str = "verdict-demo-alert-secret";

pub async fn run(
    database_url: Option<&str>,
    data_dir: &Path,
    listen: SocketAddr,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    if database_url.is_none() {
        println!(
            "starting a private PostgreSQL cluster in {}",
            data_dir.join("postgres").display()
        );
    }
    let database = db::open(database_url, data_dir, db::Migrations::Apply).await?;
    // As `serve` does: the server logs in as a role that may only read and append the log.
    let runtime_url = db::roles::runtime_url(&database.url, None, None, data_dir).await?;
    let (signer, key_path, _) = verdict::log::checkpoint::load_or_generate(None, data_dir)?;
    println!("checkpoints are signed with {}", key_path.display());
    // Findings go out as signed alerts to a receiver of the demo's own.
    let sink = AlertSink::start(DEMO_ALERT_SECRET).await?;
    println!("alerts go to a local receiver at {}", sink.url);
    let feedback = FeedbackConfig {
        alerts: vec![parse_target(&sink.url).map_err(anyhow::Error::msg)?],
        alert_secret: Some(DEMO_ALERT_SECRET.into()),
        ..Default::default()
    };
    // Sign-in goes to a stand-in for GitHub with two people, so the access model can be tried.
    let github = StandIn::start("127.0.0.1:0".parse()?, demo_people()).await?;
    println!(
        "sign-in goes to a local stand-in for GitHub at {}",
        github.url
    );
    let running = server::start(ServerConfig {
        database_url: runtime_url,
        secrets: WebhookSecrets::from_list(&[DEMO_SECRET]),
        listen,
        max_connections: 4,
        features: verdict::projections::features::FeatureLinking::labels(
            verdict::projections::features::DEFAULT_LABEL_PREFIX,
        ),
        access: AccessConfig {
            sign_in: Some(github.sign_in_config()),
            ..Default::default()
        },
        signer: std::sync::Arc::new(signer),
        build_tree: true,
        judge: true,
        feedback,
        limits: Default::default(),
        catch_up: None,
        metrics_listen: None,
        rotate_from: None,
    })
    .await?;
    let base = format!("http://{}", running.addr);
    println!("verdict is listening on {base}");

    let client = reqwest::Client::new();
    // Fixed delivery ids: replaying the story again is a redelivery GitHub-style, so a second
    // run adds nothing and the pages stay the same.
    println!(
        "\nreplaying the feature story ({}) and a private one ({}) through POST /webhooks/github:",
        story::REPO,
        story::PRIVATE_REPO
    );
    for delivery in story::feature_story("demo")
        .into_iter()
        .chain(story::private_story("demo"))
    {
        let response = client
            .post(format!("{base}/webhooks/github"))
            .header("X-GitHub-Event", delivery.event)
            .header("X-GitHub-Delivery", &delivery.delivery_id)
            .header(
                "X-Hub-Signature-256",
                sign(DEMO_SECRET.as_bytes(), &delivery.body),
            )
            .header("Content-Type", "application/json")
            .body(delivery.body)
            .send()
            .await?;
        let status = response.status();
        let receipt = response.text().await?;
        println!("  {:<28} -> {status} {}", delivery.event, receipt.trim());
        anyhow::ensure!(
            status.is_success(),
            "the demo delivery was refused: {receipt}"
        );
    }

    let pool = db::app_pool(&database.url, 2).await?;
    // The projector and the judge run in the server's background; the demo also drives them
    // itself, so it does not depend on their timers: project, judge, and project the
    // findings the judge appended, until nothing is left.
    let projector = verdict::projections::projector::Projector::new(
        pool.clone(),
        verdict::projections::features::DEFAULT_LABEL_PREFIX,
    );
    let judge = verdict::feedback::judge::Judge::new(
        pool.clone(),
        verdict::log::Sequencer::new(pool.clone()),
        running.outputs.clone(),
    )
    .with_rules(running.rules.clone());
    let mut settled = false;
    for _ in 0..300 {
        projector.catch_up().await?;
        judge.catch_up().await?;
        projector.catch_up().await?;
        let judge_behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_cursors p
               LEFT JOIN judge_cursors j ON j.log_id = p.log_id
              WHERE coalesce(j.next_seq, 0) < p.next_seq",
        )
        .fetch_one(&pool)
        .await?;
        if judge_behind == 0 && verdict::projections::projector::backlog(&pool).await? == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::ensure!(settled, "the projections did not settle within 30 s");
    println!("\nverifying every log from its stored bytes:");
    for head in verdict::log::store::heads(&pool).await? {
        let verified = verify_log(&pool, &head.name, None, |_, _| {}).await?;
        println!("  ok {verified}");
    }
    println!("\ndecision records derived from the log (in GitHub's time order):");
    let rows: Vec<DecisionLine> = sqlx::query_as(
        "SELECT repo, pr_number, kind, actor, occurred_at FROM decisions
          WHERE repo = $1 ORDER BY occurred_at, log_id, seq, ordinal",
    )
    .bind(story::REPO)
    .fetch_all(&pool)
    .await?;
    for (repo, pr, kind, actor, at) in rows {
        let pr = pr.map(|n| format!("#{n}")).unwrap_or_default();
        println!(
            "  {at}  {repo}{pr:<5} {kind:<26} {}",
            actor.unwrap_or_default()
        );
    }
    println!("\nfindings of the accountability rules, recorded in the log:");
    let findings: Vec<(String, Option<i64>, String, String, i64)> = sqlx::query_as(
        "SELECT f.repo, f.pr_number, f.rule, f.message, f.seq FROM findings f
          WHERE f.repo = $1 ORDER BY f.seq",
    )
    .bind(story::REPO)
    .fetch_all(&pool)
    .await?;
    let first_finding = findings.first().map(|f| f.4);
    for (repo, pr, rule, message, seq) in findings {
        let pr = pr.map(|n| format!("#{n}")).unwrap_or_default();
        println!(
            "  {repo}{pr:<5} {rule:<30} {message} (record {}/{seq})",
            story::ACCOUNT
        );
    }
    print_alerts(&pool, &sink, &base).await?;
    println!("\nthe feature page a product manager reads:");
    println!("  {base}/{}/features/{}", story::REPO, story::FEATURE_KEY);
    println!(
        "the same as JSON: {base}/api/{}/features/{}",
        story::REPO,
        story::FEATURE_KEY
    );
    println!("all accounts and repositories: {base}/");
    println!(
        "\nwho sees what: {} is private. Anonymous visitors see {} only; open {base}/ and click \
         \"Sign in with GitHub\": the demo's stand-in for GitHub lets you choose",
        story::PRIVATE_REPO,
        story::REPO
    );
    for p in demo_people() {
        println!("  @{:<10} {}", p.login, p.about);
    }
    println!(
        "the private feature, for those who may read it: {base}/{}/features/{}",
        story::PRIVATE_REPO,
        story::FEATURE_KEY
    );
    if let Some(seq) = first_finding {
        println!(
            "try acknowledging a finding: sign in as @maria-pm, open {base}/records/{}/{seq} and              append a note; it becomes an entry of its own in the log, and the feature page              counts the finding as acknowledged",
            story::ACCOUNT
        );
    }
    println!("every rule in plain words: {base}/rules");

    // The tree builder signs a checkpoint within a moment of the last entry.
    let mut checkpoint = None;
    for _ in 0..100 {
        checkpoint = verdict::log::tree::latest_checkpoint(&pool, story::ACCOUNT)
            .await?
            .filter(|c| c.tree_size >= 20);
        if checkpoint.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if let Some(c) = checkpoint {
        println!(
            "
the log's newest signed checkpoint ({base}/api/logs/{}/checkpoint):",
            story::ACCOUNT
        );
        for line in c.note.lines() {
            println!("  {line}");
        }
        println!("its verifier key: {base}/api/logs/{}/key", story::ACCOUNT);
        println!(
            "a record with its Merkle proof: {base}/records/{}/3 (download: {base}/records/{}/3/proof)",
            story::ACCOUNT,
            story::ACCOUNT
        );
    }
    println!("re-check the log any time with: verdict verify");

    if wait {
        println!("\nserving; press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
    }
    running.shutdown().await?;
    if let Some(cluster) = &database.cluster
        && cluster.started_here()
    {
        cluster.stop()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the outbox to hand every alert to the demo's receiver, then lists what arrived.
async fn print_alerts(pool: &sqlx::PgPool, sink: &AlertSink, base: &str) -> anyhow::Result<()> {
    let mut pending: i64 = 0;
    for _ in 0..200 {
        pending = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE channel = 'alert' AND state = 'pending'",
        )
        .fetch_one(pool)
        .await?;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("\nalerts the local receiver got (X-Verdict-Signature-256 checked on arrival):");
    let received = sink.received();
    if received.is_empty() {
        println!("  none new: these findings were alerted on an earlier run");
    }
    for alert in received {
        let pr = alert
            .pull_request
            .map(|n| format!("#{n}"))
            .unwrap_or_default();
        let signature = if alert.signature_ok {
            "signature ok"
        } else {
            "BAD SIGNATURE"
        };
        println!(
            "  {}{pr:<5} {:<30} {signature}  {}",
            alert.repository, alert.rule, alert.finding_url
        );
    }
    if pending > 0 {
        println!("  ({pending} still pending: see the outbox)");
    }
    println!("every message that left verdict, with each attempt: {base}/outbox");
    Ok(())
}
