#!/usr/bin/env python3
"""AI gateway benchmark (issue 20): what a call through the gateway's invocation route adds
to calling the provider directly.

    bench/gateway.py [--bin target/release/tandem] [--calls 2000] [--threads 4]

A local OpenAI-compatible fake provider (tests/python/fake_openai.py, loopback), one
`tandem server` (embedded defaults, release build) with an endpoint on it, and, with
`--stock-bin`, the stock MLflow server with the same secret, model definition and endpoint,
on SQLite, same machine. From one client thread, interleaved: a chat completion sent to the
provider directly, through tandem (`POST /gateway/{endpoint}/mlflow/invocations`), through
the stock server (same route). Added latency = p50 through the server minus p50 direct.
Then calls per second through tandem with `--threads` clients. Prints a Markdown table and
writes bench/results/gateway-<timestamp>.json.
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
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from fake_openai import FakeOpenAI  # noqa: E402

ENV = {
    **os.environ,
    "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_CRYPTO_KEK_PASSPHRASE": "bench-passphrase",
}
BODY = {"messages": [{"role": "user", "content": "hello"}]}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def make_endpoint(url, fake):
    g = url + "/api/3.0/mlflow/gateway"
    s = requests.post(f"{g}/secrets/create", json={"secret_name": "bench-key", "secret_value": {"api_key": fake.key}, "provider": "openai", "auth_config": {"api_base": fake.url}}, timeout=30)
    assert s.status_code == 200, s.text
    d = requests.post(f"{g}/model-definitions/create", json={"name": "bench-model", "secret_id": s.json()["secret"]["secret_id"], "provider": "openai", "model_name": "gpt-4o-mini"}, timeout=30)
    assert d.status_code == 200, d.text
    e = requests.post(f"{g}/endpoints/create", json={"name": "bench", "model_configs": [{"model_definition_id": d.json()["model_definition"]["model_definition_id"], "linkage_type": "PRIMARY"}], "usage_tracking": False}, timeout=30)
    assert e.status_code == 200, e.text
    return url + "/gateway/bench/mlflow/invocations"


def start_tandem(binary):
    d = tempfile.mkdtemp(prefix="tandem-bench-gateway-")
    p = subprocess.Popen([binary, "server", "--data", d, "--listen", "127.0.0.1:0", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
    for line in p.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1)
    raise RuntimeError("tandem did not start")


def start_stock(stock_bin):
    d = tempfile.mkdtemp(prefix="tandem-bench-gateway-stock-")
    port = 5000 + (os.getpid() % 4000)
    p = subprocess.Popen([os.path.join(stock_bin, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", f"sqlite:///{d}/m.db", "--default-artifact-root", f"{d}/a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=d, start_new_session=True)
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
        p.wait(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--stock-bin", default=os.path.join(HERE, "..", ".tandem-test", "stock-mlflow", "bin"))
    a = ap.parse_args()
    fake = FakeOpenAI()
    tp, turl = start_tandem(a.bin)
    sp = surl = None
    if os.path.exists(os.path.join(a.stock_bin, "mlflow")):
        sp, surl = start_stock(a.stock_bin)
    try:
        targets = {"direct": fake.url + "/chat/completions", "tandem": make_endpoint(turl, fake)}
        if surl:
            targets["stock"] = make_endpoint(surl, fake)
        headers = {"direct": {"Authorization": f"Bearer {fake.key}"}}
        sessions = {k: requests.Session() for k in targets}
        times = {k: [] for k in targets}
        body = {"direct": {**BODY, "model": "gpt-4o-mini"}}
        for k in targets:  # warm connections
            for _ in range(20):
                sessions[k].post(targets[k], json=body.get(k, BODY), headers=headers.get(k))
        for _ in range(a.calls):
            for k in targets:
                t0 = time.perf_counter()
                r = sessions[k].post(targets[k], json=body.get(k, BODY), headers=headers.get(k))
                times[k].append(time.perf_counter() - t0)
                assert r.status_code == 200, (k, r.text)

        def load(n):
            def work():
                ss = requests.Session()
                for _ in range(n):
                    ss.post(targets["tandem"], json=BODY)
            threads = [threading.Thread(target=work) for _ in range(a.threads)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return a.threads * n / (time.perf_counter() - t0)

        result = {k: {"p50_ms": statistics.median(v) * 1000, "p99_ms": pct(v, 99) * 1000} for k, v in times.items()}
        for k in result:
            result[k]["added_p50_ms"] = result[k]["p50_ms"] - result["direct"]["p50_ms"]
        result["tandem_calls_per_s"] = load(max(1, a.calls // a.threads))
        result["calls"], result["threads"] = a.calls, a.threads
    finally:
        stop(tp)
        if sp:
            stop(sp, group=True)
        fake.stop()
    print("| measure | direct to the provider | through tandem | through stock MLflow |")
    print("| --- | --- | --- | --- |")
    row = lambda key, fmt: " | ".join(fmt(result[k]) if k in result else "-" for k in ("direct", "tandem", "stock"))  # noqa: E731
    print("| chat p50 / p99 (one client) | " + row("p", lambda r: f"{r['p50_ms']:.2f} ms / {r['p99_ms']:.2f} ms") + " |")
    print("| added p50 over direct | - | " + " | ".join(f"{result[k]['added_p50_ms']:.2f} ms" if k in result else "-" for k in ("tandem", "stock")) + " |")
    print(f"| calls per second through tandem ({a.threads} clients) | - | {result['tandem_calls_per_s']:.0f} | - |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("gateway-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
