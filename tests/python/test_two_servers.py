"""Two `tandem server` processes over one PostgreSQL database and one Azurite container,
with the stock client's requests spread across both, concurrent writers to the same run and
the same registered model: nothing lost, nothing duplicated, the change log gap-free."""

import os
import tempfile
import threading
import time
import uuid

import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from conftest import Server, fresh_postgres

pytestmark = pytest.mark.skipif(
    not ("TANDEM_TEST_POSTGRES" in os.environ and "TANDEM_TEST_AZURITE" in os.environ) and not os.environ.get("TANDEM_TEST_REQUIRE_SERVICES"),
    reason="needs the test PostgreSQL and Azurite (scripts/test.sh starts them)",
)


@pytest.fixture(autouse=True)
def tracking():
    """Replaces conftest's single-server fixture: these tests choose their server per call."""
    from mlflow.utils import workspace_context

    workspace_context.set_workspace(None)
    yield


@pytest.fixture(scope="module")
def pair():
    store = fresh_postgres()
    artifacts = os.environ["TANDEM_TEST_AZURITE"] + "/two-" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        servers = [Server(a, ["--store", store, "--artifacts", artifacts]), Server(b, ["--store", store, "--artifacts", artifacts])]
        yield servers
        for s in servers:
            s.stop()


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def test_two_servers_share_everything_and_lose_nothing(pair, tmp_path):
    a, b = pair
    clients = [MlflowClient(tracking_uri=s.url, registry_uri=s.url) for s in pair]
    exp_id = clients[0].create_experiment("shared-" + uuid.uuid4().hex[:6])
    run_id = clients[1].create_run(exp_id).info.run_id
    clients[0].create_registered_model("shared-model")

    errors = []
    made_versions = []
    lock = threading.Lock()
    n_threads, per_thread = 8, 25

    def writer(t):
        c = clients[t % 2]
        try:
            for i in range(per_thread):
                ts = int(time.time() * 1000)
                c.log_batch(run_id, metrics=[Metric(f"m{t}", float(i), ts, i)], params=[Param(f"p{t}-{i}", str(i))])
                if i % 5 == 0:
                    v = c.create_model_version("shared-model", f"runs:/{run_id}/model", run_id=run_id)
                    with lock:
                        made_versions.append(v.version)
                if i % 10 == 0:
                    f = tmp_path / f"t{t}-{i}.txt"
                    f.write_text(f"{t}-{i}")
                    c.log_artifact(run_id, str(f), artifact_path="shared")
                    c.create_run(exp_id, run_name=f"r{t}-{i}")
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors, errors

    for c in clients:
        run = c.get_run(run_id)
        assert len(run.data.params) == n_threads * per_thread
        for t in range(n_threads):
            hist = c.get_metric_history(run_id, f"m{t}")
            assert sorted(m.step for m in hist) == list(range(per_thread)), f"metric m{t} lost or duplicated"
        versions = sorted(int(v.version) for v in c.search_model_versions("name = 'shared-model'"))
        assert versions == list(range(1, len(made_versions) + 1))
        assert sorted(int(v) for v in made_versions) == versions
        names = sorted(f.path for f in c.list_artifacts(run_id, "shared"))
        assert len(names) == n_threads * 3
        assert len(c.search_runs([exp_id], max_results=1000)) == 1 + n_threads * 3

    # An artifact written through one server reads back through the other.
    with_b = MlflowClient(tracking_uri=b.url)
    out = with_b.download_artifacts(run_id, "shared/t0-0.txt", str(tmp_path / "dl"))
    assert open(out).read() == "0-0"

    # The change log is one gap-free, verified chain whichever server is asked.
    heads = [requests.get(s.url + "/api/tandem/v1/workspaces/default/verify").json() for s in pair]
    assert heads[0]["ok"] and heads[1]["ok"] and heads[0]["head_seq"] == heads[1]["head_seq"]
    seqs = []
    after = 0
    while True:
        page = requests.get(a.url + "/api/tandem/v1/workspaces/default/changes", params={"after": after, "limit": 500}).json()
        seqs += [e["seq"] for e in page["events"]]
        if "next_after" not in page:
            break
        after = page["next_after"]
    assert seqs == list(range(1, heads[0]["head_seq"] + 1))


def test_model_logged_through_one_server_loads_through_the_other(pair):
    a, b = pair
    mlflow.set_tracking_uri(a.url)
    mlflow.set_registry_uri(a.url)
    mlflow.set_experiment("cross-" + uuid.uuid4().hex[:6])
    name = "cross-" + uuid.uuid4().hex[:6]
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=AddN(2), registered_model_name=name)
    MlflowClient(tracking_uri=a.url, registry_uri=a.url).set_registered_model_alias(name, "prod", "1")
    mlflow.set_tracking_uri(b.url)
    mlflow.set_registry_uri(b.url)
    model = mlflow.pyfunc.load_model(f"models:/{name}@prod")
    assert list(model.predict(pd.DataFrame({"x": [1]}))["x"]) == [3]
