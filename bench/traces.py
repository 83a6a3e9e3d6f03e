#!/usr/bin/env python3
"""Trace benchmarks (issue 21): OTLP span ingest, trace search over 100k traces, and the
standby's replication lag at the ingest rate, tandem beside the stock MLflow server on the
same machine. The requests come from `tandem-bench` (Rust), so the figures are the servers'
own, not the Python client's.

    cargo build --release
    .venv/bin/python bench/traces.py [--traces 100000] [--spans 5] [--concurrency 8]
                                     [--stock-seconds 60] [--search-seconds 20]

1. Ingest: OTLP/HTTP protobuf export requests, one finished trace of `--spans` spans each
   (what the tracing SDK sends), from `--concurrency` connections. tandem gets all
   `--traces` of them (so its figure is over the whole 100k); the stock server, ~80 traces/s
   here, gets them for `--stock-seconds`, and its store is then filled to `--traces` by
   copying the rows its own ingest wrote (trace_info, trace_tags, spans) under new IDs and
   times: the same rows it would have written, hours sooner.
2. Search over those traces, each server restarted first, one client: `POST /api/3.0/mlflow/traces/search` for the newest
   100 (what the UI's traces page asks) and with a tag filter that one trace in ten matches
   (`tags.team = 't3'`), each for `--search-seconds`: p50 and p99.
3. Replication lag: `tandem up` (two regions on this machine), the same OTLP load at full
   rate into the leader for `--search-seconds`, the standby's `replication_lag_ms` sampled
   every 100 ms: p50 and p99, with `--write-ack async` and `sync`.

tandem runs on embedded defaults (SQLite); the stock server on SQLite with 2 workers.
Prints Markdown tables and writes bench/results/traces-<time>.json.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def load(bench, url, workload, experiment, **kw):
    cmd = [bench, "load", "--url", url, "--workload", workload, "--experiment-id", experiment]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert out["errors"] == 0, out
    return out


def experiment(url, name):
    return requests.post(url + "/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30).json()["experiment_id"]


def start_tandem(binary, data):
    p = subprocess.Popen([binary, "server", "--data", data, "--listen", "127.0.0.1:0", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1)
    raise RuntimeError("tandem did not start")


def start_stock(stock_bin, data):
    port = 5000 + (os.getpid() % 4000)
    p = subprocess.Popen([os.path.join(stock_bin, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                          "--backend-store-uri", f"sqlite:///{data}/m.db", "--default-artifact-root", f"{data}/a"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return p, url
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("the stock server did not start")


def stop(p, group=False):
    try:
        if group:
            os.killpg(p.pid, signal.SIGTERM)
        else:
            p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        p.kill()


def fill_stock(db, target):
    """Copies the traces the stock server's own ingest wrote until there are `target`: new
    IDs, request times spread back in time, the `team` tag spread as the ingest spreads it."""
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    src = [dict(r) for r in c.execute("SELECT * FROM trace_info")]
    have = len(src)
    tags, spans = {}, {}
    for r in c.execute("SELECT * FROM trace_tags"):
        tags.setdefault(r["request_id"], []).append(dict(r))
    for r in c.execute("SELECT * FROM spans"):
        d = dict(r)
        d.pop("duration_ns", None)
        spans.setdefault(r["trace_id"], []).append(d)
    oldest = min(r["timestamp_ms"] for r in src)
    rows_i, rows_t, rows_s = [], [], []
    for k in range(have, target):
        s = src[k % have]
        old = s["request_id"]
        new = f"tr-{0xbe:016x}{k:016x}"
        info = dict(s, request_id=new, timestamp_ms=oldest - (k - have + 1))
        rows_i.append(info)
        for t in tags.get(old, []):
            rows_t.append(dict(t, request_id=new, value=f"t{k % 10}" if t["key"] == "team" else t["value"].replace(old, new)))
        for sp in spans.get(old, []):
            rows_s.append(dict(sp, trace_id=new, content=sp["content"].replace(old[3:], new[3:])))

    def insert(table, rows):
        if rows:
            cols = list(rows[0])
            c.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [tuple(r[k] for k in cols) for r in rows])

    insert("trace_info", rows_i)
    insert("trace_tags", rows_t)
    insert("spans", rows_s)
    c.commit()
    n = c.execute("SELECT COUNT(*) FROM trace_info").fetchone()[0]
    c.close()
    return n


def searches(bench, url, exp, seconds):
    out = {}
    for w in ("trace-search", "trace-search-tag"):
        # Warm-up, not measured: the stock server's workers answer their first requests
        # a second late each.
        load(bench, url, w, exp, concurrency=1, seconds=3)
        r = load(bench, url, w, exp, concurrency=1, seconds=seconds)
        out[w] = {"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "ops": r["ops"]}
    return out


def lag(binary, bench, mode, spans, concurrency, seconds):
    from failover import Up

    up = Up(binary, mode, 2000, None)
    try:
        leader = up.leader()
        standby = [r for r in up.urls if r != leader][0]
        exp = experiment(up.urls[leader], "bench-lag")
        p = subprocess.Popen([bench, "load", "--url", up.urls[leader], "--workload", "otlp", "--experiment-id", exp, "--batch", str(spans),
                              "--concurrency", str(concurrency), "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
        millis, events = [], []
        time.sleep(1)
        while p.poll() is None:
            w = up.ws(standby)
            millis.append(w["replication_lag_ms"])
            events.append(w["replication_lag_events"])
            time.sleep(0.1)
        r = json.loads(p.stdout.read())
        assert r["errors"] == 0, r
        return {"spans_per_s": r["points_per_s"], "lag_ms_p50": pct(millis, 50), "lag_ms_p99": pct(millis, 99),
                "lag_events_p99": pct(events, 99), "samples": len(millis)}
    finally:
        up.stop()
        shutil.rmtree(up.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "target", "release", "tandem-bench"))
    ap.add_argument("--stock-bin", default=os.path.join(HERE, "..", ".tandem-test", "stock-mlflow", "bin"))
    ap.add_argument("--traces", type=int, default=100_000)
    ap.add_argument("--spans", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--stock-seconds", type=float, default=60)
    ap.add_argument("--search-seconds", type=float, default=20)
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument("--no-lag", action="store_true")
    a = ap.parse_args()
    result = {"traces": a.traces, "spans": a.spans, "concurrency": a.concurrency}

    d = tempfile.mkdtemp(prefix="tandem-bench-traces-")
    p, url = start_tandem(a.bin, d)
    try:
        exp = experiment(url, "bench-traces")
        r = load(a.bench, url, "otlp", exp, batch=a.spans, concurrency=a.concurrency, traces=a.traces)
        result["tandem"] = {"spans_per_s": r["points_per_s"], "ingest_p50_ms": r["p50_ms"], "ingest_p99_ms": r["p99_ms"]}
        # Searched from a fresh start over the stored traces, as the stock server is (it is
        # restarted after its store is filled): not while the ingest's writes settle.
        stop(p)
        p, url = start_tandem(a.bin, d)
        result["tandem"].update(searches(a.bench, url, exp, a.search_seconds))
    finally:
        stop(p)
        shutil.rmtree(d, ignore_errors=True)

    if not a.no_stock:
        d = tempfile.mkdtemp(prefix="tandem-bench-traces-stock-")
        p, url = start_stock(a.stock_bin, d)
        try:
            exp = experiment(url, "bench-traces")
            r = load(a.bench, url, "otlp", exp, batch=a.spans, concurrency=a.concurrency, seconds=a.stock_seconds)
            result["stock"] = {"spans_per_s": r["points_per_s"], "ingest_p50_ms": r["p50_ms"], "ingest_p99_ms": r["p99_ms"], "ingested_traces": r["ops"]}
        finally:
            stop(p, group=True)
        result["stock"]["traces_after_fill"] = fill_stock(os.path.join(d, "m.db"), a.traces)
        p, url = start_stock(a.stock_bin, d)
        try:
            result["stock"].update(searches(a.bench, url, exp, a.search_seconds))
        finally:
            stop(p, group=True)
            shutil.rmtree(d, ignore_errors=True)

    if not a.no_lag:
        result["lag"] = {m: lag(a.bin, a.bench, m, a.spans, a.concurrency, a.search_seconds) for m in ("async", "sync")}

    t, s = result["tandem"], result.get("stock")
    ratio = lambda x, y: f"{x / y:.1f}x" if y else "-"  # noqa: E731
    print(f"| measure ({a.traces} traces of {a.spans} spans) | tandem | stock MLflow | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| OTLP ingest, spans/s ({a.concurrency} connections) | {t['spans_per_s']:.0f} | {s['spans_per_s']:.0f} | {ratio(t['spans_per_s'], s['spans_per_s'])} |" if s else f"| OTLP ingest, spans/s | {t['spans_per_s']:.0f} | - | - |")
    for k, label in (("trace-search", "search, newest 100"), ("trace-search-tag", "search, tag filter")):
        line = f"| {label}, p50 / p99 (ms) | {t[k]['p50_ms']:.2f} / {t[k]['p99_ms']:.2f} |"
        line += f" {s[k]['p50_ms']:.2f} / {s[k]['p99_ms']:.2f} | {ratio(s[k]['p50_ms'], t[k]['p50_ms'])} |" if s else " - | - |"
        print(line)
    for m, v in result.get("lag", {}).items():
        print(f"| replication lag ({m}) at {v['spans_per_s']:.0f} spans/s, p50 / p99 (ms) | {v['lag_ms_p50']} / {v['lag_ms_p99']} | - | - |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("traces-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
