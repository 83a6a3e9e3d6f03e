"""Starts a real `tandem server` for the stock mlflow client to talk to."""

import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

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
            [BIN, "server", "--data", data, "--listen", "127.0.0.1:0", "--durability", "normal", *extra],
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
            m = re.match(r"tracking uri: (http://\S+)", line)
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
