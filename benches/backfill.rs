//! Backfill benchmark: 1,000 pull requests (3 reviews and 5 comments each, plus review
//! comments, timelines, check runs and statuses, half of them merged) read from a local
//! stand-in for GitHub's REST API that answers at once, into a fresh log. Prints, in the same
//! run, the backfill's wall time and requests per pull request beside the baseline: the same
//! requests made through the same client with nothing appended (what the client and the
//! stand-in cost alone), and a second backfill that finds nothing new. Target (issue #13):
//! <= 60 s, so that GitHub's rate limit (5,000 requests an hour per installation), not
//! verdict, bounds a real backfill.
//!
//! `cargo bench --bench backfill` (DATABASE_URL, or a private cluster under target/).
//! Knobs: BENCH_PULLS (1000), BENCH_REVIEWS (3), BENCH_COMMENTS (5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict::github::app::{As, GitHubApp, Patience};
use verdict::intake::backfill::{Backfill, Progress};
use wiremock::MockServer;

mod support;

/// The GitHub stand-in the tests use.
#[allow(dead_code)]
#[path = "../tests/common/github.rs"]
mod github;

fn local_fixture(rel: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(rel: &str) -> Vec<u8> {
    local_fixture(&format!("github/api.github.com/{rel}"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const REPO: &str = "acme/web";

struct Row {
    name: &'static str,
    wall: Duration,
    requests: u64,
    appended: u64,
}

async fn backfill_once(b: &Backfill, bar: &indicatif::ProgressBar) -> (Duration, Progress) {
    b.enqueue(REPO, 4242, None, false).await.unwrap();
    let started = Instant::now();
    let done = b
        .run(REPO, |p| {
            bar.set_length(p.pulls_seen.max(1));
            bar.set_position(p.pulls_done);
        })
        .await
        .unwrap();
    (started.elapsed(), done)
}

#[tokio::main]
async fn main() {
    let pulls = env_or("BENCH_PULLS", 1000usize);
    let reviews = env_or("BENCH_REVIEWS", 3usize);
    let comments = env_or("BENCH_COMMENTS", 5usize);
    let (admin, url) = support::bench_database("bench_backfill").await;
    let pool = verdict::db::app_pool(&url, 8).await.unwrap();

    let fake = Arc::new(github::FakeRepository::new(REPO, pulls, reviews, comments));
    let mock = MockServer::start().await;
    fake.mount(&mock).await;
    let app = Arc::new(GitHubApp::new(&github::app_config(31337, &mock.uri())).unwrap());
    let backfill = Backfill::new(
        pool.clone(),
        app.clone(),
        verdict::log::Sequencer::new(pool.clone()),
    );
    let bar = indicatif::ProgressBar::new(pulls as u64);

    // The backfill, into an empty log.
    let (wall, first) = backfill_once(&backfill, &bar).await;
    bar.finish_and_clear();
    assert_eq!(first.pulls_done as usize, pulls);
    assert_eq!(first.appended as usize, fake.objects(), "every object once");
    let mut rows = vec![Row {
        name: "backfill into an empty log",
        wall,
        requests: first.requests,
        appended: first.appended,
    }];

    // Baseline: the very same requests through the same client, nothing appended.
    let urls: Vec<String> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| match r.url.query() {
            Some(q) => format!("{}?{q}", r.url.path()),
            None => r.url.path().to_string(),
        })
        .collect();
    let started = Instant::now();
    let mut fetches = tokio::task::JoinSet::new();
    for url in urls.clone() {
        let app = app.clone();
        fetches.spawn(async move {
            app.fetch(As::Installation(4242), &url, Patience::default())
                .await
                .unwrap()
        });
    }
    while fetches.join_next().await.is_some() {}
    rows.push(Row {
        name: "baseline: same requests, no log",
        wall: started.elapsed(),
        requests: urls.len() as u64,
        appended: 0,
    });

    // Again: every object is there already, unchanged.
    let (wall, again) = backfill_once(&backfill, &bar).await;
    bar.finish_and_clear();
    assert_eq!(again.appended, 0, "a second backfill appends nothing");
    rows.push(Row {
        name: "second backfill (nothing new)",
        wall,
        requests: again.requests,
        appended: again.appended,
    });

    println!(
        "\nbackfill of {pulls} pull requests ({reviews} reviews, {comments} comments each; {} objects)\n",
        fake.objects()
    );
    println!(
        "| run | wall time | requests | requests per PR | objects appended | PRs/s |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {:.1} s | {} | {:.1} | {} | {:.0} |",
            r.name,
            r.wall.as_secs_f64(),
            r.requests,
            r.requests as f64 / pulls as f64,
            r.appended,
            pulls as f64 / r.wall.as_secs_f64()
        );
    }
    let hours = first.requests as f64 / 5000.0;
    println!(
        "\nverdict's share of the backfill: {:.0} % over the baseline; GitHub's 5,000 requests an \
         hour would take {hours:.1} h for these {} requests. Target <= 60 s: {}",
        (rows[0].wall.as_secs_f64() / rows[1].wall.as_secs_f64() - 1.0) * 100.0,
        first.requests,
        if rows[0].wall <= Duration::from_secs(60) {
            "met"
        } else {
            "MISSED"
        }
    );
    pool.close().await;
    support::drop_database(&admin, &url).await;
}
