//! MLflow's own auth API (`mlflow.server.auth.client.AuthServiceClient`: users, admin flag,
//! per-user permissions READ / USE / EDIT / MANAGE / NO_PERMISSIONS on experiments,
//! registered models and workspaces), translated onto tandem's access model: the same
//! principals, and permissions as role assignments (READ and USE: reader, EDIT: contributor,
//! MANAGE: owner) at the matching scope. Nothing here is a second store of rights.

use super::access::{self, Grant, NewPrincipal};
use super::{Ctx, Req};
use crate::store::queries;
use serde_json::{json, Value as Json};
use tandem_core::access::{AccessState, Scope};
use tandem_core::{ErrorCode, MlflowError, Result};

fn state(ctx: &Ctx) -> Result<AccessState> {
    ctx.store
        .read(queries::access_state)
        .map_err(MlflowError::from)
}

fn is_admin(state: &AccessState, pid: &str) -> bool {
    state.assignments.iter().any(|a| {
        a.principal_id == pid
            && a.role == "admin"
            && a.scope == Scope::Service
            && a.until_ms.is_none()
            && a.eligible_for_ms.is_none()
    })
}

/// The principal ID of an MLflow user name, or MLflow's not-found error.
fn user_id(state: &AccessState, username: &str) -> Result<String> {
    state
        .principal_by_name(username)
        .map(|p| p.id.clone())
        .ok_or_else(|| MlflowError::not_found(format!("User with username={username} not found")))
}

fn user_json(state: &AccessState, name: &str) -> Result<Json> {
    let p = state
        .principal_by_name(name)
        .ok_or_else(|| MlflowError::not_found(format!("User with username={name} not found")))?;
    Ok(json!({ "id": p.id, "username": p.name, "is_admin": is_admin(state, &p.id) }))
}

pub fn create_user(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let password = req.str("password")?;
    if password.is_empty() {
        return Err(MlflowError::invalid("Password cannot be empty"));
    }
    if password.len() < 8 {
        return Err(MlflowError::invalid(
            "a password must have at least 8 characters",
        ));
    }
    let hash = crate::auth::hash_password(&password)?;
    access::create_principal(
        &ctx.store,
        &ctx.principal,
        NewPrincipal {
            name: &username,
            kind: "user",
            workspace: None,
            password_hash: Some(hash),
            roles: vec![],
        },
    )?;
    Ok(json!({ "user": user_json(&state(ctx)?, &username)? }))
}

pub fn get_user(ctx: &Ctx, req: &Req) -> Result<Json> {
    Ok(json!({ "user": user_json(&state(ctx)?, &req.str("username")?)? }))
}

pub fn current_user(ctx: &Ctx, _req: &Req) -> Result<Json> {
    Ok(json!({ "user": user_json(&state(ctx)?, &ctx.principal)? }))
}

pub fn list_users(ctx: &Ctx, _req: &Req) -> Result<Json> {
    let s = state(ctx)?;
    let mut names: Vec<&str> = s
        .principals
        .values()
        .filter(|p| p.kind == "user")
        .map(|p| p.name.as_str())
        .collect();
    names.sort();
    let users = names
        .iter()
        .map(|n| user_json(&s, n))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "users": users }))
}

/// A user changes their own password by giving the current one; anyone else's needs the
/// access API (`PATCH /api/tandem/v1/access/principals/{name}/password`, `access/manage`).
pub fn update_password(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let password = req.str("password")?;
    if username != ctx.principal {
        return Err(MlflowError::new(ErrorCode::PermissionDenied, format!("Permission denied: changing the password of '{username}' is an access change; an administrator uses PATCH /api/tandem/v1/access/principals/{username}/password")));
    }
    let s = state(ctx)?;
    let current = req.opt_str("current_password")?.ok_or_else(|| {
        MlflowError::invalid("give your current password (current_password) to change it")
    })?;
    let ok = s
        .principal_by_name(&username)
        .and_then(|p| p.password_hash.as_deref())
        .is_some_and(|h| crate::auth::verify_password(&current, h));
    if !ok {
        return Err(MlflowError::new(
            ErrorCode::PermissionDenied,
            "Permission denied: the current password is wrong",
        ));
    }
    if password.len() < 8 {
        return Err(MlflowError::invalid(
            "a password must have at least 8 characters",
        ));
    }
    access::set_password(
        &ctx.store,
        &ctx.principal,
        &username,
        crate::auth::hash_password(&password)?,
    )?;
    Ok(json!({}))
}

pub fn update_admin(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let make_admin = req
        .opt_bool("is_admin")?
        .ok_or_else(|| super::missing("is_admin"))?;
    let s = state(ctx)?;
    let pid = user_id(&s, &username)?;
    if make_admin {
        access::assign(
            &ctx.store,
            &ctx.principal,
            &username,
            "admin",
            &Scope::Service,
            Grant::Standing,
        )?;
    } else {
        for a in s.assignments.iter().filter(|a| {
            a.principal_id == pid
                && a.role == "admin"
                && a.scope == Scope::Service
                && a.until_ms.is_none()
                && a.eligible_for_ms.is_none()
        }) {
            access::unassign(&ctx.store, &ctx.principal, &a.id)?;
        }
    }
    Ok(json!({}))
}

pub fn delete_user(ctx: &Ctx, req: &Req) -> Result<Json> {
    access::delete_principal(&ctx.store, &ctx.principal, &req.str("username")?)?;
    Ok(json!({}))
}

/// The scope of MLflow's (resource_type, resource_id) in the request's workspace.
fn resource_scope(ctx: &Ctx, req: &Req) -> Result<Scope> {
    let kind = req.str("resource_type")?;
    let id = req.str("resource_id")?;
    let ws = ctx.workspace.clone();
    match kind.as_str() {
        "experiment" => Ok(Scope::Experiment(ws, id)),
        "registered_model" => Ok(Scope::Model(ws, id)),
        "workspace" => access::parse_scope(&format!("workspaces/{id}")),
        other => Err(MlflowError::new(
            ErrorCode::NotImplemented,
            format!("resource_type '{other}' is not served by tandem (experiment, registered_model and workspace are)"),
        )),
    }
}

/// MLflow permission -> tandem role. None: NO_PERMISSIONS.
fn role_of(permission: &str) -> Result<Option<&'static str>> {
    match permission {
        "READ" | "USE" => Ok(Some("reader")),
        "EDIT" => Ok(Some("contributor")),
        "MANAGE" => Ok(Some("owner")),
        "NO_PERMISSIONS" => Ok(None),
        "DENY" => Err(MlflowError::new(
            ErrorCode::NotImplemented,
            "DENY is not served by tandem yet: revoke the grants instead",
        )),
        other => Err(MlflowError::invalid(format!(
            "Invalid permission '{other}': use READ, USE, EDIT, MANAGE or NO_PERMISSIONS"
        ))),
    }
}

const MAPPED: &[&str] = &["reader", "contributor", "owner"];

/// The user's standing assignments of a mapped role at exactly `scope`.
fn grants_at<'a>(
    s: &'a AccessState,
    pid: &'a str,
    scope: &'a Scope,
) -> impl Iterator<Item = &'a tandem_core::access::Assignment> + 'a {
    s.assignments.iter().filter(move |a| {
        a.principal_id == pid
            && &a.scope == scope
            && MAPPED.contains(&a.role.as_str())
            && a.until_ms.is_none()
            && a.eligible_for_ms.is_none()
    })
}

pub fn grant_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let scope = resource_scope(ctx, req)?;
    let role = role_of(&req.str("permission")?)?;
    let s = state(ctx)?;
    let pid = user_id(&s, &username)?;
    // One permission per user and resource, as in MLflow: the new one replaces the old.
    for a in grants_at(&s, &pid, &scope) {
        if Some(a.role.as_str()) != role {
            access::unassign(&ctx.store, &ctx.principal, &a.id)?;
        }
    }
    if let Some(role) = role {
        access::assign(
            &ctx.store,
            &ctx.principal,
            &username,
            role,
            &scope,
            Grant::Standing,
        )?;
    }
    Ok(json!({}))
}

pub fn revoke_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let scope = resource_scope(ctx, req)?;
    let s = state(ctx)?;
    let pid = user_id(&s, &username)?;
    for a in grants_at(&s, &pid, &scope) {
        access::unassign(&ctx.store, &ctx.principal, &a.id)?;
    }
    Ok(json!({}))
}

/// The user's effective permission on the resource: the strongest role they hold at its
/// scope or wider, as the runtime check would see it.
pub fn get_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let scope = resource_scope(ctx, req)?;
    let s = state(ctx)?;
    let pid = user_id(&s, &username)?;
    let rank = |role: &str| match role {
        "reader" => 1,
        "contributor" => 2,
        "owner" | "admin" => 3,
        _ => 0,
    };
    let best = s
        .live_assignments(&pid, ctx.now())
        .filter(|a| a.scope.contains(&scope))
        .map(|a| rank(&a.role))
        .max()
        .unwrap_or(0);
    let permission = ["NO_PERMISSIONS", "READ", "EDIT", "MANAGE"][best];
    Ok(json!({ "allowed": best > 0, "permission": permission }))
}

// MLflow 2.x's per-resource permission routes (`experiments/permissions/...`,
// `registered-models/permissions/...`), which older AuthServiceClients and scripts call:
// the same grants, in their shapes.

fn with_resource(req: &Req, kind: &str, id_key: &str) -> Result<Req> {
    let mut r = req.clone();
    r.set("resource_type", kind);
    r.set("resource_id", req.str(id_key)?);
    Ok(r)
}

fn permission_json(ctx: &Ctx, req: &Req, kind: &str, id_key: &str, field: &str) -> Result<Json> {
    let r = with_resource(req, kind, id_key)?;
    let got = get_permission(ctx, &r)?;
    if got["allowed"] != true {
        return Err(MlflowError::not_found(format!(
            "Permission with {id_key}={} and username={} not found",
            req.str(id_key)?,
            req.str("username")?
        )));
    }
    let s = state(ctx)?;
    let user_id = s
        .principal_by_name(&req.str("username")?)
        .map(|p| p.id.clone())
        .unwrap_or_default();
    Ok(
        json!({ field: { id_key: req.str(id_key)?, "user_id": user_id, "permission": got["permission"] } }),
    )
}

pub fn create_experiment_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    grant_permission(ctx, &with_resource(req, "experiment", "experiment_id")?)?;
    permission_json(
        ctx,
        req,
        "experiment",
        "experiment_id",
        "experiment_permission",
    )
}

pub fn get_experiment_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    permission_json(
        ctx,
        req,
        "experiment",
        "experiment_id",
        "experiment_permission",
    )
}

pub fn delete_experiment_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    revoke_permission(ctx, &with_resource(req, "experiment", "experiment_id")?)
}

pub fn create_model_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    grant_permission(ctx, &with_resource(req, "registered_model", "name")?)?;
    permission_json(
        ctx,
        req,
        "registered_model",
        "name",
        "registered_model_permission",
    )
}

pub fn get_model_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    permission_json(
        ctx,
        req,
        "registered_model",
        "name",
        "registered_model_permission",
    )
}

pub fn delete_model_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    revoke_permission(ctx, &with_resource(req, "registered_model", "name")?)
}

// MLflow 3's role objects (`/api/3.0/mlflow/roles/...`): a role in a workspace with
// permissions on resource patterns. Each is a tandem custom role (named by the role's ID)
// whose actions are derived from its permissions, keeping its MLflow shape beside them;
// assigning it assigns that custom role at `*` (its patterns name the workspace).

use tandem_core::access::{
    mlflow_permission_actions, MlflowPermissionError, MlflowRole, MlflowRolePermission,
};

fn role_not_found(id: &str) -> MlflowError {
    MlflowError::not_found(format!("Role with id={id} not found"))
}

fn role_json(id: &str, r: &MlflowRole) -> Json {
    json!({
        "id": id, "name": r.name, "workspace": r.workspace, "description": r.description,
        "permissions": r.permissions.iter().map(|p| perm_json(id, p)).collect::<Vec<_>>(),
    })
}

fn perm_json(role_id: &str, p: &MlflowRolePermission) -> Json {
    json!({ "id": p.id, "role_id": role_id, "resource_type": p.resource_type, "resource_pattern": p.resource_pattern, "permission": p.permission })
}

fn actions_of(r: &MlflowRole) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in &r.permissions {
        out.extend(
            mlflow_permission_actions(&r.workspace, p).map_err(|e| match e {
                MlflowPermissionError::Invalid(m) => MlflowError::invalid(m),
                MlflowPermissionError::NotServed(m) => {
                    MlflowError::new(ErrorCode::NotImplemented, m)
                }
            })?,
        );
    }
    Ok(out)
}

/// Writes a role's new MLflow shape (and the actions derived from it) in one event, after
/// `change` decided it from the current one.
fn rewrite_role<T>(
    ctx: &Ctx,
    id: &str,
    change: impl Fn(&AccessState, Option<&MlflowRole>) -> Result<(MlflowRole, T)>,
) -> Result<T> {
    let time = ctx.now();
    ctx.store
        .write(
            tandem_core::access::ACCESS_WORKSPACE,
            &ctx.principal,
            |tx| {
                let s = queries::access_state(tx)?;
                let (role, answer) = change(&s, s.mlflow_roles.get(id))?;
                let actions = actions_of(&role)?;
                Ok(crate::store::Decision::change(
                    answer,
                    tandem_core::Op::DefineRole {
                        name: id.to_owned(),
                        actions,
                        mlflow: Some(role),
                        time,
                    },
                ))
            },
        )
        .map_err(Into::into)
}

fn workspace_param(req: &Req) -> Result<String> {
    let ws = req.str("workspace")?;
    if ws != super::workspaces::DEFAULT_WORKSPACE {
        super::workspaces::validate_name(&ws)?;
    }
    Ok(ws)
}

pub fn create_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let workspace = workspace_param(req)?;
    let name = req.str("name")?;
    if name.is_empty() || name.len() > 256 {
        return Err(MlflowError::invalid("a role name has 1 to 256 characters"));
    }
    let description = req.opt_str("description")?;
    let id = format!("r-{}", tandem_core::ids::hex(&super::random_bytes::<16>()));
    let role = rewrite_role(ctx, &id, |s, _| {
        if s.mlflow_roles
            .values()
            .any(|r| r.workspace == workspace && r.name == name)
        {
            return Err(MlflowError::exists(format!(
                "Role '{name}' already exists in workspace '{workspace}'"
            )));
        }
        let role = MlflowRole {
            name: name.clone(),
            workspace: workspace.clone(),
            description: description.clone(),
            permissions: vec![],
        };
        Ok((role.clone(), role))
    })?;
    Ok(json!({ "role": role_json(&id, &role) }))
}

pub fn get_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("role_id")?;
    let s = state(ctx)?;
    let r = s.mlflow_roles.get(&id).ok_or_else(|| role_not_found(&id))?;
    Ok(json!({ "role": role_json(&id, r) }))
}

pub fn list_roles(ctx: &Ctx, req: &Req) -> Result<Json> {
    let ws = match req.opt_str("workspace")? {
        Some(_) => Some(workspace_param(req)?),
        None => None,
    };
    let s = state(ctx)?;
    let mut roles: Vec<_> = s
        .mlflow_roles
        .iter()
        .filter(|(_, r)| ws.as_ref().is_none_or(|w| &r.workspace == w))
        .collect();
    roles.sort_by(|a, b| (&a.1.workspace, &a.1.name).cmp(&(&b.1.workspace, &b.1.name)));
    Ok(json!({ "roles": roles.iter().map(|(id, r)| role_json(id, r)).collect::<Vec<_>>() }))
}

pub fn update_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("role_id")?;
    let (name, description) = (req.opt_str("name")?, req.opt_str("description")?);
    let role = rewrite_role(ctx, &id, |_, r| {
        let mut r = r.ok_or_else(|| role_not_found(&id))?.clone();
        if let Some(n) = &name {
            r.name = n.clone();
        }
        if description.is_some() {
            r.description = description.clone();
        }
        Ok((r.clone(), r))
    })?;
    Ok(json!({ "role": role_json(&id, &role) }))
}

pub fn delete_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("role_id")?;
    let time = ctx.now();
    ctx.store
        .write(
            tandem_core::access::ACCESS_WORKSPACE,
            &ctx.principal,
            |tx| {
                let s = queries::access_state(tx)?;
                if !s.mlflow_roles.contains_key(&id) {
                    return Err(role_not_found(&id).into());
                }
                // Its assignments go with it, as in MLflow.
                let mut ops: Vec<tandem_core::Op> = s
                    .assignments
                    .iter()
                    .filter(|a| a.role == id)
                    .map(|a| tandem_core::Op::Unassign {
                        assignment_id: a.id.clone(),
                        time,
                    })
                    .collect();
                ops.push(tandem_core::Op::DropRole {
                    name: id.clone(),
                    time,
                });
                Ok(crate::store::Decision::changes((), ops))
            },
        )
        .map_err(MlflowError::from)?;
    Ok(json!({}))
}

pub fn add_role_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("role_id")?;
    let perm = MlflowRolePermission {
        id: format!("rp-{}", tandem_core::ids::hex(&super::random_bytes::<16>())),
        resource_type: req.str("resource_type")?,
        resource_pattern: req.str("resource_pattern")?,
        permission: req.str("permission")?,
    };
    let added = rewrite_role(ctx, &id, |_, r| {
        let mut r = r.ok_or_else(|| role_not_found(&id))?.clone();
        r.permissions.push(perm.clone());
        Ok((r, perm.clone()))
    })?;
    Ok(json!({ "role_permission": perm_json(&id, &added) }))
}

/// The role holding a permission.
fn role_of_permission(s: &AccessState, perm_id: &str) -> Result<String> {
    s.mlflow_roles
        .iter()
        .find(|(_, r)| r.permissions.iter().any(|p| p.id == perm_id))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            MlflowError::not_found(format!("Role permission with id={perm_id} not found"))
        })
}

pub fn remove_role_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let perm = req.str("role_permission_id")?;
    let role = role_of_permission(&state(ctx)?, &perm)?;
    rewrite_role(ctx, &role, |_, r| {
        let mut r = r.ok_or_else(|| role_not_found(&role))?.clone();
        r.permissions.retain(|p| p.id != perm);
        Ok((r, ()))
    })?;
    Ok(json!({}))
}

pub fn update_role_permission(ctx: &Ctx, req: &Req) -> Result<Json> {
    let perm = req.str("role_permission_id")?;
    let permission = req.str("permission")?;
    let role = role_of_permission(&state(ctx)?, &perm)?;
    let updated = rewrite_role(ctx, &role, |_, r| {
        let mut r = r.ok_or_else(|| role_not_found(&role))?.clone();
        let p = r
            .permissions
            .iter_mut()
            .find(|p| p.id == perm)
            .ok_or_else(|| {
                MlflowError::not_found(format!("Role permission with id={perm} not found"))
            })?;
        p.permission = permission.clone();
        let p = p.clone();
        Ok((r, p))
    })?;
    Ok(json!({ "role_permission": perm_json(&role, &updated) }))
}

pub fn list_role_permissions(ctx: &Ctx, req: &Req) -> Result<Json> {
    let id = req.str("role_id")?;
    let s = state(ctx)?;
    let r = s.mlflow_roles.get(&id).ok_or_else(|| role_not_found(&id))?;
    Ok(
        json!({ "role_permissions": r.permissions.iter().map(|p| perm_json(&id, p)).collect::<Vec<_>>() }),
    )
}

pub fn assign_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (username, role) = (req.str("username")?, req.str("role_id")?);
    let s = state(ctx)?;
    let uid = user_id(&s, &username)?;
    if !s.mlflow_roles.contains_key(&role) {
        return Err(role_not_found(&role));
    }
    let v = access::assign(
        &ctx.store,
        &ctx.principal,
        &username,
        &role,
        &Scope::Service,
        Grant::Standing,
    )?;
    Ok(json!({ "assignment": { "id": v["assignment"]["id"], "user_id": uid, "role_id": role } }))
}

pub fn unassign_role(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (username, role) = (req.str("username")?, req.str("role_id")?);
    let s = state(ctx)?;
    let uid = user_id(&s, &username)?;
    let found: Vec<String> = s
        .assignments
        .iter()
        .filter(|a| a.principal_id == uid && a.role == role)
        .map(|a| a.id.clone())
        .collect();
    if found.is_empty() {
        return Err(MlflowError::not_found(format!(
            "User {username} is not assigned role {role}"
        )));
    }
    for a in found {
        access::unassign(&ctx.store, &ctx.principal, &a)?;
    }
    Ok(json!({}))
}

pub fn list_user_roles(ctx: &Ctx, req: &Req) -> Result<Json> {
    let username = req.str("username")?;
    let s = state(ctx)?;
    let uid = user_id(&s, &username)?;
    let mut ids: Vec<&String> = s
        .assignments
        .iter()
        .filter(|a| a.principal_id == uid)
        .filter_map(|a| s.mlflow_roles.get_key_value(&a.role).map(|(k, _)| k))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(
        json!({ "roles": ids.iter().map(|id| role_json(id, &s.mlflow_roles[*id])).collect::<Vec<_>>() }),
    )
}

pub fn list_role_users(ctx: &Ctx, req: &Req) -> Result<Json> {
    let role = req.str("role_id")?;
    let s = state(ctx)?;
    if !s.mlflow_roles.contains_key(&role) {
        return Err(role_not_found(&role));
    }
    let list: Vec<Json> = s
        .assignments
        .iter()
        .filter(|a| a.role == role)
        .map(|a| json!({ "id": a.id, "user_id": a.principal_id, "role_id": role }))
        .collect();
    Ok(json!({ "assignments": list }))
}
