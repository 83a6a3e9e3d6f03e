#!/usr/bin/env python3
"""What authentication and authorization cost per request.

    cargo build --release --workspace
    python3 bench/auth.py [--seconds 4] [--repeats 3] [--concurrency 1,4,16]

One `tandem server` per mode (release build, embedded defaults, each its own data folder),
all running side by side; the load generator (`tandem-bench load`, keep-alive connections,
several writers) sends the same REST requests to each in turn, interleaved (for every
workload and writer count, every mode, the starting mode rotating), so that the machine's
drift reaches every mode alike:
- off: `--auth off` (the figures without authentication);
- token: auth on, a contributor at `workspaces/default` sending `Authorization: Bearer tdm_...`
  (one SHA-256 and a map lookup per request, the decision on the in-memory access state);
- basic: the same user with HTTP basic (argon2id once per client, then the verified-header
  cache);
- narrow: auth on, a user whose only right is contributor on one experiment: the edge looks
  up the request's run or experiment before deciding (one extra indexed read).
Workloads: single `log-metric` calls, run creation (both into one experiment), and a search
(page of 100) over another experiment of 1,000 runs that nothing else writes to. Prints a Markdown table of medians over the repetitions (ops/s and p50) and, per mode, the
median of its paired ratios to `off` (each repetition's throughput over the `off` figure
measured beside it) and writes bench/results/auth-<timestamp>.json.
"""

import argparse
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TANDEM = os.path.join(ROOT, "target", "release", "tandem")
LOADGEN = os.path.join(ROOT, "target", "release", "tandem-bench")
ADMIN, ADMIN_PW = "bench-admin", "bench-admin-password"
USER, USER_PW = "bench-user", "bench-user-password"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def call(url, method, path, body=None, auth=None):
    req = urllib.request.Request(f"{url}{path}", method=method, data=json.dumps(body or {}).encode() if method != "GET" else None)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


class Server:
    def __init__(self, mode):
        self.dir = tempfile.mkdtemp(prefix="tandem-auth-bench-")
        env = dict(os.environ)
        args = [TANDEM, "server", "--data", self.dir, "--listen", "127.0.0.1:0"]
        if mode == "off":
            args += ["--auth", "off"]
        else:
            pw = os.path.join(self.dir, "admin-password")
            with open(pw, "w") as f:
                f.write(ADMIN_PW)
            env.update(TANDEM_BOOTSTRAP_ADMIN=ADMIN, TANDEM_BOOTSTRAP_PASSWORD_FILE=pw, TANDEM_AUTH="on")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for line in self.proc.stdout:
            m = re.match(r"tracking uri: (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        else:
            raise SystemExit("tandem server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", self.dir], check=False)


def prepare(server, mode):
    """Principals for the mode; returns (Authorization header or None, write experiment ID,
    search experiment ID)."""
    url = server.url
    if mode == "off":
        exp = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench"})["experiment_id"]
        search = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench-search"})["experiment_id"]
        return None, exp, search
    admin = basic(ADMIN, ADMIN_PW)
    call(url, "POST", "/api/tandem/v1/access/elevate", {"role": "admin", "scope": "*", "for_seconds": 3600, "reason": "benchmark set-up"}, admin)
    call(url, "POST", "/api/tandem/v1/access/principals", {"name": USER, "password": USER_PW}, admin)
    exp = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench"}, admin)["experiment_id"]
    search = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench-search"}, admin)["experiment_id"]
    for e in (exp, search):
        scope = f"workspaces/default/experiments/{e}" if mode == "narrow" else "workspaces/default"
        call(url, "POST", "/api/tandem/v1/access/assignments", {"principal": USER, "role": "contributor", "scope": scope}, admin)
    token = call(url, "POST", f"/api/tandem/v1/access/principals/{USER}/tokens", {"label": "bench"}, admin)["token"]
    return (basic(USER, USER_PW) if mode == "basic" else f"Bearer {token}"), exp, search


def loadgen(url, auth, workload, concurrency, seconds, exp):
    env = dict(os.environ)
    env.pop("TANDEM_BENCH_AUTHORIZATION", None)
    if auth:
        env["TANDEM_BENCH_AUTHORIZATION"] = auth
    out = subprocess.run([LOADGEN, "load", "--url", url, "--workload", workload, "--concurrency", str(concurrency),
                          "--seconds", str(seconds), "--experiment-id", exp], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"load generator failed: {out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["errors"]:
        raise SystemExit(f"{workload} had {r['errors']} errors: {r['first_error']}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--workloads", default="log-metric,create-run,search-100")
    a = ap.parse_args()
    for b in (TANDEM, LOADGEN):
        if not os.path.exists(b):
            raise SystemExit(f"{b} is missing: cargo build --release --workspace")
    modes = ["off", "token", "basic", "narrow"]
    conc = [int(c) for c in a.concurrency.split(",")]
    workloads = a.workloads.split(",")
    samples = {}  # (workload, concurrency, mode) -> [result]
    servers, setup = {}, {}
    try:
        for mode in modes:
            servers[mode] = Server(mode)
            auth, exp, search = prepare(servers[mode], mode)
            setup[mode] = (auth, exp, search)
            if "search-100" in workloads:
                env = dict(os.environ)
                env.pop("TANDEM_BENCH_AUTHORIZATION", None)
                if auth:
                    env["TANDEM_BENCH_AUTHORIZATION"] = auth
                subprocess.run([LOADGEN, "populate", "--url", servers[mode].url, "--experiment", "bench-search", "--runs", "1000"],
                               check=True, capture_output=True, env=env, timeout=600)
        turn = 0
        for rep in range(a.repeats):
            for w in workloads:
                for c in conc:
                    # Every mode in turn, starting from another one each time.
                    turn += 1
                    for mode in modes[turn % len(modes):] + modes[:turn % len(modes)]:
                        auth, exp, search = setup[mode]
                        r = loadgen(servers[mode].url, auth, w, c, a.seconds, search if w.startswith("search") else exp)
                        samples.setdefault((w, c, mode), []).append(r)
                        log(f"repeat {rep + 1} {mode:6} {w:11} c={c:<3} {r['ops_per_s']:9.1f} ops/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    finally:
        for s in servers.values():
            s.stop()
    med = lambda xs: statistics.median(xs)  # noqa: E731
    rows = []
    # Ratios are paired: each repetition's mode against `off` measured next to it (same
    # workload and writers, seconds apart), then the median of those ratios, so that the
    # machine's drift between repetitions cancels out.
    print("| workload | writers | off ops/s (p50 ms) | token ops/s (p50 ms) | token / off | basic ops/s (p50 ms) | basic / off | narrow ops/s (p50 ms) | narrow / off |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in workloads:
        for c in conc:
            cell, row = {}, {"workload": w, "concurrency": c}
            for mode in modes:
                rs = samples[(w, c, mode)]
                ops, p50 = med([r["ops_per_s"] for r in rs]), med([r["p50_ms"] for r in rs])
                row[mode] = {"ops_per_s": ops, "p50_ms": p50, "p99_ms": med([r["p99_ms"] for r in rs]),
                             "samples": [{k: r[k] for k in ("ops_per_s", "p50_ms", "p99_ms")} for r in rs]}
                cell[mode] = f"{ops:.0f} ({p50:.2f})"
                if mode != "off":
                    pairs = zip(rs, samples[(w, c, "off")])
                    row[mode]["ratio_to_off"] = med([r["ops_per_s"] / o["ops_per_s"] for r, o in pairs])
            rows.append(row)
            print(f"| {w} | {c} | {cell['off']} | {cell['token']} | {row['token']['ratio_to_off']:.2f} | {cell['basic']} | {row['basic']['ratio_to_off']:.2f} | {cell['narrow']} | {row['narrow']['ratio_to_off']:.2f} |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("auth-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump({"seconds": a.seconds, "repeats": a.repeats, "rows": rows}, f, indent=1)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
