//! The HTTP edge: routing, bodies, headers, and MLflow's error shape. No business rules here.
//!
//! Architecture invariant: this module knows HTTP and the route table, not the store's SQL;
//! every JSON endpoint goes through `api::route` and runs on the blocking pool.

use crate::api::{self, workspaces::DEFAULT_WORKSPACE, Ctx, Lookup, Req};
use crate::artifacts::Artifacts;
use crate::auth::Caller;
use crate::store::{queries, Store};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value as Json};
use tandem_core::access::{Scope, ACCESS_WORKSPACE};
use tandem_core::{MlflowError, Op};

/// The MLflow version tandem's API matches; `GET /version` answers it.
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";
/// The JSON body limit (dataset profiles may be 16 MiB).
pub const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub artifacts: Artifacts,
    /// Set when this server is a region of a multi-region deployment.
    pub region: Option<std::sync::Arc<crate::region::RegionState>>,
    pub http: reqwest::Client,
    /// Authentication and the one authorization decision (see docs/design/access.md).
    pub auth: std::sync::Arc<crate::auth::Auth>,
    /// MLflow's web UI, when a build of it was found (see `ui.rs`).
    pub ui: Option<crate::ui::Ui>,
    /// The disaster-recovery dashboard at `/tandem/` (see `dashboard.rs`).
    pub dashboard: Option<crate::dashboard::Dashboard>,
    /// The compute targets jobs may name.
    pub compute: std::sync::Arc<[crate::jobs::ComputeTarget]>,
    /// The vault's keys.
    pub vault: Option<std::sync::Arc<crate::vault::Keyring>>,
    /// The last health probes of the AI gateway's per-region provider URLs (opt-in).
    pub probes: std::sync::Arc<crate::invocations::Probes>,
}

/// One path segment, percent-encoded for a URL.
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether a request changes anything (and so must reach the leader).
fn is_write(method: &Method, path: &str) -> bool {
    if *method == Method::GET || *method == Method::HEAD {
        return false;
    }
    // Searches are POSTs that read, and so is every GraphQL query the UI sends.
    if path.ends_with("/search")
        || path.ends_with("/get-latest-versions")
        || path.ends_with("/search-datasets")
        || path.ends_with("/gateway-proxy")
        || path.ends_with("/batchGetInfos")
        || path == "/graphql"
    {
        return false;
    }
    // Region control (switchover steps, settling diverged events) runs in the region it is
    // sent to; tandem's other writes (apply, retention, purge, undelete) go to the leader.
    let region_control = path.contains("/api/tandem/v1/")
        && (path.ends_with("/drain")
            || path.ends_with("/undrain")
            || path.ends_with("/take-over")
            || path.contains("/diverged/"));
    !region_control
}

pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

pub fn error_response(e: &MlflowError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error_code": e.code.as_str(), "message": e.message });
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if e.unchanged {
        r.headers_mut().insert(
            crate::region::front_door::UNCHANGED,
            header::HeaderValue::from_static("true"),
        );
    }
    r
}

fn json_response(v: &Json) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Unknown routes get a plain (non-JSON) 404, as from MLflow's Flask app: the client uses
/// that to tell "endpoint missing" from "resource missing".
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 Not Found: the requested URL was not found on the server.\n",
    )
        .into_response()
}

fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "405 Method Not Allowed\n",
    )
        .into_response()
}

/// The workspace a request names (the default when it names none), unchecked.
fn workspace_header(req: &Request) -> String {
    req.headers()
        .get("x-mlflow-workspace")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_WORKSPACE)
        .to_owned()
}

fn workspace_of(headers: &HeaderMap) -> Result<String, MlflowError> {
    match headers.get("x-mlflow-workspace") {
        None => Ok(DEFAULT_WORKSPACE.to_owned()),
        Some(v) => {
            let name = v
                .to_str()
                .map_err(|_| {
                    MlflowError::invalid("The X-MLFLOW-WORKSPACE header is not valid text")
                })?
                .trim()
                .to_owned();
            if name.is_empty() {
                return Ok(DEFAULT_WORKSPACE.to_owned());
            }
            if name != DEFAULT_WORKSPACE {
                api::workspaces::validate_name(&name)?;
            }
            Ok(name)
        }
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                api::percent_decode(&k.replace('+', " ")),
                api::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Runs a blocking closure on the blocking pool; a panic becomes INTERNAL_ERROR, never a
/// dropped connection or a dead server.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MlflowError> + Send + 'static,
) -> Result<T, MlflowError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("handler failed: {e}");
            Err(MlflowError::internal(
                "internal error while handling the request",
            ))
        }
    }
}

/// The context of a request. JSON endpoints check that the workspace is live inside their own
/// transactions (`Ctx::require_live`); `check_now` is for endpoints that may not touch the
/// store before they act (artifact bytes), which pay for a separate read.
pub(crate) async fn ctx_for(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    admin: bool,
    check_now: bool,
) -> Result<Ctx, MlflowError> {
    let workspace = workspace_of(headers)?;
    let principal = caller.name().to_owned();
    let ctx = Ctx {
        store: state.store.clone(),
        artifacts: state.artifacts.clone(),
        workspace,
        principal,
        require_live: !admin,
        authenticated: matches!(caller, crate::auth::Caller::Principal { .. }),
        compute: state.compute.clone(),
        vault: state.vault.clone(),
    };
    if check_now && !admin {
        let c = ctx.clone();
        blocking(move || c.read(|_| Ok(()))).await?;
    }
    Ok(ctx)
}

/// Splits `/api/2.0/mlflow/x` or `/ajax-api/3.0/mlflow/x` into ("mlflow/x").
fn strip_version(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/")
        .or_else(|| path.strip_prefix("/ajax-api/"))?;
    let (version, rest) = rest.split_once('/')?;
    let mut parts = version.split('.');
    let ok = parts
        .next()
        .is_some_and(|m| m.chars().all(|c| c.is_ascii_digit()) && !m.is_empty())
        && parts.all(|p| p.chars().all(|c| c.is_ascii_digit()));
    ok.then_some(rest)
}

/// Whether a request reads or changes access state (tandem's access API or MLflow's users
/// API): it goes to whoever leads the access log, and a change refreshes this server's view.
pub fn is_access_path(path: &str) -> bool {
    path.starts_with("/api/tandem/v1/access/")
        || strip_version(path).is_some_and(|rest| {
            rest.starts_with("mlflow/users/")
                || rest.starts_with("mlflow/experiments/permissions/")
                || rest.starts_with("mlflow/registered-models/permissions/")
                || rest.starts_with("mlflow/roles/")
        })
}

/// Who the edge let in (a request extension set by `check_access`; never from a header).
pub(crate) fn caller_of(req: &Request) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Unchecked {
            name: "anonymous".into(),
        })
}

/// The request's path as `ACCESS` keys it, when the route exists.
fn access_key(state: &AppState, method: &Method, path: &str) -> Option<String> {
    let m = method.as_str();
    match path {
        "/get-artifact" => return Some("ui/get-artifact".into()),
        "/model-versions/get-artifact" => return Some("ui/model-versions/get-artifact".into()),
        "/metrics" => return Some("metrics".into()),
        "/graphql" => return Some("graphql".into()),
        "/v1/traces" => return (method == Method::POST).then(|| "otlp/traces".into()),
        // The AI gateway's invocation routes: calling an endpoint with its secret.
        p if p.starts_with("/gateway/") => {
            return (method == Method::POST).then(|| "gateway/invoke".into())
        }
        // The dashboard shows what `tandem status` shows.
        "/tandem/" | "/tandem/live" => return Some("dashboard".into()),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/api/tandem/v1/") {
        if rest.starts_with("uploads/") {
            return Some(format!("tandem/{rest}"));
        }
        let known = (state.region.is_some()
            && api::route_pattern(REGION_ROUTES, m, rest).is_some())
            || api::route_pattern(api::ACCESS_ROUTES, m, rest).is_some()
            || api::route_pattern(api::TANDEM_ROUTES, m, rest).is_some();
        return known.then(|| format!("tandem/{rest}"));
    }
    let rest = strip_version(path)?;
    let artifact_route = rest == "mlflow-artifacts/artifacts"
        || [
            "artifacts/",
            "mpu/create/",
            "mpu/complete/",
            "mpu/abort/",
            "presigned/",
        ]
        .iter()
        .any(|p| rest.starts_with(&format!("mlflow-artifacts/{p}")));
    if rest == "mlflow/server-info" || artifact_route {
        return Some(rest.to_owned());
    }
    api::route_pattern(api::ROUTES, m, rest).map(|_| rest.to_owned())
}

/// Every route this server can serve, as (method, `ACCESS` key) with path parameters left as
/// patterns: what the access test walks so that no route goes without a rule.
pub fn route_keys() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (m, p, _) in api::ROUTES {
        out.push((*m, (*p).to_owned()));
    }
    for (m, p, _) in api::TANDEM_ROUTES {
        out.push((*m, format!("tandem/{p}")));
    }
    for (m, p, _) in api::ACCESS_ROUTES {
        out.push((*m, format!("tandem/{p}")));
    }
    for (m, p, _) in REGION_ROUTES {
        out.push((*m, format!("tandem/{p}")));
    }
    for (m, k) in [
        ("GET", "mlflow/server-info"),
        ("GET", "mlflow-artifacts/artifacts"),
        ("GET", "mlflow-artifacts/artifacts/{path}"),
        ("PUT", "mlflow-artifacts/artifacts/{path}"),
        ("DELETE", "mlflow-artifacts/artifacts/{path}"),
        ("POST", "mlflow-artifacts/mpu/create/{path}"),
        ("POST", "mlflow-artifacts/mpu/complete/{path}"),
        ("POST", "mlflow-artifacts/mpu/abort/{path}"),
        ("GET", "mlflow-artifacts/presigned/{path}"),
        ("PUT", "tandem/uploads/{upload}"),
        ("GET", "ui/get-artifact"),
        ("GET", "ui/model-versions/get-artifact"),
        ("GET", "metrics"),
        ("POST", "graphql"),
        ("GET", "graphql"),
        ("GET", "dashboard"),
        ("POST", "gateway/invoke"),
        ("POST", "otlp/traces"),
    ] {
        out.push((m, k.to_owned()));
    }
    out
}

/// The region endpoints' routes (served by `region_endpoint`), for access rules.
const REGION_ROUTES: &[(&str, &str, ())] = &[
    ("GET", "status", ()),
    ("POST", "workspaces/{workspace_name}/drain", ()),
    ("POST", "workspaces/{workspace_name}/undrain", ()),
    ("POST", "workspaces/{workspace_name}/take-over", ()),
    ("GET", "workspaces/{workspace_name}/diverged", ()),
    (
        "POST",
        "workspaces/{workspace_name}/diverged/{epoch}/{seq}/{action}",
        (),
    ),
];

fn unauthenticated_response(e: &MlflowError) -> Response {
    let mut r = error_response(e);
    if e.code == tandem_core::ErrorCode::Unauthenticated {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"tandem\""),
        );
    }
    r
}

/// Authentication, then the one authorization check for every route: who asks, what the
/// route's action and scope are (`api::ACCESS`), and whether that is allowed. On success the
/// caller travels to the handlers as a request extension.
async fn check_access(state: &AppState, req: &mut Request) -> Result<(), Response> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth = state.auth.clone();
    if path == "/metrics" && !auth.metrics_auth() {
        return Ok(());
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let caller = match auth.authenticate_fast(header.as_deref()) {
        Some(r) => r,
        None => {
            let a = auth.clone();
            blocking(move || a.authenticate(header.as_deref())).await
        }
    }
    .map_err(|e| unauthenticated_response(&e))?;
    req.extensions_mut().insert(caller.clone());
    // Routes that do not exist answer as they always do (404, 405) to whoever is signed in.
    let Some(key) = access_key(state, &method, &path) else {
        return Ok(());
    };
    let Some((mut action, scope_of, params)) = api::access_rule(method.as_str(), &key) else {
        tracing::warn!(%method, %path, "no access rule for this route: refused");
        return Err(error_response(&MlflowError::new(
            tandem_core::ErrorCode::PermissionDenied,
            format!("Permission denied: {method} {path} has no access rule."),
        )));
    };
    let scope = match scope_of {
        api::ScopeOf::Anyone => return Ok(()),
        api::ScopeOf::Service => Scope::Service,
        api::ScopeOf::Workspace => {
            Scope::Workspace(workspace_of(req.headers()).map_err(|e| error_response(&e))?)
        }
        api::ScopeOf::NamedWorkspace => {
            let ws = params
                .str("workspace_name")
                .map_err(|e| error_response(&e))?;
            if ws == ACCESS_WORKSPACE && action.starts_with("changes/") {
                // The access log holds password hashes: only administrators and the
                // deployment's own replication read or write it.
                action = "access/changes";
            }
            Scope::Workspace(ws)
        }
    };
    let refused = match decide(&auth, &caller, action, scope.clone()).await {
        Ok(()) => {
            // Allowed for the whole workspace; a lock on the request's own experiment or
            // model may still refuse a change.
            let changes = action.ends_with("/write")
                || action.ends_with("/delete")
                || action == "retention/write";
            let Scope::Workspace(ws) = &scope else {
                return Ok(());
            };
            if !changes {
                return Ok(());
            }
            // Answered from memory when the access state is fresh (nearly always): a hop to
            // the blocking pool on every write would cost more than the rest of the check.
            let narrow_lock = match auth.fresh(|s| s.has_narrow_lock_in(ws)) {
                Some(b) => b,
                None => {
                    let (a, w) = (auth.clone(), ws.clone());
                    blocking(move || Ok(a.has_narrow_lock_in(&w)))
                        .await
                        .unwrap_or(true)
                }
            };
            if !narrow_lock {
                return Ok(());
            }
            if let Ok(Narrowed::Objects(scopes)) = narrow(state, req, &key, params, ws).await {
                for s in scopes {
                    let a = auth.clone();
                    blocking(move || a.check_lock(action, &s))
                        .await
                        .map_err(|e| error_response(&e))?;
                }
            }
            return Ok(());
        }
        Err(e) => e,
    };
    // Rights narrower than the workspace (an experiment, a registered model): decided on the
    // request's own object, looked up only for callers who hold such rights.
    let Scope::Workspace(ws) = scope else {
        return Err(unauthenticated_response(&refused));
    };
    if refused.code != tandem_core::ErrorCode::PermissionDenied {
        return Err(unauthenticated_response(&refused));
    }
    let narrow_rights = match auth.fresh_has_narrow_in(&caller, &ws) {
        Some(b) => b,
        None => {
            let (a, c, w) = (auth.clone(), caller.clone(), ws.clone());
            blocking(move || Ok(a.has_narrow_in(&c, &w)))
                .await
                .unwrap_or(false)
        }
    };
    if !narrow_rights {
        return Err(unauthenticated_response(&refused));
    }
    match narrow(state, req, &key, params, &ws).await {
        Ok(Narrowed::Objects(scopes)) if !scopes.is_empty() => {
            for s in scopes {
                decide(&auth, &caller, action, s)
                    .await
                    .map_err(|e| unauthenticated_response(&e))?;
            }
            Ok(())
        }
        Ok(Narrowed::List) => {
            let (a, c) = (auth.clone(), caller.clone());
            let some = blocking(move || Ok(a.sees_workspace(&c, action, &ws)))
                .await
                .unwrap_or(false);
            if !some {
                return Err(unauthenticated_response(&refused));
            }
            req.extensions_mut().insert(Narrowed::List);
            Ok(())
        }
        Ok(_) => Err(unauthenticated_response(&refused)),
        Err(e) => Err(error_response(&e)),
    }
}

async fn decide(
    auth: &std::sync::Arc<crate::auth::Auth>,
    caller: &Caller,
    action: &'static str,
    scope: Scope,
) -> Result<(), MlflowError> {
    match auth.authorize_fresh(caller, action, &scope) {
        Some(decided) => decided,
        None => {
            let (a, c) = (auth.clone(), caller.clone());
            blocking(move || a.authorize(&c, action, &scope)).await
        }
    }
}

/// What a request's object is, for a caller whose rights are narrower than the workspace.
#[derive(Debug, Clone)]
enum Narrowed {
    /// Every one of these must be allowed (one object, or a search's experiments).
    Objects(Vec<Scope>),
    /// A listing: answered, then cut down to what the caller may read.
    List,
}

/// Lists answered for narrow callers and filtered afterwards (see `filter_listing`).
const NARROWED_LISTS: &[&str] = &[
    "mlflow/experiments/search",
    "mlflow/registered-models/search",
    "mlflow/registered-models/get-latest-versions",
    "mlflow/model-versions/search",
];

async fn narrow(
    state: &AppState,
    req: &mut Request,
    key: &str,
    path_params: api::Req,
    ws: &str,
) -> Result<Narrowed, MlflowError> {
    let exp = |id: &str| Scope::Experiment(ws.to_owned(), id.to_owned());
    if NARROWED_LISTS.contains(&key) {
        return Ok(Narrowed::List);
    }
    // Artifact paths begin with their experiment's ID (`E/RUN/artifacts/...`, `E/models/M/...`).
    let first = |p: &str| {
        let p = api::percent_decode(p);
        let id = p
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned();
        (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then_some(id)
    };
    for prefix in [
        "mlflow-artifacts/artifacts/",
        "mlflow-artifacts/mpu/create/",
        "mlflow-artifacts/mpu/complete/",
        "mlflow-artifacts/mpu/abort/",
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return Ok(Narrowed::Objects(
                first(rest).map(|e| exp(&e)).into_iter().collect(),
            ));
        }
    }
    let mut params = peek_params(req).await?;
    for (k, v) in path_params.0 {
        params.0.insert(k, v);
    }
    if key == "mlflow-artifacts/artifacts" {
        let path = params.opt_str("path").ok().flatten().unwrap_or_default();
        return Ok(Narrowed::Objects(
            first(&path).map(|e| exp(&e)).into_iter().collect(),
        ));
    }
    let text = |k: &str| params.opt_str(k).ok().flatten().filter(|s| !s.is_empty());
    if key.starts_with("mlflow/registered-models/")
        || key.starts_with("mlflow/model-versions/")
        || key == "ui/model-versions/get-artifact"
    {
        return Ok(Narrowed::Objects(
            text("name")
                .map(|n| Scope::Model(ws.to_owned(), n))
                .into_iter()
                .collect(),
        ));
    }
    if let Some(ids) = params.0.get("experiment_ids") {
        let ids: Vec<String> = match ids {
            Json::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Json::String(s) => vec![s.clone()],
            _ => vec![],
        };
        return Ok(Narrowed::Objects(ids.iter().map(|e| exp(e)).collect()));
    }
    if let Some(e) = text("experiment_id") {
        return Ok(Narrowed::Objects(vec![exp(&e)]));
    }
    let lookup = match (
        text("run_id").or_else(|| text("run_uuid")),
        text("model_id"),
        text("experiment_name"),
    ) {
        (Some(r), _, _) => Some((queries::ObjectKey::Run, r)),
        (_, Some(m), _) => Some((queries::ObjectKey::LoggedModel, m)),
        (_, _, Some(n)) => Some((queries::ObjectKey::ExperimentName, n)),
        _ => None,
    };
    let Some((kind, id)) = lookup else {
        return Ok(Narrowed::Objects(vec![]));
    };
    let (s, w) = (state.store.clone(), ws.to_owned());
    let found = blocking(move || {
        s.read(|tx| queries::experiment_of(tx, &w, kind, &id))
            .map_err(Into::into)
    })
    .await?;
    Ok(Narrowed::Objects(
        found.map(|e| exp(&e)).into_iter().collect(),
    ))
}

/// A request's parameters (as `read_params` reads them) without consuming its body.
async fn peek_params(req: &mut Request) -> Result<Req, MlflowError> {
    let query = query_pairs(req.uri().query());
    if req.method() == Method::GET && !query.is_empty() {
        return Ok(Req::from_query(query));
    }
    let body = std::mem::take(req.body_mut());
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            MlflowError::invalid(format!(
                "The request body is larger than {MAX_JSON_BODY} bytes or was interrupted"
            ))
        })?;
    *req.body_mut() = Body::from(bytes.clone());
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Req::from_query(query));
    }
    let v: Json = serde_json::from_slice(&bytes)
        .map_err(|e| MlflowError::invalid(format!("Malformed JSON request body: {e}")))?;
    Req::from_json(v)
}

/// Cuts a listing answered for a caller with narrow rights down to what they may read.
fn filter_listing(auth: &crate::auth::Auth, caller: &Caller, ws: &str, v: &mut Json) {
    let keep = |scope: Scope, action: &str| auth.authorize(caller, action, &scope).is_ok();
    if let Some(list) = v["experiments"].as_array_mut() {
        list.retain(|e| {
            e["experiment_id"].as_str().is_some_and(|id| {
                keep(
                    Scope::Experiment(ws.to_owned(), id.to_owned()),
                    "experiments/read",
                )
            })
        });
    }
    for field in ["registered_models", "model_versions"] {
        if let Some(list) = v[field].as_array_mut() {
            list.retain(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| keep(Scope::Model(ws.to_owned(), n.to_owned()), "models/read"))
            });
        }
    }
}

async fn handle(State(state): State<AppState>, mut req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/health") => return (StatusCode::OK, "OK").into_response(),
        ("GET", "/version") => return (StatusCode::OK, MLFLOW_COMPAT_VERSION).into_response(),
        // The UI's scripts and styles hold no data: public, as on MLflow's auth app.
        ("GET", p) if p.starts_with("/static-files/") => {
            return match &state.ui {
                Some(ui) => ui.static_file(&p["/static-files/".len()..]).await,
                None => not_found(),
            };
        }
        _ => {}
    }
    if let Err(refused) = check_access(&state, &mut req).await {
        return refused;
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => {
            return match &state.ui {
                Some(ui) => ui.index().await,
                None => crate::ui::missing_page("no MLflow UI build was found when it started (see its first lines of output; `--ui DIR` names one)"),
            };
        }
        ("GET", "/tandem") => {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, "/tandem/")],
            )
                .into_response()
        }
        ("GET", "/tandem/") | ("GET", "/tandem/live") => {
            let Some(d) = &state.dashboard else {
                return not_found();
            };
            let body = if path == "/tandem/" {
                d.page()
            } else {
                d.live()
            };
            return (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response();
        }
        ("GET", "/metrics") => return metrics(&state).await,
        ("GET", "/get-artifact") | ("GET", "/model-versions/get-artifact") => {
            return stored_artifact(&state, &path, req)
                .await
                .unwrap_or_else(|e| error_response(&e));
        }
        _ => {}
    }
    if let Some(region) = &state.region {
        // A standby serves reads from its replica and sends writes to the leader.
        if is_write(&method, &path)
            || (!path.starts_with("/api/tandem/v1/")
                && region.forwards_reads(&workspace_header(&req)))
        {
            // Access changes go to whoever leads the access log.
            let ws = match is_access_path(&path) {
                true => ACCESS_WORKSPACE.to_owned(),
                false => workspace_header(&req),
            };
            if let Some(leader) = region.forward_target(&ws) {
                return crate::region::front_door::forward(&state.http, &leader, req)
                    .await
                    .unwrap_or_else(|e| {
                        error_response(&MlflowError::new(
                            tandem_core::ErrorCode::TemporarilyUnavailable,
                            format!("the leader of '{ws}' did not answer: {e}"),
                        ))
                    });
            }
            if region.forwards_reads(&ws) {
                // A hot/cold secondary has no copy of its own to fall back on.
                return error_response(&MlflowError::unavailable(format!("region '{}' keeps no copy of '{ws}' (hot/cold) and knows no leader yet; try again", region.name)));
            }
        }
        if let Some(rest) = path.strip_prefix("/api/tandem/v1/") {
            if let Some(r) = region_endpoint(&state, region, rest, &method, req.uri().query()).await
            {
                return r;
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/gateway/") {
        return invoke_endpoint(&state, rest.to_owned(), req).await;
    }
    if path == "/v1/traces" {
        return otlp_traces(&state, req).await;
    }
    if let Some(rest) = path.strip_prefix("/api/tandem/v1/uploads/") {
        let rest = rest.to_owned();
        return upload_part(&state, &rest, req)
            .await
            .unwrap_or_else(|e| error_response(&e));
    }
    if path == "/graphql" {
        return json_endpoint(state, api::GRAPHQL_ROUTES, &[], "graphql".to_owned(), req).await;
    }
    if let Some(rest) = path.strip_prefix("/api/tandem/v1/") {
        if rest.starts_with("access/") {
            let r =
                json_endpoint(state.clone(), api::ACCESS_ROUTES, &[], rest.to_owned(), req).await;
            if method != Method::GET {
                // This server's own write: the next request sees it, whatever the outcome.
                state.auth.invalidate();
            }
            return r;
        }
        return json_endpoint(state, api::TANDEM_ROUTES, &[], rest.to_owned(), req).await;
    }
    let Some(rest) = strip_version(&path) else {
        return not_found();
    };
    if rest == "mlflow/server-info" && method == Method::GET {
        return json_response(&json!({
            "store_type": "SqlStore",
            "workspaces_enabled": true,
            "trace_archival_enabled": false,
            "multipart_uploads_enabled": true,
            "multipart_downloads_enabled": false,
            "presigned_upload_run_id_supported": false,
            "presigned_upload_model_id_supported": false,
            "features_enabled": { "gateway": true },
        }));
    }
    if let Some(art) = rest.strip_prefix("mlflow-artifacts/") {
        let art = art.to_owned();
        return match artifacts_endpoint(&state, &art, req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
    }
    if is_access_path(&path) && method != Method::GET {
        let r = json_endpoint(
            state.clone(),
            api::ROUTES,
            api::TEXT_ROUTES,
            rest.to_owned(),
            req,
        )
        .await;
        state.auth.invalidate();
        return r;
    }
    json_endpoint(state, api::ROUTES, api::TEXT_ROUTES, rest.to_owned(), req).await
}

/// `POST /v1/traces`: OTLP/HTTP span export (protobuf or JSON) into the experiment named by
/// `x-mlflow-experiment-id`, answered as MLflow's server answers it.
async fn otlp_traces(state: &AppState, req: Request) -> Response {
    if req.method() != Method::POST {
        return crate::invocations::detail(
            StatusCode::METHOD_NOT_ALLOWED.as_u16(),
            "Method Not Allowed",
        );
    }
    let Some(experiment_id) = req
        .headers()
        .get("x-mlflow-experiment-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return crate::invocations::detail(
            StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            "Missing header: x-mlflow-experiment-id",
        );
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    if media != "application/x-protobuf" && media != "application/json" {
        return crate::invocations::detail(StatusCode::BAD_REQUEST.as_u16(),
            format!("Invalid Content-Type: {content_type}. Expected: application/x-protobuf or application/json"),
        );
    }
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let ctx = match ctx_for(state, req.headers(), &caller_of(&req), false, false).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_JSON_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return crate::invocations::detail(
                StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
                format!("The request body could not be read: {e}"),
            )
        }
    };
    let bytes = match encoding {
        None => bytes.to_vec(),
        Some(enc) => match crate::otlp::decompress(&bytes, &enc, MAX_JSON_BODY) {
            Ok(b) => b,
            Err(e @ crate::otlp::OtlpError::Inflated(_)) => {
                return crate::invocations::detail(
                    StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
                    e.to_string(),
                )
            }
            Err(e) => {
                return crate::invocations::detail(StatusCode::BAD_REQUEST.as_u16(), e.to_string())
            }
        },
    };
    let spans = match if media == "application/json" {
        crate::otlp::decode_json(&bytes)
    } else {
        crate::otlp::decode_protobuf(&bytes)
    } {
        Ok(s) => s,
        Err(e) => {
            return crate::invocations::detail(StatusCode::BAD_REQUEST.as_u16(), e.to_string())
        }
    };
    let ws = ctx.workspace.clone();
    match blocking(move || crate::api::traces::log_spans(&ctx, &experiment_id, spans)).await {
        Ok(_) => {
            if let Err(e) = after_write(state, &ws).await {
                return error_response(&e);
            }
            // An empty ExportTraceServiceResponse (no bytes), as MLflow's server answers
            // both encodings.
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::<u8>::new(),
            )
                .into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `POST /gateway/...`: an AI gateway call (see `invocations`), by the region serving it.
async fn invoke_endpoint(state: &AppState, rest: String, req: Request) -> Response {
    if req.method() != Method::POST {
        return crate::invocations::detail(405, "Method Not Allowed");
    }
    let ctx = match ctx_for(state, req.headers(), &caller_of(&req), false, false).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_JSON_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return crate::invocations::detail(
                413,
                format!("The request body could not be read: {e}"),
            )
        }
    };
    let body: Json = match serde_json::from_slice(&bytes) {
        Ok(v @ Json::Object(_)) => v,
        Ok(_) => Json::Object(Default::default()),
        Err(e) => return crate::invocations::detail(400, format!("Invalid JSON payload: {e}")),
    };
    let region = state.region.as_ref().map(|r| r.name.clone());
    crate::invocations::invoke(ctx, &rest, body, region).await
}

/// `texts`: handlers that serve some of `table`'s routes in their place, rendering text.
async fn json_endpoint(
    state: AppState,
    table: &'static [(&'static str, &'static str, api::Handler)],
    texts: &'static [(&'static str, &'static str, api::TextHandler)],
    path: String,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let is_replica = req.headers().contains_key("x-tandem-replica");
    let (handler, mut params) = match api::route(table, method.as_str(), &path) {
        Lookup::Found(h, p) => (h, p),
        Lookup::WrongMethod => return method_not_allowed(),
        Lookup::NotFound => return not_found(),
    };
    // Text renderings serve reads only: they skip the after-write steps below.
    let text = api::text_handler(texts, method.as_str(), &path);
    let admin = api::is_workspace_admin(&path);
    let ctx = match ctx_for(&state, req.headers(), &caller_of(&req), admin, false).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let caller = caller_of(&req);
    let narrowed = req.extensions().get::<Narrowed>().is_some();
    let mut request = match read_params(req).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    // Path parameters win over body fields of the same name.
    for (k, v) in std::mem::take(&mut params.0) {
        request.0.insert(k, v);
    }
    // The region serving the request, for the routes that answer per region (a client
    // cannot name it).
    request.0.remove("_tandem_region");
    if let Some(r) = &state.region {
        request.set("_tandem_region", r.name.clone());
    }
    // MLflow's workspace API answers 201 Created and 204 No Content.
    let created = method == Method::POST && path == "mlflow/workspaces";
    let no_content = method == Method::DELETE && path.starts_with("mlflow/workspaces/");
    let write = is_write(&method, &format!("/{path}"));
    let ctx_ws = ctx.workspace.clone();
    let (ws, after, wait_ms) = (
        ctx.workspace.clone(),
        request.opt_i64("after").ok().flatten(),
        request.opt_i64("wait_ms").ok().flatten(),
    );
    let long_poll = path.ends_with("/changes") && wait_ms.is_some_and(|w| w > 0);
    let region = state.region.clone();
    let changes_ws = request
        .0
        .get("workspace_name")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if let (Some(region), true, Some(cws), Some(a)) = (&region, is_replica, &changes_ws, after) {
        // A replica asking for events after N has durably applied N.
        region.record_ack(cws, a.max(0) as u64);
    }
    let result = if long_poll {
        let notify = region.clone();
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(wait_ms.unwrap_or(0).clamp(0, 10_000) as u64);
        loop {
            let waiter = notify.as_ref().map(|r| r.committed.notified());
            let (c, q) = (ctx.clone(), request.clone());
            let r = blocking(move || handler(&c, &q)).await;
            let empty = matches!(&r, Ok(v) if v["events"].as_array().is_some_and(|e| e.is_empty()));
            match (empty, waiter) {
                (true, Some(w)) if tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, w).await;
                }
                _ => break r,
            }
        }
    } else if let Some(text) = text {
        match blocking(move || text(&ctx, &request)).await {
            Ok(body) => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response()
            }
            Err(e) => return error_response(&e),
        }
    } else {
        blocking(move || handler(&ctx, &request)).await
    };
    if write && result.is_ok() {
        if let Err(e) = after_write(&state, &ws).await {
            return error_response(&e);
        }
    }
    let result = match result {
        Ok(mut v) if narrowed => {
            let (auth, ws) = (state.auth.clone(), ctx_ws.clone());
            blocking(move || {
                filter_listing(&auth, &caller, &ws, &mut v);
                Ok(v)
            })
            .await
        }
        // A workspace list shows only the workspaces the caller may read something in.
        Ok(mut v) if method == Method::GET && path == "mlflow/workspaces" => {
            let auth = state.auth.clone();
            blocking(move || {
                if let Some(list) = v["workspaces"].as_array_mut() {
                    list.retain(|w| {
                        w["name"]
                            .as_str()
                            .is_some_and(|n| auth.sees_workspace(&caller, "workspaces/read", n))
                    });
                }
                Ok(v)
            })
            .await
        }
        other => other,
    };
    match result {
        Ok(_) if no_content => StatusCode::NO_CONTENT.into_response(),
        Ok(v) if created => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Ok(mut v) => {
            if std::ptr::eq(table, api::ROUTES) && api::answers_protobuf(&path) {
                api::omit_empty_lists(&mut v);
            }
            json_response(&v)
        }
        Err(e) => error_response(&e),
    }
}

/// As MLflow's server reads them: a GET's parameters come from its query string, or, when it
/// has none, from a JSON body (mlflow-export-import sends its GETs that way); other methods
/// send JSON (some clients send DELETE parameters in the query string, so an empty body falls
/// back to it).
async fn read_params(mut req: Request) -> Result<Req, MlflowError> {
    peek_params(&mut req).await
}

/// After any acknowledged-to-be write: wakes long-polling replicas and, in sync mode, waits
/// until the standby has everything up to the current head before the client hears "done".
async fn after_write(state: &AppState, ws: &str) -> Result<(), MlflowError> {
    let Some(region) = &state.region else {
        return Ok(());
    };
    region.committed.notify_waiters();
    if region.is_leader(ws) && region.write_ack(ws) == crate::region::deployment::WriteAck::Sync {
        let s = state.store.clone();
        let w = ws.to_owned();
        let head = blocking(move || s.read(|tx| queries::log_head(tx, &w)).map_err(Into::into))
            .await?
            .map(|h| h.seq)
            .unwrap_or(0);
        // Long enough for the standby to fetch a large artifact the event names.
        region
            .wait_for_replica(ws, head, std::time::Duration::from_secs(60))
            .await?;
    }
    Ok(())
}

/// tandem's region endpoints: status, switchover.
async fn region_endpoint(
    state: &AppState,
    region: &std::sync::Arc<crate::region::RegionState>,
    rest: &str,
    method: &Method,
    query: Option<&str>,
) -> Option<Response> {
    let q = Req::from_query(query_pairs(query));
    match (method.as_str(), rest) {
        ("GET", "status") => {
            let (r, s) = (region.clone(), state.store.clone());
            let ws = blocking(move || Ok(r.status(&s))).await.unwrap_or_default();
            let s = state.store.clone();
            let jobs = blocking(move || Ok(crate::scheduler::running_by_region(&s)))
                .await
                .unwrap_or_default();
            Some(json_response(
                &json!({ "region": region.name, "pid": std::process::id(), "url": region.deployment.region(&region.name).map(|r| r.url.clone()), "workspaces": ws, "compute": &*state.compute, "jobs": jobs, "vault": { "master_key_id": state.vault.as_ref().map(|v| v.current().id.clone()) }, "gateway_probes": state.probes.snapshot() }),
            ))
        }
        ("POST", r) if r.starts_with("workspaces/") && r.ends_with("/drain") => {
            let ws = r
                .trim_start_matches("workspaces/")
                .trim_end_matches("/drain");
            Some(match region.drain(ws) {
                Ok(epoch) => {
                    let (s, w) = (state.store.clone(), ws.to_owned());
                    let head = blocking(move || {
                        s.read(|tx| queries::log_head(tx, &w)).map_err(Into::into)
                    })
                    .await
                    .ok()
                    .flatten()
                    .map(|h| h.seq)
                    .unwrap_or(0);
                    json_response(&json!({ "workspace": ws, "epoch": epoch, "head_seq": head }))
                }
                Err(e) => error_response(&e),
            })
        }
        ("GET", r) if r.starts_with("workspaces/") && r.ends_with("/diverged") => {
            let ws = r
                .trim_start_matches("workspaces/")
                .trim_end_matches("/diverged")
                .to_owned();
            let s = state.store.clone();
            Some(
                match blocking(move || s.diverged(&ws).map_err(Into::into)).await {
                    Ok(list) => json_response(
                        &json!({ "region": region.name, "diverged": list.iter().map(|(e, status)| json!({ "seq": e.seq, "epoch": e.epoch, "origin": e.origin, "principal": e.principal, "op": e.op, "payload": e.payload, "status": status })).collect::<Vec<_>>() }),
                    ),
                    Err(e) => error_response(&e),
                },
            )
        }
        ("POST", r)
            if r.starts_with("workspaces/")
                && (r.ends_with("/discard") || r.ends_with("/reapply"))
                && r.contains("/diverged/") =>
        {
            // workspaces/{ws}/diverged/{epoch}/{seq}/{action}
            let parts: Vec<&str> = r.split('/').collect();
            let (Some(ws), Some(epoch), Some(seq), Some(action)) = (
                parts.get(1),
                parts.get(3).and_then(|e| e.parse::<u64>().ok()),
                parts.get(4).and_then(|e| e.parse::<u64>().ok()),
                parts.get(5),
            ) else {
                return Some(error_response(&MlflowError::invalid(
                    "use workspaces/{ws}/diverged/{epoch}/{seq}/discard or /reapply",
                )));
            };
            let (ws, action) = (ws.to_string(), action.to_string());
            Some(
                match settle_diverged(state, region, &ws, epoch, seq, &action).await {
                    Ok(v) => json_response(&v),
                    Err(e) => error_response(&e),
                },
            )
        }
        ("POST", r) if r.starts_with("workspaces/") && r.ends_with("/undrain") => {
            region.undrain(
                r.trim_start_matches("workspaces/")
                    .trim_end_matches("/undrain"),
            );
            Some(json_response(&json!({})))
        }
        ("POST", r) if r.starts_with("workspaces/") && r.ends_with("/take-over") => {
            let ws = r
                .trim_start_matches("workspaces/")
                .trim_end_matches("/take-over")
                .to_owned();
            let force = q.opt_bool("force").ok().flatten().unwrap_or(false);
            Some(
                match crate::region::switchover::take_over(state, region, &ws, force).await {
                    Ok(v) => json_response(&v),
                    Err(e) => error_response(&e),
                },
            )
        }
        _ => None,
    }
}

async fn settle_diverged(
    state: &AppState,
    region: &std::sync::Arc<crate::region::RegionState>,
    ws: &str,
    epoch: u64,
    seq: u64,
    action: &str,
) -> Result<Json, MlflowError> {
    let s = state.store.clone();
    let w = ws.to_owned();
    let list = blocking(move || s.diverged(&w).map_err(Into::into)).await?;
    let (event, status) = list
        .into_iter()
        .find(|(e, _)| e.epoch == epoch && e.seq == seq)
        .ok_or_else(|| {
            MlflowError::not_found(format!(
                "no diverged event {epoch}/{seq} of '{ws}' in region '{}'",
                region.name
            ))
        })?;
    if status != "pending" {
        return Err(MlflowError::invalid(format!(
            "diverged event {epoch}/{seq} is already {status}"
        )));
    }
    let new_seq = match action {
        "discard" => None,
        "reapply" => {
            // The operation is written again, as a new event, by whoever leads the workspace now.
            let leader = region
                .forward_target(ws)
                .or_else(|| {
                    region
                        .is_leader(ws)
                        .then(|| {
                            region
                                .deployment
                                .region(&region.name)
                                .map(|r| r.url.clone())
                        })
                        .flatten()
                })
                .ok_or_else(|| {
                    MlflowError::new(
                        tandem_core::ErrorCode::TemporarilyUnavailable,
                        "no leader is known",
                    )
                })?;
            let resp = region
                .internal()
                .post(format!("{leader}/api/tandem/v1/workspaces/{ws}/apply"))
                .json(&json!({ "op": event.op, "payload": event.payload }))
                .send()
                .await
                .map_err(|e| {
                    MlflowError::new(
                        tandem_core::ErrorCode::TemporarilyUnavailable,
                        e.to_string(),
                    )
                })?;
            let ok = resp.status().is_success();
            let v: Json = resp.json().await.unwrap_or(Json::Null);
            if !ok {
                return Err(MlflowError::invalid(format!(
                    "the leader could not re-apply it: {}",
                    v["message"].as_str().unwrap_or(&v.to_string())
                )));
            }
            v["seq"].as_u64()
        }
        other => return Err(MlflowError::invalid(format!("unknown action '{other}'"))),
    };
    let s = state.store.clone();
    let w = ws.to_owned();
    let status = if action == "discard" {
        "discarded"
    } else {
        "reapplied"
    };
    blocking(move || {
        s.settle_diverged(&w, epoch, seq, status)
            .map_err(Into::into)
    })
    .await?;
    Ok(json!({ "workspace": ws, "epoch": epoch, "seq": seq, "status": status, "new_seq": new_seq }))
}

/// Prometheus metrics: replication lag, epoch, role, lease state per workspace.
async fn metrics(state: &AppState) -> Response {
    let mut out = String::new();
    let probes = state.probes.snapshot();
    if !probes.is_empty() {
        out.push_str("# HELP tandem_gateway_upstream_up 1 if the AI gateway endpoint's provider URL for the region answered its last probe.\n# TYPE tandem_gateway_upstream_up gauge\n");
        for p in &probes {
            out.push_str(&format!(
                "tandem_gateway_upstream_up{{workspace=\"{}\",endpoint=\"{}\",region=\"{}\"}} {}\n",
                p.workspace, p.endpoint, p.region, p.up as u8
            ));
        }
        out.push_str("# HELP tandem_gateway_upstream_probe_seconds How long the last probe of the provider URL took.\n# TYPE tandem_gateway_upstream_probe_seconds gauge\n");
        for p in &probes {
            out.push_str(&format!(
                "tandem_gateway_upstream_probe_seconds{{workspace=\"{}\",endpoint=\"{}\",region=\"{}\"}} {:.3}\n",
                p.workspace, p.endpoint, p.region, p.latency_ms as f64 / 1000.0
            ));
        }
    }
    if let Some(region) = &state.region {
        let (r, s) = (region.clone(), state.store.clone());
        let ws = blocking(move || Ok(r.status(&s))).await.unwrap_or_default();
        out.push_str("# HELP tandem_replication_lag_events Events the leader has that this region has not applied.\n# TYPE tandem_replication_lag_events gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_replication_lag_events{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name,
                w.workspace,
                w.replication_lag_events
                    .map_or("NaN".to_owned(), |n| n.to_string())
            ));
        }
        out.push_str("# HELP tandem_replication_lag_seconds Time since this region last had everything the leader had.\n# TYPE tandem_replication_lag_seconds gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_replication_lag_seconds{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name,
                w.workspace,
                w.replication_lag_ms
                    .map_or("NaN".to_owned(), |ms| format!("{:.3}", ms as f64 / 1000.0))
            ));
        }
        out.push_str("# HELP tandem_epoch The workspace's current leadership epoch as this region knows it.\n# TYPE tandem_epoch gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_epoch{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name, w.workspace, w.epoch
            ));
        }
        out.push_str("# HELP tandem_leader 1 if this region leads the workspace.\n# TYPE tandem_leader gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_leader{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name,
                w.workspace,
                (w.role == crate::region::Role::Leader) as u8
            ));
        }
        out.push_str("# HELP tandem_lease_held 1 if this region holds an unexpired lease on the workspace.\n# TYPE tandem_lease_held gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_lease_held{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name,
                w.workspace,
                (w.lease == "held") as u8
            ));
        }
        out.push_str("# HELP tandem_log_head_seq The workspace's change-log head in this region.\n# TYPE tandem_log_head_seq gauge\n");
        for w in &ws {
            out.push_str(&format!(
                "tandem_log_head_seq{{region=\"{}\",workspace=\"{}\"}} {}\n",
                region.name, w.workspace, w.head_seq
            ));
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

/// The base URL clients reached this server by, for URLs it hands back (multipart parts).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// MLflow's proxied multipart upload: `create` hands out one URL per part (served by
/// `upload_part`), `complete` joins the parts into the artifact and logs it, `abort` drops them.
async fn multipart(
    ctx: &Ctx,
    rest: &str,
    dir: &str,
    req: Request,
) -> Result<Response, MlflowError> {
    let base = base_url(req.headers());
    let params = read_params(req).await?;
    let local = params.str("path")?;
    let file_name = local.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
    if file_name.is_empty() {
        return Err(MlflowError::invalid("'path' must name a file"));
    }
    let dest = if dir.is_empty() {
        file_name
    } else {
        format!("{}/{file_name}", dir.trim_end_matches('/'))
    };
    tandem_core::validate::artifact_path(&dest)?;
    if rest.starts_with("mpu/create/") {
        let num_parts = params.opt_i64("num_parts")?.unwrap_or(1);
        let n = u32::try_from(num_parts)
            .map_err(|_| MlflowError::invalid(format!("Invalid num_parts {num_parts}")))?;
        let id = ctx
            .artifacts
            .create_upload(&ctx.workspace, &dest, n)
            .await?;
        let credentials: Vec<Json> = (1..=n).map(|i| json!({ "url": format!("{base}/api/tandem/v1/uploads/{id}/parts/{i}"), "part_number": i, "headers": {} })).collect();
        return Ok(json_response(
            &json!({ "upload_id": id, "credentials": credentials }),
        ));
    }
    let id = params.str("upload_id")?;
    if rest.starts_with("mpu/abort/") {
        ctx.artifacts
            .abort_upload(&ctx.workspace, &dest, &id)
            .await?;
        return Ok(json_response(&json!({})));
    }
    let parts = params
        .list("parts")?
        .iter()
        .map(|p| {
            Ok((
                u32::try_from(p.i64("part_number")?)
                    .map_err(|_| MlflowError::invalid("Invalid part_number"))?,
                p.opt_str("etag")?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, MlflowError>>()?;
    let (size, sha256) = ctx
        .artifacts
        .complete_upload(&ctx.workspace, &dest, &id, &parts)
        .await?;
    let c = ctx.clone();
    blocking(move || {
        c.write(|_| {
            Ok(crate::store::Decision::change(
                (),
                Op::PutArtifact {
                    path: dest.clone(),
                    size,
                    sha256: sha256.clone(),
                },
            ))
        })
    })
    .await?;
    Ok(json_response(&json!({})))
}

/// `PUT /api/tandem/v1/uploads/{upload_id}/parts/{n}`: one part of a multipart upload. The
/// client sends these without its usual headers; the 128-bit random upload ID is the capability.
async fn upload_part(state: &AppState, rest: &str, req: Request) -> Result<Response, MlflowError> {
    let mut segs = rest.split('/');
    let (Some(id), Some("parts"), Some(n), None) =
        (segs.next(), segs.next(), segs.next(), segs.next())
    else {
        return Ok(not_found());
    };
    if req.method() != Method::PUT {
        return Ok(method_not_allowed());
    }
    let part: u32 = n
        .parse()
        .map_err(|_| MlflowError::invalid(format!("Invalid part number '{n}'")))?;
    let etag = state
        .artifacts
        .put_part(id, part, req.into_body().into_data_stream())
        .await?;
    Ok((StatusCode::OK, [(header::ETAG, format!("\"{etag}\""))], "").into_response())
}

/// MLflow's UI download routes: `GET /get-artifact?run_uuid=R&path=P` (a run's file) and
/// `GET /model-versions/get-artifact?name=N&version=V&path=P` (a registered version's). Only
/// files below this server's own artifact store are served: a run or version whose stored
/// location is anywhere else (a path or URI a client gave) is refused, never opened.
async fn stored_artifact(
    state: &AppState,
    route: &str,
    req: Request,
) -> Result<Response, MlflowError> {
    let q = Req::from_query(query_pairs(req.uri().query()));
    let ctx = ctx_for(state, req.headers(), &caller_of(&req), false, true).await?;
    let path = q.str("path")?;
    tandem_core::validate::artifact_path(&path)?;
    let c = ctx.clone();
    let root = if route == "/get-artifact" {
        let run_id = match q.opt_str("run_uuid")?.filter(|s| !s.is_empty()) {
            Some(r) => r,
            None => q.str("run_id")?,
        };
        blocking(move || api::tracking::run_artifact_root(&c, &run_id)).await?
    } else {
        let (name, version) = (q.str("name")?, q.i64("version")?);
        blocking(move || api::registry::download_location(&c, &name, version)).await?
    };
    let Some(rel) = crate::artifacts::relative_to_workspace(&root) else {
        return Err(MlflowError::invalid(format!(
            "The artifacts of '{root}' are not in this server's artifact store; tandem serves only what it stores (read them from where they are)."
        )));
    };
    let full = if rel.is_empty() {
        path.clone()
    } else {
        format!("{}/{path}", rel.trim_end_matches('/'))
    };
    let (stream, len) = ctx.artifacts.get(&ctx.workspace, &full).await?;
    download(stream, len, &path)
}

/// A file download: its bytes streamed, named by the last segment of `path`.
fn download(
    stream: crate::artifacts::ByteStream,
    len: u64,
    path: &str,
) -> Result<Response, MlflowError> {
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace('"', "");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(stream))
        .map_err(|e| MlflowError::internal(e.to_string()))
}

async fn artifacts_endpoint(
    state: &AppState,
    rest: &str,
    req: Request,
) -> Result<Response, MlflowError> {
    let method = req.method().clone();
    let (kind, path) = if rest == "artifacts" {
        ("list", String::new())
    } else if let Some(p) = rest.strip_prefix("artifacts/") {
        ("file", api::percent_decode(p))
    } else if let Some(p) = rest.strip_prefix("mpu/create/") {
        ("mpu", api::percent_decode(p))
    } else if let Some(p) = rest.strip_prefix("mpu/complete/") {
        ("mpu", api::percent_decode(p))
    } else if let Some(p) = rest.strip_prefix("mpu/abort/") {
        ("mpu", api::percent_decode(p))
    } else if rest.starts_with("presigned/") {
        ("presigned", String::new())
    } else {
        return Ok(not_found());
    };
    if kind != "list" && !path.is_empty() {
        tandem_core::validate::artifact_path(&path)?;
    }
    let ctx = ctx_for(state, req.headers(), &caller_of(&req), false, true).await?;
    match (kind, method.as_str()) {
        ("list", "GET") => {
            let q = Req::from_query(query_pairs(req.uri().query()));
            let path = q.opt_str("path")?.unwrap_or_default();
            let files = ctx.artifacts.list(&ctx.workspace, &path).await?;
            let files: Vec<Json> = files
                .into_iter()
                .map(|f| {
                    let mut j = json!({ "path": f.name, "is_dir": f.is_dir });
                    if let Some(s) = f.size {
                        j["file_size"] = s.into();
                    }
                    j
                })
                .collect();
            Ok(json_response(&json!({ "files": files })))
        }
        ("file", "GET") => {
            let (stream, len) = ctx.artifacts.get(&ctx.workspace, &path).await?;
            download(stream, len, &path)
        }
        ("file", "PUT") => {
            tandem_core::validate::artifact_path(&path)?;
            let stream = req.into_body().into_data_stream();
            let (size, sha256) = ctx.artifacts.put(&ctx.workspace, &path, stream).await?;
            let c = ctx.clone();
            blocking(move || {
                c.write(|_| {
                    Ok(crate::store::Decision::change(
                        (),
                        Op::PutArtifact {
                            path: path.clone(),
                            size,
                            sha256: sha256.clone(),
                        },
                    ))
                })
            })
            .await?;
            after_write(state, &ctx.workspace).await?;
            Ok(json_response(&json!({})))
        }
        ("file", "DELETE") => {
            tandem_core::validate::artifact_path(&path)?;
            ctx.artifacts.delete(&ctx.workspace, &path).await?;
            let c = ctx.clone();
            blocking(move || {
                c.write(|_| {
                    Ok(crate::store::Decision::change(
                        (),
                        Op::DeleteArtifacts { path: path.clone() },
                    ))
                })
            })
            .await?;
            after_write(state, &ctx.workspace).await?;
            Ok(json_response(&json!({})))
        }
        ("mpu", "POST") => {
            let r = multipart(&ctx, rest, &path, req).await?;
            after_write(state, &ctx.workspace).await?;
            Ok(r)
        }
        ("presigned", _) => Err(MlflowError::new(
            tandem_core::ErrorCode::NotImplemented,
            "Presigned downloads are not enabled on this server; it streams downloads itself.",
        )),
        _ => Ok(method_not_allowed()),
    }
}
