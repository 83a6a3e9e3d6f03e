//! Point-in-time restore, three ways, all from the change log (docs/design/backup-restore.md):
//!
//! - into a workspace of a store (a new name in a live store, or the same name in an empty
//!   one): the log up to the instant, replayed, renamed if asked. Chunked, with progress, and
//!   resumable: a `restores` row marks the workspace as being restored until it is done, so
//!   a rerun continues where the last one stopped and nothing else writes there meanwhile;
//! - in place (`RewindWorkspace`): one new event that takes the state back to what an earlier
//!   event left; the log only grows;
//! - one object (an experiment with its runs, a run, a registered model with its versions):
//!   its history cut out of the log up to the instant (`tandem_core::history`) and appended
//!   as new events, after whatever of it is left in the live workspace is purged.
//!
//! Architecture invariant: nothing here writes state except through `Store::replay` and
//! `Store::write`; every restore is events.

use crate::artifacts::Artifacts;
use crate::backup::{iso, Archived, BackupError};
use crate::store::{queries, Decision, Store};
use futures_util::StreamExt;
use tandem_core::event::{Event, GENESIS_CHECKSUM};
use tandem_core::history::{self, Object};
use tandem_core::{MlflowError, Op};

const CHUNK: usize = 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn blocking_err(e: tokio::task::JoinError) -> BackupError {
    BackupError::Invalid(e.to_string())
}

/// How many events of an archived history (a snapshot, then a whole log) were accepted at or
/// before `at_ms`, or a clear error naming the restorable window.
pub fn cut(ws: &str, archived: &Archived, at_ms: Option<u64>) -> Result<usize, BackupError> {
    let (Some(earliest), Some(last)) = (archived.earliest_ms(), archived.events.last()) else {
        return Err(BackupError::Invalid(format!(
            "the archive holds nothing for workspace '{ws}'"
        )));
    };
    let latest = last.hlc.wall_ms();
    match at_ms {
        None => Ok(archived.events.len()),
        Some(t) if t < earliest || t > latest.max(now_ms()) => Err(BackupError::Invalid(format!(
            "cannot restore '{ws}' to {t}: the archive covers {earliest} ({}) to {latest} ({}); earlier is before the workspace existed{}, and the future is not restorable",
            iso(earliest),
            iso(latest),
            if archived.base_seq > 0 { " or older than the retained history (compacted into a snapshot)" } else { "" }
        ))),
        // The log is in clock order, so "as of t" is a prefix (never shorter than the snapshot).
        Some(t) => Ok(archived.events.partition_point(|e| e.hlc.wall_ms() <= t).max(archived.base_len())),
    }
}

/// The same events as the workspace `name` would have logged them: only the workspace name
/// and the chain of checksums change.
pub fn renamed(events: &[Event], name: &str, prev_checksum: &str) -> Vec<Event> {
    let mut prev = prev_checksum.to_owned();
    events
        .iter()
        .map(|e| {
            let checksum = tandem_core::event::checksum(
                &prev,
                name,
                e.seq,
                e.epoch,
                e.hlc,
                &e.origin,
                &e.principal,
                &e.op,
                &e.payload,
            );
            prev = checksum.clone();
            Event {
                workspace: name.to_owned(),
                checksum,
                ..e.clone()
            }
        })
        .collect()
}

/// What [`into_workspace`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Restored {
    pub workspace: String,
    /// Events in the restored log.
    pub events: u64,
    /// Of which this run replayed (less than `events` when it resumed an interrupted one).
    pub replayed: u64,
}

/// Rebuilds `source_ws` as of the first `cut` events of `events` into `target` as workspace
/// `as_name`. Refuses a workspace that exists and is not an interrupted restore of the same
/// history. `progress(done, total)` is called after every chunk.
pub async fn into_workspace(
    archived: Archived,
    cut: usize,
    source: &str,
    target: &Store,
    as_name: &str,
    progress: impl FnMut(u64, u64),
) -> Result<Restored, BackupError> {
    let r = replay_into(archived, cut, source, target, as_name, progress).await?;
    finish(target, as_name).await?;
    Ok(r)
}

/// Marks a restore into `ws` done: the workspace is live from now on.
pub async fn finish(target: &Store, ws: &str) -> Result<(), BackupError> {
    let (s, w) = (target.clone(), ws.to_owned());
    tokio::task::spawn_blocking(move || {
        s.bookkeeping(|tx| {
            tx.exec(
                "DELETE FROM restores WHERE workspace = ?",
                &[w.as_str().into()],
            )
            .map(drop)
        })
    })
    .await
    .map_err(blocking_err)??;
    Ok(())
}

/// [`into_workspace`] without marking the restore done: the workspace stays "being restored"
/// (nothing else writes there, and a rerun continues) until [`finish`], so that a command
/// that restores more than the log (the artifact files) is resumable as a whole.
pub async fn replay_into(
    archived: Archived,
    cut: usize,
    source: &str,
    target: &Store,
    as_name: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<Restored, BackupError> {
    let base_len = archived.base_len().min(cut);
    let prefix: Vec<Event> = archived.events.into_iter().take(cut).collect();
    let prefix = if prefix.first().is_some_and(|e| e.workspace == as_name) {
        prefix
    } else {
        renamed(&prefix, as_name, GENESIS_CHECKSUM)
    };
    let total = prefix.last().map(|e| e.seq).unwrap_or(0);
    let (s, w, src) = (target.clone(), as_name.to_owned(), source.to_owned());
    // Claim the target, or find the interrupted restore to continue.
    let head = tokio::task::spawn_blocking(move || {
        s.bookkeeping(|tx| {
            let head = queries::log_head(tx, &w)?;
            let marked = tx.query_one("SELECT to_seq FROM restores WHERE workspace = ?", &[w.as_str().into()])?.map(|r| r.int(0) as u64);
            match (&head, marked) {
                (None, None) => {
                    tx.exec("INSERT INTO restores (workspace, source, to_seq, started_at) VALUES (?, ?, ?, ?)", &[w.as_str().into(), src.as_str().into(), (total as i64).into(), (now_ms() as i64).into()])?;
                }
                (_, Some(to)) if to == total => {}
                (_, Some(to)) => return Err(MlflowError::invalid(format!("workspace '{w}' is part-way through a restore to event {to}, not {total}; finish that one first (same instant)")).into()),
                (Some(_), None) => {
                    return Err(MlflowError::invalid(format!("the target store already has workspace '{w}'; restore into a new workspace (--as NAME), an empty store, or --in-place")).into())
                }
            }
            Ok(head)
        })
    })
    .await
    .map_err(blocking_err)??;
    let done = head.map(|h| h.seq).unwrap_or(0);
    let mut next = 0;
    if done > 0 {
        let at = prefix.iter().position(|e| e.seq == done);
        match at {
            Some(i) if prefix[i].checksum == head_checksum(target, as_name).await? => next = i + 1,
            _ => return Err(BackupError::Invalid(format!("workspace '{as_name}' holds a different history than the one being restored; it cannot be resumed"))),
        }
    } else if base_len > 0 {
        // A compacted snapshot goes in whole, in one transaction.
        let (s, w, b) = (
            target.clone(),
            as_name.to_owned(),
            prefix[..base_len].to_vec(),
        );
        tokio::task::spawn_blocking(move || s.install(&w, &b))
            .await
            .map_err(blocking_err)??;
        next = base_len;
    }
    progress(prefix[..next].last().map(|e| e.seq).unwrap_or(0), total);
    let replayed = (prefix.len() - next) as u64;
    for chunk in prefix[next..].chunks(CHUNK) {
        let (s, w, c) = (target.clone(), as_name.to_owned(), chunk.to_vec());
        tokio::task::spawn_blocking(move || s.replay(&w, &c))
            .await
            .map_err(blocking_err)??;
        progress(chunk.last().map(|e| e.seq).unwrap_or(done), total);
    }
    Ok(Restored {
        workspace: as_name.to_owned(),
        events: total,
        replayed,
    })
}

async fn head_checksum(store: &Store, ws: &str) -> Result<String, BackupError> {
    let (s, w) = (store.clone(), ws.to_owned());
    Ok(
        tokio::task::spawn_blocking(move || s.read(|tx| queries::log_head(tx, &w)))
            .await
            .map_err(blocking_err)??
            .map(|h| h.checksum)
            .unwrap_or_default(),
    )
}

/// What [`follow_archive`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Followed {
    /// Events of the local log the archive does not have, moved to `diverged_events`.
    pub diverged: u64,
    /// Archived events applied.
    pub replayed: u64,
    pub head_seq: u64,
}

/// Brings a store's copy of `ws` (none, an older copy, or one with a tail the archive never
/// got) to exactly the archived history `events`: the part both share is kept, a local tail
/// that is not in the archive is kept aside in `diverged_events` (reported, never dropped),
/// and the rest of the archive is replayed. How a hot/cold region takes a workspace over.
pub async fn follow_archive(
    store: &Store,
    ws: &str,
    archived: Archived,
    mut progress: impl FnMut(u64, u64),
) -> Result<Followed, BackupError> {
    let (s, w) = (store.clone(), ws.to_owned());
    let local: Vec<Event> = tokio::task::spawn_blocking(move || {
        s.read(|tx| queries::changes(tx, &w, 0, usize::MAX >> 1))
    })
    .await
    .map_err(blocking_err)??;
    let local_sums: std::collections::HashMap<u64, &str> =
        local.iter().map(|e| (e.seq, e.checksum.as_str())).collect();
    // Checksums chain: the last event both logs have alike ends their common history.
    let common = archived
        .events
        .iter()
        .rev()
        .find(|e| local_sums.get(&e.seq) == Some(&e.checksum.as_str()))
        .map(|e| e.seq)
        .unwrap_or(0);
    let local_head = local.last().map(|e| e.seq).unwrap_or(0);
    let total = archived.head_seq();
    let mut diverged = 0;
    if local_head > common {
        let (s, w) = (store.clone(), ws.to_owned());
        let base = tokio::task::spawn_blocking(move || s.read(|tx| queries::log_base(tx, &w)))
            .await
            .map_err(blocking_err)??;
        let (s, w) = (store.clone(), ws.to_owned());
        diverged = tokio::task::spawn_blocking(move || s.rewind(&w, common.max(base)))
            .await
            .map_err(blocking_err)??;
    }
    // Hidden from the API while it is being rebuilt.
    let (s, w) = (store.clone(), ws.to_owned());
    tokio::task::spawn_blocking(move || s.bookkeeping(|tx| tx.exec("INSERT INTO restores (workspace, source, to_seq, started_at) VALUES (?, 'archive', ?, ?) ON CONFLICT (workspace) DO UPDATE SET to_seq = excluded.to_seq", &[w.as_str().into(), (total as i64).into(), (now_ms() as i64).into()]).map(drop)))
        .await
        .map_err(blocking_err)??;
    let mut start = archived.events.partition_point(|e| e.seq <= common);
    if common < archived.base_seq || (common == 0 && local_head > 0) {
        // This copy ends before the archive's snapshot: what it has is in the archive's
        // history (anything else was just kept aside), so it is replaced by the snapshot.
        let (s, w) = (store.clone(), ws.to_owned());
        tokio::task::spawn_blocking(move || s.reset(&w))
            .await
            .map_err(blocking_err)??;
        start = 0;
    }
    if start == 0 && archived.base_len() > 0 {
        let (s, w, b) = (
            store.clone(),
            ws.to_owned(),
            archived.events[..archived.base_len()].to_vec(),
        );
        tokio::task::spawn_blocking(move || s.install(&w, &b))
            .await
            .map_err(blocking_err)??;
        start = archived.base_len();
    }
    let rest = &archived.events[start..];
    let replayed = rest.len() as u64;
    for chunk in rest.chunks(CHUNK) {
        let (s, w, c) = (store.clone(), ws.to_owned(), chunk.to_vec());
        tokio::task::spawn_blocking(move || s.replay(&w, &c))
            .await
            .map_err(blocking_err)??;
        progress(chunk.last().map(|e| e.seq).unwrap_or(0), total);
    }
    finish(store, ws).await?;
    Ok(Followed {
        diverged,
        replayed,
        head_seq: total,
    })
}

/// Where a restore finds artifact bytes, tried in this order after the target itself.
#[derive(Clone, Copy, Default)]
pub struct ByteSources<'a> {
    /// A workspace whose files may still hold the right bytes (the original of a copy).
    pub live: Option<(&'a Artifacts, &'a str)>,
    /// The archive, and the workspace whose blobs to read (the one that logged them).
    pub archive: Option<(&'a crate::backup::Archive, &'a str)>,
}

/// How a file already in the target is judged to be the right one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// Its SHA-256 is the recorded one (every restore).
    SameHash,
    /// Its size is the recorded one (a hot/cold takeover of a region's own older copy,
    /// where reading every byte would lengthen the outage).
    SameSize,
}

/// An artifact a restore could not bring back, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MissingArtifact {
    pub path: String,
    pub sha256: String,
    pub why: String,
}

/// What [`restore_artifacts`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ArtifactsRestored {
    /// Files the restored state names (below the prefixes asked for).
    pub files: u64,
    pub bytes: u64,
    /// Already in the target with the right bytes.
    pub kept: u64,
    /// Written now, checked against their recorded SHA-256.
    pub copied: u64,
    pub copied_bytes: u64,
    pub missing: Vec<MissingArtifact>,
}

/// Progress of [`restore_artifacts`]: files and bytes done (kept or copied) of the total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArtifactProgress {
    pub files_done: u64,
    pub files: u64,
    pub bytes_done: u64,
    pub bytes: u64,
}

/// Gives workspace `ws` of `target` the bytes of every artifact its (restored) state names,
/// byte-exact: a file already there is kept when it is the right one (`keep`), the others
/// come from `sources` (the live original, then the archive) and are written only once their
/// SHA-256 is the one their event recorded. `under`: only paths below these prefixes (None:
/// every path). Files no source has are returned with the reason, never skipped silently.
/// Running it again finishes what an interrupted run started (files done are kept).
pub async fn restore_artifacts(
    store: &Store,
    target: &Artifacts,
    ws: &str,
    under: Option<&[String]>,
    sources: ByteSources<'_>,
    keep: Keep,
    mut progress: impl FnMut(ArtifactProgress),
) -> Result<ArtifactsRestored, BackupError> {
    let (s, w) = (store.clone(), ws.to_owned());
    let mut files: Vec<(String, u64, String)> = tokio::task::spawn_blocking(move || {
        s.read(|tx| {
            Ok(tx
                .query(
                    "SELECT path, size, sha256 FROM artifacts WHERE workspace = ? ORDER BY path",
                    &[w.as_str().into()],
                )?
                .iter()
                .map(|r| (r.text(0), r.int(1) as u64, r.text(2)))
                .collect())
        })
    })
    .await
    .map_err(blocking_err)??;
    if let Some(prefixes) = under {
        files.retain(|(p, _, _)| {
            prefixes
                .iter()
                .any(|pre| p == pre || p.starts_with(&format!("{}/", pre.trim_end_matches('/'))))
        });
    }
    let mut out = ArtifactsRestored {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.1).sum(),
        ..Default::default()
    };
    let mut at = ArtifactProgress {
        files_done: 0,
        files: out.files,
        bytes_done: 0,
        bytes: out.bytes,
    };
    progress(at);
    // The live source is skipped when it is the target itself (an in-place restore).
    let live = sources
        .live
        .filter(|(a, from)| !(a.describe() == target.describe() && *from == ws));
    // Several files at a time: each one's fsync (or object-store round trips) waits on the
    // device, not the CPU.
    let mut each =
        futures_util::stream::iter(files.into_iter().map(|(path, size, sha)| async move {
            let outcome =
                one_artifact(target, ws, live, sources.archive, keep, &path, size, &sha).await;
            (path, size, sha, outcome)
        }))
        .buffer_unordered(FILES_IN_FLIGHT);
    while let Some((path, size, sha, outcome)) = each.next().await {
        match outcome? {
            Outcome::Kept => out.kept += 1,
            Outcome::Copied(n) => {
                (out.copied, out.copied_bytes) = (out.copied + 1, out.copied_bytes + n)
            }
            Outcome::Missing(why) => out.missing.push(MissingArtifact {
                path,
                sha256: sha,
                why,
            }),
        }
        at.files_done += 1;
        at.bytes_done += size;
        progress(at);
    }
    out.missing.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

/// How many files a restore brings back at once.
const FILES_IN_FLIGHT: usize = 4;

enum Outcome {
    Kept,
    Copied(u64),
    Missing(String),
}

/// One file of [`restore_artifacts`]: kept, copied from a source, or missing (and why).
#[allow(clippy::too_many_arguments)]
async fn one_artifact(
    target: &Artifacts,
    ws: &str,
    live: Option<(&Artifacts, &str)>,
    archive: Option<(&crate::backup::Archive, &str)>,
    keep: Keep,
    path: &str,
    size: u64,
    sha: &str,
) -> Result<Outcome, BackupError> {
    let unavailable = |e: MlflowError| BackupError::Unavailable(e.message);
    let present = match keep {
        // A file of another size is not read to learn that its hash differs.
        Keep::SameHash => {
            target.size_of(ws, path).await.map_err(unavailable)? == Some(size)
                && target
                    .sha256_of(ws, path)
                    .await
                    .map_err(unavailable)?
                    .is_some_and(|h| h == sha)
        }
        // Metadata only: no download is started for a file that is kept.
        Keep::SameSize => target.size_of(ws, path).await.map_err(unavailable)? == Some(size),
    };
    if present {
        return Ok(Outcome::Kept);
    }
    let mut why: Vec<String> = Vec::new();
    if let Some((a, from)) = live {
        match a.get(from, path).await {
            Ok((stream, _)) => match target.put_checked(ws, path, stream, sha).await {
                Ok(n) => return Ok(Outcome::Copied(n)),
                Err(e) if e.code == tandem_core::ErrorCode::DataLoss => why.push(format!(
                    "workspace '{from}' has other bytes there now ({})",
                    e.message
                )),
                Err(e) => return Err(unavailable(e)),
            },
            Err(e) if e.code == tandem_core::ErrorCode::ResourceDoesNotExist => {
                why.push(format!("workspace '{from}' no longer has it"))
            }
            Err(e) => return Err(unavailable(e)),
        }
    }
    match archive {
        Some((archive, from)) => match archive.blob(from, sha).await? {
            Some((stream, _)) => match target.put_checked(ws, path, stream, sha).await {
                Ok(n) => return Ok(Outcome::Copied(n)),
                Err(e) if e.code == tandem_core::ErrorCode::DataLoss => why.push(format!("the archive's blob {sha} is corrupt: {}", e.message)),
                Err(e) => return Err(unavailable(e)),
            },
            None => why.push(format!("the archive has no blob {sha} (the file changed or vanished before it was archived)")),
        },
        None => why.push("no archive to read it from".to_owned()),
    }
    Ok(Outcome::Missing(why.join("; ")))
}

/// Where a restored object's files are: below these paths of the workspace's artifact store.
pub fn object_artifact_roots(
    store: &Store,
    ws: &str,
    object: &tandem_core::history::Object,
    renamed: Option<&str>,
) -> Result<Vec<String>, MlflowError> {
    use tandem_core::history::Object;
    let roots: Vec<String> = store.read(|tx| {
        Ok(match object {
            Object::Run(id) => queries::run_state(tx, ws, id)?.map(|r| r.artifact_uri).into_iter().collect(),
            Object::Experiment(id) => queries::experiment(tx, ws, id)?.and_then(|e| e["artifact_location"].as_str().map(str::to_owned)).into_iter().collect(),
            Object::RegisteredModel(name) => tx
                .query("SELECT storage_location, source FROM model_versions WHERE workspace = ? AND name = ?", &[ws.into(), renamed.unwrap_or(name).into()])?
                .iter()
                .map(|r| r.opt_text(0).unwrap_or_else(|| r.text(1)))
                .collect(),
        })
    })?;
    // Locations a client wrote to itself are not in tandem's store, and not tandem's to restore.
    Ok(roots
        .iter()
        .filter_map(|u| crate::artifacts::relative_to_workspace(u))
        .map(|r| r.trim_matches('/').to_owned())
        .filter(|r| !r.is_empty())
        .collect())
}

/// The sequence number of the last event of `ws` accepted at or before `at_ms`.
fn seq_at(store: &Store, ws: &str, at_ms: u64) -> Result<(u64, u64), MlflowError> {
    let log = local_log(store, ws)?;
    let n = cut(ws, &log, Some(at_ms)).map_err(|e| MlflowError::invalid(e.to_string()))?;
    Ok((
        log.events[..n].last().map(|e| e.seq).unwrap_or(0),
        log.head_seq(),
    ))
}

/// A store's own log of a workspace, as an archived history (its snapshot base, if it was
/// installed from one).
pub fn local_log(store: &Store, ws: &str) -> Result<Archived, MlflowError> {
    Ok(store.read(|tx| {
        Ok(Archived {
            events: queries::changes(tx, ws, 0, usize::MAX >> 1)?,
            base_seq: queries::log_base(tx, ws)?,
        })
    })?)
}

/// Takes the live workspace back to its state at `at_ms`, as one new event. Returns the
/// sequence number restored to and the log's length before.
pub fn in_place(
    store: &Store,
    ws: &str,
    at_ms: u64,
    principal: &str,
) -> Result<(u64, u64), MlflowError> {
    crate::api::access::check_lock(
        store,
        "restore/in-place",
        &tandem_core::access::Scope::Workspace(ws.to_owned()),
    )?;
    let (seq, total) = seq_at(store, ws, at_ms)?;
    if seq < 2 {
        return Err(MlflowError::invalid(format!(
            "workspace '{ws}' did not exist yet at {}",
            iso(at_ms)
        )));
    }
    let time = store.now_ms();
    store.write(ws, principal, |_| {
        Ok(Decision::change((), Op::RewindWorkspace { seq, time }))
    })?;
    Ok((seq, total))
}

/// What a single-object restore brought back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObjectRestored {
    pub object: String,
    /// The name it came back under, when the old one was taken (experiments, models).
    pub name: Option<String>,
    pub events: usize,
}

/// Brings back one object of the live workspace `ws` as it was at `at_ms` (its history from
/// `log`, the workspace's events), without touching anything else.
pub fn object(
    store: &Store,
    ws: &str,
    log: &Archived,
    at_ms: Option<u64>,
    object: &Object,
    principal: &str,
) -> Result<ObjectRestored, MlflowError> {
    let n = cut(ws, log, at_ms).map_err(|e| MlflowError::invalid(e.to_string()))?;
    let ops: Vec<Op> = log.events[..n]
        .iter()
        .map(|e| e.decode_op())
        .collect::<Result<_, _>>()
        .map_err(|e| MlflowError::new(tandem_core::ErrorCode::DataLoss, e.to_string()))?;
    let mut ops = history::history(&history::effective(&ops), object)
        .map_err(|e| MlflowError::not_found(e.to_string()))?;
    let mut renamed_to = None;
    let answer = store.write(ws, principal, |tx| {
        // What is left of the object in the live workspace goes first (it is the object's
        // later history, which the restore replaces).
        let mut out: Vec<Op> = Vec::new();
        match object {
            Object::Run(id) => {
                let exp = match ops.first() {
                    Some(Op::CreateRun { experiment_id, .. }) => experiment_id.clone(),
                    _ => String::new(),
                };
                match queries::experiment(tx, ws, &exp)? {
                    Some(e) if e["lifecycle_stage"] == "active" => {}
                    _ => return Err(MlflowError::invalid(format!("run {id} belongs to experiment {exp}, which is not active in workspace '{ws}'; restore or undelete the experiment first")).into()),
                }
                if queries::run_state(tx, ws, id)?.is_some() {
                    out.push(Op::PurgeRun { run_id: id.clone() });
                }
            }
            Object::Experiment(id) => {
                if queries::experiment(tx, ws, id)?.is_some() {
                    out.push(Op::PurgeExperiment { experiment_id: id.clone() });
                }
                // Its name may belong to another experiment by now: the restored one takes a
                // new name rather than take it away. Every name it had is rewritten to the
                // one it ends with, so no intermediate name can collide either.
                let final_name = ops.iter().fold(String::new(), |n, o| match o {
                    Op::CreateExperiment { name, .. } => name.clone(),
                    Op::RenameExperiment { new_name, experiment_id, .. } if experiment_id == id => new_name.clone(),
                    _ => n,
                });
                let mut name = final_name.clone();
                if let Some(other) = queries::experiment_by_name(tx, ws, &final_name)? {
                    if other["experiment_id"] != id.as_str() {
                        name = format!("{final_name} (restored {})", at_ms.map(iso).unwrap_or_else(|| "latest".into()));
                        while queries::experiment_by_name(tx, ws, &name)?.is_some() {
                            name.push('~');
                        }
                        renamed_to = Some(name.clone());
                    }
                }
                for o in ops.iter_mut() {
                    match o {
                        Op::CreateExperiment { name: n, .. } => *n = name.clone(),
                        Op::RenameExperiment { new_name, experiment_id, .. } if experiment_id == id => *new_name = name.clone(),
                        _ => {}
                    }
                }
            }
            Object::RegisteredModel(name) => {
                if let Some(r) = tx.query_one("SELECT deleted_time FROM registered_models WHERE workspace = ? AND name = ?", &[ws.into(), name.as_str().into()])? {
                    if r.opt_int(0).is_some() {
                        out.push(Op::PurgeRegisteredModel { name: name.clone() });
                    } else {
                        // A live model holds the name: the restored one comes back beside it.
                        let mut new_name = format!("{name} (restored {})", at_ms.map(iso).unwrap_or_else(|| "latest".into()));
                        while tx.query_one("SELECT 1 FROM registered_models WHERE workspace = ? AND name = ?", &[ws.into(), new_name.as_str().into()])?.is_some() {
                            new_name.push('~');
                        }
                        ops = history::with_model_renamed(&ops, &new_name);
                        renamed_to = Some(new_name);
                    }
                }
            }
        }
        out.extend(ops.iter().cloned());
        let n = out.len();
        Ok(Decision::changes(n, out))
    })?;
    Ok(ObjectRestored {
        object: object.to_string(),
        name: renamed_to,
        events: answer,
    })
}
