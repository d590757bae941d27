/**
 * Prompt assembly against the HF processor's outputs stored with the tiny models
 * (tests/fixtures/models/<model>/expected.safetensors, made by tests/reference/make_models.py),
 * and the image pixel values.
 */
import assert from "node:assert/strict";
import { openSafetensors } from "../lib/checkpoint/safetensors.ts";
import type { TensorStore } from "../lib/checkpoint/tensor.ts";
import { preprocessImage } from "../lib/image/mod.ts";
import { EmptyPromptPart } from "../lib/prompt/tasks.ts";
import {
  answerPrefix,
  batchPrompts,
  buildPrompt,
  captionPrefix,
  detectPrefix,
  segmentPrefix,
} from "../lib/prompt/mod.ts";
import { loadTokenizer } from "../lib/tokenizer/mod.ts";
import type { Tokenizer } from "../lib/tokenizer/tokenizer.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

interface Cases {
  config: { image: number; tokens: number; image_id: number };
  cases: { index: number; image: string; prompt: string; prompt_len: number }[];
  batch: { image: string; prompt: string }[];
}

/** An int64 tensor as numbers. */
async function ints(store: TensorStore, name: string): Promise<number[]> {
  const ref = store.get(name);
  assert.ok(ref, `${name} missing`);
  assert.equal(ref.dtype, "I64", name);
  const b = await ref.read();
  return Array.from(new BigInt64Array(b.slice().buffer), Number);
}

/** A float32 tensor. */
async function floats(store: TensorStore, name: string): Promise<Float32Array> {
  const ref = store.get(name);
  assert.ok(ref && ref.dtype === "F32", `${name} missing or not F32`);
  return new Float32Array((await ref.read()).slice().buffer);
}

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  const dir = `${FIXTURES}models/${model}/`;
  const meta: Cases = JSON.parse(Deno.readTextFileSync(`${dir}cases.json`));

  for (const file of ["tokenizer.json", "tokenizer.model"]) {
    Deno.test(`${model}: ids, token types, positions and masks equal HF's (${file})`, async () => {
      const tok = await loadTokenizer(`${dir}hf/${file}`);
      assert.equal(tok.imageId, meta.config.image_id);
      const store = await openSafetensors(`${dir}expected.safetensors`);
      try {
        for (const c of meta.cases) {
          const p = buildPrompt(tok, meta.config.tokens, c.prompt);
          const key = `case${c.index}`;
          assert.deepEqual(Array.from(p.inputIds), await ints(store, `${key}.input_ids`), key);
          assert.deepEqual(Array.from(p.tokenTypeIds), await ints(store, `${key}.token_type_ids`));
          assert.deepEqual(Array.from(p.positionIds), await ints(store, `${key}.position_ids`));
          assert.deepEqual(Array.from(p.attentionMask), await ints(store, `${key}.attention_mask`));
          assert.equal(p.inputIds.length, c.prompt_len);
          assert.equal(p.prefixLength, c.prompt_len);
        }
        const rows = meta.batch.map((b) => buildPrompt(tok, meta.config.tokens, b.prompt));
        const batch = batchPrompts(rows, tok.padId);
        assert.equal(batch.batchSize, meta.batch.length);
        assert.deepEqual(Array.from(batch.inputIds), await ints(store, "batch.input_ids"));
        assert.deepEqual(
          Array.from(batch.attentionMask),
          await ints(store, "batch.attention_mask"),
        );
        assert.deepEqual(Array.from(batch.positionIds), await ints(store, "batch.position_ids"));
        assert.deepEqual(Array.from(batch.tokenTypeIds), await ints(store, "batch.token_type_ids"));
      } finally {
        store.close();
      }
    });
  }

  Deno.test(`${model}: preprocessImage reproduces HF's pixel_values`, async () => {
    const store = await openSafetensors(`${dir}expected.safetensors`);
    const size = meta.config.image;
    let worst = 0;
    try {
      const check = async (path: string, want: Float32Array) => {
        const pre = await preprocessImage(path, size);
        assert.equal(pre.pixelValues.length, want.length, path);
        for (let i = 0; i < want.length; i++) {
          worst = Math.max(worst, Math.abs(pre.pixelValues[i] - want[i]));
        }
      };
      for (const c of meta.cases) {
        await check(`${FIXTURES}${c.image}`, await floats(store, `case${c.index}.pixel_values`));
      }
      const all = await floats(store, "batch.pixel_values");
      const per = 3 * size * size;
      for (const [i, b] of meta.batch.entries()) {
        await check(`${FIXTURES}${b.image}`, all.subarray(i * per, (i + 1) * per));
      }
    } finally {
      store.close();
    }
    // One grey level is 2/255 ≈ 0.0078 in pixel values; 1e-6 allows float32 rounding only. Our
    // values equal transformers 4.57's SiglipImageProcessor bit for bit (rescale in float64, then
    // float32); the fixture computed (u8 * f32(1/255) - 0.5) / 0.5 in float32, up to 1 ulp away.
    console.log(`  ${model}: max |pixel_values - HF| = ${worst}`);
    assert.ok(worst <= 1e-6, `max error ${worst}`);
  });
}

Deno.test("task prefixes are spelled as the fixtures' prompts and refuse empty parts", () => {
  assert.equal(captionPrefix("en"), "caption en");
  assert.equal(captionPrefix(), "caption en");
  assert.equal(answerPrefix("what is on the table?", "en"), "answer en what is on the table?");
  assert.equal(detectPrefix(["rocket", "cloud"]), "detect rocket ; cloud");
  assert.equal(detectPrefix([" red car "]), "detect red car");
  assert.equal(segmentPrefix("cat"), "segment cat");
  const refused = (f: () => unknown, part: string, message: RegExp) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof EmptyPromptPart, String(e));
      assert.equal(e.exitCode, 2);
      assert.equal(e.part, part);
      assert.match(e.message, message);
      return true;
    });
  refused(() => detectPrefix([]), "object names", /^detect needs at least one object name$/);
  refused(() => detectPrefix(["cat", " "]), "object name", /^object name must not be empty$/);
  refused(() => answerPrefix(""), "question", /^question must not be empty$/);
  refused(() => captionPrefix(" "), "caption language", /^caption language must not be empty$/);
});

/** A character-level tokenizer: enough to check the layout around the text ids. */
function fakeTokenizer(): Tokenizer {
  return {
    kind: "huggingface",
    vocabSize: 300,
    padId: 0,
    eosId: 1,
    bosId: 2,
    unkId: 3,
    imageId: 299,
    locBase: -1,
    segBase: -1,
    encode: (text) => Array.from(text, (ch) => 10 + ch.charCodeAt(0)),
    decode: (ids) => String.fromCharCode(...ids.map((i) => i - 10)),
    idToToken: () => undefined,
    tokenToId: () => undefined,
  };
}

// No fixture reference: the recorded cases are generation prompts (prefix only), so this
// expectation is derived by hand from HF's PaliGemmaProcessor as model-reference.md "Prompt"
// states it (suffix + <eos> after "prefix\n", token_type_ids 1 on the suffix).
Deno.test("a suffix follows the prefix with <eos>, token type 1 and 1-based positions", () => {
  const tok = fakeTokenizer();
  const p = buildPrompt(tok, 3, "ab", "xy");
  const nl = 10 + 10;
  assert.deepEqual(Array.from(p.inputIds), [299, 299, 299, 2, 10 + 97, 10 + 98, nl, 130, 131, 1]);
  assert.deepEqual(Array.from(p.tokenTypeIds), [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual(Array.from(p.positionIds), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(p.prefixLength, 7);
  // The prefix and its "\n" go to the tokenizer as one string.
  const seen: string[] = [];
  buildPrompt({ ...tok, encode: (t) => (seen.push(t), []) }, 1, "caption en", "a cat");
  assert.deepEqual(seen, ["caption en\n", "a cat"]);
});
