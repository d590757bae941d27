/**
 * Parity of the image path with HF's PIL-based processor: decoded + resized uint8 images against
 * tests/fixtures/images/expected (written by tests/reference/make_images.py with Pillow 13).
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import {
  DEFAULT_PREPROCESS,
  loadImage,
  pixelTables,
  preprocessImage,
  resizeRgb,
} from "../../lib/image/mod.ts";

const DIR = new URL("../fixtures/images/", import.meta.url).pathname;

interface FixtureImage {
  file: string;
  loaded_width: number;
  loaded_height: number;
  expected: Record<string, string>;
  deliberately_differ?: string;
}
interface Manifest {
  sizes: number[];
  images: FixtureImage[];
}

const manifest: Manifest = JSON.parse(Deno.readTextFileSync(`${DIR}images.json`));

/** Reads an expected PNG as raw RGB with sharp (independent of the loader under test). */
async function readExpected(rel: string): Promise<{ rgb: Uint8Array; width: number }> {
  const { data, info } = await sharp(`${DIR}${rel}`).removeAlpha().toColourspace("srgb").raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3, rel);
  return { rgb: new Uint8Array(data), width: info.width };
}

/** Mean and max absolute difference, in grey levels. */
function diff(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

Deno.test("resized uint8 images match HF's PIL processor (mean <= 0.1, max <= 1 grey level)", async () => {
  assert.ok(manifest.images.length >= 8, "fixture list");
  let worstMean = 0, worstMax = 0;
  for (const img of manifest.images) {
    if (img.deliberately_differ) continue;
    const loaded = await loadImage(`${DIR}${img.file}`);
    assert.equal(loaded.width, img.loaded_width, img.file);
    assert.equal(loaded.height, img.loaded_height, img.file);
    for (const size of manifest.sizes) {
      const exp = await readExpected(img.expected[String(size)]);
      assert.equal(exp.width, size);
      const got = resizeRgb(loaded.rgb, loaded.width, loaded.height, size, size, "bicubic");
      const d = diff(got, exp.rgb);
      console.log(`  ${img.file} @${size}: mean |diff| ${d.mean.toFixed(4)}, max ${d.max}`);
      assert.ok(d.mean <= 0.1 && d.max <= 1, `${img.file} @${size}: mean ${d.mean} max ${d.max}`);
      worstMean = Math.max(worstMean, d.mean);
      worstMax = Math.max(worstMax, d.max);
    }
  }
  console.log(`  worst over all images and sizes: mean ${worstMean.toFixed(4)}, max ${worstMax}`);
});

Deno.test("16-bit PNG is scaled by 1/257, not clipped as PIL does (a deliberate difference)", async () => {
  const img = manifest.images.find((i) => i.file === "gray16.png");
  assert.ok(img?.deliberately_differ);
  const loaded = await loadImage(`${DIR}gray16.png`);
  // Independent expectation: the raw 16-bit samples, rounded v/257, replicated to RGB.
  const { data, info } = await sharp(`${DIR}gray16.png`).toColourspace("grey16")
    .raw({ depth: "ushort" }).toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 1);
  const raw = new Uint16Array(new Uint8Array(data).buffer);
  let clippedInput = 0;
  for (let i = 0; i < raw.length; i++) {
    const want = Math.round(raw[i] / 257);
    assert.equal(loaded.rgb[i * 3], want);
    assert.equal(loaded.rgb[i * 3 + 2], want);
    if (raw[i] > 255) clippedInput++;
  }
  // PIL's reference clips every sample above 255 to white; ours keeps the tones.
  const exp = await readExpected(img.expected["224"]);
  const got = resizeRgb(loaded.rgb, loaded.width, loaded.height, 224, 224, "bicubic");
  const d = diff(got, exp.rgb);
  console.log(
    `  gray16.png: ${clippedInput}/${raw.length} samples > 255 that PIL clips; ` +
      `ours vs PIL's clipped reference @224: mean ${d.mean.toFixed(1)}, max ${d.max}`,
  );
  assert.ok(clippedInput > raw.length / 2 && d.mean > 10, "the fixture should exercise clipping");
});

Deno.test("preprocessImage gives HF's float32 pixel values of the resized image", async () => {
  const img = manifest.images.find((i) => i.file === "rocket.jpg")!;
  const pre = await preprocessImage(`${DIR}rocket.jpg`, 56);
  assert.equal(pre.width, 640);
  assert.equal(pre.height, 427);
  assert.equal(pre.pixelValues.length, 3 * 56 * 56);
  const exp = await readExpected(img.expected["56"]);
  let maxErr = 0;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 56 * 56; i++) {
      const want = (exp.rgb[i * 3 + c] / 255 - 0.5) / 0.5;
      maxErr = Math.max(maxErr, Math.abs(pre.pixelValues[c * 56 * 56 + i] - want));
    }
  }
  assert.ok(maxErr < 1e-6, `max error ${maxErr}`);
  const [table] = pixelTables(DEFAULT_PREPROCESS);
  assert.equal(table[0], -1);
  assert.equal(table[255], 1);
});
