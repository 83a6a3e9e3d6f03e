//! SIGKILL the server in the middle of a stream of acknowledged writes: after a restart every
//! acknowledged write is there and the change log is intact and gap-free.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `tandem server` process, killed when dropped so no test leaves one behind.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    pub fn start_with(data: &std::path::Path, extra: &[&str]) -> Proc {
        crate::support::init();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "server",
                "--auth",
                "off",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .env("TANDEM_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tandem binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            assert!(Instant::now() < deadline, "server did not start in time");
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(u) = l.strip_prefix("tracking uri: ") {
                        break u.trim().to_owned();
                    }
                }
                _ => panic!("server exited before printing its tracking uri"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Proc { child, url }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Option<Value> {
    let resp = http
        .post(format!("{url}{path}"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    resp.json().await.ok()
}

#[derive(Default)]
struct Acked {
    metrics: Vec<(String, String, i64)>,
    params: Vec<(String, String)>,
    runs: Vec<String>,
    /// Environment versions: (name, version, specification text).
    envs: Vec<(String, i64, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_write() {
    for meta in crate::support::metadata_stores() {
        sigkill_on(meta).await;
    }
}

async fn sigkill_on(meta: crate::support::Meta) {
    let dir = tempfile::tempdir().unwrap();
    let store = match meta {
        crate::support::Meta::Sqlite => {
            format!("sqlite://{}", dir.path().join("metadata.sqlite").display())
        }
        crate::support::Meta::Postgres => {
            tokio::task::spawn_blocking(crate::support::fresh_postgres)
                .await
                .unwrap()
        }
    };
    let extra = ["--store", store.as_str()];
    let mut server = Proc::start_with(dir.path(), &extra);
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let exp = post(
        &http,
        &url,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "crash"}),
    )
    .await
    .unwrap();
    let exp_id = exp["experiment_id"].as_str().unwrap().to_owned();
    let run = post(
        &http,
        &url,
        "/api/2.0/mlflow/runs/create",
        json!({"experiment_id": exp_id}),
    )
    .await
    .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, acked, stop, run_id, exp_id) = (
            http.clone(),
            url.clone(),
            acked.clone(),
            stop.clone(),
            run_id.clone(),
            exp_id.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0i64;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                i += 1;
                let ok = match i % 4 {
                    3 => {
                        // An environment version: its specification artifact, then its event.
                        let text = format!("numpy==1.{i}.{w}\n");
                        post(&http, &url, "/api/tandem/v1/workspaces/default/environments", json!({"name": format!("env{w}"), "requirements": text}))
                            .await
                            .map(|v| acked.lock().unwrap().envs.push((format!("env{w}"), v["environment"]["version"].as_i64().unwrap(), text)))
                    }
                    0 => post(&http, &url, "/api/2.0/mlflow/runs/log-metric", json!({"run_id": run_id, "key": format!("w{w}"), "value": i, "timestamp": i, "step": i}))
                        .await
                        .map(|_| acked.lock().unwrap().metrics.push((run_id.clone(), format!("w{w}"), i))),
                    1 => post(&http, &url, "/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run_id, "key": format!("p{w}-{i}"), "value": "v"}))
                        .await
                        .map(|_| acked.lock().unwrap().params.push((run_id.clone(), format!("p{w}-{i}")))),
                    _ => post(&http, &url, "/api/2.0/mlflow/runs/create", json!({"experiment_id": exp_id}))
                        .await
                        .map(|v| acked.lock().unwrap().runs.push(v["run"]["info"]["run_id"].as_str().unwrap().to_owned())),
                };
                if ok.is_none() {
                    // The server is gone; anything not acknowledged may or may not be there.
                    break;
                }
            }
        }));
    }
    // Let a good stream of writes through, then kill without warning.
    let t0 = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = acked.lock().unwrap();
        if a.metrics.len() + a.params.len() + a.runs.len() + a.envs.len() >= 600
            || t0.elapsed() > Duration::from_secs(20)
        {
            break;
        }
    }
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    let total = acked.metrics.len() + acked.params.len() + acked.runs.len() + acked.envs.len();
    assert!(
        total >= 100,
        "too few writes were acknowledged before the kill ({total}) for the test to mean anything"
    );

    let server = Proc::start_with(dir.path(), &extra);
    let url = server.url.clone();
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(path)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let run = get(format!("{url}/api/2.0/mlflow/runs/get?run_id={run_id}")).await;
    let params: std::collections::HashSet<String> = run["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect();
    for (_, key) in &acked.params {
        assert!(params.contains(key), "acknowledged param {key} lost");
    }
    for w in 0..4 {
        let hist = get(format!(
            "{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=w{w}"
        ))
        .await;
        let steps: std::collections::HashSet<i64> = hist["metrics"]
            .as_array()
            .map(|a| a.iter().map(|m| m["step"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        for (_, key, step) in acked.metrics.iter().filter(|m| m.1 == format!("w{w}")) {
            assert!(
                steps.contains(step),
                "acknowledged metric {key} step {step} lost"
            );
        }
    }
    for r in &acked.runs {
        let got = get(format!("{url}/api/2.0/mlflow/runs/get?run_id={r}")).await;
        assert_eq!(
            got["run"]["info"]["run_id"].as_str(),
            Some(r.as_str()),
            "acknowledged run {r} lost"
        );
    }
    for (name, version, text) in &acked.envs {
        let got = get(format!(
            "{url}/api/tandem/v1/workspaces/default/environments/{name}/{version}"
        ))
        .await;
        let path = got["environment"]["spec_path"]
            .as_str()
            .unwrap_or_else(|| panic!("acknowledged environment {name} {version} lost: {got}"));
        let bytes = http
            .get(format!("{url}/api/2.0/mlflow-artifacts/artifacts/{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            &bytes, text,
            "environment {name} {version}: specification lost"
        );
    }
    let verify = get(format!("{url}/api/tandem/v1/workspaces/default/verify")).await;
    assert_eq!(verify["ok"], true, "change log damaged: {verify}");
    // Every acknowledged write is one event (an environment two); the workspace's own set-up events come first.
    assert!(
        verify["head_seq"].as_u64().unwrap() >= total as u64 + 4,
        "{verify} vs {total} acknowledged"
    );
    println!("crash test ({meta:?}): {total} writes acknowledged before SIGKILL, all present, log verified to seq {}", verify["head_seq"]);
}
