#!/usr/bin/env bash
# Runs every test tandem has, installing what they need first. Safe to run on a fresh
# machine with no stdin (CI): nothing here asks a question or depends on a hand install.
#
#   scripts/test.sh            everything
#   TANDEM_TEST_SKIP_PYTHON=1  skip the stock-client suite
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "format and lints (cargo fmt, cargo clippy -D warnings)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings 2>&1 | tail -n 40

step "build"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3

step "headless Chromium and its driver (Debian's packages) for the browser tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    sudo -n apt-get update -qq >/dev/null && sudo -n apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
chromium --version

step "python venv with the stock mlflow client ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
"$VENV/bin/python" -c 'import mlflow; print("mlflow client", mlflow.__version__)'

step "the newest installable mlflow client, beside the pinned one ($ROOT/.tandem-test/client-newest)"
NEWEST_VENV="$ROOT/.tandem-test/client-newest"
if [ ! -x "$NEWEST_VENV/bin/python" ]; then
  python3 -m venv "$NEWEST_VENV"
fi
"$NEWEST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements-newest.txt
"$NEWEST_VENV/bin/python" -c 'import mlflow; print("mlflow client", mlflow.__version__)'

step "the stock MLflow server and mlflow-export-import, to compare tandem with ($ROOT/.tandem-test/stock-mlflow)"
STOCK_VENV="$ROOT/.tandem-test/stock-mlflow"
if [ ! -x "$STOCK_VENV/bin/python" ]; then
  python3 -m venv "$STOCK_VENV"
fi
"$STOCK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements-stock.txt
export TANDEM_STOCK_MLFLOW="$STOCK_VENV/bin"

step "test services: PostgreSQL, Azurite, an S3-compatible server (private, loopback only)"
# shellcheck source=scripts/services.sh
source scripts/services.sh
trap stop_services EXIT
mkdir -p "$TEST_DIR"
start_postgres
start_azurite
start_s3
# From here on a missing service is a test failure, not a skip.
export TANDEM_TEST_REQUIRE_SERVICES=1

step "rust tests (unit, integration, crash, replay property)"
mkdir -p target
set +e
cargo test --workspace --locked 2>&1 | tee target/test-rust.log | grep -E '^(test result|running [0-9])|panicked|FAILED'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "rust tests FAILED; the end of the log (full log: target/test-rust.log):"
  tail -n 80 target/test-rust.log
  exit 1
fi

if [ -z "${TANDEM_TEST_SKIP_PYTHON:-}" ]; then
  step "stock mlflow client against tandem server"
  TANDEM_BIN="$ROOT/target/debug/tandem" MLFLOW_ENABLE_ASYNC_LOGGING=false \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python
  # The client suites again with the newest client release: what a user who upgrades gets.
  # (Regions, TLS and restores do not depend on the client's release.)
  step "the newest mlflow client against tandem server ($("$NEWEST_VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)'))"
  TANDEM_BIN="$ROOT/target/debug/tandem" MLFLOW_ENABLE_ASYNC_LOGGING=false \
    "$NEWEST_VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/python/test_client.py tests/python/test_fidelity.py tests/python/test_coverage.py \
    tests/python/test_access.py tests/python/test_two_servers.py tests/python/test_gateway.py
fi

step "all tests passed"
