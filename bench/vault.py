#!/usr/bin/env python3
"""Vault benchmarks (issue 20): secret create and reveal through tandem's API.

    bench/vault.py [--bin target/release/tandem] [--secrets 1000] [--threads 4]

One `tandem server` (embedded defaults, release build). Measured from one client thread:
latency of creating a secret (sealing with the workspace's data key + the event) and of
reading its value (opening it), p50 and p99 over `--secrets` each; then throughput with
`--threads` client threads (creates/s and reveals/s). Beside it, with `--stock-bin`, the stock
MLflow server's own encrypted secrets (`gateway/secrets/create` and `gateway/secrets/get`,
which answers masked values: MLflow has no call that reveals one) on SQLite, same machine.
Prints a Markdown table and writes bench/results/vault-<timestamp>.json.
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


def stock_figures(a):
    """The stock server's gateway secrets, one client, `--secrets` creates and gets."""
    d = tempfile.mkdtemp(prefix="tandem-bench-vault-stock-")
    port = 5000 + (os.getpid() % 4000)
    env = {**os.environ, "MLFLOW_CRYPTO_KEK_PASSPHRASE": "bench-passphrase"}
    p = subprocess.Popen([os.path.join(a.stock_bin, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", f"sqlite:///{d}/m.db", "--default-artifact-root", f"{d}/a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=d)
    base = f"http://127.0.0.1:{port}/api/3.0/mlflow/gateway/secrets"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        s = requests.Session()
        create, get, ids = [], [], []
        for i in range(a.secrets):
            t0 = time.perf_counter()
            r = s.post(f"{base}/create", json={"secret_name": f"s{i}", "secret_value": {"api_key": f"sk-{i:08d}-" + "x" * 40}})
            create.append(time.perf_counter() - t0)
            ids.append(r.json()["secret"]["secret_id"])
        for sid in ids:
            t0 = time.perf_counter()
            s.get(f"{base}/get", params={"secret_id": sid})
            get.append(time.perf_counter() - t0)
        return {"create_p50_ms": statistics.median(create) * 1000, "create_p99_ms": pct(create, 99) * 1000,
                "get_p50_ms": statistics.median(get) * 1000, "get_p99_ms": pct(get, 99) * 1000}
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--stock-bin", default=os.path.join(HERE, "..", ".tandem-test", "stock-mlflow", "bin"))
    a = ap.parse_args()
    stock = stock_figures(a) if os.path.exists(os.path.join(a.stock_bin, "mlflow")) else None
    d = tempfile.mkdtemp(prefix="tandem-bench-vault-")
    p = subprocess.Popen([a.bin, "server", "--data", d, "--listen", "127.0.0.1:0", "--auth", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in p.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            url = m.group(1)
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    base = url + "/api/tandem/v1/workspaces/default/secrets"
    try:
        s = requests.Session()
        create, reveal = [], []
        for i in range(a.secrets):
            t0 = time.perf_counter()
            r = s.post(base, json={"name": f"s{i}", "value": f"sk-{i:08d}-" + "x" * 40})
            create.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        for i in range(a.secrets):
            t0 = time.perf_counter()
            r = s.get(f"{base}/s{i}/value")
            reveal.append(time.perf_counter() - t0)
            assert r.json()["value"].startswith(f"sk-{i:08d}-")

        def load(kind, n):
            def work(t):
                ss = requests.Session()
                for i in range(n):
                    if kind == "create":
                        ss.post(base, json={"name": f"t{t}-{i}", "value": "v" * 48})
                    else:
                        ss.get(f"{base}/s{(t * n + i) % a.secrets}/value")
            threads = [threading.Thread(target=work, args=(t,)) for t in range(a.threads)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return a.threads * n / (time.perf_counter() - t0)

        per = max(1, a.secrets // a.threads)
        result = {
            "create_p50_ms": statistics.median(create) * 1000,
            "create_p99_ms": pct(create, 99) * 1000,
            "reveal_p50_ms": statistics.median(reveal) * 1000,
            "reveal_p99_ms": pct(reveal, 99) * 1000,
            "creates_per_s": load("create", per),
            "reveals_per_s": load("reveal", per),
            "secrets": a.secrets,
            "threads": a.threads,
        }
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    result["stock"] = stock
    print("| measure | tandem | stock MLflow |")
    print("| --- | --- | --- |")
    sc = f"{stock['create_p50_ms']:.2f} ms / {stock['create_p99_ms']:.2f} ms" if stock else "-"
    sg = f"{stock['get_p50_ms']:.2f} ms / {stock['get_p99_ms']:.2f} ms (masked)" if stock else "-"
    print(f"| create p50 / p99 (one client) | {result['create_p50_ms']:.2f} ms / {result['create_p99_ms']:.2f} ms | {sc} |")
    print(f"| read p50 / p99 (one client) | {result['reveal_p50_ms']:.2f} ms / {result['reveal_p99_ms']:.2f} ms (value) | {sg} |")
    print(f"| creates per second ({a.threads} clients) | {result['creates_per_s']:.0f} | - |")
    print(f"| reveals per second ({a.threads} clients) | {result['reveals_per_s']:.0f} | - |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", time.strftime("vault-%Y%m%dT%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
