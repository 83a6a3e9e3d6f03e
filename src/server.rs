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
    #[error("vault: {0}")]
    Vault(String),
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
        crate::api::access::ensure_workspace(&store).map_err(err)?;
    }
    Ok(store)
}

/// Opens both stores. The artifact store is checked (reachable, credentials accepted,
/// bucket or container present) before the server starts.
pub async fn open(config: &Config) -> Result<AppState, StartError> {
    open_with(config, true, None, &config.data).await
}

async fn open_with(
    config: &Config,
    create_default: bool,
    deployment_key: Option<&str>,
    vault_dir: &std::path::Path,
) -> Result<AppState, StartError> {
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
    // The vault's master key: from the environment, or created in the data folder (said once).
    let (vault, created) =
        crate::vault::Keyring::load(vault_dir).map_err(|e| StartError::Vault(e.to_string()))?;
    if let Some(notice) = created {
        // `tandem server` says it on its output; a region (whose output is its status lines,
        // and whose key `tandem up` normally made already) logs it.
        if create_default {
            println!("{notice}");
        } else {
            tracing::warn!("{notice}");
        }
    }
    let auth = Arc::new(crate::auth::Auth::new(
        config.auth,
        store.clone(),
        deployment_key,
        config.metrics_auth,
    ));
    let probes = Arc::new(crate::invocations::Probes::default());
    if let Some(every) = crate::invocations::probe_interval() {
        crate::invocations::spawn_probes(store.clone(), probes.clone(), every);
    }
    Ok(AppState {
        store,
        artifacts,
        region: None,
        http,
        auth,
        ui: None,
        dashboard: None,
        compute: config.compute.clone().into(),
        vault: Some(std::sync::Arc::new(vault)),
        probes,
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
            auth: Some(deployment.auth.clone()),
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
    let key = deployment.key()?;
    let ca = deployment.ca_pem()?;
    // Both regions must hold the same master key: unless the environment names one, it is the
    // file beside the deployment file (as the deployment key is), created by the first region
    // that starts; on separate machines, copy it like the deployment key.
    let vault_dir = deployment
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| data.to_owned());
    let mut state = open_with(&config, false, key.as_deref(), &vault_dir).await?;
    // Jobs may name the compute of either region (they run where their workspace leads);
    // this region's scheduler runs only its own (`region.compute`).
    let mut all: Vec<crate::jobs::ComputeTarget> = region.compute.clone();
    for other in deployment.regions.iter().filter(|r| r.name != name) {
        all.extend(other.compute.iter().cloned());
    }
    state.compute = all.into();
    // Requests a standby forwards to the leader go over https when the leader's url says so.
    state.http = crate::region::with_ca(
        reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(3)),
        ca.as_deref(),
    )
    .build()?;
    let region_state = crate::region::RegionState::new(name, deployment, witness, key);
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

/// The HTTPS side of `tls_cert` / `tls_key`: the chain and key read from their PEM files, for
/// rustls with the ring provider (as every TLS client of tandem's). Errors name the setting.
pub fn tls_acceptor(
    files: &crate::config::TlsFiles,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::File {
            setting: "tls_cert",
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            setting: "tls_cert",
            path: files.cert.clone(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        setting: "tls_key",
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|e| TlsError::File {
        setting: "tls_key",
        path: files.key.clone(),
        message: format!("the key does not fit the certificate or cannot be used: {e}"),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A server's certificate and key, read again from their files on SIGHUP (renewed
/// certificates apply to new connections without a restart; a bad file keeps the old ones).
#[derive(Clone)]
pub struct Tls {
    files: crate::config::TlsFiles,
    current: Arc<std::sync::RwLock<tokio_rustls::TlsAcceptor>>,
}

impl Tls {
    pub fn load(files: &crate::config::TlsFiles) -> Result<Tls, TlsError> {
        Ok(Tls {
            files: files.clone(),
            current: Arc::new(std::sync::RwLock::new(tls_acceptor(files)?)),
        })
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = tls_acceptor(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn reload_on_sighup(&self) {
        #[cfg(unix)]
        {
            let tls = self.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    match tls.reload() {
                        Ok(()) => tracing::info!(
                            cert = %tls.files.cert.display(),
                            "SIGHUP: certificate and key read again"
                        ),
                        Err(e) => {
                            tracing::error!("SIGHUP: {e}; the certificate in use stays")
                        }
                    }
                }
            });
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("setting '{setting}' ({}): {message}", path.display())]
    File {
        setting: &'static str,
        path: std::path::PathBuf,
        message: String,
    },
}

/// As [`run`], over HTTPS: each connection's TLS handshake (bounded in time, so a silent
/// client cannot hold a task) then HTTP/1.1; on `shutdown`, no new connections, and the
/// server returns once in-flight requests finish.
pub async fn run_tls(
    listener: TcpListener,
    acceptor: Tls,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, acceptor, router(state), shutdown).await
}

/// Serves any router over HTTPS (the server, a region, the front door).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Tls,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tls.reload_on_sighup();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => { tokio::time::sleep(std::time::Duration::from_millis(50)).await; continue }
            },
            _ = &mut shutdown => break,
        };
        let (acceptor, app) = (tls.acceptor(), app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            let _ = watcher.watch(conn).await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}
