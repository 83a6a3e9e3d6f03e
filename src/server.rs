//! Opening the stores and serving until told to stop.

use crate::api::workspaces::{self, DEFAULT_WORKSPACE};
use crate::artifacts::Artifacts;
use crate::config::{redact, Config, StoreLocation};
use crate::store::postgres::Postgres;
use crate::http::{router, AppState};
use crate::store::sqlite::Sqlite;
use crate::store::{Store, SystemClock};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("setting 'store' ({url}): {source}")]
    Store { url: String, source: crate::store::Error },
    #[error("setting 'artifacts' ({url}): {message}")]
    Artifacts { url: String, message: String },
}

/// Opens the metadata store (running migrations) and makes sure the default workspace
/// exists. Blocking: call it outside async code, or through `spawn_blocking`.
pub fn open_store(config: &Config) -> Result<Store, StartError> {
    let (url, backend): (String, Result<Arc<dyn crate::store::Backend>, crate::store::Error>) = match &config.store {
        StoreLocation::Sqlite(path) => (format!("sqlite://{}", path.display()), Sqlite::open(path, config.durability).map(|b| Arc::new(b) as _)),
        StoreLocation::Postgres(url) => (redact(url), Postgres::connect(url).map(|b| Arc::new(b) as _)),
    };
    let err = |source| StartError::Store { url: url.clone(), source };
    let store = Store::new(backend.map_err(err)?, Arc::new(SystemClock), &config.region).map_err(err)?;
    workspaces::ensure(&store, DEFAULT_WORKSPACE, "The default workspace", "tandem").map_err(err)?;
    Ok(store)
}

/// Opens both stores. The artifact store is checked (reachable, credentials accepted,
/// bucket or container present) before the server starts.
pub async fn open(config: &Config) -> Result<AppState, StartError> {
    let c = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&c)).await.map_err(|e| StartError::Store { url: String::new(), source: crate::store::Error::Backend(e.to_string()) })??;
    let artifacts = Artifacts::connect(&config.artifacts).await.map_err(|(url, message)| StartError::Artifacts { url, message })?;
    Ok(AppState { store, artifacts })
}

/// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
