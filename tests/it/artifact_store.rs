//! One artifact suite, written once, run against every artifact backend the test run has:
//! the local folder always, Azure Blob (Azurite) and S3 (an S3-compatible server) when the
//! test command started them.

use crate::support::{Meta, TestServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem::config::ArtifactLocation;

fn backends() -> Vec<(&'static str, Option<ArtifactLocation>)> {
    let mut out = vec![("folder", None)];
    let required = std::env::var("TANDEM_TEST_REQUIRE_SERVICES").is_ok();
    for (name, var) in [("azure", "TANDEM_TEST_AZURITE"), ("s3", "TANDEM_TEST_S3")] {
        match std::env::var(var) {
            Ok(base) => {
                let mut b = [0u8; 6];
                getrandom::getrandom(&mut b).unwrap();
                out.push((
                    name,
                    Some(ArtifactLocation::Object(format!(
                        "{base}/run-{}",
                        tandem_core::ids::hex(&b)
                    ))),
                ));
            }
            Err(_) if required => {
                panic!("{var} is not set but TANDEM_TEST_REQUIRE_SERVICES is: run scripts/test.sh")
            }
            Err(_) => eprintln!("note: {var} is not set; the {name} artifact backend is skipped"),
        }
    }
    out
}

fn sha(data: &[u8]) -> String {
    tandem_core::ids::hex(&Sha256::digest(data))
}

async fn put(s: &TestServer, path: &str, data: Vec<u8>) -> u16 {
    s.http
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            s.url
        ))
        .body(data)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let r = s
        .http
        .get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn list(s: &TestServer, path: &str) -> Vec<(String, bool, Option<u64>)> {
    let (status, v) = s
        .call(
            "GET",
            &format!(
                "/api/2.0/mlflow-artifacts/artifacts?path={}",
                crate::support::enc(path)
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["files"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["is_dir"].as_bool().unwrap(),
                f["file_size"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artifact_suite_on_every_backend() {
    for (name, location) in backends() {
        suite(name, location).await;
    }
}

async fn suite(name: &str, location: Option<ArtifactLocation>) {
    let s = TestServer::start_on(Meta::Sqlite, location).await;
    let before = s.head_seq("default").await;

    // Round trip, nested paths, names with spaces and non-ASCII.
    assert_eq!(
        put(&s, "0/r1/artifacts/a.txt", b"hello".to_vec()).await,
        200,
        "{name}"
    );
    assert_eq!(
        put(
            &s,
            "0/r1/artifacts/dir/sub/b%20c%C3%A9.bin",
            vec![7u8; 1000]
        )
        .await,
        200,
        "{name}"
    );
    assert_eq!(
        get(&s, "0/r1/artifacts/a.txt").await,
        (200, b"hello".to_vec()),
        "{name}"
    );
    assert_eq!(
        get(&s, "0/r1/artifacts/dir/sub/b%20c%C3%A9.bin").await.1,
        vec![7u8; 1000],
        "{name}"
    );
    assert_eq!(
        list(&s, "0/r1/artifacts").await,
        vec![("a.txt".into(), false, Some(5)), ("dir".into(), true, None)],
        "{name}"
    );
    assert_eq!(
        list(&s, "0/r1/artifacts/dir/sub").await,
        vec![("b cé.bin".into(), false, Some(1000))],
        "{name}"
    );
    assert!(list(&s, "0/nothing/here").await.is_empty(), "{name}");
    // Overwrite replaces.
    assert_eq!(put(&s, "0/r1/artifacts/a.txt", b"bye".to_vec()).await, 200);
    assert_eq!(
        get(&s, "0/r1/artifacts/a.txt").await.1,
        b"bye".to_vec(),
        "{name}"
    );
    // Missing files are 404 with MLflow's error.
    let (status, v) = s
        .call(
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts/0/r1/artifacts/missing",
            None,
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST")),
        "{name}"
    );
    // Larger than one buffered part: object stores receive a native multipart upload.
    let big: Vec<u8> = (0..(20 << 20))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    assert_eq!(
        put(&s, "0/r1/artifacts/big.bin", big.clone()).await,
        200,
        "{name}"
    );
    let (status, got) = get(&s, "0/r1/artifacts/big.bin").await;
    assert_eq!(status, 200);
    assert!(
        got.len() == big.len() && sha(&got) == sha(&big),
        "{name}: big artifact differs"
    );

    // MLflow's proxied multipart upload, parts taken by the server and joined.
    let created = s
        .ok(
            "POST",
            "/api/2.0/mlflow-artifacts/mpu/create/0/r1/artifacts/model",
            json!({"path": "/local/weights.bin", "num_parts": 3}),
        )
        .await;
    let id = created["upload_id"].as_str().unwrap().to_owned();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| vec![b'a' + i as u8; 300_000 + i]).collect();
    let mut etags = Vec::new();
    for (i, cred) in created["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .rev()
    {
        let r = s
            .http
            .put(cred["url"].as_str().unwrap())
            .body(parts[i].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        etags.push(json!({"part_number": cred["part_number"], "etag": r.headers()["etag"].to_str().unwrap()}));
    }
    s.ok(
        "POST",
        "/api/2.0/mlflow-artifacts/mpu/complete/0/r1/artifacts/model",
        json!({"path": "/local/weights.bin", "upload_id": id, "parts": etags}),
    )
    .await;
    assert_eq!(
        get(&s, "0/r1/artifacts/model/weights.bin").await.1,
        parts.concat(),
        "{name}"
    );
    let (status, _) = s
        .call(
            "POST",
            "/api/2.0/mlflow-artifacts/mpu/complete/0/r1/artifacts/model",
            Some(json!({"path": "/local/weights.bin", "upload_id": id, "parts": []})),
        )
        .await;
    assert_eq!(status, 404, "{name}: a completed upload is gone");
    // Abort drops the parts.
    let created = s
        .ok(
            "POST",
            "/api/2.0/mlflow-artifacts/mpu/create/0/r1/artifacts",
            json!({"path": "/x/y.bin", "num_parts": 1}),
        )
        .await;
    let id = created["upload_id"].as_str().unwrap().to_owned();
    s.http
        .put(created["credentials"][0]["url"].as_str().unwrap())
        .body("zz")
        .send()
        .await
        .unwrap();
    s.ok(
        "POST",
        "/api/2.0/mlflow-artifacts/mpu/abort/0/r1/artifacts",
        json!({"path": "/x/y.bin", "upload_id": id}),
    )
    .await;
    assert_eq!(get(&s, "0/r1/artifacts/y.bin").await.0, 404, "{name}");

    // Deleting a directory removes everything below it.
    let (status, _) = s
        .call(
            "DELETE",
            "/api/2.0/mlflow-artifacts/artifacts/0/r1/artifacts/dir",
            None,
        )
        .await;
    assert_eq!(status, 200, "{name}");
    assert_eq!(
        get(&s, "0/r1/artifacts/dir/sub/b%20c%C3%A9.bin").await.0,
        404,
        "{name}"
    );
    assert!(list(&s, "0/r1/artifacts/dir").await.is_empty(), "{name}");

    // Every stored upload and delete is in the change log, with the stored bytes' checksum.
    let log = s
        .ok(
            "GET",
            &format!("/api/tandem/v1/workspaces/default/changes?after={before}"),
            json!({}),
        )
        .await;
    let events: Vec<(String, Value)> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap().to_owned(),
                serde_json::from_str(e["payload"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let ops: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        ops,
        [
            "PutArtifact",
            "PutArtifact",
            "PutArtifact",
            "PutArtifact",
            "PutArtifact",
            "DeleteArtifacts"
        ],
        "{name}"
    );
    assert_eq!(events[3].1["sha256"], sha(&big), "{name}");
    assert_eq!(
        events[4].1["path"], "0/r1/artifacts/model/weights.bin",
        "{name}"
    );
    assert_eq!(events[4].1["size"], parts.concat().len(), "{name}");
    s.stop().await;
}

#[test]
fn unusable_stores_stop_the_server_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "server",
                "--auth",
                "off",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(dir.path())
            .args(args)
            .env("TANDEM_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Nothing listens on port 1 of loopback.
    let (code, err) = run(&["--store", "postgres://tandem:hunter2@127.0.0.1:1/tandem"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("setting 'store'") && !err.contains("hunter2") && !err.contains("panicked"),
        "{err}"
    );
    if let Ok(base) = std::env::var("TANDEM_TEST_AZURITE") {
        let missing = base.replace("tandem-test", "no-such-container");
        let (code, err) = run(&["--artifacts", &missing]);
        assert_ne!(code, Some(0));
        assert!(
            err.contains("setting 'artifacts'") && !err.contains("panicked"),
            "{err}"
        );
    }
    if std::env::var("TANDEM_TEST_S3").is_ok() {
        let (code, err) = run(&["--artifacts", "s3://no-such-bucket/x"]);
        assert_ne!(code, Some(0));
        assert!(
            err.contains("setting 'artifacts'") && !err.contains("panicked"),
            "{err}"
        );
    }
}

/// A restore's checked write, on every backend: bytes with the recorded SHA-256 land; other
/// bytes never replace what the path holds (DATA_LOSS names what they hashed to), and leave
/// nothing staged behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_writes_never_put_wrong_bytes_in_place_on_every_backend() {
    for (name, location) in backends() {
        let dir = tempfile::tempdir().unwrap();
        let location = location.unwrap_or_else(|| ArtifactLocation::Folder(dir.path().to_owned()));
        let a = tandem::artifacts::Artifacts::connect(&location)
            .await
            .unwrap();
        let body = |b: &'static [u8]| {
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b))])
        };
        let path = "0/r/artifacts/model.bin";
        assert_eq!(a.sha256_of("ws", path).await.unwrap(), None, "{name}");
        assert_eq!(
            a.put_checked("ws", path, body(b"first"), &sha(b"first"))
                .await
                .unwrap(),
            5,
            "{name}"
        );
        assert_eq!(
            a.sha256_of("ws", path).await.unwrap(),
            Some(sha(b"first")),
            "{name}"
        );
        let e = a
            .put_checked("ws", path, body(b"rotten"), &sha(b"second"))
            .await
            .unwrap_err();
        assert_eq!(e.code, tandem_core::ErrorCode::DataLoss, "{name}");
        assert!(e.message.contains(&sha(b"rotten")), "{name}: {e}");
        assert_eq!(
            a.sha256_of("ws", path).await.unwrap(),
            Some(sha(b"first")),
            "{name}: the old bytes stay"
        );
        a.put_checked("ws", path, body(b"second"), &sha(b"second"))
            .await
            .unwrap();
        assert_eq!(
            a.sha256_of("ws", path).await.unwrap(),
            Some(sha(b"second")),
            "{name}"
        );
        // Nothing of the refused write is left in the workspace.
        let listed = a.list("ws", "0/r/artifacts").await.unwrap();
        assert_eq!(
            listed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["model.bin"],
            "{name}"
        );
    }
}
