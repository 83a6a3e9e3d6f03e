//! `QueryTraceMetrics`: counts and aggregates over an experiment's traces, spans and
//! assessments, grouped by dimensions and time buckets, as MLflow's server computes them for
//! the web UI's overview charts (mlflow/store/tracking/utils/sql_trace_metrics_utils.py).
//!
//! The rows of the asked experiments and window are read once and aggregated here, the same
//! way on every metadata store: one reader instead of one SQL dialect per backend, and the
//! percentile is numpy's linear one on both (MLflow's server computes it in SQL per dialect).

use super::{python_float, python_repr_list, Ctx, Json, Req, Result};
use crate::api::{assessments, traces, MlflowError};
use crate::otlp;
use crate::store::Tx;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// MLflow's `MAX_RESULTS_QUERY_TRACE_METRICS`.
const DEFAULT_MAX_RESULTS: i64 = 1000;
const TIME_BUCKET: &str = "time_bucket";
const MODEL_DIMENSION_MAX: usize = 500;

const COUNT: &[&str] = &["COUNT"];
const VALUE: &[&str] = &["AVG", "MAX", "MIN", "PERCENTILE"];
const SUMMABLE: &[&str] = &["AVG", "MAX", "MIN", "PERCENTILE", "SUM"];

/// A metric: its name, the aggregations it takes and the dimensions it groups by.
type MetricConfig = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// MLflow's `VIEW_TYPE_CONFIGS`, in its order.
const VIEWS: &[(&str, &[MetricConfig])] = &[
    (
        "TRACES",
        &[
            ("trace_count", COUNT, &["trace_name", "trace_status"]),
            ("session_count", COUNT, &[]),
            ("latency", VALUE, &["trace_name"]),
            ("input_tokens", SUMMABLE, &["trace_name"]),
            ("output_tokens", SUMMABLE, &["trace_name"]),
            ("total_tokens", SUMMABLE, &["trace_name"]),
            ("cache_read_input_tokens", SUMMABLE, &["trace_name"]),
            ("cache_creation_input_tokens", SUMMABLE, &["trace_name"]),
        ],
    ),
    (
        "SPANS",
        &[
            (
                "span_count",
                COUNT,
                &[
                    "span_name",
                    "span_type",
                    "span_status",
                    "span_model_name",
                    "span_model_provider",
                ],
            ),
            ("latency", VALUE, &["span_name", "span_status"]),
            (
                "input_cost",
                SUMMABLE,
                &["span_model_name", "span_model_provider"],
            ),
            (
                "output_cost",
                SUMMABLE,
                &["span_model_name", "span_model_provider"],
            ),
            (
                "total_cost",
                SUMMABLE,
                &["span_model_name", "span_model_provider"],
            ),
        ],
    ),
    (
        "ASSESSMENTS",
        &[
            (
                "assessment_count",
                COUNT,
                &["assessment_name", "assessment_value"],
            ),
            ("assessment_value", VALUE, &["assessment_name"]),
        ],
    ),
];

#[derive(Clone)]
struct Aggregation {
    kind: String,
    percentile: Option<f64>,
}

impl Aggregation {
    /// The key of its value in a data point (`str(MetricAggregation)`: `P50.0` for a
    /// percentile).
    fn label(&self) -> String {
        match self.percentile {
            Some(p) if self.kind == "PERCENTILE" => format!("P{}", python_float(p)),
            _ => self.kind.clone(),
        }
    }
}

/// One filter of MLflow's trace-metrics filter language: `VIEW.ENTITY[.KEY] = 'value'`.
struct Filter {
    view: String,
    entity: String,
    key: Option<String>,
    value: String,
}

fn strip_quotes(s: &str) -> Option<&str> {
    let s = s.trim();
    for q in ['\'', '"', '`'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return Some(&s[1..s.len() - 1]);
        }
    }
    None
}

fn parse_filter(text: &str) -> Result<Filter> {
    let invalid = |m: String| MlflowError::invalid(m);
    let one = || {
        invalid(format!(
            "Invalid filter: '{text}'. Expected one filter clause."
        ))
    };
    // The identifier runs to the comparator; the value is one quoted string.
    let Some(pos) = text.find(['=', '!', '<', '>']).or_else(|| {
        let lower = text.to_ascii_lowercase();
        [" like ", " ilike ", " in ", " is "]
            .iter()
            .filter_map(|op| lower.find(op))
            .min()
    }) else {
        return Err(one());
    };
    let ident = text[..pos].trim();
    let rest = text[pos..].trim_start();
    let comparator: String = rest
        .chars()
        .take_while(|c| matches!(c, '=' | '!' | '<' | '>'))
        .collect();
    if comparator != "=" {
        let shown = if comparator.is_empty() {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            comparator.clone()
        };
        return Err(invalid(format!(
            "Invalid comparator: '{shown}', only '=' operator is supported"
        )));
    }
    let raw_value = rest[comparator.len()..].trim();
    let parts: Vec<&str> = ident.splitn(3, '.').collect();
    let identifier_error = || {
        invalid(format!(
            "Invalid identifier '{ident}'. Columns should be specified as 'trace.<key>', 'span.<key>', 'assessment.<key>'."
        ))
    };
    if parts.len() < 2 || ident.contains(' ') {
        return Err(identifier_error());
    }
    let view = parts[0].trim_matches('`').to_owned();
    let entities: &[(&str, bool)] = match view.as_str() {
        "trace" => &[("status", false), ("tag", true), ("metadata", true)],
        "span" => &[("name", false), ("status", false), ("type", false)],
        "assessment" => &[("name", false), ("type", false)],
        _ => {
            return Err(invalid(format!(
                "Invalid view type '{view}'. Valid values are dict_keys(['trace', 'span', 'assessment'])"
            )))
        }
    };
    let entity = parts[1].to_owned();
    let Some((_, needs_key)) = entities.iter().find(|(e, _)| *e == entity) else {
        let names: Vec<&str> = entities.iter().map(|(e, _)| *e).collect();
        return Err(invalid(format!(
            "Invalid entity '{entity}' specified for view type '{view}'. Valid entities are {}",
            python_repr_list(&names)
        )));
    };
    let key = parts.get(2).map(|k| {
        let k = strip_quotes(k).unwrap_or(k);
        k.trim_matches('`').to_owned()
    });
    match (needs_key, &key) {
        (true, None) => {
            return Err(invalid(format!(
                "Filtering by {entity} requires a key, e.g. '{view}.{entity}.<key> = <value>'"
            )))
        }
        (false, Some(_)) => {
            return Err(invalid(format!(
                "Filtering by {entity} does not require a key, use '{view}.{entity}' instead"
            )))
        }
        _ => {}
    }
    let Some(value) = strip_quotes(raw_value).filter(|_| !raw_value.starts_with('`')) else {
        return Err(invalid(format!(
            "Expected a quoted string value for {entity} value (e.g. 'my-value'). Got value {raw_value}"
        )));
    };
    Ok(Filter {
        view,
        entity,
        key,
        value: value.to_owned(),
    })
}

/// A trace of the asked experiments, with what its metrics and filters read.
struct TraceRow {
    id: String,
    time: i64,
    duration: Option<i64>,
    state: String,
    metadata: serde_json::Map<String, Json>,
    name: Option<String>,
}

impl TraceRow {
    fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Json::as_str)
    }

    /// A token count from `mlflow.trace.tokenUsage`, as MLflow promotes it to a column: an
    /// integral number, else none.
    fn tokens(&self, key: &str) -> Option<f64> {
        let usage: Json = serde_json::from_str(self.metadata("mlflow.trace.tokenUsage")?).ok()?;
        let v = &usage[key];
        let n = match v {
            Json::Number(n) => n.as_f64()?,
            Json::String(s) => s.trim().parse::<f64>().ok()?,
            _ => return None,
        };
        (n.is_finite() && n.fract() == 0.0).then_some(n)
    }
}

/// A row of the asked view: its time (ms), the metric's value (None: not counted) and its
/// dimensions.
struct Row {
    time: i64,
    value: Option<f64>,
    distinct: Option<String>,
    dims: HashMap<&'static str, Option<String>>,
}

/// The JSON an attribute of MLflow's holds (span attributes are JSON-encoded text).
fn attribute_value(content: &Json, key: &str) -> Option<Json> {
    let v = otlp::plain(otlp::attribute(content, key)?);
    Some(match v {
        Json::String(s) => serde_json::from_str(&s).unwrap_or(Json::String(s)),
        other => other,
    })
}

fn bounded(v: Option<Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.chars().take(MODEL_DIMENSION_MAX).collect()),
        _ => None,
    }
}

fn finite(v: &Json) -> Option<f64> {
    match v {
        Json::Bool(_) => None,
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// MLflow's `assessment_aggregate`: booleans and "yes"/"no" as 1 and 0, finite numbers as
/// they are.
fn aggregate_value(v: &Json) -> Option<f64> {
    match v {
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Json::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Json::String(s) => match s.trim().to_lowercase().as_str() {
            "yes" => Some(1.0),
            "no" => Some(0.0),
            _ => None,
        },
        _ => None,
    }
}

/// An assessment's kind and value as MLflow's `assessments` table holds them.
fn assessment_value(doc: &Json) -> (&'static str, Json) {
    if let Some(f) = doc.get("feedback") {
        return ("feedback", f.get("value").cloned().unwrap_or(Json::Null));
    }
    if let Some(e) = doc.get("expectation") {
        if let Some(v) = e.get("value") {
            return ("expectation", v.clone());
        }
        let text = e["serialized_value"]["value"].as_str().unwrap_or("null");
        return (
            "expectation",
            serde_json::from_str(text).unwrap_or(Json::Null),
        );
    }
    ("issue", doc.get("issue").cloned().unwrap_or(Json::Null))
}

/// A value with its numbers as doubles, as protobuf's `Value` holds them (`2` is `2.0`).
fn as_doubles(v: &Json) -> Json {
    match v {
        Json::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Json::Array(a) => Json::Array(a.iter().map(as_doubles).collect()),
        Json::Object(m) => {
            Json::Object(m.iter().map(|(k, x)| (k.clone(), as_doubles(x))).collect())
        }
        other => other.clone(),
    }
}

fn in_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The live traces of `experiments` (of this workspace), within `window` (ms, inclusive)
/// when given, passing the `trace.` filters.
fn load_traces(
    tx: &mut dyn Tx,
    ws: &str,
    experiments: &[String],
    window: (Option<i64>, Option<i64>),
    filters: &[Filter],
) -> crate::store::Result<Vec<TraceRow>> {
    let mut sql = format!(
        "SELECT t.trace_id, t.request_time, t.execution_duration, t.state, t.metadata, \
         (SELECT g.value FROM trace_tags g WHERE g.workspace = t.workspace AND g.trace_id = t.trace_id AND g.key = 'mlflow.traceName') \
         FROM traces t WHERE t.workspace = ? AND t.experiment_id IN ({}) AND t.deleted_time IS NULL",
        in_list(experiments.len())
    );
    let mut params: Vec<crate::store::Value> = vec![ws.into()];
    params.extend(experiments.iter().map(|e| e.as_str().into()));
    if let Some(s) = window.0 {
        sql.push_str(" AND t.request_time >= ?");
        params.push(s.into());
    }
    if let Some(e) = window.1 {
        sql.push_str(" AND t.request_time <= ?");
        params.push(e.into());
    }
    let mut out: Vec<TraceRow> = tx
        .query(&sql, &params)?
        .iter()
        .map(|r| TraceRow {
            id: r.text(0),
            time: r.int(1),
            duration: r.opt_int(2),
            state: r.text(3),
            metadata: serde_json::from_str(&r.text(4)).unwrap_or_default(),
            name: r.opt_text(5),
        })
        .collect();
    for f in filters.iter().filter(|f| f.view == "trace") {
        let key = f.key.as_deref().unwrap_or_default();
        match f.entity.as_str() {
            "status" => out.retain(|t| t.state == f.value),
            "tag" if key == "mlflow.traceName" => {
                out.retain(|t| t.name.as_deref() == Some(f.value.as_str()))
            }
            "tag" => {
                let with: HashSet<String> = tx
                    .query(
                        "SELECT trace_id FROM trace_tags WHERE workspace = ? AND key = ? AND value = ?",
                        &[ws.into(), key.into(), f.value.as_str().into()],
                    )?
                    .iter()
                    .map(|r| r.text(0))
                    .collect();
                out.retain(|t| with.contains(&t.id));
            }
            _ => {
                // A trace recorded by a run, or linked to it afterwards, is the run's.
                let linked: HashSet<String> = if key == "mlflow.sourceRun" {
                    tx.query(
                        "SELECT parent FROM genai_objects WHERE workspace = ? AND kind = ? AND name = ?",
                        &[ws.into(), assessments::TRACE_RUN.into(), f.value.as_str().into()],
                    )?
                    .iter()
                    .map(|r| r.text(0))
                    .collect()
                } else {
                    HashSet::new()
                };
                out.retain(|t| t.metadata(key) == Some(f.value.as_str()) || linked.contains(&t.id));
            }
        }
    }
    Ok(out)
}

struct Query {
    view: &'static str,
    metric: String,
    aggregations: Vec<Aggregation>,
    dimensions: Vec<String>,
    filters: Vec<Filter>,
    interval_s: Option<i64>,
    window: (Option<i64>, Option<i64>),
    max_results: usize,
}

fn parse(req: &Req) -> Result<Query> {
    let experiments = req.str_list("experiment_ids")?;
    if experiments.is_empty() {
        return Err(super::missing("experiment_ids"));
    }
    let view_name = req.str("view_type")?;
    let metric = req.str("metric_name")?;
    let raw_aggregations = req.list("aggregations")?;
    if raw_aggregations.is_empty() {
        return Err(super::missing("aggregations"));
    }
    let dimensions = req.str_list("dimensions")?;
    let filter_texts = req.str_list("filters")?;
    let interval_s = req.opt_i64("time_interval_seconds")?;
    let window = (req.opt_i64("start_time_ms")?, req.opt_i64("end_time_ms")?);
    let max_results = req.opt_i64("max_results")?.unwrap_or(DEFAULT_MAX_RESULTS);
    let mut aggregations = Vec::new();
    for a in raw_aggregations {
        let kind = a.str("aggregation_type")?;
        let percentile = a.opt_f64("percentile_value")?.map(|p| p.0);
        match (kind.as_str(), percentile) {
            ("PERCENTILE", None) => {
                return Err(MlflowError::invalid(
                    "Percentile value is required for PERCENTILE aggregation",
                ))
            }
            ("PERCENTILE", Some(p)) if !(0.0..=100.0).contains(&p) => {
                return Err(MlflowError::invalid(format!(
                    "Percentile value must be between 0 and 100, got {}",
                    python_float(p)
                )))
            }
            ("PERCENTILE", _) => {}
            (other, Some(_)) => {
                return Err(MlflowError::invalid(format!(
                    "Percentile value is only allowed for PERCENTILE aggregation type, got {other}"
                )))
            }
            _ => {}
        }
        aggregations.push(Aggregation { kind, percentile });
    }
    // A view MLflow's protobuf parsing does not know reads as its default, TRACES (MLflow's
    // server answers such a query as a TRACES one).
    let (view, configs) = VIEWS
        .iter()
        .find(|(v, _)| *v == view_name)
        .unwrap_or(&VIEWS[0]);
    let Some((_, supported, dims)) = configs.iter().find(|(m, _, _)| *m == metric) else {
        let names: Vec<&str> = configs.iter().map(|(m, _, _)| *m).collect();
        return Err(MlflowError::invalid(format!(
            "metric_name must be one of {}, got '{metric}'",
            python_repr_list(&names)
        )));
    };
    let mut bad: Vec<&str> = aggregations
        .iter()
        .map(|a| a.kind.as_str())
        .filter(|k| !supported.contains(k))
        .collect();
    bad.sort();
    bad.dedup();
    if !bad.is_empty() {
        return Err(MlflowError::invalid(format!(
            "Found invalid aggregation_type(s): {}. Supported aggregation types: {}",
            python_repr_list(&bad),
            python_repr_list(supported)
        )));
    }
    let mut bad_dims: Vec<&str> = dimensions
        .iter()
        .map(String::as_str)
        .filter(|d| !dims.contains(d))
        .collect();
    bad_dims.sort();
    bad_dims.dedup();
    if !bad_dims.is_empty() {
        let mut supported_dims = dims.to_vec();
        supported_dims.sort();
        return Err(MlflowError::invalid(format!(
            "Found invalid dimension(s): {}. Supported dimensions: {}",
            python_repr_list(&bad_dims),
            python_repr_list(&supported_dims)
        )));
    }
    if interval_s.is_some_and(|i| i != 0) && (window.0.is_none() || window.1.is_none()) {
        return Err(MlflowError::invalid(
            "start_time_ms and end_time_ms are required if time_interval_seconds is set",
        ));
    }
    let filters = filter_texts
        .iter()
        .map(|f| parse_filter(f))
        .collect::<Result<Vec<_>>>()?;
    for f in &filters {
        let (needed, name) = match f.view.as_str() {
            "span" => ("SPANS", "span"),
            "assessment" => ("ASSESSMENTS", "assessment"),
            _ => continue,
        };
        if *view != needed {
            return Err(MlflowError::invalid(format!(
                "Filtering by {name} is only supported for {needed} view type, got {view}"
            )));
        }
    }
    if max_results < 1 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    Ok(Query {
        view,
        metric,
        aggregations,
        dimensions,
        filters,
        interval_s: interval_s.filter(|i| *i != 0),
        window,
        max_results: max_results as usize,
    })
}

/// The rows of the asked view, filtered and with their metric values.
fn rows(
    tx: &mut dyn Tx,
    ws: &str,
    experiments: &[String],
    q: &Query,
) -> crate::store::Result<Vec<Row>> {
    let cost = q.view == "SPANS" && q.metric.ends_with("_cost");
    // Span costs are windowed by the span's start; everything else by its trace's time.
    let trace_window = if cost { (None, None) } else { q.window };
    let traces = load_traces(tx, ws, experiments, trace_window, &q.filters)?;
    let mut out = Vec::new();
    match q.view {
        "TRACES" => {
            for t in traces {
                let (value, distinct) = match q.metric.as_str() {
                    "trace_count" => (Some(1.0), None),
                    "session_count" => match t.metadata("mlflow.trace.session") {
                        Some(s) => (Some(1.0), Some(s.to_owned())),
                        None => continue,
                    },
                    "latency" => (t.duration.map(|d| d as f64), None),
                    tokens => (t.tokens(tokens), None),
                };
                let dims = HashMap::from([
                    ("trace_name", t.name.clone()),
                    ("trace_status", Some(t.state.clone())),
                ]);
                out.push(Row {
                    time: t.time,
                    value,
                    distinct,
                    dims,
                });
            }
        }
        "SPANS" => {
            let ids: Vec<&str> = traces.iter().map(|t| t.id.as_str()).collect();
            for chunk in ids.chunks(500) {
                let mut params: Vec<crate::store::Value> = vec![ws.into()];
                params.extend(chunk.iter().map(|t| (*t).into()));
                let spans = tx.query(
                    &format!(
                        "SELECT name, start_ns, end_ns, content FROM trace_spans WHERE workspace = ? AND trace_id IN ({})",
                        in_list(chunk.len())
                    ),
                    &params,
                )?;
                for s in spans {
                    let content: Json = serde_json::from_str(&s.text(3)).unwrap_or(Json::Null);
                    let start_ns = s.int(1);
                    let end_ns = s.opt_int(2);
                    if cost {
                        let lo = q.window.0.map(|ms| ms.saturating_mul(1_000_000));
                        let hi = q
                            .window
                            .1
                            .map(|ms| ms.saturating_add(1).saturating_mul(1_000_000));
                        if lo.is_some_and(|lo| start_ns < lo) || hi.is_some_and(|hi| start_ns >= hi)
                        {
                            continue;
                        }
                    }
                    let name = s.text(0);
                    let status = content["status"]["code"]
                        .as_str()
                        .map(|c| c.trim_start_matches("STATUS_CODE_").to_owned());
                    // The type as sent (MLflow's server does not decode it as it does the
                    // model and provider).
                    let span_type = otlp::attribute(&content, "mlflow.spanType")
                        .map(otlp::plain)
                        .and_then(|v| match v {
                            Json::String(s) => Some(s),
                            _ => None,
                        });
                    let keep = q.filters.iter().filter(|f| f.view == "span").all(|f| {
                        let have = match f.entity.as_str() {
                            "name" => Some(name.as_str()),
                            "status" => status.as_deref(),
                            _ => span_type.as_deref(),
                        };
                        have == Some(f.value.as_str())
                    });
                    if !keep {
                        continue;
                    }
                    let value = match q.metric.as_str() {
                        "span_count" => Some(1.0),
                        "latency" => end_ns.map(|e| (e - start_ns).div_euclid(1_000_000) as f64),
                        metric => attribute_value(&content, "mlflow.llm.cost")
                            .and_then(|c| finite(&c[metric])),
                    };
                    let dims = HashMap::from([
                        ("span_name", Some(name)),
                        ("span_type", span_type),
                        ("span_status", status),
                        (
                            "span_model_name",
                            bounded(attribute_value(&content, "mlflow.llm.model")),
                        ),
                        (
                            "span_model_provider",
                            bounded(attribute_value(&content, "mlflow.llm.provider")),
                        ),
                    ]);
                    out.push(Row {
                        time: start_ns.div_euclid(1_000_000),
                        value,
                        distinct: None,
                        dims,
                    });
                }
            }
        }
        _ => {
            let times: HashMap<&str, i64> =
                traces.iter().map(|t| (t.id.as_str(), t.time)).collect();
            let ids: Vec<&str> = times.keys().copied().collect();
            for (trace, docs) in assessments::of_traces(tx, ws, &ids)? {
                let time = times.get(trace.as_str()).copied().unwrap_or(0);
                for doc in docs {
                    if doc["valid"] == false {
                        continue;
                    }
                    let name = doc["assessment_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let (kind, value) = assessment_value(&doc);
                    let keep = q
                        .filters
                        .iter()
                        .filter(|f| f.view == "assessment")
                        .all(|f| match f.entity.as_str() {
                            "name" => name == f.value,
                            _ => kind == f.value,
                        });
                    if !keep {
                        continue;
                    }
                    let metric_value = match q.metric.as_str() {
                        "assessment_count" => Some(1.0),
                        _ => aggregate_value(&value),
                    };
                    let dims = HashMap::from([
                        ("assessment_name", Some(name)),
                        (
                            "assessment_value",
                            Some(traces::python_json(&as_doubles(&value))),
                        ),
                    ]);
                    out.push(Row {
                        time,
                        value: metric_value,
                        distinct: None,
                        dims,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// numpy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = (p / 100.0) * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(lo + 1) {
        Some(hi) if frac > 0.0 => sorted[lo] + (hi - sorted[lo]) * frac,
        _ => sorted[lo],
    }
}

fn aggregate(
    a: &Aggregation,
    values: &[f64],
    distinct: usize,
    count_distinct: bool,
) -> Option<f64> {
    if a.kind == "COUNT" {
        return Some(if count_distinct {
            distinct
        } else {
            values.len()
        } as f64);
    }
    if values.is_empty() {
        return None;
    }
    Some(match a.kind.as_str() {
        "SUM" => values.iter().sum(),
        "AVG" => values.iter().sum::<f64>() / values.len() as f64,
        "MIN" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "MAX" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            percentile(&sorted, a.percentile.unwrap_or(50.0))
        }
    })
}

/// A group of rows: its time bucket and dimension values.
type GroupKey = (Option<i64>, Vec<String>);
/// A group's metric values and the distinct keys it counts (sessions).
type Group = (Vec<f64>, HashSet<String>);

fn iso_bucket(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            if ms % 1000 == 0 {
                d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                d.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
            }
        })
        .unwrap_or_default()
}

/// `POST /api/3.0/mlflow/traces/metrics` (QueryTraceMetrics).
pub fn query_trace_metrics(ctx: &Ctx, req: &Req) -> Result<Json> {
    let q = parse(req)?;
    let asked = req.str_list("experiment_ids")?;
    let rows = ctx.read(|tx| {
        let mut experiments = Vec::new();
        for e in &asked {
            if crate::store::queries::experiment(tx, &ctx.workspace, e)?.is_some() {
                experiments.push(e.clone());
            }
        }
        if experiments.is_empty() {
            return Ok(Vec::new());
        }
        rows(tx, &ctx.workspace, &experiments, &q)
    })?;
    let count_distinct = q.metric == "session_count";
    // Groups: (time bucket, dimension values) -> (values, distinct keys). A row with no value
    // or a missing dimension is not counted, as MLflow filters such rows before grouping.
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    let grouped = q.interval_s.is_some() || !q.dimensions.is_empty();
    if !grouped {
        groups.insert((None, Vec::new()), (Vec::new(), HashSet::new()));
    }
    for r in rows {
        let Some(v) = r.value else { continue };
        let mut dims = Vec::with_capacity(q.dimensions.len());
        let mut missing = false;
        for d in &q.dimensions {
            match r.dims.get(d.as_str()).cloned().flatten() {
                Some(x) => dims.push(x),
                None => missing = true,
            }
        }
        if missing {
            continue;
        }
        let bucket = q.interval_s.map(|s| {
            let ms = s.saturating_mul(1000);
            r.time.div_euclid(ms) * ms
        });
        let g = groups.entry((bucket, dims)).or_default();
        g.0.push(v);
        if let Some(d) = r.distinct {
            g.1.insert(d);
        }
    }
    let mut points = Vec::new();
    for ((bucket, dims), (values, distinct)) in groups {
        if points.len() == q.max_results {
            break;
        }
        let mut out_values = serde_json::Map::new();
        for a in &q.aggregations {
            if let Some(v) = aggregate(a, &values, distinct.len(), count_distinct) {
                out_values.insert(a.label(), json!(v));
            }
        }
        if out_values.is_empty() {
            continue;
        }
        let mut out_dims = serde_json::Map::new();
        if let Some(b) = bucket {
            out_dims.insert(TIME_BUCKET.into(), iso_bucket(b).into());
        }
        for (d, v) in q.dimensions.iter().zip(dims) {
            out_dims.insert(d.clone(), v.into());
        }
        let mut p = json!({ "metric_name": q.metric, "values": out_values });
        if !out_dims.is_empty() {
            p["dimensions"] = out_dims.into();
        }
        points.push(p);
    }
    if points.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "data_points": points }))
}
