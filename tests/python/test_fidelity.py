"""The same requests against tandem and against the stock MLflow server, side by side.

Each case drives one server through the stock client or plain HTTP and returns what it saw
(answers, error codes and messages, with server-specific IDs and paths replaced by names).
A case passes only when tandem and MLflow's own server saw the same thing: a test that only
tandem passes is not evidence. The stock server is the `mlflow server` of the pinned MLflow
version, installed by scripts/test.sh into its own venv (TANDEM_STOCK_MLFLOW names its bin
folder). Differences kept on purpose are listed in docs/compatibility.md.
"""

import json
import os
import re
import tempfile
import time

import pytest
import requests

from conftest import Server, StockServer, require_stock

require_stock()


@pytest.fixture(scope="module")
def servers():
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        stock = StockServer(a)
        # tandem runs from its own folder too, so relative locations resolve somewhere known.
        cwd = os.getcwd()
        os.chdir(b)
        try:
            tandem = Server(os.path.join(b, "data"))
        finally:
            os.chdir(cwd)
        tandem.cwd = os.path.realpath(b)
        try:
            yield {"tandem": tandem, "stock": stock}
        finally:
            tandem.stop()
            stock.stop()


# This module compares servers itself: the suite's per-store `server` and client settings
# (conftest.py) do not apply.
@pytest.fixture(scope="module")
def server(servers):
    return servers["tandem"]


@pytest.fixture(autouse=True)
def tracking():
    yield


NUMBERS_IN_VALUES = {"10", "11", "12", "13", "14", "15", "16", "20", "22", "23"}


class Api:
    """One server, with the names its IDs and paths are reported under."""

    def __init__(self, server):
        self.url = server.url
        self.subs = {server.cwd: "{CWD}"}
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)

    def name(self, value, as_name):
        self.subs[value] = as_name
        return value

    def norm(self, v):
        if isinstance(v, str):
            # Whole tokens only: a stock experiment ID "9" is not the 9 inside a run ID.
            for actual, name in sorted(self.subs.items(), key=lambda kv: -len(kv[0])):
                v = re.sub(r"(?<![0-9A-Za-z])" + re.escape(actual) + r"(?![0-9A-Za-z])", lambda _: name, v)
            return v
        if isinstance(v, (list, tuple)):
            return type(v)(self.norm(x) for x in v)
        if isinstance(v, dict):
            return {k: self.norm(x) for k, x in v.items()}
        return v

    def call(self, method, path, body=None, params=None, pick=None):
        """One request; an error as (status, code, message), an answer as `pick(json)`."""
        r = requests.request(method, self.url + path, json=body, params=params, timeout=30)
        try:
            j = r.json()
        except ValueError:
            return ("status", r.status_code, r.text[:200])
        if r.status_code != 200:
            return self.norm(("error", r.status_code, j.get("error_code"), j.get("message")))
        return self.norm(("ok", pick(j) if pick else None))

    def run(self, experiment_id):
        r = self.client.create_run(experiment_id)
        self.name(r.info.run_id, "{RUN%d}" % len(self.subs))
        return r

    def experiment(self, name):
        eid = self.client.create_experiment(name)
        # A one-digit ID (the stock server's first few) would also stand for that digit in
        # values ("3", a trace schema version), and so would an ID that is a number of the
        # cases' fixed times and limits ("2023-11-14T22:13:20Z", "at most 10"): set such
        # experiments aside, take the next.
        while len(eid) < 2 or eid in NUMBERS_IN_VALUES:
            self.client.rename_experiment(eid, f"{name}-set-aside-{eid}")
            eid = self.client.create_experiment(name)
        self.name(eid, "{EXP:%s}" % name)
        return eid


def model(api, name):
    return api.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": name}, pick=lambda j: j["registered_model"]["name"])


def version(api, name, source, **fields):
    body = {"name": name, "source": source, **fields}
    return api.call("POST", "/api/2.0/mlflow/model-versions/create", body, pick=lambda j: {k: j["model_version"].get(k) for k in ("version", "source", "run_id", "description", "run_link")})


# ---------------------------------------------------------------------------------------
# The cases: each returns what one server answered.

FOREIGN_RUN = "0123456789abcdef0123456789abcdef"


def case_versions_of_runs_this_server_does_not_hold(api):
    out = [model(api, "foreign-runs")]
    out.append(version(api, "foreign-runs", f"runs:/{FOREIGN_RUN}/model", run_id=FOREIGN_RUN))
    out.append(version(api, "foreign-runs", "s3://bucket/path/model", run_id=FOREIGN_RUN))
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/get-download-uri", params={"name": "foreign-runs", "version": "1"}, pick=lambda j: j["artifact_uri"]))
    return out


REFUSED_SOURCES = [
    "/etc",
    "file:///etc",
    "file:///etc/passwd",
    "relative/model",
    "./model",
    "s3://bucket/x/../y",
    "s3://bucket/x/%2e%2e/y",
    "s3://bucket/x/%2E%2E/y",
    "s3://bucket/x/%252e%252e/y",
    "s3://bucket/x/..%2fy",
    "s3://bucket/x%00/y",
    "s3://bucket/x/%2500/y",
    "s3://bucket",
    "s3://bucket/./x",
    f"runs://somehost/{FOREIGN_RUN}/model",
    f"runs:/{FOREIGN_RUN}/model",
    "runs:/",
    "models:/m-0123456789abcdef0123456789abcdef",
    "models://host/other/1",
    "mlflow-artifacts:/0/elsewhere/artifacts/model",
    "mlflow-artifacts://otherhost/0/x",
    "http://example.invalid/api/2.0/mlflow-artifacts/artifacts/x",
    "https://example.invalid/model",
    "ftp://example.invalid/model",
    "hdfs://namenode/model",
]


def case_sources_mlflow_refuses_are_refused(api):
    out = [model(api, "refused-sources")]
    for s in REFUSED_SOURCES:
        out.append((s, version(api, "refused-sources", s)))
    # With a run named, local paths and the run's own URIs are judged against it.
    eid = api.experiment("refused-sources")
    run = api.run(eid)
    rid = run.info.run_id
    for s in ["/etc", "file:///etc", f"runs:/{FOREIGN_RUN}/model", run.info.artifact_uri + "/../../other", run.info.artifact_uri.replace(rid, FOREIGN_RUN) + "/model"]:
        out.append((api.norm(s), version(api, "refused-sources", s, run_id=rid)))
    # Nothing refused left a version behind.
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": "name='refused-sources'"}, pick=lambda j: len(j.get("model_versions", []))))
    return out


def case_sources_mlflow_accepts_are_accepted(api):
    out = [model(api, "accepted-sources")]
    eid = api.experiment("accepted-sources")
    run = api.run(eid)
    rid = run.info.run_id
    out.append(version(api, "accepted-sources", f"runs:/{rid}/model", run_id=rid))
    out.append(version(api, "accepted-sources", run.info.artifact_uri + "/model", run_id=rid))
    out.append(version(api, "accepted-sources", "s3://bucket/ok/model"))
    out.append(version(api, "accepted-sources", "gs://bucket/ok/model", run_id=FOREIGN_RUN))
    # A registered version as the source: recorded as models:/name/version, with its lineage.
    out.append(version(api, "accepted-sources", "models:/accepted-sources/1"))
    api.call("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "accepted-sources", "alias": "champion", "version": "2"})
    out.append(version(api, "accepted-sources", "models:/accepted-sources@champion"))
    out.append(version(api, "accepted-sources", "models:/accepted-sources/latest"))
    out.append(version(api, "accepted-sources", "models:/accepted-sources/1", run_id=FOREIGN_RUN))
    out.append(version(api, "accepted-sources", "models:/no-such-model/1"))
    out.append(version(api, "accepted-sources", "models:/accepted-sources/99"))
    out.append(version(api, "accepted-sources", "models:/accepted-sources@nobody"))
    return out


def case_logged_models_and_their_versions(api):
    eid = api.experiment("logged-models")
    out = []
    ids = {}
    for name in ["alpha", "beta", "gamma"]:
        m = api.client.create_logged_model(eid, name=name, params={"lr": "0.1"}, tags={"team": name[0]})
        ids[name] = api.name(m.model_id, "{MODEL:%s}" % name)
    out.append(model(api, "from-logged"))
    a = ids["alpha"]
    out.append(version(api, "from-logged", f"models:/{a}", model_id=a))
    out.append(version(api, "from-logged", f"models:/{ids['beta']}", model_id=a))
    out.append(version(api, "from-logged", f"runs:/{FOREIGN_RUN}/model", model_id=a))
    out.append(version(api, "from-logged", f"models:/{a}"))
    out.append(api.norm(api.client.get_logged_model(a).tags))
    out.append(version(api, "from-logged", f"models:/{a}", model_id=a))
    out.append(api.norm(json.loads(api.client.get_logged_model(a).tags["mlflow.modelVersions"])))
    # A logged model whose run this server does not hold.
    out.append(api.call("POST", "/api/2.0/mlflow/logged-models", {"experiment_id": eid, "name": "foreign", "source_run_id": FOREIGN_RUN}, pick=lambda j: j["model"]["info"].get("source_run_id")))
    for bad in ["a/b", "a.b", "a:b", "a%b"]:
        out.append(api.call("POST", "/api/2.0/mlflow/logged-models", {"experiment_id": eid, "name": bad}))
    names = lambda models: [m.name for m in models]  # noqa: E731
    for f in ["name = 'alpha'", "name != 'alpha'", "name LIKE 'b%'", "name ILIKE 'G%'", "params.lr = '0.1'", "tags.team = 'b'", "name = 'alpha' AND tags.team = 'a'", "name IN ('alpha', 'gamma')"]:
        out.append((f, sorted(names(api.client.search_logged_models([eid], filter_string=f)))))
    out.append(names(api.client.search_logged_models([eid], order_by=[{"field_name": "name", "ascending": True}])))
    out.append(names(api.client.search_logged_models([eid], order_by=[{"field_name": "name", "ascending": False}])))
    page = api.client.search_logged_models([eid], max_results=2, order_by=[{"field_name": "name", "ascending": True}])
    rest = api.client.search_logged_models([eid], max_results=2, order_by=[{"field_name": "name", "ascending": True}], page_token=page.token)
    out.append((names(page), names(rest), rest.token))
    return out


def case_logged_model_metrics_and_dataset_filters(api):
    eid = api.experiment("logged-model-metrics")
    rid = api.run(eid).info.run_id
    ids = {}
    for i, name in enumerate(["m-one", "m-two", "m-three"]):
        m = api.client.create_logged_model(eid, name=name.replace("-", "_"), source_run_id=rid)
        ids[name] = api.name(m.model_id, "{MODEL:%s}" % name)
        api.client.log_metric(rid, "acc", 0.5 + i / 10, timestamp=1000 + i, step=0, model_id=m.model_id, dataset_name="train", dataset_digest="d1")
        api.client.log_metric(rid, "acc", 0.9 - i / 10, timestamp=2000 + i, step=0, model_id=m.model_id, dataset_name="test", dataset_digest="d2")
    names = lambda models: [m.name for m in models]  # noqa: E731
    out = []
    for f in ["metrics.acc > 0.55", "metrics.acc < 0.75", "metrics.acc >= 0.6 AND name != 'm_three'"]:
        out.append((f, sorted(names(api.client.search_logged_models([eid], filter_string=f)))))
        # (A name without a digest is left out here: MLflow's server matches no point then,
        # which docs/compatibility.md lists; tandem matches every digest of that name.)
        for ds in [[{"dataset_name": "train", "dataset_digest": "d1"}], [{"dataset_name": "test", "dataset_digest": "d2"}], [{"dataset_name": "test", "dataset_digest": "other"}], [{"dataset_name": "train", "dataset_digest": "d1"}, {"dataset_name": "test", "dataset_digest": "d2"}]]:
            out.append((f, ds, sorted(names(api.client.search_logged_models([eid], filter_string=f, datasets=ds)))))
    for order in [
        [{"field_name": "metrics.acc", "ascending": True}],
        [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "train"}],
        [{"field_name": "metrics.acc", "ascending": True, "dataset_name": "test", "dataset_digest": "d2"}],
        [{"field_name": "creation_timestamp", "ascending": True}],
    ]:
        out.append((order, names(api.client.search_logged_models([eid], order_by=order))))
    m = api.client.get_logged_model(ids["m-two"])
    out.append(sorted((x.key, x.value, x.dataset_name, x.dataset_digest) for x in m.metrics))
    return out


def case_validation_messages(api):
    eid = api.experiment("validation")
    rid = api.run(eid).info.run_id
    calls = [
        ("POST", "/api/2.0/mlflow/registered-models/create", {}),
        ("POST", "/api/2.0/mlflow/registered-models/create", {"name": 123}),
        ("POST", "/api/2.0/mlflow/registered-models/create", {"name": ""}),
        ("POST", "/api/2.0/mlflow/experiments/create", {}),
        ("POST", "/api/2.0/mlflow/model-versions/create", {"name": "x"}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "metrics": [{"key": "a", "value": 1}]}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "metrics": [{"key": "a", "value": 1, "timestamp": 1}, {"value": 1, "timestamp": 1}]}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "metrics": [{"key": "a", "timestamp": 1}]}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "params": [{"value": "v"}]}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "tags": [{"key": "ok"}, {"value": "v"}]}),
        ("POST", "/api/2.0/mlflow/runs/log-batch", {"metrics": []}),
        ("GET", "/api/2.0/mlflow/artifacts/list", {"run_id": rid, "path": "../x"}),
        ("GET", "/api/2.0/mlflow/artifacts/list", {"run_id": rid, "path": "a/../../x"}),
        ("GET", "/api/2.0/mlflow/artifacts/list", {"run_id": rid, "path": "/etc"}),
    ]
    out = []
    for method, path, body in calls:
        if method == "GET":
            out.append(api.call(method, path, params=body))
        else:
            out.append(api.call(method, path, body))
    # The run got nothing from the refused batches.
    r = api.client.get_run(rid)
    out.append((r.data.metrics, r.data.params, {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")}))
    return out


def case_common_bad_input(api):
    eid = api.experiment("common-bad-input")
    rid = api.run(eid).info.run_id
    model(api, "common-bad-input")
    calls = [
        ("POST", "/api/2.0/mlflow/experiments/create", {"name": ""}),
        ("GET", "/api/2.0/mlflow/experiments/get", {}),
        ("GET", "/api/2.0/mlflow/experiments/get", {"experiment_id": "424242"}),
        ("GET", "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "nope"}),
        ("POST", "/api/2.0/mlflow/experiments/search", {"max_results": 0}),
        ("POST", "/api/2.0/mlflow/experiments/update", {"experiment_id": eid}),
        ("POST", "/api/2.0/mlflow/experiments/delete", {}),
        ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "424242"}),
        ("GET", "/api/2.0/mlflow/runs/get", {"run_id": "abc"}),
        ("GET", "/api/2.0/mlflow/runs/get", {}),
        ("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": rid, "key": "m"}),
        ("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": rid, "key": "m", "value": "x", "timestamp": 1}),
        ("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": rid, "key": "bad key!", "value": 1, "timestamp": 1}),
        ("POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": rid, "key": "p"}),
        ("POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": rid, "key": "p", "value": "a"}),
        ("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": rid, "value": "v"}),
        ("POST", "/api/2.0/mlflow/runs/delete-tag", {"run_id": rid, "key": "nope"}),
        ("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "order_by": ["nope.x"]}),
        ("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "max_results": 100000}),
        ("GET", "/api/2.0/mlflow/metrics/get-history", {"run_id": rid}),
        ("GET", "/api/2.0/mlflow/metrics/get-history", {"run_id": rid, "metric_key": "nope"}),
        ("POST", "/api/2.0/mlflow/registered-models/create", {"name": "common-bad-input"}),
        ("POST", "/api/2.0/mlflow/registered-models/rename", {"name": "common-bad-input"}),
        ("GET", "/api/2.0/mlflow/registered-models/get", {"name": "nope"}),
        ("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "common-bad-input", "alias": "a", "version": "9"}),
        ("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "common-bad-input", "alias": "latest", "version": "1"}),
        ("GET", "/api/2.0/mlflow/registered-models/alias", {"name": "common-bad-input", "alias": "nope"}),
        ("GET", "/api/2.0/mlflow/model-versions/get", {"name": "common-bad-input", "version": "x"}),
        ("GET", "/api/2.0/mlflow/model-versions/get", {"name": "common-bad-input", "version": "7"}),
        ("POST", "/api/2.0/mlflow/model-versions/transition-stage", {"name": "common-bad-input", "version": "1", "stage": "Nope"}),
        ("POST", "/api/2.0/mlflow/logged-models", {}),
        ("GET", "/api/2.0/mlflow/logged-models/m-0123456789abcdef0123456789abcdef", None),
    ]
    out = [api.call(m, p, params=b) if m == "GET" else api.call(m, p, b) for m, p, b in calls]
    # What the accepted ones left: a param logged without a value is the empty string.
    r = api.client.get_run(rid)
    out.append((r.data.params, r.data.metrics))
    return out


def case_experiment_artifact_locations(api):
    out = []
    for i, loc in enumerate(["relative/dir", "./rel/../x", "file:relative", "/abs/dir", "s3://bucket/prefix", "runs:/abc/x", "s3://bucket/p#frag", "s3://bucket/p?q=..", "http://example.invalid/x"]):
        r = api.call("POST", "/api/2.0/mlflow/experiments/create", {"name": f"loc-{i}", "artifact_location": loc}, pick=lambda j: j["experiment_id"])
        if r[0] == "ok":
            got = api.call("GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": r[1]}, pick=lambda j: j["experiment"]["artifact_location"])
            out.append((loc, got))
        else:
            out.append((loc, r))
    return out


def case_get_parameters_in_a_json_body(api):
    eid = api.experiment("get-body")
    rid = api.run(eid).info.run_id
    api.client.log_metric(rid, "m", 1.5, timestamp=5, step=2)
    model(api, "get-body")
    version(api, "get-body", f"runs:/{rid}/model", run_id=rid)
    api.call("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "get-body", "alias": "a", "version": "1"})
    gets = [
        ("/api/2.0/mlflow/registered-models/get", {"name": "get-body"}, lambda j: j["registered_model"]["name"]),
        ("/api/2.0/mlflow/model-versions/get", {"name": "get-body", "version": "1"}, lambda j: j["model_version"]["run_id"]),
        ("/api/2.0/mlflow/registered-models/alias", {"name": "get-body", "alias": "a"}, lambda j: j["model_version"]["version"]),
        ("/api/2.0/mlflow/model-versions/search", {"filter": "name='get-body'"}, lambda j: len(j["model_versions"])),
        ("/api/2.0/mlflow/registered-models/search", {"filter": "name='get-body'"}, lambda j: [m["name"] for m in j["registered_models"]]),
        ("/api/2.0/mlflow/experiments/get", {"experiment_id": eid}, lambda j: j["experiment"]["name"]),
        ("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "get-body"}, lambda j: j["experiment"]["experiment_id"]),
        ("/api/2.0/mlflow/runs/get", {"run_id": rid}, lambda j: j["run"]["info"]["run_id"]),
        ("/api/2.0/mlflow/metrics/get-history", {"run_id": rid, "metric_key": "m"}, lambda j: [(m["value"], m["step"]) for m in j["metrics"]]),
        ("/api/2.0/mlflow/model-versions/get-download-uri", {"name": "get-body", "version": "1"}, lambda j: j["artifact_uri"]),
        ("/api/2.0/mlflow/registered-models/get", {"name": "no-such-model"}, None),
    ]
    out = []
    for path, body, pick in gets:
        out.append((path, api.call("GET", path, body, pick=pick)))
    # The query string, when there is one, wins (MLflow reads the body only without one).
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/get", {"name": "no-such-model"}, params={"name": "get-body"}, pick=lambda j: j["registered_model"]["name"]))
    return out


def case_defaults_pagination_and_ordering(api):
    """What a client gets without asking: default fields and values, default orders, page
    sizes and page tokens, for every search the client pages through."""
    # Not named: the stock server's small experiment IDs would read as version numbers.
    eid = api.client.create_experiment("defaults-and-pages")
    out = []

    def keys_and(j, path, drop=()):
        for p in path:
            j = j[p]
        return sorted((k, v if k not in drop else "<set>") for k, v in j.items())

    # A new run: which fields are there, and their defaults (times and IDs blanked).
    rid = api.client.create_run(eid, run_name="first").info.run_id
    api.name(rid, "{FIRST}")
    out.append(api.call("GET", "/api/2.0/mlflow/runs/get", params={"run_id": rid}, pick=lambda j: (keys_and(j, ["run", "info"], drop=("start_time", "run_id", "run_uuid", "artifact_uri", "user_id", "experiment_id")), {k: v for k, v in j["run"].items() if k != "info"})))
    out.append(api.call("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "filter": "params.nothing = 'x'"}, pick=lambda j: j))
    out.append(api.call("GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": eid}, pick=lambda j: keys_and(j, ["experiment"], drop=("creation_time", "last_update_time", "artifact_location", "experiment_id"))))
    # Runs with start times in a known order, and equal start times (tie-break order).
    names = []
    for i, t in enumerate([5000, 1000, 3000, 3000, 2000, 4000, 3000]):
        r = api.client.create_run(eid, start_time=t, run_name=f"r{i}")
        api.name(r.info.run_id, f"{{R{i}}}")
        names.append(r.info.run_id)
        # Runs 2, 3 and 6 tie on start time, metric, param and status: only their IDs order them.
        tie = i in (2, 3, 6)
        api.client.log_metric(r.info.run_id, "m", 2.0 if tie else float((i * 7) % 5), step=0, timestamp=1)
        api.client.log_param(r.info.run_id, "p", "v1" if tie else f"v{i % 3}")
    api.client.set_terminated(names[1], "FAILED")
    search = "/api/2.0/mlflow/runs/search"
    # Runs that tie on every order key come by run ID (random): named by their rank among
    # the tied runs, so that both servers' orders compare.
    tied = sorted(names[i] for i in (2, 3, 6))
    label = lambda r: f"T{tied.index(r['info']['run_id'])}" if r["info"]["run_id"] in tied else r["info"]["run_name"]
    pick_runs = lambda j: ([label(r) for r in j.get("runs", [])], "next_page_token" in j)
    out.append(api.call("POST", search, {"experiment_ids": [eid]}, pick=pick_runs))
    for order in (["metrics.m DESC"], ["params.p"], ["attributes.start_time ASC"], ["status"], ["metrics.m", "start_time DESC"]):
        out.append((order, api.call("POST", search, {"experiment_ids": [eid], "order_by": order}, pick=pick_runs)))
    out.append(api.call("POST", search, {"experiment_ids": [eid], "order_by": ["run_name DESC"]}, pick=lambda j: [r["info"]["run_name"] for r in j["runs"]]))
    # Paging: size 3 through all pages; the last page has no token.
    token, pages = None, []
    for _ in range(5):
        body = {"experiment_ids": [eid], "max_results": 3, **({"page_token": token} if token else {})}
        r = requests.post(api.url + search, json=body, timeout=30).json()
        pages.append([label(x) for x in r.get("runs", [])])
        token = r.get("next_page_token")
        if not token:
            break
    out.append(("run pages", pages, token))
    out.append(api.call("POST", search, {"experiment_ids": [eid], "filter": "metrics.m > 1", "max_results": 2}, pick=pick_runs))
    out.append(api.call("POST", search, {"experiment_ids": [eid], "run_view_type": "ALL", "filter": "attributes.status = 'FAILED'"}, pick=pick_runs))
    # Experiments: default order, page size and tokens.
    for i in range(4):
        # Not named: the stock server's small experiment IDs would read as version numbers.
        # Apart in time: within one millisecond the two servers' ID tie-breaks differ
        # (sequential IDs there, time plus random bits here).
        time.sleep(0.005)
        api.client.create_experiment(f"defaults-page-{i}")
    pick_exps = lambda j: ([e["name"] for e in j.get("experiments", []) if e["name"].startswith("defaults-")], "next_page_token" in j)
    out.append(api.call("POST", "/api/2.0/mlflow/experiments/search", {"filter": "name LIKE 'defaults-%'"}, pick=pick_exps))
    out.append(api.call("POST", "/api/2.0/mlflow/experiments/search", {"filter": "name LIKE 'defaults-%'", "max_results": 1000}, pick=pick_exps))
    out.append(api.call("POST", "/api/2.0/mlflow/experiments/search", {"filter": "name LIKE 'defaults-%'", "max_results": 2}, pick=pick_exps))
    out.append(api.call("POST", "/api/2.0/mlflow/experiments/search", {"filter": "name LIKE 'defaults-%'", "order_by": ["name DESC"], "max_results": 10}, pick=pick_exps))
    out.append(api.call("GET", "/api/2.0/mlflow/experiments/search", params={"filter": "name = 'nothing-like-this'", "max_results": 5}, pick=lambda j: j))
    # Registered models and versions: defaults, order and pages.
    for n in ("dp-b", "dp-a", "dp-c"):
        model(api, n)
    for i in range(3):
        version(api, "dp-a", f"runs:/{names[i]}/model", run_id=names[i])
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/get", params={"name": "dp-a"}, pick=lambda j: keys_and(j, ["registered_model"], drop=("creation_timestamp", "last_updated_timestamp", "latest_versions"))))
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/get", params={"name": "dp-a", "version": "2"}, pick=lambda j: keys_and(j, ["model_version"], drop=("creation_timestamp", "last_updated_timestamp", "source", "run_id"))))
    pick_models = lambda j: ([m["name"] for m in j.get("registered_models", [])], "next_page_token" in j)
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/search", params={"filter": "name LIKE 'dp-%'"}, pick=pick_models))
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/search", params={"filter": "name LIKE 'dp-%'", "max_results": 2}, pick=pick_models))
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/search", params={"filter": "name LIKE 'dp-%'", "order_by": "name DESC"}, pick=pick_models))
    pick_versions = lambda j: ([(v["name"], v["version"]) for v in j.get("model_versions", [])], "next_page_token" in j)
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": "name='dp-a'"}, pick=pick_versions))
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": "name='dp-a'", "max_results": 2}, pick=pick_versions))
    out.append(api.call("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": "name='dp-a'", "order_by": "version_number ASC"}, pick=pick_versions))
    out.append(api.call("GET", "/api/2.0/mlflow/registered-models/get-latest-versions", params={"name": "dp-a"}, pick=lambda j: [v["version"] for v in j["model_versions"]]))
    # Metric history: order of points logged out of order.
    rid = names[0]
    for step, ts in ((3, 30), (1, 10), (2, 5), (1, 20)):
        api.client.log_metric(rid, "h", float(step * 10 + ts), step=step, timestamp=ts)
    out.append(api.call("GET", "/api/2.0/mlflow/metrics/get-history", params={"run_id": rid, "metric_key": "h"}, pick=lambda j: [(m["step"], m["timestamp"], m["value"]) for m in j["metrics"]]))
    out.append(api.call("GET", "/api/2.0/mlflow/metrics/get-history", params={"run_id": rid, "metric_key": "h", "max_results": 2}, pick=lambda j: ([(m["step"], m["timestamp"]) for m in j["metrics"]], "next_page_token" in j)))
    return out


def case_ui_routes(api):
    """Routes MLflow's server keeps for its web UI, under /ajax-api."""
    eid = api.client.create_experiment("ui-routes")
    runs = []
    for i in range(2):
        rid = api.client.create_run(eid, run_name=f"u{i}").info.run_id
        api.name(rid, f"{{U{i}}}")
        runs.append(rid)
        for step, ts in ((2, 20), (1, 30), (3, 10)):
            api.client.log_metric(rid, "m", float(step + i), step=step, timestamp=ts)
    from mlflow.entities import Dataset, DatasetInput, InputTag

    for i, ctx in ((0, "training"), (1, "eval")):
        ds = Dataset(name=f"ds{i}", digest=f"d{i}", source_type="local", source="{}")
        api.client.log_inputs(runs[i], datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", ctx)])])
    bulk = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
    def pick(j):
        # Runs come in run ID order (random IDs): say that, and compare each run's points.
        ms = j.get("metrics", [])
        order = [m["run_id"] for m in ms]
        per_run = {}
        for m in ms:
            per_run.setdefault(m["run_id"], []).append((m["step"], m["timestamp"], m["value"]))
        return (order == sorted(order), sorted((api.subs.get(k, k), v) for k, v in per_run.items()))
    out = [
        api.call("GET", bulk, params=[("run_id", runs[1]), ("run_id", runs[0]), ("metric_key", "m")], pick=pick),
        api.call("GET", bulk, params=[("run_id", runs[0]), ("metric_key", "m"), ("max_results", "2")], pick=pick),
        api.call("GET", bulk, params=[("run_id", runs[0]), ("metric_key", "nope")], pick=pick),
        api.call("GET", bulk, params=[("metric_key", "m")]),
        api.call("GET", bulk, params=[("run_id", runs[0])]),
        api.call("POST", "/ajax-api/2.0/mlflow/experiments/search-datasets", {"experiment_ids": [eid]}, pick=lambda j: sorted(json.dumps({**d, "experiment_id": d["experiment_id"] == eid}, sort_keys=True) for d in j.get("dataset_summaries", []))),
        api.call("POST", "/ajax-api/2.0/mlflow/experiments/search-datasets", {"experiment_ids": []}),
        # No gateway and no assistant configured.
        api.call("GET", "/ajax-api/2.0/mlflow/gateway-proxy", params={"gateway_path": "api/2.0/endpoints/"}, pick=lambda j: j),
        api.call("POST", "/ajax-api/2.0/mlflow/gateway-proxy", {"gateway_path": "api/2.0/endpoints/"}, pick=lambda j: j),
        api.call("GET", "/ajax-api/3.0/mlflow/assistant/config", pick=lambda j: j),
    ]
    return out


def case_genai_page_searches(api):
    """The searches the UI's GenAI pages make (traces, trace metrics, evaluation datasets,
    scorers), over an experiment with none of those: answers and refusals."""
    eid = api.experiment("genai-pages")
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    metrics = "/ajax-api/3.0/mlflow/traces/metrics"
    count = {"experiment_ids": [eid], "view_type": "TRACES", "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}]}
    j = lambda x: x
    return [
        api.call("POST", "/ajax-api/3.0/mlflow/traces/search", {"locations": loc, "max_results": 25, "order_by": ["timestamp_ms DESC"]}, pick=j),
        api.call("POST", "/ajax-api/3.0/mlflow/traces/search", {"locations": [], "max_results": 1}, pick=j),
        api.call("POST", "/ajax-api/3.0/mlflow/traces/search", {"max_results": 1}),
        api.call("POST", "/ajax-api/3.0/mlflow/traces/search", {"locations": loc, "max_results": 0}),
        api.call("POST", metrics, count, pick=j),
        api.call("POST", metrics, {**count, "start_time_ms": 1, "end_time_ms": 2}, pick=j),
        api.call("POST", metrics, {**count, "time_interval_seconds": 60, "start_time_ms": 1, "end_time_ms": 2}, pick=j),
        api.call("POST", metrics, {**count, "dimensions": ["trace_name"]}, pick=j),
        api.call("POST", metrics, {**count, "view_type": "SPANS", "metric_name": "span_count"}, pick=j),
        api.call("POST", metrics, {**count, "metric_name": "session_count"}, pick=j),
        api.call("POST", metrics, {**count, "metric_name": "latency", "aggregations": [{"aggregation_type": "AVG"}]}, pick=j),
        api.call("POST", metrics, {**count, "metric_name": "latency"}),
        api.call("POST", metrics, {**count, "aggregations": [{"aggregation_type": "AVG"}]}),
        api.call("POST", metrics, {**count, "metric_name": "nope"}),
        api.call("POST", metrics, {**count, "view_type": "SPANS", "metric_name": "nope"}),
        api.call("POST", metrics, {**count, "view_type": "ASSESSMENTS", "metric_name": "nope"}),
        api.call("POST", metrics, {**count, "time_interval_seconds": 60}),
        api.call("POST", metrics, {**count, "view_type": "BOGUS"}, pick=j),
        api.call("POST", metrics, {k: v for k, v in count.items() if k != "view_type"}),
        api.call("POST", metrics, {k: v for k, v in count.items() if k != "aggregations"}),
        api.call("POST", metrics, {}),
        api.call("POST", "/ajax-api/3.0/mlflow/datasets/search", {"experiment_ids": [eid], "order_by": ["created_time DESC"], "max_results": 50}, pick=j),
        api.call("POST", "/ajax-api/3.0/mlflow/datasets/search", {"max_results": -1000000}),
        api.call("GET", "/ajax-api/3.0/mlflow/scorers/list", params={"experiment_id": eid}, pick=j),
        api.call("GET", "/ajax-api/3.0/mlflow/scorers/list", pick=j),
    ]


def case_graphql_queries_of_the_ui(api):
    """The GraphQL operations the installed UI build sends (read from it), on both servers."""
    from test_ui import ui_build, ui_queries

    queries = ui_queries(ui_build())
    eid = api.client.create_experiment("graphql-ui")
    api.client.set_experiment_tag(eid, "team", "a")
    rid = api.client.create_run(eid, run_name="g").info.run_id
    api.name(rid, "{GRUN}")
    api.client.log_param(rid, "lr", "0.1")
    api.client.set_tag(rid, "t", "v")
    for i in range(4):
        api.client.log_metric(rid, "loss", 1.0 / (i + 1), step=i, timestamp=1000 + i)
    model(api, "graphql-ui")
    version(api, "graphql-ui", f"runs:/{rid}/model", run_id=rid)
    variables = {
        "MlflowGetExperimentQuery": {"input": {"experimentId": eid}},
        "GetRun": {"data": {"runId": rid}},
        # (MLflow's server fails a `runViewType` given as a variable: "Failed to parse
        # run_view_type field"; the UI does not send one.)
        "SearchRuns": {"data": {"experimentIds": [eid], "filter": "", "maxResults": 10, "orderBy": ["attributes.start_time DESC"]}},
        # MLflow ignores maxResults here (its handler reads the query string): all 4 points.
        "GetMetricHistoryBulkInterval": {"data": {"runIds": [rid], "metricKey": "loss", "maxResults": 3}},
    }
    # What differs by server and moment, not by behaviour.
    drop = {"startTime", "endTime", "creationTime", "lastUpdateTime", "creationTimestamp", "artifactUri", "artifactLocation", "userId", "experimentId", "source", "effectiveTraceArchivalRetention"}

    def scrub(v):
        if isinstance(v, dict):
            return {k: scrub(x) for k, x in v.items() if k not in drop}
        if isinstance(v, list):
            items = [scrub(x) for x in v]
            # Tags the client sets itself (user, source) differ by process; keep the others.
            return [x for x in items if not (isinstance(x, dict) and str(x.get("key", "")).startswith("mlflow.") and x.get("key") != "mlflow.runName")]
        return v

    out = []
    for name in sorted(variables):
        r = requests.post(api.url + "/graphql", json={"operationName": name, "variables": variables[name], "query": queries[name]}, timeout=30)
        out.append((name, r.status_code, api.norm(scrub(r.json()))))
    return out

GATEWAY_ID = re.compile(r"^(s|d|e|m|bp)-[0-9a-f]{32}$")
GATEWAY_TIMES = {"created_at", "last_updated_at", "window_start_ms", "window_end_ms"}


def gateway(api, method, path, body=None, params=None):
    """One gateway call: IDs named in order of appearance, times and the endpoint's tracing
    experiment ID replaced (they differ by server and moment, not by behaviour)."""

    def scrub(v):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in GATEWAY_TIMES:
                    out[k] = "T" if isinstance(x, int) and x > 0 else x
                elif k == "experiment_id":
                    out[k] = "EXP"
                else:
                    out[k] = scrub(x)
            return out
        if isinstance(v, list):
            # Lists in the order each server's query happens to give: by name, then as given.
            items = [scrub(x) for x in v]
            return sorted(items, key=lambda x: str(x.get("name", "")) if isinstance(x, dict) else "")
        if isinstance(v, str) and GATEWAY_ID.match(v) and v not in api.subs:
            api.name(v, "{%s%d}" % (v.split("-")[0].upper(), len(api.subs)))
        return v

    r = requests.request(method, api.url + "/api/3.0/mlflow/gateway/" + path, json=body, params=params, timeout=30)
    try:
        j = r.json()
    except ValueError:
        return ("status", r.status_code, r.text[:200])
    if r.status_code != 200:
        return api.norm(("error", r.status_code, j.get("error_code"), j.get("message")))
    return api.norm(("ok", scrub(j)))


def case_ai_gateway(api):
    g = lambda *a, **k: gateway(api, *a, **k)  # noqa: E731
    out = []
    key = {"api_key": "sk-test-0123456789abcd"}
    base = {"api_base": "https://8.8.8.8/v1"}
    # Secrets: created, refused, read, listed, updated.
    out.append(g("POST", "secrets/create", {"secret_name": "openai-key", "secret_value": key, "provider": "openai", "auth_config": base, "created_by": "alice"}))
    sid = next(k for k, v in api.subs.items() if v.startswith("{S"))
    out.append(g("POST", "secrets/create", {"secret_name": "short", "secret_value": {"api_key": "abc", "org": "12345678"}}))
    out.append(g("POST", "secrets/create", {"secret_name": "openai-key", "secret_value": key}))
    for bad in [
        {"secret_value": key},
        {"secret_name": "x"},
        {"secret_name": "x", "secret_value": {"api_key": "k", "base_url": "https://8.8.8.8"}},
        {"secret_name": "x", "secret_value": key, "auth_config": {"custom_llm_provider": "openai"}},
        {"secret_name": "x", "secret_value": key, "auth_config": {"api_base": "http://8.8.8.8/v1"}},
        {"secret_name": "x", "secret_value": key, "auth_config": {"api_base": "https://127.0.0.1/v1"}},
        {"secret_name": "x", "secret_value": key, "auth_config": {"api_base": "https://10.0.0.1/v1"}},
        {"secret_name": "x", "secret_value": key, "auth_config": {"api_base": "https://user:pw@8.8.8.8/v1"}},
    ]:
        out.append(g("POST", "secrets/create", bad))
    out.append(g("GET", "secrets/get", params={"secret_id": sid}))
    out.append(g("GET", "secrets/get", params={"secret_id": "s-00000000000000000000000000000000"}))
    out.append(g("GET", "secrets/get", params={}))
    out.append(g("GET", "secrets/list"))
    out.append(g("GET", "secrets/list", params={"provider": "openai"}))
    out.append(g("GET", "secrets/list", params={"provider": "azure"}))
    out.append(g("POST", "secrets/update", {"secret_id": sid, "secret_value": {"api_key": "sk-rotated-99998888"}, "updated_by": "bob"}))
    out.append(g("POST", "secrets/update", {"secret_id": sid, "auth_config": {"api_base": " "}}))
    out.append(g("POST", "secrets/update", {"secret_id": "s-00000000000000000000000000000000"}))
    # Model definitions.
    out.append(g("POST", "model-definitions/create", {"name": "gpt", "secret_id": sid, "provider": "openai", "model_name": "gpt-4o-mini", "created_by": "alice"}))
    did = [k for k, v in api.subs.items() if v.startswith("{D")][0]
    out.append(g("POST", "model-definitions/create", {"name": "gpt", "secret_id": sid, "provider": "openai", "model_name": "gpt-4o"}))
    out.append(g("POST", "model-definitions/create", {"name": "gpt2", "secret_id": "s-00000000000000000000000000000000", "provider": "openai", "model_name": "gpt-4o"}))
    out.append(g("POST", "model-definitions/create", {"name": "gpt2", "secret_id": sid, "model_name": "gpt-4o"}))
    out.append(g("POST", "model-definitions/create", {"name": "emb", "secret_id": sid, "provider": "openai", "model_name": "text-embedding-3-small"}))
    did2 = [k for k, v in api.subs.items() if v.startswith("{D")][1]
    out.append(g("GET", "model-definitions/get", params={"model_definition_id": did}))
    out.append(g("GET", "model-definitions/get", params={"model_definition_id": "d-00000000000000000000000000000000"}))
    out.append(g("GET", "model-definitions/list", params={"provider": "openai"}))
    out.append(g("GET", "model-definitions/list", params={"secret_id": sid}))
    out.append(g("POST", "model-definitions/update", {"model_definition_id": did2, "model_name": "text-embedding-3-large", "updated_by": "bob"}))
    out.append(g("POST", "model-definitions/update", {"model_definition_id": did2, "name": "gpt"}))
    # Endpoints.
    cfg = [{"model_definition_id": did, "linkage_type": "PRIMARY", "weight": 1.0}]
    out.append(g("POST", "endpoints/create", {"name": "chat", "model_configs": cfg, "created_by": "alice"}))
    eid = [k for k, v in api.subs.items() if v.startswith("{E")][0]
    for bad in [
        {"name": "bad name", "model_configs": cfg},
        {"name": "chat2"},
        {"name": "chat2", "model_configs": []},
        {"name": "chat2", "model_configs": [{"model_definition_id": did}]},
        {"name": "chat2", "model_configs": [{"model_definition_id": "d-00000000000000000000000000000000", "linkage_type": "PRIMARY"}]},
        {"name": "chat2", "model_configs": cfg, "experiment_id": "abc"},
    ]:
        out.append(g("POST", "endpoints/create", bad))
    out.append(g("POST", "endpoints/create", {"name": "quiet", "model_configs": cfg, "usage_tracking": False, "routing_strategy": "REQUEST_BASED_TRAFFIC_SPLIT", "fallback_config": {"strategy": "SEQUENTIAL", "max_attempts": 2}}))
    out.append(g("GET", "endpoints/get", params={"endpoint_id": eid}))
    out.append(g("GET", "endpoints/get", params={"name": "chat"}))
    out.append(g("GET", "endpoints/get", params={"name": "nope"}))
    out.append(g("GET", "endpoints/get", params={}))
    out.append(g("GET", "endpoints/list"))
    out.append(g("GET", "endpoints/list", params={"provider": "azure"}))
    out.append(g("POST", "endpoints/models/attach", {"endpoint_id": eid, "model_config": {"model_definition_id": did2, "linkage_type": "FALLBACK", "fallback_order": 1}}))
    out.append(g("POST", "endpoints/models/attach", {"endpoint_id": eid, "model_config": {"model_definition_id": did2, "linkage_type": "FALLBACK", "fallback_order": 1}}))
    out.append(g("POST", "endpoints/models/attach", {"endpoint_id": eid, "model_config": {"model_definition_id": did2}}))
    out.append(g("POST", "endpoints/models/detach", {"endpoint_id": eid, "model_definition_id": did2}))
    out.append(g("POST", "endpoints/models/detach", {"endpoint_id": eid, "model_definition_id": did2}))
    out.append(g("POST", "endpoints/models/detach", {"endpoint_id": "e-00000000000000000000000000000000", "model_definition_id": did2}))
    out.append(g("POST", "endpoints/set-tag", {"endpoint_id": eid, "key": "team", "value": "search"}))
    out.append(g("POST", "endpoints/set-tag", {"endpoint_id": eid, "key": "team", "value": "ranking"}))
    out.append(g("POST", "endpoints/set-tag", {"endpoint_id": "e-00000000000000000000000000000000", "key": "team", "value": "x"}))
    out.append(g("DELETE", "endpoints/delete-tag", {"endpoint_id": eid, "key": "nope"}))
    out.append(g("POST", "endpoints/update", {"endpoint_id": eid, "name": "chat-v2", "updated_by": "bob"}))
    # (Renaming onto a taken name: MLflow's server answers its database's UNIQUE error as a
    # BAD_REQUEST; tandem answers RESOURCE_ALREADY_EXISTS, tests/it/gateway.rs.)
    out.append(g("POST", "endpoints/update", {"endpoint_id": "e-00000000000000000000000000000000"}))
    # Bindings.
    out.append(g("POST", "endpoints/bindings/create", {"endpoint_id": eid, "resource_type": "scorer", "resource_id": "sc-1"}))
    out.append(g("GET", "endpoints/bindings/list", params={"endpoint_id": eid}))
    out.append(g("GET", "endpoints/bindings/list", params={"resource_type": "scorer", "resource_id": "sc-2"}))
    out.append(g("DELETE", "endpoints/bindings/delete", {"endpoint_id": eid, "resource_type": "scorer", "resource_id": "sc-1"}))
    out.append(g("DELETE", "endpoints/bindings/delete", {"endpoint_id": eid, "resource_type": "scorer", "resource_id": "sc-1"}))
    # A definition in use cannot go.
    out.append(g("DELETE", "model-definitions/delete", {"model_definition_id": did}))
    # Budgets.
    budget = {"budget_unit": "USD", "budget_amount": 50.0, "duration": {"unit": "DAYS", "value": 1}, "target_scope": "GLOBAL", "budget_action": "ALERT"}
    out.append(g("POST", "budgets/create", budget))
    bid = [k for k, v in api.subs.items() if v.startswith("{BP")][0]
    for bad in [
        {**budget, "duration": {"unit": "DAYS", "value": 0}},
        {**budget, "target_scope": "ENDPOINT"},
        {**budget, "target_value": "x"},
        {**budget, "target_scope": "ENDPOINT", "target_value": "e-00000000000000000000000000000000"},
        {k: v for k, v in budget.items() if k != "budget_action"},
        {**budget, "budget_unit": "BUDGET_UNIT_UNSPECIFIED"},
    ]:
        out.append(g("POST", "budgets/create", bad))
    out.append(g("POST", "budgets/update", {"budget_policy_id": bid, "budget_amount": 75.5, "budget_action": "REJECT"}))
    out.append(g("POST", "budgets/update", {"budget_policy_id": bid, "target_scope": "ENDPOINT", "target_value": eid}))
    out.append(g("GET", "budgets/get", params={"budget_policy_id": bid}))
    out.append(g("GET", "budgets/list", params={"max_results": 1}))
    out.append(g("GET", "budgets/list", params={"max_results": 0}))
    out.append(g("GET", "budgets/list", params={"max_results": 50001}))
    out.append(g("GET", "budgets/windows"))
    out.append(g("DELETE", "budgets/delete", {"budget_policy_id": bid}))
    out.append(g("DELETE", "budgets/delete", {"budget_policy_id": bid}))
    # Guardrails: none can exist without a registered scorer.
    out.append(g("GET", "guardrails/list"))
    out.append(g("GET", "guardrails/get", params={"guardrail_id": "gr-1"}))
    out.append(g("POST", "guardrails/create", {"name": "pii", "scorer_id": "sc-1", "scorer_version": 1, "stage": "BEFORE", "action": "VALIDATION"}))
    out.append(g("POST", "guardrails/create", {"name": "pii", "scorer_id": "sc-1", "scorer_version": 1, "stage": "BEFORE"}))
    out.append(g("GET", "guardrails/list-for-endpoint", params={"endpoint_id": eid}))
    out.append(g("GET", "guardrails/list-for-endpoint", params={"endpoint_id": "e-00000000000000000000000000000000"}))
    out.append(g("POST", "guardrails/add-to-endpoint", {"endpoint_id": eid, "guardrail_id": "gr-1"}))
    out.append(g("DELETE", "guardrails/remove-from-endpoint", {"endpoint_id": eid, "guardrail_id": "gr-1"}))
    # Deletes: the endpoint, then the secret, which leaves the definitions orphaned.
    out.append(g("DELETE", "endpoints/delete", {"endpoint_id": eid}))
    out.append(g("DELETE", "endpoints/delete", {"endpoint_id": eid}))
    out.append(g("DELETE", "model-definitions/delete", {"model_definition_id": did2}))
    out.append(g("DELETE", "secrets/delete", {"secret_id": sid}))
    out.append(g("GET", "secrets/get", params={"secret_id": sid}))
    out.append(g("GET", "model-definitions/get", params={"model_definition_id": did}))
    out.append(g("DELETE", "secrets/delete", {"secret_id": sid}))
    r = requests.get(api.url + "/ajax-api/3.0/mlflow/gateway/secrets/config", timeout=30)
    out.append((r.status_code, sorted(r.json())))
    return out


def otlp_value(v):
    """A value as an OTLP/JSON AnyValue, as MLflow's client sends span inputs and outputs."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": otlp_value(x)} for k, x in v.items()]}}
    if isinstance(v, list):
        return {"arrayValue": {"values": [otlp_value(x) for x in v]}}
    return {"stringValue": str(v)}


def otlp_body(trace_hex, spans):
    """An OTLP/JSON export request: spans (span hex ID, parent hex ID or None, name, start ms,
    end ms, status code, inputs, outputs) of one trace."""
    out = []
    for sid, parent, name, start, end, code, inputs, outputs in spans:
        s = {"traceId": trace_hex, "spanId": sid, "name": name, "startTimeUnixNano": str(start * 1_000_000), "endTimeUnixNano": str(end * 1_000_000),
             "attributes": [{"key": "mlflow.traceRequestId", "value": {"stringValue": "tr-" + trace_hex}},
                            {"key": "mlflow.spanType", "value": {"stringValue": "CHAIN"}},
                            {"key": "mlflow.spanInputs", "value": otlp_value(inputs)},
                            {"key": "mlflow.spanOutputs", "value": otlp_value(outputs)}],
             "status": {"code": code}}
        if parent:
            s["parentSpanId"] = parent
        out.append(s)
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "test"}, "spans": out}]}]}


def case_traces(api):
    eid = api.experiment("traces")
    out = []
    t1, t2 = "0af7651916cd43dd8448eb211c80319c", "1bf7651916cd43dd8448eb211c80319d"
    ingest = lambda body, ctype="application/json", exp=eid: requests.post(api.url + "/v1/traces", data=json.dumps(body) if not isinstance(body, bytes) else body, headers={"Content-Type": ctype, "x-mlflow-experiment-id": exp}, timeout=30)  # noqa: E731
    for trace, base, code in [(t1, 1_700_000_000_000, 1), (t2, 1_700_000_100_000, 2)]:
        r = ingest(otlp_body(trace, [("b7ad6b7169203331", None, "root", base, base + 500, code, {"q": "hi"}, "answer"),
                                     ("b7ad6b7169203332", "b7ad6b7169203331", "child", base + 100, base + 300, 1, {"x": 1}, 2)]))
        out.append((r.status_code, r.text[:100]))
    # What the client's StartTraceV3 adds once the trace ends.
    info = {"trace_id": "tr-" + t1, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}},
            "request_time": "2023-11-14T22:13:20Z", "execution_duration": "0.500s", "state": "OK", "request_preview": '{"q": "hi"}', "response_preview": '"answer"',
            "trace_metadata": {"mlflow.trace_schema.version": "3", "mlflow.user": "tester"}, "tags": {"mlflow.traceName": "root", "team": "a"}}
    out.append(api.call("POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}}, pick=lambda j: j))
    out.append(api.call("GET", f"/api/3.0/mlflow/traces/tr-{t1}", pick=lambda j: j))
    out.append(api.call("GET", f"/api/3.0/mlflow/traces/tr-{t2}", pick=lambda j: sorted(j["trace"]["trace_info"])))
    out.append(api.call("GET", "/api/3.0/mlflow/traces/get", params={"trace_id": "tr-" + t1}, pick=lambda j: j["trace"]["spans"]))
    # The UI's trace view reads the spans in MLflow's span form.
    out.append(api.call("GET", "/ajax-api/2.0/mlflow/get-trace-artifact", params={"request_id": "tr-" + t1}, pick=lambda j: j))
    assert out[-1][0] == "ok" and len(out[-1][1]["spans"]) == 2, out[-1]
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    ids = lambda j: [t["trace_id"] for t in j.get("traces", [])]  # noqa: E731
    for body in [{}, {"filter": "tags.team = 'a'"}, {"filter": "attributes.status = 'ERROR'"}, {"filter": "trace.status = 'OK'"},
                 {"filter": "attributes.timestamp_ms > 1700000050000"}, {"order_by": ["timestamp_ms ASC"]}, {"max_results": 1},
                 {"filter": "request_metadata.mlflow.user = 'tester'"}, {"filter": "tags.team = 'b'"}]:
        out.append((body, api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, **body}, pick=lambda j: (ids(j), bool(j.get("next_page_token"))))))
    out.append(api.call("GET", "/api/3.0/mlflow/traces/batchGet", params={"trace_ids": ["tr-" + t1, "tr-" + t2]}, pick=lambda j: sorted((t["trace_info"]["trace_id"], len(t["spans"])) for t in j["traces"])))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/batchGetInfos", {"trace_ids": ["tr-" + t2, "tr-nope"]}, pick=lambda j: [t["trace_id"] for t in j.get("trace_infos", [])]))
    out.append(api.call("PATCH", f"/api/3.0/mlflow/traces/tr-{t1}/tags", {"key": "env", "value": "prod"}, pick=lambda j: j))
    out.append(api.call("PATCH", f"/api/3.0/mlflow/traces/tr-{t1}/tags", {"key": "mlflow.trace.spansLocation", "value": "x"}))
    out.append(api.call("DELETE", f"/api/3.0/mlflow/traces/tr-{t1}/tags", {"key": "env"}, pick=lambda j: j))
    out.append(api.call("DELETE", f"/api/3.0/mlflow/traces/tr-{t1}/tags", {"key": "env"}))
    out.append(api.call("GET", f"/api/3.0/mlflow/traces/tr-{t1}", pick=lambda j: j["trace"]["trace_info"]["tags"]))
    # Bad input: OTLP bodies, unknown traces, deletes.
    out.append((lambda r: (r.status_code, r.json()))(ingest(b"not protobuf", "application/x-protobuf")))
    out.append((lambda r: (r.status_code, r.json()))(ingest(b"{", "application/json")))
    out.append((lambda r: (r.status_code, r.json()))(ingest({}, "application/json")))
    out.append((lambda r: r.status_code)(ingest({}, "text/plain")))
    out.append(api.call("GET", "/api/3.0/mlflow/traces/get", params={"trace_id": "tr-nope"}))
    out.append(api.call("GET", "/api/3.0/mlflow/traces/tr-nope"))
    for body in [{"experiment_id": eid}, {"experiment_id": eid, "max_timestamp_millis": 1, "request_ids": ["x"]}, {"experiment_id": eid, "max_timestamp_millis": 1, "max_traces": 0}]:
        out.append(api.call("POST", "/api/3.0/mlflow/traces/delete-traces", body))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/delete-traces", {"experiment_id": eid, "request_ids": ["tr-" + t2]}, pick=lambda j: j))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/delete-traces", {"experiment_id": eid, "max_timestamp_millis": 1_800_000_000_000, "max_traces": 5}, pick=lambda j: j))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc}, pick=ids))
    return out


def case_assessments_and_trace_links(api):
    """Feedback, expectations, overrides, updates and deletes of assessments; a trace's
    assessments in its info and in searches; links of traces to runs and prompt versions."""
    eid = api.experiment("assessments")
    run = api.run(eid).info.run_id
    t = "2cf7651916cd43dd8448eb211c80319e"
    tid = "tr-" + t
    out = []
    r = requests.post(api.url + "/v1/traces", data=json.dumps(otlp_body(t, [("c7ad6b7169203331", None, "root", 1_700_000_000_000, 1_700_000_000_500, 1, {"q": "hi"}, "answer")])),
                      headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
    out.append(r.status_code)
    base = "/api/3.0/mlflow/traces/" + tid + "/assessments"
    src = {"source_type": "HUMAN", "source_id": "alice"}
    times = {"create_time": "2026-12-05T03:24:45.724Z", "last_update_time": "2026-12-05T03:24:45.724Z"}
    ids = {}

    def created(name):
        def pick(j):
            ids[name] = api.name(j["assessment"]["assessment_id"], "{%s}" % name)
            return j
        return pick

    def no_times(j):
        a = dict(j["assessment"])
        a.pop("last_update_time")
        return a

    codes = lambda r: r[:3] if r[0] == "error" else r  # noqa: E731
    out.append(api.call("POST", base, {"assessment": {"assessment_name": "quality", "trace_id": tid, "source": src, "feedback": {"value": 4}, "rationale": "clear", "metadata": {"k": "v"}, **times}}, pick=created("A1")))
    out.append(api.call("POST", base, {"assessment": {"assessment_name": "facts", "trace_id": tid, "source": {"source_type": "CODE"}, "expectation": {"serialized_value": {"serialization_format": "JSON_FORMAT", "value": '{"a": [7, "x"]}'}}, "span_id": "c7ad6b7169203331", **times}}, pick=created("E1")))
    out.append(api.call("POST", base, {"assessment": {"assessment_name": "answer", "trace_id": tid, "source": src, "expectation": {"value": "42"}, "rationale": "dropped", **times}}, pick=created("E2")))
    out.append(api.call("POST", base, {"assessment": {"assessment_name": "judged", "trace_id": tid, "source": {"source_type": "LLM_JUDGE", "source_id": "gpt"}, "feedback": {"value": None, "error": {"error_code": "RATE_LIMIT", "error_message": "slow down"}}, **times}}, pick=created("F2")))
    out.append(api.call("GET", f"{base}/{ids['A1']}", pick=lambda j: j))
    out.append(api.call("POST", base, {"assessment": {"assessment_name": "quality", "trace_id": tid, "source": {"source_type": "HUMAN", "source_id": "bob"}, "feedback": {"value": "better"}, "overrides": ids["A1"], **times}}, pick=created("A2")))
    out.append(api.call("GET", f"{base}/{ids['A1']}", pick=lambda j: j["assessment"]["valid"]))
    out.append(api.call("PATCH", f"{base}/{ids['A2']}", {"assessment": {"rationale": "sharper", "metadata": {"m": "yes"}}, "update_mask": "rationale,metadata"}, pick=no_times))
    out.append(api.call("PATCH", f"{base}/{ids['E2']}", {"assessment": {"assessment_name": "answer2", "expectation": {"value": 7}}, "update_mask": "assessmentName,expectation"}, pick=no_times))
    out.append(codes(api.call("PATCH", f"{base}/{ids['E2']}", {"assessment": {"feedback": {"value": 1}}, "update_mask": "feedback"})))
    out.append(codes(api.call("PATCH", f"{base}/{ids['A2']}", {"assessment": {"expectation": {"value": 1}}, "update_mask": "expectation"})))
    info = lambda j: sorted((a["assessment_name"], a.get("valid"), a.get("overrides")) for a in j["trace"]["trace_info"].get("assessments", []))  # noqa: E731
    out.append(api.call("GET", "/api/3.0/mlflow/traces/" + tid, pick=info))
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    found = lambda j: [x["trace_id"] for x in j.get("traces", [])]  # noqa: E731
    for f in ["feedback.quality = 'better'", "feedback.quality = 'worse'", "expectation.answer2 IS NOT NULL", "feedback.nothing IS NULL"]:
        out.append((f, api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f}, pick=found)))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc}, pick=lambda j: sorted(a["assessment_name"] for a in j["traces"][0].get("assessments", []))))
    out.append(api.call("DELETE", f"{base}/{ids['A2']}", pick=lambda j: j))
    out.append(api.call("DELETE", f"{base}/{ids['A2']}", pick=lambda j: j))
    out.append(api.call("GET", f"{base}/{ids['A1']}", pick=lambda j: j["assessment"]["valid"]))
    out.append(codes(api.call("GET", f"{base}/{ids['A2']}")))
    out.append(codes(api.call("GET", "/api/3.0/mlflow/traces/tr-nope/assessments/a-1")))
    out.append(codes(api.call("POST", base, {"assessment": {"assessment_name": "q", "trace_id": tid, "feedback": {"value": 1}, "overrides": "a-nope", **times}})))
    # Links: a trace linked to a run is found by that run's ID; one linked to a prompt
    # version by the version.
    out.append(api.call("POST", "/api/2.0/mlflow/traces/link-to-run", {"trace_ids": [tid], "run_id": run}, pick=lambda j: j))
    out.append(api.call("POST", "/api/2.0/mlflow/traces/link-to-run", {"trace_ids": [tid], "run_id": run}, pick=lambda j: j))
    out.append(api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f"attributes.run_id = '{run}'"}, pick=found))
    out.append(api.call("POST", "/api/2.0/mlflow/traces/link-prompts", {"trace_id": tid, "prompt_versions": [{"name": "greeting", "version": "2"}]}, pick=lambda j: j))
    for f in ["prompt = 'greeting/2'", "prompt = 'greeting/1'"]:
        out.append((f, api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f}, pick=found)))
    out.append(codes(api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": "prompt = 'greeting'"})))
    out.append(codes(api.call("POST", "/api/2.0/mlflow/traces/link-to-run", {"trace_ids": ["t"] * 101, "run_id": run})))
    return out


def case_evaluation_datasets(api):
    """Evaluation datasets: create, get, search, tags, experiment links, records upserted by
    their inputs, read in pages, deleted; their bad input."""
    e1, e2 = api.experiment("ds-a"), api.experiment("ds-b")
    out = []
    d = "/api/3.0/mlflow/datasets"
    ids = {}
    times = ("created_time", "last_update_time", "digest")

    def ds(j, name=None):
        x = dict(j["dataset"])
        if name:
            ids[name] = api.name(x["dataset_id"], "{%s}" % name)
        for k in times:
            x.pop(k, None)
        x["tags"] = json.loads(x["tags"])
        for k in ("schema", "profile"):
            if k in x:
                x[k] = json.loads(x[k])
        if isinstance(x.get("schema"), dict):
            x["schema"].pop("version")
        return x

    codes = lambda r: r[:3] if r[0] == "error" else r  # noqa: E731
    out.append(api.call("POST", f"{d}/create", {"name": "qa", "experiment_ids": [e1], "tags": json.dumps({"team": "ml", "mlflow.user": "alice"})}, pick=lambda j: ds(j, "D1")))
    out.append(api.call("POST", f"{d}/create", {"name": "other", "tags": json.dumps({"team": "x"})}, pick=lambda j: ds(j, "D2")))
    out.append(api.call("GET", f"{d}/{ids['D1']}", pick=ds))
    out.append(codes(api.call("GET", f"{d}/d-nope")))
    recs = [{"inputs": {"q": "two plus two"}, "expectations": {"answer": "four"}, "tags": {"mlflow.user": "bob"}},
            {"inputs": {"q": "capital of France"}, "outputs": "Paris", "source": {"source_type": "HUMAN", "source_data": {"source_id": "carol"}}},
            {"inputs": {"q": "two plus two"}, "expectations": {"why": "arithmetic"}}]
    out.append(api.call("POST", f"{d}/{ids['D1']}/records", {"records": json.dumps(recs)}, pick=lambda j: j))
    out.append(api.call("POST", f"{d}/{ids['D1']}/records", {"records": json.dumps([{"inputs": {"q": "capital of France"}, "outputs": "Paris!", "tags": {"k": "v"}}, {"inputs": {"n": 3}, "outputs": None}])}, pick=lambda j: j))

    def records(j):
        rs = json.loads(j["records"])
        for r in rs:
            api.name(r["dataset_record_id"], "{R:%s}" % json.dumps(r["inputs"], sort_keys=True))
            for k in ("created_time", "last_update_time"):
                r.pop(k)
        # Records written in the same millisecond are in the order of their random IDs.
        return (sorted(rs, key=lambda r: json.dumps(r["inputs"], sort_keys=True)), bool(j.get("next_page_token")))

    out.append(api.call("GET", f"{d}/{ids['D1']}/records", pick=records))
    page = {}
    out.append(api.call("GET", f"{d}/{ids['D1']}/records", params={"max_results": 2}, pick=lambda j: (page.update(t=j.get("next_page_token")), records(j))[1]))
    out.append(api.call("GET", f"{d}/{ids['D1']}/records", params={"max_results": 2, "page_token": page["t"]}, pick=records))
    out.append(api.call("GET", f"{d}/{ids['D1']}", pick=ds))
    rid = json.loads(requests.get(api.url + f"{d}/{ids['D1']}/records", timeout=30).json()["records"])[0]["dataset_record_id"]
    out.append(api.call("DELETE", f"{d}/{ids['D1']}/records", {"dataset_record_ids": [rid, "dr-nope"]}, pick=lambda j: j))
    out.append(api.call("GET", f"{d}/{ids['D1']}", pick=lambda j: ds(j).get("profile")))
    out.append(api.call("PATCH", f"{d}/{ids['D1']}/tags", {"tags": json.dumps({"team": "ai", "stage": "gold"})}, pick=lambda j: j))
    out.append(api.call("DELETE", f"{d}/{ids['D1']}/tags/stage", pick=lambda j: j))
    out.append(api.call("DELETE", f"{d}/{ids['D1']}/tags/absent", pick=lambda j: j))
    out.append(api.call("GET", f"{d}/{ids['D1']}", pick=lambda j: ds(j)["tags"]))
    out.append(codes(api.call("PATCH", f"{d}/d-nope/tags", {"tags": json.dumps({"a": "b"})})))
    out.append(api.call("POST", f"{d}/{ids['D2']}/add-experiments", {"experiment_ids": [e1, e2]}, pick=ds))
    out.append(codes(api.call("POST", f"{d}/{ids['D2']}/add-experiments", {"experiment_ids": ["424242"]})))
    out.append(api.call("GET", f"{d}/{ids['D2']}/experiment-ids", pick=lambda j: sorted(api.norm(j.get("experiment_ids", [])))))
    out.append(api.call("POST", f"{d}/{ids['D2']}/remove-experiments", {"experiment_ids": [e1, "999"]}, pick=ds))
    out.append(api.call("GET", f"{d}/{ids['D2']}/experiment-ids", pick=lambda j: j.get("experiment_ids", [])))
    names = lambda j: [x["name"] for x in j.get("datasets", [])]  # noqa: E731
    for body in [{"experiment_ids": [e1]}, {"experiment_ids": [e2]}, {"filter_string": "name = 'qa'"}, {"filter_string": "tags.team = 'x'"},
                 {"order_by": ["name ASC"]}, {"order_by": ["name DESC"], "max_results": 1}, {"filter_string": "name LIKE 'q%'"}]:
        out.append((api.norm(body), api.call("POST", f"{d}/search", body, pick=names)))
    out.append(api.call("DELETE", f"{d}/{ids['D2']}", pick=lambda j: j))
    out.append(api.call("DELETE", f"{d}/{ids['D2']}", pick=lambda j: j))
    out.append(codes(api.call("GET", f"{d}/{ids['D2']}")))
    out.append(codes(api.call("POST", f"{d}/create", {})))
    out.append(codes(api.call("POST", f"{d}/{ids['D1']}/records", {})))
    return out


def case_scorers(api):
    """Registered scorers: versions, list, get, delete; custom code refused; bad input."""
    eid = api.experiment("scorers")
    out = []
    sc = "/api/3.0/mlflow/scorers"
    judge = lambda n: json.dumps({"name": "relevance", "builtin_scorer_class": "RelevanceToQuery", "call_source": None,  # noqa: E731
                                  "builtin_scorer_pydantic_data": {"name": "relevance", "model": None, "n": f"v{n}"}})

    def scorer(x):
        x = dict(x)
        api.name(x.pop("scorer_id"), "{SCORER}")
        x.pop("experiment_id", None)  # an int32 in MLflow's proto (docs/compatibility.md)
        x.pop("creation_time")
        return x

    codes = lambda r: r[:3] if r[0] == "error" else r  # noqa: E731
    for n in (1, 2):
        out.append(api.call("POST", f"{sc}/register", {"experiment_id": eid, "name": "relevance", "serialized_scorer": judge(n)}, pick=scorer))
    out.append(api.call("POST", f"{sc}/register", {"experiment_id": eid, "name": "safety", "serialized_scorer": judge(3)}, pick=scorer))
    out.append(api.call("GET", f"{sc}/list", params={"experiment_id": eid}, pick=lambda j: [scorer(x) for x in j.get("scorers", [])]))
    out.append(api.call("GET", f"{sc}/versions", params={"experiment_id": eid, "name": "relevance"}, pick=lambda j: [scorer(x) for x in j.get("scorers", [])]))
    out.append(api.call("GET", f"{sc}/get", params={"experiment_id": eid, "name": "relevance"}, pick=lambda j: scorer(j["scorer"])))
    out.append(api.call("GET", f"{sc}/get", params={"experiment_id": eid, "name": "relevance", "version": 1}, pick=lambda j: scorer(j["scorer"])))
    out.append(api.call("DELETE", f"{sc}/delete", {"experiment_id": eid, "name": "relevance", "version": 1}, pick=lambda j: j))
    out.append(codes(api.call("GET", f"{sc}/get", params={"experiment_id": eid, "name": "relevance", "version": 1})))
    out.append(codes(api.call("DELETE", f"{sc}/delete", {"experiment_id": eid, "name": "relevance", "version": 1})))
    out.append(api.call("DELETE", f"{sc}/delete", {"experiment_id": eid, "name": "safety"}, pick=lambda j: j))
    out.append(api.call("GET", f"{sc}/list", params={"experiment_id": eid}, pick=lambda j: [x["scorer_name"] for x in j.get("scorers", [])]))
    out.append(codes(api.call("GET", f"{sc}/get", params={"experiment_id": eid, "name": "safety"})))
    out.append(codes(api.call("POST", f"{sc}/register", {"experiment_id": eid, "name": "mine", "serialized_scorer": json.dumps({"name": "mine", "call_source": "return 1"})})))
    out.append(codes(api.call("POST", f"{sc}/register", {"experiment_id": eid, "name": "bad", "serialized_scorer": "{"})))
    out.append(codes(api.call("POST", f"{sc}/register", {"experiment_id": eid, "name": " ", "serialized_scorer": judge(1)})))
    out.append(codes(api.call("GET", f"{sc}/versions", params={"experiment_id": eid, "name": "nope"})))
    return out


def case_issues(api):
    """Issues: create, get, update, search (filters, severity order, trace counts from issue
    references on traces), bad input."""
    eid = api.experiment("issues")
    out = []
    base = "/api/3.0/mlflow/issues"

    def issue(j, name=None):
        x = dict(j["issue"] if "issue" in j else j)
        if name:
            api.name(x["issue_id"], "{%s}" % name)
        x.pop("created_timestamp")
        x.pop("last_updated_timestamp")
        return x

    codes = lambda r: r[:3] if r[0] == "error" else r  # noqa: E731
    ids = {}
    run = api.run(eid).info.run_id
    for n, body in [("I1", {"name": "slow answers", "description": "latency", "severity": "low", "categories": ["perf"]}),
                    ("I2", {"name": "wrong facts", "description": "hallucination", "severity": "high", "root_causes": ["stale index"], "created_by": "alice"}),
                    ("I3", {"name": "tone", "description": "rude", "source_run_id": run})]:
        out.append(api.call("POST", base, {"experiment_id": eid, **body}, pick=lambda j, n=n: issue(j, n)))
        ids[n] = next((k for k, v in api.subs.items() if v == "{%s}" % n), "iss-none")
    out.append(api.call("GET", f"{base}/{ids['I2']}", pick=issue))
    out.append(api.call("PATCH", f"{base}/{ids['I1']}", {"issue_id": ids["I1"], "status": "resolved", "severity": "medium"}, pick=issue))
    t = "3cf7651916cd43dd8448eb211c80319f"
    requests.post(api.url + "/v1/traces", data=json.dumps(otlp_body(t, [("d7ad6b7169203331", None, "root", 1_700_000_000_000, 1_700_000_000_500, 1, {"q": "x"}, "y")])),
                  headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
    out.append(api.call("POST", f"/api/3.0/mlflow/traces/tr-{t}/assessments", {"assessment": {"assessment_name": ids["I3"], "trace_id": "tr-" + t, "source": {"source_type": "HUMAN", "source_id": "a"}, "issue": {"issue_name": "tone"}}}, pick=lambda j: j["assessment"]["issue"]))
    names = lambda j: ([(x["name"], x.get("trace_count")) for x in j.get("issues", [])], j.get("next_page_token"))  # noqa: E731
    for body in [{"experiment_id": eid}, {"experiment_id": eid, "filter_string": "status = 'pending'"}, {"experiment_id": eid, "filter_string": f"source_run_id != '{run}'"},
                 {"experiment_id": eid, "include_trace_count": True}, {"experiment_id": eid, "max_results": 2}]:
        out.append((api.norm(body), api.call("POST", f"{base}/search", body, pick=names)))
    out.append(codes(api.call("GET", f"{base}/iss-nope")))
    out.append(codes(api.call("PATCH", f"{base}/iss-nope", {"issue_id": "iss-nope", "name": "x"})))
    out.append(codes(api.call("POST", base, {"experiment_id": eid, "name": "x"})))
    out.append(codes(api.call("POST", f"{base}/search", {"filter_string": "name = 'x'"})))
    return out


def case_label_schemas_and_review_queues(api):
    """Label schemas (the experiment's default question, every input kind, updates, fixed
    fields) and review queues (custom and user queues, items and their review status), with
    MLflow's validation messages."""
    eid = api.experiment("labeling")
    out = []
    ls, rq = "/api/3.0/mlflow/label-schemas", "/api/3.0/mlflow/review-queues"
    timeless = ("created_at", "last_updated_at", "creation_time_ms", "last_update_time_ms", "completed_time_ms")

    def scrub(x, name=None, key=None):
        x = dict(x)
        if name:
            api.name(x[key], "{%s}" % name)
        for k in timeless:
            x.pop(k, None)
        x = api.norm(x)
        if "schema_ids" in x:
            # MLflow lists them by ID, and IDs are random: compare them as a set.
            x["schema_ids"] = sorted(x["schema_ids"])
        return x

    schema = lambda name=None: lambda j: scrub(j["label_schema"], name, "schema_id")  # noqa: E731
    queue = lambda name=None: lambda j: scrub(j["review_queue"], name, "queue_id")  # noqa: E731
    listed = lambda key, inner: lambda j: ([scrub(x) for x in j.get(key, [])], bool(j.get("next_page_token")))  # noqa: E731
    out.append(api.call("GET", f"{ls}/list", params={"experiment_id": eid}, pick=lambda j: [scrub(x, "DEFAULT", "schema_id") for x in j["label_schemas"]]))
    for n, body in [("S1", {"name": "correct", "type": "FEEDBACK", "input": {"pass_fail": {"positive_label": "Yes", "negative_label": "No"}}, "instruction": "Is it right?"}),
                    ("S2", {"name": "topic", "type": "EXPECTATION", "input": {"categorical": {"options": ["a", "b"], "multi_select": True}}, "enable_comment": True}),
                    ("S3", {"name": "score", "type": 1, "input": {"numeric": {"min_value": 0, "max_value": 10}}}),
                    ("S4", {"name": "why", "type": "FEEDBACK", "input": {"text": {"max_length": 200}}})]:
        out.append(api.call("POST", f"{ls}/create", {"experiment_id": eid, **body}, pick=schema(n)))
    sid = {v[1:-1]: k for k, v in api.subs.items() if v in ("{S1}", "{S2}", "{S3}", "{S4}", "{DEFAULT}")}
    for body in [{"name": "correct", "type": "FEEDBACK", "input": {"text": {}}}, {"name": "feedback ", "type": "FEEDBACK", "input": {"text": {}}},
                 {"name": "x", "input": {"text": {}}}, {"name": "x", "type": "FEEDBACK"}, {"name": "x", "type": "FEEDBACK", "input": {"text": {"max_length": 0}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"pass_fail": {"positive_label": "a", "negative_label": "a"}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"pass_fail": {"positive_label": "a"}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"categorical": {"options": []}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"categorical": {"options": ["a", "a"]}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"categorical": {"options": [str(i) for i in range(11)]}}},
                 {"name": "x", "type": "FEEDBACK", "input": {"numeric": {"min_value": 2, "max_value": 1}}},
                 {"name": "x" * 251, "type": "FEEDBACK", "input": {"text": {}}}, {"name": "x", "type": "FEEDBACK", "input": {"text": {}}, "instruction": "i" * 1001}]:
        out.append(api.call("POST", f"{ls}/create", {"experiment_id": eid, **body}))
    out.append(api.call("POST", f"{ls}/create", {"experiment_id": "999999", "name": "x", "type": "FEEDBACK", "input": {"text": {}}}))
    out.append(api.call("GET", f"{ls}/get", params={"schema_id": sid["S2"]}, pick=schema()))
    out.append(api.call("GET", f"{ls}/get", params={"schema_id": sid["DEFAULT"]}, pick=schema()))
    out.append(api.call("GET", f"{ls}/get", params={"schema_id": "ls-nope"}))
    out.append(api.call("GET", f"{ls}/get-by-name", params={"experiment_id": eid, "name": "score"}, pick=schema()))
    out.append(api.call("GET", f"{ls}/get-by-name", params={"experiment_id": eid, "name": "Feedback"}, pick=schema()))
    out.append(api.call("GET", f"{ls}/get-by-name", params={"experiment_id": eid, "name": "nope"}))
    for body in [{"schema_id": sid["S1"], "name": "correctness", "instruction": "Right?", "enable_comment": True, "input": {"pass_fail": {"positive_label": "Right", "negative_label": "Wrong"}}},
                 {"schema_id": sid["S2"], "input": {"categorical": {"options": ["a", "b", "c"], "multi_select": True}}},
                 {"schema_id": sid["S2"], "input": {"categorical": {"options": ["a"], "multi_select": False}}},
                 {"schema_id": sid["S3"], "input": {"text": {}}}, {"schema_id": sid["S3"], "name": "why"}, {"schema_id": sid["S3"], "name": "FEEDBACK"},
                 {"schema_id": sid["S3"], "input": {}}, {"schema_id": sid["DEFAULT"], "name": "y"}, {"schema_id": "ls-nope", "name": "y"}]:
        out.append(api.call("PATCH", f"{ls}/update", body, pick=schema()))
    out.append(api.call("DELETE", f"{ls}/delete", {"schema_id": sid["S4"]}, pick=lambda j: j))
    out.append(api.call("DELETE", f"{ls}/delete", {"schema_id": sid["S4"]}, pick=lambda j: j))
    out.append(api.call("DELETE", f"{ls}/delete", {"schema_id": sid["DEFAULT"]}))
    out.append(api.call("GET", f"{ls}/list", params={"experiment_id": eid, "max_results": 2}, pick=lambda j: ([x["name"] for x in j["label_schemas"]], bool(j.get("next_page_token")))))
    out.append(api.call("GET", f"{ls}/list", params={"experiment_id": eid, "max_results": 0}))
    # Review queues over two traces of the experiment.
    traces = ["4cf7651916cd43dd8448eb211c8031a0", "4cf7651916cd43dd8448eb211c8031a1"]
    for i, t in enumerate(traces):
        requests.post(api.url + "/v1/traces", data=json.dumps(otlp_body(t, [("e7ad6b716920333%d" % i, None, "root", 1_700_000_000_000 + i, 1_700_000_000_500 + i, 1, {"q": "x"}, "y")])),
                      headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
    t1, t2 = ("tr-" + t for t in traces)
    for n, body in [("Q1", {"name": "Weekly Review", "queue_type": "CUSTOM", "users": [" Bob ", "alice", "bob"], "schema_ids": [sid["S2"], sid["S1"]]}),
                    ("Q2", {"name": "Carol", "queue_type": "USER"})]:
        out.append(api.call("POST", f"{rq}/create", {"experiment_id": eid, **body}, pick=queue(n)))
    qid = {v[1:-1]: k for k, v in api.subs.items() if v in ("{Q1}", "{Q2}")}
    for body in [{"name": "weekly review", "queue_type": "CUSTOM"}, {"name": "Default", "queue_type": "CUSTOM"}, {"name": "x"},
                 {"name": "x", "queue_type": "CUSTOM", "schema_ids": ["ls-nope"]}, {"name": "dan", "queue_type": "USER", "users": ["eve"]},
                 {"name": "dan", "queue_type": "USER", "schema_ids": [sid["S1"]]}, {"name": "x", "queue_type": "CUSTOM", "users": [f"u{i}" for i in range(11)]},
                 {"name": "x", "queue_type": "CUSTOM", "users": [" "]}]:
        out.append(api.call("POST", f"{rq}/create", {"experiment_id": eid, **body}))
    out.append(api.call("POST", f"{rq}/get-or-create-user", {"experiment_id": eid, "user": "CAROL"}, pick=queue()))
    out.append(api.call("POST", f"{rq}/get-or-create-user", {"experiment_id": eid, "user": "Weekly Review"}))
    out.append(api.call("POST", f"{rq}/get-or-create-user", {"experiment_id": eid, "user": "dave"}, pick=queue("Q3")))
    out.append(api.call("GET", f"{rq}/get", params={"queue_id": qid["Q1"]}, pick=queue()))
    out.append(api.call("GET", f"{rq}/get", params={"queue_id": "rq-nope"}))
    out.append(api.call("GET", f"{rq}/get-by-name", params={"experiment_id": eid, "name": "WEEKLY review"}, pick=queue()))
    out.append(api.call("GET", f"{rq}/get-by-name", params={"experiment_id": eid, "name": "nope"}))
    out.append(api.call("POST", f"{rq}/items/add", {"queue_id": qid["Q1"], "item_ids": [t1, f" {t2} ", t1]}, pick=listed("items", None)))
    out.append(api.call("POST", f"{rq}/items/add", {"queue_id": qid["Q1"], "item_ids": [t1, "tr-nope"]}))
    out.append(api.call("POST", f"{rq}/items/add", {"queue_id": qid["Q1"], "item_ids": []}))
    out.append(api.call("POST", f"{rq}/items/add", {"queue_id": "rq-nope", "item_ids": [t1]}))
    out.append(api.call("POST", f"{rq}/items/add", {"queue_id": qid["Q2"], "item_ids": [t2]}, pick=listed("items", None)))
    for params in [{}, {"user": "BOB"}, {"item_id": t2}, {"user": "nobody"}, {"max_results": 1}]:
        out.append((params, api.call("GET", f"{rq}/list", params={"experiment_id": eid, **params}, pick=lambda j: ([x["name"] for x in j.get("review_queues", [])], bool(j.get("next_page_token"))))))
    for body in [{"queue_id": qid["Q1"], "item_id": t1, "status": "COMPLETE", "completed_by": " Alice "},
                 {"queue_id": qid["Q1"], "item_id": t1, "status": "COMPLETE", "completed_by": "bob"},
                 {"queue_id": qid["Q1"], "item_id": t2, "status": "DECLINED", "completed_by": "bob"},
                 {"queue_id": qid["Q1"], "item_id": t2, "status": "PENDING"},
                 {"queue_id": qid["Q1"], "item_id": t2, "status": "PENDING", "completed_by": "bob"},
                 {"queue_id": qid["Q1"], "item_id": t2, "status": "COMPLETE"},
                 {"queue_id": qid["Q1"], "item_id": t2},
                 {"queue_id": qid["Q1"], "item_id": "tr-nope", "status": "COMPLETE", "completed_by": "bob"}]:
        out.append(api.call("POST", f"{rq}/items/set-status", body, pick=lambda j: scrub(j["item"])))
    for params in [{}, {"status": "COMPLETE"}, {"status": "PENDING"}, {"max_results": 1}]:
        out.append((params, api.call("GET", f"{rq}/items/list", params={"queue_id": qid["Q1"], **params}, pick=listed("items", None))))
    for body in [{"queue_id": qid["Q1"], "update_schema_ids": True, "schema_ids": [sid["S3"]]},
                 {"queue_id": qid["Q1"], "name": "Monthly", "update_users": True, "users": ["zed"], "new_owner": " Owner "},
                 {"queue_id": qid["Q1"], "name": "carol"}, {"queue_id": qid["Q1"], "name": "MONTHLY"},
                 {"queue_id": qid["Q2"], "name": "x"}, {"queue_id": qid["Q1"]}, {"queue_id": "rq-nope", "name": "x"}]:
        out.append(api.call("POST", f"{rq}/update", body, pick=queue()))
    out.append(api.call("POST", f"{rq}/items/remove", {"queue_id": qid["Q1"], "item_ids": [t1, t2, "tr-absent"]}, pick=lambda j: j))
    out.append(api.call("POST", f"{rq}/update", {"queue_id": qid["Q1"], "update_schema_ids": True, "schema_ids": [sid["S3"], sid["DEFAULT"], " " + sid["S3"]]}, pick=queue()))
    out.append(api.call("POST", f"{rq}/items/remove", {"queue_id": "rq-nope", "item_ids": [t1]}))
    out.append(api.call("POST", f"{rq}/delete", {"queue_id": qid["Q2"]}, pick=lambda j: j))
    out.append(api.call("POST", f"{rq}/delete", {"queue_id": qid["Q2"]}, pick=lambda j: j))
    out.append(api.call("GET", f"{rq}/items/list", params={"queue_id": qid["Q2"]}))
    out.append(api.call("GET", f"{rq}/list", params={"experiment_id": eid}, pick=lambda j: sorted(x["name"] for x in j.get("review_queues", []))))
    return out


def case_trace_metrics(api):
    """QueryTraceMetrics over stored traces, spans and assessments: counts, latencies, tokens,
    sessions, costs and assessment values, by dimension and time bucket, with filters; its
    refusals of bad filters and aggregations."""
    eid = api.experiment("trace-metrics")
    base = 1_700_000_000_000
    specs = [("5cf7651916cd43dd8448eb211c8031b0", "agent", 1, 0, 400, "gpt-x", {"input_cost": 0.5, "output_cost": 1.0, "total_cost": 1.5}, {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}, "s1"),
             ("5cf7651916cd43dd8448eb211c8031b1", "agent", 2, 100_000, 1000, "gpt-y", {"input_cost": 0.25, "output_cost": 0.5, "total_cost": 0.75}, {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}, "s1"),
             ("5cf7651916cd43dd8448eb211c8031b2", "other", 1, 200_000, 100, None, None, None, "s2")]
    for i, (t, name, code, offset, duration, model, cost, tokens, session) in enumerate(specs):
        start = base + offset
        body = otlp_body(t, [("f7ad6b716920333%d" % i, None, name, start, start + duration, code, {"q": i}, "a"),
                             ("f7ad6b716920334%d" % i, "f7ad6b716920333%d" % i, "llm", start + 10, start + 10 + duration // 2, 1, {"m": 1}, "b")])
        child = body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
        child["attributes"][1] = {"key": "mlflow.spanType", "value": {"stringValue": '"LLM"'}}
        if model:
            child["attributes"] += [{"key": "mlflow.llm.model", "value": {"stringValue": json.dumps(model)}},
                                    {"key": "mlflow.llm.provider", "value": {"stringValue": '"openai"'}},
                                    {"key": "mlflow.llm.cost", "value": {"stringValue": json.dumps(cost)}}]
        requests.post(api.url + "/v1/traces", data=json.dumps(body), headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
        metadata = {"mlflow.trace_schema.version": "3", "mlflow.trace.session": session}
        if tokens:
            metadata["mlflow.trace.tokenUsage"] = json.dumps(tokens)
        info = {"trace_id": "tr-" + t, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}},
                "request_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start / 1000)) + ".%03dZ" % (start % 1000), "execution_duration": "%.3fs" % (duration / 1000),
                "state": "OK" if code == 1 else "ERROR", "trace_metadata": metadata, "tags": {"mlflow.traceName": name}}
        api.call("POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})
    for t, name, value in [(specs[0][0], "correct", {"feedback": {"value": True}}), (specs[1][0], "correct", {"feedback": {"value": False}}),
                           (specs[0][0], "score", {"feedback": {"value": 4}}), (specs[1][0], "score", {"feedback": {"value": 2}}), (specs[2][0], "answer", {"expectation": {"value": "yes"}})]:
        api.call("POST", f"/api/3.0/mlflow/traces/tr-{t}/assessments", {"assessment": {"assessment_name": name, "trace_id": "tr-" + t, "source": {"source_type": "HUMAN", "source_id": "a"}, **value}})
    metrics = "/api/3.0/mlflow/traces/metrics"
    agg = lambda *kinds: [{"aggregation_type": k} if not k.startswith("P") else {"aggregation_type": "PERCENTILE", "percentile_value": float(k[1:])} for k in kinds]  # noqa: E731
    q = lambda view, metric, aggs, **kw: {"experiment_ids": [eid], "view_type": view, "metric_name": metric, "aggregations": agg(*aggs), **kw}  # noqa: E731
    window = {"start_time_ms": base, "end_time_ms": base + 300_000}
    out = []
    for body in [q("TRACES", "trace_count", ["COUNT"]),
                 q("TRACES", "trace_count", ["COUNT"], dimensions=["trace_name", "trace_status"]),
                 q("TRACES", "trace_count", ["COUNT"], time_interval_seconds=60, **window),
                 q("TRACES", "trace_count", ["COUNT"], start_time_ms=base + 50_000, end_time_ms=base + 100_000),
                 q("TRACES", "latency", ["AVG", "MIN", "MAX", "P50", "P90"]),
                 q("TRACES", "latency", ["AVG"], dimensions=["trace_name"]),
                 q("TRACES", "total_tokens", ["SUM", "AVG", "P50"]),
                 q("TRACES", "input_tokens", ["SUM"], dimensions=["trace_name"], time_interval_seconds=3600, **window),
                 q("TRACES", "session_count", ["COUNT"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.status = 'OK'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.tag.mlflow.traceName = 'agent'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.metadata.`mlflow.trace.session` = 's1'", "trace.status = 'ERROR'"]),
                 q("TRACES", "latency", ["AVG"], filters=["trace.status = 'nope'"]),
                 q("SPANS", "span_count", ["COUNT"], dimensions=["span_type"]),
                 q("SPANS", "span_count", ["COUNT"], dimensions=["span_name", "span_status"]),
                 q("SPANS", "latency", ["P50", "MAX"], dimensions=["span_name"]),
                 q("SPANS", "total_cost", ["SUM"], dimensions=["span_model_name"]),
                 q("SPANS", "input_cost", ["SUM", "AVG"], dimensions=["span_model_provider"], **window),
                 q("SPANS", "span_count", ["COUNT"], filters=["span.type = 'LLM'", "trace.status = 'OK'"]),
                 q("ASSESSMENTS", "assessment_count", ["COUNT"], dimensions=["assessment_name"]),
                 q("ASSESSMENTS", "assessment_count", ["COUNT"], dimensions=["assessment_value"]),
                 q("ASSESSMENTS", "assessment_value", ["AVG", "MIN", "MAX"], dimensions=["assessment_name"]),
                 q("ASSESSMENTS", "assessment_count", ["COUNT"], filters=["assessment.type = 'expectation'"]),
                 q("ASSESSMENTS", "assessment_count", ["COUNT"], filters=["assessment.name = 'score'", "trace.status = 'OK'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.bogus = 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["span.name = 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.status != 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.tag = 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["trace.status.k = 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], filters=["bogus.status = 'x'"]),
                 q("TRACES", "trace_count", ["COUNT"], dimensions=["span_name"]),
                 q("TRACES", "latency", ["SUM"]),
                 q("SPANS", "total_cost", ["COUNT"])]:
        out.append((body["metric_name"], body.get("dimensions"), body.get("filters"), api.call("POST", metrics, body, pick=lambda j: j)))
    # How two trace filters go together (NPMI), within a base filter or not.
    corr = "/api/3.0/mlflow/traces/calculate-filter-correlation"
    for f1, f2, b in [("status = 'OK'", "tags.mlflow.traceName = 'agent'", None), ("status = 'ERROR'", "status = 'OK'", None),
                      ("status = 'OK'", "request_metadata.`mlflow.trace.session` = 's1'", f"timestamp_ms > {base + 50_000}"),
                      ("status = 'OK'", "tags.nope = 'x'", None), ("name = 'agent'", "execution_time_ms > 300", None), ("status = 'OK'", "status = 'OK'", None)]:
        body = {"experiment_ids": [eid], "filter_string1": f1, "filter_string2": f2, **({"base_filter": b} if b else {})}
        out.append((f1, f2, b, api.call("POST", corr, body, pick=lambda j: j)))
    out.append(api.call("POST", corr, {"experiment_ids": [eid], "filter_string1": "status = 'OK'"}))
    out.append(api.call("POST", corr, {"experiment_ids": ["999999"], "filter_string1": "status = 'OK'", "filter_string2": "status = 'OK'"}, pick=lambda j: j))
    return out


def case_span_filters(api):
    """Trace search by span fields, span attributes and span text (one span must satisfy every
    span clause), RLIKE on trace fields, and span clauses in a filter correlation."""
    eid = api.experiment("span-filters")
    base = 1_700_000_000_000
    traces = [("6cf7651916cd43dd8448eb211c8031a0", [("agent", None, 1, {"question": "Où est la gare?"}, "answer", "CHAIN", {}),
                                                     ("llm", 0, 1, {"m": "hi"}, "ok", "LLM", {"mlflow.llm.model": "gpt-4o", "temperature": "0.5"})]),
              ("6cf7651916cd43dd8448eb211c8031a1", [("agent", None, 2, {"question": "weather"}, "failed", "CHAIN", {}),
                                                     ("tool", 0, 2, {"city": "Paris"}, "rain", "TOOL", {"mlflow.llm.model": "claude-3"})]),
              ("6cf7651916cd43dd8448eb211c8031a2", [("retriever", None, 1, {"query": "docs"}, ["d1", "d2"], "RETRIEVER", {})])]
    for i, (t, spans) in enumerate(traces):
        start = base + i * 60_000
        rows = [("%015x%d" % (i + 1, j), None if parent is None else "%015x%d" % (i + 1, parent), name, start + j * 10, start + 100, code, inputs, outputs)
                for j, (name, parent, code, inputs, outputs, _, _) in enumerate(spans)]
        body = otlp_body(t, rows)
        for span, (_, _, _, _, _, kind, extra) in zip(body["resourceSpans"][0]["scopeSpans"][0]["spans"], spans):
            span["attributes"][1] = {"key": "mlflow.spanType", "value": {"stringValue": kind}}
            span["attributes"] += [{"key": k, "value": {"stringValue": v}} for k, v in extra.items()]
        requests.post(api.url + "/v1/traces", data=json.dumps(body), headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
        info = {"trace_id": "tr-" + t, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}},
                "request_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start / 1000)) + "Z", "execution_duration": "0.100s",
                "state": "OK" if spans[0][2] == 1 else "ERROR", "trace_metadata": {"mlflow.trace_schema.version": "3", "env": "prod-%d" % i},
                "tags": {"mlflow.traceName": spans[0][0], "team": "team-%d" % i}}
        api.call("POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    ids = lambda j: sorted(t["trace_id"] for t in j.get("traces", []))  # noqa: E731
    out = []
    for f in ["span.name = 'llm'", "span.name != 'agent'", "span.name IN ('tool', 'retriever')", "span.name NOT IN ('agent')",
              "span.name LIKE 'ag%'", "span.name LIKE 'AG%'", "span.name ILIKE 'AG%'", "span.name RLIKE '^(llm|tool)$'",
              "span.type = 'LLM'", "span.type IN ('TOOL', 'RETRIEVER')", "span.status = 'ERROR'", "span.status = 'OK'", "span.status != 'OK'",
              "span.name = 'llm' AND span.type = 'LLM'", "span.name = 'agent' AND span.type = 'LLM'", "span.name = 'tool' AND span.status = 'ERROR'",
              "span.attributes.mlflow.llm.model LIKE '%gpt%'", "span.attributes.mlflow.llm.model ILIKE '%GPT%'",
              "span.attributes.`mlflow.llm.model` RLIKE 'claude'", "span.attributes.mlflow.llm.model RLIKE '^gpt'", "span.attributes.mlflow.llm.model RLIKE '^claude-3$'",
              "span.attributes.temperature LIKE '%0.5%'", "span.content LIKE '%Paris%'", "span.content ILIKE '%paris%'", "span.content LIKE '%paris%'",
              "text ILIKE '%gare%'", "attributes.text ILIKE '%gare%'", "trace.text LIKE '%Où est%'", "trace.text ILIKE '%d2%'", "span.content LIKE '%\"name\": \"tool\"%'",
              "span.name = 'llm' AND tags.team = 'team-0'", "span.type = 'TOOL' AND status = 'OK'",
              "tags.team RLIKE 'm-[12]$'", "name RLIKE '^ag'", "request_metadata.env RLIKE '^prod-0'", "status RLIKE 'ERR'"]:
        out.append((f, api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f}, pick=ids)))
    # Refused (MLflow's messages name Python sets, whose order varies: codes only).
    code = lambda r: r[:3]  # noqa: E731
    for f in ["span.content = 'x'", "span.duration = 'x'", "span.attributes. = 'x'", "span.name > 'a'", "span.name IS NULL", "text = 'x'"]:
        out.append((f, code(api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f}))))
    corr = "/api/3.0/mlflow/traces/calculate-filter-correlation"
    for f1, f2 in [("span.type = 'LLM'", "status = 'OK'"), ("span.status = 'ERROR'", "span.name = 'tool'"), ("trace.text LIKE '%Paris%'", "span.type = 'TOOL'")]:
        out.append((f1, f2, api.call("POST", corr, {"experiment_ids": [eid], "filter_string1": f1, "filter_string2": f2}, pick=lambda j: j)))
    return out


def case_otlp_trace_aggregates(api):
    """What a trace's info gets from spans sent by an OTLP-only producer (no StartTraceV3):
    token usage and cost summed over the span tree (a parent's rollup not counted twice),
    OpenTelemetry GenAI token attributes, session and user from span attributes."""
    eid = api.experiment("otlp-aggregates")
    base = 1_700_000_000_000
    usage = lambda i, o: json.dumps({"input_tokens": i, "output_tokens": o, "total_tokens": i + o})  # noqa: E731
    cost = lambda c: json.dumps({"input_cost": c, "output_cost": 2 * c, "total_cost": 3 * c})  # noqa: E731
    traces = {
        # Usage on two leaves; cost on one.
        "7cf7651916cd43dd8448eb211c8031a0": [("agent", None, {"session.id": "s-1", "user.id": "u-1"}),
                                              ("llm-1", 0, {"mlflow.chat.tokenUsage": usage(3, 4), "mlflow.llm.cost": cost(0.25)}),
                                              ("llm-2", 0, {"mlflow.chat.tokenUsage": usage(10, 1)})],
        # A rollup on the parent and usage on its child: counted once.
        "7cf7651916cd43dd8448eb211c8031a1": [("agent", None, {"mlflow.chat.tokenUsage": usage(5, 5), "gen_ai.conversation.id": "s-2"}),
                                              ("llm", 0, {"mlflow.chat.tokenUsage": usage(5, 5)})],
        # OpenTelemetry's GenAI conventions.
        "7cf7651916cd43dd8448eb211c8031a2": [("chat gpt-4o", None, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
                                              ("chat", 0, {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 8})],
    }
    out = []
    for i, (t, spans) in enumerate(traces.items()):
        start = base + i * 60_000
        rows = [("%015x%d" % (i + 1, j), None if parent is None else "%015x%d" % (i + 1, parent), name, start + j, start + 50, 1, {"q": j}, "a")
                for j, (name, parent, _) in enumerate(spans)]
        body = otlp_body(t, rows)
        for span, (_, _, extra) in zip(body["resourceSpans"][0]["scopeSpans"][0]["spans"], spans):
            span["attributes"] = [a for a in span["attributes"] if a["key"] not in ("mlflow.traceRequestId", "mlflow.spanType")]
            span["attributes"] += [{"key": k, "value": otlp_value(v)} for k, v in extra.items()]
        r = requests.post(api.url + "/v1/traces", data=json.dumps(body), headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
        out.append(r.status_code)
        out.append(api.call("GET", f"/api/3.0/mlflow/traces/tr-{t}", pick=lambda j: (j["trace"]["trace_info"].get("trace_metadata"), j["trace"]["trace_info"]["state"])))
    # A trace whose spans come in three requests: the totals are over all of them.
    t, start = "7cf7651916cd43dd8448eb211c8031a3", base + 600_000
    parts = [[("%016x" % 2, "%016x" % 1, "llm-1", start + 1, start + 5, 1, {}, "a")],
             [("%016x" % 3, "%016x" % 1, "llm-2", start + 6, start + 9, 1, {}, "b"), ("%016x" % 4, "%016x" % 3, "inner", start + 7, start + 8, 1, {}, "c")],
             [("%016x" % 1, None, "agent", start, start + 10, 1, {}, "d")]]
    figures = {"llm-1": usage(3, 4), "llm-2": usage(1, 1), "inner": usage(100, 100)}
    for rows in parts:
        body = otlp_body(t, rows)
        for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            if span["name"] in figures:
                span["attributes"].append({"key": "mlflow.chat.tokenUsage", "value": {"stringValue": figures[span["name"]]}})
        requests.post(api.url + "/v1/traces", data=json.dumps(body), headers={"Content-Type": "application/json", "x-mlflow-experiment-id": eid}, timeout=30)
        out.append(api.call("GET", f"/api/3.0/mlflow/traces/tr-{t}", pick=lambda j: (j["trace"]["trace_info"].get("trace_metadata"), j["trace"]["trace_info"]["state"])))
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    for f in ["request_metadata.`mlflow.trace.session` = 's-1'", "request_metadata.`mlflow.trace.user` = 'u-1'"]:
        out.append((f, api.call("POST", "/api/3.0/mlflow/traces/search", {"locations": loc, "filter": f}, pick=lambda j: sorted(t["trace_id"] for t in j.get("traces", [])))))
    return out


def case_traces_v2_api(api):
    """MLflow 2's trace routes (start, end, get info, search), as its clients call them."""
    eid = api.experiment("traces-v2")
    base = "/api/2.0/mlflow/traces"
    out = []

    def info(j, name=None):
        x = dict(j["trace_info"])
        if name:
            api.name(x["request_id"], "{%s}" % name)
        for k in ("request_metadata", "tags"):
            x[k] = sorted((kv["key"], kv["value"]) for kv in x.get(k, []))
        return api.norm(x)

    ids = {}
    for n, t0 in [("T1", 1_700_000_000_000), ("T2", 1_700_000_005_000)]:
        out.append(api.call("POST", base, {"experiment_id": eid, "timestamp_ms": t0, "request_metadata": [{"key": "mlflow.user", "value": "ann"}],
                                           "tags": [{"key": "mlflow.traceName", "value": n.lower()}, {"key": "team", "value": "a" if n == "T1" else "b"}]}, pick=lambda j, n=n: info(j, n)))
        ids[n] = next(k for k, v in api.subs.items() if v == "{%s}" % n)
    out.append(api.call("PATCH", f"{base}/{ids['T1']}", {"timestamp_ms": 1_700_000_000_750, "status": "OK", "request_metadata": [{"key": "mlflow.sourceRun", "value": "r1"}],
                                                         "tags": [{"key": "team", "value": "c"}]}, pick=info))
    out.append(api.call("PATCH", f"{base}/{ids['T2']}", {"timestamp_ms": 1_700_000_005_100, "status": "ERROR"}, pick=info))
    out.append(api.call("GET", f"{base}/{ids['T1']}/info", pick=info))
    listed = lambda j: ([info({"trace_info": t})["request_id"] for t in j.get("traces", [])], bool(j.get("next_page_token")))  # noqa: E731
    for params in [{}, {"max_results": 1}, {"filter": "tags.team = 'c'"}, {"filter": "status = 'ERROR'"}, {"order_by": "timestamp_ms ASC"}]:
        out.append((params, api.call("GET", base, params={"experiment_ids": eid, **params}, pick=listed)))
    out.append(api.call("GET", f"/api/3.0/mlflow/traces/{ids['T1']}", pick=lambda j: sorted(j["trace"]["trace_info"]["tags"])))
    out.append(api.call("GET", base, params={"experiment_ids": eid, "max_results": 501}))
    out.append(api.call("GET", f"{base}/nope/info"))
    out.append(api.call("PATCH", f"{base}/nope", {"timestamp_ms": 1, "status": "OK"}))
    out.append(api.call("POST", base, {"experiment_id": "999999", "timestamp_ms": 1}))
    return out


def case_latest_alias(api):
    """`@latest` names a model's (or prompt's) highest live version, as `prompts:/NAME@latest`
    reads it."""
    out = [model(api, "aliased"), model(api, "empty")]
    run = api.run(api.experiment("aliases")).info.run_id
    for _ in range(2):
        out.append(version(api, "aliased", f"runs:/{run}/model", run_id=run))
    alias = "/api/2.0/mlflow/registered-models/alias"
    pick = lambda j: (j["model_version"]["name"], j["model_version"]["version"])  # noqa: E731
    for name, a in [("aliased", "latest"), ("aliased", "LATEST"), ("empty", "latest"), ("nope", "latest"), ("aliased", "nope")]:
        out.append(api.call("GET", alias, params={"name": name, "alias": a}, pick=pick))
    return out


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_tandem_answers_as_the_stock_server_does(servers, case):
    seen = {}
    for which in ("stock", "tandem"):
        seen[which] = case(Api(servers[which]))
    assert len(seen["tandem"]) == len(seen["stock"])
    diffs = [f"step {i} differs\n tandem: {t}\n stock:  {s}" for i, (t, s) in enumerate(zip(seen["tandem"], seen["stock"])) if t != s]
    assert not diffs, "\n".join(diffs)
