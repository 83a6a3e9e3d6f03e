//! tandem's access API (`/api/tandem/v1/access/...`) and the writes behind it, shared with
//! the CLI: principals, passwords, tokens and role assignments, all events of the `_access`
//! workspace. Who may call what is decided at the edge (`api::ACCESS`), not here.

use super::{Ctx, Req};
use crate::store::{queries, Decision, Store};
use serde_json::{json, Value as Json};
use tandem_core::access::{
    role_actions, validate_principal_name, AccessState, Scope, ACCESS_WORKSPACE, BUILT_IN_ROLES,
    KINDS,
};
use tandem_core::ids::hex;
use tandem_core::{MlflowError, Op, Result};

/// Creates the `_access` workspace unless it exists (every store has one).
pub fn ensure_workspace(store: &Store) -> crate::store::Result<bool> {
    let time = store.now_ms();
    store.write(ACCESS_WORKSPACE, "tandem", |tx| {
        if queries::workspace_exists(tx, ACCESS_WORKSPACE)? {
            return Ok(Decision::no_change(false));
        }
        Ok(Decision::change(
            true,
            Op::CreateWorkspace {
                description: "tandem's access state (principals, tokens, role assignments)".into(),
                default_artifact_root: None,
                time,
            },
        ))
    })
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", hex(&super::random_bytes::<16>()))
}

fn principal_not_found(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Principal '{name}' does not exist."))
}

fn state_in(tx: &mut dyn crate::store::Tx) -> crate::store::Result<AccessState> {
    queries::access_state(tx)
}

/// Parses and checks a scope as written by a user (`*`, `workspaces/W`, ...).
pub fn parse_scope(s: &str) -> Result<Scope> {
    let scope = Scope::parse(s).ok_or_else(|| {
        MlflowError::invalid(format!("'{s}' is not a scope: use *, workspaces/W, workspaces/W/experiments/ID or workspaces/W/models/NAME"))
    })?;
    if let Some(ws) = scope.workspace() {
        if ws != super::workspaces::DEFAULT_WORKSPACE {
            super::workspaces::validate_name(ws)?;
        }
    }
    Ok(scope)
}

fn check_role(state: &AccessState, role: &str) -> Result<()> {
    if state.actions_of(role).is_none() {
        let mut names: Vec<&str> = BUILT_IN_ROLES.iter().map(|(n, _)| *n).collect();
        names.extend(state.roles.keys().map(String::as_str));
        return Err(MlflowError::invalid(format!(
            "role '{role}' is unknown; roles: {}",
            names.join(", ")
        )));
    }
    Ok(())
}

pub struct NewPrincipal<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub workspace: Option<&'a str>,
    /// argon2id PHC string (hashed by the caller, outside the write's transaction).
    pub password_hash: Option<String>,
    /// Roles to assign at once, with their scopes.
    pub roles: Vec<(String, Scope)>,
}

/// Creates a principal (and optionally its password and assignments) in one write.
pub fn create_principal(store: &Store, by: &str, p: NewPrincipal<'_>) -> Result<Json> {
    validate_principal_name(p.name).map_err(MlflowError::invalid)?;
    if !KINDS.contains(&p.kind) {
        return Err(MlflowError::invalid(format!(
            "kind '{}' is unknown: use user or service",
            p.kind
        )));
    }
    if p.kind == "group" && p.password_hash.is_some() {
        return Err(MlflowError::invalid(
            "a group has no password: its members sign in as themselves",
        ));
    }
    if p.kind == "service" {
        let ws = p.workspace.ok_or_else(|| {
            MlflowError::invalid("a service identity belongs to a workspace: give its workspace")
        })?;
        if ws != super::workspaces::DEFAULT_WORKSPACE {
            super::workspaces::validate_name(ws)?;
        }
    }
    let time = store.now_ms();
    let id = new_id("p");
    let assignment_ids: Vec<String> = p.roles.iter().map(|_| new_id("a")).collect();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            for (role, _) in &p.roles {
                check_role(&state, role)?;
            }
            if state.principal_by_name(p.name).is_some() {
                return Err(
                    MlflowError::exists(format!("Principal '{}' already exists.", p.name)).into(),
                );
            }
            let mut ops = vec![Op::CreatePrincipal {
                principal_id: id.clone(),
                name: p.name.to_owned(),
                kind: p.kind.to_owned(),
                workspace: p.workspace.map(str::to_owned),
                time,
            }];
            if let Some(h) = &p.password_hash {
                ops.push(Op::SetPassword {
                    principal_id: id.clone(),
                    password_hash: h.clone(),
                    time,
                });
            }
            for ((role, scope), aid) in p.roles.iter().zip(&assignment_ids) {
                ops.push(Op::Assign {
                    assignment_id: aid.clone(),
                    principal_id: id.clone(),
                    role: role.clone(),
                    scope: scope.render(),
                    until_ms: None,
                    reason: None,
                    eligible_for_ms: None,
                    time,
                });
            }
            Ok(Decision::changes((), ops))
        })
        .map_err(MlflowError::from)?;
    Ok(
        json!({ "principal": { "id": id, "name": p.name, "kind": p.kind, "workspace": p.workspace } }),
    )
}

fn principal_id(tx: &mut dyn crate::store::Tx, name: &str) -> crate::store::Result<String> {
    Ok(state_in(tx)?
        .principal_by_name(name)
        .ok_or_else(|| principal_not_found(name))?
        .id
        .clone())
}

pub fn set_password(store: &Store, by: &str, name: &str, password_hash: String) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let id = principal_id(tx, name)?;
            Ok(Decision::change(
                (),
                Op::SetPassword {
                    principal_id: id,
                    password_hash: password_hash.clone(),
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

pub fn delete_principal(store: &Store, by: &str, name: &str) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let id = principal_id(tx, name)?;
            Ok(Decision::change(
                (),
                Op::DeletePrincipal {
                    principal_id: id,
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

/// Issues a token for `name`; the answer holds the token itself, the only time it is shown.
pub fn issue_token(
    store: &Store,
    by: &str,
    name: &str,
    label: &str,
    expires_ms: Option<i64>,
) -> Result<Json> {
    if label.len() > 256 {
        return Err(tandem_core::validate::too_long("label", 256));
    }
    let time = store.now_ms();
    if let Some(e) = expires_ms {
        if e <= time {
            return Err(MlflowError::invalid("the token's expiry is in the past"));
        }
    }
    let (token, sha) = crate::auth::new_token()?;
    let id = new_id("t");
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            let p = state
                .principal_by_name(name)
                .ok_or_else(|| principal_not_found(name))?;
            if p.kind == "group" {
                return Err(MlflowError::invalid(
                    "a group has no tokens: its members sign in as themselves",
                )
                .into());
            }
            let pid = p.id.clone();
            Ok(Decision::change(
                (),
                Op::IssueToken {
                    token_id: id.clone(),
                    principal_id: pid,
                    token_sha256: sha.clone(),
                    label: label.to_owned(),
                    expires_ms,
                    time,
                },
            ))
        })
        .map_err(MlflowError::from)?;
    Ok(
        json!({ "token": token, "token_id": id, "principal": name, "label": label, "expires_ms": expires_ms }),
    )
}

/// Revokes a token; with `owner`, only one of that principal's.
pub fn revoke_token(store: &Store, by: &str, token_id: &str, owner: Option<&str>) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            let t = state
                .tokens
                .values()
                .find(|t| t.id == token_id)
                .filter(|t| {
                    owner.is_none_or(|o| {
                        state
                            .principals
                            .get(&t.principal_id)
                            .is_some_and(|p| p.name == o)
                    })
                })
                .ok_or_else(|| {
                    MlflowError::not_found(format!("Token '{token_id}' does not exist."))
                })?;
            if t.revoked_time.is_some() {
                return Ok(Decision::no_change(()));
            }
            Ok(Decision::change(
                (),
                Op::RevokeToken {
                    token_id: token_id.to_owned(),
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

/// What kind of assignment to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant<'a> {
    /// In force until taken back.
    Standing,
    /// In force until `until_ms`, for `reason` (an elevation).
    Until { until_ms: i64, reason: &'a str },
    /// Grants nothing; allows elevating to the role for up to `for_ms`.
    Eligible { for_ms: i64 },
}

pub fn assign(
    store: &Store,
    by: &str,
    name: &str,
    role: &str,
    scope: &Scope,
    grant: Grant<'_>,
) -> Result<Json> {
    let (until_ms, reason, eligible_for_ms) = match grant {
        Grant::Standing => (None, None, None),
        Grant::Until { until_ms, reason } => (Some(until_ms), Some(reason), None),
        Grant::Eligible { for_ms } => (None, None, Some(for_ms)),
    };
    let time = store.now_ms();
    let id = new_id("a");
    let existing = store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            check_role(&state, role)?;
            let pid = state
                .principal_by_name(name)
                .ok_or_else(|| principal_not_found(name))?
                .id
                .clone();
            // Granting what is already granted (and standing) changes nothing.
            if grant == Grant::Standing {
                if let Some(a) = state.assignments.iter().find(|a| {
                    a.principal_id == pid
                        && a.role == role
                        && &a.scope == scope
                        && a.until_ms.is_none()
                        && a.eligible_for_ms.is_none()
                }) {
                    return Ok(Decision::no_change(Some(a.id.clone())));
                }
            }
            Ok(Decision::change(
                None,
                Op::Assign {
                    assignment_id: id.clone(),
                    principal_id: pid,
                    role: role.to_owned(),
                    scope: scope.render(),
                    until_ms,
                    reason: reason.map(str::to_owned),
                    eligible_for_ms,
                    time,
                },
            ))
        })
        .map_err(MlflowError::from)?;
    Ok(
        json!({ "assignment": { "id": existing.unwrap_or(id), "principal": name, "role": role, "scope": scope.render(), "until_ms": until_ms, "reason": reason, "eligible_for_ms": eligible_for_ms } }),
    )
}

pub fn unassign(store: &Store, by: &str, assignment_id: &str) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            if !state_in(tx)?
                .assignments
                .iter()
                .any(|a| a.id == assignment_id)
            {
                return Err(MlflowError::not_found(format!(
                    "Assignment '{assignment_id}' does not exist."
                ))
                .into());
            }
            Ok(Decision::change(
                (),
                Op::Unassign {
                    assignment_id: assignment_id.to_owned(),
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

/// Principals (never their password hashes), with their assignments.
pub fn principals_json(state: &AccessState) -> Json {
    let mut list: Vec<_> = state.principals.values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Json::Array(
        list.iter()
            .map(|p| {
                json!({
                    "id": p.id, "name": p.name, "kind": p.kind, "workspace": p.workspace,
                    "has_password": p.password_hash.is_some(), "created_time": p.created_time,
                    "assignments": assignments_of(state, &p.id),
                })
            })
            .collect(),
    )
}

fn assignments_of(state: &AccessState, pid: &str) -> Vec<Json> {
    state
        .assignments
        .iter()
        .filter(|a| a.principal_id == pid)
        .map(|a| json!({ "id": a.id, "role": a.role, "scope": a.scope.render(), "until_ms": a.until_ms, "reason": a.reason, "eligible_for_ms": a.eligible_for_ms }))
        .collect()
}

fn tokens_json(state: &AccessState, name: &str) -> Vec<Json> {
    let Some(p) = state.principal_by_name(name) else {
        return vec![];
    };
    let mut list: Vec<_> = state
        .tokens
        .values()
        .filter(|t| t.principal_id == p.id)
        .collect();
    list.sort_by_key(|t| t.created_time);
    list.iter()
        .map(|t| json!({ "id": t.id, "label": t.label, "expires_ms": t.expires_ms, "revoked_time": t.revoked_time, "created_time": t.created_time }))
        .collect()
}

fn read_state(ctx: &Ctx) -> Result<AccessState> {
    ctx.store
        .read(queries::access_state)
        .map_err(MlflowError::from)
}

fn hashed_password(req: &Req) -> Result<Option<String>> {
    match req.opt_str("password")? {
        None => Ok(None),
        Some(p) if p.len() < 8 => Err(MlflowError::invalid(
            "a password must have at least 8 characters",
        )),
        Some(p) if p.len() > 1024 => Err(tandem_core::validate::too_long("password", 1024)),
        Some(p) => crate::auth::hash_password(&p).map(Some),
    }
}

fn expiry(ctx: &Ctx, req: &Req) -> Result<Option<i64>> {
    match req.opt_i64("expires_in_seconds")? {
        None => Ok(None),
        Some(s) if s <= 0 => Err(MlflowError::invalid("expires_in_seconds must be positive")),
        Some(s) => Ok(Some(ctx.now().saturating_add(s.saturating_mul(1000)))),
    }
}

// Handlers. `{name}` is a principal's name.

pub fn list_principals(ctx: &Ctx, _req: &Req) -> Result<Json> {
    Ok(json!({ "principals": principals_json(&read_state(ctx)?) }))
}

pub fn create_principal_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let name = req.str("name")?;
    let kind = req.opt_str("kind")?.unwrap_or_else(|| "user".into());
    let workspace = req.opt_str("workspace")?;
    let password_hash = hashed_password(req)?;
    create_principal(
        &ctx.store,
        &ctx.principal,
        NewPrincipal {
            name: &name,
            kind: &kind,
            workspace: workspace.as_deref(),
            password_hash,
            roles: vec![],
        },
    )
}

pub fn delete_principal_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    delete_principal(&ctx.store, &ctx.principal, &req.str("name")?)?;
    Ok(json!({}))
}

pub fn set_password_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let hash = hashed_password(req)?.ok_or_else(|| super::missing("password"))?;
    set_password(&ctx.store, &ctx.principal, &req.str("name")?, hash)?;
    Ok(json!({}))
}

pub fn issue_token_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let label = req.opt_str("label")?.unwrap_or_default();
    let expires = expiry(ctx, req)?;
    issue_token(
        &ctx.store,
        &ctx.principal,
        &req.str("name")?,
        &label,
        expires,
    )
}

pub fn list_tokens_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let (state, name) = (read_state(ctx)?, req.str("name")?);
    if state.principal_by_name(&name).is_none() {
        return Err(principal_not_found(&name));
    }
    Ok(json!({ "tokens": tokens_json(&state, &name) }))
}

pub fn revoke_token_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    revoke_token(
        &ctx.store,
        &ctx.principal,
        &req.str("token_id")?,
        Some(&req.str("name")?),
    )?;
    Ok(json!({}))
}

/// The caller's own identity, assignments and tokens.
pub fn whoami(ctx: &Ctx, _req: &Req) -> Result<Json> {
    let state = read_state(ctx)?;
    let p = state.principal_by_name(&ctx.principal);
    Ok(json!({
        "name": ctx.principal,
        "kind": p.map(|p| p.kind.clone()),
        "assignments": p.map(|p| assignments_of(&state, &p.id)).unwrap_or_default(),
        "tokens": tokens_json(&state, &ctx.principal),
    }))
}

pub fn issue_own_token(ctx: &Ctx, req: &Req) -> Result<Json> {
    let label = req.opt_str("label")?.unwrap_or_default();
    let expires = expiry(ctx, req)?;
    issue_token(&ctx.store, &ctx.principal, &ctx.principal, &label, expires)
}

pub fn revoke_own_token(ctx: &Ctx, req: &Req) -> Result<Json> {
    revoke_token(
        &ctx.store,
        &ctx.principal,
        &req.str("token_id")?,
        Some(&ctx.principal),
    )?;
    Ok(json!({}))
}

pub fn list_assignments(ctx: &Ctx, _req: &Req) -> Result<Json> {
    let state = read_state(ctx)?;
    let mut out = Vec::new();
    for a in &state.assignments {
        let name = state
            .principals
            .get(&a.principal_id)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        out.push(json!({ "id": a.id, "principal": name, "role": a.role, "scope": a.scope.render(), "until_ms": a.until_ms, "reason": a.reason, "eligible_for_ms": a.eligible_for_ms }));
    }
    Ok(json!({ "assignments": out }))
}

pub fn assign_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let scope = parse_scope(&req.str("scope")?)?;
    let grant = match req.opt_i64("eligible_for_seconds")? {
        None => Grant::Standing,
        Some(s) if s > 0 && s <= 7 * 86_400 => Grant::Eligible { for_ms: s * 1000 },
        Some(s) => {
            return Err(MlflowError::invalid(format!(
                "eligible_for_seconds {s}: use 1 to 604800 (a week)"
            )))
        }
    };
    assign(
        &ctx.store,
        &ctx.principal,
        &req.str("principal")?,
        &req.str("role")?,
        &scope,
        grant,
    )
}

fn permission_denied(message: impl Into<String>) -> MlflowError {
    MlflowError::new(tandem_core::ErrorCode::PermissionDenied, message)
}

/// Just-in-time elevation: the caller gives themselves `role` at `scope` for a bounded time,
/// with a reason, if an eligibility (or a standing admin role) allows it.
pub fn elevate(ctx: &Ctx, req: &Req) -> Result<Json> {
    let role = req.str("role")?;
    let scope = parse_scope(&req.opt_str("scope")?.unwrap_or_else(|| "*".into()))?;
    let seconds = req.opt_i64("for_seconds")?.unwrap_or(3600);
    let reason = req.str("reason")?;
    if reason.trim().is_empty() {
        return Err(MlflowError::invalid("an elevation needs a reason"));
    }
    if reason.len() > 1000 {
        return Err(tandem_core::validate::too_long("reason", 1000));
    }
    if seconds <= 0 {
        return Err(MlflowError::invalid("for_seconds must be positive"));
    }
    let for_ms = seconds.saturating_mul(1000);
    let time = ctx.now();
    let id = new_id("a");
    let me = ctx.principal.clone();
    ctx.store
        .write(ACCESS_WORKSPACE, &ctx.principal, |tx| {
            let state = state_in(tx)?;
            check_role(&state, &role)?;
            let p = state
                .principal_by_name(&me)
                .ok_or_else(|| permission_denied("only a principal can elevate"))?;
            state
                .may_elevate(&p.id, &role, &scope, for_ms, time)
                .map_err(permission_denied)?;
            Ok(Decision::change(
                (),
                Op::Assign {
                    assignment_id: id.clone(),
                    principal_id: p.id.clone(),
                    role: role.clone(),
                    scope: scope.render(),
                    until_ms: Some(time + for_ms),
                    reason: Some(reason.clone()),
                    eligible_for_ms: None,
                    time,
                },
            ))
        })
        .map_err(MlflowError::from)?;
    Ok(
        json!({ "assignment": { "id": id, "principal": me, "role": role, "scope": scope.render(), "until_ms": time + for_ms, "reason": reason } }),
    )
}

pub fn set_lock(store: &Store, by: &str, scope: &Scope, kind: &str, reason: &str) -> Result<Json> {
    if !tandem_core::access::LOCK_KINDS.contains(&kind) {
        return Err(MlflowError::invalid(format!(
            "lock kind '{kind}' is unknown: use no-delete or read-only"
        )));
    }
    if reason.trim().is_empty() {
        return Err(MlflowError::invalid("a lock needs a reason"));
    }
    if reason.len() > 1000 {
        return Err(tandem_core::validate::too_long("reason", 1000));
    }
    let time = store.now_ms();
    let id = new_id("l");
    let existing = store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            if let Some(l) = state
                .locks
                .iter()
                .find(|l| &l.scope == scope && l.kind == kind)
            {
                return Ok(Decision::no_change(Some(l.id.clone())));
            }
            Ok(Decision::change(
                None,
                Op::Lock {
                    lock_id: id.clone(),
                    scope: scope.render(),
                    kind: kind.to_owned(),
                    reason: reason.to_owned(),
                    set_by: by.to_owned(),
                    time,
                },
            ))
        })
        .map_err(MlflowError::from)?;
    Ok(
        json!({ "lock": { "id": existing.unwrap_or(id), "scope": scope.render(), "kind": kind, "reason": reason } }),
    )
}

pub fn lift_lock(store: &Store, by: &str, lock_id: &str) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            if !state_in(tx)?.locks.iter().any(|l| l.id == lock_id) {
                return Err(
                    MlflowError::not_found(format!("Lock '{lock_id}' does not exist.")).into(),
                );
            }
            Ok(Decision::change(
                (),
                Op::Unlock {
                    lock_id: lock_id.to_owned(),
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

pub fn locks_json(state: &AccessState) -> Json {
    Json::Array(
        state
            .locks
            .iter()
            .map(|l| json!({ "id": l.id, "scope": l.scope.render(), "kind": l.kind, "reason": l.reason, "set_by": l.set_by, "created_time": l.created_time }))
            .collect(),
    )
}

pub fn list_locks(ctx: &Ctx, _req: &Req) -> Result<Json> {
    Ok(json!({ "locks": locks_json(&read_state(ctx)?) }))
}

pub fn set_lock_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let scope = parse_scope(&req.str("scope")?)?;
    set_lock(
        &ctx.store,
        &ctx.principal,
        &scope,
        &req.opt_str("kind")?.unwrap_or_else(|| "no-delete".into()),
        &req.str("reason")?,
    )
}

pub fn lift_lock_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    lift_lock(&ctx.store, &ctx.principal, &req.str("lock_id")?)?;
    Ok(json!({}))
}

/// The lock check for paths that do not come through HTTP (the CLI's deletes, purges,
/// retention changes and in-place restores, the background purger): the same rule.
pub fn check_lock(store: &Store, action: &str, scope: &Scope) -> Result<()> {
    let state = store
        .read(queries::access_state)
        .map_err(MlflowError::from)?;
    match state.lock_refusing(action, scope) {
        Some(l) => Err(locked(l, scope)),
        None => Ok(()),
    }
}

/// MLflow's shape for a refusal by a lock: who set it, when, and why.
pub fn locked(l: &tandem_core::access::Lock, scope: &Scope) -> MlflowError {
    permission_denied(format!(
        "{} is locked ({} on {}, set by {} at {} ms since the epoch, reason: {}); a lock administrator can lift it (tandem access unlock {})",
        scope.render(),
        l.kind,
        l.scope.render(),
        l.set_by,
        l.created_time,
        l.reason,
        l.id
    ))
}

pub fn unassign_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    unassign(&ctx.store, &ctx.principal, &req.str("assignment_id")?)?;
    Ok(json!({}))
}

pub fn roles(ctx: &Ctx, _req: &Req) -> Result<Json> {
    let state = read_state(ctx)?;
    let mut out: Vec<Json> = BUILT_IN_ROLES
        .iter()
        .map(|(n, a)| json!({ "name": n, "actions": a, "built_in": true }))
        .collect();
    let mut custom: Vec<_> = state.roles.iter().collect();
    custom.sort();
    out.extend(
        custom
            .into_iter()
            .map(|(n, a)| json!({ "name": n, "actions": a, "built_in": false })),
    );
    Ok(json!({ "roles": out }))
}

/// Defines (or redefines) a custom role from action patterns.
pub fn define_role(store: &Store, by: &str, name: &str, actions: &[String]) -> Result<Json> {
    if role_actions(name).is_some() {
        return Err(MlflowError::invalid(format!(
            "'{name}' is a built-in role and cannot be redefined"
        )));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(MlflowError::invalid(format!(
            "role name '{name}': 1 to 64 of a-z, 0-9, '-' and '_'"
        )));
    }
    if actions.is_empty() || actions.len() > 100 {
        return Err(MlflowError::invalid("a role has 1 to 100 action patterns"));
    }
    for a in actions {
        tandem_core::access::validate_pattern(a).map_err(MlflowError::invalid)?;
    }
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |_| {
            Ok(Decision::change(
                (),
                Op::DefineRole {
                    name: name.to_owned(),
                    actions: actions.to_vec(),
                    mlflow: None,
                    time,
                },
            ))
        })
        .map_err(MlflowError::from)?;
    Ok(json!({ "role": { "name": name, "actions": actions, "built_in": false } }))
}

/// Drops a custom role no assignment uses.
pub fn drop_role(store: &Store, by: &str, name: &str) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            if !state.roles.contains_key(name) {
                return Err(MlflowError::not_found(format!("Role '{name}' does not exist.")).into());
            }
            let used = state.assignments.iter().filter(|a| a.role == name).count();
            if used > 0 {
                return Err(MlflowError::invalid(format!("role '{name}' is in {used} assignment(s); take them back first (tandem access list)")).into());
            }
            Ok(Decision::change(
                (),
                Op::DropRole {
                    name: name.to_owned(),
                    time,
                },
            ))
        })
        .map_err(Into::into)
}

/// Adds (`add`) or removes a member of a group.
pub fn membership(store: &Store, by: &str, group: &str, member: &str, add: bool) -> Result<()> {
    let time = store.now_ms();
    store
        .write(ACCESS_WORKSPACE, by, |tx| {
            let state = state_in(tx)?;
            let g = state
                .principal_by_name(group)
                .filter(|p| p.kind == "group")
                .ok_or_else(|| MlflowError::not_found(format!("Group '{group}' does not exist.")))?
                .id
                .clone();
            let m = state
                .principal_by_name(member)
                .filter(|p| p.kind != "group")
                .ok_or_else(|| {
                    MlflowError::not_found(format!(
                        "Principal '{member}' does not exist (groups hold users and service identities)."
                    ))
                })?
                .id
                .clone();
            let is_member = state.members.iter().any(|(gg, mm)| *gg == g && *mm == m);
            if is_member == add {
                return Ok(Decision::no_change(()));
            }
            let op = match add {
                true => Op::AddMember {
                    group_id: g,
                    member_id: m,
                    time,
                },
                false => Op::RemoveMember {
                    group_id: g,
                    member_id: m,
                    time,
                },
            };
            Ok(Decision::change((), op))
        })
        .map_err(Into::into)
}

pub fn define_role_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    let actions: Vec<String> = match req.0.get("actions") {
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| MlflowError::invalid("actions are strings"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(MlflowError::invalid("actions is a list of action patterns")),
        None => return Err(super::missing("actions")),
    };
    define_role(&ctx.store, &ctx.principal, &req.str("name")?, &actions)
}

pub fn drop_role_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    drop_role(&ctx.store, &ctx.principal, &req.str("name")?)?;
    Ok(json!({}))
}

pub fn add_member_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    membership(
        &ctx.store,
        &ctx.principal,
        &req.str("name")?,
        &req.str("member")?,
        true,
    )?;
    Ok(json!({}))
}

pub fn remove_member_h(ctx: &Ctx, req: &Req) -> Result<Json> {
    membership(
        &ctx.store,
        &ctx.principal,
        &req.str("name")?,
        &req.str("member")?,
        false,
    )?;
    Ok(json!({}))
}

/// The first administrator, from `TANDEM_BOOTSTRAP_ADMIN` (a user name) and
/// `TANDEM_BOOTSTRAP_PASSWORD_FILE` (a file holding the password), read at start.
pub struct Bootstrap {
    pub name: String,
    password_hash: String,
}

impl Bootstrap {
    pub fn from_env() -> std::result::Result<Option<Bootstrap>, String> {
        let Some(name) = std::env::var("TANDEM_BOOTSTRAP_ADMIN")
            .ok()
            .filter(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        validate_principal_name(&name).map_err(|e| format!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
        let file = std::env::var("TANDEM_BOOTSTRAP_PASSWORD_FILE").map_err(|_| {
            "TANDEM_BOOTSTRAP_ADMIN is set: give the password in a file named by TANDEM_BOOTSTRAP_PASSWORD_FILE (never on the command line)".to_owned()
        })?;
        let password = std::fs::read_to_string(&file)
            .map_err(|e| format!("TANDEM_BOOTSTRAP_PASSWORD_FILE {file}: {e}"))?;
        let password = password.trim_end_matches(['\r', '\n']);
        if password.len() < 8 {
            return Err(format!(
                "TANDEM_BOOTSTRAP_PASSWORD_FILE {file}: a password must have at least 8 characters"
            ));
        }
        let password_hash = crate::auth::hash_password(password).map_err(|e| e.message)?;
        Ok(Some(Bootstrap {
            name,
            password_hash,
        }))
    }

    /// Makes the first administrator, unless some administrator exists. Returns whether it
    /// did. Every store has `_access` first.
    pub fn apply(&self, store: &Store) -> Result<bool> {
        ensure_workspace(store).map_err(MlflowError::from)?;
        let time = store.now_ms();
        let (pid, aid) = (new_id("p"), new_id("a"));
        store
            .write(ACCESS_WORKSPACE, "tandem-bootstrap", |tx| {
                let state = state_in(tx)?;
                if state.has_admin() {
                    return Ok(Decision::no_change(false));
                }
                let mut ops = Vec::new();
                let id = match state.principal_by_name(&self.name) {
                    Some(p) => p.id.clone(),
                    None => {
                        ops.push(Op::CreatePrincipal {
                            principal_id: pid.clone(),
                            name: self.name.clone(),
                            kind: "user".into(),
                            workspace: None,
                            time,
                        });
                        pid.clone()
                    }
                };
                ops.push(Op::SetPassword {
                    principal_id: id.clone(),
                    password_hash: self.password_hash.clone(),
                    time,
                });
                ops.push(Op::Assign {
                    assignment_id: aid.clone(),
                    principal_id: id,
                    role: "admin".into(),
                    scope: "*".into(),
                    until_ms: None,
                    reason: Some("bootstrap".into()),
                    eligible_for_ms: None,
                    time,
                });
                Ok(Decision::changes(true, ops))
            })
            .map_err(Into::into)
    }
}
