//! Artifact bytes, per workspace, under one root. Today a local folder; object storage
//! (through the `object_store` crate) comes with the scale-out work.
//!
//! Uploads stream to a temporary file, are fsynced, then renamed into place, so a reader
//! never sees half a file and a crash leaves at most an orphaned temporary file. Only after
//! that does the caller append the `PutArtifact` event that makes the upload part of the
//! workspace's history.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tandem_core::{validate, MlflowError, Result};
use tokio::io::AsyncWriteExt;

#[derive(Clone)]
pub struct Artifacts {
    root: Arc<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub name: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

fn io_err(what: &str, e: std::io::Error) -> MlflowError {
    MlflowError::internal(format!("artifact store: {what}: {e}"))
}

/// The path below the workspace's artifact root named by an `mlflow-artifacts:` URI
/// (`mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host/1/abc/artifacts`).
pub fn relative_to_workspace(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let rest = match rest.strip_prefix("//") {
        Some(hosted) => &hosted[hosted.find('/')?..],
        None => rest,
    };
    Some(rest.trim_start_matches('/'))
}

impl Artifacts {
    pub fn local(root: &Path) -> std::io::Result<Artifacts> {
        std::fs::create_dir_all(root.join(".tmp"))?;
        Ok(Artifacts { root: Arc::new(root.to_owned()) })
    }

    /// The file for `rel` in `ws`. `rel` must already be validated as a safe relative path.
    fn resolve(&self, ws: &str, rel: &str) -> Result<PathBuf> {
        if !rel.is_empty() {
            validate::artifact_path(rel)?;
        }
        let mut p = self.root.join("workspaces").join(ws);
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            p.push(part);
        }
        Ok(p)
    }

    pub fn list(&self, ws: &str, rel: &str) -> Result<Vec<FileInfo>> {
        let dir = self.resolve(ws, rel.trim_end_matches('/'))?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", e))?;
            let meta = entry.metadata().map_err(|e| io_err("list", e))?;
            out.push(FileInfo {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: meta.is_dir(),
                size: if meta.is_dir() { None } else { Some(meta.len()) },
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streams `body` into `rel`. Returns the size and SHA-256 of what was stored.
    pub async fn put<S, E>(&self, ws: &str, rel: &str, body: S) -> Result<(u64, String)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if rel.is_empty() {
            return Err(MlflowError::invalid("An artifact path is required"));
        }
        let dest = self.resolve(ws, rel)?;
        write_durably(&self.root.join(".tmp"), &dest, body).await
    }

    pub async fn open(&self, ws: &str, rel: &str) -> Result<(tokio::fs::File, u64)> {
        let p = self.resolve(ws, rel)?;
        let meta = match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => m,
            Ok(_) | Err(_) => return Err(MlflowError::not_found(format!("Artifact '{rel}' not found"))),
        };
        let f = tokio::fs::File::open(&p).await.map_err(|e| io_err("open", e))?;
        Ok((f, meta.len()))
    }

    /// Removes a file or a whole directory. Returns whether anything was there.
    pub fn delete(&self, ws: &str, rel: &str) -> Result<bool> {
        let p = self.resolve(ws, rel)?;
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).map_err(|e| io_err("delete", e))?,
            Ok(_) => std::fs::remove_file(&p).map_err(|e| io_err("delete", e))?,
            Err(_) => return Ok(false),
        }
        Ok(true)
    }
}

/// A multipart upload in progress, as stored beside its parts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    pub workspace: String,
    pub path: String,
    pub num_parts: u32,
}

pub const MAX_PARTS: u32 = 10_000;

fn upload_id_ok(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Artifacts {
    fn upload_dir(&self, id: &str) -> Result<PathBuf> {
        if !upload_id_ok(id) {
            return Err(MlflowError::invalid(format!("Invalid upload_id '{id}'")));
        }
        Ok(self.root.join(".uploads").join(id))
    }

    /// Starts a multipart upload of `rel`; parts arrive separately, then `complete_upload`.
    pub async fn create_upload(&self, ws: &str, rel: &str, num_parts: u32) -> Result<String> {
        self.resolve(ws, rel)?;
        if rel.is_empty() {
            return Err(MlflowError::invalid("An artifact path is required"));
        }
        if num_parts == 0 || num_parts > MAX_PARTS {
            return Err(MlflowError::invalid(format!("num_parts must be between 1 and {MAX_PARTS}, got {num_parts}")));
        }
        let id = tandem_core::ids::hex(&crate::api::random_bytes::<16>());
        let dir = self.upload_dir(&id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| io_err("create upload", e))?;
        let meta = serde_json::to_vec(&Upload { workspace: ws.to_owned(), path: rel.to_owned(), num_parts }).map_err(|e| MlflowError::internal(e.to_string()))?;
        tokio::fs::write(dir.join("upload.json"), meta).await.map_err(|e| io_err("create upload", e))?;
        Ok(id)
    }

    pub async fn upload(&self, id: &str) -> Result<Upload> {
        let dir = self.upload_dir(id)?;
        let meta = tokio::fs::read(dir.join("upload.json")).await.map_err(|_| MlflowError::not_found(format!("Upload '{id}' not found")))?;
        serde_json::from_slice(&meta).map_err(|e| MlflowError::internal(format!("upload '{id}': {e}")))
    }

    /// Stores one part; returns its ETag (the part's SHA-256).
    pub async fn put_part<S, E>(&self, id: &str, part: u32, body: S) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let upload = self.upload(id).await?;
        if part == 0 || part > upload.num_parts {
            return Err(MlflowError::invalid(format!("part_number must be between 1 and {}, got {part}", upload.num_parts)));
        }
        let dir = self.upload_dir(id)?;
        let (_, sha) = write_durably(&self.root.join(".tmp"), &dir.join(format!("part-{part:05}")), body).await?;
        Ok(sha)
    }

    /// Joins the parts, in order, into the artifact. The parts listed must be every part of
    /// the upload, each with the ETag its upload returned.
    pub async fn complete_upload(&self, ws: &str, rel: &str, id: &str, parts: &[(u32, String)]) -> Result<(u64, String)> {
        let upload = self.upload(id).await?;
        if upload.workspace != ws || upload.path != rel {
            return Err(MlflowError::invalid(format!("Upload '{id}' is for another artifact path")));
        }
        let mut numbers: Vec<u32> = parts.iter().map(|p| p.0).collect();
        numbers.sort_unstable();
        if numbers != (1..=upload.num_parts).collect::<Vec<_>>() {
            return Err(MlflowError::invalid(format!("Completing upload '{id}' needs parts 1 to {}, each once", upload.num_parts)));
        }
        let dir = self.upload_dir(id)?;
        let mut sorted = parts.to_vec();
        sorted.sort_by_key(|p| p.0);
        // Check every part before joining any: a wrong ETag means a part was lost or replaced.
        for (n, etag) in &sorted {
            let path = dir.join(format!("part-{n:05}"));
            let data = tokio::fs::File::open(&path).await.map_err(|_| MlflowError::invalid(format!("Part {n} of upload '{id}' was never uploaded")))?;
            let mut hasher = Sha256::new();
            let mut stream = tokio_util::io::ReaderStream::with_capacity(data, 256 * 1024);
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk.map_err(|e| io_err("read part", e))?);
            }
            if tandem_core::ids::hex(&hasher.finalize()) != etag.trim_matches('"') {
                return Err(MlflowError::invalid(format!("Part {n} of upload '{id}' does not match its ETag")));
            }
        }
        let files = futures_util::stream::iter(sorted.into_iter().map(move |(n, _)| dir.join(format!("part-{n:05}"))))
            .then(|p| async move { tokio::fs::File::open(p).await })
            .map(|f| match f {
                Ok(f) => tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).left_stream(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
            })
            .flatten();
        let result = self.put(ws, rel, Box::pin(files)).await?;
        let _ = tokio::fs::remove_dir_all(self.upload_dir(id)?).await;
        Ok(result)
    }

    pub async fn abort_upload(&self, ws: &str, rel: &str, id: &str) -> Result<()> {
        let upload = self.upload(id).await?;
        if upload.workspace != ws || upload.path != rel {
            return Err(MlflowError::invalid(format!("Upload '{id}' is for another artifact path")));
        }
        tokio::fs::remove_dir_all(self.upload_dir(id)?).await.map_err(|e| io_err("abort upload", e))
    }
}

/// Streams `body` to a temporary file under `tmp_dir`, fsyncs it, and renames it to `dest`.
async fn write_durably<S, E>(tmp_dir: &Path, dest: &Path, mut body: S) -> Result<(u64, String)>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let tmp = tmp_dir.join(tandem_core::ids::hex(&crate::api::random_bytes::<16>()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| io_err("create", e))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let result: Result<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| MlflowError::invalid(format!("upload interrupted: {e}")))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| io_err("write", e))?;
        }
        file.sync_all().await.map_err(|e| io_err("sync", e))?;
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| io_err("create directory", e))?;
        }
        if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) {
            return Err(MlflowError::invalid(format!("Cannot write '{}': it is a directory", dest.display())));
        }
        tokio::fs::rename(&tmp, dest).await.map_err(|e| io_err("rename", e))?;
        if let Some(dir) = dest.parent() {
            // Make the rename itself durable.
            if let Ok(d) = tokio::fs::File::open(dir).await {
                let _ = d.sync_all().await;
            }
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result?;
    Ok((size, tandem_core::ids::hex(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mlflow_artifacts_uris_map_to_workspace_paths() {
        assert_eq!(relative_to_workspace("mlflow-artifacts:/1/abc/artifacts"), Some("1/abc/artifacts"));
        assert_eq!(relative_to_workspace("mlflow-artifacts://host:5000/1/abc"), Some("1/abc"));
        assert_eq!(relative_to_workspace("s3://bucket/x"), None);
    }
}
