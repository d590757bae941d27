"""Part 2b: Pillow's Image.resize of 8-bit RGB images with each filter the runtime implements
(lib/image/pil_resample.ts), the resize SiglipImageProcessor does for a preprocessor_config.json
`resample` value: transformers.image_transforms.resize hands `resample` to PIL's Image.resize
(reducing_gap None) on the uint8 image. Needs only Pillow and numpy."""
import os

import numpy as np
import PIL
from PIL import Image

from common import FIX, rng, save_png, write_json

# Pillow's filter ids, as preprocessor_config.json states them (NEAREST = 0 is not implemented).
FILTERS = {"lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
CASES = [  # (source under images/, output width, output height, what it exercises)
    ("chelsea.png", 56, 56, "both sides shrink, horizontal pass first"),
    ("chelsea.png", 400, 20, "the height shrinks more than twice the width: vertical pass first"),
    ("resample/noise.png", 31, 73, "both sides grow (kernel at scale 1)"),
]


def main():
    d = os.path.join(FIX, "images")
    os.makedirs(os.path.join(d, "resample"), exist_ok=True)
    noise = rng(11).integers(0, 256, (9, 13, 3)).astype(np.uint8)
    save_png(Image.fromarray(noise, "RGB"), os.path.join(d, "resample", "noise.png"))
    cases = []
    for src, w, h, what in CASES:
        img = Image.open(os.path.join(d, src)).convert("RGB")
        stem = os.path.splitext(os.path.basename(src))[0]
        out = {}
        for name, fid in FILTERS.items():
            r = img.resize((w, h), resample=fid, reducing_gap=None)
            rel = f"resample/{stem}_{w}x{h}_{name}.png"
            save_png(r, os.path.join(d, rel))
            out[name] = rel
        cases.append({"source": src, "width": w, "height": h, "what": what, "expected": out})
    write_json(os.path.join(d, "resample", "resample.json"), {
        "resize": "PIL.Image.resize((width, height), resample=id, reducing_gap=None) of the RGB image",
        "pillow": PIL.__version__, "filters": FILTERS, "cases": cases}, indent=1)
    print("resample:", len(cases), "cases x", len(FILTERS), "filters")


if __name__ == "__main__":
    main()
