//! The log: append (group-committed, chained) and read back; the source of truth.

pub mod bundle;
pub mod checkpoint;
pub mod entry;
pub mod integrity;
pub mod keys;
pub mod merkle;
pub mod monitor;
pub mod redaction;
pub mod retention;
pub mod sequencer;
pub mod store;
pub mod tree;
pub mod verify;

pub use entry::{Hash, KIND_GITHUB_DELIVERY};
pub use sequencer::{AppendError, AppendOutcome, Sequencer};
pub use store::NewEntry;
