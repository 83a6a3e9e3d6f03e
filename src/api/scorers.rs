//! MLflow 3's registered scorers (`Scorer.register`, `list_scorers`, `get_scorer`,
//! `delete_scorer`): versioned, per experiment and name, on the change log as one
//! `genai_objects` row a scorer (kind `scorer`, id `EXPERIMENT/NAME`, the document holding
//! every version). tandem never runs a scorer; clients that load one do, so a scorer carrying
//! Python source (`@scorer`) is refused unless `MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS` is set,
//! as on MLflow's server.

use super::{missing, Ctx, Req};
use crate::store::{Decision, Tx};
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Op, Result};

const SCORER: &str = "scorer";

/// MLflow's message for a `@scorer` registration a server does not allow.
const CUSTOM_SCORERS_OFF: &str = "Custom scorer registration (using @scorer decorator) is disabled by default outside of Databricks tracking environments due to security concerns. Custom scorers require arbitrary code execution during deserialization.\n\nTo use custom scorers:\n1. Configure MLflow to use a Databricks tracking URI, or\n2. Manage your custom scorer code in a source code repository (e.g., GitHub) and import it directly, or\n3. On a self-managed MLflow server (or local environment) that you trust to run the scorer's code, set the MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS environment variable to true, or\n4. Use built-in scorers or make_judge() scorers instead.";

fn custom_scorers_allowed() -> bool {
    std::env::var("MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"))
}

/// Whether a serialized scorer carries Python source anywhere (an ensemble's members too).
fn has_call_source(v: &Json) -> bool {
    match v {
        Json::Object(o) => {
            o.get("call_source").is_some_and(|c| !c.is_null()) || o.values().any(has_call_source)
        }
        Json::Array(a) => a.iter().any(has_call_source),
        _ => false,
    }
}

/// The judge model a serialized scorer names, where MLflow looks for it.
fn model_of(v: &Json) -> Option<&Json> {
    for key in [
        "instructions_judge_pydantic_data",
        "builtin_scorer_pydantic_data",
        "third_party_scorer_data",
    ] {
        if let Some(d) = v.get(key).filter(|d| d.is_object()) {
            return d.get("model");
        }
    }
    v.get("memory_augmented_judge_data")
        .and_then(|m| m.get("base_judge"))
        .and_then(model_of)
}

fn not_found(name: &str, experiment_id: &str, version: Option<i64>) -> MlflowError {
    match version {
        Some(v) => MlflowError::not_found(format!(
            "Scorer with name '{name}' and version {v} not found for experiment {experiment_id}."
        )),
        None => MlflowError::not_found(format!(
            "Scorer with name '{name}' not found for experiment {experiment_id}."
        )),
    }
}

fn load(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_id: &str,
    name: &str,
) -> crate::store::Result<Option<Json>> {
    crate::store::queries::genai_object(tx, ws, SCORER, &format!("{experiment_id}/{name}"))
}

/// The experiment must exist and be active, as MLflow's store checks it.
fn active(tx: &mut dyn Tx, ws: &str, experiment_id: &str) -> crate::store::Result<()> {
    super::traces::active_experiment(tx, ws, experiment_id).map(drop)
}

/// A version as MLflow's `Scorer` message. Its `experiment_id` is an int32 there: tandem's
/// experiment IDs (globally unique, 64-bit) are left out when they do not fit, and the
/// client then reads 0 (docs/compatibility.md).
fn render(doc: &Json, v: &Json) -> Json {
    let mut out = json!({
        "scorer_name": doc["name"],
        "scorer_version": v["version"],
        "serialized_scorer": v["serialized_scorer"],
        "creation_time": v["creation_time"],
        "scorer_id": doc["scorer_id"],
    });
    if let Some(e) = doc["experiment_id"]
        .as_str()
        .and_then(|e| e.parse::<i32>().ok())
    {
        out["experiment_id"] = e.into();
    }
    out
}

fn versions(doc: &Json) -> Vec<Json> {
    doc["versions"].as_array().cloned().unwrap_or_default()
}

fn version_param(req: &Req) -> Result<Option<i64>> {
    req.opt_i64("version")
}

/// `POST mlflow/scorers/register` (RegisterScorer): a new version of the experiment's scorer
/// of that name (version 1 for a new name).
pub fn register_scorer(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = req.opt_str("name")?.ok_or_else(|| missing("name"))?;
    let serialized = req.str("serialized_scorer")?;
    let data: Json = serde_json::from_str(&serialized)
        .map_err(|_| MlflowError::invalid("serialized_scorer must be valid JSON"))?;
    if has_call_source(&data) && !custom_scorers_allowed() {
        return Err(MlflowError::invalid(CUSTOM_SCORERS_OFF));
    }
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(
            "Scorer name cannot be empty or contain only whitespace.",
        ));
    }
    match model_of(&data) {
        None | Some(Json::Null) => {}
        Some(Json::String(m)) if !m.trim().is_empty() => {}
        Some(Json::String(_)) => {
            return Err(MlflowError::invalid(
                "Scorer model cannot be empty or contain only whitespace.",
            ))
        }
        Some(_) => return Err(MlflowError::invalid("Scorer model must be a string.")),
    }
    let gateway_endpoint = model_of(&data)
        .and_then(Json::as_str)
        .and_then(|m| m.strip_prefix("gateway:/"))
        .map(str::to_owned);
    let time = ctx.now();
    let (doc, version) = ctx.write(|tx| {
        active(tx, &ctx.workspace, &experiment_id)?;
        if let Some(ep) = &gateway_endpoint {
            let known = tx
                .query_one(
                    "SELECT 1 FROM gateway_objects WHERE workspace = ? AND kind = 'endpoint' AND name = ?",
                    &[ctx.workspace.as_str().into(), ep.as_str().into()],
                )?
                .is_some();
            if !known {
                return Err(MlflowError::not_found(format!(
                    "GatewayEndpoint not found ({ep})"
                ))
                .into());
            }
        }
        let mut doc = load(tx, &ctx.workspace, &experiment_id, &name)?.unwrap_or_else(|| {
            json!({
                "scorer_id": uuid_v4(),
                "experiment_id": experiment_id,
                "name": name,
                "versions": [],
            })
        });
        let next = versions(&doc)
            .iter()
            .filter_map(|v| v["version"].as_i64())
            .max()
            .unwrap_or(0)
            + 1;
        let v = json!({ "version": next, "serialized_scorer": serialized, "creation_time": time });
        doc["versions"]
            .as_array_mut()
            .expect("versions are a list")
            .push(v.clone());
        let op = Op::PutGenaiObject {
            kind: SCORER.into(),
            id: format!("{experiment_id}/{name}"),
            parent: Some(experiment_id.clone()),
            name: Some(name.clone()),
            doc: doc.to_string(),
            time,
        };
        Ok(Decision::change((doc, v), op))
    })?;
    Ok(json!({
        "version": version["version"],
        "scorer_id": doc["scorer_id"],
        "experiment_id": experiment_id,
        "name": name,
        "serialized_scorer": version["serialized_scorer"],
        "creation_time": version["creation_time"],
    }))
}

/// A version-4 UUID in its text form, as MLflow's scorer IDs are.
fn uuid_v4() -> String {
    let mut b = super::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::otlp::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `GET mlflow/scorers/list` (ListScorers): the latest version of each of an experiment's
/// scorers (or of every active experiment's), by experiment and name.
pub fn list_scorers(ctx: &Ctx, req: &Req) -> Result<Json> {
    let one = req.opt_str("experiment_id")?.filter(|s| !s.is_empty());
    let many = req
        .has("experiment_ids")
        .then(|| req.str_list("experiment_ids"))
        .transpose()?;
    if one.is_some() && many.is_some() {
        return Err(MlflowError::invalid("Cannot specify both 'experiment_id' and 'experiment_ids'. Use 'experiment_ids' to scope the query to multiple experiments, or 'experiment_id' to scope it to a single experiment."));
    }
    let docs: Vec<Json> = ctx.read(|tx| {
        if let Some(e) = &one {
            active(tx, &ctx.workspace, e)?;
        }
        let mut docs: Vec<Json> = tx
            .query(
                "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ?",
                &[ctx.workspace.as_str().into(), SCORER.into()],
            )?
            .iter()
            .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(Json::Null))
            .collect();
        let mut keep = Vec::new();
        for d in docs.drain(..) {
            let e = d["experiment_id"].as_str().unwrap_or_default().to_owned();
            let wanted = match (&one, &many) {
                (Some(x), _) => *x == e,
                (_, Some(list)) => list.contains(&e),
                _ => true,
            };
            let live = crate::store::queries::experiment(tx, &ctx.workspace, &e)?
                .is_some_and(|x| x["lifecycle_stage"] == "active");
            if wanted && live {
                keep.push(d);
            }
        }
        Ok(keep)
    })?;
    let mut out: Vec<(String, String, Json)> = docs
        .iter()
        .filter_map(|d| {
            let latest = versions(d)
                .into_iter()
                .max_by_key(|v| v["version"].as_i64())?;
            Some((
                d["experiment_id"].as_str()?.to_owned(),
                d["name"].as_str()?.to_owned(),
                render(d, &latest),
            ))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let scorers: Vec<Json> = out.into_iter().map(|(_, _, s)| s).collect();
    Ok(if scorers.is_empty() {
        json!({})
    } else {
        json!({ "scorers": scorers })
    })
}

fn existing(ctx: &Ctx, experiment_id: &str, name: &str) -> Result<Json> {
    ctx.read(|tx| {
        active(tx, &ctx.workspace, experiment_id)?;
        load(tx, &ctx.workspace, experiment_id, name)?
            .filter(|d| !versions(d).is_empty())
            .ok_or_else(|| not_found(name, experiment_id, None).into())
    })
}

/// `GET mlflow/scorers/versions` (ListScorerVersions): oldest first.
pub fn list_scorer_versions(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (experiment_id, name) = (req.str("experiment_id")?, req.str("name")?);
    let doc = existing(ctx, &experiment_id, &name)?;
    let mut vs = versions(&doc);
    vs.sort_by_key(|v| v["version"].as_i64());
    Ok(json!({ "scorers": vs.iter().map(|v| render(&doc, v)).collect::<Vec<_>>() }))
}

/// `GET mlflow/scorers/get` (GetScorer): the latest version, or the one asked for.
pub fn get_scorer(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (experiment_id, name) = (req.str("experiment_id")?, req.str("name")?);
    let version = version_param(req)?;
    let doc = existing(ctx, &experiment_id, &name)?;
    let v = versions(&doc)
        .into_iter()
        .filter(|v| version.is_none_or(|n| v["version"].as_i64() == Some(n)))
        .max_by_key(|v| v["version"].as_i64())
        .ok_or_else(|| not_found(&name, &experiment_id, version))?;
    Ok(json!({ "scorer": render(&doc, &v) }))
}

/// `DELETE mlflow/scorers/delete` (DeleteScorer): one version, or the scorer with all of
/// them.
pub fn delete_scorer(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (experiment_id, name) = (req.str("experiment_id")?, req.str("name")?);
    let version = version_param(req)?;
    let time = ctx.now();
    ctx.write(|tx| {
        active(tx, &ctx.workspace, &experiment_id)?;
        let mut doc = load(tx, &ctx.workspace, &experiment_id, &name)?
            .ok_or_else(|| not_found(&name, &experiment_id, None))?;
        let id = format!("{experiment_id}/{name}");
        let Some(n) = version else {
            return Ok(Decision::change(
                (),
                Op::DeleteGenaiObject {
                    kind: SCORER.into(),
                    id,
                    time,
                },
            ));
        };
        let vs = doc["versions"].as_array_mut().expect("versions are a list");
        let before = vs.len();
        vs.retain(|v| v["version"].as_i64() != Some(n));
        if vs.len() == before {
            return Err(not_found(&name, &experiment_id, Some(n)).into());
        }
        Ok(Decision::change(
            (),
            Op::PutGenaiObject {
                kind: SCORER.into(),
                id,
                parent: Some(experiment_id.clone()),
                name: Some(name.clone()),
                doc: doc.to_string(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/scorers/online-configs` (MLflow's internal online-scoring route, which the
/// client calls when it loads scorers): tandem runs no scorers, so no scorer has an online
/// scoring configuration.
pub fn online_scoring_configs(_: &Ctx, req: &Req) -> Result<Json> {
    if !req.has("scorer_ids") {
        return Err(missing("scorer_ids"));
    }
    req.str_list("scorer_ids")?;
    Ok(json!({ "configs": [] }))
}

/// `PUT mlflow/scorers/online-config`: online scoring would run the scorer on the traces
/// that arrive; tandem does not run scorers, so it refuses (after MLflow's checks).
pub fn upsert_online_scoring_config(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (experiment_id, name) = (req.str("experiment_id")?, req.str("name")?);
    let rate = req
        .opt_f64("sample_rate")?
        .ok_or_else(|| missing("sample_rate"))?;
    req.opt_str("filter_string")?;
    if !(0.0..=1.0).contains(&rate.0) {
        return Err(MlflowError::invalid(format!(
            "sample_rate must be between 0.0 and 1.0, got {}.",
            rate.0
        )));
    }
    existing(ctx, &experiment_id, &name)?;
    Err(MlflowError::new(
        tandem_core::ErrorCode::NotImplemented,
        "Online scoring is not served: tandem stores scorers and does not run them (docs/compatibility.md).",
    ))
}
