#!/usr/bin/env python3
"""One workload through the stock mlflow client against one tracking server; prints JSON.

    client_workload.py --url URL --workload NAME --n N [--experiment-id ID]

Runs in its own process so that its CPU time (user + system, from getrusage) is the client's
alone: the client's own floor per operation. Set-up happens before the timed loop, plus one
untimed warm-up operation. Workloads: create-terminate, log-metric, log-batch-1000, search-100,
search-1000, upload-50mb, download-50mb, model-version, and raw-upload-50mb /
raw-download-50mb (the same bytes with `requests`, the client's own HTTP library, against a
plain byte server: the machine's loopback limit).
"""

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--experiment-id")
    args = ap.parse_args()
    size = 50 * 1024 * 1024
    tmp = tempfile.mkdtemp(prefix="tandem-client-")
    # Every run writes 50 MB blobs here: leave nothing behind (runs once left gigabytes).
    atexit.register(shutil.rmtree, tmp, True)

    if args.workload.startswith("raw-"):
        import requests

        s = requests.Session()
        blob = os.path.join(tmp, "blob.bin")
        with open(blob, "wb") as f:
            f.write(os.urandom(size))

        def op():
            if args.workload == "raw-upload-50mb":
                with open(blob, "rb") as f:
                    s.put(f"{args.url}/upload", data=f).raise_for_status()
            else:
                with s.get(f"{args.url}/{size}", stream=True) as r, open(os.path.join(tmp, "dl.bin"), "wb") as out:
                    r.raise_for_status()
                    for chunk in r.iter_content(chunk_size=1024 * 1024):
                        out.write(chunk)

    else:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        mlflow.set_tracking_uri(args.url)
        client = MlflowClient(tracking_uri=args.url, registry_uri=args.url)
        exp = args.experiment_id or client.create_experiment(f"client-{args.workload}-{uuid.uuid4().hex[:8]}")
        run_id = client.create_run(exp).info.run_id
        step = [0]
        w = args.workload
        if w in ("upload-50mb", "download-50mb"):
            blob = os.path.join(tmp, "blob.bin")
            with open(blob, "wb") as f:
                f.write(os.urandom(size))
            if w == "download-50mb":
                client.log_artifact(run_id, blob)
        if w == "model-version":
            model = f"client-model-{uuid.uuid4().hex[:8]}"
            client.create_registered_model(model)

        def op():
            step[0] += 1
            i = step[0]
            if w == "create-terminate":
                r = client.create_run(exp)
                client.set_terminated(r.info.run_id)
            elif w == "log-metric":
                client.log_metric(run_id, "m", i * 0.5, step=i)
            elif w == "log-batch-1000":
                ts = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(f"m{j % 10}", j * 0.1, ts, i * 1000 + j) for j in range(1000)])
            elif w in ("search-100", "search-1000"):
                n = 100 if w == "search-100" else 1000
                runs = client.search_runs([exp], filter_string="metrics.m > 0.5", order_by=["metrics.m DESC"], max_results=n)
                assert len(runs) > 0
            elif w == "upload-50mb":
                client.log_artifact(run_id, blob, artifact_path=f"u{i}")
            elif w == "download-50mb":
                client.download_artifacts(run_id, "blob.bin", tempfile.mkdtemp(dir=tmp))
            elif w == "model-version":
                client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id)
            else:
                raise SystemExit(f"unknown workload {w}")

    op()  # warm-up, not timed
    lat = []
    c0, t0 = cpu_s(), time.perf_counter()
    for _ in range(args.n):
        t = time.perf_counter()
        op()
        lat.append((time.perf_counter() - t) * 1000)
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    print(json.dumps({
        "workload": args.workload, "n": args.n, "ops_per_s": args.n / wall,
        "p50_ms": statistics.median(lat), "p99_ms": pct(lat, 99),
        "wall_ms_per_op": wall * 1000 / args.n, "client_cpu_ms_per_op": cpu * 1000 / args.n,
        "mb_per_s": (size / 1e6) * args.n / wall if "50mb" in args.workload else None,
    }))


if __name__ == "__main__":
    main()
