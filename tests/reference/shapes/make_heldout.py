"""Held-out shape scenes (seeds HELDOUT_SEED0 + i; training uses seeds >= 10,000,000, the VQ-VAE 7,001,000+)
with their ground truth: PNGs plus truth.json (captions, per-shape counts, a COCO ground-truth dict
with boxes and RLE masks, category_id = position in SHAPES + 1, image_id = position + 1, and per
object the `segment` answer a perfect model gives: big_vision loc tokens + the VQ-VAE encoder's 16
seg tokens + label, the oracle of the CLI's box, mask and label placement).

  python make_heldout.py                  the committed set: 24 scenes -> <fixtures>/models/shapes/heldout/
  python make_heldout.py --n 200 --out D  the benchmark set (BENCHMARKS.md): 200 scenes, same seeds first
"""
import argparse
import json
import os
import sys

import numpy as np
from pycocotools import mask as mask_util

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
import train_vqvae as vq  # noqa: E402
from train_vqvae import FIX  # noqa: E402

HELDOUT_SEED0 = 900_000


def save_png(img, path):
    img.save(path, format="PNG", optimize=False, compress_level=9)


def write_map_check(truth, out):
    """Synthetic detections on the committed set (jittered truth boxes, misses, duplicates, wrong labels,
    tied scores) and pycocotools' bbox mAP of them: the oracle for tests/helpers/coco_map.ts."""
    from evaluate import evaluate
    r = np.random.default_rng(77)
    cases = []
    for jitter in [0.0, 2.0, 5.0]:
        dets = []
        for g in truth["coco"]["annotations"]:
            if r.random() < 0.1:
                continue  # missed
            x, y, w, h = g["bbox"]
            box = [float(np.round(v + r.normal(0, jitter), 1)) for v in (x, y)] + \
                  [float(max(1.0, np.round(v + r.normal(0, jitter), 1))) for v in (w, h)]
            cat = g["category_id"] if r.random() < 0.9 else int(r.integers(1, 5))
            score = float(np.round(r.uniform(0.3, 1.0), 1))  # one decimal: many ties
            dets.append({"image_id": g["image_id"], "category_id": cat, "bbox": box, "score": score})
            if r.random() < 0.15:  # a duplicate, lower score
                dets.append({"image_id": g["image_id"], "category_id": cat,
                             "bbox": [v + 1.0 for v in box], "score": round(score * 0.5, 2)})
        for _ in range(5):  # false positives
            dets.append({"image_id": int(r.integers(1, 25)), "category_id": int(r.integers(1, 5)),
                         "bbox": [float(r.integers(0, 60)), float(r.integers(0, 60)), 20.0, 20.0],
                         "score": float(np.round(r.uniform(0, 1), 1))})
        cases.append({"jitter": jitter, "detections": dets, "pycocotools": evaluate(truth, dets, "bbox")})
    with open(os.path.join(out, "map_check.json"), "w") as f:
        json.dump({"what": "synthetic detections on truth.json and pycocotools' bbox mAP of them", "cases": cases},
                  f, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--out", default=os.path.join(FIX, "models", "shapes", "heldout"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    enc, book = vq.load_encoder()
    images, coco_images, anns = [], [], []
    for i in range(a.n):
        seed = HELDOUT_SEED0 + i
        sc = scenes.make_scene(seed)
        name = f"scene_{i:03d}.png"
        save_png(sc["image"], os.path.join(a.out, name))
        objs = []
        ordered = scenes.left_to_right(sc["objects"])
        codes = vq.encode_codes(enc, book, np.stack([scenes.mask_crop64(o["mask"], o["box"]) for o in ordered]))
        for o, code in zip(ordered, codes):
            rle = mask_util.encode(np.asfortranarray(o["mask"].astype(np.uint8)))
            rle = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
            x1, y1, x2, y2 = o["box"]
            objs.append({"shape": o["shape"], "colour": o["colour"], "box": o["box"], "mask": rle,
                         "answer": scenes.segment_object(sc, o, code)})
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": scenes.SHAPES.index(o["shape"]) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(o["mask"].sum()), "iscrowd": 0,
                         "segmentation": rle})
        images.append({"file": name, "seed": seed, "width": sc["width"], "height": sc["height"],
                       "caption": scenes.caption(sc), "counts": {s: int(scenes.count(sc, s)) for s in scenes.SHAPES},
                       "objects": objs})
        coco_images.append({"id": i + 1, "file_name": name, "width": sc["width"], "height": sc["height"]})
    truth = {"seed0": HELDOUT_SEED0, "shapes": scenes.SHAPES,
             "box": "x1,y1,x2,y2 in pixels, x2/y2 exclusive (tight around the visible mask)",
             "images": images,
             "coco": {"images": coco_images, "annotations": anns,
                      "categories": [{"id": k + 1, "name": s} for k, s in enumerate(scenes.SHAPES)]}}
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, separators=(",", ":"))
        f.write("\n")
    if a.n == 24:
        write_map_check(truth, a.out)
    print(f"heldout: {a.n} scenes, {len(anns)} objects -> {a.out}")


if __name__ == "__main__":
    main()
