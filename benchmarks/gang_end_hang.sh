#!/usr/bin/env bash
# How often a DDP gang hangs at its end: runs tests/integration/test_train_ddp_resume.py (its 4
# tests: ~5 gangs, new-process, warm and two-node) RUNS times beside BUSY busy-looping Pythons, and
# counts the runs still going after LIMIT seconds. For each such run it writes py-spy's native stacks
# of every `llmos.run` program left (`pip install py-spy` first) to OUT/stacks-N.txt, then kills it.
#   bash benchmarks/gang_end_hang.sh [RUNS=20] [BUSY=2] [LIMIT=240] [OUT=/tmp/gang-end-hang]
# Compare commits in the same hour on the same host: the rate depends on how busy the machine is.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20} BUSY=${2:-2} LIMIT=${3:-240} OUT=${4:-/tmp/gang-end-hang}
mkdir -p "$OUT"
export LLMOS_HOME
LLMOS_HOME=$(mktemp -d)
busy=()
for _ in $(seq 1 "$BUSY"); do
  .venv/bin/python -c 'while True: sum(range(10_000_000))' & busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
hung=0
for i in $(seq 1 "$RUNS"); do
  setsid .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_train_ddp_resume.py \
    > "$OUT/run-$i.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 "$LIMIT"); do sleep 1; kill -0 "$pid" 2>/dev/null || break; done
  if kill -0 "$pid" 2>/dev/null; then
    hung=$((hung + 1))
    for p in $(pgrep -f "llmos.run /tmp/pytest-of-$(id -un)/"); do
      echo "=== $p $(tr '\0' ' ' < "/proc/$p/cmdline")"
      .venv/bin/py-spy dump --native --pid "$p" 2>&1
    done > "$OUT/stacks-$i.txt"
    kill -9 -- -"$pid" 2>/dev/null
    pkill -9 -f "llmos.run /tmp/pytest-of-$(id -un)/"
    echo "run $i: HUNG (stacks in $OUT/stacks-$i.txt)"
  else
    wait "$pid"; echo "run $i: exit $? ($(tail -1 "$OUT/run-$i.log"))"
  fi
done
echo "$(git rev-parse --short HEAD): $hung of $RUNS runs hung ($BUSY busy Pythons beside, limit ${LIMIT}s)"
