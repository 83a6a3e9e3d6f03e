//! tandem: an MLflow-compatible machine-learning workspace built on a per-workspace change log.
//! See ARCHITECTURE.md for the code map.

pub mod store;
