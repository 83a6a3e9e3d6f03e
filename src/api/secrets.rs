//! `/api/tandem/v1/workspaces/{ws}/secrets`: the workspace vault (docs/design/vault.md).
//! Versions, soft delete, recover, purge, tags, content type, not-before and expiry; values
//! sealed with the workspace's data key before any event exists, and revealed only by
//! `GET .../secrets/{name}/value` (its own action, `secrets/reveal`).

use super::{Ctx, Req};
use crate::store::{Decision, Row, Tx};
use crate::vault::{Key, Keyring};
use serde_json::{json, Value as Json};
use tandem_core::event::KeyValue;
use tandem_core::{ErrorCode, MlflowError, Op, Result};

/// The largest value accepted (the vendor's vault: 25 KiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
const MAX_TAGS: usize = 15;

fn target(ctx: &Ctx, req: &Req) -> Result<Ctx> {
    super::named_workspace(ctx, req, true)
}

pub fn keyring(ctx: &Ctx) -> Result<&Keyring> {
    ctx.vault.as_deref().ok_or_else(|| {
        MlflowError::new(
            ErrorCode::TemporarilyUnavailable,
            "this server has no master key for the vault",
        )
    })
}

fn vault_err(e: crate::vault::VaultError) -> MlflowError {
    MlflowError::internal(e.to_string())
}

/// Secret names: 1 to 255 characters, no control character and no '/' (a name is a path
/// segment of this API). MLflow's gateway names secrets freely ("OpenAI key"), so the vault
/// takes what it takes, beyond the vendor's stricter letters-digits-dashes.
pub fn validate_secret_name(name: &str) -> Result<()> {
    if (1..=255).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_control() || c == '/')
    {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Secret name '{name}' must be 1 to 255 characters, with no '/' and no control character."
        )))
    }
}

/// The workspace's current data key (made, wrapped and logged with the write that first
/// needs it) as (id, key, the op that creates it if new).
fn data_key(
    tx: &mut dyn Tx,
    ws: &str,
    ring: &Keyring,
    time: i64,
) -> crate::store::Result<(String, Key, Option<Op>)> {
    if let Some(r) = tx.query_one(
        "SELECT dek_id, master_key_id, wrapped FROM data_keys WHERE workspace = ? ORDER BY created_time DESC, dek_id LIMIT 1",
        &[ws.into()],
    )? {
        let key = ring.data_key(ws, &r.text(0), &r.text(1), &r.text(2)).map_err(vault_err)?;
        return Ok((r.text(0), key, None));
    }
    let (dek_id, key, wrapped) = ring.new_data_key(ws);
    let op = Op::CreateDataKey {
        dek_id: dek_id.clone(),
        master_key_id: ring.current().id.clone(),
        wrapped,
        time,
    };
    Ok((dek_id, key, Some(op)))
}

fn secret_row(tx: &mut dyn Tx, ws: &str, name: &str) -> crate::store::Result<Option<Row>> {
    tx.query_one(
        &format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE workspace = ? AND name = ?"),
        &[ws.into(), name.into()],
    )
}

fn not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Secret '{name}' not found."))
}

/// A new version of a secret (the first creates it), sealed before the write. Shared with
/// MLflow's gateway secrets, whose values are maps (sealed as their JSON).
#[allow(clippy::too_many_arguments)]
pub fn set_version(
    t: &Ctx,
    name: &str,
    value: &[u8],
    content_type: &str,
    tags: Vec<KeyValue>,
    not_before: Option<i64>,
    expires: Option<i64>,
    provider: Option<String>,
    auth_config: Option<String>,
    create_only: bool,
) -> Result<(String, i64)> {
    let ring = keyring(t)?;
    let time = t.now();
    let new_id = new_secret_id();
    t.write(|tx| {
        let v = NewVersion {
            name,
            value,
            content_type,
            tags: tags.clone(),
            not_before,
            expires,
            provider: provider.clone(),
            auth_config: auth_config.clone(),
            create_only,
        };
        let (secret_id, version, ops) = version_ops(tx, t, ring, &new_id, v, time)?;
        Ok(Decision::changes((secret_id, version), ops))
    })
}

/// A fresh secret ID, as MLflow's gateway makes them (`s-` and 32 hex digits).
pub fn new_secret_id() -> String {
    format!("s-{}", tandem_core::ids::hex(&super::random_bytes::<16>()))
}

/// What a new version of a secret is made of (see `version_ops`).
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
    pub content_type: &'a str,
    pub tags: Vec<KeyValue>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub provider: Option<String>,
    pub auth_config: Option<String>,
    /// Refuse a name already taken instead of adding a version to it.
    pub create_only: bool,
}

/// Inside a write: the ops that add a version to secret `v.name` (creating it with `new_id`
/// if it has none), the workspace's data key made first if it has none yet. Returns the
/// secret's ID and the new version's number with the ops.
pub fn version_ops(
    tx: &mut dyn Tx,
    t: &Ctx,
    ring: &Keyring,
    new_id: &str,
    v: NewVersion<'_>,
    time: i64,
) -> crate::store::Result<(String, i64, Vec<Op>)> {
    let name = v.name;
    let existing = secret_row(tx, &t.workspace, name)?;
    let (secret_id, version) = match &existing {
        Some(r) if r.opt_int(2).is_some() => {
            return Err(MlflowError::new(
                ErrorCode::ResourceAlreadyExists,
                format!("Secret '{name}' is deleted and recoverable: recover or purge it before setting it again."),
            )
            .into())
        }
        Some(_) if v.create_only => {
            return Err(MlflowError::new(
                ErrorCode::ResourceAlreadyExists,
                format!("Secret '{name}' already exists."),
            )
            .into())
        }
        Some(r) => (r.text(0), r.int(1) + 1),
        None => (new_id.to_owned(), 1),
    };
    let (dek_id, key, create) = data_key(tx, &t.workspace, ring, time)?;
    let sealed = crate::vault::seal(
        &key,
        &crate::vault::secret_aad(&t.workspace, &secret_id, version),
        v.value,
    );
    let mut ops: Vec<Op> = create.into_iter().collect();
    ops.push(Op::SetSecret {
        secret_id: secret_id.clone(),
        name: name.to_owned(),
        version,
        dek_id,
        sealed,
        content_type: v.content_type.to_owned(),
        tags: v.tags,
        not_before: v.not_before,
        expires: v.expires,
        provider: v.provider,
        auth_config: v.auth_config,
        by: t.principal.clone(),
        time,
    });
    Ok((secret_id, version, ops))
}

fn tags_of(req: &Req) -> Result<Vec<KeyValue>> {
    let Some(o) = req.obj("tags")? else {
        return Ok(Vec::new());
    };
    if o.0.len() > MAX_TAGS {
        return Err(MlflowError::invalid(format!(
            "A secret has at most {MAX_TAGS} tags."
        )));
    }
    o.0.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) if k.len() <= 256 && s.len() <= 256 => Ok(KeyValue {
                key: k.clone(),
                value: s.to_owned(),
            }),
            _ => Err(MlflowError::invalid(format!(
                "Tag '{k}' must be a string of at most 256 characters."
            ))),
        })
        .collect()
}

/// `POST .../secrets`: `{name, value, content_type?, tags?, not_before?, expires?}`; setting
/// an existing secret adds a version.
pub fn set(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    let value = req
        .opt_str("value")?
        .ok_or_else(|| super::missing("value"))?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(MlflowError::invalid(format!(
            "A secret's value is at most {MAX_VALUE_BYTES} bytes."
        )));
    }
    let content_type = req.opt_str("content_type")?.unwrap_or_default();
    if content_type.len() > 255 {
        return Err(MlflowError::invalid(
            "content_type is at most 255 characters.",
        ));
    }
    let tags = tags_of(req)?;
    let (not_before, expires) = (req.opt_i64("not_before")?, req.opt_i64("expires")?);
    if let (Some(a), Some(b)) = (not_before, expires) {
        if a >= b {
            return Err(MlflowError::invalid("not_before must come before expires."));
        }
    }
    set_version(
        &t,
        &name,
        value.as_bytes(),
        &content_type,
        tags,
        not_before,
        expires,
        None,
        None,
        false,
    )?;
    Ok(json!({ "secret": describe(&t, &name)? }))
}

fn version_json(r: &Row) -> Json {
    let tags: Json = serde_json::from_str(&r.text(3)).unwrap_or(Json::Null);
    let mut v = json!({
        "version": r.int(0),
        "content_type": r.text(1),
        "enabled": r.int(2) != 0,
        "tags": tags.as_array().map(|a| a.iter().map(|t| (t["key"].as_str().unwrap_or_default().to_owned(), t["value"].clone())).collect::<serde_json::Map<_, _>>()).unwrap_or_default(),
        "created_by": r.text(6),
        "created_time": r.int(7),
    });
    if let Some(n) = r.opt_int(4) {
        v["not_before"] = n.into();
    }
    if let Some(e) = r.opt_int(5) {
        v["expires"] = e.into();
    }
    v
}

const SECRET_COLUMNS: &str = "secret_id, version, deleted_time, provider, auth_config, created_by, created_time, updated_by, updated_time, name";
const VERSION_COLUMNS: &str = "version, content_type, enabled, tags, not_before, expires, created_by, created_time, secret_id";

/// A secret's metadata and its versions (never a value), from its row and its version rows.
fn render_secret(row: &Row, versions: &[&Row]) -> Json {
    let mut j = json!({
        "secret_id": row.text(0),
        "name": row.text(9),
        "version": row.int(1),
        "created_by": row.text(5),
        "created_time": row.int(6),
        "updated_by": row.text(7),
        "updated_time": row.int(8),
        "versions": versions.iter().map(|v| version_json(v)).collect::<Vec<_>>(),
    });
    if let Some(d) = row.opt_int(2) {
        j["deleted_time"] = d.into();
    }
    if let Some(p) = row.opt_text(3) {
        j["provider"] = p.into();
    }
    j
}

fn describe(t: &Ctx, name: &str) -> Result<Json> {
    let (row, versions) = t.read(|tx| {
        let Some(row) = secret_row(tx, &t.workspace, name)? else { return Ok((None, Vec::new())) };
        let versions = tx.query(
            &format!("SELECT {VERSION_COLUMNS} FROM secret_versions WHERE workspace = ? AND secret_id = ? ORDER BY version DESC"),
            &[t.workspace.as_str().into(), row.text(0).into()],
        )?;
        Ok((Some(row), versions))
    })?;
    let row = row.ok_or_else(|| not_found(name))?;
    Ok(render_secret(&row, &versions.iter().collect::<Vec<_>>()))
}

/// `GET .../secrets`: metadata of every secret (deleted ones with `include_deleted`), in two
/// reads whatever their number.
pub fn list(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let deleted = req.opt_bool("include_deleted")?.unwrap_or(false);
    let (secrets, versions) = t.read(|tx| {
        let secrets = tx.query(
            &format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE workspace = ?{} ORDER BY name",
                if deleted { "" } else { " AND deleted_time IS NULL" }
            ),
            &[t.workspace.as_str().into()],
        )?;
        let versions = tx.query(
            &format!("SELECT {VERSION_COLUMNS} FROM secret_versions WHERE workspace = ? ORDER BY secret_id, version DESC"),
            &[t.workspace.as_str().into()],
        )?;
        Ok((secrets, versions))
    })?;
    let mut by_secret: std::collections::HashMap<String, Vec<&Row>> =
        std::collections::HashMap::new();
    for v in &versions {
        by_secret.entry(v.text(8)).or_default().push(v);
    }
    let out: Vec<Json> = secrets
        .iter()
        .map(|r| {
            render_secret(
                r,
                by_secret.get(&r.text(0)).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .collect();
    Ok(json!({ "secrets": out }))
}

/// `GET .../secrets/{name}`: metadata and versions.
pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    Ok(json!({ "secret": describe(&t, &name)? }))
}

/// The value of a version (the latest enabled one by default), opened with its data key.
/// Refused for a deleted secret, a disabled version, and outside not-before / expiry.
pub fn reveal_bytes(t: &Ctx, name: &str, version: Option<i64>) -> Result<(i64, Vec<u8>)> {
    let ring = keyring(t)?;
    let now = t.now();
    let (secret_id, row, key) = t.read(|tx| {
        let s = secret_row(tx, &t.workspace, name)?.ok_or_else(|| not_found(name))?;
        if s.opt_int(2).is_some() {
            return Err(MlflowError::invalid(format!("Secret '{name}' is deleted; recover it to read it.")).into());
        }
        let secret_id = s.text(0);
        let v = match version {
            Some(v) => tx.query_one(
                "SELECT version, dek_id, sealed, enabled, not_before, expires FROM secret_versions WHERE workspace = ? AND secret_id = ? AND version = ?",
                &[t.workspace.as_str().into(), secret_id.as_str().into(), v.into()],
            )?,
            None => tx.query_one(
                "SELECT version, dek_id, sealed, enabled, not_before, expires FROM secret_versions WHERE workspace = ? AND secret_id = ? AND enabled = 1 ORDER BY version DESC LIMIT 1",
                &[t.workspace.as_str().into(), secret_id.as_str().into()],
            )?,
        }
        .ok_or_else(|| MlflowError::not_found(match version {
            Some(v) => format!("Secret '{name}' has no version {v}."),
            None => format!("Secret '{name}' has no enabled version."),
        }))?;
        let k = tx
            .query_one(
                "SELECT master_key_id, wrapped FROM data_keys WHERE workspace = ? AND dek_id = ?",
                &[t.workspace.as_str().into(), v.text(1).into()],
            )?
            .ok_or_else(|| MlflowError::internal(format!("data key {} of secret '{name}' is missing", v.text(1))))?;
        let key = ring.data_key(&t.workspace, &v.text(1), &k.text(0), &k.text(1)).map_err(vault_err)?;
        Ok((secret_id, v, key))
    })?;
    let version = row.int(0);
    if row.int(3) == 0 {
        return Err(MlflowError::invalid(format!(
            "Version {version} of secret '{name}' is disabled."
        )));
    }
    if row.opt_int(4).is_some_and(|nb| now < nb) {
        return Err(MlflowError::invalid(format!(
            "Version {version} of secret '{name}' is not valid yet (not_before)."
        )));
    }
    if row.opt_int(5).is_some_and(|ex| now >= ex) {
        return Err(MlflowError::invalid(format!(
            "Version {version} of secret '{name}' has expired."
        )));
    }
    let plain = crate::vault::open(
        &key,
        &crate::vault::secret_aad(&t.workspace, &secret_id, version),
        &row.text(2),
    )
    .map_err(vault_err)?;
    Ok((version, plain))
}

fn version_param(req: &Req) -> Result<Option<i64>> {
    match req.opt_str("version") {
        Ok(Some(v)) if v == "latest" => Ok(None),
        Ok(Some(v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                MlflowError::invalid(format!(
                    "Version '{v}' must be a positive integer or 'latest'."
                ))
            }),
        Ok(None) => Ok(None),
        Err(_) => Ok(req.opt_i64("version")?),
    }
}

/// `GET .../secrets/{name}/value?version=N`: the value, in clear (action `secrets/reveal`).
pub fn reveal(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    let (version, plain) = reveal_bytes(&t, &name, version_param(req)?)?;
    tracing::info!(target: "tandem::audit", workspace = %t.workspace, principal = %t.principal, secret = %name, version, "secret value revealed");
    Ok(json!({ "name": name, "version": version, "value": String::from_utf8_lossy(&plain) }))
}

fn secret_id_of(tx: &mut dyn Tx, ws: &str, name: &str) -> crate::store::Result<(String, bool)> {
    let r = secret_row(tx, ws, name)?.ok_or_else(|| not_found(name))?;
    Ok((r.text(0), r.opt_int(2).is_some()))
}

/// `POST .../secrets/{name}/versions/{version}/disable` and `.../enable`.
fn set_enabled(ctx: &Ctx, req: &Req, enabled: bool) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    let version = version_param(req)?.ok_or_else(|| MlflowError::invalid("Name the version."))?;
    let time = t.now();
    t.write(|tx| {
        let (secret_id, _) = secret_id_of(tx, &t.workspace, &name)?;
        let r = tx
            .query_one(
                "SELECT enabled FROM secret_versions WHERE workspace = ? AND secret_id = ? AND version = ?",
                &[t.workspace.as_str().into(), secret_id.as_str().into(), version.into()],
            )?
            .ok_or_else(|| MlflowError::not_found(format!("Secret '{name}' has no version {version}.")))?;
        if (r.int(0) != 0) == enabled {
            return Ok(Decision::no_change(()));
        }
        Ok(Decision::change((), Op::SetSecretVersionEnabled { secret_id, version, enabled, time }))
    })?;
    Ok(json!({ "secret": describe(&t, &name)? }))
}

pub fn disable(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_enabled(ctx, req, false)
}

pub fn enable(ctx: &Ctx, req: &Req) -> Result<Json> {
    set_enabled(ctx, req, true)
}

/// Soft delete (recoverable for the workspace's retention).
pub fn delete_named(t: &Ctx, name: &str) -> Result<()> {
    let time = t.now();
    t.write(|tx| {
        let (secret_id, deleted) = secret_id_of(tx, &t.workspace, name)?;
        if deleted {
            return Err(
                MlflowError::invalid(format!("Secret '{name}' is already deleted.")).into(),
            );
        }
        Ok(Decision::change((), Op::DeleteSecret { secret_id, time }))
    })
}

/// `DELETE .../secrets/{name}`.
pub fn delete(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    delete_named(&t, &name)?;
    Ok(json!({}))
}

/// `POST .../secrets/{name}/recover`.
pub fn recover(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    let time = t.now();
    t.write(|tx| {
        let (secret_id, deleted) = secret_id_of(tx, &t.workspace, &name)?;
        if !deleted {
            return Err(MlflowError::invalid(format!("Secret '{name}' is not deleted.")).into());
        }
        Ok(Decision::change((), Op::RecoverSecret { secret_id, time }))
    })?;
    Ok(json!({ "secret": describe(&t, &name)? }))
}

/// `POST .../secrets/{name}/purge`: a deleted secret, gone for good; refused while the
/// workspace's purge protection is on (then the purger removes it after the retention).
pub fn purge(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    let name = req.str("name")?;
    validate_secret_name(&name)?;
    t.write(|tx| {
        let (secret_id, deleted) = secret_id_of(tx, &t.workspace, &name)?;
        if !deleted {
            return Err(MlflowError::invalid(format!("Secret '{name}' is not deleted: delete it first.")).into());
        }
        let protected = tx
            .query_one("SELECT purge_protection FROM workspaces WHERE name = ?", &[t.workspace.as_str().into()])?
            .is_some_and(|r| r.int(0) != 0);
        if protected {
            return Err(MlflowError::invalid(format!(
                "Purge protection is on for workspace '{}': deleted secrets are purged only after its retention.",
                t.workspace
            ))
            .into());
        }
        Ok(Decision::change((), Op::PurgeSecret { secret_id }))
    })?;
    Ok(json!({}))
}

/// After a master-key rotation: every data key of the workspace not yet wrapped by the
/// current master key is unwrapped (with the keyring's older key) and wrapped again, one
/// `RewrapDataKey` event each. Secret ciphertexts do not change. Returns how many.
pub fn rewrap(t: &Ctx) -> Result<usize> {
    let ring = keyring(t)?;
    let time = t.now();
    t.write(|tx| {
        let rows = tx.query(
            "SELECT dek_id, master_key_id, wrapped FROM data_keys WHERE workspace = ? AND master_key_id <> ? ORDER BY dek_id",
            &[t.workspace.as_str().into(), ring.current().id.as_str().into()],
        )?;
        let mut ops = Vec::new();
        for r in &rows {
            let key = ring.data_key(&t.workspace, &r.text(0), &r.text(1), &r.text(2)).map_err(vault_err)?;
            ops.push(Op::RewrapDataKey {
                dek_id: r.text(0),
                master_key_id: ring.current().id.clone(),
                wrapped: ring.wrap(&t.workspace, &r.text(0), &key),
                time,
            });
        }
        Ok(Decision::changes(ops.len(), ops))
    })
}

/// `POST .../vault/rewrap` (action `vault/rotate`): see `rewrap`.
pub fn rewrap_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = target(ctx, req)?;
    Ok(json!({ "rewrapped": rewrap(&t)?, "master_key_id": keyring(&t)?.current().id }))
}
