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
tokens, and its place from every token (the decoder's values carry no position of their own).

Every token also predicts the whole scene, as a pooled image embedding would: the number of objects
of each shape (0-3), and the shape, colour and box of the first, second and third object from the
left (the caption's and detect's order; class "none" past the last object). The language model then
reads a count, or the n-th object of a caption, from any image token instead of learning to gather
and sort the objects itself (without these targets counts stayed at the language prior). As a step
towards that order, an object's own tokens also say its place from the left (1-3).

Trained on a fixed pool of scenes (seeds VISION_SEED0 + i, disjoint from the held-out and the VQ-VAE
seeds), made in 2 processes; the steps run on PG_SHAPES_THREADS torch threads (2: deterministic for a
given thread count).

Writes <build>/vision.pt (the vision tower's state dict after the train_model.py initialisation and this
training), which train_model.py loads.
"""
import math
import multiprocessing
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
N_SCENES = int(os.environ.get("PG_SHAPES_VISION_SCENES", "24000"))
STEPS = int(os.environ.get("PG_SHAPES_VISION_STEPS", "6000"))
BATCH, LR, WARMUP = 32, 2e-3, 50
SUB = 4  # sub-blocks per patch side
SLOTS = 3  # objects per scene at most
BOX_WEIGHT = 2.0
N_COLOURS = len(scenes.COLOURS)
N_CLS_S, N_CLS_C = len(scenes.SHAPES) + 1, N_COLOURS + 1  # shape and colour classes, 0 = none
# The head's outputs per token, in order: per cell shape + colour logits; place (2); box (4); centre flags
# (per shape); place from the left (0 none, 1..SLOTS); per-shape count logits (0..SLOTS); per slot shape
# + colour logits and box (4).
HEAD = [("cells", SUB * SUB * (N_CLS_S + N_CLS_C)), ("place", 2), ("box", 4), ("centre", len(scenes.SHAPES)),
        ("rank", SLOTS + 1), ("counts", len(scenes.SHAPES) * (SLOTS + 1)), ("slots", SLOTS * (N_CLS_S + N_CLS_C + 4))]


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
    (tokens, 4 shapes) 1 where the box centre of an object of that shape lies in the patch; (tokens,)
    the place from the left (1..SLOTS) of the object with the box target, 0 where there is none."""
    w, h = sc["width"], sc["height"]
    order = {id(o): i + 1 for i, o in enumerate(scenes.left_to_right(sc["objects"]))}
    best = np.zeros(grid * grid, np.float32)
    rank = np.zeros(grid * grid, np.int64)
    box = np.zeros((grid * grid, 4), np.float32)
    centre = np.zeros((grid * grid, len(scenes.SHAPES)), np.float32)
    for o, c in zip(sc["objects"], covs):
        cells = (c >= 128).reshape(grid, SUB, grid, SUB).sum((1, 3)).reshape(-1)
        x1, y1, x2, y2 = o["box"]
        take = cells > best
        best[take] = cells[take]
        box[take] = scenes.box_fractions(o["box"], w, h)
        rank[take] = order[id(o)]
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        centre[min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1), scenes.SHAPES.index(o["shape"])] = 1
    has = best >= 2
    return box, has.astype(np.float32), centre, np.where(has, rank, 0)


def scene_targets(sc):
    """Whole-scene targets every token predicts: (4,) per-shape counts (0..3); (SLOTS, 2) shape and
    colour class (0 none) of the objects left to right (the caption's order, and detect's); (SLOTS, 4)
    their boxes (y1, x1, y2, x2 fractions), zero where the slot is empty."""
    w, h = sc["width"], sc["height"]
    counts = np.array([int(scenes.count(sc, s)) for s in scenes.SHAPES], np.int64)
    cls = np.zeros((SLOTS, 2), np.int64)
    box = np.zeros((SLOTS, 4), np.float32)
    for i, o in enumerate(scenes.left_to_right(sc["objects"])[:SLOTS]):
        cls[i] = [scenes.SHAPES.index(o["shape"]) + 1, list(scenes.COLOURS).index(o["colour"]) + 1]
        box[i] = scenes.box_fractions(o["box"], w, h)
    return counts, cls, box


def pool(proc, n):
    """Pixel values (n, 3, S, S) and the targets: per-token cell classes (n, tokens, SUB*SUB) for shapes
    and colours, boxes (n, tokens, 4) with their weights (n, tokens), centre flags (n, tokens, 4), places
    from the left (n, tokens), and the scene targets: counts (n, 4), slot classes (n, SLOTS, 2) and slot
    boxes (n, SLOTS, 4)."""
    S, P = tm.CFG["image"], tm.CFG["patch"]
    side, grid = S // P * SUB, S // P
    # (grid*SUB, grid*SUB) -> (grid*grid tokens, SUB*SUB cells), tokens row-major as the patches are
    to_tokens = lambda a: a.reshape(grid, SUB, grid, SUB).transpose(0, 2, 1, 3).reshape(grid * grid, SUB * SUB)
    px, shp, col, boxes, has, centres, ranks, counts, slots, slot_boxes = [], [], [], [], [], [], [], [], [], []
    with multiprocessing.Pool(2) as workers:  # the scenes are made in 2 processes (each from its seed)
        made = workers.map(scenes.make_scene, range(VISION_SEED0, VISION_SEED0 + n), chunksize=256)
    for sc in made:
        px.append(proc(images=[sc["image"]], return_tensors="pt")["pixel_values"][0])
        covs = [cell_coverage(o, side) for o in sc["objects"]]
        s, c = label_maps(sc, covs, side)
        shp.append(to_tokens(s))
        col.append(to_tokens(c))
        b, k, c, o = box_targets(sc, covs, grid)
        boxes.append(b)
        has.append(k)
        centres.append(c)
        ranks.append(o)
        cnt, cls, slot_box = scene_targets(sc)
        counts.append(cnt)
        slots.append(cls)
        slot_boxes.append(slot_box)
    t = lambda a: torch.from_numpy(np.stack(a))
    return torch.stack(px), (t(shp).long(), t(col).long(), t(boxes), t(has), t(centres), t(ranks), t(counts), t(slots),
                             t(slot_boxes))


def main():
    from transformers import PaliGemmaForConditionalGeneration, SiglipImageProcessor
    torch.set_num_threads(int(os.environ.get("PG_SHAPES_THREADS", "2")))
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
    head = torch.nn.Linear(d, sum(n for _, n in HEAD))
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
                  f"box L1 {acc[4]:.4f} centre recall {acc[5]:.4f} counts {acc[6]:.4f} slots {acc[7]:.4f} "
                  f"slot box L1 {acc[8]:.4f} rank {acc[9]:.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    os.makedirs(tm.BUILD, exist_ok=True)
    torch.save(vision.state_dict(), os.path.join(tm.BUILD, "vision.pt"))
    print(f"vision: saved {os.path.join(tm.BUILD, 'vision.pt')} ({time.time() - t0:.0f}s)")


def dense_loss(vision, head, px, targets):
    """Cross-entropy of the per-cell shape and colour classes + the L1 error of each token's place +
    BOX_WEIGHT x the L1 error of the boxes + 4 x the centre flags' binary cross-entropy + the
    cross-entropy of the object's place from the left + the scene targets at every token
    (cross-entropy of the per-shape counts and of the slots' shape and colour classes, BOX_WEIGHT x
    the L1 error of the slots' boxes); and (all-cell shape accuracy, shape accuracy on object cells,
    colour accuracy, place L1, box L1, centre-flag recall, count accuracy, slot class accuracy on
    filled slots, slot box L1, place-from-the-left accuracy on object tokens), the scene figures over
    all tokens."""
    shp, col, box, has, centre, rank, counts, slots, slot_box = targets
    feats = vision(pixel_values=px).last_hidden_state  # (B, tokens, d)
    B, T = feats.shape[:2]
    n_s, n_c, n_k = N_CLS_S, N_CLS_C, len(scenes.SHAPES)
    part = dict(zip([name for name, _ in HEAD], head(feats).split([n for _, n in HEAD], -1)))
    out = part["cells"].reshape(B, T, SUB * SUB, n_s + n_c)
    ls, lc = out[..., :n_s], out[..., n_s:]
    grid = tm.CFG["image"] // tm.CFG["patch"]
    t = torch.arange(grid * grid)
    place = torch.stack([(t // grid + 0.5) / grid, (t % grid + 0.5) / grid], 1)
    place_l1 = (part["place"] - place).abs().mean()
    at = has > 0
    box_l1 = (part["box"][at] - box[at]).abs().mean()
    centre_logits, rank_logits = part["centre"], part["rank"]
    count_logits = part["counts"].reshape(B, T, n_k, SLOTS + 1)
    slot_out = part["slots"].reshape(B, T, SLOTS, n_s + n_c + 4)
    each = lambda a: a[:, None].expand(B, T, *a.shape[1:])  # a scene target, at every token
    count_t, slot_t, slot_box_t = each(counts), each(slots), each(slot_box)
    filled = slot_t[..., 0] > 0
    slot_l1 = (slot_out[..., n_s + n_c:][filled] - slot_box_t[filled]).abs().mean()
    loss = F.cross_entropy(ls.reshape(-1, n_s), shp.reshape(-1)) + F.cross_entropy(lc.reshape(-1, n_c), col.reshape(-1)) \
        + place_l1 + BOX_WEIGHT * box_l1 + 4 * F.binary_cross_entropy_with_logits(centre_logits, centre) \
        + F.cross_entropy(rank_logits.reshape(-1, SLOTS + 1), rank.reshape(-1)) \
        + F.cross_entropy(count_logits.reshape(-1, SLOTS + 1), count_t.reshape(-1)) \
        + F.cross_entropy(slot_out[..., :n_s].reshape(-1, n_s), slot_t[..., 0].reshape(-1)) \
        + F.cross_entropy(slot_out[..., n_s:n_s + n_c].reshape(-1, n_c), slot_t[..., 1].reshape(-1)) \
        + BOX_WEIGHT * slot_l1
    ps, pc = ls.argmax(-1), lc.argmax(-1)
    obj = shp > 0
    slot_ok = (slot_out[..., :n_s].argmax(-1) == slot_t[..., 0]) & (slot_out[..., n_s:n_s + n_c].argmax(-1) == slot_t[..., 1])
    acc = (float((ps == shp).float().mean()), float((ps == shp)[obj].float().mean()), float((pc == col).float().mean()),
           float(place_l1.detach()), float(box_l1.detach()), float((centre_logits > 0)[centre > 0].float().mean()),
           float((count_logits.argmax(-1) == count_t).all(-1).float().mean()), float(slot_ok[filled].float().mean()),
           float(slot_l1.detach()), float((rank_logits.argmax(-1) == rank)[rank > 0].float().mean()))
    return loss, acc


if __name__ == "__main__":
    main()
