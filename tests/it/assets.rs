//! Environments and data assets: versions, immutability, content hashes, soft delete, restore
//! and purge, on every metadata store.

use crate::support::{metadata_stores, Meta, TestServer};
use serde_json::{json, Value};

const ENVS: &str = "/api/tandem/v1/workspaces/default/environments";
const DATA: &str = "/api/tandem/v1/workspaces/default/data-assets";
const JOBS: &str = "/api/tandem/v1/workspaces/default/jobs";
const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_versioned_immutable_and_soft_deleted() {
    for meta in metadata_stores() {
        environments_on(meta).await;
    }
}

async fn environments_on(meta: Meta) {
    let s = TestServer::start_on(meta, None).await;
    let image = format!("registry.example/train@sha256:{DIGEST}");
    let v1 = s
        .ok(
            "POST",
            ENVS,
            json!({"name": "torch", "image": image, "description": "cuda"}),
        )
        .await;
    assert_eq!(v1["environment"]["version"], 1);
    assert_eq!(v1["environment"]["image"], image.as_str());
    let reqs = "numpy==2.1.0\nmlflow-skinny==3.17.2\n";
    let v2 = s
        .ok("POST", ENVS, json!({"name": "torch", "requirements": reqs}))
        .await;
    let e2 = &v2["environment"];
    assert_eq!(e2["version"], 2);
    let path = e2["spec_path"].as_str().unwrap().to_owned();
    assert!(path.starts_with("environments/torch/") && path.ends_with("/requirements.txt"));
    // The specification is an artifact of the workspace: served back byte for byte.
    let bytes = s
        .http
        .get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            s.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(bytes, reqs);
    assert_eq!(
        e2["spec_sha256"].as_str().unwrap(),
        tandem_core::ids::hex(&<sha2::Sha256 as sha2::Digest>::digest(reqs.as_bytes()))
    );
    // A version, once made, never changes: naming an existing one is refused.
    let (status, err) = s
        .call(
            "POST",
            ENVS,
            Some(json!({"name": "torch", "version": 2, "conda": "name: x"})),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );
    let v7 = s
        .ok(
            "POST",
            ENVS,
            json!({"name": "torch", "version": "7", "conda": "name: x\n"}),
        )
        .await;
    assert_eq!(v7["environment"]["version"], 7);
    let next = s
        .ok("POST", ENVS, json!({"name": "torch", "image": image}))
        .await;
    assert_eq!(next["environment"]["version"], 8);

    let latest = s
        .ok("GET", &format!("{ENVS}/torch/latest"), json!({}))
        .await;
    assert_eq!(latest["environment"]["version"], 8);
    let listed = s.ok("GET", ENVS, json!({})).await;
    let versions: Vec<i64> = listed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![8, 7, 2, 1]);

    // Soft delete hides a version from lists and from `latest`; restore brings it back.
    s.ok("DELETE", &format!("{ENVS}/torch/8"), json!({})).await;
    let latest = s
        .ok("GET", &format!("{ENVS}/torch/latest"), json!({}))
        .await;
    assert_eq!(latest["environment"]["version"], 7);
    let deleted = s.ok("GET", &format!("{ENVS}/torch/8"), json!({})).await;
    assert!(deleted["environment"]["deleted_time"].as_i64().is_some());
    let listed = s.ok("GET", ENVS, json!({"include_deleted": "true"})).await;
    assert_eq!(listed["environments"].as_array().unwrap().len(), 4);
    let (status, _) = s.call("DELETE", &format!("{ENVS}/torch/8"), None).await;
    assert_eq!(status, 400, "deleting twice");
    // A deleted version's number is still taken.
    let after = s
        .ok("POST", ENVS, json!({"name": "torch", "image": image}))
        .await;
    assert_eq!(after["environment"]["version"], 9);
    s.ok("POST", &format!("{ENVS}/torch/8/restore"), json!({}))
        .await;
    let listed = s.ok("GET", ENVS, json!({"name": "torch"})).await;
    assert_eq!(listed["environments"].as_array().unwrap().len(), 5);

    // Purged past retention (here: at once, no purge protection).
    s.ok("DELETE", &format!("{ENVS}/torch/1"), json!({})).await;
    let purged = s
        .ok(
            "POST",
            "/api/tandem/v1/workspaces/default/purge",
            json!({"immediately": true}),
        )
        .await;
    assert_eq!(purged["assets"], json!(["environment:torch/1"]));
    let (status, _) = s.call("GET", &format!("{ENVS}/torch/1"), None).await;
    assert_eq!(status, 404);

    // Every change is an audited event of the workspace.
    let audit = s
        .ok("GET", "/api/tandem/v1/workspaces/default/audit", json!({}))
        .await;
    let objects: Vec<&str> = audit["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["object"].as_str()).collect())
        .unwrap_or_default();
    assert!(objects.contains(&"environment:torch/8"), "{audit}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_assets_record_what_tandem_holds() {
    for meta in metadata_stores() {
        data_assets_on(meta).await;
    }
}

async fn data_assets_on(meta: Meta) {
    let s = TestServer::start_on(meta, None).await;
    // A run with two files, uploaded through MLflow's artifact proxy.
    let exp = s
        .ok(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "d"}),
        )
        .await;
    let run = s
        .ok(
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": exp["experiment_id"]}),
        )
        .await;
    let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    let root = run["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let rel = root.strip_prefix("mlflow-artifacts:/").unwrap().to_owned();
    for (name, body) in [("train/a.csv", "x,y\n1,2\n"), ("train/b.csv", "x,y\n3,4\n")] {
        let r = s
            .http
            .put(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{rel}/{name}",
                s.url
            ))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let file = s
        .ok(
            "POST",
            DATA,
            json!({"name": "train-a", "type": "uri_file", "uri": format!("runs:/{rid}/train/a.csv")}),
        )
        .await;
    assert_eq!(
        file["data_asset"]["sha256"].as_str().unwrap(),
        tandem_core::ids::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"x,y\n1,2\n"))
    );
    let folder = s
        .ok(
            "POST",
            DATA,
            json!({"name": "train", "type": "uri_folder", "uri": format!("{root}/train")}),
        )
        .await;
    let h1 = folder["data_asset"]["sha256"].as_str().unwrap().to_owned();
    // The same folder with one file changed hashes differently.
    s.http
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{rel}/train/b.csv",
            s.url
        ))
        .body("x,y\n3,5\n")
        .send()
        .await
        .unwrap();
    let again = s
        .ok(
            "POST",
            DATA,
            json!({"name": "train", "type": "uri_folder", "uri": format!("{root}/train/")}),
        )
        .await;
    assert_eq!(again["data_asset"]["version"], 2);
    assert_ne!(again["data_asset"]["sha256"].as_str().unwrap(), h1);
    // Object storage: recorded as given, with no hash (tandem does not read it).
    let s3 = s
        .ok(
            "POST",
            DATA,
            json!({"name": "raw", "type": "uri_folder", "uri": "s3://bucket/raw/2026/"}),
        )
        .await;
    assert!(s3["data_asset"].get("sha256").is_none());
    let listed = s.ok("GET", DATA, json!({})).await;
    let names: Vec<(&str, i64)> = listed["data_assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![("raw", 1), ("train", 2), ("train", 1), ("train-a", 1)]
    );
    s.stop().await;
}

/// Bad requests of the asset and job routes: a clear 4xx, and nothing written.
pub fn bad_input_cases() -> Vec<crate::support::Case> {
    const IPV: (u16, &str) = (400, "INVALID_PARAMETER_VALUE");
    const RDNE: (u16, &str) = (404, "RESOURCE_DOES_NOT_EXIST");
    let image = format!("r/x@sha256:{DIGEST}");
    let cases: Vec<(&str, String, Value, (u16, &str))> = vec![
        ("POST", ENVS.into(), json!({"image": image}), IPV),
        (
            "POST",
            ENVS.into(),
            json!({"name": "../x", "image": image}),
            IPV,
        ),
        ("POST", ENVS.into(), json!({"name": "e"}), IPV),
        (
            "POST",
            ENVS.into(),
            json!({"name": "e", "image": "python:3.12"}),
            IPV,
        ),
        (
            "POST",
            ENVS.into(),
            json!({"name": "e", "image": image, "requirements": "x"}),
            IPV,
        ),
        (
            "POST",
            ENVS.into(),
            json!({"name": "e", "image": image, "version": 0}),
            IPV,
        ),
        (
            "POST",
            ENVS.into(),
            json!({"name": "e", "requirements": "x".repeat(tandem::api::assets::MAX_SPEC_BYTES + 1)}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/no-such/environments".into(),
            json!({"name": "e", "image": image}),
            RDNE,
        ),
        ("GET", format!("{ENVS}/nobody/1"), json!({}), RDNE),
        ("GET", format!("{ENVS}/e/x"), json!({}), IPV),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/environments".into(),
            json!({}),
            IPV,
        ),
        ("DELETE", format!("{ENVS}/nobody/1"), json!({}), RDNE),
        ("POST", format!("{ENVS}/nobody/1/restore"), json!({}), RDNE),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "table", "uri": "s3://b/k"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "/etc/passwd"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "file:///etc/passwd"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "http://169.254.169.254/x"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "mlflow-artifacts:/../x"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "mlflow-artifacts:/nothing/here"}),
            IPV,
        ),
        (
            "POST",
            DATA.into(),
            json!({"name": "d", "type": "uri_file", "uri": "runs:/0123456789abcdef0123456789abcdef/x"}),
            RDNE,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/data-assets".into(),
            json!({}),
            IPV,
        ),
        ("GET", format!("{DATA}/d/latest"), json!({}), RDNE),
        ("DELETE", format!("{DATA}/nobody/1"), json!({}), RDNE),
        ("POST", format!("{DATA}/nobody/1/restore"), json!({}), RDNE),
        // Jobs (their specs in depth: tests/python/test_jobs.py).
        ("POST", JOBS.into(), json!({}), IPV),
        (
            "POST",
            JOBS.into(),
            json!({"command": ["true"], "compute": "tpu"}),
            IPV,
        ),
        (
            "POST",
            JOBS.into(),
            json!({"command": ["true"], "environment": "nobody"}),
            IPV,
        ),
        (
            "POST",
            JOBS.into(),
            json!({"command": ["true"], "key": "k".repeat(300)}),
            IPV,
        ),
        ("GET", JOBS.into(), json!({"state": "bogus"}), IPV),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/jobs".into(),
            json!({}),
            IPV,
        ),
        ("GET", format!("{JOBS}/j-nope"), json!({}), RDNE),
        ("POST", format!("{JOBS}/j-nope/cancel"), json!({}), RDNE),
        (
            "POST",
            format!("{JOBS}/j-nope/attempts/1/report"),
            json!({"outcome": "completed"}),
            RDNE,
        ),
        (
            "POST",
            format!("{JOBS}/j-nope/attempts/1/report"),
            json!({"outcome": "exploded"}),
            IPV,
        ),
        (
            "POST",
            format!("{JOBS}/j-nope/attempts/x/report"),
            json!({"outcome": "completed"}),
            IPV,
        ),
    ];
    crate::support::static_cases(cases)
}

/// `tandem env` and `tandem data` against a running server, as a user runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_data_commands_talk_to_the_server() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let reqs = dir.path().join("requirements.txt");
    std::fs::write(&reqs, "pandas==2.2.3\n").unwrap();
    let url = s.url.clone();
    let run = move |args: Vec<String>| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
                    .args(&args)
                    .env("MLFLOW_TRACKING_URI", url)
                    .env_remove("MLFLOW_TRACKING_TOKEN")
                    .env_remove("MLFLOW_TRACKING_USERNAME")
                    .output()
                    .unwrap();
                (
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .await
            .unwrap()
        }
    };
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (code, out, err) = run(a(&[
        "env",
        "create",
        "pandas",
        "--requirements",
        reqs.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["environment"]["version"], 1);
    let (code, _, err) = run(a(&["env", "create", "pandas", "--image", "python:3.12"])).await;
    assert_ne!(code, 0);
    assert!(err.contains("pinned by digest"), "{err}");
    let (code, out, err) = run(a(&["data", "create", "raw", "--uri", "s3://bucket/raw/"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"uri_folder\""), "{out}");
    let (code, out, _) = run(a(&["env", "get", "pandas"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("requirements.txt"), "{out}");
    let (code, _, err) = run(a(&["env", "delete", "pandas", "1"])).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(a(&["env", "list"])).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"environments": []})
    );
    let (_, out, _) = run(a(&["env", "list", "--all"])).await;
    assert!(out.contains("deleted_time"), "{out}");
    let (code, _, err) = run(a(&["env", "restore", "pandas", "1"])).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(a(&["data", "list", "--name", "raw"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("s3://bucket/raw/"), "{out}");
    s.stop().await;
}
