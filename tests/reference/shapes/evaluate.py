"""Reference COCO evaluation (pycocotools) of `pg detect/segment --coco` results on a held-out set.

  python evaluate.py TRUTH.json RESULTS.json [--iou-type bbox|segm] [--json]

Prints mAP@[.5:.95] and mAP@.5 over the 4 shape categories (area range all, maxDets 100), the numbers
our own evaluator (tests/helpers/coco_map.ts) is checked against.
"""
import argparse
import contextlib
import io
import json

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate(truth, results, iou_type="bbox"):
    gt = COCO()
    gt.dataset = json.loads(json.dumps(truth["coco"]))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        e = COCOeval(gt, dt, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return {"map": float(e.stats[0]), "map50": float(e.stats[1])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("truth")
    ap.add_argument("results")
    ap.add_argument("--iou-type", default="bbox", choices=["bbox", "segm"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    truth = json.load(open(a.truth))
    results = json.load(open(a.results))
    m = evaluate(truth, results, a.iou_type)
    print(json.dumps(m) if a.json else f"{a.iou_type}: mAP@[.5:.95] {m['map']:.4f}  mAP@.5 {m['map50']:.4f}")


if __name__ == "__main__":
    main()
