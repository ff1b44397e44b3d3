//! Intake benchmark: drives a real `verdict serve` process over HTTP with signed ~20 KB real
//! deliveries and compares, in the same run, with the ceiling: a bare batched INSERT of the
//! same bodies into the same PostgreSQL, measured before each closed loop and after the last
//! and compared by its median.
//!
//! `cargo bench --bench intake` (DATABASE_URL, or a private cluster under target/).
//! Knobs: BENCH_DELIVERIES (default 20000), BENCH_CONCURRENCY (comma-separated levels,
//! default 64,256), BENCH_RATE (1000),
//! BENCH_RATE_SECS (10).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use sqlx::{Connection, Executor, PgConnection};
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

/// Real payloads between 15 and 26 KB, as (event, body).
fn payloads() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/api.github.com");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).unwrap().flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        let event = dir.file_name().to_string_lossy().to_string();
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let body = std::fs::read(f.path()).unwrap();
            if (15_000..26_000).contains(&body.len()) {
                out.push((event.clone(), body));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no ~20 KB fixtures found");
    out
}

/// (busy, all) CPU ticks of the whole machine (all cores), from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| cpu.get(i)).sum();
    (busy, cpu.iter().take(8).sum())
}

/// CPU ticks (user + system) used so far by process `pid`.
fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // Fields after the command name: state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime (proc(5)); utime and stime are the 12th and 13th.
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Where the CPU went during a phase: (server, load generator, everything else = PostgreSQL).
#[derive(Clone, Copy)]
struct CpuSplit {
    server: f64,
    client: f64,
    rest: f64,
    idle: f64,
}

fn cpu_snapshot(server_pid: u32) -> [u64; 4] {
    let (busy, all) = machine_ticks();
    [
        busy,
        all,
        process_ticks(server_pid),
        process_ticks(std::process::id()),
    ]
}

/// Shares of all cores' time during a phase.
fn cpu_split(before: [u64; 4], after: [u64; 4]) -> CpuSplit {
    let d = |i: usize| after[i].saturating_sub(before[i]) as f64;
    let all = d(1).max(1.0);
    CpuSplit {
        server: 100.0 * d(2) / all,
        client: 100.0 * d(3) / all,
        rest: 100.0 * (d(0) - d(2) - d(3)).max(0.0) / all,
        idle: 100.0 * (d(1) - d(0)).max(0.0) / all,
    }
}

struct Signed {
    event: String,
    delivery: String,
    signature: String,
    body: bytes::Bytes,
}

fn presign(payloads: &[(String, Vec<u8>)], n: usize, tag: &str) -> Vec<Signed> {
    (0..n)
        .map(|i| {
            let (event, body) = &payloads[i % payloads.len()];
            // Every GitHub delivery has a body of its own (the same bytes under a new delivery
            // id are a replay, answered without storing): make each one unique.
            let body = unique(body, tag, i);
            Signed {
                event: event.clone(),
                delivery: format!("bench-{tag}-{i}"),
                signature: sign(SECRET.as_bytes(), &body),
                body: bytes::Bytes::from(body),
            }
        })
        .collect()
}

/// `body` (a JSON object) with one more member at its start, naming the delivery.
fn unique(body: &[u8], tag: &str, i: usize) -> Vec<u8> {
    let mut out = format!("{{\"bench_delivery\":\"{tag}-{i}\",").into_bytes();
    out.extend_from_slice(&body[1..]);
    out
}

/// One keep-alive HTTP/1.1 connection of the load generator. Requests are written as raw
/// bytes and answers read just far enough for their status: the load generator shares the
/// machine's two cores with the server and PostgreSQL, so it must cost as little as it can
/// (in the manner of wrk), not measure a client library.
struct Conn {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("server reachable");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream: BufReader::new(stream),
            request: Vec::with_capacity(32 * 1024),
            line: String::new(),
        }
    }

    /// Posts one delivery; returns how long it took to be acknowledged.
    async fn send(&mut self, d: &Signed) -> Duration {
        use std::io::Write;
        let start = Instant::now();
        self.request.clear();
        write!(
            self.request,
            "POST /webhooks/github HTTP/1.1\r\nHost: verdict\r\nX-GitHub-Event: {}\r\n\
             X-GitHub-Delivery: {}\r\nX-Hub-Signature-256: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            d.event,
            d.delivery,
            d.signature,
            d.body.len()
        )
        .unwrap();
        self.request.extend_from_slice(&d.body);
        self.stream
            .get_mut()
            .write_all(&self.request)
            .await
            .unwrap();
        // Status line, headers, then exactly Content-Length bytes of body.
        self.line.clear();
        self.stream.read_line(&mut self.line).await.unwrap();
        let status = self
            .line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0;
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await.unwrap();
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        assert_eq!(
            status,
            "201",
            "delivery {} refused: {}",
            d.delivery,
            String::from_utf8_lossy(&body)
        );
        start.elapsed()
    }
}

/// Closed loop: `concurrency` clients send back to back. Returns (deliveries/s, latencies).
async fn closed_loop(base: &str, work: Vec<Signed>, concurrency: usize) -> (f64, Vec<Duration>) {
    let addr = base.trim_start_matches("http://").to_string();
    let work = Arc::new(work);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut conns = Vec::new();
    for _ in 0..concurrency {
        conns.push(Conn::open(&addr).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (work, next) = (work.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(d) = work.get(i) else { break };
                lat.push(conn.send(d).await);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

/// Open loop: deliveries offered at `rate` per second regardless of answers, each on an idle
/// connection (a new one when all are busy).
async fn open_loop(base: &str, work: Vec<Signed>, rate: u64) -> (f64, Vec<Duration>) {
    let addr = Arc::new(base.trim_start_matches("http://").to_string());
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::default();
    for _ in 0..32 {
        let conn = Conn::open(&addr).await;
        idle.lock().unwrap().push(conn);
    }
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for d in work {
        tick.tick().await;
        let (addr, idle) = (addr.clone(), idle.clone());
        let due = Instant::now();
        tasks.push(tokio::spawn(async move {
            let conn = idle.lock().unwrap().pop();
            let mut conn = match conn {
                Some(conn) => conn,
                None => Conn::open(&addr).await,
            };
            // Latency counts from the moment the delivery is due, connecting included.
            conn.send(&d).await;
            idle.lock().unwrap().push(conn);
            due.elapsed()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    let achieved = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (achieved, all)
}

/// The ceiling: the same bodies inserted in batches, no HTTP, no hashing, no chain. The
/// batches are built before the clock starts, so only the database's work is timed.
async fn ceiling(url: &str, payloads: &[(String, Vec<u8>)], n: usize, writers: usize) -> f64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    // Same body compression as the log, so the comparison is of everything else.
    let compression: String = sqlx::query_scalar(
        "SELECT CASE attcompression WHEN 'l' THEN 'lz4' ELSE 'pglz' END FROM pg_attribute
          WHERE attrelid = 'log_entries'::regclass AND attname = 'body'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS bench_ceiling;
         CREATE TABLE bench_ceiling (id bigint PRIMARY KEY, delivery_id text NOT NULL UNIQUE,
                                     event text NOT NULL, body bytea COMPRESSION {compression} NOT NULL);"
    )))
    .await
    .unwrap();
    struct Batch {
        ids: Vec<i64>,
        deliveries: Vec<String>,
        events: Vec<String>,
        bodies: Vec<Vec<u8>>,
    }
    let batch = 256;
    let per_writer = n / writers;
    let mut work = Vec::new();
    for w in 0..writers {
        let mut batches = Vec::new();
        let end = (w + 1) * per_writer;
        let mut i = w * per_writer;
        while i < end {
            let upto = (i + batch).min(end);
            let payload = |k: usize| &payloads[k % payloads.len()];
            batches.push(Batch {
                ids: (i..upto).map(|k| k as i64).collect(),
                deliveries: (i..upto).map(|k| format!("ceiling-{k}")).collect(),
                events: (i..upto).map(|k| payload(k).0.clone()).collect(),
                bodies: (i..upto).map(|k| payload(k).1.clone()).collect(),
            });
            i = upto;
        }
        work.push((PgConnection::connect(url).await.unwrap(), batches));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut conn, batches) in work {
        tasks.push(tokio::spawn(async move {
            for b in &batches {
                sqlx::query(
                    "INSERT INTO bench_ceiling SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[])",
                )
                .bind(&b.ids)
                .bind(&b.deliveries)
                .bind(&b.events)
                .bind(&b.bodies)
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per_writer * writers) as f64 / start.elapsed().as_secs_f64();
    conn.execute("DROP TABLE bench_ceiling").await.unwrap();
    rate
}

/// The middle value (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn start_server(url: &str) -> Server {
    start_server_with(url, true).await
}

async fn start_server_with(url: &str, merkle: bool) -> Server {
    let args: &[&str] = if merkle { &[] } else { &["--no-merkle"] };
    support::start_server(url, SECRET, args).await
}

/// One closed-loop run.
struct Level {
    concurrency: usize,
    rate: f64,
    lat: Vec<Duration>,
    hwm: u64,
    cpu: CpuSplit,
    projected: f64,
}

/// Waits until the projector has applied every entry of every log.
async fn wait_for_projections(url: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    for _ in 0..6000 {
        let backlog: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(t.size - coalesce(c.next_seq, 0)), 0)::bigint FROM
           (SELECT l.id AS log_id, coalesce((SELECT e.seq + 1 FROM log_entries e
                                              WHERE e.log_id = l.id
                                              ORDER BY e.seq DESC LIMIT 1), 0) AS size
              FROM logs l) t
           LEFT JOIN projection_cursors c ON c.log_id = t.log_id",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if backlog == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the projections did not catch up within 2 minutes");
}

/// Waits until every log's newest checkpoint covers the whole log.
async fn wait_for_tree(base: &str) {
    for _ in 0..1200 {
        let logs: serde_json::Value = reqwest::Client::new()
            .get(format!("{base}/api/logs"))
            .bearer_auth("bench")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if logs
            .as_array()
            .unwrap_or_else(|| panic!("/api/logs answered {logs}"))
            .iter()
            .all(|l| l["size"] == l["checkpoint_size"])
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the Merkle tree did not catch up within 2 minutes");
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

async fn run() {
    let (admin, url) = support::bench_database("verdict_bench").await;

    let deliveries: usize = env_or("BENCH_DELIVERIES", 20_000);
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or("64,256".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("BENCH_CONCURRENCY: comma-separated numbers")
        })
        .collect();
    let rate: u64 = env_or("BENCH_RATE", 1000);
    let rate_secs: u64 = env_or("BENCH_RATE_SECS", 10);
    let payloads = payloads();
    let avg = payloads.iter().map(|p| p.1.len()).sum::<usize>() / payloads.len();
    eprintln!(
        "{} real payloads, average {avg} bytes; {deliveries} deliveries, {concurrencies:?} concurrent",
        payloads.len()
    );

    // The ceiling is measured before each closed loop and after the last, and compared by its
    // median: one short measurement on a shared machine moves by a fifth from run to run.
    let mut ceilings = Vec::new();
    let measure_ceiling = async |ceilings: &mut Vec<f64>| {
        let rate = ceiling(&url, &payloads, deliveries, 4).await;
        eprintln!("ceiling: {rate:.0} rows/s");
        ceilings.push(rate);
    };

    // Closed loops at each concurrency, each on a fresh server so peak RSS is its own.
    let mut levels = Vec::new();
    for &concurrency in &concurrencies {
        measure_ceiling(&mut ceilings).await;
        let ceiling_rate = median(&ceilings);
        let server = start_server(&url).await;
        // Warm-up: connections, caches.
        closed_loop(
            &server.base,
            presign(&payloads, 500, &format!("warm-{concurrency}")),
            concurrency,
        )
        .await;
        let work = presign(&payloads, deliveries, &format!("max-{concurrency}"));
        eprintln!("{concurrency} concurrent: sending {deliveries} deliveries");
        let before = cpu_snapshot(server.child.id());
        let (rate, lat) = closed_loop(&server.base, work, concurrency).await;
        let cpu = cpu_split(before, cpu_snapshot(server.child.id()));
        let (_, hwm) = server.rss_kb();
        eprintln!(
            "{concurrency} concurrent: acknowledged at {rate:.0}/s ({:.0} % of the ceiling); waiting for the projections",
            100.0 * rate / ceiling_rate
        );
        // The projections run behind intake at a lower priority; this is the rate at which
        // the whole burst was both acknowledged and projected.
        let burst_started = Instant::now() - Duration::from_secs_f64(deliveries as f64 / rate);
        wait_for_projections(&url).await;
        let projected = deliveries as f64 / burst_started.elapsed().as_secs_f64();
        eprintln!("{concurrency} concurrent: acknowledged and projected at {projected:.0}/s");
        levels.push(Level {
            concurrency,
            rate,
            lat,
            hwm,
            cpu,
            projected,
        });
        drop(server);
    }
    measure_ceiling(&mut ceilings).await;
    let ceiling_rate = median(&ceilings);
    let best = levels
        .iter()
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .expect("at least one concurrency");
    let concurrency = concurrencies[0];

    // Latency at a fixed offered load, with a fresh server so peak RSS is for this load.
    let server = start_server(&url).await;
    let (achieved, rate_lat) = open_loop(
        &server.base,
        presign(&payloads, (rate * rate_secs) as usize, "rate"),
        rate,
    )
    .await;
    let (_, hwm_rate) = server.rss_kb();
    drop(server);

    // What maintaining the Merkle tree costs: the same closed loop with and without it,
    // alternating, each server started with the tree caught up.
    let mut with_tree: f64 = 0.0;
    let mut without_tree: f64 = 0.0;
    for round in 0..2 {
        for merkle in [false, true] {
            let server = start_server_with(&url, merkle).await;
            if merkle {
                wait_for_tree(&server.base).await;
            }
            let tag = format!("tree-{round}-{merkle}");
            let (r, _) = closed_loop(
                &server.base,
                presign(&payloads, deliveries, &tag),
                concurrency,
            )
            .await;
            if merkle {
                with_tree = with_tree.max(r);
            } else {
                without_tree = without_tree.max(r);
            }
            drop(server);
        }
    }

    let mut bench_conn = PgConnection::connect(&url).await.unwrap();
    let scans: (i64, i64, i64) = sqlx::query_as(
        "SELECT seq_scan, seq_tup_read, COALESCE(idx_scan, 0) FROM pg_stat_user_tables
          WHERE relname = 'log_entries'",
    )
    .fetch_one(&mut bench_conn)
    .await
    .unwrap();
    eprintln!(
        "log_entries scans: seq {} (rows read {}), index {}",
        scans.0, scans.1, scans.2
    );
    bench_conn.close().await.unwrap();
    support::drop_database(&admin, &url).await;

    println!();
    println!("| measurement | deliveries/s | p50 ack ms | p99 ack ms | server peak RSS MB |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| ceiling: bare batched INSERT (4 writers x 256 rows), median of {} | {ceiling_rate:.0} | | | |",
        ceilings.len()
    );
    for l in &levels {
        println!(
            "| verdict serve, {} concurrent clients, max rate | {:.0} | {:.1} | {:.1} | {:.0} |",
            l.concurrency,
            l.rate,
            support::percentile_ms(&l.lat, 0.50),
            support::percentile_ms(&l.lat, 0.99),
            l.hwm as f64 / 1024.0
        );
        println!(
            "| verdict serve, {} concurrent clients, acknowledged and projected | {:.0} | | | |",
            l.concurrency, l.projected
        );
    }
    println!(
        "| verdict serve, {rate}/s offered for {rate_secs} s | {achieved:.0} | {:.1} | {:.1} | {:.0} |",
        support::percentile_ms(&rate_lat, 0.50),
        support::percentile_ms(&rate_lat, 0.99),
        hwm_rate as f64 / 1024.0
    );
    println!("| verdict serve without the Merkle tree (best of 2) | {without_tree:.0} | | | |");
    println!("| verdict serve with the Merkle tree (best of 2) | {with_tree:.0} | | | |");
    println!();
    println!(
        "intake with the tree maintained / without: {:.0} % (target: within 10 %, i.e. >= 90 %)",
        100.0 * with_tree / without_tree
    );
    println!(
        "verdict max rate / ceiling: {:.0} % ({} concurrent clients; ceiling runs: {})",
        100.0 * best.rate / ceiling_rate,
        best.concurrency,
        ceilings
            .iter()
            .map(|c| format!("{c:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for l in &levels {
        println!(
            "machine CPU busy at {} concurrent: verdict serve {:.0} %, load generator {:.0} %, PostgreSQL and the rest {:.0} %, idle {:.0} %",
            l.concurrency, l.cpu.server, l.cpu.client, l.cpu.rest, l.cpu.idle
        );
    }
}
