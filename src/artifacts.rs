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
    pub async fn put<S, E>(&self, ws: &str, rel: &str, mut body: S) -> Result<(u64, String)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dest = self.resolve(ws, rel)?;
        if rel.is_empty() {
            return Err(MlflowError::invalid("An artifact path is required"));
        }
        let tmp = self.root.join(".tmp").join(tandem_core::ids::hex(&crate::api::random_bytes::<16>()));
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
            if tokio::fs::metadata(&dest).await.is_ok_and(|m| m.is_dir()) {
                return Err(MlflowError::invalid(format!("Cannot upload to '{rel}': it is a directory")));
            }
            tokio::fs::rename(&tmp, &dest).await.map_err(|e| io_err("rename", e))?;
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
