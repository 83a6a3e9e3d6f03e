//! tandem's pure core: what a workspace is made of and how it changes, with no IO.
//!
//! Architecture invariant: nothing in this crate reads a clock, a random source, a file, a
//! socket or a database. Callers pass those readings in, so every rule here is deterministic
//! and replaying the change log reproduces the same state.

pub mod access;
pub mod audit;
pub mod correlation;
pub mod error;
pub mod event;
pub mod float;
pub mod history;
pub mod hlc;
pub mod ids;
pub mod search;
pub mod span_rollup;
pub mod uri;
pub mod validate;

pub use error::{ErrorCode, MlflowError, Result};
pub use event::{Event, Op};
pub use float::F64;
pub use hlc::Hlc;
