#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest against real PostgreSQL.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/storage -x); tests run
# in VPSMON_TEST_WORKERS processes (default 2; 0 runs them in this one).
# Set VPSMON_TEST_TIMESCALE_URL to a TimescaleDB superuser URL to run the
# storage contract against TimescaleDB too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --browser

echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy && .venv/bin/mypy loadtests
echo "== import layers" && .venv/bin/lint-imports --no-cache
echo "== vitest" && npm --prefix ui test --silent
echo "== pytest" && exec .venv/bin/pytest -n "${VPSMON_TEST_WORKERS:-2}" "$@"
