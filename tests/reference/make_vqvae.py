"""Part 5: random-weight VQ-VAE decoder laid out like big_vision's vae-oid.npz, its masks, pasted masks."""
import io
import os
import zipfile

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from safetensors.numpy import save_file

from common import FIX, rng, save_png, write_json

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
D_CODE = 512  # codebook width: 512 per a third-party port; not confirmed (kept a parameter)
N_SEQ, IMG_W, IMG_H = 20, 640, 480
Q = 1.0 / 1024  # every weight is a multiple of 2^-10 with |k| < 2048: exactly representable in fp16


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 1))

    def forward(self, x):
        return x + self.net(x)


def decoder(d):
    return nn.Sequential(
        nn.Conv2d(d, 128, 1), nn.ReLU(), ResBlock(128), ResBlock(128),
        nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 1, 1))


def make_weights():
    r = rng(505)
    dec = decoder(D_CODE)
    w = {"_vq_vae._embedding": r.normal(0, 1.0, (128, D_CODE))}
    for k, v in dec.state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("bias"):
            w["decoder." + k] = r.normal(0, 0.05, shape)
        else:
            if len(shape) == 4 and k in ("4.weight", "6.weight", "8.weight", "10.weight"):
                fan_in = shape[0] * 4  # ConvTranspose2d (I,O,kh,kw): each output sees I * (k/s)^2 inputs
            else:
                fan_in = shape[1] * shape[2] * shape[3]
            w["decoder." + k] = r.normal(0, np.sqrt(1.6 / fan_in), shape)
    # Quantise each tensor to a power-of-two grid of about std/8 (|k| < 2048 steps of >= 2^-10): every value
    # is exactly representable in float16, stored as float32; few distinct values so the npz deflates well.
    def quant(v):
        step = max(Q, 2.0 ** np.floor(np.log2(v.std() / 8))) if v.size > 1 else Q
        return (np.round(v / step).clip(-2047, 2047) * step).astype(np.float32)
    w = {k: quant(v) for k, v in w.items()}
    return w


def torch_decode(w, codes):
    dec = decoder(D_CODE)
    dec.load_state_dict({k[len("decoder."):]: torch.from_numpy(v) for k, v in w.items() if k.startswith("decoder.")})
    emb = torch.from_numpy(w["_vq_vae._embedding"])[torch.from_numpy(codes)]  # (B,16,D)
    x = emb.reshape(-1, 4, 4, D_CODE).permute(0, 3, 1, 2)  # row-major 4x4 grid, NHWC -> NCHW
    with torch.no_grad():
        return dec(x)[:, 0].numpy()  # (B,64,64)


def np_decode_flax_style(w, codes):
    """Independent float64 check in big_vision/flax terms: NHWC, HWIO kernels via transpose (2,3,1,0),
    ConvTranspose = lhs-dilated (stride 2) correlation, padding 2 each side, spatially flipped kernel."""
    def conv(x, k, b, pad):  # x (B,H,W,I), k (kh,kw,I,O)
        kh, kw = k.shape[:2]
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        H, W = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
        out = np.zeros((x.shape[0], H, W, k.shape[3]))
        for a in range(kh):
            for c in range(kw):
                out += xp[:, a:a + H, c:c + W, :] @ k[a, c]
        return out + b

    def convT(x, k_torch, b):  # k_torch (I,O,4,4) -> flax (kh,kw,O,I) -> flip, use as (kh,kw,I,O)
        kf = np.transpose(k_torch, (2, 3, 1, 0))[::-1, ::-1].transpose(0, 1, 3, 2)
        B, H, W, C = x.shape
        xd = np.zeros((B, 2 * H - 1, 2 * W - 1, C))
        xd[:, ::2, ::2] = x
        return conv(xd, kf, b, 2)

    g = lambda k: np.transpose(w["decoder." + k].astype(np.float64), (2, 3, 1, 0))
    bb = lambda k: w["decoder." + k].astype(np.float64)
    relu = lambda x: np.maximum(x, 0)
    x = w["_vq_vae._embedding"].astype(np.float64)[codes].reshape(-1, 4, 4, D_CODE)
    x = relu(conv(x, g("0.weight"), bb("0.bias"), 0))
    for blk in ("2", "3"):
        y = relu(conv(x, g(f"{blk}.net.0.weight"), bb(f"{blk}.net.0.bias"), 1))
        y = relu(conv(y, g(f"{blk}.net.2.weight"), bb(f"{blk}.net.2.bias"), 1))
        x = x + conv(y, g(f"{blk}.net.4.weight"), bb(f"{blk}.net.4.bias"), 0)
    for layer in ("4", "6", "8", "10"):
        x = relu(convT(x, w[f"decoder.{layer}.weight"].astype(np.float64), bb(f"{layer}.bias")))
    x = conv(x, g("12.weight"), bb("12.bias"), 0)
    return x[..., 0]


def save_npz_deflated(path, arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[k], allow_pickle=False)
            zi = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, buf.getvalue(), compresslevel=9)


def paste_big_vision(m64, loc, h, w):
    y1, x1, y2, x2 = [v / 1023 for v in loc]
    y1, x1, y2, x2 = int(y1 * h), int(x1 * w), int(y2 * h), int(x2 * w)
    m = Image.fromarray(m64.astype(np.float32), mode="F").resize([x2 - x1, y2 - y1], Image.BILINEAR)
    out = np.zeros((h, w), bool)
    out[y1:y2, x1:x2] = np.asarray(m) > 0.0
    return out, [x1, y1, x2, y2]


def paste_hf_demo(m64, loc, h, w):
    y1, x1, y2, x2 = [v / 1024 for v in loc]
    y1, x1, y2, x2 = round(y1 * h), round(x1 * w), round(y2 * h), round(x2 * w)  # Python round (half-even)
    u8 = (np.clip(m64 * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)
    m = Image.fromarray(u8).resize([x2 - x1, y2 - y1])  # default filter for mode L: BICUBIC
    out = np.zeros((h, w), bool)
    out[y1:y2, x1:x2] = np.asarray(m) / 255.0 > 0.5
    return out, [x1, y1, x2, y2]


def main():
    d = os.path.join(FIX, "vqvae")
    os.makedirs(os.path.join(d, "pasted"), exist_ok=True)
    w = make_weights()
    r = rng(606)
    codes = r.integers(0, 128, (N_SEQ, 16)).astype(np.int64)
    # Centre the final 1x1 conv's bias on these codes' median so masks are ~half inside, half outside.
    w["decoder.12.bias"] = np.zeros(1, np.float32)
    med = float(np.median(torch_decode(w, codes)))
    w["decoder.12.bias"] = np.array([-round(med / Q) * Q], np.float32)
    save_npz_deflated(os.path.join(d, "vae.npz"), w)
    masks = torch_decode(w, codes)
    ref = np_decode_flax_style(w, codes)
    err = float(np.abs(masks - ref).max() / np.abs(ref).max())
    assert err < 1e-5, err
    frac = float((masks > 0).mean())
    assert 0.2 < frac < 0.8, frac
    save_file({"masks": masks.astype(np.float32), "codes": codes}, os.path.join(d, "masks64.safetensors"))
    seqs = []
    for i in range(N_SEQ):
        while True:
            y1, y2 = sorted(r.integers(0, 1024, 2).tolist())
            x1, x2 = sorted(r.integers(0, 1024, 2).tolist())
            if y2 - y1 >= 80 and x2 - x1 >= 80:
                break
        loc = [y1, x1, y2, x2]
        bv, bv_box = paste_big_vision(masks[i], loc, IMG_H, IMG_W)
        hf, hf_box = paste_hf_demo(masks[i], loc, IMG_H, IMG_W)
        save_png(Image.fromarray(bv.astype(np.uint8) * 255, "L"), os.path.join(d, "pasted", f"{i}_big_vision.png"))
        save_png(Image.fromarray(hf.astype(np.uint8) * 255, "L"), os.path.join(d, "pasted", f"{i}_hf-demo.png"))
        seqs.append({"index": i, "codes": codes[i].tolist(), "loc": loc,
                     "text": "".join(f"<loc{v:04d}>" for v in loc) + "".join(f"<seg{v:03d}>" for v in codes[i]),
                     "box_big_vision_xyxy": bv_box, "box_hf_demo_xyxy": hf_box,
                     "pixels_big_vision": int(bv.sum()), "pixels_hf_demo": int(hf.sum())})
    write_json(os.path.join(d, "codes.json"), {
        "image_width": IMG_W, "image_height": IMG_H, "codebook_dim": D_CODE,
        "masks64": "masks64.safetensors: masks (20,64,64) float32 from the torch.nn decoder; codes (20,16) int64",
        "torch_vs_flax_style_numpy_max_rel": err, "fraction_positive": frac,
        "big_vision": "loc/1023, int() truncation, PIL 'F' BILINEAR resize to (x2-x1, y2-y1), > 0.0",
        "hf_demo": "loc/1024, Python round(), clip(m*0.5+0.5,0,1)*255 -> uint8 (truncating), PIL 'L' resize "
                   "default filter (BICUBIC), /255 > 0.5",
        "png": "pasted/<i>_<convention>.png: mode L, 255 = inside mask, 0 = outside, 640x480",
        "sequences": seqs}, indent=1)
    print(f"vqvae: torch vs flax-style numpy {err:.2e}, fraction>0 {frac:.2f}")


if __name__ == "__main__":
    main()
