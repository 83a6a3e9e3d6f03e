"""Two regions in tandem (`tandem up`): the stock client through the front door keeps working
while the leader region is SIGKILLed, acknowledged writes survive per the workspace's mode,
and planned switchovers lose nothing."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from conftest import BIN


@pytest.fixture(autouse=True)
def tracking():
    """Replaces conftest's single-server fixture: these tests run their own deployment."""
    from mlflow.utils import workspace_context

    workspace_context.set_workspace(None)
    yield


class Up:
    """`tandem up` in a temporary folder: two region processes, a witness, a front door."""

    def __init__(self, write_ack, mode="hot/warm", auth="off", env=None, data=None):
        # `data` may hold a deployment.toml of the test's own; `up` then uses it as it is.
        self.dir = data or tempfile.mkdtemp(prefix="tandem-up-")
        self.proc = subprocess.Popen([BIN, "up", "--data", self.dir, "--port", "0", "--write-ack", write_ack, "--mode", mode, "--auth", auth],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        self.pids, self.urls = {}, {}
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("tandem up exited")
            m = re.match(r"tandem: region (\w+) \(pid (\d+)\) on (\S+)", line)
            if m:
                self.pids[m.group(1)] = int(m.group(2))
                self.urls[m.group(1)] = m.group(3)
            m = re.match(r"tracking uri: (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        def keep_log():
            with open(os.path.join(self.dir, "up.log"), "a") as f:
                for line in self.proc.stdout:
                    f.write(line)
                    f.flush()

        threading.Thread(target=keep_log, daemon=True).start()
        try:
            self.wait_until_up(mode)
        except BaseException:
            # A deployment that never came up leaves no process behind.
            self.stop()
            raise

    def wait_until_up(self, mode):
        self.wait_for(lambda: self.leader() is not None, 30, "a leader")
        # The leader creates the workspace; both regions have it once the standby caught up
        # (a hot/cold secondary has nothing until a failover).
        regions = ("east", "west") if mode == "hot/warm" else (self.leader(),)
        self.wait_for(lambda: all(self.region_status(r)[1]["head_seq"] >= 2 for r in regions), 30, "the default workspace")

    def status(self):
        out = subprocess.run([BIN, "status", "--data", self.dir, "--json"], capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout)

    def leader(self, ws="default"):
        for r in self.status()["regions"]:
            for w in r["workspaces"]:
                if w["workspace"] == ws and w["role"] == "leader" and w["lease"] == "held":
                    return r["name"]
        return None

    def region_status(self, name, ws="default"):
        for r in self.status()["regions"]:
            if r["name"] == name:
                for w in r["workspaces"]:
                    if w["workspace"] == ws:
                        return r, w
        return None, None

    def wait_for(self, cond, seconds, what):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if cond():
                    return
            except Exception:  # noqa: BLE001 - regions may be mid-restart
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def kill(self, region):
        pid = self.region_status(region)[0]["pid"]
        os.kill(pid, signal.SIGKILL)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["pkill", "-f", f"region --deployment {self.dir}"], check=False)


@pytest.fixture
def up_sync():
    u = Up("sync")
    yield u
    u.stop()


@pytest.fixture
def up_async():
    u = Up("async")
    yield u
    u.stop()


def stream_writes(client, run_id, stop, acked, errors):
    i = 0
    while not stop.is_set():
        key = f"k{i}"
        try:
            client.log_param(run_id, key, str(i))
            acked.append(key)
        except Exception as e:  # noqa: BLE001 - a write the client gave up on is not acknowledged
            errors.append(repr(e))
        i += 1


def kill_leader_mid_stream(up):
    client = MlflowClient(tracking_uri=up.url)
    run_id = client.create_run("0").info.run_id
    stop, acked, errors = threading.Event(), [], []
    writer = threading.Thread(target=stream_writes, args=(client, run_id, stop, acked, errors))
    writer.start()
    time.sleep(2)
    old = up.leader()
    old_epoch = up.region_status(old)[1]["epoch"]
    status_before = up.region_status({"east": "west", "west": "east"}[old])[1]
    killed_at = time.time()
    n_before = len(acked)
    up.kill(old)
    # The client's own retries ride through; wait for writes to flow again.
    up.wait_for(lambda: len(acked) > n_before + 20, 60, "writes to resume after the failover")
    resumed = time.time() - killed_at
    stop.set()
    writer.join(timeout=120)
    # Leadership moved to a new epoch: usually to the standby, or back to the killed region
    # if `tandem up` restarted it before the standby's claim (one writer per epoch either way).
    new = up.leader()
    assert new and up.region_status(new)[1]["epoch"] > old_epoch, f"no failover happened ({old} -> {new})"
    promoted = up.region_status(new)[1]["last_failover"]["at_ms"] / 1000 - killed_at
    print(f"RTO: the new leader held the lease {promoted:.1f} s after SIGKILL; the stock client's writes resumed after {resumed:.1f} s (its retry backoff included)")
    assert promoted <= 10, f"automatic failover took {promoted:.1f} s"
    return client, run_id, acked, errors, resumed, status_before, old, new


def test_sync_mode_sigkill_of_the_leader_loses_no_acknowledged_write(up_sync):
    client, run_id, acked, errors, resumed, _, old, new = kill_leader_mid_stream(up_sync)
    params = client.get_run(run_id).data.params
    missing = [k for k in acked if k not in params]
    assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
    # The front door held the writes sent during the failover: the client saw a pause, no error.
    assert not errors, errors[:3]
    print(f"sync: {len(acked)} writes acknowledged, failover {old} -> {new}, writes resumed {resumed:.1f} s after SIGKILL")
    # The killed region is restarted by `tandem up`; the region that does not lead follows, caught up.
    follower = {"east": "west", "west": "east"}[new]
    up_sync.wait_for(lambda: up_sync.region_status(follower)[1]["role"] == "standby", 60, "the other region to follow")
    up_sync.wait_for(lambda: up_sync.region_status(follower)[1]["replication_lag_events"] == 0, 60, "the follower to catch up")
    # tandem's own writes sent to the standby are forwarded to the leader too.
    r = requests.patch(up_sync.urls[follower] + "/api/tandem/v1/workspaces/default/retention", json={"days": 30})
    assert r.status_code == 200, r.text
    assert requests.get(up_sync.urls[new] + "/api/tandem/v1/workspaces/default/retention").json()["days"] == 30
    # Prometheus metrics per region.
    metrics = requests.get(up_sync.urls[new] + "/metrics").text
    for series in ("tandem_replication_lag_events", "tandem_replication_lag_seconds", "tandem_epoch", "tandem_leader", "tandem_lease_held"):
        assert f'{series}{{region="{new}",workspace="default"}}' in metrics, series
    # The change log verifies in both regions and they agree on its head.
    heads = {r: requests.get(u + "/api/tandem/v1/workspaces/default/verify").json() for r, u in up_sync.urls.items()}
    assert all(h["ok"] for h in heads.values()), heads
    assert len({h["head_seq"] for h in heads.values()}) == 1, heads


def test_async_mode_loses_at_most_the_reported_lag(up_async):
    client, run_id, acked, errors, resumed, status_before, old, new = kill_leader_mid_stream(up_async)
    params = client.get_run(run_id).data.params
    missing = [k for k in acked if k not in params]
    new_status = up_async.region_status(new)[1]
    reported = new_status["last_failover"]["events_possibly_lost"] if new_status["last_failover"] else 0
    print(f"async: {len(acked)} acknowledged, {len(missing)} missing, reported possibly lost {reported}, writes resumed {resumed:.1f} s after SIGKILL")
    assert len(missing) <= max(reported, status_before["replication_lag_events"]) + 1
    assert not errors, errors[:3]
    # Whatever the old leader had that the new one did not is kept aside, not dropped.
    follower = {"east": "west", "west": "east"}[new]
    up_async.wait_for(lambda: up_async.region_status(follower)[1]["role"] == "standby", 60, "the other region to follow")
    up_async.wait_for(lambda: up_async.region_status(follower)[1]["replication_lag_events"] == 0, 60, "the follower to catch up")
    out = subprocess.run([BIN, "diverged", "list", "--data", up_async.dir], capture_output=True, text=True, timeout=30).stdout
    diverged = [l for l in out.splitlines() if l.startswith(old + "\t")]
    assert len(diverged) >= len(missing), (out, missing)


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def test_planned_switchover_and_back_lose_nothing_and_models_follow(up_sync, tmp_path):
    up = up_sync
    mlflow.set_tracking_uri(up.url)
    mlflow.set_registry_uri(up.url)
    mlflow.set_experiment("sw-" + uuid.uuid4().hex[:6])
    name = "sw-model-" + uuid.uuid4().hex[:6]
    payload = os.urandom(1 << 20)
    (tmp_path / "weights.bin").write_bytes(payload)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=AddN(7), registered_model_name=name)
        mlflow.log_artifact(str(tmp_path / "weights.bin"))
    MlflowClient().set_registered_model_alias(name, "prod", "1")
    client = MlflowClient(tracking_uri=up.url)
    stop, acked, errors = threading.Event(), [], []
    writer = threading.Thread(target=stream_writes, args=(client, run.info.run_id, stop, acked, errors))
    writer.start()
    time.sleep(1)
    first = up.leader()
    other = {"east": "west", "west": "east"}[first]
    for target in (other, first):
        out = subprocess.run([BIN, "failover", "--data", up.dir, "--workspace", "default", "--to", target], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["to"] == target and report["events_possibly_lost"] == 0
        up.wait_for(lambda: up.leader() == target, 30, f"{target} to lead")
        time.sleep(1)
    stop.set()
    writer.join(timeout=120)
    params = client.get_run(run.info.run_id).data.params
    assert [k for k in acked if k not in params] == []
    # The model and the artifact, logged before both switchovers, load byte for byte from
    # each region directly.
    for region, url in up.urls.items():
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        model = mlflow.pyfunc.load_model(f"models:/{name}@prod")
        assert list(model.predict(pd.DataFrame({"x": [1]}))["x"]) == [8], region
        got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="weights.bin", dst_path=str(tmp_path / region))
        assert open(got, "rb").read() == payload, region


def lease_ms(up):
    text = open(os.path.join(up.dir, "deployment.toml")).read()
    return int(re.search(r"^lease_ms = (\d+)", text, re.M).group(1))


def test_a_leader_paused_for_less_than_a_lease_is_not_replaced(up_sync):
    """A leader that stalls (SIGSTOP) for three quarters of its lease under a stream of writes
    keeps its epoch: the writes pause and go on, none is lost, the client sees no error."""
    up = up_sync
    lease = lease_ms(up) / 1000
    client = MlflowClient(tracking_uri=up.url)
    run_id = client.create_run("0").info.run_id
    stop, acked, errors = threading.Event(), [], []
    writer = threading.Thread(target=stream_writes, args=(client, run_id, stop, acked, errors))
    writer.start()
    try:
        leader = up.leader()
        epoch = up.region_status(leader)[1]["epoch"]
        pid = up.region_status(leader)[0]["pid"]
        for _ in range(3):
            time.sleep(lease)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.75 * lease)
            os.kill(pid, signal.SIGCONT)
        time.sleep(2 * lease)
    finally:
        stop.set()
        writer.join(timeout=120)
    assert up.leader() == leader
    for r in up.urls:
        assert up.region_status(r)[1]["epoch"] == epoch, f"{r} moved to another epoch after a pause shorter than a lease"
    params = client.get_run(run_id).data.params
    assert [k for k in acked if k not in params] == [] and not errors, errors[:3]


def test_a_request_in_flight_to_a_frozen_leader_goes_to_the_new_one(up_async):
    """The leader freezes (SIGSTOP) with requests in flight and stays frozen past its lease: the
    front door sends them to the region that took over instead of waiting for the frozen one;
    when it wakes it refuses what it had not done (its lease lapsed) and steps down. (Async:
    in sync mode the survivor rightly refuses writes while its standby is frozen.)"""
    up = up_async
    client = MlflowClient(tracking_uri=up.url)
    run_id = client.create_run("0").info.run_id
    leader = up.leader()
    pid = up.region_status(leader)[0]["pid"]
    answers = {}

    def write(i):
        t = time.time()
        r = requests.post(up.url + "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": f"frozen{i}", "value": "v"}, timeout=60)
        answers[i] = (r.status_code, time.time() - t)

    os.kill(pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        new = up.leader()
        assert new and new != leader, "no other region took over"
        # Answered by the new leader while the old one was still frozen.
        assert all(status == 200 for status, _ in answers.values()) and len(answers) == 3, answers
    finally:
        os.kill(pid, signal.SIGCONT)
    up.wait_for(lambda: up.region_status(leader)[1]["role"] == "standby", 60, "the old leader to step down")
    params = client.get_run(run_id).data.params
    assert all(f"frozen{i}" in params for i in range(3)), params


def test_the_front_door_holds_a_bounded_number_of_requests_for_a_bounded_time(up_async):
    """With no region able to lead, the front door holds at most `max_held` requests, each for
    at most `hold_ms`, then answers 503 TEMPORARILY_UNAVAILABLE; one beyond the bound is
    answered at once. A held request goes through when a leader is back."""
    up = up_async
    path = os.path.join(up.dir, "deployment.toml")
    up.stop()
    text = open(path).read()
    open(path, "w").write(text.replace("[front_door]\n", "[front_door]\nhold_ms = 1500\nmax_held = 2\n"))
    up = Up("async", data=up.dir)
    pids = [up.region_status(r)[0]["pid"] for r in up.urls]
    url = up.url + "/api/2.0/mlflow/experiments/create"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(1.5)  # the front door's status polls time out: no leader is known
        answers = {}

        def post(i):
            t = time.time()
            r = requests.post(url, json={"name": f"held-{i}-{uuid.uuid4().hex[:6]}"}, timeout=30)
            answers[i] = (r.status_code, r.json().get("error_code"), time.time() - t, r.text)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # both are held now
        post(2)
        for t in threads:
            t.join()
        # The third found the queue full and was answered at once.
        assert answers[2][:2] == (503, "TEMPORARILY_UNAVAILABLE") and answers[2][2] < 1.0, answers[2]
        assert "already waiting" in answers[2][3]
        for i in range(2):
            status, code, took, _ = answers[i]
            assert (status, code) == (503, "TEMPORARILY_UNAVAILABLE") and 1.4 < took < 5, answers[i]
        # A request held while the regions come back goes through.
        t = threading.Thread(target=post, args=(3,))
        t.start()
        time.sleep(0.3)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        t.join()
        assert answers[3][0] == 200, answers[3]
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        up.stop()


def test_forced_failover_reports_what_may_be_lost(up_async):
    """The leader is alive but unreachable (SIGSTOP): an operator forces the failover, is told
    how many events may be lost, and the old leader steps down when it comes back."""
    up = up_async
    client = MlflowClient(tracking_uri=up.url)
    run_id = client.create_run("0").info.run_id
    for i in range(20):
        client.log_param(run_id, f"before{i}", "v")
    old = up.leader()
    target = {"east": "west", "west": "east"}[old]
    up.wait_for(lambda: up.region_status(target)[1]["replication_lag_events"] == 0, 30, "the standby to catch up")
    pid = up.region_status(old)[0]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        out = subprocess.run([BIN, "failover", "--data", up.dir, "--workspace", "default", "--to", target, "--force"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["forced"] is True and report["to"] == target
        # The standby had everything, so nothing may be lost, and the report says so.
        assert report["events_possibly_lost"] == 0, report
        client.log_param(run_id, "after", "v")
    finally:
        os.kill(pid, signal.SIGCONT)
    up.wait_for(lambda: up.region_status(old)[1]["role"] == "standby", 30, "the old leader to step down")
    up.wait_for(lambda: up.region_status(old)[1]["replication_lag_events"] == 0, 30, "the old leader to follow")
    params = client.get_run(run_id).data.params
    assert all(f"before{i}" in params for i in range(20)) and "after" in params
    status = subprocess.run([BIN, "status", "--data", up.dir], capture_output=True, text=True, timeout=30).stdout
    assert "forced failover" in status, status


def test_hot_cold_failover_restores_from_the_archive_and_the_client_carries_on(tmp_path):
    up = Up("async", mode="hot/cold")
    try:
        # Both URIs explicit: earlier tests in this process set a global registry URI.
        client = MlflowClient(tracking_uri=up.url, registry_uri=up.url)
        exp = client.create_experiment("hot-cold")
        runs = []
        for i in range(5):
            r = client.create_run(exp)
            client.log_param(r.info.run_id, "i", str(i))
            client.log_batch(r.info.run_id, metrics=[mlflow.entities.Metric("loss", 1.0 / (s + 1), 0, s) for s in range(50)])
            client.set_terminated(r.info.run_id)
            runs.append(r.info.run_id)
        payload = os.urandom(300_000)
        (tmp_path / "model.bin").write_bytes(payload)
        client.log_artifact(runs[0], str(tmp_path / "model.bin"))
        client.create_registered_model("churn")
        client.create_model_version("churn", f"runs:/{runs[0]}/model.bin", run_id=runs[0])
        leader = up.leader()
        assert leader == "east"
        # The secondary keeps nothing, and reads through it reach the leader.
        assert up.region_status("west")[1]["head_seq"] == 0
        up.wait_for(lambda: up.region_status("west")[1]["leader"] == "east", 30, "west to know its leader")
        assert MlflowClient(tracking_uri=up.urls["west"]).get_experiment(exp).name == "hot-cold"
        # Wait until the archive has everything (what hot/cold can promise), then lose the region.
        up.wait_for(lambda: up.region_status("east")[1]["archive_lag_events"] == 0, 30, "the archive to catch up")
        archived_head = up.region_status("east")[1]["head_seq"]
        killed_at = time.time()
        up.kill("east")
        out = subprocess.run([BIN, "failover", "--data", up.dir, "--workspace", "default", "--to", "west", "--force"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["mode"] == "hot/cold" and report["to"] == "west" and report["head_seq"] >= archived_head, report
        assert report["artifacts_missing"] == [], report
        # The stock client, through the front door, sees everything and writes again.
        deadline = time.time() + 60
        while True:
            try:
                client.set_experiment_tag(exp, "after", "failover")
                break
            except Exception:  # noqa: BLE001 - the front door is moving to the new leader
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        rto = time.time() - killed_at
        print(f"hot/cold RTO: {rto:.2f} s (server-side {report['rto_ms']} ms)")
        assert up.leader() == "west"
        for i, run_id in enumerate(runs):
            run = client.get_run(run_id)
            assert run.data.params["i"] == str(i) and run.info.status == "FINISHED"
            assert len(client.get_metric_history(run_id, "loss")) == 50
        downloaded = client.download_artifacts(runs[0], "model.bin", str(tmp_path / "dl"))
        assert open(downloaded, "rb").read() == payload
        assert client.get_model_version("churn", "1").run_id == runs[0]
        assert client.get_experiment(exp).tags["after"] == "failover"
        # The lost region comes back (restarted by `tandem up`) and a planned failover returns
        # the workspace to it: the leader drains, the archive catches up, nothing is lost.
        up.wait_for(lambda: up.region_status("east")[1]["role"] == "standby", 60, "east to come back")
        head_before = up.region_status("west")[1]["head_seq"]
        out = subprocess.run([BIN, "failover", "--data", up.dir, "--workspace", "default", "--to", "east"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        back = json.loads(out.stdout)
        assert back["to"] == "east" and back["forced"] is False and back["head_seq"] == head_before and back["events_possibly_lost"] == 0, back
        up.wait_for(lambda: up.leader() == "east", 30, "east to lead")
        assert client.get_experiment(exp).tags["after"] == "failover"
        client.set_experiment_tag(exp, "back", "home")
        assert client.get_experiment(exp).tags["back"] == "home"
        downloaded = client.download_artifacts(runs[0], "model.bin", str(tmp_path / "dl2"))
        assert open(downloaded, "rb").read() == payload
    finally:
        up.stop()


@pytest.mark.parametrize("write_ack,mode", [("async", "hot/warm"), ("sync", "hot/warm"), ("async", "hot/cold")])
def test_ready_means_ready_a_write_the_moment_the_tracking_uri_appears(write_ack, mode):
    """`tracking uri:` is printed only once a write through it is accepted: a script that waits
    for the line and writes at once (no retry) succeeds, every time, in every mode."""
    for attempt in range(3):
        d = tempfile.mkdtemp(prefix="tandem-ready-")
        proc = subprocess.Popen([BIN, "up", "--data", d, "--port", "0", "--write-ack", write_ack, "--mode", mode, "--auth", "off"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = None
            deadline = time.time() + 90
            while time.time() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                m = re.match(r"tracking uri: (\S+)", line)
                if m:
                    url = m.group(1)
                    break
            assert url, "tandem up never printed its tracking uri"
            s = requests.Session()
            s.trust_env = False
            r = s.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": f"ready-{attempt}"}, timeout=30)
            assert r.status_code == 200, (attempt, r.status_code, r.text)
            r = s.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=30)
            assert r.status_code == 200, (attempt, r.status_code, r.text)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            subprocess.run(["pkill", "-f", f"region --deployment {d}"], check=False)


def test_a_region_that_cannot_serve_yet_answers_503_never_404(tmp_path):
    """A region started alone, before any leader created the workspace: every answer is a
    result or a retryable 503, never MLflow's not-found."""
    import socket

    ports = []
    for _ in range(3):
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            ports.append(sk.getsockname()[1])
    d = tmp_path
    (d / "deployment.toml").write_text(f"""
[witness]
location = "file://{d}/witness"
[[region]]
name = "east"
listen = "127.0.0.1:{ports[0]}"
store = "sqlite://{d}/east.sqlite"
artifacts = "file://{d}/east-artifacts"
[[region]]
name = "west"
listen = "127.0.0.1:{ports[1]}"
store = "sqlite://{d}/west.sqlite"
artifacts = "file://{d}/west-artifacts"
[[workspace]]
name = "default"
mode = "hot/warm"
preferred_leader = "east"
[access]
auth = "off"
""")
    proc = subprocess.Popen([BIN, "region", "--deployment", str(d / "deployment.toml"), "--name", "west", "--data", str(d / "west")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "serving on" in proc.stdout.readline()
        seen = set()
        deadline = time.time() + 3
        while time.time() < deadline:
            r = requests.get(f"http://127.0.0.1:{ports[1]}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, timeout=10)
            seen.add(r.status_code)
            assert r.status_code in (200, 503), (r.status_code, r.text)
            if r.status_code == 503:
                assert r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            time.sleep(0.05)
        assert 503 in seen, f"the region was never caught before it could serve: {seen}"
    finally:
        proc.kill()
        proc.wait()
