//! Workspaces: MLflow 3's `/api/3.0/mlflow/workspaces` API, and the `default` workspace.

use super::{Ctx, Req};
use crate::store::{queries, Decision, Store};
use serde_json::{json, Value as Json};
use tandem_core::{MlflowError, Op, Result};

pub const DEFAULT_WORKSPACE: &str = "default";
const RESERVED: &[&str] = &["workspaces", "api", "ajax-api", "static-files"];

/// MLflow's WorkspaceNameValidator: 2 to 63 characters of `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
pub fn validate_name(name: &str) -> Result<()> {
    if !(2..=63).contains(&name.len()) {
        return Err(MlflowError::invalid(format!(
            "Workspace name '{name}' must be between 2 and 63 characters."
        )));
    }
    let b = name.as_bytes();
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    let ends_ok = b[0] != b'-' && b[b.len() - 1] != b'-';
    if !inner_ok || !ends_ok {
        return Err(MlflowError::invalid(format!(
            "Workspace name '{name}' must match the pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (lowercase alphanumeric with optional internal hyphens)."
        )));
    }
    if RESERVED.contains(&name) {
        return Err(MlflowError::invalid(format!(
            "Workspace name '{name}' is reserved."
        )));
    }
    Ok(())
}

fn not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Workspace '{name}' not found."))
}

/// A workspace's first events: itself and MLflow's default experiment "0".
fn creation_ops(description: String, default_artifact_root: Option<String>, time: i64) -> Vec<Op> {
    vec![
        Op::CreateWorkspace {
            description,
            default_artifact_root,
            time,
        },
        super::tracking::default_experiment_op(time),
    ]
}

/// Creates a workspace unless it exists. Returns whether it was created.
pub fn ensure(
    store: &Store,
    name: &str,
    description: &str,
    principal: &str,
) -> crate::store::Result<bool> {
    let time = store.now_ms();
    store.write(name, principal, |tx| {
        // A deleted workspace is not brought back behind the operator's back.
        if queries::workspace_exists(tx, name)? || queries::workspace_deleted(tx, name)?.is_some() {
            return Ok(Decision::no_change(false));
        }
        Ok(Decision::changes(
            true,
            creation_ops(description.to_owned(), None, time),
        ))
    })
}

fn target(ctx: &Ctx, req: &Req, key: &str) -> Result<Ctx> {
    let name = req.str(key)?;
    if name != DEFAULT_WORKSPACE {
        validate_name(&name)?;
    }
    // Administration of a workspace may find it deleted; it checks for itself.
    Ok(Ctx {
        workspace: name,
        require_live: false,
        authenticated: false,
        ..ctx.clone()
    })
}

pub fn list(ctx: &Ctx, _req: &Req) -> Result<Json> {
    Ok(json!({ "workspaces": ctx.read(queries::workspaces)? }))
}

pub fn create(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = target(ctx, req, "name")?;
    let description = req.opt_str("description")?.unwrap_or_default();
    if description.len() > 5000 {
        return Err(tandem_core::validate::too_long("description", 5000));
    }
    let root = req
        .opt_str("default_artifact_root")?
        .filter(|s| !s.is_empty());
    let time = ctx.now();
    ws.write(|tx| {
        if queries::workspace_exists(tx, &ws.workspace)? {
            return Err(MlflowError::exists(format!("Workspace '{}' already exists.", ws.workspace)).into());
        }
        if queries::workspace_deleted(tx, &ws.workspace)?.is_some() {
            return Err(MlflowError::exists(format!(
                "Workspace '{0}' was deleted and is still restorable: undelete it (tandem undelete --workspace {0}) or purge it (tandem purge --workspace {0} --now) first.",
                ws.workspace
            ))
            .into());
        }
        Ok(Decision::changes((), creation_ops(description.clone(), root.clone(), time)))
    })?;
    get_json(&ws)
}

fn get_json(ws: &Ctx) -> Result<Json> {
    let w = ws
        .read(|tx| queries::workspace(tx, &ws.workspace))?
        .ok_or_else(|| not_found(&ws.workspace))?;
    Ok(json!({ "workspace": w }))
}

pub fn get(ctx: &Ctx, req: &Req) -> Result<Json> {
    get_json(&target(ctx, req, "workspace_name")?)
}

pub fn update(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = target(ctx, req, "workspace_name")?;
    let description = req.opt_str("description")?;
    let root = req.opt_str("default_artifact_root")?;
    let time = ctx.now();
    ws.write(|tx| {
        if !queries::workspace_exists(tx, &ws.workspace)? {
            return Err(not_found(&ws.workspace).into());
        }
        Ok(Decision::change(
            (),
            Op::UpdateWorkspace {
                description: description.clone(),
                default_artifact_root: root.clone(),
                time,
            },
        ))
    })?;
    get_json(&ws)
}

/// Tables whose rows are a workspace's resources, as `RESTRICT` counts them (the default
/// experiment "0" is part of every workspace, not a resource).
const RESOURCE_TABLES: &[(&str, &str)] = &[
    ("experiments", "experiment_id <> '0'"),
    ("runs", "1 = 1"),
    ("logged_models", "1 = 1"),
    ("registered_models", "1 = 1"),
];

/// `mode` is MLflow's WorkspaceDeletionMode: RESTRICT (the default) refuses while the
/// workspace holds resources, CASCADE deletes them with it. The change log is kept either way.
pub fn delete(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = target(ctx, req, "workspace_name")?;
    if ws.workspace == DEFAULT_WORKSPACE {
        return Err(MlflowError::new(
            tandem_core::ErrorCode::InvalidState,
            format!("Cannot delete the reserved '{DEFAULT_WORKSPACE}' workspace"),
        ));
    }
    let mode = req
        .opt_str("mode")?
        .unwrap_or_else(|| "RESTRICT".to_owned());
    match mode.as_str() {
        "RESTRICT" | "CASCADE" => {}
        "SET_DEFAULT" => return Err(MlflowError::invalid("Deletion mode 'SET_DEFAULT' is not supported by tandem: IDs and change logs are per workspace. Use RESTRICT or CASCADE.")),
        other => return Err(MlflowError::invalid(format!("Invalid deletion mode '{other}'. Valid modes are: SET_DEFAULT, CASCADE, RESTRICT"))),
    }
    let time = ctx.now();
    ws.write(|tx| {
        if !queries::workspace_exists(tx, &ws.workspace)? {
            return Err(not_found(&ws.workspace).into());
        }
        if mode == "RESTRICT" {
            for (table, cond) in RESOURCE_TABLES {
                let n = tx.query_one(&format!("SELECT COUNT(*) FROM {table} WHERE workspace = ? AND {cond}"), &[ws.workspace.as_str().into()])?.map(|r| r.int(0)).unwrap_or(0);
                if n > 0 {
                    return Err(MlflowError::new(
                        tandem_core::ErrorCode::InvalidState,
                        format!("Cannot delete workspace '{}': table '{table}' still contains {n} resource(s). Remove them or delete with mode=CASCADE.", ws.workspace),
                    )
                    .into());
                }
            }
        }
        Ok(Decision::change(json!({}), Op::DeleteWorkspace { time }))
    })
}
