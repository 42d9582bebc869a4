#!/usr/bin/env bash
# Runs vpsmon for a local trial (`vpsmon up`) with the embedded database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/vpsmon up "$@"
