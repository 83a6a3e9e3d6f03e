//! Artifacts stream through the server: a 2 GiB upload and its download may not raise the
//! server's resident memory by more than a few tens of MiB, on the local folder and (through
//! buffered multipart uploads) on object storage.

use crate::crash::Proc;
use bytes::Bytes;
use futures_util::stream;

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn upload_and_measure(extra: &[&str], total: u64, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start_with(dir.path(), extra);
    let pid = server.child.id();
    let http = reqwest::Client::new();
    // Warm the server up (first requests allocate pools and caches) before the baseline.
    for _ in 0..3 {
        http.put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/warm/f",
            server.url
        ))
        .body(vec![1u8; 4 << 20])
        .send()
        .await
        .unwrap();
        http.get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/warm/f",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    }
    let before = status_kib(pid, "VmRSS:");
    let chunk = Bytes::from(vec![42u8; 1 << 20]);
    let n = total >> 20;
    let body = reqwest::Body::wrap_stream(stream::iter(
        (0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ));
    let r = http
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/big/blob.bin",
            server.url
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{label}: {}",
        r.text().await.unwrap()
    );
    // Download it back, counting bytes without keeping them.
    let mut resp = http
        .get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/big/blob.bin",
            server.url
        ))
        .send()
        .await
        .unwrap();
    let mut got = 0u64;
    while let Some(c) = resp.chunk().await.unwrap() {
        got += c.len() as u64;
    }
    assert_eq!(got, total, "{label}: downloaded size");
    let peak = status_kib(pid, "VmHWM:");
    let grew_mib = peak.saturating_sub(before) / 1024;
    println!("memory ({label}): {} MiB up and down; resident {} MiB before, peak {} MiB (+{grew_mib} MiB)", total >> 20, before / 1024, peak / 1024);
    assert!(
        grew_mib <= 48,
        "{label}: the server's memory grew by {grew_mib} MiB moving {} MiB",
        total >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_artifact_streams_through_in_bounded_memory() {
    upload_and_measure(&[], 2 << 30, "folder").await;
    if let Ok(base) = std::env::var("TANDEM_TEST_AZURITE") {
        let url = format!("{base}/mem-{}", std::process::id());
        upload_and_measure(&["--artifacts", &url], 512 << 20, "azure").await;
    }
}
