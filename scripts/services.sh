# Test services, each private to this checkout, on loopback, on non-default ports.
# Sourced by scripts/test.sh; each start_* exports the variables the tests read, and
# stop_services (run on exit) stops everything that was started.
#
#   PostgreSQL 15: a throw-away cluster in .tandem-test/pg, port 54329, trust auth on 127.0.0.1
#   Azurite (npm): Azure Blob emulator in .tandem-test/azurite, port 10100
#   moto (PyPI): an S3-compatible server, port 10200

TEST_DIR="$ROOT/.tandem-test"
PG_PORT=54329
AZURITE_PORT=10100
S3_PORT=10200
STARTED_PIDS=()

pg_bin() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

wait_for_port() { # port seconds what
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$3 did not start on port $1 within $2 s" >&2
  return 1
}

start_postgres() {
  local bin
  bin=$(pg_bin)
  if [ -z "$bin" ]; then
    echo "PostgreSQL not found; installing it from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
  fi
  local data="$TEST_DIR/pg"
  rm -rf "$data" && mkdir -p "$data"
  # PostgreSQL refuses to run as root; run it as the packaged 'postgres' user then.
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$data"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$data" --auth=trust --username=postgres --locale=C --encoding=UTF8 >"$TEST_DIR/pg-initdb.log" 2>&1 \
    || { cat "$TEST_DIR/pg-initdb.log"; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c shared_buffers=64MB" start >/dev/null
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$data" -m immediate -w stop)
  export TANDEM_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "postgres: $TANDEM_TEST_POSTGRES"
}

start_azurite() {
  local dir="$TEST_DIR/azurite"
  mkdir -p "$dir"
  if [ ! -x "$TEST_DIR/node_modules/.bin/azurite-blob" ]; then
    (cd "$TEST_DIR" && npm install --silent --no-audit --no-fund --prefix "$TEST_DIR" azurite@3 >/dev/null 2>&1) \
      || { echo "npm install azurite failed" >&2; return 1; }
  fi
  "$TEST_DIR/node_modules/.bin/azurite-blob" --silent --skipApiVersionCheck --loose \
    --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$dir" >"$dir.log" 2>&1 &
  STARTED_PIDS+=($!)
  wait_for_port "$AZURITE_PORT" 60 azurite
  # object_store's emulator mode: well-known account and key, this endpoint.
  export AZURE_STORAGE_USE_EMULATOR=true
  export AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$AZURITE_PORT"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'azure-storage-blob>=12,<13'
  "$VENV/bin/python" - <<PY
from azure.storage.blob import BlobServiceClient
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1;")
svc = BlobServiceClient.from_connection_string(conn)
if not any(c.name == "tandem-test" for c in svc.list_containers()):
    svc.create_container("tandem-test")
PY
  export TANDEM_TEST_AZURITE="azure://tandem-test"
  echo "azurite: $AZURITE_BLOB_STORAGE_URL (container tandem-test)"
}

start_s3() {
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$TEST_DIR/moto.log" 2>&1 &
  STARTED_PIDS+=($!)
  wait_for_port "$S3_PORT" 60 "moto (S3)"
  export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=tandem-test AWS_SECRET_ACCESS_KEY=tandem-test
  "$VENV/bin/python" - <<PY
import boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:$S3_PORT", region_name="us-east-1",
                  aws_access_key_id="tandem-test", aws_secret_access_key="tandem-test")
s3.create_bucket(Bucket="tandem-test")
PY
  export TANDEM_TEST_S3="s3://tandem-test"
  echo "s3 (moto): $AWS_ENDPOINT (bucket tandem-test)"
}

stop_services() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  # Launchers may leave their real process behind: stop whatever runs from this checkout.
  pkill -f "$TEST_DIR/node_modules/.bin/azurite" 2>/dev/null || true
  pkill -f "moto_server -H 127.0.0.1 -p $S3_PORT" 2>/dev/null || true
  if [ -n "${PG_STOP+x}" ]; then
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
  fi
}
