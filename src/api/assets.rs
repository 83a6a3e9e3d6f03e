//! `/api/tandem/v1/workspaces/{ws}/environments` and `.../data-assets`: the versioned,
//! immutable inputs of jobs (docs/design/jobs.md).
//!
//! An environment is a container image pinned by digest, or a Python environment
//! specification (requirements or conda file) that tandem keeps as an artifact of the
//! workspace, so that its bytes replicate, archive and restore with the change log. A data
//! asset points at object storage or at tandem's own artifacts; for the latter its content hash
//! is recorded, so a job knows whether what it reads is what was registered.
//!
//! Versions count up per name (1, 2, ...) unless the caller names one; a version, once
//! created, never changes. Deleting is a soft delete, restorable for the workspace's retention.

use super::{Ctx, Req};
use crate::store::{Decision, Value};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use tandem_core::{ErrorCode, MlflowError, Op, Result};

pub const ENVIRONMENT: &str = "environment";
pub const DATA_ASSET: &str = "data-asset";

/// The largest environment specification accepted inline (requirements and conda files are
/// a few kilobytes; this is a bound, not a budget).
pub const MAX_SPEC_BYTES: usize = 1 << 20;

fn target(ctx: &Ctx, req: &Req) -> Result<Ctx> {
    super::named_workspace(ctx, req, true)
}

fn label(kind: &str) -> &'static str {
    if kind == ENVIRONMENT {
        "Environment"
    } else {
        "Data asset"
    }
}

/// Names as Azure ML and MLflow's registry take them, without path characters.
pub fn validate_asset_name(kind: &str, name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "{} name '{name}' must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            label(kind)
        )))
    }
}

/// A version given by the caller: a positive integer (or, where reading, `latest`).
fn version_param(kind: &str, req: &Req, allow_latest: bool) -> Result<Option<i64>> {
    let raw = match req.opt_str("version") {
        Ok(s) => s,
        Err(_) => req.opt_i64("version")?.map(|n| n.to_string()),
    };
    match raw.as_deref() {
        None => Ok(None),
        Some("latest") if allow_latest => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(MlflowError::invalid(format!(
                "{} version '{v}' must be a positive integer{}.",
                label(kind),
                if allow_latest { " or 'latest'" } else { "" }
            ))),
        },
    }
}

/// `image@sha256:<64 hex>`: an image pinned by digest, so that a job runs the same bytes in
/// every region whatever a registry's tags do.
pub fn validate_image(image: &str) -> Result<()> {
    let ok = image.split_once("@sha256:").is_some_and(|(repo, digest)| {
        !repo.is_empty()
            && repo.len() <= 255
            && repo
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/' | b':'))
            && digest.len() == 64
            && digest
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Image '{image}' must be pinned by digest: REPOSITORY@sha256:<64 lowercase hex digits>."
        )))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    tandem_core::ids::hex(&Sha256::digest(bytes))
}

/// The next version of `name`, or `wanted` when it is free; versions of deleted (not yet
/// purged) assets are taken too, so that a restore never meets a newer namesake.
fn pick_version(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    kind: &str,
    name: &str,
    wanted: Option<i64>,
) -> crate::store::Result<i64> {
    match wanted {
        Some(v) => {
            let taken = tx
                .query_one(
                    "SELECT 1 FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
                    &[ws.into(), kind.into(), name.into(), v.into()],
                )?
                .is_some();
            if taken {
                return Err(MlflowError::new(
                    ErrorCode::ResourceAlreadyExists,
                    format!("{} '{name}' version {v} already exists; versions never change: create another.", label(kind)),
                )
                .into());
            }
            Ok(v)
        }
        None => Ok(tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM assets WHERE workspace = ? AND kind = ? AND name = ?",
                &[ws.into(), kind.into(), name.into()],
            )?
            .map(|r| r.int(0))
            .unwrap_or(0)
            + 1),
    }
}

/// `POST .../environments`: `{name, image | requirements | conda, description?, version?}`.
pub fn create_environment(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_asset_name(ENVIRONMENT, &name)?;
    let wanted = version_param(ENVIRONMENT, req, false)?;
    let description = req.opt_str("description")?.unwrap_or_default();
    let image = req.opt_str("image")?.filter(|s| !s.is_empty());
    let requirements = req.opt_str("requirements")?.filter(|s| !s.is_empty());
    let conda = req.opt_str("conda")?.filter(|s| !s.is_empty());
    let spec = match (image.as_deref(), requirements, conda) {
        (Some(i), None, None) => {
            validate_image(i)?;
            None
        }
        (None, Some(text), None) => Some(("requirements.txt", text)),
        (None, None, Some(text)) => Some(("conda.yaml", text)),
        _ => {
            return Err(MlflowError::invalid(
                "Give exactly one of 'image' (pinned by digest), 'requirements' and 'conda'.",
            ))
        }
    };
    // The specification's bytes are durable in the artifact store before the event that
    // names them exists (as for every artifact); the path is content-addressed, so a retry
    // or a namesake with the same file writes the same object.
    let stored = match spec {
        Some((file, text)) => {
            if text.len() > MAX_SPEC_BYTES {
                return Err(MlflowError::invalid(format!(
                    "The environment specification is {} bytes; at most {MAX_SPEC_BYTES} are accepted.",
                    text.len()
                )));
            }
            let sha = sha256_hex(text.as_bytes());
            let path = format!("environments/{name}/{sha}/{file}");
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(
                text.into_bytes(),
            ))]);
            let size = super::block_on(t.artifacts.put_checked(&t.workspace, &path, body, &sha))??;
            Some((path, size, sha))
        }
        None => None,
    };
    let time = t.now();
    let version = t.write(|tx| {
        let version = pick_version(tx, &t.workspace, ENVIRONMENT, &name, wanted)?;
        let mut ops = Vec::new();
        if let Some((path, size, sha)) = &stored {
            ops.push(Op::PutArtifact {
                path: path.clone(),
                size: *size,
                sha256: sha.clone(),
            });
        }
        ops.push(Op::CreateEnvironment {
            name: name.clone(),
            version,
            image: image.clone(),
            spec_path: stored.as_ref().map(|s| s.0.clone()),
            spec_sha256: stored.as_ref().map(|s| s.2.clone()),
            description: description.clone(),
            time,
        });
        Ok(Decision::changes(version, ops))
    })?;
    let one = one_asset(&t, ENVIRONMENT, &name, Some(version))?;
    Ok(json!({ "environment": one }))
}

/// The schemes of object storage a data asset may name. tandem never reads them itself; a
/// job's process does, with its own credentials.
const OBJECT_STORE_SCHEMES: &[&str] = &[
    "s3://", "gs://", "az://", "azure://", "abfs://", "abfss://", "wasb://", "wasbs://", "https://",
];

/// The content hash of what tandem's artifact store holds at `rel` (a workspace-relative
/// path): the file's SHA-256, or for a folder the SHA-256 over its files' relative paths and
/// hashes in path order.
fn content_hash(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    asset_type: &str,
    rel: &str,
) -> crate::store::Result<Option<String>> {
    if asset_type == "uri_file" {
        return Ok(tx
            .query_one(
                "SELECT sha256 FROM artifacts WHERE workspace = ? AND path = ?",
                &[ws.into(), rel.into()],
            )?
            .map(|r| r.text(0)));
    }
    let prefix = format!("{}/", rel.trim_end_matches('/'));
    let rows = tx.query(
        "SELECT path, sha256 FROM artifacts WHERE workspace = ? AND path >= ? AND path < ? ORDER BY path",
        &[
            ws.into(),
            prefix.as_str().into(),
            format!("{}0", rel.trim_end_matches('/')).into(),
        ],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut h = Sha256::new();
    for r in &rows {
        let path = r.text(0);
        h.update(&path.as_bytes()[prefix.len()..]);
        h.update([0]);
        h.update(r.text(1).as_bytes());
        h.update([b'\n']);
    }
    Ok(Some(tandem_core::ids::hex(&h.finalize())))
}

/// `POST .../data-assets`: `{name, type: uri_file | uri_folder, uri, description?, version?}`.
pub fn create_data_asset(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_asset_name(DATA_ASSET, &name)?;
    let wanted = version_param(DATA_ASSET, req, false)?;
    let description = req.opt_str("description")?.unwrap_or_default();
    let asset_type = req.str("type")?;
    if asset_type != "uri_file" && asset_type != "uri_folder" {
        return Err(MlflowError::invalid(format!(
            "Data asset type '{asset_type}' is unknown: use uri_file or uri_folder."
        )));
    }
    let uri = req.str("uri")?;
    if uri.contains('\0') || uri.len() > 4096 {
        return Err(MlflowError::invalid("The data asset URI is not valid."));
    }
    // Where tandem holds the bytes: a path below the workspace's artifact root.
    let held: Option<String> = if let Some(rel) = crate::artifacts::relative_to_workspace(&uri) {
        Some(rel.trim_end_matches('/').to_owned())
    } else if let Some(rest) = uri.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let root = super::tracking::run_artifact_root(&t, run_id)?;
        let rel = crate::artifacts::relative_to_workspace(&root).ok_or_else(|| {
            MlflowError::invalid(format!(
                "Run '{run_id}' keeps its artifacts outside tandem's artifact store ({root}); name that location instead."
            ))
        })?;
        Some(
            format!("{}/{}", rel.trim_end_matches('/'), path)
                .trim_end_matches('/')
                .to_owned(),
        )
    } else if OBJECT_STORE_SCHEMES
        .iter()
        .any(|s| uri.starts_with(s) && uri.len() > s.len())
    {
        None
    } else {
        return Err(MlflowError::invalid(format!(
            "Data asset URI '{uri}' must name object storage ({}) or tandem's artifacts (mlflow-artifacts:/..., runs:/RUN_ID/...); local paths are refused.",
            OBJECT_STORE_SCHEMES.join(", ")
        )));
    };
    if let Some(rel) = &held {
        if rel.is_empty() {
            return Err(MlflowError::invalid(
                "A data asset names a file or folder, not the whole artifact store.",
            ));
        }
        tandem_core::validate::artifact_path(rel)?;
    }
    let time = t.now();
    let version = t.write(|tx| {
        let sha256 = match &held {
            Some(rel) => Some(
                content_hash(tx, &t.workspace, &asset_type, rel)?.ok_or_else(|| {
                    MlflowError::invalid(format!(
                        "No {} at '{uri}' in this workspace's artifacts.",
                        if asset_type == "uri_file" {
                            "file"
                        } else {
                            "folder"
                        }
                    ))
                })?,
            ),
            None => None,
        };
        let version = pick_version(tx, &t.workspace, DATA_ASSET, &name, wanted)?;
        Ok(Decision::change(
            version,
            Op::CreateDataAsset {
                name: name.clone(),
                version,
                asset_type: asset_type.clone(),
                uri: uri.clone(),
                sha256,
                description: description.clone(),
                time,
            },
        ))
    })?;
    let one = one_asset(&t, DATA_ASSET, &name, Some(version))?;
    Ok(json!({ "data_asset": one }))
}

fn render(r: &crate::store::Row) -> Json {
    let mut out = json!({
        "name": r.text(0),
        "version": r.int(1),
        "description": r.text(3),
        "created_time": r.int(4),
    });
    if let Ok(Json::Object(body)) = serde_json::from_str::<Json>(&r.text(2)) {
        for (k, v) in body {
            if !v.is_null() {
                out[k] = v;
            }
        }
    }
    if let Some(d) = r.opt_int(5) {
        out["deleted_time"] = d.into();
    }
    out
}

const COLUMNS: &str = "name, version, body, description, created_time, deleted_time";

/// One version (the newest live one when `version` is None), deleted ones included when named.
fn one_asset(t: &Ctx, kind: &str, name: &str, version: Option<i64>) -> Result<Json> {
    let row = t.read(|tx| match version {
        Some(v) => tx.query_one(
            &format!("SELECT {COLUMNS} FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ?"),
            &[t.workspace.as_str().into(), kind.into(), name.into(), v.into()],
        ),
        None => tx.query_one(
            &format!("SELECT {COLUMNS} FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND deleted_time IS NULL ORDER BY version DESC LIMIT 1"),
            &[t.workspace.as_str().into(), kind.into(), name.into()],
        ),
    })?;
    row.map(|r| render(&r)).ok_or_else(|| {
        MlflowError::not_found(match version {
            Some(v) => format!("{} '{name}' version {v} not found.", label(kind)),
            None => format!("{} '{name}' not found.", label(kind)),
        })
    })
}

fn list(kind: &str, ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.opt_str("name")?;
    let deleted = req.opt_bool("include_deleted")?.unwrap_or(false);
    let mut sql = format!("SELECT {COLUMNS} FROM assets WHERE workspace = ? AND kind = ?");
    let mut params: Vec<Value> = vec![t.workspace.as_str().into(), kind.into()];
    if let Some(n) = &name {
        sql.push_str(" AND name = ?");
        params.push(n.as_str().into());
    }
    if !deleted {
        sql.push_str(" AND deleted_time IS NULL");
    }
    sql.push_str(" ORDER BY name, version DESC");
    let rows = t.read(|tx| tx.query(&sql, &params))?;
    let items: Vec<Json> = rows.iter().map(render).collect();
    let key = if kind == ENVIRONMENT {
        "environments"
    } else {
        "data_assets"
    };
    Ok(json!({ key: items }))
}

fn get(kind: &str, ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_asset_name(kind, &name)?;
    let version = version_param(kind, req, true)?;
    let one = one_asset(&t, kind, &name, version)?;
    let key = if kind == ENVIRONMENT {
        "environment"
    } else {
        "data_asset"
    };
    Ok(json!({ key: one }))
}

/// Soft delete (`restore == false`) or restore of one version.
fn set_deleted(kind: &str, ctx: &Ctx, req: &Req, restore: bool) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_asset_name(kind, &name)?;
    let version = version_param(kind, req, false)?.ok_or_else(|| super::missing("version"))?;
    let time = t.now();
    t.write(|tx| {
        let row = tx.query_one(
            "SELECT deleted_time FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ?",
            &[t.workspace.as_str().into(), kind.into(), name.as_str().into(), version.into()],
        )?;
        let deleted = match row {
            None => {
                return Err(MlflowError::not_found(format!(
                    "{} '{name}' version {version} not found.",
                    label(kind)
                ))
                .into())
            }
            Some(r) => r.opt_int(0).is_some(),
        };
        let (kind, name) = (kind.to_owned(), name.clone());
        match (restore, deleted) {
            (false, false) => Ok(Decision::change((), Op::DeleteAsset { kind, name, version, time })),
            (true, true) => Ok(Decision::change((), Op::RestoreAsset { kind, name, version })),
            (false, true) => Err(MlflowError::invalid(format!("{} '{name}' version {version} is already deleted.", label(&kind))).into()),
            (true, false) => Err(MlflowError::invalid(format!("{} '{name}' version {version} is not deleted.", label(&kind))).into()),
        }
    })?;
    Ok(json!({}))
}

pub fn list_environments(ctx: &Ctx, req: &Req) -> Result<Json> {
    list(ENVIRONMENT, ctx, req)
}
pub fn get_environment(ctx: &Ctx, req: &Req) -> Result<Json> {
    get(ENVIRONMENT, ctx, req)
}
pub fn delete_environment(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_deleted(ENVIRONMENT, ctx, req, false)
}
pub fn restore_environment(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_deleted(ENVIRONMENT, ctx, req, true)
}
pub fn list_data_assets(ctx: &Ctx, req: &Req) -> Result<Json> {
    list(DATA_ASSET, ctx, req)
}
pub fn get_data_asset(ctx: &Ctx, req: &Req) -> Result<Json> {
    get(DATA_ASSET, ctx, req)
}
pub fn delete_data_asset(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_deleted(DATA_ASSET, ctx, req, false)
}
pub fn restore_data_asset(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_deleted(DATA_ASSET, ctx, req, true)
}

/// The live version of an asset a job names (`name` or `name:version`), or a clear refusal.
pub fn resolve(
    tx: &mut dyn crate::store::Tx,
    ws: &str,
    kind: &str,
    reference: &str,
) -> crate::store::Result<(String, i64)> {
    let (name, version) = match reference.rsplit_once(':') {
        Some((n, v)) if v != "latest" => (
            n,
            Some(v.parse::<i64>().map_err(|_| {
                MlflowError::invalid(format!(
                    "{} reference '{reference}' must be NAME or NAME:VERSION.",
                    label(kind)
                ))
            })?),
        ),
        Some((n, _)) => (n, None),
        None => (reference, None),
    };
    let row = match version {
        Some(v) => tx.query_one(
            "SELECT version FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND version = ? AND deleted_time IS NULL",
            &[ws.into(), kind.into(), name.into(), v.into()],
        )?,
        None => tx.query_one(
            "SELECT version FROM assets WHERE workspace = ? AND kind = ? AND name = ? AND deleted_time IS NULL ORDER BY version DESC LIMIT 1",
            &[ws.into(), kind.into(), name.into()],
        )?,
    };
    match row {
        Some(r) => Ok((name.to_owned(), r.int(0))),
        None => Err(MlflowError::invalid(format!(
            "{} '{reference}' does not exist in this workspace.",
            label(kind)
        ))
        .into()),
    }
}
