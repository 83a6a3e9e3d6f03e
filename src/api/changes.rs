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

/// The longest audit answer; narrow the filters (or page with `after`) for more.
pub const MAX_AUDIT: usize = 10_000;

/// `GET /api/tandem/v1/workspaces/{ws}/audit`: the workspace's change log as an audit trail,
/// filtered by `principal`, `action` (`runs/delete`, or an operation name such as
/// `DeleteRun`), `object` (`run:ID`, `experiment:ID`, ..., or a prefix of one), `from` and
/// `to` (RFC 3339 or milliseconds), with the elevation each destructive event relied on
/// (read from the access log).
pub fn audit(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = workspace(req)?;
    let filter = AuditFilter::from_req(req)?;
    Ok(json!({ "workspace": ws, "events": audit_events(&ctx.store, &ws, &filter)? }))
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub object: Option<String>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub after: u64,
    pub max_results: usize,
}

impl AuditFilter {
    pub fn from_req(req: &Req) -> Result<AuditFilter> {
        let instant = |k: &str| -> Result<Option<u64>> {
            match req.opt_str(k)? {
                None => Ok(None),
                Some(t) => crate::backup::parse_instant(&t).map(Some).ok_or_else(|| {
                    MlflowError::invalid(format!(
                        "Invalid value '{t}' for parameter '{k}': use UTC RFC 3339 (2026-11-22T09:30:00Z) or milliseconds since the epoch"
                    ))
                }),
            }
        };
        let max = req.opt_i64("max_results")?.unwrap_or(1000);
        if max <= 0 || max as usize > MAX_AUDIT {
            return Err(MlflowError::invalid(format!(
                "Invalid value {max} for parameter 'max_results' supplied: expected 1 to {MAX_AUDIT}"
            )));
        }
        let after = req.opt_i64("after")?.unwrap_or(0);
        if after < 0 {
            return Err(MlflowError::invalid(
                "'after' is a sequence number, 0 or more",
            ));
        }
        Ok(AuditFilter {
            principal: req.opt_str("principal")?,
            action: req.opt_str("action")?,
            object: req.opt_str("object")?,
            from_ms: instant("from")?,
            to_ms: instant("to")?,
            after: after as u64,
            max_results: max as usize,
        })
    }
}

/// The audit trail of `ws` (shared by the API and `tandem audit`).
pub fn audit_events(store: &crate::store::Store, ws: &str, f: &AuditFilter) -> Result<Vec<Json>> {
    use tandem_core::access::ACCESS_WORKSPACE;
    use tandem_core::audit::{elevation_for, elevations, object_of, op_action};
    let read_all = |w: &str, after: u64| -> Result<Vec<tandem_core::Event>> {
        let mut out = Vec::new();
        let mut at = after;
        loop {
            let page = store
                .read(|tx| queries::changes(tx, w, at, MAX_PAGE))
                .map_err(MlflowError::from)?;
            let Some(last) = page.last() else { break };
            at = last.seq;
            let done = page.len() < MAX_PAGE;
            out.extend(page);
            if done {
                break;
            }
        }
        Ok(out)
    };
    let access_log = read_all(ACCESS_WORKSPACE, 0)?;
    let els = elevations(&access_log);
    let events = match ws == ACCESS_WORKSPACE {
        true => access_log.into_iter().filter(|e| e.seq > f.after).collect(),
        false => read_all(ws, f.after)?,
    };
    let mut out = Vec::new();
    for e in &events {
        let time = e.hlc.wall_ms();
        let action = op_action(&e.op);
        let object = object_of(e);
        let keep = f.principal.as_ref().is_none_or(|p| &e.principal == p)
            && f.action.as_ref().is_none_or(|a| a == action || a == &e.op)
            && f.object
                .as_ref()
                .is_none_or(|o| object.starts_with(o.as_str()))
            && f.from_ms.is_none_or(|t| time >= t)
            && f.to_ms.is_none_or(|t| time <= t);
        if !keep {
            continue;
        }
        let elevation = elevation_for(&els, e, time as i64).map(|el| {
            json!({ "assignment_id": el.assignment_id, "role": el.role, "scope": el.scope.render(), "until_ms": el.until_ms, "reason": el.reason })
        });
        out.push(json!({
            "seq": e.seq, "time_ms": time, "time": crate::backup::iso(time), "principal": e.principal,
            "region": e.origin, "epoch": e.epoch, "op": e.op, "action": action, "object": object,
            "elevation": elevation,
        }));
        if out.len() >= f.max_results {
            break;
        }
    }
    Ok(out)
}
