//! MLflow's AI gateway API (`/api/3.0/mlflow/gateway/...`), served as MLflow's server serves
//! it, over tandem's vault and change log (docs/design/vault.md, "MLflow's gateway").
//!
//! - A gateway secret is a vault secret whose value is a map (sealed as its JSON), plus a
//!   `secret` gateway object holding what MLflow shows of it: masked values, provider, auth
//!   config, who made and changed it. An update with a value is a new vault version (the old
//!   value stays, as in the vault); a delete is the vault's soft delete (recoverable with
//!   `tandem secret recover`), and a model definition whose secret is deleted reads as
//!   orphaned (no `secret_id`) until it is recovered.
//! - Endpoints (with their model mappings, tags, bindings and per-region provider URLs),
//!   model definitions and budget policies are JSON documents in `gateway_objects`, each
//!   change one `PutGatewayObject` / `DeleteGatewayObject` event: they replicate, back up and
//!   restore like everything else.
//! - Guardrails name a scorer version; tandem stores no scorers yet (issue 21), so, as on
//!   MLflow's server with none, no guardrail can be created and their reads are empty.
//!
//! Architecture invariant: no secret value ever leaves this module except through
//! `invocation_credentials`, which the invocation routes call to reach a provider.

use super::{secrets, wrong_type, Ctx, Req};
use crate::store::{Decision, Tx};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use tandem_core::event::KeyValue;
use tandem_core::{ErrorCode, MlflowError, Op, Result};

const SECRET: &str = "secret";
const MODEL_DEF: &str = "model_definition";
const ENDPOINT: &str = "endpoint";
const BUDGET: &str = "budget_policy";

/// MLflow's `SEARCH_MAX_RESULTS_DEFAULT` and `SEARCH_MAX_RESULTS_THRESHOLD`.
const MAX_RESULTS_DEFAULT: i64 = 1000;
const MAX_RESULTS_THRESHOLD: i64 = 50_000;

/// Keys that choose where the gateway sends requests (MLflow's `GATEWAY_DESTINATION_KEYS`):
/// only `api_base`, which is validated, may appear in an auth config, and none in a value.
const DESTINATION_KEYS: &[&str] = &[
    "api_base",
    "base_url",
    "custom_llm_provider",
    "fallbacks",
    "model_list",
];

// ---------------------------------------------------------------------------------------
// Documents

/// A gateway object as stored: its ID, unique name (if its kind has one) and document.
#[derive(Clone)]
struct Obj {
    id: String,
    doc: Json,
}

fn objects(tx: &mut dyn Tx, ws: &str, kind: &str) -> crate::store::Result<Vec<Obj>> {
    let rows = tx.query(
        "SELECT id, doc FROM gateway_objects WHERE workspace = ? AND kind = ?",
        &[ws.into(), kind.into()],
    )?;
    let mut out: Vec<Obj> = rows
        .iter()
        .map(|r| Obj {
            id: r.text(0),
            doc: serde_json::from_str(&r.text(1)).unwrap_or(Json::Null),
        })
        .collect();
    // Oldest first, as MLflow's tables list them.
    out.sort_by(|a, b| {
        (a.doc["created_at"].as_i64(), &a.id).cmp(&(b.doc["created_at"].as_i64(), &b.id))
    });
    Ok(out)
}

fn object(tx: &mut dyn Tx, ws: &str, kind: &str, id: &str) -> crate::store::Result<Option<Obj>> {
    Ok(tx
        .query_one(
            "SELECT id, doc FROM gateway_objects WHERE workspace = ? AND kind = ? AND id = ?",
            &[ws.into(), kind.into(), id.into()],
        )?
        .map(|r| Obj {
            id: r.text(0),
            doc: serde_json::from_str(&r.text(1)).unwrap_or(Json::Null),
        }))
}

fn name_taken(
    tx: &mut dyn Tx,
    ws: &str,
    kind: &str,
    name: &str,
    except: &str,
) -> crate::store::Result<bool> {
    Ok(tx
        .query_one(
            "SELECT id FROM gateway_objects WHERE workspace = ? AND kind = ? AND name = ? AND id <> ?",
            &[ws.into(), kind.into(), name.into(), except.into()],
        )?
        .is_some())
}

fn put(kind: &str, id: &str, name: Option<&str>, doc: &Json, time: i64) -> Op {
    Op::PutGatewayObject {
        kind: kind.to_owned(),
        id: id.to_owned(),
        name: name.map(str::to_owned),
        doc: doc.to_string(),
        time,
    }
}

/// MLflow's `_get_entity_or_raise` message: `GatewaySecret not found (secret_id='s-1')`.
fn not_found(entity: &str, filters: &[(&str, &str)]) -> MlflowError {
    let f: Vec<String> = filters.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    MlflowError::not_found(format!("{entity} not found ({})", f.join(", ")))
}

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        tandem_core::ids::hex(&super::random_bytes::<16>())
    )
}

/// An optional string field that MLflow reads as `value or None`.
fn opt_nonempty(req: &Req, key: &str) -> Result<Option<String>> {
    Ok(req.opt_str(key)?.filter(|s| !s.is_empty()))
}

/// A protobuf enum field given by name or number; `Ok(None)` when absent, the name when it
/// is one of `names` (index 0 is the `..._UNSPECIFIED` value, returned as `Some("")`).
fn enum_field(req: &Req, key: &str, names: &[&str]) -> Result<Option<String>> {
    let Some(v) = req.0.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let found = match v {
        Json::String(s) => names.iter().position(|n| n == s),
        Json::Number(n) => n.as_u64().map(|i| i as usize).filter(|i| *i < names.len()),
        _ => None,
    };
    match found {
        Some(0) => Ok(Some(String::new())),
        Some(i) => Ok(Some(names[i].to_owned())),
        None => Err(wrong_type(key, v)),
    }
}

fn as_opt_str(v: &Json) -> Option<&str> {
    v.as_str()
}

/// Copies `doc[key]` into `out[key]` when it is set.
fn copy_set(out: &mut Json, doc: &Json, key: &str) {
    if let Some(v) = doc.get(key).filter(|v| !v.is_null()) {
        out[key] = v.clone();
    }
}

// ---------------------------------------------------------------------------------------
// Secrets

/// MLflow's masking of a value for display: under 8 characters "***", else the first 3 and
/// the last 4 around "...".
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 8 {
        return "***".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

fn validate_secret_value(value: &BTreeMap<String, String>) -> Result<()> {
    let reserved: Vec<String> = DESTINATION_KEYS
        .iter()
        .filter(|k| value.contains_key(**k))
        .map(|k| format!("'{k}'"))
        .collect();
    if !reserved.is_empty() {
        return Err(MlflowError::invalid(format!(
            "secret_value must not contain {}: these keys choose where the gateway sends requests. Set the upstream with 'api_base' in auth_config, where it is validated.",
            reserved.join(", ")
        )));
    }
    Ok(())
}

/// MLflow's `_validate_gateway_secret_auth_config`: the destination keys other than
/// `api_base` refused, a blank `api_base` dropped, any other checked as an upstream URL.
fn validate_auth_config(cfg: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut cfg = cfg;
    let reserved: Vec<String> = DESTINATION_KEYS
        .iter()
        .filter(|k| **k != "api_base" && cfg.contains_key(**k))
        .map(|k| format!("'{k}'"))
        .collect();
    if !reserved.is_empty() {
        return Err(MlflowError::invalid(format!(
            "auth_config must not contain {}: these LiteLLM options choose where the gateway sends requests. Set the upstream with 'api_base', which is validated.",
            reserved.join(", ")
        )));
    }
    match cfg.get("api_base").map(|s| s.trim().to_owned()) {
        Some(b) if b.is_empty() => {
            cfg.remove("api_base");
        }
        Some(b) => {
            validate_upstream_url(&b, "Gateway secret api_base")?;
            cfg.insert("api_base".into(), b);
        }
        None => {}
    }
    Ok(cfg)
}

/// The schemes an upstream URL may use (`MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES`, default
/// https) and whether it may resolve to a private address
/// (`MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS`): MLflow's own switches, read the same way.
fn upstream_policy() -> (Vec<String>, bool) {
    let schemes = std::env::var("MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["https".to_owned()]);
    let private = std::env::var("MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
        .unwrap_or(false);
    (schemes, private)
}

/// MLflow's `_validate_public_https_url`: an allowed scheme, no embedded credentials, a host
/// that is a canonical IP literal or a name, and (unless private addresses are allowed) every
/// address it resolves to public. The gateway sends credentials there: this is what keeps a
/// caller from pointing it at the server's own network.
pub fn validate_upstream_url(url: &str, field: &str) -> Result<()> {
    if url.trim().is_empty() {
        return Err(MlflowError::invalid(format!(
            "{field} cannot be empty or just whitespace: '{url}'"
        )));
    }
    let (schemes, allow_private) = upstream_policy();
    let parsed = url::Url::parse(url)
        .map_err(|e| MlflowError::invalid(format!("Invalid {field} '{url}': {e}")))?;
    if !schemes.iter().any(|s| s == parsed.scheme()) {
        let mut shown: Vec<String> = schemes.iter().map(|s| format!("'{s}'")).collect();
        shown.sort();
        return Err(MlflowError::invalid(format!(
            "Invalid {field} scheme: '{}'. Allowed schemes are: {}.",
            parsed.scheme(),
            shown.join(", ")
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(MlflowError::invalid(format!(
            "{field} must not include embedded credentials: '{url}'"
        )));
    }
    let host = match parsed.host() {
        Some(h) => h,
        None => {
            return Err(MlflowError::invalid(format!(
                "{field} must include a hostname: '{url}'"
            )))
        }
    };
    if allow_private {
        return Ok(());
    }
    let addrs: Vec<std::net::IpAddr> = match host {
        url::Host::Ipv4(a) => vec![a.into()],
        url::Host::Ipv6(a) => vec![a.into()],
        url::Host::Domain(d) => resolve_host(d, field)?,
    };
    for ip in addrs {
        if !is_public(ip) {
            return Err(MlflowError::invalid(format!(
                "{field} must not resolve to a non-public IP address. '{host}' resolves to {ip}."
            )));
        }
    }
    Ok(())
}

/// A name's addresses, given at most 5 seconds (a lookup may hang; the request must not).
fn resolve_host(host: &str, field: &str) -> Result<Vec<std::net::IpAddr>> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(
            (name.as_str(), 0u16)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>()),
        );
    });
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(Ok(a)) if !a.is_empty() => Ok(a),
        Ok(Ok(_)) => Err(MlflowError::invalid(format!(
            "Cannot resolve {field} hostname '{host}': no address"
        ))),
        Ok(Err(e)) => Err(MlflowError::invalid(format!(
            "Cannot resolve {field} hostname '{host}': {e}"
        ))),
        Err(_) => Err(MlflowError::invalid(format!(
            "Timed out resolving {field} hostname '{host}' after 5 seconds"
        ))),
    }
}

/// Whether an address is globally routable (Python's `ip.is_global`, for what a provider
/// URL can resolve to), looking through IPv4-mapped and 6to4 IPv6 forms.
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn v4(a: Ipv4Addr) -> bool {
        let o = a.octets();
        !(a.is_private()
            || a.is_loopback()
            || a.is_link_local()
            || a.is_broadcast()
            || a.is_documentation()
            || a.is_unspecified()
            || o[0] == 0
            || (o[0] == 100 && (o[1] & 0xc0) == 64)
            || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            || (o[0] == 198 && (o[1] & 0xfe) == 18)
            || o[0] >= 240)
    }
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            if let Some(m) = a.to_ipv4_mapped() {
                return v4(m);
            }
            let s = a.segments();
            if s[0] == 0x2002 {
                return v4(Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                ));
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || s[0] == 0x0100)
        }
    }
}

/// The gateway secrets of the workspace that are not deleted: (secret_id, name, document).
fn live_secrets(tx: &mut dyn Tx, ws: &str) -> crate::store::Result<Vec<(String, String, Json)>> {
    let rows = tx.query(
        "SELECT s.secret_id, s.name, g.doc FROM secrets s JOIN gateway_objects g ON g.workspace = s.workspace AND g.kind = 'secret' AND g.id = s.secret_id WHERE s.workspace = ? AND s.deleted_time IS NULL",
        &[ws.into()],
    )?;
    let mut out: Vec<(String, String, Json)> = rows
        .iter()
        .map(|r| {
            (
                r.text(0),
                r.text(1),
                serde_json::from_str(&r.text(2)).unwrap_or(Json::Null),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.2["created_at"].as_i64(), &a.0).cmp(&(b.2["created_at"].as_i64(), &b.0)));
    Ok(out)
}

fn live_secret(
    tx: &mut dyn Tx,
    ws: &str,
    secret_id: &str,
) -> crate::store::Result<Option<(String, Json)>> {
    Ok(tx
        .query_one(
            "SELECT s.name, g.doc FROM secrets s JOIN gateway_objects g ON g.workspace = s.workspace AND g.kind = 'secret' AND g.id = s.secret_id WHERE s.workspace = ? AND s.secret_id = ? AND s.deleted_time IS NULL",
            &[ws.into(), secret_id.into()],
        )?
        .map(|r| (r.text(0), serde_json::from_str(&r.text(1)).unwrap_or(Json::Null))))
}

fn render_secret(id: &str, name: &str, doc: &Json) -> Json {
    let mut j = json!({
        "secret_id": id,
        "secret_name": name,
        "created_at": doc["created_at"],
        "last_updated_at": doc["last_updated_at"],
    });
    if doc["masked_values"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        j["masked_values"] = doc["masked_values"].clone();
    }
    if doc["auth_config"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        j["auth_config"] = doc["auth_config"].clone();
    }
    for k in ["provider", "created_by", "last_updated_by"] {
        copy_set(&mut j, doc, k);
    }
    j
}

fn masked(value: &BTreeMap<String, String>) -> Json {
    Json::Object(
        value
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(mask(v))))
            .collect(),
    )
}

fn sealed_value(value: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(value).expect("string maps serialize");
    if plain.len() > secrets::MAX_VALUE_BYTES {
        return Err(MlflowError::invalid(format!(
            "secret_value is at most {} bytes (as JSON).",
            secrets::MAX_VALUE_BYTES
        )));
    }
    Ok(plain)
}

fn validate_gateway_secret_name(name: &str) -> Result<()> {
    secrets::validate_secret_name(name)
}

/// `POST mlflow/gateway/secrets/create`.
pub fn create_secret(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("secret_name")?;
    // As on MLflow's server, an absent map is an empty one (a secret with no value yet).
    let value = req.str_map("secret_value")?.unwrap_or_default();
    let provider = opt_nonempty(req, "provider")?;
    let created_by = opt_nonempty(req, "created_by")?;
    let auth_config = req
        .str_map("auth_config")?
        .filter(|m| !m.is_empty())
        .map(validate_auth_config)
        .transpose()?
        .filter(|m| !m.is_empty());
    validate_secret_value(&value)?;
    validate_gateway_secret_name(&name)?;
    if let Some(p) = &provider {
        check_provider(p)?;
    }
    let plain = sealed_value(&value)?;
    let ring = secrets::keyring(ctx)?;
    let time = ctx.now();
    let id = secrets::new_secret_id();
    let doc = json!({
        "masked_values": masked(&value),
        "provider": provider,
        "auth_config": auth_config,
        "created_by": created_by,
        "last_updated_by": created_by,
        "created_at": time,
        "last_updated_at": time,
    });
    ctx.write(|tx| {
        let v = secrets::NewVersion {
            name: &name,
            value: &plain,
            content_type: "application/json",
            tags: Vec::new(),
            not_before: None,
            expires: None,
            provider: provider.clone(),
            auth_config: auth_config.as_ref().map(|c| json!(c).to_string()),
            create_only: true,
        };
        let (secret_id, _, mut ops) =
            secrets::version_ops(tx, ctx, ring, &id, v, time).map_err(|e| match e {
                crate::store::Error::Rejected(m)
                    if m.code == ErrorCode::ResourceAlreadyExists
                        && m.message.ends_with("already exists.") =>
                {
                    MlflowError::exists(format!("Secret with name '{name}' already exists")).into()
                }
                e => e,
            })?;
        ops.push(put(SECRET, &secret_id, None, &doc, time));
        Ok(Decision::changes(secret_id, ops))
    })?;
    Ok(json!({ "secret": render_secret(&id, &name, &doc) }))
}

/// `GET mlflow/gateway/secrets/get`.
pub fn get_secret(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("secret_id")?;
    let (name, doc) = ctx
        .read(|tx| live_secret(tx, &ctx.workspace, &id))?
        .ok_or_else(|| not_found("GatewaySecret", &[("secret_id", &id)]))?;
    Ok(json!({ "secret": render_secret(&id, &name, &doc) }))
}

/// `POST mlflow/gateway/secrets/update`: a new value is a new version of the vault secret;
/// an empty `auth_config` map leaves it, one that normalizes to empty clears it.
pub fn update_secret(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("secret_id")?;
    let updated_by = opt_nonempty(req, "updated_by")?;
    let auth_config = match req.str_map("auth_config")?.filter(|m| !m.is_empty()) {
        Some(m) => Some(validate_auth_config(m)?),
        None => None,
    };
    let value = req.str_map("secret_value")?.filter(|m| !m.is_empty());
    if let Some(v) = &value {
        validate_secret_value(v)?;
    }
    let plain = value.as_ref().map(sealed_value).transpose()?;
    let ring = match &value {
        Some(_) => Some(secrets::keyring(ctx)?),
        None => None,
    };
    let time = ctx.now();
    let (name, doc) = ctx.write(|tx| {
        let (name, mut doc) = live_secret(tx, &ctx.workspace, &id)?
            .ok_or_else(|| not_found("GatewaySecret", &[("secret_id", &id)]))?;
        let mut ops = Vec::new();
        if let (Some(v), Some(plain), Some(ring)) = (&value, &plain, ring) {
            let nv = secrets::NewVersion {
                name: &name,
                value: plain,
                content_type: "application/json",
                tags: Vec::new(),
                not_before: None,
                expires: None,
                provider: None,
                auth_config: None,
                create_only: false,
            };
            let (_, _, o) = secrets::version_ops(tx, ctx, ring, &id, nv, time)?;
            ops.extend(o);
            doc["masked_values"] = masked(v);
        }
        if let Some(c) = &auth_config {
            doc["auth_config"] = if c.is_empty() { Json::Null } else { json!(c) };
        }
        doc["last_updated_by"] = json!(updated_by);
        doc["last_updated_at"] = time.into();
        ops.push(put(SECRET, &id, None, &doc, time));
        Ok(Decision::changes((name, doc), ops))
    })?;
    Ok(json!({ "secret": render_secret(&id, &name, &doc) }))
}

/// `DELETE mlflow/gateway/secrets/delete`: the vault's soft delete.
pub fn delete_secret(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("secret_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        live_secret(tx, &ctx.workspace, &id)?
            .ok_or_else(|| not_found("GatewaySecret", &[("secret_id", &id)]))?;
        Ok(Decision::change(
            (),
            Op::DeleteSecret {
                secret_id: id.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/gateway/secrets/list`.
pub fn list_secrets(ctx: &Ctx, req: &Req) -> Result<Json> {
    let provider = opt_nonempty(req, "provider")?;
    let all = ctx.read(|tx| live_secrets(tx, &ctx.workspace))?;
    let out: Vec<Json> = all
        .iter()
        .filter(|(_, _, d)| provider.is_none() || d["provider"].as_str() == provider.as_deref())
        .map(|(id, name, d)| render_secret(id, name, d))
        .collect();
    Ok(if out.is_empty() {
        json!({})
    } else {
        json!({ "secrets": out })
    })
}

// ---------------------------------------------------------------------------------------
// Model definitions

fn secret_names(tx: &mut dyn Tx, ws: &str) -> crate::store::Result<HashMap<String, String>> {
    Ok(live_secrets(tx, ws)?
        .into_iter()
        .map(|(id, name, _)| (id, name))
        .collect())
}

fn render_model_def(o: &Obj, secret_names: &HashMap<String, String>) -> Json {
    let d = &o.doc;
    let mut j = json!({
        "model_definition_id": o.id,
        "name": d["name"],
        "provider": d["provider"],
        "model_name": d["model_name"],
        "created_at": d["created_at"],
        "last_updated_at": d["last_updated_at"],
    });
    // A deleted secret leaves the definition orphaned (as MLflow's NULL secret_id) until the
    // secret is recovered.
    if let Some(sid) = d["secret_id"].as_str() {
        if let Some(name) = secret_names.get(sid) {
            j["secret_id"] = sid.into();
            j["secret_name"] = name.as_str().into();
        }
    }
    copy_set(&mut j, d, "created_by");
    copy_set(&mut j, d, "last_updated_by");
    j
}

/// `POST mlflow/gateway/model-definitions/create`.
pub fn create_model_definition(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let secret_id = req.str("secret_id")?;
    let provider = req.str("provider")?;
    let model_name = req.str("model_name")?;
    let created_by = opt_nonempty(req, "created_by")?;
    check_provider(&provider)?;
    let time = ctx.now();
    let id = new_id("d");
    let doc = json!({
        "name": name, "secret_id": secret_id, "provider": provider, "model_name": model_name,
        "created_at": time, "last_updated_at": time,
        "created_by": created_by, "last_updated_by": created_by,
    });
    let secret_name = ctx.write(|tx| {
        let (secret_name, _) = live_secret(tx, &ctx.workspace, &secret_id)?
            .ok_or_else(|| not_found("GatewaySecret", &[("secret_id", &secret_id)]))?;
        if name_taken(tx, &ctx.workspace, MODEL_DEF, &name, &id)? {
            return Err(MlflowError::exists(format!(
                "Model definition with name '{name}' already exists"
            ))
            .into());
        }
        Ok(Decision::change(
            secret_name,
            put(MODEL_DEF, &id, Some(&name), &doc, time),
        ))
    })?;
    let names = HashMap::from([(secret_id.clone(), secret_name)]);
    Ok(json!({ "model_definition": render_model_def(&Obj { id, doc }, &names) }))
}

fn model_def_not_found(id: &str) -> MlflowError {
    not_found("GatewayModelDefinition", &[("model_definition_id", id)])
}

/// `GET mlflow/gateway/model-definitions/get`.
pub fn get_model_definition(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("model_definition_id")?;
    let (o, names) = ctx.read(|tx| {
        Ok((
            object(tx, &ctx.workspace, MODEL_DEF, &id)?,
            secret_names(tx, &ctx.workspace)?,
        ))
    })?;
    let o = o.ok_or_else(|| model_def_not_found(&id))?;
    Ok(json!({ "model_definition": render_model_def(&o, &names) }))
}

/// `GET mlflow/gateway/model-definitions/list`.
pub fn list_model_definitions(ctx: &Ctx, req: &Req) -> Result<Json> {
    let provider = opt_nonempty(req, "provider")?;
    let secret_id = opt_nonempty(req, "secret_id")?;
    let (defs, names) = ctx.read(|tx| {
        Ok((
            objects(tx, &ctx.workspace, MODEL_DEF)?,
            secret_names(tx, &ctx.workspace)?,
        ))
    })?;
    let out: Vec<Json> = defs
        .iter()
        .filter(|o| provider.is_none() || o.doc["provider"].as_str() == provider.as_deref())
        .filter(|o| {
            secret_id.is_none()
                || (o.doc["secret_id"].as_str() == secret_id.as_deref()
                    && names.contains_key(secret_id.as_deref().unwrap_or_default()))
        })
        .map(|o| render_model_def(o, &names))
        .collect();
    Ok(if out.is_empty() {
        json!({})
    } else {
        json!({ "model_definitions": out })
    })
}

/// `POST mlflow/gateway/model-definitions/update`.
pub fn update_model_definition(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("model_definition_id")?;
    let name = opt_nonempty(req, "name")?;
    let secret_id = opt_nonempty(req, "secret_id")?;
    let model_name = opt_nonempty(req, "model_name")?;
    let updated_by = opt_nonempty(req, "updated_by")?;
    let provider = opt_nonempty(req, "provider")?;
    if let Some(p) = &provider {
        check_provider(p)?;
    }
    let time = ctx.now();
    let (o, names) = ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, MODEL_DEF, &id)?.ok_or_else(|| model_def_not_found(&id))?;
        if let Some(n) = &name {
            if name_taken(tx, &ctx.workspace, MODEL_DEF, n, &id)? {
                return Err(MlflowError::exists(format!(
                    "Model definition with name '{n}' already exists"
                ))
                .into());
            }
            o.doc["name"] = n.as_str().into();
        }
        if let Some(s) = &secret_id {
            live_secret(tx, &ctx.workspace, s)?
                .ok_or_else(|| not_found("GatewaySecret", &[("secret_id", s)]))?;
            o.doc["secret_id"] = s.as_str().into();
        }
        if let Some(m) = &model_name {
            o.doc["model_name"] = m.as_str().into();
        }
        if let Some(p) = &provider {
            o.doc["provider"] = p.as_str().into();
        }
        o.doc["last_updated_at"] = time.into();
        if let Some(u) = &updated_by {
            o.doc["last_updated_by"] = u.as_str().into();
        }
        let names = secret_names(tx, &ctx.workspace)?;
        let op = put(MODEL_DEF, &id, o.doc["name"].as_str(), &o.doc, time);
        Ok(Decision::change((o, names), op))
    })?;
    Ok(json!({ "model_definition": render_model_def(&o, &names) }))
}

/// `DELETE mlflow/gateway/model-definitions/delete`: refused while an endpoint uses it.
pub fn delete_model_definition(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("model_definition_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        object(tx, &ctx.workspace, MODEL_DEF, &id)?.ok_or_else(|| model_def_not_found(&id))?;
        let in_use = objects(tx, &ctx.workspace, ENDPOINT)?.iter().any(|e| {
            mappings(&e.doc)
                .iter()
                .any(|m| m["model_definition_id"].as_str() == Some(id.as_str()))
        });
        if in_use {
            return Err(MlflowError::new(
                ErrorCode::InvalidState,
                "Cannot delete model definition that is currently in use by endpoints. Detach it from all endpoints first.",
            )
            .into());
        }
        Ok(Decision::change(
            (),
            Op::DeleteGatewayObject {
                kind: MODEL_DEF.into(),
                id: id.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------------------
// Endpoints

const ROUTING: &[&str] = &[
    "ROUTING_STRATEGY_UNSPECIFIED",
    "REQUEST_BASED_TRAFFIC_SPLIT",
];
const FALLBACK: &[&str] = &["FALLBACK_STRATEGY_UNSPECIFIED", "SEQUENTIAL"];
const LINKAGE: &[&str] = &["LINKAGE_TYPE_UNSPECIFIED", "PRIMARY", "FALLBACK"];

fn mappings(doc: &Json) -> Vec<Json> {
    doc["mappings"].as_array().cloned().unwrap_or_default()
}

/// MLflow's `is_valid_endpoint_name`.
fn valid_endpoint_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn check_endpoint_name(name: &str) -> Result<()> {
    if valid_endpoint_name(name) {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Invalid endpoint name '{name}'. Name can only contain letters, numbers, underscores, hyphens, and dots."
        )))
    }
}

/// A model config (`GatewayEndpointModelConfig`) checked: `at` names it in errors.
struct ModelConfig {
    model_definition_id: String,
    linkage_type: String,
    weight: f64,
    fallback_order: Option<i64>,
}

fn model_config(c: &Req, at: &str) -> Result<ModelConfig> {
    let linkage = enum_field(c, "linkage_type", LINKAGE)?.unwrap_or_default();
    if linkage.is_empty() {
        return Err(MlflowError::invalid(format!(
            "Invalid or missing value for required parameter 'linkage_type' in {at}. Must be one of: PRIMARY, FALLBACK."
        )));
    }
    Ok(ModelConfig {
        model_definition_id: c.opt_str("model_definition_id")?.unwrap_or_default(),
        linkage_type: linkage,
        weight: c.opt_f64("weight")?.map(|w| w.0).unwrap_or(1.0),
        fallback_order: c.opt_i64("fallback_order")?,
    })
}

fn mapping_doc(c: &ModelConfig, created_by: &Option<String>, time: i64) -> Json {
    json!({
        "mapping_id": new_id("m"),
        "model_definition_id": c.model_definition_id,
        "weight": c.weight,
        "linkage_type": c.linkage_type,
        "fallback_order": c.fallback_order,
        "created_at": time,
        "created_by": created_by,
    })
}

/// `fallback_config` of a request: (strategy, max_attempts).
fn fallback_config(req: &Req) -> Result<Option<(Option<String>, Option<i64>)>> {
    let Some(f) = req.obj("fallback_config")? else {
        return Ok(None);
    };
    let strategy = enum_field(f, "strategy", FALLBACK)?.filter(|s| !s.is_empty());
    Ok(Some((strategy, f.opt_i64("max_attempts")?)))
}

fn fallback_json(fc: &Option<(Option<String>, Option<i64>)>, configs: &[ModelConfig]) -> Json {
    json!({
        "strategy": fc.as_ref().and_then(|f| f.0.clone()),
        "max_attempts": fc.as_ref().and_then(|f| f.1),
        "model_definition_ids": configs.iter().filter(|c| c.linkage_type == "FALLBACK").map(|c| c.model_definition_id.clone()).collect::<Vec<_>>(),
    })
}

fn parse_experiment_id(id: &str) -> Result<String> {
    match id.trim().parse::<i64>() {
        Ok(n) => Ok(n.to_string()),
        Err(_) => Err(MlflowError::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))),
    }
}

fn render_mapping(
    endpoint_id: &str,
    m: &Json,
    defs: &HashMap<String, Obj>,
    names: &HashMap<String, String>,
) -> Json {
    let mut j = json!({
        "mapping_id": m["mapping_id"],
        "endpoint_id": endpoint_id,
        "model_definition_id": m["model_definition_id"],
        "weight": m["weight"],
        "linkage_type": m["linkage_type"],
        "created_at": m["created_at"],
    });
    if let Some(d) = m["model_definition_id"]
        .as_str()
        .and_then(|id| defs.get(id))
    {
        j["model_definition"] = render_model_def(d, names);
    }
    copy_set(&mut j, m, "fallback_order");
    copy_set(&mut j, m, "created_by");
    j
}

/// What rendering an endpoint needs besides its document.
struct Refs {
    defs: HashMap<String, Obj>,
    names: HashMap<String, String>,
}

fn refs(tx: &mut dyn Tx, ws: &str) -> crate::store::Result<Refs> {
    Ok(Refs {
        defs: objects(tx, ws, MODEL_DEF)?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect(),
        names: secret_names(tx, ws)?,
    })
}

fn render_endpoint(o: &Obj, r: &Refs) -> Json {
    let d = &o.doc;
    let mut j = json!({
        "endpoint_id": o.id,
        "name": d["name"].as_str().unwrap_or_default(),
        "created_at": d["created_at"],
        "last_updated_at": d["last_updated_at"],
        "created_by": d["created_by"].as_str().unwrap_or_default(),
        "last_updated_by": d["last_updated_by"].as_str().unwrap_or_default(),
        "usage_tracking": d["usage_tracking"].as_bool().unwrap_or(true),
    });
    let maps: Vec<Json> = mappings(d)
        .iter()
        .map(|m| render_mapping(&o.id, m, &r.defs, &r.names))
        .collect();
    if !maps.is_empty() {
        j["model_mappings"] = maps.into();
    }
    if let Some(tags) = d["tags"].as_array().filter(|t| !t.is_empty()) {
        j["tags"] = tags
            .iter()
            .map(|t| {
                let mut x = json!({ "key": t["key"] });
                copy_set(&mut x, t, "value");
                x
            })
            .collect::<Vec<_>>()
            .into();
    }
    copy_set(&mut j, d, "routing_strategy");
    if let Some(f) = d["fallback_config"].as_object() {
        let mut fc = Map::new();
        if let Some(s) = f.get("strategy").filter(|s| !s.is_null()) {
            fc.insert("strategy".into(), s.clone());
        }
        if let Some(m) = f.get("max_attempts").filter(|s| !s.is_null()) {
            fc.insert("max_attempts".into(), m.clone());
        }
        j["fallback_config"] = Json::Object(fc);
    }
    copy_set(&mut j, d, "experiment_id");
    if let Some(r) = d["regions"].as_object().filter(|r| !r.is_empty()) {
        // tandem's per-region provider URLs (`connections/{name}/resolve`); MLflow's client
        // ignores fields it does not know.
        j["tandem_regions"] = Json::Object(r.clone());
    }
    j
}

/// An endpoint's document written back whole (its name is its unique key).
fn put_endpoint(o: &Obj, time: i64) -> Op {
    put(ENDPOINT, &o.id, o.doc["name"].as_str(), &o.doc, time)
}

fn endpoint_not_found(id: &str) -> MlflowError {
    not_found("GatewayEndpoint", &[("endpoint_id", id)])
}

/// The experiment an endpoint's usage is traced to: MLflow gets or creates
/// `gateway/{name}`, tagged as the gateway's.
fn tracking_experiment(
    tx: &mut dyn Tx,
    ws: &str,
    endpoint_name: &str,
    endpoint_id: &str,
    time: i64,
) -> crate::store::Result<(String, Vec<Op>)> {
    let tags = vec![
        KeyValue {
            key: "mlflow.experiment.sourceType".into(),
            value: "GATEWAY".into(),
        },
        KeyValue {
            key: "mlflow.experiment.sourceId".into(),
            value: endpoint_id.into(),
        },
        KeyValue {
            key: "mlflow.experiment.isGateway".into(),
            value: "true".into(),
        },
    ];
    super::tracking::experiment_get_or_create(
        tx,
        ws,
        &format!("gateway/{endpoint_name}"),
        tags,
        time,
    )
}

fn missing_defs(
    tx: &mut dyn Tx,
    ws: &str,
    configs: &[ModelConfig],
) -> crate::store::Result<Vec<String>> {
    let mut missing: Vec<String> = Vec::new();
    for c in configs {
        if object(tx, ws, MODEL_DEF, &c.model_definition_id)?.is_none()
            && !missing.contains(&c.model_definition_id)
        {
            missing.push(c.model_definition_id.clone());
        }
    }
    Ok(missing)
}

/// Per-region provider URLs (`tandem_regions: {region: url}`), each checked as an upstream.
fn regions_of(req: &Req) -> Result<Option<BTreeMap<String, String>>> {
    let Some(m) = req.str_map("tandem_regions")? else {
        return Ok(None);
    };
    for (region, url) in &m {
        if region.is_empty() || region.len() > 64 {
            return Err(MlflowError::invalid(format!(
                "tandem_regions: region name '{region}' must be 1 to 64 characters."
            )));
        }
        validate_upstream_url(url, &format!("tandem_regions['{region}']"))?;
    }
    Ok(Some(m))
}

/// `POST mlflow/gateway/endpoints/create`.
pub fn create_endpoint(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let created_by = opt_nonempty(req, "created_by")?;
    if !req.has("model_configs") {
        return Err(super::missing("model_configs"));
    }
    let routing = enum_field(req, "routing_strategy", ROUTING)?;
    check_endpoint_name(&name)?;
    let fc = fallback_config(req)?;
    let configs = req
        .list("model_configs")?
        .iter()
        .enumerate()
        .map(|(i, c)| model_config(c, &format!("model_configs[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let experiment_id = req
        .opt_str("experiment_id")?
        .map(|e| parse_experiment_id(&e))
        .transpose()?;
    let usage_tracking = req.opt_bool("usage_tracking")?.unwrap_or(true);
    let regions = regions_of(req)?;
    if configs.is_empty() {
        return Err(MlflowError::invalid(
            "Endpoint must have at least one model configuration",
        ));
    }
    let time = ctx.now();
    let id = new_id("e");
    let (o, refs) = ctx.write(|tx| {
        let missing = missing_defs(tx, &ctx.workspace, &configs)?;
        if !missing.is_empty() {
            return Err(MlflowError::not_found(format!(
                "Model definitions not found: {}",
                missing.join(", ")
            ))
            .into());
        }
        if name_taken(tx, &ctx.workspace, ENDPOINT, &name, &id)? {
            return Err(MlflowError::exists(format!(
                "Endpoint with name '{name}' already exists"
            ))
            .into());
        }
        let mut ops = Vec::new();
        let mut experiment = experiment_id.clone();
        if usage_tracking && experiment.is_none() {
            let (e, o) = tracking_experiment(tx, &ctx.workspace, &name, &id, time)?;
            experiment = Some(e);
            ops.extend(o);
        }
        let has_fallback = configs.iter().any(|c| c.linkage_type == "FALLBACK");
        let doc = json!({
            "name": name,
            "created_at": time, "last_updated_at": time,
            "created_by": created_by, "last_updated_by": created_by,
            "routing_strategy": routing.clone().filter(|r| !r.is_empty()),
            "fallback_config": if fc.is_some() || has_fallback { fallback_json(&fc, &configs) } else { Json::Null },
            "experiment_id": experiment,
            "usage_tracking": usage_tracking,
            "mappings": configs.iter().map(|c| mapping_doc(c, &created_by, time)).collect::<Vec<_>>(),
            "tags": [],
            "bindings": [],
            "regions": regions.clone().unwrap_or_default(),
        });
        ops.push(put(ENDPOINT, &id, Some(&name), &doc, time));
        let r = refs(tx, &ctx.workspace)?;
        Ok(Decision::changes((Obj { id: id.clone(), doc }, r), ops))
    })?;
    Ok(json!({ "endpoint": render_endpoint(&o, &refs) }))
}

/// `GET mlflow/gateway/endpoints/get` (by `endpoint_id` or `name`).
pub fn get_endpoint(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = opt_nonempty(req, "endpoint_id")?;
    let name = opt_nonempty(req, "name")?;
    if id.is_some() == name.is_some() {
        return Err(MlflowError::invalid(
            "Exactly one of endpoint_id or name must be provided",
        ));
    }
    let (o, r) = ctx.read(|tx| {
        let o = match (&id, &name) {
            (Some(id), _) => object(tx, &ctx.workspace, ENDPOINT, id)?,
            (None, Some(n)) => endpoint_by_name(tx, &ctx.workspace, n)?,
            _ => None,
        };
        Ok((o, refs(tx, &ctx.workspace)?))
    })?;
    let o = o.ok_or_else(|| match (&id, &name) {
        (Some(id), _) => endpoint_not_found(id),
        (None, n) => not_found(
            "GatewayEndpoint",
            &[("name", n.as_deref().unwrap_or_default())],
        ),
    })?;
    Ok(json!({ "endpoint": render_endpoint(&o, &r) }))
}

fn endpoint_by_name(tx: &mut dyn Tx, ws: &str, name: &str) -> crate::store::Result<Option<Obj>> {
    Ok(tx
        .query_one(
            "SELECT id, doc FROM gateway_objects WHERE workspace = ? AND kind = 'endpoint' AND name = ?",
            &[ws.into(), name.into()],
        )?
        .map(|r| Obj {
            id: r.text(0),
            doc: serde_json::from_str(&r.text(1)).unwrap_or(Json::Null),
        }))
}

/// `POST mlflow/gateway/endpoints/update`.
pub fn update_endpoint(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let name = opt_nonempty(req, "name")?;
    let updated_by = opt_nonempty(req, "updated_by")?;
    let routing = enum_field(req, "routing_strategy", ROUTING)?;
    if let Some(n) = &name {
        check_endpoint_name(n)?;
    }
    let fc = fallback_config(req)?;
    let configs = req
        .list("model_configs")?
        .iter()
        .enumerate()
        .map(|(i, c)| model_config(c, &format!("model_configs[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let experiment_id = req
        .opt_str("experiment_id")?
        .map(|e| parse_experiment_id(&e))
        .transpose()?;
    let usage_tracking = req.opt_bool("usage_tracking")?;
    let regions = regions_of(req)?;
    let time = ctx.now();
    let (o, r) = ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        let mut ops = Vec::new();
        if let Some(n) = &name {
            if name_taken(tx, &ctx.workspace, ENDPOINT, n, &id)? {
                return Err(MlflowError::exists(format!(
                    "Endpoint with name '{n}' already exists"
                ))
                .into());
            }
            o.doc["name"] = n.as_str().into();
        }
        if let Some(u) = usage_tracking {
            o.doc["usage_tracking"] = u.into();
        }
        let mut experiment = experiment_id.clone();
        if usage_tracking == Some(true) && experiment.is_none() && o.doc["experiment_id"].is_null()
        {
            let ename = o.doc["name"].as_str().unwrap_or_default().to_owned();
            let (e, x) = tracking_experiment(tx, &ctx.workspace, &ename, &id, time)?;
            experiment = Some(e);
            ops.extend(x);
        }
        if let Some(e) = experiment {
            o.doc["experiment_id"] = e.into();
        }
        if let Some(r) = routing.clone().filter(|r| !r.is_empty()) {
            o.doc["routing_strategy"] = r.into();
        }
        if !configs.is_empty() {
            let missing = missing_defs(tx, &ctx.workspace, &configs)?;
            if let Some(m) = missing.first() {
                return Err(model_def_not_found(m).into());
            }
            o.doc["mappings"] = configs
                .iter()
                .map(|c| mapping_doc(c, &updated_by, time))
                .collect::<Vec<_>>()
                .into();
            o.doc["fallback_config"] = fallback_json(&fc, &configs);
        } else if let Some(f) = &fc {
            let ids = o.doc["fallback_config"]["model_definition_ids"].clone();
            o.doc["fallback_config"] = json!({
                "strategy": f.0, "max_attempts": f.1,
                "model_definition_ids": if ids.is_null() { json!([]) } else { ids },
            });
        }
        if let Some(r) = &regions {
            o.doc["regions"] = json!(r);
        }
        o.doc["last_updated_at"] = time.into();
        if let Some(u) = &updated_by {
            o.doc["last_updated_by"] = u.as_str().into();
        }
        ops.push(put_endpoint(&o, time));
        let r = refs(tx, &ctx.workspace)?;
        Ok(Decision::changes((o, r), ops))
    })?;
    Ok(json!({ "endpoint": render_endpoint(&o, &r) }))
}

/// `DELETE mlflow/gateway/endpoints/delete` (its mappings, tags and bindings go with it).
pub fn delete_endpoint(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        Ok(Decision::change(
            (),
            Op::DeleteGatewayObject {
                kind: ENDPOINT.into(),
                id: id.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/gateway/endpoints/list`: as MLflow's query (an inner join on the mappings),
/// an endpoint with no model attached is not listed.
pub fn list_endpoints(ctx: &Ctx, req: &Req) -> Result<Json> {
    let provider = opt_nonempty(req, "provider")?;
    let (all, r) = ctx.read(|tx| {
        Ok((
            objects(tx, &ctx.workspace, ENDPOINT)?,
            refs(tx, &ctx.workspace)?,
        ))
    })?;
    let out: Vec<Json> = all
        .iter()
        .filter(|o| {
            mappings(&o.doc).iter().any(|m| match &provider {
                None => true,
                Some(p) => m["model_definition_id"]
                    .as_str()
                    .and_then(|d| r.defs.get(d))
                    .is_some_and(|d| d.doc["provider"].as_str() == Some(p)),
            })
        })
        .map(|o| render_endpoint(o, &r))
        .collect();
    Ok(if out.is_empty() {
        json!({})
    } else {
        json!({ "endpoints": out })
    })
}

/// `POST mlflow/gateway/endpoints/models/attach`.
pub fn attach_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let Some(c) = req.obj("model_config")? else {
        return Err(super::missing("model_config"));
    };
    let created_by = opt_nonempty(req, "created_by")?;
    let c = model_config(c, "model_config")?;
    let time = ctx.now();
    let (m, r) = ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        object(tx, &ctx.workspace, MODEL_DEF, &c.model_definition_id)?
            .ok_or_else(|| model_def_not_found(&c.model_definition_id))?;
        let mut maps = mappings(&o.doc);
        if maps.iter().any(|m| {
            m["model_definition_id"].as_str() == Some(c.model_definition_id.as_str())
                && m["linkage_type"].as_str() == Some(c.linkage_type.as_str())
        }) {
            return Err(MlflowError::exists(format!(
                "Model definition '{}' is already attached to endpoint '{id}'",
                c.model_definition_id
            ))
            .into());
        }
        let m = mapping_doc(&c, &created_by, time);
        maps.push(m.clone());
        o.doc["mappings"] = maps.into();
        o.doc["last_updated_at"] = time.into();
        if let Some(u) = &created_by {
            o.doc["last_updated_by"] = u.as_str().into();
        }
        let op = put_endpoint(&o, time);
        let r = refs(tx, &ctx.workspace)?;
        Ok(Decision::change((m, r), op))
    })?;
    Ok(json!({ "mapping": render_mapping(&id, &m, &r.defs, &r.names) }))
}

/// `POST mlflow/gateway/endpoints/models/detach`.
pub fn detach_model(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let def = req.str("model_definition_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        let mut maps = mappings(&o.doc);
        let Some(i) = maps
            .iter()
            .position(|m| m["model_definition_id"].as_str() == Some(def.as_str()))
        else {
            return Err(MlflowError::not_found(format!(
                "Model definition '{def}' is not attached to endpoint '{id}'"
            ))
            .into());
        };
        maps.remove(i);
        o.doc["mappings"] = maps.into();
        Ok(Decision::change((), put_endpoint(&o, time)))
    })?;
    Ok(json!({}))
}

/// `POST mlflow/gateway/endpoints/set-tag`.
pub fn set_endpoint_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let key = req.str("key")?;
    let value = req.opt_str("value")?;
    if key.chars().count() > 250 || value.as_ref().is_some_and(|v| v.chars().count() > 5000) {
        return Err(MlflowError::invalid(
            "A tag key is at most 250 characters and its value at most 5000.",
        ));
    }
    let time = ctx.now();
    ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        let mut tags: Vec<Json> = o.doc["tags"].as_array().cloned().unwrap_or_default();
        let tag = json!({ "key": key, "value": value });
        match tags
            .iter_mut()
            .find(|t| t["key"].as_str() == Some(key.as_str()))
        {
            Some(t) if *t == tag => return Ok(Decision::no_change(())),
            Some(t) => *t = tag,
            None => tags.push(tag),
        }
        o.doc["tags"] = tags.into();
        Ok(Decision::change((), put_endpoint(&o, time)))
    })?;
    Ok(json!({}))
}

/// `DELETE mlflow/gateway/endpoints/delete-tag`.
pub fn delete_endpoint_tag(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let key = req.str("key")?;
    let time = ctx.now();
    ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        let mut tags: Vec<Json> = o.doc["tags"].as_array().cloned().unwrap_or_default();
        let before = tags.len();
        tags.retain(|t| t["key"].as_str() != Some(key.as_str()));
        if tags.len() == before {
            return Ok(Decision::no_change(()));
        }
        o.doc["tags"] = tags.into();
        Ok(Decision::change((), put_endpoint(&o, time)))
    })?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------------------
// Bindings

const RESOURCE_TYPES: &[&str] = &["scorer"];

fn resource_type(req: &Req) -> Result<String> {
    let t = req.str("resource_type")?;
    if RESOURCE_TYPES.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(MlflowError::invalid(format!(
            "Invalid resource_type '{t}'. Must be one of: {}.",
            RESOURCE_TYPES.join(", ")
        )))
    }
}

fn render_binding(endpoint_id: &str, b: &Json) -> Json {
    let mut j = json!({
        "endpoint_id": endpoint_id,
        "resource_type": b["resource_type"],
        "resource_id": b["resource_id"],
        "created_at": b["created_at"],
        "last_updated_at": b["last_updated_at"],
    });
    copy_set(&mut j, b, "created_by");
    copy_set(&mut j, b, "last_updated_by");
    j
}

/// `POST mlflow/gateway/endpoints/bindings/create`.
pub fn create_binding(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let rtype = resource_type(req)?;
    let rid = req.str("resource_id")?;
    let created_by = opt_nonempty(req, "created_by")?;
    let time = ctx.now();
    let b = json!({
        "resource_type": rtype, "resource_id": rid, "created_at": time, "last_updated_at": time,
        "created_by": created_by, "last_updated_by": created_by,
    });
    ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(|| endpoint_not_found(&id))?;
        let mut bindings: Vec<Json> = o.doc["bindings"].as_array().cloned().unwrap_or_default();
        if bindings.iter().any(|x| {
            x["resource_type"].as_str() == Some(rtype.as_str())
                && x["resource_id"].as_str() == Some(rid.as_str())
        }) {
            return Err(MlflowError::exists(format!(
                "Endpoint '{id}' is already bound to {rtype} '{rid}'"
            ))
            .into());
        }
        bindings.push(b.clone());
        o.doc["bindings"] = bindings.into();
        Ok(Decision::change((), put_endpoint(&o, time)))
    })?;
    Ok(json!({ "binding": render_binding(&id, &b) }))
}

/// `DELETE mlflow/gateway/endpoints/bindings/delete`.
pub fn delete_binding(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("endpoint_id")?;
    let rtype = req.str("resource_type")?;
    let rid = req.str("resource_id")?;
    let time = ctx.now();
    let missing = || {
        not_found(
            "GatewayEndpointBinding",
            &[
                ("endpoint_id", &id),
                ("resource_type", &rtype),
                ("resource_id", &rid),
            ],
        )
    };
    ctx.write(|tx| {
        let mut o = object(tx, &ctx.workspace, ENDPOINT, &id)?.ok_or_else(missing)?;
        let mut bindings: Vec<Json> = o.doc["bindings"].as_array().cloned().unwrap_or_default();
        let before = bindings.len();
        bindings.retain(|x| {
            !(x["resource_type"].as_str() == Some(rtype.as_str())
                && x["resource_id"].as_str() == Some(rid.as_str()))
        });
        if bindings.len() == before {
            return Err(missing().into());
        }
        o.doc["bindings"] = bindings.into();
        Ok(Decision::change((), put_endpoint(&o, time)))
    })?;
    Ok(json!({}))
}

/// `GET mlflow/gateway/endpoints/bindings/list`.
pub fn list_bindings(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = opt_nonempty(req, "endpoint_id")?;
    let rtype = opt_nonempty(req, "resource_type")?;
    let rid = opt_nonempty(req, "resource_id")?;
    let all = ctx.read(|tx| objects(tx, &ctx.workspace, ENDPOINT))?;
    let mut out = Vec::new();
    for o in all
        .iter()
        .filter(|o| id.is_none() || id.as_deref() == Some(&o.id))
    {
        for b in o.doc["bindings"].as_array().into_iter().flatten() {
            if rtype
                .as_deref()
                .is_some_and(|t| b["resource_type"].as_str() != Some(t))
                || rid
                    .as_deref()
                    .is_some_and(|r| b["resource_id"].as_str() != Some(r))
            {
                continue;
            }
            out.push(render_binding(&o.id, b));
        }
    }
    Ok(if out.is_empty() {
        json!({})
    } else {
        json!({ "bindings": out })
    })
}

// ---------------------------------------------------------------------------------------
// Budget policies

const BUDGET_UNIT: &[&str] = &["BUDGET_UNIT_UNSPECIFIED", "USD"];
const DURATION_UNIT: &[&str] = &[
    "DURATION_UNIT_UNSPECIFIED",
    "MINUTES",
    "HOURS",
    "DAYS",
    "WEEKS",
    "MONTHS",
];
const TARGET_SCOPE: &[&str] = &[
    "TARGET_SCOPE_UNSPECIFIED",
    "GLOBAL",
    "WORKSPACE",
    "ENDPOINT",
    "USER",
];
const BUDGET_ACTION: &[&str] = &["BUDGET_ACTION_UNSPECIFIED", "ALERT", "REJECT"];

/// An enum field that must name a value (not `..._UNSPECIFIED`): MLflow's "Invalid X: N".
fn required_enum(req: &Req, key: &str, shown: &str, names: &[&str]) -> Result<Option<String>> {
    match enum_field(req, key, names)? {
        Some(v) if v.is_empty() => Err(MlflowError::invalid(format!("Invalid {shown}: 0"))),
        v => Ok(v),
    }
}

fn duration(req: &Req) -> Result<Option<(String, i64)>> {
    let Some(d) = req.obj("duration")? else {
        return Ok(None);
    };
    let unit = required_enum(d, "unit", "duration.unit", DURATION_UNIT)?
        .ok_or_else(|| MlflowError::invalid("Invalid duration.unit: 0"))?;
    let value = d.opt_i64("value")?.unwrap_or(0);
    if value <= 0 {
        return Err(MlflowError::invalid(format!(
            "duration.value must be a positive integer, got {value}"
        )));
    }
    Ok(Some((unit, value)))
}

fn check_target(scope: &str, value: &Option<String>, ctx: &Ctx) -> Result<()> {
    if scope == "ENDPOINT" || scope == "USER" {
        if value.is_none() {
            return Err(MlflowError::invalid(format!(
                "target_value is required when target_scope is {scope}."
            )));
        }
    } else if value.is_some() {
        return Err(MlflowError::invalid(
            "target_value can only be set when target_scope is ENDPOINT or USER.",
        ));
    }
    // A USER budget matches requests by who sent them: with nobody signed in, nothing would
    // ever match (MLflow refuses it when its server has no authentication).
    if scope == "USER" && ctx.principal == "anonymous" {
        return Err(MlflowError::invalid("USER-scoped budget policies require server authentication to be enabled. Without auth the gateway cannot attribute requests to a user, so the policy would never take effect."));
    }
    Ok(())
}

fn render_budget(o: &Obj) -> Json {
    let d = &o.doc;
    let mut j = json!({
        "budget_policy_id": o.id,
        "budget_unit": d["budget_unit"],
        "budget_amount": d["budget_amount"],
        "duration": d["duration"],
        "target_scope": d["target_scope"],
        "budget_action": d["budget_action"],
        "created_at": d["created_at"],
        "last_updated_at": d["last_updated_at"],
    });
    // MLflow's budget entity always sets these two, empty when nobody was named.
    for k in ["created_by", "last_updated_by"] {
        j[k] = d[k].as_str().unwrap_or_default().into();
    }
    copy_set(&mut j, d, "target_value");
    j
}

fn budget_not_found(id: &str) -> MlflowError {
    not_found("BudgetPolicy", &[("budget_policy_id", id)])
}

/// `POST mlflow/gateway/budgets/create`.
pub fn create_budget(ctx: &Ctx, req: &Req) -> Result<Json> {
    for k in [
        "budget_unit",
        "budget_amount",
        "duration",
        "target_scope",
        "budget_action",
    ] {
        if !req.has(k) {
            return Err(super::missing(k));
        }
    }
    let created_by = opt_nonempty(req, "created_by")?;
    let target_value = opt_nonempty(req, "target_value")?;
    let unit = required_enum(req, "budget_unit", "budget_unit", BUDGET_UNIT)?.unwrap_or_default();
    let amount = req.opt_f64("budget_amount")?.map(|f| f.0).unwrap_or(0.0);
    let (dunit, dvalue) = duration(req)?.unwrap_or_default();
    let scope =
        required_enum(req, "target_scope", "target_scope", TARGET_SCOPE)?.unwrap_or_default();
    let action =
        required_enum(req, "budget_action", "budget_action", BUDGET_ACTION)?.unwrap_or_default();
    check_target(&scope, &target_value, ctx)?;
    let time = ctx.now();
    let id = new_id("bp");
    let doc = json!({
        "budget_unit": unit, "budget_amount": amount,
        "duration": { "unit": dunit, "value": dvalue },
        "target_scope": scope, "budget_action": action, "target_value": target_value,
        "created_by": created_by, "last_updated_by": created_by,
        "created_at": time, "last_updated_at": time,
    });
    ctx.write(|tx| {
        if scope == "ENDPOINT" {
            let e = target_value.clone().unwrap_or_default();
            object(tx, &ctx.workspace, ENDPOINT, &e)?.ok_or_else(|| endpoint_not_found(&e))?;
        }
        Ok(Decision::change((), put(BUDGET, &id, None, &doc, time)))
    })?;
    Ok(json!({ "budget_policy": render_budget(&Obj { id, doc }) }))
}

/// `GET mlflow/gateway/budgets/get`.
pub fn get_budget(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("budget_policy_id")?;
    let o = ctx
        .read(|tx| object(tx, &ctx.workspace, BUDGET, &id))?
        .ok_or_else(|| budget_not_found(&id))?;
    Ok(json!({ "budget_policy": render_budget(&o) }))
}

/// `POST mlflow/gateway/budgets/update`: a partial update, checked as it will end up.
pub fn update_budget(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("budget_policy_id")?;
    let updated_by = opt_nonempty(req, "updated_by")?;
    req.opt_str("target_value")?;
    let unit = required_enum(req, "budget_unit", "budget_unit", BUDGET_UNIT)?;
    let dur = duration(req)?;
    let scope = required_enum(req, "target_scope", "target_scope", TARGET_SCOPE)?;
    let action = required_enum(req, "budget_action", "budget_action", BUDGET_ACTION)?;
    let amount = req.opt_f64("budget_amount")?.map(|f| f.0);
    let target_given = req.has("target_value");
    let target_value = opt_nonempty(req, "target_value")?;
    let time = ctx.now();
    let o = ctx.write(|tx| {
        let mut o =
            object(tx, &ctx.workspace, BUDGET, &id)?.ok_or_else(|| budget_not_found(&id))?;
        let old_scope = o.doc["target_scope"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let new_scope = scope.clone().unwrap_or(old_scope.clone());
        let inherited = if new_scope == old_scope {
            o.doc["target_value"].as_str().map(str::to_owned)
        } else {
            None
        };
        let effective = if target_given {
            target_value.clone()
        } else {
            inherited
        };
        if scope.is_some() || target_given {
            check_target(&new_scope, &effective, ctx)?;
        }
        if new_scope == "ENDPOINT" && target_given {
            let e = effective.clone().unwrap_or_default();
            object(tx, &ctx.workspace, ENDPOINT, &e)?.ok_or_else(|| endpoint_not_found(&e))?;
        }
        if let Some(u) = &unit {
            o.doc["budget_unit"] = u.as_str().into();
        }
        if let Some(a) = amount {
            o.doc["budget_amount"] = a.into();
        }
        if let Some((u, v)) = &dur {
            o.doc["duration"] = json!({ "unit": u, "value": v });
        }
        if let Some(a) = &action {
            o.doc["budget_action"] = a.as_str().into();
        }
        o.doc["target_scope"] = new_scope.as_str().into();
        o.doc["target_value"] = if new_scope == "ENDPOINT" || new_scope == "USER" {
            json!(effective)
        } else {
            Json::Null
        };
        o.doc["last_updated_at"] = time.into();
        if let Some(u) = &updated_by {
            o.doc["last_updated_by"] = u.as_str().into();
        }
        let op = put(BUDGET, &id, None, &o.doc, time);
        Ok(Decision::change(o, op))
    })?;
    Ok(json!({ "budget_policy": render_budget(&o) }))
}

/// `DELETE mlflow/gateway/budgets/delete`.
pub fn delete_budget(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("budget_policy_id")?;
    let time = ctx.now();
    ctx.write(|tx| {
        object(tx, &ctx.workspace, BUDGET, &id)?.ok_or_else(|| budget_not_found(&id))?;
        Ok(Decision::change(
            (),
            Op::DeleteGatewayObject {
                kind: BUDGET.into(),
                id: id.clone(),
                time,
            },
        ))
    })?;
    Ok(json!({}))
}

/// `max_results` as MLflow's gateway lists check it (default 1000, at most 50000).
fn max_results(req: &Req) -> Result<usize> {
    let n = req
        .opt_i64("max_results")?
        .filter(|n| *n != 0)
        .unwrap_or(MAX_RESULTS_DEFAULT);
    if n < 1 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    if n > MAX_RESULTS_THRESHOLD {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {MAX_RESULTS_THRESHOLD}"
        )));
    }
    Ok(n as usize)
}

/// `GET mlflow/gateway/budgets/list`: by ID, paged.
pub fn list_budgets(ctx: &Ctx, req: &Req) -> Result<Json> {
    let max = max_results(req)?;
    let offset = req.page_offset()?;
    let mut all = ctx.read(|tx| objects(tx, &ctx.workspace, BUDGET))?;
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let (page, next) = super::page(all, offset, max);
    let mut out = json!({});
    if !page.is_empty() {
        out["budget_policies"] = page.iter().map(render_budget).collect::<Vec<_>>().into();
    }
    if let Some(t) = next {
        out["next_page_token"] = t.into();
    }
    Ok(out)
}

/// The current window of a budget (MLflow's `_compute_window_start` / `_end`): aligned to
/// the epoch in minutes, hours or days, to Sundays for weeks, to months from January 1970.
pub fn budget_window(unit: &str, value: i64, now_ms: i64) -> Option<(i64, i64)> {
    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;
    // 1970-01-04 was the first Sunday after the epoch.
    const SUNDAY: i64 = 3 * DAY;
    if value <= 0 {
        return None;
    }
    let aligned = |origin: i64, len: i64| {
        let start = origin + (now_ms - origin).div_euclid(len * value) * len * value;
        (start, start + len * value)
    };
    match unit {
        "MINUTES" => Some(aligned(0, MIN)),
        "HOURS" => Some(aligned(0, 60 * MIN)),
        "DAYS" => Some(aligned(0, DAY)),
        "WEEKS" => Some(aligned(SUNDAY, 7 * DAY)),
        "MONTHS" => {
            let date = chrono::DateTime::from_timestamp_millis(now_ms)?.date_naive();
            use chrono::Datelike;
            let total = (date.year() as i64 - 1970) * 12 + date.month0() as i64;
            let start_m = total.div_euclid(value) * value;
            let month_start = |m: i64| {
                chrono::NaiveDate::from_ymd_opt(
                    1970 + m.div_euclid(12) as i32,
                    m.rem_euclid(12) as u32 + 1,
                    1,
                )
                .map(|d| {
                    d.and_hms_opt(0, 0, 0)
                        .expect("midnight exists")
                        .and_utc()
                        .timestamp_millis()
                })
            };
            Some((month_start(start_m)?, month_start(start_m + value)?))
        }
        _ => None,
    }
}

/// `GET mlflow/gateway/budgets/windows`: each policy's current window. tandem does not
/// trace gateway calls yet (issue 21), so no spend is recorded against a window.
pub fn list_budget_windows(ctx: &Ctx, _: &Req) -> Result<Json> {
    let now = ctx.now();
    let mut all = ctx.read(|tx| objects(tx, &ctx.workspace, BUDGET))?;
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let windows: Vec<Json> = all
        .iter()
        .filter_map(|o| {
            let d = &o.doc["duration"];
            let (s, e) = budget_window(d["unit"].as_str()?, d["value"].as_i64()?, now)?;
            Some(json!({ "budget_policy_id": o.id, "window_start_ms": s, "window_end_ms": e, "current_spend": 0.0 }))
        })
        .collect();
    Ok(if windows.is_empty() {
        json!({})
    } else {
        json!({ "windows": windows })
    })
}

// ---------------------------------------------------------------------------------------
// Guardrails (a guardrail runs a registered scorer version; tandem stores none yet)

const STAGE: &[&str] = &["GUARDRAIL_STAGE_UNSPECIFIED", "BEFORE", "AFTER"];
const ACTION: &[&str] = &["GUARDRAIL_ACTION_UNSPECIFIED", "VALIDATION", "SANITIZATION"];

/// `POST mlflow/gateway/guardrails/create`: checked as MLflow checks it, then refused as on
/// a server with no such scorer.
pub fn create_guardrail(_: &Ctx, req: &Req) -> Result<Json> {
    req.str("name")?;
    let scorer_id = req.str("scorer_id")?;
    let version = req.i64("scorer_version")?;
    for k in ["stage", "action"] {
        if !req.has(k) {
            return Err(super::missing(k));
        }
    }
    req.opt_str("action_endpoint_id")?;
    required_enum(req, "stage", "stage", STAGE)?;
    required_enum(req, "action", "action", ACTION)?;
    let _ = version;
    Err(MlflowError::not_found(format!(
        "Scorer with ID '{scorer_id}' not found."
    )))
}

fn guardrail_not_found(id: &str) -> MlflowError {
    not_found("Guardrail", &[("guardrail_id", id)])
}

/// `GET mlflow/gateway/guardrails/get`.
pub fn get_guardrail(_: &Ctx, req: &Req) -> Result<Json> {
    Err(guardrail_not_found(&req.str("guardrail_id")?))
}

/// `DELETE mlflow/gateway/guardrails/delete`.
pub fn delete_guardrail(_: &Ctx, req: &Req) -> Result<Json> {
    Err(guardrail_not_found(&req.str("guardrail_id")?))
}

/// `GET mlflow/gateway/guardrails/list`.
pub fn list_guardrails(_: &Ctx, req: &Req) -> Result<Json> {
    max_results(req)?;
    req.page_offset()?;
    Ok(json!({}))
}

fn endpoint_exists(ctx: &Ctx, id: &str) -> Result<()> {
    ctx.read(|tx| object(tx, &ctx.workspace, ENDPOINT, id))?
        .map(|_| ())
        .ok_or_else(|| not_found("Endpoint", &[("endpoint_id", id)]))
}

/// `POST mlflow/gateway/guardrails/add-to-endpoint`.
pub fn add_guardrail(ctx: &Ctx, req: &Req) -> Result<Json> {
    let e = req.str("endpoint_id")?;
    let g = req.str("guardrail_id")?;
    req.opt_i64("execution_order")?;
    endpoint_exists(ctx, &e)?;
    Err(guardrail_not_found(&g))
}

fn config_not_found(req: &Req) -> Result<MlflowError> {
    let e = req.str("endpoint_id")?;
    let g = req.str("guardrail_id")?;
    Ok(not_found(
        "GuardrailConfig",
        &[("endpoint_id", &e), ("guardrail_id", &g)],
    ))
}

/// `DELETE mlflow/gateway/guardrails/remove-from-endpoint`.
pub fn remove_guardrail(_: &Ctx, req: &Req) -> Result<Json> {
    Err(config_not_found(req)?)
}

/// `PATCH mlflow/gateway/guardrails/update-config`.
pub fn update_guardrail_config(_: &Ctx, req: &Req) -> Result<Json> {
    let e = config_not_found(req)?;
    req.opt_i64("execution_order")?;
    Err(e)
}

/// `GET mlflow/gateway/guardrails/list-for-endpoint`.
pub fn list_endpoint_guardrails(ctx: &Ctx, req: &Req) -> Result<Json> {
    endpoint_exists(ctx, &req.str("endpoint_id")?)?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------------------
// The web UI's supporting routes

/// The providers tandem's gateway can call (OpenAI's API and Azure OpenAI), with the auth
/// modes and model catalog MLflow 3.17.2 ships for them
/// (`mlflow.utils.providers.get_provider_config_response` / `get_models`, saved as JSON).
static PROVIDERS: std::sync::LazyLock<Json> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("gateway_providers.json"))
        .expect("the provider catalog is JSON")
});

/// Whether tandem's gateway can call `provider`.
pub fn provider_supported(provider: &str) -> bool {
    PROVIDERS["providers"].get(provider).is_some()
}

fn check_provider(provider: &str) -> Result<()> {
    if provider_supported(provider) {
        return Ok(());
    }
    let known: Vec<&String> = PROVIDERS["providers"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    Err(MlflowError::invalid(format!(
        "Provider '{provider}' is not supported by this gateway. Supported providers: {}.",
        known
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `GET mlflow/gateway/supported-providers`.
pub fn supported_providers(_: &Ctx, _: &Req) -> Result<Json> {
    let known: Vec<&String> = PROVIDERS["providers"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    Ok(json!({ "providers": known }))
}

/// `GET mlflow/gateway/supported-models?provider=`.
pub fn supported_models(_: &Ctx, req: &Req) -> Result<Json> {
    let provider = opt_nonempty(req, "provider")?;
    let mut models = Vec::new();
    for (p, v) in PROVIDERS["providers"].as_object().into_iter().flatten() {
        if provider.as_deref().is_none_or(|want| want == p) {
            models.extend(v["models"].as_array().cloned().unwrap_or_default());
        }
    }
    Ok(json!({ "models": models }))
}

/// `GET mlflow/gateway/provider-config?provider=`.
pub fn provider_config(_: &Ctx, req: &Req) -> Result<Json> {
    let provider = opt_nonempty(req, "provider")?
        .ok_or_else(|| MlflowError::invalid("Provider parameter is required"))?
        .to_ascii_lowercase();
    check_provider(&provider)?;
    Ok(PROVIDERS["providers"][provider.as_str()]["config"].clone())
}

/// `GET mlflow/gateway/secrets/config`: secrets are available when this server has a master
/// key; tandem never encrypts with a default passphrase.
pub fn secrets_config(ctx: &Ctx, _: &Req) -> Result<Json> {
    Ok(json!({ "secrets_available": ctx.vault.is_some(), "using_default_passphrase": false }))
}

// ---------------------------------------------------------------------------------------
// For the invocation routes

/// What calling an endpoint's provider needs: each model of the endpoint (primary ones
/// first, then fallbacks in order) with its provider, model name, decrypted credential map
/// and auth config, and the endpoint's per-region URLs.
pub struct Route {
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub models: Vec<RouteModel>,
    pub regions: BTreeMap<String, String>,
}

pub struct RouteModel {
    pub provider: String,
    pub model_name: String,
    pub linkage: String,
    pub weight: f64,
    pub credentials: BTreeMap<String, String>,
    pub auth_config: BTreeMap<String, String>,
}

/// The endpoint named `name` with its models' credentials opened: the one place a gateway
/// secret's value is read in clear (see the module's invariant).
pub fn invocation_route(ctx: &Ctx, name: &str) -> Result<Route> {
    let (o, defs) = ctx.read(|tx| {
        Ok((
            endpoint_by_name(tx, &ctx.workspace, name)?,
            objects(tx, &ctx.workspace, MODEL_DEF)?,
        ))
    })?;
    let o = o.ok_or_else(|| MlflowError::not_found(format!("Endpoint '{name}' not found")))?;
    let defs: HashMap<String, Obj> = defs.into_iter().map(|d| (d.id.clone(), d)).collect();
    let mut maps = mappings(&o.doc);
    maps.sort_by_key(|m| {
        (
            m["linkage_type"].as_str() != Some("PRIMARY"),
            m["fallback_order"].as_i64().unwrap_or(i64::MAX),
        )
    });
    let mut models = Vec::new();
    for m in maps {
        let Some(d) = m["model_definition_id"]
            .as_str()
            .and_then(|id| defs.get(id))
        else {
            continue;
        };
        let secret_id = d.doc["secret_id"].as_str().unwrap_or_default().to_owned();
        let found = ctx.read(|tx| live_secret(tx, &ctx.workspace, &secret_id))?;
        let Some((secret_name, sdoc)) = found else {
            return Err(MlflowError::invalid(format!(
                "Model definition '{}' of endpoint '{name}' has no secret: update it with a secret first.",
                d.doc["name"].as_str().unwrap_or_default()
            )));
        };
        let (_, plain) = secrets::reveal_bytes(ctx, &secret_name, None)?;
        let credentials: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|e| {
                MlflowError::internal(format!("secret '{secret_name}' is not a map: {e}"))
            })?;
        let auth_config: BTreeMap<String, String> = sdoc["auth_config"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| as_opt_str(v).map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        models.push(RouteModel {
            provider: d.doc["provider"].as_str().unwrap_or_default().to_owned(),
            model_name: d.doc["model_name"].as_str().unwrap_or_default().to_owned(),
            linkage: m["linkage_type"].as_str().unwrap_or_default().to_owned(),
            weight: m["weight"].as_f64().unwrap_or(1.0),
            credentials,
            auth_config,
        });
    }
    let regions = o.doc["regions"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Route {
        endpoint_id: o.id,
        endpoint_name: name.to_owned(),
        models,
        regions,
    })
}

/// What a call asks of its endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Chat,
    Embeddings,
}

/// Where a call goes: the URL, where the URL came from (`region`, `auth_config`, `provider`)
/// and the headers that carry the credential.
pub struct Upstream {
    pub url: String,
    pub source: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

/// Where a model of an endpoint is reached from `region`: the URL, where it came from
/// (`region`, `auth_config`, `provider`), and the headers that carry its credential.
pub fn upstream(
    route: &Route,
    m: &RouteModel,
    kind: Kind,
    region: Option<&str>,
) -> Result<Upstream> {
    let regional = region.and_then(|r| route.regions.get(r));
    let (base, source) = match (regional, m.auth_config.get("api_base")) {
        (Some(u), _) => (u.clone(), "region"),
        (None, Some(b)) => (b.clone(), "auth_config"),
        (None, None) if m.provider == "openai" => {
            ("https://api.openai.com/v1".to_owned(), "provider")
        }
        (None, None) => {
            return Err(MlflowError::invalid(format!(
                "Endpoint '{}' has no URL for provider '{}': set api_base in its secret's auth_config or a URL per region.",
                route.endpoint_name, m.provider
            )))
        }
    };
    let base = base.trim_end_matches('/');
    let key = m.credentials.get("api_key").cloned().unwrap_or_default();
    let op = match kind {
        Kind::Chat => "chat/completions",
        Kind::Embeddings => "embeddings",
    };
    match m.provider.as_str() {
        "azure" => {
            let version = m
                .auth_config
                .get("api_version")
                .or_else(|| m.credentials.get("api_version"))
                .cloned()
                .unwrap_or_else(|| "2024-02-01".to_owned());
            Ok(Upstream {
                url: format!(
                    "{base}/openai/deployments/{}/{op}?api-version={version}",
                    crate::http::encode_segment(&m.model_name)
                ),
                source,
                headers: vec![("api-key", key)],
            })
        }
        _ => Ok(Upstream {
            url: format!("{base}/{op}"),
            source,
            headers: vec![("authorization", format!("Bearer {key}"))],
        }),
    }
}

/// `GET .../connections/{name}/resolve`: where a call of endpoint `name` goes from `region`
/// now, for each of its models (no credential in the answer).
pub fn resolve(ctx: &Ctx, name: &str, region: Option<&str>) -> Result<Json> {
    let route = invocation_route(ctx, name)?;
    let mut models = Vec::new();
    for m in &route.models {
        let Upstream { url, source, .. } = upstream(&route, m, Kind::Chat, region)?;
        models.push(json!({
            "provider": m.provider,
            "model_name": m.model_name,
            "linkage_type": m.linkage,
            "url": url,
            "source": source,
        }));
    }
    let first = models.first().cloned().unwrap_or(Json::Null);
    if first.is_null() {
        return Err(MlflowError::new(
            ErrorCode::InvalidState,
            format!("Endpoint '{name}' has no model attached."),
        ));
    }
    Ok(json!({
        "connection": name,
        "endpoint_id": route.endpoint_id,
        "region": region,
        "url": first["url"],
        "source": first["source"],
        "models": models,
        "regions": route.regions,
    }))
}

/// `GET /api/tandem/v1/workspaces/{ws}/connections/{name}/resolve`: the HTTP edge names the
/// region serving the request (`_tandem_region`; a client cannot set it).
pub fn resolve_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let t = super::named_workspace(ctx, req, true)?;
    let name = req.str("name")?;
    let region = req.opt_str("_tandem_region")?;
    resolve(&t, &name, region.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_mlflow_does() {
        assert_eq!(mask("short"), "***");
        assert_eq!(mask("1234567"), "***");
        assert_eq!(mask("sk-abcdefghijkl1234"), "sk-...1234");
        assert_eq!(mask("éééééééé"), "ééé...éééé");
    }

    #[test]
    fn public_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn budget_windows_align_as_mlflow() {
        // 2026-12-05T02:34:21Z
        let now = 1_796_445_261_000;
        let (s, e) = budget_window("HOURS", 2, now).unwrap();
        assert_eq!((s % 7_200_000, e - s), (0, 7_200_000));
        let (s, e) = budget_window("MONTHS", 3, now).unwrap();
        // October 1 to January 1.
        assert_eq!(s, 1_790_812_800_000);
        assert_eq!(e, 1_798_761_600_000);
        let (s, _) = budget_window("WEEKS", 1, now).unwrap();
        // A Sunday at midnight.
        assert_eq!((s / 86_400_000 + 4) % 7, 0);
    }
}
