import assert from "node:assert/strict";
import { pickToken, type SamplingOptions, samplingProbs } from "../../lib/generate/sampling.ts";
import {
  decodeSamples,
  SAMPLE_OVERFLOW,
  type SamplePlan,
  samplePlan,
  sampleScratchLength,
  sampleTokens,
} from "../../lib/webgpu/ops_sample.ts";
import { gpuTest, Rng } from "./gpu_test_util.ts";

interface Case {
  name: string;
  rows: number;
  vocab: number;
  /** Logit spread: values uniform in [-spread, spread]. */
  spread: number;
  sampling: SamplingOptions;
  /** Fraction of ids the grammar mask allows (1 = no mask). */
  allow: number;
  /** Repeat a few values to create ties. */
  ties?: boolean;
  /** The kernel is expected to hand this case back to the CPU (flag SAMPLE_OVERFLOW). */
  overflow?: boolean;
  /** Kernel sizes other than this adapter's default. */
  plan?: SamplePlan;
}

const GREEDY = { temperature: 0, topK: 0, topP: 1 };
const CASES: Case[] = [
  {
    name: "top-k 100 + top-p 0.95 with more candidates than threads (32 threads, cap 128)",
    rows: 2,
    vocab: 3333,
    spread: 30,
    sampling: { temperature: 1.1, topK: 100, topP: 0.95 },
    allow: 0.7,
    ties: true,
    plan: { wg: 32, chunk: 96, cap: 128 },
  },
  {
    name: "temperature only, 32 threads, chunks of 96",
    rows: 2,
    vocab: 1001,
    spread: 3,
    sampling: { temperature: 0.9, topK: 0, topP: 1 },
    allow: 0.5,
    plan: { wg: 32, chunk: 96, cap: 128 },
  },
  { name: "greedy, 1 id", rows: 1, vocab: 1, spread: 1, sampling: GREEDY, allow: 1 },
  {
    name: "greedy, 37 ids, ties",
    rows: 3,
    vocab: 37,
    spread: 2,
    sampling: GREEDY,
    allow: 1,
    ties: true,
  },
  {
    name: "greedy 257216 ids with a grammar mask",
    rows: 2,
    vocab: 257216,
    spread: 8,
    sampling: GREEDY,
    allow: 0.3,
  },
  {
    name: "temperature 0.7 only, 5000 ids",
    rows: 3,
    vocab: 5000,
    spread: 4,
    sampling: { temperature: 0.7, topK: 0, topP: 1 },
    allow: 1,
  },
  {
    name: "temperature 1.3 only, mask",
    rows: 2,
    vocab: 3001,
    spread: 3,
    sampling: { temperature: 1.3, topK: 0, topP: 1 },
    allow: 0.5,
  },
  {
    name: "top-k 1",
    rows: 2,
    vocab: 999,
    spread: 4,
    sampling: { temperature: 1, topK: 1, topP: 1 },
    allow: 1,
  },
  {
    name: "top-k 40, ties",
    rows: 3,
    vocab: 4099,
    spread: 3,
    sampling: { temperature: 0.9, topK: 40, topP: 1 },
    allow: 1,
    ties: true,
  },
  {
    name: "top-k 20 + top-p 0.8, mask",
    rows: 2,
    vocab: 2500,
    spread: 5,
    sampling: { temperature: 1, topK: 20, topP: 0.8 },
    allow: 0.4,
  },
  {
    name: "top-p 0.9 alone, peaked",
    rows: 2,
    vocab: 2000,
    spread: 60,
    sampling: { temperature: 0.8, topK: 0, topP: 0.9 },
    allow: 1,
  },
  {
    name: "top-k >= vocab is no top-k",
    rows: 2,
    vocab: 50,
    spread: 2,
    sampling: { temperature: 1, topK: 50, topP: 1 },
    allow: 1,
  },
  {
    name: "mask allows 3 ids, top-k 10",
    rows: 1,
    vocab: 1000,
    spread: 2,
    sampling: { temperature: 1, topK: 10, topP: 1 },
    allow: 0.003,
  },
  {
    name: "top-p 0.99 over flat logits overflows",
    rows: 1,
    vocab: 5000,
    spread: 0.1,
    sampling: { temperature: 1, topK: 0, topP: 0.99 },
    allow: 1,
    overflow: true,
  },
];

/** Probability tolerance: relative 1e-5 (float32 softmax over up to 257216 logits). */
const PROB_TOL = 1e-5;
/** Draws this close to an edge of the CPU's cumulative distribution may pick a neighbour. */
const EDGE = 1e-4;

CASES.forEach((c, idx) => {
  gpuTest(`webgpu sample: ${c.name}`, async (r) => {
    const rng = new Rng(1300 + idx);
    const { rows, vocab } = c;
    const logits = rng.uniform(rows * vocab, -c.spread, c.spread);
    if (c.ties) { for (let i = 0; i < logits.length; i += 3) logits[i] = logits[i - (i % 6)]; }
    const words = Math.ceil(vocab / 32);
    const mask = new Uint32Array(rows * words);
    for (let row = 0; row < rows; row++) {
      let any = false;
      for (let i = 0; i < vocab; i++) {
        if (c.allow >= 1 || rng.next() < c.allow) {
          mask[row * words + (i >> 5)] |= 1 << (i & 31);
          any = true;
        }
      }
      if (!any) mask[row * words] |= 1;
    }
    const u = rng.uniform(rows, 0, 1);
    const out = r.zeros(rows * 4);
    await sampleTokens(r, {
      logits: r.tensor(logits),
      rows,
      vocab,
      out,
      scratch: r.zeros(sampleScratchLength(r, rows, vocab, c.plan)),
      plan: c.plan,
      sampling: c.sampling,
      uniforms: r.tensor(u),
      mask: c.allow < 1 ? r.tensor(mask) : undefined,
    });
    const got = decodeSamples(await r.readU32(out), rows);
    for (let row = 0; row < rows; row++) {
      const raw = logits.subarray(row * vocab, (row + 1) * vocab);
      const masked = Float32Array.from(
        raw,
        (v, i) => c.allow >= 1 || (mask[row * words + (i >> 5)] >>> (i & 31)) & 1 ? v : -Infinity,
      );
      const what = `row ${row} (${rng.tag})`;
      // A nucleus (top-p alone) larger than the kernel's candidate capacity is handed back.
      const nucleus = c.sampling.temperature > 0 && c.sampling.topK === 0 && c.sampling.topP < 1
        ? samplingProbs(masked, c.sampling).filter((v) => v > 0).length
        : 0;
      const cap = (c.plan ?? samplePlan(r)).cap;
      if (!c.overflow && Math.abs(nucleus - cap) <= 2) continue; // float32 may cut either way
      if (c.overflow || nucleus > cap) {
        assert.equal(got[row].flags, SAMPLE_OVERFLOW, `expected overflow, ${what}`);
        continue;
      }
      assert.equal(got[row].flags, 0, `flags ${got[row].flags}, ${what}`);
      const pick = (draw: number, topP = c.sampling.topP) =>
        pickToken(masked, { ...c.sampling, topP }, { next: () => draw });
      const want = pick(u[row]);
      const near = new Set([
        want,
        pick(Math.max(0, u[row] - EDGE)),
        pick(Math.min(0.9999999, u[row] + EDGE)),
        pick(u[row], Math.min(1, c.sampling.topP * (1 + EDGE))),
        pick(u[row], c.sampling.topP * (1 - EDGE)),
      ]);
      if (near.size === 1) assert.equal(got[row].token, want, `token, ${what}`);
      else {assert.ok(
          near.has(got[row].token),
          `token ${got[row].token} not in ${[...near]}, ${what}`,
        );}
      let max = -Infinity;
      for (const v of raw) max = Math.max(max, v);
      let sum = 0;
      for (const v of raw) sum += Math.exp(v - max);
      const prob = Math.exp(raw[got[row].token] - max) / sum;
      assert.ok(
        Math.abs(got[row].prob - prob) <= PROB_TOL * prob + 1e-12,
        `prob ${got[row].prob}, want ${prob}, ${what}`,
      );
    }
  });
});
