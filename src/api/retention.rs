//! `/api/tandem/v1/workspaces/{ws}/retention|purge|undelete`: how long deleted objects stay
//! restorable, purging them, and bringing them back.

use super::{Ctx, Req};
use crate::retention;
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Result};

fn target(ctx: &Ctx, req: &Req) -> Result<Ctx> {
    // Administration of a workspace may find it deleted; it checks for itself.
    super::named_workspace(ctx, req, false)
}

pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    Ok(json!(retention::get(&t.store, &t.workspace)?))
}

pub fn set(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let days = match req.opt_i64("days")? {
        None => None,
        Some(d) => Some(u32::try_from(d).map_err(|_| {
            MlflowError::invalid(format!(
                "Retention must be between {} and {} days, got {d}.",
                retention::MIN_DAYS,
                retention::MAX_DAYS
            ))
        })?),
    };
    let protection = req.opt_bool("purge_protection")?;
    if days.is_none() && protection.is_none() {
        return Err(MlflowError::invalid(
            "Give 'days' and/or 'purge_protection'.",
        ));
    }
    Ok(json!(retention::set(
        &t.store,
        &t.workspace,
        &t.principal,
        days,
        protection
    )?))
}

pub fn purge(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let immediately = req.opt_bool("immediately")?.unwrap_or(false);
    Ok(json!(retention::purge(
        &t.store,
        &t.workspace,
        &t.principal,
        immediately
    )?))
}

/// Brings back one deleted object: the workspace itself (`"workspace": true`), an experiment
/// (with the runs deleted with it), a run, a logged model (`model_id`), a registered model
/// (`name`, with the versions deleted with it) or a model version (`name` and `version`).
pub fn undelete(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let given: Vec<&str> = ["workspace", "experiment_id", "run_id", "model_id", "name"]
        .into_iter()
        .filter(|k| req.has(k))
        .collect();
    match given.as_slice() {
        ["workspace"] => undelete_workspace(&t),
        ["experiment_id"] => super::tracking::restore_experiment(&t, req),
        ["run_id"] => super::tracking::restore_run(&t, req),
        ["model_id"] => super::logged_models::restore(&t, req),
        ["name"] if req.has("version") => super::registry::restore_model_version(&t, req),
        ["name"] => super::registry::restore_registered_model(&t, req),
        _ => Err(MlflowError::invalid("Give exactly one of 'workspace' (true), 'experiment_id', 'run_id', 'model_id' and 'name' (with 'version' for a model version).")),
    }
}

fn undelete_workspace(t: &Ctx) -> Result<Json> {
    let time = t.now();
    t.store
        .write(
            &t.workspace,
            &t.principal,
            |tx| match crate::store::queries::workspace_deleted(tx, &t.workspace)? {
                Some(_) => Ok(crate::store::Decision::change(
                    (),
                    tandem_core::Op::RestoreWorkspace { time },
                )),
                None if crate::store::queries::workspace_exists(tx, &t.workspace)? => Err(
                    MlflowError::invalid(format!("Workspace '{}' is not deleted.", t.workspace))
                        .into(),
                ),
                None => Err(MlflowError::not_found(format!(
                    "Workspace '{}' not found.",
                    t.workspace
                ))
                .into()),
            },
        )
        .map_err(MlflowError::from)?;
    Ok(json!({}))
}
