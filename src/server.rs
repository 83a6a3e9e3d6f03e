//! Opening the stores and serving until told to stop.

use crate::api::workspaces::{self, DEFAULT_WORKSPACE};
use crate::artifacts::Artifacts;
use crate::config::Config;
use crate::http::{router, AppState};
use crate::store::sqlite::Sqlite;
use crate::store::{Store, SystemClock};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("metadata store ({path}): {source}")]
    Store { path: String, source: crate::store::Error },
    #[error("artifact store ({path}): {source}")]
    Artifacts { path: String, source: std::io::Error },
}

/// Opens the embedded stores under `config.data` and makes sure the default workspace exists.
pub fn open(config: &Config) -> Result<AppState, StartError> {
    let db = config.data.join("metadata.sqlite");
    let backend = Sqlite::open(&db, config.durability).map_err(|source| StartError::Store { path: db.display().to_string(), source })?;
    let store = Store::new(Arc::new(backend), Arc::new(SystemClock), &config.region).map_err(|source| StartError::Store { path: db.display().to_string(), source })?;
    workspaces::ensure(&store, DEFAULT_WORKSPACE, "The default workspace", "tandem").map_err(|source| StartError::Store { path: db.display().to_string(), source })?;
    let art = config.data.join("artifacts");
    let artifacts = Artifacts::local(&art).map_err(|source| StartError::Artifacts { path: art.display().to_string(), source })?;
    Ok(AppState { store, artifacts })
}

/// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
