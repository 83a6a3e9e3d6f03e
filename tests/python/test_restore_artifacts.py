"""Restores bring back every byte: a server with an archive writes runs, metrics and artifact
files under load (with overwrites and deletes), then every kind of restore is checked by
starting a real server on its result and downloading every file through the stock client:
into an empty store and an empty artifact store (a local folder, Azurite and S3), in place to
before a delete and an overwrite, and one run. A missing or corrupt blob in the archive is
reported by name, never skipped.
"""

import hashlib
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import BIN, Server


@pytest.fixture(scope="module")
def server():
    yield None


@pytest.fixture(autouse=True)
def tracking():
    yield


def now_ms():
    return int(time.time() * 1000)


def tandem(*args, check=True):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, f"tandem {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


class Workload:
    """The files written, with when each write was sent and acknowledged."""

    def __init__(self, url, scratch):
        from mlflow import MlflowClient

        self.url, self.scratch = url, scratch
        self.c = MlflowClient(tracking_uri=url)
        self.ops = []  # (sent_ms, acked_ms, run_id, name, sha256 or None)
        self.rng = random.Random(23)

    def put(self, run, name, size):
        data = self.rng.randbytes(size)
        local = os.path.join(self.scratch, uuid.uuid4().hex, name)
        os.makedirs(os.path.dirname(local))
        with open(local, "wb") as f:
            f.write(data)
        time.sleep(0.005)
        sent = now_ms()
        self.c.log_artifact(run.info.run_id, local)
        self.ops.append((sent, now_ms(), run.info.run_id, name, hashlib.sha256(data).hexdigest()))

    def delete(self, run, name):
        time.sleep(0.005)
        sent = now_ms()
        path = run.info.artifact_uri.split("mlflow-artifacts:/", 1)[1].strip("/") + "/" + name
        r = requests.delete(f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{path}")
        assert r.status_code == 200, r.text
        self.ops.append((sent, now_ms(), run.info.run_id, name, None))

    def instant_after(self, i):
        """An instant after op i was acknowledged and before op i+1 was sent."""
        t = self.ops[i][1] + 1
        assert i + 1 >= len(self.ops) or self.ops[i + 1][0] > t
        return t

    def state_at(self, t):
        files = {}
        for sent, acked, run, name, sha in self.ops:
            assert not (sent <= t < acked), "an instant inside a write is ambiguous"
            if acked <= t:
                files[(run, name)] = sha
        return files


def load(url, stop):
    """Other writers meanwhile: runs with metric batches."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    c = MlflowClient(tracking_uri=url)
    exp = c.create_experiment("load-" + uuid.uuid4().hex[:8])
    while not stop.is_set():
        rid = c.create_run(exp).info.run_id
        c.log_batch(rid, metrics=[Metric("m", float(i), now_ms(), i) for i in range(50)])


def wait_archived(url, archive):
    """Until the archive holds the server's whole log (what any restore can reach)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        head = requests.get(f"{url}/api/tandem/v1/workspaces/default/verify").json()["head_seq"]
        out = tandem("backup", "list", "--archive", archive).stdout
        m = re.search(r"^default\s+\d+\s+(\d+)", out, re.M)
        if m and int(m.group(1)) >= head:
            return
        time.sleep(0.3)
    raise AssertionError("the archive did not catch up")


def check_files(url, expected, tmp):
    """Every file of `expected` downloads through the stock client with its bytes; every
    file expected gone is gone."""
    import mlflow

    for (run, name), sha in sorted(expected.items()):
        if sha is None:
            listed = [f.path for f in mlflow.MlflowClient(tracking_uri=url).list_artifacts(run)]
            assert name not in listed, (run, name)
            continue
        with tempfile.TemporaryDirectory(dir=tmp) as d:
            got = mlflow.artifacts.download_artifacts(run_id=run, artifact_path=name, dst_path=d, tracking_uri=url)
            assert hashlib.sha256(open(got, "rb").read()).hexdigest() == sha, (run, name)


@pytest.fixture(scope="module")
def history():
    """One server's life: phases of writes, each archived before the next overwrites or
    deletes what it wrote (bytes replaced before they were archived cannot come back, and
    restores report them missing: a test of its own below)."""
    root = tempfile.mkdtemp(prefix="tandem-restore-")
    data, archive = os.path.join(root, "live"), "file://" + os.path.join(root, "archive")
    s = Server(data, ["--archive", archive])
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(s.url, stop)) for _ in range(2)]
    try:
        for t in loaders:
            t.start()
        w = Workload(s.url, os.path.join(root, "scratch"))
        exp = w.c.create_experiment("restore-artifacts")
        runs = [w.c.create_run(exp) for _ in range(3)]
        for r in runs:
            for i in range(5):
                w.put(r, f"f{i}.bin", w.rng.choice([10, 1000, 100_000, 1_500_000]))
        end_a = len(w.ops) - 1
        wait_archived(s.url, archive)
        w.put(runs[0], "f0.bin", 2000)  # an overwrite
        w.delete(runs[1], "f1.bin")
        mid_b = len(w.ops) - 1
        w.put(runs[1], "f2.bin", 3000)
        w.delete(runs[2], "f3.bin")
        w.put(runs[2], "new.bin", 500_000)
        wait_archived(s.url, archive)
        w.delete(runs[0], "f0.bin")
        w.put(runs[2], "f4.bin", 700)
        stop.set()
        for t in loaders:
            t.join()
        wait_archived(s.url, archive)
    finally:
        stop.set()
        s.stop()
    yield {"root": root, "data": data, "archive": archive, "w": w, "runs": runs,
           "instants": [w.instant_after(end_a), w.instant_after(mid_b), w.instant_after(len(w.ops) - 1)]}
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def restore_into(h, t, target_args, name):
    out = os.path.join(h["root"], name)
    store = f"sqlite:///{out}/metadata.sqlite"
    os.makedirs(out)
    r = tandem("restore", "--archive", h["archive"], "--workspace", "default", "--to-time", str(t),
               "--into", store, "--data", out, *target_args)
    assert "missing" in r.stdout and ", 0 missing" in r.stdout, r.stdout
    return out, store


def test_backup_verify_checks_every_artifact_blob(history):
    r = tandem("backup", "verify", "--archive", history["archive"])
    assert re.search(r"default: ok, \d+ artifact blobs present", r.stdout), r.stdout


@pytest.mark.parametrize("which", [0, 1, 2])
def test_restore_into_an_empty_store_and_folder_brings_back_every_file(history, which):
    t = history["instants"][which]
    out, store = restore_into(history, t, [], f"into-{which}")
    s = Server(out, ["--store", store])
    try:
        check_files(s.url, history["w"].state_at(t), history["root"])
    finally:
        s.stop()


@pytest.mark.parametrize("var", ["TANDEM_TEST_AZURITE", "TANDEM_TEST_S3"], ids=["azurite", "s3"])
def test_restore_into_object_storage_brings_back_every_file(history, var):
    if var not in os.environ:
        if os.environ.get("TANDEM_TEST_REQUIRE_SERVICES"):
            raise RuntimeError(f"{var} is required: run scripts/test.sh")
        pytest.skip(f"{var} is not set (scripts/test.sh starts the service)")
    artifacts = os.environ[var] + "/restore-" + uuid.uuid4().hex[:8]
    t = history["instants"][1]
    out, store = restore_into(history, t, ["--artifacts", artifacts], "into-" + var.lower())
    s = Server(out, ["--store", store, "--artifacts", artifacts])
    try:
        check_files(s.url, history["w"].state_at(t), history["root"])
    finally:
        s.stop()


def copy_of_live(history, name):
    """A copy of the live deployment's folder, so that tests changing it do not meet."""
    import shutil

    dst = os.path.join(history["root"], name)
    shutil.copytree(history["data"], dst)
    return dst


def test_restore_in_place_brings_back_deleted_and_overwritten_files(history):
    data = copy_of_live(history, "in-place")
    t = history["instants"][1]  # after the first overwrite and delete, before the later ones
    r = tandem("restore", "--archive", history["archive"], "--workspace", "default", "--to-time", str(t),
               "--in-place", "--yes", "--data", data)
    assert ", 0 missing" in r.stdout, r.stdout
    s = Server(data)
    try:
        expected = history["w"].state_at(t)
        # Later, f0.bin of run 0 was deleted and f2.bin of run 1 overwritten: both are back.
        runs = history["runs"]
        assert expected[(runs[0].info.run_id, "f0.bin")] is not None
        check_files(s.url, expected, history["root"])
    finally:
        s.stop()


def test_restore_of_one_run_brings_back_its_files(history):
    data = copy_of_live(history, "one-run")
    run = history["runs"][0]
    t = history["instants"][0]  # before its f0.bin was overwritten, then deleted
    r = tandem("restore", "--archive", history["archive"], "--workspace", "default", "--to-time", str(t),
               "--run", run.info.run_id, "--data", data)
    assert ", 0 missing" in r.stdout, r.stdout
    s = Server(data)
    try:
        expected = {k: v for k, v in history["w"].state_at(t).items() if k[0] == run.info.run_id}
        assert len(expected) == 5
        check_files(s.url, expected, history["root"])
    finally:
        s.stop()


def test_a_missing_or_corrupt_blob_is_reported_by_name(history):
    import shutil

    archive_dir = os.path.join(history["root"], "broken-archive")
    shutil.copytree(history["archive"][len("file://"):], archive_dir)
    w, t = history["w"], history["instants"][0]
    (_, _, run0, name0, sha0), (_, _, run1, name1, sha1) = w.ops[0], w.ops[1]
    blobs = os.path.join(archive_dir, "workspaces", "default", "blobs")
    os.remove(os.path.join(blobs, sha0))
    with open(os.path.join(blobs, sha1), "r+b") as f:
        f.write(b"rot")
    archive = "file://" + archive_dir
    r = tandem("backup", "verify", "--archive", archive, check=False)
    assert r.returncode != 0
    assert "no blob in the archive" in r.stderr and "blob is corrupt" in r.stderr, r.stderr
    out = os.path.join(history["root"], "broken-restore")
    os.makedirs(out)
    args = ["restore", "--archive", archive, "--workspace", "default", "--to-time", str(t),
            "--into", f"sqlite:///{out}/metadata.sqlite", "--data", out]
    r = tandem(*args, check=False)
    assert r.returncode != 0, r.stdout
    assert "2 artifact files could not be restored" in r.stdout, r.stdout
    for name, why in ((name0, "has no blob"), (name1, "is corrupt")):
        assert re.search(rf"{re.escape(run0 if name == name0 else run1)}/artifacts/{re.escape(name)} \(sha256 \w+\): .*{why}", r.stdout), r.stdout
    # Rerun with the flag: the restore continues where it stopped and finishes without them.
    r = tandem(*args, "--allow-missing-artifacts")
    assert "2 missing" in r.stdout, r.stdout
    s = Server(out)
    try:
        expected = w.state_at(t)
        del expected[(run0, name0)], expected[(run1, name1)]
        check_files(s.url, expected, history["root"])
    finally:
        s.stop()
