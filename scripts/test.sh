#!/usr/bin/env bash
# Set everything up, then run lint, format check, type check, layer check and the whole test suite.
# PostgreSQL tests run when STARGATE_TEST_POSTGRES_URL names a reachable server (.ci/run starts one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-focus.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff (lint)";   ruff check src tests bench
echo "== ruff (format)"; ruff format --check src tests bench
echo "== mypy";          mypy src/stargate
echo "== import-linter"; lint-imports
echo "== pytest";        pytest -q "$@"
