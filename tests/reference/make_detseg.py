"""Part 6: detection/segmentation answer strings and the objects expected under both conventions.

This is a reference parser written from the answer grammar of issue 6; its rules are stored in cases.json.
"""
import os
import re

from common import FIX, prng, write_json

RULES = [
    "Split the answer at every ';'; trim whitespace from each piece; drop empty pieces.",
    "A piece without any <locNNNN> token is text: appended (trimmed) to 'text'.",
    "Text before the first <locNNNN> of a piece, trimmed, if non-empty, is appended to 'text'.",
    "An object: a run of adjacent <locNNNN> tokens, optional whitespace, a run of adjacent <segNNN> tokens "
    "(possibly empty), then the label = the text up to the next <locNNNN> or the end of the piece, trimmed. "
    "A further <locNNNN> in the same piece starts another object (no ';' needed).",
    "Checks, in this order, first failure wins (object goes to 'skipped' with that reason): loc count == 4 "
    "('loc_count'); every loc value <= 1023 ('loc_range'); seg count == 16 in segment mode, 0 or 16 in detect "
    "mode ('seg_count'); every seg value <= 127 ('seg_range'); y_max > y_min ('y_order'); x_max > x_min "
    "('x_order').",
    "big_vision: n = v/1023; pixels x1 = trunc(n_xmin*W), y1 = trunc(n_ymin*H), x2 = trunc(n_xmax*W), "
    "y2 = trunc(n_ymax*H) (float64).",
    "hf-demo: n = v/1024; pixels = Python round(n*W or n*H) (round half to even, float64).",
    "box_normalized is {x1,y1,x2,y2} = the n values of x_min, y_min, x_max, y_max.",
]

TOK = re.compile(r"<loc(\d{4})>|<seg(\d{3})>")
LOC = re.compile(r"<loc(\d{4})>")


def parse(text, mode):
    objects, skipped, texts = [], [], []
    for piece in text.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        m = LOC.search(piece)
        if not m:
            texts.append(piece)
            continue
        if piece[:m.start()].strip():
            texts.append(piece[:m.start()].strip())
        pos = m.start()
        while pos < len(piece):
            start = pos
            locs, segs = [], []
            while True:
                mm = LOC.match(piece, pos)
                if not mm:
                    break
                locs.append(int(mm.group(1))); pos = mm.end()
            ws = re.compile(r"\s*").match(piece, pos)
            spos = ws.end()
            segre = re.compile(r"<seg(\d{3})>")
            while True:
                mm = segre.match(piece, spos)
                if not mm:
                    break
                segs.append(int(mm.group(1))); spos = mm.end()
            if segs:
                pos = spos
            nxt = LOC.search(piece, pos)
            end = nxt.start() if nxt else len(piece)
            label = piece[pos:end].strip()
            raw = piece[start:end].strip()
            pos = end
            reason = None
            if len(locs) != 4:
                reason = "loc_count"
            elif any(v > 1023 for v in locs):
                reason = "loc_range"
            elif (mode == "segment" and len(segs) != 16) or (mode == "detect" and len(segs) not in (0, 16)):
                reason = "seg_count"
            elif any(v > 127 for v in segs):
                reason = "seg_range"
            elif locs[2] <= locs[0]:
                reason = "y_order"
            elif locs[3] <= locs[1]:
                reason = "x_order"
            if reason:
                skipped.append({"raw": raw, "reason": reason})
            else:
                o = {"label": label, "loc": locs}
                if segs:
                    o["seg"] = segs
                objects.append(o)
    return objects, skipped, texts


def boxes(objects, w, h, convention):
    out = []
    for o in objects:
        y1, x1, y2, x2 = o["loc"]
        if convention == "big_vision":
            n = [v / 1023 for v in (x1, y1, x2, y2)]
            px = [int(n[0] * w), int(n[1] * h), int(n[2] * w), int(n[3] * h)]
        else:
            n = [v / 1024 for v in (x1, y1, x2, y2)]
            px = [round(n[0] * w), round(n[1] * h), round(n[2] * w), round(n[3] * h)]
        e = dict(o)
        e["box"] = dict(zip(["x1", "y1", "x2", "y2"], px))
        e["box_normalized"] = dict(zip(["x1", "y1", "x2", "y2"], n))
        out.append(e)
    return out


def L(*v):
    return "".join(f"<loc{x:04d}>" for x in v)


def S(*v):
    return "".join(f"<seg{x:03d}>" for x in v)


def cases():
    r = prng(4242)
    rl = lambda: sorted(r.sample(range(1024), 2))
    seg16 = lambda: S(*[r.randrange(128) for _ in range(16)])

    def box():
        (a, b), (c, d) = rl(), rl()
        return L(a, c, b, d)

    c = []
    # detect: one / several objects, labels with spaces, separators with and without spaces
    c.append(("detect", box() + " cat"))
    c.append(("detect", box() + " cat ; " + box() + " dog"))
    c.append(("detect", box() + " red car;" + box() + " traffic light ; " + box() + " person"))
    c.append(("detect", box() + " big brown dog  ;  " + box() + "  small cat "))
    c.append(("detect", L(0, 0, 1023, 1023) + " everything"))
    c.append(("detect", L(100, 200, 101, 201) + " tiny"))
    c.append(("detect", box() + " cat" + box() + " dog"))  # no ';' between objects
    c.append(("detect", box() + "cat"))  # no space before label
    c.append(("detect", box()))  # no label
    c.append(("detect", box() + " a ; " + box() + " b ; " + box() + " c ; " + box() + " d"))
    c.append(("detect", L(16, 16, 48, 48) + " half-even ; " + L(48, 16, 80, 48) + " x"))  # .5 pixel values
    c.append(("detect", L(511, 512, 1023, 1022) + " mid"))
    # segment: 16 seg tokens
    c.append(("segment", box() + seg16() + " cat"))
    c.append(("segment", box() + " " + seg16() + " cat"))  # whitespace between loc and seg runs
    c.append(("segment", box() + seg16() + " cat ; " + box() + seg16() + " dog"))
    c.append(("segment", box() + seg16() + " the big tree"))
    c.append(("segment", box() + seg16()))
    c.append(("segment", box() + S(*range(16)) + " first codes ; " + box() + S(*range(112, 128)) + " last codes"))
    # malformed
    c.append(("detect", L(10, 20, 30) + " three locs"))
    c.append(("detect", L(10, 20, 30, 40, 50) + " five locs"))
    c.append(("detect", L(500, 100, 400, 300) + " y2 below y1"))
    c.append(("detect", L(100, 500, 400, 300) + " x2 left of x1"))
    c.append(("detect", L(100, 100, 100, 300) + " zero height"))
    c.append(("detect", L(100, 300, 400, 300) + " zero width"))
    c.append(("segment", box() + S(*range(15)) + " fifteen segs"))
    c.append(("segment", box() + S(*range(17)) + " seventeen segs"))
    c.append(("segment", box() + " no segs"))
    c.append(("detect", box() + S(*range(5)) + " stray segs"))
    c.append(("detect", "<loc1024><loc0000><loc0100><loc0100> out of range"))
    c.append(("segment", box() + S(*range(15)) + "<seg200> seg out of range"))
    # stray text
    c.append(("detect", "I see " + box() + " cat"))
    c.append(("detect", "no objects here"))
    c.append(("detect", ""))
    c.append(("detect", " ; ; "))
    c.append(("detect", box() + " cat ; hello world ; " + box() + " dog"))
    c.append(("detect", box() + " cat ; " + L(1, 2, 3) + " bad ; " + box() + " dog"))
    c.append(("segment", "answer: " + box() + seg16() + " cat ; " + box() + S(*range(15)) + " bad"))
    c.append(("detect", "<loc12><loc0034> junk <seg045> text"))
    c.append(("detect", box() + " cat <eos>"))
    c.append(("segment", box() + seg16() + " cat ; " + L(900, 10, 100, 20) + seg16() + " inverted"))
    assert len(c) == 40, len(c)
    return c


def main():
    sizes = [(640, 480)] * 30 + [(224, 224), (1000, 750), (333, 517), (4000, 1000), (1, 1), (640, 480),
                                 (640, 480), (481, 641), (1024, 1024), (1023, 1023)]
    out = []
    for i, ((mode, text), (w, h)) in enumerate(zip(cases(), sizes)):
        objects, skipped, texts = parse(text, mode)
        e = {"index": i, "mode": mode, "text": text, "width": w, "height": h, "skipped": skipped,
             "text_pieces": texts}
        for conv in ("big_vision", "hf-demo"):
            e[conv] = boxes(objects, w, h, conv)
        out.append(e)
    write_json(os.path.join(FIX, "detseg", "cases.json"), {"rules": RULES, "cases": out}, indent=1)
    n_obj = sum(len(e["big_vision"]) for e in out)
    n_skip = sum(len(e["skipped"]) for e in out)
    print(f"detseg: 40 cases, {n_obj} objects, {n_skip} skipped")


if __name__ == "__main__":
    main()
