/**
 * The PIL-matching bicubic resampler on synthetic images, against SHA-256 digests of Pillow 13.0.0's
 * `Image.fromarray(a).resize((ow, oh), Image.BICUBIC)`, where `a` is the `h`×`w`×3 uint8 image of
 * successive LCG bytes: `x = (x * 1103515245 + 12345) & 0x7fffffff; byte = (x >> 16) & 255`,
 * seeded with `w * 7 + h`. The digests were computed once with the venv's Pillow.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type ResizeOptions, resizeRgb, verticalFirst } from "../../lib/image/mod.ts";

/** Pillow's BICUBIC resize of an RGB image. */
const resizeBicubic = (
  rgb: Uint8Array,
  w: number,
  h: number,
  ow: number,
  oh = ow,
  opts: ResizeOptions = {},
) => resizeRgb(rgb, w, h, ow, oh, "bicubic", opts);

/** [w, h, outW, outH, sha256 of Pillow's output bytes]. */
const PILLOW_13: [number, number, number, number, string][] = [
  [240, 320, 224, 224, "37c711710be4a9f5ff505f0d0563e5a27cc07ae72b6e31b84ab62fff6ec25423"],
  [320, 240, 224, 224, "f7ca0a17e655377270d49cb495c538497a8b1e0d61e72fa7351c406d05464f9c"],
  [97, 131, 224, 224, "68511b76b9c097dbfd92ea21564a1d07663b813c92b462d6d68339b7035b51bb"],
  [640, 100, 56, 56, "a6eb54d2677783ecfeb67566cc5158f84fea119169ab5d5404658cf678bf7e31"],
  [50, 50, 90, 40, "fafebb68a852b8778ec87b3d996bc7b832711f5e77e749e8315a48873bfbf749"],
  [300, 200, 56, 56, "4eb278135d2fb44bc5a3fb6e216d4eb8304389998d4df228ffc26a6047d719fa"],
  [33, 500, 16, 16, "9624d4246ec5392f3bb9e5bbee9ab5db1d1660cd4c7769df2d394cd1070449b0"],
  [1000, 999, 224, 224, "268789cd2f9f8d823436a8a9917242308e1632187c67f3f93291f7ed0178dfdc"],
];

/** The LCG image described in the module comment. */
function lcgImage(w: number, h: number, seed: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  let x = seed;
  for (let i = 0; i < out.length; i++) {
    x = Number((BigInt(x) * 1103515245n + 12345n) & 0x7fffffffn);
    out[i] = (x >> 16) & 255;
  }
  return out;
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

Deno.test("bicubic resize is bit-identical to Pillow 13 (both pass orders, up and down)", () => {
  let verticalCases = 0;
  for (const [w, h, ow, oh, digest] of PILLOW_13) {
    const src = lcgImage(w, h, w * 7 + h);
    const out = resizeBicubic(src, w, h, ow, oh);
    assert.equal(out.length, ow * oh * 3);
    assert.equal(sha256(out), digest, `${w}x${h} -> ${ow}x${oh}`);
    if (verticalFirst(w, h, ow, oh)) {
      verticalCases++;
      // The other order rounds differently: the rule is what makes these cases match.
      const hv = resizeBicubic(src, w, h, ow, oh, { passOrder: "horizontal-first" });
      assert.notEqual(sha256(hv), digest, `${w}x${h} -> ${ow}x${oh} horizontal-first`);
    }
  }
  assert.ok(verticalCases >= 3, "cases exercise Pillow 13's vertical-first order");
});

Deno.test("resize keeps a constant image constant and copies when the size is unchanged", () => {
  const w = 37, h = 23;
  const flat = new Uint8Array(w * h * 3);
  for (let i = 0; i < flat.length; i += 3) flat.set([200, 7, 128], i);
  for (const [ow, oh] of [[224, 224], [5, 9], [37, 100], [80, 23]]) {
    const out = resizeBicubic(flat, w, h, ow, oh);
    for (let i = 0; i < out.length; i += 3) {
      assert.deepEqual([out[i], out[i + 1], out[i + 2]], [200, 7, 128], `${ow}x${oh}`);
    }
  }
  const same = resizeBicubic(flat, w, h, w, h);
  assert.deepEqual(same, flat);
  assert.notEqual(same, flat);
  assert.throws(() => resizeBicubic(flat, w, h + 1, 10), RangeError);
});
