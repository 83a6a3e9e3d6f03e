"""MLflow's AI gateway against tandem, through the stock client's own REST store (every gateway
method of `RestGatewayStoreMixin`), and the invocation routes against a local fake
OpenAI-compatible provider: unary and streamed chat, embeddings, the OpenAI passthrough
routes, the provider's errors passed on, fallbacks, bounded timeouts and bad input. No test
reaches the internet: MLflow's own switches let the endpoints point at loopback."""

import json
import os
import tempfile
import time

import pytest
import requests

from conftest import Server
from fake_openai import FakeOpenAI

GATEWAY_ENV = {
    "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
    "TANDEM_GATEWAY_TIMEOUT_SECS": "3",
}


@pytest.fixture(scope="module")
def gw():
    saved = {k: os.environ.get(k) for k in GATEWAY_ENV}
    os.environ.update(GATEWAY_ENV)
    fake = FakeOpenAI()
    with tempfile.TemporaryDirectory() as data:
        s = Server(data)
        try:
            yield s, fake
        finally:
            s.stop()
            fake.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(autouse=True)
def tracking():
    yield


def rest_store(url):
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.utils.rest_utils import MlflowHostCreds

    return RestStore(lambda: MlflowHostCreds(url))


def endpoint_for(store, fake, name, key=None, provider="openai", model="gpt-4o-mini"):
    from mlflow.entities import GatewayEndpointModelConfig
    from mlflow.entities.gateway_endpoint import GatewayModelLinkageType

    secret = store.create_gateway_secret(f"{name}-key", {"api_key": key or fake.key}, provider=provider, auth_config={"api_base": fake.url})
    d = store.create_gateway_model_definition(f"{name}-model", secret.secret_id, provider, model)
    return store.create_gateway_endpoint(name, [GatewayEndpointModelConfig(d.model_definition_id, GatewayModelLinkageType.PRIMARY)])


def test_every_gateway_method_of_the_client_round_trips(gw):
    from mlflow.entities import GatewayEndpointModelConfig, GatewayEndpointTag
    from mlflow.entities.gateway_budget_policy import BudgetAction, BudgetDuration, BudgetDurationUnit, BudgetTargetScope, BudgetUnit
    from mlflow.entities.gateway_endpoint import GatewayModelLinkageType, GatewayResourceType
    from mlflow.exceptions import MlflowException

    s, fake = gw
    store = rest_store(s.url)
    secret = store.create_gateway_secret("rt-key", {"api_key": "sk-roundtrip-0123456789"}, provider="openai", auth_config={"api_base": fake.url}, created_by="alice")
    assert secret.masked_values == {"api_key": "sk-...6789"}
    assert secret.auth_config == {"api_base": fake.url} and secret.created_by == "alice"
    assert store.get_secret_info(secret_id=secret.secret_id).secret_name == "rt-key"
    updated = store.update_gateway_secret(secret.secret_id, secret_value={"api_key": "sk-rotated-9999888877"}, updated_by="bob")
    assert updated.masked_values == {"api_key": "sk-...8877"} and updated.last_updated_by == "bob"
    assert [x.secret_id for x in store.list_secret_infos(provider="openai")] == [secret.secret_id]
    assert store.list_secret_infos(provider="azure") == []

    d1 = store.create_gateway_model_definition("rt-chat", secret.secret_id, "openai", "gpt-4o-mini", created_by="alice")
    d2 = store.create_gateway_model_definition("rt-embed", secret.secret_id, "openai", "text-embedding-3-small")
    assert d1.secret_name == "rt-key"
    assert store.get_gateway_model_definition(d1.model_definition_id).model_name == "gpt-4o-mini"
    assert {d.name for d in store.list_gateway_model_definitions(provider="openai")} >= {"rt-chat", "rt-embed"}
    assert store.update_gateway_model_definition(d2.model_definition_id, model_name="text-embedding-3-large").model_name == "text-embedding-3-large"

    primary = GatewayEndpointModelConfig(d1.model_definition_id, GatewayModelLinkageType.PRIMARY)
    ep = store.create_gateway_endpoint("rt-endpoint", [primary], created_by="alice")
    assert ep.experiment_id and [m.model_definition_id for m in ep.model_mappings] == [d1.model_definition_id]
    assert store.get_gateway_endpoint(name="rt-endpoint").endpoint_id == ep.endpoint_id
    assert store.update_gateway_endpoint(ep.endpoint_id, name="rt-endpoint-2", updated_by="bob").name == "rt-endpoint-2"
    assert ep.endpoint_id in [e.endpoint_id for e in store.list_gateway_endpoints(provider="openai")]
    mapping = store.attach_model_to_endpoint(ep.endpoint_id, GatewayEndpointModelConfig(d2.model_definition_id, GatewayModelLinkageType.FALLBACK, fallback_order=1))
    assert mapping.model_definition.name == "rt-embed"
    store.detach_model_from_endpoint(ep.endpoint_id, d2.model_definition_id)
    binding = store.create_endpoint_binding(ep.endpoint_id, GatewayResourceType.SCORER, "scorer-1")
    assert binding.resource_id == "scorer-1"
    assert [b.resource_id for b in store.list_endpoint_bindings(endpoint_id=ep.endpoint_id)] == ["scorer-1"]
    store.delete_endpoint_binding(ep.endpoint_id, "scorer", "scorer-1")
    assert store.list_endpoint_bindings(endpoint_id=ep.endpoint_id) == []
    store.set_gateway_endpoint_tag(ep.endpoint_id, GatewayEndpointTag("team", "search"))
    assert [(t.key, t.value) for t in store.get_gateway_endpoint(endpoint_id=ep.endpoint_id).tags] == [("team", "search")]
    store.delete_gateway_endpoint_tag(ep.endpoint_id, "team")
    assert store.get_gateway_endpoint(endpoint_id=ep.endpoint_id).tags == []

    policy = store.create_budget_policy(BudgetUnit.USD, 25.0, BudgetDuration(BudgetDurationUnit.DAYS, 1), BudgetTargetScope.GLOBAL, BudgetAction.ALERT)
    assert store.get_budget_policy(policy.budget_policy_id).budget_amount == 25.0
    assert store.update_budget_policy(policy.budget_policy_id, budget_amount=30.0).budget_amount == 30.0
    assert [p.budget_policy_id for p in store.list_budget_policies()] == [policy.budget_policy_id]
    store.delete_budget_policy(policy.budget_policy_id)
    assert list(store.list_budget_policies()) == []

    assert list(store.list_gateway_guardrails()) == []
    with pytest.raises(MlflowException, match="not found"):
        store.get_gateway_guardrail("gr-nope")
    assert store.list_endpoint_guardrail_configs(ep.endpoint_id) == []

    # (MLflow answers INVALID_STATE with HTTP 500, which its client retries for minutes:
    # checked over plain HTTP.)
    r = requests.delete(s.url + "/api/3.0/mlflow/gateway/model-definitions/delete", json={"model_definition_id": d1.model_definition_id}, timeout=30)
    assert r.json()["error_code"] == "INVALID_STATE" and "in use" in r.json()["message"], r.text
    store.delete_gateway_endpoint(ep.endpoint_id)
    store.delete_gateway_model_definition(d2.model_definition_id)
    store.delete_gateway_secret(secret.secret_id)
    with pytest.raises(MlflowException, match="not found"):
        store.get_secret_info(secret_id=secret.secret_id)
    # Soft delete: the vault still has it, recoverable.
    r = requests.post(s.url + "/api/tandem/v1/workspaces/default/secrets/rt-key/recover", timeout=30)
    assert r.status_code == 200, r.text
    assert store.get_secret_info(secret_id=secret.secret_id).secret_name == "rt-key"


def test_invocations_reach_the_provider_with_the_vault_credential(gw):
    s, fake = gw
    store = rest_store(s.url)
    endpoint_for(store, fake, "chat")
    n = len(fake.seen)
    r = requests.post(s.url + "/gateway/chat/mlflow/invocations", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hello from fake"
    sent = fake.seen[n]
    assert sent["auth"] == f"Bearer {fake.key}" and sent["body"]["model"] == "gpt-4o-mini"
    assert sent["path"] == "/v1/chat/completions"
    # OpenAI-compatible: the endpoint named as the model.
    r = requests.post(s.url + "/gateway/mlflow/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200 and r.json()["usage"]["total_tokens"] == 9, r.text
    assert "model" in fake.seen[-1]["body"] and fake.seen[-1]["body"]["model"] == "gpt-4o-mini"
    # The OpenAI passthrough routes, chat and embeddings.
    r = requests.post(s.url + "/gateway/openai/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": 0.2}, timeout=30)
    assert r.status_code == 200, r.text
    assert fake.seen[-1]["body"]["temperature"] == 0.2
    r = requests.post(s.url + "/gateway/openai/v1/embeddings", json={"model": "chat", "input": ["a", "b"]}, timeout=30)
    assert r.status_code == 200 and len(r.json()["data"]) == 2, r.text
    assert fake.seen[-1]["path"] == "/v1/embeddings"
    r = requests.post(s.url + "/gateway/chat/mlflow/invocations", json={"input": "one"}, timeout=30)
    assert r.status_code == 200 and r.json()["data"][0]["embedding"] == [0.1, 0.2, 0.0], r.text
    # Azure OpenAI: the deployment in the path, the API version from the auth config, the key
    # in `api-key`.
    secret = store.create_gateway_secret("azure-key", {"api_key": fake.key}, provider="azure", auth_config={"api_base": fake.url, "api_version": "2024-06-01"})
    from mlflow.entities import GatewayEndpointModelConfig
    from mlflow.entities.gateway_endpoint import GatewayModelLinkageType

    d = store.create_gateway_model_definition("azure-model", secret.secret_id, "azure", "my-gpt-deployment")
    store.create_gateway_endpoint("azure-chat", [GatewayEndpointModelConfig(d.model_definition_id, GatewayModelLinkageType.PRIMARY)])
    r = requests.post(s.url + "/gateway/azure-chat/mlflow/invocations", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert fake.seen[-1]["path"] == "/v1/openai/deployments/my-gpt-deployment/chat/completions?api-version=2024-06-01"
    assert "model" not in fake.seen[-1]["body"]


def test_a_streamed_answer_is_streamed_through(gw):
    s, fake = gw
    store = rest_store(s.url)
    endpoint_for(store, fake, "streamer")
    arrivals, texts = [], []
    with requests.post(s.url + "/gateway/streamer/mlflow/invocations", json={"messages": [{"role": "user", "content": "hi"}], "stream": True}, stream=True, timeout=30) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                arrivals.append(time.time())
                texts.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    assert texts == [f"part{i} " for i in range(fake.chunks)]
    # Pieces arrive as the provider sends them (0.2 s apart), not all at the end.
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals


def test_provider_errors_fallbacks_timeouts_and_bad_input(gw):
    from mlflow.entities import GatewayEndpointModelConfig
    from mlflow.entities.gateway_endpoint import GatewayModelLinkageType

    s, fake = gw
    store = rest_store(s.url)
    chat = lambda path, body: requests.post(s.url + path, json=body, timeout=30)  # noqa: E731
    msgs = {"messages": [{"role": "user", "content": "hi"}]}
    # The provider's error, with its status and message, as MLflow's gateway passes it on.
    endpoint_for(store, fake, "wrong-key", key="sk-not-the-right-key-0000")
    r = chat("/gateway/wrong-key/mlflow/invocations", msgs)
    assert (r.status_code, r.json()) == (401, {"detail": "Incorrect API key provided"}), r.text
    # A primary that cannot be reached gives way to the fallback.
    dead = store.create_gateway_secret("dead-key", {"api_key": fake.key}, provider="openai", auth_config={"api_base": "http://127.0.0.1:9/v1"})
    d_dead = store.create_gateway_model_definition("dead-model", dead.secret_id, "openai", "gpt-dead")
    live = store.create_gateway_secret("live-key", {"api_key": fake.key}, provider="openai", auth_config={"api_base": fake.url})
    d_live = store.create_gateway_model_definition("live-model", live.secret_id, "openai", "gpt-live")
    store.create_gateway_endpoint("with-fallback", [
        GatewayEndpointModelConfig(d_dead.model_definition_id, GatewayModelLinkageType.PRIMARY),
        GatewayEndpointModelConfig(d_live.model_definition_id, GatewayModelLinkageType.FALLBACK, fallback_order=1),
    ])
    r = chat("/gateway/with-fallback/mlflow/invocations", msgs)
    assert r.status_code == 200, r.text
    assert fake.seen[-1]["body"]["model"] == "gpt-live"
    # Nothing to fall back to: 502 from the gateway, no credential in the message.
    store.create_gateway_endpoint("only-dead", [GatewayEndpointModelConfig(d_dead.model_definition_id, GatewayModelLinkageType.PRIMARY)])
    r = chat("/gateway/only-dead/mlflow/invocations", msgs)
    assert r.status_code == 502 and fake.key not in r.text, r.text
    # A provider slower than the bound (3 s here): 504, in bounded time.
    endpoint_for(store, fake, "slow")
    fake.slow = 6
    try:
        t0 = time.time()
        r = chat("/gateway/slow/mlflow/invocations", msgs)
        assert r.status_code == 504 and time.time() - t0 < 5.5, (r.status_code, r.text)
    finally:
        fake.slow = 0
    # Bad input, as MLflow's gateway answers it; the provider is not called.
    n = len(fake.seen)
    cases = [
        ("/gateway/mlflow/v1/chat/completions", {"messages": msgs["messages"]}, 400, "Missing required 'model' parameter in request body"),
        ("/gateway/openai/v1/embeddings", {"input": "x"}, 400, "Missing required 'model' parameter in request body"),
        ("/gateway/chat/mlflow/invocations", {"prompt": "x"}, 400, "Invalid request: payload format must be either chat or embeddings"),
        ("/gateway/chat/mlflow/invocations", {"messages": []}, 400, None),
        ("/gateway/chat/mlflow/invocations", {"messages": "hi"}, 400, None),
        ("/gateway/chat/mlflow/invocations", {"input": []}, 400, None),
        ("/gateway/no-such-endpoint/mlflow/invocations", msgs, 404, None),
        ("/gateway/mlflow/v1/chat/completions", {"model": "no-such-endpoint", **msgs}, 404, None),
        ("/gateway/nothing/here", msgs, 404, None),
    ]
    for path, body, status, message in cases:
        r = chat(path, body)
        assert r.status_code == status, (path, body, r.status_code, r.text)
        if message:
            assert r.json() == {"detail": message}, r.text
        else:
            assert "detail" in r.json(), r.text
    r = requests.post(s.url + "/gateway/chat/mlflow/invocations", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["detail"].startswith("Invalid JSON payload"), r.text
    r = requests.get(s.url + "/gateway/chat/mlflow/invocations", timeout=30)
    assert r.status_code == 405
    assert len(fake.seen) == n, "bad input reached the provider"


def test_after_a_sigkill_failover_calls_go_to_the_surviving_regions_provider():
    """An endpoint with a provider URL per region (two Azure-OpenAI-like deployments): calls
    through `tandem up`'s front door, and `connections/{name}/resolve`, use the leader
    region's URL; after a SIGKILL of that region, the other region's, with no edit. The
    opt-in probes of both URLs show in `tandem status` and `/metrics`."""
    import subprocess

    from conftest import BIN
    from test_regions import Up

    fakes = {"east": FakeOpenAI(name="east"), "west": FakeOpenAI(name="west")}
    up = Up("sync", env={**GATEWAY_ENV, "TANDEM_GATEWAY_PROBE_SECS": "1"})
    try:
        store = rest_store(up.url)
        secret = store.create_gateway_secret("regional-key", {"api_key": fakes["east"].key}, provider="openai")
        d = store.create_gateway_model_definition("regional-model", secret.secret_id, "openai", "gpt-4o-mini")
        r = requests.post(up.url + "/api/3.0/mlflow/gateway/endpoints/create", json={
            "name": "regional", "model_configs": [{"model_definition_id": d.model_definition_id, "linkage_type": "PRIMARY"}],
            "tandem_regions": {name: f.url for name, f in fakes.items()},
        }, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["endpoint"]["tandem_regions"] == {name: f.url for name, f in fakes.items()}
        msgs = {"messages": [{"role": "user", "content": "hi"}]}
        resolve = up.url + "/api/tandem/v1/workspaces/default/connections/regional/resolve"

        def call():
            r = requests.post(up.url + "/gateway/regional/mlflow/invocations", json=msgs, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]["message"]["content"]

        old = up.leader()
        other = {"east": "west", "west": "east"}[old]
        assert call() == f"hello from {old}"
        got = requests.get(resolve, timeout=30).json()
        assert (got["region"], got["url"], got["source"]) == (old, fakes[old].url + "/chat/completions", "region"), got

        def probed():
            out = subprocess.run([BIN, "status", "--data", up.dir], capture_output=True, text=True, timeout=30).stdout
            return all(f"default/regional for region {n} ({fakes[n].url}): up" in out for n in fakes) and out

        up.wait_for(probed, 30, "both regional URLs probed up in `tandem status`")
        metrics = requests.get(up.urls[old] + "/metrics", timeout=30).text
        assert f'tandem_gateway_upstream_up{{workspace="default",endpoint="regional",region="{other}"}} 1' in metrics, metrics

        up.wait_for(lambda: up.region_status(other)[1]["replication_lag_events"] == 0, 30, "the standby to catch up")
        up.kill(old)
        up.wait_for(lambda: up.leader() == other, 30, "the failover")
        assert call() == f"hello from {other}"
        got = requests.get(resolve, timeout=30).json()
        assert (got["region"], got["url"]) == (other, fakes[other].url + "/chat/completions"), got
        # The surviving region probes the dead region's provider too: still up (only the
        # region died, not its deployment of the model).
        metrics = requests.get(up.urls[other] + "/metrics", timeout=30).text
        assert 'tandem_gateway_upstream_up{workspace="default",endpoint="regional"' in metrics
    finally:
        up.stop()
        for f in fakes.values():
            f.stop()
