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
    pub events: u64,
    /// The earliest and latest instants a restore can reach (ms since the epoch).
    pub earliest_ms: Option<u64>,
    pub latest_ms: Option<u64>,
}

fn unavailable(e: object_store::Error) -> BackupError {
    BackupError::Unavailable(e.to_string())
}

impl Archive {
    pub fn open(url: &str) -> Result<Archive, BackupError> {
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match url.strip_prefix("file://") {
            Some(path) => {
                std::fs::create_dir_all(path).map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?;
                (Arc::new(object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| BackupError::Invalid(e.to_string()))?), ObjectPath::from(""))
            }
            None => crate::artifacts::object_store_for(url).map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?,
        };
        let blobs = crate::artifacts::Artifacts::open_unprobed(url).map_err(|e| BackupError::Invalid(format!("archive {url}: {e}")))?;
        Ok(Archive { store, prefix, url: url.to_owned(), blobs })
    }

    fn path(&self, key: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        ObjectPath::from(parts.join("/"))
    }

    /// The first sequence numbers of a workspace's segments, in order.
    async fn segment_starts(&self, ws: &str) -> Result<Vec<u64>, BackupError> {
        let listed = self.store.list_with_delimiter(Some(&self.path(&format!("archive/{ws}")))).await.map_err(unavailable)?;
        let mut starts: Vec<u64> = listed.objects.iter().filter_map(|o| o.location.filename()?.strip_suffix(".jsonl")?.parse().ok()).collect();
        starts.sort_unstable();
        Ok(starts)
    }

    async fn read_segment(&self, ws: &str, first: u64) -> Result<Vec<Event>, BackupError> {
        let got = self.store.get(&self.path(&format!("archive/{ws}/{first:020}.jsonl"))).await.map_err(unavailable)?;
        let bytes = got.bytes().await.map_err(unavailable)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| BackupError::Corrupt(format!("{ws}: segment {first} is not text")))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str::<Event>(l).map_err(|e| BackupError::Corrupt(format!("{ws}: segment {first}: {e}"))))
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
            Some(&first) => Ok(self.read_segment(ws, first).await?.last().map(|e| (e.seq, e.checksum.clone())).unwrap_or((first - 1, String::new()))),
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

    /// The archived bytes of an artifact, by checksum.
    pub async fn blob(&self, ws: &str, sha256: &str) -> Result<(crate::artifacts::ByteStream, u64), BackupError> {
        self.blobs.get(ws, &Self::blob_key(sha256)).await.map_err(|e| BackupError::Unavailable(e.message))
    }

    /// Copies into the archive the bytes every `PutArtifact` of `events` names, unless they
    /// are there already. Bytes that changed since their event (overwritten later) cannot be
    /// archived: their paths are returned.
    async fn archive_blobs(&self, artifacts: &crate::artifacts::Artifacts, ws: &str, events: &[tandem_core::Event]) -> Result<Vec<String>, BackupError> {
        let mut changed = Vec::new();
        for e in events.iter().filter(|e| e.op == "PutArtifact") {
            let Ok(tandem_core::Op::PutArtifact { path, sha256, .. }) = e.decode_op() else { continue };
            let key = Self::blob_key(&sha256);
            if self.blobs.exists(ws, &key).await.map_err(|e| BackupError::Unavailable(e.message))? {
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
            let (_, got) = self.blobs.put(ws, &key, stream).await.map_err(|e| BackupError::Unavailable(e.message))?;
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
    pub async fn archive_upto(&self, store: &Store, ws: &str, upto: u64, artifacts: Option<&crate::artifacts::Artifacts>) -> Result<u64, BackupError> {
        let (done, last_checksum) = self.last_archived(ws).await?;
        if done >= upto {
            return Ok(done);
        }
        let (s, w) = (store.clone(), ws.to_owned());
        let n = SEGMENT_EVENTS.min((upto - done).min(usize::MAX as u64) as usize);
        let (ours, events) = tokio::task::spawn_blocking(move || {
            s.read(|tx| {
                let ours = if done == 0 { Some(GENESIS_CHECKSUM.to_owned()) } else { queries::changes(tx, &w, done - 1, 1)?.pop().map(|e| e.checksum) };
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
        let Some(last) = events.last().map(|e| e.seq) else { return Ok(done) };
        if let Some(a) = artifacts {
            for path in self.archive_blobs(a, ws, &events).await? {
                tracing::warn!(workspace = %ws, "artifact '{path}' changed or vanished before it was archived; restores will report it missing");
            }
        }
        let mut body = String::new();
        for e in &events {
            body.push_str(&serde_json::to_string(e).map_err(|e| BackupError::Invalid(e.to_string()))?);
            body.push('\n');
        }
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(&format!("archive/{ws}/{:020}.jsonl", done + 1)), PutPayload::from(Bytes::from(body)), opts).await {
            Ok(_) => Ok(last),
            // Another archiver wrote this segment first; the next round continues after it.
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(done),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every archived event of a workspace, checked: consecutive, chained, decodable.
    pub async fn read_all(&self, ws: &str) -> Result<Vec<Event>, BackupError> {
        let mut events: Vec<Event> = Vec::new();
        for first in self.segment_starts(ws).await? {
            let expected = events.last().map(|e| e.seq + 1).unwrap_or(1);
            if first != expected {
                return Err(BackupError::Corrupt(format!("{ws}: segment starting at {first} where {expected} was expected")));
            }
            events.extend(self.read_segment(ws, first).await?);
        }
        verify_chain(0, GENESIS_CHECKSUM, Hlc(0), &events).map_err(|e| BackupError::Corrupt(format!("{ws}: {e}")))?;
        Ok(events)
    }

    pub async fn workspaces(&self) -> Result<Vec<String>, BackupError> {
        let listed = self.store.list_with_delimiter(Some(&self.path("archive"))).await.map_err(unavailable)?;
        let mut out: Vec<String> = listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        out.sort();
        Ok(out)
    }

    pub async fn summary(&self, ws: &str) -> Result<Summary, BackupError> {
        let starts = self.segment_starts(ws).await?;
        let events = self.read_all(ws).await?;
        Ok(Summary { workspace: ws.to_owned(), segments: starts.len(), events: events.len() as u64, earliest_ms: events.first().map(|e| e.hlc.wall_ms()), latest_ms: events.last().map(|e| e.hlc.wall_ms()) })
    }

    /// Rebuilds `ws` as it was at `at_ms` (everything accepted at or before it) in `target`,
    /// which must not have the workspace already (or be part-way through restoring it).
    /// Returns the number of events in the restored log.
    pub async fn restore(&self, ws: &str, at_ms: Option<u64>, target: &Store) -> Result<u64, BackupError> {
        let events = self.read_all(ws).await?;
        let cut = crate::restore::cut(ws, &events, at_ms)?;
        Ok(crate::restore::into_workspace(events, cut, &self.url, target, ws, |_, _| {}).await?.events)
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
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
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
pub fn spawn_archiver(archive: Archive, store: Store, artifacts: crate::artifacts::Artifacts, interval: Duration) {
    tokio::spawn(async move {
        loop {
            let s = store.clone();
            let workspaces = tokio::task::spawn_blocking(move || s.read(|tx| Ok(tx.query("SELECT workspace FROM log_heads", &[])?.iter().map(|r| r.text(0)).collect::<Vec<_>>())))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default();
            for ws in workspaces {
                // Catch up fully before sleeping: a segment per round would fall behind.
                loop {
                    let before = archive.archived_through(&ws).await.unwrap_or(0);
                    match archive.archive_upto(&store, &ws, u64::MAX, Some(&artifacts)).await {
                        Ok(after) if after > before => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(workspace = %ws, "archiving: {e}");
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_795_320_186_909), "2026-11-22T04:03:06.909Z");
        assert_eq!(super::parse_instant("2026-11-22T04:03:06.909Z"), Some(1_795_320_186_909));
        assert_eq!(super::parse_instant("2026-11-22T04:03:06Z"), Some(1_795_320_186_000));
        assert_eq!(super::parse_instant("1795320186909"), Some(1_795_320_186_909));
        assert_eq!(super::parse_instant("yesterday"), None);
    }
}
