//! MLflow 3's issues (`CreateIssue`, `GetIssue`, `UpdateIssue`, `SearchIssues`): problems
//! found in an experiment's traces, which issue-reference assessments point at
//! (api/assessments.rs). On the change log as `genai_objects` rows (kind `issue`, parent the
//! experiment, the document the issue in MLflow's JSON).

use super::{missing, wrong_type, Ctx, Req};
use crate::store::{Decision, Tx};
use serde_json::{json, Value as Json};
use tandem_core::search::{self, Field, Kind, Spec};
use tandem_core::{MlflowError, Op, Result};

const ISSUE: &str = "issue";
const STATUSES: &[&str] = &["pending", "rejected", "resolved"];
/// In MLflow's order, which is also their rank (a search lists the most severe first).
const SEVERITIES: &[&str] = &["not_an_issue", "low", "medium", "high"];
/// MLflow's `SEARCH_ISSUES_DEFAULT_MAX_RESULTS`.
const SEARCH_DEFAULT: i64 = 100;
const SEARCH_MAX: i64 = 50_000;

const ISSUES: Spec = Spec {
    entity: "issue",
    kinds: &[Kind::Attribute],
    numeric_attributes: &[],
    string_attributes: &["status", "source_run_id"],
};

fn not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Issue with ID '{id}' not found"))
}

fn one_of(key: &str, v: Option<String>, allowed: &[&str]) -> Result<Option<String>> {
    match v.filter(|s| !s.is_empty()) {
        Some(s) if !allowed.contains(&s.as_str()) => Err(MlflowError::invalid(format!(
            "Invalid {key} '{s}'. Valid values: {allowed:?}"
        ))),
        other => Ok(other),
    }
}

fn load(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Option<Json>> {
    crate::store::queries::genai_object(tx, ws, ISSUE, id)
}

fn put(doc: &Json, time: i64) -> Op {
    Op::PutGenaiObject {
        kind: ISSUE.into(),
        id: doc["issue_id"].as_str().unwrap_or_default().to_owned(),
        parent: doc["experiment_id"].as_str().map(str::to_owned),
        name: doc["name"].as_str().map(str::to_owned),
        doc: doc.to_string(),
        time,
    }
}

/// `POST mlflow/issues` (CreateIssue): in an active experiment, `pending` unless said.
pub fn create_issue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let description = req
        .opt_str("description")?
        .ok_or_else(|| missing("description"))?;
    let experiment_id = req.str("experiment_id")?;
    let status =
        one_of("status", req.opt_str("status")?, STATUSES)?.unwrap_or_else(|| "pending".into());
    let severity = one_of("severity", req.opt_str("severity")?, SEVERITIES)?;
    let time = ctx.now();
    let mut doc = json!({
        "issue_id": format!("iss-{}", crate::otlp::hex(&super::random_bytes::<16>())),
        "experiment_id": experiment_id,
        "name": name,
        "description": description,
        "status": status,
        "created_timestamp": time,
        "last_updated_timestamp": time,
    });
    if let Some(s) = severity {
        doc["severity"] = s.into();
    }
    for key in ["root_causes", "categories"] {
        let list = req.str_list(key)?;
        if !list.is_empty() {
            doc[key] = json!(list);
        }
    }
    for key in ["source_run_id", "created_by"] {
        if let Some(v) = req.opt_str(key)?.filter(|s| !s.is_empty()) {
            doc[key] = v.into();
        }
    }
    ctx.write(|tx| {
        super::tracking::live_experiment(tx, &ctx.workspace, &experiment_id)?;
        Ok(Decision::change((), put(&doc, time)))
    })?;
    Ok(json!({ "issue": doc }))
}

/// `GET mlflow/issues/{issue_id}` (GetIssue).
pub fn get_issue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("issue_id")?;
    let doc = ctx
        .read(|tx| load(tx, &ctx.workspace, &id))?
        .ok_or_else(|| not_found(&id))?;
    Ok(json!({ "issue": doc }))
}

/// `PATCH mlflow/issues/{issue_id}` (UpdateIssue): the fields given (an empty one is not
/// given, as in MLflow).
pub fn update_issue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("issue_id")?;
    let status = one_of("status", req.opt_str("status")?, STATUSES)?;
    let severity = one_of("severity", req.opt_str("severity")?, SEVERITIES)?;
    let name = req.opt_str("name")?.filter(|s| !s.is_empty());
    let description = req.opt_str("description")?.filter(|s| !s.is_empty());
    let time = ctx.now();
    let doc = ctx.write(|tx| {
        let mut doc = load(tx, &ctx.workspace, &id)?.ok_or_else(|| not_found(&id))?;
        for (key, v) in [
            ("status", &status),
            ("severity", &severity),
            ("name", &name),
            ("description", &description),
        ] {
            if let Some(v) = v {
                doc[key] = v.as_str().into();
            }
        }
        doc["last_updated_timestamp"] = time.into();
        Ok(Decision::change(doc.clone(), put(&doc, time)))
    })?;
    Ok(json!({ "issue": doc }))
}

fn issue_field<'a>(d: &'a Json, key: &str) -> Option<Field<'a>> {
    d.get(key).and_then(Json::as_str).map(Field::Str)
}

/// `POST mlflow/issues/search` (SearchIssues): by experiment and MLflow's filter on `status`
/// and `source_run_id` (`=`, `!=`); the most severe first, then (with `include_trace_count`)
/// the most traces, then the newest.
pub fn search_issues(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.opt_str("experiment_id")?.filter(|s| !s.is_empty());
    let filter = req.opt_str("filter_string")?.unwrap_or_default();
    let clauses = search::parse_filter(&filter, &ISSUES)?;
    if let Some(c) = clauses.iter().find(|c| {
        !matches!(
            c.comparator,
            search::Comparator::Eq | search::Comparator::Ne
        )
    }) {
        return Err(MlflowError::invalid(format!(
            "Invalid comparator for '{}': issues are filtered with '=' and '!=' only.",
            c.key
        )));
    }
    let max = req.max_results(SEARCH_DEFAULT, SEARCH_MAX)?;
    let offset = req.page_offset()?;
    let with_count = match req.opt_bool("include_trace_count") {
        Ok(b) => b.unwrap_or(false),
        Err(_) => return Err(wrong_type("include_trace_count", &Json::Null)),
    };
    let mut docs: Vec<(Json, i64)> = ctx.read(|tx| {
        let mut sql = "SELECT doc FROM genai_objects WHERE workspace = ? AND kind = ?".to_owned();
        let mut params: Vec<crate::store::Value> =
            vec![ctx.workspace.as_str().into(), ISSUE.into()];
        if let Some(e) = &experiment_id {
            sql.push_str(" AND parent = ?");
            params.push(e.as_str().into());
        }
        let mut out = Vec::new();
        for r in tx.query(&sql, &params)? {
            let doc: Json = serde_json::from_str(&r.text(0)).unwrap_or(Json::Null);
            if !clauses
                .iter()
                .all(|c| search::matches(c, issue_field(&doc, &c.key)))
            {
                continue;
            }
            let count = if with_count {
                // Traces with an issue reference to it (the assessment's name is the issue's ID).
                let id = doc["issue_id"].as_str().unwrap_or_default().to_owned();
                tx.query(
                    "SELECT parent, doc FROM genai_objects WHERE workspace = ? AND kind = 'assessment' AND name = ?",
                    &[ctx.workspace.as_str().into(), id.into()],
                )?
                .iter()
                .filter(|a| a.text(1).contains("\"issue\""))
                .map(|a| a.text(0))
                .collect::<std::collections::BTreeSet<_>>()
                .len() as i64
            } else {
                0
            };
            out.push((doc, count));
        }
        Ok(out)
    })?;
    let rank = |d: &Json| {
        d["severity"]
            .as_str()
            .and_then(|s| SEVERITIES.iter().position(|x| *x == s))
            .map_or(-1, |p| p as i64)
    };
    docs.sort_by(|(a, ca), (b, cb)| {
        rank(b)
            .cmp(&rank(a))
            .then_with(|| {
                if with_count {
                    cb.cmp(ca)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| {
                b["created_timestamp"]
                    .as_i64()
                    .cmp(&a["created_timestamp"].as_i64())
            })
            .then_with(|| b["issue_id"].as_str().cmp(&a["issue_id"].as_str()))
    });
    let (page, next) = super::page(docs, offset, max);
    let issues: Vec<Json> = page
        .into_iter()
        .map(|(mut d, n)| {
            if with_count {
                d["trace_count"] = n.into();
            }
            d
        })
        .collect();
    let mut out = json!({ "next_page_token": next.unwrap_or_default() });
    if !issues.is_empty() {
        out["issues"] = issues.into();
    }
    Ok(out)
}
