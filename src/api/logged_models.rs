//! MLflow 3 logged models: what `mlflow.<flavor>.log_model` creates.

use super::tracking::{active_experiment, active_run};
use super::{page, random_bytes, random_name, Ctx, Req};
use crate::store::queries::{self, LoggedModelRecord};
use crate::store::Decision;
use serde_json::{json, Value as Json};
use tandem_core::event::KeyValue;
use tandem_core::search::{self, compare_fields, Field};
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
    let name = req
        .opt_str("name")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(random_name);
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
        let exp = active_experiment(tx, &ctx.workspace, &experiment_id)?;
        if let Some(run_id) = &source_run_id {
            active_run(tx, &ctx.workspace, run_id)?;
        }
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

pub fn search(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_ids = req.str_list("experiment_ids")?;
    let max = req.max_results(100, 1000)?;
    let offset = req.page_offset()?;
    let clauses = search::parse_filter(
        &req.opt_str("filter")?.unwrap_or_default(),
        &search::LOGGED_MODELS,
    )?;
    // order_by here is a list of {field_name, ascending}.
    let mut order = Vec::new();
    for o in req.list("order_by")? {
        let field = o.str("field_name")?;
        let (kind, key) = search::parse_identifier(&field, &search::LOGGED_MODELS)?;
        order.push(search::OrderKey {
            kind,
            key,
            ascending: o.opt_bool("ascending")?.unwrap_or(true),
        });
    }
    let mut models =
        ctx.read(|tx| queries::logged_models_in(tx, &ctx.workspace, &experiment_ids))?;
    models.retain(|m| {
        clauses
            .iter()
            .all(|c| search::matches(c, m.field(c.kind, &c.key)))
    });
    models.sort_by(|a, b| {
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
            .unwrap_or_else(|| {
                compare_fields(
                    Some(Field::Num(a.creation_time as f64)),
                    Some(Field::Num(b.creation_time as f64)),
                    false,
                )
                .then_with(|| a.model_id.cmp(&b.model_id))
            })
    });
    let (models, next) = page(models, offset, max);
    let mut out = json!({ "models": models.into_iter().map(|m| m.json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}
