//! MLflow's GraphQL endpoint (`/graphql`), which the web UI's run and experiment pages call:
//! the schema MLflow generates from its protos (`mlflow/server/graphql/`), answered by the
//! same handlers as the REST routes. Each root field calls one REST handler with its `input`
//! (camelCase turned into the proto's snake_case), and the answer is cut down to the
//! selection, with MLflow's GraphQL conventions: 64-bit integers as strings (`LongString`),
//! empty repeated fields as `[]`, a NaN metric value as null, and the run extensions
//! (`experiment`, `modelVersions`) resolved by further handler calls.

use super::{Ctx, Req};
use graphql_parser::query::{
    Definition, Document, OperationDefinition, Selection, SelectionSet, Value,
};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;
use tandem_core::{MlflowError, Result};

type Vars = Map<String, Json>;

/// Fields MLflow's schema types as `LongString`: integers sent as strings.
const LONG_STRINGS: &[&str] = &[
    "start_time",
    "end_time",
    "last_update_time",
    "creation_time",
    "timestamp",
    "step",
    "creation_timestamp",
    "last_updated_timestamp",
    "file_size",
];

/// Repeated fields: `[]` when the message has none (protobuf objects never give null).
const LISTS: &[&str] = &[
    "runs",
    "metrics",
    "params",
    "tags",
    "dataset_inputs",
    "model_inputs",
    "model_outputs",
    "model_versions",
    "aliases",
    "files",
    "model_params",
    "model_metrics",
    "dataset_summaries",
];

/// More root fields than this in one request is refused (MLflow limits batching too).
const MAX_ROOT_FIELDS: usize = 10;

/// `POST /graphql` (and GET with `query` in the query string): `{query, variables,
/// operationName}` in, `{data, errors}` out, as MLflow's server answers.
pub fn execute(ctx: &Ctx, req: &Req) -> Result<Json> {
    let query = req.str("query")?;
    let variables: Vars = match req.0.get("variables") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        // GET sends variables as a JSON string.
        Some(Json::String(s)) if !s.is_empty() => match serde_json::from_str(s) {
            Ok(Json::Object(m)) => m,
            _ => return Ok(errors(vec!["Variables are invalid JSON.".into()])),
        },
        Some(Json::String(_)) => Map::new(),
        Some(_) => return Ok(errors(vec!["Variables must be an object.".into()])),
    };
    let operation_name = req.opt_str("operationName")?;
    let doc: Document<String> = match graphql_parser::parse_query(&query) {
        Ok(d) => d,
        Err(e) => return Ok(errors(vec![format!("Syntax Error: {e}")])),
    };
    let ops: Vec<&OperationDefinition<String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(o) => Some(o),
            Definition::Fragment(_) => None,
        })
        .collect();
    let name_of = |o: &OperationDefinition<String>| match o {
        OperationDefinition::Query(q) => q.name.clone(),
        OperationDefinition::Mutation(m) => m.name.clone(),
        OperationDefinition::Subscription(s) => s.name.clone(),
        OperationDefinition::SelectionSet(_) => None,
    };
    let op = match &operation_name {
        Some(n) => ops
            .iter()
            .find(|o| name_of(o).as_deref() == Some(n.as_str())),
        None if ops.len() == 1 => ops.first(),
        None => {
            return Ok(errors(vec![
                "Must provide operation name if query contains multiple operations.".into(),
            ]))
        }
    };
    let Some(op) = op else {
        return Ok(errors(vec![format!(
            "Unknown operation named '{}'.",
            operation_name.unwrap_or_default()
        )]));
    };
    let (selection, defaults) = match op {
        OperationDefinition::Query(q) => (&q.selection_set, &q.variable_definitions),
        OperationDefinition::Mutation(m) => (&m.selection_set, &m.variable_definitions),
        OperationDefinition::SelectionSet(s) => (s, &Vec::new()),
        OperationDefinition::Subscription(_) => {
            return Ok(errors(vec!["Subscriptions are not supported.".into()]))
        }
    };
    let mut vars = variables;
    for d in defaults.iter() {
        if let (false, Some(v)) = (vars.contains_key(&d.name), &d.default_value) {
            vars.insert(d.name.clone(), to_json(v, &Map::new()));
        }
    }
    let fragments = Fragments(&doc);
    let roots = fragments.fields(selection);
    if roots.len() > MAX_ROOT_FIELDS {
        return Ok(errors(vec![format!(
            "Too many root fields in one request ({}; at most {MAX_ROOT_FIELDS}).",
            roots.len()
        )]));
    }
    let mut data = Map::new();
    let mut errs = Vec::new();
    for f in roots {
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        let input = argument(f, "input", &vars);
        let value = match f.name.as_str() {
            "__typename" => Ok(json!(match op {
                OperationDefinition::Mutation(_) => "MutationType",
                _ => "Query",
            })),
            "test" | "testMutation" => {
                let s = argument(f, "inputString", &vars);
                Ok(project(
                    ctx,
                    &json!({ "output": s }),
                    if f.name == "test" {
                        "Test"
                    } else {
                        "TestMutation"
                    },
                    &f.selection_set,
                    &fragments,
                ))
            }
            name => root(ctx, name, &input)
                .map(|v| project(ctx, &v, root_type(name), &f.selection_set, &fragments)),
        };
        match value {
            Ok(v) => {
                data.insert(key, v);
            }
            Err(e) => {
                errs.push(e.message);
                data.insert(key, Json::Null);
            }
        }
    }
    Ok(json!({
        "data": data,
        "errors": if errs.is_empty() { Json::Null } else { json!(errs) },
    }))
}

fn errors(messages: Vec<String>) -> Json {
    json!({ "data": null, "errors": messages })
}

/// One root field: the REST handler behind it, called with its input.
fn root(ctx: &Ctx, name: &str, input: &Json) -> Result<Json> {
    let req = Req(match snake_keys(input) {
        Json::Object(m) => m,
        _ => Map::new(),
    });
    match name {
        "mlflowGetExperiment" => super::tracking::get_experiment(ctx, &req),
        "mlflowGetRun" => super::tracking::get_run(ctx, &req),
        "mlflowSearchRuns" => super::tracking::search_runs(ctx, &req),
        "mlflowGetMetricHistoryBulkInterval" => {
            // MLflow's handler reads max_results and the step range from the query string
            // only, which a GraphQL request does not have: it answers with the defaults.
            let mut req = req;
            for k in ["max_results", "start_step", "end_step"] {
                req.0.remove(k);
            }
            super::tracking::get_metric_history_bulk_interval(ctx, &req)
        }
        "mlflowListArtifacts" => super::tracking::list_artifacts(ctx, &req),
        "mlflowSearchModelVersions" => super::registry::search_model_versions(ctx, &req),
        "mlflowSearchDatasets" => super::tracking::search_datasets(ctx, &req),
        other => Err(MlflowError::invalid(format!(
            "Cannot query field '{other}' on type 'Query'."
        ))),
    }
}

/// The type (MLflow's graphene class name) a root field answers, for `__typename`.
fn root_type(field: &str) -> &'static str {
    match field {
        "mlflowGetExperiment" => "MlflowGetExperimentResponse",
        "mlflowGetRun" => "MlflowGetRunResponse",
        "mlflowSearchRuns" => "MlflowSearchRunsResponse",
        "mlflowGetMetricHistoryBulkInterval" => "MlflowGetMetricHistoryBulkIntervalResponse",
        "mlflowListArtifacts" => "MlflowListArtifactsResponse",
        "mlflowSearchModelVersions" => "MlflowSearchModelVersionsResponse",
        "mlflowSearchDatasets" => "MlflowSearchDatasetsResponse",
        _ => "Query",
    }
}

/// The type of field `field` (snake_case) of type `parent`, per MLflow's schema.
fn child_type(parent: &str, field: &str) -> &'static str {
    match (parent, field) {
        (_, "api_error") => "ApiError",
        (_, "experiment") => "MlflowExperiment",
        (_, "run") | (_, "runs") => "MlflowRunExtension",
        (_, "model_versions") => "MlflowModelVersion",
        (_, "files") => "MlflowFileInfo",
        (_, "dataset_summaries") => "MlflowDatasetSummary",
        ("MlflowGetMetricHistoryBulkIntervalResponse", "metrics") => "MlflowMetricWithRunId",
        ("MlflowRunData", "metrics") => "MlflowMetricExtension",
        (_, "info") => "MlflowRunInfo",
        (_, "data") => "MlflowRunData",
        (_, "inputs") => "MlflowRunInputs",
        (_, "outputs") => "MlflowRunOutputs",
        (_, "params") => "MlflowParam",
        ("MlflowRunData", "tags") => "MlflowRunTag",
        ("MlflowExperiment", "tags") => "MlflowExperimentTag",
        ("MlflowModelVersion", "tags") => "MlflowModelVersionTag",
        ("MlflowDatasetInput", "tags") => "MlflowInputTag",
        (_, "dataset_inputs") => "MlflowDatasetInput",
        (_, "dataset") => "MlflowDataset",
        (_, "model_inputs") => "MlflowModelInput",
        (_, "model_outputs") => "MlflowModelOutput",
        _ => "",
    }
}

/// The fields a selection set names, with fragments spread and inline fragments opened.
struct Fragments<'a>(&'a Document<'a, String>);

impl<'a> Fragments<'a> {
    fn fields(
        &self,
        set: &'a SelectionSet<'a, String>,
    ) -> Vec<&'a graphql_parser::query::Field<'a, String>> {
        let mut out = Vec::new();
        for s in &set.items {
            match s {
                Selection::Field(f) => out.push(f),
                Selection::InlineFragment(i) => out.extend(self.fields(&i.selection_set)),
                Selection::FragmentSpread(spread) => {
                    for d in &self.0.definitions {
                        if let Definition::Fragment(fd) = d {
                            if fd.name == spread.fragment_name {
                                out.extend(self.fields(&fd.selection_set));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Cuts `v` (a handler's snake_case JSON) down to the selection, in GraphQL's shapes.
fn project<'a>(
    ctx: &Ctx,
    v: &Json,
    ty: &str,
    set: &'a SelectionSet<'a, String>,
    fragments: &Fragments<'a>,
) -> Json {
    match v {
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|x| project(ctx, x, ty, set, fragments))
                .collect(),
        ),
        Json::Object(obj) => {
            let mut out = Map::new();
            for f in fragments.fields(set) {
                let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                let snake = snake_case(&f.name);
                let child = child_type(ty, &snake);
                let value = match f.name.as_str() {
                    "__typename" => json!(ty),
                    "apiError" => Json::Null,
                    // The run extensions of MLflow's schema.
                    "experiment" if obj.contains_key("info") => {
                        let id = obj["info"]["experiment_id"].as_str().unwrap_or_default();
                        let req = Req(Map::from_iter([("experiment_id".to_owned(), json!(id))]));
                        super::tracking::get_experiment(ctx, &req)
                            .map(|e| {
                                project(ctx, &e["experiment"], child, &f.selection_set, fragments)
                            })
                            .unwrap_or(Json::Null)
                    }
                    "modelVersions" if obj.contains_key("info") => {
                        let id = obj["info"]["run_id"].as_str().unwrap_or_default();
                        let req = Req(Map::from_iter([(
                            "filter".to_owned(),
                            json!(format!("run_id='{id}'")),
                        )]));
                        super::registry::search_model_versions(ctx, &req)
                            .map(|r| {
                                project(
                                    ctx,
                                    r.get("model_versions").unwrap_or(&json!([])),
                                    child,
                                    &f.selection_set,
                                    fragments,
                                )
                            })
                            .unwrap_or(Json::Null)
                    }
                    _ => match obj.get(&snake) {
                        None | Some(Json::Null) if LISTS.contains(&snake.as_str()) => json!([]),
                        None | Some(Json::Null) => Json::Null,
                        Some(x) if f.selection_set.items.is_empty() => scalar(&snake, x),
                        Some(x) => project(ctx, x, child, &f.selection_set, fragments),
                    },
                };
                out.insert(key, value);
            }
            Json::Object(out)
        }
        other => other.clone(),
    }
}

fn scalar(field: &str, v: &Json) -> Json {
    match v {
        Json::Number(n) if LONG_STRINGS.contains(&field) => json!(n.to_string()),
        // NaN (sent by tandem as the string "NaN") is not a GraphQL Float: null, as MLflow.
        Json::String(s)
            if field == "value" && matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") =>
        {
            if s == "NaN" {
                Json::Null
            } else {
                v.clone()
            }
        }
        other => other.clone(),
    }
}

/// A field's argument as JSON (null when not given).
fn argument(f: &graphql_parser::query::Field<'_, String>, name: &str, vars: &Vars) -> Json {
    f.arguments
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| to_json(v, vars))
        .unwrap_or(Json::Null)
}

/// A GraphQL value as JSON, variables substituted.
fn to_json(v: &Value<'_, String>, vars: &Vars) -> Json {
    match v {
        Value::Variable(n) => vars.get(n).cloned().unwrap_or(Json::Null),
        Value::Int(n) => n.as_i64().map(Json::from).unwrap_or(Json::Null),
        Value::Float(f) => json!(f),
        Value::String(s) => json!(s),
        Value::Boolean(b) => json!(b),
        Value::Null => Json::Null,
        Value::Enum(e) => json!(e),
        Value::List(l) => Json::Array(l.iter().map(|x| to_json(x, vars)).collect()),
        Value::Object(o) => Json::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), to_json(x, vars)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
    }
}

/// `{"runIds": [...]}` as `{"run_ids": [...]}`, recursively.
fn snake_keys(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, x)| (snake_case(k), snake_keys(x)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(snake_keys).collect()),
        other => other.clone(),
    }
}

/// `camelCase` as `snake_case` (GraphQL's field names, protobuf's JSON field masks).
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scalars_follow_mlflows_schema() {
        assert_eq!(snake_case("runUuid"), "run_uuid");
        assert_eq!(snake_case("mlflowGetRun"), "mlflow_get_run");
        assert_eq!(scalar("start_time", &json!(17)), json!("17"));
        assert_eq!(scalar("value", &json!("NaN")), Json::Null);
        assert_eq!(scalar("value", &json!(1.5)), json!(1.5));
        assert_eq!(
            snake_keys(&json!({"runIds": ["a"], "metricKey": "m"})),
            json!({"run_ids": ["a"], "metric_key": "m"})
        );
    }
}
