//! Every endpoint, given bad input (missing field, wrong type, unknown ID, oversized value),
//! answers MLflow's error code and status and changes nothing.

use crate::support::{fixture, TestServer};
use serde_json::{json, Value};

const IPV: (u16, &str) = (400, "INVALID_PARAMETER_VALUE");
const RDNE: (u16, &str) = (404, "RESOURCE_DOES_NOT_EXIST");
const RAE: (u16, &str) = (400, "RESOURCE_ALREADY_EXISTS");
const PD: (u16, &str) = (403, "PERMISSION_DENIED");
const NI: (u16, &str) = (501, "NOT_IMPLEMENTED");

/// Access and audit routes (on a server with authentication off the caller is "anonymous",
/// which is no principal). Every case also leaves the access log unchanged.
fn access_cases() -> Vec<(&'static str, &'static str, Value, (u16, &'static str))> {
    let u = "/api/2.0/mlflow/users";
    let a = "/api/tandem/v1/access";
    let grant = json!({"username": "nobody", "resource_type": "experiment", "resource_id": "0", "permission": "READ"});
    vec![
        ("POST", "/api/2.0/mlflow/roles/create", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/roles/create",
            json!({"workspace": "Bad_Name", "name": "r"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/roles/create",
            json!({"workspace": "default", "name": ""}),
            IPV,
        ),
        ("GET", "/api/2.0/mlflow/roles/get", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/roles/list",
            json!({"workspace": "Bad_Name"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/roles/get",
            json!({"role_id": "r-nope"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/roles/update",
            json!({"role_id": "r-nope", "name": "x"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/roles/delete",
            json!({"role_id": "r-nope"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/roles/permissions/add",
            json!({"role_id": "r-nope"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/roles/permissions/add",
            json!({"role_id": "r-nope", "resource_type": "experiment", "resource_pattern": "*", "permission": "READ"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/roles/permissions/remove",
            json!({"role_permission_id": "rp-nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/roles/permissions/list",
            json!({"role_id": "r-nope"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/roles/permissions/update",
            json!({"role_permission_id": "rp-nope"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/roles/permissions/update",
            json!({"role_permission_id": "rp-nope", "permission": "READ"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/roles/assign",
            json!({"username": "nobody", "role_id": "r-nope"}),
            RDNE,
        ),
        ("DELETE", "/api/2.0/mlflow/roles/unassign", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/users/roles/list",
            json!({"username": "nobody"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/roles/users/list",
            json!({"role_id": "r-nope"}),
            RDNE,
        ),
        ("POST", leak(format!("{u}/create")), json!({}), IPV),
        (
            "POST",
            leak(format!("{u}/create")),
            json!({"username": "u1"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/create")),
            json!({"username": "u1", "password": ""}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/create")),
            json!({"username": "u1", "password": "short"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/create")),
            json!({"username": "a:b", "password": "long enough"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/create")),
            json!({"username": 5, "password": "long enough"}),
            IPV,
        ),
        ("GET", leak(format!("{u}/get")), json!({}), IPV),
        (
            "GET",
            leak(format!("{u}/get")),
            json!({"username": "nobody"}),
            RDNE,
        ),
        ("GET", leak(format!("{u}/current")), json!({}), RDNE),
        (
            "PATCH",
            leak(format!("{u}/update-password")),
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            leak(format!("{u}/update-password")),
            json!({"username": "nobody", "password": "long enough"}),
            PD,
        ),
        (
            "PATCH",
            leak(format!("{u}/update-admin")),
            json!({"username": "nobody"}),
            IPV,
        ),
        (
            "PATCH",
            leak(format!("{u}/update-admin")),
            json!({"username": "nobody", "is_admin": true}),
            RDNE,
        ),
        ("DELETE", leak(format!("{u}/delete")), json!({}), IPV),
        (
            "DELETE",
            leak(format!("{u}/delete")),
            json!({"username": "nobody"}),
            RDNE,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/grant")),
            json!({}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/grant")),
            grant.clone(),
            RDNE,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/grant")),
            json!({"username": "nobody", "resource_type": "experiment", "resource_id": "0", "permission": "ALL"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/grant")),
            json!({"username": "nobody", "resource_type": "prompt", "resource_id": "p", "permission": "READ"}),
            NI,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/grant")),
            json!({"username": "nobody", "resource_type": "experiment", "resource_id": "0", "permission": "DENY"}),
            NI,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/revoke")),
            json!({}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{u}/permissions/revoke")),
            json!({"username": "nobody", "resource_type": "experiment", "resource_id": "0"}),
            RDNE,
        ),
        ("GET", leak(format!("{u}/permissions/get")), json!({}), IPV),
        (
            "GET",
            leak(format!("{u}/permissions/get")),
            json!({"username": "nobody", "resource_type": "registered_model", "resource_id": "m"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/permissions/create",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/permissions/create",
            json!({"experiment_id": "0", "username": "nobody", "permission": "READ"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/experiments/permissions/get",
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/experiments/permissions/get",
            json!({"experiment_id": "0", "username": "nobody"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/experiments/permissions/update",
            json!({"experiment_id": "0", "username": "nobody", "permission": "SOME"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/experiments/permissions/delete",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/permissions/create",
            json!({"name": "m"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/permissions/get",
            json!({"name": "m", "username": "nobody"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/registered-models/permissions/update",
            json!({}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/registered-models/permissions/delete",
            json!({"name": "m", "username": "nobody"}),
            RDNE,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/audit",
            json!({"from": "yesterday"}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/audit",
            json!({"max_results": "0"}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/audit",
            json!({"after": "-1"}),
            IPV,
        ),
        ("GET", "/api/tandem/v1/workspaces/BAD/audit", json!({}), IPV),
        ("POST", leak(format!("{a}/tokens")), json!({}), RDNE),
        (
            "POST",
            leak(format!("{a}/tokens")),
            json!({"expires_in_seconds": 0}),
            IPV,
        ),
        (
            "DELETE",
            leak(format!("{a}/tokens/t-nope")),
            json!({}),
            RDNE,
        ),
        ("POST", leak(format!("{a}/principals")), json!({}), IPV),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "a b"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "_x"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "x", "kind": "robot"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "x", "password": "short"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "x", "kind": "service"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals")),
            json!({"name": "x", "kind": "group", "password": "long enough"}),
            IPV,
        ),
        (
            "DELETE",
            leak(format!("{a}/principals/nobody")),
            json!({}),
            RDNE,
        ),
        (
            "PATCH",
            leak(format!("{a}/principals/nobody/password")),
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            leak(format!("{a}/principals/nobody/password")),
            json!({"password": "long enough"}),
            RDNE,
        ),
        (
            "GET",
            leak(format!("{a}/principals/nobody/tokens")),
            json!({}),
            RDNE,
        ),
        (
            "POST",
            leak(format!("{a}/principals/nobody/tokens")),
            json!({}),
            RDNE,
        ),
        (
            "POST",
            leak(format!("{a}/principals/nobody/tokens")),
            json!({"expires_in_seconds": -5}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/principals/nobody/tokens")),
            json!({"label": long(300)}),
            IPV,
        ),
        (
            "DELETE",
            leak(format!("{a}/principals/nobody/tokens/t-nope")),
            json!({}),
            RDNE,
        ),
        ("POST", leak(format!("{a}/assignments")), json!({}), IPV),
        (
            "POST",
            leak(format!("{a}/assignments")),
            json!({"principal": "nobody", "role": "reader", "scope": "everywhere"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/assignments")),
            json!({"principal": "nobody", "role": "king", "scope": "*"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/assignments")),
            json!({"principal": "nobody", "role": "reader", "scope": "*"}),
            RDNE,
        ),
        (
            "POST",
            leak(format!("{a}/assignments")),
            json!({"principal": "nobody", "role": "reader", "scope": "*", "eligible_for_seconds": 0}),
            IPV,
        ),
        (
            "DELETE",
            leak(format!("{a}/assignments/a-nope")),
            json!({}),
            RDNE,
        ),
        ("POST", leak(format!("{a}/elevate")), json!({}), IPV),
        (
            "POST",
            leak(format!("{a}/elevate")),
            json!({"role": "admin", "reason": " "}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/elevate")),
            json!({"role": "admin", "reason": "x", "for_seconds": 0}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/elevate")),
            json!({"role": "admin", "reason": "x"}),
            PD,
        ),
        ("POST", leak(format!("{a}/locks")), json!({}), IPV),
        (
            "POST",
            leak(format!("{a}/locks")),
            json!({"scope": "*", "kind": "frozen", "reason": "x"}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/locks")),
            json!({"scope": "*", "reason": ""}),
            IPV,
        ),
        ("DELETE", leak(format!("{a}/locks/l-nope")), json!({}), RDNE),
        ("POST", leak(format!("{a}/roles")), json!({}), IPV),
        (
            "POST",
            leak(format!("{a}/roles")),
            json!({"name": "r", "actions": ["not a pattern"]}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/roles")),
            json!({"name": "admin", "actions": ["*"]}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/roles")),
            json!({"name": "r", "actions": "runs/write"}),
            IPV,
        ),
        ("DELETE", leak(format!("{a}/roles/nobody")), json!({}), RDNE),
        (
            "POST",
            leak(format!("{a}/groups/nobody/members")),
            json!({}),
            IPV,
        ),
        (
            "POST",
            leak(format!("{a}/groups/nobody/members")),
            json!({"member": "nobody"}),
            RDNE,
        ),
        (
            "DELETE",
            leak(format!("{a}/groups/nobody/members/nobody")),
            json!({}),
            RDNE,
        ),
    ]
}

/// Case paths are built once per test run; leaking them keeps the case tables `'static`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// (method, path, parameters, expected). `{EXP}`, `{RUN}`, `{MODEL}`, `{LM}` are replaced
/// with IDs of real entities.
fn cases() -> Vec<(&'static str, &'static str, Value, (u16, &'static str))> {
    let unknown_run = "0123456789abcdef0123456789abcdef";
    vec![
        // experiments/create
        ("POST", "/api/2.0/mlflow/experiments/create", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": 5}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": long(501)}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "fixture"}),
            RAE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "n", "tags": [{"key": "k", "value": long(20001)}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "n", "tags": "notalist"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "nul\u{0}name"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete",
            json!({"experiment_id": "\u{0}\u{7f}"}),
            IPV,
        ),
        // experiments/get, get-by-name
        ("GET", "/api/2.0/mlflow/experiments/get", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name",
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name",
            json!({"experiment_name": "nope"}),
            RDNE,
        ),
        // experiments/search
        (
            "POST",
            "/api/2.0/mlflow/experiments/search",
            json!({"max_results": "many"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search",
            json!({"max_results": 50001}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search",
            json!({"filter": "name ="}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search",
            json!({"page_token": "garbage!"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search",
            json!({"view_type": "SOME"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/experiments/search",
            json!({"order_by": "nope.x"}),
            IPV,
        ),
        // experiments/update, delete, restore, tags
        (
            "POST",
            "/api/2.0/mlflow/experiments/update",
            json!({"new_name": "x"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/update",
            json!({"experiment_id": "999999", "new_name": "x"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/update",
            json!({"experiment_id": "{EXP}", "new_name": long(501)}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/update",
            json!({"experiment_id": "{EXP}", "new_name": ["a"]}),
            IPV,
        ),
        ("POST", "/api/2.0/mlflow/experiments/delete", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete",
            json!({"experiment_id": "0"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/restore",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/restore",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            json!({"experiment_id": "999999", "key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            json!({"experiment_id": "{EXP}", "key": long(251), "value": "v"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            json!({"experiment_id": "{EXP}", "key": "k", "value": 3}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete-experiment-tag",
            json!({"experiment_id": "{EXP}", "key": "absent"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete-experiment-tag",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        // runs/create, get, update, delete, restore
        (
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": "{EXP}", "start_time": "soon"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": "{EXP}", "tags": [{"key": "k", "value": long(8001)}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": "{EXP}", "run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]}),
            IPV,
        ),
        ("GET", "/api/2.0/mlflow/runs/get", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": unknown_run}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": "../etc"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/update",
            json!({"run_id": unknown_run, "status": "FINISHED"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/update",
            json!({"run_id": "{RUN}", "status": "DONE"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/update",
            json!({"run_id": "{RUN}", "end_time": "later"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/update",
            json!({"run_id": "{RUN}", "run_name": long(8001)}),
            IPV,
        ),
        ("POST", "/api/2.0/mlflow/runs/delete", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/runs/delete",
            json!({"run_id": unknown_run}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/restore",
            json!({"run_id": unknown_run}),
            RDNE,
        ),
        // runs/search
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["{EXP}"], "filter": "metrics.a > 'x'"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["{EXP}"], "filter": "params.a = 1"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["{EXP}"], "order_by": ["metrics.a sideways"]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["{EXP}"], "max_results": 50001}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": "{EXP}", "max_results": -1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": [1, 2]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["{EXP}"], "run_view_type": 9}),
            IPV,
        ),
        // log-metric, log-parameter, set-tag, delete-tag
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": "{RUN}", "key": "m", "timestamp": 1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": "{RUN}", "key": "m", "value": 1.0}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": "{RUN}", "key": "m", "value": "high", "timestamp": 1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": "{RUN}", "key": "../m", "value": 1.0, "timestamp": 1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": "{RUN}", "key": long(251), "value": 1.0, "timestamp": 1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": unknown_run, "key": "m", "value": 1.0, "timestamp": 1}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            json!({"key": "m", "value": 1.0, "timestamp": 1}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter",
            json!({"run_id": "{RUN}", "key": "p", "value": "2"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter",
            // (A param without a value is the empty string, as in MLflow: not bad input.)
            json!({"run_id": "{RUN}", "value": "v"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter",
            json!({"run_id": "{RUN}", "key": "q", "value": long(6001)}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter",
            json!({"run_id": unknown_run, "key": "q", "value": "1"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            json!({"run_id": "{RUN}", "value": "v"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            json!({"run_id": "{RUN}", "key": "k", "value": long(8001)}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            json!({"run_id": unknown_run, "key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/delete-tag",
            json!({"run_id": "{RUN}", "key": "absent"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/delete-tag",
            json!({"run_id": "{RUN}"}),
            IPV,
        ),
        // log-batch
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "metrics": "many"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "metrics": [{"key": "m", "value": 1}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "params": [{"key": "p", "value": "changed"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "2"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "params": (0..101).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": "{RUN}", "tags": (0..101).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": unknown_run, "params": [{"key": "x", "value": "1"}]}),
            RDNE,
        ),
        // log-inputs, outputs, log-model
        (
            "POST",
            "/api/2.0/mlflow/runs/log-inputs",
            json!({"run_id": "{RUN}", "datasets": [{"dataset": {"name": "d"}}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-inputs",
            json!({"run_id": "{RUN}", "datasets": [{"dataset": {"name": long(501), "digest": "d", "source_type": "s", "source": "s"}}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-inputs",
            json!({"run_id": "{RUN}", "models": [{"model_id": "m-nope"}]}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-inputs",
            json!({"run_id": unknown_run, "datasets": []}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/outputs",
            json!({"run_id": "{RUN}", "models": [{"model_id": "m-nope", "step": 0}]}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/outputs",
            json!({"run_id": "{RUN}", "models": [{"step": 0}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-model",
            json!({"run_id": "{RUN}", "model_json": "{not json"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-model",
            json!({"run_id": "{RUN}"}),
            IPV,
        ),
        // metrics history, artifacts list
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history",
            json!({"run_id": "{RUN}"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history",
            json!({"run_id": unknown_run, "metric_key": "m"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history",
            json!({"run_id": "{RUN}", "metric_key": "m", "max_results": 0}),
            IPV,
        ),
        (
            "GET",
            "/api/2.11/mlflow/metrics/get-history-bulk-interval",
            json!({"metric_key": "m"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.11/mlflow/metrics/get-history-bulk-interval",
            json!({"run_ids": ["{RUN}"], "metric_key": "m", "start_step": 5, "end_step": 1}),
            IPV,
        ),
        (
            "GET",
            "/api/2.11/mlflow/metrics/get-history-bulk-interval",
            json!({"run_ids": ["{RUN}"], "metric_key": "m", "max_results": 5000}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search-datasets",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/search-datasets",
            json!({"experiment_ids": (0..21).map(|i| i.to_string()).collect::<Vec<_>>()}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history-bulk",
            json!({"metric_key": "m"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history-bulk",
            json!({"run_id": "{RUN}"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/metrics/get-history-bulk",
            json!({"run_id": "0123456789abcdef0123456789abcdef", "metric_key": "m"}),
            RDNE,
        ),
        // The GenAI pages' searches (answered as over an empty store, with MLflow's checks).
        ("POST", "/api/3.0/mlflow/traces/search", json!({}), IPV),
        (
            "POST",
            "/api/3.0/mlflow/traces/search",
            json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "1"}}], "max_results": 0}),
            IPV,
        ),
        // Span clauses MLflow refuses, and a regular expression RLIKE cannot read.
        (
            "POST",
            "/api/3.0/mlflow/traces/search",
            json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "1"}}], "filter": "span.content = 'x'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/search",
            json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "1"}}], "filter": "span.duration = 'x'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/search",
            json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "1"}}], "filter": "tags.t RLIKE '(unclosed'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["1"], "view_type": "TRACES", "metric_name": "nope", "aggregations": [{"aggregation_type": "COUNT"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["1"], "view_type": "TRACES", "metric_name": "latency", "aggregations": [{"aggregation_type": "COUNT"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["1"], "view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}], "time_interval_seconds": 60}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["{EXP}"], "view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}], "filters": ["trace.bogus = 'x'"]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["{EXP}"], "view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}], "filters": ["span.name = 'x'"]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["{EXP}"], "view_type": "TRACES", "metric_name": "latency", "aggregations": [{"aggregation_type": "PERCENTILE", "percentile_value": 101}]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/metrics",
            json!({"experiment_ids": ["{EXP}"], "view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}], "dimensions": ["span_name"]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/search",
            json!({"max_results": -1}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/search",
            json!({"max_results": 0}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/list",
            json!({"experiment_id": "999"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/list",
            json!({"experiment_id": "{EXP}", "experiment_ids": ["{EXP}"]}),
            IPV,
        ),
        ("POST", "/api/2.0/mlflow/issues", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/issues",
            json!({"name": "n", "description": "d", "experiment_id": "{EXP}", "status": "open"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/issues",
            json!({"name": "n", "description": "d", "experiment_id": "{EXP}", "severity": "dire"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/issues",
            json!({"name": "n", "description": "d", "experiment_id": "424242"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/issues/search",
            json!({"filter_string": "name = 'x'"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/issues/search",
            json!({"filter_string": "status LIKE 'p%'"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/issues/search",
            json!({"max_results": 0}),
            IPV,
        ),
        ("GET", "/api/2.0/mlflow/issues/iss-nope", json!({}), RDNE),
        (
            "PATCH",
            "/api/2.0/mlflow/issues/iss-nope",
            json!({"status": "closed"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/issues/iss-nope",
            json!({"status": "resolved"}),
            RDNE,
        ),
        ("POST", "/api/3.0/mlflow/scorers/register", json!({}), IPV),
        (
            "POST",
            "/api/3.0/mlflow/scorers/register",
            json!({"experiment_id": "{EXP}", "name": "s", "serialized_scorer": "not json"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/scorers/register",
            json!({"experiment_id": "{EXP}", "name": "s", "serialized_scorer": "{\"call_source\": \"import os\"}"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/scorers/register",
            json!({"experiment_id": "{EXP}", "name": "  ", "serialized_scorer": "{}"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/scorers/register",
            json!({"experiment_id": "{EXP}", "name": "s", "serialized_scorer": "{\"builtin_scorer_pydantic_data\": {\"model\": \"gateway:/nowhere\"}}"}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/scorers/register",
            json!({"experiment_id": "424242", "name": "s", "serialized_scorer": "{}"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/versions",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/versions",
            json!({"experiment_id": "{EXP}", "name": "nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/get",
            json!({"name": "nope"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/get",
            json!({"experiment_id": "{EXP}", "name": "nope", "version": "x"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/scorers/get",
            json!({"experiment_id": "{EXP}", "name": "nope"}),
            RDNE,
        ),
        ("DELETE", "/api/3.0/mlflow/scorers/delete", json!({}), IPV),
        (
            "GET",
            "/api/3.0/mlflow/scorers/online-configs",
            json!({}),
            IPV,
        ),
        (
            "PUT",
            "/api/3.0/mlflow/scorers/online-config",
            json!({"experiment_id": "{EXP}", "name": "nope"}),
            IPV,
        ),
        (
            "PUT",
            "/api/3.0/mlflow/scorers/online-config",
            json!({"experiment_id": "{EXP}", "name": "nope", "sample_rate": 2.0}),
            IPV,
        ),
        (
            "PUT",
            "/api/3.0/mlflow/scorers/online-config",
            json!({"experiment_id": "{EXP}", "name": "nope", "sample_rate": 0.5}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/scorers/delete",
            json!({"experiment_id": "{EXP}", "name": "nope", "version": 2}),
            RDNE,
        ),
        // MLflow 2's trace routes
        ("GET", "/api/2.0/mlflow/traces", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/traces",
            json!({"experiment_ids": "{EXP}", "max_results": "501"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/traces",
            json!({"experiment_id": "999999", "timestamp_ms": 1}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/traces",
            json!({"experiment_id": "{EXP}", "timestamp_ms": "soon"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/traces/tr-nope",
            json!({"timestamp_ms": 1, "status": "OK"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/traces/tr-nope",
            json!({"timestamp_ms": 1, "status": "DONE"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/traces/tr-nope/info",
            json!({}),
            RDNE,
        ),
        // trace filter correlation
        (
            "POST",
            "/api/3.0/mlflow/traces/calculate-filter-correlation",
            json!({"filter_string1": "status = 'OK'", "filter_string2": "status = 'ERROR'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/calculate-filter-correlation",
            json!({"experiment_ids": ["{EXP}"], "filter_string1": "status = 'OK'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/calculate-filter-correlation",
            json!({"experiment_ids": ["{EXP}"], "filter_string1": "bogus.x = 'OK'", "filter_string2": "status = 'OK'"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/traces/calculate-filter-correlation",
            json!({"experiment_ids": ["{EXP}"], "filter_string1": "status = 'OK'", "filter_string2": "status = 'OK'", "base_filter": "timestamp_ms > 'x' and"}),
            IPV,
        ),
        // label schemas
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "{EXP}", "name": "q", "input": {"text": {}}}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "{EXP}", "name": "q", "type": "NOPE", "input": {"text": {}}}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "{EXP}", "name": "q", "type": "FEEDBACK", "input": {"text": {}, "numeric": {}}}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "{EXP}", "name": "q", "type": "FEEDBACK", "input": {"categorical": {"options": [long(65)]}}}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "{EXP}", "name": "Feedback", "type": "FEEDBACK", "input": {"text": {}}}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/label-schemas/create",
            json!({"experiment_id": "999999", "name": "q", "type": "FEEDBACK", "input": {"text": {}}}),
            RDNE,
        ),
        ("GET", "/api/3.0/mlflow/label-schemas/get", json!({}), IPV),
        (
            "GET",
            "/api/3.0/mlflow/label-schemas/get",
            json!({"schema_id": "ls-nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/label-schemas/get-by-name",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/label-schemas/get-by-name",
            json!({"experiment_id": "{EXP}", "name": "nope"}),
            RDNE,
        ),
        ("GET", "/api/3.0/mlflow/label-schemas/list", json!({}), IPV),
        (
            "GET",
            "/api/3.0/mlflow/label-schemas/list",
            json!({"experiment_id": "{EXP}", "max_results": "0"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/label-schemas/list",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/label-schemas/update",
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/label-schemas/update",
            json!({"schema_id": "ls-nope", "name": "x"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/label-schemas/update",
            json!({"schema_id": "ls-default-{EXP}", "name": "x"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/label-schemas/delete",
            json!({}),
            IPV,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/label-schemas/delete",
            json!({"schema_id": "ls-default-{EXP}"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/label-schemas/delete",
            json!({"schema_id": "ls-nope"}),
            (200, ""),
        ),
        // review queues
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({"experiment_id": "{EXP}", "name": "q"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({"experiment_id": "{EXP}", "name": "default", "queue_type": "CUSTOM"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({"experiment_id": "{EXP}", "name": "q", "queue_type": "CUSTOM", "schema_ids": ["ls-nope"]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({"experiment_id": "{EXP}", "name": "q", "queue_type": "CUSTOM", "users": [long(251)]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/create",
            json!({"experiment_id": "999999", "name": "q", "queue_type": "CUSTOM"}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/get-or-create-user",
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/get-or-create-user",
            json!({"experiment_id": "999999", "user": "ann"}),
            RDNE,
        ),
        ("GET", "/api/3.0/mlflow/review-queues/get", json!({}), IPV),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/get",
            json!({"queue_id": "rq-nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/get-by-name",
            json!({"name": "q"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/get-by-name",
            json!({"experiment_id": "{EXP}", "name": "nope"}),
            RDNE,
        ),
        ("GET", "/api/3.0/mlflow/review-queues/list", json!({}), IPV),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/list",
            json!({"experiment_id": "{EXP}", "max_results": "50001"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/update",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/update",
            json!({"queue_id": "rq-nope", "name": "x"}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/delete",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/delete",
            json!({"queue_id": "rq-nope"}),
            (200, ""),
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/add",
            json!({"queue_id": "rq-nope"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/add",
            json!({"queue_id": "rq-nope", "item_ids": [long(51)]}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/add",
            json!({"queue_id": "rq-nope", "item_ids": ["tr-x"], "item_type": 7}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/add",
            json!({"queue_id": "rq-nope", "item_ids": ["tr-x"]}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/remove",
            json!({"queue_id": "rq-nope", "item_ids": []}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/remove",
            json!({"queue_id": "rq-nope", "item_ids": ["tr-x"]}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/items/list",
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/items/list",
            json!({"queue_id": "rq-nope", "status": "NOPE"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/review-queues/items/list",
            json!({"queue_id": "rq-nope"}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/set-status",
            json!({"queue_id": "rq-nope", "item_id": "tr-x"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/set-status",
            json!({"queue_id": "rq-nope", "item_id": "tr-x", "status": "COMPLETE"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/review-queues/items/set-status",
            json!({"queue_id": "rq-nope", "item_id": "tr-x", "status": "COMPLETE", "completed_by": "ann"}),
            RDNE,
        ),
        // MLflow's GraphQL endpoint: a request without a query.
        ("POST", "/graphql", json!({}), IPV),
        ("GET", "/graphql", json!({}), IPV),
        (
            "GET",
            "/api/2.0/mlflow/artifacts/list",
            json!({"run_id": "{RUN}", "path": "../../x"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/artifacts/list",
            json!({"run_id": unknown_run}),
            RDNE,
        ),
        // logged models
        ("POST", "/api/2.0/mlflow/logged-models", json!({}), IPV),
        (
            "POST",
            "/api/2.0/mlflow/logged-models",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models",
            json!({"experiment_id": "{EXP}", "params": [{"key": "p", "value": long(6001)}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models",
            // (A source run this server does not hold is accepted, as by MLflow.)
            json!({"experiment_id": "{EXP}", "name": "a/b", "source_run_id": unknown_run}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/logged-models/m-nope",
            json!({}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/logged-models/{LM}",
            json!({"status": "SHINY"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/logged-models/{LM}",
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/logged-models/m-nope",
            json!({"status": "LOGGED_MODEL_READY"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/logged-models/m-nope",
            json!({}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/logged-models/{LM}/tags",
            json!({"tags": [{"value": "v"}]}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/logged-models/m-nope/tags",
            json!({"tags": [{"key": "k", "value": "v"}]}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/logged-models/{LM}/tags/absent",
            json!({}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models/{LM}/params",
            json!({"params": [{"key": "../p", "value": "v"}]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models/m-nope/params",
            json!({"params": [{"key": "p", "value": "v"}]}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/logged-models/{LM}/artifacts/directories",
            json!({"artifact_directory_path": "../x"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models/search",
            json!({"experiment_ids": ["{EXP}"], "filter": "metrics.x > 'a'"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/logged-models/search",
            json!({"experiment_ids": ["{EXP}"], "order_by": [{"ascending": true}]}),
            IPV,
        ),
        // registry: registered models
        (
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": "{MODEL}"}),
            RAE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": "a/b"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": "n", "tags": [{"key": "k", "value": long(100_001)}]}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({"name": "nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/rename",
            json!({"name": "nope", "new_name": "x"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/rename",
            json!({"name": "{MODEL}"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/registered-models/update",
            json!({"name": "nope", "description": "d"}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/registered-models/update",
            json!({"name": "{MODEL}", "description": 5}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/registered-models/delete",
            json!({"name": "nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            json!({"max_results": 1001}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            json!({"filter": "name LIKE"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            json!({"name": "nope"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            json!({"name": "{MODEL}", "stages": ["Nowhere"]}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/set-tag",
            json!({"name": "nope", "key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/set-tag",
            json!({"name": "{MODEL}", "key": long(251), "value": "v"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/registered-models/delete-tag",
            json!({"name": "nope", "key": "k"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "{MODEL}", "alias": "latest", "version": "1"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "{MODEL}", "alias": "ok", "version": "99"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "{MODEL}", "alias": long(256), "version": "1"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "{MODEL}", "alias": "ok", "version": "one"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "nope", "alias": "a"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": "{MODEL}", "alias": "absent"}),
            IPV,
        ),
        // MLflow's UI download routes
        ("GET", "/get-artifact", json!({"run_uuid": "{RUN}"}), IPV),
        ("GET", "/get-artifact", json!({"path": "x"}), IPV),
        (
            "GET",
            "/get-artifact",
            json!({"run_uuid": "{RUN}", "path": "../../x"}),
            IPV,
        ),
        (
            "GET",
            "/get-artifact",
            json!({"run_uuid": "{RUN}", "path": "/etc/passwd"}),
            IPV,
        ),
        (
            "GET",
            "/get-artifact",
            json!({"run_uuid": unknown_run, "path": "x"}),
            RDNE,
        ),
        (
            "GET",
            "/get-artifact",
            json!({"run_uuid": "{RUN}", "path": "no-such-file"}),
            RDNE,
        ),
        (
            "GET",
            "/model-versions/get-artifact",
            json!({"name": "{MODEL}", "path": "x"}),
            IPV,
        ),
        (
            "GET",
            "/model-versions/get-artifact",
            json!({"name": "{MODEL}", "version": "x", "path": "x"}),
            IPV,
        ),
        (
            "GET",
            "/model-versions/get-artifact",
            json!({"name": "{MODEL}", "version": "99", "path": "x"}),
            RDNE,
        ),
        (
            "GET",
            "/model-versions/get-artifact",
            json!({"name": "{MODEL}", "version": "1", "path": "a/../../x"}),
            IPV,
        ),
        // registry: model versions
        (
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json!({"name": "nope", "source": "s3://bucket/model"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json!({"name": "{MODEL}"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            // A source inside a run's artifacts names a run this server must hold (MLflow's rule).
            json!({"name": "{MODEL}", "source": "mlflow-artifacts:/0/x/artifacts/m", "run_id": unknown_run}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json!({"name": "{MODEL}", "source": long(5001)}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/get",
            json!({"name": "{MODEL}", "version": "99"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/get",
            json!({"name": "{MODEL}", "version": "-1"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/get",
            json!({"name": "{MODEL}"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/2.0/mlflow/model-versions/update",
            json!({"name": "{MODEL}", "version": "99", "description": "d"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/transition-stage",
            json!({"name": "{MODEL}", "version": "1", "stage": "Moon"}),
            IPV,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/transition-stage",
            json!({"name": "{MODEL}", "version": "99", "stage": "Staging"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/model-versions/delete",
            json!({"name": "{MODEL}", "version": "99"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            json!({"filter": "nonsense ~ 1"}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            json!({"max_results": 0}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/model-versions/get-download-uri",
            json!({"name": "{MODEL}", "version": "99"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            json!({"name": "{MODEL}", "version": "99", "key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            json!({"name": "{MODEL}", "version": "1", "key": "k", "value": long(100_001)}),
            IPV,
        ),
        (
            "DELETE",
            "/api/2.0/mlflow/model-versions/delete-tag",
            json!({"name": "{MODEL}", "version": "99", "key": "k"}),
            RDNE,
        ),
        // workspaces
        ("POST", "/api/3.0/mlflow/workspaces", json!({}), IPV),
        (
            "POST",
            "/api/3.0/mlflow/workspaces",
            json!({"name": "Bad_Name"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/workspaces",
            json!({"name": "a"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/workspaces",
            json!({"name": "api"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/workspaces",
            json!({"name": "default"}),
            RAE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/workspaces",
            json!({"name": "ok-name", "description": long(5001)}),
            IPV,
        ),
        ("GET", "/api/3.0/mlflow/workspaces/no-such", json!({}), RDNE),
        (
            "PATCH",
            "/api/3.0/mlflow/workspaces/no-such",
            json!({"description": "d"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/workspaces/no-such",
            json!({}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/workspaces/default",
            json!({}),
            (500, "INVALID_STATE"),
        ),
        // tandem's change log
        (
            "GET",
            "/api/tandem/v1/workspaces/default/changes",
            json!({"after": -1}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/changes",
            json!({"after": "x"}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/changes",
            json!({"limit": 100000}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/no-such/changes",
            json!({}),
            RDNE,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/changes",
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/no-such/verify",
            json!({}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/apply",
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/no-such/retention",
            json!({}),
            RDNE,
        ),
        (
            "PATCH",
            "/api/tandem/v1/workspaces/default/retention",
            json!({"days": 3}),
            IPV,
        ),
        (
            "PATCH",
            "/api/tandem/v1/workspaces/default/retention",
            json!({"days": 91}),
            IPV,
        ),
        (
            "PATCH",
            "/api/tandem/v1/workspaces/default/retention",
            json!({"days": "many"}),
            IPV,
        ),
        (
            "PATCH",
            "/api/tandem/v1/workspaces/default/retention",
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            "/api/tandem/v1/workspaces/default/retention",
            json!({"purge_protection": "yes please"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/no-such/purge",
            json!({}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/purge",
            json!({"immediately": 7}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"experiment_id": "1", "run_id": "{RUN}"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"experiment_id": "999999"}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"run_id": "0123456789abcdef0123456789abcdef"}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"model_id": "no such/model"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"model_id": "m-0123456789abcdef"}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"name": "ghost-model"}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"name": "ghost-model", "version": "x"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"name": "m", "model_id": "m-1"}),
            IPV,
        ),
        // A live workspace is not deleted; an unknown one does not exist.
        (
            "POST",
            "/api/tandem/v1/workspaces/default/undelete",
            json!({"workspace": true}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/ghost-ws/undelete",
            json!({"workspace": true}),
            RDNE,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/apply",
            json!({"op": "NoSuchOp", "payload": "{}"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/apply",
            json!({"op": "SetExperimentTag", "payload": "{\"experiment_id\": 5}"}),
            IPV,
        ),
        (
            "POST",
            "/api/tandem/v1/workspaces/default/apply",
            json!({"op": "DeleteWorkspace", "payload": "{\"time\": 1}"}),
            IPV,
        ),
    ]
}

fn substitute(v: &Value, f: &crate::support::Fixture) -> Value {
    match v {
        Value::String(s) => Value::String(sub_str(s, f)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, f)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sub_str(s: &str, f: &crate::support::Fixture) -> String {
    s.replace("{EXP}", &f.experiment_id)
        .replace("{RUN}", &f.run_id)
        .replace("{MODEL}", &f.model_name)
        .replace("{LM}", &f.model_id)
}

/// MLflow 3's traces (api/traces.rs).
fn traces_cases() -> Vec<crate::support::Case> {
    const IPV: (u16, &str) = (400, "INVALID_PARAMETER_VALUE");
    const RDNE: (u16, &str) = (404, "RESOURCE_DOES_NOT_EXIST");
    let t = "/api/3.0/mlflow/traces";
    let info = |e: &str, extra: Value| {
        let mut i = json!({"trace_id": "tr-0123", "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}}, "request_time": "2026-12-05T03:24:45.724Z", "state": "OK"});
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({"trace": {"trace_info": i}})
    };
    let cases: Vec<(&str, String, Value, (u16, &str))> = vec![
        ("POST", t.into(), json!({}), IPV),
        ("POST", t.into(), json!({"trace": {}}), IPV),
        (
            "POST",
            t.into(),
            info("{EXP}", json!({"trace_id": ""})),
            IPV,
        ),
        ("POST", t.into(), info("424242", json!({})), RDNE),
        (
            "POST",
            t.into(),
            info("{EXP}", json!({"request_time": "yesterday"})),
            IPV,
        ),
        (
            "POST",
            t.into(),
            info("{EXP}", json!({"execution_duration": "long"})),
            IPV,
        ),
        (
            "POST",
            t.into(),
            info("{EXP}", json!({"state": "FINE"})),
            IPV,
        ),
        (
            "POST",
            t.into(),
            info(
                "{EXP}",
                json!({"tags": {"mlflow.traceName": "x".repeat(300)}}),
            ),
            IPV,
        ),
        ("GET", format!("{t}/get"), json!({}), IPV),
        (
            "GET",
            format!("{t}/get"),
            json!({"trace_id": "tr-nope"}),
            RDNE,
        ),
        ("GET", format!("{t}/batchGet"), json!({}), IPV),
        ("POST", format!("{t}/batchGetInfos"), json!({}), IPV),
        ("POST", format!("{t}/search"), json!({}), IPV),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [], "max_results": 501}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "filter": "metrics.x > 1"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "order_by": ["nonsense DESC"]}),
            IPV,
        ),
        ("POST", format!("{t}/delete-traces"), json!({}), IPV),
        (
            "POST",
            format!("{t}/delete-traces"),
            json!({"experiment_id": "{EXP}"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/delete-traces"),
            json!({"experiment_id": "{EXP}", "max_timestamp_millis": 1, "request_ids": ["tr-1"]}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/delete-traces"),
            json!({"experiment_id": "{EXP}", "max_timestamp_millis": 1, "max_traces": 0}),
            IPV,
        ),
        ("GET", format!("{t}/tr-nope"), json!({}), RDNE),
        ("PATCH", format!("{t}/tr-nope/tags"), json!({}), IPV),
        (
            "PATCH",
            format!("{t}/tr-nope/tags"),
            json!({"key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "PATCH",
            format!("{t}/tr-nope/tags"),
            json!({"key": "mlflow.trace.spansLocation", "value": "v"}),
            IPV,
        ),
        ("DELETE", format!("{t}/tr-nope/tags"), json!({}), IPV),
        (
            "DELETE",
            format!("{t}/tr-nope/tags"),
            json!({"key": "k"}),
            RDNE,
        ),
        (
            "GET",
            "/api/2.0/mlflow/get-trace-artifact".into(),
            json!({}),
            (400, "BAD_REQUEST"),
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/create".into(),
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/create".into(),
            json!({"name": "d", "tags": "not json"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/create".into(),
            json!({"name": "d", "tags": "[1]"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/create".into(),
            json!({"name": "d", "experiment_ids": ["424242"]}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/search".into(),
            json!({"filter_string": "metrics.x > 1"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/search".into(),
            json!({"order_by": "tags.x"}),
            IPV,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/d-nope".into(),
            json!({}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/datasets/d-nope".into(),
            json!({}),
            (200, ""),
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/datasets/d-nope/tags".into(),
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            "/api/3.0/mlflow/datasets/d-nope/tags".into(),
            json!({"tags": "{\"a\": \"b\"}"}),
            RDNE,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/datasets/d-nope/tags/absent".into(),
            json!({}),
            (200, ""),
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"records": "{\"inputs\": {}}"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"records": "[{\"inputs\": \"text\"}]"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"records": "[{\"inputs\": {}, \"source\": {\"source_type\": \"ROBOT\"}}]"}),
            IPV,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"records": "[{\"inputs\": {\"q\": 1}}]"}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"page_token": "%%%"}),
            IPV,
        ),
        (
            "DELETE",
            "/api/3.0/mlflow/datasets/d-nope/records".into(),
            json!({"dataset_record_ids": ["dr-1"]}),
            RDNE,
        ),
        (
            "GET",
            "/api/3.0/mlflow/datasets/d-nope/experiment-ids".into(),
            json!({}),
            (200, ""),
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/add-experiments".into(),
            json!({"experiment_ids": ["1"]}),
            RDNE,
        ),
        (
            "POST",
            "/api/3.0/mlflow/datasets/d-nope/remove-experiments".into(),
            json!({"experiment_ids": "x"}),
            RDNE,
        ),
        ("POST", format!("{t}/tr-nope/assessments"), json!({}), IPV),
        (
            "POST",
            format!("{t}/tr-nope/assessments"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}}}),
            RDNE,
        ),
        (
            "POST",
            format!("{t}/tr-nope/assessments"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}, "expectation": {"value": 2}}}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/tr-nope/assessments"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}, "source": {"source_type": "ROBOT"}}}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/tr-nope/assessments"),
            json!({"assessment": {"assessment_name": "x", "expectation": {"serialized_value": {"serialization_format": "YAML", "value": "a: 1"}}}}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/tr-nope/assessments"),
            json!({"assessment": {"assessment_name": "x".repeat(251), "feedback": {"value": 1}}}),
            IPV,
        ),
        (
            "GET",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({}),
            RDNE,
        ),
        (
            "PATCH",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({}),
            IPV,
        ),
        (
            "PATCH",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}}}),
            IPV,
        ),
        (
            "PATCH",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}}, "update_mask": "feedback,expectation"}),
            IPV,
        ),
        (
            "PATCH",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({"assessment": {"assessment_name": "x", "feedback": {"value": 1}}, "update_mask": "feedback"}),
            RDNE,
        ),
        (
            "DELETE",
            format!("{t}/tr-nope/assessments/a-nope"),
            json!({}),
            RDNE,
        ),
        ("POST", format!("{t}/link-to-run"), json!({}), IPV),
        (
            "POST",
            format!("{t}/link-to-run"),
            json!({"trace_ids": ["tr-nope"]}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/link-to-run"),
            json!({"trace_ids": (0..101).map(|i| format!("tr-{i}")).collect::<Vec<_>>(), "run_id": "{RUN}"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/link-to-run"),
            json!({"trace_ids": ["tr-nope"], "run_id": "nope"}),
            RDNE,
        ),
        (
            "POST",
            format!("{t}/link-to-run"),
            json!({"trace_ids": ["tr-nope"], "run_id": "{RUN}"}),
            RDNE,
        ),
        ("POST", format!("{t}/link-prompts"), json!({}), IPV),
        (
            "POST",
            format!("{t}/link-prompts"),
            json!({"trace_id": "tr-nope", "prompt_versions": [{"name": "p", "version": "one"}]}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/link-prompts"),
            json!({"trace_id": "tr-nope", "prompt_versions": [{"name": "p", "version": "1"}]}),
            RDNE,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "filter": "prompt = 'p'"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "filter": "issue.name = 'x'"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "filter": "feedback.rating IN ('1')"}),
            IPV,
        ),
        (
            "POST",
            format!("{t}/search"),
            json!({"locations": [{"mlflow_experiment": {"experiment_id": "{EXP}"}}], "order_by": ["feedback.rating"]}),
            IPV,
        ),
        (
            "GET",
            "/api/2.0/mlflow/get-trace-artifact".into(),
            json!({"request_id": "tr-nope"}),
            RDNE,
        ),
    ];
    crate::support::static_cases(cases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_rejects_bad_input_with_mlflow_errors_and_changes_nothing() {
    for meta in crate::support::metadata_stores() {
        bad_input_on(meta).await;
    }
}

async fn bad_input_on(meta: crate::support::Meta) {
    let s = TestServer::start_on(meta, None).await;
    let f = fixture(&s).await;
    let mut failures = Vec::new();
    let all: Vec<_> = cases()
        .into_iter()
        .chain(access_cases())
        .chain(crate::assets::bad_input_cases())
        .chain(crate::secrets::bad_input_cases())
        .chain(crate::gateway::bad_input_cases())
        .chain(traces_cases())
        .collect();
    let covered: std::collections::HashSet<String> = all.iter().map(|c| c.1.to_owned()).collect();
    for (method, path, params, (status, code)) in all {
        let path = sub_str(path, &f);
        let params = substitute(&params, &f);
        let access_before = s.head_seq("_access").await;
        let before = s.head_seq("default").await;
        let (got_status, body) = if method == "GET" {
            s.call(method, &crate::support::query_path(&path, &params), None)
                .await
        } else {
            s.call(method, &path, Some(params.clone())).await
        };
        let after = s.head_seq("default").await;
        let access_after = s.head_seq("_access").await;
        // A 200 case is an idempotent call on nothing (MLflow's deletes of what is not
        // there): it must succeed and change nothing.
        let answered = if status == 200 {
            got_status != 200
        } else {
            got_status != status
                || body["error_code"] != code
                || body["message"].as_str().is_none_or(str::is_empty)
        };
        if answered || after != before || access_after != access_before {
            failures.push(format!("{method} {path} {params}: got {got_status} {body} (log {before} -> {after}), expected {status} {code}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{meta:?}: {} bad-input cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Every route in the tables has at least one case above, but those that take no input at
    // all (listings of the whole access state, and who the caller is).
    let no_input = [
        "mlflow/users/list",
        "mlflow/assistant/config",
        "mlflow/gateway-proxy",
        "mlflow/assistant/providers",
        // The gateway's listings take only filters (any string filters) and the UI's
        // provider catalog and secrets settings take nothing.
        "mlflow/gateway/secrets/list",
        "mlflow/gateway/endpoints/list",
        "mlflow/gateway/model-definitions/list",
        "mlflow/gateway/endpoints/bindings/list",
        "mlflow/gateway/budgets/windows",
        "mlflow/gateway/supported-providers",
        "mlflow/gateway/supported-models",
        "mlflow/gateway/secrets/config",
        "access/whoami",
        "access/roles",
        "access/principals",
        "access/assignments",
        "access/locks",
    ];
    for (_, pattern, _) in tandem::api::ROUTES
        .iter()
        .chain(tandem::api::TANDEM_ROUTES)
        .chain(tandem::api::ACCESS_ROUTES)
    {
        if no_input.contains(pattern) {
            let (status, _) = s
                .call(
                    "GET",
                    &format!(
                        "/api/{}{pattern}",
                        if pattern.starts_with("access/") {
                            "tandem/v1/"
                        } else {
                            "2.0/"
                        }
                    ),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{pattern}");
            continue;
        }
        let prefix = if pattern.starts_with("workspaces/") || pattern.starts_with("access/") {
            "/api/tandem/v1/"
        } else if pattern.contains("workspaces")
            || [
                "mlflow/traces/",
                "mlflow/datasets/",
                "mlflow/scorers/",
                "mlflow/gateway/",
                "mlflow/label-schemas/",
                "mlflow/review-queues/",
            ]
            .iter()
            .any(|p| pattern.starts_with(p))
        {
            "/api/3.0/"
        } else if pattern.contains("bulk-interval") {
            "/api/2.11/"
        } else {
            "/api/2.0/"
        };
        let concrete = pattern
            .replace("{model_id}", "m-nope")
            .replace("{tag_key}", "absent")
            .replace("{workspace_name}", "no-such")
            .replace("{name}", "nobody")
            .replace("{member}", "nobody")
            .replace("{token_id}", "t-nope")
            .replace("{assignment_id}", "a-nope")
            .replace("{lock_id}", "l-nope")
            .replace("{trace_id}", "tr-nope")
            .replace("{assessment_id}", "a-nope")
            .replace("{dataset_id}", "d-nope")
            .replace("{issue_id}", "iss-nope")
            .replace("{key}", "absent");
        let alt = pattern
            .replace("{model_id}", "{LM}")
            .replace("{workspace_name}", "default")
            .replace("{tag_key}", "absent")
            .replace("{name}", "nobody")
            .replace("{version}", "1")
            .replace("{job_id}", "j-nope")
            .replace("{attempt}", "1")
            .replace("{trace_id}", "tr-nope")
            .replace("{assessment_id}", "a-nope")
            .replace("{dataset_id}", "d-nope")
            .replace("{issue_id}", "iss-nope")
            .replace("{key}", "absent");
        let hit = covered.iter().any(|c| {
            c == &format!("{prefix}{concrete}")
                || c == &format!("{prefix}{alt}")
                || c.ends_with(&format!("/{}", pattern.replace("{workspace_name}", "BAD")))
        });
        assert!(hit, "no bad-input case for {pattern}");
    }
    for (_, pattern, _) in tandem::api::GRAPHQL_ROUTES {
        assert!(
            covered.contains(&format!("/{pattern}")),
            "no bad-input case for {pattern}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_unknown_workspaces() {
    for meta in crate::support::metadata_stores() {
        malformed_on(meta).await;
    }
}

async fn malformed_on(meta: crate::support::Meta) {
    let s = TestServer::start_on(meta, None).await;
    let before = s.head_seq("default").await;
    for body in ["{", "[1,2]", "\"str\"", "{\"name\": }", "\u{0}\u{1}"] {
        let resp = s
            .http
            .post(format!("{}/api/2.0/mlflow/experiments/create", s.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{body:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error_code"], "INVALID_PARAMETER_VALUE");
    }
    let (status, v) = s
        .call_ws(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "x"})),
            Some("nowhere"),
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, v) = s
        .call_ws(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "x"})),
            Some("Not Valid"),
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let (status, v) = s
        .call("GET", "/api/2.0/mlflow/experiments/create", None)
        .await;
    assert_eq!((status, v), (405, Value::Null));
    let (status, v) = s.call("GET", "/api/2.0/mlflow/not-a-thing", None).await;
    assert_eq!((status, v), (404, Value::Null));
    let big = "x".repeat(tandem::http::MAX_JSON_BODY + 10);
    let resp = s
        .http
        .post(format!("{}/api/2.0/mlflow/experiments/create", s.url))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(s.head_seq("default").await, before);
    s.stop().await;
}

#[tokio::test]
async fn artifact_endpoints_reject_bad_input_and_change_nothing() {
    let s = TestServer::start().await;
    let before = s.head_seq("default").await;
    let put = |path: &str, body: &'static [u8]| {
        let (http, url) = (s.http.clone(), format!("{}{}", s.url, path));
        async move {
            let r = http.put(url).body(body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Path traversal and absolute paths, percent-encoded or not.
    for p in ["..%2F..%2Fetc%2Fpasswd", "a/%2e%2e/%2e%2e/b", "a/../../b"] {
        // The HTTP client may resolve dot segments itself, so the request lands on no route
        // (plain 404); either way nothing may be written.
        let (status, v) = put(&format!("/api/2.0/mlflow-artifacts/artifacts/{p}"), b"x").await;
        assert!(
            (status == 400 && v["error_code"] == "INVALID_PARAMETER_VALUE")
                || (status == 404 && v.is_null()),
            "{p}: {status} {v}"
        );
    }
    let (status, v) = s
        .call(
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts?path=..%2F..",
            None,
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let (status, v) = s
        .call(
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts/0/missing.txt",
            None,
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    // Multipart: missing fields, bad counts, unknown uploads, wrong parts and ETags.
    let mpu = "/api/2.0/mlflow-artifacts/mpu";
    let cases = [
        (format!("{mpu}/create/0/r"), json!({})),
        (
            format!("{mpu}/create/0/r"),
            json!({"path": "/tmp/f.bin", "num_parts": 0}),
        ),
        (
            format!("{mpu}/create/0/r"),
            json!({"path": "/tmp/f.bin", "num_parts": 10_001}),
        ),
        (
            format!("{mpu}/create/0/r"),
            json!({"path": "/tmp/", "num_parts": 1}),
        ),
        (
            format!("{mpu}/complete/0/r"),
            json!({"path": "/tmp/f.bin", "upload_id": "zz", "parts": []}),
        ),
        (format!("{mpu}/abort/0/r"), json!({"path": "/tmp/f.bin"})),
    ];
    for (path, body) in &cases {
        let (status, v) = s.call("POST", path, Some(body.clone())).await;
        assert!(
            status == 400 && v["error_code"] == "INVALID_PARAMETER_VALUE",
            "{path} {body}: {status} {v}"
        );
    }
    let (status, v) = s
        .call(
            "POST",
            &format!("{mpu}/complete/0/r"),
            Some(json!({"path": "/tmp/f.bin", "upload_id": "0".repeat(32), "parts": []})),
        )
        .await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let created = s
        .ok(
            "POST",
            &format!("{mpu}/create/0/r"),
            json!({"path": "/tmp/f.bin", "num_parts": 2}),
        )
        .await;
    let id = created["upload_id"].as_str().unwrap().to_owned();
    let part_url = |n: u32| format!("/api/tandem/v1/uploads/{id}/parts/{n}");
    let (status, _) = put(&part_url(3), b"x").await;
    assert_eq!(status, 400);
    let (status, _) = put(
        &format!("/api/tandem/v1/uploads/{}/parts/1", "f".repeat(32)),
        b"x",
    )
    .await;
    assert_eq!(status, 404);
    let r1 = s
        .http
        .put(format!("{}{}", s.url, part_url(1)))
        .body("one")
        .send()
        .await
        .unwrap();
    let etag1 = r1.headers()["etag"].to_str().unwrap().to_owned();
    // Only one of two parts: refused. A wrong ETag: refused.
    let (status, _) = s.call("POST", &format!("{mpu}/complete/0/r"), Some(json!({"path": "/tmp/f.bin", "upload_id": id, "parts": [{"part_number": 1, "etag": etag1}]}))).await;
    assert_eq!(status, 400);
    let (status, _) = put(&part_url(2), b"two").await;
    assert_eq!(status, 200);
    let (status, _) = s.call("POST", &format!("{mpu}/complete/0/r"), Some(json!({"path": "/tmp/f.bin", "upload_id": id, "parts": [{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": "\"bogus\""}]}))).await;
    assert_eq!(status, 400);
    // Completing for another path than the upload's: refused.
    let (status, _) = s
        .call(
            "POST",
            &format!("{mpu}/complete/0/other"),
            Some(json!({"path": "/tmp/f.bin", "upload_id": id, "parts": []})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        s.head_seq("default").await,
        before,
        "a refused artifact request wrote an event"
    );
    let (status, _) = s
        .call("GET", "/api/2.0/mlflow-artifacts/artifacts/0/r/f.bin", None)
        .await;
    assert_eq!(status, 404);
    s.stop().await;
}
