/**
 * LoRA merges against the real thing: the three adapters of tests/fixtures/lora (made with `peft`),
 * merged by `pg convert --lora`, give transformers + peft's 24 greedy tokens on every case and its
 * last-position logits within 1e-4 (relative to the largest logit).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { generate } from "../../lib/generate/generate.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import { runPg } from "../helpers/cli.ts";
import { withTempDir } from "../generate/fixture_models.ts";
import { relErr } from "./onnx_runner.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const ADAPTERS = ["attn", "all-rslora", "modules-to-save"];

/** Reads one tensor of a safetensors file as numbers. */
async function tensor(path: string, name: string): Promise<{ data: number[]; shape: number[] }> {
  const st = await openSafetensors(path);
  try {
    const ref = st.get(name);
    if (!ref) throw new Error(`${path}: no ${name}`);
    const bytes = (await ref.read()).slice();
    const data = ref.dtype === "I64"
      ? Array.from(new BigInt64Array(bytes.buffer), Number)
      : Array.from(toFloat32(bytes, ref.dtype));
    return { data, shape: [...ref.shape] };
  } finally {
    st.close();
  }
}

for (const name of ADAPTERS) {
  Deno.test(`LoRA '${name}': pg convert --lora matches transformers + peft`, () =>
    withTempDir(async (dir) => {
      const lora = join(FIXTURES, "lora", name);
      const meta = JSON.parse(await Deno.readTextFile(join(lora, "cases.json")));
      const base = join(FIXTURES, meta.base);
      const baseExpected = join(base, "..", "expected.safetensors");
      const out = join(dir, "model");
      // transformers 5 (which made the references) applies Gemma 2's final soft-cap.
      const cfg = JSON.parse(await Deno.readTextFile(join(base, "config.json")));
      const gemma2 = (cfg.text_config?.model_type ?? "") === "gemma2";
      const r = await runPg([
        ...["convert", base, out, "--lora", lora],
        ...(gemma2 ? ["--final-softcap"] : []),
      ]);
      assert.equal(r.code, 0, r.stderr);

      const backend = await OnnxBackend.load(await openModelDir(out));
      try {
        for (const c of meta.cases as { index: number }[]) {
          const i = c.index;
          const ids = (await tensor(baseExpected, `case${i}.input_ids`)).data;
          const px = await tensor(baseExpected, `case${i}.pixel_values`);
          const features = await backend.encodeImages(Float32Array.from(px.data), 1);
          const n = ids.length;
          const batch = batchPrompts([{
            inputIds: Int32Array.from(ids),
            tokenTypeIds: new Int32Array(n),
            positionIds: Int32Array.from({ length: n }, (_, k) => k + 1),
            attentionMask: new Int32Array(n).fill(1),
            prefixLength: n,
            numImageTokens: features.tokens,
          }], backend.config.padTokenId);
          const first = await backend.prefillLogits({ ...batch, image: features, logitsToKeep: 1 });
          const want = (await tensor(join(lora, "expected.safetensors"), `case${i}.last_logits`))
            .data;
          const err = relErr(first.logits, want);
          assert.ok(err < 1e-4, `${name} case ${i}: last logits off by ${err}`);
          const res = await generate(backend, batch, features, {
            maxTokens: 24,
            eosIds: [],
            padId: backend.config.padTokenId,
          });
          const greedy = (await tensor(join(lora, "expected.safetensors"), `case${i}.greedy_ids`))
            .data;
          assert.deepEqual(res.tokens[0], greedy, `${name} case ${i}: greedy tokens`);
        }
      } finally {
        await backend.release();
      }
    }));
}
