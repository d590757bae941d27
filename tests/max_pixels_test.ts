/**
 * `--max-pixels` on caption and answer: an image over the limit is refused with exit 3 and one
 * line naming the file (before the model loads when the header is PNG/JPEG/GIF/WebP, while loading
 * otherwise); an image exactly at the limit runs; bad values are usage errors.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { convertFixture, FIXTURES, withTempDir } from "./generate/fixture_models.ts";
import { runPg as pg } from "./helpers/cli.ts";

const IMAGE = join(FIXTURES, "images", "chelsea.png");

Deno.test("--max-pixels: over the limit is exit 3 naming the file, at the limit runs", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "pg1");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);
    const meta = await sharp(IMAGE).metadata();
    const pixels = meta.width! * meta.height!;
    const tiff = join(dir, "cat.tiff");
    await sharp(IMAGE).tiff().toFile(tiff);
    const base = ["--model", model, "--max-tokens", "2"];

    const runs = await Promise.all([
      pg(["caption", IMAGE, ...base, "--max-pixels", String(pixels - 1)]),
      pg(["answer", IMAGE, "what is this?", ...base, "--max-pixels", "100"]),
      pg(["caption", tiff, ...base, "--max-pixels", "100"]),
      pg(["caption", IMAGE, ...base, "--max-pixels", String(pixels)]),
      pg(["caption", IMAGE, ...base, "--max-pixels", "0"]),
      pg(["caption", IMAGE, ...base, "--max-pixels", "many"]),
    ]);
    const [over, answer, overTiff, at, zero, word] = runs;
    // An image over the limit is that image's failure: one stderr line naming it, exit 3.
    for (const r of [over, answer, overTiff]) {
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trim().split("\n").filter((l) => l.includes("bad_image"));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /(chelsea\.png|cat\.tiff): bad_image: .*\d+x\d+.*--max-pixels/);
    }
    assert.equal(at.code, 0, at.stderr);
    assert.ok(at.stdout.length > 0);
    for (const r of [zero, word]) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--max-pixels expects a whole number/);
    }
  }));
