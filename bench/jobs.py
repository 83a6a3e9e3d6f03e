#!/usr/bin/env python3
"""Job benchmarks on this machine (issue 17).

    bench/jobs.py [--bin target/release/tandem] [--kills 5] [--jobs 200] [--slots 2]
                  [--lease-ms 2000]

- Resubmission on failover: `tandem up` (hot/warm, sync), one job at a time running a
  process that sleeps; the leader region is SIGKILLed while the attempt runs. Measured: from
  the SIGKILL until the job's next attempt is running in the surviving region (its
  `AssignAttempt` visible through the front door), `--kills` times on one deployment.
- Scheduler throughput: one `tandem server` with one compute target of `--slots` slots;
  `--jobs` jobs of `/bin/true` submitted as fast as one client can; measured: submissions per
  second, and attempts started per second from the first submission until the last job
  completed.
MLflow has no jobs, so there is no stock figure to set these beside. Prints Markdown tables
and writes bench/results/jobs-<timestamp>.json.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from failover import Up  # noqa: E402


def failover_rerun(binary, kills, lease_ms):
    up = Up(binary, "sync", lease_ms, None)
    out = []
    try:
        base = up.url + "/api/tandem/v1/workspaces/default/jobs"
        for i in range(kills):
            up.settled()
            job = requests.post(base, json={"command": ["/bin/sh", "-c", "sleep 120"], "key": f"bench-{i}-{time.time()}"}, timeout=30).json()["job"]
            jid = job["job_id"]
            up.wait(lambda: requests.get(f"{base}/{jid}", timeout=5).json()["job"]["state"] == "running", 60)
            region = requests.get(f"{base}/{jid}", timeout=5).json()["job"]["region"]
            assert region == up.leader(), (region, up.leader())
            pid = up.status(region)["pid"]
            t0 = time.time()
            os.kill(pid, signal.SIGKILL)
            rerun = None
            while time.time() - t0 < 120:
                try:
                    j = requests.get(f"{base}/{jid}", timeout=5).json()["job"]
                    if j["attempt"] >= 2 and j["state"] == "running":
                        rerun = time.time() - t0
                        break
                except (requests.RequestException, ValueError, KeyError):
                    pass
                time.sleep(0.05)
            assert rerun is not None, "the job was never run again"
            out.append(rerun)
            print(f"  kill {i + 1}: {region} -> attempt 2 running after {rerun:.2f} s", flush=True)
            requests.post(f"{base}/{jid}/cancel", timeout=30)
    finally:
        up.stop()
    return out


def throughput(binary, jobs, slots):
    d = tempfile.mkdtemp(prefix="tandem-bench-jobs-")
    config = os.path.join(d, "tandem.toml")
    with open(config, "w") as f:
        f.write(f'[[compute]]\nname = "local"\nslots = {slots}\n')
    p = subprocess.Popen([binary, "server", "--data", os.path.join(d, "data"), "--listen", "127.0.0.1:0", "--auth", "off", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in p.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            url = m.group(1)
            break
    try:
        base = url + "/api/tandem/v1/workspaces/default/jobs"
        s = requests.Session()
        t0 = time.time()
        ids = [s.post(base, json={"command": ["/bin/true"]}, timeout=30).json()["job"]["job_id"] for _ in range(jobs)]
        submitted = time.time() - t0
        while True:
            listed = s.get(base, params={"state": "completed", "max_results": jobs}, timeout=30).json().get("jobs", [])
            if len(listed) >= jobs:
                break
            time.sleep(0.1)
        done = time.time() - t0
        assert {j["job_id"] for j in listed} == set(ids)
        return jobs / submitted, jobs / done
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--lease-ms", type=int, default=2000)
    a = ap.parse_args()
    print(f"failover: {a.kills} SIGKILLs of the leader region with a job running (lease {a.lease_ms} ms)", flush=True)
    rerun = failover_rerun(a.bin, a.kills, a.lease_ms)
    print(f"throughput: {a.jobs} jobs of /bin/true on {a.slots} slots", flush=True)
    runs = [throughput(a.bin, a.jobs, a.slots) for _ in range(3)]
    result = {
        "rerun_s": rerun,
        "rerun_median_s": statistics.median(rerun),
        "rerun_max_s": max(rerun),
        "submit_per_s": [r[0] for r in runs],
        "started_per_s": [r[1] for r in runs],
    }
    print()
    print("| measure | median | worst / spread | runs |")
    print("| --- | --- | --- | --- |")
    print(f"| SIGKILL of the leader region to the job's next attempt running | {result['rerun_median_s']:.2f} s | {result['rerun_max_s']:.2f} s | {len(rerun)} |")
    print(f"| jobs submitted per second (one client) | {statistics.median(result['submit_per_s']):.0f} | {min(result['submit_per_s']):.0f}-{max(result['submit_per_s']):.0f} | 3 |")
    print(f"| attempts run to completion per second ({a.slots} slots, /bin/true) | {statistics.median(result['started_per_s']):.1f} | {min(result['started_per_s']):.1f}-{max(result['started_per_s']):.1f} | 3 |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("jobs-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\n{path}")


if __name__ == "__main__":
    main()
