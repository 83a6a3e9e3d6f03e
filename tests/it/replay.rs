//! Rebuilding a workspace by replaying its change log from empty gives exactly the live
//! state, for every kind of change, after randomized workloads.

use crate::support::{fresh_postgres, metadata_stores, Meta};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tandem::api::{Ctx, Req};
use tandem::store::postgres::Postgres;
use tandem::store::sqlite::{Durability, Sqlite};
use tandem::store::{queries, Decision, Store, SystemClock};
use tandem_core::Op;

/// Every operation, by name. The exhaustive match makes a new `Op` variant a compile error
/// here until the workload below learns to produce it.
fn op_index(op: &Op) -> usize {
    match op {
        Op::CreateWorkspace { .. } => 0,
        Op::UpdateWorkspace { .. } => 1,
        Op::DeleteWorkspace { .. } => 2,
        Op::CreateExperiment { .. } => 3,
        Op::RenameExperiment { .. } => 4,
        Op::DeleteExperiment { .. } => 5,
        Op::RestoreExperiment { .. } => 6,
        Op::SetExperimentTag { .. } => 7,
        Op::DeleteExperimentTag { .. } => 8,
        Op::CreateRun { .. } => 9,
        Op::UpdateRun { .. } => 10,
        Op::DeleteRun { .. } => 11,
        Op::RestoreRun { .. } => 12,
        Op::LogBatch { .. } => 13,
        Op::DeleteTag { .. } => 14,
        Op::LogInputs { .. } => 15,
        Op::LogOutputs { .. } => 16,
        Op::CreateLoggedModel { .. } => 17,
        Op::FinalizeLoggedModel { .. } => 18,
        Op::DeleteLoggedModel { .. } => 19,
        Op::SetLoggedModelTags { .. } => 20,
        Op::DeleteLoggedModelTag { .. } => 21,
        Op::LogLoggedModelParams { .. } => 22,
        Op::CreateRegisteredModel { .. } => 23,
        Op::RenameRegisteredModel { .. } => 24,
        Op::UpdateRegisteredModel { .. } => 25,
        Op::DeleteRegisteredModel { .. } => 26,
        Op::SetRegisteredModelTag { .. } => 27,
        Op::DeleteRegisteredModelTag { .. } => 28,
        Op::SetRegisteredModelAlias { .. } => 29,
        Op::DeleteRegisteredModelAlias { .. } => 30,
        Op::CreateModelVersion { .. } => 31,
        Op::UpdateModelVersion { .. } => 32,
        Op::TransitionModelVersionStage { .. } => 33,
        Op::DeleteModelVersion { .. } => 34,
        Op::SetModelVersionTag { .. } => 35,
        Op::DeleteModelVersionTag { .. } => 36,
        Op::PutArtifact { .. } => 37,
        Op::DeleteArtifacts { .. } => 38,
        Op::SetRetention { .. } => 39,
        Op::PurgeRun { .. } => 40,
        Op::PurgeExperiment { .. } => 41,
        Op::RestoreWorkspace { .. } => 42,
        Op::PurgeWorkspace {} => 43,
        Op::RewindWorkspace { .. } => 44,
        Op::RestoreRegisteredModel { .. } => 45,
        Op::PurgeRegisteredModel { .. } => 46,
        Op::RestoreModelVersion { .. } => 47,
        Op::PurgeModelVersion { .. } => 48,
        Op::RestoreLoggedModel { .. } => 49,
        Op::PurgeLoggedModel { .. } => 50,
        Op::CreatePrincipal { .. } => 51,
        Op::SetPassword { .. } => 52,
        Op::DeletePrincipal { .. } => 53,
        Op::IssueToken { .. } => 54,
        Op::RevokeToken { .. } => 55,
        Op::Assign { .. } => 56,
        Op::Unassign { .. } => 57,
        Op::Lock { .. } => 58,
        Op::Unlock { .. } => 59,
        Op::DefineRole { .. } => 60,
        Op::DropRole { .. } => 61,
        Op::AddMember { .. } => 62,
        Op::RemoveMember { .. } => 63,
        Op::CreateEnvironment { .. } => 64,
        Op::CreateDataAsset { .. } => 65,
        Op::DeleteAsset { .. } => 66,
        Op::RestoreAsset { .. } => 67,
        Op::PurgeAsset { .. } => 68,
        Op::SubmitJob { .. } => 69,
        Op::CancelJob { .. } => 70,
        Op::AssignAttempt { .. } => 71,
        Op::FinishAttempt { .. } => 72,
        Op::CreateDataKey { .. } => 73,
        Op::RewrapDataKey { .. } => 74,
        Op::SetSecret { .. } => 75,
        Op::SetSecretVersionEnabled { .. } => 76,
        Op::DeleteSecret { .. } => 77,
        Op::RecoverSecret { .. } => 78,
        Op::PurgeSecret { .. } => 79,
        Op::PutGatewayObject { .. } => 80,
        Op::DeleteGatewayObject { .. } => 81,
        Op::LogSpans { .. } => 82,
        Op::StartTrace { .. } => 83,
        Op::SetTraceTag { .. } => 84,
        Op::DeleteTraceTag { .. } => 85,
        Op::DeleteTraces { .. } => 86,
        Op::PutGenaiObject { .. } => 87,
        Op::DeleteGenaiObject { .. } => 88,
        Op::PurgeTraces { .. } => 89,
    }
}
const OP_COUNT: usize = 90;
/// How many kinds of action the workload below picks from.
pub const ACTIONS: u8 = 77;

pub struct World {
    meta: Meta,
    pub store: Store,
    pub ctx: Ctx,
    _dir: tempfile::TempDir,
    experiments: Vec<String>,
    runs: Vec<String>,
    logged_models: Vec<String>,
    models: Vec<String>,
}

fn open_store(meta: Meta, dir: &std::path::Path) -> Store {
    let backend = crate::support::fresh_backend(meta, dir);
    Store::new(backend, Arc::new(SystemClock), "test").unwrap()
}

impl World {
    pub fn new(meta: Meta) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(meta, dir.path());
        tandem::api::workspaces::ensure(&store, "default", "d", "t").unwrap();
        tandem::api::workspaces::ensure(&store, "other", "o", "t").unwrap();
        tandem::api::access::ensure_workspace(&store).unwrap();
        let artifacts = tandem::artifacts::Artifacts::folder(&dir.path().join("a")).unwrap();
        let ctx = Ctx {
            store: store.clone(),
            artifacts,
            workspace: "default".into(),
            principal: "prop".into(),
            require_live: true,
            authenticated: false,
            compute: vec![tandem::jobs::ComputeTarget::local_default()].into(),
            vault: Some(std::sync::Arc::new(tandem::vault::Keyring::new(
                tandem::vault::Key::random(),
                vec![],
                "test".into(),
            ))),
        };
        World {
            meta,
            store,
            ctx,
            _dir: dir,
            experiments: vec!["0".into()],
            runs: vec![],
            logged_models: vec![],
            models: vec![],
        }
    }

    fn call(&self, h: tandem::api::Handler, params: Value) -> Option<Value> {
        h(&self.ctx, &Req::from_json(params).unwrap()).ok()
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Api(u8, u8, u8, u8),
}

fn pick<T: Clone>(v: &[T], i: u8) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i as usize % v.len()].clone())
    }
}

fn value_of(i: u8) -> Value {
    match i % 7 {
        0 => json!("NaN"),
        1 => json!("Infinity"),
        2 => json!("-Infinity"),
        3 => json!(0.1 * i as f64),
        4 => json!(-(i as f64)),
        5 => json!(1e300),
        _ => json!(i),
    }
}

/// Applies one randomized API call. Many are rejected (deleted targets, conflicts): that is
/// part of the test, since rejected calls must leave no trace.
pub fn run_action(w: &mut World, a: &Action) {
    use tandem::api::{logged_models as lm, registry as reg, tracking as tr, workspaces as ws};
    let Action::Api(kind, x, y, z) = *a;
    let e = pick(&w.experiments, x);
    let r = pick(&w.runs, x);
    let m = pick(&w.models, x);
    let l = pick(&w.logged_models, y);
    let key = format!("k{}", y % 4);
    let access = |w: &World| w.store.read(queries::access_state).unwrap();
    let user = format!("u{}", x % 6);
    match kind % ACTIONS {
        // Access events (the `_access` workspace). Password hashes are opaque to the store,
        // so a stand-in PHC string spares the workload argon2's cost.
        47 => drop(tandem::api::access::create_principal(
            &w.store,
            "prop",
            tandem::api::access::NewPrincipal {
                name: &user,
                kind: ["service", "user", "group"][y as usize % 3],
                workspace: Some("default"),
                password_hash: (z % 2 == 0 && y % 3 != 2).then(|| format!("$argon2id$v=19$stand-in{z}")),
                roles: vec![],
            },
        )),
        48 => drop(tandem::api::access::set_password(&w.store, "prop", &user, format!("$argon2id$v=19$p{z}"))),
        49 => drop(tandem::api::access::delete_principal(&w.store, "prop", &user)),
        50 => drop(tandem::api::access::issue_token(&w.store, "prop", &user, &format!("l{z}"), (y % 2 == 0).then_some(i64::MAX / 2))),
        51 => {
            let tokens: Vec<(String, String)> = {
                let s = access(w);
                let mut t: Vec<_> = s.tokens.values().map(|t| (t.id.clone(), s.principals[&t.principal_id].name.clone())).collect();
                t.sort();
                t
            };
            if let Some((id, owner)) = pick(&tokens, y) {
                drop(tandem::api::access::revoke_token(&w.store, "prop", &id, Some(&owner)));
            }
        }
        52 => {
            let role = ["reader", "contributor", "owner", "admin"][z as usize % 4];
            let scope = ["*", "workspaces/default", "workspaces/default/experiments/0", "workspaces/other/models/m"][y as usize % 4];
            let scope = tandem_core::access::Scope::parse(scope).unwrap();
            let grant = match z % 3 {
                0 => tandem::api::access::Grant::Until { until_ms: 5_000, reason: "prop" },
                1 => tandem::api::access::Grant::Eligible { for_ms: 3_600_000 },
                _ => tandem::api::access::Grant::Standing,
            };
            drop(tandem::api::access::assign(&w.store, "prop", &user, role, &scope, grant));
        }
        54 => {
            // Never the whole of `default`: the workload purges there.
            let scope = ["workspaces/other", "workspaces/other/experiments/0", "workspaces/other/models/m"][y as usize % 3];
            let kind = ["no-delete", "read-only"][z as usize % 2];
            drop(tandem::api::access::set_lock(&w.store, "prop", &tandem_core::access::Scope::parse(scope).unwrap(), kind, "prop"));
        }
        56 => drop(tandem::api::access::define_role(&w.store, "prop", &format!("r{}", x % 3), &[format!("workspaces/*/runs/{z}/write"), "*/read".to_owned()])),
        57 => drop(tandem::api::access::drop_role(&w.store, "prop", &format!("r{}", x % 3))),
        58 => {
            let group = format!("g{}", y % 2);
            drop(tandem::api::access::create_principal(
                &w.store,
                "prop",
                tandem::api::access::NewPrincipal { name: &group, kind: "group", workspace: None, password_hash: None, roles: vec![] },
            ));
            drop(tandem::api::access::membership(&w.store, "prop", &group, &user, true));
        }
        59 => drop(tandem::api::access::membership(&w.store, "prop", &format!("g{}", y % 2), &user, false)),
        55 => {
            let mut ids: Vec<String> = access(w).locks.iter().map(|l| l.id.clone()).collect();
            ids.sort();
            if let Some(id) = pick(&ids, y) {
                drop(tandem::api::access::lift_lock(&w.store, "prop", &id));
            }
        }
        53 => {
            let mut ids: Vec<String> = access(w).assignments.iter().map(|a| a.id.clone()).collect();
            ids.sort();
            if let Some(id) = pick(&ids, y) {
                drop(tandem::api::access::unassign(&w.store, "prop", &id));
            }
        }
        // Environments and data assets (purged by action 43's immediate purge).
        60 => {
            let name = format!("env{}", y % 3);
            let body = match z % 3 {
                0 => json!({"workspace_name": "default", "name": name, "image": format!("r/i@sha256:{:064x}", z)}),
                1 => json!({"workspace_name": "default", "name": name, "requirements": format!("numpy=={z}\n")}),
                _ => json!({"workspace_name": "default", "name": name, "conda": "name: x\n", "version": (z % 5) + 1}),
            };
            drop(w.call(tandem::api::assets::create_environment, body));
        }
        61 => {
            let uri = match (z % 3, r) {
                (0, Some(r)) => format!("runs:/{r}/m"),
                _ => format!("s3://bucket/d{z}"),
            };
            drop(w.call(tandem::api::assets::create_data_asset, json!({"workspace_name": "default", "name": format!("data{}", y % 3), "type": (["uri_file", "uri_folder"][z as usize % 2]), "uri": uri})));
        }
        62 | 63 => {
            use tandem::api::assets as a;
            let delete = kind % ACTIONS == 62;
            let (h, name): (tandem::api::Handler, String) = match (z % 2 == 0, delete) {
                (true, true) => (a::delete_environment, format!("env{}", y % 3)),
                (true, false) => (a::restore_environment, format!("env{}", y % 3)),
                (false, true) => (a::delete_data_asset, format!("data{}", y % 3)),
                (false, false) => (a::restore_data_asset, format!("data{}", y % 3)),
            };
            drop(w.call(h, json!({"workspace_name": "default", "name": name, "version": format!("{}", x % 3 + 1)})));
        }
        // Jobs: submitted and cancelled through the API; assigned and finished as the
        // scheduler writes them (its processes are tested in test_jobs.py).
        64 => drop(w.call(tandem::api::jobs::submit, json!({"workspace_name": "default", "command": ["true"], "key": (z % 3 == 0).then(|| format!("k{}", y % 4)), "retries": z % 2}))),
        65..=67 => {
            let jobs: Vec<(String, String, i64)> = w.store.read(|tx| Ok(tx.query("SELECT job_id, state, attempt FROM jobs WHERE workspace = 'default' ORDER BY job_id", &[])?.iter().map(|r| (r.text(0), r.text(1), r.int(2))).collect())).unwrap();
            if let Some((job_id, state, attempt)) = pick(&jobs, y) {
                let time = 1_700_000_000_000 + z as i64;
                match (kind % ACTIONS, state.as_str()) {
                    (65, _) => drop(w.call(tandem::api::jobs::cancel, json!({"workspace_name": "default", "job_id": job_id}))),
                    (66, "queued") => {
                        let run_id = tandem_core::ids::run_id(tandem::api::random_bytes());
                        let ops = vec![
                            Op::CreateRun { run_id: run_id.clone(), experiment_id: "0".into(), user_id: "s".into(), run_name: "a".into(), start_time: time, artifact_uri: format!("mlflow-artifacts:/0/{run_id}/artifacts"), tags: vec![] },
                            Op::AssignAttempt { job_id, attempt: attempt + 1, region: "test".into(), compute: "local".into(), run_id, incarnation: z as u64, time },
                        ];
                        w.store.write("default", "prop", |_| Ok(Decision::changes((), ops.clone()))).unwrap();
                    }
                    (67, "running") => {
                        let (outcome, job_state) = [("completed", "completed"), ("failed", "queued"), ("lost", "queued"), ("cancelled", "cancelled"), ("timed_out", "failed")][z as usize % 5];
                        let op = Op::FinishAttempt { job_id, attempt, outcome: outcome.into(), exit_code: (outcome == "failed").then_some(1), job_state: job_state.into(), time };
                        w.store.write("default", "prop", |_| Ok(Decision::change((), op.clone()))).unwrap();
                    }
                    _ => {}
                }
            }
        }
        // The vault: secrets set, disabled and enabled, deleted, recovered, purged; a master
        // key rotation re-wraps the data key.
        68 => drop(w.call(tandem::api::secrets::set, json!({"workspace_name": "default", "name": format!("s{}", y % 3), "value": format!("v{z}"), "content_type": "text/plain", "tags": {"k": format!("{x}")}}))),
        69 => {
            let h: tandem::api::Handler = if z % 2 == 0 { tandem::api::secrets::disable } else { tandem::api::secrets::enable };
            drop(w.call(h, json!({"workspace_name": "default", "name": format!("s{}", y % 3), "version": format!("{}", x % 3 + 1)})));
        }
        70 => drop(w.call(tandem::api::secrets::delete, json!({"workspace_name": "default", "name": format!("s{}", y % 3)}))),
        71 => drop(w.call(tandem::api::secrets::recover, json!({"workspace_name": "default", "name": format!("s{}", y % 3)}))),
        72 => drop(w.call(tandem::api::secrets::purge, json!({"workspace_name": "default", "name": format!("s{}", y % 3)}))),
        73 => {
            if z % 4 == 0 {
                let old = w.ctx.vault.as_ref().unwrap().current().clone();
                w.ctx.vault = Some(std::sync::Arc::new(tandem::vault::Keyring::new(tandem::vault::Key::random(), vec![old], "test".into())));
                drop(tandem::api::secrets::rewrap(&w.ctx));
            }
        }
        // MLflow's AI gateway: secrets (vault versions and the gateway's view), definitions,
        // endpoints (with their tracing experiment), tags, budgets, deletes.
        74 => {
            use tandem::api::gateway as gw;
            let first = |v: Option<Value>, list: &str, id: &str| {
                v.and_then(|v| v[list].as_array().and_then(|a| a.get(x as usize % a.len().max(1))).map(|o| o[id].as_str().unwrap_or_default().to_owned()))
                    .unwrap_or_default()
            };
            let sid = first(w.call(gw::list_secrets, json!({})), "secrets", "secret_id");
            let did = first(w.call(gw::list_model_definitions, json!({})), "model_definitions", "model_definition_id");
            let eid = first(w.call(gw::list_endpoints, json!({})), "endpoints", "endpoint_id");
            let cfg = json!([{"model_definition_id": did, "linkage_type": "PRIMARY"}]);
            match z % 9 {
                0 => drop(w.call(gw::create_secret, json!({"secret_name": format!("g{}", y % 3), "secret_value": {"api_key": format!("sk-{z}-abcdefgh")}, "provider": "openai"}))),
                1 => drop(w.call(gw::update_secret, json!({"secret_id": sid, "secret_value": {"api_key": format!("sk-{y}-rotated")}, "auth_config": {"api_version": "2024-02-01"}}))),
                2 => drop(w.call(gw::create_model_definition, json!({"name": format!("d{}", y % 3), "secret_id": sid, "provider": "openai", "model_name": "gpt-4o-mini"}))),
                3 => drop(w.call(gw::create_endpoint, json!({"name": format!("ep{}", y % 3), "model_configs": cfg, "usage_tracking": y % 2 == 0}))),
                4 => drop(w.call(gw::set_endpoint_tag, json!({"endpoint_id": eid, "key": key, "value": format!("{z}")}))),
                5 => drop(w.call(gw::delete_endpoint, json!({"endpoint_id": eid}))),
                6 => drop(w.call(gw::delete_model_definition, json!({"model_definition_id": did}))),
                7 => drop(w.call(gw::delete_secret, json!({"secret_id": sid}))),
                _ => drop(w.call(gw::create_budget, json!({"budget_unit": "USD", "budget_amount": y as f64, "duration": {"unit": "DAYS", "value": 1}, "target_scope": "GLOBAL", "budget_action": "ALERT"}))),
            }
        }
        // Traces: spans as OTLP delivers them (one trace of a few, some in two requests), the
        // client's final info, tags, deletes.
        75 => {
            use tandem::api::traces as tc;
            let trace = [y % 4 + 1; 16];
            let trace_id = tc::trace_id_of(&trace);
            // A trace stays in the experiment that first had it: later calls name that one.
            let first = w
                .store
                .read(|tx| tx.query_one("SELECT experiment_id FROM traces WHERE workspace = 'default' AND trace_id = ?", &[trace_id.as_str().into()]))
                .unwrap()
                .map(|r| r.text(0));
            let e = first.or_else(|| pick(&w.experiments, x)).unwrap_or_else(|| "0".into());
            match z % 5 {
                0 | 1 => {
                    let span = |id: u8, parent: Option<u8>| tandem::otlp::SpanIn {
                        trace_id: trace,
                        span_id: [id; 8],
                        parent_span_id: parent.map(|p| [p; 8]),
                        name: format!("s{id}"),
                        start_ns: 1_000_000 * (id as i64 + 1),
                        end_ns: Some(9_000_000),
                        status_code: 1,
                        content: json!({"name": format!("s{id}"), "attributes": [{"key": "mlflow.spanInputs", "value": {"int_value": id}}]}),
                    };
                    let spans = if z % 5 == 0 { vec![span(1, None), span(2, Some(1))] } else { vec![span(3, Some(1))] };
                    drop(tc::log_spans(&w.ctx, &e, spans));
                }
                2 => drop(w.call(tc::start_trace_v3, json!({"trace": {"trace_info": {"trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}}, "request_time": "2026-12-05T03:24:45.724Z", "execution_duration": "0.5s", "state": "OK", "trace_metadata": {"m": "1"}, "tags": {"mlflow.traceName": "t"}}}}))),
                // Deletes are rarer than the rest, so that traces live long enough to be tagged.
                4 if z % 20 == 4 => drop(w.call(tc::delete_traces, json!({"experiment_id": e, "request_ids": [trace_id]}))),
                _ => {
                    drop(w.call(tc::set_trace_tag, json!({"trace_id": trace_id, "key": key, "value": format!("{z}")})));
                    if x % 2 == 1 {
                        drop(w.call(tc::delete_trace_tag, json!({"trace_id": trace_id, "key": key})));
                    }
                }
            }
        }
        // Assessments of a trace (feedback, expectations, overrides, updates, deletes) and its
        // links to runs.
        76 => {
            use tandem::api::assessments as asm;
            let trace_id = tandem::api::traces::trace_id_of(&[y % 4 + 1; 16]);
            let newest = w
                .store
                .read(|tx| tx.query_one("SELECT id FROM genai_objects WHERE workspace = 'default' AND kind = 'assessment' AND parent = ? ORDER BY updated_time DESC, id", &[trace_id.as_str().into()]))
                .unwrap()
                .map(|r| r.text(0))
                .unwrap_or_else(|| "a-none".into());
            let path = json!({"trace_id": trace_id, "assessment_id": newest});
            match z % 6 {
                0 => drop(w.call(asm::create_assessment, json!({"trace_id": trace_id, "assessment": {"assessment_name": key, "source": {"source_type": "HUMAN", "source_id": user}, "feedback": {"value": z}, "rationale": "r"}}))),
                1 => drop(w.call(asm::create_assessment, json!({"trace_id": trace_id, "assessment": {"assessment_name": key, "expectation": {"value": {"facts": [x, y]}}}}))),
                2 => drop(w.call(asm::create_assessment, json!({"trace_id": trace_id, "assessment": {"assessment_name": key, "feedback": {"value": "better"}, "overrides": newest}}))),
                3 => drop(w.call(asm::update_assessment, json!({"trace_id": trace_id, "assessment_id": newest, "assessment": {"rationale": format!("r{x}"), "metadata": {"m": "1"}}, "update_mask": "rationale,metadata"}))),
                4 => drop(w.call(asm::delete_assessment, path)),
                _ => drop(w.call(asm::link_traces_to_run, json!({"trace_ids": [trace_id], "run_id": r}))),
            }
        }
        0 => {
            if let Some(v) = w.call(tr::create_experiment, json!({"name": format!("e{}", x % 16), "tags": [{"key": key, "value": "v"}]})) {
                w.experiments.push(v["experiment_id"].as_str().unwrap().to_owned());
            }
        }
        1 => drop(w.call(tr::update_experiment, json!({"experiment_id": e, "new_name": format!("e{}", y % 16)}))),
        2 => drop(w.call(tr::delete_experiment, json!({"experiment_id": e}))),
        3 => drop(w.call(tr::restore_experiment, json!({"experiment_id": e}))),
        4 => drop(w.call(tr::set_experiment_tag, json!({"experiment_id": e, "key": key, "value": format!("v{z}")}))),
        5 => drop(w.call(tr::delete_experiment_tag, json!({"experiment_id": e, "key": key}))),
        6 | 7 => {
            if let Some(v) = w.call(tr::create_run, json!({"experiment_id": e, "start_time": z as i64, "tags": [{"key": key, "value": "v"}]})) {
                w.runs.push(v["run"]["info"]["run_id"].as_str().unwrap().to_owned());
            }
        }
        8 => drop(w.call(tr::update_run, json!({"run_id": r, "status": (["FINISHED", "FAILED", "KILLED"][y as usize % 3]), "end_time": z as i64, "run_name": if z % 2 == 0 { json!(format!("n{z}")) } else { Value::Null }}))),
        9 => drop(w.call(tr::delete_run, json!({"run_id": r}))),
        10 => drop(w.call(tr::restore_run, json!({"run_id": r}))),
        11 | 12 => drop(w.call(tr::log_metric, json!({"run_id": r, "key": format!("m{}", y % 3), "value": value_of(z), "timestamp": (z % 5) as i64, "step": (y % 4) as i64, "model_id": if z % 3 == 0 { json!(l) } else { Value::Null }}))),
        13 => drop(w.call(tr::log_param, json!({"run_id": r, "key": key, "value": format!("{}", z % 2)}))),
        14 => drop(w.call(tr::set_tag, json!({"run_id": r, "key": if z % 5 == 0 { "mlflow.runName".to_owned() } else { key.clone() }, "value": format!("t{z}")}))),
        15 => drop(w.call(tr::delete_tag, json!({"run_id": r, "key": key}))),
        16 => {
            let metrics: Vec<Value> = (0..(z % 5)).map(|i| json!({"key": format!("m{i}"), "value": value_of(i.wrapping_add(y)), "timestamp": i as i64, "step": (i % 2) as i64})).collect();
            drop(w.call(tr::log_batch, json!({"run_id": r, "metrics": metrics, "params": [{"key": format!("bp{}", y % 3), "value": format!("{}", z % 2)}], "tags": [{"key": key, "value": "b"}]})))
        }
        17 => drop(w.call(tr::log_inputs, json!({"run_id": r, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": {"name": format!("d{}", y % 3), "digest": format!("g{}", z % 2), "source_type": "code", "source": "{}"}}], "models": match &l { Some(id) if z % 2 == 0 => json!([{"model_id": id}]), _ => json!([]) }}))),
        18 => drop(w.call(tr::log_outputs, json!({"run_id": r, "models": match &l { Some(id) => json!([{"model_id": id, "step": z % 3}]), None => json!([]) }}))),
        19 => drop(w.call(tr::log_model_legacy, json!({"run_id": r, "model_json": json!({"flavor": z}).to_string()}))),
        20 => {
            if let Some(v) = w.call(lm::create, json!({"experiment_id": e, "name": format!("lm{y}"), "source_run_id": if z % 2 == 0 { json!(r) } else { Value::Null }, "params": [{"key": "p", "value": "1"}], "tags": [{"key": key, "value": "v"}]})) {
                w.logged_models.push(v["model"]["info"]["model_id"].as_str().unwrap().to_owned());
            }
        }
        21 => drop(w.call(lm::finalize, json!({"model_id": l, "status": (["LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"][z as usize % 2])}))),
        22 => drop(w.call(lm::delete, json!({"model_id": l}))),
        23 => drop(w.call(lm::set_tags, json!({"model_id": l, "tags": [{"key": key, "value": format!("{z}")}]}))),
        24 => drop(w.call(lm::delete_tag, json!({"model_id": l, "tag_key": key}))),
        25 => drop(w.call(lm::log_params, json!({"model_id": l, "params": [{"key": key, "value": format!("{z}")}]}))),
        26 => {
            let name = format!("model{}", x % 6);
            if w.call(reg::create_registered_model, json!({"name": name, "tags": [{"key": key, "value": "v"}], "description": "d"})).is_some() {
                w.models.push(name);
            }
        }
        27 => {
            let new = format!("model{}", y % 6);
            if w.call(reg::rename_registered_model, json!({"name": m, "new_name": new})).is_some() {
                w.models.push(new);
            }
        }
        28 => drop(w.call(reg::update_registered_model, json!({"name": m, "description": format!("d{z}")}))),
        29 => drop(w.call(reg::delete_registered_model, json!({"name": m}))),
        30 => drop(w.call(reg::set_registered_model_tag, json!({"name": m, "key": key, "value": format!("{z}")}))),
        31 => drop(w.call(reg::delete_registered_model_tag, json!({"name": m, "key": key}))),
        32 => drop(w.call(reg::set_alias, json!({"name": m, "alias": format!("a{}", z % 3), "version": format!("{}", y % 3 + 1)}))),
        33 => drop(w.call(reg::delete_alias, json!({"name": m, "alias": format!("a{}", z % 3)}))),
        34 | 35 => {
            let body = match (&l, &r, z % 3) {
                (Some(id), _, 0) => json!({"name": m, "source": format!("models:/{id}"), "model_id": id, "tags": [{"key": key, "value": "v"}]}),
                (_, Some(run), 1) => json!({"name": m, "source": format!("runs:/{run}/model"), "run_id": run, "tags": [{"key": key, "value": "v"}]}),
                _ => json!({"name": m, "source": "s3://bucket/elsewhere", "tags": [{"key": key, "value": "v"}]}),
            };
            drop(w.call(reg::create_model_version, body))
        }
        36 => drop(w.call(reg::update_model_version, json!({"name": m, "version": format!("{}", y % 3 + 1), "description": format!("{z}")}))),
        37 => drop(w.call(reg::transition_stage, json!({"name": m, "version": format!("{}", y % 3 + 1), "stage": (["Staging", "Production", "Archived", "None"][z as usize % 4]), "archive_existing_versions": z % 2 == 0}))),
        38 => match z % 4 {
            0 => drop(w.call(reg::delete_model_version, json!({"name": m, "version": format!("{}", y % 3 + 1)}))),
            1 => drop(w.call(reg::set_model_version_tag, json!({"name": m, "version": format!("{}", y % 3 + 1), "key": key, "value": "v"}))),
            2 => drop(w.call(reg::delete_model_version_tag, json!({"name": m, "version": format!("{}", y % 3 + 1), "key": key}))),
            _ => {
                // Artifact events, as the upload and delete endpoints write them.
                let path = format!("{}/f{}", e.clone().unwrap_or_default(), y % 3);
                let op = if y % 2 == 0 { Op::PutArtifact { path, size: z as u64, sha256: format!("{z:064x}") } } else { Op::DeleteArtifacts { path } };
                w.store.write("default", "prop", |_| Ok(Decision::change((), op.clone()))).unwrap();
            }
        },
        40 => {
            // Retention changes; purge protection only rarely, since it forbids early purges.
            drop(tandem::retention::set(&w.store, "default", "prop", Some(7 + (z as u32 % 84)), (z == 255 && y % 4 == 0).then_some(true)))
        }
        // Purges now and then, so that undeletes (below) also find something to bring back.
        41 if z % 4 == 0 => drop(tandem::retention::purge(&w.store, "default", "prop", true)),
        41 => {}
        42 => drop(w.call(tandem::api::retention::undelete, json!({"workspace_name": "default", "model_id": l}))),
        43 => match z % 2 {
            0 => drop(w.call(tandem::api::retention::undelete, json!({"workspace_name": "default", "name": m}))),
            _ => {
                for name in w.models.clone() {
                    for v in 1..=4 {
                        drop(w.call(tandem::api::retention::undelete, json!({"workspace_name": "default", "name": name, "version": format!("{v}")})));
                    }
                }
            }
        },
        44 if z % 2 == 0 => drop(w.call(tandem::api::retention::undelete, json!({"workspace_name": "scratch", "workspace": true}))),
        44 => {}
        45 => drop(tandem::retention::purge(&w.store, "scratch", "prop", true)),
        46 => {
            // In-place restore to an earlier event, rarely: it undoes most of the workload.
            if z % 8 == 0 {
                let head = w.store.read(|tx| queries::log_head(tx, "default")).unwrap().map(|h| h.seq).unwrap_or(0);
                if head > 2 {
                    let seq = head - 1 - (y as u64 % (head - 2));
                    w.store.write("default", "prop", |_| Ok(Decision::change((), Op::RewindWorkspace { seq, time: 1 }))).unwrap();
                }
            }
        }
        _ => {
            // Workspace administration on a second workspace.
            let other = Ctx { workspace: "other".into(), ..w.ctx.clone() };
            let req = |v: Value| Req::from_json(v).unwrap();
            match z % 4 {
                0 => drop(ws::create(&w.ctx, &req(json!({"name": "scratch"})))),
                1 => drop(ws::update(&w.ctx, &req(json!({"workspace_name": "scratch", "description": format!("{y}")})))),
                2 => drop(ws::delete(&w.ctx, &req(json!({"workspace_name": "scratch", "mode": "CASCADE"})))),
                _ => drop(tr::create_experiment(&other, &req(json!({"name": format!("o{y}")})))),
            }
        }
    }
}

/// The kinds of operation in every workspace's log so far.
fn produced_ops(w: &World) -> BTreeSet<usize> {
    let workspaces: Vec<String> = w
        .store
        .read(|tx| {
            Ok(tx
                .query("SELECT workspace FROM log_heads", &[])?
                .iter()
                .map(|r| r.text(0))
                .collect())
        })
        .unwrap();
    workspaces
        .iter()
        .flat_map(|ws| events_of(&w.store, ws))
        .map(|e| op_index(&e.decode_op().unwrap()))
        .collect()
}

fn events_of(store: &Store, ws: &str) -> Vec<tandem_core::Event> {
    store
        .read(|tx| queries::changes(tx, ws, 0, usize::MAX >> 1))
        .unwrap()
}

/// Replays every workspace's log into an empty store and compares the two dumps.
fn assert_replay_matches(w: &World) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let workspaces: Vec<String> = w
        .store
        .read(|tx| {
            Ok(tx
                .query("SELECT workspace FROM log_heads ORDER BY workspace", &[])?
                .iter()
                .map(|r| r.text(0))
                .collect())
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fresh = open_store(w.meta, dir.path());
    for ws in &workspaces {
        let events = events_of(&w.store, ws);
        for e in &events {
            seen.insert(op_index(&e.decode_op().unwrap()));
        }
        // Replay in uneven batches, as a replica catching up would.
        for chunk in events.chunks(7) {
            fresh.replay(ws, chunk).unwrap();
        }
        let live = w.store.read(|tx| queries::dump(tx, ws)).unwrap();
        let rebuilt = fresh.read(|tx| queries::dump(tx, ws)).unwrap();
        assert_eq!(
            live, rebuilt,
            "{:?} workspace {ws}: replayed state differs from live state",
            w.meta
        );
        assert_eq!(
            w.store.read(|tx| queries::log_head(tx, ws)).unwrap(),
            fresh.read(|tx| queries::log_head(tx, ws)).unwrap()
        );
    }
    seen
}

fn action() -> impl Strategy<Value = Action> {
    (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
        .prop_map(|(a, b, c, d)| Action::Api(a, b, c, d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_log_rebuilds_the_live_state(actions in proptest::collection::vec(action(), 20..150)) {
        for meta in metadata_stores() {
            let mut w = World::new(meta);
            for a in &actions {
                run_action(&mut w, a);
            }
            assert_replay_matches(&w);
        }
    }
}

/// A long deterministic workload that reaches every kind of operation, so the property above
/// is known to have been exercised on each.
#[test]
fn replay_covers_every_kind_of_change() {
    for meta in metadata_stores() {
        replay_covers_every_kind_of_change_on(meta);
    }
}

fn replay_covers_every_kind_of_change_on(meta: Meta) {
    let mut w = World::new(meta);
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed & 0xff) as u8
    };
    // Set-up so every later action has targets.
    for kind in [0u8, 6, 6, 20, 26, 34, 34, 34] {
        run_action(&mut w, &Action::Api(kind, 1, 1, 1));
    }
    // Restores need their object deleted and not yet purged: once each, deterministically
    // (a logged model deleted and brought back; a model version likewise).
    for a in [
        (22u8, 1u8, 1u8, 1u8),
        (42, 1, 1, 1),
        (38, 1, 1, 0),
        (43, 1, 1, 1),
        // A trace's life once, deterministically: spans, the client's info, a tag set and
        // deleted, the trace deleted.
        (75, 1, 1, 0),
        (75, 1, 1, 2),
        (75, 1, 1, 3),
        (75, 1, 1, 4),
        // A gateway endpoint's life once: its secret, model definition, endpoint, deleted.
        (74, 1, 1, 0),
        (74, 1, 1, 2),
        (74, 1, 1, 3),
        (74, 1, 1, 5),
        // Assessments on a live trace: one, its override, an update, the override deleted
        // (the first valid again), a link to a run.
        (75, 1, 2, 0),
        (76, 1, 2, 0),
        (76, 1, 2, 2),
        (76, 1, 2, 3),
        (76, 1, 2, 4),
        (76, 1, 2, 5),
    ] {
        run_action(&mut w, &Action::Api(a.0, a.1, a.2, a.3));
    }
    // Rounds of the whole workload until every kind of operation has been produced (some
    // need a rare sequence: a delete, then a restore of the same object before a purge), up to
    // a bound; then the live state is compared with its replay.
    let mut i = 0u32;
    while i < 20_000 {
        for _ in 0..2000 {
            let a = Action::Api((i % ACTIONS as u32) as u8, next(), next(), next());
            run_action(&mut w, &a);
            i += 1;
        }
        let produced = produced_ops(&w);
        if (0..OP_COUNT).all(|k| produced.contains(&k)) {
            break;
        }
    }
    let seen = assert_replay_matches(&w);
    let missing: Vec<usize> = (0..OP_COUNT).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "operations never produced by the workload: {missing:?}"
    );
}

#[test]
fn replay_refuses_a_tampered_or_gapped_log() {
    for meta in metadata_stores() {
        replay_refuses_on(meta);
    }
}

fn replay_refuses_on(meta: Meta) {
    let mut w = World::new(meta);
    for kind in [0u8, 6, 11, 13, 14] {
        run_action(&mut w, &Action::Api(kind, 0, 0, 0));
    }
    let events = events_of(&w.store, "default");
    let dir = tempfile::tempdir().unwrap();
    let fresh = open_store(meta, dir.path());
    let mut tampered = events.clone();
    let last = tampered.len() - 1;
    tampered[last].payload.push(' ');
    let err = fresh.replay("default", &tampered).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    // Nothing of the refused batch was applied.
    assert_eq!(
        fresh.read(|tx| queries::log_head(tx, "default")).unwrap(),
        None
    );
    let mut gapped = events.clone();
    gapped.remove(2);
    assert!(fresh.replay("default", &gapped).is_err());
    fresh.replay("default", &events).unwrap();
    assert_eq!(
        fresh.read(|tx| queries::dump(tx, "default")).unwrap(),
        w.store.read(|tx| queries::dump(tx, "default")).unwrap()
    );
}

/// A clock the test moves by hand, for retention.
struct ManualClock(std::sync::atomic::AtomicU64);
impl tandem::store::Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn deleted_objects_are_restorable_until_their_retention_ends_then_purged() {
    for meta in metadata_stores() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn tandem::store::Backend> = match meta {
            Meta::Sqlite => {
                Arc::new(Sqlite::open(&dir.path().join("m.sqlite"), Durability::Normal).unwrap())
            }
            Meta::Postgres => Arc::new(Postgres::connect(&fresh_postgres()).unwrap()),
        };
        let day = 86_400_000u64;
        let clock = Arc::new(ManualClock(std::sync::atomic::AtomicU64::new(
            1_800_000_000_000,
        )));
        let store = Store::new(backend, clock.clone(), "test").unwrap();
        tandem::api::workspaces::ensure(&store, "default", "d", "t").unwrap();
        let artifacts = tandem::artifacts::Artifacts::folder(&dir.path().join("a")).unwrap();
        let ctx = Ctx {
            store: store.clone(),
            artifacts,
            workspace: "default".into(),
            principal: "t".into(),
            require_live: true,
            authenticated: false,
            compute: Default::default(),
            vault: None,
        };
        let req = |v: Value| Req::from_json(v).unwrap();
        use tandem::api::{retention as api_retention, tracking};
        let exp = tracking::create_experiment(&ctx, &req(json!({"name": "e"}))).unwrap()
            ["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let run_in_exp = tracking::create_run(&ctx, &req(json!({"experiment_id": exp}))).unwrap()
            ["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let lone = tracking::create_run(&ctx, &req(json!({"experiment_id": "0"}))).unwrap()["run"]
            ["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let kept = tracking::create_run(&ctx, &req(json!({"experiment_id": "0"}))).unwrap()["run"]
            ["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        tracking::log_param(
            &ctx,
            &req(json!({"run_id": lone, "key": "p", "value": "1"})),
        )
        .unwrap();
        // A trace deleted on its own (with an assessment), one in the experiment deleted.
        let span = |t: u8| tandem::otlp::SpanIn {
            trace_id: [t; 16],
            span_id: [1; 8],
            parent_span_id: None,
            name: "root".into(),
            start_ns: 1_000_000,
            end_ns: Some(2_000_000),
            status_code: 1,
            content: json!({"name": "root"}),
        };
        tandem::api::traces::log_spans(&ctx, "0", vec![span(7)]).unwrap();
        tandem::api::traces::log_spans(&ctx, &exp, vec![span(8)]).unwrap();
        let lone_trace = tandem::api::traces::trace_id_of(&[7; 16]);
        tandem::api::assessments::create_assessment(&ctx, &req(json!({"trace_id": lone_trace, "assessment": {"assessment_name": "a", "feedback": {"value": 1}}}))).unwrap();
        tandem::api::traces::delete_traces(
            &ctx,
            &req(json!({"experiment_id": "0", "request_ids": [lone_trace]})),
        )
        .unwrap();
        // The experiment's labeling (a question, a queue holding its trace) and an issue go
        // with it.
        use tandem::api::{issues, labeling};
        labeling::create_label_schema(&ctx, &req(json!({"experiment_id": exp, "name": "ok?", "type": "FEEDBACK", "input": {"text": {}}}))).unwrap();
        let queue = labeling::create_review_queue(
            &ctx,
            &req(json!({"experiment_id": exp, "name": "q", "queue_type": "CUSTOM"})),
        )
        .unwrap()["review_queue"]["queue_id"]
            .clone();
        labeling::add_items_to_review_queue(&ctx, &req(json!({"queue_id": queue, "item_ids": [tandem::api::traces::trace_id_of(&[8; 16])]}))).unwrap();
        issues::create_issue(
            &ctx,
            &req(json!({"experiment_id": exp, "name": "i", "description": "d"})),
        )
        .unwrap();
        tracking::delete_experiment(&ctx, &req(json!({"experiment_id": exp}))).unwrap();
        tracking::delete_run(&ctx, &req(json!({"run_id": lone}))).unwrap();
        tracking::delete_run(&ctx, &req(json!({"run_id": kept}))).unwrap();
        // Undelete within retention.
        api_retention::undelete(
            &ctx,
            &req(json!({"workspace_name": "default", "run_id": kept})),
        )
        .unwrap();
        // Default retention is 14 days: nothing goes on day 13, everything deleted on day 15.
        clock
            .0
            .fetch_add(13 * day, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            tandem::retention::purge(&store, "default", "t", false).unwrap(),
            tandem::retention::Purged::default(),
            "{meta:?}"
        );
        clock
            .0
            .fetch_add(2 * day, std::sync::atomic::Ordering::SeqCst);
        let purged = tandem::retention::purge(&store, "default", "t", false).unwrap();
        assert_eq!(
            (purged.experiments, purged.runs, purged.traces),
            (
                vec![exp.clone()],
                vec![lone.clone()],
                vec![lone_trace.clone()]
            ),
            "{meta:?}"
        );
        // Both traces are gone for good, with their spans and assessment.
        for table in ["traces", "trace_spans", "trace_tags", "genai_objects"] {
            let n = store
                .read(|tx| tx.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]))
                .unwrap()
                .map(|r| r.int(0));
            assert_eq!(n, Some(0), "{meta:?}: {table} after the purge");
        }
        for (id, what) in [
            (&run_in_exp, "run of the purged experiment"),
            (&lone, "purged run"),
        ] {
            assert!(
                tracking::get_run(&ctx, &req(json!({"run_id": id}))).is_err(),
                "{meta:?}: {what} still there"
            );
        }
        assert!(tracking::get_experiment(&ctx, &req(json!({"experiment_id": exp}))).is_err());
        assert!(tracking::get_run(&ctx, &req(json!({"run_id": kept}))).is_ok());
        // A purged object cannot be undeleted.
        assert!(api_retention::undelete(
            &ctx,
            &req(json!({"workspace_name": "default", "run_id": lone}))
        )
        .is_err());
        // Purge protection: on, then no early purge, no switching off, no shortening.
        tracking::delete_run(&ctx, &req(json!({"run_id": kept}))).unwrap();
        tandem::retention::set(&store, "default", "t", Some(30), Some(true)).unwrap();
        assert!(
            tandem::retention::purge(&store, "default", "t", true).is_err(),
            "{meta:?}: early purge under protection"
        );
        assert!(tandem::retention::set(&store, "default", "t", None, Some(false)).is_err());
        assert!(tandem::retention::set(&store, "default", "t", Some(7), None).is_err());
        clock
            .0
            .fetch_add(29 * day, std::sync::atomic::Ordering::SeqCst);
        assert!(tandem::retention::purge(&store, "default", "t", false)
            .unwrap()
            .runs
            .is_empty());
        clock
            .0
            .fetch_add(2 * day, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            tandem::retention::purge(&store, "default", "t", false)
                .unwrap()
                .runs,
            vec![kept.clone()]
        );
        // Every purge is in the log: replaying it gives the same state.
        assert_replay_matches(&World {
            meta,
            store: store.clone(),
            ctx: ctx.clone(),
            _dir: dir,
            experiments: vec![],
            runs: vec![],
            logged_models: vec![],
            models: vec![],
        });
    }
}
