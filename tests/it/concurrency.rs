//! The change log stays gap-free, strictly ordered and exactly one event per acknowledged
//! write when many connections from several "servers" (independent stores over one
//! database) write to the same workspace, the same run and the same registered model.

use crate::support::{fresh_postgres, metadata_stores, Meta};
use serde_json::json;
use std::sync::Arc;
use tandem::api::{registry, tracking, Ctx, Req};
use tandem::store::postgres::Postgres;
use tandem::store::sqlite::{Durability, Sqlite};
use tandem::store::{queries, Store, SystemClock};

const SERVERS: usize = 3;
const THREADS_PER_SERVER: usize = 4;
const WRITES_PER_THREAD: usize = 40;

fn open(meta: Meta, target: &str) -> Store {
    let backend: Arc<dyn tandem::store::Backend> = match meta {
        Meta::Sqlite => {
            Arc::new(Sqlite::open(std::path::Path::new(target), Durability::Normal).unwrap())
        }
        Meta::Postgres => Arc::new(Postgres::connect(target).unwrap()),
    };
    Store::new(backend, Arc::new(SystemClock), "test").unwrap()
}

#[test]
fn many_servers_hammering_one_workspace_keep_the_log_gap_free() {
    for meta in metadata_stores() {
        hammer(meta);
    }
}

fn hammer(meta: Meta) {
    let dir = tempfile::tempdir().unwrap();
    let target = match meta {
        Meta::Sqlite => dir.path().join("m.sqlite").display().to_string(),
        Meta::Postgres => fresh_postgres(),
    };
    let stores: Vec<Store> = (0..SERVERS).map(|_| open(meta, &target)).collect();
    tandem::api::workspaces::ensure(&stores[0], "default", "d", "t").unwrap();
    let artifacts = tandem::artifacts::Artifacts::folder(&dir.path().join("a")).unwrap();
    let ctx = |i: usize| Ctx {
        store: stores[i % SERVERS].clone(),
        artifacts: artifacts.clone(),
        workspace: "default".into(),
        principal: format!("server{}", i % SERVERS),
        require_live: true,
        authenticated: false,
        compute: Default::default(),
        vault: None,
    };
    let req = |v: serde_json::Value| Req::from_json(v).unwrap();
    let run = tracking::create_run(&ctx(0), &req(json!({"experiment_id": "0"}))).unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    registry::create_registered_model(&ctx(0), &req(json!({"name": "shared"}))).unwrap();
    let before = stores[0]
        .read(|tx| queries::log_head(tx, "default"))
        .unwrap()
        .unwrap()
        .seq;

    let mut handles = Vec::new();
    for t in 0..SERVERS * THREADS_PER_SERVER {
        let c = ctx(t);
        let run_id = run_id.clone();
        handles.push(std::thread::spawn(move || {
            let mut acked = 0usize;
            let mut versions = Vec::new();
            for i in 0..WRITES_PER_THREAD {
                let r = match i % 4 {
                    0 => tracking::log_param(&c, &req(json!({"run_id": run_id, "key": format!("p{t}-{i}"), "value": "v"}))),
                    1 => tracking::log_metric(&c, &req(json!({"run_id": run_id, "key": format!("m{t}"), "value": i, "timestamp": i, "step": i}))),
                    2 => registry::create_model_version(&c, &req(json!({"name": "shared", "source": "s3://bucket/x"}))).map(|v| {
                        versions.push(v["model_version"]["version"].as_str().unwrap().to_owned());
                        v
                    }),
                    _ => tracking::set_tag(&c, &req(json!({"run_id": run_id, "key": "last", "value": format!("{t}-{i}")}))),
                };
                match r {
                    Ok(_) => acked += 1,
                    // Contention may surface as "try again"; that write is not acknowledged.
                    Err(e) if e.code.is_retryable() => {}
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            (acked, versions)
        }));
    }
    let mut acked = 0;
    let mut versions = Vec::new();
    for h in handles {
        let (a, v) = h.join().unwrap();
        acked += a;
        versions.extend(v);
    }
    let total = SERVERS * THREADS_PER_SERVER * WRITES_PER_THREAD;
    assert!(
        acked >= total * 9 / 10,
        "{meta:?}: only {acked} of {total} writes succeeded"
    );

    // Exactly one event per acknowledged write, numbered without gaps, chained and ordered.
    let events = stores[1]
        .read(|tx| queries::changes(tx, "default", before, 1 << 30))
        .unwrap();
    assert_eq!(
        events.len(),
        acked,
        "{meta:?}: events vs acknowledged writes"
    );
    let prev = stores[1]
        .read(|tx| queries::checksum_at(tx, "default", before))
        .unwrap()
        .unwrap();
    tandem_core::event::verify_chain(before, &prev.0, prev.1, &events)
        .unwrap_or_else(|e| panic!("{meta:?}: {e}"));
    // No version number was handed out twice, and none was skipped.
    let mut numbers: Vec<i64> = versions.iter().map(|v| v.parse().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=numbers.len() as i64).collect::<Vec<_>>(),
        "{meta:?}: model versions"
    );
    let run = tracking::get_run(&ctx(2), &req(json!({"run_id": run_id}))).unwrap();
    let params = run["run"]["data"]["params"].as_array().unwrap().len();
    let expected_params = events
        .iter()
        .filter(|e| e.op == "LogBatch" && e.payload.contains("\"params\":[{"))
        .count();
    assert_eq!(params, expected_params, "{meta:?}: params");
}

/// Writes that queue behind each other share a transaction (group commit); a write refused
/// inside such a group takes back only its own changes, the others are all kept, and every
/// acknowledged write has exactly one event.
#[test]
fn writes_grouped_into_one_transaction_keep_their_own_outcomes() {
    for meta in metadata_stores() {
        grouped(meta);
    }
}

fn grouped(meta: Meta) {
    const THREADS: usize = 16;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let target = match meta {
        Meta::Sqlite => dir.path().join("m.sqlite").display().to_string(),
        Meta::Postgres => fresh_postgres(),
    };
    let store = open(meta, &target);
    tandem::api::workspaces::ensure(&store, "default", "d", "t").unwrap();
    let artifacts = tandem::artifacts::Artifacts::folder(&dir.path().join("a")).unwrap();
    let ctx = Ctx {
        store: store.clone(),
        artifacts,
        workspace: "default".into(),
        principal: "p".into(),
        require_live: true,
        authenticated: false,
        compute: Default::default(),
        vault: None,
    };
    let req = |v: serde_json::Value| Req::from_json(v).unwrap();
    let run = tracking::create_run(&ctx, &req(json!({"experiment_id": "0"}))).unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();

    // Groups form for certain (not only when the race below happens to overlap on a busy
    // machine): one write holds the workspace while four others queue behind it; the first of
    // them then leads all four in one transaction.
    let slow = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .write_live("default", "p", |_tx| {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    Ok(tandem::store::Decision::no_change(()))
                })
                .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    // Three metrics and, among them, a write refused after changing the state: the group
    // must keep the three and take back only the refused one's change.
    let queued: Vec<_> = (0..5)
        .map(|k| {
            let (c, run_id) = (ctx.clone(), run_id.clone());
            std::thread::spawn(move || match k {
                // Refused by the database, not by its decision: its second statement is held
                // (pipelined on PostgreSQL) and fails only when sent. The error must be this
                // write's, not the next one's in the group, and take back its first statement.
                4 => {
                    let refused = c.store.write_live("default", "p", |tx| {
                        tx.exec_later("INSERT INTO tags (workspace, run_id, key, value) VALUES ('default', ?, 'junk-held', 'x')", vec![run_id.as_str().into()])?;
                        tx.exec_later("INSERT INTO tags (workspace, run_id, key, value) VALUES ('default', ?, 'junk-held', 'y')", vec![run_id.as_str().into()])?;
                        Ok(tandem::store::Decision::no_change(()))
                    });
                    assert!(matches!(refused, Err(tandem::store::Error::Conflict(_))), "{refused:?}");
                }
                2 => {
                    let refused = c.store.write_live("default", "p", |tx| {
                        tx.exec("INSERT INTO tags (workspace, run_id, key, value) VALUES ('default', ?, 'junk-queued', 'x')", &[run_id.as_str().into()])?;
                        Err::<tandem::store::Decision<()>, _>(tandem_core::MlflowError::invalid("refused after writing").into())
                    });
                    assert!(refused.is_err());
                }
                _ => drop(tracking::log_metric(&c, &req(json!({"run_id": run_id, "key": format!("queued{k}"), "value": 1, "timestamp": 1, "step": 1}))).unwrap()),
            })
        })
        .collect();
    slow.join().unwrap();
    queued.into_iter().for_each(|h| h.join().unwrap());
    assert!(
        store.writes_grouped() >= 2,
        "{meta:?}: writes queued behind a busy workspace did not share a transaction"
    );
    let kept = tracking::get_run(&ctx, &req(json!({"run_id": run_id}))).unwrap();
    assert_eq!(
        kept["run"]["data"]["metrics"].as_array().unwrap().len(),
        3,
        "{meta:?}: the queued writes that succeeded"
    );

    let before = store
        .read(|tx| queries::log_head(tx, "default"))
        .unwrap()
        .unwrap()
        .seq;
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, run_id, barrier) = (ctx.clone(), run_id.clone(), barrier.clone());
            std::thread::spawn(move || {
                // (what, won) per write: every thread races for the same experiment names
                // and param keys, so most of those writes are refused, in the middle of groups.
                let mut outcomes = Vec::new();
                for i in 0..ROUNDS {
                    barrier.wait();
                    let (what, r) = match (i + t) % 4 {
                        0 => (format!("experiment e{i}"), tracking::create_experiment(&c, &req(json!({"name": format!("e{i}")}))).map(drop)),
                        1 => (format!("param k{i}={t}"), tracking::log_param(&c, &req(json!({"run_id": run_id, "key": format!("k{i}"), "value": format!("{t}")}))).map(drop)),
                        // A write that changes the state and is then refused: only its own
                        // savepoint may be rolled back.
                        3 => (
                            format!("refused {t} {i}"),
                            c.store
                                .write_live("default", "p", |tx| {
                                    let sql = "INSERT INTO tags (workspace, run_id, key, value) VALUES ('default', ?, ?, 'x')";
                                    let params = [run_id.as_str().into(), format!("junk{t}-{i}").into()];
                                    // Sent at once, or held to go with the next statement.
                                    if i % 2 == 0 {
                                        tx.exec(sql, &params)?;
                                    } else {
                                        tx.exec_later(sql, params.to_vec())?;
                                    }
                                    Err::<tandem::store::Decision<()>, _>(tandem_core::MlflowError::invalid("refused after writing").into())
                                })
                                .map_err(Into::into),
                        ),
                        _ => (format!("metric m{t} {i}"), tracking::log_metric(&c, &req(json!({"run_id": run_id, "key": format!("m{t}"), "value": i, "timestamp": i, "step": i}))).map(drop)),
                    };
                    match r {
                        Ok(()) => outcomes.push((what, true)),
                        Err(e) if what.starts_with("metric") => panic!("{what}: {e}"),
                        Err(e) if what.starts_with("refused") => {
                            assert_eq!(e.code, tandem_core::ErrorCode::InvalidParameterValue, "{what}: {e}");
                            outcomes.push((what, false));
                        }
                        Err(e) => {
                            assert!(matches!(e.code, tandem_core::ErrorCode::ResourceAlreadyExists | tandem_core::ErrorCode::InvalidParameterValue), "{what}: {e}");
                            outcomes.push((what, false));
                        }
                    }
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<(String, bool)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        store.writes_grouped() > 0,
        "{meta:?}: no write shared a transaction"
    );

    let won: Vec<&str> = outcomes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(w, _)| w.as_str())
        .collect();
    let events = store
        .read(|tx| queries::changes(tx, "default", before, 1 << 30))
        .unwrap();
    assert_eq!(
        events.len(),
        won.len(),
        "{meta:?}: one event per acknowledged write"
    );
    let prev = store
        .read(|tx| queries::checksum_at(tx, "default", before))
        .unwrap()
        .unwrap();
    tandem_core::event::verify_chain(before, &prev.0, prev.1, &events)
        .unwrap_or_else(|e| panic!("{meta:?}: {e}"));

    // Each contested name and key went to exactly one writer, and the state is that writer's.
    let run = tracking::get_run(&ctx, &req(json!({"run_id": run_id}))).unwrap();
    let params: std::collections::BTreeMap<String, String> = run["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_owned(),
                p["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut experiments = 0;
    for i in 0..ROUNDS {
        let name = format!("experiment e{i}");
        let winners = won.iter().filter(|w| **w == name).count();
        let tried = outcomes.iter().filter(|(w, _)| *w == name).count();
        assert_eq!(winners, usize::from(tried > 0), "{meta:?}: {name}");
        experiments += winners;
        let key = format!("k{i}");
        let param_winners: Vec<&str> = won
            .iter()
            .filter_map(|w| w.strip_prefix(&format!("param {key}=")))
            .collect();
        let tried = outcomes
            .iter()
            .filter(|(w, _)| w.starts_with(&format!("param {key}=")))
            .count();
        assert_eq!(
            param_winners.len(),
            usize::from(tried > 0),
            "{meta:?}: {key}"
        );
        assert_eq!(
            params.get(&key).map(String::as_str),
            param_winners.first().copied(),
            "{meta:?}: {key}"
        );
    }
    let listed = tracking::search_experiments(&ctx, &req(json!({"max_results": 1000}))).unwrap();
    assert_eq!(
        listed["experiments"].as_array().unwrap().len(),
        experiments + 1,
        "{meta:?}: experiments (and Default)"
    );
    let tags = run["run"]["data"]["tags"].as_array().unwrap();
    assert!(
        tags.iter()
            .all(|t| !t["key"].as_str().unwrap().starts_with("junk")),
        "{meta:?}: a refused write's change was kept"
    );
    let metrics = run["run"]["data"]["metrics"].as_array().unwrap().len();
    // The race's metric keys, and the three logged while the workspace was held.
    let raced = won
        .iter()
        .filter(|w| w.starts_with("metric"))
        .map(|w| w.split(' ').nth(1).unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(metrics, raced + 3, "{meta:?}: metrics");
}

/// Statements held to travel with the next one (`Tx::exec_later`, pipelined on PostgreSQL)
/// are seen by the statements after them, and a held statement's error is never lost: it is
/// returned by the next call or by the commit, and nothing of the transaction is kept.
#[test]
fn held_statements_are_read_back_and_their_errors_reach_the_caller() {
    for meta in metadata_stores() {
        let dir = tempfile::tempdir().unwrap();
        let target = match meta {
            Meta::Sqlite => dir.path().join("m.sqlite").display().to_string(),
            Meta::Postgres => fresh_postgres(),
        };
        let store = open(meta, &target);
        let insert = "INSERT INTO restores (workspace, source, to_seq, started_at) VALUES (?, 'archive', 1, 1)";
        let count = |store: &Store| {
            store
                .read(|tx| {
                    Ok(tx
                        .query("SELECT workspace FROM restores ORDER BY workspace", &[])?
                        .iter()
                        .map(|r| r.text(0))
                        .collect::<Vec<_>>())
                })
                .unwrap()
        };

        // Read back within the transaction, kept after it.
        let seen = store
            .bookkeeping(|tx| {
                tx.exec_later(insert, vec!["a".into()])?;
                tx.exec_later(insert, vec!["b".into()])?;
                Ok(tx.query("SELECT COUNT(*) FROM restores", &[])?[0].int(0))
            })
            .unwrap();
        assert_eq!(seen, 2, "{meta:?}");
        assert_eq!(count(&store), ["a", "b"], "{meta:?}");

        // A held statement that fails, reported by the next statement.
        let next = store.bookkeeping(|tx| {
            tx.exec_later(insert, vec!["c".into()])?;
            tx.exec_later(insert, vec!["a".into()])?;
            tx.query("SELECT 1", &[])
        });
        assert!(
            matches!(next, Err(tandem::store::Error::Conflict(_))),
            "{meta:?}: {next:?}"
        );

        // The last statement held, failing: reported by the commit.
        let commit = store.bookkeeping(|tx| {
            tx.exec_later(insert, vec!["d".into()])?;
            tx.exec_later(insert, vec!["b".into()])
        });
        assert!(
            matches!(commit, Err(tandem::store::Error::Conflict(_))),
            "{meta:?}: {commit:?}"
        );
        assert_eq!(
            count(&store),
            ["a", "b"],
            "{meta:?}: nothing of a failed transaction is kept"
        );

        // The connection is still good for the next transaction.
        store
            .bookkeeping(|tx| tx.exec_later(insert, vec!["e".into()]))
            .unwrap();
        assert_eq!(count(&store), ["a", "b", "e"], "{meta:?}");

        // More statements than a backend holds at once (PostgreSQL sends them every 128):
        // all are run, and a failure among them is still reported and still takes back all.
        let bulk = store
            .bookkeeping(|tx| {
                for i in 0..300 {
                    tx.exec_later(insert, vec![format!("bulk{i:03}").into()])?;
                }
                Ok(tx.query(
                    "SELECT COUNT(*) FROM restores WHERE workspace LIKE 'bulk%'",
                    &[],
                )?[0]
                    .int(0))
            })
            .unwrap();
        assert_eq!(bulk, 300, "{meta:?}");
        let failed = store.bookkeeping(|tx| {
            for i in 0..300 {
                // The 200th repeats one already stored: it fails inside a batch sent early.
                let name = if i == 200 {
                    "bulk000".to_owned()
                } else {
                    format!("more{i:03}")
                };
                tx.exec_later(insert, vec![name.into()])?;
            }
            Ok(())
        });
        assert!(
            matches!(failed, Err(tandem::store::Error::Conflict(_))),
            "{meta:?}: {failed:?}"
        );
        let more = store
            .read(|tx| {
                Ok(tx.query(
                    "SELECT COUNT(*) FROM restores WHERE workspace LIKE 'more%'",
                    &[],
                )?[0]
                    .int(0))
            })
            .unwrap();
        assert_eq!(more, 0, "{meta:?}: nothing of a failed transaction is kept");
    }
}
