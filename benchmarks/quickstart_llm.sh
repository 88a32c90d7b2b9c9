#!/usr/bin/env bash
# `llmos quickstart --llm` timed whole (training, before/after evaluation, registering, the answer), in a
# fresh LLMOS_HOME per run, at the default 40 steps and at one epoch of support-routing (116 packed rows).
# The baseline is the untuned model, measured in the same run (sft.eval_before): exact match and loss on
# the first 32 test conversations. The SmolLM2 conversion is a one-off and is left out: LLMOS_MODEL_CACHE
# points at a cache converted beforehand (the first run converts it if it is empty).
#   flock /tmp/llmos-bench.lock benchmarks/quickstart_llm.sh [STEPS ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export LLMOS_MODEL_CACHE="${LLMOS_MODEL_CACHE:-$HOME/.cache/llmos-models}"
lscpu | grep -E "Model name" ; lscpu | grep -o -E "avx512f|avx512_bf16|amx_bf16" | sort -u | tr '\n' ' '; echo
for steps in "${@:-40 116}"; do
  for s in $steps; do
    home=$(mktemp -d)
    echo "== llmos quickstart --llm --max-steps $s   (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
    start=$(date +%s.%N)
    LLMOS_HOME=$home .venv/bin/llmos quickstart --llm --max-steps "$s" | grep -E "eval |wall time|answer:"
    echo "whole command: $(echo "$(date +%s.%N) - $start" | bc) s   (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
    rm -rf "$home"
  done
done
