/**
 * Image decoding: EXIF orientation, other formats (made here with sharp from a fixture), GIF
 * transparency as PIL's `convert("RGB")` sees it, and the one-line refusals.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import { zlibSync } from "fflate";
import { InputError } from "../../lib/errors.ts";
import { ImageTooLarge, loadImage } from "../../lib/image/mod.ts";
import { headerSize } from "../../lib/image/header.ts";

const DIR = new URL("../fixtures/images/", import.meta.url).pathname;

/** Mean and max absolute difference of two equal-length byte arrays. */
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

/** Runs `fn` with a temporary directory that is removed afterwards. */
async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pg-image-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that loading `path` fails with an InputError (exit 3) whose message names the file. */
async function assertRefused(path: string, pattern: RegExp, maxPixels?: number): Promise<void> {
  await assert.rejects(() => loadImage(path, { maxPixels }), (err: unknown) => {
    assert.ok(err instanceof InputError, `${path}: ${err}`);
    assert.equal(err.exitCode, 3);
    assert.ok(err.message.startsWith(path), err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("EXIF orientation 6 is applied: width and height swap, pixels rotate 90° clockwise", async () => {
  const img = await loadImage(`${DIR}exif6.jpg`);
  const meta = await sharp(`${DIR}exif6.jpg`).metadata();
  assert.equal(meta.orientation, 6);
  assert.equal(img.width, meta.height);
  assert.equal(img.height, meta.width);
  // Independent check: decode without orientation and rotate by hand.
  const { data } = await sharp(`${DIR}exif6.jpg`).raw().toBuffer({ resolveWithObject: true });
  const w = meta.width, h = meta.height;
  const rotated = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Source (x, y) lands at (h - 1 - y, x) in the rotated image, which is h wide.
      rotated.set(data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3), (x * h + (h - 1 - y)) * 3);
    }
  }
  assert.deepEqual(img.rgb, rotated);
});

/** Source pixel (x, y) shown at (xo, yo) of the oriented image, per the EXIF orientation tag. */
function exifSource(o: number, xo: number, yo: number, w: number, h: number): [number, number] {
  switch (o) {
    case 2:
      return [w - 1 - xo, yo];
    case 3:
      return [w - 1 - xo, h - 1 - yo];
    case 4:
      return [xo, h - 1 - yo];
    case 5:
      return [yo, xo];
    case 6:
      return [yo, h - 1 - xo];
    case 7:
      return [w - 1 - yo, h - 1 - xo];
    case 8:
      return [w - 1 - yo, xo];
    default:
      return [xo, yo];
  }
}

Deno.test("all eight EXIF orientations map pixels as the EXIF specification says", async () => {
  const src = await loadImage(`${DIR}rocket.jpg`);
  const w = 40, h = 24;
  const small = await sharp(src.rgb, { raw: { width: src.width, height: src.height, channels: 3 } })
    .resize(w, h).raw().toBuffer();
  await withTemp(async (dir) => {
    const plain = await sharp(small, { raw: { width: w, height: h, channels: 3 } }).png()
      .toBuffer();
    // The same JPEG data with only the orientation tag changed decodes to the same pixels.
    await sharp(plain).jpeg({ quality: 100 }).toFile(`${dir}/o1.jpg`);
    const base = await loadImage(`${dir}/o1.jpg`);
    for (let o = 2; o <= 8; o++) {
      const path = `${dir}/o${o}.jpg`;
      await sharp(plain).jpeg({ quality: 100 }).withMetadata({ orientation: o }).toFile(path);
      const img = await loadImage(path);
      const swapped = o >= 5;
      assert.deepEqual([img.width, img.height], swapped ? [h, w] : [w, h], `orientation ${o}`);
      for (let yo = 0; yo < img.height; yo++) {
        for (let xo = 0; xo < img.width; xo++) {
          const [x, y] = exifSource(o, xo, yo, w, h);
          const a = (yo * img.width + xo) * 3, b = (y * w + x) * 3;
          assert.deepEqual(img.rgb.subarray(a, a + 3), base.rgb.subarray(b, b + 3), `o${o}`);
        }
      }
    }
  });
});

Deno.test("RGBA drops alpha (no compositing) and grey is replicated", async () => {
  const rgba = await sharp(`${DIR}rgba.png`).raw().toBuffer({ resolveWithObject: true });
  assert.equal(rgba.info.channels, 4);
  const img = await loadImage(`${DIR}rgba.png`);
  let translucent = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++) assert.equal(img.rgb[i * 3 + c], rgba.data[i * 4 + c]);
    if (rgba.data[i * 4 + 3] < 255) translucent++;
  }
  assert.ok(translucent > 1000, "the fixture has transparency to ignore");
  const gray = await loadImage(`${DIR}gray.png`);
  for (let i = 0; i < gray.rgb.length; i += 3) {
    assert.equal(gray.rgb[i], gray.rgb[i + 1]);
    assert.equal(gray.rgb[i], gray.rgb[i + 2]);
  }
});

Deno.test("WebP, GIF, TIFF, AVIF, PNG and JPEG made from a fixture decode to the same image", async () => {
  // A 160x120 crop keeps the encoders (AVIF above all) fast.
  const full = await loadImage(`${DIR}chelsea.png`);
  const src = { width: 160, height: 120, rgb: new Uint8Array(160 * 120 * 3) };
  for (let y = 0; y < 120; y++) {
    const from = ((y + 90) * full.width + 150) * 3;
    src.rgb.set(full.rgb.subarray(from, from + 160 * 3), y * 160 * 3);
  }
  const raw = { raw: { width: src.width, height: src.height, channels: 3 as const } };
  // [format, encoder, mean |diff| bound, max |diff| bound]: lossless formats must be exact.
  const cases: [
    string,
    (s: ReturnType<typeof sharp>) => ReturnType<typeof sharp>,
    number,
    number,
  ][] = [
    ["png", (s) => s.png(), 0, 0],
    ["tiff", (s) => s.tiff({ compression: "lzw" }), 0, 0],
    ["webp", (s) => s.webp({ lossless: true }), 0, 0],
    ["webp-lossy", (s) => s.webp({ quality: 95 }), 4, 80],
    ["jpeg", (s) => s.jpeg({ quality: 95 }), 3, 60],
    ["avif", (s) => s.avif({ quality: 90 }), 4, 80],
    ["gif", (s) => s.gif({ colours: 256, dither: 0 }), 6, 80],
  ];
  await withTemp(async (dir) => {
    for (const [name, enc, meanBound, maxBound] of cases) {
      const path = `${dir}/chelsea.${name}`;
      await enc(sharp(src.rgb, raw)).toFile(path);
      const img = await loadImage(path);
      const claimed = headerSize(await Deno.readFile(path));
      if (name !== "tiff" && name !== "avif") {
        assert.deepEqual([claimed?.width, claimed?.height], [src.width, src.height], name);
      }
      assert.equal(img.width, src.width, name);
      assert.equal(img.height, src.height, name);
      const d = diff(img.rgb, src.rgb);
      console.log(`  ${name}: mean |diff| ${d.mean.toFixed(3)}, max ${d.max}`);
      assert.ok(d.mean <= meanBound && d.max <= maxBound, `${name}: ${JSON.stringify(d)}`);
    }
  });
});

/** A 2×2 GIF89a, palette [(10,20,30), red, green, blue], index 0 transparent, pixels 1 0 / 2 3. */
function tinyGif(): Uint8Array {
  // LZW with 2-bit minimum code size: a clear code (4) before every literal keeps codes 3 bits.
  const codes = [4, 1, 4, 0, 4, 2, 4, 3, 5];
  const data: number[] = [];
  let acc = 0, bits = 0;
  for (const c of codes) {
    acc |= c << bits;
    bits += 3;
    while (bits >= 8) {
      data.push(acc & 255);
      acc >>= 8;
      bits -= 8;
    }
  }
  if (bits > 0) data.push(acc & 255);
  return new Uint8Array([
    ...new TextEncoder().encode("GIF89a"),
    2,
    0,
    2,
    0,
    0x81,
    0,
    0, // screen 2x2, global table of 4 entries
    10,
    20,
    30,
    255,
    0,
    0,
    0,
    255,
    0,
    0,
    0,
    255,
    0x21,
    0xf9,
    4,
    1,
    0,
    0,
    0,
    0, // graphic control: transparent index 0
    0x2c,
    0,
    0,
    0,
    0,
    2,
    0,
    2,
    0,
    0, // image descriptor
    2,
    data.length,
    ...data,
    0,
    0x3b,
  ]);
}

Deno.test("GIF: transparent pixels take the palette colour, as PIL's convert('RGB') gives", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/tiny.gif`;
    await Deno.writeFile(path, tinyGif());
    const img = await loadImage(path);
    assert.equal(img.width, 2);
    assert.deepEqual(Array.from(img.rgb), [255, 0, 0, 10, 20, 30, 0, 255, 0, 0, 0, 255]);
  });
});

/** A PNG of `w`×`h` with the given IHDR bit depth and colour type, extra chunks, and filter-0 rows. */
function pngFile(
  w: number,
  h: number,
  depth: number,
  colourType: number,
  rows: Uint8Array[],
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr.set([depth, colourType, 0, 0, 0], 8);
  const raw = new Uint8Array(rows.reduce((n, r) => n + 1 + r.length, 0));
  let o = 0;
  for (const r of rows) {
    raw[o++] = 0; // filter type None
    raw.set(r, o);
    o += r.length;
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", zlibSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

Deno.test("palette PNG: each index becomes its palette colour, tRNS alpha dropped (PIL's RGB)", async () => {
  // PIL's convert("RGB") of a P image looks every index up in PLTE and ignores tRNS.
  const palette = [[255, 0, 0], [0, 128, 255], [17, 200, 33], [250, 250, 250], [7, 8, 9]];
  const w = 5, h = 3;
  const index = (x: number, y: number) => (x * 2 + y) % palette.length;
  const rows = Array.from(
    { length: h },
    (_, y) => Uint8Array.from({ length: w }, (_, x) => index(x, y)),
  );
  const plte = chunk("PLTE", Uint8Array.from(palette.flat()));
  // Entry 1 fully transparent, entry 2 half: their colours must survive.
  const trns = chunk("tRNS", new Uint8Array([255, 0, 128]));
  await withTemp(async (dir) => {
    for (const [name, extra] of [["p.png", [plte]], ["p_trns.png", [plte, trns]]] as const) {
      const path = `${dir}/${name}`;
      await Deno.writeFile(path, pngFile(w, h, 8, 3, rows, [...extra]));
      const img = await loadImage(path);
      assert.equal(img.width, w);
      assert.equal(img.height, h);
      const want: number[] = [];
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) want.push(...palette[index(x, y)]);
      assert.deepEqual(Array.from(img.rgb), want, name);
    }
  });
});

Deno.test("16-bit RGB PNG: samples scaled by 1/257 and rounded (our choice; PIL clips or truncates)", async () => {
  // Samples chosen around the rounding points: v/257 = 0.498 and 0.502, 1.498 and 1.502, 128, 255.
  const samples = [128, 129, 385, 386, 32896, 65535, 0, 257, 65534, 1000, 40000, 12345];
  const want = [0, 1, 1, 2, 128, 255, 0, 1, 255, 4, 156, 48];
  assert.deepEqual(samples.map((v) => Math.round(v / 257)), want, "the table itself");
  const w = 2, h = 2;
  const rows = Array.from({ length: h }, (_, y) => {
    const row = new Uint8Array(w * 3 * 2);
    const v = new DataView(row.buffer);
    for (let i = 0; i < w * 3; i++) v.setUint16(i * 2, samples[y * w * 3 + i]); // big-endian
    return row;
  });
  await withTemp(async (dir) => {
    const path = `${dir}/rgb16.png`;
    await Deno.writeFile(path, pngFile(w, h, 16, 2, rows));
    const img = await loadImage(path);
    assert.equal(img.width, w);
    assert.deepEqual(Array.from(img.rgb), want);
  });
});

/** A PNG signature plus an IHDR chunk claiming `w`×`h` 8-bit RGB, then IEND: no pixel data. */
function hugePngHeader(w: number, h: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return new Uint8Array([
    0x89,
    0x50,
    0x4e,
    0x47,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    ...chunk("IHDR", ihdr),
    ...chunk("IEND", new Uint8Array(0)),
  ]);
}

/** One PNG chunk with its CRC-32. */
function chunk(type: string, body: Uint8Array): Uint8Array {
  const t = new TextEncoder().encode(type);
  const out = new Uint8Array(12 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length);
  out.set(t, 4);
  out.set(body, 8);
  let crc = 0xffffffff;
  for (const b of out.subarray(4, 8 + body.length)) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  v.setUint32(8 + body.length, (crc ^ 0xffffffff) >>> 0);
  return out;
}

Deno.test("a multi-GB file is refused from its first bytes, never read whole", async () => {
  // Sparse files: Deno.truncate extends them without writing, so they cost no disk.
  await withTemp(async (dir) => {
    const size = 6 * 2 ** 30;
    const text = `${dir}/huge.bin`;
    await Deno.writeTextFile(text, "this is not an image\n");
    await Deno.truncate(text, size);
    const header = `${dir}/huge_header.png`;
    await Deno.writeFile(header, hugePngHeader(20000, 20000));
    await Deno.truncate(header, size);
    assert.equal((await Deno.stat(text)).size, size);
    const t0 = performance.now();
    await assertRefused(text, /not a readable image/);
    await assertRefused(
      header,
      /20000x20000 = 400000000 pixels, more than the limit of 100000000$/,
    );
    // Reading 12 GiB (even of holes) takes seconds, and more than a Uint8Array can hold.
    assert.ok(performance.now() - t0 < 1500, `${performance.now() - t0} ms`);
  });
});

Deno.test("refusals: huge header, pixel limit, truncated, not an image, directory, missing", async () => {
  await withTemp(async (dir) => {
    const huge = `${dir}/huge.png`;
    await Deno.writeFile(huge, hugePngHeader(20000, 20000));
    const t0 = performance.now();
    await assertRefused(huge, /20000x20000 = 400000000 pixels, more than the limit of 100000000$/);
    assert.ok(performance.now() - t0 < 2000, "refused from the header, without decoding");

    await assertRefused(`${DIR}rocket.jpg`, /640x427 = 273280 pixels.*limit of 100000$/, 100_000);
    // The refusal is an ImageTooLarge with the facts in fields (the CLI words it with its flag).
    await assert.rejects(loadImage(`${DIR}rocket.jpg`, { maxPixels: 100_000 }), (err: unknown) => {
      assert.ok(err instanceof ImageTooLarge);
      assert.deepEqual([err.path, err.width, err.height, err.limit], [
        `${DIR}rocket.jpg`,
        640,
        427,
        100_000,
      ]);
      return true;
    });
    assert.equal((await loadImage(`${DIR}rocket.jpg`, { maxPixels: 640 * 427 })).width, 640);

    const jpeg = await Deno.readFile(`${DIR}rocket.jpg`);
    await Deno.writeFile(`${dir}/cut.jpg`, jpeg.subarray(0, jpeg.length >> 1));
    await assertRefused(`${dir}/cut.jpg`, /truncated or corrupt jpeg/);
    const png = await Deno.readFile(`${DIR}gray.png`);
    await Deno.writeFile(`${dir}/cut.png`, png.subarray(0, png.length >> 1));
    await assertRefused(`${dir}/cut.png`, /truncated or corrupt png/);

    await Deno.writeTextFile(`${dir}/notes.txt`, "this is not an image\n");
    await assertRefused(`${dir}/notes.txt`, /not a readable image/);
    await Deno.writeFile(`${dir}/empty.png`, new Uint8Array(0));
    await assertRefused(`${dir}/empty.png`, /empty file/);
    await Deno.mkdir(`${dir}/photos.jpg`);
    await assertRefused(`${dir}/photos.jpg`, /is a directory/);
    await assertRefused(`${dir}/missing.png`, /no such file/);
  });
});
