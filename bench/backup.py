#!/usr/bin/env python3
"""Backup benchmarks: archive lag under steady writes, and restore throughput.

    bench/backup.py [--bin target/release/tandem] [--runs 10000] [--points 1000000] [--load-seconds 20] [--restores 3]

Starts `tandem server --archive file://...` (embedded defaults), fills the default workspace
with RUNS runs and POINTS metric points (log-batch of 1,000), measures the archive lag (how
far the archive's last event is behind the log's head, in events and seconds, sampled every
100 ms) while four writers send log-batch requests, then times `tandem restore` of the whole
workspace into an empty SQLite store RESTORES times: events/s and archive MB/s, medians.
Needs only `requests`.
"""

import argparse
import glob
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def archived_through(archive_dir):
    segs = sorted(glob.glob(os.path.join(archive_dir, "archive", "default", "*.jsonl")))
    if not segs:
        return 0, 0
    with open(segs[-1]) as f:
        lines = [l for l in f if l.strip()]
    last = json.loads(lines[-1])
    return last["seq"], last["hlc"] >> 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--points", type=int, default=1000000)
    ap.add_argument("--load-seconds", type=int, default=20)
    ap.add_argument("--restores", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tandem-backup-bench-")
    archive_dir = os.path.join(work, "archive-root")
    proc = subprocess.Popen([args.bin, "server", "--data", os.path.join(work, "data"), "--listen", "127.0.0.1:0", "--archive", "file://" + archive_dir, "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in proc.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            url = m.group(1)
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    s = requests.Session()
    try:
        t0 = time.time()
        run_ids = []
        for i in range(args.runs):
            run_ids.append(s.post(url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0", "start_time": i}).json()["run"]["info"]["run_id"])
        batches = args.points // 1000
        for b in range(batches):
            run = run_ids[b % len(run_ids)]
            metrics = [{"key": f"m{b % 7}", "value": j * 0.5, "timestamp": 1_700_000_000_000 + j, "step": b * 1000 + j} for j in range(1000)]
            s.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run, "metrics": metrics}).raise_for_status()
        fill_s = time.time() - t0
        head = requests.get(url + "/api/tandem/v1/workspaces/default/changes", params={"after": 0, "limit": 1}).json()["head_seq"]
        # Steady load while sampling the archive's lag.
        stop = threading.Event()
        sent = [0]

        def writer(t):
            ss = requests.Session()
            i = 0
            while not stop.is_set():
                metrics = [{"key": f"load{t}", "value": i, "timestamp": int(time.time() * 1000), "step": i * 10 + j} for j in range(10)]
                if ss.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_ids[t], "metrics": metrics}).ok:
                    sent[0] += 1
                i += 1

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        lag_events, lag_ms = [], []
        end = time.time() + args.load_seconds
        while time.time() < end:
            h = requests.get(url + "/api/tandem/v1/workspaces/default/changes", params={"after": 0, "limit": 1}).json()["head_seq"]
            a_seq, a_wall = archived_through(archive_dir)
            now = int(time.time() * 1000)
            lag_events.append(max(0, h - a_seq))
            lag_ms.append(0 if h <= a_seq else max(0, now - a_wall))
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        deadline = time.time() + 120
        final = requests.get(url + "/api/tandem/v1/workspaces/default/changes", params={"after": 0, "limit": 1}).json()["head_seq"]
        while archived_through(archive_dir)[0] < final and time.time() < deadline:
            time.sleep(0.2)
        archive_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(archive_dir, "archive", "default", "*.jsonl")))
        times = []
        for r in range(args.restores):
            target = os.path.join(work, f"restore-{r}.sqlite")
            t = time.time()
            subprocess.run([args.bin, "restore", "--archive", "file://" + archive_dir, "--workspace", "default", "--into", "sqlite://" + target], check=True, capture_output=True)
            times.append(time.time() - t)
        med = statistics.median(times)
        res = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "runs": args.runs,
            "metric_points": args.points,
            "fill_seconds": fill_s,
            "events": final,
            "archive_mb": archive_bytes / 1e6,
            "load_batch_requests_per_s": sent[0] / args.load_seconds,
            "archive_lag_events_p50": pct(lag_events, 50),
            "archive_lag_events_p99": pct(lag_events, 99),
            "archive_lag_ms_p50": pct(lag_ms, 50),
            "archive_lag_ms_p99": pct(lag_ms, 99),
            "restore_seconds": times,
            "restore_median_s": med,
            "restore_events_per_s": final / med,
            "restore_mb_per_s": archive_bytes / 1e6 / med,
        }
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        out = os.path.join(HERE, "results", f"backup-{time.strftime('%Y%m%dT%H%M%S')}.json")
        with open(out, "w") as f:
            json.dump(res, f, indent=2)
        print(json.dumps(res, indent=2))
        print(f"raw results: {out}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
