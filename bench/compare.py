#!/usr/bin/env python3
"""tandem and the stock MLflow server, side by side on this machine.

    bench/compare.py [--quick] [--repeats 3] [--no-loadgen] [--no-client] [--postgres URL] [--mlflow-100k]

One command: installs the stock server (`mlflow==3.17.2`, the client's version, into
bench/.venv-mlflow) and the stock client (.venv, as scripts/test.sh does) if they are not
there, builds nothing (run `cargo build --release --workspace` first),
and for each server, started fresh on a free loopback port (MLflow: `mlflow server` with a
SQLite backend and artifacts served through the server; tandem: `tandem server` with its
embedded defaults):
1. startup time (spawn to a 200 from /health) and resident memory of the whole process tree,
   idle and at peak (sampled every 100 ms);
2. the stock mlflow client (bench/client_workload.py, one process per workload so its CPU time
   is its own: the client's floor) on: create+terminate runs, single log_metric calls,
   log_batch of 1,000 metrics, search_runs with a metric filter and order_by over 10,000 runs
   (pages of 100 and 1,000), upload and download of a 50 MB artifact, 50 model versions; and
   the same 50 MB through `requests` against a plain byte server (the machine's loopback limit);
3. the load generator (target/release/tandem-bench: the same REST requests to both servers,
   no Python in the way): run creation, single metrics, log-batch of 1,000 points and model
   versions at concurrency 1, 4, 16 and 64; and search (page of 100) and run-creation latency
   as the workspace grows to 1k, 10k and 100k runs (100k for MLflow only with --mlflow-100k:
   the stock server takes most of an hour to create them here). With --postgres URL the load
   generator's throughput runs are repeated with both servers on that PostgreSQL.
Every client figure is the median of --repeats repetitions. Prints Markdown tables and writes
bench/results/compare-<timestamp>.json.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MLFLOW_VENV = os.path.join(HERE, ".venv-mlflow")
MLFLOW_VERSION = "3.17.2"
CLIENT_PY = os.path.join(ROOT, ".venv", "bin", "python")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_mlflow():
    exe = os.path.join(MLFLOW_VENV, "bin", "mlflow")
    if not os.path.exists(exe):
        log(f"installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV}")
        subprocess.run([sys.executable, "-m", "venv", MLFLOW_VENV], check=True)
        subprocess.run([os.path.join(MLFLOW_VENV, "bin", "pip"), "install", "-q", f"mlflow=={MLFLOW_VERSION}", "psycopg2-binary"], check=True)
    return exe


def ensure_client():
    """The stock client's venv (.venv, the one scripts/test.sh makes), from a clean clone too."""
    if not os.path.exists(CLIENT_PY):
        log(f"creating {os.path.dirname(os.path.dirname(CLIENT_PY))} with the pinned mlflow client")
        subprocess.run([sys.executable, "-m", "venv", os.path.join(ROOT, ".venv")], check=True)
        subprocess.run([CLIENT_PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", os.path.join(ROOT, "tests", "python", "requirements.txt")], check=True)


def tree_rss_kb(pid):
    """Resident memory of a process and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+)", f.read())
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


class Server:
    def __init__(self, kind, tandem_bin, store=None):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "tandem":
            cmd = [tandem_bin, "server", "--data", self.dir, "--listen", f"127.0.0.1:{self.port}", "--auth", "off"]
            if store:
                cmd += ["--store", store]
        else:
            backend = store or f"sqlite:///{self.dir}/mlflow.db"
            cmd = [ensure_mlflow(), "server", "--backend-store-uri", backend, "--artifacts-destination", os.path.join(self.dir, "artifacts"), "--host", "127.0.0.1", "--port", str(self.port)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "server.log"), "w"), start_new_session=True)
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=1).status == 200:
                    break
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{kind} did not start: see {self.dir}/server.log")
                time.sleep(0.02)
        self.startup_s = time.perf_counter() - t0
        time.sleep(2)
        self.idle_rss_kb = tree_rss_kb(self.proc.pid)
        self.peak_rss_kb = self.idle_rss_kb
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while not self._stop.is_set():
            self.peak_rss_kb = max(self.peak_rss_kb, tree_rss_kb(self.proc.pid))
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except Exception:  # noqa: BLE001
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_bin(args, *a):
    out = subprocess.run([args.bench_bin, *a], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def client(url, workload, n, experiment_id=None):
    cmd = [CLIENT_PY, os.path.join(HERE, "client_workload.py"), "--url", url, "--workload", workload, "--n", str(n)]
    if experiment_id:
        cmd += ["--experiment-id", experiment_id]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{workload}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(results):
    keys = ["ops_per_s", "p50_ms", "p99_ms", "wall_ms_per_op", "client_cpu_ms_per_op", "mb_per_s"]
    return {k: (statistics.median(r[k] for r in results) if results[0].get(k) is not None else None) for k in keys} | {"repeats": len(results)}


CLIENT_WORKLOADS = [
    ("create-terminate", 200, "create + terminate a run"),
    ("log-metric", 500, "log_metric (one metric)"),
    ("log-batch-1000", 30, "log_batch of 1,000 metrics"),
    ("search-100", 20, "search_runs over 10k runs, page of 100"),
    ("search-1000", 10, "search_runs over 10k runs, page of 1,000"),
    ("upload-50mb", 3, "upload a 50 MB artifact"),
    ("download-50mb", 3, "download a 50 MB artifact"),
    ("model-version", 50, "create a model version"),
]


def client_part(args, server, search_exp, floor=None):
    """The client workloads against `server`; with `floor` (a dict to fill), also against a
    replaying responder in front of it: the same replies with no server work, the client's floor."""
    out = {}

    def floor_once(w, n):
        # A fresh responder each time: its first answers (the set-up and the warm-up operation)
        # come from the server; the timed operations get them replayed.
        replay = subprocess.Popen([args.bench_bin, "replay", "--upstream", server.url], stdout=subprocess.PIPE, text=True)
        try:
            url = re.search(r"(http://\S+)", replay.stdout.readline()).group(1)
            return client(url, w, n, search_exp if w.startswith("search") else None)
        finally:
            replay.kill()

    for w, n, _ in CLIENT_WORKLOADS:
        n = max(1, n // 5) if args.quick else n
        rs = [client(server.url, w, n, search_exp if w.startswith("search") else None) for _ in range(args.repeats)]
        out[w] = median_of(rs)
        log(f"  {server.kind} {w}: {json.dumps(out[w])}")
        if floor is not None:
            floor[w] = median_of([floor_once(w, n) for _ in range(args.repeats)])
            log(f"  floor {w}: {json.dumps(floor[w])}")
    return out


def loadgen_part(args, server, label):
    out = {}
    secs = "2" if args.quick else "5"
    for w in ["create-run", "log-metric", "log-batch", "model-version"]:
        for c in [1, 4, 16, 64]:
            r = bench_bin(args, "load", "--url", server.url, "--workload", w, "--concurrency", str(c), "--seconds", secs)
            out[f"{w}@{c}"] = r
            log(f"  {label} {server.kind} {w} c={c}: {r['ops_per_s']:.1f} ops/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms errors {r['errors']}")
    return out


def growth_part(args, server, sizes, state):
    out = {}
    for size in sizes:
        bench_bin(args, "populate", "--url", server.url, "--experiment", "growth", "--runs", str(max(0, size - state["have"])), "--concurrency", "16")
        state["have"] = max(size, state["have"])
        exp = bench_bin(args, "populate", "--url", server.url, "--experiment", "growth", "--runs", "0", "--concurrency", "1")["experiment_id"]
        s = bench_bin(args, "load", "--url", server.url, "--workload", "search-100", "--concurrency", "1", "--seconds", "5", "--experiment-id", exp)
        out[str(size)] = {"search_p50_ms": s["p50_ms"], "search_p99_ms": s["p99_ms"]}
        # Run creation at this size, in its own experiment (the searched one keeps its size).
        c = bench_bin(args, "load", "--url", server.url, "--workload", "create-run", "--concurrency", "1", "--seconds", "3")
        out[str(size)] |= {"create_run_p50_ms": c["p50_ms"], "create_run_p99_ms": c["p99_ms"]}
        state["have_total"] = state.get("have_total", 0) + c["ops"]
        log(f"  {server.kind} {size} runs: {json.dumps(out[str(size)])}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem-bin", default=os.path.join(ROOT, "target", "release", "tandem"))
    ap.add_argument("--bench-bin", default=os.path.join(ROOT, "target", "release", "tandem-bench"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-client", action="store_true")
    ap.add_argument("--no-loadgen", action="store_true")
    ap.add_argument("--postgres", help="a PostgreSQL server URL (postgres://USER@HOST:PORT/postgres); databases are created in it")
    ap.add_argument("--mlflow-100k", action="store_true")
    ap.add_argument("--only", choices=["tandem", "mlflow"], help="measure one server (for working on it; the comparison needs both)")
    args = ap.parse_args()
    ensure_mlflow()
    if not args.no_client:
        ensure_client()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1), "servers": {}}
    search_runs = 2000 if args.quick else 10000

    if not args.no_client:
        bytes_srv = subprocess.Popen([args.bench_bin, "serve-bytes"], stdout=subprocess.PIPE, text=True)
        url = re.search(r"(http://\S+)", bytes_srv.stdout.readline()).group(1)
        results["machine_limit"] = {w: median_of([client(url, w, 3) for _ in range(args.repeats)]) for w in ["raw-upload-50mb", "raw-download-50mb"]}
        bytes_srv.kill()
        # The same upload to a server that keeps it (written to a file on this disk, fsynced
        # before the reply): the limit for any server that must not lose what it acknowledged.
        keep_dir = tempfile.mkdtemp(prefix="bench-keep-")
        try:
            bytes_srv = subprocess.Popen([args.bench_bin, "serve-bytes", "--keep", keep_dir], stdout=subprocess.PIPE, text=True)
            url = re.search(r"(http://\S+)", bytes_srv.stdout.readline()).group(1)
            results["machine_limit"]["durable-upload-50mb"] = median_of([client(url, "raw-upload-50mb", 3) for _ in range(args.repeats)])
            bytes_srv.kill()
        finally:
            shutil.rmtree(keep_dir, ignore_errors=True)
        log(f"machine limit: {json.dumps(results['machine_limit'])}")

    for kind in [args.only] if args.only else ["tandem", "mlflow"]:
        log(f"== {kind}")
        s = Server(kind, args.tandem_bin)
        r = {"startup_s": s.startup_s, "idle_rss_mb": s.idle_rss_kb / 1024}
        try:
            # One experiment grows to 1k and 10k runs (search and run-creation latency at each
            # size); the client's searches run over it at 10k; then, for tandem (and MLflow
            # with --mlflow-100k), it grows on to 100k.
            sizes = [1000, search_runs]
            state = {"have": 0}
            if not args.no_loadgen:
                r["growth"] = growth_part(args, s, sizes, state)
            else:
                bench_bin(args, "populate", "--url", s.url, "--experiment", "growth", "--runs", str(search_runs), "--concurrency", "16")
            exp = bench_bin(args, "populate", "--url", s.url, "--experiment", "growth", "--runs", "0", "--concurrency", "1")["experiment_id"]
            if not args.no_client:
                floor = {} if kind == "tandem" else None
                r["client"] = client_part(args, s, exp, floor)
                if floor is not None:
                    results["client_floor"] = floor
            if not args.no_loadgen:
                r["loadgen_sqlite"] = loadgen_part(args, s, "sqlite")
                if not args.quick and (kind == "tandem" or args.mlflow_100k):
                    r["growth"].update(growth_part(args, s, [100000], state))
        finally:
            r["peak_rss_mb"] = s.peak_rss_kb / 1024
            s.stop()
        if args.postgres and not args.no_loadgen:
            db = f"bench_{kind}_{int(time.time())}"
            subprocess.run(["psql", args.postgres, "-c", f"CREATE DATABASE {db}"], check=True, capture_output=True)
            base = args.postgres.rsplit("/", 1)[0]
            store = f"{base}/{db}" if kind == "tandem" else f"{base.replace('postgres://', 'postgresql+psycopg2://')}/{db}"
            try:
                p = Server(kind, args.tandem_bin, store=store)
                try:
                    r["loadgen_postgres"] = loadgen_part(args, p, "postgres")
                finally:
                    p.stop()
            except Exception as e:  # noqa: BLE001 - keep what was measured
                r["loadgen_postgres_error"] = str(e)
                log(f"{kind} on PostgreSQL failed: {e}")
        results["servers"][kind] = r
        log(f"{kind}: startup {r['startup_s']:.2f} s, idle {r['idle_rss_mb']:.1f} MB, peak {r['peak_rss_mb']:.1f} MB")

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"compare-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    report(results)
    print(f"\nraw results: {path}")


def report_tandem_only(results):
    t, fl, ml = results["servers"]["tandem"], results.get("client_floor", {}), results.get("machine_limit", {})
    print(f"tandem: startup {t['startup_s']:.2f} s, idle {t['idle_rss_mb']:.1f} MB, peak {t['peak_rss_mb']:.1f} MB")
    for w, _, label in CLIENT_WORKLOADS if "client" in t else []:
        a = t["client"][w]
        floor = fl.get(w, {}).get("wall_ms_per_op") or a["client_cpu_ms_per_op"]
        print(f"| {label} | {a['ops_per_s']:.1f} ops/s | p50 {a['p50_ms']:.1f} | floor {floor:.2f} ms | tandem / floor {a['wall_ms_per_op'] / floor:.2f} |")
    for name, key in (("discard", "raw-upload-50mb"), ("durable", "durable-upload-50mb")):
        if key in ml and "client" in t:
            print(f"upload: {t['client']['upload-50mb']['mb_per_s']:.0f} MB/s, {name} limit {ml[key]['mb_per_s']:.0f} MB/s: {t['client']['upload-50mb']['mb_per_s'] / ml[key]['mb_per_s']:.2f}")
    for store in ("sqlite", "postgres"):
        for k, a in t.get(f"loadgen_{store}", {}).items():
            print(f"{store} {k}: {a['ops_per_s']:.0f} ops/s ({a['points_per_s']:.0f} points/s) p50 {a['p50_ms']:.2f} p99 {a['p99_ms']:.2f}")
    for size, a in t.get("growth", {}).items():
        print(f"{size} runs: search p50 {a['search_p50_ms']:.2f} ms, create-run p50 {a['create_run_p50_ms']:.2f} ms")


def report(results):
    if "mlflow" not in results["servers"]:
        return report_tandem_only(results)
    t, m = results["servers"]["tandem"], results["servers"]["mlflow"]
    print("| server | startup (s) | idle RSS, process tree (MB) | peak RSS (MB) |")
    print("| --- | --- | --- | --- |")
    for k, r in (("tandem", t), ("MLflow", m)):
        print(f"| {k} | {r['startup_s']:.2f} | {r['idle_rss_mb']:.1f} | {r['peak_rss_mb']:.1f} |")
    print(f"| MLflow / tandem | {m['startup_s'] / t['startup_s']:.1f}x | {m['idle_rss_mb'] / t['idle_rss_mb']:.1f}x | {m['peak_rss_mb'] / t['peak_rss_mb']:.1f}x |")
    if "client" in t:
        fl = results.get("client_floor", {})
        print("\n| through the stock client | tandem ops/s | MLflow ops/s | tandem p50 / p99 (ms) | MLflow p50 / p99 (ms) | MLflow time / tandem time | client floor: replayed replies (ms/op) | client CPU (ms/op) | tandem / floor | MLflow / floor |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for w, _, label in CLIENT_WORKLOADS:
            a, b = t["client"][w], m["client"][w]
            floor = fl.get(w, {}).get("wall_ms_per_op") or a["client_cpu_ms_per_op"]
            print(f"| {label} | {a['ops_per_s']:.1f} | {b['ops_per_s']:.1f} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {b['wall_ms_per_op'] / a['wall_ms_per_op']:.1f}x | {floor:.2f} | {a['client_cpu_ms_per_op']:.2f} | {a['wall_ms_per_op'] / floor:.2f} | {b['wall_ms_per_op'] / floor:.1f} |")
        ml = results.get("machine_limit", {})
        for w, raw, what in (("upload-50mb", "raw-upload-50mb", "a server that discards"), ("upload-50mb", "durable-upload-50mb", "a server that keeps (write + fsync)"), ("download-50mb", "raw-download-50mb", "a server from memory")):
            if raw in ml:
                print(f"| {w}: MB/s tandem / MLflow / machine limit, {what} | {t['client'][w]['mb_per_s']:.0f} | {m['client'][w]['mb_per_s']:.0f} | | | | {ml[raw]['mb_per_s']:.0f} | {t['client'][w]['mb_per_s'] / ml[raw]['mb_per_s']:.2f} of the limit |")
    for store in ("sqlite", "postgres"):
        key = f"loadgen_{store}"
        if key not in t or key not in m:
            continue
        print(f"\n| load generator, {store} | concurrency | tandem ops/s | MLflow ops/s | tandem / MLflow | tandem p50 / p99 (ms) | MLflow p50 / p99 (ms) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for k, a in t[key].items():
            b = m[key][k]
            w, c = k.split("@")
            unit = " (points/s)" if w == "log-batch" else ""
            av, bv = (a["points_per_s"], b["points_per_s"]) if w == "log-batch" else (a["ops_per_s"], b["ops_per_s"])
            print(f"| {w}{unit} | {c} | {av:.0f} | {bv:.1f} | {av / bv if bv else float('inf'):.0f}x | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} |")
    if "growth" in t:
        print("\n| runs in the workspace | tandem search p50 (ms) | MLflow search p50 (ms) | search speed-up | tandem create-run p50 (ms) | MLflow create-run p50 (ms) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for size, a in t["growth"].items():
            b = m.get("growth", {}).get(size)
            if b:
                print(f"| {int(size):,} | {a['search_p50_ms']:.2f} | {b['search_p50_ms']:.1f} | {b['search_p50_ms'] / a['search_p50_ms']:.0f}x | {a['create_run_p50_ms']:.2f} | {b['create_run_p50_ms']:.1f} |")
            else:
                print(f"| {int(size):,} | {a['search_p50_ms']:.2f} | not measured | | {a['create_run_p50_ms']:.2f} | not measured |")


if __name__ == "__main__":
    main()
