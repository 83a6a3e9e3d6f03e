//! `/api/tandem/v1/workspaces/{ws}/jobs`: submitting, reading and cancelling jobs
//! (docs/design/jobs.md). The scheduler (`scheduler.rs`) runs them; this module only accepts
//! specs, which it validates completely before anything is written.

use super::{Ctx, Req};
use crate::store::{Decision, Row, Value};
use serde_json::{json, Map, Value as Json};
use tandem_core::{MlflowError, Op, Result};

/// Job states, as stored and served.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const FINAL_STATES: &[&str] = &["completed", "failed", "cancelled"];

pub const MAX_RETRIES: i64 = 10;
pub const MAX_TIMEOUT_SECONDS: i64 = 7 * 24 * 3600;
const MAX_KEY_LEN: usize = 256;
/// How much of an attempt's stdout and stderr a region that no longer leads sends the leader.
pub const MAX_REPORTED_LOG: usize = 1 << 20;
/// Outcomes of an attempt, as recorded.
pub const OUTCOMES: &[&str] = &["completed", "failed", "timed_out", "cancelled", "lost"];

fn target(ctx: &Ctx, req: &Req) -> Result<Ctx> {
    super::named_workspace(ctx, req, true)
}

/// An environment variable name a job may set: not one tandem sets itself.
fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !k.starts_with("TANDEM_")
        && !k.starts_with("MLFLOW_")
}

fn string_map(req: &Req, key: &str) -> Result<Map<String, Json>> {
    match req.obj(key)? {
        None => Ok(Map::new()),
        Some(o) => {
            let mut out = Map::new();
            for (k, v) in o.0.iter() {
                match v.as_str() {
                    Some(s) if !s.contains('\0') => {
                        out.insert(k.clone(), s.into());
                    }
                    _ => {
                        return Err(MlflowError::invalid(format!(
                            "'{key}.{k}' must be a string."
                        )))
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The spec as accepted: every field checked, defaults filled in, references to assets
/// still unresolved (they are resolved in the write's transaction).
struct Spec {
    json: Json,
    environment: Option<String>,
    inputs: Map<String, Json>,
    experiment_id: String,
}

fn parse_spec(ctx: &Ctx, req: &Req) -> Result<Spec> {
    let command: Vec<String> = match req.0.get("command") {
        Some(Json::String(s)) if !s.trim().is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), s.clone()]
        }
        Some(Json::Array(_)) => req.str_list("command")?,
        None | Some(Json::Null) | Some(Json::String(_)) => Vec::new(),
        Some(_) => {
            return Err(MlflowError::invalid(
                "'command' must be a string or a list of strings.",
            ))
        }
    };
    if command.is_empty() || command[0].is_empty() {
        return Err(super::missing("command"));
    }
    let name = req.opt_str("name")?.unwrap_or_default();
    if name.len() > 256 {
        return Err(MlflowError::invalid(
            "A job's name is at most 256 characters.",
        ));
    }
    let compute = req.opt_str("compute")?.unwrap_or_else(|| "local".into());
    let resources = req.obj("resources")?;
    let cpus = match resources.map(|r| r.opt_i64("cpus")).transpose()?.flatten() {
        None => 1,
        Some(c) if (1..=4096).contains(&c) => c,
        Some(c) => {
            return Err(MlflowError::invalid(format!(
                "resources.cpus must be between 1 and 4096, got {c}."
            )))
        }
    };
    let memory_mb = match resources
        .map(|r| r.opt_i64("memory_mb"))
        .transpose()?
        .flatten()
    {
        None => 0,
        Some(m) if m >= 0 => m,
        Some(m) => {
            return Err(MlflowError::invalid(format!(
                "resources.memory_mb must not be negative, got {m}."
            )))
        }
    };
    let named: Vec<&crate::jobs::ComputeTarget> =
        ctx.compute.iter().filter(|t| t.name == compute).collect();
    if named.is_empty() {
        let known: Vec<&str> = ctx.compute.iter().map(|t| t.name.as_str()).collect();
        return Err(MlflowError::invalid(format!(
            "No compute named '{compute}' (this deployment has: {}).",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    if !named
        .iter()
        .any(|t| t.could_hold(cpus as u32, memory_mb as u64))
    {
        return Err(MlflowError::invalid(format!(
            "The job asks for {cpus} CPUs and {memory_mb} MB, more than compute '{compute}' has for one attempt anywhere; it would wait forever."
        )));
    }
    let retries = req.opt_i64("retries")?.unwrap_or(0);
    if !(0..=MAX_RETRIES).contains(&retries) {
        return Err(MlflowError::invalid(format!(
            "retries must be between 0 and {MAX_RETRIES}, got {retries}."
        )));
    }
    let timeout = req.opt_i64("timeout_seconds")?;
    if let Some(t) = timeout {
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&t) {
            return Err(MlflowError::invalid(format!(
                "timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}, got {t}."
            )));
        }
    }
    let env = string_map(req, "env")?;
    if let Some(bad) = env.keys().find(|k| !valid_env_name(k)) {
        return Err(MlflowError::invalid(format!(
            "Environment variable '{bad}' is not allowed: names are letters, digits and '_', and TANDEM_ and MLFLOW_ ones are set by tandem."
        )));
    }
    let inputs = string_map(req, "inputs")?;
    if let Some(bad) = inputs.keys().find(|k| {
        k.is_empty() || k.len() > 64 || !k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    }) {
        return Err(MlflowError::invalid(format!(
            "Input name '{bad}' must be letters, digits and '_'."
        )));
    }
    let environment = req.opt_str("environment")?.filter(|s| !s.is_empty());
    let experiment_id = match req.0.get("experiment_id") {
        Some(Json::Number(n)) => n.to_string(),
        _ => req
            .opt_str("experiment_id")?
            .unwrap_or_else(|| tandem_core::ids::DEFAULT_EXPERIMENT_ID.to_owned()),
    };
    let json = json!({
        "name": name,
        "command": command,
        "compute": compute,
        "resources": { "cpus": cpus, "memory_mb": memory_mb },
        "retries": retries,
        "timeout_seconds": timeout,
        "env": env,
        "experiment_id": experiment_id,
        // Whose rights the job's process logs with (a token issued per attempt).
        "owner": ctx.principal,
    });
    Ok(Spec {
        json,
        environment,
        inputs,
        experiment_id,
    })
}

/// `POST .../jobs`: the spec (see docs/design/jobs.md); with `key`, a second submission with
/// the same key answers the first job and writes nothing.
pub fn submit(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let key = req.opt_str("key")?.filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > MAX_KEY_LEN) {
        return Err(MlflowError::invalid(format!(
            "An idempotency key is at most {MAX_KEY_LEN} characters."
        )));
    }
    let spec = parse_spec(&t, req)?;
    let job_id = format!("j-{}", tandem_core::ids::hex(&super::random_bytes::<16>()));
    let time = t.now();
    let id = t.write(|tx| {
        if let Some(k) = &key {
            if let Some(r) = tx.query_one(
                "SELECT job_id FROM jobs WHERE workspace = ? AND idempotency_key = ?",
                &[t.workspace.as_str().into(), k.as_str().into()],
            )? {
                return Ok(Decision::no_change(r.text(0)));
            }
        }
        super::tracking::active_experiment(tx, &t.workspace, &spec.experiment_id)?;
        let mut json = spec.json.clone();
        if let Some(e) = &spec.environment {
            let (n, v) = super::assets::resolve(tx, &t.workspace, super::assets::ENVIRONMENT, e)?;
            json["environment"] = format!("{n}:{v}").into();
        }
        let mut inputs = Map::new();
        for (name, reference) in &spec.inputs {
            let (n, v) = super::assets::resolve(
                tx,
                &t.workspace,
                super::assets::DATA_ASSET,
                reference.as_str().unwrap_or_default(),
            )?;
            inputs.insert(name.clone(), format!("{n}:{v}").into());
        }
        json["inputs"] = inputs.into();
        Ok(Decision::change(
            job_id.clone(),
            Op::SubmitJob {
                job_id: job_id.clone(),
                key: key.clone(),
                spec: json.to_string(),
                time,
            },
        ))
    })?;
    Ok(json!({ "job": one(&t, &id)? }))
}

const COLUMNS: &str = "job_id, idempotency_key, spec, state, attempt, region, compute, run_id, cancel_requested, submitted_time, updated_time";

fn render(r: &Row, attempts: Vec<Json>) -> Json {
    let spec: Json = serde_json::from_str(&r.text(2)).unwrap_or(Json::Null);
    let mut j = json!({
        "job_id": r.text(0),
        "name": spec["name"],
        "state": r.text(3),
        "attempt": r.int(4),
        "cancel_requested": r.int(8) != 0,
        "submitted_time": r.int(9),
        "updated_time": r.int(10),
        "spec": spec,
        "attempts": attempts,
    });
    for (i, k) in [(1, "key"), (5, "region"), (6, "compute"), (7, "run_id")] {
        if let Some(v) = r.opt_text(i) {
            j[k] = v.into();
        }
    }
    j
}

/// The attempts of each of `job_ids`, in attempt order: a read per 500 jobs, not per job.
fn attempts_of(
    t: &Ctx,
    job_ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<Json>>> {
    let mut out: std::collections::HashMap<String, Vec<Json>> = std::collections::HashMap::new();
    for chunk in job_ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut params: Vec<Value> = vec![t.workspace.as_str().into()];
        params.extend(chunk.iter().map(|j| Value::from(j.as_str())));
        let rows = t.read(|tx| {
            tx.query(
                &format!("SELECT attempt, region, compute, run_id, state, exit_code, started_time, finished_time, job_id FROM job_attempts WHERE workspace = ? AND job_id IN ({marks}) ORDER BY job_id, attempt"),
                &params,
            )
        })?;
        for r in &rows {
            let mut a = json!({
                "attempt": r.int(0), "region": r.text(1), "compute": r.text(2),
                "run_id": r.text(3), "state": r.text(4), "started_time": r.int(6),
            });
            if let Some(c) = r.opt_int(5) {
                a["exit_code"] = c.into();
            }
            if let Some(f) = r.opt_int(7) {
                a["finished_time"] = f.into();
            }
            out.entry(r.text(8)).or_default().push(a);
        }
    }
    Ok(out)
}

fn one(t: &Ctx, job_id: &str) -> Result<Json> {
    let row = t.read(|tx| {
        tx.query_one(
            &format!("SELECT {COLUMNS} FROM jobs WHERE workspace = ? AND job_id = ?"),
            &[t.workspace.as_str().into(), job_id.into()],
        )
    })?;
    let row = row.ok_or_else(|| MlflowError::not_found(format!("Job '{job_id}' not found.")))?;
    let mut attempts = attempts_of(t, &[job_id.to_owned()])?;
    Ok(render(&row, attempts.remove(job_id).unwrap_or_default()))
}

/// `GET .../jobs/{job_id}`.
pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    Ok(json!({ "job": one(&t, &req.str("job_id")?)? }))
}

/// `GET .../jobs`: newest first, optionally in one `state`.
pub fn list(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let state = req.opt_str("state")?;
    let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE workspace = ?");
    let mut params: Vec<Value> = vec![t.workspace.as_str().into()];
    if let Some(s) = &state {
        if s != QUEUED && s != RUNNING && !FINAL_STATES.contains(&s.as_str()) {
            return Err(MlflowError::invalid(format!(
                "Job state '{s}' is unknown: use queued, running, completed, failed or cancelled."
            )));
        }
        sql.push_str(" AND state = ?");
        params.push(s.as_str().into());
    }
    sql.push_str(" ORDER BY submitted_time DESC, job_id LIMIT ?");
    let max = req.max_results(1000, 50_000)?;
    params.push((max as i64).into());
    let rows = t.read(|tx| tx.query(&sql, &params))?;
    let ids: Vec<String> = rows.iter().map(|r| r.text(0)).collect();
    let mut attempts = attempts_of(&t, &ids)?;
    let jobs: Vec<Json> = rows
        .iter()
        .map(|r| render(r, attempts.remove(&r.text(0)).unwrap_or_default()))
        .collect();
    Ok(json!({ "jobs": jobs }))
}

/// `POST .../jobs/{job_id}/cancel`: a queued job ends at once; a running attempt is stopped
/// by its executor, which records how it ended.
pub fn cancel(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let job_id = req.str("job_id")?;
    let time = t.now();
    t.write(|tx| {
        let r = tx
            .query_one(
                "SELECT state, cancel_requested FROM jobs WHERE workspace = ? AND job_id = ?",
                &[t.workspace.as_str().into(), job_id.as_str().into()],
            )?
            .ok_or_else(|| MlflowError::not_found(format!("Job '{job_id}' not found.")))?;
        let state = r.text(0);
        if FINAL_STATES.contains(&state.as_str()) {
            return Err(MlflowError::invalid(format!(
                "Job '{job_id}' has already ended ({state})."
            ))
            .into());
        }
        if r.int(1) != 0 {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change(
            (),
            Op::CancelJob {
                job_id: job_id.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({ "job": one(&t, &job_id)? }))
}

/// An executor's outcome as recorded: its name and exit code.
pub fn outcome_name(o: &crate::jobs::Outcome) -> (&'static str, Option<i64>) {
    use crate::jobs::Outcome;
    match o {
        Outcome::Exited(0) => ("completed", Some(0)),
        Outcome::Exited(c) => ("failed", Some(*c as i64)),
        Outcome::Signalled(s) => ("failed", Some(128 + *s as i64)),
        Outcome::TimedOut => ("timed_out", None),
        Outcome::Cancelled => ("cancelled", None),
        Outcome::Fenced => ("lost", None),
    }
}

fn run_status(outcome: &str) -> &'static str {
    match outcome {
        "completed" => "FINISHED",
        "cancelled" => "KILLED",
        _ => "FAILED",
    }
}

/// The write that records how attempt `attempt` of a job ended: the job's next state (queued
/// again for a lost attempt or a failure with retries left, else final), the run's status, and
/// `logs` (their `PutArtifact`s). Nothing if that attempt is not the job's running one (it was
/// recorded already).
#[allow(clippy::too_many_arguments)]
pub fn finish_decision(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    job_id: &str,
    attempt: i64,
    outcome: &str,
    exit_code: Option<i64>,
    logs: Vec<Op>,
    time: i64,
) -> crate::store::Result<Decision<()>> {
    let r = tx.query_one(
        "SELECT state, attempt, cancel_requested, run_id, spec FROM jobs WHERE workspace = ? AND job_id = ?",
        &[ws.into(), job_id.into()],
    )?;
    let Some(r) = r else {
        return Ok(Decision::no_change(()));
    };
    if r.text(0) != RUNNING || r.int(1) != attempt {
        return Ok(Decision::no_change(()));
    }
    let cancel_requested = r.int(2) != 0;
    let run_id = r.text(3);
    let retries = serde_json::from_str::<Json>(&r.text(4))
        .ok()
        .and_then(|s| s["retries"].as_i64())
        .unwrap_or(0);
    let failures = tx
        .query_one(
            "SELECT COUNT(*) FROM job_attempts WHERE workspace = ? AND job_id = ? AND state IN ('failed', 'timed_out')",
            &[ws.into(), job_id.into()],
        )?
        .map(|r| r.int(0))
        .unwrap_or(0)
        + i64::from(matches!(outcome, "failed" | "timed_out"));
    let job_state = match outcome {
        "completed" => "completed",
        "cancelled" => "cancelled",
        _ if cancel_requested => "cancelled",
        // A lost attempt runs again whatever the retries: it did not fail, its region did.
        "lost" => QUEUED,
        _ if failures <= retries => QUEUED,
        _ => "failed",
    };
    let mut ops = logs;
    ops.push(Op::UpdateRun {
        run_id,
        status: Some(run_status(outcome).into()),
        end_time: Some(time),
        run_name: None,
    });
    ops.push(Op::FinishAttempt {
        job_id: job_id.into(),
        attempt,
        outcome: outcome.into(),
        exit_code,
        job_state: job_state.into(),
        time,
    });
    Ok(Decision::changes((), ops))
}

/// `POST .../jobs/{job_id}/attempts/{attempt}/report`: a region that ran an attempt but no
/// longer leads the workspace (after a planned switchover) reports how it ended, with the
/// tails of its logs, which this leader stores as the run's artifacts. Deployment key only.
pub fn report(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let job_id = req.str("job_id")?;
    let attempt: i64 = req
        .str("attempt")?
        .parse()
        .ok()
        .filter(|a| *a >= 1)
        .ok_or_else(|| MlflowError::invalid("The attempt must be a positive integer."))?;
    let outcome = req.str("outcome")?;
    let outcome: &'static str = OUTCOMES.iter().find(|o| **o == outcome).ok_or_else(|| {
        MlflowError::invalid(format!(
            "Outcome '{outcome}' is unknown: use {}.",
            OUTCOMES.join(", ")
        ))
    })?;
    let exit_code = req.opt_i64("exit_code")?;
    let logs: Vec<(&str, String)> = [
        ("stdout.txt", req.opt_str("stdout")?),
        ("stderr.txt", req.opt_str("stderr")?),
    ]
    .into_iter()
    .filter_map(|(f, v)| v.map(|v| (f, v)))
    .collect();
    if logs.iter().any(|(_, v)| v.len() > MAX_REPORTED_LOG) {
        return Err(MlflowError::invalid(format!(
            "A reported log is at most {MAX_REPORTED_LOG} bytes."
        )));
    }
    let run_id = t
        .read(|tx| {
            tx.query_one(
                "SELECT run_id FROM job_attempts WHERE workspace = ? AND job_id = ? AND attempt = ?",
                &[t.workspace.as_str().into(), job_id.as_str().into(), attempt.into()],
            )
        })?
        .map(|r| r.text(0))
        .ok_or_else(|| MlflowError::not_found(format!("Job '{job_id}' has no attempt {attempt}.")))?;
    let root = super::tracking::run_artifact_root(&t, &run_id)?;
    let dir = crate::artifacts::relative_to_workspace(&root)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let mut ops = Vec::new();
    for (file, text) in logs {
        let path = format!("{dir}/{file}");
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(
            text.into_bytes(),
        ))]);
        let (size, sha256) = super::block_on(t.artifacts.put(&t.workspace, &path, body))??;
        ops.push(Op::PutArtifact { path, size, sha256 });
    }
    let time = t.now();
    t.write(|tx| {
        finish_decision(
            tx,
            &t.workspace,
            &job_id,
            attempt,
            outcome,
            exit_code,
            ops.clone(),
            time,
        )
    })?;
    Ok(json!({ "job": one(&t, &job_id)? }))
}
