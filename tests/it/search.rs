//! Run searches answered in SQL give exactly what the general path (candidates filtered and
//! sorted in memory) gives: same runs, same order, same pages, on every metadata store,
//! including missing metrics, NaN, ±infinity, ties and deleted runs.

use crate::replay::World;
use crate::support::metadata_stores;
use serde_json::{json, Value};
use tandem::api::{tracking, Req};

fn req(v: Value) -> Req {
    Req::from_json(v).unwrap()
}

#[test]
fn searches_answered_in_sql_match_the_general_path() {
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        let exp = tracking::create_experiment(ctx, &req(json!({"name": "s"}))).unwrap()
            ["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let values = [
            json!(0.1),
            json!(0.7),
            json!("NaN"),
            json!(0.7),
            json!("Infinity"),
            json!("-Infinity"),
            json!(-0.0),
            json!(0.5),
            json!(2.5),
            json!(0.9),
        ];
        for i in 0..60u64 {
            // Ties on start time, on values; some runs without m, some without n.
            let run = tracking::create_run(
                ctx,
                &req(json!({"experiment_id": exp, "start_time": 1000 + (i % 7)})),
            )
            .unwrap()["run"]["info"]["run_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut metrics = vec![];
            if i % 5 != 0 {
                metrics.push(json!({"key": "m", "value": values[(i % 10) as usize], "timestamp": 1, "step": 0}));
            }
            if i % 3 != 0 {
                metrics
                    .push(json!({"key": "n", "value": (i % 4) as f64, "timestamp": 1, "step": 0}));
            }
            tracking::log_batch(ctx, &req(json!({"run_id": run, "metrics": metrics}))).unwrap();
            if i % 11 == 0 {
                tracking::update_run(
                    ctx,
                    &req(json!({"run_id": run, "status": "FINISHED", "end_time": 5000 + (i % 4)})),
                )
                .unwrap();
            }
            if i % 13 == 0 {
                tracking::delete_run(ctx, &req(json!({"run_id": run}))).unwrap();
            }
        }
        let filters = [
            "",
            "metrics.m > 0.5",
            "metrics.m >= 0.7 and metrics.n < 3",
            "metrics.m = 0.7",
            "metrics.m <= 0",
            "metrics.n > -1",
        ];
        let orders: [&[&str]; 6] = [
            &[],
            &["metrics.m DESC"],
            &["metrics.m ASC"],
            &["metrics.n DESC", "metrics.m ASC"],
            &["attributes.start_time ASC"],
            &["attributes.end_time DESC"],
        ];
        let mut checked = 0;
        for f in filters {
            for o in orders {
                for view in ["ACTIVE_ONLY", "ALL"] {
                    let mut token: Option<String> = None;
                    loop {
                        let mut body = json!({"experiment_ids": [exp], "filter": f, "order_by": o, "max_results": 7, "run_view_type": view});
                        if let Some(t) = &token {
                            body["page_token"] = json!(t);
                        }
                        let a = tracking::search_runs_with(ctx, &req(body.clone()), true).unwrap();
                        // What the HTTP endpoint serves: the same page, rendered straight to text.
                        let text: Value = serde_json::from_str(
                            &tracking::search_runs_text(ctx, &req(body.clone())).unwrap(),
                        )
                        .unwrap();
                        let b = tracking::search_runs_with(ctx, &req(body), false).unwrap();
                        assert_eq!(
                            a, b,
                            "{meta:?}: filter {f:?} order {o:?} view {view} page {token:?}"
                        );
                        assert_eq!(text, a, "{meta:?}: text rendering, filter {f:?} order {o:?} view {view} page {token:?}");
                        checked += 1;
                        match b["next_page_token"].as_str() {
                            Some(t) => token = Some(t.to_owned()),
                            None => break,
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}

/// A log-batch is written with multi-row inserts and one latest-value check per key; the state
/// must be exactly what logging the same points one at a time gives (duplicates, NaN, ties,
/// older steps arriving later, several batches).
#[test]
fn batched_metrics_give_the_state_single_points_give() {
    crate::support::init();
    for meta in metadata_stores() {
        let (a, b) = (World::new(meta), World::new(meta));
        let run_a =
            tracking::create_run(&a.ctx, &req(json!({"experiment_id": "0", "start_time": 1})))
                .unwrap()["run"]["info"]["run_id"]
                .as_str()
                .unwrap()
                .to_owned();
        let mut seed: u64 = 0xABCD_EF01_2345_6789;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let values = [
            json!(0.5),
            json!("NaN"),
            json!(1.5),
            json!(-2.0),
            json!("Infinity"),
            json!(0.5),
        ];
        let mut batches = Vec::new();
        for _ in 0..12 {
            let n = 1 + next(40);
            let batch: Vec<Value> = (0..n).map(|_| json!({"key": format!("k{}", next(4)), "value": values[next(6) as usize], "timestamp": next(3) as i64, "step": next(5) as i64})).collect();
            batches.push(batch);
        }
        // The same run ID in both stores: replay the creation event into b.
        let create = a
            .store
            .read(|tx| tandem::store::queries::changes(tx, "default", 0, 1 << 20))
            .unwrap();
        let create: Vec<_> = create.into_iter().filter(|e| e.op == "CreateRun").collect();
        b.store
            .write("default", "t", |_| {
                Ok(tandem::store::Decision::change(
                    (),
                    create[0].decode_op().unwrap(),
                ))
            })
            .unwrap();
        for batch in &batches {
            tracking::log_batch(&a.ctx, &req(json!({"run_id": run_a, "metrics": batch}))).unwrap();
            for m in batch {
                tracking::log_batch(&b.ctx, &req(json!({"run_id": run_a, "metrics": [m]})))
                    .unwrap();
            }
        }
        for table in ["metrics", "latest_metrics"] {
            let q = format!("SELECT key, value, is_nan, timestamp, step FROM {table} WHERE run_id = ? ORDER BY key, step, timestamp, value, is_nan");
            let dump = |w: &World| {
                w.store
                    .read(|tx| {
                        Ok(tx
                            .query(&q, &[run_a.as_str().into()])?
                            .iter()
                            .map(|r| format!("{:?}", r.0))
                            .collect::<Vec<_>>())
                    })
                    .unwrap()
            };
            assert_eq!(
                dump(&a),
                dump(&b),
                "{meta:?}: {table} differs between batched and single points"
            );
        }
    }
}

/// Migration 5 rebuilds the metric tables (WITHOUT ROWID on SQLite) and indexes latest values:
/// a database left by a tandem at schema 4 keeps every point, NaN and infinities included.
#[test]
fn metric_points_survive_the_upgrade_to_schema_5() {
    crate::support::init();
    for meta in metadata_stores() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::support::fresh_backend(meta, dir.path());
        backend
            .write_tx(&mut |tx| tandem::store::schema::migrate_to(tx, 4))
            .unwrap();
        let values = [
            (0.5, 0),
            (0.0, 1),
            (f64::INFINITY, 0),
            (f64::NEG_INFINITY, 0),
            (-2.25, 0),
            (1e-300, 0),
        ];
        backend
            .write_tx(&mut |tx| {
                for (i, (v, nan)) in values.iter().enumerate() {
                    for ws in ["default", "other"] {
                        let params: Vec<tandem::store::Value> = vec![ws.into(), format!("run{}", i % 2).into(), format!("k{}", i % 3).into(), (*v).into(), (*nan as i64).into(), (i as i64).into(), (i as i64 * 10).into()];
                        tx.exec("INSERT INTO metrics (workspace, run_id, key, value, is_nan, timestamp, step) VALUES (?, ?, ?, ?, ?, ?, ?)", &params)?;
                        tx.exec("INSERT INTO latest_metrics (workspace, run_id, key, value, is_nan, timestamp, step) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", &params)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        let dump = |b: &dyn tandem::store::Backend| {
            let mut out = Vec::new();
            b.read_tx(&mut |tx| {
                for table in ["metrics", "latest_metrics"] {
                    let rows = tx.query(&format!("SELECT workspace, run_id, key, value, is_nan, timestamp, step FROM {table} ORDER BY workspace, run_id, key, step, timestamp, is_nan, value"), &[])?;
                    out.push(rows.iter().map(|r| format!("{table} {:?}", r.0)).collect::<Vec<_>>());
                }
                Ok(())
            })
            .unwrap();
            out
        };
        let before = dump(backend.as_ref());
        assert_eq!(before[0].len(), 12, "{meta:?}: the points went in");
        // Opening a store migrates it to the current schema.
        let store = tandem::store::Store::new(
            backend.clone(),
            std::sync::Arc::new(tandem::store::SystemClock),
            "test",
        )
        .unwrap();
        let version = store
            .read(|tx| {
                Ok(tx
                    .query_one("SELECT MAX(version) FROM schema_version", &[])?
                    .unwrap()
                    .int(0))
            })
            .unwrap();
        assert_eq!(version, tandem::store::schema::SCHEMA_VERSION, "{meta:?}");
        assert_eq!(
            dump(backend.as_ref()),
            before,
            "{meta:?}: points changed in the upgrade"
        );
    }
}

/// A new model version's reply is built from the write itself, not read back: it must be
/// exactly what a read after the write returns, for every shape of request.
#[test]
fn a_created_model_version_is_answered_as_a_read_finds_it() {
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        tandem::api::registry::create_registered_model(ctx, &req(json!({"name": "m"}))).unwrap();
        let run = tracking::create_run(ctx, &req(json!({"experiment_id": "0"}))).unwrap()["run"]
            ["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let logged = tandem::api::logged_models::create(
            ctx,
            &req(json!({"experiment_id": "0", "name": "lm", "source_run_id": run})),
        )
        .unwrap()["model"]["info"]["model_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let requests = [
            json!({"name": "m", "source": "s3://b/model"}),
            json!({"name": "m", "source": format!("runs:/{run}/model"), "run_id": run, "description": "", "run_link": "http://x"}),
            json!({"name": "m", "source": format!("runs:/{run}"), "run_id": run, "description": "d",
                   "tags": [{"key": "b", "value": "1"}, {"key": "a", "value": "2"}, {"key": "b", "value": "3"}, {"key": "c", "value": ""}]}),
            json!({"name": "m", "source": format!("models:/{logged}"), "model_id": logged}),
            json!({"name": "m", "source": "models:/m/4", "model_id": logged, "description": "copy"}),
        ];
        for body in requests {
            let created =
                tandem::api::registry::create_model_version(ctx, &req(body.clone())).unwrap();
            let version = created["model_version"]["version"]
                .as_str()
                .unwrap()
                .to_owned();
            let read = tandem::api::registry::get_model_version(
                ctx,
                &req(json!({"name": "m", "version": version})),
            )
            .unwrap();
            assert_eq!(created, read, "{meta:?}: {body}");
        }
    }
}

/// Traces stored before schema 14/15 (tags without their trace's time, no tags object on the
/// row, no stored spans location) are searched as new ones after the upgrade.
#[test]
fn traces_survive_the_upgrade_to_schema_15() {
    crate::support::init();
    for meta in metadata_stores() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::support::fresh_backend(meta, dir.path());
        backend
            .write_tx(&mut |tx| tandem::store::schema::migrate_to(tx, 13))
            .unwrap();
        backend
            .write_tx(&mut |tx| {
                for (i, spans) in [(1i64, true), (2, false)] {
                    let id = format!("tr-{i}");
                    tx.exec("INSERT INTO traces (workspace, trace_id, experiment_id, request_time, execution_duration, state, metadata, finalized) VALUES ('default', ?, '7', ?, 5, 'OK', '{}', 0)", &[id.as_str().into(), (i * 1000).into()])?;
                    tx.exec("INSERT INTO trace_tags (workspace, trace_id, key, value) VALUES ('default', ?, 'team', 'a')", &[id.as_str().into()])?;
                    if spans {
                        tx.exec("INSERT INTO trace_spans (workspace, trace_id, span_id, name, start_ns, content) VALUES ('default', ?, 's', 'root', 0, '{}')", &[id.as_str().into()])?;
                    }
                }
                Ok(())
            })
            .unwrap();
        backend
            .write_tx(&mut |tx| tandem::store::schema::migrate(tx))
            .unwrap();
        let mut rows = Vec::new();
        backend
            .read_tx(&mut |tx| {
                rows = tx.query("SELECT t.trace_id, t.tags_json, (SELECT COUNT(*) FROM trace_tags g WHERE g.trace_id = t.trace_id AND g.request_time = t.request_time AND g.experiment_id = '7') FROM traces t ORDER BY t.trace_id", &[])?;
                Ok(())
            })
            .unwrap();
        let got: Vec<(String, serde_json::Value, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.text(0),
                    serde_json::from_str(&r.text(1)).unwrap(),
                    r.int(2),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "tr-1".into(),
                    json!({"team": "a", "mlflow.trace.spansLocation": "TRACKING_STORE"}),
                    2
                ),
                ("tr-2".into(), json!({"team": "a"}), 1),
            ],
            "{meta:?}"
        );
    }
}

#[test]
/// The trace searches answered in SQL (newest first; a tag value driving the read through
/// `trace_tags_newest`) give what the general path gives, also after a trace's time moved
/// (its tags' copies of the time move with it) and after a delete.
fn trace_search_in_sql_matches_the_general_path() {
    use tandem::api::traces;
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        let exp = tracking::create_experiment(ctx, &req(json!({"name": "t"}))).unwrap()
            ["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let span = |i: u8, start_ms: i64| tandem::otlp::SpanIn {
            trace_id: [i + 1; 16],
            span_id: [1; 8],
            parent_span_id: None,
            name: format!("root{}", i % 3),
            start_ns: 1_000_000 * start_ms,
            end_ns: Some(1_000_000 * (start_ms + 5)),
            status_code: 1 + (i as i32 % 2),
            content: json!({"name": format!("root{}", i % 3), "status": {"code": if i.is_multiple_of(2) { "STATUS_CODE_OK" } else { "STATUS_CODE_ERROR" }}}),
        };
        for i in 0..20u8 {
            traces::log_spans(ctx, &exp, vec![span(i, 100 + (i as i64 * 7) % 13)]).unwrap();
            let id = traces::trace_id_of(&[i + 1; 16]);
            traces::set_trace_tag(
                ctx,
                &req(json!({"trace_id": id, "key": "team", "value": format!("t{}", i % 3)})),
            )
            .unwrap();
        }
        // Trace 5's time moves earlier (a span that started before it), after its tag was set.
        let mut early = span(5, 1);
        early.span_id = [2; 8];
        early.parent_span_id = Some([1; 8]);
        traces::log_spans(ctx, &exp, vec![early]).unwrap();
        traces::delete_traces(
            ctx,
            &req(json!({"experiment_id": exp, "request_ids": [traces::trace_id_of(&[9; 16])]})),
        )
        .unwrap();
        // Traces started whole, with request metadata (finalized or not, one with a quote and
        // non-ASCII text) and tags needing escapes, one with an assessment: the page read in
        // SQL writes its rows' metadata and tags as stored, the general path parses them.
        for (i, metadata) in [
            json!({"m": "1", "mlflow.trace.infoFinalized": "true"}),
            json!({"m": "say \"hé\"\n"}),
            json!({}),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("tr-{i:032x}");
            traces::start_trace_v3(ctx, &req(json!({"trace": {"trace_info": {"trace_id": id, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}, "request_time": format!("2026-12-05T03:24:4{i}.724Z"), "execution_duration": "0.5s", "state": "OK", "trace_metadata": metadata, "tags": {"mlflow.traceName": "root1", "team": "t1", "q\"uote": "é\t"}}}}))).unwrap();
            if i == 1 {
                tandem::api::assessments::create_assessment(ctx, &req(json!({"trace_id": id, "assessment": {"assessment_name": "ok", "feedback": {"value": true}}}))).unwrap();
            }
        }
        let loc =
            json!([{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]);
        // Whole traces, as the route writes them.
        let traces_of = |filter: &str, max: usize| -> Vec<Value> {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut b = json!({"locations": loc, "filter": filter, "max_results": max});
                if let Some(t) = &token {
                    b["page_token"] = json!(t);
                }
                let a: Value =
                    serde_json::from_str(&traces::search_traces_v3_text(ctx, &req(b)).unwrap())
                        .unwrap();
                out.extend(a["traces"].as_array().into_iter().flatten().cloned());
                match a["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_owned()),
                    None => return out,
                }
            }
        };
        let ids = |filter: &str, max: usize| -> Vec<String> {
            traces_of(filter, max)
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = traces_of("", 100);
        assert_eq!(all.len(), 22, "{meta:?}");
        let started = all
            .iter()
            .find(|t| t["trace_id"] == "tr-00000000000000000000000000000000")
            .unwrap();
        assert_eq!(
            started["trace_metadata"],
            json!({"m": "1", "mlflow.trace.infoFinalized": "true"}),
            "{meta:?}"
        );
        assert_eq!(started["tags"]["q\"uote"], "é\t", "{meta:?}");
        assert!(
            started["tags"]["mlflow.artifactLocation"]
                .as_str()
                .unwrap()
                .ends_with("/traces/tr-00000000000000000000000000000000/artifacts"),
            "{meta:?}"
        );
        let assessed = all
            .iter()
            .find(|t| t["trace_id"] == "tr-00000000000000000000000000000001")
            .unwrap();
        assert_eq!(
            assessed["assessments"][0]["assessment_name"], "ok",
            "{meta:?}"
        );
        assert_eq!(assessed["trace_metadata"]["m"], "say \"hé\"\n", "{meta:?}");
        // (A trace started whole is finalized: its metadata says so even when it had none.)
        assert_eq!(
            all.iter()
                .find(|t| t["trace_id"] == "tr-00000000000000000000000000000002")
                .unwrap()["trace_metadata"],
            json!({"mlflow.trace.infoFinalized": "true"}),
            "{meta:?}"
        );
        let streamed = all
            .iter()
            .find(|t| t["trace_id"] == traces::trace_id_of(&[1; 16]))
            .unwrap();
        assert!(
            streamed.get("trace_metadata").is_none(),
            "{meta:?}: {streamed}"
        );
        // `LIKE '%'` holds for every trace with the tag but is not answered in SQL: the same
        // search on the general path.
        for (sql, general) in [
            ("", "tags.team LIKE '%'"),
            (
                "tags.team = 't1'",
                "tags.team = 't1' AND tags.team LIKE '%'",
            ),
            (
                "tags.team = 't2' AND status = 'OK'",
                "tags.team = 't2' AND status = 'OK' AND tags.team LIKE '%'",
            ),
            ("name = 'root1'", "name = 'root1' AND tags.team LIKE '%'"),
            // Span clauses over the traces the SQL finds, in page order.
            (
                "span.name = 'root1'",
                "span.name = 'root1' AND tags.team LIKE '%'",
            ),
            (
                "tags.team = 't1' AND span.status = 'ERROR'",
                "tags.team = 't1' AND span.status = 'ERROR' AND tags.team LIKE '%'",
            ),
            (
                "span.name RLIKE 'root[12]' AND span.status = 'OK'",
                "span.name RLIKE 'root[12]' AND span.status = 'OK' AND tags.team LIKE '%'",
            ),
            (
                "tags.team = 'none'",
                "tags.team = 'none' AND tags.team LIKE '%'",
            ),
        ] {
            for max in [3, 100] {
                let (a, b) = (traces_of(sql, max), traces_of(general, max));
                assert_eq!(a, b, "{meta:?}: {sql} (pages of {max})");
            }
        }
        // Span clauses (read from the stored spans, every store): the root spans' names and
        // statuses are the traces' names and states here.
        for (spans, traces_alike) in [
            ("span.name = 'root1'", "name = 'root1'"),
            (
                "span.status = 'ERROR' AND span.name LIKE 'root%'",
                "status = 'ERROR'",
            ),
            ("span.name RLIKE '^root[02]$'", "name != 'root1'"),
        ] {
            let found = ids(spans, 100);
            assert!(!found.is_empty(), "{meta:?}: {spans}");
            let mut want = ids(traces_alike, 100);
            want.retain(|t| !t.starts_with("tr-0000"));
            assert_eq!(found, want, "{meta:?}: {spans}");
        }
        assert!(
            !ids("", 100).contains(&traces::trace_id_of(&[9; 16])),
            "{meta:?}: a deleted trace"
        );
        assert_eq!(
            ids("tags.team = 't2'", 100).last(),
            Some(&traces::trace_id_of(&[6; 16])),
            "{meta:?}: the trace whose time moved is the oldest"
        );
    }
}

/// The trace search the HTTP route serves (written by hand, `write_info`) equals the reference
/// answer (serialized by serde), for the SQL page and the in-memory path, with tags,
/// assessments and pages.
#[test]
fn trace_search_text_matches_the_json_answer() {
    use tandem::api::{assessments, traces};
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        let exp = tracking::create_experiment(ctx, &req(json!({"name": "t"}))).unwrap()
            ["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for i in 0..12u8 {
            let trace = [i + 1; 16];
            let span = tandem::otlp::SpanIn {
                trace_id: trace,
                span_id: [1; 8],
                parent_span_id: None,
                name: format!("root{}", i % 3),
                start_ns: 1_000_000 * (i as i64 % 5 + 1),
                end_ns: Some(9_000_000),
                status_code: 1 + (i as i32 % 2),
                content: json!({"name": "root", "attributes": [{"key": "mlflow.spanInputs", "value": {"string_value": format!("q{i}")}}]}),
            };
            traces::log_spans(ctx, &exp, vec![span]).unwrap();
            let id = traces::trace_id_of(&trace);
            traces::set_trace_tag(
                ctx,
                &req(json!({"trace_id": id, "key": "team", "value": format!("t{}", i % 2)})),
            )
            .unwrap();
            if i % 4 == 0 {
                assessments::create_assessment(ctx, &req(json!({"trace_id": id, "assessment": {"assessment_name": "ok", "feedback": {"value": i}}}))).unwrap();
            }
        }
        let loc =
            json!([{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]);
        for body in [
            json!({"locations": loc, "max_results": 5}),
            json!({"locations": loc, "filter": "tags.team = 't1'", "max_results": 4}),
            json!({"locations": loc, "filter": "feedback.ok >= 4"}),
            json!({"locations": loc, "order_by": ["name ASC"], "max_results": 7}),
            json!({"locations": []}),
        ] {
            let mut token: Option<String> = None;
            loop {
                let mut b = body.clone();
                if let Some(t) = &token {
                    b["page_token"] = json!(t);
                }
                let a = traces::search_traces_v3(ctx, &req(b.clone())).unwrap();
                let text: Value =
                    serde_json::from_str(&traces::search_traces_v3_text(ctx, &req(b)).unwrap())
                        .unwrap();
                assert_eq!(text, a, "{meta:?}: {body}");
                match a["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_owned()),
                    None => break,
                }
            }
        }
    }
}
