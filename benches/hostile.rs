//! Hostile-load benchmark: GitHub's signed deliveries at a steady rate to a real `verdict
//! serve` process, first alone (the baseline), then while attackers hold 1,100 stalled
//! connections and 60 clients keep sending 20 MB bodies (half with no signature, half with a
//! wrong one). Prints, for both phases in the same run, the signed deliveries' latency and
//! the server's peak memory. Targets (issue #14): p99 <= 100 ms and RSS <= 300 MB under
//! attack.
//!
//! `cargo bench --bench hostile` (DATABASE_URL, or a private cluster under target/).
//! Knobs: BENCH_SIGNED_RATE (deliveries/s, default 50), BENCH_SECS (seconds per phase, 8),
//! BENCH_STALLED (1100), BENCH_LARGE (60).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use verdict::intake::signature::sign;

mod support;
use support::Server;

const SECRET: &str = "bench-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A real push payload, made unique per delivery.
fn signed_body(n: u64) -> Vec<u8> {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/api.github.com/push/event.1.json"
    ))
    .unwrap();
    let mut out = format!("{{\"bench_delivery\":{n},").into_bytes();
    out.extend_from_slice(&raw[1..]);
    out
}

struct Phase {
    name: &'static str,
    sent: usize,
    created: usize,
    latencies: Vec<Duration>,
    peak_rss_kb: u64,
    attack_mb: u64,
    attack_refused: u64,
}

/// Signed deliveries at `rate` per second for `secs`, each on its own request; samples the
/// server's RSS meanwhile.
async fn signed_load(
    server: &Server,
    rate: u64,
    secs: u64,
    tag: &str,
) -> (usize, Vec<Duration>, u64) {
    let client = reqwest::Client::new();
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut peak = 0;
    for i in 0..total {
        let due = started + interval * i as u32;
        while Instant::now() < due {
            peak = peak.max(server.rss_kb().0);
            tokio::time::sleep((due - Instant::now()).min(Duration::from_millis(20))).await;
        }
        let body = signed_body(i + if tag == "attack" { 1_000_000 } else { 0 });
        let request = client
            .post(format!("{}/webhooks/github", server.base))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("{tag}-{i}"))
            .header("X-Hub-Signature-256", sign(SECRET.as_bytes(), &body))
            .header("Content-Type", "application/json")
            .body(body);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let status = request.send().await.map(|r| r.status().as_u16()).ok();
            (status, t.elapsed())
        }));
    }
    let mut created = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (status, took) = t.await.unwrap();
        if status == Some(201) {
            created += 1;
        }
        latencies.push(took);
        peak = peak.max(server.rss_kb().0);
    }
    latencies.sort();
    (created, latencies, peak)
}

/// Keeps one connection open that never finishes its headers; reconnects when closed.
async fn staller(addr: String, partial: bool, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if partial {
            let _ = s
                .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: verdict\r\n")
                .await;
        }
        let mut buf = [0u8; 64];
        tokio::select! {
            _ = s.read(&mut buf) => {}
            _ = async { while !stop.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(100)).await } } => {}
        }
    }
}

/// Sends 20 MB bodies back to back, with no signature or a wrong one.
async fn large_sender(
    addr: String,
    signed: bool,
    body: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut head = format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: verdict\r\nX-GitHub-Event: push\r\n\
             X-GitHub-Delivery: attack-{n}-{}\r\nContent-Length: {}\r\n",
            body.len(),
            body.len()
        );
        if signed {
            head.push_str(&format!(
                "X-Hub-Signature-256: sha256={}\r\n",
                "ab".repeat(32)
            ));
        }
        head.push_str("\r\n");
        let _ = s.write_all(head.as_bytes()).await;
        for chunk in body.chunks(256 * 1024) {
            if stop.load(Ordering::Relaxed) || s.write_all(chunk).await.is_err() {
                break;
            }
            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(k)) = tokio::time::timeout(Duration::from_secs(12), s.read(&mut buf)).await {
            let answer = String::from_utf8_lossy(&buf[..k]);
            if ["401", "503", "408", "413"]
                .iter()
                .any(|c| answer.split_whitespace().nth(1) == Some(c))
            {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

async fn run() {
    verdict::web::serving::raise_open_file_limit();
    let rate: u64 = env_or("BENCH_SIGNED_RATE", 50);
    let secs: u64 = env_or("BENCH_SECS", 8);
    let stalled: usize = env_or("BENCH_STALLED", 1100);
    let large: usize = env_or("BENCH_LARGE", 60);
    let (admin, url) = support::bench_database("verdict_hostile").await;
    let server = support::start_server(&url, SECRET, &[]).await;

    let mut phases = Vec::new();
    let (created, latencies, peak) = signed_load(&server, rate, secs, "baseline").await;
    phases.push(Phase {
        name: "signed deliveries alone (baseline)",
        sent: latencies.len(),
        created,
        latencies,
        peak_rss_kb: peak,
        attack_mb: 0,
        attack_refused: 0,
    });

    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    // The attackers run on threads of their own, so the signed deliveries' latency is the
    // server's, not this process's scheduling of its own load.
    let attack = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut attackers = Vec::new();
    for i in 0..stalled {
        attackers.push(attack.spawn(staller(server.addr().to_string(), i % 2 == 0, stop.clone())));
    }
    let body = Arc::new(vec![b' '; 20 * 1024 * 1024]);
    for i in 0..large {
        attackers.push(attack.spawn(large_sender(
            server.addr().to_string(),
            i % 2 == 0,
            body.clone(),
            stop.clone(),
            bytes.clone(),
            refused.clone(),
        )));
    }
    // Let the attack build up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (created, latencies, peak) = signed_load(&server, rate, secs, "attack").await;
    let peak = peak.max(server.rss_kb().0);
    stop.store(true, Ordering::Relaxed);
    phases.push(Phase {
        name: "signed deliveries under attack",
        sent: latencies.len(),
        created,
        latencies,
        peak_rss_kb: peak,
        attack_mb: bytes.load(Ordering::Relaxed) / (1024 * 1024),
        attack_refused: refused.load(Ordering::Relaxed),
    });
    for a in attackers {
        a.abort();
    }
    attack.shutdown_background();
    drop(server);
    support::drop_database(&admin, &url).await;

    println!();
    println!(
        "{stalled} stalled connections, {large} clients sending 20 MB bodies (half unsigned, half wrongly signed); signed deliveries at {rate}/s for {secs} s per phase"
    );
    println!();
    println!(
        "| phase | signed sent | stored (201) | p50 ms | p99 ms | max ms | server peak RSS MB | attack MB sent | attack bodies refused |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} |",
            p.name,
            p.sent,
            p.created,
            support::percentile_ms(&p.latencies, 0.5),
            support::percentile_ms(&p.latencies, 0.99),
            p.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            p.peak_rss_kb as f64 / 1024.0,
            p.attack_mb,
            p.attack_refused,
        );
    }
}
