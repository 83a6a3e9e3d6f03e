//! MLflow's search language: `filter_string` clauses joined by AND, and `order_by` keys.
//!
//! Parsing and evaluation are pure so that every store gives the same answers: a store loads
//! candidates, and this module decides which match and in what order.

use crate::error::{MlflowError, Result};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
    /// A trace's request metadata (`request_metadata.KEY`, `metadata.KEY`).
    Metadata,
    /// The value of a trace's valid feedback named KEY (`feedback.KEY`).
    Feedback,
    /// The value of a trace's valid expectation named KEY (`expectation.KEY`).
    Expectation,
    /// An issue linked to a trace (`issue.id`).
    Issue,
    /// A trace's spans (`span.name`, `span.type`, `span.status`, `span.attributes.KEY`,
    /// `span.content`, and `text` for the content): a trace matches when one of its spans
    /// satisfies every span clause of the filter.
    Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
    /// A regular expression found anywhere in the value (trace searches only, as MLflow).
    RLike,
}

impl Comparator {
    /// The comparator as a filter writes it.
    pub fn sql(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
            Comparator::RLike => "RLIKE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Num(f64),
    Str(String),
    List(Vec<String>),
    None,
    /// An RLIKE pattern, compiled once when the filter is parsed.
    Regex(Pattern),
}

/// A compiled regular expression (the `regex` crate's syntax: no look-around or
/// back-references), equal to another with the same source.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub kind: Kind,
    pub key: String,
    pub comparator: Comparator,
    pub value: Literal,
}

/// A field's value on one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Num(f64),
    Str(&'a str),
}

/// Which keys and comparators an entity's search accepts.
pub struct Spec {
    pub entity: &'static str,
    pub kinds: &'static [Kind],
    /// Attributes compared as numbers.
    pub numeric_attributes: &'static [&'static str],
    /// Attributes compared as strings.
    pub string_attributes: &'static [&'static str],
}

pub const RUNS: Spec = Spec {
    entity: "run",
    kinds: &[
        Kind::Metric,
        Kind::Param,
        Kind::Tag,
        Kind::Attribute,
        Kind::Dataset,
    ],
    numeric_attributes: &["start_time", "end_time", "created", "Created"],
    string_attributes: &[
        "run_id",
        "run_name",
        "status",
        "user_id",
        "artifact_uri",
        "lifecycle_stage",
    ],
};

pub const EXPERIMENTS: Spec = Spec {
    entity: "experiment",
    kinds: &[Kind::Tag, Kind::Attribute],
    numeric_attributes: &["creation_time", "last_update_time"],
    string_attributes: &["name", "experiment_id"],
};

pub const REGISTERED_MODELS: Spec = Spec {
    entity: "registered model",
    kinds: &[Kind::Tag, Kind::Attribute],
    numeric_attributes: &["creation_timestamp", "last_updated_timestamp"],
    string_attributes: &["name"],
};

pub const MODEL_VERSIONS: Spec = Spec {
    entity: "model version",
    kinds: &[Kind::Tag, Kind::Attribute],
    numeric_attributes: &[
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    string_attributes: &[
        "name",
        "run_id",
        "source_path",
        "source",
        "current_stage",
        "model_id",
    ],
};

pub const LOGGED_MODELS: Spec = Spec {
    entity: "logged model",
    kinds: &[Kind::Metric, Kind::Param, Kind::Tag, Kind::Attribute],
    numeric_attributes: &[
        "creation_timestamp",
        "creation_time",
        "last_updated_timestamp",
    ],
    string_attributes: &[
        "name",
        "model_id",
        "model_type",
        "status",
        "source_run_id",
        "experiment_id",
    ],
};

/// MLflow's trace search (`SearchTracesV3`): tags, request metadata and the attributes
/// below (`attributes.`, `trace.` or bare).
pub const TRACES: Spec = Spec {
    entity: "trace",
    kinds: &[
        Kind::Tag,
        Kind::Attribute,
        Kind::Metadata,
        Kind::Feedback,
        Kind::Expectation,
        Kind::Issue,
        Kind::Span,
    ],
    numeric_attributes: &[
        "timestamp_ms",
        "timestamp",
        "execution_time_ms",
        "execution_time",
        "end_time_ms",
        "end_time",
    ],
    string_attributes: &[
        "status",
        "state",
        "name",
        "trace_id",
        "request_id",
        "client_request_id",
        "run_id",
        "prompt",
        "experiment_id",
    ],
};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn bad(msg: impl Into<String>) -> MlflowError {
    MlflowError::invalid(msg)
}

fn tokenize(s: &str) -> Result<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize, q: char| -> Result<String> {
        let mut v = String::new();
        *i += 1;
        loop {
            match cs.get(*i) {
                None => {
                    return Err(bad(format!(
                        "Invalid filter string '{s}': unterminated quote"
                    )))
                }
                Some(&c) if c == q => {
                    // A doubled quote inside a quoted string stands for the quote itself.
                    if cs.get(*i + 1) == Some(&q) {
                        v.push(q);
                        *i += 2;
                    } else {
                        *i += 1;
                        return Ok(v);
                    }
                }
                Some(&'\\') if cs.get(*i + 1) == Some(&q) => {
                    v.push(q);
                    *i += 2;
                }
                Some(&c) => {
                    v.push(c);
                    *i += 1;
                }
            }
        }
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => out.push(Tok::Str(quoted(&mut i, '\'')?)),
            '"' => out.push(Tok::Str(quoted(&mut i, '"')?)),
            '`' => out.push(Tok::Ident(quoted(&mut i, '`')?)),
            '=' => {
                i += if cs.get(i + 1) == Some(&'=') { 2 } else { 1 };
                out.push(Tok::Op("="))
            }
            '!' if cs.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op("!="));
                i += 2
            }
            '<' | '>' => {
                let op = match (c, cs.get(i + 1)) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => "!=",
                    ('<', _) => "<",
                    _ => ">",
                };
                i += if op.len() == 2 { 2 } else { 1 };
                out.push(Tok::Op(op))
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && cs
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < cs.len()
                    && (cs[i].is_ascii_alphanumeric()
                        || cs[i] == '.'
                        || ((cs[i] == '-' || cs[i] == '+') && matches!(cs[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = cs[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| {
                    bad(format!(
                        "Invalid filter string '{s}': '{text}' is not a number"
                    ))
                })?;
                out.push(Tok::Num(n))
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < cs.len()
                    && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '.' | '-' | ':' | '/'))
                {
                    i += 1;
                }
                let mut word: String = cs[start..i].iter().collect();
                // `metrics."my metric"` and metrics.`my metric`: a quoted key after the prefix.
                if word.ends_with('.') && matches!(cs.get(i), Some('"') | Some('`')) {
                    let q = cs[i];
                    word.push_str(&quoted(&mut i, q)?);
                }
                out.push(Tok::Ident(word))
            }
            _ => {
                return Err(bad(format!(
                    "Invalid filter string '{s}': unexpected character '{c}'"
                )))
            }
        }
    }
    Ok(out)
}

fn kind_of(prefix: &str) -> Option<Kind> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Kind::Metric,
        "param" | "params" | "parameter" | "parameters" => Kind::Param,
        "tag" | "tags" => Kind::Tag,
        "attribute" | "attributes" | "attr" | "run" => Kind::Attribute,
        "dataset" | "datasets" => Kind::Dataset,
        "trace" => Kind::Attribute,
        "request_metadata" | "metadata" => Kind::Metadata,
        "feedback" => Kind::Feedback,
        "expectation" => Kind::Expectation,
        "issue" => Kind::Issue,
        "span" => Kind::Span,
        _ => return None,
    })
}

/// Splits `metrics.acc` into (Metric, "acc"); a bare name is an attribute.
pub fn parse_identifier(ident: &str, spec: &Spec) -> Result<(Kind, String)> {
    let (kind, key) = match ident.split_once('.') {
        Some((prefix, key)) => match kind_of(prefix) {
            Some(kind) => (kind, key.to_owned()),
            None => return Err(bad(format!("Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"))),
        },
        None => (Kind::Attribute, ident.to_owned()),
    };
    if !spec.kinds.contains(&kind) {
        return Err(bad(format!(
            "Invalid entity type in '{ident}' for a {} search",
            spec.entity
        )));
    }
    if key.is_empty() {
        return Err(bad(format!("Invalid identifier '{ident}': missing key")));
    }
    let key = match (kind, key.as_str()) {
        (Kind::Attribute, "Created") => "created".to_owned(),
        _ => key,
    };
    // A trace search's `text` (under any prefix but `span.`) is its spans' content, as MLflow.
    if spec.kinds.contains(&Kind::Span) && kind != Kind::Span && key.eq_ignore_ascii_case("text") {
        return Ok((Kind::Span, "content".to_owned()));
    }
    if kind == Kind::Span {
        match key.strip_prefix("attributes.") {
            Some(name) if name.trim_matches('`').is_empty() => {
                return Err(bad(
                    "Span attribute name cannot be empty after 'attributes.'",
                ))
            }
            Some(_) => {}
            None if matches!(key.as_str(), "name" | "type" | "status" | "content") => {}
            None => {
                return Err(bad(format!(
                    "Invalid span attribute '{key}'. Supported attributes: name, status, type, attributes.<attribute_name>."
                )))
            }
        }
    }
    if kind == Kind::Attribute
        && !spec.numeric_attributes.contains(&key.as_str())
        && !spec.string_attributes.contains(&key.as_str())
    {
        let mut valid: Vec<&str> = spec
            .string_attributes
            .iter()
            .chain(spec.numeric_attributes)
            .copied()
            .collect();
        valid.dedup();
        return Err(bad(format!(
            "Invalid attribute key '{key}' specified. Valid keys are '{valid:?}'"
        )));
    }
    if kind == Kind::Issue && key != "id" {
        return Err(bad(format!(
            "Invalid issue attribute '{key}'. Supported attributes: ['id']"
        )));
    }
    if kind == Kind::Dataset && !matches!(key.as_str(), "name" | "digest" | "context") {
        return Err(bad(format!(
            "Invalid dataset key '{key}'. Valid keys are ['name', 'digest', 'context']"
        )));
    }
    Ok((kind, key))
}

fn is_numeric(kind: Kind, key: &str, spec: &Spec) -> bool {
    kind == Kind::Metric || (kind == Kind::Attribute && spec.numeric_attributes.contains(&key))
}

/// Parses a filter string. An empty or blank string is no filter.
pub fn parse_filter(filter: &str, spec: &Spec) -> Result<Vec<Clause>> {
    let toks = tokenize(filter)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    let invalid = |what: &str| bad(format!("Invalid filter string '{filter}': {what}"));
    while i < toks.len() {
        let ident = match &toks[i] {
            Tok::Ident(s) => s.clone(),
            _ => return Err(invalid("expected an identifier such as metrics.accuracy")),
        };
        i += 1;
        let (kind, key) = parse_identifier(&ident, spec)?;
        let word = |t: Option<&Tok>, w: &str| matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(w));
        let comparator = match toks.get(i) {
            Some(Tok::Op(op)) => {
                i += 1;
                match *op {
                    "=" => Comparator::Eq,
                    "!=" => Comparator::Ne,
                    "<" => Comparator::Lt,
                    "<=" => Comparator::Le,
                    ">" => Comparator::Gt,
                    _ => Comparator::Ge,
                }
            }
            t if word(t, "like") => {
                i += 1;
                Comparator::Like
            }
            t if word(t, "ilike") => {
                i += 1;
                Comparator::ILike
            }
            t if word(t, "rlike") && spec.kinds.contains(&Kind::Span) => {
                i += 1;
                Comparator::RLike
            }
            t if word(t, "in") => {
                i += 1;
                Comparator::In
            }
            t if word(t, "not") && word(toks.get(i + 1), "in") => {
                i += 2;
                Comparator::NotIn
            }
            t if word(t, "is") => {
                if word(toks.get(i + 1), "null") {
                    i += 2;
                    Comparator::IsNull
                } else if word(toks.get(i + 1), "not") && word(toks.get(i + 2), "null") {
                    i += 3;
                    Comparator::IsNotNull
                } else {
                    return Err(invalid("expected NULL or NOT NULL after IS"));
                }
            }
            _ => return Err(invalid(&format!("expected a comparator after '{ident}'"))),
        };
        let numeric = is_numeric(kind, &key, spec);
        let value = match comparator {
            Comparator::IsNull | Comparator::IsNotNull => Literal::None,
            Comparator::In | Comparator::NotIn => {
                if numeric {
                    return Err(invalid(&format!(
                        "'{}' is not a valid comparator for '{ident}'",
                        if comparator == Comparator::In {
                            "IN"
                        } else {
                            "NOT IN"
                        }
                    )));
                }
                if toks.get(i) != Some(&Tok::LParen) {
                    return Err(invalid("expected a parenthesized list after IN"));
                }
                i += 1;
                let mut items = Vec::new();
                loop {
                    match toks.get(i) {
                        Some(Tok::Str(s)) => items.push(s.clone()),
                        _ => return Err(invalid("IN lists hold quoted strings")),
                    }
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        Some(Tok::RParen) => {
                            i += 1;
                            break;
                        }
                        _ => return Err(invalid("unterminated IN list")),
                    }
                }
                Literal::List(items)
            }
            _ => {
                let assessment = matches!(kind, Kind::Feedback | Kind::Expectation);
                let v = match toks.get(i) {
                    Some(Tok::Num(n)) if numeric || assessment => Literal::Num(*n),
                    Some(Tok::Ident(w))
                        if assessment
                            && (w.eq_ignore_ascii_case("true")
                                || w.eq_ignore_ascii_case("false")) =>
                    {
                        Literal::Str(w.to_ascii_lowercase())
                    }
                    Some(Tok::Str(s)) if numeric => match s.trim().parse::<f64>() {
                        Ok(n) if kind == Kind::Attribute => Literal::Num(n),
                        _ => {
                            return Err(invalid(&format!("expected a numeric value for '{ident}'")))
                        }
                    },
                    Some(Tok::Str(s)) if comparator == Comparator::RLike => {
                        match regex::Regex::new(s) {
                            Ok(r) => Literal::Regex(Pattern(r)),
                            Err(e) => {
                                return Err(invalid(&format!(
                                    "'{s}' is not a regular expression RLIKE can use: {}",
                                    e.to_string().lines().last().unwrap_or_default().trim()
                                )))
                            }
                        }
                    }
                    Some(Tok::Str(s)) => Literal::Str(s.clone()),
                    Some(Tok::Num(_)) => {
                        return Err(invalid(&format!(
                            "expected a quoted string value for '{ident}'"
                        )))
                    }
                    _ => {
                        return Err(invalid(&format!(
                            "expected a value after the comparator for '{ident}'"
                        )))
                    }
                };
                i += 1;
                v
            }
        };
        let string_ops = [
            Comparator::Eq,
            Comparator::Ne,
            Comparator::Like,
            Comparator::ILike,
            Comparator::RLike,
            Comparator::In,
            Comparator::NotIn,
            Comparator::IsNull,
            Comparator::IsNotNull,
        ];
        let numeric_ops = [
            Comparator::Eq,
            Comparator::Ne,
            Comparator::Lt,
            Comparator::Le,
            Comparator::Gt,
            Comparator::Ge,
            Comparator::IsNull,
            Comparator::IsNotNull,
        ];
        let assessment = matches!(kind, Kind::Feedback | Kind::Expectation);
        if kind == Kind::Issue && comparator != Comparator::Eq {
            return Err(invalid(&format!(
                "'{comparator:?}' is not a valid comparator for '{ident}': issues take '=' only"
            )));
        }
        if kind == Kind::Span {
            let (allowed, names): (&[Comparator], &str) = if key == "content" {
                (&[Comparator::Like, Comparator::ILike], "LIKE, ILIKE")
            } else {
                (
                    &[
                        Comparator::Eq,
                        Comparator::Ne,
                        Comparator::In,
                        Comparator::NotIn,
                        Comparator::Like,
                        Comparator::ILike,
                        Comparator::RLike,
                    ],
                    "=, !=, IN, NOT IN, LIKE, ILIKE, RLIKE",
                )
            };
            if !allowed.contains(&comparator) {
                return Err(bad(format!(
                    "span.{key} comparator '{}' not one of {names}",
                    comparator.sql()
                )));
            }
        }
        let allowed = if assessment {
            !matches!(comparator, Comparator::In | Comparator::NotIn)
        } else if numeric {
            numeric_ops.contains(&comparator)
        } else {
            string_ops.contains(&comparator)
        };
        if !allowed {
            return Err(invalid(&format!(
                "'{comparator:?}' is not a valid comparator for '{ident}'"
            )));
        }
        // MLflow's parser reads a bare `text` as an SQL keyword, not a field: it takes
        // `trace.text` (and `span.content`) only.
        if kind == Kind::Span && ident.eq_ignore_ascii_case("text") {
            let shown = match &value {
                Literal::Str(v) => format!("'{v}'"),
                Literal::Regex(p) => format!("'{}'", p.0.as_str()),
                _ => String::new(),
            };
            return Err(bad(format!(
                "Invalid clause(s) in filter string: '{ident}', '{}', '{shown}'",
                comparator.sql()
            )));
        }
        clauses.push(Clause {
            kind,
            key,
            comparator,
            value,
        });
        match toks.get(i) {
            None => {}
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("and") => {
                i += 1;
                if i >= toks.len() {
                    return Err(invalid("dangling AND"));
                }
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("or") => {
                return Err(invalid("OR is not supported, only AND"))
            }
            _ => return Err(invalid("expected AND between clauses")),
        }
    }
    Ok(clauses)
}

/// SQL LIKE: `%` is any run, `_` any one character.
pub fn like(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative wildcard match with backtracking to the last '%'.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

/// SQL LIKE as a regular expression over the whole text (`%` any run, `_` any one character),
/// for testing one pattern against many long texts (span contents).
pub fn like_regex(pattern: &str, case_insensitive: bool) -> regex::Regex {
    // A leading or trailing `%` is an unanchored end (`%text%` is a plain substring search,
    // which the regex engine runs as one).
    let (body, open_start) = match pattern.strip_prefix('%') {
        Some(rest) => (rest, true),
        None => (pattern, false),
    };
    let (body, open_end) = match body.strip_suffix('%') {
        Some(rest) => (rest, true),
        None => (body, false),
    };
    let mut re = String::from(if case_insensitive { "(?si)" } else { "(?s)" });
    if !open_start {
        re.push('^');
    }
    let mut literal = [0u8; 4];
    for c in body.chars() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut literal))),
        }
    }
    if !open_end {
        re.push('$');
    }
    regex::Regex::new(&re).expect("an escaped LIKE pattern is a regular expression")
}

/// Whether one candidate satisfies one clause, given its value for the clause's field.
pub fn matches(clause: &Clause, field: Option<Field<'_>>) -> bool {
    use Comparator::*;
    match (clause.comparator, field) {
        (IsNull, f) => f.is_none(),
        (IsNotNull, f) => f.is_some(),
        (_, None) => false,
        (op, Some(Field::Num(x))) => {
            let y = match &clause.value {
                Literal::Num(y) => *y,
                Literal::Str(s) => match s.parse::<f64>() {
                    Ok(y) => y,
                    Err(_) => return false,
                },
                _ => return false,
            };
            match op {
                Eq => x == y,
                Ne => x != y,
                Lt => x < y,
                Le => x <= y,
                Gt => x > y,
                Ge => x >= y,
                _ => false,
            }
        }
        (op, Some(Field::Str(x))) => match (&clause.value, op) {
            (Literal::Str(y), Eq) => x == y,
            (Literal::Str(y), Ne) => x != y,
            (Literal::Str(y), Like) => like(y, x, false),
            (Literal::Str(y), ILike) => like(y, x, true),
            (Literal::Regex(r), RLike) => r.0.is_match(x),
            (Literal::Num(y), Eq) => x.parse::<f64>().is_ok_and(|x| x == *y),
            (Literal::List(ys), In) => ys.iter().any(|y| y == x),
            (Literal::List(ys), NotIn) => !ys.iter().any(|y| y == x),
            _ => false,
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub kind: Kind,
    pub key: String,
    pub ascending: bool,
}

/// Parses order_by entries such as `metrics.acc DESC` or `attributes.start_time`.
pub fn parse_order_by(entries: &[String], spec: &Spec) -> Result<Vec<OrderKey>> {
    entries
        .iter()
        .map(|e| {
            let toks = tokenize(e)?;
            let (ident, dir) = match toks.as_slice() {
                [Tok::Ident(id)] => (id.clone(), true),
                [Tok::Ident(id), Tok::Ident(d)] if d.eq_ignore_ascii_case("asc") => {
                    (id.clone(), true)
                }
                [Tok::Ident(id), Tok::Ident(d)] if d.eq_ignore_ascii_case("desc") => {
                    (id.clone(), false)
                }
                _ => {
                    return Err(bad(format!(
                        "Invalid order_by clause '{e}'. Could not be parsed."
                    )))
                }
            };
            let (kind, key) = parse_identifier(&ident, spec)?;
            if matches!(
                kind,
                Kind::Dataset | Kind::Feedback | Kind::Expectation | Kind::Issue | Kind::Span
            ) {
                return Err(bad(format!(
                    "Invalid order_by clause '{e}': only attributes, tags and metadata order"
                )));
            }
            Ok(OrderKey {
                kind,
                key,
                ascending: dir,
            })
        })
        .collect()
}

/// Orders two field values the way MLflow does: missing values last whatever the direction,
/// NaN after every number.
pub fn compare_fields(a: Option<Field<'_>>, b: Option<Field<'_>>, ascending: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let o = match (x, y) {
                (Field::Num(x), Field::Num(y)) => match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => return Ordering::Greater,
                    (false, true) => return Ordering::Less,
                    _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                },
                (Field::Str(x), Field::Str(y)) => x.cmp(y),
                (Field::Num(_), Field::Str(_)) => Ordering::Less,
                (Field::Str(_), Field::Num(_)) => Ordering::Greater,
            };
            if ascending {
                o
            } else {
                o.reverse()
            }
        }
    }
}

/// Opaque page tokens: base64 of a JSON offset, like MLflow's. Stateless, so any server
/// behind a load balancer can continue any other server's page.
pub fn encode_page_token(offset: usize) -> String {
    b64_encode(format!("{{\"offset\": {offset}}}").as_bytes())
}

pub fn decode_page_token(token: &str) -> Result<usize> {
    let invalid = || {
        bad(format!(
            "Invalid page token, could not base64-decode: '{token}'"
        ))
    };
    let bytes = b64_decode(token.trim()).ok_or_else(invalid)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| bad("Invalid page token, decoded value is not JSON"))?;
    v.get("offset")
        .and_then(|o| o.as_u64())
        .map(|o| o as usize)
        .ok_or_else(|| bad("Invalid page token, it has no offset"))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_run_filter_grammar() {
        let c = parse_filter(
            "metrics.acc >= 0.9 and params.lr = '0.1' AND tags.`my tag` LIKE '%x%' and attributes.status != \"FAILED\" and run_id IN ('a', 'b') and metrics.\"a b\" < -1e-3 and tags.t IS NOT NULL and datasets.name = 'd'",
            &RUNS,
        )
        .unwrap();
        assert_eq!(c.len(), 8);
        assert_eq!(
            c[0],
            Clause {
                kind: Kind::Metric,
                key: "acc".into(),
                comparator: Comparator::Ge,
                value: Literal::Num(0.9)
            }
        );
        assert_eq!(c[2].key, "my tag");
        assert_eq!(c[4].value, Literal::List(vec!["a".into(), "b".into()]));
        assert_eq!(
            c[5],
            Clause {
                kind: Kind::Metric,
                key: "a b".into(),
                comparator: Comparator::Lt,
                value: Literal::Num(-1e-3)
            }
        );
        assert_eq!(c[6].comparator, Comparator::IsNotNull);
        assert!(parse_filter("", &RUNS).unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_filters() {
        for f in [
            "metrics.acc > 'x'",
            "params.p > '1'",
            "foo.bar = 'x'",
            "metrics.acc >",
            "metrics.acc = 1 or metrics.b = 2",
            "params.p = 'x' and",
            "attributes.nope = 'x'",
            "params.p = 'unterminated",
            "metrics.a IN ('1')",
            "params.p = 3",
        ] {
            assert!(parse_filter(f, &RUNS).is_err(), "{f} should be rejected");
        }
    }

    #[test]
    fn like_as_a_regular_expression_agrees_with_like() {
        for (p, t) in [
            ("%abc%", "xxabcxx"),
            ("a_c", "abc"),
            ("a_c", "abbc"),
            ("A%", "abc"),
            ("%.*%", "a.*b"),
            ("%.*%", "ab"),
            ("%(x)%", "y(x)"),
            ("é_", "éa"),
            ("%\"a\"%", "{\"a\": 1}"),
            ("%", "line\nbreak"),
            ("%%", ""),
            ("a%", "ba"),
            ("%a", "ab"),
            ("%a_", "xab"),
            ("_%", ""),
        ] {
            for ci in [false, true] {
                assert_eq!(
                    like_regex(p, ci).is_match(t),
                    like(p, t, ci),
                    "{p} {t} {ci}"
                );
            }
        }
    }

    #[test]
    fn span_clauses_and_rlike_in_trace_filters() {
        let c = parse_filter(
            "span.name = 'llm' AND span.attributes.`my.key` RLIKE '^a' AND trace.text ILIKE '%x%'",
            &TRACES,
        )
        .unwrap();
        assert_eq!((c[0].kind, c[0].key.as_str()), (Kind::Span, "name"));
        assert_eq!(
            (c[1].kind, c[1].key.as_str(), c[1].comparator),
            (Kind::Span, "attributes.my.key", Comparator::RLike)
        );
        assert_eq!((c[2].kind, c[2].key.as_str()), (Kind::Span, "content"));
        assert!(matches(
            &parse_filter("tags.t RLIKE 'b+c$'", &TRACES).unwrap()[0],
            Some(Field::Str("abbc"))
        ));
        assert!(!matches(
            &parse_filter("tags.t RLIKE '^b'", &TRACES).unwrap()[0],
            Some(Field::Str("abc"))
        ));
        for bad in [
            "span.content = 'x'",
            "span.duration = 'x'",
            "span.attributes. = 'x'",
            "span.name IS NULL",
            "trace.text = 'x'",
            "text LIKE '%x%'",
            "tags.t RLIKE '('",
            "timestamp_ms RLIKE '1'",
        ] {
            assert!(parse_filter(bad, &TRACES).is_err(), "{bad}");
        }
        assert!(parse_filter("tags.t RLIKE 'a'", &RUNS).is_err());
        assert!(parse_order_by(&["span.name".into()], &TRACES).is_err());
    }

    #[test]
    fn like_handles_wildcards_and_case() {
        assert!(like("%abc%", "xxabcxx", false));
        assert!(like("a_c", "abc", false));
        assert!(!like("a_c", "abbc", false));
        assert!(like("A%", "abc", true));
        assert!(!like("A%", "abc", false));
        assert!(like("%", "", false));
        assert!(like("%a%b%", "zzazzbzz", false));
    }

    #[test]
    fn missing_values_sort_last_in_both_directions() {
        let n = |x| Some(Field::Num(x));
        assert_eq!(compare_fields(None, n(1.0), true), Ordering::Greater);
        assert_eq!(compare_fields(None, n(1.0), false), Ordering::Greater);
        assert_eq!(compare_fields(n(1.0), n(2.0), false), Ordering::Greater);
        assert_eq!(compare_fields(n(f64::NAN), n(2.0), true), Ordering::Greater);
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_rejected() {
        for off in [0, 1, 99, 12345] {
            assert_eq!(decode_page_token(&encode_page_token(off)).unwrap(), off);
        }
        assert!(decode_page_token("!!!").is_err());
        assert!(decode_page_token(&b64_encode(b"[1]")).is_err());
    }
}
