//! The schema, versioned. Portable SQL: every statement runs unchanged on SQLite and
//! PostgreSQL. A migration is append-only: a released step is never edited.

use super::{Error, Result, Tx};

/// Each step brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: workspaces, the change log and MLflow's tracking and registry entities.
    r#"
CREATE TABLE workspaces (
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  default_artifact_root TEXT,
  creation_time BIGINT NOT NULL,
  last_update_time BIGINT NOT NULL
);
CREATE TABLE log_heads (
  workspace TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  epoch BIGINT NOT NULL,
  hlc BIGINT NOT NULL,
  checksum TEXT NOT NULL
);
CREATE TABLE change_log (
  workspace TEXT NOT NULL,
  seq BIGINT NOT NULL,
  epoch BIGINT NOT NULL,
  hlc BIGINT NOT NULL,
  origin TEXT NOT NULL,
  principal TEXT NOT NULL,
  op TEXT NOT NULL,
  payload TEXT NOT NULL,
  checksum TEXT NOT NULL,
  PRIMARY KEY (workspace, seq)
);
CREATE TABLE experiments (
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  name TEXT NOT NULL,
  artifact_location TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_update_time BIGINT NOT NULL,
  deleted_time BIGINT,
  PRIMARY KEY (workspace, experiment_id)
);
CREATE UNIQUE INDEX experiments_by_name ON experiments (workspace, name);
CREATE TABLE experiment_tags (
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, experiment_id, key)
);
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  run_name TEXT NOT NULL,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  artifact_uri TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  deleted_time BIGINT
);
CREATE INDEX runs_by_experiment ON runs (workspace, experiment_id, start_time);
CREATE TABLE params (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE tags (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (run_id, key, step, timestamp, value, is_nan)
);
CREATE TABLE latest_metrics (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE datasets (
  workspace TEXT NOT NULL,
  dataset_id TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  source_type TEXT NOT NULL,
  source TEXT NOT NULL,
  dataset_schema TEXT,
  profile TEXT,
  PRIMARY KEY (workspace, dataset_id)
);
CREATE UNIQUE INDEX datasets_by_identity ON datasets (workspace, experiment_id, name, digest);
CREATE TABLE run_inputs (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  dataset_id TEXT NOT NULL,
  tags TEXT NOT NULL,
  PRIMARY KEY (run_id, dataset_id)
);
CREATE TABLE run_model_inputs (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  PRIMARY KEY (run_id, model_id)
);
CREATE TABLE run_model_outputs (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (run_id, model_id, step)
);
CREATE TABLE logged_models (
  model_id TEXT PRIMARY KEY,
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  name TEXT NOT NULL,
  artifact_location TEXT NOT NULL,
  model_type TEXT,
  source_run_id TEXT,
  status TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (workspace, experiment_id);
CREATE TABLE logged_model_params (
  workspace TEXT NOT NULL,
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (model_id, key)
);
CREATE TABLE logged_model_tags (
  workspace TEXT NOT NULL,
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (model_id, key)
);
CREATE TABLE logged_model_metrics (
  workspace TEXT NOT NULL,
  model_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  dataset_name TEXT NOT NULL,
  dataset_digest TEXT NOT NULL,
  PRIMARY KEY (model_id, run_id, key, step, timestamp, dataset_name, dataset_digest)
);
CREATE TABLE registered_models (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, name)
);
CREATE TABLE registered_model_tags (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, name, key)
);
CREATE TABLE registered_model_aliases (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  alias TEXT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (workspace, name, alias)
);
CREATE TABLE model_versions (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  description TEXT,
  user_id TEXT NOT NULL,
  current_stage TEXT NOT NULL,
  source TEXT NOT NULL,
  run_id TEXT,
  run_link TEXT,
  status TEXT NOT NULL,
  storage_location TEXT,
  model_id TEXT,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, name, version)
);
CREATE TABLE model_version_tags (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, name, version, key)
);
CREATE TABLE artifacts (
  workspace TEXT NOT NULL,
  path TEXT NOT NULL,
  size BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (workspace, path)
);
"#,
    // 2: events a region accepted that its workspace's new leader never received; kept for
    // an operator to re-apply or discard (docs/design/failover.md).
    r#"
CREATE TABLE diverged_events (
  workspace TEXT NOT NULL,
  seq BIGINT NOT NULL,
  epoch BIGINT NOT NULL,
  hlc BIGINT NOT NULL,
  origin TEXT NOT NULL,
  principal TEXT NOT NULL,
  op TEXT NOT NULL,
  payload TEXT NOT NULL,
  checksum TEXT NOT NULL,
  detected_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  PRIMARY KEY (workspace, epoch, seq)
);
"#,
    // 3: retention of deleted objects and purge protection, per workspace.
    r#"
ALTER TABLE workspaces ADD COLUMN retention_days BIGINT NOT NULL DEFAULT 14;
ALTER TABLE workspaces ADD COLUMN purge_protection BIGINT NOT NULL DEFAULT 0;
"#,
];

/// Tables that hold workspace state (everything but the log itself), each with its key
/// columns: what a dump compares and what deleting a workspace clears.
pub const STATE_TABLES: &[(&str, &str)] = &[
    ("workspaces", "name"),
    ("experiments", "experiment_id"),
    ("experiment_tags", "experiment_id, key"),
    ("runs", "run_id"),
    ("params", "run_id, key"),
    ("tags", "run_id, key"),
    ("metrics", "run_id, key, step, timestamp, value, is_nan"),
    ("latest_metrics", "run_id, key"),
    ("datasets", "dataset_id"),
    ("run_inputs", "run_id, dataset_id"),
    ("run_model_inputs", "run_id, model_id"),
    ("run_model_outputs", "run_id, model_id, step"),
    ("logged_models", "model_id"),
    ("logged_model_params", "model_id, key"),
    ("logged_model_tags", "model_id, key"),
    ("logged_model_metrics", "model_id, run_id, key, step, timestamp, dataset_name, dataset_digest"),
    ("registered_models", "name"),
    ("registered_model_tags", "name, key"),
    ("registered_model_aliases", "name, alias"),
    ("model_versions", "name, version"),
    ("model_version_tags", "name, version, key"),
    ("artifacts", "path"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date. Refuses a database written by a newer tandem.
pub fn migrate(tx: &mut dyn Tx) -> Result<()> {
    // Servers starting together must not both run the same step.
    tx.lock("schema")?;
    tx.exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)", &[])?;
    let current = match tx.query_one("SELECT MAX(version) FROM schema_version", &[])? {
        Some(row) => row.opt_int(0).unwrap_or(0),
        None => 0,
    };
    if current > SCHEMA_VERSION {
        return Err(Error::Backend(format!(
            "the metadata store has schema version {current}, newer than this tandem knows ({SCHEMA_VERSION}); upgrade tandem"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        for statement in step.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            tx.exec(statement, &[])?;
        }
        tx.exec("INSERT INTO schema_version (version) VALUES (?)", &[(i as i64 + 1).into()])?;
    }
    Ok(())
}
