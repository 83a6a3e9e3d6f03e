//! Restores from the change log: into a new workspace beside the original (resumable), in
//! place, and of single objects; and soft delete of every kind of object, with undelete,
//! retention and purge. Each on SQLite and PostgreSQL.

use crate::replay::{run_action, Action, World, ACTIONS};
use crate::support::{metadata_stores, Meta};
use serde_json::{json, Value};
use tandem::api::{
    logged_models as lm, registry as reg, retention as api_retention, tracking as tr,
    workspaces as wsapi, Ctx, Req,
};
use tandem::store::{queries, Store};
use tandem_core::history::Object;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn req(v: Value) -> Req {
    Req::from_json(v).unwrap()
}

fn log(store: &Store, ws: &str) -> tandem::backup::Archived {
    tandem::restore::local_log(store, ws).unwrap()
}

fn dump(store: &Store, ws: &str) -> Value {
    store.read(|tx| queries::dump(tx, ws)).unwrap()
}

/// A workspace's dump as it would read under another name.
fn renamed_dump(v: &Value, from: &str, to: &str) -> Value {
    serde_json::from_str(
        &v.to_string()
            .replace(&format!("\"{from}\""), &format!("\"{to}\"")),
    )
    .unwrap()
}

/// A randomized workload with the state recorded at instants between writes.
fn workload(meta: Meta, seed: u64) -> (World, Vec<(u64, Value)>) {
    let mut w = World::new(meta);
    let mut seed = seed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed & 0xff) as u8
    };
    for kind in [0u8, 6, 6, 20, 26, 34, 34] {
        run_action(&mut w, &Action::Api(kind, 1, 1, 1));
    }
    let mut checkpoints = Vec::new();
    for i in 0..400u32 {
        // Every kind of action but the in-place restore, which the test does itself.
        let kind = (i % (ACTIONS as u32 - 1)) as u8;
        run_action(&mut w, &Action::Api(kind, next(), next(), next()));
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            checkpoints.push((now_ms(), dump(&w.store, "default")));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    (w, checkpoints)
}

#[test]
fn restore_into_a_new_workspace_beside_the_original_is_exact_and_resumable() {
    crate::support::init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for meta in metadata_stores() {
        let (w, checkpoints) = workload(meta, 0xA5A5_1234_5678_9ABC);
        let original = dump(&w.store, "default");
        let events = log(&w.store, "default");
        for (i, (t, expected)) in checkpoints.iter().enumerate().step_by(3) {
            let name = format!("copy-{i}");
            let cut = tandem::restore::cut("default", &events, Some(*t)).unwrap();
            let r = rt
                .block_on(tandem::restore::into_workspace(
                    events.clone(),
                    cut,
                    "log",
                    &w.store,
                    &name,
                    |_, _| {},
                ))
                .unwrap();
            assert_eq!(r.events as usize, cut);
            assert_eq!(
                dump(&w.store, &name),
                renamed_dump(expected, "default", &name),
                "{meta:?}: copy as of checkpoint {i} differs"
            );
            // The copy is a workspace like any other: its log verifies and the API serves it.
            assert!(w
                .store
                .read(|tx| queries::workspace_exists(tx, &name))
                .unwrap());
        }
        // The original is untouched, and a copy never goes over a live workspace.
        assert_eq!(
            dump(&w.store, "default"),
            original,
            "{meta:?}: the original changed"
        );
        let err = rt
            .block_on(tandem::restore::into_workspace(
                events.clone(),
                10,
                "log",
                &w.store,
                "default",
                |_, _| {},
            ))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already has workspace 'default'"), "{err}");

        // Interrupted after part of the log: the workspace is hidden while marked, and a rerun
        // continues where it stopped.
        let (t, expected) = checkpoints.last().unwrap();
        let cut = tandem::restore::cut("default", &events, Some(*t)).unwrap();
        let renamed = tandem::restore::renamed(
            &events.events[..cut],
            "resumed",
            tandem_core::event::GENESIS_CHECKSUM,
        );
        w.store.bookkeeping(|tx| tx.exec("INSERT INTO restores (workspace, source, to_seq, started_at) VALUES ('resumed', 'log', ?, 0)", &[(cut as i64).into()])).unwrap();
        w.store.replay("resumed", &renamed[..cut / 2]).unwrap();
        assert!(
            !w.store
                .read(|tx| queries::workspace_exists(tx, "resumed"))
                .unwrap(),
            "a workspace part-way through a restore is visible"
        );
        let mut seen = Vec::new();
        let r = rt
            .block_on(tandem::restore::into_workspace(
                events.clone(),
                cut,
                "log",
                &w.store,
                "resumed",
                |done, total| seen.push((done, total)),
            ))
            .unwrap();
        assert_eq!(
            (r.events as usize, r.replayed as usize),
            (cut, cut - cut / 2),
            "{meta:?}"
        );
        assert_eq!(
            seen.first(),
            Some(&((cut / 2) as u64, cut as u64)),
            "progress starts where the last run stopped"
        );
        assert_eq!(seen.last(), Some(&(cut as u64, cut as u64)));
        assert_eq!(
            dump(&w.store, "resumed"),
            renamed_dump(expected, "default", "resumed"),
            "{meta:?}: resumed restore differs"
        );
        assert!(w
            .store
            .read(|tx| queries::workspace_exists(tx, "resumed"))
            .unwrap());
    }
}

#[test]
fn restore_in_place_takes_the_live_workspace_back_and_keeps_the_log() {
    crate::support::init();
    for meta in metadata_stores() {
        let (w, checkpoints) = workload(meta, 0x0123_4567_89AB_CDEF);
        let before = log(&w.store, "default").events.len();
        let (t, expected) = &checkpoints[2];
        let (seq, total) = tandem::restore::in_place(&w.store, "default", *t, "test").unwrap();
        assert_eq!(total as usize, before);
        assert!(seq < total);
        assert_eq!(
            &dump(&w.store, "default"),
            expected,
            "{meta:?}: in-place restore differs from the state recorded then"
        );
        // One new event; nothing was taken out of the log.
        let after = log(&w.store, "default");
        assert_eq!(after.events.len(), before + 1);
        assert!(matches!(
            after.events.last().unwrap().decode_op().unwrap(),
            tandem_core::Op::RewindWorkspace { .. }
        ));
        // Writes continue on top of the restored state, and a later restore can still reach
        // the instants the rewind undid.
        tr::create_experiment(&w.ctx, &req(json!({"name": "after-restore"}))).unwrap();
        let (t_last, last) = checkpoints.last().unwrap();
        tandem::restore::in_place(&w.store, "default", *t_last, "test").unwrap();
        assert_eq!(
            &dump(&w.store, "default"),
            last,
            "{meta:?}: restoring forward again differs"
        );
        // Outside the window: a clear error.
        let err = tandem::restore::in_place(&w.store, "default", 1_000, "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the archive covers"), "{err}");
    }
}

fn id(v: &Value, ptr: &str) -> String {
    v.pointer(ptr).and_then(Value::as_str).unwrap().to_owned()
}

#[test]
fn a_single_deleted_object_comes_back_as_it_was_without_touching_anything_else() {
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx: &Ctx = &w.ctx;
        // An experiment with two runs (one deleted on its own), metrics, params, a logged model.
        let exp = id(
            &tr::create_experiment(
                ctx,
                &req(json!({"name": "churn", "tags": [{"key": "team", "value": "a"}]})),
            )
            .unwrap(),
            "/experiment_id",
        );
        let r1 = id(
            &tr::create_run(ctx, &req(json!({"experiment_id": exp}))).unwrap(),
            "/run/info/run_id",
        );
        let r2 = id(
            &tr::create_run(ctx, &req(json!({"experiment_id": exp}))).unwrap(),
            "/run/info/run_id",
        );
        for step in 0..20 {
            tr::log_metric(ctx, &req(json!({"run_id": r1, "key": "loss", "value": 1.0 / (step + 1) as f64, "timestamp": step, "step": step}))).unwrap();
        }
        tr::log_param(
            ctx,
            &req(json!({"run_id": r1, "key": "lr", "value": "0.1"})),
        )
        .unwrap();
        let model = id(
            &lm::create(
                ctx,
                &req(json!({"experiment_id": exp, "name": "clf", "source_run_id": r1})),
            )
            .unwrap(),
            "/model/info/model_id",
        );
        tr::delete_run(ctx, &req(json!({"run_id": r2}))).unwrap();
        // A registered model with two versions, an alias, and a rename.
        reg::create_registered_model(ctx, &req(json!({"name": "fraud"}))).unwrap();
        for _ in 0..2 {
            reg::create_model_version(
                ctx,
                &req(json!({"name": "fraud", "source": format!("runs:/{r1}/model"), "run_id": r1})),
            )
            .unwrap();
        }
        reg::set_alias(
            ctx,
            &req(json!({"name": "fraud", "alias": "champion", "version": "2"})),
        )
        .unwrap();
        reg::rename_registered_model(ctx, &req(json!({"name": "fraud", "new_name": "fraud-v2"})))
            .unwrap();
        let lone = id(
            &tr::create_run(ctx, &req(json!({"experiment_id": "0"}))).unwrap(),
            "/run/info/run_id",
        );
        tr::log_batch(ctx, &req(json!({"run_id": lone, "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1, "step": 1}], "params": [{"key": "k", "value": "v"}]}))).unwrap();

        std::thread::sleep(std::time::Duration::from_millis(3));
        let t = now_ms();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let exp_then = tr::get_experiment(ctx, &req(json!({"experiment_id": exp}))).unwrap();
        let r1_then = tr::get_run(ctx, &req(json!({"run_id": r1}))).unwrap();
        let history_then =
            tr::get_metric_history(ctx, &req(json!({"run_id": r1, "metric_key": "loss"}))).unwrap();
        let model_then = reg::get_registered_model(ctx, &req(json!({"name": "fraud-v2"}))).unwrap();
        let lone_then = tr::get_run(ctx, &req(json!({"run_id": lone}))).unwrap();

        // Later: everything deleted and purged; the model's name reused; an unrelated change.
        tr::log_metric(
            ctx,
            &req(json!({"run_id": r1, "key": "loss", "value": 99.0, "timestamp": 99, "step": 99})),
        )
        .unwrap();
        tr::delete_experiment(ctx, &req(json!({"experiment_id": exp}))).unwrap();
        reg::delete_registered_model(ctx, &req(json!({"name": "fraud-v2"}))).unwrap();
        tr::delete_run(ctx, &req(json!({"run_id": lone}))).unwrap();
        tandem::retention::purge(&w.store, "default", "test", true).unwrap();
        reg::create_registered_model(
            ctx,
            &req(json!({"name": "fraud-v2", "description": "the new one"})),
        )
        .unwrap();
        let unrelated = id(
            &tr::create_experiment(ctx, &req(json!({"name": "unrelated"}))).unwrap(),
            "/experiment_id",
        );
        let unrelated_before =
            tr::get_experiment(ctx, &req(json!({"experiment_id": unrelated}))).unwrap();
        assert!(tr::get_run(ctx, &req(json!({"run_id": r1}))).is_err());

        let events = log(&w.store, "default");
        // The experiment, with its runs and logged model, as it was at t.
        let r = tandem::restore::object(
            &w.store,
            "default",
            &events,
            Some(t),
            &Object::Experiment(exp.clone()),
            "test",
        )
        .unwrap();
        assert_eq!(r.name, None);
        assert_eq!(
            tr::get_experiment(ctx, &req(json!({"experiment_id": exp}))).unwrap(),
            exp_then,
            "{meta:?}"
        );
        assert_eq!(
            tr::get_run(ctx, &req(json!({"run_id": r1}))).unwrap(),
            r1_then,
            "{meta:?}"
        );
        assert_eq!(
            tr::get_metric_history(ctx, &req(json!({"run_id": r1, "metric_key": "loss"}))).unwrap(),
            history_then,
            "{meta:?}"
        );
        assert!(lm::get(ctx, &req(json!({"model_id": model}))).is_ok());
        // The run that was deleted at t comes back deleted (and so restorable).
        assert_eq!(
            tr::get_run(ctx, &req(json!({"run_id": r2}))).unwrap()["run"]["info"]
                ["lifecycle_stage"],
            "deleted"
        );
        // The registered model: its name was reused, so it comes back beside the new one.
        let r = tandem::restore::object(
            &w.store,
            "default",
            &events,
            Some(t),
            &Object::RegisteredModel("fraud-v2".into()),
            "test",
        )
        .unwrap();
        let restored_name = r.name.clone().expect("a new name");
        let mut got = reg::get_registered_model(ctx, &req(json!({"name": restored_name}))).unwrap();
        assert_eq!(
            got["registered_model"]["latest_versions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            got["registered_model"]["aliases"], model_then["registered_model"]["aliases"],
            "{meta:?}"
        );
        got["registered_model"]["name"] = json!("fraud-v2");
        for v in got["registered_model"]["latest_versions"]
            .as_array_mut()
            .unwrap()
        {
            v["name"] = json!("fraud-v2");
        }
        assert_eq!(got, model_then, "{meta:?}");
        assert_eq!(
            reg::get_registered_model(ctx, &req(json!({"name": "fraud-v2"}))).unwrap()
                ["registered_model"]["description"],
            "the new one"
        );
        // One run.
        tandem::restore::object(
            &w.store,
            "default",
            &events,
            Some(t),
            &Object::Run(lone.clone()),
            "test",
        )
        .unwrap();
        assert_eq!(
            tr::get_run(ctx, &req(json!({"run_id": lone}))).unwrap(),
            lone_then,
            "{meta:?}"
        );
        // Nothing else was touched.
        assert_eq!(
            tr::get_experiment(ctx, &req(json!({"experiment_id": unrelated}))).unwrap(),
            unrelated_before
        );
        // Errors: an object that did not exist then.
        let err = tandem::restore::object(
            &w.store,
            "default",
            &events,
            Some(t),
            &Object::Experiment(unrelated.clone()),
            "test",
        )
        .unwrap_err();
        assert!(err.to_string().contains("did not exist"), "{err}");
        // And the whole log still replays to the live state.
        let dir = tempfile::tempdir().unwrap();
        let fresh = Store::new(
            std::sync::Arc::new(
                tandem::store::sqlite::Sqlite::open(
                    &dir.path().join("f.sqlite"),
                    tandem::store::sqlite::Durability::Normal,
                )
                .unwrap(),
            ),
            std::sync::Arc::new(tandem::store::SystemClock),
            "t",
        )
        .unwrap();
        fresh
            .replay("default", &log(&w.store, "default").events)
            .unwrap();
        assert_eq!(dump(&fresh, "default"), dump(&w.store, "default"));
    }
}

/// A clock the test moves by hand.
struct ManualClock(std::sync::atomic::AtomicU64);
impl tandem::store::Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn every_deletable_kind_is_soft_deleted_restorable_and_purged_after_retention() {
    crate::support::init();
    for meta in metadata_stores() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::support::fresh_backend(meta, dir.path());
        let day = 86_400_000u64;
        let clock = std::sync::Arc::new(ManualClock(std::sync::atomic::AtomicU64::new(
            1_800_000_000_000,
        )));
        let store = Store::new(backend, clock.clone(), "test").unwrap();
        wsapi::ensure(&store, "default", "d", "t").unwrap();
        let artifacts = tandem::artifacts::Artifacts::folder(&dir.path().join("a")).unwrap();
        let ctx = Ctx {
            store: store.clone(),
            artifacts,
            workspace: "default".into(),
            principal: "t".into(),
            require_live: true,
            authenticated: false,
            compute: Default::default(),
            vault: None,
        };
        let undelete = |v: Value| api_retention::undelete(&ctx, &req(v));
        let exp = id(
            &tr::create_experiment(&ctx, &req(json!({"name": "e"}))).unwrap(),
            "/experiment_id",
        );
        let model = id(
            &lm::create(&ctx, &req(json!({"experiment_id": exp, "name": "m"}))).unwrap(),
            "/model/info/model_id",
        );
        reg::create_registered_model(&ctx, &req(json!({"name": "rm"}))).unwrap();
        reg::create_registered_model(&ctx, &req(json!({"name": "kept"}))).unwrap();
        for _ in 0..2 {
            reg::create_model_version(
                &ctx,
                &req(json!({"name": "kept", "source": "s3://bucket/m"})),
            )
            .unwrap();
        }
        wsapi::create(&ctx, &req(json!({"name": "team-b"}))).unwrap();

        // Deleted: hidden as MLflow clients expect.
        lm::delete(&ctx, &req(json!({"model_id": model}))).unwrap();
        reg::delete_registered_model(&ctx, &req(json!({"name": "rm"}))).unwrap();
        reg::delete_model_version(&ctx, &req(json!({"name": "kept", "version": "1"}))).unwrap();
        wsapi::delete(
            &ctx,
            &req(json!({"workspace_name": "team-b", "mode": "CASCADE"})),
        )
        .unwrap();
        assert!(lm::get(&ctx, &req(json!({"model_id": model}))).is_err());
        assert!(reg::get_registered_model(&ctx, &req(json!({"name": "rm"}))).is_err());
        assert!(
            reg::get_model_version(&ctx, &req(json!({"name": "kept", "version": "1"}))).is_err()
        );
        assert_eq!(
            reg::search_model_versions(&ctx, &req(json!({}))).unwrap()["model_versions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(wsapi::get(&ctx, &req(json!({"workspace_name": "team-b"}))).is_err());
        assert!(!wsapi::list(&ctx, &req(json!({})))
            .unwrap()
            .to_string()
            .contains("team-b"));
        // A deleted workspace's name is not silently reused.
        let err = wsapi::create(&ctx, &req(json!({"name": "team-b"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("undelete"), "{err}");

        // Undeleted within retention: back as they were.
        undelete(json!({"workspace_name": "default", "model_id": model})).unwrap();
        undelete(json!({"workspace_name": "default", "name": "rm"})).unwrap();
        undelete(json!({"workspace_name": "default", "name": "kept", "version": "1"})).unwrap();
        undelete(json!({"workspace_name": "team-b", "workspace": true})).unwrap();
        assert!(lm::get(&ctx, &req(json!({"model_id": model}))).is_ok());
        assert!(reg::get_registered_model(&ctx, &req(json!({"name": "rm"}))).is_ok());
        assert!(
            reg::get_model_version(&ctx, &req(json!({"name": "kept", "version": "1"}))).is_ok()
        );
        assert!(wsapi::get(&ctx, &req(json!({"workspace_name": "team-b"}))).is_ok());
        // Undeleting what is not deleted is a clear error.
        assert!(undelete(json!({"workspace_name": "default", "name": "rm"}))
            .unwrap_err()
            .to_string()
            .contains("not deleted"));

        // Deleted again, then purged once 14 days have passed, not before.
        lm::delete(&ctx, &req(json!({"model_id": model}))).unwrap();
        reg::delete_registered_model(&ctx, &req(json!({"name": "rm"}))).unwrap();
        reg::delete_model_version(&ctx, &req(json!({"name": "kept", "version": "1"}))).unwrap();
        wsapi::delete(
            &ctx,
            &req(json!({"workspace_name": "team-b", "mode": "CASCADE"})),
        )
        .unwrap();
        clock
            .0
            .fetch_add(13 * day, std::sync::atomic::Ordering::SeqCst);
        assert!(
            tandem::retention::purge(&store, "default", "t", false)
                .unwrap()
                .is_empty(),
            "{meta:?}: purged early"
        );
        assert!(tandem::retention::purge(&store, "team-b", "t", false)
            .unwrap()
            .is_empty());
        clock
            .0
            .fetch_add(2 * day, std::sync::atomic::Ordering::SeqCst);
        let p = tandem::retention::purge(&store, "default", "t", false).unwrap();
        assert_eq!(
            (p.logged_models, p.registered_models, p.model_versions),
            (
                vec![model.clone()],
                vec!["rm".to_owned()],
                vec!["kept/1".to_owned()]
            ),
            "{meta:?}"
        );
        assert!(
            tandem::retention::purge(&store, "team-b", "t", false)
                .unwrap()
                .workspace
        );
        // Purged: gone for good, not undeletable; the workspace name is free again.
        assert!(undelete(json!({"workspace_name": "default", "model_id": model})).is_err());
        assert!(undelete(json!({"workspace_name": "default", "name": "rm"})).is_err());
        assert!(undelete(json!({"workspace_name": "team-b", "workspace": true})).is_err());
        wsapi::create(&ctx, &req(json!({"name": "team-b"}))).unwrap();
        // Version numbers are never reused.
        assert_eq!(
            reg::create_model_version(
                &ctx,
                &req(json!({"name": "kept", "source": "s3://bucket/m"}))
            )
            .unwrap()["model_version"]["version"],
            "3"
        );

        // Purge protection holds for every kind.
        tandem::retention::set(&store, "default", "t", Some(30), Some(true)).unwrap();
        reg::delete_registered_model(&ctx, &req(json!({"name": "kept"}))).unwrap();
        assert!(
            tandem::retention::purge(&store, "default", "t", true).is_err(),
            "{meta:?}: early purge under protection"
        );
        clock
            .0
            .fetch_add(29 * day, std::sync::atomic::Ordering::SeqCst);
        assert!(tandem::retention::purge(&store, "default", "t", false)
            .unwrap()
            .is_empty());
        clock
            .0
            .fetch_add(2 * day, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            tandem::retention::purge(&store, "default", "t", false)
                .unwrap()
                .registered_models,
            vec!["kept".to_owned()]
        );
    }
}

#[test]
fn deleted_names_can_be_reused_and_the_deleted_object_stays_restorable() {
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        let old = id(
            &tr::create_experiment(ctx, &req(json!({"name": "churn"}))).unwrap(),
            "/experiment_id",
        );
        tr::delete_experiment(ctx, &req(json!({"experiment_id": old}))).unwrap();
        let new = id(
            &tr::create_experiment(ctx, &req(json!({"name": "churn"}))).unwrap(),
            "/experiment_id",
        );
        assert_ne!(old, new);
        assert_eq!(
            tr::get_experiment_by_name(ctx, &req(json!({"experiment_name": "churn"}))).unwrap()
                ["experiment"]["experiment_id"],
            new.as_str()
        );
        let old_now = tr::get_experiment(ctx, &req(json!({"experiment_id": old}))).unwrap();
        assert_eq!(
            old_now["experiment"]["name"],
            format!("churn (deleted {old})")
        );
        tr::restore_experiment(ctx, &req(json!({"experiment_id": old}))).unwrap();
        // A live name is still taken.
        assert!(tr::create_experiment(ctx, &req(json!({"name": "churn"}))).is_err());

        reg::create_registered_model(ctx, &req(json!({"name": "fraud"}))).unwrap();
        reg::create_model_version(
            ctx,
            &req(json!({"name": "fraud", "source": "s3://bucket/a"})),
        )
        .unwrap();
        reg::delete_registered_model(ctx, &req(json!({"name": "fraud"}))).unwrap();
        reg::create_registered_model(ctx, &req(json!({"name": "fraud"}))).unwrap();
        assert!(
            reg::get_registered_model(ctx, &req(json!({"name": "fraud"}))).unwrap()
                ["registered_model"]["latest_versions"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let deleted: Vec<String> = w.store.read(|tx| Ok(tx.query("SELECT name FROM registered_models WHERE workspace = 'default' AND deleted_time IS NOT NULL", &[])?.iter().map(|r| r.text(0)).collect())).unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(deleted[0].starts_with("fraud (deleted "), "{deleted:?}");
        api_retention::undelete(
            ctx,
            &req(json!({"workspace_name": "default", "name": deleted[0]})),
        )
        .unwrap();
        assert_eq!(
            reg::get_registered_model(ctx, &req(json!({"name": deleted[0]}))).unwrap()
                ["registered_model"]["latest_versions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
