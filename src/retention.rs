//! Deleted workspaces, experiments, runs, logged models, registered models, model versions,
//! environments and data assets stay restorable for the workspace's retention period (7 to 90
//! days, default 14), then a purge removes them for good. Purge protection, once on, cannot be
//! switched off, and while it is on nothing is purged before its retention ends. Purges are
//! events in the change log like every other change, so replicas and restores agree.

use crate::store::{queries, Decision, Result, Store};
use tandem_core::access::Scope;
use tandem_core::{MlflowError, Op};

pub const MIN_DAYS: u32 = 7;
pub const MAX_DAYS: u32 = 90;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Retention {
    pub days: u32,
    pub purge_protection: bool,
}

pub fn get(store: &Store, ws: &str) -> Result<Retention> {
    store.read(|tx| {
        let r = tx
            .query_one(
                "SELECT retention_days, purge_protection FROM workspaces WHERE name = ?",
                &[ws.into()],
            )?
            .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' not found.")))?;
        Ok(Retention {
            days: r.int(0) as u32,
            purge_protection: r.int(1) != 0,
        })
    })
}

/// Changes the retention period and/or switches purge protection on.
pub fn set(
    store: &Store,
    ws: &str,
    principal: &str,
    days: Option<u32>,
    purge_protection: Option<bool>,
) -> Result<Retention> {
    if let Some(d) = days {
        if !(MIN_DAYS..=MAX_DAYS).contains(&d) {
            return Err(MlflowError::invalid(format!(
                "Retention must be between {MIN_DAYS} and {MAX_DAYS} days, got {d}."
            ))
            .into());
        }
    }
    crate::api::access::check_lock(store, "retention/write", &Scope::Workspace(ws.to_owned()))?;
    let time = store.now_ms();
    store.write(ws, principal, |tx| {
        let r = tx
            .query_one("SELECT retention_days, purge_protection FROM workspaces WHERE name = ?", &[ws.into()])?
            .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' not found.")))?;
        let current = Retention { days: r.int(0) as u32, purge_protection: r.int(1) != 0 };
        if current.purge_protection && purge_protection == Some(false) {
            return Err(MlflowError::invalid(format!("Purge protection is on for workspace '{ws}' and cannot be switched off.")).into());
        }
        if current.purge_protection && days.is_some_and(|d| d < current.days) {
            return Err(MlflowError::invalid(format!("Purge protection is on for workspace '{ws}': its retention cannot be shortened below {} days.", current.days)).into());
        }
        let next = Retention { days: days.unwrap_or(current.days), purge_protection: purge_protection.unwrap_or(current.purge_protection) };
        if next == current {
            return Ok(Decision::no_change(current));
        }
        Ok(Decision::change(next, Op::SetRetention { days: next.days, purge_protection: next.purge_protection, time }))
    })
}

/// What a purge removed.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Purged {
    /// The workspace itself (deleted, past its retention).
    pub workspace: bool,
    pub experiments: Vec<String>,
    pub runs: Vec<String>,
    pub logged_models: Vec<String>,
    pub registered_models: Vec<String>,
    /// "name/version"
    pub model_versions: Vec<String>,
    /// Versions of environments and data assets: "kind:name/version".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<String>,
    /// Secrets (every version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Traces deleted on their own (a purged experiment's go with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<String>,
}

impl Purged {
    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }

    pub fn describe(&self) -> String {
        if self.workspace {
            return "the workspace".into();
        }
        format!(
            "{} experiments, {} runs, {} logged models, {} registered models, {} model versions, {} environment and data-asset versions, {} secrets, {} traces",
            self.experiments.len(),
            self.runs.len(),
            self.logged_models.len(),
            self.registered_models.len(),
            self.model_versions.len(),
            self.assets.len(),
            self.secrets.len(),
            self.traces.len()
        )
    }
}

fn ids(tx: &mut dyn crate::store::Tx, sql: &str, ws: &str, cutoff: i64) -> Result<Vec<String>> {
    Ok(tx
        .query(sql, &[ws.into(), cutoff.into()])?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// Purges what was deleted longer ago than the retention period (`now_ms` from the store's
/// clock), or, with `immediately`, everything deleted, which purge protection refuses.
pub fn purge(store: &Store, ws: &str, principal: &str, immediately: bool) -> Result<Purged> {
    // Locks hold here as at the HTTP edge: the CLI and the background purger come this way.
    crate::api::access::check_lock(store, "workspaces/delete", &Scope::Workspace(ws.to_owned()))?;
    let access = store.read(queries::access_state)?;
    let locked = |scope: Scope, action: &str| access.lock_refusing(action, &scope).is_some();
    let exp_scope = |e: &str| Scope::Experiment(ws.to_owned(), e.to_owned());
    let model_scope = |m: &str| Scope::Model(ws.to_owned(), m.to_owned());
    let now = store.now_ms();
    store.write(ws, principal, |tx| {
        let r = tx
            .query_one("SELECT retention_days, purge_protection, deleted_time FROM workspaces WHERE name = ?", &[ws.into()])?
            .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' not found.")))?;
        let (days, protected, ws_deleted) = (r.int(0), r.int(1) != 0, r.opt_int(2));
        if immediately && protected {
            return Err(MlflowError::invalid(format!("Purge protection is on for workspace '{ws}': deleted objects are purged only after {days} days.")).into());
        }
        let cutoff = if immediately { i64::MAX } else { now - days * DAY_MS };
        if let Some(deleted) = ws_deleted {
            // A deleted workspace goes whole, or waits whole.
            return Ok(if deleted <= cutoff { Decision::change(Purged { workspace: true, ..Default::default() }, Op::PurgeWorkspace {}) } else { Decision::no_change(Purged::default()) });
        }
        let experiments = ids(tx, "SELECT experiment_id FROM experiments WHERE workspace = ? AND lifecycle_stage = 'deleted' AND deleted_time <= ? ORDER BY experiment_id", ws, cutoff)?;
        // Runs and logged models deleted on their own (a deleted experiment's go with it).
        let runs = ids(
            tx,
            "SELECT r.run_id FROM runs r JOIN experiments e ON e.workspace = r.workspace AND e.experiment_id = r.experiment_id \
             WHERE r.workspace = ? AND r.lifecycle_stage = 'deleted' AND r.deleted_time <= ? AND e.lifecycle_stage = 'active' ORDER BY r.run_id",
            ws,
            cutoff,
        )?;
        let logged_models = ids(
            tx,
            "SELECT m.model_id FROM logged_models m JOIN experiments e ON e.workspace = m.workspace AND e.experiment_id = m.experiment_id \
             WHERE m.workspace = ? AND m.lifecycle_stage = 'deleted' AND m.deleted_time <= ? AND e.lifecycle_stage = 'active' ORDER BY m.model_id",
            ws,
            cutoff,
        )?;
        let registered_models = ids(tx, "SELECT name FROM registered_models WHERE workspace = ? AND deleted_time <= ? ORDER BY name", ws, cutoff)?;
        // Versions deleted on their own (a deleted model's go with it).
        let versions: Vec<(String, i64)> = tx
            .query(
                "SELECT v.name, v.version FROM model_versions v JOIN registered_models m ON m.workspace = v.workspace AND m.name = v.name \
                 WHERE v.workspace = ? AND v.deleted_time <= ? AND m.deleted_time IS NULL ORDER BY v.name, v.version",
                &[ws.into(), cutoff.into()],
            )?
            .iter()
            .map(|r| (r.text(0), r.int(1)))
            .collect();
        let assets: Vec<(String, String, i64)> = tx
            .query("SELECT kind, name, version FROM assets WHERE workspace = ? AND deleted_time <= ? ORDER BY kind, name, version", &[ws.into(), cutoff.into()])?
            .iter()
            .map(|r| (r.text(0), r.text(1), r.int(2)))
            .collect();
        let secrets: Vec<(String, String)> = tx
            .query("SELECT secret_id, name FROM secrets WHERE workspace = ? AND deleted_time <= ? ORDER BY name", &[ws.into(), cutoff.into()])?
            .iter()
            .map(|r| (r.text(0), r.text(1)))
            .collect();
        let mut traces = ids(
            tx,
            "SELECT t.trace_id FROM traces t JOIN experiments e ON e.workspace = t.workspace AND e.experiment_id = t.experiment_id \
             WHERE t.workspace = ? AND t.deleted_time <= ? AND e.lifecycle_stage = 'active' ORDER BY t.trace_id",
            ws,
            cutoff,
        )?;
        // Objects under a lock narrower than the workspace wait until it is lifted.
        if access.has_narrow_lock_in(ws) {
            let mut kept = Vec::new();
            for t in traces.drain(..) {
                let e = tx
                    .query_one("SELECT experiment_id FROM traces WHERE workspace = ? AND trace_id = ?", &[ws.into(), t.as_str().into()])?
                    .map(|r| r.text(0))
                    .unwrap_or_default();
                if !locked(exp_scope(&e), "traces/delete") {
                    kept.push(t);
                }
            }
            traces = kept;
        }
        let (mut experiments, mut runs, mut logged_models, mut registered_models, mut versions) = (experiments, runs, logged_models, registered_models, versions);
        if access.has_narrow_lock_in(ws) {
            experiments.retain(|e| !locked(exp_scope(e), "experiments/delete"));
            let mut keep = |kind, id: &str| -> Result<bool> {
                Ok(match queries::experiment_of(tx, ws, kind, id)? {
                    Some(e) => !locked(exp_scope(&e), "runs/delete"),
                    None => true,
                })
            };
            let mut kept = Vec::new();
            for r in runs.drain(..) {
                if keep(queries::ObjectKey::Run, &r)? {
                    kept.push(r);
                }
            }
            runs = kept;
            let mut kept = Vec::new();
            for m in logged_models.drain(..) {
                if keep(queries::ObjectKey::LoggedModel, &m)? {
                    kept.push(m);
                }
            }
            logged_models = kept;
            registered_models.retain(|m| !locked(model_scope(m), "models/delete"));
            versions.retain(|(m, _)| !locked(model_scope(m), "models/delete"));
        }
        let mut ops: Vec<Op> = experiments.iter().map(|e| Op::PurgeExperiment { experiment_id: e.clone() }).collect();
        ops.extend(runs.iter().map(|r| Op::PurgeRun { run_id: r.clone() }));
        ops.extend(logged_models.iter().map(|m| Op::PurgeLoggedModel { model_id: m.clone() }));
        ops.extend(registered_models.iter().map(|n| Op::PurgeRegisteredModel { name: n.clone() }));
        ops.extend(versions.iter().map(|(n, v)| Op::PurgeModelVersion { name: n.clone(), version: *v }));
        ops.extend(assets.iter().map(|(kind, name, version)| Op::PurgeAsset { kind: kind.clone(), name: name.clone(), version: *version }));
        let model_versions = versions.iter().map(|(n, v)| format!("{n}/{v}")).collect();
        let assets = assets.iter().map(|(k, n, v)| format!("{k}:{n}/{v}")).collect();
        ops.extend(secrets.iter().map(|(id, _)| Op::PurgeSecret { secret_id: id.clone() }));
        let secrets = secrets.into_iter().map(|(_, n)| n).collect();
        if !traces.is_empty() {
            ops.push(Op::PurgeTraces { trace_ids: traces.clone() });
        }
        Ok(Decision::changes(Purged { workspace: false, experiments, runs, logged_models, registered_models, model_versions, assets, secrets, traces }, ops))
    })
}

/// Purges every workspace's expired deleted objects every `interval`, until the process ends.
pub fn spawn_purger(store: Store, interval: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let s = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                // Deleted workspaces too: they are purged whole once their retention passes.
                let names: Vec<String> = s.read(|tx| Ok(tx.query("SELECT name FROM workspaces ORDER BY name", &[])?.iter().map(|r| r.text(0)).collect())).unwrap_or_default();
                for name in names {
                    match purge(&s, &name, "tandem-purger", false) {
                        Ok(p) if !p.is_empty() => tracing::info!(workspace = %name, "purged past retention: {}", p.describe()),
                        Ok(_) => {}
                        // A standby region cannot write; its leader purges.
                        Err(e) => tracing::debug!(workspace = %name, "purge: {e}"),
                    }
                }
            })
            .await;
        }
    });
}
