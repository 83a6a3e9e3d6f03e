//! Moving a workspace's leadership on purpose: `tandem failover --workspace W --to REGION`.
//! Runs on the target region. Planned: the leader stops accepting writes, this region
//! catches up to the leader's last event, then claims the next epoch: zero loss. Forced
//! (the leader is unreachable): claims the next epoch at once and reports how many events
//! the old leader had that this region does not.

use super::deployment::Mode;
use super::{take_over as claim_next, take_over_draining, RegionState, Role};
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
    tokio::task::spawn_blocking(move || s.read(|tx| queries::log_head(tx, &w)))
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .map(|h| h.seq)
        .unwrap_or(0)
}

pub async fn take_over(
    state: &AppState,
    region: &Arc<RegionState>,
    ws: &str,
    force: bool,
) -> Result<Value, MlflowError> {
    if !region.manages(ws) {
        return Err(MlflowError::not_found(format!(
            "workspace '{ws}' is not in this deployment"
        )));
    }
    let status = region
        .status(&state.store)
        .into_iter()
        .find(|s| s.workspace == ws)
        .expect("managed workspace has a status");
    if status.role == Role::Leader {
        return Ok(
            json!({ "workspace": ws, "to": region.name, "epoch": status.epoch, "already_leader": true, "events_possibly_lost": 0 }),
        );
    }
    let from = status.leader.clone().unwrap_or_default();
    let leader_url = region.deployment.region(&from).map(|r| r.url.clone());
    if region.mode(ws) == Mode::HotCold {
        return take_over_from_archive(state, region, ws, force, &from, leader_url.as_deref())
            .await;
    }
    if force {
        // Report what is at stake before and after.
        let before = head(state, ws).await;
        let leader_head = match &leader_url {
            Some(url) => leader_head(state, url, ws)
                .await
                .unwrap_or(status.replication_lag_events.unwrap_or(0) + before),
            None => before,
        };
        let lost = leader_head.saturating_sub(before);
        let epoch = claim_next(region, &state.store, ws, "forced failover", lost).await?;
        return Ok(
            json!({ "workspace": ws, "from": from, "to": region.name, "epoch": epoch, "forced": true, "head_seq": before, "old_leader_head_seq": leader_head, "events_possibly_lost": lost }),
        );
    }
    // 1. The leader stops accepting writes and says where its log ends.
    let (leader_url, target) = drain(state, ws, &from, leader_url.as_deref()).await?;
    // 2. Catch up to it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if head(state, ws).await >= target {
            break;
        }
        if Instant::now() > deadline {
            let _ = region
                .internal()
                .post(format!(
                    "{leader_url}/api/tandem/v1/workspaces/{ws}/undrain"
                ))
                .send()
                .await;
            return Err(unavailable(format!("could not catch up with {from} (at {target}) within 60 s; switchover abandoned, {from} still leads")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 3. Claim the next epoch; the old leader sees it and steps down.
    let epoch = claim_next(region, &state.store, ws, "switchover", 0).await?;
    Ok(
        json!({ "workspace": ws, "from": from, "to": region.name, "epoch": epoch, "forced": false, "head_seq": target, "events_possibly_lost": 0 }),
    )
}

/// Asks the leader to stop accepting writes; returns its URL and where its log ends.
async fn drain(
    state: &AppState,
    ws: &str,
    from: &str,
    leader_url: Option<&str>,
) -> Result<(String, u64), MlflowError> {
    let leader_url = leader_url
        .ok_or_else(|| {
            unavailable(format!(
                "no leader is known for '{ws}'; use --force if it is gone"
            ))
        })?
        .to_owned();
    let region = state
        .region
        .as_ref()
        .ok_or_else(|| unavailable("this server is not a region".into()))?;
    let drained: Value = region
        .internal()
        .post(format!("{leader_url}/api/tandem/v1/workspaces/{ws}/drain"))
        .send()
        .await
        .map_err(|e| {
            unavailable(format!(
                "the leader ({from}) did not answer: {e}; use --force if it is gone"
            ))
        })?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let target = drained["head_seq"]
        .as_u64()
        .ok_or_else(|| unavailable(format!("the leader refused to drain: {drained}")))?;
    Ok((leader_url, target))
}

async fn leader_head(state: &AppState, url: &str, ws: &str) -> Option<u64> {
    let region = state.region.as_ref()?;
    let v: Value = region
        .internal()
        .get(format!(
            "{url}/api/tandem/v1/workspaces/{ws}/changes?after=0&limit=1"
        ))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["head_seq"].as_u64()
}

/// Hot/cold: this region has no copy to speak of; it restores the workspace from the archive.
/// Planned, the leader stops writing and the archive catches up first (nothing lost); forced,
/// this region claims the next epoch, waits out the old leader's lease (so it has stopped
/// writing and archiving), and takes whatever the archive has: the loss is what the old
/// leader had not archived yet.
async fn take_over_from_archive(
    state: &AppState,
    region: &Arc<RegionState>,
    ws: &str,
    force: bool,
    from: &str,
    leader_url: Option<&str>,
) -> Result<Value, MlflowError> {
    let started = Instant::now();
    let url = region
        .deployment
        .archive
        .clone()
        .ok_or_else(|| unavailable("hot/cold needs the deployment's [archive]".into()))?;
    let archive = crate::backup::Archive::open(&url).map_err(|e| unavailable(e.to_string()))?;
    let archived = |e: crate::backup::BackupError| {
        unavailable(format!("archive {}: {e}", crate::config::redact(&url)))
    };
    let mut old_head = None;
    if !force {
        let (leader_url, target) = drain(state, ws, from, leader_url).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while archive.archived_through(ws).await.map_err(archived)? < target {
            if Instant::now() > deadline {
                let _ = region
                    .internal()
                    .post(format!(
                        "{leader_url}/api/tandem/v1/workspaces/{ws}/undrain"
                    ))
                    .send()
                    .await;
                return Err(unavailable(format!("the archive did not catch up with {from} (at {target}) within 60 s; switchover abandoned, {from} still leads")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        old_head = Some(target);
    } else {
        if archive.archived_through(ws).await.map_err(archived)? == 0 {
            return Err(MlflowError::invalid(format!("the archive holds nothing for '{ws}': there is nothing to restore from, so this region will not take it over")));
        }
        if let Some(url) = leader_url {
            old_head = leader_head(state, url, ws).await;
        }
    }
    // Claim the next epoch, writes held back until the workspace is restored.
    let epoch = take_over_draining(
        region,
        &state.store,
        ws,
        if force {
            "forced failover (hot/cold)"
        } else {
            "switchover (hot/cold)"
        },
        0,
        true,
    )
    .await?;
    if force {
        // The old leader may have renewed just before the claim: once a lease has passed it
        // has certainly stopped writing and archiving (it fences itself).
        tokio::time::sleep(Duration::from_millis(region.lease_ms())).await;
    }
    let claimed_ms = started.elapsed().as_millis() as u64;
    let events = archive.read_all(ws).await.map_err(archived)?;
    let last_archived_ms = events.events.last().map(|e| e.hlc.wall_ms());
    let followed = crate::restore::follow_archive(&state.store, ws, events, |_, _| {})
        .await
        .map_err(archived)?;
    // The region's own older copy is kept where sizes match: reading every byte would
    // lengthen the outage (restores check hashes).
    let sources = crate::restore::ByteSources {
        live: None,
        archive: Some((&archive, ws)),
    };
    let filled = crate::restore::restore_artifacts(
        &state.store,
        &state.artifacts,
        ws,
        None,
        sources,
        crate::restore::Keep::SameSize,
        |_| {},
    )
    .await
    .map_err(archived)?;
    let (copied, missing): (u64, Vec<String>) = (
        filled.copied,
        filled.missing.into_iter().map(|m| m.path).collect(),
    );
    region.undrain(ws);
    let lost = old_head.map(|h| h.saturating_sub(followed.head_seq));
    if let Some(l) = region.leases().get_mut(ws) {
        if let Some(f) = l.last_failover.as_mut() {
            f.events_possibly_lost = lost.unwrap_or(0);
        }
    }
    let rto_ms = started.elapsed().as_millis() as u64;
    tracing::warn!(workspace = %ws, "took over epoch {epoch} from the archive in {rto_ms} ms: {} events ({} replayed, {} kept aside as diverged), {copied} artifact files copied, {} missing", followed.head_seq, followed.replayed, followed.diverged, missing.len());
    Ok(json!({
        "workspace": ws, "from": from, "to": region.name, "epoch": epoch, "forced": force, "mode": "hot/cold",
        "head_seq": followed.head_seq, "replayed": followed.replayed, "diverged": followed.diverged,
        "artifacts_copied": copied, "artifacts_missing": missing,
        "old_leader_head_seq": old_head, "events_possibly_lost": lost,
        "last_archived_event_ms": last_archived_ms,
        "claim_ms": claimed_ms, "rto_ms": rto_ms,
    }))
}
