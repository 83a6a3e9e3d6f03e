//! OTLP/HTTP trace export requests (`POST /v1/traces`), protobuf or JSON, decoded into the
//! spans tandem stores: each span as the protobuf JSON mapping of OpenTelemetry's `Span`
//! (snake_case names, base64 IDs, typed attribute values), which is what MLflow's server
//! answers in `GetTrace` and what the client reads back (`Span.from_otel_proto`).
//!
//! The messages are OpenTelemetry's `opentelemetry/proto/{collector/trace,trace,common,
//! resource}/v1` (the fields tandem reads), declared with prost's derive.
//!
//! Architecture invariant: no IO and no store here; a malformed request is refused whole.

use base64::Engine;
use serde_json::{json, Map, Value as Json};

/// The largest span tandem stores (its JSON), and the longest attribute key.
pub const MAX_SPAN_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ATTRIBUTE_KEY: usize = 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// A span as tandem keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanIn {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The span in the protobuf JSON mapping (see the module's comment).
    pub content: Json,
}

/// Why a request is refused (MLflow answers these 400 with `{"detail": ...}`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OtlpError {
    #[error("Invalid OpenTelemetry format")]
    Malformed,
    #[error("Invalid OpenTelemetry format - no spans found")]
    NoSpans,
    #[error("Invalid OpenTelemetry format: {0}")]
    Invalid(String),
    #[error("span '{0}' is larger than {MAX_SPAN_BYTES} bytes")]
    TooLarge(String),
    #[error("Failed to decompress {0} payload")]
    Compressed(&'static str),
    #[error("Unsupported Content-Encoding: {0}")]
    Encoding(String),
    #[error("The request body is larger than {0} bytes once decompressed")]
    Inflated(usize),
}

/// A request body sent with a `Content-Encoding`, inflated: gzip, or deflate as zlib or raw
/// (some clients send raw), as MLflow's server takes them. At most `limit` bytes come out: a
/// small body that inflates without bound is refused, not followed.
pub fn decompress(body: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, OtlpError> {
    use std::io::Read;
    fn inflate(r: impl Read, limit: usize, name: &'static str) -> Result<Vec<u8>, OtlpError> {
        let mut out = Vec::new();
        r.take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| OtlpError::Compressed(name))?;
        if out.len() > limit {
            return Err(OtlpError::Inflated(limit));
        }
        Ok(out)
    }
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" => Ok(body.to_vec()),
        "gzip" => inflate(flate2::read::GzDecoder::new(body), limit, "gzip"),
        "deflate" => match inflate(flate2::read::ZlibDecoder::new(body), limit, "deflate") {
            Err(OtlpError::Compressed(_)) => {
                inflate(flate2::read::DeflateDecoder::new(body), limit, "deflate")
            }
            other => other,
        },
        other => Err(OtlpError::Encoding(other.to_owned())),
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn status_name(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

fn any_json(v: &AnyValue) -> Json {
    use any_value::Value as V;
    match &v.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({ "string_value": s }),
        Some(V::BoolValue(b)) => json!({ "bool_value": b }),
        Some(V::IntValue(i)) => json!({ "int_value": i }),
        Some(V::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => json!({ "double_value": n }),
            None => json!({ "double_value": d.to_string() }),
        },
        Some(V::ArrayValue(a)) => {
            json!({ "array_value": { "values": a.values.iter().map(any_json).collect::<Vec<_>>() } })
        }
        Some(V::KvlistValue(l)) => {
            json!({ "kvlist_value": { "values": l.values.iter().map(kv_json).collect::<Result<Vec<_>, _>>().unwrap_or_default() } })
        }
        Some(V::BytesValue(b)) => json!({ "bytes_value": b64(b) }),
    }
}

fn kv_json(kv: &KeyValue) -> Result<Json, OtlpError> {
    if kv.key.len() > MAX_ATTRIBUTE_KEY {
        return Err(OtlpError::Invalid(format!(
            "an attribute key is longer than {MAX_ATTRIBUTE_KEY} bytes"
        )));
    }
    Ok(match &kv.value {
        Some(v) => json!({ "key": kv.key, "value": any_json(v) }),
        None => json!({ "key": kv.key }),
    })
}

fn id<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], OtlpError> {
    b.try_into()
        .map_err(|_| OtlpError::Invalid(format!("{what} must be {N} bytes, got {}", b.len())))
}

fn nanos(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// A decoded span, checked and turned into what tandem stores.
fn span_in(s: &Span) -> Result<SpanIn, OtlpError> {
    let trace_id: [u8; 16] = id(&s.trace_id, "trace_id")?;
    let span_id: [u8; 8] = id(&s.span_id, "span_id")?;
    let parent_span_id = if s.parent_span_id.is_empty() {
        None
    } else {
        Some(id::<8>(&s.parent_span_id, "parent_span_id")?)
    };
    let attributes = s
        .attributes
        .iter()
        .map(kv_json)
        .collect::<Result<Vec<_>, _>>()?;
    let status = s.status.clone().unwrap_or_default();
    let mut content = Map::new();
    content.insert("trace_id".into(), b64(&trace_id).into());
    content.insert("span_id".into(), b64(&span_id).into());
    if let Some(p) = parent_span_id {
        content.insert("parent_span_id".into(), b64(&p).into());
    }
    content.insert("name".into(), s.name.clone().into());
    content.insert(
        "start_time_unix_nano".into(),
        nanos(s.start_time_unix_nano).into(),
    );
    if s.end_time_unix_nano > 0 {
        content.insert(
            "end_time_unix_nano".into(),
            nanos(s.end_time_unix_nano).into(),
        );
    }
    if !attributes.is_empty() {
        content.insert("attributes".into(), attributes.into());
    }
    if !s.events.is_empty() {
        let events = s
            .events
            .iter()
            .map(|e| {
                let attrs = e
                    .attributes
                    .iter()
                    .map(kv_json)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut j = json!({ "time_unix_nano": nanos(e.time_unix_nano), "name": e.name });
                if !attrs.is_empty() {
                    j["attributes"] = attrs.into();
                }
                Ok(j)
            })
            .collect::<Result<Vec<_>, OtlpError>>()?;
        content.insert("events".into(), events.into());
    }
    let mut st = json!({ "code": status_name(status.code) });
    if !status.message.is_empty() {
        st["message"] = status.message.clone().into();
    }
    content.insert("status".into(), st);
    let content = Json::Object(content);
    if content.to_string().len() > MAX_SPAN_BYTES {
        return Err(OtlpError::TooLarge(s.name.clone()));
    }
    Ok(SpanIn {
        trace_id,
        span_id,
        parent_span_id,
        name: s.name.clone(),
        start_ns: nanos(s.start_time_unix_nano),
        end_ns: (s.end_time_unix_nano > 0).then(|| nanos(s.end_time_unix_nano)),
        status_code: status.code,
        content,
    })
}

fn spans_of(req: &ExportTraceServiceRequest) -> Result<Vec<SpanIn>, OtlpError> {
    if req.resource_spans.is_empty() {
        return Err(OtlpError::NoSpans);
    }
    req.resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .map(span_in)
        .collect()
}

/// An `application/x-protobuf` export request.
pub fn decode_protobuf(body: &[u8]) -> Result<Vec<SpanIn>, OtlpError> {
    let req = <ExportTraceServiceRequest as prost::Message>::decode(body)
        .map_err(|_| OtlpError::Malformed)?;
    spans_of(&req)
}

/// An `application/json` export request (OTLP's JSON encoding: camelCase or snake_case
/// names, IDs in hex, 64-bit integers as strings or numbers).
pub fn decode_json(body: &[u8]) -> Result<Vec<SpanIn>, OtlpError> {
    let v: Json = serde_json::from_slice(body).map_err(|_| OtlpError::Malformed)?;
    let req = export_from_json(&v)?;
    spans_of(&req)
}

fn field<'a>(v: &'a Json, camel: &str, snake: &str) -> Option<&'a Json> {
    v.get(camel)
        .or_else(|| v.get(snake))
        .filter(|x| !x.is_null())
}

fn list<'a>(v: &'a Json, camel: &str, snake: &str) -> Result<&'a [Json], OtlpError> {
    match field(v, camel, snake) {
        None => Ok(&[]),
        Some(Json::Array(a)) => Ok(a),
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn hex_id(v: &Json, camel: &str, snake: &str) -> Result<Vec<u8>, OtlpError> {
    match field(v, camel, snake) {
        None => Ok(Vec::new()),
        Some(Json::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Json::String(s)) => {
            if s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(OtlpError::Invalid(format!("{camel} must be hex")));
            }
            Ok((0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("checked hex"))
                .collect())
        }
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn u64_of(v: &Json, camel: &str, snake: &str) -> Result<u64, OtlpError> {
    match field(v, camel, snake) {
        None => Ok(0),
        Some(Json::Number(n)) => n.as_u64().ok_or(OtlpError::Malformed),
        Some(Json::String(s)) => s.parse().map_err(|_| OtlpError::Malformed),
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn any_from_json(v: &Json) -> Result<AnyValue, OtlpError> {
    use any_value::Value as V;
    let value = if let Some(s) = field(v, "stringValue", "string_value") {
        Some(V::StringValue(
            s.as_str().ok_or(OtlpError::Malformed)?.to_owned(),
        ))
    } else if let Some(b) = field(v, "boolValue", "bool_value") {
        Some(V::BoolValue(b.as_bool().ok_or(OtlpError::Malformed)?))
    } else if let Some(i) = field(v, "intValue", "int_value") {
        Some(V::IntValue(match i {
            Json::Number(n) => n.as_i64().ok_or(OtlpError::Malformed)?,
            Json::String(s) => s.parse().map_err(|_| OtlpError::Malformed)?,
            _ => return Err(OtlpError::Malformed),
        }))
    } else if let Some(d) = field(v, "doubleValue", "double_value") {
        Some(V::DoubleValue(match d {
            Json::Number(n) => n.as_f64().ok_or(OtlpError::Malformed)?,
            Json::String(s) => s.parse().map_err(|_| OtlpError::Malformed)?,
            _ => return Err(OtlpError::Malformed),
        }))
    } else if let Some(a) = field(v, "arrayValue", "array_value") {
        Some(V::ArrayValue(ArrayValue {
            values: list(a, "values", "values")?
                .iter()
                .map(any_from_json)
                .collect::<Result<_, _>>()?,
        }))
    } else if let Some(l) = field(v, "kvlistValue", "kvlist_value") {
        Some(V::KvlistValue(KeyValueList {
            values: list(l, "values", "values")?
                .iter()
                .map(kv_from_json)
                .collect::<Result<_, _>>()?,
        }))
    } else if let Some(b) = field(v, "bytesValue", "bytes_value") {
        Some(V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(b.as_str().ok_or(OtlpError::Malformed)?)
                .map_err(|_| OtlpError::Malformed)?,
        ))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn kv_from_json(v: &Json) -> Result<KeyValue, OtlpError> {
    Ok(KeyValue {
        key: v
            .get("key")
            .and_then(Json::as_str)
            .ok_or(OtlpError::Malformed)?
            .to_owned(),
        value: match v.get("value") {
            None | Some(Json::Null) => None,
            Some(x) => Some(any_from_json(x)?),
        },
    })
}

fn status_from_json(v: &Json) -> Result<Status, OtlpError> {
    let code = match v.get("code") {
        None | Some(Json::Null) => 0,
        Some(Json::Number(n)) => n.as_i64().ok_or(OtlpError::Malformed)? as i32,
        Some(Json::String(s)) => match s.as_str() {
            "STATUS_CODE_UNSET" => 0,
            "STATUS_CODE_OK" => 1,
            "STATUS_CODE_ERROR" => 2,
            _ => return Err(OtlpError::Malformed),
        },
        Some(_) => return Err(OtlpError::Malformed),
    };
    Ok(Status {
        message: v
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        code,
    })
}

fn export_from_json(v: &Json) -> Result<ExportTraceServiceRequest, OtlpError> {
    if !v.is_object() {
        return Err(OtlpError::Malformed);
    }
    let mut out = ExportTraceServiceRequest::default();
    for rs in list(v, "resourceSpans", "resource_spans")? {
        let mut r = ResourceSpans::default();
        for ss in list(rs, "scopeSpans", "scope_spans")? {
            let mut scope = ScopeSpans::default();
            for s in list(ss, "spans", "spans")? {
                scope.spans.push(Span {
                    trace_id: hex_id(s, "traceId", "trace_id")?,
                    span_id: hex_id(s, "spanId", "span_id")?,
                    parent_span_id: hex_id(s, "parentSpanId", "parent_span_id")?,
                    name: field(s, "name", "name")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    start_time_unix_nano: u64_of(s, "startTimeUnixNano", "start_time_unix_nano")?,
                    end_time_unix_nano: u64_of(s, "endTimeUnixNano", "end_time_unix_nano")?,
                    attributes: list(s, "attributes", "attributes")?
                        .iter()
                        .map(kv_from_json)
                        .collect::<Result<_, _>>()?,
                    events: list(s, "events", "events")?
                        .iter()
                        .map(|e| {
                            Ok(Event {
                                time_unix_nano: u64_of(e, "timeUnixNano", "time_unix_nano")?,
                                name: e
                                    .get("name")
                                    .and_then(Json::as_str)
                                    .unwrap_or_default()
                                    .to_owned(),
                                attributes: list(e, "attributes", "attributes")?
                                    .iter()
                                    .map(kv_from_json)
                                    .collect::<Result<_, _>>()?,
                            })
                        })
                        .collect::<Result<_, OtlpError>>()?,
                    status: match field(s, "status", "status") {
                        None => None,
                        Some(st) => Some(status_from_json(st)?),
                    },
                });
            }
            r.scope_spans.push(scope);
        }
        out.resource_spans.push(r);
    }
    Ok(out)
}

/// The hex form of an OpenTelemetry ID (MLflow's trace IDs are `tr-` and the trace ID's hex).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An attribute's value as MLflow reads it back: strings that hold JSON stay strings.
pub fn attribute<'a>(content: &'a Json, key: &str) -> Option<&'a Json> {
    content["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"].as_str() == Some(key))
        .map(|a| &a["value"])
}

/// An OTLP `AnyValue` in the JSON mapping, as plain JSON (`{"int_value": 3}` -> `3`).
pub fn plain(v: &Json) -> Json {
    if let Some(s) = v.get("string_value") {
        return s.clone();
    }
    if let Some(b) = v.get("bool_value") {
        return b.clone();
    }
    if let Some(i) = v.get("int_value") {
        return i.clone();
    }
    if let Some(d) = v.get("double_value") {
        return d.clone();
    }
    if let Some(a) = v.get("array_value") {
        return Json::Array(
            a["values"]
                .as_array()
                .map(|x| x.iter().map(plain).collect())
                .unwrap_or_default(),
        );
    }
    if let Some(l) = v.get("kvlist_value") {
        return Json::Object(
            l["values"]
                .as_array()
                .map(|x| {
                    x.iter()
                        .map(|kv| {
                            (
                                kv["key"].as_str().unwrap_or_default().to_owned(),
                                plain(&kv["value"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    if let Some(b) = v.get("bytes_value") {
        return b.clone();
    }
    Json::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn compressed_bodies_inflate_within_their_bound() {
        use std::io::Write;
        let body = b"{\"resourceSpans\": []}".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(&gz, "gzip", 1024).unwrap(), body);
        assert_eq!(decompress(&gz, "GZIP", 1024).unwrap(), body);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body).unwrap();
        assert_eq!(
            decompress(&z.finish().unwrap(), "deflate", 1024).unwrap(),
            body
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&body).unwrap();
        assert_eq!(
            decompress(&raw.finish().unwrap(), "deflate", 1024).unwrap(),
            body
        );
        assert!(matches!(
            decompress(&gz, "gzip", 5),
            Err(OtlpError::Inflated(5))
        ));
        assert!(matches!(
            decompress(b"junk", "gzip", 1024),
            Err(OtlpError::Compressed("gzip"))
        ));
        assert!(matches!(
            decompress(&gz, "br", 1024),
            Err(OtlpError::Encoding(_))
        ));
    }

    fn sample() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        parent_span_id: vec![],
                        name: "root".into(),
                        start_time_unix_nano: 1_000_000_000,
                        end_time_unix_nano: 1_500_000_000,
                        attributes: vec![KeyValue {
                            key: "mlflow.spanInputs".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![KeyValue {
                                        key: "x".into(),
                                        value: Some(AnyValue {
                                            value: Some(any_value::Value::IntValue(3)),
                                        }),
                                    }],
                                })),
                            }),
                        }],
                        events: vec![],
                        status: Some(Status {
                            message: String::new(),
                            code: 1,
                        }),
                    }],
                }],
            }],
        }
    }

    #[test]
    fn protobuf_and_json_decode_to_the_same_span() {
        let from_pb = decode_protobuf(&sample().encode_to_vec()).unwrap();
        let json_body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "01010101010101010101010101010101", "spanId": "0202020202020202",
            "name": "root", "startTimeUnixNano": "1000000000", "endTimeUnixNano": 1500000000u64,
            "attributes": [{"key": "mlflow.spanInputs", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"intValue": "3"}}]}}}],
            "status": {"code": 1}
        }]}]}]});
        let from_json = decode_json(json_body.to_string().as_bytes()).unwrap();
        assert_eq!(from_pb, from_json);
        let s = &from_pb[0];
        assert_eq!(s.content["trace_id"], "AQEBAQEBAQEBAQEBAQEBAQ==");
        assert_eq!(s.content["status"]["code"], "STATUS_CODE_OK");
        assert_eq!(
            plain(attribute(&s.content, "mlflow.spanInputs").unwrap()),
            json!({"x": 3})
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(decode_protobuf(b"\xff\xff\xff"), Err(OtlpError::Malformed));
        assert_eq!(decode_json(b"{"), Err(OtlpError::Malformed));
        assert_eq!(decode_json(b"{}"), Err(OtlpError::NoSpans));
        let mut bad = sample();
        bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 3];
        assert!(matches!(
            decode_protobuf(&bad.encode_to_vec()),
            Err(OtlpError::Invalid(_))
        ));
        let mut big = sample();
        big.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .push(KeyValue {
                key: "big".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(MAX_SPAN_BYTES))),
                }),
            });
        assert!(matches!(
            decode_protobuf(&big.encode_to_vec()),
            Err(OtlpError::TooLarge(_))
        ));
    }
}
