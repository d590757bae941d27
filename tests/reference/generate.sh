#!/usr/bin/env bash
# Regenerate every reference fixture under tests/fixtures/ (test oracle; Python only here).
#   bash tests/reference/generate.sh          regenerate, rewrite tests/fixtures/manifest.json
#   bash tests/reference/generate.sh --check  regenerate, then fail unless every file is byte-identical
#                                             to the manifest that was there before
# PYTHON defaults to the venv /root/.cache/pg/venv (see tests/reference/README.md).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-/root/.cache/pg/venv/bin/python}"
export PYTHONHASHSEED=0 TZ=UTC OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
before=""
if [[ "${1:-}" == "--check" && -f ../fixtures/manifest.json ]]; then
  before="$(mktemp)"
  cp ../fixtures/manifest.json "$before"
fi
"$PY" make_tokenizer.py          # 1. tokenizer/
"$PY" make_images.py             # 2. images/
"$PY" make_models.py             # 3-4. models/pg1-tiny, models/pg2-tiny (needs 1 and 2)
"$PY" make_vqvae.py              # 5. vqvae/
"$PY" make_detseg.py             # 6. detseg/
if [[ -f make_format_fixtures.py ]]; then
  "$PY" make_format_fixtures.py  # formats/ (checkpoint-reader interop; separate generator)
fi
"$PY" make_manifest.py
if [[ -n "$before" ]]; then
  # formats/ is compared but only warned about: safetensors writes __metadata__ from a Rust HashMap, so the
  # order of its keys in formats/st_torch.safetensors can change from run to run (not our generator).
  "$PY" - "$before" ../fixtures/manifest.json <<'PYEOF'
import json, sys
old, new = (json.load(open(p))["files"] for p in sys.argv[1:3])
o = {f["path"]: f["sha256"] for f in old}
n = {f["path"]: f["sha256"] for f in new}
diff = sorted(p for p in set(o) | set(n) if o.get(p) != n.get(p))
ours = [p for p in diff if not p.startswith("formats/")]
for p in diff:
    print(("DIFFERS: " if p in ours else "warning, differs (formats/, other generator): ") + p)
if ours:
    sys.exit("check FAILED: regenerated fixtures differ from the previous manifest")
print("check: every fixture file outside formats/ is byte-identical to the previous manifest")
PYEOF
fi
