//! tandem: an MLflow-compatible machine-learning workspace built on a per-workspace change
//! log. See ARCHITECTURE.md for the code map.

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod backup;
pub mod config;
pub mod dashboard;
pub mod http;
pub mod invocations;
pub mod jobs;
pub mod otlp;
pub mod region;
pub mod restore;
pub mod retention;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod ui;
pub mod vault;
