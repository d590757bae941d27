/**
 * Test helper for the CLI contract tests: a converted pg1-tiny folder and a folder of distinct
 * small images, made once per test file.
 * @module
 */

import { join } from "node:path";
import sharp from "sharp";
import { convertFixture, FIXTURES } from "../generate/fixture_models.ts";

/** The fixture images (tests/fixtures/images), all readable. */
export const FIXTURE_IMAGES = [
  "astronaut.png",
  "chelsea.png",
  "exif6.jpg",
  "gray.png",
  "rgba.png",
  "rocket.jpg",
].map((f) => join(FIXTURES, "images", f));

/** A temporary folder holding `model/` (pg1-tiny, fp32) for the body; removed afterwards. */
export async function withTinyModel<T>(
  body: (dir: string, model: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "pg-cli-" });
  try {
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);
    return await body(dir, model);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `n` distinct small PNGs (`img-000.png`, … each its own colour) into `dir`. */
export async function smallImages(dir: string, n: number, size = 24): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `img-${String(i).padStart(3, "0")}.png`);
    const background = { r: (i * 53) % 256, g: (i * 97) % 256, b: (i * 31) % 256 };
    await sharp({ create: { width: size, height: size, channels: 3, background } }).png().toFile(p);
    paths.push(p);
  }
  return paths;
}

/** Parses NDJSON stdout into records. */
export function records(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** A record without its timings (which differ between runs). */
export function withoutTimings(r: Record<string, unknown>): Record<string, unknown> {
  const { timings_ms: _, ...rest } = r;
  return rest;
}
