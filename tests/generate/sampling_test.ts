/**
 * Token choice: argmax, the temperature / top-k / top-p distribution against a brute-force
 * reference (full sort, HF's order of filters), the empirical frequencies of seeded draws, and the
 * PRNG itself.
 */

import assert from "node:assert/strict";
import { seededRng } from "../../lib/generate/rng.ts";
import {
  argmax,
  pickToken,
  type SamplingOptions,
  samplingProbs,
  topKIndices,
} from "../../lib/generate/sampling.ts";

/** Reference: HF's TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper, full sort. */
function reference(logits: Float32Array, o: SamplingOptions): Float64Array {
  const v = logits.length;
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) =>
    logits[b] - logits[a] || a - b
  );
  const keep = o.topK > 0 ? order.slice(0, o.topK) : order;
  const max = logits[keep[0]] / o.temperature;
  const e = keep.map((i) => Math.exp(logits[i] / o.temperature - max));
  const total = e.reduce((a, b) => a + b, 0);
  const p = e.map((x) => x / total);
  let cut = p.length;
  if (o.topP < 1) {
    let cum = 0;
    cut = 0;
    // Keep a token while the mass of the tokens before it is below top_p (at least one).
    while (cut < p.length && (cut === 0 || cum < o.topP)) cum += p[cut++];
  }
  const out = new Float64Array(v);
  const mass = p.slice(0, cut).reduce((a, b) => a + b, 0);
  for (let j = 0; j < cut; j++) out[keep[j]] = p[j] / mass;
  return out;
}

function randomLogits(v: number, seed: number, scale = 4): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: v }, () => (rng.next() * 2 - 1) * scale);
}

Deno.test("argmax takes the first maximum; topKIndices sorts by value then id", () => {
  assert.equal(argmax([1, 5, 5, 2]), 1);
  assert.equal(argmax([-3]), 0);
  assert.deepEqual(topKIndices([1, 5, 5, 2, 7], 3), [4, 1, 2]);
  const x = randomLogits(5000, 1);
  const want = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b).slice(0, 50);
  assert.deepEqual(topKIndices(x, 50), want);
});

Deno.test("samplingProbs equals the full-sort reference (abs 1e-12)", () => {
  const opts: SamplingOptions[] = [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.5, topK: 0, topP: 1 },
    { temperature: 1, topK: 20, topP: 1 },
    { temperature: 1, topK: 0, topP: 0.9 },
    { temperature: 2, topK: 0, topP: 0.5 },
    { temperature: 0.8, topK: 50, topP: 0.7 },
    { temperature: 1, topK: 0, topP: 1e-6 },
  ];
  for (const [k, o] of opts.entries()) {
    // A peaked row and a flat row of the size where the thresholded nucleus search matters.
    for (const x of [randomLogits(3000, 10 + k, 8), randomLogits(60000, 20 + k, 0.5)]) {
      const got = samplingProbs(x, o);
      const want = reference(x, o);
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
      assert.ok(err < 1e-12, `${JSON.stringify(o)} V=${x.length}: max abs err ${err}`);
    }
  }
});

Deno.test("top-p and top-k keep the documented sets on a known distribution", () => {
  const logits = Float32Array.from([0.5, 0.3, 0.2].map(Math.log));
  const p = (o: Partial<SamplingOptions>) =>
    Array.from(samplingProbs(logits, { temperature: 1, topK: 0, topP: 1, ...o }));
  const close = (a: number[], b: number[]) =>
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-6, `${a} vs ${b}`));
  close(p({}), [0.5, 0.3, 0.2]);
  close(p({ topP: 0.7 }), [0.625, 0.375, 0]);
  close(p({ topP: 0.5 }), [1, 0, 0]);
  close(p({ topK: 2 }), [0.625, 0.375, 0]);
  const t2 = [0.5, 0.3, 0.2].map(Math.sqrt);
  const s = t2.reduce((a, b) => a + b);
  close(p({ temperature: 2 }), t2.map((x) => x / s));
});

Deno.test("seeded draws follow the distribution and repeat with the seed", () => {
  const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  const o: SamplingOptions = { temperature: 1, topK: 0, topP: 1 };
  const n = 40000;
  const draw = (seed: number) => {
    const rng = seededRng(seed);
    return Array.from({ length: n }, () => pickToken(logits, o, rng));
  };
  const a = draw(42);
  assert.deepEqual(draw(42), a);
  assert.notDeepEqual(draw(43), a);
  const freq = [0, 0, 0, 0];
  for (const t of a) freq[t]++;
  // 4.5 standard deviations of a binomial frequency at n = 40000 is below 0.0115.
  [0.5, 0.3, 0.15, 0.05].forEach((p, i) =>
    assert.ok(Math.abs(freq[i] / n - p) < 0.0115, `token ${i}: ${freq[i] / n} vs ${p}`)
  );
  // Top-k = 1 and a vanishing top-p are greedy whatever the temperature.
  const x = randomLogits(1000, 5);
  const rng = seededRng(1);
  for (const t of [0.3, 1, 5]) {
    assert.equal(pickToken(x, { temperature: t, topK: 1, topP: 1 }, rng), argmax(x));
    assert.equal(pickToken(x, { temperature: t, topK: 0, topP: 1e-9 }, rng), argmax(x));
  }
  assert.equal(pickToken(x, { temperature: 0, topK: 0, topP: 1 }), argmax(x));
  assert.throws(() => pickToken(x, o), TypeError);
});

Deno.test("seededRng: [0,1), uniform mean and buckets, streams independent", () => {
  const n = 100000;
  const rng = seededRng(123);
  const buckets = new Array(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    buckets[Math.floor(u * 10)]++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
  for (const b of buckets) assert.ok(Math.abs(b / n - 0.1) < 0.005, `bucket ${b / n}`);
  const first = (seed: number, stream: number) => {
    const r = seededRng(seed, stream);
    return [r.next(), r.next(), r.next()];
  };
  assert.deepEqual(first(5, 0), first(5, 0));
  assert.notDeepEqual(first(5, 0), first(5, 1));
  assert.notDeepEqual(first(5, 0), first(6, 0));
  assert.notDeepEqual(first(2 ** 40, 0), first(0, 0));
});
