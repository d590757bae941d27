"""Shared helpers for the fixture generator (test oracle only; never product code)."""
import hashlib
import json
import os
import random

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# PG_FIXTURES_DIR redirects every generator (generate.sh --check writes to a temporary folder).
FIX = os.environ.get("PG_FIXTURES_DIR") or os.path.join(REPO, "tests", "fixtures")


def fpath(*parts):
    p = os.path.join(FIX, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write_json(path, obj, indent=None):
    """Deterministic JSON (sorted keys off: insertion order is part of the format; ASCII-safe)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def rng(seed):
    return np.random.default_rng(seed)


def prng(seed):
    return random.Random(seed)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def save_png(img, path):
    """PNG without time/text chunks so bytes are reproducible."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format="PNG", optimize=False, compress_level=9)
