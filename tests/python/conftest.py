"""Starts a real `tandem server` for the stock mlflow client to talk to."""

import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

BIN = os.environ.get("TANDEM_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "tandem"))


def fresh_postgres():
    """A new empty database on the test cluster; returns its URL."""
    admin = os.environ["TANDEM_TEST_POSTGRES"]
    name = "py_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def store_configs():
    """The store combinations the client suite runs against."""
    configs = ["sqlite+folder"]
    have_pg = "TANDEM_TEST_POSTGRES" in os.environ
    if have_pg and "TANDEM_TEST_AZURITE" in os.environ:
        configs.append("postgres+azure")
    if have_pg and "TANDEM_TEST_S3" in os.environ:
        configs.append("postgres+s3")
    if os.environ.get("TANDEM_TEST_REQUIRE_SERVICES") and len(configs) < 3:
        raise RuntimeError("test services are required but not all are configured: run scripts/test.sh")
    return configs


def store_args(config):
    if config == "sqlite+folder":
        return []
    prefix = "py-" + uuid.uuid4().hex[:10]
    artifacts = os.environ["TANDEM_TEST_AZURITE" if config.endswith("azure") else "TANDEM_TEST_S3"] + "/" + prefix
    return ["--store", fresh_postgres(), "--artifacts", artifacts]


class Server:
    def __init__(self, data, extra=()):
        self.data = data
        self.proc = subprocess.Popen(
            [BIN, "server", "--data", data, "--listen", "127.0.0.1:0", "--durability", "normal", *([] if "--auth" in extra else ["--auth", "off"]), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.time() + 30
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"tracking uri: (https?://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.proc.kill()
            raise RuntimeError("tandem server did not print its tracking uri")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session", params=store_configs())
def server(request):
    with tempfile.TemporaryDirectory() as data:
        s = Server(data, store_args(request.param))
        s.config = request.param
        yield s
        s.stop()
        assert s.proc.returncode == 0, "tandem server did not shut down cleanly on SIGTERM"


@pytest.fixture(autouse=True)
def tracking(server, monkeypatch):
    import mlflow
    from mlflow.utils import workspace_context

    monkeypatch.delenv("MLFLOW_WORKSPACE", raising=False)
    workspace_context.set_workspace(None)
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    yield server
    while mlflow.active_run():
        mlflow.end_run()
    workspace_context.set_workspace(None)


# The stock MLflow server of the pinned version, for tests that compare tandem with it.
STOCK_BIN = os.environ.get("TANDEM_STOCK_MLFLOW")


def stock_available():
    return bool(STOCK_BIN) and os.path.exists(os.path.join(STOCK_BIN, "mlflow"))


def require_stock():
    """Skips the calling module without the stock server (a plain `pytest` run); under
    scripts/test.sh its absence is a failure."""
    if not stock_available():
        if os.environ.get("TANDEM_TEST_REQUIRE_SERVICES"):
            raise RuntimeError("TANDEM_STOCK_MLFLOW is required: run scripts/test.sh")
        pytest.skip("the stock MLflow server is not installed (scripts/test.sh installs it)", allow_module_level=True)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StockServer:
    """`mlflow server` on SQLite with proxied artifacts, as a team would run it."""

    def __init__(self, root, proxied=True):
        """`proxied`: artifacts through the server (`mlflow-artifacts:`, MLflow 3's default);
        otherwise clients write a local artifact root themselves."""
        self.cwd = os.path.realpath(root)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        artifacts = ["--artifacts-destination", f"{self.cwd}/artifacts"] if proxied else ["--no-serve-artifacts", "--default-artifact-root", f"{self.cwd}/files"]
        self.proc = subprocess.Popen(
            [os.path.join(STOCK_BIN, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.cwd}/mlflow.db", *artifacts],
            cwd=self.cwd,
            stdout=open(os.path.join(self.cwd, "server.log"), "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("the stock MLflow server did not start: " + open(os.path.join(self.cwd, "server.log")).read()[-2000:])

    def stop(self):
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
