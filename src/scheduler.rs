//! The job scheduler of one region (docs/design/jobs.md): assigns queued jobs to this
//! region's compute within its quota, starts each attempt through the `Executor`, watches it,
//! and records how it ended. Every decision is an ordinary fenced write, so only the leader of
//! a workspace's epoch assigns or finishes anything; elsewhere the writes are refused and the
//! scheduler does nothing.
//!
//! Architecture invariant: the scheduler never starts a process for an attempt whose
//! `AssignAttempt` event is not committed, and never hands out an attempt number twice (the
//! number is the job's last attempt + 1, read in the transaction that writes it).

use crate::api::jobs::{QUEUED, RUNNING};
use crate::artifacts::Artifacts;
use crate::jobs::{AttemptSpec, ComputeTarget, Executor, Outcome, RunningAttempt};
use crate::store::{Decision, Store};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::event::KeyValue;
use tandem_core::{MlflowError, Op};

/// Who the scheduler's events are from.
pub const PRINCIPAL: &str = "tandem-scheduler";

/// How often an idle scheduler looks at the queue (busy, it looks every 10-50 ms).
pub const TICK: Duration = Duration::from_millis(200);

/// How long an attempt's shim lets it run without hearing from this scheduler.
pub const ATTEMPT_LEASE: Duration = Duration::from_secs(5);

/// How often a running attempt's stdout and stderr are copied to its run's artifacts.
const LOG_UPLOAD_EVERY: Duration = Duration::from_secs(5);

struct Tracked {
    ws: String,
    job_id: String,
    attempt: i64,
    /// The run's artifact folder, relative to the workspace's artifact root.
    artifact_dir: String,
    compute: String,
    cpus: u32,
    memory_mb: u64,
    workdir: PathBuf,
    handle: Box<dyn RunningAttempt>,
    /// The token the attempt's process logs with, revoked when it ends.
    token_id: Option<String>,
    cancel_sent: bool,
    logs_sent: Instant,
}

pub struct Scheduler {
    store: Store,
    artifacts: Artifacts,
    region: String,
    compute: Vec<ComputeTarget>,
    executor: Arc<dyn Executor>,
    /// Attempts' working folders live below this one.
    work_root: PathBuf,
    /// What a job's process is told to use as MLFLOW_TRACKING_URI (this server).
    tracking_uri: String,
    running: HashMap<(String, String, i64), Tracked>,
    /// Ends of attempts not yet taken by the leader of their workspace.
    reports: Vec<Report>,
    /// In a deployment: this region's leases (who leads each workspace, whether this region's
    /// own lease is held, what it sees of the other regions').
    deployment: Option<Arc<crate::region::RegionState>>,
    /// Set once the scheduler has looked for attempts a previous process of this region left
    /// running (they died with it: their shims saw the executor go away).
    recovered: bool,
}

/// Jobs as this region's store sees them, for `tandem status`: running attempts by region and
/// compute (`{"east": {"local": 2}}`), and queued jobs by compute (`{"queued": {"local": 1}}`).
pub fn running_by_region(store: &Store) -> Json {
    let rows = store
        .read(|tx| {
            tx.query(
                "SELECT state, COALESCE(region, ''), COALESCE(compute, ''), spec FROM jobs WHERE state IN ('queued', 'running')",
                &[],
            )
        })
        .unwrap_or_default();
    let mut running: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    let mut queued: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows {
        if r.text(0) == RUNNING {
            *running
                .entry(r.text(1))
                .or_default()
                .entry(r.text(2))
                .or_default() += 1;
        } else {
            let spec: Json = serde_json::from_str(&r.text(3)).unwrap_or(Json::Null);
            *queued
                .entry(spec["compute"].as_str().unwrap_or("local").to_owned())
                .or_default() += 1;
        }
    }
    serde_json::json!({ "running": running, "queued": queued })
}

/// For each region, whether its compute could hold the running attempts of every other
/// region if that one were lost (the attempts would move to it), besides its own: per compute
/// name, attempts needed against slots. Judged from what each region reports; a region that
/// does not answer is judged from the others' view of the jobs.
pub fn job_readiness(regions: &[serde_json::Value]) -> Vec<serde_json::Value> {
    use std::collections::BTreeMap;
    let running: BTreeMap<String, BTreeMap<String, u64>> = regions
        .iter()
        .filter_map(|r| r["jobs"]["running"].as_object())
        .next()
        .map(|m| {
            m.iter()
                .map(|(region, by)| {
                    let by = by
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(c, n)| (c.clone(), n.as_u64().unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default();
                    (region.clone(), by)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for target in regions {
        let name = target["name"].as_str().unwrap_or_default();
        let slots: BTreeMap<String, u64> = target["compute"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["slots"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (lost, by) in running.iter().filter(|(r, _)| r.as_str() != name) {
            let mut short = Vec::new();
            let mut needs = serde_json::Map::new();
            for (compute, n) in by {
                let own = running
                    .get(name)
                    .and_then(|m| m.get(compute))
                    .copied()
                    .unwrap_or(0);
                let have = slots.get(compute).copied().unwrap_or(0);
                needs.insert(
                    compute.clone(),
                    serde_json::json!({ "attempts": n + own, "slots": have }),
                );
                if n + own > have {
                    short.push(format!("{compute}: {} attempts, {have} slots", n + own));
                }
            }
            let ready = short.is_empty();
            let summary = if ready {
                format!(
                    "jobs: if {lost} were lost, {name} could run its {} attempts (ready)",
                    by.values().sum::<u64>()
                )
            } else {
                format!("jobs: NOT READY: if {lost} were lost, {name} could not hold its attempts ({}); add slots there", short.join("; "))
            };
            out.push(serde_json::json!({ "if_lost": lost, "moves_to": name, "ready": ready, "needs": needs, "summary": summary }));
        }
    }
    out
}

impl Scheduler {
    pub fn new(
        store: Store,
        artifacts: Artifacts,
        region: String,
        compute: Vec<ComputeTarget>,
        executor: Arc<dyn Executor>,
        work_root: PathBuf,
        tracking_uri: String,
    ) -> Scheduler {
        Scheduler {
            store,
            artifacts,
            region,
            compute,
            executor,
            work_root,
            tracking_uri,
            running: HashMap::new(),
            reports: Vec::new(),
            deployment: None,
            recovered: false,
        }
    }

    /// A region of a deployment: attempts run only in the leader of their workspace, only
    /// while this region's lease is held, and start only once the standby has their
    /// assignment; attempts of a lost region are run again here.
    pub fn in_deployment(mut self, region: Arc<crate::region::RegionState>) -> Scheduler {
        self.deployment = Some(region);
        self
    }

    /// Whether this process may assign attempts of `ws` now.
    fn leads(&self, ws: &str) -> bool {
        self.deployment
            .as_ref()
            .is_none_or(|r| r.leads(ws) && r.may_run_attempts())
    }

    /// Runs until the process ends: one tick every `TICK`, on the blocking pool.
    pub fn spawn(self) {
        let rt = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            let mut s = self;
            loop {
                let h = rt.clone();
                let (next, changed) = match tokio::task::spawn_blocking(move || {
                    let changed = s.tick(&h);
                    (s, changed)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("job scheduler stopped: {e}");
                        return;
                    }
                };
                s = next;
                // Soon again when something started or ended (a slot may be free, the next
                // attempt may end shortly); often while attempts run; else at the idle pace.
                let pause = if changed {
                    Duration::from_millis(10)
                } else if !s.running.is_empty() {
                    Duration::from_millis(50)
                } else {
                    TICK
                };
                tokio::time::sleep(pause).await;
            }
        });
    }

    fn workspaces(&self) -> Vec<String> {
        self.store
            .read(|tx| {
                Ok(tx
                    .query(
                        "SELECT DISTINCT workspace FROM jobs WHERE state IN ('queued', 'running') ORDER BY workspace",
                        &[],
                    )?
                    .iter()
                    .map(|r| r.text(0))
                    .collect())
            })
            .unwrap_or_default()
    }

    /// One pass: watch running attempts, then fill free slots from the queues. Whether any
    /// attempt started or ended.
    pub fn tick(&mut self, rt: &tokio::runtime::Handle) -> bool {
        let before: std::collections::HashSet<_> = self.running.keys().cloned().collect();
        let keys: Vec<_> = self.running.keys().cloned().collect();
        // One read for every cancel asked of an attempt this process runs (not one per
        // attempt per tick).
        let mut cancels = std::collections::HashSet::new();
        let workspaces: std::collections::BTreeSet<&String> = keys.iter().map(|k| &k.0).collect();
        for ws in workspaces {
            let asked = self
                .store
                .read(|tx| {
                    tx.query(
                        "SELECT job_id FROM jobs WHERE workspace = ? AND state = 'running' AND cancel_requested = 1",
                        &[ws.as_str().into()],
                    )
                })
                .unwrap_or_default();
            cancels.extend(asked.iter().map(|r| (ws.clone(), r.text(0))));
        }
        for key in keys {
            let cancel = cancels.contains(&(key.0.clone(), key.1.clone()));
            self.watch(rt, &key, cancel);
        }
        let reports = std::mem::take(&mut self.reports);
        for r in reports {
            if let Err(e) = self.report(&r) {
                tracing::debug!(workspace = %r.ws, job = %r.job_id, "report to the leader: {e}; again soon");
                self.reports.push(r);
            }
        }
        for ws in self.workspaces() {
            // In a deployment, `adopt_lost` finds what an earlier incarnation left.
            if !self.recovered && self.deployment.is_none() {
                self.recover(&ws);
            }
            if self.leads(&ws) {
                self.adopt_lost(&ws);
                self.assign(rt, &ws);
            }
        }
        self.recovered = true;
        before.len() != self.running.len() || self.running.keys().any(|k| !before.contains(k))
    }

    /// Attempts this region's previous process started are gone with it (their shims kill
    /// them when the executor goes away): record them as lost, so that they run again.
    fn recover(&mut self, ws: &str) {
        let rows = self
            .store
            .read(|tx| {
                tx.query(
                    "SELECT job_id, attempt, run_id FROM jobs WHERE workspace = ? AND state = 'running' AND region = ?",
                    &[ws.into(), self.region.as_str().into()],
                )
            })
            .unwrap_or_default();
        for r in rows {
            let key = (ws.to_owned(), r.text(0), r.int(1));
            if self.running.contains_key(&key) {
                continue;
            }
            let _ = self.finish(ws, &r.text(0), r.int(1), None, Outcome::Fenced);
        }
    }

    /// Attempts of `ws` running in a region that is gone (its region lease not renewed for
    /// `lease + safety + attempt lease`, or restarted as a new incarnation, this region's own
    /// earlier life included): their shims have killed them,
    /// so they are recorded as lost, and their jobs go back to the queue here as the next
    /// attempt (at-least-once; the job's key and the new attempt number tell the process to
    /// resume from its checkpoints).
    fn adopt_lost(&mut self, ws: &str) {
        let Some(region) = self.deployment.clone() else {
            return;
        };
        let rows = self
            .store
            .read(|tx| {
                tx.query(
                    "SELECT j.job_id, j.attempt, j.run_id, j.region, a.incarnation FROM jobs j JOIN job_attempts a ON a.workspace = j.workspace AND a.job_id = j.job_id AND a.attempt = j.attempt \
                     WHERE j.workspace = ? AND j.state = 'running'",
                    &[ws.into()],
                )
            })
            .unwrap_or_default();
        for r in rows {
            let (job_id, attempt, started_by) = (r.text(0), r.int(1), r.int(4) as u64);
            if r.text(3) == self.region {
                // This region's own: lost only if an earlier incarnation of it started it.
                if started_by == region.incarnation()
                    || self
                        .running
                        .contains_key(&(ws.to_owned(), job_id.clone(), attempt))
                {
                    continue;
                }
            } else {
                if !region.incarnation_gone(&r.text(3), started_by, region.attempt_lease()) {
                    continue;
                }
            }
            tracing::warn!(workspace = ws, job = %job_id, attempt, from = %r.text(3), "attempt lost with its region; running it again here");
            let _ = self.finish(ws, &job_id, attempt, None, Outcome::Fenced);
        }
    }

    fn used(&self, compute: &str) -> (u32, u32, u64) {
        self.running
            .values()
            .filter(|t| t.compute == compute)
            .fold((0, 0, 0), |(n, c, m), t| {
                (n + 1, c + t.cpus, m + t.memory_mb)
            })
    }

    fn fits(&self, target: &ComputeTarget, cpus: u32, memory_mb: u64) -> bool {
        let (n, c, m) = self.used(&target.name);
        n < target.slots
            && target.cpus.is_none_or(|max| c + cpus <= max)
            && target.memory_mb.is_none_or(|max| m + memory_mb <= max)
    }

    /// Queued jobs in submission order, each given a slot when one is free. A job whose
    /// compute is full waits; later jobs on other compute still go.
    fn assign(&mut self, rt: &tokio::runtime::Handle, ws: &str) {
        let queued = self
            .store
            .read(|tx| {
                tx.query(
                    "SELECT job_id, spec FROM jobs WHERE workspace = ? AND state = ? AND cancel_requested = 0 ORDER BY submitted_time, job_id LIMIT 1000",
                    &[ws.into(), QUEUED.into()],
                )
            })
            .unwrap_or_default();
        for r in queued {
            let job_id = r.text(0);
            let spec: Json = serde_json::from_str(&r.text(1)).unwrap_or(Json::Null);
            let compute = spec["compute"].as_str().unwrap_or("local").to_owned();
            let cpus = spec["resources"]["cpus"].as_u64().unwrap_or(1) as u32;
            let memory_mb = spec["resources"]["memory_mb"].as_u64().unwrap_or(0);
            let Some(target) = self.compute.iter().find(|t| t.name == compute).cloned() else {
                continue;
            };
            if !self.fits(&target, cpus, memory_mb) {
                continue;
            }
            match self.start(rt, ws, &job_id, &spec, &compute, cpus, memory_mb) {
                Ok(()) => {}
                // Not the leader here (or the job moved on): nothing was written.
                Err(e) => tracing::debug!(workspace = ws, job = %job_id, "not assigned: {e}"),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        rt: &tokio::runtime::Handle,
        ws: &str,
        job_id: &str,
        spec: &Json,
        compute: &str,
        cpus: u32,
        memory_mb: u64,
    ) -> Result<(), MlflowError> {
        let run_id = tandem_core::ids::run_id(crate::api::random_bytes());
        let time = self.store.now_ms();
        let experiment_id = spec["experiment_id"].as_str().unwrap_or("0").to_owned();
        let name = spec["name"].as_str().unwrap_or_default().to_owned();
        let (attempt, artifact_uri, key) = self.store.write(ws, PRINCIPAL, |tx| {
            let r = tx
                .query_one(
                    "SELECT state, attempt, cancel_requested, idempotency_key FROM jobs WHERE workspace = ? AND job_id = ?",
                    &[ws.into(), job_id.into()],
                )?
                .ok_or_else(|| MlflowError::not_found("job gone"))?;
            if r.text(0) != QUEUED || r.int(2) != 0 {
                return Err(MlflowError::invalid("job no longer queued").into());
            }
            let attempt = r.int(1) + 1;
            let exp = crate::api::tracking::active_experiment(tx, ws, &experiment_id)?;
            let artifact_uri = format!(
                "{}/{run_id}/artifacts",
                exp["artifact_location"].as_str().unwrap_or_default().trim_end_matches('/')
            );
            let run_name = format!("{}-attempt-{attempt}", if name.is_empty() { job_id } else { &name });
            let tags = vec![
                KeyValue { key: "mlflow.runName".into(), value: run_name.clone() },
                KeyValue { key: "mlflow.user".into(), value: PRINCIPAL.into() },
                KeyValue { key: "tandem.job_id".into(), value: job_id.into() },
                KeyValue { key: "tandem.attempt".into(), value: attempt.to_string() },
                KeyValue { key: "tandem.region".into(), value: self.region.clone() },
                KeyValue { key: "tandem.compute".into(), value: compute.into() },
            ];
            let ops = vec![
                Op::CreateRun {
                    run_id: run_id.clone(),
                    experiment_id: experiment_id.clone(),
                    user_id: PRINCIPAL.into(),
                    run_name,
                    start_time: time,
                    artifact_uri: artifact_uri.clone(),
                    tags,
                },
                Op::AssignAttempt {
                    job_id: job_id.into(),
                    attempt,
                    region: self.region.clone(),
                    compute: compute.into(),
                    run_id: run_id.clone(),
                    incarnation: self.deployment.as_ref().map_or(0, |r| r.incarnation()),
                    time,
                },
            ];
            Ok(Decision::changes((attempt, artifact_uri, r.opt_text(3)), ops))
        })?;
        // In a deployment the attempt starts only once the second copy holds its assignment
        // (the standby in hot/warm, the archive in hot/cold), so that whoever leads next knows
        // this attempt number was used (docs/design/jobs.md).
        if let Some(region) = &self.deployment {
            let head = self
                .store
                .read(|tx| crate::store::queries::log_head(tx, ws))?
                .map(|h| h.seq)
                .unwrap_or(0);
            let wait = Duration::from_secs(30);
            let confirmed = match region.mode(ws) {
                crate::region::deployment::Mode::HotWarm => {
                    rt.block_on(region.wait_for_replica(ws, head, wait))
                }
                crate::region::deployment::Mode::HotCold => {
                    rt.block_on(region.wait_for_archive(ws, head, wait))
                }
            };
            if let Err(e) = confirmed {
                // Not started; recorded as lost (and so run again) if this region can still
                // write, else by the leader that follows.
                tracing::warn!(workspace = ws, job = job_id, attempt, "not started: {e}");
                let _ = self.finish(ws, job_id, attempt, None, Outcome::Fenced);
                return Ok(());
            }
        }
        // The attempt is committed: from here on it either runs or is recorded as ended.
        let workdir = self
            .work_root
            .join(ws)
            .join(job_id)
            .join(attempt.to_string());
        let mut env: Vec<(String, String)> = vec![
            ("MLFLOW_TRACKING_URI".into(), self.tracking_uri.clone()),
            ("MLFLOW_RUN_ID".into(), run_id.clone()),
            ("MLFLOW_EXPERIMENT_ID".into(), experiment_id.clone()),
            ("MLFLOW_WORKSPACE".into(), ws.into()),
            ("TANDEM_WORKSPACE".into(), ws.into()),
            ("TANDEM_JOB_ID".into(), job_id.into()),
            (
                "TANDEM_JOB_KEY".into(),
                key.unwrap_or_else(|| job_id.to_owned()),
            ),
            ("TANDEM_JOB_ATTEMPT".into(), attempt.to_string()),
            ("TANDEM_REGION".into(), self.region.clone()),
        ];
        if let Some(m) = spec["env"].as_object() {
            env.extend(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
            );
        }
        // With access control on, the process acts as the job's owner through a token of its
        // own, valid for the attempt's timeout (a day without one) and revoked at its end.
        let token_id = match spec["owner"].as_str() {
            Some(owner) if !owner.is_empty() && owner != "anonymous" => {
                let ttl = spec["timeout_seconds"].as_i64().unwrap_or(86_400) * 1000 + 3_600_000;
                match crate::api::access::issue_token(
                    &self.store,
                    PRINCIPAL,
                    owner,
                    &format!("job {job_id} attempt {attempt}"),
                    Some(self.store.now_ms() + ttl),
                ) {
                    Ok(t) => {
                        env.push((
                            "MLFLOW_TRACKING_TOKEN".into(),
                            t["token"].as_str().unwrap_or_default().to_owned(),
                        ));
                        t["token_id"].as_str().map(str::to_owned)
                    }
                    Err(e) => {
                        tracing::warn!(
                            workspace = ws,
                            job = job_id,
                            "no token for the attempt ({owner}): {e}"
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let prepared = self.prepare(rt, ws, spec, &workdir, &mut env);
        let command: Vec<String> = spec["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let attempt_spec = AttemptSpec {
            workdir: workdir.clone(),
            command,
            env,
            timeout: spec["timeout_seconds"].as_u64().map(Duration::from_secs),
            lease: self
                .deployment
                .as_ref()
                .map_or(ATTEMPT_LEASE, |r| r.attempt_lease()),
        };
        let started = prepared.and_then(|()| {
            self.executor
                .start(&attempt_spec)
                .map_err(|e| MlflowError::internal(e.to_string()))
        });
        let artifact_dir = crate::artifacts::relative_to_workspace(&artifact_uri)
            .unwrap_or_default()
            .to_owned();
        match started {
            Ok(handle) => {
                self.running.insert(
                    (ws.to_owned(), job_id.to_owned(), attempt),
                    Tracked {
                        ws: ws.to_owned(),
                        job_id: job_id.to_owned(),
                        attempt,
                        artifact_dir,
                        compute: compute.into(),
                        cpus,
                        memory_mb,
                        workdir,
                        handle,
                        token_id,
                        cancel_sent: false,
                        logs_sent: Instant::now(),
                    },
                );
            }
            Err(e) => {
                tracing::warn!(
                    workspace = ws,
                    job = job_id,
                    attempt,
                    "could not start: {e}"
                );
                let _ = std::fs::create_dir_all(&workdir);
                let _ = std::fs::write(
                    workdir.join("stderr.txt"),
                    format!("tandem: could not start the attempt: {e}\n"),
                );
                let _ = self.finish_with_logs(
                    rt,
                    ws,
                    job_id,
                    attempt,
                    &artifact_dir,
                    &workdir,
                    Outcome::Exited(127),
                );
            }
        }
        Ok(())
    }

    /// Puts what the attempt needs in its working folder and environment: the environment's
    /// specification file and the data assets' URIs.
    fn prepare(
        &self,
        rt: &tokio::runtime::Handle,
        ws: &str,
        spec: &Json,
        workdir: &std::path::Path,
        env: &mut Vec<(String, String)>,
    ) -> Result<(), MlflowError> {
        std::fs::create_dir_all(workdir).map_err(|e| MlflowError::internal(e.to_string()))?;
        let lookup = |kind: &str, reference: &str| -> Result<Json, MlflowError> {
            let (name, version) = reference.rsplit_once(':').unwrap_or((reference, "0"));
            let version: i64 = version.parse().unwrap_or(0);
            let row = self.store.read(|tx| {
                tx.query_one(
                    "SELECT body FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
                    &[ws.into(), kind.into(), name.into(), version.into()],
                )
            })?;
            row.map(|r| serde_json::from_str(&r.text(0)).unwrap_or(Json::Null))
                .ok_or_else(|| MlflowError::invalid(format!("{kind} {reference} is gone")))
        };
        if let Some(e) = spec["environment"].as_str() {
            env.push(("TANDEM_ENVIRONMENT".into(), e.into()));
            let body = lookup(crate::api::assets::ENVIRONMENT, e)?;
            if let Some(image) = body["image"].as_str() {
                env.push(("TANDEM_ENVIRONMENT_IMAGE".into(), image.into()));
            }
            if let Some(path) = body["spec_path"].as_str() {
                let file = path.rsplit('/').next().unwrap_or("requirements.txt");
                let bytes = rt.block_on(async {
                    let (stream, _) = self.artifacts.get(ws, path).await?;
                    use futures_util::TryStreamExt;
                    stream
                        .try_fold(Vec::new(), |mut acc, chunk| async move {
                            acc.extend_from_slice(&chunk);
                            Ok(acc)
                        })
                        .await
                        .map_err(|e| MlflowError::internal(e.to_string()))
                })?;
                let local = workdir.join(file);
                std::fs::write(&local, bytes).map_err(|e| MlflowError::internal(e.to_string()))?;
                env.push((
                    "TANDEM_ENVIRONMENT_SPEC".into(),
                    local.display().to_string(),
                ));
            }
        }
        if let Some(inputs) = spec["inputs"].as_object() {
            let mut all = serde_json::Map::new();
            for (name, reference) in inputs {
                let body = lookup(
                    crate::api::assets::DATA_ASSET,
                    reference.as_str().unwrap_or_default(),
                )?;
                let uri = body["uri"].as_str().unwrap_or_default().to_owned();
                env.push((
                    format!("TANDEM_INPUT_{}", name.to_ascii_uppercase()),
                    uri.clone(),
                ));
                all.insert(
                    name.clone(),
                    serde_json::json!({ "asset": reference, "uri": uri, "sha256": body["sha256"] }),
                );
            }
            env.push(("TANDEM_INPUTS".into(), Json::Object(all).to_string()));
        }
        Ok(())
    }

    fn watch(&mut self, rt: &tokio::runtime::Handle, key: &(String, String, i64), cancel: bool) {
        let may_run = self
            .deployment
            .as_ref()
            .is_none_or(|r| r.may_run_attempts());
        let elsewhere = self.deployment.as_ref().is_some_and(|r| !r.leads(&key.0));
        let Some(t) = self.running.get_mut(key) else {
            return;
        };
        // Without a held region lease the shim is not told to go on: it stops the attempt
        // at its deadline, before any other region may run the job again.
        if may_run {
            let _ = t.handle.extend();
        }
        if cancel && !t.cancel_sent {
            let _ = t.handle.cancel();
            t.cancel_sent = true;
        }
        let outcome = match t.handle.poll() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(job = %t.job_id, "attempt's shim: {e}");
                Some(Outcome::Fenced)
            }
        };
        match outcome {
            None => {
                if t.logs_sent.elapsed() >= LOG_UPLOAD_EVERY {
                    t.logs_sent = Instant::now();
                    let (ws, dir, workdir) =
                        (t.ws.clone(), t.artifact_dir.clone(), t.workdir.clone());
                    // While it runs, the logs go up as they are (the final copy replaces them).
                    if let Ok(ops) = self.upload_logs(rt, &ws, &dir, &workdir) {
                        let _ = self
                            .store
                            .write(&ws, PRINCIPAL, |_| Ok(Decision::changes((), ops.clone())));
                    }
                }
            }
            Some(o) if elsewhere => {
                let t = self.running.remove(key).expect("tracked");
                self.revoke(&t);
                let (outcome, exit_code) = crate::api::jobs::outcome_name(&o);
                self.reports.push(Report {
                    ws: t.ws.clone(),
                    job_id: t.job_id.clone(),
                    attempt: t.attempt,
                    outcome,
                    exit_code,
                    stdout: log_tail(&t.workdir.join("stdout.txt")),
                    stderr: log_tail(&t.workdir.join("stderr.txt")),
                });
            }
            Some(o) => {
                let t = self.running.remove(key).expect("tracked");
                self.revoke(&t);
                let (ws, job_id, dir, workdir) = (
                    t.ws.clone(),
                    t.job_id.clone(),
                    t.artifact_dir.clone(),
                    t.workdir.clone(),
                );
                if let Err(e) =
                    self.finish_with_logs(rt, &ws, &job_id, t.attempt, &dir, &workdir, o)
                {
                    // Not the leader any more: the leader that follows recognises the attempt.
                    tracing::warn!(workspace = %ws, job = %job_id, "could not record the attempt's end: {e}");
                }
            }
        }
    }

    /// The attempt's token is of no use once it ended.
    fn revoke(&self, t: &Tracked) {
        if let Some(id) = &t.token_id {
            if let Err(e) = crate::api::access::revoke_token(&self.store, PRINCIPAL, id, None) {
                // It expires by itself (see `start`).
                tracing::warn!(job = %t.job_id, "could not revoke the attempt's token: {e}");
            }
        }
    }

    /// stdout.txt and stderr.txt of the working folder, copied to the run's artifacts; the
    /// `PutArtifact` events to write for them.
    fn upload_logs(
        &self,
        rt: &tokio::runtime::Handle,
        ws: &str,
        artifact_dir: &str,
        workdir: &std::path::Path,
    ) -> Result<Vec<Op>, MlflowError> {
        let mut ops = Vec::new();
        for file in ["stdout.txt", "stderr.txt"] {
            let Ok(bytes) = std::fs::read(workdir.join(file)) else {
                continue;
            };
            let path = format!("{}/{file}", artifact_dir.trim_end_matches('/'));
            let body =
                futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
            let (size, sha256) = rt.block_on(self.artifacts.put(ws, &path, body))?;
            ops.push(Op::PutArtifact { path, size, sha256 });
        }
        Ok(ops)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_with_logs(
        &self,
        rt: &tokio::runtime::Handle,
        ws: &str,
        job_id: &str,
        attempt: i64,
        artifact_dir: &str,
        workdir: &std::path::Path,
        outcome: Outcome,
    ) -> Result<(), MlflowError> {
        let logs = self
            .upload_logs(rt, ws, artifact_dir, workdir)
            .unwrap_or_default();
        self.finish(ws, job_id, attempt, Some(logs), outcome)
    }

    /// Records how an attempt ended, the job's next state and the run's status, in one write.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        ws: &str,
        job_id: &str,
        attempt: i64,
        logs: Option<Vec<Op>>,
        outcome: Outcome,
    ) -> Result<(), MlflowError> {
        let (name, exit_code) = crate::api::jobs::outcome_name(&outcome);
        let time = self.store.now_ms();
        let logs = logs.unwrap_or_default();
        self.store.write(ws, PRINCIPAL, |tx| {
            crate::api::jobs::finish_decision(
                tx,
                ws,
                job_id,
                attempt,
                name,
                exit_code,
                logs.clone(),
                time,
            )
        })?;
        Ok(())
    }

    /// An attempt that ended in this region while another leads its workspace (after a
    /// planned switchover): its end and its logs go to the leader, which records them.
    fn report(&self, r: &Report) -> Result<(), MlflowError> {
        let region = self
            .deployment
            .as_ref()
            .ok_or_else(|| MlflowError::internal("no deployment"))?;
        let leader = region.forward_target(&r.ws).ok_or_else(|| {
            MlflowError::unavailable(format!("no other region leads '{}' now", r.ws))
        })?;
        let url = format!(
            "{leader}/api/tandem/v1/workspaces/{}/jobs/{}/attempts/{}/report",
            r.ws, r.job_id, r.attempt
        );
        let body = serde_json::json!({ "outcome": r.outcome, "exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr });
        let client = region.internal().clone();
        let rt = tokio::runtime::Handle::current();
        let resp = rt
            .block_on(async move { client.post(url).json(&body).send().await })
            .map_err(|e| MlflowError::unavailable(e.to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(MlflowError::unavailable(format!(
                "the leader answered {}",
                resp.status()
            )))
        }
    }
}

/// An attempt's end, to be recorded by the leader of its workspace.
struct Report {
    ws: String,
    job_id: String,
    attempt: i64,
    outcome: &'static str,
    exit_code: Option<i64>,
    stdout: String,
    stderr: String,
}

/// The last `MAX_REPORTED_LOG` bytes of a log file, as text.
fn log_tail(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes
        .len()
        .saturating_sub(crate::api::jobs::MAX_REPORTED_LOG);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
