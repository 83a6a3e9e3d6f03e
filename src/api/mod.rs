//! MLflow's REST API (and tandem's own `/api/tandem/v1`), independent of the HTTP library:
//! a handler takes a request context and a JSON request, and returns a JSON answer or an
//! MLflow error. The HTTP edge (`crate::http`) only routes, reads bodies and writes answers.
//!
//! Architecture invariant: handlers validate everything before they call `Store::write`, and
//! change state only through it.

pub mod access;
pub mod assessments;
pub mod assets;
pub mod changes;
pub mod datasets;
pub mod gateway;
pub mod graphql;
pub mod issues;
pub mod jobs;
pub mod labeling;
pub mod logged_models;
pub mod mlflow_auth;
pub mod registry;
pub mod retention;
pub mod scorers;
pub mod secrets;
pub mod span_filter;
pub mod trace_metrics;
pub mod traces;
pub mod tracking;
pub mod workspaces;

use crate::artifacts::Artifacts;
use crate::store::{self, Store};
use serde_json::{Map, Value as Json};
use tandem_core::event::KeyValue;
use tandem_core::{MlflowError, Result, F64};

/// What every handler gets: where to read and write, on whose behalf, in which workspace.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub artifacts: Artifacts,
    pub workspace: String,
    pub principal: String,
    /// Every read and write of this request first checks, in its own transaction, that the
    /// workspace is live (ordinary requests); workspace administration checks for itself.
    pub require_live: bool,
    /// Whether `principal` was verified (authentication on) or only claimed by the client
    /// (authentication off): MLflow binds review attribution to the verified user only.
    pub authenticated: bool,
    /// The compute targets jobs may name (this region's; in a deployment, every region's).
    pub compute: std::sync::Arc<[crate::jobs::ComputeTarget]>,
    /// The vault's master key and keyring (None: this process has none, and secrets are
    /// refused).
    pub vault: Option<std::sync::Arc<crate::vault::Keyring>>,
}

impl Ctx {
    pub fn write<T: Send>(
        &self,
        decide: impl FnMut(&mut dyn store::Tx) -> store::Result<store::Decision<T>> + Send,
    ) -> Result<T> {
        match self.require_live {
            true => self
                .store
                .write_live(&self.workspace, &self.principal, decide),
            false => self.store.write(&self.workspace, &self.principal, decide),
        }
        .map_err(Into::into)
    }
    pub fn read<T>(&self, f: impl FnMut(&mut dyn store::Tx) -> store::Result<T>) -> Result<T> {
        match self.require_live {
            true => self.store.read_live(&self.workspace, f),
            false => self.store.read(f),
        }
        .map_err(Into::into)
    }
    pub fn now(&self) -> i64 {
        self.store.now_ms()
    }
    /// MLflow's ListArtifacts answer for `dir` below an artifact root URI: `{root_uri, files}`
    /// with paths relative to the root. Runs on the blocking pool, like every handler.
    pub fn artifact_listing(&self, root_uri: &str, dir: &str) -> Result<Json> {
        if !dir.is_empty() {
            tandem_core::validate::artifact_path(dir)?;
        }
        let files: Vec<Json> = match crate::artifacts::relative_to_workspace(root_uri) {
            Some(rel) => {
                let full = if dir.is_empty() {
                    rel.to_owned()
                } else {
                    format!("{rel}/{dir}")
                };
                let listed = block_on(self.artifacts.list(&self.workspace, &full))??;
                listed
                    .into_iter()
                    .map(|f| {
                        let path = if dir.is_empty() {
                            f.name.clone()
                        } else {
                            format!("{dir}/{}", f.name)
                        };
                        let mut j = serde_json::json!({ "path": path, "is_dir": f.is_dir });
                        if let Some(size) = f.size {
                            j["file_size"] = size.into();
                        }
                        j
                    })
                    .collect()
            }
            // Artifacts stored elsewhere (a URI the client wrote to itself) are not listed here.
            None => Vec::new(),
        };
        Ok(serde_json::json!({ "root_uri": root_uri, "files": files }))
    }
}

pub type Handler = fn(&Ctx, &Req) -> Result<Json>;

/// Runs an async artifact-store call from a handler (handlers run on the blocking pool; a
/// caller outside any runtime, such as the CLI, gets a small one of its own).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => Ok(h.block_on(f)),
        Err(_) => Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| MlflowError::internal(e.to_string()))?
            .block_on(f)),
    }
}

/// The context of a tandem route that names its workspace in the path (`{workspace_name}`):
/// the name checked, and whether every read and write first checks the workspace is live.
pub(crate) fn named_workspace(ctx: &Ctx, req: &Req, require_live: bool) -> Result<Ctx> {
    let ws = req.str("workspace_name")?;
    if ws != workspaces::DEFAULT_WORKSPACE {
        workspaces::validate_name(&ws)?;
    }
    Ok(Ctx {
        workspace: ws,
        require_live,
        ..ctx.clone()
    })
}

/// Whether a route of `ROUTES` answers with one of MLflow's protobuf messages (as opposed to
/// the auth plugin's and the workspace API's hand-made JSON).
pub fn answers_protobuf(path: &str) -> bool {
    !(path.starts_with("mlflow/users/")
        || path.starts_with("mlflow/roles/")
        || path.contains("/permissions/")
        || path.starts_with("mlflow/workspaces")
        || path.starts_with("mlflow/assistant/")
        || matches!(
            path,
            "mlflow/gateway/supported-providers"
                | "mlflow/gateway/supported-models"
                | "mlflow/gateway/provider-config"
                | "mlflow/gateway/secrets/config"
        )
        || path == "mlflow/gateway-proxy"
        || path == "mlflow/get-trace-artifact"
        || path == "mlflow/scorers/online-configs")
}

/// `gateway-proxy` (the web UI's AI-gateway calls): with no deployments target configured,
/// MLflow's server "pretends an empty gateway service is running", and so does tandem.
pub fn gateway_proxy(_: &Ctx, _: &Req) -> Result<Json> {
    Ok(serde_json::json!({ "endpoints": [] }))
}

/// `assistant/config` (the web UI's MLflow Assistant panel): nothing is configured. The
/// assistant runs coding tools on the server's own host; tandem offers none.
pub fn assistant_config(_: &Ctx, _: &Req) -> Result<Json> {
    Ok(serde_json::json!({ "providers": {}, "projects": {}, "remote_access_allowed": false }))
}

/// `assistant/providers`: no provider is available here (see `assistant_config`).
pub fn assistant_providers(_: &Ctx, _: &Req) -> Result<Json> {
    Ok(serde_json::json!({ "providers": [], "resolved": null, "gateway_vendor_options": {} }))
}

/// Leaves out empty lists, as protobuf's JSON printing (and so MLflow's server) leaves out
/// empty repeated fields: `{"runs": []}` is `{}`, a run with no params has no `params`.
pub fn omit_empty_lists(v: &mut Json) {
    match v {
        Json::Object(m) => {
            m.retain(|_, x| !matches!(x, Json::Array(a) if a.is_empty()));
            m.values_mut().for_each(omit_empty_lists);
        }
        Json::Array(a) => a.iter_mut().for_each(omit_empty_lists),
        _ => {}
    }
}

/// A handler that renders its answer straight to JSON text. Serves a route of `ROUTES` in its
/// place over HTTP, for answers too large to build as JSON values first; the `ROUTES` entry
/// stays the reference (tests compare the two).
pub type TextHandler = fn(&Ctx, &Req) -> Result<String>;

pub const TEXT_ROUTES: &[(&str, &str, TextHandler)] = &[
    ("POST", "mlflow/runs/search", tracking::search_runs_text),
    (
        "POST",
        "mlflow/traces/search",
        traces::search_traces_v3_text,
    ),
];

/// The text handler of `table` serving `method path`, if there is one.
pub fn text_handler(
    table: &[(&str, &str, TextHandler)],
    method: &str,
    path: &str,
) -> Option<TextHandler> {
    table
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, h)| *h)
}

/// A request's parameters: the JSON body of a POST/PATCH/DELETE, or the query string of a GET
/// (where every value arrives as a string), plus path parameters.
#[derive(Debug, Default, Clone)]
#[repr(transparent)]
pub struct Req(pub Map<String, Json>);

pub(crate) fn missing(key: &str) -> MlflowError {
    MlflowError::invalid(format!("Missing value for required parameter '{key}'. See the API docs for more information about request parameters."))
}

/// MLflow's message for a parameter of the wrong JSON type (`_validate_param_against_schema`
/// once protobuf parsing failed): the value as Python's `json.dumps` prints it, and the Python
/// type name it arrived as.
pub(crate) fn wrong_type(key: &str, v: &Json) -> MlflowError {
    let py_type = match v {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    };
    let mut shown = v.to_string();
    if shown.len() > 1000 {
        let cut = shown
            .char_indices()
            .nth(1000)
            .map(|(i, _)| i)
            .unwrap_or(shown.len());
        shown.truncate(cut);
        shown.push_str("...");
    }
    MlflowError::invalid(format!("Invalid value {shown} for parameter '{key}' supplied:  Hint: Value was of type '{py_type}'. See the API docs for more information about request parameters."))
}

/// An error about a field of a nested object, named as MLflow names it (`metrics[0].timestamp`).
pub(crate) fn nested<T>(path: &str, r: Result<T>) -> Result<T> {
    r.map_err(|mut e| {
        if let Some(i) = e.message.find("parameter '") {
            e.message
                .insert_str(i + "parameter '".len(), &format!("{path}."));
        }
        e
    })
}

/// A string as Python's `repr` prints it, as MLflow's messages quote values.
pub(crate) fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A list of strings as Python prints it (`['a', 'b']`).
pub(crate) fn python_repr_list<S: AsRef<str>>(items: &[S]) -> String {
    let shown: Vec<String> = items.iter().map(|s| python_repr(s.as_ref())).collect();
    format!("[{}]", shown.join(", "))
}

/// A float as Python prints it (`1.0`, `0.5`).
pub(crate) fn python_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// No stored text may hold a NUL character (PostgreSQL cannot store it; no name needs it).
fn no_nul(key: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(MlflowError::invalid(format!(
            "Invalid value for parameter '{key}' supplied: it contains a NUL character"
        )));
    }
    Ok(())
}

impl Req {
    /// A nested object read in place (a batch's 1,000 metric objects are not copied).
    fn borrow(m: &Map<String, Json>) -> &Req {
        // SAFETY: `Req` is `#[repr(transparent)]` over the map, so the two references have
        // the same layout, and the lifetime is carried over unchanged.
        unsafe { &*(m as *const Map<String, Json> as *const Req) }
    }

    pub fn from_json(v: Json) -> Result<Req> {
        match v {
            Json::Object(m) => Ok(Req(m)),
            Json::Null => Ok(Req::default()),
            _ => Err(MlflowError::invalid(
                "The request body must be a JSON object",
            )),
        }
    }

    /// Query pairs; a repeated key becomes a list.
    pub fn from_query(pairs: Vec<(String, String)>) -> Req {
        let mut m = Map::new();
        for (k, v) in pairs {
            let k = k.trim_end_matches("[]").to_owned();
            match m.get_mut(&k) {
                Some(Json::Array(a)) => a.push(Json::String(v)),
                Some(prev) => {
                    let first = prev.take();
                    *prev = Json::Array(vec![first, Json::String(v)]);
                }
                None => {
                    m.insert(k, Json::String(v));
                }
            }
        }
        Req(m)
    }

    pub fn set(&mut self, key: &str, value: impl Into<Json>) {
        self.0.insert(key.to_owned(), value.into());
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::String(s)) => no_nul(key, s).map(|_| Some(s.clone())),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    /// A required string: missing or empty is MLflow's "Missing value for required parameter".
    pub fn str(&self, key: &str) -> Result<String> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(missing(key)),
        }
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, &Json::Number(n.clone()))),
            Some(Json::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| wrong_type(key, &Json::String(s.clone()))),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64> {
        self.opt_i64(key)?.ok_or_else(|| missing(key))
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<F64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => F64::from_json(v)
                .map(Some)
                .ok_or_else(|| wrong_type(key, v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    /// A repeated string field: a list, or (from a query string) a single value.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Json::String(s)) => no_nul(key, s).map(|_| vec![s.clone()]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) => no_nul(key, s).map(|_| s.to_owned()),
                    None => Err(wrong_type(key, v)),
                })
                .collect(),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    /// A repeated message field.
    pub fn list(&self, key: &str) -> Result<Vec<&Req>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::Object(m) => Ok(Req::borrow(m)),
                    other => Err(wrong_type(key, other)),
                })
                .collect(),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    pub fn obj(&self, key: &str) -> Result<Option<&Req>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Object(m)) => Ok(Some(Req::borrow(m))),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    /// A `map<string, string>` field: None when absent; a value that is not a string is the
    /// wrong type, as protobuf's JSON parser finds it.
    pub fn str_map(&self, key: &str) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Json::String(s) => {
                        no_nul(key, k)?;
                        no_nul(key, s)?;
                        Ok((k.clone(), s.clone()))
                    }
                    other => Err(wrong_type(key, other)),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(v) => Err(wrong_type(key, v)),
        }
    }

    /// `[{key, value}]`, with MLflow's rule that a key is required; `value` defaults to "".
    pub fn kv_list(&self, key: &str) -> Result<Vec<KeyValue>> {
        self.list(key)?
            .into_iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: kv.str("key")?,
                    value: kv.opt_str("value")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// `max_results` with a default and an upper bound, refused as MLflow's search handlers
    /// refuse it: over the bound fails the handler's schema (the generic message), zero or
    /// negative the store's "positive integer" check.
    pub fn max_results(&self, default: i64, max: i64) -> Result<usize> {
        let n = self.opt_i64("max_results")?.unwrap_or(default);
        if n > max {
            return Err(wrong_type("max_results", &Json::from(n)));
        }
        if n <= 0 {
            return Err(MlflowError::invalid(format!("Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer")));
        }
        Ok(n as usize)
    }

    pub fn page_offset(&self) -> Result<usize> {
        match self.opt_str("page_token")? {
            None => Ok(0),
            Some(t) if t.is_empty() => Ok(0),
            Some(t) => tandem_core::search::decode_page_token(&t),
        }
    }
}

/// Slices one page out of sorted results and makes the token for the next.
pub fn page<T>(items: Vec<T>, offset: usize, max: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(max).collect();
    let next = if offset + page.len() < total {
        Some(tandem_core::search::encode_page_token(offset + page.len()))
    } else {
        None
    };
    (page, next)
}

/// MLflow's ViewType from `view_type` / `run_view_type` (names or numbers).
pub fn view_type(req: &Req, key: &str) -> Result<store::queries::ViewType> {
    use store::queries::ViewType;
    match req.get(key) {
        None => Ok(ViewType::ActiveOnly),
        Some(Json::String(s)) => match s.as_str() {
            "ACTIVE_ONLY" | "1" => Ok(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
            "ALL" | "3" => Ok(ViewType::All),
            _ => Err(wrong_type(key, &Json::String(s.clone()))),
        },
        Some(Json::Number(n)) => match n.as_i64() {
            Some(1) => Ok(ViewType::ActiveOnly),
            Some(2) => Ok(ViewType::DeletedOnly),
            Some(3) => Ok(ViewType::All),
            _ => Err(wrong_type(key, &Json::Number(n.clone()))),
        },
        Some(v) => Err(wrong_type(key, v)),
    }
}

/// The host-addressed URI schemes (`http`, `ftp`, ...) the operator allows in client-given
/// locations, as MLflow's server reads them: `MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES`,
/// comma-separated. tandem never connects to such a location itself; the setting only decides
/// whether it is accepted, as on MLflow's server.
pub fn allowed_host_schemes() -> &'static [String] {
    static ALLOWED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ALLOWED.get_or_init(|| {
        std::env::var("MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    b
}

pub fn random_u32() -> u32 {
    u32::from_le_bytes(random_bytes::<4>())
}

/// MLflow-style random names ("bright-owl-317") for runs and models given none.
pub fn random_name() -> String {
    const ADJ: &[&str] = &[
        "able", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "gentle",
        "glad", "keen", "kind", "lucky", "merry", "nimble", "proud", "quick", "quiet", "rare",
        "sharp", "shy", "silent", "smart", "swift", "tidy", "vast", "warm", "wise", "zesty",
    ];
    const NOUN: &[&str] = &[
        "ant", "bat", "bear", "bee", "cat", "colt", "crab", "crow", "deer", "dove", "eel", "elk",
        "finch", "fox", "frog", "goat", "hare", "hawk", "lark", "lynx", "mole", "moth", "newt",
        "owl", "ram", "seal", "shrew", "swan", "toad", "wolf",
    ];
    let r = random_u32();
    format!(
        "{}-{}-{}",
        ADJ[(r % ADJ.len() as u32) as usize],
        NOUN[((r >> 8) % NOUN.len() as u32) as usize],
        (r >> 16) % 1000
    )
}

/// Every MLflow and tandem JSON endpoint: (method, path below the version prefix, handler).
/// Paths with `{name}` segments bind that segment into the request under `name`.
pub const ROUTES: &[(&str, &str, Handler)] = &[
    (
        "POST",
        "mlflow/experiments/create",
        tracking::create_experiment,
    ),
    ("GET", "mlflow/experiments/get", tracking::get_experiment),
    (
        "GET",
        "mlflow/experiments/get-by-name",
        tracking::get_experiment_by_name,
    ),
    (
        "POST",
        "mlflow/experiments/search",
        tracking::search_experiments,
    ),
    (
        "GET",
        "mlflow/experiments/search",
        tracking::search_experiments,
    ),
    (
        "POST",
        "mlflow/experiments/update",
        tracking::update_experiment,
    ),
    (
        "POST",
        "mlflow/experiments/delete",
        tracking::delete_experiment,
    ),
    (
        "POST",
        "mlflow/experiments/restore",
        tracking::restore_experiment,
    ),
    (
        "POST",
        "mlflow/experiments/set-experiment-tag",
        tracking::set_experiment_tag,
    ),
    (
        "POST",
        "mlflow/experiments/delete-experiment-tag",
        tracking::delete_experiment_tag,
    ),
    ("POST", "mlflow/runs/create", tracking::create_run),
    ("GET", "mlflow/runs/get", tracking::get_run),
    ("POST", "mlflow/runs/update", tracking::update_run),
    ("POST", "mlflow/runs/delete", tracking::delete_run),
    ("POST", "mlflow/runs/restore", tracking::restore_run),
    ("POST", "mlflow/runs/search", tracking::search_runs),
    ("POST", "mlflow/runs/log-metric", tracking::log_metric),
    ("POST", "mlflow/runs/log-parameter", tracking::log_param),
    ("POST", "mlflow/runs/set-tag", tracking::set_tag),
    ("POST", "mlflow/runs/delete-tag", tracking::delete_tag),
    ("POST", "mlflow/runs/log-batch", tracking::log_batch),
    ("POST", "mlflow/runs/log-inputs", tracking::log_inputs),
    ("POST", "mlflow/runs/outputs", tracking::log_outputs),
    ("POST", "mlflow/runs/log-model", tracking::log_model_legacy),
    (
        "GET",
        "mlflow/metrics/get-history",
        tracking::get_metric_history,
    ),
    (
        "GET",
        "mlflow/metrics/get-history-bulk-interval",
        tracking::get_metric_history_bulk_interval,
    ),
    (
        "GET",
        "mlflow/metrics/get-history-bulk",
        tracking::get_metric_history_bulk,
    ),
    // MLflow's AI gateway (api/gateway.rs).
    (
        "POST",
        "mlflow/gateway/secrets/create",
        gateway::create_secret,
    ),
    ("GET", "mlflow/gateway/secrets/get", gateway::get_secret),
    (
        "POST",
        "mlflow/gateway/secrets/update",
        gateway::update_secret,
    ),
    (
        "DELETE",
        "mlflow/gateway/secrets/delete",
        gateway::delete_secret,
    ),
    ("GET", "mlflow/gateway/secrets/list", gateway::list_secrets),
    (
        "POST",
        "mlflow/gateway/endpoints/create",
        gateway::create_endpoint,
    ),
    ("GET", "mlflow/gateway/endpoints/get", gateway::get_endpoint),
    (
        "POST",
        "mlflow/gateway/endpoints/update",
        gateway::update_endpoint,
    ),
    (
        "DELETE",
        "mlflow/gateway/endpoints/delete",
        gateway::delete_endpoint,
    ),
    (
        "GET",
        "mlflow/gateway/endpoints/list",
        gateway::list_endpoints,
    ),
    (
        "POST",
        "mlflow/gateway/model-definitions/create",
        gateway::create_model_definition,
    ),
    (
        "GET",
        "mlflow/gateway/model-definitions/get",
        gateway::get_model_definition,
    ),
    (
        "GET",
        "mlflow/gateway/model-definitions/list",
        gateway::list_model_definitions,
    ),
    (
        "POST",
        "mlflow/gateway/model-definitions/update",
        gateway::update_model_definition,
    ),
    (
        "DELETE",
        "mlflow/gateway/model-definitions/delete",
        gateway::delete_model_definition,
    ),
    (
        "POST",
        "mlflow/gateway/endpoints/models/attach",
        gateway::attach_model,
    ),
    (
        "POST",
        "mlflow/gateway/endpoints/models/detach",
        gateway::detach_model,
    ),
    (
        "POST",
        "mlflow/gateway/endpoints/bindings/create",
        gateway::create_binding,
    ),
    (
        "DELETE",
        "mlflow/gateway/endpoints/bindings/delete",
        gateway::delete_binding,
    ),
    (
        "GET",
        "mlflow/gateway/endpoints/bindings/list",
        gateway::list_bindings,
    ),
    (
        "POST",
        "mlflow/gateway/endpoints/set-tag",
        gateway::set_endpoint_tag,
    ),
    (
        "DELETE",
        "mlflow/gateway/endpoints/delete-tag",
        gateway::delete_endpoint_tag,
    ),
    (
        "POST",
        "mlflow/gateway/budgets/create",
        gateway::create_budget,
    ),
    ("GET", "mlflow/gateway/budgets/get", gateway::get_budget),
    (
        "POST",
        "mlflow/gateway/budgets/update",
        gateway::update_budget,
    ),
    (
        "DELETE",
        "mlflow/gateway/budgets/delete",
        gateway::delete_budget,
    ),
    ("GET", "mlflow/gateway/budgets/list", gateway::list_budgets),
    (
        "GET",
        "mlflow/gateway/budgets/windows",
        gateway::list_budget_windows,
    ),
    (
        "POST",
        "mlflow/gateway/guardrails/create",
        gateway::create_guardrail,
    ),
    (
        "GET",
        "mlflow/gateway/guardrails/get",
        gateway::get_guardrail,
    ),
    (
        "DELETE",
        "mlflow/gateway/guardrails/delete",
        gateway::delete_guardrail,
    ),
    (
        "GET",
        "mlflow/gateway/guardrails/list",
        gateway::list_guardrails,
    ),
    (
        "POST",
        "mlflow/gateway/guardrails/add-to-endpoint",
        gateway::add_guardrail,
    ),
    (
        "DELETE",
        "mlflow/gateway/guardrails/remove-from-endpoint",
        gateway::remove_guardrail,
    ),
    (
        "GET",
        "mlflow/gateway/guardrails/list-for-endpoint",
        gateway::list_endpoint_guardrails,
    ),
    (
        "PATCH",
        "mlflow/gateway/guardrails/update-config",
        gateway::update_guardrail_config,
    ),
    (
        "GET",
        "mlflow/gateway/supported-providers",
        gateway::supported_providers,
    ),
    (
        "GET",
        "mlflow/gateway/supported-models",
        gateway::supported_models,
    ),
    (
        "GET",
        "mlflow/gateway/provider-config",
        gateway::provider_config,
    ),
    (
        "GET",
        "mlflow/gateway/secrets/config",
        gateway::secrets_config,
    ),
    // MLflow 3's traces (api/traces.rs); fixed paths before `{trace_id}`.
    (
        "GET",
        "mlflow/get-trace-artifact",
        traces::get_trace_artifact,
    ),
    ("POST", "mlflow/traces", traces::start_trace),
    ("GET", "mlflow/traces", traces::search_traces_v2),
    ("PATCH", "mlflow/traces/{trace_id}", traces::end_trace_v2),
    (
        "GET",
        "mlflow/traces/{trace_id}/info",
        traces::get_trace_info_v2,
    ),
    ("GET", "mlflow/traces/get", traces::get_trace),
    ("GET", "mlflow/traces/batchGet", traces::batch_get_traces),
    (
        "POST",
        "mlflow/traces/batchGetInfos",
        traces::batch_get_trace_infos,
    ),
    ("POST", "mlflow/traces/search", traces::search_traces_v3),
    ("POST", "mlflow/traces/delete-traces", traces::delete_traces),
    ("GET", "mlflow/traces/{trace_id}", traces::get_trace_info_v3),
    (
        "PATCH",
        "mlflow/traces/{trace_id}/tags",
        traces::set_trace_tag,
    ),
    (
        "DELETE",
        "mlflow/traces/{trace_id}/tags",
        traces::delete_trace_tag,
    ),
    (
        "POST",
        "mlflow/traces/link-to-run",
        assessments::link_traces_to_run,
    ),
    (
        "POST",
        "mlflow/traces/link-prompts",
        assessments::link_prompts_to_trace,
    ),
    (
        "POST",
        "mlflow/traces/{trace_id}/assessments",
        assessments::create_assessment,
    ),
    (
        "GET",
        "mlflow/traces/{trace_id}/assessments/{assessment_id}",
        assessments::get_assessment,
    ),
    (
        "PATCH",
        "mlflow/traces/{trace_id}/assessments/{assessment_id}",
        assessments::update_assessment,
    ),
    (
        "DELETE",
        "mlflow/traces/{trace_id}/assessments/{assessment_id}",
        assessments::delete_assessment,
    ),
    (
        "POST",
        "mlflow/traces/metrics",
        trace_metrics::query_trace_metrics,
    ),
    (
        "POST",
        "mlflow/traces/calculate-filter-correlation",
        traces::calculate_trace_filter_correlation,
    ),
    ("POST", "mlflow/datasets/create", datasets::create_dataset),
    ("POST", "mlflow/datasets/search", datasets::search_datasets),
    ("GET", "mlflow/datasets/search", datasets::search_datasets),
    ("GET", "mlflow/datasets/{dataset_id}", datasets::get_dataset),
    (
        "DELETE",
        "mlflow/datasets/{dataset_id}",
        datasets::delete_dataset,
    ),
    (
        "PATCH",
        "mlflow/datasets/{dataset_id}/tags",
        datasets::set_dataset_tags,
    ),
    (
        "DELETE",
        "mlflow/datasets/{dataset_id}/tags/{key}",
        datasets::delete_dataset_tag,
    ),
    (
        "POST",
        "mlflow/datasets/{dataset_id}/records",
        datasets::upsert_dataset_records,
    ),
    (
        "GET",
        "mlflow/datasets/{dataset_id}/records",
        datasets::get_dataset_records,
    ),
    (
        "DELETE",
        "mlflow/datasets/{dataset_id}/records",
        datasets::delete_dataset_records,
    ),
    (
        "GET",
        "mlflow/datasets/{dataset_id}/experiment-ids",
        datasets::get_dataset_experiment_ids,
    ),
    (
        "POST",
        "mlflow/datasets/{dataset_id}/add-experiments",
        datasets::add_dataset_to_experiments,
    ),
    (
        "POST",
        "mlflow/datasets/{dataset_id}/remove-experiments",
        datasets::remove_dataset_from_experiments,
    ),
    (
        "POST",
        "mlflow/label-schemas/create",
        labeling::create_label_schema,
    ),
    (
        "GET",
        "mlflow/label-schemas/get",
        labeling::get_label_schema,
    ),
    (
        "GET",
        "mlflow/label-schemas/get-by-name",
        labeling::get_label_schema_by_name,
    ),
    (
        "GET",
        "mlflow/label-schemas/list",
        labeling::list_label_schemas,
    ),
    (
        "PATCH",
        "mlflow/label-schemas/update",
        labeling::update_label_schema,
    ),
    (
        "DELETE",
        "mlflow/label-schemas/delete",
        labeling::delete_label_schema,
    ),
    (
        "POST",
        "mlflow/review-queues/create",
        labeling::create_review_queue,
    ),
    (
        "POST",
        "mlflow/review-queues/get-or-create-user",
        labeling::get_or_create_user_queue,
    ),
    (
        "GET",
        "mlflow/review-queues/get",
        labeling::get_review_queue,
    ),
    (
        "GET",
        "mlflow/review-queues/get-by-name",
        labeling::get_review_queue_by_name,
    ),
    (
        "GET",
        "mlflow/review-queues/list",
        labeling::list_review_queues,
    ),
    (
        "POST",
        "mlflow/review-queues/update",
        labeling::update_review_queue,
    ),
    (
        "POST",
        "mlflow/review-queues/delete",
        labeling::delete_review_queue,
    ),
    (
        "POST",
        "mlflow/review-queues/items/add",
        labeling::add_items_to_review_queue,
    ),
    (
        "POST",
        "mlflow/review-queues/items/remove",
        labeling::remove_items_from_review_queue,
    ),
    (
        "GET",
        "mlflow/review-queues/items/list",
        labeling::list_review_queue_items,
    ),
    (
        "POST",
        "mlflow/review-queues/items/set-status",
        labeling::set_review_queue_item_status,
    ),
    ("POST", "mlflow/issues", issues::create_issue),
    ("POST", "mlflow/issues/search", issues::search_issues),
    ("GET", "mlflow/issues/{issue_id}", issues::get_issue),
    ("PATCH", "mlflow/issues/{issue_id}", issues::update_issue),
    ("POST", "mlflow/scorers/register", scorers::register_scorer),
    ("GET", "mlflow/scorers/list", scorers::list_scorers),
    (
        "GET",
        "mlflow/scorers/versions",
        scorers::list_scorer_versions,
    ),
    ("GET", "mlflow/scorers/get", scorers::get_scorer),
    ("DELETE", "mlflow/scorers/delete", scorers::delete_scorer),
    (
        "GET",
        "mlflow/scorers/online-configs",
        scorers::online_scoring_configs,
    ),
    (
        "PUT",
        "mlflow/scorers/online-config",
        scorers::upsert_online_scoring_config,
    ),
    ("GET", "mlflow/gateway-proxy", gateway_proxy),
    ("POST", "mlflow/gateway-proxy", gateway_proxy),
    ("GET", "mlflow/assistant/config", assistant_config),
    ("GET", "mlflow/assistant/providers", assistant_providers),
    ("GET", "mlflow/artifacts/list", tracking::list_artifacts),
    (
        "POST",
        "mlflow/experiments/search-datasets",
        tracking::search_datasets,
    ),
    ("POST", "mlflow/logged-models", logged_models::create),
    ("POST", "mlflow/logged-models/search", logged_models::search),
    ("GET", "mlflow/logged-models/{model_id}", logged_models::get),
    (
        "PATCH",
        "mlflow/logged-models/{model_id}",
        logged_models::finalize,
    ),
    (
        "DELETE",
        "mlflow/logged-models/{model_id}",
        logged_models::delete,
    ),
    (
        "PATCH",
        "mlflow/logged-models/{model_id}/tags",
        logged_models::set_tags,
    ),
    (
        "DELETE",
        "mlflow/logged-models/{model_id}/tags/{tag_key}",
        logged_models::delete_tag,
    ),
    (
        "POST",
        "mlflow/logged-models/{model_id}/params",
        logged_models::log_params,
    ),
    (
        "GET",
        "mlflow/logged-models/{model_id}/artifacts/directories",
        logged_models::list_artifacts,
    ),
    (
        "POST",
        "mlflow/registered-models/create",
        registry::create_registered_model,
    ),
    (
        "POST",
        "mlflow/registered-models/rename",
        registry::rename_registered_model,
    ),
    (
        "PATCH",
        "mlflow/registered-models/update",
        registry::update_registered_model,
    ),
    (
        "DELETE",
        "mlflow/registered-models/delete",
        registry::delete_registered_model,
    ),
    (
        "GET",
        "mlflow/registered-models/get",
        registry::get_registered_model,
    ),
    (
        "GET",
        "mlflow/registered-models/search",
        registry::search_registered_models,
    ),
    (
        "POST",
        "mlflow/registered-models/get-latest-versions",
        registry::get_latest_versions,
    ),
    (
        "GET",
        "mlflow/registered-models/get-latest-versions",
        registry::get_latest_versions,
    ),
    (
        "POST",
        "mlflow/registered-models/set-tag",
        registry::set_registered_model_tag,
    ),
    (
        "DELETE",
        "mlflow/registered-models/delete-tag",
        registry::delete_registered_model_tag,
    ),
    (
        "POST",
        "mlflow/registered-models/alias",
        registry::set_alias,
    ),
    (
        "DELETE",
        "mlflow/registered-models/alias",
        registry::delete_alias,
    ),
    (
        "GET",
        "mlflow/registered-models/alias",
        registry::get_by_alias,
    ),
    (
        "POST",
        "mlflow/model-versions/create",
        registry::create_model_version,
    ),
    (
        "PATCH",
        "mlflow/model-versions/update",
        registry::update_model_version,
    ),
    (
        "POST",
        "mlflow/model-versions/transition-stage",
        registry::transition_stage,
    ),
    (
        "DELETE",
        "mlflow/model-versions/delete",
        registry::delete_model_version,
    ),
    (
        "GET",
        "mlflow/model-versions/get",
        registry::get_model_version,
    ),
    (
        "GET",
        "mlflow/model-versions/search",
        registry::search_model_versions,
    ),
    (
        "GET",
        "mlflow/model-versions/get-download-uri",
        registry::get_download_uri,
    ),
    (
        "POST",
        "mlflow/model-versions/set-tag",
        registry::set_model_version_tag,
    ),
    (
        "DELETE",
        "mlflow/model-versions/delete-tag",
        registry::delete_model_version_tag,
    ),
    ("GET", "mlflow/workspaces", workspaces::list),
    ("POST", "mlflow/workspaces", workspaces::create),
    ("GET", "mlflow/workspaces/{workspace_name}", workspaces::get),
    (
        "PATCH",
        "mlflow/workspaces/{workspace_name}",
        workspaces::update,
    ),
    (
        "DELETE",
        "mlflow/workspaces/{workspace_name}",
        workspaces::delete,
    ),
    // MLflow's auth API (AuthServiceClient), onto tandem's access model.
    ("POST", "mlflow/users/create", mlflow_auth::create_user),
    ("GET", "mlflow/users/get", mlflow_auth::get_user),
    ("GET", "mlflow/users/current", mlflow_auth::current_user),
    ("GET", "mlflow/users/list", mlflow_auth::list_users),
    (
        "PATCH",
        "mlflow/users/update-password",
        mlflow_auth::update_password,
    ),
    (
        "PATCH",
        "mlflow/users/update-admin",
        mlflow_auth::update_admin,
    ),
    ("DELETE", "mlflow/users/delete", mlflow_auth::delete_user),
    (
        "POST",
        "mlflow/users/permissions/grant",
        mlflow_auth::grant_permission,
    ),
    (
        "POST",
        "mlflow/users/permissions/revoke",
        mlflow_auth::revoke_permission,
    ),
    (
        "GET",
        "mlflow/users/permissions/get",
        mlflow_auth::get_permission,
    ),
    // MLflow 2.x's per-resource permission routes.
    (
        "POST",
        "mlflow/experiments/permissions/create",
        mlflow_auth::create_experiment_permission,
    ),
    (
        "GET",
        "mlflow/experiments/permissions/get",
        mlflow_auth::get_experiment_permission,
    ),
    (
        "PATCH",
        "mlflow/experiments/permissions/update",
        mlflow_auth::create_experiment_permission,
    ),
    (
        "DELETE",
        "mlflow/experiments/permissions/delete",
        mlflow_auth::delete_experiment_permission,
    ),
    (
        "POST",
        "mlflow/registered-models/permissions/create",
        mlflow_auth::create_model_permission,
    ),
    (
        "GET",
        "mlflow/registered-models/permissions/get",
        mlflow_auth::get_model_permission,
    ),
    (
        "PATCH",
        "mlflow/registered-models/permissions/update",
        mlflow_auth::create_model_permission,
    ),
    (
        "DELETE",
        "mlflow/registered-models/permissions/delete",
        mlflow_auth::delete_model_permission,
    ),
    // MLflow 3's role objects.
    ("POST", "mlflow/roles/create", mlflow_auth::create_role),
    ("GET", "mlflow/roles/get", mlflow_auth::get_role),
    ("GET", "mlflow/roles/list", mlflow_auth::list_roles),
    ("PATCH", "mlflow/roles/update", mlflow_auth::update_role),
    ("DELETE", "mlflow/roles/delete", mlflow_auth::delete_role),
    (
        "POST",
        "mlflow/roles/permissions/add",
        mlflow_auth::add_role_permission,
    ),
    (
        "DELETE",
        "mlflow/roles/permissions/remove",
        mlflow_auth::remove_role_permission,
    ),
    (
        "GET",
        "mlflow/roles/permissions/list",
        mlflow_auth::list_role_permissions,
    ),
    (
        "PATCH",
        "mlflow/roles/permissions/update",
        mlflow_auth::update_role_permission,
    ),
    ("POST", "mlflow/roles/assign", mlflow_auth::assign_role),
    (
        "DELETE",
        "mlflow/roles/unassign",
        mlflow_auth::unassign_role,
    ),
    (
        "GET",
        "mlflow/users/roles/list",
        mlflow_auth::list_user_roles,
    ),
    (
        "GET",
        "mlflow/roles/users/list",
        mlflow_auth::list_role_users,
    ),
];

/// `/graphql`, MLflow's GraphQL endpoint for the web UI.
pub const GRAPHQL_ROUTES: &[(&str, &str, Handler)] = &[
    ("POST", "graphql", graphql::execute),
    ("GET", "graphql", graphql::execute),
];

/// tandem's own endpoints, under `/api/tandem/v1/`.
pub const TANDEM_ROUTES: &[(&str, &str, Handler)] = &[
    ("GET", "workspaces/{workspace_name}/changes", changes::list),
    ("GET", "workspaces/{workspace_name}/verify", changes::verify),
    ("GET", "workspaces/{workspace_name}/audit", changes::audit),
    ("POST", "workspaces/{workspace_name}/apply", changes::apply),
    (
        "GET",
        "workspaces/{workspace_name}/retention",
        retention::get,
    ),
    (
        "PATCH",
        "workspaces/{workspace_name}/retention",
        retention::set,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/purge",
        retention::purge,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/undelete",
        retention::undelete,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/environments",
        assets::create_environment,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/environments",
        assets::list_environments,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/environments/{name}/{version}",
        assets::get_environment,
    ),
    (
        "DELETE",
        "workspaces/{workspace_name}/environments/{name}/{version}",
        assets::delete_environment,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/environments/{name}/{version}/restore",
        assets::restore_environment,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/data-assets",
        assets::create_data_asset,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/data-assets",
        assets::list_data_assets,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/data-assets/{name}/{version}",
        assets::get_data_asset,
    ),
    (
        "DELETE",
        "workspaces/{workspace_name}/data-assets/{name}/{version}",
        assets::delete_data_asset,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/data-assets/{name}/{version}/restore",
        assets::restore_data_asset,
    ),
    ("POST", "workspaces/{workspace_name}/jobs", jobs::submit),
    ("GET", "workspaces/{workspace_name}/jobs", jobs::list),
    (
        "GET",
        "workspaces/{workspace_name}/jobs/{job_id}",
        jobs::get,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/jobs/{job_id}/cancel",
        jobs::cancel,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/jobs/{job_id}/attempts/{attempt}/report",
        jobs::report,
    ),
    ("POST", "workspaces/{workspace_name}/secrets", secrets::set),
    ("GET", "workspaces/{workspace_name}/secrets", secrets::list),
    (
        "GET",
        "workspaces/{workspace_name}/secrets/{name}",
        secrets::get,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/secrets/{name}/value",
        secrets::reveal,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/secrets/{name}/versions/{version}/disable",
        secrets::disable,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/secrets/{name}/versions/{version}/enable",
        secrets::enable,
    ),
    (
        "DELETE",
        "workspaces/{workspace_name}/secrets/{name}",
        secrets::delete,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/secrets/{name}/recover",
        secrets::recover,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/secrets/{name}/purge",
        secrets::purge,
    ),
    (
        "POST",
        "workspaces/{workspace_name}/vault/rewrap",
        secrets::rewrap_h,
    ),
    (
        "GET",
        "workspaces/{workspace_name}/connections/{name}/resolve",
        gateway::resolve_h,
    ),
];

/// Whether the route answers without a workspace context (it names its workspace itself).
pub fn is_workspace_admin(path: &str) -> bool {
    path.starts_with("mlflow/workspaces")
        || path.starts_with("workspaces/")
        || path.starts_with("access/")
}

pub enum Lookup {
    Found(Handler, Req),
    WrongMethod,
    NotFound,
}

/// Finds the handler for a path (below the version prefix) and binds its path parameters.
pub fn route(table: &[(&str, &str, Handler)], method: &str, path: &str) -> Lookup {
    let mut path_matched = false;
    for (m, pattern, h) in table {
        if let Some(req) = match_pattern(pattern, path) {
            path_matched = true;
            if *m == method {
                return Lookup::Found(*h, req);
            }
        }
    }
    if path_matched {
        Lookup::WrongMethod
    } else {
        Lookup::NotFound
    }
}

/// The path parameters of `path` if it matches `pattern` (`{name}` matches one segment).
pub fn match_pattern(pattern: &str, path: &str) -> Option<Req> {
    // Every request is matched against the route and access tables (well over a hundred
    // patterns), so nothing is allocated until a pattern matches.
    // One pass over both that stops at the first segment that differs, which for nearly every
    // pattern is the second.
    let path = path.trim_matches('/');
    let literal = |p: &str| !(p.starts_with('{') && p.ends_with('}'));
    let (mut ps, mut ss) = (pattern.split('/'), path.split('/'));
    loop {
        match (ps.next(), ss.next()) {
            (None, None) => break,
            (Some(p), Some(s)) if (literal(p) && p != s) || (!literal(p) && s.is_empty()) => {
                return None
            }
            (Some(_), Some(_)) => {}
            _ => return None,
        }
    }
    let mut req = Req::default();
    for (p, s) in pattern.split('/').zip(path.split('/')) {
        if !literal(p) {
            req.set(&p[1..p.len() - 1], percent_decode(s));
        }
    }
    Some(req)
}

/// The pattern of `table` that serves `method path`.
pub fn route_pattern<H>(
    table: &'static [(&'static str, &'static str, H)],
    method: &str,
    path: &str,
) -> Option<&'static str> {
    table
        .iter()
        .find(|(m, p, _)| *m == method && match_pattern(p, path).is_some())
        .map(|(_, p, _)| *p)
}

/// Where an access rule's scope comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeOf {
    /// The whole service.
    Service,
    /// The request's workspace (the `X-MLFLOW-WORKSPACE` header, or `default`).
    Workspace,
    /// The workspace named in the path (`{workspace_name}`).
    NamedWorkspace,
    /// Any authenticated caller, no action needed.
    Anyone,
}

/// What every route asks of its caller: an action at a scope. Keys are route patterns:
/// `mlflow/...` (MLflow's routes, after `/api/X.Y/` or `/ajax-api/X.Y/`), `mlflow-artifacts/...`,
/// `tandem/...` (after `/api/tandem/v1/`), `ui/...` (MLflow UI routes) and `metrics`. A route
/// missing here is refused to everyone (deny by default) and fails the access test.
#[rustfmt::skip]
pub const ACCESS: &[(&str, &str, &str, ScopeOf)] = {
    use ScopeOf::*;
    &[
        ("POST", "mlflow/experiments/create", "experiments/write", Workspace),
        ("GET", "mlflow/experiments/get", "experiments/read", Workspace),
        ("GET", "mlflow/experiments/get-by-name", "experiments/read", Workspace),
        ("POST", "mlflow/experiments/search", "experiments/read", Workspace),
        ("GET", "mlflow/experiments/search", "experiments/read", Workspace),
        ("POST", "mlflow/experiments/update", "experiments/write", Workspace),
        ("POST", "mlflow/experiments/delete", "experiments/delete", Workspace),
        ("POST", "mlflow/experiments/restore", "experiments/write", Workspace),
        ("POST", "mlflow/experiments/set-experiment-tag", "experiments/write", Workspace),
        ("POST", "mlflow/experiments/delete-experiment-tag", "experiments/write", Workspace),
        ("POST", "mlflow/runs/create", "runs/write", Workspace),
        ("GET", "mlflow/runs/get", "runs/read", Workspace),
        ("POST", "mlflow/runs/update", "runs/write", Workspace),
        ("POST", "mlflow/runs/delete", "runs/delete", Workspace),
        ("POST", "mlflow/runs/restore", "runs/write", Workspace),
        ("POST", "mlflow/runs/search", "runs/read", Workspace),
        ("POST", "mlflow/runs/log-metric", "runs/write", Workspace),
        ("POST", "mlflow/runs/log-parameter", "runs/write", Workspace),
        ("POST", "mlflow/runs/set-tag", "runs/write", Workspace),
        ("POST", "mlflow/runs/delete-tag", "runs/write", Workspace),
        ("POST", "mlflow/runs/log-batch", "runs/write", Workspace),
        ("POST", "mlflow/runs/log-inputs", "runs/write", Workspace),
        ("POST", "mlflow/runs/outputs", "runs/write", Workspace),
        ("POST", "mlflow/runs/log-model", "runs/write", Workspace),
        ("GET", "mlflow/metrics/get-history", "runs/read", Workspace),
        ("GET", "mlflow/metrics/get-history-bulk-interval", "runs/read", Workspace),
        ("POST", "mlflow/experiments/search-datasets", "experiments/read", Workspace),
        ("GET", "mlflow/metrics/get-history-bulk", "runs/read", Workspace),
        ("POST", "mlflow/gateway/secrets/create", "secrets/write", Workspace),
        ("GET", "mlflow/gateway/secrets/get", "secrets/read", Workspace),
        ("POST", "mlflow/gateway/secrets/update", "secrets/write", Workspace),
        ("DELETE", "mlflow/gateway/secrets/delete", "secrets/delete", Workspace),
        ("GET", "mlflow/gateway/secrets/list", "secrets/read", Workspace),
        ("POST", "mlflow/gateway/endpoints/create", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/endpoints/get", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/endpoints/update", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/endpoints/delete", "gateway/delete", Workspace),
        ("GET", "mlflow/gateway/endpoints/list", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/model-definitions/create", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/model-definitions/get", "gateway/read", Workspace),
        ("GET", "mlflow/gateway/model-definitions/list", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/model-definitions/update", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/model-definitions/delete", "gateway/delete", Workspace),
        ("POST", "mlflow/gateway/endpoints/models/attach", "gateway/write", Workspace),
        ("POST", "mlflow/gateway/endpoints/models/detach", "gateway/write", Workspace),
        ("POST", "mlflow/gateway/endpoints/bindings/create", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/endpoints/bindings/delete", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/endpoints/bindings/list", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/endpoints/set-tag", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/endpoints/delete-tag", "gateway/write", Workspace),
        ("POST", "mlflow/gateway/budgets/create", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/budgets/get", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/budgets/update", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/budgets/delete", "gateway/delete", Workspace),
        ("GET", "mlflow/gateway/budgets/list", "gateway/read", Workspace),
        ("GET", "mlflow/gateway/budgets/windows", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/guardrails/create", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/guardrails/get", "gateway/read", Workspace),
        ("DELETE", "mlflow/gateway/guardrails/delete", "gateway/delete", Workspace),
        ("GET", "mlflow/gateway/guardrails/list", "gateway/read", Workspace),
        ("POST", "mlflow/gateway/guardrails/add-to-endpoint", "gateway/write", Workspace),
        ("DELETE", "mlflow/gateway/guardrails/remove-from-endpoint", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/guardrails/list-for-endpoint", "gateway/read", Workspace),
        ("PATCH", "mlflow/gateway/guardrails/update-config", "gateway/write", Workspace),
        ("GET", "mlflow/gateway/supported-providers", "any", Anyone),
        ("GET", "mlflow/gateway/supported-models", "any", Anyone),
        ("GET", "mlflow/gateway/provider-config", "any", Anyone),
        ("GET", "mlflow/gateway/secrets/config", "any", Anyone),
        ("POST", "mlflow/traces", "traces/write", Workspace),
        ("GET", "mlflow/traces", "traces/read", Workspace),
        ("PATCH", "mlflow/traces/{trace_id}", "traces/write", Workspace),
        ("GET", "mlflow/traces/{trace_id}/info", "traces/read", Workspace),
        ("GET", "mlflow/traces/get", "traces/read", Workspace),
        ("GET", "mlflow/traces/batchGet", "traces/read", Workspace),
        ("POST", "mlflow/traces/batchGetInfos", "traces/read", Workspace),
        ("POST", "mlflow/traces/search", "traces/read", Workspace),
        ("POST", "mlflow/traces/delete-traces", "traces/delete", Workspace),
        ("GET", "mlflow/traces/{trace_id}", "traces/read", Workspace),
        ("PATCH", "mlflow/traces/{trace_id}/tags", "traces/write", Workspace),
        ("GET", "mlflow/get-trace-artifact", "traces/read", Workspace),
        ("DELETE", "mlflow/traces/{trace_id}/tags", "traces/write", Workspace),
        ("POST", "otlp/traces", "traces/write", Workspace),
        ("POST", "mlflow/traces/link-to-run", "genai/write", Workspace),
        ("POST", "mlflow/traces/link-prompts", "genai/write", Workspace),
        ("POST", "mlflow/traces/{trace_id}/assessments", "genai/write", Workspace),
        ("GET", "mlflow/traces/{trace_id}/assessments/{assessment_id}", "traces/read", Workspace),
        ("PATCH", "mlflow/traces/{trace_id}/assessments/{assessment_id}", "genai/write", Workspace),
        ("DELETE", "mlflow/traces/{trace_id}/assessments/{assessment_id}", "genai/write", Workspace),
        ("POST", "mlflow/traces/metrics", "experiments/read", Workspace),
        ("POST", "mlflow/traces/calculate-filter-correlation", "experiments/read", Workspace),
        ("POST", "mlflow/datasets/create", "genai/write", Workspace),
        ("POST", "mlflow/datasets/search", "experiments/read", Workspace),
        ("GET", "mlflow/datasets/search", "experiments/read", Workspace),
        ("GET", "mlflow/datasets/{dataset_id}", "experiments/read", Workspace),
        ("DELETE", "mlflow/datasets/{dataset_id}", "genai/write", Workspace),
        ("PATCH", "mlflow/datasets/{dataset_id}/tags", "genai/write", Workspace),
        ("DELETE", "mlflow/datasets/{dataset_id}/tags/{key}", "genai/write", Workspace),
        ("POST", "mlflow/datasets/{dataset_id}/records", "genai/write", Workspace),
        ("GET", "mlflow/datasets/{dataset_id}/records", "experiments/read", Workspace),
        ("DELETE", "mlflow/datasets/{dataset_id}/records", "genai/write", Workspace),
        ("GET", "mlflow/datasets/{dataset_id}/experiment-ids", "experiments/read", Workspace),
        ("POST", "mlflow/datasets/{dataset_id}/add-experiments", "genai/write", Workspace),
        ("POST", "mlflow/datasets/{dataset_id}/remove-experiments", "genai/write", Workspace),
        ("POST", "mlflow/label-schemas/create", "genai/write", Workspace),
        ("GET", "mlflow/label-schemas/get", "experiments/read", Workspace),
        ("GET", "mlflow/label-schemas/get-by-name", "experiments/read", Workspace),
        ("GET", "mlflow/label-schemas/list", "experiments/read", Workspace),
        ("PATCH", "mlflow/label-schemas/update", "genai/write", Workspace),
        ("DELETE", "mlflow/label-schemas/delete", "genai/write", Workspace),
        ("POST", "mlflow/review-queues/create", "genai/write", Workspace),
        ("POST", "mlflow/review-queues/get-or-create-user", "genai/write", Workspace),
        ("GET", "mlflow/review-queues/get", "experiments/read", Workspace),
        ("GET", "mlflow/review-queues/get-by-name", "experiments/read", Workspace),
        ("GET", "mlflow/review-queues/list", "experiments/read", Workspace),
        ("POST", "mlflow/review-queues/update", "genai/write", Workspace),
        ("POST", "mlflow/review-queues/delete", "genai/write", Workspace),
        ("POST", "mlflow/review-queues/items/add", "genai/write", Workspace),
        ("POST", "mlflow/review-queues/items/remove", "genai/write", Workspace),
        ("GET", "mlflow/review-queues/items/list", "experiments/read", Workspace),
        ("POST", "mlflow/review-queues/items/set-status", "genai/write", Workspace),
        ("POST", "mlflow/issues", "genai/write", Workspace),
        ("POST", "mlflow/issues/search", "experiments/read", Workspace),
        ("GET", "mlflow/issues/{issue_id}", "experiments/read", Workspace),
        ("PATCH", "mlflow/issues/{issue_id}", "genai/write", Workspace),
        ("POST", "mlflow/scorers/register", "genai/write", Workspace),
        ("GET", "mlflow/scorers/list", "experiments/read", Workspace),
        ("GET", "mlflow/scorers/versions", "experiments/read", Workspace),
        ("GET", "mlflow/scorers/get", "experiments/read", Workspace),
        ("DELETE", "mlflow/scorers/delete", "genai/write", Workspace),
        ("GET", "mlflow/scorers/online-configs", "experiments/read", Workspace),
        ("PUT", "mlflow/scorers/online-config", "genai/write", Workspace),
        ("GET", "mlflow/gateway-proxy", "any", Anyone),
        ("POST", "mlflow/gateway-proxy", "any", Anyone),
        ("GET", "mlflow/assistant/config", "any", Anyone),
        ("GET", "mlflow/assistant/providers", "any", Anyone),
        // The UI's GraphQL reads runs and experiments (every root field is a read).
        ("GET", "dashboard", "regions/read", Service),
        ("POST", "graphql", "runs/read", Workspace),
        ("GET", "graphql", "runs/read", Workspace),
        ("GET", "mlflow/artifacts/list", "artifacts/read", Workspace),
        ("POST", "mlflow/logged-models", "logged-models/write", Workspace),
        ("POST", "mlflow/logged-models/search", "logged-models/read", Workspace),
        ("GET", "mlflow/logged-models/{model_id}", "logged-models/read", Workspace),
        ("PATCH", "mlflow/logged-models/{model_id}", "logged-models/write", Workspace),
        ("DELETE", "mlflow/logged-models/{model_id}", "logged-models/delete", Workspace),
        ("PATCH", "mlflow/logged-models/{model_id}/tags", "logged-models/write", Workspace),
        ("DELETE", "mlflow/logged-models/{model_id}/tags/{tag_key}", "logged-models/write", Workspace),
        ("POST", "mlflow/logged-models/{model_id}/params", "logged-models/write", Workspace),
        ("GET", "mlflow/logged-models/{model_id}/artifacts/directories", "artifacts/read", Workspace),
        ("POST", "mlflow/registered-models/create", "models/write", Workspace),
        ("POST", "mlflow/registered-models/rename", "models/write", Workspace),
        ("PATCH", "mlflow/registered-models/update", "models/write", Workspace),
        ("DELETE", "mlflow/registered-models/delete", "models/delete", Workspace),
        ("GET", "mlflow/registered-models/get", "models/read", Workspace),
        ("GET", "mlflow/registered-models/search", "models/read", Workspace),
        ("POST", "mlflow/registered-models/get-latest-versions", "models/read", Workspace),
        ("GET", "mlflow/registered-models/get-latest-versions", "models/read", Workspace),
        ("POST", "mlflow/registered-models/set-tag", "models/write", Workspace),
        ("DELETE", "mlflow/registered-models/delete-tag", "models/write", Workspace),
        ("POST", "mlflow/registered-models/alias", "models/write", Workspace),
        ("DELETE", "mlflow/registered-models/alias", "models/write", Workspace),
        ("GET", "mlflow/registered-models/alias", "models/read", Workspace),
        ("POST", "mlflow/model-versions/create", "models/write", Workspace),
        ("PATCH", "mlflow/model-versions/update", "models/write", Workspace),
        ("POST", "mlflow/model-versions/transition-stage", "models/write", Workspace),
        ("DELETE", "mlflow/model-versions/delete", "models/delete", Workspace),
        ("GET", "mlflow/model-versions/get", "models/read", Workspace),
        ("GET", "mlflow/model-versions/search", "models/read", Workspace),
        ("GET", "mlflow/model-versions/get-download-uri", "models/read", Workspace),
        ("POST", "mlflow/model-versions/set-tag", "models/write", Workspace),
        ("DELETE", "mlflow/model-versions/delete-tag", "models/write", Workspace),
        // Listing shows only the workspaces the caller may read something in.
        ("GET", "mlflow/workspaces", "any", Anyone),
        ("POST", "mlflow/workspaces", "workspaces/write", Service),
        ("GET", "mlflow/workspaces/{workspace_name}", "workspaces/read", NamedWorkspace),
        ("PATCH", "mlflow/workspaces/{workspace_name}", "workspaces/write", NamedWorkspace),
        ("DELETE", "mlflow/workspaces/{workspace_name}", "workspaces/delete", NamedWorkspace),
        ("GET", "mlflow/server-info", "any", Anyone),
        ("POST", "mlflow/users/create", "access/manage", Service),
        ("GET", "mlflow/users/get", "access/read", Service),
        ("GET", "mlflow/users/current", "any", Anyone),
        ("GET", "mlflow/users/list", "access/read", Service),
        ("PATCH", "mlflow/users/update-password", "any", Anyone),
        ("PATCH", "mlflow/users/update-admin", "access/manage", Service),
        ("DELETE", "mlflow/users/delete", "access/manage", Service),
        ("POST", "mlflow/users/permissions/grant", "access/manage", Service),
        ("POST", "mlflow/users/permissions/revoke", "access/manage", Service),
        ("GET", "mlflow/users/permissions/get", "access/read", Service),
        ("POST", "mlflow/experiments/permissions/create", "access/manage", Service),
        ("GET", "mlflow/experiments/permissions/get", "access/read", Service),
        ("PATCH", "mlflow/experiments/permissions/update", "access/manage", Service),
        ("DELETE", "mlflow/experiments/permissions/delete", "access/manage", Service),
        ("POST", "mlflow/registered-models/permissions/create", "access/manage", Service),
        ("GET", "mlflow/registered-models/permissions/get", "access/read", Service),
        ("PATCH", "mlflow/registered-models/permissions/update", "access/manage", Service),
        ("DELETE", "mlflow/registered-models/permissions/delete", "access/manage", Service),
        ("POST", "mlflow/roles/create", "access/manage", Service),
        ("GET", "mlflow/roles/get", "access/read", Service),
        ("GET", "mlflow/roles/list", "access/read", Service),
        ("PATCH", "mlflow/roles/update", "access/manage", Service),
        ("DELETE", "mlflow/roles/delete", "access/manage", Service),
        ("POST", "mlflow/roles/permissions/add", "access/manage", Service),
        ("DELETE", "mlflow/roles/permissions/remove", "access/manage", Service),
        ("GET", "mlflow/roles/permissions/list", "access/read", Service),
        ("PATCH", "mlflow/roles/permissions/update", "access/manage", Service),
        ("POST", "mlflow/roles/assign", "access/manage", Service),
        ("DELETE", "mlflow/roles/unassign", "access/manage", Service),
        ("GET", "mlflow/users/roles/list", "access/read", Service),
        ("GET", "mlflow/roles/users/list", "access/read", Service),
        ("GET", "mlflow-artifacts/artifacts", "artifacts/read", Workspace),
        ("GET", "mlflow-artifacts/artifacts/*", "artifacts/read", Workspace),
        ("PUT", "mlflow-artifacts/artifacts/*", "artifacts/write", Workspace),
        ("DELETE", "mlflow-artifacts/artifacts/*", "artifacts/delete", Workspace),
        ("POST", "mlflow-artifacts/mpu/*", "artifacts/write", Workspace),
        ("GET", "mlflow-artifacts/presigned/*", "artifacts/read", Workspace),
        ("PUT", "tandem/uploads/*", "artifacts/write", Workspace),
        ("GET", "ui/get-artifact", "artifacts/read", Workspace),
        ("GET", "ui/model-versions/get-artifact", "artifacts/read", Workspace),
        ("GET", "metrics", "metrics/read", Service),
        ("GET", "tandem/workspaces/{workspace_name}/changes", "changes/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/verify", "changes/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/audit", "changes/read", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/apply", "changes/write", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/retention", "retention/read", NamedWorkspace),
        ("PATCH", "tandem/workspaces/{workspace_name}/retention", "retention/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/purge", "workspaces/delete", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/undelete", "workspaces/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/environments", "assets/write", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/environments", "assets/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/environments/{name}/{version}", "assets/read", NamedWorkspace),
        ("DELETE", "tandem/workspaces/{workspace_name}/environments/{name}/{version}", "assets/delete", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/environments/{name}/{version}/restore", "assets/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/data-assets", "assets/write", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/data-assets", "assets/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/data-assets/{name}/{version}", "assets/read", NamedWorkspace),
        ("DELETE", "tandem/workspaces/{workspace_name}/data-assets/{name}/{version}", "assets/delete", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/data-assets/{name}/{version}/restore", "assets/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/jobs", "jobs/write", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/jobs", "jobs/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/jobs/{job_id}", "jobs/read", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/jobs/{job_id}/cancel", "jobs/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/jobs/{job_id}/attempts/{attempt}/report", "jobs/report", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/secrets", "secrets/write", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/secrets", "secrets/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/secrets/{name}", "secrets/read", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/secrets/{name}/value", "secrets/reveal", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/secrets/{name}/versions/{version}/disable", "secrets/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/secrets/{name}/versions/{version}/enable", "secrets/write", NamedWorkspace),
        ("DELETE", "tandem/workspaces/{workspace_name}/secrets/{name}", "secrets/delete", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/secrets/{name}/recover", "secrets/write", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/secrets/{name}/purge", "secrets/delete", NamedWorkspace),
        ("POST", "tandem/workspaces/{workspace_name}/vault/rewrap", "vault/rotate", NamedWorkspace),
        ("GET", "tandem/workspaces/{workspace_name}/connections/{name}/resolve", "gateway/read", NamedWorkspace),
        ("POST", "gateway/invoke", "gateway/invoke", Workspace),
        ("GET", "tandem/status", "regions/read", Service),
        ("POST", "tandem/workspaces/{workspace_name}/drain", "regions/failover", Service),
        ("POST", "tandem/workspaces/{workspace_name}/undrain", "regions/failover", Service),
        ("POST", "tandem/workspaces/{workspace_name}/take-over", "regions/failover", Service),
        ("GET", "tandem/workspaces/{workspace_name}/diverged", "regions/read", Service),
        ("POST", "tandem/workspaces/{workspace_name}/diverged/{epoch}/{seq}/{action}", "regions/failover", Service),
        ("GET", "tandem/access/whoami", "any", Anyone),
        ("POST", "tandem/access/tokens", "any", Anyone),
        ("DELETE", "tandem/access/tokens/{token_id}", "any", Anyone),
        ("GET", "tandem/access/roles", "any", Anyone),
        ("GET", "tandem/access/principals", "access/read", Service),
        ("POST", "tandem/access/principals", "access/manage", Service),
        ("DELETE", "tandem/access/principals/{name}", "access/manage", Service),
        ("PATCH", "tandem/access/principals/{name}/password", "access/manage", Service),
        ("GET", "tandem/access/principals/{name}/tokens", "access/read", Service),
        ("POST", "tandem/access/principals/{name}/tokens", "access/manage", Service),
        ("DELETE", "tandem/access/principals/{name}/tokens/{token_id}", "access/manage", Service),
        ("GET", "tandem/access/assignments", "access/read", Service),
        ("POST", "tandem/access/assignments", "access/manage", Service),
        ("DELETE", "tandem/access/assignments/{assignment_id}", "access/manage", Service),
        ("POST", "tandem/access/elevate", "any", Anyone),
        ("POST", "tandem/access/roles", "access/manage", Service),
        ("DELETE", "tandem/access/roles/{name}", "access/manage", Service),
        ("POST", "tandem/access/groups/{name}/members", "access/manage", Service),
        ("DELETE", "tandem/access/groups/{name}/members/{member}", "access/manage", Service),
        ("GET", "tandem/access/locks", "any", Anyone),
        ("POST", "tandem/access/locks", "locks/write", Service),
        ("DELETE", "tandem/access/locks/{lock_id}", "locks/lift", Service),
    ]
};

/// The access rule for a route key (see [`ACCESS`]); `*` in a key matches the rest of the
/// path. None: no rule, so the route is refused.
pub fn access_rule(method: &str, key: &str) -> Option<(&'static str, ScopeOf, Req)> {
    ACCESS.iter().find_map(|(m, pattern, action, scope)| {
        if *m != method {
            return None;
        }
        let params = match pattern.strip_suffix("/*") {
            Some(prefix) => key
                .strip_prefix(prefix)
                .filter(|rest| rest.starts_with('/') && rest.len() > 1)
                .map(|_| Req::default()),
            None => match_pattern(pattern, key),
        }?;
        Some((*action, *scope, params))
    })
}

/// tandem's access API, after `/api/tandem/v1/`.
pub const ACCESS_ROUTES: &[(&str, &str, Handler)] = &[
    ("GET", "access/whoami", access::whoami),
    ("POST", "access/tokens", access::issue_own_token),
    (
        "DELETE",
        "access/tokens/{token_id}",
        access::revoke_own_token,
    ),
    ("GET", "access/roles", access::roles),
    ("GET", "access/principals", access::list_principals),
    ("POST", "access/principals", access::create_principal_h),
    (
        "DELETE",
        "access/principals/{name}",
        access::delete_principal_h,
    ),
    (
        "PATCH",
        "access/principals/{name}/password",
        access::set_password_h,
    ),
    (
        "GET",
        "access/principals/{name}/tokens",
        access::list_tokens_h,
    ),
    (
        "POST",
        "access/principals/{name}/tokens",
        access::issue_token_h,
    ),
    (
        "DELETE",
        "access/principals/{name}/tokens/{token_id}",
        access::revoke_token_h,
    ),
    ("GET", "access/assignments", access::list_assignments),
    ("POST", "access/assignments", access::assign_h),
    (
        "DELETE",
        "access/assignments/{assignment_id}",
        access::unassign_h,
    ),
    ("POST", "access/elevate", access::elevate),
    ("POST", "access/roles", access::define_role_h),
    ("DELETE", "access/roles/{name}", access::drop_role_h),
    ("POST", "access/groups/{name}/members", access::add_member_h),
    (
        "DELETE",
        "access/groups/{name}/members/{member}",
        access::remove_member_h,
    ),
    ("GET", "access/locks", access::list_locks),
    ("POST", "access/locks", access::set_lock_h),
    ("DELETE", "access/locks/{lock_id}", access::lift_lock_h),
];

pub fn percent_decode(s: &str) -> String {
    tandem_core::uri::unquote(s)
}
