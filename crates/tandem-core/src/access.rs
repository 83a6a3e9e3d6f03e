//! Who may do what: principals, tokens, roles, assignments and the one decision. Pure: the
//! state is read from the `_access` workspace by the store, the clock is passed in.
//! See docs/design/access.md.
//!
//! Architecture invariant: this module knows action names and scopes, not routes, HTTP or
//! SQL; the edge maps a request to an (action, scope) pair and asks [`AccessState::decide`].

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The reserved workspace whose change log holds every access event.
pub const ACCESS_WORKSPACE: &str = "_access";

/// Kinds of principal.
pub const KINDS: &[&str] = &["user", "service", "group"];

/// What a request asks to do, as `<area>/<verb>`.
pub type Action = &'static str;

/// Where a request acts, from wide to narrow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole service (every workspace, the regions, access itself).
    Service,
    Workspace(String),
    Experiment(String, String),
    Model(String, String),
}

impl Scope {
    /// `*`, `workspaces/W`, `workspaces/W/experiments/E`, `workspaces/W/models/NAME`.
    pub fn parse(s: &str) -> Option<Scope> {
        if s == "*" {
            return Some(Scope::Service);
        }
        let rest = s.strip_prefix("workspaces/")?;
        let (ws, rest) = match rest.split_once('/') {
            None => return (!rest.is_empty()).then(|| Scope::Workspace(rest.to_owned())),
            Some(x) => x,
        };
        if ws.is_empty() {
            return None;
        }
        if let Some(e) = rest.strip_prefix("experiments/") {
            return (!e.is_empty() && !e.contains('/'))
                .then(|| Scope::Experiment(ws.to_owned(), e.to_owned()));
        }
        if let Some(m) = rest.strip_prefix("models/") {
            return (!m.is_empty()).then(|| Scope::Model(ws.to_owned(), m.to_owned()));
        }
        None
    }

    pub fn render(&self) -> String {
        match self {
            Scope::Service => "*".to_owned(),
            Scope::Workspace(w) => format!("workspaces/{w}"),
            Scope::Experiment(w, e) => format!("workspaces/{w}/experiments/{e}"),
            Scope::Model(w, m) => format!("workspaces/{w}/models/{m}"),
        }
    }

    /// Whether `self` is `inner` or wider than it.
    pub fn contains(&self, inner: &Scope) -> bool {
        match (self, inner) {
            (Scope::Service, _) => true,
            (Scope::Workspace(a), Scope::Workspace(b))
            | (Scope::Workspace(a), Scope::Experiment(b, _))
            | (Scope::Workspace(a), Scope::Model(b, _)) => a == b,
            (a, b) => a == b,
        }
    }

    pub fn workspace(&self) -> Option<&str> {
        match self {
            Scope::Service => None,
            Scope::Workspace(w) | Scope::Experiment(w, _) | Scope::Model(w, _) => Some(w),
        }
    }
}

/// Built-in roles and the action patterns each grants. `*` matches one whole segment.
pub const BUILT_IN_ROLES: &[(&str, &[&str])] = &[
    ("reader", &["*/read"]),
    (
        "contributor",
        &[
            "*/read",
            "experiments/write",
            "runs/write",
            "models/write",
            "logged-models/write",
            "artifacts/write",
            "assets/write",
            "jobs/write",
            "secrets/write",
            "gateway/write",
            "gateway/invoke",
            "traces/write",
            "genai/write",
        ],
    ),
    (
        "owner",
        &[
            "*/read",
            "experiments/write",
            "runs/write",
            "models/write",
            "logged-models/write",
            "artifacts/write",
            "assets/write",
            "jobs/write",
            "secrets/write",
            "gateway/write",
            "gateway/invoke",
            "traces/write",
            "genai/write",
            "secrets/reveal",
            "*/delete",
            "workspaces/write",
            "retention/write",
            "access/manage",
        ],
    ),
    ("admin", &["*"]),
    // Elevation-only in practice: every action it grants needs a time-bounded assignment.
    (
        "deleter",
        &["*/delete", "retention/write", "restore/in-place"],
    ),
    ("lock-admin", &["locks/read", "locks/write", "locks/lift"]),
];

/// Actions no standing assignment grants: deleting, purging, restoring in place, changing
/// retention, lifting locks, changing access, moving leadership. They need an elevation (an
/// assignment with `until_ms`), which is bounded in time and recorded with its reason.
pub fn needs_elevation(action: &str) -> bool {
    action.ends_with("/delete")
        || matches!(
            action,
            "retention/write"
                | "restore/in-place"
                | "locks/lift"
                | "access/manage"
                | "regions/failover"
        )
}

/// The longest elevation an administrator may give themselves without an eligibility.
pub const ADMIN_MAX_ELEVATION_MS: i64 = 8 * 3600 * 1000;

/// Lock kinds: `no-delete` refuses deletes, purges and in-place restores at its scope and
/// below; `read-only` refuses every change.
pub const LOCK_KINDS: &[&str] = &["no-delete", "read-only"];

/// Actions the deployment's own key (regions calling each other, the front door, the
/// operator's CLI on a region's machine) may take: replication, status and leadership.
pub const DEPLOYMENT_ACTIONS: &[&str] = &[
    "changes/read",
    "changes/write",
    "access/changes",
    "artifacts/read",
    "regions/read",
    "regions/failover",
    "workspaces/read",
    "metrics/read",
    "jobs/report",
];

/// Whether `pattern` (`area/verb`, each segment a word or `*`; or `*` alone) grants `action`.
pub fn pattern_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut p = pattern.split('/');
    let mut a = action.split('/');
    loop {
        match (p.next(), a.next()) {
            (None, None) => return true,
            (Some(ps), Some(as_)) if ps == "*" || ps == as_ => continue,
            _ => return false,
        }
    }
}

/// A role as MLflow's auth API shapes it (a name in a workspace, permissions on resource
/// patterns), kept beside the custom role it defines: its actions are derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlflowRole {
    pub name: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Vec<MlflowRolePermission>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlflowRolePermission {
    pub id: String,
    pub resource_type: String,
    pub resource_pattern: String,
    pub permission: String,
}

/// Why an MLflow role permission cannot be served.
#[derive(Debug, Clone, PartialEq)]
pub enum MlflowPermissionError {
    Invalid(String),
    NotServed(String),
}

/// The action patterns one MLflow role permission stands for: READ and USE read, EDIT also
/// writes, MANAGE also deletes (elevation still applies), on the areas of its resource type.
pub fn mlflow_permission_actions(
    workspace: &str,
    p: &MlflowRolePermission,
) -> Result<Vec<String>, MlflowPermissionError> {
    use MlflowPermissionError::*;
    let verbs: &[&str] = match p.permission.as_str() {
        "READ" | "USE" => &["read"],
        "EDIT" => &["read", "write"],
        "MANAGE" => &["read", "write", "delete"],
        "DENY" => return Err(NotServed("DENY is not served by tandem yet".into())),
        other => {
            return Err(Invalid(format!(
                "Invalid permission '{other}': use READ, USE, EDIT or MANAGE"
            )))
        }
    };
    let pattern = p.resource_pattern.as_str();
    if pattern.is_empty() || pattern.contains('/') || pattern.contains(char::is_whitespace) {
        return Err(Invalid(format!(
            "resource_pattern '{pattern}': an ID or name without '/' or spaces, or '*'"
        )));
    }
    let star_only = |areas: &'static [&'static str]| {
        if pattern == "*" {
            Ok(areas)
        } else {
            Err(Invalid(format!(
                "resource_type '{}' accepts only resource_pattern '*'",
                p.resource_type
            )))
        }
    };
    let areas: &[&str] = match p.resource_type.as_str() {
        "experiment" => &["experiments", "runs", "artifacts", "logged-models"],
        "registered_model" => &["models"],
        "run" => star_only(&["runs", "artifacts"])?,
        "logged_model" => star_only(&["logged-models"])?,
        "registered_model_version" => star_only(&["models"])?,
        "workspace" => {
            if !matches!(p.permission.as_str(), "USE" | "MANAGE") {
                return Err(Invalid(
                    "resource_type 'workspace' accepts only USE and MANAGE".into(),
                ));
            }
            star_only(&["*"])?
        }
        other => {
            return Err(NotServed(format!(
                "resource_type '{other}' is not served by tandem"
            )))
        }
    };
    let mut out = Vec::new();
    for area in areas {
        for verb in verbs {
            out.push(format!("workspaces/{workspace}/{area}/{pattern}/{verb}"));
        }
    }
    Ok(out)
}

/// Whether a custom role's action pattern is well formed: `AREA/VERB`, or
/// `workspaces/W/AREA/ID/VERB` (ID: an experiment's ID, or a registered model's name for the
/// `models` area), each segment a word or `*`; or `*` alone.
pub fn validate_pattern(p: &str) -> Result<(), String> {
    let word = |s: &str| {
        s == "*"
            || (!s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    };
    let id = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    let segs: Vec<&str> = p.split('/').collect();
    let ok = match segs.as_slice() {
        ["*"] => true,
        [a, v] => word(a) && word(v),
        ["workspaces", w, a, i, v] => id(w) && word(a) && id(i) && word(v),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("'{p}' is not an action pattern: use AREA/VERB (runs/write, */read) or workspaces/W/AREA/ID/VERB (workspaces/*/experiments/*/read), '*' for any segment"))
    }
}

/// Whether `pattern` grants `action` at `scope`. Short patterns (`AREA/VERB`) leave the scope
/// to the assignment; long ones (`workspaces/W/AREA/ID/VERB`) also name where: ID is an
/// experiment's ID (areas experiments, runs, artifacts, logged-models) or a registered
/// model's name (area models); a pattern with a specific ID grants nothing at a whole
/// workspace.
pub fn pattern_grants(pattern: &str, action: &str, scope: &Scope) -> bool {
    let segs: Vec<&str> = pattern.split('/').collect();
    let ["workspaces", w, area, id, verb] = segs.as_slice() else {
        return pattern_matches(pattern, action);
    };
    let seg = |p: &str, v: &str| p == "*" || p == v;
    let Some((a_area, a_verb)) = action.split_once('/') else {
        return false;
    };
    if !seg(area, a_area) || !seg(verb, a_verb) {
        return false;
    }
    match scope {
        Scope::Service => false,
        Scope::Workspace(ws) => seg(w, ws) && *id == "*",
        Scope::Experiment(ws, e) => seg(w, ws) && a_area != "models" && seg(id, e),
        Scope::Model(ws, m) => seg(w, ws) && a_area == "models" && seg(id, m),
    }
}

pub fn role_actions(role: &str) -> Option<&'static [&'static str]> {
    BUILT_IN_ROLES
        .iter()
        .find(|(n, _)| *n == role)
        .map(|(_, a)| *a)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// The workspace a service identity belongs to.
    pub workspace: Option<String>,
    /// argon2id, as a PHC string; users without one authenticate with tokens only.
    pub password_hash: Option<String>,
    pub created_time: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: String,
    pub principal_id: String,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub sha256: String,
    pub label: String,
    pub expires_ms: Option<i64>,
    pub revoked_time: Option<i64>,
    pub created_time: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: Scope,
    /// An elevation: granted until this instant only.
    pub until_ms: Option<i64>,
    pub reason: Option<String>,
    /// An eligibility: grants nothing itself, but lets the principal elevate to `role` at
    /// `scope` for at most this long.
    pub eligible_for_ms: Option<i64>,
    pub created_time: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub id: String,
    pub scope: Scope,
    pub kind: String,
    pub reason: String,
    pub set_by: String,
    pub created_time: i64,
}

/// Everything the `_access` workspace holds, as of one log head.
#[derive(Debug, Clone, Default)]
pub struct AccessState {
    pub principals: HashMap<String, Principal>,
    pub tokens: HashMap<String, Token>,
    pub assignments: Vec<Assignment>,
    pub locks: Vec<Lock>,
    /// Custom roles: name -> action patterns.
    pub roles: HashMap<String, Vec<String>>,
    /// Custom roles defined through MLflow's roles API: name -> their MLflow shape.
    pub mlflow_roles: HashMap<String, MlflowRole>,
    /// (group principal id, member principal id).
    pub members: Vec<(String, String)>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No assignment of the caller grants the action at the scope or wider.
    NotGranted,
    /// Only an elevation would grant it, and the caller has none in force.
    NeedsElevation,
    /// A lock at the scope or wider refuses it, whoever asks.
    Locked(Box<Lock>),
}

impl AccessState {
    pub fn from_parts(
        principals: Vec<Principal>,
        tokens: Vec<Token>,
        assignments: Vec<Assignment>,
    ) -> AccessState {
        AccessState {
            principals: principals.into_iter().map(|p| (p.id.clone(), p)).collect(),
            tokens: tokens.into_iter().map(|t| (t.sha256.clone(), t)).collect(),
            assignments,
            locks: Vec::new(),
            roles: HashMap::new(),
            mlflow_roles: HashMap::new(),
            members: Vec::new(),
        }
    }

    pub fn with_mlflow_roles(mut self, roles: HashMap<String, MlflowRole>) -> AccessState {
        self.mlflow_roles = roles;
        self
    }

    pub fn with_roles_and_members(
        mut self,
        roles: HashMap<String, Vec<String>>,
        members: Vec<(String, String)>,
    ) -> AccessState {
        self.roles = roles;
        self.members = members;
        self
    }

    /// A role's action patterns: built in, or defined.
    pub fn actions_of(&self, role: &str) -> Option<Vec<&str>> {
        match role_actions(role) {
            Some(a) => Some(a.to_vec()),
            None => self
                .roles
                .get(role)
                .map(|a| a.iter().map(String::as_str).collect()),
        }
    }

    fn role_grants(&self, role: &str, action: &str, scope: &Scope) -> bool {
        self.actions_of(role)
            .is_some_and(|acts| acts.iter().any(|p| pattern_grants(p, action, scope)))
    }

    /// The principal and the groups it is a member of.
    fn identities<'a>(&'a self, principal_id: &'a str) -> Vec<&'a str> {
        let mut ids = vec![principal_id];
        ids.extend(
            self.members
                .iter()
                .filter(|(_, m)| m == principal_id)
                .map(|(g, _)| g.as_str()),
        );
        ids
    }

    pub fn with_locks(mut self, locks: Vec<Lock>) -> AccessState {
        self.locks = locks;
        self
    }

    /// The lock that refuses `action` at `scope`, if any: `no-delete` refuses deletes,
    /// purges, in-place restores and retention changes; `read-only` refuses every change.
    pub fn lock_refusing(&self, action: &str, scope: &Scope) -> Option<&Lock> {
        let destructive =
            action.ends_with("/delete") || matches!(action, "retention/write" | "restore/in-place");
        let changes = destructive || action.ends_with("/write");
        self.locks.iter().find(|l| {
            l.scope.contains(scope)
                && match l.kind.as_str() {
                    "no-delete" => destructive,
                    "read-only" => changes,
                    _ => false,
                }
        })
    }

    /// Whether a lock sits strictly inside workspace `ws` (on one of its experiments or
    /// models): only then must a request's object be resolved to check locks.
    pub fn has_narrow_lock_in(&self, ws: &str) -> bool {
        self.locks
            .iter()
            .any(|l| matches!(&l.scope, Scope::Experiment(w, _) | Scope::Model(w, _) if w == ws))
    }

    /// Whether `principal_id` may elevate itself to `role` at `scope` for `for_ms`: an
    /// eligibility for that role at the scope or wider allowing that long, or a standing
    /// admin at `*` (up to [`ADMIN_MAX_ELEVATION_MS`]).
    pub fn may_elevate(
        &self,
        principal_id: &str,
        role: &str,
        scope: &Scope,
        for_ms: i64,
        now_ms: i64,
    ) -> Result<(), String> {
        if self.actions_of(role).is_none() {
            return Err(format!("role '{role}' is unknown"));
        }
        if for_ms <= 0 {
            return Err("an elevation lasts a positive time".into());
        }
        let mut longest: Option<i64> = None;
        for a in self
            .assignments
            .iter()
            .filter(|a| a.principal_id == principal_id)
        {
            let live = a.until_ms.is_none_or(|u| u > now_ms);
            if !live {
                continue;
            }
            let max = match a.eligible_for_ms {
                Some(max) if a.role == role && a.scope.contains(scope) => Some(max),
                None if a.role == "admin" && a.scope == Scope::Service && a.until_ms.is_none() => {
                    Some(ADMIN_MAX_ELEVATION_MS)
                }
                _ => None,
            };
            longest = longest.max(max);
        }
        match longest {
            None => Err(format!(
                "not eligible for {role} at {}: an administrator can make you eligible (tandem access eligible)",
                scope.render()
            )),
            Some(max) if for_ms > max => Err(format!(
                "an elevation to {role} at {} may last at most {} minutes",
                scope.render(),
                max / 60_000
            )),
            Some(_) => Ok(()),
        }
    }

    pub fn principal_by_name(&self, name: &str) -> Option<&Principal> {
        self.principals.values().find(|p| p.name == name)
    }

    /// The principal a token (by its SHA-256) stands for, if the token is live at `now_ms`.
    pub fn token_principal(&self, sha256: &str, now_ms: i64) -> Option<&Principal> {
        let t = self.tokens.get(sha256)?;
        if t.revoked_time.is_some() || t.expires_ms.is_some_and(|e| e <= now_ms) {
            return None;
        }
        self.principals.get(&t.principal_id)
    }

    /// Assignments of `principal_id` that are in force at `now_ms`.
    pub fn live_assignments<'a>(
        &'a self,
        principal_id: &'a str,
        now_ms: i64,
    ) -> impl Iterator<Item = &'a Assignment> + 'a {
        let ids = self.identities(principal_id);
        self.assignments.iter().filter(move |a| {
            ids.contains(&a.principal_id.as_str())
                && a.eligible_for_ms.is_none()
                && a.until_ms.is_none_or(|u| u > now_ms)
        })
    }

    /// The one decision: allowed when an assignment of the caller in force at `now_ms`, at
    /// `scope` or wider, has a role with a pattern matching `action`.
    pub fn decide(
        &self,
        principal_id: &str,
        action: &str,
        scope: &Scope,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let elevated_only = needs_elevation(action);
        let mut standing_would = false;
        let granted = self.live_assignments(principal_id, now_ms).any(|a| {
            let matches = a.scope.contains(scope) && self.role_grants(&a.role, action, scope);
            if matches && elevated_only && a.until_ms.is_none() {
                standing_would = true;
                return false;
            }
            matches
        });
        if !granted {
            return Err(match standing_would {
                true => Refusal::NeedsElevation,
                false => Refusal::NotGranted,
            });
        }
        match self.lock_refusing(action, scope) {
            Some(l) => Err(Refusal::Locked(Box::new(l.clone()))),
            None => Ok(()),
        }
    }

    /// Whether the caller may take `action` somewhere inside workspace `ws` (at the workspace
    /// or at one of its experiments or models): what listing workspaces shows.
    pub fn any_in_workspace(
        &self,
        principal_id: &str,
        action: &str,
        ws: &str,
        now_ms: i64,
    ) -> bool {
        let whole = Scope::Workspace(ws.to_owned());
        self.live_assignments(principal_id, now_ms).any(|a| {
            let inside = a.scope.contains(&whole) || a.scope.workspace() == Some(ws);
            // A pattern naming one object of the workspace still shows the workspace.
            inside
                && self.actions_of(&a.role).is_some_and(|acts| {
                    acts.iter().any(|p| {
                        pattern_grants(p, action, &whole)
                            || p.split('/').nth(3).is_some_and(|id| {
                                let probe = match action.starts_with("models/") {
                                    true => Scope::Model(ws.to_owned(), id.to_owned()),
                                    false => Scope::Experiment(ws.to_owned(), id.to_owned()),
                                };
                                pattern_grants(p, action, &probe)
                            })
                    })
                })
        })
    }

    /// Whether the caller holds any assignment narrower than workspace `ws` (an experiment or
    /// a registered model in it): only then is a request's object looked up.
    pub fn has_narrow_in(&self, principal_id: &str, ws: &str, now_ms: i64) -> bool {
        self.live_assignments(principal_id, now_ms).any(|a| {
            matches!(&a.scope, Scope::Experiment(w, _) | Scope::Model(w, _) if w == ws)
                // A custom role naming one object.
                || self.actions_of(&a.role).is_some_and(|acts| {
                    acts.iter().any(|p| {
                        let segs: Vec<&str> = p.split('/').collect();
                        segs.len() == 5 && segs[3] != "*" && (segs[1] == "*" || segs[1] == ws)
                    })
                })
        })
    }

    /// Whether any principal may administer the service: until one does, only bootstrap
    /// can grant anything.
    pub fn has_admin(&self) -> bool {
        self.assignments
            .iter()
            .any(|a| a.role == "admin" && a.scope == Scope::Service && a.until_ms.is_none())
    }
}

/// Principal names: what basic auth sends as the user name, so no `:`; printable, short.
pub fn validate_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        return Err("a principal name must be 1 to 256 characters".into());
    }
    if name.contains(':') || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "principal name '{name}' may not contain ':', spaces or control characters"
        ));
    }
    if name.starts_with('_') {
        return Err(format!(
            "principal name '{name}' is reserved (names starting with '_' are tandem's own)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(p: &str, role: &str, scope: &str, until: Option<i64>) -> Assignment {
        Assignment {
            id: format!("a-{p}-{role}"),
            principal_id: p.into(),
            role: role.into(),
            scope: Scope::parse(scope).unwrap(),
            until_ms: until,
            reason: None,
            eligible_for_ms: None,
            created_time: 0,
        }
    }

    #[test]
    fn scopes_parse_render_and_nest() {
        for s in [
            "*",
            "workspaces/a",
            "workspaces/a/experiments/7",
            "workspaces/a/models/m/x",
        ] {
            assert_eq!(Scope::parse(s).unwrap().render(), s);
        }
        for bad in [
            "",
            "workspaces/",
            "workspaces//experiments/1",
            "ws/a",
            "workspaces/a/runs/1",
            "workspaces/a/experiments/",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        let ws = Scope::parse("workspaces/a").unwrap();
        assert!(Scope::Service.contains(&ws));
        assert!(ws.contains(&Scope::parse("workspaces/a/experiments/1").unwrap()));
        assert!(!ws.contains(&Scope::parse("workspaces/b/experiments/1").unwrap()));
        assert!(!ws.contains(&Scope::Service));
        assert!(!Scope::parse("workspaces/a/experiments/1")
            .unwrap()
            .contains(&Scope::parse("workspaces/a/experiments/2").unwrap()));
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(pattern_matches("*", "runs/delete"));
        assert!(pattern_matches("*/read", "runs/read"));
        assert!(!pattern_matches("*/read", "runs/write"));
        assert!(pattern_matches("runs/*", "runs/delete"));
        assert!(!pattern_matches("run/*", "runs/delete"));
        assert!(!pattern_matches("runs", "runs/read"));
        assert!(!pattern_matches("runs/read/x", "runs/read"));
    }

    #[test]
    fn decisions_follow_roles_scopes_and_expiry() {
        let s = AccessState::from_parts(
            vec![],
            vec![],
            vec![
                assign("r", "reader", "workspaces/a", None),
                assign("c", "contributor", "workspaces/a/experiments/1", None),
                assign("o", "owner", "workspaces/a", Some(1000)),
                assign("adm", "admin", "*", None),
            ],
        );
        let a = Scope::parse("workspaces/a").unwrap();
        let e1 = Scope::parse("workspaces/a/experiments/1").unwrap();
        let e2 = Scope::parse("workspaces/a/experiments/2").unwrap();
        let b = Scope::parse("workspaces/b").unwrap();
        assert!(s.decide("r", "runs/read", &e1, 0).is_ok());
        assert!(s.decide("r", "runs/write", &e1, 0).is_err());
        assert!(s.decide("r", "runs/read", &b, 0).is_err());
        assert!(s.decide("c", "runs/write", &e1, 0).is_ok());
        assert!(s.decide("c", "runs/write", &e2, 0).is_err());
        assert!(s.decide("c", "runs/delete", &e1, 0).is_err());
        assert!(
            s.decide("c", "runs/read", &a, 0).is_err(),
            "narrow grants do not widen"
        );
        assert!(
            s.decide("o", "runs/delete", &e2, 999).is_ok(),
            "an elevation deletes"
        );
        assert!(s.decide("o", "runs/delete", &e2, 1000).is_err(), "expired");
        assert_eq!(
            s.decide("adm", "regions/failover", &Scope::Service, 0),
            Err(Refusal::NeedsElevation)
        );
        assert!(s.decide("adm", "regions/read", &Scope::Service, 0).is_ok());
        assert!(s.decide("nobody", "runs/read", &a, 0).is_err());
        assert!(s.any_in_workspace("c", "experiments/read", "a", 0));
        assert!(!s.any_in_workspace("c", "experiments/read", "b", 0));
        assert!(s.has_admin());
    }

    #[test]
    fn no_standing_delete_and_locks_refuse_everyone() {
        let mut elig = assign("e", "deleter", "workspaces/a", None);
        elig.eligible_for_ms = Some(3_600_000);
        let s = AccessState::from_parts(
            vec![],
            vec![],
            vec![
                assign("o", "owner", "workspaces/a", None),
                assign("adm", "admin", "*", None),
                assign("adm2", "admin", "*", Some(10_000)),
                elig,
            ],
        );
        let a = Scope::parse("workspaces/a").unwrap();
        let e1 = Scope::parse("workspaces/a/experiments/1").unwrap();
        assert_eq!(
            s.decide("o", "runs/delete", &a, 0),
            Err(Refusal::NeedsElevation)
        );
        assert_eq!(
            s.decide("adm", "runs/delete", &a, 0),
            Err(Refusal::NeedsElevation)
        );
        assert_eq!(
            s.decide("adm", "access/manage", &Scope::Service, 0),
            Err(Refusal::NeedsElevation)
        );
        assert!(s.decide("adm", "runs/write", &a, 0).is_ok());
        assert!(
            s.decide("adm2", "runs/delete", &a, 0).is_ok(),
            "elevated admin"
        );
        assert_eq!(
            s.decide("e", "runs/delete", &a, 0),
            Err(Refusal::NotGranted),
            "eligible is not granted"
        );
        // Who may elevate.
        assert!(s.may_elevate("e", "deleter", &e1, 3_600_000, 0).is_ok());
        assert!(
            s.may_elevate("e", "deleter", &e1, 3_600_001, 0).is_err(),
            "longer than allowed"
        );
        assert!(
            s.may_elevate("e", "owner", &a, 1000, 0).is_err(),
            "another role"
        );
        assert!(
            s.may_elevate("e", "deleter", &Scope::Service, 1000, 0)
                .is_err(),
            "wider scope"
        );
        assert!(s
            .may_elevate("adm", "deleter", &Scope::Service, ADMIN_MAX_ELEVATION_MS, 0)
            .is_ok());
        assert!(
            s.may_elevate("o", "deleter", &a, 1000, 0).is_err(),
            "owners need an eligibility"
        );
        // Locks refuse even an elevated admin, and inherit downward.
        let lock = |scope: &str, kind: &str| Lock {
            id: format!("l-{scope}"),
            scope: Scope::parse(scope).unwrap(),
            kind: kind.into(),
            reason: "prod".into(),
            set_by: "ops".into(),
            created_time: 0,
        };
        let s = s.with_locks(vec![
            lock("workspaces/a", "no-delete"),
            lock("workspaces/b/models/m", "read-only"),
        ]);
        assert!(matches!(
            s.decide("adm2", "runs/delete", &e1, 0),
            Err(Refusal::Locked(_))
        ));
        assert!(matches!(
            s.decide("adm2", "retention/write", &a, 0),
            Err(Refusal::Locked(_))
        ));
        assert!(
            s.decide("adm2", "runs/write", &e1, 0).is_ok(),
            "no-delete allows writes"
        );
        let m = Scope::parse("workspaces/b/models/m").unwrap();
        assert!(matches!(
            s.decide("adm2", "models/write", &m, 0),
            Err(Refusal::Locked(_))
        ));
        assert!(s.decide("adm2", "models/read", &m, 0).is_ok());
        assert!(s
            .decide(
                "adm2",
                "models/write",
                &Scope::parse("workspaces/b/models/n").unwrap(),
                0
            )
            .is_ok());
        assert!(s.has_narrow_lock_in("b") && !s.has_narrow_lock_in("a"));
    }

    #[test]
    fn custom_roles_and_groups() {
        for good in [
            "*",
            "runs/write",
            "*/read",
            "workspaces/*/experiments/*/read",
            "workspaces/team/models/churn/write",
        ] {
            assert!(validate_pattern(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "runs",
            "runs/write/x",
            "Runs/write",
            "workspaces/a/runs/write",
            "workspaces//experiments/1/read",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad}");
        }
        let e7 = Scope::parse("workspaces/team/experiments/7").unwrap();
        let e8 = Scope::parse("workspaces/team/experiments/8").unwrap();
        let team = Scope::parse("workspaces/team").unwrap();
        let m = Scope::parse("workspaces/team/models/churn").unwrap();
        assert!(pattern_grants(
            "workspaces/*/experiments/*/read",
            "experiments/read",
            &e7
        ));
        assert!(pattern_grants(
            "workspaces/*/experiments/*/read",
            "experiments/read",
            &team
        ));
        assert!(!pattern_grants(
            "workspaces/*/experiments/*/read",
            "runs/read",
            &e7
        ));
        assert!(pattern_grants(
            "workspaces/team/runs/7/write",
            "runs/write",
            &e7
        ));
        assert!(!pattern_grants(
            "workspaces/team/runs/7/write",
            "runs/write",
            &e8
        ));
        assert!(
            !pattern_grants("workspaces/team/runs/7/write", "runs/write", &team),
            "one experiment is not the workspace"
        );
        assert!(!pattern_grants(
            "workspaces/other/runs/*/write",
            "runs/write",
            &e7
        ));
        assert!(pattern_grants(
            "workspaces/team/models/churn/write",
            "models/write",
            &m
        ));
        assert!(!pattern_grants(
            "workspaces/team/models/churn/write",
            "runs/write",
            &e7
        ));
        let mut roles = HashMap::new();
        roles.insert(
            "run-logger".to_owned(),
            vec!["runs/write".to_owned(), "*/read".to_owned()],
        );
        roles.insert("exp7".to_owned(), vec!["workspaces/team/*/7/*".to_owned()]);
        let s = AccessState::from_parts(
            vec![],
            vec![],
            vec![
                assign("g", "run-logger", "workspaces/team", None),
                assign("x", "exp7", "*", None),
            ],
        )
        .with_roles_and_members(roles, vec![("g".into(), "alice".into())]);
        assert!(
            s.decide("alice", "runs/write", &e7, 0).is_ok(),
            "through her group"
        );
        assert!(s.decide("alice", "experiments/write", &e7, 0).is_err());
        assert!(
            s.decide("bob", "runs/write", &e7, 0).is_err(),
            "not a member"
        );
        assert!(s.decide("x", "runs/write", &e7, 0).is_ok());
        assert!(s.decide("x", "runs/write", &e8, 0).is_err());
        assert_eq!(
            s.decide("x", "runs/delete", &e7, 0),
            Err(Refusal::NeedsElevation),
            "custom roles do not bypass elevation"
        );
        assert!(s.has_narrow_in("x", "team", 0));
        assert!(s.any_in_workspace("x", "runs/read", "team", 0));
        assert!(!s.any_in_workspace("x", "runs/read", "other", 0));
    }

    #[test]
    fn tokens_expire_and_revoke() {
        let p = Principal {
            id: "p".into(),
            name: "alice".into(),
            kind: "user".into(),
            workspace: None,
            password_hash: None,
            created_time: 0,
        };
        let t = |sha: &str, exp, rev| Token {
            id: sha.into(),
            principal_id: "p".into(),
            sha256: sha.into(),
            label: String::new(),
            expires_ms: exp,
            revoked_time: rev,
            created_time: 0,
        };
        let s = AccessState::from_parts(
            vec![p],
            vec![
                t("live", None, None),
                t("exp", Some(10), None),
                t("rev", None, Some(5)),
            ],
            vec![],
        );
        assert_eq!(s.token_principal("live", 100).unwrap().name, "alice");
        assert!(s.token_principal("exp", 9).is_some());
        assert!(s.token_principal("exp", 10).is_none());
        assert!(s.token_principal("rev", 0).is_none());
        assert!(s.token_principal("unknown", 0).is_none());
    }

    #[test]
    fn principal_names() {
        assert!(validate_principal_name("alice@example.com").is_ok());
        for bad in ["", "a:b", "a b", "_replication", "a\nb"] {
            assert!(validate_principal_name(bad).is_err(), "{bad}");
        }
    }
}
