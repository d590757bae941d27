"""Trains the shapes VQ-VAE on scene masks (64x64 crops -> 4x4 grid of 16 codes out of 128).

The decoder has big_vision's vae-oid layout (model-reference.md section 4): conv 1x1 D->128, 2 residual
blocks, 4 transposed convs 128->128->64->32->16, conv 1x1 16->1. It is trained narrow (32, 32, 16, 16, 8
live channels) and written at the full vae-oid widths with the other channels zero: zero weights and
biases keep those channels at 0 through every ReLU, so the full-width decoder computes exactly the
narrow one, and `pg convert --vae` reads the file unchanged. The zeros deflate to almost nothing.

Writes: <fixtures>/models/shapes/vae.npz (decoder + codebook, vae-oid key names, float32) and
<build>/vq_encoder.pt (encoder + codebook, used by train_model.py to make seg-token targets).
"""
import io
import os
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FIX = os.environ.get("PG_FIXTURES_DIR") or os.path.join(REPO, "tests", "fixtures")
BUILD = os.environ.get("PG_SHAPES_BUILD") or "/root/.cache/pg/shapes-build"
D = 16  # codebook width (vae-oid: 512; any width is read by lib/vqvae/weights.ts)
LIVE = dict(c0=32, c1=32, c2=16, c3=16, c4=8)
SEED, N_SCENES, STEPS, BATCH = 7001, 2500, 700, 32


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 1))

    def forward(self, x):
        return x + self.net(x)


def decoder(d, c0, c1, c2, c3, c4):
    """vae-oid decoder indices: 0 conv, 2-3 resblocks, 4/6/8/10 transposed convs, 12 conv."""
    return nn.Sequential(
        nn.Conv2d(d, c0, 1), nn.ReLU(), ResBlock(c0), ResBlock(c0),
        nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c2, c3, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c3, c4, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c4, 1, 1))


def encoder(d):
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, d, 1))


def quantise(z, book):
    """z (B,D,4,4) -> nearest codes (B,16) row-major, and the quantised grid."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    idx = torch.cdist(flat, book).argmin(1)
    q = book[idx].reshape(z.shape[0], 4, 4, -1).permute(0, 3, 1, 2)
    return idx.reshape(z.shape[0], 16), q


def encode_codes(enc, book, m64):
    """m64: (B,64,64) floats in [0,1] -> (B,16) int codes."""
    with torch.no_grad():
        z = enc(torch.from_numpy(np.asarray(m64, np.float32))[:, None] * 2 - 1)
        return quantise(z, book)[0].numpy()


def load_encoder():
    """The trained encoder and codebook from <build>/vq_encoder.pt (written by main())."""
    state = torch.load(os.path.join(BUILD, "vq_encoder.pt"))
    enc = encoder(D)
    enc.load_state_dict(state["encoder"])
    return enc, state["book"]


def decode(dec, book, codes):
    q = book[torch.as_tensor(codes)].reshape(-1, 4, 4, book.shape[1]).permute(0, 3, 1, 2)
    return dec(q)[:, 0]


def mask_dataset():
    out = []
    for i in range(N_SCENES):
        sc = scenes.make_scene(SEED * 1000 + i)
        for o in sc["objects"]:
            out.append(scenes.mask_crop64(o["mask"], o["box"]))
    return np.stack(out)


def full_width(dec):
    """The narrow decoder's weights at vae-oid widths (zeros elsewhere), as numpy float32 by vae-oid key."""
    full = decoder(D, 128, 128, 64, 32, 16).state_dict()
    out = {}
    for k, v in full.items():
        z = torch.zeros_like(v)
        small = dec.state_dict()[k]
        z[tuple(slice(0, n) for n in small.shape)] = small
        out["decoder." + k] = z.numpy().astype(np.float32)
    return out


def save_npz_deflated(path, arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[k], allow_pickle=False)
            zi = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main():
    torch.set_num_threads(2)  # the committed vae.npz was trained with 2 threads (sums in that order)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    masks = mask_dataset()
    print(f"vqvae: {len(masks)} masks from {N_SCENES} scenes ({time.time() - t0:.0f}s)", flush=True)
    enc, dec = encoder(D), decoder(D, **LIVE)
    book = nn.Parameter(torch.randn(128, D) * 0.5)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()) + [book], lr=2e-3)
    r = np.random.default_rng(SEED)
    x_all = torch.from_numpy(masks)[:, None] * 2 - 1
    for step in range(STEPS):
        x = x_all[torch.from_numpy(r.integers(0, len(masks), BATCH))]
        z = enc(x)
        if step == 0:  # codebook initialised from encoder outputs (no dead codes at the start)
            with torch.no_grad():
                flat = z.permute(0, 2, 3, 1).reshape(-1, D)
                book.data.copy_(flat[torch.from_numpy(r.integers(0, len(flat), 128))] + 0.01 * torch.randn(128, D))
        _, q = quantise(z, book)
        qst = z + (q - z).detach()
        y = dec(qst)
        loss = F.mse_loss(y, x) + F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * (step + 1) / STEPS))
        if step % 100 == 0 or step == STEPS - 1:
            print(f"vqvae step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    with torch.no_grad():
        codes = encode_codes(enc, book.data, masks)
        rec = decode(dec, book.data, codes).numpy() > 0
        gt = masks > 0.5
        iou = (rec & gt).sum((1, 2)) / np.maximum((rec | gt).sum((1, 2)), 1)
    used = len(np.unique(codes))
    print(f"vqvae: mean 64x64 reconstruction IoU {iou.mean():.4f} (min {iou.min():.3f}), {used} codes used")
    w = full_width(dec)
    w["_vq_vae._embedding"] = book.data.numpy().astype(np.float32)
    # The full-width decoder must compute what the narrow one does.
    full = decoder(D, 128, 128, 64, 32, 16)
    full.load_state_dict({k[len("decoder."):]: torch.from_numpy(v) for k, v in w.items() if k.startswith("decoder.")})
    with torch.no_grad():
        a = decode(dec, book.data, codes[:64]).numpy()
        b = decode(full, book.data, codes[:64]).numpy()
    assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
    save_npz_deflated(os.path.join(FIX, "models", "shapes", "vae.npz"), w)
    os.makedirs(BUILD, exist_ok=True)
    torch.save({"encoder": enc.state_dict(), "book": book.data.clone(), "iou": float(iou.mean())},
               os.path.join(BUILD, "vq_encoder.pt"))


if __name__ == "__main__":
    main()
