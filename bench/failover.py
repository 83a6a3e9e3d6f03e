#!/usr/bin/env python3
"""Failover benchmarks for `tandem up` on this machine.

    bench/failover.py [--bin target/release/tandem] [--kills 5] [--load-seconds 15] [--writes 400]

For each write_ack mode (async, sync): write latency (p50/p99) through the front door and
directly at the leader; replication lag (events and seconds) sampled from the standby every
100 ms under a steady write load; RTO over repeated SIGKILLs of the leader region (server:
until the new leader holds its lease; client: until a write through the front door succeeds
again). Prints a Markdown table and writes bench/results/failover-<timestamp>.json.
Needs only the requests package (the test venv has it).
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
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Up:
    def __init__(self, binary, write_ack):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="tandem-bench-")
        self.proc = subprocess.Popen([binary, "up", "--data", self.dir, "--port", "0", "--write-ack", write_ack, "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.urls = {}
        for line in self.proc.stdout:
            m = re.match(r"tandem: region (\w+) \(pid (\d+)\) on (\S+)", line)
            if m:
                self.urls[m.group(1)] = m.group(3)
            m = re.match(r"tracking uri: (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.wait(lambda: self.leader() and all(self.ws(r)["head_seq"] >= 2 for r in self.urls), 60)

    def status(self, region):
        return requests.get(self.urls[region] + "/api/tandem/v1/status", timeout=2).json()

    def ws(self, region):
        return self.status(region)["workspaces"][0]

    def leader(self):
        for r in self.urls:
            try:
                w = self.ws(r)
                if w["role"] == "leader" and w["lease"] == "held":
                    return r
            except Exception:  # noqa: BLE001 - a region may be down
                pass
        return None

    def wait(self, cond, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if cond():
                    return True
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.05)
        raise RuntimeError("timed out")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["pkill", "-f", f"region --deployment {self.dir}"], check=False)


def new_run(url):
    r = requests.post(url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=30).json()
    return r["run"]["info"]["run_id"]


def latency(url, run_id, n):
    s = requests.Session()
    out = []
    for i in range(n):
        t = time.perf_counter()
        r = s.post(url + "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": f"lat{i}-{time.time_ns()}", "value": "v"}, timeout=30)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def lag_under_load(up, seconds):
    leader = up.leader()
    standby = [r for r in up.urls if r != leader][0]
    run_id = new_run(up.url)
    stop = threading.Event()
    written = [0]

    def writer(t):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            ts = int(time.time() * 1000)
            metrics = [{"key": f"m{t}", "value": i + j, "timestamp": ts, "step": i * 10 + j} for j in range(10)]
            if s.post(up.urls[leader] + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics}, timeout=30).ok:
                written[0] += 1
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    events, millis = [], []
    end = time.time() + seconds
    while time.time() < end:
        w = up.ws(standby)
        events.append(w["replication_lag_events"])
        millis.append(w["replication_lag_ms"])
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    return {"writes_per_s": written[0] / seconds, "lag_events_p50": pct(events, 50), "lag_events_p99": pct(events, 99), "lag_ms_p50": pct(millis, 50), "lag_ms_p99": pct(millis, 99), "samples": len(events)}


def rto(up, kills):
    server, client = [], []
    run_id = new_run(up.url)
    for k in range(kills):
        leader = up.leader()
        epoch = up.ws(leader)["epoch"]
        pid = up.status(leader)["pid"]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        up.wait(lambda: (l := up.leader()) is not None and up.ws(l)["epoch"] > epoch, 60)
        server.append(time.time() - t0)
        s = requests.Session()
        while True:
            try:
                if s.post(up.url + "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": f"rto{k}-{time.time_ns()}", "value": "v"}, timeout=20).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        client.append(time.time() - t0)
        # Let the killed region restart and catch up before the next kill.
        up.wait(lambda: all(up.ws(r)["replication_lag_events"] == 0 and up.ws(r)["role"] in ("leader", "standby") for r in up.urls), 120)
        time.sleep(1)
    return {"kills": kills, "server_rto_s": server, "client_rto_s": client, "server_rto_median_s": statistics.median(server), "client_rto_median_s": statistics.median(client)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--load-seconds", type=int, default=15)
    ap.add_argument("--writes", type=int, default=400)
    args = ap.parse_args()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "binary": args.bin, "modes": {}}
    for mode in ("async", "sync"):
        up = Up(args.bin, mode)
        try:
            run_id = new_run(up.url)
            leader = up.leader()
            front = latency(up.url, run_id, args.writes)
            direct = latency(up.urls[leader], run_id, args.writes)
            r = {"write_ms_front_door_p50": pct(front, 50), "write_ms_front_door_p99": pct(front, 99), "write_ms_direct_p50": pct(direct, 50), "write_ms_direct_p99": pct(direct, 99)}
            r["replication"] = lag_under_load(up, args.load_seconds)
            r["rto"] = rto(up, args.kills)
            results["modes"][mode] = r
            print(f"{mode}: {json.dumps(r)}", file=sys.stderr)
        finally:
            up.stop()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"failover-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    a, s = results["modes"]["async"], results["modes"]["sync"]
    print(f"| measure | async | sync | sync / async |")
    print(f"| --- | --- | --- | --- |")
    for key, label in [("write_ms_direct_p50", "write latency at the leader, p50 (ms)"), ("write_ms_direct_p99", "write latency at the leader, p99 (ms)"), ("write_ms_front_door_p50", "write latency through the front door, p50 (ms)"), ("write_ms_front_door_p99", "write latency through the front door, p99 (ms)")]:
        print(f"| {label} | {a[key]:.2f} | {s[key]:.2f} | {s[key] / a[key]:.2f} |")
    for key, label in [("lag_events_p50", "replication lag, p50 (events)"), ("lag_events_p99", "replication lag, p99 (events)"), ("lag_ms_p50", "replication lag, p50 (ms)"), ("lag_ms_p99", "replication lag, p99 (ms)"), ("writes_per_s", "log-batch requests/s during the lag test")]:
        print(f"| {label} | {a['replication'][key]:.1f} | {s['replication'][key]:.1f} | |")
    print(f"| RTO, SIGKILL to new leader's lease, median of {args.kills} (s) | {a['rto']['server_rto_median_s']:.2f} | {s['rto']['server_rto_median_s']:.2f} | |")
    print(f"| RTO, SIGKILL to a client write succeeding, median of {args.kills} (s) | {a['rto']['client_rto_median_s']:.2f} | {s['rto']['client_rto_median_s']:.2f} | |")
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
