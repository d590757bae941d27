#!/bin/bash
# One side-by-side run (BENCHMARKS.md "Load time"): pg bench on our q8 / q4 (/ fp32) folders,
# transformers.js on the same q8 / q4 folders, and HF transformers (PyTorch) bf16 / fp32 on the HF
# checkpoint they were converted from, one after the other (never two at once: 24 GiB shared).
# Each line of OUT is one system's JSON, preceded by a "# <time> <uptime>" line.
#
#   tests/bench/peers/side_by_side.sh SYNTH_DIR OUT.ndjson [TOKENS] [SYSTEMS]
#   SYSTEMS: space-separated subset of pg-q8 pg-q4 pg-fp32 tjs-q8 tjs-q4 torch-bf16 torch-fp32
set -u
SYNTH=$1
OUT=$2
TOKENS=${3:-16}
SYSTEMS=${4:-"pg-q8 pg-q4 pg-fp32 tjs-q8 tjs-q4 torch-bf16 torch-fp32"}
PY=${PG_BENCH_PYTHON:-/root/.cache/pg/venv-bench/bin/python}
cd "$(dirname "$0")/../../.."
for s in $SYSTEMS; do
  kind=${s%-*}
  dtype=${s#*-}
  echo "# $(date -u +%FT%TZ) $s $(uptime)" | tee -a "$OUT"
  case $kind in
    pg)
      dir="$SYNTH/pg1-3b-224-$dtype"
      [ -d "$dir" ] || { echo "# $dir missing: skipped" | tee -a "$OUT"; continue; }
      deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys --allow-run main.ts \
        bench "$dir" --dtype "$dtype" --tokens "$TOKENS" --runs 1 --warmup 1 --cold --loads 3 \
        --json >> "$OUT" ;;
    tjs)
      deno run -A tests/bench/peers/transformersjs.ts "$SYNTH/pg1-3b-224-$dtype" --dtype "$dtype" \
        --tokens "$TOKENS" --cold --loads 3 >> "$OUT" ;;
    torch)
      "$PY" tests/bench/peers/pytorch.py "$SYNTH/pg1-3b-224-bf16-hf" --dtype "$dtype" \
        --tokens "$TOKENS" --cold --loads 2 >> "$OUT" ;;
  esac
done
echo "# $(date -u +%FT%TZ) end $(uptime)" | tee -a "$OUT"
