"""Writes tests/fixtures/manifest.json: every fixture file, its size, sha256 and what made it."""
import os

from common import FIX, sha256, write_json

MADE_BY = [  # (path prefix, generator, description)
    ("tokenizer/", "tests/reference/make_tokenizer.py", "SentencePiece BPE + PaliGemma loc/seg pieces; HF conversion; id cases"),
    ("images/expected/", "tests/reference/make_images.py", "HF SiglipImageProcessor (PIL) resized uint8 images"),
    ("images/resample/", "tests/reference/make_resample.py", "Pillow resizes of RGB images with each filter"),
    ("images/", "tests/reference/make_images.py", "source images (scikit-image photos and made ones)"),
    ("models/pg1-tiny/hf/", "tests/reference/make_models.py", "HF PaliGemma folder converted from bv.npz"),
    ("models/pg2-tiny/hf/", "tests/reference/make_models.py", "HF PaliGemma folder converted from bv.npz"),
    ("models/pg1-tiny/hf5/", "tests/reference/make_tf5.py", "hf/ loaded and saved by transformers 5"),
    ("models/pg2-tiny/hf5/", "tests/reference/make_tf5.py", "hf/ loaded and saved by transformers 5"),
    ("models/pg1-tiny/cases-tf5.json", "tests/reference/make_tf5.py", "transformers 5 greedy ids on hf5/"),
    ("models/pg2-tiny/cases-tf5.json", "tests/reference/make_tf5.py", "transformers 5 greedy ids on hf5/"),
    ("models/pg1-tiny-padded/", "tests/reference/make_padded.py",
     "pg1-tiny with 64 padded embedding rows; transformers 4.57 ids past the tokenizer"),
    ("models/shapes/", "tests/reference/shapes/generate.sh",
     "tiny PaliGemma trained on generated shapes, its VQ-VAE decoder, held-out scenes + truth"),
    ("models/", "tests/reference/make_models.py", "tiny model big_vision npz / expected outputs from HF"),
    ("lora/README.md", "hand-written", "LoRA fixture layout"),
    ("lora/", "tests/reference/make_lora.py", "peft LoRA adapters; transformers 5 + peft outputs"),
    ("vqvae/", "tests/reference/make_vqvae.py", "random VQ-VAE decoder, torch.nn masks, pasted masks"),
    ("detseg/", "tests/reference/make_detseg.py", "answer strings and expected objects (both conventions)"),
    ("formats/", "tests/reference/make_format_fixtures.py", "checkpoint-reader interop files (other generator)"),
    ("README.md", "hand-written", "what every fixture is"),
]


def main():
    files = []
    for root, dirs, names in os.walk(FIX):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, FIX).replace(os.sep, "/")
            if rel == "manifest.json":
                continue
            gen = next(((g, d) for pre, g, d in MADE_BY if rel.startswith(pre)), ("unknown", ""))
            files.append({"path": rel, "bytes": os.path.getsize(p), "sha256": sha256(p), "made_by": gen[0],
                          "what": gen[1]})
    files.sort(key=lambda f: f["path"])
    total = sum(f["bytes"] for f in files)
    # Git stores a content once however many paths hold it (hf5/model.safetensors is byte-identical
    # to hf/model.safetensors; the hf/ tokenizer files repeat): the budget counts each content once.
    unique = sum({f["sha256"]: f["bytes"] for f in files}.values())
    # 18 MB (was 15) since models/shapes/, the trained demo model, was added; 19 MB since its vision
    # tower grew to 4 layers of 128 (2.0 -> 2.7 MB of weights).
    assert unique < 19_000_000, f"fixtures total {unique} distinct bytes >= 19 MB budget"
    assert all(f["bytes"] < 5_000_000 for f in files), "a fixture file is >= 5 MB"
    assert all(f["made_by"] != "unknown" for f in files), [f["path"] for f in files if f["made_by"] == "unknown"]
    write_json(os.path.join(FIX, "manifest.json"), {"total_bytes": total, "distinct_bytes": unique, "files": files}, indent=1)
    print(f"manifest: {len(files)} files, {total} bytes ({unique} distinct)")


if __name__ == "__main__":
    main()
