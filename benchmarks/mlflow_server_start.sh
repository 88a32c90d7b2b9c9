#!/usr/bin/env bash
# How long a fresh `mlflow server` (PostgreSQL backend store, proxied artifacts, one worker) takes
# from launch to its first answered API call, as tests/_mlflow_server.py starts it: MLflow 3's
# defaults against the job runner left out (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false), with and
# without usage telemetry, interleaved. Each try gets a database of its own, dropped afterwards.
#
#   flock /tmp/llmos-bench.lock benchmarks/mlflow_server_start.sh [TRIES]   (default 3)
#
# Needs PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres, and the repo's .venv.
set -euo pipefail
tries=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
mlflow="$root/.venv/bin/mlflow"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

free_port() { "$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

one() {  # one() LABEL ENV... : print "LABEL SECONDS"
    local label=$1; shift
    local port db start end pid
    port=$(free_port)
    db="llmos_bench_$port"
    psql -qh 127.0.0.1 -U postgres -c "create database $db" >/dev/null
    start=$(date +%s.%N)
    env "$@" setsid "$mlflow" server --backend-store-uri "postgresql+psycopg://postgres@127.0.0.1:5432/$db" \
        --serve-artifacts --artifacts-destination "$work/art-$port" --host 127.0.0.1 --port "$port" --workers 1 \
        >"$work/server-$port.log" 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/api/2.0/mlflow/experiments/search?max_results=1" >/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "server exited; log:"; tail -20 "$work/server-$port.log"; exit 1; }
        sleep 0.1
    done
    end=$(date +%s.%N)
    kill -TERM -- "-$pid"
    wait "$pid" 2>/dev/null || true
    psql -qh 127.0.0.1 -U postgres -c "drop database $db with (force)" >/dev/null
    printf '%s %.1f\n' "$label" "$(echo "$end - $start" | bc)"
}

echo "# $(lscpu | grep 'Model name' | sed 's/  */ /g'); $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$tries"); do
    one default X=1
    one no-job-runner MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    one no-job-runner-no-telemetry MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
