//! Deleted experiments and runs stay restorable for the workspace's retention period (7 to 90
//! days, default 14), then a purge removes them for good. Purge protection, once on, cannot be
//! switched off, and while it is on nothing is purged before its retention ends. Purges are
//! events in the change log like every other change, so replicas and restores agree.

use crate::store::{queries, Decision, Result, Store};
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
            .query_one("SELECT retention_days, purge_protection FROM workspaces WHERE name = ?", &[ws.into()])?
            .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' not found.")))?;
        Ok(Retention { days: r.int(0) as u32, purge_protection: r.int(1) != 0 })
    })
}

/// Changes the retention period and/or switches purge protection on.
pub fn set(store: &Store, ws: &str, principal: &str, days: Option<u32>, purge_protection: Option<bool>) -> Result<Retention> {
    if let Some(d) = days {
        if !(MIN_DAYS..=MAX_DAYS).contains(&d) {
            return Err(MlflowError::invalid(format!("Retention must be between {MIN_DAYS} and {MAX_DAYS} days, got {d}.")).into());
        }
    }
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
    pub experiments: Vec<String>,
    pub runs: Vec<String>,
}

/// Purges what was deleted longer ago than the retention period (`now_ms` from the store's
/// clock), or, with `immediately`, everything deleted, which purge protection refuses.
pub fn purge(store: &Store, ws: &str, principal: &str, immediately: bool) -> Result<Purged> {
    let now = store.now_ms();
    store.write(ws, principal, |tx| {
        let r = tx
            .query_one("SELECT retention_days, purge_protection FROM workspaces WHERE name = ?", &[ws.into()])?
            .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' not found.")))?;
        let (days, protected) = (r.int(0), r.int(1) != 0);
        if immediately && protected {
            return Err(MlflowError::invalid(format!("Purge protection is on for workspace '{ws}': deleted objects are purged only after {days} days.")).into());
        }
        let cutoff = if immediately { i64::MAX } else { now - days * DAY_MS };
        let experiments: Vec<String> = tx
            .query("SELECT experiment_id FROM experiments WHERE workspace = ? AND lifecycle_stage = 'deleted' AND deleted_time <= ? ORDER BY experiment_id", &[ws.into(), cutoff.into()])?
            .iter()
            .map(|r| r.text(0))
            .collect();
        // Runs deleted on their own (a deleted experiment's runs go with it).
        let runs: Vec<String> = tx
            .query(
                "SELECT r.run_id FROM runs r JOIN experiments e ON e.workspace = r.workspace AND e.experiment_id = r.experiment_id \
                 WHERE r.workspace = ? AND r.lifecycle_stage = 'deleted' AND r.deleted_time <= ? AND e.lifecycle_stage = 'active' ORDER BY r.run_id",
                &[ws.into(), cutoff.into()],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
        let mut ops: Vec<Op> = experiments.iter().map(|e| Op::PurgeExperiment { experiment_id: e.clone() }).collect();
        ops.extend(runs.iter().map(|r| Op::PurgeRun { run_id: r.clone() }));
        Ok(Decision::changes(Purged { experiments, runs }, ops))
    })
}

/// Purges every workspace's expired deleted objects every `interval`, until the process ends.
pub fn spawn_purger(store: Store, interval: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let s = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for ws in s.read(queries::workspaces).unwrap_or_default() {
                    let name = ws["name"].as_str().unwrap_or_default().to_owned();
                    match purge(&s, &name, "tandem-purger", false) {
                        Ok(p) if !p.experiments.is_empty() || !p.runs.is_empty() => tracing::info!(workspace = %name, "purged {} experiments and {} runs past retention", p.experiments.len(), p.runs.len()),
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
