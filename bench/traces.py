#!/usr/bin/env python3
"""Trace benchmarks (issue 21): OTLP span ingest and trace search, tandem beside the stock
MLflow server on the same machine.

    .venv/bin/python bench/traces.py [--bin target/release/tandem] [--traces 10000]
                                     [--spans 5] [--threads 4] [--searches 200]

Each server gets `--traces` OTLP/HTTP protobuf export requests, one trace of `--spans` spans
each (the shape the tracing SDK sends: one request per finished trace), from `--threads`
client threads: spans per second. Then, over those traces, `--searches` calls of
`POST /api/3.0/mlflow/traces/search` from one client: the first page of 100 newest traces
(no filter, what the UI's traces page asks), and the same with a tag filter that matches
one trace in ten: p50 and p99. tandem runs on embedded defaults (SQLite, release build); the
stock server on SQLite. Prints a Markdown table and writes bench/results/traces-<time>.json.
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def request_for(i, spans):
    """One export request: trace i, a root span and spans-1 children, tagged like a client."""
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    trace = i.to_bytes(16, "big")
    base = 1_700_000_000_000_000_000 + i * 1_000_000
    for j in range(spans):
        s = scope.spans.add()
        s.trace_id = trace
        s.span_id = (j + 1).to_bytes(8, "big")
        if j:
            s.parent_span_id = (1).to_bytes(8, "big")
        s.name = "agent" if j == 0 else f"step-{j}"
        s.start_time_unix_nano = base + j * 1000
        s.end_time_unix_nano = base + 500_000
        s.status.code = 1
        for k, v in [("mlflow.spanType", "CHAIN"), ("mlflow.spanInputs", json.dumps({"question": f"q{i}", "step": j})), ("mlflow.spanOutputs", json.dumps(f"answer {i}"))]:
            a = s.attributes.add()
            a.key = k
            a.value.string_value = v
        if j == 0:
            a = s.attributes.add()
            a.key = "mlflow.traceTag.team"
            a.value.string_value = f"t{i % 10}"
    return req.SerializeToString()


def start_tandem(binary):
    d = tempfile.mkdtemp(prefix="tandem-bench-traces-")
    p = subprocess.Popen([binary, "server", "--data", d, "--listen", "127.0.0.1:0", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1), False
    raise RuntimeError("tandem did not start")


def start_stock(stock_bin):
    d = tempfile.mkdtemp(prefix="tandem-bench-traces-stock-")
    port = 5000 + (os.getpid() % 4000)
    p = subprocess.Popen([os.path.join(stock_bin, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                          "--backend-store-uri", f"sqlite:///{d}/m.db", "--default-artifact-root", f"{d}/a"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return p, url, True
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("the stock server did not start")


def stop(p, group):
    try:
        if group:
            os.killpg(p.pid, signal.SIGTERM)
        else:
            p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        p.kill()


def measure(url, a, bodies):
    eid = requests.post(url + "/api/2.0/mlflow/experiments/create", json={"name": "bench-traces"}, timeout=30).json()["experiment_id"]
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": eid}
    errors = []

    def work(t):
        s = requests.Session()
        for i in range(t, len(bodies), a.threads):
            r = s.post(url + "/v1/traces", data=bodies[i], headers=headers, timeout=120)
            if r.status_code != 200:
                errors.append(r.text[:200])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(a.threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ingest_s = time.perf_counter() - t0
    assert not errors, errors[:3]
    loc = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]
    s = requests.Session()
    out = {"spans_per_s": len(bodies) * a.spans / ingest_s, "ingest_s": ingest_s}
    for name, body in [("newest_page", {}), ("tag_filter", {"filter": "tags.team = 't3'"})]:
        times = []
        for _ in range(a.searches):
            t0 = time.perf_counter()
            r = s.post(url + "/api/3.0/mlflow/traces/search", json={"locations": loc, "max_results": 100, **body}, timeout=120)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json().get("traces", [])) == 100, r.text[:300]
        out[name] = {"p50_ms": statistics.median(times) * 1000, "p99_ms": pct(times, 99) * 1000}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--stock-bin", default=os.path.join(HERE, "..", ".tandem-test", "stock-mlflow", "bin"))
    ap.add_argument("--traces", type=int, default=10000)
    ap.add_argument("--spans", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--no-stock", action="store_true")
    a = ap.parse_args()
    bodies = [request_for(i, a.spans) for i in range(a.traces)]
    result = {"traces": a.traces, "spans": a.spans, "threads": a.threads}
    servers = [("tandem", lambda: start_tandem(a.bin))]
    if not a.no_stock and os.path.exists(os.path.join(a.stock_bin, "mlflow")):
        servers.append(("stock", lambda: start_stock(a.stock_bin)))
    for name, start in servers:
        p, url, group = start()
        try:
            result[name] = measure(url, a, bodies)
        finally:
            stop(p, group)
    t, s = result["tandem"], result.get("stock")
    ratio = lambda x, y: f"{x / y:.1f}x" if y else "-"  # noqa: E731
    print(f"| measure ({a.traces} traces of {a.spans} spans) | tandem | stock MLflow | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| OTLP ingest, spans/s ({a.threads} clients) | {t['spans_per_s']:.0f} | {s['spans_per_s']:.0f} | {ratio(t['spans_per_s'], s['spans_per_s'])} |" if s else f"| OTLP ingest, spans/s | {t['spans_per_s']:.0f} | - | - |")
    for k in ("newest_page", "tag_filter"):
        line = f"| search {k} p50 / p99 | {t[k]['p50_ms']:.2f} / {t[k]['p99_ms']:.2f} ms |"
        line += f" {s[k]['p50_ms']:.2f} / {s[k]['p99_ms']:.2f} ms | {ratio(s[k]['p50_ms'], t[k]['p50_ms'])} |" if s else " - | - |"
        print(line)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("traces-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
