//! Operating verdict: where every log stands (`status`), the metrics a scraper reads
//! (`metrics`), and what readiness checks.

pub mod metrics;
pub mod status;
