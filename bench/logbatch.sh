#!/bin/bash
# Usage: bench/logbatch.sh [POSTGRES_URL]   (after cargo build --release --workspace; psql on PATH)
# tandem only, log-batch after the fix, SQLite then PostgreSQL, two runs each.
B=$(dirname "$0")/../target/release/tandem-bench
PG=${1:-postgres://postgres@127.0.0.1:54329/postgres}
for run in 1 2; do
  for store in sqlite postgres; do
    d=$(mktemp -d ${TMPDIR:-/tmp}/t.XXXX); port=$((47100 + RANDOM % 800))
    extra=""
    if [ $store = postgres ]; then
      db=lb_${run}_$(date +%s); psql $PG -qc "CREATE DATABASE $db" >/dev/null; extra="--store ${PG%/*}/$db"
    fi
    $(dirname "$0")/../target/release/tandem server --data $d --listen 127.0.0.1:$port $extra > $d/log 2>&1 &
    pid=$!; sleep 1
    for c in 1 4 16 64; do
      r=$($B load --url http://127.0.0.1:$port --workload log-batch --concurrency $c --seconds 5)
      echo "run$run $store c=$c $r"
    done
    kill $pid; wait $pid 2>/dev/null
  done
done
