//! The AI gateway's invocation routes, as MLflow's server serves them under `/gateway/`:
//! `POST /gateway/{endpoint}/mlflow/invocations` (chat or embeddings by the payload's shape),
//! the OpenAI-compatible `POST /gateway/mlflow/v1/chat/completions` (`model` names the
//! endpoint) and the OpenAI passthrough routes `/gateway/openai/v1/chat/completions` and
//! `/gateway/openai/v1/embeddings`.
//!
//! A call is forwarded to the endpoint's provider with the credential opened from the vault
//! (`api::gateway::invocation_route`), to the provider URL of the region serving the call when
//! the endpoint names one per region (the connection fails over with the region, with no
//! edit), else the secret's `api_base`, else the provider's public URL. Streaming answers are
//! streamed through as they arrive. A primary that cannot be reached or answers 429/5xx
//! gives way to the endpoint's fallback models in order. Errors are answered as MLflow's
//! gateway answers them: FastAPI's `{"detail": ...}` with the provider's status and message.
//!
//! Architecture invariant: this module knows HTTP and providers' URL shapes; it reads the
//! store only through `api::gateway`, and never logs or returns a credential.

use crate::api::gateway::{self, Kind, Route, RouteModel};
use crate::api::Ctx;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};
use std::time::Duration;
use tandem_core::MlflowError;

/// Bounds on a call to a provider: connecting, a whole unary answer, and the silence allowed
/// between two pieces of a streamed one (`TANDEM_GATEWAY_TIMEOUT_SECS`, default 120).
fn timeouts() -> (Duration, Duration, Duration) {
    let total = std::env::var("TANDEM_GATEWAY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(120);
    (
        Duration::from_secs(10),
        Duration::from_secs(total),
        Duration::from_secs(total.min(60)),
    )
}

/// One client for every provider call (connection reuse is most of the added latency).
pub fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let (connect, _, idle) = timeouts();
        reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("the gateway's HTTP client builds")
    })
}

/// FastAPI's error body (`{"detail": ...}`), as MLflow's gateway and OTLP routes answer.
pub(crate) fn detail(status: u16, detail: impl Into<Json>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "detail": detail.into() }).to_string(),
    )
        .into_response()
}

/// A request refused before any provider is called: an HTTP status and FastAPI's detail.
pub struct Refusal(pub u16, pub Json);

impl Refusal {
    fn new(status: u16, detail: impl Into<Json>) -> Refusal {
        Refusal(status, detail.into())
    }
}

/// An MLflow error as MLflow's gateway routes translate it (`translate_http_exception`).
fn mlflow_detail(e: &MlflowError) -> Response {
    detail(
        e.code.http_status(),
        json!({ "error_code": e.code.as_str(), "message": e.message }),
    )
}

/// Which endpoint a route and body name, and what is asked of it; `Err` is the answer.
pub fn parse(rest: &str, body: &mut Json) -> Result<(String, Kind), Refusal> {
    let model_of = |body: &mut Json| -> Result<String, Refusal> {
        match body.get("model").and_then(Json::as_str) {
            Some(m) if !m.is_empty() => Ok(m.to_owned()),
            _ => Err(Refusal::new(
                400,
                "Missing required 'model' parameter in request body",
            )),
        }
    };
    match rest {
        "mlflow/v1/chat/completions" => {
            let name = model_of(body)?;
            body.as_object_mut().map(|o| o.remove("model"));
            Ok((name, Kind::Chat))
        }
        "openai/v1/chat/completions" => Ok((model_of(body)?, Kind::Chat)),
        "openai/v1/embeddings" => Ok((model_of(body)?, Kind::Embeddings)),
        _ => match rest.strip_suffix("/mlflow/invocations") {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                let kind = if body.get("messages").is_some() {
                    Kind::Chat
                } else if body.get("input").is_some() {
                    Kind::Embeddings
                } else {
                    return Err(Refusal::new(
                        400,
                        "Invalid request: payload format must be either chat or embeddings",
                    ));
                };
                Ok((crate::api::percent_decode(name), kind))
            }
            _ => Err(Refusal::new(404, "Not Found")),
        },
    }
}

/// The payload checks MLflow's request models make before any provider is called.
fn check_payload(kind: Kind, body: &Json) -> Result<(), Refusal> {
    match kind {
        Kind::Chat => match body.get("messages") {
            Some(Json::Array(m))
                if !m.is_empty()
                    && m.iter().all(|x| x.get("role").is_some_and(Json::is_string)) =>
            {
                Ok(())
            }
            _ => Err(Refusal::new(
                400,
                "Invalid chat payload: 'messages' must be a non-empty list of messages with a 'role'",
            )),
        },
        Kind::Embeddings => match body.get("input") {
            Some(Json::String(_)) => Ok(()),
            Some(Json::Array(a)) if !a.is_empty() => Ok(()),
            _ => Err(Refusal::new(
                400,
                "Invalid embeddings payload: 'input' must be a string or a non-empty list",
            )),
        },
    }
}

/// The models to try, in order: one primary (by weight, when there are several), then the
/// fallbacks in their order.
fn attempts(route: &Route) -> Vec<&RouteModel> {
    let primaries: Vec<&RouteModel> = route
        .models
        .iter()
        .filter(|m| m.linkage == "PRIMARY")
        .collect();
    let mut out = Vec::new();
    if !primaries.is_empty() {
        let total: f64 = primaries.iter().map(|m| m.weight.max(0.0)).sum();
        let mut pick = if total > 0.0 {
            (crate::api::random_u32() as f64 / u32::MAX as f64) * total
        } else {
            0.0
        };
        let mut chosen = primaries[0];
        for m in &primaries {
            if pick < m.weight.max(0.0) {
                chosen = m;
                break;
            }
            pick -= m.weight.max(0.0);
        }
        out.push(chosen);
    }
    out.extend(route.models.iter().filter(|m| m.linkage == "FALLBACK"));
    out
}

/// The provider's message from an error body (MLflow's `_error_detail`).
fn error_detail(body: &[u8]) -> Json {
    match serde_json::from_slice::<Json>(body) {
        Ok(j) => {
            if let Some(m) = j["error"]["message"].as_str().filter(|m| !m.is_empty()) {
                return m.into();
            }
            if let Some(m) = j["message"].as_str().filter(|m| !m.is_empty()) {
                return m.into();
            }
            j
        }
        Err(_) => String::from_utf8_lossy(body).into_owned().into(),
    }
}

/// Calls the endpoint (see the module's comment). `region` is the region serving the call.
pub async fn invoke(ctx: Ctx, rest: &str, mut body: Json, region: Option<String>) -> Response {
    let (name, kind) = match parse(rest, &mut body) {
        Ok(x) => x,
        Err(Refusal(status, d)) => return detail(status, d),
    };
    if let Err(Refusal(status, d)) = check_payload(kind, &body) {
        return detail(status, d);
    }
    let route =
        match tokio::task::spawn_blocking(move || gateway::invocation_route(&ctx, &name)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return mlflow_detail(&e),
            Err(_) => return detail(500, "internal error while reading the endpoint"),
        };
    let stream = body.get("stream").and_then(Json::as_bool).unwrap_or(false);
    let tries = attempts(&route);
    if tries.is_empty() {
        return mlflow_detail(&MlflowError::invalid(format!(
            "Endpoint '{}' has no model attached.",
            route.endpoint_name
        )));
    }
    let (_, total, _) = timeouts();
    let mut last: Option<Response> = None;
    for m in tries {
        let gateway::Upstream { url, headers, .. } =
            match gateway::upstream(&route, m, kind, region.as_deref()) {
                Ok(u) => u,
                Err(e) => return mlflow_detail(&e),
            };
        let mut out = body.clone();
        if let Some(o) = out.as_object_mut() {
            match m.provider.as_str() {
                // Azure names the deployment in its URL.
                "azure" => {
                    o.remove("model");
                }
                _ => {
                    o.insert("model".into(), m.model_name.clone().into());
                }
            }
        }
        let mut req = client().post(&url).json(&out);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        if !stream {
            req = req.timeout(total);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let status = if e.is_timeout() { 504 } else { 502 };
                // The URL is the operator's; the error never carries the credential.
                last = Some(detail(
                    status,
                    format!(
                        "The provider of endpoint '{}' could not be reached: {}",
                        route.endpoint_name,
                        without_url(&e)
                    ),
                ));
                continue;
            }
        };
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            let bytes = resp.bytes().await.unwrap_or_default();
            last = Some(detail(status, error_detail(&bytes)));
            continue;
        }
        if !(200..300).contains(&status) {
            let bytes = resp.bytes().await.unwrap_or_default();
            return detail(status, error_detail(&bytes));
        }
        if stream {
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/event-stream")
                .to_owned();
            return (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                ],
                Body::from_stream(resp.bytes_stream()),
            )
                .into_response();
        }
        return match resp.bytes().await {
            Ok(bytes) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response(),
            Err(e) => detail(
                if e.is_timeout() { 504 } else { 502 },
                format!("The provider's answer was cut short: {}", without_url(&e)),
            ),
        };
    }
    last.unwrap_or_else(|| detail(502, "no provider answered"))
}

/// A transport error's text without its URL (which may carry a query the operator set).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<provider>");
    }
    s
}

// ---------------------------------------------------------------------------------------
// Health probes of the per-region provider URLs (opt-in)

/// The last probe of one endpoint's URL for one region.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Probe {
    pub workspace: String,
    pub endpoint: String,
    pub region: String,
    pub url: String,
    /// Answered at all, with a status under 500 (401 without a key still means it is there).
    pub up: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub checked_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the probe loop found last, for `/metrics` and the region's status.
#[derive(Default)]
pub struct Probes(std::sync::Mutex<Vec<Probe>>);

impl Probes {
    pub fn snapshot(&self) -> Vec<Probe> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How often to probe (`TANDEM_GATEWAY_PROBE_SECS`); unset or 0: never. Probes are opt-in:
/// they call the operator's providers, which may bill or rate-limit them.
pub fn probe_interval() -> Option<Duration> {
    std::env::var("TANDEM_GATEWAY_PROBE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// Every endpoint's per-region URLs, in every workspace: (workspace, endpoint, region, url).
fn regional_urls(store: &crate::store::Store) -> Vec<(String, String, String, String)> {
    store
        .read(|tx| {
            tx.query(
                "SELECT workspace, name, doc FROM gateway_objects WHERE kind = 'endpoint' ORDER BY workspace, name",
                &[],
            )
        })
        .unwrap_or_default()
        .iter()
        .flat_map(|r| {
            let doc: Json = serde_json::from_str(&r.text(2)).unwrap_or(Json::Null);
            let (ws, name) = (r.text(0), r.opt_text(1).unwrap_or_default());
            doc["regions"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(region, url)| {
                            url.as_str().map(|u| {
                                (ws.clone(), name.clone(), region.clone(), u.to_owned())
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// One probe: `GET {url}/models`, at most 2 seconds.
async fn probe_one(url: &str) -> (bool, Option<u16>, u64, Option<String>) {
    let t0 = std::time::Instant::now();
    let r = client()
        .get(format!("{}/models", url.trim_end_matches('/')))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    let ms = t0.elapsed().as_millis() as u64;
    match r {
        Ok(resp) => {
            let s = resp.status().as_u16();
            (s < 500, Some(s), ms, None)
        }
        Err(e) => (false, None, ms, Some(without_url(&e))),
    }
}

/// Probes every per-region URL each `every`, until the process ends.
pub fn spawn_probes(store: crate::store::Store, probes: std::sync::Arc<Probes>, every: Duration) {
    tokio::spawn(async move {
        loop {
            let s = store.clone();
            let targets = tokio::task::spawn_blocking(move || regional_urls(&s))
                .await
                .unwrap_or_default();
            let mut found = Vec::with_capacity(targets.len());
            for (workspace, endpoint, region, url) in targets {
                let (up, status, latency_ms, error) = probe_one(&url).await;
                found.push(Probe {
                    workspace,
                    endpoint,
                    region,
                    url,
                    up,
                    status,
                    latency_ms,
                    checked_ms: store.now_ms(),
                    error,
                });
            }
            *probes.0.lock().unwrap_or_else(|e| e.into_inner()) = found;
            tokio::time::sleep(every).await;
        }
    });
}
