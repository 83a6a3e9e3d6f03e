//! Experiments, runs, metrics, params, tags, inputs and outputs.

use super::{page, random_bytes, random_name, random_u32, view_type, Ctx, Req};
use crate::store::queries::{self, Parts, RunRecord};
use crate::store::{Decision, Tx};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use tandem_core::event::{Dataset, DatasetInput, KeyValue, MetricPoint, ModelOutput};
use tandem_core::ids::{self, DEFAULT_EXPERIMENT_ID};
use tandem_core::search::{self, compare_fields, Field, Kind};
use tandem_core::{uri, validate};
use tandem_core::{MlflowError, Op, Result};

pub(crate) fn experiment_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("No Experiment with id={id} exists"))
}

/// The experiment, active; a deleted one is as missing (what MLflow's GenAI calls answer).
pub(crate) fn live_experiment(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Json> {
    match queries::experiment(tx, ws, id)? {
        Some(e) if e["lifecycle_stage"] == "active" => Ok(e),
        _ => Err(experiment_not_found(id).into()),
    }
}

pub(crate) fn run_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Run with id={id} not found"))
}

/// A run's artifact root URI (deleted runs too, as MLflow's get-artifact serves them).
pub fn run_artifact_root(ctx: &Ctx, run_id: &str) -> Result<String> {
    ctx.read(|tx| queries::run_state(tx, &ctx.workspace, run_id))?
        .map(|r| r.artifact_uri)
        .ok_or_else(|| run_not_found(run_id))
}

fn experiment_id_param(req: &Req) -> Result<String> {
    // Clients send experiment IDs as strings; accept integers too.
    match req.opt_i64("experiment_id") {
        Ok(Some(n)) if !matches!(req.0.get("experiment_id"), Some(Json::String(_))) => {
            Ok(n.to_string())
        }
        _ => req.str("experiment_id"),
    }
}

/// The active experiment, or the error MLflow gives for a missing or deleted one.
pub(crate) fn active_experiment(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Json> {
    let exp = queries::experiment(tx, ws, id)?.ok_or_else(|| experiment_not_found(id))?;
    if exp["lifecycle_stage"] != "active" {
        return Err(MlflowError::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        ))
        .into());
    }
    Ok(exp)
}

/// The run, which must exist in this workspace and be active.
pub(crate) fn active_run(
    tx: &mut dyn Tx,
    ws: &str,
    run_id: &str,
) -> crate::store::Result<queries::RunState> {
    let run = queries::run_state(tx, ws, run_id)?.ok_or_else(|| run_not_found(run_id))?;
    if run.lifecycle_stage != "active" {
        return Err(MlflowError::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {}.",
            run.lifecycle_stage
        ))
        .into());
    }
    Ok(run)
}

fn run_id_param(req: &Req) -> Result<String> {
    let id = match req.opt_str("run_id")? {
        Some(id) if !id.is_empty() => id,
        _ => match req.opt_str("run_uuid")? {
            Some(id) if !id.is_empty() => id,
            _ => return Err(super::missing("run_id")),
        },
    };
    validate::run_id(&id)?;
    Ok(id)
}

/// The artifact root the server hands out for a new experiment: relative to the workspace's
/// artifact root and served through `mlflow-artifacts`.
fn default_artifact_location(experiment_id: &str) -> String {
    format!("mlflow-artifacts:/{experiment_id}")
}

/// Creates MLflow's default experiment "0" in a new workspace.
pub fn default_experiment_op(time: i64) -> Op {
    Op::CreateExperiment {
        experiment_id: DEFAULT_EXPERIMENT_ID.to_owned(),
        name: "Default".to_owned(),
        artifact_location: default_artifact_location(DEFAULT_EXPERIMENT_ID),
        tags: vec![],
        time,
    }
}

// ---------------------------------------------------------------------------------------
// Experiments

/// A name held by a live experiment is taken. One held by a deleted experiment is reusable:
/// the deleted one steps aside, renamed "<name> (deleted <its id>)", and stays restorable
/// under that name until it is purged.
fn free_experiment_name(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    name: &str,
    now: i64,
) -> crate::store::Result<Vec<Op>> {
    let Some(old) = queries::experiment_by_name(tx, ws, name)? else {
        return Ok(Vec::new());
    };
    if old["lifecycle_stage"] == "active" {
        return Err(MlflowError::exists(format!("Experiment(name={name}) already exists.")).into());
    }
    let id = old["experiment_id"].as_str().unwrap_or_default().to_owned();
    let mut new_name = format!("{name} (deleted {id})");
    while queries::experiment_by_name(tx, ws, &new_name)?.is_some() {
        new_name.push('~');
    }
    Ok(vec![Op::RenameExperiment {
        experiment_id: id,
        new_name,
        time: now,
    }])
}

/// A client-given experiment artifact location, checked and resolved as MLflow's server does
/// (`_validate_storage_location_uri`, then `resolve_uri_if_local` against the server's working
/// directory). tandem never reads or writes such a location itself: the client does, through
/// its own artifact repository; tandem's own artifacts are always below its artifact stores.
fn artifact_location(loc: &str) -> Result<String> {
    const MAX_LEN: usize = 2048;
    uri::check_artifact_location(
        loc,
        "artifact_location",
        super::allowed_host_schemes(),
        MAX_LEN,
    )?;
    let cwd = std::env::current_dir().map_err(|e| {
        MlflowError::internal(format!(
            "the server's working directory cannot be read: {e}"
        ))
    })?;
    let resolved = uri::resolve_local_location(loc, &cwd.to_string_lossy())?;
    uri::check_artifact_location_length(&resolved, MAX_LEN)?;
    Ok(resolved)
}

/// Inside a write: the ID of the live experiment named `name`, or a new one's with the ops
/// that create it (MLflow's get-or-create, as its gateway does for an endpoint's traces).
pub fn experiment_get_or_create(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    name: &str,
    tags: Vec<KeyValue>,
    now: i64,
) -> crate::store::Result<(String, Vec<Op>)> {
    if let Some(e) = queries::experiment_by_name(tx, ws, name)? {
        if e["lifecycle_stage"] == "active" {
            return Ok((
                e["experiment_id"].as_str().unwrap_or_default().to_owned(),
                Vec::new(),
            ));
        }
    }
    let mut ops = free_experiment_name(tx, ws, name, now)?;
    let mut id = ids::experiment_id(now as u64, random_u32());
    while queries::experiment(tx, ws, &id)?.is_some() {
        id = ids::experiment_id(now as u64, random_u32());
    }
    ops.push(Op::CreateExperiment {
        experiment_id: id.clone(),
        name: name.to_owned(),
        artifact_location: default_artifact_location(&id),
        tags,
        time: now,
    });
    Ok((id, ops))
}

pub fn create_experiment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let artifact_location = match req.opt_str("artifact_location")?.filter(|s| !s.is_empty()) {
        Some(loc) => Some(artifact_location(&loc)?),
        None => None,
    };
    let tags = req.kv_list("tags")?;
    validate::experiment_name(&name)?;
    for t in &tags {
        validate::experiment_tag(&t.key, &t.value)?;
    }
    let now = ctx.now();
    ctx.write(|tx| {
        let mut ops = free_experiment_name(tx, &ctx.workspace, &name, now)?;
        // A fresh ID that no experiment of this workspace has (a collision needs the same
        // millisecond and the same 22 random bits).
        let mut id = ids::experiment_id(now as u64, random_u32());
        while queries::experiment(tx, &ctx.workspace, &id)?.is_some() {
            id = ids::experiment_id(now as u64, random_u32());
        }
        let loc = artifact_location
            .clone()
            .unwrap_or_else(|| default_artifact_location(&id));
        ops.push(Op::CreateExperiment {
            experiment_id: id.clone(),
            name: name.clone(),
            artifact_location: loc,
            tags: tags.clone(),
            time: now,
        });
        Ok(Decision::changes(json!({ "experiment_id": id }), ops))
    })
}

pub fn get_experiment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    let exp = ctx
        .read(|tx| queries::experiment(tx, &ctx.workspace, &id))?
        .ok_or_else(|| experiment_not_found(&id))?;
    Ok(json!({ "experiment": exp }))
}

pub fn get_experiment_by_name(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("experiment_name")?;
    let exp = ctx
        .read(|tx| queries::experiment_by_name(tx, &ctx.workspace, &name))?
        .ok_or_else(|| {
            MlflowError::not_found(format!("Could not find experiment with name '{name}'"))
        })?;
    Ok(json!({ "experiment": exp }))
}

fn exp_field<'a>(e: &'a Json, kind: Kind, key: &str) -> Option<Field<'a>> {
    match kind {
        Kind::Tag => e["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str())
            .map(Field::Str),
        Kind::Attribute => match key {
            "creation_time" | "last_update_time" => e[key].as_i64().map(|n| Field::Num(n as f64)),
            _ => e[key].as_str().map(Field::Str),
        },
        _ => None,
    }
}

pub fn search_experiments(ctx: &Ctx, req: &Req) -> Result<Json> {
    // No default: MLflow's server refuses a search without `max_results` (the client always
    // sends one), and so does tandem.
    let max = req.max_results(0, validate::MAX_RESULTS_SEARCH_EXPERIMENTS)?;
    let offset = req.page_offset()?;
    let view = view_type(req, "view_type")?;
    let clauses = search::parse_filter(
        &req.opt_str("filter")?.unwrap_or_default(),
        &search::EXPERIMENTS,
    )?;
    let mut order = search::parse_order_by(&req.str_list("order_by")?, &search::EXPERIMENTS)?;
    // MLflow's default: newest first, then by ID.
    if order.is_empty() {
        order.push(search::OrderKey {
            kind: Kind::Attribute,
            key: "creation_time".into(),
            ascending: false,
        });
    }
    let mut exps: Vec<Json> = ctx
        .read(|tx| queries::experiments(tx, &ctx.workspace, view))?
        .into_iter()
        .filter(|e| {
            clauses
                .iter()
                .all(|c| search::matches(c, exp_field(e, c.kind, &c.key)))
        })
        .collect();
    exps.sort_by(|a, b| {
        order
            .iter()
            .map(|o| {
                compare_fields(
                    exp_field(a, o.kind, &o.key),
                    exp_field(b, o.kind, &o.key),
                    o.ascending,
                )
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| {
                a["experiment_id"]
                    .as_str()
                    .cmp(&b["experiment_id"].as_str())
            })
    });
    let (exps, next) = page(exps, offset, max);
    let mut out = json!({ "experiments": exps });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

pub fn update_experiment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    let new_name = req.str("new_name")?;
    validate::experiment_name(&new_name)?;
    let now = ctx.now();
    ctx.write(|tx| {
        let exp = queries::experiment(tx, &ctx.workspace, &id)?
            .ok_or_else(|| experiment_not_found(&id))?;
        if exp["lifecycle_stage"] != "active" {
            return Err(MlflowError::invalid("Cannot rename a non-active experiment.").into());
        }
        if exp["name"] == new_name.as_str() {
            return Ok(Decision::no_change(json!({})));
        }
        let mut ops = free_experiment_name(tx, &ctx.workspace, &new_name, now)?;
        ops.push(Op::RenameExperiment {
            experiment_id: id.clone(),
            new_name: new_name.clone(),
            time: now,
        });
        Ok(Decision::changes(json!({}), ops))
    })
}

pub fn delete_experiment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    if id == DEFAULT_EXPERIMENT_ID {
        return Err(MlflowError::invalid(
            "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
        ));
    }
    let now = ctx.now();
    ctx.write(|tx| {
        let exp = queries::experiment(tx, &ctx.workspace, &id)?
            .ok_or_else(|| experiment_not_found(&id))?;
        if exp["lifecycle_stage"] == "deleted" {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteExperiment {
                experiment_id: id.clone(),
                time: now,
            },
        ))
    })
}

pub fn restore_experiment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        let exp = queries::experiment(tx, &ctx.workspace, &id)?
            .ok_or_else(|| experiment_not_found(&id))?;
        if exp["lifecycle_stage"] == "active" {
            return Err(MlflowError::invalid(format!(
                "Cannot restore an active experiment. Experiment {id} is already active."
            ))
            .into());
        }
        Ok(Decision::change(
            json!({}),
            Op::RestoreExperiment {
                experiment_id: id.clone(),
                time: now,
            },
        ))
    })
}

pub fn set_experiment_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?.unwrap_or_default();
    validate::experiment_tag(&key, &value)?;
    let now = ctx.now();
    ctx.write(|tx| {
        active_experiment(tx, &ctx.workspace, &id)?;
        Ok(Decision::change(
            json!({}),
            Op::SetExperimentTag {
                experiment_id: id.clone(),
                key: key.clone(),
                value: value.clone(),
                time: now,
            },
        ))
    })
}

pub fn delete_experiment_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = experiment_id_param(req)?;
    let key = req.str("key")?;
    let now = ctx.now();
    ctx.write(|tx| {
        let exp = active_experiment(tx, &ctx.workspace, &id)?;
        if !exp["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == key.as_str()))
        {
            return Err(MlflowError::not_found(format!(
                "No tag with name: {key} in experiment with id {id}"
            ))
            .into());
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteExperimentTag {
                experiment_id: id.clone(),
                key: key.clone(),
                time: now,
            },
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Runs

pub fn create_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = match req.has("experiment_id") {
        true => experiment_id_param(req)?,
        false => DEFAULT_EXPERIMENT_ID.to_owned(),
    };
    let mut tags = req.kv_list("tags")?;
    for t in &tags {
        validate::tag(&t.key, &t.value)?;
    }
    let tag_name = tags
        .iter()
        .find(|t| t.key == "mlflow.runName")
        .map(|t| t.value.clone());
    let given_name = req.opt_str("run_name")?.filter(|s| !s.is_empty());
    if let (Some(a), Some(b)) = (&given_name, &tag_name) {
        if a != b {
            return Err(MlflowError::invalid(format!("Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{a}', mlflow.runName='{b}').")));
        }
    }
    let run_name = given_name.or(tag_name).unwrap_or_else(random_name);
    validate::length("run_name", validate::MAX_TAG_VAL_LENGTH, &run_name)?;
    if !tags.iter().any(|t| t.key == "mlflow.runName") {
        tags.push(KeyValue {
            key: "mlflow.runName".into(),
            value: run_name.clone(),
        });
    }
    let user_id = req
        .opt_str("user_id")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ctx.principal.clone());
    let start_time = req.opt_i64("start_time")?.unwrap_or_else(|| ctx.now());
    let run_id = ids::run_id(random_bytes());
    let record = ctx.write(|tx| {
        let exp = active_experiment(tx, &ctx.workspace, &experiment_id)?;
        let artifact_uri = format!(
            "{}/{run_id}/artifacts",
            exp["artifact_location"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
        );
        let op = Op::CreateRun {
            run_id: run_id.clone(),
            experiment_id: experiment_id.clone(),
            user_id: user_id.clone(),
            run_name: run_name.clone(),
            start_time,
            artifact_uri: artifact_uri.clone(),
            tags: tags.clone(),
        };
        let record = RunRecord {
            run_id: run_id.clone(),
            experiment_id: experiment_id.clone(),
            run_name: run_name.clone(),
            user_id: user_id.clone(),
            status: "RUNNING".into(),
            start_time: Some(start_time),
            artifact_uri,
            lifecycle_stage: "active".into(),
            tags: {
                let mut t: Vec<(String, String)> = tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect();
                t.sort();
                t
            },
            ..Default::default()
        };
        Ok(Decision::change(record, op))
    })?;
    Ok(json!({ "run": record.to_json() }))
}

pub fn get_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let run = ctx
        .read(|tx| queries::run(tx, &ctx.workspace, &run_id))?
        .ok_or_else(|| run_not_found(&run_id))?;
    Ok(json!({ "run": run.to_json() }))
}

const RUN_STATUSES: &[&str] = &["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

fn run_status(req: &Req) -> Result<Option<String>> {
    match req.0.get("status") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i @ 1..=5) => Ok(Some(RUN_STATUSES[(i - 1) as usize].to_owned())),
            _ => Err(MlflowError::invalid(format!(
                "Invalid value {n} for parameter 'status' supplied"
            ))),
        },
        Some(Json::String(s)) if RUN_STATUSES.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(v) => Err(MlflowError::invalid(format!(
            "Invalid value {v} for parameter 'status' supplied: expected one of {RUN_STATUSES:?}"
        ))),
    }
}

pub fn update_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let status = run_status(req)?;
    let end_time = req.opt_i64("end_time")?;
    let run_name = req.opt_str("run_name")?.filter(|s| !s.is_empty());
    if let Some(n) = &run_name {
        validate::length("run_name", validate::MAX_TAG_VAL_LENGTH, n)?;
    }
    ctx.write(|tx| {
        active_run(tx, &ctx.workspace, &run_id)?;
        let op = Op::UpdateRun {
            run_id: run_id.clone(),
            status: status.clone(),
            end_time,
            run_name: run_name.clone(),
        };
        Ok(Decision::change((), op))
    })?;
    let run = ctx
        .read(|tx| queries::run(tx, &ctx.workspace, &run_id))?
        .ok_or_else(|| run_not_found(&run_id))?;
    Ok(json!({ "run_info": run.to_json()["info"] }))
}

pub fn delete_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        let run = queries::run_state(tx, &ctx.workspace, &run_id)?
            .ok_or_else(|| run_not_found(&run_id))?;
        if run.lifecycle_stage == "deleted" {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteRun {
                run_id: run_id.clone(),
                time: now,
            },
        ))
    })
}

pub fn restore_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    ctx.write(|tx| {
        let run = queries::run_state(tx, &ctx.workspace, &run_id)?
            .ok_or_else(|| run_not_found(&run_id))?;
        if run.lifecycle_stage == "active" {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::RestoreRun {
                run_id: run_id.clone(),
            },
        ))
    })
}

fn metric_point(m: &Req) -> Result<MetricPoint> {
    let key = m.opt_str("key")?.unwrap_or_default();
    validate::metric(&key)?;
    let value = m.opt_f64("value")?.ok_or_else(|| super::missing("value"))?;
    let timestamp = m
        .opt_i64("timestamp")?
        .ok_or_else(|| super::missing("timestamp"))?;
    let step = m.opt_i64("step")?.unwrap_or(0);
    Ok(MetricPoint {
        key,
        value,
        timestamp,
        step,
        model_id: m.opt_str("model_id")?.filter(|s| !s.is_empty()),
        dataset_name: m.opt_str("dataset_name")?.filter(|s| !s.is_empty()),
        dataset_digest: m.opt_str("dataset_digest")?.filter(|s| !s.is_empty()),
    })
}

/// Validates and logs a batch; the shared path of log-metric, log-parameter, set-tag and
/// log-batch. Params already logged with the same value are dropped; a different value is
/// MLflow's INVALID_PARAMETER_VALUE, and nothing of the batch is written.
fn write_batch(
    ctx: &Ctx,
    run_id: &str,
    metrics: Vec<MetricPoint>,
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
) -> Result<Json> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in &params {
        validate::param(&p.key, &p.value)?;
        if let Some(prev) = seen.insert(&p.key, &p.value) {
            if prev != p.value {
                return Err(MlflowError::invalid(format!(
                    "Duplicate parameter keys have been submitted: [{}]. Please ensure the request contains only one param value per param key.",
                    p.key
                )));
            }
        }
    }
    for t in &tags {
        validate::tag(&t.key, &t.value)?;
    }
    ctx.write(|tx| {
        active_run(tx, &ctx.workspace, run_id)?;
        let mut new_params = Vec::new();
        for p in &params {
            match queries::param(tx, &ctx.workspace, run_id, &p.key)? {
                Some(old) if old == p.value => {}
                Some(old) => {
                    return Err(MlflowError::invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                        p.key, p.value
                    ))
                    .into())
                }
                None if new_params.iter().any(|n: &KeyValue| n.key == p.key) => {}
                None => new_params.push(p.clone()),
            }
        }
        if metrics.is_empty() && new_params.is_empty() && tags.is_empty() {
            return Ok(Decision::no_change(json!({})));
        }
        let op = Op::LogBatch { run_id: run_id.to_owned(), metrics: metrics.clone(), params: new_params, tags: tags.clone() };
        Ok(Decision::change(json!({}), op))
    })
}

pub fn log_metric(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let m = metric_point(req)?;
    write_batch(ctx, &run_id, vec![m], vec![], vec![])
}

pub fn log_param(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let key = req.opt_str("key")?.unwrap_or_default();
    // As MLflow: a param without a value is the empty string.
    let value = req.opt_str("value")?.unwrap_or_default();
    write_batch(ctx, &run_id, vec![], vec![KeyValue { key, value }], vec![])
}

pub fn set_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?.unwrap_or_default();
    write_batch(ctx, &run_id, vec![], vec![], vec![KeyValue { key, value }])
}

pub fn delete_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let key = req.str("key")?;
    ctx.write(|tx| {
        active_run(tx, &ctx.workspace, &run_id)?;
        let exists = tx
            .query_one(
                "SELECT 1 FROM tags WHERE workspace = ? AND run_id = ? AND key = ?",
                &[
                    ctx.workspace.as_str().into(),
                    run_id.as_str().into(),
                    key.as_str().into(),
                ],
            )?
            .is_some();
        if !exists {
            return Err(MlflowError::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            ))
            .into());
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteTag {
                run_id: run_id.clone(),
                key: key.clone(),
            },
        ))
    })
}

pub fn log_batch(ctx: &Ctx, req: &Req) -> Result<Json> {
    // MLflow's order: the run, each entry's required fields (named by their place in the
    // batch: `metrics[0].timestamp`), then the batch's size limits.
    let run_id = run_id_param(req)?;
    let metrics = req.list("metrics")?;
    for (i, m) in metrics.iter().enumerate() {
        for field in ["key", "value", "timestamp"] {
            let present = match m.0.get(field) {
                None | Some(Json::Null) => false,
                Some(Json::String(s)) => !s.is_empty(),
                Some(_) => true,
            };
            if !present {
                return Err(super::missing(&format!("metrics[{i}].{field}")));
            }
        }
    }
    for (list, what) in [("params", "params"), ("tags", "tags")] {
        for (i, kv) in req.list(list)?.iter().enumerate() {
            super::nested(&format!("{what}[{i}]"), kv.str("key"))?;
        }
    }
    let params = req.kv_list("params")?;
    let tags = req.kv_list("tags")?;
    if metrics.len() > validate::MAX_METRICS_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {} metrics. Got {} metrics.",
            validate::MAX_METRICS_PER_BATCH,
            metrics.len()
        )));
    }
    if params.len() > validate::MAX_PARAMS_TAGS_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {} params. Got {} params.",
            validate::MAX_PARAMS_TAGS_PER_BATCH,
            params.len()
        )));
    }
    if tags.len() > validate::MAX_PARAMS_TAGS_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {} tags. Got {} tags.",
            validate::MAX_PARAMS_TAGS_PER_BATCH,
            tags.len()
        )));
    }
    if metrics.len() + params.len() + tags.len() > validate::MAX_ENTITIES_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {} total metrics, params, and tags.",
            validate::MAX_ENTITIES_PER_BATCH
        )));
    }
    let metrics = metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| super::nested(&format!("metrics[{i}]"), metric_point(m)))
        .collect::<Result<Vec<_>>>()?;
    write_batch(ctx, &run_id, metrics, params, tags)
}

pub fn log_inputs(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let mut datasets = Vec::new();
    for input in req.list("datasets")? {
        let d = input
            .obj("dataset")?
            .ok_or_else(|| super::missing("dataset"))?;
        let dataset = Dataset {
            name: d.str("name")?,
            digest: d.str("digest")?,
            source_type: d.str("source_type")?,
            source: d.str("source")?,
            schema: d.opt_str("schema")?,
            profile: d.opt_str("profile")?,
        };
        validate::length(
            "Dataset name",
            validate::MAX_DATASET_NAME_SIZE,
            &dataset.name,
        )?;
        validate::length(
            "Dataset digest",
            validate::MAX_DATASET_DIGEST_SIZE,
            &dataset.digest,
        )?;
        validate::length(
            "Dataset source",
            validate::MAX_DATASET_SOURCE_SIZE,
            &dataset.source,
        )?;
        validate::length(
            "Dataset schema",
            validate::MAX_DATASET_SCHEMA_SIZE,
            dataset.schema.as_deref().unwrap_or(""),
        )?;
        validate::length(
            "Dataset profile",
            validate::MAX_DATASET_PROFILE_SIZE,
            dataset.profile.as_deref().unwrap_or(""),
        )?;
        let tags = input.kv_list("tags")?;
        for t in &tags {
            validate::length("Input tag key", validate::MAX_INPUT_TAG_KEY_SIZE, &t.key)?;
            validate::length(
                "Input tag value",
                validate::MAX_INPUT_TAG_VALUE_SIZE,
                &t.value,
            )?;
        }
        datasets.push((dataset, tags));
    }
    let model_ids = req
        .list("models")?
        .iter()
        .map(|m| m.str("model_id"))
        .collect::<Result<Vec<_>>>()?;
    ctx.write(|tx| {
        let run = active_run(tx, &ctx.workspace, &run_id)?;
        let mut inputs = Vec::new();
        for (dataset, tags) in &datasets {
            // A dataset seen before in this experiment keeps its ID.
            let dataset_id = match queries::dataset_id(
                tx,
                &ctx.workspace,
                &run.experiment_id,
                &dataset.name,
                &dataset.digest,
            )? {
                Some(id) => id,
                None => match inputs.iter().find(|i: &&DatasetInput| {
                    i.dataset.name == dataset.name && i.dataset.digest == dataset.digest
                }) {
                    Some(i) => i.dataset_id.clone(),
                    None => ids::dataset_id(random_bytes()),
                },
            };
            inputs.push(DatasetInput {
                dataset_id,
                dataset: dataset.clone(),
                tags: tags.clone(),
            });
        }
        for m in &model_ids {
            if queries::logged_model(tx, &ctx.workspace, m)?.is_none() {
                return Err(MlflowError::not_found(format!(
                    "Logged model with ID '{m}' not found."
                ))
                .into());
            }
        }
        if inputs.is_empty() && model_ids.is_empty() {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::LogInputs {
                run_id: run_id.clone(),
                datasets: inputs,
                model_ids: model_ids.clone(),
            },
        ))
    })
}

pub fn log_outputs(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let models = req
        .list("models")?
        .iter()
        .map(|m| {
            Ok(ModelOutput {
                model_id: m.str("model_id")?,
                step: m.opt_i64("step")?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ctx.write(|tx| {
        active_run(tx, &ctx.workspace, &run_id)?;
        for m in &models {
            if queries::logged_model(tx, &ctx.workspace, &m.model_id)?.is_none() {
                return Err(MlflowError::not_found(format!(
                    "Logged model with ID '{}' not found.",
                    m.model_id
                ))
                .into());
            }
        }
        if models.is_empty() {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::LogOutputs {
                run_id: run_id.clone(),
                models: models.clone(),
            },
        ))
    })
}

/// MLflow 2's log-model records the model's metadata as the `mlflow.log-model.history` tag.
pub fn log_model_legacy(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let model_json = req.str("model_json")?;
    let model: Json = serde_json::from_str(&model_json)
        .map_err(|e| MlflowError::invalid(format!("Invalid model_json: {e}")))?;
    let history = ctx.read(|tx| Ok(tx.query_one("SELECT value FROM tags WHERE workspace = ? AND run_id = ? AND key = 'mlflow.log-model.history'", &[ctx.workspace.as_str().into(), run_id.as_str().into()])?.map(|r| r.text(0))))?;
    let mut list: Vec<Json> = history
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default();
    list.push(model);
    let value = Json::Array(list).to_string();
    write_batch(
        ctx,
        &run_id,
        vec![],
        vec![],
        vec![KeyValue {
            key: "mlflow.log-model.history".into(),
            value,
        }],
    )
}

fn run_matches(run: &RunRecord, c: &search::Clause) -> bool {
    if c.kind == Kind::Dataset {
        // A run matches a dataset clause when any of its inputs does.
        return run.datasets.iter().any(|d| {
            let v = match c.key.as_str() {
                "name" => Some(d.0.as_str()),
                "digest" => Some(d.1.as_str()),
                _ => d.2.as_deref(),
            };
            search::matches(c, v.map(Field::Str))
        });
    }
    let field = run.field(c.kind, &c.key);
    // `tags.mlflow.runName` and `attributes.run_name` are one thing.
    let field = match (c.kind, c.key.as_str(), field) {
        (Kind::Tag, "mlflow.runName", None) => Some(Field::Str(&run.run_name)),
        (_, _, f) => f,
    };
    search::matches(c, field)
}

pub fn search_runs(ctx: &Ctx, req: &Req) -> Result<Json> {
    search_runs_with(ctx, req, true)
}

/// `search_runs` rendered straight to JSON text (what the HTTP endpoint serves: a page may
/// hold 1,000 runs, too many to build as JSON values first).
pub fn search_runs_text(ctx: &Ctx, req: &Req) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Page<'a> {
        #[serde(skip_serializing_if = "<[RunRecord]>::is_empty")]
        runs: &'a [RunRecord],
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<&'a str>,
    }
    let (runs, next) = search_page(ctx, req, true)?;
    serde_json::to_string(&Page {
        runs: &runs,
        next_page_token: next.as_deref(),
    })
    .map_err(|e| MlflowError::internal(e.to_string()))
}

/// `in_sql`: whether searches of the shapes SQL answers exactly may be answered there (tests
/// compare both ways).
pub fn search_runs_with(ctx: &Ctx, req: &Req, in_sql: bool) -> Result<Json> {
    let (runs, next) = search_page(ctx, req, in_sql)?;
    let mut out = json!({ "runs": runs.iter().map(RunRecord::to_json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

/// One page of a run search and the token of the next.
fn search_page(ctx: &Ctx, req: &Req, in_sql: bool) -> Result<(Vec<RunRecord>, Option<String>)> {
    let experiment_ids = req.str_list("experiment_ids")?;
    let max = req.max_results(1000, validate::MAX_RESULTS_SEARCH_RUNS)?;
    let offset = req.page_offset()?;
    let view = view_type(req, "run_view_type")?;
    let clauses = search::parse_filter(&req.opt_str("filter")?.unwrap_or_default(), &search::RUNS)?;
    let order = search::parse_order_by(&req.str_list("order_by")?, &search::RUNS)?;
    let needs = |k: Kind| clauses.iter().any(|c| c.kind == k) || order.iter().any(|o| o.kind == k);
    let parts = Parts {
        metrics: needs(Kind::Metric),
        params: needs(Kind::Param),
        tags: needs(Kind::Tag),
        inputs: needs(Kind::Dataset),
        outputs: false,
    };
    // Candidates carry only the keys the filter and ordering look at; the page is completed after.
    let keys_of = |k: Kind| -> Vec<String> {
        let mut v: Vec<String> = clauses
            .iter()
            .filter(|c| c.kind == k)
            .map(|c| c.key.clone())
            .chain(order.iter().filter(|o| o.kind == k).map(|o| o.key.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    // Only the ID and start time of each candidate are needed unless another attribute is.
    let lean = !clauses
        .iter()
        .map(|c| (c.kind, c.key.as_str()))
        .chain(order.iter().map(|o| (o.kind, o.key.as_str())))
        .any(|(k, key)| {
            k == Kind::Attribute && !matches!(key, "run_id" | "start_time" | "created")
        });
    let keys = queries::Keys {
        metrics: keys_of(Kind::Metric),
        params: keys_of(Kind::Param),
        tags: keys_of(Kind::Tag),
    };
    let runs = ctx.read(|tx| {
        if in_sql {
            if let Some((mut page_runs, more)) = queries::search_in_sql(
                tx,
                &ctx.workspace,
                &experiment_ids,
                view,
                &clauses,
                &order,
                offset,
                max,
            )? {
                queries::complete_runs(tx, &ctx.workspace, &mut page_runs)?;
                let next =
                    more.then(|| tandem_core::search::encode_page_token(offset + page_runs.len()));
                return Ok((page_runs, next));
            }
        }
        let mut runs = queries::runs_in(
            tx,
            &ctx.workspace,
            &experiment_ids,
            view,
            parts,
            &keys,
            lean,
        )?;
        runs.retain(|r| clauses.iter().all(|c| run_matches(r, c)));
        runs.sort_by(|a, b| {
            order
                .iter()
                .map(|o| {
                    compare_fields(
                        a.field(o.kind, &o.key),
                        b.field(o.kind, &o.key),
                        o.ascending,
                    )
                })
                .find(|o| o.is_ne())
                // MLflow's tie-break: newest first, then by run ID.
                .unwrap_or_else(|| {
                    compare_fields(
                        a.start_time.map(|t| Field::Num(t as f64)),
                        b.start_time.map(|t| Field::Num(t as f64)),
                        false,
                    )
                    .then_with(|| a.run_id.cmp(&b.run_id))
                })
        });
        let (mut page_runs, next) = page(runs, offset, max);
        if lean {
            queries::fill_info(tx, &ctx.workspace, &mut page_runs)?;
        }
        queries::complete_runs(tx, &ctx.workspace, &mut page_runs)?;
        Ok((page_runs, next))
    })?;
    Ok(runs)
}

pub fn get_metric_history(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let key = req.str("metric_key")?;
    let offset = req.page_offset()?;
    let max = match req.opt_i64("max_results")? {
        None => usize::MAX,
        Some(n) if n > 0 => n as usize,
        Some(n) => {
            return Err(MlflowError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied."
            )))
        }
    };
    let metrics = ctx.read(|tx| {
        queries::run_state(tx, &ctx.workspace, &run_id)?.ok_or_else(|| run_not_found(&run_id))?;
        queries::metric_history(tx, &ctx.workspace, &run_id, &key)
    })?;
    let (metrics, next) = page(metrics, offset, max);
    let mut out = json!({ "metrics": metrics });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

pub fn get_metric_history_bulk_interval(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_ids = req.str_list("run_ids")?;
    if run_ids.is_empty() {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulkInterval request must specify at least one run_id.",
        ));
    }
    if run_ids.len() > 100 {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulkInterval request cannot specify more than 100 run_ids.",
        ));
    }
    let key = req.str("metric_key")?;
    let start = req.opt_i64("start_step")?;
    let end = req.opt_i64("end_step")?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(MlflowError::invalid(
                "end_step must be greater than start_step.",
            ));
        }
    }
    let max = req.opt_i64("max_results")?.unwrap_or(320);
    if !(1..=1000).contains(&max) {
        return Err(MlflowError::invalid(format!(
            "max_results must be between 1 and 1000. Got {max}."
        )));
    }
    let mut out = Vec::new();
    for run_id in &run_ids {
        let points = ctx.read(|tx| {
            queries::run_state(tx, &ctx.workspace, run_id)?.ok_or_else(|| run_not_found(run_id))?;
            queries::metric_history(tx, &ctx.workspace, run_id, &key)
        })?;
        let mut points: Vec<Json> = points
            .into_iter()
            .filter(|p| {
                start.is_none_or(|s| p["step"].as_i64().unwrap_or(0) >= s)
                    && end.is_none_or(|e| p["step"].as_i64().unwrap_or(0) <= e)
            })
            .collect();
        // Sampled along the steps (the history itself comes in time order).
        points.sort_by_key(|p| (p["step"].as_i64(), p["timestamp"].as_i64()));
        // Evenly spaced samples that always keep the first and last points.
        let n = points.len();
        let picked: Vec<usize> = if n <= max as usize {
            (0..n).collect()
        } else {
            (0..max as usize)
                .map(|i| i * (n - 1) / (max as usize - 1).max(1))
                .collect()
        };
        for i in picked {
            let mut p = points[i].clone();
            p["run_id"] = run_id.as_str().into();
            out.push(p);
        }
    }
    Ok(json!({ "metrics": out }))
}

/// Lists a run's artifacts (the non-proxied API; the client normally lists through
/// `mlflow-artifacts`).
pub fn list_artifacts(ctx: &Ctx, req: &Req) -> Result<Json> {
    let run_id = run_id_param(req)?;
    let path = req.opt_str("path")?.unwrap_or_default();
    if !path.is_empty() {
        validate::artifact_path(&path)?;
    }
    let run = ctx
        .read(|tx| queries::run_state(tx, &ctx.workspace, &run_id))?
        .ok_or_else(|| run_not_found(&run_id))?;
    ctx.artifact_listing(&run.artifact_uri, &path)
}

/// `experiments/search-datasets` (the UI's dataset filter): the distinct datasets the runs of
/// up to 20 experiments took as inputs, with their `mlflow.data.context` tag.
pub fn search_datasets(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ids = req.str_list("experiment_ids")?;
    if ids.is_empty() {
        return Err(MlflowError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if ids.len() > 20 {
        return Err(MlflowError::invalid(format!("SearchDatasets request cannot specify more than 20 experiment_ids. Received {} experiment_ids.", ids.len())));
    }
    let rows = ctx.read(|tx| {
        let marks = vec!["?"; ids.len()].join(", ");
        let mut params: Vec<crate::store::Value> = vec![ctx.workspace.as_str().into()];
        params.extend(ids.iter().map(|i| crate::store::Value::from(i.as_str())));
        tx.query(
            &format!(
                "SELECT DISTINCT d.experiment_id, d.name, d.digest, i.tags FROM run_inputs i \
                 JOIN datasets d ON d.workspace = i.workspace AND d.dataset_id = i.dataset_id \
                 WHERE d.workspace = ? AND d.experiment_id IN ({marks}) ORDER BY d.name, d.digest LIMIT 1000"
            ),
            &params,
        )
    })?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for r in rows {
        let tags: Json = serde_json::from_str(&r.text(3)).unwrap_or(Json::Null);
        let context = tags
            .as_array()
            .and_then(|a| a.iter().find(|t| t["key"] == "mlflow.data.context"))
            .and_then(|t| t["value"].as_str())
            .map(str::to_owned);
        if seen.insert((r.text(0), r.text(1), r.text(2), context.clone())) {
            let mut s =
                json!({ "experiment_id": r.text(0), "name": r.text(1), "digest": r.text(2) });
            if let Some(c) = context {
                s["context"] = c.into();
            }
            out.push(s);
        }
    }
    Ok(json!({ "dataset_summaries": out }))
}

/// `metrics/get-history-bulk` (a UI route of MLflow's server): one metric's whole history for
/// up to 100 runs, each run's points in time order, at most 25,000 per run.
pub fn get_metric_history_bulk(ctx: &Ctx, req: &Req) -> Result<Json> {
    const MAX_HISTORY_RESULTS: i64 = 25_000;
    let mut run_ids = req.str_list("run_id")?;
    if run_ids.is_empty() {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if run_ids.len() > 100 {
        return Err(MlflowError::invalid(format!("GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received {} run_ids.", run_ids.len())));
    }
    let Some(key) = req.opt_str("metric_key")? else {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulk request must specify a metric_key.",
        ));
    };
    let max = req
        .opt_i64("max_results")?
        .unwrap_or(MAX_HISTORY_RESULTS)
        .clamp(0, MAX_HISTORY_RESULTS) as usize;
    run_ids.sort();
    let mut out = Vec::new();
    for run_id in &run_ids {
        let points = ctx.read(|tx| {
            queries::run_state(tx, &ctx.workspace, run_id)?.ok_or_else(|| run_not_found(run_id))?;
            queries::metric_history(tx, &ctx.workspace, run_id, &key)
        })?;
        for mut p in points.into_iter().take(max) {
            p["run_id"] = run_id.as_str().into();
            out.push(p);
        }
    }
    Ok(json!({ "metrics": out }))
}
