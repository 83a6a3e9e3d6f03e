//! The front door: one URL for the mlflow client that always reaches the leader of the
//! request's workspace. It learns leadership by asking every region for its status a few
//! times a second; while no leader is known (mid-failover) it answers 503, which the client
//! retries, so the client's own retries ride through a failover.

use crate::region::deployment::Deployment;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Clone)]
pub struct FrontDoor {
    deployment: Arc<Deployment>,
    /// workspace -> URL of the region that says it leads it.
    leaders: Arc<RwLock<HashMap<String, String>>>,
    /// Forwards clients' requests with their own credentials.
    http: reqwest::Client,
    /// Asks the regions who leads, with the deployment's key.
    internal: reqwest::Client,
}

impl FrontDoor {
    pub fn new(deployment: Deployment, key: Option<&str>) -> FrontDoor {
        let ca = deployment.ca_pem().ok().flatten();
        FrontDoor {
            internal: super::internal_client(key, ca.as_deref(), None),
            deployment: Arc::new(deployment),
            leaders: Arc::new(RwLock::new(HashMap::new())),
            http: super::with_ca(
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .pool_idle_timeout(Duration::from_secs(30)),
                ca.as_deref(),
            )
            .build()
            .expect("HTTP client builds"),
        }
    }

    /// Polls the regions for leadership until the process ends.
    pub fn spawn_watch(&self) {
        let fd = self.clone();
        tokio::spawn(async move {
            loop {
                fd.refresh().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    pub async fn refresh(&self) {
        let mut found: HashMap<String, (u64, String)> = HashMap::new();
        for r in &self.deployment.regions {
            let Ok(resp) = self
                .internal
                .get(format!("{}/api/tandem/v1/status", r.url))
                .timeout(Duration::from_millis(800))
                .send()
                .await
            else {
                continue;
            };
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            for w in v["workspaces"].as_array().into_iter().flatten() {
                if w["role"] == "leader" && w["lease"] == "held" {
                    let ws = w["workspace"].as_str().unwrap_or_default().to_owned();
                    let epoch = w["epoch"].as_u64().unwrap_or(0);
                    // Two regions can claim leadership only in different epochs; the newer wins.
                    if found.get(&ws).is_none_or(|(e, _)| epoch > *e) {
                        found.insert(ws, (epoch, r.url.clone()));
                    }
                }
            }
        }
        let mut leaders = self.leaders.write().unwrap_or_else(|e| e.into_inner());
        *leaders = found.into_iter().map(|(ws, (_, url))| (ws, url)).collect();
    }

    /// Whether a write through this front door would be accepted now, for every workspace of
    /// the deployment: a leader holding its lease, that this front door knows; the workspace
    /// created there (with its default experiment); and, for `write_ack = "sync"`, a standby
    /// caught up with it. Returns what is still missing, for progress messages.
    pub async fn ready(&self) -> Result<(), String> {
        self.refresh().await;
        let mut statuses = Vec::new();
        for r in &self.deployment.regions {
            let v = async {
                self.internal
                    .get(format!("{}/api/tandem/v1/status", r.url))
                    .timeout(Duration::from_millis(800))
                    .send()
                    .await
                    .ok()?
                    .json::<serde_json::Value>()
                    .await
                    .ok()
            }
            .await;
            statuses.push((r.name.clone(), v.unwrap_or(serde_json::Value::Null)));
        }
        for plan in &self.deployment.workspaces {
            let ws = plan.name.as_str();
            let entry = |v: &serde_json::Value| {
                v["workspaces"]
                    .as_array()
                    .and_then(|a| a.iter().find(|w| w["workspace"] == ws).cloned())
            };
            let leader = statuses.iter().find_map(|(name, v)| {
                entry(v)
                    .filter(|w| w["role"] == "leader" && w["lease"] == "held")
                    .map(|w| (name.clone(), w))
            });
            let Some((leader_name, lw)) = leader else {
                return Err(format!("no region leads '{ws}' yet"));
            };
            if self.leader_of(ws).is_none() {
                return Err(format!(
                    "the front door does not know the leader of '{ws}' yet"
                ));
            }
            // A workspace exists once its first events are in (the default experiment too).
            let created = if ws == tandem_core::access::ACCESS_WORKSPACE {
                1
            } else {
                2
            };
            let head = lw["head_seq"].as_u64().unwrap_or(0);
            if head < created {
                return Err(format!("'{ws}' is not created yet in {leader_name}"));
            }
            if plan.mode == super::deployment::Mode::HotWarm
                && plan.write_ack == super::deployment::WriteAck::Sync
            {
                let synced = statuses.iter().any(|(name, v)| {
                    *name != leader_name
                        && entry(v).is_some_and(|w| {
                            w["role"] == "standby" && w["head_seq"].as_u64() == Some(head)
                        })
                });
                if !synced {
                    return Err(format!(
                        "'{ws}' acknowledges writes once its standby has them, and no standby has caught up yet"
                    ));
                }
            }
        }
        Ok(())
    }

    fn leader_of(&self, ws: &str) -> Option<String> {
        self.leaders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(ws)
            .cloned()
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(self.clone())
    }
}

fn unavailable(message: String) -> Response {
    let body = serde_json::json!({ "error_code": "TEMPORARILY_UNAVAILABLE", "message": message });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Forwards a request to `base` and streams the answer back. Used by the front door and by a
/// standby region forwarding writes to its leader.
pub async fn forward(http: &reqwest::Client, base: &str, req: Request) -> Result<Response, String> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let method =
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in parts.headers.iter() {
        if is_hop_by_hop(k) || k == axum::http::header::HOST {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let resp = http
        .request(method, format!("{base}{path}"))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for (k, v) in resp.headers().iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_str().as_bytes()),
            axum::http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            if !is_hop_by_hop(&name) {
                out.append(name, value);
            }
        }
    }
    let body = Body::from_stream(resp.bytes_stream());
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out;
    Ok(response)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// How long the front door holds a request while a failover finds a new leader.
const HOLD: Duration = Duration::from_secs(15);
/// Requests up to this size are buffered so they can be sent again to a new leader.
const REPLAYABLE: usize = 1 << 20;

async fn handle(State(fd): State<FrontDoor>, req: Request) -> Response {
    let ws = match crate::http::is_access_path(req.uri().path()) {
        true => tandem_core::access::ACCESS_WORKSPACE,
        false => req
            .headers()
            .get("x-mlflow-workspace")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .unwrap_or("default"),
    }
    .to_owned();
    let deadline = tokio::time::Instant::now() + HOLD;
    // Small requests are kept, so that one sent to a leader that just died can go to the next.
    let small = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= REPLAYABLE)
        || req.method() == axum::http::Method::GET;
    let (parts, body) = req.into_parts();
    let (kept, mut body) = if small {
        match axum::body::to_bytes(body, REPLAYABLE).await {
            Ok(bytes) => (Some(bytes), None),
            Err(e) => return unavailable(format!("could not read the request: {e}")),
        }
    } else {
        (None, Some(body))
    };
    loop {
        let target = fd.leader_of(&ws).or_else(|| {
            // Workspaces outside the deployment (and admin calls) go to any live leader.
            if fd.deployment.workspace(&ws).is_none() {
                fd.leaders
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .next()
                    .cloned()
            } else {
                None
            }
        });
        let Some(target) = target else {
            if tokio::time::Instant::now() >= deadline {
                return unavailable(format!("no region currently leads workspace '{ws}' (failover in progress?); retry shortly"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            fd.refresh().await;
            continue;
        };
        let attempt = match (&kept, body.take()) {
            (Some(bytes), _) => Request::from_parts(parts.clone(), Body::from(bytes.clone())),
            (None, Some(b)) => Request::from_parts(parts.clone(), b),
            (None, None) => {
                return unavailable(format!(
                    "the leader of '{ws}' went away during a large upload; retry it"
                ))
            }
        };
        match forward(&fd.http, &target, attempt).await {
            Ok(r) => return r,
            Err(e) => {
                // The leader went away: forget it, and wait for the next one if the request can
                // be sent again.
                fd.leaders
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, url| url != &target);
                if kept.is_none() || tokio::time::Instant::now() >= deadline {
                    return unavailable(format!(
                        "the leader of '{ws}' did not answer ({e}); retry shortly"
                    ));
                }
            }
        }
    }
}
