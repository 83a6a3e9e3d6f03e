#!/usr/bin/env python3
"""How fast the disaster-recovery dashboard answers, on a `tandem up` deployment.

    bench/dashboard.py [--bin target/release/tandem] [--requests 500]

Starts `tandem up` (sync, auth off), waits for a first sample, then times sequential GETs of
`/tandem/` and `/tandem/live`, directly at the leader region and through the front door.
Prints medians and p99s in milliseconds and writes bench/results/dashboard-<timestamp>.json.
"""

import argparse
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
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tandem-dash-")
    p = subprocess.Popen([args.bin, "up", "--data", d, "--port", "0", "--write-ack", "sync", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    urls, front = {}, None
    for line in p.stdout:
        m = re.match(r"tandem: region (\w+) \(pid (\d+)\) on (\S+)", line)
        if m:
            urls[m.group(1)] = m.group(3)
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            front = m.group(1)
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    try:
        time.sleep(3)  # a few samples in
        leader = next(r for r, u in urls.items() if any(w["role"] == "leader" for w in requests.get(u + "/api/tandem/v1/status", timeout=5).json()["workspaces"]))
        out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "requests": args.requests, "results": {}}
        s = requests.Session()
        for where, base in (("leader", urls[leader]), ("front door", front)):
            for path in ("/tandem/", "/tandem/live"):
                times = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = s.get(base + path, timeout=10)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and "Leader" in r.text
                key = f"{where} {path}"
                out["results"][key] = {"median_ms": statistics.median(times), "p99_ms": pct(times, 99), "bytes": len(r.content)}
                print(f"| {key} | {statistics.median(times):.2f} | {pct(times, 99):.2f} | {len(r.content)} |")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"dashboard-{time.strftime('%Y%m%dT%H%M%S')}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=2)
        print(f"raw results: {path}")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
        subprocess.run(["pkill", "-f", f"region --deployment {d}"], check=False)


if __name__ == "__main__":
    main()
