//! How each operation changes the state. Used for live writes and for replay alike, so a
//! workspace rebuilt from its log is the live workspace.
//!
//! Architecture invariant: `apply` is deterministic. It reads only the transaction and the
//! event; every clock reading, random ID and version number it needs is in the event.
//! Validation happens before an event exists; `apply` trusts its input and never rejects
//! a well-formed event because of a rule that could change later.

use super::{schema, Result, Tx, Value};
use tandem_core::event::{KeyValue, MetricPoint};
use tandem_core::Op;

fn upsert_kv(
    tx: &mut dyn Tx,
    table: &str,
    owner_cols: &[&str],
    owner: &[Value],
    ws: &str,
    kv: &KeyValue,
) -> Result<()> {
    let cols = owner_cols.join(", ");
    let marks = vec!["?"; owner_cols.len()].join(", ");
    let target = format!("workspace, {cols}, key");
    let sql = format!(
        "INSERT INTO {table} (workspace, {cols}, key, value) VALUES (?, {marks}, ?, ?) ON CONFLICT ({target}) DO UPDATE SET value = excluded.value"
    );
    let mut params: Vec<Value> = vec![ws.into()];
    params.extend_from_slice(owner);
    params.push(kv.key.as_str().into());
    params.push(kv.value.as_str().into());
    tx.exec_later(&sql, params)?;
    Ok(())
}

fn metric_value(m: &MetricPoint) -> (f64, bool) {
    if m.value.0.is_nan() {
        (0.0, true)
    } else {
        (m.value.0, false)
    }
}

/// `(step, timestamp, value, is_nan)`: whether `a` is MLflow's "later" value than `b` (the
/// greatest (step, timestamp, value) is a key's latest; NaN above every number, as in MLflow).
fn later(a: (i64, i64, f64, bool), b: (i64, i64, f64, bool)) -> bool {
    (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| match (a.3, b.3) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.2.partial_cmp(&b.2).unwrap_or(std::cmp::Ordering::Equal),
    }) == std::cmp::Ordering::Greater
}

/// Many points of one run at once: multi-row inserts, and one statement for the latest value
/// of every key the batch touches (held and pipelined on PostgreSQL). The same state as
/// logging them one by one: a point not inserted (already there) was already counted when it
/// was first logged, so the batch's latest per key decides exactly as the single path does.
fn log_metrics(tx: &mut dyn Tx, ws: &str, run_id: &str, metrics: &[MetricPoint]) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    insert_points(tx, ws, run_id, metrics)?;
    let mut best: std::collections::BTreeMap<&str, (i64, i64, f64, bool)> =
        std::collections::BTreeMap::new();
    for m in metrics {
        let (value, is_nan) = metric_value(m);
        let cand = (m.step, m.timestamp, value, is_nan);
        match best.get(m.key.as_str()) {
            Some(b) if !later(cand, *b) => {}
            _ => {
                best.insert(m.key.as_str(), cand);
            }
        }
    }
    let latest: Vec<MetricRow> = best
        .into_iter()
        .map(|(key, (step, timestamp, value, is_nan))| (key, value, is_nan, timestamp, step))
        .collect();
    // The row comparison is `later`: (step, timestamp, NaN above numbers, value); keys are
    // unique within the statement, as PostgreSQL requires of an upsert.
    insert_metric_rows(
        tx,
        "latest_metrics",
        ws,
        run_id,
        &latest,
        " ON CONFLICT (workspace, run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
         WHERE (excluded.step, excluded.timestamp, excluded.is_nan, excluded.value) > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.is_nan, latest_metrics.value)",
    )?;
    for m in metrics.iter().filter(|m| m.model_id.is_some()) {
        log_model_metric(tx, ws, run_id, m)?;
    }
    Ok(())
}

/// `(key, value, is_nan, timestamp, step)` of a metric point or a latest value.
type MetricRow<'a> = (&'a str, f64, bool, i64, i64);

/// Multi-row inserts of metric rows into `table` (`metrics` or `latest_metrics`, which have
/// the same columns), 100 rows a statement, each statement ending with `tail`.
fn insert_metric_rows(
    tx: &mut dyn Tx,
    table: &str,
    ws: &str,
    run_id: &str,
    rows: &[MetricRow],
    tail: &str,
) -> Result<()> {
    for chunk in rows.chunks(100) {
        let marks = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 7);
        for &(key, value, is_nan, timestamp, step) in chunk {
            params.extend([
                ws.into(),
                run_id.into(),
                key.into(),
                value.into(),
                is_nan.into(),
                timestamp.into(),
                step.into(),
            ]);
        }
        tx.exec_later(&format!("INSERT INTO {table} (workspace, run_id, key, value, is_nan, timestamp, step) VALUES {marks}{tail}"), params)?;
    }
    Ok(())
}

/// Inserts metric points; a point already stored (the same key, step, timestamp and value)
/// is kept once, as in MLflow.
fn insert_points(tx: &mut dyn Tx, ws: &str, run_id: &str, metrics: &[MetricPoint]) -> Result<()> {
    let rows: Vec<MetricRow> = metrics
        .iter()
        .map(|m| {
            let (value, is_nan) = metric_value(m);
            (m.key.as_str(), value, is_nan, m.timestamp, m.step)
        })
        .collect();
    let insert = |tx: &mut dyn Tx, on_conflict: &str| {
        insert_metric_rows(tx, "metrics", ws, run_id, &rows, on_conflict)
    };
    if tx.is_sqlite() || metrics.len() < 16 {
        // SQLite finds the conflict in the same b-tree descent as the insert: free. A few
        // points are not worth the savepoint's round trip.
        return insert(tx, " ON CONFLICT DO NOTHING");
    }
    // PostgreSQL checks ON CONFLICT with a second index search before each insert, which
    // doubles the cost of a point. Points are almost never logged twice, so: a plain insert
    // under a savepoint, and only if a point is already there, again with the check.
    tx.exec("SAVEPOINT metric_points", &[])?;
    // The savepoint sent what was held before it: an error from here on is the insert's own.
    match insert(tx, "").and_then(|()| tx.flush()) {
        Ok(()) => Ok(()),
        Err(super::Error::Conflict(_)) => {
            tx.exec("ROLLBACK TO SAVEPOINT metric_points", &[])?;
            insert(tx, " ON CONFLICT DO NOTHING")
        }
        Err(e) => Err(e),
    }
}

fn log_model_metric(tx: &mut dyn Tx, ws: &str, run_id: &str, m: &MetricPoint) -> Result<()> {
    let (value, is_nan) = metric_value(m);
    if let Some(model_id) = &m.model_id {
        tx.exec_later(
            "INSERT INTO logged_model_metrics (workspace, model_id, run_id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace, model_id, run_id, key, step, timestamp, dataset_name, dataset_digest) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan",
            vec![
                ws.into(),
                model_id.as_str().into(),
                run_id.into(),
                m.key.as_str().into(),
                value.into(),
                is_nan.into(),
                m.timestamp.into(),
                m.step.into(),
                m.dataset_name.clone().unwrap_or_default().into(),
                m.dataset_digest.clone().unwrap_or_default().into(),
            ],
        )?;
    }
    Ok(())
}

fn touch_registered_model(tx: &mut dyn Tx, ws: &str, name: &str, time: i64) -> Result<()> {
    tx.exec_later(
        "UPDATE registered_models SET last_updated_time = ? WHERE workspace = ? AND name = ?",
        vec![time.into(), ws.into(), name.into()],
    )?;
    Ok(())
}

/// Everything a run owns, gone. (Its artifact bytes stay in the artifact store until the
/// artifact retention work deletes what no restorable point needs.)
/// A trace and everything that hangs off it: spans, tags, assessments, links to runs and
/// prompt versions.
fn purge_trace(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> Result<()> {
    for table in ["traces", "trace_tags", "trace_spans"] {
        tx.exec_later(
            &format!("DELETE FROM {table} WHERE workspace = ? AND trace_id = ?"),
            vec![ws.into(), trace_id.into()],
        )?;
    }
    tx.exec_later(
        "DELETE FROM genai_objects WHERE workspace = ? AND kind IN ('assessment', 'trace_run', 'trace_prompt') AND parent = ?",
        vec![ws.into(), trace_id.into()],
    )
}

fn purge_run(tx: &mut dyn Tx, ws: &str, run_id: &str) -> Result<()> {
    for table in [
        "runs",
        "params",
        "tags",
        "metrics",
        "latest_metrics",
        "run_inputs",
        "run_model_inputs",
        "run_model_outputs",
    ] {
        tx.exec_later(
            &format!("DELETE FROM {table} WHERE workspace = ? AND run_id = ?"),
            vec![ws.into(), run_id.into()],
        )?;
    }
    Ok(())
}

fn purge_logged_model(tx: &mut dyn Tx, ws: &str, model_id: &str) -> Result<()> {
    for table in [
        "logged_models",
        "logged_model_params",
        "logged_model_tags",
        "logged_model_metrics",
    ] {
        tx.exec_later(
            &format!("DELETE FROM {table} WHERE workspace = ? AND model_id = ?"),
            vec![ws.into(), model_id.into()],
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_asset(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    name: &str,
    version: i64,
    body: &serde_json::Value,
    description: &str,
    time: i64,
) -> Result<()> {
    tx.exec_later(
        "INSERT INTO assets (workspace, kind, name, version, body, description, created_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![ws.into(), kind.into(), name.into(), version.into(), body.to_string().into(), description.into(), time.into()],
    )?;
    Ok(())
}

/// Every row of the workspace's state, gone (the change log is not state).
/// A trace's info row and its tags from an info document (docs/design/traces.md): created,
/// or replaced field by field; `finalized` once the client's `StartTraceV3` gave it.
fn trace_info(
    tx: &mut dyn Tx,
    ws: &str,
    trace_id: &str,
    experiment_id: &str,
    info: &str,
    finalized: bool,
) -> Result<()> {
    let d: serde_json::Value = serde_json::from_str(info)
        .map_err(|e| super::Error::Corrupt(format!("trace {trace_id}: info is not JSON: {e}")))?;
    let text = |k: &str| d[k].as_str().map(str::to_owned);
    tx.exec_later(
        "INSERT INTO traces (workspace, trace_id, experiment_id, request_time, execution_duration, state, client_request_id, request_preview, response_preview, metadata, finalized) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (workspace, trace_id) DO UPDATE SET experiment_id = excluded.experiment_id, request_time = excluded.request_time, execution_duration = excluded.execution_duration, state = excluded.state, client_request_id = excluded.client_request_id, request_preview = excluded.request_preview, response_preview = excluded.response_preview, metadata = excluded.metadata, finalized = excluded.finalized, deleted_time = NULL",
        vec![
            ws.into(),
            trace_id.into(),
            experiment_id.into(),
            d["request_time"].as_i64().unwrap_or(0).into(),
            d["execution_duration"].as_i64().into(),
            text("state").unwrap_or_else(|| "STATE_UNSPECIFIED".into()).into(),
            text("client_request_id").into(),
            text("request_preview").into(),
            text("response_preview").into(),
            d["metadata"].to_string().into(),
            (finalized as i64).into(),
        ],
    )?;
    // Every tag carries its trace's experiment and time (the index tag filters read).
    let request_time = d["request_time"].as_i64().unwrap_or(0);
    tx.exec_later(
        "UPDATE trace_tags SET experiment_id = ?, request_time = ? WHERE workspace = ? AND trace_id = ?",
        vec![experiment_id.into(), request_time.into(), ws.into(), trace_id.into()],
    )?;
    for (k, v) in d["tags"].as_object().into_iter().flatten() {
        tx.exec_later(
            "INSERT INTO trace_tags (workspace, trace_id, key, value, experiment_id, request_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace, trace_id, key) DO UPDATE SET value = excluded.value",
            vec![ws.into(), trace_id.into(), k.into(), v.as_str().unwrap_or_default().into(), experiment_id.into(), request_time.into()],
        )?;
    }
    Ok(())
}

/// Sets one tag of a trace (which exists), with the trace's experiment and time beside it.
fn set_trace_tag(tx: &mut dyn Tx, ws: &str, trace_id: &str, key: &str, value: &str) -> Result<()> {
    tx.exec_later(
        "INSERT INTO trace_tags (workspace, trace_id, key, value, experiment_id, request_time) \
         SELECT ?, ?, ?, ?, t.experiment_id, t.request_time FROM traces t WHERE t.workspace = ? AND t.trace_id = ? \
         ON CONFLICT (workspace, trace_id, key) DO UPDATE SET value = excluded.value",
        vec![ws.into(), trace_id.into(), key.into(), value.into(), ws.into(), trace_id.into()],
    )
}

/// Rewrites a trace's tags as one JSON object on its row (what a search page reads), after a
/// change to its tags.
fn trace_tags_json(tx: &mut dyn Tx, ws: &str, trace_id: &str) -> Result<()> {
    tx.exec_later(
        &format!(
            "UPDATE traces SET tags_json = {} WHERE workspace = ? AND trace_id = ?",
            schema::tags_json_sql(tx.is_sqlite(), "?", "?")
        ),
        vec![ws.into(), trace_id.into(), ws.into(), trace_id.into()],
    )?;
    Ok(())
}

pub fn clear_state(tx: &mut dyn Tx, ws: &str) -> Result<()> {
    for (table, _) in schema::STATE_TABLES {
        let col = if *table == "workspaces" {
            "name"
        } else {
            "workspace"
        };
        tx.exec_later(
            &format!("DELETE FROM {table} WHERE {col} = ?"),
            vec![ws.into()],
        )?;
    }
    Ok(())
}

pub fn apply(tx: &mut dyn Tx, ws: &str, op: &Op) -> Result<()> {
    match op {
        Op::CreateWorkspace {
            description,
            default_artifact_root,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO workspaces (name, description, default_artifact_root, creation_time, last_update_time) VALUES (?, ?, ?, ?, ?)",
                vec![ws.into(), description.as_str().into(), default_artifact_root.clone().into(), (*time).into(), (*time).into()],
            )?;
        }
        Op::UpdateWorkspace {
            description,
            default_artifact_root,
            time,
        } => {
            if let Some(d) = description {
                tx.exec_later(
                    "UPDATE workspaces SET description = ? WHERE name = ?",
                    vec![d.as_str().into(), ws.into()],
                )?;
            }
            if let Some(root) = default_artifact_root {
                let root: Value = if root.is_empty() {
                    Value::Null
                } else {
                    root.as_str().into()
                };
                tx.exec_later(
                    "UPDATE workspaces SET default_artifact_root = ? WHERE name = ?",
                    vec![root, ws.into()],
                )?;
            }
            tx.exec_later(
                "UPDATE workspaces SET last_update_time = ? WHERE name = ?",
                vec![(*time).into(), ws.into()],
            )?;
        }
        Op::DeleteWorkspace { time } => {
            tx.exec_later(
                "UPDATE workspaces SET deleted_time = ?, last_update_time = ? WHERE name = ?",
                vec![(*time).into(), (*time).into(), ws.into()],
            )?;
        }
        Op::RestoreWorkspace { time } => {
            tx.exec_later(
                "UPDATE workspaces SET deleted_time = NULL, last_update_time = ? WHERE name = ?",
                vec![(*time).into(), ws.into()],
            )?;
        }
        Op::PurgeWorkspace {} => {
            // The state goes; the change log stays, so the workspace can be audited and, later,
            // restored from it.
            clear_state(tx, ws)?;
        }
        Op::RewindWorkspace { seq, .. } => {
            // Rebuilt from the log this transaction sees: events 1..=seq are always there,
            // whether this is a live write, a replica's replay or a restore from the archive.
            clear_state(tx, ws)?;
            let mut after = 0u64;
            while after < *seq {
                let events = super::queries::changes(tx, ws, after, 1000)?;
                let Some(last) = events.last().map(|e| e.seq) else {
                    break;
                };
                for e in events.iter().filter(|e| e.seq <= *seq) {
                    apply(
                        tx,
                        ws,
                        &e.decode_op()
                            .map_err(|err| super::Error::Corrupt(err.to_string()))?,
                    )?;
                }
                after = last;
            }
        }

        Op::SetRetention {
            days,
            purge_protection,
            time,
        } => {
            tx.exec_later(
                "UPDATE workspaces SET retention_days = ?, purge_protection = ?, last_update_time = ? WHERE name = ?",
                vec![(*days as i64).into(), (*purge_protection).into(), (*time).into(), ws.into()],
            )?;
        }
        Op::PurgeRun { run_id } => purge_run(tx, ws, run_id)?,
        Op::PurgeExperiment { experiment_id } => {
            let runs: Vec<String> = tx
                .query(
                    "SELECT run_id FROM runs WHERE workspace = ? AND experiment_id = ?",
                    &[ws.into(), experiment_id.into()],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            for run_id in &runs {
                purge_run(tx, ws, run_id)?;
            }
            let models: Vec<String> = tx
                .query(
                    "SELECT model_id FROM logged_models WHERE workspace = ? AND experiment_id = ?",
                    &[ws.into(), experiment_id.into()],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            for model_id in &models {
                purge_logged_model(tx, ws, model_id)?;
            }
            // Its traces (with their spans, tags, assessments, links) go with it.
            let traces: Vec<String> = tx
                .query(
                    "SELECT trace_id FROM traces WHERE workspace = ? AND experiment_id = ?",
                    &[ws.into(), experiment_id.into()],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            for t in &traces {
                purge_trace(tx, ws, t)?;
            }
            // So do its scorers, issues, label schemas and review queues (with their items).
            tx.exec_later(
                "DELETE FROM genai_objects WHERE workspace = ? AND kind = 'review_item' AND parent IN (SELECT id FROM genai_objects WHERE workspace = ? AND kind = 'review_queue' AND parent = ?)",
                vec![ws.into(), ws.into(), experiment_id.into()],
            )?;
            tx.exec_later(
                "DELETE FROM genai_objects WHERE workspace = ? AND kind IN ('scorer', 'issue', 'label_schema', 'review_queue') AND parent = ?",
                vec![ws.into(), experiment_id.into()],
            )?;
            for table in ["experiments", "experiment_tags", "datasets"] {
                tx.exec_later(
                    &format!("DELETE FROM {table} WHERE workspace = ? AND experiment_id = ?"),
                    vec![ws.into(), experiment_id.into()],
                )?;
            }
        }

        Op::CreateExperiment {
            experiment_id,
            name,
            artifact_location,
            tags,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO experiments (workspace, experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, ?, ?, 'active', ?, ?)",
                vec![ws.into(), experiment_id.into(), name.into(), artifact_location.into(), (*time).into(), (*time).into()],
            )?;
            for t in tags {
                upsert_kv(
                    tx,
                    "experiment_tags",
                    &["experiment_id"],
                    &[experiment_id.into()],
                    ws,
                    t,
                )?;
            }
        }
        Op::RenameExperiment {
            experiment_id,
            new_name,
            time,
        } => {
            tx.exec_later(
                "UPDATE experiments SET name = ?, last_update_time = ? WHERE workspace = ? AND experiment_id = ?",
                vec![new_name.into(), (*time).into(), ws.into(), experiment_id.into()],
            )?;
        }
        Op::DeleteExperiment {
            experiment_id,
            time,
        } => {
            tx.exec_later(
                "UPDATE experiments SET lifecycle_stage = 'deleted', deleted_time = ?, last_update_time = ? WHERE workspace = ? AND experiment_id = ?",
                vec![(*time).into(), (*time).into(), ws.into(), experiment_id.into()],
            )?;
            // As in MLflow, the experiment's active runs go with it, marked with the same time
            // so that restoring the experiment brings back exactly those runs.
            tx.exec_later(
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE workspace = ? AND experiment_id = ? AND lifecycle_stage = 'active'",
                vec![(*time).into(), ws.into(), experiment_id.into()],
            )?;
        }
        Op::RestoreExperiment {
            experiment_id,
            time,
        } => {
            let deleted = tx.query_one(
                "SELECT deleted_time FROM experiments WHERE workspace = ? AND experiment_id = ?",
                &[ws.into(), experiment_id.into()],
            )?;
            if let Some(deleted_time) = deleted.and_then(|r| r.opt_int(0)) {
                tx.exec_later(
                    "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE workspace = ? AND experiment_id = ? AND deleted_time = ?",
                    vec![ws.into(), experiment_id.into(), deleted_time.into()],
                )?;
            }
            tx.exec_later(
                "UPDATE experiments SET lifecycle_stage = 'active', deleted_time = NULL, last_update_time = ? WHERE workspace = ? AND experiment_id = ?",
                vec![(*time).into(), ws.into(), experiment_id.into()],
            )?;
        }
        Op::SetExperimentTag {
            experiment_id,
            key,
            value,
            time,
        } => {
            upsert_kv(
                tx,
                "experiment_tags",
                &["experiment_id"],
                &[experiment_id.into()],
                ws,
                &KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                },
            )?;
            tx.exec_later("UPDATE experiments SET last_update_time = ? WHERE workspace = ? AND experiment_id = ?", vec![(*time).into(), ws.into(), experiment_id.into()])?;
        }
        Op::DeleteExperimentTag {
            experiment_id,
            key,
            time,
        } => {
            tx.exec_later(
                "DELETE FROM experiment_tags WHERE workspace = ? AND experiment_id = ? AND key = ?",
                vec![ws.into(), experiment_id.into(), key.into()],
            )?;
            tx.exec_later("UPDATE experiments SET last_update_time = ? WHERE workspace = ? AND experiment_id = ?", vec![(*time).into(), ws.into(), experiment_id.into()])?;
        }

        Op::CreateRun {
            run_id,
            experiment_id,
            user_id,
            run_name,
            start_time,
            artifact_uri,
            tags,
        } => {
            tx.exec_later(
                "INSERT INTO runs (run_id, workspace, experiment_id, run_name, user_id, status, start_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, ?, 'RUNNING', ?, ?, 'active')",
                vec![run_id.into(), ws.into(), experiment_id.into(), run_name.into(), user_id.into(), (*start_time).into(), artifact_uri.into()],
            )?;
            for t in tags {
                upsert_kv(tx, "tags", &["run_id"], &[run_id.into()], ws, t)?;
            }
        }
        Op::UpdateRun {
            run_id,
            status,
            end_time,
            run_name,
        } => {
            if let Some(s) = status {
                tx.exec_later(
                    "UPDATE runs SET status = ? WHERE run_id = ? AND workspace = ?",
                    vec![s.into(), run_id.into(), ws.into()],
                )?;
            }
            if let Some(t) = end_time {
                tx.exec_later(
                    "UPDATE runs SET end_time = ? WHERE run_id = ? AND workspace = ?",
                    vec![(*t).into(), run_id.into(), ws.into()],
                )?;
            }
            if let Some(n) = run_name {
                tx.exec_later(
                    "UPDATE runs SET run_name = ? WHERE run_id = ? AND workspace = ?",
                    vec![n.into(), run_id.into(), ws.into()],
                )?;
                upsert_kv(
                    tx,
                    "tags",
                    &["run_id"],
                    &[run_id.into()],
                    ws,
                    &KeyValue {
                        key: "mlflow.runName".into(),
                        value: n.clone(),
                    },
                )?;
            }
        }
        Op::DeleteRun { run_id, time } => {
            tx.exec_later("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_id = ? AND workspace = ?", vec![(*time).into(), run_id.into(), ws.into()])?;
        }
        Op::RestoreRun { run_id } => {
            tx.exec_later("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_id = ? AND workspace = ?", vec![run_id.into(), ws.into()])?;
        }
        Op::LogBatch {
            run_id,
            metrics,
            params,
            tags,
        } => {
            for p in params {
                tx.exec_later(
                    "INSERT INTO params (workspace, run_id, key, value) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    vec![ws.into(), run_id.into(), p.key.as_str().into(), p.value.as_str().into()],
                )?;
            }
            log_metrics(tx, ws, run_id, metrics)?;
            for t in tags {
                upsert_kv(tx, "tags", &["run_id"], &[run_id.into()], ws, t)?;
                if t.key == "mlflow.runName" {
                    tx.exec_later(
                        "UPDATE runs SET run_name = ? WHERE run_id = ? AND workspace = ?",
                        vec![t.value.as_str().into(), run_id.into(), ws.into()],
                    )?;
                }
            }
        }
        Op::DeleteTag { run_id, key } => {
            tx.exec_later(
                "DELETE FROM tags WHERE run_id = ? AND key = ? AND workspace = ?",
                vec![run_id.into(), key.into(), ws.into()],
            )?;
        }
        Op::LogInputs {
            run_id,
            datasets,
            model_ids,
        } => {
            let experiment_id = tx
                .query_one(
                    "SELECT experiment_id FROM runs WHERE run_id = ? AND workspace = ?",
                    &[run_id.into(), ws.into()],
                )?
                .map(|r| r.text(0))
                .unwrap_or_default();
            for d in datasets {
                tx.exec_later(
                    "INSERT INTO datasets (workspace, dataset_id, experiment_id, name, digest, source_type, source, dataset_schema, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    vec![
                        ws.into(),
                        d.dataset_id.as_str().into(),
                        experiment_id.as_str().into(),
                        d.dataset.name.as_str().into(),
                        d.dataset.digest.as_str().into(),
                        d.dataset.source_type.as_str().into(),
                        d.dataset.source.as_str().into(),
                        d.dataset.schema.clone().into(),
                        d.dataset.profile.clone().into(),
                    ],
                )?;
                let tags = serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into());
                tx.exec_later(
                    "INSERT INTO run_inputs (workspace, run_id, dataset_id, tags) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    vec![ws.into(), run_id.into(), d.dataset_id.as_str().into(), tags.into()],
                )?;
            }
            for m in model_ids {
                tx.exec_later("INSERT INTO run_model_inputs (workspace, run_id, model_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", vec![ws.into(), run_id.into(), m.into()])?;
            }
        }
        Op::LogOutputs { run_id, models } => {
            for m in models {
                tx.exec_later(
                    "INSERT INTO run_model_outputs (workspace, run_id, model_id, step) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    vec![ws.into(), run_id.into(), m.model_id.as_str().into(), m.step.into()],
                )?;
            }
        }

        Op::CreateLoggedModel {
            model_id,
            experiment_id,
            name,
            artifact_location,
            model_type,
            source_run_id,
            params,
            tags,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO logged_models (model_id, workspace, experiment_id, name, artifact_location, model_type, source_run_id, status, lifecycle_stage, creation_time, last_updated_time) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'LOGGED_MODEL_PENDING', 'active', ?, ?)",
                vec![model_id.into(), ws.into(), experiment_id.into(), name.into(), artifact_location.into(), model_type.clone().into(), source_run_id.clone().into(), (*time).into(), (*time).into()],
            )?;
            for p in params {
                upsert_kv(
                    tx,
                    "logged_model_params",
                    &["model_id"],
                    &[model_id.into()],
                    ws,
                    p,
                )?;
            }
            for t in tags {
                upsert_kv(
                    tx,
                    "logged_model_tags",
                    &["model_id"],
                    &[model_id.into()],
                    ws,
                    t,
                )?;
            }
        }
        Op::FinalizeLoggedModel {
            model_id,
            status,
            time,
        } => {
            tx.exec_later("UPDATE logged_models SET status = ?, last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![status.into(), (*time).into(), model_id.into(), ws.into()])?;
        }
        Op::DeleteLoggedModel { model_id, time } => {
            tx.exec_later("UPDATE logged_models SET lifecycle_stage = 'deleted', deleted_time = ?, last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![(*time).into(), (*time).into(), model_id.into(), ws.into()])?;
        }
        Op::RestoreLoggedModel { model_id, time } => {
            tx.exec_later("UPDATE logged_models SET lifecycle_stage = 'active', deleted_time = NULL, last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![(*time).into(), model_id.into(), ws.into()])?;
        }
        Op::PurgeLoggedModel { model_id } => purge_logged_model(tx, ws, model_id)?,
        Op::SetLoggedModelTags {
            model_id,
            tags,
            time,
        } => {
            for t in tags {
                upsert_kv(
                    tx,
                    "logged_model_tags",
                    &["model_id"],
                    &[model_id.into()],
                    ws,
                    t,
                )?;
            }
            tx.exec_later("UPDATE logged_models SET last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![(*time).into(), model_id.into(), ws.into()])?;
        }
        Op::DeleteLoggedModelTag {
            model_id,
            key,
            time,
        } => {
            tx.exec_later(
                "DELETE FROM logged_model_tags WHERE model_id = ? AND key = ? AND workspace = ?",
                vec![model_id.into(), key.into(), ws.into()],
            )?;
            tx.exec_later("UPDATE logged_models SET last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![(*time).into(), model_id.into(), ws.into()])?;
        }
        Op::LogLoggedModelParams {
            model_id,
            params,
            time,
        } => {
            for p in params {
                upsert_kv(
                    tx,
                    "logged_model_params",
                    &["model_id"],
                    &[model_id.into()],
                    ws,
                    p,
                )?;
            }
            tx.exec_later("UPDATE logged_models SET last_updated_time = ? WHERE model_id = ? AND workspace = ?", vec![(*time).into(), model_id.into(), ws.into()])?;
        }

        Op::CreateRegisteredModel {
            name,
            description,
            tags,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO registered_models (workspace, name, description, creation_time, last_updated_time) VALUES (?, ?, ?, ?, ?)",
                vec![ws.into(), name.into(), description.clone().into(), (*time).into(), (*time).into()],
            )?;
            for t in tags {
                upsert_kv(
                    tx,
                    "registered_model_tags",
                    &["name"],
                    &[name.into()],
                    ws,
                    t,
                )?;
            }
        }
        Op::RenameRegisteredModel {
            name,
            new_name,
            time,
        } => {
            for table in [
                "registered_models",
                "registered_model_tags",
                "registered_model_aliases",
                "model_versions",
                "model_version_tags",
            ] {
                tx.exec_later(
                    &format!("UPDATE {table} SET name = ? WHERE workspace = ? AND name = ?"),
                    vec![new_name.into(), ws.into(), name.into()],
                )?;
            }
            touch_registered_model(tx, ws, new_name, *time)?;
        }
        Op::UpdateRegisteredModel {
            name,
            description,
            time,
        } => {
            tx.exec_later(
                "UPDATE registered_models SET description = ? WHERE workspace = ? AND name = ?",
                vec![description.clone().into(), ws.into(), name.into()],
            )?;
            touch_registered_model(tx, ws, name, *time)?;
        }
        Op::DeleteRegisteredModel { name, time } => {
            // Its live versions go with it, marked with the same time, so that restoring the
            // model brings back exactly those.
            tx.exec_later("UPDATE model_versions SET deleted_time = ? WHERE workspace = ? AND name = ? AND deleted_time IS NULL", vec![(*time).into(), ws.into(), name.into()])?;
            tx.exec_later(
                "UPDATE registered_models SET deleted_time = ? WHERE workspace = ? AND name = ?",
                vec![(*time).into(), ws.into(), name.into()],
            )?;
        }
        Op::RestoreRegisteredModel { name, time } => {
            let deleted = tx
                .query_one(
                    "SELECT deleted_time FROM registered_models WHERE workspace = ? AND name = ?",
                    &[ws.into(), name.into()],
                )?
                .and_then(|r| r.opt_int(0));
            if let Some(d) = deleted {
                tx.exec_later("UPDATE model_versions SET deleted_time = NULL WHERE workspace = ? AND name = ? AND deleted_time = ?", vec![ws.into(), name.into(), d.into()])?;
            }
            tx.exec_later("UPDATE registered_models SET deleted_time = NULL, last_updated_time = ? WHERE workspace = ? AND name = ?", vec![(*time).into(), ws.into(), name.into()])?;
        }
        Op::PurgeRegisteredModel { name } => {
            for table in [
                "registered_models",
                "registered_model_tags",
                "registered_model_aliases",
                "model_versions",
                "model_version_tags",
            ] {
                tx.exec_later(
                    &format!("DELETE FROM {table} WHERE workspace = ? AND name = ?"),
                    vec![ws.into(), name.into()],
                )?;
            }
        }
        Op::SetRegisteredModelTag { name, key, value } => {
            upsert_kv(
                tx,
                "registered_model_tags",
                &["name"],
                &[name.into()],
                ws,
                &KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                },
            )?;
        }
        Op::DeleteRegisteredModelTag { name, key } => {
            tx.exec_later(
                "DELETE FROM registered_model_tags WHERE workspace = ? AND name = ? AND key = ?",
                vec![ws.into(), name.into(), key.into()],
            )?;
        }
        Op::SetRegisteredModelAlias {
            name,
            alias,
            version,
        } => {
            tx.exec_later(
                "INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES (?, ?, ?, ?) ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
                vec![ws.into(), name.into(), alias.into(), (*version).into()],
            )?;
        }
        Op::DeleteRegisteredModelAlias { name, alias } => {
            tx.exec_later("DELETE FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?", vec![ws.into(), name.into(), alias.into()])?;
        }
        Op::CreateModelVersion {
            name,
            version,
            source,
            run_id,
            run_link,
            description,
            tags,
            user_id,
            model_id,
            storage_location,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO model_versions (workspace, name, version, description, user_id, current_stage, source, run_id, run_link, status, storage_location, model_id, creation_time, last_updated_time) \
                 VALUES (?, ?, ?, ?, ?, 'None', ?, ?, ?, 'READY', ?, ?, ?, ?)",
                vec![
                    ws.into(),
                    name.into(),
                    (*version).into(),
                    description.clone().into(),
                    user_id.into(),
                    source.into(),
                    run_id.clone().into(),
                    run_link.clone().into(),
                    storage_location.into(),
                    model_id.clone().into(),
                    (*time).into(),
                    (*time).into(),
                ],
            )?;
            for t in tags {
                upsert_kv(
                    tx,
                    "model_version_tags",
                    &["name", "version"],
                    &[name.into(), (*version).into()],
                    ws,
                    t,
                )?;
            }
            touch_registered_model(tx, ws, name, *time)?;
        }
        Op::UpdateModelVersion {
            name,
            version,
            description,
            time,
        } => {
            tx.exec_later(
                "UPDATE model_versions SET description = ?, last_updated_time = ? WHERE workspace = ? AND name = ? AND version = ?",
                vec![description.clone().into(), (*time).into(), ws.into(), name.into(), (*version).into()],
            )?;
        }
        Op::TransitionModelVersionStage {
            name,
            version,
            stage,
            archive_existing,
            time,
        } => {
            if *archive_existing && matches!(stage.as_str(), "Staging" | "Production") {
                tx.exec_later(
                    "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? WHERE workspace = ? AND name = ? AND version <> ? AND current_stage = ?",
                    vec![(*time).into(), ws.into(), name.into(), (*version).into(), stage.into()],
                )?;
            }
            tx.exec_later(
                "UPDATE model_versions SET current_stage = ?, last_updated_time = ? WHERE workspace = ? AND name = ? AND version = ?",
                vec![stage.into(), (*time).into(), ws.into(), name.into(), (*version).into()],
            )?;
            touch_registered_model(tx, ws, name, *time)?;
        }
        Op::DeleteModelVersion {
            name,
            version,
            time,
        } => {
            tx.exec_later("UPDATE model_versions SET deleted_time = ? WHERE workspace = ? AND name = ? AND version = ?", vec![(*time).into(), ws.into(), name.into(), (*version).into()])?;
            // As in MLflow, aliases of a deleted version are removed (restoring the version
            // does not bring them back: they may point elsewhere by then).
            tx.exec_later("DELETE FROM registered_model_aliases WHERE workspace = ? AND name = ? AND version = ?", vec![ws.into(), name.into(), (*version).into()])?;
            touch_registered_model(tx, ws, name, *time)?;
        }
        Op::RestoreModelVersion {
            name,
            version,
            time,
        } => {
            tx.exec_later("UPDATE model_versions SET deleted_time = NULL, last_updated_time = ? WHERE workspace = ? AND name = ? AND version = ?", vec![(*time).into(), ws.into(), name.into(), (*version).into()])?;
            touch_registered_model(tx, ws, name, *time)?;
        }
        Op::PurgeModelVersion { name, version } => {
            tx.exec_later(
                "DELETE FROM model_versions WHERE workspace = ? AND name = ? AND version = ?",
                vec![ws.into(), name.into(), (*version).into()],
            )?;
            tx.exec_later(
                "DELETE FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ?",
                vec![ws.into(), name.into(), (*version).into()],
            )?;
        }
        Op::SetModelVersionTag {
            name,
            version,
            key,
            value,
        } => {
            upsert_kv(
                tx,
                "model_version_tags",
                &["name", "version"],
                &[name.into(), (*version).into()],
                ws,
                &KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                },
            )?;
        }
        Op::DeleteModelVersionTag { name, version, key } => {
            tx.exec_later(
                "DELETE FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ? AND key = ?",
                vec![ws.into(), name.into(), (*version).into(), key.into()],
            )?;
        }

        Op::PutArtifact { path, size, sha256 } => {
            tx.exec_later(
                "INSERT INTO artifacts (workspace, path, size, sha256) VALUES (?, ?, ?, ?) ON CONFLICT (workspace, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256",
                vec![ws.into(), path.into(), (*size as i64).into(), sha256.into()],
            )?;
        }
        Op::DeleteArtifacts { path } => {
            let prefix = format!("{}/", path.trim_end_matches('/'));
            tx.exec_later(
                "DELETE FROM artifacts WHERE workspace = ? AND (path = ? OR substr(path, 1, ?) = ?)",
                vec![ws.into(), path.into(), (prefix.chars().count() as i64).into(), prefix.into()],
            )?;
        }

        Op::CreatePrincipal {
            principal_id,
            name,
            kind,
            workspace,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO access_principals (workspace, principal_id, name, kind, service_workspace, password_hash, created_time) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                vec![ws.into(), principal_id.into(), name.into(), kind.into(), workspace.clone().into(), (*time).into()],
            )?;
        }
        Op::SetPassword {
            principal_id,
            password_hash,
            ..
        } => {
            tx.exec_later(
                "UPDATE access_principals SET password_hash = ? WHERE workspace = ? AND principal_id = ?",
                vec![password_hash.into(), ws.into(), principal_id.into()],
            )?;
        }
        Op::DeletePrincipal { principal_id, .. } => {
            for table in ["access_principals", "access_tokens", "access_assignments"] {
                tx.exec_later(
                    &format!("DELETE FROM {table} WHERE workspace = ? AND principal_id = ?"),
                    vec![ws.into(), principal_id.into()],
                )?;
            }
            tx.exec_later(
                "DELETE FROM access_members WHERE workspace = ? AND (group_id = ? OR member_id = ?)",
                vec![ws.into(), principal_id.into(), principal_id.into()],
            )?;
        }
        Op::IssueToken {
            token_id,
            principal_id,
            token_sha256,
            label,
            expires_ms,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO access_tokens (workspace, token_id, principal_id, token_sha256, label, expires_ms, revoked_time, created_time) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                vec![ws.into(), token_id.into(), principal_id.into(), token_sha256.into(), label.into(), (*expires_ms).into(), (*time).into()],
            )?;
        }
        Op::RevokeToken { token_id, time } => {
            tx.exec_later(
                "UPDATE access_tokens SET revoked_time = ? WHERE workspace = ? AND token_id = ?",
                vec![(*time).into(), ws.into(), token_id.into()],
            )?;
        }
        Op::Assign {
            assignment_id,
            principal_id,
            role,
            scope,
            until_ms,
            reason,
            eligible_for_ms,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO access_assignments (workspace, assignment_id, principal_id, role, scope, until_ms, reason, eligible_for_ms, created_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                vec![ws.into(), assignment_id.into(), principal_id.into(), role.into(), scope.into(), (*until_ms).into(), reason.clone().into(), (*eligible_for_ms).into(), (*time).into()],
            )?;
        }
        Op::CreateEnvironment {
            name,
            version,
            image,
            spec_path,
            spec_sha256,
            description,
            time,
        } => {
            let body = serde_json::json!({ "image": image, "spec_path": spec_path, "spec_sha256": spec_sha256 });
            insert_asset(
                tx,
                ws,
                "environment",
                name,
                *version,
                &body,
                description,
                *time,
            )?;
        }
        Op::CreateDataAsset {
            name,
            version,
            asset_type,
            uri,
            sha256,
            description,
            time,
        } => {
            let body = serde_json::json!({ "type": asset_type, "uri": uri, "sha256": sha256 });
            insert_asset(
                tx,
                ws,
                "data-asset",
                name,
                *version,
                &body,
                description,
                *time,
            )?;
        }
        Op::DeleteAsset {
            kind,
            name,
            version,
            time,
        } => {
            tx.exec_later(
                "UPDATE assets SET deleted_time = ? WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
                vec![(*time).into(), ws.into(), kind.into(), name.into(), (*version).into()],
            )?;
        }
        Op::RestoreAsset {
            kind,
            name,
            version,
        } => {
            tx.exec_later(
                "UPDATE assets SET deleted_time = NULL WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
                vec![ws.into(), kind.into(), name.into(), (*version).into()],
            )?;
        }
        Op::PurgeAsset {
            kind,
            name,
            version,
        } => {
            tx.exec_later(
                "DELETE FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
                vec![ws.into(), kind.into(), name.into(), (*version).into()],
            )?;
        }
        Op::SubmitJob {
            job_id,
            key,
            spec,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO jobs (workspace, job_id, idempotency_key, spec, state, attempt, cancel_requested, submitted_time, updated_time) VALUES (?, ?, ?, ?, 'queued', 0, 0, ?, ?)",
                vec![ws.into(), job_id.into(), key.clone().into(), spec.into(), (*time).into(), (*time).into()],
            )?;
        }
        Op::CancelJob { job_id, time } => {
            tx.exec_later(
                "UPDATE jobs SET cancel_requested = 1, updated_time = ?, state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END WHERE workspace = ? AND job_id = ?",
                vec![(*time).into(), ws.into(), job_id.into()],
            )?;
        }
        Op::AssignAttempt {
            job_id,
            attempt,
            region,
            compute,
            run_id,
            incarnation,
            time,
        } => {
            tx.exec_later(
                "UPDATE jobs SET state = 'running', attempt = ?, region = ?, compute = ?, run_id = ?, updated_time = ? WHERE workspace = ? AND job_id = ?",
                vec![(*attempt).into(), region.into(), compute.into(), run_id.into(), (*time).into(), ws.into(), job_id.into()],
            )?;
            tx.exec_later(
                "INSERT INTO job_attempts (workspace, job_id, attempt, region, compute, run_id, incarnation, state, started_time) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                vec![ws.into(), job_id.into(), (*attempt).into(), region.into(), compute.into(), run_id.into(), (*incarnation as i64).into(), (*time).into()],
            )?;
        }
        Op::FinishAttempt {
            job_id,
            attempt,
            outcome,
            exit_code,
            job_state,
            time,
        } => {
            tx.exec_later(
                "UPDATE job_attempts SET state = ?, exit_code = ?, finished_time = ? WHERE workspace = ? AND job_id = ? AND attempt = ?",
                vec![outcome.into(), (*exit_code).into(), (*time).into(), ws.into(), job_id.into(), (*attempt).into()],
            )?;
            tx.exec_later(
                "UPDATE jobs SET state = ?, updated_time = ? WHERE workspace = ? AND job_id = ?",
                vec![job_state.into(), (*time).into(), ws.into(), job_id.into()],
            )?;
        }
        Op::CreateDataKey {
            dek_id,
            master_key_id,
            wrapped,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO data_keys (workspace, dek_id, master_key_id, wrapped, created_time) VALUES (?, ?, ?, ?, ?)",
                vec![ws.into(), dek_id.into(), master_key_id.into(), wrapped.into(), (*time).into()],
            )?;
        }
        Op::RewrapDataKey {
            dek_id,
            master_key_id,
            wrapped,
            ..
        } => {
            tx.exec_later(
                "UPDATE data_keys SET master_key_id = ?, wrapped = ? WHERE workspace = ? AND dek_id = ?",
                vec![master_key_id.into(), wrapped.into(), ws.into(), dek_id.into()],
            )?;
        }
        Op::SetSecret {
            secret_id,
            name,
            version,
            dek_id,
            sealed,
            content_type,
            tags,
            not_before,
            expires,
            provider,
            auth_config,
            by,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO secrets (workspace, secret_id, name, version, provider, auth_config, created_by, created_time, updated_by, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (workspace, secret_id) DO UPDATE SET version = excluded.version, provider = COALESCE(excluded.provider, secrets.provider), auth_config = COALESCE(excluded.auth_config, secrets.auth_config), updated_by = excluded.updated_by, updated_time = excluded.updated_time",
                vec![ws.into(), secret_id.into(), name.into(), (*version).into(), provider.clone().into(), auth_config.clone().into(), by.into(), (*time).into(), by.into(), (*time).into()],
            )?;
            let tags = serde_json::to_string(tags).expect("tags serialize");
            tx.exec_later(
                "INSERT INTO secret_versions (workspace, secret_id, version, dek_id, sealed, content_type, tags, not_before, expires, enabled, created_by, created_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                vec![ws.into(), secret_id.into(), (*version).into(), dek_id.into(), sealed.into(), content_type.into(), tags.into(), (*not_before).into(), (*expires).into(), by.into(), (*time).into()],
            )?;
        }
        Op::SetSecretVersionEnabled {
            secret_id,
            version,
            enabled,
            ..
        } => {
            tx.exec_later(
                "UPDATE secret_versions SET enabled = ? WHERE workspace = ? AND secret_id = ? AND version = ?",
                vec![(*enabled).into(), ws.into(), secret_id.into(), (*version).into()],
            )?;
        }
        Op::DeleteSecret { secret_id, time } => {
            tx.exec_later(
                "UPDATE secrets SET deleted_time = ? WHERE workspace = ? AND secret_id = ?",
                vec![(*time).into(), ws.into(), secret_id.into()],
            )?;
        }
        Op::RecoverSecret { secret_id, .. } => {
            tx.exec_later(
                "UPDATE secrets SET deleted_time = NULL WHERE workspace = ? AND secret_id = ?",
                vec![ws.into(), secret_id.into()],
            )?;
        }
        Op::PurgeSecret { secret_id } => {
            for table in ["secrets", "secret_versions"] {
                tx.exec_later(
                    &format!("DELETE FROM {table} WHERE workspace = ? AND secret_id = ?"),
                    vec![ws.into(), secret_id.into()],
                )?;
            }
            // The gateway's view of the secret goes with it.
            tx.exec_later(
                "DELETE FROM gateway_objects WHERE workspace = ? AND kind = 'secret' AND id = ?",
                vec![ws.into(), secret_id.into()],
            )?;
        }
        Op::PutGatewayObject {
            kind,
            id,
            name,
            doc,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO gateway_objects (workspace, kind, id, name, doc, updated_time) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (workspace, kind, id) DO UPDATE SET name = excluded.name, doc = excluded.doc, updated_time = excluded.updated_time",
                vec![ws.into(), kind.into(), id.into(), name.clone().into(), doc.into(), (*time).into()],
            )?;
        }
        Op::LogSpans {
            trace_id,
            experiment_id,
            spans,
            info,
            ..
        } => {
            if let Some(info) = info {
                trace_info(tx, ws, trace_id, experiment_id, info, false)?;
            }
            // Where its spans are, as MLflow's server marks a trace whose spans it stores.
            if !spans.is_empty() {
                set_trace_tag(
                    tx,
                    ws,
                    trace_id,
                    "mlflow.trace.spansLocation",
                    "TRACKING_STORE",
                )?;
            }
            if info.is_some() || !spans.is_empty() {
                trace_tags_json(tx, ws, trace_id)?;
            }
            for s in spans {
                tx.exec_later(
                    "INSERT INTO trace_spans (workspace, trace_id, span_id, parent_span_id, name, start_ns, end_ns, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (workspace, trace_id, span_id) DO UPDATE SET parent_span_id = excluded.parent_span_id, name = excluded.name, start_ns = excluded.start_ns, end_ns = excluded.end_ns, content = excluded.content",
                    vec![ws.into(), trace_id.into(), s.span_id.clone().into(), s.parent_span_id.clone().into(), s.name.clone().into(), s.start_ns.into(), s.end_ns.into(), s.content.clone().into()],
                )?;
            }
        }
        Op::StartTrace {
            trace_id,
            experiment_id,
            info,
            ..
        } => {
            trace_info(tx, ws, trace_id, experiment_id, info, true)?;
            trace_tags_json(tx, ws, trace_id)?;
        }
        Op::SetTraceTag {
            trace_id,
            key,
            value,
            ..
        } => {
            set_trace_tag(tx, ws, trace_id, key, value)?;
            trace_tags_json(tx, ws, trace_id)?;
        }
        Op::DeleteTraceTag { trace_id, key, .. } => {
            tx.exec_later(
                "DELETE FROM trace_tags WHERE workspace = ? AND trace_id = ? AND key = ?",
                vec![ws.into(), trace_id.into(), key.into()],
            )?;
            trace_tags_json(tx, ws, trace_id)?;
        }
        Op::PurgeTraces { trace_ids } => {
            for t in trace_ids {
                purge_trace(tx, ws, t)?;
            }
        }
        Op::DeleteTraces { trace_ids, time } => {
            for t in trace_ids {
                tx.exec_later(
                    "UPDATE traces SET deleted_time = ? WHERE workspace = ? AND trace_id = ? AND deleted_time IS NULL",
                    vec![(*time).into(), ws.into(), t.into()],
                )?;
            }
        }
        Op::PutGenaiObject {
            kind,
            id,
            parent,
            name,
            doc,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO genai_objects (workspace, kind, id, parent, name, doc, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (workspace, kind, id) DO UPDATE SET parent = excluded.parent, name = excluded.name, doc = excluded.doc, updated_time = excluded.updated_time",
                vec![ws.into(), kind.into(), id.into(), parent.clone().into(), name.clone().into(), doc.into(), (*time).into()],
            )?;
        }
        Op::DeleteGenaiObject { kind, id, .. } => {
            tx.exec_later(
                "DELETE FROM genai_objects WHERE workspace = ? AND kind = ? AND id = ?",
                vec![ws.into(), kind.into(), id.into()],
            )?;
        }
        Op::DeleteGatewayObject { kind, id, .. } => {
            tx.exec_later(
                "DELETE FROM gateway_objects WHERE workspace = ? AND kind = ? AND id = ?",
                vec![ws.into(), kind.into(), id.into()],
            )?;
        }
        Op::Lock {
            lock_id,
            scope,
            kind,
            reason,
            set_by,
            time,
        } => {
            tx.exec_later(
                "INSERT INTO access_locks (workspace, lock_id, scope, kind, reason, set_by, created_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![ws.into(), lock_id.into(), scope.into(), kind.into(), reason.into(), set_by.into(), (*time).into()],
            )?;
        }
        Op::DefineRole {
            name,
            actions,
            mlflow,
            time,
        } => {
            let actions = serde_json::to_string(actions).expect("strings serialize");
            let mlflow = mlflow
                .as_ref()
                .map(|m| serde_json::to_string(m).expect("roles serialize"));
            tx.exec_later(
                "INSERT INTO access_roles (workspace, name, actions, mlflow, created_time) VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace, name) DO UPDATE SET actions = excluded.actions, mlflow = excluded.mlflow",
                vec![ws.into(), name.into(), actions.into(), mlflow.into(), (*time).into()],
            )?;
        }
        Op::DropRole { name, .. } => {
            tx.exec_later(
                "DELETE FROM access_roles WHERE workspace = ? AND name = ?",
                vec![ws.into(), name.into()],
            )?;
        }
        Op::AddMember {
            group_id,
            member_id,
            ..
        } => {
            tx.exec_later(
                "INSERT INTO access_members (workspace, group_id, member_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                vec![ws.into(), group_id.into(), member_id.into()],
            )?;
        }
        Op::RemoveMember {
            group_id,
            member_id,
            ..
        } => {
            tx.exec_later(
                "DELETE FROM access_members WHERE workspace = ? AND group_id = ? AND member_id = ?",
                vec![ws.into(), group_id.into(), member_id.into()],
            )?;
        }
        Op::Unlock { lock_id, .. } => {
            tx.exec_later(
                "DELETE FROM access_locks WHERE workspace = ? AND lock_id = ?",
                vec![ws.into(), lock_id.into()],
            )?;
        }
        Op::Unassign { assignment_id, .. } => {
            tx.exec_later(
                "DELETE FROM access_assignments WHERE workspace = ? AND assignment_id = ?",
                vec![ws.into(), assignment_id.into()],
            )?;
        }
    }
    Ok(())
}
