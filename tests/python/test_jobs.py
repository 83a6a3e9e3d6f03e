"""Jobs with real processes: a small training script that logs metrics through the stock
mlflow client and keeps a checkpoint file, run by tandem's scheduler as local processes.
Completion, retries resuming from the checkpoint, cancel, timeout, quota waits, idempotency
keys and bad specs (a clear 4xx, nothing written)."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
import requests
from mlflow import MlflowClient

from conftest import BIN, Server

TRAIN = textwrap.dedent(
    """
    import json, os, sys, time
    import mlflow

    ckpt = os.path.join(os.environ["CKPT_DIR"], os.environ["TANDEM_JOB_KEY"] + ".json")
    attempt = int(os.environ["TANDEM_JOB_ATTEMPT"])
    if os.environ.get("PID_DIR"):
        with open(os.path.join(os.environ["PID_DIR"], f"{os.environ['TANDEM_JOB_KEY']}-{attempt}.pid"), "w") as f:
            f.write(str(os.getpid()))
    start = json.load(open(ckpt))["next_step"] if os.path.exists(ckpt) else 0
    print(f"attempt {attempt} resumes at step {start}", flush=True)
    with mlflow.start_run():
        mlflow.log_param("resumed_at", start)
        for step in range(start, int(os.environ.get("STEPS", "6"))):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"next_step": step + 1}, f)
            os.replace(ckpt + ".tmp", ckpt)
            if attempt == 1 and step == int(os.environ.get("FAIL_AFTER", "-1")):
                print("simulated failure", file=sys.stderr, flush=True)
                sys.exit(3)
            time.sleep(float(os.environ.get("STEP_SECONDS", "0")))
    print("done", flush=True)
    """
)


@pytest.fixture(autouse=True)
def tracking():
    """Replaces conftest's: these tests run their own servers."""
    yield


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="tandem-jobs-")
    script = os.path.join(d, "train.py")
    with open(script, "w") as f:
        f.write(TRAIN)
    ckpt = os.path.join(d, "ckpt")
    os.makedirs(ckpt)
    config = os.path.join(d, "tandem.toml")
    # One slot: the quota test sees a job wait for another.
    with open(config, "w") as f:
        f.write('[[compute]]\nname = "local"\nslots = 1\ncpus = 2\nmemory_mb = 4096\n\n[[compute]]\nname = "gpu"\nslots = 1\ncpus = 1\n')
    s = Server(os.path.join(d, "data"), ["--config", config])
    yield {"url": s.url, "script": script, "ckpt": ckpt, "dir": d, "server": s}
    s.stop()


def api(e):
    return e["url"] + "/api/tandem/v1/workspaces/default/jobs"


def submit(e, **spec):
    spec.setdefault("command", [sys.executable, e["script"]])
    env = {"CKPT_DIR": e["ckpt"]}
    env.update(spec.pop("env", {}))
    spec["env"] = env
    r = requests.post(api(e), json=spec, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["job"]


def wait(e, job_id, states, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = requests.get(f"{api(e)}/{job_id}", timeout=30).json()["job"]
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def runs_of(e, job_id):
    c = MlflowClient(tracking_uri=e["url"])
    runs = c.search_runs(["0"], filter_string=f"tags.`tandem.job_id` = '{job_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["tandem.attempt"]))


def test_a_job_runs_logs_through_the_stock_client_and_completes(env):
    job = submit(env, name="train", key="complete-1")
    done = wait(env, job["job_id"], ["completed", "failed"])
    assert done["state"] == "completed", done
    assert [a["state"] for a in done["attempts"]] == ["completed"]
    (run,) = runs_of(env, job["job_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["tandem.attempt"] == "1"
    c = MlflowClient(tracking_uri=env["url"])
    assert [m.step for m in c.get_metric_history(run.info.run_id, "loss")] == list(range(6))
    local = c.download_artifacts(run.info.run_id, "stdout.txt", tempfile.mkdtemp())
    assert "attempt 1 resumes at step 0" in open(local).read()


def test_a_failed_attempt_is_retried_and_resumes_from_its_checkpoint(env):
    job = submit(env, key="retry-1", retries=1, env={"FAIL_AFTER": "2"})
    done = wait(env, job["job_id"], ["completed", "failed"])
    assert done["state"] == "completed", done
    assert [(a["attempt"], a["state"], a.get("exit_code")) for a in done["attempts"]] == [(1, "failed", 3), (2, "completed", 0)]
    first, second = runs_of(env, job["job_id"])
    assert (first.info.status, second.info.status) == ("FAILED", "FINISHED")
    # Attempt 2 started where attempt 1's checkpoint left off.
    assert second.data.params["resumed_at"] == "3"
    c = MlflowClient(tracking_uri=env["url"])
    assert [m.step for m in c.get_metric_history(second.info.run_id, "loss")] == [3, 4, 5]
    stderr = c.download_artifacts(first.info.run_id, "stderr.txt", tempfile.mkdtemp())
    assert "simulated failure" in open(stderr).read()


def test_no_retry_left_means_failed(env):
    job = submit(env, key="fail-1", env={"FAIL_AFTER": "0"})
    done = wait(env, job["job_id"], ["completed", "failed"])
    assert done["state"] == "failed"
    assert len(done["attempts"]) == 1


def test_cancel_and_timeout_stop_the_process(env):
    marker = os.path.join(env["dir"], "cancel-marker")
    job = submit(env, command=["/bin/sh", "-c", f"sleep 30; touch {marker}"], key="cancel-1")
    wait(env, job["job_id"], ["running"])
    r = requests.post(f"{api(env)}/{job['job_id']}/cancel", timeout=30)
    assert r.status_code == 200, r.text
    done = wait(env, job["job_id"], ["cancelled", "failed", "completed"])
    assert done["state"] == "cancelled"
    assert done["attempts"][0]["state"] == "cancelled"
    assert runs_of(env, job["job_id"])[0].info.status == "KILLED"
    # Cancelling what has ended is refused.
    r = requests.post(f"{api(env)}/{job['job_id']}/cancel", timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    job = submit(env, command=["/bin/sh", "-c", f"sleep 30; touch {marker}"], key="timeout-1", timeout_seconds=1)
    done = wait(env, job["job_id"], ["failed", "completed"])
    assert [a["state"] for a in done["attempts"]] == ["timed_out"]
    assert not os.path.exists(marker), "a killed attempt went on running"


def test_a_job_waits_for_quota_rather_than_oversubscribe(env):
    first = submit(env, key="quota-1", env={"STEP_SECONDS": "0.5"})
    second = submit(env, key="quota-2")
    wait(env, first["job_id"], ["running"])
    # One slot on `local`: the second waits while the first runs...
    seen = []
    while True:
        a = requests.get(f"{api(env)}/{first['job_id']}", timeout=30).json()["job"]["state"]
        b = requests.get(f"{api(env)}/{second['job_id']}", timeout=30).json()["job"]["state"]
        seen.append((a, b))
        assert not (a == "running" and b == "running"), "two attempts on one slot"
        if a == "completed":
            break
        time.sleep(0.1)
    assert ("running", "queued") in seen
    # ...and runs once the slot is free. Meanwhile other compute is not held up.
    other = submit(env, key="gpu-1", compute="gpu", command=["/bin/true"])
    assert wait(env, other["job_id"], ["completed", "failed"])["state"] == "completed"
    assert wait(env, second["job_id"], ["completed", "failed"])["state"] == "completed"


def test_the_same_idempotency_key_runs_once(env):
    a = submit(env, key="once-1", command=["/bin/true"])
    b = submit(env, key="once-1", command=["/bin/false"])
    assert a["job_id"] == b["job_id"]
    wait(env, a["job_id"], ["completed", "failed"])
    assert len(runs_of(env, a["job_id"])) == 1
    keys = [j for j in requests.get(api(env), timeout=30).json()["jobs"] if j.get("key") == "once-1"]
    assert len(keys) == 1


def head(e):
    return requests.get(e["url"] + "/api/tandem/v1/workspaces/default/changes?after=0&limit=1", timeout=30).json()["head_seq"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"command": ["true"], "environment": "no-such-env"}, "does not exist"),
        ({"name": "no command"}, "command"),
        ({"command": ""}, "command"),
        ({"command": ["true"], "compute": "local", "resources": {"cpus": 64}}, "more than compute"),
        ({"command": ["true"], "resources": {"memory_mb": 1 << 30}}, "more than compute"),
        ({"command": ["true"], "compute": "tpu"}, "No compute named"),
        ({"command": ["true"], "inputs": {"train": "no-such-data"}}, "does not exist"),
        ({"command": ["true"], "retries": 99}, "retries"),
        ({"command": ["true"], "timeout_seconds": 0}, "timeout_seconds"),
        ({"command": ["true"], "env": {"MLFLOW_RUN_ID": "x"}}, "not allowed"),
        ({"command": ["true"], "experiment_id": "12345"}, "No Experiment"),
    ],
)
def test_bad_specs_are_refused_and_write_nothing(env, spec, message):
    before = head(env)
    r = requests.post(api(env), json=spec, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    assert message in r.json()["message"], r.text
    assert head(env) == before


def test_tandem_job_submit_reads_a_toml_spec(env):
    spec = os.path.join(env["dir"], "job.toml")
    with open(spec, "w") as f:
        f.write(f'name = "from-cli"\nkey = "cli-1"\ncommand = ["{sys.executable}", "{env["script"]}"]\n[env]\nCKPT_DIR = "{env["ckpt"]}"\nSTEPS = "2"\n')
    import subprocess

    out = subprocess.run([BIN, "job", "submit", "-f", spec], capture_output=True, text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_URI": env["url"]})
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["job"]
    assert wait(env, job["job_id"], ["completed", "failed"])["state"] == "completed"
    out = subprocess.run([BIN, "job", "get", job["job_id"]], capture_output=True, text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_URI": env["url"]})
    assert '"completed"' in out.stdout


def test_sigkill_of_the_leader_region_runs_the_job_again_in_the_other_region(env):
    """`tandem up`, hot/warm with synchronous acknowledgement: a job runs in the leader
    region; the leader is SIGKILLed mid-job; the surviving region records attempt 1 as lost
    and runs attempt 2, which resumes from the checkpoint and completes. Both attempts are
    runs; no attempt number is used twice; attempt 1's process died with its region."""
    from test_regions import Up

    up = Up("sync")
    try:
        base = up.url + "/api/tandem/v1/workspaces/default/jobs"
        spec = {
            "name": "failover",
            "key": "failover-1",
            "command": [sys.executable, env["script"]],
            "env": {"CKPT_DIR": env["ckpt"], "STEPS": "14", "STEP_SECONDS": "0.4", "PID_DIR": env["dir"]},
        }
        job = requests.post(base, json=spec, timeout=30).json()["job"]
        jid = job["job_id"]
        c = MlflowClient(tracking_uri=up.url)

        def progressed():
            j = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
            if j["state"] != "running":
                return False
            return len(c.get_metric_history(j["run_id"], "loss")) >= 3

        up.wait_for(progressed, 60, "the job to run and log a few steps")
        first = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
        old = first["region"]
        assert old == up.leader()
        # `tandem status` says whether the other region could take the running attempts.
        other = {"east": "west", "west": "east"}[old]
        (ready,) = [r for r in up.status()["job_readiness"] if r["if_lost"] == old]
        assert ready["moves_to"] == other and ready["ready"] is True, ready
        assert ready["needs"]["local"]["attempts"] == 1 and ready["needs"]["local"]["slots"] >= 1, ready
        text = subprocess.run([BIN, "status", "--data", up.dir], capture_output=True, text=True, timeout=30).stdout
        assert f"if {old} were lost, {other} could run its 1 attempts (ready)" in text, text
        killed_at = time.time()
        up.kill(old)
        deadline = time.time() + 90
        final, rerun_after = None, None
        while time.time() < deadline:
            try:
                final = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
                if rerun_after is None and final["attempt"] >= 2:
                    rerun_after = time.time() - killed_at
                if final["state"] in ("completed", "failed", "cancelled"):
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.1)
        assert final and final["state"] == "completed", final
        attempts = [(a["attempt"], a["state"], a["region"]) for a in final["attempts"]]
        assert attempts[0] == (1, "lost", old), attempts
        assert attempts[-1][1] == "completed" and attempts[-1][2] != old, attempts
        numbers = [a[0] for a in attempts]
        assert numbers == sorted(set(numbers)), "an attempt number was used twice"
        runs = sorted(c.search_runs(["0"], filter_string=f"tags.`tandem.job_id` = '{jid}'"), key=lambda r: int(r.data.tags["tandem.attempt"]))
        assert [r.data.tags["tandem.attempt"] for r in runs] == [str(n) for n in numbers]
        assert int(runs[-1].data.params["resumed_at"]) >= 3, "attempt 2 did not resume from the checkpoint"
        assert [m.step for m in c.get_metric_history(runs[-1].info.run_id, "loss")][-1] == 13
        # Attempt 1's process went with its region (its shim saw the executor go away).
        pid = int(open(os.path.join(env["dir"], "failover-1-1.pid")).read())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        print(f"job failover: attempt 1 in {old} lost at SIGKILL, attempt {numbers[-1]} in {attempts[-1][2]} running {rerun_after:.1f} s after the kill, resumed at step {runs[-1].data.params['resumed_at']}; completed {time.time() - killed_at:.1f} s after the kill")
    finally:
        up.stop()


def test_after_a_planned_switchover_a_running_job_finishes_where_it_is(env):
    """A planned switchover moves the lead while an attempt runs: the attempt is not run
    again; it finishes in its region, which reports its end and logs to the new leader."""
    from test_regions import Up

    up = Up("sync")
    try:
        base = up.url + "/api/tandem/v1/workspaces/default/jobs"
        spec = {
            "key": "switchover-1",
            "command": [sys.executable, env["script"]],
            "env": {"CKPT_DIR": env["ckpt"], "STEPS": "12", "STEP_SECONDS": "0.4"},
        }
        jid = requests.post(base, json=spec, timeout=30).json()["job"]["job_id"]
        c = MlflowClient(tracking_uri=up.url)

        def progressed():
            j = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
            return j["state"] == "running" and len(c.get_metric_history(j["run_id"], "loss")) >= 2

        up.wait_for(progressed, 60, "the job to run")
        old = requests.get(f"{base}/{jid}", timeout=10).json()["job"]["region"]
        other = {"east": "west", "west": "east"}[old]
        out = subprocess.run([BIN, "failover", "--workspace", "default", "--to", other, "--data", up.dir], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        up.wait_for(lambda: up.leader() == other, 30, "the switchover")
        final = None
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                final = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
                if final["state"] in ("completed", "failed", "cancelled"):
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        assert final and final["state"] == "completed", final
        assert [(a["attempt"], a["state"], a["region"]) for a in final["attempts"]] == [(1, "completed", old)]
        run = c.get_run(final["run_id"])
        assert run.info.status == "FINISHED"
        assert [m.step for m in c.get_metric_history(run.info.run_id, "loss")] == list(range(12))
        stdout = c.download_artifacts(run.info.run_id, "stdout.txt", tempfile.mkdtemp())
        assert "done" in open(stdout).read()
        # The end was recorded by the new leader, from the old region's report.
        events = requests.get(up.url + "/api/tandem/v1/workspaces/default/changes?after=0&limit=10000", timeout=30).json()["events"]
        (finish,) = [e for e in events if e["op"] == "FinishAttempt"]
        assert finish["origin"] == other, finish
    finally:
        up.stop()


def test_with_access_control_the_process_logs_as_the_jobs_owner(env, monkeypatch):
    """Authentication on: a contributor submits a job; its process logs through the stock
    client with a token issued for that attempt (as the contributor), revoked at its end."""
    from test_access import ADMIN, ADMIN_PW, AuthServer, bootstrap_env, elevate_admin, make_user

    for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(v, raising=False)
    with tempfile.TemporaryDirectory() as data:
        s = AuthServer(data, bootstrap_env(data))
        try:
            elevate_admin(s.url)
            token, _ = make_user(s.url, "trainer", "contributor")
            h = {"Authorization": f"Bearer {token}"}
            base = s.url + "/api/tandem/v1/workspaces/default/jobs"
            spec = {"key": "auth-1", "command": [sys.executable, env["script"]], "env": {"CKPT_DIR": env["ckpt"], "STEPS": "3"}}
            r = requests.post(base, json=spec, headers=h, timeout=30)
            assert r.status_code == 200, r.text
            jid = r.json()["job"]["job_id"]
            deadline = time.time() + 60
            while time.time() < deadline:
                job = requests.get(f"{base}/{jid}", headers=h, timeout=30).json()["job"]
                if job["state"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            assert job["state"] == "completed", job
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
            c = MlflowClient(tracking_uri=s.url)
            run = c.get_run(job["run_id"])
            assert [m.step for m in c.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2]
            # The process logged as the job's owner, with a token of its own, now revoked.
            tokens = requests.get(f"{s.url}/api/tandem/v1/access/principals/trainer/tokens", auth=(ADMIN, ADMIN_PW), timeout=30).json()["tokens"]
            (attempt_token,) = [t for t in tokens if t["label"] == f"job {jid} attempt 1"]
            assert attempt_token.get("revoked_time"), attempt_token
            # Nobody else may submit to the workspace.
            r = requests.post(base, json=spec, timeout=30)
            assert r.status_code == 401, r.text
        finally:
            s.stop()


def test_hot_cold_an_attempt_starts_once_the_archive_holds_its_assignment(env):
    """Hot/cold: the archive is the second copy; the attempt starts once it holds the
    assignment (so a restore in the other region knows that attempt number was used)."""
    from test_regions import Up

    up = Up("async", mode="hot/cold")
    try:
        base = up.url + "/api/tandem/v1/workspaces/default/jobs"
        jid = requests.post(base, json={"key": "hc-1", "command": ["/bin/true"]}, timeout=30).json()["job"]["job_id"]
        up.wait_for(lambda: requests.get(f"{base}/{jid}", timeout=10).json()["job"]["state"] == "completed", 60, "the job to complete")
        events = requests.get(up.url + "/api/tandem/v1/workspaces/default/changes?after=0&limit=10000", timeout=30).json()["events"]
        assign = [e["seq"] for e in events if e["op"] == "AssignAttempt"]
        _, w = up.region_status(up.leader())
        assert w["archive_lag_events"] is not None and len(assign) == 1
    finally:
        up.stop()


def test_sigkill_of_a_single_server_mid_job_runs_the_job_again_after_restart(env):
    """One `tandem server`, SIGKILLed while an attempt runs: the attempt's process dies with
    it (its shim sees the executor go away); after the restart the job runs again as attempt
    2, resuming from its checkpoint. Nothing acknowledged is lost."""
    import signal as sig

    d = tempfile.mkdtemp(prefix="tandem-jobs-kill-")
    s = Server(os.path.join(d, "data"))
    try:
        base = s.url + "/api/tandem/v1/workspaces/default/jobs"
        spec = {"key": "crash-1", "command": [sys.executable, env["script"]],
                "env": {"CKPT_DIR": env["ckpt"], "STEPS": "10", "STEP_SECONDS": "0.3", "PID_DIR": env["dir"]}}
        jid = requests.post(base, json=spec, timeout=30).json()["job"]["job_id"]
        c = MlflowClient(tracking_uri=s.url)
        deadline = time.time() + 60
        while time.time() < deadline:
            j = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
            if j["state"] == "running" and len(c.get_metric_history(j["run_id"], "loss")) >= 3:
                break
            time.sleep(0.1)
        s.proc.send_signal(sig.SIGKILL)
        s.proc.wait(timeout=10)
        pid = int(open(os.path.join(env["dir"], "crash-1-1.pid")).read())
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        s = Server(os.path.join(d, "data"))
        base = s.url + "/api/tandem/v1/workspaces/default/jobs"
        deadline = time.time() + 60
        while time.time() < deadline:
            j = requests.get(f"{base}/{jid}", timeout=10).json()["job"]
            if j["state"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert j["state"] == "completed", j
        assert [(a["attempt"], a["state"]) for a in j["attempts"]] == [(1, "lost"), (2, "completed")]
        c = MlflowClient(tracking_uri=s.url)
        second = c.get_run(j["run_id"])
        assert int(second.data.params["resumed_at"]) >= 3
        assert c.get_run(j["attempts"][0]["run_id"]).info.status == "FAILED"
    finally:
        s.stop()
