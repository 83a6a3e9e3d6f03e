//! The span clauses of a trace filter (`span.name`, `span.type`, `span.status`,
//! `span.attributes.KEY`, `span.content`, `trace.text`), as MLflow's SQL store answers them: one
//! correlated EXISTS over the trace's spans, so a trace matches when a single span satisfies
//! every span clause of the filter.
//!
//! MLflow matches `span.content`, `trace.text` and the LIKE/RLIKE forms of `span.attributes.KEY`
//! against the span's row text, `json.dumps(span.to_dict())`; tandem keeps spans as OTLP JSON,
//! so that text is rebuilt here, key for key ([`mlflow_content_text`]), and the same patterns
//! find the same spans. `span.attributes.KEY = 'v'` (and `!=`, `IN`, `NOT IN`) compare the
//! attribute's value, where MLflow compares the whole row text with a LIKE pattern and never
//! finds anything (docs/compatibility.md).

use super::traces::python_json;
use crate::otlp;
use crate::store::Tx;
use regex::Regex;
use serde_json::Value as Json;
use std::collections::HashSet;
use tandem_core::search::{self, Clause, Comparator, Kind, Literal};
use tandem_core::{MlflowError, Result};

/// What of a span a clause reads.
#[derive(Debug, Clone, PartialEq)]
enum SpanField {
    Name,
    Type,
    Status,
    Content,
    Attribute(String),
}

/// One span clause, its patterns compiled once for every span it tests.
struct SpanTest {
    field: SpanField,
    comparator: Comparator,
    value: Literal,
    /// LIKE and ILIKE as regular expressions, and the RLIKE of an attribute (which MLflow
    /// rewrites to find the value in the row text).
    regex: Option<Regex>,
}

/// A filter's span clauses.
pub(crate) struct SpanFilter {
    tests: Vec<SpanTest>,
    /// Whether a test reads more than the span's name (its stored content is parsed then).
    parse: bool,
    /// Whether a test reads MLflow's row text of the span.
    text: bool,
}

impl SpanFilter {
    /// The span clauses among `clauses`; None when there are none.
    pub(crate) fn new<'a>(clauses: impl IntoIterator<Item = &'a Clause>) -> Result<Option<Self>> {
        let mut tests = Vec::new();
        for c in clauses.into_iter().filter(|c| c.kind == Kind::Span) {
            let field = match c.key.as_str() {
                "name" => SpanField::Name,
                "type" => SpanField::Type,
                "status" => SpanField::Status,
                "content" => SpanField::Content,
                key => SpanField::Attribute(
                    key.strip_prefix("attributes.")
                        .unwrap_or(key)
                        .trim_matches('`')
                        .to_owned(),
                ),
            };
            let regex = match (&field, c.comparator, &c.value) {
                (
                    SpanField::Attribute(name),
                    Comparator::Like | Comparator::ILike,
                    Literal::Str(v),
                ) => Some(search::like_regex(
                    &format!("%\"{name}\"{v}%"),
                    c.comparator == Comparator::ILike,
                )),
                (SpanField::Attribute(name), Comparator::RLike, Literal::Regex(p)) => {
                    // MLflow's rewrite: the value is a JSON string holding JSON, so its text
                    // starts with "\" and ends with \".
                    let v = p.0.as_str();
                    let (v, prefix) = match v.strip_prefix('^') {
                        Some(rest) => (rest, r#""\\""#),
                        None => (v, r#""\\".*"#),
                    };
                    let (v, suffix) = match v.strip_suffix('$') {
                        Some(rest) => (rest, r#"\\""#),
                        None => (v, ""),
                    };
                    let pattern = format!("\"{name}\": {prefix}{v}{suffix}");
                    Some(Regex::new(&pattern).map_err(|e| {
                        MlflowError::invalid(format!(
                            "'{}' is not a regular expression RLIKE can use on span attribute '{name}': {}",
                            p.0.as_str(),
                            e.to_string().lines().last().unwrap_or_default().trim()
                        ))
                    })?)
                }
                (_, Comparator::Like | Comparator::ILike, Literal::Str(v)) => {
                    Some(search::like_regex(v, c.comparator == Comparator::ILike))
                }
                _ => None,
            };
            tests.push(SpanTest {
                field,
                comparator: c.comparator,
                value: c.value.clone(),
                regex,
            });
        }
        if tests.is_empty() {
            return Ok(None);
        }
        let text = tests.iter().any(|t| {
            t.field == SpanField::Content
                || (matches!(t.field, SpanField::Attribute(_))
                    && matches!(
                        t.comparator,
                        Comparator::Like | Comparator::ILike | Comparator::RLike
                    ))
        });
        let parse = tests.iter().any(|t| t.field != SpanField::Name);
        Ok(Some(SpanFilter { tests, parse, text }))
    }

    /// Whether one span (its name, and its stored OTLP JSON when the filter reads more)
    /// satisfies every test.
    fn holds(&self, name: &str, content: Option<&Json>) -> bool {
        let text = match (self.text, content) {
            (true, Some(c)) => Some(mlflow_content_text(c)),
            _ => None,
        };
        self.tests.iter().all(|t| {
            let status;
            let attribute;
            let value: Option<&str> = match &t.field {
                SpanField::Name => Some(name),
                SpanField::Type => content
                    .and_then(|c| otlp_attribute(c, "mlflow.spanType"))
                    .and_then(Json::as_str),
                SpanField::Status => {
                    status = content.map(status_of);
                    status
                }
                SpanField::Content => text.as_deref(),
                SpanField::Attribute(key) => match t.comparator {
                    Comparator::Like | Comparator::ILike | Comparator::RLike => {
                        // The pattern finds the attribute in the row text.
                        return text
                            .as_deref()
                            .is_some_and(|x| t.regex.as_ref().is_some_and(|r| r.is_match(x)));
                    }
                    _ => {
                        attribute = content
                            .and_then(|c| otlp_attribute(c, key))
                            .map(|v| match v {
                                Json::String(s) => s.clone(),
                                other => python_json(other),
                            });
                        attribute.as_deref()
                    }
                },
            };
            // SQL: nothing compares with a missing value.
            let Some(value) = value else {
                return false;
            };
            match (t.comparator, &t.value) {
                (Comparator::Eq, Literal::Str(v)) => value == v,
                (Comparator::Ne, Literal::Str(v)) => value != v,
                (Comparator::In, Literal::List(vs)) => vs.iter().any(|v| v == value),
                (Comparator::NotIn, Literal::List(vs)) => !vs.iter().any(|v| v == value),
                (Comparator::Like | Comparator::ILike, _) => {
                    t.regex.as_ref().is_some_and(|r| r.is_match(value))
                }
                (Comparator::RLike, Literal::Regex(p)) => p.0.is_match(value),
                _ => false,
            }
        })
    }
}

/// Of `trace_ids`, those with a span that satisfies `filter`.
pub(crate) fn traces_matching(
    tx: &mut dyn Tx,
    ws: &str,
    trace_ids: &[&str],
    filter: &SpanFilter,
) -> crate::store::Result<HashSet<String>> {
    let mut out = HashSet::new();
    let columns = if filter.parse {
        "trace_id, name, content"
    } else {
        "trace_id, name, NULL"
    };
    for chunk in trace_ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<crate::store::Value> = vec![ws.into()];
        params.extend(chunk.iter().map(|t| (*t).into()));
        for mut r in tx.query(
            &format!(
                "SELECT {columns} FROM trace_spans WHERE workspace = ? AND trace_id IN ({marks})"
            ),
            &params,
        )? {
            let trace = r.take_text(0).unwrap_or_default();
            if out.contains(&trace) {
                continue;
            }
            let content: Option<Json> = r.take_text(2).and_then(|c| serde_json::from_str(&c).ok());
            if filter.holds(&r.text(1), content.as_ref()) {
                out.insert(trace);
            }
        }
    }
    Ok(out)
}

/// An attribute of a span in OTLP JSON, as plain JSON.
fn otlp_attribute<'a>(content: &'a Json, key: &str) -> Option<&'a Json> {
    content["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"].as_str() == Some(key))
        .map(|a| {
            let v = &a["value"];
            // The scalar AnyValue forms, read in place (what `otlp::plain` would copy).
            ["string_value", "bool_value", "int_value", "double_value"]
                .iter()
                .find_map(|k| v.get(*k))
                .unwrap_or(v)
        })
}

/// A span's status as MLflow's `spans.status` column has it: OK, ERROR or UNSET.
fn status_of(content: &Json) -> &str {
    match content["status"]["code"].as_str() {
        Some("STATUS_CODE_OK") | Some("OK") => "OK",
        Some("STATUS_CODE_ERROR") | Some("ERROR") => "ERROR",
        _ => match content["status"]["code"].as_i64() {
            Some(1) => "OK",
            Some(2) => "ERROR",
            _ => "UNSET",
        },
    }
}

/// A span's row text in MLflow's SQL store: `json.dumps(span.to_dict(), ensure_ascii=False)`
/// (keys in `to_dict`'s order, attribute values JSON-encoded strings, Python's separators),
/// built from the OTLP JSON tandem keeps.
pub(crate) fn mlflow_content_text(c: &Json) -> String {
    let mut out = String::with_capacity(512);
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !std::mem::take(&mut first) {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\": ");
    };
    let or_null = |v: Option<&Json>| v.filter(|v| !v.is_null()).map(python_json);
    for k in ["trace_id", "span_id", "parent_span_id", "name"] {
        key(&mut out, k);
        out.push_str(&or_null(c.get(k)).unwrap_or_else(|| "null".into()));
    }
    for k in ["start_time_unix_nano", "end_time_unix_nano"] {
        key(&mut out, k);
        // Times are numbers in MLflow's dict (OTLP JSON may carry them as strings).
        let v = match c.get(k) {
            Some(Json::String(s)) => s.parse::<u64>().map(|n| n.to_string()).ok(),
            other => or_null(other),
        };
        out.push_str(&v.unwrap_or_else(|| "null".into()));
    }
    key(&mut out, "events");
    out.push('[');
    for (i, e) in c["events"].as_array().into_iter().flatten().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"name\": ");
        out.push_str(&python_json(&e["name"]));
        out.push_str(", \"time_unix_nano\": ");
        out.push_str(&python_json(&e["time_unix_nano"]));
        out.push_str(", \"attributes\": {");
        attributes(&mut out, &e["attributes"], |v| python_json(&otlp::plain(v)));
        out.push_str("}}");
    }
    out.push(']');
    key(&mut out, "status");
    out.push_str("{\"code\": ");
    let code = match status_of(c) {
        "OK" => "STATUS_CODE_OK",
        "ERROR" => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    };
    out.push_str(&python_json(&Json::String(code.into())));
    out.push_str(", \"message\": ");
    out.push_str(&python_json(&Json::String(
        c["status"]["message"].as_str().unwrap_or_default().into(),
    )));
    out.push('}');
    key(&mut out, "attributes");
    out.push('{');
    attributes(&mut out, &c["attributes"], |v| {
        python_json(&Json::String(python_json(&otlp::plain(v))))
    });
    out.push('}');
    key(&mut out, "links");
    out.push_str("[]}");
    out
}

/// OTLP JSON attributes (`[{"key", "value"}]`) as the members of a Python dict's text.
fn attributes(out: &mut String, list: &Json, value: impl Fn(&Json) -> String) {
    for (i, a) in list.as_array().into_iter().flatten().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&python_json(&a["key"]));
        out.push_str(": ");
        out.push_str(&value(&a["value"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span() -> Json {
        json!({
            "trace_id": "AAAA", "span_id": "AQ==", "name": "llm",
            "start_time_unix_nano": "1000", "end_time_unix_nano": 2000,
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "attributes": [
                {"key": "mlflow.spanType", "value": {"string_value": "LLM"}},
                {"key": "model", "value": {"string_value": "gpt-4é"}},
                {"key": "n", "value": {"int_value": 3}},
            ],
        })
    }

    #[test]
    fn the_row_text_is_what_mlflow_dumps() {
        assert_eq!(
            mlflow_content_text(&span()),
            r#"{"trace_id": "AAAA", "span_id": "AQ==", "parent_span_id": null, "name": "llm", "start_time_unix_nano": 1000, "end_time_unix_nano": 2000, "events": [], "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}, "attributes": {"mlflow.spanType": "\"LLM\"", "model": "\"gpt-4é\"", "n": "3"}, "links": []}"#
        );
    }

    fn holds(filter: &str) -> bool {
        let clauses = search::parse_filter(filter, &search::TRACES).unwrap();
        let f = SpanFilter::new(&clauses).unwrap().unwrap();
        f.holds("llm", Some(&span()))
    }

    #[test]
    fn span_clauses_as_mlflow_answers_them() {
        for (filter, want) in [
            ("span.name = 'llm'", true),
            ("span.name != 'llm'", false),
            ("span.name IN ('a', 'llm')", true),
            ("span.name NOT IN ('llm')", false),
            ("span.name LIKE 'l%'", true),
            ("span.name LIKE 'L%'", false),
            ("span.name ILIKE 'L%'", true),
            ("span.name RLIKE 'l+m$'", true),
            ("span.type = 'LLM'", true),
            ("span.status = 'ERROR'", true),
            ("span.status = 'OK'", false),
            ("span.attributes.model = 'gpt-4é'", true),
            ("span.attributes.n = '3'", true),
            ("span.attributes.missing != 'x'", false),
            // MLflow's patterns over the row text.
            ("span.attributes.model LIKE '%gpt%'", true),
            ("span.attributes.model LIKE '%claude%'", false),
            ("span.attributes.model ILIKE '%GPT-4É%'", true),
            ("span.attributes.model RLIKE '^gpt'", true),
            ("span.attributes.model RLIKE 'é$'", true),
            ("span.attributes.model RLIKE '^pt'", false),
            ("span.content LIKE '%\"name\": \"llm\"%'", true),
            ("trace.text ILIKE '%BOOM%'", true),
            ("trace.text LIKE '%BOOM%'", false),
            // Every span clause on the same span.
            ("span.name = 'llm' AND span.type = 'LLM'", true),
            ("span.name = 'llm' AND span.type = 'CHAIN'", false),
        ] {
            assert_eq!(holds(filter), want, "{filter}");
        }
    }
}
