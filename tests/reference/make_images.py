"""Part 2: source images (real + made) and the HF (PIL-based SiglipImageProcessor) resized uint8 images."""
import os
import shutil

import numpy as np
import PIL
from PIL import Image

from common import FIX, fpath, rng, save_png, write_json

SKIMAGE_DATA = os.path.join(os.path.dirname(__import__("skimage").__file__), "data")
SIZES = [224, 56]  # 224 = PaliGemma-224; 56 = the tiny models' size (patch 14 -> 16 tokens)

REAL = {
    "astronaut.png": ("scikit-image data astronaut.png (Eileen Collins, NASA), downscaled to 256x256 with "
                      "PIL LANCZOS by the generator", "public domain (NASA)"),
    "chelsea.png": ("scikit-image data chelsea.png, unchanged copy", "CC0 (photographer Stefan van der Walt)"),
    "rocket.jpg": ("scikit-image data rocket.jpg, unchanged copy", "public domain (SpaceX)"),
}


def make_sources(d):
    a = Image.open(os.path.join(SKIMAGE_DATA, "astronaut.png")).convert("RGB").resize((256, 256),
                                                                                      Image.LANCZOS)
    save_png(a, os.path.join(d, "astronaut.png"))
    shutil.copyfile(os.path.join(SKIMAGE_DATA, "chelsea.png"), os.path.join(d, "chelsea.png"))
    shutil.copyfile(os.path.join(SKIMAGE_DATA, "rocket.jpg"), os.path.join(d, "rocket.jpg"))

    chelsea = np.asarray(Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB"))
    # RGBA: a crop of chelsea with a horizontal alpha ramp and a fully transparent corner.
    rgb = chelsea[20:220, 50:350]
    h, w = rgb.shape[:2]
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    alpha[:40, :60] = 0
    save_png(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), os.path.join(d, "rgba.png"))
    # 8-bit grey.
    grey = np.asarray(Image.fromarray(chelsea).convert("L"))[::2, ::2]
    save_png(Image.fromarray(grey, "L"), os.path.join(d, "gray.png"))
    # 16-bit grey: full 0..65535 range, low byte non-trivial.
    r = rng(7)
    g16 = (np.asarray(a.convert("L")).astype(np.uint32) * 257 + r.integers(0, 257, (256, 256))).clip(0, 65535)
    g16 = g16[:200, :240].astype(np.uint16)
    Image.fromarray(g16).save(os.path.join(d, "gray16.png"), format="PNG", compress_level=9)
    # EXIF orientation 6 ("rotate 90 CW to display"): stored 320x240 landscape, displayed 240x320.
    crop = Image.fromarray(chelsea[0:240, 60:380])
    exif = Image.Exif()
    exif[0x0112] = 6
    crop.save(os.path.join(d, "exif6.jpg"), format="JPEG", quality=90, exif=exif.tobytes())
    # Panorama 4000x1000: smooth gradients + a few shapes (compresses well).
    yy, xx = np.mgrid[0:1000, 0:4000].astype(np.float32)
    pano = np.stack([
        128 + 100 * np.sin(xx / 300.0),
        128 + 100 * np.cos(yy / 150.0 + xx / 900.0),
        (xx / 4000.0 * 255),
    ], -1)
    pano[300:700, 500:900] = [250, 30, 30]
    pano[200:800, 2000:2100] = [20, 20, 20]
    pano[100:300, 3500:3900] = [30, 200, 60]
    Image.fromarray(pano.clip(0, 255).astype(np.uint8)).save(os.path.join(d, "panorama.jpg"),
                                                             format="JPEG", quality=75)


def main():
    from transformers import SiglipImageProcessor
    from transformers.image_utils import load_image, PILImageResampling
    from transformers.image_transforms import resize

    d = os.path.join(FIX, "images")
    os.makedirs(os.path.join(d, "expected"), exist_ok=True)
    make_sources(d)
    stems = ["astronaut.png", "chelsea.png", "rocket.jpg", "rgba.png", "gray.png", "gray16.png", "exif6.jpg",
             "panorama.jpg"]
    entries = []
    for name in stems:
        p = os.path.join(d, name)
        raw = Image.open(p)
        img = load_image(p)  # exif_transpose + convert("RGB") (what transformers does)
        e = {"file": name, "width": raw.size[0], "height": raw.size[1], "mode": raw.mode,
             "loaded_width": img.size[0], "loaded_height": img.size[1], "expected": {}}
        if name in REAL:
            e["source"], e["licence"] = REAL[name]
        else:
            e["source"], e["licence"] = "made by tests/reference/make_images.py", "CC0 (generated)"
        if name == "exif6.jpg":
            e["exif_orientation"] = 6
        if name == "gray16.png":
            e["deliberately_differ"] = ("PIL convert('RGB') of a 16-bit image clips values to 255; the "
                                        "expected/ files record that clipped reference; our code scales by 1/257")
        if name == "rgba.png":
            e["note"] = "PIL convert('RGB') drops alpha (no compositing onto a background)"
        for s in SIZES:
            proc = SiglipImageProcessor(size={"height": s, "width": s}, resample=PILImageResampling.BICUBIC,
                                        do_convert_rgb=True)
            pv = proc(images=img, return_tensors="np")["pixel_values"][0]  # (3,S,S) float32
            arr = np.asarray(img)
            u8 = resize(arr, (s, s), resample=PILImageResampling.BICUBIC)  # HF's own PIL path -> uint8
            assert u8.dtype == np.uint8 and u8.shape == (s, s, 3)
            recon = ((u8.astype(np.float32) * np.float32(1 / 255) - 0.5) / 0.5).transpose(2, 0, 1)
            err = float(np.abs(recon - pv).max())
            assert err < 1e-6, (name, s, err)
            out = f"expected/{os.path.splitext(name)[0]}_{s}.png"
            save_png(Image.fromarray(u8, "RGB"), os.path.join(d, out))
            e["expected"][str(s)] = out
        entries.append(e)
    write_json(os.path.join(d, "images.json"), {
        "loader": "transformers.image_utils.load_image (PIL.Image.open, ImageOps.exif_transpose, convert('RGB'))",
        "processor": "transformers.SiglipImageProcessor (PIL-based, not the torchvision 'Fast' class), "
                     "resample=3 BICUBIC, size SxS (aspect not kept)",
        "pixel_values_formula": "((u8 / 255) - 0.5) / 0.5 in float32, channels-first; max |err| < 1e-6",
        "sizes": SIZES, "pillow": PIL.__version__, "images": entries}, indent=1)
    print("images:", [(e["file"], e["mode"]) for e in entries])


if __name__ == "__main__":
    main()
