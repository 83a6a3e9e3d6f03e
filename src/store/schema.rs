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
    // 4: keys scoped by workspace (a restored copy of a workspace keeps its run and model IDs
    // beside the original), and soft delete for registered models, model versions, logged
    // models and workspaces (deleted_time NULL = live).
    r#"
CREATE TABLE runs_v4 (
  run_id TEXT NOT NULL,
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  run_name TEXT NOT NULL,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  artifact_uri TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  deleted_time BIGINT,
  PRIMARY KEY (workspace, run_id)
);
INSERT INTO runs_v4 SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
CREATE TABLE params_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, run_id, key)
);
INSERT INTO params_v4 SELECT * FROM params;
DROP TABLE params;
ALTER TABLE params_v4 RENAME TO params;
CREATE TABLE tags_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, run_id, key)
);
INSERT INTO tags_v4 SELECT * FROM tags;
DROP TABLE tags;
ALTER TABLE tags_v4 RENAME TO tags;
CREATE TABLE metrics_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (workspace, run_id, key, step, timestamp, value, is_nan)
);
INSERT INTO metrics_v4 SELECT * FROM metrics;
DROP TABLE metrics;
ALTER TABLE metrics_v4 RENAME TO metrics;
CREATE TABLE latest_metrics_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (workspace, run_id, key)
);
INSERT INTO latest_metrics_v4 SELECT * FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_v4 RENAME TO latest_metrics;
CREATE TABLE run_inputs_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  dataset_id TEXT NOT NULL,
  tags TEXT NOT NULL,
  PRIMARY KEY (workspace, run_id, dataset_id)
);
INSERT INTO run_inputs_v4 SELECT * FROM run_inputs;
DROP TABLE run_inputs;
ALTER TABLE run_inputs_v4 RENAME TO run_inputs;
CREATE TABLE run_model_inputs_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  PRIMARY KEY (workspace, run_id, model_id)
);
INSERT INTO run_model_inputs_v4 SELECT * FROM run_model_inputs;
DROP TABLE run_model_inputs;
ALTER TABLE run_model_inputs_v4 RENAME TO run_model_inputs;
CREATE TABLE run_model_outputs_v4 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (workspace, run_id, model_id, step)
);
INSERT INTO run_model_outputs_v4 SELECT * FROM run_model_outputs;
DROP TABLE run_model_outputs;
ALTER TABLE run_model_outputs_v4 RENAME TO run_model_outputs;
CREATE TABLE logged_models_v4 (
  model_id TEXT NOT NULL,
  workspace TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  name TEXT NOT NULL,
  artifact_location TEXT NOT NULL,
  model_type TEXT,
  source_run_id TEXT,
  status TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, model_id)
);
INSERT INTO logged_models_v4 SELECT * FROM logged_models;
DROP TABLE logged_models;
ALTER TABLE logged_models_v4 RENAME TO logged_models;
CREATE TABLE logged_model_params_v4 (
  workspace TEXT NOT NULL,
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, model_id, key)
);
INSERT INTO logged_model_params_v4 SELECT * FROM logged_model_params;
DROP TABLE logged_model_params;
ALTER TABLE logged_model_params_v4 RENAME TO logged_model_params;
CREATE TABLE logged_model_tags_v4 (
  workspace TEXT NOT NULL,
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, model_id, key)
);
INSERT INTO logged_model_tags_v4 SELECT * FROM logged_model_tags;
DROP TABLE logged_model_tags;
ALTER TABLE logged_model_tags_v4 RENAME TO logged_model_tags;
CREATE TABLE logged_model_metrics_v4 (
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
  PRIMARY KEY (workspace, model_id, run_id, key, step, timestamp, dataset_name, dataset_digest)
);
INSERT INTO logged_model_metrics_v4 SELECT * FROM logged_model_metrics;
DROP TABLE logged_model_metrics;
ALTER TABLE logged_model_metrics_v4 RENAME TO logged_model_metrics;
CREATE INDEX runs_by_experiment ON runs (workspace, experiment_id, start_time);
CREATE INDEX logged_models_by_experiment ON logged_models (workspace, experiment_id);
ALTER TABLE registered_models ADD COLUMN deleted_time BIGINT;
ALTER TABLE model_versions ADD COLUMN deleted_time BIGINT;
ALTER TABLE logged_models ADD COLUMN deleted_time BIGINT;
ALTER TABLE workspaces ADD COLUMN deleted_time BIGINT;
ALTER TABLE log_heads ADD COLUMN base_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE restores (
  workspace TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  to_seq BIGINT NOT NULL,
  started_at BIGINT NOT NULL
);
"#,
    // 5: metric points stored in their primary key's own b-tree (SQLite: WITHOUT ROWID; one
    // b-tree insert per point instead of two), and latest values indexed by value, so that
    // "metrics.m > x ORDER BY metrics.m" walks the index instead of sorting every match.
    r#"
CREATE TABLE metrics_v5 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (workspace, run_id, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;
INSERT INTO metrics_v5 SELECT * FROM metrics;
DROP TABLE metrics;
ALTER TABLE metrics_v5 RENAME TO metrics;
CREATE TABLE latest_metrics_v5 (
  workspace TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (workspace, run_id, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_v5 SELECT * FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_v5 RENAME TO latest_metrics;
CREATE INDEX latest_metrics_by_value ON latest_metrics (workspace, key, is_nan, value)
"#,
    // 6: PostgreSQL only (see `postgres_step`): change-log payloads compressed with lz4.
    "",
    // 7: access state (rows of the `_access` workspace only): principals, tokens (hashes),
    // role assignments (standing, elevations, eligibilities), locks, custom roles, group
    // members.
    r#"
CREATE TABLE access_principals (
  workspace TEXT NOT NULL,
  principal_id TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  service_workspace TEXT,
  password_hash TEXT,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, principal_id)
);
CREATE UNIQUE INDEX access_principals_by_name ON access_principals (workspace, name);
CREATE TABLE access_tokens (
  workspace TEXT NOT NULL,
  token_id TEXT NOT NULL,
  principal_id TEXT NOT NULL,
  token_sha256 TEXT NOT NULL,
  label TEXT NOT NULL,
  expires_ms BIGINT,
  revoked_time BIGINT,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, token_id)
);
CREATE TABLE access_assignments (
  workspace TEXT NOT NULL,
  assignment_id TEXT NOT NULL,
  principal_id TEXT NOT NULL,
  role TEXT NOT NULL,
  scope TEXT NOT NULL,
  until_ms BIGINT,
  reason TEXT,
  eligible_for_ms BIGINT,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, assignment_id)
);
CREATE TABLE access_roles (
  workspace TEXT NOT NULL,
  name TEXT NOT NULL,
  actions TEXT NOT NULL,
  mlflow TEXT,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, name)
);
CREATE TABLE access_members (
  workspace TEXT NOT NULL,
  group_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY (workspace, group_id, member_id)
);
CREATE TABLE access_locks (
  workspace TEXT NOT NULL,
  lock_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL,
  set_by TEXT NOT NULL,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, lock_id)
)
"#,
    // 8: versioned assets of jobs: environments and data assets (`kind`), their fields as
    // JSON in `body`; soft-deleted with `deleted_time`.
    r#"
CREATE TABLE assets (
  workspace TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  body TEXT NOT NULL,
  description TEXT NOT NULL,
  created_time BIGINT NOT NULL,
  deleted_time BIGINT,
  PRIMARY KEY (workspace, kind, name, version)
)
"#,
    // 9: jobs and their attempts (docs/design/jobs.md).
    r#"
CREATE TABLE jobs (
  workspace TEXT NOT NULL,
  job_id TEXT NOT NULL,
  idempotency_key TEXT,
  spec TEXT NOT NULL,
  state TEXT NOT NULL,
  attempt BIGINT NOT NULL,
  region TEXT,
  compute TEXT,
  run_id TEXT,
  cancel_requested BIGINT NOT NULL,
  submitted_time BIGINT NOT NULL,
  updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, job_id)
);
CREATE UNIQUE INDEX jobs_by_key ON jobs (workspace, idempotency_key);
CREATE INDEX jobs_by_state ON jobs (workspace, state, submitted_time);
CREATE TABLE job_attempts (
  workspace TEXT NOT NULL,
  job_id TEXT NOT NULL,
  attempt BIGINT NOT NULL,
  region TEXT NOT NULL,
  compute TEXT NOT NULL,
  run_id TEXT NOT NULL,
  incarnation BIGINT NOT NULL,
  state TEXT NOT NULL,
  exit_code BIGINT,
  started_time BIGINT NOT NULL,
  finished_time BIGINT,
  PRIMARY KEY (workspace, job_id, attempt)
)
"#,
    // 10: the vault (docs/design/vault.md): wrapped data keys, secrets, their versions
    // (values as ciphertext only).
    r#"
CREATE TABLE data_keys (
  workspace TEXT NOT NULL,
  dek_id TEXT NOT NULL,
  master_key_id TEXT NOT NULL,
  wrapped TEXT NOT NULL,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, dek_id)
);
CREATE TABLE secrets (
  workspace TEXT NOT NULL,
  secret_id TEXT NOT NULL,
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  provider TEXT,
  auth_config TEXT,
  created_by TEXT NOT NULL,
  created_time BIGINT NOT NULL,
  updated_by TEXT NOT NULL,
  updated_time BIGINT NOT NULL,
  deleted_time BIGINT,
  PRIMARY KEY (workspace, secret_id)
);
CREATE UNIQUE INDEX secrets_by_name ON secrets (workspace, name);
CREATE TABLE secret_versions (
  workspace TEXT NOT NULL,
  secret_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  dek_id TEXT NOT NULL,
  sealed TEXT NOT NULL,
  content_type TEXT NOT NULL,
  tags TEXT NOT NULL,
  not_before BIGINT,
  expires BIGINT,
  enabled BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, secret_id, version)
)
"#,
    // 11: MLflow's AI gateway (api/gateway.rs): endpoints (with their model mappings, tags,
    // bindings and per-region URLs), model definitions, budget policies and the gateway's
    // view of a vault secret (masked values, auth config), each a JSON document by kind.
    r#"
CREATE TABLE gateway_objects (
  workspace TEXT NOT NULL,
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT,
  doc TEXT NOT NULL,
  updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, kind, id)
)
"#,
    // 12: MLflow 3's traces (docs/design/traces.md): a trace's info, its tags, its spans (each
    // the JSON of an OpenTelemetry span, as OTLP delivered it).
    r#"
CREATE TABLE traces (
  workspace TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  request_time BIGINT NOT NULL,
  execution_duration BIGINT,
  state TEXT NOT NULL,
  client_request_id TEXT,
  request_preview TEXT,
  response_preview TEXT,
  metadata TEXT NOT NULL,
  finalized BIGINT NOT NULL,
  deleted_time BIGINT,
  PRIMARY KEY (workspace, trace_id)
);
CREATE INDEX traces_by_experiment ON traces (workspace, experiment_id, request_time);
CREATE TABLE trace_tags (
  workspace TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (workspace, trace_id, key)
);
CREATE TABLE trace_spans (
  workspace TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT,
  name TEXT NOT NULL,
  start_ns BIGINT NOT NULL,
  end_ns BIGINT,
  content TEXT NOT NULL,
  PRIMARY KEY (workspace, trace_id, span_id)
)
"#,
    // 13: MLflow 3's GenAI objects beside traces (api/assessments.rs): assessments, trace
    // links, ..., each a JSON document by kind, found by its parent or its name.
    r#"
CREATE TABLE genai_objects (
  workspace TEXT NOT NULL,
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  parent TEXT,
  name TEXT,
  doc TEXT NOT NULL,
  updated_time BIGINT NOT NULL,
  PRIMARY KEY (workspace, kind, id)
);
CREATE INDEX genai_objects_by_parent ON genai_objects (workspace, kind, parent);
CREATE INDEX genai_objects_by_name ON genai_objects (workspace, kind, name)
"#,
    // 14: a trace search reads an experiment's traces newest first (MLflow's order: time
    // descending, then ID). `traces_newest` is that order, and carries what a filter checks
    // before a row is read (the ID a tag probe joins on, whether the trace is deleted). A tag
    // filter (`tags.team = 't3'`) reads `trace_tags_newest` instead: each tag carries its
    // trace's experiment and time (kept in step by `apply::trace_info`), so the newest traces
    // with a tag value are one index range, however few traces have it.
    r#"
CREATE INDEX traces_newest ON traces (workspace, experiment_id, request_time DESC, trace_id, deleted_time);
DROP INDEX traces_by_experiment;
ALTER TABLE trace_tags ADD COLUMN experiment_id TEXT;
ALTER TABLE trace_tags ADD COLUMN request_time BIGINT;
UPDATE trace_tags SET experiment_id = (SELECT t.experiment_id FROM traces t WHERE t.workspace = trace_tags.workspace AND t.trace_id = trace_tags.trace_id), request_time = (SELECT t.request_time FROM traces t WHERE t.workspace = trace_tags.workspace AND t.trace_id = trace_tags.trace_id);
-- (Led by key and value, so no lookup of one trace's tags can take it for the primary key.)
CREATE INDEX trace_tags_newest ON trace_tags (key, value, workspace, experiment_id, request_time DESC, trace_id)
"#,
    // 15: each trace keeps its tags as one JSON object beside its row (`apply::trace_tags_json`
    // rewrites it whenever a tag changes), so a search page reads a trace's tags with the trace
    // instead of gathering them per trace. Filled for existing traces by `tags_json_step`.
    // Where a trace's spans are (`mlflow.trace.spansLocation`) becomes a stored tag, written
    // when spans arrive as MLflow's server writes it, instead of one every trace was answered
    // with: a trace with no spans here (started through MLflow 2's API) has none.
    r#"
ALTER TABLE traces ADD COLUMN tags_json TEXT;
INSERT INTO trace_tags (workspace, trace_id, key, value, experiment_id, request_time)
SELECT t.workspace, t.trace_id, 'mlflow.trace.spansLocation', 'TRACKING_STORE', t.experiment_id, t.request_time FROM traces t
WHERE EXISTS (SELECT 1 FROM trace_spans s WHERE s.workspace = t.workspace AND s.trace_id = t.trace_id)
ON CONFLICT (workspace, trace_id, key) DO NOTHING
"#,
];

/// Migration 15's fill: every trace's tags as one JSON object (the aggregate is the one
/// dialect difference).
fn tags_json_step(tx: &mut dyn Tx) -> Result<()> {
    tx.exec(
        &format!(
            "UPDATE traces SET tags_json = {}",
            tags_json_sql(tx.is_sqlite(), "traces.workspace", "traces.trace_id")
        ),
        &[],
    )?;
    Ok(())
}

/// A trace's tags as one JSON object (`{}` for none), in SQL: the trace given by the column
/// expressions or parameters `workspace` and `trace_id`.
pub fn tags_json_sql(sqlite: bool, workspace: &str, trace_id: &str) -> String {
    match sqlite {
        true => format!("(SELECT json_group_object(g.key, g.value) FROM trace_tags g WHERE g.workspace = {workspace} AND g.trace_id = {trace_id})"),
        false => format!("(SELECT COALESCE(json_object_agg(g.key, g.value)::text, '{{}}') FROM trace_tags g WHERE g.workspace = {workspace} AND g.trace_id = {trace_id})"),
    }
}

/// What a migration does on PostgreSQL beyond its portable SQL.
fn postgres_step(tx: &mut dyn Tx, version: i64) -> Result<()> {
    if version == 6 {
        // A log-batch event of 1,000 points is ~80 kB of JSON, which PostgreSQL compresses
        // when it stores it: pglz, its default, took ~1.1 ms of the server's CPU per event,
        // lz4 ~0.15 ms for about the same size. Only servers built with lz4 offer it.
        let lz4 = tx.query_one("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)", &[])?.is_some();
        if lz4 {
            tx.exec(
                "ALTER TABLE change_log ALTER COLUMN payload SET COMPRESSION lz4",
                &[],
            )?;
        }
    }
    Ok(())
}

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
    (
        "logged_model_metrics",
        "model_id, run_id, key, step, timestamp, dataset_name, dataset_digest",
    ),
    ("registered_models", "name"),
    ("registered_model_tags", "name, key"),
    ("registered_model_aliases", "name, alias"),
    ("model_versions", "name, version"),
    ("model_version_tags", "name, version, key"),
    ("artifacts", "path"),
    ("access_principals", "principal_id"),
    ("access_tokens", "token_id"),
    ("access_assignments", "assignment_id"),
    ("access_locks", "lock_id"),
    ("access_roles", "name"),
    ("access_members", "group_id, member_id"),
    ("assets", "kind, name, version"),
    ("jobs", "job_id"),
    ("job_attempts", "job_id, attempt"),
    ("data_keys", "dek_id"),
    ("secrets", "secret_id"),
    ("secret_versions", "secret_id, version"),
    ("gateway_objects", "kind, id"),
    ("traces", "trace_id"),
    ("trace_tags", "trace_id, key"),
    ("trace_spans", "trace_id, span_id"),
    ("genai_objects", "kind, id"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date. Refuses a database written by a newer tandem.
pub fn migrate(tx: &mut dyn Tx) -> Result<()> {
    migrate_to(tx, SCHEMA_VERSION)
}

/// Brings the schema up to `target` (tests build databases as older tandems left them).
pub fn migrate_to(tx: &mut dyn Tx, target: i64) -> Result<()> {
    // Servers starting together must not both run the same step.
    tx.lock("schema")?;
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
        &[],
    )?;
    let current = match tx.query_one("SELECT MAX(version) FROM schema_version", &[])? {
        Some(row) => row.opt_int(0).unwrap_or(0),
        None => 0,
    };
    if current > SCHEMA_VERSION {
        return Err(Error::Backend(format!(
            "the metadata store has schema version {current}, newer than this tandem knows ({SCHEMA_VERSION}); upgrade tandem"
        )));
    }
    for (i, step) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target.max(0) as usize)
        .skip(current as usize)
    {
        for statement in step.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            // The one dialect difference in the schema: WITHOUT ROWID is SQLite's (a
            // PostgreSQL table is a heap with separate indexes whatever it is told).
            match tx.is_sqlite() {
                true => tx.exec(statement, &[])?,
                false => tx.exec(&statement.replace(") WITHOUT ROWID", ")"), &[])?,
            };
        }
        if !tx.is_sqlite() {
            postgres_step(tx, i as i64 + 1)?;
        }
        if i + 1 == 15 {
            tags_json_step(tx)?;
        }
        tx.exec(
            "INSERT INTO schema_version (version) VALUES (?)",
            &[(i as i64 + 1).into()],
        )?;
    }
    Ok(())
}
