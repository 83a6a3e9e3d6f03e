//! Reads, in MLflow's entity shapes (the JSON the REST API returns), written once in portable
//! SQL for every backend.

use super::{schema, LogHead, Result, Row, Tx, Value};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use tandem_core::event::Event;
use tandem_core::search::{Field, Kind};
use tandem_core::{Hlc, F64};

pub fn log_head(tx: &mut dyn Tx, ws: &str) -> Result<Option<LogHead>> {
    Ok(tx
        .query_one(
            "SELECT seq, hlc, checksum, epoch FROM log_heads WHERE workspace = ?",
            &[ws.into()],
        )?
        .map(|r| LogHead {
            seq: r.int(0) as u64,
            hlc: Hlc(r.int(1) as u64),
            checksum: r.text(2),
            epoch: r.int(3) as u64,
        }))
}

/// What a writer needs to know of its workspace before it decides anything, read in one
/// statement (on PostgreSQL every statement is a round trip made while holding the
/// workspace's lock).
#[derive(Debug, Clone)]
pub struct Standing {
    /// Exists, is not soft-deleted and is not being restored: open to ordinary requests.
    pub live: bool,
    /// Some(deleted_time) when soft-deleted.
    pub deleted: Option<i64>,
    /// A restore is building it.
    pub restoring: bool,
    pub head: Option<LogHead>,
}

pub fn standing(tx: &mut dyn Tx, ws: &str) -> Result<Standing> {
    let r = tx
        .query_one(
            "SELECT w.name, w.deleted_time, EXISTS (SELECT 1 FROM restores r WHERE r.workspace = q.name), h.seq, h.hlc, h.checksum, h.epoch \
             FROM (SELECT CAST(? AS TEXT) AS name) q LEFT JOIN workspaces w ON w.name = q.name LEFT JOIN log_heads h ON h.workspace = q.name",
            &[ws.into()],
        )?
        .ok_or_else(|| super::Error::Backend("the standing query returned no row".into()))?;
    let (exists, deleted, restoring) = (r.opt_text(0).is_some(), r.opt_int(1), r.int(2) != 0);
    let head = r.opt_int(3).map(|seq| LogHead {
        seq: seq as u64,
        hlc: Hlc(r.int(4) as u64),
        checksum: r.text(5),
        epoch: r.int(6) as u64,
    });
    Ok(Standing {
        live: exists && deleted.is_none() && !restoring,
        deleted,
        restoring,
        head,
    })
}

/// Where this store's copy of a workspace's log begins to be complete: events at or before
/// it were installed from a snapshot (a compacted log, with gaps); 0 for a whole log.
pub fn log_base(tx: &mut dyn Tx, ws: &str) -> Result<u64> {
    Ok(tx
        .query_one(
            "SELECT base_seq FROM log_heads WHERE workspace = ?",
            &[ws.into()],
        )?
        .map(|r| r.int(0) as u64)
        .unwrap_or(0))
}

/// Some(deleted_time) for a soft-deleted workspace, None for a live or unknown one.
pub fn workspace_deleted(tx: &mut dyn Tx, ws: &str) -> Result<Option<i64>> {
    Ok(standing(tx, ws)?.deleted)
}

/// Live: exists, not deleted, and not being restored (a workspace being restored is not there
/// yet for anyone but the restore). `standing` is the one definition.
pub fn workspace_exists(tx: &mut dyn Tx, ws: &str) -> Result<bool> {
    Ok(standing(tx, ws)?.live)
}

fn workspace_json(r: &Row) -> Json {
    let mut w = json!({ "name": r.text(0), "description": r.text(1) });
    if let Some(root) = r.opt_text(2) {
        w["default_artifact_root"] = root.into();
    }
    w
}

pub fn workspace(tx: &mut dyn Tx, ws: &str) -> Result<Option<Json>> {
    Ok(tx.query_one("SELECT name, description, default_artifact_root FROM workspaces WHERE name = ? AND deleted_time IS NULL", &[ws.into()])?.map(|r| workspace_json(&r)))
}

pub fn workspaces(tx: &mut dyn Tx) -> Result<Vec<Json>> {
    // `_access` is tandem's own, not an MLflow workspace.
    Ok(tx.query("SELECT name, description, default_artifact_root FROM workspaces WHERE deleted_time IS NULL AND name <> ? ORDER BY name", &[tandem_core::access::ACCESS_WORKSPACE.into()])?.iter().map(workspace_json).collect())
}

fn kv_list(rows: &[Row], k: usize, v: usize) -> Json {
    Json::Array(
        rows.iter()
            .map(|r| json!({ "key": r.text(k), "value": r.text(v) }))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// Experiments

const EXPERIMENT_COLS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

fn experiment_json(tx: &mut dyn Tx, ws: &str, r: &Row) -> Result<Json> {
    let id = r.text(0);
    let tags = tx.query("SELECT key, value FROM experiment_tags WHERE workspace = ? AND experiment_id = ? ORDER BY key", &[ws.into(), id.as_str().into()])?;
    Ok(json!({
        "experiment_id": id,
        "name": r.text(1),
        "artifact_location": r.text(2),
        "lifecycle_stage": r.text(3),
        "creation_time": r.int(4),
        "last_update_time": r.int(5),
        "tags": kv_list(&tags, 0, 1),
        "workspace": ws,
    }))
}

pub fn experiment(tx: &mut dyn Tx, ws: &str, id: &str) -> Result<Option<Json>> {
    match tx.query_one(
        &format!(
            "SELECT {EXPERIMENT_COLS} FROM experiments WHERE workspace = ? AND experiment_id = ?"
        ),
        &[ws.into(), id.into()],
    )? {
        Some(r) => Ok(Some(experiment_json(tx, ws, &r)?)),
        None => Ok(None),
    }
}

pub fn experiment_by_name(tx: &mut dyn Tx, ws: &str, name: &str) -> Result<Option<Json>> {
    match tx.query_one(
        &format!("SELECT {EXPERIMENT_COLS} FROM experiments WHERE workspace = ? AND name = ?"),
        &[ws.into(), name.into()],
    )? {
        Some(r) => Ok(Some(experiment_json(tx, ws, &r)?)),
        None => Ok(None),
    }
}

/// Lifecycle filter for MLflow's ViewType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    fn sql(self, col: &str) -> String {
        match self {
            ViewType::ActiveOnly => format!(" AND {col} = 'active'"),
            ViewType::DeletedOnly => format!(" AND {col} = 'deleted'"),
            ViewType::All => String::new(),
        }
    }
}

pub fn experiments(tx: &mut dyn Tx, ws: &str, view: ViewType) -> Result<Vec<Json>> {
    let rows = tx.query(
        &format!(
            "SELECT {EXPERIMENT_COLS} FROM experiments WHERE workspace = ?{}",
            view.sql("lifecycle_stage")
        ),
        &[ws.into()],
    )?;
    let mut tags: HashMap<String, Vec<Json>> = HashMap::new();
    for t in tx.query(
        "SELECT experiment_id, key, value FROM experiment_tags WHERE workspace = ? ORDER BY key",
        &[ws.into()],
    )? {
        tags.entry(t.text(0))
            .or_default()
            .push(json!({ "key": t.text(1), "value": t.text(2) }));
    }
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "experiment_id": r.text(0),
                "name": r.text(1),
                "artifact_location": r.text(2),
                "lifecycle_stage": r.text(3),
                "creation_time": r.int(4),
                "last_update_time": r.int(5),
                "tags": tags.remove(&r.text(0)).unwrap_or_default(),
                "workspace": ws,
            })
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Runs

/// What writes need to know about a run before changing it.
#[derive(Clone)]
pub struct RunState {
    pub experiment_id: String,
    pub lifecycle_stage: String,
    pub status: String,
    pub artifact_uri: String,
}

pub fn run_state(tx: &mut dyn Tx, ws: &str, run_id: &str) -> Result<Option<RunState>> {
    Ok(tx
        .query_one("SELECT experiment_id, lifecycle_stage, status, artifact_uri FROM runs WHERE run_id = ? AND workspace = ?", &[run_id.into(), ws.into()])?
        .map(|r| RunState { experiment_id: r.text(0), lifecycle_stage: r.text(1), status: r.text(2), artifact_uri: r.text(3) }))
}

pub fn param(tx: &mut dyn Tx, ws: &str, run_id: &str, key: &str) -> Result<Option<String>> {
    Ok(tx
        .query_one(
            "SELECT value FROM params WHERE workspace = ? AND run_id = ? AND key = ?",
            &[ws.into(), run_id.into(), key.into()],
        )?
        .map(|r| r.text(0)))
}

/// A run as search sees it: its info and whichever of its data was loaded.
#[derive(Default)]
pub struct RunRecord {
    pub run_id: String,
    pub experiment_id: String,
    pub run_name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub metrics: Vec<(String, F64, i64, i64)>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// (name, digest, context tag, full dataset JSON, input tags JSON)
    pub datasets: Vec<(String, String, Option<String>, Json, Json)>,
    pub model_inputs: Vec<String>,
    pub model_outputs: Vec<(String, i64)>,
}

impl RunRecord {
    pub fn field(&self, kind: Kind, key: &str) -> Option<Field<'_>> {
        match kind {
            Kind::Metric => self
                .metrics
                .iter()
                .find(|m| m.0 == key)
                .map(|m| Field::Num(m.1 .0)),
            Kind::Param => self
                .params
                .iter()
                .find(|p| p.0 == key)
                .map(|p| Field::Str(&p.1)),
            Kind::Tag => self
                .tags
                .iter()
                .find(|t| t.0 == key)
                .map(|t| Field::Str(&t.1)),
            Kind::Attribute => match key {
                "run_id" => Some(Field::Str(&self.run_id)),
                "run_name" => Some(Field::Str(&self.run_name)),
                "status" => Some(Field::Str(&self.status)),
                "user_id" => Some(Field::Str(&self.user_id)),
                "artifact_uri" => Some(Field::Str(&self.artifact_uri)),
                "lifecycle_stage" => Some(Field::Str(&self.lifecycle_stage)),
                "start_time" | "created" => self.start_time.map(|t| Field::Num(t as f64)),
                "end_time" => self.end_time.map(|t| Field::Num(t as f64)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The run as MLflow's JSON (see the `Serialize` impl, the one definition of its shape).
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

/// MLflow's `Run` message. Written field by field straight to the serializer, so a page of
/// 1,000 runs can be rendered to text without building ~30,000 JSON values first.
impl serde::Serialize for RunRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        use serde::Serialize;
        #[derive(Serialize)]
        struct Info<'a> {
            run_id: &'a str,
            run_uuid: &'a str,
            run_name: &'a str,
            experiment_id: &'a str,
            user_id: &'a str,
            status: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            start_time: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_time: Option<i64>,
            artifact_uri: &'a str,
            lifecycle_stage: &'a str,
        }
        #[derive(Serialize)]
        struct Metric<'a> {
            key: &'a str,
            value: F64,
            timestamp: i64,
            step: i64,
        }
        #[derive(Serialize)]
        struct Kv<'a> {
            key: &'a str,
            value: &'a str,
        }
        // As protobuf's JSON: an empty repeated field is left out, as MLflow's server does.
        #[derive(Serialize)]
        struct Data<'a> {
            #[serde(skip_serializing_if = "Vec::is_empty")]
            metrics: Vec<Metric<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            params: Vec<Kv<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tags: Vec<Kv<'a>>,
        }
        #[derive(Serialize)]
        struct Inputs<'a> {
            #[serde(skip_serializing_if = "Vec::is_empty")]
            dataset_inputs: Vec<DatasetInput<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            model_inputs: Vec<ModelInput<'a>>,
        }
        #[derive(Serialize)]
        struct Outputs<'a> {
            #[serde(skip_serializing_if = "Vec::is_empty")]
            model_outputs: Vec<ModelOutput<'a>>,
        }
        #[derive(Serialize)]
        struct DatasetInput<'a> {
            tags: &'a Json,
            dataset: &'a Json,
        }
        #[derive(Serialize)]
        struct ModelInput<'a> {
            model_id: &'a str,
        }
        #[derive(Serialize)]
        struct ModelOutput<'a> {
            model_id: &'a str,
            step: i64,
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry(
            "info",
            &Info {
                run_id: &self.run_id,
                run_uuid: &self.run_id,
                run_name: &self.run_name,
                experiment_id: &self.experiment_id,
                user_id: &self.user_id,
                status: &self.status,
                start_time: self.start_time,
                end_time: self.end_time,
                artifact_uri: &self.artifact_uri,
                lifecycle_stage: &self.lifecycle_stage,
            },
        )?;
        m.serialize_entry(
            "data",
            &Data {
                metrics: self
                    .metrics
                    .iter()
                    .map(|(k, v, ts, step)| Metric {
                        key: k,
                        value: *v,
                        timestamp: *ts,
                        step: *step,
                    })
                    .collect::<Vec<_>>(),
                params: self
                    .params
                    .iter()
                    .map(|(k, v)| Kv { key: k, value: v })
                    .collect::<Vec<_>>(),
                tags: self
                    .tags
                    .iter()
                    .map(|(k, v)| Kv { key: k, value: v })
                    .collect::<Vec<_>>(),
            },
        )?;
        m.serialize_entry(
            "inputs",
            &Inputs {
                dataset_inputs: self
                    .datasets
                    .iter()
                    .map(|d| DatasetInput {
                        tags: &d.4,
                        dataset: &d.3,
                    })
                    .collect::<Vec<_>>(),
                model_inputs: self
                    .model_inputs
                    .iter()
                    .map(|id| ModelInput { model_id: id })
                    .collect::<Vec<_>>(),
            },
        )?;
        m.serialize_entry(
            "outputs",
            &Outputs {
                model_outputs: self
                    .model_outputs
                    .iter()
                    .map(|(id, step)| ModelOutput {
                        model_id: id,
                        step: *step,
                    })
                    .collect::<Vec<_>>(),
            },
        )?;
        m.end()
    }
}

const RUN_COLS: &str = "r.run_id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

fn run_record(r: &Row) -> RunRecord {
    RunRecord {
        run_id: r.text(0),
        experiment_id: r.text(1),
        run_name: r.text(2),
        user_id: r.text(3),
        status: r.text(4),
        start_time: r.opt_int(5),
        end_time: r.opt_int(6),
        artifact_uri: r.text(7),
        lifecycle_stage: r.text(8),
        ..Default::default()
    }
}

fn metric_value(r: &Row, value: usize, is_nan: usize) -> F64 {
    if r.int(is_nan) != 0 {
        F64(f64::NAN)
    } else {
        F64(r.real(value))
    }
}

/// Which parts of a run's data to load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    pub metrics: bool,
    pub params: bool,
    pub tags: bool,
    pub inputs: bool,
    pub outputs: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        metrics: true,
        params: true,
        tags: true,
        inputs: true,
        outputs: true,
    };
}

/// Which keys of a run's data a search looks at (the rest need not be loaded for candidates).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub metrics: Vec<String>,
    pub params: Vec<String>,
    pub tags: Vec<String>,
}

/// `AND <col> IN (...)` with its parameters appended, or nothing when all keys are wanted.
fn keys_clause(alias: &str, keys: Option<&[String]>, params: &[Value]) -> (String, Vec<Value>) {
    let col = format!("{alias}.key");
    let mut p = params.to_vec();
    match keys {
        // Run, then key: the order of the part tables' primary keys, so no sort is needed.
        None => (format!(" ORDER BY {alias}.run_id, {col}"), p),
        Some(k) => {
            p.extend(k.iter().map(Value::from));
            (
                format!(" AND {col} IN ({})", placeholders(k.len().max(1))),
                if k.is_empty() {
                    p.into_iter().chain([Value::Null]).collect()
                } else {
                    p
                },
            )
        }
    }
}

/// Which runs a part load is for. Parameters: the workspace, then the IDs or the condition's.
#[derive(Clone, Copy)]
enum RunScope<'a> {
    /// Runs named by ID (`n` of them): matched on the part table's own key, no join.
    Ids(usize),
    /// Runs matching an SQL condition on `r` (runs joined in).
    Matching(&'a str),
}

impl RunScope<'_> {
    /// `JOIN ... WHERE cond` for a part table aliased `a`.
    fn sql(self, a: &str) -> String {
        match self {
            RunScope::Ids(n) => format!(
                "WHERE {a}.workspace = ? AND {a}.run_id IN ({})",
                placeholders(n)
            ),
            RunScope::Matching(cond) => format!(
                "JOIN runs r ON r.workspace = {a}.workspace AND r.run_id = {a}.run_id WHERE {cond}"
            ),
        }
    }
}

fn load_parts(
    tx: &mut dyn Tx,
    runs: &mut [RunRecord],
    scope: RunScope,
    params: &[Value],
    parts: Parts,
) -> Result<()> {
    load_parts_only(tx, runs, scope, params, parts, None)
}

/// Loads the chosen parts for runs selected by `scope`: all of each part in key order, or,
/// with `only`, just the keys a search needs, in no particular order.
fn load_parts_only(
    tx: &mut dyn Tx,
    runs: &mut [RunRecord],
    scope: RunScope,
    params: &[Value],
    parts: Parts,
    only: Option<&Keys>,
) -> Result<()> {
    let index: HashMap<String, usize> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.run_id.clone(), i))
        .collect();
    if parts.metrics {
        let (clause, p) = keys_clause("m", only.map(|k| k.metrics.as_slice()), params);
        for m in tx.query(&format!("SELECT m.run_id, m.key, m.value, m.is_nan, m.timestamp, m.step FROM latest_metrics m {}{clause}", scope.sql("m")), &p)? {
            if let Some(&i) = index.get(&m.text(0)) {
                runs[i].metrics.push((m.text(1), metric_value(&m, 2, 3), m.int(4), m.int(5)));
            }
        }
    }
    if parts.params {
        let (clause, pp) = keys_clause("p", only.map(|k| k.params.as_slice()), params);
        for p in tx.query(
            &format!(
                "SELECT p.run_id, p.key, p.value FROM params p {}{clause}",
                scope.sql("p")
            ),
            &pp,
        )? {
            if let Some(&i) = index.get(&p.text(0)) {
                runs[i].params.push((p.text(1), p.text(2)));
            }
        }
    }
    if parts.tags {
        let (clause, tp) = keys_clause("t", only.map(|k| k.tags.as_slice()), params);
        for t in tx.query(
            &format!(
                "SELECT t.run_id, t.key, t.value FROM tags t {}{clause}",
                scope.sql("t")
            ),
            &tp,
        )? {
            if let Some(&i) = index.get(&t.text(0)) {
                runs[i].tags.push((t.text(1), t.text(2)));
            }
        }
    }
    if parts.inputs {
        // The datasets join comes first in the text so the scope's parameters stay last.
        let sql = format!(
            "SELECT i.run_id, d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile, i.tags FROM run_inputs i \
             JOIN datasets d ON d.workspace = i.workspace AND d.dataset_id = i.dataset_id {} ORDER BY d.name, d.digest",
            scope.sql("i")
        );
        for d in tx.query(&sql, params)? {
            if let Some(&i) = index.get(&d.text(0)) {
                let mut ds = json!({ "name": d.text(1), "digest": d.text(2), "source_type": d.text(3), "source": d.text(4) });
                if let Some(s) = d.opt_text(5) {
                    ds["schema"] = s.into();
                }
                if let Some(p) = d.opt_text(6) {
                    ds["profile"] = p.into();
                }
                let tags: Json = serde_json::from_str(&d.text(7)).unwrap_or(Json::Array(vec![]));
                let context = tags
                    .as_array()
                    .and_then(|a| a.iter().find(|t| t["key"] == "mlflow.data.context"))
                    .and_then(|t| t["value"].as_str())
                    .map(str::to_owned);
                runs[i]
                    .datasets
                    .push((d.text(1), d.text(2), context, ds, tags));
            }
        }
        for m in tx.query(
            &format!(
                "SELECT i.run_id, i.model_id FROM run_model_inputs i {} ORDER BY i.model_id",
                scope.sql("i")
            ),
            params,
        )? {
            if let Some(&i) = index.get(&m.text(0)) {
                runs[i].model_inputs.push(m.text(1));
            }
        }
    }
    if parts.outputs {
        for m in tx.query(&format!("SELECT o.run_id, o.model_id, o.step FROM run_model_outputs o {} ORDER BY o.model_id, o.step", scope.sql("o")), params)? {
            if let Some(&i) = index.get(&m.text(0)) {
                runs[i].model_outputs.push((m.text(1), m.int(2)));
            }
        }
    }
    Ok(())
}

pub fn run(tx: &mut dyn Tx, ws: &str, run_id: &str) -> Result<Option<RunRecord>> {
    let row = tx.query_one(
        &format!("SELECT {RUN_COLS} FROM runs r WHERE r.run_id = ? AND r.workspace = ?"),
        &[run_id.into(), ws.into()],
    )?;
    let Some(row) = row else { return Ok(None) };
    let mut runs = vec![run_record(&row)];
    load_parts(
        tx,
        &mut runs,
        RunScope::Ids(1),
        &[ws.into(), run_id.into()],
        Parts::ALL,
    )?;
    Ok(runs.pop())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Candidates for a run search: every run of the experiments in the lifecycle view, with the
/// parts the filter and ordering need.
/// With `lean`, candidates carry only their ID and start time (what ordering ties need): for
/// searches that look at no other attribute. `fill_info` completes the page afterwards.
pub fn runs_in(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_ids: &[String],
    view: ViewType,
    parts: Parts,
    keys: &Keys,
    lean: bool,
) -> Result<Vec<RunRecord>> {
    if experiment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let scope = format!(
        "r.workspace = ? AND r.experiment_id IN ({}){}",
        placeholders(experiment_ids.len()),
        view.sql("r.lifecycle_stage")
    );
    let mut params: Vec<Value> = vec![ws.into()];
    params.extend(experiment_ids.iter().map(Value::from));
    let mut runs: Vec<RunRecord> = if lean {
        tx.query(
            &format!("SELECT r.run_id, r.start_time FROM runs r WHERE {scope}"),
            &params,
        )?
        .iter()
        .map(|r| RunRecord {
            run_id: r.text(0),
            start_time: r.opt_int(1),
            ..Default::default()
        })
        .collect()
    } else {
        tx.query(
            &format!("SELECT {RUN_COLS} FROM runs r WHERE {scope}"),
            &params,
        )?
        .iter()
        .map(run_record)
        .collect()
    };
    load_parts_only(
        tx,
        &mut runs,
        RunScope::Matching(&scope),
        &params,
        parts,
        Some(keys),
    )?;
    Ok(runs)
}

/// A run search done entirely in SQL, for the shapes where SQL's answer is provably the one
/// the general path (load candidates, filter and sort in memory) gives: filters that are
/// numeric comparisons on metrics (=, <, <=, >, >= with a finite number: a run without the
/// metric, or with NaN, never matches), ordering by metrics (missing last, then NaN, in either
/// direction) and by start or end time, then MLflow's tie-break (newest first, then run ID).
/// Only the page is loaded. None when the search has another shape.
#[allow(clippy::too_many_arguments)]
pub fn search_in_sql(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_ids: &[String],
    view: ViewType,
    clauses: &[tandem_core::search::Clause],
    order: &[tandem_core::search::OrderKey],
    offset: usize,
    max: usize,
) -> Result<Option<(Vec<RunRecord>, bool)>> {
    use tandem_core::search::{Comparator as C, Literal};
    if experiment_ids.is_empty() {
        return Ok(Some((Vec::new(), false)));
    }
    let mut joins = String::new();
    let mut join_params: Vec<Value> = Vec::new();
    for (i, c) in clauses.iter().enumerate() {
        let op = match c.comparator {
            C::Eq => "=",
            C::Lt => "<",
            C::Le => "<=",
            C::Gt => ">",
            C::Ge => ">=",
            _ => return Ok(None),
        };
        let y = match (&c.kind, &c.value) {
            (Kind::Metric, Literal::Num(y)) if y.is_finite() => *y,
            _ => return Ok(None),
        };
        joins.push_str(&format!(" JOIN latest_metrics f{i} ON f{i}.workspace = r.workspace AND f{i}.run_id = r.run_id AND f{i}.key = ? AND f{i}.is_nan = 0 AND f{i}.value {op} ?"));
        join_params.push(c.key.as_str().into());
        join_params.push(y.into());
    }
    let mut order_sql: Vec<String> = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match (o.kind, o.key.as_str()) {
            // Ordered by a metric the filter already requires (present, not NaN): order by
            // the filter's own join, which an index on (workspace, key, is_nan, value) walks
            // in order, so a page costs its own rows rather than a sort of every match.
            (Kind::Metric, key)
                if clauses
                    .iter()
                    .any(|c| c.kind == Kind::Metric && c.key == key) =>
            {
                let j = clauses
                    .iter()
                    .position(|c| c.kind == Kind::Metric && c.key == key)
                    .expect("found above");
                order_sql.push(format!("f{j}.value {dir}"));
            }
            (Kind::Metric, key) => {
                joins.push_str(&format!(" LEFT JOIN latest_metrics o{i} ON o{i}.workspace = r.workspace AND o{i}.run_id = r.run_id AND o{i}.key = ?"));
                join_params.push(key.into());
                order_sql.push(format!(
                    "CASE WHEN o{i}.run_id IS NULL THEN 2 WHEN o{i}.is_nan = 1 THEN 1 ELSE 0 END"
                ));
                order_sql.push(format!("o{i}.value {dir}"));
            }
            (Kind::Attribute, "start_time" | "created") => order_sql.push(format!(
                "CASE WHEN r.start_time IS NULL THEN 1 ELSE 0 END, r.start_time {dir}"
            )),
            (Kind::Attribute, "end_time") => order_sql.push(format!(
                "CASE WHEN r.end_time IS NULL THEN 1 ELSE 0 END, r.end_time {dir}"
            )),
            _ => return Ok(None),
        }
    }
    order_sql.push(
        "CASE WHEN r.start_time IS NULL THEN 1 ELSE 0 END, r.start_time DESC, r.run_id ASC".into(),
    );
    let scope = format!(
        "r.workspace = ? AND r.experiment_id IN ({}){}",
        placeholders(experiment_ids.len()),
        view.sql("r.lifecycle_stage")
    );
    let mut params = join_params;
    params.push(ws.into());
    params.extend(experiment_ids.iter().map(Value::from));
    params.push(((max + 1) as i64).into());
    params.push((offset as i64).into());
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs r{joins} WHERE {scope} ORDER BY {} LIMIT ? OFFSET ?",
        order_sql.join(", ")
    );
    let mut runs: Vec<RunRecord> = tx.query(&sql, &params)?.iter().map(run_record).collect();
    let more = runs.len() > max;
    runs.truncate(max);
    Ok(Some((runs, more)))
}

/// Loads the info (attributes) of lean search candidates.
pub fn fill_info(tx: &mut dyn Tx, ws: &str, runs: &mut [RunRecord]) -> Result<()> {
    for chunk in runs.chunks_mut(500) {
        let mut params: Vec<Value> = vec![ws.into()];
        params.extend(chunk.iter().map(|r| r.run_id.as_str().into()));
        let rows = tx.query(
            &format!(
                "SELECT {RUN_COLS} FROM runs r WHERE r.workspace = ? AND r.run_id IN ({})",
                placeholders(chunk.len())
            ),
            &params,
        )?;
        let mut by_id: HashMap<String, RunRecord> =
            rows.iter().map(|r| (r.text(0), run_record(r))).collect();
        for r in chunk.iter_mut() {
            if let Some(full) = by_id.remove(&r.run_id) {
                *r = RunRecord {
                    metrics: std::mem::take(&mut r.metrics),
                    params: std::mem::take(&mut r.params),
                    tags: std::mem::take(&mut r.tags),
                    ..full
                };
            }
        }
    }
    Ok(())
}

/// Fills in every part for the given runs (the page a search returns).
pub fn complete_runs(tx: &mut dyn Tx, ws: &str, runs: &mut [RunRecord]) -> Result<()> {
    for chunk in runs.chunks_mut(500) {
        for r in chunk.iter_mut() {
            r.metrics.clear();
            r.params.clear();
            r.tags.clear();
            r.datasets.clear();
            r.model_inputs.clear();
            r.model_outputs.clear();
        }
        let mut ids: Vec<Value> = vec![ws.into()];
        ids.extend(chunk.iter().map(|r| r.run_id.as_str().into()));
        load_parts(tx, chunk, RunScope::Ids(ids.len() - 1), &ids, Parts::ALL)?;
    }
    Ok(())
}

pub fn metric_history(tx: &mut dyn Tx, ws: &str, run_id: &str, key: &str) -> Result<Vec<Json>> {
    Ok(tx
        .query("SELECT key, value, is_nan, timestamp, step FROM metrics WHERE workspace = ? AND run_id = ? AND key = ? ORDER BY timestamp, step, value", &[ws.into(), run_id.into(), key.into()])?
        .iter()
        .map(|m| json!({ "key": m.text(0), "value": metric_value(m, 1, 2).to_json(), "timestamp": m.int(3), "step": m.int(4) }))
        .collect())
}

pub fn dataset_id(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_id: &str,
    name: &str,
    digest: &str,
) -> Result<Option<String>> {
    Ok(tx
        .query_one("SELECT dataset_id FROM datasets WHERE workspace = ? AND experiment_id = ? AND name = ? AND digest = ?", &[ws.into(), experiment_id.into(), name.into(), digest.into()])?
        .map(|r| r.text(0)))
}

// ---------------------------------------------------------------------------------------
// Logged models

pub struct LoggedModelRecord {
    pub json: Json,
    pub experiment_id: String,
    pub lifecycle_stage: String,
    pub name: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub model_id: String,
    pub metrics: Vec<LoggedModelMetric>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub attrs: HashMap<&'static str, String>,
}

/// One metric point of a logged model (`dataset_*` empty when the point names no dataset).
#[derive(Debug, Clone)]
pub struct LoggedModelMetric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    pub run_id: String,
    pub dataset_name: String,
    pub dataset_digest: String,
}

impl LoggedModelRecord {
    pub fn field(&self, kind: Kind, key: &str) -> Option<Field<'_>> {
        match kind {
            Kind::Metric => self
                .metrics
                .iter()
                .rfind(|m| m.key == key)
                .map(|m| Field::Num(m.value)),
            Kind::Param => self
                .params
                .iter()
                .find(|p| p.0 == key)
                .map(|p| Field::Str(&p.1)),
            Kind::Tag => self
                .tags
                .iter()
                .find(|t| t.0 == key)
                .map(|t| Field::Str(&t.1)),
            Kind::Attribute => match key {
                "creation_timestamp" | "creation_time" => {
                    Some(Field::Num(self.creation_time as f64))
                }
                "last_updated_timestamp" => Some(Field::Num(self.last_updated_time as f64)),
                k => self.attrs.get(k).map(|v| Field::Str(v)),
            },
            _ => None,
        }
    }
}

const LOGGED_MODEL_COLS: &str = "model_id, experiment_id, name, artifact_location, model_type, source_run_id, status, lifecycle_stage, creation_time, last_updated_time";

fn logged_models_where(
    tx: &mut dyn Tx,
    ws: &str,
    cond: &str,
    params: &[Value],
) -> Result<Vec<LoggedModelRecord>> {
    let rows = tx.query(
        &format!("SELECT {LOGGED_MODEL_COLS} FROM logged_models WHERE {cond}"),
        params,
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = r.text(0);
        let tags = tx.query("SELECT key, value FROM logged_model_tags WHERE workspace = ? AND model_id = ? ORDER BY key", &[ws.into(), id.as_str().into()])?;
        let params = tx.query("SELECT key, value FROM logged_model_params WHERE workspace = ? AND model_id = ? ORDER BY key", &[ws.into(), id.as_str().into()])?;
        let metrics = tx.query(
            "SELECT key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest FROM logged_model_metrics WHERE workspace = ? AND model_id = ? ORDER BY key, step, timestamp",
            &[ws.into(), id.as_str().into()],
        )?;
        let mut info = json!({
            "model_id": id,
            "experiment_id": r.text(1),
            "name": r.text(2),
            "artifact_uri": r.text(3),
            "status": r.text(6),
            "creation_timestamp_ms": r.int(8),
            "last_updated_timestamp_ms": r.int(9),
            "tags": kv_list(&tags, 0, 1),
        });
        if let Some(t) = r.opt_text(4) {
            info["model_type"] = t.into();
        }
        if let Some(s) = r.opt_text(5) {
            info["source_run_id"] = s.into();
        }
        let metric_json: Vec<Json> = metrics
            .iter()
            .map(|m| {
                let mut j = json!({ "key": m.text(0), "value": metric_value(m, 1, 2).to_json(), "timestamp": m.int(3), "step": m.int(4), "model_id": id, "run_id": m.text(5) });
                if !m.text(6).is_empty() {
                    j["dataset_name"] = m.text(6).into();
                    j["dataset_digest"] = m.text(7).into();
                }
                j
            })
            .collect();
        let mut attrs = HashMap::new();
        attrs.insert("name", r.text(2));
        attrs.insert("model_id", id.clone());
        attrs.insert("experiment_id", r.text(1));
        attrs.insert("status", r.text(6));
        if let Some(t) = r.opt_text(4) {
            attrs.insert("model_type", t);
        }
        if let Some(s) = r.opt_text(5) {
            attrs.insert("source_run_id", s);
        }
        out.push(LoggedModelRecord {
            json: json!({ "info": info, "data": { "params": kv_list(&params, 0, 1), "metrics": metric_json } }),
            experiment_id: r.text(1),
            lifecycle_stage: r.text(7),
            name: r.text(2),
            creation_time: r.int(8),
            last_updated_time: r.int(9),
            model_id: id,
            // Every point, as MLflow's logged-model search reads them.
            metrics: metrics
                .iter()
                .map(|m| LoggedModelMetric {
                    key: m.text(0),
                    value: metric_value(m, 1, 2).0,
                    timestamp: m.int(3),
                    step: m.int(4),
                    run_id: m.text(5),
                    dataset_name: m.text(6),
                    dataset_digest: m.text(7),
                })
                .collect(),
            params: params.iter().map(|p| (p.text(0), p.text(1))).collect(),
            tags: tags.iter().map(|t| (t.text(0), t.text(1))).collect(),
            attrs,
        });
    }
    Ok(out)
}

pub fn logged_model(
    tx: &mut dyn Tx,
    ws: &str,
    model_id: &str,
) -> Result<Option<LoggedModelRecord>> {
    Ok(logged_models_where(
        tx,
        ws,
        "model_id = ? AND workspace = ?",
        &[model_id.into(), ws.into()],
    )?
    .pop())
}

pub fn logged_models_in(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_ids: &[String],
) -> Result<Vec<LoggedModelRecord>> {
    if experiment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut params: Vec<Value> = vec![ws.into()];
    params.extend(experiment_ids.iter().map(Value::from));
    logged_models_where(
        tx,
        ws,
        &format!(
            "workspace = ? AND lifecycle_stage = 'active' AND experiment_id IN ({})",
            placeholders(experiment_ids.len())
        ),
        &params,
    )
}

// ---------------------------------------------------------------------------------------
// Model registry

const VERSION_COLS: &str = "name, version, description, user_id, current_stage, source, run_id, run_link, status, storage_location, model_id, creation_time, last_updated_time";

fn model_version_json(tx: &mut dyn Tx, ws: &str, r: &Row) -> Result<Json> {
    let (name, version) = (r.text(0), r.int(1));
    let tags: Vec<(String, String)> = tx
        .query("SELECT key, value FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ? ORDER BY key", &[ws.into(), name.as_str().into(), version.into()])?
        .iter()
        .map(|t| (t.text(0), t.text(1)))
        .collect();
    let aliases: Vec<String> = tx
        .query("SELECT alias FROM registered_model_aliases WHERE workspace = ? AND name = ? AND version = ? ORDER BY alias", &[ws.into(), name.as_str().into(), version.into()])?
        .iter()
        .map(|a| a.text(0))
        .collect();
    Ok(ModelVersionView {
        name: &name,
        version,
        description: r.opt_text(2).as_deref(),
        user_id: &r.text(3),
        current_stage: &r.text(4),
        source: &r.text(5),
        run_id: r.opt_text(6).as_deref(),
        run_link: r.opt_text(7).as_deref(),
        status: &r.text(8),
        model_id: r.opt_text(10).as_deref(),
        creation_time: r.int(11),
        last_updated_time: r.int(12),
        tags: &tags,
        aliases: &aliases,
    }
    .to_json())
}

/// A model version as the API shows it. Tags sorted by key, aliases sorted.
pub struct ModelVersionView<'a> {
    pub name: &'a str,
    pub version: i64,
    pub description: Option<&'a str>,
    pub user_id: &'a str,
    pub current_stage: &'a str,
    pub source: &'a str,
    pub run_id: Option<&'a str>,
    pub run_link: Option<&'a str>,
    pub status: &'a str,
    pub model_id: Option<&'a str>,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub tags: &'a [(String, String)],
    pub aliases: &'a [String],
}

impl ModelVersionView<'_> {
    pub fn to_json(&self) -> Json {
        let mut v = json!({
            "name": self.name,
            "version": self.version.to_string(),
            "creation_timestamp": self.creation_time,
            "last_updated_timestamp": self.last_updated_time,
            "current_stage": self.current_stage,
            "source": self.source,
            "status": self.status,
            "tags": self.tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
            "aliases": self.aliases,
        });
        // MLflow's server records no user for a version; tandem does when it knows who.
        if !self.user_id.is_empty() && self.user_id != "anonymous" {
            v["user_id"] = self.user_id.into();
        }
        // As MLflow's server answers: these three are always there, empty when unset.
        for (field, value) in [
            ("description", self.description),
            ("run_id", self.run_id),
            ("run_link", self.run_link),
        ] {
            v[field] = value.unwrap_or("").into();
        }
        if let Some(s) = self.model_id {
            v["model_id"] = s.into();
        }
        v
    }
}

pub fn model_version(tx: &mut dyn Tx, ws: &str, name: &str, version: i64) -> Result<Option<Json>> {
    match tx.query_one(&format!("SELECT {VERSION_COLS} FROM model_versions WHERE workspace = ? AND name = ? AND version = ? AND deleted_time IS NULL"), &[ws.into(), name.into(), version.into()])? {
        Some(r) => Ok(Some(model_version_json(tx, ws, &r)?)),
        None => Ok(None),
    }
}

pub fn model_versions(tx: &mut dyn Tx, ws: &str, name: Option<&str>) -> Result<Vec<Json>> {
    let rows = match name {
        Some(n) => tx.query(&format!("SELECT {VERSION_COLS} FROM model_versions WHERE workspace = ? AND name = ? AND deleted_time IS NULL ORDER BY version"), &[ws.into(), n.into()])?,
        None => tx.query(&format!("SELECT {VERSION_COLS} FROM model_versions WHERE workspace = ? AND deleted_time IS NULL ORDER BY name, version"), &[ws.into()])?,
    };
    rows.iter().map(|r| model_version_json(tx, ws, r)).collect()
}

/// The highest version ever given to a live registered model (0 before its first), or None
/// if there is no live model of that name.
pub fn max_version_of_live_model(tx: &mut dyn Tx, ws: &str, name: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_one(
            // Not MAX(version): with statistics that lag a fast-growing table, PostgreSQL
            // plans MAX as a scan of every version of the model (0.4 ms at 4,000 versions,
            // inside the workspace's lock); ORDER BY .. LIMIT 1 is always one index probe.
            "SELECT (SELECT version FROM model_versions WHERE workspace = ? AND name = ? ORDER BY version DESC LIMIT 1) FROM registered_models WHERE workspace = ? AND name = ? AND deleted_time IS NULL",
            &[ws.into(), name.into(), ws.into(), name.into()],
        )?
        .map(|r| r.opt_int(0).unwrap_or(0)))
}

pub fn alias_version(tx: &mut dyn Tx, ws: &str, name: &str, alias: &str) -> Result<Option<i64>> {
    Ok(tx.query_one("SELECT version FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?", &[ws.into(), name.into(), alias.into()])?.map(|r| r.int(0)))
}

pub fn registered_model(tx: &mut dyn Tx, ws: &str, name: &str) -> Result<Option<Json>> {
    let Some(r) = tx.query_one("SELECT name, description, creation_time, last_updated_time FROM registered_models WHERE workspace = ? AND name = ? AND deleted_time IS NULL", &[ws.into(), name.into()])? else {
        return Ok(None);
    };
    let tags = tx.query("SELECT key, value FROM registered_model_tags WHERE workspace = ? AND name = ? ORDER BY key", &[ws.into(), name.into()])?;
    let aliases: Vec<Json> = tx
        .query("SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ? ORDER BY alias", &[ws.into(), name.into()])?
        .iter()
        .map(|a| json!({ "alias": a.text(0), "version": a.int(1).to_string() }))
        .collect();
    // MLflow's latest_versions: the newest version in each stage.
    let mut latest: Vec<Json> = Vec::new();
    for v in model_versions(tx, ws, Some(name))?.into_iter().rev() {
        if !latest
            .iter()
            .any(|l| l["current_stage"] == v["current_stage"])
        {
            latest.push(v);
        }
    }
    latest.reverse();
    let mut m = json!({
        "name": r.text(0),
        "creation_timestamp": r.int(2),
        "last_updated_timestamp": r.int(3),
        "latest_versions": latest,
        "tags": kv_list(&tags, 0, 1),
        "aliases": aliases,
    });
    if let Some(d) = r.opt_text(1) {
        m["description"] = d.into();
    }
    Ok(Some(m))
}

pub fn registered_model_names(tx: &mut dyn Tx, ws: &str) -> Result<Vec<String>> {
    Ok(tx.query("SELECT name FROM registered_models WHERE workspace = ? AND deleted_time IS NULL ORDER BY name", &[ws.into()])?.iter().map(|r| r.text(0)).collect())
}

// ---------------------------------------------------------------------------------------
// The change log

pub fn changes(tx: &mut dyn Tx, ws: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
    let rows = tx.query(
        "SELECT seq, hlc, origin, principal, op, payload, checksum, epoch FROM change_log WHERE workspace = ? AND seq > ? ORDER BY seq LIMIT ?",
        &[ws.into(), (after as i64).into(), (limit as i64).into()],
    )?;
    Ok(rows
        .iter()
        .map(|r| Event {
            workspace: ws.to_owned(),
            seq: r.int(0) as u64,
            epoch: r.int(7) as u64,
            hlc: Hlc(r.int(1) as u64),
            origin: r.text(2),
            principal: r.text(3),
            op: r.text(4),
            payload: r.text(5),
            checksum: r.text(6),
        })
        .collect())
}

/// The checksum of the event at `seq` (the genesis checksum for 0).
pub fn checksum_at(tx: &mut dyn Tx, ws: &str, seq: u64) -> Result<Option<(String, Hlc)>> {
    if seq == 0 {
        return Ok(Some((
            tandem_core::event::GENESIS_CHECKSUM.to_owned(),
            Hlc(0),
        )));
    }
    Ok(tx
        .query_one(
            "SELECT checksum, hlc FROM change_log WHERE workspace = ? AND seq = ?",
            &[ws.into(), (seq as i64).into()],
        )?
        .map(|r| (r.text(0), Hlc(r.int(1) as u64))))
}

/// Every state row of a workspace, table by table in key order: two workspaces hold the same
/// state exactly when their dumps are equal.
pub fn dump(tx: &mut dyn Tx, ws: &str) -> Result<Json> {
    let mut out = Map::new();
    for (table, key) in schema::STATE_TABLES {
        let col = if *table == "workspaces" {
            "name"
        } else {
            "workspace"
        };
        let rows = tx.query(
            &format!("SELECT * FROM {table} WHERE {col} = ? ORDER BY {key}"),
            &[ws.into()],
        )?;
        let rows: Vec<Json> = rows
            .into_iter()
            .map(|r| {
                Json::Array(
                    r.0.into_iter()
                        .map(|v| match v {
                            Value::Null => Json::Null,
                            Value::Int(i) => i.into(),
                            Value::Real(f) => F64(f).to_json(),
                            Value::Text(s) => s.into(),
                        })
                        .collect(),
                )
            })
            .collect();
        out.insert((*table).to_owned(), Json::Array(rows));
    }
    Ok(Json::Object(out))
}

/// Everything the `_access` workspace holds (principals, token hashes, assignments), to be
/// decided on in memory.
pub fn access_state(tx: &mut dyn Tx) -> Result<tandem_core::access::AccessState> {
    use tandem_core::access::{
        AccessState, Assignment, Lock, Principal, Scope, Token, ACCESS_WORKSPACE,
    };
    let ws: Value = ACCESS_WORKSPACE.into();
    let principals = tx
        .query(
            "SELECT principal_id, name, kind, service_workspace, password_hash, created_time FROM access_principals WHERE workspace = ?",
            std::slice::from_ref(&ws),
        )?
        .iter()
        .map(|r| Principal {
            id: r.text(0),
            name: r.text(1),
            kind: r.text(2),
            workspace: r.opt_text(3),
            password_hash: r.opt_text(4),
            created_time: r.int(5),
        })
        .collect();
    let tokens = tx
        .query(
            "SELECT token_id, principal_id, token_sha256, label, expires_ms, revoked_time, created_time FROM access_tokens WHERE workspace = ?",
            std::slice::from_ref(&ws),
        )?
        .iter()
        .map(|r| Token {
            id: r.text(0),
            principal_id: r.text(1),
            sha256: r.text(2),
            label: r.text(3),
            expires_ms: r.opt_int(4),
            revoked_time: r.opt_int(5),
            created_time: r.int(6),
        })
        .collect();
    let assignments = tx
        .query(
            "SELECT assignment_id, principal_id, role, scope, until_ms, reason, created_time, eligible_for_ms FROM access_assignments WHERE workspace = ? ORDER BY created_time, assignment_id",
            std::slice::from_ref(&ws),
        )?
        .iter()
        .filter_map(|r| {
            Some(Assignment {
                id: r.text(0),
                principal_id: r.text(1),
                role: r.text(2),
                // Written only after parsing; an unparsable one grants nothing.
                scope: Scope::parse(&r.text(3))?,
                until_ms: r.opt_int(4),
                reason: r.opt_text(5),
                created_time: r.int(6),
                eligible_for_ms: r.opt_int(7),
            })
        })
        .collect();
    let locks = tx
        .query(
            "SELECT lock_id, scope, kind, reason, set_by, created_time FROM access_locks WHERE workspace = ? ORDER BY created_time, lock_id",
            std::slice::from_ref(&ws),
        )?
        .iter()
        .filter_map(|r| {
            Some(Lock {
                id: r.text(0),
                scope: Scope::parse(&r.text(1))?,
                kind: r.text(2),
                reason: r.text(3),
                set_by: r.text(4),
                created_time: r.int(5),
            })
        })
        .collect();
    let role_rows = tx.query(
        "SELECT name, actions, mlflow FROM access_roles WHERE workspace = ?",
        std::slice::from_ref(&ws),
    )?;
    let roles = role_rows
        .iter()
        .map(|r| {
            let actions: Vec<String> = serde_json::from_str(&r.text(1)).unwrap_or_default();
            (r.text(0), actions)
        })
        .collect();
    let mlflow_roles = role_rows
        .iter()
        .filter_map(|r| {
            let m = serde_json::from_str(&r.opt_text(2)?).ok()?;
            Some((r.text(0), m))
        })
        .collect();
    let members = tx
        .query(
            "SELECT group_id, member_id FROM access_members WHERE workspace = ? ORDER BY group_id, member_id",
            std::slice::from_ref(&ws),
        )?
        .iter()
        .map(|r| (r.text(0), r.text(1)))
        .collect();
    Ok(AccessState::from_parts(principals, tokens, assignments)
        .with_locks(locks)
        .with_roles_and_members(roles, members)
        .with_mlflow_roles(mlflow_roles))
}

/// Where a request's object lives, for access decisions narrower than a workspace: the
/// experiment of a run, of a logged model, or of an experiment name.
pub fn experiment_of(
    tx: &mut dyn Tx,
    ws: &str,
    kind: ObjectKey,
    key: &str,
) -> Result<Option<String>> {
    let sql = match kind {
        ObjectKey::Run => "SELECT experiment_id FROM runs WHERE workspace = ? AND run_id = ?",
        ObjectKey::LoggedModel => {
            "SELECT experiment_id FROM logged_models WHERE workspace = ? AND model_id = ?"
        }
        ObjectKey::ExperimentName => {
            "SELECT experiment_id FROM experiments WHERE workspace = ? AND name = ?"
        }
    };
    Ok(tx
        .query_one(sql, &[ws.into(), key.into()])?
        .map(|r| r.text(0)))
}

#[derive(Debug, Clone, Copy)]
pub enum ObjectKey {
    Run,
    LoggedModel,
    ExperimentName,
}

/// One of MLflow 3's GenAI objects (`genai_objects`: assessments, datasets, scorers, issues,
/// ...) by kind and ID: its JSON document.
pub fn genai_object(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    id: &str,
) -> Result<Option<serde_json::Value>> {
    Ok(tx
        .query_one(
            "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ? AND id = ?",
            &[ws.into(), kind.into(), id.into()],
        )?
        .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(serde_json::Value::Null)))
}

/// The documents of the GenAI objects of `kind` under `parent` (an experiment, a queue).
pub fn genai_objects_under(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    parent: &str,
) -> Result<Vec<serde_json::Value>> {
    Ok(tx
        .query(
            "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ? AND parent = ?",
            &[ws.into(), kind.into(), parent.into()],
        )?
        .iter()
        .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(serde_json::Value::Null))
        .collect())
}

/// The document of the GenAI object of `kind` under `parent` stored with `name`.
pub fn genai_object_named(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    parent: &str,
    name: &str,
) -> Result<Option<serde_json::Value>> {
    Ok(tx
        .query_one(
            "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ? AND parent = ? AND name = ?",
            &[ws.into(), kind.into(), parent.into(), name.into()],
        )?
        .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(serde_json::Value::Null)))
}
