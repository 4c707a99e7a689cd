#!/usr/bin/env bash
# The main job: set everything up, start the Stargate server on the embedded default (SQLite in ./.stargate, the
# local executor with job isolation, the bundled examples/stargate-2025 fleet), submit the demo jobs in examples/jobs,
# and show them. Run it again to reuse the server it started. Stop that server with: kill "$(cat .stargate/server.pid)"
#
# Everything stays in the project: the server's state in .stargate/ (private to you), the client's config (URL and
# admin token) in .stargate-client/ (mode 0700), never in ~/.config. Port: STARGATE_PORT (default 8642).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
umask 077 # the server's log, pid file and the client config are yours only
export PATH="$PWD/.venv/bin:$PATH"
export STARGATE_HOME="$PWD/.stargate"
export STARGATE_CONFIG_DIR="$PWD/.stargate-client"
PORT="${STARGATE_PORT:-8642}"
URL="http://127.0.0.1:$PORT"
pid_file="$STARGATE_HOME/server.pid"
log_file="$STARGATE_HOME/server.log"
token_file="$STARGATE_HOME/admin-token"
mkdir -p "$STARGATE_CONFIG_DIR"
chmod 700 "$STARGATE_CONFIG_DIR"

fail() {
    echo "error: $*" >&2
    exit 1
}

# True when /healthz on $URL answers 200 within 1 s.
healthy() {
    python -c "import httpx, sys; sys.exit(httpx.get('$URL/healthz', timeout=1).status_code != 200)" 2>/dev/null
}

# True when something accepts connections on the port (within 1 s).
port_taken() {
    python -c "import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"
}

# The command line of the live `stargate up` that .stargate/server.pid names (the server this script started), or
# nothing (no pid file, or its process is gone or is something else now).
our_server() {
    [ -s "$pid_file" ] || return 0
    local pid
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    ps -o args= -p "$pid" 2>/dev/null | grep -- "stargate up --port " || true
}

# Decide first (within 2 s): reuse this project's server, refuse a port held by anything else, or start one.
ours="$(our_server)"
if [ -n "$ours" ]; then
    [[ "$ours" == *"stargate up --port $PORT "* ]] || fail "this project's server (pid $(cat "$pid_file")) runs on" \
        "another port: '$ours'; run the demo with its port (STARGATE_PORT), or stop it: kill $(cat "$pid_file")"
    healthy || fail "this project's server (pid $(cat "$pid_file")) runs but does not answer at $URL; see" \
        ".stargate/server.log, or stop it with: kill $(cat "$pid_file")"
    start=no
elif port_taken; then
    fail "port $PORT is taken by another program, not by this project's server; free the port, or run:" \
        "STARGATE_PORT=<free port> scripts/demo.sh"
else
    start=yes
fi

echo "== the bundled fleet"
stargate fleet validate examples/stargate-2025

if [ "$start" = no ]; then
    echo "== reusing this project's server at $URL (pid $(cat "$pid_file"))"
else
    echo "== starting the server at $URL (log: .stargate/server.log)"
    mkdir -p "$STARGATE_HOME"
    nohup stargate up --port "$PORT" --fleet examples/stargate-2025 >>"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    deadline=$((SECONDS + 60))
    until healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            tail -5 "$log_file" >&2
            fail "the server did not start (exit above; whole log: .stargate/server.log)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "the server (pid $pid) did not answer within 60 s; see .stargate/server.log"
        sleep 0.2
    done
    grep -m1 "^isolation " "$log_file" || true
fi

[ -s "$token_file" ] || fail "no admin token in .stargate/admin-token (the server writes it on its first start only);" \
    "make one with: STARGATE_HOME=.stargate .venv/bin/stargate admin token create --role admin"
echo "== logging in as the admin (token file .stargate/admin-token; client config in .stargate-client/)"
stargate login --url "$URL" --token-file "$token_file" ||
    fail "the server at $URL refused the token in .stargate/admin-token (see the line above)"

echo "== submitting the demo jobs in examples/jobs"
for job in examples/jobs/*.yaml; do
    stargate submit "$job"
done
sleep 3
stargate jobs --limit 10
stargate queues

echo "== an inference service: examples/services/local.yaml (1 to 3 replicas), 8 requests/s for 15 s through the proxy"
stargate serve examples/services/local.yaml
ready_replicas() {
    stargate service local-chat --json | python -c "import json, sys; print(json.load(sys.stdin)['ready_replicas'])"
}
deadline=$((SECONDS + 30))
until [ "$(ready_replicas)" -ge 1 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the service's first replica was not ready within 30 s; see: stargate service local-chat"
    sleep 0.5
done
python examples/services/load.py --url "$URL" --service local-chat --rate 8 --duration 15 --token-file "$token_file"
stargate service local-chat
echo "== 20 s after the load: its window emptied and the scale-down delay passed, so it drained back down"
sleep 20
stargate service local-chat

echo "== a capacity plan on the server: examples/stargate-2025/plan.yaml, 20 Monte Carlo scenarios"
stargate plan submit --scenario examples/stargate-2025/plan.yaml --scenarios 20 | sed -n '1,3p' # reads it all: no SIGPIPE

echo "== two what-if simulations on the server (the bundled workload on the bundled fleet: gittins, then fifo)"
python - "$URL" "$token_file" <<'PY'
import sys
from pathlib import Path

import httpx

url, token_file = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + Path(token_file).read_text().strip()}
for policy in ("gittins", "fifo"):
    body = {"name": f"demo workload, {policy}", "trace": "examples/stargate-2025/workload.csv",
            "fleet": "examples/stargate-2025", "policy": policy}
    answer = httpx.post(f"{url}/api/v1/simulations", json=body, headers=headers, timeout=30)
    print(f"{answer.json().get('id', answer.text)}: {body['name']} ({answer.status_code})")
PY

cat <<MSG

The dashboard: $URL/ui — log in with the admin token (also in .stargate/admin-token):
  $(cat "$token_file")

The server keeps running in the background (pid $(cat "$pid_file")).
The client config is in .stargate-client/ (not ~/.config). To use it from your shell, first run:
  export STARGATE_CONFIG_DIR="$STARGATE_CONFIG_DIR"
Then:
  .venv/bin/stargate jobs                 every job, its status, cluster and GPUs
  .venv/bin/stargate services             the inference services (stargate service local-chat --delete stops it)
  .venv/bin/stargate logs JOB_ID -f       follow a job's output until it ends
  $URL/docs         the REST API, interactive;  $URL/metrics  Prometheus metrics
  .stargate/server.log                    the server's log (yours only, like all of .stargate/)
Stop it with: kill \$(cat .stargate/server.pid)
MSG
