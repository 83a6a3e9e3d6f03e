//! Opening the stores and serving until told to stop.

use crate::api::workspaces::{self, DEFAULT_WORKSPACE};
use crate::artifacts::Artifacts;
use crate::config::{redact, Config, StoreLocation};
use crate::http::{router, AppState};
use crate::store::postgres::Postgres;
use crate::store::sqlite::Sqlite;
use crate::store::{Store, SystemClock};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("setting 'store' ({url}): {source}")]
    Store {
        url: String,
        source: crate::store::Error,
    },
    #[error("setting 'artifacts' ({url}): {message}")]
    Artifacts { url: String, message: String },
}

/// Opens the metadata store (running migrations) and makes sure the default workspace
/// exists. Blocking: call it outside async code, or through `spawn_blocking`.
pub fn open_store(config: &Config) -> Result<Store, StartError> {
    open_store_with(config, true)
}

/// As `open_store`; a region of a deployment passes `false`: only a leader creates
/// workspaces, in its epoch, so that both regions' logs start from the same events.
pub fn open_store_with(config: &Config, create_default: bool) -> Result<Store, StartError> {
    let (url, backend): (
        String,
        Result<Arc<dyn crate::store::Backend>, crate::store::Error>,
    ) = match &config.store {
        StoreLocation::Sqlite(path) => (
            format!("sqlite://{}", path.display()),
            Sqlite::open(path, config.durability).map(|b| Arc::new(b) as _),
        ),
        StoreLocation::Postgres(url) => (
            redact(url),
            Postgres::connect(url).map(|b| Arc::new(b) as _),
        ),
    };
    let err = |source| StartError::Store {
        url: url.clone(),
        source,
    };
    let store =
        Store::new(backend.map_err(err)?, Arc::new(SystemClock), &config.region).map_err(err)?;
    if create_default {
        workspaces::ensure(&store, DEFAULT_WORKSPACE, "The default workspace", "tandem")
            .map_err(err)?;
    }
    Ok(store)
}

/// Opens both stores. The artifact store is checked (reachable, credentials accepted,
/// bucket or container present) before the server starts.
pub async fn open(config: &Config) -> Result<AppState, StartError> {
    open_with(config, true).await
}

async fn open_with(config: &Config, create_default: bool) -> Result<AppState, StartError> {
    let c = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store_with(&c, create_default))
        .await
        .map_err(|e| StartError::Store {
            url: String::new(),
            source: crate::store::Error::Backend(e.to_string()),
        })??;
    let artifacts = Artifacts::connect(&config.artifacts)
        .await
        .map_err(|(url, message)| StartError::Artifacts { url, message })?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| StartError::Artifacts {
            url: String::new(),
            message: e.to_string(),
        })?;
    Ok(AppState {
        store,
        artifacts,
        region: None,
        http,
    })
}

/// Opens one region of a multi-region deployment: its stores, the witness (probed for
/// create-only writes), and its lease and replication loops.
pub async fn open_region(
    deployment: crate::region::deployment::Deployment,
    name: &str,
    data: &std::path::Path,
) -> anyhow::Result<AppState> {
    use crate::config::Overrides;
    let region = deployment
        .region(name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no region named '{name}' (regions: {})",
                deployment.path.display(),
                deployment
                    .regions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?
        .clone();
    let config = Config::load(
        None,
        &Overrides {
            data: Some(data.to_owned()),
            store: Some(region.store.clone()),
            artifacts: Some(region.artifacts.clone()),
            region: Some(name.to_owned()),
            listen: Some(region.listen.to_string()),
            ..Default::default()
        },
    )?;
    let witness = match deployment.witness.strip_prefix("file://") {
        Some(path) => crate::region::witness::Witness::folder(std::path::Path::new(path))?,
        None => {
            let (store, prefix) = crate::artifacts::object_store_for(&deployment.witness)
                .map_err(|e| anyhow::anyhow!("witness {}: {e}", deployment.witness))?;
            crate::region::witness::Witness::new(store, prefix, deployment.witness.clone())
        }
    };
    witness.probe().await.map_err(|e| {
        anyhow::anyhow!(
            "{}: witness {}: {e}",
            deployment.path.display(),
            deployment.witness
        )
    })?;
    let mut state = open_with(&config, false).await?;
    let region_state = crate::region::RegionState::new(name, deployment, witness);
    state.store = state.store.with_fence(region_state.clone());
    crate::region::spawn(
        region_state.clone(),
        state.store.clone(),
        state.artifacts.clone(),
    );
    state.region = Some(region_state);
    Ok(state)
}

/// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
