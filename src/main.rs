//! The `tandem` command. Thin: parse arguments, then call into the library.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tandem::api::workspaces;
use tandem::config::{Config, Overrides};
use tandem::store::{queries, Decision};
use tandem_core::Op;

#[derive(Parser)]
#[command(name = "tandem", version, about = "An MLflow-compatible ML workspace that survives the loss of a region")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Where the embedded metadata store and artifacts live.
    #[arg(long, env = "TANDEM_DATA")]
    data: Option<PathBuf>,
    /// Metadata store: sqlite:///PATH or postgres://USER@HOST:PORT/DB (default: SQLite in --data).
    #[arg(long, env = "TANDEM_STORE")]
    store: Option<String>,
    /// Artifact store: file:///PATH, s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, env = "TANDEM_ARTIFACTS")]
    artifacts: Option<String>,
    /// A TOML config file (keys: listen, data, region, durability).
    #[arg(long, env = "TANDEM_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the MLflow REST API (tracking, registry, artifacts) and tandem's own API.
    Server {
        #[command(flatten)]
        store: StoreArgs,
        /// ADDRESS:PORT to listen on; port 0 picks a free port.
        #[arg(long, env = "TANDEM_LISTEN")]
        listen: Option<String>,
        /// This server's region name, recorded in every event it writes.
        #[arg(long, env = "TANDEM_REGION")]
        region: Option<String>,
        /// full (fsync every commit) or normal (survives a killed process, not a power cut).
        #[arg(long, env = "TANDEM_DURABILITY")]
        durability: Option<String>,
    },
    /// Bring the metadata store's schema up to date (the server also does this on start).
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        action: WorkspaceAction,
    },
}

#[derive(Subcommand)]
enum WorkspaceAction {
    /// Create a workspace.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List workspaces.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a workspace's state (its change log is kept).
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn load(store: &StoreArgs, over: Overrides) -> anyhow::Result<Config> {
    Ok(Config::load(store.config.as_deref(), &Overrides { data: store.data.clone(), store: store.store.clone(), artifacts: store.artifacts.clone(), ..over })?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    // Cloud clients speak TLS through rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Server { store, listen, region, durability } => {
            let config = load(&store, Overrides { listen, region, durability, ..Default::default() })?;
            serve(config)
        }
        Command::Migrate { store } => {
            let config = load(&store, Overrides::default())?;
            let s = tandem::server::open_store(&config)?;
            println!("metadata store ({}) is at schema version {}", s.backend_kind(), tandem::store::schema::SCHEMA_VERSION);
            Ok(())
        }
        Command::Workspace { action } => workspace(action),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let state = tandem::server::open(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("setting 'listen': cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        println!("tandem: metadata in {} store, artifacts in {}", state.store.backend_kind(), state.artifacts.describe());
        println!("tracking uri: http://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        tandem::server::run(listener, state, shutdown_signal()).await?;
        println!("tandem: stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn workspace(action: WorkspaceAction) -> anyhow::Result<()> {
    match action {
        WorkspaceAction::Create { name, description, store } => {
            workspaces::validate_name(&name)?;
            let state = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            if !workspaces::ensure(&state, &name, &description, "tandem-cli")? {
                bail!("workspace '{name}' already exists");
            }
            println!("created workspace {name}");
        }
        WorkspaceAction::List { store } => {
            let state = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            for w in state.read(queries::workspaces)? {
                println!("{}\t{}", w["name"].as_str().unwrap_or_default(), w["description"].as_str().unwrap_or_default());
            }
        }
        WorkspaceAction::Delete { name, store } => {
            if name == workspaces::DEFAULT_WORKSPACE {
                bail!("the default workspace cannot be deleted");
            }
            let state = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            let time = state.now_ms();
            let deleted = state.write(&name, "tandem-cli", |tx| {
                if !queries::workspace_exists(tx, &name)? {
                    return Ok(Decision::no_change(false));
                }
                Ok(Decision::change(true, Op::DeleteWorkspace { time }))
            })?;
            if !deleted {
                bail!("workspace '{name}' does not exist");
            }
            println!("deleted workspace {name}");
        }
    }
    Ok(())
}
