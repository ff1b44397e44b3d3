//! verdict: GitHub review and merge decisions kept in an append-only, hash-chained,
//! independently verifiable log.
//!
//! The modules follow the data path: [`intake`] (verify, inspect) → [`log`] (append, chain,
//! verify) → [`web`] (HTTP). [`db`] resolves and migrates PostgreSQL; [`ops`] tells operators
//! where everything stands (status, readiness, metrics).

pub mod background;
pub mod db;
pub mod feedback;
pub mod github;
pub mod intake;
pub mod log;
pub mod ops;
pub mod projections;
pub mod server;
pub mod story;
pub mod web;
