//! The model registry: registered models, versions, tags, aliases, stages.

use super::{page, Ctx, Req};
use crate::store::queries;
use crate::store::{Decision, Tx};
use serde_json::{json, Value as Json};
use tandem_core::event::KeyValue;
use tandem_core::search::{self, compare_fields, Field, Kind};
use tandem_core::{uri, validate, MlflowError, Op, Result};

fn model_not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> MlflowError {
    MlflowError::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

fn name_param(req: &Req) -> Result<String> {
    let name = req.str("name")?;
    validate::model_name(&name)?;
    Ok(name)
}

fn version_param(req: &Req) -> Result<i64> {
    let (v, shown) = match req.0.get("version") {
        None | Some(Json::Null) => return Err(super::missing("version")),
        Some(Json::String(s)) => (s.trim().parse::<i64>().ok(), s.clone()),
        Some(Json::Number(n)) => (n.as_i64(), n.to_string()),
        Some(other) => (None, other.to_string()),
    };
    match v {
        Some(v) if v > 0 => Ok(v),
        // MLflow's `not_integer_value`.
        None => Err(MlflowError::invalid(format!(
            "Parameter 'version' must be an integer, got '{shown}'."
        ))),
        Some(_) => Err(MlflowError::invalid(format!(
            "Model version must be a positive integer, got '{shown}'"
        ))),
    }
}

fn require_model(tx: &mut dyn Tx, ws: &str, name: &str) -> crate::store::Result<()> {
    if tx.query_one("SELECT 1 FROM registered_models WHERE workspace = ? AND name = ? AND deleted_time IS NULL", &[ws.into(), name.into()])?.is_none() {
        return Err(model_not_found(name).into());
    }
    Ok(())
}

fn require_version(
    tx: &mut dyn Tx,
    ws: &str,
    name: &str,
    version: i64,
) -> crate::store::Result<Json> {
    queries::model_version(tx, ws, name, version)?
        .ok_or_else(|| version_not_found(name, version).into())
}

/// A name held by a live model is taken. One held by a deleted model is reusable: the deleted
/// one steps aside, renamed "<name> (deleted <deletion time>)", with its versions, and stays
/// restorable under that name until it is purged.
fn free_model_name(
    tx: &mut dyn Tx,
    ws: &str,
    name: &str,
    now: i64,
) -> crate::store::Result<Vec<Op>> {
    let Some(row) = tx.query_one(
        "SELECT deleted_time FROM registered_models WHERE workspace = ? AND name = ?",
        &[ws.into(), name.into()],
    )?
    else {
        return Ok(Vec::new());
    };
    let Some(deleted) = row.opt_int(0) else {
        return Err(
            MlflowError::exists(format!("Registered Model (name={name}) already exists.")).into(),
        );
    };
    let mut new_name = format!("{name} (deleted {deleted})");
    while tx
        .query_one(
            "SELECT 1 FROM registered_models WHERE workspace = ? AND name = ?",
            &[ws.into(), new_name.as_str().into()],
        )?
        .is_some()
    {
        new_name.push('~');
    }
    Ok(vec![Op::RenameRegisteredModel {
        name: name.to_owned(),
        new_name,
        time: now,
    }])
}

/// Brings back a deleted registered model with the versions deleted with it.
pub fn restore_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        match tx.query_one(
            "SELECT deleted_time FROM registered_models WHERE workspace = ? AND name = ?",
            &[ctx.workspace.as_str().into(), name.as_str().into()],
        )? {
            None => Err(model_not_found(&name).into()),
            Some(r) if r.opt_int(0).is_none() => Err(MlflowError::invalid(format!(
                "Registered Model (name={name}) is not deleted."
            ))
            .into()),
            Some(_) => Ok(Decision::change(
                (),
                Op::RestoreRegisteredModel {
                    name: name.clone(),
                    time: now,
                },
            )),
        }
    })?;
    get_model_json(ctx, &name)
}

/// Brings back a deleted model version (of a live model).
pub fn restore_model_version(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        match tx.query_one("SELECT deleted_time FROM model_versions WHERE workspace = ? AND name = ? AND version = ?", &[ctx.workspace.as_str().into(), name.as_str().into(), version.into()])? {
            None => Err(version_not_found(&name, version).into()),
            Some(r) if r.opt_int(0).is_none() => Err(MlflowError::invalid(format!("Model Version (name={name}, version={version}) is not deleted.")).into()),
            Some(_) => Ok(Decision::change((), Op::RestoreModelVersion { name: name.clone(), version, time: now })),
        }
    })?;
    get_version_json(ctx, &name, version)
}

pub fn create_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let tags = req.kv_list("tags")?;
    for t in &tags {
        validate::registry_tag(&t.key, &t.value)?;
    }
    let description = req.opt_str("description")?;
    let now = ctx.now();
    ctx.write(|tx| {
        let mut ops = free_model_name(tx, &ctx.workspace, &name, now)?;
        ops.push(Op::CreateRegisteredModel {
            name: name.clone(),
            description: description.clone(),
            tags: tags.clone(),
            time: now,
        });
        Ok(Decision::changes((), ops))
    })?;
    get_model_json(ctx, &name)
}

fn get_model_json(ctx: &Ctx, name: &str) -> Result<Json> {
    let m = ctx
        .read(|tx| queries::registered_model(tx, &ctx.workspace, name))?
        .ok_or_else(|| model_not_found(name))?;
    Ok(json!({ "registered_model": m }))
}

pub fn get_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    get_model_json(ctx, &name_param(req)?)
}

pub fn rename_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let new_name = req.str("new_name")?;
    validate::model_name(&new_name)?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        if new_name == name {
            return Ok(Decision::no_change(()));
        }
        let mut ops = free_model_name(tx, &ctx.workspace, &new_name, now)?;
        ops.push(Op::RenameRegisteredModel {
            name: name.clone(),
            new_name: new_name.clone(),
            time: now,
        });
        Ok(Decision::changes((), ops))
    })?;
    get_model_json(ctx, &new_name)
}

pub fn update_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let description = req.opt_str("description")?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        Ok(Decision::change(
            (),
            Op::UpdateRegisteredModel {
                name: name.clone(),
                description: description.clone(),
                time: now,
            },
        ))
    })?;
    get_model_json(ctx, &name)
}

pub fn delete_registered_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        Ok(Decision::change(
            json!({}),
            Op::DeleteRegisteredModel {
                name: name.clone(),
                time: now,
            },
        ))
    })
}

fn model_field<'a>(m: &'a Json, kind: Kind, key: &str) -> Option<Field<'a>> {
    match kind {
        Kind::Tag => m["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str())
            .map(Field::Str),
        Kind::Attribute => match key {
            "creation_timestamp" | "last_updated_timestamp" => {
                m[key].as_i64().map(|n| Field::Num(n as f64))
            }
            "version_number" => m["version"]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .map(Field::Num),
            "source_path" => m["source"].as_str().map(Field::Str),
            _ => m[key].as_str().map(Field::Str),
        },
        _ => None,
    }
}

const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

fn is_prompt(m: &Json) -> bool {
    m["tags"].as_array().is_some_and(|t| {
        t.iter().any(|t| {
            t["key"] == PROMPT_TAG
                && t["value"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
    })
}

fn search_entities(
    req: &Req,
    spec: &search::Spec,
    items: Vec<Json>,
    default_max: i64,
    max_max: i64,
    default_order: &[(&str, bool)],
) -> Result<(Vec<Json>, Option<String>)> {
    let max = req.max_results(default_max, max_max)?;
    let offset = req.page_offset()?;
    let mut clauses = search::parse_filter(&req.opt_str("filter")?.unwrap_or_default(), spec)?;
    // Prompts are registered models tagged `mlflow.prompt.is_prompt = 'true'`; the client adds
    // `tags.mlflow.prompt.is_prompt != 'true'` to every search. As in MLflow, a search returns
    // either only prompts or only models, and a model without the tag is a model.
    let prompt_clauses: Vec<_> = clauses
        .iter()
        .filter(|c| c.kind == Kind::Tag && c.key == PROMPT_TAG)
        .cloned()
        .collect();
    clauses.retain(|c| !(c.kind == Kind::Tag && c.key == PROMPT_TAG));
    let want_prompts = prompt_clauses.iter().any(|c| {
        let v = match &c.value {
            search::Literal::Str(s) => s.to_ascii_lowercase(),
            _ => String::new(),
        };
        (c.comparator == search::Comparator::Eq && v == "true")
            || (c.comparator == search::Comparator::Ne && v == "false")
    });
    let items: Vec<Json> = items
        .into_iter()
        .filter(|m| is_prompt(m) == want_prompts)
        .collect();
    let mut order = search::parse_order_by(&req.str_list("order_by")?, spec)?;
    for (key, asc) in default_order {
        order.push(search::OrderKey {
            kind: Kind::Attribute,
            key: (*key).into(),
            ascending: *asc,
        });
    }
    let mut items: Vec<Json> = items
        .into_iter()
        .filter(|m| {
            clauses
                .iter()
                .all(|c| search::matches(c, model_field(m, c.kind, &c.key)))
        })
        .collect();
    items.sort_by(|a, b| {
        order
            .iter()
            .map(|o| {
                compare_fields(
                    model_field(a, o.kind, &o.key),
                    model_field(b, o.kind, &o.key),
                    o.ascending,
                )
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(page(items, offset, max))
}

pub fn search_registered_models(ctx: &Ctx, req: &Req) -> Result<Json> {
    let models = ctx.read(|tx| {
        let names = queries::registered_model_names(tx, &ctx.workspace)?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.extend(queries::registered_model(tx, &ctx.workspace, &n)?);
        }
        Ok(out)
    })?;
    let (models, next) = search_entities(
        req,
        &search::REGISTERED_MODELS,
        models,
        100,
        validate::MAX_RESULTS_REGISTRY,
        &[("name", true)],
    )?;
    let mut out = json!({ "registered_models": models });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

pub fn search_model_versions(ctx: &Ctx, req: &Req) -> Result<Json> {
    let versions = ctx.read(|tx| queries::model_versions(tx, &ctx.workspace, None))?;
    let (versions, next) = search_entities(
        req,
        &search::MODEL_VERSIONS,
        versions,
        10_000,
        validate::MAX_RESULTS_MODEL_VERSIONS,
        &[("name", true), ("version_number", false)],
    )?;
    let mut out = json!({ "model_versions": versions });
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

const STAGES: &[&str] = &["None", "Staging", "Production", "Archived"];

fn canonical_stage(s: &str) -> Result<String> {
    STAGES
        .iter()
        .find(|x| x.eq_ignore_ascii_case(s))
        .map(|x| (*x).to_owned())
        .ok_or_else(|| {
            MlflowError::invalid(format!(
                "Invalid Model Version stage: {s}. Value must be one of {}.",
                STAGES.join(", ")
            ))
        })
}

pub fn get_latest_versions(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let stages = req
        .str_list("stages")?
        .iter()
        .map(|s| canonical_stage(s))
        .collect::<Result<Vec<_>>>()?;
    let m = ctx
        .read(|tx| queries::registered_model(tx, &ctx.workspace, &name))?
        .ok_or_else(|| model_not_found(&name))?;
    let versions: Vec<Json> = m["latest_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| stages.is_empty() || stages.iter().any(|s| v["current_stage"] == s.as_str()))
        .collect();
    Ok(json!({ "model_versions": versions }))
}

fn get_version_json(ctx: &Ctx, name: &str, version: i64) -> Result<Json> {
    let v = ctx
        .read(|tx| queries::model_version(tx, &ctx.workspace, name, version))?
        .ok_or_else(|| version_not_found(name, version))?;
    Ok(json!({ "model_version": v }))
}

/// MLflow's `_resolve_registered_model_source_lineage`: a `models:/<name>/<version|stage|
/// latest>` or `models:/<name>@<alias>` source names a registered version; it is recorded as
/// `models:/<name>/<version>`, and the new version takes that version's run and logged model
/// unless the request gave its own (which must then be the same).
struct Lineage {
    source: String,
    run_id: Option<String>,
    model_id: Option<String>,
    /// The referenced version's files, where the source is a registered version.
    storage_location: Option<String>,
}

fn resolve_lineage(
    tx: &mut dyn Tx,
    ws: &str,
    source: &str,
    run_id: Option<String>,
    model_id: Option<String>,
    has_run_id: bool,
    has_model_id: bool,
) -> crate::store::Result<Lineage> {
    let unchanged = |run_id, model_id| Lineage {
        source: source.to_owned(),
        run_id,
        model_id,
        storage_location: None,
    };
    let parsed = uri::urlparse(source);
    if parsed.scheme != "models" {
        return Ok(unchanged(run_id, model_id));
    }
    if !parsed.netloc.is_empty() {
        return Err(MlflowError::invalid(format!("Invalid model version source: '{source}'. Registered model sources must use the active model registry.")).into());
    }
    let model_uri = uri::parse_model_uri(source).map_err(|_| MlflowError::invalid(format!("Invalid model version source: '{source}'. The model_id request parameter must identify the resource that contains the source.")))?;
    let name = match &model_uri {
        uri::ModelUri::ModelId(_) => return Ok(unchanged(run_id, model_id)),
        uri::ModelUri::Version { name, .. }
        | uri::ModelUri::Stage { name, .. }
        | uri::ModelUri::Latest { name }
        | uri::ModelUri::Alias { name, .. } => name.clone(),
    };
    let model = queries::registered_model(tx, ws, &name)?.ok_or_else(|| model_not_found(&name))?;
    if is_prompt(&model) {
        return Err(MlflowError::invalid(format!("Invalid model version source: '{source}'. Prompt versions cannot be used as model version sources.")).into());
    }
    let version: i64 = match &model_uri {
        uri::ModelUri::Version { version, .. } => {
            version.parse().map_err(|_| version_not_found(&name, 0))?
        }
        uri::ModelUri::Alias { alias, .. } => queries::alias_version(tx, ws, &name, alias)?
            .ok_or_else(|| {
                MlflowError::invalid(format!("Registered model alias {alias} not found."))
            })?,
        uri::ModelUri::Stage { stage, .. } => {
            let stage = canonical_stage(stage)?;
            latest_version(tx, ws, &name, Some(&stage))?.ok_or_else(|| {
                MlflowError::invalid(format!(
                    "No versions of model with name '{name}' and stage '{stage}' found"
                ))
            })?
        }
        _ => latest_version(tx, ws, &name, None)?.ok_or_else(|| {
            MlflowError::invalid(format!("No versions of model with name '{name}' found"))
        })?,
    };
    let row = tx
        .query_one("SELECT run_id, model_id, storage_location, source FROM model_versions WHERE workspace = ? AND name = ? AND version = ? AND deleted_time IS NULL", &[ws.into(), name.as_str().into(), version.into()])?
        .ok_or_else(|| version_not_found(&name, version))?;
    let (their_run, their_model) = (row.opt_text(0), row.opt_text(1));
    let differs = |given: &Option<String>, theirs: &Option<String>| {
        given.as_deref().unwrap_or("") != theirs.as_deref().unwrap_or("")
    };
    if (has_run_id && differs(&run_id, &their_run))
        || (has_model_id && differs(&model_id, &their_model))
    {
        return Err(MlflowError::invalid(format!("Invalid model version source: '{source}'. The run_id and model_id request parameters must match the referenced model version.")).into());
    }
    Ok(Lineage {
        source: format!("models:/{name}/{version}"),
        run_id: if has_run_id { run_id } else { their_run },
        model_id: if has_model_id { model_id } else { their_model },
        storage_location: Some(row.opt_text(2).unwrap_or_else(|| row.text(3))),
    })
}

/// The highest live version of a model, in `stage` if one is given.
fn latest_version(
    tx: &mut dyn Tx,
    ws: &str,
    name: &str,
    stage: Option<&str>,
) -> crate::store::Result<Option<i64>> {
    let row = match stage {
        Some(s) => tx.query_one("SELECT MAX(version) FROM model_versions WHERE workspace = ? AND name = ? AND current_stage = ? AND deleted_time IS NULL", &[ws.into(), name.into(), s.into()])?,
        None => tx.query_one("SELECT MAX(version) FROM model_versions WHERE workspace = ? AND name = ? AND deleted_time IS NULL", &[ws.into(), name.into()])?,
    };
    Ok(row.and_then(|r| r.opt_int(0)))
}

/// The sources a prompt version may have (MLflow's `_PROMPT_SOURCE_PLACEHOLDERS`).
const PROMPT_SOURCES: &[&str] = &["dummy-source", "prompt-template"];

/// The `mlflow.modelVersions` tag MLflow keeps on a logged model: every registered version
/// made from it, as `[{"name": ..., "version": ...}]` (Python's `json.dumps` spacing).
fn model_versions_tag(existing: Option<&str>, name: &str, version: i64) -> String {
    let entry = json!({ "name": name, "version": version });
    let mut list: Vec<Json> = existing
        .and_then(|v| serde_json::from_str::<Vec<Json>>(v).ok())
        .unwrap_or_default();
    if !list.contains(&entry) {
        list.push(entry);
    }
    let items: Vec<String> = list
        .iter()
        .map(|e| match e.as_object() {
            Some(o) => format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!("{}: {}", Json::from(k.as_str()), v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => e.to_string(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

pub fn create_model_version(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let source = req.str("source")?;
    validate::length("source", 5000, &source)?;
    let has_run_id = req.has("run_id");
    let has_model_id = req.has("model_id");
    let run_id = req.opt_str("run_id")?;
    let run_link = req.opt_str("run_link")?.filter(|s| !s.is_empty());
    let description = req.opt_str("description")?;
    let model_id = req.opt_str("model_id")?;
    let tags = req.kv_list("tags")?;
    for t in &tags {
        validate::registry_tag(&t.key, &t.value)?;
    }
    // MLflow's order: a prompt's placeholder source, the host-addressed schemes, then the
    // source against the run or logged model it must belong to.
    let is_prompt_request = tags
        .iter()
        .rev()
        .find(|t| t.key == PROMPT_TAG)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"));
    if is_prompt_request && !PROMPT_SOURCES.contains(&source.as_str()) {
        return Err(MlflowError::invalid(format!(
            "Invalid prompt source: '{source}'. Prompt sources must use an MLflow placeholder."
        )));
    }
    uri::check_host_addressed(&source, "source", super::allowed_host_schemes())?;
    let now = ctx.now();
    let created = ctx.write(|tx| {
        let ws = ctx.workspace.as_str();
        let lineage = match is_prompt_request {
            true => Lineage { source: source.clone(), run_id: run_id.clone(), model_id: model_id.clone(), storage_location: None },
            false => resolve_lineage(tx, ws, &source, run_id.clone(), model_id.clone(), has_run_id, has_model_id)?,
        };
        let Lineage { source, run_id, model_id, storage_location } = lineage;
        let (mut run_id, model_id) = (run_id.filter(|s| !s.is_empty()), model_id.filter(|s| !s.is_empty()));
        if !is_prompt_request {
            match &model_id {
                Some(m) => uri::check_source_model(&source, m, &mut |id| Ok::<_, crate::store::Error>(queries::logged_model(tx, ws, id)?.and_then(|m| m.json["info"]["artifact_uri"].as_str().map(str::to_owned))))?,
                None => uri::check_source_run(&source, run_id.as_deref(), &mut |id| Ok::<_, crate::store::Error>(queries::run_state(tx, ws, id)?.map(|r| r.artifact_uri)))?,
            }
        }
        // The model's existence and its highest version in one statement: every statement
        // here is a round trip inside the workspace's lock on PostgreSQL.
        let Some(max_version) = queries::max_version_of_live_model(tx, ws, &name)? else {
            return Err(model_not_found(&name).into());
        };
        let version = max_version + 1;
        // Where the files are, and (as MLflow's store does) the run a logged model came from.
        let mut storage_location = storage_location.unwrap_or_else(|| source.clone());
        // Read once: the checks above made a `models:/<model_id>` source name this very model.
        let logged = match &model_id {
            Some(id) => queries::logged_model(tx, ws, id)?,
            None => None,
        };
        if let Ok(uri::ModelUri::ModelId(id)) = uri::parse_model_uri(&source) {
            let m = logged.as_ref().filter(|m| m.model_id == id).ok_or_else(|| MlflowError::not_found(format!("Unable to fetch model from model URI source artifact location '{source}'.Error: Logged model with ID '{id}' not found.")))?;
            storage_location = m.json["info"]["artifact_uri"].as_str().unwrap_or(&source).to_owned();
            run_id = run_id.or_else(|| m.attrs.get("source_run_id").cloned());
        }
        if run_id.is_none() {
            if let Some(id) = &model_id {
                let m = logged.as_ref().ok_or_else(|| MlflowError::not_found(format!("Logged model with ID '{id}' not found.")))?;
                run_id = m.attrs.get("source_run_id").cloned();
            }
        }
        // The reply is the version as this write creates it (what a read after the commit
        // would find; a test holds the two equal), built here rather than read back in a
        // second transaction. Tags as stored: the last value of a repeated key, by key.
        let sorted: std::collections::BTreeMap<&str, &str> = tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        let view_tags: Vec<(String, String)> = sorted.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let reply = queries::ModelVersionView {
            name: &name,
            version,
            description: description.as_deref(),
            user_id: &ctx.principal,
            current_stage: "None",
            source: &source,
            run_id: run_id.as_deref(),
            run_link: run_link.as_deref(),
            status: "READY",
            model_id: model_id.as_deref(),
            creation_time: now,
            last_updated_time: now,
            tags: &view_tags,
            aliases: &[],
        }
        .to_json();
        let mut ops = vec![Op::CreateModelVersion {
            name: name.clone(),
            version,
            source: source.clone(),
            run_id: run_id.clone(),
            run_link: run_link.clone(),
            description: description.clone(),
            tags: tags.clone(),
            user_id: ctx.principal.clone(),
            model_id: model_id.clone(),
            storage_location,
            time: now,
        }];
        // The logged model records the versions made from it (a model another server holds
        // has no record here to carry the tag).
        if let (Some(id), Some(m), false) = (&model_id, &logged, is_prompt_request) {
            let existing = m.tags.iter().find(|t| t.0 == MODEL_VERSIONS_TAG).map(|t| t.1.as_str());
            let value = model_versions_tag(existing, &name, version);
            ops.push(Op::SetLoggedModelTags { model_id: id.clone(), tags: vec![KeyValue { key: MODEL_VERSIONS_TAG.to_owned(), value }], time: now });
        }
        Ok(Decision::changes(reply, ops))
    })?;
    Ok(json!({ "model_version": created }))
}

/// The logged-model tag listing its registered versions.
const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";

pub fn get_model_version(ctx: &Ctx, req: &Req) -> Result<Json> {
    get_version_json(ctx, &name_param(req)?, version_param(req)?)
}

pub fn update_model_version(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let description = req.opt_str("description")?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            (),
            Op::UpdateModelVersion {
                name: name.clone(),
                version,
                description: description.clone(),
                time: now,
            },
        ))
    })?;
    get_version_json(ctx, &name, version)
}

pub fn transition_stage(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let stage = canonical_stage(&req.str("stage")?)?;
    let archive_existing = req.opt_bool("archive_existing_versions")?.unwrap_or(false);
    let now = ctx.now();
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            (),
            Op::TransitionModelVersionStage {
                name: name.clone(),
                version,
                stage: stage.clone(),
                archive_existing,
                time: now,
            },
        ))
    })?;
    get_version_json(ctx, &name, version)
}

pub fn delete_model_version(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let now = ctx.now();
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            json!({}),
            Op::DeleteModelVersion {
                name: name.clone(),
                version,
                time: now,
            },
        ))
    })
}

pub fn get_download_uri(ctx: &Ctx, req: &Req) -> Result<Json> {
    let uri = download_location(ctx, &name_param(req)?, version_param(req)?)?;
    Ok(json!({ "artifact_uri": uri }))
}

/// Where a live version's files are (what get-download-uri answers): its storage location,
/// else its source.
pub fn download_location(ctx: &Ctx, name: &str, version: i64) -> Result<String> {
    ctx.read(|tx| {
        Ok(tx
            .query_one("SELECT storage_location, source FROM model_versions WHERE workspace = ? AND name = ? AND version = ? AND deleted_time IS NULL", &[ctx.workspace.as_str().into(), name.into(), version.into()])?
            .map(|r| r.opt_text(0).unwrap_or_else(|| r.text(1))))
    })?
    .ok_or_else(|| version_not_found(name, version))
}

pub fn set_registered_model_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?.unwrap_or_default();
    validate::registry_tag(&key, &value)?;
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        Ok(Decision::change(
            json!({}),
            Op::SetRegisteredModelTag {
                name: name.clone(),
                key: key.clone(),
                value: value.clone(),
            },
        ))
    })
}

pub fn delete_registered_model_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let key = req.str("key")?;
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        Ok(Decision::change(
            json!({}),
            Op::DeleteRegisteredModelTag {
                name: name.clone(),
                key: key.clone(),
            },
        ))
    })
}

pub fn set_model_version_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?.unwrap_or_default();
    validate::registry_tag(&key, &value)?;
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            json!({}),
            Op::SetModelVersionTag {
                name: name.clone(),
                version,
                key: key.clone(),
                value: value.clone(),
            },
        ))
    })
}

pub fn delete_model_version_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let version = version_param(req)?;
    let key = req.str("key")?;
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            json!({}),
            Op::DeleteModelVersionTag {
                name: name.clone(),
                version,
                key: key.clone(),
            },
        ))
    })
}

pub fn set_alias(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let alias = req.str("alias")?;
    validate::alias(&alias)?;
    let version = version_param(req)?;
    ctx.write(|tx| {
        require_version(tx, &ctx.workspace, &name, version)?;
        Ok(Decision::change(
            json!({}),
            Op::SetRegisteredModelAlias {
                name: name.clone(),
                alias: alias.clone(),
                version,
            },
        ))
    })
}

pub fn delete_alias(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let alias = req.str("alias")?;
    ctx.write(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        if queries::alias_version(tx, &ctx.workspace, &name, &alias)?.is_none() {
            return Ok(Decision::no_change(json!({})));
        }
        Ok(Decision::change(
            json!({}),
            Op::DeleteRegisteredModelAlias {
                name: name.clone(),
                alias: alias.clone(),
            },
        ))
    })
}

pub fn get_by_alias(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = name_param(req)?;
    let alias = req.str("alias")?;
    let v = ctx.read(|tx| {
        require_model(tx, &ctx.workspace, &name)?;
        // `latest` names the highest live version unless an alias of that name is set (MLflow
        // answers `@latest` so, which `prompts:/NAME@latest` relies on).
        let version = match queries::alias_version(tx, &ctx.workspace, &name, &alias)? {
            Some(v) => v,
            None if alias.eq_ignore_ascii_case("latest") => {
                latest_version(tx, &ctx.workspace, &name, None)?.ok_or_else(|| {
                    MlflowError::not_found(format!("Latest version not found for model {name}."))
                })?
            }
            None => {
                return Err(MlflowError::invalid(format!(
                    "Registered model alias {alias} not found."
                ))
                .into())
            }
        };
        require_version(tx, &ctx.workspace, &name, version)
    })?;
    Ok(json!({ "model_version": v }))
}
