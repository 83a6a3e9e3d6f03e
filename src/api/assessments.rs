//! Assessments of traces (MLflow 3's feedback, expectations and issue references, with
//! overrides) and a trace's links to runs and to prompt versions, on the change log
//! (docs/design/traces.md).
//!
//! Each is a `genai_objects` row by kind: `assessment` (parent: its trace; the document is
//! the assessment in MLflow's JSON, as every route answers it), `trace_run` and
//! `trace_prompt` (parent: the trace; name: the run ID or `NAME/VERSION`). A change is one
//! `PutGenaiObject` / `DeleteGenaiObject` event, or two when an override marks the assessment
//! it replaces invalid (or valid again when the override goes): so assessments replicate,
//! archive and restore with the traces they judge.

use super::traces::{self, parse_timestamp, python_json, timestamp_json};
use super::{missing, wrong_type, Ctx, Req};
use crate::store::{Decision, Tx};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use tandem_core::{MlflowError, Op, Result};

pub(crate) const ASSESSMENT: &str = "assessment";
pub(crate) const TRACE_RUN: &str = "trace_run";
pub(crate) const TRACE_PROMPT: &str = "trace_prompt";
const SOURCE_TYPES: &[&str] = &["SOURCE_TYPE_UNSPECIFIED", "LLM_JUDGE", "HUMAN", "CODE"];
/// MLflow's `MAX_TRACE_LINKS_PER_REQUEST`.
const MAX_LINKS: usize = 100;
/// The width of MLflow's `assessments.name` and `assessment_id` columns.
const MAX_NAME: usize = 250;
const MAX_ID: usize = 50;

fn get<'a>(doc: &'a Json, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Json::as_str)
}

/// The assessments of each of `trace_ids`, oldest first (as MLflow lists them on a trace).
pub(crate) fn of_traces(
    tx: &mut dyn Tx,
    ws: &str,
    trace_ids: &[&str],
) -> crate::store::Result<HashMap<String, Vec<Json>>> {
    let mut out: HashMap<String, Vec<Json>> = HashMap::new();
    for chunk in trace_ids.chunks(200) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<crate::store::Value> = vec![ws.into(), ASSESSMENT.into()];
        params.extend(chunk.iter().map(|t| (*t).into()));
        for r in tx.query(
            &format!("SELECT parent, doc FROM genai_objects WHERE workspace = ? AND kind = ? AND parent IN ({marks})"),
            &params,
        )? {
            let doc: Json = serde_json::from_str(&r.text(1)).unwrap_or(Json::Null);
            out.entry(r.text(0)).or_default().push(doc);
        }
    }
    for docs in out.values_mut() {
        docs.sort_by_key(|d| {
            (
                created_ms(d),
                get(d, "assessment_id").unwrap_or_default().to_owned(),
            )
        });
    }
    Ok(out)
}

fn created_ms(doc: &Json) -> i64 {
    parse_timestamp(&doc["create_time"], "create_time")
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn assessment(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Option<Json>> {
    crate::store::queries::genai_object(tx, ws, ASSESSMENT, id)
}

/// The assessment `id` of trace `trace_id`, or MLflow's errors: the trace, then the
/// assessment, not found.
fn existing(tx: &mut dyn Tx, ws: &str, trace_id: &str, id: &str) -> crate::store::Result<Json> {
    if !traces::is_live(tx, ws, trace_id)? {
        return Err(MlflowError::not_found(format!(
            "Trace with request_id '{trace_id}' not found"
        ))
        .into());
    }
    match assessment(tx, ws, id)? {
        Some(a) if get(&a, "trace_id") == Some(trace_id) => Ok(a),
        _ => Err(MlflowError::not_found(format!(
            "Assessment with ID '{id}' not found for trace '{trace_id}'"
        ))
        .into()),
    }
}

fn put(doc: &Json, time: i64) -> Op {
    Op::PutGenaiObject {
        kind: ASSESSMENT.into(),
        id: get(doc, "assessment_id").unwrap_or_default().to_owned(),
        parent: get(doc, "trace_id").map(str::to_owned),
        name: get(doc, "assessment_name").map(str::to_owned),
        doc: doc.to_string(),
        time,
    }
}

/// An expectation's value as MLflow writes it: scalars as `value`, anything else (lists,
/// objects) as JSON text in `serialized_value`.
fn expectation_json(v: Json) -> Json {
    match v {
        Json::Array(_) | Json::Object(_) => json!({
            "serialized_value": { "serialization_format": "JSON_FORMAT", "value": python_json(&v) }
        }),
        other => json!({ "value": other }),
    }
}

fn expectation_value(e: &Req) -> Result<Json> {
    if let Some(s) = e.obj("serialized_value")? {
        let format = s.opt_str("serialization_format")?.unwrap_or_default();
        if format != "JSON_FORMAT" {
            return Err(MlflowError::invalid(format!(
                "Unknown serialization format: {format}. Only JSON_FORMAT is supported."
            )));
        }
        let text = s.opt_str("value")?.unwrap_or_default();
        return serde_json::from_str(&text).map_err(|_| {
            MlflowError::invalid("The expectation's serialized_value is not valid JSON.")
        });
    }
    Ok(e.0.get("value").cloned().unwrap_or(Json::Null))
}

fn feedback_json(f: &Req) -> Result<Json> {
    let mut out = json!({ "value": f.0.get("value").cloned().unwrap_or(Json::Null) });
    if let Some(e) = f.obj("error")? {
        let mut err = Map::new();
        for k in ["error_code", "error_message", "stack_trace"] {
            if let Some(v) = e.opt_str(k)? {
                err.insert(k.into(), v.into());
            }
        }
        out["error"] = Json::Object(err);
    }
    Ok(out)
}

/// A new assessment's document from the client's, as MLflow's store keeps it.
fn new_doc(a: &Req, trace_id: &str, now: i64) -> Result<Json> {
    let name = a.opt_str("assessment_name")?.unwrap_or_default();
    if name.chars().count() > MAX_NAME {
        return Err(MlflowError::invalid(format!(
            "An assessment's name is at most {MAX_NAME} characters."
        )));
    }
    let kinds: Vec<&str> = ["feedback", "expectation", "issue"]
        .into_iter()
        .filter(|k| a.has(k))
        .collect();
    let [kind] = kinds.as_slice() else {
        return Err(MlflowError::invalid(
            "An assessment holds exactly one of `feedback`, `expectation` or `issue`.",
        ));
    };
    let mut source = Map::new();
    if let Some(s) = a.obj("source")? {
        let t = s
            .opt_str("source_type")?
            .unwrap_or_else(|| "SOURCE_TYPE_UNSPECIFIED".into());
        let t = if t == "AI_JUDGE" {
            "LLM_JUDGE".into()
        } else {
            t
        };
        if !SOURCE_TYPES.contains(&t.as_str()) {
            return Err(wrong_type("source_type", &Json::String(t)));
        }
        source.insert("source_type".into(), t.into());
        if let Some(id) = s.opt_str("source_id")?.filter(|s| !s.is_empty()) {
            source.insert("source_id".into(), id.into());
        }
    } else {
        source.insert("source_type".into(), "SOURCE_TYPE_UNSPECIFIED".into());
    }
    let time = |k: &str| -> Result<i64> {
        Ok(parse_timestamp(a.0.get(k).unwrap_or(&Json::Null), k)?
            .filter(|t| *t != 0)
            .unwrap_or(now))
    };
    let id = match a.opt_str("assessment_id")?.filter(|s| !s.is_empty()) {
        Some(id) if id.chars().count() > MAX_ID => {
            return Err(MlflowError::invalid(format!(
                "An assessment ID is at most {MAX_ID} characters."
            )))
        }
        Some(id) => id,
        None => format!("a-{}", crate::otlp::hex(&super::random_bytes::<16>())),
    };
    let mut doc = json!({
        "assessment_id": id,
        "assessment_name": name,
        "trace_id": trace_id,
        "source": source,
        "create_time": timestamp_json(time("create_time")?),
        "last_update_time": timestamp_json(time("last_update_time")?),
        "valid": true,
    });
    if let Some(s) = a.opt_str("span_id")?.filter(|s| !s.is_empty()) {
        doc["span_id"] = s.into();
    }
    match *kind {
        "feedback" => {
            doc["feedback"] = feedback_json(a.obj("feedback")?.expect("checked above"))?;
            if let Some(o) = a.opt_str("overrides")?.filter(|s| !s.is_empty()) {
                doc["overrides"] = o.into();
            }
        }
        "expectation" => {
            doc["expectation"] =
                expectation_json(expectation_value(a.obj("expectation")?.expect("checked"))?);
        }
        _ => {
            let issue = a.obj("issue")?.expect("checked above");
            doc["issue"] =
                json!({ "issue_name": issue.opt_str("issue_name")?.unwrap_or_default() });
        }
    }
    // MLflow keeps a rationale for feedback and issue references, not for expectations.
    if *kind != "expectation" {
        if let Some(r) = a.opt_str("rationale")?.filter(|s| !s.is_empty()) {
            doc["rationale"] = r.into();
        }
    }
    if let Some(m) = a.str_map("metadata")?.filter(|m| !m.is_empty()) {
        doc["metadata"] = json!(m);
    }
    Ok(doc)
}

/// `POST mlflow/traces/{trace_id}/assessments` (CreateAssessment). An override marks the
/// assessment it overrides invalid, in the same change.
pub fn create_assessment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let a = req
        .obj("assessment")?
        .ok_or_else(|| missing("assessment"))?;
    let trace_id = match req.opt_str("trace_id")?.filter(|s| !s.is_empty()) {
        Some(t) => t,
        None => a.str("trace_id")?,
    };
    let time = ctx.now();
    let doc = new_doc(a, &trace_id, time)?;
    let id = get(&doc, "assessment_id").unwrap_or_default().to_owned();
    ctx.write(|tx| {
        if !traces::is_live(tx, &ctx.workspace, &trace_id)? {
            return Err(traces::not_found(&trace_id).into());
        }
        if assessment(tx, &ctx.workspace, &id)?.is_some() {
            return Err(MlflowError::new(
                tandem_core::ErrorCode::ResourceAlreadyExists,
                format!("Assessment with ID '{id}' already exists."),
            )
            .into());
        }
        let mut ops = Vec::new();
        if let Some(o) = get(&doc, "overrides") {
            let mut old = match assessment(tx, &ctx.workspace, o)? {
                Some(old) if get(&old, "trace_id") == Some(trace_id.as_str()) => old,
                _ => {
                    return Err(MlflowError::not_found(format!(
                        "Assessment with ID '{o}' not found for trace '{trace_id}'"
                    ))
                    .into())
                }
            };
            old["valid"] = false.into();
            ops.push(put(&old, time));
        }
        ops.push(put(&doc, time));
        Ok(Decision::changes(doc.clone(), ops))
    })?;
    Ok(json!({ "assessment": doc }))
}

/// `GET mlflow/traces/{trace_id}/assessments/{assessment_id}` (GetAssessment).
pub fn get_assessment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (trace_id, id) = (req.str("trace_id")?, req.str("assessment_id")?);
    let doc = ctx.read(|tx| existing(tx, &ctx.workspace, &trace_id, &id))?;
    Ok(json!({ "assessment": doc }))
}

/// `update_mask`: protobuf's JSON form (`"assessmentName,feedback"`) or `{"paths": [...]}`.
fn mask_paths(req: &Req) -> Result<Vec<String>> {
    let camel_to_snake = |p: &str| super::graphql::snake_case(p.trim());
    match req.0.get("update_mask") {
        None | Some(Json::Null) => Err(missing("update_mask")),
        Some(Json::String(s)) => Ok(s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(camel_to_snake)
            .collect()),
        Some(Json::Object(_)) => Ok(req
            .obj("update_mask")?
            .expect("an object")
            .str_list("paths")?
            .iter()
            .map(|p| camel_to_snake(p))
            .collect()),
        Some(v) => Err(wrong_type("update_mask", v)),
    }
}

/// `PATCH mlflow/traces/{trace_id}/assessments/{assessment_id}` (UpdateAssessment): the
/// fields the mask names; source, span, creation time, overrides and validity stay;
/// metadata merges.
pub fn update_assessment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (trace_id, id) = (req.str("trace_id")?, req.str("assessment_id")?);
    let a = req
        .obj("assessment")?
        .ok_or_else(|| missing("assessment"))?;
    let paths = mask_paths(req)?;
    let has = |p: &str| paths.iter().any(|x| x == p);
    if has("expectation") && has("feedback") {
        return Err(MlflowError::invalid(
            "Cannot specify both `expectation` and `feedback` parameters.",
        ));
    }
    let name = has("assessment_name")
        .then(|| a.opt_str("assessment_name"))
        .transpose()?
        .flatten();
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
        return Err(MlflowError::invalid(format!(
            "An assessment's name is at most {MAX_NAME} characters."
        )));
    }
    let feedback = match (has("feedback"), a.obj("feedback")?) {
        (true, Some(f)) => Some(feedback_json(f)?),
        (true, None) => Some(json!({ "value": null })),
        _ => None,
    };
    let expectation = match (has("expectation"), a.obj("expectation")?) {
        (true, Some(e)) => Some(expectation_json(expectation_value(e)?)),
        (true, None) => Some(json!({ "value": null })),
        _ => None,
    };
    let rationale = has("rationale")
        .then(|| a.opt_str("rationale"))
        .transpose()?
        .flatten();
    let metadata = has("metadata")
        .then(|| a.str_map("metadata"))
        .transpose()?
        .flatten();
    let time = ctx.now();
    let doc = ctx.write(|tx| {
        let mut doc = existing(tx, &ctx.workspace, &trace_id, &id)?;
        let is_expectation = doc.get("expectation").is_some();
        if expectation.is_some() && !is_expectation {
            return Err(MlflowError::invalid(
                "Cannot update expectation value on a Feedback assessment.",
            )
            .into());
        }
        if feedback.is_some() && doc.get("feedback").is_none() {
            return Err(MlflowError::invalid(
                "Cannot update feedback value on an Expectation assessment.",
            )
            .into());
        }
        if let Some(n) = &name {
            doc["assessment_name"] = n.as_str().into();
        }
        if let Some(f) = &feedback {
            doc["feedback"] = f.clone();
        }
        if let Some(e) = &expectation {
            doc["expectation"] = e.clone();
        }
        match (&rationale, is_expectation) {
            (_, true) => drop(doc.as_object_mut().map(|o| o.remove("rationale"))),
            (Some(r), false) if !r.is_empty() => doc["rationale"] = r.as_str().into(),
            _ => {}
        }
        if let Some(m) = metadata.as_ref().filter(|m| !m.is_empty()) {
            let merged = doc
                .as_object_mut()
                .expect("documents are objects")
                .entry("metadata")
                .or_insert_with(|| json!({}));
            for (k, v) in m {
                merged[k] = v.as_str().into();
            }
        }
        doc["last_update_time"] = timestamp_json(time).into();
        Ok(Decision::change(doc.clone(), put(&doc, time)))
    })?;
    Ok(json!({ "assessment": doc }))
}

/// `DELETE mlflow/traces/{trace_id}/assessments/{assessment_id}` (DeleteAssessment):
/// deleting an override makes the assessment it overrode valid again. Deleting one that is
/// not there changes nothing, as in MLflow.
pub fn delete_assessment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (trace_id, id) = (req.str("trace_id")?, req.str("assessment_id")?);
    let time = ctx.now();
    ctx.write(|tx| {
        if !traces::is_live(tx, &ctx.workspace, &trace_id)? {
            return Err(traces::not_found(&trace_id).into());
        }
        let doc = match assessment(tx, &ctx.workspace, &id)? {
            Some(d) if get(&d, "trace_id") == Some(trace_id.as_str()) => d,
            _ => return Ok(Decision::no_change(())),
        };
        let mut ops = vec![Op::DeleteGenaiObject {
            kind: ASSESSMENT.into(),
            id: id.clone(),
            time,
        }];
        if let Some(o) = get(&doc, "overrides") {
            if let Some(mut old) = assessment(tx, &ctx.workspace, o)? {
                old["valid"] = true.into();
                ops.push(put(&old, time));
            }
        }
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------------------
// Links

fn link(kind: &str, trace_id: &str, target: &str, time: i64) -> Op {
    Op::PutGenaiObject {
        kind: kind.into(),
        id: format!("{trace_id} {target}"),
        parent: Some(trace_id.into()),
        name: Some(target.into()),
        doc: json!({ "trace_id": trace_id, "target": target }).to_string(),
        time,
    }
}

fn linked(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    trace_id: &str,
    target: &str,
) -> crate::store::Result<bool> {
    Ok(tx
        .query_one(
            "SELECT 1 FROM genai_objects WHERE workspace = ? AND kind = ? AND id = ?",
            &[
                ws.into(),
                kind.into(),
                format!("{trace_id} {target}").into(),
            ],
        )?
        .is_some())
}

/// The traces linked to `target` (a run ID, or a prompt version `NAME/VERSION`).
pub(crate) fn traces_linked_to(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    target: &str,
) -> crate::store::Result<Vec<String>> {
    Ok(tx
        .query(
            "SELECT parent FROM genai_objects WHERE workspace = ? AND kind = ? AND name = ?",
            &[ws.into(), kind.into(), target.into()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// `POST mlflow/traces/link-to-run` (LinkTracesToRun): at most 100 traces a call; a trace
/// so linked is found by a `run_id` search filter like one the run recorded.
pub fn link_traces_to_run(ctx: &Ctx, req: &Req) -> Result<Json> {
    if !req.has("trace_ids") {
        return Err(missing("trace_ids"));
    }
    let ids = req.str_list("trace_ids")?;
    let run_id = req.str("run_id")?;
    if ids.len() > MAX_LINKS {
        return Err(MlflowError::invalid(format!(
            "Cannot link more than {MAX_LINKS} traces to a run in a single request. Provided {} traces.",
            ids.len()
        )));
    }
    let time = ctx.now();
    ctx.write(|tx| {
        if crate::store::queries::run(tx, &ctx.workspace, &run_id)?.is_none() {
            return Err(MlflowError::not_found(format!("Run with id={run_id} not found")).into());
        }
        let mut ops = Vec::new();
        for t in &ids {
            if !traces::is_live(tx, &ctx.workspace, t)? {
                return Err(traces::not_found(t).into());
            }
            if !linked(tx, &ctx.workspace, TRACE_RUN, t, &run_id)?
                && !ops
                    .iter()
                    .any(|o| matches!(o, Op::PutGenaiObject { parent: Some(p), .. } if p == t))
            {
                ops.push(link(TRACE_RUN, t, &run_id, time));
            }
        }
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

/// `POST mlflow/traces/link-prompts` (LinkPromptsToTrace): a trace so linked is found by a
/// `prompt = "NAME/VERSION"` search filter.
pub fn link_prompts_to_trace(ctx: &Ctx, req: &Req) -> Result<Json> {
    let trace_id = req.str("trace_id")?;
    if !req.has("prompt_versions") {
        return Err(missing("prompt_versions"));
    }
    let mut targets = Vec::new();
    for pv in req.list("prompt_versions")? {
        let name = pv.str("name")?;
        let version = pv.str("version")?;
        if version.parse::<u64>().is_err() {
            return Err(MlflowError::invalid(format!(
                "Invalid prompt version '{version}' for prompt '{name}': a version is a positive integer."
            )));
        }
        let t = format!("{name}/{version}");
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let time = ctx.now();
    ctx.write(|tx| {
        if !traces::is_live(tx, &ctx.workspace, &trace_id)? {
            return Err(traces::not_found(&trace_id).into());
        }
        let mut ops = Vec::new();
        for t in &targets {
            if !linked(tx, &ctx.workspace, TRACE_PROMPT, &trace_id, t)? {
                ops.push(link(TRACE_PROMPT, &trace_id, t, time));
            }
        }
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------------------
// Search

/// The value a `feedback.NAME` / `expectation.NAME` filter compares: the trace's valid
/// assessments of that kind and name (numbers as numbers; other values as MLflow stores
/// them: strings bare, the rest as JSON text).
pub(crate) fn values<'a>(
    assessments: &'a [Json],
    kind: &str,
    name: &str,
) -> Vec<AssessmentValue<'a>> {
    assessments
        .iter()
        .filter(|a| a["valid"] != false && get(a, "assessment_name") == Some(name))
        .filter_map(|a| {
            let v = a.get(kind)?;
            let v = match v.get("serialized_value") {
                Some(s) => return Some(AssessmentValue::Text(s["value"].as_str()?.to_owned())),
                None => v.get("value")?,
            };
            Some(match v {
                Json::Number(n) => AssessmentValue::Num(n.as_f64().unwrap_or(f64::NAN)),
                Json::String(s) => AssessmentValue::Str(s),
                Json::Bool(b) => AssessmentValue::Text(b.to_string()),
                Json::Null => AssessmentValue::Text("null".into()),
                other => AssessmentValue::Text(python_json(other)),
            })
        })
        .collect()
}

pub(crate) enum AssessmentValue<'a> {
    Num(f64),
    Str(&'a str),
    Text(String),
}

impl AssessmentValue<'_> {
    pub(crate) fn field(&self) -> tandem_core::search::Field<'_> {
        use tandem_core::search::Field;
        match self {
            AssessmentValue::Num(n) => Field::Num(*n),
            AssessmentValue::Str(s) => Field::Str(s),
            AssessmentValue::Text(s) => Field::Str(s),
        }
    }
}

/// Whether a trace links to issue `issue_id` (an issue reference assessment, valid).
pub(crate) fn has_issue(assessments: &[Json], issue_id: &str) -> bool {
    assessments
        .iter()
        .any(|a| a.get("issue").is_some() && get(a, "assessment_name") == Some(issue_id))
}
