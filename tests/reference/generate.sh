#!/usr/bin/env bash
# Regenerate every reference fixture under tests/fixtures/ (test oracle; Python only here).
#   bash tests/reference/generate.sh          regenerate in place, rewrite tests/fixtures/manifest.json
#   bash tests/reference/generate.sh --check  regenerate into a temporary folder, then fail unless it
#                                             holds exactly the committed files, byte for byte
#                                             (formats/ and manifest.json included); nothing in the
#                                             tree is written
# PYTHON defaults to the venv /root/.cache/pg/venv (transformers 4.57, requirements.txt);
# PYTHON_TF5 to /root/.cache/pg/venv-tf5 (transformers 5.x + peft, requirements-tf5.txt).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-/root/.cache/pg/venv/bin/python}"
PY5="${PYTHON_TF5:-/root/.cache/pg/venv-tf5/bin/python}"
export PYTHONHASHSEED=0 TZ=UTC OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
FIXTURES="$(cd ../fixtures && pwd)"
check=""
if [[ "${1:-}" == "--check" ]]; then
  check="$(mktemp -d "${TMPDIR:-/tmp}/pg-fixtures-check.XXXXXX")"
  trap 'rm -rf "$check"' EXIT
  cp "$FIXTURES/README.md" "$check/README.md"  # hand-written, listed in the manifest
  mkdir -p "$check/lora" && cp "$FIXTURES/lora/README.md" "$check/lora/README.md"  # hand-written too
  # models/shapes/ is trained by shapes/generate.sh (~30 min), not by this script: copied as is.
  mkdir -p "$check/models" && cp -r "$FIXTURES/models/shapes" "$check/models/shapes"
  export PG_FIXTURES_DIR="$check"               # every generator writes here (common.py)
elif [[ -n "${1:-}" ]]; then
  echo "usage: generate.sh [--check]" >&2
  exit 2
fi
"$PY" make_tokenizer.py          # 1. tokenizer/
"$PY" make_images.py             # 2. images/
"$PY" make_resample.py           # 2b. images/resample/ (needs 2)
"$PY" make_models.py             # 3-4. models/pg1-tiny, models/pg2-tiny (needs 1 and 2)
"$PY" make_padded.py             # 4b. models/pg1-tiny-padded (needs 3)
"$PY5" make_tf5.py               # 4c. models/*/hf5, cases-tf5.json (transformers 5; needs 3)
"$PY5" make_lora.py              # 4d. lora/ (peft on transformers 5; needs 3)
"$PY" make_vqvae.py              # 5. vqvae/
"$PY" make_detseg.py             # 6. detseg/
"$PY" make_format_fixtures.py    # 7. formats/ (checkpoint-reader interop)
"$PY" make_manifest.py           # manifest.json
if [[ -n "$check" ]]; then
  # Every file on either side, compared byte for byte; a file on one side only is a difference.
  if diff -r -q "$FIXTURES" "$check"; then
    echo "check: every fixture file (formats/ and manifest.json included) is byte-identical"
  else
    echo "check FAILED: regenerated fixtures differ from the committed ones (listed above)" >&2
    exit 1
  fi
fi
