//! MLflow 3's human labeling: label schemas (the questions reviewers answer about a trace) and
//! review queues (traces handed to reviewers, each with a review status). On the change log as
//! `genai_objects` rows: kind `label_schema` (parent the experiment, name the schema's name),
//! `review_queue` (parent the experiment, name the queue's name case-folded, as MLflow keeps
//! queue names unique) and `review_item` (parent the queue, name the trace ID). Each document
//! is the object in MLflow's JSON.
//!
//! Every experiment has a protected default question ("Feedback", free text). MLflow writes it
//! the first time an experiment's schemas are listed; tandem derives it from the experiment
//! instead (ID `ls-default-<experiment ID>`), so a read never writes and a standby region
//! answers it too.

use super::tracking::live_experiment;
use super::{missing, python_float, python_repr, python_repr_list, wrong_type, Ctx, Req};
use crate::store::queries;
use crate::store::{Decision, Tx};
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Op, Result};

const LABEL_SCHEMA: &str = "label_schema";
const REVIEW_QUEUE: &str = "review_queue";
const REVIEW_ITEM: &str = "review_item";

const DEFAULT_SCHEMA_NAME: &str = "Feedback";
const DEFAULT_SCHEMA_INSTRUCTION: &str = "Share any feedback on this trace.";
const DEFAULT_SCHEMA_PREFIX: &str = "ls-default-";

/// MLflow's limits (mlflow/genai/label_schemas/validation.py, review_queues/validation.py).
const NAME_MAX: usize = 250;
const INSTRUCTION_MAX: usize = 1000;
const LABEL_MAX: usize = 64;
const OPTIONS_MAX: usize = 10;
const USER_MAX: usize = 250;
const SCHEMA_ID_MAX: usize = 36;
const ITEM_ID_MAX: usize = 50;
const MAX_ASSIGNED_USERS: usize = 10;
const RESERVED_QUEUE_NAME: &str = "default";
/// MLflow's `SEARCH_MAX_RESULTS_THRESHOLD` and `SEARCH_MAX_RESULTS_DEFAULT`.
const MAX_RESULTS: i64 = 50_000;
const QUEUES_DEFAULT: i64 = 1000;
const SCHEMAS_DEFAULT: i64 = 100;

const SCHEMA_TYPES: &[&str] = &["LABEL_SCHEMA_TYPE_UNSPECIFIED", "FEEDBACK", "EXPECTATION"];
const QUEUE_TYPES: &[&str] = &["REVIEW_QUEUE_TYPE_UNSPECIFIED", "USER", "CUSTOM"];
const ITEM_TYPES: &[&str] = &["REVIEW_ITEM_TYPE_UNSPECIFIED", "TRACE"];
const STATUSES: &[&str] = &[
    "REVIEW_STATUS_UNSPECIFIED",
    "PENDING",
    "COMPLETE",
    "DECLINED",
];

fn invalid(message: String) -> MlflowError {
    MlflowError::invalid(message)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A protobuf enum field given by name or number: its number (0 when absent). An unknown name
/// or number fails protobuf's parsing, which MLflow answers as a value of the wrong type.
fn enum_number(req: &Req, key: &str, names: &[&str]) -> Result<usize> {
    let Some(v) = req.0.get(key).filter(|v| !v.is_null()) else {
        return Ok(0);
    };
    let n = match v {
        Json::String(s) => names
            .iter()
            .position(|n| n == s)
            .or_else(|| s.parse::<usize>().ok()),
        Json::Number(n) => n.as_u64().map(|n| n as usize),
        _ => None,
    };
    match n {
        Some(n) if n < names.len() => Ok(n),
        _ => Err(wrong_type(key, v)),
    }
}

/// `max_results` as these handlers check it: an integer from 1 to 50,000.
fn max_results(req: &Req, default: i64) -> Result<usize> {
    let n = req.opt_i64("max_results")?.unwrap_or(default);
    if !(1..=MAX_RESULTS).contains(&n) {
        return Err(invalid(format!(
            "max_results must be between 1 and {MAX_RESULTS}. See the API docs for more information about request parameters."
        )));
    }
    Ok(n as usize)
}

fn put(kind: &str, id: &str, parent: &str, name: &str, doc: &Json, time: i64) -> Op {
    Op::PutGenaiObject {
        kind: kind.into(),
        id: id.into(),
        parent: Some(parent.into()),
        name: Some(name.into()),
        doc: doc.to_string(),
        time,
    }
}

fn delete(kind: &str, id: &str, time: i64) -> Op {
    Op::DeleteGenaiObject {
        kind: kind.into(),
        id: id.into(),
        time,
    }
}

fn text(doc: &Json, key: &str) -> String {
    doc[key].as_str().unwrap_or_default().to_owned()
}

// ---- label schemas ----

/// The experiment's protected default question (see the module's note).
fn default_schema(experiment: &Json) -> Json {
    let id = text(experiment, "experiment_id");
    let created = experiment["creation_time"].as_i64().unwrap_or(0);
    json!({
        "schema_id": format!("{DEFAULT_SCHEMA_PREFIX}{id}"),
        "experiment_id": id,
        "name": DEFAULT_SCHEMA_NAME,
        "type": "FEEDBACK",
        "input": { "text": {} },
        "instruction": DEFAULT_SCHEMA_INSTRUCTION,
        "enable_comment": false,
        "created_at": created,
        "last_updated_at": created,
        "is_default": true,
    })
}

/// A label schema by ID, the default question included.
fn load_schema(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Option<Json>> {
    if let Some(experiment_id) = id.strip_prefix(DEFAULT_SCHEMA_PREFIX) {
        return Ok(queries::experiment(tx, ws, experiment_id)?.map(|e| default_schema(&e)));
    }
    queries::genai_object(tx, ws, LABEL_SCHEMA, id)
}

fn schema_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Label schema with id '{id}' not found."))
}

fn schema_exists(name: &str, experiment_id: &str) -> MlflowError {
    MlflowError::exists(format!(
        "Label schema with name '{name}' already exists for experiment '{experiment_id}'."
    ))
}

/// The `input` oneof as protobuf parses it: exactly one variant, its fields typed.
fn parse_input(input: Option<&Req>) -> Result<Json> {
    let empty = Req::default();
    let input = input.unwrap_or(&empty);
    let variants: Vec<&str> = ["pass_fail", "categorical", "numeric", "text"]
        .into_iter()
        .filter(|k| input.has(k))
        .collect();
    match variants.as_slice() {
        [] => Err(invalid(
            "Label schema `input` must have exactly one of `pass_fail`, `categorical`, \
             `numeric`, or `text` set; got an empty oneof."
                .into(),
        )),
        [variant] => {
            let body = input.obj(variant)?.unwrap_or(&empty);
            let mut out = serde_json::Map::new();
            match *variant {
                "pass_fail" => {
                    for key in ["positive_label", "negative_label"] {
                        out.insert(key.into(), body.opt_str(key)?.unwrap_or_default().into());
                    }
                }
                "categorical" => {
                    out.insert("options".into(), json!(body.str_list("options")?));
                    out.insert(
                        "multi_select".into(),
                        body.opt_bool("multi_select")?.unwrap_or(false).into(),
                    );
                }
                "numeric" => {
                    for key in ["min_value", "max_value"] {
                        if let Some(v) = body.opt_f64(key)? {
                            out.insert(key.into(), v.to_json());
                        }
                    }
                }
                _ => {
                    if let Some(n) = body.opt_i64("max_length")? {
                        out.insert("max_length".into(), n.into());
                    }
                }
            }
            Ok(json!({ *variant: out }))
        }
        _ => Err(invalid(format!(
            "Label schema `input` must have exactly one of `pass_fail`, `categorical`, \
             `numeric`, or `text` set; got {}.",
            variants.join(", ")
        ))),
    }
}

/// MLflow's checks of an input's values (`_validate_input`).
fn validate_input(input: &Json) -> Result<()> {
    if let Some(p) = input.get("pass_fail") {
        for key in ["positive_label", "negative_label"] {
            let label = p[key].as_str().unwrap_or_default();
            non_empty(label, &format!("InputPassFail.{key}"), LABEL_MAX)?;
        }
        if p["positive_label"] == p["negative_label"] {
            return Err(invalid(format!(
                "`InputPassFail.positive_label` and `negative_label` must be distinct; got {} for both.",
                python_repr(p["positive_label"].as_str().unwrap_or_default())
            )));
        }
    } else if let Some(c) = input.get("categorical") {
        let options: Vec<String> = serde_json::from_value(c["options"].clone()).unwrap_or_default();
        if options.is_empty() {
            return Err(invalid(
                "`InputCategorical.options` must be a non-empty list; got [].".into(),
            ));
        }
        if options.len() > OPTIONS_MAX {
            return Err(invalid(format!(
                "`InputCategorical.options` must have at most {OPTIONS_MAX} entries; got {}.",
                options.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for o in &options {
            if o.is_empty() {
                return Err(invalid(format!(
                    "`InputCategorical.options` entries must be non-empty strings; got {}.",
                    python_repr(o)
                )));
            }
            if chars(o) > LABEL_MAX {
                return Err(invalid(format!(
                    "`InputCategorical.options` entries must be at most {LABEL_MAX} characters; got {} for {}.",
                    chars(o),
                    python_repr(o)
                )));
            }
            if !seen.insert(o.as_str()) {
                return Err(invalid(format!(
                    "`InputCategorical.options` must be deduplicated; {} appears twice.",
                    python_repr(o)
                )));
            }
        }
    } else if let Some(n) = input.get("numeric") {
        if let (Some(min), Some(max)) = (n["min_value"].as_f64(), n["max_value"].as_f64()) {
            if min >= max {
                return Err(invalid(format!(
                    "`InputNumeric.min_value` must be strictly less than `max_value`; got min={}, max={}.",
                    python_float(min),
                    python_float(max)
                )));
            }
        }
    } else if let Some(t) = input.get("text") {
        if let Some(n) = t["max_length"].as_i64() {
            if n < 1 {
                return Err(invalid(format!(
                    "`InputText.max_length` must be at least 1; got {n}."
                )));
            }
        }
    }
    Ok(())
}

fn validate_schema_name(name: &str) -> Result<()> {
    if chars(name) > NAME_MAX {
        return Err(invalid(format!(
            "Label schema `name` must be at most {NAME_MAX} characters; got {}.",
            chars(name)
        )));
    }
    if name.trim().to_lowercase() == DEFAULT_SCHEMA_NAME.to_lowercase() {
        return Err(invalid(format!(
            "`{name}` is reserved for the experiment's default question and cannot be used for another label schema."
        )));
    }
    Ok(())
}

fn validate_instruction(instruction: Option<&str>) -> Result<()> {
    match instruction {
        Some(i) if chars(i) > INSTRUCTION_MAX => Err(invalid(format!(
            "Label schema `instruction` must be at most {INSTRUCTION_MAX} characters; got {}.",
            chars(i)
        ))),
        _ => Ok(()),
    }
}

fn input_variant(input: &Json) -> &str {
    input
        .as_object()
        .and_then(|m| m.keys().next())
        .map_or("", String::as_str)
}

fn variant_class(variant: &str) -> &'static str {
    match variant {
        "pass_fail" => "InputPassFail",
        "categorical" => "InputCategorical",
        "numeric" => "InputNumeric",
        _ => "InputText",
    }
}

/// `POST mlflow/label-schemas/create` (CreateLabelSchema).
pub fn create_label_schema(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = req.str("name")?;
    let schema_type = match enum_number(req, "type", SCHEMA_TYPES)? {
        0 => return Err(invalid(
            "Label schema `type` must be one of FEEDBACK or EXPECTATION; got proto enum value 0."
                .into(),
        )),
        n => SCHEMA_TYPES[n],
    };
    let input = parse_input(req.obj("input")?)?;
    let instruction = req.opt_str("instruction")?;
    let enable_comment = req.opt_bool("enable_comment")?.unwrap_or(false);
    validate_schema_name(&name)?;
    validate_instruction(instruction.as_deref())?;
    validate_input(&input)?;
    let time = ctx.now();
    let id = format!("ls-{}", crate::otlp::hex(&super::random_bytes::<16>()));
    let mut doc = json!({
        "schema_id": id,
        "experiment_id": experiment_id,
        "name": name,
        "type": schema_type,
        "input": input,
        "enable_comment": enable_comment,
        "created_at": time,
        "last_updated_at": time,
        "is_default": false,
    });
    if let Some(i) = instruction {
        doc["instruction"] = i.into();
    }
    ctx.write(|tx| {
        live_experiment(tx, &ctx.workspace, &experiment_id)?;
        if queries::genai_object_named(tx, &ctx.workspace, LABEL_SCHEMA, &experiment_id, &name)?
            .is_some()
        {
            return Err(schema_exists(&name, &experiment_id).into());
        }
        let op = put(LABEL_SCHEMA, &id, &experiment_id, &name, &doc, time);
        Ok(Decision::change((), op))
    })?;
    Ok(json!({ "label_schema": doc }))
}

/// `GET mlflow/label-schemas/get` (GetLabelSchema).
pub fn get_label_schema(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("schema_id")?;
    let doc = ctx
        .read(|tx| load_schema(tx, &ctx.workspace, &id))?
        .ok_or_else(|| schema_not_found(&id))?;
    Ok(json!({ "label_schema": doc }))
}

/// `GET mlflow/label-schemas/get-by-name` (GetLabelSchemaByName).
pub fn get_label_schema_by_name(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = req.str("name")?;
    let doc = ctx.read(|tx| {
        let e = live_experiment(tx, &ctx.workspace, &experiment_id)?;
        if name == DEFAULT_SCHEMA_NAME {
            return Ok(Some(default_schema(&e)));
        }
        queries::genai_object_named(tx, &ctx.workspace, LABEL_SCHEMA, &experiment_id, &name)
    })?;
    let doc = doc.ok_or_else(|| {
        MlflowError::not_found(format!(
            "Label schema with name '{name}' not found for experiment '{experiment_id}'."
        ))
    })?;
    Ok(json!({ "label_schema": doc }))
}

/// `GET mlflow/label-schemas/list` (ListLabelSchemas): newest first, the default question
/// among them.
pub fn list_label_schemas(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let max = max_results(req, SCHEMAS_DEFAULT)?;
    let offset = req.page_offset()?;
    let mut docs = ctx.read(|tx| {
        let e = live_experiment(tx, &ctx.workspace, &experiment_id)?;
        let mut docs =
            queries::genai_objects_under(tx, &ctx.workspace, LABEL_SCHEMA, &experiment_id)?;
        docs.push(default_schema(&e));
        Ok(docs)
    })?;
    docs.sort_by(|a, b| {
        b["created_at"]
            .as_i64()
            .cmp(&a["created_at"].as_i64())
            .then_with(|| a["schema_id"].as_str().cmp(&b["schema_id"].as_str()))
    });
    let (page, next) = super::page(docs, offset, max);
    Ok(json!({ "label_schemas": page, "next_page_token": next.unwrap_or_default() }))
}

/// `PATCH mlflow/label-schemas/update` (UpdateLabelSchema): the fields given; the type, the
/// input's variant and a categorical's `multi_select` are fixed at creation.
pub fn update_label_schema(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("schema_id")?;
    let name = req.opt_str("name")?;
    let instruction = req.opt_str("instruction")?;
    let enable_comment = req.opt_bool("enable_comment")?;
    let input = match req.has("input") {
        true => Some(parse_input(req.obj("input")?)?),
        false => None,
    };
    let time = ctx.now();
    let doc = ctx.write(|tx| {
        let mut doc = load_schema(tx, &ctx.workspace, &id)?.ok_or_else(|| schema_not_found(&id))?;
        if doc["is_default"] == true {
            return Err(invalid("The experiment's default question cannot be edited.".into()).into());
        }
        if let Some(n) = &name {
            if n.is_empty() {
                return Err(invalid(
                    "Label schema `name` must be a non-empty string; got ''.".into(),
                )
                .into());
            }
            validate_schema_name(n)?;
        }
        validate_instruction(instruction.as_deref())?;
        if let Some(new) = &input {
            validate_input(new)?;
            let (old_variant, new_variant) = (input_variant(&doc["input"]), input_variant(new));
            if old_variant != new_variant {
                return Err(invalid(format!(
                    "A label schema's input type cannot be changed after creation (existing: {}, got: {}).",
                    variant_class(old_variant),
                    variant_class(new_variant)
                ))
                .into());
            }
            if new_variant == "categorical"
                && new["categorical"]["multi_select"] != doc["input"]["categorical"]["multi_select"]
            {
                return Err(invalid(
                    "`InputCategorical.multi_select` cannot be changed after creation.".into(),
                )
                .into());
            }
        }
        let experiment_id = text(&doc, "experiment_id");
        if let Some(n) = &name {
            if doc["name"] != n.as_str() {
                if queries::genai_object_named(tx, &ctx.workspace, LABEL_SCHEMA, &experiment_id, n)?
                    .is_some()
                {
                    return Err(schema_exists(n, &experiment_id).into());
                }
                doc["name"] = n.as_str().into();
            }
        }
        if let Some(i) = &instruction {
            doc["instruction"] = i.as_str().into();
        }
        if let Some(c) = enable_comment {
            doc["enable_comment"] = c.into();
        }
        if let Some(new) = &input {
            doc["input"] = new.clone();
        }
        doc["last_updated_at"] = time.into();
        let op = put(LABEL_SCHEMA, &id, &experiment_id, &text(&doc, "name"), &doc, time);
        Ok(Decision::change(doc, op))
    })?;
    Ok(json!({ "label_schema": doc }))
}

/// `DELETE mlflow/label-schemas/delete` (DeleteLabelSchema): an unknown ID is a no-op, as in
/// MLflow; assessments named after the schema keep their values.
pub fn delete_label_schema(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("schema_id")?;
    let time = ctx.now();
    ctx.write(|tx| match load_schema(tx, &ctx.workspace, &id)? {
        None => Ok(Decision::no_change(())),
        Some(d) if d["is_default"] == true => {
            Err(invalid("The experiment's default question cannot be deleted.".into()).into())
        }
        Some(_) => Ok(Decision::change((), delete(LABEL_SCHEMA, &id, time))),
    })?;
    Ok(json!({}))
}

// ---- review queues ----

fn queue_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Review queue with id '{id}' not found."))
}

fn queue_exists(name: &str) -> MlflowError {
    MlflowError::exists(format!(
        "Review queue with name '{name}' already exists (names are case-insensitive)."
    ))
}

fn non_empty(value: &str, field: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(format!(
            "`{field}` must be a non-empty string; got {}.",
            python_repr(value)
        )));
    }
    if chars(value) > max {
        return Err(invalid(format!(
            "`{field}` must be at most {max} characters; got {}.",
            chars(value)
        )));
    }
    Ok(())
}

fn normalize_user(user: &str) -> String {
    user.trim().to_lowercase()
}

fn dedup(values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

fn normalize_users(users: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for u in users {
        let u = normalize_user(u);
        non_empty(&u, "user", USER_MAX)?;
        out.push(u);
    }
    let out = dedup(out);
    if out.len() > MAX_ASSIGNED_USERS {
        return Err(invalid(format!(
            "A review queue can have at most {MAX_ASSIGNED_USERS} assigned users; got {}.",
            out.len()
        )));
    }
    Ok(out)
}

fn normalize_schema_ids(ids: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        let id = id.trim().to_owned();
        non_empty(&id, "schema_id", SCHEMA_ID_MAX)?;
        out.push(id);
    }
    Ok(dedup(out))
}

fn custom_queue_name(name: &str) -> Result<String> {
    let name = name.trim();
    non_empty(name, "name", NAME_MAX)?;
    if name.to_lowercase() == RESERVED_QUEUE_NAME {
        return Err(invalid(format!(
            "`{name}` is a reserved queue name and cannot be used for a custom queue."
        )));
    }
    Ok(name.to_owned())
}

fn item_ids(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(invalid(
            "`item_ids` must be a non-empty list; got [].".into(),
        ));
    }
    let mut out = Vec::new();
    for id in raw {
        let id = id.trim().to_owned();
        non_empty(&id, "item_id", ITEM_ID_MAX)?;
        out.push(id);
    }
    Ok(dedup(out))
}

/// Schema IDs that are not questions of the experiment (the default question is one).
fn check_schema_ids(
    tx: &mut dyn Tx,
    ws: &str,
    experiment_id: &str,
    ids: &[String],
) -> crate::store::Result<()> {
    let mut missing = Vec::new();
    for id in ids {
        let found = match id.strip_prefix(DEFAULT_SCHEMA_PREFIX) {
            Some(e) => e == experiment_id,
            None => queries::genai_object(tx, ws, LABEL_SCHEMA, id)?
                .is_some_and(|d| d["experiment_id"] == experiment_id),
        };
        if !found {
            missing.push(id.clone());
        }
    }
    if !missing.is_empty() {
        return Err(invalid(format!(
            "Label schema id(s) {} not found for experiment '{experiment_id}'.",
            python_repr_list(&missing)
        ))
        .into());
    }
    Ok(())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

struct NewQueue {
    experiment_id: String,
    name: String,
    user_queue: bool,
    created_by: Option<String>,
    users: Vec<String>,
    schema_ids: Vec<String>,
}

/// MLflow's `validate_queue_for_create`: a user queue is named after its one user and has no
/// schemas of its own (it asks all of the experiment's); a custom queue has any name but a
/// reserved one.
fn validate_new_queue(
    experiment_id: String,
    name: &str,
    user_queue: bool,
    created_by: Option<String>,
    users: &[String],
    schema_ids: &[String],
) -> Result<NewQueue> {
    let mut users = normalize_users(users)?;
    let schema_ids = normalize_schema_ids(schema_ids)?;
    let name = if user_queue {
        let name = normalize_user(name);
        non_empty(&name, "name", NAME_MAX)?;
        if users.is_empty() {
            users = vec![name.clone()];
        } else if users != [name.clone()] {
            return Err(invalid(format!(
                "A user queue must have exactly one assigned user equal to its name; got name={} and users={}.",
                python_repr(&name),
                python_repr_list(&users)
            )));
        }
        if !schema_ids.is_empty() {
            return Err(invalid("A user queue cannot have explicitly-attached schemas; it resolves to all of the experiment's label schemas.".into()));
        }
        name
    } else {
        custom_queue_name(name)?
    };
    Ok(NewQueue {
        experiment_id,
        name,
        user_queue,
        created_by,
        users,
        schema_ids,
    })
}

/// Stores a new queue in the current transaction; a taken name (case-insensitively) is
/// `Err(Some(existing))` so get-or-create can answer with it.
fn insert_queue(
    tx: &mut dyn Tx,
    ws: &str,
    q: &NewQueue,
    time: i64,
) -> crate::store::Result<std::result::Result<(Json, Op), Json>> {
    live_experiment(tx, ws, &q.experiment_id)?;
    check_schema_ids(tx, ws, &q.experiment_id, &q.schema_ids)?;
    let key = q.name.to_lowercase();
    if let Some(existing) =
        queries::genai_object_named(tx, ws, REVIEW_QUEUE, &q.experiment_id, &key)?
    {
        return Ok(Err(existing));
    }
    let id = format!("rq-{}", crate::otlp::hex(&super::random_bytes::<16>()));
    let mut doc = json!({
        "queue_id": id,
        "experiment_id": q.experiment_id,
        "name": q.name,
        "queue_type": if q.user_queue { "USER" } else { "CUSTOM" },
        "creation_time_ms": time,
        "last_update_time_ms": time,
        "users": sorted(q.users.clone()),
        "schema_ids": sorted(q.schema_ids.clone()),
    });
    if let Some(by) = &q.created_by {
        doc["created_by"] = by.as_str().into();
    }
    let op = put(REVIEW_QUEUE, &id, &q.experiment_id, &key, &doc, time);
    Ok(Ok((doc, op)))
}

/// `POST mlflow/review-queues/create` (CreateReviewQueue): the owner is the authenticated
/// user, never a value from the client (unset with authentication off, as in MLflow).
pub fn create_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = req.str("name")?;
    let user_queue = match enum_number(req, "queue_type", QUEUE_TYPES)? {
        0 => {
            return Err(invalid(
                "`queue_type` must be one of USER or CUSTOM; got proto enum value 0.".into(),
            ))
        }
        n => n == 1,
    };
    let created_by = ctx.authenticated.then(|| ctx.principal.clone());
    let q = validate_new_queue(
        experiment_id,
        &name,
        user_queue,
        created_by,
        &req.str_list("users")?,
        &req.str_list("schema_ids")?,
    )?;
    let time = ctx.now();
    let doc = ctx.write(|tx| match insert_queue(tx, &ctx.workspace, &q, time)? {
        Ok((doc, op)) => Ok(Decision::change(doc, op)),
        Err(_) => Err(queue_exists(&q.name).into()),
    })?;
    Ok(json!({ "review_queue": doc }))
}

/// `POST mlflow/review-queues/get-or-create-user` (GetOrCreateUserQueue): the user's own
/// queue, created on first use.
pub fn get_or_create_user_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let user = req.str("user")?;
    let name = normalize_user(&user);
    let q = validate_new_queue(experiment_id, &name, true, Some(name.clone()), &[], &[])?;
    let time = ctx.now();
    let doc = ctx.write(|tx| match insert_queue(tx, &ctx.workspace, &q, time)? {
        Ok((doc, op)) => Ok(Decision::change(doc, op)),
        Err(existing) if existing["queue_type"] == "USER" => Ok(Decision::no_change(existing)),
        Err(_) => Err(MlflowError::exists(format!(
            "A non-user queue named '{name}' already exists; cannot get-or-create a user queue with that name."
        ))
        .into()),
    })?;
    Ok(json!({ "review_queue": doc }))
}

fn load_queue(tx: &mut dyn Tx, ws: &str, id: &str) -> crate::store::Result<Json> {
    queries::genai_object(tx, ws, REVIEW_QUEUE, id)?.ok_or_else(|| queue_not_found(id).into())
}

/// `GET mlflow/review-queues/get` (GetReviewQueue).
pub fn get_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let doc = ctx.read(|tx| load_queue(tx, &ctx.workspace, &id))?;
    Ok(json!({ "review_queue": doc }))
}

/// `GET mlflow/review-queues/get-by-name` (GetReviewQueueByName): case-insensitively.
pub fn get_review_queue_by_name(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let name = req.str("name")?;
    let doc = ctx.read(|tx| {
        live_experiment(tx, &ctx.workspace, &experiment_id)?;
        queries::genai_object_named(
            tx,
            &ctx.workspace,
            REVIEW_QUEUE,
            &experiment_id,
            &name.to_lowercase(),
        )
    })?;
    let doc = doc.ok_or_else(|| {
        MlflowError::not_found(format!(
            "Review queue with name '{name}' not found for experiment '{experiment_id}'."
        ))
    })?;
    Ok(json!({ "review_queue": doc }))
}

fn newest_first(docs: &mut [Json], id_key: &str) {
    docs.sort_by(|a, b| {
        b["creation_time_ms"]
            .as_i64()
            .cmp(&a["creation_time_ms"].as_i64())
            .then_with(|| a[id_key].as_str().cmp(&b[id_key].as_str()))
    });
}

/// `GET mlflow/review-queues/list` (ListReviewQueues): an experiment's queues, newest first;
/// only those a user is assigned to, or those holding an item, when asked.
pub fn list_review_queues(ctx: &Ctx, req: &Req) -> Result<Json> {
    let experiment_id = req.str("experiment_id")?;
    let max = max_results(req, QUEUES_DEFAULT)?;
    let offset = req.page_offset()?;
    let user = req.opt_str("user")?.map(|u| normalize_user(&u));
    let item_id = req.opt_str("item_id")?;
    let mut docs = ctx.read(|tx| {
        live_experiment(tx, &ctx.workspace, &experiment_id)?;
        let mut out = Vec::new();
        for d in queries::genai_objects_under(tx, &ctx.workspace, REVIEW_QUEUE, &experiment_id)? {
            if let Some(u) = &user {
                if !d["users"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == u.as_str()))
                {
                    continue;
                }
            }
            if let Some(item) = &item_id {
                let id = format!("{}/{item}", text(&d, "queue_id"));
                if queries::genai_object(tx, &ctx.workspace, REVIEW_ITEM, &id)?.is_none() {
                    continue;
                }
            }
            out.push(d);
        }
        Ok(out)
    })?;
    newest_first(&mut docs, "queue_id");
    let (page, next) = super::page(docs, offset, max);
    Ok(json!({ "review_queues": page, "next_page_token": next.unwrap_or_default() }))
}

/// `POST mlflow/review-queues/update` (UpdateReviewQueue): users and schemas (each with its
/// `update_*` flag), name and owner of a custom queue. A queue's questions are fixed once it
/// has items.
pub fn update_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let users = match req.opt_bool("update_users")?.unwrap_or(false) {
        true => Some(req.str_list("users")?),
        false => None,
    };
    let schema_ids = match req.opt_bool("update_schema_ids")?.unwrap_or(false) {
        true => Some(req.str_list("schema_ids")?),
        false => None,
    };
    let name = req.opt_str("name")?;
    let new_owner = req.opt_str("new_owner")?;
    let time = ctx.now();
    let doc = ctx.write(|tx| {
        let mut doc = load_queue(tx, &ctx.workspace, &id)?;
        if doc["queue_type"] == "USER" {
            return Err(invalid("A user queue's name, assigned user, schemas, and owner are fixed and cannot be updated.".into()).into());
        }
        if users.is_none() && schema_ids.is_none() && name.is_none() && new_owner.is_none() {
            return Ok(Decision::no_change(doc));
        }
        if let Some(owner) = &new_owner {
            let owner = owner.trim();
            non_empty(owner, "new_owner", USER_MAX)?;
            doc["created_by"] = owner.into();
        }
        let experiment_id = text(&doc, "experiment_id");
        let mut renamed = None;
        if let Some(n) = &name {
            let n = custom_queue_name(n)?;
            if doc["name"] != n.as_str() {
                if text(&doc, "name").to_lowercase() != n.to_lowercase() {
                    renamed = Some(n.clone());
                }
                doc["name"] = n.into();
            }
        }
        if let Some(u) = &users {
            doc["users"] = json!(sorted(normalize_users(u)?));
        }
        if let Some(s) = &schema_ids {
            let items = queries::genai_objects_under(tx, &ctx.workspace, REVIEW_ITEM, &id)?;
            if !items.is_empty() {
                return Err(invalid("A review queue's questions are locked once items are assigned to it. Remove the items before changing its questions.".into()).into());
            }
            let s = normalize_schema_ids(s)?;
            check_schema_ids(tx, &ctx.workspace, &experiment_id, &s)?;
            doc["schema_ids"] = json!(sorted(s));
        }
        let key = text(&doc, "name").to_lowercase();
        if let Some(n) = renamed {
            if queries::genai_object_named(tx, &ctx.workspace, REVIEW_QUEUE, &experiment_id, &key)?
                .is_some()
            {
                return Err(queue_exists(&n).into());
            }
        }
        doc["last_update_time_ms"] = time.into();
        let op = put(REVIEW_QUEUE, &id, &experiment_id, &key, &doc, time);
        Ok(Decision::change(doc, op))
    })?;
    Ok(json!({ "review_queue": doc }))
}

/// `POST mlflow/review-queues/delete` (DeleteReviewQueue): with its items; an unknown ID is a
/// no-op. Reviewers' assessments stay on their traces.
pub fn delete_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        if queries::genai_object(tx, &ctx.workspace, REVIEW_QUEUE, &id)?.is_none() {
            return Ok(Decision::no_change(()));
        }
        let mut ops: Vec<Op> = queries::genai_objects_under(tx, &ctx.workspace, REVIEW_ITEM, &id)?
            .iter()
            .map(|item| {
                delete(
                    REVIEW_ITEM,
                    &format!("{id}/{}", text(item, "item_id")),
                    time,
                )
            })
            .collect();
        ops.push(delete(REVIEW_QUEUE, &id, time));
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

/// `POST mlflow/review-queues/items/add` (AddItemsToReviewQueue): traces of the queue's
/// experiment, pending; one already in the queue keeps its status.
pub fn add_items_to_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let ids = item_ids(&req.str_list("item_ids")?)?;
    match enum_number(req, "item_type", ITEM_TYPES)? {
        0 | 1 => {}
        n => {
            return Err(invalid(format!(
                "`item_type` must be TRACE; got proto enum value {n}."
            )))
        }
    }
    let time = ctx.now();
    let items = ctx.write(|tx| {
        let queue = load_queue(tx, &ctx.workspace, &id)?;
        let experiment_id = text(&queue, "experiment_id");
        let mut foreign = Vec::new();
        for t in &ids {
            let row = tx.query_one(
                "SELECT experiment_id FROM traces WHERE workspace = ? AND trace_id = ? AND deleted_time IS NULL",
                &[ctx.workspace.as_str().into(), t.as_str().into()],
            )?;
            if row.is_none_or(|r| r.text(0) != experiment_id) {
                foreign.push(t.clone());
            }
        }
        if !foreign.is_empty() {
            return Err(MlflowError::not_found(format!(
                "Cannot attach trace(s) {} to review queue '{id}': they do not exist in experiment '{experiment_id}'.",
                python_repr_list(&foreign)
            ))
            .into());
        }
        let mut items = Vec::new();
        let mut ops = Vec::new();
        for t in &ids {
            let key = format!("{id}/{t}");
            match queries::genai_object(tx, &ctx.workspace, REVIEW_ITEM, &key)? {
                Some(existing) => items.push(existing),
                None => {
                    let doc = json!({
                        "queue_id": id,
                        "item_type": "TRACE",
                        "item_id": t,
                        "status": "PENDING",
                        "creation_time_ms": time,
                        "last_update_time_ms": time,
                    });
                    ops.push(put(REVIEW_ITEM, &key, &id, t, &doc, time));
                    items.push(doc);
                }
            }
        }
        Ok(Decision::changes(items, ops))
    })?;
    Ok(json!({ "items": items }))
}

/// `POST mlflow/review-queues/items/remove` (RemoveItemsFromReviewQueue): those in the queue.
pub fn remove_items_from_review_queue(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let ids = item_ids(&req.str_list("item_ids")?)?;
    let time = ctx.now();
    ctx.write(|tx| {
        load_queue(tx, &ctx.workspace, &id)?;
        let mut ops = Vec::new();
        for t in &ids {
            let key = format!("{id}/{t}");
            if queries::genai_object(tx, &ctx.workspace, REVIEW_ITEM, &key)?.is_some() {
                ops.push(delete(REVIEW_ITEM, &key, time));
            }
        }
        Ok(Decision::changes((), ops))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/review-queues/items/list` (ListReviewQueueItems): newest first, of one status
/// when asked.
pub fn list_review_queue_items(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let max = max_results(req, QUEUES_DEFAULT)?;
    let offset = req.page_offset()?;
    let status = match enum_number(req, "status", STATUSES)? {
        0 => None,
        n => Some(STATUSES[n]),
    };
    let mut items = ctx.read(|tx| {
        load_queue(tx, &ctx.workspace, &id)?;
        queries::genai_objects_under(tx, &ctx.workspace, REVIEW_ITEM, &id)
    })?;
    if let Some(s) = status {
        items.retain(|i| i["status"] == s);
    }
    newest_first(&mut items, "item_id");
    let (page, next) = super::page(items, offset, max);
    Ok(json!({ "items": page, "next_page_token": next.unwrap_or_default() }))
}

/// `POST mlflow/review-queues/items/set-status` (SetReviewQueueItemStatus): who completed or
/// declined an item is the authenticated user (the client's `completed_by` with
/// authentication off, as in MLflow); reopening clears it. The same status again changes
/// nothing, so the first reviewer keeps the credit.
pub fn set_review_queue_item_status(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("queue_id")?;
    let item_id = req.str("item_id")?;
    let status = match enum_number(req, "status", STATUSES)? {
        0 => {
            return Err(invalid(format!(
                "`status` must be one of PENDING, COMPLETE, or DECLINED; got proto enum value {}.",
                0
            )))
        }
        n => STATUSES[n],
    };
    let pending = status == "PENDING";
    let completed_by = match ctx.authenticated {
        true => (!pending).then(|| ctx.principal.clone()),
        false => req.opt_str("completed_by")?,
    }
    .map(|u| normalize_user(&u));
    let item_id = item_id.trim().to_owned();
    if pending && completed_by.is_some() {
        return Err(invalid(
            "`completed_by` must not be set when reopening an item to `pending`.".into(),
        ));
    }
    if !pending && completed_by.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "`completed_by` is required when setting status to `{}`.",
            status.to_lowercase()
        )));
    }
    if let Some(by) = &completed_by {
        if chars(by) > USER_MAX {
            return Err(invalid(format!(
                "`completed_by` must be at most {USER_MAX} characters; got {}.",
                chars(by)
            )));
        }
    }
    if item_id.is_empty() {
        return Err(missing("item_id"));
    }
    let time = ctx.now();
    let item = ctx.write(|tx| {
        load_queue(tx, &ctx.workspace, &id)?;
        let key = format!("{id}/{item_id}");
        let mut doc =
            queries::genai_object(tx, &ctx.workspace, REVIEW_ITEM, &key)?.ok_or_else(|| {
                MlflowError::not_found(format!(
                    "Item '{item_id}' is not attached to review queue '{id}'."
                ))
            })?;
        if doc["status"] == status {
            return Ok(Decision::no_change(doc));
        }
        let m = doc.as_object_mut().expect("an item is an object");
        m.insert("status".into(), status.into());
        m.insert("last_update_time_ms".into(), time.into());
        match &completed_by {
            Some(by) if !pending => {
                m.insert("completed_by".into(), by.as_str().into());
                m.insert("completed_time_ms".into(), time.into());
            }
            _ => {
                m.remove("completed_by");
                m.remove("completed_time_ms");
            }
        }
        let op = put(REVIEW_ITEM, &key, &id, &item_id, &doc, time);
        Ok(Decision::change(doc, op))
    })?;
    Ok(json!({ "item": item }))
}
