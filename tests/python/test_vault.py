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
