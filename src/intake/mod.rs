//! Intake: what GitHub sends, verified and inspected, on its way into the log.

pub mod account;
pub mod backfill;
pub mod catch_up;
pub mod signature;
pub mod webhook;

pub use signature::WebhookSecrets;
