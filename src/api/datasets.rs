//! MLflow 3's evaluation datasets (`mlflow.genai.datasets`): datasets with tags and links to
//! experiments, and their records (inputs, outputs, expectations, tags, source), upserted by
//! their inputs. On the change log as `genai_objects` rows (docs/design/traces.md): kind
//! `dataset` (name: the dataset's name; the document holds its tags, schema, profile, digest
//! and experiment IDs) and `dataset_record` (parent: its dataset; name: the hash of its
//! inputs, which is what an upsert matches on).

use super::traces::python_json;
use super::{missing, Ctx, Req};
use crate::store::{Decision, Tx};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};
use tandem_core::search::{self, Field, Kind, Spec};
use tandem_core::{MlflowError, Op, Result};

const DATASET: &str = "dataset";
const RECORD: &str = "dataset_record";
/// MLflow's `LOAD_DATASET_RECORDS_MAX_RESULTS` and search default.
const RECORDS_DEFAULT: i64 = 1000;
const SEARCH_DEFAULT: i64 = 1000;
const SEARCH_MAX: i64 = 50_000;
const RECORD_SOURCE_TYPES: &[&str] = &["UNSPECIFIED", "TRACE", "HUMAN", "DOCUMENT", "CODE"];

/// What `SearchEvaluationDatasets` filters and orders on.
const DATASETS: Spec = Spec {
    entity: "evaluation dataset",
    kinds: &[Kind::Tag, Kind::Attribute],
    numeric_attributes: &["created_time", "last_update_time"],
    string_attributes: &["name", "created_by", "last_updated_by"],
};

fn dataset_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Evaluation dataset with id '{id}' not found"))
}

fn load(tx: &mut dyn Tx, ws: &str, kind: &str, id: &str) -> crate::store::Result<Option<Json>> {
    crate::store::queries::genai_object(tx, ws, kind, id)
}

fn records_of(tx: &mut dyn Tx, ws: &str, dataset_id: &str) -> crate::store::Result<Vec<Json>> {
    let mut out: Vec<Json> = tx
        .query(
            "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ? AND parent = ?",
            &[ws.into(), RECORD.into(), dataset_id.into()],
        )?
        .iter()
        .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(Json::Null))
        .collect();
    out.sort_by(|a, b| {
        (a["created_time"].as_i64(), a["dataset_record_id"].as_str())
            .cmp(&(b["created_time"].as_i64(), b["dataset_record_id"].as_str()))
    });
    Ok(out)
}

fn put(kind: &str, id: &str, parent: Option<&str>, name: &str, doc: &Json, time: i64) -> Op {
    Op::PutGenaiObject {
        kind: kind.into(),
        id: id.into(),
        parent: parent.map(str::to_owned),
        name: Some(name.into()),
        doc: doc.to_string(),
        time,
    }
}

fn put_dataset(doc: &Json, time: i64) -> Op {
    put(
        DATASET,
        doc["dataset_id"].as_str().unwrap_or_default(),
        None,
        doc["name"].as_str().unwrap_or_default(),
        doc,
        time,
    )
}

/// MLflow's digest of a dataset's state: its name and when it last changed.
fn digest(name: &str, time: i64) -> String {
    let h = Sha256::digest(format!("{name}:{time}").as_bytes());
    crate::otlp::hex(&h)[..8].to_owned()
}

/// A dataset in MLflow's JSON. `tags` is JSON text, as in MLflow's proto; experiment IDs are
/// answered only where MLflow answers them (creation).
fn render(doc: &Json, with_experiments: bool) -> Json {
    let mut d = doc.clone();
    let o = d.as_object_mut().expect("documents are objects");
    let experiments = o.remove("experiment_ids");
    let tags = o.remove("tags").unwrap_or_else(|| json!({}));
    o.insert("tags".into(), python_json(&tags).into());
    if with_experiments {
        o.insert(
            "experiment_ids".into(),
            experiments.unwrap_or_else(|| json!([])),
        );
    }
    d
}

/// A JSON-text request field (`tags`, `records`), parsed.
fn json_text(req: &Req, key: &str) -> Result<Option<Json>> {
    match req.opt_str(key)? {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|_| MlflowError::invalid(format!("`{key}` must be valid JSON text."))),
    }
}

fn tag_map(v: Option<Json>) -> Result<Map<String, Json>> {
    match v {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(m)) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => Json::String(s),
                    Json::Null => Json::Null,
                    other => Json::String(python_json(&other)),
                };
                (k, v)
            })
            .collect()),
        Some(_) => Err(MlflowError::invalid(
            "`tags` must be a JSON object of tag names to values.",
        )),
    }
}

fn require_experiments(tx: &mut dyn Tx, ws: &str, ids: &[String]) -> crate::store::Result<()> {
    for e in ids {
        if crate::store::queries::experiment(tx, ws, e)?.is_none() {
            return Err(MlflowError::not_found(format!("No Experiment with id={e}")).into());
        }
    }
    Ok(())
}

/// `POST mlflow/datasets/create` (CreateDataset).
pub fn create_dataset(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let experiment_ids = req.str_list("experiment_ids")?;
    let tags: Map<String, Json> = tag_map(json_text(req, "tags")?)?
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let time = ctx.now();
    let id = format!("d-{}", crate::otlp::hex(&super::random_bytes::<16>()));
    let user = tags
        .get("mlflow.user")
        .and_then(Json::as_str)
        .map(str::to_owned);
    let mut doc = json!({
        "dataset_id": id,
        "name": name,
        "tags": tags,
        "digest": digest(&name, time),
        "created_time": time,
        "last_update_time": time,
        "experiment_ids": experiment_ids,
    });
    if let Some(u) = user {
        doc["created_by"] = u.as_str().into();
        doc["last_updated_by"] = u.into();
    }
    ctx.write(|tx| {
        require_experiments(tx, &ctx.workspace, &experiment_ids)?;
        Ok(Decision::change((), put_dataset(&doc, time)))
    })?;
    Ok(json!({ "dataset": render(&doc, true) }))
}

fn dataset_param(req: &Req) -> Result<String> {
    req.str("dataset_id")
}

/// `GET mlflow/datasets/{dataset_id}` (GetDataset).
pub fn get_dataset(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let doc = ctx
        .read(|tx| load(tx, &ctx.workspace, DATASET, &id))?
        .ok_or_else(|| dataset_not_found(&id))?;
    Ok(json!({ "dataset": render(&doc, false) }))
}

/// `DELETE mlflow/datasets/{dataset_id}` (DeleteDataset): the dataset and its records; one
/// that is not there is no error, as in MLflow.
pub fn delete_dataset(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let time = ctx.now();
    ctx.write(|tx| {
        if load(tx, &ctx.workspace, DATASET, &id)?.is_none() {
            return Ok(Decision::no_change(()));
        }
        let mut ops: Vec<Op> = records_of(tx, &ctx.workspace, &id)?
            .iter()
            .map(|r| Op::DeleteGenaiObject {
                kind: RECORD.into(),
                id: r["dataset_record_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                time,
            })
            .collect();
        ops.push(Op::DeleteGenaiObject {
            kind: DATASET.into(),
            id: id.clone(),
            time,
        });
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

fn dataset_field<'a>(d: &'a Json, kind: Kind, key: &str) -> Option<Field<'a>> {
    match kind {
        Kind::Tag => d["tags"].get(key).and_then(Json::as_str).map(Field::Str),
        Kind::Attribute => match key {
            "created_time" | "last_update_time" => d[key].as_i64().map(|n| Field::Num(n as f64)),
            _ => d.get(key).and_then(Json::as_str).map(Field::Str),
        },
        _ => None,
    }
}

/// `POST mlflow/datasets/search` (SearchEvaluationDatasets; the UI also calls it with GET):
/// newest first by default, then by ID.
pub fn search_datasets(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiments = req.str_list("experiment_ids")?;
    let filter = req.opt_str("filter_string")?.unwrap_or_default();
    let clauses = search::parse_filter(&filter, &DATASETS)?;
    let mut order = search::parse_order_by(&req.str_list("order_by")?, &DATASETS)?;
    if order.iter().any(|o| {
        o.kind != Kind::Attribute
            || !matches!(o.key.as_str(), "name" | "created_time" | "last_update_time")
    }) {
        return Err(MlflowError::invalid(
            "Invalid order_by: datasets order by name, created_time or last_update_time.",
        ));
    }
    if order.is_empty() {
        order = search::parse_order_by(&["created_time DESC".into()], &DATASETS)?;
    }
    let max = req.max_results(SEARCH_DEFAULT, SEARCH_MAX)?;
    let offset = req.page_offset()?;
    let mut docs: Vec<Json> = ctx.read(|tx| {
        Ok(tx
            .query(
                "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ?",
                &[ctx.workspace.as_str().into(), DATASET.into()],
            )?
            .iter()
            .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(Json::Null))
            .collect())
    })?;
    docs.retain(|d| {
        (experiments.is_empty()
            || d["experiment_ids"].as_array().is_some_and(|a| {
                a.iter().any(|e| {
                    e.as_str()
                        .is_some_and(|e| experiments.iter().any(|x| x == e))
                })
            }))
            && clauses
                .iter()
                .all(|c| search::matches(c, dataset_field(d, c.kind, &c.key)))
    });
    docs.sort_by(|a, b| {
        for k in &order {
            let o = search::compare_fields(
                dataset_field(a, k.kind, &k.key),
                dataset_field(b, k.kind, &k.key),
                k.ascending,
            );
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        b["dataset_id"].as_str().cmp(&a["dataset_id"].as_str())
    });
    let (page, next) = super::page(docs, offset, max);
    let mut out = json!({});
    if !page.is_empty() {
        out["datasets"] = page
            .iter()
            .map(|d| render(d, false))
            .collect::<Vec<_>>()
            .into();
    }
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

/// `PATCH mlflow/datasets/{dataset_id}/tags` (SetDatasetTags): merged into the dataset's
/// tags; a tag set to null is removed.
pub fn set_dataset_tags(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let tags = tag_map(Some(
        json_text(req, "tags")?.ok_or_else(|| missing("tags"))?,
    ))?;
    let time = ctx.now();
    ctx.write(|tx| {
        let mut doc = load(tx, &ctx.workspace, DATASET, &id)?.ok_or_else(|| {
            MlflowError::not_found(format!("Could not find evaluation dataset with ID {id}"))
        })?;
        let before = doc["tags"].clone();
        let current = doc["tags"].as_object_mut().expect("tags are an object");
        for (k, v) in &tags {
            match v {
                Json::Null => drop(current.remove(k)),
                v => drop(current.insert(k.clone(), v.clone())),
            }
        }
        if doc["tags"] == before {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change((), put_dataset(&doc, time)))
    })?;
    Ok(json!({}))
}

/// `DELETE mlflow/datasets/{dataset_id}/tags/{key}` (DeleteDatasetTag): no error when the
/// dataset or the tag is not there, as in MLflow.
pub fn delete_dataset_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let key = req.str("key")?;
    let time = ctx.now();
    ctx.write(|tx| {
        let Some(mut doc) = load(tx, &ctx.workspace, DATASET, &id)? else {
            return Ok(Decision::no_change(()));
        };
        if doc["tags"]
            .as_object_mut()
            .and_then(|t| t.remove(&key))
            .is_none()
        {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change((), put_dataset(&doc, time)))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/datasets/{dataset_id}/experiment-ids` (GetDatasetExperimentIds).
pub fn get_dataset_experiment_ids(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let doc = ctx.read(|tx| load(tx, &ctx.workspace, DATASET, &id))?;
    let ids = doc
        .and_then(|d| d.get("experiment_ids").cloned())
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    Ok(match ids {
        Some(ids) => json!({ "experiment_ids": ids }),
        None => json!({}),
    })
}

fn change_experiments(ctx: &Ctx, req: &Req, add: bool) -> Result<Json> {
    let id = dataset_param(req)?;
    let ids = req.str_list("experiment_ids")?;
    let time = ctx.now();
    let doc = ctx.write(|tx| {
        let mut doc = load(tx, &ctx.workspace, DATASET, &id)?
            .ok_or_else(|| MlflowError::not_found(format!("Dataset '{id}' not found")))?;
        let mut current: Vec<String> = doc["experiment_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect();
        let before = current.clone();
        if add {
            require_experiments(tx, &ctx.workspace, &ids)?;
            for e in &ids {
                if !current.contains(e) {
                    current.push(e.clone());
                }
            }
        } else {
            current.retain(|e| !ids.contains(e));
        }
        if current == before {
            return Ok(Decision::no_change(doc));
        }
        doc["experiment_ids"] = json!(current);
        doc["last_update_time"] = time.into();
        Ok(Decision::change(doc.clone(), put_dataset(&doc, time)))
    })?;
    Ok(json!({ "dataset": render(&doc, false) }))
}

/// `POST mlflow/datasets/{dataset_id}/add-experiments` (AddDatasetToExperiments).
pub fn add_dataset_to_experiments(ctx: &Ctx, req: &Req) -> Result<Json> {
    change_experiments(ctx, req, true)
}

/// `POST mlflow/datasets/{dataset_id}/remove-experiments` (RemoveDatasetFromExperiments).
pub fn remove_dataset_from_experiments(ctx: &Ctx, req: &Req) -> Result<Json> {
    change_experiments(ctx, req, false)
}

fn field_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// The dataset's schema (field types of inputs, outputs and expectations), extended by
/// `records` as MLflow extends it: a field keeps the type it was first seen with.
fn extend_schema(existing: Option<&str>, records: &[Map<String, Json>]) -> Option<String> {
    if records.is_empty() && existing.is_none() {
        return None;
    }
    let mut schema: Json = existing
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(
            || json!({"inputs": {}, "outputs": {}, "expectations": {}, "version": "1.0"}),
        );
    for r in records {
        for part in ["inputs", "expectations"] {
            if let Some(Json::Object(m)) = r.get(part) {
                for (k, v) in m {
                    if schema[part].get(k).is_none() {
                        schema[part][k] = field_type(v).into();
                    }
                }
            }
        }
        match r.get("outputs") {
            Some(Json::Object(m)) if schema["outputs"].is_object() => {
                for (k, v) in m {
                    if schema["outputs"].get(k).is_none() {
                        schema["outputs"][k] = field_type(v).into();
                    }
                }
            }
            Some(other)
                if !other.is_object()
                    && schema["outputs"].as_object().is_some_and(Map::is_empty) =>
            {
                schema["outputs"] = field_type(other).into();
            }
            _ => {}
        }
    }
    Some(python_json(&schema))
}

/// Checks one record of an upsert; MLflow would fail later, in the middle of the write.
fn check_record(i: usize, r: &Json) -> Result<Map<String, Json>> {
    let Json::Object(m) = r else {
        return Err(MlflowError::invalid(format!(
            "Record {i} must be a JSON object."
        )));
    };
    for key in ["inputs", "expectations", "tags"] {
        if let Some(v) = m.get(key) {
            if !v.is_object() && !v.is_null() {
                return Err(MlflowError::invalid(format!(
                    "Record {i}: `{key}` must be a JSON object."
                )));
            }
        }
    }
    if let Some(s) = m.get("source").filter(|s| !s.is_null()) {
        let t = s["source_type"].as_str().map(str::to_ascii_uppercase);
        if !s.is_object()
            || !t
                .as_deref()
                .is_some_and(|t| RECORD_SOURCE_TYPES.contains(&t))
        {
            return Err(MlflowError::invalid(format!(
                "Record {i}: `source` must be an object with a `source_type` among {RECORD_SOURCE_TYPES:?}."
            )));
        }
    }
    Ok(m.clone())
}

/// `POST mlflow/datasets/{dataset_id}/records` (UpsertDatasetRecords): a record with the
/// inputs of one already there is merged into it (outputs replaced, expectations and tags
/// merged); the others are added.
pub fn upsert_dataset_records(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let records = match json_text(req, "records")?.ok_or_else(|| missing("records"))? {
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, r)| check_record(i, r))
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(MlflowError::invalid(
                "`records` must be a JSON array of records.",
            ))
        }
    };
    let time = ctx.now();
    let (inserted, updated) = ctx.write(|tx| {
        let mut dataset = load(tx, &ctx.workspace, DATASET, &id)?.ok_or_else(|| dataset_not_found(&id))?;
        let mut ops = Vec::new();
        let (mut inserted, mut updated) = (0i64, 0i64);
        let mut updated_by: Option<String> = None;
        // Records of this request by input hash, so that two with the same inputs merge.
        let mut pending: Vec<(String, Json)> = Vec::new();
        for r in &records {
            let inputs = r.get("inputs").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
            let hash = crate::otlp::hex(&Sha256::digest(inputs.to_string().as_bytes()));
            let tags = r.get("tags").and_then(Json::as_object).cloned().unwrap_or_default();
            if let Some(u) = tags.get("mlflow.user").and_then(Json::as_str) {
                updated_by = Some(u.to_owned());
            }
            let existing = match pending.iter().position(|(h, _)| *h == hash) {
                Some(p) => Some(pending.remove(p).1),
                None => tx
                    .query_one(
                        "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ? AND parent = ? AND name = ?",
                        &[ctx.workspace.as_str().into(), RECORD.into(), id.as_str().into(), hash.as_str().into()],
                    )?
                    .map(|row| serde_json::from_str::<Json>(&row.text(0)).unwrap_or(Json::Null)),
            };
            let doc = match existing {
                Some(mut doc) => {
                    if let Some(o) = r.get("outputs") {
                        match o {
                            Json::Null => drop(doc.as_object_mut().map(|d| d.remove("outputs"))),
                            o => doc["outputs"] = o.clone(),
                        }
                    }
                    for part in ["expectations", "tags"] {
                        if let Some(Json::Object(m)) = r.get(part).filter(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
                            let d = doc.as_object_mut().expect("documents are objects");
                            let cur = d.entry(part).or_insert_with(|| json!({}));
                            for (k, v) in m {
                                cur[k] = v.clone();
                            }
                        }
                    }
                    doc["last_update_time"] = time.into();
                    if let Some(u) = tags.get("mlflow.user").and_then(Json::as_str) {
                        doc["last_updated_by"] = u.into();
                    }
                    updated += 1;
                    doc
                }
                None => {
                    inserted += 1;
                    let rid = format!("dr-{}", crate::otlp::hex(&super::random_bytes::<16>()));
                    let mut doc = json!({
                        "dataset_record_id": rid,
                        "dataset_id": id,
                        "inputs": inputs,
                        "created_time": time,
                        "last_update_time": time,
                        "tags": tags,
                    });
                    // As MLflow stores them: no outputs given reads back as `{}`, null as none.
                    match r.get("outputs") {
                        None => doc["outputs"] = json!({}),
                        Some(Json::Null) => {}
                        Some(o) => doc["outputs"] = o.clone(),
                    }
                    if let Some(v) = r.get("expectations").filter(|v| !v.is_null()) {
                        doc["expectations"] = v.clone();
                    }
                    if let Some(s) = r.get("source").filter(|s| !s.is_null()) {
                        let t = s["source_type"].as_str().unwrap_or_default().to_ascii_uppercase();
                        let data = s.get("source_data").cloned().unwrap_or_else(|| json!({}));
                        let sid = if t == "TRACE" { data.get("trace_id") } else { data.get("source_id") };
                        if let Some(sid) = sid.and_then(Json::as_str) {
                            doc["source_id"] = sid.into();
                        }
                        doc["source"] = json!({ "source_type": t, "source_data": data });
                        doc["source_type"] = t.into();
                    }
                    if let Some(u) = tags.get("mlflow.user").and_then(Json::as_str) {
                        doc["created_by"] = u.into();
                        doc["last_updated_by"] = u.into();
                    }
                    doc
                }
            };
            pending.push((hash, doc));
        }
        for (hash, doc) in &pending {
            let rid = doc["dataset_record_id"].as_str().unwrap_or_default();
            ops.push(put(RECORD, rid, Some(&id), hash, doc, time));
        }
        let known = tx
            .query_one(
                "SELECT COUNT(*) FROM genai_objects WHERE workspace = ? AND kind = ? AND parent = ?",
                &[ctx.workspace.as_str().into(), RECORD.into(), id.as_str().into()],
            )?
            .map(|r| r.int(0))
            .unwrap_or(0);
        let name = dataset["name"].as_str().unwrap_or_default().to_owned();
        if let Some(s) = extend_schema(dataset["schema"].as_str(), &records) {
            dataset["schema"] = s.into();
        }
        let count = known + inserted;
        if count > 0 {
            dataset["profile"] = format!("{{\"num_records\": {count}}}").into();
        }
        dataset["digest"] = digest(&name, time).into();
        dataset["last_update_time"] = time.into();
        match &updated_by {
            Some(u) => dataset["last_updated_by"] = u.as_str().into(),
            None => drop(dataset.as_object_mut().map(|d| d.remove("last_updated_by"))),
        }
        ops.push(put_dataset(&dataset, time));
        Ok(Decision::changes((inserted, updated), ops))
    })?;
    Ok(json!({ "inserted_count": inserted, "updated_count": updated }))
}

/// A record as MLflow's `DatasetRecord.to_dict` writes it.
fn record_dict(doc: &Json) -> Json {
    let mut d = doc.clone();
    if let Some(o) = d.as_object_mut() {
        if o.get("source").is_none() {
            o.remove("source_type");
        }
    }
    d
}

/// `GET mlflow/datasets/{dataset_id}/records` (GetDatasetRecords): oldest first, a page of
/// `max_results` (1,000 by default) as JSON text, with a cursor to the next.
pub fn get_dataset_records(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let max = match req.opt_i64("max_results")? {
        None | Some(0) => RECORDS_DEFAULT,
        Some(n) if n < 0 => {
            return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )))
        }
        Some(n) => n,
    } as usize;
    let after = match req.opt_str("page_token")?.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => {
            let bad = || MlflowError::invalid(format!("Invalid page token '{t}'."));
            let text = base64_decode(&t).ok_or_else(bad)?;
            let (time, rid) = text.split_once(':').ok_or_else(bad)?;
            Some((time.parse::<i64>().map_err(|_| bad())?, rid.to_owned()))
        }
    };
    let records = ctx.read(|tx| {
        if load(tx, &ctx.workspace, DATASET, &id)?.is_none() {
            return Err(dataset_not_found(&id).into());
        }
        records_of(tx, &ctx.workspace, &id)
    })?;
    let mut rest: Vec<&Json> = records
        .iter()
        .filter(|r| match &after {
            None => true,
            Some((t, rid)) => {
                let (rt, rr) = (
                    r["created_time"].as_i64().unwrap_or(0),
                    r["dataset_record_id"].as_str().unwrap_or_default(),
                );
                rt > *t || (rt == *t && rr > rid.as_str())
            }
        })
        .collect();
    let more = rest.len() > max;
    rest.truncate(max);
    let list: Vec<Json> = rest.iter().map(|r| record_dict(r)).collect();
    let mut out = json!({ "records": python_json(&Json::Array(list)) });
    if more {
        let last = rest.last().expect("a full page");
        let cursor = format!(
            "{}:{}",
            last["created_time"].as_i64().unwrap_or(0),
            last["dataset_record_id"].as_str().unwrap_or_default()
        );
        out["next_page_token"] = base64_encode(cursor.as_bytes()).into();
    }
    Ok(out)
}

/// `DELETE mlflow/datasets/{dataset_id}/records` (DeleteDatasetRecords).
pub fn delete_dataset_records(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = dataset_param(req)?;
    let ids = req.str_list("dataset_record_ids")?;
    let time = ctx.now();
    let n = ctx.write(|tx| {
        let mut dataset =
            load(tx, &ctx.workspace, DATASET, &id)?.ok_or_else(|| dataset_not_found(&id))?;
        let mut ops = Vec::new();
        for rid in &ids {
            let found = load(tx, &ctx.workspace, RECORD, rid)?;
            if found.is_some_and(|r| r["dataset_id"] == id.as_str())
                && !ops
                    .iter()
                    .any(|o| matches!(o, Op::DeleteGenaiObject { id, .. } if id == rid))
            {
                ops.push(Op::DeleteGenaiObject {
                    kind: RECORD.into(),
                    id: rid.clone(),
                    time,
                });
            }
        }
        let n = ops.len() as i64;
        if n == 0 {
            return Ok(Decision::no_change(0));
        }
        let before: i64 = dataset["profile"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Json>(p).ok())
            .and_then(|p| p["num_records"].as_i64())
            .unwrap_or(0);
        let left = (before - n).max(0);
        // MLflow writes `null` as the profile of a dataset left empty.
        dataset["profile"] = if left > 0 {
            format!("{{\"num_records\": {left}}}")
        } else {
            "null".into()
        }
        .into();
        ops.push(put_dataset(&dataset, time));
        Ok(Decision::changes(n, ops))
    })?;
    Ok(json!({ "deleted_count": n }))
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(s: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}
