"""Authentication and authorization with the stock client: HTTP basic and tokens, refused
callers, and access state that survives a SIGKILL failover of `tandem up`."""

import os
import subprocess
import tempfile
import time

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException

from conftest import BIN, Server
from test_regions import Up

ADMIN, ADMIN_PW = "root", "root-password-1"


@pytest.fixture(autouse=True)
def tracking(monkeypatch):
    """Replaces conftest's open server: these tests run servers with authentication on."""
    for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(v, raising=False)
    yield


def bootstrap_env(tmp):
    pw = os.path.join(tmp, "admin-password")
    with open(pw, "w") as f:
        f.write(ADMIN_PW + "\n")
    return {"TANDEM_BOOTSTRAP_ADMIN": ADMIN, "TANDEM_BOOTSTRAP_PASSWORD_FILE": pw}


class AuthServer(Server):
    def __init__(self, data, env):
        old = dict(os.environ)
        os.environ.update(env)
        try:
            super().__init__(data, ["--auth", "on"])
        finally:
            os.environ.clear()
            os.environ.update(old)


def api(url, method, path, auth, **body):
    kw = {"json": body} if method != "GET" else {"params": body}
    if isinstance(auth, str):
        kw["headers"] = {"Authorization": f"Bearer {auth}"}
    else:
        kw["auth"] = auth
    r = requests.request(method, f"{url}/api/tandem/v1/{path}", timeout=30, **kw)
    return r.status_code, r.json()


def elevate_admin(url, reason="test setup"):
    """No standing right changes access: the admin elevates (just in time, with a reason)."""
    s, b = api(url, "POST", "access/elevate", (ADMIN, ADMIN_PW), role="admin", scope="*", for_seconds=3600, reason=reason)
    assert s == 200, b


def make_user(url, name, role, scope="workspaces/default", password=None):
    body = {"name": name}
    if password:
        body["password"] = password
    s, b = api(url, "POST", "access/principals", (ADMIN, ADMIN_PW), **body)
    assert s == 200, b
    s, b = api(url, "POST", "access/assignments", (ADMIN, ADMIN_PW), principal=name, role=role, scope=scope)
    assert s == 200, b
    s, b = api(url, "POST", f"access/principals/{name}/tokens", (ADMIN, ADMIN_PW), label="test")
    assert s == 200, b
    return b["token"], b["token_id"]


@pytest.fixture
def auth_server():
    with tempfile.TemporaryDirectory() as data:
        s = AuthServer(data, bootstrap_env(data))
        yield s
        s.stop()


def test_the_stock_client_with_basic_auth_and_with_a_token(auth_server, monkeypatch, tmp_path):
    url = auth_server.url
    # Without an elevation even the admin may not change access.
    s, b = api(url, "POST", "access/principals", (ADMIN, ADMIN_PW), name="early")
    assert s == 403 and "elevation" in b["message"], b
    elevate_admin(url)
    make_user(url, "alice", "contributor", password="alice-password-1")
    bob_token, _ = make_user(url, "bob", "reader")

    # Nobody: refused with 401, and the client says so.
    with pytest.raises(MlflowException) as e:
        MlflowClient(url).search_experiments()
    assert "UNAUTHENTICATED" in str(e.value) or "401" in str(e.value)

    # Alice with a password, as MLflow's own auth documents it.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "alice-password-1")
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("alice-exp")
    art = tmp_path / "notes.txt"
    art.write_text("hello")
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_metric("loss", 0.5)
        mlflow.log_artifact(str(art))
    client = MlflowClient(url)
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"lr": "0.1"}
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["notes.txt"]
    # The change log names the authenticated user, not a claimed one.
    s, b = api(url, "GET", "workspaces/default/changes", (ADMIN, ADMIN_PW), after=0, limit=10000)
    assert s == 200
    assert {e["principal"] for e in b["events"] if e["op"] in ("CreateRun", "LogBatch", "PutArtifact")} == {"alice"}

    # A wrong password: 401, never retried into a 5xx.
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(MlflowException) as e:
        MlflowClient(url).get_run(run.info.run_id)
    assert "UNAUTHENTICATED" in str(e.value) or "401" in str(e.value)

    # Bob with a token reads but may not write.
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", bob_token)
    client = MlflowClient(url)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    local = client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "dl"))
    assert open(local).read() == "hello"
    with pytest.raises(RestException) as e:
        client.create_experiment("bob-exp")
    assert e.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(Exception) as e:  # the artifact client raises requests' HTTPError
        client.log_artifact(run.info.run_id, str(art))
    assert "PERMISSION_DENIED" in str(e.value)
    # Bob's own token for a notebook, then revoked: refused at once.
    s, mine = api(url, "POST", "access/tokens", bob_token, label="notebook")
    assert s == 200 and mine["token"].startswith("tdm_")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mine["token"])
    assert MlflowClient(url).get_run(run.info.run_id)
    s, _ = api(url, "DELETE", f"access/tokens/{mine['token_id']}", bob_token)
    assert s == 200
    with pytest.raises(MlflowException):
        MlflowClient(url).get_run(run.info.run_id)

    # A no-delete lock on the workspace: the client, the API and the CLI are all refused,
    # the (elevated) admin included; reads and writes go on.
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PW)
    s, lock = api(url, "POST", "access/locks", (ADMIN, ADMIN_PW), scope="workspaces/default", kind="no-delete", reason="production models")
    assert s == 200, lock
    client = MlflowClient(url)
    with pytest.raises(RestException) as e:
        client.delete_run(run.info.run_id)
    assert e.value.error_code == "PERMISSION_DENIED" and "is locked (no-delete on workspaces/default" in str(e.value)
    client.set_tag(run.info.run_id, "still", "writable")
    r = requests.post(f"{url}/api/tandem/v1/workspaces/default/purge", json={"now": True}, auth=(ADMIN, ADMIN_PW), timeout=10)
    assert r.status_code == 403 and "is locked" in r.json()["message"]
    for args in (["purge", "--workspace", "default", "--now"], ["retention", "--workspace", "default", "--days", "30"],
                 ["restore", "--workspace", "default", "--in-place", "--yes", "--to-time", str(int(time.time() * 1000))]):
        r = subprocess.run([BIN, *args, "--data", auth_server.data], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and "is locked" in r.stderr, (args, r.stdout, r.stderr)
    # Lifted by the admin, the delete goes through.
    s, _ = api(url, "DELETE", f"access/locks/{lock['lock']['id']}", (ADMIN, ADMIN_PW))
    assert s == 200
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"


def test_auth_may_be_off_only_on_loopback(tmp_path):
    r = subprocess.run([BIN, "server", "--data", str(tmp_path / "d"), "--listen", "0.0.0.0:0", "--auth", "off"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "setting 'auth'" in r.stderr and "loopback" in r.stderr, r.stderr
    # With auth on and no admin, the server starts and says how to make one.
    s = Server(str(tmp_path / "d2"), ["--auth", "on"])
    try:
        assert requests.get(f"{s.url}/health", timeout=5).status_code == 200
        r = requests.get(f"{s.url}/api/2.0/mlflow/experiments/search", timeout=5)
        assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    finally:
        s.stop()
    # The CLI makes the first admin straight in the store.
    data = str(tmp_path / "d3")
    r = subprocess.run([BIN, "user", "create", "ops", "--admin", "--data", data], input="ops-password-1\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([BIN, "token", "create", "--user", "ops", "--data", data], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    s = Server(data, ["--auth", "on"])
    try:
        r = requests.get(f"{s.url}/api/2.0/mlflow/experiments/search", params={"max_results": 10}, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200, r.text
        r = requests.get(f"{s.url}/api/2.0/mlflow/experiments/search", params={"max_results": 10}, auth=("ops", "ops-password-1"), timeout=10)
        assert r.status_code == 200, r.text
    finally:
        s.stop()


def test_access_survives_a_sigkill_failover_and_regions_check_their_own_routes():
    with tempfile.TemporaryDirectory() as tmp:
        up = Up("sync", auth="on", env=bootstrap_env(tmp))
        try:
            url = up.url
            up.wait_for(lambda: api(url, "GET", "access/whoami", (ADMIN, ADMIN_PW))[0] == 200, 30, "the first admin")
            elevate_admin(url, "set up the team")
            carol, _ = make_user(url, "carol", "contributor")
            _, revoked_id = make_user(url, "dave", "reader")
            # A service identity of the workspace, and a lock on it.
            st, b = api(url, "POST", "access/principals", (ADMIN, ADMIN_PW), name="pipeline", kind="service", workspace="default")
            assert st == 200, b
            api(url, "POST", "access/assignments", (ADMIN, ADMIN_PW), principal="pipeline", role="contributor", scope="workspaces/default")
            svc = api(url, "POST", "access/principals/pipeline/tokens", (ADMIN, ADMIN_PW), label="ci")[1]["token"]
            st, lock = api(url, "POST", "access/locks", (ADMIN, ADMIN_PW), scope="workspaces/default", kind="no-delete", reason="prod")
            assert st == 200, lock
            s, _ = api(url, "DELETE", f"access/principals/dave/tokens/{revoked_id}", (ADMIN, ADMIN_PW))
            assert s == 200
            client = MlflowClient(url)
            headers = {"Authorization": f"Bearer {carol}"}
            os.environ["MLFLOW_TRACKING_TOKEN"] = carol
            try:
                run_id = client.create_run("0").info.run_id
                client.log_param(run_id, "before", "1")
                # A contributor may not move leadership, at the region itself.
                for region_url in up.urls.values():
                    r = requests.post(f"{region_url}/api/tandem/v1/workspaces/default/take-over", headers=headers, timeout=10)
                    assert r.status_code == 403, r.text
                    r = requests.get(f"{region_url}/api/tandem/v1/status", timeout=10)
                    assert r.status_code == 401
                # Both regions know carol: the access log is replicated.
                for region_url in up.urls.values():
                    up.wait_for(lambda: requests.get(f"{region_url}/api/tandem/v1/access/whoami", headers=headers, timeout=5).status_code == 200, 30, "carol in every region")
                leader = up.leader("_access")
                up.kill(leader)

                def led_in_a_new_epoch(ws):
                    # Either region may win the new epoch (`tandem up` restarts the killed one).
                    for r in up.status()["regions"]:
                        for w in r["workspaces"]:
                            if w["workspace"] == ws and w["role"] == "leader" and w["lease"] == "held" and w["epoch"] >= 2:
                                return True
                    return False

                up.wait_for(lambda: led_in_a_new_epoch("_access"), 60, "a new epoch of the access log")
                up.wait_for(lambda: led_in_a_new_epoch("default"), 60, "a new epoch of default")
                # Same rights after the failover, and no more; the lock still holds, the
                # service identity still works.
                client.log_param(run_id, "after", "1")
                r = requests.post(f"{url}/api/2.0/mlflow/runs/delete", json={"run_id": run_id}, auth=(ADMIN, ADMIN_PW), timeout=10)
                assert r.status_code == 403 and "is locked" in r.json()["message"], r.text
                r = requests.post(f"{url}/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": "svc", "value": "1"},
                                  headers={"Authorization": f"Bearer {svc}"}, timeout=10)
                assert r.status_code == 200, r.text
                assert client.get_run(run_id).data.params == {"before": "1", "after": "1", "svc": "1"}
                r = requests.get(f"{url}/api/tandem/v1/access/principals", headers=headers, timeout=10)
                assert r.status_code == 403
                s, b = api(url, "GET", "access/principals", (ADMIN, ADMIN_PW))
                assert s == 200 and {p["name"] for p in b["principals"]} >= {"root", "carol", "dave"}
                dave_tokens = [t for t in api(url, "GET", "access/principals/dave/tokens", (ADMIN, ADMIN_PW))[1]["tokens"] if t["id"] == revoked_id]
                assert dave_tokens and dave_tokens[0]["revoked_time"] is not None
                # Access changes keep working on the survivor, and the admin's elevation
                # came along with everything else.
                make_user(url, "erin", "reader")
            finally:
                os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        finally:
            up.stop()



def test_mlflows_own_auth_client_end_to_end(auth_server):
    """The stock AuthServiceClient needs `mlflow[auth]`, which the stock-server venv has (the
    client venv has mlflow-skinny): the flow runs there, against this tandem server."""
    from conftest import STOCK_BIN, require_stock

    require_stock()
    env = {**os.environ, "TANDEM_URL": auth_server.url, "TANDEM_ADMIN": ADMIN, "TANDEM_ADMIN_PW": ADMIN_PW}
    # Newer clients export the URIs this process set (mlflow.set_registry_uri) to the
    # environment: the flow must talk to this server only.
    for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(v, None)
    script = os.path.join(os.path.dirname(__file__), "auth_client_flow.py")
    r = subprocess.run([os.path.join(STOCK_BIN, "python"), script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "auth client flow: ok" in r.stdout


def archived_events(archive, ws):
    r = subprocess.run([BIN, "backup", "list", "--archive", archive], capture_output=True, text=True, timeout=60)
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == ws:
            return int(parts[2])
    return 0


def test_access_state_comes_back_with_a_point_in_time_restore(tmp_path):
    """Users, service identities, token hashes, role assignments and locks live in the `_access`
    change log, so a restore of the deployment to an instant brings back exactly the access
    that held then: revocations after it are undone, principals created after it do not exist."""
    archive = f"file://{tmp_path}/archive"
    data = str(tmp_path / "data")
    env = bootstrap_env(str(tmp_path))
    old = dict(os.environ)
    os.environ.update(env)
    try:
        s = Server(data, ["--auth", "on", "--archive", archive])
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        url = s.url
        elevate_admin(url)
        ivy, ivy_token_id = make_user(url, "ivy", "contributor")
        st, b = api(url, "POST", "access/principals", (ADMIN, ADMIN_PW), name="trainer", kind="service", workspace="default")
        assert st == 200, b
        api(url, "POST", "access/assignments", (ADMIN, ADMIN_PW), principal="trainer", role="contributor", scope="workspaces/default")
        st, t = api(url, "POST", "access/principals/trainer/tokens", (ADMIN, ADMIN_PW), label="nightly")
        trainer = t["token"]
        st, lock = api(url, "POST", "access/locks", (ADMIN, ADMIN_PW), scope="workspaces/default", kind="no-delete", reason="prod")
        assert st == 200
        exp = requests.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "kept"}, headers={"Authorization": f"Bearer {ivy}"}, timeout=10).json()["experiment_id"]
        head = api(url, "GET", "workspaces/_access/changes", (ADMIN, ADMIN_PW), after=0, limit=1)[1]["head_seq"]
        deadline = time.time() + 30
        while archived_events(archive, "_access") < head and time.time() < deadline:
            time.sleep(0.2)
        assert archived_events(archive, "_access") >= head, "the archive did not catch up"
        time.sleep(0.05)
        instant = str(int(time.time() * 1000))
        time.sleep(0.05)
        # After the instant: a revocation, a deletion, a lifted lock, a new user.
        assert api(url, "DELETE", f"access/principals/ivy/tokens/{ivy_token_id}", (ADMIN, ADMIN_PW))[0] == 200
        assert api(url, "DELETE", "access/principals/trainer", (ADMIN, ADMIN_PW))[0] == 200
        assert api(url, "DELETE", f"access/locks/{lock['lock']['id']}", (ADMIN, ADMIN_PW))[0] == 200
        make_user(url, "late", "reader")
        head = api(url, "GET", "workspaces/_access/changes", (ADMIN, ADMIN_PW), after=0, limit=1)[1]["head_seq"]
        deadline = time.time() + 30
        while archived_events(archive, "_access") < head and time.time() < deadline:
            time.sleep(0.2)
    finally:
        s.stop()

    # The region is lost; a new store is restored from the archive to the instant.
    fresh = str(tmp_path / "restored")
    os.makedirs(fresh)
    for ws in ("_access", "default"):
        r = subprocess.run([BIN, "restore", "--workspace", ws, "--to-time", instant, "--into", f"sqlite://{fresh}/metadata.sqlite",
                            "--archive", archive, "--data", fresh], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (ws, r.stdout, r.stderr)
    s = Server(fresh, ["--auth", "on"])
    try:
        url = s.url
        bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
        r = requests.get(f"{url}/api/2.0/mlflow/experiments/get", params={"experiment_id": exp}, headers=bearer(ivy), timeout=10)
        assert r.status_code == 200, "ivy's token was revoked only after the instant: " + r.text
        r = requests.get(f"{url}/api/2.0/mlflow/experiments/get", params={"experiment_id": exp}, headers=bearer(trainer), timeout=10)
        assert r.status_code == 200, "the service identity and its token come back: " + r.text
        st, b = api(url, "GET", "access/principals", (ADMIN, ADMIN_PW))
        assert st == 200 and "late" not in {p["name"] for p in b["principals"]}
        st, b = api(url, "GET", "access/locks", (ADMIN, ADMIN_PW))
        assert [l["scope"] for l in b["locks"]] == ["workspaces/default"], b
        r = requests.post(f"{url}/api/2.0/mlflow/experiments/delete", json={"experiment_id": exp}, auth=(ADMIN, ADMIN_PW), timeout=10)
        assert r.status_code == 403 and "is locked" in r.json()["message"], r.text
    finally:
        s.stop()
