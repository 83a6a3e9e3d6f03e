//! Cut a region off (from the witness and from the other region) while both keep running and
//! clients write to both. A history of every acknowledged write and every leadership claim
//! is checked: no two regions ever led the same epoch, and no acknowledged write is missing
//! or duplicated: each is in the final state, or kept aside as a diverged event. Then heal:
//! the old leader rejoins as a standby by itself.
//!
//! Needs the Azurite the test command starts (the witness must be reachable over TCP so a
//! proxy can cut it); loopback only; bounded in time; every process is killed on drop.

use crate::crash::Proc;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that can be cut: while cut it refuses new connections and drops open ones.
struct Link {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Link {
    async fn start(upstream: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let c = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.split();
                    let (mut ro, mut wo) = outbound.split();
                    let watch = async {
                        while !c.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {},
                        _ = tokio::io::copy(&mut ro, &mut wi) => {},
                        _ = watch => {},
                    }
                });
            }
        });
        Link { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_fences_itself_and_no_acknowledged_write_is_lost() {
    crate::support::init();
    let Ok(azurite) = std::env::var("AZURITE_BLOB_STORAGE_URL") else {
        assert!(
            std::env::var("TANDEM_TEST_REQUIRE_SERVICES").is_err(),
            "AZURITE_BLOB_STORAGE_URL is not set but services are required"
        );
        eprintln!("note: Azurite not configured; the partition test is skipped");
        return;
    };
    let azurite_addr: SocketAddr = azurite
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (east_port, west_port) = (free_port(), free_port());
    // Each region reaches the witness and the other region only through its own links.
    let east_witness = Link::start(azurite_addr).await;
    let west_witness = Link::start(azurite_addr).await;
    let to_east = Link::start(([127, 0, 0, 1], east_port).into()).await;
    let to_west = Link::start(([127, 0, 0, 1], west_port).into()).await;
    let d = dir.path().display();
    let deployment = format!(
        r#"[witness]
location = "azure://tandem-test/partition-{pid}"
[timing]
lease_ms = 3000
renew_ms = 500
[[region]]
name = "east"
listen = "127.0.0.1:{east_port}"
url = "http://{to_east}"
store = "sqlite://{d}/east.sqlite"
artifacts = "file://{d}/east-artifacts"
[[region]]
name = "west"
listen = "127.0.0.1:{west_port}"
url = "http://{to_west}"
store = "sqlite://{d}/west.sqlite"
artifacts = "file://{d}/west-artifacts"
[[workspace]]
name = "default"
mode = "hot/warm"
write_ack = "async"
preferred_leader = "east"
[access]
auth = "off"
"#,
        pid = std::process::id(),
        to_east = to_east.addr,
        to_west = to_west.addr,
    );
    let path = dir.path().join("deployment.toml");
    std::fs::write(&path, deployment).unwrap();
    let region = |name: &str, witness: &Link| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "region",
                "--deployment",
                path.to_str().unwrap(),
                "--name",
                name,
                "--data",
            ])
            .arg(dir.path().join(name))
            .env(
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://{}", witness.addr),
            )
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("TANDEM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        let _ = &mut child;
        Proc {
            child,
            url: String::new(),
        }
    };
    let _east = region("east", &east_witness);
    let _west = region("west", &west_witness);
    let urls = [
        ("east", format!("http://127.0.0.1:{east_port}")),
        ("west", format!("http://127.0.0.1:{west_port}")),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = |url: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/api/tandem/v1/status"))
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };
    // Wait for east to lead and west to have the workspace.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = status(urls[0].1.clone()).await;
        let w = status(urls[1].1.clone()).await;
        if e.as_ref()
            .is_some_and(|s| s["workspaces"][0]["role"] == "leader")
            && w.as_ref()
                .is_some_and(|s| s["workspaces"][0]["head_seq"].as_u64().unwrap_or(0) >= 2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deployment did not come up: {e:?} {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run: Value = http
        .post(format!("{}/api/2.0/mlflow/runs/create", urls[0].1))
        .json(&json!({"experiment_id": "0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // History: leadership observations, and acknowledged writes.
    let leaders: Arc<Mutex<BTreeMap<u64, HashSet<String>>>> = Arc::default();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (name, url) in urls.clone() {
        let (leaders, stop, http, url) = (leaders.clone(), stop.clone(), http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(r) = http
                    .get(format!("{url}/api/tandem/v1/status"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                {
                    if let Ok(v) = r.json::<Value>().await {
                        let w = &v["workspaces"][0];
                        if w["role"] == "leader" && w["lease"] == "held" {
                            leaders
                                .lock()
                                .unwrap()
                                .entry(w["epoch"].as_u64().unwrap())
                                .or_default()
                                .insert(name.to_owned());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }
    for (i, (_, url)) in urls.iter().cycle().take(4).enumerate() {
        let (acked, stop, http, url, run_id) = (
            acked.clone(),
            stop.clone(),
            http.clone(),
            url.clone(),
            run_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("w{i}-{n}");
                n += 1;
                let ok = http
                    .post(format!("{url}/api/2.0/mlflow/runs/log-parameter"))
                    .json(&json!({"run_id": run_id, "key": key, "value": "v"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    acked.lock().unwrap().push(key);
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Partition east from the witness and from west, both ways; both keep running.
    east_witness.set_cut(true);
    to_east.set_cut(true);
    to_west.set_cut(true);
    let cut_at = Instant::now();
    // West takes over; wait until it leads, then let writes flow for a while.
    loop {
        let w = status(urls[1].1.clone()).await;
        if w.as_ref().is_some_and(|s| {
            s["workspaces"][0]["role"] == "leader"
                && s["workspaces"][0]["epoch"].as_u64() >= Some(2)
        }) {
            break;
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(30),
            "west did not take over: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = cut_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // East must have fenced itself: it refuses writes now.
    let fenced = http
        .post(format!("{}/api/2.0/mlflow/runs/log-parameter", urls[0].1))
        .json(&json!({"run_id": run_id, "key": "after-fence", "value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fenced.status().as_u16(),
        503,
        "a partitioned leader kept accepting writes"
    );
    // Heal.
    east_witness.set_cut(false);
    to_east.set_cut(false);
    to_west.set_cut(false);
    let healed = Instant::now();
    loop {
        let e = status(urls[0].1.clone()).await;
        if e.as_ref().is_some_and(|s| {
            s["workspaces"][0]["role"] == "standby"
                && s["workspaces"][0]["replication_lag_events"] == 0
                && s["workspaces"][0]["epoch"].as_u64() >= Some(2)
        }) {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "east did not rejoin as standby: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    // Check the history.
    for (epoch, who) in leaders.lock().unwrap().iter() {
        assert_eq!(who.len(), 1, "epoch {epoch} had two leaders: {who:?}");
    }
    let run: Value = http
        .get(format!(
            "{}/api/2.0/mlflow/runs/get?run_id={run_id}",
            urls[1].1
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let present: HashSet<String> = run["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect();
    let diverged: Value = http
        .get(format!(
            "{}/api/tandem/v1/workspaces/default/diverged",
            urls[0].1
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept: HashSet<String> = diverged["diverged"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["payload"].as_str().unwrap()).ok())
        .flat_map(|p| p["params"].as_array().cloned().unwrap_or_default())
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect();
    let acked = acked.lock().unwrap().clone();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "a write was acknowledged twice");
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| !present.contains(*k) && !kept.contains(*k))
        .collect();
    if !lost.is_empty() {
        for name in ["east", "west"] {
            let log =
                std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            eprintln!(
                "--- {name}.log (last lines, newest first)\n{}",
                tail.join("\n")
            );
        }
        eprintln!(
            "diverged: {} events; present: {}; acked: {}",
            diverged["diverged"].as_array().map_or(0, |a| a.len()),
            present.len(),
            acked.len()
        );
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes neither present nor kept, first: {:?}",
        lost.len(),
        lost.iter().take(3).collect::<Vec<_>>()
    );
    // Both regions agree and their logs verify.
    let heads: Vec<Value> = futures_util::future::join_all(urls.iter().map(|(_, u)| {
        let http = http.clone();
        let u = u.clone();
        async move {
            http.get(format!("{u}/api/tandem/v1/workspaces/default/verify"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(heads.iter().all(|h| h["ok"] == true), "{heads:?}");
    assert_eq!(heads[0]["head_seq"], heads[1]["head_seq"]);
    // An operator settles the kept events: one re-applied through the leader, one discarded.
    let events = diverged["diverged"].as_array().unwrap();
    if events.len() >= 2 {
        let (a, b) = (&events[0], &events[1]);
        let reapplied: Value = http
            .post(format!(
                "{}/api/tandem/v1/workspaces/default/diverged/{}/{}/reapply",
                urls[0].1, a["epoch"], a["seq"]
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reapplied["status"], "reapplied", "{reapplied}");
        let key = serde_json::from_str::<Value>(a["payload"].as_str().unwrap()).unwrap()["params"]
            [0]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let run: Value = http
            .get(format!(
                "{}/api/2.0/mlflow/runs/get?run_id={run_id}",
                urls[1].1
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            run["run"]["data"]["params"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["key"] == key.as_str()),
            "re-applied param {key} missing"
        );
        let discarded: Value = http
            .post(format!(
                "{}/api/tandem/v1/workspaces/default/diverged/{}/{}/discard",
                urls[0].1, b["epoch"], b["seq"]
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discarded["status"], "discarded", "{discarded}");
        // Settling twice is refused.
        let again = http
            .post(format!(
                "{}/api/tandem/v1/workspaces/default/diverged/{}/{}/discard",
                urls[0].1, b["epoch"], b["seq"]
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 400);
    }
    println!(
        "partition: {} writes acknowledged, {} kept as diverged in east, west led {:.1} s after the cut, epochs {:?}",
        acked.len(),
        kept.len(),
        took_over.as_secs_f64(),
        leaders.lock().unwrap().keys().collect::<Vec<_>>()
    );
}
