"""The web pages in a real browser: MLflow's own UI (the build inside the stock `mlflow`
package, served by tandem) and tandem's disaster-recovery dashboard, driven in headless
Chromium (Debian's package) with Selenium, against real servers holding data the stock client
made. Every page is loaded fresh; JavaScript errors in the console fail the test, and so does
any failed request but `users/current` (which MLflow's own server without its auth app fails
too); screenshots of each page go to target/ui-screenshots/."""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests
from mlflow import MlflowClient

from conftest import BIN, STOCK_BIN, free_port, require_stock

SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "target", "ui-screenshots")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(autouse=True)
def tracking():
    """Replaces conftest's single-server fixture: these tests run their own servers."""
    yield


def ui_build():
    require_stock()
    out = subprocess.run([os.path.join(STOCK_BIN, "python"), "-c", "import mlflow.server, os; print(os.path.join(os.path.dirname(mlflow.server.__file__), 'js', 'build'))"],
                         capture_output=True, text=True, timeout=60)
    path = out.stdout.strip()
    assert os.path.exists(os.path.join(path, "index.html")), out
    return path


def start_server(data, env=None, extra=()):
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "TANDEM_UI"}
    p = subprocess.Popen([BIN, "server", "--data", data, "--listen", f"127.0.0.1:{port}", "--auth", "off", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return p, url
        except requests.RequestException:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("server did not start")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
    out = p.stdout.read() if p.stdout else ""
    return out


def ui_queries(build):
    """Every GraphQL operation the installed UI build sends, read from its scripts."""
    out = {}
    js = os.path.join(build, "static", "js")
    for name in os.listdir(js):
        if not name.endswith(".js"):
            continue
        text = open(os.path.join(js, name), encoding="utf-8", errors="replace").read()
        for m in re.finditer(r"`\s*((?:query|mutation) (\w+)[^`]*)`", text):
            body = m.group(1).replace("\\n", "\n")
            if "{" in body and "(input:" in body:
                out[m.group(2)] = body
    return out


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(60)
    os.makedirs(SHOTS, exist_ok=True)
    yield d
    d.quit()


def visit(d, url, name, wait_for, timeout=30):
    """Loads `url` afresh, waits until the page text contains every string of `wait_for`,
    saves a screenshot, and returns (page text, JavaScript errors)."""
    d.get("about:blank")
    d.get_log("browser")  # drop what came before
    d.get(url)
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = d.execute_script("return document.body ? document.body.innerText : ''") or ""
        if all(w in text for w in wait_for):
            break
        time.sleep(0.3)
    time.sleep(1.0)  # let late requests land, so their errors are counted
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    logs = d.get_log("browser")
    missing = [w for w in wait_for if w not in text]
    assert not missing, f"{name}: {missing} not on the page; it shows:\n{text[:2000]}"
    # (Chromium's "ResizeObserver loop completed with undelivered notifications" is the
    # browser telling the page a layout took two passes, as the trace view's split panes do on
    # MLflow's own server too; not an error of the page or of its server.)
    js_errors = [e for e in logs if e["level"] == "SEVERE" and e.get("source") in ("javascript", "console-api")
                 and "ResizeObserver loop completed with undelivered notifications" not in e["message"]]
    # Failed requests, but the one MLflow's own server fails too without its auth app.
    # Requests to other hosts (the traces page's intro video on mlflow.org) fail offline on
    # MLflow's own server as well and are not ours.
    own = url.split("/#")[0]
    failed = [e["message"] for e in logs if e["level"] == "SEVERE" and e.get("source") == "network"
              and e["message"].startswith(own) and "/mlflow/users/current" not in e["message"]]
    return text, js_errors + failed


@pytest.fixture(scope="module")
def server_with_data():
    build = ui_build()
    data = tempfile.mkdtemp(prefix="tandem-ui-")
    # Found automatically: the stock venv's python3 comes first on PATH.
    p, url = start_server(data, env={"PATH": f"{STOCK_BIN}:{os.environ['PATH']}"})
    c = MlflowClient(tracking_uri=url, registry_uri=url)
    eid = c.create_experiment("ui-experiment")
    c.create_experiment("ui-other-experiment")
    run = c.create_run(eid, run_name="ui-run")
    rid = run.info.run_id
    c.log_param(rid, "learning_rate", "0.01")
    c.log_param(rid, "optimizer", "adam")
    for i in range(20):
        c.log_metric(rid, "loss", 1.0 / (i + 1), step=i)
    c.log_text(rid, "hello from tandem\n", "notes/readme.txt")
    c.set_terminated(rid)
    c.create_registered_model("ui-model")
    for _ in range(2):
        c.create_model_version("ui-model", f"runs:/{rid}/model", run_id=rid)
    c.set_registered_model_alias("ui-model", "champion", "2")
    # A prompt, as the stock client registers one (a registered model tagged as a prompt).
    import mlflow

    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    prompt = mlflow.genai.register_prompt(name="ui-prompt", template="Hello {{name}}, welcome to tandem", commit_message="first")
    mlflow.genai.set_prompt_alias("ui-prompt", alias="production", version=prompt.version)
    # The AI gateway: a key, a model definition and an endpoint, as the gateway pages show them.
    g = url + "/api/3.0/mlflow/gateway"
    secret = requests.post(f"{g}/secrets/create", json={"secret_name": "ui-key", "secret_value": {"api_key": "sk-ui-0123456789abcdef"}, "provider": "openai"}, timeout=30).json()["secret"]
    d = requests.post(f"{g}/model-definitions/create", json={"name": "ui-model-def", "secret_id": secret["secret_id"], "provider": "openai", "model_name": "gpt-4o-mini"}, timeout=30).json()["model_definition"]
    endpoint = requests.post(f"{g}/endpoints/create", json={"name": "ui-endpoint", "model_configs": [{"model_definition_id": d["model_definition_id"], "linkage_type": "PRIMARY"}]}, timeout=30).json()["endpoint"]
    # A trace, as the tracing SDK logs it (spans over OTLP, then the trace's info).
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    traced = mlflow.set_experiment("ui-traced").experiment_id

    @mlflow.trace(name="ui_traced_agent")
    def agent(question):
        with mlflow.start_span(name="ui_retrieve") as s:
            s.set_inputs({"q": question})
            s.set_outputs(["doc-1"])
        return "an answer from tandem"

    agent("what is tandem?")
    trace_id = mlflow.get_last_active_trace_id()
    # An evaluation: a dataset stored in tandem, `mlflow.genai.evaluate` with a code scorer (its
    # run, traces and feedback), and a label schema and review queue holding the trace.
    from mlflow.genai import datasets
    from mlflow.genai.scorers import scorer

    evaluated = mlflow.set_experiment("ui-evaluated").experiment_id
    ds = datasets.create_dataset(name="ui-dataset", experiment_id=[evaluated])
    ds.merge_records([{"inputs": {"question": "2+2"}, "expectations": {"expected_response": "4"}}])

    @scorer
    def exact(outputs, expectations):
        return outputs == expectations["expected_response"]

    evaluation = mlflow.genai.evaluate(data=ds, predict_fn=lambda question: "4", scorers=[exact])
    rq = url + "/api/3.0/mlflow/review-queues"
    schema = requests.post(url + "/api/3.0/mlflow/label-schemas/create", json={"experiment_id": traced, "name": "ui-correct", "type": "FEEDBACK", "input": {"pass_fail": {"positive_label": "Yes", "negative_label": "No"}}}, timeout=30).json()["label_schema"]
    queue = requests.post(rq + "/create", json={"experiment_id": traced, "name": "ui-queue", "queue_type": "CUSTOM", "schema_ids": [schema["schema_id"]]}, timeout=30).json()["review_queue"]
    requests.post(rq + "/items/add", json={"queue_id": queue["queue_id"], "item_ids": [trace_id]}, timeout=30).raise_for_status()
    yield {"url": url, "eid": eid, "rid": rid, "build": build, "proc": p, "endpoint_id": endpoint["endpoint_id"], "traced": traced, "trace_id": trace_id,
           "evaluated": evaluated, "evaluation_run": evaluation.run_id}
    stop(p)


def test_the_mlflow_ui_is_found_and_served_unchanged(server_with_data):
    url, build = server_with_data["url"], server_with_data["build"]
    page = requests.get(url + "/", timeout=10)
    assert page.status_code == 200 and page.text == open(os.path.join(build, "index.html")).read()
    script = re.search(r'src="(static-files/[^"]+\.js)"', page.text).group(1)
    r = requests.get(f"{url}/{script}", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.content == open(os.path.join(build, script[len("static-files/"):]), "rb").read()
    for bad in ("/static-files/../index.html", "/static-files/%2e%2e/index.html", "/static-files/nope.js"):
        assert requests.get(url + bad, timeout=10).status_code == 404, bad


def test_without_a_ui_build_the_server_says_so_and_the_page_explains(tmp_path):
    p, url = start_server(str(tmp_path / "d"), env={"PATH": "/usr/bin:/bin"})
    try:
        r = requests.get(url + "/", timeout=10)
        assert r.status_code == 200 and "no MLflow UI" in r.text and "--ui DIR" in r.text
        # The API is served as always.
        assert requests.get(url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, timeout=10).status_code == 200
    finally:
        out = stop(p)
    assert "no MLflow UI at /" in out
    # A --ui that is no build stops the start with a clear message.
    r = subprocess.run([BIN, "server", "--data", str(tmp_path / "e"), "--listen", "127.0.0.1:0", "--auth", "off", "--ui", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no MLflow UI build there" in r.stderr


def test_graphql_answers_the_uis_queries_as_mlflow_does(server_with_data):
    """The four queries the UI sends (recorded from its build), through tandem's handlers."""
    url, eid, rid = server_with_data["url"], server_with_data["eid"], server_with_data["rid"]
    queries = ui_queries(server_with_data["build"])
    assert set(queries) >= {"MlflowGetExperimentQuery", "GetRun", "SearchRuns", "GetMetricHistoryBulkInterval"}, sorted(queries)
    variables = {
        "MlflowGetExperimentQuery": {"input": {"experimentId": eid}},
        "GetRun": {"data": {"runId": rid}},
        "SearchRuns": {"data": {"experimentIds": [eid], "filter": "", "runViewType": "ACTIVE_ONLY", "maxResults": 10, "orderBy": ["attributes.start_time DESC"]}},
        "GetMetricHistoryBulkInterval": {"data": {"runIds": [rid], "metricKey": "loss", "maxResults": 5}},
    }
    answers = {}
    for name, query in queries.items():
        if name not in variables:
            # An operation this test does not know yet: it must at least run without errors
            # of the schema (unknown fields), whatever its data.
            r = requests.post(url + "/graphql", json={"operationName": name, "variables": {}, "query": query}, timeout=30)
            assert r.status_code == 200 and not any("Cannot query field" in e for e in (r.json()["errors"] or [])), (name, r.text)
            continue
        r = requests.post(url + "/graphql", json={"operationName": name, "variables": variables[name], "query": query}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["errors"] is None, body
        answers[name] = body["data"]
    exp = answers["MlflowGetExperimentQuery"]["mlflowGetExperiment"]
    assert exp["apiError"] is None and exp["experiment"]["name"] == "ui-experiment"
    assert isinstance(exp["experiment"]["creationTime"], str) and exp["experiment"]["tags"] == []
    run = answers["GetRun"]["mlflowGetRun"]["run"]
    assert run["info"]["runName"] == "ui-run" and run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"learning_rate": "0.01", "optimizer": "adam"}
    assert run["experiment"]["name"] == "ui-experiment"
    assert sorted(v["version"] for v in run["modelVersions"]) == ["1", "2"]
    assert run["inputs"]["datasetInputs"] == [] and run["outputs"]["modelOutputs"] == []
    loss = [m for m in run["data"]["metrics"] if m["key"] == "loss"][0]
    assert loss["step"] == "19" and isinstance(loss["timestamp"], str)
    runs = answers["SearchRuns"]["mlflowSearchRuns"]["runs"]
    assert [r["info"]["runName"] for r in runs] == ["ui-run"]
    points = answers["GetMetricHistoryBulkInterval"]["mlflowGetMetricHistoryBulkInterval"]["metrics"]
    # As on MLflow's server (test_fidelity.py compares), maxResults in GraphQL is ignored: its
    # handler reads the query string only, so the default of 320 points per run applies.
    assert len(points) == 20 and points[0]["step"] == "0" and points[-1]["step"] == "19" and points[0]["runId"] == rid
    # Bad queries answer GraphQL errors, not a crash.
    for body in ({"query": "{"}, {"query": "query { nope { x } }"}, {"query": "query A { test(inputString: \"x\") { output } } query B { test(inputString: \"y\") { output } }"}):
        r = requests.post(url + "/graphql", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["errors"], (body, r.text)
    r = requests.post(url + "/graphql", json={"query": "{ test(inputString: \"echo\") { output } }"}, timeout=30)
    assert r.json() == {"data": {"test": {"output": "echo"}}, "errors": None}


def test_mlflow_ui_pages_in_a_real_browser(server_with_data, browser):
    url, eid, rid = server_with_data["url"], server_with_data["eid"], server_with_data["rid"]
    ws = "?workspace=default"
    errors = {}
    _, errors["experiments"] = visit(browser, f"{url}/#/experiments{ws}", "experiment-list", ["ui-experiment", "ui-other-experiment"])
    _, errors["runs"] = visit(browser, f"{url}/#/experiments/{eid}/runs{ws}", "experiment-runs", ["ui-run"])
    text, errors["run"] = visit(browser, f"{url}/#/experiments/{eid}/runs/{rid}{ws}", "run-overview", ["ui-run", "learning_rate", "0.01", "optimizer", "adam"])
    _, errors["metrics"] = visit(browser, f"{url}/#/experiments/{eid}/runs/{rid}/model-metrics{ws}", "run-metric-chart", ["loss"])
    assert browser.execute_script("return document.querySelectorAll('canvas, svg.main-svg, .js-plotly-plot').length") > 0, "no chart drawn"
    _, errors["artifact"] = visit(browser, f"{url}/#/experiments/{eid}/runs/{rid}/artifacts/notes/readme.txt{ws}", "artifact-preview", ["hello from tandem"])
    _, errors["model"] = visit(browser, f"{url}/#/models/ui-model{ws}", "model-versions", ["ui-model", "Version 2", "Version 1", "champion"])
    # The GenAI pages of an experiment with none of their data show the empty states MLflow's
    # own server shows; prompts are served with the registry.
    _, errors["traces"] = visit(browser, f"{url}/#/experiments/{eid}/traces{ws}", "genai-traces", ["Start tracing your LLM application"])
    _, errors["datasets"] = visit(browser, f"{url}/#/experiments/{eid}/datasets{ws}", "genai-datasets", ["Create an evaluation dataset"])
    _, errors["evaluation-runs"] = visit(browser, f"{url}/#/experiments/{eid}/evaluation-runs{ws}", "genai-evaluation-runs", ["Evaluation runs"])
    _, errors["prompts"] = visit(browser, f"{url}/#/prompts{ws}", "prompts", ["ui-prompt", "Version 1"])
    _, errors["prompt"] = visit(browser, f"{url}/#/prompts/ui-prompt{ws}", "prompt-versions", ["ui-prompt", "production", "welcome to tandem"])
    # Traces with data: the experiment's traces table, and one trace's spans.
    traced, trace_id = server_with_data["traced"], server_with_data["trace_id"]
    _, errors["traces-with-data"] = visit(browser, f"{url}/#/experiments/{traced}/traces{ws}", "genai-traces-data", ["what is tandem?"])
    _, errors["trace"] = visit(browser, f"{url}/#/experiments/{traced}/traces{ws}&selectedEvaluationId={trace_id}", "genai-trace", ["ui_retrieve", "an answer from tandem"])
    # An evaluation with data: the dataset and its record, the evaluation run and its trace.
    evaluated = server_with_data["evaluated"]
    _, errors["datasets-with-data"] = visit(browser, f"{url}/#/experiments/{evaluated}/datasets{ws}", "genai-datasets-data", ["ui-dataset"])
    _, errors["evaluation-runs-with-data"] = visit(browser, f"{url}/#/experiments/{evaluated}/evaluation-runs{ws}", "genai-evaluation-runs-data", ["exact"])
    # The review page: the label schemas and the queue holding the trace.
    _, errors["review-queue"] = visit(browser, f"{url}/#/experiments/{traced}/review-queue{ws}", "genai-review-queue", ["ui-queue"])
    # The overview's charts (trace metrics over the stored trace; the evaluation's feedback).
    _, errors["overview-usage"] = visit(browser, f"{url}/#/experiments/{traced}/overview/usage{ws}", "genai-overview-usage", ["Usage", "Traces", "Latency"])
    _, errors["overview-quality"] = visit(browser, f"{url}/#/experiments/{evaluated}/overview/quality{ws}", "genai-overview-quality", ["Quality"])
    # The AI gateway's pages: endpoints, API keys (masked), one endpoint, budgets.
    _, errors["gateway"] = visit(browser, f"{url}/#/gateway{ws}", "gateway-endpoints", ["ui-endpoint"])
    text, errors["gateway-keys"] = visit(browser, f"{url}/#/gateway/api-keys{ws}", "gateway-api-keys", ["ui-key"])
    assert "sk-ui-0123456789abcdef" not in text
    _, errors["gateway-endpoint"] = visit(browser, f"{url}/#/gateway/endpoints/{server_with_data['endpoint_id']}{ws}", "gateway-endpoint", ["ui-endpoint", "gpt-4o-mini"])
    _, errors["gateway-budgets"] = visit(browser, f"{url}/#/gateway/budgets{ws}", "gateway-budgets", ["Budget"])
    bad = {page: e for page, e in errors.items() if e}
    assert not bad, json.dumps(bad, indent=1)


def test_the_dashboard_follows_a_failover_in_a_real_browser(browser, tmp_path):
    from test_regions import Up

    up = Up("sync", env={"TANDEM_UI": ui_build()})
    try:
        leader = up.leader()
        # The MLflow UI through the front door of `tandem up` (served by the leader region).
        MlflowClient(tracking_uri=up.url).create_experiment("through-the-front-door")
        _, errs = visit(browser, f"{up.url}/#/experiments?workspace=default", "front-door-experiments", ["through-the-front-door"])
        assert not errs, errs
        url = up.url + "/tandem/"
        t = time.perf_counter()
        r = requests.get(url, timeout=10)
        assert r.status_code == 200 and "disaster recovery" in r.text
        text, errs = visit(browser, url, "dashboard", ["Leader: " + leader, "Retention", "Backup window", "replication"])
        assert not errs, errs
        up.kill(leader)
        other = {"east": "west", "west": "east"}[leader]
        up.wait_for(lambda: up.leader() == other, 60, "the other region to lead")
        # The page reloads its live part by itself: the new leader shows without a reload.
        deadline = time.time() + 30
        while time.time() < deadline:
            text = browser.execute_script("return document.body.innerText")
            if "Leader: " + other in text:
                break
            time.sleep(0.5)
        browser.save_screenshot(os.path.join(SHOTS, "dashboard-after-failover.png"))
        assert "Leader: " + other in text, text[:2000]
        assert "RTO" in text
        js = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e.get("source") in ("javascript", "console-api")]
        assert not js, js
    finally:
        up.stop()


def test_authentication_and_workspaces_in_the_ui(browser, tmp_path):
    """With authentication on, the UI works for a signed-in user (HTTP basic, as the browser
    sends it) and shows only what that user may read; a second workspace's experiments show
    under it and not under the default one."""
    from test_access import ADMIN, ADMIN_PW, bootstrap_env, elevate_admin, make_user

    build = ui_build()
    data = str(tmp_path / "d")
    os.makedirs(data)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in ("TANDEM_UI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")}
    p = subprocess.Popen([BIN, "server", "--data", data, "--listen", f"127.0.0.1:{port}", "--auth", "on", "--ui", build],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**environ, **bootstrap_env(data)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        # Without credentials: the browser is asked for them (401 with a Basic challenge).
        r = requests.get(url + "/", timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        elevate_admin(url, "ui test")
        make_user(url, "uma", "reader", password="uma-password-1")
        admin = requests.Session()
        admin.auth = (ADMIN, ADMIN_PW)
        r = admin.post(url + "/api/3.0/mlflow/workspaces", json={"name": "team-a"}, timeout=10)
        assert r.status_code in (200, 201), r.text
        for ws, name in (("default", "ui-auth-default"), ("team-a", "ui-auth-team-a")):
            r = admin.post(url + "/api/2.0/mlflow/experiments/create", json={"name": name}, headers={"X-MLFLOW-WORKSPACE": ws}, timeout=10)
            assert r.status_code == 200, r.text
        def sign_in(user, password):
            # What the browser sends once the user answered its Basic prompt.
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})

        # The admin sees each workspace's experiments under it.
        sign_in(ADMIN, ADMIN_PW)
        text, errs = visit(browser, f"{url}/#/experiments?workspace=team-a", "auth-workspace-team-a", ["ui-auth-team-a"])
        assert "ui-auth-default" not in text and not errs, errs
        # Uma reads the default workspace only.
        sign_in("uma", "uma-password-1")
        text, errs = visit(browser, f"{url}/#/experiments?workspace=default", "auth-reader-default", ["ui-auth-default"])
        assert "ui-auth-team-a" not in text and not errs, errs
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        stop(p)
