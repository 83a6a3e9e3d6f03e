"""The real mlflow-export-import tool (databricks-mlflow-export-import, installed by
scripts/test.sh beside the stock server) moves a whole tracking server: `export-all` from
tandem and `import-all` into stock MLflow, and the reverse. Experiments, runs (params, full
metric histories, tags, artifacts) and registered models (versions, descriptions, tags,
aliases) must arrive as they left.

The tool finds a version's files by looking for "artifacts" in its source and creates versions
only from sources it can see on its own disk (or dbfs:/s3:): it cannot move versions whose
files are behind an artifact proxy (`mlflow-artifacts:`, on stock MLflow as on tandem). So
both sides keep this workspace's artifacts in local folders, as MLflow's file-based servers
do: a stock server without the proxy, and tandem experiments given a local artifact location
(MLflow's rules for local model-version sources then apply, on both servers).
"""

import hashlib
import os
import subprocess
import tempfile

import pytest

from conftest import STOCK_BIN, Server, StockServer, require_stock

require_stock()


@pytest.fixture(scope="module")
def server():
    yield None


@pytest.fixture(autouse=True)
def tracking():
    yield


def files_under(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            # The tool rewrites MLmodel files for their new run; their presence is compared.
            out[os.path.relpath(p, root)] = "MLmodel" if f == "MLmodel" else hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def user_tags(tags):
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.") and not k.startswith("mlflow_exim")}


def seed(url, artifact_location=None):
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=url, registry_uri=url)
    eid = c.create_experiment("exim-a", artifact_location=artifact_location, tags={"team": "vision"})
    runs = []
    for i in range(2):
        r = c.create_run(eid, run_name=f"run-{i}", tags={"kind": "train"})
        rid = r.info.run_id
        c.log_param(rid, "lr", str(0.1 * (i + 1)))
        for s in range(5):
            c.log_metric(rid, "loss", 1.0 / (s + 1 + i), timestamp=1000 + s, step=s)
        c.log_metric(rid, "acc", float("nan"), timestamp=2000, step=0)
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "notes.txt"), "w").write(f"run {i}\n")
            os.makedirs(os.path.join(d, "model"))
            open(os.path.join(d, "model", "MLmodel"), "w").write("flavors: {}\n")
            open(os.path.join(d, "model", "weights.bin"), "wb").write(os.urandom(4096))
            c.log_artifacts(rid, d)
        c.set_terminated(rid)
        runs.append(rid)
    c.create_registered_model("exim-model", tags={"owner": "a"}, description="the model")
    for rid in runs:
        # The tool finds a version's files below "artifacts" in its source (a runs:/ source
        # would bring the whole run's folder, on either server).
        source = c.get_run(rid).info.artifact_uri + "/model"
        c.create_model_version("exim-model", source, run_id=rid, tags={"v": "t"}, description="version of " + rid[:4])
    c.set_registered_model_alias("exim-model", "champion", "2")


def snapshot(url):
    import mlflow
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=url, registry_uri=url)
    out = {"experiments": {}, "models": {}}
    for e in c.search_experiments():
        if e.name == "Default":
            continue
        runs = {}
        for r in c.search_runs([e.experiment_id]):
            rid = r.info.run_id
            hist = {k: sorted((m.step, repr(m.value), m.timestamp) for m in c.get_metric_history(rid, k)) for k in r.data.metrics}
            with tempfile.TemporaryDirectory() as d:
                files = files_under(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=d, tracking_uri=url))
            runs[r.info.run_name] = {"params": r.data.params, "metrics": hist, "tags": user_tags(r.data.tags), "status": r.info.status, "files": files}
        out["experiments"][e.name] = {"tags": user_tags(e.tags), "runs": runs}
    for m in c.search_registered_models():
        versions = {}
        for v in c.search_model_versions(f"name='{m.name}'"):
            uri = c.get_model_version_download_uri(m.name, v.version)
            with tempfile.TemporaryDirectory() as d:
                files = files_under(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=d, tracking_uri=url))
            versions[v.version] = {
                "run": c.get_run(v.run_id).info.run_name if v.run_id else None,
                "description": v.description,
                "tags": user_tags(v.tags),
                "files": files,
            }
        # Aliases as the model lists them (MLflow's server leaves them out of its versions).
        out["models"][m.name] = {"description": m.description, "tags": user_tags(m.tags), "aliases": dict(m.aliases), "versions": versions}
    return out


def differences(a, b, path=""):
    """Where two snapshots differ, one line per leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def tool(name, url, *args):
    env = dict(os.environ, MLFLOW_TRACKING_URI=url)
    env.pop("MLFLOW_REGISTRY_URI", None)
    r = subprocess.run([os.path.join(STOCK_BIN, name), *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def test_export_all_from_tandem_and_import_all_into_stock_mlflow():
    with tempfile.TemporaryDirectory() as tdata, tempfile.TemporaryDirectory() as sroot, tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as local:
        tandem = Server(tdata)
        stock = StockServer(sroot, proxied=False)
        try:
            seed(tandem.url, artifact_location=os.path.join(local, "exim-a"))
            before = snapshot(tandem.url)
            tool("export-all", tandem.url, "--output-dir", out)
            log = tool("import-all", stock.url, "--input-dir", out)
            after = snapshot(stock.url)
        finally:
            tandem.stop()
            stock.stop()
    assert len(before["models"]["exim-model"]["versions"]) == 2
    assert before["models"]["exim-model"]["aliases"] == {"champion": "2"}
    assert after == before, "\n".join(differences(after, before)) + "\n" + log[-2000:]


def test_export_all_from_stock_mlflow_and_import_all_into_tandem():
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as sroot, tempfile.TemporaryDirectory() as tdata, tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as local:
        stock = StockServer(sroot, proxied=False)
        tandem = Server(tdata)
        try:
            seed(stock.url)
            before = snapshot(stock.url)
            tool("export-all", stock.url, "--output-dir", out)
            MlflowClient(tracking_uri=tandem.url).create_experiment("exim-a", artifact_location=os.path.join(local, "exim-a"), tags={"team": "vision"})
            log = tool("import-all", tandem.url, "--input-dir", out)
            after = snapshot(tandem.url)
        finally:
            stock.stop()
            tandem.stop()
    assert len(before["models"]["exim-model"]["versions"]) == 2
    assert before["models"]["exim-model"]["aliases"] == {"champion": "2"}
    assert after == before, "\n".join(differences(after, before)) + "\n" + log[-2000:]
