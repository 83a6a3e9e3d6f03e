//! Continuous backup: each workspace's change log, archived to object storage as it grows,
//! and restored from there to any instant. See docs/design/backup-restore.md.
//!
//! Layout: `archive/<ws>/<first-seq, 20 digits>.jsonl`, one event per line, exactly as the log
//! serves them (checksums included). Segments are created only once (create-only writes),
//! named by their first sequence number: two archivers racing for the same range cannot both
//! write it, and the next segment always starts where the last one ended, so the archive is
//! gap-free and duplicate-free by construction, on every backend.
//!
//! Architecture invariant: backup and restore read and write the change-log format only;
//! state is always rebuilt by `Store::replay`.

use crate::store::{queries, Store};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::event::{verify_chain, Event, GENESIS_CHECKSUM};
use tandem_core::Hlc;

pub const SEGMENT_EVENTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("archive unavailable: {0}")]
    Unavailable(String),
    #[error("archive corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
    /// The archive holds events (up to `archived`) that this store's log does not: it must
    /// follow the archive before archiving more.
    #[error("the archive's history (through event {archived}) is not this store's")]
    Diverged { archived: u64 },
}

#[derive(Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    pub url: String,
    /// Artifact bytes named by archived `PutArtifact` events, content-addressed
    /// (`workspaces/<ws>/blobs/<sha256>`): what restores fall back on once the live bytes are
    /// gone, overwritten, or in a lost region.
    blobs: crate::artifacts::Artifacts,
}

/// What the archive holds for one workspace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub workspace: String,
    pub segments: usize,
    /// The last archived sequence number.
    pub events: u64,
    /// The snapshot older history was compacted into, if any.
    pub snapshot_seq: Option<u64>,
    /// The earliest and latest instants a restore can reach (ms since the epoch).
    pub earliest_ms: Option<u64>,
    pub latest_ms: Option<u64>,
}

/// What `Archive::window` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub earliest_ms: Option<u64>,
    pub latest_ms: Option<u64>,
    pub head_seq: u64,
    /// The snapshot and its instant, to pass back as `known`.
    pub snapshot: Option<(u64, u64)>,
}

/// A workspace's archived history: a compacted snapshot (events up to `base_seq`, with gaps)
/// followed by every later event, consecutive.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub events: Vec<Event>,
    /// The snapshot's last event (0: no snapshot, the log is whole from event 1).
    pub base_seq: u64,
}

impl Archived {
    pub fn head_seq(&self) -> u64 {
        self.events.last().map(|e| e.seq).unwrap_or(0)
    }
    /// How many events of `events` the snapshot holds.
    pub fn base_len(&self) -> usize {
        self.events.partition_point(|e| e.seq <= self.base_seq)
    }
    /// The earliest instant a restore can reach exactly: the snapshot's, or the first event's.
    pub fn earliest_ms(&self) -> Option<u64> {
        match self.base_len() {
            0 => self.events.first().map(|e| e.hlc.wall_ms()),
            n => Some(self.events[n - 1].hlc.wall_ms()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompactReport {
    pub seq: u64,
    pub events_before: u64,
    pub events_kept: u64,
    pub segments_deleted: u64,
}

/// Replays a (possibly compacted) log into a scratch store and dumps the state.
async fn replay_dump(ws: &str, events: &[Event]) -> Result<serde_json::Value, BackupError> {
    let (w, ev) = (ws.to_owned(), events.to_vec());
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir().join(format!(
            "tandem-compact-{}",
            tandem_core::ids::hex(&crate::api::random_bytes::<8>())
        ));
        let result = (|| {
            let backend = crate::store::sqlite::Sqlite::open(
                &dir.join("scratch.sqlite"),
                crate::store::sqlite::Durability::Normal,
            )?;
            let store = Store::new(
                Arc::new(backend),
                Arc::new(crate::store::SystemClock),
                "scratch",
            )?;
            store.install(&w, &ev)?;
            store.read(|tx| queries::dump(tx, &w))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await
    .map_err(|e| BackupError::Invalid(e.to_string()))?
    .map_err(BackupError::from)
}

fn unavailable(e: object_store::Error) -> BackupError {
    BackupError::Unavailable(e.to_string())
}

impl Archive {
    pub fn open(url: &str) -> Result<Archive, BackupError> {
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match url.strip_prefix("file://")
        {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?;
                (
                    Arc::new(
                        object_store::local::LocalFileSystem::new_with_prefix(path)
                            .map_err(|e| BackupError::Invalid(e.to_string()))?,
                    ),
                    ObjectPath::from(""),
                )
            }
            None => crate::artifacts::object_store_for(url)
                .map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?,
        };
        let blobs = crate::artifacts::Artifacts::open_unprobed(url)
            .map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?;
        Ok(Archive {
            store,
            prefix,
            url: url.to_owned(),
            blobs,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        ObjectPath::from(parts.join("/"))
    }

    /// The first sequence numbers of a workspace's segments, in order.
    async fn segment_starts(&self, ws: &str) -> Result<Vec<u64>, BackupError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(&format!("archive/{ws}"))))
            .await
            .map_err(unavailable)?;
        let mut starts: Vec<u64> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".jsonl")?.parse().ok())
            .collect();
        starts.sort_unstable();
        Ok(starts)
    }

    async fn read_segment(&self, ws: &str, first: u64) -> Result<Vec<Event>, BackupError> {
        let got = self
            .store
            .get(&self.path(&format!("archive/{ws}/{first:020}.jsonl")))
            .await
            .map_err(unavailable)?;
        let bytes = got.bytes().await.map_err(unavailable)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| BackupError::Corrupt(format!("{ws}: segment {first} is not text")))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str::<Event>(l)
                    .map_err(|e| BackupError::Corrupt(format!("{ws}: segment {first}: {e}")))
            })
            .collect()
    }

    /// The last sequence number archived for a workspace (0 if none).
    pub async fn archived_through(&self, ws: &str) -> Result<u64, BackupError> {
        Ok(self.last_archived(ws).await?.0)
    }

    /// The last archived event's sequence number and checksum (0 and the genesis checksum if
    /// none).
    async fn last_archived(&self, ws: &str) -> Result<(u64, String), BackupError> {
        match self.segment_starts(ws).await?.last() {
            None => Ok((0, GENESIS_CHECKSUM.to_owned())),
            Some(&first) => Ok(self
                .read_segment(ws, first)
                .await?
                .last()
                .map(|e| (e.seq, e.checksum.clone()))
                .unwrap_or((first - 1, String::new()))),
        }
    }

    /// Archives the next segment of a workspace's log, if there is anything new. Returns the
    /// last sequence number now archived.
    pub async fn archive_once(&self, store: &Store, ws: &str) -> Result<u64, BackupError> {
        self.archive_upto(store, ws, u64::MAX, None).await
    }

    fn blob_key(sha256: &str) -> String {
        format!("blobs/{sha256}")
    }

    /// The archived bytes of an artifact, by checksum (None: the archive has no such blob).
    pub async fn blob(
        &self,
        ws: &str,
        sha256: &str,
    ) -> Result<Option<(crate::artifacts::ByteStream, u64)>, BackupError> {
        match self.blobs.get(ws, &Self::blob_key(sha256)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.code == tandem_core::ErrorCode::ResourceDoesNotExist => Ok(None),
            Err(e) => Err(BackupError::Unavailable(e.message)),
        }
    }

    /// Checks that every artifact the archived history of `ws` names has its blob, with the
    /// recorded SHA-256. Returns the files that would not come back: (path, sha256, problem),
    /// and how many blobs were checked.
    pub async fn verify_blobs(
        &self,
        ws: &str,
        archived: &Archived,
    ) -> Result<(u64, Vec<(String, String, String)>), BackupError> {
        let mut wanted: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for e in archived.events.iter().filter(|e| e.op == "PutArtifact") {
            if let Ok(tandem_core::Op::PutArtifact { path, sha256, .. }) = e.decode_op() {
                let paths = wanted.entry(sha256).or_default();
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        let mut problems = Vec::new();
        for (sha, paths) in &wanted {
            let problem = match self.blobs.sha256_of(ws, &Self::blob_key(sha)).await {
                Ok(None) => Some("no blob in the archive".to_owned()),
                Ok(Some(got)) if got != *sha => {
                    Some(format!("blob is corrupt: its bytes hash to {got}"))
                }
                Ok(Some(_)) => None,
                Err(e) => {
                    return Err(BackupError::Unavailable(format!(
                        "reading blob {sha}: {}",
                        e.message
                    )))
                }
            };
            if let Some(p) = problem {
                problems.extend(
                    paths
                        .iter()
                        .map(|path| (path.clone(), sha.clone(), p.clone())),
                );
            }
        }
        Ok((wanted.len() as u64, problems))
    }

    /// Copies into the archive the bytes every `PutArtifact` of `events` names, unless they
    /// are there already. Bytes that changed since their event (overwritten later) cannot be
    /// archived: their paths are returned.
    async fn archive_blobs(
        &self,
        artifacts: &crate::artifacts::Artifacts,
        ws: &str,
        events: &[tandem_core::Event],
    ) -> Result<Vec<String>, BackupError> {
        let mut changed = Vec::new();
        for e in events.iter().filter(|e| e.op == "PutArtifact") {
            let Ok(tandem_core::Op::PutArtifact { path, sha256, .. }) = e.decode_op() else {
                continue;
            };
            let key = Self::blob_key(&sha256);
            if self
                .blobs
                .exists(ws, &key)
                .await
                .map_err(|e| BackupError::Unavailable(e.message))?
            {
                continue;
            }
            let (stream, _) = match artifacts.get(ws, &path).await {
                Ok(s) => s,
                Err(e) if e.code == tandem_core::ErrorCode::ResourceDoesNotExist => {
                    changed.push(path);
                    continue;
                }
                Err(e) => return Err(BackupError::Unavailable(e.message)),
            };
            let (_, got) = self
                .blobs
                .put(ws, &key, stream)
                .await
                .map_err(|e| BackupError::Unavailable(e.message))?;
            if got != sha256 {
                let _ = self.blobs.delete(ws, &key).await;
                changed.push(path);
            }
        }
        Ok(changed)
    }

    /// As [`Archive::archive_once`], never past event `upto` (what a region's standby has
    /// confirmed: an archive must not hold events a failover could take back).
    /// With `artifacts`, the bytes of the segment's artifacts are archived before it.
    pub async fn archive_upto(
        &self,
        store: &Store,
        ws: &str,
        upto: u64,
        artifacts: Option<&crate::artifacts::Artifacts>,
    ) -> Result<u64, BackupError> {
        let (done, last_checksum) = self.last_archived(ws).await?;
        if done >= upto {
            return Ok(done);
        }
        let (s, w) = (store.clone(), ws.to_owned());
        let n = SEGMENT_EVENTS.min((upto - done).min(usize::MAX as u64) as usize);
        let (ours, events) = tokio::task::spawn_blocking(move || {
            s.read(|tx| {
                let ours = if done == 0 {
                    Some(GENESIS_CHECKSUM.to_owned())
                } else {
                    queries::changes(tx, &w, done - 1, 1)?
                        .pop()
                        .map(|e| e.checksum)
                };
                Ok((ours, queries::changes(tx, &w, done, n)?))
            })
        })
        .await
        .map_err(|e| BackupError::Invalid(e.to_string()))??;
        // The next segment must continue the archived history, not just follow its number:
        // after a failover the archive may hold a tail this store never had.
        if ours.as_deref() != Some(last_checksum.as_str()) {
            return Err(BackupError::Diverged { archived: done });
        }
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(done);
        };
        if let Some(a) = artifacts {
            for path in self.archive_blobs(a, ws, &events).await? {
                tracing::warn!(workspace = %ws, "artifact '{path}' changed or vanished before it was archived; restores will report it missing");
            }
        }
        let mut body = String::new();
        for e in &events {
            body.push_str(
                &serde_json::to_string(e).map_err(|e| BackupError::Invalid(e.to_string()))?,
            );
            body.push('\n');
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(
                &self.path(&format!("archive/{ws}/{:020}.jsonl", done + 1)),
                PutPayload::from(Bytes::from(body)),
                opts,
            )
            .await
        {
            Ok(_) => Ok(last),
            // Another archiver wrote this segment first; the next round continues after it.
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(done),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A workspace's archived history, checked: its latest snapshot (if any), then every
    /// segment after it, consecutive, chained to the snapshot's last event, decodable.
    pub async fn read_all(&self, ws: &str) -> Result<Archived, BackupError> {
        let snapshot = self.latest_snapshot(ws).await?;
        let base = snapshot.as_ref().map(|s| s.0).unwrap_or(0);
        let mut events: Vec<Event> = snapshot.map(|s| s.1).unwrap_or_default();
        let mut tail: Vec<Event> = Vec::new();
        for first in self.segment_starts(ws).await? {
            let segment = self.read_segment(ws, first).await?;
            // Segments the snapshot replaced may linger (compaction deletes them after).
            if segment.last().is_some_and(|e| e.seq <= base) {
                continue;
            }
            let expected = tail.last().map(|e| e.seq + 1).unwrap_or(base + 1);
            let segment: Vec<Event> = segment.into_iter().filter(|e| e.seq > base).collect();
            if segment.first().map(|e| e.seq) != Some(expected) {
                return Err(BackupError::Corrupt(format!(
                    "{ws}: segment starting at {first} where {expected} was expected"
                )));
            }
            tail.extend(segment);
        }
        let (prev_seq, prev_sum, prev_hlc) = match events.last() {
            Some(e) => (e.seq, e.checksum.clone(), e.hlc),
            None => (0, GENESIS_CHECKSUM.to_owned(), Hlc(0)),
        };
        verify_chain(prev_seq, &prev_sum, prev_hlc, &tail)
            .map_err(|e| BackupError::Corrupt(format!("{ws}: {e}")))?;
        events.extend(tail);
        Ok(Archived {
            events,
            base_seq: base,
        })
    }

    async fn snapshot_seqs(&self, ws: &str) -> Result<Vec<u64>, BackupError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(&format!("archive/{ws}"))))
            .await
            .map_err(unavailable)?;
        let mut seqs: Vec<u64> = listed
            .objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()?
                    .strip_prefix("snapshot-")?
                    .strip_suffix(".jsonl")?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The latest snapshot: its last sequence number and its events (a compacted log).
    async fn latest_snapshot(&self, ws: &str) -> Result<Option<(u64, Vec<Event>)>, BackupError> {
        let Some(&seq) = self.snapshot_seqs(ws).await?.last() else {
            return Ok(None);
        };
        let got = self
            .store
            .get(&self.path(&format!("archive/{ws}/snapshot-{seq:020}.jsonl")))
            .await
            .map_err(unavailable)?;
        let bytes = got.bytes().await.map_err(unavailable)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| BackupError::Corrupt(format!("{ws}: snapshot {seq} is not text")))?;
        let (header, body) = text
            .split_once('\n')
            .ok_or_else(|| BackupError::Corrupt(format!("{ws}: snapshot {seq} has no header")))?;
        let header: serde_json::Value = serde_json::from_str(header)
            .map_err(|e| BackupError::Corrupt(format!("{ws}: snapshot {seq}: {e}")))?;
        if header["sha256"].as_str()
            != Some(tandem_core::ids::hex(&sha2::Sha256::digest(body.as_bytes())).as_str())
            || header["seq"].as_u64() != Some(seq)
        {
            return Err(BackupError::Corrupt(format!(
                "{ws}: snapshot {seq} does not match its checksum"
            )));
        }
        let events: Vec<Event> = body
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str::<Event>(l)
                    .map_err(|e| BackupError::Corrupt(format!("{ws}: snapshot {seq}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if events.last().map(|e| e.seq) != Some(seq)
            || events
                .windows(2)
                .any(|w| w[0].seq >= w[1].seq || w[0].hlc >= w[1].hlc)
            || events.iter().any(|e| e.decode_op().is_err())
        {
            return Err(BackupError::Corrupt(format!(
                "{ws}: snapshot {seq} is not an ordered, decodable log ending at {seq}"
            )));
        }
        Ok(Some((seq, events)))
    }

    /// Compacts the history older than `keep_ms` (before `now_ms`) into a snapshot: the
    /// change-log events whose replay gives the state after the last of them, without what was
    /// purged or undone. The snapshot is written only once replaying it gives exactly the state
    /// replaying the events it replaces gives; then the segments it replaces are deleted.
    /// Returns the snapshot's last sequence number, if one was written.
    pub async fn compact(
        &self,
        ws: &str,
        keep_ms: u64,
        now_ms: u64,
    ) -> Result<Option<CompactReport>, BackupError> {
        let archived = self.read_all(ws).await?;
        let horizon = now_ms.saturating_sub(keep_ms);
        // The newest segment end older than the horizon.
        let mut cutoff = 0;
        for first in self.segment_starts(ws).await? {
            let seg = self.read_segment(ws, first).await?;
            match seg.last() {
                Some(last) if last.hlc.wall_ms() < horizon => cutoff = cutoff.max(last.seq),
                _ => {}
            }
        }
        if cutoff <= archived.base_seq {
            return Ok(None);
        }
        let upto = archived.events.partition_point(|e| e.seq <= cutoff);
        let prefix = &archived.events[..upto];
        let ops: Vec<tandem_core::Op> = prefix
            .iter()
            .map(|e| e.decode_op())
            .collect::<Result<_, _>>()
            .map_err(|e| BackupError::Corrupt(e.to_string()))?;
        // The snapshot ends at its last kept event; compaction is decided for that prefix.
        let first_pass = tandem_core::history::compact(&ops);
        let Some(end) = first_pass.iter().rposition(|k| *k) else {
            return Ok(None);
        };
        let ops = &ops[..=end];
        let prefix = &prefix[..=end];
        let candidates = [tandem_core::history::compact(ops), vec![true; ops.len()]];
        let full = replay_dump(ws, prefix).await?;
        for keep in candidates {
            let kept: Vec<Event> = prefix
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(e, _)| e.clone())
                .collect();
            if kept.last().map(|e| e.seq) != Some(prefix[end].seq) {
                continue;
            }
            if replay_dump(ws, &kept).await? != full {
                tracing::warn!(workspace = %ws, "compaction would change the state at event {}; trying a weaker one", prefix[end].seq);
                continue;
            }
            let seq = prefix[end].seq;
            let mut body = String::new();
            for e in &kept {
                body.push_str(
                    &serde_json::to_string(e).map_err(|e| BackupError::Invalid(e.to_string()))?,
                );
                body.push('\n');
            }
            let header = serde_json::json!({ "snapshot": ws, "seq": seq, "events": kept.len(), "replaces": prefix.len(), "sha256": tandem_core::ids::hex(&sha2::Sha256::digest(body.as_bytes())) });
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(
                    &self.path(&format!("archive/{ws}/snapshot-{seq:020}.jsonl")),
                    PutPayload::from(Bytes::from(format!("{header}\n{body}"))),
                    opts,
                )
                .await
            {
                Ok(_)
                | Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
            // Only now that the snapshot is durable do the objects it replaces go.
            let mut deleted = 0;
            for first in self.segment_starts(ws).await? {
                let seg = self.read_segment(ws, first).await?;
                if seg.last().is_some_and(|e| e.seq <= seq) {
                    self.store
                        .delete(&self.path(&format!("archive/{ws}/{first:020}.jsonl")))
                        .await
                        .map_err(unavailable)?;
                    deleted += 1;
                }
            }
            for old in self
                .snapshot_seqs(ws)
                .await?
                .into_iter()
                .filter(|s| *s < seq)
            {
                self.store
                    .delete(&self.path(&format!("archive/{ws}/snapshot-{old:020}.jsonl")))
                    .await
                    .map_err(unavailable)?;
            }
            return Ok(Some(CompactReport {
                seq,
                events_before: prefix.len() as u64,
                events_kept: kept.len() as u64,
                segments_deleted: deleted,
            }));
        }
        Ok(None)
    }

    pub async fn workspaces(&self) -> Result<Vec<String>, BackupError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path("archive")))
            .await
            .map_err(unavailable)?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The restorable window (earliest and latest instant, last archived sequence number)
    /// without reading the whole archive: the newest segment, and the first segment or the
    /// snapshot for the earliest instant. `known` is a previous answer's `(snapshot_seq,
    /// earliest_ms)`: while the snapshot is the same, it is not read again.
    pub async fn window(&self, ws: &str, known: Option<(u64, u64)>) -> Result<Window, BackupError> {
        let snapshot = self.snapshot_seqs(ws).await?.last().copied();
        let starts = self.segment_starts(ws).await?;
        let last = match starts.last() {
            Some(&first) => self.read_segment(ws, first).await?.last().cloned(),
            None => None,
        };
        let (earliest_ms, snapshot_head) = match (snapshot, known) {
            (Some(seq), Some((k, ms))) if k == seq => (Some(ms), Some((seq, ms))),
            (Some(_), _) => match self.latest_snapshot(ws).await? {
                Some((seq, events)) => {
                    let ms = events.last().map(|e| e.hlc.wall_ms());
                    (ms, ms.map(|ms| (seq, ms)))
                }
                None => (None, None),
            },
            (None, _) => match starts.first() {
                Some(&first) => (
                    self.read_segment(ws, first)
                        .await?
                        .first()
                        .map(|e| e.hlc.wall_ms()),
                    None,
                ),
                None => (None, None),
            },
        };
        // Segments the snapshot replaced may linger: the snapshot may be the newest.
        let (head, latest_ms) = match (&last, snapshot_head) {
            (Some(e), Some((seq, ms))) if e.seq <= seq => (seq, Some(ms)),
            (Some(e), _) => (e.seq, Some(e.hlc.wall_ms())),
            (None, Some((seq, ms))) => (seq, Some(ms)),
            (None, None) => (0, None),
        };
        Ok(Window {
            earliest_ms,
            latest_ms,
            head_seq: head,
            snapshot: snapshot_head,
        })
    }

    pub async fn summary(&self, ws: &str) -> Result<Summary, BackupError> {
        let starts = self.segment_starts(ws).await?;
        let a = self.read_all(ws).await?;
        Ok(Summary {
            workspace: ws.to_owned(),
            segments: starts.len(),
            events: a.head_seq(),
            snapshot_seq: (a.base_seq > 0).then_some(a.base_seq),
            earliest_ms: a.earliest_ms(),
            latest_ms: a.events.last().map(|e| e.hlc.wall_ms()),
        })
    }

    /// Rebuilds `ws` as it was at `at_ms` (everything accepted at or before it) in `target`,
    /// which must not have the workspace already (or be part-way through restoring it).
    /// Returns the number of events in the restored log.
    pub async fn restore(
        &self,
        ws: &str,
        at_ms: Option<u64>,
        target: &Store,
    ) -> Result<u64, BackupError> {
        let archived = self.read_all(ws).await?;
        let cut = crate::restore::cut(ws, &archived, at_ms)?;
        Ok(
            crate::restore::into_workspace(archived, cut, &self.url, target, ws, |_, _| {})
                .await?
                .events,
        )
    }
}

/// A readable UTC instant for messages.
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Parses an instant: milliseconds since the epoch, or UTC RFC 3339 (`2026-11-22T04:03:06Z`,
/// fractional seconds allowed).
pub fn parse_instant(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let ms_frac: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86400 + hh * 3600 + mm * 60 + ss) * 1000) + ms_frac).ok()
}

/// Archives every workspace of `store` every `interval`, until the process ends.
pub fn spawn_archiver(
    archive: Archive,
    store: Store,
    artifacts: crate::artifacts::Artifacts,
    interval: Duration,
) {
    tokio::spawn(async move {
        let mut last_compaction = std::time::Instant::now();
        loop {
            let s = store.clone();
            let workspaces = tokio::task::spawn_blocking(move || {
                s.read(|tx| {
                    Ok(tx
                        .query("SELECT workspace FROM log_heads", &[])?
                        .iter()
                        .map(|r| r.text(0))
                        .collect::<Vec<_>>())
                })
            })
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
            for ws in workspaces {
                // Catch up fully before sleeping: a segment per round would fall behind.
                loop {
                    let before = archive.archived_through(&ws).await.unwrap_or(0);
                    match archive
                        .archive_upto(&store, &ws, u64::MAX, Some(&artifacts))
                        .await
                    {
                        Ok(after) if after > before => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(workspace = %ws, "archiving: {e}");
                            break;
                        }
                    }
                }
            }
            // Hourly: history older than each workspace's retention goes into a snapshot.
            if last_compaction.elapsed() >= COMPACT_EVERY {
                last_compaction = std::time::Instant::now();
                compact_all(&archive, &store).await;
            }
            tokio::time::sleep(interval).await;
        }
    });
}

/// How often archivers compact history older than each workspace's retention.
pub const COMPACT_EVERY: Duration = Duration::from_secs(3600);

/// Compacts every workspace's archived history older than its retention period.
pub async fn compact_all(archive: &Archive, store: &Store) {
    let s = store.clone();
    let kept: Vec<(String, i64)> = tokio::task::spawn_blocking(move || {
        s.read(|tx| {
            Ok(tx
                .query("SELECT name, retention_days FROM workspaces", &[])?
                .iter()
                .map(|r| (r.text(0), r.int(1)))
                .collect())
        })
    })
    .await
    .ok()
    .and_then(|r| r.ok())
    .unwrap_or_default();
    for (ws, days) in kept {
        compact_one(archive, &ws, days).await;
    }
}

pub async fn compact_one(archive: &Archive, ws: &str, days: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    match archive
        .compact(ws, days.max(1) as u64 * 86_400_000, now)
        .await
    {
        Ok(Some(r)) => {
            tracing::info!(workspace = %ws, "compacted events 1..{} into a snapshot of {} events", r.seq, r.events_kept)
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(workspace = %ws, "compaction: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_795_320_186_909), "2026-11-22T04:03:06.909Z");
        assert_eq!(
            super::parse_instant("2026-11-22T04:03:06.909Z"),
            Some(1_795_320_186_909)
        );
        assert_eq!(
            super::parse_instant("2026-11-22T04:03:06Z"),
            Some(1_795_320_186_000)
        );
        assert_eq!(
            super::parse_instant("1795320186909"),
            Some(1_795_320_186_909)
        );
        assert_eq!(super::parse_instant("yesterday"), None);
    }
}
