//! A trace's token usage and cost from its spans, as MLflow's tracking store sums them when
//! spans arrive without the client's own totals (an OTLP-only producer).
//!
//! The sum is over the span tree: a span's figures count unless an ancestor has figures of
//! its own, because rollup integrations (pydantic-ai, DSPy, Agno) put the cumulative usage
//! on a parent span as well as on its children. Token counts may come from MLflow's own
//! attribute (`mlflow.chat.tokenUsage`) or from OpenTelemetry conventions (OpenInference,
//! GenAI semantic conventions, Traceloop), read in MLflow's order.

use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};

/// One span as the rollup sees it: its place in the tree and its figures, if any.
pub struct SpanFigures<'a> {
    pub span_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub figures: Option<&'a Map<String, Json>>,
}

/// MLflow's token usage keys, always in a total, and the cache keys, in it when a span has
/// them.
pub const USAGE_KEYS: [&str; 3] = ["input_tokens", "output_tokens", "total_tokens"];
pub const USAGE_CACHE_KEYS: [&str; 3] = [
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_input_tokens_above_1hr",
];
pub const COST_KEYS: [&str; 3] = ["input_cost", "output_cost", "total_cost"];

/// The totals of `keys` (and of `optional` keys some span has) over the tree, or None when no
/// span has figures. Integer figures add as integers, the rest as floats.
pub fn rollup(
    spans: &[SpanFigures<'_>],
    keys: &[&str],
    optional: &[&str],
    float: bool,
) -> Option<Vec<(String, Json)>> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_id.filter(|p| ids.contains(p)) {
            Some(p) => children.entry(p).or_default().push(i),
            None => stack.push((i, false)),
        }
    }
    let zero = |float: bool| Sum {
        int: 0,
        float: 0.0,
        is_float: float,
    };
    let mut totals: Vec<(String, Sum)> =
        keys.iter().map(|k| (k.to_string(), zero(float))).collect();
    let mut any = false;
    // An explicit stack: a deep trace must not overflow ours.
    while let Some((i, ancestor_has)) = stack.pop() {
        let s = &spans[i];
        if let (Some(f), false) = (s.figures, ancestor_has) {
            any = true;
            for k in keys.iter().chain(optional.iter()) {
                let Some(v) = f.get(*k) else { continue };
                let slot = match totals.iter().position(|(n, _)| n == k) {
                    Some(p) => p,
                    None => {
                        totals.push((k.to_string(), zero(float)));
                        totals.len() - 1
                    }
                };
                totals[slot].1.add(v);
            }
        }
        let has = ancestor_has || s.figures.is_some();
        for c in children.get(s.span_id).into_iter().flatten() {
            stack.push((*c, has));
        }
    }
    any.then(|| totals.into_iter().map(|(k, s)| (k, s.value())).collect())
}

struct Sum {
    int: i64,
    float: f64,
    is_float: bool,
}

impl Sum {
    fn add(&mut self, v: &Json) {
        match (v.as_i64(), v.as_f64()) {
            (Some(i), _) if !self.is_float => self.int = self.int.saturating_add(i),
            (_, Some(f)) => {
                if !self.is_float {
                    self.is_float = true;
                    self.float = self.int as f64;
                }
                self.float += f;
            }
            _ => {}
        }
    }

    fn value(&self) -> Json {
        if self.is_float {
            serde_json::Number::from_f64(self.float).map_or(Json::Null, Json::Number)
        } else {
            Json::from(self.int)
        }
    }
}

/// The attribute names each OpenTelemetry convention uses for input, output and total tokens
/// and cache reads and writes, in the order MLflow tries them.
const TOKEN_CONVENTIONS: [[&str; 5]; 3] = [
    // OpenInference
    [
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.prompt_details.cache_write",
    ],
    // GenAI semantic conventions
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
    ],
    // Traceloop (OpenLLMetry)
    [
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.usage.total_tokens",
        "",
        "",
    ],
];

/// A span's token usage from an OpenTelemetry convention's attributes (plain values), as
/// MLflow translates it: the first convention with any count, the total computed when only
/// input and output are given.
pub fn usage_from_conventions(
    attribute: impl Fn(&str) -> Option<Json>,
) -> Option<Map<String, Json>> {
    let int = |key: &str| -> Option<i64> {
        if key.is_empty() {
            return None;
        }
        match attribute(key)? {
            Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Json::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
    };
    for [input, output, total, cache_read, cache_write] in TOKEN_CONVENTIONS {
        let (i, o) = (int(input), int(output));
        let t = int(total).or(match (i, o) {
            (Some(i), Some(o)) => Some(i + o),
            _ => None,
        });
        if i.is_none() && o.is_none() && t.is_none() {
            continue;
        }
        let mut usage = Map::new();
        for (k, v) in [
            ("input_tokens", i),
            ("output_tokens", o),
            ("total_tokens", t),
            ("cache_read_input_tokens", int(cache_read)),
            (
                "cache_creation_input_tokens",
                int(cache_write).or_else(|| {
                    (input == "gen_ai.usage.input_tokens")
                        .then(|| int("gen_ai.usage.cache_creation.input_tokens"))
                        .flatten()
                }),
            ),
        ] {
            if let Some(v) = v {
                usage.insert(k.into(), v.into());
            }
        }
        return Some(usage);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span<'a>(id: &'a str, parent: Option<&'a str>, f: &'a Option<Json>) -> SpanFigures<'a> {
        SpanFigures {
            span_id: id,
            parent_id: parent,
            figures: f.as_ref().and_then(Json::as_object),
        }
    }

    #[test]
    fn leaves_add_and_a_parents_rollup_counts_once() {
        let u = |i: i64, o: i64| {
            Some(json!({"input_tokens": i, "output_tokens": o, "total_tokens": i + o}))
        };
        let (none, u34, u101, u55, u10) = (None, u(3, 4), u(10, 1), u(5, 5), u(1, 0));
        let leaves = [
            span("a", None, &none),
            span("b", Some("a"), &u34),
            span("c", Some("a"), &u101),
        ];
        assert_eq!(
            rollup(&leaves, &USAGE_KEYS, &USAGE_CACHE_KEYS, false),
            Some(vec![
                ("input_tokens".into(), json!(13)),
                ("output_tokens".into(), json!(5)),
                ("total_tokens".into(), json!(18))
            ])
        );
        let rolled = [
            span("a", None, &u55),
            span("b", Some("a"), &u55),
            span("x", Some("gone"), &u10),
        ];
        assert_eq!(
            rollup(&rolled, &USAGE_KEYS, &USAGE_CACHE_KEYS, false).unwrap()[0].1,
            json!(6)
        );
        assert_eq!(
            rollup(&[span("a", None, &none)], &USAGE_KEYS, &[], false),
            None
        );
        let priced = Some(json!({"input_cost": 0.25, "output_cost": 0.5, "total_cost": 0.75}));
        let cost = [span("a", None, &priced)];
        assert_eq!(
            rollup(&cost, &COST_KEYS, &[], true).unwrap()[2].1,
            json!(0.75)
        );
    }

    #[test]
    fn token_counts_from_opentelemetry_conventions() {
        let attrs = json!({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": "8"});
        assert_eq!(
            usage_from_conventions(|k| attrs.get(k).cloned()),
            Some(
                json!({"input_tokens": 12, "output_tokens": 8, "total_tokens": 20})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        let oi = json!({"llm.token_count.prompt": 2, "llm.token_count.total": 9});
        assert_eq!(
            usage_from_conventions(|k| oi.get(k).cloned()),
            Some(
                json!({"input_tokens": 2, "total_tokens": 9})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(usage_from_conventions(|_| None), None);
    }
}
