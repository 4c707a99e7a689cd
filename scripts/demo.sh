#!/usr/bin/env bash
# The main job: set everything up, start the Stargate server on the embedded default (SQLite in ./.stargate, the
# local executor, the bundled examples/stargate-2025 fleet), submit the demo jobs in examples/jobs, and show them.
# Run it again to reuse the running server. Stop the server with: kill "$(cat .stargate/server.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export STARGATE_HOME="$PWD/.stargate"
URL="http://127.0.0.1:${STARGATE_PORT:-8642}"
mkdir -p "$STARGATE_HOME"

echo "== the bundled fleet"
stargate fleet validate examples/stargate-2025

healthy() { python -c "import httpx,sys; sys.exit(httpx.get('$URL/healthz', timeout=1).status_code != 200)" 2>/dev/null; }

token_file="$STARGATE_HOME/admin-token"
if [ ! -s "$token_file" ]; then
    (umask 077; python -c "import secrets; print('sg-demo-' + secrets.token_urlsafe(24))" > "$token_file")
fi
if healthy; then
    echo "== a Stargate server already answers at $URL; reusing it"
else
    echo "== starting the server at $URL (log: .stargate/server.log)"
    STARGATE_ADMIN_TOKEN="$(cat "$token_file")" nohup stargate up --port "${STARGATE_PORT:-8642}" \
        --fleet examples/stargate-2025 > "$STARGATE_HOME/server.log" 2>&1 &
    echo $! > "$STARGATE_HOME/server.pid"
    for _ in $(seq 1 100); do healthy && break; sleep 0.2; done
    healthy || { echo "error: the server did not start; see .stargate/server.log" >&2; tail -20 "$STARGATE_HOME/server.log" >&2; exit 1; }
fi

echo "== logging in as the admin (token in .stargate/admin-token)"
stargate login --url "$URL" --token "$(cat "$token_file")"

echo "== submitting the demo jobs in examples/jobs"
for job in examples/jobs/*.yaml; do
    stargate submit "$job"
done
sleep 3
stargate jobs --limit 10
stargate queues

cat <<MSG

The server keeps running in the background (pid $(cat "$STARGATE_HOME/server.pid" 2>/dev/null || echo "?")).
Where to look:
  .venv/bin/stargate jobs                 every job, its status, cluster and GPUs
  .venv/bin/stargate logs JOB_ID -f       follow a job's output until it ends
  $URL/docs         the REST API, interactive;  $URL/metrics  Prometheus metrics
  .stargate/server.log                    the server's log;  .stargate/runs/  each run's log and exit code
Stop it with: kill \$(cat .stargate/server.pid)
MSG
