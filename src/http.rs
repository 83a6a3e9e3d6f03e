//! The HTTP edge: routing, bodies, headers, and MLflow's error shape. No business rules here.
//!
//! Architecture invariant: this module knows HTTP and the route table, not the store's SQL;
//! every JSON endpoint goes through `api::route` and runs on the blocking pool.

use crate::api::{self, workspaces::DEFAULT_WORKSPACE, Ctx, Lookup, Req};
use crate::artifacts::Artifacts;
use crate::store::{queries, Store};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Op};

/// The MLflow version tandem's API matches; `GET /version` answers it.
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";
/// The JSON body limit (dataset profiles may be 16 MiB).
pub const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub artifacts: Artifacts,
}

pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

pub fn error_response(e: &MlflowError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error_code": e.code.as_str(), "message": e.message });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn json_response(v: &Json) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// Unknown routes get a plain (non-JSON) 404, as from MLflow's Flask app: the client uses
/// that to tell "endpoint missing" from "resource missing".
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "404 Not Found: the requested URL was not found on the server.\n").into_response()
}

fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "405 Method Not Allowed\n").into_response()
}

/// Who is asking: the user name of HTTP basic auth (what the mlflow client sends from
/// MLFLOW_TRACKING_USERNAME), or "anonymous".
fn principal(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split(':').next().map(str::to_owned))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "anonymous".to_owned())
}

fn workspace_of(headers: &HeaderMap) -> Result<String, MlflowError> {
    match headers.get("x-mlflow-workspace") {
        None => Ok(DEFAULT_WORKSPACE.to_owned()),
        Some(v) => {
            let name = v.to_str().map_err(|_| MlflowError::invalid("The X-MLFLOW-WORKSPACE header is not valid text"))?.trim().to_owned();
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
            (api::percent_decode(&k.replace('+', " ")), api::percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Runs a blocking closure on the blocking pool; a panic becomes INTERNAL_ERROR, never a
/// dropped connection or a dead server.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, MlflowError> + Send + 'static) -> Result<T, MlflowError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("handler failed: {e}");
            Err(MlflowError::internal("internal error while handling the request"))
        }
    }
}

async fn ctx_for(state: &AppState, headers: &HeaderMap, admin: bool) -> Result<Ctx, MlflowError> {
    let workspace = workspace_of(headers)?;
    let ctx = Ctx { store: state.store.clone(), artifacts: state.artifacts.clone(), workspace, principal: principal(headers) };
    if !admin {
        let c = ctx.clone();
        let exists = blocking(move || c.read(|tx| queries::workspace_exists(tx, &c.workspace))).await?;
        if !exists {
            return Err(MlflowError::not_found(format!("Workspace '{}' not found.", ctx.workspace)));
        }
    }
    Ok(ctx)
}

/// Splits `/api/2.0/mlflow/x` or `/ajax-api/3.0/mlflow/x` into ("mlflow/x").
fn strip_version(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/").or_else(|| path.strip_prefix("/ajax-api/"))?;
    let (version, rest) = rest.split_once('/')?;
    let mut parts = version.split('.');
    let ok = parts.next().is_some_and(|m| m.chars().all(|c| c.is_ascii_digit()) && !m.is_empty()) && parts.all(|p| p.chars().all(|c| c.is_ascii_digit()));
    ok.then_some(rest)
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/health") => return (StatusCode::OK, "OK").into_response(),
        ("GET", "/version") => return (StatusCode::OK, MLFLOW_COMPAT_VERSION).into_response(),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/api/tandem/v1/uploads/") {
        let rest = rest.to_owned();
        return upload_part(&state, &rest, req).await.unwrap_or_else(|e| error_response(&e));
    }
    if let Some(rest) = path.strip_prefix("/api/tandem/v1/") {
        return json_endpoint(state, api::TANDEM_ROUTES, rest.to_owned(), req).await;
    }
    let Some(rest) = strip_version(&path) else { return not_found() };
    if rest == "mlflow/server-info" && method == Method::GET {
        return json_response(&json!({
            "store_type": "SqlStore",
            "workspaces_enabled": true,
            "trace_archival_enabled": false,
            "multipart_uploads_enabled": true,
            "multipart_downloads_enabled": false,
            "presigned_upload_run_id_supported": false,
            "presigned_upload_model_id_supported": false,
            "features_enabled": { "gateway": false },
        }));
    }
    if let Some(art) = rest.strip_prefix("mlflow-artifacts/") {
        let art = art.to_owned();
        return match artifacts_endpoint(&state, &art, req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
    }
    json_endpoint(state, api::ROUTES, rest.to_owned(), req).await
}

async fn json_endpoint(state: AppState, table: &'static [(&'static str, &'static str, api::Handler)], path: String, req: Request) -> Response {
    let method = req.method().clone();
    let (handler, mut params) = match api::route(table, method.as_str(), &path) {
        Lookup::Found(h, p) => (h, p),
        Lookup::WrongMethod => return method_not_allowed(),
        Lookup::NotFound => return not_found(),
    };
    let admin = api::is_workspace_admin(&path);
    let ctx = match ctx_for(&state, req.headers(), admin).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let mut request = match read_params(req).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    // Path parameters win over body fields of the same name.
    for (k, v) in std::mem::take(&mut params.0) {
        request.0.insert(k, v);
    }
    // MLflow's workspace API answers 201 Created and 204 No Content.
    let created = method == Method::POST && path == "mlflow/workspaces";
    let no_content = method == Method::DELETE && path.starts_with("mlflow/workspaces/");
    match blocking(move || handler(&ctx, &request)).await {
        Ok(_) if no_content => StatusCode::NO_CONTENT.into_response(),
        Ok(v) if created => (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Ok(v) => json_response(&v),
        Err(e) => error_response(&e),
    }
}

/// GET parameters come from the query string; other methods send JSON (some clients send
/// DELETE parameters in the query string, so an empty body falls back to it).
async fn read_params(req: Request) -> Result<Req, MlflowError> {
    let query = query_pairs(req.uri().query());
    if req.method() == Method::GET {
        return Ok(Req::from_query(query));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
        .await
        .map_err(|_| MlflowError::invalid(format!("The request body is larger than {MAX_JSON_BODY} bytes or was interrupted")))?;
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Req::from_query(query));
    }
    let v: Json = serde_json::from_slice(&body).map_err(|e| MlflowError::invalid(format!("Malformed JSON request body: {e}")))?;
    Req::from_json(v)
}

/// The base URL clients reached this server by, for URLs it hands back (multipart parts).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).filter(|p| *p == "https" || *p == "http").unwrap_or("http");
    format!("{proto}://{host}")
}

/// MLflow's proxied multipart upload: `create` hands out one URL per part (served by
/// `upload_part`), `complete` joins the parts into the artifact and logs it, `abort` drops them.
async fn multipart(ctx: &Ctx, rest: &str, dir: &str, req: Request) -> Result<Response, MlflowError> {
    let base = base_url(req.headers());
    let params = read_params(req).await?;
    let local = params.str("path")?;
    let file_name = local.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
    if file_name.is_empty() {
        return Err(MlflowError::invalid("'path' must name a file"));
    }
    let dest = if dir.is_empty() { file_name } else { format!("{}/{file_name}", dir.trim_end_matches('/')) };
    tandem_core::validate::artifact_path(&dest)?;
    if rest.starts_with("mpu/create/") {
        let num_parts = params.opt_i64("num_parts")?.unwrap_or(1);
        let n = u32::try_from(num_parts).map_err(|_| MlflowError::invalid(format!("Invalid num_parts {num_parts}")))?;
        let id = ctx.artifacts.create_upload(&ctx.workspace, &dest, n).await?;
        let credentials: Vec<Json> = (1..=n).map(|i| json!({ "url": format!("{base}/api/tandem/v1/uploads/{id}/parts/{i}"), "part_number": i, "headers": {} })).collect();
        return Ok(json_response(&json!({ "upload_id": id, "credentials": credentials })));
    }
    let id = params.str("upload_id")?;
    if rest.starts_with("mpu/abort/") {
        ctx.artifacts.abort_upload(&ctx.workspace, &dest, &id).await?;
        return Ok(json_response(&json!({})));
    }
    let parts = params.list("parts")?.iter().map(|p| Ok((u32::try_from(p.i64("part_number")?).map_err(|_| MlflowError::invalid("Invalid part_number"))?, p.opt_str("etag")?.unwrap_or_default()))).collect::<Result<Vec<_>, MlflowError>>()?;
    let (size, sha256) = ctx.artifacts.complete_upload(&ctx.workspace, &dest, &id, &parts).await?;
    let c = ctx.clone();
    blocking(move || c.write(|_| Ok(crate::store::Decision::change((), Op::PutArtifact { path: dest.clone(), size, sha256: sha256.clone() })))).await?;
    Ok(json_response(&json!({})))
}

/// `PUT /api/tandem/v1/uploads/{upload_id}/parts/{n}`: one part of a multipart upload. The
/// client sends these without its usual headers; the 128-bit random upload ID is the capability.
async fn upload_part(state: &AppState, rest: &str, req: Request) -> Result<Response, MlflowError> {
    let mut segs = rest.split('/');
    let (Some(id), Some("parts"), Some(n), None) = (segs.next(), segs.next(), segs.next(), segs.next()) else { return Ok(not_found()) };
    if req.method() != Method::PUT {
        return Ok(method_not_allowed());
    }
    let part: u32 = n.parse().map_err(|_| MlflowError::invalid(format!("Invalid part number '{n}'")))?;
    let etag = state.artifacts.put_part(id, part, req.into_body().into_data_stream()).await?;
    Ok((StatusCode::OK, [(header::ETAG, format!("\"{etag}\""))], "").into_response())
}

async fn artifacts_endpoint(state: &AppState, rest: &str, req: Request) -> Result<Response, MlflowError> {
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
    let ctx = ctx_for(state, req.headers(), false).await?;
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
            let name = path.rsplit('/').next().unwrap_or("artifact").replace('"', "");
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, len)
                .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
                .body(Body::from_stream(stream))
                .map_err(|e| MlflowError::internal(e.to_string()))?)
        }
        ("file", "PUT") => {
            tandem_core::validate::artifact_path(&path)?;
            let stream = req.into_body().into_data_stream();
            let (size, sha256) = ctx.artifacts.put(&ctx.workspace, &path, stream).await?;
            let c = ctx.clone();
            blocking(move || c.write(|_| Ok(crate::store::Decision::change((), Op::PutArtifact { path: path.clone(), size, sha256: sha256.clone() })))).await?;
            Ok(json_response(&json!({})))
        }
        ("file", "DELETE") => {
            tandem_core::validate::artifact_path(&path)?;
            ctx.artifacts.delete(&ctx.workspace, &path).await?;
            let c = ctx.clone();
            blocking(move || c.write(|_| Ok(crate::store::Decision::change((), Op::DeleteArtifacts { path: path.clone() })))).await?;
            Ok(json_response(&json!({})))
        }
        ("mpu", "POST") => multipart(&ctx, rest, &path, req).await,
        ("presigned", _) => Err(MlflowError::new(tandem_core::ErrorCode::NotImplemented, "Presigned downloads are not enabled on this server; it streams downloads itself.")),
        _ => Ok(method_not_allowed()),
    }
}

