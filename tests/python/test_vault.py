"""The vault with real processes: a secret set through the front door of `tandem up` is
readable in both regions (one master key, beside the deployment file, mode 0600), and after a
SIGKILL failover its value still opens in the surviving region."""

import os
import stat
import time

import pytest
import requests

from test_regions import Up

VALUE = "sk-tandem-failover-5e1d"


@pytest.fixture(autouse=True)
def tracking():
    yield


def test_a_secret_survives_a_sigkill_failover_and_opens_in_the_other_region():
    up = Up("sync")
    try:
        key = os.path.join(up.dir, "master.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        base = up.url + "/api/tandem/v1/workspaces/default/secrets"
        r = requests.post(base, json={"name": "openai", "value": VALUE}, timeout=30)
        assert r.status_code == 200, r.text
        assert VALUE not in r.text
        import subprocess

        from conftest import BIN

        status = subprocess.run([BIN, "status", "--data", up.dir], capture_output=True, text=True, timeout=30).stdout
        assert "vault: both regions use master key" in status, status
        old = up.leader()
        other = {"east": "west", "west": "east"}[old]
        # The standby holds the secret (ciphertext) and opens it with the same master key.
        up.wait_for(lambda: up.region_status(other)[1]["replication_lag_events"] == 0, 30, "the standby to catch up")
        up.kill(old)
        up.wait_for(lambda: up.leader() == other, 30, "the failover")
        got = requests.get(f"{base}/openai/value", timeout=30).json()
        assert got["value"] == VALUE, got
        direct = requests.get(f"{up.urls[other]}/api/tandem/v1/workspaces/default/secrets/openai/value", timeout=30).json()
        assert direct["value"] == VALUE
        # Nothing in clear anywhere in the deployment's folder: both regions' stores and
        # logs, the witness, the archive.
        seen = 0
        for root, _, files in os.walk(up.dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    assert VALUE.encode() not in fh.read(), os.path.join(root, f)
                seen += 1
        assert seen > 10
    finally:
        up.stop()


def test_tandem_secret_commands_and_a_master_key_rotation(tmp_path):
    """`tandem secret` against a server; `tandem vault rotate` (the old key kept in the
    keyring), a restart, `tandem vault rewrap`; afterwards the new key alone opens every
    secret."""
    import subprocess

    from conftest import BIN, Server

    data = str(tmp_path / "data")
    s = Server(data)
    run = lambda *a, inp=None: subprocess.run([BIN, *a], input=inp, capture_output=True, text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_URI": s.url})
    try:
        out = run("secret", "set", "db-password", "--tag", "team=a", "--content-type", "text/plain", inp=VALUE + "\n")
        assert out.returncode == 0, out.stderr
        assert VALUE not in out.stdout
        run("secret", "set", "db-password", inp="second\n")
        assert run("secret", "get", "db-password").stdout.strip() == "second"
        assert run("secret", "get", "db-password", "--version", "1").stdout.strip() == VALUE
        assert '"version": 2' in run("secret", "versions", "db-password").stdout
        assert run("secret", "disable", "db-password", "2").returncode == 0
        assert run("secret", "get", "db-password").stdout.strip() == VALUE
        assert run("secret", "enable", "db-password", "2").returncode == 0
        assert run("secret", "delete", "db-password").returncode == 0
        assert "db-password" not in run("secret", "list").stdout
        assert "db-password" in run("secret", "list", "--all").stdout
        assert run("secret", "recover", "db-password").returncode == 0
        bad = run("secret", "purge", "db-password")
        assert bad.returncode != 0 and "delete it first" in bad.stderr
        s.stop()
        old_key = open(os.path.join(data, "master.key")).read()
        out = subprocess.run([BIN, "vault", "rotate", "--data", data], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert open(os.path.join(data, "master.key")).read() != old_key
        assert old_key.strip() in open(os.path.join(data, "master.keyring")).read()
        s = Server(data)
        assert run("secret", "get", "db-password").stdout.strip() == "second", "the keyring opens what the old key wrapped"
        out = run("vault", "rewrap")
        assert out.returncode == 0 and "1 data keys re-wrapped" in out.stdout, out.stdout + out.stderr
        s.stop()
        os.remove(os.path.join(data, "master.keyring"))
        s = Server(data)
        assert run("secret", "get", "db-password", "--version", "1").stdout.strip() == VALUE, "the new key alone opens every version"
    finally:
        s.stop()
