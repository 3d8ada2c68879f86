#!/usr/bin/env bash
# Run the reduced-scale experiments on the borrowed GPU machine (no internet, python3 with torch).
#
# Needs, carried with the working tree (see scripts/prepare_gpu_bundle.py):
#   .whl/         wheels of the packages the GPU image lacks
#   .gpu_bundle/  downsized data copy (ABANET_DATA)
# Writes to $OUT (default ./out): runs.tar.gz, summary.json, log.txt (+ speed_cuda.json/.md with BENCH=1).
# Merge the results here with:  python -m abanet_lib.ops.batch_runner merge OUT/runs.tar.gz
#
# Environment (all optional):
#   SCALE=reduced  BUDGET_S=480  WORKERS=4  TABLES=all|table2,table5,...  MODELS=abanet,basnet  MAX_RUNS=
#   SKIP_INSTALL=1 (use PYTHON, e.g. .venv/bin/python, instead of installing the wheels)
#   DEVICE= (override the runs' device, e.g. cpu)
#   BENCH=1 (first run benchmarks/bench_speed.py on the GPU, BENCH_ITERS=30, BENCH_TIMEOUT_S=180 for
#           the compiled part, BENCH_SIZES="128 256" x BENCH_BATCHES="8 32 64" for the batch grid;
#           its time comes out of BUDGET_S)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
SCALE=${SCALE:-reduced}
BUDGET_S=${BUDGET_S:-480}
WORKERS=${WORKERS:-4}
TABLES=${TABLES:-all}
T_START=$(date +%s)

if [ "${SKIP_INSTALL:-0}" = "1" ]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
else
  PY=python3
  if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  else
    echo "WARNING: no wheels in .whl/ (carry .whl); imports of missing packages will fail" >&2
  fi
  export PYTHONPATH=/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
nproc
"$PY" -c "import sys, torch, torchvision; print('python', sys.version.split()[0], '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
"$PY" -c "import segmentation_models_pytorch as smp, abanet_lib; print('smp', smp.__version__, '| abanet_lib', abanet_lib.__version__)" \
  || echo "WARNING: a package import failed (see above); the runs needing it will fail" >&2

if [ -d "$ROOT/.gpu_bundle/data" ]; then
  export ABANET_DATA=$ROOT/.gpu_bundle/data
else
  echo "WARNING: .gpu_bundle/data missing (carry .gpu_bundle); using ABANET_DATA=${ABANET_DATA:-default}" >&2
fi
export ABANET_CACHE=${ABANET_CACHE:-/tmp/abanet_cache}
export PYTHONUNBUFFERED=1
# No .git travels: the bundle records the commit it was prepared from (provenance).
if [ -f "$ROOT/.gpu_bundle/COMMIT" ]; then export ABANET_GIT_COMMIT=$(cat "$ROOT/.gpu_bundle/COMMIT"); fi
# Checkpoints stay on this machine: keep each run's test predictions for the figures.
export ABANET_SAVE_PREDICTIONS=${ABANET_SAVE_PREDICTIONS:-1}
if [ "${BENCH:-0}" = "1" ]; then
  # Speed benchmark first, on the idle GPU; its time counts against BUDGET_S.
  # First eager only (quick, always written), then with torch.compile (may need minutes).
  echo "== speed benchmark, eager (timeout 120s)"
  timeout 120 "$PY" benchmarks/bench_speed.py --device "${BENCH_DEVICE:-cuda}" --no-compile \
    --iters "${BENCH_ITERS:-30}" --out-dir "$OUT" || echo "speed benchmark failed or timed out" >&2
  # The GPU issue's grid: batch 8 and larger batches at 128 and 256 px (share of bf16 peak in each).
  for size in ${BENCH_SIZES:-128 256}; do
    for batch in ${BENCH_BATCHES:-8 32 64}; do
      echo "== speed benchmark, ${size}px batch ${batch} (timeout 90s)"
      timeout 90 "$PY" benchmarks/bench_speed.py --device "${BENCH_DEVICE:-cuda}" --no-compile --no-other-format \
        --image-size "$size" --batch "$batch" --iters "${BENCH_ITERS:-30}" --out-dir "$OUT" \
        --tag "${size}px_b${batch}" || echo "speed benchmark ${size}px b${batch} failed or timed out" >&2
    done
  done
  if [ "${BENCH_COMPILE:-1}" = "1" ]; then
    echo "== speed benchmark, torch.compile (timeout ${BENCH_TIMEOUT_S:-180}s)"
    timeout "${BENCH_TIMEOUT_S:-180}" "$PY" benchmarks/bench_speed.py --device "${BENCH_DEVICE:-cuda}" --compile \
      --no-other-format --iters "${BENCH_ITERS:-30}" --out-dir "$OUT" --tag compile \
      || echo "compiled speed benchmark failed or timed out" >&2
  fi
fi
# The remaining budget after installation (and benchmark), so that packing ends within BUDGET_S.
ELAPSED=$(( $(date +%s) - T_START ))
REMAINING=$(( BUDGET_S - ELAPSED ))
if [ "$REMAINING" -lt 30 ]; then REMAINING=30; fi
echo "== batch runner: scale $SCALE, $WORKERS workers, ${REMAINING}s, tables $TABLES"
EXTRA=()
if [ -n "${MAX_RUNS:-}" ]; then EXTRA+=(--max-runs "$MAX_RUNS"); fi
if [ -n "${DEVICE:-}" ]; then EXTRA+=(--device "$DEVICE"); fi
if [ -n "${MODELS:-}" ]; then EXTRA+=(--models "$MODELS"); fi
status=0
"$PY" -m abanet_lib.ops.batch_runner run --scale "$SCALE" --tables "$TABLES" --budget-s "$REMAINING" \
  --workers "$WORKERS" --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"} || status=$?
if [ "$status" -ne 0 ]; then
  echo "batch runner exited with status $status (see $OUT/log.txt and $OUT/summary.json)" >&2
fi
ls -la "$OUT"
exit "$status"
