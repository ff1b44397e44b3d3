//! Proof latency on a big tree: inclusion and consistency proofs through the HTTP API on a
//! log of 1,000,000 entries, beside the `/healthz` round trip as the floor, and the same
//! proofs read directly through the library (no HTTP). Target (issue #4): inclusion proof
//! p99 ≤ 2 ms on 1,000,000 entries.
//!
//! The log is real: 1,000,000 chained entries (small bodies, appended in batches through the
//! store, past the chain trigger), and the tree is built and signed by the same TreeBuilder
//! `serve` runs. Every measured inclusion proof is verified against the signed root.
//!
//! `cargo bench --bench proofs` (DATABASE_URL, or a private cluster under target/).
//! BENCH_TREE_SIZE (default 1000000), BENCH_REQUESTS (default 2000).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use sqlx::Connection;
use verdict::db;
use verdict::intake::WebhookSecrets;
use verdict::log::checkpoint::CheckpointSigner;
use verdict::log::merkle;
use verdict::log::store::{self, NewEntry, PlacedEntry};
use verdict::server::{self, ServerConfig};

const ACCOUNT: &str = "bench-1m";
const TOKEN: &str = "bench-operator";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: reproducible positions without another dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn row(label: &str, mut lat: Vec<Duration>, target: Option<f64>) {
    lat.sort();
    let p99 = pct(&lat, 0.99);
    println!(
        "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        p99,
        pct(&lat, 1.0),
        target
            .map(|t| format!("≤ {t} ms"))
            .unwrap_or_else(|| "—".into()),
        match target {
            Some(t) if p99 <= t => "yes",
            Some(_) => "NO",
            None => "",
        }
    );
}

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let admin = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => db::local_cluster::LocalCluster::start(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres"),
        )
        .expect("PostgreSQL for the benchmark: set DATABASE_URL or install the server")
        .url("postgres"),
    };
    let name = format!("verdict_bench_proofs_{}", std::process::id());
    let mut u = url::Url::parse(&admin).unwrap();
    u.set_path(&format!("/{name}"));
    let url = u.to_string();
    db::create_database_if_missing(&admin, &name).await.unwrap();
    db::migrate(&url).await.unwrap();
    let size: u64 = env_or("BENCH_TREE_SIZE", 1_000_000);
    let requests: usize = env_or("BENCH_REQUESTS", 2000);
    let signer = Arc::new(CheckpointSigner::generate("verdict.bench").unwrap());

    eprintln!("appending {size} entries and building their tree...");
    let started = Instant::now();
    let pool = db::app_pool(&url, 4).await.unwrap();
    let log_id = store::ensure_log(&pool, ACCOUNT).await.unwrap();
    let body = bytes::Bytes::from_static(b"{}");
    let body_sha256 = verdict::log::entry::body_hash(&body);
    let mut prev = verdict::log::entry::GENESIS_PREV_HASH;
    let mut entry_hashes = Vec::with_capacity(size as usize);
    let t0 = chrono::Utc::now();
    let mut seq = 0u64;
    while seq < size {
        let n = (size - seq).min(10_000);
        let entries: Vec<NewEntry> = (seq..seq + n)
            .map(|i| NewEntry {
                log_name: ACCOUNT.into(),
                kind: verdict::log::KIND_GITHUB_DELIVERY.into(),
                received_at: t0 + chrono::Duration::microseconds(i as i64),
                delivery_id: format!("bench-{i}"),
                event: "ping".into(),
                hook_id: None,
                installation_target_type: None,
                installation_target_id: None,
                signature: None,
                body: body.clone(),
                body_sha256,
                body_readable: true,
            })
            .collect();
        let placed: Vec<PlacedEntry> = entries
            .iter()
            .enumerate()
            .map(|(k, e)| {
                let s = seq + k as u64;
                let entry_hash = e.fields(s, prev).entry_hash();
                let p = PlacedEntry {
                    entry: e,
                    seq: s,
                    prev_hash: prev,
                    entry_hash,
                };
                prev = entry_hash;
                entry_hashes.push(entry_hash);
                p
            })
            .collect();
        store::insert_entries(&pool, log_id, &placed).await.unwrap();
        seq += n;
    }
    eprintln!("log appended in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    verdict::log::tree::TreeBuilder::new(pool.clone(), signer.clone())
        .catch_up()
        .await
        .unwrap();
    eprintln!(
        "tree built and signed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let leaves: Vec<[u8; 32]> = entry_hashes.iter().map(|h| merkle::leaf_hash(h)).collect();
    let root = merkle::root(&leaves);
    let checkpoint = verdict::log::tree::latest_checkpoint(&pool, ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((checkpoint.tree_size, checkpoint.root), (size, root));
    // Anonymous visitors see logs with a public repository; the bench uses the operator token.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Settle the freshly written tables first, so autovacuum does not run during the timing.
    sqlx::query("VACUUM (ANALYZE) log_entries, merkle_nodes, checkpoints")
        .execute(&mut conn)
        .await
        .unwrap();

    let running = server::start(ServerConfig {
        database_url: url.clone(),
        secrets: WebhookSecrets::from_list(&["unused"]),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: 8,
        features: verdict::projections::features::FeatureLinking::labels("feature:"),
        access: verdict::web::access::AccessConfig {
            admin_token: Some(TOKEN.into()),
            ..Default::default()
        },
        build_tree: false,
        judge: false,
        signer: signer.clone(),
        feedback: Default::default(),
        limits: Default::default(),
        catch_up: None,
        metrics_listen: None,
        rotate_from: None,
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let body = r.bytes().await.unwrap();
            (t.elapsed(), body)
        }
    };
    let decode = |v: &Value| -> Vec<Vec<u8>> {
        v["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
            .collect()
    };

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..50 {
        get("/healthz".into()).await;
        get(format!(
            "/api/logs/{ACCOUNT}/proof/inclusion?index={}",
            rng.below(size)
        ))
        .await;
    }
    let mut healthz = Vec::new();
    for _ in 0..requests {
        healthz.push(get("/healthz".into()).await.0);
    }
    let mut inclusion = Vec::new();
    for _ in 0..requests {
        let index = rng.below(size);
        let (t, body) = get(format!("/api/logs/{ACCOUNT}/proof/inclusion?index={index}")).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        merkle::verify_inclusion(index, size, &leaves[index as usize], &decode(&v), &root).unwrap();
        inclusion.push(t);
    }
    let mut consistency = Vec::new();
    for _ in 0..requests {
        let from = 1 + rng.below(size - 1);
        let (t, _) = get(format!("/api/logs/{ACCOUNT}/proof/consistency?from={from}")).await;
        consistency.push(t);
    }
    let mut direct = Vec::new();
    let mut c = pool.acquire().await.unwrap();
    for _ in 0..requests {
        let index = rng.below(size);
        let t = Instant::now();
        verdict::log::tree::inclusion_proof(&mut c, log_id, index, size)
            .await
            .unwrap();
        direct.push(t.elapsed());
    }
    drop(c);

    println!(
        "\nlog of {size} entries ({} stored interior nodes); {requests} sequential requests per row; ms\n",
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM merkle_nodes")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    );
    println!("| request | p50 | p95 | p99 | max | target (p99) | met |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    row("baseline: GET /healthz (HTTP + SELECT 1)", healthz, None);
    row("GET inclusion proof, random index", inclusion, Some(2.0));
    row("GET consistency proof, random old size", consistency, None);
    row(
        "inclusion proof read in-process (one query, no HTTP)",
        direct,
        None,
    );

    running.shutdown().await.unwrap();
    pool.close().await;
    drop(conn);
    let mut admin_conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin_conn)
    .await
    .unwrap();
}
