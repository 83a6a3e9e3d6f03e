//! `/api/tandem/v1/workspaces/{ws}/changes`: the change log, read in order from any point.
//! Replication, backup and audit consume exactly this.

use super::{Ctx, Req};
use crate::store::queries;
use serde_json::{json, Value as Json};
use tandem_core::event::verify_chain;
use tandem_core::{MlflowError, Result};

pub const DEFAULT_PAGE: usize = 1000;
pub const MAX_PAGE: usize = 10_000;

fn workspace(req: &Req) -> Result<String> {
    let ws = req.str("workspace_name")?;
    if ws != super::workspaces::DEFAULT_WORKSPACE && ws != tandem_core::access::ACCESS_WORKSPACE {
        super::workspaces::validate_name(&ws)?;
    }
    Ok(ws)
}

pub fn list(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = workspace(req)?;
    let after = req.opt_i64("after")?.unwrap_or(0);
    if after < 0 {
        return Err(MlflowError::invalid(format!("Invalid value {after} for parameter 'after' supplied: expected a sequence number, 0 or more")));
    }
    let limit = req.opt_i64("limit")?.unwrap_or(DEFAULT_PAGE as i64);
    if limit <= 0 || limit as usize > MAX_PAGE {
        return Err(MlflowError::invalid(format!(
            "Invalid value {limit} for parameter 'limit' supplied: expected 1 to {MAX_PAGE}"
        )));
    }
    let (head, base, events) = ctx.read(|tx| {
        let head = queries::log_head(tx, &ws)?;
        let base = queries::log_base(tx, &ws)?;
        let events = queries::changes(tx, &ws, after as u64, limit as usize)?;
        Ok((head, base, events))
    })?;
    if (after as u64) < base {
        return Err(MlflowError::new(
            tandem_core::ErrorCode::InvalidState,
            format!("this store's log of '{ws}' begins at a snapshot of event {base} (restored from a compacted archive); read events after {base}, or the archive for earlier history"),
        ));
    }
    let head =
        head.ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' has no change log.")))?;
    let mut out = json!({
        "workspace": ws,
        "head_seq": head.seq,
        "head_checksum": head.checksum,
        "events": events,
    });
    if let Some(last) = events.last() {
        if last.seq < head.seq {
            out["next_after"] = last.seq.into();
        }
    }
    Ok(out)
}

/// Re-reads the whole log and checks every link of the chain.
pub fn verify(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = workspace(req)?;
    let (mut seq, mut sum, mut hlc) = (
        0u64,
        tandem_core::event::GENESIS_CHECKSUM.to_owned(),
        tandem_core::Hlc(0),
    );
    let head = ctx
        .read(|tx| queries::log_head(tx, &ws))?
        .ok_or_else(|| MlflowError::not_found(format!("Workspace '{ws}' has no change log.")))?;
    // A log installed from a snapshot is verified from the snapshot's last event on.
    let base = ctx.read(|tx| queries::log_base(tx, &ws))?;
    if base > 0 {
        let e = ctx
            .read(|tx| queries::changes(tx, &ws, base - 1, 1))?
            .pop()
            .ok_or_else(|| {
                MlflowError::new(
                    tandem_core::ErrorCode::DataLoss,
                    format!("the snapshot's last event {base} is missing"),
                )
            })?;
        (seq, sum, hlc) = (e.seq, e.checksum, e.hlc);
    }
    loop {
        let batch = ctx.read(|tx| queries::changes(tx, &ws, seq, MAX_PAGE))?;
        if batch.is_empty() {
            break;
        }
        if let Err(e) = verify_chain(seq, &sum, hlc, &batch) {
            return Ok(
                json!({ "workspace": ws, "ok": false, "verified_through": seq, "head_seq": head.seq, "error": e.to_string() }),
            );
        }
        let last = batch.last().expect("non-empty");
        (seq, sum, hlc) = (last.seq, last.checksum.clone(), last.hlc);
    }
    let ok = seq == head.seq && sum == head.checksum;
    let mut out =
        json!({ "workspace": ws, "ok": ok, "verified_through": seq, "head_seq": head.seq });
    if !ok {
        out["error"] = json!("the log's last event does not match the recorded head");
    }
    Ok(out)
}

/// Writes one operation as a new event: how an operator re-applies a diverged event (the op
/// keeps its globally unique IDs). Refused if it conflicts with the current state.
pub fn apply(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = workspace(req)?;
    let name = req.str("op")?;
    let payload = req.str("payload")?;
    let op = tandem_core::Op::decode(&name, &payload)
        .map_err(|e| MlflowError::invalid(format!("not an operation: {e}")))?;
    if matches!(
        op,
        tandem_core::Op::CreateWorkspace { .. } | tandem_core::Op::DeleteWorkspace { .. }
    ) {
        return Err(MlflowError::invalid(
            "workspace creation and deletion are not re-applied; use the workspace API",
        ));
    }
    let target = Ctx {
        workspace: ws,
        ..ctx.clone()
    };
    let seq = target.write(|tx| {
        let head = crate::store::queries::log_head(tx, &target.workspace)?
            .map(|h| h.seq)
            .unwrap_or(0);
        Ok(crate::store::Decision::change(head + 1, op.clone()))
    })?;
    Ok(serde_json::json!({ "workspace": target.workspace, "seq": seq }))
}
