//! MLflow 3's traces on the change log (docs/design/traces.md): OTLP span ingest, the v3
//! trace info (`StartTraceV3`, `GetTraceInfoV3`, `BatchGetTraceInfos`), whole traces
//! (`GetTrace`, `BatchGetTraces`), `SearchTracesV3`, tags (v2 and v3 routes) and deletes.
//!
//! Each OTLP request becomes one `LogSpans` event per trace it carries (its spans' JSON, and
//! the trace's info while the client has not finalized it); the client's `StartTraceV3` is a
//! `StartTrace` event. So traces replicate, archive and restore to the millisecond like runs.

use super::span_filter::{self, SpanFilter};
use super::{assessments, missing, wrong_type, Ctx, Req};
use crate::otlp::{self, SpanIn};
use crate::store::queries;
use crate::store::{Decision, Row, Tx};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use tandem_core::event::TraceSpan;
use tandem_core::search::{self, Field, Kind};
use tandem_core::{MlflowError, Op, Result};

/// MLflow's `SEARCH_TRACES_DEFAULT_MAX_RESULTS` and the handler's bound.
const SEARCH_DEFAULT: i64 = 100;
const SEARCH_MAX: i64 = 500;
/// Previews of a trace's request and response, as MLflow cuts them.
const MAX_PREVIEW: usize = 1000;
const STATES: &[&str] = &["STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS"];
/// Tags MLflow manages itself: a client may not set them (`archivalFailure` may be deleted).
const IMMUTABLE_TAGS: &[&str] = &[
    "mlflow.trace.spansLocation",
    "mlflow.trace.archiveLocation",
    "mlflow.trace.archivalFailure",
];

/// MLflow's trace ID for an OpenTelemetry trace ID.
pub fn trace_id_of(otel: &[u8; 16]) -> String {
    format!("tr-{}", otlp::hex(otel))
}

/// An active experiment, or MLflow's errors for one that is missing or deleted.
pub(crate) fn active_experiment(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Json> {
    let e = queries::experiment(tx, ws, id)?
        .ok_or_else(|| MlflowError::not_found(format!("No Experiment with id={id} exists")))?;
    if e["lifecycle_stage"] != "active" {
        return Err(MlflowError::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {}.",
            e["lifecycle_stage"].as_str().unwrap_or_default()
        ))
        .into());
    }
    Ok(e)
}

fn preview(v: Option<&Json>) -> Option<String> {
    let v = otlp::plain(v?);
    let s = match v {
        Json::Null => return None,
        other => python_json(&other),
    };
    Some(s.chars().take(MAX_PREVIEW).collect())
}

/// JSON as Python's `json.dumps` writes it (", " and ": " between items), which is how
/// MLflow writes a trace's request and response previews.
pub(crate) fn python_json(v: &Json) -> String {
    match v {
        Json::Array(a) => format!(
            "[{}]",
            a.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

const TRACE_COLUMNS: &str = "trace_id, experiment_id, request_time, execution_duration, state, client_request_id, request_preview, response_preview, metadata, finalized, deleted_time";

/// A trace's info as stored, and its tags.
struct TraceRow {
    trace_id: String,
    experiment_id: String,
    request_time: i64,
    execution_duration: Option<i64>,
    state: String,
    client_request_id: Option<String>,
    request_preview: Option<String>,
    response_preview: Option<String>,
    metadata: Map<String, Json>,
    finalized: bool,
    deleted: bool,
    tags: BTreeMap<String, String>,
    /// Its assessments in MLflow's JSON (api/assessments.rs), oldest first.
    assessments: Vec<Json>,
    /// The tags and the request metadata as the JSON objects the row keeps, when it was read
    /// for a search page and not parsed (`tags` and `metadata` are empty then): a page is
    /// written with them as they are (`write_info`).
    text: Option<Box<RowText>>,
}

/// What [`TraceRow::text`] holds.
struct RowText {
    tags: String,
    metadata: String,
}

impl TraceRow {
    /// A trace's row read from a `TRACE_COLUMNS` result, its strings moved out, not copied.
    fn take(r: &mut Row) -> TraceRow {
        TraceRow {
            trace_id: r.take_text(0).unwrap_or_default(),
            experiment_id: r.take_text(1).unwrap_or_default(),
            request_time: r.int(2),
            execution_duration: r.opt_int(3),
            state: r.take_text(4).unwrap_or_default(),
            client_request_id: r.take_text(5),
            request_preview: r.take_text(6),
            response_preview: r.take_text(7),
            metadata: r
                .take_text(8)
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_default(),
            finalized: r.int(9) != 0,
            deleted: r.opt_int(10).is_some(),
            tags: BTreeMap::new(),
            assessments: Vec::new(),
            text: None,
        }
    }

    /// [`TraceRow::take`] from a row the caller keeps.
    fn of(r: &Row) -> TraceRow {
        TraceRow::take(&mut r.clone())
    }

    /// The document an event carries (see `apply::trace_info`).
    fn doc(&self) -> Json {
        json!({
            "request_time": self.request_time,
            "execution_duration": self.execution_duration,
            "state": self.state,
            "client_request_id": self.client_request_id,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "metadata": self.metadata,
            "tags": self.tags,
        })
    }
}

fn trace_row(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> crate::store::Result<Option<TraceRow>> {
    let Some(r) = tx.query_one(
        &format!("SELECT {TRACE_COLUMNS} FROM traces WHERE workspace = ? AND trace_id = ?"),
        &[ws.into(), trace_id.into()],
    )?
    else {
        return Ok(None);
    };
    let mut t = TraceRow::of(&r);
    for tag in tx.query(
        "SELECT key, value FROM trace_tags WHERE workspace = ? AND trace_id = ?",
        &[ws.into(), trace_id.into()],
    )? {
        t.tags.insert(tag.text(0), tag.text(1));
    }
    t.assessments = assessments::of_traces(tx, ws, &[trace_id])?
        .remove(trace_id)
        .unwrap_or_default();
    Ok(Some(t))
}

/// Whether trace `trace_id` exists and is not deleted.
pub(crate) fn is_live(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> crate::store::Result<bool> {
    Ok(tx
        .query_one(
            "SELECT 1 FROM traces WHERE workspace = ? AND trace_id = ? AND deleted_time IS NULL",
            &[ws.into(), trace_id.into()],
        )?
        .is_some())
}

/// MLflow's answer for a trace that is not there.
pub(crate) fn not_found(trace_id: &str) -> MlflowError {
    MlflowError::not_found(format!("Trace with ID '{trace_id}' not found."))
}

/// A live (not deleted) trace, or MLflow's not-found error.
fn live_trace(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> crate::store::Result<TraceRow> {
    match trace_row(tx, ws, trace_id)? {
        Some(t) if !t.deleted => Ok(t),
        _ => Err(not_found(trace_id).into()),
    }
}

/// A time and a duration written as MLflow's JSON writes them, straight into the answer (a
/// search page writes two per trace; no string is made for them).
struct Timestamp(i64);
/// (`google.protobuf.Duration` in its JSON mapping, from milliseconds.)
struct Duration(i64);

impl Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` into a buffer on the stack (a search page writes one per
    /// trace; the formatting machinery cost more than the rest of the field).
    fn write(&self, buf: &mut [u8; 24]) -> usize {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default();
        let mut n = 0;
        let mut put = |mut v: u32, width: usize, sep: u8| {
            for i in (0..width).rev() {
                buf[n + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            buf[n + width] = sep;
            n += width + 1;
        };
        put(t.year().clamp(0, 9999) as u32, 4, b'-');
        put(t.month(), 2, b'-');
        put(t.day(), 2, b'T');
        put(t.hour(), 2, b':');
        put(t.minute(), 2, b':');
        let millis = self.0.rem_euclid(1000) as u32;
        if millis != 0 {
            put(t.second(), 2, b'.');
            put(millis, 3, b'Z');
        } else {
            put(t.second(), 2, b'Z');
        }
        n
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        let n = self.write(&mut buf);
        s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 24];
        let n = self.write(&mut buf);
        f.write_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{}.{:03}s", ms / 1000, (ms % 1000).abs())
        }
    }
}

/// `google.protobuf.Timestamp` in its JSON mapping, from milliseconds.
pub(crate) fn timestamp_json(ms: i64) -> String {
    Timestamp(ms).to_string()
}

pub(crate) fn parse_timestamp(v: &Json, key: &str) -> Result<Option<i64>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| wrong_type(key, v)),
        Json::Object(o) => {
            let secs = o
                .get("seconds")
                .and_then(|s| s.as_i64().or_else(|| s.as_str()?.parse().ok()))
                .unwrap_or(0);
            let nanos = o.get("nanos").and_then(Json::as_i64).unwrap_or(0);
            Ok(Some(secs * 1000 + nanos / 1_000_000))
        }
        _ => Err(wrong_type(key, v)),
    }
}

fn parse_duration(v: &Json, key: &str) -> Result<Option<i64>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => s
            .strip_suffix('s')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .map(|n| Some((n * 1000.0).round() as i64))
            .ok_or_else(|| wrong_type(key, v)),
        _ => Err(wrong_type(key, v)),
    }
}

/// TraceInfo (v3) in MLflow's JSON.
fn render(t: &TraceRow, artifact_location: &str) -> Json {
    serde_json::to_value(info_out(t, artifact_location)).expect("trace infos serialize")
}

/// TraceInfo (v3) as MLflow writes it, borrowed from the stored row: serialized straight to
/// text for a search page, or to a JSON value.
#[derive(serde::Serialize)]
struct InfoOut<'a> {
    trace_id: &'a str,
    trace_location: LocationOut<'a>,
    request_time: Timestamp,
    state: &'a str,
    tags: TagsOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_metadata: Option<MetadataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_duration: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_preview: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_preview: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Json]>::is_empty")]
    assessments: &'a [Json],
}

#[derive(serde::Serialize)]
struct LocationOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    mlflow_experiment: ExperimentOut<'a>,
}

#[derive(serde::Serialize)]
struct ExperimentOut<'a> {
    experiment_id: &'a str,
}

/// A trace's tags, with where its artifacts are unless a tag says. (Where its spans are,
/// `mlflow.trace.spansLocation`, is a stored tag: written when spans arrive, as MLflow's server
/// writes it, so a trace that has none, one started through the v2 API, has no such tag.)
struct TagsOut<'a> {
    tags: &'a BTreeMap<String, String>,
    /// The tags' JSON text instead, when the row kept it unparsed.
    text: Option<&'a str>,
    artifact_location: &'a str,
    trace_id: &'a str,
}

impl serde::Serialize for TagsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let parsed: BTreeMap<String, String>;
        let tags = match self.text {
            Some(t) => {
                parsed = serde_json::from_str(t).unwrap_or_default();
                &parsed
            }
            None => self.tags,
        };
        let mut m = s.serialize_map(None)?;
        for (k, v) in tags {
            m.serialize_entry(k, v)?;
        }
        if !tags.contains_key(ARTIFACT_LOCATION) {
            m.serialize_entry(
                ARTIFACT_LOCATION,
                &TraceArtifacts(self.artifact_location, self.trace_id),
            )?;
        }
        m.end()
    }
}

const ARTIFACT_LOCATION: &str = "mlflow.artifactLocation";
const INFO_FINALIZED: &str = "mlflow.trace.infoFinalized";

/// Where a trace's artifacts are: `LOCATION/traces/TRACE_ID/artifacts`.
struct TraceArtifacts<'a>(&'a str, &'a str);

impl TraceArtifacts<'_> {
    fn path(&self) -> String {
        let mut path = String::with_capacity(self.0.len() + self.1.len() + 18);
        path.push_str(self.0);
        path.push_str("/traces/");
        path.push_str(self.1);
        path.push_str("/artifacts");
        path
    }
}

impl serde::Serialize for TraceArtifacts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.path())
    }
}

/// A trace's request metadata, with `mlflow.trace.infoFinalized` once the client finalized it.
struct MetadataOut<'a> {
    metadata: &'a Map<String, Json>,
    /// The metadata's JSON text instead, when the row kept it unparsed.
    text: Option<&'a str>,
    finalized: bool,
}

impl serde::Serialize for MetadataOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let parsed: Map<String, Json>;
        let metadata = match self.text {
            Some(t) => {
                parsed = serde_json::from_str(t).unwrap_or_default();
                &parsed
            }
            None => self.metadata,
        };
        let mut m = s.serialize_map(None)?;
        for (k, v) in metadata {
            if !(self.finalized && k == INFO_FINALIZED) {
                m.serialize_entry(k, v)?;
            }
        }
        if self.finalized {
            m.serialize_entry(INFO_FINALIZED, "true")?;
        }
        m.end()
    }
}

/// Whether a JSON object's text is `{}` (with any spacing).
fn empty_object(text: &str) -> bool {
    text.trim()
        .strip_prefix('{')
        .is_some_and(|r| r.trim_start().starts_with('}'))
}

impl TraceRow {
    fn has_metadata(&self) -> bool {
        match &self.text {
            Some(t) => !empty_object(&t.metadata),
            None => !self.metadata.is_empty(),
        }
    }
}

fn info_out<'a>(t: &'a TraceRow, artifact_location: &'a str) -> InfoOut<'a> {
    InfoOut {
        trace_id: &t.trace_id,
        trace_location: LocationOut {
            kind: "MLFLOW_EXPERIMENT",
            mlflow_experiment: ExperimentOut {
                experiment_id: &t.experiment_id,
            },
        },
        request_time: Timestamp(t.request_time),
        state: &t.state,
        tags: TagsOut {
            tags: &t.tags,
            text: t.text.as_ref().map(|x| x.tags.as_str()),
            artifact_location,
            trace_id: &t.trace_id,
        },
        trace_metadata: (t.finalized || t.has_metadata()).then_some(MetadataOut {
            metadata: &t.metadata,
            text: t.text.as_ref().map(|x| x.metadata.as_str()),
            finalized: t.finalized,
        }),
        execution_duration: t.execution_duration.map(Duration),
        request_preview: t.request_preview.as_deref(),
        response_preview: t.response_preview.as_deref(),
        client_request_id: t.client_request_id.as_deref(),
        assessments: &t.assessments,
    }
}

/// [`InfoOut`] written by hand into `out`, the same JSON (a test holds them equal): a search
/// page's tags and metadata go in as the row keeps them, neither parsed nor escaped again,
/// which is most of what writing a page cost.
fn write_info(out: &mut Vec<u8>, t: &TraceRow, artifact_location: &str) {
    fn string(out: &mut Vec<u8>, s: &str) {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    }
    fn value<T: serde::Serialize>(out: &mut Vec<u8>, v: &T) {
        serde_json::to_writer(&mut *out, v).expect("trace infos serialize");
    }
    let full = info_out(t, artifact_location);
    out.extend_from_slice(br#"{"trace_id":"#);
    string(out, &t.trace_id);
    out.extend_from_slice(
        br#","trace_location":{"type":"MLFLOW_EXPERIMENT","mlflow_experiment":{"experiment_id":"#,
    );
    string(out, &t.experiment_id);
    out.extend_from_slice(br#"}},"request_time":""#);
    let mut buf = [0u8; 24];
    let n = Timestamp(t.request_time).write(&mut buf);
    out.extend_from_slice(&buf[..n]);
    out.extend_from_slice(br#"","state":"#);
    string(out, &t.state);
    out.extend_from_slice(br#","tags":"#);
    match &t.text {
        // The artifact location goes first (the stored object has no such tag), then the
        // stored tags as they are.
        Some(text)
            if !text.tags.contains(ARTIFACT_LOCATION)
                && text.tags.trim_start().starts_with('{') =>
        {
            out.extend_from_slice(br#"{"mlflow.artifactLocation":"#);
            value(out, &TraceArtifacts(artifact_location, &t.trace_id));
            let rest = text.tags.trim_start()[1..].trim_start();
            if !rest.starts_with('}') {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
        _ => value(out, &full.tags),
    }
    if let Some(m) = &full.trace_metadata {
        out.extend_from_slice(br#","trace_metadata":"#);
        match &t.text {
            Some(text)
                if !text.metadata.contains(INFO_FINALIZED)
                    && text.metadata.trim_end().ends_with('}') =>
            {
                let body = text.metadata.trim_end();
                let body = &body[..body.len() - 1];
                out.extend_from_slice(body.as_bytes());
                if t.finalized {
                    if !empty_object(&text.metadata) {
                        out.push(b',');
                    }
                    out.extend_from_slice(br#""mlflow.trace.infoFinalized":"true""#);
                }
                out.push(b'}');
            }
            _ => value(out, m),
        }
    }
    if let Some(d) = t.execution_duration {
        out.extend_from_slice(br#","execution_duration":"#);
        value(out, &Duration(d));
    }
    for (key, v) in [
        (&br#","request_preview":"#[..], &t.request_preview),
        (br#","response_preview":"#, &t.response_preview),
        (br#","client_request_id":"#, &t.client_request_id),
    ] {
        if let Some(v) = v {
            out.extend_from_slice(key);
            string(out, v);
        }
    }
    if !t.assessments.is_empty() {
        out.extend_from_slice(br#","assessments":"#);
        value(out, &t.assessments);
    }
    out.push(b'}');
}

fn artifact_locations(
    tx: &mut dyn Tx,
    ws: &str,
    rows: &[TraceRow],
) -> crate::store::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for r in rows {
        if !out.contains_key(&r.experiment_id) {
            let loc = tx
                .query_one(
                    "SELECT artifact_location FROM experiments WHERE workspace = ? AND experiment_id = ?",
                    &[ws.into(), r.experiment_id.as_str().into()],
                )?
                .and_then(|mut row| row.take_text(0))
                .unwrap_or_default();
            out.insert(r.experiment_id.clone(), loc);
        }
    }
    Ok(out)
}

fn spans_of(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> crate::store::Result<Vec<Json>> {
    Ok(tx
        .query(
            "SELECT content FROM trace_spans WHERE workspace = ? AND trace_id = ? ORDER BY start_ns, span_id",
            &[ws.into(), trace_id.into()],
        )?
        .iter()
        .map(|r| serde_json::from_str(&r.text(0)).unwrap_or(Json::Null))
        .collect())
}

// ---------------------------------------------------------------------------------------
// Ingest

/// `POST /v1/traces`: spans for experiment `experiment_id`, one `LogSpans` event per trace.
/// Returns how many spans were stored.
pub fn log_spans(ctx: &Ctx, experiment_id: &str, spans: Vec<SpanIn>) -> Result<usize> {
    let n = spans.len();
    let mut by_trace: Vec<(String, Vec<SpanIn>)> = Vec::new();
    for s in spans {
        let id = trace_id_of(&s.trace_id);
        match by_trace.iter_mut().find(|(t, _)| *t == id) {
            Some((_, v)) => v.push(s),
            None => by_trace.push((id, vec![s])),
        }
    }
    let time = ctx.now();
    ctx.write(|tx| {
        active_experiment(tx, &ctx.workspace, experiment_id)?;
        let mut ops = Vec::new();
        for (trace_id, spans) in &by_trace {
            let existing = trace_row(tx, &ctx.workspace, trace_id)?;
            if let Some(e) = &existing {
                if e.experiment_id != experiment_id {
                    return Err(MlflowError::invalid(format!(
                        "Trace '{trace_id}' belongs to experiment {}, not {experiment_id}.",
                        e.experiment_id
                    ))
                    .into());
                }
            }
            let info = match existing {
                Some(e) if e.finalized => None,
                e => {
                    // Usage and cost are summed over the whole tree: the spans stored before
                    // are read when this batch brings figures to a trace that has some.
                    let figures: Vec<SpanFigures> =
                        spans.iter().map(|s| SpanFigures::of(&s.content)).collect();
                    let stored = match &e {
                        Some(_) if figures.iter().any(SpanFigures::any) => {
                            stored_spans(tx, &ctx.workspace, trace_id)?
                        }
                        _ => Vec::new(),
                    };
                    Some(
                        info_from_spans(e, trace_id, experiment_id, spans, &figures, &stored)
                            .doc()
                            .to_string(),
                    )
                }
            };
            ops.push(Op::LogSpans {
                trace_id: trace_id.clone(),
                experiment_id: experiment_id.to_owned(),
                spans: spans
                    .iter()
                    .map(|s| TraceSpan {
                        span_id: otlp::hex(&s.span_id),
                        parent_span_id: s.parent_span_id.map(|p| otlp::hex(&p)),
                        name: s.name.clone(),
                        start_ns: s.start_ns,
                        end_ns: s.end_ns,
                        content: s.content.to_string(),
                    })
                    .collect(),
                info,
                time,
            });
        }
        Ok(Decision::changes(n, ops))
    })
}

/// What spans tell of a trace the client has not finalized yet: its start and duration, its
/// state and name (from the root span), the previews of its request and response.
fn info_from_spans(
    existing: Option<TraceRow>,
    trace_id: &str,
    experiment_id: &str,
    spans: &[SpanIn],
    figures: &[SpanFigures],
    stored: &[StoredSpan],
) -> TraceRow {
    let mut t = existing.unwrap_or(TraceRow {
        trace_id: trace_id.to_owned(),
        experiment_id: experiment_id.to_owned(),
        request_time: i64::MAX,
        execution_duration: None,
        state: "IN_PROGRESS".into(),
        client_request_id: None,
        request_preview: None,
        response_preview: None,
        metadata: Map::new(),
        finalized: false,
        deleted: false,
        tags: BTreeMap::new(),
        assessments: Vec::new(),
        text: None,
    });
    let start = spans
        .iter()
        .map(|s| s.start_ns / 1_000_000)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .filter_map(|s| s.end_ns)
        .map(|e| e / 1_000_000)
        .max();
    let old_end = t.execution_duration.map(|d| t.request_time + d);
    t.request_time = t.request_time.min(start);
    if let Some(end) = end.into_iter().chain(old_end).max() {
        t.execution_duration = Some(end - t.request_time);
    }
    if let Some(root) = spans.iter().find(|s| s.parent_span_id.is_none()) {
        t.state = match root.status_code {
            1 => "OK",
            2 => "ERROR",
            _ => "IN_PROGRESS",
        }
        .into();
        t.tags.insert("mlflow.traceName".into(), root.name.clone());
        // Trace tags a producer sets on the root span (`mlflow.traceTag.KEY`), as MLflow's
        // server takes them.
        for a in root.content["attributes"].as_array().into_iter().flatten() {
            if let Some(key) = a["key"]
                .as_str()
                .and_then(|k| k.strip_prefix("mlflow.traceTag."))
            {
                if !key.is_empty() && key.chars().count() <= 250 {
                    let v = match otlp::plain(&a["value"]) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    t.tags.insert(key.to_owned(), v);
                }
            }
        }
        t.request_preview = preview(otlp::attribute(&root.content, "mlflow.spanInputs"));
        t.response_preview = preview(otlp::attribute(&root.content, "mlflow.spanOutputs"));
    }
    span_aggregates(&mut t, spans, figures, stored);
    t
}

/// What MLflow's store takes into a trace's metadata from spans the client has not totalled
/// (an OTLP-only producer): token usage and cost over the span tree, the session
/// (`session.id`, `gen_ai.conversation.id`) and the user (`user.id`) the spans name.
/// `figures` are the batch's spans' own, in order.
fn span_aggregates(
    t: &mut TraceRow,
    spans: &[SpanIn],
    figures: &[SpanFigures],
    stored: &[StoredSpan],
) {
    use tandem_core::span_rollup::{self, COST_KEYS, USAGE_CACHE_KEYS, USAGE_KEYS};
    if figures.iter().any(SpanFigures::any) {
        let batch: Vec<(String, Option<String>)> = spans
            .iter()
            .map(|s| {
                (
                    otlp::hex(&s.span_id),
                    s.parent_span_id.map(|p| otlp::hex(&p)),
                )
            })
            .collect();
        // A span sent again replaces its stored self.
        let all: Vec<(&str, Option<&str>, &SpanFigures)> = batch
            .iter()
            .zip(figures)
            .map(|((id, p), f)| (id.as_str(), p.as_deref(), f))
            .chain(
                stored
                    .iter()
                    .filter(|s| !batch.iter().any(|(b, _)| *b == s.span_id))
                    .map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref(), &s.figures)),
            )
            .collect();
        let nodes = |pick: fn(&SpanFigures) -> Option<&Map<String, Json>>| {
            all.iter()
                .map(|(id, parent, f)| span_rollup::SpanFigures {
                    span_id: id,
                    parent_id: *parent,
                    figures: pick(f),
                })
                .collect::<Vec<_>>()
        };
        let text = |pairs: Vec<(String, Json)>| {
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), python_json(v)))
                .collect();
            Json::String(format!("{{{}}}", body.join(", ")))
        };
        let usage = span_rollup::rollup(
            &nodes(|f| f.usage.as_ref()),
            &USAGE_KEYS,
            &USAGE_CACHE_KEYS,
            false,
        );
        if let Some(u) = usage {
            t.metadata.insert("mlflow.trace.tokenUsage".into(), text(u));
        }
        if let Some(c) = span_rollup::rollup(&nodes(|f| f.cost.as_ref()), &COST_KEYS, &[], true) {
            t.metadata.insert("mlflow.trace.cost".into(), text(c));
        }
    }
    for (key, attributes) in [
        (
            "mlflow.trace.session",
            &["session.id", "gen_ai.conversation.id"][..],
        ),
        ("mlflow.trace.user", &["user.id"][..]),
    ] {
        if t.metadata.contains_key(key) {
            continue;
        }
        let found = spans.iter().find_map(|s| {
            attributes
                .iter()
                .find_map(|a| match otlp::attribute(&s.content, a).map(otlp::plain) {
                    Some(Json::String(v)) if !v.is_empty() => Some(v),
                    Some(Json::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
        });
        if let Some(v) = found {
            t.metadata.insert(key.into(), Json::String(v));
        }
    }
}

/// A span's token usage and cost (read once per span: ingest is the hot path).
struct SpanFigures {
    usage: Option<Map<String, Json>>,
    cost: Option<Map<String, Json>>,
}

impl SpanFigures {
    fn of(content: &Json) -> SpanFigures {
        SpanFigures {
            // MLflow's attribute, else an OpenTelemetry convention's counts.
            usage: object_attribute(content, "mlflow.chat.tokenUsage").or_else(|| {
                tandem_core::span_rollup::usage_from_conventions(|k| {
                    otlp::attribute(content, k).map(otlp::plain)
                })
            }),
            cost: object_attribute(content, "mlflow.llm.cost"),
        }
    }

    fn any(&self) -> bool {
        self.usage.is_some() || self.cost.is_some()
    }
}

/// A JSON object an attribute holds, as text (MLflow's attributes are JSON-encoded) or as a
/// key-value list.
fn object_attribute(content: &Json, key: &str) -> Option<Map<String, Json>> {
    let mut v = otlp::plain(otlp::attribute(content, key)?);
    for _ in 0..2 {
        match v {
            Json::Object(o) => return Some(o),
            Json::String(s) => v = serde_json::from_str(&s).ok()?,
            _ => return None,
        }
    }
    v.as_object().cloned()
}

/// A span stored before, with its figures.
struct StoredSpan {
    span_id: String,
    parent_span_id: Option<String>,
    figures: SpanFigures,
}

/// The spans stored for a trace, with their figures.
fn stored_spans(
    tx: &mut dyn Tx,
    ws: &str,
    trace_id: &str,
) -> crate::store::Result<Vec<StoredSpan>> {
    Ok(tx
        .query(
            "SELECT span_id, parent_span_id, content FROM trace_spans WHERE workspace = ? AND trace_id = ?",
            &[ws.into(), trace_id.into()],
        )?
        .into_iter()
        .map(|mut r| {
            let content: Json = r
                .take_text(2)
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or(Json::Null);
            StoredSpan {
                span_id: r.take_text(0).unwrap_or_default(),
                parent_span_id: r.take_text(1),
                figures: SpanFigures::of(&content),
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Trace info

/// `POST mlflow/traces` (StartTraceV3): the client's final info for a trace.
/// `POST mlflow/traces`: `StartTraceV3` (under /api/3.0, a `trace` in the body) or MLflow 2's
/// `StartTrace` (under /api/2.0, an `experiment_id`), told apart by their bodies since both
/// have the same path.
pub fn start_trace(ctx: &Ctx, req: &Req) -> Result<Json> {
    if !req.has("trace") && req.has("experiment_id") {
        return start_trace_v2(ctx, req);
    }
    start_trace_v3(ctx, req)
}

pub fn start_trace_v3(ctx: &Ctx, req: &Req) -> Result<Json> {
    let trace = req.obj("trace")?.ok_or_else(|| missing("trace"))?;
    let info = trace
        .obj("trace_info")?
        .ok_or_else(|| missing("trace_info"))?;
    let trace_id = info.str("trace_id")?;
    let experiment_id = info
        .obj("trace_location")?
        .and_then(|l| l.obj("mlflow_experiment").ok().flatten())
        .ok_or_else(|| missing("trace_location.mlflow_experiment"))?
        .str("experiment_id")?;
    let request_time = parse_timestamp(
        info.0.get("request_time").unwrap_or(&Json::Null),
        "request_time",
    )?
    .unwrap_or(0);
    let execution_duration = parse_duration(
        info.0.get("execution_duration").unwrap_or(&Json::Null),
        "execution_duration",
    )?;
    let state = info
        .opt_str("state")?
        .unwrap_or_else(|| "STATE_UNSPECIFIED".into());
    if !STATES.contains(&state.as_str()) {
        return Err(wrong_type("state", &Json::String(state)));
    }
    let metadata = info.str_map("trace_metadata")?.unwrap_or_default();
    let tags = info.str_map("tags")?.unwrap_or_default();
    if let Some(name) = tags.get("mlflow.traceName") {
        if name.chars().count() > 250 {
            return Err(MlflowError::invalid(
                "The trace name (tag 'mlflow.traceName') is at most 250 characters.",
            ));
        }
    }
    let mut row = TraceRow {
        trace_id: trace_id.clone(),
        experiment_id: experiment_id.clone(),
        request_time,
        execution_duration,
        state,
        client_request_id: info.opt_str("client_request_id")?,
        request_preview: info.opt_str("request_preview")?,
        response_preview: info.opt_str("response_preview")?,
        metadata: metadata
            .into_iter()
            .map(|(k, v)| (k, Json::String(v)))
            .collect(),
        finalized: true,
        deleted: false,
        assessments: Vec::new(),
        text: None,
        tags: tags
            .into_iter()
            .filter(|(k, _)| !IMMUTABLE_TAGS.contains(&k.as_str()))
            .collect(),
    };
    let time = ctx.now();
    let (row, loc) = ctx.write(|tx| {
        let e = active_experiment(tx, &ctx.workspace, &experiment_id)?;
        // As MLflow's server answers: for a trace its spans created already, the tags it had
        // (the client's are stored all the same).
        let mut answered_tags = None;
        if let Some(existing) = trace_row(tx, &ctx.workspace, &trace_id)? {
            answered_tags = Some(existing.tags.clone());
            // Tags the spans or a user set earlier stay unless the client names them again.
            for (k, v) in existing.tags {
                row.tags.entry(k).or_insert(v);
            }
        }
        let op = Op::StartTrace {
            trace_id: trace_id.clone(),
            experiment_id: experiment_id.clone(),
            info: row.doc().to_string(),
            time,
        };
        let loc = e["artifact_location"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut answered = trace_row_from(&row);
        if let Some(tags) = answered_tags {
            answered.tags = tags;
        }
        answered.assessments = assessments::of_traces(tx, &ctx.workspace, &[&trace_id])?
            .remove(&trace_id)
            .unwrap_or_default();
        Ok(Decision::change((answered, loc), op))
    })?;
    Ok(json!({ "trace": { "trace_info": render(&row, &loc) } }))
}

fn trace_row_from(r: &TraceRow) -> TraceRow {
    TraceRow {
        trace_id: r.trace_id.clone(),
        experiment_id: r.experiment_id.clone(),
        request_time: r.request_time,
        execution_duration: r.execution_duration,
        state: r.state.clone(),
        client_request_id: r.client_request_id.clone(),
        request_preview: r.request_preview.clone(),
        response_preview: r.response_preview.clone(),
        metadata: r.metadata.clone(),
        finalized: r.finalized,
        deleted: r.deleted,
        tags: r.tags.clone(),
        assessments: r.assessments.clone(),
        text: None,
    }
}

/// `GET mlflow/traces/{trace_id}` (GetTraceInfoV3).
pub fn get_trace_info_v3(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("trace_id")?;
    let (t, l) = trace_with_location(ctx, &id)?;
    Ok(json!({ "trace": { "trace_info": render(&t, &l) } }))
}

// ---------------------------------------------------------------------------------------
// The v2 trace API (MLflow 2's clients; MLflow 3's client falls back to it only where the v3
// routes are missing): the same traces, in TraceInfo's v2 shape.

/// TraceInfo (v2) as MLflow's v2 routes answer it: its v3 form turned into v2 as MLflow's
/// `TraceInfoV2.from_v3` does (metadata and tags as lists of pairs, the state as a status).
fn v2_info(t: &TraceRow, artifact_location: &str) -> Json {
    let v3 = render(t, artifact_location);
    let pairs = |m: &Json| -> Vec<Json> {
        m.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect()
    };
    let status = match t.state.as_str() {
        s @ ("OK" | "ERROR" | "IN_PROGRESS") => s,
        _ => "TRACE_STATUS_UNSPECIFIED",
    };
    json!({
        "request_id": t.trace_id,
        "experiment_id": t.experiment_id,
        "timestamp_ms": t.request_time,
        "execution_time_ms": t.execution_duration.unwrap_or(0),
        "status": status,
        "request_metadata": pairs(&v3["trace_metadata"]),
        "tags": pairs(&v3["tags"]),
    })
}

fn v2_state(req: &Req) -> Result<String> {
    Ok(match req.opt_str("status")?.as_deref() {
        None | Some("TRACE_STATUS_UNSPECIFIED") => "STATE_UNSPECIFIED".into(),
        Some(s @ ("OK" | "ERROR" | "IN_PROGRESS")) => s.into(),
        Some(other) => return Err(wrong_type("status", &Json::String(other.into()))),
    })
}

fn v2_pairs(req: &Req, key: &str) -> Result<BTreeMap<String, String>> {
    Ok(req
        .kv_list(key)?
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect())
}

fn check_trace_name(tags: &BTreeMap<String, String>) -> Result<()> {
    match tags.get("mlflow.traceName") {
        Some(name) if name.chars().count() > 250 => Err(MlflowError::invalid(
            "The trace name (tag 'mlflow.traceName') is at most 250 characters.",
        )),
        _ => Ok(()),
    }
}

/// `POST /api/2.0/mlflow/traces` (StartTrace, v2): a new trace in progress, its ID a random
/// 32-hex-digit one as MLflow 2 made them.
pub fn start_trace_v2(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let request_time = req.opt_i64("timestamp_ms")?.unwrap_or(0);
    let metadata = v2_pairs(req, "request_metadata")?;
    let tags = v2_pairs(req, "tags")?;
    check_trace_name(&tags)?;
    let row = TraceRow {
        trace_id: otlp::hex(&super::random_bytes::<16>()),
        experiment_id: experiment_id.clone(),
        request_time,
        execution_duration: None,
        state: "IN_PROGRESS".into(),
        client_request_id: None,
        request_preview: None,
        response_preview: None,
        metadata: metadata
            .into_iter()
            .map(|(k, v)| (k, Json::String(v)))
            .collect(),
        finalized: false,
        deleted: false,
        tags: tags
            .into_iter()
            .filter(|(k, _)| !IMMUTABLE_TAGS.contains(&k.as_str()))
            .collect(),
        assessments: Vec::new(),
        text: None,
    };
    let time = ctx.now();
    let loc = ctx.write(|tx| {
        let e = active_experiment(tx, &ctx.workspace, &experiment_id)?;
        let op = Op::LogSpans {
            trace_id: row.trace_id.clone(),
            experiment_id: experiment_id.clone(),
            spans: Vec::new(),
            info: Some(row.doc().to_string()),
            time,
        };
        let loc = e["artifact_location"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Decision::change(loc, op))
    })?;
    Ok(json!({ "trace_info": v2_info(&row, &loc) }))
}

/// `PATCH /api/2.0/mlflow/traces/{request_id}` (EndTrace, v2): the end time (the duration
/// from the start), the status, and metadata and tags merged into what the trace has.
pub fn end_trace_v2(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = trace_param(req)?;
    let end = req.opt_i64("timestamp_ms")?.unwrap_or(0);
    let state = v2_state(req)?;
    let metadata = v2_pairs(req, "request_metadata")?;
    let tags = v2_pairs(req, "tags")?;
    check_trace_name(&tags)?;
    let time = ctx.now();
    let (row, loc) = ctx.write(|tx| {
        let mut t = live_trace(tx, &ctx.workspace, &id)?;
        t.execution_duration = Some(end - t.request_time);
        t.state = state.clone();
        for (k, v) in &metadata {
            t.metadata.insert(k.clone(), Json::String(v.clone()));
        }
        for (k, v) in &tags {
            if !IMMUTABLE_TAGS.contains(&k.as_str()) {
                t.tags.insert(k.clone(), v.clone());
            }
        }
        let info = t.doc().to_string();
        // A trace the v3 client finalized stays finalized.
        let op = match t.finalized {
            true => Op::StartTrace {
                trace_id: id.clone(),
                experiment_id: t.experiment_id.clone(),
                info,
                time,
            },
            false => Op::LogSpans {
                trace_id: id.clone(),
                experiment_id: t.experiment_id.clone(),
                spans: Vec::new(),
                info: Some(info),
                time,
            },
        };
        let loc = artifact_locations(tx, &ctx.workspace, std::slice::from_ref(&t))?;
        Ok(Decision::change((t, loc), op))
    })?;
    let l = loc.get(&row.experiment_id).cloned().unwrap_or_default();
    Ok(json!({ "trace_info": v2_info(&row, &l) }))
}

/// `GET /api/2.0/mlflow/traces/{request_id}/info` (GetTraceInfo, v2).
pub fn get_trace_info_v2(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = trace_param(req)?;
    let (t, l) = trace_with_location(ctx, &id)?;
    Ok(json!({ "trace_info": v2_info(&t, &l) }))
}

/// `GET /api/2.0/mlflow/traces` (SearchTraces, v2): `SearchTracesV3` over the experiments,
/// answered in the v2 shape; at most 500 a page, as MLflow's v2 handler allows.
pub fn search_traces_v2(ctx: &Ctx, req: &Req) -> Result<Json> {
    if !req.has("experiment_ids") {
        return Err(missing("experiment_ids"));
    }
    let experiments = req.str_list("experiment_ids")?;
    let locations: Vec<Json> = experiments
        .iter()
        .map(
            |e| json!({ "type": "MLFLOW_EXPERIMENT", "mlflow_experiment": { "experiment_id": e } }),
        )
        .collect();
    let mut v3 = json!({ "locations": locations, "order_by": req.str_list("order_by")? });
    if let Some(n) = req.opt_i64("max_results")? {
        if n > SEARCH_MAX {
            let raw = req.0.get("max_results").cloned().unwrap_or(Json::Null);
            return Err(wrong_type("max_results", &raw));
        }
        v3["max_results"] = n.into();
    }
    for key in ["filter", "page_token"] {
        if let Some(v) = req.opt_str(key)? {
            v3[key] = v.into();
        }
    }
    let Some(page) = search_page(ctx, &Req::from_json(v3)?)? else {
        return Ok(json!({}));
    };
    let traces: Vec<Json> = page
        .rows
        .iter()
        .map(|t| v2_info(t, page.location(t)))
        .collect();
    let mut out = json!({ "traces": traces });
    if let Some(next) = page.next {
        out["next_page_token"] = next.into();
    }
    Ok(out)
}

/// A live trace and its experiment's artifact location (what its info is rendered with).
fn trace_with_location(ctx: &Ctx, id: &str) -> Result<(TraceRow, String)> {
    let (t, loc) = ctx.read(|tx| {
        let t = live_trace(tx, &ctx.workspace, id)?;
        let loc = artifact_locations(tx, &ctx.workspace, std::slice::from_ref(&t))?;
        Ok((t, loc))
    })?;
    let l = loc.get(&t.experiment_id).cloned().unwrap_or_default();
    Ok((t, l))
}

/// `GET mlflow/traces/get` (GetTrace): the info and every span.
pub fn get_trace(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("trace_id")?;
    req.opt_bool("allow_partial")?;
    let (t, loc, spans) = ctx.read(|tx| {
        let t = match trace_row(tx, &ctx.workspace, &id)? {
            Some(t) if !t.deleted => t,
            _ => {
                return Err(
                    MlflowError::not_found(format!("Trace with ID {id} is not found.")).into(),
                )
            }
        };
        let loc = artifact_locations(tx, &ctx.workspace, std::slice::from_ref(&t))?;
        let spans = spans_of(tx, &ctx.workspace, &id)?;
        Ok((t, loc, spans))
    })?;
    let l = loc.get(&t.experiment_id).cloned().unwrap_or_default();
    Ok(json!({ "trace": { "trace_info": render(&t, &l), "spans": spans } }))
}

fn batch(ctx: &Ctx, req: &Req, with_spans: bool) -> Result<Vec<Json>> {
    if !req.has("trace_ids") {
        return Err(missing("trace_ids"));
    }
    let ids = req.str_list("trace_ids")?;
    let experiments = req
        .has("experiment_ids")
        .then(|| req.str_list("experiment_ids"))
        .transpose()?;
    ctx.read(|tx| {
        let mut rows = Vec::new();
        for id in &ids {
            if let Some(t) = trace_row(tx, &ctx.workspace, id)? {
                if !t.deleted
                    && experiments
                        .as_ref()
                        .is_none_or(|e| e.contains(&t.experiment_id))
                {
                    rows.push(t);
                }
            }
        }
        let locs = artifact_locations(tx, &ctx.workspace, &rows)?;
        let mut out = Vec::new();
        for t in &rows {
            let info = render(
                t,
                locs.get(&t.experiment_id).map(String::as_str).unwrap_or(""),
            );
            out.push(if with_spans {
                json!({ "trace_info": info, "spans": spans_of(tx, &ctx.workspace, &t.trace_id)? })
            } else {
                info
            });
        }
        Ok(out)
    })
}

/// `GET mlflow/traces/batchGet` (BatchGetTraces).
pub fn batch_get_traces(ctx: &Ctx, req: &Req) -> Result<Json> {
    Ok(json!({ "traces": batch(ctx, req, true)? }))
}

/// `POST mlflow/traces/batchGetInfos` (BatchGetTraceInfos).
pub fn batch_get_trace_infos(ctx: &Ctx, req: &Req) -> Result<Json> {
    Ok(json!({ "trace_infos": batch(ctx, req, false)? }))
}

/// A stored span in MLflow's own span form (`Span.to_dict`): attribute values as the JSON
/// text of their value, status and events spelled out; what the UI's trace view reads.
fn mlflow_span_dict(c: &Json) -> Json {
    // The same dict MLflow's store keeps as the span's row text (what span filters match).
    serde_json::from_str(&span_filter::mlflow_content_text(c)).expect("the span text is JSON")
}

/// `GET mlflow/get-trace-artifact?request_id=` (the web UI's trace view): the trace's data,
/// `{"spans": [...]}` in MLflow's span form. Attachments (`path=`) are not stored yet.
pub fn get_trace_artifact(ctx: &Ctx, req: &Req) -> Result<Json> {
    let Some(id) = req.opt_str("request_id")?.filter(|s| !s.is_empty()) else {
        return Err(MlflowError::new(
            tandem_core::ErrorCode::BadRequest,
            "Request must include the \"request_id\" query parameter.",
        ));
    };
    if let Some(path) = req.opt_str("path")?.filter(|p| !p.is_empty()) {
        return Err(MlflowError::not_found(format!(
            "Trace '{id}' has no attachment '{path}'."
        )));
    }
    let spans = ctx.read(|tx| {
        live_trace(tx, &ctx.workspace, &id)?;
        spans_of(tx, &ctx.workspace, &id)
    })?;
    Ok(json!({ "spans": spans.iter().map(mlflow_span_dict).collect::<Vec<_>>() }))
}

// ---------------------------------------------------------------------------------------
// Search

fn trace_field<'a>(t: &'a TraceRow, kind: Kind, key: &str) -> Option<Field<'a>> {
    match kind {
        Kind::Tag => t.tags.get(key).map(|v| Field::Str(v)),
        Kind::Metadata => t.metadata.get(key).and_then(Json::as_str).map(Field::Str),
        Kind::Attribute => match key {
            "timestamp_ms" | "timestamp" => Some(Field::Num(t.request_time as f64)),
            "execution_time_ms" | "execution_time" => {
                t.execution_duration.map(|d| Field::Num(d as f64))
            }
            "end_time_ms" | "end_time" => t
                .execution_duration
                .map(|d| Field::Num((t.request_time + d) as f64)),
            "run_id" => t
                .metadata
                .get("mlflow.sourceRun")
                .and_then(Json::as_str)
                .map(Field::Str),
            "experiment_id" => Some(Field::Str(&t.experiment_id)),
            "status" | "state" => Some(Field::Str(&t.state)),
            "name" => t.tags.get("mlflow.traceName").map(|v| Field::Str(v)),
            "trace_id" | "request_id" => Some(Field::Str(&t.trace_id)),
            "client_request_id" => t.client_request_id.as_deref().map(Field::Str),
            _ => None,
        },
        _ => None,
    }
}

/// What the links of traces to runs and prompt versions say for a search's clauses: for each
/// run ID or prompt version a clause names, the traces linked to it.
#[derive(Default)]
struct Links(HashMap<(&'static str, String), std::collections::HashSet<String>>);

/// Whether a clause is the `run_id = X` that also finds traces linked to run X, or a
/// prompt filter (`prompt = "NAME/VERSION"`), which only links answer.
fn link_of(c: &search::Clause) -> Result<Option<(&'static str, String)>> {
    let value = || match &c.value {
        search::Literal::Str(s) => Some(s.clone()),
        _ => None,
    };
    let eq = c.comparator == search::Comparator::Eq;
    match (c.kind, c.key.as_str()) {
        (Kind::Attribute, "run_id") | (Kind::Metadata, "mlflow.sourceRun") if eq => {
            Ok(value().map(|v| (assessments::TRACE_RUN, v)))
        }
        (Kind::Attribute, "prompt") | (Kind::Tag, "mlflow.linkedPrompts") => {
            if !eq {
                return Err(MlflowError::invalid(
                    "Invalid comparator for prompts filter. Only '=' is supported with format: prompt = \"name/version\"",
                ));
            }
            match value() {
                Some(v) if v.matches('/').count() == 1 => Ok(Some((assessments::TRACE_PROMPT, v))),
                v => Err(MlflowError::invalid(format!(
                    "Invalid prompts filter value '{}'. Expected format: prompt = \"name/version\"",
                    v.unwrap_or_default()
                ))),
            }
        }
        _ => Ok(None),
    }
}

/// Whether trace `t` satisfies clause `c`.
fn holds(t: &TraceRow, c: &search::Clause, links: &Links) -> bool {
    if let Ok(Some(key)) = link_of(c) {
        let linked = links.0.get(&key).is_some_and(|s| s.contains(&t.trace_id));
        return linked
            || (key.0 == assessments::TRACE_RUN
                && search::matches(c, trace_field(t, Kind::Attribute, "run_id")));
    }
    match c.kind {
        Kind::Feedback | Kind::Expectation => {
            let kind = if c.kind == Kind::Feedback {
                "feedback"
            } else {
                "expectation"
            };
            let values = assessments::values(&t.assessments, kind, &c.key);
            match c.comparator {
                search::Comparator::IsNull => values.is_empty(),
                search::Comparator::IsNotNull => !values.is_empty(),
                _ => values.iter().any(|v| search::matches(c, Some(v.field()))),
            }
        }
        Kind::Issue => match &c.value {
            search::Literal::Str(id) => assessments::has_issue(&t.assessments, id),
            _ => false,
        },
        // Span clauses hold together, on one span: `span_filter` answers them for a filter.
        Kind::Span => true,
        _ => search::matches(c, trace_field(t, c.kind, &c.key)),
    }
}

/// The live traces of `experiments` with their tags (and their assessments when asked), and
/// the links to runs and prompt versions that `clauses` name: what filtering in memory reads.
fn load_rows(
    tx: &mut dyn Tx,
    ws: &str,
    experiments: &[String],
    clauses: &[&search::Clause],
    with_assessments: bool,
) -> crate::store::Result<(Vec<TraceRow>, Links)> {
    let mut rows = Vec::new();
    for e in experiments {
        let found = tx.query(
            &format!("SELECT {TRACE_COLUMNS} FROM traces WHERE workspace = ? AND experiment_id = ? AND deleted_time IS NULL"),
            &[ws.into(), e.as_str().into()],
        )?;
        let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for t in tx.query(
            "SELECT g.trace_id, g.key, g.value FROM trace_tags g JOIN traces t ON t.workspace = g.workspace AND t.trace_id = g.trace_id WHERE g.workspace = ? AND t.experiment_id = ?",
            &[ws.into(), e.as_str().into()],
        )? {
            tags.entry(t.text(0)).or_default().insert(t.text(1), t.text(2));
        }
        for r in &found {
            let mut t = TraceRow::of(r);
            t.tags = tags.remove(&t.trace_id).unwrap_or_default();
            rows.push(t);
        }
    }
    if with_assessments {
        let ids: Vec<&str> = rows.iter().map(|t| t.trace_id.as_str()).collect();
        let mut found = assessments::of_traces(tx, ws, &ids)?;
        for t in rows.iter_mut() {
            t.assessments = found.remove(&t.trace_id).unwrap_or_default();
        }
    }
    let mut links = Links::default();
    for c in clauses {
        if let Some(key) = link_of(c)? {
            let traces = assessments::traces_linked_to(tx, ws, key.0, &key.1)?;
            links.0.insert(key, traces.into_iter().collect());
        }
    }
    Ok((rows, links))
}

fn needs_assessments<'a>(clauses: impl IntoIterator<Item = &'a search::Clause>) -> bool {
    clauses
        .into_iter()
        .any(|c| matches!(c.kind, Kind::Feedback | Kind::Expectation | Kind::Issue))
}

/// `POST mlflow/traces/calculate-filter-correlation` (CalculateTraceFilterCorrelation): how
/// strongly two trace filters go together over an experiment's traces (within those a base
/// filter keeps), as NPMI, unsmoothed and with MLflow's Jeffreys-prior smoothing.
pub fn calculate_trace_filter_correlation(ctx: &Ctx, req: &Req) -> Result<Json> {
    let asked = req.str_list("experiment_ids")?;
    if asked.is_empty() {
        return Err(missing("experiment_ids"));
    }
    let first = search::parse_filter(&req.str("filter_string1")?, &search::TRACES)?;
    let second = search::parse_filter(&req.str("filter_string2")?, &search::TRACES)?;
    let base = search::parse_filter(
        &req.opt_str("base_filter")?.unwrap_or_default(),
        &search::TRACES,
    )?;
    let all: Vec<&search::Clause> = base.iter().chain(&first).chain(&second).collect();
    for c in &all {
        link_of(c)?;
    }
    let (rows, links) = ctx.read(|tx| {
        let mut experiments = Vec::new();
        for e in &asked {
            if queries::experiment(tx, &ctx.workspace, e)?.is_some() {
                experiments.push(e.clone());
            }
        }
        load_rows(
            tx,
            &ctx.workspace,
            &experiments,
            &all,
            needs_assessments(all.iter().copied()),
        )
    })?;
    // Each filter's span clauses: the traces with a span satisfying them all.
    let ids: Vec<&str> = rows.iter().map(|t| t.trace_id.as_str()).collect();
    let with_spans =
        |clauses: &[search::Clause]| -> Result<Option<std::collections::HashSet<String>>> {
            match SpanFilter::new(clauses)? {
                Some(f) => Ok(Some(ctx.read(|tx| {
                    span_filter::traces_matching(tx, &ctx.workspace, &ids, &f)
                })?)),
                None => Ok(None),
            }
        };
    let (base_spans, first_spans, second_spans) = (
        with_spans(&base)?,
        with_spans(&first)?,
        with_spans(&second)?,
    );
    let satisfies = |t: &TraceRow,
                     clauses: &[search::Clause],
                     spans: &Option<std::collections::HashSet<String>>| {
        clauses.iter().all(|c| holds(t, c, &links))
            && spans.as_ref().is_none_or(|s| s.contains(&t.trace_id))
    };
    let (mut total, mut n1, mut n2, mut joint) = (0i64, 0i64, 0i64, 0i64);
    for t in rows.iter().filter(|t| satisfies(t, &base, &base_spans)) {
        let a = satisfies(t, &first, &first_spans);
        let b = satisfies(t, &second, &second_spans);
        total += 1;
        n1 += a as i64;
        n2 += b as i64;
        joint += (a && b) as i64;
    }
    let (npmi, smoothed) = tandem_core::correlation::npmi(joint, n1, n2, total);
    let mut out = json!({
        "filter1_count": n1,
        "filter2_count": n2,
        "joint_count": joint,
        "total_count": total,
    });
    if let Some(v) = npmi {
        out["npmi"] = v.into();
    }
    if let Some(v) = smoothed {
        out["npmi_smoothed"] = v.into();
    }
    Ok(out)
}

/// `POST mlflow/traces/search` (SearchTracesV3): MLflow's filter language over tags,
/// request metadata, assessments, links and the attributes of `search::TRACES`, newest
/// first by default.
pub fn search_traces_v3(ctx: &Ctx, req: &Req) -> Result<Json> {
    Ok(match search_page(ctx, req)? {
        None => json!({}),
        Some(p) => serde_json::to_value(p.out()).expect("trace pages serialize"),
    })
}

/// `search_traces_v3` rendered straight to JSON text (what the HTTP route serves).
pub fn search_traces_v3_text(ctx: &Ctx, req: &Req) -> Result<String> {
    let Some(p) = search_page(ctx, req)? else {
        return Ok("{}".into());
    };
    // Sized for the page up front (a trace is about 600 bytes), not grown by doubling.
    let mut out = Vec::with_capacity(64 + p.rows.len() * 768);
    out.push(b'{');
    if !p.rows.is_empty() {
        out.extend_from_slice(br#""traces":["#);
        for (i, t) in p.rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_info(&mut out, t, p.location(t));
        }
        out.push(b']');
    }
    if let Some(next) = &p.next {
        if !p.rows.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(br#""next_page_token":"#);
        serde_json::to_writer(&mut out, next).expect("strings serialize");
    }
    out.push(b'}');
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

/// One page of a trace search: the traces, their experiments' artifact locations, the token
/// of the next page.
struct Page {
    rows: Vec<TraceRow>,
    locations: HashMap<String, String>,
    next: Option<String>,
}

impl Page {
    /// The artifact location of a trace's experiment.
    fn location(&self, t: &TraceRow) -> &str {
        self.locations
            .get(&t.experiment_id)
            .map(String::as_str)
            .unwrap_or("")
    }

    fn out(&self) -> PageOut<'_> {
        PageOut {
            traces: self
                .rows
                .iter()
                .map(|t| info_out(t, self.location(t)))
                .collect(),
            next_page_token: self.next.as_deref(),
        }
    }
}

#[derive(serde::Serialize)]
struct PageOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    traces: Vec<InfoOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<&'a str>,
}

/// None: no experiment to search (MLflow answers `{}`).
fn search_page(ctx: &Ctx, req: &Req) -> Result<Option<Page>> {
    if !req.has("locations") {
        return Err(missing("locations"));
    }
    let mut experiments = Vec::new();
    for l in req.list("locations")? {
        if let Some(e) = l.obj("mlflow_experiment")? {
            experiments.push(e.str("experiment_id")?);
        }
    }
    let max = req.max_results(SEARCH_DEFAULT, SEARCH_MAX)?;
    let filter = req.opt_str("filter")?.unwrap_or_default();
    let clauses = search::parse_filter(&filter, &search::TRACES)?;
    let order = search::parse_order_by(&req.str_list("order_by")?, &search::TRACES)?;
    let offset = req.page_offset()?;
    for c in &clauses {
        link_of(c)?;
    }
    if experiments.is_empty() {
        return Ok(None);
    }
    let needs_assessments = needs_assessments(&clauses);
    let spans = SpanFilter::new(&clauses)?;
    // The common search (no filter, newest first) is one indexed query for the page alone.
    let newest_first = order.is_empty()
        || (order.len() == 1
            && order[0].kind == Kind::Attribute
            && matches!(order[0].key.as_str(), "timestamp_ms" | "timestamp")
            && !order[0].ascending);
    if newest_first {
        // A tag equality, if any, drives the read (index `trace_tags_newest`); the other
        // clauses are conditions on the traces it finds.
        let driver = clauses.iter().position(|c| tag_equality(c).is_some());
        if let Some(conds) = clauses
            .iter()
            .enumerate()
            .filter(|(i, c)| Some(*i) != driver && c.kind != Kind::Span)
            .map(|(_, c)| sql_condition(c))
            .collect::<Option<Vec<_>>>()
        {
            let driver = driver.and_then(|i| tag_equality(&clauses[i]));
            return newest_page(
                ctx,
                &experiments,
                driver,
                &conds,
                spans.as_ref(),
                offset,
                max,
            )
            .map(Some);
        }
    }
    let clause_refs: Vec<&search::Clause> = clauses.iter().collect();
    let (mut rows, locs, links) = ctx.read(|tx| {
        let (rows, links) = load_rows(
            tx,
            &ctx.workspace,
            &experiments,
            &clause_refs,
            needs_assessments,
        )?;
        let locs = artifact_locations(tx, &ctx.workspace, &rows)?;
        Ok((rows, locs, links))
    })?;
    rows.retain(|t| clauses.iter().all(|c| holds(t, c, &links)));
    if let Some(spans) = &spans {
        let ids: Vec<&str> = rows.iter().map(|t| t.trace_id.as_str()).collect();
        let keep = ctx.read(|tx| span_filter::traces_matching(tx, &ctx.workspace, &ids, spans))?;
        rows.retain(|t| keep.contains(&t.trace_id));
    }
    rows.sort_by(|a, b| {
        for k in &order {
            let o = search::compare_fields(
                trace_field(a, k.kind, &k.key),
                trace_field(b, k.kind, &k.key),
                k.ascending,
            );
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        // MLflow's default: newest first, then by ID.
        b.request_time
            .cmp(&a.request_time)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    let (mut page, next) = super::page(rows, offset, max);
    drop(links);
    if !needs_assessments && !page.is_empty() {
        let ids: Vec<&str> = page.iter().map(|t| t.trace_id.as_str()).collect();
        let mut found = ctx.read(|tx| assessments::of_traces(tx, &ctx.workspace, &ids))?;
        for t in page.iter_mut() {
            t.assessments = found.remove(&t.trace_id).unwrap_or_default();
        }
    }
    Ok(Some(Page {
        rows: page,
        locations: locs,
        next,
    }))
}

type Condition = (String, Vec<crate::store::Value>);

/// The tag and value of a clause that keeps only traces with that tag value
/// (`tags.KEY = 'v'`, `name = 'v'`).
fn tag_equality(c: &search::Clause) -> Option<(&str, &str)> {
    let search::Literal::Str(v) = &c.value else {
        return None;
    };
    if c.comparator != search::Comparator::Eq {
        return None;
    }
    match (c.kind, c.key.as_str()) {
        (Kind::Tag, key) => Some((key, v)),
        (Kind::Attribute, "name") => Some(("mlflow.traceName", v)),
        _ => None,
    }
}

/// A filter clause as SQL over `traces t`, when it can be one with the same meaning as
/// `search::matches` (exact comparisons; `LIKE` differs between SQLite and PostgreSQL and
/// metadata is JSON: those are filtered in memory).
fn sql_condition(c: &search::Clause) -> Option<Condition> {
    use search::{Comparator as C, Literal as L};
    let op = match c.comparator {
        C::Eq => "=",
        C::Ne => "<>",
        C::Lt => "<",
        C::Le => "<=",
        C::Gt => ">",
        C::Ge => ">=",
        C::In => "IN",
        _ => return None,
    };
    let values = |v: &L| -> Option<Vec<crate::store::Value>> {
        match v {
            L::Str(s) => Some(vec![s.as_str().into()]),
            L::List(l) => Some(l.iter().map(|s| s.as_str().into()).collect()),
            _ => None,
        }
    };
    let rhs = |n: usize| {
        if op == "IN" {
            format!("IN ({})", vec!["?"; n].join(", "))
        } else {
            format!("{op} ?")
        }
    };
    let tag = |key: &str| -> Option<Condition> {
        if !matches!(op, "=" | "<>" | "IN") {
            return None;
        }
        let v = values(&c.value)?;
        let mut params: Vec<crate::store::Value> = vec![key.into()];
        let cond = format!("EXISTS (SELECT 1 FROM trace_tags g WHERE g.workspace = t.workspace AND g.trace_id = t.trace_id AND g.key = ? AND g.value {})", rhs(v.len()));
        params.extend(v);
        Some((cond, params))
    };
    match (c.kind, c.key.as_str()) {
        (Kind::Tag, key) => tag(key),
        (Kind::Attribute, "name") => tag("mlflow.traceName"),
        (
            Kind::Attribute,
            col @ ("status" | "state" | "trace_id" | "request_id" | "client_request_id"),
        ) => {
            if !matches!(op, "=" | "<>" | "IN") {
                return None;
            }
            let col = match col {
                "status" | "state" => "state",
                "client_request_id" => "client_request_id",
                _ => "trace_id",
            };
            let v = values(&c.value)?;
            Some((format!("t.{col} {}", rhs(v.len())), v))
        }
        (
            Kind::Attribute,
            key @ ("timestamp_ms" | "timestamp" | "execution_time_ms" | "execution_time"),
        ) => {
            let n = match &c.value {
                L::Num(n) => *n,
                L::Str(s) => s.parse::<f64>().ok()?,
                _ => return None,
            };
            if op == "IN" || !n.is_finite() || n.fract() != 0.0 {
                return None;
            }
            let col = if key.starts_with("timestamp") {
                "request_time"
            } else {
                "execution_duration"
            };
            Some((format!("t.{col} {op} ?"), vec![(n as i64).into()]))
        }
        _ => None,
    }
}

/// A page of the experiments' live traces matching `conds` (and having the `driver` tag
/// value), newest first then by ID, read in SQL (index `traces_newest`, or `trace_tags_newest`
/// with a driver) with the tags of that page only.
fn newest_page(
    ctx: &Ctx,
    experiments: &[String],
    driver: Option<(&str, &str)>,
    conds: &[Condition],
    spans: Option<&SpanFilter>,
    offset: usize,
    max: usize,
) -> Result<Page> {
    let marks = vec!["?"; experiments.len()].join(", ");
    let (rows, locs) = ctx.read(|tx| {
        let mut params: Vec<crate::store::Value> = vec![ctx.workspace.as_str().into()];
        params.extend(experiments.iter().map(|e| e.as_str().into()));
        // Each trace's tags come with it, as the JSON object its row keeps (gathered from
        // `trace_tags` only if a row has none).
        let tags = format!(
            "COALESCE(t.tags_json, {})",
            crate::store::schema::tags_json_sql(
                ctx.store.backend_kind() != "postgres",
                "t.workspace",
                "t.trace_id"
            )
        );
        let columns = TRACE_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Whether the trace has assessments: only those that do are read for the page.
        let tags = format!(
            "{tags}, CASE WHEN EXISTS (SELECT 1 FROM genai_objects g WHERE g.workspace = t.workspace AND g.kind = '{}' AND g.parent = t.trace_id) THEN 1 ELSE 0 END",
            assessments::ASSESSMENT
        );
        let mut sql = match driver {
            None => format!("SELECT {columns}, {tags} FROM traces t WHERE t.workspace = ? AND t.experiment_id IN ({marks}) AND t.deleted_time IS NULL"),
            Some((key, value)) => {
                params.push(key.into());
                params.push(value.into());
                format!("SELECT {columns}, {tags} FROM trace_tags f JOIN traces t ON t.workspace = f.workspace AND t.trace_id = f.trace_id \
                         WHERE f.workspace = ? AND f.experiment_id IN ({marks}) AND f.key = ? AND f.value = ? AND t.deleted_time IS NULL")
            }
        };
        for (cond, p) in conds {
            sql.push_str(" AND ");
            sql.push_str(cond);
            params.extend(p.iter().cloned());
        }
        // (With a driver, ordered by the tag's copy of the time: the index's order.)
        sql.push_str(match driver {
            None => " ORDER BY t.request_time DESC, t.trace_id LIMIT ? OFFSET ?",
            Some(_) => " ORDER BY f.request_time DESC, f.trace_id LIMIT ? OFFSET ?",
        });
        // `limit` rows of the matching traces in page order, from row `skip`, each with
        // whether it has assessments.
        let fetch = |tx: &mut dyn Tx, limit: usize, skip: usize| -> crate::store::Result<Vec<(TraceRow, bool)>> {
            let mut params = params.clone();
            params.push((limit as i64).into());
            params.push((skip as i64).into());
            Ok(tx
                .query(&sql, &params)?
                .into_iter()
                .map(|mut r| {
                    // The metadata and tags stay text: the page is written with them as
                    // they are.
                    let metadata = r.take_text(8).unwrap_or_else(|| "{}".into());
                    let mut t = TraceRow::take(&mut r);
                    t.text = Some(Box::new(RowText {
                        tags: r.take_text(11).unwrap_or_else(|| "{}".into()),
                        metadata,
                    }));
                    (t, r.int(12) != 0)
                })
                .collect())
        };
        let found = match spans {
            None => fetch(tx, max + 1, offset)?,
            // Span clauses are answered over the spans of the traces the SQL finds, read in
            // page order a growing chunk at a time until the page is full: a search for the
            // newest matches reads as far back as it must, not the whole experiment.
            Some(filter) => {
                let (mut kept, mut skipped, mut at, mut chunk) = (Vec::new(), 0, 0, max + 1);
                loop {
                    let batch = fetch(tx, chunk, at)?;
                    let n = batch.len();
                    at += n;
                    let ids: Vec<&str> = batch.iter().map(|(t, _)| t.trace_id.as_str()).collect();
                    let matched = span_filter::traces_matching(tx, &ctx.workspace, &ids, filter)?;
                    for row in batch {
                        if !matched.contains(&row.0.trace_id) {
                            continue;
                        }
                        if skipped < offset {
                            skipped += 1;
                        } else if kept.len() <= max {
                            kept.push(row);
                        }
                    }
                    if kept.len() > max || n < chunk {
                        break kept;
                    }
                    chunk = (chunk * 4).min(4000);
                }
            }
        };
        let assessed: Vec<String> = found.iter().filter(|(_, a)| *a).map(|(t, _)| t.trace_id.clone()).collect();
        let mut rows: Vec<TraceRow> = found.into_iter().map(|(t, _)| t).collect();
        if !assessed.is_empty() {
            let ids: Vec<&str> = assessed.iter().map(String::as_str).collect();
            let mut found = assessments::of_traces(tx, &ctx.workspace, &ids)?;
            for t in rows.iter_mut() {
                t.assessments = found.remove(&t.trace_id).unwrap_or_default();
            }
        }
        let locs = artifact_locations(tx, &ctx.workspace, &rows)?;
        Ok((rows, locs))
    })?;
    let mut rows = rows;
    let more = rows.len() > max;
    rows.truncate(max);
    Ok(Page {
        rows,
        locations: locs,
        next: more.then(|| tandem_core::search::encode_page_token(offset + max)),
    })
}

// ---------------------------------------------------------------------------------------
// Tags and deletes

fn trace_param(req: &Req) -> Result<String> {
    match req.opt_str("trace_id")?.filter(|s| !s.is_empty()) {
        Some(t) => Ok(t),
        None => req.str("request_id"),
    }
}

/// `PATCH mlflow/traces/{trace_id}/tags` (v3) and `{request_id}` (v2).
pub fn set_trace_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = trace_param(req)?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?.unwrap_or_default();
    if IMMUTABLE_TAGS.contains(&key.as_str()) {
        return Err(MlflowError::invalid(format!(
            "Tag '{key}' is immutable and cannot be set on a trace."
        )));
    }
    if key.chars().count() > 250 || value.chars().count() > 8000 {
        return Err(MlflowError::invalid(
            "A trace tag's key is at most 250 characters and its value at most 8000.",
        ));
    }
    let time = ctx.now();
    ctx.write(|tx| {
        let t = live_trace(tx, &ctx.workspace, &id)?;
        if t.tags.get(&key) == Some(&value) {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change(
            (),
            Op::SetTraceTag {
                trace_id: id.clone(),
                key: key.clone(),
                value: value.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `DELETE mlflow/traces/{trace_id}/tags` (v3) and `{request_id}` (v2).
pub fn delete_trace_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = trace_param(req)?;
    let key = req.str("key")?;
    if IMMUTABLE_TAGS.contains(&key.as_str()) && key != "mlflow.trace.archivalFailure" {
        return Err(MlflowError::invalid(format!(
            "Tag '{key}' is immutable and cannot be deleted on a trace."
        )));
    }
    let time = ctx.now();
    ctx.write(|tx| {
        let t = live_trace(tx, &ctx.workspace, &id)?;
        if !t.tags.contains_key(&key) {
            return Err(MlflowError::not_found(format!(
                "No trace tag with key '{key}' for trace with ID '{id}'"
            ))
            .into());
        }
        Ok(Decision::change(
            (),
            Op::DeleteTraceTag {
                trace_id: id.clone(),
                key: key.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `POST mlflow/traces/delete-traces` (v2 and v3): by IDs, or the oldest up to a time (at
/// most `max_traces`). Deleted traces stay restorable by a point-in-time restore.
pub fn delete_traces(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let max_ts = req.opt_i64("max_timestamp_millis")?;
    let max_traces = req.opt_i64("max_traces")?;
    let ids = req.str_list("request_ids")?;
    if max_ts.is_none() && ids.is_empty() {
        return Err(MlflowError::invalid(
            "Either `max_timestamp_millis` or `trace_ids` must be specified.",
        ));
    }
    if max_ts.is_some() && !ids.is_empty() {
        return Err(MlflowError::invalid(
            "Only one of `max_timestamp_millis` and `trace_ids` can be specified.",
        ));
    }
    if !ids.is_empty() && max_traces.is_some() {
        return Err(MlflowError::invalid(
            "`max_traces` can't be specified if `trace_ids` is specified.",
        ));
    }
    if let Some(m) = max_traces.filter(|m| *m <= 0) {
        return Err(MlflowError::invalid(format!(
            "`max_traces` must be a positive integer, received {m}."
        )));
    }
    let time = ctx.now();
    let n = ctx.write(|tx| {
        let found: Vec<String> = match max_ts {
            Some(ts) => {
                let mut rows = tx.query(
                    "SELECT trace_id FROM traces WHERE workspace = ? AND experiment_id = ? AND deleted_time IS NULL AND request_time <= ? ORDER BY request_time, trace_id",
                    &[ctx.workspace.as_str().into(), experiment_id.as_str().into(), ts.into()],
                )?;
                if let Some(m) = max_traces {
                    rows.truncate(m as usize);
                }
                rows.iter().map(|r| r.text(0)).collect()
            }
            None => {
                let mut out = Vec::new();
                for id in &ids {
                    if let Some(t) = trace_row(tx, &ctx.workspace, id)? {
                        if !t.deleted && t.experiment_id == experiment_id && !out.contains(id) {
                            out.push(id.clone());
                        }
                    }
                }
                out
            }
        };
        if found.is_empty() {
            return Ok(Decision::no_change(0));
        }
        let n = found.len();
        Ok(Decision::change(
            n,
            Op::DeleteTraces {
                trace_ids: found,
                time,
            },
        ))
    })?;
    Ok(json!({ "traces_deleted": n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_json_times_as_mlflow_writes_them() {
        assert_eq!(
            timestamp_json(1_796_441_085_724),
            "2026-12-05T03:24:45.724Z"
        );
        assert_eq!(timestamp_json(1_796_441_085_000), "2026-12-05T03:24:45Z");
        assert_eq!(Duration(504).to_string(), "0.504s");
        assert_eq!(Duration(2000).to_string(), "2s");
        assert_eq!(
            parse_timestamp(&json!("2026-12-05T03:24:45.724Z"), "t").unwrap(),
            Some(1_796_441_085_724)
        );
        assert_eq!(parse_duration(&json!("0.504s"), "d").unwrap(), Some(504));
        assert!(parse_duration(&json!("soon"), "d").is_err());
    }
}
