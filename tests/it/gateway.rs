//! MLflow's AI gateway on every metadata store: its objects are change-log state (replayed,
//! deleted softly for secrets, gone with a purge), no secret value is ever stored in clear,
//! and every route refuses bad input with MLflow's errors, writing nothing.

use crate::support::{metadata_stores, Meta, TestServer};
use serde_json::{json, Value};

const G: &str = "/api/3.0/mlflow/gateway";
const KEY: &str = "sk-gateway-CLEARTEXT-51d0e2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_objects_are_change_log_state() {
    for meta in metadata_stores() {
        gateway_on(meta).await;
    }
}

async fn gateway_on(meta: Meta) {
    let s = TestServer::start_on(meta, None).await;
    let secret = s
        .ok(
            "POST",
            &format!("{G}/secrets/create"),
            json!({"secret_name": "openai key", "secret_value": {"api_key": KEY}, "provider": "openai"}),
        )
        .await;
    let sid = secret["secret"]["secret_id"].as_str().unwrap().to_owned();
    assert_eq!(secret["secret"]["masked_values"]["api_key"], "sk-...d0e2");
    let def = s
        .ok(
            "POST",
            &format!("{G}/model-definitions/create"),
            json!({"name": "gpt", "secret_id": sid, "provider": "openai", "model_name": "gpt-4o-mini"}),
        )
        .await;
    let did = def["model_definition"]["model_definition_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cfg = json!([{"model_definition_id": did, "linkage_type": "PRIMARY"}]);
    for name in ["chat", "chat-b"] {
        s.ok(
            "POST",
            &format!("{G}/endpoints/create"),
            json!({"name": name, "model_configs": cfg}),
        )
        .await;
    }
    // The tracing experiment MLflow makes for an endpoint, made in the same write.
    let exp = s
        .ok(
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=gateway%2Fchat",
            json!({}),
        )
        .await;
    assert_eq!(exp["experiment"]["name"], "gateway/chat");
    let chat = s
        .ok("GET", &format!("{G}/endpoints/get?name=chat"), json!({}))
        .await;
    let eid = chat["endpoint"]["endpoint_id"].as_str().unwrap().to_owned();
    // Renaming onto a taken name: a clear error (MLflow's server answers its SQL error).
    let (status, body) = s
        .call(
            "POST",
            &format!("{G}/endpoints/update"),
            Some(json!({"endpoint_id": eid, "name": "chat-b"})),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );
    // A new value is a new vault version; the tandem API sees the secret and its versions.
    s.ok(
        "POST",
        &format!("{G}/secrets/update"),
        json!({"secret_id": sid, "secret_value": {"api_key": "sk-rotated-000011112222"}}),
    )
    .await;
    let vault = s
        .ok(
            "GET",
            "/api/tandem/v1/workspaces/default/secrets/openai%20key",
            json!({}),
        )
        .await;
    assert_eq!(vault["secret"]["version"], 2, "{vault}");
    let old = s
        .ok(
            "GET",
            "/api/tandem/v1/workspaces/default/secrets/openai%20key/value?version=1",
            json!({}),
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(old["value"].as_str().unwrap()).unwrap()["api_key"],
        KEY
    );

    // MLflow's delete is the vault's soft delete: the definition reads as orphaned until the
    // secret is recovered.
    s.ok(
        "DELETE",
        &format!("{G}/secrets/delete"),
        json!({"secret_id": sid}),
    )
    .await;
    let orphan = s
        .ok(
            "GET",
            &format!("{G}/model-definitions/get?model_definition_id={did}"),
            json!({}),
        )
        .await;
    assert!(
        orphan["model_definition"].get("secret_id").is_none(),
        "{orphan}"
    );
    s.ok(
        "POST",
        "/api/tandem/v1/workspaces/default/secrets/openai%20key/recover",
        json!({}),
    )
    .await;
    let back = s
        .ok(
            "GET",
            &format!("{G}/model-definitions/get?model_definition_id={did}"),
            json!({}),
        )
        .await;
    assert_eq!(back["model_definition"]["secret_id"], sid.as_str());
    let listed = s.ok("GET", &format!("{G}/secrets/list"), json!({})).await;
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 1);

    // No value in clear anywhere the store keeps things; the gateway's state is in the dump
    // (what replication and restore compare) and in the log.
    let store = s.store.clone();
    let (dump, log) = tokio::task::spawn_blocking(move || {
        let dump = store
            .read(|tx| tandem::store::queries::dump(tx, "default"))
            .unwrap()
            .to_string();
        let log = serde_json::to_string(
            &store
                .read(|tx| tandem::store::queries::changes(tx, "default", 0, 1 << 20))
                .unwrap(),
        )
        .unwrap();
        (dump, log)
    })
    .await
    .unwrap();
    for (what, text) in [("state tables", &dump), ("change log", &log)] {
        assert!(!text.contains(KEY), "{what} holds a value in clear");
        assert!(
            !text.contains("sk-rotated-000011112222"),
            "{what} holds a value in clear"
        );
    }
    assert!(dump.contains("gateway_objects") && dump.contains("chat-b"));
    assert!(log.contains("PutGatewayObject"));

    // A no-delete lock on the workspace refuses the gateway's deletes (its secrets' too) and
    // lets other changes through.
    let lock = s
        .ok(
            "POST",
            "/api/tandem/v1/access/locks",
            json!({"scope": "workspaces/default", "kind": "no-delete", "reason": "audit"}),
        )
        .await;
    for (path, body) in [
        ("endpoints/delete", json!({"endpoint_id": eid})),
        ("secrets/delete", json!({"secret_id": sid})),
        (
            "model-definitions/delete",
            json!({"model_definition_id": did}),
        ),
    ] {
        let (status, body) = s.call("DELETE", &format!("{G}/{path}"), Some(body)).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    s.ok(
        "POST",
        &format!("{G}/endpoints/set-tag"),
        json!({"endpoint_id": eid, "key": "k", "value": "v"}),
    )
    .await;
    let lock_id = lock["lock"]["id"].as_str().unwrap().to_owned();
    s.ok(
        "DELETE",
        &format!("/api/tandem/v1/access/locks/{lock_id}"),
        json!({}),
    )
    .await;
    s.ok(
        "DELETE",
        &format!("{G}/endpoints/delete"),
        json!({"endpoint_id": eid}),
    )
    .await;
    s.stop().await;
}

/// Bad input for every gateway route (chained into bad_input.rs).
pub fn bad_input_cases() -> Vec<crate::support::Case> {
    const IPV: (u16, &str) = (400, "INVALID_PARAMETER_VALUE");
    const RDNE: (u16, &str) = (404, "RESOURCE_DOES_NOT_EXIST");
    let key = json!({"api_key": "sk-xxxxxxxxxxxx"});
    let big = json!({"api_key": "x".repeat(tandem::api::secrets::MAX_VALUE_BYTES)});
    let cfg = json!([{"model_definition_id": "d-nope", "linkage_type": "PRIMARY"}]);
    let p = |s: &str| format!("{G}/{s}");
    let cases: Vec<(&str, String, Value, (u16, &str))> = vec![
        (
            "POST",
            p("secrets/create"),
            json!({"secret_value": key}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": "not-a-map"}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": {"api_key": 5}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": big}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": {"base_url": "https://8.8.8.8"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "provider": "no-such-provider"}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "auth_config": {"model_list": "x"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "auth_config": {"api_base": "http://8.8.8.8/v1"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "auth_config": {"api_base": "https://127.0.0.1/v1"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "auth_config": {"api_base": "https://[::1]/v1"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n", "secret_value": key, "auth_config": {"api_base": "not a url"}}),
            IPV,
        ),
        (
            "POST",
            p("secrets/create"),
            json!({"secret_name": "n\u{7}", "secret_value": key}),
            IPV,
        ),
        ("GET", p("secrets/get"), json!({}), IPV),
        (
            "GET",
            p("secrets/get"),
            json!({"secret_id": "s-nope"}),
            RDNE,
        ),
        ("POST", p("secrets/update"), json!({}), IPV),
        (
            "POST",
            p("secrets/update"),
            json!({"secret_id": "s-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("secrets/update"),
            json!({"secret_id": "s-nope", "auth_config": {"fallbacks": "x"}}),
            IPV,
        ),
        ("DELETE", p("secrets/delete"), json!({}), IPV),
        (
            "DELETE",
            p("secrets/delete"),
            json!({"secret_id": "s-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("model-definitions/create"),
            json!({"name": "m"}),
            IPV,
        ),
        (
            "POST",
            p("model-definitions/create"),
            json!({"name": "m", "secret_id": "s-nope", "provider": "openai", "model_name": "x"}),
            RDNE,
        ),
        (
            "POST",
            p("model-definitions/create"),
            json!({"name": "m", "secret_id": "s-nope", "provider": "nope", "model_name": "x"}),
            IPV,
        ),
        ("GET", p("model-definitions/get"), json!({}), IPV),
        (
            "GET",
            p("model-definitions/get"),
            json!({"model_definition_id": "d-nope"}),
            RDNE,
        ),
        ("POST", p("model-definitions/update"), json!({}), IPV),
        (
            "POST",
            p("model-definitions/update"),
            json!({"model_definition_id": "d-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("model-definitions/update"),
            json!({"model_definition_id": "d-nope", "provider": "nope"}),
            IPV,
        ),
        ("DELETE", p("model-definitions/delete"), json!({}), IPV),
        (
            "DELETE",
            p("model-definitions/delete"),
            json!({"model_definition_id": "d-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"model_configs": cfg}),
            IPV,
        ),
        ("POST", p("endpoints/create"), json!({"name": "e"}), IPV),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": []}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "bad name", "model_configs": cfg}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": [{"model_definition_id": "d-nope"}]}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": [{"model_definition_id": "d-nope", "linkage_type": "SIDEWAYS"}]}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": cfg}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": cfg, "experiment_id": "abc"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": cfg, "routing_strategy": "RANDOM"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": cfg, "tandem_regions": {"east": "http://8.8.8.8/v1"}}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/create"),
            json!({"name": "e", "model_configs": cfg, "tandem_regions": {"east": "https://10.1.1.1/v1"}}),
            IPV,
        ),
        ("GET", p("endpoints/get"), json!({}), IPV),
        (
            "GET",
            p("endpoints/get"),
            json!({"endpoint_id": "e-nope"}),
            RDNE,
        ),
        ("POST", p("endpoints/update"), json!({}), IPV),
        (
            "POST",
            p("endpoints/update"),
            json!({"endpoint_id": "e-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/update"),
            json!({"endpoint_id": "e-nope", "name": "bad name"}),
            IPV,
        ),
        ("DELETE", p("endpoints/delete"), json!({}), IPV),
        (
            "DELETE",
            p("endpoints/delete"),
            json!({"endpoint_id": "e-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/models/attach"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/models/attach"),
            json!({"endpoint_id": "e-nope", "model_config": {"model_definition_id": "d-nope", "linkage_type": "PRIMARY"}}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/models/detach"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/models/detach"),
            json!({"endpoint_id": "e-nope", "model_definition_id": "d-nope"}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/bindings/create"),
            json!({"endpoint_id": "e-nope", "resource_id": "r"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/bindings/create"),
            json!({"endpoint_id": "e-nope", "resource_type": "notebook", "resource_id": "r"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/bindings/create"),
            json!({"endpoint_id": "e-nope", "resource_type": "scorer", "resource_id": "r"}),
            RDNE,
        ),
        (
            "DELETE",
            p("endpoints/bindings/delete"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "DELETE",
            p("endpoints/bindings/delete"),
            json!({"endpoint_id": "e-nope", "resource_type": "scorer", "resource_id": "r"}),
            RDNE,
        ),
        (
            "POST",
            p("endpoints/set-tag"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "POST",
            p("endpoints/set-tag"),
            json!({"endpoint_id": "e-nope", "key": "k", "value": "v"}),
            RDNE,
        ),
        (
            "DELETE",
            p("endpoints/delete-tag"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "DELETE",
            p("endpoints/delete-tag"),
            json!({"endpoint_id": "e-nope", "key": "k"}),
            RDNE,
        ),
        ("POST", p("budgets/create"), json!({}), IPV),
        (
            "POST",
            p("budgets/create"),
            json!({"budget_unit": "USD", "budget_amount": 1.0, "duration": {"unit": "DAYS", "value": 0}, "target_scope": "GLOBAL", "budget_action": "ALERT"}),
            IPV,
        ),
        (
            "POST",
            p("budgets/create"),
            json!({"budget_unit": "EUR", "budget_amount": 1.0, "duration": {"unit": "DAYS", "value": 1}, "target_scope": "GLOBAL", "budget_action": "ALERT"}),
            IPV,
        ),
        (
            "POST",
            p("budgets/create"),
            json!({"budget_unit": "USD", "budget_amount": 1.0, "duration": {"unit": "DAYS", "value": 1}, "target_scope": "ENDPOINT", "budget_action": "ALERT"}),
            IPV,
        ),
        (
            "POST",
            p("budgets/create"),
            json!({"budget_unit": "USD", "budget_amount": 1.0, "duration": {"unit": "DAYS", "value": 1}, "target_scope": "ENDPOINT", "target_value": "e-nope", "budget_action": "ALERT"}),
            RDNE,
        ),
        ("GET", p("budgets/get"), json!({}), IPV),
        (
            "GET",
            p("budgets/get"),
            json!({"budget_policy_id": "bp-nope"}),
            RDNE,
        ),
        ("POST", p("budgets/update"), json!({}), IPV),
        (
            "POST",
            p("budgets/update"),
            json!({"budget_policy_id": "bp-nope"}),
            RDNE,
        ),
        ("DELETE", p("budgets/delete"), json!({}), IPV),
        (
            "DELETE",
            p("budgets/delete"),
            json!({"budget_policy_id": "bp-nope"}),
            RDNE,
        ),
        ("GET", p("budgets/list"), json!({"max_results": "-1"}), IPV),
        (
            "GET",
            p("budgets/list"),
            json!({"max_results": "50001"}),
            IPV,
        ),
        (
            "GET",
            p("budgets/list"),
            json!({"page_token": "not-a-token"}),
            IPV,
        ),
        ("POST", p("guardrails/create"), json!({"name": "g"}), IPV),
        (
            "POST",
            p("guardrails/create"),
            json!({"name": "g", "scorer_id": "sc", "scorer_version": 1, "stage": "DURING", "action": "VALIDATION"}),
            IPV,
        ),
        (
            "POST",
            p("guardrails/create"),
            json!({"name": "g", "scorer_id": "sc", "scorer_version": 1, "stage": "BEFORE", "action": "VALIDATION"}),
            RDNE,
        ),
        ("GET", p("guardrails/get"), json!({}), IPV),
        (
            "GET",
            p("guardrails/get"),
            json!({"guardrail_id": "gr-nope"}),
            RDNE,
        ),
        ("DELETE", p("guardrails/delete"), json!({}), IPV),
        (
            "DELETE",
            p("guardrails/delete"),
            json!({"guardrail_id": "gr-nope"}),
            RDNE,
        ),
        (
            "GET",
            p("guardrails/list"),
            json!({"max_results": "-1"}),
            IPV,
        ),
        (
            "POST",
            p("guardrails/add-to-endpoint"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "POST",
            p("guardrails/add-to-endpoint"),
            json!({"endpoint_id": "e-nope", "guardrail_id": "gr-nope"}),
            RDNE,
        ),
        (
            "DELETE",
            p("guardrails/remove-from-endpoint"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "DELETE",
            p("guardrails/remove-from-endpoint"),
            json!({"endpoint_id": "e-nope", "guardrail_id": "gr-nope"}),
            RDNE,
        ),
        ("GET", p("guardrails/list-for-endpoint"), json!({}), IPV),
        (
            "GET",
            p("guardrails/list-for-endpoint"),
            json!({"endpoint_id": "e-nope"}),
            RDNE,
        ),
        (
            "PATCH",
            p("guardrails/update-config"),
            json!({"endpoint_id": "e-nope"}),
            IPV,
        ),
        (
            "PATCH",
            p("guardrails/update-config"),
            json!({"endpoint_id": "e-nope", "guardrail_id": "gr-nope"}),
            RDNE,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/connections/nobody/resolve".into(),
            json!({}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/default/connections/nobody/resolve".into(),
            json!({}),
            RDNE,
        ),
        ("GET", p("provider-config"), json!({}), IPV),
        (
            "GET",
            p("provider-config"),
            json!({"provider": "no-such-provider"}),
            IPV,
        ),
    ];
    crate::support::static_cases(cases)
}
