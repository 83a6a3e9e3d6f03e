//! `tandem-bench`: finds a tracking server's own limits without the Python client in the way.
//! The same MLflow REST requests go to tandem and to the stock MLflow server, so the figures
//! compare the servers, not the clients. Also a plain byte server: the machine's own loopback
//! limit for artifact transfers. Used by bench/compare.py; see BENCHMARKS.md.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(name = "tandem-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates RUNS runs (each with a metric `m`, a param and a tag) in an experiment.
    Populate {
        #[arg(long)]
        url: String,
        #[arg(long)]
        experiment: String,
        #[arg(long)]
        runs: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Sends one kind of request from CONCURRENCY workers for SECONDS; prints throughput and
    /// latency percentiles as JSON.
    Load {
        #[arg(long)]
        url: String,
        /// create-run | log-metric | log-batch | model-version | search-100 | search-1000
        #[arg(long)]
        workload: String,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// For the search workloads: the experiment to search.
        #[arg(long)]
        experiment_id: Option<String>,
        /// Metric points per log-batch request; spans per trace for `otlp`.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// For `otlp`: send exactly this many traces (one export request each), then stop.
        #[arg(long)]
        traces: Option<u64>,
    },
    /// Accepts uploads (PUT, discarded) and serves downloads (GET /N: N bytes) as fast as the
    /// machine can: the loopback limit artifact transfers are compared with.
    ServeBytes {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Keep uploads instead of discarding them: each is written to a file in DIR and
        /// fsynced before the reply, as the plainest durable file server would (the limit for
        /// a server that must not lose what it acknowledged).
        #[arg(long)]
        keep: Option<std::path::PathBuf>,
    },
    /// A minimal responder for measuring a client's own floor: the first request for each
    /// method and path goes to UPSTREAM and its answer is kept; every later one gets that
    /// answer back at once (request bodies are read and dropped). So the client sees valid,
    /// realistically sized replies with no server work behind them.
    Replay {
        #[arg(long)]
        upstream: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Answer a kept reply only after this many microseconds (a server's latency without
        /// its work: to tell what waiting costs the client from what the server does).
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A small deterministic generator: the same values for both servers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(url: &str) -> Result<Api> {
        // TANDEM_BENCH_AUTHORIZATION: an Authorization header every request carries (for the
        // cost of authentication; see bench/auth.py).
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(v) = std::env::var("TANDEM_BENCH_AUTHORIZATION") {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&v)
                    .context("TANDEM_BENCH_AUTHORIZATION is not a header value")?,
            );
        }
        Ok(Api {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(120))
                .default_headers(headers)
                .build()?,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.post_at("2.0", path, body).await
    }

    async fn post_at(&self, version: &str, path: &str, body: &Value) -> Result<Value> {
        let text = self.post_text(version, path, body).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The answer's text, not parsed: what a server-side figure times.
    async fn post_text(&self, version: &str, path: &str, body: &Value) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/api/{version}/mlflow/{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", &text[..text.len().min(300)]);
        }
        Ok(text)
    }

    /// One OTLP/HTTP protobuf export request to `/v1/traces`.
    async fn export(&self, experiment: &str, body: Vec<u8>) -> Result<()> {
        let resp = self
            .http
            .post(format!("{}/v1/traces", self.base))
            .header("Content-Type", "application/x-protobuf")
            .header("x-mlflow-experiment-id", experiment)
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("v1/traces: HTTP {status}: {}", &text[..text.len().min(300)]);
        }
        Ok(())
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let resp = self
            .http
            .get(format!(
                "{}/api/2.0/mlflow/{path}?{}",
                self.base,
                q.join("&")
            ))
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", &text[..text.len().min(300)]);
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn experiment(&self, name: &str) -> Result<String> {
        if let Ok(v) = self
            .get("experiments/get-by-name", &[("experiment_name", name)])
            .await
        {
            if let Some(id) = v["experiment"]["experiment_id"].as_str() {
                return Ok(id.to_owned());
            }
        }
        let v = self
            .post("experiments/create", &json!({ "name": name }))
            .await?;
        v["experiment_id"]
            .as_str()
            .map(str::to_owned)
            .context("experiments/create gave no id")
    }

    async fn create_run(&self, experiment_id: &str) -> Result<String> {
        let v = self
            .post(
                "runs/create",
                &json!({ "experiment_id": experiment_id, "start_time": now_ms() }),
            )
            .await?;
        v["run"]["info"]["run_id"]
            .as_str()
            .map(str::to_owned)
            .context("runs/create gave no run id")
    }
}

/// The export request of trace `i`: a root span and `spans - 1` children, as the tracing SDK
/// sends a finished trace (inputs, outputs, span type; the root tagged `team=t{i % 10}`).
fn otlp_request(salt: u64, i: u64, spans: usize) -> Vec<u8> {
    use prost::Message;
    use tandem::otlp::{
        any_value, AnyValue, ExportTraceServiceRequest, KeyValue, ResourceSpans, ScopeSpans, Span,
        Status,
    };
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
    };
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&salt.to_be_bytes());
    trace_id[8..].copy_from_slice(&i.to_be_bytes());
    let base = now_ms() * 1_000_000;
    let spans = (0..spans.max(1))
        .map(|j| {
            let mut attributes = vec![
                kv("mlflow.spanType", "CHAIN".into()),
                kv(
                    "mlflow.spanInputs",
                    format!("{{\"question\": \"q{i}\", \"step\": {j}}}"),
                ),
                kv("mlflow.spanOutputs", format!("\"answer {i}\"")),
            ];
            if j == 0 {
                attributes.push(kv("mlflow.traceTag.team", format!("t{}", i % 10)));
            }
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (j as u64 + 1).to_be_bytes().to_vec(),
                parent_span_id: if j == 0 {
                    Vec::new()
                } else {
                    1u64.to_be_bytes().to_vec()
                },
                name: if j == 0 {
                    "agent".into()
                } else {
                    format!("step-{j}")
                },
                start_time_unix_nano: base + j as u64 * 1000,
                end_time_unix_nano: base + 500_000,
                attributes,
                events: Vec::new(),
                status: Some(Status {
                    message: String::new(),
                    code: 1,
                }),
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans { spans }],
        }],
    }
    .encode_to_vec()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Populate {
            url,
            experiment,
            runs,
            concurrency,
        } => populate(&url, &experiment, runs, concurrency).await,
        Command::Load {
            url,
            workload,
            concurrency,
            seconds,
            experiment_id,
            batch,
            traces,
        } => {
            load(
                &url,
                &workload,
                concurrency,
                seconds,
                experiment_id,
                batch,
                traces,
            )
            .await
        }
        Command::ServeBytes { listen, keep } => serve_bytes(&listen, keep).await,
        Command::Replay {
            upstream,
            listen,
            delay_us,
        } => replay(&upstream, &listen, delay_us).await,
    }
}

async fn populate(url: &str, experiment: &str, runs: u64, concurrency: usize) -> Result<()> {
    let api = Arc::new(Api::new(url)?);
    let exp = api.experiment(experiment).await?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (api, next, exp) = (api.clone(), next.clone(), exp.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs {
                    return Ok::<(), anyhow::Error>(());
                }
                let run = api.create_run(&exp).await?;
                let body = json!({
                    "run_id": run,
                    "metrics": [{ "key": "m", "value": rng.unit(), "timestamp": now_ms(), "step": 0 }],
                    "params": [{ "key": "p", "value": (i % 10).to_string() }],
                    "tags": [{ "key": "t", "value": format!("v{}", i % 3) }],
                });
                api.post("runs/log-batch", &body).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "{}",
        json!({ "experiment_id": exp, "runs": runs, "seconds": started.elapsed().as_secs_f64() })
    );
    Ok(())
}

async fn load(
    url: &str,
    workload: &str,
    concurrency: usize,
    seconds: f64,
    experiment_id: Option<String>,
    batch: usize,
    traces: Option<u64>,
) -> Result<()> {
    let api = Arc::new(Api::new(url)?);
    let tag = format!("{:x}", now_ms());
    // Set-up, not timed: what each workload needs to exist.
    let exp = match &experiment_id {
        Some(e) => e.clone(),
        None => api.experiment(&format!("bench-{workload}-{tag}")).await?,
    };
    let model = format!("bench-model-{tag}");
    let mut per_worker_runs = Vec::new();
    match workload {
        "log-metric" | "log-batch" => {
            for _ in 0..concurrency {
                per_worker_runs.push(api.create_run(&exp).await?);
            }
        }
        "model-version" => {
            api.post("registered-models/create", &json!({ "name": model }))
                .await?;
            per_worker_runs.push(api.create_run(&exp).await?);
        }
        "create-run" | "search-100" | "search-1000" | "otlp" | "trace-search"
        | "trace-search-tag" => {}
        other => bail!("unknown workload '{other}'"),
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    // `otlp --traces N`: trace numbers handed out to the workers until N are sent.
    let next_trace = Arc::new(AtomicU64::new(0));
    let salt = now_ms();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (api, exp, model, workload, next_trace) = (
            api.clone(),
            exp.clone(),
            model.clone(),
            workload.to_owned(),
            next_trace.clone(),
        );
        let run = per_worker_runs
            .get(w)
            .or(per_worker_runs.first())
            .cloned()
            .unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (w as u64 + 1));
            let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None::<String>);
            let mut step = 0i64;
            loop {
                let i = if workload == "otlp" {
                    let i = next_trace.fetch_add(1, Ordering::Relaxed);
                    if traces.is_some_and(|n| i >= n) {
                        break;
                    }
                    i
                } else {
                    0
                };
                if traces.is_none() && Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                // When a workload stops the clock itself (before checking the answer).
                let mut measured: Option<f64> = None;
                let r = match workload.as_str() {
                    "create-run" => api.create_run(&exp).await.map(drop),
                    "log-metric" => {
                        step += 1;
                        api.post("runs/log-metric", &json!({ "run_id": run, "key": "m", "value": rng.unit(), "timestamp": now_ms(), "step": step })).await.map(drop)
                    }
                    "log-batch" => {
                        let ts = now_ms();
                        let metrics: Vec<Value> = (0..batch)
                            .map(|i| {
                                step += 1;
                                json!({ "key": format!("m{}", i % 10), "value": rng.unit(), "timestamp": ts, "step": step })
                            })
                            .collect();
                        api.post("runs/log-batch", &json!({ "run_id": run, "metrics": metrics })).await.map(drop)
                    }
                    "model-version" => api.post("model-versions/create", &json!({ "name": model, "source": format!("runs:/{run}/model"), "run_id": run })).await.map(drop),
                    "search-100" | "search-1000" => {
                        let n = if workload == "search-100" { 100 } else { 1000 };
                        api.post("runs/search", &json!({ "experiment_ids": [exp], "filter": "metrics.m > 0.5", "order_by": ["metrics.m DESC"], "max_results": n }))
                            .await
                            .and_then(|v| if v["runs"].as_array().map(|a| a.len()).unwrap_or(0) == 0 { bail!("search returned no runs") } else { Ok(()) })
                    }
                    "otlp" => api.export(&exp, otlp_request(salt, i, batch)).await,
                    "trace-search" | "trace-search-tag" => {
                        let mut body = json!({ "locations": [{ "type": "MLFLOW_EXPERIMENT", "mlflow_experiment": { "experiment_id": exp } }], "max_results": 100 });
                        if workload == "trace-search-tag" {
                            body["filter"] = "tags.team = 't3'".into();
                        }
                        // Timed to the answer's last byte; parsing it to check it is the
                        // client's work, not the server's.
                        api.post_text("3.0", "traces/search", &body).await.and_then(|text| {
                            measured = Some(t.elapsed().as_secs_f64() * 1000.0);
                            let v: Value = serde_json::from_str(&text)?;
                            match v["traces"].as_array().map(Vec::len) {
                                Some(100) => Ok(()),
                                n => bail!("trace search returned {n:?} traces, not 100"),
                            }
                        })
                    }
                    _ => unreachable!(),
                };
                match r {
                    Ok(()) => lat.push(measured.unwrap_or_else(|| t.elapsed().as_secs_f64() * 1000.0)),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let (mut lat, mut errors, mut first_error) = (Vec::new(), 0, None);
    for t in tasks {
        let (l, e, f) = t.await?;
        lat.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let ops = lat.len() as f64;
    let points = if workload == "log-batch" || workload == "otlp" {
        ops * batch as f64
    } else if workload == "log-metric" {
        ops
    } else {
        0.0
    };
    println!(
        "{}",
        json!({
            "workload": workload, "concurrency": concurrency, "seconds": elapsed, "ops": lat.len(),
            "ops_per_s": ops / elapsed, "points_per_s": points / elapsed,
            "p50_ms": percentile(&lat, 50.0), "p99_ms": percentile(&lat, 99.0),
            "errors": errors, "first_error": first_error,
        })
    );
    Ok(())
}

async fn serve_bytes(listen: &str, keep: Option<std::path::PathBuf>) -> Result<()> {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use futures_util::StreamExt;
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let uploads = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(move |req: Request| {
        let (chunk, keep, uploads) = (chunk.clone(), keep.clone(), uploads.clone());
        async move {
            if req.method() == axum::http::Method::GET {
                let n: u64 = req
                    .uri()
                    .path()
                    .trim_start_matches('/')
                    .parse()
                    .unwrap_or(0);
                let full = n / chunk.len() as u64;
                let rest = (n % chunk.len() as u64) as usize;
                let parts = (0..full)
                    .map(move |_| chunk.clone())
                    .chain((rest > 0).then(|| vec![7u8; rest].into()));
                let stream = futures_util::stream::iter(parts.map(Ok::<_, std::io::Error>));
                Response::builder()
                    .header("content-length", n)
                    .body(Body::from_stream(stream))
                    .expect("valid response")
            } else if let Some(dir) = keep {
                use std::io::Write;
                let path = dir.join(format!(
                    "upload-{}",
                    uploads.fetch_add(1, Ordering::Relaxed)
                ));
                let mut file = std::fs::File::create(&path).expect("create the upload file");
                let mut body = req.into_body().into_data_stream();
                let mut n = 0u64;
                while let Some(Ok(b)) = body.next().await {
                    n += b.len() as u64;
                    file.write_all(&b).expect("write the upload");
                }
                file.sync_all().expect("fsync the upload");
                drop(file);
                let _ = std::fs::remove_file(&path);
                Response::new(Body::from(n.to_string()))
            } else {
                let mut body = req.into_body().into_data_stream();
                let mut n = 0u64;
                while let Some(Ok(b)) = body.next().await {
                    n += b.len() as u64;
                }
                Response::new(Body::from(n.to_string()))
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn replay(upstream: &str, listen: &str, delay_us: u64) -> Result<()> {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use futures_util::StreamExt;
    type Kept = (u16, Vec<(String, String)>, bytes::Bytes);
    let cache: Arc<tokio::sync::Mutex<std::collections::HashMap<String, Kept>>> = Arc::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let upstream = upstream.trim_end_matches('/').to_owned();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (cache, http, upstream) = (cache.clone(), http.clone(), upstream.clone());
        async move {
            // Uploads name a new path each time; one kept answer serves them all.
            let key = if req.method() == axum::http::Method::PUT {
                "PUT".to_owned()
            } else {
                format!(
                    "{} {}",
                    req.method(),
                    req.uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                )
            };
            let hit = cache.lock().await.get(&key).cloned();
            let kept = match hit {
                Some(k) => {
                    let mut body = req.into_body().into_data_stream();
                    while let Some(Ok(_)) = body.next().await {}
                    if delay_us > 0 {
                        // A thread's sleep, not tokio's timer (whose resolution is 1 ms).
                        let _ = tokio::task::spawn_blocking(move || {
                            std::thread::sleep(Duration::from_micros(delay_us))
                        })
                        .await;
                    }
                    k
                }
                None => {
                    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
                        .unwrap_or(reqwest::Method::GET);
                    let url = format!(
                        "{upstream}{}",
                        req.uri()
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/")
                    );
                    let mut headers = reqwest::header::HeaderMap::new();
                    for (k, v) in req.headers() {
                        if k != "host" {
                            if let (Ok(k), Ok(v)) = (
                                reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
                                reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
                            ) {
                                headers.insert(k, v);
                            }
                        }
                    }
                    let mut body = Vec::new();
                    let mut s = req.into_body().into_data_stream();
                    while let Some(Ok(b)) = s.next().await {
                        body.extend_from_slice(&b);
                    }
                    match http
                        .request(method, url)
                        .headers(headers)
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let hs: Vec<(String, String)> = resp
                                .headers()
                                .iter()
                                .filter(|(k, _)| *k == "content-type")
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                                .collect();
                            let b = resp.bytes().await.unwrap_or_default();
                            let k = (status, hs, b);
                            if status < 400 {
                                cache.lock().await.insert(key, k.clone());
                            }
                            k
                        }
                        Err(e) => (502, vec![], bytes::Bytes::from(e.to_string())),
                    }
                }
            };
            let mut r = Response::builder().status(kept.0);
            for (k, v) in &kept.1 {
                r = r.header(k, v);
            }
            r.body(Body::from(kept.2)).expect("valid response")
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
