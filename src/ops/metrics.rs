//! Prometheus metrics (`/metrics`, text format 0.0.4). Each server owns its registry (no
//! process-wide globals, so several servers in one process count apart): counters and
//! histograms are updated where things happen (intake, the sequencer, the HTTP layer); the
//! gauges of where each log stands are read from the database at scrape time through
//! [`super::status`], the same read `verdict status` and `/readyz` use.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;

type Labels = Vec<(&'static str, String)>;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric verdict exports.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<Labels, Counter>,
    append_duration: Histogram,
    append_batch_size: Histogram,
    http_duration: Family<Labels, Histogram>,
    log_size: Family<Labels, Gauge>,
    projection_lag: Family<Labels, Gauge>,
    judge_lag: Family<Labels, Gauge>,
    unsigned: Family<Labels, Gauge>,
    checkpoint_age: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    outbox: Family<Labels, Gauge>,
    integrity_alarms: Gauge,
    pool_in_use: Gauge,
    pool_size: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "verdict_deliveries",
            "Webhook deliveries by outcome: stored, duplicate, replay, or the reason refused",
            deliveries.clone(),
        );
        let append_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "verdict_append_duration_seconds",
            "From receiving a delivery to its durable commit in the log",
            append_duration.clone(),
        );
        let append_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "verdict_append_batch_size",
            "Entries committed together by one group commit",
            append_batch_size.clone(),
        );
        let http_duration =
            Family::<Labels, Histogram>::new_with_constructor(http_histogram as fn() -> Histogram);
        registry.register(
            "verdict_http_request_duration_seconds",
            "HTTP requests by route template and status",
            http_duration.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let log_size = gauge(&mut registry, "verdict_log_entries", "Entries in each log");
        let projection_lag = gauge(
            &mut registry,
            "verdict_projection_lag_entries",
            "Entries of each log the projections have not read yet",
        );
        let judge_lag = gauge(
            &mut registry,
            "verdict_judge_lag_entries",
            "Entries of each log the accountability rules have not read yet",
        );
        let unsigned = gauge(
            &mut registry,
            "verdict_unsigned_entries",
            "Entries of each log no signed checkpoint covers yet",
        );
        let outbox = gauge(
            &mut registry,
            "verdict_outbox_messages",
            "Alerts and GitHub messages by state",
        );
        let checkpoint_age = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "verdict_checkpoint_age_seconds",
            "Seconds since each log's newest checkpoint was signed",
            checkpoint_age.clone(),
        );
        let integrity_alarms = Gauge::default();
        registry.register(
            "verdict_integrity_alarms",
            "Logs the signer refuses to sign because they contradict what it signed",
            integrity_alarms.clone(),
        );
        let pool_in_use = Gauge::default();
        registry.register(
            "verdict_db_pool_connections_in_use",
            "Database connections of the server's pool in use",
            pool_in_use.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "verdict_db_pool_connections",
            "Database connections the server's pool holds",
            pool_size.clone(),
        );
        Metrics {
            registry,
            deliveries,
            append_duration,
            append_batch_size,
            http_duration,
            log_size,
            projection_lag,
            judge_lag,
            unsigned,
            checkpoint_age,
            outbox,
            integrity_alarms,
            pool_in_use,
            pool_size,
        }
    }

    /// One delivery answered: `outcome` is `stored`, `duplicate`, `replay` or why it was
    /// refused (`bad_signature`, `too_large`, ...).
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// A delivery committed `took` after it was received.
    pub fn appended(&self, took: Duration) {
        self.append_duration.observe(took.as_secs_f64());
    }

    /// A group commit of `entries`.
    pub fn batch(&self, entries: usize) {
        self.append_batch_size.observe(entries as f64);
    }

    /// An HTTP request to the route template `route` answered `status` after `took`.
    pub fn http(&self, route: &str, status: u16, took: Duration) {
        self.http_duration
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .observe(took.as_secs_f64());
    }

    /// The text a scraper reads: the gauges refreshed from the database first.
    pub async fn render(&self, pool: &PgPool, server_pool: &PgPool) -> String {
        self.pool_size.set(server_pool.size() as i64);
        self.pool_in_use
            .set(server_pool.size() as i64 - server_pool.num_idle() as i64);
        match super::status::read(pool).await {
            Ok(status) => {
                for family in [
                    &self.log_size,
                    &self.projection_lag,
                    &self.judge_lag,
                    &self.unsigned,
                    &self.outbox,
                ] {
                    family.clear();
                }
                self.checkpoint_age.clear();
                for l in &status.logs {
                    let log = vec![("log", l.log.clone())];
                    self.log_size.get_or_create(&log).set(l.size);
                    self.projection_lag
                        .get_or_create(&log)
                        .set(l.projection_lag());
                    if let Some(lag) = l.judge_lag() {
                        self.judge_lag.get_or_create(&log).set(lag);
                    }
                    self.unsigned.get_or_create(&log).set(l.unsigned());
                    if let Some(at) = l.signed_at {
                        let age = (status.read_at - at).num_milliseconds() as f64 / 1000.0;
                        self.checkpoint_age.get_or_create(&log).set(age.max(0.0));
                    }
                }
                for state in ["pending", "delivered", "failed"] {
                    let n = status
                        .outbox
                        .iter()
                        .find(|(s, _)| s == state)
                        .map_or(0, |(_, n)| *n);
                    self.outbox
                        .get_or_create(&vec![("state", state.to_string())])
                        .set(n);
                }
                self.integrity_alarms.set(status.alarms.len() as i64);
            }
            Err(err) => tracing::warn!(error = %err, "metrics: the database did not answer"),
        }
        let mut out = String::new();
        if prometheus_text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics could not be encoded");
        }
        out
    }
}

/// Shared by the server's parts.
pub type SharedMetrics = Arc<Metrics>;
