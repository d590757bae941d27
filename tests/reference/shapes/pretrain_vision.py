"""Stage 0 of the shapes model: pre-trains its SigLIP-style vision tower alone, as PaliGemma starts from a
pre-trained SigLIP encoder rather than a random one.

The objective is dense labelling: a linear head (discarded afterwards) predicts, from each of the 7x7
image tokens, the shape class (background or one of the 4 shapes) and the colour class (background or
one of the 5 colours) of each of the 4x4 sub-blocks of its 16x16 patch (4x4 pixels each, on the
112x112 model input); and, by regression, the token's own place (patch row and column as fractions of
the image) and, where an object covers some of the patch, that object's box (y1, x1, y2, x2 as
fractions of the image: the loc-token values / 1023); and, per shape class, whether the box centre of an
object of that class lies in the patch (one token per object: with them a plain average over the
image tokens counts the objects of a class). A token then says what is in its patch and
where, at 4-pixel resolution, which shape a plain inside patch belongs to (that needs the neighbours:
attention), and which box it is part of: the language model reads an object's box from any of its
tokens, and its place from every token (the decoder's values carry no position of their own). Trained on a fixed
pool of scenes (seeds VISION_SEED0 + i, disjoint from the held-out and the VQ-VAE seeds).

Writes <build>/vision.pt (the vision tower's state dict after the train_model.py initialisation and this
training), which train_model.py loads.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
import train_model as tm  # noqa: E402

VISION_SEED0 = 20_000_000
N_SCENES = int(os.environ.get("PG_SHAPES_VISION_SCENES", "12000"))
STEPS = int(os.environ.get("PG_SHAPES_VISION_STEPS", "3000"))
BATCH, LR, WARMUP = 32, 2e-3, 50
SUB = 4  # sub-blocks per patch side
BOX_WEIGHT = 2.0
N_COLOURS = len(scenes.COLOURS)


def cell_coverage(o, side):
    """An object's visible mask resized to the model's square input at cell resolution (side x side):
    the covered fraction of each cell, as uint8 0..255."""
    return np.asarray(Image.fromarray(o["mask"].astype(np.uint8) * 255, "L").resize((side, side), Image.BOX))


def label_maps(sc, covs, side):
    """(side, side) shape classes (0 background, 1..4) and colour classes (0 background, 1..5) of the
    scene: the class covering most of each cell."""
    shape_cov = np.zeros((len(scenes.SHAPES) + 1, side, side), np.float32)
    colour_cov = np.zeros((N_COLOURS + 1, side, side), np.float32)
    occupied = np.zeros((side, side), np.float32)
    for o, c in zip(sc["objects"], covs):
        cov = c.astype(np.float32) / 255.0
        shape_cov[scenes.SHAPES.index(o["shape"]) + 1] += cov
        colour_cov[list(scenes.COLOURS).index(o["colour"]) + 1] += cov
        occupied += cov
    shape_cov[0] = 1.0 - occupied
    colour_cov[0] = 1.0 - occupied
    return shape_cov.argmax(0), colour_cov.argmax(0)


def box_targets(sc, covs, grid):
    """(tokens, 4) box (y1, x1, y2, x2 fractions) of the object covering most of each patch; (tokens,)
    1 where an object covers at least 2 of the patch's SUB*SUB cells (else no box target); and
    (tokens, 4 shapes) 1 where the box centre of an object of that shape lies in the patch."""
    w, h = sc["width"], sc["height"]
    best = np.zeros(grid * grid, np.float32)
    box = np.zeros((grid * grid, 4), np.float32)
    centre = np.zeros((grid * grid, len(scenes.SHAPES)), np.float32)
    for o, c in zip(sc["objects"], covs):
        cells = (c >= 128).reshape(grid, SUB, grid, SUB).sum((1, 3)).reshape(-1)
        x1, y1, x2, y2 = o["box"]
        take = cells > best
        best[take] = cells[take]
        box[take] = [y1 / h, x1 / w, y2 / h, x2 / w]
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        centre[min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1), scenes.SHAPES.index(o["shape"])] = 1
    return box, (best >= 2).astype(np.float32), centre


def pool(proc, n):
    """Pixel values (n, 3, S, S) and the targets: per-token cell classes (n, tokens, SUB*SUB) for shapes
    and colours, boxes (n, tokens, 4) with their weights (n, tokens), and centre flags (n, tokens, 4)."""
    S, P = tm.CFG["image"], tm.CFG["patch"]
    side, grid = S // P * SUB, S // P
    # (grid*SUB, grid*SUB) -> (grid*grid tokens, SUB*SUB cells), tokens row-major as the patches are
    to_tokens = lambda a: a.reshape(grid, SUB, grid, SUB).transpose(0, 2, 1, 3).reshape(grid * grid, SUB * SUB)
    px, shp, col, boxes, has, centres = [], [], [], [], [], []
    for i in range(n):
        sc = scenes.make_scene(VISION_SEED0 + i)
        px.append(proc(images=[sc["image"]], return_tensors="pt")["pixel_values"][0])
        covs = [cell_coverage(o, side) for o in sc["objects"]]
        s, c = label_maps(sc, covs, side)
        shp.append(to_tokens(s))
        col.append(to_tokens(c))
        b, k, c = box_targets(sc, covs, grid)
        boxes.append(b)
        has.append(k)
        centres.append(c)
    t = lambda a: torch.from_numpy(np.stack(a))
    return torch.stack(px), (t(shp).long(), t(col).long(), t(boxes), t(has), t(centres))


def main():
    from transformers import PaliGemmaForConditionalGeneration, SiglipImageProcessor
    torch.set_num_threads(int(os.environ.get("PG_SHAPES_THREADS", "1")))
    torch.manual_seed(tm.SEED + 1)
    torch.use_deterministic_algorithms(True)
    g = torch.Generator().manual_seed(tm.SEED)
    t0 = time.time()
    proc = SiglipImageProcessor(size={"height": tm.CFG["image"], "width": tm.CFG["image"]}, resample=3,
                                image_mean=[0.5] * 3, image_std=[0.5] * 3)
    px, targets = pool(proc, N_SCENES)
    print(f"vision: {N_SCENES} scenes ({time.time() - t0:.0f}s)", flush=True)
    model = PaliGemmaForConditionalGeneration(tm.hf_config())
    tm.init_special_embeddings(model, g)
    tm.init_patch_embedding(model)
    vision = model.model.vision_tower
    d = tm.CFG["v_hidden"]
    head = torch.nn.Linear(d, SUB * SUB * (len(scenes.SHAPES) + 1 + N_COLOURS + 1) + 2 + 4 + len(scenes.SHAPES))
    params = list(vision.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    r = np.random.default_rng(tm.SEED)
    n_val = 256
    for step in range(STEPS):
        lr = LR * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / STEPS))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.from_numpy(r.integers(n_val, N_SCENES, BATCH))
        loss, _ = dense_loss(vision, head, px[idx], [a[idx] for a in targets])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 250 == 0 or step == STEPS - 1:
            with torch.no_grad():
                vl, acc = dense_loss(vision, head, px[:n_val], [a[:n_val] for a in targets])
            print(f"vision step {step} loss {loss.item():.4f} val {vl.item():.4f} shape-cell accuracy "
                  f"{acc[0]:.4f} (object cells {acc[1]:.4f}) colour-cell accuracy {acc[2]:.4f} place L1 {acc[3]:.4f} "
                  f"box L1 {acc[4]:.4f} centre recall {acc[5]:.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    os.makedirs(tm.BUILD, exist_ok=True)
    torch.save(vision.state_dict(), os.path.join(tm.BUILD, "vision.pt"))
    print(f"vision: saved {os.path.join(tm.BUILD, 'vision.pt')} ({time.time() - t0:.0f}s)")


def dense_loss(vision, head, px, targets):
    """Cross-entropy of the per-cell shape and colour classes + the L1 error of each token's place +
    BOX_WEIGHT x the L1 error of the boxes + 4 x the centre flags' binary cross-entropy; and (all-cell shape
    accuracy, shape accuracy on object cells, colour accuracy, place L1, box L1, centre-flag recall)."""
    shp, col, box, has, centre = targets
    feats = vision(pixel_values=px).last_hidden_state  # (B, tokens, d)
    n_s, n_c = len(scenes.SHAPES) + 1, N_COLOURS + 1
    raw = head(feats)
    cells = SUB * SUB * (n_s + n_c)
    out = raw[..., :cells].reshape(*feats.shape[:2], SUB * SUB, n_s + n_c)
    ls, lc = out[..., :n_s], out[..., n_s:]
    grid = tm.CFG["image"] // tm.CFG["patch"]
    t = torch.arange(grid * grid)
    place = torch.stack([(t // grid + 0.5) / grid, (t % grid + 0.5) / grid], 1)
    place_l1 = (raw[..., cells:cells + 2] - place).abs().mean()
    at = has > 0
    box_l1 = (raw[..., cells + 2:cells + 6][at] - box[at]).abs().mean()
    centre_logits = raw[..., cells + 6:]
    loss = F.cross_entropy(ls.reshape(-1, n_s), shp.reshape(-1)) + F.cross_entropy(lc.reshape(-1, n_c), col.reshape(-1)) \
        + place_l1 + BOX_WEIGHT * box_l1 + 4 * F.binary_cross_entropy_with_logits(centre_logits, centre)
    ps, pc = ls.argmax(-1), lc.argmax(-1)
    obj = shp > 0
    acc = (float((ps == shp).float().mean()), float((ps == shp)[obj].float().mean()), float((pc == col).float().mean()),
           float(place_l1.detach()), float(box_l1.detach()), float((centre_logits > 0)[centre > 0].float().mean()))
    return loss, acc


if __name__ == "__main__":
    main()
