#!/usr/bin/env python3
"""Hot/cold benchmarks for `tandem up --mode hot/cold` on this machine.

    bench/hotcold.py [--bin target/release/tandem] [--kills 3] [--runs 2000] [--points 100]

Fills the default workspace (RUNS runs with POINTS metric points each, through log-batch at the
leader), then measures the archive lag under a steady write load (sampled from the leader's
status every 100 ms), and over repeated rounds: SIGKILL the leader region while four writers
stream log-parameter calls, run `tandem failover --force` to the other region, and record
- RTO on the server (the failover's own report: claim, wait out the lease, restore from the
  archive, copy artifacts) and on the client (SIGKILL until a write through the front door
  succeeds again);
- RPO: acknowledged writes missing afterwards, and the archive lag seen just before the kill.
The killed region is restarted by `tandem up` and becomes the cold one; the next round fails
back over to it (it follows the archive from its stale copy). Prints a Markdown table and
writes bench/results/hotcold-<timestamp>.json. Needs only the requests package.
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
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Up:
    def __init__(self, binary):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="tandem-hotcold-")
        self.proc = subprocess.Popen([binary, "up", "--data", self.dir, "--port", "0", "--mode", "hot/cold", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        self.wait(lambda: self.leader() and self.ws(self.leader())["head_seq"] >= 2, 60)

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


def fill(url, runs, points):
    s = requests.Session()
    for i in range(runs):
        run_id = s.post(url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=30).json()["run"]["info"]["run_id"]
        metrics = [{"key": "loss", "value": 1.0 / (j + 1), "timestamp": j, "step": j} for j in range(points)]
        s.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics, "params": [{"key": "i", "value": str(i)}]}, timeout=30).raise_for_status()


def new_run(url):
    return requests.post(url + "/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, timeout=30).json()["run"]["info"]["run_id"]


def archive_lag_under_load(up, seconds):
    leader = up.leader()
    run_id = new_run(up.url)
    stop = threading.Event()
    written = [0]

    def writer(t):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            metrics = [{"key": f"m{t}", "value": i + j, "timestamp": i, "step": i * 10 + j} for j in range(10)]
            if s.post(up.urls[leader] + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics}, timeout=30).ok:
                written[0] += 1
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    events, millis = [], []
    end = time.time() + seconds
    while time.time() < end:
        w = up.ws(leader)
        events.append(w["archive_lag_events"])
        millis.append(w["archive_lag_ms"])
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    return {"writes_per_s": written[0] / seconds, "lag_events_p50": pct(events, 50), "lag_events_p99": pct(events, 99), "lag_ms_p50": pct(millis, 50), "lag_ms_p99": pct(millis, 99), "samples": len(events)}


def rounds(up, kills):
    out = []
    for k in range(kills):
        leader = up.leader()
        other = [r for r in up.urls if r != leader][0]
        run_id = new_run(up.url)
        stop, acked, lags = threading.Event(), [], []

        def writer(t):
            s = requests.Session()
            i = 0
            while not stop.is_set():
                key = f"w{t}-{i}"
                try:
                    if s.post(up.urls[leader] + "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": key, "value": "v"}, timeout=5).ok:
                        acked.append(key)
                except requests.RequestException:
                    pass
                i += 1

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        end = time.time() + 2
        while time.time() < end:
            try:
                w = up.ws(leader)
                lags.append((w["archive_lag_events"], w["archive_lag_ms"]))
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)
        pid = up.status(leader)["pid"]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join()
        fo = subprocess.run([up.bin, "failover", "--data", up.dir, "--workspace", "default", "--to", other, "--force"], capture_output=True, text=True, timeout=300)
        if fo.returncode != 0:
            raise RuntimeError(fo.stderr)
        report = json.loads(fo.stdout)
        s = requests.Session()
        while True:
            try:
                if s.post(up.url + "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run_id, "key": f"after{k}", "value": "v"}, timeout=20).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        client_rto = time.time() - t0
        params = s.get(up.url + "/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30).json()["run"]["data"].get("params", [])
        present = {p["key"] for p in params}
        lost = [a for a in acked if a not in present]
        last_lag = lags[-1] if lags else (None, None)
        out.append({"from": leader, "to": other, "acked": len(acked), "lost": len(lost), "archive_lag_events_before_kill": last_lag[0], "archive_lag_ms_before_kill": last_lag[1], "server_rto_ms": report["rto_ms"], "claim_and_lease_wait_ms": report["claim_ms"], "client_rto_s": client_rto, "restored_events": report["head_seq"], "replayed": report["replayed"], "diverged": report["diverged"]})
        print(f"round {k}: {json.dumps(out[-1])}", file=sys.stderr)
        # The killed region restarts (as the cold one) before the next round.
        up.wait(lambda: up.ws(leader)["role"] in ("standby",), 120)
        time.sleep(1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--load-seconds", type=int, default=10)
    args = ap.parse_args()
    up = Up(args.bin)
    try:
        t = time.time()
        fill(up.urls[up.leader()], args.runs, args.points)
        fill_s = time.time() - t
        up.wait(lambda: up.ws(up.leader())["archive_lag_events"] == 0, 120)
        lag = archive_lag_under_load(up, args.load_seconds)
        print(f"archive lag: {json.dumps(lag)}", file=sys.stderr)
        rs = rounds(up, args.kills)
    finally:
        up.stop()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "binary": args.bin, "runs": args.runs, "points_per_run": args.points, "fill_s": fill_s, "archive_lag": lag, "rounds": rs}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"hotcold-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    print("| measure | median | all rounds |")
    print("| --- | --- | --- |")
    print(f"| workspace restored (events) | {med('restored_events'):.0f} | {[r['restored_events'] for r in rs]} |")
    print(f"| RTO, server: claim + lease wait + restore + artifacts (s) | {med('server_rto_ms') / 1000:.2f} | {[round(r['server_rto_ms'] / 1000, 2) for r in rs]} |")
    print(f"| of which claim + lease wait (s) | {med('claim_and_lease_wait_ms') / 1000:.2f} | {[round(r['claim_and_lease_wait_ms'] / 1000, 2) for r in rs]} |")
    print(f"| RTO, SIGKILL to a client write succeeding (s) | {med('client_rto_s'):.2f} | {[round(r['client_rto_s'], 2) for r in rs]} |")
    print(f"| RPO: acknowledged writes lost | {med('lost'):.0f} | {[r['lost'] for r in rs]} of {[r['acked'] for r in rs]} |")
    print(f"| archive lag just before the kill (events / ms) | {med('archive_lag_events_before_kill')} / {med('archive_lag_ms_before_kill')} | |")
    print(f"| archive lag under steady load, p50 / p99 (events) | {lag['lag_events_p50']} / {lag['lag_events_p99']} | {lag['writes_per_s']:.0f} log-batch/s |")
    print(f"| archive lag under steady load, p50 / p99 (ms) | {lag['lag_ms_p50']} / {lag['lag_ms_p99']} | |")
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
