#!/usr/bin/env bash
# Regenerates the shapes demo model under tests/fixtures/models/shapes/ (test oracle; Python only here):
#   1. train_vqvae.py   VQ-VAE on scene masks -> vae.npz (vae-oid layout), encoder for the seg targets
#   2. pretrain_vision.py  stage 0: the SigLIP-style vision tower alone, dense shape/colour labels
#   3. train_model.py   tiny PaliGemma, HF transformers, prefix-LM -> hf/ (float16 safetensors)
#   4. make_heldout.py  24 held-out scenes + truth.json + the pycocotools mAP oracle (map_check.json)
# then tests/reference/make_manifest.py. About 0.5 + 9.5 + 19.5 minutes on an idle 2-core CPU (stage 0:
# 24000 scenes made in 2 processes, 6000 steps on 2 threads; then 8500 steps at 0.137 s on 1 thread under
# bfloat16 autocast, the batches made in a second process). Seeded and deterministic for a given torch
# build and thread count.
# PYTHON defaults to /root/.cache/pg/venv (requirements.txt; pycocotools too, see ../README.md).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-/root/.cache/pg/venv/bin/python}"
export PYTHONHASHSEED=0 TZ=UTC OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
"$PY" train_vqvae.py
"$PY" pretrain_vision.py
"$PY" train_model.py
"$PY" make_heldout.py
(cd .. && "$PY" make_manifest.py)
