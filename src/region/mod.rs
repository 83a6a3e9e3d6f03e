//! A region of a multi-region deployment: leases at the witness, fencing by epoch, and
//! replication from the leader's change log. See docs/design/failover.md.
//!
//! Architecture invariant: replication reads the leader's change log over HTTP and applies it
//! with `Store::replay`, nothing else; a standby never writes except by replaying.

pub mod deployment;
pub mod front_door;
pub mod switchover;
pub mod witness;

use crate::artifacts::Artifacts;
use crate::store::{queries, Fence, Store};
use deployment::{Deployment, Mode, WriteAck};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tandem_core::{ErrorCode, Event, MlflowError};
use witness::{Witness, WitnessError};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Not yet known (just started, or the witness is unreachable).
    Unknown,
    Leader,
    Standby,
}

/// What this region knows about one workspace's leadership.
#[derive(Debug, Clone)]
struct Lease {
    role: Role,
    epoch: u64,
    leader: Option<String>,
    /// The leader may write until this instant (its own clock), if it is the leader.
    valid_until: Option<Instant>,
    /// Renewals: the next number to write, as leader; the last seen and when, as standby.
    next_renewal: u64,
    seen_renewal: u64,
    seen_progress: Instant,
    /// A planned switchover is under way: refuse writes, keep the lease.
    draining: bool,
    last_failover: Option<Failover>,
    /// Replication, as standby.
    leader_head: u64,
    caught_up_at: Instant,
    replication_error: Option<String>,
    /// Whether, since becoming standby, this region has checked its log against the
    /// leader's and found it a prefix (until then its lag is unknown, not zero).
    synced: bool,
    /// As leader with an archive: the last event archived, and when the archive last caught
    /// up with the log.
    archived_seq: Option<u64>,
    archive_caught_up_at: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub epoch: u64,
    pub to: String,
    pub reason: String,
    pub at_ms: u64,
    /// Events the old leader had that this region did not (0 for a planned switchover).
    pub events_possibly_lost: u64,
    /// For an automatic failover: how long the workspace went without a leader this region
    /// could see, from the last lease renewal it saw to its own claim.
    pub rto_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceStatus {
    pub workspace: String,
    pub mode: &'static str,
    pub role: Role,
    pub epoch: u64,
    pub leader: Option<String>,
    pub lease: &'static str,
    pub write_ack: &'static str,
    pub head_seq: u64,
    /// None while a standby has not yet compared its log with the leader's.
    pub replication_lag_events: Option<u64>,
    pub replication_lag_ms: Option<u64>,
    pub replication_error: Option<String>,
    pub last_failover: Option<Failover>,
    /// Events this region accepted that the leader never received, awaiting an operator.
    pub diverged_pending: u64,
    /// As leader with an archive: events not yet archived, and for how long the archive has
    /// been behind (a hot/cold workspace's RPO at this moment).
    pub archive_lag_events: Option<u64>,
    pub archive_lag_ms: Option<u64>,
}

pub struct RegionState {
    pub name: String,
    pub deployment: Deployment,
    pub witness: Witness,
    leases: Mutex<HashMap<String, Lease>>,
    /// The highest sequence number the standby has confirmed durable, and when it last
    /// asked for more, per workspace.
    acks: Mutex<HashMap<String, (u64, Instant)>>,
    acked: tokio::sync::Notify,
    /// Woken on every commit, for long-polling replicas.
    pub committed: tokio::sync::Notify,
    started: Instant,
    http: reqwest::Client,
    /// This region's own lease at the witness, which fences the job attempts it runs, and what
    /// it has seen of the other regions' (see `region_lease_loop`).
    region_lease: Mutex<RegionLease>,
}

/// A region's lease at the witness: `leases/_region.<name>/epoch-<incarnation>` claimed at
/// start (the incarnation is the process's start time in milliseconds, so a restarted region
/// is a new incarnation), then renewed like a workspace lease. Job attempts run only while it
/// is held (docs/design/jobs.md).
struct RegionLease {
    incarnation: u64,
    /// When the last renewal that succeeded was sent.
    renewed_sent: Option<Instant>,
    /// Other regions: what was last seen of each.
    seen: HashMap<String, Seen>,
}

/// What one region saw of another's lease.
#[derive(Clone, Copy)]
struct Seen {
    incarnation: u64,
    renewal: u64,
    /// When its renewal number last moved.
    progress: Instant,
    /// The incarnation before this one, and when it last moved.
    previous: Option<(u64, Instant)>,
}

/// The witness key of a region's lease.
fn region_lease_key(region: &str) -> String {
    format!("_region.{region}")
}

impl RegionState {
    pub fn new(
        name: &str,
        deployment: Deployment,
        witness: Witness,
        key: Option<String>,
    ) -> Arc<RegionState> {
        let ca = deployment.ca_pem().ok().flatten();
        let leases = deployment
            .workspaces
            .iter()
            .map(|w| {
                (
                    w.name.clone(),
                    Lease {
                        role: Role::Unknown,
                        epoch: 0,
                        leader: None,
                        valid_until: None,
                        next_renewal: 1,
                        seen_renewal: 0,
                        seen_progress: Instant::now(),
                        draining: false,
                        last_failover: None,
                        leader_head: 0,
                        caught_up_at: Instant::now(),
                        replication_error: None,
                        synced: false,
                        archived_seq: None,
                        archive_caught_up_at: Instant::now(),
                    },
                )
            })
            .collect();
        Arc::new(RegionState {
            name: name.to_owned(),
            deployment,
            witness,
            leases: Mutex::new(leases),
            acks: Mutex::new(HashMap::new()),
            acked: tokio::sync::Notify::new(),
            committed: tokio::sync::Notify::new(),
            started: Instant::now(),
            http: internal_client(key.as_deref(), ca.as_deref(), Some(Duration::from_secs(30))),
            region_lease: Mutex::new(RegionLease {
                incarnation: now_ms(),
                renewed_sent: None,
                seen: HashMap::new(),
            }),
        })
    }

    fn region_lease(&self) -> std::sync::MutexGuard<'_, RegionLease> {
        self.region_lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this region may keep job attempts running: its region lease was renewed within
    /// the write window (the same arithmetic as a workspace lease).
    pub fn may_run_attempts(&self) -> bool {
        self.region_lease()
            .renewed_sent
            .is_some_and(|s| Instant::now() < s + self.write_window())
    }

    /// Whether incarnation `incarnation` of region `other` is certainly gone, as far as job
    /// attempts are concerned: its lease was last renewed more than `lease + safety + grace`
    /// ago (as a standby judges a workspace leader, plus `grace`: how long an attempt may
    /// outlive its region's last renewal). A later incarnation alone does not prove it: the
    /// earlier one may be frozen rather than dead, so its own last renewal decides.
    pub fn incarnation_gone(&self, other: &str, incarnation: u64, grace: Duration) -> bool {
        let after = self.takeover_after() + grace;
        match self.region_lease().seen.get(other) {
            Some(s) if s.incarnation == incarnation => s.progress.elapsed() >= after,
            Some(s) => match s.previous {
                Some((inc, at)) if inc == incarnation => at.elapsed() >= after,
                // Not seen since this region started watching: gone once this region has
                // watched for as long as the lease arithmetic asks.
                _ => self.started.elapsed() >= after,
            },
            None => self.started.elapsed() >= after * 2,
        }
    }

    /// This process's incarnation (see `RegionLease`).
    pub fn incarnation(&self) -> u64 {
        self.region_lease().incarnation
    }

    /// How long a job attempt may run without its shim hearing from this region: a lease.
    pub fn attempt_lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms())
    }

    /// Whether this region leads `ws` and may write it now.
    pub fn leads(&self, ws: &str) -> bool {
        self.holds_lease(ws)
    }

    /// A client for calls to the other region and to itself, presenting the deployment's
    /// key. Never used to forward a client's request (those carry the client's own
    /// credentials).
    pub fn internal(&self) -> &reqwest::Client {
        &self.http
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease_ms(&self) -> u64 {
        self.deployment.timing.lease_ms
    }

    /// How long a leader may write after sending a renewal (see `Timing::safety_ms`).
    fn write_window(&self) -> Duration {
        let t = &self.deployment.timing;
        Duration::from_millis(t.lease_ms - t.safety_ms())
    }

    /// How long a standby waits after the last renewal it saw before it claims the next epoch.
    fn takeover_after(&self) -> Duration {
        let t = &self.deployment.timing;
        Duration::from_millis(t.lease_ms + t.safety_ms())
    }

    /// The leader's URL for a workspace, if another region leads it.
    pub fn forward_target(&self, ws: &str) -> Option<String> {
        let leases = self.leases();
        let l = leases.get(ws)?;
        match (&l.role, &l.leader) {
            (Role::Leader, _) => None,
            (_, Some(leader)) if leader != &self.name => {
                self.deployment.region(leader).map(|r| r.url.clone())
            }
            _ => None,
        }
    }

    pub fn manages(&self, ws: &str) -> bool {
        self.leases().contains_key(ws)
    }

    pub fn is_leader(&self, ws: &str) -> bool {
        self.leases()
            .get(ws)
            .is_some_and(|l| l.role == Role::Leader)
    }

    pub fn mode(&self, ws: &str) -> Mode {
        self.deployment
            .workspace(ws)
            .map(|w| w.mode)
            .unwrap_or(Mode::HotWarm)
    }

    /// A hot/cold secondary has no copy to read from: it sends reads to the leader too.
    pub fn forwards_reads(&self, ws: &str) -> bool {
        self.mode(ws) == Mode::HotCold && !self.is_leader(ws)
    }

    /// Whether this region may write `ws` right now (leader, lease valid).
    fn holds_lease(&self, ws: &str) -> bool {
        self.leases().get(ws).is_some_and(|l| {
            l.role == Role::Leader && l.valid_until.is_some_and(|v| Instant::now() < v)
        })
    }

    fn record_archived(&self, ws: &str, seq: u64, head: u64) {
        if let Some(l) = self.leases().get_mut(ws) {
            l.archived_seq = Some(seq);
            if seq >= head {
                l.archive_caught_up_at = Instant::now();
            }
        }
    }

    pub fn write_ack(&self, ws: &str) -> WriteAck {
        self.deployment
            .workspace(ws)
            .map(|w| w.write_ack)
            .unwrap_or(WriteAck::Async)
    }

    /// A replica says it has durably applied everything up to `seq`.
    pub fn record_ack(&self, ws: &str, seq: u64) {
        let advanced = {
            let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
            let e = acks.entry(ws.to_owned()).or_insert((0, Instant::now()));
            e.1 = Instant::now();
            let advanced = seq > e.0;
            e.0 = e.0.max(seq);
            advanced
        };
        if advanced {
            self.acked.notify_waiters();
        }
    }

    fn acked(&self, ws: &str) -> u64 {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ws)
            .map(|a| a.0)
            .unwrap_or(0)
    }

    /// Whether a standby has asked for this workspace's changes within a lease period.
    fn standby_present(&self, ws: &str) -> bool {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ws)
            .is_some_and(|a| a.1.elapsed() < Duration::from_millis(self.lease_ms()))
    }

    /// Hot/cold: waits until the leader's archive holds `seq` (the archive is the second copy
    /// a hot/cold secondary restores from).
    pub async fn wait_for_archive(
        &self,
        ws: &str,
        seq: u64,
        timeout: Duration,
    ) -> Result<(), MlflowError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (archived, leading) = self
                .leases()
                .get(ws)
                .map(|l| (l.archived_seq.unwrap_or(0), l.role == Role::Leader))
                .unwrap_or((0, false));
            if archived >= seq {
                return Ok(());
            }
            if !leading || Instant::now() >= deadline {
                return Err(MlflowError::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!("the archive does not hold event {seq} of '{ws}' yet"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sync mode: waits until the standby has made `seq` durable.
    pub async fn wait_for_replica(
        &self,
        ws: &str,
        seq: u64,
        timeout: Duration,
    ) -> Result<(), MlflowError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let epoch = self.leases().get(ws).map(|l| l.epoch);
        loop {
            let notified = self.acked.notified();
            if self.acked(ws) >= seq {
                return Ok(());
            }
            // A leader that lost its epoch meanwhile (paused past its lease, cut off) will never
            // hear from a standby that now leads: say so at once rather than at the timeout.
            let still_leading = self
                .leases()
                .get(ws)
                .is_some_and(|l| l.role == Role::Leader && Some(l.epoch) == epoch);
            if !still_leading {
                return Err(MlflowError::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!("the write was committed in region '{}' but it lost the lead of '{ws}' before the standby confirmed it (write_ack = sync); if the new leader does not have it, it is kept aside there as a diverged event; it may be retried", self.name),
                ));
            }
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            if tokio::time::timeout_at(wake, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(MlflowError::new(
                    ErrorCode::TemporarilyUnavailable,
                    format!("the write was committed in region '{}' but the standby has not confirmed it within {} s (write_ack = sync); it may be retried", self.name, timeout.as_secs()),
                ));
            }
        }
    }

    pub fn status(&self, store: &Store) -> Vec<WorkspaceStatus> {
        let leases = self.leases().clone();
        let mut out: Vec<WorkspaceStatus> = leases
            .into_iter()
            .map(|(ws, l)| {
                let head = store
                    .read(|tx| queries::log_head(tx, &ws))
                    .ok()
                    .flatten()
                    .map(|h| h.seq)
                    .unwrap_or(0);
                let lease = match (&l.role, l.valid_until, l.draining) {
                    (Role::Leader, _, true) => "draining",
                    (Role::Leader, Some(v), _) if v > Instant::now() => "held",
                    (Role::Leader, _, _) => "expired (fenced)",
                    (Role::Standby, _, _) => "following",
                    (Role::Unknown, _, _) => "unknown",
                };
                let lag_events = match l.role {
                    Role::Standby if !l.synced => None,
                    Role::Standby => Some(l.leader_head.saturating_sub(head)),
                    _ => Some(0),
                };
                let archive_lag = match (&l.role, l.archived_seq) {
                    (Role::Leader, Some(a)) => Some(head.saturating_sub(a)),
                    _ => None,
                };
                WorkspaceStatus {
                    mode: self.mode(&ws).as_str(),
                    archive_lag_events: archive_lag,
                    archive_lag_ms: archive_lag.map(|n| {
                        if n == 0 {
                            0
                        } else {
                            l.archive_caught_up_at.elapsed().as_millis() as u64
                        }
                    }),
                    workspace: ws.clone(),
                    role: l.role.clone(),
                    epoch: l.epoch,
                    leader: l.leader.clone(),
                    lease,
                    write_ack: match self.write_ack(&ws) {
                        WriteAck::Async => "async",
                        WriteAck::Sync => "sync",
                    },
                    head_seq: head,
                    replication_lag_events: lag_events,
                    replication_lag_ms: lag_events.map(|n| {
                        if n == 0 {
                            0
                        } else {
                            l.caught_up_at.elapsed().as_millis() as u64
                        }
                    }),
                    replication_error: l.replication_error.clone(),
                    last_failover: l.last_failover.clone(),
                    diverged_pending: store
                        .diverged(&ws)
                        .map(|d| d.iter().filter(|(_, s)| s == "pending").count() as u64)
                        .unwrap_or(0),
                }
            })
            .collect();
        // Users' workspaces by name, tandem's own access log last.
        out.sort_by_key(|w| {
            (
                w.workspace == tandem_core::access::ACCESS_WORKSPACE,
                w.workspace.clone(),
            )
        });
        out
    }

    /// Starts a planned switchover: stop accepting writes; the target takes over when it has
    /// everything. Undone by `undrain` if the target does not.
    pub fn drain(&self, ws: &str) -> Result<u64, MlflowError> {
        let mut leases = self.leases();
        let l = leases.get_mut(ws).ok_or_else(|| {
            MlflowError::not_found(format!("workspace '{ws}' is not in this deployment"))
        })?;
        if l.role != Role::Leader {
            return Err(MlflowError::invalid(format!(
                "region '{}' is not the leader of '{ws}'",
                self.name
            )));
        }
        l.draining = true;
        Ok(l.epoch)
    }

    pub fn undrain(&self, ws: &str) {
        if let Some(l) = self.leases().get_mut(ws) {
            l.draining = false;
        }
    }
}

impl Fence for RegionState {
    fn expects(&self, ws: &str) -> bool {
        self.manages(ws)
    }

    fn epoch_for_write(&self, ws: &str) -> Result<u64, MlflowError> {
        let leases = self.leases();
        let Some(l) = leases.get(ws) else {
            // Workspaces outside the deployment file are not replicated: refuse writes
            // rather than create a workspace that survives nothing.
            return Err(MlflowError::invalid(format!(
                "workspace '{ws}' is not listed in the deployment file {}; add it there first",
                self.deployment.path.display()
            )));
        };
        match l.role {
            Role::Leader if l.draining => Err(MlflowError::unavailable(format!(
                "workspace '{ws}' is switching over to another region; try again"
            ))),
            Role::Leader if l.valid_until.is_some_and(|v| Instant::now() < v) => {
                // Sync mode promises that an acknowledged write is in both regions: with no
                // standby to confirm it, refuse before committing, so a retry is safe.
                if self.write_ack(ws) == WriteAck::Sync && !self.standby_present(ws) {
                    return Err(MlflowError::unavailable(format!("workspace '{ws}' acknowledges writes only once the standby region has them (write_ack = sync), and no standby is connected; it will accept writes when one is")));
                }
                Ok(l.epoch)
            }
            Role::Leader => Err(MlflowError::unavailable(format!(
                "region '{}' could not renew its lease on '{ws}' and stopped accepting writes",
                self.name
            ))),
            _ => Err(MlflowError::unavailable(format!(
                "region '{}' is not the leader of '{ws}' (leader: {})",
                self.name,
                l.leader.as_deref().unwrap_or("unknown")
            ))),
        }
    }
}

/// Runs the lease loop and the replicator of every workspace until the process ends.
pub fn spawn(region: Arc<RegionState>, store: Store, artifacts: Artifacts) {
    let archive = region
        .deployment
        .archive
        .as_deref()
        .map(crate::backup::Archive::open);
    let r = region.clone();
    tokio::spawn(async move { region_lease_loop(r).await });
    for ws in region.deployment.workspaces.iter().map(|w| w.name.clone()) {
        match &archive {
            Some(Ok(a)) => {
                let (r, s, a, ar, w) = (
                    region.clone(),
                    store.clone(),
                    artifacts.clone(),
                    a.clone(),
                    ws.clone(),
                );
                tokio::spawn(async move { archive_loop(r, s, a, ar, w).await });
            }
            Some(Err(e)) => tracing::error!(workspace = %ws, "archive: {e}; not archiving"),
            None => {}
        }
        let (r, s) = (region.clone(), store.clone());
        let w = ws.clone();
        tokio::spawn(async move { lease_loop(r, s, w).await });
        let (r, s, a) = (region.clone(), store.clone(), artifacts.clone());
        tokio::spawn(async move { replicate_loop(r, s, a, ws).await });
    }
}

/// A client builder that also trusts the certificates of `ca` (PEM; a private CA).
pub fn with_ca(mut b: reqwest::ClientBuilder, ca: Option<&[u8]>) -> reqwest::ClientBuilder {
    if let Some(pem) = ca {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => {
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
            Err(e) => tracing::error!("[tls] ca: not a PEM bundle: {e}"),
        }
    }
    b
}

/// An HTTP client that presents the deployment's key (when there is one) on every request.
pub fn internal_client(
    key: Option<&str>,
    ca: Option<&[u8]>,
    timeout: Option<Duration>,
) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = key {
        if let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {k}")) {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    let mut b = with_ca(
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .default_headers(headers),
        ca,
    );
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().expect("HTTP client builds")
}

/// Claims this incarnation's region lease, then renews it every `renew_ms` and watches the
/// other regions' (see `RegionLease`).
async fn region_lease_loop(region: Arc<RegionState>) {
    let renew = Duration::from_millis(region.deployment.timing.renew_ms);
    let key = region_lease_key(&region.name);
    let incarnation = region.region_lease().incarnation;
    loop {
        match region
            .witness
            .claim(&key, incarnation, &region.name, now_ms(), "region start")
            .await
        {
            Ok(_) | Err(witness::WitnessError::Taken) => break,
            Err(e) => {
                tracing::warn!(region = %region.name, "region lease: {e}");
                tokio::time::sleep(renew).await;
            }
        }
    }
    let mut k = 0u64;
    loop {
        k += 1;
        let sent = Instant::now();
        match region.witness.renew(&key, incarnation, k).await {
            Ok(()) => region.region_lease().renewed_sent = Some(sent),
            Err(e) => tracing::warn!(region = %region.name, "region lease: {e}"),
        }
        if k.is_multiple_of(64) {
            let _ = region.witness.prune(&key, incarnation, k - 8).await;
        }
        for other in region
            .deployment
            .regions
            .iter()
            .filter(|r| r.name != region.name)
        {
            let okey = region_lease_key(&other.name);
            let Ok(Some(claim)) = region.witness.current(&okey).await else {
                continue;
            };
            let Ok(last) = region.witness.last_renewal(&okey, claim.epoch).await else {
                continue;
            };
            let mut rl = region.region_lease();
            let now = Instant::now();
            match rl.seen.get_mut(&other.name) {
                Some(s) if s.incarnation == claim.epoch => {
                    if s.renewal != last {
                        s.renewal = last;
                        s.progress = now;
                    }
                }
                Some(s) => {
                    s.previous = Some((s.incarnation, s.progress));
                    s.incarnation = claim.epoch;
                    s.renewal = last;
                    s.progress = now;
                }
                None => {
                    rl.seen.insert(
                        other.name.clone(),
                        Seen {
                            incarnation: claim.epoch,
                            renewal: last,
                            progress: now,
                            previous: None,
                        },
                    );
                }
            }
        }
        tokio::time::sleep(renew).await;
    }
}

async fn lease_loop(region: Arc<RegionState>, store: Store, ws: String) {
    let renew = Duration::from_millis(region.deployment.timing.renew_ms);
    let mut created = false;
    loop {
        if let Err(e) = lease_tick(&region, &store, &ws).await {
            tracing::warn!(workspace = %ws, "lease: {e}");
        }
        // The leader creates the deployment's workspaces (once; in its epoch, replicated).
        if !created && region.is_leader(&ws) {
            let (s, w) = (store.clone(), ws.clone());
            match tokio::task::spawn_blocking(move || {
                if w == tandem_core::access::ACCESS_WORKSPACE {
                    crate::api::access::ensure_workspace(&s)?;
                    // The first admin, written by whoever leads the access log, replicated.
                    match crate::api::access::Bootstrap::from_env() {
                        Ok(Some(b)) => {
                            if b.apply(&s).map_err(crate::store::Error::Rejected)? {
                                tracing::info!(admin = %b.name, "created the first admin");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!("bootstrap: {e}"),
                    }
                    return Ok(true);
                }
                crate::api::workspaces::ensure(
                    &s,
                    &w,
                    if w == "default" {
                        "The default workspace"
                    } else {
                        ""
                    },
                    "tandem",
                )
            })
            .await
            {
                Ok(Ok(_)) => created = true,
                Ok(Err(e)) => tracing::warn!(workspace = %ws, "creating the workspace: {e}"),
                Err(e) => tracing::warn!(workspace = %ws, "creating the workspace: {e}"),
            }
        }
        // A standby looks again exactly when the leader's lease would run out, not at its next
        // tick: a renewal interval less to wait on a failover. While it cannot reach a leader
        // (the leader is gone, or it is this region's own earlier life), it looks ten times a
        // second, so that it follows whoever claims the next epoch at once.
        let wait = {
            let leases = region.leases();
            match leases.get(&ws) {
                Some(l) if l.role == Role::Standby && region.mode(&ws) == Mode::HotWarm => {
                    let leaderless = l.replication_error.is_some()
                        || l.leader.as_deref() == Some(region.name.as_str());
                    let tick = if leaderless {
                        renew.min(Duration::from_millis(100))
                    } else {
                        renew
                    };
                    match (l.seen_progress + region.takeover_after())
                        .checked_duration_since(Instant::now())
                    {
                        Some(left) => tick.min(left + Duration::from_millis(1)),
                        None => tick,
                    }
                }
                _ => renew,
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn lease_tick(
    region: &Arc<RegionState>,
    store: &Store,
    ws: &str,
) -> Result<(), WitnessError> {
    let lease_ms = region.lease_ms();
    let current = region.witness.current(ws).await?;
    let me = region.name.clone();
    let preferred = region
        .deployment
        .workspace(ws)
        .map(|w| w.preferred_leader.clone())
        .unwrap_or_default();
    let Some(claim) = current else {
        // Nobody has ever led: the preferred region claims epoch 1; the other waits for two
        // leases in case the preferred one is merely slow to start.
        // A hot/cold secondary never claims on its own: it runs nothing until `tandem failover`.
        let cold = region.mode(ws) == Mode::HotCold;
        if me == preferred
            || (!cold && region.started.elapsed() > Duration::from_millis(2 * lease_ms))
        {
            let start = Instant::now();
            if region
                .witness
                .claim(ws, 1, &me, now_ms(), "initial")
                .await
                .is_ok()
            {
                become_leader(region, ws, 1, start, None);
            }
        }
        return Ok(());
    };
    let (role, mine_this_life) = {
        let leases = region.leases();
        let l = &leases[ws];
        (
            l.role.clone(),
            l.role == Role::Leader && l.epoch == claim.epoch,
        )
    };
    if claim.region == me && mine_this_life {
        // Renew. The lease counts from when the renewal was sent, not when it landed.
        let start = Instant::now();
        let k = region.leases()[ws].next_renewal;
        region.witness.renew(ws, claim.epoch, k).await?;
        {
            let mut leases = region.leases();
            let l = leases.get_mut(ws).expect("known workspace");
            if l.role == Role::Leader && l.epoch == claim.epoch {
                l.next_renewal = k + 1;
                l.valid_until = Some(start + region.write_window());
            }
        }
        if k.is_multiple_of(20) {
            let _ = region
                .witness
                .prune(ws, claim.epoch, k.saturating_sub(5))
                .await;
        }
        return Ok(());
    }
    // Another region leads (or this region led in an earlier life: it never resumes an
    // epoch it did not claim in this process, so a restarted leader comes back as standby).
    {
        let mut leases = region.leases();
        let l = leases.get_mut(ws).expect("known workspace");
        if l.role == Role::Leader && claim.epoch > l.epoch {
            tracing::warn!(workspace = %ws, "epoch {} was claimed by {}; stepping down from epoch {}", claim.epoch, claim.region, l.epoch);
        }
        if l.role != Role::Standby || l.epoch != claim.epoch {
            l.synced = false;
            l.role = Role::Standby;
            l.valid_until = None;
            l.draining = false;
            l.epoch = claim.epoch;
            l.leader = Some(claim.region.clone());
            l.seen_renewal = 0;
            l.seen_progress = Instant::now();
            if claim.region != me && role == Role::Leader {
                l.last_failover = Some(Failover {
                    epoch: claim.epoch,
                    to: claim.region.clone(),
                    reason: claim.reason.clone(),
                    at_ms: claim.claimed_at_ms,
                    events_possibly_lost: 0,
                    rto_ms: None,
                });
            }
        }
    }
    let renewal = region.witness.last_renewal(ws, claim.epoch).await?;
    let expired = {
        let mut leases = region.leases();
        let l = leases.get_mut(ws).expect("known workspace");
        if renewal > l.seen_renewal {
            l.seen_renewal = renewal;
            l.seen_progress = Instant::now();
        }
        l.seen_progress.elapsed() > region.takeover_after()
    };
    // A hot/cold leader that restarted finds its own lapsed epoch: nobody led after it, so
    // its own log is the whole history, and it takes the next epoch back.
    let own_lapsed = claim.region == me && region.mode(ws) == Mode::HotCold;
    if expired && (region.mode(ws) == Mode::HotWarm || own_lapsed) {
        // The leader stopped renewing more than a lease ago: it has fenced itself. Take over.
        // (A hot/cold secondary has no copy to take over with; an operator runs
        // `tandem failover`, which restores from the archive.)
        let start = Instant::now();
        let silent_ms = region.leases()[ws].seen_progress.elapsed().as_millis() as u64;
        let (mine, leader_head) = {
            let head = store
                .read(|tx| queries::log_head(tx, ws))
                .ok()
                .flatten()
                .map(|h| h.seq)
                .unwrap_or(0);
            (head, region.leases()[ws].leader_head)
        };
        match region
            .witness
            .claim(ws, claim.epoch + 1, &me, now_ms(), "failover")
            .await
        {
            Ok(_) => {
                let lost = leader_head.saturating_sub(mine);
                tracing::warn!(workspace = %ws, "took over epoch {} from {} after its lease expired; {lost} events may be lost", claim.epoch + 1, claim.region);
                become_leader(
                    region,
                    ws,
                    claim.epoch + 1,
                    start,
                    Some(Failover {
                        epoch: claim.epoch + 1,
                        to: me.clone(),
                        reason: "failover".into(),
                        at_ms: now_ms(),
                        events_possibly_lost: lost,
                        rto_ms: Some(silent_ms),
                    }),
                );
            }
            Err(WitnessError::Taken) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn become_leader(
    region: &RegionState,
    ws: &str,
    epoch: u64,
    start: Instant,
    failover: Option<Failover>,
) {
    become_leader_draining(region, ws, epoch, start, failover, false)
}

/// As [`become_leader`]; `draining` holds writes back until the region is ready for them.
fn become_leader_draining(
    region: &RegionState,
    ws: &str,
    epoch: u64,
    start: Instant,
    failover: Option<Failover>,
    draining: bool,
) {
    let mut leases = region.leases();
    let l = leases.get_mut(ws).expect("known workspace");
    l.role = Role::Leader;
    l.epoch = epoch;
    l.leader = Some(region.name.clone());
    l.next_renewal = 1;
    l.draining = draining;
    l.archived_seq = None;
    // A fresh claim is as good as a renewal sent at `start`.
    l.valid_until = Some(start + region.write_window());
    if failover.is_some() {
        l.last_failover = failover;
    }
    l.replication_error = None;
}

/// Claims the next epoch for this region now: a planned switchover once caught up, or a
/// forced failover when the leader cannot be reached.
pub async fn take_over(
    region: &Arc<RegionState>,
    store: &Store,
    ws: &str,
    reason: &str,
    possibly_lost: u64,
) -> Result<u64, MlflowError> {
    take_over_draining(region, store, ws, reason, possibly_lost, false).await
}

/// As [`take_over`]; with `draining`, the new epoch accepts no writes until `undrain`.
pub async fn take_over_draining(
    region: &Arc<RegionState>,
    _store: &Store,
    ws: &str,
    reason: &str,
    possibly_lost: u64,
    draining: bool,
) -> Result<u64, MlflowError> {
    let claim = region
        .witness
        .current(ws)
        .await
        .map_err(|e| MlflowError::new(ErrorCode::TemporarilyUnavailable, e.to_string()))?;
    let next = claim.map(|c| c.epoch).unwrap_or(0) + 1;
    let start = Instant::now();
    region
        .witness
        .claim(ws, next, &region.name, now_ms(), reason)
        .await
        .map_err(|e| {
            MlflowError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("could not claim epoch {next}: {e}"),
            )
        })?;
    become_leader_draining(
        region,
        ws,
        next,
        start,
        Some(Failover {
            epoch: next,
            to: region.name.clone(),
            reason: reason.into(),
            at_ms: now_ms(),
            events_possibly_lost: possibly_lost,
            rto_ms: None,
        }),
        draining,
    );
    Ok(next)
}

async fn replicate_loop(region: Arc<RegionState>, store: Store, artifacts: Artifacts, ws: String) {
    loop {
        if region.mode(&ws) == Mode::HotCold {
            // Nothing to replicate: the cold region restores from the archive on failover.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let target = region.forward_target(&ws);
        let Some(leader_url) = target else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match replicate_once(&region, &store, &artifacts, &ws, &leader_url).await {
            // A page with nothing new already waited in the long poll: loop straight away.
            Ok(_) => {
                if let Some(l) = region.leases().get_mut(&ws) {
                    l.replication_error = None;
                }
            }
            Err(e) => {
                tracing::warn!(workspace = %ws, "replication from {leader_url}: {e}");
                if let Some(l) = region.leases().get_mut(&ws) {
                    l.replication_error = Some(e);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ChangesPage {
    head_seq: u64,
    events: Vec<Event>,
}

/// Pulls one page of the leader's log (long-polling when there is nothing new), fetches the
/// artifact bytes its events name, and replays it. Returns whether anything was applied.
async fn replicate_once(
    region: &RegionState,
    store: &Store,
    artifacts: &Artifacts,
    ws: &str,
    leader_url: &str,
) -> Result<bool, String> {
    let s = store.clone();
    let w = ws.to_owned();
    let head = tokio::task::spawn_blocking(move || s.read(|tx| queries::log_head(tx, &w)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let after = head.as_ref().map(|h| h.seq).unwrap_or(0);
    let url = format!(
        "{leader_url}/api/tandem/v1/workspaces/{ws}/changes?after={after}&limit=500&wait_ms=1000"
    );
    let resp = region
        .http
        .get(&url)
        .header("X-Tandem-Replica", &region.name)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{} from the leader", resp.status()));
    }
    let page: ChangesPage = resp.json().await.map_err(|e| e.to_string())?;
    {
        let mut leases = region.leases();
        if let Some(l) = leases.get_mut(ws) {
            l.leader_head = page.head_seq;
            if page.head_seq <= after {
                l.caught_up_at = Instant::now();
            }
        }
    }
    // Divergence: this region has events the leader does not (it led before and accepted
    // writes that never reached the new leader). Keep them aside and follow the leader.
    let first_breaks_chain = page.events.first().is_some_and(|e| {
        e.seq == after + 1
            && !e.verify(
                head.as_ref()
                    .map(|h| h.checksum.as_str())
                    .unwrap_or(tandem_core::event::GENESIS_CHECKSUM),
            )
    });
    if page.head_seq < after || first_breaks_chain {
        let keep = common_prefix(region, store, ws, leader_url, after.min(page.head_seq)).await?;
        let (s, w) = (store.clone(), ws.to_owned());
        let moved = tokio::task::spawn_blocking(move || s.rewind(&w, keep))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        tracing::warn!(workspace = %ws, "diverged from the leader after event {keep}: {moved} event(s) of this region kept aside (tandem diverged list)");
        if let Some(l) = region.leases().get_mut(ws) {
            l.synced = false;
        }
        return Ok(true);
    }
    if page.events.is_empty() {
        // Our log is a prefix of the leader's (checked above) and nothing is missing.
        if let Some(l) = region.leases().get_mut(ws) {
            l.synced = page.head_seq == after;
        }
        return Ok(false);
    }
    // Artifact bytes first: an event is applied only once what it names is here.
    for e in &page.events {
        if e.op == "PutArtifact" {
            if let Ok(tandem_core::Op::PutArtifact { path, size, sha256 }) = e.decode_op() {
                fetch_artifact(region, artifacts, leader_url, ws, &path, size, &sha256).await?;
            }
        }
    }
    let s = store.clone();
    let w = ws.to_owned();
    let events = page.events;
    let n = events.len();
    tokio::task::spawn_blocking(move || s.replay(&w, &events))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let last = after + n as u64;
    if let Some(l) = region.leases().get_mut(ws) {
        // The page chained onto our log, so it is a prefix of the leader's.
        l.synced = true;
        if last >= l.leader_head {
            l.caught_up_at = Instant::now();
        }
    }
    Ok(true)
}

/// The last event this region and the leader have in common (0 if none).
async fn common_prefix(
    region: &RegionState,
    store: &Store,
    ws: &str,
    leader_url: &str,
    from: u64,
) -> Result<u64, String> {
    let mut k = from;
    while k > 0 {
        let (s, w) = (store.clone(), ws.to_owned());
        let mine =
            tokio::task::spawn_blocking(move || s.read(|tx| queries::checksum_at(tx, &w, k)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        let url = format!(
            "{leader_url}/api/tandem/v1/workspaces/{ws}/changes?after={}&limit=1",
            k - 1
        );
        let theirs: ChangesPage = region
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let (Some((sum, _)), Some(e)) = (mine, theirs.events.first()) {
            if e.seq == k && e.checksum == sum {
                return Ok(k);
            }
        }
        k -= 1;
    }
    Ok(0)
}

async fn fetch_artifact(
    region: &RegionState,
    artifacts: &Artifacts,
    leader_url: &str,
    ws: &str,
    path: &str,
    size: u64,
    sha256: &str,
) -> Result<(), String> {
    let url = format!(
        "{leader_url}/api/2.0/mlflow-artifacts/artifacts/{}",
        path.split('/')
            .map(crate::http::encode_segment)
            .collect::<Vec<_>>()
            .join("/")
    );
    let resp = region
        .http
        .get(&url)
        .header("X-MLFLOW-WORKSPACE", ws)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() == 404 {
        // Overwritten or deleted on the leader since; a later event in the log says which.
        return Ok(());
    }
    if !resp.status().is_success() {
        return Err(format!(
            "artifact {path}: {} from the leader",
            resp.status()
        ));
    }
    let stream = futures_util::StreamExt::boxed(resp.bytes_stream());
    let (got_size, got_sha) = artifacts
        .put(ws, path, stream)
        .await
        .map_err(|e| e.message)?;
    if got_size != size || got_sha != sha256 {
        // The leader's file changed after this event (a later PutArtifact will bring the
        // new bytes); what matters is that the final state matches the final event.
        tracing::debug!(
            path,
            "artifact bytes differ from the event; a later event will reconcile them"
        );
    }
    Ok(())
}

/// The leader archives its workspace's change log (and the artifact bytes it names). Only
/// while it holds its lease, so a fenced leader stops adding to the archive. A hot/warm
/// leader archives only what its standby has confirmed: an unconfirmed tail can be taken back
/// by a failover, and the archive must never hold events the surviving history does not.
async fn archive_loop(
    region: Arc<RegionState>,
    store: Store,
    artifacts: Artifacts,
    archive: crate::backup::Archive,
    ws: String,
) {
    let mut last_compaction = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(ARCHIVE_EVERY_MS)).await;
        if !region.holds_lease(&ws) {
            continue;
        }
        if last_compaction.elapsed() >= crate::backup::COMPACT_EVERY {
            last_compaction = Instant::now();
            let (s, w) = (store.clone(), ws.clone());
            if let Ok(Ok(r)) =
                tokio::task::spawn_blocking(move || crate::retention::get(&s, &w)).await
            {
                crate::backup::compact_one(&archive, &ws, r.days as i64).await;
            }
        }
        let (s, w) = (store.clone(), ws.clone());
        let head = tokio::task::spawn_blocking(move || s.read(|tx| queries::log_head(tx, &w)))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .map(|h| h.seq)
            .unwrap_or(0);
        let upto = match region.mode(&ws) {
            Mode::HotCold => head,
            Mode::HotWarm => head.min(region.acked(&ws)),
        };
        // Catch up fully (a segment per call), checking the lease before each segment.
        loop {
            if !region.holds_lease(&ws) {
                break;
            }
            let before = region
                .leases()
                .get(&ws)
                .and_then(|l| l.archived_seq)
                .unwrap_or(0);
            match archive
                .archive_upto(&store, &ws, upto, Some(&artifacts))
                .await
            {
                Ok(done) => {
                    region.record_archived(&ws, done, head);
                    if done >= upto || done == before {
                        break;
                    }
                }
                Err(crate::backup::BackupError::Diverged { archived }) => {
                    // An old leader's last segment landed after this region restored from the
                    // archive: the archive's history wins (it was acknowledged first); this
                    // region's own later events are kept aside as diverged, for an operator.
                    tracing::warn!(workspace = %ws, "the archive holds events through {archived} that this region does not; following it");
                    match archive.read_all(&ws).await {
                        Ok(events) => {
                            match crate::restore::follow_archive(&store, &ws, events, |_, _| {})
                                .await
                            {
                                Ok(f) => {
                                    tracing::warn!(workspace = %ws, "followed the archive: {} events kept aside as diverged, {} applied", f.diverged, f.replayed)
                                }
                                Err(e) => {
                                    tracing::error!(workspace = %ws, "following the archive: {e}")
                                }
                            }
                        }
                        Err(e) => tracing::error!(workspace = %ws, "reading the archive: {e}"),
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(workspace = %ws, "archiving: {e}");
                    break;
                }
            }
        }
    }
}

/// How often a leader looks for new events to archive: the archive lag (and so a hot/cold
/// workspace's RPO) under steady writes is about this plus one upload.
pub const ARCHIVE_EVERY_MS: u64 = 250;
