import assert from "node:assert/strict";
import sharp from "sharp";
import { loadImage } from "../../lib/image/load.ts";
import {
  PIL_FILTER_IDS,
  type PilFilter,
  resample,
  verticalFirst,
} from "../../lib/image/pil_resample.ts";
import { resizeRgb } from "../../lib/image/resize.ts";

const IMAGES = new URL("../fixtures/images/", import.meta.url).pathname;

/** Deterministic pseudo-random samples. */
function noise(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  });
}

/** Channel `c` of an interleaved image with `ch` channels. */
function channel<T extends Uint8Array | Float32Array>(src: T, ch: number, c: number): T {
  return src.filter((_, i) => i % ch === c) as T;
}

const SIZES: readonly [number, number, number, number][] = [
  [37, 29, 16, 16], // both shrink, horizontal first
  [20, 90, 18, 12], // height shrinks much more: vertical first
  [13, 11, 40, 7], // mixed up and down
  [25, 25, 25, 9], // vertical only
  [25, 25, 6, 25], // horizontal only
];

Deno.test("resample: every channel of an interleaved image resizes as that channel alone", () => {
  assert.ok(SIZES.some(([w, h, ow, oh]) => verticalFirst(w, h, ow, oh)));
  for (const [w, h, ow, oh] of SIZES) {
    for (const ch of [3, 4]) {
      const u8 = noise(w * h * ch, w * 31 + h + ch);
      const f32 = Float32Array.from(u8, (v) => v / 17 - 7);
      for (const filter of ["bilinear", "bicubic"] as const) {
        const gotU8 = resample(u8, w, h, ow, oh, filter, { channels: ch });
        const gotF = resample(f32, w, h, ow, oh, filter, { channels: ch });
        assert.ok(gotF instanceof Float32Array && gotU8 instanceof Uint8Array);
        for (let c = 0; c < ch; c++) {
          const tag = `${w}x${h}->${ow}x${oh} ${filter} ch${c}/${ch}`;
          const one = resample(channel(u8, ch, c), w, h, ow, oh, filter);
          assert.deepEqual(channel(gotU8, ch, c), one, tag);
          assert.deepEqual(
            channel(gotF, ch, c),
            resample(channel(f32, ch, c), w, h, ow, oh, filter),
          );
        }
      }
    }
  }
});

Deno.test("resample: uint8 is within two levels of float; resizeRgb is its RGB case", () => {
  for (const [w, h, ow, oh] of SIZES) {
    const u8 = noise(w * h * 3, w + h);
    const f = resample(Float32Array.from(u8), w, h, ow, oh, "bicubic", { channels: 3 });
    const q = resample(u8, w, h, ow, oh, "bicubic", { channels: 3 });
    // Two rounded and clipped passes against two exact ones: at most one level apart per pass.
    for (let i = 0; i < q.length; i++) {
      const want = Math.min(255, Math.max(0, f[i]));
      assert.ok(Math.abs(q[i] - want) <= 2, `${w}x${h}->${ow}x${oh} @${i}: ${q[i]} vs ${f[i]}`);
    }
    assert.deepEqual(resizeRgb(u8, w, h, ow, oh, "bicubic"), q);
  }
  assert.throws(() => resample(new Uint8Array(5), 2, 2, 1, 1, "bilinear"), RangeError);
  assert.throws(() => resample(new Uint8Array(4), 2, 2, 0, 1, "bilinear"), RangeError);
});

Deno.test("resample: every Pillow filter on 8-bit RGB equals Pillow 13's Image.resize", async () => {
  const j = JSON.parse(await Deno.readTextFile(`${IMAGES}resample/resample.json`)) as {
    filters: Record<string, number>;
    cases: { source: string; width: number; height: number; expected: Record<string, string> }[];
  };
  assert.deepEqual(j.filters, PIL_FILTER_IDS);
  assert.ok(j.cases.some((c) => c.width > 100 && c.height < 30), "a vertical-first case");
  for (const c of j.cases) {
    const img = await loadImage(`${IMAGES}${c.source}`);
    const outputs = new Set<string>();
    for (const [filter, file] of Object.entries(c.expected)) {
      const { data, info } = await sharp(`${IMAGES}${file}`).raw().toBuffer({
        resolveWithObject: true,
      });
      assert.deepEqual([info.width, info.height, info.channels], [c.width, c.height, 3]);
      const got = resample(img.rgb, img.width, img.height, c.width, c.height, filter as PilFilter, {
        channels: 3,
      });
      let off = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== data[i]) off++;
      assert.equal(
        off,
        0,
        `${c.source} -> ${c.width}x${c.height} ${filter}: ${off} samples differ`,
      );
      outputs.add(got.join());
    }
    // The filters give different images, so a filter mixed up with another would fail above.
    assert.equal(outputs.size, Object.keys(c.expected).length, c.source);
  }
});
