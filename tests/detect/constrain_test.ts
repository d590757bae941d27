/**
 * Constrained decoding and scores through the real generation loop, on a fake backend whose
 * logits are seeded noise: every constrained answer parses into well-formed objects with the asked
 * labels, and each reported probability is the temperature-1 softmax of the unconstrained logits.
 */

import assert from "node:assert/strict";
import { CpuPickBackend } from "../../lib/backend/cpu_pick.ts";
import type { DecodeInput, KvCache, StepOutput } from "../../lib/backend/backend.ts";
import { AnswerGrammar } from "../../lib/detect/constrain.ts";
import { type AnswerMode, parseAnswer, tokenLiterals } from "../../lib/detect/grammar.ts";
import { literalProbs, objectScore } from "../../lib/detect/objects.ts";
import { generate } from "../../lib/generate/generate.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import { buildPrompt } from "../../lib/prompt/build.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import type { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";

const TOKENIZER = new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url).pathname;

/** Noise logits from a seeded generator; remembers every row it returned. */
class NoiseBackend extends CpuPickBackend {
  readonly name = "noise";
  readonly dtype = "fp32";
  readonly config = {} as PaliGemmaConfig;
  readonly emitted: Float32Array[] = [];
  private state: number;

  readonly contextLength = 8192;
  constructor(readonly vocabSize: number, seed: number, private readonly batch: number) {
    super();
    this.state = seed;
  }

  private logits(cache: number): StepOutput {
    const out = new Float32Array(this.batch * this.vocabSize);
    for (let i = 0; i < out.length; i++) {
      this.state = (Math.imul(this.state, 1664525) + 1013904223) >>> 0;
      out[i] = (this.state / 2 ** 32) * 8;
    }
    for (let r = 0; r < this.batch; r++) {
      this.emitted.push(out.slice(r * this.vocabSize, (r + 1) * this.vocabSize));
    }
    const kv: KvCache = { batchSize: this.batch, length: cache };
    return { logits: out, kept: 1, cache: kv };
  }

  encodeImages(): never {
    throw new Error("no images here");
  }
  prefillLogits(input: { length: number }): Promise<StepOutput> {
    return Promise.resolve(this.logits(input.length));
  }
  decodeLogits(input: DecodeInput): Promise<StepOutput> {
    return Promise.resolve(this.logits(input.cache.length + 1));
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
}

function softmaxAt(row: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Math.exp(row[id] - max) / sum;
}

async function constrainedRun(
  tok: Tokenizer,
  mode: AnswerMode,
  labels: string[],
  seed: number,
  temperature: number,
  maxTokens = 400,
) {
  const eos = tok.eosId;
  const grammar = new AnswerGrammar({ mode, labels, tokenizer: tok, eosId: eos, maxTokens });
  const be = new NoiseBackend(tok.vocabSize, seed, 1);
  const batch = batchPrompts([buildPrompt(tok, 0, "detect x")], tok.padId);
  const res = await generate(be, batch, null, {
    maxTokens,
    eosIds: [eos],
    padId: tok.padId,
    sampling: { temperature, topK: 0, topP: 1 },
    rngs: temperature > 0
      ? [{ next: () => ((seed = (seed * 48271) % 2147483647) / 2147483647) }]
      : undefined,
    withProbs: true,
    constrain: (_r, generated, vocab) => grammar.bitmask(generated, vocab),
  });
  return { res, be };
}

Deno.test("constrained decoding: every answer is well formed, with the asked labels", async () => {
  const tok = await loadTokenizer(TOKENIZER);
  const labels = ["cat", "red car", "dog"];
  for (const mode of ["detect", "segment"] as const) {
    for (let seed = 1; seed <= 12; seed++) {
      const { res } = await constrainedRun(
        tok,
        mode,
        mode === "segment" ? ["cat"] : labels,
        seed,
        seed % 2,
      );
      const text = tok.decode(res.tokens[0], true);
      const parsed = parseAnswer(text, mode);
      assert.equal(res.stop[0], "eos", text);
      assert.ok(parsed.objects.length >= 1, text);
      assert.deepEqual(parsed.skipped, [], text);
      assert.deepEqual(parsed.texts, [], text);
      for (const o of parsed.objects) {
        assert.ok(
          (mode === "segment" ? ["cat"] : labels).includes(o.label),
          `${o.label} in ${text}`,
        );
      }
    }
  }
});

Deno.test("constrained decoding in --max-tokens: whole objects only, then EOS", async () => {
  const tok = await loadTokenizer(TOKENIZER);
  const sep = tok.encode(" ; ").length;
  for (const mode of ["detect", "segment"] as const) {
    const labels = mode === "segment" ? ["cat"] : ["cat", "red car"];
    const minLabel = Math.min(...labels.map((l) => tok.encode(` ${l}`).length));
    // The shortest whole object and the end of sequence after it.
    const minObject = 4 + (mode === "segment" ? 16 : 0) + minLabel + 1;
    let most = 0;
    for (let budget = minObject - 2; budget <= minObject * 3 + 2 * sep + 1; budget++) {
      for (const seed of [budget * 2, budget * 2 + 1]) {
        const { res } = await constrainedRun(tok, mode, labels, seed, seed % 2, budget);
        const text = tok.decode(res.tokens[0], true);
        const parsed = parseAnswer(text, mode);
        const tag = `${mode} budget ${budget} seed ${seed}: ${JSON.stringify(text)}`;
        assert.equal(res.stop[0], "eos", tag);
        assert.ok(res.tokens[0].length < budget, tag);
        assert.deepEqual(parsed.skipped, [], tag);
        assert.deepEqual(parsed.texts, [], tag);
        if (budget < minObject) assert.equal(res.tokens[0].length, 0, tag);
        else assert.ok(parsed.objects.length >= 1, tag);
        // n objects, the separators between them and the end of sequence fit the budget.
        const n = parsed.objects.length;
        assert.ok(n === 0 || n * (minObject - 1) + (n - 1) * sep + 1 <= budget, tag);
        most = Math.max(most, n);
      }
    }
    assert.ok(most >= 2, `${mode}: some budget should fit several objects`);
  }
});

Deno.test("scores: per-token probability is the unconstrained temperature-1 softmax", async () => {
  const tok = await loadTokenizer(TOKENIZER);
  const { res, be } = await constrainedRun(tok, "segment", ["cat"], 3, 0);
  const tokens = res.tokens[0];
  const probs = res.probs[0];
  assert.equal(probs.length, tokens.length);
  // The loop's step i saw be.emitted[i]; the grammar only lowered logits, so recompute from them.
  tokens.forEach((id, i) => {
    const want = softmaxAt(be.emitted[i], id);
    assert.ok(
      Math.abs(probs[i] - want) <= 1e-12 + 1e-9 * want,
      `step ${i}: ${probs[i]} vs ${want}`,
    );
  });
  const text = tok.decode(tokens, true);
  const lit = literalProbs(text, tokens, probs, tok);
  assert.ok(lit !== null);
  assert.equal(lit.length, tokenLiterals(text).length);
  for (const o of parseAnswer(text, "segment").objects) {
    const mean: number = o.tokenOrdinals.reduce((a: number, i: number) => a + lit[i], 0) / 20;
    assert.equal(o.tokenOrdinals.length, 20);
    assert.ok(Math.abs(objectScore(o, lit)! - mean) < 1e-15);
  }
});

Deno.test("scores: literal/token mismatch gives null rather than a wrong score", () => {
  const ids = { locBase: 1000, segBase: 2024 };
  const text = "<loc0001><loc0002><loc0003><loc0004> cat";
  const tokens = [1001, 1002, 1003, 1004, 50];
  assert.deepEqual(literalProbs(text, tokens, [0.1, 0.2, 0.3, 0.4, 0.9], ids), [
    0.1,
    0.2,
    0.3,
    0.4,
  ]);
  assert.equal(literalProbs(text, [1001, 1002, 1003, 50], [0.1, 0.2, 0.3, 0.4], ids), null);
  const o = parseAnswer(text, "detect").objects[0];
  assert.ok(Math.abs(objectScore(o, [0.1, 0.2, 0.3, 0.4])! - 0.25) < 1e-15);
  assert.equal(objectScore(o, null), null);
});
