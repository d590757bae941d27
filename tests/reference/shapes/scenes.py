"""Seeded generator of shape scenes with exact boxes and masks, and PaliGemma task strings for them.

A scene: 1-3 shapes (circle, square, triangle, star) in 5 colours on a plain or noisy grey
background, rendered at one of several sizes and aspect ratios. Everything is a function of the
seed (numpy PCG64), so the training stream and the held-out set are reproducible.
"""
import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "white": (245, 245, 245),
}
SIZES = [(112, 112), (144, 112), (112, 144), (168, 126), (128, 96)]  # (width, height)
SS = 4  # supersampling for the polygon/ellipse edges; masks are the thresholded coverage


def shape_polygon(kind, cx, cy, r):
    """Outline of a shape of 'radius' r centred at (cx, cy), in pixel units (None for circle)."""
    if kind == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if kind == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    if kind == "star":
        pts = []
        for i in range(10):
            a = -np.pi / 2 + i * np.pi / 5
            rr = r if i % 2 == 0 else r * 0.45
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
        return pts
    return None


def shape_mask(kind, cx, cy, r, w, h):
    """Boolean (h, w) mask of one shape: coverage of the supersampled drawing >= 1/2."""
    img = Image.new("L", (w * SS, h * SS), 0)
    d = ImageDraw.Draw(img)
    if kind == "circle":
        d.ellipse([(cx - r) * SS, (cy - r) * SS, (cx + r) * SS, (cy + r) * SS], fill=255)
    else:
        d.polygon([(x * SS, y * SS) for x, y in shape_polygon(kind, cx, cy, r)], fill=255)
    cov = np.asarray(img, np.float32).reshape(h, SS, w, SS).mean(axis=(1, 3)) / 255.0
    return cov >= 0.5, cov


def box_of(mask):
    """Pixel box [x1, y1, x2, y2] of a mask, x2/y2 exclusive."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def make_scene(seed):
    """One scene: dict(image=PIL RGB, width, height, objects=[{shape, colour, box, mask}]).

    Objects are in drawing order; masks are the visible parts (a later shape covers an earlier one).
    """
    r = np.random.default_rng(seed)
    w, h = SIZES[r.integers(len(SIZES))]
    n = int(r.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    allow_overlap = r.random() < 0.15
    placed = []
    tries = 0
    while len(placed) < n and tries < 200:
        tries += 1
        rad = r.uniform(0.12, 0.22) * min(w, h)
        cx, cy = r.uniform(rad + 1, w - rad - 1), r.uniform(rad + 1, h - rad - 1)
        ok = True
        for (_, _, px, py, pr) in placed:
            dist = np.hypot(cx - px, cy - py)
            need = (rad + pr) * (0.7 if allow_overlap else 1.08)
            if dist < need:
                ok = False
        if ok:
            kind = SHAPES[r.integers(len(SHAPES))]
            colour = list(COLOURS)[r.integers(len(COLOURS))]
            placed.append((kind, colour, cx, cy, rad))
    grey = int(r.integers(20, 110))
    bg = np.full((h, w, 3), grey, np.float32)
    if r.random() < 0.5:
        bg += r.normal(0, r.uniform(4, 14), (h, w, 1)) + r.normal(0, 3, (h, w, 3))
    if r.random() < 0.3:  # a soft tint
        bg += r.uniform(-15, 15, 3)
    img = bg
    visible = []
    for kind, colour, cx, cy, rad in placed:
        m, cov = shape_mask(kind, cx, cy, rad, w, h)
        col = np.array(COLOURS[colour], np.float32)
        img = img * (1 - cov[..., None]) + col * cov[..., None]
        visible = [v & ~m for v in visible]
        visible.append(m)
    objects = []
    for (kind, colour, _, _, _), m in zip(placed, visible):
        if m.sum() < 12:
            continue  # fully hidden: not part of the scene
        objects.append(dict(shape=kind, colour=colour, box=box_of(m), mask=m))
    image = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")
    return dict(image=image, width=w, height=h, objects=objects)


def left_to_right(objects):
    return sorted(objects, key=lambda o: ((o["box"][0] + o["box"][2]) / 2, o["box"][1]))


def caption(scene):
    """'a red circle and a blue square' / 'a red circle, a blue square and a white star' (left to right)."""
    parts = [f"a {o['colour']} {o['shape']}" for o in left_to_right(scene["objects"])]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def count(scene, kind):
    return str(sum(o["shape"] == kind for o in scene["objects"]))


def box_fractions(box, w, h):
    """A pixel box [x1, y1, x2, y2] as PaliGemma orders and scales it: [y1, x1, y2, x2] / size."""
    x1, y1, x2, y2 = box
    return [y1 / h, x1 / w, y2 / h, x2 / w]


def loc_tokens(box, w, h):
    """big_vision order and rounding: (y1, x1, y2, x2) / size, round(v * 1023), clipped."""
    return "".join(f"<loc{int(np.clip(round(v * 1023), 0, 1023)):04d}>" for v in box_fractions(box, w, h))


def objects_for(scene, labels):
    """Objects whose shape is in labels, left to right."""
    return [o for o in left_to_right(scene["objects"]) if o["shape"] in labels]


def detect_target(scene, labels):
    w, h = scene["width"], scene["height"]
    return " ; ".join(loc_tokens(o["box"], w, h) + " " + o["shape"] for o in objects_for(scene, labels))


def segment_object(scene, o, codes):
    """One object's part of a segment answer: 4 loc tokens, 16 seg tokens (its VQ-VAE codes), label."""
    seg = "".join(f"<seg{int(c):03d}>" for c in codes)
    return loc_tokens(o["box"], scene["width"], scene["height"]) + seg + " " + o["shape"]


def segment_target(scene, labels, codes_of):
    """codes_of(object) -> 16 ints (the VQ-VAE codes of the object's mask in its box)."""
    return " ; ".join(segment_object(scene, o, codes_of(o)) for o in objects_for(scene, labels))


def mask_crop64(mask, box):
    """The mask inside its box, resized to 64x64 (bilinear, antialiased), in [0, 1]."""
    x1, y1, x2, y2 = box
    crop = Image.fromarray(mask[y1:y2, x1:x2].astype(np.uint8) * 255, "L")
    return np.asarray(crop.resize((64, 64), Image.BILINEAR), np.float32) / 255.0


def label_list(r, scene, k_max=4):
    """A random label list for detect/segment: the present shapes, sometimes some absent ones, shuffled;
    with probability 0.35 all four in the canonical order (the evaluation prompt)."""
    if r.random() < 0.35:
        return list(SHAPES)
    present = sorted({o["shape"] for o in scene["objects"]}, key=SHAPES.index)
    labels = [s for s in present if r.random() < 0.85] or [present[r.integers(len(present))]]
    for s in SHAPES:
        if s not in labels and r.random() < 0.3:
            labels.append(s)
    if r.random() < 0.1:  # only absent shapes: the answer is empty
        absent = [s for s in SHAPES if s not in present]
        if absent:
            labels = [absent[r.integers(len(absent))]]
    r.shuffle(labels)
    return labels[:k_max]
