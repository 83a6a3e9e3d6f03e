#!/usr/bin/env python3
"""Restore throughput for artifact bytes, against a plain copy of the same files.

    bench/restore_artifacts.py [--bin target/release/tandem] [--large 48] [--large-mb 8] [--small 400] [--small-kb 64] [--rounds 3]

Starts `tandem server --archive file://...` (embedded defaults), uploads LARGE files of
LARGE_MB each and SMALL files of SMALL_KB each through the artifact API, waits until the
archive holds them all, stops the server, then ROUNDS times, alternating:
- `tandem restore --into` an empty store and an empty folder: the artifact part's time, from
  the command's own final line (every file read from the archive's blobs, hashed, written
  durably, checked, moved into place);
- a plain copy of the same blobs into an empty folder: read, write, fsync, rename per file
  (the same durability, no hashing), in Python with large buffers (the kernel does the work),
  one file at a time, four at a time (as tandem restores them), and four at a time with the
  SHA-256 of the bytes computed as they pass (the check a restore cannot skip).
Prints and writes (bench/results/restore-artifacts-<time>.json) MB/s per round, medians, and
the ratio. Needs only `requests`.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))


def start(bin_, data, archive):
    proc = subprocess.Popen([bin_, "server", "--data", data, "--listen", "127.0.0.1:0", "--archive", archive, "--auth", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.match(r"tracking uri: (\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit("the server did not start")


def archived_events(bin_, archive):
    out = subprocess.run([bin_, "backup", "list", "--archive", archive], capture_output=True, text=True).stdout
    m = re.search(r"^default\s+\d+\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def copy_one(src, dst, hashed):
    import hashlib

    tmp = dst + ".tmp"
    n, h = 0, hashlib.sha256()
    with open(src, "rb") as f, open(tmp, "wb") as g:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            if hashed:
                h.update(b)
            g.write(b)
            n += len(b)
        g.flush()
        os.fsync(g.fileno())
    os.rename(tmp, dst)
    return n


def plain_copy(src_dir, dst_dir, threads, hashed=False):
    """Read, write, fsync and rename every file, `threads` at a time (file I/O and hashing
    release the GIL); `hashed`: SHA-256 of the bytes too, as a restore must check them."""
    from concurrent.futures import ThreadPoolExecutor

    os.makedirs(dst_dir)
    names = sorted(os.listdir(src_dir))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda n: copy_one(os.path.join(src_dir, n), os.path.join(dst_dir, n), hashed), names))
    fd = os.open(dst_dir, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return total, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "tandem"))
    ap.add_argument("--large", type=int, default=48)
    ap.add_argument("--large-mb", type=int, default=8)
    ap.add_argument("--small", type=int, default=400)
    ap.add_argument("--small-kb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tandem-restore-bench-")
    archive_dir = os.path.join(work, "archive")
    archive = "file://" + archive_dir
    proc, url = start(args.bin, os.path.join(work, "live"), archive)
    try:
        s = requests.Session()
        files = [(f"0/bench/artifacts/large/{i}.bin", args.large_mb << 20) for i in range(args.large)]
        files += [(f"0/bench/artifacts/small/{i}.bin", args.small_kb << 10) for i in range(args.small)]
        for path, size in files:
            r = s.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}", data=os.urandom(size))
            r.raise_for_status()
        head = s.get(f"{url}/api/tandem/v1/workspaces/default/verify").json()["head_seq"]
        deadline = time.time() + 300
        while archived_events(args.bin, archive) < head:
            if time.time() > deadline:
                raise SystemExit("the archive did not catch up")
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait()
    blobs = os.path.join(archive_dir, "workspaces", "default", "blobs")
    total_mb = sum(size for _, size in files) / 1e6
    rounds = []
    for i in range(args.rounds):
        out = os.path.join(work, f"restore-{i}")
        os.makedirs(out)
        r = subprocess.run([args.bin, "restore", "--archive", archive, "--workspace", "default", "--into",
                            f"sqlite:///{out}/metadata.sqlite", "--data", out], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        m = re.search(r"(\d+) restored \(([\d.]+) MB.* (\d+) missing, in ([\d.]+) s", r.stdout)
        restored, mb, missing, secs = int(m.group(1)), float(m.group(2)), int(m.group(3)), float(m.group(4))
        assert restored == len(files) and missing == 0, r.stdout
        shutil.rmtree(out)
        row = {"tandem_mb_s": mb / secs, "tandem_s": secs}
        for key, threads, hashed in (("copy1", 1, False), ("copy4", 4, False), ("copy4_sha256", 4, True)):
            dst = os.path.join(work, f"copy-{i}-{key}")
            copied, copy_secs = plain_copy(blobs, dst, threads, hashed)
            shutil.rmtree(dst)
            row[f"{key}_mb_s"], row[f"{key}_s"] = copied / 1e6 / copy_secs, copy_secs
        rounds.append(row)
        print(f"round {i + 1}: tandem restore {row['tandem_mb_s']:.0f} MB/s ({secs:.2f} s); plain copy: one file at a time {row['copy1_mb_s']:.0f} MB/s, "
              f"four at a time {row['copy4_mb_s']:.0f} MB/s, four at a time with SHA-256 {row['copy4_sha256_mb_s']:.0f} MB/s")
    keys = ("tandem_mb_s", "copy1_mb_s", "copy4_mb_s", "copy4_sha256_mb_s")
    med = {k: statistics.median(r[k] for r in rounds) for k in keys}
    ratios = {k: med["tandem_mb_s"] / med[k] for k in keys[1:]}
    summary = {"files": len(files), "mb": total_mb, "rounds": rounds, "medians": med, "ratios": ratios}
    print(f"{len(files)} files, {total_mb:.0f} MB, medians of {args.rounds}: tandem {med['tandem_mb_s']:.0f} MB/s; plain copy "
          + ", ".join(f"{k[:-5]} {med[k]:.0f} MB/s (ratio {ratios[k]:.2f})" for k in keys[1:]))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = os.path.join(HERE, "results", time.strftime("restore-artifacts-%Y%m%dT%H%M%S.json", time.gmtime()))
    with open(name, "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote", name)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
