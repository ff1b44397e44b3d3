//! Projections: decision records, pull requests and features derived from the log. They are
//! disposable: `verdict reproject` rebuilds them from the log alone.

pub mod api;
pub mod clean;
pub mod coverage;
pub mod decisions;
pub mod features;
pub mod findings;
pub mod payload;
pub mod projector;
pub mod review_state;
pub mod writes;
