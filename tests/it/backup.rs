//! Continuous backup and point-in-time restore: restoring to many instants of a randomized
//! workload gives exactly the state recorded at each; corruption is detected and refused;
//! racing or killed archivers leave no gap and no duplicate.

use crate::crash::Proc;
use crate::replay::{run_action, Action, World};
use crate::support::Meta;
use serde_json::json;
use std::sync::Arc;
use tandem::backup::Archive;
use tandem::store::sqlite::{Durability, Sqlite};
use tandem::store::{queries, Store, SystemClock};

fn archives() -> Vec<(String, Archive)> {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut out = vec![(
        "folder".to_owned(),
        Archive::open(&format!("file://{}", dir.display())).unwrap(),
    )];
    let required = std::env::var("TANDEM_TEST_REQUIRE_SERVICES").is_ok();
    for var in ["TANDEM_TEST_AZURITE", "TANDEM_TEST_S3"] {
        match std::env::var(var) {
            Ok(base) => {
                let url = format!(
                    "{base}/archive-{}-{}",
                    std::process::id(),
                    tandem_core::ids::hex(&tandem::api::random_bytes::<4>())
                );
                out.push((url.clone(), Archive::open(&url).unwrap()));
            }
            Err(_) if required => panic!("{var} is not set but TANDEM_TEST_REQUIRE_SERVICES is"),
            Err(_) => eprintln!("note: {var} is not set; that archive backend is skipped"),
        }
    }
    out
}

fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Sqlite::open(&dir.path().join("r.sqlite"), Durability::Normal).unwrap();
    (
        dir,
        Store::new(Arc::new(backend), Arc::new(SystemClock), "restore").unwrap(),
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn archive_all(a: &Archive, store: &Store, ws: &str) {
    let head = store
        .read(|tx| queries::log_head(tx, ws))
        .unwrap()
        .unwrap()
        .seq;
    while a.archived_through(ws).await.unwrap() < head {
        a.archive_once(store, ws).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_to_any_instant_gives_the_state_recorded_then() {
    crate::support::init();
    let mut w = World::new(Meta::Sqlite);
    let mut seed: u64 = 0xD1B54A32D192ED03;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed & 0xff) as u8
    };
    for kind in [0u8, 6, 6, 20, 26, 34] {
        run_action(&mut w, &Action::Api(kind, 1, 1, 1));
    }
    // Record the state at instants between writes.
    let mut checkpoints = Vec::new();
    for i in 0..600u32 {
        run_action(&mut w, &Action::Api((i % 40) as u8, next(), next(), next()));
        if i % 40 == 39 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let t = now_ms();
            checkpoints.push((t, w.store.read(|tx| queries::dump(tx, "default")).unwrap()));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    for (name, archive) in archives() {
        archive_all(&archive, &w.store, "default").await;
        let summary = archive.summary("default").await.unwrap();
        // The dashboard's cheap window says what the full read says.
        let window = archive.window("default", None).await.unwrap();
        assert_eq!(
            (window.earliest_ms, window.latest_ms, window.head_seq),
            (summary.earliest_ms, summary.latest_ms, summary.events),
            "{name}"
        );
        assert_eq!(
            summary.events,
            w.store
                .read(|tx| queries::log_head(tx, "default"))
                .unwrap()
                .unwrap()
                .seq,
            "{name}"
        );
        for (t, expected) in &checkpoints {
            let (_d, target) = empty_store();
            archive.restore("default", Some(*t), &target).await.unwrap();
            let got = target.read(|tx| queries::dump(tx, "default")).unwrap();
            assert_eq!(
                &got, expected,
                "{name}: restore to {t} differs from the state recorded then"
            );
        }
        // Outside the window: a clear error naming the restorable instants.
        let (_d, target) = empty_store();
        let err = archive
            .restore("default", Some(1_000), &target)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the archive covers") && err.contains("T"),
            "{name}: {err}"
        );
        let err = archive
            .restore("default", Some(now_ms() + 86_400_000), &target)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("future"), "{name}: {err}");
        // Never over a live workspace.
        archive.restore("default", None, &target).await.unwrap();
        let err = archive
            .restore("default", None, &target)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already has workspace"), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_archivers_leave_no_gap_or_duplicate_and_corruption_is_refused() {
    crate::support::init();
    let w = World::new(Meta::Sqlite);
    for i in 0..2500u32 {
        let op = tandem_core::Op::SetExperimentTag {
            experiment_id: "0".into(),
            key: format!("k{i}"),
            value: "v".into(),
            time: i as i64,
        };
        w.store
            .write("default", "prop", |_| {
                Ok(tandem::store::Decision::change((), op.clone()))
            })
            .unwrap();
    }
    let head = w
        .store
        .read(|tx| queries::log_head(tx, "default"))
        .unwrap()
        .unwrap()
        .seq;
    assert!(
        head > 2 * tandem::backup::SEGMENT_EVENTS as u64,
        "the workload should span several segments"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    // Three archivers over one archive, as three servers would be.
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let (a, s) = (Archive::open(&url).unwrap(), w.store.clone());
            tokio::spawn(async move {
                while a.archived_through("default").await.unwrap() < head {
                    a.archive_once(&s, "default").await.unwrap();
                }
            })
        })
        .collect();
    for r in racers {
        r.await.unwrap();
    }
    let archive = Archive::open(&url).unwrap();
    let events = archive.read_all("default").await.unwrap().events;
    let log = w
        .store
        .read(|tx| queries::changes(tx, "default", 0, 1 << 30))
        .unwrap();
    assert_eq!(events, log, "the archive is exactly the log");

    // Corrupt one segment (behind the store's back): verify and restore both refuse.
    let seg = std::fs::read_dir(dir.path().join("archive/default"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    std::fs::write(
        &seg,
        text.replacen("\"principal\":\"prop\"", "\"principal\":\"mallory\"", 1),
    )
    .unwrap();
    let err = archive.read_all("default").await.unwrap_err().to_string();
    assert!(err.contains("corrupt") && err.contains("checksum"), "{err}");
    let (_d, target) = empty_store();
    assert!(archive.restore("default", None, &target).await.is_err());
    assert!(
        target
            .read(|tx| queries::log_head(tx, "default"))
            .unwrap()
            .is_none(),
        "a refused restore wrote something"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["backup", "verify", "--archive", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "tandem backup verify accepted a corrupt archive"
    );
    // A missing segment is a gap.
    std::fs::write(&seg, text).unwrap();
    let second = std::fs::read_dir(dir.path().join("archive/default"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &seg)
        .min()
        .unwrap();
    std::fs::remove_file(&second).unwrap();
    let err = archive.read_all("default").await.unwrap_err().to_string();
    assert!(err.contains("expected"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_archives_everything_after_restart() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    let archive_url = format!("file://{}", dir.path().join("archive").display());
    let extra = ["--archive", archive_url.as_str()];
    let mut server = Proc::start_with(dir.path(), &extra);
    let http = reqwest::Client::new();
    let run: serde_json::Value = http
        .post(format!("{}/api/2.0/mlflow/runs/create", server.url))
        .json(&json!({"experiment_id": "0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    for i in 0..400 {
        http.post(format!("{}/api/2.0/mlflow/runs/log-parameter", server.url))
            .json(&json!({"run_id": run_id, "key": format!("p{i}"), "value": "v"}))
            .send()
            .await
            .unwrap();
    }
    server.kill();
    let server = Proc::start_with(dir.path(), &extra);
    let head = http
        .get(format!(
            "{}/api/tandem/v1/workspaces/default/verify",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["head_seq"]
        .as_u64()
        .unwrap();
    let archive = Archive::open(&archive_url).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while archive.archived_through("default").await.unwrap() < head {
        assert!(
            std::time::Instant::now() < deadline,
            "the archive did not catch up after the restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(archive.read_all("default").await.unwrap().head_seq(), head);
    // And `tandem restore` rebuilds it through the CLI.
    let target = dir.path().join("restored.sqlite");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "restore",
            "--archive",
            &archive_url,
            "--workspace",
            "default",
            "--into",
            &format!("sqlite://{}", target.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "restore",
            "--archive",
            &archive_url,
            "--to-time",
            "2001-01-01T00:00:00Z",
            "--into",
            &format!("sqlite://{}", dir.path().join("other.sqlite").display()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the archive covers"),
        "{err}"
    );
}

/// What a hot/cold region does on failover, and a leader whose archive was extended by an
/// old leader's late segment: the archived history wins, the local tail the archive never
/// got is kept aside as diverged, and archiving refuses to break the archive's chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_archive_keeps_a_diverged_tail_aside_and_archiving_never_breaks_the_chain() {
    crate::support::init();
    let mut w = World::new(Meta::Sqlite);
    for i in 0..300u32 {
        run_action(
            &mut w,
            &Action::Api((i % 40) as u8, (i * 7) as u8, (i * 13) as u8, (i * 3) as u8),
        );
    }
    let (_, archive) = archives().remove(0);
    archive_all(&archive, &w.store, "default").await;
    let archived = archive.read_all("default").await.unwrap().events;
    // A second region restored the first half earlier, then wrote 5 events of its own.
    let half = archived.len() / 2;
    let (_d, other) = empty_store();
    other.replay("default", &archived[..half]).unwrap();
    let ctx = tandem::api::Ctx {
        store: other.clone(),
        artifacts: tandem::artifacts::Artifacts::folder(_d.path()).unwrap(),
        workspace: "default".into(),
        principal: "t".into(),
        require_live: true,
        authenticated: false,
        compute: Default::default(),
        vault: None,
    };
    for i in 0..5 {
        tandem::api::tracking::create_experiment(
            &ctx,
            &tandem::api::Req::from_json(json!({"name": format!("local-{i}")})).unwrap(),
        )
        .unwrap();
    }
    // Archiving from it now would fork the archive: refused.
    let err = archive.archive_once(&other, "default").await.unwrap_err();
    let n = archived.len() as u64;
    assert!(
        matches!(err, tandem::backup::BackupError::Diverged { archived: a } if a == n),
        "{err}"
    );
    let before = archive.read_all("default").await.unwrap().events;
    assert_eq!(before.len(), archived.len(), "the archive changed");
    // Following the archive: its history wins, the 5 local events are kept aside.
    let f = tandem::restore::follow_archive(
        &other,
        "default",
        tandem::backup::Archived {
            events: archived.clone(),
            base_seq: 0,
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (f.diverged, f.replayed, f.head_seq),
        (5, (archived.len() - half) as u64, archived.len() as u64)
    );
    assert_eq!(
        other.read(|tx| queries::dump(tx, "default")).unwrap(),
        w.store.read(|tx| queries::dump(tx, "default")).unwrap()
    );
    assert_eq!(other.diverged("default").unwrap().len(), 5);
    // And now it continues the archive cleanly.
    tandem::api::tracking::create_experiment(
        &ctx,
        &tandem::api::Req::from_json(json!({"name": "after"})).unwrap(),
    )
    .unwrap();
    archive.archive_once(&other, "default").await.unwrap();
    assert_eq!(
        archive.read_all("default").await.unwrap().events.len(),
        archived.len() + 1
    );
}

/// Compaction: history older than the retention goes into a snapshot in the change-log format;
/// restores to every later instant stay exact, earlier instants get a clear error, purged data
/// leaves the archive, a stale copy follows the compacted archive, and verify accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_retained_instant_exact_and_drops_what_was_purged() {
    crate::support::init();
    let mut w = World::new(Meta::Sqlite);
    let mut seed: u64 = 0x5EED_0FC0_FFEE;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed & 0xff) as u8
    };
    for kind in [0u8, 6, 6, 20, 26, 34, 34] {
        run_action(&mut w, &Action::Api(kind, 1, 1, 1));
    }
    // Old history, with deletions and a purge of them.
    for i in 0..2500u32 {
        run_action(&mut w, &Action::Api((i % 40) as u8, next(), next(), next()));
    }
    tandem::retention::purge(&w.store, "default", "t", true).unwrap();
    let (name, archive) = archives().remove(0);
    archive_all(&archive, &w.store, "default").await;
    let old_head = archive.archived_through("default").await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let horizon = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Recent history, with the state recorded at instants.
    let mut checkpoints = Vec::new();
    for i in 0..400u32 {
        run_action(&mut w, &Action::Api((i % 40) as u8, next(), next(), next()));
        if i % 100 == 99 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            checkpoints.push((
                now_ms(),
                w.store.read(|tx| queries::dump(tx, "default")).unwrap(),
            ));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    archive_all(&archive, &w.store, "default").await;
    let before = archive.read_all("default").await.unwrap();
    let keep_ms = 3_600_000;
    let report = archive
        .compact("default", keep_ms, horizon + keep_ms)
        .await
        .unwrap()
        .expect("a snapshot");
    assert!(
        report.seq <= old_head && report.seq > 0,
        "{name}: {report:?}"
    );
    assert!(
        report.events_kept < report.events_before,
        "{name}: nothing was compacted: {report:?}"
    );
    assert!(report.segments_deleted > 0);
    let after = archive.read_all("default").await.unwrap();
    assert_eq!(after.base_seq, report.seq);
    // After compaction too, with and without the snapshot's instant known from before.
    let summary = archive.summary("default").await.unwrap();
    let window = archive.window("default", None).await.unwrap();
    assert_eq!(
        (window.earliest_ms, window.latest_ms, window.head_seq),
        (summary.earliest_ms, summary.latest_ms, summary.events),
        "{name}"
    );
    assert_eq!(window.snapshot.map(|s| s.0), Some(report.seq));
    assert_eq!(
        archive.window("default", window.snapshot).await.unwrap(),
        window,
        "{name}"
    );
    assert_eq!(after.head_seq(), before.head_seq());
    assert!(after.events.len() < before.events.len());
    // Every retained instant restores exactly; the latest is the live state.
    for (t, expected) in &checkpoints {
        let (_d, target) = empty_store();
        archive.restore("default", Some(*t), &target).await.unwrap();
        assert_eq!(
            &target.read(|tx| queries::dump(tx, "default")).unwrap(),
            expected,
            "{name}: restore to {t} after compaction differs"
        );
        // The restored store's own log verifies from the snapshot on, and it keeps going.
        let ctx = tandem::api::Ctx {
            store: target.clone(),
            artifacts: tandem::artifacts::Artifacts::folder(_d.path()).unwrap(),
            workspace: "default".into(),
            principal: "t".into(),
            require_live: true,
            authenticated: false,
            compute: Default::default(),
            vault: None,
        };
        tandem::api::tracking::create_experiment(
            &ctx,
            &tandem::api::Req::from_json(json!({"name": "after-restore"})).unwrap(),
        )
        .unwrap();
        let v = tandem::api::changes::verify(
            &ctx,
            &tandem::api::Req::from_json(json!({"workspace_name": "default"})).unwrap(),
        )
        .unwrap();
        assert_eq!(v["ok"], true, "{v}");
    }
    // An instant inside the compacted history: a clear error.
    let (_d, target) = empty_store();
    let err = archive
        .restore("default", Some(horizon - 60_000), &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("compacted"), "{err}");
    // A stale copy (half the old history) follows the compacted archive to the live state.
    let (_d, stale) = empty_store();
    stale
        .replay(
            "default",
            &w.store
                .read(|tx| queries::changes(tx, "default", 0, (old_head / 2) as usize))
                .unwrap(),
        )
        .unwrap();
    tandem::restore::follow_archive(&stale, "default", after.clone(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        stale.read(|tx| queries::dump(tx, "default")).unwrap(),
        w.store.read(|tx| queries::dump(tx, "default")).unwrap()
    );
    // The live store keeps archiving on top of the snapshot, and a second compaction is a no-op.
    run_action(&mut w, &Action::Api(0, 99, 1, 1));
    archive_all(&archive, &w.store, "default").await;
    assert_eq!(
        archive.read_all("default").await.unwrap().head_seq(),
        w.store
            .read(|tx| queries::log_head(tx, "default"))
            .unwrap()
            .unwrap()
            .seq
    );
    assert!(archive
        .compact("default", keep_ms, horizon + keep_ms)
        .await
        .unwrap()
        .is_none());
    // `tandem backup verify` accepts the compacted log. The workload's artifact events name
    // bytes that were never written (no blobs): verify names each of them, and fails.
    if let Some(path) = archive.url.strip_prefix("file://") {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["backup", "verify", "--archive", &format!("file://{path}")])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            stdout.contains("default: ok,") && stdout.contains("chain verified and replayed"),
            "{stdout}\n{stderr}"
        );
        let named = stderr
            .lines()
            .filter(|l| l.contains("(sha256 ") && l.ends_with("no blob in the archive"))
            .count();
        let artifact_events = archive
            .read_all("default")
            .await
            .unwrap()
            .events
            .iter()
            .filter(|e| e.op == "PutArtifact")
            .count();
        assert_eq!(out.status.success(), artifact_events == 0, "{stderr}");
        assert!(named > 0 || artifact_events == 0, "{stderr}");
    }
}

/// The compaction rules themselves, on many random workloads with purges: replaying the kept
/// events gives exactly the state replaying them all gives. (The archive checks this again
/// before writing any snapshot; this test keeps the rules from relying on that fallback.)
#[test]
fn compacted_logs_replay_to_the_same_state() {
    crate::support::init();
    let mut total = (0, 0);
    for s0 in 1..=12u64 {
        let mut w = World::new(Meta::Sqlite);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ s0.wrapping_mul(0x1234_5678_9ABC);
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed & 0xff) as u8
        };
        for kind in [0u8, 6, 6, 20, 26, 34, 34] {
            run_action(&mut w, &Action::Api(kind, 1, 1, 1));
        }
        for i in 0..1500u32 {
            run_action(
                &mut w,
                &Action::Api(
                    (i % crate::replay::ACTIONS as u32) as u8,
                    next(),
                    next(),
                    next(),
                ),
            );
        }
        // (Purge protection may have been switched on by the workload; then nothing more goes.)
        let _ = tandem::retention::purge(&w.store, "default", "t", true);
        let events = w
            .store
            .read(|tx| queries::changes(tx, "default", 0, 1 << 30))
            .unwrap();
        let ops: Vec<_> = events.iter().map(|e| e.decode_op().unwrap()).collect();
        let keep = tandem_core::history::compact(&ops);
        let kept: Vec<_> = events
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(e, _)| e.clone())
            .collect();
        let (_d, full) = empty_store();
        full.install("default", &events).unwrap();
        let (_d2, compacted) = empty_store();
        compacted.install("default", &kept).unwrap();
        assert_eq!(
            compacted.read(|tx| queries::dump(tx, "default")).unwrap(),
            full.read(|tx| queries::dump(tx, "default")).unwrap(),
            "seed {s0}: compaction changed the state"
        );
        total = (total.0 + events.len(), total.1 + kept.len());
    }
    assert!(total.1 < total.0, "nothing was ever compacted: {total:?}");
}
