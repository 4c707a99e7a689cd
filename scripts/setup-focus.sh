#!/usr/bin/env bash
# Create ./.venv-focus for the tests (scripts/test.sh runs it; the demo does not need it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# The FinOps Foundation's focus-validator, which tests/integration/test_focus_validator.py runs on the FOCUS export,
# pins numpy<2 and other old versions the project's venv cannot hold: it gets its own venv from its own lock.
if [ ! -x .venv-focus/bin/python ]; then
    "$PY" -m venv .venv-focus
    echo '*' > .venv-focus/.gitignore
fi
stamp=.venv-focus/.stargate-lock.sha256
want="$(sha256sum requirements-focus.lock | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv-focus/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-focus.lock
    echo "$want" > "$stamp"
fi
