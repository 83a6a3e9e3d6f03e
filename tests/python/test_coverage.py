"""Every RPC of MLflow's REST contract, as the installed client's protos define it, is either
served by tandem or listed in docs/compatibility.md as not served (answering a plain 404, as
a server without the feature). A client release that adds an RPC fails this test until one
of the two is true. Served routes are each exercised by tests/it/bad_input.rs, which fails on
a route without a case."""

import os
import re
import tempfile

import pytest
import requests

from conftest import Server

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "compatibility.md")


@pytest.fixture(scope="module")
def server():
    """Replaces conftest's: this test's probes must not touch the shared server's state."""
    with tempfile.TemporaryDirectory() as data:
        s = Server(data)
        yield s
        s.stop()


@pytest.fixture(autouse=True)
def tracking():
    yield


def rpc_endpoints():
    """(Service.method, HTTP method, path with its /api/X.Y prefix) of every RPC with an HTTP
    endpoint in the protos of the services MLflow's own server serves."""
    from mlflow.protos import databricks_pb2, mlflow_artifacts_pb2, model_registry_pb2, service_pb2, webhooks_pb2

    out = []
    for mod in (service_pb2, model_registry_pb2, mlflow_artifacts_pb2, webhooks_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                opts = m.GetOptions()
                if not opts.HasExtension(databricks_pb2.rpc):
                    continue
                for e in opts.Extensions[databricks_pb2.rpc].endpoints:
                    out.append((f"{svc.name}.{m.name}", e.method, f"/api/{e.since.major}.{e.since.minor}{e.path}"))
    return out


def listed_as_not_served():
    text = open(DOC).read()
    block = text.split("<!-- rpc-coverage:start -->", 1)[1].split("<!-- rpc-coverage:end -->", 1)[0]
    return {(m.group(1), m.group(2), m.group(3)) for m in re.finditer(r"^- `([\w.]+)`: `(\w+) (\S+)`", block, re.M)}


def test_every_rpc_is_served_or_listed_as_not_served(server):
    rpcs = rpc_endpoints()
    assert len(rpcs) > 100, "the client's protos were not found"
    not_served = set()
    for name, method, path in rpcs:
        concrete = re.sub(r"\{[a-z_]+\}", "x", re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "x", path))
        r = requests.request(method, server.url + concrete, json={} if method != "GET" else None, timeout=30)
        assert r.status_code < 500 or r.status_code in (501, 503), (name, method, path, r.status_code, r.text)
        plain_404 = r.status_code == 404 and r.headers.get("content-type", "").startswith("text/plain")
        if plain_404 or r.status_code == 405:
            not_served.add((name, method, path))
    listed = listed_as_not_served()
    unlisted = sorted(not_served - listed)
    stale = sorted(listed - not_served)
    assert not unlisted, "RPCs tandem does not serve and docs/compatibility.md does not list:\n" + "\n".join(f"- `{n}`: `{m} {p}`" for n, m, p in unlisted)
    assert not stale, "docs/compatibility.md lists as not served RPCs tandem serves (or the client no longer has):\n" + "\n".join(map(str, stale))
