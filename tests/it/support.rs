//! A tandem server in this process on an ephemeral port, and a small JSON client for it.

use serde_json::{json, Value};
use tandem::config::{ArtifactLocation, Config, StoreLocation};
use tandem::store::sqlite::Durability;

/// A metadata store every storage-facing test runs against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Meta {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL when the test command started one (TANDEM_TEST_POSTGRES), and
/// an error rather than a silent skip when the run says services are required.
pub fn metadata_stores() -> Vec<Meta> {
    let mut v = vec![Meta::Sqlite];
    if std::env::var("TANDEM_TEST_POSTGRES").is_ok() {
        v.push(Meta::Postgres);
    } else if std::env::var("TANDEM_TEST_REQUIRE_SERVICES").is_ok() {
        panic!("TANDEM_TEST_POSTGRES is not set but TANDEM_TEST_REQUIRE_SERVICES is: run scripts/test.sh");
    } else {
        eprintln!(
            "note: TANDEM_TEST_POSTGRES is not set; PostgreSQL variants of this test are skipped"
        );
    }
    v
}

/// A new, empty PostgreSQL database on the test cluster; returns its URL. Blocking.
pub fn fresh_postgres() -> String {
    let admin = std::env::var("TANDEM_TEST_POSTGRES").expect("TANDEM_TEST_POSTGRES");
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap();
    let name = format!("t_{}", tandem_core::ids::hex(&b));
    let mut c =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test PostgreSQL");
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A new, empty metadata store of kind `meta` (SQLite in `dir`), for tests that migrate or
/// replay into a store themselves.
pub fn fresh_backend(
    meta: Meta,
    dir: &std::path::Path,
) -> std::sync::Arc<dyn tandem::store::Backend> {
    match meta {
        Meta::Sqlite => std::sync::Arc::new(
            tandem::store::sqlite::Sqlite::open(&dir.join("m.sqlite"), Durability::Normal).unwrap(),
        ),
        Meta::Postgres => std::sync::Arc::new(
            tandem::store::postgres::Postgres::connect(&fresh_postgres()).unwrap(),
        ),
    }
}

/// Where a test's metadata lives.
pub fn store_location(meta: Meta, dir: &std::path::Path) -> StoreLocation {
    match meta {
        Meta::Sqlite => StoreLocation::Sqlite(dir.join("metadata.sqlite")),
        Meta::Postgres => StoreLocation::Postgres(fresh_postgres()),
    }
}

/// Installs rustls' ring provider once: the HTTP client is built without a default one.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub struct TestServer {
    pub url: String,
    /// The server's own store, for tests that set up state behind the API (first admins).
    pub store: tandem::store::Store,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_on(Meta::Sqlite, None).await
    }

    /// A server over the given metadata store and artifact store (a folder if None).
    pub async fn start_on(meta: Meta, artifacts: Option<ArtifactLocation>) -> TestServer {
        TestServer::start_with(meta, artifacts, tandem::auth::AuthMode::Off).await
    }

    /// As `start_on`, with authentication `auth`.
    pub async fn start_with(
        meta: Meta,
        artifacts: Option<ArtifactLocation>,
        auth: tandem::auth::AuthMode,
    ) -> TestServer {
        TestServer::start_with_clock(meta, artifacts, auth, None).await
    }

    /// As `start_with`, reading time from `clock` when given.
    pub async fn start_with_clock(
        meta: Meta,
        artifacts: Option<ArtifactLocation>,
        auth: tandem::auth::AuthMode,
        clock: Option<std::sync::Arc<dyn tandem::store::Clock>>,
    ) -> TestServer {
        init();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_owned();
        let store = tokio::task::spawn_blocking(move || store_location(meta, &d))
            .await
            .unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: dir.path().to_owned(),
            region: "test".into(),
            durability: Durability::Normal,
            store,
            artifacts: artifacts
                .unwrap_or_else(|| ArtifactLocation::Folder(dir.path().join("artifacts"))),
            archive: None,
            tls: None,
            auth,
            metrics_auth: true,
            compute: vec![tandem::jobs::ComputeTarget::local_default()],
        };
        let mut state = tandem::server::open(&config).await.unwrap();
        if let Some(clock) = clock {
            state.store = state.store.with_clock(clock);
            state.auth = std::sync::Arc::new(tandem::auth::Auth::new(
                auth,
                state.store.clone(),
                None,
                true,
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tandem::server::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            url,
            store: state.store.clone(),
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// Sends a request; returns the status and the body parsed as JSON (Null if it is not).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_ws(method, path, body, None).await
    }

    pub async fn call_ws(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        workspace: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{}", self.url, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, url);
        if let Some(ws) = workspace {
            req = req.header("X-MLFLOW-WORKSPACE", ws);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The server's data folder (its SQLite file, artifacts and master key live there).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = if method == "GET" {
            self.call(method, &query_path(path, &body), None).await
        } else {
            self.call(method, path, Some(body)).await
        };
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    pub async fn head_seq(&self, ws: &str) -> u64 {
        let (_, v) = self
            .call(
                "GET",
                &format!("/api/tandem/v1/workspaces/{ws}/changes?after=0&limit=1"),
                None,
            )
            .await;
        v["head_seq"].as_u64().unwrap_or(0)
    }
}

/// Turns a flat JSON object into a query string (lists repeat the key).
pub fn query_path(path: &str, params: &Value) -> String {
    let mut pairs = Vec::new();
    if let Some(obj) = params.as_object() {
        for (k, v) in obj {
            let vals: Vec<String> = match v {
                Value::Array(a) => a.iter().map(scalar).collect(),
                other => vec![scalar(other)],
            };
            for s in vals {
                pairs.push(format!("{}={}", enc(k), enc(&s)));
            }
        }
    }
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn enc(s: &str) -> String {
    tandem::http::encode_segment(s)
}

/// A workspace populated with one of everything, for tests that need real IDs.
pub struct Fixture {
    pub experiment_id: String,
    pub run_id: String,
    pub model_name: String,
    pub model_id: String,
}

pub async fn fixture(s: &TestServer) -> Fixture {
    let exp = s
        .ok(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "fixture"}),
        )
        .await;
    let experiment_id = exp["experiment_id"].as_str().unwrap().to_owned();
    let run = s
        .ok(
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": experiment_id, "start_time": 1}),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    s.ok(
        "POST",
        "/api/2.0/mlflow/runs/log-parameter",
        json!({"run_id": run_id, "key": "p", "value": "1"}),
    )
    .await;
    s.ok(
        "POST",
        "/api/2.0/mlflow/runs/set-tag",
        json!({"run_id": run_id, "key": "t", "value": "1"}),
    )
    .await;
    s.ok(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "fixture-model"}),
    )
    .await;
    s.ok(
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        json!({"name": "fixture-model", "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
    )
    .await;
    let lm = s
        .ok(
            "POST",
            "/api/2.0/mlflow/logged-models",
            json!({"experiment_id": experiment_id, "name": "lm"}),
        )
        .await;
    let model_id = lm["model"]["info"]["model_id"].as_str().unwrap().to_owned();
    Fixture {
        experiment_id,
        run_id,
        model_name: "fixture-model".into(),
        model_id,
    }
}

/// Bad-input cases with paths built at run time, in the static form the suite's table holds
/// (the few strings live as long as the test binary).
pub type Case = (
    &'static str,
    &'static str,
    serde_json::Value,
    (u16, &'static str),
);

pub fn static_cases(
    cases: Vec<(&'static str, String, serde_json::Value, (u16, &'static str))>,
) -> Vec<Case> {
    cases
        .into_iter()
        .map(|(m, p, v, c)| (m, &*Box::leak(p.into_boxed_str()), v, c))
        .collect()
}
