//! The front door: one URL for the mlflow client that always reaches the leader of the
//! request's workspace. It learns leadership by asking every region for its status a few
//! times a second (more often while it holds requests). While no leader accepts writes
//! (mid-failover, a sync workspace waiting for its standby, a switchover) it holds requests
//! (at most `max_held` at once, each at most `hold_ms`) and sends them on as soon as a
//! leader takes them, so the stock client sees one slow answer instead of errors, after
//! which it would back off exponentially. Only then does the client get the 503.

use crate::region::deployment::Deployment;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};

/// On a region's error answer: the request was refused before it changed anything, so it may
/// be sent again (see `MlflowError::unchanged`). Only the front door reads it.
pub const UNCHANGED: HeaderName = HeaderName::from_static("x-tandem-unchanged");

#[derive(Clone)]
pub struct FrontDoor {
    deployment: Arc<Deployment>,
    /// workspace -> URL of the region that says it leads it.
    leaders: Arc<RwLock<HashMap<String, String>>>,
    /// Bumped whenever `leaders` changes: held requests wait on it.
    generation: watch::Sender<u64>,
    /// Permits for held requests (`[front_door] max_held`).
    held: Arc<Semaphore>,
    /// How many requests are held now: the watcher polls faster while there are any.
    holding: Arc<AtomicUsize>,
    /// Wakes the watcher when a request starts to wait.
    wake: Arc<Notify>,
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
            held: Arc::new(Semaphore::new(deployment.hold.max_held)),
            holding: Arc::new(AtomicUsize::new(0)),
            wake: Arc::new(Notify::new()),
            generation: watch::Sender::new(0),
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

    /// Polls the regions for leadership until the process ends: five times a second, twenty
    /// while requests are held (so that a new leader is used within 50 ms of its claim).
    pub fn spawn_watch(&self) {
        let fd = self.clone();
        tokio::spawn(async move {
            loop {
                fd.refresh().await;
                let idle = fd.holding.load(Ordering::Relaxed) == 0;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(if idle { 200 } else { 50 })) => {}
                    // A request starts to wait: look at once.
                    _ = fd.wake.notified() => {}
                }
            }
        });
    }

    /// Every region's status, asked at once (a region that hangs must not delay the others).
    async fn statuses(&self) -> Vec<(String, Option<serde_json::Value>)> {
        let asks = self.deployment.regions.iter().map(|r| async move {
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
            (r.url.clone(), v)
        });
        futures_util::future::join_all(asks).await
    }

    pub async fn refresh(&self) {
        let mut found: HashMap<String, (u64, String)> = HashMap::new();
        for (url, v) in self.statuses().await {
            let Some(v) = v else { continue };
            for w in v["workspaces"].as_array().into_iter().flatten() {
                if w["role"] == "leader" && w["lease"] == "held" {
                    let ws = w["workspace"].as_str().unwrap_or_default().to_owned();
                    let epoch = w["epoch"].as_u64().unwrap_or(0);
                    // Two regions can claim leadership only in different epochs; the newer wins.
                    if found.get(&ws).is_none_or(|(e, _)| epoch > *e) {
                        found.insert(ws, (epoch, url.clone()));
                    }
                }
            }
        }
        let found: HashMap<String, String> =
            found.into_iter().map(|(ws, (_, url))| (ws, url)).collect();
        let mut leaders = self.leaders.write().unwrap_or_else(|e| e.into_inner());
        if *leaders != found {
            *leaders = found;
            drop(leaders);
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Forgets a leader that did not answer, and wakes whoever waits for a change.
    fn forget(&self, url: &str) {
        self.leaders
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, u| u != url);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether a write through this front door would be accepted now, for every workspace of
    /// the deployment: a leader holding its lease, that this front door knows; the workspace
    /// created there (with its default experiment); and, for `write_ack = "sync"`, a standby
    /// caught up with it. Returns what is still missing, for progress messages.
    pub async fn ready(&self) -> Result<(), String> {
        self.refresh().await;
        let statuses: Vec<(String, serde_json::Value)> = self
            .statuses()
            .await
            .into_iter()
            .zip(&self.deployment.regions)
            .map(|((_, v), r)| (r.name.clone(), v.unwrap_or(serde_json::Value::Null)))
            .collect();
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

/// Requests up to this size are buffered so they can be sent again to a new leader.
const REPLAYABLE: usize = 1 << 20;

/// A held request's place in the queue; gives it back when the request is answered.
struct Holding<'a> {
    fd: &'a FrontDoor,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.fd.holding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FrontDoor {
    /// Takes a place in the queue of held requests, or says why there is none.
    fn hold(&self) -> Option<Holding<'_>> {
        let permit = self.held.try_acquire().ok()?;
        self.holding.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Some(Holding {
            fd: self,
            _permit: permit,
        })
    }

    /// Waits for `sent`, unless another region takes the lead of `ws` from `target` first
    /// (a leader frozen or cut off while it held the request): then the request is given up,
    /// to be sent again to the new leader, rather than waited for until the old one wakes up
    /// (it will refuse it then: its lease has lapsed). At least once, as for a lost answer.
    async fn unless_leader_changes(
        &self,
        ws: &str,
        target: &str,
        sent: impl std::future::Future<Output = Result<Response, String>>,
    ) -> Result<Response, String> {
        let mut changes = self.generation.subscribe();
        // The lead moved between choosing `target` and now: nothing was sent yet.
        if self.target(ws).is_some_and(|t| t != target) {
            return Err(format!("the lead of '{ws}' moved away from {target}"));
        }
        tokio::pin!(sent);
        loop {
            tokio::select! {
                r = &mut sent => return r,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return sent.await;
                    }
                    if self.target(ws).is_some_and(|t| t != target) {
                        return Err(format!("another region took the lead of '{ws}' while {target} held the request"));
                    }
                }
            }
        }
    }

    /// The region to send a request for `ws` to now, if any.
    fn target(&self, ws: &str) -> Option<String> {
        self.leader_of(ws).or_else(|| {
            // Workspaces outside the deployment (and admin calls) go to any live leader.
            if self.deployment.workspace(ws).is_none() {
                self.leaders
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .next()
                    .cloned()
            } else {
                None
            }
        })
    }
}

/// Whether an answer is a refusal that may be sent again: a 503 for a request that changed
/// nothing (the region said so), or for a read.
fn retryable(r: &Response, read: bool) -> bool {
    r.status() == StatusCode::SERVICE_UNAVAILABLE && (read || r.headers().contains_key(UNCHANGED))
}

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
    let hold_for = Duration::from_millis(fd.deployment.hold.hold_ms);
    let deadline = tokio::time::Instant::now() + hold_for;
    let read = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    // Small requests are kept, so that one refused (or cut off by a leader's death) can go
    // again to the next leader.
    let small = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= REPLAYABLE)
        || read;
    let (parts, body) = req.into_parts();
    let (kept, mut body) = if small {
        match axum::body::to_bytes(body, REPLAYABLE).await {
            Ok(bytes) => (Some(bytes), None),
            Err(e) => return unavailable(format!("could not read the request: {e}")),
        }
    } else {
        (None, Some(body))
    };
    let mut changes = fd.generation.subscribe();
    let mut holding: Option<Holding<'_>> = None;
    // After a refusal from a leader that is still there, wait a little longer each time.
    let mut pause = Duration::from_millis(20);
    loop {
        let why: String = match fd.target(&ws) {
            None => format!(
                "no region currently leads workspace '{ws}' (failover in progress?); retry shortly"
            ),
            Some(target) => {
                let attempt = match (&kept, body.take()) {
                    (Some(bytes), _) => {
                        Request::from_parts(parts.clone(), Body::from(bytes.clone()))
                    }
                    (None, Some(b)) => Request::from_parts(parts.clone(), b),
                    (None, None) => {
                        return unavailable(format!(
                            "the leader of '{ws}' went away during a large upload; retry it"
                        ))
                    }
                };
                let sent = forward(&fd.http, &target, attempt);
                let outcome = match kept {
                    Some(_) => fd.unless_leader_changes(&ws, &target, sent).await,
                    None => sent.await,
                };
                match outcome {
                    Ok(r) if kept.is_some() && retryable(&r, read) => {
                        // A refusal (lease lapsed, sync standby not back yet, switchover):
                        // hold the request until the leader, or the next one, takes it.
                        if hold_for.is_zero() || tokio::time::Instant::now() >= deadline {
                            return r;
                        }
                        if holding.is_none() {
                            holding = fd.hold();
                            if holding.is_none() {
                                return r;
                            }
                        }
                        let _ = tokio::time::timeout(pause, changes.changed()).await;
                        pause = (pause * 2).min(Duration::from_millis(200));
                        continue;
                    }
                    Ok(r) => return r,
                    Err(e) => {
                        // The leader went away: forget it, and wait for the next one if the
                        // request can be sent again.
                        fd.forget(&target);
                        if kept.is_none() {
                            return unavailable(format!(
                                "the leader of '{ws}' did not answer ({e}); retry shortly"
                            ));
                        }
                        format!("the leader of '{ws}' did not answer ({e}); retry shortly")
                    }
                }
            }
        };
        // No leader to send to: hold the request until one is known.
        if hold_for.is_zero() || tokio::time::Instant::now() >= deadline {
            return unavailable(why);
        }
        if holding.is_none() {
            holding = fd.hold();
            if holding.is_none() {
                return unavailable(format!(
                    "{why} ({} requests are already waiting for a leader)",
                    fd.deployment.hold.max_held
                ));
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let _ = tokio::time::timeout(left.min(Duration::from_millis(250)), changes.changed()).await;
    }
}
