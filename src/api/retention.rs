//! `/api/tandem/v1/workspaces/{ws}/retention|purge|undelete`: how long deleted objects stay
//! restorable, purging them, and bringing them back.

use super::{Ctx, Req};
use crate::retention;
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Result};

fn target(ctx: &Ctx, req: &Req) -> Result<Ctx> {
    let ws = req.str("workspace_name")?;
    if ws != super::workspaces::DEFAULT_WORKSPACE {
        super::workspaces::validate_name(&ws)?;
    }
    Ok(Ctx { workspace: ws, ..ctx.clone() })
}

pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    Ok(json!(retention::get(&t.store, &t.workspace)?))
}

pub fn set(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let days = match req.opt_i64("days")? {
        None => None,
        Some(d) => Some(u32::try_from(d).map_err(|_| MlflowError::invalid(format!("Retention must be between {} and {} days, got {d}.", retention::MIN_DAYS, retention::MAX_DAYS)))?),
    };
    let protection = req.opt_bool("purge_protection")?;
    if days.is_none() && protection.is_none() {
        return Err(MlflowError::invalid("Give 'days' and/or 'purge_protection'."));
    }
    Ok(json!(retention::set(&t.store, &t.workspace, &t.principal, days, protection)?))
}

pub fn purge(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let immediately = req.opt_bool("immediately")?.unwrap_or(false);
    Ok(json!(retention::purge(&t.store, &t.workspace, &t.principal, immediately)?))
}

/// Restores a deleted experiment (with the runs deleted with it) or a deleted run.
pub fn undelete(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    match (req.has("experiment_id"), req.has("run_id")) {
        (true, false) => super::tracking::restore_experiment(&t, req),
        (false, true) => super::tracking::restore_run(&t, req),
        _ => Err(MlflowError::invalid("Give exactly one of 'experiment_id' and 'run_id'.")),
    }
}
