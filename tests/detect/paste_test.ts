import assert from "node:assert/strict";
import { decodeBase64 } from "./base64.ts";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { boxMask, pasteMask } from "../../lib/mask/paste.ts";
import { resample } from "../../lib/image/pil_resample.ts";

const ref = JSON.parse(
  Deno.readTextFileSync(new URL("./pil_resize_pillow13.json", import.meta.url)),
) as { mask_index: number; cases: { w: number; h: number; f32: string; u8: string }[] };

async function fixtureMask(i: number): Promise<Float32Array> {
  const path = new URL("../fixtures/vqvae/masks64.safetensors", import.meta.url).pathname;
  const st = await openSafetensors(path);
  try {
    const r = st.get("masks")!;
    return toFloat32(await r.read(i * 4096 * 4, 4096 * 4), r.dtype);
  } finally {
    st.close();
  }
}

function hfDemoU8(m: Float32Array): Uint8Array {
  return Uint8Array.from(m, (v) => {
    const c = Math.min(Math.max(Math.fround(Math.fround(v * 0.5) + 0.5), 0), 1);
    return Math.trunc(Math.fround(c * 255));
  });
}

Deno.test("Pillow resize: mode F bilinear and mode L bicubic equal Pillow 13 exactly", async () => {
  const m = await fixtureMask(ref.mask_index);
  const u8 = hfDemoU8(m);
  assert.ok(ref.cases.length >= 15);
  for (const c of ref.cases) {
    const wantF = new Float32Array(decodeBase64(c.f32).buffer);
    const wantL = decodeBase64(c.u8);
    assert.deepEqual(resample(m, 64, 64, c.w, c.h, "bilinear"), wantF, `F ${c.w}x${c.h}`);
    assert.deepEqual(resample(u8, 64, 64, c.w, c.h, "bicubic"), wantL, `L ${c.w}x${c.h}`);
    // And the thresholds the two conventions apply.
    const bv = boxMask(m, c.w, c.h, "big_vision");
    const hf = boxMask(m, c.w, c.h, "hf-demo");
    assert.deepEqual(bv, Uint8Array.from(wantF, (v) => (v > 0 ? 1 : 0)));
    assert.deepEqual(hf, Uint8Array.from(wantL, (v) => (v / 255 > 0.5 ? 1 : 0)));
  }
});

Deno.test("pasteMask: clips boxes to the image and handles empty boxes", async () => {
  const m = await fixtureMask(0);
  const inside = boxMask(m, 10, 8, "big_vision");
  const full = pasteMask(m, { x1: 15, y1: -3, x2: 25, y2: 5 }, 20, 6, "big_vision");
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 20; x++) {
      const iy = y + 3, ix = x - 15;
      const want = ix >= 0 && ix < 10 && iy < 8 ? inside[iy * 10 + ix] : 0;
      assert.equal(full.data[y * 20 + x], want, `${x},${y}`);
    }
  }
  const empty = pasteMask(m, { x1: 5, y1: 5, x2: 5, y2: 9 }, 20, 20, "hf-demo");
  assert.equal(empty.data.reduce((a, b) => a + b, 0), 0);
});
