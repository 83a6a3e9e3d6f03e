"""The stock mlflow client, unchanged and with no plugin, against `tandem server`."""

import math
import os
import tempfile
import time
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException, RestException


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(exc_info):
    return exc_info.value.error_code


# ---------------------------------------------------------------------------------------
# Server basics


def test_version_and_server_info(server):
    r = requests.get(server.url + "/version")
    assert r.status_code == 200 and r.text.startswith("3.")
    info = requests.get(server.url + "/api/3.0/mlflow/server-info").json()
    assert info["workspaces_enabled"] is True


def test_unknown_route_is_a_plain_404(server):
    r = requests.get(server.url + "/api/2.0/mlflow/no-such-endpoint")
    assert r.status_code == 404
    with pytest.raises(ValueError):
        r.json()


def test_ajax_api_prefix_serves_the_same_endpoints(server):
    name = uniq("ajax")
    r = requests.post(server.url + "/ajax-api/2.0/mlflow/experiments/create", json={"name": name})
    assert r.status_code == 200
    exp_id = r.json()["experiment_id"]
    got = requests.get(server.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": exp_id}).json()
    assert got["experiment"]["name"] == name


# ---------------------------------------------------------------------------------------
# Experiments


def test_experiment_lifecycle():
    client = MlflowClient()
    name = uniq("exp")
    exp_id = client.create_experiment(name, tags={"team": "a"})
    exp = client.get_experiment(exp_id)
    assert exp.name == name and exp.tags["team"] == "a" and exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    assert exp.artifact_location.startswith("mlflow-artifacts:")

    with pytest.raises(MlflowException) as e:
        client.create_experiment(name)
    assert error_code(e) == "RESOURCE_ALREADY_EXISTS"

    client.set_experiment_tag(exp_id, "k", "v")
    assert client.get_experiment(exp_id).tags["k"] == "v"
    client.delete_experiment_tag(exp_id, "k")
    assert "k" not in client.get_experiment(exp_id).tags

    new_name = uniq("renamed")
    client.rename_experiment(exp_id, new_name)
    assert client.get_experiment(exp_id).name == new_name
    assert client.get_experiment_by_name(name) is None

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = [e.experiment_id for e in client.search_experiments()]
    assert exp_id not in active
    deleted = [e.experiment_id for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)]
    assert exp_id in deleted
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_deleted_names_are_reusable_and_deleted_models_are_hidden(server):
    client = MlflowClient()
    name = uniq("reuse")
    old = client.create_experiment(name)
    client.delete_experiment(old)
    new = client.create_experiment(name)
    assert new != old and client.get_experiment_by_name(name).experiment_id == new
    # The deleted one stepped aside and is still restorable.
    assert client.get_experiment(old).name == f"{name} (deleted {old})"
    client.restore_experiment(old)
    assert client.get_experiment(old).lifecycle_stage == "active"

    model = uniq("reuse-model")
    client.create_registered_model(model)
    client.create_model_version(model, "s3://bucket/m")
    client.delete_model_version(model, "1")
    with pytest.raises(MlflowException) as e:
        client.get_model_version(model, "1")
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"
    assert client.create_model_version(model, "s3://bucket/m").version == "2"
    client.delete_registered_model(model)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(model)
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"
    assert model not in [m.name for m in client.search_registered_models()]
    client.create_registered_model(model)
    assert client.get_registered_model(model).latest_versions == []
    # tandem's undelete brings back the deleted one under its stepped-aside name.
    deleted = requests.get(f"{server.url}/api/tandem/v1/workspaces/default/changes", params={"after": 0, "limit": 10000}).json()
    renamed = [e for e in deleted["events"] if e["op"] == "RenameRegisteredModel" and f'"name":"{model}"' in e["payload"]]
    assert renamed, "the deleted model was not renamed out of the way"
    stepped_aside = __import__("json").loads(renamed[-1]["payload"])["new_name"]
    r = requests.post(f"{server.url}/api/tandem/v1/workspaces/default/undelete", json={"name": stepped_aside})
    assert r.status_code == 200, r.text
    assert [v.version for v in client.search_model_versions(f"name = '{stepped_aside}'")] == ["2"]


def test_experiment_ids_are_globally_unique_numbers():
    client = MlflowClient()
    ids = {client.create_experiment(uniq("idcheck")) for _ in range(20)}
    assert len(ids) == 20
    for i in ids:
        assert i.isdigit() and len(i) >= 12


def test_search_experiments_filter_order_and_pages():
    client = MlflowClient()
    prefix = uniq("page")
    ids = [client.create_experiment(f"{prefix}-{i:02d}", tags={"idx": str(i)}) for i in range(7)]
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in found] == [f"{prefix}-{i:02d}" for i in reversed(range(7))]
    tagged = client.search_experiments(filter_string=f"name LIKE '{prefix}%' AND tags.idx = '3'")
    assert [e.experiment_id for e in tagged] == [ids[3]]

    seen = []
    token = None
    while True:
        page = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", max_results=3, page_token=token, order_by=["name ASC"])
        seen += [e.name for e in page]
        token = page.token
        if not token:
            break
    assert seen == [f"{prefix}-{i:02d}" for i in range(7)]


def test_default_experiment_exists():
    client = MlflowClient()
    exp = client.get_experiment("0")
    assert exp.name == "Default"
    with pytest.raises(MlflowException) as e:
        client.delete_experiment("0")
    assert error_code(e) == "INVALID_PARAMETER_VALUE"


# ---------------------------------------------------------------------------------------
# Runs


def test_fluent_run_with_params_metrics_tags():
    mlflow.set_experiment(uniq("fluent"))
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"layers": 3, "act": "relu"})
        mlflow.log_metric("loss", 1.5, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8})
        mlflow.set_tag("owner", "me")
        mlflow.set_tags({"a": "1", "b": "2"})
        run_id = run.info.run_id
    r = MlflowClient().get_run(run_id)
    assert r.info.status == "FINISHED" and r.info.end_time is not None
    assert r.info.run_name == "first"
    assert r.data.params == {"lr": "0.1", "layers": "3", "act": "relu"}
    assert r.data.metrics["loss"] == 0.5 and r.data.metrics["acc"] == 0.9
    assert r.data.tags["owner"] == "me" and r.data.tags["mlflow.runName"] == "first"
    assert len(run_id) == 32


def test_params_are_immutable():
    with mlflow.start_run() as run:
        mlflow.log_param("p", "1")
        mlflow.log_param("p", "1")  # the same value again is fine
        with pytest.raises(MlflowException) as e:
            mlflow.log_param("p", "2")
        assert error_code(e) == "INVALID_PARAMETER_VALUE"
        assert "Changing param values is not allowed" in str(e.value)
    assert MlflowClient().get_run(run.info.run_id).data.params["p"] == "1"


def test_metric_history_with_special_values():
    client = MlflowClient()
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        ts = int(time.time() * 1000)
        values = [0.25, float("nan"), float("inf"), float("-inf"), 1e-300, -7.0]
        for step, v in enumerate(values):
            client.log_metric(run_id, "m", v, timestamp=ts + step, step=step)
    hist = client.get_metric_history(run_id, "m")
    assert [m.step for m in hist] == list(range(len(values)))
    for m, v in zip(hist, values):
        if math.isnan(v):
            assert math.isnan(m.value)
        else:
            assert m.value == v
        assert m.timestamp >= ts


def test_log_batch_and_limits():
    client = MlflowClient()
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    ts = int(time.time() * 1000)
    metrics = [Metric("b", float(i), ts, i) for i in range(1000)]
    client.log_batch(run_id, metrics=metrics, params=[Param("x", "y")], tags=[RunTag("t", "u")])
    assert len(client.get_metric_history(run_id, "b")) == 1000
    r = client.get_run(run_id)
    assert r.data.metrics["b"] == 999.0 and r.data.params["x"] == "y"
    # Over MLflow's limit: rejected whole by the server.
    body = {"run_id": run_id, "metrics": [{"key": "c", "value": 1, "timestamp": ts, "step": i} for i in range(1001)]}
    resp = requests.post(mlflow.get_tracking_uri() + "/api/2.0/mlflow/runs/log-batch", json=body)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "c" not in client.get_run(run_id).data.metrics


def test_update_delete_restore_run():
    client = MlflowClient()
    exp_id = client.create_experiment(uniq("runlife"))
    run = client.create_run(exp_id, run_name="r1")
    run_id = run.info.run_id
    client.update_run(run_id, status="FAILED", name="r1-renamed")
    r = client.get_run(run_id)
    assert r.info.status == "FAILED" and r.info.run_name == "r1-renamed"
    client.set_terminated(run_id, status="KILLED")
    assert client.get_run(run_id).info.status == "KILLED"
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([exp_id]) == []
    assert len(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == 1
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    client.set_tag(run_id, "gone", "soon")
    client.delete_tag(run_id, "gone")
    assert "gone" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException) as e:
        client.get_run("f" * 32)
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_nested_runs():
    mlflow.set_experiment(uniq("nested"))
    with mlflow.start_run() as parent:
        with mlflow.start_run(nested=True) as child:
            pass
    c = MlflowClient().get_run(child.info.run_id)
    assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
    kids = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list")
    assert [k.info.run_id for k in kids] == [child.info.run_id]


def test_search_runs_grammar_ordering_and_pages():
    client = MlflowClient()
    exp_id = client.create_experiment(uniq("search"))
    ids = []
    for i in range(12):
        r = client.create_run(exp_id, run_name=f"run-{i:02d}", start_time=1_000_000 + i)
        client.log_metric(r.info.run_id, "acc", i / 10)
        client.log_param(r.info.run_id, "kind", "even" if i % 2 == 0 else "odd")
        client.set_tag(r.info.run_id, "grp", f"g{i % 3}")
        if i == 5:
            client.set_terminated(r.info.run_id)
        ids.append(r.info.run_id)
    res = client.search_runs([exp_id], "metrics.acc > 0.65", order_by=["metrics.acc DESC"])
    assert [r.info.run_id for r in res] == [ids[11], ids[10], ids[9], ids[8], ids[7]]
    res = client.search_runs([exp_id], "params.kind = 'odd' and tags.grp = 'g0'")
    assert {r.info.run_id for r in res} == {ids[3], ids[9]}
    res = client.search_runs([exp_id], "attributes.status = 'FINISHED'")
    assert [r.info.run_id for r in res] == [ids[5]]
    res = client.search_runs([exp_id], "attributes.run_name LIKE 'run-1%'", order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in res] == ["run-10", "run-11"]
    res = client.search_runs([exp_id], f"attributes.run_id IN ('{ids[0]}', '{ids[4]}')")
    assert {r.info.run_id for r in res} == {ids[0], ids[4]}
    res = client.search_runs([exp_id], "tags.grp ILIKE 'G2'")
    assert len(res) == 4
    # Default order: newest start_time first.
    assert client.search_runs([exp_id], max_results=1)[0].info.run_id == ids[11]
    # Opaque page tokens walk every run exactly once.
    seen, token = [], None
    while True:
        page = client.search_runs([exp_id], max_results=5, page_token=token, order_by=["params.kind", "metrics.acc"])
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    assert len(seen) == 12 and set(seen) == set(ids)
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp_id], "metrics.acc >>> 1")
    assert error_code(e) == "INVALID_PARAMETER_VALUE"
    # The pandas flavour of the API works too.
    df = mlflow.search_runs([exp_id], filter_string="metrics.acc >= 0.5")
    assert len(df) == 7 and "metrics.acc" in df.columns


def test_log_inputs_datasets():
    df = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, name="train-set", targets="y")
    mlflow.set_experiment(uniq("inputs"))
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    r = MlflowClient().get_run(run.info.run_id)
    inputs = r.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "train-set"
    assert inputs[0].dataset.digest == dataset.digest
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    found = mlflow.search_runs(filter_string="datasets.name = 'train-set'", output_format="list")
    assert [x.info.run_id for x in found] == [run.info.run_id]


# ---------------------------------------------------------------------------------------
# Artifacts, proxied through the server


def test_artifacts_upload_list_download(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    payload = os.urandom(3 * 1024 * 1024)
    (src / "sub" / "blob.bin").write_bytes(payload)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="data")
        mlflow.log_text("note", "notes/n.txt")
        mlflow.log_dict({"k": [1, 2]}, "d.json")
    client = MlflowClient()
    top = sorted(f.path for f in client.list_artifacts(run.info.run_id))
    assert top == ["d.json", "data", "notes"]
    inner = {f.path: f for f in client.list_artifacts(run.info.run_id, "data/sub")}
    assert inner["data/sub/blob.bin"].file_size == len(payload)
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="data", dst_path=str(tmp_path / "dl"))
    assert open(os.path.join(out, "a.txt")).read() == "hello"
    assert open(os.path.join(out, "sub", "blob.bin"), "rb").read() == payload
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/d.json") == {"k": [1, 2]}


def test_artifact_path_traversal_is_refused(server):
    for bad in ["../../etc/passwd", "0/%2e%2e/%2e%2e/x", "a/../../b"]:
        r = requests.put(server.url + "/api/2.0/mlflow-artifacts/artifacts/" + bad, data=b"x")
        assert r.status_code in (400, 404), (bad, r.status_code)
        if r.status_code == 400:
            assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_download_routes_serve_only_what_the_server_stores(server, tmp_path):
    """A stored location a client gave (a local folder here) is handed back, never opened:
    MLflow's UI download routes serve only files below tandem's own artifact store."""
    c = MlflowClient()
    secret = b"not for the server to read"
    # A client-written experiment: its runs' files are on the client's disk.
    local_exp = c.create_experiment(uniq("local-files"), artifact_location=str(tmp_path / "files"))
    local_run = c.create_run(local_exp).info
    c.log_text(local_run.run_id, secret.decode(), "model/secret.txt")
    assert (tmp_path / "files" / local_run.run_id / "artifacts" / "model" / "secret.txt").read_bytes() == secret
    name = uniq("local-source")
    c.create_registered_model(name)
    v = c.create_model_version(name, local_run.artifact_uri + "/model", run_id=local_run.run_id)
    assert v.source == local_run.artifact_uri + "/model"
    refused = [
        requests.get(server.url + "/get-artifact", params={"run_uuid": local_run.run_id, "path": "model/secret.txt"}),
        requests.get(server.url + "/model-versions/get-artifact", params={"name": name, "version": v.version, "path": "secret.txt"}),
    ]
    for r in refused:
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert secret not in r.content
    # A proxied run's files are served, and nothing outside them.
    run = c.create_run("0").info
    c.log_text(run.run_id, "hello", "model/x.txt")
    name2 = uniq("proxied-source")
    c.create_registered_model(name2)
    v2 = c.create_model_version(name2, f"runs:/{run.run_id}/model", run_id=run.run_id)
    assert requests.get(server.url + "/get-artifact", params={"run_uuid": run.run_id, "path": "model/x.txt"}).content == b"hello"
    for bad in ["../../../etc/passwd", "/etc/passwd", "model/../../x"]:
        r = requests.get(server.url + "/get-artifact", params={"run_uuid": run.run_id, "path": bad})
        assert r.status_code == 400 and r.json()["message"] == "Invalid path", (bad, r.text)
    # A runs:/ source is kept as given (as MLflow keeps it); the client resolves it.
    r = requests.get(server.url + "/model-versions/get-artifact", params={"name": name2, "version": v2.version, "path": "x.txt"})
    assert r.status_code == 400 and secret not in r.content
    r = requests.get(server.url + "/get-artifact", params={"run_uuid": "0123456789abcdef0123456789abcdef", "path": "x"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# ---------------------------------------------------------------------------------------
# Models: MLflow 3 logged models, the registry, and load by alias


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def test_pyfunc_log_register_and_load_by_alias():
    mlflow.set_experiment(uniq("models"))
    name = uniq("adder")
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=AddN(5), registered_model_name=name)
    assert info.model_id.startswith("m-")
    client = MlflowClient()
    lm = mlflow.get_logged_model(info.model_id)
    assert lm.status.to_proto() == 2 or str(lm.status).endswith("READY")
    assert lm.source_run_id == run.info.run_id
    v = client.get_model_version(name, "1")
    assert v.run_id == run.info.run_id and v.source == f"models:/{info.model_id}"
    # The stock client drops model_id when it parses a version; the server does send it.
    raw = requests.get(mlflow.get_tracking_uri() + "/api/2.0/mlflow/model-versions/get", params={"name": name, "version": "1"}).json()
    assert raw["model_version"]["model_id"] == info.model_id
    client.set_registered_model_alias(name, "champion", "1")
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    out = model.predict(pd.DataFrame({"x": [1, 2]}))
    assert list(out["x"]) == [6, 7]
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    # And by version number, and through the run.
    assert list(mlflow.pyfunc.load_model(f"models:/{name}/1").predict(pd.DataFrame({"x": [0]}))["x"]) == [5]
    assert list(mlflow.pyfunc.load_model(f"models:/{info.model_id}").predict(pd.DataFrame({"x": [1]}))["x"]) == [6]
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [info.model_id]


def test_logged_model_tags_params_and_finalize():
    client = MlflowClient()
    exp_id = client.create_experiment(uniq("lm"))
    m = mlflow.initialize_logged_model(name="manual", experiment_id=exp_id, tags={"a": "1"}, params={"p": "q"})
    assert str(m.status).endswith("PENDING")
    mlflow.set_logged_model_tags(m.model_id, {"b": "2"})
    mlflow.delete_logged_model_tag(m.model_id, "a")
    mlflow.finalize_logged_model(m.model_id, "READY")
    got = mlflow.get_logged_model(m.model_id)
    assert got.tags.get("b") == "2" and "a" not in got.tags
    assert got.params == {"p": "q"} and str(got.status).endswith("READY")
    client.delete_logged_model(m.model_id)
    with pytest.raises(MlflowException) as e:
        mlflow.get_logged_model(m.model_id)
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_registry_end_to_end():
    client = MlflowClient()
    name = uniq("reg")
    client.create_registered_model(name, tags={"t": "1"}, description="first")
    with pytest.raises(MlflowException) as e:
        client.create_registered_model(name)
    assert error_code(e) == "RESOURCE_ALREADY_EXISTS"
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/file.txt")
    v1 = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags={"vt": "a"}, description="v1")
    v2 = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert (v1.version, v2.version) == ("1", "2")
    # As MLflow: a runs:/ source is handed back as given, and the client resolves it.
    assert client.get_model_version_download_uri(name, "1") == f"runs:/{run.info.run_id}/model"
    with tempfile.TemporaryDirectory() as d:
        got = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/1", dst_path=d)
        assert open(os.path.join(got, "file.txt")).read() == "x"

    client.update_registered_model(name, description="second")
    client.update_model_version(name, "2", description="v2 desc")
    client.set_registered_model_tag(name, "k", "v")
    client.delete_registered_model_tag(name, "t")
    client.set_model_version_tag(name, "1", "k2", "v2")
    client.delete_model_version_tag(name, "1", "vt")
    client.set_registered_model_alias(name, "prod", "2")
    rm = client.get_registered_model(name)
    assert rm.description == "second" and rm.tags == {"k": "v"} and rm.aliases == {"prod": "2"}
    assert client.get_model_version(name, "1").tags == {"k2": "v2"}
    assert client.get_model_version(name, "2").description == "v2 desc"
    assert client.get_model_version(name, "2").aliases == ["prod"]

    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]

    assert [m.name for m in client.search_registered_models(filter_string=f"name = '{name}'")] == [name]
    assert {v.version for v in client.search_model_versions(f"name = '{name}'")} == {"1", "2"}
    assert [v.version for v in client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'", order_by=["version_number DESC"])] == ["2", "1"]

    new = uniq("reg-renamed")
    client.rename_registered_model(name, new)
    assert client.get_model_version_by_alias(new, "prod").version == "2"
    client.delete_registered_model_alias(new, "prod")
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(new, "prod")
    client.delete_model_version(new, "1")
    with pytest.raises(MlflowException) as e:
        client.get_model_version(new, "1")
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model(new)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(new)
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_registry_search_pages():
    client = MlflowClient()
    prefix = uniq("rp")
    for i in range(5):
        client.create_registered_model(f"{prefix}-{i}")
    page1 = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", max_results=2)
    assert len(page1) == 2 and page1.token
    rest = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", max_results=10, page_token=page1.token)
    assert [m.name for m in page1] + [m.name for m in rest] == [f"{prefix}-{i}" for i in range(5)]


# ---------------------------------------------------------------------------------------
# Workspaces


def test_workspaces_are_isolated(server, monkeypatch):
    ws = "team-" + uuid.uuid4().hex[:6]
    created = mlflow.create_workspace(ws, description="a team")
    assert created.name == ws
    assert ws in [w.name for w in mlflow.list_workspaces()]
    name = uniq("ws-exp")

    mlflow.set_workspace(ws)
    exp_id = MlflowClient().create_experiment(name)
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric("m", 1.0)
        mlflow.log_text("inside", "f.txt")
    assert MlflowClient().get_experiment_by_name(name).experiment_id == exp_id
    assert MlflowClient().get_experiment("0").name == "Default"
    mlflow.set_workspace(None)

    client = MlflowClient()
    assert client.get_experiment_by_name(name) is None
    with pytest.raises(MlflowException) as e:
        client.get_run(run.info.run_id)
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(Exception):
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/f.txt")

    # The environment variable works the same way.
    monkeypatch.setenv("MLFLOW_WORKSPACE", ws)
    assert MlflowClient().get_run(run.info.run_id).data.metrics["m"] == 1.0
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/f.txt") == "inside"
    monkeypatch.delenv("MLFLOW_WORKSPACE")

    r = requests.get(server.url + "/api/2.0/mlflow/experiments/search", params={"max_results": 10}, headers={"X-MLFLOW-WORKSPACE": "no-such-ws"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    # RESTRICT refuses while resources remain (INVALID_STATE, HTTP 500, as in MLflow; the
    # client would retry a 500, so this one is checked without it); CASCADE removes them.
    r = requests.delete(server.url + f"/api/3.0/mlflow/workspaces/{ws}")
    assert r.status_code == 500 and r.json()["error_code"] == "INVALID_STATE"
    assert ws in [w.name for w in mlflow.list_workspaces()]
    mlflow.delete_workspace(ws, mode="CASCADE")
    assert ws not in [w.name for w in mlflow.list_workspaces()]
    empty = "empty-" + uuid.uuid4().hex[:6]
    mlflow.create_workspace(empty)
    mlflow.delete_workspace(empty)
    assert empty not in [w.name for w in mlflow.list_workspaces()]


# ---------------------------------------------------------------------------------------
# The change log


def test_change_log_records_every_write_and_nothing_else(server):
    def head():
        return requests.get(server.url + "/api/tandem/v1/workspaces/default/changes", params={"after": 0, "limit": 1}).json()["head_seq"]

    client = MlflowClient()
    before = head()
    exp_id = client.create_experiment(uniq("log"))
    run = client.create_run(exp_id)
    client.log_param(run.info.run_id, "a", "1")
    assert head() == before + 3
    client.get_run(run.info.run_id)
    client.search_runs([exp_id])
    client.log_param(run.info.run_id, "a", "1")  # changes nothing
    assert head() == before + 3
    page = requests.get(server.url + "/api/tandem/v1/workspaces/default/changes", params={"after": before}).json()
    assert [e["op"] for e in page["events"]] == ["CreateExperiment", "CreateRun", "LogBatch"]
    assert [e["seq"] for e in page["events"]] == [before + 1, before + 2, before + 3]
    assert requests.get(server.url + "/api/tandem/v1/workspaces/default/verify").json()["ok"] is True


def test_multipart_upload_through_the_server(tmp_path, monkeypatch):
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    calls = []
    original = HttpArtifactRepository._try_multipart_upload

    def counting(self, *a, **kw):
        calls.append(a)
        return original(self, *a, **kw)

    monkeypatch.setattr(HttpArtifactRepository, "_try_multipart_upload", counting)
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1 << 20))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1 << 20))
    payload = os.urandom((5 << 20) + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(payload)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), artifact_path="weights")
    assert len(calls) == 1, "the client did not use multipart upload"
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="weights/big.bin", dst_path=str(tmp_path / "dl"))
    assert open(out, "rb").read() == payload
