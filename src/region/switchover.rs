//! Moving a workspace's leadership on purpose: `tandem failover --workspace W --to REGION`.
//! Runs on the target region. Planned: the leader stops accepting writes, this region
//! catches up to the leader's last event, then claims the next epoch: zero loss. Forced
//! (the leader is unreachable): claims the next epoch at once and reports how many events
//! the old leader had that this region does not.

use super::{take_over as claim_next, RegionState, Role};
use crate::http::AppState;
use crate::store::queries;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::{ErrorCode, MlflowError};

fn unavailable(m: String) -> MlflowError {
    MlflowError::new(ErrorCode::TemporarilyUnavailable, m)
}

async fn head(state: &AppState, ws: &str) -> u64 {
    let (s, w) = (state.store.clone(), ws.to_owned());
    tokio::task::spawn_blocking(move || s.read(|tx| queries::log_head(tx, &w))).await.ok().and_then(|r| r.ok()).flatten().map(|h| h.seq).unwrap_or(0)
}

pub async fn take_over(state: &AppState, region: &Arc<RegionState>, ws: &str, force: bool) -> Result<Value, MlflowError> {
    if !region.manages(ws) {
        return Err(MlflowError::not_found(format!("workspace '{ws}' is not in this deployment")));
    }
    let status = region.status(&state.store).into_iter().find(|s| s.workspace == ws).expect("managed workspace has a status");
    if status.role == Role::Leader {
        return Ok(json!({ "workspace": ws, "to": region.name, "epoch": status.epoch, "already_leader": true, "events_possibly_lost": 0 }));
    }
    let from = status.leader.clone().unwrap_or_default();
    let leader_url = region.deployment.region(&from).map(|r| r.url.clone());
    if force {
        // Report what is at stake before and after.
        let before = head(state, ws).await;
        let leader_head = match &leader_url {
            Some(url) => leader_head(state, url, ws).await.unwrap_or(status.replication_lag_events.unwrap_or(0) + before),
            None => before,
        };
        let lost = leader_head.saturating_sub(before);
        let epoch = claim_next(region, &state.store, ws, "forced failover", lost).await?;
        return Ok(json!({ "workspace": ws, "from": from, "to": region.name, "epoch": epoch, "forced": true, "head_seq": before, "old_leader_head_seq": leader_head, "events_possibly_lost": lost }));
    }
    let leader_url = leader_url.ok_or_else(|| unavailable(format!("no leader is known for '{ws}'; use --force if it is gone")))?;
    // 1. The leader stops accepting writes and says where its log ends.
    let drained: Value = state
        .http
        .post(format!("{leader_url}/api/tandem/v1/workspaces/{ws}/drain"))
        .send()
        .await
        .map_err(|e| unavailable(format!("the leader ({from}) did not answer: {e}; use --force if it is gone")))?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let target = drained["head_seq"].as_u64().ok_or_else(|| unavailable(format!("the leader refused to drain: {drained}")))?;
    // 2. Catch up to it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if head(state, ws).await >= target {
            break;
        }
        if Instant::now() > deadline {
            let _ = state.http.post(format!("{leader_url}/api/tandem/v1/workspaces/{ws}/undrain")).send().await;
            return Err(unavailable(format!("could not catch up with {from} (at {target}) within 60 s; switchover abandoned, {from} still leads")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 3. Claim the next epoch; the old leader sees it and steps down.
    let epoch = claim_next(region, &state.store, ws, "switchover", 0).await?;
    Ok(json!({ "workspace": ws, "from": from, "to": region.name, "epoch": epoch, "forced": false, "head_seq": target, "events_possibly_lost": 0 }))
}

async fn leader_head(state: &AppState, url: &str, ws: &str) -> Option<u64> {
    let v: Value = state.http.get(format!("{url}/api/tandem/v1/workspaces/{ws}/changes?after=0&limit=1")).timeout(Duration::from_secs(2)).send().await.ok()?.json().await.ok()?;
    v["head_seq"].as_u64()
}
