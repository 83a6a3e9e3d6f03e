"""Starts a real `tandem server` for the stock mlflow client to talk to."""

import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("TANDEM_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "tandem"))


class Server:
    def __init__(self, data):
        self.data = data
        self.proc = subprocess.Popen(
            [BIN, "server", "--data", data, "--listen", "127.0.0.1:0", "--durability", "normal"],
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


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory() as data:
        s = Server(data)
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
