//! The part of MLflow 3's GenAI API the web UI's GenAI pages read that tandem does not
//! compute yet: trace metrics (`QueryTraceMetrics`).
//!
//! It answers, with MLflow's own validation of the request, what MLflow's server answers over
//! a store with no traces in the asked window (issue 21: metrics over stored traces are
//! next), so that the UI's pages render instead of spinning.

use super::{Ctx, Json, Req, Result};
use crate::api::MlflowError;
use serde_json::json;

/// The metrics of each view, and whether a metric is a count (COUNT only) or a value
/// (AVG / MAX / MIN / PERCENTILE), as MLflow's trace-metrics handler checks them.
const METRICS: &[(&str, &[&str])] = &[
    (
        "TRACES",
        &[
            "trace_count",
            "session_count",
            "latency",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ],
    ),
    (
        "SPANS",
        &[
            "span_count",
            "latency",
            "input_cost",
            "output_cost",
            "total_cost",
        ],
    ),
    ("ASSESSMENTS", &["assessment_count", "assessment_value"]),
];

fn list_text(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `POST /api/3.0/mlflow/traces/metrics` (QueryTraceMetrics).
pub fn trace_metrics(_: &Ctx, req: &Req) -> Result<Json> {
    if req.str_list("experiment_ids")?.is_empty() {
        return Err(super::missing("experiment_ids"));
    }
    let view = req.str("view_type")?;
    let metric = req.str("metric_name")?;
    let aggregations = req.list("aggregations")?;
    if aggregations.is_empty() {
        return Err(super::missing("aggregations"));
    }
    // A view MLflow's protobuf parsing does not know reads as its default, TRACES (MLflow's
    // server answers such a query as a TRACES one).
    let names = METRICS
        .iter()
        .find(|(v, _)| *v == view)
        .unwrap_or(&METRICS[0])
        .1;
    if !names.contains(&metric.as_str()) {
        return Err(MlflowError::invalid(format!(
            "metric_name must be one of {}, got '{metric}'",
            list_text(names)
        )));
    }
    let is_count = metric.ends_with("_count");
    let supported: &[&str] = if is_count {
        &["COUNT"]
    } else {
        &["AVG", "MAX", "MIN", "PERCENTILE"]
    };
    let mut invalid = Vec::new();
    for a in &aggregations {
        let t = a.str("aggregation_type")?;
        if !supported.contains(&t.as_str()) {
            invalid.push(t);
        }
    }
    if !invalid.is_empty() {
        let invalid: Vec<&str> = invalid.iter().map(String::as_str).collect();
        return Err(MlflowError::invalid(format!(
            "Found invalid aggregation_type(s): {}. Supported aggregation types: {}",
            list_text(&invalid),
            list_text(supported)
        )));
    }
    let interval = req.opt_i64("time_interval_seconds")?;
    let (start, end) = (req.opt_i64("start_time_ms")?, req.opt_i64("end_time_ms")?);
    if interval.is_some() && (start.is_none() || end.is_none()) {
        return Err(MlflowError::invalid(
            "start_time_ms and end_time_ms are required if time_interval_seconds is set",
        ));
    }
    let dimensions = req.str_list("dimensions")?;
    req.str_list("filters")?;
    // Over no traces: a count with neither dimensions nor time buckets is one point of zero;
    // every other query has no point at all.
    if is_count && dimensions.is_empty() && interval.is_none() {
        return Ok(
            json!({ "data_points": [{ "metric_name": metric, "values": { "COUNT": 0.0 } }] }),
        );
    }
    Ok(json!({}))
}
