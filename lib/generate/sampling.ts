/**
 * Picking the next token from one row of logits: greedy (argmax), or sampling with temperature,
 * top-k and top-p applied in that order, as HF's `generate` does (top-p is computed over the
 * probabilities renormalised after top-k).
 * @module
 */

import type { Rng } from "./rng.ts";

/** How to pick tokens. Temperature 0 means greedy; topK 0 and topP 1 switch those filters off. */
export interface SamplingOptions {
  /** Divides the logits before sampling; 0 = greedy (argmax). */
  readonly temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  readonly topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  readonly topP: number;
}

/** Plain argmax decoding. */
export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1 };

/** Whether `opts` samples (otherwise the choice is the argmax). */
export function isSampling(opts: SamplingOptions): boolean {
  return opts.temperature > 0;
}

/** Index of the largest value (the first one on ties, as torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let max = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > max) {
      max = logits[i];
      best = i;
    }
  }
  return best;
}

/** Orders candidates by value, highest first, lower id first on ties. */
function byValueDesc(values: ArrayLike<number>): (a: number, b: number) => number {
  return (a, b) => values[b] - values[a] || a - b;
}

/** The `k` indices with the largest values, highest first (a size-k min-heap, O(V log k)). */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  const heap: number[] = [];
  // "Worse" = smaller value, or equal value with a larger id.
  const worse = (i: number, j: number) =>
    values[i] < values[j] || (values[i] === values[j] && i > j);
  const down = (pos: number) => {
    for (;;) {
      const l = 2 * pos + 1;
      const r = l + 1;
      let m = pos;
      if (l < heap.length && worse(heap[l], heap[m])) m = l;
      if (r < heap.length && worse(heap[r], heap[m])) m = r;
      if (m === pos) return;
      [heap[pos], heap[m]] = [heap[m], heap[pos]];
      pos = m;
    }
  };
  for (let i = 0; i < values.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0;) {
        const p = (c - 1) >> 1;
        if (!worse(heap[c], heap[p])) break;
        [heap[c], heap[p]] = [heap[p], heap[c]];
        c = p;
      }
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort(byValueDesc(values));
}

/**
 * Candidates holding the nucleus, highest probability first: only tokens above a falling threshold
 * are sorted, enough of them that their total reaches `topP`.
 */
function nucleusCandidates(probs: Float64Array, ids: readonly number[] | null, topP: number) {
  const n = ids ? ids.length : probs.length;
  const id = (i: number) => (ids ? ids[i] : i);
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, probs[id(i)]);
  for (let t = max / 16;; t /= 16) {
    const picked: number[] = [];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const p = probs[id(i)];
      if (p >= t) {
        picked.push(id(i));
        sum += p;
      }
    }
    if (sum >= topP || t === 0 || picked.length === n) return picked.sort(byValueDesc(probs));
    if (t < 1e-300) t = 0;
  }
}

/** Candidates left after the filters and their (unnormalised) probabilities. */
interface Pool {
  /** Candidate ids, or null for the whole vocabulary. */
  readonly ids: readonly number[] | null;
  /** Probabilities indexed by token id (only candidates are meaningful). */
  readonly probs: Float64Array;
}

/** Applies temperature, top-k and top-p to one row of logits. */
function filter(logits: ArrayLike<number>, opts: SamplingOptions): Pool {
  const v = logits.length;
  const inv = 1 / opts.temperature;
  const ids = opts.topK > 0 && opts.topK < v ? topKIndices(logits, opts.topK) : null;
  const n = ids ? ids.length : v;
  const id = (i: number) => (ids ? ids[i] : i);
  // Softmax over the candidates, in float64.
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[id(i)] * inv);
  const probs = new Float64Array(v);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.exp(logits[id(i)] * inv - max);
    probs[id(i)] = p;
    total += p;
  }
  for (let i = 0; i < n; i++) probs[id(i)] /= total;
  if (opts.topP >= 1) return { ids, probs };
  const sorted = nucleusCandidates(probs, ids, opts.topP);
  let cum = 0;
  let keep = 0;
  while (keep < sorted.length && (keep === 0 || cum < opts.topP)) cum += probs[sorted[keep++]];
  return { ids: sorted.slice(0, keep), probs };
}

/**
 * The distribution `pickToken` samples from when sampling: probabilities by token id, zero for
 * tokens the filters removed, summing to 1.
 */
export function samplingProbs(logits: ArrayLike<number>, opts: SamplingOptions): Float64Array {
  const { ids, probs } = filter(logits, opts);
  if (ids === null) return probs;
  const out = new Float64Array(probs.length);
  let mass = 0;
  for (const i of ids) mass += probs[i];
  for (const i of ids) out[i] = probs[i] / mass;
  return out;
}

/** Picks one token id from `logits` (one row) under `opts`, drawing from `rng` when sampling. */
export function pickToken(logits: ArrayLike<number>, opts: SamplingOptions, rng?: Rng): number {
  if (!isSampling(opts)) return argmax(logits);
  if (!rng) throw new TypeError("pickToken: sampling needs a seeded Rng");
  const { ids, probs } = filter(logits, opts);
  const m = ids ? ids.length : probs.length;
  const pid = (i: number) => (ids ? ids[i] : i);
  let mass = 0;
  for (let i = 0; i < m; i++) mass += probs[pid(i)];
  let u = rng.next() * mass;
  for (let i = 0; i < m; i++) {
    u -= probs[pid(i)];
    if (u < 0) return pid(i);
  }
  // Rounding left u at or just above 0: take the last candidate with non-zero probability.
  for (let i = m - 1; i >= 0; i--) if (probs[pid(i)] > 0) return pid(i);
  return pid(0);
}
