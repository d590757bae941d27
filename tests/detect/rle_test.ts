import assert from "node:assert/strict";
import sharp from "sharp";
import type { BinaryMask } from "../../lib/mask/paste.ts";
import { decodeRle, encodeRle, maskArea, maskBbox } from "../../lib/mask/rle.ts";

interface RleCase {
  h?: number;
  w?: number;
  kind?: string;
  rows?: string[] | null;
  png?: string;
  counts: string;
  area: number;
  bbox: [number, number, number, number];
}

const { cases } = JSON.parse(
  Deno.readTextFileSync(new URL("./rle_pycocotools.json", import.meta.url)),
) as { cases: RleCase[] };

async function maskOf(c: RleCase): Promise<BinaryMask> {
  if (c.png) {
    const path = new URL(`../fixtures/vqvae/pasted/${c.png}`, import.meta.url).pathname;
    const { data, info } = await sharp(path).extractChannel(0).raw().toBuffer({
      resolveWithObject: true,
    });
    return {
      width: info.width,
      height: info.height,
      data: Uint8Array.from(data, (v) => (v > 127 ? 1 : 0)),
    };
  }
  const w = c.w!, h = c.h!;
  const data = new Uint8Array(w * h);
  if (c.rows) {
    c.rows.forEach((row, y) => [...row].forEach((ch, x) => data[y * w + x] = Number(ch)));
  } else if (c.kind === "ones") {
    data.fill(1);
  } else if (c.kind === "blob") {
    for (let y = Math.floor(h / 4); y < Math.floor(h * 3 / 4) + 1; y++) {
      for (let x = Math.floor(w / 5); x < Math.floor(w * 4 / 5) + 1; x++) data[y * w + x] = 1;
    }
  }
  return { width: w, height: h, data };
}

Deno.test("COCO RLE: counts, area and bbox equal pycocotools'", async () => {
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    const what = c.png ?? `${c.h}x${c.w} ${c.kind}`;
    const m = await maskOf(c);
    const rle = encodeRle(m);
    assert.equal(rle.counts, c.counts, what);
    assert.deepEqual(rle.size, [m.height, m.width], what);
    assert.equal(maskArea(m), c.area, what);
    assert.deepEqual(maskBbox(m), c.bbox, what);
    const back = decodeRle(rle);
    assert.deepEqual(back.data, m.data, `${what}: decode(encode(m)) != m`);
  }
});

Deno.test("COCO RLE: random masks round-trip, large run lengths included", () => {
  let seed = 1;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let n = 0; n < 50; n++) {
    const w = 1 + Math.floor(rnd() * 300), h = 1 + Math.floor(rnd() * 300);
    const p = rnd();
    const data = Uint8Array.from({ length: w * h }, () => (rnd() < p ? 1 : 0));
    const m = { width: w, height: h, data };
    assert.deepEqual(decodeRle(encodeRle(m)).data, data);
  }
  // Two runs of 24M pixels each (column-major): counts far beyond 32-bit-shift range.
  const w = 8000, h = 6000;
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) data.fill(1, y * w + w / 2, (y + 1) * w);
  const rle = encodeRle({ width: w, height: h, data });
  const back = decodeRle(rle);
  assert.equal(maskArea(back), w * h / 2);
  assert.ok(back.data.every((v, i) => v === data[i]));
});
