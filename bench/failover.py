#!/usr/bin/env python3
"""Failover benchmarks for `tandem up` on this machine, measured with the stock mlflow client.

    bench/failover.py [--bin target/release/tandem] [--modes async,sync] [--kills 10]
                      [--lease-ms 2000] [--renew-ms N] [--writers 2]
                      [--pauses 0.5,0.75,0.95] [--pause-count 5] [--steady-seconds 0]
                      [--skip-latency]

For each write_ack mode:
- write latency (p50/p99) through the front door and directly at the leader, and replication
  lag sampled from the standby every 100 ms under a steady write load (skip: --skip-latency);
- RTO over `--kills` SIGKILLs of the leader region while `--writers` threads of the stock
  client (`MlflowClient.log_param`, its default retries) write through the front door. Server
  RTO: SIGKILL until the new leader claimed its epoch. Client RTO: SIGKILL until the first
  acknowledgement of a write sent after it (the write in flight at the kill is held by the
  front door and answered by the new leader). Every acknowledged write is then looked up:
  lost ones are counted (0 expected in sync mode), and so are errors the client raised;
- false failovers: the leader is paused (SIGSTOP) for each fraction of the lease in
  `--pauses`, `--pause-count` times, under the same writers; any change of epoch is counted;
- with `--steady-seconds`, a steady load of the writers for that long, counting epoch
  changes (none expected).
Prints Markdown tables and writes bench/results/failover-<timestamp>.json. Needs the mlflow
client (the test venv has it).
"""

import argparse
import json
import logging
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
from mlflow import MlflowClient

HERE = os.path.dirname(os.path.abspath(__file__))
logging.getLogger("urllib3").setLevel(logging.ERROR)
logging.getLogger("mlflow").setLevel(logging.ERROR)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Up:
    def __init__(self, binary, write_ack, lease_ms, renew_ms):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="tandem-bench-")
        cmd = [binary, "up", "--data", self.dir, "--port", "0", "--write-ack", write_ack, "--auth", "off", "--lease-ms", str(lease_ms)]
        if renew_ms:
            cmd += ["--renew-ms", str(renew_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        self.wait(lambda: self.leader() and all(self.ws(r)["head_seq"] >= 2 and self.ws(r)["replication_lag_events"] == 0 for r in self.urls), 60)

    def status(self, region):
        return requests.get(self.urls[region] + "/api/tandem/v1/status", timeout=2).json()

    def ws(self, region):
        return [w for w in self.status(region)["workspaces"] if w["workspace"] == "default"][0]

    def leader(self):
        for r in self.urls:
            try:
                w = self.ws(r)
                if w["role"] == "leader" and w["lease"] == "held":
                    return r
            except Exception:  # noqa: BLE001 - a region may be down
                pass
        return None

    def epoch(self):
        """The highest epoch any region knows of."""
        best = 0
        for r in self.urls:
            try:
                best = max(best, self.ws(r)["epoch"])
            except Exception:  # noqa: BLE001
                pass
        return best

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

    def settled(self):
        """Both regions up, one leading, the other caught up."""
        self.wait(lambda: self.leader() and all(self.ws(r)["replication_lag_events"] == 0 and self.ws(r)["role"] in ("leader", "standby") for r in self.urls), 120)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["pkill", "-f", f"region --deployment {self.dir}"], check=False)


class Writers:
    """`n` threads of the stock client logging params through the front door into one run."""

    def __init__(self, url, n):
        self.client = MlflowClient(tracking_uri=url)
        self.run_id = self.client.create_run("0").info.run_id
        self.stop_flag = threading.Event()
        self.acks = [[] for _ in range(n)]  # per thread: (sent, acked, key)
        self.errors = []
        self.threads = [threading.Thread(target=self.write, args=(t,)) for t in range(n)]
        for t in self.threads:
            t.start()

    def write(self, t):
        i = 0
        while not self.stop_flag.is_set():
            key = f"t{t}-{i}"
            sent = time.time()
            try:
                self.client.log_param(self.run_id, key, "v")
                self.acks[t].append((sent, time.time(), key))
            except Exception as e:  # noqa: BLE001 - a write the client gave up on is not acknowledged
                self.errors.append(repr(e)[:200])
            i += 1

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=180)

    def first_ack_after(self, t0):
        """Per thread, SIGKILL until the first acknowledgement of a write sent after it."""
        out = []
        for acks in self.acks:
            later = [a for s, a, _ in acks if s >= t0]
            if later:
                out.append(min(later) - t0)
        return max(out) if out else float("nan")

    def lost(self):
        params = self.client.get_run(self.run_id).data.params
        return sum(1 for acks in self.acks for _, _, k in acks if k not in params)

    def count(self):
        return sum(len(a) for a in self.acks)


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


def rto(up, kills, writers):
    server, client, lost, errors, acked = [], [], 0, 0, 0
    for k in range(kills):
        up.settled()
        w = Writers(up.url, writers)
        time.sleep(1.5)
        leader = up.leader()
        epoch = up.ws(leader)["epoch"]
        pid = up.status(leader)["pid"]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        up.wait(lambda: (l := up.leader()) is not None and up.ws(l)["epoch"] > epoch, 60)
        new = up.leader()
        server.append(up.ws(new)["last_failover"]["at_ms"] / 1000 - t0 if up.ws(new)["last_failover"] else time.time() - t0)
        # Writes flow again (or the client gave up): then a second more.
        up.wait(lambda: all(any(s >= t0 for s, _, _ in a) for a in w.acks) or w.errors, 60)
        time.sleep(1)
        w.stop()
        client.append(w.first_ack_after(t0))
        up.settled()
        lost += w.lost()
        errors += len(w.errors)
        acked += w.count()
        print(f"  kill {k + 1}: server {server[-1]:.2f} s, client {client[-1]:.2f} s, errors {len(w.errors)}", file=sys.stderr)
    return {"kills": kills, "server_rto_s": server, "client_rto_s": client, "server_rto_median_s": statistics.median(server), "client_rto_median_s": statistics.median(client), "client_rto_max_s": max(client), "acknowledged": acked, "lost": lost, "client_errors": errors}


def pauses(up, fractions, count, lease_ms, writers):
    """SIGSTOP the leader for a fraction of the lease, `count` times per fraction."""
    out = {}
    for f in fractions:
        failovers, errors, slowest = 0, 0, 0.0
        for _ in range(count):
            up.settled()
            w = Writers(up.url, writers)
            time.sleep(0.5)
            leader = up.leader()
            epoch = up.epoch()
            pid = up.status(leader)["pid"]
            os.kill(pid, signal.SIGSTOP)
            time.sleep(f * lease_ms / 1000)
            os.kill(pid, signal.SIGCONT)
            time.sleep(2 * lease_ms / 1000)
            w.stop()
            if up.epoch() != epoch:
                failovers += 1
            errors += len(w.errors)
            for acks in w.acks:
                for a, b in zip(acks, acks[1:]):
                    slowest = max(slowest, b[1] - a[1])
        out[str(f)] = {"pause_ms": int(f * lease_ms), "pauses": count, "failovers": failovers, "client_errors": errors, "longest_client_gap_s": slowest}
        print(f"  pause {f} x lease: {failovers} failovers of {count}, {errors} client errors", file=sys.stderr)
    return out


def steady(up, seconds, writers):
    up.settled()
    epoch = up.epoch()
    w = Writers(up.url, writers)
    time.sleep(seconds)
    w.stop()
    return {"seconds": seconds, "writes": w.count(), "failovers": up.epoch() - epoch, "client_errors": len(w.errors), "lost": w.lost()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--modes", default="async,sync")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--lease-ms", type=int, default=2000)
    ap.add_argument("--renew-ms", type=int, default=0)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--pauses", default="0.5,0.75,0.95")
    ap.add_argument("--pause-count", type=int, default=5)
    ap.add_argument("--steady-seconds", type=int, default=0)
    ap.add_argument("--load-seconds", type=int, default=15)
    ap.add_argument("--writes", type=int, default=400)
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    fractions = [float(f) for f in args.pauses.split(",") if f]
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "binary": args.bin, "lease_ms": args.lease_ms, "renew_ms": args.renew_ms or min(500, args.lease_ms // 4), "writers": args.writers, "modes": {}}
    modes = args.modes.split(",")
    for mode in modes:
        print(f"{mode}:", file=sys.stderr)
        up = Up(args.bin, mode, args.lease_ms, args.renew_ms)
        try:
            r = {}
            if not args.skip_latency:
                run_id = new_run(up.url)
                leader = up.leader()
                front = latency(up.url, run_id, args.writes)
                direct = latency(up.urls[leader], run_id, args.writes)
                r.update({"write_ms_front_door_p50": pct(front, 50), "write_ms_front_door_p99": pct(front, 99), "write_ms_direct_p50": pct(direct, 50), "write_ms_direct_p99": pct(direct, 99)})
                r["replication"] = lag_under_load(up, args.load_seconds)
            if args.kills:
                r["rto"] = rto(up, args.kills, args.writers)
            if fractions and args.pause_count:
                r["pauses"] = pauses(up, fractions, args.pause_count, args.lease_ms, args.writers)
            if args.steady_seconds:
                r["steady"] = steady(up, args.steady_seconds, args.writers)
            results["modes"][mode] = r
            print(f"{mode}: {json.dumps(r)}", file=sys.stderr)
        finally:
            up.stop()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"failover-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"lease {args.lease_ms} ms, renewal every {results['renew_ms']} ms, {args.writers} stock-client writers")
    print("| measure | " + " | ".join(modes) + " |")
    print("| --- |" + " --- |" * len(modes))
    m = results["modes"]

    def row(label, get, fmt="{:.2f}"):
        vals = []
        for mode in modes:
            try:
                vals.append(fmt.format(get(m[mode])))
            except (KeyError, TypeError):
                vals.append("")
        print(f"| {label} | " + " | ".join(vals) + " |")

    if not args.skip_latency:
        row("write latency at the leader, p50 (ms)", lambda r: r["write_ms_direct_p50"])
        row("write latency at the leader, p99 (ms)", lambda r: r["write_ms_direct_p99"])
        row("write latency through the front door, p50 (ms)", lambda r: r["write_ms_front_door_p50"])
        row("write latency through the front door, p99 (ms)", lambda r: r["write_ms_front_door_p99"])
        row("replication lag under load, p99 (events)", lambda r: r["replication"]["lag_events_p99"], "{:.0f}")
        row("replication lag under load, p99 (ms)", lambda r: r["replication"]["lag_ms_p99"], "{:.0f}")
    if args.kills:
        row(f"RTO, server, median of {args.kills} kills (s)", lambda r: r["rto"]["server_rto_median_s"])
        row(f"RTO, stock client, median of {args.kills} kills (s)", lambda r: r["rto"]["client_rto_median_s"])
        row(f"RTO, stock client, worst of {args.kills} kills (s)", lambda r: r["rto"]["client_rto_max_s"])
        row("acknowledged writes / lost", lambda r: f"{r['rto']['acknowledged']} / {r['rto']['lost']}", "{}")
        row("errors raised by the client", lambda r: r["rto"]["client_errors"], "{}")
    for f in fractions:
        if args.pause_count:
            row(f"failovers, leader paused {f:g} x lease (SIGSTOP)", lambda r: f"{r['pauses'][str(f)]['failovers']} of {r['pauses'][str(f)]['pauses']}", "{}")
    if args.steady_seconds:
        row(f"failovers in {args.steady_seconds} s of steady load", lambda r: f"{r['steady']['failovers']} ({r['steady']['writes']} writes, {r['steady']['client_errors']} errors)", "{}")
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
