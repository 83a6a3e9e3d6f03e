//! Reading the change log as an audit trail: which action each operation is (in the access
//! vocabulary of docs/design/access.md), which object it touched, and which elevation a
//! destructive one relied on. Pure: the caller reads the logs.

use crate::access::{needs_elevation, Scope};
use crate::event::Event;
use serde_json::Value;

/// The access action an operation is, e.g. `DeleteRun` -> `runs/delete`.
pub fn op_action(op: &str) -> &'static str {
    match op {
        "CreateWorkspace" | "UpdateWorkspace" | "RestoreWorkspace" => "workspaces/write",
        "DeleteWorkspace" | "PurgeWorkspace" => "workspaces/delete",
        "RewindWorkspace" => "restore/in-place",
        "SetRetention" => "retention/write",
        "CreateExperiment"
        | "RenameExperiment"
        | "RestoreExperiment"
        | "SetExperimentTag"
        | "DeleteExperimentTag" => "experiments/write",
        "DeleteExperiment" | "PurgeExperiment" => "experiments/delete",
        "CreateRun" | "UpdateRun" | "RestoreRun" | "LogBatch" | "DeleteTag" | "LogInputs"
        | "LogOutputs" => "runs/write",
        "DeleteRun" | "PurgeRun" => "runs/delete",
        "CreateLoggedModel"
        | "FinalizeLoggedModel"
        | "RestoreLoggedModel"
        | "SetLoggedModelTags"
        | "DeleteLoggedModelTag"
        | "LogLoggedModelParams" => "logged-models/write",
        "DeleteLoggedModel" | "PurgeLoggedModel" => "logged-models/delete",
        "DeleteRegisteredModel"
        | "PurgeRegisteredModel"
        | "DeleteModelVersion"
        | "PurgeModelVersion" => "models/delete",
        "PutArtifact" => "artifacts/write",
        "DeleteArtifacts" => "artifacts/delete",
        "CreatePrincipal" | "SetPassword" | "DeletePrincipal" | "IssueToken" | "RevokeToken"
        | "Assign" | "Unassign" | "DefineRole" | "DropRole" | "AddMember" | "RemoveMember" => {
            "access/manage"
        }
        "CreateEnvironment" | "CreateDataAsset" | "RestoreAsset" => "assets/write",
        "DeleteAsset" | "PurgeAsset" => "assets/delete",
        "SubmitJob" | "CancelJob" | "AssignAttempt" | "FinishAttempt" => "jobs/write",
        "CreateDataKey"
        | "RewrapDataKey"
        | "SetSecret"
        | "SetSecretVersionEnabled"
        | "RecoverSecret" => "secrets/write",
        "DeleteSecret" | "PurgeSecret" => "secrets/delete",
        "PutGatewayObject" => "gateway/write",
        "DeleteGatewayObject" => "gateway/delete",
        "LogSpans" | "StartTrace" | "SetTraceTag" | "DeleteTraceTag" => "traces/write",
        "DeleteTraces" | "PurgeTraces" => "traces/delete",
        // Assessments, trace links, evaluation datasets, scorers, labeling: edits a
        // contributor makes; a deleted one comes back by a point-in-time restore.
        "PutGenaiObject" | "DeleteGenaiObject" => "genai/write",
        "Lock" => "locks/write",
        "Unlock" => "locks/lift",
        op if op.contains("RegisteredModel") || op.contains("ModelVersion") => "models/write",
        _ => "unknown",
    }
}

/// The object an event touched, as `kind:id` (`run:ab12...`, `experiment:7`,
/// `registered-model:churn`, `model-version:churn/3`, `logged-model:m-...`, `artifact:PATH`,
/// `principal:p-...`, ...), or the workspace itself.
pub fn object_of(event: &Event) -> String {
    let p: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
    if event.op.ends_with("GatewayObject") {
        return format!(
            "gateway-{}:{}",
            s("kind").unwrap_or_default().replace('_', "-"),
            s("id").unwrap_or_default()
        );
    }
    if event.op.ends_with("GenaiObject") {
        return format!(
            "{}:{}",
            s("kind").unwrap_or_default().replace('_', "-"),
            s("id").unwrap_or_default()
        );
    }
    if let Some(t) = s("trace_id") {
        return format!("trace:{t}");
    }
    if event.op == "DeleteTraces" || event.op == "PurgeTraces" {
        return format!("workspace:{}", event.workspace);
    }
    if let Some(j) = s("job_id") {
        return format!("job:{j}");
    }
    if let Some(sid) = s("secret_id") {
        return format!("secret:{sid}");
    }
    if let Some(d) = s("dek_id") {
        return format!("data-key:{d}");
    }
    if let Some(r) = s("run_id") {
        return format!("run:{r}");
    }
    if let Some(m) = s("model_id") {
        return format!("logged-model:{m}");
    }
    if let Some(e) = s("experiment_id") {
        return format!("experiment:{e}");
    }
    if event.op == "DefineRole" || event.op == "DropRole" {
        return format!("role:{}", s("name").unwrap_or_default());
    }
    if let Some(g) = s("group_id") {
        return format!("group:{g}");
    }
    if let Some(n) = s("name") {
        let version = p.get("version").and_then(Value::as_i64);
        let asset_kind = match event.op.as_str() {
            "CreateEnvironment" => Some("environment".to_owned()),
            "CreateDataAsset" => Some("data-asset".to_owned()),
            op if op.ends_with("Asset") => s("kind"),
            _ => None,
        };
        if let (Some(kind), Some(v)) = (asset_kind, version) {
            return format!("{kind}:{n}/{v}");
        }
        if let Some(v) = version {
            return format!("model-version:{n}/{v}");
        }
        if event.op.contains("Model") {
            return format!("registered-model:{n}");
        }
    }
    if let Some(path) = s("path") {
        return format!("artifact:{path}");
    }
    for (key, kind) in [
        ("principal_id", "principal"),
        ("token_id", "token"),
        ("assignment_id", "assignment"),
        ("lock_id", "lock"),
    ] {
        if let Some(id) = s(key) {
            return format!("{kind}:{id}");
        }
    }
    format!("workspace:{}", event.workspace)
}

/// An elevation as the access log recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Elevation {
    pub assignment_id: String,
    pub principal_name: String,
    pub role: String,
    pub scope: Scope,
    pub from_ms: i64,
    pub until_ms: i64,
    pub reason: String,
}

/// The elevations recorded in the access log's events, each cut short by its `Unassign`.
pub fn elevations(access_log: &[Event]) -> Vec<Elevation> {
    let mut names = std::collections::HashMap::new();
    let mut out: Vec<Elevation> = Vec::new();
    for e in access_log {
        let p: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        match e.op.as_str() {
            "CreatePrincipal" => {
                names.insert(s("principal_id"), s("name"));
            }
            "Assign" => {
                let (Some(until), Some(scope)) = (
                    p.get("until_ms").and_then(Value::as_i64),
                    Scope::parse(&s("scope")),
                ) else {
                    continue;
                };
                out.push(Elevation {
                    assignment_id: s("assignment_id"),
                    principal_name: names.get(&s("principal_id")).cloned().unwrap_or_default(),
                    role: s("role"),
                    scope,
                    from_ms: p.get("time").and_then(Value::as_i64).unwrap_or(0),
                    until_ms: until,
                    reason: s("reason"),
                });
            }
            "Unassign" => {
                let (id, at) = (s("assignment_id"), p.get("time").and_then(Value::as_i64));
                if let Some(el) = out.iter_mut().find(|el| el.assignment_id == id) {
                    el.until_ms = el.until_ms.min(at.unwrap_or(el.until_ms));
                }
            }
            _ => {}
        }
    }
    out
}

/// The elevation a destructive event of workspace `ws` at `time_ms` by `principal` relied
/// on: one of theirs, in force then, at the workspace or wider.
pub fn elevation_for<'a>(
    elevations: &'a [Elevation],
    event: &Event,
    time_ms: i64,
) -> Option<&'a Elevation> {
    if !needs_elevation(op_action(&event.op)) {
        return None;
    }
    let target = Scope::Workspace(event.workspace.clone());
    elevations.iter().rev().find(|el| {
        el.principal_name == event.principal
            && el.from_ms <= time_ms
            && time_ms < el.until_ms
            && (el.scope.contains(&target)
                || el.scope.workspace() == Some(event.workspace.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Op;

    fn ev(ws: &str, principal: &str, op: &Op) -> Event {
        let (name, payload) = op.encode();
        Event {
            workspace: ws.into(),
            seq: 1,
            epoch: 0,
            hlc: crate::Hlc(0),
            origin: "r".into(),
            principal: principal.into(),
            op: name,
            payload,
            checksum: String::new(),
        }
    }

    #[test]
    fn actions_objects_and_elevations() {
        assert_eq!(op_action("DeleteRun"), "runs/delete");
        assert_eq!(op_action("SetRegisteredModelAlias"), "models/write");
        assert_eq!(op_action("RewindWorkspace"), "restore/in-place");
        let del = ev(
            "team",
            "olly",
            &Op::DeleteRun {
                run_id: "r1".into(),
                time: 50,
            },
        );
        assert_eq!(object_of(&del), "run:r1");
        let v = ev(
            "team",
            "olly",
            &Op::DeleteModelVersion {
                name: "m".into(),
                version: 3,
                time: 0,
            },
        );
        assert_eq!(object_of(&v), "model-version:m/3");
        let log = vec![
            ev(
                "_access",
                "root",
                &Op::CreatePrincipal {
                    principal_id: "p1".into(),
                    name: "olly".into(),
                    kind: "user".into(),
                    workspace: None,
                    time: 0,
                },
            ),
            ev(
                "_access",
                "olly",
                &Op::Assign {
                    assignment_id: "a1".into(),
                    principal_id: "p1".into(),
                    role: "deleter".into(),
                    scope: "workspaces/team".into(),
                    until_ms: Some(100),
                    reason: Some("cleanup".into()),
                    eligible_for_ms: None,
                    time: 10,
                },
            ),
            ev(
                "_access",
                "olly",
                &Op::Unassign {
                    assignment_id: "a1".into(),
                    time: 60,
                },
            ),
        ];
        let els = elevations(&log);
        assert_eq!(els.len(), 1);
        assert_eq!(els[0].until_ms, 60, "cut short by its Unassign");
        assert_eq!(elevation_for(&els, &del, 50).unwrap().reason, "cleanup");
        assert!(elevation_for(&els, &del, 70).is_none());
        assert!(elevation_for(
            &els,
            &ev(
                "other",
                "olly",
                &Op::DeleteRun {
                    run_id: "r".into(),
                    time: 50
                }
            ),
            50
        )
        .is_none());
        let write = ev(
            "team",
            "olly",
            &Op::RestoreRun {
                run_id: "r1".into(),
            },
        );
        assert!(
            elevation_for(&els, &write, 50).is_none(),
            "writes rely on no elevation"
        );
    }
}
