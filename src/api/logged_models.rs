//! MLflow 3 logged models: what `mlflow.<flavor>.log_model` creates.

use super::tracking::active_experiment;
use super::{page, random_bytes, random_name, Ctx, Req};
use crate::store::queries::{self, LoggedModelMetric, LoggedModelRecord};
use crate::store::Decision;
use serde_json::{json, Value as Json};
use tandem_core::event::KeyValue;
use tandem_core::search::{self, compare_fields, Field, Kind};
use tandem_core::{ids, validate, MlflowError, Op, Result};

fn not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Logged model with ID '{id}' not found."))
}

fn model_id(req: &Req) -> Result<String> {
    let id = req.str("model_id")?;
    if id.len() > 256
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(MlflowError::invalid(format!(
            "Invalid value \"{id}\" for parameter 'model_id' supplied"
        )));
    }
    Ok(id)
}

fn load(ctx: &Ctx, id: &str) -> Result<LoggedModelRecord> {
    let m = ctx
        .read(|tx| queries::logged_model(tx, &ctx.workspace, id))?
        .ok_or_else(|| not_found(id))?;
    if m.lifecycle_stage != "active" {
        return Err(not_found(id));
    }
    Ok(m)
}

pub fn create(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = match req.opt_str("name")?.filter(|s| !s.is_empty()) {
        Some(n) => {
            // MLflow's `_validate_logged_model_name`.
            const BAD: [char; 6] = ['/', ':', '.', '%', '"', '\''];
            if n.contains(BAD) {
                return Err(MlflowError::invalid(format!(
                    "Invalid model name ('{n}') provided. Model name must be a non-empty string and cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")"
                )));
            }
            n
        }
        None => random_name(),
    };
    validate::length("name", 500, &name)?;
    let model_type = req.opt_str("model_type")?.filter(|s| !s.is_empty());
    let source_run_id = req.opt_str("source_run_id")?.filter(|s| !s.is_empty());
    let params = req.kv_list("params")?;
    for p in &params {
        validate::param(&p.key, &p.value)?;
    }
    let tags = req.kv_list("tags")?;
    for t in &tags {
        validate::tag(&t.key, &t.value)?;
    }
    let id = ids::logged_model_id(random_bytes());
    let now = ctx.now();
    ctx.write(|tx| {
        // As MLflow: the source run is a reference, not looked up (it may be another server's).
        let exp = active_experiment(tx, &ctx.workspace, &experiment_id)?;
        let artifact_location = format!(
            "{}/models/{id}/artifacts",
            exp["artifact_location"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
        );
        let op = Op::CreateLoggedModel {
            model_id: id.clone(),
            experiment_id: experiment_id.clone(),
            name: name.clone(),
            artifact_location,
            model_type: model_type.clone(),
            source_run_id: source_run_id.clone(),
            params: params.clone(),
            tags: tags.clone(),
            time: now,
        };
        Ok(Decision::change((), op))
    })?;
    Ok(json!({ "model": load(ctx, &id)?.json }))
}

pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    Ok(json!({ "model": load(ctx, &id)?.json }))
}

const STATUSES: &[&str] = &[
    "LOGGED_MODEL_STATUS_UNSPECIFIED",
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
];

pub fn finalize(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let status = match req.0.get("status") {
        Some(Json::String(s)) if STATUSES[1..].contains(&s.as_str()) => s.clone(),
        Some(Json::Number(n)) if matches!(n.as_i64(), Some(1..=3)) => {
            STATUSES[n.as_i64().unwrap_or(0) as usize].to_owned()
        }
        None | Some(Json::Null) => return Err(super::missing("status")),
        Some(v) => {
            return Err(MlflowError::invalid(format!(
                "Invalid value {v} for parameter 'status' supplied: expected one of {:?}",
                &STATUSES[1..]
            )))
        }
    };
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage != "active" {
            return Err(not_found(&id).into());
        }
        Ok(Decision::change(
            (),
            Op::FinalizeLoggedModel {
                model_id: id.clone(),
                status: status.clone(),
                time: now,
            },
        ))
    })?;
    Ok(json!({ "model": load(ctx, &id)?.json }))
}

pub fn delete(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage != "active" {
            return Err(not_found(&id).into());
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteLoggedModel {
                model_id: id.clone(),
                time: now,
            },
        ))
    })
}

/// Brings back a deleted logged model (tandem's undelete; MLflow has no endpoint for it).
pub fn restore(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage == "active" {
            return Err(
                MlflowError::invalid(format!("Logged model '{id}' is not deleted.")).into(),
            );
        }
        Ok(Decision::change(
            json!({}),
            Op::RestoreLoggedModel {
                model_id: id.clone(),
                time: now,
            },
        ))
    })
}

pub fn set_tags(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let tags = req.kv_list("tags")?;
    for t in &tags {
        validate::tag(&t.key, &t.value)?;
    }
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage != "active" {
            return Err(not_found(&id).into());
        }
        if tags.is_empty() {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change(
            (),
            Op::SetLoggedModelTags {
                model_id: id.clone(),
                tags: tags.clone(),
                time: now,
            },
        ))
    })?;
    Ok(json!({ "model": load(ctx, &id)?.json }))
}

pub fn delete_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let key = req.str("tag_key")?;
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage != "active" {
            return Err(not_found(&id).into());
        }
        if !m.tags.iter().any(|t| t.0 == key) {
            return Err(MlflowError::not_found(format!(
                "No tag with key '{key}' found for logged model with ID '{id}'."
            ))
            .into());
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteLoggedModelTag {
                model_id: id.clone(),
                key: key.clone(),
                time: now,
            },
        ))
    })
}

pub fn log_params(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let params: Vec<KeyValue> = req.kv_list("params")?;
    for p in &params {
        validate::param(&p.key, &p.value)?;
    }
    let now = ctx.now();
    ctx.write(|tx| {
        let m = queries::logged_model(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        if m.lifecycle_stage != "active" {
            return Err(not_found(&id).into());
        }
        if params.is_empty() {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::LogLoggedModelParams {
                model_id: id.clone(),
                params: params.clone(),
                time: now,
            },
        ))
    })
}

pub fn list_artifacts(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = model_id(req)?;
    let dir = req.opt_str("artifact_directory_path")?.unwrap_or_default();
    let m = load(ctx, &id)?;
    ctx.artifact_listing(
        m.json["info"]["artifact_uri"].as_str().unwrap_or_default(),
        &dir,
    )
}

/// A `datasets` entry of a logged-model search: metric points on this dataset (and digest).
struct DatasetFilter {
    name: String,
    digest: Option<String>,
}

impl DatasetFilter {
    fn admits(filters: &[DatasetFilter], m: &LoggedModelMetric) -> bool {
        filters.is_empty()
            || filters.iter().any(|d| {
                d.name == m.dataset_name && d.digest.as_ref().is_none_or(|g| *g == m.dataset_digest)
            })
    }
}

/// One `order_by` entry: an attribute, or a metric's latest point (on a dataset, if named).
struct LoggedModelOrder {
    key: search::OrderKey,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

/// The value a model is ordered by for a metric: its latest point (by timestamp, then step,
/// then the lowest run ID), among points on the named dataset.
fn latest_metric(m: &LoggedModelRecord, o: &LoggedModelOrder) -> Option<f64> {
    m.metrics
        .iter()
        .filter(|p| {
            p.key == o.key.key
                && o.dataset_name.as_ref().is_none_or(|n| *n == p.dataset_name)
                && o.dataset_digest
                    .as_ref()
                    .is_none_or(|d| *d == p.dataset_digest)
        })
        .max_by(|a, b| {
            a.timestamp
                .cmp(&b.timestamp)
                .then(a.step.cmp(&b.step))
                .then(b.run_id.cmp(&a.run_id))
        })
        .map(|p| p.value)
}

/// MLflow's logged-model search (`SqlAlchemyStore.search_logged_models`): a metric clause
/// holds when any point of that metric (on the `datasets` given) satisfies it; `datasets`
/// alone keeps the models with any point on one of them; ordering by a metric uses its latest
/// point, models without one last; ties go to the newest model, then the lowest ID.
pub fn search(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_ids = req.str_list("experiment_ids")?;
    let mut datasets = Vec::new();
    for d in req.list("datasets")? {
        let name = d
            .opt_str("dataset_name")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                MlflowError::invalid("`dataset_name` in the `datasets` clause must be specified.")
            })?;
        datasets.push(DatasetFilter {
            name,
            digest: d.opt_str("dataset_digest")?.filter(|s| !s.is_empty()),
        });
    }
    let max = req.max_results(100, 1000)?;
    let offset = req.page_offset()?;
    let clauses = search::parse_filter(
        &req.opt_str("filter")?.unwrap_or_default(),
        &search::LOGGED_MODELS,
    )?;
    let mut order = Vec::new();
    let (mut by_creation, mut by_id) = (false, false);
    for o in req.list("order_by")? {
        let field = o.str("field_name")?;
        let (kind, key) = search::parse_identifier(&field, &search::LOGGED_MODELS)
            .map_err(|_| MlflowError::invalid(format!("Invalid order by field name: {field}")))?;
        match kind {
            Kind::Attribute => {
                by_creation |= matches!(key.as_str(), "creation_timestamp" | "creation_time");
                by_id |= key == "model_id";
            }
            Kind::Metric => {}
            _ => {
                return Err(MlflowError::invalid(format!(
                    "Invalid order by field name: {field}. Only metrics are supported."
                )))
            }
        }
        order.push(LoggedModelOrder {
            key: search::OrderKey {
                kind,
                key,
                ascending: o.opt_bool("ascending")?.unwrap_or(true),
            },
            dataset_name: o.opt_str("dataset_name")?.filter(|s| !s.is_empty()),
            dataset_digest: o.opt_str("dataset_digest")?.filter(|s| !s.is_empty()),
        });
    }
    let mut models =
        ctx.read(|tx| queries::logged_models_in(tx, &ctx.workspace, &experiment_ids))?;
    let has_metric_clause = clauses.iter().any(|c| c.kind == Kind::Metric);
    models.retain(|m| {
        let clauses_hold = clauses.iter().all(|c| match c.kind {
            Kind::Metric => m.metrics.iter().any(|p| {
                p.key == c.key
                    && DatasetFilter::admits(&datasets, p)
                    && search::matches(c, Some(Field::Num(p.value)))
            }),
            _ => search::matches(c, m.field(c.kind, &c.key)),
        });
        let on_datasets = datasets.is_empty()
            || has_metric_clause
            || m.metrics
                .iter()
                .any(|p| DatasetFilter::admits(&datasets, p));
        clauses_hold && on_datasets
    });
    let value = |m: &LoggedModelRecord, o: &LoggedModelOrder| -> Option<Field<'static>> {
        match o.key.kind {
            Kind::Metric => latest_metric(m, o).map(Field::Num),
            _ => None,
        }
    };
    models.sort_by(|a, b| {
        order
            .iter()
            .map(|o| match o.key.kind {
                Kind::Metric => compare_fields(value(a, o), value(b, o), o.key.ascending),
                _ => compare_fields(
                    a.field(o.key.kind, &o.key.key),
                    b.field(o.key.kind, &o.key.key),
                    o.key.ascending,
                ),
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| {
                if by_creation {
                    std::cmp::Ordering::Equal
                } else {
                    b.creation_time.cmp(&a.creation_time)
                }
            })
            .then_with(|| {
                if by_id {
                    std::cmp::Ordering::Equal
                } else {
                    a.model_id.cmp(&b.model_id)
                }
            })
    });
    let (models, next) = page(models, offset, max);
    let mut out = json!({ "models": models.into_iter().map(|m| m.json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}
