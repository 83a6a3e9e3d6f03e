//! The `tandem` command. Thin: parse arguments, then call into the library.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tandem::api::workspaces;
use tandem::config::{Config, Overrides};
use tandem::store::{queries, Decision};
use tandem_core::Op;

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "An MLflow-compatible ML workspace that survives the loss of a region"
)]
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
    /// Continuous backup of every workspace's change log to this location (same URL forms).
    #[arg(long, env = "TANDEM_ARCHIVE")]
    archive: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TANDEM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "TANDEM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A TOML config file (keys: listen, data, region, durability).
    #[arg(long, env = "TANDEM_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user (or, with --kind service, a workspace's service identity).
    Create {
        name: String,
        /// Make it an administrator of the whole service (the first admin is made this way).
        #[arg(long)]
        admin: bool,
        /// user or service.
        #[arg(long, default_value = "user")]
        kind: String,
        /// A service identity's workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Read the password from this file; without it, from standard input. Service
        /// identities have no password (give them tokens).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Grant these roles at once (ROLE@SCOPE, e.g. contributor@workspaces/team-a).
        #[arg(long = "grant", value_name = "ROLE@SCOPE")]
        grants: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (from --password-file or standard input).
    Password {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a principal with its tokens and role assignments.
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List principals with their role assignments.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue an API token (printed once; clients send it as MLFLOW_TRACKING_TOKEN).
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        label: String,
        /// Expire after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its ID.
    Revoke {
        #[arg(long)]
        user: String,
        token_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum AccessAction {
    /// Give a principal a role at a scope (*, workspaces/W, workspaces/W/experiments/ID, workspaces/W/models/NAME).
    Grant {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Take back one role assignment, by its ID (see `tandem access list`).
    Revoke {
        assignment_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every role assignment.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Let a principal elevate itself to a role at a scope, for at most --max (e.g. 4h);
    /// the eligibility itself grants nothing.
    Eligible {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
        #[arg(long, default_value = "4h")]
        max: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Elevate yourself (just in time, with a reason) through a server: MLFLOW_TRACKING_URI
    /// and your credentials (MLFLOW_TRACKING_TOKEN, or _USERNAME and _PASSWORD) say where and who.
    Elevate {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "*")]
        scope: String,
        /// How long: 30m, 1h, 4h ...
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        #[arg(long)]
        reason: String,
    },
    /// Lock a scope: no-delete (no deletes, purges, retention changes or in-place restores)
    /// or read-only (no changes at all), for everyone, admins included.
    Lock {
        #[arg(long)]
        scope: String,
        #[arg(long, default_value = "no-delete")]
        kind: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lift a lock by its ID (written to the change log like everything else).
    Unlock {
        lock_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every lock.
    Locks {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Define (or redefine) a custom role from action patterns: AREA/VERB (runs/write,
    /// */read) or workspaces/W/AREA/ID/VERB (workspaces/*/experiments/*/read).
    DefineRole {
        name: String,
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Drop a custom role that no assignment uses.
    DropRole {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Put a user or service identity in a group (create groups with `tandem user create
    /// NAME --kind group`); the group's roles become theirs.
    AddMember {
        #[arg(long)]
        group: String,
        #[arg(long)]
        member: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    RemoveMember {
        #[arg(long)]
        group: String,
        #[arg(long)]
        member: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `30s`, `15m`, `1h`, `2d` in milliseconds.
fn duration_ms(s: &str) -> anyhow::Result<i64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("'{s}' is not a duration like 30m, 1h or 2d"))?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("'{s}' is not a duration like 30m, 1h or 2d"),
    };
    if n <= 0 {
        bail!("'{s}': a duration is positive");
    }
    Ok(n.saturating_mul(unit_ms))
}

#[derive(Subcommand)]
enum Command {
    /// Users and service identities (written straight to the store, like `workspace create`).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Who did what, when, to which object, under which elevation: the change log as an
    /// audit trail (`_access` for access changes).
    Audit {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        principal: Option<String>,
        /// An action (runs/delete) or an operation name (DeleteRun).
        #[arg(long)]
        action: Option<String>,
        /// An object (run:ID, experiment:ID, registered-model:NAME, ...) or a prefix of one.
        #[arg(long)]
        object: Option<String>,
        /// From this instant (UTC RFC 3339 or milliseconds since the epoch).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 1000)]
        max: i64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Role assignments.
    Access {
        #[command(subcommand)]
        action: AccessAction,
    },
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
        /// on (default): every request authenticates; off: nobody is asked (loopback only).
        #[arg(long, env = "TANDEM_AUTH")]
        auth: Option<String>,
        /// MLflow's UI build to serve at / (default: the one of python3's mlflow package).
        #[arg(long, env = "TANDEM_UI")]
        ui: Option<PathBuf>,
    },
    /// Run a complete two-region deployment on this machine: two region processes, a
    /// witness folder and a front door. Writes DATA/deployment.toml if there is none.
    Up {
        /// Where everything lives.
        #[arg(long, env = "TANDEM_DATA", default_value = "./tandem-data")]
        data: PathBuf,
        /// The front door's port (0 picks a free one).
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// Use this deployment file instead of DATA/deployment.toml.
        #[arg(long)]
        deployment: Option<PathBuf>,
        /// For a new deployment file: async (acknowledge after the local commit) or sync
        /// (acknowledge after the standby has it too).
        #[arg(long, default_value = "async")]
        write_ack: String,
        /// For a new deployment file: the default workspace's mode, hot/warm (the second region
        /// replicates and takes over by itself) or hot/cold (it restores from the archive when
        /// `tandem failover` says so).
        #[arg(long, default_value = "hot/warm")]
        mode: String,
        /// For a new deployment file: on (default; bootstrap the first admin with
        /// TANDEM_BOOTSTRAP_ADMIN and TANDEM_BOOTSTRAP_PASSWORD_FILE) or off (local play).
        #[arg(long, default_value = "on")]
        auth: String,
        /// For a new deployment file: the leader's lease in milliseconds (how long a lost
        /// leader goes unnoticed; see BENCHMARKS.md for what shorter leases cost).
        #[arg(long, default_value_t = tandem::region::deployment::DEFAULT_LEASE_MS)]
        lease_ms: u64,
        /// For a new deployment file: how often the leader renews its lease, in milliseconds
        /// (at most a quarter of the lease; default: a quarter, at most 500).
        #[arg(long)]
        renew_ms: Option<u64>,
        /// MLflow's UI build the regions serve at / (default: the one of python3's mlflow
        /// package).
        #[arg(long, env = "TANDEM_UI")]
        ui: Option<PathBuf>,
    },
    /// Runs one job attempt fenced to its region's lease (started by a region's executor).
    #[command(hide = true)]
    JobShim {
        #[arg(long)]
        lease_ms: u64,
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run one region of a deployment (what `tandem up` starts twice).
    Region {
        #[arg(long)]
        deployment: PathBuf,
        /// The region's name in the deployment file.
        #[arg(long)]
        name: String,
        /// Working folder for this region.
        #[arg(long, default_value = "./tandem-data")]
        data: PathBuf,
        /// MLflow's UI build to serve at / (default: the one of python3's mlflow package).
        #[arg(long, env = "TANDEM_UI")]
        ui: Option<PathBuf>,
    },
    /// Show each region's role, epoch, lag and lease per workspace.
    Status {
        #[arg(long)]
        deployment: Option<PathBuf>,
        #[arg(long, env = "TANDEM_DATA", default_value = "./tandem-data")]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Move a workspace's leadership to a region: planned (zero loss), or --force when the
    /// leader is unreachable (reports the events that may be lost).
    Failover {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        deployment: Option<PathBuf>,
        #[arg(long, env = "TANDEM_DATA", default_value = "./tandem-data")]
        data: PathBuf,
    },
    /// How long deleted objects stay restorable (7 to 90 days), and purge
    /// protection (once on, it cannot be switched off).
    Retention {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        days: Option<u32>,
        /// Switch purge protection on.
        #[arg(long)]
        purge_protection: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Purge deleted objects past their retention (the server does this itself
    /// every minute); --now purges everything deleted, unless purge protection is on.
    Purge {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Bring back a deleted object: with no object flag, the workspace itself; otherwise an
    /// experiment (with the runs deleted with it), a run, a logged model, a registered model
    /// (with the versions deleted with it) or one model version.
    Undelete {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long, group = "object")]
        experiment: Option<String>,
        #[arg(long, group = "object")]
        run: Option<String>,
        #[arg(long, group = "object")]
        logged_model: Option<String>,
        #[arg(long, group = "object")]
        registered_model: Option<String>,
        /// With --registered-model: one version.
        #[arg(long, requires = "registered_model")]
        version: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The continuous backup archive.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Rebuild a workspace from the archive, as it was at an instant, into an empty store.
    Restore {
        #[arg(long, default_value = "default")]
        workspace: String,
        /// UTC RFC 3339 (2026-11-22T09:30:00Z) or milliseconds since the epoch; default: latest.
        #[arg(long)]
        to_time: Option<String>,
        /// Restore into this new workspace (of --into, or of the configured store).
        #[arg(long = "as", value_name = "NEW_WORKSPACE")]
        as_name: Option<String>,
        /// The store to restore into: sqlite:///PATH or postgres://...; default: the configured
        /// store. It must not have the workspace (unless resuming an interrupted restore).
        #[arg(long)]
        into: Option<String>,
        /// Take the live workspace back to --to-time (one new event; later history stays in the
        /// log). Asks for confirmation; --yes gives it.
        #[arg(long, conflicts_with_all = ["as_name", "into", "object"])]
        in_place: bool,
        #[arg(long)]
        yes: bool,
        /// Finish the restore even if some artifact files can be found nowhere (they are listed
        /// either way); without it the command exits non-zero then.
        #[arg(long)]
        allow_missing_artifacts: bool,
        /// Restore one deleted experiment (with its runs) as it was at --to-time, into the live workspace.
        #[arg(long, group = "object", conflicts_with_all = ["as_name", "into"])]
        experiment: Option<String>,
        /// Restore one run as it was at --to-time, into the live workspace.
        #[arg(long, group = "object", conflicts_with_all = ["as_name", "into"])]
        run: Option<String>,
        /// Restore one registered model (with its versions) as it was at --to-time.
        #[arg(long, group = "object", conflicts_with_all = ["as_name", "into"])]
        registered_model: Option<String>,
        /// Where to read history from: --archive (the continuous backup) if given, else the
        /// configured store's own change log.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Events a region accepted that its workspace's new leader never received.
    Diverged {
        #[command(subcommand)]
        action: DivergedAction,
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
    /// Environments of jobs (versioned, immutable): a container image pinned by digest, or a
    /// requirements / conda file. Through the server at MLFLOW_TRACKING_URI.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Jobs: submit a spec (TOML or JSON), list, show, cancel. Through the server at
    /// MLFLOW_TRACKING_URI.
    Job {
        #[command(subcommand)]
        action: JobAction,
    },
    /// The workspace vault: secrets with versions, soft delete and purge. Through the server at
    /// MLFLOW_TRACKING_URI.
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// The vault's master key: rotate it (a new key, the old one kept in the keyring), then
    /// re-wrap every workspace's data keys.
    Vault {
        #[command(subcommand)]
        action: VaultAction,
    },
    /// Data assets of jobs (versioned, immutable): a file or folder in object storage or in
    /// tandem's artifacts. Through the server at MLFLOW_TRACKING_URI.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
}

/// What the asset commands share: the workspace, and the server (MLFLOW_TRACKING_URI, with
/// MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / _PASSWORD when access control is on).
#[derive(clap::Args, Clone)]
struct ApiArgs {
    #[arg(long, default_value = "default")]
    workspace: String,
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    url: String,
}

#[derive(Subcommand)]
enum EnvAction {
    /// Create the next version of an environment.
    Create {
        name: String,
        /// A container image pinned by digest: REPOSITORY@sha256:DIGEST.
        #[arg(long, group = "spec", required = true)]
        image: Option<String>,
        /// A pip requirements file, kept by tandem as an artifact.
        #[arg(long, group = "spec")]
        requirements: Option<PathBuf>,
        /// A conda environment file, kept by tandem as an artifact.
        #[arg(long, group = "spec")]
        conda: Option<PathBuf>,
        #[arg(long, default_value = "")]
        description: String,
        /// This version number instead of the next one (refused if it exists).
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    #[command(flatten)]
    Common(AssetAction),
}

#[derive(Subcommand)]
enum DataAction {
    /// Create the next version of a data asset.
    Create {
        name: String,
        /// uri_file or uri_folder.
        #[arg(long = "type", default_value = "uri_folder")]
        asset_type: String,
        /// s3://, gs://, abfss://, az://, https://, mlflow-artifacts:/PATH or runs:/RUN_ID/PATH.
        #[arg(long)]
        uri: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    #[command(flatten)]
    Common(AssetAction),
}

#[derive(Subcommand)]
enum SecretAction {
    /// Set a secret (a new version if it exists); the value from --value-file or stdin.
    Set {
        name: String,
        #[arg(long)]
        value_file: Option<PathBuf>,
        #[arg(long, default_value = "")]
        content_type: String,
        /// KEY=VALUE, repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Not valid before this instant (RFC 3339, or milliseconds since the epoch).
        #[arg(long)]
        not_before: Option<String>,
        /// Not valid from this instant on.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a version's value (the latest enabled one by default).
    Get {
        name: String,
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Secrets and their metadata (never values); deleted ones with --all.
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A secret's versions.
    Versions {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Disable one version (a disabled version is never revealed).
    Disable {
        name: String,
        version: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enable a disabled version again.
    Enable {
        name: String,
        version: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Soft-delete a secret (recoverable for the workspace's retention).
    Delete {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Bring back a deleted secret.
    Recover {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Purge a deleted secret for good (refused under purge protection).
    Purge {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum VaultAction {
    /// Make a new master key current in DATA (the old one moves to DATA/master.keyring, so
    /// archives written before still restore); restart the servers, then `tandem vault rewrap`.
    Rotate {
        #[arg(long, env = "TANDEM_DATA", default_value = "./tandem-data")]
        data: PathBuf,
    },
    /// Re-wrap a workspace's data keys with the current master key (after a rotation).
    Rewrap {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum JobAction {
    /// Submit a job spec: command, environment, inputs, compute, resources, retries,
    /// timeout_seconds, env, experiment_id, key (see docs/design/jobs.md).
    Submit {
        /// The spec file (.toml, or .json).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Jobs, newest first (optionally in one state).
    List {
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One job with its attempts.
    Get {
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a job: a queued one at once, a running attempt is stopped.
    Cancel {
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum AssetAction {
    /// List versions (newest first), deleted ones with --all.
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One version (the newest live one by default).
    Get {
        name: String,
        #[arg(default_value = "latest")]
        version: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Soft-delete one version (restorable for the workspace's retention).
    Delete {
        name: String,
        version: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Bring back a deleted version.
    Restore {
        name: String,
        version: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args, Clone)]
struct DeploymentArgs {
    #[arg(long)]
    deployment: Option<PathBuf>,
    #[arg(long, env = "TANDEM_DATA", default_value = "./tandem-data")]
    data: PathBuf,
}

impl DeploymentArgs {
    fn path(&self) -> PathBuf {
        self.deployment
            .clone()
            .unwrap_or_else(|| self.data.join("deployment.toml"))
    }
}

#[derive(Subcommand)]
enum BackupAction {
    /// What the archive holds: per workspace, segments, events and the restorable window.
    List {
        #[arg(long)]
        archive: String,
    },
    /// Reads every segment, checks the chain, and replays it into a scratch store.
    Verify {
        #[arg(long)]
        archive: String,
        /// Only this workspace (default: all).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Compacts history older than --keep-days into a snapshot (the servers do this hourly,
    /// keeping each workspace's retention period): restores then start from the snapshot.
    Compact {
        #[arg(long)]
        archive: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Point-in-time history to keep, in days (7 to 90).
        #[arg(long)]
        keep_days: u32,
    },
}

#[derive(Subcommand)]
enum DivergedAction {
    /// List diverged events in every region.
    List {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[command(flatten)]
        at: DeploymentArgs,
    },
    /// Write a diverged event again, as a new event, through the current leader.
    Reapply(DivergedEventArgs),
    /// Mark a diverged event as deliberately dropped.
    Discard(DivergedEventArgs),
}

/// One diverged event: the region that kept it, its epoch and sequence number.
#[derive(clap::Args, Clone)]
struct DivergedEventArgs {
    #[arg(long, default_value = "default")]
    workspace: String,
    #[arg(long)]
    region: String,
    #[arg(long)]
    epoch: u64,
    #[arg(long)]
    seq: u64,
    #[command(flatten)]
    at: DeploymentArgs,
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
    Ok(Config::load(
        store.config.as_deref(),
        &Overrides {
            data: store.data.clone(),
            store: store.store.clone(),
            artifacts: store.artifacts.clone(),
            archive: store.archive.clone(),
            tls_cert: store.tls_cert.clone(),
            tls_key: store.tls_key.clone(),
            ..over
        },
    )?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Cloud clients speak TLS through rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Server {
            store,
            listen,
            region,
            durability,
            auth,
            ui,
        } => {
            let config = load(
                &store,
                Overrides {
                    listen,
                    region,
                    durability,
                    auth,
                    ..Default::default()
                },
            )?;
            serve(config, ui)
        }
        Command::Migrate { store } => {
            let config = load(&store, Overrides::default())?;
            let s = tandem::server::open_store(&config)?;
            println!(
                "metadata store ({}) is at schema version {}",
                s.backend_kind(),
                tandem::store::schema::SCHEMA_VERSION
            );
            Ok(())
        }
        Command::Workspace { action } => workspace(action),
        Command::Env { action } => env_command(action),
        Command::Data { action } => data_command(action),
        Command::Job { action } => job_command(action),
        Command::Secret { action } => secret_command(action),
        Command::Vault { action } => vault_command(action),
        Command::User { action } => user(action),
        Command::Token { action } => token(action),
        Command::Audit {
            workspace,
            principal,
            action,
            object,
            from,
            to,
            max,
            json,
            store,
        } => {
            let s = cli_store(&store)?;
            let mut req = tandem::api::Req::default();
            req.set("workspace_name", workspace.clone());
            for (k, v) in [
                ("principal", principal),
                ("action", action),
                ("object", object),
                ("from", from),
                ("to", to),
            ] {
                if let Some(v) = v {
                    req.set(k, v);
                }
            }
            req.set("max_results", max);
            let filter = tandem::api::changes::AuditFilter::from_req(&req)?;
            let events = tandem::api::changes::audit_events(&s, &workspace, &filter)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                for e in &events {
                    let el = match &e["elevation"] {
                        serde_json::Value::Null => String::new(),
                        el => format!(
                            "  [elevated: {} at {}, reason: {}]",
                            el["role"].as_str().unwrap_or(""),
                            el["scope"].as_str().unwrap_or(""),
                            el["reason"].as_str().unwrap_or("")
                        ),
                    };
                    println!(
                        "{}  #{}  {}  {}  {}{el}",
                        e["time"].as_str().unwrap_or(""),
                        e["seq"],
                        e["principal"].as_str().unwrap_or(""),
                        e["action"].as_str().unwrap_or(""),
                        e["object"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        Command::Access { action } => access(action),
        Command::JobShim {
            lease_ms,
            timeout_ms,
            command,
        } => std::process::exit(tandem::jobs::run_shim(
            std::time::Duration::from_millis(lease_ms),
            timeout_ms.map(std::time::Duration::from_millis),
            &command,
        )),
        Command::Up {
            data,
            port,
            deployment,
            write_ack,
            mode,
            auth,
            lease_ms,
            renew_ms,
            ui,
        } => {
            if let Some(dir) = &ui {
                // The regions `up` starts read it from their environment.
                std::env::set_var("TANDEM_UI", dir);
            }
            up(
                data,
                port,
                deployment,
                &write_ack,
                &mode,
                &auth,
                (lease_ms, renew_ms),
            )
        }
        Command::Diverged { action } => diverged(action),
        Command::Backup { action } => backup(action),
        Command::Retention {
            workspace,
            days,
            purge_protection,
            store,
        } => {
            let s = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            let r = tandem::retention::set(
                &s,
                &workspace,
                "tandem-cli",
                days,
                purge_protection.then_some(true),
            )
            .map_err(tandem_core::MlflowError::from)?;
            println!(
                "workspace {workspace}: deleted objects kept {} days, purge protection {}",
                r.days,
                if r.purge_protection { "on" } else { "off" }
            );
            Ok(())
        }
        Command::Purge {
            workspace,
            now,
            store,
        } => {
            let s = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            let p = tandem::retention::purge(&s, &workspace, "tandem-cli", now)
                .map_err(tandem_core::MlflowError::from)?;
            println!("workspace {workspace}: purged {}", p.describe());
            Ok(())
        }
        Command::Undelete {
            workspace,
            experiment,
            run,
            logged_model,
            registered_model,
            version,
            store,
        } => {
            let s = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            let artifacts = tandem::artifacts::Artifacts::folder(&std::env::temp_dir())?;
            let ctx = tandem::api::Ctx {
                store: s,
                artifacts,
                workspace: workspace.clone(),
                principal: "tandem-cli".into(),
                require_live: false,
                authenticated: false,
                compute: Default::default(),
                vault: None,
            };
            let mut req = tandem::api::Req::default();
            req.set("workspace_name", workspace.clone());
            let what = if let Some(e) = experiment {
                req.set("experiment_id", e.clone());
                format!("experiment {e}")
            } else if let Some(r) = run {
                req.set("run_id", r.clone());
                format!("run {r}")
            } else if let Some(m) = logged_model {
                req.set("model_id", m.clone());
                format!("logged model {m}")
            } else if let Some(n) = registered_model {
                req.set("name", n.clone());
                match version {
                    Some(v) => {
                        req.set("version", v.to_string());
                        format!("version {v} of registered model '{n}'")
                    }
                    None => format!("registered model '{n}'"),
                }
            } else {
                req.set("workspace", true);
                format!("workspace {workspace}")
            };
            tandem::api::retention::undelete(&ctx, &req)?;
            println!("restored {what}");
            Ok(())
        }
        Command::Restore {
            workspace,
            to_time,
            as_name,
            into,
            in_place,
            yes,
            allow_missing_artifacts,
            experiment,
            run,
            registered_model,
            store,
        } => {
            let object = match (experiment, run, registered_model) {
                (Some(e), _, _) => Some(tandem_core::history::Object::Experiment(e)),
                (_, Some(r), _) => Some(tandem_core::history::Object::Run(r)),
                (_, _, Some(m)) => Some(tandem_core::history::Object::RegisteredModel(m)),
                _ => None,
            };
            restore(
                RestoreArgs {
                    workspace,
                    to_time,
                    as_name,
                    into,
                    in_place,
                    yes,
                    allow_missing_artifacts,
                    object,
                },
                load(&store, Overrides::default())?,
            )
        }
        Command::Region {
            deployment,
            name,
            data,
            ui,
        } => region(deployment, name, data, ui),
        Command::Status {
            deployment,
            data,
            json,
        } => status(
            deployment.unwrap_or_else(|| data.join("deployment.toml")),
            json,
        ),
        Command::Failover {
            workspace,
            to,
            force,
            deployment,
            data,
        } => failover(
            deployment.unwrap_or_else(|| data.join("deployment.toml")),
            &workspace,
            &to,
            force,
        ),
    }
}

/// MLflow's UI build, said once at start: where it comes from, or why there is none.
fn find_ui(given: Option<PathBuf>) -> anyhow::Result<Option<tandem::ui::Ui>> {
    // An empty TANDEM_UI means "not set".
    let given = given.filter(|p| !p.as_os_str().is_empty());
    let (ui, found) = tandem::ui::Ui::find(given.as_deref())?;
    match found {
        tandem::ui::Found::Given(d) | tandem::ui::Found::Python(d) => {
            eprintln!("tandem: serving the MLflow UI from {}", d.display())
        }
        tandem::ui::Found::Missing(why) => eprintln!("tandem: no MLflow UI at /: {why}"),
    }
    Ok(ui)
}

fn serve(config: Config, ui: Option<PathBuf>) -> anyhow::Result<()> {
    let ui = find_ui(ui)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bootstrap = tandem::api::access::Bootstrap::from_env().map_err(anyhow::Error::msg)?;
    runtime.block_on(async move {
        let mut state = tandem::server::open(&config).await?;
        state.ui = ui;
        state.dashboard = Some(tandem::dashboard::Dashboard::spawn(
            &state,
            config.archive.clone(),
        ));
        if let Some(b) = bootstrap {
            let s = state.store.clone();
            if tokio::task::spawn_blocking(move || b.apply(&s)).await?? {
                println!("tandem: created the first admin from TANDEM_BOOTSTRAP_ADMIN");
            }
        }
        if config.auth == tandem::auth::AuthMode::On {
            let s = state.store.clone();
            let has_admin = tokio::task::spawn_blocking(move || {
                s.read(tandem::store::queries::access_state).map(|a| a.has_admin())
            })
            .await??;
            if !has_admin {
                println!("tandem: authentication is on and there is no admin yet: every request is refused until you run `tandem user create NAME --admin --password-file FILE` (same --data/--store) or restart with TANDEM_BOOTSTRAP_ADMIN=NAME and TANDEM_BOOTSTRAP_PASSWORD_FILE=FILE; for local play only, --auth off");
            }
        } else {
            println!("tandem: authentication is OFF (--auth off): anyone who can reach {} can do anything", config.listen);
        }
        tandem::retention::spawn_purger(state.store.clone(), std::time::Duration::from_secs(60));
        if let Some(url) = &config.archive {
            let archive = tandem::backup::Archive::open(url)
                .map_err(|e| anyhow::anyhow!("setting 'archive': {e}"))?;
            tandem::backup::spawn_archiver(
                archive,
                state.store.clone(),
                state.artifacts.clone(),
                std::time::Duration::from_secs(1),
            );
            println!("tandem: archiving every workspace's change log to {url}");
        }
        // Certificates are read before the port is taken: a bad file stops the start.
        let tls = match &config.tls {
            Some(t) => Some(tandem::server::Tls::load(t)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("setting 'listen': cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        spawn_scheduler(&state, &config.region, config.compute.clone(), &config.data, addr, tls.is_some())?;
        println!(
            "tandem: metadata in {} store, artifacts in {}",
            state.store.backend_kind(),
            state.artifacts.describe()
        );
        println!(
            "tracking uri: {}://{addr}",
            if tls.is_some() { "https" } else { "http" }
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        match tls {
            Some(acceptor) => {
                tandem::server::run_tls(listener, acceptor, state, shutdown_signal()).await?
            }
            None => tandem::server::run(listener, state, shutdown_signal()).await?,
        }
        println!("tandem: stopped");
        Ok(())
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn region(
    deployment: PathBuf,
    name: String,
    data: PathBuf,
    ui: Option<PathBuf>,
) -> anyhow::Result<()> {
    let d = tandem::region::deployment::load(&deployment)?;
    let ui = find_ui(ui)?;
    runtime()?.block_on(async move {
        let listen = d
            .region(&name)
            .map(|r| r.listen)
            .ok_or_else(|| anyhow::anyhow!("{}: no region named '{name}'", deployment.display()))?;
        // Certificates are read before the port is taken: a bad file stops the start.
        let tls = match d.region(&name).and_then(|r| r.tls.clone()) {
            Some(t) => Some(tandem::server::Tls::load(&t)?),
            None => None,
        };
        let archive = d.archive.clone();
        let own_compute = d
            .region(&name)
            .map(|r| r.compute.clone())
            .unwrap_or_default();
        let mut state = tandem::server::open_region(d, &name, &data).await?;
        state.ui = ui;
        state.dashboard = Some(tandem::dashboard::Dashboard::spawn(&state, archive));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("region '{name}': cannot listen on {listen}"))?;
        spawn_scheduler(
            &state,
            &name,
            own_compute,
            &data,
            listener.local_addr()?,
            tls.is_some(),
        )?;
        println!(
            "region {name}: serving on {}://{}",
            if tls.is_some() { "https" } else { "http" },
            listener.local_addr()?
        );
        match tls {
            Some(acceptor) => {
                tandem::server::run_tls(listener, acceptor, state, shutdown_signal()).await?
            }
            None => tandem::server::run(listener, state, shutdown_signal()).await?,
        }
        Ok(())
    })
}

fn up(
    data: PathBuf,
    port: u16,
    deployment: Option<PathBuf>,
    write_ack: &str,
    mode: &str,
    auth: &str,
    (lease_ms, renew_ms): (u64, Option<u64>),
) -> anyhow::Result<()> {
    use tandem::region::deployment::{self, Mode, WriteAck};
    if auth != "on" && auth != "off" {
        bail!("--auth '{auth}': use on or off");
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let data = data.canonicalize()?;
    let path = deployment.unwrap_or_else(|| data.join("deployment.toml"));
    if !path.exists() {
        let ack = match write_ack {
            "async" => WriteAck::Async,
            "sync" => WriteAck::Sync,
            other => bail!("--write-ack '{other}': use async or sync"),
        };
        let mode = match mode {
            "hot/warm" => Mode::HotWarm,
            "hot/cold" => Mode::HotCold,
            other => bail!("--mode '{other}': use hot/warm or hot/cold"),
        };
        let front = if port == 0 { free_port()? } else { port };
        let base = loop {
            let p = free_port()?;
            if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        std::fs::write(
            &path,
            deployment::local_default_with_mode(&data, front, ack, base, mode)
                .replace("auth = \"on\"", &format!("auth = \"{auth}\""))
                .replace(
                    &format!("lease_ms = {}\n", deployment::DEFAULT_LEASE_MS),
                    &format!("lease_ms = {lease_ms}\n"),
                )
                .replace(
                    &format!("renew_ms = {}\n", deployment::DEFAULT_RENEW_MS),
                    &format!(
                        "renew_ms = {}\n",
                        renew_ms.unwrap_or((lease_ms / 4).clamp(100, deployment::DEFAULT_RENEW_MS))
                    ),
                ),
        )?;
        println!("tandem: wrote {}", path.display());
    }
    let d = deployment::load(&path)?;
    // The vault's master key, beside the deployment file, shared by both regions (created
    // here, once, unless the environment names one).
    let vault_dir = path.parent().unwrap_or(&data).to_owned();
    if let (_, Some(notice)) = tandem::vault::Keyring::load(&vault_dir)? {
        println!("{notice}");
    }
    if let Some(key_file) = &d.key_file {
        if !key_file.exists() {
            let key = tandem::auth::new_token()?.0;
            write_secret(key_file, &key)?;
            println!(
                "tandem: wrote a new deployment key to {}",
                key_file.display()
            );
        }
    }
    let key = d.key()?;
    if d.auth == "on" {
        println!("tandem: authentication is on; the first admin comes from TANDEM_BOOTSTRAP_ADMIN and TANDEM_BOOTSTRAP_PASSWORD_FILE");
    }
    let exe = std::env::current_exe()?;
    let children = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for r in &d.regions {
        let child = spawn_region(&exe, &path, &data, &r.name)?;
        println!(
            "tandem: region {} (pid {}) on {}",
            r.name,
            child.id(),
            r.url
        );
        children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((r.name.clone(), child));
    }
    // Supervise: a region that dies is started again (it rejoins as a standby), as systemd
    // or Kubernetes would do in a real deployment.
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (children, stopping) = (children.clone(), stopping.clone());
        let (exe, path, data) = (exe.clone(), path.clone(), data.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let mut kids = children.lock().unwrap_or_else(|e| e.into_inner());
            for (name, child) in kids.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    match spawn_region(&exe, &path, &data, name) {
                        Ok(c) => {
                            println!("tandem: region {name} exited ({status}); restarted as pid {}", c.id());
                            *child = c;
                        }
                        Err(e) => eprintln!("tandem: region {name} exited ({status}) and could not be restarted: {e}"),
                    }
                }
            }
        });
    }
    let listen = if port == 0 || d.front_door.is_none() {
        d.front_door
            .unwrap_or_else(|| ([127, 0, 0, 1], port).into())
    } else {
        ([127, 0, 0, 1], port).into()
    };
    let tls = match &d.front_door_tls {
        Some(t) => Some(tandem::server::Tls::load(t)?),
        None => None,
    };
    let result = runtime()?.block_on(async move {
        let fd = tandem::region::front_door::FrontDoor::new(d, key.as_deref());
        fd.spawn_watch();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("front door: cannot listen on {listen}"))?;
        // Ready means ready: the tracking URI is printed once a write through it would be
        // accepted (leaders known, workspaces created, sync standbys caught up), so that a
        // script that waits for the line and then writes does not fail.
        let serving = {
            let fd = fd.clone();
            let app = fd.router();
            let tls = tls.clone();
            let listener = listener;
            let addr = listener.local_addr()?;
            (
                addr,
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            tandem::server::serve_tls(listener, acceptor, app, shutdown_signal())
                                .await
                        }
                        None => {
                            axum::serve(listener, app)
                                .with_graceful_shutdown(shutdown_signal())
                                .await
                        }
                    }
                }),
            )
        };
        let started = std::time::Instant::now();
        let mut last_note = std::time::Instant::now();
        loop {
            match fd.ready().await {
                Ok(()) => break,
                Err(missing) if last_note.elapsed() > std::time::Duration::from_secs(10) => {
                    eprintln!(
                        "tandem: waiting for the deployment ({} s): {missing}",
                        started.elapsed().as_secs()
                    );
                    last_note = std::time::Instant::now();
                }
                Err(_) => {}
            }
            if serving.1.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let listener_addr = serving.0;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("tracking uri: {scheme}://{listener_addr}");
        println!("tandem: web pages: {scheme}://{listener_addr}/ (the MLflow UI, when the regions found a build: see DATA/<region>.log) and {scheme}://{listener_addr}/tandem/ (disaster recovery)");
        use std::io::Write;
        std::io::stdout().flush()?;
        serving.1.await??;
        anyhow::Ok(())
    });
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    for (_, mut c) in children.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    println!("tandem: stopped");
    result
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Starts `tandem region` for one region of a deployment, logging to DATA/NAME.log.
fn spawn_region(
    exe: &std::path::Path,
    deployment: &std::path::Path,
    data: &std::path::Path,
    name: &str,
) -> anyhow::Result<std::process::Child> {
    let dir = data.join(name);
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join(format!("{name}.log")))?;
    std::process::Command::new(exe)
        .args(["region", "--deployment"])
        .arg(deployment)
        .args(["--name", name, "--data"])
        .arg(&dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start region {name}"))
}

fn status(path: PathBuf, json: bool) -> anyhow::Result<()> {
    let d = tandem::region::deployment::load(&path)?;
    let (key, ca) = (d.key()?, d.ca_pem()?);
    runtime()?.block_on(async move {
        let http = tandem::region::internal_client(
            key.as_deref(),
            ca.as_deref(),
            Some(std::time::Duration::from_secs(2)),
        );
        let mut regions = Vec::new();
        for r in &d.regions {
            let got: Option<serde_json::Value> = match http.get(format!("{}/api/tandem/v1/status", r.url)).send().await {
                Ok(resp) => resp.json().await.ok(),
                Err(_) => None,
            };
            regions.push(serde_json::json!({ "name": r.name, "url": r.url, "reachable": got.is_some(), "pid": got.as_ref().map(|g| g["pid"].clone()), "compute": got.as_ref().map(|g| g["compute"].clone()), "jobs": got.as_ref().map(|g| g["jobs"].clone()), "master_key_id": got.as_ref().map(|g| g["vault"]["master_key_id"].clone()), "gateway_probes": got.as_ref().map(|g| g["gateway_probes"].clone()), "workspaces": got.map(|g| g["workspaces"].clone()).unwrap_or(serde_json::Value::Array(vec![])) }));
        }
        let readiness = tandem::scheduler::job_readiness(&regions);
        if json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "deployment": d.path, "witness": d.witness, "regions": regions, "job_readiness": readiness }))?);
            return Ok(());
        }
        println!("deployment {} (witness {}, archive {})", d.path.display(), d.witness, d.archive.as_deref().map(tandem::config::redact).unwrap_or_else(|| "none".into()));
        println!("{:<8} {:<24} {:>7}  {:<10} {:<8} {:<9} {:>5} {:<17} {:>9} {:>8} {:>10}  last failover", "region", "url", "pid", "workspace", "mode", "role", "epoch", "lease", "lag(ev)", "lag(s)", "unarch(ev)");
        for r in &regions {
            if !r["reachable"].as_bool().unwrap_or(false) {
                println!("{:<8} {:<24} {:>7}  (unreachable)", r["name"].as_str().unwrap_or(""), r["url"].as_str().unwrap_or(""), "-");
                continue;
            }
            for w in r["workspaces"].as_array().into_iter().flatten() {
                let fo = &w["last_failover"];
                let mut fo = if fo.is_null() { "-".to_owned() } else { format!("epoch {} to {} ({}), {} events possibly lost", fo["epoch"], fo["to"].as_str().unwrap_or(""), fo["reason"].as_str().unwrap_or(""), fo["events_possibly_lost"]) };
                if w["diverged_pending"].as_u64().unwrap_or(0) > 0 {
                    fo.push_str(&format!("; {} diverged events kept (tandem diverged list)", w["diverged_pending"]));
                }
                println!(
                    "{:<8} {:<24} {:>7}  {:<10} {:<8} {:<9} {:>5} {:<17} {:>9} {:>8.1} {:>10}  {}",
                    r["name"].as_str().unwrap_or(""),
                    r["url"].as_str().unwrap_or(""),
                    r["pid"],
                    w["workspace"].as_str().unwrap_or(""),
                    w["mode"].as_str().unwrap_or(""),
                    w["role"].as_str().unwrap_or(""),
                    w["epoch"],
                    w["lease"].as_str().unwrap_or(""),
                    w["replication_lag_events"],
                    w["replication_lag_ms"].as_f64().map_or(f64::NAN, |ms| ms / 1000.0),
                    w["archive_lag_events"],
                    fo
                );
            }
        }
        for r in &readiness {
            println!("{}", r["summary"].as_str().unwrap_or_default());
        }
        // Both regions must open the same secrets: one master key.
        let keys: std::collections::BTreeSet<String> = regions
            .iter()
            .filter_map(|r| r["master_key_id"].as_str().map(str::to_owned))
            .collect();
        match keys.len() {
            0 => {}
            1 => println!("vault: both regions use master key {}", keys.iter().next().unwrap()),
            _ => println!("vault: NOT READY: the regions use different master keys ({}); a region cannot open secrets the other wrote: give both the same key", keys.into_iter().collect::<Vec<_>>().join(", ")),
        }
        // The AI gateway's per-region provider URLs, as each region last probed them.
        for r in &regions {
            for p in r["gateway_probes"].as_array().into_iter().flatten() {
                println!(
                    "gateway: {} probes {}/{} for region {} ({}): {} {}",
                    r["name"].as_str().unwrap_or_default(),
                    p["workspace"].as_str().unwrap_or_default(),
                    p["endpoint"].as_str().unwrap_or_default(),
                    p["region"].as_str().unwrap_or_default(),
                    p["url"].as_str().unwrap_or_default(),
                    if p["up"].as_bool() == Some(true) { "up" } else { "DOWN" },
                    match (p["status"].as_u64(), p["error"].as_str()) {
                        (Some(s), _) => format!("(HTTP {s}, {} ms)", p["latency_ms"]),
                        (None, Some(e)) => format!("({e})"),
                        _ => String::new(),
                    }
                );
            }
        }
        Ok(())
    })
}

fn failover(path: PathBuf, ws: &str, to: &str, force: bool) -> anyhow::Result<()> {
    let d = tandem::region::deployment::load(&path)?;
    let target = d
        .region(to)
        .ok_or_else(|| anyhow::anyhow!("{}: no region named '{to}'", path.display()))?
        .url
        .clone();
    let (key, ca) = (d.key()?, d.ca_pem()?);
    runtime()?.block_on(async move {
        let http = tandem::region::internal_client(
            key.as_deref(),
            ca.as_deref(),
            Some(std::time::Duration::from_secs(120)),
        );
        let resp = http
            .post(format!(
                "{target}/api/tandem/v1/workspaces/{ws}/take-over?force={force}"
            ))
            .send()
            .await
            .with_context(|| format!("region '{to}' ({target}) did not answer"))?;
        let ok = resp.status().is_success();
        let v: serde_json::Value = resp.json().await?;
        if !ok {
            bail!(
                "failover refused: {}",
                v["message"].as_str().unwrap_or(&v.to_string())
            );
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(())
    })
}

fn open_target(url: &str) -> anyhow::Result<tandem::store::Store> {
    let config = Config::load(
        None,
        &Overrides {
            store: Some(url.to_owned()),
            ..Default::default()
        },
    )?;
    Ok(tandem::server::open_store_with(&config, false)?)
}

fn backup(action: BackupAction) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match action {
            BackupAction::List { archive } => {
                let a = tandem::backup::Archive::open(&archive)?;
                println!("{:<20} {:>9} {:>10} {:>10}  restorable from .. to", "workspace", "segments", "events", "snapshot");
                for ws in a.workspaces().await? {
                    let s = a.summary(&ws).await?;
                    let (from, to) = (s.earliest_ms.map(tandem::backup::iso).unwrap_or_default(), s.latest_ms.map(tandem::backup::iso).unwrap_or_default());
                    println!("{:<20} {:>9} {:>10} {:>10}  {from} .. {to}", s.workspace, s.segments, s.events, s.snapshot_seq.map(|n| n.to_string()).unwrap_or_else(|| "-".into()));
                }
            }
            BackupAction::Compact { archive, workspace, keep_days } => {
                if !(tandem::retention::MIN_DAYS..=tandem::retention::MAX_DAYS).contains(&keep_days) {
                    bail!("--keep-days {keep_days}: keep {} to {} days of point-in-time history", tandem::retention::MIN_DAYS, tandem::retention::MAX_DAYS);
                }
                let a = tandem::backup::Archive::open(&archive)?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
                match a.compact(&workspace, keep_days as u64 * 86_400_000, now).await? {
                    Some(r) => println!("{workspace}: events 1..{} compacted into a snapshot of {} events (from {}); {} segments removed", r.seq, r.events_kept, r.events_before, r.segments_deleted),
                    None => println!("{workspace}: nothing older than {keep_days} days to compact"),
                }
            }
            BackupAction::Verify { archive, workspace } => {
                let a = tandem::backup::Archive::open(&archive)?;
                let list = match workspace {
                    Some(w) => vec![w],
                    None => a.workspaces().await?,
                };
                let scratch = tempfile_dir()?;
                let target = open_target(&format!("sqlite://{}", scratch.join("verify.sqlite").display()))?;
                let mut failed = false;
                for ws in list {
                    // One read of the archive serves both checks: the log replayed, the blobs hashed.
                    let checked = async {
                        let archived = a.read_all(&ws).await?;
                        let blobs = a.verify_blobs(&ws, &archived).await?;
                        let cut = tandem::restore::cut(&ws, &archived, None)?;
                        let restored = tandem::restore::into_workspace(archived, cut, &a.url, &target, &ws, |_, _| {}).await?;
                        Ok::<_, tandem::backup::BackupError>((restored.events, blobs))
                    }
                    .await;
                    match checked {
                        Ok((n, (blobs, problems))) => {
                            let head = target.read(|tx| tandem::store::queries::log_head(tx, &ws))?.expect("restored");
                            println!("{ws}: ok, {n} events, chain verified and replayed, head {} {}", head.seq, head.checksum);
                            if problems.is_empty() {
                                println!("{ws}: ok, {blobs} artifact blobs present with their recorded SHA-256");
                            } else {
                                failed = true;
                                eprintln!("{ws}: FAILED: {} of the artifact files its history names would not come back:", problems.len());
                                for (path, sha, why) in problems {
                                    eprintln!("  {path} (sha256 {sha}): {why}");
                                }
                            }
                        }
                        Err(e) => {
                            failed = true;
                            eprintln!("{ws}: FAILED: {e}");
                        }
                    }
                }
                let _ = std::fs::remove_dir_all(&scratch);
                if failed {
                    bail!("the archive did not verify");
                }
            }
        }
        Ok(())
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tandem-verify-{}",
        tandem_core::ids::hex(&tandem::api::random_bytes::<8>())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

struct RestoreArgs {
    workspace: String,
    to_time: Option<String>,
    as_name: Option<String>,
    into: Option<String>,
    in_place: bool,
    yes: bool,
    allow_missing_artifacts: bool,
    object: Option<tandem_core::history::Object>,
}

fn restore(args: RestoreArgs, config: Config) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let ws = args.workspace.as_str();
    let at = match args.to_time.as_deref() {
        None => None,
        Some(t) => Some(tandem::backup::parse_instant(t).ok_or_else(|| anyhow::anyhow!("--to-time '{t}': use UTC RFC 3339 (2026-11-22T09:30:00Z) or milliseconds since the epoch"))?),
    };
    if let Some(name) = &args.as_name {
        if ws == tandem_core::access::ACCESS_WORKSPACE {
            bail!("the access log (_access) restores only as itself (--into a store, or --in-place): a copy under another name would grant nothing");
        }
        tandem::api::workspaces::validate_name(name)?;
    }
    let rt = runtime()?;
    if args.in_place {
        let Some(at) = at else {
            bail!("--in-place needs --to-time: the instant to take workspace '{ws}' back to")
        };
        if !args.yes {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "--in-place takes the live workspace '{ws}' back to {}: add --yes to confirm",
                    tandem::backup::iso(at)
                );
            }
            print!("This takes the live workspace '{ws}' back to {}. Type the workspace name to confirm: ", tandem::backup::iso(at));
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            if line.trim() != ws {
                bail!("not confirmed; nothing was changed");
            }
        }
        let store = tandem::server::open_store(&config)?;
        let (seq, total) = tandem::restore::in_place(&store, ws, at, "tandem-cli")?;
        println!("workspace '{ws}' restored in place to {} (the state after event {seq} of {total}; later events stay in the log)", tandem::backup::iso(at));
        return restore_artifact_bytes(
            &rt,
            &config,
            &store,
            ws,
            ws,
            None,
            false,
            args.allow_missing_artifacts,
        );
    }
    let live = || tandem::server::open_store(&config);
    // The target first: a wrong one is refused before any history is read.
    let into = match &args.into {
        Some(url) => Some(open_target(url)?),
        None => None,
    };
    // The history to restore from: the archive if there is one, else the store's own log.
    let (events, source) = match &config.archive {
        Some(url) => {
            let a = tandem::backup::Archive::open(url)?;
            (rt.block_on(a.read_all(ws))?, tandem::config::redact(url))
        }
        None => {
            let s = live()?;
            (
                tandem::restore::local_log(&s, ws)?,
                "the store's change log".to_owned(),
            )
        }
    };
    if let Some(object) = &args.object {
        let store = live()?;
        let r = tandem::restore::object(&store, ws, &events, at, object, "tandem-cli")?;
        let under = tandem::restore::object_artifact_roots(&store, ws, object, r.name.as_deref())?;
        println!(
            "restored {} of workspace '{ws}' as of {} from {source} ({} events){}",
            r.object,
            at.map(tandem::backup::iso)
                .unwrap_or_else(|| "the latest instant".into()),
            r.events,
            r.name
                .map(|n| format!(", under the name '{n}'"))
                .unwrap_or_default()
        );
        return restore_artifact_bytes(
            &rt,
            &config,
            &store,
            ws,
            ws,
            Some(under),
            false,
            args.allow_missing_artifacts,
        );
    }
    let cut = tandem::restore::cut(ws, &events, at)?;
    let target_name = args.as_name.clone().unwrap_or_else(|| ws.to_owned());
    let (target, target_desc) = match (into, &args.into) {
        (Some(store), Some(url)) => (store, tandem::config::redact(url)),
        _ => (live()?, "the configured store".to_owned()),
    };
    let mut last_report = std::time::Instant::now();
    let r = rt.block_on(tandem::restore::replay_into(
        events,
        cut,
        &source,
        &target,
        &target_name,
        |done, total| {
            if done == total || last_report.elapsed() > std::time::Duration::from_secs(1) {
                eprintln!("restoring '{target_name}': {done}/{total} events");
                last_report = std::time::Instant::now();
            }
        },
    ))?;
    println!(
        "restored workspace '{ws}' as of {} into workspace '{}' of {target_desc} ({} events{})",
        at.map(tandem::backup::iso)
            .unwrap_or_else(|| "the latest instant".into()),
        r.workspace,
        r.events,
        if r.replayed < r.events {
            format!(", resumed: {} replayed now", r.replayed)
        } else {
            String::new()
        }
    );
    // The files: a copy beside the original (same deployment) reads the original's bytes
    // first; a restore into another store (--into) writes into the artifact store this
    // command was given (--artifacts / --data) from the archive.
    let beside_original = target_name != ws && args.into.is_none();
    restore_artifact_bytes(
        &rt,
        &config,
        &target,
        &target_name,
        ws,
        None,
        beside_original,
        args.allow_missing_artifacts,
    )?;
    // Only now is the restore done: until here a rerun continues it (events, then files).
    rt.block_on(tandem::restore::finish(&target, &target_name))?;
    Ok(())
}

/// The artifact part of every restore: the restored state's files, byte-exact, with progress
/// (files, bytes, rate) and a final count; files no source has are listed, and fail the
/// command unless `allow_missing`.
#[allow(clippy::too_many_arguments)]
fn restore_artifact_bytes(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    store: &tandem::store::Store,
    target_ws: &str,
    source_ws: &str,
    under: Option<Vec<String>>,
    beside_original: bool,
    allow_missing: bool,
) -> anyhow::Result<()> {
    let artifacts = rt
        .block_on(tandem::artifacts::Artifacts::connect(&config.artifacts))
        .map_err(|(url, m)| anyhow::anyhow!("artifacts {url}: {m}"))?;
    let archive = config
        .archive
        .as_deref()
        .map(tandem::backup::Archive::open)
        .transpose()?;
    let sources = tandem::restore::ByteSources {
        live: beside_original.then_some((&artifacts, source_ws)),
        archive: archive.as_ref().map(|a| (a, source_ws)),
    };
    // Say where the files go: an in-place or object restore must be given the deployment's
    // own artifact store (the same --artifacts / --data as its servers).
    eprintln!(
        "artifact files of '{target_ws}' go to {}",
        artifacts.describe()
    );
    let started = std::time::Instant::now();
    let mut last = started;
    let mb = |b: u64| b as f64 / 1e6;
    let r = rt.block_on(tandem::restore::restore_artifacts(
        store,
        &artifacts,
        target_ws,
        under.as_deref(),
        sources,
        tandem::restore::Keep::SameHash,
        |p| {
            if (p.files_done == p.files && p.files > 0)
                || last.elapsed() > std::time::Duration::from_secs(1)
            {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "restoring artifacts of '{target_ws}': {}/{} files, {:.1}/{:.1} MB, {:.1} MB/s",
                    p.files_done,
                    p.files,
                    mb(p.bytes_done),
                    mb(p.bytes),
                    mb(p.bytes_done) / secs
                );
                last = std::time::Instant::now();
            }
        },
    ))?;
    println!(
        "artifacts of '{target_ws}': {} files ({:.1} MB): {} already in place, {} restored ({:.1} MB, each checked against its recorded SHA-256), {} missing, in {:.2} s",
        r.files,
        mb(r.bytes),
        r.kept,
        r.copied,
        mb(r.copied_bytes),
        r.missing.len(),
        started.elapsed().as_secs_f64()
    );
    if !r.missing.is_empty() {
        println!("{} artifact files could not be restored:", r.missing.len());
        for m in &r.missing {
            println!("  {} (sha256 {}): {}", m.path, m.sha256, m.why);
        }
        if !allow_missing {
            bail!("{} artifact files are missing (listed above); the metadata is restored; --allow-missing-artifacts accepts the restore without them", r.missing.len());
        }
    }
    Ok(())
}

fn diverged(action: DivergedAction) -> anyhow::Result<()> {
    let (path, ws) = match &action {
        DivergedAction::List { workspace, at } => (at.path(), workspace.clone()),
        DivergedAction::Reapply(e) | DivergedAction::Discard(e) => {
            (e.at.path(), e.workspace.clone())
        }
    };
    let d = tandem::region::deployment::load(&path)?;
    let (key, ca) = (d.key()?, d.ca_pem()?);
    runtime()?.block_on(async move {
        let http = tandem::region::internal_client(
            key.as_deref(),
            ca.as_deref(),
            Some(std::time::Duration::from_secs(30)),
        );
        match action {
            DivergedAction::List { .. } => {
                let mut any = false;
                for r in &d.regions {
                    let Ok(resp) = http
                        .get(format!("{}/api/tandem/v1/workspaces/{ws}/diverged", r.url))
                        .send()
                        .await
                    else {
                        println!("{}: unreachable", r.name);
                        continue;
                    };
                    let v: serde_json::Value = resp.json().await?;
                    for e in v["diverged"].as_array().into_iter().flatten() {
                        any = true;
                        println!(
                            "{}\tepoch {}\tseq {}\t{}\t{}\t{}\t{}",
                            r.name,
                            e["epoch"],
                            e["seq"],
                            e["status"].as_str().unwrap_or(""),
                            e["op"].as_str().unwrap_or(""),
                            e["principal"].as_str().unwrap_or(""),
                            e["payload"].as_str().unwrap_or("")
                        );
                    }
                }
                if !any {
                    println!("no diverged events in workspace '{ws}'");
                }
            }
            DivergedAction::Reapply(e) => {
                settle(&http, &d, &ws, &e.region, e.epoch, e.seq, "reapply").await?
            }
            DivergedAction::Discard(e) => {
                settle(&http, &d, &ws, &e.region, e.epoch, e.seq, "discard").await?
            }
        }
        Ok(())
    })
}

async fn settle(
    http: &reqwest::Client,
    d: &tandem::region::deployment::Deployment,
    ws: &str,
    region: &str,
    epoch: u64,
    seq: u64,
    verb: &str,
) -> anyhow::Result<()> {
    let url = &d
        .region(region)
        .ok_or_else(|| anyhow::anyhow!("no region named '{region}'"))?
        .url;
    let resp = http
        .post(format!(
            "{url}/api/tandem/v1/workspaces/{ws}/diverged/{epoch}/{seq}/{verb}"
        ))
        .send()
        .await?;
    let ok = resp.status().is_success();
    let v: serde_json::Value = resp.json().await?;
    if !ok {
        bail!("{}", v["message"].as_str().unwrap_or(&v.to_string()));
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// A password from a file, or from the first line of standard input.
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line
        }
    };
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    if password.len() < 8 {
        bail!("a password must have at least 8 characters");
    }
    Ok(password)
}

fn cli_store(store: &StoreArgs) -> anyhow::Result<tandem::store::Store> {
    let s = tandem::server::open_store(&load(store, Overrides::default())?)?;
    tandem::api::access::ensure_workspace(&s).map_err(tandem_core::MlflowError::from)?;
    Ok(s)
}

fn user(action: UserAction) -> anyhow::Result<()> {
    use tandem::api::access;
    match action {
        UserAction::Create {
            name,
            admin,
            kind,
            workspace,
            password_file,
            grants,
            store,
        } => {
            let s = cli_store(&store)?;
            let password_hash = match kind.as_str() {
                "service" if password_file.is_none() => None,
                "group" => None,
                _ => Some(tandem::auth::hash_password(&read_password(
                    password_file.as_deref(),
                )?)?),
            };
            let mut roles = Vec::new();
            if admin {
                roles.push(("admin".to_owned(), tandem_core::access::Scope::Service));
            }
            for g in &grants {
                let (role, scope) = g.split_once('@').ok_or_else(|| {
                    anyhow::anyhow!("--grant '{g}': use ROLE@SCOPE, e.g. reader@workspaces/default")
                })?;
                roles.push((role.to_owned(), access::parse_scope(scope)?));
            }
            let v = access::create_principal(
                &s,
                "tandem-cli",
                access::NewPrincipal {
                    name: &name,
                    kind: &kind,
                    workspace: workspace.as_deref(),
                    password_hash,
                    roles,
                },
            )?;
            println!(
                "created {kind} '{name}' ({})",
                v["principal"]["id"].as_str().unwrap_or("")
            );
        }
        UserAction::Password {
            name,
            password_file,
            store,
        } => {
            let s = cli_store(&store)?;
            let hash = tandem::auth::hash_password(&read_password(password_file.as_deref())?)?;
            access::set_password(&s, "tandem-cli", &name, hash)?;
            println!("password of '{name}' set");
        }
        UserAction::Delete { name, store } => {
            access::delete_principal(&cli_store(&store)?, "tandem-cli", &name)?;
            println!("deleted '{name}' with its tokens and role assignments");
        }
        UserAction::List { store } => {
            let s = cli_store(&store)?;
            let state = s
                .read(queries::access_state)
                .map_err(tandem_core::MlflowError::from)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&access::principals_json(&state))?
            );
        }
    }
    Ok(())
}

fn token(action: TokenAction) -> anyhow::Result<()> {
    use tandem::api::access;
    match action {
        TokenAction::Create {
            user,
            label,
            expires_in_days,
            store,
        } => {
            let s = cli_store(&store)?;
            let expires = expires_in_days.map(|d| s.now_ms() + d as i64 * 86_400_000);
            let v = access::issue_token(&s, "tandem-cli", &user, &label, expires)?;
            eprintln!(
                "token {} for '{user}' (shown once; send it as MLFLOW_TRACKING_TOKEN):",
                v["token_id"].as_str().unwrap_or("")
            );
            println!("{}", v["token"].as_str().unwrap_or(""));
        }
        TokenAction::Revoke {
            user,
            token_id,
            store,
        } => {
            access::revoke_token(&cli_store(&store)?, "tandem-cli", &token_id, Some(&user))?;
            println!("token {token_id} revoked");
        }
    }
    Ok(())
}

fn access(action: AccessAction) -> anyhow::Result<()> {
    use tandem::api::access;
    match action {
        AccessAction::Grant {
            principal,
            role,
            scope,
            store,
        } => {
            let scope = access::parse_scope(&scope)?;
            let v = access::assign(
                &cli_store(&store)?,
                "tandem-cli",
                &principal,
                &role,
                &scope,
                access::Grant::Standing,
            )?;
            println!(
                "{} has {role} at {} (assignment {})",
                principal,
                scope.render(),
                v["assignment"]["id"].as_str().unwrap_or("")
            );
        }
        AccessAction::Eligible {
            principal,
            role,
            scope,
            max,
            store,
        } => {
            let scope = access::parse_scope(&scope)?;
            let for_ms = duration_ms(&max)?;
            access::assign(
                &cli_store(&store)?,
                "tandem-cli",
                &principal,
                &role,
                &scope,
                access::Grant::Eligible { for_ms },
            )?;
            println!(
                "{principal} may elevate to {role} at {} for up to {max}",
                scope.render()
            );
        }
        AccessAction::Elevate {
            role,
            scope,
            duration,
            reason,
        } => {
            let url = std::env::var("MLFLOW_TRACKING_URI")
                .context("MLFLOW_TRACKING_URI names the server to elevate on")?;
            let seconds = duration_ms(&duration)? / 1000;
            if std::env::var("MLFLOW_TRACKING_TOKEN").is_err()
                && std::env::var("MLFLOW_TRACKING_USERNAME").is_err()
            {
                bail!("give your credentials: MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD");
            }
            let v = api_call(
                &url,
                "POST",
                "/api/tandem/v1/access/elevate",
                Some(serde_json::json!({ "role": role, "scope": scope, "for_seconds": seconds, "reason": reason })),
            )
            .context("elevation refused")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        AccessAction::Lock {
            scope,
            kind,
            reason,
            store,
        } => {
            let scope = access::parse_scope(&scope)?;
            let v = access::set_lock(&cli_store(&store)?, "tandem-cli", &scope, &kind, &reason)?;
            println!(
                "{} is locked ({kind}); lock {}",
                scope.render(),
                v["lock"]["id"].as_str().unwrap_or("")
            );
        }
        AccessAction::Unlock { lock_id, store } => {
            access::lift_lock(&cli_store(&store)?, "tandem-cli", &lock_id)?;
            println!("lock {lock_id} lifted");
        }
        AccessAction::Locks { store } => {
            let s = cli_store(&store)?;
            let state = s
                .read(queries::access_state)
                .map_err(tandem_core::MlflowError::from)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&access::locks_json(&state))?
            );
        }
        AccessAction::DefineRole {
            name,
            actions,
            store,
        } => {
            access::define_role(&cli_store(&store)?, "tandem-cli", &name, &actions)?;
            println!("role {name}: {}", actions.join(", "));
        }
        AccessAction::DropRole { name, store } => {
            access::drop_role(&cli_store(&store)?, "tandem-cli", &name)?;
            println!("role {name} dropped");
        }
        AccessAction::AddMember {
            group,
            member,
            store,
        } => {
            access::membership(&cli_store(&store)?, "tandem-cli", &group, &member, true)?;
            println!("{member} is a member of {group}");
        }
        AccessAction::RemoveMember {
            group,
            member,
            store,
        } => {
            access::membership(&cli_store(&store)?, "tandem-cli", &group, &member, false)?;
            println!("{member} is no longer a member of {group}");
        }
        AccessAction::Revoke {
            assignment_id,
            store,
        } => {
            access::unassign(&cli_store(&store)?, "tandem-cli", &assignment_id)?;
            println!("assignment {assignment_id} removed");
        }
        AccessAction::List { store } => {
            let s = cli_store(&store)?;
            let ctx = tandem::api::Ctx {
                store: s,
                artifacts: tandem::artifacts::Artifacts::folder(&std::env::temp_dir())?,
                workspace: tandem_core::access::ACCESS_WORKSPACE.into(),
                principal: "tandem-cli".into(),
                require_live: false,
                authenticated: false,
                compute: Default::default(),
                vault: None,
            };
            let v = access::list_assignments(&ctx, &tandem::api::Req::default())?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
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
        WorkspaceAction::Create {
            name,
            description,
            store,
        } => {
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
                println!(
                    "{}\t{}",
                    w["name"].as_str().unwrap_or_default(),
                    w["description"].as_str().unwrap_or_default()
                );
            }
        }
        WorkspaceAction::Delete { name, store } => {
            if name == workspaces::DEFAULT_WORKSPACE {
                bail!("the default workspace cannot be deleted");
            }
            let state = tandem::server::open_store(&load(&store, Overrides::default())?)?;
            tandem::api::access::check_lock(
                &state,
                "workspaces/delete",
                &tandem_core::access::Scope::Workspace(name.clone()),
            )?;
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

/// One call to a tandem server's API with the stock client's credentials
/// (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD); the
/// answer's JSON, or the server's message as the error.
fn api_call(
    url: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", url.trim_end_matches('/'));
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    runtime()?.block_on(async move {
        let mut rb = reqwest::Client::new().request(method, url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb = match (
            std::env::var("MLFLOW_TRACKING_TOKEN"),
            std::env::var("MLFLOW_TRACKING_USERNAME"),
        ) {
            (Ok(t), _) => rb.bearer_auth(t),
            (_, Ok(u)) => rb.basic_auth(u, std::env::var("MLFLOW_TRACKING_PASSWORD").ok()),
            _ => rb,
        };
        let resp = rb.send().await?;
        let ok = resp.status().is_success();
        let text = resp.text().await?;
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        if !ok {
            bail!(
                "{}",
                v["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            );
        }
        anyhow::Ok(v)
    })
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn env_command(action: EnvAction) -> anyhow::Result<()> {
    match action {
        EnvAction::Create {
            name,
            image,
            requirements,
            conda,
            description,
            version,
            api,
        } => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let mut body = serde_json::json!({ "name": name, "description": description });
            if let Some(i) = image {
                body["image"] = i.into();
            }
            if let Some(p) = requirements {
                body["requirements"] = read(&p)?.into();
            }
            if let Some(p) = conda {
                body["conda"] = read(&p)?.into();
            }
            if let Some(v) = version {
                body["version"] = v.into();
            }
            print_json(&api_call(
                &api.url,
                "POST",
                &format!("/api/tandem/v1/workspaces/{}/environments", api.workspace),
                Some(body),
            )?)
        }
        EnvAction::Common(a) => asset_command("environments", a),
    }
}

fn data_command(action: DataAction) -> anyhow::Result<()> {
    match action {
        DataAction::Create {
            name,
            asset_type,
            uri,
            description,
            version,
            api,
        } => {
            let mut body = serde_json::json!({ "name": name, "type": asset_type, "uri": uri, "description": description });
            if let Some(v) = version {
                body["version"] = v.into();
            }
            print_json(&api_call(
                &api.url,
                "POST",
                &format!("/api/tandem/v1/workspaces/{}/data-assets", api.workspace),
                Some(body),
            )?)
        }
        DataAction::Common(a) => asset_command("data-assets", a),
    }
}

fn asset_command(kind: &str, action: AssetAction) -> anyhow::Result<()> {
    let base = |api: &ApiArgs| format!("/api/tandem/v1/workspaces/{}/{kind}", api.workspace);
    match action {
        AssetAction::List { name, all, api } => {
            let mut q = format!("?include_deleted={all}");
            if let Some(n) = name {
                q.push_str(&format!("&name={}", tandem::http::encode_segment(&n)));
            }
            print_json(&api_call(
                &api.url,
                "GET",
                &format!("{}{q}", base(&api)),
                None,
            )?)
        }
        AssetAction::Get { name, version, api } => print_json(&api_call(
            &api.url,
            "GET",
            &format!("{}/{name}/{version}", base(&api)),
            None,
        )?),
        AssetAction::Delete { name, version, api } => {
            api_call(
                &api.url,
                "DELETE",
                &format!("{}/{name}/{version}", base(&api)),
                None,
            )?;
            println!("deleted {name} version {version} (restorable for the workspace's retention)");
            Ok(())
        }
        AssetAction::Restore { name, version, api } => {
            api_call(
                &api.url,
                "POST",
                &format!("{}/{name}/{version}/restore", base(&api)),
                None,
            )?;
            println!("restored {name} version {version}");
            Ok(())
        }
    }
}

/// The job scheduler of this server's region: attempts run as local processes under the
/// shim (this same binary), in folders below DATA/jobs, told to log to this server.
fn spawn_scheduler(
    state: &tandem::http::AppState,
    region: &str,
    compute: Vec<tandem::jobs::ComputeTarget>,
    data: &std::path::Path,
    addr: std::net::SocketAddr,
    tls: bool,
) -> anyhow::Result<()> {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    let uri = format!(
        "{}://{}",
        if tls { "https" } else { "http" },
        std::net::SocketAddr::new(host, addr.port())
    );
    let executor = std::sync::Arc::new(tandem::jobs::LocalExecutor::new(std::env::current_exe()?));
    let scheduler = tandem::scheduler::Scheduler::new(
        state.store.clone(),
        state.artifacts.clone(),
        region.to_owned(),
        compute,
        executor,
        data.join("jobs"),
        uri,
    );
    match &state.region {
        Some(r) => scheduler.in_deployment(r.clone()).spawn(),
        None => scheduler.spawn(),
    }
    Ok(())
}

fn job_command(action: JobAction) -> anyhow::Result<()> {
    let base = |api: &ApiArgs| format!("/api/tandem/v1/workspaces/{}/jobs", api.workspace);
    match action {
        JobAction::Submit { file, api } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let spec: serde_json::Value = if file.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not JSON", file.display()))?
            } else {
                toml::from_str(&text).with_context(|| format!("{}: not TOML", file.display()))?
            };
            print_json(&api_call(&api.url, "POST", &base(&api), Some(spec))?)
        }
        JobAction::List { state, api } => {
            let q = state
                .map(|s| format!("?state={}", tandem::http::encode_segment(&s)))
                .unwrap_or_default();
            print_json(&api_call(
                &api.url,
                "GET",
                &format!("{}{q}", base(&api)),
                None,
            )?)
        }
        JobAction::Get { job_id, api } => print_json(&api_call(
            &api.url,
            "GET",
            &format!("{}/{job_id}", base(&api)),
            None,
        )?),
        JobAction::Cancel { job_id, api } => print_json(&api_call(
            &api.url,
            "POST",
            &format!("{}/{job_id}/cancel", base(&api)),
            None,
        )?),
    }
}

/// An instant given as RFC 3339 or as milliseconds since the epoch.
fn instant_ms(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    tandem::backup::parse_instant(text)
        .map(|ms| ms as i64)
        .ok_or_else(|| anyhow::anyhow!("'{text}' is not an instant: give RFC 3339 (2026-12-05T10:00:00Z) or milliseconds since the epoch"))
}

fn secret_command(action: SecretAction) -> anyhow::Result<()> {
    let base = |api: &ApiArgs| format!("/api/tandem/v1/workspaces/{}/secrets", api.workspace);
    match action {
        SecretAction::Set {
            name,
            value_file,
            content_type,
            tags,
            not_before,
            expires,
            api,
        } => {
            let value = match value_file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                None => {
                    let mut v = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut v)?;
                    v
                }
            };
            let value = value.strip_suffix('\n').unwrap_or(&value).to_owned();
            let mut tag_map = serde_json::Map::new();
            for t in tags {
                let (k, v) = t
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--tag '{t}': give KEY=VALUE"))?;
                tag_map.insert(k.to_owned(), v.into());
            }
            let mut body = serde_json::json!({ "name": name, "value": value, "content_type": content_type, "tags": tag_map });
            if let Some(t) = not_before {
                body["not_before"] = instant_ms(&t)?.into();
            }
            if let Some(t) = expires {
                body["expires"] = instant_ms(&t)?.into();
            }
            let v = api_call(&api.url, "POST", &base(&api), Some(body))?;
            println!("secret {name}: version {}", v["secret"]["version"]);
            Ok(())
        }
        SecretAction::Get { name, version, api } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let v = api_call(
                &api.url,
                "GET",
                &format!("{}/{name}/value{q}", base(&api)),
                None,
            )?;
            println!("{}", v["value"].as_str().unwrap_or_default());
            Ok(())
        }
        SecretAction::List { all, api } => print_json(&api_call(
            &api.url,
            "GET",
            &format!("{}?include_deleted={all}", base(&api)),
            None,
        )?),
        SecretAction::Versions { name, api } => {
            let v = api_call(&api.url, "GET", &format!("{}/{name}", base(&api)), None)?;
            print_json(&v["secret"]["versions"])
        }
        SecretAction::Disable { name, version, api } => {
            api_call(
                &api.url,
                "POST",
                &format!("{}/{name}/versions/{version}/disable", base(&api)),
                None,
            )?;
            println!("secret {name}: version {version} disabled");
            Ok(())
        }
        SecretAction::Enable { name, version, api } => {
            api_call(
                &api.url,
                "POST",
                &format!("{}/{name}/versions/{version}/enable", base(&api)),
                None,
            )?;
            println!("secret {name}: version {version} enabled");
            Ok(())
        }
        SecretAction::Delete { name, api } => {
            api_call(&api.url, "DELETE", &format!("{}/{name}", base(&api)), None)?;
            println!("secret {name} deleted (recoverable for the workspace's retention)");
            Ok(())
        }
        SecretAction::Recover { name, api } => {
            api_call(
                &api.url,
                "POST",
                &format!("{}/{name}/recover", base(&api)),
                None,
            )?;
            println!("secret {name} recovered");
            Ok(())
        }
        SecretAction::Purge { name, api } => {
            api_call(
                &api.url,
                "POST",
                &format!("{}/{name}/purge", base(&api)),
                None,
            )?;
            println!("secret {name} purged");
            Ok(())
        }
    }
}

fn vault_command(action: VaultAction) -> anyhow::Result<()> {
    match action {
        VaultAction::Rotate { data } => {
            let current = data.join("master.key");
            let old = std::fs::read_to_string(&current)
                .with_context(|| format!("cannot read {}", current.display()))?;
            tandem::vault::Key::from_hex(&old)?;
            // The old key joins the keyring first: at no moment is it nowhere.
            let ring = data.join("master.keyring");
            let mut text = std::fs::read_to_string(&ring).unwrap_or_default();
            text.push_str(old.trim());
            text.push('\n');
            let tmp = ring.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            std::fs::rename(&tmp, &ring)?;
            let fresh = data.join("master.key.new");
            let _ = std::fs::remove_file(&fresh);
            tandem::vault::write_key_file(&fresh, &tandem::vault::Key::random())?;
            std::fs::rename(&fresh, &current)?;
            println!("a new master key is current in {}; the old one is in {}. Restart the server(s) (in a deployment: copy both files to every region first), then run `tandem vault rewrap` for each workspace.", current.display(), ring.display());
            Ok(())
        }
        VaultAction::Rewrap { api } => {
            let v = api_call(
                &api.url,
                "POST",
                &format!("/api/tandem/v1/workspaces/{}/vault/rewrap", api.workspace),
                None,
            )?;
            println!(
                "workspace {}: {} data keys re-wrapped with the current master key",
                api.workspace, v["rewrapped"]
            );
            Ok(())
        }
    }
}
