/**
 * Test helper: converts a fixture model (tests/fixtures/models) into a temporary ONNX folder with
 * the library's converter and reads the fixture's cases (HF transformers 4.57 reference).
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { convertModel } from "../../lib/convert/convert.ts";
import type { Precision } from "../../lib/convert/layers.ts";
import type { ConvertSource } from "../../lib/convert/source.ts";
import type { Backend } from "../../lib/backend/backend.ts";
import { generate, type GenerateOptions } from "../../lib/generate/generate.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import type { PromptInput } from "../../lib/prompt/build.ts";

/** tests/fixtures/models/ */
export const FIX = new URL("../fixtures/models/", import.meta.url).pathname;

/** tests/fixtures/ (image paths in cases.json are relative to it). */
export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

/** The Gemma 2 scalars a big_vision npz cannot carry, taken from cases.json. */
async function withCaseConfig(src: ConvertSource, model: string): Promise<ConvertSource> {
  const c = JSON.parse(await Deno.readTextFile(join(FIX, model, "cases.json"))).config;
  if (!c.gemma2) return src;
  const text = {
    ...src.config.text,
    queryPreAttnScalar: c.query_pre_attn_scalar,
    attnLogitSoftcap: c.attn_softcap,
    finalLogitSoftcap: c.final_softcap,
  };
  return { ...src, config: { ...src.config, text } };
}

/**
 * Converts `model`/`source` (`hf` or `bv.npz`) into `dir` at `precision` and copies the HF
 * tokenizer files beside it (a big_vision npz has none).
 */
export async function convertFixture(
  model: string,
  source: string,
  dir: string,
  precision: Precision = "fp32",
): Promise<void> {
  const ck = await openCheckpoint(join(FIX, model, source));
  try {
    await convertModel(await withCaseConfig(ck, model), dir, { precision });
  } finally {
    ck.close();
  }
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const p = join(FIX, model, "hf", f);
    if (fs.existsSync(p)) fs.copyFileSync(p, join(dir, f));
  }
}

/** One reference case. */
export interface FixtureCase {
  /** Image path (absolute). */
  readonly image: string;
  /** Prompt text. */
  readonly prompt: string;
  /** HF's input ids. */
  readonly ids: Int32Array;
  /** HF's pixel values [3,S,S]. */
  readonly pixels: Float32Array;
  /** HF's 24 greedy tokens (argmax, no EOS stop). */
  readonly greedy: number[];
}

/** The cases of `model`, from cases.json and expected.safetensors. */
export async function fixtureCases(model: string): Promise<FixtureCase[]> {
  const meta = JSON.parse(await Deno.readTextFile(join(FIX, model, "cases.json")));
  const ex = await openSafetensors(join(FIX, model, "expected.safetensors"));
  try {
    const ints = async (name: string) => {
      const r = ex.get(name);
      if (!r) throw new Error(`${model}: expected.safetensors lacks ${name}`);
      return Array.from(new BigInt64Array((await r.read()).slice().buffer), Number);
    };
    const out: FixtureCase[] = [];
    for (const [i, c] of (meta.cases as { image: string; prompt: string }[]).entries()) {
      const px = ex.get(`case${i}.pixel_values`)!;
      out.push({
        image: join(FIXTURES, c.image),
        prompt: c.prompt,
        ids: Int32Array.from(await ints(`case${i}.input_ids`)),
        pixels: toFloat32(await px.read(), px.dtype),
        greedy: await ints(`case${i}.greedy_ids`),
      });
    }
    return out;
  } finally {
    ex.close();
  }
}

/** Runs `body` with a fresh temporary folder that is removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "pg-generate-" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A fixture case's ids as one prompt row (no image tokens; the whole row is the prefix). */
export function caseRow(ids: Int32Array): PromptInput {
  const n = ids.length;
  return {
    inputIds: ids,
    tokenTypeIds: new Int32Array(n),
    positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
    attentionMask: new Int32Array(n).fill(1),
    prefixLength: n,
    numImageTokens: 0,
  };
}

/** Generates `steps` tokens (no EOS stop) for `cases` as one left-padded batch on `be`. */
export async function generateCases(
  be: Backend,
  cases: readonly FixtureCase[],
  steps: number,
  opts: Partial<GenerateOptions> = {},
): Promise<number[][]> {
  const batch = batchPrompts(cases.map((c) => caseRow(c.ids)), be.config.padTokenId);
  const px = new Float32Array(cases.length * cases[0].pixels.length);
  cases.forEach((c, i) => px.set(c.pixels, i * c.pixels.length));
  const feats = await be.encodeImages(px, cases.length);
  const res = await generate(be, batch, feats, {
    maxTokens: steps,
    eosIds: [],
    padId: be.config.padTokenId,
    ...opts,
  });
  return res.tokens;
}
